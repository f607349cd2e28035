//! The per-device state machine: frontend state changes, connect and disconnect, the
//! states we publish (each switch with its keys in one transaction), failures confined to
//! the device.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use log::{info, warn};

use super::super::{quote, DeviceCtx, DeviceError, DeviceId, XenbusState};
use super::state_limit::Episode;
use super::{Backend, BackendDevice, BackendDriver, DeviceEntry, Removal};
use crate::executor::Ctx;
use crate::platform::{DomId, Platform, XenErrno};
use crate::xenstore::{Event, Store, XsError};

/// A device's failures are logged at least this far apart, beyond the 1st, 2nd, 4th, 8th…
const FAIL_LOG_INTERVAL_NS: u64 = 1_000_000_000;
/// A device's state floods are logged at least this far apart, beyond the 1st, 2nd, 4th…
const FLOOD_LOG_INTERVAL_NS: u64 = 10_000_000_000;

impl<P: Platform, D: BackendDriver<P>> Backend<P, D> {
    /// Runs `f` on a probed, non-failed device with a fresh context; an error fails it.
    pub(super) fn with_device(
        &mut self,
        cx: &mut Ctx<'_, P>,
        key: (DomId, u32),
        f: impl FnOnce(&mut D::Device, &mut DeviceCtx<'_, P>) -> Result<(), DeviceError>,
    ) {
        let Some(mut slot) = self.slots.remove(&key) else {
            return;
        };
        if !slot.failed && slot.removal == Removal::None {
            if let Some(dev) = slot.dev.as_mut() {
                let mut publish = Vec::new();
                let mut ctx = DeviceCtx::new(cx.platform, cx.xs, &slot.id, cx.wake, &mut publish);
                if let Err(e) = f(dev, &mut ctx) {
                    self.fail(cx, &mut slot, e);
                }
            }
        }
        self.slots.insert(key, slot);
    }

    pub(super) fn frontend_event(&mut self, cx: &mut Ctx<'_, P>, key: (DomId, u32), event: &Event) {
        let Some(slot) = self.slots.get(&key) else {
            self.stats.ignored_events += 1;
            return;
        };
        if let Event::Fired(ev) = event {
            let fe_dir = &slot.id.frontend_path;
            if let Some(rest) = ev
                .path
                .strip_prefix(fe_dir.as_str())
                .and_then(|r| r.strip_prefix('/'))
            {
                if rest != "state" && !rest.starts_with("state/") {
                    let rest = String::from(rest);
                    if slot.connected {
                        self.with_device(cx, key, |dev, ctx| dev.frontend_changed(ctx, &rest));
                    }
                    return;
                }
            }
        }
        let Some(mut slot) = self.slots.remove(&key) else {
            return;
        };
        if self.admit_state_event(cx, &mut slot) {
            self.frontend_state_changed(cx, &mut slot);
        }
        if matches!(slot.removal, Removal::Scheduled { at } if at <= cx.now_ns()) {
            self.remove_now(cx, slot);
        } else {
            self.slots.insert(key, slot);
        }
    }

    /// Takes a turn of the device's state limit for a frontend state event. When the device
    /// has used up its burst, the event is deferred (counted) instead: the loop wakes when
    /// it is to be acted on ([`Self::act_on_deferred_state`]).
    fn admit_state_event(
        &mut self,
        cx: &mut Ctx<'_, P>,
        slot: &mut DeviceEntry<D::Device>,
    ) -> bool {
        let limits = self.config.state_limits;
        if slot.state_limit.admit(cx.now_ns(), &limits) {
            return true;
        }
        self.stats.deferred_events += 1;
        if slot.state_limit.deferred() == 1 {
            self.stats.state_floods += 1;
        }
        if let Some(at) = slot.state_limit.wake_at(&limits) {
            cx.wake_at(at);
        }
        false
    }

    /// A deferred frontend state event whose time has come: read the state the frontend is
    /// in now and act on it once. Reports a flood episode that ended, and asks to be woken
    /// for the device's next act or the end of its episode.
    pub(super) fn act_on_deferred_state(
        &mut self,
        cx: &mut Ctx<'_, P>,
        slot: &mut DeviceEntry<D::Device>,
    ) {
        let now = cx.now_ns();
        let limits = self.config.state_limits;
        if slot.state_limit.due(now, &limits) {
            slot.state_limit.take(now, &limits);
            self.frontend_state_changed(cx, slot);
        }
        if let Some(episode) = slot.state_limit.end_episode(now) {
            self.log_flood(now, slot, episode);
        }
        if let Some(at) = slot.state_limit.wake_at(&limits) {
            cx.wake_at(at);
        }
    }

    /// One line per flood episode, thinning out for a frontend that floods again and again
    /// (the 1st, 2nd, 4th, 8th… episode, and any at least [`FLOOD_LOG_INTERVAL_NS`] after
    /// the last one logged).
    fn log_flood(&mut self, now: u64, slot: &mut DeviceEntry<D::Device>, episode: Episode) {
        if !slot.flood_log.note(now, FLOOD_LOG_INTERVAL_NS) {
            return;
        }
        let l = &self.config.state_limits;
        warn!(
            "{}: frontend state flood #{}: {} state events deferred in {} ms (limit: {} at \
             once, then one when the state rests {} ms, one per {} ms while it never does); \
             acted on the state it ended in",
            slot.id,
            slot.flood_log.count,
            episode.deferred,
            now.saturating_sub(episode.since_ns) / 1_000_000,
            l.burst,
            l.interval_ns / 1_000_000,
            l.flood_interval_ns / 1_000_000,
        );
    }

    pub(super) fn frontend_state_changed(
        &mut self,
        cx: &mut Ctx<'_, P>,
        slot: &mut DeviceEntry<D::Device>,
    ) {
        if matches!(slot.removal, Removal::Scheduled { .. }) {
            return;
        }
        let path = format!("{}/state", slot.id.frontend_path);
        let fe_state = match cx.xs.read_opt(&path) {
            Ok(None) => XenbusState::Unknown, // frontend directory gone
            Ok(Some(raw)) => match XenbusState::parse(&raw) {
                Ok(s) => s,
                Err(e) => {
                    let reason = format!("frontend state {}: {e}", quote(&raw));
                    return self.fail(cx, slot, DeviceError::protocol(reason));
                }
            },
            // A destroyed guest: below a vanished /local/domain/<fe> xenstored answers
            // EACCES, not ENOENT. When the frontend directory itself cannot be read either,
            // the frontend is gone (or hides everything, which ends the same way); only a
            // frontend hiding just its state node has failed.
            Err(e) => match cx.xs.read_opt(&slot.id.frontend_path) {
                Ok(Some(_)) => {
                    return self.fail(cx, slot, DeviceError::from(e).context("frontend state"));
                }
                Ok(None) | Err(_) => XenbusState::Unknown,
            },
        };
        if let Removal::WaitFrontend { .. } = slot.removal {
            if !matches!(fe_state, XenbusState::Initialised | XenbusState::Connected) {
                self.finish_close(cx, slot);
            }
            return;
        }
        // Act on transitions only: rewriting the same state (or events on other nodes) costs
        // one read, and a failed device is not retried until the frontend moves.
        let prev = slot.last_fe.replace(fe_state);
        if prev == Some(fe_state) {
            return;
        }
        use XenbusState::*;
        match fe_state {
            Unknown => {
                self.disconnect(cx, slot);
                self.set_state(cx, slot, Closed);
            }
            Initialising => {
                // The frontend starts (over). On first sight of a device that already failed,
                // wait for the frontend to close instead.
                if slot.state != InitWait && (prev.is_some() || !slot.failed) {
                    self.restart(cx, slot);
                }
            }
            Initialised | Connected => {
                if slot.failed || slot.connected {
                    if slot.failed {
                        self.stats.ignored_events += 1;
                    }
                    return;
                }
                if matches!(slot.state, Closed | Closing) {
                    // Reconnect with Initialising skipped, or with the frontend's Closed and
                    // Initialising missed: we read the state when we get to a watch event, and
                    // a frontend that closes and starts over quickly can be Connected by then.
                    self.restart(cx, slot);
                    if slot.failed {
                        return;
                    }
                }
                self.connect(cx, slot);
            }
            Closing => {
                self.disconnect(cx, slot);
                if slot.state != Closed {
                    self.set_state(cx, slot, Closing);
                }
            }
            Closed => {
                self.disconnect(cx, slot);
                self.set_state(cx, slot, Closed);
                slot.failed = false;
                let online = cx.xs.read_opt(&format!("{}/online", slot.id.backend_path));
                if matches!(online, Ok(Some(v)) if v == b"0") {
                    self.finish_close(cx, slot);
                }
            }
            InitWait | Reconfiguring | Reconfigured => self.stats.ignored_events += 1,
        }
    }

    /// The frontend starts over: clear a failure, make sure we have a device, InitWait.
    pub(super) fn restart(&mut self, cx: &mut Ctx<'_, P>, slot: &mut DeviceEntry<D::Device>) {
        self.disconnect(cx, slot);
        slot.failed = false;
        let mut publish = Vec::new();
        if slot.dev.is_none() {
            let mut wake = None;
            let mut ctx = DeviceCtx::new(cx.platform, cx.xs, &slot.id, &mut wake, &mut publish);
            let probed = self.driver.probe(&mut ctx).and_then(|mut dev| {
                dev.features(&mut ctx)?;
                Ok(dev)
            });
            match probed {
                Ok(dev) => slot.dev = Some(dev),
                Err(e) => return self.fail(cx, slot, e.context("probe")),
            }
        }
        if let Err(e) = switch(cx, slot, XenbusState::InitWait, &publish) {
            self.fail(cx, slot, e.into());
        }
    }

    pub(super) fn connect(&mut self, cx: &mut Ctx<'_, P>, slot: &mut DeviceEntry<D::Device>) {
        let Some(dev) = slot.dev.as_mut() else { return };
        let mut publish = Vec::new();
        let mut ctx = DeviceCtx::new(cx.platform, cx.xs, &slot.id, cx.wake, &mut publish);
        let result = dev.connect(&mut ctx);
        slot.connected = true; // so that failure paths disconnect (connect may be half done)
        match result
            .and_then(|()| switch(cx, slot, XenbusState::Connected, &publish).map_err(Into::into))
        {
            Ok(()) => self.stats.connects += 1,
            Err(e) => self.fail(cx, slot, e.context("connect")),
        }
    }

    pub(super) fn disconnect(&mut self, cx: &mut Ctx<'_, P>, slot: &mut DeviceEntry<D::Device>) {
        if !slot.connected {
            return;
        }
        slot.connected = false;
        self.stats.disconnects += 1;
        if let Some(dev) = slot.dev.as_mut() {
            let mut publish = Vec::new();
            let mut ctx = DeviceCtx::new(cx.platform, cx.xs, &slot.id, cx.wake, &mut publish);
            dev.disconnect(&mut ctx);
        }
        info!("{}: disconnected", slot.id);
    }

    pub(super) fn set_state(
        &mut self,
        cx: &mut Ctx<'_, P>,
        slot: &mut DeviceEntry<D::Device>,
        state: XenbusState,
    ) {
        if slot.state == state {
            return;
        }
        if let Err(e) = switch(cx, slot, state, &[]) {
            warn!("{}: cannot write state {}: {e}", slot.id, state.name());
        }
    }

    /// Confines a failure to this device: log once, `error` node, disconnect, Closing.
    pub(super) fn fail(
        &mut self,
        cx: &mut Ctx<'_, P>,
        slot: &mut DeviceEntry<D::Device>,
        err: DeviceError,
    ) {
        self.stats.failures += 1;
        if slot.failed {
            return;
        }
        slot.failed = true;
        // A frontend can make a device fail over and over: log the 1st, 2nd, 4th, 8th… time,
        // and any failure at least a second after the last one logged (so the reason of the
        // failure that left a device Closing is always on the console, at most once a second).
        if slot.fail_log.note(cx.now_ns(), FAIL_LOG_INTERVAL_NS) {
            warn!("{}: failed (#{}): {err}", slot.id, slot.fail_log.count);
        }
        self.disconnect(cx, slot);
        let node = self.error_node(&slot.id);
        let text = format!("{} {}", err.errno.0, err.reason);
        if let Err(e) = cx.xs.write(&node, text.as_bytes()) {
            warn!("{}: cannot write {node}: {e}", slot.id);
        }
        if slot.state != XenbusState::Closing {
            let state = XenbusState::Closing;
            if let Err(e) = switch(cx, slot, state, &[]) {
                warn!("{}: cannot write state {}: {e}", slot.id, state.name());
            }
        }
    }

    pub(super) fn error_node(&self, id: &DeviceId) -> String {
        format!("{}/{}/{}/error", self.error_root, id.frontend_id, id.devid)
    }
}

/// Writes `keys` (relative to the backend directory) and `state` in one transaction.
pub(super) fn switch<P: Platform, Dev>(
    cx: &mut Ctx<'_, P>,
    slot: &mut DeviceEntry<Dev>,
    state: XenbusState,
    keys: &[(String, Vec<u8>)],
) -> Result<(), XsError> {
    let be = &slot.id.backend_path;
    cx.xs.transaction(|tx| {
        // Never recreate a directory the toolstack removed.
        if tx.read_opt(&format!("{be}/state"))?.is_none() {
            return Err(XsError::Errno(XenErrno::ENOENT));
        }
        for (k, v) in keys {
            tx.write(&format!("{be}/{k}"), v)?;
        }
        tx.write(&format!("{be}/state"), state.as_str().as_bytes())
    })?;
    info!(
        "{}: backend {} -> {}",
        slot.id,
        slot.state.name(),
        state.name()
    );
    slot.state = state;
    Ok(())
}
