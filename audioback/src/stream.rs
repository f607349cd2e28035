//! One stream of a card: its request ring and event page (each with its own event
//! channel), its open state, and the requests Linux's `snd_xen_front` sends it.
//!
//! Every request gets exactly one response in the same pass (the frontend waits for each,
//! with a 3 s timeout): OPEN checks the parameters against the stream's offer (`-EINVAL`
//! otherwise) and maps the buffer once (an OPEN of an open stream replaces it); CLOSE (also
//! without an OPEN, as Linux's `hw_free` sends it) drops it; WRITE queues the buffer's bytes
//! for the mixer, READ hands out captured bytes; TRIGGER moves the mixer's voice between
//! stopped, running and paused (a STOP drops what is queued and moves the position to where
//! the frontend restarts, telling it so); HW_PARAM_QUERY answers the offer
//! narrowed to the guest's intervals; the volume and mute operations set the voice's
//! per-channel gains. Anything that makes no sense in the stream's state gets `-EINVAL`,
//! counted and logged once per class. Only a corrupted ring fails the device.
//!
//! After the requests, `CUR_POS` events report the position once it has crossed a period
//! boundary since the last report (one event per boundary crossed, so no step reaches a
//! buffer's size), or once a playback stream has played all it was given (so a last,
//! partial period is reported and the frontend's drain ends).

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use minios::event_throttle::{count_hold, EventThrottle, Verdict};
use minios::platform::{DomId, EventChannel, Platform, XenErrno};
use minios::ring::{BackChannel, RingAccessError};
use xen_abi::sndif::{XensndReq, XensndResp};

use crate::buffer::GuestBuffer;
use crate::card::{Direction, StreamConfig};
use crate::events::EventRing;
use crate::mixer::volume::{MAX_MDB, MIN_MDB};
use crate::mixer::{SharedEngine, VoiceId, VoiceState};
use crate::params::OpenParams;
use crate::policy::{self, Policy};
use crate::stats::{ErrorClass, Stats};
use crate::wire::{Parsed, Request, Trigger, VolumeOp};

/// Events one report writes at most (one per period boundary crossed): the rest follow on
/// the next pass.
const MAX_EVENTS_PER_REPORT: usize = 16;

/// The request ring of a stream.
pub type ReqRing<M> = BackChannel<M, XensndReq, XensndResp>;

/// An open stream.
struct Open<M> {
    buffer: GuestBuffer<M>,
    params: OpenParams,
    voice: VoiceId,
    /// Position of the last event.
    reported: u64,
    /// Underruns of the voice already counted in the device's stats.
    underruns_seen: u64,
}

/// What the frontend shares for a stream: the request ring and the event page, each with
/// its event channel.
pub struct StreamRings<P: Platform> {
    /// The request ring.
    pub ring: ReqRing<P::Mapping>,
    /// Its channel (`event-channel`).
    pub ring_channel: P::Channel,
    /// The event page.
    pub events: EventRing<P::Mapping>,
    /// Its channel (`evt-event-channel`).
    pub event_channel: P::Channel,
}

/// One connected stream.
pub struct Stream<P: Platform> {
    cfg: StreamConfig,
    label: String,
    frontend: DomId,
    ring: ReqRing<P::Mapping>,
    ring_channel: P::Channel,
    events: EventRing<P::Mapping>,
    event_channel: P::Channel,
    engine: SharedEngine,
    open: Option<Open<P::Mapping>>,
    /// Event-storm accounting of the request ring's port (work: its request index moved)
    /// and of the event page's port (on which a frontend has nothing to say).
    storm: (EventThrottle, EventThrottle),
    /// The request index at the end of the last poll.
    seen: Option<u32>,
    /// While a port is held back: when to poll again to end the hold.
    held_until: Option<u64>,
    /// Periods this stream ran out of data, over all its opens.
    underruns: u64,
}

fn errno(e: XenErrno) -> i32 {
    -e.0
}

impl<P: Platform> Stream<P> {
    /// A stream over its mapped ring and event page and their bound channels.
    pub fn new(
        cfg: StreamConfig,
        label: String,
        frontend: DomId,
        rings: StreamRings<P>,
        engine: SharedEngine,
    ) -> Self {
        Self {
            cfg,
            label,
            frontend,
            ring: rings.ring,
            ring_channel: rings.ring_channel,
            events: rings.events,
            event_channel: rings.event_channel,
            engine,
            open: None,
            storm: (EventThrottle::new(), EventThrottle::new()),
            seen: None,
            held_until: None,
            underruns: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &StreamConfig {
        &self.cfg
    }

    /// Whether an OPEN is in effect.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// The voice's state, if open.
    pub fn state(&self) -> Option<VoiceState> {
        let open = self.open.as_ref()?;
        self.engine.borrow().voice(open.voice).map(|v| v.state)
    }

    /// Periods this stream ran out of data, over all its opens (counted as it polls).
    pub fn underruns(&self) -> u64 {
        self.underruns
    }

    /// One line for `xddctl status`: direction, state (`closed`, `open` before a start or
    /// after a stop, `running`, `paused`), the open format, the underruns:
    /// `playback running 48000 Hz s16_le 2 ch, 3 underruns`.
    pub fn status(&self) -> String {
        let direction = match self.cfg.direction {
            Direction::Playback => "playback",
            Direction::Capture => "capture",
        };
        let Some(open) = self.open.as_ref() else {
            return format!("{direction} closed, {} underruns", self.underruns);
        };
        let state = match self.state() {
            Some(VoiceState::Running) => "running",
            Some(VoiceState::Paused) => "paused",
            Some(VoiceState::Stopped) | None => "open",
        };
        let p = &open.params;
        format!(
            "{direction} {state} {} Hz {} {} ch, {} underruns",
            p.rate,
            p.format.name(),
            p.channels,
            self.underruns
        )
    }

    /// The id the next event gets.
    pub fn next_event_id(&self) -> u16 {
        self.events.next_id()
    }

    /// While one of the stream's ports is held back for an event storm
    /// ([`minios::event_throttle`]): when to poll again at the latest.
    pub fn hold_until(&self) -> Option<u64> {
        self.held_until
    }

    /// Takes and answers up to `budget` requests, then reports the position. Returns
    /// whether to poll again soon: requests are left, or some were answered (a TRIGGER may
    /// have started the mixer, which runs in the next pass). An error means the frontend
    /// corrupted the ring.
    ///
    /// `policy` tells, at an OPEN, what the card may do (or why that is unknown: then
    /// nothing is allowed).
    pub fn poll(
        &mut self,
        platform: &P,
        stats: &mut Stats,
        budget: usize,
        now_ns: u64,
        policy: &mut dyn FnMut() -> Result<Policy, String>,
    ) -> Result<bool, RingAccessError> {
        let ring_fired = self.storm.0.take(&self.ring_channel, now_ns);
        let event_fired = self.storm.1.take(&self.event_channel, now_ns);
        let mut more = false;
        let mut done = 0;
        loop {
            if done == budget {
                more = true;
                break;
            }
            let Some(req) = self.ring.next_request()? else {
                if self.ring.final_check()? {
                    continue;
                }
                break;
            };
            done += 1;
            stats.requests += 1;
            let parsed = Parsed::parse(&req);
            let rsp = self.handle(platform, stats, &parsed, policy);
            self.ring.put_response(&rsp)?;
        }
        if self.ring.push() {
            // A closed remote port only means the frontend is going away.
            let _ = self.ring_channel.notify();
        }
        self.report(stats);
        let seen = self.ring.produced().ok();
        let moved = seen != self.seen;
        self.seen = seen;
        let verdicts = [
            self.storm
                .0
                .account(&self.ring_channel, now_ns, ring_fired, moved),
            self.storm
                .1
                .account(&self.event_channel, now_ns, event_fired, false),
        ];
        self.held_until = None;
        for v in verdicts {
            if let Verdict::Held { until_ns, started } = v {
                self.held_until = Some(self.held_until.map_or(until_ns, |t| t.min(until_ns)));
                if started {
                    count_hold(&mut stats.event_holds, &self.label);
                }
            }
        }
        Ok(more || done > 0)
    }

    fn handle(
        &mut self,
        platform: &P,
        stats: &mut Stats,
        p: &Parsed,
        policy: &mut dyn FnMut() -> Result<Policy, String>,
    ) -> XensndResp {
        let einval = errno(XenErrno::EINVAL);
        match p.request {
            Request::Open(open) => self.open(platform, stats, p, open, policy),
            Request::Close => {
                self.close(stats);
                p.respond(0)
            }
            Request::Write { offset, length } => {
                p.respond(self.write(stats, offset, length).unwrap_or(einval))
            }
            Request::Read { offset, length } => {
                p.respond(self.read(stats, offset, length).unwrap_or(einval))
            }
            Request::Volume { op, offset, length } => {
                p.respond(self.volume(stats, op, offset, length).unwrap_or(einval))
            }
            Request::Trigger(t) => p.respond(self.trigger(stats, t).unwrap_or(einval)),
            Request::BadTrigger(t) => {
                stats.error(ErrorClass::Invalid, &format_args!("trigger type {t}"));
                p.respond(einval)
            }
            Request::Query(q) => match self.cfg.offer.query(&q) {
                Ok(answer) => p.respond_query(&answer),
                Err(why) => {
                    stats.error(
                        ErrorClass::Refused,
                        &format_args!("hw param query: {}", why.0),
                    );
                    p.respond(einval)
                }
            },
            Request::Unknown => {
                stats.error(
                    ErrorClass::Unsupported,
                    &format_args!("operation {}", p.operation),
                );
                p.respond(errno(XenErrno::EOPNOTSUPP))
            }
        }
    }

    fn open(
        &mut self,
        platform: &P,
        stats: &mut Stats,
        p: &Parsed,
        open: xen_abi::sndif::XensndOpenReq,
        policy: &mut dyn FnMut() -> Result<Policy, String>,
    ) -> XensndResp {
        // Linux's frontend forgets an open stream without a CLOSE when ALSA sets hardware
        // parameters again (`stream_free` clears `is_open`), then OPENs anew: the new OPEN
        // replaces the old one.
        self.close(stats);
        let policy = match policy() {
            Ok(policy) if policy::allows(&policy, self.cfg.direction) => policy,
            Ok(_) => {
                let what = match self.cfg.direction {
                    Direction::Playback => "playback",
                    Direction::Capture => "capture",
                };
                stats.error(
                    ErrorClass::Denied,
                    &format_args!("open: {what} not allowed for this card"),
                );
                return p.respond(errno(XenErrno::EACCES));
            }
            Err(why) => {
                stats.error(ErrorClass::Denied, &format_args!("open: policy: {why}"));
                return p.respond(errno(XenErrno::EACCES));
            }
        };
        let params = match self.cfg.offer.check_open(&open) {
            Ok(params) => params,
            Err(why) => {
                stats.error(ErrorClass::Refused, &format_args!("open: {}", why.0));
                return p.respond(errno(XenErrno::EINVAL));
            }
        };
        let buffer =
            match GuestBuffer::map(platform, self.frontend, open.gref_directory, open.buffer_sz) {
                Ok(b) => b,
                Err(why) => {
                    stats.error(ErrorClass::Buffer, &format_args!("open: {}", why.0));
                    return p.respond(errno(XenErrno::EINVAL));
                }
            };
        let voice = match self.engine.borrow_mut().add(self.cfg.direction, params) {
            Ok(v) => v,
            Err(_) => {
                stats.error(ErrorClass::Refused, &"open: every mixer voice is in use");
                return p.respond(errno(XenErrno::EBUSY));
            }
        };
        if policy.volume_mdb != 0 {
            if let Some(v) = self.engine.borrow_mut().voice_mut(voice) {
                for c in 0..usize::from(params.channels) {
                    v.gains.set(c, policy.volume_mdb);
                }
            }
        }
        log::info!(
            "{}: open {} {} Hz {} ch, buffer {} B, period {} B",
            self.label,
            params.format.name(),
            params.rate,
            params.channels,
            params.buffer_bytes,
            params.period_bytes
        );
        stats.opens += 1;
        self.open = Some(Open {
            buffer,
            params,
            voice,
            reported: 0,
            underruns_seen: 0,
        });
        p.respond(0)
    }

    fn close(&mut self, stats: &mut Stats) {
        self.count_underruns(stats);
        if let Some(open) = self.open.take() {
            self.engine.borrow_mut().remove(open.voice);
        }
    }

    /// The open stream, if it goes in `direction`; counts the error otherwise.
    fn open_for(
        &mut self,
        stats: &mut Stats,
        what: &str,
        direction: Option<Direction>,
    ) -> Option<&mut Open<P::Mapping>> {
        if self.open.is_none() {
            stats.error(ErrorClass::Invalid, &format_args!("{what} before open"));
            return None;
        }
        if let Some(d) = direction {
            if d != self.cfg.direction {
                stats.error(
                    ErrorClass::Invalid,
                    &format_args!("{what} on a {:?} stream", self.cfg.direction),
                );
                return None;
            }
        }
        self.open.as_mut()
    }

    fn region(
        open: &Open<P::Mapping>,
        stats: &mut Stats,
        what: &str,
        offset: u32,
        length: u32,
    ) -> Option<()> {
        match open.buffer.check(offset, length) {
            Ok(()) => Some(()),
            Err(why) => {
                stats.error(ErrorClass::Range, &format_args!("{what}: {}", why.0));
                None
            }
        }
    }

    fn write(&mut self, stats: &mut Stats, offset: u32, length: u32) -> Option<i32> {
        let engine = self.engine.clone();
        let open = self.open_for(stats, "write", Some(Direction::Playback))?;
        Self::region(open, stats, "write", offset, length)?;
        let mut data = vec![0u8; length as usize];
        if let Err(why) = open.buffer.read(offset, &mut data) {
            stats.error(ErrorClass::Buffer, &format_args!("write: {}", why.0));
            return None;
        }
        let mut engine = engine.borrow_mut();
        let voice = engine.voice_mut(open.voice)?;
        if voice.push(&data).is_err() {
            let why = format_args!(
                "write of {length} bytes with {} queued exceeds the {}-byte buffer",
                voice.queued(),
                open.params.buffer_bytes
            );
            stats.error(ErrorClass::Overflow, &why);
            return None;
        }
        stats.bytes_played += u64::from(length);
        Some(0)
    }

    fn read(&mut self, stats: &mut Stats, offset: u32, length: u32) -> Option<i32> {
        let engine = self.engine.clone();
        let open = self.open_for(stats, "read", Some(Direction::Capture))?;
        Self::region(open, stats, "read", offset, length)?;
        let mut data = vec![0u8; length as usize];
        let got = engine.borrow_mut().voice_mut(open.voice)?.take(&mut data);
        if got < data.len() {
            stats.short_reads += 1;
        }
        if let Err(why) = open.buffer.write(offset, &data) {
            stats.error(ErrorClass::Buffer, &format_args!("read: {}", why.0));
            return None;
        }
        stats.bytes_recorded += u64::from(length);
        Some(0)
    }

    fn volume(&mut self, stats: &mut Stats, op: VolumeOp, offset: u32, length: u32) -> Option<i32> {
        let engine = self.engine.clone();
        let open = self.open_for(stats, "volume", None)?;
        let ch = usize::from(open.params.channels);
        let per = if matches!(op, VolumeOp::Set | VolumeOp::Get) {
            4
        } else {
            1
        };
        if length as usize != ch * per {
            let why = format_args!("{op:?} of {length} bytes for {ch} channels");
            stats.error(ErrorClass::Invalid, &why);
            return None;
        }
        Self::region(open, stats, "volume", offset, length)?;
        let mut engine = engine.borrow_mut();
        let voice = engine.voice_mut(open.voice)?;
        let mut raw = vec![0u8; length as usize];
        if op == VolumeOp::Get {
            for (c, out) in raw.chunks_exact_mut(4).enumerate() {
                out.copy_from_slice(&voice.gains.get(c).to_le_bytes());
            }
            return match open.buffer.write(offset, &raw) {
                Ok(()) => Some(0),
                Err(why) => {
                    stats.error(ErrorClass::Buffer, &format_args!("get volume: {}", why.0));
                    None
                }
            };
        }
        if let Err(why) = open.buffer.read(offset, &mut raw) {
            stats.error(ErrorClass::Buffer, &format_args!("volume: {}", why.0));
            return None;
        }
        match op {
            VolumeOp::Set => {
                let values: Vec<i32> = raw
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                if let Some(bad) = values.iter().find(|v| !(MIN_MDB..=MAX_MDB).contains(*v)) {
                    let why = format_args!("volume {bad} outside {MIN_MDB}..={MAX_MDB} (0.001 dB)");
                    stats.error(ErrorClass::Invalid, &why);
                    return None;
                }
                for (c, v) in values.into_iter().enumerate() {
                    voice.gains.set(c, v);
                }
            }
            VolumeOp::Mute | VolumeOp::Unmute => {
                for (c, &b) in raw.iter().enumerate() {
                    if b != 0 {
                        voice.gains.mute(c, op == VolumeOp::Mute);
                    }
                }
            }
            VolumeOp::Get => {}
        }
        Some(0)
    }

    fn trigger(&mut self, stats: &mut Stats, t: Trigger) -> Option<i32> {
        let engine = self.engine.clone();
        let open = self.open_for(stats, "trigger", None)?;
        let mut engine = engine.borrow_mut();
        let voice = engine.voice_mut(open.voice)?;
        let mut restart_at = None;
        let next = match (voice.state, t) {
            (VoiceState::Stopped, Trigger::Start) => VoiceState::Running,
            (VoiceState::Running, Trigger::Pause) => VoiceState::Paused,
            (VoiceState::Paused, Trigger::Resume) => VoiceState::Running,
            (_, Trigger::Stop) => {
                let at = restart_position(open.reported, open.params.buffer_bytes);
                voice.restart(at);
                restart_at = Some(at).filter(|&at| at != open.reported);
                VoiceState::Stopped
            }
            (state, t) => {
                stats.error(
                    ErrorClass::Invalid,
                    &format_args!("trigger {t:?} when {state:?}"),
                );
                return None;
            }
        };
        voice.state = next;
        drop(engine);
        if let Some(at) = restart_at {
            // Told before the STOP's answer, so the frontend has it before it restarts.
            self.send_position(stats, at);
        }
        Some(0)
    }

    /// Writes a `CUR_POS` event for `position` and notifies the frontend.
    fn send_position(&mut self, stats: &mut Stats, position: u64) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        match self.events.cur_pos(position) {
            Ok(true) => {
                stats.events += 1;
                open.reported = position;
                let _ = self.event_channel.notify();
            }
            Ok(false) => stats.events_dropped += 1,
            Err(e) => stats.error(ErrorClass::Buffer, &format_args!("event page: {e}")),
        }
    }

    fn count_underruns(&mut self, stats: &mut Stats) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        if let Some(v) = self.engine.borrow().voice(open.voice) {
            let new = v.underruns.saturating_sub(open.underruns_seen);
            stats.underruns += new;
            self.underruns += new;
            open.underruns_seen = v.underruns;
        }
    }

    /// Writes `CUR_POS` events when the position crossed a period boundary, or when a
    /// playback stream has played everything it was given (the last, partial period of a
    /// stream: without it the frontend's drain waits for a position that never comes).
    fn report(&mut self, stats: &mut Stats) {
        self.count_underruns(stats);
        let Some(open) = self.open.as_mut() else {
            return;
        };
        let period = u64::from(open.params.period_bytes);
        if period == 0 {
            return;
        }
        let Some((position, drained)) = self
            .engine
            .borrow()
            .voice(open.voice)
            .map(|v| (v.reported_position(), v.drained()))
        else {
            return;
        };
        let crossed = position / period > open.reported / period;
        if position <= open.reported || !(crossed || drained) {
            return;
        }
        // One event per period boundary crossed (then the position itself): the frontend
        // keeps its pointer modulo the buffer, so a single jump of a buffer or more (the
        // mixer filling a deep device queue at the start) would look like no progress.
        let mut at = open.reported;
        for _ in 0..MAX_EVENTS_PER_REPORT {
            // The next boundary while another one lies before the position, else the
            // position itself (so every event falls in a later period than the one before).
            let next = (at / period + 1) * period;
            at = if next + period <= position {
                next
            } else {
                position
            };
            self.send_position(stats, at);
            if at == position || self.open.as_ref().is_none_or(|o| o.reported != at) {
                break;
            }
        }
    }
}

/// Where a stream restarts after a STOP whose last reported position was `reported`: the
/// next multiple of the buffer's size. Linux's `snd_xen_front` keeps its pointer across
/// the stop (modulo the buffer) while ALSA's prepare counts from 0 again, so from any other
/// position the frontend would write that much more than its buffer holds; the event for
/// this position brings its pointer back to the buffer's start. The mixer counts from here
/// too (not from what it had taken beyond the last report, which was dropped with the
/// queue).
fn restart_position(reported: u64, buffer_bytes: u32) -> u64 {
    let buffer = u64::from(buffer_bytes.max(1));
    reported.div_ceil(buffer) * buffer
}

impl<P: Platform> Drop for Stream<P> {
    fn drop(&mut self) {
        if let (Some(open), Ok(mut engine)) = (self.open.take(), self.engine.try_borrow_mut()) {
            engine.remove(open.voice);
        }
    }
}

/// The stream's label for log lines (`vsnd 5/0 pb0`).
pub fn label(device: &str, cfg: &StreamConfig) -> String {
    format!("{device} {}", cfg.unique_id)
}
