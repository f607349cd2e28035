//! `xddctl up`: driver domains in dependency order (independent ones in parallel), each
//! waited for until its readiness key says 1, and each guest only once all its backends are
//! ready. A failure rolls back what this `up` started.
//!
//! [`Scheduler`] holds the decisions (pure, tested on its own); [`up`] drives it with a
//! [`Toolstack`] and prints the [`Timeline`].

use crate::appliance::{Appliance, Domain, Role};
use crate::passthrough::shown;
use crate::timeline::{secs, Timeline};
use crate::toolstack::{xenstore_alive, Toolstack};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest pause between readiness checks when no xenstore event arrives.
const POLL: Duration = Duration::from_millis(200);

/// Where a domain is in `up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for its dependencies.
    Pending,
    /// `xl create` running.
    Creating,
    /// Created; waiting for its readiness key.
    Starting {
        /// Its domid.
        domid: u32,
        /// When `xl create` returned (or when `up` found it running).
        since: Instant,
    },
    /// Ready (or a guest that was created).
    Ready {
        /// Its domid.
        domid: u32,
    },
    /// Failed to start.
    Failed,
    /// Never started because something else failed.
    Skipped,
}

/// Why `up` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// `xl create` failed.
    Create {
        /// The domain.
        domain: String,
        /// xl's complaint.
        error: String,
    },
    /// The readiness key did not become 1 in time.
    NotReady {
        /// The driver domain.
        domain: String,
        /// The xenstore path.
        path: String,
        /// The timeout.
        timeout: Duration,
        /// Its last value (`None`: it never existed).
        last: Option<String>,
    },
    /// The domain disappeared before it was ready.
    Died {
        /// The driver domain.
        domain: String,
        /// The readiness path it had not yet written.
        path: String,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Create { domain, error } => write!(f, "cannot create `{domain}`: {error}"),
            Failure::NotReady {
                domain,
                path,
                timeout,
                last,
            } => {
                let now = match last {
                    Some(v) => format!("it is `{v}`"),
                    None => "it does not exist".into(),
                };
                write!(
                    f,
                    "driver domain `{domain}` was not ready within {} s: {path} is not 1 ({now}); \
                     see `xl dmesg` and /var/log/xen/console/guest-{domain}.log, or raise \
                     ready_timeout_s",
                    timeout.as_secs_f64()
                )
            }
            Failure::Died { domain, path } => write!(
                f,
                "driver domain `{domain}` died before it was ready (no {path} yet); see \
                 /var/log/xen/xl-{domain}.log and /var/log/xen/console/guest-{domain}.log"
            ),
        }
    }
}

/// Progress of `up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Still starting domains.
    Running,
    /// Everything is ready.
    Done,
    /// Something failed and nothing is being created any more: roll back.
    Failed(Failure),
}

/// The start decisions of `up`, without any I/O.
pub struct Scheduler<'a> {
    app: &'a Appliance,
    states: Vec<State>,
    /// Running before `up` began (never rolled back).
    existed: Vec<bool>,
    /// Last value seen at each readiness path.
    last: Vec<Option<String>>,
    failure: Option<Failure>,
}

impl<'a> Scheduler<'a> {
    /// Every domain pending.
    pub fn new(app: &'a Appliance) -> Scheduler<'a> {
        let n = app.domains.len();
        Scheduler {
            app,
            states: vec![State::Pending; n],
            existed: vec![false; n],
            last: vec![None; n],
            failure: None,
        }
    }

    /// A domain's state.
    pub fn state(&self, i: usize) -> State {
        self.states[i]
    }

    /// Records a domain that was running before `up`: a driver domain is still waited for,
    /// but nothing that existed is ever rolled back.
    pub fn existing(&mut self, i: usize, domid: u32, now: Instant) {
        self.existed[i] = true;
        self.states[i] = match self.app.domains[i].ready {
            Some(_) => State::Starting { domid, since: now },
            None => State::Ready { domid },
        };
    }

    /// Domains whose dependencies are all ready: they are now being created. Nothing new
    /// starts once something failed.
    pub fn startable(&mut self) -> Vec<usize> {
        if self.failure.is_some() {
            return Vec::new();
        }
        let ready: Vec<bool> = self
            .states
            .iter()
            .map(|s| matches!(s, State::Ready { .. }))
            .collect();
        let out: Vec<usize> = (0..self.states.len())
            .filter(|&i| {
                self.states[i] == State::Pending && self.app.graph.deps(i).iter().all(|&d| ready[d])
            })
            .collect();
        for &i in &out {
            self.states[i] = State::Creating;
        }
        out
    }

    /// `xl create` returned a domid.
    pub fn created(&mut self, i: usize, domid: u32, now: Instant) {
        self.states[i] = match self.app.domains[i].ready {
            Some(_) => State::Starting { domid, since: now },
            None => State::Ready { domid },
        };
    }

    /// `xl create` failed.
    pub fn create_failed(&mut self, i: usize, error: String) {
        self.states[i] = State::Failed;
        self.fail(Failure::Create {
            domain: self.app.domains[i].name.clone(),
            error,
        });
    }

    fn fail(&mut self, f: Failure) {
        if self.failure.is_none() {
            self.failure = Some(f);
        }
    }

    /// Driver domains waiting for readiness: `(index, domid, absolute path)`.
    pub fn awaiting(&self) -> Vec<(usize, u32, String)> {
        (0..self.states.len())
            .filter_map(|i| match (self.states[i], &self.app.domains[i].ready) {
                (State::Starting { domid, .. }, Some(r)) => Some((i, domid, r.path(domid))),
                _ => None,
            })
            .collect()
    }

    /// A readiness key was read: "1" makes the domain ready; returns true then.
    pub fn observed(&mut self, i: usize, value: Option<String>) -> bool {
        if let State::Starting { domid, .. } = self.states[i] {
            if value.as_deref() == Some("1") {
                self.states[i] = State::Ready { domid };
                return true;
            }
            self.last[i] = value;
        }
        false
    }

    /// The domain vanished while starting.
    pub fn died(&mut self, i: usize) {
        if let State::Starting { domid, .. } = self.states[i] {
            self.states[i] = State::Failed;
            let path = self.app.domains[i]
                .ready
                .as_ref()
                .map(|r| r.path(domid))
                .unwrap_or_default();
            self.fail(Failure::Died {
                domain: self.app.domains[i].name.clone(),
                path,
            });
        }
    }

    /// Fails driver domains whose readiness timeout has passed.
    pub fn check_deadlines(&mut self, now: Instant) {
        for i in 0..self.states.len() {
            if let (State::Starting { domid, since }, Some(r)) =
                (self.states[i], &self.app.domains[i].ready)
            {
                if now >= since + r.timeout {
                    let f = Failure::NotReady {
                        domain: self.app.domains[i].name.clone(),
                        path: r.path(domid),
                        timeout: r.timeout,
                        last: self.last[i].clone(),
                    };
                    self.states[i] = State::Failed;
                    self.fail(f);
                }
            }
        }
    }

    /// The earliest readiness deadline still running.
    pub fn next_deadline(&self) -> Option<Instant> {
        (0..self.states.len())
            .filter_map(|i| match (self.states[i], &self.app.domains[i].ready) {
                (State::Starting { since, .. }, Some(r)) => Some(since + r.timeout),
                _ => None,
            })
            .min()
    }

    /// Where `up` stands.
    pub fn progress(&mut self) -> Progress {
        if let Some(f) = &self.failure {
            if self.states.contains(&State::Creating) {
                return Progress::Running;
            }
            for s in &mut self.states {
                if *s == State::Pending {
                    *s = State::Skipped;
                }
            }
            return Progress::Failed(f.clone());
        }
        if self.states.iter().all(|s| matches!(s, State::Ready { .. })) {
            Progress::Done
        } else {
            Progress::Running
        }
    }

    /// What to destroy after a failure, wave by wave: everything this `up` created (guests
    /// first, then driver domains in reverse dependency order). Failed creates are included:
    /// xl may leave a half-built domain behind.
    pub fn rollback_plan(&self) -> Vec<Vec<usize>> {
        let started: BTreeSet<usize> = (0..self.states.len())
            .filter(|&i| {
                !self.existed[i]
                    && matches!(
                        self.states[i],
                        State::Starting { .. } | State::Ready { .. } | State::Failed
                    )
            })
            .collect();
        self.app.stop_waves(&started)
    }
}

enum Msg {
    Created(usize, Result<u32, String>),
    Changed,
}

/// Starts the appliance; prints the timeline. On failure, destroys what it started and
/// returns one line naming the domain (and readiness key) that failed.
pub fn up(app: &Appliance, ts: &dyn Toolstack, tl: &Timeline) -> Result<(), String> {
    app.write_configs()?;
    let _ = std::fs::remove_file(app.stop_flag());
    let list = ts.list()?;
    let running: BTreeMap<String, u32> = list
        .iter()
        .filter(|d| d.state.is_alive())
        .map(|d| (d.name.clone(), d.domid))
        .collect();
    let drivers = app
        .domains
        .iter()
        .filter(|d| d.role == Role::Driver)
        .count();
    tl.note(&format!(
        "xddctl up: appliance `{}` ({}): {} driver domain(s), {} guest(s)",
        app.name,
        app.path.display(),
        drivers,
        app.domains.len() - drivers
    ));
    tl.note("columns: dom0 uptime (s), seconds since start, domain, event, detail");
    // Leftovers of an earlier life (crashed or shut down, kept by on_crash="preserve"…) would
    // make `xl create` fail on the name.
    for d in list.iter().filter(|d| !d.state.is_alive()) {
        if app.domain(&d.name).is_some() {
            let what = format!(
                "domid {} is {}: destroyed to start afresh",
                d.domid,
                d.state.label()
            );
            crate::pciback::while_stopping(ts, tl, &d.name, d.domid, || ts.destroy(&d.name))?;
            tl.event(&d.name, "destroyed", &what);
        }
    }
    let mut s = Scheduler::new(app);
    let start = Instant::now();
    for (i, d) in app.domains.iter().enumerate() {
        if let Some(&domid) = running.get(&d.name) {
            s.existing(i, domid, start);
            tl.event(
                &d.name,
                "running",
                &format!("already running as domid {domid}"),
            );
            // The appliance file may have changed since the guest started: its sound policy
            // applies now. A guest left on a driver domain's default would be let do what its
            // `sound` table forbids, so a policy that cannot be written fails `up`.
            if let Err(e) = crate::vsnd::rewrite_running_policies(d, domid, ts, tl) {
                tl.event(&d.name, "failed", &e);
                tl.event("up", "failed", "nothing created, nothing to roll back");
                return Err(format!("running `{}`: {e}", d.name));
            }
        }
    }
    let (tx, rx) = mpsc::channel::<Msg>();
    {
        let tx = tx.clone();
        if let Err(e) = ts.watch(Box::new(move |_| {
            let _ = tx.send(Msg::Changed);
        })) {
            log::warn!(
                "no xenstore watch ({e}); polling every {} ms",
                POLL.as_millis()
            );
        }
    }
    let mut created_at: BTreeMap<usize, Instant> = BTreeMap::new();
    let outcome = std::thread::scope(|scope| loop {
        for i in s.startable() {
            let d = &app.domains[i];
            tl.event(&d.name, "create", &create_detail(app, i));
            let tx = tx.clone();
            scope.spawn(move || {
                let r = make_assignable(d, ts, tl)
                    .and_then(|_| ts.create(&d.name, &d.config_path))
                    .and_then(|domid| with_usb_controllers(d, domid, ts, tl))
                    .and_then(|domid| with_sound_policy(d, domid, ts, tl));
                let _ = tx.send(Msg::Created(i, r));
            });
            created_at.insert(i, Instant::now());
        }
        for (i, domid, path) in s.awaiting() {
            let value = ts.read(&path);
            let gone = value.is_none() && !xenstore_alive(ts, domid);
            if s.observed(i, value) {
                let took = match s.state(i) {
                    State::Ready { .. } => created_at
                        .get(&i)
                        .map(|t| format!(", {} after create", secs(t.elapsed())))
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                tl.event(&app.domains[i].name, "ready", &format!("{path}=1{took}"));
            } else if gone {
                s.died(i);
            }
        }
        let now = Instant::now();
        s.check_deadlines(now);
        match s.progress() {
            Progress::Done => break Ok(()),
            Progress::Failed(f) => break Err(f),
            Progress::Running => {}
        }
        let wait = s
            .next_deadline()
            .map(|d| d.saturating_duration_since(now))
            .unwrap_or(POLL)
            .min(POLL);
        let mut msg = rx.recv_timeout(wait).ok();
        while let Some(m) = msg {
            if let Msg::Created(i, r) = m {
                let name = &app.domains[i].name;
                let t = created_at
                    .get(&i)
                    .map(|t| secs(t.elapsed()))
                    .unwrap_or_default();
                match r {
                    Ok(domid) => {
                        tl.event(
                            name,
                            "created",
                            &format!("domid {domid} (xl create took {t})"),
                        );
                        s.created(i, domid, Instant::now());
                    }
                    Err(e) => {
                        tl.event(name, "failed", &e);
                        s.create_failed(i, e);
                    }
                }
            }
            msg = rx.try_recv().ok();
        }
    });
    match outcome {
        Ok(()) => {
            tl.event(
                "up",
                "done",
                &format!(
                    "{} domain(s) up in {}",
                    app.domains.len(),
                    secs(tl.elapsed())
                ),
            );
            Ok(())
        }
        Err(failure) => {
            tl.event("up", "failed", &failure.to_string());
            let destroyed = rollback(app, ts, tl, &s.rollback_plan());
            let undone = if destroyed.is_empty() {
                "nothing to roll back".to_string()
            } else {
                format!("rolled back: destroyed {}", destroyed.join(", "))
            };
            Err(format!("{failure}; {undone}"))
        }
    }
}

/// Creates a just-created domain's PVUSB controllers served by driver domains; a domain
/// whose controller cannot be created is destroyed (it would run without its devices).
fn with_usb_controllers(
    d: &Domain,
    domid: u32,
    ts: &dyn Toolstack,
    tl: &Timeline,
) -> Result<u32, String> {
    destroyed_unless(
        d,
        domid,
        ts,
        crate::vusb::create_controllers(d, domid, ts, tl),
    )
}

/// Writes a just-created guest's sound policy into its cards' backend directories on driver
/// domains; a guest whose policy cannot be written is destroyed (it would run with the
/// driver domain's default policy).
fn with_sound_policy(
    d: &Domain,
    domid: u32,
    ts: &dyn Toolstack,
    tl: &Timeline,
) -> Result<u32, String> {
    destroyed_unless(d, domid, ts, crate::vsnd::write_policies(d, domid, ts, tl))
}

/// `domid` when what followed its `xl create` worked; else destroys the domain and says so.
fn destroyed_unless(
    d: &Domain,
    domid: u32,
    ts: &dyn Toolstack,
    done: Result<(), String>,
) -> Result<u32, String> {
    match done {
        Ok(()) => Ok(domid),
        Err(e) => {
            let _ = ts.destroy(&d.name);
            Err(format!("{e}; destroyed domid {domid}"))
        }
    }
}

/// Makes the PCI devices a driver domain owns assignable (dom0's drivers let go of them)
/// before its `xl create` passes them through; logs each.
pub fn make_assignable(d: &Domain, ts: &dyn Toolstack, tl: &Timeline) -> Result<(), String> {
    for (spec, bdf) in d.owns.iter().zip(&d.pci) {
        let dev = shown(spec, *bdf);
        let how = if ts.pci_assignable(*bdf)? {
            "made assignable (xl pci-assignable-add: dom0's driver let go of it)"
        } else {
            "assignable already"
        };
        tl.event(&d.name, "device", &format!("{dev} {how}"));
    }
    Ok(())
}

/// Why a domain is created now, for the timeline.
fn create_detail(app: &Appliance, i: usize) -> String {
    let d = &app.domains[i];
    let mut parts = vec![format!("{} ({})", d.role.label(), d.origin)];
    if !d.serves.is_empty() {
        let s: Vec<&str> = d.serves.iter().map(|k| k.key()).collect();
        parts.push(format!("serves {}", s.join(", ")));
    }
    if !d.pci.is_empty() {
        let owns: Vec<String> = d
            .owns
            .iter()
            .zip(&d.pci)
            .map(|(s, b)| shown(s, *b))
            .collect();
        parts.push(format!("owns {}", owns.join(", ")));
    }
    if !d.needs.is_empty() {
        parts.push(format!("after {} ready", d.needs.join(", ")));
    }
    parts.join("; ")
}

/// Destroys, wave by wave, the domains of a rollback plan that exist; returns their names.
fn rollback(
    app: &Appliance,
    ts: &dyn Toolstack,
    tl: &Timeline,
    plan: &[Vec<usize>],
) -> Vec<String> {
    let running: BTreeMap<String, u32> = ts
        .list()
        .map(|l| l.into_iter().map(|d| (d.name, d.domid)).collect())
        .unwrap_or_default();
    let mut destroyed = Vec::new();
    for wave in plan {
        for &i in wave {
            let name = &app.domains[i].name;
            let Some(&domid) = running.get(name) else {
                continue;
            };
            // A driver domain that died before it was ready may hold PCI functions.
            match crate::pciback::while_stopping(ts, tl, name, domid, || ts.destroy(name)) {
                Ok(()) => {
                    tl.event(name, "destroyed", "rollback");
                    destroyed.push(name.clone());
                }
                Err(e) => tl.event(name, "left", &format!("rollback could not destroy it: {e}")),
            }
        }
    }
    destroyed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appliance::tests::{
        files, load, owning_a_nic, sound_files, usb_files, APPLIANCE, SOUND_APPLIANCE,
        USB_APPLIANCE,
    };
    use crate::fake::Fake;
    use crate::passthrough::resolve;
    use crate::pci::tests::bus;

    fn quiet() -> Timeline {
        Timeline::new(Box::new(std::io::sink()), Some(0.0))
    }

    fn app(text: &str) -> Appliance {
        load(text, &files()).unwrap()
    }

    fn temp_state(text: &str, tag: &str) -> String {
        let dir = std::env::temp_dir().join(format!("xddctl-test-{}-{tag}", std::process::id()));
        text.replace(
            "state_dir = \"/run/xdd\"",
            &format!("state_dir = {:?}", dir),
        )
    }

    fn position(calls: &[String], c: &str) -> usize {
        calls
            .iter()
            .position(|x| x == c)
            .unwrap_or_else(|| panic!("{c} not in {calls:?}"))
    }

    fn with_usbdd(tag: &str) -> Appliance {
        load(&temp_state(USB_APPLIANCE, tag), &usb_files()).unwrap()
    }

    #[test]
    fn usb_controllers_on_a_driver_domain_are_created_by_xddctl_after_the_guest() {
        let a = with_usbdd("usb");
        let fake = Fake::new();
        let tl = quiet();
        up(&a, &fake, &tl).unwrap();
        let calls = fake.calls();
        // usbdd is domid 1, desk domid 2: the controllers follow desk's creation.
        assert_eq!(
            calls,
            [
                "create usbdd",
                "create desk",
                "xs-write /local/domain/1/backend/vusb/2/0 (16 nodes)",
                "xs-write /local/domain/1/backend/vusb/2/7 (20 nodes)",
            ]
        );
        let s = fake.state();
        assert_eq!(
            s.xs.get("/local/domain/1/backend/vusb/2/0/num-ports")
                .map(String::as_str),
            Some("4")
        );
        assert_eq!(
            s.xs.get("/local/domain/2/device/vusb/7/backend-id")
                .map(String::as_str),
            Some("1")
        );
        // xl gets desk's config without the driver domain's controllers, dom0's kept.
        let cfg = std::fs::read_to_string(&a.domain("desk").unwrap().config_path).unwrap();
        let parsed = crate::xlcfg::XlConfig::parse(&cfg, "desk.cfg").unwrap();
        let left: Vec<String> = parsed
            .get_list("usbctrl")
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(left, ["type=pv,ports=2,backend=0"]);
        assert!(tl
            .lines()
            .iter()
            .any(|l| l.contains("usbctrl 0 (USB 2, 4 ports) served by usbdd (domid 1)")));
    }

    #[test]
    fn a_guest_whose_usb_controller_cannot_be_created_is_destroyed_and_up_fails() {
        let a = with_usbdd("usb-fail");
        let fake = Fake::new();
        fake.state().fail_xs_write = Some("EACCES".into());
        let err = up(&a, &fake, &quiet()).unwrap_err();
        assert_eq!(
            err,
            "cannot create `desk`: usbctrl 0 (USB 2, 4 ports) served by usbdd: EACCES; \
             destroyed domid 2; rolled back: destroyed usbdd"
        );
        assert!(fake.calls().contains(&"destroy desk".to_string()));
        assert!(!fake.state().domains.contains_key("desk"));
    }

    #[test]
    fn a_guests_sound_policy_is_written_into_its_cards_right_after_create() {
        let a = load(&temp_state(SOUND_APPLIANCE, "sound"), &sound_files()).unwrap();
        let fake = Fake::new();
        let tl = quiet();
        up(&a, &fake, &tl).unwrap();
        let ids = fake.domids();
        let (dd, radio) = (ids["sounddd"], ids["radio"]);
        let calls = fake.calls();
        // radio's two cards on sounddd, right after its create; not its card on dom0, and
        // nothing for quiet (no `sound`: sounddd's default applies).
        let writes: Vec<&String> = calls.iter().filter(|c| c.starts_with("xs-write")).collect();
        assert_eq!(
            writes,
            [
                &format!("xs-write /local/domain/{dd}/backend/vsnd/{radio}/0/xdd-policy (1 nodes)"),
                &format!("xs-write /local/domain/{dd}/backend/vsnd/{radio}/1/xdd-policy (1 nodes)"),
            ],
            "{calls:?}"
        );
        assert!(
            position(&calls, writes[0]) > position(&calls, "create radio"),
            "{calls:?}"
        );
        for devid in [0, 1] {
            assert_eq!(
                fake.read(&format!(
                    "/local/domain/{dd}/backend/vsnd/{radio}/{devid}/xdd-policy"
                ))
                .as_deref(),
                Some("play volume_mdb=-6000")
            );
        }
        let s = fake.state();
        let policies: Vec<&String> = s.xs.keys().filter(|k| k.ends_with("/xdd-policy")).collect();
        assert_eq!(policies.len(), 2, "{policies:?}");
        drop(s);
        // Part of creating radio: before `up` reports it created.
        let lines = tl.lines();
        let at = |what: &str| {
            lines
                .iter()
                .position(|l| l.contains(what))
                .unwrap_or_else(|| panic!("{what} not in {lines:#?}"))
        };
        let created = at("radio        created     domid ");
        for devid in [0, 1] {
            let sound = at(&format!(
                "radio        sound       vsnd {devid} on sounddd: policy play \
                 volume_mdb=-6000 (xdd-policy)"
            ));
            assert!(sound < created, "{lines:#?}");
        }
    }

    #[test]
    fn a_guest_whose_sound_policy_cannot_be_written_is_destroyed_and_up_fails() {
        let a = load(&temp_state(SOUND_APPLIANCE, "sound-fail"), &sound_files()).unwrap();
        let fake = Fake::new();
        fake.state().fail_xs_write = Some("EACCES".into());
        let err = up(&a, &fake, &quiet()).unwrap_err();
        let radio = err
            .split("destroyed domid ")
            .nth(1)
            .and_then(|t| t.split(';').next())
            .unwrap_or_else(|| panic!("{err}"));
        assert_eq!(
            err,
            format!(
                "cannot create `radio`: vsnd 0 on sounddd: writing its xdd-policy: EACCES; \
                 destroyed domid {radio}; rolled back: destroyed quiet, sounddd"
            )
        );
        assert!(fake.calls().contains(&"destroy radio".to_string()));
        assert!(!fake.state().domains.contains_key("radio"));
    }

    /// [`SOUND_APPLIANCE`] with sounddd (ready) and radio already running, radio's card 0
    /// attached (libxl made its backend directory) and card 1 not: (appliance, fake, sounddd's
    /// domid, radio's domid).
    fn radio_running(tag: &str) -> (Appliance, Fake, u32, u32) {
        let a = load(&temp_state(SOUND_APPLIANCE, tag), &sound_files()).unwrap();
        let fake = Fake::new();
        let dd = fake.add_running("sounddd");
        let radio = fake.add_running("radio");
        {
            let mut s = fake.state();
            s.xs.insert(format!("/local/domain/{dd}/data/ready"), "1".into());
            s.xs.insert(
                format!("/local/domain/{dd}/backend/vsnd/{radio}/0/frontend-id"),
                radio.to_string(),
            );
        }
        (a, fake, dd, radio)
    }

    #[test]
    fn up_rewrites_the_sound_policy_of_a_guest_it_finds_running() {
        let (a, fake, dd, radio) = radio_running("sound-running");
        // What the guest's old `sound` table said.
        fake.state().xs.insert(
            format!("/local/domain/{dd}/backend/vsnd/{radio}/0/xdd-policy"),
            "play record".into(),
        );
        let tl = quiet();
        up(&a, &fake, &tl).unwrap();
        let policy = |devid: u32| {
            fake.read(&format!(
                "/local/domain/{dd}/backend/vsnd/{radio}/{devid}/xdd-policy"
            ))
        };
        assert_eq!(policy(0).as_deref(), Some("play volume_mdb=-6000"));
        assert_eq!(policy(1), None);
        let calls = fake.calls();
        assert_eq!(
            calls,
            [
                format!("xs-write /local/domain/{dd}/backend/vsnd/{radio}/0/xdd-policy (1 nodes)"),
                "create quiet".to_string(),
            ],
        );
        let lines = tl.lines().join("\n");
        assert!(
            lines.contains(
                "radio        sound       vsnd 0 on sounddd: policy play volume_mdb=-6000"
            ),
            "{lines}"
        );
    }

    #[test]
    fn a_running_guests_sound_policy_that_cannot_be_written_fails_up_before_creating() {
        let (a, fake, _, _) = radio_running("sound-running-fail");
        fake.state().fail_xs_write = Some("EACCES".into());
        let err = up(&a, &fake, &quiet()).unwrap_err();
        assert_eq!(
            err,
            "running `radio`: vsnd 0 on sounddd: writing its xdd-policy: EACCES"
        );
        let calls = fake.calls();
        assert!(
            !calls
                .iter()
                .any(|c| c.starts_with("create") || c.starts_with("destroy")),
            "{calls:?}"
        );
        assert!(fake.state().domains.contains_key("radio"));
    }

    #[test]
    fn guests_start_after_their_backends_are_ready() {
        let a = app(&temp_state(APPLIANCE, "order"));
        let fake = Fake::new();
        let tl = quiet();
        up(&a, &fake, &tl).unwrap();
        let calls = fake.calls();
        assert_eq!(calls.len(), 4, "{calls:?}");
        for g in ["create web1", "create web2"] {
            assert!(position(&calls, g) > position(&calls, "create netdd"));
        }
        let lines = tl.lines();
        let at = |what: &str| {
            lines
                .iter()
                .position(|l| l.contains(what))
                .unwrap_or_else(|| panic!("{what} not in {lines:?}"))
        };
        assert!(at("web1         create") > at("netdd        ready"));
        assert!(at("web2         create") > at("netdd        ready"));
        assert!(lines.last().unwrap().contains("4 domain(s) up"));
        // web2's amended config was written.
        let web2 = a.domain("web2").unwrap();
        assert!(std::fs::read_to_string(&web2.config_path)
            .unwrap()
            .contains("backend=netdd"));
    }

    #[test]
    fn a_driver_domain_gets_its_devices_made_assignable_and_passed_through() {
        let mut a = app(&temp_state(&owning_a_nic(APPLIANCE), "nic"));
        let fake = Fake::new();
        // Not resolved in dom0: nothing is written or started.
        assert_eq!(
            up(&a, &fake, &quiet()).unwrap_err(),
            "driver domain `hello`: its devices were not resolved in dom0 before writing its \
             xl.cfg"
        );
        assert!(fake.calls().is_empty());
        resolve(&mut a, &bus()).unwrap();
        let tl = quiet();
        up(&a, &fake, &tl).unwrap();
        let calls = fake.calls();
        assert!(
            position(&calls, "pci-assignable 0000:00:10.0") < position(&calls, "create hello"),
            "{calls:?}"
        );
        // The fake's create passed through what the generated xl.cfg lists.
        let hello = a.domain("hello").unwrap();
        let text = std::fs::read_to_string(&hello.config_path).unwrap();
        assert!(text.ends_with("pci = [ \"0000:00:10.0\" ]\n"), "{text}");
        let id = fake.domid("hello");
        assert_eq!(
            fake.read(&format!("/local/domain/0/backend/pci/{id}/0/dev-0"))
                .as_deref(),
            Some("0000:00:10.0")
        );
        let lines = tl.lines().join("\n");
        for want in [
            "hello        create      driver (image /boot/xdd/hello.elf); owns 1af4:1000#1 \
             (0000:00:10.0)",
            "hello        device      1af4:1000#1 (0000:00:10.0) made assignable (xl \
             pci-assignable-add: dom0's driver let go of it)",
        ] {
            assert!(lines.contains(want), "{want} not in\n{lines}");
        }
    }

    #[test]
    fn up_twice_starts_nothing_new() {
        let a = app(&temp_state(APPLIANCE, "twice"));
        let fake = Fake::new();
        up(&a, &fake, &quiet()).unwrap();
        let n = fake.calls().len();
        let tl = quiet();
        up(&a, &fake, &tl).unwrap();
        assert_eq!(fake.calls().len(), n);
        let lines = tl.lines().join("\n");
        assert!(
            lines.contains("web2         running     already running as domid"),
            "{lines}"
        );
        assert!(lines.contains("netdd        ready"), "{lines}");
    }

    #[test]
    fn crashed_leftovers_are_destroyed_first() {
        let a = app(&temp_state(APPLIANCE, "leftover"));
        let fake = Fake::new();
        fake.add_running("netdd");
        fake.state().crashed.insert("netdd".into());
        up(&a, &fake, &quiet()).unwrap();
        let calls = fake.calls();
        assert_eq!(calls[0], "destroy netdd", "{calls:?}");
        assert!(calls.contains(&"create netdd".to_string()));
    }

    #[test]
    fn independent_driver_domains_start_in_parallel() {
        let a = app(&temp_state(APPLIANCE, "parallel"));
        let fake = Fake::new();
        fake.state().create_delay = Duration::from_millis(300);
        let t = Instant::now();
        up(&a, &fake, &quiet()).unwrap();
        // Two waves of 300 ms each, not four creates in a row.
        assert!(
            t.elapsed() < Duration::from_millis(1000),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn a_readiness_timeout_rolls_back_what_up_started() {
        let text = temp_state(APPLIANCE, "timeout")
            .replace("ready_timeout_s = 5", "ready_timeout_s = 0.3");
        let a = app(&text);
        let fake = Fake::new();
        fake.state().never_ready.insert("hello".into());
        let err = up(&a, &fake, &quiet()).unwrap_err();
        assert!(
            err.starts_with(
                "driver domain `hello` was not ready within 0.3 s: /local/domain/2/data/ready is \
                 not 1 (it does not exist)"
            ) || err.starts_with(
                "driver domain `hello` was not ready within 0.3 s: /local/domain/1/data/ready is \
                 not 1 (it does not exist)"
            ),
            "{err}"
        );
        // web1 and web2 only need netdd, so they started; the rollback takes them down first.
        assert!(
            err.ends_with("rolled back: destroyed web1, web2, netdd, hello"),
            "{err}"
        );
        assert_eq!(fake.list().unwrap().len(), 1);
    }

    #[test]
    fn rollback_keeps_what_was_already_running() {
        let text = temp_state(APPLIANCE, "keep");
        let a = app(&text);
        let fake = Fake::new();
        fake.add_running("netdd");
        // web1 runs already too; web2's create fails.
        fake.add_running("web1");
        fake.state()
            .fail_create
            .insert("web2".into(), "libxl: error: nic backend not ready".into());
        // netdd existed but has no readiness key yet: it gets one shortly.
        let id = fake.domid("netdd");
        fake.state()
            .xs
            .insert(format!("/local/domain/{id}/data/ready"), "1".into());
        let err = up(&a, &fake, &quiet()).unwrap_err();
        assert_eq!(
            err,
            "cannot create `web2`: libxl: error: nic backend not ready; rolled back: \
             destroyed hello"
        );
        let calls = fake.calls();
        assert_eq!(
            position(&calls, "create web2") + 1,
            calls.len() - 1,
            "{calls:?}"
        );
        assert!(!calls.contains(&"create netdd".to_string()));
        assert!(!calls.contains(&"create web1".to_string()));
        assert!(!calls.contains(&"destroy netdd".to_string()));
        assert!(!calls.contains(&"destroy web1".to_string()));
    }

    #[test]
    fn a_driver_domain_dying_before_ready_is_named() {
        let a = app(&temp_state(APPLIANCE, "died"));
        let mut s = Scheduler::new(&a);
        let now = Instant::now();
        let first = s.startable();
        assert_eq!(first, [0, 1]);
        s.created(0, 5, now);
        s.created(1, 6, now);
        assert_eq!(s.awaiting().len(), 2);
        assert!(s.observed(1, Some("1".into())));
        assert!(!s.observed(0, Some("0".into())));
        s.died(0);
        assert_eq!(s.startable(), Vec::<usize>::new());
        match s.progress() {
            Progress::Failed(f) => assert_eq!(
                f.to_string(),
                "driver domain `netdd` died before it was ready (no /local/domain/5/data/ready \
                 yet); see /var/log/xen/xl-netdd.log and /var/log/xen/console/guest-netdd.log"
            ),
            p => panic!("{p:?}"),
        }
        let plan: Vec<Vec<&str>> = s
            .rollback_plan()
            .into_iter()
            .map(|w| w.into_iter().map(|i| a.domains[i].name.as_str()).collect())
            .collect();
        assert_eq!(plan, [vec!["netdd", "hello"]]);
        assert_eq!(s.state(2), State::Skipped);
    }

    #[test]
    fn rollback_plan_stops_guests_before_their_driver_domains() {
        let a = app(&temp_state(APPLIANCE, "plan"));
        let mut s = Scheduler::new(&a);
        let now = Instant::now();
        s.startable();
        s.created(0, 1, now);
        s.created(1, 2, now);
        s.observed(0, Some("1".into()));
        s.observed(1, Some("1".into()));
        assert_eq!(s.startable(), [2, 3]);
        s.created(2, 3, now);
        s.check_deadlines(now + Duration::from_secs(3600));
        assert_eq!(
            s.progress(),
            Progress::Running,
            "web2 is still being created"
        );
        s.create_failed(3, "boom".into());
        assert!(matches!(
            s.progress(),
            Progress::Failed(Failure::Create { .. })
        ));
        let plan: Vec<Vec<&str>> = s
            .rollback_plan()
            .into_iter()
            .map(|w| w.into_iter().map(|i| a.domains[i].name.as_str()).collect())
            .collect();
        assert_eq!(plan, [vec!["web1", "web2"], vec!["netdd", "hello"]]);
    }

    #[test]
    fn deadlines_fail_only_late_domains() {
        let a = app(&temp_state(APPLIANCE, "deadline"));
        let mut s = Scheduler::new(&a);
        let now = Instant::now();
        s.startable();
        s.created(0, 1, now);
        s.created(1, 2, now);
        assert_eq!(s.next_deadline(), Some(now + Duration::from_secs(5)));
        s.check_deadlines(now + Duration::from_secs(6));
        assert_eq!(s.state(1), State::Failed);
        assert!(matches!(s.state(0), State::Starting { .. }));
        match s.progress() {
            Progress::Failed(Failure::NotReady { domain, .. }) => assert_eq!(domain, "hello"),
            p => panic!("{p:?}"),
        }
    }
}
