//! The block device a driver domain owns (a passed-through disk controller), as the backends
//! see it.
//!
//! A driver behind this trait (virtio-blk in `minios-rt`, a fake in host tests) owns its DMA
//! buffers: a write's data is copied into them by a callback before the request is queued;
//! a read's data is handed out of them when the request completes. Requests complete in any
//! order, identified by the id the caller gave; many may be in flight at once, and the
//! device signals completions by interrupt ([`BlockDevice::take_interrupt`]).
//!
//! A driver may also move a read's or write's data straight between the device and memory
//! the caller hands it ([`DmaSeg`]: a guest's granted page mapped for the request), without
//! its own buffers: [`BlockDevice::direct_ok`] says whether it can for a given request,
//! [`BlockDevice::submit_direct`] queues it. Drivers that cannot keep the defaults (never).
//!
//! A device may have several submission queues ([`BlockDevice::queues`]); the caller picks
//! the one its next requests go to ([`BlockDevice::select_queue`]), so independent users of
//! the device do not queue behind each other's commands. Room is counted per queue.
//!
//! Everything a device writes back is untrusted: a driver bounds what it reads and reports
//! a device that breaks its protocol as [`BlockError::Device`], after which the owner stops
//! using it and fails what was in flight.

use alloc::rc::Rc;
use alloc::string::String;
use core::fmt;

use crate::platform::SharedMem;

/// Bytes per sector in [`BlockOp`] positions (whatever the device's logical block size).
pub const SECTOR: u64 = 512;

/// What the device offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Capacity in 512-byte sectors.
    pub sectors: u64,
    /// Logical block size in bytes (512 or 4096): I/O is aligned to it.
    pub block_size: u32,
    /// The device refuses writes.
    pub read_only: bool,
    /// The device has a volatile cache that [`BlockOp::Flush`] writes out (without one,
    /// a completed write is durable).
    pub flush: bool,
    /// Discard support, if any.
    pub discard: Option<DiscardLimits>,
    /// Most data bytes one request may carry (a multiple of 4096).
    pub max_transfer: usize,
}

/// How the device discards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscardLimits {
    /// Most sectors one discard request may cover.
    pub max_sectors: u32,
    /// Discards should be aligned to this many sectors (the granularity).
    pub alignment_sectors: u32,
}

/// One request, positioned in 512-byte sectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockOp {
    /// Read `len` bytes at `sector`.
    Read {
        /// First sector.
        sector: u64,
        /// Bytes (a multiple of the block size, at most `max_transfer`).
        len: usize,
    },
    /// Write `len` bytes at `sector`.
    Write {
        /// First sector.
        sector: u64,
        /// Bytes (a multiple of the block size, at most `max_transfer`).
        len: usize,
    },
    /// Write the device's volatile cache out (everything completed before).
    Flush,
    /// Discard `sectors` sectors at `sector`.
    Discard {
        /// First sector.
        sector: u64,
        /// Sectors (at most the device's `max_sectors`).
        sectors: u32,
    },
}

impl BlockOp {
    /// Data bytes the request carries.
    pub fn data_len(&self) -> usize {
        match *self {
            BlockOp::Read { len, .. } | BlockOp::Write { len, .. } => len,
            BlockOp::Flush | BlockOp::Discard { .. } => 0,
        }
    }
}

/// How the device answered one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockStatus {
    /// Done.
    Ok,
    /// The device failed the request (media or transport error).
    IoError,
    /// The device does not support the request.
    Unsupported,
    /// The device did not answer in time (the driver gave up on the request).
    Timeout,
    /// Any other status byte.
    Other(u8),
}

impl fmt::Display for BlockStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockStatus::Ok => f.write_str("ok"),
            BlockStatus::IoError => f.write_str("I/O error"),
            BlockStatus::Unsupported => f.write_str("unsupported"),
            BlockStatus::Timeout => f.write_str("no answer in time"),
            BlockStatus::Other(s) => write!(f, "status {s}"),
        }
    }
}

/// A device operation that did not happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// No room now (descriptors, buffers): try again after completions.
    Full,
    /// The request does not fit the device (size, alignment, an unsupported operation).
    Refused(String),
    /// The write's fill callback failed: nothing was queued.
    Aborted,
    /// The device broke its protocol or went away; it must not be used any more.
    Device(String),
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockError::Full => f.write_str("device queue full"),
            BlockError::Refused(why) => write!(f, "request refused: {why}"),
            BlockError::Aborted => f.write_str("request abandoned"),
            BlockError::Device(why) => write!(f, "device failed: {why}"),
        }
    }
}

/// One piece of a request's data in memory the caller owns (a mapped grant): `len` bytes at
/// `offset` of `mem`, within one page. A driver transfers to or from it at
/// `mem.dma_addr() + offset`; the caller keeps `mem` (and so the mapping) alive until the
/// request has completed.
#[derive(Clone)]
pub struct DmaSeg {
    /// The memory (its [`SharedMem::dma_addr`] is where the device finds it).
    pub mem: Rc<dyn SharedMem>,
    /// Byte offset in `mem`.
    pub offset: usize,
    /// Bytes.
    pub len: usize,
}

impl fmt::Debug for DmaSeg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaSeg")
            .field("dma_addr", &self.mem.dma_addr())
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

/// Receives one finished request: its id, the device's answer and, for a successful read,
/// its data in order (valid only during the call).
pub type OnComplete<'a> = dyn FnMut(u64, BlockStatus, &[&[u8]]) + 'a;

/// A block device the driver domain owns.
pub trait BlockDevice {
    /// What the device is, for logs (`virtio-blk 0000:00:11.0, 64M`).
    fn describe(&self) -> String;

    /// Geometry and features (fixed once the device is up).
    fn info(&self) -> BlockInfo;

    /// Independent submission queues the device has (NVMe I/O queue pairs); default 1.
    fn queues(&self) -> usize {
        1
    }

    /// Makes queue `q` (modulo [`queues`](Self::queues)) the one the following
    /// [`has_room`](Self::has_room), [`has_room_direct`](Self::has_room_direct),
    /// [`submit`](Self::submit) and [`submit_direct`](Self::submit_direct) calls use and
    /// count room on, until the next call. [`kick`](Self::kick) and
    /// [`complete`](Self::complete) cover every queue. Default: nothing (one queue).
    fn select_queue(&mut self, _q: usize) {}

    /// Whether every one of `ops` would be queued now (room for all of them together).
    fn has_room(&self, ops: &[BlockOp]) -> bool;

    /// Queues `op` under `id`. For a write, `fill` first gets the request's buffers (in
    /// order, `len` bytes in all) to copy the data into; when it returns `false` nothing is
    /// queued ([`BlockError::Aborted`]). The device is told at [`kick`](Self::kick).
    fn submit(
        &mut self,
        id: u64,
        op: BlockOp,
        fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
    ) -> Result<(), BlockError>;

    /// Whether `op` (a read or write) can move its data straight between the device and
    /// `segs` (in order, `op.data_len()` bytes in all) instead of the driver's buffers.
    /// Default: never.
    fn direct_ok(&self, _op: &BlockOp, _segs: &[DmaSeg]) -> bool {
        false
    }

    /// Whether every one of `ops`, each submitted with
    /// [`submit_direct`](Self::submit_direct), would be queued now.
    fn has_room_direct(&self, ops: &[BlockOp]) -> bool {
        self.has_room(ops)
    }

    /// Queues `op` (accepted by [`direct_ok`](Self::direct_ok)) under `id` with its data in
    /// `segs`: the device reads a write's data from them, or writes a read's data into them,
    /// until the request completes (the caller keeps them alive until then, and past a
    /// timeout). A direct read completes with no data handed out (it is in `segs`).
    fn submit_direct(
        &mut self,
        _id: u64,
        _op: BlockOp,
        _segs: &[DmaSeg],
    ) -> Result<(), BlockError> {
        Err(BlockError::Refused(String::from("no direct transfers")))
    }

    /// Tells the device about the requests queued since the last call.
    fn kick(&mut self) -> Result<(), BlockError>;

    /// Whether the device signalled since the last call (acknowledges the interrupt).
    fn take_interrupt(&mut self) -> bool;

    /// Hands each finished request to `each` (its id, the device's answer and, for a
    /// successful read, its data in order) and frees it; returns how many finished. After an
    /// error the device is unusable: requests still in flight never complete.
    fn complete(&mut self, each: &mut OnComplete<'_>) -> Result<usize, BlockError>;

    /// When [`complete`](Self::complete) should run next even without an interrupt (a
    /// request's timeout), in the platform clock's nanoseconds; `None`: only on interrupts.
    fn next_deadline(&self) -> Option<u64> {
        None
    }
}
