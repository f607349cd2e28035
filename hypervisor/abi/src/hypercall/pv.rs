//! What only a PV (paravirtualised, not HVM/PVH) x86_64 guest uses: page-table updates
//! through Xen (`mmu_update`, `update_va_mapping`), the virtual trap table, the read-only
//! machine-to-physical table Xen maps into every PV guest, and the ELF note types the PV
//! domain builder reads (`xen.h`, `arch-x86/xen.h`, `arch-x86/xen-x86_64.h`, `elfnote.h`).

use crate::wire::impl_wire;

/// `mmu_update` request type in the low 2 bits of `ptr`: a checked `*ptr = val` where
/// `ptr` is the machine address of a page-table entry (`MMU_NORMAL_PT_UPDATE`).
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// `mmu_update` request type: `ptr` is the machine address of a frame of ours, `val` the
/// pseudo-physical frame the machine-to-physical table should name for it
/// (`MMU_MACHPHYS_UPDATE`).
pub const MMU_MACHPHYS_UPDATE: u64 = 1;
/// `update_va_mapping` flag: flush nothing (`UVMF_NONE`).
pub const UVMF_NONE: u64 = 0;
/// `update_va_mapping` flag: flush the whole TLB (`UVMF_TLB_FLUSH`).
pub const UVMF_TLB_FLUSH: u64 = 1;
/// `update_va_mapping` flag: flush only the one entry (`UVMF_INVLPG`).
pub const UVMF_INVLPG: u64 = 2;

/// Where Xen maps the machine-to-physical table (one `u64` per machine frame, read-only)
/// into every 64-bit PV guest (`MACH2PHYS_VIRT_START`).
pub const MACH2PHYS_VIRT_START: u64 = 0xffff_8000_0000_0000;
/// Code selector of a 64-bit PV guest kernel (`FLAT_KERNEL_CS64`, ring 3).
pub const FLAT_KERNEL_CS64: u16 = 0xe033;

/// Page-table entry bit: present (`_PAGE_PRESENT` in Xen's x86 page.h).
pub const PTE_PRESENT: u64 = 1 << 0;
/// Page-table entry bit: writable.
pub const PTE_RW: u64 = 1 << 1;
/// Page-table entry bit: user accessible (a 64-bit PV kernel runs in ring 3).
pub const PTE_USER: u64 = 1 << 2;
/// Page-table entry bit: write-through caching (`_PAGE_PWT`).
pub const PTE_PWT: u64 = 1 << 3;
/// Page-table entry bit: caching disabled (`_PAGE_PCD`); with [`PTE_PWT`] the page is
/// uncached (UC), as device registers must be.
pub const PTE_PCD: u64 = 1 << 4;
/// Page-table entry bit: accessed.
pub const PTE_ACCESSED: u64 = 1 << 5;
/// Page-table entry bit: dirty.
pub const PTE_DIRTY: u64 = 1 << 6;
/// Mask of the frame address in a page-table entry.
pub const PTE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// ELF note: entry point, a virtual address (`XEN_ELFNOTE_ENTRY`).
pub const XEN_ELFNOTE_ENTRY: u32 = 1;
/// ELF note: where the builder writes the hypercall page (`XEN_ELFNOTE_HYPERCALL_PAGE`).
pub const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
/// ELF note: virtual address of pseudo-physical address 0 (`XEN_ELFNOTE_VIRT_BASE`).
pub const XEN_ELFNOTE_VIRT_BASE: u32 = 3;
/// ELF note: ELF physical-to-virtual offset (`XEN_ELFNOTE_PADDR_OFFSET`).
pub const XEN_ELFNOTE_PADDR_OFFSET: u32 = 4;
/// ELF note: the Xen interface version, `"xen-3.0"` (`XEN_ELFNOTE_XEN_VERSION`).
pub const XEN_ELFNOTE_XEN_VERSION: u32 = 5;
/// ELF note: the guest's name (`XEN_ELFNOTE_GUEST_OS`).
pub const XEN_ELFNOTE_GUEST_OS: u32 = 6;
/// ELF note: the loader, `"generic"` (`XEN_ELFNOTE_LOADER`).
pub const XEN_ELFNOTE_LOADER: u32 = 8;
/// ELF note: the PVH 32-bit physical entry point (`XEN_ELFNOTE_PHYS32_ENTRY`).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// One `HYPERVISOR_mmu_update` request (`struct mmu_update`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuUpdate {
    /// Machine address of the entry to write, with the request type in bits 0–1.
    pub ptr: u64,
    /// The new entry.
    pub val: u64,
}
impl_wire!(MmuUpdate { ptr, val });

/// One entry of the virtual trap table (`struct trap_info`); a table ends with an entry
/// whose `address` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapInfo {
    /// Exception vector.
    pub vector: u8,
    /// Bits 0–3: the lowest privilege level allowed to raise it with `int`; bit 4: mask
    /// events on entry.
    pub flags: u8,
    /// Code selector of the handler.
    pub cs: u16,
    /// Handler address.
    pub address: u64,
}
impl_wire!(TrapInfo {
    vector,
    flags,
    cs,
    address
});
