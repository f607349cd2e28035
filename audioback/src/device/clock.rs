//! A device paced by the platform clock: it "plays" `rate` frames per second out of a queue
//! of at most `queue_periods` periods and "records" at the same pace.
//!
//! With no tap it is the `null` device: sound goes nowhere, silence comes in, at the real
//! rate (so guests' streams run at the right speed until the HDA driver exists). Host tests
//! attach a [`Tap`]: everything played lands in `played` — the silence of underruns too, so
//! gaps show — and capture returns what the test queued in `input` (silence when empty).
//! Nothing grows without a tap: the queue is the bound.

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;

use super::{DeviceParams, PcmSink, PcmSource};

/// What a test sees of the device.
#[derive(Debug, Default)]
pub struct Tap {
    /// Every frame played, interleaved, in order (underrun silence included).
    pub played: Vec<i16>,
    /// Frames the "microphone" hears next, interleaved.
    pub input: VecDeque<i16>,
}

/// A clock-paced device.
pub struct ClockDevice {
    params: DeviceParams,
    queue_periods: usize,
    tap: Option<Rc<RefCell<Tap>>>,
    // Playback.
    play_anchor: Option<u64>,
    written: u64,
    underruns: u64,
    // Capture.
    rec_anchor: Option<u64>,
    taken: u64,
    /// Times recorded frames were dropped because nobody read them in time.
    overruns: u64,
}

fn frames_at(rate: u32, anchor: u64, now: u64) -> u64 {
    (u128::from(now.saturating_sub(anchor)) * u128::from(rate) / 1_000_000_000) as u64
}

fn time_of(rate: u32, anchor: u64, frames: u64) -> u64 {
    let ns = (u128::from(frames) * 1_000_000_000).div_ceil(u128::from(rate.max(1)));
    anchor.saturating_add(ns.min(u128::from(u64::MAX)) as u64)
}

impl ClockDevice {
    /// A device of `params` queueing at most `queue_periods` periods (≥ 2).
    pub fn new(params: DeviceParams, queue_periods: usize, tap: Option<Rc<RefCell<Tap>>>) -> Self {
        Self {
            params,
            queue_periods: queue_periods.max(2),
            tap,
            play_anchor: None,
            written: 0,
            underruns: 0,
            rec_anchor: None,
            taken: 0,
            overruns: 0,
        }
    }

    fn capacity(&self) -> u64 {
        (self.queue_periods * self.params.period_frames) as u64
    }

    /// Plays up to `now`; a queue that ran dry plays silence (an underrun).
    fn catch_up(&mut self, now: u64) -> u64 {
        let Some(anchor) = self.play_anchor else {
            return 0;
        };
        let due = frames_at(self.params.rate, anchor, now);
        if due > self.written {
            let gap = due - self.written;
            self.underruns += 1;
            if let Some(tap) = &self.tap {
                let n = gap as usize * usize::from(self.params.channels);
                tap.borrow_mut().played.extend(core::iter::repeat_n(0, n));
            }
            self.written = due;
        }
        due
    }
}

impl PcmSink for ClockDevice {
    fn params(&self) -> DeviceParams {
        self.params
    }

    fn start(&mut self, now_ns: u64) {
        self.play_anchor = Some(now_ns);
        self.written = 0;
    }

    fn stop(&mut self) {
        self.play_anchor = None;
    }

    fn running(&self) -> bool {
        self.play_anchor.is_some()
    }

    fn writable(&mut self, now_ns: u64) -> usize {
        if self.play_anchor.is_none() {
            return 0;
        }
        let played = self.catch_up(now_ns);
        (self.capacity() - (self.written - played)) as usize
    }

    fn queued(&mut self, now_ns: u64) -> usize {
        if self.play_anchor.is_none() {
            return 0;
        }
        let played = self.catch_up(now_ns);
        (self.written - played) as usize
    }

    fn write(&mut self, frames: &[i16]) {
        let n = frames.len() / usize::from(self.params.channels.max(1));
        self.written += n as u64;
        if let Some(tap) = &self.tap {
            tap.borrow_mut().played.extend_from_slice(frames);
        }
    }

    fn position(&mut self, now_ns: u64) -> u64 {
        self.catch_up(now_ns)
    }

    fn next_space_ns(&mut self, now_ns: u64) -> Option<u64> {
        let anchor = self.play_anchor?;
        let period = self.params.period_frames as u64;
        // A period is free once `written - played <= capacity - period`.
        let need = (self.written + period).saturating_sub(self.capacity());
        Some(time_of(self.params.rate, anchor, need).max(now_ns))
    }

    fn underruns(&self) -> u64 {
        self.underruns
    }
}

impl PcmSource for ClockDevice {
    fn params(&self) -> DeviceParams {
        self.params
    }

    fn start(&mut self, now_ns: u64) {
        self.rec_anchor = Some(now_ns);
        self.taken = 0;
    }

    fn stop(&mut self) {
        self.rec_anchor = None;
    }

    fn running(&self) -> bool {
        self.rec_anchor.is_some()
    }

    fn readable(&mut self, now_ns: u64) -> usize {
        let Some(anchor) = self.rec_anchor else {
            return 0;
        };
        let recorded = frames_at(self.params.rate, anchor, now_ns);
        let pending = recorded - self.taken;
        if pending > self.capacity() {
            // Nobody read in time: the oldest frames are lost.
            let lost = pending - self.capacity();
            self.overruns += 1;
            self.taken += lost;
            if let Some(tap) = &self.tap {
                let mut t = tap.borrow_mut();
                let n = (lost as usize * usize::from(self.params.channels)).min(t.input.len());
                t.input.drain(..n);
            }
        }
        (recorded - self.taken) as usize
    }

    fn read(&mut self, now_ns: u64, out: &mut [i16]) -> usize {
        let ch = usize::from(self.params.channels.max(1));
        let n = self.readable(now_ns).min(out.len() / ch);
        let samples = &mut out[..n * ch];
        samples.fill(0);
        if let Some(tap) = &self.tap {
            let mut t = tap.borrow_mut();
            for s in samples.iter_mut() {
                match t.input.pop_front() {
                    Some(v) => *s = v,
                    None => break,
                }
            }
        }
        self.taken += n as u64;
        n
    }

    fn next_data_ns(&mut self, now_ns: u64) -> Option<u64> {
        let anchor = self.rec_anchor?;
        let want = self.taken + self.params.period_frames as u64;
        Some(time_of(self.params.rate, anchor, want).max(now_ns))
    }

    fn overruns(&self) -> u64 {
        self.overruns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn plays_at_the_rate_and_records_gaps() {
        let tap = Rc::new(RefCell::new(Tap::default()));
        let p = DeviceParams {
            rate: 1000,
            channels: 1,
            period_frames: 10,
        };
        let mut d = ClockDevice::new(p, 2, Some(tap.clone()));
        PcmSink::start(&mut d, 0);
        assert_eq!(d.writable(0), 20);
        d.write(&[1; 20]);
        assert_eq!(d.writable(0), 0);
        assert_eq!(d.next_space_ns(0), Some(10 * MS));
        assert_eq!(d.writable(10 * MS), 10);
        // Nothing more written: at 40 ms it ran dry for 20 frames.
        assert_eq!(d.position(40 * MS), 40);
        assert_eq!(d.underruns(), 1);
        assert_eq!(tap.borrow().played.len(), 40);
        assert_eq!(&tap.borrow().played[20..], &[0; 20]);
    }

    #[test]
    fn capture_is_bounded() {
        let tap = Rc::new(RefCell::new(Tap::default()));
        tap.borrow_mut().input.extend(1..=100);
        let p = DeviceParams {
            rate: 1000,
            channels: 1,
            period_frames: 10,
        };
        let mut d = ClockDevice::new(p, 2, Some(tap));
        PcmSource::start(&mut d, 0);
        let mut out = [0i16; 10];
        assert_eq!(d.read(10 * MS, &mut out), 10);
        assert_eq!(out[0], 1);
        // 100 ms unread: only the last 20 frames remain.
        assert_eq!(d.readable(110 * MS), 20);
        assert_eq!(d.overruns, 1);
        assert_eq!(d.read(110 * MS, &mut out), 10);
        assert_eq!(out[0], 91);
    }
}
