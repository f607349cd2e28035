//! The driver domain's configuration, from its command line (xl.cfg `cmdline=` or `extra=`).
//!
//! Options are `netback.<key>=<value>` words; everything else on the line is ignored. An
//! invalid value is reported (once, at boot) and the default used instead. See the README
//! for the table of options.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use crate::frame::{parse_mac, Mac};
use crate::stack::LocalAddr;
use crate::switch::Limits;
use minios::pci::PciAddress;

/// Whether and how the driver domain connects its switch to the rest of the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UplinkMode {
    /// Use our first vif frontend if the toolstack gave us one (`vif=[…]` in our xl.cfg).
    Auto,
    /// No uplink.
    Off,
    /// Use our vif frontend with this device id.
    Devid(u32),
    /// A network device passed through to us (`pci=[…]` in our xl.cfg): the first one, or
    /// the one at this (dom0) PCI address.
    Nic(Option<PciAddress>),
}

/// How the driver domain's own interface is addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpMode {
    /// By DHCP when the uplink is a NIC (the physical segment has a server), else none.
    Auto,
    /// No interface.
    Off,
    /// By DHCP through the uplink.
    Dhcp,
    /// This address and prefix.
    Static((Ipv4Addr, u8)),
}

/// Everything configurable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Our own interface's address (`netback.ip=10.0.0.2/24|dhcp|off`).
    pub ip: IpMode,
    /// Default gateway of our interface (`netback.gw=`).
    pub gateway: Option<Ipv4Addr>,
    /// MAC of our interface (`netback.mac=`); default derived from our domid.
    pub mac: Option<Mac>,
    /// Uplink (`netback.uplink=auto|off|<devid>|nic|nic:<BDF>`).
    pub uplink: UplinkMode,
    /// MTU of the uplink (`netback.uplink_mtu=`, 68..=4082: one page per frame).
    pub uplink_mtu: usize,
    /// RX and TX buffers (pages) of the uplink each (`netback.uplink_bufs=`, 8..=256).
    pub uplink_buffers: usize,
    /// Queue and table limits (`netback.queue_pkts=`, `netback.queue_kb=`,
    /// `netback.budget_kb=`, `netback.fdb=`).
    pub limits: Limits,
    /// Packets taken from one vif's TX ring per pass (`netback.tx_batch=`, 1..=256).
    pub tx_batch: usize,
    /// Interval of the per-vif counters in xenstore (`netback.stats_ms=`, 0 = never).
    pub stats_ms: u64,
    /// Interval of the driver domain's status in xenstore (`netback.status_ms=`, 0 = never).
    pub status_ms: u64,
    /// Enforce per-vif source MAC/IP (`netback.antispoof=0|1`).
    pub antispoof: bool,
    /// Offer `feature-split-event-channels` (`netback.split_evtchn=0|1`).
    pub split_evtchn: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ip: IpMode::Auto,
            gateway: None,
            mac: None,
            uplink: UplinkMode::Auto,
            uplink_mtu: 1500,
            uplink_buffers: 64,
            limits: Limits::default(),
            tx_batch: 64,
            stats_ms: 1000,
            status_ms: 10_000,
            antispoof: true,
            split_evtchn: true,
        }
    }
}

fn parse_cidr(v: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, p) = v.split_once('/').unwrap_or((v, "24"));
    let prefix: u8 = p.parse().ok()?;
    (prefix <= 32).then_some((a.parse().ok()?, prefix))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "yes" | "on" => Some(true),
        "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_range(v: &str, min: u64, max: u64) -> Option<u64> {
    v.parse::<u64>().ok().filter(|n| (min..=max).contains(n))
}

impl Config {
    /// Parses the `netback.*` options of a command line. Returns the configuration and one
    /// message per option that was ignored (invalid or unknown).
    pub fn from_cmdline(cmdline: &str) -> (Self, Vec<String>) {
        let mut c = Self::default();
        let mut problems = Vec::new();
        for word in cmdline.split_ascii_whitespace() {
            let Some(opt) = word.strip_prefix("netback.") else {
                continue;
            };
            let (key, value) = opt.split_once('=').unwrap_or((opt, "1"));
            let ok = match key {
                "ip" => match value {
                    "dhcp" => Some(IpMode::Dhcp),
                    "off" | "none" => Some(IpMode::Off),
                    v => parse_cidr(v).map(IpMode::Static),
                }
                .map(|v| c.ip = v),
                "gw" => value.parse().ok().map(|v| c.gateway = Some(v)),
                "mac" => parse_mac(value)
                    .filter(|m| m[0] & 1 == 0)
                    .map(|v| c.mac = Some(v)),
                "uplink" => match value {
                    "auto" => Some(UplinkMode::Auto),
                    "off" | "0" | "none" => Some(UplinkMode::Off),
                    "nic" => Some(UplinkMode::Nic(None)),
                    v if v.starts_with("nic:") => {
                        v[4..].parse().ok().map(|a| UplinkMode::Nic(Some(a)))
                    }
                    n => {
                        parse_range(n, 0, u64::from(u32::MAX)).map(|d| UplinkMode::Devid(d as u32))
                    }
                }
                .map(|v| c.uplink = v),
                "uplink_mtu" => parse_range(value, 68, 4082).map(|v| c.uplink_mtu = v as usize),
                "uplink_bufs" => parse_range(value, 8, 256).map(|v| c.uplink_buffers = v as usize),
                "queue_pkts" => {
                    parse_range(value, 16, 65536).map(|v| c.limits.queue_packets = v as usize)
                }
                "queue_kb" => parse_range(value, 64, 1 << 20)
                    .map(|v| c.limits.queue_bytes = v as usize * 1024),
                "budget_kb" => parse_range(value, 256, 1 << 22)
                    .map(|v| c.limits.total_bytes = v as usize * 1024),
                "fdb" => parse_range(value, 16, 1 << 16).map(|v| c.limits.fdb_entries = v as usize),
                "tx_batch" => parse_range(value, 1, 256).map(|v| c.tx_batch = v as usize),
                "stats_ms" => parse_range(value, 0, 3_600_000).map(|v| c.stats_ms = v),
                "status_ms" => parse_range(value, 0, 3_600_000).map(|v| c.status_ms = v),
                "antispoof" => parse_bool(value).map(|v| c.antispoof = v),
                "split_evtchn" => parse_bool(value).map(|v| c.split_evtchn = v),
                _ => {
                    problems.push(format!("unknown option netback.{key} ignored"));
                    continue;
                }
            };
            if ok.is_none() {
                problems.push(format!(
                    "netback.{key}={value:?} is invalid: using the default"
                ));
            }
        }
        (c, problems)
    }

    /// Shrinks the queue budget to at most a third of `free_bytes` (the memory left when
    /// the domain starts) unless that is below the minimum, so the configured limits can
    /// never exhaust a small domain. Returns whether anything changed.
    pub fn fit_memory(&mut self, free_bytes: usize) -> bool {
        let cap = (free_bytes / 3).max(256 * 1024);
        let l = &mut self.limits;
        let before = *l;
        l.total_bytes = l.total_bytes.min(cap);
        l.queue_bytes = l.queue_bytes.min(l.total_bytes);
        before != *l
    }

    /// How our interface gets its address, once the kind of uplink is known.
    pub fn local_addr(&self, nic_uplink: bool) -> Option<LocalAddr> {
        match self.ip {
            IpMode::Static(ip) => Some(LocalAddr::Static {
                ip,
                gateway: self.gateway,
            }),
            IpMode::Dhcp => Some(LocalAddr::Dhcp),
            IpMode::Auto if nic_uplink => Some(LocalAddr::Dhcp),
            IpMode::Auto | IpMode::Off => None,
        }
    }

    /// The MAC of our own interface: configured, or `02:dd:00:00:<domid>` (locally
    /// administered, unique per domain on the host).
    pub fn local_mac(&self, domid: u16) -> Mac {
        let d = domid.to_be_bytes();
        self.mac.unwrap_or([0x02, 0xdd, 0, 0, d[0], d[1]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_options() {
        let (c, p) = Config::from_cmdline("console=hvc0 foo=bar");
        assert_eq!(c, Config::default());
        assert!(p.is_empty());
        let (c, p) = Config::from_cmdline(
            "netback.ip=10.0.0.2/24 netback.gw=10.0.0.1 netback.uplink=off \
             netback.queue_kb=256 netback.mac=02:00:00:00:00:01 netback.antispoof=0 \
             netback.uplink_bufs=32 netback.stats_ms=0",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.ip, IpMode::Static((Ipv4Addr::new(10, 0, 0, 2), 24)));
        assert_eq!(c.gateway, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(c.uplink, UplinkMode::Off);
        assert_eq!(c.limits.queue_bytes, 256 * 1024);
        assert_eq!(c.local_mac(7), [2, 0, 0, 0, 0, 1]);
        assert!(!c.antispoof);
        assert_eq!((c.uplink_buffers, c.stats_ms), (32, 0));
        assert_eq!(Config::default().local_mac(0x0102), [2, 0xdd, 0, 0, 1, 2]);
    }

    #[test]
    fn budget_fits_memory() {
        let mut c = Config::default();
        assert!(!c.fit_memory(64 << 20));
        assert!(c.fit_memory(9 << 20));
        assert_eq!(c.limits.total_bytes, 3 << 20);
        assert!(c.limits.queue_bytes <= c.limits.total_bytes);
    }

    #[test]
    fn bad_values_are_reported_and_ignored() {
        let (c, p) = Config::from_cmdline(
            "netback.ip=10.0.0.300/24 netback.mac=01:00:00:00:00:01 netback.tx_batch=0 \
             netback.uplink=eth0 netback.bogus=1",
        );
        assert_eq!(c, Config::default());
        assert_eq!(p.len(), 5, "{p:?}");
        assert!(p[4].contains("unknown option netback.bogus"));
        let (c, _) = Config::from_cmdline("netback.ip=10.1.2.3 netback.uplink=2");
        assert_eq!(c.ip, IpMode::Static((Ipv4Addr::new(10, 1, 2, 3), 24)));
        assert_eq!(c.uplink, UplinkMode::Devid(2));
    }

    #[test]
    fn nic_uplink_and_dhcp() {
        let (c, p) = Config::from_cmdline("netback.uplink=nic");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.uplink, UplinkMode::Nic(None));
        assert_eq!(
            c.local_addr(true),
            Some(LocalAddr::Dhcp),
            "a NIC uplink defaults to DHCP"
        );
        assert_eq!(
            c.local_addr(false),
            None,
            "other uplinks default to no address"
        );
        let (c, p) = Config::from_cmdline("netback.uplink=nic:0000:00:10.0 netback.ip=off");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            c.uplink,
            UplinkMode::Nic(Some(PciAddress::new(0, 0, 0x10, 0)))
        );
        assert_eq!(c.local_addr(true), None);
        let (c, _) = Config::from_cmdline("netback.ip=dhcp");
        assert_eq!(c.local_addr(false), Some(LocalAddr::Dhcp));
        let (c, p) = Config::from_cmdline("netback.uplink=nic:00:40.0 netback.ip=dchp");
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!((c.uplink, c.ip), (UplinkMode::Auto, IpMode::Auto));
    }
}
