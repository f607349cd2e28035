//! A whole audioback driver domain whose guest's stream rings hold the input.
//!
//! A whole audioback driver domain on `minios::host` (the mixer over the recording
//! clock-paced card of audioback's host tests, `audioback/tests/common`). The victim guest's
//! card has a playback stream (0) and a capture stream (1); it has already shared a 16 KiB
//! buffer through a well-formed page directory (grant numbers the same in every run, see the
//! seeds) and granted one more read-only page holding fuzzer bytes (a hostile directory
//! page, say). A healthy guest plays a tone through the same card the whole time.
//!
//! The input: a request count, then per request a stream byte (bit 0), a delay byte (that
//! many milliseconds, at most 20, pass before the next request) and one 64-byte request
//! slot; then the hostile page's bytes.
//!
//! Asserts: either the victim's card stays connected and every request is answered exactly
//! once on its own stream, echoing its id and operation, with 0 or a negative errno, and no
//! byte of the answer's payload set except in a successful `HW_PARAM_QUERY` (nothing the
//! backend did not mean to send); or it is disconnected with a reason under `error/`. In
//! both cases the healthy guest's stream keeps playing (its position advances by what 100 ms
//! of audio holds, its events stay consecutive).

use crate::harness::snd::{card_keys, sine_s16, Env, Front, Player, MS, STEREO48};
use crate::input::Input;
use minios::host::HostGranted;
use minios::platform::{Access, GrantedPage, Grants, SharedMem};
use xen_abi::sndif::{XensndReq, XENSND_OP_HW_PARAM_QUERY};
use xen_abi::WireStruct;

/// Most requests one input sends (a stream ring holds 32).
const MAX_REQUESTS: usize = 32;

/// Bytes 100 ms of 48 kHz stereo s16 hold, less a period's slack.
const HEALTHY_ADVANCE: u64 = 12_000;

/// The healthy guest: its card and its player.
struct Healthy {
    f: Front,
    p: Player,
}

impl Healthy {
    fn start(env: &mut Env) -> Self {
        let mut f = Front::attach(env, 6, 0, &card_keys(&[("healthy", "p")], &[]));
        assert_eq!(f.open(env, 0, STEREO48), 0, "healthy OPEN");
        let tone = sine_s16(440.0, 48_000, 2, 48_000 * 20, 8000.0);
        let mut h = Self {
            f,
            p: Player::new(0, tone, STEREO48.buffer as usize),
        };
        h.run(env, 20);
        h
    }

    /// Plays on for `ms` (5 ms steps).
    fn run(&mut self, env: &mut Env, ms: u64) {
        for _ in 0..ms.div_ceil(5) {
            self.p.step(env, &mut self.f);
            env.advance(5 * MS);
        }
        self.p.step(env, &mut self.f);
    }
}

/// The driver domain, the healthy guest, the victim (buffer shared on stream 0) and the
/// victim's hostile page.
fn setup() -> (Env, Healthy, Front, HostGranted) {
    let mut env = Env::new();
    let healthy = Healthy::start(&mut env);
    let mut victim = Front::attach(
        &mut env,
        5,
        0,
        &card_keys(&[("victim-pb", "p"), ("victim-cap", "c")], &[]),
    );
    victim.share_buffer(0, STEREO48.buffer as usize);
    let page = victim.dom.grant_page(1, Access::ReadOnly).expect("grant");
    (env, healthy, victim, page)
}

/// The grant references the victim holds: the first directory page of its shared buffer,
/// the buffer pages, and the hostile page (the same in every run).
pub fn grefs() -> (u32, Vec<u32>, u32) {
    let (_, _, victim, page) = setup();
    let s = &victim.streams[0];
    (
        s.dirs[0].gref(),
        s.buffer.iter().map(|b| b.gref()).collect(),
        page.gref(),
    )
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let count = usize::from(input.u8()) % (MAX_REQUESTS + 1);
    let mut requests = Vec::with_capacity(count);
    for _ in 0..count {
        let stream = usize::from(input.u8() & 1);
        let delay = u64::from(input.u8() % 21);
        let raw: [u8; XensndReq::SIZE] = input.array();
        requests.push((stream, delay, XensndReq::read_from(&raw).expect("sized")));
    }
    let page_bytes = input.bytes(4096);

    let (mut env, mut healthy, mut victim, page) = setup();
    page.write(0, page_bytes).expect("in the page");

    let mut sent: [Vec<(u16, u8)>; 2] = [Vec::new(), Vec::new()];
    let mut got: [Vec<(u16, u8)>; 2] = [Vec::new(), Vec::new()];
    for (stream, delay, req) in &requests {
        victim.submit(*stream, req);
        sent[*stream].push((req.id, req.operation));
        env.settle();
        healthy.run(&mut env, *delay);
        for (s, got) in got.iter_mut().enumerate() {
            if env.be_key(&victim.dev, "state").as_deref() != Some("4") {
                break;
            }
            for rsp in victim.responses(s) {
                got.push((rsp.id, rsp.operation));
                assert!(
                    (-4095..=0).contains(&rsp.status),
                    "status {} is neither 0 nor a negative errno",
                    rsp.status
                );
                let payload_meant = rsp.operation == XENSND_OP_HW_PARAM_QUERY && rsp.status == 0;
                let set = rsp.resp.iter().position(|&b| b != 0);
                assert!(
                    payload_meant || set.is_none(),
                    "response to op {} (status {}) carries payload byte {:?} at {set:?}",
                    rsp.operation,
                    rsp.status,
                    set.map(|i| rsp.resp[i])
                );
                assert_eq!(rsp.reserved, 0, "reserved byte written");
            }
        }
    }

    if env.be_key(&victim.dev, "state").as_deref() == Some("4") {
        for s in 0..2 {
            assert_eq!(
                got[s], sent[s],
                "stream {s}: every request answered once, in order, echoing id and operation"
            );
        }
    } else {
        assert!(
            env.error_node(&victim.dev).is_some(),
            "the victim's card left Connected without a reason under error/"
        );
    }

    let before = healthy.p.hw;
    healthy.run(&mut env, 100);
    assert!(
        healthy.p.hw >= before + HEALTHY_ADVANCE,
        "healthy stream advanced from {before} to {}",
        healthy.p.hw
    );
    assert_eq!(
        healthy.f.streams[0].bad_ids, 0,
        "healthy events consecutive"
    );
    assert_eq!(env.be_key(&healthy.f.dev, "state").as_deref(), Some("4"));
}
