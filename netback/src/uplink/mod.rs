//! The uplink: the switch port that connects the guests to the rest of the world.
//!
//! Two kinds, one [`UplinkPort`] trait the data path drives each pass:
//! - [`netfront`]: a netfront of our own into dom0's bridge (or another network driver
//!   domain), for hosts without a spare NIC;
//! - [`nic`]: a network device this domain owns (a passed-through NIC): guests sit on the
//!   physical segment, and dom0 carries none of their traffic.

pub mod netfront;
pub mod nic;

pub use netfront::{UplinkConn, UplinkTask};
pub use nic::NicUplink;

use crate::switch::{PortId, Switch};

/// A connected uplink, as the data path drives it.
pub trait UplinkPort {
    /// Moves frames both ways between the device and the switch port `port`; returns
    /// whether work is left for another pass.
    fn poll(&mut self, switch: &mut Switch, port: PortId, now: u64) -> bool;

    /// Why the uplink stopped working, if it did (the data path then detaches it).
    fn broken(&self) -> Option<&str>;

    /// The uplink's own counters (zero where the kind has none).
    fn counters(&self) -> UplinkCounters {
        UplinkCounters::default()
    }
}

/// Counters of an uplink beside the switch port's (published in `data/status/`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UplinkCounters {
    /// Device interrupts taken.
    pub interrupts: u64,
    /// Frames the device handed over that the switch refused as malformed.
    pub rx_malformed: u64,
}
