//! The hello driver domain: proves the runtime on real Xen.
//!
//! Boots, logs through the PV console ring, reads its domid and name from xenstore, sleeps
//! 100 ms on the one-shot timer and logs the measured time, publishes `data/ready` = 1, then
//! idles blocked in Xen until `xl shutdown` (or `reboot`). Before readiness it runs the
//! runtime's self-test on Xen (event channel loopback, grant map and copy to itself; skip it
//! with `hello.selftest=0`). With `hello.panic=1` on its command line it panics right after
//! signalling readiness, so `xl` reports it crashed.
#![no_std]
#![no_main]

use minios::executor::{Executor, ShutdownWatch};
use minios::platform::Clock;
use minios::xenstore::Store;
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

    let mut executor = Executor::new(rt, xs);
    if let Err(e) = executor.spawn(ShutdownWatch::new()) {
        panic!("watching control/shutdown: {e}");
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
