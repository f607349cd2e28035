//! One stream descriptor playing (output) or recording (input) a cyclic ring of DMA pages.
//!
//! The ring is ordinary pages (no machine contiguity needed): the buffer descriptor list
//! has one entry per piece of the ring between page and period boundaries, each with its
//! page's machine address, so the controller never crosses a page. No entry asks for an
//! interrupt; the position is polled from `SDnLPIB` ([`Stream::position`]).

use alloc::format;
use alloc::rc::Rc;

use super::regs::*;
use super::{err, wait_until, Hda, HdaError, RESET_TIMEOUT_NS};
use crate::dma::{machine_addr, DmaPages};

const PAGE: usize = 4096;
/// Entries in the BDL (one page of 16-byte entries; the specification's maximum).
pub const MAX_BDL_ENTRIES: usize = 256;
/// Largest ring.
pub const MAX_RING_BYTES: usize = 1 << 20;

/// A stream descriptor, its BDL and its ring.
pub struct Stream {
    hda: Rc<Hda>,
    sd: usize,
    tag: u8,
    format: u16,
    ring: DmaPages,
    ring_bytes: usize,
    bdl: DmaPages,
    entries: usize,
    running: bool,
}

/// The playback stream.
pub type OutputStream = Stream;
/// The recording stream.
pub type InputStream = Stream;

impl Stream {
    pub(super) fn new(
        hda: Rc<Hda>,
        sd: usize,
        tag: u8,
        format: u16,
        ring_bytes: usize,
        period_bytes: usize,
    ) -> Result<Self, HdaError> {
        if ring_bytes == 0
            || ring_bytes % 128 != 0
            || ring_bytes > MAX_RING_BYTES
            || period_bytes == 0
            || period_bytes % 128 != 0
        {
            return Err(err(format!(
                "ring of {ring_bytes} bytes with {period_bytes}-byte periods: not multiples of 128 up to 1 MiB"
            )));
        }
        let ring = DmaPages::alloc(ring_bytes.div_ceil(PAGE) as u64)
            .map_err(|e| err(format!("stream ring: {e:?}")))?;
        let bdl = DmaPages::alloc(1).map_err(|e| err(format!("BDL: {e:?}")))?;
        let mut s = Self {
            hda,
            sd,
            tag,
            format,
            ring,
            ring_bytes,
            bdl,
            entries: 0,
            running: false,
        };
        s.fill_bdl(period_bytes)?;
        s.reset()?;
        Ok(s)
    }

    fn fill_bdl(&mut self, period_bytes: usize) -> Result<(), HdaError> {
        let mut at = 0;
        let mut n = 0;
        while at < self.ring_bytes {
            let next_page = (at / PAGE + 1) * PAGE;
            let next_period = (at / period_bytes + 1) * period_bytes;
            let end = next_page.min(next_period).min(self.ring_bytes);
            if n >= MAX_BDL_ENTRIES {
                return Err(err("the ring needs more than 256 BDL entries"));
            }
            let addr = machine_addr(self.ring.va() + at as u64)
                .ok_or_else(|| err("ring page has no machine address"))?;
            let e = (self.bdl.va() as usize + n * 16) as *mut u32;
            // SAFETY: entry `n < 256` of 16 bytes lies inside our one BDL page, which the
            // device only reads.
            unsafe {
                core::ptr::write_volatile(e, addr as u32);
                core::ptr::write_volatile(e.add(1), (addr >> 32) as u32);
                core::ptr::write_volatile(e.add(2), (end - at) as u32);
                core::ptr::write_volatile(e.add(3), 0); // no interrupt on completion
            }
            n += 1;
            at = end;
        }
        if n < 2 {
            return Err(err("the ring must make at least two BDL entries"));
        }
        self.entries = n;
        Ok(())
    }

    fn reg(&self, off: usize) -> usize {
        self.sd + off
    }

    /// Resets the descriptor and programs it (BDL, length, last index, format, tag);
    /// the DMA is stopped and the position 0.
    fn reset(&mut self) -> Result<(), HdaError> {
        let m = self.hda.mmio();
        let ctl = self.reg(SD_CTL);
        m.write32(ctl, m.read32(ctl) & !SD_CTL_RUN & 0x00ff_ffff);
        if !wait_until(RESET_TIMEOUT_NS, || m.read32(ctl) & SD_CTL_RUN == 0) {
            return Err(err("stream: DMA did not stop"));
        }
        m.write32(ctl, m.read32(ctl) & 0x00ff_ffff | SD_CTL_SRST);
        // The bit reads back 1 once the stream is in reset (some controllers never show
        // it; the release below is what must be seen).
        wait_until(1_000_000, || m.read32(ctl) & SD_CTL_SRST != 0);
        m.write32(ctl, m.read32(ctl) & 0x00ff_ffff & !SD_CTL_SRST);
        if !wait_until(RESET_TIMEOUT_NS, || m.read32(ctl) & SD_CTL_SRST == 0) {
            return Err(err("stream: reset did not clear"));
        }
        let bdl = machine_addr(self.bdl.va()).ok_or_else(|| err("BDL has no machine address"))?;
        m.write32(self.reg(SD_BDPL), bdl as u32);
        m.write32(self.reg(SD_BDPU), (bdl >> 32) as u32);
        m.write32(self.reg(SD_CBL), self.ring_bytes as u32);
        m.write16(self.reg(SD_LVI), (self.entries - 1) as u16);
        m.write16(self.reg(SD_FMT), self.format);
        let v = m.read32(ctl) & 0x000f_ffff & !(0xf << SD_CTL_TAG_SHIFT);
        m.write32(ctl, v | (u32::from(self.tag) << SD_CTL_TAG_SHIFT));
        m.write8(self.reg(SD_STS), 0x1c);
        self.running = false;
        Ok(())
    }

    /// The ring's size in bytes.
    pub fn ring_bytes(&self) -> usize {
        self.ring_bytes
    }

    /// Writes interleaved 16-bit samples into the ring at byte `offset` (wrapping at its
    /// end; `offset` below the ring size, at most a ring's worth).
    pub fn write_samples(&mut self, offset: usize, samples: &[i16]) {
        let mut at = offset % self.ring_bytes;
        for &s in samples.iter().take(self.ring_bytes / 2) {
            let p = (self.ring.va() as usize + at) as *mut i16;
            // SAFETY: `at` is even and below `ring_bytes`, inside our ring pages, which
            // the device only reads.
            unsafe { core::ptr::write_volatile(p, s.to_le()) }
            at = (at + 2) % self.ring_bytes;
        }
    }

    /// Reads interleaved 16-bit samples from the ring at byte `offset` into `out`
    /// (wrapping at its end; at most a ring's worth).
    pub fn read_samples(&self, offset: usize, out: &mut [i16]) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        let mut at = offset % self.ring_bytes;
        for s in out.iter_mut().take(self.ring_bytes / 2) {
            let p = (self.ring.va() as usize + at) as *const i16;
            // SAFETY: `at` is even and below `ring_bytes`, inside our ring pages (the
            // device writes them; a torn sample is only a wrong value).
            *s = i16::from_le(unsafe { core::ptr::read_volatile(p) });
            at = (at + 2) % self.ring_bytes;
        }
    }

    /// Zeroes `len` bytes of the ring from byte `offset` (wrapping; at most the ring).
    pub fn zero(&mut self, offset: usize, len: usize) {
        let mut at = offset % self.ring_bytes;
        let mut left = len.min(self.ring_bytes);
        while left > 0 {
            let n = left.min(self.ring_bytes - at);
            // SAFETY: `at..at + n` lies inside our ring pages.
            unsafe { core::ptr::write_bytes((self.ring.va() as usize + at) as *mut u8, 0, n) }
            left -= n;
            at = (at + n) % self.ring_bytes;
        }
    }

    /// Starts the DMA (the position runs from where it stands: 0 after [`stop`](Self::stop)).
    pub fn start(&mut self) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        let m = self.hda.mmio();
        let ctl = self.reg(SD_CTL);
        m.write32(ctl, m.read32(ctl) & 0x00ff_ffff | SD_CTL_RUN);
        self.running = true;
    }

    /// Stops the DMA and resets the stream (position back to 0, ring zeroed).
    pub fn stop(&mut self) -> Result<(), HdaError> {
        let r = self.reset();
        self.zero(0, self.ring_bytes);
        r
    }

    /// Whether the DMA runs.
    pub fn running(&self) -> bool {
        self.running
    }

    /// The link position in the ring (bytes), `None` if the device reports one outside it.
    pub fn position(&self) -> Option<usize> {
        let lpib = self.hda.mmio().read32(self.reg(SD_LPIB)) as usize;
        (lpib <= self.ring_bytes).then_some(lpib % self.ring_bytes)
    }

    /// The controller (for logs).
    pub fn hda(&self) -> &Hda {
        &self.hda
    }
}
