//! Wiring: the tasks of a netback driver domain, in the order the executor polls them.

use alloc::format;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;

use log::{info, warn};
use minios::executor::{Ctx, Executor, ShutdownWatch, Task};
use minios::platform::Platform;
use minios::xenbus::Backend;
use minios::xenstore::{Event, Store, XsError};

use crate::config::{Config, UplinkMode};
use crate::datapath::Datapath;
use crate::stack::LocalStack;
use crate::switch::Switch;
use crate::switch::{Policy, PortConfig};
use crate::uplink::{NicUplink, UplinkTask};
use crate::vif::{VifDriver, VifOptions};
use alloc::boxed::Box;
use minios::netdev::NetDevice;

/// Handles to what [`spawn`] started (for tests and status).
pub struct NetDd<P: Platform + 'static> {
    /// The data path (switch, vifs, uplink).
    pub dp: Rc<RefCell<Datapath<P>>>,
    /// The vif backend.
    pub backend: Rc<RefCell<Backend<P, VifDriver<P>>>>,
    /// The uplink, if configured.
    pub uplink: Rc<RefCell<UplinkTask<P>>>,
}

/// Spawns the backend, the data path, the uplink, the local interface and the shutdown
/// watch on `exec` (the caller then signals readiness and runs the loop). With
/// `netback.uplink=nic`, `nic` is the device the caller opened (`None`: it was not usable,
/// and the guests are served without an uplink).
/// `free_bytes` reports the memory the domain has left (published with the status).
pub fn spawn<P: Platform + 'static>(
    exec: &mut Executor<P>,
    config: &Config,
    free_bytes: fn() -> u64,
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
            publish(exec, domid, "uplink", &describe);
            true
        }
        (UplinkMode::Nic(_), None) => {
            warn!("uplink: no usable NIC: serving the guests without an uplink");
            publish(exec, domid, "uplink", "none (the NIC is not usable)");
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
            interval_ns: config.status_ms.saturating_mul(1_000_000),
            free_bytes,
            due: 0,
            min_free: u64::MAX,
            last: Vec::new(),
        })?;
    }
    exec.spawn(ShutdownWatch::new())?;
    Ok(NetDd {
        dp,
        backend,
        uplink,
    })
}

/// Writes `data/<key>` = `value` under our home (best effort: logged on failure).
fn publish<P: Platform>(exec: &mut Executor<P>, domid: u16, key: &str, value: &str) {
    let path = format!("/local/domain/{domid}/data/{key}");
    if let Err(e) = exec.xenstore().write(&path, value.as_bytes()) {
        warn!("cannot publish {path}: {e}");
    }
}

/// Publishes the driver domain's status under `data/status/` at most every `status_ms`,
/// when the driver domain runs anyway: free memory (and its lowest sample), bytes queued in the switch (and the peak),
/// MAC table size, grant copy work.
struct StatusTask<P: Platform> {
    dp: Rc<RefCell<Datapath<P>>>,
    interval_ns: u64,
    free_bytes: fn() -> u64,
    due: u64,
    min_free: u64,
    last: Vec<u64>,
}

impl<P: Platform> Task<P> for StatusTask<P> {
    fn start(&mut self, _cx: &mut Ctx<'_, P>) -> Result<(), XsError> {
        Ok(())
    }

    fn on_event(&mut self, _cx: &mut Ctx<'_, P>, _sub: &str, _event: &Event) {}

    fn poll(&mut self, cx: &mut Ctx<'_, P>) {
        // Opportunistic: published when a pass happens anyway (no timer of its own, so an
        // idle driver domain stays asleep and a busy one arms no extra timer per pass).
        let now = cx.now_ns();
        if now < self.due {
            return;
        }
        self.due = now.saturating_add(self.interval_ns);
        let free = (self.free_bytes)();
        self.min_free = self.min_free.min(free);
        let dp = self.dp.borrow();
        let st = dp.stats();
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
            ("copy-ops", st.copy_ops),
            ("copy-batches", st.copy_batches),
            ("notifications", st.notifications),
            ("poll-us", st.poll_ns / 1000),
            ("copy-us", st.copy_ns / 1000),
            ("notify-us", st.notify_ns / 1000),
        ];
        drop(dp);
        // Only the values that changed since the last publication, each write on its own
        // (a round trip with xenstored each: keep them few).
        let base = format!("/local/domain/{}/data/status", cx.platform.domid());
        for (i, (k, v)) in values.iter().enumerate() {
            if self.last.get(i) == Some(v) {
                continue;
            }
            if let Err(e) = cx
                .xs
                .write(&format!("{base}/{k}"), format!("{v}").as_bytes())
            {
                if self.last.is_empty() {
                    warn!("cannot publish status: {e}");
                }
                return;
            }
        }
        self.last = values.iter().map(|(_, v)| *v).collect();
    }
}
