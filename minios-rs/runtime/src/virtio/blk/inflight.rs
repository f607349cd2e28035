//! The requests a virtio-blk device holds, by descriptor token (the head of the chain that
//! virtio-drivers' queue returned when the request was added): each request's slot and data
//! pages, when it times out, and which ones were given up on but not yet returned by the
//! device. Pure bookkeeping, tested on the host.
//!
//! A request given up on ([`Inflight::expire`]) keeps its slot and pages here, and its
//! descriptors in the queue, until the device returns its chain: the device may still write
//! into them. Its token cannot be handed out again meanwhile (the queue hands out only free
//! descriptors, and [`Inflight::sent`] refuses a token it holds), so the device's late answer
//! finds the request it belongs to, marked late ([`Answer::Late`]), and completes nothing
//! else.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use virtio_drivers::transport::DeviceStatus;

/// What one request holds while the device has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// Its slot (header, discard range, status byte).
    pub slot: usize,
    /// Its data pages, in order.
    pub pages: Vec<u16>,
    /// Descriptors its chain takes in the queue.
    pub descs: usize,
}

/// One request with the device.
#[derive(Clone, Debug)]
struct Entry<T> {
    req: T,
    held: Held,
    deadline: u64,
    timed_out: bool,
}

/// How the device's answer for a token relates to what we had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<T> {
    /// A request in flight: it gets the answer. Its slot and pages go back with
    /// [`Inflight::release`] once its data was taken.
    Live(T, Held),
    /// A request that already failed at its timeout: nothing is reported, only its slot and
    /// pages come back ([`Inflight::release`]).
    Late(T, Held),
}

/// The requests with the device, the free slots and the free data pages.
#[derive(Clone, Debug)]
pub struct Inflight<T> {
    by_token: Vec<Option<Entry<T>>>,
    free_slots: Vec<usize>,
    free_pages: Vec<u16>,
    slots: usize,
    pages: usize,
    timeout_ns: u64,
    timeouts: u64,
}

impl<T> Inflight<T> {
    /// A queue of `descs` descriptors (tokens `0..descs`), `slots` request slots and `pages`
    /// data pages; each request is given `timeout_ns` to be answered.
    pub fn new(descs: u16, slots: usize, pages: u16, timeout_ns: u64) -> Self {
        Self {
            by_token: (0..descs).map(|_| None).collect(),
            free_slots: (0..slots).rev().collect(),
            free_pages: (0..pages).rev().collect(),
            slots,
            pages: usize::from(pages),
            timeout_ns,
            timeouts: 0,
        }
    }

    /// Slots free now.
    pub fn free_slots(&self) -> usize {
        self.free_slots.len()
    }

    /// Data pages free now.
    pub fn free_pages(&self) -> usize {
        self.free_pages.len()
    }

    /// Takes a slot and `pages` data pages for a request of `descs` descriptors about to be
    /// queued; `None` (nothing taken) when there are not enough.
    pub fn reserve(&mut self, pages: usize, descs: usize) -> Option<Held> {
        if self.free_slots.is_empty() || self.free_pages.len() < pages {
            return None;
        }
        let slot = self.free_slots.pop()?;
        let at = self.free_pages.len() - pages;
        let mut taken = self.free_pages.split_off(at);
        taken.reverse();
        Some(Held {
            slot,
            pages: taken,
            descs,
        })
    }

    /// Gives back what a request held: one never given to the device, or one the device
    /// returned ([`Inflight::answer`]) once its data was taken.
    pub fn release(&mut self, held: Held) {
        self.free_slots.push(held.slot);
        self.free_pages.extend(held.pages.into_iter().rev());
    }

    /// The device was given `req`, holding `held`, under `token` at `now_ns`. An error when
    /// the token is out of range or already held (the queue handed it out twice): the device
    /// must then be failed, and `held` stays taken for good (the device may use it).
    pub fn sent(&mut self, token: u16, now_ns: u64, req: T, held: Held) -> Result<(), String> {
        match self.by_token.get_mut(usize::from(token)) {
            Some(entry @ None) => {
                *entry = Some(Entry {
                    req,
                    held,
                    deadline: now_ns.saturating_add(self.timeout_ns),
                    timed_out: false,
                });
                Ok(())
            }
            _ => Err(format!("request token {token} handed out twice")),
        }
    }

    /// The device returned `token`: the request leaves the table, live or late; its slot and
    /// pages stay taken until [`Inflight::release`]. An error when no request has that token
    /// (the device broke its protocol).
    pub fn answer(&mut self, token: u16) -> Result<Answer<T>, String> {
        let e = self
            .by_token
            .get_mut(usize::from(token))
            .and_then(Option::take)
            .ok_or_else(|| format!("device returned request token {token} it was never given"))?;
        Ok(if e.timed_out {
            Answer::Late(e.req, e.held)
        } else {
            Answer::Live(e.req, e.held)
        })
    }

    /// Gives up on every request whose deadline is at or before `now_ns` (each once): `each`
    /// gets its token, its request and the count of timeouts so far (this one included);
    /// returns how many. They keep their token, slot and pages until the device answers.
    pub fn expire(&mut self, now_ns: u64, mut each: impl FnMut(u16, &T, u64)) -> usize {
        let mut n = 0;
        for (token, e) in self.by_token.iter_mut().enumerate() {
            if let Some(e) = e.as_mut().filter(|e| !e.timed_out && e.deadline <= now_ns) {
                e.timed_out = true;
                self.timeouts += 1;
                n += 1;
                each(token as u16, &e.req, self.timeouts);
            }
        }
        n
    }

    /// The earliest deadline of a request not yet given up on.
    pub fn next_deadline(&self) -> Option<u64> {
        self.by_token
            .iter()
            .flatten()
            .filter(|e| !e.timed_out)
            .map(|e| e.deadline)
            .min()
    }

    /// Requests given up on so far.
    pub fn timeouts(&self) -> u64 {
        self.timeouts
    }

    /// Requests given up on that the device has not returned yet.
    pub fn unanswered(&self) -> usize {
        self.by_token
            .iter()
            .flatten()
            .filter(|e| e.timed_out)
            .count()
    }

    /// Why the device can take no more work, if requests given up on hold every slot, or so
    /// many descriptors or data pages that a request of `max_pages` pages (and `max_pages +
    /// 2` descriptors) could never be queued again: only the device's late answers would free
    /// them, and such a request would wait for them forever.
    pub fn wedged(&self, max_pages: usize) -> Option<String> {
        let (mut slots, mut pages, mut descs) = (0, 0, 0);
        for e in self.by_token.iter().flatten().filter(|e| e.timed_out) {
            slots += 1;
            pages += e.held.pages.len();
            descs += e.held.descs;
        }
        let secs = self.timeout_ns / 1_000_000_000;
        if slots == 0 {
            None
        } else if slots >= self.slots {
            Some(format!(
                "all {} requests unanswered after {secs} s: the device stopped answering",
                self.slots
            ))
        } else if self.pages.saturating_sub(pages) < max_pages
            || self.by_token.len().saturating_sub(descs) < max_pages + 2
        {
            Some(format!(
                "{slots} requests unanswered after {secs} s hold {descs} of {} descriptors and {pages} of {} data pages: a request of {max_pages} pages can no longer be queued",
                self.by_token.len(),
                self.pages
            ))
        } else {
            None
        }
    }
}

/// Why a device whose status register reads `status` is of no more use, if it is not:
/// all ones (gone; the transport keeps only the defined bits), `DEVICE_NEEDS_RESET`, or no
/// longer `DRIVER_OK` (reset under us).
pub fn status_failure(status: DeviceStatus) -> Option<String> {
    if status == DeviceStatus::all() {
        Some(String::from("device status reads all ones (gone)"))
    } else if status.contains(DeviceStatus::DEVICE_NEEDS_RESET) {
        Some(format!(
            "device needs a reset (DEVICE_NEEDS_RESET, status {:#x})",
            status.bits()
        ))
    } else if !status.contains(DeviceStatus::DRIVER_OK) {
        Some(format!(
            "device no longer running (status {:#x}, no DRIVER_OK)",
            status.bits()
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const T: u64 = 100;

    /// Sends `req` (a request of `pages` pages) under `token` at `now`.
    fn send(f: &mut Inflight<&'static str>, token: u16, now: u64, req: &'static str, pages: usize) {
        let held = f.reserve(pages, 2 + pages).expect("room");
        f.sent(token, now, req, held).expect("token free");
    }

    #[test]
    fn an_unanswered_request_times_out_at_its_deadline_not_before_and_once() {
        let mut f = Inflight::new(8, 4, 8, T);
        send(&mut f, 3, 10, "a", 1);
        assert_eq!(f.next_deadline(), Some(10 + T));
        let mut gone = vec![];
        assert_eq!(f.expire(10 + T - 1, |t, r, n| gone.push((t, *r, n))), 0);
        assert!(gone.is_empty(), "not before its deadline");
        assert_eq!(f.expire(10 + T, |t, r, n| gone.push((t, *r, n))), 1);
        assert_eq!(gone, [(3, "a", 1)]);
        assert_eq!(f.expire(10 + 5 * T, |t, r, n| gone.push((t, *r, n))), 0);
        assert_eq!(gone.len(), 1, "reported once");
        assert_eq!((f.timeouts(), f.unanswered()), (1, 1));
        assert_eq!(f.next_deadline(), None);
    }

    #[test]
    fn a_timed_out_request_keeps_its_slot_until_the_late_answer_which_completes_nothing() {
        let mut f = Inflight::new(8, 2, 4, T);
        let held = f.reserve(3, 5).unwrap();
        let (slot, pages) = (held.slot, held.pages.clone());
        f.sent(0, 0, "stuck", held).unwrap();
        assert_eq!(f.expire(T, |_, _, _| {}), 1);
        assert_eq!((f.free_slots(), f.free_pages()), (1, 1), "still reserved");
        // The only slot left is another one; the pages left are not the stuck ones.
        let other = f.reserve(1, 3).unwrap();
        assert_ne!(other.slot, slot);
        assert!(!pages.contains(&other.pages[0]));
        assert_eq!(f.reserve(0, 2), None, "no slot left");
        // The token is not handed out again while the device holds it.
        let refused = Held {
            slot: other.slot,
            pages: other.pages.clone(),
            descs: 3,
        };
        assert!(f.sent(0, T, "new", refused).is_err());
        f.sent(5, T, "new", other).unwrap();
        // The late answer: the stuck request, marked late, with what it held.
        let late = f.answer(0).unwrap();
        let Answer::Late(req, held) = late else {
            panic!("late answer reported as live: {late:?}");
        };
        assert_eq!((req, held.slot, &held.pages), ("stuck", slot, &pages));
        f.release(held);
        assert_eq!((f.free_slots(), f.free_pages()), (1, 3), "freed now");
        assert_eq!(f.unanswered(), 0);
        assert!(f.answer(0).is_err(), "answered twice");
        assert!(matches!(f.answer(5), Ok(Answer::Live("new", _))));
    }

    #[test]
    fn other_requests_keep_completing_while_one_is_unanswered() {
        let mut f = Inflight::new(16, 8, 16, T);
        send(&mut f, 0, 0, "stuck", 2);
        send(&mut f, 4, T / 2, "b", 1);
        assert_eq!(f.expire(T, |_, _, _| {}), 1);
        assert_eq!(
            f.next_deadline(),
            Some(T / 2 + T),
            "b keeps its own deadline"
        );
        // b (sent later) is answered in time; new requests come and go.
        assert!(matches!(f.answer(4), Ok(Answer::Live("b", _))));
        for i in 0..20u16 {
            let token = 1 + i % 3;
            send(&mut f, token, T + u64::from(i), "c", 1);
            assert_eq!(f.expire(T + u64::from(i) + 1, |_, _, _| {}), 0);
            match f.answer(token) {
                Ok(Answer::Live("c", held)) => f.release(held),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(f.wedged(4), None);
        assert_eq!((f.timeouts(), f.unanswered()), (1, 1));
    }

    #[test]
    fn every_slot_unanswered_wedges_the_device_and_not_before() {
        let mut f = Inflight::new(128, 4, 256, 30_000_000_000);
        for t in 0..4 {
            send(&mut f, t * 2, u64::from(t), "flush", 0);
        }
        assert_eq!(f.expire(30_000_000_002, |_, _, _| {}), 3);
        assert_eq!(f.wedged(32), None, "one request still has time");
        assert_eq!(f.expire(30_000_000_003, |_, _, _| {}), 1);
        let why = f.wedged(32).expect("wedged");
        assert!(
            why.contains("all 4 requests unanswered after 30 s"),
            "{why}"
        );
        // A late answer frees a slot: no longer wedged.
        let Ok(Answer::Late(_, held)) = f.answer(0) else {
            panic!()
        };
        f.release(held);
        assert_eq!(f.wedged(32), None);
    }

    #[test]
    fn unanswered_requests_holding_the_room_of_a_largest_request_wedge_the_device() {
        // 128 descriptors: three stuck 32-page requests hold 102, leaving 26 < 34.
        let mut f = Inflight::new(128, 64, 256, T);
        for t in 0..3 {
            send(&mut f, t * 34, 0, "read", 32);
        }
        send(&mut f, 110, T, "small", 1);
        assert_eq!(f.expire(T, |_, _, _| {}), 3);
        let why = f.wedged(32).expect("wedged");
        assert!(why.contains("hold 102 of 128 descriptors"), "{why}");
        // Smaller requests would still fit: with 8-page requests it is not wedged.
        assert_eq!(f.wedged(8), None);
    }

    #[test]
    fn a_gone_reset_or_broken_device_is_told_apart_from_a_running_one() {
        let running = DeviceStatus::ACKNOWLEDGE
            | DeviceStatus::DRIVER
            | DeviceStatus::FEATURES_OK
            | DeviceStatus::DRIVER_OK;
        assert_eq!(status_failure(running), None);
        let gone = status_failure(DeviceStatus::from_bits_truncate(0xff)).unwrap();
        assert!(gone.contains("gone"), "{gone}");
        let reset = status_failure(running | DeviceStatus::DEVICE_NEEDS_RESET).unwrap();
        assert!(reset.contains("DEVICE_NEEDS_RESET"), "{reset}");
        let stopped = status_failure(DeviceStatus::empty()).unwrap();
        assert!(stopped.contains("no DRIVER_OK"), "{stopped}");
    }
}
