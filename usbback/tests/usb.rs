//! The usbif data path against a fake bus: ports announced as devices are assigned,
//! attached and removed; address virtualisation; descriptors; bulk data intact; unlink;
//! status mapping.

mod common;

use common::*;
use usbback::host::Speed;
use usbback::stats::ErrorClass;
use xen_abi::usbif::*;

#[test]
fn a_device_is_announced_enumerated_and_moves_data() {
    let mut env = Env::new();
    let id = env.bus.attach("1-1", Speed::High);
    let mut f = Front::attach(&mut env, 5, 0, 2, &["1-1"]);
    assert_eq!(f.port_changes(), vec![(1, USBIF_SPEED_HIGH)]);
    assert_eq!(
        env.bus.enables(),
        1,
        "reset and addressed before it was announced"
    );
    assert!(env.bus.with(id, |d| d.enabled));
    f.enumerate(&mut env, 1, 7);
    assert_eq!(env.vusb(5, 0, |v| v.ports().port_of(7)), Some(1));
    // More than one segment, an odd length.
    let data = pattern(3 * 4096 + 100, 1);
    f.loopback(&mut env, 1, 7, &data);
    let stats = env.vusb(5, 0, |v| v.stats().clone());
    // IN: the data and the descriptors (8 + 18 bytes of device descriptor, the configuration).
    let descriptors = 8 + 18 + common::fake::config_descriptor().len();
    assert_eq!(
        (stats.bytes_in, stats.bytes_out),
        ((data.len() + descriptors) as u64, data.len() as u64)
    );
    assert_eq!(stats.set_address, 1);
    assert_eq!(stats.errors.total(), 0, "{stats}");
    // Published at most every usbback.stats_ms (1 s).
    env.world.advance(1_000_000_000);
    env.settle();
    assert_eq!(env.counter(&f.dev, "bulk"), Some(2));
    assert_eq!(env.counter(&f.dev, "port_changes"), Some(1));
}

#[test]
fn speeds_low_full_high_and_superspeed_refused() {
    let mut env = Env::new();
    env.bus.attach("1-1", Speed::Low);
    env.bus.attach("1-2", Speed::Full);
    env.bus.attach("1-3", Speed::Super);
    let mut f = Front::attach(&mut env, 5, 0, 3, &["1-1", "1-2", "1-3"]);
    let mut changes = f.port_changes();
    changes.sort();
    assert_eq!(
        changes,
        vec![(1, USBIF_SPEED_LOW), (2, USBIF_SPEED_FULL)],
        "SuperSpeed cannot be said in usbif"
    );
    // Counted once, not on every pass.
    env.world.advance(1_000_000);
    env.settle();
    let s = env.vusb(5, 0, |v| v.stats().errors_of(ErrorClass::Unsupported));
    assert_eq!(s, 1);
    // Nothing answers on the SuperSpeed port.
    let r = f.control(&mut env, 3, 0, setup(0x80, 6, 0x100, 0, 8), &[]);
    assert_eq!(r.status, USBIF_STATUS_NODEV);
}

#[test]
fn hot_attach_detach_and_reattach() {
    let mut env = Env::new();
    let mut f = Front::attach(&mut env, 5, 0, 2, &[]);
    assert_eq!(f.port_changes(), vec![]);
    // Plugged in but not assigned: nothing.
    let id = env.bus.attach("2-4", Speed::High);
    env.settle();
    assert_eq!(f.port_changes(), vec![]);
    env.assign(&f.dev.clone(), 2, "2-4");
    assert_eq!(f.port_changes(), vec![(2, USBIF_SPEED_HIGH)]);
    f.enumerate(&mut env, 2, 3);
    f.loopback(&mut env, 2, 3, &pattern(512, 2));
    // Unplugged: the port empties, its address is gone.
    env.bus.detach(id);
    env.settle();
    assert_eq!(f.port_changes(), vec![(2, USBIF_SPEED_NONE)]);
    let r = f.bulk_in(&mut env, 2, 3, 1, 64);
    assert_eq!(r.status, USBIF_STATUS_NODEV);
    // Plugged in again: announced again, answers at address 0 only.
    env.bus.attach("2-4", Speed::High);
    env.settle();
    assert_eq!(f.port_changes(), vec![(2, USBIF_SPEED_HIGH)]);
    let r = f.control(&mut env, 2, 3, setup(0x80, 6, 0x100, 0, 18), &[]);
    assert_eq!(
        r.status, USBIF_STATUS_NODEV,
        "the old address died with the device"
    );
    f.enumerate(&mut env, 2, 4);
    f.loopback(&mut env, 2, 4, &pattern(100, 3));
    // Another device at the same place before the backend looked: the guest sees the port
    // empty first, then the new device (which answers at address 0 only).
    let id = env.hub.borrow().find("2-4").map(|(d, _)| d).unwrap();
    env.bus.detach(id);
    env.bus.attach("2-4", Speed::Full);
    env.settle();
    assert_eq!(
        f.port_changes(),
        vec![(2, USBIF_SPEED_NONE), (2, USBIF_SPEED_FULL)]
    );
    let r = f.control(&mut env, 2, 4, setup(0x80, 6, 0x100, 0, 18), &[]);
    assert_eq!(r.status, USBIF_STATUS_NODEV);
    // The toolstack takes the assignment away.
    env.assign(&f.dev.clone(), 2, "");
    assert_eq!(f.port_changes(), vec![(2, USBIF_SPEED_NONE)]);
}

#[test]
fn a_device_moves_to_another_guest_without_a_reboot() {
    let mut env = Env::new();
    env.bus.attach("1-1", Speed::High);
    let mut a = Front::attach(&mut env, 5, 0, 1, &["1-1"]);
    let mut b = Front::attach(&mut env, 6, 0, 1, &["1-1"]);
    assert_eq!(a.port_changes(), vec![(1, USBIF_SPEED_HIGH)]);
    assert_eq!(b.port_changes(), vec![], "held by guest 5");
    a.enumerate(&mut env, 1, 2);
    a.loopback(&mut env, 1, 2, &pattern(1000, 4));
    env.assign(&a.dev.clone(), 1, "");
    assert_eq!(a.port_changes(), vec![(1, USBIF_SPEED_NONE)]);
    assert_eq!(b.port_changes(), vec![(1, USBIF_SPEED_HIGH)]);
    assert_eq!(env.bus.enables(), 2, "reset again for the new guest");
    b.enumerate(&mut env, 1, 9);
    b.loopback(&mut env, 1, 9, &pattern(4096, 5));
}

#[test]
fn stall_babble_and_unknown_requests_are_mapped() {
    let mut env = Env::new();
    let id = env.bus.attach("1-1", Speed::High);
    let mut f = Front::attach(&mut env, 5, 0, 1, &["1-1"]);
    f.port_changes();
    f.enumerate(&mut env, 1, 2);
    // A string descriptor the device does not have: the device stalls.
    let r = f.control(&mut env, 1, 2, setup(0x80, 6, 0x300, 0, 64), &[]);
    assert_eq!(r.status, USBIF_STATUS_STALL);
    env.bus.with(id, |d| d.stalled.insert(0x81));
    let r = f.bulk_in(&mut env, 1, 2, 1, 64);
    assert_eq!(r.status, USBIF_STATUS_STALL);
    let r = f.control(&mut env, 1, 2, setup(0x02, 1, 0, 0x81, 0), &[]);
    assert_eq!(r.status, USBIF_STATUS_OK, "CLEAR_FEATURE(HALT)");
    // The device sends more than asked.
    let data = pattern(100, 6);
    f.bulk_out(&mut env, 1, 2, 2, &data);
    env.bus.with(id, |d| d.babble_next = true);
    let r = f.bulk_in(&mut env, 1, 2, 1, 10);
    assert_eq!((r.status, r.actual), (USBIF_STATUS_BABBLE, 10));
    assert_eq!(r.data, data[..10]);
    // A controller handing back more than the buffer as success: babble, never more.
    env.bus.with(id, |d| d.overrun_next = true);
    let r = f.bulk_in(&mut env, 1, 2, 1, 10);
    assert_eq!((r.status, r.actual), (USBIF_STATUS_BABBLE, 10));
    assert_eq!(r.data, data[10..20], "never more than the buffer");
}

/// A full-speed device on port 1 of frontend 5's controller, enumerated at address 2, and
/// the pipe to its interrupt IN endpoint 3.
fn interrupt_device() -> (Env, usbback::host::HostDeviceId, Front, UsbifPipe) {
    let mut env = Env::new();
    let id = env.bus.attach("1-1", Speed::Full);
    let mut f = Front::attach(&mut env, 5, 0, 1, &["1-1"]);
    f.port_changes();
    f.enumerate(&mut env, 1, 2);
    let intr = UsbifPipe::new(1, 2, 3, true, UsbPipeType::Interrupt);
    (env, id, f, intr)
}

#[test]
fn an_unlink_crossing_its_answer_is_answered_ok_and_is_no_error() {
    let (mut env, id, mut f, intr) = interrupt_device();
    let t = f.build(intr, [8, 0, 0, 0, 0, 0, 0, 0], &[], 8);
    f.submit(&t.req);
    env.settle();
    // The device answers; the frontend, not having seen the answer yet, unlinks it.
    assert!(env.bus.interrupt(id, &[1, 2, 3]));
    env.settle();
    let r = f.response_to(t.req.id).expect("answered");
    assert_eq!((r.status, r.actual_length), (USBIF_STATUS_OK, 3));
    let unlink = |f: &mut Front, env: &mut Env| {
        let mut u = f.build(intr.with_unlink(), [0; 8], &[], 0);
        u.req.u[..2].copy_from_slice(&t.req.id.to_le_bytes());
        f.run(env, u).status
    };
    assert_eq!(unlink(&mut f, &mut env), USBIF_STATUS_OK);
    let stats = env.vusb(5, 0, |v| v.stats().clone());
    assert_eq!((stats.late_unlinks, stats.unlinks), (1, 0));
    assert_eq!(stats.errors.total(), 0, "no error counted or logged");
    assert!(env.bus.0.borrow().cancels.is_empty(), "nothing to cancel");
    // Unlinking it again is the frontend's error.
    assert_eq!(unlink(&mut f, &mut env), USBIF_STATUS_INVAL);
    assert_eq!(env.vusb(5, 0, |v| v.stats().errors.total()), 1);
}

#[test]
fn the_time_a_urb_is_held_is_counted_from_taking_it_to_answering_it() {
    let (mut env, id, mut f, intr) = interrupt_device();
    let before = env.vusb(5, 0, |v| v.stats().clone());
    let t = f.build(intr, [8, 0, 0, 0, 0, 0, 0, 0], &[], 8);
    f.submit(&t.req);
    env.settle();
    env.world.advance(3_000_000);
    assert!(env.bus.interrupt(id, &[1, 2, 3]));
    env.settle();
    assert!(f.response_to(t.req.id).is_some(), "answered");
    let after = env.vusb(5, 0, |v| v.stats().clone());
    assert_eq!(after.answered - before.answered, 1);
    let held = after.held_us - before.held_us;
    assert!((3000..3100).contains(&held), "held {held} us, not 3 ms");
}

#[test]
fn unlink_cancels_and_detach_fails_what_is_in_flight() {
    let (mut env, id, mut f, intr) = interrupt_device();
    let pending = f.build(intr, [8, 0, 0, 0, 0, 0, 0, 0], &[], 8);
    f.submit(&pending.req);
    env.settle();
    assert_eq!(f.responses(), vec![], "an interrupt IN waits for data");
    assert_eq!(env.vusb(5, 0, |v| v.in_flight()), 1);
    // Unlink it.
    let mut u = f.build(intr.with_unlink(), [0; 8], &[], 0);
    u.req.u[..2].copy_from_slice(&pending.req.id.to_le_bytes());
    f.submit(&u.req);
    env.settle();
    let mut got: Vec<(u16, i32)> = f.responses().iter().map(|r| (r.id, r.status)).collect();
    got.sort();
    let mut want = vec![
        (pending.req.id, USBIF_STATUS_SHUTDOWN),
        (u.req.id, USBIF_STATUS_OK),
    ];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        env.bus.0.borrow().cancels.len(),
        1,
        "cancelled on the controller"
    );
    assert_eq!(env.vusb(5, 0, |v| v.stats().unlinks), 1);
    // A fresh interrupt transfer completes when the device has data.
    let b = f.build(intr, [8, 0, 0, 0, 0, 0, 0, 0], &[], 8);
    let bid = b.req.id;
    f.submit(&b.req);
    env.settle();
    assert!(env.bus.interrupt(id, &[1, 2, 3]));
    env.settle();
    let r = f.response_to(bid).expect("answered");
    assert_eq!((r.status, r.actual_length), (USBIF_STATUS_OK, 3));
    // One more waits; the device goes away: it is answered NODEV.
    let c = f.build(intr, [8, 0, 0, 0, 0, 0, 0, 0], &[], 8);
    f.submit(&c.req);
    env.settle();
    env.bus.detach(id);
    env.settle();
    let r = f.response_to(c.req.id).expect("answered at detach");
    assert_eq!(r.status, USBIF_STATUS_NODEV);
    assert_eq!(f.port_changes(), vec![(1, USBIF_SPEED_NONE)]);
    assert_eq!(env.vusb(5, 0, |v| v.in_flight()), 0);
}

#[test]
fn disconnect_releases_the_device_and_reconnect_announces_it_again() {
    let mut env = Env::new();
    env.bus.attach("1-1", Speed::High);
    let mut f = Front::attach(&mut env, 5, 0, 1, &["1-1"]);
    assert_eq!(f.port_changes(), vec![(1, USBIF_SPEED_HIGH)]);
    f.enumerate(&mut env, 1, 2);
    f.state("6");
    env.settle();
    assert_eq!(env.be_key(&f.dev, "state").as_deref(), Some("6"));
    assert_eq!(
        env.hub
            .borrow()
            .devices()
            .filter(|(_, p)| p.owner.is_some())
            .count(),
        0
    );
    assert_eq!(env.world.live_mappings(DD), 0, "rings unmapped");
    f.state("1");
    env.settle();
    f.connect(&mut env);
    assert_eq!(env.be_key(&f.dev, "state").as_deref(), Some("4"));
    assert_eq!(f.port_changes(), vec![(1, USBIF_SPEED_HIGH)]);
    f.enumerate(&mut env, 1, 2);
    f.loopback(&mut env, 1, 2, &pattern(2000, 7));
}

#[test]
fn one_device_assigned_to_two_ports_appears_once() {
    let mut env = Env::new();
    env.bus.attach("1-1", Speed::High);
    let mut f = Front::attach(&mut env, 5, 0, 2, &["1-1", "1-1"]);
    assert_eq!(f.port_changes(), vec![(1, USBIF_SPEED_HIGH)]);
    assert_eq!(env.bus.enables(), 1);
}

#[test]
fn isochronous_out_and_in_with_frame_descriptors() {
    let mut env = Env::new();
    let id = env.bus.attach("1-1", Speed::Full);
    let mut f = Front::attach(&mut env, 5, 0, 1, &["1-1"]);
    f.port_changes();
    f.enumerate(&mut env, 1, 2);
    // OUT: three packets to the sink, the middle one at an odd place.
    let out = pattern(600, 30);
    let packets = [(0, 192), (300, 192), (500, 100)];
    let (r, back, _) = f.iso(&mut env, (1, 2), 4, false, &packets, &out, 0);
    assert_eq!(
        (r.status, r.actual_length, r.error_count),
        (USBIF_STATUS_OK, 484, 0)
    );
    assert_eq!(r.start_frame, 7);
    let sink = env.bus.with(id, |d| d.iso_sink.clone());
    assert_eq!(
        sink,
        vec![
            out[0..192].to_vec(),
            out[300..492].to_vec(),
            out[500..600].to_vec()
        ]
    );
    for (d, &(offset, length)) in back.iter().zip(&packets) {
        assert_eq!(
            (d.offset, d.length, d.actual_length, d.status),
            (offset, length, length, 0)
        );
    }
    // IN: four packets of 100; odd ones come back one byte short, packet 2 fails.
    env.bus.with(id, |d| d.iso_fail.insert(2));
    let packets = [(0, 100), (100, 100), (200, 100), (300, 100)];
    let (r, back, data) = f.iso(&mut env, (1, 2), 5, true, &packets, &[], 400);
    assert_eq!(
        (r.status, r.actual_length, r.error_count),
        (USBIF_STATUS_OK, 199 + 99, 1)
    );
    assert_eq!(r.start_frame, 42);
    let got: Vec<(u32, i32)> = back.iter().map(|d| (d.actual_length, d.status)).collect();
    assert_eq!(
        got,
        vec![(100, 0), (99, 0), (0, USBIF_STATUS_IOERROR), (99, 0)]
    );
    assert_eq!(data[..100], [1; 100]);
    assert_eq!(data[100..199], [2; 99]);
    assert_eq!(data[300..399], [4; 99]);
    assert_eq!(env.vusb(5, 0, |v| v.stats().isochronous), 2);
}

#[test]
fn a_device_that_cannot_be_enabled_is_not_announced_nor_retried_every_pass() {
    let mut env = Env::new();
    env.bus.attach("1-1", Speed::High);
    env.bus.0.borrow_mut().fail_enable = true;
    let mut f = Front::attach(&mut env, 5, 0, 1, &["1-1"]);
    env.world.advance(1_000_000);
    env.settle();
    assert_eq!(f.port_changes(), vec![]);
    assert_eq!(env.bus.enables(), 1, "tried once");
    // Reassigned (or replugged): tried again, and now it works.
    env.bus.0.borrow_mut().fail_enable = false;
    env.assign(&f.dev.clone(), 1, "1-1");
    assert_eq!(f.port_changes(), vec![(1, USBIF_SPEED_HIGH)]);
    assert_eq!(env.bus.enables(), 2);
    f.enumerate(&mut env, 1, 2);
}
