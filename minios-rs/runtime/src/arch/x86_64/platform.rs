//! The platform operations the rest of the runtime uses, for whichever way this domain was
//! booted: PVH ([`super::pvh`]) or PV ([`super::pv`]). One image carries both entry points;
//! the PV entry records that it ran, and each operation below picks its implementation.

use crate::mm::page::PhysPage;
use core::sync::atomic::{AtomicBool, Ordering};
use xen_abi::hypercall::grant_table::GNTMAP_HOST_MAP;
use xen_abi::{EvtchnPort, XenErrno};

pub use super::pv::{boot as boot_pv, BootArgs as PvBootArgs};
pub use super::pvh::{boot, BootArgs};

static PV: AtomicBool = AtomicBool::new(false);

/// Records that the domain booted as PV (the PV entry does this first).
pub(super) fn set_pv() {
    PV.store(true, Ordering::Relaxed);
}

/// Whether the domain booted as PV.
pub fn is_pv() -> bool {
    PV.load(Ordering::Relaxed)
}

/// Blocks the vCPU in Xen until one of `ports` is pending (checked after the vCPU is marked
/// blocked, so nothing that arrived before is missed), any other port of ours becomes
/// pending, or Xen system time reaches `timeout` (0: none). See `events` for the design.
/// The same on PV and PVH: events stay masked, nothing is delivered as an interrupt.
pub fn wait_for_event(ports: &[EvtchnPort], timeout: u64) {
    if let Err(e) = crate::xen::sched::poll(ports, timeout) {
        crate::control::fatal(format_args!("SCHEDOP_poll failed: {e:?}"));
    }
}

/// Where one foreign grant gets mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForeignSlot {
    /// The `host_addr` to pass to `GNTTABOP_map_grant_ref` / `unmap_grant_ref` (PVH: a
    /// guest-physical address; PV: a virtual address, the same number).
    pub host_addr: u64,
    /// Where we then access the page.
    pub addr: u64,
}

/// `GNTTABOP_map_grant_ref` flags for mapping a foreign page into a [`ForeignSlot`].
pub const FOREIGN_MAP_FLAGS: u32 = GNTMAP_HOST_MAP;

/// Reserves a slot for one foreign page: a frame of the mapping window (no RAM behind it;
/// PVH's identity page tables already map it, on PV its page table is made here).
pub fn alloc_foreign_slot() -> Option<ForeignSlot> {
    let pfn = crate::mm::alloc_window(1)?;
    let addr = pfn << 12;
    if is_pv() && super::pv::prepare_window(addr).is_err() {
        crate::mm::free_window(pfn, 1);
        return None;
    }
    Some(ForeignSlot {
        host_addr: addr,
        addr,
    })
}

/// Returns a slot once nothing is mapped there.
pub fn free_foreign_slot(slot: ForeignSlot) {
    crate::mm::free_window(slot.addr >> 12, 1);
}

/// The frame number Xen knows our memory at `addr` by (grant entries, `GNTTABOP_copy`): on
/// PVH the guest frame (we identity-map guest-physical memory), on PV the machine frame.
pub fn frame_of(addr: u64) -> u64 {
    if is_pv() {
        super::pv::frame_of(addr)
    } else {
        addr >> 12
    }
}

/// Reserves address space for `frames` grant-table frames (contiguous, so the table is one
/// array); returns its address.
pub fn reserve_grant_table(frames: u32) -> Option<u64> {
    crate::mm::alloc_window(u64::from(frames)).map(|pfn| pfn << 12)
}

/// Makes grant-table frame `idx` appear at `table + idx * 4096`.
///
/// # Safety
/// `table` must come from [`reserve_grant_table`] with more than `idx` frames.
pub unsafe fn map_grant_table_frame(table: u64, idx: u32) -> Result<(), XenErrno> {
    if is_pv() {
        // SAFETY: guaranteed by the caller.
        unsafe { super::pv::map_grant_table_frame(table, idx) }
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { super::pvh::map_grant_table_frame(table, idx) }
    }
}

/// The xenstore ring page and event channel Xen set up for us.
pub fn xenstore_ring() -> Option<(PhysPage, EvtchnPort)> {
    if is_pv() {
        super::pv::xenstore_ring()
    } else {
        super::pvh::xenstore_ring()
    }
}
