//! Storage behind the virtual disks: one trait, several stores.
//!
//! A [`Volume`] is what one virtual disk reads and writes: a RAM volume ([`ram`]), a slice
//! of a disk that dom0 hands the driver domain ([`disk`]) or a slice of a disk controller
//! the driver domain owns ([`device`]: a passed-through virtio-blk or NVMe controller). The
//! backend never sees how a store keeps its bytes. Data moves between the guest's granted pages and the store through a
//! [`DataPort`] the backend supplies, so a store decides where its local copy lives: a RAM
//! volume lets the port copy straight into its memory, the disk store into pages it shares
//! with dom0.
//!
//! I/O may complete at once ([`Started::Done`], RAM) or later ([`Started::Pending`], the
//! disk store, collected with [`Volume::completed`]); a store out of resources answers
//! [`Started::Busy`] and the backend retries the same request on a later pass. A write is
//! complete only when the store has the data; a flush only when everything completed before
//! it is durable.

pub mod device;
pub mod disk;
pub mod ram;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use minios::blockdev::DmaSeg;

/// Discard support of a volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscardInfo {
    /// `discard-granularity` in bytes.
    pub granularity: u32,
    /// `discard-alignment` in bytes.
    pub alignment: u32,
    /// Whether discarded data is erased (`discard-secure`).
    pub secure: bool,
}

/// What the frontend learns about a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeInfo {
    /// Name the toolstack refers to (xl.cfg `target=`, backend `params`).
    pub name: String,
    /// Size in bytes (a multiple of `sector_size`).
    pub size: u64,
    /// Logical sector size: 512 or 4096.
    pub sector_size: u32,
    /// Writes and discards are refused.
    pub read_only: bool,
    /// Discard support (never for read-only volumes).
    pub discard: Option<DiscardInfo>,
}

impl VolumeInfo {
    /// Size in 512-byte sectors (the blkif `sectors` key).
    pub fn sectors(&self) -> u64 {
        self.size / 512
    }
}

/// One operation on a volume, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io {
    /// Read `len` bytes at `offset`.
    Read {
        /// Byte offset in the volume.
        offset: u64,
        /// Length in bytes.
        len: u64,
    },
    /// Write `len` bytes at `offset`.
    Write {
        /// Byte offset in the volume.
        offset: u64,
        /// Length in bytes.
        len: u64,
    },
    /// Make everything completed so far durable.
    Flush,
    /// Discard `len` bytes at `offset`.
    Discard {
        /// Byte offset in the volume.
        offset: u64,
        /// Length in bytes.
        len: u64,
        /// Erase securely.
        secure: bool,
    },
}

/// A store operation that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// Moving data from or to the guest failed (a bad or revoked grant).
    Guest(String),
    /// The range lies outside the volume.
    OutOfRange,
    /// The volume is read-only.
    ReadOnly,
    /// The operation is not supported by this store.
    Unsupported,
    /// The underlying device failed or went away.
    Device(String),
    /// Out of memory.
    NoMemory,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Guest(why) => write!(f, "guest memory: {why}"),
            StoreError::OutOfRange => f.write_str("range outside the volume"),
            StoreError::ReadOnly => f.write_str("read-only volume"),
            StoreError::Unsupported => f.write_str("operation not supported"),
            StoreError::Device(why) => write!(f, "device: {why}"),
            StoreError::NoMemory => f.write_str("out of memory"),
        }
    }
}

/// Moves one request's data between the guest and a store's local buffers. Positions count
/// bytes of the request's data (its segments laid end to end).
pub trait DataPort {
    /// Fills `bufs`, in order, with the request's data starting at byte `pos` (the write path:
    /// guest to store).
    fn gather(&mut self, pos: usize, bufs: &mut [&mut [u8]]) -> Result<(), StoreError>;

    /// Delivers `bufs`, in order, as the request's data starting at byte `pos` (the read
    /// path: store to guest).
    fn scatter(&mut self, pos: usize, bufs: &[&[u8]]) -> Result<(), StoreError>;

    /// The request's data bytes `pos..pos + len` as memory a device may transfer to and
    /// from directly (mapped grants, kept mapped while the pieces are held), if all of it
    /// is mapped writable and every piece's offset and length are multiples of `block`;
    /// `None` otherwise (the store then moves the data with [`gather`](Self::gather) and
    /// [`scatter`](Self::scatter)). Default: never.
    fn direct(&mut self, _pos: usize, _len: usize, _block: usize) -> Option<Vec<DmaSeg>> {
        None
    }
}

/// The outcome of [`Volume::start`].
#[derive(Debug, PartialEq, Eq)]
pub enum Started {
    /// Finished (reads have delivered their data through the port).
    Done(Result<(), StoreError>),
    /// In progress: collect with [`Volume::completed`] under the same tag.
    Pending,
    /// No resources now: start the same operation again later. Nothing was done.
    Busy,
}

/// A finished asynchronous operation.
#[derive(Debug, PartialEq, Eq)]
pub struct Completion {
    /// The tag given to [`Volume::start`].
    pub tag: u64,
    /// The outcome.
    pub result: Result<(), StoreError>,
    /// For a successful read: the data, to deliver to the guest.
    pub data: Option<Vec<u8>>,
}

/// A virtual disk's storage, as one device sees it (each attached device has its own handle).
pub trait Volume {
    /// Size, sector size, access.
    fn info(&self) -> &VolumeInfo;

    /// Starts `io` (already checked against the volume's range, alignment and access).
    /// Writes take their data from `data` before this returns; synchronous reads deliver
    /// theirs through it.
    fn start(&mut self, tag: u64, io: Io, data: &mut dyn DataPort) -> Started;

    /// The next finished asynchronous operation of this handle, if any.
    fn completed(&mut self) -> Option<Completion>;

    /// Operations of this handle still in progress.
    fn in_flight(&self) -> usize;

    /// The device disconnected: forget queued completions and stop waiting for room;
    /// operations still in progress finish unseen. The next [`start`](Self::start) attaches
    /// again.
    fn detach(&mut self) {}
}

/// Checks that `offset..offset+len` lies in a volume of `size` bytes.
pub fn check_range(offset: u64, len: u64, size: u64) -> Result<(), StoreError> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(StoreError::OutOfRange),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_without_overflow() {
        assert!(check_range(0, 4096, 4096).is_ok());
        assert!(check_range(4096, 0, 4096).is_ok());
        assert_eq!(check_range(4096, 1, 4096), Err(StoreError::OutOfRange));
        assert_eq!(check_range(u64::MAX, 2, 4096), Err(StoreError::OutOfRange));
    }
}
