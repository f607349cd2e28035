//! `cargo xtask bench nic`: TCP throughput and round-trip time between a Linux PV guest and the
//! host-side file server through three network paths set up side by side in one testbed boot
//! (tests/bench/nic.toml), each on an identical virtio-net NIC with a QEMU user network of its
//! own:
//!
//! - `netdd`: our netback driver domain (PV, 16 MiB) owning the NIC (`netback.uplink=nic`);
//! - `linux-dd`: a Linux driver domain (PV) owning the NIC, Linux netback + a bridge;
//! - `dom0`: dom0 keeping the NIC in its bridge `xenbr1`, today's path on a Xen host.
//!
//! dom0 gives the guests their turns one at a time, the order rotated every round; a turn is a
//! 64 MiB download (`wget /64M`), a 16 MiB upload (`POST /sink`) and 20 pings to the gateway,
//! and the CPU seconds (`xl list`) of the setup's driver domain, dom0 and the guest are taken
//! before and after it. Prints every round, the medians, the ratios of netdd to the other two,
//! memory, and a verdict against the target (netdd ≥ 1.0× the Linux driver domain's
//! throughput with less CPU time). A benchmark: it fails only when a setup or transfer fails.

use super::stats::{self, num, ratio};
use super::turns::Report;
use crate::util::Result;
use std::collections::BTreeMap;

/// The setups: name in the scenario's `turn` lines and the label printed.
const SETUPS: [(&str, &str); 3] = [
    ("netdd", "netdd"),
    ("linuxdd", "linux-dd"),
    ("dom0", "dom0"),
];

/// The figures of a turn: key in the `turn` line, title, unit, decimals, whether netdd's
/// median is compared with the others' (not for the rows that watch one domain in all turns).
const FIGURES: &[(&str, &str, &str, usize, bool)] = &[
    (
        "down",
        "host -> guest TCP, 64 MiB (wget)",
        "Mbit/s",
        1,
        true,
    ),
    (
        "up",
        "guest -> host TCP, 16 MiB (POST /sink)",
        "Mbit/s",
        1,
        true,
    ),
    (
        "rtt_med",
        "round-trip time to the gateway, median of 20",
        "ms",
        3,
        true,
    ),
    (
        "rtt_avg",
        "round-trip time to the gateway, mean of 20",
        "ms",
        3,
        true,
    ),
    (
        "dd_cpu",
        "driver domain CPU per turn (netdd / linuxdd / dom0)",
        "s",
        1,
        true,
    ),
    ("dom0_cpu", "dom0 CPU per turn", "s", 1, true),
    ("guest_cpu", "guest CPU per turn", "s", 1, true),
    ("secs", "turn wall time (dom0's clock)", "s", 1, true),
    (
        "netdd_cpu",
        "netdd's CPU in each setup's turn",
        "s",
        1,
        false,
    ),
    (
        "linuxdd_cpu",
        "linuxdd's CPU in each setup's turn",
        "s",
        1,
        false,
    ),
];

/// Runs the nic benchmark.
pub fn run() -> Result {
    let r = super::run_bench_scenario("nic")?;
    let report = Report::of_section(&r, "nic")?;
    print!("{}", render(&report));
    let failed = report
        .turns
        .iter()
        .flat_map(|t| t.values.values())
        .filter(|v| v.is_nan())
        .count();
    if failed > 0 {
        return Err(format!(
            "nic benchmark: {failed} measurements failed (see `fail` above)"
        ));
    }
    Ok(())
}

/// The printed result.
fn render(rep: &Report) -> String {
    let rounds = rep.rounds();
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(String::new());
    line(
        "nic benchmark: a Linux PV guest talks to the host-side file server (slirp) through".into(),
    );
    line("  netdd    = our netback, PV 16 MiB, owning virtio-net (netback.uplink=nic)".into());
    line("  linux-dd = a Linux driver domain, PV, owning virtio-net-2: netback + bridge".into());
    line("  dom0     = dom0's bridge xenbr1 on virtio-net-dom0 (today's path)".into());
    line(format!(
        "{rounds} rounds, order rotated each round; medians compared, ratios are netdd / other"
    ));
    let mut medians: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for &(key, title, unit, digits, compare) in FIGURES {
        line(String::new());
        line(format!("{title} [{unit}]"));
        for (setup, label) in SETUPS {
            let v = rep.series(setup, key);
            let m = stats::median(&v);
            let (lo, hi) = stats::min_max(&v);
            medians.insert((setup, key), m);
            line(format!(
                "  {label:<9} median {:>8} (min {}, max {}, sum {})  rounds {}",
                num(m, digits),
                num(lo, digits),
                num(hi, digits),
                num(stats::sum(&v), digits),
                stats::rounds(&v, digits)
            ));
        }
        if !compare {
            continue;
        }
        let ours = medians[&("netdd", key)];
        line(format!(
            "  ratio     netdd/linux-dd {}x   netdd/dom0 {}x",
            num(ratio(ours, medians[&("linuxdd", key)]), 2),
            num(ratio(ours, medians[&("dom0", key)]), 2)
        ));
    }
    line(String::new());
    line("memory".into());
    line(format!(
        "  netdd     {} MiB (xl list), lowest free {} KiB, free at the end {} KiB (data/status)",
        num(rep.word("memory", "netdd", 0), 0),
        num(rep.word("free", "netdd", 0), 0),
        num(rep.word("free", "netdd", 1), 0)
    ));
    line(format!(
        "  linux-dd  {} MiB (xl list), lowest MemFree {} KiB (sampled every 5 s)",
        num(rep.word("memory", "linuxdd", 0), 0),
        num(rep.word("free", "linuxdd", 0), 0)
    ));
    line(format!(
        "  ratio     netdd/linux-dd {}x (xl list)",
        num(
            ratio(
                rep.word("memory", "netdd", 0),
                rep.word("memory", "linuxdd", 0)
            ),
            2
        )
    ));
    line(String::new());
    let down = ratio(medians[&("netdd", "down")], medians[&("linuxdd", "down")]);
    let up = ratio(medians[&("netdd", "up")], medians[&("linuxdd", "up")]);
    let cpu = ratio(
        medians[&("netdd", "dd_cpu")],
        medians[&("linuxdd", "dd_cpu")],
    );
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    line(format!(
        "verdict vs linux-dd: throughput host->guest {}x, guest->host {}x (target >= 1.00x: {}); \
         driver domain CPU per turn {}x (target < 1.00x: {})",
        num(down, 2),
        num(up, 2),
        met(down >= 1.0 && up >= 1.0),
        num(cpu, 2),
        met(cpu < 1.0)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
turn round=1 setup=netdd down=100.0 up=50.0 rtt_med=1.0 rtt_avg=1.2 replies=20 dd_cpu=2.0 dom0_cpu=1.0 guest_cpu=5.0 secs=20.0
turn round=1 setup=linuxdd down=80.0 up=fail rtt_med=2.0 rtt_avg=2.2 replies=20 dd_cpu=4.0 dom0_cpu=1.0 guest_cpu=5.0 secs=25.0
turn round=1 setup=dom0 down=90.0 up=60.0 rtt_med=1.5 rtt_avg=1.6 replies=20 dd_cpu=3.0 dom0_cpu=3.0 guest_cpu=5.0 secs=22.0
turn round=2 setup=netdd down=120.0 up=70.0 rtt_med=1.0 rtt_avg=1.1 replies=20 dd_cpu=2.0 dom0_cpu=1.0 guest_cpu=5.0 secs=20.0
turn round=2 setup=linuxdd down=100.0 up=70.0 rtt_med=2.0 rtt_avg=2.1 replies=20 dd_cpu=4.0 dom0_cpu=1.0 guest_cpu=5.0 secs=25.0
turn round=2 setup=dom0 down=90.0 up=60.0 rtt_med=1.5 rtt_avg=1.6 replies=20 dd_cpu=3.0 dom0_cpu=3.0 guest_cpu=5.0 secs=22.0
memory netdd 16
memory linuxdd 128
free netdd 5000 6000
free linuxdd 40000
";

    #[test]
    fn parses_turns_and_renders_medians_and_ratios() {
        let rep = Report::parse(SAMPLE.lines());
        assert_eq!(rep.turns.len(), 6);
        assert_eq!(rep.series("netdd", "down"), [100.0, 120.0]);
        assert!(rep.series("linuxdd", "up")[0].is_nan());
        assert!(rep.series("dom0", "nothing")[0].is_nan());
        assert_eq!(rep.word("free", "netdd", 1), 6000.0);
        assert!(rep.word("free", "linuxdd", 1).is_nan());
        let text = render(&rep);
        // Medians 110 vs 90: 1.22x; upload 60 vs 70 (the failed round left out): 0.86x.
        assert!(
            text.contains("  netdd     median    110.0 (min 100.0, max 120.0, sum 220.0)"),
            "{text}"
        );
        assert!(text.contains("rounds fail / 70.0"), "{text}");
        assert!(
            text.contains(
                "throughput host->guest 1.22x, guest->host 0.86x (target >= 1.00x: NOT met)"
            ),
            "{text}"
        );
        assert!(
            text.contains("CPU per turn 0.50x (target < 1.00x: met)"),
            "{text}"
        );
        assert!(text.contains("lowest free 5000 KiB"), "{text}");
        assert!(
            text.contains("ratio     netdd/linux-dd 0.12x (xl list)"),
            "{text}"
        );
    }

    #[test]
    fn the_scenario_is_valid() {
        let path = crate::util::workspace_root().join("tests/bench/nic.toml");
        let (s, _) = crate::testbed::load_file(&path).unwrap();
        assert_eq!(s.name, "nic");
    }
}
