//! The event log: every xenstore change under /local/domain seen by a watch, stamped with
//! dom0's monotonic clock, plus the agent's own events (`xl create` start and end).

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A xenstore node changed: path and value (None when it was removed).
    Node { path: String, value: Option<String> },
    /// `xl create` of a domain started.
    CreateStart(String),
    /// `xl create` of a domain returned.
    CreateDone(String),
}

/// A timestamped event.
#[derive(Debug, Clone)]
pub struct Event {
    /// When it was seen.
    pub at: Instant,
    /// What happened.
    pub kind: Kind,
}

/// Shared, append-only log with a condition variable for waiters.
#[derive(Default)]
pub struct Log {
    events: Mutex<Vec<Event>>,
    changed: Condvar,
}

impl Log {
    /// An empty log.
    pub fn new() -> Log {
        Log::default()
    }

    /// Appends an event stamped now.
    pub fn push(&self, kind: Kind) {
        self.push_at(Instant::now(), kind)
    }

    /// Appends an event with a given time.
    pub fn push_at(&self, at: Instant, kind: Kind) {
        let mut ev = self.events.lock().unwrap_or_else(|e| e.into_inner());
        ev.push(Event { at, kind });
        self.changed.notify_all();
    }

    /// A copy of every event so far.
    pub fn snapshot(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Number of events so far.
    pub fn len(&self) -> usize {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Blocks until more than `seen` events exist or `timeout` passes.
    pub fn wait_beyond(&self, seen: usize, timeout: Duration) {
        let ev = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if ev.len() > seen {
            return;
        }
        let _ = self.changed.wait_timeout(ev, timeout);
    }

    /// The first event at or after `after` for which `pred` holds.
    pub fn first_after(&self, after: Instant, pred: impl Fn(&Kind) -> bool) -> Option<Instant> {
        let ev = self.events.lock().unwrap_or_else(|e| e.into_inner());
        ev.iter()
            .find(|e| e.at >= after && pred(&e.kind))
            .map(|e| e.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_first_matching_event_after_a_time() {
        let log = Log::new();
        let t0 = Instant::now();
        log.push_at(t0, Kind::CreateStart("g".into()));
        let t1 = t0 + Duration::from_millis(5);
        log.push_at(
            t1,
            Kind::Node {
                path: "/a".into(),
                value: Some("4".into()),
            },
        );
        let t2 = t0 + Duration::from_millis(9);
        log.push_at(
            t2,
            Kind::Node {
                path: "/a".into(),
                value: Some("4".into()),
            },
        );
        let is_a4 =
            |k: &Kind| matches!(k, Kind::Node { path, value: Some(v) } if path == "/a" && v == "4");
        assert_eq!(log.first_after(t0, is_a4), Some(t1));
        assert_eq!(
            log.first_after(t1 + Duration::from_millis(1), is_a4),
            Some(t2)
        );
        assert_eq!(log.first_after(t2 + Duration::from_millis(1), is_a4), None);
    }
}
