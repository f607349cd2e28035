//! Playback through the whole backend: a test `snd_xen_front` opens, writes, triggers; the
//! recording card shows what was played (intact, mixed, resampled, at the set volume);
//! CUR_POS events come with consecutive ids; HW_PARAM_QUERY answers the configuration.

mod common;

use common::*;
use xen_abi::sndif::*;

/// 47 periods of 1024 stereo s16 frames.
const FRAMES: usize = 47 * 1024;

fn pattern(frames: usize) -> Vec<u8> {
    (0..frames * 2)
        .flat_map(|i| {
            let v = ((i as u32).wrapping_mul(2_654_435_761) >> 16) as i16 | 1;
            v.to_le_bytes()
        })
        .collect()
}

#[test]
fn samples_reach_the_card_intact_without_gaps() {
    let mut env = Env::new();
    let mut f = Front::attach(&mut env, 5, 0, &card_keys(&[("pb", "p")], &[]));
    assert_eq!(f.open(&mut env, 0, STEREO48), 0);
    let data = pattern(FRAMES);
    let mut p = Player::new(0, data.clone(), STEREO48.buffer as usize);
    play_all(&mut env, &mut [(&mut f, &mut p)], 5);
    let played = env.played();
    let want: Vec<i16> = data
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let start = played
        .iter()
        .position(|&s| s != 0)
        .expect("something played");
    assert!(
        played.len() >= start + want.len(),
        "all {} samples played",
        want.len()
    );
    let got = &played[start..start + want.len()];
    let first_bad = got.iter().zip(&want).position(|(a, b)| a != b);
    assert_eq!(first_bad, None, "played bit-exact, no gap, no repeat");
    assert_eq!(env.engine.borrow().stats().device_underruns, 0);
    // CUR_POS: one per period at least, consecutive ids (none dropped by the frontend),
    // positions growing to the end.
    let st = &f.streams[0];
    assert_eq!(st.bad_ids, 0, "every event id was the next one");
    assert!(st.events.len() >= 40, "{} events", st.events.len());
    for (k, (id, _)) in st.events.iter().enumerate() {
        assert_eq!(usize::from(*id), k);
    }
    assert!(st.events.windows(2).all(|w| w[1].1 > w[0].1));
    assert_eq!(st.events.last().unwrap().1, data.len() as u64);
    // Every event falls in a later period than the one before.
    assert!(st.events.windows(2).all(|w| w[1].1 / 4096 > w[0].1 / 4096));
    assert_eq!(f.close(&mut env, 0), 0);
    assert_eq!(env.engine.borrow().voices(), 0);
}

/// A mixer that runs late (the driver domain not scheduled in time) makes the device play
/// silence: counted as device underruns in the driver domain's `data/status/`, apart from
/// the guests' own underruns, with the periods played beside them.
#[test]
fn a_late_mixer_shows_in_the_driver_domains_status() {
    let mut env = Env::new();
    let mut f = Front::attach(&mut env, 5, 0, &card_keys(&[("pb", "p")], &[]));
    assert_eq!(f.open(&mut env, 0, STEREO48), 0);
    let mut p = Player::new(0, pattern(20 * 1024), STEREO48.buffer as usize);
    for _ in 0..20 {
        p.step(&mut env, &mut f);
        env.advance(5 * MS);
    }
    assert_eq!(env.status("device-underruns"), Some(0), "on time so far");
    let late = env.status("mixer-late-max-us").unwrap();
    assert!(late <= 5_000, "late by at most a step so far: {late} us");
    // The driver domain does not run for 300 ms: its 4 queued periods (40 ms) run out.
    env.world.advance(300 * MS);
    env.settle();
    play_all(&mut env, &mut [(&mut f, &mut p)], 5);
    env.advance(1500 * MS);
    let st = env.engine.borrow().stats();
    assert!(st.device_underruns >= 1, "{st:?}");
    assert_eq!(env.status("device-underruns"), Some(st.device_underruns));
    assert_eq!(env.status("periods-played"), Some(st.periods_played));
    assert!(st.periods_played >= 40, "{st:?}");
    assert_eq!(env.status("periods-recorded"), Some(0));
    // A clock-paced capture device never stalls; nothing records here, so nothing is lost;
    // a clock-paced device reports no position that makes no sense.
    assert_eq!(env.status("capture-stalls"), Some(0));
    assert_eq!(env.status("capture-stall-frames"), Some(0));
    assert_eq!(env.status("capture-overruns"), Some(0));
    assert_eq!(env.status("capture-bad-positions"), Some(0));
    assert_eq!(env.status("playback-bad-positions"), Some(0));
    // The stall shows as the mixer's lateness.
    let late = env.status("mixer-late-max-us").unwrap();
    assert!((250_000..=300_000).contains(&late), "{late} us");
    assert_eq!(late, st.late_max_us);
}

#[test]
fn a_last_partial_period_is_reported_so_a_drain_ends() {
    let mut env = Env::new();
    let mut f = Front::attach(&mut env, 5, 0, &card_keys(&[("pb", "p")], &[]));
    assert_eq!(f.open(&mut env, 0, STEREO48), 0);
    // 10.5 periods: ALSA's drain waits for a position at the very end.
    let data = pattern(10 * 1024 + 512);
    let mut p = Player::new(0, data.clone(), STEREO48.buffer as usize);
    play_all(&mut env, &mut [(&mut f, &mut p)], 5);
    let st = &f.streams[0];
    assert_eq!(st.events.last().unwrap().1, data.len() as u64);
    assert_eq!(st.bad_ids, 0);
}

#[test]
fn two_guests_are_mixed_and_a_44k1_stream_is_resampled() {
    let mut env = Env::new();
    let keys = card_keys(&[("pb", "p")], &[]);
    let mut a = Front::attach(&mut env, 5, 0, &keys);
    let mut b = Front::attach(&mut env, 6, 0, &keys);
    let mut c = Front::attach(&mut env, 7, 0, &keys);
    assert_eq!(a.open(&mut env, 0, STEREO48), 0);
    assert_eq!(b.open(&mut env, 0, STEREO48), 0);
    let at44 = OpenArgs {
        rate: 44_100,
        ..STEREO48
    };
    assert_eq!(c.open(&mut env, 0, at44), 0);
    let mut pa = Player::new(0, sine_s16(440.0, 48_000, 2, FRAMES, 8000.0), 16384);
    let mut pb = Player::new(0, sine_s16(660.0, 48_000, 2, FRAMES, 8000.0), 16384);
    let mut pc = Player::new(0, sine_s16(1000.0, 44_100, 2, 43 * 1024, 8000.0), 16384);
    play_all(
        &mut env,
        &mut [(&mut a, &mut pa), (&mut b, &mut pb), (&mut c, &mut pc)],
        5,
    );
    let played = env.played();
    for ch in 0..2 {
        let x = channel(&played, ch);
        let x = trim(&x, 100.0);
        // The middle second, away from starts and ends.
        let mid = &x[4800..4800 + 38_400];
        for (freq, what) in [(440.0, "guest 5"), (660.0, "guest 6"), (1000.0, "guest 7")] {
            let amp = amplitude(mid, freq, 48_000.0);
            assert!(
                (amp - 8000.0).abs() < 400.0,
                "{what}'s {freq} Hz at amplitude {amp:.0} (channel {ch})"
            );
            let found = dominant(mid, 48_000.0, freq - 40.0, freq + 40.0);
            assert!((found - freq).abs() < 2.0, "{what}: {found:.2} Hz");
        }
        // Nothing else: a 44.1 kHz stream played unconverted would sound at 1088 Hz.
        assert!(
            amplitude(mid, 1088.4, 48_000.0) < 200.0,
            "no unconverted tone"
        );
        assert!(amplitude(mid, 550.0, 48_000.0) < 200.0, "no spurious tone");
    }
    assert_eq!(env.engine.borrow().stats().device_underruns, 0);
}

#[test]
fn volume_and_mute_apply_per_channel_in_the_backend() {
    let mut env = Env::new();
    let mut f = Front::attach(&mut env, 5, 0, &card_keys(&[("pb", "p")], &[]));
    assert_eq!(f.open(&mut env, 0, STEREO48), 0);
    // The volumes travel through the buffer (its last bytes here, as sndif allows).
    let vol_at = STEREO48.buffer - 8;
    let set = |f: &mut Front, env: &mut Env, l: i32, r: i32| {
        let mut b = l.to_le_bytes().to_vec();
        b.extend(r.to_le_bytes());
        f.streams[0].fill(vol_at as usize, &b);
        f.rw(env, 0, XENSND_OP_SET_VOLUME, vol_at, 8)
    };
    assert_eq!(set(&mut f, &mut env, -6021, 0), 0, "left -6.021 dB");
    assert_eq!(f.rw(&mut env, 0, XENSND_OP_GET_VOLUME, 0, 8), 0);
    let got = f.streams[0].peek(0, 8);
    assert_eq!(got[..4], (-6021i32).to_le_bytes());
    assert_eq!(got[4..], 0i32.to_le_bytes());
    // Out of range: refused whole.
    assert_eq!(set(&mut f, &mut env, -6021, 99_000), -22);
    assert_eq!(f.rw(&mut env, 0, XENSND_OP_GET_VOLUME, 0, 8), 0);
    assert_eq!(f.streams[0].peek(4, 4), 0i32.to_le_bytes());
    // Play a tone into 3/4 of the buffer (the rest is the volume area): half a second.
    let tone = sine_s16(440.0, 48_000, 2, 24 * 1024, 16000.0);
    let mut p = Player::new(0, tone, 12288);
    play_all(&mut env, &mut [(&mut f, &mut p)], 5);
    let played = env.played();
    let (l, r) = (channel(&played, 0), channel(&played, 1));
    let (l, r) = (trim(&l, 100.0), trim(&r, 100.0));
    let al = amplitude(&l[2400..2400 + 19_200], 440.0, 48_000.0);
    let ar = amplitude(&r[2400..2400 + 19_200], 440.0, 48_000.0);
    assert!((al - 8000.0).abs() < 80.0, "left halved: {al:.0}");
    assert!((ar - 16000.0).abs() < 160.0, "right unity: {ar:.0}");
    // Mute the right channel only, play again.
    f.streams[0].fill(vol_at as usize, &[0, 1]);
    assert_eq!(f.rw(&mut env, 0, XENSND_OP_MUTE, vol_at, 2), 0);
    let before = env.played().len();
    let tone = sine_s16(440.0, 48_000, 2, 24 * 1024, 16000.0);
    let mut p = Player::new(0, tone, 12288);
    p.hw = 0;
    // A new OPEN starts positions at 0 again.
    assert_eq!(f.close(&mut env, 0), 0);
    assert_eq!(f.open(&mut env, 0, STEREO48), 0);
    assert_eq!(f.rw(&mut env, 0, XENSND_OP_GET_VOLUME, 0, 8), 0);
    assert_eq!(
        f.streams[0].peek(0, 4),
        0i32.to_le_bytes(),
        "volume resets per open"
    );
    f.streams[0].fill(vol_at as usize, &[0, 1]);
    assert_eq!(f.rw(&mut env, 0, XENSND_OP_MUTE, vol_at, 2), 0);
    play_all(&mut env, &mut [(&mut f, &mut p)], 5);
    let played = env.played()[before..].to_vec();
    let (l, r) = (channel(&played, 0), channel(&played, 1));
    let l = trim(&l, 100.0);
    assert!(amplitude(&l[2400..2400 + 19_200], 440.0, 48_000.0) > 15_000.0);
    assert!(r.iter().all(|&v| v == 0.0), "right muted");
    // Unmute: the length must match the channels.
    assert_eq!(f.rw(&mut env, 0, XENSND_OP_UNMUTE, vol_at, 3), -22);
    assert_eq!(f.rw(&mut env, 0, XENSND_OP_UNMUTE, vol_at, 2), 0);
}

#[test]
fn hw_param_query_answers_the_configuration() {
    let mut env = Env::new();
    let keys = card_keys(
        &[("pb", "p")],
        &[
            ("sample-rates", "8000,44100,48000"),
            ("buffer-size", "32768"),
        ],
    );
    let mut f = Front::attach(&mut env, 5, 0, &keys);
    let all = XensndQueryHwParam {
        formats: u64::MAX,
        rates: XensndRange {
            min: 0,
            max: u32::MAX,
        },
        channels: XensndRange {
            min: 0,
            max: u32::MAX,
        },
        buffer: XensndRange {
            min: 0,
            max: u32::MAX,
        },
        period: XensndRange {
            min: 0,
            max: u32::MAX,
        },
    };
    let r = f.query(&mut env, 0, &all);
    assert_eq!(r.status, 0);
    let a: XensndQueryHwParam = r.payload().unwrap();
    assert_eq!(a.formats, 1 << 1 | 1 << 2 | 1 << 14, "u8, s16_le, float_le");
    assert_eq!((a.rates.min, a.rates.max), (8000, 48000));
    assert_eq!((a.channels.min, a.channels.max), (1, 2));
    // 32 KiB of u8 mono at most; 64 bytes of float stereo at least.
    assert_eq!((a.buffer.min, a.buffer.max), (8, 32768));
    assert_eq!((a.period.min, a.period.max), (8, 32768));
    // ALSA narrows: s16 stereo, 44.1..48 kHz.
    let narrow = XensndQueryHwParam {
        formats: 1 << 2,
        rates: XensndRange {
            min: 44100,
            max: 96000,
        },
        channels: XensndRange { min: 2, max: 2 },
        ..all
    };
    let a: XensndQueryHwParam = f.query(&mut env, 0, &narrow).payload().unwrap();
    assert_eq!(a.formats, 1 << 2);
    assert_eq!((a.rates.min, a.rates.max), (44100, 48000));
    assert_eq!((a.buffer.min, a.buffer.max), (16, 8192));
    // Nothing left: -EINVAL.
    let none = XensndQueryHwParam {
        rates: XensndRange {
            min: 96000,
            max: 192000,
        },
        ..all
    };
    let r = f.query(&mut env, 0, &none);
    assert_eq!(r.status, -22);
    assert!(r.resp.iter().all(|&b| b == 0), "no payload on refusal");
    // What the query offers, OPEN accepts.
    let open = OpenArgs {
        rate: 8000,
        format: 1,
        channels: 1,
        buffer: 32768,
        period: 64,
    };
    assert_eq!(f.open(&mut env, 0, open), 0);
}

#[test]
fn pause_resume_and_stop_move_the_stream() {
    let mut env = Env::new();
    let mut f = Front::attach(&mut env, 5, 0, &card_keys(&[("pb", "p")], &[]));
    assert_eq!(f.open(&mut env, 0, STEREO48), 0);
    assert_eq!(f.write(&mut env, 0, 0, &pattern(4096)), 0, "a full buffer");
    // Writing past what the buffer can hold in flight is refused.
    assert_eq!(f.write(&mut env, 0, 0, &pattern(16)), -22);
    assert_eq!(f.trigger(&mut env, 0, XENSND_OP_TRIGGER_START), 0);
    assert_eq!(
        f.trigger(&mut env, 0, XENSND_OP_TRIGGER_START),
        -22,
        "already running"
    );
    let step = |env: &mut Env, ms: u64| {
        for _ in 0..ms {
            env.advance(MS);
        }
    };
    step(&mut env, 20);
    assert_eq!(f.trigger(&mut env, 0, XENSND_OP_TRIGGER_PAUSE), 0);
    let at_pause = env.engine.borrow().stats().periods_played;
    f.streams[0].take_events();
    let pos = f.streams[0].events.last().map_or(0, |e| e.1);
    // What the card had queued still plays out (the position is what it played), then
    // nothing moves.
    step(&mut env, 60);
    f.streams[0].take_events();
    let played_out = f.streams[0].events.last().map_or(0, |e| e.1);
    let queue_bytes = 4 * DEVICE.period_frames as u64 * 4;
    // 20 ms played before the pause (192 bytes a millisecond), then at most the queue.
    assert!(
        played_out <= 20 * 192 + queue_bytes,
        "{pos} then {played_out}"
    );
    step(&mut env, 50);
    f.streams[0].take_events();
    assert_eq!(
        f.streams[0].events.last().map_or(0, |e| e.1),
        played_out,
        "no progress while paused"
    );
    assert_eq!(
        env.engine.borrow().stats().periods_played,
        at_pause,
        "nothing more is mixed"
    );
    assert_eq!(f.trigger(&mut env, 0, XENSND_OP_TRIGGER_RESUME), 0);
    step(&mut env, 60);
    f.streams[0].take_events();
    assert!(
        f.streams[0].events.last().unwrap().1 > played_out,
        "resumed"
    );
    assert_eq!(f.trigger(&mut env, 0, XENSND_OP_TRIGGER_STOP), 0);
    // Stopped: the queue was dropped, a whole buffer fits again.
    assert_eq!(f.write(&mut env, 0, 0, &pattern(4096)), 0);
    assert_eq!(
        f.trigger(&mut env, 0, XENSND_OP_TRIGGER_RESUME),
        -22,
        "not paused"
    );
}

/// ALSA's recovery from an underrun (or a drop) stops the stream and prepares it again:
/// ALSA counts from 0 while Linux's `snd_xen_front` keeps its pointer modulo the buffer,
/// so a frontend stopped at a position inside the buffer writes that much more than the
/// buffer holds once it restarts. The backend moves the position to the buffer's next
/// multiple at the STOP and tells the frontend, and counts from there itself (not from
/// what its mixer had taken beyond the last report): the frontend's refill then fits.
#[test]
fn a_stop_and_restart_keeps_the_frontends_pointer_in_step() {
    let mut env = Env::new();
    let mut f = Front::attach(&mut env, 5, 0, &card_keys(&[("pb", "p")], &[]));
    // Periods of two device periods: the mixer takes bytes no report covers yet.
    let open = OpenArgs {
        period: 8192,
        ..STEREO48
    };
    let buffer = open.buffer as u64;
    assert_eq!(f.open(&mut env, 0, open), 0);
    let mut p = Player::new(0, pattern(40 * 1024), buffer as usize);
    p.step(&mut env, &mut f);
    // Run until the frontend's position is inside the buffer and the mixer has taken
    // bytes beyond it.
    for _ in 0..500 {
        env.advance(MS);
        p.step(&mut env, &mut f);
        let taken = env.engine.borrow().stats().periods_played * 4096;
        if p.hw % buffer != 0 && taken > p.hw {
            break;
        }
    }
    let stopped_at = p.hw;
    assert_ne!(stopped_at % buffer, 0, "stopped inside the buffer");
    assert_eq!(f.trigger(&mut env, 0, XENSND_OP_TRIGGER_STOP), 0);
    for (_, pos) in f.streams[0].take_events() {
        p.hw = pos;
    }
    assert_eq!(
        p.hw,
        stopped_at.div_ceil(buffer) * buffer,
        "told the restart position"
    );
    // ALSA's prepare: it counts from 0, snd_xen_front's pointer stays at hw % buffer.
    p.written = (p.hw - p.hw % buffer) as usize;
    p.started = false;
    play_all(&mut env, &mut [(&mut f, &mut p)], 5);
    let st = &f.streams[0];
    assert_eq!(st.bad_ids, 0);
    assert_eq!(st.events.last().unwrap().1, p.data.len() as u64);
}

/// A device queue as deep as the guest's buffer. Taking the whole buffer at the start
/// would report it all played at once: ALSA sees the hardware catch up with the
/// application and stops the stream (an underrun in the guest, a gap in the sound). The
/// mixer writes at most a period less than the buffer ahead, and every step the frontend
/// sees stays below a buffer (its pointer is kept modulo the buffer).
#[test]
fn a_device_queue_as_deep_as_the_guest_buffer_never_runs_the_guest_dry() {
    let mut env = Env::new();
    let mut f = Front::attach(&mut env, 5, 0, &card_keys(&[("pb", "p")], &[]));
    // The test device queues 4 periods of 480 frames: 7680 bytes, this stream's buffer.
    let queue_bytes = 4 * DEVICE.period_frames as u32 * 4;
    let open = OpenArgs {
        buffer: queue_bytes,
        period: queue_bytes / 4,
        ..STEREO48
    };
    assert_eq!(f.open(&mut env, 0, open), 0);
    let mut p = Player::new(0, pattern(20 * 1024), queue_bytes as usize);
    p.pointer = Some(AlsaPointer::new(u64::from(queue_bytes)));
    play_all(&mut env, &mut [(&mut f, &mut p)], 2);
    assert_eq!(p.xruns, 0, "the guest never ran dry");
    let st = &f.streams[0];
    assert_eq!(st.bad_ids, 0);
    assert!(
        st.events
            .windows(2)
            .all(|w| w[1].1 - w[0].1 < u64::from(queue_bytes)),
        "no step of a whole buffer"
    );
    assert_eq!(env.engine.borrow().stats().device_underruns, 0);
}
