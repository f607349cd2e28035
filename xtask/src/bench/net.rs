//! `cargo xtask bench net`: guest-to-guest TCP throughput (iperf3) through our netback driver
//! domain, booted as PV and as PVH, and through a Linux network driver domain (netback +
//! bridge, PV), all set up in one testbed boot (tests/bench/net.toml) and measured in rotating
//! order — three rounds of 10 s each way — so all see the same conditions. Prints every round,
//! the medians and their ratios to Linux.

use crate::results::ScenarioResult;
use crate::util::Result;

const ROUNDS: usize = 3;

fn rounds(r: &ScenarioResult, prefix: &str) -> Result<Vec<f64>> {
    (1..=ROUNDS)
        .map(|i| super::metric(r, &format!("{prefix}-{i}")))
        .collect()
}

fn median(v: Vec<f64>) -> f64 {
    super::stats::median(&v)
}

fn fmt(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.1}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Runs the net benchmark.
pub fn run() -> Result {
    let r = super::run_bench_scenario("net")?;
    println!();
    println!("net benchmark: iperf3 TCP between two Linux PV guests on one driver domain,");
    println!("{ROUNDS} rotating rounds of 10 s each way (medians compared). xdd = our netback");
    println!("booted as PV like the Linux driver domain; xdd-pvh = the same image as PVH:");
    for (what, key) in [("a -> b", "fwd"), ("b -> a (-R)", "rev")] {
        let pv = rounds(&r, &format!("xdd-{key}"))?;
        let pvh = rounds(&r, &format!("xddh-{key}"))?;
        let linux = rounds(&r, &format!("linux-{key}"))?;
        println!(
            "  {what:<12} rounds: xdd {}  xdd-pvh {}  linux {}",
            fmt(&pv),
            fmt(&pvh),
            fmt(&linux)
        );
        let linux = median(linux);
        super::compare(
            &format!("guest->guest TCP, {what}"),
            "Mbit/s",
            median(pv),
            linux,
        );
        super::compare(
            &format!("  same, xdd as PVH, {what}"),
            "Mbit/s",
            median(pvh),
            linux,
        );
    }
    for (what, key, unit) in [
        ("driver domain CPU time (whole run)", "cpu-s", "s"),
        ("driver domain memory", "memory", "MiB"),
    ] {
        let linux = super::metric(&r, &format!("linux-dd-{key}"))?;
        super::compare(
            what,
            unit,
            super::metric(&r, &format!("xdd-dd-{key}"))?,
            linux,
        );
        super::compare(
            "  same, xdd as PVH",
            unit,
            super::metric(&r, &format!("xddh-dd-{key}"))?,
            linux,
        );
    }
    Ok(())
}
