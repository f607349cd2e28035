//! `cargo xtask bench blk`: one testbed boot, one guest with two RAM-backed 64 MiB disks —
//! `xvda` from dom0's Linux blkback (a loop device on a tmpfs file) and `xvdb` from the blkback
//! unikernel (a RAM volume) — measured alternately with the guest's `testbed-agent blk bench`
//! (O_DIRECT): sequential 1 MiB reads and writes (MB/s, one thread) and random 4 KiB reads and
//! writes (IOPS, eight threads). Prints ours next to Linux's with the ratio (target ≥ 1.0×).

use crate::util::Result;

/// The measurements: (label, test name in the scenario, metric suffix, unit).
const TESTS: &[(&str, &str, &str, &str)] = &[
    ("sequential read, 1 MiB", "seqread", "mbps", "MB/s"),
    ("sequential write, 1 MiB", "seqwrite", "mbps", "MB/s"),
    ("random read, 4 KiB x 8", "randread", "iops", "IOPS"),
    ("random write, 4 KiB x 8", "randwrite", "iops", "IOPS"),
];

/// Runs the blk benchmark.
pub fn run() -> Result {
    let r = super::run_bench_scenario("blk")?;
    println!();
    println!(
        "blk: xdd = blkback unikernel (RAM volume), linux = dom0 Linux blkback (loop on tmpfs)"
    );
    let mut worst = f64::INFINITY;
    for (label, test, suffix, unit) in TESTS {
        let ours = super::metric(&r, &format!("xdd-{test}-{suffix}"))?;
        let linux = super::metric(&r, &format!("linux-{test}-{suffix}"))?;
        super::compare(label, unit, ours, linux);
        if linux > 0.0 {
            worst = worst.min(ours / linux);
        }
    }
    println!("lowest ratio {worst:.2}x (target 1.00x)");
    Ok(())
}
