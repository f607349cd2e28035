//! The domain's `data/` area (`/local/domain/<domid>/data/`, writable by the domain itself):
//! where a driver domain tells dom0 how it is doing — `data/ready` (see
//! [`crate::executor::READY_KEY`]), one-off facts ([`write_key`]: `data/uplink`, `data/ip`)
//! and counters ([`CounterPublisher`]: per device, like netback's `data/vif/<fe>/<devid>/`
//! and blkback's `data/vbd/<fe>/<devid>/`, or the domain's `data/status/`).
//!
//! A backend device's counters take three calls, the same in every backend:
//! [`CounterPublisher::for_device`] in its probe, [`CounterPublisher::publish_device`] in its
//! poll (and, after [`CounterPublisher::due_now`], in its disconnect for the final values),
//! [`CounterPublisher::remove`] in its [`BackendDevice::removed`] hook.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use log::warn;

use crate::platform::{DomId, Platform};
#[cfg(doc)]
use crate::xenbus::BackendDevice;
use crate::xenbus::DeviceCtx;
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

    /// A backend device's counters, in `data/<kind>/<frontend-id>/<devid>/` of our domain
    /// (`data/vif/5/0/`, `data/vbd/5/51712/`), written at most every `interval_ms` (0: never).
    pub fn for_device<P: Platform>(ctx: &DeviceCtx<'_, P>, interval_ms: u64) -> Self {
        let id = ctx.id;
        let key = format!("{}/{}/{}", id.kind, id.frontend_id, id.devid);
        Self::new(path(ctx.platform.domid(), &key), interval_ms)
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

    /// [`publish`](Self::publish) from a device hook, at the pass's time: a change that
    /// must wait for the interval asks for the device to be polled again when it has passed,
    /// so the last change before a device goes idle is published too.
    pub fn publish_device<P: Platform>(
        &mut self,
        ctx: &mut DeviceCtx<'_, P>,
        values: &[(&str, u64)],
    ) -> Published {
        let now = ctx.now_ns();
        let published = self.publish(ctx.xs, now, values);
        if let Published::NotYet(due) = published {
            ctx.wake_at(due);
        }
        published
    }

    /// Removes the directory (the device is going away; a directory that is already gone
    /// is fine). The next publication writes every value again.
    pub fn remove<S: Store + ?Sized>(&mut self, xs: &mut S) {
        if !self.enabled() {
            return; // Nothing was written.
        }
        if let Err(e) = xs.rm(&self.dir) {
            if !e.is_enoent() {
                warn!("cannot remove {}: {e}", self.dir);
            }
        }
        self.last = None;
        self.due = 0;
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

    #[test]
    fn device_counters_wake_the_device_and_go_with_it() {
        use crate::xenbus::DeviceId;
        let world = World::new();
        let dd = world.create_domain(1, "dd");
        let mut xs = dd.xenstore();
        let id = DeviceId {
            kind: "vbd".into(),
            frontend_id: 5,
            devid: 51712,
            backend_path: "/local/domain/1/backend/vbd/5/51712".into(),
            frontend_path: "/local/domain/5/device/vbd/51712".into(),
        };
        let (mut wake, mut publish) = (None, Vec::new());
        let now = world.now_ns();
        let due = now + 1_000_000_000;
        let dir = String::from("/local/domain/1/data/vbd/5/51712");
        let mut p = {
            let mut ctx = DeviceCtx::new(&dd, &mut xs, &id, &mut wake, &mut publish);
            let mut p = CounterPublisher::for_device(&ctx, 1000);
            assert_eq!(p.dir(), dir);
            assert_eq!(p.publish_device(&mut ctx, &[("a", 1)]), Published::Written);
            assert_eq!(
                p.publish_device(&mut ctx, &[("a", 2)]),
                Published::NotYet(due)
            );
            p
        };
        assert_eq!(wake, Some(due), "polled again when the change may go out");
        assert_eq!(world.read_str(&format!("{dir}/a")).as_deref(), Some("1"));
        p.remove(&mut xs);
        assert!(!world.exists(&dir));
        p.remove(&mut xs); // Already gone: fine.
                           // Published again (whole) if the device came back.
        assert_eq!(p.publish(&mut xs, now, &[("a", 2)]), Published::Written);
        assert_eq!(world.read_str(&format!("{dir}/a")).as_deref(), Some("2"));
        let mut off = CounterPublisher::new(path(1, "off"), 0);
        off.remove(&mut xs);
    }
}
