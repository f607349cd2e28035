//! `cargo xtask testbed run`: validates scenarios, builds images, boots QEMU, reports.

use crate::fetch::{self, Cache};
use crate::release::Release;
use crate::results::{self, ScenarioResult};
use crate::util::{self, Result};
use crate::{hosttools, images, qemu};
use std::path::PathBuf;
use std::time::Duration;
use testbed_agent::scenario::{QemuDevice, Scenario};

/// Time allowed for Xen and dom0 to boot before the first scenario.
const BOOT_ALLOWANCE: Duration = Duration::from_secs(150);

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
    let scenarios = load(names)?;
    hosttools::ensure(false)?;
    let cache = Cache::new(Release::from_env()?);
    let manifest = fetch::fetch(&cache)?;
    eprintln!("testbed: building images");
    let boot = images::build(&cache, &manifest, &scenarios)?;
    let mut devices: Vec<QemuDevice> = scenarios
        .iter()
        .flat_map(|(s, _)| s.qemu_devices.iter().copied())
        .collect();
    devices.sort();
    devices.dedup();
    let timeout = BOOT_ALLOWANCE
        + scenarios
            .iter()
            .map(|(s, _)| Duration::from_secs(s.timeout_s + 30))
            .sum::<Duration>();
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
    let outcome = qemu::run(&qemu::Machine {
        boot: &boot,
        devices,
        timeout,
        log: log.clone(),
        scratch: cache.base.join("scratch"),
    })?;
    let _ = std::fs::copy(&log, logs.join("latest.log"));
    let results = results::collect(&names, &outcome.lines);
    println!("\n{}", results::table(&results));
    let failed: Vec<&ScenarioResult> = results
        .iter()
        .filter(|r| !(r.finished && r.passed))
        .collect();
    for r in &failed {
        for (check, ok, detail) in &r.checks {
            if !ok {
                println!("FAILED {}: check `{check}`: {detail}", r.name);
            }
        }
        if !r.finished {
            println!("FAILED {}: did not finish", r.name);
        }
    }
    if outcome.timed_out {
        println!(
            "\ntestbed: timed out after {}s; QEMU was killed. Last lines:",
            outcome.elapsed.as_secs()
        );
        for l in outcome.lines.iter().rev().take(30).rev() {
            println!("  | {l}");
        }
    }
    println!("testbed: full serial log: {}", log.display());
    if failed.is_empty() && !outcome.timed_out {
        Ok(results)
    } else {
        Err(format!(
            "{} of {} scenarios failed (log: {})",
            failed.len().max(usize::from(outcome.timed_out)),
            results.len(),
            log.display()
        ))
    }
}
