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
//! before the hardware comes round to overwrite them).

use alloc::string::String;

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
    pub bad_positions: u64,
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
}

/// A [`PcmSource`] over a [`RingDma`] the hardware writes.
pub struct RingSource<D: RingDma> {
    dma: D,
    params: DeviceParams,
    frame_bytes: u64,
    capacity: u64,
    ring_frames: u64,
    running: bool,
    last_pos: usize,
    recorded_bytes: u64,
    taken: u64,
    /// Times frames were dropped because they were not read in time.
    pub overruns: u64,
    /// Positions the hardware reported outside the ring.
    pub bad_positions: u64,
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
            frame_bytes,
            capacity: (queue * params.period_frames) as u64,
            ring_frames: want as u64 / frame_bytes,
            running: false,
            last_pos: 0,
            recorded_bytes: 0,
            taken: 0,
            overruns: 0,
            bad_positions: 0,
        })
    }

    /// Frames recorded since the start.
    fn catch_up(&mut self) -> u64 {
        if !self.running {
            return 0;
        }
        let ring = self.dma.ring_bytes();
        match self.dma.position() {
            Some(p) if p < ring => {
                self.recorded_bytes += ((p + ring - self.last_pos) % ring) as u64;
                self.last_pos = p;
            }
            _ => self.bad_positions += 1,
        }
        let recorded = self.recorded_bytes / self.frame_bytes;
        let pending = recorded - self.taken;
        if pending > self.capacity {
            self.overruns += 1;
            self.taken = recorded - self.capacity;
        }
        recorded
    }
}

impl<D: RingDma> PcmSource for RingSource<D> {
    fn params(&self) -> DeviceParams {
        self.params
    }

    fn start(&mut self, _now_ns: u64) {
        self.last_pos = 0;
        self.recorded_bytes = 0;
        self.taken = 0;
        self.dma.start();
        self.running = true;
    }

    fn stop(&mut self) {
        if let Err(e) = self.dma.stop() {
            log::warn!("sound device: stopping capture: {e}");
        }
        self.running = false;
    }

    fn running(&self) -> bool {
        self.running
    }

    fn readable(&mut self, _now_ns: u64) -> usize {
        let recorded = self.catch_up();
        (recorded - self.taken) as usize
    }

    fn read(&mut self, now_ns: u64, out: &mut [i16]) -> usize {
        let ch = usize::from(self.params.channels.max(1));
        let n = self.readable(now_ns).min(out.len() / ch);
        let offset = (self.taken % self.ring_frames) * self.frame_bytes;
        self.dma.read_samples(offset as usize, &mut out[..n * ch]);
        self.taken += n as u64;
        n
    }

    fn next_data_ns(&mut self, now_ns: u64) -> Option<u64> {
        if !self.running {
            return None;
        }
        let recorded = self.catch_up();
        let need = (self.taken + self.params.period_frames as u64).saturating_sub(recorded);
        let ns = (u128::from(need) * 1_000_000_000).div_ceil(u128::from(self.params.rate.max(1)));
        Some(now_ns.saturating_add(ns as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// A ring in memory whose "hardware" plays when the test says so.
    struct FakeDma {
        ring: Vec<i16>,
        pos: usize,
        on: bool,
        lie: Option<usize>,
        heard: Vec<i16>,
    }

    impl FakeDma {
        fn new(bytes: usize) -> Self {
            Self {
                ring: vec![0; bytes / 2],
                pos: 0,
                on: false,
                lie: None,
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
            Some(self.lie.unwrap_or(self.pos * 2))
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
        s.dma.lie = Some(1 << 20);
        assert_eq!(s.position(0), 0);
        assert_eq!(s.bad_positions, 1);
        s.dma.lie = None;
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
        assert_eq!(s.overruns, 1);
        assert_eq!(s.read(0, &mut out), 8);
        assert_eq!(out, [101; 16]);
        s.dma.lie = Some(1 << 20);
        assert_eq!(s.readable(0), 8);
        assert_eq!(s.bad_positions, 1);
        s.stop();
        assert!(!s.running() && !s.dma.on);
        assert_eq!(s.next_data_ns(0), None);
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
