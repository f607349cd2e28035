//! `cargo xtask test` (every test: lints, unit tests, all testbed scenarios) and
//! `cargo xtask demo` (the appliance in the testbed, reported for people).

use crate::results::ScenarioResult;
use crate::util::{self, Result};
use crate::{fuzz, hosttools, testbed, unikernels};
use std::process::Command;
use std::time::Instant;

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(util::workspace_root());
    c
}

/// One stage of the test command.
type Stage = Box<dyn Fn() -> Result>;

/// Runs every test of the project; the first failing stage ends the run.
pub fn test() -> Result {
    let start = Instant::now();
    hosttools::ensure(true)?;
    hosttools::ensure_fuzz(true)?;
    let stages: Vec<(&str, Stage)> = vec![
        (
            "format",
            Box::new(|| {
                util::run(cargo().args(["fmt", "--all", "--check"]))?;
                // The fuzz crate is a workspace of its own (see fuzz/README.md).
                util::run(cargo().args(["fmt", "--check", "--manifest-path", "fuzz/Cargo.toml"]))
            }),
        ),
        (
            "clippy",
            Box::new(|| {
                util::run(cargo().args([
                    "clippy",
                    "--quiet",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ]))
            }),
        ),
        (
            // The unikernel binaries, without test builds (whose dev-dependencies would give
            // the runtime a std through feature unification).
            "clippy (unikernel images)",
            Box::new(|| {
                util::run(
                    cargo()
                        .args(["clippy", "--quiet", "--bins"])
                        .args(unikernels::package_args())
                        .args(["--", "-D", "warnings"]),
                )
            }),
        ),
        (
            "unit tests",
            Box::new(|| util::run(cargo().args(["test", "--quiet", "--workspace"]))),
        ),
        (
            // Every fuzz target for a few seconds from the committed corpus (build included,
            // about 2-3 minutes from scratch on 2 cores): a crash fails the test and names
            // the input.
            "fuzz (short pass)",
            Box::new(fuzz::test_pass),
        ),
        (
            "testbed scenarios",
            Box::new(|| testbed::run(&["all"]).map(|_| ())),
        ),
        ("testbed harness self-test", Box::new(testbed::selftest)),
    ];
    for (name, stage) in stages {
        let t = Instant::now();
        eprintln!("== {name}");
        stage().map_err(|e| format!("{name}: {e}"))?;
        eprintln!("== {name}: ok ({:.0}s)", t.elapsed().as_secs_f64());
    }
    eprintln!("all tests passed in {:.0}s", start.elapsed().as_secs_f64());
    Ok(())
}

/// Scenarios the demo boots.
const DEMO: &[&str] = &[
    "appliance-up-down",
    "appliance-restart",
    "blkdd-durable",
    "usbdd-storage",
    "sounddd-play",
];

/// Boots the appliance in the testbed and prints what each guest got.
pub fn demo() -> Result {
    hosttools::ensure(true)?;
    let report = testbed::run_scenarios(&testbed::load(DEMO)?, None)?;
    if report.failed > 0 || report.timed_out {
        return Err(format!(
            "{} of {} demo scenarios failed (log: {})",
            report.failed,
            report.results.len(),
            report.log.display()
        ));
    }
    let log = std::fs::read_to_string(&report.log).unwrap_or_default();
    let transcript = xddctl_transcript(&log);
    if !transcript.is_empty() {
        println!("\nWhat xddctl did (from dom0's console):");
        for line in transcript {
            println!("  {line}");
        }
    }
    print!("{}", people_report(&report.results));
    Ok(())
}

/// The scenarios' reports for people: each section once, with its lines from every
/// scenario in order (timings and metrics filled in), then one line per scenario saying how
/// many checks stood behind it. A scenario without report lines is listed by its checks.
fn people_report(results: &[ScenarioResult]) -> String {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for r in results {
        for (section, text) in &r.reports {
            let line = r.fill(text);
            match sections.iter_mut().find(|(s, _)| s == section) {
                Some((_, lines)) => lines.push(line),
                None => sections.push((section.clone(), vec![line])),
            }
        }
    }
    let mut out = String::new();
    for (section, lines) in &sections {
        out.push_str(&format!("\n{section}:\n"));
        for l in lines {
            out.push_str(&format!("  {l}\n"));
        }
    }
    out.push_str("\nBehind this report:\n");
    for r in results {
        let passed = r.checks.iter().filter(|c| c.1).count();
        out.push_str(&format!(
            "  {}: {passed} of {} checks passed in {:.0} s\n",
            r.name,
            r.checks.len(),
            r.seconds
        ));
        if r.reports.is_empty() {
            for (check, ok, _) in &r.checks {
                let mark = if *ok { "ok  " } else { "FAIL" };
                out.push_str(&format!("    {mark} {check}\n"));
            }
        }
    }
    out
}

/// The parts of xddctl's output (echoed to dom0's console as `xddctl| …`) that tell the story:
/// the first `up` timeline, the first `status` table, and every recovery under `run`.
fn xddctl_transcript(log: &str) -> Vec<String> {
    let lines: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("xddctl| ").map(|(_, rest)| rest))
        .collect();
    let mut out = Vec::new();
    if let Some(start) = lines.iter().position(|l| l.starts_with("# xddctl up:")) {
        for l in &lines[start..] {
            out.push(l.to_string());
            if l.contains(" up ") && (l.contains(" done ") || l.contains(" failed ")) {
                break;
            }
        }
    }
    if let Some(start) = lines.iter().position(|l| l.starts_with("DOMAIN ")) {
        for l in &lines[start..] {
            out.push(l.to_string());
            if l.starts_with("Domain-0") {
                break;
            }
        }
    }
    out.extend(
        lines
            .iter()
            .filter(|l| l.contains(" recovered "))
            .map(|l| l.to_string()),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::{people_report, xddctl_transcript};
    use crate::results::ScenarioResult;

    #[test]
    fn the_report_groups_sections_across_scenarios_and_fills_timings() {
        let a = ScenarioResult {
            name: "a".into(),
            checks: vec![("x".into(), true, String::new())],
            timings: vec![("up".into(), Some(1500.0))],
            reports: vec![
                ("Driver domains".into(), "netdd owns the NIC".into()),
                ("Guests".into(), "web1 connected {t:up} after create".into()),
            ],
            seconds: 12.0,
            ..Default::default()
        };
        let b = ScenarioResult {
            name: "b".into(),
            checks: vec![("y".into(), false, String::new())],
            reports: vec![("Guests".into(), "web2 too".into())],
            ..Default::default()
        };
        let out = people_report(&[a, b]);
        assert!(
            out.contains("Driver domains:\n  netdd owns the NIC\n\nGuests:\n  web1 connected 1.50 s after create\n  web2 too\n"),
            "{out}"
        );
        assert!(out.contains("a: 1 of 1 checks passed in 12 s"), "{out}");
        assert!(out.contains("b: 0 of 1 checks passed"), "{out}");
    }

    #[test]
    fn transcript_takes_the_first_up_the_status_table_and_recoveries() {
        let log = "\
[  1.0] xddctl| appliance ok
[  2.0] xddctl| # xddctl up: appliance `t`
[  2.0] xddctl|     9.9   +0.1  netdd  create  driver
[  2.0] xddctl|    12.3   +2.6  up     done    1 domain(s) up in 2.6 s
[  2.1] xddctl| after
[  3.0] noise
[  4.0] xddctl| DOMAIN    ROLE    ID
[  4.0] xddctl| netdd     driver  1
[  4.0] xddctl| Domain-0  dom0    0
[  5.0] xddctl| # xddctl up: appliance `again`
[  6.0] xddctl|    20.0  +5.0  netdd  recovered  web1 vif/0 reconnected
";
        assert_eq!(
            xddctl_transcript(log),
            [
                "# xddctl up: appliance `t`",
                "    9.9   +0.1  netdd  create  driver",
                "   12.3   +2.6  up     done    1 domain(s) up in 2.6 s",
                "DOMAIN    ROLE    ID",
                "netdd     driver  1",
                "Domain-0  dom0    0",
                "   20.0  +5.0  netdd  recovered  web1 vif/0 reconnected",
            ]
        );
    }
}
