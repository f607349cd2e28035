//! The mixer: every guest's playback stream mixed onto the one device stream, the device's
//! capture fanned out to every guest that records.
//!
//! Per device period, each running playback [`Voice`] converts its bytes (format, rate by
//! [`resample`], channels: mono to every device channel, otherwise channel `c` to device
//! channel `c mod n`), applies its gains ([`volume`]), and adds into a 32-bit mix that is
//! saturated to 16 bits once (clipping-safe: a loud mix clips, never wraps). The mixer
//! writes whole periods while the device has room, so at most the device's queue of
//! periods is in flight (bounded latency). The position a guest is told follows what the
//! device has played of its voice, but stays at most half the guest's buffer behind what
//! the mixer has taken ([`Voice::reported_position`]). While a running voice lacks a
//! period's data and the device holds more than [`LOW_WATER_PERIODS`], the mixer waits for
//! the guest (the device's queue covers a late guest); below that it mixes what there is.
//! Each voice holds at most its stream's buffer (bounded memory), and there are at most
//! `max_voices` voices.
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
use minios::platform::{Clock, Platform};
use minios::xenstore::WaitHook;

use crate::card::Direction;
use crate::device::{DeviceParams, PcmSink, PcmSource};
use crate::format::clamp16;
use crate::params::OpenParams;
pub use voice::{Voice, VoiceState};

/// Periods the mixer handles per pass at most (a late pass catches up, bounded).
pub const MAX_PERIODS_PER_PASS: usize = 8;

/// Periods left in the device below which the mixer mixes even when a guest's voice lacks
/// data (it plays silence for what is missing); above it, it waits for the guest.
pub const LOW_WATER_PERIODS: usize = 2;

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
    /// Times the capture device stalled (its position stood still while recording) and
    /// silence was recorded in its place ([`PcmSource::stalls`]).
    pub capture_stalls: u64,
    /// Frames of that silence ([`PcmSource::stall_frames`]).
    pub capture_stall_frames: u64,
    /// Times the capture device dropped recorded frames because the mixer did not read
    /// them in time ([`PcmSource::overruns`]).
    pub capture_overruns: u64,
    /// Positions the capture device reported that made no sense and were ignored
    /// ([`PcmSource::bad_positions`]).
    pub capture_bad_positions: u64,
    /// Positions the playback device reported that made no sense and were ignored
    /// ([`PcmSink::bad_positions`]).
    pub playback_bad_positions: u64,
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
    /// Frames of silence written since then (the tail of the device's queue).
    lingered: usize,
    /// When the engine asked to run next.
    due: Option<u64>,
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
            lingered: 0,
            due: None,
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

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            device_underruns: self.sink.underruns(),
            capture_stalls: self.source.stalls(),
            capture_stall_frames: self.source.stall_frames(),
            capture_overruns: self.source.overruns(),
            capture_bad_positions: self.source.bad_positions(),
            playback_bad_positions: self.sink.bad_positions(),
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
    /// until a stream starts). Running later than the time it last returned counts in
    /// [`EngineStats::late_max_us`].
    pub fn pump(&mut self, now_ns: u64) -> Option<u64> {
        if let Some(due) = self.due.filter(|&d| now_ns >= d) {
            let late_us = (now_ns - due) / 1_000;
            self.stats.late_max_us = self.stats.late_max_us.max(late_us);
        }
        let play = self.pump_playback(now_ns);
        let rec = self.pump_capture(now_ns);
        self.due = match (play, rec) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.due
    }

    fn pump_playback(&mut self, now: u64) -> Option<u64> {
        let p = self.sink.params();
        if self.sink.running() {
            let played = self.sink.position(now);
            for v in self.voices.iter_mut().flatten() {
                v.note_played(played);
            }
        }
        if !self.running(Direction::Playback) {
            if !self.sink.running() {
                self.idle_since = None;
                return None;
            }
            if self.idle_since.is_none() {
                self.lingered = 0;
            }
            let since = *self.idle_since.get_or_insert(now);
            let until = since.saturating_add(self.linger_ns);
            if now < until {
                for _ in 0..MAX_PERIODS_PER_PASS {
                    if self.sink.writable(now) < p.period_frames {
                        break;
                    }
                    self.out.fill(0);
                    self.write_period(now);
                    self.lingered += p.period_frames;
                }
                let at = self.sink.next_space_ns(now).unwrap_or(until).min(until);
                return Some(self.next_played_ns(now).map_or(at, |t| t.min(at)));
            }
            // Let the queued sound play out, then stop the device. What is left behind it is
            // the linger's silence: the device stops before it runs dry (which would count
            // as an underrun whenever this pass comes late).
            let queued = self.sink.queued(now).saturating_sub(self.lingered) as u64;
            if queued == 0 {
                self.sink.stop();
                self.flush_played();
                return None;
            }
            let ns = (queued * 1_000_000_000).div_ceil(u64::from(p.rate.max(1)));
            let at = now.saturating_add(ns);
            return Some(self.next_played_ns(now).map_or(at, |t| t.min(at)));
        }
        self.idle_since = None;
        if !self.sink.running() {
            self.sink.start(now);
            self.flush_played();
        }
        let dev_ch = usize::from(p.channels);
        let period = p.period_frames;
        let low = LOW_WATER_PERIODS * period;
        for _ in 0..MAX_PERIODS_PER_PASS {
            if self.sink.writable(now) < period {
                return self.sink.next_space_ns(now);
            }
            let queued = self.sink.queued(now);
            let ready = self.voices.iter().flatten().all(|v| {
                v.direction != Direction::Playback
                    || v.state != VoiceState::Running
                    || v.can_fill(period, p.rate)
            });
            if !ready && queued > low {
                // Wait for the guest until the device is down to the low-water mark (a
                // guest's WRITE makes a pass sooner), running meanwhile whenever more of a
                // voice has played, so its position reaches the guest on time.
                let frames = (queued - low) as u64;
                let ns = (frames * 1_000_000_000).div_ceil(u64::from(p.rate.max(1)));
                let low_water = now.saturating_add(ns);
                return Some(
                    self.next_played_ns(now)
                        .map_or(low_water, |t| t.min(low_water)),
                );
            }
            self.mix.fill(0);
            for v in self.voices.iter_mut().flatten() {
                if v.direction == Direction::Playback && v.state == VoiceState::Running {
                    v.mix_into(&mut self.mix, dev_ch, period);
                }
            }
            for (o, m) in self.out.iter_mut().zip(&self.mix) {
                *o = clamp16(*m) as i16;
            }
            self.write_period(now);
            self.stats.periods_played += 1;
        }
        Some(now)
    }

    /// Writes `out` to the device and notes, for every playback voice, where its bytes
    /// taken so far end in the device (in the device's own count of frames, which skips
    /// ahead over an underrun).
    fn write_period(&mut self, now: u64) {
        self.sink.write(&self.out);
        let end = self.sink.position(now) + self.sink.queued(now) as u64;
        for v in self.voices.iter_mut().flatten() {
            if v.direction == Direction::Playback {
                v.note_written(end);
            }
        }
    }

    /// When more of some voice will have played (its position moves: the guest must hear
    /// of it), if any voice has bytes in the device.
    fn next_played_ns(&mut self, now: u64) -> Option<u64> {
        let played = self.sink.position(now);
        let next = self
            .voices
            .iter()
            .flatten()
            .filter_map(Voice::next_played_at)
            .min()?;
        let frames = next.saturating_sub(played).max(1);
        let rate = u64::from(self.sink.params().rate.max(1));
        Some(now.saturating_add((frames * 1_000_000_000).div_ceil(rate)))
    }

    /// Counts every voice's bytes in the device as played (it stopped, or starts afresh).
    fn flush_played(&mut self) {
        for v in self.voices.iter_mut().flatten() {
            v.flush_played();
        }
    }

    /// The shortest buffer, in ns, of the running capture voices (`None`: none runs).
    fn shortest_capture_buffer_ns(&self, dev_rate: u32) -> Option<u64> {
        self.voices
            .iter()
            .flatten()
            .filter(|v| v.direction == Direction::Capture && v.state == VoiceState::Running)
            .map(|v| {
                let frames = v.buffer_frames_at(dev_rate) as u128;
                (frames * 1_000_000_000 / u128::from(dev_rate.max(1))) as u64
            })
            .min()
    }

    fn pump_capture(&mut self, now: u64) -> Option<u64> {
        if !self.running(Direction::Capture) {
            if self.source.running() {
                self.source.stop();
            }
            return None;
        }
        let q = self.source.params();
        self.source
            .set_guest_buffer_ns(self.shortest_capture_buffer_ns(q.rate));
        if !self.source.running() {
            self.source.start(now);
        }
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
pub struct EngineTask(SharedEngine);

impl EngineTask {
    /// The task running `engine`.
    pub fn new(engine: SharedEngine) -> Self {
        Self(engine)
    }
}

impl<P: Platform> Task<P> for EngineTask {
    fn poll(&mut self, cx: &mut Ctx<'_, P>) {
        let Ok(mut engine) = self.0.try_borrow_mut() else {
            return;
        };
        if let Some(at) = engine.pump(cx.now_ns()) {
            cx.wake_at(at);
        }
    }
}

/// The engine as a xenstore wait hook ([`minios::xenstore::WaitHook`]): while a task waits
/// for a xenstore reply (a guest's card connecting, counters being published), the mixer
/// still runs on time. Skipped while the engine is in use.
pub fn wait_hook<C: Clock + 'static>(engine: SharedEngine, clock: C) -> WaitHook {
    Box::new(move || {
        let now = clock.now_ns();
        engine.try_borrow_mut().ok().and_then(|mut e| e.pump(now))
    })
}
