//! `HYPERVISOR_memory_op`: the memory map and placing Xen pages in our physical space.

use super::{addr, addr_mut, op2};
use xen_abi::hypercall::memory::{
    E820Entry, XenAddToPhysmap, XenMemoryMap, XENMEM_ADD_TO_PHYSMAP, XENMEM_MEMORY_MAP,
};
use xen_abi::hypercall::{DOMID_SELF, HYPERVISOR_MEMORY_OP};
use xen_abi::XenErrno;

/// Fills `buf` with this domain's E820 memory map; returns the number of entries stored.
pub fn memory_map(buf: &mut [E820Entry]) -> Result<usize, XenErrno> {
    let mut arg = XenMemoryMap {
        nr_entries: u32::try_from(buf.len()).map_err(|_| XenErrno::EINVAL)?,
        buffer: buf.as_mut_ptr() as u64,
    };
    // SAFETY: XENMEM_memory_map writes at most `nr_entries` packed 20-byte entries into the
    // live buffer and updates `nr_entries`.
    unsafe {
        op2(
            HYPERVISOR_MEMORY_OP,
            XENMEM_MEMORY_MAP.into(),
            addr_mut(&mut arg),
        )
    }?;
    Ok((arg.nr_entries as usize).min(buf.len()))
}

/// Makes page `idx` of `space` (`XENMAPSPACE_*`: shared info, grant table frame) appear at
/// guest frame `gpfn`. Whatever was at `gpfn` is replaced.
///
/// # Safety
/// `gpfn` must be a frame the caller owns and that nothing else accesses as ordinary memory:
/// its contents change under Rust's feet (and a RAM page there is given back to Xen).
pub unsafe fn add_to_physmap(space: u32, idx: u64, gpfn: u64) -> Result<(), XenErrno> {
    let arg = XenAddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space,
        idx,
        gpfn,
    };
    // SAFETY: XENMEM_add_to_physmap reads one `xen_add_to_physmap`; the caller owns `gpfn`.
    unsafe {
        op2(
            HYPERVISOR_MEMORY_OP,
            XENMEM_ADD_TO_PHYSMAP.into(),
            addr(&arg),
        )
    }
    .map(drop)
}
