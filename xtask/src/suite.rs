//! `cargo xtask test` (every test: lints, unit tests, all testbed scenarios) and
//! `cargo xtask demo` (the appliance in the testbed, reported for people).

use crate::results::ScenarioResult;
use crate::util::{self, Result};
use crate::{hosttools, testbed, unikernels};
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
    let stages: Vec<(&str, Stage)> = vec![
        (
            "format",
            Box::new(|| util::run(cargo().args(["fmt", "--all", "--check"]))),
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
    "baseline-pv",
    "linux-netdd",
    "appliance-up-down",
    "appliance-restart",
];

/// Boots the appliance in the testbed and prints what each guest got.
pub fn demo() -> Result {
    hosttools::ensure(true)?;
    let results = testbed::run(DEMO)?;
    println!("\nWhat the guests got:");
    for r in &results {
        describe(r);
    }
    Ok(())
}

fn describe(r: &ScenarioResult) {
    println!("  {}:", r.name);
    for (check, ok, detail) in &r.checks {
        let mark = if *ok { "ok  " } else { "FAIL" };
        let extra = if detail.is_empty() {
            String::new()
        } else {
            format!(" ({detail})")
        };
        println!("    {mark} {check}{extra}");
    }
    for (name, ms) in &r.timings {
        match ms {
            Some(ms) => println!("    time {name}: {:.2} s", ms / 1000.0),
            None => println!("    time {name}: never happened"),
        }
    }
    for (name, value, unit) in &r.metrics {
        println!("    {name}: {value} {unit}");
    }
}
