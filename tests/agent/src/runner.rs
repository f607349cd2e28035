//! Executes scenarios in dom0 and prints `@@XDD` result lines for `cargo xtask testbed`.

use crate::cpio::Archive;
use crate::events::{Kind, Log};
use crate::hostenv::{self, Var};
use crate::scenario::{
    expand_device_mentions, expand_devices, placeholder, placeholders, Action, Domain, DomainKind,
    Event, Scenario, Step, RUN_TIMEOUT_S, WAIT_TIMEOUT_S,
};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use xdd_control::xenstore::Xenstore;

/// Default timeout of waiting steps.
const WAIT_TIMEOUT: Duration = Duration::from_secs(WAIT_TIMEOUT_S);
/// Default timeout of commands.
const RUN_TIMEOUT: Duration = Duration::from_secs(RUN_TIMEOUT_S);

/// Prints one result line on the console (which reaches the serial log).
fn report(kind: &str, fields: &[(&str, String)], detail: Option<&str>) {
    let mut line = format!("@@XDD {kind}");
    for (k, v) in fields {
        line.push_str(&format!(" {k}={}", v.replace(' ', "_")));
    }
    if let Some(d) = detail {
        line.push_str(&format!(" detail={}", d.replace('\n', " | ")));
    }
    println!("{line}");
}

/// Runs every scenario named in the plan file; returns the number that failed. `env` (the
/// host's settings) is exported at the top of every Linux domain's script.
pub fn run_plan(plan: &Path, log: Arc<Log>, env: &[Var]) -> usize {
    let text = std::fs::read_to_string(plan).unwrap_or_default();
    let mut failed = 0;
    for file in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let stem = Path::new(file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("");
        let parsed = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {file}: {e}"))
            .and_then(|t| Scenario::parse(&t, stem));
        match parsed {
            Ok(s) => {
                if !Runner::new(&s, log.clone(), env).run() {
                    failed += 1;
                }
            }
            Err(e) => {
                report("scenario-start", &[("name", stem.into())], None);
                report(
                    "check",
                    &[
                        ("scenario", stem.into()),
                        ("name", "parse".into()),
                        ("status", "fail".into()),
                    ],
                    Some(&e),
                );
                report(
                    "scenario-end",
                    &[
                        ("name", stem.into()),
                        ("status", "fail".into()),
                        ("ms", "0".into()),
                    ],
                    None,
                );
                failed += 1;
            }
        }
    }
    failed
}

/// State of one scenario run.
struct Runner<'a> {
    sc: &'a Scenario,
    log: Arc<Log>,
    xs: Option<Xenstore>,
    domids: BTreeMap<String, u32>,
    start: Instant,
    dir: PathBuf,
    ok: bool,
    env: &'a [Var],
}

/// Outcome of a step: pass, or fail with a reason.
type StepResult = Result<(), String>;

impl<'a> Runner<'a> {
    fn new(sc: &'a Scenario, log: Arc<Log>, env: &'a [Var]) -> Runner<'a> {
        Runner {
            sc,
            log,
            xs: Xenstore::open().ok(),
            domids: BTreeMap::new(),
            start: Instant::now(),
            dir: PathBuf::from(format!("/run/testbed/{}", sc.name)),
            ok: true,
            env,
        }
    }

    fn check(&mut self, name: &str, started: Instant, result: StepResult) {
        let ms = started.elapsed().as_millis().to_string();
        let status = if result.is_ok() { "pass" } else { "fail" };
        if result.is_err() {
            self.ok = false;
        }
        report(
            "check",
            &[
                ("scenario", self.sc.name.clone()),
                ("name", name.into()),
                ("status", status.into()),
                ("ms", ms),
            ],
            result.err().as_deref(),
        );
    }

    fn run(mut self) -> bool {
        report("scenario-start", &[("name", self.sc.name.clone())], None);
        let _ = std::fs::create_dir_all(&self.dir);
        let _ = sh("xl dmesg -c >/dev/null", Duration::from_secs(10));
        // Console logs are per domain name: start this scenario's domains with empty ones.
        for d in &self.sc.domains {
            let _ = std::fs::remove_file(format!("/var/log/xen/console/guest-{}.log", d.name));
        }
        self.start = Instant::now();
        if self.xs.is_none() {
            self.check(
                "xenstore",
                self.start,
                Err("cannot connect to xenstored".into()),
            );
        }
        for dev in self.sc.qemu_devices.iter().filter(|d| d.passed_through()) {
            let t = Instant::now();
            let r = sh(
                &format!(
                    "xl pci-assignable-add {} 2>&1 || true; xl pci-assignable-list",
                    dev.bdf()
                ),
                RUN_TIMEOUT,
            )
            .and_then(|out| {
                if out.contains(&dev.bdf()[5..]) {
                    Ok(())
                } else {
                    Err(format!("{} is not assignable: {out}", dev.bdf()))
                }
            });
            self.check(&format!("assignable-{}", dev.name()), t, r);
        }
        for f in &self.sc.files {
            let t = Instant::now();
            let path = Path::new(&f.path);
            let r = expand_device_mentions(&f.content, &self.sc.qemu_devices).and_then(|text| {
                path.parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|_| std::fs::write(path, text))
                    .map_err(|e| format!("cannot write {}: {e}", f.path))
            });
            if r.is_err() {
                self.check(&format!("file {}", f.path), t, r);
            }
        }
        let deadline = self.start + Duration::from_secs(self.sc.timeout_s);
        for step in self.sc.steps.iter() {
            if !self.ok {
                break;
            }
            if Instant::now() > deadline {
                self.check(
                    "scenario-timeout",
                    self.start,
                    Err(format!("over {} s", self.sc.timeout_s)),
                );
                break;
            }
            let t = Instant::now();
            let label = step.label();
            let result = self.step(step);
            match step.action() {
                Ok(Action::Record { .. }) | Ok(Action::Report { .. }) | Ok(Action::Sleep(_))
                    if result.is_ok() => {}
                Ok(Action::Run(_)) if result.is_ok() => {}
                _ => self.check(&label, t, result),
            }
        }
        // A PVH domain that triple-faults is restarted silently by some configurations: fail it.
        if let Ok(dmesg) = sh("xl dmesg", Duration::from_secs(10)) {
            let faults: Vec<&str> = dmesg
                .lines()
                .filter(|l| l.contains("Triple fault"))
                .collect();
            if !faults.is_empty() {
                self.check("no-triple-fault", self.start, Err(faults.join(" | ")));
            }
        }
        self.timings();
        if !self.ok {
            self.diagnostics();
        }
        self.cleanup();
        let status = if self.ok { "pass" } else { "fail" };
        report(
            "scenario-end",
            &[
                ("name", self.sc.name.clone()),
                ("status", status.into()),
                ("ms", self.start.elapsed().as_millis().to_string()),
                ("xenstore_events", self.log.len().to_string()),
            ],
            None,
        );
        self.ok
    }

    /// Replaces `@name` of a QEMU device with its BDF and `{domid:NAME}` with the domain's id
    /// (`{domid:dom0}` → 0). Domains created by tools under test are looked up with `xl domid`.
    fn expand(&mut self, s: &str) -> Result<String, String> {
        let mut out = expand_device_mentions(s, &self.sc.qemu_devices)?;
        for p in placeholders(s) {
            let id = self
                .domid(&p)
                .ok_or_else(|| format!("{}: no domain {p} exists", placeholder(&p)))?;
            out = out.replace(&placeholder(&p), &id.to_string());
        }
        Ok(out)
    }

    /// The domid of a domain by name: the live one (domains may be re-created by tools under
    /// test), else the last one seen (the domain may be gone by the time timings are computed).
    fn domid(&mut self, name: &str) -> Option<u32> {
        if name == "dom0" {
            return Some(0);
        }
        let live = sh(&format!("xl domid {name}"), Duration::from_secs(10))
            .ok()
            .and_then(|out| out.trim().parse::<u32>().ok());
        if let Some(id) = live {
            self.domids.insert(name.to_string(), id);
        }
        self.domids.get(name).copied()
    }

    fn step(&mut self, step: &Step) -> StepResult {
        let timeout = step.timeout_s.map(Duration::from_secs);
        let action = step.action()?;
        let expect_fail = step.expects_failure();
        match action {
            Action::Run(cmd) => sh(&self.expand(&cmd)?, timeout.unwrap_or(RUN_TIMEOUT)).map(|_| ()),
            Action::Check { command, .. } => {
                let r = sh(&self.expand(&command)?, timeout.unwrap_or(RUN_TIMEOUT));
                match (r, expect_fail) {
                    (Ok(_), false) | (Err(_), true) => Ok(()),
                    (Ok(out), true) => Err(format!(
                        "expected failure, but it succeeded: {}",
                        tail(&out, 3)
                    )),
                    (Err(e), false) => Err(e),
                }
            }
            Action::Record {
                name,
                command,
                unit,
            } => {
                let out = sh(&self.expand(&command)?, timeout.unwrap_or(RUN_TIMEOUT))?;
                let value = out.split_whitespace().last().unwrap_or("").to_string();
                if value.is_empty() {
                    return Err(format!("{name}: the command printed nothing"));
                }
                report(
                    "metric",
                    &[
                        ("scenario", self.sc.name.clone()),
                        ("name", name),
                        ("value", value),
                        ("unit", unit),
                    ],
                    None,
                );
                Ok(())
            }
            Action::Report { section, command } => {
                let out = sh(&self.expand(&command)?, timeout.unwrap_or(RUN_TIMEOUT))?;
                for line in out.lines().filter(|l| !l.trim().is_empty()) {
                    report(
                        "report",
                        &[
                            ("scenario", self.sc.name.clone()),
                            ("section", section.clone()),
                        ],
                        Some(line),
                    );
                }
                Ok(())
            }
            Action::Create(name) => {
                let d = self.sc.domain(&name).ok_or("unknown domain")?.clone();
                let r = self.create(&d, timeout.unwrap_or(RUN_TIMEOUT));
                match (r, expect_fail) {
                    (Ok(()), false) | (Err(_), true) => Ok(()),
                    (Ok(()), true) => {
                        Err(format!("xl create {name} succeeded but should have failed"))
                    }
                    (Err(e), false) => Err(e),
                }
            }
            Action::Prepare(name) => {
                let d = self.sc.domain(&name).ok_or("unknown domain")?.clone();
                self.prepare(&d).map(|_| ())
            }
            Action::Wait { domain, check } => {
                let id = self
                    .domid(&domain)
                    .ok_or_else(|| format!("no domain {domain} exists"))?;
                let path = format!("/local/domain/{id}/data/check/{check}");
                let v =
                    self.wait_node(&path, None, timeout.unwrap_or(WAIT_TIMEOUT), Some(&domain))?;
                if v == "pass" {
                    Ok(())
                } else {
                    Err(format!("guest {domain}: {v}"))
                }
            }
            Action::WaitKey { path, value } => {
                let path = self.expand(&path)?;
                self.wait_node(
                    &path,
                    value.as_deref(),
                    timeout.unwrap_or(WAIT_TIMEOUT),
                    None,
                )
                .map(|_| ())
            }
            Action::Shutdown(name) => {
                let t = timeout.unwrap_or(WAIT_TIMEOUT);
                let domid = sh(&format!("xl domid {name}"), t)
                    .ok()
                    .and_then(|o| o.trim().parse::<u32>().ok());
                sh(&format!("xl shutdown {name}"), t)?;
                // As xddctl does: once a domain that owns PCI devices has shut down, xl's
                // monitor takes them away and libxl waits 10 s per function for the dead
                // pcifront; answer pciback for it (one `pci-removed` line each).
                let xl = domid.and_then(|_| xdd_control::xl::Xl::new().ok());
                let tl = xdd_control::timeline::Timeline::stdout();
                let deadline = Instant::now() + t;
                while Instant::now() < deadline {
                    if sh(&format!("xl domid {name}"), t).is_err() {
                        return Ok(());
                    }
                    if let (Some(xl), Some(id)) = (&xl, domid) {
                        xdd_control::pciback::look(xl, &tl, &name, id);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(format!(
                    "{name} still exists {} s after xl shutdown",
                    t.as_secs()
                ))
            }
            Action::Destroy(name) => sh(
                &format!("xl destroy {name}"),
                timeout.unwrap_or(WAIT_TIMEOUT),
            )
            .map(|_| ()),
            Action::Sleep(s) => {
                std::thread::sleep(Duration::from_secs_f64(s));
                Ok(())
            }
        }
    }

    /// Waits until `path` exists (and equals `want`, if given); returns its value.
    fn wait_node(
        &mut self,
        path: &str,
        want: Option<&str>,
        timeout: Duration,
        guest: Option<&str>,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            let seen = self.log.len();
            let xs = self.xs.as_mut().ok_or("no xenstore connection")?;
            if let Ok(v) = xs.read(path) {
                if want.is_none_or(|w| w == v) {
                    return Ok(v);
                }
                last = Some(v);
            }
            if Instant::now() >= deadline {
                let now = last
                    .map(|v| format!("it is `{v}`"))
                    .unwrap_or_else(|| "it does not exist".into());
                let who = guest
                    .map(|g| format!(" (guest {g}: see its console below)"))
                    .unwrap_or_default();
                return Err(format!(
                    "{path}{} not seen within {} s; {now}{who}",
                    want.map(|w| format!("={w}")).unwrap_or_default(),
                    timeout.as_secs()
                ));
            }
            self.log.wait_beyond(seen, Duration::from_millis(250));
        }
    }

    /// Writes a domain's xl.cfg (and its ramdisk); returns the config's path.
    fn prepare(&mut self, d: &Domain) -> Result<PathBuf, String> {
        let cfg = self.xl_config(d)?;
        let cfg_path = self.dir.join(format!("{}.cfg", d.name));
        std::fs::write(&cfg_path, &cfg)
            .map_err(|e| format!("cannot write {}: {e}", cfg_path.display()))?;
        Ok(cfg_path)
    }

    fn create(&mut self, d: &Domain, timeout: Duration) -> StepResult {
        let cfg_path = self.prepare(d)?;
        self.log.push(Kind::CreateStart(d.name.clone()));
        let r = sh(&format!("xl create {}", cfg_path.display()), timeout);
        self.log.push(Kind::CreateDone(d.name.clone()));
        if let Ok(id) = sh(&format!("xl domid {}", d.name), Duration::from_secs(10)) {
            if let Ok(id) = id.trim().parse() {
                self.domids.insert(d.name.clone(), id);
            }
        }
        r.map(|_| ())
    }

    fn xl_config(&mut self, d: &Domain) -> Result<String, String> {
        let mut c = format!(
            "name = \"{}\"\ntype = \"{}\"\nmemory = {}\nvcpus = 1\non_poweroff = \"destroy\"\n\
             on_reboot = \"destroy\"\non_crash = \"preserve\"\n",
            d.name,
            d.xl_type(),
            d.memory_mib()
        );
        match d.kind {
            DomainKind::Unikernel => {
                let image = d.image.as_deref().unwrap_or_default();
                c.push_str(&format!("kernel = \"/boot/xdd/{image}.elf\"\n"));
                if !d.cmdline.is_empty() {
                    c.push_str(&format!("cmdline = \"{}\"\n", d.cmdline));
                }
            }
            DomainKind::LinuxGuest | DomainKind::LinuxDd => {
                let base = if d.kind == DomainKind::LinuxDd {
                    "linuxdd"
                } else {
                    "guest"
                };
                let ramdisk = self.dir.join(format!("{}.cpio.gz", d.name));
                let mut data = std::fs::read(format!("/boot/testbed/{base}.cpio.gz"))
                    .map_err(|e| format!("cannot read the {base} initramfs: {e}"))?;
                let mut overlay = Archive::new();
                let script = format!("#!/bin/sh\n{}{}\n", hostenv::exports(self.env), d.script);
                overlay.file("scenario.sh", 0o755, script);
                // The kernel accepts an uncompressed archive after a compressed one only at a
                // 4-byte aligned offset; zero bytes in between are skipped.
                data.resize(data.len().next_multiple_of(4), 0);
                data.extend_from_slice(&overlay.to_bytes());
                std::fs::write(&ramdisk, data)
                    .map_err(|e| format!("cannot write {}: {e}", ramdisk.display()))?;
                let mut extra = format!("console=hvc0 xdd.name={}", d.name);
                if let Some(ip) = &d.ip {
                    extra.push_str(&format!(" xdd.ip={ip}"));
                }
                if !d.cmdline.is_empty() {
                    extra.push(' ');
                    extra.push_str(&d.cmdline);
                }
                c.push_str(&format!(
                    "kernel = \"/boot/testbed/vmlinux\"\nramdisk = \"{}\"\nextra = \"{extra}\"\n",
                    ramdisk.display()
                ));
                if d.kind == DomainKind::LinuxDd {
                    c.push_str("driver_domain = 1\n");
                }
            }
        }
        let config = expand_devices(&d.config, &self.sc.qemu_devices)?;
        c.push_str(&self.expand(&config)?);
        c.push('\n');
        Ok(c)
    }

    /// Evaluates and reports the scenario's timings from the event log.
    fn timings(&mut self) {
        for t in &self.sc.timings {
            let from = Event::parse(&t.from)
                .ok()
                .and_then(|e| self.find(&e, self.start));
            let to = from.and_then(|f| Event::parse(&t.to).ok().and_then(|e| self.find(&e, f)));
            let mut fields = vec![("scenario", self.sc.name.clone()), ("name", t.name.clone())];
            match (from, to) {
                (Some(f), Some(to)) => {
                    fields.push(("ms", format!("{:.1}", (to - f).as_secs_f64() * 1000.0)));
                }
                _ => fields.push(("status", "missing".into())),
            }
            report("timing", &fields, None);
        }
    }

    fn find(&mut self, e: &Event, after: Instant) -> Option<Instant> {
        match e {
            Event::CreateStart(d) => self
                .log
                .first_after(after, |k| *k == Kind::CreateStart(d.clone())),
            Event::CreateDone(d) => self
                .log
                .first_after(after, |k| *k == Kind::CreateDone(d.clone())),
            Event::Xenstore { path, value } => {
                let path = self.expand(path).ok()?;
                self.log.first_after(after, |k| {
                    matches!(k, Kind::Node { path: p, value: Some(v) } if *p == path && reached(v, value))
                })
            }
            Event::Mark { domain, name } => {
                let id = self.domid(domain)?;
                let path = format!("/local/domain/{id}/data/mark/{name}");
                self.log.first_after(
                    after,
                    |k| matches!(k, Kind::Node { path: p, value: Some(_) } if *p == path),
                )
            }
        }
    }

    /// Prints what helps to understand a failure: guest consoles and Xen's log.
    fn diagnostics(&self) {
        for d in &self.sc.domains {
            let f = format!("/var/log/xen/console/guest-{}.log", d.name);
            if let Ok(text) = std::fs::read_to_string(&f) {
                println!(
                    "diag: ---- console of {} (last 40 lines of {f}) ----",
                    d.name
                );
                for l in tail_lines(&text, 40) {
                    println!("diag: {}| {l}", d.name);
                }
            }
        }
        if let Ok(out) = sh("xl list; xl dmesg | tail -n 25", Duration::from_secs(10)) {
            for l in out.lines() {
                println!("diag: xen| {l}");
            }
        }
        if let Ok(out) = sh(
            "tail -n 20 /var/log/xen/xl-*.log 2>/dev/null",
            Duration::from_secs(10),
        ) {
            for l in out.lines() {
                println!("diag: xl| {l}");
            }
        }
    }

    /// Destroys every domain but dom0 so the next scenario starts clean.
    fn cleanup(&self) {
        // Processes a step left running in the background (a supervisor under test, such as
        // `xddctl run`) end with the scenario, before its domains are destroyed.
        let groups = std::mem::take(&mut *STEP_GROUPS.lock().unwrap_or_else(|e| e.into_inner()));
        let left: Vec<String> = live_groups()
            .into_iter()
            .filter(|g| groups.contains(g))
            .map(|g| format!("-{g}"))
            .collect();
        if !left.is_empty() {
            let _ = sh(
                &format!("kill -9 {}", left.join(" ")),
                Duration::from_secs(10),
            );
        }
        let _ = sh(
            "for d in $(xl list | awk 'NR>2 {print $1}'); do xl destroy \"$d\" 2>/dev/null; done",
            Duration::from_secs(60),
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// True when an observed value satisfies a wanted one. The watcher reads a node after it
/// changed, so a quick 2→4 of a xenbus state may be seen only as 4: along the connect path
/// (states 1–4) a later state counts as having passed the earlier one.
fn reached(observed: &str, wanted: &str) -> bool {
    match (observed.parse::<i64>(), wanted.parse::<i64>()) {
        (Ok(o), Ok(w)) => o == w || (w < o && o <= 4),
        _ => observed == wanted,
    }
}

fn tail(s: &str, n: usize) -> String {
    tail_lines(s, n).join(" | ")
}

fn tail_lines(s: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// Process groups of the shells [`sh`] started (each runs in its own group).
static STEP_GROUPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// The process groups that have members now (from /proc/<pid>/stat).
fn live_groups() -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis: state ppid pgrp …
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        if let Some(g) = rest.split_whitespace().nth(2).and_then(|g| g.parse().ok()) {
            out.push(g);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Runs a shell command with a timeout; Ok(stdout) on exit 0, else Err with output's tail.
pub fn sh(cmd: &str, timeout: Duration) -> Result<String, String> {
    let out_path = std::env::temp_dir().join(format!(
        "agent-{}-{:?}.out",
        std::process::id(),
        std::thread::current().id()
    ));
    let out_file = std::fs::File::create(&out_path)
        .map_err(|e| format!("cannot create {}: {e}", out_path.display()))?;
    let err_file = out_file.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(out_file)
        .stderr(err_file)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run /bin/sh: {e}"))?;
    STEP_GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(child.id());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if Instant::now() >= deadline {
            // The whole group: a timed-out step must not leave its children running.
            let _ = Command::new("kill")
                .arg("-9")
                .arg(format!("-{}", child.id()))
                .status();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    match status {
        Some(s) if s.success() => Ok(out),
        Some(s) => Err(format!("`{}` failed ({s}): {}", short(cmd), tail(&out, 4))),
        None => Err(format!(
            "`{}` timed out after {} s: {}",
            short(cmd),
            timeout.as_secs(),
            tail(&out, 4)
        )),
    }
}

fn short(cmd: &str) -> String {
    let one = cmd.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.len() > 80 {
        format!(
            "{}…",
            &one[..one
                .char_indices()
                .nth(80)
                .map(|(i, _)| i)
                .unwrap_or(one.len())]
        )
    } else {
        one
    }
}
