//! Per-device counters. Hot paths count; the first error of each class is logged with its
//! reason, later ones only counted (a hostile guest cannot flood the console), and the
//! totals are logged when the device disconnects.

use alloc::string::String;
use core::fmt;

use log::warn;

use crate::store::Io;

/// Classes of refused or failed requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Malformed request (bad segment, count, indirect page).
    Invalid,
    /// Unknown operation (`BLKIF_RSP_EOPNOTSUPP`).
    Unsupported,
    /// Outside the volume or misaligned.
    Range,
    /// Refused by policy: write or discard on a read-only volume, unsupported discard.
    Refused,
    /// A grant the request named could not be used.
    Grant,
    /// The store failed.
    Store,
}

const CLASSES: usize = 6;

impl ErrorClass {
    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            ErrorClass::Invalid => "invalid request",
            ErrorClass::Unsupported => "unsupported operation",
            ErrorClass::Range => "out of range",
            ErrorClass::Refused => "refused",
            ErrorClass::Grant => "bad grant",
            ErrorClass::Store => "store error",
        }
    }
}

/// Counters of one device (all its queues).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Log prefix (`vbd 5/51712 (vol1)`).
    pub label: String,
    /// Requests taken from the rings.
    pub requests: u64,
    /// Read requests.
    pub reads: u64,
    /// Write requests.
    pub writes: u64,
    /// Flush and barrier requests.
    pub flushes: u64,
    /// Discard requests.
    pub discards: u64,
    /// Bytes read from the store.
    pub bytes_read: u64,
    /// Bytes written to the store.
    pub bytes_written: u64,
    /// Bytes moved through persistent mappings.
    pub bytes_mapped: u64,
    /// Bytes moved by grant copy.
    pub bytes_copied: u64,
    /// Times the store was out of resources (request retried later).
    pub busy: u64,
    /// Ordered requests that had to wait for earlier ones.
    pub drains: u64,
    /// Completions for requests of an earlier connection (dropped).
    pub stale_completions: u64,
    /// Failed or refused requests per class.
    pub errors: [u64; CLASSES],
}

impl Stats {
    /// Counters for a device, logging as `label`.
    pub fn new(label: String) -> Self {
        Self {
            label,
            ..Self::default()
        }
    }

    /// Counts a failed request; logs the first of its class with the reason.
    pub fn error(&mut self, class: ErrorClass, why: &dyn fmt::Display) {
        let n = &mut self.errors[class.index()];
        *n += 1;
        if *n == 1 {
            warn!(
                "{}: {}: {why} (further ones only counted)",
                self.label,
                class.name()
            );
        }
    }

    /// Errors of one class so far.
    pub fn errors_of(&self, class: ErrorClass) -> u64 {
        self.errors[class.index()]
    }

    /// Counts bytes moved (mapped, copied).
    pub fn note_moved(&mut self, moved: (u64, u64)) {
        self.bytes_mapped += moved.0;
        self.bytes_copied += moved.1;
    }

    /// Counts a successful store operation's bytes.
    pub fn note_done(&mut self, io: Io) {
        match io {
            Io::Read { len, .. } => self.bytes_read += len,
            Io::Write { len, .. } => self.bytes_written += len,
            Io::Flush | Io::Discard { .. } => {}
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests ({} reads, {} writes, {} flushes, {} discards), {} KiB read, {} KiB \
             written ({} KiB via persistent grants, {} KiB by grant copy), {} busy, {} drains",
            self.requests,
            self.reads,
            self.writes,
            self.flushes,
            self.discards,
            self.bytes_read / 1024,
            self.bytes_written / 1024,
            self.bytes_mapped / 1024,
            self.bytes_copied / 1024,
            self.busy,
            self.drains
        )?;
        let total: u64 = self.errors.iter().sum();
        if total > 0 {
            write!(f, ", errors:")?;
            for (i, n) in self.errors.iter().enumerate() {
                if *n > 0 {
                    let class = [
                        ErrorClass::Invalid,
                        ErrorClass::Unsupported,
                        ErrorClass::Range,
                        ErrorClass::Refused,
                        ErrorClass::Grant,
                        ErrorClass::Store,
                    ][i];
                    write!(f, " {} {n}", class.name())?;
                }
            }
        }
        Ok(())
    }
}
