//! The forwarding table: which port each MAC address lives behind. A port's own MAC (its
//! policy's) is a static entry no other port can take over; other source MACs are learnt, in
//! a bounded table whose entries age out.

use alloc::collections::BTreeMap;

use super::{Limits, PortId};
use crate::frame::Mac;

#[derive(Clone, Copy, Debug)]
struct FdbEntry {
    port: PortId,
    seen_ns: u64,
    fixed: bool,
}

/// What [`Fdb::learn`] made of a source address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learnt {
    /// Known (now) behind the port.
    Yes,
    /// The table is full of live entries: not learnt, the frame still goes on.
    TableFull,
    /// Another port's static MAC: the frame must be dropped.
    Stolen,
}

/// The table.
#[derive(Debug, Default)]
pub struct Fdb {
    entries: BTreeMap<Mac, FdbEntry>,
}

impl Fdb {
    /// Entries, learnt and static.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Makes `mac` a static entry of `port`.
    pub fn add_static(&mut self, mac: Mac, port: PortId) {
        self.entries.insert(
            mac,
            FdbEntry {
                port,
                seen_ns: 0,
                fixed: true,
            },
        );
    }

    /// Forgets every entry of `port`.
    pub fn remove_port(&mut self, port: PortId) {
        self.entries.retain(|_, e| e.port != port);
    }

    /// Records that `mac` lives behind `port` (at most `limits.fdb_entries` entries; aged
    /// entries make room).
    pub fn learn(&mut self, port: PortId, mac: Mac, now_ns: u64, limits: &Limits) -> Learnt {
        if let Some(e) = self.entries.get_mut(&mac) {
            if e.fixed {
                return if e.port == port {
                    Learnt::Yes
                } else {
                    Learnt::Stolen
                };
            }
            e.port = port;
            e.seen_ns = now_ns;
            return Learnt::Yes;
        }
        if self.entries.len() >= limits.fdb_entries {
            let age = limits.fdb_age_ns;
            self.entries
                .retain(|_, e| e.fixed || now_ns.saturating_sub(e.seen_ns) < age);
            if self.entries.len() >= limits.fdb_entries {
                return Learnt::TableFull;
            }
        }
        self.entries.insert(
            mac,
            FdbEntry {
                port,
                seen_ns: now_ns,
                fixed: false,
            },
        );
        Learnt::Yes
    }

    /// The port `mac` lives behind, if known and not aged out (an aged entry is removed).
    pub fn lookup(&mut self, mac: &Mac, now_ns: u64, age_ns: u64) -> Option<PortId> {
        let e = self.entries.get(mac)?;
        if !e.fixed && now_ns.saturating_sub(e.seen_ns) >= age_ns {
            self.entries.remove(mac);
            return None;
        }
        Some(e.port)
    }
}
