//! The mixer on its own: clipping-safe sums and the latency bound (a voice started while
//! the card plays is heard within the card's queue of periods).

use std::cell::RefCell;
use std::rc::Rc;

use audioback::card::Direction;
use audioback::device::clock::{ClockDevice, Tap};
use audioback::device::DeviceParams;
use audioback::format::SampleFormat;
use audioback::mixer::{Engine, VoiceState};
use audioback::params::OpenParams;

const MS: u64 = 1_000_000;
const DEV: DeviceParams = DeviceParams {
    rate: 48_000,
    channels: 2,
    period_frames: 480,
};

fn engine() -> (Engine, Rc<RefCell<Tap>>) {
    let tap = Rc::new(RefCell::new(Tap::default()));
    let e = Engine::new(
        Box::new(ClockDevice::new(DEV, 4, Some(tap.clone()))),
        Box::new(ClockDevice::new(DEV, 4, Some(tap.clone()))),
        4,
    );
    (e, tap)
}

fn stereo48() -> OpenParams {
    OpenParams {
        format: SampleFormat::S16Le,
        channels: 2,
        rate: 48_000,
        buffer_bytes: 65536,
        period_bytes: 4096,
    }
}

fn frames(value: i16, n: usize) -> Vec<u8> {
    (0..n * 2).flat_map(|_| value.to_le_bytes()).collect()
}

#[test]
fn loud_streams_saturate_and_never_wrap() {
    let (mut e, tap) = engine();
    for v in [30_000i16, 20_000, -30_000] {
        let id = e.add(Direction::Playback, stereo48()).unwrap();
        let voice = e.voice_mut(id).unwrap();
        voice.push(&frames(v, 960)).unwrap();
        voice.push(&frames(v.saturating_mul(-1), 960)).unwrap();
        voice.state = VoiceState::Running;
    }
    // 30000 + 20000 - 30000 = 20000, then the negation: -20000. Now two voices alone.
    e.pump(0);
    e.pump(40 * MS);
    let played = tap.borrow().played.clone();
    assert_eq!(played[0], 20_000);
    assert_eq!(played[960 * 2], -20_000);
    let (mut e, tap) = engine();
    for v in [30_000i16, 30_000] {
        let id = e.add(Direction::Playback, stereo48()).unwrap();
        let voice = e.voice_mut(id).unwrap();
        voice.push(&frames(v, 480)).unwrap();
        voice.push(&frames(-v, 480)).unwrap();
        voice.state = VoiceState::Running;
    }
    e.pump(0);
    let played = tap.borrow().played.clone();
    assert_eq!(played[0], i16::MAX, "60000 clips to the top");
    assert_eq!(played[480 * 2], i16::MIN, "-60000 clips to the bottom");
    assert!(e.add(Direction::Playback, stereo48()).is_ok());
    assert!(e.add(Direction::Playback, stereo48()).is_ok());
    assert!(
        e.add(Direction::Playback, stereo48()).is_err(),
        "at most 4 voices"
    );
}

#[test]
fn a_started_voice_is_heard_within_the_queue() {
    let (mut e, tap) = engine();
    let a = e.add(Direction::Playback, stereo48()).unwrap();
    e.voice_mut(a).unwrap().push(&frames(1, 12_000)).unwrap();
    e.voice_mut(a).unwrap().state = VoiceState::Running;
    let mut now = 0;
    while now < 50 * MS {
        e.pump(now);
        now += 5 * MS;
    }
    let b = e.add(Direction::Playback, stereo48()).unwrap();
    e.voice_mut(b).unwrap().push(&frames(1000, 4800)).unwrap();
    e.voice_mut(b).unwrap().state = VoiceState::Running;
    let started_at_frame = now * 48_000 / 1_000_000_000;
    while now < 150 * MS {
        e.pump(now);
        now += 5 * MS;
    }
    let played = tap.borrow().played.clone();
    let first = played
        .iter()
        .position(|&s| s >= 1000)
        .expect("the second voice is heard")
        / 2;
    let delay = first as u64 - started_at_frame;
    assert!(delay <= 4 * 480, "heard after {delay} frames");
    assert_eq!(e.stats().device_underruns, 0);
}

#[test]
fn the_device_lingers_in_silence_after_the_last_stream_then_stops() {
    let tap = Rc::new(RefCell::new(Tap::default()));
    let mut e = Engine::new(
        Box::new(ClockDevice::new(DEV, 4, Some(tap.clone()))),
        Box::new(ClockDevice::new(DEV, 4, None)),
        4,
    )
    .with_linger(100 * MS);
    let a = e.add(Direction::Playback, stereo48()).unwrap();
    e.voice_mut(a).unwrap().push(&frames(7, 960)).unwrap();
    e.voice_mut(a).unwrap().state = VoiceState::Running;
    e.pump(0);
    e.voice_mut(a).unwrap().state = VoiceState::Stopped;
    let mut now = 0;
    let mut stopped_at = None;
    while now < 400 * MS {
        now += 5 * MS;
        if e.pump(now).is_none() && stopped_at.is_none() {
            stopped_at = Some(now);
        }
    }
    // Stopped after the linger and the queue (4 × 10 ms), not at once, and silent: no
    // underrun while it lingered.
    let at = stopped_at.expect("the device stops");
    assert!(
        (100 * MS..=160 * MS).contains(&at),
        "stopped at {} ms",
        at / MS
    );
    assert_eq!(e.stats().device_underruns, 0);
    let played = tap.borrow().played.clone();
    assert!(played[..960 * 2].iter().all(|&s| s == 7));
    assert!(played.len() >= (100 * 48) * 2, "{} samples", played.len());
    assert!(played[960 * 2..].iter().all(|&s| s == 0));
}
