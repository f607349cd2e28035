//! DMA memory the controller reads and writes (rings, contexts, transfer buffers), reached
//! by volatile accesses, and the producer ring (command and transfer rings) and consumer
//! ring (the event ring) on it.
//!
//! Every page is handed to the controller by its machine address (a PV domain's devices
//! see machine addresses); no structure here crosses a page, so no machine contiguity is
//! needed beyond one page.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{fence, Ordering};

use crate::dma::{machine_addr, DmaPages};

/// Bytes per page.
pub const PAGE: usize = 4096;
/// TRBs per ring page (the last one is the link back to the start).
pub const RING_TRBS: usize = PAGE / 16;

/// Zeroed pages shared with the controller, with their machine addresses.
pub struct Mem {
    pages: DmaPages,
    maddrs: Vec<u64>,
}

impl Mem {
    /// Allocates `n` zeroed pages (at least one).
    pub fn alloc(n: usize) -> Result<Self, String> {
        let pages = DmaPages::alloc(n.max(1) as u64).map_err(|e| format!("DMA memory: {e:?}"))?;
        let maddrs = (0..pages.pages())
            .map(|i| machine_addr(pages.va() + i * PAGE as u64))
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| String::from("DMA memory without a machine address"))?;
        Ok(Self { pages, maddrs })
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.maddrs.len() * PAGE
    }

    /// The machine address of byte `off` (the controller's address of it).
    pub fn maddr(&self, off: usize) -> u64 {
        self.maddrs[off / PAGE] + (off % PAGE) as u64
    }

    fn ptr(&self, off: usize, size: usize) -> *mut u8 {
        assert!(
            off % size.clamp(1, 4) == 0 && off.checked_add(size).is_some_and(|e| e <= self.len()),
            "DMA access of {size} bytes at {off:#x} outside {} bytes",
            self.len()
        );
        (self.pages.va() + off as u64) as *mut u8
    }

    /// Reads the 32-bit word at `off`.
    pub fn read32(&self, off: usize) -> u32 {
        // SAFETY: in bounds and aligned (checked); our pages, mapped for their lifetime; the
        // controller may write them concurrently, hence the volatile read.
        unsafe { read_volatile(self.ptr(off, 4) as *const u32) }
    }

    /// Writes the 32-bit word at `off`.
    pub fn write32(&self, off: usize, v: u32) {
        // SAFETY: as for `read32`.
        unsafe { write_volatile(self.ptr(off, 4) as *mut u32, v) }
    }

    /// Writes the 64-bit value at `off` as two words, low first.
    pub fn write64(&self, off: usize, v: u64) {
        self.write32(off, v as u32);
        self.write32(off + 4, (v >> 32) as u32);
    }

    /// Copies `data` in at `off`.
    pub fn write_bytes(&self, off: usize, data: &[u8]) {
        let p = self.ptr(off, data.len());
        // SAFETY: `p..p + data.len()` is in bounds (checked by `ptr`).
        unsafe { copy_in(p, data) }
    }

    /// Copies `out.len()` bytes out from `off`.
    pub fn read_bytes(&self, off: usize, out: &mut [u8]) {
        let p = self.ptr(off, out.len());
        // SAFETY: as for `write_bytes`.
        unsafe { copy_out(p, out) }
    }

    /// Zeroes `len` bytes at `off`.
    pub fn zero(&self, off: usize, len: usize) {
        for w in (off..off + len).step_by(4) {
            self.write32(w, 0);
        }
    }

    /// Reads the TRB at `off`.
    pub fn read_trb(&self, off: usize) -> [u32; 4] {
        [
            self.read32(off),
            self.read32(off + 4),
            self.read32(off + 8),
            self.read32(off + 12),
        ]
    }
}

/// Copies `data` to `p` with volatile accesses, eight bytes at a time where `p` is aligned
/// (a byte loop costs eight times the accesses, which an emulated CPU pays one by one).
///
/// # Safety
/// `p..p + data.len()` must be valid for writes.
unsafe fn copy_in(p: *mut u8, data: &[u8]) {
    let words = if (p as usize) % 8 == 0 {
        data.len() / 8
    } else {
        0
    };
    let (head, tail) = data.split_at(words * 8);
    for (i, w) in head.chunks_exact(8).enumerate() {
        let v = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        // SAFETY: in bounds (the caller's promise) and 8-aligned (checked).
        unsafe { write_volatile((p as *mut u64).add(i), v) }
    }
    for (i, b) in tail.iter().enumerate() {
        // SAFETY: in bounds (the caller's promise).
        unsafe { write_volatile(p.add(head.len() + i), *b) }
    }
}

/// Copies `out.len()` bytes from `p` with volatile accesses, as [`copy_in`] does.
///
/// # Safety
/// `p..p + out.len()` must be valid for reads.
unsafe fn copy_out(p: *const u8, out: &mut [u8]) {
    let words = if (p as usize) % 8 == 0 {
        out.len() / 8
    } else {
        0
    };
    let (head, tail) = out.split_at_mut(words * 8);
    for (i, w) in head.chunks_exact_mut(8).enumerate() {
        // SAFETY: in bounds (the caller's promise) and 8-aligned (checked).
        let v = unsafe { read_volatile((p as *const u64).add(i)) };
        w.copy_from_slice(&v.to_ne_bytes());
    }
    let at = head.len();
    for (i, b) in tail.iter_mut().enumerate() {
        // SAFETY: in bounds (the caller's promise).
        *b = unsafe { read_volatile(p.add(at + i)) };
    }
}

/// TRB type field value of a Link TRB.
const TRB_LINK: u32 = 6;
/// TRB cycle bit.
pub const CYCLE: u32 = 1;
/// TRB chain bit.
pub const CHAIN: u32 = 1 << 4;

/// A one-page ring the driver produces into (command ring, transfer ring): 255 TRBs and a
/// link back to the start that toggles the cycle.
pub struct Ring {
    mem: Mem,
    enq: usize,
    cycle: bool,
    used: usize,
}

/// Where a TRB went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// Its machine address.
    pub maddr: u64,
    /// Its index in the ring page.
    pub index: usize,
}

impl Ring {
    /// A new empty ring (cycle 1).
    pub fn new() -> Result<Self, String> {
        Ok(Self {
            mem: Mem::alloc(1)?,
            enq: 0,
            cycle: true,
            used: 0,
        })
    }

    /// The machine address of its first TRB.
    pub fn base(&self) -> u64 {
        self.mem.maddr(0)
    }

    /// Where the next TRB goes and its cycle state (a dequeue pointer past everything).
    pub fn position(&self) -> (u64, bool) {
        (self.mem.maddr(self.enq * 16), self.cycle)
    }

    /// Whether `n` more TRBs fit among those still owned by the controller.
    pub fn fits(&self, n: usize) -> bool {
        self.used + n < RING_TRBS - 1
    }

    /// TRBs given back (their transfer finished or was skipped).
    pub fn release(&mut self, n: usize) {
        self.used = self.used.saturating_sub(n);
    }

    /// Appends a TRB (its cycle bit set to the ring's), the word with the cycle last.
    pub fn push(&mut self, mut trb: [u32; 4]) -> Placed {
        trb[3] = (trb[3] & !CYCLE) | u32::from(self.cycle);
        let off = self.enq * 16;
        let placed = Placed {
            maddr: self.mem.maddr(off),
            index: self.enq,
        };
        self.mem.write32(off, trb[0]);
        self.mem.write32(off + 4, trb[1]);
        self.mem.write32(off + 8, trb[2]);
        fence(Ordering::SeqCst);
        self.mem.write32(off + 12, trb[3]);
        self.used += 1;
        self.enq += 1;
        if self.enq == RING_TRBS - 1 {
            let link = (RING_TRBS - 1) * 16;
            self.mem.write64(link, self.mem.maddr(0));
            self.mem.write32(link + 8, 0);
            fence(Ordering::SeqCst);
            // Toggle Cycle (bit 1); the chain bit follows the TRB before it (a TD may wrap).
            let control = (TRB_LINK << 10) | (1 << 1) | (trb[3] & CHAIN) | u32::from(self.cycle);
            self.mem.write32(link + 12, control);
            self.enq = 0;
            self.cycle = !self.cycle;
        }
        fence(Ordering::SeqCst);
        placed
    }

    /// Rewrites the TRB at `index` as a transfer No-Op (type 8), keeping its cycle and chain
    /// bits and dropping its interrupt-on-completion (a cancelled TD the controller has not
    /// reached yet).
    pub fn noop(&mut self, index: usize) {
        let off = index * 16;
        let old = self.mem.read32(off + 12);
        self.mem
            .write32(off + 12, (8 << 10) | (old & (CYCLE | CHAIN)));
    }
}

/// The event ring: one segment of one page the controller produces into.
pub struct EventRing {
    seg: Mem,
    erst: Mem,
    deq: usize,
    cycle: bool,
}

impl EventRing {
    /// A new event ring with its one-entry segment table.
    pub fn new() -> Result<Self, String> {
        let seg = Mem::alloc(1)?;
        let erst = Mem::alloc(1)?;
        erst.write64(0, seg.maddr(0));
        erst.write32(8, RING_TRBS as u32);
        Ok(Self {
            seg,
            erst,
            deq: 0,
            cycle: true,
        })
    }

    /// The segment table's machine address (ERSTBA).
    pub fn table(&self) -> u64 {
        self.erst.maddr(0)
    }

    /// The dequeue pointer to write to ERDP.
    pub fn dequeue(&self) -> u64 {
        self.seg.maddr(self.deq * 16)
    }

    /// The next event, if the controller has written one.
    pub fn next(&mut self) -> Option<[u32; 4]> {
        let off = self.deq * 16;
        if (self.seg.read32(off + 12) & CYCLE == 1) != self.cycle {
            return None;
        }
        fence(Ordering::SeqCst);
        let trb = self.seg.read_trb(off);
        self.deq += 1;
        if self.deq == RING_TRBS {
            self.deq = 0;
            self.cycle = !self.cycle;
        }
        Some(trb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_whole_words_and_tails_at_any_alignment() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for start in 0..9 {
            for len in [0, 1, 7, 8, 9, 63, 64, 100, 991] {
                let mut words = alloc::vec![0u64; 128];
                let base = words.as_mut_ptr() as *mut u8;
                // SAFETY: start + len <= 1000 < 1024 bytes of `words`.
                unsafe { copy_in(base.add(start), &data[..len]) };
                let mut back = alloc::vec![0xeeu8; len];
                // SAFETY: as above.
                unsafe { copy_out(base.add(start), &mut back) };
                assert_eq!(back, data[..len], "start {start} len {len}");
                // SAFETY: as above; the bytes around the copy are untouched.
                let all = unsafe { core::slice::from_raw_parts(base, 1024) };
                assert!(
                    all[..start].iter().all(|&b| b == 0),
                    "start {start} len {len}"
                );
                assert!(
                    all[start + len..].iter().all(|&b| b == 0),
                    "start {start} len {len}"
                );
            }
        }
    }
}
