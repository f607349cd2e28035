//! The mixer: every guest's playback stream mixed onto the one device stream, the device's
//! capture fanned out to every guest that records.
//!
//! Per device period, each running playback [`Voice`] converts its bytes (format, rate by
//! [`resample`], channels: mono to every device channel, otherwise channel `c` to device
//! channel `c mod n`), applies its gains ([`volume`]), and adds into a 32-bit mix that is
//! saturated to 16 bits once (clipping-safe: a loud mix clips, never wraps). The mixer
//! writes whole periods while the device has room, so at most the device's queue of
//! periods is in flight (bounded latency); each voice holds at most its stream's buffer
//! (bounded memory), and there are at most `max_voices` voices.
//!
//! The [`Engine`] is shared (`Rc<RefCell<…>>`) between the backend's streams, which add
//! voices and feed them, and [`EngineTask`], which runs it on the executor: it mixes when
//! the device has room and asks to be woken when it will have room again.

pub mod resample;
pub mod voice;
pub mod volume;

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use minios::executor::{Ctx, Task};
use minios::platform::Platform;

use crate::card::Direction;
use crate::device::{DeviceParams, PcmSink, PcmSource};
use crate::format::clamp16;
use crate::params::OpenParams;
pub use voice::{Voice, VoiceState};

/// Periods the mixer handles per pass at most (a late pass catches up, bounded).
pub const MAX_PERIODS_PER_PASS: usize = 8;

/// A voice's handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoiceId(usize);

/// Counters of the mixer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Playback periods written to the device.
    pub periods_played: u64,
    /// Capture periods read from the device.
    pub periods_recorded: u64,
    /// Device underruns (the device played silence because the mixer was late).
    pub device_underruns: u64,
    /// The latest the mixer ran after the time it asked to be woken at, in µs (the
    /// driver domain busy elsewhere or not scheduled): near a queue's worth of periods,
    /// the device underruns.
    pub late_max_us: u64,
}

/// The device, the voices and the mix buffers.
pub struct Engine {
    sink: Box<dyn PcmSink>,
    source: Box<dyn PcmSource>,
    voices: Vec<Option<Voice>>,
    max_voices: usize,
    mix: Vec<i32>,
    out: Vec<i16>,
    input: Vec<i16>,
    stats: EngineStats,
    /// Silence played after the last playback stream stopped, before the device stops.
    linger_ns: u64,
    /// When the last playback stream stopped (the device still running).
    idle_since: Option<u64>,
}

/// The engine as the backend's streams and the task share it.
pub type SharedEngine = Rc<RefCell<Engine>>;

/// No voice is free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoVoice;

impl Engine {
    /// An engine over a playback and a capture device, with at most `max_voices` voices.
    pub fn new(sink: Box<dyn PcmSink>, source: Box<dyn PcmSource>, max_voices: usize) -> Self {
        let p = sink.params();
        let q = source.params();
        Self {
            mix: vec![0; p.period_frames * usize::from(p.channels)],
            out: vec![0; p.period_frames * usize::from(p.channels)],
            input: vec![0; q.period_frames * usize::from(q.channels)],
            sink,
            source,
            voices: Vec::new(),
            max_voices,
            stats: EngineStats::default(),
            linger_ns: 0,
            idle_since: None,
        }
    }

    /// Keeps the device playing silence for `ns` after the last playback stream stops,
    /// before the queued periods play out and it stops (a card's own pipeline, e.g. QEMU's
    /// HDA, may still hold audio the position has passed: stopping at once cuts it off;
    /// a stream starting meanwhile also finds the device running).
    pub fn with_linger(mut self, ns: u64) -> Self {
        self.linger_ns = ns;
        self
    }

    /// Shares it.
    pub fn shared(self) -> SharedEngine {
        Rc::new(RefCell::new(self))
    }

    /// The playback device's parameters.
    pub fn playback_params(&self) -> DeviceParams {
        self.sink.params()
    }

    /// Notes that the mixer ran `late_ns` after the time it asked for.
    pub fn note_late(&mut self, late_ns: u64) {
        self.stats.late_max_us = self.stats.late_max_us.max(late_ns / 1_000);
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            device_underruns: self.sink.underruns(),
            ..self.stats
        }
    }

    /// Voices in use.
    pub fn voices(&self) -> usize {
        self.voices.iter().filter(|v| v.is_some()).count()
    }

    /// Adds a stopped voice for an opened stream.
    pub fn add(&mut self, direction: Direction, params: OpenParams) -> Result<VoiceId, NoVoice> {
        let rate = match direction {
            Direction::Playback => self.sink.params().rate,
            Direction::Capture => self.source.params().rate,
        };
        let voice = Voice::new(direction, params, rate);
        if let Some(i) = self.voices.iter().position(Option::is_none) {
            self.voices[i] = Some(voice);
            return Ok(VoiceId(i));
        }
        if self.voices.len() >= self.max_voices {
            return Err(NoVoice);
        }
        self.voices.push(Some(voice));
        Ok(VoiceId(self.voices.len() - 1))
    }

    /// Removes a voice (CLOSE, disconnect).
    pub fn remove(&mut self, id: VoiceId) {
        if let Some(slot) = self.voices.get_mut(id.0) {
            *slot = None;
        }
    }

    /// A voice.
    pub fn voice(&self, id: VoiceId) -> Option<&Voice> {
        self.voices.get(id.0).and_then(Option::as_ref)
    }

    /// A voice, to change.
    pub fn voice_mut(&mut self, id: VoiceId) -> Option<&mut Voice> {
        self.voices.get_mut(id.0).and_then(Option::as_mut)
    }

    fn running(&self, direction: Direction) -> bool {
        self.voices
            .iter()
            .flatten()
            .any(|v| v.direction == direction && v.state == VoiceState::Running)
    }

    /// Mixes and records what is due at `now_ns`; returns when to run again (`None`: idle
    /// until a stream starts).
    pub fn pump(&mut self, now_ns: u64) -> Option<u64> {
        let play = self.pump_playback(now_ns);
        let rec = self.pump_capture(now_ns);
        match (play, rec) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn pump_playback(&mut self, now: u64) -> Option<u64> {
        let p = self.sink.params();
        if !self.running(Direction::Playback) {
            if !self.sink.running() {
                self.idle_since = None;
                return None;
            }
            let since = *self.idle_since.get_or_insert(now);
            let until = since.saturating_add(self.linger_ns);
            if now < until {
                for _ in 0..MAX_PERIODS_PER_PASS {
                    if self.sink.writable(now) < p.period_frames {
                        break;
                    }
                    self.out.fill(0);
                    self.sink.write(&self.out);
                }
                return Some(self.sink.next_space_ns(now).unwrap_or(until).min(until));
            }
            // Let the queued periods play out, then stop the device.
            let queued = self.sink.queued(now) as u64;
            if queued == 0 {
                self.sink.stop();
                return None;
            }
            let ns = (queued * 1_000_000_000).div_ceil(u64::from(p.rate.max(1)));
            return Some(now.saturating_add(ns));
        }
        self.idle_since = None;
        if !self.sink.running() {
            self.sink.start(now);
        }
        let dev_ch = usize::from(p.channels);
        for _ in 0..MAX_PERIODS_PER_PASS {
            if self.sink.writable(now) < p.period_frames {
                break;
            }
            self.mix.fill(0);
            for v in self.voices.iter_mut().flatten() {
                if v.direction == Direction::Playback && v.state == VoiceState::Running {
                    v.mix_into(&mut self.mix, dev_ch, p.period_frames);
                }
            }
            for (o, m) in self.out.iter_mut().zip(&self.mix) {
                *o = clamp16(*m) as i16;
            }
            self.sink.write(&self.out);
            self.stats.periods_played += 1;
        }
        self.sink.next_space_ns(now)
    }

    fn pump_capture(&mut self, now: u64) -> Option<u64> {
        if !self.running(Direction::Capture) {
            if self.source.running() {
                self.source.stop();
            }
            return None;
        }
        if !self.source.running() {
            self.source.start(now);
        }
        let q = self.source.params();
        for _ in 0..MAX_PERIODS_PER_PASS {
            if self.source.readable(now) < q.period_frames {
                break;
            }
            let n = self.source.read(now, &mut self.input);
            let got = &self.input[..n * usize::from(q.channels)];
            for v in self.voices.iter_mut().flatten() {
                if v.direction == Direction::Capture && v.state == VoiceState::Running {
                    v.capture_from(got, usize::from(q.channels));
                }
            }
            self.stats.periods_recorded += 1;
        }
        self.source.next_data_ns(now)
    }
}

/// Runs the engine on the executor (spawn it before the backend, so a pass mixes first and
/// the streams then report the new positions).
pub struct EngineTask {
    engine: SharedEngine,
    /// When the engine asked to run next.
    due: Option<u64>,
}

impl EngineTask {
    /// The task running `engine`.
    pub fn new(engine: SharedEngine) -> Self {
        Self { engine, due: None }
    }
}

impl<P: Platform> Task<P> for EngineTask {
    fn poll(&mut self, cx: &mut Ctx<'_, P>) {
        let Ok(mut engine) = self.engine.try_borrow_mut() else {
            return;
        };
        let now = cx.now_ns();
        if let Some(due) = self.due.filter(|&d| now >= d) {
            engine.note_late(now - due);
        }
        self.due = engine.pump(now);
        if let Some(at) = self.due {
            cx.wake_at(at);
        }
    }
}
