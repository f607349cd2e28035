//! Grant tables: our table (v1) for offering pages to other domains, mapping other
//! domains' grants into our address space, and batched grant copies.
//!
//! Where the table's frames and foreign pages go is the platform's business
//! ([`crate::arch::platform`]): on PVH the table frames are placed with
//! `XENMEM_add_to_physmap(XENMAPSPACE_grant_table)` into frames of the unpopulated mapping
//! window (no RAM is given up), reserved up to the table's maximum so it stays one flat array
//! and can grow frame by frame; foreign grants are mapped with `GNTTABOP_map_grant_ref` +
//! `GNTMAP_host_map` at a window frame (the "host address" is guest-physical). On PV the
//! same window addresses are virtual: table frames come from `GNTTABOP_setup_table` and get
//! page-table entries, foreign grants are mapped at the window address. Every op's status
//! is checked.

use crate::arch::platform::{self as plat, ForeignSlot};
use crate::mm::{self, page::PhysPage, PAGE_SIZE};
use crate::sync::Global;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use minios::platform::{Access, CopyDst, CopyOp, CopySrc, GrantError, MemError, SharedMem};
use xen_abi::grant::{
    GrantEntryV1, GNTTAB_NR_RESERVED_ENTRIES, GRANT_ENTRIES_PER_PAGE, GTF_READING, GTF_WRITING,
};
use xen_abi::hypercall::grant_table::{
    GnttabCopy, GnttabCopyPtr, GnttabMapGrantRef, GnttabUnmapGrantRef, GrantHandle,
    GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GNTMAP_READONLY, GNTST_OKAY,
};
use xen_abi::hypercall::DOMID_SELF;
use xen_abi::{DomId, GrantRef, XenErrno};

/// Frames mapped at start; the table grows one frame at a time up to Xen's maximum.
const INITIAL_FRAMES: u32 = 1;
/// Copy ops per hypercall.
const COPY_BATCH: usize = 64;

struct Table {
    /// Address of table frame 0.
    base: u64,
    /// Frames currently mapped.
    frames: u32,
    /// Frames reserved in the window (Xen's maximum).
    max_frames: u32,
    /// Free references below `frames * 512`.
    free: Vec<GrantRef>,
    /// Pages whose grant was still mapped by the remote when dropped: (ref, page address).
    deferred: Vec<(GrantRef, u64)>,
}

static TABLE: Global<Option<Table>> = Global::new(None);

/// Sets up our grant table.
pub fn init() -> Result<(), XenErrno> {
    let (_current, max) = crate::xen::gnttab::query_size()?;
    let max = max.max(INITIAL_FRAMES);
    let base = plat::reserve_grant_table(max).ok_or(XenErrno::ENOMEM)?;
    let mut table = Table {
        base,
        frames: 0,
        max_frames: max,
        free: Vec::new(),
        deferred: Vec::new(),
    };
    for _ in 0..INITIAL_FRAMES {
        table.grow()?;
    }
    log::info!(
        "grant table: {} of {} frames mapped at {:#x} ({} refs)",
        table.frames,
        table.max_frames,
        base,
        table.frames as usize * GRANT_ENTRIES_PER_PAGE
    );
    TABLE.with(|t| *t = Some(table));
    Ok(())
}

impl Table {
    /// Maps one more table frame and adds its references to the free list.
    fn grow(&mut self) -> Result<(), XenErrno> {
        if self.frames >= self.max_frames {
            return Err(XenErrno::ENOSPC);
        }
        let idx = self.frames;
        // SAFETY: `base` was reserved for `max_frames` frames and `idx < max_frames`.
        unsafe { plat::map_grant_table_frame(self.base, idx) }?;
        self.frames += 1;
        let first = (idx as usize * GRANT_ENTRIES_PER_PAGE) as GrantRef;
        let first = first.max(GNTTAB_NR_RESERVED_ENTRIES);
        let end = (self.frames as usize * GRANT_ENTRIES_PER_PAGE) as GrantRef;
        // Hand out low references first.
        self.free.extend((first..end).rev());
        Ok(())
    }

    fn entry_addr(&self, gref: GrantRef) -> u64 {
        self.base + u64::from(gref) * core::mem::size_of::<GrantEntryV1>() as u64
    }

    fn flags(&self, gref: GrantRef) -> &'static AtomicU16 {
        // SAFETY: `gref` is below `frames * 512`, so the entry lies in a mapped table frame,
        // which stays mapped for the rest of the run; entries are only accessed atomically.
        unsafe { AtomicU16::from_ptr(self.entry_addr(gref) as *mut u16) }
    }

    /// Fills entry `gref`: domid and frame first, then (release) the flags that validate it.
    fn permit(&self, gref: GrantRef, domid: DomId, frame: u32, readonly: bool) {
        let addr = self.entry_addr(gref);
        let e = GrantEntryV1::permit_access(domid, frame, readonly);
        // SAFETY: as in `flags`; the entry is free (flags 0), so Xen does not use it yet.
        unsafe {
            AtomicU16::from_ptr((addr + 2) as *mut u16).store(e.domid, Ordering::Relaxed);
            AtomicU32::from_ptr((addr + 4) as *mut u32).store(e.frame, Ordering::Relaxed);
        }
        self.flags(gref).store(e.flags, Ordering::Release);
    }

    /// Revokes entry `gref` unless the remote has it mapped (`GTF_reading`/`GTF_writing`):
    /// clears the flags with a compare-exchange so a concurrent map by the remote either
    /// completes first (and we see it) or fails.
    fn revoke(&self, gref: GrantRef) -> bool {
        let flags = self.flags(gref);
        let mut cur = flags.load(Ordering::Acquire);
        loop {
            if cur & (GTF_READING | GTF_WRITING) != 0 {
                return false;
            }
            match flags.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    fn alloc_ref(&mut self) -> Option<GrantRef> {
        if self.free.is_empty() && self.grow().is_err() {
            return None;
        }
        self.free.pop()
    }

    /// Retries revoking grants whose pages were dropped while still mapped remotely.
    fn retry_deferred(&mut self) {
        let mut i = 0;
        while i < self.deferred.len() {
            let (gref, addr) = self.deferred[i];
            if self.revoke(gref) {
                self.deferred.swap_remove(i);
                self.free.push(gref);
                // SAFETY: the remote no longer maps the page and its grant is revoked.
                unsafe { mm::free_pages(addr, 1) };
            } else {
                i += 1;
            }
        }
    }
}

/// Grants `domid` access to the frame `pfn` of ours; returns the reference.
pub fn grant_frame(domid: DomId, pfn: u64, access: Access) -> Result<GrantRef, GrantError> {
    let frame = u32::try_from(pfn).map_err(|_| GrantError::Exhausted)?;
    TABLE.with(|t| {
        let t = t.as_mut().ok_or(GrantError::Exhausted)?;
        t.retry_deferred();
        let gref = t.alloc_ref().ok_or(GrantError::Exhausted)?;
        t.permit(gref, domid, frame, access == Access::ReadOnly);
        Ok(gref)
    })
}

/// Ends the grant `gref` made with [`grant_frame`]. Returns false (and keeps the reference
/// allocated) if the remote still has it mapped.
pub fn end_grant(gref: GrantRef) -> bool {
    TABLE.with(|t| {
        let Some(t) = t.as_mut() else { return false };
        let done = t.revoke(gref);
        if done {
            t.free.push(gref);
        }
        done
    })
}

/// A zeroed page of ours granted to a remote domain. Revoked and freed on drop; if the
/// remote still maps it then, the page is kept out of reuse until it unmaps.
#[derive(Debug)]
pub struct GrantedPage {
    page: PhysPage,
    gref: GrantRef,
}

impl GrantedPage {
    /// Allocates a zeroed page and grants `domid` access to it.
    pub fn new(domid: DomId, access: Access) -> Result<Self, GrantError> {
        let addr = mm::alloc_pages(1).ok_or(GrantError::Exhausted)?;
        // SAFETY: a fresh page owned by this value until drop, accessed only via `PhysPage`.
        let page = unsafe { PhysPage::new(addr, true) };
        match grant_frame(domid, plat::frame_of(addr), access) {
            Ok(gref) => Ok(Self { page, gref }),
            Err(e) => {
                // SAFETY: never granted, never shared.
                unsafe { mm::free_pages(addr, 1) };
                Err(e)
            }
        }
    }

    /// The page's physical address.
    pub fn addr(&self) -> u64 {
        self.page.addr()
    }
}

impl Drop for GrantedPage {
    fn drop(&mut self) {
        let (gref, addr) = (self.gref, self.page.addr());
        TABLE.with(|t| {
            let Some(t) = t.as_mut() else { return };
            if t.revoke(gref) {
                t.free.push(gref);
                // SAFETY: the grant is revoked and the remote does not map the page.
                unsafe { mm::free_pages(addr, 1) };
            } else {
                log::debug!("grant {gref} still mapped by the remote: deferring its release");
                t.deferred.push((gref, addr));
            }
        });
    }
}

impl SharedMem for GrantedPage {
    fn size(&self) -> usize {
        self.page.size()
    }
    fn writable(&self) -> bool {
        true
    }
    fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), MemError> {
        self.page.read(offset, buf)
    }
    fn write(&self, offset: usize, data: &[u8]) -> Result<(), MemError> {
        self.page.write(offset, data)
    }
    fn load_u32(&self, offset: usize) -> Result<u32, MemError> {
        self.page.load_u32(offset)
    }
    fn store_u32(&self, offset: usize, value: u32) -> Result<(), MemError> {
        self.page.store_u32(offset, value)
    }
}

impl minios::platform::GrantedPage for GrantedPage {
    fn gref(&self) -> GrantRef {
        self.gref
    }
}

/// A foreign grant mapped into a window frame of ours. Unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    page: PhysPage,
    slot: ForeignSlot,
    handle: GrantHandle,
    /// The foreign frame's machine address (`dev_bus_addr` of the map operation; Xen
    /// returns it for every successful map and, for a PV domain with passthrough devices,
    /// maps it 1:1 in the domain's IOMMU context for as long as the grant is mapped).
    bus: u64,
}

impl Mapping {
    /// The guest-physical address the foreign page is mapped at.
    pub fn addr(&self) -> u64 {
        self.page.addr()
    }
}

/// Maps each of `grefs` (granted by `domid`) in one hypercall; one result per reference.
pub fn map_batch(
    domid: DomId,
    grefs: &[GrantRef],
    access: Access,
) -> Vec<Result<Mapping, GrantError>> {
    let mut flags = plat::FOREIGN_MAP_FLAGS;
    if access == Access::ReadOnly {
        flags |= GNTMAP_READONLY;
    }
    // Reserve one window frame per reference; references we cannot place are not attempted.
    let slots: Vec<Option<ForeignSlot>> =
        grefs.iter().map(|_| plat::alloc_foreign_slot()).collect();
    let mut ops: Vec<GnttabMapGrantRef> = grefs
        .iter()
        .zip(&slots)
        .filter_map(|(&gref, slot)| {
            slot.map(|slot| GnttabMapGrantRef {
                host_addr: slot.host_addr,
                flags,
                gref,
                dom: domid,
                ..Default::default()
            })
        })
        .collect();
    // SAFETY: each op's host address is a window frame we just reserved: no RAM, nothing
    // else mapped there.
    let batch = unsafe { crate::xen::gnttab::map_grant_refs(&mut ops) };
    let mut ops = ops.into_iter();
    slots
        .into_iter()
        .map(|slot| {
            let Some(slot) = slot else {
                return Err(GrantError::Exhausted);
            };
            let op = ops.next().unwrap_or_default();
            if batch.is_err() || op.status != GNTST_OKAY {
                plat::free_foreign_slot(slot);
                return Err(match batch {
                    Err(_) => GrantError::NotAttempted,
                    Ok(()) => GrantError::Status(op.status),
                });
            }
            // SAFETY: Xen mapped the foreign page at this window frame; it stays there until
            // this `Mapping` unmaps it, and is only accessed through `PhysPage`.
            let page = unsafe { PhysPage::new(slot.addr, access == Access::ReadWrite) };
            Ok(Mapping {
                page,
                slot,
                handle: op.handle,
                bus: op.dev_bus_addr,
            })
        })
        .collect()
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let mut op = [GnttabUnmapGrantRef {
            host_addr: self.slot.host_addr,
            dev_bus_addr: 0,
            handle: self.handle,
            status: 0,
        }];
        // SAFETY: this mapping is being dropped; nothing accesses the page any more.
        let res = unsafe { crate::xen::gnttab::unmap_grant_refs(&mut op) };
        if res.is_ok() && op[0].status == GNTST_OKAY {
            plat::free_foreign_slot(self.slot);
        } else {
            // Keep the window frame reserved: something may still be mapped there.
            log::error!(
                "unmapping grant handle {} at {:#x} failed: {res:?} status {}",
                self.handle,
                self.page.addr(),
                op[0].status
            );
        }
    }
}

impl SharedMem for Mapping {
    fn size(&self) -> usize {
        self.page.size()
    }
    fn writable(&self) -> bool {
        self.page.writable()
    }
    fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), MemError> {
        self.page.read(offset, buf)
    }
    fn write(&self, offset: usize, data: &[u8]) -> Result<(), MemError> {
        self.page.write(offset, data)
    }
    fn load_u32(&self, offset: usize) -> Result<u32, MemError> {
        self.page.load_u32(offset)
    }
    fn store_u32(&self, offset: usize, value: u32) -> Result<(), MemError> {
        self.page.store_u32(offset, value)
    }
    fn dma_addr(&self) -> Option<u64> {
        // Only meaningful where a device can reach it: a PV domain (machine addresses,
        // grant maps mirrored in the IOMMU). A page-aligned, non-zero address or none.
        (plat::is_pv() && self.bus != 0 && self.bus % PAGE_SIZE == 0).then_some(self.bus)
    }
}

/// The hypercall form of one side of a copy: a foreign grant, or our own frame.
fn copy_ptr(
    foreign: Option<&minios::platform::ForeignRef>,
    local: *const u8,
) -> (GnttabCopyPtr, bool) {
    match foreign {
        Some(r) => (GnttabCopyPtr::from_gref(r.gref, r.domid, r.offset), true),
        None => {
            let addr = local as u64;
            (
                GnttabCopyPtr::from_gmfn(
                    plat::frame_of(addr),
                    DOMID_SELF,
                    (addr % PAGE_SIZE) as u16,
                ),
                false,
            )
        }
    }
}

/// Performs `ops` with `GNTTABOP_copy`, in batches, setting each op's status.
pub fn copy(ops: &mut [CopyOp<'_>]) {
    for chunk in ops.chunks_mut(COPY_BATCH) {
        let mut raw: Vec<GnttabCopy> = Vec::with_capacity(chunk.len());
        let mut index: Vec<usize> = Vec::with_capacity(chunk.len());
        for (i, op) in chunk.iter_mut().enumerate() {
            if let Err(e) = op.validate() {
                op.status = Err(e);
                continue;
            }
            let (source, src_gref) = match &op.src {
                CopySrc::Foreign(r) => copy_ptr(Some(r), core::ptr::null()),
                CopySrc::Local(b) => copy_ptr(None, b.as_ptr()),
            };
            let (dest, dst_gref) = match &mut op.dst {
                CopyDst::Foreign(r) => copy_ptr(Some(r), core::ptr::null()),
                CopyDst::Local(b) => copy_ptr(None, b.as_mut_ptr()),
            };
            let mut flags = 0;
            if src_gref {
                flags |= GNTCOPY_SOURCE_GREF;
            }
            if dst_gref {
                flags |= GNTCOPY_DEST_GREF;
            }
            raw.push(GnttabCopy {
                source,
                dest,
                len: op.len,
                flags,
                status: 0,
            });
            index.push(i);
        }
        // SAFETY: local sides are live slices borrowed by the ops for this call (a shared
        // slice as a source, an exclusive one as a destination), validated not to cross a
        // page; identity mapping makes their frame numbers our guest frames.
        let res = unsafe { crate::xen::gnttab::copy(&mut raw) };
        for (op, &i) in raw.iter().zip(&index) {
            chunk[i].status = match (res, op.status) {
                (Err(_), _) => Err(GrantError::NotAttempted),
                (Ok(()), GNTST_OKAY) => Ok(()),
                (Ok(()), s) => Err(GrantError::Status(s)),
            };
        }
    }
}
