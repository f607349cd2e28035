//! Log-once error accounting for one device: a hostile guest cannot flood the console.
//!
//! Every error is counted in its class; the first of each class is logged with its reason
//! (`vbd 5/51712 (vol1): bad grant: … (further ones only counted)`), later ones only counted.
//! The backend shows the totals where it shows its counters (a log line at disconnect,
//! `data/` keys). Each backend names its classes; the log target is the backend's module, so
//! its lines read as the backend's own.
//!
//! Events that are each worth a line but may come in bursts (a driver's timed-out commands,
//! their late answers) are thinned instead ([`worth_logging`]): the first [`THIN_AFTER`] one
//! by one, then every power of two, each line with the count so far.

use alloc::string::String;
use core::fmt;

/// Error counts of one device by class, logging the first of each.
#[derive(Clone, Debug)]
pub struct ErrorLog<const N: usize> {
    target: &'static str,
    label: String,
    classes: [&'static str; N],
    counted: &'static str,
    counts: [u64; N],
}

impl<const N: usize> ErrorLog<N> {
    /// Errors of the device `label` (the prefix of its log lines), in `classes` (names as
    /// logged), logged with `target` (the backend's `module_path!()`). `counted` says where
    /// later ones show (`"in tx-errors"`; empty: nowhere in particular).
    pub fn new(
        target: &'static str,
        label: String,
        classes: [&'static str; N],
        counted: &'static str,
    ) -> Self {
        Self {
            target,
            label,
            classes,
            counted,
            counts: [0; N],
        }
    }

    /// The device's log prefix.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Counts an error of class `class` (an index into the classes); logs it with `why` if
    /// it is the first of its class. Returns whether it was logged.
    pub fn record(&mut self, class: usize, why: &dyn fmt::Display) -> bool {
        let Some(n) = self.counts.get_mut(class) else {
            return false;
        };
        *n += 1;
        if *n != 1 {
            return false;
        }
        let sep = if self.counted.is_empty() { "" } else { " " };
        log::warn!(
            target: self.target,
            "{}: {}: {why} (further ones only counted{sep}{})",
            self.label,
            self.classes[class],
            self.counted
        );
        true
    }

    /// Errors of class `class` so far.
    pub fn count(&self, class: usize) -> u64 {
        self.counts.get(class).copied().unwrap_or(0)
    }

    /// Errors of every class so far.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl<const N: usize> fmt::Display for ErrorLog<N> {
    /// The non-zero classes: `bad grant 3 out of range 1` (empty when there were none).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, n) in self.classes.iter().zip(self.counts) {
            if n > 0 {
                write!(f, "{}{name} {n}", if first { "" } else { " " })?;
                first = false;
            }
        }
        Ok(())
    }
}

/// Repeated events logged one by one before [`worth_logging`] thins them out.
pub const THIN_AFTER: u64 = 8;

/// Whether the `n`th (1-based) of a repeated event gets its own log line: the first
/// [`THIN_AFTER`], then only every power of two (the 16th, 32nd, 64th, …), so a burst logs
/// a handful of lines and a steady stream ever fewer. The caller counts every event and puts
/// the count in the lines it logs.
pub fn worth_logging(n: u64) -> bool {
    n <= THIN_AFTER || n.is_power_of_two()
}

/// What the line of the `n`th event adds to say that thinning starts after it: a note for
/// the [`THIN_AFTER`]th, nothing for the others.
pub fn thinning_note(n: u64) -> &'static str {
    if n == THIN_AFTER {
        "; from now on only every power of two is logged"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn first_of_each_class_is_logged_all_are_counted() {
        let mut log = ErrorLog::new("t", "dev 1/0".into(), ["bad", "worse"], "");
        assert!(log.record(0, &"one"));
        assert!(!log.record(0, &"two"));
        assert!(log.record(1, &"three"));
        assert!(!log.record(7, &"no such class"));
        assert_eq!((log.count(0), log.count(1), log.total()), (2, 1, 3));
        assert_eq!(format!("{log}"), "bad 2 worse 1");
        let quiet = ErrorLog::new("t", "dev".into(), ["bad"], "in errors");
        assert_eq!(format!("{quiet}"), "");
    }

    #[test]
    fn repeated_events_are_logged_one_by_one_then_thinned() {
        let logged: alloc::vec::Vec<u64> = (1..=1100).filter(|&n| worth_logging(n)).collect();
        assert_eq!(
            logged,
            [1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64, 128, 256, 512, 1024]
        );
        assert!(worth_logging(1 << 40) && !worth_logging((1 << 40) + 1));
        assert!(!worth_logging(u64::MAX), "no overflow");
        // The last line logged one by one says that thinning starts; no other line does.
        let noted: alloc::vec::Vec<u64> = (1..=1100)
            .filter(|&n| !thinning_note(n).is_empty())
            .collect();
        assert_eq!(noted, [THIN_AFTER]);
        assert!(thinning_note(THIN_AFTER).contains("every power of two"));
    }
}
