//! A playback device that is a cyclic DMA ring read by hardware (an HDA output stream):
//! [`RingSink`] turns the hardware's position in the ring into the [`PcmSink`] the mixer
//! writes, paced by that position, not by the clock.
//!
//! The ring holds `queue + 2` periods; the mixer may have `queue` periods written ahead of
//! the position. Every frame the hardware has passed is zeroed at the next look, so when
//! the mixer is late the hardware plays silence (counted as an underrun), never stale
//! audio from a ring ago. The DMA is started by the first write after [`PcmSink::start`]
//! (so it never begins on an empty ring) and stopped (position back to 0, ring zeroed) by
//! [`PcmSink::stop`]. A position outside the ring is ignored and counted (a hostile or
//! broken device cannot make the sink write out of bounds or count backwards).
//!
//! The position must be looked at at least once per ring (the mixer wakes once a period).
//!
//! [`RingSource`] is the capture side: the hardware writes the ring, the position says how
//! far; at most `queue` periods wait to be read (older ones are dropped as an overrun,
//! before the hardware comes round to overwrite them). A position that stands still for
//! [`stall_limit_ns`] while recording is a stalled device: silence at the rate until it
//! moves again, then the ring from the new position.

use alloc::collections::VecDeque;
use alloc::string::String;

use minios::error_log::{thinning_note, worth_logging};

use super::{DeviceParams, PcmSink, PcmSource};

/// The hardware under a [`RingSink`].
pub trait RingDma {
    /// The ring's size in bytes.
    fn ring_bytes(&self) -> usize;
    /// Writes signed 16-bit samples at byte `offset` (wrapping at the ring's end).
    fn write_samples(&mut self, offset: usize, samples: &[i16]);
    /// Reads signed 16-bit samples from byte `offset` (wrapping at the ring's end).
    fn read_samples(&mut self, offset: usize, out: &mut [i16]);
    /// Zeroes `len` bytes from byte `offset` (wrapping).
    fn zero(&mut self, offset: usize, len: usize);
    /// Starts the DMA from position 0.
    fn start(&mut self);
    /// Stops the DMA; the position returns to 0 and the ring is zeroed.
    fn stop(&mut self) -> Result<(), String>;
    /// The position in the ring (bytes), `None` if the hardware reports nonsense.
    fn position(&mut self) -> Option<usize>;
}

/// Periods in the ring beyond the mixer's queue.
pub const SLACK_PERIODS: usize = 2;

/// The ring size in bytes for `params` with `queue` periods queued.
pub fn ring_bytes(params: DeviceParams, queue: usize) -> usize {
    (queue + SLACK_PERIODS) * params.period_frames * 2 * usize::from(params.channels)
}

/// A [`PcmSink`] over a [`RingDma`].
pub struct RingSink<D: RingDma> {
    dma: D,
    params: DeviceParams,
    frame_bytes: u64,
    ring_frames: u64,
    capacity: u64,
    armed: bool,
    dma_on: bool,
    last_pos: usize,
    played_bytes: u64,
    written: u64,
    cleared: u64,
    underruns: u64,
    /// Positions the hardware reported outside the ring.
    bad_positions: u64,
}

impl<D: RingDma> RingSink<D> {
    /// A sink of `params` with `queue` periods in flight over `dma`, whose ring must be
    /// [`ring_bytes`]`(params, queue)` long.
    pub fn new(dma: D, params: DeviceParams, queue: usize) -> Result<Self, String> {
        let frame_bytes = 2 * u64::from(params.channels.max(1));
        let want = ring_bytes(params, queue);
        if dma.ring_bytes() != want {
            return Err(alloc::format!(
                "the device's ring is {} bytes, not {want}",
                dma.ring_bytes()
            ));
        }
        Ok(Self {
            dma,
            params,
            frame_bytes,
            ring_frames: want as u64 / frame_bytes,
            capacity: (queue * params.period_frames) as u64,
            armed: false,
            dma_on: false,
            last_pos: 0,
            played_bytes: 0,
            written: 0,
            cleared: 0,
            underruns: 0,
            bad_positions: 0,
        })
    }

    /// The hardware.
    pub fn dma(&self) -> &D {
        &self.dma
    }

    /// Frames the hardware has played since the start; zeroes what it passed.
    fn catch_up(&mut self) -> u64 {
        if !self.dma_on {
            return self.played_bytes / self.frame_bytes;
        }
        let ring = self.dma.ring_bytes();
        match self.dma.position() {
            Some(p) if p < ring => {
                let delta = (p + ring - self.last_pos) % ring;
                self.played_bytes += delta as u64;
                self.last_pos = p;
            }
            _ => {
                if self.bad_positions == 0 {
                    log::warn!("sound device: position outside its {ring}-byte ring (ignored)");
                }
                self.bad_positions += 1;
            }
        }
        let played = self.played_bytes / self.frame_bytes;
        if played > self.written {
            self.underruns += 1;
            self.written = played;
        }
        let n = (played - self.cleared).min(self.ring_frames);
        if n > 0 {
            let from = ((played - n) % self.ring_frames) * self.frame_bytes;
            self.dma
                .zero(from as usize, (n * self.frame_bytes) as usize);
        }
        self.cleared = played;
        played
    }
}

impl<D: RingDma> PcmSink for RingSink<D> {
    fn params(&self) -> DeviceParams {
        self.params
    }

    fn start(&mut self, _now_ns: u64) {
        self.armed = true;
        self.dma_on = false;
        self.last_pos = 0;
        self.played_bytes = 0;
        self.written = 0;
        self.cleared = 0;
    }

    fn stop(&mut self) {
        if let Err(e) = self.dma.stop() {
            log::warn!("sound device: stopping: {e}");
        }
        self.armed = false;
        self.dma_on = false;
    }

    fn running(&self) -> bool {
        self.armed
    }

    fn writable(&mut self, _now_ns: u64) -> usize {
        if !self.armed {
            return 0;
        }
        let played = self.catch_up();
        (self.capacity - (self.written - played)) as usize
    }

    fn queued(&mut self, _now_ns: u64) -> usize {
        if !self.armed {
            return 0;
        }
        let played = self.catch_up();
        (self.written - played) as usize
    }

    fn write(&mut self, frames: &[i16]) {
        if !self.armed {
            return;
        }
        let ch = usize::from(self.params.channels.max(1));
        let n = (frames.len() / ch) as u64;
        let offset = (self.written % self.ring_frames) * self.frame_bytes;
        self.dma
            .write_samples(offset as usize, &frames[..n as usize * ch]);
        self.written += n;
        if !self.dma_on && n > 0 {
            self.dma.start();
            self.dma_on = true;
        }
    }

    fn position(&mut self, _now_ns: u64) -> u64 {
        self.catch_up()
    }

    fn next_space_ns(&mut self, now_ns: u64) -> Option<u64> {
        if !self.armed {
            return None;
        }
        if !self.dma_on {
            return Some(now_ns);
        }
        let played = self.catch_up();
        let period = self.params.period_frames as u64;
        let free_at = (self.written + period).saturating_sub(self.capacity);
        let need = free_at.saturating_sub(played);
        let ns = (u128::from(need) * 1_000_000_000).div_ceil(u128::from(self.params.rate.max(1)));
        Some(now_ns.saturating_add(ns as u64))
    }

    fn underruns(&self) -> u64 {
        self.underruns
    }

    fn bad_positions(&self) -> u64 {
        self.bad_positions
    }
}

/// At most this long a capture device's position may stand still before it is stalled
/// (see [`stall_limit_ns`]): long enough that a device model's own timer running late under
/// host load does not count (the testbed saw the driver domain itself run up to 203.6 ms
/// late on a loaded 2-core host; nothing the driver domain does makes the position stand
/// still: a late look still finds it moved), unless a recording guest's buffer is shorter.
pub const STALL_MAX_NS: u64 = 500_000_000;

/// Device periods a capture device's position may always stand still before it is stalled
/// (see [`stall_limit_ns`]): a device may move its position by whole periods.
pub const STALL_PERIODS: u64 = 2;

/// How long a running capture device's position may stand still before [`RingSource`]
/// calls it stalled: half the shortest buffer of the guests recording (`guest_buffer_ns`;
/// their ALSA fails a read with `EIO` after 1.1 buffer times without a move, so silence
/// must start well before), at most [`STALL_MAX_NS`], at least [`STALL_PERIODS`] device
/// periods.
pub fn stall_limit_ns(params: DeviceParams, guest_buffer_ns: Option<u64>) -> u64 {
    let rate = u128::from(params.rate.max(1));
    let period_ns = (params.period_frames as u128 * 1_000_000_000).div_ceil(rate) as u64;
    let guests = guest_buffer_ns.map_or(STALL_MAX_NS, |b| (b / 2).min(STALL_MAX_NS));
    guests.max(STALL_PERIODS * period_ns)
}

/// Frames at `rate` from `since` to `now`.
fn frames_since(rate: u32, since: u64, now: u64) -> u64 {
    (u128::from(now.saturating_sub(since)) * u128::from(rate) / 1_000_000_000) as u64
}

/// What a run of a [`RingSource`]'s frames is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    /// Silence for a stalled device.
    Silence,
    /// The ring's frames, the run's first at ring frame `at` (modulo the ring).
    Ring {
        /// The ring frame of the run's first frame.
        at: u64,
    },
}

/// Runs kept at most (unread frames may span the end of one stall, a recovery and the
/// start of the next; older ones are dropped as an overrun).
const MAX_RUNS: usize = 4;

/// A [`PcmSource`] over a [`RingDma`] the hardware writes.
///
/// A running device whose position stands still for [`stall_limit_ns`] is stalled: the
/// source then hands out silence at the nominal rate (as the `null` device does), so the
/// recording guests' positions keep moving, counts the episode ([`PcmSource::stalls`],
/// [`PcmSource::stall_frames`]) and logs it (one WARN line per episode, thinned with
/// [`minios::error_log::worth_logging`], an INFO line when it ends). When the position
/// moves again the source takes the ring from there: what the hardware wrote in the look
/// that found it moving is skipped (after a stall the ring behind the position may be the
/// hardware's fresh frames or ring-old stale ones, e.g. when the position jumped), so
/// neither stale frames nor the silence's time are handed out twice.
pub struct RingSource<D: RingDma> {
    dma: D,
    params: DeviceParams,
    name: String,
    frame_bytes: u64,
    capacity: u64,
    ring_frames: u64,
    stall_ns: u64,
    running: bool,
    last_pos: usize,
    /// Bytes the hardware recorded since the current ring run began (≡ `last_pos` modulo
    /// the ring).
    hw_bytes: u64,
    /// The first whole frame of `hw_bytes` the current ring run hands out.
    hw_first: u64,
    /// Runs of frames by the first frame of each, oldest first; the last is the current.
    runs: VecDeque<(u64, Run)>,
    /// When the position last moved (or the source started).
    moved_ns: u64,
    /// Stalled since.
    stalled: Option<u64>,
    recorded: u64,
    taken: u64,
    stalls: u64,
    stall_frames: u64,
    /// Times frames were dropped because they were not read in time.
    overruns: u64,
    /// Positions the hardware reported outside the ring.
    bad_positions: u64,
}

impl<D: RingDma> RingSource<D> {
    /// A source of `params` keeping at most `queue` periods unread, over `dma`, whose
    /// ring must be [`ring_bytes`]`(params, queue)` long.
    pub fn new(dma: D, params: DeviceParams, queue: usize) -> Result<Self, String> {
        let frame_bytes = 2 * u64::from(params.channels.max(1));
        let want = ring_bytes(params, queue);
        if dma.ring_bytes() != want {
            return Err(alloc::format!(
                "the device's ring is {} bytes, not {want}",
                dma.ring_bytes()
            ));
        }
        Ok(Self {
            dma,
            params,
            name: String::from("sound device input"),
            frame_bytes,
            capacity: (queue * params.period_frames) as u64,
            ring_frames: want as u64 / frame_bytes,
            stall_ns: stall_limit_ns(params, None),
            running: false,
            last_pos: 0,
            hw_bytes: 0,
            hw_first: 0,
            runs: VecDeque::new(),
            moved_ns: 0,
            stalled: None,
            recorded: 0,
            taken: 0,
            stalls: 0,
            stall_frames: 0,
            overruns: 0,
            bad_positions: 0,
        })
    }

    /// Names the device in log lines (`hda 0000:00:04.0 input`).
    pub fn with_name(mut self, name: String) -> Self {
        self.name = name;
        self
    }

    /// Whether the device is stalled now (silence is handed out).
    pub fn stalled(&self) -> bool {
        self.stalled.is_some()
    }

    /// Starts a new run of frames at the current end.
    fn push_run(&mut self, run: Run) {
        if self
            .runs
            .back()
            .is_some_and(|&(from, _)| from == self.recorded)
        {
            self.runs.pop_back();
        }
        self.runs.push_back((self.recorded, run));
        if self.runs.len() > MAX_RUNS {
            self.runs.pop_front();
            let from = self.runs[0].0;
            if self.taken < from {
                self.overruns += 1;
                self.taken = from;
            }
        }
    }

    /// Drops the runs wholly read.
    fn prune(&mut self) {
        while self.runs.len() > 1 && self.runs[1].0 <= self.taken {
            self.runs.pop_front();
        }
    }

    /// Frames recorded since the start (silence for a stall included).
    fn catch_up(&mut self, now: u64) -> u64 {
        if !self.running {
            return self.recorded;
        }
        let ring = self.dma.ring_bytes();
        let pos = self.dma.position().filter(|&p| p < ring);
        if pos.is_none() {
            if self.bad_positions == 0 {
                log::warn!(
                    "{}: position outside its {ring}-byte ring (ignored)",
                    self.name
                );
            }
            self.bad_positions += 1;
        }
        let moved = pos.filter(|&p| p != self.last_pos);
        match (self.stalled, moved) {
            (None, Some(p)) => {
                self.hw_bytes += ((p + ring - self.last_pos) % ring) as u64;
                self.last_pos = p;
                self.moved_ns = now;
            }
            (None, None) => {
                if now.saturating_sub(self.moved_ns) >= self.stall_ns {
                    self.stall(now);
                }
            }
            (Some(since), moved) => {
                // Silence at the rate since the stall began, from the silence's first frame.
                let from = self.runs.back().map_or(0, |&(from, _)| from);
                let r = (from + frames_since(self.params.rate, since, now)).max(self.recorded);
                self.stall_frames += r - self.recorded;
                self.recorded = r;
                if let Some(p) = moved {
                    self.recover(now, p);
                }
            }
        }
        if self.stalled.is_none() {
            let from = self.runs.back().map_or(0, |&(from, _)| from);
            let real = (self.hw_bytes / self.frame_bytes).saturating_sub(self.hw_first);
            self.recorded = self.recorded.max(from + real);
        }
        let pending = self.recorded - self.taken;
        if pending > self.capacity {
            self.overruns += 1;
            self.taken = self.recorded - self.capacity;
            self.prune();
        }
        self.recorded
    }

    /// The position stood still for the limit: silence from here.
    fn stall(&mut self, now: u64) {
        self.stalls += 1;
        self.stalled = Some(now);
        self.push_run(Run::Silence);
        if worth_logging(self.stalls) {
            log::warn!(
                "{}: capture stalled: its position stood at byte {} for {} ms; recording guests get silence until it moves ({} stalls so far{})",
                self.name,
                self.last_pos,
                now.saturating_sub(self.moved_ns) / 1_000_000,
                self.stalls,
                thinning_note(self.stalls),
            );
        }
    }

    /// The position moved to `p` after a stall: the ring from `p` on.
    fn recover(&mut self, now: u64, p: usize) {
        self.stalled = None;
        self.hw_bytes = p as u64;
        self.hw_first = (p as u64).div_ceil(self.frame_bytes);
        self.push_run(Run::Ring {
            at: self.hw_first % self.ring_frames,
        });
        if worth_logging(self.stalls) {
            log::info!(
                "{}: capture moves again after {} ms (byte {} to {p}); {} frames of silence given in its stalls",
                self.name,
                now.saturating_sub(self.moved_ns) / 1_000_000,
                self.last_pos,
                self.stall_frames,
            );
        }
        self.last_pos = p;
        self.moved_ns = now;
    }
}

impl<D: RingDma> PcmSource for RingSource<D> {
    fn params(&self) -> DeviceParams {
        self.params
    }

    fn start(&mut self, now_ns: u64) {
        self.last_pos = 0;
        self.hw_bytes = 0;
        self.hw_first = 0;
        self.runs.clear();
        self.runs.push_back((0, Run::Ring { at: 0 }));
        self.moved_ns = now_ns;
        self.stalled = None;
        self.recorded = 0;
        self.taken = 0;
        self.dma.start();
        self.running = true;
    }

    fn stop(&mut self) {
        if let Err(e) = self.dma.stop() {
            log::warn!("{}: stopping capture: {e}", self.name);
        }
        if self.stalled.take().is_some() && worth_logging(self.stalls) {
            log::info!(
                "{}: capture stopped while stalled; {} frames of silence given in its stalls",
                self.name,
                self.stall_frames
            );
        }
        self.running = false;
        self.taken = self.recorded;
    }

    fn running(&self) -> bool {
        self.running
    }

    fn readable(&mut self, now_ns: u64) -> usize {
        let recorded = self.catch_up(now_ns);
        (recorded - self.taken) as usize
    }

    fn read(&mut self, now_ns: u64, out: &mut [i16]) -> usize {
        let ch = usize::from(self.params.channels.max(1));
        let n = self.readable(now_ns).min(out.len() / ch);
        let end = self.taken + n as u64;
        let mut f = self.taken;
        let mut i = 0;
        while f < end {
            // The run holding frame `f` and where it ends.
            let k = self
                .runs
                .iter()
                .rposition(|&(from, _)| from <= f)
                .unwrap_or(0);
            let (from, run) = self.runs[k];
            let until = self.runs.get(k + 1).map_or(end, |&(next, _)| next.min(end));
            let len = (until - f) as usize * ch;
            let dst = &mut out[i..i + len];
            match run {
                Run::Silence => dst.fill(0),
                Run::Ring { at } => {
                    let frame = (at + (f - from)) % self.ring_frames;
                    self.dma
                        .read_samples((frame * self.frame_bytes) as usize, dst);
                }
            }
            i += len;
            f = until;
        }
        self.taken = end;
        self.prune();
        n
    }

    fn next_data_ns(&mut self, now_ns: u64) -> Option<u64> {
        if !self.running {
            return None;
        }
        let recorded = self.catch_up(now_ns);
        let need = (self.taken + self.params.period_frames as u64).saturating_sub(recorded);
        let ns = (u128::from(need) * 1_000_000_000).div_ceil(u128::from(self.params.rate.max(1)));
        let at = now_ns.saturating_add(ns as u64);
        Some(match self.stalled {
            // Look again when it would be stalled.
            None => at.min(self.moved_ns.saturating_add(self.stall_ns)),
            Some(_) => at,
        })
    }

    fn set_guest_buffer_ns(&mut self, ns: Option<u64>) {
        self.stall_ns = stall_limit_ns(self.params, ns);
    }

    fn stalls(&self) -> u64 {
        self.stalls
    }

    fn stall_frames(&self) -> u64 {
        self.stall_frames
    }

    fn overruns(&self) -> u64 {
        self.overruns
    }

    fn bad_positions(&self) -> u64 {
        self.bad_positions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::Direction;
    use crate::device::clock::ClockDevice;
    use crate::mixer::{Engine, VoiceId, VoiceState};
    use alloc::boxed::Box;
    use alloc::rc::Rc;
    use alloc::vec;
    use alloc::vec::Vec;
    use core::cell::Cell;

    /// A ring in memory whose "hardware" plays when the test says so.
    struct FakeDma {
        ring: Vec<i16>,
        pos: usize,
        on: bool,
        /// What the next look at the position reports instead of it (once); shared, so a
        /// test can make the hardware lie inside an engine.
        lie: Rc<Cell<Option<usize>>>,
        heard: Vec<i16>,
    }

    impl FakeDma {
        fn new(bytes: usize) -> Self {
            Self {
                ring: vec![0; bytes / 2],
                pos: 0,
                on: false,
                lie: Rc::default(),
                heard: Vec::new(),
            }
        }
        /// Plays `samples` samples from the position.
        fn play(&mut self, samples: usize) {
            assert!(self.on);
            for _ in 0..samples {
                self.heard.push(self.ring[self.pos]);
                self.pos = (self.pos + 1) % self.ring.len();
            }
        }
    }

    impl RingDma for FakeDma {
        fn ring_bytes(&self) -> usize {
            self.ring.len() * 2
        }
        fn write_samples(&mut self, offset: usize, samples: &[i16]) {
            let n = self.ring.len();
            for (i, s) in samples.iter().enumerate() {
                self.ring[(offset / 2 + i) % n] = *s;
            }
        }
        fn read_samples(&mut self, offset: usize, out: &mut [i16]) {
            let n = self.ring.len();
            for (i, s) in out.iter_mut().enumerate() {
                *s = self.ring[(offset / 2 + i) % n];
            }
        }
        fn zero(&mut self, offset: usize, len: usize) {
            let n = self.ring.len();
            for i in 0..len / 2 {
                self.ring[(offset / 2 + i) % n] = 0;
            }
        }
        fn start(&mut self) {
            self.on = true;
        }
        fn stop(&mut self) -> Result<(), String> {
            self.on = false;
            self.pos = 0;
            self.ring.fill(0);
            Ok(())
        }
        fn position(&mut self) -> Option<usize> {
            Some(self.lie.take().unwrap_or(self.pos * 2))
        }
    }

    const P: DeviceParams = DeviceParams {
        rate: 1000,
        channels: 2,
        period_frames: 8,
    };

    fn sink() -> RingSink<FakeDma> {
        RingSink::new(FakeDma::new(ring_bytes(P, 2)), P, 2).unwrap()
    }

    fn period(v: i16) -> Vec<i16> {
        vec![v; 16]
    }

    #[test]
    fn plays_in_order_paced_by_the_position() {
        let mut s = sink();
        s.start(0);
        assert_eq!(s.next_space_ns(0), Some(0));
        assert_eq!(s.writable(0), 16);
        assert!(!s.dma.on, "the DMA waits for data");
        s.write(&period(1));
        s.write(&period(2));
        assert!(s.dma.on);
        assert_eq!(s.writable(0), 0);
        // The clock says nothing: 1 s later, still full until the hardware moves.
        assert_eq!(s.writable(1_000_000_000), 0);
        assert_eq!(s.next_space_ns(0), Some(8_000_000));
        s.dma.play(16); // one period
        assert_eq!(s.writable(0), 8);
        assert_eq!(s.position(0), 8);
        for v in 3..10 {
            s.write(&period(v));
            s.dma.play(16);
            assert_eq!(s.queued(0), 8);
        }
        s.dma.play(16);
        let want: Vec<i16> = (1..10).flat_map(period).collect();
        assert_eq!(s.dma.heard, want);
        assert_eq!(s.underruns(), 0);
    }

    #[test]
    fn an_underrun_plays_silence_not_a_stale_ring() {
        let mut s = sink();
        s.start(0);
        for v in 1..=4 {
            if s.writable(0) < 8 {
                s.dma.play(16);
            }
            s.write(&period(v));
        }
        // The mixer stops writing; the hardware goes on through two whole rings,
        // looked at once a period.
        for _ in 0..8 {
            s.dma.play(16);
            let _ = s.writable(0);
        }
        assert!(s.underruns() >= 1);
        let heard = &s.dma.heard;
        let want: Vec<i16> = (1..=4).flat_map(period).collect();
        assert_eq!(&heard[..64], &want[..]);
        assert!(heard[64..].iter().all(|&x| x == 0), "stale audio replayed");
        // Writing again continues right where the hardware is.
        s.write(&period(7));
        s.dma.play(16);
        assert_eq!(&s.dma.heard[s.dma.heard.len() - 16..], &period(7)[..]);
    }

    #[test]
    fn a_position_outside_the_ring_is_ignored() {
        let mut s = sink();
        s.start(0);
        s.write(&period(1));
        s.dma.lie.set(Some(1 << 20));
        assert_eq!(s.position(0), 0);
        assert_eq!(s.bad_positions(), 1);
        s.dma.play(16);
        assert_eq!(s.position(0), 8);
    }

    impl FakeDma {
        /// The "hardware" records `samples` samples of value `v` at the position.
        fn record(&mut self, samples: usize, v: impl Fn(usize) -> i16) {
            assert!(self.on);
            for i in 0..samples {
                let n = self.ring.len();
                self.ring[self.pos] = v(i);
                self.pos = (self.pos + 1) % n;
            }
        }
    }

    #[test]
    fn capture_reads_what_the_hardware_wrote_and_drops_what_waited_too_long() {
        let mut s = RingSource::new(FakeDma::new(ring_bytes(P, 2)), P, 2).unwrap();
        s.start(0);
        assert!(s.dma.on);
        assert_eq!(s.readable(0), 0);
        assert_eq!(s.next_data_ns(0), Some(8_000_000));
        s.dma.record(16, |i| i as i16);
        assert_eq!(s.readable(0), 8);
        let mut out = [0i16; 16];
        assert_eq!(s.read(0, &mut out), 8);
        assert_eq!(out[..], (0..16).map(|i| i as i16).collect::<Vec<_>>()[..]);
        // Three periods unread: only the newest two are kept.
        s.dma.record(48, |i| 100 + (i / 16) as i16);
        assert_eq!(s.readable(0), 16);
        assert_eq!(s.overruns(), 1);
        assert_eq!(s.read(0, &mut out), 8);
        assert_eq!(out, [101; 16]);
        s.dma.lie.set(Some(1 << 20));
        assert_eq!(s.readable(0), 8);
        assert_eq!(s.bad_positions(), 1);
        s.stop();
        assert!(!s.running() && !s.dma.on);
        assert_eq!(s.next_data_ns(0), None);
    }

    const MS: u64 = 1_000_000;

    fn source(queue: usize) -> RingSource<FakeDma> {
        RingSource::new(FakeDma::new(ring_bytes(P, queue)), P, queue).unwrap()
    }

    /// Reads everything readable at `now`.
    fn drain(s: &mut RingSource<FakeDma>, now: u64) -> Vec<i16> {
        let mut out = vec![0i16; 2 * s.capacity as usize];
        let n = s.read(now, &mut out);
        out.truncate(2 * n);
        out
    }

    #[test]
    fn the_stall_limit_is_half_the_shortest_guest_buffer_within_bounds() {
        // Nobody records, or long buffers: the most.
        assert_eq!(stall_limit_ns(P, None), STALL_MAX_NS);
        assert_eq!(stall_limit_ns(P, Some(4 * STALL_MAX_NS)), STALL_MAX_NS);
        // A 170 ms buffer (ALSA's EIO at 187 ms): 85 ms.
        assert_eq!(stall_limit_ns(P, Some(170 * MS)), 85 * MS);
        // Never under two device periods (8 ms each here).
        assert_eq!(stall_limit_ns(P, Some(10 * MS)), 16 * MS);
        let slow = DeviceParams {
            rate: 8000,
            channels: 2,
            period_frames: 16384,
        };
        assert_eq!(stall_limit_ns(slow, None), 2 * 2_048_000_000);
    }

    #[test]
    fn a_stalled_input_gives_silence_at_the_rate_after_the_limit_not_before() {
        let mut s = source(2);
        s.start(0);
        // A ring full of sound, read as it comes, then the position stands still at 10 ms.
        for t in 1..=4 {
            s.dma.record(16, |i| 1000 + i as i16);
            assert_eq!(drain(&mut s, t * 2 * MS).len(), 16);
        }
        s.dma.record(16, |_| 7);
        assert_eq!(drain(&mut s, 10 * MS), vec![7; 16]);
        let limit = 10 * MS + STALL_MAX_NS;
        for t in (11..510).step_by(7) {
            assert_eq!(s.readable(t * MS), 0, "at {t} ms");
            assert!(
                s.next_data_ns(t * MS).unwrap() <= limit,
                "looks again at the limit"
            );
        }
        assert_eq!(s.readable(limit - 1), 0);
        assert!(!s.stalled() && s.stalls() == 0, "not before the limit");
        assert_eq!(s.readable(limit), 0);
        assert!(s.stalled());
        assert_eq!(s.stalls(), 1);
        // From then on a period of silence every period: not the ring's stale sound.
        assert_eq!(s.next_data_ns(limit), Some(limit + 8 * MS));
        for k in 1..=100 {
            let t = limit + k * 8 * MS;
            assert_eq!(s.readable(t - MS), 7, "at the rate");
            assert_eq!(drain(&mut s, t), vec![0; 16], "period {k}");
            assert_eq!(s.next_data_ns(t), Some(t + 8 * MS));
        }
        assert_eq!(s.stall_frames(), 800);
        assert_eq!((s.stalls(), s.overruns()), (1, 0));
    }

    #[test]
    fn recovery_takes_the_ring_again_from_the_position_without_stale_frames() {
        let mut s = source(2);
        s.start(0);
        // Two rings of sound, read as they come; the last frames (value 9) at 20 ms.
        for t in 1..=8 {
            s.dma.record(16, |_| t as i16);
            assert_eq!(drain(&mut s, t * MS + 12 * MS), vec![t as i16; 16]);
        }
        let limit = 20 * MS + STALL_MAX_NS;
        // Half a period stays unread when it stalls.
        s.dma.record(8, |_| 9);
        assert_eq!(s.readable(20 * MS), 4);
        assert_eq!(s.readable(limit), 4);
        assert!(s.stalled());
        let mut got = Vec::new();
        let mut t = limit;
        while t < limit + 200 * MS {
            t += 8 * MS;
            got.extend(drain(&mut s, t));
        }
        // The position comes back behind where it stood (it went round, or jumped): what
        // lies behind it in the ring is from before the stall.
        let stuck = s.dma.pos;
        s.dma.pos = (stuck + 60) % s.dma.ring.len();
        assert!(s.dma.pos < stuck);
        let silence = s.stall_frames();
        got.extend(drain(&mut s, t + 3 * MS));
        assert!(!s.stalled());
        let silence_total = s.stall_frames();
        assert_eq!(
            silence_total,
            silence + 3,
            "silence up to the look that found it moving"
        );
        // The hardware records from there.
        s.dma.record(32, |i| 500 + i as i16);
        got.extend(drain(&mut s, t + 40 * MS));
        assert_eq!(&got[..8], &[9; 8], "the last frames before the stall");
        let fresh: Vec<i16> = (0..32).map(|i| 500 + i).collect();
        let n = got.len();
        assert_eq!(
            &got[n - 32..],
            &fresh[..],
            "the hardware's new frames, in order"
        );
        assert!(
            got[8..n - 32].iter().all(|&x| x == 0),
            "only silence between: nothing stale from the ring"
        );
        // Every frame handed out once: the real ones and the silence, no more.
        assert_eq!(n as u64, 2 * (4 + silence_total + 16));
        assert_eq!((s.stalls(), s.overruns()), (1, 0));
        // And it goes on from the hardware's position.
        s.dma.record(16, |_| 42);
        assert_eq!(drain(&mut s, t + 50 * MS), vec![42; 16]);
    }

    #[test]
    fn a_moving_device_never_stalls_even_in_bursts() {
        let mut s = source(16);
        s.start(0);
        let mut got = 0;
        let mut t = 0;
        // Steady, one frame a millisecond, looked at every 8 ms, then bursts: 64 frames
        // at once after standing still for just under the limit.
        for _ in 0..125 {
            t += 8 * MS;
            s.dma.record(16, |_| 3);
            got += drain(&mut s, t).len();
        }
        for _ in 0..20 {
            let burst_at = t + STALL_MAX_NS - MS;
            while t + 10 * MS < burst_at {
                t += 10 * MS;
                got += drain(&mut s, t).len();
            }
            t = burst_at;
            s.dma.record(128, |_| 3);
            got += drain(&mut s, t).len();
        }
        assert_eq!((s.stalls(), s.stall_frames()), (0, 0));
        assert!(!s.stalled());
        assert_eq!(got, 125 * 16 + 20 * 128);
        // Two stall episodes count two.
        for k in 1..=2 {
            t += STALL_MAX_NS + MS;
            let _ = s.readable(t);
            assert_eq!(s.stalls(), k);
            s.dma.record(16, |_| 3);
            let _ = s.readable(t + MS);
            assert!(!s.stalled());
        }
    }

    /// Adds a running voice at the device's rate and format (s16 stereo, 8-frame periods)
    /// with a buffer of `buffer_bytes`.
    fn running_voice(e: &mut Engine, direction: Direction, buffer_bytes: u32) -> VoiceId {
        let params = crate::params::OpenParams {
            format: crate::format::SampleFormat::S16Le,
            channels: 2,
            rate: 1000,
            buffer_bytes,
            period_bytes: 32,
        };
        let id = e.add(direction, params).unwrap();
        e.voice_mut(id).unwrap().state = VoiceState::Running;
        id
    }

    /// A guest recording with a short buffer gets silence before its ALSA would give up
    /// (1.1 buffer times without a move): the stall is called at half its buffer.
    #[test]
    fn a_short_guest_buffer_makes_a_stall_count_sooner() {
        let src = source(2);
        let mut e = Engine::new(Box::new(ClockDevice::new(P, 2, None)), Box::new(src), 4);
        // 100 frames of 4 bytes at 1000 Hz: a 100 ms buffer, EIO after 110 ms.
        let id = running_voice(&mut e, Direction::Capture, 400);
        let mut t = 0;
        let mut moved_at = None;
        while t < 110 * MS {
            t = e.pump(t).expect("capture running");
            if moved_at.is_none() && e.voice(id).unwrap().position > 0 {
                moved_at = Some(t);
            }
        }
        let moved_at = moved_at.expect("the guest's position moved within its 110 ms");
        assert!(moved_at >= 50 * MS, "not before the limit: {moved_at} ns");
        assert_eq!(e.stats().capture_stalls, 1);
    }

    /// The mixer's capture fan-out over a stalled [`RingSource`]: a recording guest's
    /// position keeps moving at the rate, and the engine counts the stall, then an overrun
    /// (the mixer late) and a position outside the ring.
    #[test]
    fn a_recording_guest_keeps_moving_through_a_stall() {
        let src = source(2);
        let lie = src.dma.lie.clone();
        let mut e = Engine::new(Box::new(ClockDevice::new(P, 2, None)), Box::new(src), 4);
        let id = running_voice(&mut e, Direction::Capture, 4096);
        // The hardware never moves; the mixer runs when it asks to.
        let mut t = 0;
        let mut at_limit = None;
        let mut passes = 0;
        while t < 2 * STALL_MAX_NS {
            passes += 1;
            assert!(passes < 10_000, "the mixer spins at {t} ns");
            t = e.pump(t).expect("capture running");
            if at_limit.is_none() && t >= STALL_MAX_NS {
                at_limit = Some(e.voice(id).unwrap().position);
            }
        }
        assert_eq!(at_limit, Some(0), "nothing before the limit");
        let pos = e.voice(id).unwrap().position;
        // ~0.5 s of silence at 1000 frames/s of 4 bytes, in whole periods.
        assert!((1900..=2000).contains(&pos), "{pos} bytes");
        let mut buf = [1u8; 64];
        assert_eq!(e.voice_mut(id).unwrap().take(&mut buf), 64);
        assert_eq!(buf, [0; 64]);
        let st = e.stats();
        assert_eq!(st.capture_stalls, 1);
        assert_eq!(st.capture_stall_frames, pos / 4);
        assert_eq!(st.periods_recorded, pos / 32);
        assert_eq!((st.capture_overruns, st.capture_bad_positions), (0, 0));
        // The mixer runs 100 ms late (12 periods; the device keeps 2) and the hardware
        // reports a position outside its ring: one of each.
        lie.set(Some(1 << 20));
        t = e.pump(t + 100 * MS).expect("capture running");
        assert_eq!(lie.get(), None, "the position was looked at");
        let st = e.stats();
        assert_eq!((st.capture_overruns, st.capture_bad_positions), (1, 1));
        // On time again: nothing more.
        for _ in 0..10 {
            t = e.pump(t).expect("capture running");
        }
        let st = e.stats();
        assert_eq!((st.capture_overruns, st.capture_bad_positions), (1, 1));
        assert_eq!((st.capture_stalls, st.playback_bad_positions), (1, 0));
    }

    /// A playback device's position outside its ring reaches the engine's counters.
    #[test]
    fn a_playback_position_outside_the_ring_is_counted_in_the_engine() {
        let s = sink();
        let lie = s.dma.lie.clone();
        let mut e = Engine::new(Box::new(s), Box::new(ClockDevice::new(P, 2, None)), 4);
        running_voice(&mut e, Direction::Playback, 4096);
        lie.set(Some(1 << 20));
        assert!(e.pump(0).is_some(), "playing");
        assert_eq!(lie.get(), None, "the position was looked at");
        let st = e.stats();
        assert_eq!(st.periods_played, 2, "a queue of silence");
        assert_eq!(st.playback_bad_positions, 1);
        assert_eq!((st.capture_overruns, st.capture_bad_positions), (0, 0));
    }

    #[test]
    fn stop_resets_and_a_wrong_ring_is_refused() {
        let mut s = sink();
        s.start(0);
        s.write(&period(5));
        s.stop();
        assert!(!s.running() && !s.dma.on);
        assert_eq!(s.writable(0), 0);
        s.start(0);
        assert_eq!(s.position(0), 0);
        assert!(RingSink::new(FakeDma::new(100), P, 2).is_err());
    }
}
