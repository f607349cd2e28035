//! `cargo xtask bench blk`.

use crate::util::Result;

/// Runs the blk benchmark.
pub fn run() -> Result {
    let _ = (super::run_bench_scenario, super::metric, super::compare);
    Err("the blk benchmark is not written yet".into())
}
