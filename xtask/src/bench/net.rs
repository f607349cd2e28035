//! `cargo xtask bench net`: guest-to-guest traffic between two Linux PV guests through four
//! driver domains set up side by side in one testbed boot (tests/bench/net.toml):
//!
//! - `netdd`: our netback driver domain, PV, 16 MiB;
//! - `netdd-pvh`: the same image booted as PVH, 16 MiB;
//! - `linux-dd`: a Linux driver domain (PV, 128 MiB): Linux netback + a bridge;
//! - `netdd-4M`: our netback, PV, 4 MiB (back-pressure when memory is small).
//!
//! dom0 gives the setups their turns one at a time, the order rotated every round; a turn is
//! iperf3 TCP a → b and b → a (`-R`), iperf3 UDP with 64-byte datagrams at an unlimited rate
//! both ways, and a request/response ping test (`ping -A`), with the driver domain's CPU
//! seconds (`xl list`) taken around every measurement. Prints every round, the medians with
//! their spread, throughput per driver-domain CPU second, a verdict line per figure (netdd and
//! netdd-pvh against linux-dd, netdd-4M against netdd), memory and our driver domains'
//! `data/status` counters with per-packet figures derived from them. A benchmark: it fails
//! only when a setup or a measurement fails.

use super::stats::{self, num, ratio};
use super::turns::Report;
use crate::util::Result;

/// The setups: name in the scenario's `turn` lines and the label printed.
const SETUPS: [(&str, &str); 4] = [
    ("netdd", "netdd"),
    ("netddh", "netdd-pvh"),
    ("linuxdd", "linux-dd"),
    ("netdd4", "netdd-4M"),
];

/// Whether more or less of a figure is better; `Info` figures get no verdict.
#[derive(Clone, Copy, PartialEq)]
enum Better {
    More,
    Less,
    Info,
}

/// How a figure is taken from a turn.
#[derive(Clone, Copy)]
enum Source {
    /// A measured value.
    Raw(&'static str),
    /// `value × seconds / driver-domain CPU seconds`: work done per CPU second.
    PerCpu(&'static str, &'static str, &'static str),
}

/// A printed figure.
struct Figure {
    source: Source,
    title: &'static str,
    unit: &'static str,
    digits: usize,
    better: Better,
}

const fn raw(key: &'static str, title: &'static str, unit: &'static str, digits: usize) -> Figure {
    Figure {
        source: Source::Raw(key),
        title,
        unit,
        digits,
        better: Better::More,
    }
}

const fn less(f: Figure) -> Figure {
    Figure {
        better: Better::Less,
        ..f
    }
}

const fn info(f: Figure) -> Figure {
    Figure {
        better: Better::Info,
        ..f
    }
}

const fn per_cpu(
    value: &'static str,
    secs: &'static str,
    cpu: &'static str,
    title: &'static str,
    unit: &'static str,
    digits: usize,
) -> Figure {
    Figure {
        source: Source::PerCpu(value, secs, cpu),
        title,
        unit,
        digits,
        better: Better::More,
    }
}

const FIGURES: &[Figure] = &[
    raw("fwd", "TCP a -> b (iperf3)", "Mbit/s", 1),
    raw("rev", "TCP b -> a (iperf3 -R)", "Mbit/s", 1),
    per_cpu(
        "fwd",
        "fwd_s",
        "fwd_cpu",
        "TCP a -> b per driver-domain CPU second",
        "Mbit/CPU-s",
        0,
    ),
    per_cpu(
        "rev",
        "rev_s",
        "rev_cpu",
        "TCP b -> a per driver-domain CPU second",
        "Mbit/CPU-s",
        0,
    ),
    raw("ufwd", "UDP 64-byte a -> b, received", "pkt/s", 0),
    raw("urev", "UDP 64-byte b -> a (-R), received", "pkt/s", 0),
    less(raw("ufwd_loss", "UDP 64-byte a -> b, lost", "%", 1)),
    less(raw("urev_loss", "UDP 64-byte b -> a, lost", "%", 1)),
    per_cpu(
        "ufwd",
        "ufwd_s",
        "ufwd_cpu",
        "UDP 64-byte a -> b per driver-domain CPU second",
        "pkt/CPU-s",
        0,
    ),
    per_cpu(
        "urev",
        "urev_s",
        "urev_cpu",
        "UDP 64-byte b -> a per driver-domain CPU second",
        "pkt/CPU-s",
        0,
    ),
    less(raw(
        "rtt_med",
        "request/response RTT (ping -A, 300), median",
        "ms",
        3,
    )),
    less(raw(
        "rtt_p90",
        "request/response RTT (ping -A, 300), 90th percentile",
        "ms",
        3,
    )),
    less(raw(
        "rtt_avg",
        "request/response RTT (ping -A, 300), mean",
        "ms",
        3,
    )),
    info(raw("replies", "ping replies (of 300)", "", 0)),
    less(raw("cpu", "driver domain CPU per turn", "s", 1)),
    info(raw("secs", "turn wall time (dom0's clock)", "s", 1)),
];

/// Measured values every turn must have (a missing or `fail` one fails the benchmark).
const MEASURED: &[&str] = &[
    "fwd", "rev", "ufwd", "urev", "rtt_med", "fwd_cpu", "rev_cpu", "ufwd_cpu", "urev_cpu",
];

/// Comparisons of the verdict lines: ours, theirs, target ratio for "more is better".
const VERDICTS: [(&str, &str, f64); 3] = [
    ("netdd", "linuxdd", 1.0),
    ("netddh", "linuxdd", 1.0),
    ("netdd4", "netdd", 0.9),
];

/// The `data/status` counters printed for our driver domains.
const COUNTERS: &[&str] = &[
    "passes",
    "busy-passes",
    "tx-packets",
    "direct",
    "switched",
    "parked",
    "park-timeouts",
    "local-no-buffers",
    "local-behind-queue",
    "notifications",
    "notify-calls",
    "copy-ops",
    "copy-batches",
    "poll-us",
    "copy-us",
    "notify-us",
    "queued-kib-max",
    "free-kib-min",
];

/// Figures derived from the counters: title, numerator, denominator, decimals.
const DERIVED: &[(&str, &str, &str, usize)] = &[
    ("packets per pass", "tx-packets", "passes", 2),
    ("packets per busy pass", "tx-packets", "busy-passes", 2),
    ("busy passes per pass", "busy-passes", "passes", 2),
    ("notifications per packet", "notifications", "tx-packets", 3),
    (
        "notifications per busy pass",
        "notifications",
        "busy-passes",
        2,
    ),
    ("copy ops per batch", "copy-ops", "copy-batches", 1),
    (
        "copy batches per busy pass",
        "copy-batches",
        "busy-passes",
        2,
    ),
    ("parked per packet", "parked", "tx-packets", 4),
    ("data path us per packet", "poll-us", "tx-packets", 1),
    ("grant copy us per packet", "copy-us", "tx-packets", 1),
    ("notify us per packet", "notify-us", "tx-packets", 1),
    (
        "copy hypercalls per packet",
        "copy-batches",
        "tx-packets",
        3,
    ),
    (
        "notify hypercalls per packet",
        "notify-calls",
        "tx-packets",
        3,
    ),
    ("us per copy hypercall", "copy-us", "copy-batches", 1),
    ("us per notify hypercall", "notify-us", "notify-calls", 1),
];

/// Runs the net benchmark.
pub fn run() -> Result {
    let r = super::run_bench_scenario("net")?;
    let report = Report::of_section(&r, "net")?;
    print!("{}", render(&report));
    let failed = failures(&report);
    if failed > 0 {
        return Err(format!(
            "net benchmark: {failed} measurements failed (see `fail` above)"
        ));
    }
    Ok(())
}

/// The number of measurements every turn should have but that failed or are missing.
fn failures(rep: &Report) -> usize {
    rep.turns
        .iter()
        .flat_map(|t| MEASURED.iter().map(move |k| t.values.get(*k)))
        .filter(|v| v.is_none_or(|v| v.is_nan()))
        .count()
}

/// A figure of one setup, round by round.
fn series(rep: &Report, setup: &str, source: Source) -> Vec<f64> {
    match source {
        Source::Raw(key) => rep.series(setup, key),
        Source::PerCpu(value, secs, cpu) => {
            let (v, s, c) = (
                rep.series(setup, value),
                rep.series(setup, secs),
                rep.series(setup, cpu),
            );
            v.iter()
                .zip(&s)
                .zip(&c)
                .map(|((v, s), c)| ratio(v * s, *c))
                .collect()
        }
    }
}

/// A ratio for a verdict, `-` when it is not a number.
fn times(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else {
        format!("{x:.2}x")
    }
}

/// The verdict of `ours` against `theirs`: the ratio, the target (`target` for "more is
/// better", its inverse for "less is better") and whether it is met.
fn verdict(better: Better, ours: f64, theirs: f64, target: f64) -> (String, String, bool) {
    let r = times(ratio(ours, theirs));
    match better {
        Better::More => (r, format!(">= {target:.2}"), ours >= target * theirs),
        _ => (
            r,
            format!("<= {:.2}", 1.0 / target),
            ours * target <= theirs,
        ),
    }
}

/// A label of a setup.
fn label(setup: &str) -> &'static str {
    SETUPS
        .iter()
        .find(|(s, _)| *s == setup)
        .map_or("?", |(_, l)| *l)
}

/// The printed result.
fn render(rep: &Report) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(String::new());
    line("net benchmark: two Linux PV guests (a, b) on one driver domain, four setups".into());
    line("  netdd     = our netback, PV, 16 MiB".into());
    line("  netdd-pvh = the same image as PVH, 16 MiB".into());
    line("  linux-dd  = a Linux driver domain, PV, 128 MiB: netback + bridge".into());
    line("  netdd-4M  = our netback, PV, 4 MiB".into());
    line(format!(
        "{} rounds, order rotated each round; a turn: iperf3 TCP 5 s each way, iperf3 UDP \
         64-byte unlimited 3 s each way, 300 pings with ping -A; driver domain CPU from xl list \
         around each measurement; medians compared, spread = (max - min) / median",
        rep.rounds()
    ));
    let mut verdicts = Vec::new();
    for f in FIGURES {
        line(String::new());
        if f.unit.is_empty() {
            line(f.title.to_string());
        } else {
            line(format!("{} [{}]", f.title, f.unit));
        }
        let mut medians = std::collections::BTreeMap::new();
        for (setup, label) in SETUPS {
            let v = series(rep, setup, f.source);
            medians.insert(setup, stats::median(&v));
            line(stats::row(label, 10, &v, f.digits));
        }
        if f.better == Better::Info {
            continue;
        }
        let parts: Vec<String> = VERDICTS
            .iter()
            .map(|&(ours, theirs, target)| {
                let (r, goal, ok) = verdict(f.better, medians[ours], medians[theirs], target);
                format!(
                    "{}/{} {r} ({goal}: {})",
                    label(ours),
                    label(theirs),
                    if ok { "met" } else { "NOT met" }
                )
            })
            .collect();
        line(format!("  verdict    {}", parts.join("; ")));
        verdicts.push((f.title, parts));
    }
    line(String::new());
    line("memory".into());
    for (setup, label) in SETUPS {
        let free = if setup == "linuxdd" {
            String::new()
        } else {
            format!(
                ", lowest free {} KiB (data/status)",
                num(rep.keyed("status", setup, "free-kib-min"), 0)
            )
        };
        line(format!(
            "  {label:<10} {} MiB (xl list){free}",
            num(rep.word("memory", setup, 0), 0)
        ));
    }
    let ours: Vec<(&str, &str)> = SETUPS
        .iter()
        .copied()
        .filter(|(s, _)| *s != "linuxdd")
        .collect();
    line(String::new());
    line("our driver domains' data/status counters (whole run, all turns)".into());
    line(format!(
        "  {:<28}{}",
        "",
        ours.iter()
            .map(|(_, l)| format!("{l:>14}"))
            .collect::<String>()
    ));
    for key in COUNTERS {
        line(format!(
            "  {key:<28}{}",
            ours.iter()
                .map(|(s, _)| format!("{:>14}", num(rep.keyed("status", s, key), 0)))
                .collect::<String>()
        ));
    }
    for &(title, a, b, digits) in DERIVED {
        line(format!(
            "  {title:<28}{}",
            ours.iter()
                .map(|(s, _)| format!(
                    "{:>14}",
                    num(
                        ratio(rep.keyed("status", s, a), rep.keyed("status", s, b)),
                        digits
                    )
                ))
                .collect::<String>()
        ));
    }
    line(String::new());
    line("verdicts (medians; targets of issue 16: netdd and netdd-pvh >= 1.00x linux-dd, netdd-4M >= 0.90x netdd)".into());
    for (title, parts) in verdicts {
        line(format!("  {title}: {}", parts.join("; ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two rounds; linuxdd's round-1 reverse run failed.
    const SAMPLE: &str = "\
turn round=1 setup=netdd fwd=200 fwd_s=5 fwd_cpu=2.0 rev=100 rev_s=5 rev_cpu=2.0 ufwd=1000 ufwd_loss=10 ufwd_s=3 ufwd_cpu=1.0 urev=800 urev_loss=0 urev_s=3 urev_cpu=1.0 rtt_med=1.0 rtt_p90=2.0 rtt_avg=1.5 replies=300 cpu=6.0 secs=30
turn round=2 setup=netdd fwd=220 fwd_s=5 fwd_cpu=2.0 rev=120 rev_s=5 rev_cpu=2.0 ufwd=1000 ufwd_loss=10 ufwd_s=3 ufwd_cpu=1.0 urev=800 urev_loss=0 urev_s=3 urev_cpu=1.0 rtt_med=1.0 rtt_p90=2.0 rtt_avg=1.5 replies=300 cpu=6.0 secs=30
turn round=1 setup=linuxdd fwd=200 fwd_s=5 fwd_cpu=4.0 rev=fail rev_s=fail rev_cpu=4.0 ufwd=2000 ufwd_loss=5 ufwd_s=3 ufwd_cpu=2.0 urev=800 urev_loss=0 urev_s=3 urev_cpu=2.0 rtt_med=0.5 rtt_p90=1.0 rtt_avg=0.7 replies=300 cpu=12.0 secs=30
turn round=2 setup=linuxdd fwd=200 fwd_s=5 fwd_cpu=4.0 rev=100 rev_s=5 rev_cpu=4.0 ufwd=2000 ufwd_loss=5 ufwd_s=3 ufwd_cpu=2.0 urev=800 urev_loss=0 urev_s=3 urev_cpu=2.0 rtt_med=0.5 rtt_p90=1.0 rtt_avg=0.7 replies=300 cpu=12.0 secs=30
turn round=1 setup=netdd4 fwd=180 fwd_s=5 fwd_cpu=2.0 rev=100 rev_s=5 rev_cpu=2.0
memory netdd 16
memory netdd4 4
memory linuxdd 128
status netdd passes 1000
status netdd busy-passes 500
status netdd tx-packets 2000
status netdd notifications 500
status netdd notify-calls 250
status netdd notify-us 25000
status netdd copy-batches 1000
status netdd copy-us 80000
status netdd free-kib-min 9000
";

    #[test]
    fn renders_medians_per_cpu_figures_verdicts_and_counters() {
        let rep = Report::parse(SAMPLE.lines());
        let text = render(&rep);
        // netdd TCP a -> b: 200 and 220, median 210, spread 20/210 = 10%; linux 200: 1.05x.
        assert!(
            text.contains(
                "  netdd      median     210.0 (min 200.0, max 220.0, spread 10%)  rounds 200.0 / 220.0"
            ),
            "{text}"
        );
        assert!(
            text.contains("netdd/linux-dd 1.05x (>= 1.00: met)"),
            "{text}"
        );
        // No netdd-pvh turns at all: every figure fails, the verdict cannot be met.
        assert!(
            text.contains("netdd-pvh/linux-dd - (>= 1.00: NOT met)"),
            "{text}"
        );
        // netdd-4M ran one round: 180 against netdd's 210 is 0.86x, under 0.90x.
        assert!(
            text.contains("netdd-4M/netdd 0.86x (>= 0.90: NOT met)"),
            "{text}"
        );
        // Per CPU second: netdd 200*5/2 = 500 and 220*5/2 = 550; linux 200*5/4 = 250.
        assert!(
            text.contains("  netdd      median       525 (min 500, max 550, spread 10%)"),
            "{text}"
        );
        // UDP loss, less is better: netdd 10% against linux 5% is 2.00x, not met.
        assert!(
            text.contains("netdd/linux-dd 2.00x (<= 1.00: NOT met)"),
            "{text}"
        );
        // Reverse with a failed round: linux median of the one left, 100; netdd 110: 1.10x.
        assert!(text.contains("rounds fail / 100.0"), "{text}");
        assert!(
            text.contains("netdd/linux-dd 1.10x (>= 1.00: met)"),
            "{text}"
        );
        assert!(text.contains("lowest free 9000 KiB"), "{text}");
        assert!(text.contains("  packets per pass"), "{text}");
        assert!(
            text.contains("  notifications per packet             0.250"),
            "{text}"
        );
        // Hypercalls per packet and what one costs: 1000 copy batches and 250 notify
        // multicalls for 2000 packets; 80 ms and 25 ms spent in them.
        assert!(
            text.contains("  copy hypercalls per packet           0.500"),
            "{text}"
        );
        assert!(
            text.contains("  notify hypercalls per packet         0.125"),
            "{text}"
        );
        assert!(
            text.contains("  us per copy hypercall                 80.0"),
            "{text}"
        );
        assert!(
            text.contains("  us per notify hypercall              100.0"),
            "{text}"
        );
    }

    #[test]
    fn counts_failed_and_missing_measurements() {
        let rep = Report::parse(SAMPLE.lines());
        // linuxdd round 1: rev; netdd4 round 1: ufwd, urev, rtt_med and their CPU (5).
        assert_eq!(failures(&rep), 6);
    }

    #[test]
    fn the_scenario_is_valid() {
        let path = crate::util::workspace_root().join("tests/bench/net.toml");
        let (s, _) = crate::testbed::load_file(&path).unwrap();
        assert_eq!(s.name, "net");
    }
}
