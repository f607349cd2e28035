//! Wiring: a blkback driver domain from its command line — the volume layout, RAM volumes
//! allocated, the backing disk connected (if a slice uses one), the passed-through device
//! opened (if a volume lives on it), the `vbd` backend and the stores' tasks spawned —
//! started and stopped by [`minios::driver_domain`] like every backend. The unikernel's
//! `main` only calls [`run_with_device`] (the device opener is platform-specific); host tests
//! call [`boot`] or [`boot_with_device`] and step the executor.
//!
//! Everything that cannot work is refused at start with one line naming the cause: a bad
//! option, overlapping or oversize slices, RAM volumes larger than memory, no backing disk,
//! no usable device. At the stop the backing disk and the device are flushed once more.
//!
//! A driver domain that owns a device publishes the device's counters in its
//! `data/status/` ([`DeviceStatus`]: at most every `blkback.stats_ms`, and once more after
//! the final flush).

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use core::cell::RefCell;

use log::info;
use minios::blockdev::BlockDevice;
use minios::driver_domain::{self, DriverDomain, StartError, Started};
use minios::executor::{Executor, StopReason};
use minios::options::Size;
use minios::platform::Platform;
use minios::xenbus::Backend;
use minios::xenstore::Xenstore;

use crate::backend::{BlkDriver, Catalog};
use crate::config::{Backing, Config, DeviceKind};
use crate::store::device::{self, DeviceStatus, DeviceStore, DeviceTask};
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
    /// The passed-through controller of `virtio` or `nvme` volumes, if any volume is one.
    pub device: Option<device::Shared>,
    /// The device's counters in `data/status/`, when there is a device.
    status: Option<Rc<RefCell<DeviceStatus>>>,
}

/// Opens the passed-through block controller of the kind the volumes name (called only when
/// a volume lives on one): the platform-specific part, given by `main`. An error is one line
/// (why there is no device).
pub type OpenDevice<P> =
    dyn FnOnce(&mut Executor<P>, DeviceKind) -> Result<Box<dyn BlockDevice>, String>;

impl<P: Platform + Clone + 'static> DriverDomain<P> for BlkDd<P> {
    fn stop(&mut self, exec: &mut Executor<P>, _reason: StopReason) {
        if let Some(store) = self.disk.as_ref() {
            let deadline = exec.platform().now_ns().saturating_add(DISK_FLUSH_NS);
            DiskStore::shutdown(store, exec.xenstore(), deadline);
        }
        if let Some(store) = self.device.as_ref() {
            let deadline = exec.platform().now_ns().saturating_add(DISK_FLUSH_NS);
            DeviceStore::shutdown(store, exec.platform(), deadline);
        }
        if let Some(status) = self.status.as_ref() {
            let now = exec.platform().now_ns();
            status.borrow_mut().publish_final(exec.xenstore(), now);
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
    run_with_device(platform, xs, cmdline, Box::new(no_device))
}

/// [`run`] for a driver domain that may own a block device: `open` opens it when a volume
/// lives on it.
pub fn run_with_device<P: Platform + Clone + 'static>(
    platform: P,
    xs: Option<Xenstore<P::Xs>>,
    cmdline: &str,
    open: Box<OpenDevice<P>>,
) -> StopReason {
    driver_domain::run(NAME, platform, xs, cmdline, |e, c| start(e, c, open))
}

fn no_device<P: Platform>(
    _: &mut Executor<P>,
    _: DeviceKind,
) -> Result<Box<dyn BlockDevice>, String> {
    Err("this build has no device drivers".into())
}

/// Starts the driver domain as [`run`] does and returns it running (`data/ready` written),
/// or the one-line reason it refuses to start (already logged).
pub fn boot<P: Platform + Clone + 'static>(
    platform: P,
    xs: Option<Xenstore<P::Xs>>,
    cmdline: &str,
) -> Result<Started<P, BlkDd<P>>, StartError> {
    boot_with_device(platform, xs, cmdline, Box::new(no_device))
}

/// [`boot`] with a device opener (host tests give a simulated device).
pub fn boot_with_device<P: Platform + Clone + 'static>(
    platform: P,
    xs: Option<Xenstore<P::Xs>>,
    cmdline: &str,
    open: Box<OpenDevice<P>>,
) -> Result<Started<P, BlkDd<P>>, StartError> {
    driver_domain::start(NAME, platform, xs, cmdline, |e, c| start(e, c, open))
}

fn start<P: Platform + Clone + 'static>(
    exec: &mut Executor<P>,
    cmdline: &str,
    open: Box<OpenDevice<P>>,
) -> Result<BlkDd<P>, StartError> {
    let mut config = Config::parse(cmdline).map_err(StartError::new)?;
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
    let device = if let Some(kind) = config.device_kind() {
        let dev =
            open(exec, kind).map_err(|e| StartError::new(format_args!("{kind} device: {e}")))?;
        let store = DeviceStore::new(dev);
        let (bytes, block, what) = {
            let s = store.borrow();
            (s.bytes(), s.info().block_size, s.describe())
        };
        config.fit_device(bytes, block).map_err(StartError::new)?;
        let i = store.borrow().info();
        info!(
            "device: {what}, {block}-byte blocks{}{}{}, {} KiB per request",
            if i.read_only { ", read-only" } else { "" },
            if i.flush {
                ", flush"
            } else {
                ", no cache to flush"
            },
            if i.discard.is_some() { ", discard" } else { "" },
            i.max_transfer / 1024
        );
        Some(store)
    } else {
        None
    };
    let catalog = volumes(&config, disk.as_ref(), device.as_ref())?;
    let domid = exec.platform().domid();
    let stats_ms = config.options.stats_ms;
    let backend = Backend::new(BlkDriver::new(catalog, config.options), domid).shared();
    exec.spawn(backend.clone())
        .map_err(|e| StartError::new(format_args!("watching backend/vbd: {e}")))?;
    if let Some(store) = disk.as_ref() {
        exec.spawn(DiskTask::new(store.clone()))
            .map_err(|e| StartError::new(format_args!("backing disk task: {e}")))?;
    }
    if let Some(store) = device.as_ref() {
        exec.spawn(DeviceTask::new(store.clone()))
            .map_err(|e| StartError::new(format_args!("device task: {e}")))?;
    }
    // `stats_ms=0`: no status, and no task polling for nothing.
    let status = device.as_ref().filter(|_| stats_ms != 0).map(|store| {
        Rc::new(RefCell::new(DeviceStatus::new(
            store.clone(),
            domid,
            stats_ms,
        )))
    });
    if let Some(status) = status.as_ref() {
        exec.spawn(status.clone())
            .map_err(|e| StartError::new(format_args!("device status task: {e}")))?;
    }
    Ok(BlkDd {
        backend,
        disk,
        device,
        status,
    })
}

/// The configured volumes: RAM volumes allocated, disk slices of `disk`.
fn volumes<P: Platform + Clone + 'static>(
    config: &Config,
    disk: Option<&disk::Shared<P>>,
    device: Option<&device::Shared>,
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
            Backing::Device { kind, offset, .. } => {
                let store =
                    device.ok_or_else(|| StartError::new("device volume without a device"))?;
                let slice =
                    DeviceStore::slice(store, &v.name, offset, v.size, v.sector_size, v.read_only);
                let ro = slice.info().read_only && !v.read_only;
                catalog.add(&v.name, Box::new(slice));
                format!(
                    "{kind} {}+{}{}",
                    Size(offset),
                    Size(v.size),
                    if ro { " (the device is read-only)" } else { "" }
                )
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
