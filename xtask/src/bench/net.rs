//! `cargo xtask bench net`: guest-to-guest TCP throughput (iperf3) through our netback driver
//! domain and through a Linux network driver domain (netback + bridge), both set up in one
//! testbed boot (tests/bench/net.toml) and measured alternately — three rounds of 10 s each
//! way — so both see the same conditions. Prints every round, the medians and their ratio.

use crate::results::ScenarioResult;
use crate::util::Result;

const ROUNDS: usize = 3;

fn rounds(r: &ScenarioResult, prefix: &str) -> Result<Vec<f64>> {
    (1..=ROUNDS)
        .map(|i| super::metric(r, &format!("{prefix}-{i}")))
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
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
    println!("{ROUNDS} alternating rounds of 10 s each way (medians compared):");
    for (what, key) in [("a -> b", "fwd"), ("b -> a (-R)", "rev")] {
        let ours = rounds(&r, &format!("xdd-{key}"))?;
        let linux = rounds(&r, &format!("linux-{key}"))?;
        println!(
            "  {what:<12} rounds: xdd {}  linux {}",
            fmt(&ours),
            fmt(&linux)
        );
        super::compare(
            &format!("guest->guest TCP, {what}"),
            "Mbit/s",
            median(ours),
            median(linux),
        );
    }
    super::compare(
        "driver domain CPU time (whole run)",
        "s",
        super::metric(&r, "xdd-dd-cpu-s")?,
        super::metric(&r, "linux-dd-cpu-s")?,
    );
    super::compare(
        "driver domain memory",
        "MiB",
        super::metric(&r, "xdd-dd-memory")?,
        super::metric(&r, "linux-dd-memory")?,
    );
    Ok(())
}
