//! The driver domain's own status under `data/status/`: what the mixer has done with the
//! sound device, beside the per-card counters the backend publishes for each guest.
//!
//! `periods-played` and `periods-recorded` count device periods; `device-underruns` counts
//! the times the device played silence because the mixer was late (the driver domain did
//! not run in time), which the per-card `underruns` (a guest that was late) do not show;
//! `mixer-late-max-us` is the latest the mixer ran after the time it asked for (what the
//! device's queue of periods must cover); `capture-stalls` counts the times the capture
//! device's position stood still while recording and `capture-stall-frames` the frames of
//! silence recorded in its place ([`crate::device::ring::RingSource`]);
//! `capture-overruns` counts the times the capture device dropped recorded frames because
//! the mixer did not read them in time (the driver domain late, as for `device-underruns`);
//! `capture-bad-positions` and `playback-bad-positions` count the positions the devices
//! reported outside their rings, which were ignored.

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
            ("capture-overruns", st.capture_overruns),
            ("capture-bad-positions", st.capture_bad_positions),
            ("playback-bad-positions", st.playback_bad_positions),
        ];
        // The last change before the mixer goes idle is published too.
        if let Published::NotYet(at) = publisher.publish(cx.xs, cx.now_ns(), &values) {
            cx.wake_at(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{DeviceParams, PcmSink, PcmSource};
    use crate::mixer::Engine;
    use alloc::boxed::Box;
    use alloc::format;
    use minios::executor::Executor;
    use minios::host::World;

    const P: DeviceParams = DeviceParams {
        rate: 1000,
        channels: 2,
        period_frames: 8,
    };

    /// A device that never runs and reports fixed counters: its own number plus 1, 2, …
    struct Counted(u64);

    impl PcmSink for Counted {
        fn params(&self) -> DeviceParams {
            P
        }
        fn start(&mut self, _: u64) {}
        fn stop(&mut self) {}
        fn running(&self) -> bool {
            false
        }
        fn writable(&mut self, _: u64) -> usize {
            0
        }
        fn queued(&mut self, _: u64) -> usize {
            0
        }
        fn write(&mut self, _: &[i16]) {}
        fn position(&mut self, _: u64) -> u64 {
            0
        }
        fn next_space_ns(&mut self, _: u64) -> Option<u64> {
            None
        }
        fn underruns(&self) -> u64 {
            self.0 + 1
        }
        fn bad_positions(&self) -> u64 {
            self.0 + 2
        }
    }

    impl PcmSource for Counted {
        fn params(&self) -> DeviceParams {
            P
        }
        fn start(&mut self, _: u64) {}
        fn stop(&mut self) {}
        fn running(&self) -> bool {
            false
        }
        fn readable(&mut self, _: u64) -> usize {
            0
        }
        fn read(&mut self, _: u64, _: &mut [i16]) -> usize {
            0
        }
        fn next_data_ns(&mut self, _: u64) -> Option<u64> {
            None
        }
        fn stalls(&self) -> u64 {
            self.0 + 1
        }
        fn stall_frames(&self) -> u64 {
            self.0 + 2
        }
        fn overruns(&self) -> u64 {
            self.0 + 3
        }
        fn bad_positions(&self) -> u64 {
            self.0 + 4
        }
    }

    /// Every device counter lands under its own key.
    #[test]
    fn each_device_counter_is_published_under_its_key() {
        let world = World::new();
        let dd = world.create_domain(1, "snddd");
        let engine = Engine::new(Box::new(Counted(10)), Box::new(Counted(20)), 4).shared();
        let mut exec = Executor::new(dd.clone(), dd.xenstore());
        exec.spawn(EngineStatus::new(engine, 1000)).unwrap();
        minios::host::settle(&world, &mut [&mut exec]);
        let key = |k: &str| {
            world
                .read_str(&format!("/local/domain/1/data/status/{k}"))
                .and_then(|v| v.parse::<u64>().ok())
        };
        let want = [
            ("periods-played", 0),
            ("periods-recorded", 0),
            ("mixer-late-max-us", 0),
            ("device-underruns", 11),
            ("playback-bad-positions", 12),
            ("capture-stalls", 21),
            ("capture-stall-frames", 22),
            ("capture-overruns", 23),
            ("capture-bad-positions", 24),
        ];
        for (k, v) in want {
            assert_eq!(key(k), Some(v), "{k}");
        }
    }
}
