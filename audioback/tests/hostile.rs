//! Hostile frontends (../shared/notes/hostile-frontends.md): the sndif extras and items 1,
//! 2, 3, 8, 9, 14 — each while a healthy guest's stream plays through the same driver
//! domain and must keep playing: its position keeps moving, its events keep consecutive
//! ids, the card never runs dry.

mod common;

use common::*;
use minios::event_throttle::SPURIOUS_LIMIT;
use minios::platform::{Access, EventChannel, GrantedPage, Grants, SharedMem};
use minios::xenbus::backend::state_limit::STATE_INTERVAL_NS;
use xen_abi::sndif::*;
use xen_abi::WireStruct;

/// A guest playing a long 440 Hz tone throughout.
struct Healthy {
    f: Front,
    p: Player,
    checked_hw: u64,
}

impl Healthy {
    fn start(env: &mut Env) -> Self {
        let mut f = Front::attach(env, 5, 0, &card_keys(&[("pb", "p")], &[]));
        assert_eq!(f.open(env, 0, STEREO48), 0);
        let tone = sine_s16(440.0, 48_000, 2, 48_000 * 30, 8000.0);
        let mut h = Self {
            f,
            p: Player::new(0, tone, STEREO48.buffer as usize),
            checked_hw: 0,
        };
        h.run(env, 50);
        h
    }

    /// Plays on for `ms`.
    fn run(&mut self, env: &mut Env, ms: u64) {
        for _ in 0..ms / 5 {
            self.p.step(env, &mut self.f);
            env.advance(5 * MS);
        }
        self.p.step(env, &mut self.f);
    }

    /// Plays 100 ms more and checks it really played.
    fn still_plays(&mut self, env: &mut Env) {
        self.run(env, 100);
        assert!(
            self.p.hw >= self.checked_hw + 12_000,
            "healthy stream advanced from {} to {}",
            self.checked_hw,
            self.p.hw
        );
        self.checked_hw = self.p.hw;
        assert_eq!(self.f.streams[0].bad_ids, 0, "healthy events consecutive");
        assert_eq!(env.be_key(&self.f.dev, "state").as_deref(), Some("4"));
        assert_eq!(
            env.engine.borrow().stats().device_underruns,
            0,
            "the card never ran dry"
        );
        let played = env.played();
        let tail = channel(&played[played.len() - 9600..], 0);
        assert!((amplitude(&tail, 440.0, 48_000.0) - 8000.0).abs() < 400.0);
    }
}

fn victim(env: &mut Env) -> Front {
    Front::attach(env, 6, 0, &card_keys(&[("pb", "p"), ("cap", "c")], &[]))
}

// --- 6: event storm -------------------------------------------------------------------------

/// After `SPURIOUS_LIMIT` empty notifications in a row (a pass after each) on a stream's
/// request port and on its event port, both are held back: masked, so they no longer wake
/// the driver domain. The healthy guest keeps playing, the victim's stream works again once
/// the storm is over, and the holds are counted in the card's `event_holds`.
#[test]
fn event_storm_is_held_back() {
    let mut env = Env::new();
    let mut healthy = Healthy::start(&mut env);
    let mut v = victim(&mut env);
    let ports = [v.streams[0].ring_port.port(), v.streams[0].evt_port.port()];
    let dd = ports.map(|p| env.world.port_peer(6, p).unwrap().1);
    for i in 0..SPURIOUS_LIMIT {
        assert!(!env.world.port_masked(DD, dd[0]), "held after {i}");
        v.streams[0].ring_port.notify().unwrap();
        v.streams[0].evt_port.notify().unwrap();
        env.exec.run_once();
    }
    assert!(dd.iter().all(|&p| env.world.port_masked(DD, p)));
    for _ in 0..1000 {
        v.streams[0].ring_port.notify().unwrap();
        v.streams[0].evt_port.notify().unwrap();
    }
    assert!(
        !env.exec.platform().has_wakeup(),
        "a held port woke the domain"
    );
    healthy.still_plays(&mut env);
    assert_eq!(
        v.open(&mut env, 0, STEREO48),
        0,
        "the victim's stream works again"
    );
    assert!(
        !env.world.port_masked(DD, dd[0]),
        "work ends the request port's hold"
    );
    // Playing on while the counters are published (at most every stats_ms).
    healthy.run(&mut env, 2_000);
    assert!(env.counter(&v.dev, "event_holds").unwrap() >= 2);
    assert_eq!(env.counter(&healthy.f.dev, "event_holds"), Some(0));
    healthy.still_plays(&mut env);
}

// --- sndif extras ---------------------------------------------------------------------------

#[test]
fn unsupported_parameters_are_refused() {
    let mut env = Env::new();
    let mut healthy = Healthy::start(&mut env);
    let mut v = victim(&mut env);
    for (bad, what) in [
        (
            OpenArgs {
                rate: 22050,
                ..STEREO48
            },
            "rate not configured",
        ),
        (
            OpenArgs {
                rate: 0,
                ..STEREO48
            },
            "rate 0",
        ),
        (
            OpenArgs {
                format: XENSND_PCM_FORMAT_S16_LE + 8, // s32_le: not configured
                ..STEREO48
            },
            "format not configured",
        ),
        (
            OpenArgs {
                format: 20, // mu-law: never converted
                ..STEREO48
            },
            "format not converted",
        ),
        (
            OpenArgs {
                format: 255,
                ..STEREO48
            },
            "no such format",
        ),
        (
            OpenArgs {
                channels: 3,
                ..STEREO48
            },
            "3 channels",
        ),
        (
            OpenArgs {
                channels: 0,
                ..STEREO48
            },
            "0 channels",
        ),
        (
            OpenArgs {
                buffer: 65536 + 4,
                ..STEREO48
            },
            "buffer above buffer-size",
        ),
        (
            OpenArgs {
                buffer: 16386,
                ..STEREO48
            },
            "buffer of partial frames",
        ),
        (
            OpenArgs {
                period: 32768,
                ..STEREO48
            },
            "period above the buffer",
        ),
    ] {
        assert_eq!(v.open(&mut env, 0, bad), -22, "{what}");
    }
    assert_eq!(env.engine.borrow().voices(), 1, "only the healthy voice");
    assert_eq!(v.open(&mut env, 0, STEREO48), 0, "a good open still works");
    healthy.still_plays(&mut env);
}

/// A buffer of `pages` pages behind a directory chain where directory `i` links to
/// `links[i]` (an index into the directory pages, or `None` for 0).
fn chain(v: &mut Front, pages: usize, dirs: usize, links: &[Option<usize>]) -> u32 {
    let buffer: Vec<_> = (0..pages)
        .map(|_| v.dom.grant_page(DD, Access::ReadWrite).unwrap())
        .collect();
    let dir_pages: Vec<_> = (0..dirs)
        .map(|_| v.dom.grant_page(DD, Access::ReadOnly).unwrap())
        .collect();
    for (i, d) in dir_pages.iter().enumerate() {
        let next = links[i].map_or(0, |n| dir_pages[n].gref());
        d.page().write(0, &next.to_le_bytes()).unwrap();
        for k in 0..XENSND_GREFS_PER_DIR_PAGE {
            let g = buffer[(i * XENSND_GREFS_PER_DIR_PAGE + k) % pages].gref();
            d.page().write(4 + 4 * k, &g.to_le_bytes()).unwrap();
        }
    }
    let first = dir_pages[0].gref();
    v.streams[0].buffer = buffer;
    v.streams[0].dirs = dir_pages;
    first
}

#[test]
fn page_directories_that_loop_or_run_past_their_length_are_refused() {
    let big = 2100 * 4096; // 2100 pages: three directory pages
    let mut env = Env::with_options(audioback::Options {
        max_buffer: 16 << 20,
        ..Default::default()
    });
    let mut healthy = Healthy::start(&mut env);
    let keys = card_keys(&[("pb", "p")], &[("buffer-size", &big.to_string())]);
    let mut v = Front::attach(&mut env, 6, 0, &keys);
    let args = OpenArgs {
        buffer: big as u32,
        ..STEREO48
    };
    let baseline = env.world.live_mappings(DD);
    for (links, what) in [
        (vec![Some(1), Some(0), None], "loops back to the first"),
        (vec![Some(1), Some(1), None], "links to itself"),
        (vec![Some(1), None, None], "ends after two of three"),
        (vec![Some(1), Some(2), Some(0)], "runs past its length"),
        (vec![Some(1), Some(2), Some(3), None], "a fourth page"),
    ] {
        let n = links.len();
        let dir = chain(&mut v, 2100, n, &links);
        let status = v.open_with_dir(&mut env, 0, args, dir);
        assert_eq!(status, -22, "{what}");
        assert_eq!(
            env.world.live_mappings(DD),
            baseline,
            "{what}: nothing kept"
        );
        healthy.run(&mut env, 10);
    }
    let dir = chain(&mut v, 2100, 3, &[Some(1), Some(2), None]);
    assert_eq!(
        v.open_with_dir(&mut env, 0, args, dir),
        0,
        "the right chain"
    );
    assert_eq!(env.world.live_mappings(DD), baseline + 2100);
    // The whole buffer is usable, the last byte included.
    assert_eq!(v.write(&mut env, 0, big as u32 - 4, &[1, 2, 3, 4]), 0);
    assert_eq!(v.close(&mut env, 0), 0);
    assert_eq!(env.world.live_mappings(DD), baseline, "unmapped at close");
    healthy.still_plays(&mut env);
}

#[test]
fn writes_beyond_the_buffer_are_refused() {
    let mut env = Env::new();
    let mut healthy = Healthy::start(&mut env);
    let mut v = victim(&mut env);
    // 16000 bytes: the last page is only partly the buffer.
    let args = OpenArgs {
        buffer: 16000,
        period: 4000,
        ..STEREO48
    };
    assert_eq!(v.open(&mut env, 0, args), 0);
    for (offset, length, what) in [
        (16000, 4, "at the end"),
        (15996, 8, "across the end, inside the last page"),
        (0, 16004, "longer than the buffer"),
        (u32::MAX - 1, 4, "offset + length wraps"),
        (4, u32::MAX, "huge length"),
    ] {
        assert_eq!(
            v.rw(&mut env, 0, XENSND_OP_WRITE, offset, length),
            -22,
            "{what}"
        );
    }
    assert_eq!(
        v.rw(&mut env, 0, XENSND_OP_WRITE, 15996, 4),
        0,
        "the last frame"
    );
    // The volume area must lie inside too.
    assert_eq!(v.rw(&mut env, 0, XENSND_OP_GET_VOLUME, 15996, 8), -22);
    assert_eq!(v.rw(&mut env, 0, XENSND_OP_MUTE, u32::MAX, 2), -22);
    healthy.still_plays(&mut env);
}

#[test]
fn requests_before_open_or_in_the_wrong_direction_are_refused() {
    let mut env = Env::new();
    let mut healthy = Healthy::start(&mut env);
    let mut v = victim(&mut env);
    for t in [
        XENSND_OP_TRIGGER_START,
        XENSND_OP_TRIGGER_PAUSE,
        XENSND_OP_TRIGGER_STOP,
        XENSND_OP_TRIGGER_RESUME,
    ] {
        assert_eq!(v.trigger(&mut env, 0, t), -22, "trigger {t} before open");
    }
    assert_eq!(
        v.rw(&mut env, 0, XENSND_OP_WRITE, 0, 4),
        -22,
        "write before open"
    );
    assert_eq!(v.rw(&mut env, 0, XENSND_OP_SET_VOLUME, 0, 8), -22);
    assert_eq!(
        v.close(&mut env, 0),
        0,
        "close without open (Linux's hw_free)"
    );
    assert_eq!(v.open(&mut env, 0, STEREO48), 0);
    let mapped = env.world.live_mappings(DD);
    assert_eq!(
        v.open(&mut env, 0, STEREO48),
        0,
        "open while open replaces it"
    );
    assert_eq!(
        env.world.live_mappings(DD),
        mapped,
        "the old buffer unmapped"
    );
    assert_eq!(env.engine.borrow().voices(), 2, "one voice per stream");
    assert_eq!(
        v.rw(&mut env, 0, XENSND_OP_READ, 0, 4),
        -22,
        "read on playback"
    );
    assert_eq!(v.open(&mut env, 1, STEREO48), 0);
    assert_eq!(
        v.rw(&mut env, 1, XENSND_OP_WRITE, 0, 4),
        -22,
        "write on capture"
    );
    assert_eq!(v.trigger(&mut env, 0, 7), -22, "unknown trigger type");
    let unknown = v.request(&mut env, 0, 42, &XensndRwReq::default());
    assert_eq!(unknown.status, -95, "unknown operation: EOPNOTSUPP");
    assert_eq!(
        env.be_key(&v.dev, "state").as_deref(),
        Some("4"),
        "device stays up"
    );
    let invalid = env
        .backend
        .borrow()
        .device(6, 0)
        .unwrap()
        .stats()
        .errors(audioback::stats::ErrorClass::Invalid);
    assert!(invalid >= 8, "{invalid} invalid requests counted");
    healthy.run(&mut env, 1000);
    assert_eq!(
        env.counter(&v.dev, "err_invalid"),
        Some(invalid),
        "published"
    );
    healthy.still_plays(&mut env);
}

// --- 1: double fetch (XSA-155) -------------------------------------------------------------

#[test]
fn double_fetch_of_requests_and_directory_pages() {
    let mut env = Env::new();
    let mut healthy = Healthy::start(&mut env);
    let mut v = victim(&mut env);
    let ring_page = v.streams[0].ring.ring().mem().page().clone();
    // Opened before the rewriting starts: `open` checks the echoed header of its own answer,
    // which a rewritten OPEN slot would legitimately change.
    assert_eq!(v.open(&mut env, 0, STEREO48), 0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The frontend rewrites every slot while the backend works: operation, offset and
    // length flip between valid and hostile values.
    let flipper = {
        let stop = stop.clone();
        let page = ring_page.clone();
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n = n.wrapping_add(1);
                for slot in 0..32usize {
                    let at = 64 + slot * 64;
                    let op = [3u32 << 16, 8 << 16, 0, 9 << 16][n as usize % 4];
                    let _ = page.store_u32(at, op | slot as u32);
                    let _ = page.store_u32(at + 8, if n % 2 == 0 { 0 } else { u32::MAX });
                    let _ = page.store_u32(at + 12, if n % 3 == 0 { 4 } else { 0x7fff_ffff });
                }
            }
        })
    };
    let mut answered = 0;
    for round in 0..30u16 {
        for k in 0..8u16 {
            let req = XensndReq::new(
                round * 8 + k,
                XENSND_OP_WRITE,
                &XensndRwReq {
                    offset: 0,
                    length: 4,
                },
            )
            .unwrap();
            v.submit(0, &req);
        }
        env.settle();
        for r in v.responses(0) {
            assert!([0, -22, -16, -95].contains(&r.status), "{r:?}");
            answered += 1;
        }
        healthy.run(&mut env, 5);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
    assert_eq!(answered, 240, "exactly one response per request");
    // The directory page rewritten during OPENs: accepted whole or refused, never more.
    let mut v2 = Front::attach(&mut env, 7, 0, &card_keys(&[("pb", "p")], &[]));
    let baseline = env.world.live_mappings(DD);
    let dir = v2.share_buffer(0, 16384);
    let dpage = v2.streams[0].dirs[0].page().clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n = n.wrapping_add(1);
                let _ = dpage.store_u32(0, if n % 2 == 0 { 0 } else { dir });
            }
        })
    };
    for _ in 0..20 {
        let s = v2.open_with_dir(&mut env, 0, STEREO48, dir);
        assert!(s == 0 || s == -22, "{s}");
        if s == 0 {
            assert_eq!(env.world.live_mappings(DD), baseline + 4);
            assert_eq!(v2.close(&mut env, 0), 0);
        }
        assert_eq!(env.world.live_mappings(DD), baseline);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
    healthy.still_plays(&mut env);
}

// --- 2: uninitialised response bytes (XSA-216) ----------------------------------------------

#[test]
fn every_response_and_event_byte_is_written() {
    let mut env = Env::new();
    let mut healthy = Healthy::start(&mut env);
    let mut v = victim(&mut env);
    let ring = v.streams[0].ring.ring().mem().page().clone();
    let evt = v.streams[0].evt_page.page().clone();
    evt.write(64, &[0xaa; 4032]).unwrap();
    // Requests full of stale bytes: an OPEN, a query that is refused, one answered, an
    // unknown operation.
    let dir = v.share_buffer(0, 16384);
    let mut open = [0xaau8; 64];
    open[..4].copy_from_slice(&[1, 0, XENSND_OP_OPEN, 0xaa]);
    let o = XensndOpenReq {
        pcm_rate: 48000,
        pcm_format: 2,
        pcm_channels: 2,
        reserved: 0xaaaa,
        buffer_sz: 16384,
        gref_directory: dir,
        period_sz: 4096,
    };
    o.write_to(&mut open[8..]).unwrap();
    let q_ok = XensndQueryHwParam {
        formats: u64::MAX,
        rates: XensndRange { min: 0, max: 48000 },
        channels: XensndRange { min: 1, max: 8 },
        buffer: XensndRange {
            min: 0,
            max: 1 << 20,
        },
        period: XensndRange {
            min: 0,
            max: 1 << 20,
        },
    };
    let mut q_bad = q_ok;
    q_bad.rates = XensndRange { min: 1, max: 2 };
    let mut slots = vec![open];
    for (id, q) in [(2u8, q_bad), (3, q_ok)] {
        let mut s = [0xaau8; 64];
        s[..4].copy_from_slice(&[id, 0, XENSND_OP_HW_PARAM_QUERY, 0xaa]);
        q.write_to(&mut s[8..]).unwrap();
        slots.push(s);
    }
    let mut unknown = [0xaau8; 64];
    unknown[..3].copy_from_slice(&[4, 0, 77]);
    slots.push(unknown);
    for s in &slots {
        v.submit(0, &XensndReq::read_from(s).unwrap());
    }
    env.settle();
    assert_eq!(v.responses(0).len(), 4);
    let answer = audioback::params::Offer {
        formats: 1 << 1 | 1 << 2 | 1 << 14,
        rates: vec![44100, 48000],
        channels_min: 1,
        channels_max: 2,
        buffer_max: 65536,
    }
    .query(&q_ok)
    .unwrap();
    let mut want_payload = [0u8; 56];
    answer.write_to(&mut want_payload).unwrap();
    for (i, (id, op, status)) in [
        (1u8, XENSND_OP_OPEN, 0i32),
        (2, XENSND_OP_HW_PARAM_QUERY, -22),
        (3, XENSND_OP_HW_PARAM_QUERY, 0),
        (4, 77, -95),
    ]
    .into_iter()
    .enumerate()
    {
        let mut got = [0u8; 64];
        ring.read(64 + i * 64, &mut got).unwrap();
        let mut want = [0u8; 64];
        want[..3].copy_from_slice(&[id, 0, op]);
        want[4..8].copy_from_slice(&status.to_le_bytes());
        if i == 2 {
            want[8..].copy_from_slice(&want_payload);
        }
        assert_eq!(got, want, "response {i}: header, payload and padding");
    }
    // An event: the whole 64-byte slot.
    assert_eq!(v.write(&mut env, 0, 0, &[1; 16384]), 0);
    assert_eq!(v.trigger(&mut env, 0, XENSND_OP_TRIGGER_START), 0);
    // The position is what the card played: behind the periods already in its queue.
    for _ in 0..20 {
        env.advance(5 * MS);
    }
    let mut got = [0u8; 64];
    evt.read(64, &mut got).unwrap();
    let mut want = [0u8; 64];
    want[2] = XENSND_EVT_CUR_POS;
    want[8..16].copy_from_slice(&got[8..16]);
    assert_eq!(got, want, "event slot fully written");
    assert!(u64::from_le_bytes(got[8..16].try_into().unwrap()) >= 4096);
    healthy.still_plays(&mut env);
}

// --- 3: bogus ring indices ------------------------------------------------------------------

#[test]
fn bogus_request_ring_indices_fail_only_that_card() {
    for (what, req_prod) in [
        ("far ahead", 1000u32),
        ("behind", u32::MAX - 4),
        ("one too many", 33),
    ] {
        let mut env = Env::new();
        let mut healthy = Healthy::start(&mut env);
        let mut v = victim(&mut env);
        assert_eq!(
            v.open(&mut env, 1, STEREO48),
            0,
            "{what}: capture stream open"
        );
        let page = v.streams[0].ring.ring().mem().page().clone();
        let base = env.world.live_mappings(DD);
        page.store_u32(0, req_prod).unwrap();
        v.streams[0].ring_port.notify().unwrap();
        env.settle();
        let err = env.error_node(&v.dev).unwrap_or_default();
        assert!(
            err.contains("req_prod") || err.contains("overflow"),
            "{what}: {err}"
        );
        assert_eq!(env.be_key(&v.dev, "state").as_deref(), Some("5"), "{what}");
        assert_eq!(
            page.load_u32(8).unwrap(),
            0,
            "{what}: no responses produced"
        );
        assert!(
            env.world.live_mappings(DD) < base,
            "{what}: the card's grants unmapped"
        );
        assert_eq!(env.engine.borrow().voices(), 1, "{what}: its voice gone");
        healthy.still_plays(&mut env);
        // The guest can start over.
        for s in ["5", "6", "1"] {
            v.state(s);
            env.settle();
        }
        let dirs: Vec<String> = v.streams.iter().map(|s| s.dir.clone()).collect();
        v.setup_rings(&dirs);
        v.state("3");
        env.settle();
        assert_eq!(env.be_key(&v.dev, "state").as_deref(), Some("4"), "{what}");
        assert_eq!(v.open(&mut env, 0, STEREO48), 0);
        healthy.still_plays(&mut env);
    }
}

#[test]
fn an_event_page_that_is_not_consumed_or_lies_is_never_overrun() {
    let mut env = Env::new();
    let mut healthy = Healthy::start(&mut env);
    let mut v = victim(&mut env);
    let small = OpenArgs {
        period: 64,
        ..STEREO48
    };
    assert_eq!(v.open(&mut env, 0, small), 0);
    let evt = v.streams[0].evt_page.page().clone();
    // The frontend never consumes: 63 events fit, then nothing is overwritten.
    assert_eq!(v.write(&mut env, 0, 0, &[3; 16384]), 0);
    assert_eq!(v.trigger(&mut env, 0, XENSND_OP_TRIGGER_START), 0);
    for i in 0..300u32 {
        // Keep it playing (some of these overflow: refused, which is fine here).
        let _ = v.write(&mut env, 0, (i * 960) % 15360, &[3; 960]);
        env.advance(5 * MS);
        healthy.run(&mut env, 0);
    }
    assert_eq!(evt.load_u32(4).unwrap(), 63, "in_prod stops at a full ring");
    let mut first = [0u8; 64];
    evt.read(64, &mut first).unwrap();
    assert_eq!(
        u16::from_le_bytes([first[0], first[1]]),
        0,
        "slot 0 kept event 0"
    );
    healthy.run(&mut env, 1000);
    assert!(env.counter(&v.dev, "events_dropped").is_some_and(|n| n > 0));
    // An in_cons that makes no sense: still nothing written.
    evt.store_u32(0, 0x8000_0000).unwrap();
    let _ = v.write(&mut env, 0, 0, &[3; 4096]);
    healthy.run(&mut env, 50);
    assert_eq!(evt.load_u32(4).unwrap(), 63);
    // Consuming resumes the numbering where it stopped: ids stay consecutive.
    evt.store_u32(0, 0).unwrap();
    let got = v.streams[0].take_events();
    assert_eq!(got.len(), 63);
    assert_eq!(v.streams[0].bad_ids, 0);
    healthy.still_plays(&mut env);
}

// --- 8: state flapping (XSA-350) -------------------------------------------------------------

#[test]
fn state_flapping_with_open_streams_leaks_nothing() {
    let mut env = Env::new();
    let mut healthy = Healthy::start(&mut env);
    let base = (
        env.world.live_mappings(DD),
        env.world.open_ports(DD),
        env.engine.borrow().voices(),
    );
    let mut v = victim(&mut env);
    let dirs: Vec<String> = v.streams.iter().map(|s| s.dir.clone()).collect();
    for round in 0..24u32 {
        if env.be_key(&v.dev, "state").as_deref() == Some("4") {
            let _ = v.open(&mut env, 0, STEREO48);
            if round % 2 == 0 {
                let _ = v.open(&mut env, 1, STEREO48);
                let _ = v.trigger(&mut env, 1, XENSND_OP_TRIGGER_START);
            }
            let _ = v.write(&mut env, 0, 0, &[7; 4096]);
            let _ = v.trigger(&mut env, 0, XENSND_OP_TRIGGER_START);
        }
        let storm: &[&str] = match round % 4 {
            0 => &["5", "6", "1"],
            1 => &["6", "3", "5", "1"],
            2 => &["1", "5", "4", "6", "1"],
            _ => &["5", "3", "6", "1"],
        };
        for s in storm {
            v.state(s);
            if round % 2 == 0 {
                env.settle();
            }
        }
        env.settle();
        v.setup_rings(&dirs);
        v.state("3");
        env.settle();
        if env.be_key(&v.dev, "state").as_deref() != Some("4") {
            for s in ["5", "6", "1"] {
                v.state(s);
                env.settle();
            }
            v.setup_rings(&dirs);
            v.state("3");
            env.settle();
        }
        assert_eq!(
            env.be_key(&v.dev, "state").as_deref(),
            Some("4"),
            "round {round}"
        );
        // The healthy guest plays on for a second before the next storm: the victim's state
        // limit (minios' xenbus backend: a burst, then one state event per interval; what
        // goes beyond is deferred, tested there) gets back about as much as a round uses.
        healthy.run(&mut env, 4 * STATE_INTERVAL_NS / MS);
    }
    for s in ["5", "6"] {
        v.state(s);
        env.settle();
    }
    assert_eq!(
        (
            env.world.live_mappings(DD),
            env.world.open_ports(DD),
            env.engine.borrow().voices()
        ),
        base,
        "everything of the flapping guest released"
    );
    healthy.still_plays(&mut env);
}

// --- 9: bad grant references (XSA-365) -------------------------------------------------------

#[test]
fn bad_grants_fail_only_their_request_or_connect() {
    let mut env = Env::new();
    let mut healthy = Healthy::start(&mut env);
    let mut v = victim(&mut env);
    let base = env.world.live_mappings(DD);
    // Directory: not granted, out of range, revoked, another domain's.
    let revoked = v.dom.grant_page(DD, Access::ReadOnly).unwrap();
    let gone = revoked.gref();
    drop(revoked);
    let elsewhere = v.dom.grant_page(0, Access::ReadOnly).unwrap();
    for (dir, what) in [
        (0, "gref 0"),
        (9999, "never granted"),
        (u32::MAX, "out of range"),
        (gone, "revoked"),
        (elsewhere.gref(), "granted to another domain"),
    ] {
        assert_eq!(v.open_with_dir(&mut env, 0, STEREO48, dir), -22, "{what}");
        assert_eq!(env.world.live_mappings(DD), base, "{what}");
    }
    // A buffer page that cannot be mapped, behind a good directory: nothing stays mapped.
    let dir = v.share_buffer(0, 16384);
    let bad = v.streams[0].dirs[0].page().clone();
    bad.write(4 + 4 * 2, &9999u32.to_le_bytes()).unwrap();
    assert_eq!(
        v.open_with_dir(&mut env, 0, STEREO48, dir),
        -22,
        "partial map failure"
    );
    assert_eq!(env.world.live_mappings(DD), base);
    // A buffer revoked after OPEN: the mapping stays valid (as on Xen), play goes on.
    assert_eq!(v.open(&mut env, 0, STEREO48), 0);
    for b in &v.streams[0].buffer {
        v.dom.revoke(b.gref());
    }
    assert_eq!(v.rw(&mut env, 0, XENSND_OP_WRITE, 0, 4096), 0);
    assert_eq!(v.close(&mut env, 0), 0);
    assert_eq!(env.world.live_mappings(DD), base);
    healthy.still_plays(&mut env);
    // Ring and event page references and ports that do not work fail the connect.
    for (i, (key, value)) in [
        ("0/0/ring-ref", "9999"),
        ("0/0/evt-ring-ref", "4294967295"),
        ("0/1/event-channel", "77"),
        ("0/1/evt-event-channel", "-1"),
        ("0/0/ring-ref", "x"),
    ]
    .into_iter()
    .enumerate()
    {
        let keys = card_keys(&[("pb", "p"), ("cap", "c")], &[]);
        let mut w = Front::add(&mut env, 8, i as u32, &keys);
        w.setup_rings(&["0/0".into(), "0/1".into()]);
        w.write_key(key, value);
        w.state("3");
        env.settle();
        let err = env.error_node(&w.dev).unwrap_or_default();
        assert!(
            err.contains(key.rsplit('/').next().unwrap()),
            "{key}={value}: {err}"
        );
        assert_eq!(env.be_key(&w.dev, "state").as_deref(), Some("5"), "{key}");
        healthy.run(&mut env, 5);
    }
    healthy.still_plays(&mut env);
}

// --- 14: trusting frontend-written configuration (XSA-178) ---------------------------------

#[test]
fn absurd_frontend_configuration_is_refused() {
    let mut env = Env::new();
    let mut healthy = Healthy::start(&mut env);
    let mut hundred: Vec<(&str, &str)> = vec![];
    let ids: Vec<(String, String)> = (0..8)
        .flat_map(|p| (0..8).map(move |s| (p, s)))
        .map(|(p, s)| (format!("{p}/{s}/type"), format!("{p}/{s}/unique-id")))
        .collect();
    let names: Vec<String> = (0..64).map(|i| format!("s{i}")).collect();
    for (i, (t, u)) in ids.iter().enumerate() {
        hundred.push((t.as_str(), "p"));
        hundred.push((u.as_str(), names[i].as_str()));
    }
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("buffer-size", "99999999999999999999999")],
            "buffer-size",
        ),
        (vec![("buffer-size", "1048576")], "buffer-size"),
        (vec![("channels-max", "200")], "channels-max"),
        (vec![("sample-rates", "48000,,44100")], "sample-rates"),
        (vec![("sample-formats", "s16_le,\u{1}")], "sample-formats"),
        (vec![("0/0/unique-id", "")], "unique-id"),
        (
            vec![("0/1/type", "p"), ("0/1/unique-id", "pb")],
            "not unique",
        ),
        (vec![("0/0/type", "playback")], "type"),
        (vec![("version", "3")], "version"),
        (hundred.clone(), "more than 16 streams"),
    ];
    for (i, (extra, want)) in cases.into_iter().enumerate() {
        let keys = card_keys(&[("pb", "p")], &extra);
        let mut w = Front::add(&mut env, 8, i as u32, &keys);
        let dirs: Vec<String> = keys
            .iter()
            .filter_map(|(k, _)| k.strip_suffix("/type").map(String::from))
            .collect();
        w.setup_rings(&dirs);
        w.state("3");
        env.settle();
        let err = env.error_node(&w.dev).unwrap_or_default();
        assert!(err.contains(want), "{want}: {err}");
        assert_eq!(env.be_key(&w.dev, "state").as_deref(), Some("5"), "{want}");
        healthy.run(&mut env, 5);
    }
    // Configuration is read once: rewriting it after connect changes nothing.
    let mut v = victim(&mut env);
    v.write_key("sample-rates", "8000");
    v.write_key("0/0/channels-max", "8");
    env.settle();
    assert_eq!(
        v.open(
            &mut env,
            0,
            OpenArgs {
                rate: 8000,
                ..STEREO48
            }
        ),
        -22
    );
    assert_eq!(
        v.open(
            &mut env,
            0,
            OpenArgs {
                channels: 8,
                ..STEREO48
            }
        ),
        -22
    );
    assert_eq!(v.open(&mut env, 0, STEREO48), 0);
    healthy.still_plays(&mut env);
}
