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
//!    the device. Either way the device's [`BackendDevice::removed`] hook runs first (to
//!    remove what it wrote elsewhere, such as its counters in the data area).
//!
//! **State flapping** (XSA-350): each device acts on a burst of 12 frontend state events at
//! once; an event beyond that only marks the device pending, and the loop wakes to read the
//! state the frontend is in then and act on it once: when it has rested 250 ms (at most four
//! times a second), or a second after the last act for a frontend that never lets it rest
//! ([`BackendConfig::state_limits`], [`state_limit`]). A flood thus costs a bounded number
//! of xenstore round trips, the last state is always acted on, and other devices are never
//! held back. Each episode is logged once when it ends, with the number of events deferred,
//! and counted in [`BackendStats`].
//!
//! Failures (a hook's [`DeviceError`], an unparsable or unreadable frontend `state`) are
//! confined to the device: logged once with the reason, written Linux-style to
//! `/local/domain/<own>/error/backend/<type>/<fe>/<devid>/error` as `"<errno> <reason>"`,
//! the device disconnected and switched to Closing. It recovers when the frontend closes
//! and starts over. Each frontend state event acted on costs at most one disconnect and one
//! connect, and their rate is limited, so a frontend flapping between states (XSA-350) costs
//! bounded work and — since devices release mappings and ports by dropping them — leaks
//! nothing.
//!
//! One file per job: [`device`] (the traits a backend implements), `discovery` (devices
//! appearing and changing), `state` (the state machine), `state_limit` (the rate of acting
//! on frontend state events), `removal`; this module holds the
//! devices and runs them as a [`Task`].

pub mod device;
mod discovery;
mod removal;
mod state;
pub mod state_limit;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use log::{info, warn};

pub use device::{BackendDevice, BackendDriver};

use super::{DeviceCtx, DeviceId, XenbusState};
use crate::executor::{Ctx, Task};
use crate::platform::{DomId, Platform};
use crate::xenstore::{parse_uint, Event, XsError};
use state_limit::StateLimit;

/// Timing of device removal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendConfig {
    /// How long a connected frontend may take to close after the toolstack asked for
    /// removal, before we disconnect anyway. Keep well under libxl's 10 s.
    pub close_grace_ns: u64,
    /// Delay between writing state 6 and removing our directory, so libxl sees state 6
    /// before the directory goes.
    pub remove_delay_ns: u64,
    /// How fast a device acts on its frontend's state changes ([`state_limit`]).
    pub state_limits: state_limit::Limits,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            close_grace_ns: 5_000_000_000,
            remove_delay_ns: 1_000_000_000,
            state_limits: state_limit::Limits::default(),
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
    /// Frontend state events deferred by the per-device limit (each folded into the one
    /// read and act at the device's next turn).
    pub deferred_events: u64,
    /// Episodes in which a device's frontend state events were deferred (state floods).
    pub state_floods: u64,
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

struct DeviceEntry<Dev> {
    id: DeviceId,
    dev: Option<Dev>,
    /// The state we last wrote.
    state: XenbusState,
    connected: bool,
    failed: bool,
    /// Failures so far and when one was last logged.
    fail_log: Thinned,
    /// The frontend state last acted on.
    last_fe: Option<XenbusState>,
    removal: Removal,
    /// The rate of acting on frontend state events.
    state_limit: StateLimit,
    /// State floods so far and when one was last logged.
    flood_log: Thinned,
}

/// A count of repeated events whose log lines thin out: the 1st, 2nd, 4th, 8th… is logged,
/// and any that comes at least an interval after the last one logged.
#[derive(Clone, Copy, Debug, Default)]
struct Thinned {
    count: u32,
    logged_ns: Option<u64>,
}

impl Thinned {
    /// Counts one more at `now`; whether to log it (then noted as logged).
    fn note(&mut self, now: u64, interval_ns: u64) -> bool {
        self.count = self.count.saturating_add(1);
        let quiet = self
            .logged_ns
            .is_none_or(|t| now.saturating_sub(t) >= interval_ns);
        let log = self.count.is_power_of_two() || quiet;
        if log {
            self.logged_ns = Some(now);
        }
        log
    }
}

/// Serves one device type; a [`Task`] for the executor.
pub struct Backend<P: Platform, D: BackendDriver<P>> {
    driver: D,
    config: BackendConfig,
    root: String,
    error_root: String,
    slots: BTreeMap<(DomId, u32), DeviceEntry<D::Device>>,
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

    fn poll_devices(&mut self, cx: &mut Ctx<'_, P>) {
        let keys: Vec<(DomId, u32)> = self.slots.keys().copied().collect();
        for key in keys {
            let Some(mut slot) = self.slots.remove(&key) else {
                continue;
            };
            self.act_on_deferred_state(cx, &mut slot);
            if self.removal_due(cx, &mut slot) {
                self.remove_now(cx, slot);
                continue;
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

    /// Runs the removal timers: a frontend that did not close in time is disconnected;
    /// returns whether the device's directory is to be removed now (else asks to be woken
    /// at its next deadline).
    fn removal_due(&mut self, cx: &mut Ctx<'_, P>, slot: &mut DeviceEntry<D::Device>) -> bool {
        let now = cx.now_ns();
        match slot.removal {
            Removal::WaitFrontend { deadline } if deadline <= now => {
                warn!("{}: frontend did not close in time, disconnecting", slot.id);
                self.finish_close(cx, slot);
            }
            Removal::Scheduled { at } if at <= now => return true,
            _ => {}
        }
        match slot.removal {
            Removal::WaitFrontend { deadline } => cx.wake_at(deadline),
            Removal::Scheduled { at } => cx.wake_at(at),
            Removal::None => {}
        }
        false
    }
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

#[cfg(test)]
mod thinned_tests {
    use super::Thinned;

    #[test]
    fn logs_powers_of_two_and_after_a_quiet_interval() {
        let mut t = Thinned::default();
        let logged: alloc::vec::Vec<bool> = (0..9).map(|_| t.note(0, 10)).collect();
        // 1st, 2nd, 4th and 8th at once; the rest thinned out.
        assert_eq!(
            logged,
            [true, true, false, true, false, false, false, true, false]
        );
        assert!(t.note(10, 10), "an interval after the last one logged");
        assert!(!t.note(15, 10));
        assert_eq!(t.count, 11);
    }
}
