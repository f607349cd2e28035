//! The driver domain's own interface: a smoltcp stack on a switch port, with the configured
//! address (`netback.ip=`). It answers ARP and ICMP echo — enough for guests and dom0 to
//! check the switch path to the driver domain itself.

use alloc::format;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::net::Ipv4Addr;

use log::info;
use minios::executor::{Ctx, Task};
use minios::platform::Platform;
use minios::xenstore::{Event, XsError};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

use crate::datapath::Datapath;
use crate::frame::{Mac, MacFmt};
use crate::packet::{Caps, Csum, Packet};
use crate::switch::{Policy, PortConfig, PortId, Switch};

/// MTU of our interface.
pub const MTU: usize = 1500;

/// A switch port seen as a smoltcp device during one poll.
struct SwitchPort<'a> {
    sw: &'a mut Switch,
    port: PortId,
    now_ns: u64,
    sent: usize,
}

struct Rx(Vec<u8>);

struct Tx<'a, 'b> {
    dev: &'b mut SwitchPort<'a>,
}

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_, '_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut data = vec![0u8; len];
        let r = f(&mut data);
        let mut pkt = Packet::new(data);
        // smoltcp computes every checksum.
        pkt.csum = Csum::Validated;
        self.dev.sent += 1;
        self.dev.sw.ingress(self.dev.port, pkt, self.dev.now_ns);
        r
    }
}

impl<'a> phy::Device for SwitchPort<'a> {
    type RxToken<'b>
        = Rx
    where
        Self: 'b;
    type TxToken<'b>
        = Tx<'a, 'b>
    where
        Self: 'b;

    fn receive(&mut self, _t: Instant) -> Option<(Rx, Tx<'a, '_>)> {
        let pkt = self.sw.pop(self.port)?;
        Some((Rx(pkt.data), Tx { dev: self }))
    }

    fn transmit(&mut self, _t: Instant) -> Option<Tx<'a, '_>> {
        Some(Tx { dev: self })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU + crate::frame::ETH_HLEN;
        caps.max_burst_size = Some(16);
        caps
    }
}

fn instant(ns: u64) -> Instant {
    Instant::from_micros((ns / 1000) as i64)
}

/// Our interface as an executor task.
pub struct LocalStack<P: Platform> {
    dp: Rc<RefCell<Datapath<P>>>,
    port: PortId,
    iface: Interface,
    sockets: SocketSet<'static>,
    next_poll_ns: Option<u64>,
}

impl<P: Platform> LocalStack<P> {
    /// Puts an interface with `mac` and `ip/prefix` (and a default route via `gateway`) on
    /// the switch.
    pub fn new(
        dp: Rc<RefCell<Datapath<P>>>,
        mac: Mac,
        ip: (Ipv4Addr, u8),
        gateway: Option<Ipv4Addr>,
        now_ns: u64,
    ) -> Self {
        let mut d = dp.borrow_mut();
        let port = d.switch.add_port(PortConfig {
            name: format!("local {}/{}", ip.0, ip.1),
            caps: Caps::plain(MTU),
            policy: Policy {
                mac: Some(mac),
                ips: None,
            },
        });
        let mut dev = SwitchPort {
            sw: &mut d.switch,
            port,
            now_ns,
            sent: 0,
        };
        let mut config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed =
            now_ns ^ u64::from_be_bytes([0, 0, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]]);
        let mut iface = Interface::new(config, &mut dev, instant(now_ns));
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(ip.0), ip.1));
        });
        if let Some(gw) = gateway {
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        info!(
            "local interface: {}/{} mac {} on port {port}{}",
            ip.0,
            ip.1,
            MacFmt(&mac),
            gateway
                .map(|g| format!(", gateway {g}"))
                .unwrap_or_default()
        );
        drop(d);
        Self {
            dp,
            port,
            iface,
            sockets: SocketSet::new(Vec::new()),
            next_poll_ns: None,
        }
    }

    /// The interface's port on the switch.
    pub fn port(&self) -> PortId {
        self.port
    }
}

impl<P: Platform> Task<P> for LocalStack<P> {
    fn start(&mut self, _cx: &mut Ctx<'_, P>) -> Result<(), XsError> {
        Ok(())
    }

    fn on_event(&mut self, _cx: &mut Ctx<'_, P>, _sub: &str, _event: &Event) {}

    fn poll(&mut self, cx: &mut Ctx<'_, P>) {
        let now = cx.now_ns();
        let mut dp = self.dp.borrow_mut();
        let due = self.next_poll_ns.is_some_and(|t| t <= now);
        if dp.switch.queued(self.port) == 0 && !due {
            if let Some(t) = self.next_poll_ns {
                cx.wake_at(t);
            }
            return;
        }
        let mut dev = SwitchPort {
            sw: &mut dp.switch,
            port: self.port,
            now_ns: now,
            sent: 0,
        };
        self.iface.poll(instant(now), &mut dev, &mut self.sockets);
        let sent = dev.sent;
        self.next_poll_ns = self
            .iface
            .poll_at(instant(now), &self.sockets)
            .map(|t| (t.total_micros().max(0) as u64).saturating_mul(1000));
        if sent > 0 {
            // What we sent is queued for other ports: the data path moves it next pass.
            cx.wake_now();
        }
        if let Some(t) = self.next_poll_ns {
            cx.wake_at(t);
        }
    }
}
