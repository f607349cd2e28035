//! `HYPERVISOR_memory_op(cmd, arg)` (`memory.h`): memory map, physmap, reservations.

use crate::wire::impl_wire;
use crate::DomId;

/// Add pages to the domain (arg: [`XenMemoryReservation`]).
pub const XENMEM_INCREASE_RESERVATION: u32 = 0;
/// Give pages back to Xen (arg: [`XenMemoryReservation`]).
pub const XENMEM_DECREASE_RESERVATION: u32 = 1;
/// Highest machine frame of mapped RAM (arg: none).
pub const XENMEM_MAXIMUM_RAM_PAGE: u32 = 2;
/// Current reservation in pages (arg: [`XenMemoryDomain`]).
pub const XENMEM_CURRENT_RESERVATION: u32 = 3;
/// Maximum reservation in pages (arg: [`XenMemoryDomain`]).
pub const XENMEM_MAXIMUM_RESERVATION: u32 = 4;
/// Populate guest-physical frames with memory (arg: [`XenMemoryReservation`]).
pub const XENMEM_POPULATE_PHYSMAP: u32 = 6;
/// Map a Xen-owned page (shared info, grant table) into the physmap (arg:
/// [`XenAddToPhysmap`]).
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
/// The domain's pseudo-physical memory map (arg: [`XenMemoryMap`]).
pub const XENMEM_MEMORY_MAP: u32 = 9;
/// The host's physical memory map (arg: [`XenMemoryMap`]; privileged).
pub const XENMEM_MACHINE_MEMORY_MAP: u32 = 10;
/// Exchange pages for others of different constraints (arg: [`XenMemoryExchange`]).
pub const XENMEM_EXCHANGE: u32 = 11;
/// Highest guest frame in use (arg: [`XenMemoryDomain`]).
pub const XENMEM_MAXIMUM_GPFN: u32 = 14;
/// Remove a page from the physmap (arg: [`XenRemoveFromPhysmap`]).
pub const XENMEM_REMOVE_FROM_PHYSMAP: u32 = 15;

/// [`XenAddToPhysmap::space`]: the shared info page (`XENMAPSPACE_shared_info`).
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// [`XenAddToPhysmap::space`]: a grant table frame (`XENMAPSPACE_grant_table`).
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// [`XenAddToPhysmap::space`]: a guest frame (`XENMAPSPACE_gmfn`).
pub const XENMAPSPACE_GMFN: u32 = 2;
/// [`XenAddToPhysmap::space`]: a range of guest frames (`XENMAPSPACE_gmfn_range`).
pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;
/// A frame of another domain (`XENMAPSPACE_gmfn_foreign`; batch op only).
pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;
/// Device MMIO (`XENMAPSPACE_dev_mmio`; Arm only).
pub const XENMAPSPACE_DEV_MMIO: u32 = 5;
/// OR into [`XenAddToPhysmap::idx`] with [`XENMAPSPACE_GRANT_TABLE`] for a v2 status frame.
pub const XENMAPIDX_GRANT_TABLE_STATUS: u64 = 0x8000_0000;

/// [`XenMemoryReservation::mem_flags`]: populate on demand (`XENMEMF_populate_on_demand`).
pub const XENMEMF_POPULATE_ON_DEMAND: u32 = 1 << 16;

/// [`XenMemoryReservation::mem_flags`] limiting machine addresses to `bits` bits
/// (`XENMEMF_address_bits`).
pub const fn xenmemf_address_bits(bits: u32) -> u32 {
    bits
}

/// `struct xen_memory_reservation`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryReservation {
    /// Guest address of an array of `nr_extents` frame numbers (`u64`), in or out per op.
    pub extent_start: u64,
    /// Number of extents.
    pub nr_extents: u64,
    /// Each extent is 2^`extent_order` pages.
    pub extent_order: u32,
    /// `XENMEMF_*` flags.
    pub mem_flags: u32,
    /// The domain ([`DOMID_SELF`](super::DOMID_SELF)).
    pub domid: DomId,
}

/// `struct xen_memory_exchange`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryExchange {
    /// Extents to give up (`in`).
    pub input: XenMemoryReservation,
    /// Extents to receive (`out`).
    pub output: XenMemoryReservation,
    /// OUT: number of input extents exchanged so far.
    pub nr_exchanged: u64,
}

/// `struct xen_memory_domain`: argument of the reservation queries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryDomain {
    /// The domain queried ([`DOMID_SELF`](super::DOMID_SELF)).
    pub domid: DomId,
}

/// `struct xen_add_to_physmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenAddToPhysmap {
    /// The domain whose physmap changes.
    pub domid: DomId,
    /// Number of pages for [`XENMAPSPACE_GMFN_RANGE`].
    pub size: u16,
    /// A `XENMAPSPACE_*` value.
    pub space: u32,
    /// Index into the space (e.g. grant table frame number).
    pub idx: u64,
    /// Guest frame where the page should appear.
    pub gpfn: u64,
}

/// `struct xen_remove_from_physmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenRemoveFromPhysmap {
    /// The domain whose physmap changes.
    pub domid: DomId,
    /// Guest frame to remove.
    pub gpfn: u64,
}

/// `struct xen_memory_map`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryMap {
    /// IN: capacity of `buffer` in entries; OUT: entries stored.
    pub nr_entries: u32,
    /// Guest address of an array of [`E820Entry`].
    pub buffer: u64,
}

/// E820 type: usable RAM.
pub const E820_RAM: u32 = 1;
/// E820 type: reserved.
pub const E820_RESERVED: u32 = 2;
/// E820 type: ACPI tables (reclaimable).
pub const E820_ACPI: u32 = 3;
/// E820 type: ACPI non-volatile storage.
pub const E820_NVS: u32 = 4;
/// E820 type: unusable memory.
pub const E820_UNUSABLE: u32 = 5;

/// One entry of the [`XENMEM_MEMORY_MAP`] buffer: the BIOS INT 15h/E820 format, packed to 20
/// bytes (Xen's `struct e820entry`; not in the public headers).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// One of the `E820_*` types.
    pub type_: u32,
}
impl_wire!(E820Entry { addr, size, type_ });

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WireStruct;

    #[test]
    fn e820_entries_are_packed() {
        let mut raw = [0u8; 40];
        raw[8..16].copy_from_slice(&0x9fc00u64.to_le_bytes());
        raw[16..20].copy_from_slice(&E820_RAM.to_le_bytes());
        raw[20..28].copy_from_slice(&0x10_0000u64.to_le_bytes());
        raw[36..40].copy_from_slice(&E820_RESERVED.to_le_bytes());
        let first = E820Entry::read_from(&raw).unwrap();
        let second = E820Entry::read_from(&raw[E820Entry::SIZE..]).unwrap();
        assert_eq!({ first.size }, 0x9fc00);
        assert_eq!({ first.type_ }, E820_RAM);
        assert_eq!(
            ({ second.addr }, { second.type_ }),
            (0x10_0000, E820_RESERVED)
        );
    }
}
