//! Capture through the whole backend: what the card's "microphone" hears reaches the
//! guests that record, through READs at the positions CUR_POS reports — exact when the
//! formats match, converted (rate, channels, format) when they do not.

mod common;

use common::*;
use xen_abi::sndif::*;

/// Records like ALSA: start, then after each CUR_POS read what it made available.
fn record(env: &mut Env, f: &mut Front, s: usize, buffer: usize, want: usize) -> Vec<u8> {
    assert_eq!(f.trigger(env, s, XENSND_OP_TRIGGER_START), 0);
    let mut got = Vec::new();
    let mut read_to = 0u64;
    for _ in 0..10_000 {
        env.advance(5 * MS);
        for (_, pos) in f.streams[s].take_events() {
            while read_to < pos {
                let at = (read_to % buffer as u64) as usize;
                let n = ((pos - read_to) as usize).min(buffer - at);
                assert_eq!(f.rw(env, s, XENSND_OP_READ, at as u32, n as u32), 0);
                got.extend(f.streams[s].peek(at, n));
                read_to += n as u64;
            }
        }
        if got.len() >= want {
            break;
        }
    }
    assert_eq!(f.trigger(env, s, XENSND_OP_TRIGGER_STOP), 0);
    assert_eq!(f.streams[s].bad_ids, 0);
    got
}

#[test]
fn recording_at_the_card_format_is_exact() {
    let mut env = Env::new();
    let mut f = Front::attach(&mut env, 5, 0, &card_keys(&[("cap", "c")], &[]));
    let heard: Vec<i16> = (0..48_000 * 2)
        .map(|i| (i * 7 % 20_000 - 10_000) as i16)
        .collect();
    env.tap.borrow_mut().input.extend(&heard);
    assert_eq!(f.open(&mut env, 0, STEREO48), 0);
    let got = record(&mut env, &mut f, 0, 16384, 48_000 * 4);
    let got: Vec<i16> = got
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert!(got.len() >= heard.len(), "{} samples", got.len());
    assert!(
        got[..heard.len()] == heard[..],
        "recorded exactly what was heard"
    );
    assert_eq!(f.close(&mut env, 0), 0);
}

#[test]
fn recording_is_converted_and_fanned_out() {
    let mut env = Env::new();
    let keys = card_keys(&[("cap", "c")], &[("sample-rates", "16000,48000")]);
    let mut a = Front::attach(&mut env, 5, 0, &keys);
    let mut b = Front::attach(&mut env, 6, 0, &keys);
    // 1 s of a 500 Hz tone in both channels.
    let tone = sine_s16(500.0, 48_000, 2, 48_000, 12_000.0);
    let heard: Vec<i16> = tone
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    env.tap.borrow_mut().input.extend(&heard);
    let mono16 = OpenArgs {
        rate: 16_000,
        channels: 1,
        format: XENSND_PCM_FORMAT_S16_LE,
        buffer: 8192,
        period: 1024,
    };
    assert_eq!(a.open(&mut env, 0, mono16), 0);
    assert_eq!(b.open(&mut env, 0, STEREO48), 0);
    // Both record at once (the second guest's READs interleave with the first's).
    assert_eq!(b.trigger(&mut env, 0, XENSND_OP_TRIGGER_START), 0);
    let got = record(&mut env, &mut a, 0, 8192, 16_000 * 2 * 9 / 10);
    let x: Vec<f64> = got
        .chunks_exact(2)
        .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])))
        .collect();
    let mid = &x[1600..1600 + 8000];
    let found = dominant(mid, 16_000.0, 300.0, 700.0);
    assert!((found - 500.0).abs() < 2.0, "{found:.2} Hz");
    let amp = amplitude(mid, 500.0, 16_000.0);
    assert!((amp - 12_000.0).abs() < 600.0, "amplitude {amp:.0}");
    // The other guest got the same sound at its own format; as it never read, what it
    // holds is bounded by its buffer (the rest was dropped, counted).
    let pos = b.streams[0].take_events().last().map_or(0, |e| e.1);
    assert_eq!(pos, 16384, "second guest's position stops at its buffer");
    assert_eq!(b.rw(&mut env, 0, XENSND_OP_READ, 0, 16384), 0);
    let y: Vec<f64> = b.streams[0]
        .peek(0, 16384)
        .chunks_exact(4)
        .map(|f| f64::from(i16::from_le_bytes([f[0], f[1]])))
        .collect();
    assert!(amplitude(&y, 500.0, 48_000.0) > 10_000.0);
}

/// A driver domain that does not run in time while a guest records loses what the device
/// recorded beyond its queue of periods: one capture overrun, in the engine's counters and
/// in `data/status/capture-overruns`.
#[test]
fn a_late_mixer_loses_capture_periods_and_counts_them() {
    let mut env = Env::new();
    let mut f = Front::attach(&mut env, 5, 0, &card_keys(&[("cap", "c")], &[]));
    assert_eq!(f.open(&mut env, 0, STEREO48), 0);
    assert_eq!(f.trigger(&mut env, 0, XENSND_OP_TRIGGER_START), 0);
    for _ in 0..20 {
        env.advance(5 * MS);
    }
    assert_eq!(env.status("capture-overruns"), Some(0), "on time so far");
    assert_eq!(env.engine.borrow().stats().capture_overruns, 0);
    // The driver domain does not run for 300 ms: the device keeps 4 periods (40 ms).
    env.world.advance(300 * MS);
    env.settle();
    for _ in 0..300 {
        env.advance(5 * MS);
    }
    let st = env.engine.borrow().stats();
    assert_eq!(st.capture_overruns, 1, "{st:?}");
    assert_eq!(env.status("capture-overruns"), Some(1));
    assert_eq!(env.status("capture-bad-positions"), Some(0));
    assert_eq!(f.trigger(&mut env, 0, XENSND_OP_TRIGGER_STOP), 0);
}
