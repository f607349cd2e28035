//! The netback driver domain (unikernel main): configuration from the command line, the
//! tasks of [`netback::netdd`], readiness, the loop, shutdown. Everything else is the
//! library, tested on the host.
#![no_std]
#![no_main]

use log::{info, warn};
use minios::executor::Executor;
use netback::config::Config;

minios_rt::entry!(main);

fn main(rt: minios_rt::Runtime) {
    info!(
        "netback driver domain starting (cmdline \"{}\")",
        rt.cmdline()
    );
    let (mut config, problems) = Config::from_cmdline(rt.cmdline());
    for p in problems {
        warn!("{p}");
    }
    let free = minios_rt::mm::free_bytes() as usize;
    if config.fit_memory(free) {
        info!(
            "queue budget lowered to {} KiB to fit the {} KiB free",
            config.limits.total_bytes / 1024,
            free / 1024
        );
    }
    let Some(xs) = rt.take_xenstore() else {
        panic!("no xenstore connection");
    };
    let mut exec = Executor::new(rt, xs);
    if let Err(e) = netback::netdd::spawn(&mut exec, &config, free_bytes) {
        panic!("starting the backend: {e}");
    }
    if let Err(e) = exec.signal_ready() {
        panic!("writing data/ready: {e}");
    }
    let reason = exec.run();
    info!(
        "stopping ({reason:?}), {} KiB free",
        minios_rt::mm::free_bytes() / 1024
    );
    rt.shutdown(reason.into());
}

/// Memory left: free frames plus free heap space.
fn free_bytes() -> u64 {
    minios_rt::mm::free_bytes() + minios_rt::mm::heap_free_bytes() as u64
}
