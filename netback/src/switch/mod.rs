//! The L2 learning switch between every port of the driver domain: the guests' vifs, the
//! uplink and our own interface.
//!
//! One file per job: [`policy`] (anti-spoofing), [`fdb`] (the forwarding table), [`queue`]
//! (bounded port queues), [`counters`]; this module holds the ports and forwards.
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

pub mod counters;
pub mod fdb;
pub mod policy;
pub mod queue;
#[cfg(test)]
mod tests;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

pub use counters::{PortCounters, SwitchStats};
pub use fdb::{Fdb, Learnt};
pub use policy::{IpRule, Policy};
pub use queue::PortQueue;

use crate::frame::{self, is_group, Mac, MacFmt};
use crate::packet::{Caps, Packet};

/// Identifies a port for as long as it exists (never reused).
pub type PortId = u32;

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

#[derive(Debug)]
struct Port {
    cfg: PortConfig,
    queue: PortQueue,
    counters: PortCounters,
}

/// The switch.
#[derive(Debug, Default)]
pub struct Switch {
    ports: BTreeMap<PortId, Port>,
    fdb: Fdb,
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
            self.fdb.add_static(mac, id);
        }
        self.ports.insert(
            id,
            Port {
                cfg,
                queue: PortQueue::default(),
                counters: PortCounters::default(),
            },
        );
        id
    }

    /// Removes a port with its queue and table entries; returns its counters.
    pub fn remove_port(&mut self, id: PortId) -> Option<PortCounters> {
        let port = self.ports.remove(&id)?;
        self.used_bytes -= port.queue.bytes();
        self.fdb.remove_port(id);
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
        self.ports.get(&id).map_or(0, |p| p.queue.bytes())
    }

    /// Whether port `id`'s queue can take `packets` more packets of `bytes` bytes in all now
    /// (false for a port that does not exist).
    pub fn has_room(&self, id: PortId, packets: usize, bytes: usize) -> bool {
        self.ports.get(&id).is_some_and(|p| {
            p.queue
                .has_room(packets, bytes, &self.limits, self.used_bytes)
        })
    }

    /// The next packet queued for a port, without taking it.
    pub fn peek(&self, id: PortId) -> Option<&Packet> {
        self.ports.get(&id)?.queue.front()
    }

    /// Takes the next packet queued for a port.
    pub fn pop(&mut self, id: PortId) -> Option<Packet> {
        let p = self.ports.get_mut(&id)?.queue.pop()?;
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
        match self.fdb.lookup(&dst, now_ns, self.limits.fdb_age_ns) {
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
        match self.fdb.learn(port, mac, now_ns, &self.limits) {
            Learnt::Yes => true,
            Learnt::TableFull => {
                self.stats.fdb_full += 1;
                true
            }
            Learnt::Stolen => false,
        }
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
            let fits = port.queue.push(p, &limits, used);
            dropped += u64::from(!fits);
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
