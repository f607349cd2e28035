//! The netback driver domain against well-behaved netfronts on the host platform: the
//! handshake, TX and RX in every feature combination, offloads, counters, teardown.

mod common;

use common::*;
use minios::xenbus::backend::state_limit::STATE_REFILL_NS;
use netback::wire::{Gso, GsoKind};
use xen_abi::netif::{NETIF_RSP_NULL, NETIF_RSP_OKAY, XEN_NETIF_GSO_TYPE_TCPV4};

const CMD: &str = "netback.uplink=off netback.stats_ms=1000";

#[test]
fn handshake_publishes_linux_features() {
    let mut h = Harness::new(CMD);
    let f = TestFront::create(&h.world, 5, 0, &FrontOpts::linux(5));
    h.settle();
    let be = f.spec.backend_path();
    for (k, v) in [
        ("state", "2"),
        ("feature-sg", "1"),
        ("feature-gso-tcpv4", "1"),
        ("feature-gso-tcpv6", "1"),
        ("feature-ipv6-csum-offload", "1"),
        ("feature-rx-copy", "1"),
        ("feature-rx-flip", "0"),
        ("feature-split-event-channels", "1"),
        ("multi-queue-max-queues", "1"),
        ("hotplug-status", "connected"),
    ] {
        assert_eq!(h.read(&format!("{be}/{k}")).as_deref(), Some(v), "{k}");
    }
    assert_eq!(
        h.read(&format!("/local/domain/{DD}/data/ready")).as_deref(),
        Some("1")
    );
}

#[test]
fn unicast_both_ways_in_every_feature_combination() {
    for (a_opts, b_opts) in [
        (FrontOpts::linux(5), FrontOpts::linux(6)),
        (FrontOpts::plain(5), FrontOpts::plain(6)),
        (FrontOpts::linux(5), FrontOpts::plain(6)),
    ] {
        let mut h = Harness::new(CMD);
        let mut a = h.guest(5, a_opts.clone());
        let mut b = h.guest(6, b_opts.clone());
        let ab = udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(1000, 1));
        let ba = udp_frame(mac(5), mac(6), ip(6), ip(5), &pattern(1400, 2));
        a.send(&ab, &SendOpts::default());
        b.send(&ba, &SendOpts::default());
        h.settle();
        let got_b = b.take_received();
        let got_a = a.take_received();
        assert_eq!(got_b.len(), 1, "{b_opts:?}");
        assert_eq!(got_b[0].data, ab);
        assert_eq!(got_a.len(), 1);
        assert_eq!(got_a[0].data, ba);
        assert_eq!(a.statuses(), vec![NETIF_RSP_OKAY]);
        assert_eq!(b.statuses(), vec![NETIF_RSP_OKAY]);
        let c = h.counters(&a);
        assert_eq!((c.in_packets, c.out_packets), (1, 1));
        assert_eq!(c.in_bytes, ab.len() as u64);
    }
}

#[test]
fn multi_slot_packets_and_many_in_flight() {
    let mut h = Harness::new(CMD);
    let mut a = h.guest(5, FrontOpts::linux(5));
    let mut b = h.guest(6, FrontOpts::linux(6));
    // 100 packets of 1..9 KiB split in 1000-byte slots at odd offsets.
    let mut sent = Vec::new();
    for i in 0..100u32 {
        let len = 1000 + (i as usize * 83) % 8000;
        let f = udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(len, i));
        a.queue_frame(
            &f,
            &SendOpts {
                slot_len: 1000,
                offset: 7 + (i as usize % 50),
                ..Default::default()
            },
        );
        sent.push(f);
        if i % 10 == 9 {
            a.push_tx();
            h.settle();
            a.poll();
            b.poll();
        }
    }
    h.settle();
    a.poll();
    let got: Vec<Vec<u8>> = b.take_received().into_iter().map(|r| r.data).collect();
    assert_eq!(got.len(), 100);
    assert_eq!(got, sent);
    assert!(a.statuses().iter().all(|&s| s == NETIF_RSP_OKAY));
    assert_eq!(h.counters(&a).in_errors, 0);
}

fn gso_frame(payload_len: usize) -> Vec<u8> {
    tcp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(payload_len, 9), true)
}

#[test]
fn gso_passes_through_to_a_gso_frontend() {
    let mut h = Harness::new(CMD);
    let mut a = h.guest(5, FrontOpts::linux(5));
    let mut b = h.guest(6, FrontOpts::linux(6));
    let f = gso_frame(60_000);
    let gso = Gso {
        kind: GsoKind::TcpV4,
        mss: 1448,
    };
    a.send(
        &f,
        &SendOpts {
            slot_len: 4096,
            csum_blank: true,
            gso: Some(gso),
            ..Default::default()
        },
    );
    h.settle();
    a.poll();
    let got = b.take_received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, f);
    assert!(got[0].csum_blank && got[0].data_validated);
    assert_eq!(got[0].slots, 15);
    let extra = got[0].gso.expect("GSO extra info");
    assert_eq!(
        (extra.gso_size(), extra.gso_type()),
        (1448, XEN_NETIF_GSO_TYPE_TCPV4)
    );
    // One OKAY per data slot and one NULL for the extra-info slot.
    let st = a.statuses();
    assert_eq!(st.iter().filter(|&&s| s == NETIF_RSP_NULL).count(), 1);
    assert_eq!(st.iter().filter(|&&s| s == NETIF_RSP_OKAY).count(), 15);
}

#[test]
fn gso_is_segmented_for_a_frontend_without_gso() {
    let mut h = Harness::new(CMD);
    let mut a = h.guest(5, FrontOpts::linux(5));
    let mut b = h.guest(6, FrontOpts::plain(6));
    let payload = pattern(20_000, 3);
    let f = tcp_frame(mac(6), mac(5), ip(5), ip(6), &payload, true);
    a.send(
        &f,
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
    let got = b.take_received();
    assert_eq!(got.len(), 14);
    let mut joined = Vec::new();
    for s in &got {
        assert!(s.data.len() <= 1514);
        assert!(l4_ok(&s.data), "segment checksum complete");
        assert!(!s.csum_blank && s.data_validated && s.gso.is_none());
        joined.extend_from_slice(&s.data[54..]);
    }
    assert_eq!(joined, payload);
}

#[test]
fn blank_checksums_are_completed_or_passed_on() {
    let mut h = Harness::new(CMD);
    let mut a = h.guest(5, FrontOpts::linux(5));
    let mut b = h.guest(6, FrontOpts::linux(6));
    let mut c = h.guest(7, FrontOpts::plain(7));
    let blank = |dst| tcp_frame(mac(dst), mac(5), ip(5), ip(dst), &pattern(900, 4), true);
    let o = SendOpts {
        csum_blank: true,
        ..Default::default()
    };
    a.send(&blank(6), &o);
    a.send(&blank(7), &o);
    h.settle();
    let to_b = b.take_received();
    assert!(
        to_b[0].csum_blank,
        "passed on blank to a frontend that offloads"
    );
    assert_eq!(to_b[0].data, blank(6));
    let to_c = c.take_received();
    assert!(!to_c[0].csum_blank && to_c[0].data_validated);
    assert!(
        l4_ok(&to_c[0].data),
        "completed for a frontend with no-csum-offload"
    );
}

#[test]
fn jumbo_frames_need_sg() {
    let mut h = Harness::new(CMD);
    let mut a = h.guest(5, FrontOpts::linux(5));
    let mut b = h.guest(6, FrontOpts::linux(6));
    let mut c = h.guest(7, FrontOpts::plain(7));
    let jumbo = |dst| udp_frame(mac(dst), mac(5), ip(5), ip(dst), &pattern(9000, 5));
    a.send(&jumbo(6), &SendOpts::default());
    a.send(&jumbo(7), &SendOpts::default());
    h.settle();
    let got = b.take_received();
    assert_eq!((got[0].slots, got[0].data.clone()), (3, jumbo(6)));
    assert!(c.take_received().is_empty());
    assert_eq!(h.counters(&c).out_dropped, 1);
    // The largest frame netif can describe.
    let max = udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(65535 - 42, 6));
    assert_eq!(max.len(), 65535);
    a.send(&max, &SendOpts::default());
    h.settle();
    let got = b.take_received();
    assert_eq!((got[0].slots, &got[0].data), (16, &max));
}

#[test]
fn broadcast_reaches_everyone_else() {
    let mut h = Harness::new(CMD);
    let mut a = h.guest(5, FrontOpts::linux(5));
    let mut b = h.guest(6, FrontOpts::linux(6));
    let mut c = h.guest(7, FrontOpts::plain(7));
    let f = udp_frame([0xff; 6], mac(5), ip(5), [10, 0, 0, 255], b"hello all");
    a.send(&f, &SendOpts::default());
    h.settle();
    assert_eq!(b.take_received().len(), 1);
    assert_eq!(c.take_received().len(), 1);
    assert!(a.take_received().is_empty());
}

#[test]
fn rx_waits_for_buffers_and_asks_to_be_notified() {
    let mut h = Harness::new(CMD);
    let mut a = h.guest(5, FrontOpts::linux(5));
    let mut o = FrontOpts::linux(6);
    o.rx_buffers = 0;
    let mut b = h.guest(6, o);
    b.repost = false;
    let f = udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(9000, 7));
    a.send(&f, &SendOpts::default());
    h.settle();
    assert!(b.take_received().is_empty());
    // The backend wants a notification when 3 buffers are there.
    assert_eq!(req_event(b.rx_ring()), 3);
    b.post_rx(2);
    h.settle();
    assert!(b.take_received().is_empty());
    b.post_rx(1);
    h.settle();
    assert_eq!(b.take_received()[0].data, f);
}

#[test]
fn counters_are_published_and_removed_with_the_vif() {
    let mut h = Harness::new(CMD);
    let mut a = h.guest(5, FrontOpts::linux(5));
    let mut b = h.guest(6, FrontOpts::linux(6));
    for i in 0..10 {
        a.send(
            &udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(100, i)),
            &SendOpts::default(),
        );
    }
    h.settle();
    b.poll();
    h.advance(1_100_000_000);
    assert_eq!(h.published(&a, "tx-packets"), Some(10));
    assert_eq!(h.published(&a, "tx-bytes"), Some(10 * 142));
    assert_eq!(h.published(&b, "rx-packets"), Some(10));
    assert_eq!(h.published(&b, "rx-dropped"), Some(0));
    h.world.remove_device(&a.spec);
    h.settle();
    a.close();
    h.settle();
    h.advance(2_000_000_000);
    assert!(
        !h.world.exists(&a.spec.backend_path()),
        "backend removed itself"
    );
    assert!(h
        .read(&format!("/local/domain/{DD}/data/vif/5/0/tx-packets"))
        .is_none());
}

#[test]
fn reconnect_after_close_and_no_leaks() {
    let mut h = Harness::new(CMD);
    let mut a = h.guest(5, FrontOpts::linux(5));
    let mut b = h.guest(6, FrontOpts::linux(6));
    let base_maps = h.world.live_mappings(DD);
    let base_ports = h.world.open_ports(DD);
    assert_eq!(base_maps, 4);
    for round in 0..5 {
        a.close();
        h.settle();
        assert_eq!(h.be_state(&a).as_deref(), Some("6"));
        assert_eq!(h.world.live_mappings(DD), 2, "round {round}");
        a.write("state", "1");
        h.settle();
        assert_eq!(h.be_state(&a).as_deref(), Some("2"));
        a.connect(&FrontOpts::linux(5));
        h.settle();
        assert_eq!(h.be_state(&a).as_deref(), Some("4"));
        let f = udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(500, round));
        a.send(&f, &SendOpts::default());
        h.settle();
        assert_eq!(b.take_received()[0].data, f, "round {round}");
        // A guest reconnects now and then, not five times in no time (that would be a
        // state flood, rate-limited by minios' xenbus backend).
        h.advance(STATE_REFILL_NS);
    }
    assert_eq!(h.world.live_mappings(DD), base_maps);
    assert_eq!(h.world.open_ports(DD), base_ports);
}

#[test]
fn guest_destroyed_mid_transfer() {
    let mut h = Harness::new(CMD);
    let mut a = h.guest(5, FrontOpts::linux(5));
    let b = h.guest(6, FrontOpts::linux(6));
    let mut c = h.guest(7, FrontOpts::linux(7));
    for i in 0..20 {
        a.queue_frame(
            &udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(3000, i)),
            &SendOpts::default(),
        );
    }
    a.push_tx();
    h.pass();
    h.world.destroy_domain(6);
    h.settle();
    assert!(!h.connected(&b));
    drop(b);
    // The others carry on.
    let f = udp_frame(mac(7), mac(5), ip(5), ip(7), &pattern(800, 1));
    a.send(&f, &SendOpts::default());
    h.settle();
    assert_eq!(c.take_received().last().unwrap().data, f);
}

#[test]
fn the_driver_domain_answers_arp_and_ping() {
    let mut h = Harness::new("netback.uplink=off netback.ip=10.0.0.2/24");
    let mut a = h.guest(5, FrontOpts::linux(5));
    // ARP who-has 10.0.0.2 tell 10.0.0.5.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&mac(5));
    arp.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&mac(5));
    arp.extend_from_slice(&ip(5));
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&[10, 0, 0, 2]);
    arp.resize(60, 0);
    a.send(&arp, &SendOpts::default());
    h.settle();
    let reply = a.take_received();
    assert_eq!(reply.len(), 1, "ARP reply");
    let dd_mac: [u8; 6] = reply[0].data[6..12].try_into().unwrap();
    assert_eq!(&reply[0].data[12..14], &[8, 6]);
    assert_eq!(&reply[0].data[20..22], &[0, 2], "reply opcode");
    // ICMP echo request.
    let mut ping = Vec::new();
    ping.extend_from_slice(&dd_mac);
    ping.extend_from_slice(&mac(5));
    ping.extend_from_slice(&[8, 0, 0x45, 0, 0, 32, 0, 1, 0, 0, 64, 1, 0, 0]);
    ping.extend_from_slice(&ip(5));
    ping.extend_from_slice(&[10, 0, 0, 2]);
    ping.extend_from_slice(&[8, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4]);
    netback::frame::fill_ipv4_checksum(&mut ping, 14, 20);
    let sum = !netback::frame::fold(netback::frame::sum(&ping[34..], 0));
    ping[36..38].copy_from_slice(&sum.to_be_bytes());
    a.send(&ping, &SendOpts::default());
    h.settle();
    let reply = a.take_received();
    assert_eq!(reply.len(), 1, "echo reply");
    assert_eq!(reply[0].data[34], 0, "ICMP echo reply type");
    assert_eq!(&reply[0].data[26..30], &[10, 0, 0, 2]);
}

#[test]
fn direct_copies_between_guests_and_order_behind_a_queue() {
    let mut h = Harness::new(CMD);
    let mut a = h.guest(5, FrontOpts::linux(5));
    let mut o = FrontOpts::linux(6);
    o.rx_buffers = 0;
    let mut b = h.guest(6, o);
    b.repost = false;
    let frames: Vec<Vec<u8>> = (0..12)
        .map(|i| {
            udp_frame(
                mac(6),
                mac(5),
                ip(5),
                ip(6),
                &pattern(2500 + i * 100, i as u32),
            )
        })
        .collect();
    let o = SendOpts {
        slot_len: 1000,
        offset: 100,
        ..Default::default()
    };
    // No buffers: the first five queue in the switch.
    for f in &frames[..5] {
        a.send(f, &o);
    }
    h.settle();
    assert_eq!(h.netdd.dp.borrow().stats().direct, 0);
    // A few buffers: some of the queue drains; what a sends now must queue behind it.
    b.post_rx(4);
    h.settle();
    for f in &frames[5..10] {
        a.send(f, &o);
    }
    h.settle();
    assert_eq!(
        h.netdd.dp.borrow().stats().direct,
        0,
        "never overtakes the queue"
    );
    b.post_rx(200);
    h.settle();
    // Queue empty, buffers posted: straight from a's pages into b's.
    for f in &frames[10..] {
        a.send(f, &o);
    }
    h.settle();
    assert_eq!(h.netdd.dp.borrow().stats().direct, 2);
    let got: Vec<Vec<u8>> = b.take_received().into_iter().map(|r| r.data).collect();
    assert_eq!(got, frames, "all of them, in order");
    a.poll();
    assert!(a.statuses().iter().all(|&s| s == NETIF_RSP_OKAY));
    let (ca, cb) = (h.counters(&a), h.counters(&b));
    assert_eq!((ca.in_packets, cb.out_packets), (12, 12));
}

#[test]
fn uplink_to_another_backend() {
    // dom0 runs a second instance of this backend with an address; our driver domain's
    // uplink is its vif 0.
    let mut h = Harness::with_uplink(
        "netback.ip=10.0.0.2/24",
        "netback.ip=10.0.0.1/24 netback.uplink=off netback.antispoof=0",
    );
    assert!(h.netdd.uplink.borrow().is_connected(), "uplink connected");
    assert_eq!(
        h.read("/local/domain/1/device/vif/0/state").as_deref(),
        Some("4")
    );
    let mut a = h.guest(5, FrontOpts::linux(5));
    // a asks for 10.0.0.1 (dom0's address, behind the uplink).
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&mac(5));
    arp.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&mac(5));
    arp.extend_from_slice(&ip(5));
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&[10, 0, 0, 1]);
    arp.resize(60, 0);
    a.send(&arp, &SendOpts::default());
    h.settle();
    let replies = a.take_received();
    let reply = replies
        .iter()
        .find(|r| r.data[12..14] == [8, 6] && r.data[28..32] == [10, 0, 0, 1])
        .expect("ARP reply from behind the uplink");
    let peer_mac: [u8; 6] = reply.data[6..12].try_into().unwrap();
    assert_eq!(peer_mac, [2, 0xdd, 0, 0, 0, 0], "dom0 instance's local MAC");
    // A GSO TCP packet to dom0: the uplink takes no GSO, so the switch segments it.
    let payload = pattern(6000, 3);
    let f = tcp_frame(peer_mac, mac(5), ip(5), [10, 0, 0, 1], &payload, true);
    a.send(
        &f,
        &SendOpts {
            csum_blank: true,
            gso: Some(Gso {
                kind: GsoKind::TcpV4,
                mss: 1000,
            }),
            ..Default::default()
        },
    );
    h.settle();
    let up = h.netdd.dp.borrow().uplink_port().unwrap();
    let c = h.netdd.dp.borrow().switch.counters(up).unwrap();
    assert_eq!(
        c.out_packets,
        1 + 6,
        "the ARP request and 6 segments went out"
    );
    // The toolstack removes the uplink device and adds it again: we follow.
    let spec = minios::host::DeviceSpec::new("vif", 0, DD, 0)
        .backend_key("mac", "00:16:3e:00:00:01")
        .frontend_key("mac", "00:16:3e:00:00:01");
    h.world.remove_device(&spec);
    h.settle();
    h.advance(2_000_000_000);
    assert!(
        h.netdd.dp.borrow().uplink_port().is_none(),
        "uplink detached"
    );
    assert!(!h.world.exists("/local/domain/0/backend/vif/1/0"));
    h.world.add_device(&spec);
    h.settle();
    assert!(h.netdd.dp.borrow().uplink_port().is_some(), "uplink back");
    assert_eq!(
        h.read("/local/domain/0/backend/vif/1/0/state").as_deref(),
        Some("4")
    );
}

#[test]
fn pipelined_passes_keep_order_and_survive_disconnects() {
    let mut h = Harness::new("netback.uplink=off netback.tx_batch=4");
    let mut a = h.guest(5, FrontOpts::linux(5));
    let mut b = h.guest(6, FrontOpts::linux(6));
    let mut c = h.guest(7, FrontOpts::plain(7));
    let frames: Vec<Vec<u8>> = (0..60)
        .map(|i| {
            udp_frame(
                mac(6),
                mac(5),
                ip(5),
                ip(6),
                &pattern(500 + i * 37, i as u32),
            )
        })
        .collect();
    for f in &frames {
        a.queue_frame(f, &SendOpts::default());
    }
    a.push_tx();
    // One pass takes 4 and copies the heads of 4 more, which the next pass decides.
    h.pass();
    assert_eq!(h.netdd.dp.borrow().stats().tx_packets, 8);
    h.settle();
    let got: Vec<Vec<u8>> = b.take_received().into_iter().map(|r| r.data).collect();
    assert_eq!(got, frames);
    a.poll();
    assert_eq!(a.statuses().len(), 60);
    // c queues packets and disconnects while some are carried between passes.
    for i in 0..12 {
        c.queue_frame(
            &udp_frame(mac(6), mac(7), ip(7), ip(6), &pattern(300, i)),
            &SendOpts::default(),
        );
    }
    c.push_tx();
    h.pass();
    c.close();
    h.settle();
    assert!(!h.connected(&c));
    let f = udp_frame(mac(6), mac(5), ip(5), ip(6), b"still fine");
    a.send(&f, &SendOpts::default());
    h.settle();
    assert_eq!(b.take_received().last().unwrap().data, f);
}

#[test]
fn direct_copies_relay_odd_layouts_into_full_pages() {
    let mut h = Harness::new(CMD);
    let mut a = h.guest(5, FrontOpts::linux(5));
    let mut b = h.guest(6, FrontOpts::linux(6));
    // 18 slots of 3000 bytes at offset 1000: more than netfront takes as they are.
    let f = tcp_frame(
        mac(6),
        mac(5),
        ip(5),
        ip(6),
        &pattern(18 * 3000 - 54, 5),
        true,
    );
    a.send(
        &f,
        &SendOpts {
            slot_len: 3000,
            offset: 1000,
            csum_blank: true,
            gso: Some(Gso {
                kind: GsoKind::TcpV4,
                mss: 1448,
            }),
            ..Default::default()
        },
    );
    h.settle();
    let got = b.take_received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, f);
    assert_eq!(got[0].slots, 14, "re-laid into full pages");
    assert!(got[0].slot_lens[..13].iter().all(|&l| l == 4096));
    assert_eq!(
        h.netdd.dp.borrow().stats().direct,
        1,
        "still one copy, straight"
    );
}

#[test]
fn uplink_recovers_from_a_broken_backend_ring() {
    let mut h = Harness::with_uplink(
        "netback.ip=10.0.0.2/24",
        "netback.ip=10.0.0.1/24 netback.uplink=off netback.antispoof=0",
    );
    let first = h.netdd.dp.borrow().uplink_port().expect("uplink up");
    // The backend writes an impossible response producer into our TX ring.
    let gref: u32 = h
        .read("/local/domain/1/device/vif/0/tx-ring-ref")
        .unwrap()
        .parse()
        .unwrap();
    let page = h.dd.granted_page(gref).unwrap();
    minios::platform::SharedMem::store_u32(&page, 8, 5000).unwrap();
    // Any pass notices it (traffic from a guest makes one).
    let mut a = h.guest(5, FrontOpts::linux(5));
    a.send(
        &udp_frame([0xff; 6], mac(5), ip(5), [10, 0, 0, 255], b"hello"),
        &SendOpts::default(),
    );
    h.settle();
    h.advance(2_000_000_000);
    h.advance(2_000_000_000);
    let again = h.netdd.dp.borrow().uplink_port();
    assert!(
        again.is_some_and(|p| p != first),
        "uplink reconnected on a new port ({again:?})"
    );
    assert_eq!(
        h.read("/local/domain/1/device/vif/0/state").as_deref(),
        Some("4")
    );
}

/// A receiver slower than its sender, with a small queue: what does not fit waits in the
/// sender's ring (back-pressure) instead of being dropped, and arrives complete and in order.
#[test]
fn a_slow_receiver_holds_its_sender_back_instead_of_losing_packets() {
    let mut h = Harness::new("netback.uplink=off netback.queue_kb=64");
    let mut a = h.guest(5, FrontOpts::linux(5));
    let mut b = h.guest(6, FrontOpts::linux(6));
    a.repost = false;
    let total = 1200u32;
    let frames: Vec<Vec<u8>> = (0..total)
        .map(|i| udp_frame(mac(5), mac(6), ip(6), ip(5), &pattern(1400, i)))
        .collect();
    let (mut sent, mut got) = (0usize, Vec::new());
    let mut held_back = false;
    for _round in 0..1000 {
        // b keeps its ring as full as netfront would.
        while sent < frames.len() && sent - b.tx_done.len() < 200 {
            b.queue_frame(&frames[sent], &SendOpts::default());
            sent += 1;
        }
        b.push_tx();
        h.settle();
        b.poll();
        held_back |= b.tx_done.len() < sent;
        got.extend(a.take_received());
        if got.len() == frames.len() {
            break;
        }
        // a reads a few packets' worth per round.
        a.post_rx(24);
    }
    assert!(held_back, "the sender had to wait at some point");
    assert_eq!(got.len(), frames.len(), "every packet arrived");
    assert!(
        got.iter().zip(&frames).all(|(g, f)| g.data == *f),
        "in order"
    );
    assert!(b.statuses().iter().all(|&s| s == NETIF_RSP_OKAY));
    assert_eq!(h.counters(&a).out_dropped, 0);
    let stats = h.netdd.dp.borrow().stats();
    assert!(stats.parked > 0 && stats.park_timeouts == 0, "{stats:?}");
}
