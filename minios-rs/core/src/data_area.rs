//! The domain's `data/` area (`/local/domain/<domid>/data/`, writable by the domain itself):
//! where a driver domain tells dom0 how it is doing — `data/ready` (see
//! [`crate::executor::READY_KEY`]), one-off facts ([`write_key`]: `data/uplink`, `data/ip`)
//! and counters ([`CounterPublisher`]: per device, like netback's `data/vif/<fe>/<devid>/`,
//! or the domain's `data/status/`).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use log::warn;

use crate::platform::DomId;
use crate::xenstore::{Store, XsError};

/// `/local/domain/<domid>/data/<key>`.
pub fn path(domid: DomId, key: &str) -> String {
    format!("/local/domain/{domid}/data/{key}")
}

/// Writes `data/<key>` = `value` (best effort: a failure is logged and otherwise ignored,
/// since nothing in the domain depends on it).
pub fn write_key<S: Store + ?Sized>(xs: &mut S, domid: DomId, key: &str, value: &str) {
    let path = path(domid, key);
    if let Err(e) = xs.write(&path, value.as_bytes()) {
        warn!("cannot publish {path}: {e}");
    }
}

/// What [`CounterPublisher::publish`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// Nothing changed since the last publication (or publishing is off).
    Unchanged,
    /// Something changed but the interval has not passed: call again at this time.
    NotYet(u64),
    /// The changed values were written.
    Written,
    /// A write failed (logged the first time); the next call tries again.
    Failed,
}

/// Publishes a fixed set of named counters as keys of one xenstore directory: at most once
/// per interval, only when something changed, and then only the keys that changed (every
/// xenstore write is a synchronous round trip that holds up the data path meanwhile).
#[derive(Clone, Debug)]
pub struct CounterPublisher {
    dir: String,
    interval_ns: u64,
    due: u64,
    last: Option<Vec<u64>>,
    warned: bool,
}

impl CounterPublisher {
    /// Counters under `dir`, written at most every `interval_ms` (0: never).
    pub fn new(dir: String, interval_ms: u64) -> Self {
        Self {
            dir,
            interval_ns: interval_ms.saturating_mul(1_000_000),
            due: 0,
            last: None,
            warned: false,
        }
    }

    /// The directory the counters go to.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// Whether counters are published at all (a non-zero interval).
    pub fn enabled(&self) -> bool {
        self.interval_ns != 0
    }

    /// Whether a publication at `now_ns` would write (publishing is on and the interval has
    /// passed): lets a caller skip gathering values that could not be written yet.
    pub fn is_due(&self, now_ns: u64) -> bool {
        self.enabled() && now_ns >= self.due
    }

    /// Lets the next [`publish`](Self::publish) write at once (a final publication).
    pub fn due_now(&mut self) {
        self.due = 0;
    }

    /// Writes the `values` that changed since the last publication, if the interval has
    /// passed at `now_ns`. `values` has the same names in the same order on every call.
    pub fn publish<S: Store + ?Sized>(
        &mut self,
        xs: &mut S,
        now_ns: u64,
        values: &[(&str, u64)],
    ) -> Published {
        if !self.enabled() {
            return Published::Unchanged;
        }
        let before = self.last.as_deref();
        if before.is_some_and(|b| b.iter().eq(values.iter().map(|(_, v)| v))) {
            return Published::Unchanged;
        }
        if now_ns < self.due {
            return Published::NotYet(self.due);
        }
        self.due = now_ns.saturating_add(self.interval_ns);
        for (i, (key, value)) in values.iter().enumerate() {
            if before.is_some_and(|b| b.get(i) == Some(value)) {
                continue;
            }
            let path = format!("{}/{key}", self.dir);
            if let Err(e) = xs.write(&path, format!("{value}").as_bytes()) {
                self.warn(&e);
                return Published::Failed;
            }
        }
        self.last = Some(values.iter().map(|(_, v)| *v).collect());
        Published::Written
    }

    fn warn(&mut self, e: &XsError) {
        if !core::mem::replace(&mut self.warned, true) && self.last.is_none() {
            warn!("cannot publish {}: {e}", self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::World;

    #[test]
    fn only_changes_and_only_per_interval() {
        let world = World::new();
        let dd = world.create_domain(1, "dd");
        let mut xs = dd.xenstore();
        let dir = path(1, "dev/0");
        let mut p = CounterPublisher::new(dir.clone(), 1000);
        let read = |k: &str| world.read_str(&format!("{dir}/{k}"));
        assert_eq!(
            p.publish(&mut xs, 0, &[("a", 1), ("b", 2)]),
            Published::Written
        );
        assert_eq!((read("a"), read("b")), (Some("1".into()), Some("2".into())));
        assert_eq!(
            p.publish(&mut xs, 5, &[("a", 1), ("b", 2)]),
            Published::Unchanged
        );
        assert_eq!(
            p.publish(&mut xs, 5, &[("a", 1), ("b", 3)]),
            Published::NotYet(1_000_000_000)
        );
        // Only the changed key is written: one removed behind our back stays removed.
        xs.rm(&format!("{dir}/a")).unwrap();
        assert_eq!(
            p.publish(&mut xs, 1_000_000_000, &[("a", 1), ("b", 3)]),
            Published::Written
        );
        assert_eq!((read("a"), read("b")), (None, Some("3".into())));
        let mut off = CounterPublisher::new(path(1, "off"), 0);
        assert_eq!(off.publish(&mut xs, 0, &[("a", 1)]), Published::Unchanged);
        assert_eq!(world.read_str(&path(1, "off/a")), None);
    }
}
