//! Hostile frontends (shared/notes/hostile-frontends.md) that apply to usbif: the usbif
//! extras (pipes naming unassigned ports or devices, control requests longer than their
//! buffer, isochronous frame counts out of range, unlink of a request never submitted) and
//! items 3 (bogus ring indices), 6 (event storm), 8 (state flapping), 9 (bad grant
//! references). Each attack gets an error response or a logged disconnect of the attacking
//! controller, while a healthy guest's device keeps working through the same driver domain.

mod common;

use common::*;
use minios::event_throttle::{HOLD_MAX_NS, SPURIOUS_LIMIT};
use minios::host::HostGranted;
use minios::platform::{Access, EventChannel, GrantedPage, Grants, SharedMem};
use minios::xenbus::backend::state_limit::STATE_REFILL_NS;
use usbback::host::Speed;
use usbback::stats::ErrorClass;
use xen_abi::usbif::*;

/// The victim (guest 5: port 1 = `1-1` at address 5, port 2 empty) and a healthy guest
/// (guest 6: port 1 = `1-2` at address 2), both enumerated.
fn start() -> (Env, Front, Front) {
    let (env, _, victim, healthy) = victim_and_healthy();
    (env, victim, healthy)
}

fn healthy_still_works(env: &mut Env, healthy: &mut Front, seed: u32) {
    assert_eq!(env.be_key(&healthy.dev, "state").as_deref(), Some("4"));
    healthy.loopback(env, 1, 2, &pattern(5000, seed));
}

fn submitted(env: &Env) -> u64 {
    env.bus.0.borrow().submitted
}

fn errors(env: &Env, class: ErrorClass) -> u64 {
    env.vusb(5, 0, |v| v.stats().errors_of(class))
}

// --- usbif extras ---------------------------------------------------------------------------

#[test]
fn pipes_naming_unassigned_ports_devices_or_endpoints_are_refused() {
    let (mut env, mut victim, mut healthy) = start();
    let before = submitted(&env);
    let get_desc = setup(0x80, 6, 0x100, 0, 18);
    for (what, port, addr, want) in [
        ("empty port", 2, 0, USBIF_STATUS_NODEV),
        ("port beyond num-ports", 3, 0, USBIF_STATUS_INVAL),
        ("port 0", 0, 0, USBIF_STATUS_INVAL),
        ("port 31", 31, 5, USBIF_STATUS_INVAL),
        ("an address never set", 1, 99, USBIF_STATUS_NODEV),
        ("the healthy guest's address", 1, 2, USBIF_STATUS_NODEV),
        ("its own address on another port", 2, 5, USBIF_STATUS_NODEV),
    ] {
        let r = victim.control(&mut env, port, addr, get_desc, &[]);
        assert_eq!(r.status, want, "{what}");
        assert_eq!(r.actual, 0, "{what}");
    }
    // Endpoints the device does not have, or of another type.
    for (what, pipe) in [
        (
            "bulk on endpoint 5",
            UsbifPipe::new(1, 5, 5, true, UsbPipeType::Bulk),
        ),
        (
            "bulk IN on the OUT endpoint",
            UsbifPipe::new(1, 5, 2, true, UsbPipeType::Bulk),
        ),
        (
            "bulk on the interrupt endpoint",
            UsbifPipe::new(1, 5, 3, true, UsbPipeType::Bulk),
        ),
        (
            "interrupt on a bulk endpoint",
            UsbifPipe::new(1, 5, 1, true, UsbPipeType::Interrupt),
        ),
    ] {
        let b = victim.build(pipe, [0; 8], &[], 64);
        let r = victim.run(&mut env, b);
        assert_eq!(r.status, USBIF_STATUS_INVAL, "{what}");
    }
    assert_eq!(submitted(&env), before, "nothing reached the controller");
    assert_eq!(errors(&env, ErrorClass::NoDevice), 6);
    assert_eq!(errors(&env, ErrorClass::Invalid), 1, "port 0 is malformed");
    assert_eq!(errors(&env, ErrorClass::Endpoint), 4);
    healthy_still_works(&mut env, &mut healthy, 1);
    victim.loopback(&mut env, 1, 5, &pattern(100, 2));
}

#[test]
fn control_requests_longer_than_their_buffer_and_malformed_segments_are_refused() {
    let (mut env, mut victim, mut healthy) = start();
    let before = submitted(&env);
    // GET_DESCRIPTOR asking 255 bytes with an 8-byte buffer.
    let pipe = UsbifPipe::new(1, 5, 0, true, UsbPipeType::Control);
    let b = victim.build(pipe, setup(0x80, 6, 0x200, 0, 255), &[], 8);
    let r = victim.run(&mut env, b);
    assert_eq!((r.status, r.actual), (USBIF_STATUS_INVAL, 0));
    // A control OUT with wLength 64 and 10 bytes.
    let pipe_out = UsbifPipe::new(1, 5, 0, false, UsbPipeType::Control);
    let b = victim.build(pipe_out, setup(0x21, 9, 0, 0, 64), &[1; 10], 0);
    assert_eq!(victim.run(&mut env, b).status, USBIF_STATUS_INVAL);
    // buffer_length larger than the segments.
    let mut b = victim.build(
        UsbifPipe::new(1, 5, 1, true, UsbPipeType::Bulk),
        [0; 8],
        &[],
        4096,
    );
    b.req.buffer_length = 8192;
    assert_eq!(victim.run(&mut env, b).status, USBIF_STATUS_INVAL);
    // A segment that crosses its page.
    let mut b = victim.build(
        UsbifPipe::new(1, 5, 1, true, UsbPipeType::Bulk),
        [0; 8],
        &[],
        200,
    );
    b.req.seg[0].offset = 4000;
    assert_eq!(victim.run(&mut env, b).status, USBIF_STATUS_INVAL);
    // 17 segments.
    let mut b = victim.build(
        UsbifPipe::new(1, 5, 1, true, UsbPipeType::Bulk),
        [0; 8],
        &[],
        16,
    );
    b.req.nr_buffer_segs = 17;
    assert_eq!(victim.run(&mut env, b).status, USBIF_STATUS_INVAL);
    // SET_ADDRESS beyond 127.
    let r = victim.control(&mut env, 1, 5, setup(0x00, 5, 200, 0, 0), &[]);
    assert_eq!(r.status, USBIF_STATUS_INVAL);
    assert_eq!(submitted(&env), before, "nothing reached the controller");
    assert_eq!(errors(&env, ErrorClass::Invalid), 6);
    healthy_still_works(&mut env, &mut healthy, 3);
    victim.loopback(&mut env, 1, 5, &pattern(300, 4));
}

fn iso(victim: &mut Front, packets: u16, desc_len: u16, desc_segs: u16) -> (Built, HostGranted) {
    let pipe = UsbifPipe::new(1, 5, 3, true, UsbPipeType::Isochronous);
    let mut b = victim.build(pipe, [0; 8], &[], 1024);
    b.req.u[4..6].copy_from_slice(&packets.to_le_bytes());
    b.req.u[6..8].copy_from_slice(&desc_segs.to_le_bytes());
    let desc = victim.dom.grant_page(DD, Access::ReadWrite).unwrap();
    b.req.seg[1] = UsbifRequestSegment {
        gref: desc.gref(),
        offset: 0,
        length: desc_len,
    };
    (b, desc)
}

#[test]
fn isochronous_frame_counts_out_of_range_are_refused() {
    let (mut env, mut victim, mut healthy) = start();
    let before = env.bus.0.borrow().submitted;
    for (what, packets, desc_len, desc_segs) in [
        ("no packets", 0, 64, 1),
        ("more packets than descriptors", 5, 64, 1),
        ("65535 packets", u16::MAX, 4096, 1),
        ("no descriptor segment", 4, 64, 0),
        ("partial descriptor", 4, 70, 1),
        ("descriptor segments beyond 16", 4, 64, 16),
    ] {
        let (b, _desc) = iso(&mut victim, packets, desc_len, desc_segs);
        assert_eq!(victim.run(&mut env, b).status, USBIF_STATUS_INVAL, "{what}");
    }
    assert_eq!(errors(&env, ErrorClass::Invalid), 6);
    // Well-formed, but to the interrupt endpoint.
    let (b, _desc) = iso(&mut victim, 4, 64, 1);
    assert_eq!(victim.run(&mut env, b).status, USBIF_STATUS_INVAL);
    assert_eq!(errors(&env, ErrorClass::Endpoint), 1);
    // To the isochronous endpoint, with a packet reaching past the buffer (the descriptors
    // are the guest's: checked after they were copied).
    let (r, back, _) = victim.iso(
        &mut env,
        (1, 5),
        5,
        true,
        &[(0, 100), (1000, 100)],
        &[],
        1024,
    );
    assert_eq!(r.status, USBIF_STATUS_INVAL);
    assert_eq!(back[1].actual_length, 0xdead, "descriptors untouched");
    assert_eq!(errors(&env, ErrorClass::Invalid), 7);
    let (r, _, _) = victim.iso(
        &mut env,
        (1, 5),
        5,
        true,
        &[(0, 100), (u32::MAX, 2)],
        &[],
        1024,
    );
    assert_eq!(r.status, USBIF_STATUS_INVAL, "offset + length overflowing");
    assert_eq!(
        env.bus.0.borrow().submitted,
        before,
        "nothing reached the controller"
    );
    // A good one still works.
    let (r, _, _) = victim.iso(&mut env, (1, 5), 5, true, &[(0, 100), (100, 100)], &[], 200);
    assert_eq!((r.status, r.actual_length), (USBIF_STATUS_OK, 199));
    healthy_still_works(&mut env, &mut healthy, 5);
}

#[test]
fn unlink_of_a_request_never_submitted_is_refused() {
    let (mut env, mut victim, mut healthy) = start();
    // The healthy guest has an interrupt transfer waiting, with some id.
    let intr = UsbifPipe::new(1, 2, 3, true, UsbPipeType::Interrupt);
    let waiting = healthy.build(intr, [8, 0, 0, 0, 0, 0, 0, 0], &[], 8);
    healthy.submit(&waiting.req);
    env.settle();
    for (what, target, pipe) in [
        (
            "unknown id",
            4242u16,
            UsbifPipe::new(1, 5, 3, true, UsbPipeType::Interrupt),
        ),
        (
            "the healthy guest's id",
            waiting.req.id,
            UsbifPipe::new(1, 2, 3, true, UsbPipeType::Interrupt),
        ),
    ] {
        let mut u = victim.build(pipe.with_unlink(), [0; 8], &[], 0);
        u.req.u[..2].copy_from_slice(&target.to_le_bytes());
        let r = victim.run(&mut env, u);
        assert_eq!(r.status, USBIF_STATUS_INVAL, "{what}");
    }
    assert_eq!(errors(&env, ErrorClass::Unlink), 2);
    assert!(env.bus.0.borrow().cancels.is_empty(), "nothing cancelled");
    assert_eq!(
        env.vusb(6, 0, |v| v.in_flight()),
        1,
        "the healthy transfer still waits"
    );
    healthy_still_works(&mut env, &mut healthy, 6);
}

// --- 9: bad grant references ----------------------------------------------------------------

#[test]
fn bad_grants_fail_only_their_request() {
    let (mut env, mut victim, mut healthy) = start();
    let bulk_out = UsbifPipe::new(1, 5, 2, false, UsbPipeType::Bulk);
    let bulk_in = UsbifPipe::new(1, 5, 1, true, UsbPipeType::Bulk);
    // OUT from a grant reference that was never granted.
    let mut b = victim.build(bulk_out, [0; 8], &[7; 64], 0);
    b.req.seg[0].gref = 9999;
    assert_eq!(
        victim.run(&mut env, b).status,
        USBIF_STATUS_INVAL,
        "unknown gref"
    );
    // OUT from a revoked grant.
    let b = victim.build(bulk_out, [0; 8], &[7; 64], 0);
    victim.dom.revoke(b.req.seg[0].gref);
    assert_eq!(
        victim.run(&mut env, b).status,
        USBIF_STATUS_INVAL,
        "revoked"
    );
    // IN into a read-only grant: the data must not land; the device had it, so refill.
    victim.bulk_out(&mut env, 1, 5, 2, &pattern(64, 8));
    let ro = victim.dom.grant_page(DD, Access::ReadOnly).unwrap();
    let mut b = victim.build(bulk_in, [0; 8], &[], 64);
    b.req.seg[0].gref = ro.gref();
    let r = victim.run(&mut env, b);
    assert_eq!((r.status, r.actual), (USBIF_STATUS_INVAL, 0), "read-only");
    assert_eq!(ro.page().snapshot()[..64], [0; 64], "nothing written");
    // IN into a grant for another domain.
    let page = minios::host::HostPage::new();
    let other = victim.dom.grant(&page, 7, Access::ReadWrite).unwrap();
    let mut b = victim.build(bulk_in, [0; 8], &[], 64);
    b.req.seg[0].gref = other;
    victim.bulk_out(&mut env, 1, 5, 2, &pattern(64, 9));
    assert_eq!(
        victim.run(&mut env, b).status,
        USBIF_STATUS_INVAL,
        "another domain's"
    );
    assert_eq!(errors(&env, ErrorClass::Grant), 4);
    // Drain the loopback, then both guests work.
    let _ = victim.bulk_in(&mut env, 1, 5, 1, 4096);
    victim.loopback(&mut env, 1, 5, &pattern(4096, 10));
    healthy_still_works(&mut env, &mut healthy, 11);
}

// --- 3: bogus ring indices ------------------------------------------------------------------

#[test]
fn bogus_ring_indices_disconnect_the_controller() {
    // req_prod relative to what the backend has answered (rsp_prod).
    for (what, conn_ring, ahead) in [
        ("URB ring far ahead", false, 1000u32),
        ("URB ring behind", false, u32::MAX - 4),
        ("URB ring one too many", false, USB_URB_RING_SIZE + 1),
        ("conn ring far ahead", true, 100_000),
    ] {
        let (mut env, mut victim, mut healthy) = start();
        let page = if conn_ring {
            victim.conn.as_ref().unwrap().ring().mem().page().clone()
        } else {
            victim.urb.as_ref().unwrap().ring().mem().page().clone()
        };
        let rsp_before = page.load_u32(8).unwrap();
        page.store_u32(0, rsp_before.wrapping_add(ahead)).unwrap();
        if conn_ring {
            // Make the backend read the conn ring: a port change.
            env.bus.attach("1-3", Speed::High);
            env.assign(&victim.dev.clone(), 2, "1-3");
        }
        victim.port.as_ref().unwrap().notify().unwrap();
        env.settle();
        let err = env.error_node(&victim.dev).unwrap_or_default();
        assert!(
            err.contains("req_prod") || err.contains("overflow"),
            "{what}: {err}"
        );
        assert_eq!(
            env.be_key(&victim.dev, "state").as_deref(),
            Some("5"),
            "{what}"
        );
        assert_eq!(
            page.load_u32(8).unwrap(),
            rsp_before,
            "{what}: no responses produced"
        );
        assert_eq!(
            env.world.live_mappings(DD),
            2,
            "{what}: only the healthy rings mapped"
        );
        assert!(env.world.idle_waits() < 1000, "{what}: no spinning");
        healthy_still_works(&mut env, &mut healthy, 12);
        // The attacker can start over and gets its device back.
        for s in ["5", "6", "1"] {
            victim.state(s);
            env.settle();
        }
        victim.connect(&mut env);
        assert_eq!(
            env.be_key(&victim.dev, "state").as_deref(),
            Some("4"),
            "{what}"
        );
        assert!(
            victim.port_changes().contains(&(1, USBIF_SPEED_HIGH)),
            "{what}"
        );
        victim.enumerate(&mut env, 1, 5);
        victim.loopback(&mut env, 1, 5, &pattern(64, 13));
    }
}

// --- 6: event storm -------------------------------------------------------------------------

#[test]
fn event_storm_costs_bounded_work() {
    let (mut env, mut victim, mut healthy) = start();
    let before = env.vusb(5, 0, |v| v.stats().requests);
    for _ in 0..10_000 {
        victim.port.as_ref().unwrap().notify().unwrap();
    }
    env.settle();
    assert_eq!(env.be_key(&victim.dev, "state").as_deref(), Some("4"));
    assert_eq!(victim.responses(), vec![], "no responses out of nothing");
    assert_eq!(env.vusb(5, 0, |v| v.stats().requests), before);
    healthy_still_works(&mut env, &mut healthy, 14);
    victim.loopback(&mut env, 1, 5, &pattern(64, 15));
}

/// After `SPURIOUS_LIMIT` empty notifications in a row (a pass after each) the victim's port
/// is held back: masked, so its notifications no longer wake the driver domain. The healthy
/// guest is served during the hold, the victim's own transfer goes through once it ends, and
/// the hold is counted in the controller's `event_holds`.
#[test]
fn event_storm_is_held_back() {
    let (mut env, mut victim, mut healthy) = start();
    let port = victim.port.as_ref().unwrap().port();
    let dd = env.world.port_peer(5, port).unwrap().1;
    for i in 0..SPURIOUS_LIMIT {
        assert!(!env.world.port_masked(DD, dd), "held after {i}");
        victim.port.as_ref().unwrap().notify().unwrap();
        env.exec.run_once();
    }
    assert!(env.world.port_masked(DD, dd), "held after the limit");
    for _ in 0..1000 {
        victim.port.as_ref().unwrap().notify().unwrap();
    }
    assert!(
        !env.exec.platform().has_wakeup(),
        "a held port woke the domain"
    );
    healthy_still_works(&mut env, &mut healthy, 16);
    env.world.advance(HOLD_MAX_NS);
    victim.loopback(&mut env, 1, 5, &pattern(64, 17));
    assert!(!env.world.port_masked(DD, dd), "work ends the hold");
    env.world.advance(2_000_000_000);
    env.settle();
    assert!(env.counter(&victim.dev, "event_holds").unwrap() >= 1);
    assert_eq!(env.counter(&healthy.dev, "event_holds"), Some(0));
}

// --- 8: state flapping ----------------------------------------------------------------------

#[test]
fn state_flapping_leaks_nothing() {
    let (mut env, mut victim, mut healthy) = start();
    // The healthy guest's rings and port.
    let base = (2usize, 1usize);
    for round in 0..30u32 {
        victim.loopback(&mut env, 1, 5, &pattern(100, round));
        if round % 3 == 0 {
            // An interrupt transfer left in flight.
            let intr = UsbifPipe::new(1, 5, 3, true, UsbPipeType::Interrupt);
            let b = victim.build(intr, [8, 0, 0, 0, 0, 0, 0, 0], &[], 8);
            victim.submit(&b.req);
            env.settle();
        }
        let storm: &[&str] = match round % 4 {
            0 => &["5", "6", "1"],
            1 => &["6", "4", "5", "1"],
            2 => &["1", "5", "4", "6", "1"],
            _ => &["5", "3", "6", "1"],
        };
        for s in storm {
            victim.state(s);
            if round % 2 == 0 {
                env.settle();
            }
        }
        env.settle();
        victim.connect(&mut env);
        if env.be_key(&victim.dev, "state").as_deref() != Some("4") {
            for s in ["5", "6", "1"] {
                victim.state(s);
                env.settle();
            }
            victim.connect(&mut env);
        }
        assert_eq!(
            env.be_key(&victim.dev, "state").as_deref(),
            Some("4"),
            "round {round}"
        );
        assert!(
            victim.port_changes().contains(&(1, USBIF_SPEED_HIGH)),
            "round {round}"
        );
        victim.enumerate(&mut env, 1, 5);
        // The next storm once the device's state limit has its burst back (minios' xenbus
        // backend: storms beyond it are deferred, tested there).
        env.world.advance(STATE_REFILL_NS);
        env.settle();
    }
    healthy_still_works(&mut env, &mut healthy, 16);
    for s in ["5", "6"] {
        victim.state(s);
        env.settle();
    }
    assert_eq!(
        (env.world.live_mappings(DD), env.world.open_ports(DD)),
        base,
        "everything of the flapping guest released"
    );
    let held: Vec<_> = env
        .hub
        .borrow()
        .devices()
        .filter_map(|(_, p)| p.owner)
        .collect();
    assert_eq!(held, vec![(6, 0)], "only the healthy guest holds a device");
    assert_eq!(env.hub.borrow().in_flight(), 0, "nothing left in flight");
}

// --- 1: double fetch ------------------------------------------------------------------------

#[test]
fn a_request_rewritten_after_it_was_taken_is_served_as_first_read() {
    let (mut env, mut victim, mut healthy) = start();
    let ring = victim.urb.as_ref().unwrap().ring().mem().page().clone();
    let slot = 64 + (ring.load_u32(0).unwrap() as usize % USB_URB_RING_SIZE as usize) * 148;
    let data = pattern(100, 20);
    let b = victim.build(
        UsbifPipe::new(1, 5, 2, false, UsbPipeType::Bulk),
        [0; 8],
        &data,
        0,
    );
    // After the backend's first grant copy (the OUT data), the guest rewrites the slot: a
    // longer buffer, another pipe.
    let evil = {
        let mut r = b.req;
        r.buffer_length = 4000;
        r.seg[0].length = 4000;
        r.pipe = UsbifPipe::new(2, 0, 1, true, UsbPipeType::Bulk).0;
        let mut bytes = [0u8; 148];
        xen_abi::WireStruct::write_to(&r, &mut bytes).unwrap();
        bytes
    };
    let page = ring.clone();
    env.world.after_each_copy(move || {
        let _ = page.write(slot, &evil);
    });
    let r = victim.run(&mut env, b);
    env.world.clear_copy_hooks();
    assert_eq!(
        (r.status, r.actual),
        (USBIF_STATUS_OK, 100),
        "served as first read"
    );
    let back = victim.bulk_in(&mut env, 1, 5, 1, 4096);
    assert_eq!(
        back.data, data,
        "the device got exactly the first read's bytes"
    );
    healthy_still_works(&mut env, &mut healthy, 21);
}

// --- 14: absurd frontend configuration -------------------------------------------------------

#[test]
fn absurd_frontend_keys_fail_the_connect_with_a_reason() {
    for (what, key, value) in [
        ("urb-ring-ref not a number", "urb-ring-ref", "banana"),
        ("urb-ring-ref beyond 32 bits", "urb-ring-ref", "99999999999"),
        ("conn-ring-ref never granted", "conn-ring-ref", "4000"),
        ("event-channel not ours", "event-channel", "777"),
    ] {
        let (mut env, mut victim, mut healthy) = start();
        for s in ["5", "6", "1"] {
            victim.state(s);
            env.settle();
        }
        // Connect as xen-hcd would, but with one key replaced before going Connected.
        victim.connect(&mut env);
        for s in ["5", "6", "1"] {
            victim.state(s);
            env.settle();
        }
        victim.write_key(key, value);
        victim.state("4");
        env.settle();
        let err = env.error_node(&victim.dev).unwrap_or_default();
        assert!(err.contains(key), "{what}: {err}");
        assert_ne!(
            env.be_key(&victim.dev, "state").as_deref(),
            Some("4"),
            "{what}"
        );
        assert_eq!(
            env.world.live_mappings(DD),
            2,
            "{what}: only the healthy rings mapped"
        );
        healthy_still_works(&mut env, &mut healthy, 22);
        let held: Vec<_> = env
            .hub
            .borrow()
            .devices()
            .filter_map(|(_, p)| p.owner)
            .collect();
        assert_eq!(held, vec![(6, 0)], "{what}: the victim holds nothing");
    }
}
