//! `cargo xtask profile net [mtu|small|gso] [--packets N]`: a host-side profile of netback's
//! data path. A whole netback runs a fixed workload on the host platform
//! (`netback/examples/profile_datapath.rs`) under callgrind, which counts the instructions
//! executed inside the driver domain's passes (`minios::host::settle`) — deterministic, so
//! the figures mean the same on a loaded machine. Printed per packet and grouped: netback's
//! own code, the runtime (`minios`: executor, rings, xenbus), the host platform's
//! simulation of Xen (`minios::host`: grant copies and shared memory done byte by byte —
//! on real Xen these are the hypercalls the testbed benchmark times), the allocator, libc
//! copies; then netback's and the runtime's costliest functions.

use crate::hosttools;
use crate::util::{self, Result};
use std::collections::BTreeMap;
use std::process::Command;

/// Packets per run (enough to make the set-up negligible, little enough for callgrind).
const DEFAULT_PACKETS: u64 = 2000;
/// Functions listed under the groups.
const TOP: usize = 15;

/// `cargo xtask profile …`.
pub fn command(args: &[&str]) -> Result {
    let (what, rest) = args.split_first().ok_or(USAGE)?;
    if *what != "net" {
        return Err(format!("unknown profile `{what}`\n{USAGE}"));
    }
    let mut workload = "mtu";
    let mut packets = DEFAULT_PACKETS;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match *a {
            "--packets" => {
                packets = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--packets needs a positive number")?
            }
            w @ ("mtu" | "small" | "gso") => workload = w,
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    hosttools::ensure_profile(true)?;
    net(workload, packets)
}

const USAGE: &str = "usage: cargo xtask profile net [mtu|small|gso] [--packets N]";

fn net(workload: &str, packets: u64) -> Result {
    eprintln!("profile: building netback's profile_datapath example (release, debug info)");
    util::run(
        Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--release", "-p", "netback"])
            .args(["--example", "profile_datapath"])
            .env("CARGO_PROFILE_RELEASE_DEBUG", "true"),
    )?;
    let root = util::workspace_root();
    let exe = root.join("target/release/examples/profile_datapath");
    let dir = root.join("target/profile");
    util::mkdirs(&dir)?;
    let out = dir.join(format!("net-{workload}.callgrind"));
    eprintln!("profile: running {packets} `{workload}` packets under callgrind");
    let run = util::output(
        Command::new("valgrind")
            .args([
                "--tool=callgrind",
                "--toggle-collect=minios::host::settle::settle",
            ])
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&exe)
            .args([workload, &packets.to_string()]),
    )?;
    let annotated = util::output(
        Command::new("callgrind_annotate")
            .args(["--threshold=100", "--auto=no"])
            .arg(&out),
    )?;
    let costs = parse(&annotated);
    print!("{}", report(workload, packets, run.trim(), &costs));
    println!(
        "raw profile: {} (callgrind_annotate, kcachegrind)",
        out.display()
    );
    Ok(())
}

/// `(self cost, function)` of every line of `callgrind_annotate`'s function table.
fn parse(annotated: &str) -> Vec<(u64, String)> {
    annotated
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let (num, rest) = l.split_once(' ')?;
            let ir: u64 = num.replace(',', "").parse().ok()?;
            // "(12.34%)  file:function [object]"
            let rest = rest.trim_start();
            let rest = rest.strip_prefix('(')?.split_once(')')?.1.trim();
            let rest = rest.split(" [").next().unwrap_or(rest);
            if rest.contains("PROGRAM TOTALS") {
                return None;
            }
            Some((ir, function_of(rest).to_string()))
        })
        .collect()
}

/// The function in `file:function` (a file path has no `:`; a Rust path's `::` is not the
/// separator).
fn function_of(s: &str) -> &str {
    let b = s.as_bytes();
    for i in 0..b.len() {
        if b[i] == b':' && b.get(i + 1) != Some(&b':') && (i == 0 || b[i - 1] != b':') {
            return &s[i + 1..];
        }
    }
    s
}

/// The group a function's cost belongs to.
fn group(f: &str) -> &'static str {
    let owner = f.trim_start_matches('<');
    if owner.starts_with("minios::host") {
        "simulated Xen (minios::host: grant copies, shared memory)"
    } else if owner.starts_with("netback::") || owner.contains(" as netback::") {
        "netback"
    } else if owner.starts_with("minios::") || owner.starts_with("xen_abi::") {
        "runtime (minios, xen-abi)"
    } else if f.contains("malloc") || f.contains("free") || f.contains("__rdl_") {
        "allocator"
    } else if f.contains("memcpy") || f.contains("memmove") || f.contains("memset") {
        "libc copies"
    } else {
        "other"
    }
}

fn report(workload: &str, packets: u64, run: &str, costs: &[(u64, String)]) -> String {
    let total: u64 = costs.iter().map(|c| c.0).sum();
    let per = |ir: u64| ir as f64 / packets as f64;
    let mut groups: BTreeMap<&str, u64> = BTreeMap::new();
    let mut own: BTreeMap<&str, u64> = BTreeMap::new();
    for (ir, f) in costs {
        let g = group(f);
        *groups.entry(g).or_default() += ir;
        if g == "netback" || g.starts_with("runtime") {
            *own.entry(f.as_str()).or_default() += ir;
        }
    }
    let mut out = format!(
        "netback data path on the host platform, workload `{workload}`: {run}\n\
         instructions inside the driver domain's passes: {total} = {:.0} per packet\n\n",
        per(total)
    );
    let mut g: Vec<(&str, u64)> = groups.into_iter().collect();
    g.sort_by_key(|x| std::cmp::Reverse(x.1));
    for (name, ir) in g {
        out.push_str(&format!(
            "  {:>9.0} Ir/packet {:>5.1} %  {name}\n",
            per(ir),
            100.0 * ir as f64 / total.max(1) as f64
        ));
    }
    out.push_str("\nnetback's and the runtime's costliest functions (self cost):\n");
    let mut o: Vec<(&str, u64)> = own.into_iter().collect();
    o.sort_by_key(|x| std::cmp::Reverse(x.1));
    for (f, ir) in o.into_iter().take(TOP) {
        out.push_str(&format!("  {:>9.1} Ir/packet  {f}\n", per(ir)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_callgrind_annotate_lines_and_groups_them() {
        let text = "\
48,400,457 (100.0%)  PROGRAM TOTALS
--------------------------------------------------------------------------------
Ir                   file:function
--------------------------------------------------------------------------------
47,680,000 (37.35%)  minios-rs/core/src/host/page.rs:<minios::host::HostDomain as minios::platform::Grants>::copy
 3,080,335 ( 2.41%)  ./malloc/./malloc/malloc.c:_int_malloc [/usr/lib/x86_64-linux-gnu/libc.so.6]
   529,122 ( 0.41%)  netback/src/datapath/tx.rs:<netback::datapath::Datapath<P> as minios::executor::Task<P>>::poll
   138,000 ( 0.11%)  netback/src/tx_chain.rs:netback::tx_chain::read_chain [/x/profile_datapath]
   100,000 ( 0.10%)  minios-rs/core/src/ring.rs:minios::ring::SharedRing<M>::read_entry
    20,000 ( 0.01%)  ./string/../sysdeps/x86_64/multiarch/memset-vec-unaligned-erms.S:__memset_avx2_unaligned_erms [/usr/lib/libc.so.6]
";
        let c = parse(text);
        assert_eq!(c.len(), 6);
        assert_eq!(
            c[2].1,
            "<netback::datapath::Datapath<P> as minios::executor::Task<P>>::poll"
        );
        let groups: Vec<&str> = c.iter().map(|(_, f)| group(f)).collect();
        assert_eq!(
            groups,
            [
                "simulated Xen (minios::host: grant copies, shared memory)",
                "allocator",
                "netback",
                "netback",
                "runtime (minios, xen-abi)",
                "libc copies"
            ]
        );
        let r = report("mtu", 1000, "run line", &c);
        assert!(r.contains("= 51547 per packet"), "{r}");
        assert!(
            r.contains("    529.1 Ir/packet  <netback::datapath::Datapath<P>"),
            "{r}"
        );
    }
}
