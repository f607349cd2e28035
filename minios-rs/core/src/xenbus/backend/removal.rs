//! Removal: the toolstack's `online` = 0 (wait for the frontend to close, state 6, remove
//! our directory a little later), and devices dropped when their directory goes.

use alloc::vec::Vec;

use log::{info, warn};

use super::super::{DeviceCtx, XenbusState};
use super::{dev_token, Backend, BackendDevice, BackendDriver, DeviceEntry, Removal};
use crate::executor::Ctx;
use crate::platform::{DomId, Platform};
use crate::xenstore::Store;

impl<P: Platform, D: BackendDriver<P>> Backend<P, D> {
    pub(super) fn begin_removal(&mut self, cx: &mut Ctx<'_, P>, key: (DomId, u32)) {
        let Some(mut slot) = self.slots.remove(&key) else {
            return;
        };
        if slot.removal == Removal::None {
            // libxl wrote state 5 itself.
            slot.state = XenbusState::Closing;
            if slot.connected {
                let deadline = cx.now_ns().saturating_add(self.config.close_grace_ns);
                slot.removal = Removal::WaitFrontend { deadline };
                info!(
                    "{}: removal requested, waiting for the frontend to close",
                    slot.id
                );
            } else {
                info!("{}: removal requested", slot.id);
                self.finish_close(cx, &mut slot);
            }
        }
        self.slots.insert(key, slot);
    }

    /// Disconnects, writes state 6 and schedules the directory's removal.
    pub(super) fn finish_close(&mut self, cx: &mut Ctx<'_, P>, slot: &mut DeviceEntry<D::Device>) {
        self.disconnect(cx, slot);
        // Written even if we believe it is already 6: libxl waits to see it.
        slot.state = XenbusState::Closing;
        self.set_state(cx, slot, XenbusState::Closed);
        let at = cx.now_ns().saturating_add(self.config.remove_delay_ns);
        slot.removal = Removal::Scheduled { at };
    }

    pub(super) fn remove_now(&mut self, cx: &mut Ctx<'_, P>, slot: DeviceEntry<D::Device>) {
        if let Err(e) = cx.xs.rm(&slot.id.backend_path) {
            warn!("{}: cannot remove {}: {e}", slot.id, slot.id.backend_path);
        }
        self.drop_device(cx, slot, "removed");
    }

    /// Forgets a device: disconnect, let it clean up ([`super::BackendDevice::removed`]),
    /// unwatch, remove its error node, drop it.
    pub(super) fn drop_device(
        &mut self,
        cx: &mut Ctx<'_, P>,
        mut slot: DeviceEntry<D::Device>,
        why: &str,
    ) {
        self.disconnect(cx, &mut slot);
        if let Some(dev) = slot.dev.as_mut() {
            let mut publish = Vec::new();
            let mut ctx = DeviceCtx::new(cx.platform, cx.xs, &slot.id, cx.wake, &mut publish);
            dev.removed(&mut ctx);
        }
        let token = dev_token(slot.id.frontend_id, slot.id.devid);
        // Fails harmlessly if the watch was never registered (probe failed).
        let _ = cx.unwatch(&token);
        let _ = cx.xs.rm(&self.error_node(&slot.id));
        self.stats.removals += 1;
        info!("{}: {why}", slot.id);
    }
}
