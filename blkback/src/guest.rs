//! Guest memory: moving request data between the frontend's granted pages and local buffers.
//!
//! Two ways, chosen per page:
//! - **Persistent grants** (`feature-persistent` negotiated): a grant is mapped the first
//!   time it is used and kept mapped in a per-queue [`GrantCache`] (bounded, like Linux's
//!   `max_persistent_grants`); data is copied with plain memory copies, no hypercall.
//! - **Grant copy**: everything else goes through one batched `GNTTABOP_copy` per request, so
//!   the backend never maps non-persistent grants at all.
//!
//! Every failure (unmapped, revoked, read-only or foreign grant; XSA-365) becomes an error for
//! that request only. Indirect segment pages are copied out once into a private page and
//! validated from that copy (XSA-155).

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::vec::Vec;

use minios::blockdev::DmaSeg;

use minios::platform::{
    local_room, Access, CopyDst, CopyOp, CopySrc, DomId, ForeignRef, GrantError, GrantRef, Grants,
    SharedMem, PAGE_SIZE,
};
use xen_abi::blkif::SEGS_PER_INDIRECT_FRAME;

use crate::store::{DataPort, StoreError};
use crate::wire::{parse_indirect_segments, Invalid, Segment};

/// One page-aligned page of our own memory (a grant-copy target that never crosses a page).
#[repr(C, align(4096))]
pub struct AlignedPage(pub [u8; PAGE_SIZE]);

impl AlignedPage {
    /// A zeroed page on the heap.
    pub fn boxed() -> Box<AlignedPage> {
        Box::new(AlignedPage([0; PAGE_SIZE]))
    }
}

/// Persistently mapped grants of one queue, by reference. Dropping it unmaps them all, except
/// those a device request still holds ([`GuestPort`]'s direct pieces): each of those is
/// unmapped when the last request holding it lets go.
#[derive(Debug)]
pub struct GrantCache<M> {
    maps: BTreeMap<GrantRef, Rc<M>>,
    limit: usize,
    /// Map attempts that failed (the data then went by grant copy).
    pub map_failures: u64,
}

impl<M: SharedMem> GrantCache<M> {
    /// An empty cache that keeps at most `limit` mappings.
    pub fn new(limit: usize) -> Self {
        Self {
            maps: BTreeMap::new(),
            limit,
            map_failures: 0,
        }
    }

    /// Number of mapped grants.
    pub fn len(&self) -> usize {
        self.maps.len()
    }

    /// Whether nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// The mapping of `gref`, if cached.
    pub fn get(&self, gref: GrantRef) -> Option<&M> {
        self.maps.get(&gref).map(|m| &**m)
    }

    /// The mapping of `gref`, if cached, shared (it stays mapped while the clone lives).
    pub fn shared(&self, gref: GrantRef) -> Option<Rc<M>> {
        self.maps.get(&gref).cloned()
    }

    /// Maps, in one batch, those of `grefs` not cached yet, while the cache has room. Grants
    /// that cannot be mapped (read-only, bad) are left to grant copy.
    pub fn prepare<P: Grants<Mapping = M>>(
        &mut self,
        platform: &P,
        domid: DomId,
        grefs: impl Iterator<Item = GrantRef>,
    ) {
        let room = self.limit.saturating_sub(self.maps.len());
        if room == 0 {
            return;
        }
        let mut missing: Vec<GrantRef> = Vec::new();
        for gref in grefs {
            if !self.maps.contains_key(&gref) && !missing.contains(&gref) {
                missing.push(gref);
                if missing.len() == room {
                    break;
                }
            }
        }
        if missing.is_empty() {
            return;
        }
        let mapped = platform.map_batch(domid, &missing, Access::ReadWrite);
        for (gref, result) in missing.into_iter().zip(mapped) {
            match result {
                Ok(m) => {
                    self.maps.insert(gref, Rc::new(m));
                }
                Err(_) => self.map_failures += 1,
            }
        }
    }
}

fn grant_error(domid: DomId, gref: GrantRef, e: impl core::fmt::Display) -> StoreError {
    StoreError::Guest(format!("grant {gref} of domain {domid}: {e}"))
}

/// Walks the bytes of a segment list: (segment index, offset in its page, bytes left in it).
struct Cursor<'a> {
    segs: &'a [Segment],
    idx: usize,
    done: usize,
}

impl<'a> Cursor<'a> {
    fn new(segs: &'a [Segment], mut pos: usize) -> Self {
        let mut idx = 0;
        while idx < segs.len() && pos >= segs[idx].len() {
            pos -= segs[idx].len();
            idx += 1;
        }
        Self {
            segs,
            idx,
            done: pos,
        }
    }

    /// The current piece: grant, offset in the page, bytes available.
    fn piece(&self) -> Option<(GrantRef, usize, usize)> {
        let s = self.segs.get(self.idx)?;
        Some((s.gref, s.offset() + self.done, s.len() - self.done))
    }

    fn advance(&mut self, n: usize) {
        self.done += n;
        if let Some(s) = self.segs.get(self.idx) {
            if self.done >= s.len() {
                self.idx += 1;
                self.done = 0;
            }
        }
    }
}

/// The data of one request in guest memory, as a [`DataPort`] for the store.
pub struct GuestPort<'a, P: Grants> {
    platform: &'a P,
    domid: DomId,
    segs: &'a [Segment],
    cache: Option<&'a GrantCache<P::Mapping>>,
    /// Bytes moved through mappings and through grant copy (statistics).
    pub moved: (u64, u64),
}

impl<'a, P: Grants> GuestPort<'a, P> {
    /// A port over `segs` of domain `domid`, using `cache` for grants it holds (call
    /// [`GrantCache::prepare`] first).
    pub fn new(
        platform: &'a P,
        domid: DomId,
        segs: &'a [Segment],
        cache: Option<&'a GrantCache<P::Mapping>>,
    ) -> Self {
        Self {
            platform,
            domid,
            segs,
            cache,
            moved: (0, 0),
        }
    }

    fn mapped(&self, gref: GrantRef) -> Option<&'a P::Mapping> {
        self.cache.and_then(|c| c.get(gref))
    }

    fn run_copies(&self, ops: &mut [CopyOp<'_>], grefs: &[GrantRef]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        self.platform.copy(ops);
        for (op, &gref) in ops.iter().zip(grefs) {
            if let Err(e) = op.status {
                return Err(grant_error(self.domid, gref, e));
            }
        }
        Ok(())
    }
}

impl<P: Grants> DataPort for GuestPort<'_, P> {
    fn gather(&mut self, pos: usize, bufs: &mut [&mut [u8]]) -> Result<(), StoreError> {
        let mut cur = Cursor::new(self.segs, pos);
        let mut ops: Vec<CopyOp<'_>> = Vec::new();
        let mut grefs: Vec<GrantRef> = Vec::new();
        for buf in bufs.iter_mut() {
            let mut rest: &mut [u8] = buf;
            while !rest.is_empty() {
                let (gref, off, avail) = cur
                    .piece()
                    .ok_or_else(|| StoreError::Guest("request data shorter than the I/O".into()))?;
                let mut n = avail.min(rest.len());
                if let Some(m) = self.mapped(gref) {
                    m.read(off, &mut rest[..n])
                        .map_err(|e| grant_error(self.domid, gref, e))?;
                    rest = &mut core::mem::take(&mut rest)[n..];
                    self.moved.0 += n as u64;
                } else {
                    n = n.min(local_room(rest));
                    let (piece, tail) = core::mem::take(&mut rest).split_at_mut(n);
                    let src = CopySrc::Foreign(ForeignRef {
                        domid: self.domid,
                        gref,
                        offset: off as u16,
                    });
                    ops.push(CopyOp::new(src, CopyDst::Local(piece), n as u16));
                    grefs.push(gref);
                    rest = tail;
                    self.moved.1 += n as u64;
                }
                cur.advance(n);
            }
        }
        self.run_copies(&mut ops, &grefs)
    }

    fn direct(&mut self, pos: usize, len: usize, block: usize) -> Option<Vec<DmaSeg>> {
        let cache = self.cache?;
        if block == 0 {
            return None;
        }
        let mut cur = Cursor::new(self.segs, pos);
        let mut out = Vec::new();
        let mut left = len;
        while left > 0 {
            let (gref, off, avail) = cur.piece()?;
            let n = avail.min(left);
            // Segments are checked at parse (sectors within the page); here: whole device
            // blocks only, and only grants this queue mapped writable.
            if off % block != 0 || n % block != 0 || off + n > PAGE_SIZE {
                return None;
            }
            let m = cache.shared(gref)?;
            if !m.writable() {
                return None;
            }
            out.push(DmaSeg {
                mem: m,
                offset: off,
                len: n,
            });
            cur.advance(n);
            left -= n;
        }
        Some(out)
    }

    fn scatter(&mut self, pos: usize, bufs: &[&[u8]]) -> Result<(), StoreError> {
        let mut cur = Cursor::new(self.segs, pos);
        let mut ops: Vec<CopyOp<'_>> = Vec::new();
        let mut grefs: Vec<GrantRef> = Vec::new();
        for buf in bufs {
            let mut rest: &[u8] = buf;
            while !rest.is_empty() {
                let (gref, off, avail) = cur
                    .piece()
                    .ok_or_else(|| StoreError::Guest("request data shorter than the I/O".into()))?;
                let mut n = avail.min(rest.len());
                if let Some(m) = self.mapped(gref) {
                    m.write(off, &rest[..n])
                        .map_err(|e| grant_error(self.domid, gref, e))?;
                    self.moved.0 += n as u64;
                } else {
                    n = n.min(local_room(rest));
                    let dst = CopyDst::Foreign(ForeignRef {
                        domid: self.domid,
                        gref,
                        offset: off as u16,
                    });
                    ops.push(CopyOp::new(CopySrc::Local(&rest[..n]), dst, n as u16));
                    grefs.push(gref);
                    self.moved.1 += n as u64;
                }
                rest = &rest[n..];
                cur.advance(n);
            }
        }
        self.run_copies(&mut ops, &grefs)
    }
}

/// Why the segments of an indirect request could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndirectError {
    /// An indirect page could not be read (bad grant).
    Grant(GrantRef, GrantError),
    /// A segment in a page was invalid.
    Invalid(Invalid),
}

impl core::fmt::Display for IndirectError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            IndirectError::Grant(gref, e) => write!(f, "indirect page grant {gref}: {e}"),
            IndirectError::Invalid(e) => write!(f, "{e}"),
        }
    }
}

/// Copies the `count` segments of an indirect request out of its pages `grefs` (once, into
/// `scratch`), validates them and appends them to `out`.
pub fn read_indirect<P: Grants>(
    platform: &P,
    domid: DomId,
    cache: Option<&GrantCache<P::Mapping>>,
    grefs: &[GrantRef],
    count: usize,
    scratch: &mut AlignedPage,
    out: &mut Vec<Segment>,
) -> Result<(), IndirectError> {
    for (page, &gref) in grefs.iter().enumerate() {
        let base = page * SEGS_PER_INDIRECT_FRAME;
        let n = (count - base).min(SEGS_PER_INDIRECT_FRAME);
        let bytes = n * core::mem::size_of::<xen_abi::blkif::BlkifRequestSegment>();
        let buf = &mut scratch.0[..bytes];
        match cache.and_then(|c| c.get(gref)) {
            Some(m) => m
                .read(0, buf)
                .map_err(|_| IndirectError::Grant(gref, GrantError::NotAttempted))?,
            None => {
                let src = CopySrc::Foreign(ForeignRef {
                    domid,
                    gref,
                    offset: 0,
                });
                let mut op = [CopyOp::new(src, CopyDst::Local(buf), bytes as u16)];
                platform.copy(&mut op);
                op[0].status.map_err(|e| IndirectError::Grant(gref, e))?;
            }
        }
        parse_indirect_segments(&scratch.0[..bytes], base, out).map_err(IndirectError::Invalid)?;
    }
    Ok(())
}
