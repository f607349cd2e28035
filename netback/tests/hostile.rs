//! Hostile frontends (../shared/notes/hostile-frontends.md, items 1, 3, 6, 9, 10, 11, 12,
//! 13, 14, 15): each attack gets error responses or a disconnect with a logged reason, the
//! driver domain keeps running, and two healthy guests on the same switch keep exchanging
//! traffic throughout.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use minios::event_throttle::{HOLD_MAX_NS, SPURIOUS_LIMIT};
use minios::platform::{EventChannel, SharedMem};
use netback::wire::{Gso, GsoKind};
use xen_abi::netif::{
    NetifExtraInfo, NetifTxRequest, NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY,
    NETTXF_EXTRA_INFO, NETTXF_MORE_DATA,
};
use xen_abi::ring::SharedRingIndices;

const CMD: &str = "netback.uplink=off";

/// A driver domain with hostile guest `a` (domid 5) and healthy guests `b` (6) and `c` (7).
fn setup(cmd: &str) -> (Harness, TestFront, TestFront, TestFront) {
    let mut h = Harness::new(cmd);
    let a = h.guest(5, FrontOpts::linux(5));
    let b = h.guest(6, FrontOpts::linux(6));
    let c = h.guest(7, FrontOpts::plain(7));
    (h, a, b, c)
}

/// b and c exchange a packet each way; both arrive intact.
fn healthy(h: &mut Harness, b: &mut TestFront, c: &mut TestFront, seed: u32) {
    let bc = udp_frame(mac(7), mac(6), ip(6), ip(7), &pattern(1200, seed));
    let cb = udp_frame(mac(6), mac(7), ip(7), ip(6), &pattern(700, seed + 1));
    b.send(&bc, &SendOpts::default());
    c.send(&cb, &SendOpts::default());
    h.settle();
    let got_c = c.take_received();
    let got_b = b.take_received();
    assert!(got_c.iter().any(|r| r.data == bc), "c got b's packet");
    assert!(got_b.iter().any(|r| r.data == cb), "b got c's packet");
}

fn req(gref: u32, offset: u16, flags: u16, id: u16, size: u16) -> [u8; 12] {
    raw_req(NetifTxRequest {
        gref,
        offset,
        flags,
        id,
        size,
    })
}

/// The reason the backend recorded for a's failure (and that it failed).
fn failed_with(h: &Harness, a: &TestFront) -> String {
    let err = h.error_node(a).expect("error node written");
    assert_eq!(h.be_state(a).as_deref(), Some("5"), "backend Closing");
    assert!(!h.connected(a));
    err
}

// --- 1: double fetch (XSA-155) ---------------------------------------------------------------

/// Garbage for every TX slot of a ring page: grant, offset, flags (more-data and
/// extra-info set), id and size all wrong.
fn garble_tx_slots(page: &minios::host::HostPage, salt: u32) {
    for slot in 0..256usize {
        let at = 64 + slot * 12;
        let v = salt.wrapping_mul(2_654_435_761).wrapping_add(slot as u32);
        page.write(at, &(v | 0x8000_0000).to_le_bytes()).unwrap();
        page.write(at + 4, &0xfff0u16.to_le_bytes()).unwrap();
        page.write(
            at + 6,
            &(NETTXF_MORE_DATA | NETTXF_EXTRA_INFO).to_le_bytes(),
        )
        .unwrap();
        page.write(at + 8, &(0x8000 | v as u16).to_le_bytes())
            .unwrap();
        page.write(at + 10, &0xffffu16.to_le_bytes()).unwrap();
    }
}

/// The frontend rewrites every TX slot (grants, offsets, flags, ids, sizes) after the
/// backend took them and before it is done with them — right after its first grant copy,
/// when it has read the packets' heads and has yet to route, copy the rest and answer. The
/// backend must act on its own copies: every slot answered once, OKAY, with its own id;
/// the receiver gets exactly the frames sent; nothing is disconnected.
#[test]
fn item01_requests_rewritten_after_production() {
    let (mut h, mut a, mut b, mut c) = setup(CMD);
    h.settle();
    let ring_page = a.tx_ring().mem().page().clone();
    let frames: Vec<Vec<u8>> = (0..4u32)
        .map(|i| udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(3000, 40 + i)))
        .collect();
    let before: BTreeSet<u16> = a.tx_pages.keys().copied().collect();
    for f in &frames {
        a.queue_frame(
            f,
            &SendOpts {
                slot_len: 1000,
                ..Default::default()
            },
        );
    }
    let mut slot_ids: Vec<u16> = a
        .tx_pages
        .keys()
        .copied()
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(slot_ids.len(), 4 * 4, "4 frames of 4 slots");
    let rewrites = Arc::new(AtomicUsize::new(0));
    {
        let rewrites = rewrites.clone();
        h.world.after_each_copy(move || {
            // Once: later copies may follow the responses, which share the slots.
            if rewrites.fetch_add(1, Ordering::Relaxed) == 0 {
                garble_tx_slots(&ring_page, 7);
            }
        });
    }
    a.push_tx();
    h.settle();
    h.world.clear_copy_hooks();
    assert!(
        rewrites.load(Ordering::Relaxed) > 0,
        "the ring was rewritten"
    );
    assert!(h.connected(&a), "a stays connected: {:?}", h.error_node(&a));
    a.poll();
    let mut answered: Vec<u16> = a.tx_done.iter().map(|&(id, _)| id).collect();
    answered.sort_unstable();
    slot_ids.sort_unstable();
    assert_eq!(
        answered, slot_ids,
        "every slot answered once, with its own id"
    );
    assert!(
        a.tx_done.iter().all(|&(_, s)| s == NETIF_RSP_OKAY),
        "every slot OKAY: {:?}",
        a.tx_done
    );
    let got: Vec<Vec<u8>> = b.take_received().into_iter().map(|r| r.data).collect();
    assert_eq!(got, frames, "b got exactly the frames a sent");
    healthy(&mut h, &mut b, &mut c, 1000);
}

/// The same attack as a race: a thread rewrites a's TX slots with garbage all the time
/// while a sends. Which slots the backend copies before or after a rewrite is chance, so a
/// may get error responses or be disconnected for a broken chain; either way every slot
/// it produced before a disconnect is answered once, the healthy guests keep working, and
/// what b receives from a is a's (source MAC) and no longer than a's packets.
#[test]
fn item01_racing_rewrites_cost_only_the_attacker() {
    let (mut h, mut a, mut b, mut c) = setup(CMD);
    let ring_page = a.tx_ring().mem().page().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                // Rewrite sizes, flags and grants of every slot with garbage.
                for slot in 0..256usize {
                    let at = 64 + slot * 12;
                    let v = i.wrapping_mul(2_654_435_761).wrapping_add(slot as u32);
                    let _ = ring_page.write(at + 10, &(v as u16).to_le_bytes());
                    if i % 3 == 0 {
                        let _ = ring_page.write(at + 6, &((v >> 16) as u16 & 0xf).to_le_bytes());
                    }
                    if i % 7 == 0 {
                        let _ = ring_page.write(at, &v.to_le_bytes());
                    }
                }
                i = i.wrapping_add(1);
            }
        })
    };
    let mut from_a = Vec::new();
    let mut slots = 0;
    for round in 0..50u32 {
        if !h.connected(&a) {
            break;
        }
        for i in 0..4 {
            let f = udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(3000, round * 4 + i));
            slots += f.len().div_ceil(1000);
            a.queue_frame(
                &f,
                &SendOpts {
                    slot_len: 1000,
                    ..Default::default()
                },
            );
        }
        a.push_tx();
        h.settle();
        a.poll();
        // What b got from a this round, before `healthy` drains b's receptions.
        from_a.extend(b.take_received());
        healthy(&mut h, &mut b, &mut c, round);
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    if h.connected(&a) {
        // Every slot was answered exactly once, whatever the frontend wrote meanwhile.
        assert_eq!(a.tx_done.len(), slots);
    } else {
        let reason = failed_with(&h, &a);
        assert!(reason.contains("tx"), "{reason}");
    }
    healthy(&mut h, &mut b, &mut c, 1000);
    for r in &from_a {
        assert!(r.data.len() <= 3042, "{} bytes", r.data.len());
        assert_eq!(r.data[6..12], mac(5), "a's source MAC");
    }
}

// --- 3: bogus ring indices ----------------------------------------------------------------

#[test]
fn item03_req_prod_far_ahead() {
    let (mut h, a, mut b, mut c) = setup(CMD);
    let ring = a.tx_ring();
    ring.store_req_prod(ring.load_req_prod().wrapping_add(100_000));
    a.notify_tx();
    h.settle();
    let reason = failed_with(&h, &a);
    assert!(reason.contains("tx ring"), "{reason}");
    healthy(&mut h, &mut b, &mut c, 1);
}

#[test]
fn item03_req_prod_moves_backwards() {
    let (mut h, mut a, mut b, mut c) = setup(CMD);
    a.send(
        &udp_frame(mac(6), mac(5), ip(5), ip(6), b"one"),
        &SendOpts::default(),
    );
    h.settle();
    let ring = a.tx_ring();
    ring.store_req_prod(ring.load_req_prod().wrapping_sub(1));
    a.notify_tx();
    h.settle();
    failed_with(&h, &a);
    healthy(&mut h, &mut b, &mut c, 2);
}

#[test]
fn item03_rx_ring_req_prod_bogus() {
    let (mut h, a, mut b, mut c) = setup(CMD);
    let ring = a.rx_ring();
    ring.store_req_prod(ring.load_req_prod().wrapping_add(u32::MAX / 2));
    // Something for a, so the backend looks at its RX ring.
    b.send(
        &udp_frame(mac(5), mac(6), ip(6), ip(5), b"to a"),
        &SendOpts::default(),
    );
    h.settle();
    let reason = failed_with(&h, &a);
    assert!(reason.contains("rx ring"), "{reason}");
    healthy(&mut h, &mut b, &mut c, 3);
}

// --- 6: event storm (XSA-332) ----------------------------------------------------------------

/// After `SPURIOUS_LIMIT` empty notifications in a row on each of a's split ports, both are
/// held back: masked, so they no longer wake the driver domain. A frame a sends during the
/// hold leaves when the hold ends (and ends the storm accounting), the other guests are served
/// throughout, and the hold is counted in `data/status/event-holds`.
#[test]
fn event_storm_is_held_back() {
    let (mut h, mut a, mut b, mut c) = setup(&format!("{CMD} netback.status_ms=1"));
    let tx = a.evt_tx.as_ref().map(|c| c.port()).unwrap();
    let rx = a.evt_rx.as_ref().map(|c| c.port()).unwrap();
    let (dd_tx, dd_rx) = (dd_end(&h, 5, tx), dd_end(&h, 5, rx));
    for i in 0..SPURIOUS_LIMIT {
        assert!(!h.world.port_masked(DD, dd_tx), "held after {i}");
        a.dom.notify_raw(tx).unwrap();
        a.dom.notify_raw(rx).unwrap();
        h.pass();
    }
    assert!(h.world.port_masked(DD, dd_tx) && h.world.port_masked(DD, dd_rx));
    for _ in 0..1000 {
        a.dom.notify_raw(tx).unwrap();
        a.dom.notify_raw(rx).unwrap();
    }
    assert!(
        !h.exec.platform().has_wakeup(),
        "a held port woke the domain"
    );
    healthy(&mut h, &mut b, &mut c, 40);
    let frame = udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(300, 41));
    a.send(&frame, &SendOpts::default());
    h.advance(HOLD_MAX_NS);
    h.advance(HOLD_MAX_NS);
    assert!(b.take_received().iter().any(|r| r.data == frame));
    assert!(!h.world.port_masked(DD, dd_tx) && !h.world.port_masked(DD, dd_rx));
    let holds = h.read(&format!("/local/domain/{DD}/data/status/event-holds"));
    assert!(
        holds
            .as_ref()
            .is_some_and(|v| v.parse::<u64>().unwrap() >= 2),
        "{holds:?}"
    );
    assert!(h.connected(&a), "a storm alone is not an error");
}

/// A frontend without split event channels notifies its one port for RX buffers it posts:
/// that is work, not a storm, however often it happens (here after every packet it takes).
#[test]
fn buffers_posted_one_by_one_are_not_a_storm() {
    let (mut h, _a, mut b, mut c) = setup(CMD);
    let port = c.evt_tx.as_ref().map(|ch| ch.port()).unwrap();
    let dd = dd_end(&h, 7, port);
    for i in 0..50 {
        let frame = udp_frame(mac(7), mac(6), ip(6), ip(7), &pattern(200, i));
        b.send(&frame, &SendOpts::default());
        h.pass();
        assert_eq!(c.take_received().len(), 1, "round {i}");
        c.notify_rx();
        h.pass();
        assert!(!h.world.port_masked(DD, dd), "held after {i} postings");
    }
}

#[test]
fn item06_event_storm() {
    let (mut h, a, mut b, mut c) = setup(CMD);
    let port = a.evt_tx.as_ref().map(|c| c.port()).unwrap();
    let rx_port = a.evt_rx.as_ref().map(|c| c.port()).unwrap();
    let dd_ports_before = h.world.open_ports(DD);
    let frame = udp_frame(mac(7), mac(6), ip(6), ip(7), &pattern(1000, 1));
    for round in 0..200 {
        for _ in 0..500 {
            a.dom.notify_raw(port).unwrap();
            a.dom.notify_raw(rx_port).unwrap();
        }
        if round % 20 == 0 {
            // b's packet reaches c within one pass despite the storm.
            b.send(&frame, &SendOpts::default());
            h.pass();
            assert!(
                c.take_received().iter().any(|r| r.data == frame),
                "delivered in one pass during the storm (round {round})"
            );
        } else {
            h.pass();
        }
    }
    h.settle();
    healthy(&mut h, &mut b, &mut c, 4);
    assert!(h.connected(&a), "a storm alone is not an error");
    assert_eq!(h.world.open_ports(DD), dd_ports_before);
    // We never flooded a back (XSA-391): nothing to answer, nothing sent.
    let dd_port = h.world.port_peer(5, port).unwrap().1;
    assert_eq!(h.world.notifications_sent(DD, dd_port), 0);
}

// --- 9: bad grant references (XSA-365) -------------------------------------------------------

#[test]
fn item09_bad_tx_grants() {
    let (mut h, mut a, mut b, mut c) = setup(CMD);
    let f = udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(200, 1));
    // Never granted.
    a.put_raw(req(9999, 0, 0, 1, f.len() as u16));
    // Out of range.
    a.put_raw(req(u32::MAX, 0, 0, 2, f.len() as u16));
    // c's grant reference number: meaningless in a's table.
    let cg = c.data_page(200, 0, &f);
    a.put_raw(req(cg + 5000, 0, 0, 3, f.len() as u16));
    // Granted, then revoked before the backend gets to it (revoked last, so that no later
    // grant reuses its reference).
    let g = a.data_page(4, 0, &f);
    a.put_raw(req(g, 0, 0, 4, f.len() as u16));
    // Second slot of a chain bad, first good.
    let g1 = a.data_page(5, 0, &f[..100]);
    a.put_raw(req(g1, 0, NETTXF_MORE_DATA, 5, f.len() as u16));
    a.put_raw(req(8888, 0, 0, 6, (f.len() - 100) as u16));
    a.dom.revoke(g);
    a.push_tx();
    h.settle();
    a.poll();
    let statuses: Vec<(u16, i16)> = a.tx_done.clone();
    assert_eq!(statuses.len(), 6);
    assert!(
        statuses.iter().all(|&(_, s)| s == NETIF_RSP_ERROR),
        "{statuses:?}"
    );
    // The chain whose second grant is bad went for a direct copy: b's buffers taken for it
    // are answered as errors (a dropped frame, like a corrupt one on a wire), no data.
    assert!(b
        .take_received()
        .iter()
        .all(|r| r.error && r.data.is_empty()));
    assert_eq!(h.counters(&a).in_errors, 5);
    // a itself still works.
    a.send(&f, &SendOpts::default());
    h.settle();
    assert_eq!(b.take_received()[0].data, f);
    healthy(&mut h, &mut b, &mut c, 5);
}

#[test]
fn item09_bad_rx_grants() {
    let mut h = Harness::new(CMD);
    let mut o = FrontOpts::linux(5);
    o.rx_buffers = 0;
    let mut a = h.guest(5, o);
    a.repost = false;
    let mut b = h.guest(6, FrontOpts::linux(6));
    let mut c = h.guest(7, FrontOpts::plain(7));
    a.post_rx_gref(77_777);
    a.post_rx_gref(u32::MAX);
    a.post_rx(1);
    for i in 0..3 {
        b.send(
            &udp_frame(mac(5), mac(6), ip(6), ip(5), &pattern(300, i)),
            &SendOpts::default(),
        );
    }
    h.settle();
    let got = a.take_received();
    assert_eq!(got.len(), 3);
    assert!(
        got[0].error && got[1].error,
        "unwritable buffers answered with errors"
    );
    assert!(!got[2].error);
    assert_eq!(h.counters(&a).out_errors, 2);
    assert!(h.connected(&a));
    healthy(&mut h, &mut b, &mut c, 6);
}

#[test]
fn item09_bad_ring_refs_at_connect() {
    let mut h = Harness::new(CMD);
    let mut b = h.guest(6, FrontOpts::linux(6));
    let mut c = h.guest(7, FrontOpts::plain(7));
    let maps = h.world.live_mappings(DD);
    let mut a = TestFront::create(&h.world, 5, 0, &FrontOpts::linux(5));
    h.settle();
    let mut keys = a.setup_rings(&FrontOpts::linux(5));
    for (k, v) in keys.iter_mut() {
        if k == "rx-ring-ref" {
            *v = "4000".into(); // tx-ring-ref good, rx-ring-ref not granted
        }
    }
    a.publish(&keys);
    h.settle();
    let reason = failed_with(&h, &a);
    assert!(reason.contains("rx-ring-ref 4000"), "{reason}");
    assert_eq!(
        h.world.live_mappings(DD),
        maps,
        "the good half was unmapped"
    );
    healthy(&mut h, &mut b, &mut c, 7);
}

// --- 10: malformed packets (XSA-374) ---------------------------------------------------------

#[test]
fn item10_malformed_packets() {
    let (mut h, mut a, mut b, mut c) = setup(CMD);
    let f = udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(500, 2));
    let g = a.data_page(100, 0, &f);
    let mut id = 0u16;
    let mut next = || {
        id += 1;
        id
    };
    // Zero length, runt.
    a.put_raw(req(g, 0, 0, next(), 0));
    a.put_raw(req(g, 0, 0, next(), 13));
    // Crosses the page.
    a.put_raw(req(g, 4000, 0, next(), 200));
    // Later slot larger than the rest of the packet (an "oversized" chain).
    a.put_raw(req(g, 0, NETTXF_MORE_DATA, next(), 100));
    a.put_raw(req(g, 0, 0, next(), 4000));
    // 19 data slots.
    a.put_raw(req(g, 0, NETTXF_MORE_DATA, next(), 19 * 10));
    for i in 1..19 {
        let flags = if i < 18 { NETTXF_MORE_DATA } else { 0 };
        a.put_raw(req(g, 0, flags, next(), 10));
    }
    // Unknown extra-info type, then GSO with size 0, then GSO of unknown type.
    for extra in [
        [9u8, 0, 0, 0, 0, 0, 0, 0],
        [1, 0, 0, 0, 1, 0, 0, 0],
        [1, 0, 0xa8, 5, 7, 0, 0, 0],
    ] {
        a.put_raw(req(g, 0, NETTXF_EXTRA_INFO, next(), f.len() as u16));
        let mut raw = [0u8; 12];
        raw[..8].copy_from_slice(&extra);
        a.put_raw(raw);
    }
    // GSO claims on a UDP packet.
    a.put_raw(req(g, 0, NETTXF_EXTRA_INFO, next(), f.len() as u16));
    a.put_raw(raw_extra(NetifExtraInfo::gso(1448, 1, 0)));
    a.push_tx();
    h.settle();
    a.poll();
    let st = a.statuses();
    let errors = st.iter().filter(|&&s| s == NETIF_RSP_ERROR).count();
    let nulls = st.iter().filter(|&&s| s == NETIF_RSP_NULL).count();
    assert_eq!(nulls, 4, "one NULL per extra-info slot");
    assert_eq!(
        errors,
        st.len() - 4 - 1,
        "all but the GSO-on-UDP packet are errors: {st:?}"
    );
    assert_eq!(h.counters(&a).in_errors, 9);
    assert!(b.take_received().is_empty());
    assert!(
        h.connected(&a),
        "malformed packets cost only error responses"
    );
    // a still sends.
    a.send(&f, &SendOpts::default());
    h.settle();
    assert_eq!(b.take_received()[0].data, f);
    healthy(&mut h, &mut b, &mut c, 8);
}

#[test]
fn item10_chain_running_past_the_produced_requests() {
    let (mut h, mut a, mut b, mut c) = setup(CMD);
    let g = a.data_page(1, 0, &[0u8; 100]);
    a.put_raw(req(g, 0, NETTXF_MORE_DATA, 1, 100));
    a.put_raw(req(g, 0, NETTXF_MORE_DATA, 2, 50));
    a.push_tx();
    h.settle();
    let reason = failed_with(&h, &a);
    assert!(reason.contains("past the produced requests"), "{reason}");
    healthy(&mut h, &mut b, &mut c, 9);
    // The frontend starts over and is served again.
    a.close();
    h.settle();
    a.write("state", "1");
    h.settle();
    a.connect(&FrontOpts::linux(5));
    h.settle();
    assert!(h.connected(&a));
    let f = udp_frame(mac(6), mac(5), ip(5), ip(6), b"back again");
    a.send(&f, &SendOpts::default());
    h.settle();
    assert_eq!(b.take_received()[0].data, f);
}

// --- 11: RX backlog (CVE-2021-28714/28715) ---------------------------------------------------

#[test]
fn item11_guest_stops_consuming_rx() {
    let (mut h, mut a, mut b, mut c) = setup("netback.uplink=off netback.queue_kb=256");
    a.repost = false;
    let limit = h.netdd.dp.borrow().switch.limits().queue_bytes;
    assert_eq!(limit, 256 * 1024);
    let mut sent = 0;
    for round in 0..40u32 {
        for i in 0..50 {
            b.queue_frame(
                &udp_frame(mac(5), mac(6), ip(6), ip(5), &pattern(1400, round * 50 + i)),
                &SendOpts::default(),
            );
            sent += 1;
        }
        b.push_tx();
        h.settle();
        // What b sends to a first waits for room in a's queue (back-pressure); once it has
        // waited its longest, a counts as stalled and what is for a is dropped at once.
        h.advance(netback::datapath::PARK_MAX_NS);
        h.settle();
        b.poll();
        let dp = h.netdd.dp.borrow();
        let port = h
            .netdd
            .backend
            .borrow()
            .device(5, 0)
            .and_then(|d| d.port())
            .unwrap();
        assert!(dp.switch.queued_bytes(port) <= limit, "bounded queue");
        assert!(dp.switch.used_bytes() <= dp.switch.limits().total_bytes);
        drop(dp);
        healthy(&mut h, &mut b, &mut c, round);
    }
    let counters = h.counters(&a);
    // a had 256 buffers: the rest was queued up to the limit, then dropped.
    assert!(counters.out_dropped > 1000, "{counters:?}");
    assert_eq!(counters.out_packets as usize, 256);
    assert_eq!(
        counters.out_dropped as usize
            + counters.out_packets as usize
            + h.netdd.dp.borrow().switch.queued(h.counters_port(&a)),
        sent
    );
    assert!(h.connected(&a));
}

// --- 12: headers split across fragments (XSA-423) --------------------------------------------

#[test]
fn item12_headers_split_across_tiny_slots() {
    let (mut h, mut a, mut b, mut c) = setup(CMD);
    let f = tcp_frame(mac(7), mac(5), ip(5), ip(7), &pattern(2000, 3), true);
    // 17 slots: the 54 header bytes in 16 slots of 1-6 bytes, the payload in the last.
    let cuts = [1usize, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 3, 3, 3, 3];
    let mut pieces = Vec::new();
    let mut at = 0;
    for n in cuts {
        pieces.push(&f[at..at + n]);
        at += n;
    }
    pieces.push(&f[at..]);
    let n = pieces.len();
    for (i, p) in pieces.iter().enumerate() {
        let g = a.data_page(i as u16, 17, p);
        let size = if i == 0 { f.len() } else { p.len() } as u16;
        let mut flags = if i + 1 < n { NETTXF_MORE_DATA } else { 0 };
        if i == 0 {
            flags |= xen_abi::netif::NETTXF_CSUM_BLANK | xen_abi::netif::NETTXF_DATA_VALIDATED;
        }
        a.put_raw(req(g, 17, flags, i as u16, size));
    }
    a.push_tx();
    h.settle();
    a.poll();
    assert!(a.statuses().iter().all(|&s| s == NETIF_RSP_OKAY));
    // c does not offload checksums: the backend parsed the scattered headers to finish it.
    let got = c.take_received();
    assert_eq!(got.len(), 1);
    assert!(l4_ok(&got[0].data));
    assert_eq!(got[0].data[54..], f[54..]);
    healthy(&mut h, &mut b, &mut c, 10);
}

// --- 13: small packet in max slots (XSA-432) -------------------------------------------------

#[test]
fn item13_small_packet_in_max_slots() {
    let (mut h, mut a, mut b, mut c) = setup(CMD);
    let f = udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(18, 4));
    assert_eq!(f.len(), 60);
    a.send(
        &f,
        &SendOpts {
            slot_len: 4,
            offset: 4092,
            ..Default::default()
        },
    );
    h.settle();
    a.poll();
    assert_eq!(a.tx_done.len(), 15);
    let f = udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(18, 4));
    // Exactly 18 slots: 17 of 3 bytes and the first holding the rest.
    let first = 60 - 17 * 3;
    let g = a.data_page(50, 0, &f[..first]);
    a.put_raw(req(g, 0, NETTXF_MORE_DATA, 50, 60));
    for i in 0..17 {
        let at = first + i * 3;
        let g = a.data_page(51 + i as u16, 4093, &f[at..at + 3]);
        let flags = if i < 16 { NETTXF_MORE_DATA } else { 0 };
        a.put_raw(req(g, 4093, flags, 51 + i as u16, 3));
    }
    a.push_tx();
    h.settle();
    a.poll();
    let got = b.take_received();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| r.data == f));
    assert!(a.statuses().iter().all(|&s| s == NETIF_RSP_OKAY));
    healthy(&mut h, &mut b, &mut c, 11);
}

// --- 14: trusting frontend-written configuration (XSA-178) -----------------------------------

#[test]
fn item14_absurd_frontend_configuration() {
    let mut h = Harness::new(CMD);
    let mut b = h.guest(6, FrontOpts::linux(6));
    let mut c = h.guest(7, FrontOpts::plain(7));
    let maps = h.world.live_mappings(DD);
    let ports = h.world.open_ports(DD);
    let long = "9".repeat(4000);
    let cases: Vec<(&str, String, &str)> = vec![
        ("tx-ring-ref", "abc".into(), "tx-ring-ref"),
        ("tx-ring-ref", "99999999999".into(), "tx-ring-ref"),
        ("rx-ring-ref", long.clone(), "rx-ring-ref"),
        ("rx-ring-ref", "-1".into(), "rx-ring-ref"),
        ("event-channel-tx", "4294967296".into(), "event-channel-tx"),
        ("event-channel-rx", "65535".into(), "event-channel-rx"),
        (
            "multi-queue-num-queues",
            "8".into(),
            "multi-queue-num-queues",
        ),
        (
            "multi-queue-num-queues",
            "0".into(),
            "multi-queue-num-queues",
        ),
        ("request-rx-copy", "0".into(), "request-rx-copy"),
        ("feature-rx-notify", "".into(), "feature-rx-notify"),
        ("feature-sg", "2".into(), "feature-sg"),
        ("feature-gso-tcpv4", " 1".into(), "feature-gso-tcpv4"),
        (
            "feature-no-csum-offload",
            "yes".into(),
            "feature-no-csum-offload",
        ),
        ("tx-ring-ref", "7".into(), "tx-ring-ref 7"),
    ];
    for (i, (key, value, expect)) in cases.iter().enumerate() {
        let domid = 20 + i as u16;
        let mut a = TestFront::create(&h.world, domid, 0, &FrontOpts::linux(20 + i as u8));
        h.settle();
        let mut keys = a.setup_rings(&FrontOpts::linux(20 + i as u8));
        keys.retain(|(k, _)| k != key);
        keys.push((key.to_string(), value.clone()));
        a.publish(&keys);
        h.settle();
        let reason = failed_with(&h, &a);
        assert!(reason.contains(expect), "{key}={value:.20}: {reason}");
        healthy(&mut h, &mut b, &mut c, 100 + i as u32);
        // The frontend gives up; nothing it made us map or bind survives.
        a.close();
        h.settle();
        assert_eq!(h.world.live_mappings(DD), maps, "{key}");
        assert_eq!(h.world.open_ports(DD), ports, "{key}");
        h.world.destroy_domain(domid);
        h.settle();
    }
    // Garbage in the backend directory's toolstack keys is refused at probe.
    let bad = TestFront::create(
        &h.world,
        60,
        0,
        &FrontOpts {
            ip: Some("10.0.0.300".into()),
            ..FrontOpts::linux(60)
        },
    );
    h.settle();
    let reason = h.error_node(&bad).expect("probe failure recorded");
    assert!(reason.contains("backend ip"), "{reason}");
    healthy(&mut h, &mut b, &mut c, 200);
}

// --- anti-spoofing on the real path ------------------------------------------------------

/// A driver domain with guest `a` (5, IP 10.0.0.5 configured: its source IP is checked) and
/// guest `b` (6).
fn with_ip_checks() -> (Harness, TestFront, TestFront) {
    let mut h = Harness::new(CMD);
    let a = h.guest(
        5,
        FrontOpts {
            ip: Some("10.0.0.5".into()),
            ..FrontOpts::linux(5)
        },
    );
    let b = h.guest(6, FrontOpts::linux(6));
    (h, a, b)
}

#[test]
fn spoofed_sources_are_dropped() {
    let (mut h, mut a, mut b) = with_ip_checks();
    // Someone else's MAC; someone else's IP; then a legitimate one.
    a.send(
        &udp_frame(mac(6), mac(9), ip(5), ip(6), b"mac"),
        &SendOpts::default(),
    );
    a.send(
        &udp_frame(mac(6), mac(5), ip(9), ip(6), b"ip"),
        &SendOpts::default(),
    );
    let good = udp_frame(mac(6), mac(5), ip(5), ip(6), b"ok");
    a.send(&good, &SendOpts::default());
    h.settle();
    let got = b.take_received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, good);
    assert_eq!(h.counters(&a).in_spoofed, 2);
    // GSO super-segments are checked too.
    let big = tcp_frame(mac(6), mac(5), ip(9), ip(6), &pattern(10000, 1), true);
    a.send(
        &big,
        &SendOpts {
            csum_blank: true,
            gso: Some(Gso {
                kind: GsoKind::TcpV4,
                mss: 1448,
            }),
            ..Default::default()
        },
    );
    h.settle();
    assert!(b.take_received().is_empty());
    assert_eq!(h.counters(&a).in_spoofed, 3);
}

#[test]
fn sender_slot_layouts_never_reach_receivers_as_runts() {
    let (mut h, mut a, mut b, mut c) = setup(CMD);
    // A 60-byte frame in 15 slots of 4 bytes: b must get the headers in its first slot.
    let f = udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(18, 9));
    a.send(
        &f,
        &SendOpts {
            slot_len: 4,
            ..Default::default()
        },
    );
    h.settle();
    // A Linux-like GSO layout (headers alone in the first slot) goes straight through.
    let g = tcp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(20_000, 2), true);
    let g1 = a.data_page(300, 0, &g[..54]);
    let flags = xen_abi::netif::NETTXF_CSUM_BLANK
        | xen_abi::netif::NETTXF_DATA_VALIDATED
        | NETTXF_MORE_DATA
        | NETTXF_EXTRA_INFO;
    a.put_raw(req(g1, 0, flags, 300, g.len() as u16));
    a.put_raw(raw_extra(NetifExtraInfo::gso(1448, 1, 0)));
    let rest: Vec<&[u8]> = g[54..].chunks(4096).collect();
    for (i, chunk) in rest.iter().enumerate() {
        let gi = a.data_page(301 + i as u16, 0, chunk);
        let more = if i + 1 < rest.len() {
            NETTXF_MORE_DATA
        } else {
            0
        };
        a.put_raw(req(gi, 0, more, 301 + i as u16, chunk.len() as u16));
    }
    a.push_tx();
    h.settle();
    let got = b.take_received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].data, f);
    assert_eq!(got[0].slot_lens, vec![60], "re-laid into one slot");
    assert_eq!(got[1].data, g);
    assert_eq!(got[1].slot_lens[0], 54, "direct: the sender's layout");
    assert_eq!(h.netdd.dp.borrow().stats().direct, 1);
    healthy(&mut h, &mut b, &mut c, 12);
}

#[test]
fn empty_first_slot_is_still_answered() {
    let (mut h, mut a, mut b, mut c) = setup(CMD);
    let f = udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(100, 3));
    let g0 = a.data_page(1, 0, &[]);
    let g1 = a.data_page(2, 0, &f);
    a.put_raw(req(g0, 0, NETTXF_MORE_DATA, 1, f.len() as u16));
    a.put_raw(req(g1, 0, 0, 2, f.len() as u16));
    // And a first slot too short for the headers.
    let g2 = a.data_page(3, 0, &f[..10]);
    let g3 = a.data_page(4, 0, &f[10..]);
    a.put_raw(req(g2, 0, NETTXF_MORE_DATA, 3, f.len() as u16));
    a.put_raw(req(g3, 0, 0, 4, (f.len() - 10) as u16));
    a.push_tx();
    h.settle();
    a.poll();
    assert_eq!(a.statuses(), vec![NETIF_RSP_OKAY; 4]);
    let got = b.take_received();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| r.data == f && r.slot_lens[0] >= 42));
    healthy(&mut h, &mut b, &mut c, 13);
}

// --- the header a receiver gets is the header that was checked --------------------------------

/// The sender rewrites its page between the backend's header copy (which anti-spoofing and
/// forwarding examine) and the body copy on the direct guest-to-guest path: the receiver
/// must still get the checked header, not a forged source MAC and IP.
#[test]
fn headers_rewritten_between_the_copies_do_not_reach_the_receiver() {
    let (mut h, mut a, mut b) = with_ip_checks();
    h.settle();
    let before = h.counters(&a).in_spoofed;
    let good = udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(1200, 7));
    let id = a.send(&good, &SendOpts::default());
    let page = a.tx_pages[&id][0].page().clone();
    let forged_at = Arc::new(AtomicBool::new(false));
    {
        let forged_at = forged_at.clone();
        h.world.after_each_copy(move || {
            // Forge source MAC (bytes 6..12) and source IP (26..30) after the first copy.
            page.write(6, &mac(9)).unwrap();
            page.write(26, &ip(9)).unwrap();
            forged_at.store(true, Ordering::Relaxed);
        });
    }
    h.settle();
    h.world.clear_copy_hooks();
    assert!(forged_at.load(Ordering::Relaxed), "the page was rewritten");
    let got = b.take_received();
    assert_eq!(got.len(), 1, "b got the packet once");
    assert_eq!(got[0].data[6..12], mac(5), "source MAC as checked");
    assert_eq!(got[0].data[26..30], ip(5), "source IP as checked");
    assert_eq!(
        got[0].data, good,
        "b got exactly what a sent before forging"
    );
    assert_eq!(
        h.counters(&a).in_spoofed,
        before,
        "the checked header was clean"
    );
    a.poll();
    assert!(a
        .tx_done
        .iter()
        .any(|&(i, s)| i == id && s == NETIF_RSP_OKAY));
}

// --- 15: the backend flooding the frontend (XSA-391) ----------------------------------------

/// The driver domain's end of a guest's event channel `port`.
fn dd_end(h: &Harness, domid: u16, port: u32) -> u32 {
    h.world.port_peer(domid, port).unwrap().1
}

/// Notifications the driver domain sent to a's TX channel and b's RX channel so far.
fn sent_to(h: &Harness, a_tx: u32, b_rx: u32) -> (u64, u64) {
    (
        h.world.notifications_sent(DD, a_tx),
        h.world.notifications_sent(DD, b_rx),
    )
}

/// The backend's own notifications are bounded by what the frontends ask for. a keeps the
/// backend busy — rounds of 4 x tx_batch packets to b, each round taken and delivered over
/// several passes — and both re-arm (`rsp_event`) after consuming a round: exactly one
/// notification per round on a's TX channel and one on b's RX channel, not one per packet
/// or per pass. Then both point `rsp_event` far ahead before each round (they poll and
/// want none): no notification at all, and everything still arrives.
#[test]
fn item15_backend_notifications_bounded() {
    let batch = 16u32;
    let (mut h, mut a, mut b, mut c) = setup(&format!("{CMD} netback.tx_batch={batch}"));
    h.settle();
    a.poll();
    b.take_received();
    let a_tx = dd_end(&h, 5, a.evt_tx.as_ref().unwrap().port());
    let b_rx = dd_end(&h, 6, b.evt_rx.as_ref().unwrap().port());
    let per_round = 4 * batch;
    let round = |h: &mut Harness, a: &mut TestFront, b: &mut TestFront, r: u32| {
        let frames: Vec<Vec<u8>> = (0..per_round)
            .map(|i| udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(200, r * 1000 + i)))
            .collect();
        let done = a.tx_done.len();
        for f in &frames {
            a.queue_frame(f, &SendOpts::default());
        }
        a.push_tx();
        h.settle();
        a.poll();
        assert_eq!(
            a.tx_done.len() - done,
            frames.len(),
            "round {r}: all answered"
        );
        let got: Vec<Vec<u8>> = b.take_received().into_iter().map(|p| p.data).collect();
        assert_eq!(got, frames, "round {r}: b got every packet");
    };
    let rounds = 10;
    let before = sent_to(&h, a_tx, b_rx);
    for r in 0..rounds {
        round(&mut h, &mut a, &mut b, r);
    }
    let after = sent_to(&h, a_tx, b_rx);
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (u64::from(rounds), u64::from(rounds)),
        "one notification per round on a's TX and b's RX channels"
    );

    let before = after;
    for r in 0..rounds {
        for ring in [a.tx_ring(), b.rx_ring()] {
            ring.store_rsp_event(ring.load_rsp_prod().wrapping_add(0x4000_0000));
        }
        round(&mut h, &mut a, &mut b, 100 + r);
    }
    assert_eq!(
        sent_to(&h, a_tx, b_rx),
        before,
        "none when rsp_event says the frontends do not want one"
    );
    assert!(h.connected(&a) && h.connected(&b));
    healthy(&mut h, &mut b, &mut c, 2000);
}
