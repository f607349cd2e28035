//! The memory the data path keeps between passes (`datapath/kept.rs`): reused by busy passes
//! instead of allocated again, and bounded whatever the load was.

mod common;

use common::*;
use netback::datapath::{KeptMemory, KEEP_BYTES_MAX};

const CMD: &str = "netback.uplink=off";

fn kept(h: &Harness) -> KeptMemory {
    h.netdd.dp.borrow().kept_memory()
}

/// `senders` each send `rounds` × `per_round` frames to `to` (as netfront, ring refilled
/// every round); returns what `to` got.
fn stream(
    h: &mut Harness,
    senders: &mut [&mut TestFront],
    to: &mut TestFront,
    frame: &[u8],
    rounds: usize,
    per_round: usize,
) -> usize {
    let mut got = 0;
    for _ in 0..rounds {
        for s in senders.iter_mut() {
            for _ in 0..per_round {
                s.queue_frame(frame, &SendOpts::default());
            }
            s.push_tx();
        }
        h.settle();
        for s in senders.iter_mut() {
            s.poll();
        }
        got += to.take_received().len();
    }
    got
}

#[test]
fn busy_passes_reuse_the_kept_vectors() {
    let mut h = Harness::new(CMD);
    let mut a = h.guest(5, FrontOpts::linux(5));
    let mut b = h.guest(6, FrontOpts::linux(6));
    let frame = udp_frame(mac(5), mac(6), ip(6), ip(5), &pattern(22, 1));
    // Warm-up: the kept vectors get their room (and the switch learns a's address).
    let got = stream(&mut h, &mut [&mut b], &mut a, &frame, 4, 100);
    assert_eq!(got, 400);
    let warm = kept(&h);
    assert!(warm.bytes > 0, "room kept after busy passes: {warm:?}");
    // Steady load: the same room serves every pass.
    let got = stream(&mut h, &mut [&mut b], &mut a, &frame, 20, 100);
    assert_eq!(got, 2000);
    let steady = kept(&h);
    assert_eq!(
        steady.grows, warm.grows,
        "busy passes allocated their vectors again: {warm:?} -> {steady:?}"
    );
    assert_eq!(steady.bytes, warm.bytes);
}

#[test]
fn kept_memory_is_bounded() {
    let mut h = Harness::new("netback.uplink=off netback.tx_batch=256");
    let mut a = h.guest(5, FrontOpts::linux(5));
    let mut senders: Vec<TestFront> = (6..10)
        .map(|n| h.guest(n.into(), FrontOpts::linux(n)))
        .collect();
    // Four senders, 120 packets each at once: passes of 480 packets, more than is kept.
    let frame = |n: u8| udp_frame(mac(5), mac(n), ip(n), ip(5), &pattern(22, 1));
    for _ in 0..4 {
        for (s, n) in senders.iter_mut().zip(6u8..) {
            for _ in 0..120 {
                s.queue_frame(&frame(n), &SendOpts::default());
            }
            s.push_tx();
        }
        h.settle();
        for s in senders.iter_mut() {
            s.poll();
        }
        a.take_received();
    }
    let after = kept(&h);
    assert!(after.grows > 0);
    assert!(
        after.bytes <= KEEP_BYTES_MAX,
        "{} bytes kept, more than {KEEP_BYTES_MAX}",
        after.bytes
    );
}
