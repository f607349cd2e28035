//! The backend framework: device discovery and the per-device xenbus state machine.
//!
//! One [`Backend`] serves one device type. It watches
//! `/local/domain/<own>/backend/<type>` and, for each device directory the toolstack creates:
//!
//! 1. **Probe**: reads `frontend` / `frontend-id` (toolstack-written; the frontend path must
//!    lie in the frontend domain's home) and asks the [`BackendDriver`] for a device.
//! 2. **InitWait**: writes the device's published keys and `state` = 2 in one transaction,
//!    then watches the frontend directory.
//! 3. **Connect**: when the frontend reaches Initialised or Connected (from any earlier state:
//!    skipped states are fine), calls [`BackendDevice::connect`], then writes its keys and
//!    `state` = 4 in one transaction. While connected the device is polled on every pass.
//! 4. **Close**: frontend Closing → disconnect, `state` = 5; frontend Closed → disconnect,
//!    `state` = 6. A frontend that returns to Initialising (or straight to Initialised)
//!    after that reconnects.
//! 5. **Removal**: the toolstack's `online` = 0 with `state` = 5 (libxl's detach) → wait up to
//!    [`BackendConfig::close_grace_ns`] for a connected frontend to close, disconnect, write
//!    `state` = 6, and [`BackendConfig::remove_delay_ns`] later remove our directory (libxl
//!    first waits to *see* state 6, then up to 10 s for the directory to vanish; removing it
//!    at once would race the first wait). A directory the toolstack removes itself just drops
//!    the device.
//!
//! Failures (a hook's [`DeviceError`], an unparsable or unreadable frontend `state`) are
//! confined to the device: logged once with the reason, written Linux-style to
//! `/local/domain/<own>/error/backend/<type>/<fe>/<devid>/error` as `"<errno> <reason>"`,
//! the device disconnected and switched to Closing. It recovers when the frontend closes
//! and starts over. Each frontend event costs at most one disconnect and one connect, so a
//! frontend flapping between states (XSA-350) costs bounded work and — since devices release
//! mappings and ports by dropping them — leaks nothing.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use log::{info, warn};
use xen_abi::xs_wire::validate_path;

use super::{quote, DeviceCtx, DeviceError, DeviceId, XenbusState};
use crate::executor::{Ctx, Task};
use crate::platform::{DomId, Platform, XenErrno};
use crate::xenstore::{parse_uint, Event, Store, XsError};

/// The backend-specific part of one device.
///
/// Hooks are called in this order: `features` once after probe (and not again on
/// reconnect), then any number of `connect` … `disconnect` rounds, with `poll` between them.
/// `disconnect` must be idempotent and must also clean up after a `connect` that failed
/// half-way: the framework calls it after every failure. Release grant mappings and event
/// channels by dropping them.
pub trait BackendDevice<P: Platform> {
    /// Publishes the features (`ctx.publish("feature-sg", "1")`); they are written with the
    /// switch to InitWait in one transaction.
    fn features(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<(), DeviceError>;

    /// The frontend is Initialised or Connected: read its ring references and event
    /// channels (untrusted), map and bind them. Keys published here are written with the
    /// switch to Connected.
    fn connect(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<(), DeviceError>;

    /// Drops rings, mappings and channels.
    fn disconnect(&mut self, ctx: &mut DeviceCtx<'_, P>);

    /// Called on every pass while connected: check the event channel (`take_pending`), do a
    /// bounded amount of ring work, ask for a wakeup if more is left. An error fails the
    /// device.
    fn poll(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<(), DeviceError>;

    /// A key in our backend directory changed (toolstack hotplug such as PVUSB `port/N`;
    /// our own writes show up here too). Default: ignore.
    fn backend_changed(
        &mut self,
        _ctx: &mut DeviceCtx<'_, P>,
        _key: &str,
    ) -> Result<(), DeviceError> {
        Ok(())
    }

    /// A frontend key other than `state` changed (untrusted; may fire at any rate, bounded
    /// by the watch queue). Default: ignore.
    fn frontend_changed(
        &mut self,
        _ctx: &mut DeviceCtx<'_, P>,
        _key: &str,
    ) -> Result<(), DeviceError> {
        Ok(())
    }
}

/// Creates devices of one type.
pub trait BackendDriver<P: Platform> {
    /// The device type.
    type Device: BackendDevice<P>;

    /// Backend type, the directory name under `backend/` (`vif`, `vbd`, `vusb`, `vsnd`).
    fn kind(&self) -> &str;

    /// Creates the device for a new backend directory; read the toolstack's configuration
    /// keys (`ctx.read_backend("params")`) here.
    fn probe(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<Self::Device, DeviceError>;
}

/// Timing of device removal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendConfig {
    /// How long a connected frontend may take to close after the toolstack asked for
    /// removal, before we disconnect anyway. Keep well under libxl's 10 s.
    pub close_grace_ns: u64,
    /// Delay between writing state 6 and removing our directory, so libxl sees state 6
    /// before the directory goes.
    pub remove_delay_ns: u64,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            close_grace_ns: 5_000_000_000,
            remove_delay_ns: 1_000_000_000,
        }
    }
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// Devices currently known.
    pub devices: usize,
    /// Devices currently connected.
    pub connected: usize,
    /// Successful connects.
    pub connects: u64,
    /// Disconnects.
    pub disconnects: u64,
    /// Device failures (each logged once per failure episode).
    pub failures: u64,
    /// Frontend events ignored (device failed or closing, Reconfiguring, stale tokens…).
    pub ignored_events: u64,
    /// Devices removed.
    pub removals: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Removal {
    None,
    /// Toolstack asked; waiting for the connected frontend to close until the deadline.
    WaitFrontend {
        deadline: u64,
    },
    /// State 6 written; remove the directory at this time.
    Scheduled {
        at: u64,
    },
}

struct Slot<Dev> {
    id: DeviceId,
    dev: Option<Dev>,
    /// The state we last wrote.
    state: XenbusState,
    connected: bool,
    failed: bool,
    /// Failures so far (log lines thin out as this grows).
    failures: u32,
    /// The frontend state last acted on.
    last_fe: Option<XenbusState>,
    removal: Removal,
}

/// Serves one device type; a [`Task`] for the executor.
pub struct Backend<P: Platform, D: BackendDriver<P>> {
    driver: D,
    config: BackendConfig,
    root: String,
    error_root: String,
    slots: BTreeMap<(DomId, u32), Slot<D::Device>>,
    stats: BackendStats,
}

fn dev_token(fe: DomId, devid: u32) -> String {
    format!("fe/{fe}/{devid}")
}

fn parse_id<T: TryFrom<u64>>(s: &str) -> Option<T> {
    parse_uint(s.as_bytes()).and_then(|n| T::try_from(n).ok())
}

impl<P: Platform, D: BackendDriver<P>> Backend<P, D> {
    /// A backend for `driver`'s type in domain `own_domid`, with default timing.
    pub fn new(driver: D, own_domid: DomId) -> Self {
        Self::with_config(driver, own_domid, BackendConfig::default())
    }

    /// A backend with explicit timing.
    pub fn with_config(driver: D, own_domid: DomId, config: BackendConfig) -> Self {
        let kind = driver.kind();
        let root = format!("/local/domain/{own_domid}/backend/{kind}");
        let error_root = format!("/local/domain/{own_domid}/error/backend/{kind}");
        Self {
            driver,
            config,
            root,
            error_root,
            slots: BTreeMap::new(),
            stats: BackendStats::default(),
        }
    }

    /// Wraps the backend for sharing with a test or the main loop: the executor polls one
    /// clone ([`Task`] is implemented for `Rc<RefCell<T>>`), the caller inspects another.
    pub fn shared(self) -> alloc::rc::Rc<core::cell::RefCell<Self>> {
        alloc::rc::Rc::new(core::cell::RefCell::new(self))
    }

    /// The watched directory, `/local/domain/<own>/backend/<type>`.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Counters.
    pub fn stats(&self) -> BackendStats {
        BackendStats {
            devices: self.slots.len(),
            connected: self.slots.values().filter(|s| s.connected).count(),
            ..self.stats
        }
    }

    /// The driver.
    pub fn driver(&self) -> &D {
        &self.driver
    }

    /// The device for `(frontend domid, devid)`, if probed.
    pub fn device(&self, frontend: DomId, devid: u32) -> Option<&D::Device> {
        self.slots
            .get(&(frontend, devid))
            .and_then(|s| s.dev.as_ref())
    }

    /// The state we last published for a device.
    pub fn device_state(&self, frontend: DomId, devid: u32) -> Option<XenbusState> {
        self.slots.get(&(frontend, devid)).map(|s| s.state)
    }

    /// Whether a device is connected.
    pub fn is_connected(&self, frontend: DomId, devid: u32) -> bool {
        self.slots
            .get(&(frontend, devid))
            .is_some_and(|s| s.connected)
    }

    // --- discovery ------------------------------------------------------------------------

    fn rescan(&mut self, cx: &mut Ctx<'_, P>, only_fe: Option<DomId>) {
        let mut present = Vec::new();
        let fes: Vec<DomId> = match only_fe {
            Some(fe) => alloc::vec![fe],
            None => match cx.xs.directory_opt(&self.root) {
                Ok(names) => names.iter().filter_map(|n| parse_id(n)).collect(),
                Err(e) => {
                    warn!("{}: cannot list: {e}", self.root);
                    return;
                }
            },
        };
        for fe in fes {
            match cx.xs.directory_opt(&format!("{}/{fe}", self.root)) {
                Ok(names) => {
                    present.extend(names.iter().filter_map(|n| parse_id(n)).map(|d| (fe, d)))
                }
                Err(e) => warn!("{}/{fe}: cannot list: {e}", self.root),
            }
        }
        let known: Vec<(DomId, u32)> = self
            .slots
            .keys()
            .copied()
            .filter(|(fe, _)| only_fe.is_none_or(|o| o == *fe))
            .collect();
        for key in known.into_iter().chain(present) {
            self.sync(cx, key);
        }
    }

    /// Routes an event on our backend directory.
    fn backend_event(&mut self, cx: &mut Ctx<'_, P>, path: &str) {
        let Some(rel) = path
            .strip_prefix(&self.root)
            .and_then(|r| r.strip_prefix('/'))
        else {
            // The root itself (initial fire, removal) or an ancestor: look at everything.
            self.rescan(cx, None);
            return;
        };
        let mut parts = rel.splitn(3, '/');
        let Some(fe) = parts.next().and_then(parse_id::<DomId>) else {
            return;
        };
        let Some(devid) = parts.next() else {
            self.rescan(cx, Some(fe));
            return;
        };
        let Some(devid) = parse_id::<u32>(devid) else {
            return;
        };
        match parts.next() {
            None | Some("state") | Some("online") => self.sync(cx, (fe, devid)),
            Some(key) => {
                let key = String::from(key);
                self.with_device(cx, (fe, devid), |dev, ctx| dev.backend_changed(ctx, &key));
            }
        }
    }

    /// Brings our view of one device in line with its backend directory.
    fn sync(&mut self, cx: &mut Ctx<'_, P>, key: (DomId, u32)) {
        let be = format!("{}/{}/{}", self.root, key.0, key.1);
        let state = match cx.xs.read_opt(&format!("{be}/state")) {
            Ok(s) => s,
            Err(e) => {
                warn!("{be}: cannot read state: {e}");
                return;
            }
        };
        let Some(state) = state else {
            if let Some(slot) = self.slots.remove(&key) {
                self.drop_device(cx, slot, "backend directory removed by the toolstack");
            }
            return;
        };
        let offline = matches!(cx.xs.read_opt(&format!("{be}/online")), Ok(Some(v)) if v == b"0");
        let closing = matches!(
            XenbusState::parse(&state),
            Ok(XenbusState::Closing | XenbusState::Closed)
        );
        let removing = self.slots.get(&key).map(|s| s.removal != Removal::None);
        match removing {
            None => self.add(cx, key, be, offline && closing),
            Some(false) if offline && closing => self.begin_removal(cx, key),
            Some(true) if !offline && state == XenbusState::Initialising.as_str().as_bytes() => {
                // The toolstack re-created the device while we were removing the old one:
                // forget the old instance (its directory is the new one's now) and start over.
                if let Some(old) = self.slots.remove(&key) {
                    self.drop_device(cx, old, "replaced by a new instance");
                }
                self.add(cx, key, be, false);
            }
            Some(_) => {}
        }
    }

    fn add(&mut self, cx: &mut Ctx<'_, P>, key: (DomId, u32), be: String, removing: bool) {
        let (fe, devid) = key;
        let frontend = match cx.xs.read_opt(&format!("{be}/frontend")) {
            Ok(Some(v)) => v,
            Ok(None) => return, // not written yet
            Err(e) => {
                warn!("{be}: cannot read frontend: {e}");
                return;
            }
        };
        let frontend_id = cx.xs.read_opt(&format!("{be}/frontend-id")).ok().flatten();
        let frontend = String::from_utf8(frontend).unwrap_or_default();
        let home = format!("/local/domain/{fe}/");
        if frontend_id.as_deref().and_then(parse_uint) != Some(u64::from(fe))
            || validate_path(&frontend).is_err()
            || !frontend.starts_with(&home)
        {
            warn!("{be}: refusing device: frontend {frontend:?} / frontend-id do not match domain {fe}");
            return;
        }
        let id = DeviceId {
            kind: String::from(self.driver.kind()),
            frontend_id: fe,
            devid,
            backend_path: be,
            frontend_path: frontend,
        };
        info!("{id}: new device, frontend {}", id.frontend_path);
        let mut slot = Slot {
            id,
            dev: None,
            state: XenbusState::Initialising,
            connected: false,
            failed: false,
            failures: 0,
            last_fe: None,
            removal: Removal::None,
        };
        if removing {
            // A leftover the toolstack is already removing: just finish that.
            self.slots.insert(key, slot);
            self.begin_removal(cx, key);
            return;
        }
        let mut publish = Vec::new();
        let probed = {
            let mut wake = None;
            let mut ctx = DeviceCtx::new(cx.platform, cx.xs, &slot.id, &mut wake, &mut publish);
            self.driver
                .probe(&mut ctx)
                .and_then(|mut dev| dev.features(&mut ctx).map(|()| dev))
        };
        match probed {
            Ok(dev) => {
                slot.dev = Some(dev);
                if let Err(e) = switch(cx, &mut slot, XenbusState::InitWait, &publish) {
                    self.fail(cx, &mut slot, e.into());
                }
            }
            Err(e) => self.fail(cx, &mut slot, e.context("probe")),
        }
        // Watched even after a failure: the frontend restarting is how the device recovers.
        if let Err(e) = cx.watch(&slot.id.frontend_path, &dev_token(fe, devid)) {
            self.fail(
                cx,
                &mut slot,
                DeviceError::from(e).context("watch frontend"),
            );
        }
        self.slots.insert(key, slot);
    }

    // --- the state machine ---------------------------------------------------------------

    /// Runs `f` on a probed, non-failed device with a fresh context; an error fails it.
    fn with_device(
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

    fn frontend_event(&mut self, cx: &mut Ctx<'_, P>, key: (DomId, u32), event: &Event) {
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
        self.frontend_state_changed(cx, &mut slot);
        if matches!(slot.removal, Removal::Scheduled { at } if at <= cx.now_ns()) {
            self.remove_now(cx, slot);
        } else {
            self.slots.insert(key, slot);
        }
    }

    fn frontend_state_changed(&mut self, cx: &mut Ctx<'_, P>, slot: &mut Slot<D::Device>) {
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
                if slot.failed || slot.connected || slot.state == Closing {
                    if slot.failed || slot.state == Closing {
                        self.stats.ignored_events += 1;
                    }
                    return;
                }
                if slot.state == Closed {
                    // Reconnect with Initialising skipped.
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
    fn restart(&mut self, cx: &mut Ctx<'_, P>, slot: &mut Slot<D::Device>) {
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

    fn connect(&mut self, cx: &mut Ctx<'_, P>, slot: &mut Slot<D::Device>) {
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

    fn disconnect(&mut self, cx: &mut Ctx<'_, P>, slot: &mut Slot<D::Device>) {
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

    fn set_state(&mut self, cx: &mut Ctx<'_, P>, slot: &mut Slot<D::Device>, state: XenbusState) {
        if slot.state == state {
            return;
        }
        if let Err(e) = switch(cx, slot, state, &[]) {
            warn!("{}: cannot write state {}: {e}", slot.id, state.name());
        }
    }

    /// Confines a failure to this device: log once, `error` node, disconnect, Closing.
    fn fail(&mut self, cx: &mut Ctx<'_, P>, slot: &mut Slot<D::Device>, err: DeviceError) {
        self.stats.failures += 1;
        if slot.failed {
            return;
        }
        slot.failed = true;
        slot.failures = slot.failures.saturating_add(1);
        // A frontend can make a device fail over and over: log the 1st, 2nd, 4th, 8th… time.
        if slot.failures.is_power_of_two() {
            warn!("{}: failed (#{}): {err}", slot.id, slot.failures);
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

    fn error_node(&self, id: &DeviceId) -> String {
        format!("{}/{}/{}/error", self.error_root, id.frontend_id, id.devid)
    }

    // --- removal -------------------------------------------------------------------------

    fn begin_removal(&mut self, cx: &mut Ctx<'_, P>, key: (DomId, u32)) {
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
    fn finish_close(&mut self, cx: &mut Ctx<'_, P>, slot: &mut Slot<D::Device>) {
        self.disconnect(cx, slot);
        // Written even if we believe it is already 6: libxl waits to see it.
        slot.state = XenbusState::Closing;
        self.set_state(cx, slot, XenbusState::Closed);
        let at = cx.now_ns().saturating_add(self.config.remove_delay_ns);
        slot.removal = Removal::Scheduled { at };
    }

    fn remove_now(&mut self, cx: &mut Ctx<'_, P>, slot: Slot<D::Device>) {
        if let Err(e) = cx.xs.rm(&slot.id.backend_path) {
            warn!("{}: cannot remove {}: {e}", slot.id, slot.id.backend_path);
        }
        self.drop_device(cx, slot, "removed");
    }

    /// Forgets a device: disconnect, unwatch, remove its error node, drop it.
    fn drop_device(&mut self, cx: &mut Ctx<'_, P>, mut slot: Slot<D::Device>, why: &str) {
        self.disconnect(cx, &mut slot);
        let token = dev_token(slot.id.frontend_id, slot.id.devid);
        // Fails harmlessly if the watch was never registered (probe failed).
        let _ = cx.unwatch(&token);
        let _ = cx.xs.rm(&self.error_node(&slot.id));
        self.stats.removals += 1;
        info!("{}: {why}", slot.id);
    }

    fn poll_devices(&mut self, cx: &mut Ctx<'_, P>) {
        let now = cx.now_ns();
        let keys: Vec<(DomId, u32)> = self.slots.keys().copied().collect();
        for key in keys {
            let Some(mut slot) = self.slots.remove(&key) else {
                continue;
            };
            match slot.removal {
                Removal::WaitFrontend { deadline } if deadline <= now => {
                    warn!("{}: frontend did not close in time, disconnecting", slot.id);
                    self.finish_close(cx, &mut slot);
                }
                Removal::Scheduled { at } if at <= now => {
                    self.remove_now(cx, slot);
                    continue;
                }
                _ => {}
            }
            match slot.removal {
                Removal::WaitFrontend { deadline } => cx.wake_at(deadline),
                Removal::Scheduled { at } => cx.wake_at(at),
                Removal::None => {}
            }
            if slot.connected && !slot.failed {
                if let Some(dev) = slot.dev.as_mut() {
                    let mut publish = Vec::new();
                    let mut ctx =
                        DeviceCtx::new(cx.platform, cx.xs, &slot.id, cx.wake, &mut publish);
                    if let Err(e) = dev.poll(&mut ctx) {
                        self.fail(cx, &mut slot, e);
                    }
                }
            }
            self.slots.insert(key, slot);
        }
    }
}

/// Writes `keys` (relative to the backend directory) and `state` in one transaction.
fn switch<P: Platform, Dev>(
    cx: &mut Ctx<'_, P>,
    slot: &mut Slot<Dev>,
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

impl<P: Platform, D: BackendDriver<P>> Task<P> for Backend<P, D> {
    fn start(&mut self, cx: &mut Ctx<'_, P>) -> Result<(), XsError> {
        info!("{}: serving", self.root);
        let root = self.root.clone();
        cx.watch(&root, "root")
    }

    fn on_event(&mut self, cx: &mut Ctx<'_, P>, sub: &str, event: &Event) {
        if sub == "root" {
            match event {
                Event::Fired(ev) => self.backend_event(cx, &ev.path),
                Event::Overflow { .. } => self.rescan(cx, None),
            }
            return;
        }
        let mut parts = sub.strip_prefix("fe/").unwrap_or("").split('/');
        let fe = parts.next().and_then(parse_id::<DomId>);
        let devid = parts.next().and_then(parse_id::<u32>);
        match (fe, devid) {
            (Some(fe), Some(devid)) => self.frontend_event(cx, (fe, devid), event),
            _ => self.stats.ignored_events += 1,
        }
    }

    fn poll(&mut self, cx: &mut Ctx<'_, P>) {
        self.poll_devices(cx);
    }

    /// Disconnects every device and marks it Closed.
    fn stop(&mut self, cx: &mut Ctx<'_, P>) {
        let keys: Vec<(DomId, u32)> = self.slots.keys().copied().collect();
        for key in keys {
            if let Some(mut slot) = self.slots.remove(&key) {
                self.disconnect(cx, &mut slot);
                self.set_state(cx, &mut slot, XenbusState::Closed);
                self.slots.insert(key, slot);
            }
        }
    }
}
