//! Host test harness: a driver domain running the `vsnd` backend and the mixer over a
//! recording clock-paced card in a simulated world, and an `snd_xen_front` played by the
//! test (well-behaved unless a test makes it otherwise): synchronous requests, events
//! accepted only with consecutive ids (as Linux does), an ALSA-like player that refills
//! the buffer as CUR_POS events free it.
#![allow(dead_code)]

use std::cell::RefCell;
use std::f64::consts::PI;
use std::rc::Rc;

use audioback::device::clock::{ClockDevice, Tap};
use audioback::device::DeviceParams;
use audioback::mixer::{Engine, EngineTask, SharedEngine};
use audioback::status::EngineStatus;
use audioback::{Options, SndDriver};
use minios::executor::Executor;
use minios::host::{DeviceSpec, HostChannel, HostDomain, HostGranted, HostXs, World};
use minios::platform::{Access, DomId, EventChannel, Events, GrantedPage, Grants, SharedMem};
use minios::ring::FrontChannel;
use minios::xenbus::Backend;
use minios::xenstore::{Store, Xenstore};
use xen_abi::sndif::*;

/// The driver domain.
pub const DD: DomId = 1;
/// Nanoseconds per millisecond.
pub const MS: u64 = 1_000_000;
/// The test card: 48 kHz stereo, 10 ms periods, 4 queued.
pub const DEVICE: DeviceParams = DeviceParams {
    rate: 48_000,
    channels: 2,
    period_frames: 480,
};

pub type TestBackend = Backend<HostDomain, SndDriver>;

/// The world, the driver domain's executor, and what the card played.
pub struct Env {
    pub world: World,
    pub exec: Executor<HostDomain>,
    pub engine: SharedEngine,
    pub backend: Rc<RefCell<TestBackend>>,
    pub tap: Rc<RefCell<Tap>>,
}

impl Env {
    pub fn new() -> Self {
        Self::with_options(Options::default())
    }

    pub fn with_options(options: Options) -> Self {
        let world = World::new();
        let dd = world.create_domain(DD, "snddd");
        let tap = Rc::new(RefCell::new(Tap::default()));
        let engine = Engine::new(
            Box::new(ClockDevice::new(DEVICE, 4, Some(tap.clone()))),
            Box::new(ClockDevice::new(DEVICE, 4, Some(tap.clone()))),
            16,
        )
        .shared();
        let backend = Backend::new(SndDriver::new(engine.clone(), options), DD).shared();
        let mut exec = Executor::new(dd.clone(), dd.xenstore());
        exec.spawn(EngineTask::new(engine.clone())).unwrap();
        exec.spawn(EngineStatus::new(engine.clone(), options.stats_ms))
            .unwrap();
        exec.spawn(backend.clone()).unwrap();
        let mut env = Self {
            world,
            exec,
            engine,
            backend,
            tap,
        };
        env.settle();
        env
    }

    pub fn settle(&mut self) {
        minios::host::settle(&self.world, &mut [&mut self.exec]);
    }

    pub fn advance(&mut self, ns: u64) {
        self.world.advance(ns);
        self.settle();
    }

    pub fn be_key(&self, dev: &DeviceSpec, key: &str) -> Option<String> {
        self.world
            .read_str(&format!("{}/{key}", dev.backend_path()))
    }

    pub fn error_node(&self, dev: &DeviceSpec) -> Option<String> {
        self.world.read_str(&format!(
            "/local/domain/{DD}/error/backend/vsnd/{}/{}/error",
            dev.frontend, dev.devid
        ))
    }

    pub fn counter(&self, dev: &DeviceSpec, key: &str) -> Option<u64> {
        self.world
            .read_str(&format!(
                "/local/domain/{DD}/data/vsnd/{}/{}/{key}",
                dev.frontend, dev.devid
            ))
            .map(|v| v.parse().expect("a number"))
    }

    /// A counter of the driver domain's own `data/status/`.
    pub fn status(&self, key: &str) -> Option<u64> {
        self.world
            .read_str(&format!("/local/domain/{DD}/data/status/{key}"))
            .map(|v| v.parse().expect("a number"))
    }

    /// Every frame the card played so far (interleaved stereo).
    pub fn played(&self) -> Vec<i16> {
        self.tap.borrow().played.clone()
    }
}

/// The frontend keys xl writes for a card of `streams` (`(unique-id, "p"|"c")`, all in
/// PCM 0) plus card-level `extra` keys.
pub fn card_keys(streams: &[(&str, &str)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = vec![
        ("short-name".into(), "xdd".into()),
        ("long-name".into(), "xdd virtual card".into()),
        ("sample-rates".into(), "44100,48000".into()),
        ("sample-formats".into(), "s16_le,u8,float_le".into()),
        ("channels-min".into(), "1".into()),
        ("channels-max".into(), "2".into()),
        ("buffer-size".into(), "65536".into()),
        ("0/name".into(), "dev0".into()),
    ];
    for (i, (id, kind)) in streams.iter().enumerate() {
        keys.push((format!("0/{i}/type"), kind.to_string()));
        keys.push((format!("0/{i}/unique-id"), id.to_string()));
    }
    for (k, v) in extra {
        keys.retain(|(key, _)| key != k);
        keys.push((k.to_string(), v.to_string()));
    }
    keys
}

pub type FRing = FrontChannel<HostGranted, XensndReq, XensndResp>;

/// One stream as the frontend holds it.
pub struct FStream {
    pub dir: String,
    pub ring: FRing,
    pub ring_port: HostChannel,
    pub evt_page: HostGranted,
    pub evt_port: HostChannel,
    /// The id the next accepted event must have.
    pub evt_id: u16,
    /// Events accepted: (id, position).
    pub events: Vec<(u16, u64)>,
    /// Events dropped for a wrong id.
    pub bad_ids: usize,
    pub buffer: Vec<HostGranted>,
    pub dirs: Vec<HostGranted>,
    pub next_id: u16,
}

impl FStream {
    /// Takes new events from the event page as Linux does.
    pub fn take_events(&mut self) -> Vec<(u16, u64)> {
        let page = self.evt_page.page();
        let prod = page.load_u32(4).unwrap();
        let mut cons = page.load_u32(0).unwrap();
        let mut new = Vec::new();
        while cons != prod {
            let mut raw = [0u8; 64];
            page.read(event_offset(cons), &mut raw).unwrap();
            cons = cons.wrapping_add(1);
            let id = u16::from_le_bytes([raw[0], raw[1]]);
            let expected = self.evt_id;
            self.evt_id = self.evt_id.wrapping_add(1);
            if id != expected {
                self.bad_ids += 1;
                continue;
            }
            assert_eq!(raw[2], XENSND_EVT_CUR_POS, "event type");
            let pos = u64::from_le_bytes(raw[8..16].try_into().unwrap());
            new.push((id, pos));
        }
        page.store_u32(0, cons).unwrap();
        self.events.extend(&new);
        new
    }

    /// Copies `data` into the shared buffer at `offset`.
    pub fn fill(&self, offset: usize, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            let at = offset + i;
            self.buffer[at / 4096]
                .page()
                .write(at % 4096, &[*b])
                .unwrap();
        }
    }

    /// Copies `len` bytes at `offset` out of the shared buffer.
    pub fn peek(&self, offset: usize, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| {
                let at = offset + i;
                let mut b = [0u8];
                self.buffer[at / 4096]
                    .page()
                    .read(at % 4096, &mut b)
                    .unwrap();
                b[0]
            })
            .collect()
    }
}

/// An `snd_xen_front` played by the test.
pub struct Front {
    pub dom: HostDomain,
    pub xs: Xenstore<HostXs>,
    pub dev: DeviceSpec,
    pub streams: Vec<FStream>,
}

impl Front {
    /// Adds a guest (if new) and a `vsnd` device with the card `keys`, without connecting.
    pub fn add(env: &mut Env, domid: DomId, devid: u32, keys: &[(String, String)]) -> Self {
        if !env.world.exists(&format!("/local/domain/{domid}")) {
            env.world.create_domain(domid, "guest");
        }
        let mut dev = DeviceSpec::new("vsnd", DD, domid, devid);
        for (k, v) in keys {
            dev = dev.frontend_key(k, v);
        }
        env.world.add_device(&dev);
        env.settle();
        let dom = env.world.domain(domid);
        let xs = dom.xenstore();
        Self {
            dom,
            xs,
            dev,
            streams: Vec::new(),
        }
    }

    /// Adds and connects as Linux does: rings for every stream, Initialised, then Connected
    /// once the backend is; asserts the backend connected.
    pub fn attach(env: &mut Env, domid: DomId, devid: u32, keys: &[(String, String)]) -> Self {
        let mut f = Self::add(env, domid, devid, keys);
        assert_eq!(
            env.be_key(&f.dev, "state").as_deref(),
            Some("2"),
            "InitWait"
        );
        assert_eq!(env.be_key(&f.dev, "versions").as_deref(), Some("2"));
        let dirs: Vec<String> = keys
            .iter()
            .filter_map(|(k, _)| k.strip_suffix("/type").map(String::from))
            .collect();
        f.setup_rings(&dirs);
        f.state("3");
        env.settle();
        assert_eq!(
            env.be_key(&f.dev, "state").as_deref(),
            Some("4"),
            "backend connected; error: {:?}",
            env.error_node(&f.dev)
        );
        f.state("4");
        env.settle();
        f
    }

    pub fn write_key(&mut self, key: &str, value: &str) {
        self.xs
            .write(
                &format!("{}/{key}", self.dev.frontend_path()),
                value.as_bytes(),
            )
            .unwrap();
    }

    pub fn state(&mut self, s: &str) {
        self.write_key("state", s);
    }

    /// Grants a ring and an event page per stream directory, allocates their ports and
    /// writes the four keys of each.
    pub fn setup_rings(&mut self, dirs: &[String]) {
        self.streams.clear();
        for dir in dirs {
            let ring_page = self.dom.grant_page(DD, Access::ReadWrite).unwrap();
            let evt_page = self.dom.grant_page(DD, Access::ReadWrite).unwrap();
            let ring_port = self.dom.alloc_unbound(DD).unwrap();
            let evt_port = self.dom.alloc_unbound(DD).unwrap();
            self.write_key(&format!("{dir}/ring-ref"), &ring_page.gref().to_string());
            self.write_key(
                &format!("{dir}/event-channel"),
                &ring_port.port().to_string(),
            );
            self.write_key(&format!("{dir}/evt-ring-ref"), &evt_page.gref().to_string());
            self.write_key(
                &format!("{dir}/evt-event-channel"),
                &evt_port.port().to_string(),
            );
            self.streams.push(FStream {
                dir: dir.clone(),
                ring: FrontChannel::new(ring_page).unwrap(),
                ring_port,
                evt_page,
                evt_port,
                evt_id: 0,
                events: Vec::new(),
                bad_ids: 0,
                buffer: Vec::new(),
                dirs: Vec::new(),
                next_id: 0,
            });
        }
    }

    /// Puts a request on stream `s`'s ring, publishes and notifies (no waiting).
    pub fn submit(&mut self, s: usize, req: &XensndReq) {
        let st = &mut self.streams[s];
        st.ring.put_request(req).unwrap();
        if st.ring.push() {
            st.ring_port.notify().unwrap();
        }
    }

    /// Responses that arrived on stream `s`.
    pub fn responses(&mut self, s: usize) -> Vec<XensndResp> {
        let mut out = Vec::new();
        while let Some(r) = self.streams[s].ring.next_response().unwrap() {
            out.push(r);
        }
        out
    }

    /// Sends one request and waits for its response (as Linux does, synchronously).
    pub fn request<T: xen_abi::WireStruct>(
        &mut self,
        env: &mut Env,
        s: usize,
        op: u8,
        payload: &T,
    ) -> XensndResp {
        let id = self.streams[s].next_id;
        self.streams[s].next_id = id.wrapping_add(1);
        let req = XensndReq::new(id, op, payload).unwrap();
        self.submit(s, &req);
        env.settle();
        let rsp = self.responses(s);
        assert_eq!(rsp.len(), 1, "one response to op {op}");
        assert_eq!((rsp[0].id, rsp[0].operation), (id, op), "echoed header");
        rsp[0]
    }

    /// Grants `len` bytes of buffer and a directory chain for it (Linux's layout).
    pub fn share_buffer(&mut self, s: usize, len: usize) -> u32 {
        let npages = len.div_ceil(4096);
        let buffer: Vec<HostGranted> = (0..npages)
            .map(|_| self.dom.grant_page(DD, Access::ReadWrite).unwrap())
            .collect();
        let ndirs = npages.div_ceil(XENSND_GREFS_PER_DIR_PAGE);
        let dirs: Vec<HostGranted> = (0..ndirs)
            .map(|_| self.dom.grant_page(DD, Access::ReadOnly).unwrap())
            .collect();
        for (i, d) in dirs.iter().enumerate() {
            let next = dirs.get(i + 1).map_or(0, |n| n.gref());
            d.page().write(0, &next.to_le_bytes()).unwrap();
            for (k, b) in buffer
                .iter()
                .skip(i * XENSND_GREFS_PER_DIR_PAGE)
                .take(XENSND_GREFS_PER_DIR_PAGE)
                .enumerate()
            {
                d.page().write(4 + 4 * k, &b.gref().to_le_bytes()).unwrap();
            }
        }
        let first = dirs[0].gref();
        self.streams[s].buffer = buffer;
        self.streams[s].dirs = dirs;
        first
    }

    /// OPEN with a freshly shared buffer; returns the status.
    pub fn open(&mut self, env: &mut Env, s: usize, p: OpenArgs) -> i32 {
        let dir = self.share_buffer(s, p.buffer as usize);
        self.open_with_dir(env, s, p, dir)
    }

    /// OPEN naming directory `dir`; returns the status.
    pub fn open_with_dir(&mut self, env: &mut Env, s: usize, p: OpenArgs, dir: u32) -> i32 {
        let req = XensndOpenReq {
            pcm_rate: p.rate,
            pcm_format: p.format,
            pcm_channels: p.channels,
            reserved: 0,
            buffer_sz: p.buffer,
            gref_directory: dir,
            period_sz: p.period,
        };
        self.request(env, s, XENSND_OP_OPEN, &req).status
    }

    pub fn close(&mut self, env: &mut Env, s: usize) -> i32 {
        self.request(env, s, XENSND_OP_CLOSE, &XensndRwReq::default())
            .status
    }

    pub fn trigger(&mut self, env: &mut Env, s: usize, t: u8) -> i32 {
        self.request(env, s, XENSND_OP_TRIGGER, &XensndTriggerReq { type_: t })
            .status
    }

    /// WRITE of `data` placed at `offset` of the buffer.
    pub fn write(&mut self, env: &mut Env, s: usize, offset: u32, data: &[u8]) -> i32 {
        self.streams[s].fill(offset as usize, data);
        self.rw(env, s, XENSND_OP_WRITE, offset, data.len() as u32)
    }

    pub fn rw(&mut self, env: &mut Env, s: usize, op: u8, offset: u32, length: u32) -> i32 {
        self.request(env, s, op, &XensndRwReq { offset, length })
            .status
    }

    pub fn query(&mut self, env: &mut Env, s: usize, q: &XensndQueryHwParam) -> XensndResp {
        self.request(env, s, XENSND_OP_HW_PARAM_QUERY, q)
    }
}

/// OPEN parameters.
#[derive(Clone, Copy, Debug)]
pub struct OpenArgs {
    pub rate: u32,
    pub format: u8,
    pub channels: u8,
    pub buffer: u32,
    pub period: u32,
}

/// 48 kHz stereo s16_le, 16 KiB buffer, 4 KiB periods.
pub const STEREO48: OpenArgs = OpenArgs {
    rate: 48_000,
    format: XENSND_PCM_FORMAT_S16_LE,
    channels: 2,
    buffer: 16384,
    period: 4096,
};

/// An ALSA-like player of one stream: prefills the buffer, starts, and refills what each
/// CUR_POS event frees, wrapping around the buffer.
pub struct Player {
    pub s: usize,
    pub data: Vec<u8>,
    pub buffer: usize,
    /// Bytes written so far.
    pub written: usize,
    /// Position the backend last reported.
    pub hw: u64,
    pub started: bool,
    /// When set, positions reach the player as Linux's frontend and ALSA see them.
    pub pointer: Option<AlsaPointer>,
    /// Times the position caught up with what was written before the end (ALSA would stop
    /// the stream: an underrun in the guest).
    pub xruns: u32,
}

/// The position as Linux's `snd_xen_front` and ALSA see it: the frontend adds each event's
/// step to a pointer kept modulo the buffer, and ALSA (reading that pointer after every
/// event, the most often it can) counts a wrap whenever it went backwards. A step of a
/// whole buffer is lost.
pub struct AlsaPointer {
    buffer: u64,
    backend: u64,
    pointer: u64,
    /// The position ALSA believes, in bytes.
    pub alsa: u64,
}

impl AlsaPointer {
    pub fn new(buffer: u64) -> Self {
        Self {
            buffer,
            backend: 0,
            pointer: 0,
            alsa: 0,
        }
    }

    /// A CUR_POS event at `pos`; returns the position ALSA now believes.
    pub fn event(&mut self, pos: u64) -> u64 {
        let step = pos.wrapping_sub(self.backend);
        self.backend = pos;
        self.pointer = (self.pointer + step) % self.buffer;
        let old = self.alsa % self.buffer;
        self.alsa += (self.pointer + self.buffer - old) % self.buffer;
        self.alsa
    }
}

impl Player {
    pub fn new(s: usize, data: Vec<u8>, buffer: usize) -> Self {
        Self {
            s,
            data,
            buffer,
            written: 0,
            hw: 0,
            started: false,
            pointer: None,
            xruns: 0,
        }
    }

    /// Writes what fits; starts after the first fill. Asserts every request succeeded.
    pub fn step(&mut self, env: &mut Env, f: &mut Front) {
        for (_, pos) in f.streams[self.s].take_events() {
            let pos = match &mut self.pointer {
                Some(p) => p.event(pos),
                None => pos,
            };
            assert!(pos >= self.hw, "position never goes back");
            self.hw = pos;
            // ALSA stops a stream whose hardware caught up with the application.
            if self.started && self.hw as usize >= self.written && self.written < self.data.len() {
                self.xruns += 1;
            }
        }
        loop {
            // What ALSA lets the application write: the buffer beyond the position.
            let free = (self.buffer + self.hw as usize).saturating_sub(self.written);
            let left = self.data.len() - self.written;
            let at = self.written % self.buffer;
            let n = free.min(left).min(self.buffer - at);
            if n == 0 {
                break;
            }
            let chunk = self.data[self.written..self.written + n].to_vec();
            assert_eq!(f.write(env, self.s, at as u32, &chunk), 0, "write");
            self.written += n;
        }
        if !self.started {
            assert_eq!(f.trigger(env, self.s, XENSND_OP_TRIGGER_START), 0, "start");
            self.started = true;
        }
    }

    pub fn done(&self) -> bool {
        self.hw as usize >= self.data.len()
    }
}

/// Plays every player to its end, stepping the clock by `step_ms`; stops them.
pub fn play_all(env: &mut Env, players: &mut [(&mut Front, &mut Player)], step_ms: u64) {
    for _ in 0..100_000 {
        for (f, p) in players.iter_mut() {
            p.step(env, f);
        }
        if players.iter().all(|(_, p)| p.done()) {
            break;
        }
        env.advance(step_ms * MS);
    }
    for (f, p) in players.iter_mut() {
        assert!(p.done(), "played to the end");
        assert_eq!(f.trigger(env, p.s, XENSND_OP_TRIGGER_STOP), 0, "stop");
    }
    // Let the card play out what is queued.
    for _ in 0..20 {
        env.advance(step_ms * MS);
    }
}

/// `frames` of a sine of `freq` Hz at `rate`, `channels` equal channels, as s16_le bytes.
pub fn sine_s16(freq: f64, rate: u32, channels: usize, frames: usize, amp: f64) -> Vec<u8> {
    let mut out = Vec::with_capacity(frames * channels * 2);
    for n in 0..frames {
        let v = (amp * (2.0 * PI * freq * n as f64 / f64::from(rate)).sin()).round() as i16;
        for _ in 0..channels {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// Channel `c` of interleaved stereo frames, as floats.
pub fn channel(frames: &[i16], c: usize) -> Vec<f64> {
    frames
        .iter()
        .skip(c)
        .step_by(2)
        .map(|&s| f64::from(s))
        .collect()
}

/// The stretch of `x` between the first and the last sample louder than `floor`.
pub fn trim(x: &[f64], floor: f64) -> &[f64] {
    let start = x.iter().position(|v| v.abs() > floor).unwrap_or(0);
    let end = x.iter().rposition(|v| v.abs() > floor).map_or(0, |e| e + 1);
    &x[start..end.max(start)]
}

/// Amplitude of the `freq` component of `x` (Goertzel).
pub fn amplitude(x: &[f64], freq: f64, rate: f64) -> f64 {
    let w = 2.0 * PI * freq / rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / x.len() as f64
}

/// The frequency between `lo` and `hi` Hz with the largest amplitude (1 Hz scan, then
/// 0.05 Hz around the peak).
pub fn dominant(x: &[f64], rate: f64, lo: f64, hi: f64) -> f64 {
    let scan = |a: f64, b: f64, step: f64| {
        let mut best = (a, 0.0);
        let mut f = a;
        while f <= b {
            let m = amplitude(x, f, rate);
            if m > best.1 {
                best = (f, m);
            }
            f += step;
        }
        best.0
    };
    let coarse = scan(lo, hi, 1.0);
    scan(coarse - 1.0, coarse + 1.0, 0.05)
}
