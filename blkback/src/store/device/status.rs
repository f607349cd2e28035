//! The owned device's counters ([`DeviceStats`]) in the driver domain's `data/status/`
//! (`/local/domain/<dd>/data/status/device-requests`, …), beside the per-vbd counters: at
//! most every `blkback.stats_ms` while they change, only the keys that changed
//! ([`CounterPublisher`], as netback's `data/status/`), and once more at the stop with the
//! final values (the final flush included). What each key means: the README's Counters.

use minios::data_area::{self, CounterPublisher, Published};
use minios::executor::{Ctx, Task};
use minios::platform::{DomId, Platform};
use minios::xenstore::Store;

use super::{DeviceStats, Shared, QUEUE_COUNTS};

/// The keys of the device as a whole, in [`fields`] order.
const DEVICE_KEYS: [&str; 12] = [
    "device-requests",
    "device-flushes",
    "device-discards",
    "device-errors",
    "device-timeouts",
    "device-busy",
    "device-capped",
    "device-max-in-flight",
    "device-direct",
    "device-direct-kib",
    "device-copied",
    "device-queues",
];

/// The per-queue keys, by the store's queue index (NVMe: I/O queue pair `n + 1`).
const QUEUE_KEYS: [&str; QUEUE_COUNTS] = [
    "device-queue-0-requests",
    "device-queue-1-requests",
    "device-queue-2-requests",
    "device-queue-3-requests",
    "device-queue-4-requests",
    "device-queue-5-requests",
    "device-queue-6-requests",
    "device-queue-7-requests",
];

/// Most keys published: the device's and one per queue counted apart.
pub const MAX_FIELDS: usize = DEVICE_KEYS.len() + QUEUE_COUNTS;

/// `st` as published: `(key, value)` pairs, of which the first `n` (returned beside) are
/// used: the device's keys, then `device-queue-<n>-requests` for each of its queues (at
/// most [`QUEUE_COUNTS`]). Fixed-size, so a pass gathers them without allocating.
pub fn fields(st: &DeviceStats) -> ([(&'static str, u64); MAX_FIELDS], usize) {
    let device = [
        st.requests,
        st.flushes,
        st.discards,
        st.errors,
        st.timeouts,
        st.busy,
        st.capped,
        st.max_in_flight as u64,
        st.direct,
        st.direct_bytes / 1024,
        st.copied,
        st.queues as u64,
    ];
    let mut out = [("", 0); MAX_FIELDS];
    for (slot, pair) in out.iter_mut().zip(DEVICE_KEYS.into_iter().zip(device)) {
        *slot = pair;
    }
    let queues = st.queues.clamp(1, QUEUE_COUNTS);
    for (slot, pair) in out[DEVICE_KEYS.len()..]
        .iter_mut()
        .zip(QUEUE_KEYS.into_iter().zip(st.per_queue).take(queues))
    {
        *slot = pair;
    }
    (out, DEVICE_KEYS.len() + queues)
}

/// The executor task that publishes the device store's counters in `data/status/` (spawn
/// it after the [`DeviceTask`](super::DeviceTask), so a pass publishes what that pass
/// counted); [`publish_final`](Self::publish_final) at the stop.
pub struct DeviceStatus {
    store: Shared,
    publisher: CounterPublisher,
}

impl DeviceStatus {
    /// Publishes `store`'s counters in `data/status/` of domain `domid`, at most every
    /// `interval_ms` (0: never).
    pub fn new(store: Shared, domid: DomId, interval_ms: u64) -> Self {
        Self {
            store,
            publisher: CounterPublisher::new(data_area::path(domid, "status"), interval_ms),
        }
    }

    /// Writes the counters that changed, if the interval has passed at `now_ns`.
    pub fn publish<S: Store + ?Sized>(&mut self, xs: &mut S, now_ns: u64) -> Published {
        if !self.publisher.enabled() {
            return Published::Unchanged;
        }
        let st = self.store.borrow().stats;
        let (values, n) = fields(&st);
        self.publisher.publish(xs, now_ns, &values[..n])
    }

    /// Writes the counters that changed at once, whatever the interval (at the stop, after
    /// the final flush: the final values).
    pub fn publish_final<S: Store + ?Sized>(&mut self, xs: &mut S, now_ns: u64) {
        self.publisher.due_now();
        self.publish(xs, now_ns);
    }
}

impl<P: Platform> Task<P> for DeviceStatus {
    fn poll(&mut self, cx: &mut Ctx<'_, P>) {
        // The last change before the device goes idle is published too.
        if let Published::NotYet(at) = self.publish(cx.xs, cx.now_ns()) {
            cx.wake_at(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_name_the_right_counters() {
        let mut st = DeviceStats {
            requests: 1,
            flushes: 2,
            discards: 3,
            errors: 4,
            timeouts: 5,
            busy: 6,
            capped: 7,
            max_in_flight: 8,
            direct: 9,
            direct_bytes: 10 * 1024 + 1023,
            copied: 11,
            queues: 3,
            per_queue: [12, 13, 14, 99, 99, 99, 99, 99],
        };
        let (values, n) = fields(&st);
        let want = [
            ("device-requests", 1),
            ("device-flushes", 2),
            ("device-discards", 3),
            ("device-errors", 4),
            ("device-timeouts", 5),
            ("device-busy", 6),
            ("device-capped", 7),
            ("device-max-in-flight", 8),
            ("device-direct", 9),
            ("device-direct-kib", 10),
            ("device-copied", 11),
            ("device-queues", 3),
            ("device-queue-0-requests", 12),
            ("device-queue-1-requests", 13),
            ("device-queue-2-requests", 14),
        ];
        assert_eq!(&values[..n], &want);
        // More queues than are counted apart: the last key counts the rest.
        st.queues = 10;
        let (values, n) = fields(&st);
        assert_eq!(n, MAX_FIELDS);
        assert_eq!(values[n - 1], ("device-queue-7-requests", 99));
        assert_eq!(values[11], ("device-queues", 10));
    }
}
