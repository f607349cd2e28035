//! The card's policy: `xdd-policy` in its backend directory (written by dom0) decides which
//! streams may open and the volume they start at; without it the driver domain's
//! `audioback.policy=` default applies; an unreadable policy allows nothing.

mod common;

use audioback::policy::Policy;
use audioback::stats::ErrorClass;
use audioback::Options;
use common::*;

fn set_policy(env: &mut Env, value: &str) {
    env.world
        .write_as(
            0,
            &format!("/local/domain/{DD}/backend/vsnd/5/0/xdd-policy"),
            value.as_bytes(),
        )
        .unwrap();
}

fn denied(env: &Env) -> u64 {
    env.backend
        .borrow()
        .device(5, 0)
        .unwrap()
        .stats()
        .errors(ErrorClass::Denied)
}

/// A constant stereo s16 signal.
fn constant(value: i16, frames: usize) -> Vec<u8> {
    (0..frames * 2).flat_map(|_| value.to_le_bytes()).collect()
}

#[test]
fn the_cards_policy_decides_what_opens_and_the_volume() {
    let mut env = Env::new();
    let keys = card_keys(&[("pb", "p"), ("cap", "c")], &[]);
    let mut f = Front::attach(&mut env, 5, 0, &keys);
    set_policy(&mut env, "play volume_mdb=-6021");
    assert_eq!(f.open(&mut env, 1, STEREO48), -13, "recording not allowed");
    assert_eq!(denied(&env), 1);
    assert_eq!(f.open(&mut env, 0, STEREO48), 0);
    let data = constant(8000, 4 * 1024);
    let mut p = Player::new(0, data, STEREO48.buffer as usize);
    play_all(&mut env, &mut [(&mut f, &mut p)], 5);
    // -6.021 dB is half the amplitude.
    let played: Vec<i16> = env.played().into_iter().filter(|&s| s != 0).collect();
    assert!(played.len() >= 4 * 1024 * 2, "{} samples", played.len());
    assert!(
        played.iter().all(|&s| (3995..=4005).contains(&s)),
        "{:?}",
        &played[..8]
    );
}

#[test]
fn a_rewritten_policy_applies_from_the_next_open() {
    let mut env = Env::new();
    let keys = card_keys(&[("pb", "p"), ("cap", "c")], &[]);
    let mut f = Front::attach(&mut env, 5, 0, &keys);
    set_policy(&mut env, "play");
    assert_eq!(f.open(&mut env, 1, STEREO48), -13, "recording not allowed");
    assert_eq!(f.open(&mut env, 0, STEREO48), 0);
    // dom0 rewrites it (xddctl up with an edited appliance file) while the card stays
    // connected: the next OPENs follow the new value.
    set_policy(&mut env, "record");
    assert_eq!(f.open(&mut env, 1, STEREO48), 0, "recording now allowed");
    assert_eq!(f.close(&mut env, 0), 0);
    assert_eq!(
        f.open(&mut env, 0, STEREO48),
        -13,
        "playing no longer allowed"
    );
    assert_eq!(denied(&env), 2);
}

#[test]
fn without_a_policy_the_default_applies_until_dom0_writes_one() {
    let options = Options {
        policy: Policy::NONE,
        ..Options::default()
    };
    let mut env = Env::with_options(options);
    let keys = card_keys(&[("pb", "p"), ("cap", "c")], &[]);
    let mut f = Front::attach(&mut env, 5, 0, &keys);
    assert_eq!(f.open(&mut env, 0, STEREO48), -13);
    assert_eq!(f.open(&mut env, 1, STEREO48), -13);
    // dom0 writes the card's policy late: the next OPEN reads it.
    set_policy(&mut env, "record");
    assert_eq!(f.open(&mut env, 1, STEREO48), 0);
    assert_eq!(f.open(&mut env, 0, STEREO48), -13);
    assert_eq!(denied(&env), 3);
}

#[test]
fn a_policy_that_does_not_parse_allows_nothing() {
    let mut env = Env::new();
    let keys = card_keys(&[("pb", "p")], &[]);
    let mut f = Front::attach(&mut env, 5, 0, &keys);
    set_policy(&mut env, "play loud");
    assert_eq!(f.open(&mut env, 0, STEREO48), -13);
    // Corrected, it applies at the next OPEN.
    set_policy(&mut env, "play");
    assert_eq!(f.open(&mut env, 0, STEREO48), 0);
    assert_eq!(denied(&env), 1);
}
