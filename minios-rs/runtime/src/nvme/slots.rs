//! The commands in flight on one queue, by command id: which ids are free, when each command
//! times out, and which ones were given up on but not yet answered (their buffers must stay
//! reserved: the controller may still DMA into them). Pure bookkeeping, tested on the host.

use alloc::vec::Vec;

/// One command in flight.
#[derive(Clone, Debug)]
struct Entry<T> {
    req: T,
    deadline: u64,
    timed_out: bool,
}

/// How the controller's answer for a command id relates to what we had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<T> {
    /// A command in flight: its request gets the answer.
    Live(T),
    /// A command whose request already failed at its timeout: only its resources come back.
    Late(T),
}

/// Command ids `0..n` and what each one carries.
#[derive(Clone, Debug)]
pub struct Slots<T> {
    entries: Vec<Option<Entry<T>>>,
    free: Vec<u16>,
    timeout_ns: u64,
}

impl<T> Slots<T> {
    /// `n` command ids, each command given `timeout_ns` to be answered.
    pub fn new(n: u16, timeout_ns: u64) -> Self {
        Self {
            entries: (0..n).map(|_| None).collect(),
            free: (0..n).rev().collect(),
            timeout_ns,
        }
    }

    /// Ids free now.
    pub fn free(&self) -> usize {
        self.free.len()
    }

    /// Ids in all.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no ids at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes a free id for `req`, sent at `now_ns`; `None` when all are in use.
    pub fn take(&mut self, now_ns: u64, req: T) -> Option<u16> {
        let cid = self.free.pop()?;
        self.entries[usize::from(cid)] = Some(Entry {
            req,
            deadline: now_ns.saturating_add(self.timeout_ns),
            timed_out: false,
        });
        Some(cid)
    }

    /// Gives back an id whose command was never sent to the controller.
    pub fn abandon(&mut self, cid: u16) -> Option<T> {
        let e = self.entries.get_mut(usize::from(cid))?.take()?;
        self.free.push(cid);
        Some(e.req)
    }

    /// The controller answered `cid`: frees it. `None` when `cid` is not in flight (the
    /// controller broke its protocol).
    pub fn answer(&mut self, cid: u16) -> Option<Answer<T>> {
        let e = self.entries.get_mut(usize::from(cid))?.take()?;
        self.free.push(cid);
        Some(if e.timed_out {
            Answer::Late(e.req)
        } else {
            Answer::Live(e.req)
        })
    }

    /// The request of the command `cid`, if in flight.
    pub fn get(&self, cid: u16) -> Option<&T> {
        self.entries.get(usize::from(cid))?.as_ref().map(|e| &e.req)
    }

    /// Gives up on every command whose deadline is at or before `now_ns` (each once):
    /// `each` gets its id and request; returns how many. Their ids stay taken until answered.
    pub fn expire(&mut self, now_ns: u64, mut each: impl FnMut(u16, &T)) -> usize {
        let mut n = 0;
        for (cid, e) in self.entries.iter_mut().enumerate() {
            if let Some(e) = e.as_mut().filter(|e| !e.timed_out && e.deadline <= now_ns) {
                e.timed_out = true;
                n += 1;
                each(cid as u16, &e.req);
            }
        }
        n
    }

    /// The earliest deadline of a command not yet given up on.
    pub fn next_deadline(&self) -> Option<u64> {
        self.entries
            .iter()
            .flatten()
            .filter(|e| !e.timed_out)
            .map(|e| e.deadline)
            .min()
    }

    /// The requests of the commands given up on that the controller has not answered yet
    /// (what they hold stays reserved until it does).
    pub fn unanswered(&self) -> impl Iterator<Item = &T> {
        self.entries
            .iter()
            .flatten()
            .filter(|e| e.timed_out)
            .map(|e| &e.req)
    }

    /// Whether every id is taken by a command given up on (nothing can be sent any more).
    pub fn all_unanswered(&self) -> bool {
        !self.entries.is_empty()
            && self
                .entries
                .iter()
                .all(|e| e.as_ref().is_some_and(|e| e.timed_out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_taken_until_none_is_left_and_come_back_when_answered() {
        let mut s = Slots::new(3, 100);
        let ids: Vec<u16> = (0..3).map(|i| s.take(0, i).unwrap()).collect();
        assert_eq!(ids, [0, 1, 2]);
        assert_eq!((s.free(), s.take(0, 9)), (0, None));
        assert_eq!(s.answer(1), Some(Answer::Live(1)));
        assert_eq!(s.answer(1), None, "answered twice");
        assert_eq!(s.answer(7), None, "an id that does not exist");
        assert_eq!(s.take(0, 5), Some(1));
        assert_eq!(s.get(1), Some(&5));
        assert_eq!(s.abandon(1), Some(5));
        assert_eq!(s.get(1), None);
        assert_eq!(s.free(), 1);
    }

    #[test]
    fn commands_time_out_once_and_keep_their_id_until_the_late_answer() {
        let mut s = Slots::new(2, 100);
        let a = s.take(0, "a").unwrap();
        let b = s.take(50, "b").unwrap();
        assert_eq!(s.next_deadline(), Some(100));
        let mut gone = Vec::new();
        assert_eq!(s.expire(99, |cid, r| gone.push((cid, *r))), 0);
        assert_eq!(s.expire(100, |cid, r| gone.push((cid, *r))), 1);
        assert_eq!(s.expire(120, |cid, r| gone.push((cid, *r))), 0, "once");
        assert_eq!(gone, [(a, "a")]);
        assert_eq!(s.next_deadline(), Some(150));
        assert_eq!(s.free(), 0, "the id stays reserved");
        assert_eq!(
            s.unanswered().collect::<Vec<_>>(),
            [&"a"],
            "b still has time"
        );
        assert!(!s.all_unanswered());
        assert_eq!(s.expire(150, |_, _| {}), 1);
        assert!(s.all_unanswered());
        assert_eq!(s.unanswered().count(), 2);
        assert_eq!(s.next_deadline(), None);
        assert_eq!(s.answer(a), Some(Answer::Late("a")));
        assert!(!s.all_unanswered());
        assert_eq!(s.answer(b), Some(Answer::Late("b")));
        assert_eq!(s.free(), 2);
        assert_eq!(s.unanswered().count(), 0, "answered late: no longer held");
    }
}
