//! The xenbus side of a virtual disk (`vbd`): the volume a device names, the features we
//! publish, the rings and event channels the frontend offers, and the per-pass work.
//!
//! - **Probe**: the toolstack's `params` (xl.cfg `target=`) names a volume of the
//!   [`Catalog`]; `mode` = `r` (xl.cfg `access=ro`) opens it read-only. We write
//!   `physical-device` and `hotplug-status` ourselves: no hotplug script runs for a driver
//!   domain.
//! - **InitWait**: everything in one transaction: ring features
//!   (`max-ring-page-order`, `multi-queue-max-queues`, `feature-max-indirect-segments`,
//!   `feature-persistent`) and the disk (`sectors`, `sector-size`, `info`, flush, barrier,
//!   discard).
//! - **Connect**: `protocol`, `feature-persistent`, `multi-queue-num-queues`,
//!   `ring-page-order` and per queue (`queue-N/` when several) `ring-ref[N]` and
//!   `event-channel` — all untrusted, parsed strictly and bounded by what we advertised.
//! - **Poll**: completions first, then each queue with a bounded budget; then the device's
//!   counters ([`Stats::fields`]) to `/local/domain/<dd>/data/vbd/<frontend-id>/<devid>/`, at
//!   most every `blkback.stats_ms` and only what changed
//!   ([`minios::data_area::CounterPublisher`], as netback's per-vif counters).
//! - **Disconnect** logs the counters and publishes their final values; **removed** (the
//!   device goes) removes them from xenstore.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use log::info;
use minios::data_area::CounterPublisher;
use minios::platform::{Access, PageSet, Platform, XenErrno};
use minios::xenbus::quote;
use minios::xenbus::{BackendDevice, BackendDriver, DeviceCtx, DeviceError};
use xen_abi::blkif::VDISK_READONLY;

use crate::queue::{tag_owner, Queue, Ring};
use crate::stats::Stats;
use crate::store::{Volume, VolumeInfo};

/// Backend limits and features (configurable from the command line, see the README).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// `multi-queue-max-queues`.
    pub max_queues: u32,
    /// `max-ring-page-order` (rings of up to 2^order pages).
    pub max_ring_page_order: u32,
    /// `feature-max-indirect-segments` (0: no indirect descriptors).
    pub max_indirect_segments: u16,
    /// Offer persistent grants (`feature-persistent`).
    pub persistent: bool,
    /// Persistent grants kept mapped per queue.
    pub max_persistent_grants: usize,
    /// Requests a queue takes per pass before yielding to other devices.
    pub budget: usize,
    /// Interval of the per-device counters in xenstore, in ms (0: never); also that of
    /// an owned device's counters in `data/status/`.
    pub stats_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_queues: 4,
            max_ring_page_order: 4,
            max_indirect_segments: 256,
            persistent: true,
            max_persistent_grants: 1056,
            budget: 32,
            stats_ms: 1000,
        }
    }
}

/// Something that opens handles on a named volume.
pub trait VolumeSource {
    /// Opens a handle; `read_only` restricts it (the toolstack's `mode` = `r`).
    fn open(&self, read_only: bool) -> Result<Box<dyn Volume>, String>;
}

impl VolumeSource for crate::store::ram::RamVolume {
    fn open(&self, read_only: bool) -> Result<Box<dyn Volume>, String> {
        Ok(Box::new(self.handle(read_only)))
    }
}

/// The volumes of this driver domain, by name.
#[derive(Default)]
pub struct Catalog {
    volumes: BTreeMap<String, (usize, Box<dyn VolumeSource>)>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a volume.
    pub fn add(&mut self, name: &str, source: Box<dyn VolumeSource>) {
        let index = self.volumes.len();
        self.volumes.insert(name.into(), (index, source));
    }

    /// The volume names, comma separated (for error messages).
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.volumes.keys().map(String::as_str).collect();
        names.join(", ")
    }

    /// Opens volume `name`; returns it with its index (for `physical-device`).
    pub fn open(&self, name: &str, read_only: bool) -> Result<(usize, Box<dyn Volume>), String> {
        match self.volumes.get(name) {
            Some((index, src)) => src.open(read_only).map(|v| (*index, v)),
            None => Err(format!(
                "no volume named {name:?} (configured: {})",
                self.names()
            )),
        }
    }
}

/// The `vbd` backend driver.
pub struct BlkDriver {
    catalog: Catalog,
    options: Options,
}

impl BlkDriver {
    /// A driver serving the volumes of `catalog`.
    pub fn new(catalog: Catalog, options: Options) -> Self {
        Self { catalog, options }
    }
}

impl<P: Platform> BackendDriver<P> for BlkDriver {
    type Device = Vbd<P>;

    fn kind(&self) -> &str {
        "vbd"
    }

    fn probe(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<Vbd<P>, DeviceError> {
        let raw = ctx.read_backend("params")?;
        let name = core::str::from_utf8(&raw)
            .map(str::trim)
            .map_err(|_| DeviceError::new(XenErrno::EINVAL, format!("params {}", quote(&raw))))?;
        let read_only = match ctx.read_backend_opt("mode")?.as_deref() {
            None | Some(b"w") | Some(b"rw") | Some(b"w!") => false,
            Some(b"r") | Some(b"ro") => true,
            Some(other) => {
                let why = format!("mode {} is neither r nor w", quote(other));
                return Err(DeviceError::new(XenErrno::EINVAL, why));
            }
        };
        let (index, volume) = self
            .catalog
            .open(name, read_only)
            .map_err(|why| DeviceError::new(XenErrno::ENOENT, format!("params: {why}")))?;
        let label = format!("{} ({name})", ctx.id);
        let info = volume.info();
        info!(
            "{label}: volume of {} sectors, {}-byte sectors{}",
            info.sectors(),
            info.sector_size,
            if info.read_only { ", read-only" } else { "" }
        );
        Ok(Vbd {
            volume,
            index,
            options: self.options,
            stats: Stats::new(label),
            counters: CounterPublisher::for_device(ctx, self.options.stats_ms),
            queues: Vec::new(),
            generation: 0,
        })
    }
}

/// One virtual disk.
pub struct Vbd<P: Platform> {
    volume: Box<dyn Volume>,
    index: usize,
    options: Options,
    stats: Stats,
    counters: CounterPublisher,
    queues: Vec<Queue<P>>,
    generation: u16,
}

impl<P: Platform> Vbd<P> {
    /// The device's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Number of connected queues.
    pub fn queues(&self) -> usize {
        self.queues.len()
    }

    /// Persistent grants mapped over all queues.
    pub fn persistent_grants(&self) -> usize {
        self.queues.iter().map(Queue::persistent_grants).sum()
    }

    /// Entries per ring (0 when disconnected).
    pub fn ring_size(&self) -> u32 {
        self.queues.first().map_or(0, Queue::ring_size)
    }

    fn publish_disk(&self, ctx: &mut DeviceCtx<'_, P>) {
        let info: &VolumeInfo = self.volume.info();
        ctx.publish("sectors", format!("{}", info.sectors()));
        ctx.publish("sector-size", format!("{}", info.sector_size));
        ctx.publish("physical-sector-size", format!("{}", info.sector_size));
        let flags = if info.read_only { VDISK_READONLY } else { 0 };
        ctx.publish("info", format!("{flags}"));
        ctx.publish("feature-flush-cache", "1");
        ctx.publish("feature-barrier", "1");
        match info.discard {
            Some(d) => {
                ctx.publish("feature-discard", "1");
                ctx.publish("discard-granularity", format!("{}", d.granularity));
                ctx.publish("discard-alignment", format!("{}", d.alignment));
                ctx.publish("discard-secure", if d.secure { "1" } else { "0" });
            }
            None => ctx.publish("feature-discard", "0"),
        }
        ctx.publish(
            "feature-persistent",
            if self.options.persistent { "1" } else { "0" },
        );
    }

    /// Maps one queue's ring and binds its event channel.
    fn connect_queue(
        &self,
        ctx: &mut DeviceCtx<'_, P>,
        index: u32,
        dir: &str,
        order: Option<u32>,
        persistent: bool,
    ) -> Result<Queue<P>, DeviceError> {
        let fe = ctx.id.frontend_id;
        let grefs: Vec<u32> = match order {
            None => alloc::vec![ctx
                .read_frontend_uint(&format!("{dir}ring-ref"), u32::MAX.into())?
                as u32],
            Some(order) => (0..1u32 << order)
                .map(|i| {
                    ctx.read_frontend_uint(&format!("{dir}ring-ref{i}"), u32::MAX.into())
                        .map(|v| v as u32)
                })
                .collect::<Result<_, _>>()?,
        };
        let port = ctx.read_frontend_uint(&format!("{dir}event-channel"), u32::MAX.into())? as u32;
        let mut pages = Vec::with_capacity(grefs.len());
        for (gref, mapped) in
            grefs
                .iter()
                .zip(ctx.platform.map_batch(fe, &grefs, Access::ReadWrite))
        {
            pages.push(
                mapped
                    .map_err(|e| DeviceError::from(e).context(&format!("{dir}ring-ref {gref}")))?,
            );
        }
        let pages = PageSet::new(pages)
            .map_err(|_| DeviceError::protocol(format!("{dir}ring: bad page set")))?;
        let ring: Ring<P::Mapping> = Ring::new(pages)?;
        let channel = ctx
            .platform
            .bind_interdomain(fe, port)
            .map_err(|e| DeviceError::from(e).context(&format!("{dir}event-channel {port}")))?;
        let limit = persistent.then_some(self.options.max_persistent_grants);
        Ok(Queue::new(
            index as u8,
            self.generation,
            fe,
            ring,
            channel,
            limit,
            self.options.max_indirect_segments,
        ))
    }
}

impl<P: Platform> BackendDevice<P> for Vbd<P> {
    fn features(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<(), DeviceError> {
        let o = self.options;
        if o.max_indirect_segments > 0 {
            ctx.publish(
                "feature-max-indirect-segments",
                format!("{}", o.max_indirect_segments),
            );
        }
        ctx.publish("multi-queue-max-queues", format!("{}", o.max_queues));
        ctx.publish("max-ring-page-order", format!("{}", o.max_ring_page_order));
        self.publish_disk(ctx);
        // No hotplug script runs for a driver-domain backend: say what it would have said.
        ctx.publish("physical-device", format!("fd:{:x}", self.index));
        ctx.publish(
            "physical-device-path",
            format!("xdd:{}", self.volume.info().name),
        );
        ctx.publish("hotplug-status", "connected");
        Ok(())
    }

    fn connect(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<(), DeviceError> {
        self.queues.clear();
        self.generation = self.generation.wrapping_add(1);
        match ctx.read_frontend_opt("protocol")?.as_deref() {
            None | Some(b"x86_64-abi") => {}
            Some(other) => {
                return Err(DeviceError::new(
                    XenErrno::ENOSYS,
                    format!(
                        "protocol {} not supported (only the native x86_64-abi)",
                        quote(other)
                    ),
                ))
            }
        }
        let persistent = self.options.persistent
            && ctx.read_frontend_uint_opt("feature-persistent", 1)? == Some(1);
        let max_queues = u64::from(self.options.max_queues);
        let queues = ctx
            .read_frontend_uint_opt("multi-queue-num-queues", max_queues)?
            .unwrap_or(1);
        if queues == 0 {
            return Err(DeviceError::protocol("multi-queue-num-queues 0"));
        }
        let order = ctx
            .read_frontend_uint_opt("ring-page-order", self.options.max_ring_page_order.into())?
            .map(|o| o as u32);
        let mut connected = Vec::with_capacity(queues as usize);
        for q in 0..queues as u32 {
            let dir = if queues == 1 {
                String::new()
            } else {
                format!("queue-{q}/")
            };
            connected.push(self.connect_queue(ctx, q, &dir, order, persistent)?);
        }
        self.queues = connected;
        info!(
            "{}: connected: {} queue(s) of {} entries, {}persistent grants",
            self.stats.label(),
            self.queues.len(),
            self.ring_size(),
            if persistent { "" } else { "no " }
        );
        Ok(())
    }

    fn disconnect(&mut self, ctx: &mut DeviceCtx<'_, P>) {
        self.volume.detach();
        if !self.queues.is_empty() {
            self.queues.clear();
            info!("{}: {}", self.stats.label(), self.stats);
            self.counters.due_now();
            self.counters.publish_device(ctx, &self.stats.fields());
        }
    }

    fn poll(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<(), DeviceError> {
        let platform = ctx.platform;
        while let Some(done) = self.volume.completed() {
            let (generation, q) = tag_owner(done.tag);
            match self.queues.get_mut(usize::from(q)) {
                Some(queue) if generation == self.generation => {
                    queue.complete(platform, &mut *self.volume, &mut self.stats, done)?;
                }
                _ => self.stats.stale_completions += 1,
            }
        }
        let mut more = false;
        let budget = self.options.budget;
        let now = ctx.now_ns();
        for queue in &mut self.queues {
            let (left, hold) =
                queue.poll(platform, &mut *self.volume, &mut self.stats, budget, now)?;
            more |= left;
            if let Some(until) = hold {
                ctx.wake_at(until);
            }
        }
        if more {
            ctx.wake_now();
        }
        self.counters.publish_device(ctx, &self.stats.fields());
        Ok(())
    }

    fn removed(&mut self, ctx: &mut DeviceCtx<'_, P>) {
        self.counters.remove(ctx.xs);
    }
}
