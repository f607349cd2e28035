//! The owned device on the executor: the task that takes its completions whenever it
//! interrupts (every pass: the device's event wakes the domain) or a request of it is due to
//! time out, and the final flush at the stop.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use minios::executor::{Ctx, Task};
use minios::platform::Platform;

use super::{DeviceStore, Shared};
use crate::store::{DataPort, Io, Started, StoreError};

/// The executor task that takes the device's completions on every pass (spawn it after the
/// backend), so devices see their completions and waiting handles get room.
pub struct DeviceTask {
    store: Shared,
}

impl DeviceTask {
    /// A task for `store`.
    pub fn new(store: Shared) -> Self {
        Self { store }
    }
}

impl<P: Platform> Task<P> for DeviceTask {
    fn poll(&mut self, cx: &mut Ctx<'_, P>) {
        let mut s = self.store.borrow_mut();
        s.pump();
        // A device's poll earlier in this pass may have taken completions for another, and
        // freed room a waiting device needs: both are handled in another pass.
        if s.take_progress() || s.has_queued() {
            cx.wake_now();
        }
        // A device that stops answering raises no interrupt: its request timeouts must
        // still fire.
        if let Some(deadline) = s.device_deadline() {
            cx.wake_at(deadline);
        }
    }
}

/// A port with no data (the final flush).
struct NoData;

impl DataPort for NoData {
    fn gather(&mut self, _pos: usize, _bufs: &mut [&mut [u8]]) -> Result<(), StoreError> {
        Ok(())
    }
    fn scatter(&mut self, _pos: usize, _bufs: &[&[u8]]) -> Result<(), StoreError> {
        Ok(())
    }
}

impl DeviceStore {
    /// Waits (until `deadline_ns`) for everything in flight, then flushes the device (at
    /// the stop).
    pub fn shutdown<P: Platform>(store: &Shared, platform: &P, deadline_ns: u64) {
        let h = store.borrow_mut().open_handle();
        let mut flushed = None;
        let mut started = false;
        while flushed.is_none() && platform.now_ns() < deadline_ns {
            let mut s = store.borrow_mut();
            s.pump();
            if !started && s.in_flight() == 0 {
                started = true;
                match s.start(h, 0, Io::Flush, &mut NoData) {
                    Started::Pending => {}
                    Started::Done(r) => flushed = Some(r),
                    Started::Busy => flushed = Some(Err(StoreError::Device("busy".into()))),
                }
                continue;
            }
            if let Some(c) = s.handles.get_mut(&h).and_then(|st| st.done.pop_front()) {
                flushed = Some(c.result);
            } else {
                drop(s);
                platform.wait(Some(deadline_ns));
            }
        }
        let st = store.borrow().stats;
        let per_queue: Vec<String> = st.per_queue[..st.queues.min(st.per_queue.len())]
            .iter()
            .map(|n| format!("{n}"))
            .collect();
        log::info!(
            "device: {} queue(s), requests by queue {}",
            st.queues,
            per_queue.join(" ")
        );
        log::info!(
            "device: {} requests ({} flushes, {} discards), {} failed ({} timed out), at most {} in flight, {} times out of room, {} times a guest held its share; {} reads/writes direct to/from guest pages ({} KiB), {} copied",
            st.requests,
            st.flushes,
            st.discards,
            st.errors,
            st.timeouts,
            st.max_in_flight,
            st.busy,
            st.capped,
            st.direct,
            st.direct_bytes / 1024,
            st.copied
        );
        match flushed {
            Some(Ok(())) => log::info!("device flushed"),
            Some(Err(e)) => log::warn!("device: final flush failed: {e}"),
            None => log::warn!("device: final flush timed out"),
        }
        store.borrow_mut().close_handle(h);
    }
}
