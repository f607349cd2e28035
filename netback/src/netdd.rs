//! Wiring: a netback driver domain from its command line — the configuration, the NIC the
//! [`Machine`] opens, the tasks in the order the executor polls them — started and stopped
//! by [`minios::driver_domain`] like every backend. The unikernel's `main` only calls
//! [`run`]; host tests call [`boot`] and step the executor.

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use core::cell::RefCell;

use log::{info, warn};
use minios::data_area::{self, CounterPublisher};
use minios::driver_domain::{self, DriverDomain, StartError, Started};
use minios::executor::{Ctx, Executor, StopReason, Task};
use minios::netdev::NetDevice;
use minios::pci::PciAddress;
use minios::platform::Platform;
use minios::xenbus::Backend;
use minios::xenstore::{Xenstore, XsError};

use crate::config::{Config, UplinkMode};
use crate::datapath::Datapath;
use crate::stack::LocalStack;
use crate::switch::Switch;
use crate::switch::{Policy, PortConfig};
use crate::uplink::{NicUplink, UplinkTask};
use crate::vif::{VifDriver, VifOptions};

/// The log name.
pub const NAME: &str = "netback";

/// What the driver domain needs from the machine it runs on beyond the [`Platform`]: its
/// free memory and the NIC of `netback.uplink=nic`. The unikernel implements it on the
/// runtime (page allocator, PCI layer, virtio-net); host tests with a fake NIC.
pub trait Machine<P: Platform> {
    /// Memory the domain has left (free frames plus free heap), in bytes.
    fn free_bytes(&self) -> u64;

    /// Connects to the PCI devices the toolstack gave us and brings up the NIC at `want`
    /// (its dom0 address) or the first one, spawning what it needs on `exec`.
    fn open_nic(
        &self,
        exec: &mut Executor<P>,
        want: Option<PciAddress>,
    ) -> Result<Box<dyn NetDevice>, NicProblem>;
}

/// Why the NIC uplink is not there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NicProblem {
    /// The configuration cannot work (PVH, no device given, not a NIC we drive): the
    /// driver domain refuses to start.
    Config(String),
    /// The device (or pciback) misbehaved: serve the guests without it.
    Device(String),
}

/// The whole life of the driver domain (what `main` calls): start, serve until
/// `control/shutdown`, stop. Returns how the domain should shut down.
pub fn run<P: Platform + 'static>(
    platform: P,
    xs: Option<Xenstore<P::Xs>>,
    cmdline: &str,
    machine: impl Machine<P> + 'static,
) -> StopReason {
    match boot(platform, xs, cmdline, machine) {
        Ok(started) => started.run(),
        Err(_) => StopReason::Crash,
    }
}

/// Starts the driver domain as [`run`] does and returns it running (`data/ready` written),
/// or the one-line reason it refuses to start (already logged).
pub fn boot<P: Platform + 'static>(
    platform: P,
    xs: Option<Xenstore<P::Xs>>,
    cmdline: &str,
    machine: impl Machine<P> + 'static,
) -> Result<Started<P, NetDd<P>>, StartError> {
    driver_domain::start(NAME, platform, xs, cmdline, |exec, cmdline| {
        start(exec, cmdline, Rc::new(machine))
    })
}

/// Parses the configuration, fits it to the memory, opens the NIC and spawns the tasks.
fn start<P: Platform + 'static>(
    exec: &mut Executor<P>,
    cmdline: &str,
    machine: Rc<dyn Machine<P>>,
) -> Result<NetDd<P>, StartError> {
    let mut config = Config::parse(cmdline)?;
    let free = machine.free_bytes() as usize;
    if config.fit_memory(free) {
        info!(
            "queue budget lowered to {} KiB to fit the {} KiB free",
            config.limits.total_bytes / 1024,
            free / 1024
        );
    }
    let nic = match config.uplink {
        UplinkMode::Nic(want) => match machine.open_nic(exec, want) {
            Ok(dev) => Some(dev),
            Err(NicProblem::Config(why)) => {
                return Err(StartError::new(format_args!("netback.uplink=nic: {why}")))
            }
            Err(NicProblem::Device(why)) => {
                warn!("uplink: the NIC failed: {why}");
                None
            }
        },
        _ => None,
    };
    spawn(exec, &config, machine.clone(), nic)
        .map_err(|e| StartError::new(format_args!("starting the backend: {e}")))
}

/// Handles to what the driver domain runs (for tests and status).
pub struct NetDd<P: Platform + 'static> {
    /// The data path (switch, vifs, uplink).
    pub dp: Rc<RefCell<Datapath<P>>>,
    /// The vif backend.
    pub backend: Rc<RefCell<Backend<P, VifDriver<P>>>>,
    /// The uplink, if configured.
    pub uplink: Rc<RefCell<UplinkTask<P>>>,
    machine: Rc<dyn Machine<P>>,
}

impl<P: Platform + 'static> DriverDomain<P> for NetDd<P> {
    fn stop(&mut self, _exec: &mut Executor<P>, _reason: StopReason) {
        info!("{} KiB free at the stop", self.machine.free_bytes() / 1024);
    }
}

/// Spawns the backend, the data path, the uplink, the local interface and the status on
/// `exec`. With `netback.uplink=nic`, `nic` is the device the machine opened (`None`: it was
/// not usable, and the guests are served without an uplink).
fn spawn<P: Platform + 'static>(
    exec: &mut Executor<P>,
    config: &Config,
    machine: Rc<dyn Machine<P>>,
    nic: Option<Box<dyn NetDevice>>,
) -> Result<NetDd<P>, XsError> {
    let domid = exec.platform().domid();
    let now = minios::platform::Clock::now_ns(exec.platform());
    let dp = Rc::new(RefCell::new(Datapath::new(
        Switch::new(config.limits),
        config.tx_batch,
    )));
    let l = config.limits;
    info!(
        "switch: queues {} packets / {} KiB per port, {} KiB in all, {} MAC entries; anti-spoofing {}",
        l.queue_packets,
        l.queue_bytes / 1024,
        l.total_bytes / 1024,
        l.fdb_entries,
        if config.antispoof { "on" } else { "off" }
    );
    let opts = VifOptions {
        antispoof: config.antispoof,
        stats_ms: config.stats_ms,
        split_event_channels: config.split_evtchn,
    };
    let backend = Backend::new(VifDriver::new(dp.clone(), opts), domid).shared();
    exec.spawn(backend.clone())?;
    exec.spawn(dp.clone())?;
    let uplink = Rc::new(RefCell::new(UplinkTask::new(
        dp.clone(),
        config.uplink,
        config.uplink_mtu,
        config.uplink_buffers,
    )));
    exec.spawn(uplink.clone())?;
    let nic_attached = match (config.uplink, nic) {
        (UplinkMode::Nic(_), Some(dev)) => {
            let describe = dev.describe();
            let up = NicUplink::new(dev);
            let cfg = PortConfig {
                name: format!("uplink ({describe})"),
                caps: up.caps(),
                policy: Policy::default(),
            };
            let port = dp.borrow_mut().attach_uplink(Box::new(up), cfg);
            info!("uplink: {describe}, port {port}");
            data_area::write_key(exec.xenstore(), domid, "uplink", &describe);
            true
        }
        (UplinkMode::Nic(_), None) => {
            warn!("uplink: no usable NIC: serving the guests without an uplink");
            let why = "none (the NIC is not usable)";
            data_area::write_key(exec.xenstore(), domid, "uplink", why);
            false
        }
        _ => false,
    };
    match config.local_addr(nic_attached) {
        Some(addr) => {
            let mac = config.local_mac(domid);
            exec.spawn(LocalStack::new(dp.clone(), mac, addr, now))?;
        }
        None => info!("no netback.ip=: the driver domain has no address of its own"),
    }
    if config.status_ms != 0 {
        exec.spawn(StatusTask {
            dp: dp.clone(),
            machine: machine.clone(),
            publisher: CounterPublisher::new(data_area::path(domid, "status"), config.status_ms),
            min_free: u64::MAX,
        })?;
    }
    Ok(NetDd {
        dp,
        backend,
        uplink,
        machine,
    })
}

/// Publishes the driver domain's status under `data/status/` at most every `status_ms`,
/// when the driver domain runs anyway: free memory (and its lowest sample), bytes queued in the switch (and the peak),
/// MAC table size, grant copy work.
struct StatusTask<P: Platform> {
    dp: Rc<RefCell<Datapath<P>>>,
    machine: Rc<dyn Machine<P>>,
    publisher: CounterPublisher,
    min_free: u64,
}

impl<P: Platform> Task<P> for StatusTask<P> {
    fn poll(&mut self, cx: &mut Ctx<'_, P>) {
        // Opportunistic: published when a pass happens anyway (no timer of its own, so an
        // idle driver domain stays asleep and a busy one arms no extra timer per pass).
        if !self.publisher.is_due(cx.now_ns()) {
            return;
        }
        let free = self.machine.free_bytes();
        self.min_free = self.min_free.min(free);
        let dp = self.dp.borrow();
        let st = dp.stats();
        let up = dp.uplink_counters();
        let values = [
            ("free-kib", free / 1024),
            ("free-kib-min", self.min_free / 1024),
            ("queued-kib", dp.switch.used_bytes() as u64 / 1024),
            ("queued-kib-max", dp.switch.peak_bytes() as u64 / 1024),
            ("fdb-entries", dp.switch.fdb_len() as u64),
            ("passes", st.passes),
            ("busy-passes", st.busy_passes),
            ("tx-packets", st.tx_packets),
            ("direct", st.direct),
            ("switched", st.switched),
            ("local-no-buffers", st.local_no_buffers),
            ("local-behind-queue", st.local_behind_queue),
            ("parked", st.parked),
            ("park-timeouts", st.park_timeouts),
            ("copy-ops", st.copy_ops),
            ("copy-batches", st.copy_batches),
            ("notifications", st.notifications),
            ("notify-calls", st.notify_calls),
            ("poll-us", st.poll_ns / 1000),
            ("copy-us", st.copy_ns / 1000),
            ("notify-us", st.notify_ns / 1000),
            ("event-holds", st.event_holds),
            ("uplink-interrupts", up.interrupts),
            ("uplink-rx-malformed", up.rx_malformed),
        ];
        drop(dp);
        self.publisher.publish(cx.xs, cx.now_ns(), &values);
    }
}
