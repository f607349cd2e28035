//! The generic shared request/response ring of `io/ring.h`, as pure index state machines.
//!
//! A shared ring page starts with a 64-byte [`SringHeader`] followed by `nr_ents` entries, each
//! the size of the C union of request and response ([`entry_size`]), `nr_ents` being the
//! largest power of two that fits ([`ring_size`]). Indices are free-running `u32`s, wrapping at
//! 2^32, masked with `nr_ents - 1` to find a slot ([`entry_offset`]).
//!
//! [`BackRing`] and [`FrontRing`] hold the private indices (`rsp_prod_pvt`/`req_cons` and
//! `req_prod_pvt`/`rsp_cons`) and reach the shared header only through [`SharedRingIndices`],
//! which the runtime implements with atomics on the mapped page and tests with [`LocalIndices`].
//! Indices written by the peer are checked, never trusted: a producer index that claims more
//! entries than can exist is a [`RingError`], not a loop bound.
//!
//! Copying entries in and out is the caller's job: copy each request out once
//! ([`crate::WireStruct::read_from`]) and validate the copy.

use core::cell::Cell;
use core::fmt;

/// A ring index (`RING_IDX`).
pub type RingIdx = u32;

/// Size of the shared ring header; entries start at this offset.
pub const SRING_HEADER_SIZE: usize = 64;

/// The shared header of every ring (the fixed part of `struct <name>_sring`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SringHeader {
    /// Requests produced by the frontend.
    pub req_prod: RingIdx,
    /// The backend wants a notification when `req_prod` passes this.
    pub req_event: RingIdx,
    /// Responses produced by the backend.
    pub rsp_prod: RingIdx,
    /// The frontend wants a notification when `rsp_prod` passes this.
    pub rsp_event: RingIdx,
    /// Protocol-private bytes (the `pvt` union; netif's `smartpoll_active`).
    pub pvt: [u8; 4],
    /// Padding to 64 bytes (`__pad`).
    pub pad: [u8; 44],
}

impl Default for SringHeader {
    /// The header as `SHARED_RING_INIT` leaves it: producers 0, events 1, padding zero.
    fn default() -> Self {
        Self {
            req_prod: 0,
            req_event: 1,
            rsp_prod: 0,
            rsp_event: 1,
            pvt: [0; 4],
            pad: [0; 44],
        }
    }
}

/// Size of one ring slot for request type `Req` and response type `Rsp`: the size of their C
/// union (the larger size, rounded up to the larger alignment).
pub const fn entry_size<Req, Rsp>() -> usize {
    let size = max(core::mem::size_of::<Req>(), core::mem::size_of::<Rsp>());
    let align = max(core::mem::align_of::<Req>(), core::mem::align_of::<Rsp>());
    size.div_ceil(align) * align
}

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// Number of entries of `entry_size` bytes that fit in a ring of `ring_bytes` bytes after the
/// header, rounded down to a power of two (`__CONST_RING_SIZE`). 0 if none fit.
pub const fn ring_size(ring_bytes: usize, entry_size: usize) -> u32 {
    if entry_size == 0 || ring_bytes <= SRING_HEADER_SIZE {
        return 0;
    }
    let n = (ring_bytes - SRING_HEADER_SIZE) / entry_size;
    if n == 0 {
        return 0;
    }
    let pow = 1usize << (usize::BITS - 1 - n.leading_zeros());
    if pow > u32::MAX as usize {
        1 << 31
    } else {
        pow as u32
    }
}

/// Number of entries of `entry_size` bytes in a ring of `pages` Xen pages (multi-page rings:
/// `ring-page-order`), rounded down to a power of two.
pub const fn ring_size_pages(pages: usize, entry_size: usize) -> u32 {
    ring_size(pages * crate::XEN_PAGE_SIZE, entry_size)
}

/// Byte offset in the shared ring of the slot for index `idx`:
/// `64 + (idx & (nr_ents - 1)) * entry_size`. `nr_ents` must be a power of two.
pub const fn entry_offset(idx: RingIdx, nr_ents: u32, entry_size: usize) -> usize {
    SRING_HEADER_SIZE + (idx & nr_ents.wrapping_sub(1)) as usize * entry_size
}

/// Access to the four indices in the shared header.
///
/// Memory ordering the runtime implementation must provide (mirroring `xen_rmb`/`xen_wmb`/
/// `xen_mb` of ring.h):
/// - `load_req_prod`/`load_rsp_prod` are *acquire* loads: entries read after them are not read
///   before them (the consumer sees the entries the producer published);
/// - `store_req_prod`/`store_rsp_prod` are *release* stores: entries written before them are
///   visible to the peer first;
/// - the event indices may be relaxed; [`full_barrier`](Self::full_barrier) (a sequentially
///   consistent fence) is called between a store and a load that must not be reordered;
/// - every access is a single, untorn 32-bit access (no caching: the peer changes them).
pub trait SharedRingIndices {
    /// Reads `req_prod` (acquire).
    fn load_req_prod(&self) -> RingIdx;
    /// Writes `req_prod` (release).
    fn store_req_prod(&self, value: RingIdx);
    /// Reads `req_event`.
    fn load_req_event(&self) -> RingIdx;
    /// Writes `req_event`.
    fn store_req_event(&self, value: RingIdx);
    /// Reads `rsp_prod` (acquire).
    fn load_rsp_prod(&self) -> RingIdx;
    /// Writes `rsp_prod` (release).
    fn store_rsp_prod(&self, value: RingIdx);
    /// Reads `rsp_event`.
    fn load_rsp_event(&self) -> RingIdx;
    /// Writes `rsp_event`.
    fn store_rsp_event(&self, value: RingIdx);
    /// A full memory barrier (`xen_mb`).
    fn full_barrier(&self);
}

/// Initialises a fresh shared header as the frontend does (`SHARED_RING_INIT`): producers 0,
/// events 1. The caller zeroes `pvt` and the padding.
pub fn init_shared<S: SharedRingIndices + ?Sized>(shared: &S) {
    shared.store_req_prod(0);
    shared.store_rsp_prod(0);
    shared.store_req_event(1);
    shared.store_rsp_event(1);
}

/// [`SharedRingIndices`] over plain cells: for host tests and in-process peers.
#[derive(Debug, Default)]
pub struct LocalIndices {
    /// `req_prod`.
    pub req_prod: Cell<RingIdx>,
    /// `req_event`.
    pub req_event: Cell<RingIdx>,
    /// `rsp_prod`.
    pub rsp_prod: Cell<RingIdx>,
    /// `rsp_event`.
    pub rsp_event: Cell<RingIdx>,
}

impl LocalIndices {
    /// Indices as [`init_shared`] leaves them.
    pub fn new() -> Self {
        let s = Self::default();
        init_shared(&s);
        s
    }
}

impl SharedRingIndices for LocalIndices {
    fn load_req_prod(&self) -> RingIdx {
        self.req_prod.get()
    }
    fn store_req_prod(&self, value: RingIdx) {
        self.req_prod.set(value)
    }
    fn load_req_event(&self) -> RingIdx {
        self.req_event.get()
    }
    fn store_req_event(&self, value: RingIdx) {
        self.req_event.set(value)
    }
    fn load_rsp_prod(&self) -> RingIdx {
        self.rsp_prod.get()
    }
    fn store_rsp_prod(&self, value: RingIdx) {
        self.rsp_prod.set(value)
    }
    fn load_rsp_event(&self) -> RingIdx {
        self.rsp_event.get()
    }
    fn store_rsp_event(&self, value: RingIdx) {
        self.rsp_event.set(value)
    }
    fn full_barrier(&self) {}
}

/// A ring operation that cannot proceed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The entry count is not a non-zero power of two.
    BadSize {
        /// The entry count given.
        nr_ents: u32,
    },
    /// The frontend's `req_prod` claims more requests than there are free slots (or moved
    /// backwards): the ring is corrupt or hostile.
    RequestOverflow {
        /// The `req_prod` read.
        req_prod: RingIdx,
        /// Our `req_cons`.
        req_cons: RingIdx,
        /// Our `rsp_prod_pvt`.
        rsp_prod_pvt: RingIdx,
        /// Ring size.
        nr_ents: u32,
    },
    /// The backend's `rsp_prod` claims more responses than requests outstanding (or moved
    /// backwards).
    ResponseOverflow {
        /// The `rsp_prod` read.
        rsp_prod: RingIdx,
        /// Our `rsp_cons`.
        rsp_cons: RingIdx,
        /// Our `req_prod_pvt`.
        req_prod_pvt: RingIdx,
    },
    /// No free slot for another request.
    Full,
    /// A response slot was asked for with no request left unanswered.
    NoOutstandingRequest,
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadSize { nr_ents } => {
                write!(f, "ring entry count {nr_ents} is not a power of two")
            }
            Self::RequestOverflow {
                req_prod,
                req_cons,
                rsp_prod_pvt,
                nr_ents,
            } => write!(
                f,
                "frontend req_prod {req_prod} is {} past req_cons {req_cons} with {} requests in \
                 flight on a {nr_ents}-entry ring",
                req_prod.wrapping_sub(req_cons),
                req_cons.wrapping_sub(rsp_prod_pvt)
            ),
            Self::ResponseOverflow {
                rsp_prod,
                rsp_cons,
                req_prod_pvt,
            } => write!(
                f,
                "backend rsp_prod {rsp_prod} is {} past rsp_cons {rsp_cons} with only {} requests \
                 outstanding",
                rsp_prod.wrapping_sub(rsp_cons),
                req_prod_pvt.wrapping_sub(rsp_cons)
            ),
            Self::Full => f.write_str("ring is full"),
            Self::NoOutstandingRequest => f.write_str("no request awaiting a response"),
        }
    }
}

fn check_size(nr_ents: u32) -> Result<u32, RingError> {
    if nr_ents.is_power_of_two() {
        Ok(nr_ents)
    } else {
        Err(RingError::BadSize { nr_ents })
    }
}

/// `(new - event) < (new - old)` in wrapping arithmetic: whether `event` lies in
/// `(old, new]`, i.e. the peer asked to be notified about one of the entries just published.
pub const fn need_notify(old: RingIdx, new: RingIdx, event: RingIdx) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

/// The backend's private ring state (`struct <name>_back_ring` minus the pointer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackRing {
    rsp_prod_pvt: RingIdx,
    req_cons: RingIdx,
    nr_ents: u32,
}

impl BackRing {
    /// A back ring over a fresh shared ring (`BACK_RING_INIT`).
    pub fn new(nr_ents: u32) -> Result<Self, RingError> {
        Self::attach(nr_ents, 0)
    }

    /// A back ring resuming at index `idx` (`BACK_RING_ATTACH`).
    pub fn attach(nr_ents: u32, idx: RingIdx) -> Result<Self, RingError> {
        Ok(Self {
            rsp_prod_pvt: idx,
            req_cons: idx,
            nr_ents: check_size(nr_ents)?,
        })
    }

    /// Number of slots (`RING_SIZE`).
    pub const fn size(&self) -> u32 {
        self.nr_ents
    }

    /// Index of the next request to consume.
    pub const fn req_cons(&self) -> RingIdx {
        self.req_cons
    }

    /// Index of the next response to produce (not yet pushed).
    pub const fn rsp_prod_pvt(&self) -> RingIdx {
        self.rsp_prod_pvt
    }

    /// Requests taken but not yet answered.
    pub const fn in_flight(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    /// Requests published by the frontend and not yet taken (`RING_HAS_UNCONSUMED_REQUESTS`).
    /// Fails if `req_prod` is more than the free slots ahead of `req_cons`
    /// (`RING_REQUEST_PROD_OVERFLOW`) or behind it.
    pub fn unconsumed_requests<S: SharedRingIndices + ?Sized>(
        &self,
        shared: &S,
    ) -> Result<u32, RingError> {
        let req_prod = shared.load_req_prod();
        let available = req_prod.wrapping_sub(self.req_cons);
        if available > self.nr_ents - self.in_flight() {
            return Err(RingError::RequestOverflow {
                req_prod,
                req_cons: self.req_cons,
                rsp_prod_pvt: self.rsp_prod_pvt,
                nr_ents: self.nr_ents,
            });
        }
        Ok(available)
    }

    /// Takes the next request: returns its index (copy the entry at [`entry_offset`] out once)
    /// and advances `req_cons`, or `None` if the frontend has published nothing new.
    pub fn next_request<S: SharedRingIndices + ?Sized>(
        &mut self,
        shared: &S,
    ) -> Result<Option<RingIdx>, RingError> {
        if self.unconsumed_requests(shared)? == 0 {
            return Ok(None);
        }
        // Cannot trip after the check above (RING_REQUEST_CONS_OVERFLOW).
        debug_assert!(self.in_flight() < self.nr_ents);
        let idx = self.req_cons;
        self.req_cons = idx.wrapping_add(1);
        Ok(Some(idx))
    }

    /// Reserves the slot for the next response: returns its index (write the whole entry
    /// there) and advances `rsp_prod_pvt`. Responses only ever reuse slots of taken requests.
    pub fn next_response_slot(&mut self) -> Result<RingIdx, RingError> {
        if self.in_flight() == 0 {
            return Err(RingError::NoOutstandingRequest);
        }
        let idx = self.rsp_prod_pvt;
        self.rsp_prod_pvt = idx.wrapping_add(1);
        Ok(idx)
    }

    /// Publishes the responses produced so far and returns whether the frontend must be
    /// notified (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    pub fn push_responses<S: SharedRingIndices + ?Sized>(&self, shared: &S) -> bool {
        let old = shared.load_rsp_prod();
        let new = self.rsp_prod_pvt;
        shared.store_rsp_prod(new);
        shared.full_barrier();
        need_notify(old, new, shared.load_rsp_event())
    }

    /// Before sleeping: whether more requests arrived, after asking the frontend to notify
    /// us about the next one (`RING_FINAL_CHECK_FOR_REQUESTS`).
    pub fn final_check_for_requests<S: SharedRingIndices + ?Sized>(
        &self,
        shared: &S,
    ) -> Result<bool, RingError> {
        if self.unconsumed_requests(shared)? != 0 {
            return Ok(true);
        }
        shared.store_req_event(self.req_cons.wrapping_add(1));
        shared.full_barrier();
        Ok(self.unconsumed_requests(shared)? != 0)
    }
}

/// The frontend's private ring state (`struct <name>_front_ring` minus the pointer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontRing {
    req_prod_pvt: RingIdx,
    rsp_cons: RingIdx,
    nr_ents: u32,
}

impl FrontRing {
    /// A front ring over a fresh shared ring (`FRONT_RING_INIT`); also call [`init_shared`].
    pub fn new(nr_ents: u32) -> Result<Self, RingError> {
        Self::attach(nr_ents, 0)
    }

    /// A front ring resuming at index `idx` (`FRONT_RING_ATTACH`).
    pub fn attach(nr_ents: u32, idx: RingIdx) -> Result<Self, RingError> {
        Ok(Self {
            req_prod_pvt: idx,
            rsp_cons: idx,
            nr_ents: check_size(nr_ents)?,
        })
    }

    /// Number of slots (`RING_SIZE`).
    pub const fn size(&self) -> u32 {
        self.nr_ents
    }

    /// Index of the next request to produce (not yet pushed).
    pub const fn req_prod_pvt(&self) -> RingIdx {
        self.req_prod_pvt
    }

    /// Index of the next response to consume.
    pub const fn rsp_cons(&self) -> RingIdx {
        self.rsp_cons
    }

    /// Free request slots (`RING_FREE_REQUESTS`).
    pub const fn free_requests(&self) -> u32 {
        self.nr_ents - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Whether no request slot is free (`RING_FULL`).
    pub const fn is_full(&self) -> bool {
        self.free_requests() == 0
    }

    /// Reserves the slot for the next request: returns its index (write the whole entry
    /// there) and advances `req_prod_pvt`.
    pub fn next_request_slot(&mut self) -> Result<RingIdx, RingError> {
        if self.is_full() {
            return Err(RingError::Full);
        }
        let idx = self.req_prod_pvt;
        self.req_prod_pvt = idx.wrapping_add(1);
        Ok(idx)
    }

    /// Publishes the requests produced so far and returns whether the backend must be
    /// notified (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`).
    pub fn push_requests<S: SharedRingIndices + ?Sized>(&self, shared: &S) -> bool {
        let old = shared.load_req_prod();
        let new = self.req_prod_pvt;
        shared.store_req_prod(new);
        shared.full_barrier();
        need_notify(old, new, shared.load_req_event())
    }

    /// Responses published by the backend and not yet taken
    /// (`RING_HAS_UNCONSUMED_RESPONSES`). Fails if `rsp_prod` runs past the requests we made
    /// (`RING_RESPONSE_PROD_OVERFLOW`) or moved backwards.
    pub fn unconsumed_responses<S: SharedRingIndices + ?Sized>(
        &self,
        shared: &S,
    ) -> Result<u32, RingError> {
        let rsp_prod = shared.load_rsp_prod();
        let available = rsp_prod.wrapping_sub(self.rsp_cons);
        if available > self.req_prod_pvt.wrapping_sub(self.rsp_cons) {
            return Err(RingError::ResponseOverflow {
                rsp_prod,
                rsp_cons: self.rsp_cons,
                req_prod_pvt: self.req_prod_pvt,
            });
        }
        Ok(available)
    }

    /// Takes the next response: returns its index and advances `rsp_cons`, or `None`.
    pub fn next_response<S: SharedRingIndices + ?Sized>(
        &mut self,
        shared: &S,
    ) -> Result<Option<RingIdx>, RingError> {
        if self.unconsumed_responses(shared)? == 0 {
            return Ok(None);
        }
        let idx = self.rsp_cons;
        self.rsp_cons = idx.wrapping_add(1);
        Ok(Some(idx))
    }

    /// Before sleeping: whether more responses arrived, after asking the backend to notify
    /// us about the next one (`RING_FINAL_CHECK_FOR_RESPONSES`).
    pub fn final_check_for_responses<S: SharedRingIndices + ?Sized>(
        &self,
        shared: &S,
    ) -> Result<bool, RingError> {
        if self.unconsumed_responses(shared)? != 0 {
            return Ok(true);
        }
        shared.store_rsp_event(self.rsp_cons.wrapping_add(1));
        shared.full_barrier();
        Ok(self.unconsumed_responses(shared)? != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry() {
        assert_eq!(core::mem::size_of::<SringHeader>(), SRING_HEADER_SIZE);
        assert_eq!(ring_size(4096, 12), 256); // netif tx: 336 fit
        assert_eq!(ring_size(4096, 112), 32); // blkif: 36 fit
        assert_eq!(ring_size(4096, 4032), 1);
        assert_eq!(ring_size(4096, 4033), 0);
        assert_eq!(ring_size(64, 8), 0);
        assert_eq!(ring_size(4096 * 4, 112), 128);
        assert_eq!(ring_size_pages(4, 112), 128);
        assert_eq!(entry_size::<u64, [u8; 9]>(), 16);
        assert_eq!(entry_size::<[u16; 3], u8>(), 6);
        assert_eq!(entry_offset(0, 32, 112), 64);
        assert_eq!(entry_offset(33, 32, 112), 64 + 112);
        assert_eq!(entry_offset(u32::MAX, 32, 112), 64 + 31 * 112);
    }

    #[test]
    fn notify_rule_matches_ring_h() {
        // Peer waits for entry 5 (event 5): publishing 3..=5 notifies, 3..=4 does not.
        assert!(need_notify(2, 5, 5));
        assert!(!need_notify(2, 4, 5));
        assert!(!need_notify(5, 5, 5), "nothing new published");
        // Wrapping: event just past u32::MAX.
        assert!(need_notify(u32::MAX - 1, 1, 0));
        assert!(!need_notify(u32::MAX - 1, u32::MAX, 0));
    }

    /// Backend and frontend talking through one set of indices.
    fn exchange(start: RingIdx, rounds: u32) {
        let shared = LocalIndices::new();
        shared.req_prod.set(start);
        shared.rsp_prod.set(start);
        let mut front = FrontRing::attach(8, start).unwrap();
        let mut back = BackRing::attach(8, start).unwrap();
        for round in 0..rounds {
            let n = round % 8 + 1;
            for _ in 0..n {
                front.next_request_slot().unwrap();
            }
            front.push_requests(&shared);
            let mut taken = 0;
            while let Some(_idx) = back.next_request(&shared).unwrap() {
                taken += 1;
            }
            assert_eq!(taken, n);
            for _ in 0..n {
                back.next_response_slot().unwrap();
            }
            assert_eq!(
                back.next_response_slot(),
                Err(RingError::NoOutstandingRequest)
            );
            back.push_responses(&shared);
            let mut got = 0;
            while front.next_response(&shared).unwrap().is_some() {
                got += 1;
            }
            assert_eq!(got, n);
            assert!(!back.final_check_for_requests(&shared).unwrap());
            assert!(!front.final_check_for_responses(&shared).unwrap());
        }
    }

    #[test]
    fn request_response_exchange() {
        exchange(0, 50);
    }

    #[test]
    fn exchange_across_u32_wrap() {
        exchange(u32::MAX - 20, 50);
    }

    #[test]
    fn front_ring_fills_up() {
        let mut front = FrontRing::new(4).unwrap();
        for _ in 0..4 {
            front.next_request_slot().unwrap();
        }
        assert!(front.is_full());
        assert_eq!(front.next_request_slot(), Err(RingError::Full));
    }

    #[test]
    fn bad_sizes_rejected() {
        assert_eq!(BackRing::new(0), Err(RingError::BadSize { nr_ents: 0 }));
        assert_eq!(FrontRing::new(24), Err(RingError::BadSize { nr_ents: 24 }));
    }

    #[test]
    fn hostile_req_prod_far_ahead() {
        let shared = LocalIndices::new();
        let mut back = BackRing::attach(32, u32::MAX - 3).unwrap();
        shared.req_prod.set((u32::MAX - 3).wrapping_add(33));
        let err = back.next_request(&shared).unwrap_err();
        assert!(matches!(
            err,
            RingError::RequestOverflow { nr_ents: 32, .. }
        ));
        // Exactly a full ring is fine.
        shared.req_prod.set((u32::MAX - 3).wrapping_add(32));
        assert_eq!(back.unconsumed_requests(&shared), Ok(32));
    }

    #[test]
    fn hostile_req_prod_counts_in_flight_requests() {
        let shared = LocalIndices::new();
        let mut back = BackRing::new(32).unwrap();
        shared.req_prod.set(10);
        for _ in 0..10 {
            back.next_request(&shared).unwrap().unwrap();
        }
        // 10 requests unanswered: only 22 slots can hold new requests.
        shared.req_prod.set(32);
        assert_eq!(back.unconsumed_requests(&shared), Ok(22));
        shared.req_prod.set(33);
        assert!(back.unconsumed_requests(&shared).is_err());
        // Answering frees slots.
        for _ in 0..10 {
            back.next_response_slot().unwrap();
        }
        assert_eq!(back.unconsumed_requests(&shared), Ok(23));
    }

    #[test]
    fn hostile_req_prod_moves_backwards() {
        let shared = LocalIndices::new();
        let mut back = BackRing::new(32).unwrap();
        shared.req_prod.set(5);
        while back.next_request(&shared).unwrap().is_some() {}
        shared.req_prod.set(4);
        assert!(back.unconsumed_requests(&shared).is_err());
        assert!(back.final_check_for_requests(&shared).is_err());
    }

    #[test]
    fn hostile_rsp_prod() {
        let shared = LocalIndices::new();
        let mut front = FrontRing::new(32).unwrap();
        for _ in 0..3 {
            front.next_request_slot().unwrap();
        }
        front.push_requests(&shared);
        shared.rsp_prod.set(4);
        assert!(matches!(
            front.next_response(&shared),
            Err(RingError::ResponseOverflow { .. })
        ));
        shared.rsp_prod.set(u32::MAX);
        assert!(front.unconsumed_responses(&shared).is_err());
        shared.rsp_prod.set(3);
        assert_eq!(front.unconsumed_responses(&shared), Ok(3));
    }

    #[test]
    fn push_notifies_only_when_peer_waits() {
        let shared = LocalIndices::new(); // req_event = 1: backend waits for the first request
        let mut front = FrontRing::new(8).unwrap();
        front.next_request_slot().unwrap();
        assert!(front.push_requests(&shared));
        // Backend has not re-armed: req_event still 1, new requests 2..=3 do not notify.
        front.next_request_slot().unwrap();
        front.next_request_slot().unwrap();
        assert!(!front.push_requests(&shared));

        let mut back = BackRing::new(8).unwrap();
        while back.next_request(&shared).unwrap().is_some() {}
        assert!(!back.final_check_for_requests(&shared).unwrap());
        assert_eq!(shared.req_event.get(), 4, "re-armed for the next request");
        front.next_request_slot().unwrap();
        assert!(front.push_requests(&shared));
        assert!(back.final_check_for_requests(&shared).unwrap());

        // Responses: rsp_event = 1, so the first push notifies.
        back.next_request(&shared).unwrap().unwrap();
        back.next_response_slot().unwrap();
        assert!(back.push_responses(&shared));
        back.next_response_slot().unwrap();
        assert!(!back.push_responses(&shared));
    }

    #[test]
    fn notify_near_u32_max() {
        let start = u32::MAX - 1;
        let shared = LocalIndices::new();
        shared.req_prod.set(start);
        shared.rsp_prod.set(start);
        shared.req_event.set(start.wrapping_add(1));
        shared.rsp_event.set(start.wrapping_add(1));
        let mut front = FrontRing::attach(4, start).unwrap();
        let mut back = BackRing::attach(4, start).unwrap();
        for _ in 0..3 {
            front.next_request_slot().unwrap();
        }
        assert!(
            front.push_requests(&shared),
            "event u32::MAX within (start, start+3]"
        );
        assert_eq!(shared.req_prod.get(), 1);
        assert_eq!(back.unconsumed_requests(&shared), Ok(3));
        while back.next_request(&shared).unwrap().is_some() {}
        assert_eq!(back.req_cons(), 1);
        assert!(!back.final_check_for_requests(&shared).unwrap());
        assert_eq!(shared.req_event.get(), 2);
        for _ in 0..3 {
            back.next_response_slot().unwrap();
        }
        assert!(
            back.push_responses(&shared),
            "rsp_event u32::MAX within (start, 1]"
        );
        assert_eq!(front.unconsumed_responses(&shared), Ok(3));
    }
}
