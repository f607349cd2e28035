//! Holding back an event channel that keeps firing with nothing to do (an event storm).
//!
//! A frontend may notify its port in a tight loop. Each notification wakes the driver domain
//! for a pass over all its devices, so a storm alone would keep the driver domain's vCPU busy
//! and slow every other guest down. As Linux does with its "lateeoi" event handling
//! (XSA-332), a port whose owner found nothing new after [`SPURIOUS_LIMIT`] notifications in
//! a row is masked for a while: its notifications stop waking the domain, its ring is still
//! served on every pass the domain makes for other reasons, and when the hold ends the port
//! is unmasked (a notification that arrived meanwhile is delivered then). Each further empty
//! notification doubles the hold, from [`HOLD_MIN_NS`] up to [`HOLD_MAX_NS`]; a poll that
//! finds work ends the streak. A frontend that notifies only after producing requests, as
//! Linux's do, never reaches the limit.
//!
//! Use: call [`EventThrottle::take`] where the owner took its port's pending flag, then
//! [`EventThrottle::account`] once it knows whether the poll found anything new, and ask to
//! be polled again by the instant `account` returns.

use core::fmt;

use log::info;

use crate::platform::EventChannel;

/// Empty notifications in a row after which a port is held back.
pub const SPURIOUS_LIMIT: u32 = 8;
/// The first hold.
pub const HOLD_MIN_NS: u64 = 1_000_000;
/// The longest hold.
pub const HOLD_MAX_NS: u64 = 64_000_000;

/// What one poll did to the throttle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The port wakes the domain as usual.
    Open,
    /// The port is held back until this instant: poll again by then to lift the hold.
    /// `started` is true when this poll started the hold.
    Held {
        /// When the hold ends.
        until_ns: u64,
        /// Whether this poll started it.
        started: bool,
    },
}

/// The storm accounting of one event channel.
#[derive(Debug, Default)]
pub struct EventThrottle {
    streak: u32,
    hold_ns: u64,
    held_until: Option<u64>,
    holds: u64,
}

impl EventThrottle {
    /// A throttle for a port that is not held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lifts a hold that has ended, then takes `ch`'s pending flag (true if it fired).
    pub fn take<C: EventChannel + ?Sized>(&mut self, ch: &C, now_ns: u64) -> bool {
        if self.held_until.is_some_and(|until| now_ns >= until) && ch.unmask().is_ok() {
            self.held_until = None;
        }
        ch.take_pending()
    }

    /// Accounts one poll of the port's owner: `fired` as [`take`](Self::take) returned it,
    /// `progress` whether the poll found anything new from the frontend.
    pub fn account<C: EventChannel + ?Sized>(
        &mut self,
        ch: &C,
        now_ns: u64,
        fired: bool,
        progress: bool,
    ) -> Verdict {
        let mut started = false;
        if progress {
            self.streak = 0;
            self.hold_ns = 0;
        } else if fired {
            self.streak = self.streak.saturating_add(1);
            if self.streak >= SPURIOUS_LIMIT && self.held_until.is_none() {
                self.hold_ns = match self.hold_ns {
                    0 => HOLD_MIN_NS,
                    h => (h * 2).min(HOLD_MAX_NS),
                };
                ch.mask();
                self.held_until = Some(now_ns.saturating_add(self.hold_ns));
                self.holds += 1;
                started = true;
            }
        }
        match self.held_until {
            Some(until_ns) => Verdict::Held { until_ns, started },
            None => Verdict::Open,
        }
    }

    /// Holds started so far.
    pub fn holds(&self) -> u64 {
        self.holds
    }

    /// Whether the port is held back now.
    pub fn is_held(&self) -> bool {
        self.held_until.is_some()
    }
}

/// Counts a hold that [`EventThrottle::account`] just started (`Verdict::Held { started:
/// true, .. }`) in `holds`, the device's `event_holds` counter, and logs the device's first.
pub fn count_hold(holds: &mut u64, label: &dyn fmt::Display) {
    *holds += 1;
    if *holds == 1 {
        info!(
            "{label}: event storm ({SPURIOUS_LIMIT} notifications in a row with nothing new): \
             holding its event channel back"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{HostChannel, World};
    use crate::platform::Events;

    /// A frontend's port and the backend's end of it.
    fn bound_pair() -> (World, HostChannel, HostChannel) {
        let world = World::new();
        let (be, fe) = (
            world.create_domain(1, "backend"),
            world.create_domain(5, "frontend"),
        );
        let fch = fe.alloc_unbound(1).unwrap();
        let bch = be.bind_interdomain(5, fch.port()).unwrap();
        (world, fch, bch)
    }

    #[test]
    fn a_storm_is_held_back_with_growing_holds_and_work_ends_it() {
        let (world, fch, bch) = bound_pair();
        let mut t = EventThrottle::new();
        let mut now = 0;
        // Seven empty notifications: still open.
        for _ in 0..SPURIOUS_LIMIT - 1 {
            fch.notify().unwrap();
            let fired = t.take(&bch, now);
            assert!(fired);
            assert_eq!(t.account(&bch, now, fired, false), Verdict::Open);
        }
        // The eighth starts a hold: the port is masked, its notifications do not wake us.
        fch.notify().unwrap();
        let fired = t.take(&bch, now);
        let v = t.account(&bch, now, fired, false);
        assert_eq!(
            v,
            Verdict::Held {
                until_ns: HOLD_MIN_NS,
                started: true
            }
        );
        assert!(world.port_masked(1, bch.port()));
        fch.notify().unwrap();
        assert!(!t.take(&bch, now + 1), "held: nothing taken");
        // At the end of the hold the waiting notification comes through; still empty, so
        // the next hold is twice as long.
        now += HOLD_MIN_NS;
        let fired = t.take(&bch, now);
        assert!(fired && !world.port_masked(1, bch.port()));
        assert_eq!(
            t.account(&bch, now, fired, false),
            Verdict::Held {
                until_ns: now + 2 * HOLD_MIN_NS,
                started: true
            }
        );
        // Holds grow to the cap and no further.
        for _ in 0..20 {
            let until = match t.account(&bch, now, false, false) {
                Verdict::Held { until_ns, .. } => until_ns,
                Verdict::Open => panic!("still held"),
            };
            now = until;
            fch.notify().unwrap();
            let fired = t.take(&bch, now);
            let v = t.account(&bch, now, fired, false);
            match v {
                Verdict::Held { until_ns, started } => {
                    assert!(started);
                    assert!(until_ns - now <= HOLD_MAX_NS);
                }
                Verdict::Open => panic!("a storm stays held"),
            }
        }
        assert_eq!(t.hold_ns, HOLD_MAX_NS);
        // Work ends the streak: the next hold needs a full new streak and starts short.
        let until = match t.account(&bch, now, false, false) {
            Verdict::Held { until_ns, .. } => until_ns,
            Verdict::Open => panic!("still held"),
        };
        now = until;
        let fired = t.take(&bch, now);
        assert!(!fired || t.account(&bch, now, fired, true) == Verdict::Open);
        assert_eq!(t.account(&bch, now, true, true), Verdict::Open);
        assert!(!t.is_held() && !world.port_masked(1, bch.port()));
        for i in 0..SPURIOUS_LIMIT {
            fch.notify().unwrap();
            let fired = t.take(&bch, now);
            let v = t.account(&bch, now, fired, false);
            assert_eq!(v == Verdict::Open, i + 1 < SPURIOUS_LIMIT);
        }
        assert_eq!(t.hold_ns, HOLD_MIN_NS);
        assert_eq!(t.holds(), 23);
    }

    #[test]
    fn an_occasional_empty_notification_is_never_held() {
        let (_world, fch, bch) = bound_pair();
        let mut t = EventThrottle::new();
        for round in 0..1000u64 {
            fch.notify().unwrap();
            let fired = t.take(&bch, round);
            // Every fourth notification finds nothing new (a request taken in an earlier
            // pass): the streak never reaches the limit.
            let v = t.account(&bch, round, fired, round % 4 != 0);
            assert_eq!(v, Verdict::Open);
        }
        assert_eq!(t.holds(), 0);
    }
}
