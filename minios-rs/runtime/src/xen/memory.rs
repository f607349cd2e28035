//! `HYPERVISOR_memory_op`: the memory map and placing Xen pages in our physical space.

use super::{addr, addr_mut, op2};
use xen_abi::hypercall::memory::{
    E820Entry, XenAddToPhysmap, XenMemoryExchange, XenMemoryMap, XenMemoryReservation,
    XENMEM_ADD_TO_PHYSMAP, XENMEM_EXCHANGE, XENMEM_MEMORY_MAP,
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

/// Exchanges the single pages whose machine frames are in `input` for one machine-contiguous
/// extent of `input.len()` pages (a power of two) that Xen enters in our physmap at
/// pseudo-physical frame `first_pfn`; returns its first machine frame (`XENMEM_exchange`).
///
/// # Safety
/// The input pages must be ours and unreferenced (not mapped anywhere, nothing reading
/// them): Xen takes them away. The pseudo-physical frames from `first_pfn` must be those
/// the input pages had, and nothing may use them until they are mapped again.
pub unsafe fn exchange_for_contiguous(input: &mut [u64], first_pfn: u64) -> Result<u64, XenErrno> {
    let n = input.len();
    if n == 0 || !n.is_power_of_two() {
        return Err(XenErrno::EINVAL);
    }
    let mut out = first_pfn;
    let mut arg = XenMemoryExchange {
        input: XenMemoryReservation {
            extent_start: input.as_mut_ptr() as u64,
            nr_extents: n as u64,
            extent_order: 0,
            mem_flags: 0,
            domid: DOMID_SELF,
        },
        output: XenMemoryReservation {
            extent_start: (&raw mut out) as u64,
            nr_extents: 1,
            extent_order: n.trailing_zeros(),
            mem_flags: 0,
            domid: DOMID_SELF,
        },
        nr_exchanged: 0,
    };
    // SAFETY: XENMEM_exchange reads the input frame list, reads and writes the one output
    // entry and the struct; the caller vouches for the pages.
    unsafe {
        op2(
            HYPERVISOR_MEMORY_OP,
            XENMEM_EXCHANGE.into(),
            addr_mut(&mut arg),
        )
    }?;
    if arg.nr_exchanged != n as u64 {
        return Err(XenErrno::ENOMEM);
    }
    Ok(out)
}
