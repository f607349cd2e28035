//! Boot information: the PVH `hvm_start_info` (`arch-x86/hvm/start_info.h`) and the PV
//! `start_info` (`xen.h`, for a later PV port).

use crate::wire::impl_wire;

/// [`HvmStartInfo::magic`] value: `"xEn3"` with the 0x80 bit of the `E` set
/// (`XEN_HVM_START_MAGIC_VALUE`).
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;

/// Memory map type: usable RAM (`XEN_HVM_MEMMAP_TYPE_RAM`).
pub const XEN_HVM_MEMMAP_TYPE_RAM: u32 = 1;
/// Memory map type: reserved (`XEN_HVM_MEMMAP_TYPE_RESERVED`).
pub const XEN_HVM_MEMMAP_TYPE_RESERVED: u32 = 2;
/// Memory map type: ACPI reclaimable (`XEN_HVM_MEMMAP_TYPE_ACPI`).
pub const XEN_HVM_MEMMAP_TYPE_ACPI: u32 = 3;
/// Memory map type: ACPI NVS (`XEN_HVM_MEMMAP_TYPE_NVS`).
pub const XEN_HVM_MEMMAP_TYPE_NVS: u32 = 4;
/// Memory map type: unusable (`XEN_HVM_MEMMAP_TYPE_UNUSABLE`).
pub const XEN_HVM_MEMMAP_TYPE_UNUSABLE: u32 = 5;
/// Memory map type: disabled (`XEN_HVM_MEMMAP_TYPE_DISABLED`).
pub const XEN_HVM_MEMMAP_TYPE_DISABLED: u32 = 6;
/// Memory map type: persistent memory (`XEN_HVM_MEMMAP_TYPE_PMEM`).
pub const XEN_HVM_MEMMAP_TYPE_PMEM: u32 = 7;

/// PVH boot information, at the physical address in `%ebx` on entry
/// (`struct hvm_start_info`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmStartInfo {
    /// [`XEN_HVM_START_MAGIC_VALUE`].
    pub magic: u32,
    /// Structure version; the memory map fields exist from version 1.
    pub version: u32,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Number of [`HvmModlistEntry`] at `modlist_paddr`.
    pub nr_modules: u32,
    /// Physical address of the module list.
    pub modlist_paddr: u64,
    /// Physical address of the NUL-terminated command line, or 0.
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP, or 0.
    pub rsdp_paddr: u64,
    /// Version ≥ 1: physical address of an array of [`HvmMemmapTableEntry`].
    pub memmap_paddr: u64,
    /// Version ≥ 1: number of memory map entries (0: ask with `XENMEM_memory_map`).
    pub memmap_entries: u32,
    /// Zero.
    pub reserved: u32,
}
impl_wire!(HvmStartInfo {
    magic,
    version,
    flags,
    nr_modules,
    modlist_paddr,
    cmdline_paddr,
    rsdp_paddr,
    memmap_paddr,
    memmap_entries,
    reserved
});

impl HvmStartInfo {
    /// Whether the magic is right.
    pub const fn is_valid(&self) -> bool {
        self.magic == XEN_HVM_START_MAGIC_VALUE
    }

    /// The memory map location and entry count, if this version carries a non-empty one.
    pub const fn memmap(&self) -> Option<(u64, u32)> {
        if self.version >= 1 && self.memmap_entries != 0 {
            Some((self.memmap_paddr, self.memmap_entries))
        } else {
            None
        }
    }
}

/// A boot module (`struct hvm_modlist_entry`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmModlistEntry {
    /// Physical address of the module.
    pub paddr: u64,
    /// Size in bytes.
    pub size: u64,
    /// Physical address of its command line, or 0.
    pub cmdline_paddr: u64,
    /// Zero.
    pub reserved: u64,
}
impl_wire!(HvmModlistEntry {
    paddr,
    size,
    cmdline_paddr,
    reserved
});

/// A memory map entry (`struct hvm_memmap_table_entry`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmMemmapTableEntry {
    /// Base address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// A `XEN_HVM_MEMMAP_TYPE_*` value.
    pub type_: u32,
    /// Zero.
    pub reserved: u32,
}
impl_wire!(HvmMemmapTableEntry {
    addr,
    size,
    type_,
    reserved
});

/// `flags`: the domain is privileged (`SIF_PRIVILEGED`).
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// `flags`: this is the initial control domain (`SIF_INITDOMAIN`).
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `flags`: `mod_start` is a multiboot module (`SIF_MULTIBOOT_MOD`).
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// `flags`: `mod_start` is a PFN (`SIF_MOD_START_PFN`).
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// `flags`: tools understand a virtually mapped p2m (`SIF_VIRT_P2M_4TOOLS`).
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;

/// Length of [`StartInfo::cmd_line`] (`MAX_GUEST_CMDLINE`).
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// PV boot information (`struct start_info`, x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartInfo {
    /// `"xen-<version>-<platform>"`, NUL-padded.
    pub magic: [u8; 32],
    /// Total pages allocated to the domain.
    pub nr_pages: u64,
    /// Machine address of the shared info page.
    pub shared_info: u64,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Machine frame of the xenstore ring.
    pub store_mfn: u64,
    /// Event channel of the xenstore ring.
    pub store_evtchn: u32,
    /// The C union `console` (`domU { mfn, evtchn }` or `dom0 { info_off, info_size }`);
    /// use the accessors.
    pub console: [u64; 2],
    /// Virtual address of the page directory.
    pub pt_base: u64,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// Virtual address of the page-frame list.
    pub mfn_list: u64,
    /// Virtual address (or PFN) of the pre-loaded module.
    pub mod_start: u64,
    /// Size of the module in bytes.
    pub mod_len: u64,
    /// Command line, NUL-terminated.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First PFN of the initial p2m table.
    pub first_p2m_pfn: u64,
    /// Number of p2m table frames.
    pub nr_p2m_frames: u64,
}
impl_wire!(StartInfo {
    magic,
    nr_pages,
    shared_info,
    flags,
    store_mfn,
    store_evtchn,
    console,
    pt_base,
    nr_pt_frames,
    mfn_list,
    mod_start,
    mod_len,
    cmd_line,
    first_p2m_pfn,
    nr_p2m_frames
});

impl StartInfo {
    /// domU: machine frame of the console ring (`console.domU.mfn`).
    pub const fn console_mfn(&self) -> u64 {
        self.console[0]
    }

    /// domU: event channel of the console ring (`console.domU.evtchn`).
    pub const fn console_evtchn(&self) -> u32 {
        self.console[1] as u32
    }

    /// dom0: offset of the console info in this page (`console.dom0.info_off`).
    pub const fn dom0_console_info_off(&self) -> u32 {
        self.console[0] as u32
    }

    /// dom0: size of the console info (`console.dom0.info_size`).
    pub const fn dom0_console_info_size(&self) -> u32 {
        (self.console[0] >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WireStruct;

    #[test]
    fn hvm_start_info_from_bytes() {
        let mut raw = [0u8; 56];
        raw[0..4].copy_from_slice(&XEN_HVM_START_MAGIC_VALUE.to_le_bytes());
        raw[4..8].copy_from_slice(&1u32.to_le_bytes());
        raw[40..48].copy_from_slice(&0x1000u64.to_le_bytes());
        raw[48..52].copy_from_slice(&3u32.to_le_bytes());
        let info = HvmStartInfo::read_from(&raw).unwrap();
        assert!(info.is_valid());
        assert_eq!(info.memmap(), Some((0x1000, 3)));
        let v0 = HvmStartInfo { version: 0, ..info };
        assert_eq!(v0.memmap(), None);
    }

    #[test]
    fn pv_console_union() {
        let mut raw = [0u8; 1168];
        raw[72..80].copy_from_slice(&0xabcdu64.to_le_bytes());
        raw[80..84].copy_from_slice(&7u32.to_le_bytes());
        let si = StartInfo::read_from(&raw).unwrap();
        assert_eq!((si.console_mfn(), si.console_evtchn()), (0xabcd, 7));
        assert_eq!(
            (si.dom0_console_info_off(), si.dom0_console_info_size()),
            (0xabcd, 0)
        );
    }
}
