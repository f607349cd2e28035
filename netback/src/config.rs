//! The driver domain's configuration, from its command line (xl.cfg `cmdline=` or `extra=`).
//!
//! Options are `netback.<key>=<value>` words; everything else on the line is ignored. An
//! unknown option or an invalid value is an error naming it, and the driver domain refuses to
//! start ([`minios::options`]: the same policy for every backend). See the README for the
//! table of options.

use core::net::Ipv4Addr;

use minios::options::{options, parse_ipv4_prefix, OptionError};

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

impl Config {
    /// Parses the `netback.*` options of a command line; the first unknown or invalid one
    /// is the error.
    pub fn parse(cmdline: &str) -> Result<Self, OptionError> {
        let mut c = Self::default();
        for opt in options(cmdline, "netback") {
            let l = &mut c.limits;
            match opt.key {
                "ip" => c.ip = opt.parse("dhcp, off or A.B.C.D/N", parse_ip_mode)?,
                "gw" => c.gateway = Some(opt.ipv4()?),
                "mac" => {
                    let unicast = |v: &str| parse_mac(v).filter(|m| m[0] & 1 == 0);
                    c.mac = Some(opt.parse("a unicast MAC address xx:xx:xx:xx:xx:xx", unicast)?)
                }
                "uplink" => {
                    c.uplink =
                        opt.parse("auto, off, nic, nic:<BDF> or a vif devid", parse_uplink)?
                }
                "uplink_mtu" => c.uplink_mtu = opt.uint(68, 4082)? as usize,
                "uplink_bufs" => c.uplink_buffers = opt.uint(8, 256)? as usize,
                "queue_pkts" => l.queue_packets = opt.uint(16, 65536)? as usize,
                "queue_kb" => l.queue_bytes = opt.uint(64, 1 << 20)? as usize * 1024,
                "budget_kb" => l.total_bytes = opt.uint(256, 1 << 22)? as usize * 1024,
                "fdb" => l.fdb_entries = opt.uint(16, 1 << 16)? as usize,
                "tx_batch" => c.tx_batch = opt.uint(1, 256)? as usize,
                "stats_ms" => c.stats_ms = opt.uint(0, 3_600_000)?,
                "status_ms" => c.status_ms = opt.uint(0, 3_600_000)?,
                "antispoof" => c.antispoof = opt.bool()?,
                "split_evtchn" => c.split_evtchn = opt.bool()?,
                _ => return Err(opt.unknown()),
            }
        }
        Ok(c)
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

fn parse_ip_mode(v: &str) -> Option<IpMode> {
    match v {
        "dhcp" => Some(IpMode::Dhcp),
        "off" | "none" => Some(IpMode::Off),
        v => parse_ipv4_prefix(v).map(IpMode::Static),
    }
}

fn parse_uplink(v: &str) -> Option<UplinkMode> {
    match v {
        "auto" => Some(UplinkMode::Auto),
        "off" | "0" | "none" => Some(UplinkMode::Off),
        "nic" => Some(UplinkMode::Nic(None)),
        v => match v.strip_prefix("nic:") {
            Some(bdf) => bdf.parse().ok().map(|a| UplinkMode::Nic(Some(a))),
            None => minios::xenstore::parse_uint(v.as_bytes())
                .and_then(|d| u32::try_from(d).ok())
                .map(UplinkMode::Devid),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn defaults_and_options() {
        assert_eq!(Config::parse("console=hvc0 foo=bar"), Ok(Config::default()));
        let c = Config::parse(
            "netback.ip=10.0.0.2/24 netback.gw=10.0.0.1 netback.uplink=off \
             netback.queue_kb=256 netback.mac=02:00:00:00:00:01 netback.antispoof=0 \
             netback.uplink_bufs=32 netback.stats_ms=0",
        )
        .unwrap();
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

    /// The policy every backend shares: a bad or unknown option is not replaced by a default,
    /// it is the error the driver domain refuses to start with, naming the word as written.
    #[test]
    fn bad_options_are_errors_naming_the_option() {
        let cases = [
            (
                "netback.ip=10.0.0.300/24",
                "netback.ip=10.0.0.300/24: expected dhcp, off or A.B.C.D/N",
            ),
            (
                "netback.mac=01:00:00:00:00:01",
                "netback.mac=01:00:00:00:00:01: expected a unicast MAC address xx:xx:xx:xx:xx:xx",
            ),
            (
                "netback.tx_batch=0",
                "netback.tx_batch=0: expected a number in 1..=256",
            ),
            (
                "netback.uplink=eth0",
                "netback.uplink=eth0: expected auto, off, nic, nic:<BDF> or a vif devid",
            ),
            ("netback.bogus=1", "netback.bogus=1: unknown option"),
            (
                "netback.antispoof=maybe",
                "netback.antispoof=maybe: expected 0 or 1",
            ),
            (
                "netback.gw=10.0.0.1/24",
                "netback.gw=10.0.0.1/24: expected an IPv4 address A.B.C.D",
            ),
            // The first bad word is the one reported.
            (
                "netback.ip=10.0.0.2/24 netback.ip=dchp netback.uplink=eth0",
                "netback.ip=dchp: expected dhcp, off or A.B.C.D/N",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(
                Config::parse(line).map_err(|e| e.to_string()),
                Err(want.into()),
                "{line}"
            );
        }
        let c = Config::parse("netback.ip=10.1.2.3 netback.uplink=2").unwrap();
        assert_eq!(c.ip, IpMode::Static((Ipv4Addr::new(10, 1, 2, 3), 24)));
        assert_eq!(c.uplink, UplinkMode::Devid(2));
    }

    #[test]
    fn nic_uplink_and_dhcp() {
        let c = Config::parse("netback.uplink=nic").unwrap();
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
        let c = Config::parse("netback.uplink=nic:0000:00:10.0 netback.ip=off").unwrap();
        assert_eq!(
            c.uplink,
            UplinkMode::Nic(Some(PciAddress::new(0, 0, 0x10, 0)))
        );
        assert_eq!(c.local_addr(true), None);
        let c = Config::parse("netback.ip=dhcp").unwrap();
        assert_eq!(c.local_addr(false), Some(LocalAddr::Dhcp));
        assert_eq!(
            Config::parse("netback.uplink=nic:00:40.0").map_err(|e| e.option),
            Err("netback.uplink=nic:00:40.0".into())
        );
    }
}
