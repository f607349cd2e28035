//! The data path's coalescing window (`netback.coalesce_us`): after a pass that moved
//! packets, what arrives within the window waits for one pass at its end, without keeping
//! the driver domain awake meanwhile.

mod common;

use common::*;

fn stats(h: &Harness) -> netback::datapath::DatapathStats {
    h.netdd.dp.borrow().stats()
}

#[test]
fn packets_within_the_window_wait_for_one_pass_at_its_end() {
    let mut h = Harness::new("netback.uplink=off netback.coalesce_us=250");
    let mut a = h.guest(5, FrontOpts::linux(5));
    let mut b = h.guest(6, FrontOpts::linux(6));
    let frame = |n: u32| udp_frame(mac(5), mac(6), ip(6), ip(5), &pattern(100, n));
    // After an idle spell the first packet goes at once.
    h.advance(1_000_000);
    b.send(&frame(1), &SendOpts::default());
    h.settle();
    assert_eq!(a.take_received().len(), 1, "the first packet waited");
    // Within the window: held, and the domain sleeps (its ports taken, not left fired).
    let before = stats(&h);
    b.send(&frame(2), &SendOpts::default());
    h.settle();
    b.send(&frame(3), &SendOpts::default());
    h.settle();
    assert!(
        a.take_received().is_empty(),
        "a packet went inside the window"
    );
    assert!(
        !h.dd.has_wakeup(),
        "a held notification keeps the driver domain awake"
    );
    let held = stats(&h);
    assert!(held.coalesced >= 1, "{held:?}");
    assert_eq!(held.busy_passes, before.busy_passes);
    // The window's end: both in one pass, in order.
    h.advance(250_000);
    let got: Vec<Vec<u8>> = a.take_received().into_iter().map(|r| r.data).collect();
    assert_eq!(got, [frame(2), frame(3)]);
    assert_eq!(stats(&h).busy_passes, before.busy_passes + 1);
}

#[test]
fn without_the_option_every_packet_goes_at_once() {
    let mut h = Harness::new("netback.uplink=off");
    let mut a = h.guest(5, FrontOpts::linux(5));
    let mut b = h.guest(6, FrontOpts::linux(6));
    for n in 0..3 {
        b.send(
            &udp_frame(mac(5), mac(6), ip(6), ip(5), &pattern(100, n)),
            &SendOpts::default(),
        );
        h.settle();
        assert_eq!(a.take_received().len(), 1);
    }
    assert_eq!(stats(&h).coalesced, 0);
}

#[test]
fn the_window_is_an_option_with_a_bounded_range() {
    let refused = common::boot(
        &minios::host::World::new().create_domain(DD, "netdd"),
        "netback.coalesce_us=5000",
        None,
    );
    let err = refused.err().expect("a window over 2 ms is refused");
    assert!(
        err.to_string().contains("netback.coalesce_us=5000"),
        "{err}"
    );
}
