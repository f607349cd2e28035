//! Ends a testbed boot that stopped making progress, long before the boot's overall timeout.
//!
//! The overall timeout is the sum of every scenario's budget (hours for the whole suite), so
//! a testbed that wedges early (dom0's timers stopped, QEMU idle: seen once under nested TCG)
//! would hold CI that long. The agent prints `@@XDD scenario-start`/`scenario-end` lines;
//! the watchdog gives each phase of the boot its own limit: the first start within the boot
//! allowance, each scenario its hard limit (`Scenario::hard_limit_s`: everything the agent
//! waits for ends by then), the next start (or `done`) soon after an end.

use crate::results::Record;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Longest the agent takes from one scenario's end to the next one's start (reading and
/// parsing a file, opening xenstore) or to `done`.
pub const BETWEEN: Duration = Duration::from_secs(120);

/// What the boot is doing, as the agent's lines tell.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Xen and dom0 booting; no scenario started yet.
    Booting,
    /// This scenario started.
    In(String),
    /// A scenario ended; the next has not started.
    Between,
    /// The agent printed `done`.
    Done,
}

/// The limits of one boot and where it is.
pub struct Watchdog {
    boot: Duration,
    limits: BTreeMap<String, Duration>,
    phase: Phase,
    since: Instant,
}

impl Watchdog {
    /// A watchdog for a boot started at `start`: `boot` for the first scenario to start,
    /// then each scenario's `limits` entry (a scenario without one: `boot`).
    pub fn new(start: Instant, boot: Duration, limits: BTreeMap<String, Duration>) -> Watchdog {
        Watchdog {
            boot,
            limits,
            phase: Phase::Booting,
            since: start,
        }
    }

    /// Takes one serial line seen at `now`.
    pub fn see(&mut self, line: &str, now: Instant) {
        let Some(r) = Record::parse(line) else {
            return;
        };
        let phase = match r.kind.as_str() {
            "scenario-start" => Phase::In(r.get("name").to_string()),
            "scenario-end" => Phase::Between,
            "done" => Phase::Done,
            _ => return,
        };
        self.phase = phase;
        self.since = now;
    }

    /// Why the boot is overdue at `now`, if it is: the phase it is stuck in and its limit.
    pub fn overdue(&self, now: Instant) -> Option<String> {
        let (limit, what, since) = match &self.phase {
            Phase::Booting => (self.boot, "no scenario started", "QEMU started"),
            Phase::In(name) => (
                self.limits.get(name).copied().unwrap_or(self.boot),
                &*format!("scenario `{name}` has not ended"),
                "its start",
            ),
            Phase::Between => (
                BETWEEN,
                "the next scenario has not started",
                "the last one ended",
            ),
            Phase::Done => return None,
        };
        let waited = now.saturating_duration_since(self.since);
        (waited > limit).then(|| {
            format!(
                "watchdog: {what} {:.1} s after {since} (limit {} s): dom0 or the testbed \
                 stopped making progress",
                waited.as_secs_f64(),
                limit.as_secs()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dog(start: Instant) -> Watchdog {
        let limits = [("a".to_string(), Duration::from_secs(300))].into();
        Watchdog::new(start, Duration::from_secs(150), limits)
    }

    fn at(start: Instant, s: u64) -> Instant {
        start + Duration::from_secs(s)
    }

    #[test]
    fn each_phase_has_its_own_limit() {
        let t0 = Instant::now();
        let mut w = dog(t0);
        assert_eq!(w.overdue(at(t0, 150)), None);
        let late = w.overdue(at(t0, 151)).unwrap();
        assert!(late.contains("no scenario started"), "{late}");
        w.see("[  12.00] @@XDD scenario-start name=a", at(t0, 100));
        // The scenario's own limit counts from its start, not the boot's.
        assert_eq!(w.overdue(at(t0, 400)), None);
        let late = w.overdue(at(t0, 401)).unwrap();
        assert!(late.contains("scenario `a` has not ended"), "{late}");
        assert!(late.contains("limit 300 s"), "{late}");
        w.see("@@XDD scenario-end name=a status=fail ms=3", at(t0, 390));
        assert_eq!(w.overdue(at(t0, 390 + BETWEEN.as_secs())), None);
        let late = w.overdue(at(t0, 391 + BETWEEN.as_secs())).unwrap();
        assert!(late.contains("next scenario has not started"), "{late}");
        w.see("@@XDD done status=1", at(t0, 400));
        assert_eq!(w.overdue(at(t0, 100_000)), None);
    }

    #[test]
    fn other_lines_do_not_reset_the_clock() {
        let t0 = Instant::now();
        let mut w = dog(t0);
        w.see("@@XDD scenario-start name=b", at(t0, 10));
        w.see(
            "@@XDD check scenario=b name=x status=pass ms=1 detail=",
            at(t0, 150),
        );
        w.see("dom0 login: chatter", at(t0, 155));
        // `b` has no limit of its own: the boot allowance, from its start.
        assert!(w.overdue(at(t0, 161)).is_some());
    }
}
