//! The sound device behind the mixer, as traits: a playback sink and a capture source, each
//! with a fixed rate, channel count and period, signed 16-bit little-endian interleaved
//! frames (what every HDA codec and virtio-sound device plays), a position, start and stop.
//!
//! The mixer never blocks on the device: it asks how many frames the device takes now,
//! writes whole periods, and asks when the next period will be free (the executor sleeps
//! until then). Implementations: [`clock::ClockDevice`], a device paced by the clock that
//! plays into nothing (the unikernel's `null` device, and the host tests' card, which
//! records what it played); [`ring::RingSink`], playback into a cyclic DMA ring paced by
//! the hardware's position (the unikernel puts minios-rt's Intel HDA output stream under
//! it), and [`ring::RingSource`], capture from such a ring (the HDA's input stream), with
//! silence at the rate while the hardware's position stands still. Planned: virtio-sound
//! for hosts that have it.

pub mod clock;
pub mod ring;

/// What a device plays or records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceParams {
    /// Frames per second.
    pub rate: u32,
    /// Channels per frame.
    pub channels: u8,
    /// Frames per period (the unit the mixer writes and reads).
    pub period_frames: usize,
}

/// A playback device.
pub trait PcmSink {
    /// Rate, channels, period.
    fn params(&self) -> DeviceParams;

    /// Starts playing (what is queued, then silence until more comes) at `now_ns`.
    fn start(&mut self, now_ns: u64);

    /// Stops; queued frames are dropped.
    fn stop(&mut self);

    /// Whether it is started.
    fn running(&self) -> bool;

    /// Frames it takes now without overwriting unplayed ones (bounded by its queue).
    fn writable(&mut self, now_ns: u64) -> usize;

    /// Frames queued and not yet played.
    fn queued(&mut self, now_ns: u64) -> usize;

    /// Queues interleaved frames (`frames.len()` a multiple of the channel count, at most
    /// [`writable`](Self::writable) frames).
    fn write(&mut self, frames: &[i16]);

    /// Frames played since [`start`](Self::start).
    fn position(&mut self, now_ns: u64) -> u64;

    /// When at least one period will be writable (`None`: not running).
    fn next_space_ns(&mut self, now_ns: u64) -> Option<u64>;

    /// Times it ran dry (played silence because nothing was queued).
    fn underruns(&self) -> u64;

    /// Positions the device reported that made no sense (outside its ring) and were
    /// ignored; 0 for a device that reports none.
    fn bad_positions(&self) -> u64 {
        0
    }
}

/// A capture device.
pub trait PcmSource {
    /// Rate, channels, period.
    fn params(&self) -> DeviceParams;

    /// Starts recording at `now_ns`.
    fn start(&mut self, now_ns: u64);

    /// Stops; recorded frames not yet read are dropped.
    fn stop(&mut self);

    /// Whether it is started.
    fn running(&self) -> bool;

    /// Frames recorded and not yet read.
    fn readable(&mut self, now_ns: u64) -> usize;

    /// Reads recorded interleaved frames into `out` (a multiple of the channel count, at
    /// most [`readable`](Self::readable) frames); returns the frames read.
    fn read(&mut self, now_ns: u64, out: &mut [i16]) -> usize;

    /// When at least one period will be readable (`None`: not running).
    fn next_data_ns(&mut self, now_ns: u64) -> Option<u64>;

    /// Tells the source the shortest buffer, in ns, of the guests recording from it (`None`:
    /// nobody records), so a device that can stall calls it stalled soon enough for them:
    /// a recording guest's ALSA fails its read with `EIO` when its position has not moved
    /// for 1.1 buffer times. Default: nothing (a device that cannot stall).
    fn set_guest_buffer_ns(&mut self, _ns: Option<u64>) {}

    /// Times the device stalled while running (its position stood still too long) and
    /// silence was handed out in its place; 0 for a device that cannot stall.
    fn stalls(&self) -> u64 {
        0
    }

    /// Frames of silence handed out while the device was stalled.
    fn stall_frames(&self) -> u64 {
        0
    }

    /// Times recorded frames were dropped (the oldest first) because they were not read
    /// in time; 0 for a device that cannot overrun.
    fn overruns(&self) -> u64 {
        0
    }

    /// Positions the device reported that made no sense (outside its ring) and were
    /// ignored; 0 for a device that reports none.
    fn bad_positions(&self) -> u64 {
        0
    }
}
