//! A PV guest's page tables. Xen built them at boot and keeps them read-only to us; every
//! change goes through `mmu_update`/`update_va_mapping`, which Xen validates. Entries name
//! *machine* frames, so this module also translates between our pseudo-physical frames
//! (`pfn`, what the rest of the runtime calls physical addresses) and machine frames (`mfn`)
//! with the domain builder's p2m list and Xen's read-only m2p table.
//!
//! The runtime's address-space model holds on PV as on PVH: virtual address = pseudo-physical
//! address for all RAM (the builder maps the boot region that way with `VIRT_BASE` 0 and
//! [`map_ram`] extends it to the rest), and the mapping window lies above RAM.

use crate::xen::pv::mmu_update_as;
use crate::xen::pv::{mmu_update, update_va_mapping};
use core::sync::atomic::{AtomicU64, Ordering};
use xen_abi::hypercall::pv::{
    MmuUpdate, MACH2PHYS_VIRT_START, MMU_NORMAL_PT_UPDATE, PTE_ACCESSED, PTE_ADDR_MASK, PTE_DIRTY,
    PTE_PCD, PTE_PRESENT, PTE_PWT, PTE_RW, PTE_USER, UVMF_INVLPG,
};
use xen_abi::hypercall::DOMID_IO;
use xen_abi::XenErrno;

/// Flags of a writable data mapping and of every non-leaf entry.
pub const PTE_DATA: u64 = PTE_PRESENT | PTE_RW | PTE_USER | PTE_ACCESSED | PTE_DIRTY;
/// Flags of a read-only mapping (how a page-table page must be mapped).
const PTE_READONLY: u64 = PTE_PRESENT | PTE_USER | PTE_ACCESSED;
/// Bit 7 of a non-leaf entry: a superpage (the builder never makes them for us).
const PTE_HUGE: u64 = 1 << 7;
/// Page-table updates per `mmu_update` call when mapping RAM.
const BATCH: usize = 64;
/// No machine frame (a pfn outside our memory).
pub const INVALID_MFN: u64 = u64::MAX;

static PT_BASE: AtomicU64 = AtomicU64::new(0);
static P2M: AtomicU64 = AtomicU64::new(0);
static NR_PAGES: AtomicU64 = AtomicU64::new(0);

/// Records the boot page tables (`pt_base`, the top-level table's virtual address) and the
/// p2m list (`mfn_list`, `nr_pages` entries) from `start_info`.
///
/// # Safety
/// The values must come from this domain's `start_info`; both stay mapped for the run.
pub unsafe fn init(pt_base: u64, mfn_list: u64, nr_pages: u64) {
    PT_BASE.store(pt_base, Ordering::Relaxed);
    P2M.store(mfn_list, Ordering::Relaxed);
    NR_PAGES.store(nr_pages, Ordering::Relaxed);
}

/// The machine frame behind our pseudo-physical frame `pfn`, or [`INVALID_MFN`].
pub fn mfn_of(pfn: u64) -> u64 {
    if pfn >= NR_PAGES.load(Ordering::Relaxed) {
        return INVALID_MFN;
    }
    let p2m = P2M.load(Ordering::Relaxed) as *const u64;
    // SAFETY: the p2m list has `nr_pages` entries and stays mapped (`init` contract).
    unsafe { p2m.add(pfn as usize).read_volatile() }
}

/// Records machine frame `mfn` for our pseudo-physical frame `pfn` in the p2m list (after
/// Xen gave the frame new memory, e.g. in a memory exchange).
///
/// # Safety
/// `mfn` must be the frame Xen now backs `pfn` with.
pub unsafe fn set_mfn(pfn: u64, mfn: u64) {
    if pfn >= NR_PAGES.load(Ordering::Relaxed) {
        return;
    }
    let p2m = P2M.load(Ordering::Relaxed) as *mut u64;
    // SAFETY: the p2m list has `nr_pages` entries, is ours and writable (the builder maps
    // it in the boot region); the caller vouches for the value.
    unsafe { p2m.add(pfn as usize).write_volatile(mfn) }
}

/// Our pseudo-physical frame for machine frame `mfn` (Xen's m2p table).
pub fn pfn_of(mfn: u64) -> u64 {
    let m2p = MACH2PHYS_VIRT_START as *const u64;
    // SAFETY: Xen maps the m2p table read-only at this address into every 64-bit PV guest,
    // covering every machine frame; the frames we ask about are our own.
    unsafe { m2p.add(mfn as usize).read_volatile() }
}

/// Index into the level-`level` table (1 = the table of 4 KiB pages, 4 = the top) for `va`.
pub const fn table_index(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * (level - 1))) & 511
}

/// Reads entry `idx` of the page table at virtual address `table`.
fn read_entry(table: u64, idx: u64) -> u64 {
    // SAFETY: `table` is a page-table page mapped (read-only) at its pseudo-physical
    // address, as every table reachable from our top level is; `idx` < 512.
    unsafe { ((table + idx * 8) as *const u64).read_volatile() }
}

/// The machine address of the level-1 entry that maps `va`, creating missing intermediate
/// tables from pages `alloc` hands out (zeroed, mapped writable, pseudo-physical address).
pub fn l1_entry(va: u64, alloc: &mut dyn FnMut() -> Option<u64>) -> Result<u64, XenErrno> {
    let top = PT_BASE.load(Ordering::Relaxed);
    let mut table_va = top;
    let mut table_mfn = mfn_of(top >> 12);
    for level in (2..=4).rev() {
        let idx = table_index(va, level);
        let mut entry = read_entry(table_va, idx);
        if entry & PTE_PRESENT == 0 {
            let page = alloc().ok_or(XenErrno::ENOMEM)?;
            let mfn = mfn_of(page >> 12);
            // SAFETY: a fresh zeroed page nobody references; a table page must be mapped
            // read-only before Xen accepts it as one.
            unsafe { update_va_mapping(page, (mfn << 12) | PTE_READONLY, UVMF_INVLPG) }?;
            entry = (mfn << 12) | PTE_DATA;
            let req = MmuUpdate {
                ptr: ((table_mfn << 12) + idx * 8) | MMU_NORMAL_PT_UPDATE,
                val: entry,
            };
            // SAFETY: fills an empty entry with an empty table: nothing mapped changes.
            unsafe { mmu_update(&[req]) }?;
        }
        if entry & PTE_HUGE != 0 {
            return Err(XenErrno::EINVAL);
        }
        table_mfn = (entry & PTE_ADDR_MASK) >> 12;
        table_va = pfn_of(table_mfn) << 12;
    }
    Ok((table_mfn << 12) + table_index(va, 1) * 8)
}

/// The current level-1 entry for `va` (0 when a table on the way is missing).
pub fn pte_of(va: u64) -> u64 {
    let mut table_va = PT_BASE.load(Ordering::Relaxed);
    for level in (1..=4).rev() {
        let entry = read_entry(table_va, table_index(va, level));
        if level == 1 || entry & PTE_PRESENT == 0 || entry & PTE_HUGE != 0 {
            return if level == 1 { entry } else { 0 };
        }
        table_va = pfn_of((entry & PTE_ADDR_MASK) >> 12) << 12;
    }
    0
}

/// Maps every frame in `[first, end)` that is not mapped yet at its pseudo-physical address,
/// writable; tables come from `alloc` (which must only hand out already mapped pages).
pub fn map_ram(
    first: u64,
    end: u64,
    alloc: &mut dyn FnMut() -> Option<u64>,
) -> Result<u64, XenErrno> {
    let mut batch = [MmuUpdate::default(); BATCH];
    let mut n = 0;
    let mut mapped = 0;
    for pfn in first..end {
        let va = pfn << 12;
        let entry = l1_entry(va, alloc)?;
        let l1_va = pfn_of(entry >> 12) << 12;
        if read_entry(l1_va, (entry & 0xfff) / 8) & PTE_PRESENT != 0 {
            continue;
        }
        batch[n] = MmuUpdate {
            ptr: entry | MMU_NORMAL_PT_UPDATE,
            val: (mfn_of(pfn) << 12) | PTE_DATA,
        };
        n += 1;
        mapped += 1;
        // Flush before a table page could be needed from the frames just queued.
        if n == BATCH || (pfn + 1) % 512 == 0 {
            // SAFETY: fills empty entries with our own frames: nothing mapped changes.
            unsafe { mmu_update(&batch[..n]) }?;
            n = 0;
        }
    }
    // SAFETY: as above.
    unsafe { mmu_update(&batch[..n]) }?;
    Ok(mapped)
}

/// Maps machine frame `mfn` writable at `va`, creating tables with `alloc`.
///
/// # Safety
/// Nothing may use what `va` mapped before.
pub unsafe fn map_frame(
    va: u64,
    mfn: u64,
    alloc: &mut dyn FnMut() -> Option<u64>,
) -> Result<(), XenErrno> {
    l1_entry(va, alloc)?;
    // SAFETY: guaranteed by the caller.
    unsafe { update_va_mapping(va, (mfn << 12) | PTE_DATA, UVMF_INVLPG) }
}

/// Maps device memory (machine frame `mfn`, owned by `DOMID_IO`: a BAR the toolstack gave
/// us access to) uncached at `va`, creating tables with `alloc`.
///
/// # Safety
/// Nothing may use what `va` mapped before; the frame must be device memory.
pub unsafe fn map_io_frame(
    va: u64,
    mfn: u64,
    alloc: &mut dyn FnMut() -> Option<u64>,
) -> Result<(), XenErrno> {
    let entry = l1_entry(va, alloc)?;
    let req = MmuUpdate {
        ptr: entry | MMU_NORMAL_PT_UPDATE,
        val: (mfn << 12) | PTE_DATA | PTE_PCD | PTE_PWT,
    };
    // SAFETY: guaranteed by the caller; Xen checks our I/O memory permission. The entry
    // was not present (window space), so no TLB entry is stale.
    unsafe { mmu_update_as(&[req], DOMID_IO) }
}

/// Unmaps the page at `va`.
///
/// # Safety
/// Nothing may use the page at `va` afterwards.
pub unsafe fn unmap(va: u64) -> Result<(), XenErrno> {
    // SAFETY: guaranteed by the caller.
    unsafe { update_va_mapping(va, 0, UVMF_INVLPG) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_indices_split_a_canonical_address() {
        // 0x4020_3000: 1 GiB + 2 MiB + 3 pages.
        let va = (1 << 30) + (2 << 20) + 3 * 4096;
        assert_eq!(table_index(va, 4), 0);
        assert_eq!(table_index(va, 3), 1);
        assert_eq!(table_index(va, 2), 1);
        assert_eq!(table_index(va, 1), 3);
        // The top index of the m2p area Xen maps (0xffff_8000_0000_0000) is 256.
        assert_eq!(table_index(MACH2PHYS_VIRT_START, 4), 256);
        assert_eq!(table_index(u64::MAX, 1), 511);
    }
}
