//! `cargo xtask bench net`.

use crate::util::Result;

/// Runs the net benchmark.
pub fn run() -> Result {
    let _ = (super::run_bench_scenario, super::metric, super::compare);
    Err("the net benchmark is not written yet".into())
}
