//! The vif backend: the xenbus side of each guest's network device.
//!
//! - **probe** reads the toolstack's configuration: `mac` (the guest's MAC, the only source
//!   MAC its vif may use) and `ip` (optional, space-separated addresses or networks it may
//!   send from).
//! - **features** publishes what Linux netback publishes (minus multicast control and the
//!   control ring) plus `hotplug-status=connected`: no hotplug script runs for a driver
//!   domain's backend, so we report the device ready ourselves.
//! - **connect** reads the frontend's keys strictly (every value bounded, `request-rx-copy`
//!   and `feature-rx-notify` required, one queue), maps both rings with one batch, binds the
//!   event channel(s) and puts the vif on the switch.
//! - **poll** reports a ring failure the data path found, and publishes the vif's counters
//!   under `/local/domain/<dd>/data/vif/<frontend-id>/<devid>/` (see the README).
//! - **disconnect** takes the vif off the switch, logs its counters and publishes their final
//!   values; **removed** (the vif goes) removes them from xenstore.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use log::{info, warn};
use minios::data_area::CounterPublisher;
use minios::platform::{Access, Platform};
use minios::xenbus::{BackendDevice, BackendDriver, DeviceCtx, DeviceError};
use xen_abi::netif::{NET_RX_ENTRY_SIZE, NET_TX_ENTRY_SIZE};
use xen_abi::{XenErrno, XEN_PAGE_SIZE};

use crate::datapath::{Datapath, VifConn};
use crate::frame::{parse_mac, MacFmt};
use crate::netring::NetBackRing;
use crate::packet::{Caps, MAX_FRAME};
use crate::switch::{IpRule, Policy, PortConfig, PortCounters, PortId};

/// The keys published at InitWait (as Linux netback, minus multicast control and the control
/// ring, which we do not implement, plus `hotplug-status`); `feature-split-event-channels`
/// is published too, as configured.
pub const FEATURES: &[(&str, &str)] = &[
    ("feature-sg", "1"),
    ("feature-gso-tcpv4", "1"),
    ("feature-gso-tcpv6", "1"),
    ("feature-ipv6-csum-offload", "1"),
    ("feature-rx-copy", "1"),
    ("feature-rx-flip", "0"),
    ("multi-queue-max-queues", "1"),
    ("hotplug-status", "connected"),
];

/// How the driver sets up its vifs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VifOptions {
    /// Enforce the toolstack's `mac` and `ip`.
    pub antispoof: bool,
    /// Publish counters every this many milliseconds (0: never).
    pub stats_ms: u64,
    /// Offer `feature-split-event-channels`.
    pub split_event_channels: bool,
}

/// Creates a [`VifDevice`] per vif the toolstack adds.
pub struct VifDriver<P: Platform> {
    dp: Rc<RefCell<Datapath<P>>>,
    opts: VifOptions,
}

impl<P: Platform> VifDriver<P> {
    /// A driver putting its vifs on `dp`'s switch.
    pub fn new(dp: Rc<RefCell<Datapath<P>>>, opts: VifOptions) -> Self {
        Self { dp, opts }
    }
}

/// What the frontend asked for at connect, read strictly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontendKeys {
    /// Grant of the TX ring page.
    pub tx_ring_ref: u32,
    /// Grant of the RX ring page.
    pub rx_ring_ref: u32,
    /// Event channel for TX (or both).
    pub tx_evtchn: u32,
    /// Separate RX event channel (`feature-split-event-channels`).
    pub rx_evtchn: Option<u32>,
    /// `feature-sg`.
    pub sg: bool,
    /// `feature-gso-tcpv4`.
    pub gso_tcpv4: bool,
    /// `feature-gso-tcpv6`.
    pub gso_tcpv6: bool,
    /// Not `feature-no-csum-offload`.
    pub csum: bool,
    /// `feature-ipv6-csum-offload`.
    pub ipv6_csum: bool,
}

fn flag<P: Platform>(ctx: &mut DeviceCtx<'_, P>, key: &str) -> Result<bool, DeviceError> {
    Ok(ctx.read_frontend_uint_opt(key, 1)? == Some(1))
}

impl FrontendKeys {
    /// Reads the frontend's keys: every value a strict decimal within its range.
    pub fn read<P: Platform>(ctx: &mut DeviceCtx<'_, P>) -> Result<Self, DeviceError> {
        let max = u64::from(u32::MAX);
        if let Some(n) = ctx.read_frontend_uint_opt("multi-queue-num-queues", 1)? {
            if n != 1 {
                return Err(DeviceError::protocol(
                    "multi-queue-num-queues 0: at least one queue is needed",
                ));
            }
        }
        if !flag(ctx, "request-rx-copy")? {
            return Err(DeviceError::new(
                XenErrno::EOPNOTSUPP,
                "frontend does not set request-rx-copy=1 (page flipping is not supported)",
            ));
        }
        if !flag(ctx, "feature-rx-notify")? {
            return Err(DeviceError::new(
                XenErrno::EOPNOTSUPP,
                "frontend does not set feature-rx-notify=1",
            ));
        }
        let tx_ring_ref = ctx.read_frontend_uint("tx-ring-ref", max)? as u32;
        let rx_ring_ref = ctx.read_frontend_uint("rx-ring-ref", max)? as u32;
        let (tx_evtchn, rx_evtchn) = match ctx.read_frontend_uint_opt("event-channel-tx", max)? {
            Some(tx) => (
                tx as u32,
                Some(ctx.read_frontend_uint("event-channel-rx", max)? as u32),
            ),
            None => (ctx.read_frontend_uint("event-channel", max)? as u32, None),
        };
        Ok(Self {
            tx_ring_ref,
            rx_ring_ref,
            tx_evtchn,
            rx_evtchn,
            sg: flag(ctx, "feature-sg")?,
            gso_tcpv4: flag(ctx, "feature-gso-tcpv4")?,
            gso_tcpv6: flag(ctx, "feature-gso-tcpv6")?,
            csum: !flag(ctx, "feature-no-csum-offload")?,
            ipv6_csum: flag(ctx, "feature-ipv6-csum-offload")?,
        })
    }

    /// What the vif's port on the switch accepts.
    pub fn caps(&self) -> Caps {
        Caps {
            max_frame: if self.sg { MAX_FRAME } else { XEN_PAGE_SIZE },
            gso_tcpv4: self.sg && self.gso_tcpv4,
            gso_tcpv6: self.sg && self.gso_tcpv6,
            partial_ipv4: self.csum,
            partial_ipv6: self.csum && self.ipv6_csum,
        }
    }
}

/// One guest's vif.
pub struct VifDevice<P: Platform> {
    dp: Rc<RefCell<Datapath<P>>>,
    name: String,
    policy: Policy,
    port: Option<PortId>,
    totals: PortCounters,
    counters: CounterPublisher,
    split: bool,
}

impl<P: Platform> BackendDriver<P> for VifDriver<P> {
    type Device = VifDevice<P>;

    fn kind(&self) -> &str {
        "vif"
    }

    fn probe(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<VifDevice<P>, DeviceError> {
        let mac = match ctx.read_backend_opt("mac")? {
            None => None,
            Some(raw) => {
                let text = String::from_utf8_lossy(&raw);
                match parse_mac(text.trim()) {
                    Some(m) if m[0] & 1 == 0 => Some(m),
                    _ => {
                        return Err(DeviceError::new(
                            XenErrno::EINVAL,
                            format!("backend mac {text:?} is not a unicast MAC address"),
                        ))
                    }
                }
            }
        };
        let ips = match ctx.read_backend_opt("ip")? {
            None => None,
            Some(raw) => {
                let text = String::from_utf8_lossy(&raw);
                let rules: Option<Vec<IpRule>> =
                    text.split_whitespace().map(IpRule::parse).collect();
                match rules {
                    Some(r) if !r.is_empty() => Some(r),
                    _ => {
                        return Err(DeviceError::new(
                            XenErrno::EINVAL,
                            format!("backend ip {text:?} is not a list of IP addresses"),
                        ))
                    }
                }
            }
        };
        let id = ctx.id;
        let name = format!("vif{}.{}", id.frontend_id, id.devid);
        if mac.is_none() && self.opts.antispoof {
            warn!("{name}: the toolstack gave no mac: any source MAC is allowed");
        }
        let policy = if self.opts.antispoof {
            Policy { mac, ips }
        } else {
            Policy::default()
        };
        let counters = CounterPublisher::for_device(ctx, self.opts.stats_ms);
        Ok(VifDevice {
            dp: self.dp.clone(),
            name,
            policy,
            port: None,
            totals: PortCounters::default(),
            counters,
            split: self.opts.split_event_channels,
        })
    }
}

impl<P: Platform> VifDevice<P> {
    /// The vif's port on the switch while connected.
    pub fn port(&self) -> Option<PortId> {
        self.port
    }

    /// Counters over the vif's lifetime (all connections).
    pub fn counters(&self) -> PortCounters {
        let mut c = self.totals;
        if let Some(port) = self.port {
            if let Some(now) = self.dp.borrow().switch.counters(port) {
                c.add(&now);
            }
        }
        c
    }

    fn publish_stats(&mut self, ctx: &mut DeviceCtx<'_, P>) {
        let fields = self.counters().fields();
        self.counters.publish_device(ctx, &fields);
    }
}

impl<P: Platform> BackendDevice<P> for VifDevice<P> {
    fn features(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<(), DeviceError> {
        for (k, v) in FEATURES {
            ctx.publish(k, v);
        }
        ctx.publish(
            "feature-split-event-channels",
            if self.split { "1" } else { "0" },
        );
        Ok(())
    }

    fn connect(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<(), DeviceError> {
        let keys = FrontendKeys::read(ctx)?;
        let fe = ctx.id.frontend_id;
        let mut maps = ctx
            .platform
            .map_batch(fe, &[keys.tx_ring_ref, keys.rx_ring_ref], Access::ReadWrite)
            .into_iter();
        let tx_map = maps
            .next()
            .unwrap_or(Err(minios::platform::GrantError::NotAttempted));
        let rx_map = maps
            .next()
            .unwrap_or(Err(minios::platform::GrantError::NotAttempted));
        let tx_map = tx_map.map_err(|e| {
            DeviceError::from(e).context(&format!("mapping tx-ring-ref {}", keys.tx_ring_ref))
        })?;
        let rx_map = rx_map.map_err(|e| {
            DeviceError::from(e).context(&format!("mapping rx-ring-ref {}", keys.rx_ring_ref))
        })?;
        let tx = NetBackRing::new(tx_map, NET_TX_ENTRY_SIZE)?;
        let rx = NetBackRing::new(rx_map, NET_RX_ENTRY_SIZE)?;
        let bind = |port: u32, what: &str| {
            ctx.platform.bind_interdomain(fe, port).map_err(|e| {
                DeviceError::new(
                    e,
                    format!("binding {what} {port}: {}", e.name().unwrap_or("E?")),
                )
            })
        };
        let (tx_evt, rx_evt) = match keys.rx_evtchn {
            Some(rx) => (
                bind(keys.tx_evtchn, "event-channel-tx")?,
                Some(bind(rx, "event-channel-rx")?),
            ),
            None => (bind(keys.tx_evtchn, "event-channel")?, None),
        };
        let conn = VifConn {
            frontend: fe,
            tx,
            rx,
            tx_evt,
            rx_evt,
            sg: keys.sg,
        };
        let cfg = PortConfig {
            name: self.name.clone(),
            caps: keys.caps(),
            policy: self.policy.clone(),
        };
        self.port = Some(self.dp.borrow_mut().attach_vif(conn, cfg));
        info!(
            "{}: connected (sg {}, gso v4 {} v6 {}, csum {}{}{})",
            self.name,
            u8::from(keys.sg),
            u8::from(keys.gso_tcpv4),
            u8::from(keys.gso_tcpv6),
            u8::from(keys.csum),
            if keys.rx_evtchn.is_some() {
                ", split event channels"
            } else {
                ""
            },
            self.policy
                .mac
                .map(|m| format!(", mac {}", MacFmt(&m)))
                .unwrap_or_default()
        );
        Ok(())
    }

    fn disconnect(&mut self, ctx: &mut DeviceCtx<'_, P>) {
        let Some(port) = self.port.take() else {
            return;
        };
        if let Some(c) = self.dp.borrow_mut().detach_vif(port) {
            self.totals.add(&c);
        }
        info!("{}: off the switch: {}", self.name, self.totals);
        self.counters.due_now();
        self.publish_stats(ctx);
    }

    fn poll(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<(), DeviceError> {
        if let Some(port) = self.port {
            if let Some(why) = self.dp.borrow_mut().take_fatal(port) {
                return Err(DeviceError::protocol(why));
            }
        }
        self.publish_stats(ctx);
        Ok(())
    }

    fn removed(&mut self, ctx: &mut DeviceCtx<'_, P>) {
        self.counters.remove(ctx.xs);
    }
}

impl<P: Platform> Drop for VifDevice<P> {
    fn drop(&mut self) {
        let mut dp = self.dp.borrow_mut();
        if let Some(port) = self.port.take() {
            dp.detach_vif(port);
        }
    }
}
