//! `cargo xtask bench usb`: a USB stick read from a Linux PV guest through usbdd, beside the
//! same stick on an identical xHCI passed through to a Linux PV guest directly, in one testbed
//! boot (tests/bench/usb.toml):
//!
//! - `usbdd`: our usbback driver domain (PV, 32 MiB) owns QEMU device `xhci`; the guest gets
//!   the stick over PVUSB (Linux's xen-hcd);
//! - `direct`: the guest owns `xhci-2` itself (pcifront, xhci-pci): no driver domain at all,
//!   the upper bound of any USB driver domain.
//!
//! dom0 gives the two guests their turns one at a time, the order rotated every round; a turn
//! is an O_DIRECT sequential read (1 MiB blocks, 1 job) and a 4 KiB random read (4 jobs) of
//! the whole stick (`testbed-agent blk bench`), with the CPU seconds (`xl list`) of usbdd,
//! the guest and dom0 taken around it. Prints every round, the medians with min–max and
//! spread, the ratio usbdd / direct, CPU and memory, and a verdict against the target (usbdd
//! ≥ 0.80× direct passthrough in both figures). A benchmark: it fails only when a setup or a
//! measurement fails.

use super::stats::{self, num, ratio};
use super::turns::{self, Report};
use crate::util::Result;

/// The setups: name in the scenario's `turn` lines, guest domain name, label printed.
const SETUPS: [(&str, &str, &str); 2] =
    [("usbdd", "gusb", "usbdd"), ("direct", "gdirect", "direct")];

/// usbdd's share of direct passthrough that meets the target.
const TARGET: f64 = 0.80;

/// Figures derived from a turn's measured ones, added to it before printing.
const PATH_CPU: &str = "path_cpu";
/// CPU milliseconds of the path per MB read in a turn.
const MS_PER_MB: &str = "ms_per_mb";

/// The printed figures: key in the turn, title, unit, decimals, whether usbdd is compared
/// with direct (not for usbdd's own CPU, which is taken in both setups' turns).
const FIGURES: &[(&str, &str, &str, usize, bool)] = &[
    (
        "seq_mbps",
        "sequential read, 1 MiB blocks, 1 job (O_DIRECT)",
        "MB/s",
        2,
        true,
    ),
    (
        "rand_iops",
        "random read, 4 KiB blocks, 4 jobs (O_DIRECT)",
        "IOPS",
        1,
        true,
    ),
    (
        PATH_CPU,
        "CPU of the path per turn (usbdd + guest / guest)",
        "s",
        1,
        true,
    ),
    (MS_PER_MB, "CPU of the path per MB read", "ms/MB", 1, true),
    ("guest_cpu", "guest CPU per turn", "s", 1, true),
    ("dom0_cpu", "dom0 CPU per turn", "s", 1, true),
    (
        "usbdd_cpu",
        "usbdd's CPU in each setup's turn",
        "s",
        1,
        false,
    ),
    ("secs", "turn wall time (dom0's clock)", "s", 1, true),
];

/// Runs the usb benchmark.
pub fn run() -> Result {
    turns::run_and_print("usb", derive, render, &["seq_mbps", "rand_iops"])
}

/// Adds the derived figures to every turn: the path's CPU (the guest's, plus usbdd's in
/// usbdd's turns) and that per MB read (both reads of the turn, `bench_secs` each).
fn derive(rep: &mut Report) {
    for t in &mut rep.turns {
        let get = |k: &str| t.values.get(k).copied().unwrap_or(f64::NAN);
        let mut cpu = get("guest_cpu");
        if t.setup == "usbdd" {
            cpu += get("usbdd_cpu");
        }
        let mb = (get("seq_mbps") + get("rand_mbps")) * get("bench_secs");
        let per_mb = ratio(cpu * 1000.0, mb);
        t.values.insert(PATH_CPU.into(), cpu);
        t.values.insert(MS_PER_MB.into(), per_mb);
    }
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
    line("usb benchmark: a Linux PV guest reads a 16 MiB usb-storage stick (high speed) on".into());
    line(
        "  usbdd  = our usbback, PV 32 MiB, owning qemu-xhci; the guest uses xen-hcd (PVUSB)"
            .into(),
    );
    line(
        "  direct = an identical qemu-xhci passed through to the guest itself (upper bound)".into(),
    );
    line(format!(
        "{rounds} rounds, order rotated each round; medians compared, ratios are usbdd / direct"
    ));
    let mut medians = std::collections::BTreeMap::new();
    for &(key, title, unit, digits, compare) in FIGURES {
        line(String::new());
        line(format!("{title} [{unit}]"));
        for (setup, _, label) in SETUPS {
            let v = rep.series(setup, key);
            medians.insert((setup, key), stats::median(&v));
            line(stats::row(label, 7, &v, digits));
        }
        if compare {
            line(format!(
                "  ratio   usbdd/direct {}x",
                num(
                    ratio(medians[&("usbdd", key)], medians[&("direct", key)]),
                    2
                )
            ));
        }
    }
    line(String::new());
    line("memory (xl list) and the guests' request limits (/sys/block/sda/queue)".into());
    let mem = |d: &str| rep.word("memory", d, 0);
    line(format!(
        "  usbdd   usbdd {} MiB + guest {} MiB; guest: max_sectors_kb {}, max_segments {}",
        num(mem("usbdd"), 0),
        num(mem("gusb"), 0),
        num(rep.word("queue", "gusb", 0), 0),
        num(rep.word("queue", "gusb", 1), 0)
    ));
    line(format!(
        "  direct  guest {} MiB; guest: max_sectors_kb {}, max_segments {}",
        num(mem("gdirect"), 0),
        num(rep.word("queue", "gdirect", 0), 0),
        num(rep.word("queue", "gdirect", 1), 0)
    ));
    line(String::new());
    line("requests, whole run (warm-up and content check included)".into());
    for (setup, guest, label) in SETUPS {
        let reads = rep.word("blkstat", guest, 0);
        let kib = ratio(rep.word("blkstat", guest, 2) / 2.0, reads);
        let mut l = format!(
            "  {label:<7} {} reads of {} KiB on average (the guest's /sys/block/sda/stat)",
            num(reads, 0),
            num(kib, 1)
        );
        if setup == "usbdd" {
            let (urbs, bulk) = (rep.word("vusb", "urbs", 0), rep.word("vusb", "bulk", 0));
            l.push_str(&format!(
                "; usbdd took {} URBs ({} bulk): {} per read, {} KiB per bulk URB",
                num(urbs, 0),
                num(bulk, 0),
                num(ratio(urbs, reads), 1),
                num(ratio(rep.word("vusb", "bytes_in", 0) / 1024.0, bulk), 1)
            ));
            l.push_str(&format!(
                "; {} us from taking a URB to answering it, on average",
                num(
                    ratio(
                        rep.word("vusb", "held_us", 0),
                        rep.word("vusb", "answered", 0)
                    ),
                    0
                )
            ));
        }
        line(l);
    }
    line(String::new());
    let seq = ratio(
        medians[&("usbdd", "seq_mbps")],
        medians[&("direct", "seq_mbps")],
    );
    let iops = ratio(
        medians[&("usbdd", "rand_iops")],
        medians[&("direct", "rand_iops")],
    );
    let met = seq >= TARGET && iops >= TARGET;
    line(format!(
        "verdict vs direct passthrough: sequential read {}x, 4 KiB random-read IOPS {}x \
         (target >= {TARGET:.2}x: {})",
        num(seq, 2),
        num(iops, 2),
        if met { "met" } else { "NOT met" }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
turn round=1 setup=usbdd seq_mbps=8.00 rand_iops=400.0 rand_mbps=1.64 bench_secs=10 usbdd_cpu=6.0 guest_cpu=4.0 dom0_cpu=1.0 secs=22.0
turn round=1 setup=direct seq_mbps=10.00 rand_iops=500.0 rand_mbps=2.05 bench_secs=10 usbdd_cpu=0.0 guest_cpu=8.0 dom0_cpu=1.0 secs=21.0
turn round=2 setup=direct seq_mbps=12.00 rand_iops=fail rand_mbps=fail bench_secs=10 usbdd_cpu=0.0 guest_cpu=8.0 dom0_cpu=1.0 secs=21.0
turn round=2 setup=usbdd seq_mbps=10.00 rand_iops=300.0 rand_mbps=1.23 bench_secs=10 usbdd_cpu=6.0 guest_cpu=4.0 dom0_cpu=1.0 secs=22.0
memory usbdd 32
memory gusb 160
memory gdirect 160
queue gusb 64 16
queue gdirect 120 128
blkstat gusb 1000 0 240000 0 0 0 0 0 0 0 0
blkstat gdirect 500 0 120000 0 0 0 0 0 0 0 0
vusb urbs 5000
vusb bulk 4990
vusb bytes_in 102400000
vusb answered 4000
vusb held_us 2000000
";

    fn sample() -> Report {
        let mut rep = Report::parse(SAMPLE.lines());
        derive(&mut rep);
        rep
    }

    #[test]
    fn derives_the_path_cpu() {
        let rep = sample();
        // usbdd's turns count usbdd and the guest, direct's only the guest.
        assert_eq!(rep.series("usbdd", PATH_CPU), [10.0, 10.0]);
        assert_eq!(rep.series("direct", PATH_CPU), [8.0, 8.0]);
        // 10 s of CPU for (8 + 1.64) MB/s × 10 s = 96.4 MB: 103.7 ms/MB.
        let per_mb = rep.series("usbdd", MS_PER_MB);
        assert!((per_mb[0] - 10_000.0 / 96.4).abs() < 1e-9, "{per_mb:?}");
        assert!(rep.series("direct", MS_PER_MB)[1].is_nan());
    }

    #[test]
    fn renders_medians_ratios_and_the_verdict() {
        let text = render(&sample());
        // Sequential medians 9 vs 11: 0.82x; IOPS 350 vs 500 (the failed round left out): 0.70x.
        assert!(
            text.contains(
                "  usbdd   median      9.00 (min 8.00, max 10.00, spread 22%)  rounds 8.00 / 10.00"
            ),
            "{text}"
        );
        assert!(text.contains("rounds 500.0 / fail"), "{text}");
        assert!(text.contains("  ratio   usbdd/direct 0.82x"), "{text}");
        assert!(text.contains("  ratio   usbdd/direct 0.70x"), "{text}");
        assert!(
            text.contains(
                "sequential read 0.82x, 4 KiB random-read IOPS 0.70x (target >= 0.80x: NOT met)"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "usbdd 32 MiB + guest 160 MiB; guest: max_sectors_kb 64, max_segments 16"
            ),
            "{text}"
        );
        assert!(
            text.contains("direct  guest 160 MiB; guest: max_sectors_kb 120"),
            "{text}"
        );
        assert!(
            text.contains(
                "  usbdd   1000 reads of 120.0 KiB on average (the guest's /sys/block/sda/stat); \
                 usbdd took 5000 URBs (4990 bulk): 5.0 per read, 20.0 KiB per bulk URB; \
                 500 us from taking a URB to answering it, on average"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "  direct  500 reads of 120.0 KiB on average (the guest's /sys/block/sda/stat)\n"
            ),
            "{text}"
        );
        // usbdd's own CPU is shown for both setups' turns but not compared; all zeros in
        // direct's turns is no spread.
        assert!(
            text.contains("median       0.0 (min 0.0, max 0.0, spread 0%)"),
            "{text}"
        );
        let own = text
            .split("usbdd's CPU in each setup's turn")
            .nth(1)
            .unwrap();
        let own = own.split("\n\n").next().unwrap();
        assert!(!own.contains("ratio"), "{own}");
    }

    #[test]
    fn a_met_target_says_met() {
        let text = render(&Report::parse(
            "turn round=1 setup=usbdd seq_mbps=9 rand_iops=450\n\
             turn round=1 setup=direct seq_mbps=10 rand_iops=500\n"
                .lines(),
        ));
        assert!(
            text.contains("0.90x, 4 KiB random-read IOPS 0.90x (target >= 0.80x: met)"),
            "{text}"
        );
    }

    #[test]
    fn the_scenario_is_valid() {
        let path = crate::util::workspace_root().join("tests/bench/usb.toml");
        let (s, _) = crate::testbed::load_file(&path).unwrap();
        assert_eq!(s.name, "usb");
        assert_eq!(s.qemu_devices.len(), 2);
    }
}
