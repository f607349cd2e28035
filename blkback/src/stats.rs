//! Per-device counters. Hot paths count; errors go to a [`minios::error_log::ErrorLog`] (the
//! first of each class is logged with its reason, later ones only counted), and the totals
//! are logged when the device disconnects. The backend publishes [`Stats::fields`] in
//! xenstore (`data/vbd/<frontend-id>/<devid>/`, see the README).

use alloc::string::String;
use core::fmt;

use minios::error_log::ErrorLog;

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

/// The classes' names as logged, in [`ErrorClass`] order.
const CLASS_NAMES: [&str; CLASSES] = [
    "invalid request",
    "unsupported operation",
    "out of range",
    "refused",
    "bad grant",
    "store error",
];

/// The classes' keys in xenstore, in [`ErrorClass`] order.
const CLASS_KEYS: [&str; CLASSES] = [
    "err_invalid",
    "err_unsupported",
    "err_range",
    "err_refused",
    "err_grant",
    "err_store",
];

/// Keys published per device: [`Stats::fields`].
pub const FIELDS: usize = 9 + CLASSES;

/// Counters of one device (all its queues).
#[derive(Clone, Debug)]
pub struct Stats {
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
    /// Times the event channel was held back for an event storm
    /// ([`minios::event_throttle`]).
    pub event_holds: u64,
    /// Failed or refused requests per class (the first of each logged).
    pub errors: ErrorLog<CLASSES>,
}

impl Stats {
    /// Counters for a device, logging as `label`.
    pub fn new(label: String) -> Self {
        Self {
            requests: 0,
            reads: 0,
            writes: 0,
            flushes: 0,
            discards: 0,
            bytes_read: 0,
            bytes_written: 0,
            bytes_mapped: 0,
            bytes_copied: 0,
            busy: 0,
            drains: 0,
            stale_completions: 0,
            event_holds: 0,
            errors: ErrorLog::new(module_path!(), label, CLASS_NAMES, ""),
        }
    }

    /// The device's log prefix (`vbd 5/51712 (vol1)`).
    pub fn label(&self) -> &str {
        self.errors.label()
    }

    /// Counts a failed request; logs the first of its class with the reason.
    pub fn error(&mut self, class: ErrorClass, why: &dyn fmt::Display) {
        self.errors.record(class as usize, why);
    }

    /// Errors of one class so far.
    pub fn errors_of(&self, class: ErrorClass) -> u64 {
        self.errors.count(class as usize)
    }

    /// `(key, value)` pairs as published in xenstore: Linux blkback's `statistics/` names
    /// (`rd_req`, `wr_req`, `f_req`, `ds_req`, `oo_req`, `rd_sect`, `wr_sect` in 512-byte
    /// sectors), `event_holds` (event-storm holds), then `errors` and the errors per class (`err_invalid`, `err_unsupported`,
    /// `err_range`, `err_refused`, `err_grant`, `err_store`).
    pub fn fields(&self) -> [(&'static str, u64); FIELDS] {
        let mut out = [("", 0); FIELDS];
        let common = [
            ("rd_req", self.reads),
            ("wr_req", self.writes),
            ("f_req", self.flushes),
            ("ds_req", self.discards),
            ("oo_req", self.busy),
            ("rd_sect", self.bytes_read / 512),
            ("wr_sect", self.bytes_written / 512),
            ("event_holds", self.event_holds),
            ("errors", self.errors.total()),
        ];
        out[..common.len()].copy_from_slice(&common);
        for (i, key) in CLASS_KEYS.iter().enumerate() {
            out[common.len() + i] = (key, self.errors.count(i));
        }
        out
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
        if self.event_holds > 0 {
            write!(f, ", event channel held back {} times", self.event_holds)?;
        }
        if self.errors.total() > 0 {
            write!(f, ", errors: {}", self.errors)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_name_the_right_counters() {
        let mut s = Stats::new("vbd 5/51712 (vol1)".into());
        (s.reads, s.writes, s.flushes, s.discards, s.busy) = (1, 2, 3, 4, 5);
        (s.bytes_read, s.bytes_written) = (6 * 512, 7 * 512);
        s.event_holds = 8;
        let classes = [
            ErrorClass::Invalid,
            ErrorClass::Unsupported,
            ErrorClass::Range,
            ErrorClass::Refused,
            ErrorClass::Grant,
            ErrorClass::Store,
        ];
        for (i, class) in classes.into_iter().enumerate() {
            for _ in 0..=i {
                s.error(class, &"test");
            }
        }
        let want = [
            ("rd_req", 1),
            ("wr_req", 2),
            ("f_req", 3),
            ("ds_req", 4),
            ("oo_req", 5),
            ("rd_sect", 6),
            ("wr_sect", 7),
            ("event_holds", 8),
            ("errors", 21),
            ("err_invalid", 1),
            ("err_unsupported", 2),
            ("err_range", 3),
            ("err_refused", 4),
            ("err_grant", 5),
            ("err_store", 6),
        ];
        assert_eq!(s.fields(), want);
    }
}
