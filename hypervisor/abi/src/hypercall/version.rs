//! `HYPERVISOR_xen_version(cmd, arg)` (`version.h`, `features.h`).

/// Returns `major << 16 | minor` (arg: none); see [`split_version`].
pub const XENVER_VERSION: u32 = 0;
/// Fills a [`XenExtraversion`] (e.g. `".5-pre"`).
pub const XENVER_EXTRAVERSION: u32 = 1;
/// Fills compiler information.
pub const XENVER_COMPILE_INFO: u32 = 2;
/// Fills the capabilities string (e.g. `"xen-3.0-x86_64 hvm-3.0-x86_64"`).
pub const XENVER_CAPABILITIES: u32 = 3;
/// Fills the changeset string.
pub const XENVER_CHANGESET: u32 = 4;
/// Fills platform parameters (PV virt_start).
pub const XENVER_PLATFORM_PARAMETERS: u32 = 5;
/// Reads one 32-bit submap of feature flags (arg: [`XenFeatureInfo`]).
pub const XENVER_GET_FEATURES: u32 = 6;
/// Returns the page size.
pub const XENVER_PAGESIZE: u32 = 7;
/// Fills the domain handle (UUID).
pub const XENVER_GUEST_HANDLE: u32 = 8;
/// Fills Xen's command line.
pub const XENVER_COMMANDLINE: u32 = 9;
/// Fills the build id.
pub const XENVER_BUILD_ID: u32 = 10;

/// Buffer for [`XENVER_EXTRAVERSION`]: a NUL-padded string (`xen_extraversion_t`).
pub type XenExtraversion = [u8; XEN_EXTRAVERSION_LEN];
/// Length of [`XenExtraversion`] (`XEN_EXTRAVERSION_LEN`).
pub const XEN_EXTRAVERSION_LEN: usize = 16;

/// Splits the [`XENVER_VERSION`] result into (major, minor).
pub const fn split_version(version: u32) -> (u16, u16) {
    ((version >> 16) as u16, version as u16)
}

/// `struct xen_feature_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenFeatureInfo {
    /// IN: which 32-bit submap to return (0 is the only one, `XENFEAT_NR_SUBMAPS` = 1).
    pub submap_idx: u32,
    /// OUT: the submap; bit `n` is feature `XENFEAT_*` = `32 * submap_idx + n`.
    pub submap: u32,
}

/// Number of feature submaps (`XENFEAT_NR_SUBMAPS`).
pub const XENFEAT_NR_SUBMAPS: u32 = 1;
/// PV: page tables may be writable (`XENFEAT_writable_page_tables`).
pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;
/// PV: descriptor tables may be writable (`XENFEAT_writable_descriptor_tables`).
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
/// Guest-physical addresses are translated by Xen (`XENFEAT_auto_translated_physmap`).
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
/// Kernel runs in ring 0 (`XENFEAT_supervisor_mode_kernel`).
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
/// PAE page directories may sit above 4 GiB (`XENFEAT_pae_pgdir_above_4gb`).
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
/// MMU updates preserve A/D bits (`XENFEAT_mmu_pt_update_preserve_ad`).
pub const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
/// Highmem assist available (`XENFEAT_highmem_assist`).
pub const XENFEAT_HIGHMEM_ASSIST: u32 = 6;
/// Grant map may use the PTE's available bits (`XENFEAT_gnttab_map_avail_bits`).
pub const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;
/// Upcalls may be delivered as a vector (`XENFEAT_hvm_callback_vector`).
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
/// The HVM pvclock is safe to use (`XENFEAT_hvm_safe_pvclock`).
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;
/// PIRQs can be bound to event channels in HVM (`XENFEAT_hvm_pirqs`).
pub const XENFEAT_HVM_PIRQS: u32 = 10;
/// This domain is dom0 (`XENFEAT_dom0`).
pub const XENFEAT_DOM0: u32 = 11;
/// vNUMA-aware memory ops (`XENFEAT_memory_op_vnode_supported`).
pub const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
/// Arm SMCCC supported (`XENFEAT_ARM_SMCCC_supported`).
pub const XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 14;
/// RSDP may be placed anywhere (`XENFEAT_linux_rsdp_unrestricted`).
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;
/// The domain is not direct-mapped (`XENFEAT_not_direct_mapped`).
pub const XENFEAT_NOT_DIRECT_MAPPED: u32 = 16;
/// The domain is direct-mapped (`XENFEAT_direct_mapped`).
pub const XENFEAT_DIRECT_MAPPED: u32 = 17;

/// Whether feature `feature` (a `XENFEAT_*` number) is set in submap 0's value `submap`.
pub const fn has_feature(submap: u32, feature: u32) -> bool {
    feature < 32 && submap & (1 << feature) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_features() {
        assert_eq!(split_version(0x0004_0011), (4, 17));
        let submap = (1 << XENFEAT_HVM_CALLBACK_VECTOR) | (1 << XENFEAT_AUTO_TRANSLATED_PHYSMAP);
        assert!(has_feature(submap, XENFEAT_HVM_CALLBACK_VECTOR));
        assert!(!has_feature(submap, XENFEAT_DOM0));
        assert!(!has_feature(u32::MAX, 32));
    }
}
