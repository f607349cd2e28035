//! Per-device counters. Hot paths count; errors a guest causes go to a
//! [`minios::error_log::ErrorLog`] (the first of each class logged with its reason, later
//! ones only counted). The backend publishes [`Stats::fields`] under
//! `data/vsnd/<frontend-id>/<devid>/` (see the README) and logs them at disconnect.

use alloc::string::String;
use core::fmt;

use minios::error_log::ErrorLog;

/// Classes of refused requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// A request that makes no sense now (trigger before open, write on a capture
    /// stream, bad trigger type, bad volume values).
    Invalid,
    /// An operation this backend does not know (`-EOPNOTSUPP`).
    Unsupported,
    /// Parameters outside the stream's offer (`OPEN`, `HW_PARAM_QUERY`).
    Refused,
    /// A page directory or buffer page that could not be used.
    Buffer,
    /// An offset and length beyond the buffer.
    Range,
    /// More bytes written than the stream's buffer holds.
    Overflow,
    /// An OPEN the card's policy does not allow ([`crate::policy`]).
    Denied,
}

const CLASSES: usize = 7;

const CLASS_NAMES: [&str; CLASSES] = [
    "invalid request",
    "unsupported operation",
    "refused parameters",
    "bad buffer",
    "out of range",
    "overflow",
    "denied by policy",
];

const CLASS_KEYS: [&str; CLASSES] = [
    "err_invalid",
    "err_unsupported",
    "err_refused",
    "err_buffer",
    "err_range",
    "err_overflow",
    "err_denied",
];

/// Keys published per device.
pub const FIELDS: usize = 9 + CLASSES;

/// Counters of one device (all its streams).
#[derive(Clone, Debug)]
pub struct Stats {
    /// Requests taken from the rings.
    pub requests: u64,
    /// Successful OPENs.
    pub opens: u64,
    /// Bytes the guest played (accepted WRITEs).
    pub bytes_played: u64,
    /// Bytes the guest recorded (READs).
    pub bytes_recorded: u64,
    /// Position events written.
    pub events: u64,
    /// Position events dropped (event ring full).
    pub events_dropped: u64,
    /// Periods in which a playing stream ran out of data (summed over its opens).
    pub underruns: u64,
    /// READs that found fewer captured bytes than asked (the rest is silence).
    pub short_reads: u64,
    /// Times one of the streams' event channels was held back for an event storm
    /// ([`minios::event_throttle`]).
    pub event_holds: u64,
    errors: ErrorLog<CLASSES>,
}

impl Stats {
    /// Counters of the device `label` (`vsnd 5/0`).
    pub fn new(label: String) -> Self {
        Self {
            requests: 0,
            opens: 0,
            bytes_played: 0,
            bytes_recorded: 0,
            events: 0,
            events_dropped: 0,
            underruns: 0,
            short_reads: 0,
            event_holds: 0,
            errors: ErrorLog::new(module_path!(), label, CLASS_NAMES, ""),
        }
    }

    /// The device's log prefix.
    pub fn label(&self) -> &str {
        self.errors.label()
    }

    /// Counts (and, first of its class, logs) a refused request.
    pub fn error(&mut self, class: ErrorClass, why: &dyn fmt::Display) {
        self.errors.record(class as usize, why);
    }

    /// Refused requests of `class`.
    pub fn errors(&self, class: ErrorClass) -> u64 {
        self.errors.count(class as usize)
    }

    /// The values published in xenstore, by key.
    pub fn fields(&self) -> [(&'static str, u64); FIELDS] {
        let e = |c: usize| (CLASS_KEYS[c], self.errors.count(c));
        [
            ("requests", self.requests),
            ("opens", self.opens),
            ("bytes_played", self.bytes_played),
            ("bytes_recorded", self.bytes_recorded),
            ("events", self.events),
            ("events_dropped", self.events_dropped),
            ("underruns", self.underruns),
            ("short_reads", self.short_reads),
            ("event_holds", self.event_holds),
            e(0),
            e(1),
            e(2),
            e(3),
            e(4),
            e(5),
            e(6),
        ]
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests, {} opens, {} bytes played, {} recorded, {} events ({} dropped), {} underruns",
            self.requests,
            self.opens,
            self.bytes_played,
            self.bytes_recorded,
            self.events,
            self.events_dropped,
            self.underruns
        )?;
        if self.errors.total() > 0 {
            write!(f, "; refused: {}", self.errors)?;
        }
        Ok(())
    }
}
