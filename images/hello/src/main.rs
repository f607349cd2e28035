//! The hello driver domain: proves the runtime on real Xen.
//!
//! Boots, logs through the PV console ring, reads its domid and name from xenstore, sleeps
//! 100 ms on the one-shot timer and logs the measured time, publishes `data/ready` = 1, then
//! idles blocked in Xen until `xl shutdown` (or `reboot`). Before readiness it runs the
//! runtime's self-test on Xen (event channel loopback, grant map and copy to itself; skip it
//! with `hello.selftest=0`). With `hello.panic=1` on its command line it panics right after
//! signalling readiness, so `xl` reports it crashed. With `hello.pci=1` it checks the PCI
//! layer on a passed-through virtio-net (an ARP exchange with the gateway of QEMU's user
//! network), publishes the outcome under `data/pci/` and keeps answering pciback while the
//! toolstack takes the functions away (`xl destroy`).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::rc::Rc;
use minios::executor::{Executor, ShutdownWatch};
use minios::pci::PciFrontTask;
use minios::platform::Clock;
use minios::xenstore::Store;
use minios_rt::pci::PciBus;
use minios_rt::Runtime;

minios_rt::entry!(main);

/// How long the timer check sleeps.
const SLEEP_NS: u64 = 100_000_000;

fn main(rt: Runtime) {
    log::info!(
        "hello driver domain starting (cmdline \"{}\")",
        rt.cmdline()
    );
    let Some(mut xs) = rt.take_xenstore() else {
        panic!("no xenstore connection");
    };
    let domid = xs
        .read_string("domid")
        .unwrap_or_else(|e| panic!("reading domid: {e}"));
    let name = xs
        .read_string("name")
        .unwrap_or_else(|e| panic!("reading name: {e}"));
    log::info!("I am domain {domid}, name \"{name}\"");

    let start = rt.now_ns();
    rt.sleep_ns(SLEEP_NS);
    let elapsed = rt.now_ns() - start;
    log::info!(
        "timer: asked for {} ms, slept {}.{:03} ms",
        SLEEP_NS / 1_000_000,
        elapsed / 1_000_000,
        (elapsed / 1_000) % 1_000
    );

    if !matches!(rt.option("hello.selftest"), Some("0")) {
        if let Err(e) = minios_rt::selftest::on_xen(&rt) {
            panic!("runtime self-test failed: {e}");
        }
    }

    let bus = if rt.flag("hello.pci") {
        pci_check(&rt, &mut xs)
    } else {
        None
    };

    let mut executor = Executor::new(rt, xs);
    if let Err(e) = executor.spawn(ShutdownWatch::new()) {
        panic!("watching control/shutdown: {e}");
    }
    // Answers the toolstack when it takes the functions away (`xl destroy` of this running
    // domain), so libxl does not wait 10 s for pciback.
    if let Some(bus) = bus {
        if let Err(e) = executor.spawn(PciFrontTask::new(bus)) {
            panic!("watching the PCI backend: {e}");
        }
    }
    if let Err(e) = executor.signal_ready() {
        panic!("writing data/ready: {e}");
    }
    if rt.flag("hello.panic") {
        panic!("hello.panic=1 on the command line: crashing on purpose after readiness");
    }
    log::info!("idle: blocked in Xen until control/shutdown");
    let reason = executor.run();
    log::info!("stopping ({reason:?})");
    rt.shutdown(reason.into());
}

/// Runs the runtime's PCI check and publishes `data/pci/{result,functions,mac,irq,arp}`
/// (`result` is `ok` or the error); returns the pcifront connection when there is one.
fn pci_check(
    rt: &Runtime,
    xs: &mut minios::xenstore::Xenstore<minios_rt::xenstore::RingTransport>,
) -> Option<Rc<PciBus>> {
    let outcome =
        minios_rt::selftest_pci::run(rt, xs, [10, 0, 2, 15], [10, 0, 2, 2], 5_000_000_000);
    let mut keys: alloc::vec::Vec<(&str, alloc::string::String)> = alloc::vec::Vec::new();
    let mut bus = None;
    match outcome {
        Ok(r) => {
            bus = Some(r.bus);
            log::info!(
                "pci: functions {:?}, nic mac {} ({} interrupts), {} interrupts while waiting; {}",
                r.functions,
                r.mac,
                r.irq_mode,
                r.interrupts,
                r.arp_reply
            );
            keys.push(("result", "ok".into()));
            keys.push(("functions", r.functions.join(" ")));
            keys.push(("mac", r.mac));
            keys.push(("irq", r.irq_mode));
            keys.push(("arp", r.arp_reply));
            keys.push(("interrupts", alloc::format!("{}", r.interrupts)));
        }
        Err(e) => {
            log::error!("pci: {e}");
            keys.push(("result", e));
        }
    }
    for (k, v) in keys {
        if let Err(e) = xs.write(&alloc::format!("data/pci/{k}"), v.as_bytes()) {
            log::warn!("cannot publish data/pci/{k}: {e}");
        }
    }
    bus
}
