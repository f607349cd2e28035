//! The platform boundary: everything a backend needs from Xen, as traits.
//!
//! Backends see grants, event channels, xenstore and time only through these traits, so the
//! same backend code runs in a unikernel (implemented by `minios-rt` with hypercalls) and in
//! host tests (implemented in process by `minios::host`, feature `host`). Foreign memory is
//! reached through [`SharedMem`]: bounded, offset-based accessors that return errors instead
//! of panicking — never a raw pointer or a reference into memory another domain can change.
//!
//! Resources are released on drop: a grant [`Mapping`](Grants::Mapping) unmaps, a
//! [`Granted`](Grants::Granted) page ends foreign access, an event
//! [`Channel`](Events::Channel) closes. Dropping a device's connection state therefore cannot
//! leak, however often a frontend flaps (XSA-350).
//!
//! # Shared memory rules
//! Another domain may rewrite a shared page at any time. Read each request out of a shared
//! page exactly once into a private copy, then validate and use only the copy (XSA-155);
//! [`SharedRing`](crate::ring::SharedRing) does that for rings. Implementations of
//! [`SharedMem::read`]/[`SharedMem::write`] must behave like volatile byte copies (no
//! assumption that memory is stable between two accesses), and [`SharedMem::load_u32`] /
//! [`SharedMem::store_u32`] must be real atomic operations (acquire / release) so that
//! `core::sync::atomic::fence` orders them, as ring.h's barriers require.

use alloc::vec::Vec;
use core::fmt;

use xen_abi::hypercall::grant_table::{gntst_message, GNTST_BAD_COPY_ARG};
pub use xen_abi::{DomId, EvtchnPort, GrantRef, XenErrno, XEN_PAGE_SIZE as PAGE_SIZE};

// ---------------------------------------------------------------------------------------------
// Shared memory
// ---------------------------------------------------------------------------------------------

/// An access to shared memory that could not be performed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemError {
    /// `offset + len` lies outside the `size` bytes of the region.
    OutOfBounds {
        /// Requested start.
        offset: usize,
        /// Requested length.
        len: usize,
        /// Size of the region.
        size: usize,
    },
    /// A write to a read-only mapping.
    ReadOnly,
    /// A 32-bit atomic access at an offset that is not a multiple of 4.
    Misaligned {
        /// The offending offset.
        offset: usize,
    },
}

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MemError::OutOfBounds { offset, len, size } => write!(
                f,
                "access of {len} bytes at offset {offset} exceeds the {size}-byte region"
            ),
            MemError::ReadOnly => f.write_str("write to a read-only mapping"),
            MemError::Misaligned { offset } => write!(f, "misaligned 32-bit access at {offset}"),
        }
    }
}

/// Checks that `offset..offset + len` lies within a region of `size` bytes.
pub fn check_range(offset: usize, len: usize, size: usize) -> Result<(), MemError> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(MemError::OutOfBounds { offset, len, size }),
    }
}

/// Checks a 32-bit atomic access: in bounds and 4-byte aligned.
pub fn check_word(offset: usize, size: usize) -> Result<(), MemError> {
    check_range(offset, 4, size)?;
    if offset % 4 != 0 {
        return Err(MemError::Misaligned { offset });
    }
    Ok(())
}

/// Bounded access to memory shared with another domain (a mapped grant, a page we granted,
/// or several of them, see [`PageSet`]).
///
/// Every method checks its range and returns [`MemError`] instead of panicking. See the
/// module documentation for the ordering rules implementations must follow.
pub trait SharedMem {
    /// Size of the region in bytes (4096 for one grant).
    fn size(&self) -> usize;

    /// Whether [`write`](Self::write) and [`store_u32`](Self::store_u32) are allowed.
    fn writable(&self) -> bool;

    /// Copies `buf.len()` bytes starting at `offset` into `buf`.
    fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), MemError>;

    /// Copies `data` into the region starting at `offset`.
    fn write(&self, offset: usize, data: &[u8]) -> Result<(), MemError>;

    /// Atomically loads the little-endian `u32` at `offset` (4-aligned) with acquire ordering.
    fn load_u32(&self, offset: usize) -> Result<u32, MemError>;

    /// Atomically stores `value` at `offset` (4-aligned) with release ordering.
    fn store_u32(&self, offset: usize, value: u32) -> Result<(), MemError>;

    /// The address at which a device this domain owns may transfer to and from the region
    /// (on PV with an IOMMU: the machine address of a mapped grant, which Xen maps 1:1 in
    /// the domain's IOMMU context while the grant is mapped), if it has one. Default: none.
    fn dma_addr(&self) -> Option<u64> {
        None
    }

    /// Fills `len` bytes at `offset` with `byte`.
    fn fill(&self, offset: usize, len: usize, byte: u8) -> Result<(), MemError> {
        check_range(offset, len, self.size())?;
        let chunk = [byte; 256];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(chunk.len());
            self.write(offset + done, &chunk[..n])?;
            done += n;
        }
        Ok(())
    }
}

impl<M: SharedMem + ?Sized> SharedMem for &M {
    fn size(&self) -> usize {
        (**self).size()
    }
    fn writable(&self) -> bool {
        (**self).writable()
    }
    fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), MemError> {
        (**self).read(offset, buf)
    }
    fn write(&self, offset: usize, data: &[u8]) -> Result<(), MemError> {
        (**self).write(offset, data)
    }
    fn load_u32(&self, offset: usize) -> Result<u32, MemError> {
        (**self).load_u32(offset)
    }
    fn store_u32(&self, offset: usize, value: u32) -> Result<(), MemError> {
        (**self).store_u32(offset, value)
    }
    fn dma_addr(&self) -> Option<u64> {
        (**self).dma_addr()
    }
}

/// Several pages (e.g. the grants of a multi-page ring, `ring-page-order` > 0) seen as one
/// contiguous region. Accesses that straddle pages are split; no virtual contiguity needed.
#[derive(Debug)]
pub struct PageSet<M> {
    pages: Vec<M>,
}

impl<M: SharedMem> PageSet<M> {
    /// Wraps `pages`, each of which must be [`PAGE_SIZE`] bytes (anything else is refused,
    /// returning the pages).
    pub fn new(pages: Vec<M>) -> Result<Self, Vec<M>> {
        if pages.is_empty() || pages.iter().any(|p| p.size() != PAGE_SIZE) {
            return Err(pages);
        }
        Ok(Self { pages })
    }

    /// The underlying pages.
    pub fn pages(&self) -> &[M] {
        &self.pages
    }

    /// Splits `offset..offset+len` into per-page pieces: `(page, offset in page, start in
    /// caller buffer, length)`.
    fn pieces(
        &self,
        offset: usize,
        len: usize,
    ) -> Result<impl Iterator<Item = (&M, usize, usize, usize)>, MemError> {
        check_range(offset, len, self.size())?;
        let mut pos = 0;
        Ok(core::iter::from_fn(move || {
            if pos >= len {
                return None;
            }
            let abs = offset + pos;
            let in_page = abs % PAGE_SIZE;
            let n = (PAGE_SIZE - in_page).min(len - pos);
            let piece = (&self.pages[abs / PAGE_SIZE], in_page, pos, n);
            pos += n;
            Some(piece)
        }))
    }
}

impl<M: SharedMem> SharedMem for PageSet<M> {
    fn size(&self) -> usize {
        self.pages.len() * PAGE_SIZE
    }
    fn writable(&self) -> bool {
        self.pages.iter().all(|p| p.writable())
    }
    fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), MemError> {
        for (page, at, start, n) in self.pieces(offset, buf.len())? {
            page.read(at, &mut buf[start..start + n])?;
        }
        Ok(())
    }
    fn write(&self, offset: usize, data: &[u8]) -> Result<(), MemError> {
        for (page, at, start, n) in self.pieces(offset, data.len())? {
            page.write(at, &data[start..start + n])?;
        }
        Ok(())
    }
    fn load_u32(&self, offset: usize) -> Result<u32, MemError> {
        check_word(offset, self.size())?;
        self.pages[offset / PAGE_SIZE].load_u32(offset % PAGE_SIZE)
    }
    fn store_u32(&self, offset: usize, value: u32) -> Result<(), MemError> {
        check_word(offset, self.size())?;
        self.pages[offset / PAGE_SIZE].store_u32(offset % PAGE_SIZE, value)
    }
}

// ---------------------------------------------------------------------------------------------
// Grants
// ---------------------------------------------------------------------------------------------

/// How a grant is mapped or offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read only (`GNTMAP_readonly` / `GTF_readonly`).
    ReadOnly,
    /// Read and write.
    ReadWrite,
}

/// A grant operation that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// The hypervisor refused the operation with this `GNTST_*` status
    /// (`xen_abi::hypercall::grant_table::GNTST_*`).
    Status(i16),
    /// We ran out of something on our side: grant entries, mapping address space, pages.
    Exhausted,
    /// The operation was not attempted because an earlier failure made it pointless
    /// (e.g. a copy op whose batch was rejected as a whole).
    NotAttempted,
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GrantError::Status(s) => write!(f, "{} (GNTST {s})", gntst_message(s)),
            GrantError::Exhausted => f.write_str("grant resources exhausted"),
            GrantError::NotAttempted => f.write_str("grant operation not attempted"),
        }
    }
}

/// One side of a grant copy that lives in another domain's granted page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForeignRef {
    /// The granting domain.
    pub domid: DomId,
    /// Its grant reference.
    pub gref: GrantRef,
    /// Byte offset within the granted page.
    pub offset: u16,
}

/// Source of a [`CopyOp`].
#[derive(Debug)]
pub enum CopySrc<'a> {
    /// Bytes in a foreign granted page.
    Foreign(ForeignRef),
    /// Bytes of our own memory; must not cross a 4 KiB page boundary (see [`local_room`]).
    Local(&'a [u8]),
}

/// Destination of a [`CopyOp`].
#[derive(Debug)]
pub enum CopyDst<'a> {
    /// Bytes in a foreign granted page (the grant must be writable).
    Foreign(ForeignRef),
    /// Bytes of our own memory; must not cross a 4 KiB page boundary (see [`local_room`]).
    Local(&'a mut [u8]),
}

/// One `GNTTABOP_copy` operation. The platform fills in [`status`](Self::status).
#[derive(Debug)]
pub struct CopyOp<'a> {
    /// Where the bytes come from.
    pub src: CopySrc<'a>,
    /// Where the bytes go.
    pub dst: CopyDst<'a>,
    /// Number of bytes; a local side's slice must be exactly this long.
    pub len: u16,
    /// Outcome, set by [`Grants::copy`]; `Err(NotAttempted)` until then.
    pub status: Result<(), GrantError>,
}

/// Bytes from the start of `buf` to the next 4 KiB boundary of our address space: the
/// longest local piece one [`CopyOp`] may use. Split local buffers with it.
pub fn local_room(buf: &[u8]) -> usize {
    PAGE_SIZE - (buf.as_ptr() as usize % PAGE_SIZE)
}

impl<'a> CopyOp<'a> {
    /// A new operation, not yet performed.
    pub fn new(src: CopySrc<'a>, dst: CopyDst<'a>, len: u16) -> Self {
        Self {
            src,
            dst,
            len,
            status: Err(GrantError::NotAttempted),
        }
    }

    /// Validates the operation as the hypervisor would before touching memory: neither side
    /// may cross a 4 KiB page (`GNTST_bad_copy_arg`), local slices must be `len` long.
    pub fn validate(&self) -> Result<(), GrantError> {
        let len = usize::from(self.len);
        let bad = Err(GrantError::Status(GNTST_BAD_COPY_ARG));
        let foreign_ok = |r: &ForeignRef| usize::from(r.offset) + len <= PAGE_SIZE;
        let local_ok = |b: &[u8]| b.len() == len && (len == 0 || len <= local_room(b));
        let src_ok = match &self.src {
            CopySrc::Foreign(r) => foreign_ok(r),
            CopySrc::Local(b) => local_ok(b),
        };
        let dst_ok = match &self.dst {
            CopyDst::Foreign(r) => foreign_ok(r),
            CopyDst::Local(b) => local_ok(b),
        };
        if src_ok && dst_ok {
            Ok(())
        } else {
            bad
        }
    }
}

/// A page of ours that a remote domain may map or copy (frontend side: shared rings, data
/// buffers). Dropping it ends foreign access; if the remote still has it mapped, the
/// implementation must keep the page out of reuse until the remote unmaps (as Linux's
/// deferred `gnttab_end_foreign_access` does) — never hand it to anyone else.
pub trait GrantedPage: SharedMem {
    /// The grant reference to publish to the remote domain.
    fn gref(&self) -> GrantRef;
}

/// Grant-table operations.
pub trait Grants {
    /// A mapped foreign grant: [`PAGE_SIZE`] bytes of bounded access, unmapped on drop.
    type Mapping: SharedMem + 'static;
    /// One of our pages granted to a remote domain, access ended on drop.
    type Granted: GrantedPage;

    /// Maps several grants of domain `domid` in one batch (one hypercall on Xen). The result
    /// has one entry per `grefs` entry, in order; partial failure is normal and the successful
    /// mappings are still returned (drop them to unmap).
    fn map_batch(
        &self,
        domid: DomId,
        grefs: &[GrantRef],
        access: Access,
    ) -> Vec<Result<Self::Mapping, GrantError>>;

    /// Maps one grant.
    fn map(
        &self,
        domid: DomId,
        gref: GrantRef,
        access: Access,
    ) -> Result<Self::Mapping, GrantError> {
        self.map_batch(domid, &[gref], access)
            .pop()
            .unwrap_or(Err(GrantError::NotAttempted))
    }

    /// Performs a batch of grant copies, setting each op's `status`. Ops that fail
    /// [`CopyOp::validate`] get `GNTST_bad_copy_arg` and are not performed; the others
    /// proceed independently.
    fn copy(&self, ops: &mut [CopyOp<'_>]);

    /// Allocates a zeroed page and grants `domid` access to it.
    fn grant_page(&self, domid: DomId, access: Access) -> Result<Self::Granted, GrantError>;
}

// ---------------------------------------------------------------------------------------------
// Event channels
// ---------------------------------------------------------------------------------------------

/// An open event channel port. Closed (`EVTCHNOP_close`) on drop.
///
/// Delivery model: when the remote notifies, the platform marks the port pending and makes
/// [`Platform::wait`] return. The owner polls [`take_pending`](Self::take_pending) (test
/// and clear) from its poll function; a pending flag that is not taken keeps `wait` from
/// blocking, so no notification is lost between a check and a wait.
pub trait EventChannel {
    /// Local port number (to publish in xenstore, e.g. `event-channel`).
    fn port(&self) -> EvtchnPort;

    /// Notifies the remote end (`EVTCHNOP_send`).
    fn notify(&self) -> Result<(), XenErrno>;

    /// Returns whether the port fired since the last call, and clears the flag. A masked
    /// port reports nothing until it is unmasked.
    fn take_pending(&self) -> bool;

    /// Stops the port from waking [`Platform::wait`]; notifications still mark it pending
    /// and are reported once it is unmasked (see [`crate::event_throttle`]).
    fn mask(&self);

    /// Lets the port wake [`Platform::wait`] again; a notification that arrived while it was
    /// masked is delivered now.
    fn unmask(&self) -> Result<(), XenErrno>;
}

/// Event-channel operations.
pub trait Events {
    /// An open port.
    type Channel: EventChannel;

    /// Allocates a port that `remote` may bind to (`EVTCHNOP_alloc_unbound`, frontend side).
    fn alloc_unbound(&self, remote: DomId) -> Result<Self::Channel, XenErrno>;

    /// Binds to `remote_port`, an unbound port `remote` allocated for us
    /// (`EVTCHNOP_bind_interdomain`, backend side).
    fn bind_interdomain(
        &self,
        remote: DomId,
        remote_port: EvtchnPort,
    ) -> Result<Self::Channel, XenErrno>;

    /// Notifies the remote ends of `channels`, in order, at once where the platform can batch
    /// them (on Xen: one multicall instead of a hypercall each). Returns how many failed.
    fn notify_many(&self, channels: &[&Self::Channel]) -> usize {
        channels.iter().filter(|c| c.notify().is_err()).count()
    }
}

// ---------------------------------------------------------------------------------------------
// Xenstore transport
// ---------------------------------------------------------------------------------------------

/// A xenstore transport failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The other end went away (socket closed, ring reset).
    Closed,
    /// Nothing is in flight that could ever arrive (an in-process store with nothing queued):
    /// blocking would hang forever.
    Stalled,
    /// An I/O error with this errno (dom0 socket transport).
    Io(i32),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Closed => f.write_str("xenstore connection closed"),
            TransportError::Stalled => f.write_str("xenstore reply will never arrive"),
            TransportError::Io(e) => write!(f, "xenstore I/O error {e}"),
        }
    }
}

/// The byte channel the xenstore client speaks `xs_wire` over: the xenstore ring and its
/// event channel in a unikernel, a unix socket in dom0, the in-memory store in host tests.
pub trait XsTransport {
    /// Sends all of `bytes`, blocking while the channel is full.
    fn send(&mut self, bytes: &[u8]) -> Result<(), TransportError>;

    /// Receives what is available into `buf` without blocking; `Ok(0)` when nothing is.
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError>;

    /// Blocks until [`recv`](Self::recv) may return data. Spurious returns are allowed.
    fn wait_readable(&mut self) -> Result<(), TransportError>;

    /// [`wait_readable`](Self::wait_readable), returning by `deadline_ns` (the platform's
    /// clock) at the latest when one is given. Default: the deadline is not honoured.
    fn wait_readable_until(&mut self, deadline_ns: Option<u64>) -> Result<(), TransportError> {
        let _ = deadline_ns;
        self.wait_readable()
    }
}

impl<T: XsTransport + ?Sized> XsTransport for alloc::boxed::Box<T> {
    fn send(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        (**self).send(bytes)
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        (**self).recv(buf)
    }
    fn wait_readable(&mut self) -> Result<(), TransportError> {
        (**self).wait_readable()
    }
    fn wait_readable_until(&mut self, deadline_ns: Option<u64>) -> Result<(), TransportError> {
        (**self).wait_readable_until(deadline_ns)
    }
}

// ---------------------------------------------------------------------------------------------
// Time and the platform bundle
// ---------------------------------------------------------------------------------------------

/// A monotonic clock.
pub trait Clock {
    /// Nanoseconds since an arbitrary fixed origin (boot); never goes backwards.
    fn now_ns(&self) -> u64;
}

/// Everything a driver domain's backends need from the platform.
pub trait Platform: Grants + Events + Clock {
    /// The xenstore transport this platform provides.
    type Xs: XsTransport;

    /// Our domain id.
    fn domid(&self) -> DomId;

    /// Blocks until an event channel fires, xenstore data arrives, or `deadline_ns` (per
    /// [`Clock::now_ns`]) passes; `None` waits without a deadline. Returns at once if a port
    /// is already pending (fired and not yet taken with [`EventChannel::take_pending`]), if
    /// the xenstore transport holds unread bytes, or if the deadline has passed. On Xen the
    /// PVH runtime blocks in `SCHEDOP_poll` on the bound ports (the timer's VIRQ among them,
    /// armed with a one-shot timer for the deadline); Xen marks the vCPU blocked before it
    /// checks the ports, so no wake-up is lost — never a busy loop. Spurious returns are
    /// allowed.
    fn wait(&self, deadline_ns: Option<u64>);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_without_overflow() {
        assert!(check_range(0, 4096, 4096).is_ok());
        assert!(check_range(4096, 0, 4096).is_ok());
        assert!(check_range(4095, 2, 4096).is_err());
        assert!(check_range(usize::MAX, 2, 4096).is_err());
        assert_eq!(check_word(2, 4096), Err(MemError::Misaligned { offset: 2 }));
        assert!(check_word(4092, 4096).is_ok());
        assert!(check_word(4096, 4096).is_err());
    }

    #[test]
    fn copy_ops_crossing_a_page_are_refused() {
        let r = |offset| ForeignRef {
            domid: 1,
            gref: 8,
            offset,
        };
        let mut page = alloc::vec![0u8; 2 * PAGE_SIZE];
        let start = local_room(&page) % PAGE_SIZE; // first page-aligned index
        let buf = &mut page[start..start + 100];
        let ok = CopyOp::new(CopySrc::Foreign(r(3996)), CopyDst::Local(buf), 100);
        assert_eq!(ok.validate(), Ok(()));
        let buf = &mut page[start..start + 101];
        let crosses = CopyOp::new(CopySrc::Foreign(r(3996)), CopyDst::Local(buf), 101);
        assert_eq!(
            crosses.validate(),
            Err(GrantError::Status(GNTST_BAD_COPY_ARG))
        );
        let local = &page[start + 4000..start + 4100];
        let crosses = CopyOp::new(CopySrc::Local(local), CopyDst::Foreign(r(0)), 100);
        assert_eq!(
            crosses.validate(),
            Err(GrantError::Status(GNTST_BAD_COPY_ARG))
        );
        let short = &page[start..start + 10];
        let wrong_len = CopyOp::new(CopySrc::Local(short), CopyDst::Foreign(r(0)), 11);
        assert!(wrong_len.validate().is_err());
    }
}
