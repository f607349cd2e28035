//! Per-controller counters. Hot paths count; refused URBs go to a
//! [`minios::error_log::ErrorLog`] (the first of each class logged with its reason, later
//! ones only counted). The backend publishes [`Stats::fields`] in xenstore
//! (`data/vusb/<frontend-id>/<devid>/`, see the README) and logs the totals at disconnect.

use alloc::string::String;
use core::fmt;

use minios::error_log::ErrorLog;

/// Classes of refused or failed URBs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Malformed request (segments, lengths, setup packet, iso counts, duplicate id).
    Invalid,
    /// The pipe names a port beyond `num-ports`, an empty port or an unknown address.
    NoDevice,
    /// The pipe names an endpoint the device does not have (or of another type).
    Endpoint,
    /// Unlink of a request that is not in flight.
    Unlink,
    /// A data grant could not be used.
    Grant,
    /// Not representable: SuperSpeed devices, high speed on a USB 1.1 controller.
    Unsupported,
    /// The controller refused the transfer.
    Host,
}

const CLASSES: usize = 7;

const CLASS_NAMES: [&str; CLASSES] = [
    "invalid request",
    "no such device",
    "no such endpoint",
    "unlink of an unknown request",
    "bad grant",
    "unsupported device",
    "controller refused",
];

const CLASS_KEYS: [&str; CLASSES] = [
    "err_invalid",
    "err_nodev",
    "err_endpoint",
    "err_unlink",
    "err_grant",
    "err_unsupported",
    "err_host",
];

/// Keys published per controller: [`Stats::fields`].
pub const FIELDS: usize = 14 + CLASSES;

/// Counters of one virtual controller.
#[derive(Clone, Debug)]
pub struct Stats {
    /// URB requests taken from the ring (unlinks included).
    pub requests: u64,
    /// Control transfers started.
    pub control: u64,
    /// Bulk transfers started.
    pub bulk: u64,
    /// Interrupt transfers started.
    pub interrupt: u64,
    /// Isochronous transfers started.
    pub isochronous: u64,
    /// `SET_ADDRESS` requests answered by the backend.
    pub set_address: u64,
    /// Unlinks that cancelled a transfer.
    pub unlinks: u64,
    /// Unlinks that crossed their request's answer (answered OK, nothing to cancel).
    pub late_unlinks: u64,
    /// Bytes delivered to the guest (IN).
    pub bytes_in: u64,
    /// Bytes sent to devices (OUT).
    pub bytes_out: u64,
    /// Port changes announced on the conn ring.
    pub announcements: u64,
    /// Times the event channel was held back for an event storm
    /// ([`minios::event_throttle`]).
    pub event_holds: u64,
    /// URBs answered after their transfer ended on the controller.
    pub answered: u64,
    /// Sum over [`answered`](Self::answered) URBs of the time from taking the request off the
    /// ring to putting its answer on it, in microseconds (the device's time included).
    pub held_us: u64,
    /// Refused or failed URBs per class.
    pub errors: ErrorLog<CLASSES>,
}

impl Stats {
    /// Counters for a controller, logging as `label`.
    pub fn new(label: String) -> Self {
        Self {
            requests: 0,
            control: 0,
            bulk: 0,
            interrupt: 0,
            isochronous: 0,
            set_address: 0,
            unlinks: 0,
            late_unlinks: 0,
            bytes_in: 0,
            bytes_out: 0,
            announcements: 0,
            event_holds: 0,
            answered: 0,
            held_us: 0,
            errors: ErrorLog::new(module_path!(), label, CLASS_NAMES, ""),
        }
    }

    /// The log prefix (`vusb 5/0`).
    pub fn label(&self) -> &str {
        self.errors.label()
    }

    /// Counts a refused URB; logs the first of its class with the reason.
    pub fn error(&mut self, class: ErrorClass, why: &dyn fmt::Display) {
        self.errors.record(class as usize, why);
    }

    /// Errors of one class so far.
    pub fn errors_of(&self, class: ErrorClass) -> u64 {
        self.errors.count(class as usize)
    }

    /// `(key, value)` pairs as published in xenstore.
    pub fn fields(&self) -> [(&'static str, u64); FIELDS] {
        let mut out = [("", 0); FIELDS];
        let common = [
            ("urbs", self.requests),
            ("ctrl", self.control),
            ("bulk", self.bulk),
            ("intr", self.interrupt),
            ("isoc", self.isochronous),
            ("unlinks", self.unlinks),
            ("late_unlinks", self.late_unlinks),
            ("bytes_in", self.bytes_in),
            ("bytes_out", self.bytes_out),
            ("port_changes", self.announcements),
            ("event_holds", self.event_holds),
            ("answered", self.answered),
            ("held_us", self.held_us),
            ("errors", self.errors.total()),
        ];
        out[..common.len()].copy_from_slice(&common);
        for (i, key) in CLASS_KEYS.iter().enumerate() {
            out[common.len() + i] = (key, self.errors.count(i));
        }
        out
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} URBs ({} control, {} bulk, {} interrupt, {} isochronous, {} addresses set, {} \
             unlinked), {} B in, {} B out, {} port changes",
            self.requests,
            self.control,
            self.bulk,
            self.interrupt,
            self.isochronous,
            self.set_address,
            self.unlinks,
            self.bytes_in,
            self.bytes_out,
            self.announcements
        )?;
        if self.late_unlinks > 0 {
            write!(f, ", {} unlinks after the answer", self.late_unlinks)?;
        }
        if self.event_holds > 0 {
            write!(f, ", event channel held back {} times", self.event_holds)?;
        }
        if self.errors.total() > 0 {
            write!(f, ", errors: {}", self.errors)?;
        }
        Ok(())
    }
}
