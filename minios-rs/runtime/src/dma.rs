//! Memory a passed-through device reads and writes (DMA).
//!
//! The IOMMU maps a PV domain's pages at their **machine** addresses, so devices are
//! programmed with machine addresses ([`machine_addr`]). A buffer the device reads as one
//! range must be machine-contiguous: single pages always are; [`DmaRegion::alloc`] makes
//! larger regions contiguous with `XENMEM_exchange` where the domain's memory is not.

use crate::arch::platform::{frame_of, is_pv};
use minios::platform::PAGE_SIZE;
use xen_abi::XenErrno;

const PAGE: u64 = PAGE_SIZE as u64;

/// The machine address a device uses for our byte at `va` (RAM, mapped at its
/// pseudo-physical address); `None` on PVH, where no device can be ours.
pub fn machine_addr(va: u64) -> Option<u64> {
    if !is_pv() {
        return None;
    }
    match frame_of(va) {
        u64::MAX => None,
        mfn => Some((mfn << 12) | (va & (PAGE - 1))),
    }
}

/// The machine address of `va..va + len` if a device can reach it as one range (every page
/// boundary it crosses continues in the next machine frame).
pub fn contiguous_machine_addr(va: u64, len: u64) -> Option<u64> {
    let start = machine_addr(va)?;
    let last = va.checked_add(len.max(1) - 1)?;
    let mut page = va & !(PAGE - 1);
    let mut expect = start & !(PAGE - 1);
    while page < (last & !(PAGE - 1)) {
        page += PAGE;
        expect += PAGE;
        if machine_addr(page)? != expect {
            return None;
        }
    }
    Some(start)
}

/// Zeroed pages for buffers a device reaches one page at a time (each buffer inside one
/// page, translated with [`machine_addr`] when handed over): no contiguity needed, so no
/// exchange with Xen. Freed on drop.
#[derive(Debug)]
pub struct DmaPages {
    va: u64,
    pages: u64,
}

impl DmaPages {
    /// Allocates `pages` zeroed pages (PV only: only a PV domain owns devices).
    pub fn alloc(pages: u64) -> Result<Self, XenErrno> {
        if !is_pv() {
            return Err(XenErrno::ENODEV);
        }
        let pages = pages.max(1);
        let va = crate::mm::alloc_pages(pages).ok_or(XenErrno::ENOMEM)?;
        Ok(Self { va, pages })
    }

    /// Our address of the first page.
    pub fn va(&self) -> u64 {
        self.va
    }

    /// Number of pages.
    pub fn pages(&self) -> u64 {
        self.pages
    }
}

impl Drop for DmaPages {
    fn drop(&mut self) {
        // SAFETY: the owner drops the pages only once the device no longer uses them.
        unsafe { crate::mm::free_pages(self.va, self.pages) }
    }
}

/// Zeroed, machine-contiguous pages for a device, freed on drop.
#[derive(Debug)]
pub struct DmaRegion {
    va: u64,
    pages: u64,
    maddr: u64,
}

impl DmaRegion {
    /// Allocates at least `pages` pages (rounded up to a power of two when they must be
    /// exchanged for contiguous ones).
    pub fn alloc(pages: u64) -> Result<Self, XenErrno> {
        if !is_pv() {
            return Err(XenErrno::ENODEV);
        }
        let pages = pages.max(1).next_power_of_two();
        let va = crate::mm::alloc_pages(pages).ok_or(XenErrno::ENOMEM)?;
        let maddr = match contiguous_machine_addr(va, pages * PAGE) {
            Some(m) => m,
            // SAFETY: the pages were just allocated and nothing uses them.
            None => match unsafe { crate::arch::x86_64::pv::make_contiguous(va, pages) } {
                Ok(mfn) => mfn << 12,
                Err(e) => {
                    // SAFETY: ours, unused (the exchange put the original pages back).
                    unsafe { crate::mm::free_pages(va, pages) };
                    return Err(e);
                }
            },
        };
        Ok(Self { va, pages, maddr })
    }

    /// Our address of the region.
    pub fn va(&self) -> u64 {
        self.va
    }

    /// The address the device uses.
    pub fn maddr(&self) -> u64 {
        self.maddr
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        (self.pages * PAGE) as usize
    }

    /// Whether the region is empty (never: at least one page).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Gives up ownership without freeing (the caller frees with [`DmaRegion::free_raw`]).
    pub fn into_raw(self) -> (u64, u64, u64) {
        let parts = (self.va, self.pages, self.maddr);
        core::mem::forget(self);
        parts
    }

    /// Frees a region given up with [`DmaRegion::into_raw`].
    ///
    /// # Safety
    /// The values must come from `into_raw`, and nothing (no device) may use the region.
    pub unsafe fn free_raw(va: u64, pages: u64) {
        // SAFETY: guaranteed by the caller.
        unsafe { crate::mm::free_pages(va, pages) }
    }
}

impl Drop for DmaRegion {
    fn drop(&mut self) {
        // SAFETY: the owner drops the region only once the device no longer uses it.
        unsafe { crate::mm::free_pages(self.va, self.pages) }
    }
}
