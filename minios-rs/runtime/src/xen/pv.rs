//! Hypercalls only a PV guest makes: page-table updates through Xen, the virtual trap table,
//! and the Xen version (a PV guest cannot rely on CPUID to see Xen).

use super::{addr, op3};
use crate::arch::hypercall::hypercall;
use xen_abi::hypercall::pv::{MmuUpdate, TrapInfo};
use xen_abi::hypercall::version::XENVER_VERSION;
use xen_abi::hypercall::{
    DOMID_SELF, HYPERVISOR_MMU_UPDATE, HYPERVISOR_SET_TRAP_TABLE, HYPERVISOR_UPDATE_VA_MAPPING,
    HYPERVISOR_XEN_VERSION,
};
use xen_abi::{DomId, XenErrno};

/// Applies page-table updates (`HYPERVISOR_mmu_update`); Xen validates each one (a frame
/// used as a page table must not be mapped writable anywhere, and so on).
///
/// # Safety
/// The updates must not unmap or remap memory Rust code still uses through references.
pub unsafe fn mmu_update(reqs: &[MmuUpdate]) -> Result<(), XenErrno> {
    // SAFETY: guaranteed by the caller.
    unsafe { mmu_update_as(reqs, DOMID_SELF) }
}

/// [`mmu_update`] with the frames named by the entries owned by `owner`: [`DOMID_SELF`] for
/// our RAM, `DOMID_IO` for device memory we were given access to (a BAR).
///
/// # Safety
/// As for [`mmu_update`].
pub unsafe fn mmu_update_as(reqs: &[MmuUpdate], owner: DomId) -> Result<(), XenErrno> {
    if reqs.is_empty() {
        return Ok(());
    }
    let mut done: u32 = 0;
    // SAFETY: Xen reads `reqs.len()` `mmu_update` entries and writes the count done; the
    // caller vouches for the effect of the updates.
    let r = unsafe {
        hypercall(
            HYPERVISOR_MMU_UPDATE,
            reqs.as_ptr() as u64,
            reqs.len() as u64,
            (&raw mut done) as u64,
            u64::from(owner),
            0,
        )
    };
    XenErrno::check(r).map(drop)
}

/// Sets the page-table entry that maps virtual address `va` to `pte`
/// (`HYPERVISOR_update_va_mapping`); `flags` is a `UVMF_*` flush mode.
///
/// # Safety
/// As for [`mmu_update`]: nothing may still use what `va` mapped before.
pub unsafe fn update_va_mapping(va: u64, pte: u64, flags: u64) -> Result<(), XenErrno> {
    // SAFETY: no pointer is passed; the caller vouches for the effect on our address space.
    unsafe { op3(HYPERVISOR_UPDATE_VA_MAPPING, va, pte, flags) }.map(drop)
}

/// Installs the virtual trap table (`HYPERVISOR_set_trap_table`); `table` must end with an
/// entry whose address is 0.
pub fn set_trap_table(table: &[TrapInfo]) -> Result<(), XenErrno> {
    if table.last().is_none_or(|t| t.address != 0) {
        return Err(XenErrno::EINVAL);
    }
    // SAFETY: Xen reads the zero-terminated array (checked above); a handler address only
    // matters once an exception happens, and then Xen jumps there in our context.
    unsafe { op3(HYPERVISOR_SET_TRAP_TABLE, addr(&table[0]), 0, 0) }.map(drop)
}

/// The Xen version: major in the high 16 bits, minor in the low.
pub fn xen_version() -> Result<u32, XenErrno> {
    // SAFETY: XENVER_version takes no argument buffer.
    unsafe { op3(HYPERVISOR_XEN_VERSION, XENVER_VERSION.into(), 0, 0) }.map(|v| v as u32)
}
