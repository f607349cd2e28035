//! One NVMe queue pair: a submission queue and its completion queue, each one page of DMA
//! memory (so neither needs machine contiguity), with the tail/head doorbells and the
//! phase-tag bookkeeping.
//!
//! Ordering: a submission entry is written to memory before the tail doorbell that
//! publishes it (a full fence between the two); a completion entry's phase tag is read
//! before the rest of the entry (the entry is read once, as a whole, after the tag says it
//! is new, then its slot is released with the head doorbell).

use core::sync::atomic::{fence, Ordering};

use super::cmd::{Command, Completion, CQE_BYTES, PAGE, SQE_BYTES};
use crate::dma::{machine_addr, DmaPages};
use crate::mmio::Mmio;

/// Where the completion queue is read next: head index and the phase tag a new entry has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CqCursor {
    /// Next entry to read.
    pub head: u16,
    /// The phase tag of entries the controller has posted in this pass over the queue.
    pub phase: bool,
    /// Entries in the queue.
    pub depth: u16,
}

impl CqCursor {
    /// A fresh queue: entries start zeroed, the controller posts with phase 1 first.
    pub fn new(depth: u16) -> Self {
        Self {
            head: 0,
            phase: true,
            depth: depth.max(2),
        }
    }

    /// Whether an entry with phase tag `phase` at the head is new.
    pub fn is_new(&self, phase: bool) -> bool {
        phase == self.phase
    }

    /// Moves past the head entry (the phase flips at each wrap).
    pub fn advance(&mut self) {
        self.head += 1;
        if self.head == self.depth {
            self.head = 0;
            self.phase = !self.phase;
        }
    }
}

/// A queue pair on DMA pages.
#[derive(Debug)]
pub struct QueuePair {
    qid: u16,
    depth: u16,
    sq: DmaPages,
    cq: DmaPages,
    sq_maddr: u64,
    cq_maddr: u64,
    tail: u16,
    cursor: CqCursor,
    /// Offsets of the two doorbells in the register window.
    sq_bell: usize,
    cq_bell: usize,
}

impl QueuePair {
    /// Allocates queue pair `qid` of `depth` entries (at most what one page holds of
    /// submission entries: 64), doorbells `stride` bytes apart.
    pub fn new(qid: u16, depth: u16, stride: usize) -> Result<Self, &'static str> {
        let depth = depth.clamp(2, (PAGE / SQE_BYTES) as u16);
        let sq = DmaPages::alloc(1).map_err(|_| "no memory for a submission queue")?;
        let cq = DmaPages::alloc(1).map_err(|_| "no memory for a completion queue")?;
        let sq_maddr = machine_addr(sq.va()).ok_or("submission queue has no machine address")?;
        let cq_maddr = machine_addr(cq.va()).ok_or("completion queue has no machine address")?;
        let bell = 0x1000 + 2 * usize::from(qid) * stride;
        Ok(Self {
            qid,
            depth,
            sq,
            cq,
            sq_maddr,
            cq_maddr,
            tail: 0,
            cursor: CqCursor::new(depth),
            sq_bell: bell,
            cq_bell: bell + stride,
        })
    }

    /// The queue id.
    pub fn qid(&self) -> u16 {
        self.qid
    }

    /// Entries per queue.
    pub fn depth(&self) -> u16 {
        self.depth
    }

    /// Machine address of the submission queue page.
    pub fn sq_maddr(&self) -> u64 {
        self.sq_maddr
    }

    /// Machine address of the completion queue page.
    pub fn cq_maddr(&self) -> u64 {
        self.cq_maddr
    }

    /// The highest doorbell offset this pair uses, plus its width.
    pub fn bells_end(&self) -> usize {
        self.cq_bell + 4
    }

    /// Writes `cmd` with id `cid` at the tail (the caller keeps at most `depth - 1`
    /// commands outstanding, so the tail never reaches an unconsumed entry). The controller
    /// sees it at [`ring`](Self::ring).
    pub fn push(&mut self, cmd: &Command, cid: u16) {
        let entry = cmd.encode(cid);
        let at = self.sq.va() as usize + usize::from(self.tail) * SQE_BYTES;
        for (i, chunk) in entry.chunks_exact(8).enumerate() {
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
            // SAFETY: entry `tail` (< depth ≤ 64) of the submission queue page, which this
            // pair owns for its lifetime; aligned (64-byte entries, 8-byte words). The
            // controller reads it only after the doorbell.
            unsafe { core::ptr::write_volatile((at + 8 * i) as *mut u64, word) };
        }
        self.tail = (self.tail + 1) % self.depth;
    }

    /// Tells the controller about the entries pushed so far (tail doorbell).
    pub fn ring(&self, regs: &Mmio) {
        // The entries must be in memory before the controller can fetch them.
        fence(Ordering::SeqCst);
        regs.write32(self.sq_bell, u32::from(self.tail));
    }

    /// The next new completion, if the controller posted one (the head moves past it; call
    /// [`release`](Self::release) after a batch).
    pub fn pop(&mut self) -> Option<Completion> {
        let at = self.cq.va() as usize + usize::from(self.cursor.head) * CQE_BYTES;
        // SAFETY: entry `head` (< depth) of the completion queue page, owned by this pair;
        // 4-byte aligned. The controller writes it; we only read.
        let dw3 = unsafe { core::ptr::read_volatile((at + 12) as *const u32) };
        if !self.cursor.is_new(dw3 & (1 << 16) != 0) {
            return None;
        }
        // The rest of the entry was written before its phase tag.
        fence(Ordering::Acquire);
        let mut raw = [0u8; CQE_BYTES];
        for (i, chunk) in raw.chunks_exact_mut(4).enumerate() {
            // SAFETY: as above, dwords 0..3 of the same entry.
            let dw = unsafe { core::ptr::read_volatile((at + 4 * i) as *const u32) };
            chunk.copy_from_slice(&dw.to_le_bytes());
        }
        self.cursor.advance();
        Some(Completion::parse(&raw))
    }

    /// Gives the entries read so far back to the controller (head doorbell).
    pub fn release(&self, regs: &Mmio) {
        fence(Ordering::SeqCst);
        regs.write32(self.cq_bell, u32::from(self.cursor.head));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phase_flips_at_each_wrap() {
        let mut c = CqCursor::new(3);
        assert!(c.is_new(true) && !c.is_new(false));
        for _ in 0..3 {
            c.advance();
        }
        assert_eq!(c.head, 0);
        assert!(c.is_new(false) && !c.is_new(true));
        c.advance();
        assert_eq!((c.head, c.phase), (1, false));
        for _ in 0..2 {
            c.advance();
        }
        assert_eq!((c.head, c.phase), (0, true));
    }
}
