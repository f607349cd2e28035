//! The blkback driver domain: reads its volume layout from the command line, allocates RAM
//! volumes, connects the backing disk (if any slice uses one), serves `vbd` devices until
//! `xl shutdown`, then flushes the backing disk and powers off.
//!
//! A configuration that cannot work (bad option, overlapping or oversize slice, RAM volumes
//! larger than memory, no backing disk) is logged as one line naming the cause and the domain
//! crashes, so `xl` shows it failed at start rather than later.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;

use blkback::backend::{BlkDriver, Catalog};
use blkback::config::{Backing, Config};
use blkback::store::disk::{DiskStore, DiskTask};
use blkback::store::ram::RamVolume;
use blkback::store::Size;
use minios::executor::{Executor, ShutdownWatch};
use minios::platform::{Clock, Platform};
use minios::xenbus::Backend;
use minios_rt::{Runtime, Shutdown};

minios_rt::entry!(main);

/// How long the backing disk may take to connect at start.
const DISK_CONNECT_NS: u64 = 20_000_000_000;

fn fail(rt: &Runtime, why: &str) -> ! {
    log::error!("blkback: cannot start: {why}");
    rt.shutdown(Shutdown::Crash)
}

fn main(rt: Runtime) {
    log::info!(
        "blkback driver domain starting (cmdline \"{}\")",
        rt.cmdline()
    );
    let config = Config::parse(rt.cmdline()).unwrap_or_else(|e| fail(&rt, &format!("{e}")));
    if config.volumes.is_empty() {
        fail(
            &rt,
            "no volumes configured (blkback.vol=<name>:ram:<size>, see the README)",
        );
    }
    let Some(mut xs) = rt.take_xenstore() else {
        fail(&rt, "no xenstore connection");
    };

    let disk = if config.needs_disk() {
        let deadline = rt.now_ns().saturating_add(DISK_CONNECT_NS);
        let store = DiskStore::connect(rt, &mut xs, config.disk, config.bounce_pages, deadline)
            .unwrap_or_else(|e| fail(&rt, &format!("backing disk: {e}")));
        let (bytes, sector) = store.borrow().geometry();
        config
            .check_disk(bytes, sector)
            .unwrap_or_else(|e| fail(&rt, &format!("{e}")));
        Some(store)
    } else {
        None
    };

    let mut catalog = Catalog::new();
    for v in &config.volumes {
        let kind: String = match v.backing {
            Backing::Ram => {
                let vol = RamVolume::create(&v.name, v.size, v.sector_size, v.read_only)
                    .unwrap_or_else(|e| {
                        fail(
                            &rt,
                            &format!(
                                "RAM volume {:?} of {}: {e} (give the domain more memory=)",
                                v.name,
                                Size(v.size)
                            ),
                        )
                    });
                catalog.add(&v.name, Box::new(vol));
                format!("RAM {}", Size(v.size))
            }
            Backing::Disk { offset } => {
                let Some(store) = disk.as_ref() else {
                    fail(&rt, "disk slice without a backing disk");
                };
                let slice =
                    DiskStore::slice(store, &v.name, offset, v.size, v.sector_size, v.read_only);
                catalog.add(&v.name, Box::new(slice));
                format!("disk {}+{}", Size(offset), Size(v.size))
            }
        };
        log::info!(
            "volume {}: {kind}, {}-byte sectors{}",
            v.name,
            v.sector_size,
            if v.read_only { ", read-only" } else { "" }
        );
    }

    let mut exec = Executor::new(rt, xs);
    let driver = BlkDriver::new(catalog, config.options);
    if let Err(e) = exec.spawn(Backend::new(driver, rt.domid())) {
        fail(&rt, &format!("watching backend/vbd: {e}"));
    }
    if let Some(store) = disk.as_ref() {
        if let Err(e) = exec.spawn(DiskTask::new(store.clone())) {
            fail(&rt, &format!("backing disk task: {e}"));
        }
    }
    if let Err(e) = exec.spawn(ShutdownWatch::new()) {
        fail(&rt, &format!("watching control/shutdown: {e}"));
    }
    if let Err(e) = exec.signal_ready() {
        fail(&rt, &format!("writing data/ready: {e}"));
    }
    let reason = exec.run();
    if let Some(store) = disk {
        let deadline = rt.now_ns().saturating_add(5_000_000_000);
        DiskStore::shutdown(&store, exec.xenstore(), deadline);
    }
    log::info!("blkback stopping ({reason:?})");
    rt.shutdown(reason.into());
}
