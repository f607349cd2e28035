//! Wiring: a blkback driver domain from its command line — the volume layout, RAM volumes
//! allocated, the backing disk connected (if a slice uses one), the `vbd` backend and the
//! disk's task spawned — started and stopped by [`minios::driver_domain`] like every
//! backend. The unikernel's `main` only calls [`run`]; host tests call [`boot`] and step the
//! executor.
//!
//! Everything that cannot work is refused at start with one line naming the cause: a bad
//! option, overlapping or oversize slices, RAM volumes larger than memory, no backing disk.
//! At the stop the backing disk is flushed once more.

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use core::cell::RefCell;

use log::info;
use minios::driver_domain::{self, DriverDomain, StartError, Started};
use minios::executor::{Executor, StopReason};
use minios::options::Size;
use minios::platform::Platform;
use minios::xenbus::Backend;
use minios::xenstore::Xenstore;

use crate::backend::{BlkDriver, Catalog};
use crate::config::{Backing, Config};
use crate::store::disk::{self, DiskStore, DiskTask};
use crate::store::ram::RamVolume;

/// The log name.
pub const NAME: &str = "blkback";

/// How long the backing disk may take to connect at start.
pub const DISK_CONNECT_NS: u64 = 20_000_000_000;

/// How long the final flush of the backing disk may take at the stop.
pub const DISK_FLUSH_NS: u64 = 5_000_000_000;

/// What the driver domain runs (for tests).
pub struct BlkDd<P: Platform> {
    /// The `vbd` backend.
    pub backend: Rc<RefCell<Backend<P, BlkDriver>>>,
    /// The backing disk of `disk` slices, if any volume is one.
    pub disk: Option<disk::Shared<P>>,
}

impl<P: Platform + Clone + 'static> DriverDomain<P> for BlkDd<P> {
    fn stop(&mut self, exec: &mut Executor<P>, _reason: StopReason) {
        if let Some(store) = self.disk.as_ref() {
            let deadline = exec.platform().now_ns().saturating_add(DISK_FLUSH_NS);
            DiskStore::shutdown(store, exec.xenstore(), deadline);
        }
    }
}

/// The whole life of the driver domain (what `main` calls): start, serve until
/// `control/shutdown`, flush and stop. Returns how the domain should shut down.
pub fn run<P: Platform + Clone + 'static>(
    platform: P,
    xs: Option<Xenstore<P::Xs>>,
    cmdline: &str,
) -> StopReason {
    driver_domain::run(NAME, platform, xs, cmdline, start)
}

/// Starts the driver domain as [`run`] does and returns it running (`data/ready` written),
/// or the one-line reason it refuses to start (already logged).
pub fn boot<P: Platform + Clone + 'static>(
    platform: P,
    xs: Option<Xenstore<P::Xs>>,
    cmdline: &str,
) -> Result<Started<P, BlkDd<P>>, StartError> {
    driver_domain::start(NAME, platform, xs, cmdline, start)
}

fn start<P: Platform + Clone + 'static>(
    exec: &mut Executor<P>,
    cmdline: &str,
) -> Result<BlkDd<P>, StartError> {
    let config = Config::parse(cmdline).map_err(StartError::new)?;
    if config.volumes.is_empty() {
        return Err(StartError::new(
            "no volumes configured (blkback.vol=<name>:ram:<size>, see the README)",
        ));
    }
    let disk = if config.needs_disk() {
        let platform = exec.platform().clone();
        let deadline = platform.now_ns().saturating_add(DISK_CONNECT_NS);
        let store = DiskStore::connect(
            platform,
            exec.xenstore(),
            config.disk,
            config.bounce_pages,
            deadline,
        )
        .map_err(|e| StartError::new(format_args!("backing disk: {e}")))?;
        let (bytes, sector) = store.borrow().geometry();
        config.check_disk(bytes, sector).map_err(StartError::new)?;
        Some(store)
    } else {
        None
    };
    let catalog = volumes(&config, disk.as_ref())?;
    let domid = exec.platform().domid();
    let backend = Backend::new(BlkDriver::new(catalog, config.options), domid).shared();
    exec.spawn(backend.clone())
        .map_err(|e| StartError::new(format_args!("watching backend/vbd: {e}")))?;
    if let Some(store) = disk.as_ref() {
        exec.spawn(DiskTask::new(store.clone()))
            .map_err(|e| StartError::new(format_args!("backing disk task: {e}")))?;
    }
    Ok(BlkDd { backend, disk })
}

/// The configured volumes: RAM volumes allocated, disk slices of `disk`.
fn volumes<P: Platform + Clone + 'static>(
    config: &Config,
    disk: Option<&disk::Shared<P>>,
) -> Result<Catalog, StartError> {
    let mut catalog = Catalog::new();
    for v in &config.volumes {
        let kind: String = match v.backing {
            Backing::Ram => {
                let vol = RamVolume::create(&v.name, v.size, v.sector_size, v.read_only).map_err(
                    |e| {
                        StartError::new(format_args!(
                            "RAM volume {:?} of {}: {e} (give the domain more memory=)",
                            v.name,
                            Size(v.size)
                        ))
                    },
                )?;
                catalog.add(&v.name, Box::new(vol));
                format!("RAM {}", Size(v.size))
            }
            Backing::Disk { offset } => {
                let store =
                    disk.ok_or_else(|| StartError::new("disk slice without a backing disk"))?;
                let slice =
                    DiskStore::slice(store, &v.name, offset, v.size, v.sector_size, v.read_only);
                catalog.add(&v.name, Box::new(slice));
                format!("disk {}+{}", Size(offset), Size(v.size))
            }
        };
        info!(
            "volume {}: {kind}, {}-byte sectors{}",
            v.name,
            v.sector_size,
            if v.read_only { ", read-only" } else { "" }
        );
    }
    Ok(catalog)
}
