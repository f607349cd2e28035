//! Shared rings over [`SharedMem`]: the one place backends touch ring memory.
//!
//! [`SharedRing`] puts `xen_abi::ring`'s index logic on a mapped (or granted) page: it
//! implements [`SharedRingIndices`] with atomic acquire/release accesses and a sequentially
//! consistent fence for `xen_mb`, and copies whole entries in and out. [`BackChannel`] and
//! [`FrontChannel`] add the typed request/response flow: a request is copied out of shared
//! memory exactly once and decoded from the private copy (XSA-155); a response is encoded
//! into a zeroed slot-sized buffer and written whole, padding included (XSA-216); producer
//! indices are checked against overflow before anything is consumed.
//!
//! The same code runs over a real grant mapping and over the `host` platform's in-memory pages.

use core::fmt;
use core::marker::PhantomData;
use core::sync::atomic::{fence, Ordering};

use xen_abi::ring::{
    entry_offset, entry_size, ring_size, BackRing, FrontRing, RingError, RingIdx,
    SharedRingIndices, SRING_HEADER_SIZE,
};
use xen_abi::{ShortBuffer, WireStruct};

use crate::platform::{MemError, SharedMem};

/// Largest ring entry supported (usbif's 148-byte URB request is the largest PV entry).
pub const MAX_ENTRY_SIZE: usize = 512;

const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;

/// A ring operation that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingAccessError {
    /// The peer's indices are inconsistent (overflow, moved backwards) or the ring is full.
    Ring(RingError),
    /// Shared memory refused the access (e.g. writing a read-only mapping).
    Mem(MemError),
    /// An entry image did not fit its buffer.
    Wire(ShortBuffer),
    /// The region is too small for a header plus one entry, or entries exceed
    /// [`MAX_ENTRY_SIZE`].
    BadGeometry {
        /// Region size in bytes.
        region: usize,
        /// Entry size in bytes.
        entry: usize,
    },
}

impl fmt::Display for RingAccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingAccessError::Ring(e) => write!(f, "{e}"),
            RingAccessError::Mem(e) => write!(f, "{e}"),
            RingAccessError::Wire(e) => write!(f, "{e}"),
            RingAccessError::BadGeometry { region, entry } => {
                write!(f, "no ring of {entry}-byte entries fits in {region} bytes")
            }
        }
    }
}

impl From<RingError> for RingAccessError {
    fn from(e: RingError) -> Self {
        RingAccessError::Ring(e)
    }
}

impl From<MemError> for RingAccessError {
    fn from(e: MemError) -> Self {
        RingAccessError::Mem(e)
    }
}

impl From<ShortBuffer> for RingAccessError {
    fn from(e: ShortBuffer) -> Self {
        RingAccessError::Wire(e)
    }
}

/// A ring.h shared ring laid over shared memory: header indices plus `nr_ents` slots of
/// `entry_size` bytes.
#[derive(Debug)]
pub struct SharedRing<M> {
    mem: M,
    nr_ents: u32,
    entry_size: usize,
}

impl<M: SharedMem> SharedRing<M> {
    /// Lays a ring of `entry_size`-byte slots over `mem`; the slot count is the largest power
    /// of two that fits, as `__CONST_RING_SIZE` computes it.
    pub fn new(mem: M, entry_size: usize) -> Result<Self, RingAccessError> {
        let region = mem.size();
        let nr_ents = ring_size(region, entry_size);
        if nr_ents == 0 || entry_size > MAX_ENTRY_SIZE || region < SRING_HEADER_SIZE {
            return Err(RingAccessError::BadGeometry {
                region,
                entry: entry_size,
            });
        }
        Ok(Self {
            mem,
            nr_ents,
            entry_size,
        })
    }

    /// Number of slots.
    pub fn nr_ents(&self) -> u32 {
        self.nr_ents
    }

    /// Size of one slot.
    pub fn entry_size(&self) -> usize {
        self.entry_size
    }

    /// The underlying memory.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// Releases the underlying memory.
    pub fn into_mem(self) -> M {
        self.mem
    }

    fn offset(&self, idx: RingIdx) -> usize {
        entry_offset(idx, self.nr_ents, self.entry_size)
    }

    /// Copies the `T` at slot `idx` out of shared memory (once) and decodes the copy.
    pub fn read_entry<T: WireStruct>(&self, idx: RingIdx) -> Result<T, RingAccessError> {
        let mut buf = [0u8; MAX_ENTRY_SIZE];
        let copy = buf
            .get_mut(..T::SIZE.min(self.entry_size))
            .unwrap_or_default();
        self.mem.read(self.offset(idx), copy)?;
        Ok(T::read_from(copy)?)
    }

    /// Encodes `value` into a zeroed slot image and writes the whole slot `idx`.
    pub fn write_entry<T: WireStruct>(
        &self,
        idx: RingIdx,
        value: &T,
    ) -> Result<(), RingAccessError> {
        let mut buf = [0u8; MAX_ENTRY_SIZE];
        let slot = buf.get_mut(..self.entry_size).unwrap_or_default();
        value.write_to(slot)?;
        self.mem.write(self.offset(idx), slot)?;
        Ok(())
    }

    /// Zeroes the header and sets producers 0 / events 1 (`SHARED_RING_INIT`, frontend side).
    pub fn init(&self) -> Result<(), RingAccessError> {
        self.mem.fill(0, SRING_HEADER_SIZE, 0)?;
        xen_abi::ring::init_shared(self);
        Ok(())
    }

    // The header offsets are constants below SRING_HEADER_SIZE and `new` checked the region
    // holds the header, so these accesses cannot fail; a failure would read as 0 / be dropped.
    fn load(&self, offset: usize) -> RingIdx {
        self.mem.load_u32(offset).unwrap_or(0)
    }

    fn store(&self, offset: usize, value: RingIdx) {
        // Only fails on a read-only mapping; the ring logic never stores to the side it
        // only reads, and a read-only ring cannot be answered anyway.
        let _ = self.mem.store_u32(offset, value);
    }
}

impl<M: SharedMem> SharedRingIndices for SharedRing<M> {
    fn load_req_prod(&self) -> RingIdx {
        self.load(REQ_PROD)
    }
    fn store_req_prod(&self, value: RingIdx) {
        self.store(REQ_PROD, value)
    }
    fn load_req_event(&self) -> RingIdx {
        self.load(REQ_EVENT)
    }
    fn store_req_event(&self, value: RingIdx) {
        self.store(REQ_EVENT, value)
    }
    fn load_rsp_prod(&self) -> RingIdx {
        self.load(RSP_PROD)
    }
    fn store_rsp_prod(&self, value: RingIdx) {
        self.store(RSP_PROD, value)
    }
    fn load_rsp_event(&self) -> RingIdx {
        self.load(RSP_EVENT)
    }
    fn store_rsp_event(&self, value: RingIdx) {
        self.store(RSP_EVENT, value)
    }
    fn full_barrier(&self) {
        fence(Ordering::SeqCst);
    }
}

/// The backend end of a typed ring: takes `Req`s, answers with `Rsp`s.
#[derive(Debug)]
pub struct BackChannel<M, Req, Rsp> {
    ring: SharedRing<M>,
    back: BackRing,
    _types: PhantomData<fn(Rsp) -> Req>,
}

impl<M: SharedMem, Req: WireStruct, Rsp: WireStruct> BackChannel<M, Req, Rsp> {
    /// Attaches to a ring the frontend initialised in `mem` (a mapped grant or [`PageSet`]).
    ///
    /// [`PageSet`]: crate::platform::PageSet
    pub fn new(mem: M) -> Result<Self, RingAccessError> {
        let ring = SharedRing::new(mem, entry_size::<Req, Rsp>())?;
        let back = BackRing::new(ring.nr_ents())?;
        Ok(Self {
            ring,
            back,
            _types: PhantomData,
        })
    }

    /// The ring and its memory.
    pub fn ring(&self) -> &SharedRing<M> {
        &self.ring
    }

    /// The private index state.
    pub fn indices(&self) -> &BackRing {
        &self.back
    }

    /// Takes the next request, copied out once and decoded, or `None` if there is none.
    /// An error means the frontend corrupted the ring: stop using it.
    pub fn next_request(&mut self) -> Result<Option<Req>, RingAccessError> {
        match self.back.next_request(&self.ring)? {
            Some(idx) => Ok(Some(self.ring.read_entry(idx)?)),
            None => Ok(None),
        }
    }

    /// Writes the response for the oldest unanswered request (not yet visible to the
    /// frontend; see [`push`](Self::push)).
    pub fn put_response(&mut self, rsp: &Rsp) -> Result<(), RingAccessError> {
        let idx = self.back.next_response_slot()?;
        self.ring.write_entry(idx, rsp)
    }

    /// Publishes written responses; returns whether the frontend must be notified.
    pub fn push(&mut self) -> bool {
        self.back.push_responses(&self.ring)
    }

    /// Before going idle: re-arms `req_event` and returns whether requests arrived meanwhile.
    pub fn final_check(&mut self) -> Result<bool, RingAccessError> {
        Ok(self.back.final_check_for_requests(&self.ring)?)
    }

    /// Where the frontend's request index stands (taken plus unconsumed requests): it moves
    /// when the frontend produces requests. An error if the index is impossible.
    pub fn produced(&self) -> Result<RingIdx, RingAccessError> {
        let unconsumed = self.back.unconsumed_requests(&self.ring)?;
        Ok(self.back.req_cons().wrapping_add(unconsumed))
    }

    /// Releases the underlying memory (e.g. to unmap it by dropping).
    pub fn into_mem(self) -> M {
        self.ring.into_mem()
    }
}

/// The frontend end of a typed ring: produces `Req`s, takes `Rsp`s.
#[derive(Debug)]
pub struct FrontChannel<M, Req, Rsp> {
    ring: SharedRing<M>,
    front: FrontRing,
    _types: PhantomData<fn(Req) -> Rsp>,
}

impl<M: SharedMem, Req: WireStruct, Rsp: WireStruct> FrontChannel<M, Req, Rsp> {
    /// Initialises a fresh ring in `mem` (a page we granted to the backend).
    pub fn new(mem: M) -> Result<Self, RingAccessError> {
        let ring = SharedRing::new(mem, entry_size::<Req, Rsp>())?;
        ring.init()?;
        let front = FrontRing::new(ring.nr_ents())?;
        Ok(Self {
            ring,
            front,
            _types: PhantomData,
        })
    }

    /// The ring and its memory.
    pub fn ring(&self) -> &SharedRing<M> {
        &self.ring
    }

    /// The private index state.
    pub fn indices(&self) -> &FrontRing {
        &self.front
    }

    /// Writes the next request (not yet visible to the backend; see [`push`](Self::push)).
    pub fn put_request(&mut self, req: &Req) -> Result<(), RingAccessError> {
        let idx = self.front.next_request_slot()?;
        self.ring.write_entry(idx, req)
    }

    /// Publishes written requests; returns whether the backend must be notified.
    pub fn push(&mut self) -> bool {
        self.front.push_requests(&self.ring)
    }

    /// Takes the next response, copied out once and decoded, or `None`.
    pub fn next_response(&mut self) -> Result<Option<Rsp>, RingAccessError> {
        match self.front.next_response(&self.ring)? {
            Some(idx) => Ok(Some(self.ring.read_entry(idx)?)),
            None => Ok(None),
        }
    }

    /// Before going idle: re-arms `rsp_event` and returns whether responses arrived meanwhile.
    pub fn final_check(&mut self) -> Result<bool, RingAccessError> {
        Ok(self.front.final_check_for_responses(&self.ring)?)
    }

    /// Releases the underlying memory.
    pub fn into_mem(self) -> M {
        self.ring.into_mem()
    }
}
