//! One guest stream inside the mixer: its bytes in flight (a FIFO bounded by the stream's
//! buffer size), its format and rate conversion, its gains, and its position.
//!
//! Playback: `WRITE`s append the guest's bytes; the mixer takes frames as the device needs
//! them; the position counts bytes taken, and `played` the bytes the device has played;
//! the guest is told [`Voice::reported_position`]: what was played, but at most half its
//! buffer behind what was taken. Capture: the
//! mixer appends converted device frames; `READ`s take them; the position counts bytes
//! appended.

use alloc::collections::VecDeque;

use super::resample::{Frame, Resampler, MAX_CH};
use super::volume::Gains;
use crate::card::Direction;
use crate::format::MAX_SAMPLE_BYTES;
use crate::params::OpenParams;

/// Whether the mixer moves the voice's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoiceState {
    /// Opened, not started (or stopped).
    Stopped,
    /// Started.
    Running,
    /// Paused.
    Paused,
}

/// One stream in the mixer.
#[derive(Debug)]
pub struct Voice {
    /// Playback or capture.
    pub direction: Direction,
    /// Format, channels, rate, buffer.
    pub params: OpenParams,
    /// Running, paused or stopped.
    pub state: VoiceState,
    /// Volume and mute.
    pub gains: Gains,
    fifo: VecDeque<u8>,
    resampler: Resampler,
    /// Bytes taken (playback) or produced (capture) since the open.
    pub position: u64,
    /// Playback: bytes the device has played (at most `position`).
    played: u64,
    /// Playback: (device frame count, `position`) at the end of each period written to the
    /// device and not yet played (at most the device's queue of periods).
    in_device: VecDeque<(u64, u64)>,
    /// Periods in which a running playback voice ran out of data.
    pub underruns: u64,
    /// Capture frames dropped because the guest did not read them in time (one per frame).
    pub overruns: u64,
}

/// More bytes than the stream's buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow;

impl Voice {
    /// A stopped voice converting between the stream's `params` and the device's `rate`.
    pub fn new(direction: Direction, params: OpenParams, device_rate: u32) -> Self {
        let resampler = match direction {
            Direction::Playback => Resampler::new(params.rate, device_rate),
            Direction::Capture => Resampler::new(device_rate, params.rate),
        };
        Self {
            direction,
            params,
            state: VoiceState::Stopped,
            gains: Gains::default(),
            fifo: VecDeque::new(),
            resampler,
            position: 0,
            played: 0,
            in_device: VecDeque::new(),
            underruns: 0,
            overruns: 0,
        }
    }

    /// Bytes in flight.
    pub fn queued(&self) -> usize {
        self.fifo.len()
    }

    /// Whether the voice holds enough to play `dev_frames` frames at `dev_rate` (one frame
    /// more for a converting voice's interpolation).
    pub fn can_fill(&self, dev_frames: usize, dev_rate: u32) -> bool {
        let fb = self.params.frame_bytes().max(1);
        let have = (self.fifo.len() / fb) as u64;
        let rate = u64::from(self.params.rate);
        let dev = u64::from(dev_rate.max(1));
        let need = if rate == dev {
            dev_frames as u64
        } else {
            (dev_frames as u64 * rate).div_ceil(dev) + 1
        };
        have >= need
    }

    /// The stream's buffer in frames at `dev_rate`.
    pub fn buffer_frames_at(&self, dev_rate: u32) -> usize {
        let fb = self.params.frame_bytes().max(1) as u64;
        let frames = u64::from(self.params.buffer_bytes) / fb;
        (frames * u64::from(dev_rate) / u64::from(self.params.rate.max(1))) as usize
    }

    /// The position the guest is told: for capture the bytes captured; for playback the
    /// bytes the device has played, but never more than half the stream's buffer (in whole
    /// periods, at least one) behind what the mixer has taken. Counted when taken, a deep
    /// device queue would show the guest its whole buffer played the moment it is taken
    /// (ALSA then stops the stream as an underrun); counted only when played, a guest
    /// joining a running device would wait the device's whole queue for its first position
    /// (ALSA gives up waiting after 1.1 buffer times: `EIO`).
    pub fn reported_position(&self) -> u64 {
        match self.direction {
            Direction::Playback => self.played.max(self.position.saturating_sub(self.lag())),
            Direction::Capture => self.position,
        }
    }

    /// How far the reported position may stay behind the bytes taken.
    fn lag(&self) -> u64 {
        let period = u64::from(self.params.period_bytes.max(1));
        let half = u64::from(self.params.buffer_bytes) / 2;
        (half / period * period).max(period)
    }

    /// Whether everything the voice was given has been played.
    pub fn drained(&self) -> bool {
        self.direction == Direction::Playback
            && self.fifo.is_empty()
            && self.played == self.position
    }

    /// Notes that a period ending at device frame `dev_end` was written to the device.
    pub fn note_written(&mut self, dev_end: u64) {
        if self
            .in_device
            .back()
            .is_none_or(|&(_, p)| p != self.position)
        {
            self.in_device.push_back((dev_end, self.position));
        }
    }

    /// Notes that the device has played up to frame `dev_played`.
    pub fn note_played(&mut self, dev_played: u64) {
        while let Some(&(end, pos)) = self.in_device.front() {
            if end > dev_played {
                break;
            }
            self.played = pos;
            self.in_device.pop_front();
        }
    }

    /// The device frame at which more of this voice will have played, if any is queued.
    pub fn next_played_at(&self) -> Option<u64> {
        self.in_device.front().map(|&(end, _)| end)
    }

    /// Counts everything taken as played (the device stopped or started afresh).
    pub fn flush_played(&mut self) {
        self.in_device.clear();
        self.played = self.position;
    }

    /// Drops the bytes in flight (STOP) and counts from `at` on (taken and played).
    pub fn restart(&mut self, at: u64) {
        self.clear();
        self.in_device.clear();
        self.position = at;
        self.played = at;
    }

    /// Drops the bytes in flight (STOP).
    pub fn clear(&mut self) {
        self.fifo.clear();
        self.fifo.shrink_to(self.params.buffer_bytes as usize);
    }

    /// Appends a playback `WRITE`; refused whole if the buffer's worth would be exceeded.
    pub fn push(&mut self, data: &[u8]) -> Result<(), Overflow> {
        if self.fifo.len() + data.len() > self.params.buffer_bytes as usize {
            return Err(Overflow);
        }
        self.fifo.extend(data);
        Ok(())
    }

    /// Takes up to `out.len()` captured bytes for a `READ`; returns how many.
    pub fn take(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.fifo.len());
        for (o, b) in out.iter_mut().zip(self.fifo.drain(..n)) {
            *o = b;
        }
        n
    }

    /// Adds this running playback voice's next `frames` device frames (of `dev_channels`)
    /// to `mix`. A voice that runs dry contributes silence for the rest and counts an
    /// underrun.
    pub fn mix_into(&mut self, mix: &mut [i32], dev_channels: usize, frames: usize) {
        let ch = usize::from(self.params.channels);
        let format = self.params.format;
        let fb = self.params.frame_bytes();
        let fifo = &mut self.fifo;
        let position = &mut self.position;
        let mut pull = |f: &mut Frame| {
            if fifo.len() < fb {
                return false;
            }
            let mut raw = [0u8; MAX_CH * MAX_SAMPLE_BYTES];
            for (r, b) in raw.iter_mut().zip(fifo.drain(..fb)) {
                *r = b;
            }
            for (c, s) in f.iter_mut().enumerate().take(ch) {
                *s = format.decode(&raw[c * format.bytes()..]);
            }
            *position += fb as u64;
            true
        };
        let mut frame = [0; MAX_CH];
        for i in 0..frames {
            if !self.resampler.next(ch, &mut pull, &mut frame) {
                self.underruns += 1;
                return;
            }
            self.gains.apply(ch, &mut frame);
            let out = &mut mix[i * dev_channels..(i + 1) * dev_channels];
            if ch == 1 {
                out.iter_mut().for_each(|o| *o += frame[0]);
            } else {
                for (c, s) in frame.iter().enumerate().take(ch) {
                    out[c % dev_channels] += s;
                }
            }
        }
    }

    /// Converts a period of captured device frames (`input`, `dev_channels` interleaved)
    /// to the stream's rate, channels and format and appends them; what does not fit the
    /// buffer is dropped and counted.
    pub fn capture_from(&mut self, input: &[i16], dev_channels: usize) {
        let ch = usize::from(self.params.channels);
        let format = self.params.format;
        let mut frames = input.chunks_exact(dev_channels.max(1));
        let mut pull = |f: &mut Frame| match frames.next() {
            Some(src) => {
                for (c, s) in f.iter_mut().enumerate().take(ch) {
                    *s = i32::from(src[c % src.len()]);
                }
                true
            }
            None => false,
        };
        let mut frame = [0; MAX_CH];
        let mut raw = [0u8; MAX_CH * MAX_SAMPLE_BYTES];
        let fb = self.params.frame_bytes();
        let cap = self.params.buffer_bytes as usize;
        while self.resampler.next(ch, &mut pull, &mut frame) {
            self.gains.apply(ch, &mut frame);
            for (c, s) in frame.iter().enumerate().take(ch) {
                format.encode(*s, &mut raw[c * format.bytes()..]);
            }
            if self.fifo.len() + fb > cap {
                self.overruns += 1;
                continue;
            }
            self.fifo.extend(&raw[..fb]);
            self.position += fb as u64;
        }
    }
}
