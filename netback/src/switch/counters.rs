//! What the switch counts: per port ([`PortCounters`], a vif's `data/vif/…` keys) and
//! switch-wide ([`SwitchStats`]).

use core::fmt;

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
