//! The backing disk on the executor: the task that takes dom0's responses every pass, and
//! the final flush and close at the stop.

use minios::executor::{Ctx, Task};
use minios::platform::Platform;
use minios::xenstore::Xenstore;

use super::{DiskStore, NoData, Shared};
use crate::store::{Io, Started, StoreError};

/// The executor task that takes the backing disk's responses on every pass (spawn it after
/// the backend), so devices see their completions and waiting handles get room.
pub struct DiskTask<P: Platform> {
    store: Shared<P>,
}

impl<P: Platform> DiskTask<P> {
    /// A task for `store`.
    pub fn new(store: Shared<P>) -> Self {
        Self { store }
    }
}

impl<P: Platform + Clone + 'static> Task<P> for DiskTask<P> {
    fn poll(&mut self, cx: &mut Ctx<'_, P>) {
        let mut s = self.store.borrow_mut();
        s.pump();
        // Any device's poll may have taken responses for another device polled earlier in
        // this pass, and freed room a waiting device needs: both are handled in another pass.
        if s.take_progress() || s.has_queued() {
            cx.wake_now();
        }
    }
}

impl<P: Platform + Clone> DiskStore<P> {
    /// Waits for everything in flight, flushes the disk and closes the device (at stop).
    pub fn shutdown(store: &Shared<P>, xs: &mut Xenstore<P::Xs>, deadline_ns: u64) {
        let platform = store.borrow().platform.clone();
        let h = store.borrow_mut().open_handle();
        let flushed = {
            let mut s = store.borrow_mut();
            let mut none = NoData;
            s.start(h, 0, Io::Flush, &mut none)
        };
        let mut flushed = match flushed {
            Started::Pending => None,
            Started::Done(r) => Some(r),
            Started::Busy => Some(Err(StoreError::Device("ring busy at shutdown".into()))),
        };
        while flushed.is_none() && platform.now_ns() < deadline_ns {
            let mut s = store.borrow_mut();
            s.pump();
            if let Some(c) = s.handles.get_mut(&h).and_then(|st| st.done.pop_front()) {
                flushed = Some(c.result);
            } else {
                drop(s);
                platform.wait(Some(deadline_ns));
            }
        }
        match flushed {
            Some(Ok(())) => log::info!("backing disk flushed"),
            Some(Err(e)) => log::warn!("backing disk: final flush failed: {e}"),
            None => log::warn!("backing disk: final flush timed out"),
        }
        let s = store.borrow();
        if let Err(e) = s.front.close(&platform, xs, deadline_ns) {
            log::warn!("backing disk: close: {e}");
        }
    }
}
