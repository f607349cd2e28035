//! A fixed workload through a whole netback on the host platform (`minios::host`), for
//! profiling the data path with callgrind (`cargo xtask profile net`): guest b sends
//! `PACKETS` frames to guest a through the switch, as netfront would (ring kept full,
//! responses taken, RX buffers reposted). Only the driver domain's passes (and the simulated
//! Xen operations they make: grant copies, notifications) are inside `Harness::settle`,
//! which the profile collects.
//!
//! `cargo run --release -p netback --example profile_datapath -- <workload> [packets]`;
//! workloads: `mtu` (1448-byte UDP payloads, one slot each), `small` (64-byte frames),
//! `gso` (16 KiB TCP GSO frames from a Linux-like guest to one that takes GSO).

#[path = "../tests/common/mod.rs"]
#[allow(clippy::new_without_default)]
mod common;

use common::*;
use netback::wire::{Gso, GsoKind};
use std::time::Instant;
use xen_abi::netif::{NETIF_RSP_NULL, NETIF_RSP_OKAY};

/// TX ring slots kept in use by the sender (netfront keeps its 256-slot ring nearly full).
const IN_FLIGHT_SLOTS: usize = 200;

fn main() {
    let mut args = std::env::args().skip(1);
    let workload = args.next().unwrap_or_else(|| "mtu".into());
    let packets: usize = args
        .next()
        .map(|n| n.parse().expect("packets: a number"))
        .unwrap_or(4000);
    let (frame, opts): (Vec<u8>, SendOpts) = match workload.as_str() {
        "mtu" => (
            udp_frame(mac(5), mac(6), ip(6), ip(5), &pattern(1448, 1)),
            SendOpts::default(),
        ),
        "small" => (
            udp_frame(mac(5), mac(6), ip(6), ip(5), &pattern(22, 1)),
            SendOpts::default(),
        ),
        "gso" => (
            tcp_frame(mac(5), mac(6), ip(6), ip(5), &pattern(16 * 1024, 1), true),
            SendOpts {
                csum_blank: true,
                gso: Some(Gso {
                    kind: GsoKind::TcpV4,
                    mss: 1448,
                }),
                ..SendOpts::default()
            },
        ),
        other => {
            eprintln!("unknown workload `{other}` (mtu, small, gso)");
            std::process::exit(2);
        }
    };

    // Every slot is answered (extra-info slots with NETIF_RSP_NULL).
    let slots = frame.len().div_ceil(4096) + usize::from(opts.gso.is_some());
    let mut h = Harness::new("netback.uplink=off");
    let mut a = h.guest(5, FrontOpts::linux(5));
    let mut b = h.guest(6, FrontOpts::linux(6));
    let start = Instant::now();
    let (mut sent, mut got, mut bytes) = (0usize, 0usize, 0usize);
    let mut passes = 0u64;
    while got < packets {
        while sent < packets && (sent + 1) * slots - b.tx_done.len() <= IN_FLIGHT_SLOTS {
            b.queue_frame(&frame, &opts);
            sent += 1;
        }
        b.push_tx();
        h.settle();
        passes += 1;
        b.poll();
        for r in a.take_received() {
            assert!(!r.error, "a packet arrived as an error");
            bytes += r.data.len();
            got += 1;
        }
        assert!(
            passes < 100 * packets as u64,
            "no progress: {got} of {packets} arrived"
        );
    }
    let took = start.elapsed();
    let bad: Vec<i16> = b
        .statuses()
        .into_iter()
        .filter(|&s| s != NETIF_RSP_OKAY && s != NETIF_RSP_NULL)
        .collect();
    assert!(
        bad.is_empty(),
        "TX answered with {} errors: {:?}",
        bad.len(),
        &bad[..bad.len().min(8)]
    );
    println!(
        "workload {workload}: {packets} packets ({bytes} bytes) in {} settle rounds, {:.3} s \
         ({:.0} packets/s on the host platform)",
        passes,
        took.as_secs_f64(),
        packets as f64 / took.as_secs_f64()
    );
}
