//! virtio-blk on a passed-through function, as a [`BlockDevice`].
//!
//! The crate's transport and virtqueue carry the requests (not its `VirtIOBlk`, which
//! negotiates `RING_EVENT_IDX` unconditionally, waits for each request, uses 16-entry queues
//! and has no discard). Each request is a descriptor chain: a 16-byte header, the data
//! pages, a status byte; all of them live in this driver's DMA pages, handed to the device
//! by machine address, one page per data descriptor (so no buffer needs machine
//! contiguity). Many requests are in flight at once; completions are taken from the used
//! ring when the device's interrupt fires.
//!
//! Negotiated: `VERSION_1`, `RO`, `BLK_SIZE`, `FLUSH`, `DISCARD`, `SEG_MAX`, `SIZE_MAX` as
//! offered. Not `RING_EVENT_IDX` (virtio-drivers 0.13 compares its 16-bit indexes without
//! wrapping and misses a barrier; see `net.rs`) and not indirect descriptors (each would be
//! a heap allocation shared with the device per request).
//!
//! Everything the device writes back (tokens, status bytes) is checked; a device that names
//! a request it was not given is failed, not trusted.
//!
//! Dead or stuck hardware: a request unanswered after [`IO_TIMEOUT_NS`] (NVMe's, 30 s) fails
//! ([`BlockStatus::Timeout`], logged: each of the first timeouts, then every power of two,
//! with the count so far); [`BlockDevice::next_deadline`] says when, so no interrupt is
//! needed. Its slot, data pages and descriptors stay reserved until the device returns its
//! chain (it may still write into them); the late answer is then dropped, and its token
//! cannot have been handed to another request meanwhile ([`inflight`]). When a request times
//! out, the device status is read: all ones (gone), `DEVICE_NEEDS_RESET` or a reset device
//! fails the device as a whole, and so do requests given up on that hold every slot, or so
//! many descriptors or pages that a request of the largest size could never be queued again.
//! A failed device fails every call after (the owner fails what is in flight, logs once).

pub mod inflight;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use bitflags::bitflags;
use minios::blockdev::{
    BlockDevice, BlockError, BlockInfo, BlockOp, BlockStatus, DiscardLimits, OnComplete,
};
use minios::error_log::{thinning_note, worth_logging};
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::Transport;

use self::inflight::{status_failure, Answer, Held, Inflight};
use super::hal::XenHal;
use super::transport::VirtioPci;
use crate::dma::DmaPages;
use crate::nvme::IO_TIMEOUT_NS;
use crate::pci::IrqMode;

/// Descriptors in the request queue.
const QUEUE_SIZE: usize = 128;
/// Request slots (header, status, discard range): at most one per descriptor chain.
const SLOTS: usize = QUEUE_SIZE / 2;
/// Bytes per slot in the slot pages: header (16), discard range (16), status (1).
const SLOT_BYTES: usize = 64;
// Slots never cross a page (each is handed to the device as one machine address).
const _: () = assert!(PAGE % SLOT_BYTES == 0);
/// Pages of data buffers (1 MiB).
const DATA_PAGES: usize = 256;
/// Data pages one request may carry.
const MAX_SEGS: usize = 32;
const PAGE: usize = 4096;
const QUEUE: u16 = 0;

/// `virtio_blk_req.type`.
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_DISCARD: u32 = 11;

/// `virtio_blk_config` offsets.
const CFG_CAPACITY: usize = 0;
const CFG_SIZE_MAX: usize = 8;
const CFG_SEG_MAX: usize = 12;
const CFG_BLK_SIZE: usize = 20;
const CFG_MAX_DISCARD_SECTORS: usize = 36;
const CFG_MAX_DISCARD_SEG: usize = 40;
const CFG_DISCARD_ALIGNMENT: usize = 44;

bitflags! {
    /// The feature bits we may negotiate.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Features: u64 {
        const SIZE_MAX = 1 << 1;
        const SEG_MAX = 1 << 2;
        const RO = 1 << 5;
        const BLK_SIZE = 1 << 6;
        const FLUSH = 1 << 9;
        const DISCARD = 1 << 13;
        const RING_EVENT_IDX = 1 << 29;
        const VERSION_1 = 1 << 32;
    }
}

/// One request with the device (its slot and pages are in its [`Held`]).
#[derive(Clone, Debug)]
struct Pending {
    id: u64,
    kind: u32,
    len: usize,
}

/// A request type's name, for logs.
fn kind_name(kind: u32) -> &'static str {
    match kind {
        T_IN => "read",
        T_OUT => "write",
        T_FLUSH => "flush",
        T_DISCARD => "discard",
        _ => "request",
    }
}

fn now() -> u64 {
    crate::time::now_ns()
}

/// A virtio-blk device owned by this domain.
pub struct VirtioBlk {
    dev: VirtioPci,
    queue: VirtQueue<XenHal, QUEUE_SIZE>,
    slots_mem: DmaPages,
    data: DmaPages,
    /// The requests per descriptor token, their deadlines, the free slots and data pages.
    inflight: Inflight<Pending>,
    /// Answers that came after their request's timeout.
    late: u64,
    info: BlockInfo,
    features: Features,
    notify: bool,
    failed: Option<String>,
}

fn device_error(what: &str, e: impl core::fmt::Display) -> BlockError {
    BlockError::Device(format!("{what}: {e}"))
}

/// virtio's PCI vendor id.
const VIRTIO_VENDOR: u16 = 0x1af4;

/// Descriptors a request takes: header, data pages, discard range, status.
fn descriptors(op: &BlockOp) -> usize {
    match op {
        BlockOp::Read { len, .. } | BlockOp::Write { len, .. } => 2 + len.div_ceil(PAGE),
        BlockOp::Flush => 2,
        BlockOp::Discard { .. } => 3,
    }
}

impl VirtioBlk {
    /// Whether this driver drives the PCI function with these ids (virtio-blk, modern or
    /// transitional).
    pub fn drives(vendor: u16, device: u16) -> bool {
        vendor == VIRTIO_VENDOR && (device == 0x1042 || device == 0x1001)
    }

    /// Negotiates features, reads the geometry and sets up the request queue (its
    /// interrupts on the function's first vector).
    pub fn new(mut dev: VirtioPci) -> Result<Self, BlockError> {
        let wanted = Features::SIZE_MAX
            | Features::SEG_MAX
            | Features::RO
            | Features::BLK_SIZE
            | Features::FLUSH
            | Features::DISCARD
            | Features::VERSION_1;
        let features = dev.transport.begin_init(wanted);
        if !features.contains(Features::VERSION_1) {
            return Err(BlockError::Device(String::from(
                "device does not offer VIRTIO_F_VERSION_1",
            )));
        }
        let t = &dev.transport;
        let cfg32 = |off: usize| {
            t.read_config_space::<u32>(off)
                .map_err(|e| device_error("reading the configuration", e))
        };
        // 64-bit fields are read as two 32-bit halves (virtio 1.x, 4.1.3.1).
        let sectors = t
            .read_consistent(|| {
                let lo = t.read_config_space::<u32>(CFG_CAPACITY)?;
                let hi = t.read_config_space::<u32>(CFG_CAPACITY + 4)?;
                Ok(u64::from(lo) | (u64::from(hi) << 32))
            })
            .map_err(|e| device_error("reading the capacity", e))?;
        let block_size = if features.contains(Features::BLK_SIZE) {
            cfg32(CFG_BLK_SIZE)?
        } else {
            512
        };
        if block_size != 512 && block_size != 4096 {
            return Err(BlockError::Device(format!(
                "logical block size {block_size} (512 and 4096 are supported)"
            )));
        }
        if features.contains(Features::SIZE_MAX) && (cfg32(CFG_SIZE_MAX)? as usize) < PAGE {
            return Err(BlockError::Device(String::from(
                "segments smaller than a page (size_max)",
            )));
        }
        let mut segs = MAX_SEGS;
        if features.contains(Features::SEG_MAX) {
            let seg_max = cfg32(CFG_SEG_MAX)? as usize;
            if seg_max == 0 {
                return Err(BlockError::Device(String::from("seg_max is 0")));
            }
            segs = segs.min(seg_max);
        }
        let discard = if features.contains(Features::DISCARD) {
            let max_sectors = cfg32(CFG_MAX_DISCARD_SECTORS)?;
            let max_seg = cfg32(CFG_MAX_DISCARD_SEG)?;
            let alignment = cfg32(CFG_DISCARD_ALIGNMENT)?.max(1);
            (max_sectors > 0 && max_seg > 0).then_some(DiscardLimits {
                max_sectors,
                alignment_sectors: alignment,
            })
        } else {
            None
        };
        dev.set_queue_vector(QUEUE, 0)
            .map_err(|e| device_error("MSI-X vector", e))?;
        let queue = VirtQueue::new(&mut *dev.transport, QUEUE, false, false)
            .map_err(|e| device_error("request queue", e))?;
        dev.transport.finish_init();
        let alloc = |pages: usize| {
            DmaPages::alloc(pages as u64)
                .map_err(|e| device_error("buffer memory", format!("{e:?}")))
        };
        let slots_mem = alloc((SLOTS * SLOT_BYTES).div_ceil(PAGE))?;
        let data = alloc(DATA_PAGES)?;
        let info = BlockInfo {
            sectors,
            block_size,
            read_only: features.contains(Features::RO),
            flush: features.contains(Features::FLUSH),
            discard,
            max_transfer: segs * PAGE,
        };
        let blk = Self {
            dev,
            queue,
            slots_mem,
            data,
            inflight: Inflight::new(QUEUE_SIZE as u16, SLOTS, DATA_PAGES as u16, IO_TIMEOUT_NS),
            late: 0,
            info,
            features,
            notify: false,
            failed: None,
        };
        log::info!(
            "virtio-blk {} (as {}): {} sectors, {}-byte blocks, features {:?}, interrupts {:?} (pirq {})",
            blk.dev.host,
            blk.dev.addr,
            sectors,
            block_size,
            features,
            blk.dev.irqs.mode,
            blk.dev.irqs.pirqs.first().map_or(0, |p| p.pirq()),
        );
        Ok(blk)
    }

    /// The function's address.
    pub fn address(&self) -> minios::pci::PciAddress {
        self.dev.addr
    }

    /// Slot `slot`'s header (16 bytes), discard range (16) and status byte.
    fn slot(&self, slot: usize) -> (&'static mut [u8], &'static mut [u8], &'static mut [u8]) {
        let at = self.slots_mem.va() as usize + slot * SLOT_BYTES;
        // SAFETY: slot `slot` (< SLOTS) lies inside the slot pages, which live as long as
        // the device, and never crosses a page (64-byte slots); a slot is used by exactly
        // one request at a time, from `submit` until the device returns its chain, even
        // after a timeout (`inflight` says which), and the three parts are disjoint.
        unsafe {
            (
                core::slice::from_raw_parts_mut(at as *mut u8, 16),
                core::slice::from_raw_parts_mut((at + 16) as *mut u8, 16),
                core::slice::from_raw_parts_mut((at + 32) as *mut u8, 1),
            )
        }
    }

    /// The data buffers of a request of `len` bytes in `pages`.
    fn buffers(&self, pages: &[u16], len: usize) -> Vec<&'static mut [u8]> {
        let mut left = len;
        pages
            .iter()
            .map(|&p| {
                let n = left.min(PAGE);
                left -= n;
                let at = self.data.va() as usize + usize::from(p) * PAGE;
                // SAFETY: page `p` (< DATA_PAGES) lies inside the data pages, owned by this
                // request alone until the device returns its chain, even after a timeout
                // (`inflight` says which).
                unsafe { core::slice::from_raw_parts_mut(at as *mut u8, n) }
            })
            .collect()
    }

    fn check(&mut self) -> Result<(), BlockError> {
        if self.failed.is_none() && self.dev.removed() {
            self.failed = Some(String::from("the toolstack removed the device"));
        }
        match &self.failed {
            Some(why) => Err(BlockError::Device(why.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: BlockError) -> BlockError {
        if let BlockError::Device(why) = &e {
            if self.failed.is_none() {
                log::warn!(
                    "virtio-blk {}: {why}; the device is no longer used",
                    self.dev.host
                );
                self.failed = Some(why.clone());
            }
        }
        e
    }

    /// The chain of request `p` holding `held`: device-readable and device-writable buffers.
    fn chain(&self, p: &Pending, held: &Held) -> (Vec<&'static [u8]>, Vec<&'static mut [u8]>) {
        let (hdr, range, status) = self.slot(held.slot);
        let data = self.buffers(&held.pages, p.len);
        let mut inputs: Vec<&'static [u8]> = vec![hdr];
        let mut outputs: Vec<&'static mut [u8]> = Vec::new();
        match p.kind {
            T_IN => outputs.extend(data),
            T_OUT => inputs.extend(data.into_iter().map(|b| &*b)),
            T_DISCARD => inputs.push(range),
            _ => {}
        }
        outputs.push(status);
        (inputs, outputs)
    }

    /// Fails the requests whose time is up; fails the device if it is gone, needs a reset,
    /// or can take no more work (requests given up on hold what a request needs).
    fn expire(&mut self, each: &mut OnComplete<'_>) -> Result<usize, BlockError> {
        let host = self.dev.host;
        let n = self.inflight.expire(now(), |token, p, count| {
            if worth_logging(count) {
                log::warn!(
                    "virtio-blk {host}: {} of {} bytes (token {token}) unanswered after {} s: its request fails ({count} timeouts so far{})",
                    kind_name(p.kind),
                    p.len,
                    IO_TIMEOUT_NS / 1_000_000_000,
                    thinning_note(count),
                );
            }
            each(p.id, BlockStatus::Timeout, &[]);
        });
        if n > 0 {
            if let Some(why) = status_failure(self.dev.transport.get_status()) {
                return Err(self.fail(BlockError::Device(why)));
            }
            if let Some(why) = self.inflight.wedged(self.info.max_transfer / PAGE) {
                return Err(self.fail(BlockError::Device(why)));
            }
        }
        Ok(n)
    }
}

impl BlockDevice for VirtioBlk {
    fn describe(&self) -> String {
        format!(
            "virtio-blk {}, {} MiB",
            self.dev.host,
            self.info.sectors / 2048
        )
    }

    fn info(&self) -> BlockInfo {
        self.info
    }

    fn has_room(&self, ops: &[BlockOp]) -> bool {
        let descs: usize = ops.iter().map(descriptors).sum();
        let pages: usize = ops.iter().map(|o| o.data_len().div_ceil(PAGE)).sum();
        ops.len() <= self.inflight.free_slots()
            && pages <= self.inflight.free_pages()
            && descs <= self.queue.available_desc()
    }

    fn submit(
        &mut self,
        id: u64,
        op: BlockOp,
        fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
    ) -> Result<(), BlockError> {
        self.check()?;
        let (kind, sector, len) = match op {
            BlockOp::Read { sector, len } => (T_IN, sector, len),
            BlockOp::Write { sector, len } => (T_OUT, sector, len),
            BlockOp::Flush if self.features.contains(Features::FLUSH) => (T_FLUSH, 0, 0),
            BlockOp::Flush => return Err(BlockError::Refused(String::from("no FLUSH"))),
            BlockOp::Discard { .. } if self.info.discard.is_none() => {
                return Err(BlockError::Refused(String::from("no DISCARD")))
            }
            BlockOp::Discard { sector, .. } => (T_DISCARD, sector, 0),
        };
        if len == 0 && matches!(op, BlockOp::Read { .. } | BlockOp::Write { .. })
            || len > self.info.max_transfer
            || len % self.info.block_size as usize != 0
        {
            return Err(BlockError::Refused(format!("transfer of {len} bytes")));
        }
        if !self.has_room(&[op]) {
            return Err(BlockError::Full);
        }
        let Some(held) = self.inflight.reserve(len.div_ceil(PAGE), descriptors(&op)) else {
            return Err(BlockError::Full);
        };
        let p = Pending { id, kind, len };
        if kind == T_OUT {
            let mut bufs = self.buffers(&held.pages, len);
            if !fill(&mut bufs) {
                self.inflight.release(held);
                return Err(BlockError::Aborted);
            }
        }
        let (hdr, range, status) = self.slot(held.slot);
        hdr[0..4].copy_from_slice(&kind.to_le_bytes());
        hdr[4..8].fill(0);
        hdr[8..16].copy_from_slice(&sector.to_le_bytes());
        if let BlockOp::Discard { sector, sectors } = op {
            range[0..8].copy_from_slice(&sector.to_le_bytes());
            range[8..12].copy_from_slice(&sectors.to_le_bytes());
            range[12..16].fill(0);
        }
        // An answer the device never writes reads as an error.
        status[0] = 0xff;
        let (inputs, mut outputs) = self.chain(&p, &held);
        // SAFETY: the slot and data pages belong to this request until its token is popped
        // in `complete` (after a timeout too); nothing touches them meanwhile.
        let token = match unsafe { self.queue.add(&inputs, &mut outputs) } {
            Ok(t) => t,
            Err(virtio_drivers::Error::QueueFull) => {
                self.inflight.release(held);
                return Err(BlockError::Full);
            }
            Err(e) => {
                self.inflight.release(held);
                return Err(self.fail(device_error("queueing a request", e)));
            }
        };
        if let Err(why) = self.inflight.sent(token, now(), p, held) {
            return Err(self.fail(BlockError::Device(why)));
        }
        self.notify = true;
        Ok(())
    }

    fn kick(&mut self) -> Result<(), BlockError> {
        self.check()?;
        if core::mem::take(&mut self.notify) && super::wants_doorbell(&self.queue) {
            self.dev.transport.notify(QUEUE);
        }
        Ok(())
    }

    fn take_interrupt(&mut self) -> bool {
        let mut fired = false;
        for p in &self.dev.irqs.pirqs {
            fired |= p.take();
        }
        if fired {
            if self.dev.irqs.mode == IrqMode::Intx {
                // Reading the ISR deasserts the line; then Xen may deliver the next one.
                self.dev.transport.ack_interrupt();
            }
            for p in &self.dev.irqs.pirqs {
                if let Err(e) = p.eoi() {
                    log::warn!("virtio-blk: EOI of pirq {}: {e:?}", p.pirq());
                }
            }
        }
        fired
    }

    fn complete(&mut self, each: &mut OnComplete<'_>) -> Result<usize, BlockError> {
        self.check()?;
        let mut n = 0;
        while let Some(token) = self.queue.peek_used() {
            // A token is only ever held by one request (a timed-out one keeps it until
            // here), so the answer is that request's, late or not. On an error the device
            // is failed and what the request held stays reserved for good.
            let answer = match self.inflight.answer(token) {
                Ok(a) => a,
                Err(why) => return Err(self.fail(BlockError::Device(why))),
            };
            let (Answer::Live(p, held) | Answer::Late(p, held)) = &answer;
            let (inputs, mut outputs) = self.chain(p, held);
            // SAFETY: these are the buffers added with this token.
            if let Err(e) = unsafe { self.queue.pop_used(token, &inputs, &mut outputs) } {
                return Err(self.fail(device_error("request completion", e)));
            }
            let byte = self.slot(held.slot).2[0];
            let (p, held) = match answer {
                Answer::Late(p, held) => {
                    // Its request already failed: report nothing, only free what it held.
                    self.late += 1;
                    if worth_logging(self.late) {
                        log::info!(
                            "virtio-blk {}: {} (token {token}) answered after its timeout (status {byte}; {} late answers so far)",
                            self.dev.host,
                            kind_name(p.kind),
                            self.late
                        );
                    }
                    self.inflight.release(held);
                    continue;
                }
                Answer::Live(p, held) => (p, held),
            };
            let status = match byte {
                0 => BlockStatus::Ok,
                1 => BlockStatus::IoError,
                2 => BlockStatus::Unsupported,
                s => BlockStatus::Other(s),
            };
            if p.kind == T_IN && status == BlockStatus::Ok {
                let data = self.buffers(&held.pages, p.len);
                let refs: Vec<&[u8]> = data.iter().map(|b| &**b).collect();
                each(p.id, status, &refs);
            } else {
                each(p.id, status, &[]);
            }
            self.inflight.release(held);
            n += 1;
        }
        n += self.expire(each)?;
        Ok(n)
    }

    fn next_deadline(&self) -> Option<u64> {
        if self.failed.is_some() {
            return None;
        }
        self.inflight.next_deadline()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_take_header_data_and_status_descriptors() {
        assert_eq!(descriptors(&BlockOp::Flush), 2);
        assert_eq!(
            descriptors(&BlockOp::Discard {
                sector: 0,
                sectors: 8
            }),
            3
        );
        let w = BlockOp::Write {
            sector: 8,
            len: 3 * PAGE,
        };
        assert_eq!(descriptors(&w), 5);
        let r = BlockOp::Read {
            sector: 8,
            len: 512,
        };
        assert_eq!(descriptors(&r), 3);
    }
}
