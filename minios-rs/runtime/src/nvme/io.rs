//! The I/O queue pairs as a whole: how many we use, which interrupt vector each completion
//! queue raises, bringing them up (a later pair that fails leaves fewer, not none), and
//! whose command a completion answers. Pure logic, tested on the host.
//!
//! Pair `k` (1-based, the queue id on the controller) is submission queue `k` completing on
//! completion queue `k` alone, so a completion read from completion queue `k` must name
//! submission queue `k` and a command id in flight there.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::cmd::Completion;
use super::slots::{Answer, Slots};

/// Most I/O queue pairs we create. A guest device connects with at most `blkback.queues`
/// rings (4 by default, `multi-queue-max-queues`), and independent rings and guests are what
/// the pairs keep apart; on a one-vCPU domain more pairs would add no parallelism, only
/// memory (each pair is a submission page, a completion page and 8 pages of command slots)
/// and doorbells.
pub const MAX_IO_QUEUES: u16 = 4;

/// The I/O queue pairs the controller granted, from the result of Set Features Number of
/// Queues (NSQA in bits 15:0, NCQA in bits 31:16, both 0-based): the fewer of the two, at
/// most `max`, at least 1.
pub fn granted(result: u32, max: u16) -> u16 {
    let sq = (result & 0xffff) as u16;
    let cq = (result >> 16) as u16;
    sq.min(cq).saturating_add(1).min(max).max(1)
}

/// The interrupt vector completion queue `qid` (1-based) raises when `queues` pairs share
/// the function's `vectors` vectors: its own (`qid - 1`) when each pair can have one, else
/// vector 0 for all (MSI, INTx, or a short MSI-X table: every completion queue is then
/// looked at on every interrupt anyway).
pub fn cq_vector(qid: u16, queues: u16, vectors: usize) -> u16 {
    if qid >= 1 && usize::from(queues) <= vectors {
        qid - 1
    } else {
        0
    }
}

/// Brings up pairs `1..=want` with `create(qid)`, in order. Pair 1 must come up (its error
/// is returned); the first later pair that fails ends the list there, and `degraded` gets
/// its id and error (the caller logs it once): the pairs before it are used.
pub fn create_all<Q, E>(
    want: u16,
    mut create: impl FnMut(u16) -> Result<Q, E>,
    degraded: impl FnOnce(u16, E),
) -> Result<Vec<Q>, E> {
    let mut queues = Vec::with_capacity(usize::from(want.max(1)));
    for qid in 1..=want.max(1) {
        match create(qid) {
            Ok(q) => queues.push(q),
            Err(e) if qid == 1 => return Err(e),
            Err(e) => {
                degraded(qid, e);
                break;
            }
        }
    }
    Ok(queues)
}

/// What completion `c`, read from the completion queue of pair `qid`, answers among that
/// pair's commands in flight (`slots`). A completion naming another submission queue, or a
/// command id not in flight on this one, breaks the protocol: `Err` says how (nothing is
/// freed).
pub fn answer<T>(qid: u16, c: &Completion, slots: &mut Slots<T>) -> Result<Answer<T>, String> {
    if c.sq_id != qid {
        return Err(format!(
            "completion queue {qid} posted command {} of submission queue {}",
            c.cid, c.sq_id
        ));
    }
    slots.answer(c.cid).ok_or_else(|| {
        format!(
            "completion for command {} of queue {qid} that is not in flight",
            c.cid
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn completion(sq_id: u16, cid: u16) -> Completion {
        Completion {
            result: 0,
            sq_head: 0,
            sq_id,
            cid,
            phase: true,
            status: 0,
        }
    }

    #[test]
    fn the_pairs_granted_are_the_fewer_of_both_kinds_capped() {
        // 0-based counts: 64 submission and 64 completion queues granted.
        assert_eq!(granted(63 | (63 << 16), MAX_IO_QUEUES), 4);
        assert_eq!(granted(1 | (5 << 16), MAX_IO_QUEUES), 2);
        assert_eq!(granted(7 | (2 << 16), MAX_IO_QUEUES), 3);
        assert_eq!(granted(0, MAX_IO_QUEUES), 1);
        assert_eq!(granted(u32::MAX, MAX_IO_QUEUES), 4, "no overflow");
        assert_eq!(granted(63 | (63 << 16), 0), 1);
    }

    #[test]
    fn each_completion_queue_has_its_vector_when_there_are_enough() {
        let own: Vec<u16> = (1..=4).map(|q| cq_vector(q, 4, 4)).collect();
        assert_eq!(own, [0, 1, 2, 3]);
        let more: Vec<u16> = (1..=4).map(|q| cq_vector(q, 4, 65)).collect();
        assert_eq!(more, [0, 1, 2, 3]);
        // MSI or INTx (one vector), or an MSI-X table shorter than the pairs: all on 0.
        let shared: Vec<u16> = (1..=4).map(|q| cq_vector(q, 4, 1)).collect();
        assert_eq!(shared, [0, 0, 0, 0]);
        let short: Vec<u16> = (1..=4).map(|q| cq_vector(q, 4, 3)).collect();
        assert_eq!(short, [0, 0, 0, 0]);
        assert_eq!(cq_vector(1, 1, 1), 0);
    }

    #[test]
    fn a_later_pair_that_fails_leaves_fewer_pairs_and_the_first_must_come_up() {
        let mut tried = Vec::new();
        let mut gave_up = None;
        let qs = create_all(
            4,
            |qid| {
                tried.push(qid);
                if qid == 3 {
                    Err("create SQ 3 refused")
                } else {
                    Ok(qid * 10)
                }
            },
            |qid, e| gave_up = Some((qid, e)),
        );
        assert_eq!(qs, Ok(vec![10, 20]));
        assert_eq!(tried, [1, 2, 3], "nothing tried after the failure");
        assert_eq!(gave_up, Some((3, "create SQ 3 refused")));

        let mut called = false;
        let all = create_all(4, Ok::<u16, &str>, |_, _| called = true);
        assert_eq!(all, Ok(vec![1, 2, 3, 4]));
        assert!(!called);

        let mut called = false;
        let none = create_all(4, |_| Err::<u16, _>("no memory"), |_, _| called = true);
        assert_eq!(
            none,
            Err("no memory"),
            "without pair 1 the controller is unusable"
        );
        assert!(!called);
    }

    #[test]
    fn a_completion_answers_only_a_command_in_flight_on_its_own_pair() {
        let mut q1: Slots<&str> = Slots::new(4, 100);
        let mut q2: Slots<&str> = Slots::new(4, 100);
        let a = q1.take(0, "a on 1").unwrap();
        let b = q2.take(0, "b on 2").unwrap();
        assert_eq!((a, b), (0, 0), "each pair has its own command ids");
        // Command 0 is in flight on pair 1, but completion queue 2 cannot answer it.
        assert!(answer(2, &completion(1, a), &mut q2).is_err());
        assert_eq!(q2.get(b), Some(&"b on 2"), "nothing freed");
        assert_eq!(q1.get(a), Some(&"a on 1"));
        // Completion queue 2 naming its own queue but an id not in flight there.
        assert!(answer(2, &completion(2, 3), &mut q2).is_err());
        assert_eq!(
            answer(1, &completion(1, a), &mut q1),
            Ok(Answer::Live("a on 1"))
        );
        assert_eq!(
            answer(2, &completion(2, b), &mut q2),
            Ok(Answer::Live("b on 2"))
        );
        assert!(
            answer(2, &completion(2, b), &mut q2).is_err(),
            "answered twice"
        );
    }
}
