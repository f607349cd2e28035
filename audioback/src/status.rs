//! The driver domain's own status under `data/status/`: what the mixer has done with the
//! sound device, beside the per-card counters the backend publishes for each guest.
//!
//! `periods-played` and `periods-recorded` count device periods; `device-underruns` counts
//! the times the device played silence because the mixer was late (the driver domain did
//! not run in time), which the per-card `underruns` (a guest that was late) do not show;
//! `mixer-late-max-us` is the latest the mixer ran after the time it asked for (what the
//! device's queue of periods must cover); `capture-stalls` counts the times the capture
//! device's position stood still while recording and `capture-stall-frames` the frames of
//! silence recorded in its place ([`crate::device::ring::RingSource`]).

use minios::data_area::{self, CounterPublisher, Published};
use minios::executor::{Ctx, Task};
use minios::platform::Platform;

use crate::mixer::SharedEngine;

/// Publishes the mixer's counters, at most every `stats_ms`.
pub struct EngineStatus {
    engine: SharedEngine,
    publisher: Option<CounterPublisher>,
    interval_ms: u64,
}

impl EngineStatus {
    /// A task publishing `engine`'s counters at most every `interval_ms` (0: never).
    pub fn new(engine: SharedEngine, interval_ms: u64) -> Self {
        Self {
            engine,
            publisher: None,
            interval_ms,
        }
    }
}

impl<P: Platform> Task<P> for EngineStatus {
    fn poll(&mut self, cx: &mut Ctx<'_, P>) {
        let domid = cx.platform.domid();
        let interval = self.interval_ms;
        let publisher = self.publisher.get_or_insert_with(|| {
            CounterPublisher::new(data_area::path(domid, "status"), interval)
        });
        let Ok(engine) = self.engine.try_borrow() else {
            return;
        };
        let st = engine.stats();
        drop(engine);
        let values = [
            ("periods-played", st.periods_played),
            ("periods-recorded", st.periods_recorded),
            ("device-underruns", st.device_underruns),
            ("mixer-late-max-us", st.late_max_us),
            ("capture-stalls", st.capture_stalls),
            ("capture-stall-frames", st.capture_stall_frames),
        ];
        // The last change before the mixer goes idle is published too.
        if let Published::NotYet(at) = publisher.publish(cx.xs, cx.now_ns(), &values) {
            cx.wake_at(at);
        }
    }
}
