//! Event storms on a vif: its ports held back while its frontend notifies with nothing new
//! ([`minios::event_throttle`]).
//!
//! "Something new" is a request index the frontend moved since the last pass looked: the TX
//! ring's for the TX port, the RX ring's (buffers posted) for the RX port, and either for
//! the one port of a frontend without split event channels. Notifications are collected
//! wherever the pass takes a port's flag and accounted once at the end of the pass.

use minios::event_throttle::{EventThrottle, Verdict};
use minios::platform::{EventChannel, SharedMem};

use crate::netring::NetBackRing;

/// The storm accounting of one vif.
#[derive(Debug, Default)]
pub struct VifEvents {
    tx: EventThrottle,
    rx: EventThrottle,
    tx_fired: bool,
    rx_fired: bool,
    seen_tx: Option<u32>,
    seen_rx: Option<u32>,
    /// Holds started on either port (counted by the data path with
    /// [`minios::event_throttle::count_hold`]).
    pub holds: u64,
}

/// Where the frontend's request index of `ring` stands (`None` if the ring is broken).
fn produced<M: SharedMem>(ring: &NetBackRing<M>) -> Option<u32> {
    ring.produced().ok()
}

impl VifEvents {
    /// Takes the TX (or only) port's flag, lifting an ended hold first.
    pub fn take_tx<C: EventChannel>(&mut self, ch: &C, now_ns: u64) {
        self.tx_fired |= self.tx.take(ch, now_ns);
    }

    /// Takes the RX port's flag (split event channels), lifting an ended hold first.
    pub fn take_rx<C: EventChannel>(&mut self, ch: &C, now_ns: u64) {
        self.rx_fired |= self.rx.take(ch, now_ns);
    }

    /// Accounts the pass: returns when to poll again to end a hold, and whether a hold
    /// started now (for the log).
    pub fn account<C: EventChannel, M: SharedMem>(
        &mut self,
        tx_ch: &C,
        rx_ch: Option<&C>,
        tx_ring: &NetBackRing<M>,
        rx_ring: &NetBackRing<M>,
        now_ns: u64,
    ) -> (Option<u64>, bool) {
        let (tx_now, rx_now) = (produced(tx_ring), produced(rx_ring));
        let tx_moved = tx_now != self.seen_tx;
        let rx_moved = rx_now != self.seen_rx;
        (self.seen_tx, self.seen_rx) = (tx_now, rx_now);
        let mut started = false;
        let mut until = None;
        let mut note = |v: Verdict| {
            if let Verdict::Held {
                until_ns,
                started: s,
            } = v
            {
                started |= s;
                until = Some(until.map_or(until_ns, |u: u64| u.min(until_ns)));
            }
        };
        match rx_ch {
            Some(rx_ch) => {
                note(self.tx.account(tx_ch, now_ns, self.tx_fired, tx_moved));
                note(self.rx.account(rx_ch, now_ns, self.rx_fired, rx_moved));
            }
            None => note(
                self.tx
                    .account(tx_ch, now_ns, self.tx_fired, tx_moved || rx_moved),
            ),
        }
        (self.tx_fired, self.rx_fired) = (false, false);
        (until, started)
    }
}
