//! The per-device limit on acting on frontend state changes (XSA-350, state flapping).
//!
//! Every frontend state event costs the backend synchronous xenstore round trips on the one
//! thread that also runs every device's data path: a read of the frontend's `state`, and
//! for a transition a transaction, and for a connect the frontend's keys, grant maps and
//! event channel binds. A frontend that rewrites its state as fast as it can would keep the
//! loop waiting on xenstored, and every other guest's I/O with it. So each device acts on
//! [`Limits::burst`] state events at once; beyond that an event only marks the device
//! *pending*, and the loop wakes ([`StateLimit::wake_at`]) to read the state the frontend is
//! in then and act on it once, when
//!
//! - the state has been left alone for [`Limits::interval_ns`] (the frontend is done, or
//!   waits for us as a frontend following the protocol does), but no sooner than its turn
//!   in a token bucket refilled at one per `interval_ns` (a GCRA: one instant per device);
//! - or, for a frontend that never leaves it alone, [`Limits::flood_interval_ns`] after the
//!   last act.
//!
//! So no final state is ever lost, a flood of any length costs at most one read and act per
//! `flood_interval_ns` (a frontend pausing between writes, at most one per `interval_ns`),
//! and a frontend that reconnects after a flood waits about `interval_ns` per step. Other
//! devices have their own buckets and are never held back.
//!
//! An *episode* starts with the first event deferred and ends once the bucket is full again
//! (the frontend calm for up to `burst × interval_ns` after the last act); until then every
//! state event of the device waits as above. Its end is reported with the count of events
//! deferred, so the caller logs one line per episode.

/// State events a device acts on at once before the limit applies. A frontend's connect is
/// about three (the first sight of its directory, Initialised, Connected), a close two
/// (Closing, Closed), a restart one (Initialising): a connect, a close, a reconnect and a
/// close back to back (about ten) never wait.
pub const STATE_BURST: u32 = 12;

/// Beyond the burst: how long the state must rest before it is acted on, and the least time
/// between acts (4 a second). A frontend that reconnects after a flood waits about this long
/// at each step that waits on the backend (Initialising → InitWait, Connected → Connected).
pub const STATE_INTERVAL_NS: u64 = 250_000_000;

/// Beyond the burst, a frontend that keeps changing its state is acted on once per this
/// interval: a 2000-write flap under TCG, where one act (a restart and connect) took the
/// loop 100–400 ms of xenstore round trips, at four a second still kept it waiting about
/// half the time.
pub const STATE_FLOOD_INTERVAL_NS: u64 = 1_000_000_000;

/// How long a device's frontend must leave its state alone after the last act to have its
/// whole burst back, at most (3 s). A host test that runs more state changes than the burst in no
/// simulated time advances the clock by this much between rounds.
pub const STATE_REFILL_NS: u64 = STATE_BURST as u64 * STATE_INTERVAL_NS;

/// The numbers of the limit ([`crate::xenbus::BackendConfig::state_limits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// State events acted on at once ([`STATE_BURST`]).
    pub burst: u32,
    /// Rest before an act, and least time between acts, beyond the burst
    /// ([`STATE_INTERVAL_NS`]).
    pub interval_ns: u64,
    /// Time between acts while the state never rests ([`STATE_FLOOD_INTERVAL_NS`]).
    pub flood_interval_ns: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            burst: STATE_BURST,
            interval_ns: STATE_INTERVAL_NS,
            flood_interval_ns: STATE_FLOOD_INTERVAL_NS,
        }
    }
}

/// A limited device's episode that just ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Episode {
    /// State events deferred in it.
    pub deferred: u64,
    /// When the first of them was deferred (ns).
    pub since_ns: u64,
}

/// One device's state-event limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateLimit {
    /// When the bucket is full again (the GCRA's theoretical arrival time); an act is
    /// allowed while this lies at most `burst - 1` intervals ahead.
    full_at: u64,
    /// A state event waits to be acted on.
    pending: bool,
    /// When the last state event came (ns).
    last_event_ns: u64,
    /// When the state was last acted on (ns).
    last_act_ns: u64,
    /// Events deferred in the current episode (0: no episode).
    deferred: u64,
    /// When the current episode started.
    since_ns: u64,
}

impl StateLimit {
    /// A full bucket.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a state event at `now` may be acted on now (taking a turn). If not, the
    /// event is remembered: act at [`wake_at`](Self::wake_at) through [`due`](Self::due).
    pub fn admit(&mut self, now: u64, l: &Limits) -> bool {
        if self.deferred == 0 && now >= self.next_turn(l) {
            self.take(now, l);
            return true;
        }
        if self.deferred == 0 {
            self.since_ns = now;
        }
        self.deferred = self.deferred.saturating_add(1);
        self.pending = true;
        self.last_event_ns = now;
        false
    }

    /// Whether a deferred event's time has come: then [`take`](Self::take) the turn, read
    /// the state and act.
    pub fn due(&self, now: u64, l: &Limits) -> bool {
        self.pending && now >= self.act_at(l)
    }

    /// Takes a turn at `now`: the device acts on its state.
    pub fn take(&mut self, now: u64, l: &Limits) {
        self.full_at = self.full_at.max(now).saturating_add(l.interval_ns);
        self.last_act_ns = now;
        self.pending = false;
    }

    /// When the loop must wake for this device: a deferred event's time, or the end of an
    /// episode (to report it).
    pub fn wake_at(&self, l: &Limits) -> Option<u64> {
        if self.pending {
            Some(self.act_at(l))
        } else if self.deferred > 0 {
            Some(self.full_at)
        } else {
            None
        }
    }

    /// Ends the episode once nothing is deferred and the bucket is full again.
    pub fn end_episode(&mut self, now: u64) -> Option<Episode> {
        if self.pending || self.deferred == 0 || now < self.full_at {
            return None;
        }
        let ended = Episode {
            deferred: self.deferred,
            since_ns: self.since_ns,
        };
        self.deferred = 0;
        Some(ended)
    }

    /// Events deferred in the current episode (0: none).
    pub fn deferred(&self) -> u64 {
        self.deferred
    }

    /// Whether a deferred state event waits to be acted on.
    pub fn is_pending(&self) -> bool {
        self.pending
    }

    /// The next turn the bucket allows.
    fn next_turn(&self, l: &Limits) -> u64 {
        let slack = u64::from(l.burst.max(1) - 1).saturating_mul(l.interval_ns);
        self.full_at.saturating_sub(slack)
    }

    /// When a deferred event is acted on: once the state rested, or a flood interval after
    /// the last act, and never before the bucket's next turn.
    fn act_at(&self, l: &Limits) -> u64 {
        let rested = self.last_event_ns.saturating_add(l.interval_ns);
        let flood = self.last_act_ns.saturating_add(l.flood_interval_ns);
        rested.min(flood).max(self.next_turn(l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: u64 = STATE_INTERVAL_NS;
    const F: u64 = STATE_FLOOD_INTERVAL_NS;

    fn burst(l: &mut StateLimit, now: u64) {
        for _ in 0..STATE_BURST {
            assert!(l.admit(now, &Limits::default()));
        }
    }

    #[test]
    fn a_burst_is_free_then_a_resting_state_is_acted_on() {
        let d = Limits::default();
        let mut l = StateLimit::new();
        let t0 = 5 * I;
        burst(&mut l, t0);
        assert!(!l.admit(t0, &d));
        assert!(!l.admit(t0 + 1, &d));
        assert!(l.is_pending());
        // Acted on once it rested one interval.
        assert_eq!(l.wake_at(&d), Some(t0 + 1 + I));
        assert!(!l.due(t0 + I, &d));
        assert!(l.due(t0 + 1 + I, &d));
        l.take(t0 + 1 + I, &d);
        assert!(!l.is_pending());
        // Not over until the bucket is full again; until then events wait to rest.
        let end = t0 + (u64::from(STATE_BURST) + 1) * I;
        assert_eq!(l.wake_at(&d), Some(end));
        assert_eq!(l.end_episode(end - 1), None);
        assert_eq!(
            l.end_episode(end),
            Some(Episode {
                deferred: 2,
                since_ns: t0
            })
        );
        assert_eq!(l.wake_at(&d), None);
        burst(&mut l, end);
    }

    #[test]
    fn a_never_resting_flood_is_acted_on_once_per_flood_interval() {
        let d = Limits::default();
        let mut l = StateLimit::new();
        burst(&mut l, 0);
        let mut acts = 0;
        // An event every millisecond for ten seconds.
        for now in 1..10_000u64 {
            let now = now * 1_000_000;
            assert!(!l.admit(now, &d), "in the episode everything waits");
            if l.due(now, &d) {
                l.take(now, &d);
                acts += 1;
            }
        }
        assert_eq!(acts, 10_000_000_000 / F - 1);
        // It stops: the last state is acted on at the next flood turn, or once it rested.
        let last = 10_000 * 1_000_000 - 1_000_000;
        assert_eq!(l.wake_at(&d), Some((last + I).min(9 * F + F)));
    }

    #[test]
    fn a_paced_flood_gets_at_most_one_act_per_interval() {
        let d = Limits::default();
        let mut l = StateLimit::new();
        burst(&mut l, 0);
        let mut acts = 0;
        // A frontend writing every 300 ms (it rests just long enough): acts at its rests,
        // never closer than the interval.
        let mut now = 0;
        for _ in 0..100 {
            now += 300_000_000;
            let _ = l.admit(now, &d);
            while let Some(at) = l.wake_at(&d).filter(|_| l.is_pending()) {
                if at > now + 300_000_000 {
                    break;
                }
                l.take(at, &d);
                acts += 1;
            }
        }
        assert!(acts <= 30_000_000_000 / I, "{acts}");
    }

    #[test]
    fn a_steady_trickle_is_never_deferred() {
        let d = Limits::default();
        let mut l = StateLimit::new();
        for i in 0..1000 {
            assert!(l.admit(i * I, &d));
        }
        assert_eq!(l.end_episode(1000 * I), None);
    }
}
