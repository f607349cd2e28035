//! The driver domain's own interface: a smoltcp stack on a switch port, with the configured
//! address (`netback.ip=`) or one leased by DHCP through the uplink. It answers ARP and ICMP
//! echo — enough for guests, dom0 and the network outside to check the path to the driver
//! domain itself. Its address is published as `data/ip` (`A.B.C.D/N`).

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::net::Ipv4Addr;

use log::info;
use minios::executor::{Ctx, Task};
use minios::platform::Platform;
use minios::xenstore::{Store, XsError};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::dhcpv4;
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

/// How our interface gets its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalAddr {
    /// A configured address and prefix, with an optional default gateway.
    Static {
        /// Address and prefix length.
        ip: (Ipv4Addr, u8),
        /// Default gateway.
        gateway: Option<Ipv4Addr>,
    },
    /// A lease from a DHCP server on the switch's segment (through the uplink).
    Dhcp,
}

/// Our interface as an executor task.
pub struct LocalStack<P: Platform> {
    dp: Rc<RefCell<Datapath<P>>>,
    port: PortId,
    iface: Interface,
    sockets: SocketSet<'static>,
    dhcp: Option<SocketHandle>,
    /// The address to publish in `data/ip` (changed: not yet published).
    publish: Option<String>,
    next_poll_ns: Option<u64>,
}

impl<P: Platform> LocalStack<P> {
    /// Puts an interface with `mac` on the switch, addressed as `addr` says.
    pub fn new(dp: Rc<RefCell<Datapath<P>>>, mac: Mac, addr: LocalAddr, now_ns: u64) -> Self {
        let mut d = dp.borrow_mut();
        let name = match addr {
            LocalAddr::Static { ip, .. } => format!("local {}/{}", ip.0, ip.1),
            LocalAddr::Dhcp => String::from("local (dhcp)"),
        };
        let port = d.switch.add_port(PortConfig {
            name,
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
        let mut sockets = SocketSet::new(Vec::new());
        let mut dhcp = None;
        let mut publish = None;
        match addr {
            LocalAddr::Static { ip, gateway } => {
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
                publish = Some(format!("{}/{}", ip.0, ip.1));
            }
            LocalAddr::Dhcp => {
                dhcp = Some(sockets.add(dhcpv4::Socket::new()));
                info!(
                    "local interface: mac {} on port {port}, address by DHCP",
                    MacFmt(&mac)
                );
            }
        }
        drop(d);
        Self {
            dp,
            port,
            iface,
            sockets,
            dhcp,
            publish,
            next_poll_ns: None,
        }
    }

    /// The interface's port on the switch.
    pub fn port(&self) -> PortId {
        self.port
    }

    /// The interface's IPv4 address and prefix, if it has one.
    pub fn address(&self) -> Option<(Ipv4Addr, u8)> {
        self.iface
            .ip_addrs()
            .iter()
            .find_map(|a| match a.address() {
                IpAddress::Ipv4(v4) => Some((v4, a.prefix_len())),
                #[allow(unreachable_patterns)]
                _ => None,
            })
    }

    /// Applies what the DHCP client learnt since the last poll.
    fn dhcp_events(&mut self) {
        let Some(h) = self.dhcp else { return };
        match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            None => {}
            Some(dhcpv4::Event::Configured(lease)) => {
                let cidr = lease.address;
                self.iface.update_ip_addrs(|addrs| {
                    addrs.clear();
                    let _ = addrs.push(IpCidr::Ipv4(cidr));
                });
                self.iface.routes_mut().remove_default_ipv4_route();
                if let Some(gw) = lease.router {
                    let _ = self.iface.routes_mut().add_default_ipv4_route(gw);
                }
                info!(
                    "local interface: DHCP lease {cidr}{}, from server {}",
                    lease
                        .router
                        .map(|g| format!(", gateway {g}"))
                        .unwrap_or_default(),
                    lease.server.address
                );
                self.publish = Some(format!("{cidr}"));
            }
            Some(dhcpv4::Event::Deconfigured) => {
                if self.address().is_some() {
                    info!("local interface: DHCP lease lost");
                }
                self.iface.update_ip_addrs(|addrs| addrs.clear());
                self.iface.routes_mut().remove_default_ipv4_route();
                self.publish = Some(String::new());
            }
        }
    }
}

impl<P: Platform> Task<P> for LocalStack<P> {
    fn start(&mut self, _cx: &mut Ctx<'_, P>) -> Result<(), XsError> {
        // DHCP starts right away; a static address is announced in `poll`.
        if self.dhcp.is_some() {
            self.next_poll_ns = Some(0);
        }
        Ok(())
    }

    fn poll(&mut self, cx: &mut Ctx<'_, P>) {
        if let Some(addr) = self.publish.take() {
            let path = format!("/local/domain/{}/data/ip", cx.platform.domid());
            let r = if addr.is_empty() {
                cx.xs.rm(&path)
            } else {
                cx.xs.write(&path, addr.as_bytes())
            };
            if let Err(e) = r {
                if !e.is_enoent() {
                    log::warn!("cannot publish {path}: {e}");
                }
            }
        }
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
        drop(dp);
        self.dhcp_events();
        self.next_poll_ns = self
            .iface
            .poll_at(instant(now), &self.sockets)
            .map(|t| (t.total_micros().max(0) as u64).saturating_mul(1000));
        if sent > 0 || self.publish.is_some() {
            // What we sent is queued for other ports: the data path moves it next pass.
            cx.wake_now();
        }
        if let Some(t) = self.next_poll_ns {
            cx.wake_at(t);
        }
    }
}
