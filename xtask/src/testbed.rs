//! `cargo xtask testbed run`: validates scenarios, builds images, boots QEMU, reports.

use crate::fetch::{self, Cache};
use crate::release::Release;
use crate::results::{self, ScenarioResult};
use crate::util::{self, Result};
use crate::{hosttools, images, qemu};
use std::path::{Path, PathBuf};
use std::time::Duration;
use testbed_agent::scenario::{QemuDevice, Scenario};

/// Time allowed for Xen and dom0 to boot before the first scenario (about 20–60 s).
const BOOT_ALLOWANCE: Duration = Duration::from_secs(240);

/// Directory of the scenario files.
pub fn scenario_dir() -> PathBuf {
    util::workspace_root().join("tests/scenarios")
}

/// Names of all scenarios, sorted.
pub fn all_names() -> Result<Vec<String>> {
    let dir = scenario_dir();
    let rd = std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut names: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".toml")
                .map(String::from)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Directory of the harness self-test scenarios (not part of `all`).
pub fn harness_dir() -> PathBuf {
    util::workspace_root().join("tests/harness")
}

/// Loads and validates one scenario file.
pub fn load_file(path: &std::path::Path) -> Result<(Scenario, String)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    Ok((Scenario::parse(&text, stem)?, text))
}

/// The harness self-test: a failing check and a hang must both be reported as failures that
/// name the check and the log, the hang ended by the watchdog (`watchdog.rs`), and QEMU must
/// be gone afterwards.
pub fn selftest() -> Result {
    let scenarios = vec![
        load_file(&harness_dir().join("never-connects.toml"))?,
        load_file(&harness_dir().join("hangs.toml"))?,
    ];
    // The overall timeout is an outer bound only: the watchdog must end `hangs` well before.
    let report = run_scenarios(&scenarios, Some(Duration::from_secs(480)))?;
    let mut problems = Vec::new();
    let check = "key:/local/domain/{domid:deaf}/device/vif/0/state=4";
    if !report
        .text
        .contains(&format!("FAILED never-connects: check `{check}`"))
    {
        problems.push("the failing wait was not reported by name");
    }
    if !report.text.contains(&report.log.display().to_string()) {
        problems.push("the log path was not printed");
    }
    if !report.timed_out || !report.text.contains("FAILED hangs: did not finish") {
        problems.push("the hanging scenario was not ended by the timeout");
    }
    if !report
        .text
        .contains("watchdog: scenario `hangs` has not ended")
    {
        problems.push("the watchdog did not end the stopped agent's scenario");
    }
    if std::path::Path::new(&format!("/proc/{}", report.qemu_pid)).exists() {
        problems.push("QEMU is still running");
    }
    if report.failed != 2 {
        problems.push("both self-test scenarios must fail");
    }
    if problems.is_empty() {
        eprintln!("testbed: harness self-test passed (failures reported, QEMU gone)");
        Ok(())
    } else {
        Err(format!("harness self-test: {}", problems.join("; ")))
    }
}

/// Loads and validates scenarios by name (`all` for every one).
pub fn load(names: &[&str]) -> Result<Vec<(Scenario, String)>> {
    let names: Vec<String> = if names.is_empty() || names == ["all"] {
        all_names()?
    } else {
        names.iter().map(|s| s.to_string()).collect()
    };
    let mut out = Vec::new();
    for n in &names {
        let path = scenario_dir().join(format!("{n}.toml"));
        let text = std::fs::read_to_string(&path).map_err(|_| {
            format!(
                "no scenario `{n}` ({} does not exist; see `cargo xtask testbed list`)",
                path.display()
            )
        })?;
        out.push((Scenario::parse(&text, n)?, text));
    }
    Ok(out)
}

/// Prints the scenarios with their summaries.
pub fn list() -> Result {
    for (s, _) in load(&[])? {
        println!("{:<22} {}", s.name, s.summary);
    }
    Ok(())
}

/// Runs scenarios in one boot; returns their results (Err when any failed).
pub fn run(names: &[&str]) -> Result<Vec<ScenarioResult>> {
    let report = run_scenarios(&load(names)?, None)?;
    if report.failed == 0 && !report.timed_out {
        Ok(report.results)
    } else {
        Err(format!(
            "{} of {} scenarios failed (log: {})",
            report.failed,
            report.results.len(),
            report.log.display()
        ))
    }
}

/// What one boot of the testbed produced.
pub struct Report {
    /// Per-scenario results.
    pub results: Vec<ScenarioResult>,
    /// Scenarios that failed or did not finish.
    pub failed: usize,
    /// True when QEMU was killed by the timeout.
    pub timed_out: bool,
    /// The saved serial log.
    pub log: PathBuf,
    /// Everything printed about the run (table, failures, log path).
    pub text: String,
    /// QEMU's process id (gone by the time this is returned).
    pub qemu_pid: u32,
}

/// Boots the testbed once for `scenarios` (timeout computed from them unless given), prints
/// and returns the report.
pub fn run_scenarios(
    scenarios: &[(Scenario, String)],
    timeout: Option<Duration>,
) -> Result<Report> {
    hosttools::ensure(false)?;
    let cache = Cache::new(Release::from_env()?);
    let manifest = fetch::fetch(&cache)?;
    eprintln!("testbed: building images");
    let boot = images::build(&cache, &manifest, scenarios)?;
    let mut devices: Vec<QemuDevice> = scenarios
        .iter()
        .flat_map(|(s, _)| s.qemu_devices.iter().copied())
        .collect();
    devices.sort();
    devices.dedup();
    let timeout = timeout.unwrap_or_else(|| {
        BOOT_ALLOWANCE
            + scenarios
                .iter()
                .map(|(s, _)| Duration::from_secs(s.timeout_s + 30))
                .sum::<Duration>()
    });
    let names: Vec<String> = scenarios.iter().map(|(s, _)| s.name.clone()).collect();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let logs = cache.base.join("logs");
    let log = logs.join(format!(
        "{stamp}-{}.log",
        names.first().map(String::as_str).unwrap_or("run")
    ));
    eprintln!(
        "testbed: booting Xen {} (scenarios: {}; timeout {}s; log {})",
        cache.release.xen,
        names.join(" "),
        timeout.as_secs(),
        log.display()
    );
    let limits = scenarios
        .iter()
        .map(|(s, _)| (s.name.clone(), Duration::from_secs(s.hard_limit_s())))
        .collect();
    let outcome = qemu::run(&qemu::Machine {
        boot: &boot,
        devices,
        timeout,
        boot_allowance: BOOT_ALLOWANCE,
        limits,
        log: log.clone(),
        scratch: cache.base.join("scratch"),
        file_server: std::env::current_exe()
            .map_err(|e| format!("cannot locate xtask for the file server: {e}"))?,
    })?;
    let _ = std::fs::copy(&log, logs.join("latest.log"));
    let mut results = results::collect(&names, &outcome.lines);
    wav_checks(scenarios, &cache.base.join("scratch"), &mut results);
    disk_checks(scenarios, &cache.base.join("scratch"), &mut results);
    let mut text = format!("\n{}", results::table(&results));
    let failed: Vec<&ScenarioResult> = results
        .iter()
        .filter(|r| !(r.finished && r.passed))
        .collect();
    for r in &failed {
        for (check, ok, detail) in &r.checks {
            if !ok {
                text.push_str(&format!("FAILED {}: check `{check}`: {detail}\n", r.name));
            }
        }
        if !r.finished {
            text.push_str(&format!("FAILED {}: did not finish\n", r.name));
        }
    }
    if outcome.timed_out {
        let why = match &outcome.stalled {
            Some(why) => format!(
                "{why}; QEMU was killed after {}s",
                outcome.elapsed.as_secs()
            ),
            None => format!(
                "timed out after {}s; QEMU was killed",
                outcome.elapsed.as_secs()
            ),
        };
        text.push_str(&format!("\ntestbed: {why}. Last lines:\n"));
        for l in outcome.lines.iter().rev().take(30).rev() {
            text.push_str(&format!("  | {l}\n"));
        }
    }
    text.push_str(&format!("testbed: full serial log: {}\n", log.display()));
    print!("{text}");
    let failed = failed.len();
    Ok(Report {
        results,
        failed,
        timed_out: outcome.timed_out,
        log,
        text,
        qemu_pid: outcome.pid,
    })
}

/// Runs the scenarios' `[[disk_check]]`s on the disk images QEMU used (QEMU has exited: what
/// a guest flushed is in the file or was lost) and adds them to their results; a failed one
/// fails the scenario.
fn disk_checks(scenarios: &[(Scenario, String)], scratch: &Path, results: &mut [ScenarioResult]) {
    for (s, _) in scenarios {
        let Some(r) = results.iter_mut().find(|r| r.name == s.name) else {
            continue;
        };
        for check in &s.disk_checks {
            let (name, ok, detail) = check.run(scratch);
            r.reports.push((
                DISK_REPORT.to_string(),
                format!("{name}: {detail} ({})", if ok { "ok" } else { "FAILED" }),
            ));
            eprintln!(
                "  host check {}: {name} {}: {detail}",
                s.name,
                if ok { "pass" } else { "FAIL" }
            );
            r.passed &= ok;
            r.checks.push((name, ok, detail));
        }
    }
}

/// The report section (for people: `cargo xtask demo`) of the `[[disk_check]]` results.
const DISK_REPORT: &str = "What the disks held after the boot (their images, checked on the host)";

/// The report section (for people: `cargo xtask demo`) of the `[[wav_check]]` results.
const WAV_REPORT: &str = "What the sound card played (QEMU's output, checked on the host)";

/// Runs the scenarios' `[[wav_check]]`s on what QEMU's sound devices wrote (each check on its
/// `source`'s file, now that QEMU has exited and finished it) and adds them to their results; a failed one fails the
/// scenario.
fn wav_checks(scenarios: &[(Scenario, String)], scratch: &Path, results: &mut [ScenarioResult]) {
    for (s, _) in scenarios {
        let Some(r) = results.iter_mut().find(|r| r.name == s.name) else {
            continue;
        };
        for check in &s.wav_checks {
            let path = scratch.join(check.source.file());
            let file = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()));
            for (name, ok, detail) in check.run(file) {
                eprintln!(
                    "  host check {}: {name} {}: {detail}",
                    s.name,
                    if ok { "pass" } else { "FAIL" }
                );
                r.passed &= ok;
                r.reports.push((
                    WAV_REPORT.to_string(),
                    format!("{name}: {detail} ({})", if ok { "ok" } else { "FAILED" }),
                ));
                r.checks.push((name, ok, detail));
            }
        }
    }
}
