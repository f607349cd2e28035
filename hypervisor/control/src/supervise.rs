//! `xddctl run`: brings the appliance up, then stays up. When a driver domain dies it
//! records what each frontend saw, detaches the dead devices (so frontends drop them and
//! libxl forgets them), restarts the driver domain, waits until it is ready, re-attaches the
//! devices with `xl network-attach`/`block-attach`/… (same MAC for vifs), and reports when
//! each frontend is Connected again.
//!
//! Linux frontends cannot follow a backend to a new domain: the backend's domid is fixed when
//! the device is created, so a restarted driver domain always means new devices.

use crate::appliance::{Appliance, Domain, Role};
use crate::devices::DeviceKind;
use crate::pciback;
use crate::status::state_name;
use crate::timeline::{secs, Timeline};
use crate::toolstack::{xenstore_alive, Change, DomainInfo, RunState, Toolstack};
use crate::up::{make_assignable, up};
use crate::vsnd::{PolicyNode, SoundPolicy, POLICY_KEY};
use crate::vusb::UsbController;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

/// How often domains are checked without a release event.
const TICK: Duration = Duration::from_secs(5);
/// At most this many restarts of one driver domain …
const MAX_RESTARTS: usize = 5;
/// … within this window; then `run` leaves it down.
const RESTART_WINDOW: Duration = Duration::from_secs(600);
/// How long a driver domain that shut down or crashed gets to be destroyed by xl's monitor
/// (`on_poweroff`/`on_crash = "destroy"`) before `run` destroys it itself.
pub const SELF_DESTROY_GRACE: Duration = Duration::from_secs(5);

/// A frontend whose backend lives in a given domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    /// Frontend domain name.
    pub domain: String,
    /// Its domid.
    pub domid: u32,
    /// Device type.
    pub kind: DeviceKind,
    /// Device id (`device/<dir>/<devid>`).
    pub devid: u32,
    /// Frontend xenbus state when looked at.
    pub state: Option<String>,
    /// A vif's MAC address.
    pub mac: Option<String>,
}

/// Every frontend (in the running domains `list`) whose backend is domain `backend`.
pub fn frontends_on(ts: &dyn Toolstack, list: &[DomainInfo], backend: u32) -> Vec<Frontend> {
    let mut out = Vec::new();
    for d in list.iter().filter(|d| d.domid != backend) {
        let base = format!("/local/domain/{}/device", d.domid);
        for dir in ts.directory(&base) {
            let Some(kind) = DeviceKind::from_xenstore_dir(&dir) else {
                continue;
            };
            for devid in ts.directory(&format!("{base}/{dir}")) {
                let node = format!("{base}/{dir}/{devid}");
                let Ok(devid) = devid.parse() else { continue };
                if ts.read(&format!("{node}/backend-id")).as_deref()
                    != Some(backend.to_string().as_str())
                {
                    continue;
                }
                out.push(Frontend {
                    domain: d.name.clone(),
                    domid: d.domid,
                    kind,
                    devid,
                    state: ts.read(&format!("{node}/state")),
                    mac: (kind == DeviceKind::Vif)
                        .then(|| ts.read(&format!("{node}/mac")))
                        .flatten(),
                });
            }
        }
    }
    out
}

/// How to re-create one device on a restarted driver domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reattach {
    /// The device as it was.
    pub frontend: Frontend,
    /// Arguments for `xl <kind>-attach <domain> …`, or why it cannot be re-created.
    pub args: Result<Vec<String>, String>,
    /// A PVUSB controller xddctl created itself (xl cannot): written again instead.
    pub usb: Option<UsbController>,
    /// A sound card's policy (its guest's `sound`): written again into the new backend
    /// directory once the re-attach made it.
    pub sound: Option<SoundPolicy>,
}

/// Decides how to re-attach the devices that were on driver domain `dd`: from the xl.cfg
/// entry describing each (matched by type and devid), else (vifs only) from what xenstore
/// still says (backend and MAC).
pub fn plan_reattach(app: &Appliance, dd: &str, fronts: &[Frontend]) -> Vec<Reattach> {
    fronts
        .iter()
        .map(|f| {
            let entry = app.domain(&f.domain).and_then(|d| {
                d.devices.iter().find(|e| {
                    e.kind == f.kind
                        && e.devid() == Some(f.devid)
                        && e.backend.as_deref() == Some(dd)
                })
            });
            let args = match (entry, f.kind) {
                (Some(e), _) => Ok(e.attach_args(dd, f.mac.as_deref())),
                (None, DeviceKind::Vif) => {
                    let mut a = vec![format!("backend={dd}")];
                    if let Some(mac) = &f.mac {
                        a.push(format!("mac={mac}"));
                    }
                    Ok(a)
                }
                (None, kind) => Err(format!(
                    "{kind} {} of `{}` is not described in the appliance; attach it again by \
                     hand (xl {} {} …)",
                    f.devid,
                    f.domain,
                    kind.attach_command(),
                    f.domain
                )),
            };
            let usb = app.domain(&f.domain).and_then(|d| {
                d.usb_controllers
                    .iter()
                    .find(|c| {
                        f.kind == DeviceKind::Usbctrl && c.devid == f.devid && c.backend == dd
                    })
                    .cloned()
            });
            let sound = entry
                .filter(|e| e.kind == DeviceKind::Vsnd)
                .and_then(|_| app.domain(&f.domain)?.sound);
            Reattach {
                frontend: f.clone(),
                args,
                usb,
                sound,
            }
        })
        .collect()
}

/// Polls `f` every 100 ms until it returns `Some` or `timeout` passes.
fn poll_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What `run` knows about a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Up(u32),
    Gone,
}

/// The supervisor of `xddctl run`.
pub struct Supervisor<'a> {
    app: &'a Appliance,
    ts: &'a dyn Toolstack,
    tl: &'a Timeline,
    seen: BTreeMap<usize, Seen>,
    restarts: BTreeMap<usize, Vec<Instant>>,
    /// [`SELF_DESTROY_GRACE`] (shorter in tests).
    grace: Duration,
}

impl<'a> Supervisor<'a> {
    /// A supervisor for an appliance that is up.
    pub fn new(app: &'a Appliance, ts: &'a dyn Toolstack, tl: &'a Timeline) -> Supervisor<'a> {
        Supervisor {
            app,
            ts,
            tl,
            seen: BTreeMap::new(),
            restarts: BTreeMap::new(),
            grace: SELF_DESTROY_GRACE,
        }
    }

    fn stopping(&self) -> bool {
        self.app.stop_flag().exists()
    }

    /// Looks at every domain once and recovers dead driver domains. Returns true when
    /// something is still dying (look again soon).
    pub fn check(&mut self) -> Result<bool, String> {
        let list = self.ts.list()?;
        let mut dying = false;
        for i in 0..self.app.domains.len() {
            if self.stopping() {
                return Ok(false);
            }
            let d = &self.app.domains[i];
            let now = list.iter().find(|x| x.name == d.name);
            let before = self.seen.get(&i).copied();
            // A driver domain that shut down or crashed is being destroyed (by xl's monitor
            // or below): answer pciback for its pcifront (`run` looks again at every change
            // of a PCI backend's state).
            if let Some(x) = now.filter(|x| d.role == Role::Driver && !x.state.is_alive()) {
                pciback::look(self.ts, self.tl, &d.name, x.domid);
            }
            match (d.role, before, now) {
                (_, _, Some(x)) if x.state == RunState::Dying => dying = true,
                (Role::Driver, Some(Seen::Up(old)), None) => {
                    self.recover(i, old, "is gone", false)?
                }
                (Role::Driver, Some(Seen::Up(old)), Some(x)) if !x.state.is_alive() => {
                    let why = format!("is {}", x.state.label());
                    self.recover(i, old, &why, true)?
                }
                // Died between `up` (which destroys leftovers before it starts anything) and
                // the first look.
                (Role::Driver, None, Some(x)) if !x.state.is_alive() => {
                    let why = format!("is {} (died before supervision began)", x.state.label());
                    self.recover(i, x.domid, &why, true)?
                }
                (Role::Driver, Some(Seen::Up(old)), Some(x)) if x.domid != old => {
                    self.tl.event(
                        &d.name,
                        "replaced",
                        &format!("domid {old} → {} (restarted by xl)", x.domid),
                    );
                    self.recover(i, old, "was replaced", false)?
                }
                (Role::Guest, Some(Seen::Up(old)), None) => {
                    self.tl
                        .event(&d.name, "gone", &format!("guest (domid {old}) is no more"));
                    self.seen.insert(i, Seen::Gone);
                }
                (_, _, Some(x)) if x.state.is_alive() => {
                    if before == Some(Seen::Gone) {
                        self.tl
                            .event(&d.name, "back", &format!("running as domid {}", x.domid));
                    }
                    self.seen.insert(i, Seen::Up(x.domid));
                }
                (_, None, None) => {
                    self.seen.insert(i, Seen::Gone);
                }
                _ => {}
            }
        }
        Ok(dying)
    }

    /// Handles the death of driver domain `i` (old domid `old`).
    fn recover(&mut self, i: usize, old: u32, why: &str, destroy: bool) -> Result<(), String> {
        let (app, ts, tl) = (self.app, self.ts, self.tl);
        let dd = &app.domains[i];
        let died = Instant::now();
        tl.event(&dd.name, "died", &format!("domid {old} {why}"));
        self.seen.insert(i, Seen::Gone);
        if destroy {
            // xl's monitor destroys a domain whose on_poweroff/on_crash is "destroy" (every
            // generated config): let it, answering pciback for the dead pcifront while libxl
            // takes the PCI functions away. A second libxl taking them away at the same time
            // trips pciback (it then never answers, and both wait 10 s), so `xl destroy` only
            // what is still there after the grace period (a crash kept by "preserve").
            let grace = self.grace;
            let destroyed = pciback::while_stopping(ts, tl, &dd.name, old, || {
                while xenstore_alive(ts, old) && died.elapsed() < grace {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if xenstore_alive(ts, old) {
                    ts.destroy(&dd.name).map(|()| "xl destroy")
                } else {
                    Ok("by xl's monitor")
                }
            });
            match destroyed {
                Ok(how) => tl.event(
                    &dd.name,
                    "destroyed",
                    &format!("{how}, {} after its death was seen", secs(died.elapsed())),
                ),
                Err(e) => tl.event(&dd.name, "warning", &format!("xl destroy: {e}")),
            }
        }
        let list = ts.list()?;
        let fronts = frontends_on(ts, &list, old);
        for f in &fronts {
            tl.event(
                &f.domain,
                "saw",
                &format!(
                    "{}/{}: backend {} gone while the frontend was {}",
                    f.kind,
                    f.devid,
                    dd.name,
                    state_name(f.state.as_deref())
                ),
            );
        }
        // Detach the dead devices while the driver domain restarts.
        let replacement = list.iter().find(|x| x.name == dd.name && x.domid != old);
        let restart = std::thread::scope(|scope| {
            for f in &fronts {
                scope.spawn(move || detach(ts, tl, f));
            }
            match replacement {
                Some(x) if x.state.is_alive() => wait_ready(ts, tl, dd, x.domid, died),
                _ => self.restart(i),
            }
        });
        let domid = match restart {
            Ok(id) => id,
            Err(e) => {
                tl.event(&dd.name, "down", &e);
                return Ok(());
            }
        };
        self.seen.insert(i, Seen::Up(domid));
        let plan = plan_reattach(app, &dd.name, &fronts);
        let timeout = app.settings.reconnect_timeout;
        let outcomes = reattach(ts, tl, (&dd.name, domid), plan, died, timeout);
        let summary = if outcomes.is_empty() {
            "no devices to re-attach".to_string()
        } else {
            outcomes.join(", ")
        };
        tl.event(
            &dd.name,
            "recovered",
            &format!("in {}: {summary}", secs(died.elapsed())),
        );
        Ok(())
    }

    /// Creates driver domain `i` again and waits until it is ready; returns its domid.
    fn restart(&mut self, i: usize) -> Result<u32, String> {
        let (app, ts, tl) = (self.app, self.ts, self.tl);
        let dd = &app.domains[i];
        let now = Instant::now();
        let stopping = self.stopping();
        let recent = self.restarts.entry(i).or_default();
        recent.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        if !dd.restart {
            return Err("restart = false: left down".into());
        }
        if recent.len() >= MAX_RESTARTS {
            return Err(format!(
                "died {} times within {} s: left down (fix it, then `xddctl up`)",
                recent.len() + 1,
                RESTART_WINDOW.as_secs()
            ));
        }
        if stopping {
            return Err("xddctl down is stopping the appliance: not restarted".into());
        }
        recent.push(now);
        tl.event(&dd.name, "create", &format!("restart ({})", dd.origin));
        make_assignable(dd, ts, tl)?;
        let domid = ts.create(&dd.name, &dd.config_path)?;
        tl.event(
            &dd.name,
            "created",
            &format!("domid {domid} (xl create took {})", secs(now.elapsed())),
        );
        wait_ready(ts, tl, dd, domid, now)
    }
}

/// Waits until a (re)started driver domain's readiness key is 1; `since` is when its
/// `xl create` began.
fn wait_ready(
    ts: &dyn Toolstack,
    tl: &Timeline,
    dd: &Domain,
    domid: u32,
    since: Instant,
) -> Result<u32, String> {
    let Some(r) = &dd.ready else {
        return Ok(domid);
    };
    let path = r.path(domid);
    let ok = poll_until(r.timeout, || match ts.read(&path).as_deref() {
        Some("1") => Some(true),
        _ if !xenstore_alive(ts, domid) => Some(false),
        _ => None,
    });
    match ok {
        Some(true) => {
            tl.event(
                &dd.name,
                "ready",
                &format!("{path}=1, {} after create", secs(since.elapsed())),
            );
            Ok(domid)
        }
        Some(false) => Err(format!("died again before {path} became 1")),
        None => Err(format!(
            "{path} not 1 within {} after the restart",
            secs(r.timeout)
        )),
    }
}

/// The frontend that replaces `old` on driver domain `domid` once it is Connected: same
/// guest and type, and the same MAC (vifs) or devid (disks: same vdev), or the devid already
/// `known` (a sound card whose policy was written).
fn connected_replacement(
    ts: &dyn Toolstack,
    old: &Frontend,
    domid: u32,
    known: Option<u32>,
) -> Option<u32> {
    let dir = old.kind.xenstore_dir();
    let base = format!("/local/domain/{}/device/{dir}", old.domid);
    ts.directory(&base).into_iter().find_map(|devid| {
        let node = format!("{base}/{devid}");
        let devid: u32 = devid.parse().ok()?;
        let read = |k: &str| ts.read(&format!("{node}/{k}"));
        let same = match (known, old.kind) {
            (Some(k), _) => devid == k,
            (None, DeviceKind::Vif) => old.mac.is_none() || read("mac") == old.mac,
            (None, DeviceKind::Disk) => devid == old.devid,
            (None, _) => true,
        };
        (same
            && read("backend-id") == Some(domid.to_string())
            && read("state").as_deref() == Some("4"))
        .then_some(devid)
    })
}

/// A sound card of `old`'s guest on driver domain `domid` whose backend directory exists
/// and that no other re-attach has claimed yet, now claimed: its devid. A guest's cards
/// share one policy, so which re-attach claims which of its new cards does not matter; each
/// is claimed once.
fn unclaimed_card(
    ts: &dyn Toolstack,
    old: &Frontend,
    domid: u32,
    claimed: &Mutex<BTreeSet<(u32, u32)>>,
) -> Option<u32> {
    let fe = old.domid;
    let base = format!(
        "/local/domain/{domid}/backend/{}/{fe}",
        old.kind.xenstore_dir()
    );
    let mut claimed = claimed.lock().unwrap_or_else(|e| e.into_inner());
    let devid = ts
        .directory(&base)
        .iter()
        .filter_map(|d| d.parse::<u32>().ok())
        .filter(|&d| !claimed.contains(&(fe, d)))
        .find(|d| ts.read(&format!("{base}/{d}/frontend-id")).is_some())?;
    claimed.insert((fe, devid));
    Some(devid)
}

/// Writes a re-attached sound card's policy as soon as the re-attach made its backend
/// directory on driver domain `dd` (`domid`), before the guest can open a stream on it. A
/// card whose policy cannot be written is detached again (it would run with `dd`'s default
/// policy). Returns the card's devid.
fn policy_again(
    ts: &dyn Toolstack,
    tl: &Timeline,
    f: &Frontend,
    (dd, domid): (&str, u32),
    policy: SoundPolicy,
    claimed: &Mutex<BTreeSet<(u32, u32)>>,
    timeout: Duration,
) -> Result<u32, String> {
    let Some(devid) = poll_until(timeout, || unclaimed_card(ts, f, domid, claimed)) else {
        return Err(format!(
            "vsnd on {dd}: no new backend directory under /local/domain/{domid}/backend/vsnd/{} \
             within {}; its {POLICY_KEY} is not written",
            f.domid,
            secs(timeout)
        ));
    };
    match ts.write_nodes(&[policy.node(domid, f.domid, devid)]) {
        Ok(()) => {
            tl.event(&f.domain, "sound", &policy.describe(devid, dd));
            Ok(devid)
        }
        Err(e) => {
            detach(ts, tl, &Frontend { devid, ..f.clone() });
            // Its devid may be given to the next card attached.
            claimed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&(f.domid, devid));
            Err(format!(
                "vsnd {devid} on {dd}: writing its {POLICY_KEY}: {e}; detached (it would run \
                 with {dd}'s default policy)"
            ))
        }
    }
}

/// Re-attaches the planned devices to driver domain `dd` (now `domid`), all in parallel, and
/// waits for each frontend to be Connected; returns one outcome per device.
fn reattach(
    ts: &dyn Toolstack,
    tl: &Timeline,
    (dd, domid): (&str, u32),
    plan: Vec<Reattach>,
    died: Instant,
    timeout: Duration,
) -> Vec<String> {
    // Sound cards whose policy is written: (guest domid, devid).
    let claimed: Mutex<BTreeSet<(u32, u32)>> = Mutex::new(BTreeSet::new());
    let claimed = &claimed;
    let one = |r: Reattach| -> Option<String> {
        let f = r.frontend;
        let args = match r.args {
            Ok(a) => a,
            Err(e) => {
                tl.event(&f.domain, "skipped", &e);
                return Some(format!("{} {} skipped", f.domain, f.kind));
            }
        };
        let attached = match &r.usb {
            Some(c) => ts
                .write_nodes(&c.nodes(f.domid, domid))
                .map(|()| vec![format!("(xenstore nodes written by xddctl: {c})")]),
            None => ts.attach(&f.domain, f.kind, &args).map(|()| args.clone()),
        };
        let args = match attached {
            Ok(a) => a,
            Err(e) => {
                tl.event(&f.domain, "failed", &format!("re-attach: {e}"));
                return Some(format!("{} {} not re-attached", f.domain, f.kind));
            }
        };
        let at = Instant::now();
        tl.event(
            &f.domain,
            "attached",
            &format!("{} on {dd} ({})", f.kind, args.join(" ")),
        );
        let mut known = None;
        if let Some(policy) = r.sound {
            match policy_again(ts, tl, &f, (dd, domid), policy, claimed, timeout) {
                Ok(devid) => known = Some(devid),
                Err(e) => {
                    tl.event(&f.domain, "failed", &e);
                    return Some(format!("{} {}: policy not written", f.domain, f.kind));
                }
            }
        }
        match poll_until(timeout, || connected_replacement(ts, &f, domid, known)) {
            Some(devid) => {
                tl.event(
                    &f.domain,
                    "reconnected",
                    &format!(
                        "{}/{devid} Connected on {dd} (domid {domid}): {} after attach, {} \
                         after {dd} died",
                        f.kind,
                        secs(at.elapsed()),
                        secs(died.elapsed()),
                    ),
                );
                Some(format!("{} {}/{devid} reconnected", f.domain, f.kind))
            }
            None => {
                tl.event(
                    &f.domain,
                    "stuck",
                    &format!("{} on {dd} not Connected within {}", f.kind, secs(timeout)),
                );
                Some(format!("{} {} not reconnected", f.domain, f.kind))
            }
        }
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = plan
            .into_iter()
            .map(|r| scope.spawn(move || one(r)))
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .collect()
    })
}

/// Detaches one dead device; if xl cannot, removes its xenstore nodes as libxl would.
fn detach(ts: &dyn Toolstack, tl: &Timeline, f: &Frontend) {
    let t = Instant::now();
    match ts.detach(&f.domain, f.kind, f.devid) {
        Ok(()) => tl.event(
            &f.domain,
            "detached",
            &format!("{}/{} in {}", f.kind, f.devid, secs(t.elapsed())),
        ),
        Err(e) => {
            tl.event(
                &f.domain,
                "detach",
                &format!("xl failed ({e}); removing its xenstore nodes"),
            );
            let dir = f.kind.xenstore_dir();
            for p in [
                format!("/local/domain/{}/device/{dir}/{}", f.domid, f.devid),
                format!("/libxl/{}/device/{dir}/{}", f.domid, f.devid),
            ] {
                if let Err(e) = ts.remove(&p) {
                    tl.event(&f.domain, "warning", &format!("rm {p}: {e}"));
                }
            }
        }
    }
}

/// True for the changes `run` looks at the domains for: a domain released (died, shut down,
/// destroyed), or a PCI backend's state (libxl taking a dead driver domain's functions away
/// waits for an answer, see [`pciback`]).
fn wakes(change: &str) -> bool {
    change == "@releaseDomain"
        || change
            .strip_prefix("/local/domain/0/backend/pci/")
            .is_some_and(|rest| rest.ends_with("/0/state"))
}

/// `xddctl run`: `up`, then supervise until `xddctl down` sets the stop flag.
pub fn run(app: &Appliance, ts: &dyn Toolstack, tl: &Timeline) -> Result<(), String> {
    up(app, ts, tl)?;
    let (tx, rx) = mpsc::channel::<Change>();
    if let Err(e) = ts.watch(Box::new(move |c| {
        let _ = tx.send(c);
    })) {
        log::warn!(
            "no xenstore watch ({e}); checking every {} s",
            TICK.as_secs()
        );
    }
    tl.note("xddctl run: supervising; `xddctl down` stops the appliance and this command");
    let mut sup = Supervisor::new(app, ts, tl);
    sup.check()?;
    let mut next = Instant::now() + TICK;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        let mut released = false;
        match rx.recv_timeout(wait) {
            Ok(c) => {
                released |= wakes(&c);
                while let Ok(c) = rx.try_recv() {
                    released |= wakes(&c);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
        }
        if sup.stopping() {
            tl.event("run", "stop", "xddctl down is stopping the appliance");
            return Ok(());
        }
        if released || Instant::now() >= next {
            let dying = sup.check()?;
            next = Instant::now()
                + if dying {
                    Duration::from_millis(200)
                } else {
                    TICK
                };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appliance::tests::{
        files, load, owning_a_nic, sound_files, usb_files, MemFiles, APPLIANCE, SOUND_APPLIANCE,
        USB_APPLIANCE,
    };
    use crate::fake::Fake;
    use crate::passthrough::resolve;
    use crate::pci::tests::bus;

    fn app(tag: &str) -> Appliance {
        app_from(APPLIANCE, tag)
    }

    fn app_from(text: &str, tag: &str) -> Appliance {
        app_with(text, tag, &files())
    }

    /// `text` loaded with `files`, its state directory per test and short timeouts.
    fn app_with(text: &str, tag: &str, files: &MemFiles) -> Appliance {
        let dir = std::env::temp_dir().join(format!("xddctl-run-{}-{tag}", std::process::id()));
        let text = text
            .replace(
                "state_dir = \"/run/xdd\"",
                &format!("state_dir = {:?}", dir),
            )
            .replace(
                "ready_timeout_s = 20",
                "ready_timeout_s = 2\nreconnect_timeout_s = 1",
            );
        load(&text, files).unwrap()
    }

    fn frontend(domain: &str, kind: DeviceKind, devid: u32, mac: Option<&str>) -> Frontend {
        Frontend {
            domain: domain.into(),
            domid: 9,
            kind,
            devid,
            state: Some("4".into()),
            mac: mac.map(str::to_string),
        }
    }

    #[test]
    fn plans_reattachment_from_the_guests_configs() {
        let a = app("plan");
        let fronts = [
            frontend("web1", DeviceKind::Vif, 0, Some("00:16:3e:00:01:10")),
            frontend("web2", DeviceKind::Vif, 0, Some("00:16:3e:00:01:11")),
            frontend("stray", DeviceKind::Vif, 3, Some("00:16:3e:99:99:99")),
            frontend("stray", DeviceKind::Disk, 51712, None),
        ];
        let plan = plan_reattach(&a, "netdd", &fronts);
        let args: Vec<Result<Vec<String>, String>> = plan.into_iter().map(|r| r.args).collect();
        assert_eq!(
            args[0],
            Ok(vec![
                "backend=netdd".to_string(),
                "mac=00:16:3e:00:01:10".into()
            ])
        );
        // web2's vif got its backend from [defaults]; its own MAC is in its config.
        assert_eq!(
            args[1],
            Ok(vec![
                "mac=00:16:3e:00:01:11".to_string(),
                "backend=netdd".into()
            ])
        );
        assert_eq!(
            args[2],
            Ok(vec![
                "backend=netdd".to_string(),
                "mac=00:16:3e:99:99:99".into()
            ])
        );
        assert_eq!(
            args[3],
            Err(
                "disk 51712 of `stray` is not described in the appliance; attach it again by \
                 hand (xl block-attach stray …)"
                    .to_string()
            )
        );
    }

    #[test]
    fn restarts_a_dead_driver_domain_and_reattaches_its_devices() {
        let a = app("restart");
        let fake = Fake::new();
        let tl = Timeline::new(Box::new(std::io::sink()), None);
        up(&a, &fake, &tl).unwrap();
        // The guests' vifs on netdd, as xl would have made them.
        let ids = fake.domids();
        for (g, mac) in [("web1", "00:16:3e:00:01:10"), ("web2", "00:16:3e:00:01:11")] {
            let mut s = fake.state();
            let base = format!("/local/domain/{}/device/vif/0", ids[g]);
            s.xs.insert(format!("{base}/backend-id"), ids["netdd"].to_string());
            s.xs.insert(format!("{base}/state"), "4".into());
            s.xs.insert(format!("{base}/mac"), mac.into());
        }
        let mut sup = Supervisor::new(&a, &fake, &tl);
        sup.grace = Duration::from_millis(100);
        sup.check().unwrap();
        let before = fake.calls().len();
        fake.kill("netdd");
        sup.check().unwrap();
        let calls = fake.calls()[before..].to_vec();
        let mut detaches: Vec<&String> = calls.iter().filter(|c| c.starts_with("detach")).collect();
        detaches.sort();
        assert_eq!(detaches, ["detach web1 vif 0", "detach web2 vif 0"]);
        let pos = |c: &str| calls.iter().position(|x| x == c).unwrap();
        assert!(pos("create netdd") < pos("attach web1 vif backend=netdd mac=00:16:3e:00:01:10"));
        assert!(pos("create netdd") < pos("attach web2 vif mac=00:16:3e:00:01:11 backend=netdd"));
        let lines = tl.lines().join("\n");
        for want in [
            "netdd        died        domid ",
            "web1         saw         vif/0: backend netdd gone while the frontend was Connected",
            "netdd        ready",
            "web1         reconnected vif/0 Connected on netdd (domid 5): ",
            "netdd        recovered",
        ] {
            assert!(lines.contains(want), "{want} not in\n{lines}");
        }
        // Nothing else to do afterwards.
        let n = fake.calls().len();
        sup.check().unwrap();
        assert_eq!(fake.calls().len(), n);
    }

    #[test]
    fn usb_controllers_xddctl_created_are_written_again_on_a_restarted_usbdd() {
        let a = app_with(USB_APPLIANCE, "usb", &usb_files());
        let fake = Fake::new();
        let tl = Timeline::new(Box::new(std::io::sink()), None);
        up(&a, &fake, &tl).unwrap();
        // desk's xen-hcd connected to both controllers on usbdd (domid 1).
        for devid in [0, 7] {
            fake.state().xs.insert(
                format!("/local/domain/2/device/vusb/{devid}/state"),
                "4".into(),
            );
        }
        let mut sup = Supervisor::new(&a, &fake, &tl);
        sup.grace = Duration::from_millis(100);
        sup.check().unwrap();
        let before = fake.calls().len();
        fake.kill("usbdd");
        sup.check().unwrap();
        let mut calls = fake.calls()[before..].to_vec();
        calls.sort();
        assert_eq!(
            calls,
            [
                "create usbdd",
                "detach desk usbctrl 0",
                "detach desk usbctrl 7",
                "xs-write /local/domain/3/backend/vusb/2/0 (16 nodes)",
                "xs-write /local/domain/3/backend/vusb/2/7 (20 nodes)",
            ],
            "no `xl usbctrl-attach` (it cannot name usbdd): the nodes are written again"
        );
        assert_eq!(
            fake.read("/local/domain/2/device/vusb/7/backend-id")
                .as_deref(),
            Some("3")
        );
        let lines = tl.lines().join("\n");
        assert!(
            lines.contains("desk         reconnected usbctrl/0 Connected on usbdd (domid 3)"),
            "{lines}"
        );
    }

    /// [`SOUND_APPLIANCE`] up, with the guests' cards on sounddd connected as xl would have
    /// made them; returns the supervisor's view (checked once) and the domids.
    fn sound_up<'a>(
        a: &'a Appliance,
        fake: &'a Fake,
        tl: &'a Timeline,
    ) -> (Supervisor<'a>, BTreeMap<String, u32>) {
        up(a, fake, tl).unwrap();
        let ids = fake.domids();
        for (g, devid) in [("radio", 0), ("radio", 1), ("quiet", 0)] {
            let mut s = fake.state();
            let base = format!("/local/domain/{}/device/vsnd/{devid}", ids[g]);
            s.xs.insert(format!("{base}/backend-id"), ids["sounddd"].to_string());
            s.xs.insert(format!("{base}/state"), "4".into());
        }
        let mut sup = Supervisor::new(a, fake, tl);
        sup.grace = Duration::from_millis(100);
        sup.check().unwrap();
        (sup, ids)
    }

    #[test]
    fn a_restarted_sound_driver_domain_gets_the_guests_policy_again() {
        let a = app_with(SOUND_APPLIANCE, "sound", &sound_files());
        let fake = Fake::new();
        let tl = Timeline::new(Box::new(std::io::sink()), None);
        let (mut sup, ids) = sound_up(&a, &fake, &tl);
        let (old, radio) = (ids["sounddd"], ids["radio"]);
        let before = fake.calls().len();
        fake.kill("sounddd");
        sup.check().unwrap();
        let new = fake.domid("sounddd");
        assert_ne!(new, old);
        let mut calls = fake.calls()[before..].to_vec();
        calls.sort();
        assert_eq!(
            calls,
            [
                "attach quiet vsnd CARD, backend=sounddd PCM, name=dev0".to_string(),
                "attach radio vsnd CARD, backend=sounddd, short-name=r0 PCM, name=dev0".into(),
                "attach radio vsnd CARD, backend=sounddd, short-name=r1 PCM, name=dev0".into(),
                "create sounddd".into(),
                "detach quiet vsnd 0".into(),
                "detach radio vsnd 0".into(),
                "detach radio vsnd 1".into(),
                format!("xs-write /local/domain/{new}/backend/vsnd/{radio}/0/xdd-policy (1 nodes)"),
                format!("xs-write /local/domain/{new}/backend/vsnd/{radio}/1/xdd-policy (1 nodes)"),
            ]
        );
        // Each of radio's new cards has it in its new backend directory; quiet's none.
        let s = fake.state();
        let policies: Vec<(&str, &str)> =
            s.xs.iter()
                .filter(|(k, _)| k.starts_with(&format!("/local/domain/{new}/")))
                .filter(|(k, _)| k.ends_with("/xdd-policy"))
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
        let at = |devid| format!("/local/domain/{new}/backend/vsnd/{radio}/{devid}/xdd-policy");
        let (p0, p1) = (at(0), at(1));
        assert_eq!(
            policies,
            [
                (p0.as_str(), "play volume_mdb=-6000"),
                (p1.as_str(), "play volume_mdb=-6000")
            ]
        );
        drop(s);
        // Written before the card was waited for (each card's `sound` line precedes its
        // `reconnected` line).
        let lines = tl.lines();
        let died = lines.iter().position(|l| l.contains("died")).unwrap();
        let after = &lines[died..];
        for devid in [0, 1] {
            let at = |what: &str| {
                after
                    .iter()
                    .position(|l| l.contains(what))
                    .unwrap_or_else(|| panic!("{what} not in {after:#?}"))
            };
            let sound = at(&format!(
                "radio        sound       vsnd {devid} on sounddd: policy play volume_mdb=-6000 \
                 (xdd-policy)"
            ));
            let reconnected = at(&format!(
                "radio        reconnected vsnd/{devid} Connected on sounddd (domid {new})"
            ));
            assert!(sound < reconnected, "{after:#?}");
        }
    }

    #[test]
    fn each_new_sound_card_is_claimed_once_its_backend_directory_exists() {
        let fake = Fake::new();
        let claimed = Mutex::new(BTreeSet::new());
        let f = frontend("radio", DeviceKind::Vsnd, 0, None);
        let base = "/local/domain/4/backend/vsnd/9";
        let claim = || unclaimed_card(&fake, &f, 4, &claimed);
        assert_eq!(claim(), None);
        // A directory still being made (no frontend-id yet) is not taken.
        fake.state()
            .xs
            .insert(format!("{base}/3/state"), "1".into());
        assert_eq!(claim(), None);
        for devid in [3, 5] {
            fake.state()
                .xs
                .insert(format!("{base}/{devid}/frontend-id"), "9".into());
        }
        // Another guest's card is not radio's.
        fake.state().xs.insert(
            "/local/domain/4/backend/vsnd/8/0/frontend-id".into(),
            "8".into(),
        );
        assert_eq!(claim(), Some(3));
        assert_eq!(claim(), Some(5));
        assert_eq!(claim(), None);
    }

    #[test]
    fn a_card_whose_policy_cannot_be_written_again_is_detached() {
        let a = app_with(SOUND_APPLIANCE, "sound-fail", &sound_files());
        let fake = Fake::new();
        let tl = Timeline::new(Box::new(std::io::sink()), None);
        let (mut sup, ids) = sound_up(&a, &fake, &tl);
        fake.kill("sounddd");
        fake.state().fail_xs_write = Some("EACCES".into());
        let before = fake.calls().len();
        sup.check().unwrap();
        let calls = fake.calls()[before..].to_vec();
        // radio's two cards detached after the re-attach (quiet's stays: no policy to write).
        let detaches = calls
            .iter()
            .filter(|c| c.starts_with("detach radio"))
            .count();
        assert_eq!(detaches, 4, "{calls:?}");
        let new = fake.domid("sounddd");
        let base = format!("/local/domain/{}/device/vsnd", ids["radio"]);
        assert!(
            fake.directory(&base).is_empty(),
            "{:?}",
            fake.directory(&base)
        );
        let quiet = format!("/local/domain/{}/device/vsnd/0/backend-id", ids["quiet"]);
        assert_eq!(fake.read(&quiet), Some(new.to_string()));
        let lines = tl.lines();
        let failed = lines
            .iter()
            .filter(|l| {
                l.contains("radio        failed      vsnd ")
                    && l.ends_with(
                        " on sounddd: writing its xdd-policy: EACCES; detached (it would run \
                         with sounddd's default policy)",
                    )
            })
            .count();
        assert_eq!(failed, 2, "{lines:#?}");
        let lines = lines.join("\n");
        assert!(
            lines.contains("recovered   in ")
                && lines.contains("radio vsnd: policy not written, radio vsnd: policy not written"),
            "{lines}"
        );
    }

    #[test]
    fn a_restarted_driver_domain_gets_its_devices_again() {
        let mut a = app_from(&owning_a_nic(APPLIANCE), "nic");
        resolve(&mut a, &bus()).unwrap();
        let fake = Fake::new();
        let tl = Timeline::new(Box::new(std::io::sink()), None);
        up(&a, &fake, &tl).unwrap();
        let mut sup = Supervisor::new(&a, &fake, &tl);
        sup.grace = Duration::from_millis(100);
        sup.check().unwrap();
        let before = fake.calls().len();
        fake.kill("hello");
        sup.check().unwrap();
        assert_eq!(
            fake.calls()[before..],
            ["pci-assignable 0000:00:10.0", "create hello"]
        );
        let id = fake.domid("hello");
        assert_eq!(
            fake.read(&format!("/local/domain/0/backend/pci/{id}/0/dev-0"))
                .as_deref(),
            Some("0000:00:10.0")
        );
    }

    #[test]
    fn a_crashed_driver_domain_is_destroyed_and_restarted() {
        let a = app("crashed");
        let fake = Fake::new();
        let tl = Timeline::new(Box::new(std::io::sink()), None);
        up(&a, &fake, &tl).unwrap();
        let mut sup = Supervisor::new(&a, &fake, &tl);
        sup.grace = Duration::from_millis(100);
        sup.check().unwrap();
        let before = fake.calls().len();
        fake.state().crashed.insert("hello".into());
        sup.check().unwrap();
        assert_eq!(fake.calls()[before..], ["destroy hello", "create hello"]);
        assert!(tl.lines().join("\n").contains("is crashed"));
    }

    #[test]
    fn run_looks_again_when_a_domain_is_released_or_a_pci_backend_moves() {
        assert!(wakes("@releaseDomain"));
        assert!(wakes("/local/domain/0/backend/pci/7/0/state"));
        assert!(!wakes("/local/domain/0/backend/pci/7/0/state-0"));
        assert!(!wakes("/local/domain/0/backend/vif/7/0/state"));
        assert!(!wakes("/local/domain/7/device/pci/0/state"));
    }

    #[test]
    fn a_pci_owner_that_crashed_before_supervision_began_is_recovered() {
        let mut a = app_from(&owning_a_nic(APPLIANCE), "nic-early");
        resolve(&mut a, &bus()).unwrap();
        let fake = Fake::new();
        let tl = Timeline::new(Box::new(std::io::sink()), None);
        up(&a, &fake, &tl).unwrap();
        fake.connect_pcifront("hello");
        let id = fake.domid("hello");
        // It crashed before the first look, and xl's monitor is taking its function away.
        fake.state().crashed.insert("hello".into());
        fake.state().libxl_waits_for_pciback = true;
        let be = crate::pciback::backend_path(id);
        fake.state().xs.insert(format!("{be}/state-0"), "5".into());
        fake.state().xs.insert(format!("{be}/state"), "7".into());
        fake.state().removing_pci.insert(id);
        let before = fake.calls().len();
        let mut sup = Supervisor::new(&a, &fake, &tl);
        sup.grace = Duration::from_millis(100);
        sup.check().unwrap();
        let calls = fake.calls()[before..].to_vec();
        assert!(!calls.iter().any(|c| c.contains("not ready")), "{calls:?}");
        assert_eq!(
            calls.last().map(String::as_str),
            Some("create hello"),
            "{calls:?}"
        );
        assert_ne!(fake.domid("hello"), id);
        // xl's monitor destroyed it: no second libxl taking the function away at once.
        assert!(!calls.iter().any(|c| c == "destroy hello"), "{calls:?}");
        let lines = tl.lines().join("\n");
        assert!(lines.contains("pci-removed 0000:00:10.0"), "{lines}");
        assert!(lines.contains("destroyed   by xl's monitor"), "{lines}");
        assert!(
            lines.contains("is crashed (died before supervision began)"),
            "{lines}"
        );
    }

    #[test]
    fn a_crashed_pci_owner_is_destroyed_without_libxl_waiting_for_its_pcifront() {
        let mut a = app_from(&owning_a_nic(APPLIANCE), "nic-crashed");
        resolve(&mut a, &bus()).unwrap();
        let fake = Fake::new();
        let tl = Timeline::new(Box::new(std::io::sink()), None);
        up(&a, &fake, &tl).unwrap();
        fake.connect_pcifront("hello");
        let old = fake.domid("hello");
        let mut sup = Supervisor::new(&a, &fake, &tl);
        sup.grace = Duration::from_millis(100);
        sup.check().unwrap();
        fake.state().libxl_waits_for_pciback = true;
        let before = fake.calls().len();
        fake.state().crashed.insert("hello".into());
        let t = Instant::now();
        sup.check().unwrap();
        let calls = fake.calls()[before..].to_vec();
        assert_eq!(
            calls,
            [
                "destroy hello".to_string(),
                format!("xs-write /local/domain/{old}/device/pci/0/state=7"),
                format!("xs-write /local/domain/{old}/device/pci/0/state=4"),
                "pci-assignable 0000:00:10.0".to_string(),
                "create hello".to_string(),
            ]
        );
        assert!(
            t.elapsed() < crate::fake::LIBXL_PCI_WAIT,
            "{:?}",
            t.elapsed()
        );
        let lines = tl.lines().join("\n");
        assert!(
            lines.contains("hello        pci-removed 0000:00:10.0: answered pciback for the dead domain's pcifront"),
            "{lines}"
        );
        assert_ne!(fake.domid("hello"), old);
    }

    #[test]
    fn a_driver_domain_restarted_by_xl_gets_its_devices_back_without_a_create() {
        let a = app("replaced");
        let fake = Fake::new();
        let tl = Timeline::new(Box::new(std::io::sink()), None);
        up(&a, &fake, &tl).unwrap();
        let ids = fake.domids();
        fake.state().xs.insert(
            format!("/local/domain/{}/device/vif/0/backend-id", ids["web1"]),
            ids["netdd"].to_string(),
        );
        let mut sup = Supervisor::new(&a, &fake, &tl);
        sup.grace = Duration::from_millis(100);
        sup.check().unwrap();
        let before = fake.calls().len();
        // xl's on_reboot="restart": same name, new domid, ready by itself.
        fake.kill("netdd");
        let new = fake.add_running("netdd");
        fake.state()
            .xs
            .insert(format!("/local/domain/{new}/data/ready"), "1".into());
        sup.check().unwrap();
        let calls = fake.calls()[before..].to_vec();
        assert_eq!(
            calls,
            [
                "detach web1 vif 0",
                "attach web1 vif backend=netdd mac=00:16:3e:00:01:10"
            ]
        );
        assert!(tl.lines().join("\n").contains("restarted by xl"));
    }

    #[test]
    fn does_not_restart_while_down_is_stopping() {
        let a = app("stopping");
        let fake = Fake::new();
        let tl = Timeline::new(Box::new(std::io::sink()), None);
        up(&a, &fake, &tl).unwrap();
        let mut sup = Supervisor::new(&a, &fake, &tl);
        sup.grace = Duration::from_millis(100);
        sup.check().unwrap();
        std::fs::write(a.stop_flag(), "").unwrap();
        fake.kill("netdd");
        sup.check().unwrap();
        assert_eq!(
            fake.calls().iter().filter(|c| *c == "create netdd").count(),
            1
        );
    }

    #[test]
    fn gives_up_after_too_many_restarts() {
        let a = app("flapping");
        let fake = Fake::new();
        let tl = Timeline::new(Box::new(std::io::sink()), None);
        up(&a, &fake, &tl).unwrap();
        let mut sup = Supervisor::new(&a, &fake, &tl);
        sup.grace = Duration::from_millis(100);
        sup.check().unwrap();
        for _ in 0..MAX_RESTARTS + 2 {
            fake.kill("hello");
            sup.check().unwrap();
        }
        assert_eq!(
            fake.calls().iter().filter(|c| *c == "create hello").count(),
            1 + MAX_RESTARTS
        );
        assert!(tl.lines().join("\n").contains("left down"));
    }
}
