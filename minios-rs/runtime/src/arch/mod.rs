//! Architecture and platform code, the only place that knows how this domain was booted.
//!
//! # The platform boundary
//! Everything above this module (events, grants, xenstore, console, the `minios` traits) is
//! written against a small set of platform operations ([`platform`]), which `x86_64::pvh`
//! implements for PVH and `x86_64::pv` for PV (needed for PCI passthrough, and cheaper where
//! VM exits are expensive). One image boots either way; the entry taken picks the platform:
//!
//! | operation | PVH | PV |
//! |---|---|---|
//! | boot entry, page tables | `PHYS32_ENTRY` note, own identity map | `ENTRY` note, Xen-built page tables extended over all RAM, `start_info` |
//! | frame numbers for Xen (`frame_of`) | guest frame = address >> 12 | machine frame from the p2m list |
//! | memory map | `XENMEM_memory_map` / start_info memmap | `start_info.nr_pages` + p2m |
//! | shared info | `XENMEM_add_to_physmap` into a page of ours | `start_info.shared_info` mfn, mapped by PTE |
//! | console / xenstore ring | `HVMOP_get_param` | `start_info` fields |
//! | [`platform::wait_for_event`] | `SCHEDOP_poll` on the bound ports | `SCHEDOP_poll` (same) |
//! | foreign map address | a guest frame in the unpopulated window | a window virtual address (page table made on demand) |
//! | grant-table frames | `XENMAPSPACE_grant_table` into window frames | `GNTTABOP_setup_table` + mapping |
//!

#[cfg(target_arch = "x86_64")]
pub mod x86_64;

#[cfg(target_arch = "x86_64")]
pub use x86_64::{cpu, early_console, hypercall, platform};

use core::sync::atomic::{AtomicBool, Ordering};

static ON_XEN: AtomicBool = AtomicBool::new(false);

/// Whether we run under Xen (false: plain QEMU/KVM bring-up, or before detection).
pub fn on_xen() -> bool {
    ON_XEN.load(Ordering::Relaxed)
}

pub(crate) fn set_on_xen(v: bool) {
    ON_XEN.store(v, Ordering::Relaxed);
}
