//! Anti-spoofing: what a port may send ([`Policy`]): only from its MAC and, when the toolstack
//! gave `ip=`, from those addresses ([`IpRule`]: IPv4 source, ARP sender, IPv6 — link-local
//! and the unspecified addresses of DHCP, ARP probes and ND stay allowed); nothing but IP
//! and ARP.

use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;

use crate::frame::{self, is_group, L3Source, Mac};

/// A source-address rule: an address with a prefix length (`/32` or `/128` for one host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRule {
    /// The address or network.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl IpRule {
    /// Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `addr/n`.
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` lies in this rule's range.
    pub fn matches(&self, ip: IpAddr) -> bool {
        fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
            let bits = usize::from(bits);
            let (whole, rest) = (bits / 8, bits % 8);
            if a[..whole] != b[..whole] {
                return false;
            }
            rest == 0 || (a[whole] ^ b[whole]) >> (8 - rest) == 0
        }
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => prefix_eq(&a.octets(), &b.octets(), self.prefix),
            (IpAddr::V6(a), IpAddr::V6(b)) => prefix_eq(&a.octets(), &b.octets(), self.prefix),
            _ => false,
        }
    }
}

impl fmt::Display for IpRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == host {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// What a port may send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// The only source MAC allowed (`None`: any unicast MAC).
    pub mac: Option<Mac>,
    /// Allowed source addresses (`None`: any).
    pub ips: Option<Vec<IpRule>>,
}

impl Policy {
    /// Whether a frame passes, or why not.
    pub fn check(&self, data: &[u8]) -> Result<(), &'static str> {
        let src = frame::src_mac(data).ok_or("runt frame")?;
        if is_group(&src) {
            return Err("group source MAC");
        }
        if self.mac.is_some_and(|m| m != src) {
            return Err("source MAC");
        }
        let Some(ips) = &self.ips else {
            return Ok(());
        };
        let allowed = |ip: IpAddr| ips.iter().any(|r| r.matches(ip));
        match frame::l3_source(data).map_err(|_| "unparsable L3 header")? {
            L3Source::Ipv4(a) => {
                let ip = IpAddr::from(a);
                // 0.0.0.0: DHCP before the guest has its address.
                (allowed(ip) || a == [0; 4])
                    .then_some(())
                    .ok_or("source IPv4 address")
            }
            L3Source::Arp { mac, ip } => {
                if self.mac.is_some_and(|m| m != mac) {
                    return Err("ARP sender MAC");
                }
                (allowed(IpAddr::from(ip)) || ip == [0; 4])
                    .then_some(())
                    .ok_or("ARP sender address")
            }
            L3Source::Ipv6(a) => {
                let link_local = a[0] == 0xfe && a[1] & 0xc0 == 0x80;
                (allowed(IpAddr::from(a)) || link_local || a == [0; 16])
                    .then_some(())
                    .ok_or("source IPv6 address")
            }
            L3Source::Other(_) => Err("protocol other than IP/ARP"),
        }
    }
}
