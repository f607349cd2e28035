//! The L2 learning switch between every port of the driver domain: the guests' vifs, the
//! uplink and our own interface.
//!
//! - **Anti-spoofing** ([`Policy`]): a vif may only send from its MAC (the toolstack's `mac`)
//!   and, when the toolstack gave `ip=`, from those addresses (IPv4, ARP sender, IPv6; IPv6
//!   link-local and the unspecified addresses used by DHCP/ARP probes/ND stay allowed).
//! - **Learning**: source MACs are learnt per port in a bounded table ([`Limits::fdb_entries`])
//!   whose entries age out. A vif's own MAC is a static entry no other port can take over.
//! - **Forwarding**: known unicast to its port, everything else flooded; each copy is adapted
//!   to the receiving port ([`Packet::adapt`]) and queued.
//! - **Bounded queues**: a port's queue holds at most [`Limits::queue_packets`] packets and
//!   [`Limits::queue_bytes`] bytes, and all queues together at most [`Limits::total_bytes`]:
//!   a receiver that stops reading loses packets (counted), it never makes us grow.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;

use crate::frame::{self, is_group, L3Source, Mac, MacFmt};
use crate::packet::{Caps, Packet};

/// Identifies a port for as long as it exists (never reused).
pub type PortId = u32;

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

/// How a port is configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// Name for log lines (`vif5.0`, `uplink`, `local`).
    pub name: String,
    /// What it accepts.
    pub caps: Caps,
    /// What it may send.
    pub policy: Policy,
}

/// Per-port counters. "in" is what the port sent into the switch (a guest's TX), "out" what
/// the switch delivered to it (a guest's RX).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames received from the port.
    pub in_packets: u64,
    /// Bytes received from the port.
    pub in_bytes: u64,
    /// Malformed requests from the port (bad slots, unreadable grants, bad offloads).
    pub in_errors: u64,
    /// Frames from the port dropped by anti-spoofing.
    pub in_spoofed: u64,
    /// Frames delivered to the port.
    pub out_packets: u64,
    /// Bytes delivered to the port.
    pub out_bytes: u64,
    /// Frames for the port dropped: queue full, too big for it, or unconvertible.
    pub out_dropped: u64,
    /// Frames for the port lost writing them out (its buffers were unwritable).
    pub out_errors: u64,
}

impl PortCounters {
    /// Adds another set (lifetime totals over reconnects).
    pub fn add(&mut self, o: &PortCounters) {
        self.in_packets += o.in_packets;
        self.in_bytes += o.in_bytes;
        self.in_errors += o.in_errors;
        self.in_spoofed += o.in_spoofed;
        self.out_packets += o.out_packets;
        self.out_bytes += o.out_bytes;
        self.out_dropped += o.out_dropped;
        self.out_errors += o.out_errors;
    }

    /// `(name, value)` pairs as published in xenstore, guest's point of view
    /// (`tx-*` = sent by the guest).
    pub fn fields(&self) -> [(&'static str, u64); 8] {
        [
            ("tx-packets", self.in_packets),
            ("tx-bytes", self.in_bytes),
            ("tx-errors", self.in_errors),
            ("tx-spoofed", self.in_spoofed),
            ("rx-packets", self.out_packets),
            ("rx-bytes", self.out_bytes),
            ("rx-dropped", self.out_dropped),
            ("rx-errors", self.out_errors),
        ]
    }
}

impl fmt::Display for PortCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.fields().iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// Why [`Switch::decide`] drops a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The sending port does not exist (any more).
    NoPort,
    /// The port's policy refuses the source addresses.
    Spoofed,
    /// The source MAC is another port's.
    StolenMac,
    /// The destination is the sending port itself.
    Hairpin,
}

/// Where a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nowhere.
    Drop(DropReason),
    /// To one known port.
    Unicast(PortId),
    /// To every port but the sender (group or unknown destination).
    Flood,
}

/// Switch-wide limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Packets one port's queue holds.
    pub queue_packets: usize,
    /// Bytes one port's queue holds.
    pub queue_bytes: usize,
    /// Bytes all queues hold together.
    pub total_bytes: usize,
    /// Learnt MAC entries.
    pub fdb_entries: usize,
    /// Age after which a learnt entry is forgotten.
    pub fdb_age_ns: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            queue_packets: 512,
            queue_bytes: 1 << 20,
            total_bytes: 4 << 20,
            fdb_entries: 1024,
            fdb_age_ns: 300_000_000_000,
        }
    }
}

/// Switch-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwitchStats {
    /// Frames flooded (group or unknown destination).
    pub flooded: u64,
    /// Frames from a port that claimed another port's static MAC.
    pub stolen_mac: u64,
    /// Source MACs not learnt because the table was full.
    pub fdb_full: u64,
    /// Frames that could not be converted for a receiver (see the port's `out_dropped`).
    pub adapt_failed: u64,
}

#[derive(Debug)]
struct Port {
    cfg: PortConfig,
    queue: VecDeque<Packet>,
    queued_bytes: usize,
    counters: PortCounters,
}

#[derive(Clone, Copy, Debug)]
struct FdbEntry {
    port: PortId,
    seen_ns: u64,
    fixed: bool,
}

/// The switch.
#[derive(Debug, Default)]
pub struct Switch {
    ports: BTreeMap<PortId, Port>,
    fdb: BTreeMap<Mac, FdbEntry>,
    limits: Limits,
    used_bytes: usize,
    peak_bytes: usize,
    next_id: PortId,
    stats: SwitchStats,
}

impl Switch {
    /// An empty switch.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            next_id: 1,
            ..Self::default()
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Switch-wide counters.
    pub fn stats(&self) -> SwitchStats {
        self.stats
    }

    /// Bytes queued over all ports.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    /// The most bytes ever queued over all ports at once.
    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes
    }

    /// Learnt and static MAC entries.
    pub fn fdb_len(&self) -> usize {
        self.fdb.len()
    }

    /// Adds a port; a policy MAC becomes a static table entry.
    pub fn add_port(&mut self, cfg: PortConfig) -> PortId {
        let id = self.next_id;
        self.next_id += 1;
        if let Some(mac) = cfg.policy.mac {
            self.fdb.insert(
                mac,
                FdbEntry {
                    port: id,
                    seen_ns: 0,
                    fixed: true,
                },
            );
        }
        self.ports.insert(
            id,
            Port {
                cfg,
                queue: VecDeque::new(),
                queued_bytes: 0,
                counters: PortCounters::default(),
            },
        );
        id
    }

    /// Removes a port with its queue and table entries; returns its counters.
    pub fn remove_port(&mut self, id: PortId) -> Option<PortCounters> {
        let port = self.ports.remove(&id)?;
        self.used_bytes -= port.queued_bytes;
        self.fdb.retain(|_, e| e.port != id);
        Some(port.counters)
    }

    /// Ids of all ports.
    pub fn port_ids(&self) -> impl Iterator<Item = PortId> + '_ {
        self.ports.keys().copied()
    }

    /// A port's name.
    pub fn name(&self, id: PortId) -> Option<&str> {
        self.ports.get(&id).map(|p| p.cfg.name.as_str())
    }

    /// Replaces a port's capabilities (a frontend reconnected with other features).
    pub fn set_caps(&mut self, id: PortId, caps: Caps) {
        if let Some(p) = self.ports.get_mut(&id) {
            p.cfg.caps = caps;
        }
    }

    /// A port's counters.
    pub fn counters(&self, id: PortId) -> Option<PortCounters> {
        self.ports.get(&id).map(|p| p.counters)
    }

    /// A port's counters, to update.
    pub fn counters_mut(&mut self, id: PortId) -> Option<&mut PortCounters> {
        self.ports.get_mut(&id).map(|p| &mut p.counters)
    }

    /// Packets queued for a port.
    pub fn queued(&self, id: PortId) -> usize {
        self.ports.get(&id).map_or(0, |p| p.queue.len())
    }

    /// Bytes queued for a port.
    pub fn queued_bytes(&self, id: PortId) -> usize {
        self.ports.get(&id).map_or(0, |p| p.queued_bytes)
    }

    /// The next packet queued for a port, without taking it.
    pub fn peek(&self, id: PortId) -> Option<&Packet> {
        self.ports.get(&id)?.queue.front()
    }

    /// Takes the next packet queued for a port.
    pub fn pop(&mut self, id: PortId) -> Option<Packet> {
        let port = self.ports.get_mut(&id)?;
        let p = port.queue.pop_front()?;
        port.queued_bytes -= p.len();
        self.used_bytes -= p.len();
        Some(p)
    }

    /// Drops every packet queued for a port (counted as dropped).
    pub fn flush(&mut self, id: PortId) {
        while let Some(_p) = self.pop(id) {
            if let Some(c) = self.counters_mut(id) {
                c.out_dropped += 1;
            }
        }
    }

    /// Where a frame from port `from` goes: anti-spoofing, learning and table lookup on its
    /// first bytes (`data` needs the Ethernet header and the source address of the L3
    /// header). Counts nothing; [`ingress`](Self::ingress) and
    /// [`count_direct`](Self::count_direct) do.
    pub fn decide(&mut self, from: PortId, data: &[u8], now_ns: u64) -> Decision {
        let Some(port) = self.ports.get(&from) else {
            return Decision::Drop(DropReason::NoPort);
        };
        if port.cfg.policy.check(data).is_err() {
            return Decision::Drop(DropReason::Spoofed);
        }
        let (Some(src), Some(dst)) = (frame::src_mac(data), frame::dst_mac(data)) else {
            return Decision::Drop(DropReason::Spoofed);
        };
        if !self.learn(from, src, now_ns) {
            return Decision::Drop(DropReason::StolenMac);
        }
        if is_group(&dst) {
            return Decision::Flood;
        }
        match self.lookup(&dst, now_ns) {
            Some(to) if to == from => Decision::Drop(DropReason::Hairpin),
            Some(to) => Decision::Unicast(to),
            None => Decision::Flood,
        }
    }

    /// Takes a frame sent by port `from`: anti-spoofing, learning, forwarding. Returns the
    /// number of packets queued (segments count one each).
    pub fn ingress(&mut self, from: PortId, pkt: Packet, now_ns: u64) -> usize {
        let decision = self.decide(from, &pkt.data, now_ns);
        let Some(port) = self.ports.get_mut(&from) else {
            return 0;
        };
        port.counters.in_packets += 1;
        port.counters.in_bytes += pkt.len() as u64;
        match decision {
            Decision::Drop(DropReason::Spoofed) => {
                port.counters.in_spoofed += 1;
                0
            }
            Decision::Drop(DropReason::StolenMac) => {
                port.counters.in_spoofed += 1;
                self.stats.stolen_mac += 1;
                0
            }
            Decision::Drop(_) => 0,
            Decision::Unicast(to) => self.deliver(to, pkt),
            Decision::Flood => {
                self.stats.flooded += 1;
                let targets: Vec<PortId> =
                    self.ports.keys().copied().filter(|&p| p != from).collect();
                let mut queued = 0;
                if let Some((&last, rest)) = targets.split_last() {
                    for &to in rest {
                        queued += self.deliver(to, pkt.clone());
                    }
                    queued += self.deliver(last, pkt);
                }
                queued
            }
        }
    }

    /// Counts a frame of `len` bytes that went from `from` to `to` without the queues (the
    /// data path copied it straight from one guest to the other); `delivered` is false if
    /// writing it out failed.
    pub fn count_direct(&mut self, from: PortId, to: PortId, len: usize, delivered: bool) {
        if let Some(c) = self.counters_mut(from) {
            c.in_packets += 1;
            c.in_bytes += len as u64;
        }
        if let Some(c) = self.counters_mut(to) {
            if delivered {
                c.out_packets += 1;
                c.out_bytes += len as u64;
            } else {
                c.out_errors += 1;
            }
        }
    }

    /// What a port accepts.
    pub fn caps(&self, id: PortId) -> Option<Caps> {
        self.ports.get(&id).map(|p| p.cfg.caps)
    }

    /// Records that `mac` lives behind `port`; false if it is another port's static MAC.
    fn learn(&mut self, port: PortId, mac: Mac, now_ns: u64) -> bool {
        if let Some(e) = self.fdb.get_mut(&mac) {
            if e.fixed {
                return e.port == port;
            }
            e.port = port;
            e.seen_ns = now_ns;
            return true;
        }
        if self.fdb.len() >= self.limits.fdb_entries {
            let age = self.limits.fdb_age_ns;
            self.fdb
                .retain(|_, e| e.fixed || now_ns.saturating_sub(e.seen_ns) < age);
            if self.fdb.len() >= self.limits.fdb_entries {
                self.stats.fdb_full += 1;
                return true;
            }
        }
        self.fdb.insert(
            mac,
            FdbEntry {
                port,
                seen_ns: now_ns,
                fixed: false,
            },
        );
        true
    }

    fn lookup(&mut self, mac: &Mac, now_ns: u64) -> Option<PortId> {
        let e = self.fdb.get(mac)?;
        if !e.fixed && now_ns.saturating_sub(e.seen_ns) >= self.limits.fdb_age_ns {
            self.fdb.remove(mac);
            return None;
        }
        Some(e.port)
    }

    /// Adapts `pkt` to port `to` and queues the result within the limits.
    fn deliver(&mut self, to: PortId, pkt: Packet) -> usize {
        let limits = self.limits;
        let used = &mut self.used_bytes;
        let Some(port) = self.ports.get_mut(&to) else {
            return 0;
        };
        let caps = port.cfg.caps;
        let mut dropped = 0u64;
        let mut push = |p: Packet| {
            let len = p.len();
            let fits = port.queue.len() < limits.queue_packets
                && port.queued_bytes + len <= limits.queue_bytes
                && *used + len <= limits.total_bytes;
            if fits {
                port.queued_bytes += len;
                *used += len;
                port.queue.push_back(p);
            } else {
                dropped += 1;
            }
            fits
        };
        let result = pkt.adapt(&caps, &mut push);
        port.counters.out_dropped += dropped;
        self.peak_bytes = self.peak_bytes.max(self.used_bytes);
        match result {
            Ok(n) => n,
            Err(_) => {
                port.counters.out_dropped += 1;
                self.stats.adapt_failed += 1;
                0
            }
        }
    }

    /// A one-line summary of a port for log lines.
    pub fn describe(&self, id: PortId) -> String {
        let Some(p) = self.ports.get(&id) else {
            return String::from("?");
        };
        let mut s = p.cfg.name.clone();
        if let Some(mac) = &p.cfg.policy.mac {
            s.push_str(&alloc::format!(" mac {}", MacFmt(mac)));
        }
        if let Some(ips) = &p.cfg.policy.ips {
            for r in ips {
                s.push_str(&alloc::format!(" ip {r}"));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::tcp4;
    use crate::packet::MAX_FRAME;
    use alloc::vec;

    const A: Mac = [0, 0x16, 0x3e, 0, 0, 0xa];
    const B: Mac = [0, 0x16, 0x3e, 0, 0, 0xb];
    const X: Mac = [2, 0, 0, 0, 0, 0x99];

    fn caps() -> Caps {
        Caps::plain(1500)
    }

    fn frame(dst: Mac, src: Mac, src_ip: [u8; 4]) -> Packet {
        let mut data = tcp4(src_ip, [10, 0, 0, 99], b"payload");
        data[0..6].copy_from_slice(&dst);
        data[6..12].copy_from_slice(&src);
        Packet::new(data)
    }

    fn port(sw: &mut Switch, name: &str, mac: Option<Mac>, ips: Option<&str>) -> PortId {
        sw.add_port(PortConfig {
            name: name.into(),
            caps: caps(),
            policy: Policy {
                mac,
                ips: ips.map(|s| s.split(' ').map(|r| IpRule::parse(r).unwrap()).collect()),
            },
        })
    }

    #[test]
    fn ip_rules() {
        let r = IpRule::parse("10.0.0.0/24").unwrap();
        assert!(r.matches("10.0.0.77".parse().unwrap()));
        assert!(!r.matches("10.0.1.1".parse().unwrap()));
        assert!(!r.matches("::1".parse().unwrap()));
        let r = IpRule::parse("10.0.0.5").unwrap();
        assert_eq!(r.prefix, 32);
        assert!(r.matches("10.0.0.5".parse().unwrap()));
        assert!(!r.matches("10.0.0.4".parse().unwrap()));
        let r = IpRule::parse("fd00::/12").unwrap();
        assert!(r.matches("fd0f::1".parse().unwrap()));
        assert!(!r.matches("fd10::1".parse().unwrap()));
        assert!(IpRule::parse("0.0.0.0/0")
            .unwrap()
            .matches("1.2.3.4".parse().unwrap()));
        for bad in ["", "10.0.0.1/33", "10.0.0", "x/8", "::/129", "10.0.0.1/"] {
            assert_eq!(IpRule::parse(bad), None, "{bad}");
        }
        assert_eq!(
            alloc::format!("{}", IpRule::parse("fd00::/12").unwrap()),
            "fd00::/12"
        );
    }

    #[test]
    fn learns_and_forwards_unicast() {
        let mut sw = Switch::new(Limits::default());
        let a = port(&mut sw, "a", Some(A), None);
        let b = port(&mut sw, "b", Some(B), None);
        let up = port(&mut sw, "up", None, None);
        // A to B: static entry, unicast.
        assert_eq!(sw.ingress(a, frame(B, A, [10, 0, 0, 1]), 0), 1);
        assert_eq!((sw.queued(b), sw.queued(up)), (1, 0));
        // A to unknown X: flooded to b and up.
        assert_eq!(sw.ingress(a, frame(X, A, [10, 0, 0, 1]), 0), 2);
        assert_eq!(sw.stats().flooded, 1);
        // X answers from the uplink: learnt; A to X is now unicast.
        sw.ingress(up, frame(A, X, [10, 0, 0, 9]), 0);
        assert_eq!(sw.queued(a), 1);
        assert_eq!(sw.ingress(a, frame(X, A, [10, 0, 0, 1]), 1), 1);
        assert_eq!((sw.queued(b), sw.queued(up)), (2, 2));
        // Broadcast goes everywhere but back.
        assert_eq!(
            sw.ingress(b, frame(frame::BROADCAST, B, [10, 0, 0, 2]), 2),
            2
        );
        // Entries age out.
        let age = sw.limits().fdb_age_ns;
        assert_eq!(
            sw.ingress(a, frame(X, A, [10, 0, 0, 1]), age + 5),
            2,
            "flooded again"
        );
    }

    #[test]
    fn anti_spoofing() {
        let mut sw = Switch::new(Limits::default());
        let a = port(&mut sw, "a", Some(A), Some("10.0.0.10 fd00::10"));
        let b = port(&mut sw, "b", Some(B), None);
        let up = port(&mut sw, "up", None, None);
        // Wrong source MAC.
        assert_eq!(sw.ingress(a, frame(B, X, [10, 0, 0, 10]), 0), 0);
        // Wrong source IP.
        assert_eq!(sw.ingress(a, frame(B, A, [10, 0, 0, 11]), 0), 0);
        // Right ones.
        assert_eq!(sw.ingress(a, frame(B, A, [10, 0, 0, 10]), 0), 1);
        // DHCP from 0.0.0.0.
        assert_eq!(sw.ingress(a, frame(B, A, [0, 0, 0, 0]), 0), 1);
        assert_eq!(sw.counters(a).unwrap().in_spoofed, 2);
        // B without ip= may use any address, but not A's MAC.
        assert_eq!(sw.ingress(b, frame(X, B, [1, 2, 3, 4]), 0), 2);
        assert_eq!(sw.ingress(b, frame(X, A, [1, 2, 3, 4]), 0), 0);
        // Nobody, not even the uplink, takes over a vif's MAC.
        assert_eq!(sw.ingress(up, frame(B, A, [10, 0, 0, 10]), 0), 0);
        assert_eq!(sw.stats().stolen_mac, 1);
        // A group source MAC is never valid.
        assert_eq!(
            sw.ingress(up, frame(B, frame::BROADCAST, [1, 1, 1, 1]), 0),
            0
        );
        // Other protocols are refused when ip= is set.
        let mut other = frame(B, A, [10, 0, 0, 10]);
        other.data[12] = 0x88;
        assert_eq!(sw.ingress(a, other, 0), 0);
    }

    #[test]
    fn arp_and_ipv6_sources() {
        let policy = Policy {
            mac: Some(A),
            ips: Some(vec![IpRule::parse("10.0.0.10").unwrap()]),
        };
        let arp = |sender_mac: Mac, ip: [u8; 4]| {
            let mut f = vec![0xff; 6];
            f.extend_from_slice(&A);
            f.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
            f.extend_from_slice(&sender_mac);
            f.extend_from_slice(&ip);
            f.extend_from_slice(&[0; 10]);
            f
        };
        assert_eq!(policy.check(&arp(A, [10, 0, 0, 10])), Ok(()));
        assert_eq!(policy.check(&arp(A, [0; 4])), Ok(()), "ARP probe");
        assert!(policy.check(&arp(B, [10, 0, 0, 10])).is_err());
        assert!(policy.check(&arp(A, [10, 0, 0, 1])).is_err());
        let v6 = |src: [u8; 16]| {
            let mut f = vec![0x33; 6];
            f.extend_from_slice(&A);
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 0, 58, 255]);
            f.extend_from_slice(&src);
            f.extend_from_slice(&[0; 16]);
            f
        };
        let mut ll = [0u8; 16];
        ll[0] = 0xfe;
        ll[1] = 0x80;
        ll[15] = 1;
        assert_eq!(policy.check(&v6(ll)), Ok(()));
        assert_eq!(policy.check(&v6([0; 16])), Ok(()));
        let mut global = [0u8; 16];
        global[0] = 0x20;
        assert!(policy.check(&v6(global)).is_err());
        assert!(policy.check(&v6(ll)[..30]).is_err(), "truncated");
    }

    #[test]
    fn queues_are_bounded() {
        let limits = Limits {
            queue_packets: 4,
            queue_bytes: 100_000,
            total_bytes: 1_000_000,
            ..Limits::default()
        };
        let mut sw = Switch::new(limits);
        let a = port(&mut sw, "a", Some(A), None);
        let b = port(&mut sw, "b", Some(B), None);
        for _ in 0..10 {
            sw.ingress(a, frame(B, A, [10, 0, 0, 1]), 0);
        }
        assert_eq!(sw.queued(b), 4);
        assert_eq!(sw.counters(b).unwrap().out_dropped, 6);
        let bytes = sw.queued_bytes(b);
        assert_eq!(sw.used_bytes(), bytes);
        sw.pop(b).unwrap();
        assert_eq!(sw.used_bytes(), bytes - bytes / 4);
        // The global budget binds too.
        let limits = Limits {
            total_bytes: 200,
            ..Limits::default()
        };
        let mut sw = Switch::new(limits);
        let a = port(&mut sw, "a", Some(A), None);
        let b = port(&mut sw, "b", Some(B), None);
        for _ in 0..10 {
            sw.ingress(a, frame(B, A, [10, 0, 0, 1]), 0);
        }
        assert!(sw.used_bytes() <= 200);
        assert_eq!(sw.queued(b), 200 / 61);
        // Removing a port returns its budget.
        sw.remove_port(b).unwrap();
        assert_eq!(sw.used_bytes(), 0);
        assert_eq!(sw.fdb_len(), 1);
    }

    #[test]
    fn fdb_is_bounded() {
        let limits = Limits {
            fdb_entries: 8,
            ..Limits::default()
        };
        let mut sw = Switch::new(limits);
        let up = port(&mut sw, "up", None, None);
        let _b = port(&mut sw, "b", Some(B), None);
        for i in 0..100u8 {
            sw.ingress(up, frame(B, [2, 0, 0, 0, 1, i], [10, 0, 0, 1]), 0);
        }
        assert_eq!(sw.fdb_len(), 8);
        assert_eq!(sw.stats().fdb_full, 93);
    }

    #[test]
    fn segmentation_on_the_way_to_a_plain_port() {
        let mut sw = Switch::new(Limits::default());
        let guest_caps = Caps {
            max_frame: MAX_FRAME,
            gso_tcpv4: true,
            gso_tcpv6: true,
            partial_ipv4: true,
            partial_ipv6: true,
        };
        let a = sw.add_port(PortConfig {
            name: "a".into(),
            caps: guest_caps,
            policy: Policy {
                mac: Some(A),
                ips: None,
            },
        });
        let up = port(&mut sw, "up", None, None);
        let payload = vec![7u8; 5000];
        let mut data = tcp4([10, 0, 0, 1], [10, 0, 0, 2], &payload);
        data[0..6].copy_from_slice(&X);
        data[6..12].copy_from_slice(&A);
        let mut p = Packet::new(data);
        p.csum = crate::packet::Csum::Partial;
        p.gso = Some(crate::wire::Gso {
            kind: crate::wire::GsoKind::TcpV4,
            mss: 1000,
        });
        assert_eq!(sw.ingress(a, p, 0), 5);
        assert_eq!(sw.queued(up), 5);
        // A frame too big for the uplink is dropped and counted.
        let mut big = frame(X, A, [10, 0, 0, 1]);
        big.data.resize(3000, 0);
        assert_eq!(sw.ingress(a, big, 0), 0);
        assert_eq!(sw.counters(up).unwrap().out_dropped, 1);
    }
}
