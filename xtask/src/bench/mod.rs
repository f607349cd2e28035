//! `cargo xtask bench …`: performance figures of our driver domains side by side with the
//! Linux equivalents, measured in one testbed boot. Targets live here, never in timed tests.

mod blk;
mod net;
mod nic;
mod snd;
mod stats;
mod turns;
mod usb;

use crate::results::ScenarioResult;
use crate::testbed;
use crate::util::{self, Result};

/// Runs a benchmark scenario file from tests/bench/ and returns its result.
fn run_bench_scenario(name: &str) -> Result<ScenarioResult> {
    let path = util::workspace_root()
        .join("tests/bench")
        .join(format!("{name}.toml"));
    let scenario = testbed::load_file(&path)?;
    let report = testbed::run_scenarios(&[scenario], None)?;
    let result = report.results.into_iter().next().ok_or("no result")?;
    if !(result.finished && result.passed) {
        return Err(format!(
            "benchmark scenario {name} failed (log: {})",
            report.log.display()
        ));
    }
    Ok(result)
}

/// A recorded metric of a benchmark scenario as a number.
fn metric(r: &ScenarioResult, name: &str) -> Result<f64> {
    let (_, value, _) = r
        .metrics
        .iter()
        .find(|(n, _, _)| n == name)
        .ok_or_else(|| format!("{}: no metric {name}", r.name))?;
    value
        .parse()
        .map_err(|_| format!("{}: metric {name} = `{value}` is not a number", r.name))
}

/// Prints ours next to Linux's with the ratio.
fn compare(what: &str, unit: &str, ours: f64, linux: f64) {
    let ratio = if linux > 0.0 { ours / linux } else { f64::NAN };
    println!(
        "{what:<34} xdd {ours:>10.1} {unit:<6} linux {linux:>10.1} {unit:<6} ratio {ratio:.2}x"
    );
}

/// Dispatches `cargo xtask bench <what>`.
pub fn run(what: &str) -> Result {
    match what {
        "net" => net::run(),
        "blk" => blk::run(),
        "nic" => nic::run(),
        "usb" => usb::run(),
        "snd" => snd::run(),
        _ => Err(format!(
            "unknown benchmark `{what}` (net, blk, nic, usb, snd)"
        )),
    }
}
