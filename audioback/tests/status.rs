//! Each stream's state for `xddctl status`: `data/vsnd/<fe>/<devid>/stream/<i>` follows
//! open, start, underruns, pause and close, and goes away when the card disconnects.

mod common;

use common::*;
use xen_abi::sndif::*;

fn line(env: &Env, i: usize) -> Option<String> {
    env.world
        .read_str(&format!("/local/domain/{DD}/data/vsnd/5/0/stream/{i}"))
}

/// Lets the publication interval (1 s by default) pass.
fn a_second(env: &mut Env) {
    for _ in 0..1100 {
        env.advance(MS);
    }
}

#[test]
fn each_streams_state_and_underruns_are_published() {
    let mut env = Env::new();
    let keys = card_keys(&[("pb", "p"), ("cap", "c")], &[]);
    let mut f = Front::attach(&mut env, 5, 0, &keys);
    a_second(&mut env);
    assert_eq!(
        line(&env, 0).as_deref(),
        Some("playback closed, 0 underruns")
    );
    assert_eq!(
        line(&env, 1).as_deref(),
        Some("capture closed, 0 underruns")
    );

    assert_eq!(f.open(&mut env, 0, STEREO48), 0);
    a_second(&mut env);
    assert_eq!(
        line(&env, 0).as_deref(),
        Some("playback open 48000 Hz s16_le 2 ch, 0 underruns")
    );
    // One period of data, then it runs dry: underruns while it keeps running.
    assert_eq!(f.write(&mut env, 0, 0, &[1; 4096]), 0);
    assert_eq!(f.trigger(&mut env, 0, XENSND_OP_TRIGGER_START), 0);
    a_second(&mut env);
    let running = line(&env, 0).unwrap();
    let underruns = |l: &str| -> u64 {
        l.rsplit(", ")
            .next()
            .and_then(|t| t.strip_suffix(" underruns"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no underruns in {l:?}"))
    };
    assert!(
        running.starts_with("playback running 48000 Hz s16_le 2 ch, ") && underruns(&running) > 0,
        "{running}"
    );
    assert_eq!(f.trigger(&mut env, 0, XENSND_OP_TRIGGER_PAUSE), 0);
    a_second(&mut env);
    let paused = line(&env, 0).unwrap();
    assert!(paused.starts_with("playback paused 48000 Hz"), "{paused}");
    let n = underruns(&paused);
    // Closed, the stream keeps the underruns it had.
    assert_eq!(f.close(&mut env, 0), 0);
    a_second(&mut env);
    assert_eq!(
        line(&env, 0),
        Some(format!("playback closed, {n} underruns"))
    );
    assert_eq!(
        line(&env, 1).as_deref(),
        Some("capture closed, 0 underruns")
    );

    // The card disconnects: no streams to show.
    f.state("6");
    env.settle();
    assert_eq!(line(&env, 0), None);
    assert_eq!(line(&env, 1), None);
}
