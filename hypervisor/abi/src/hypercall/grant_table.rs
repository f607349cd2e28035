//! `HYPERVISOR_grant_table_op(cmd, args, count)` (`grant_table.h`): map, unmap and copy
//! grants. The grant entries themselves are in [`crate::grant`].

use crate::{DomId, GrantRef};

/// Map grants into our address space (args: [`GnttabMapGrantRef`] array).
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
/// Unmap grants (args: [`GnttabUnmapGrantRef`] array).
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
/// Obtain the frames of our grant table (args: [`GnttabSetupTable`]).
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
/// Dump a grant table to Xen's console (debugging).
pub const GNTTABOP_DUMP_TABLE: u32 = 3;
/// Transfer page ownership (obsolete netfront "flip" mode).
pub const GNTTABOP_TRANSFER: u32 = 4;
/// Copy between grants and/or local frames (args: [`GnttabCopy`] array).
pub const GNTTABOP_COPY: u32 = 5;
/// Query the current and maximum grant table size (args: [`GnttabQuerySize`]).
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
/// Unmap a grant and replace the mapping.
pub const GNTTABOP_UNMAP_AND_REPLACE: u32 = 7;
/// Select grant table format v1 or v2 (args: [`GnttabSetVersion`]).
pub const GNTTABOP_SET_VERSION: u32 = 8;
/// Obtain the v2 status frames.
pub const GNTTABOP_GET_STATUS_FRAMES: u32 = 9;
/// Query a domain's grant table version.
pub const GNTTABOP_GET_VERSION: u32 = 10;
/// Swap two grant entries.
pub const GNTTABOP_SWAP_GRANT_REF: u32 = 11;
/// Clean/invalidate caches of granted memory (Arm).
pub const GNTTABOP_CACHE_FLUSH: u32 = 12;

/// A handle for an established grant mapping (`grant_handle_t`).
pub type GrantHandle = u32;

/// Map for access by I/O devices (`GNTMAP_device_map`).
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
/// Map for access by host CPUs (`GNTMAP_host_map`).
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// Map read-only (`GNTMAP_readonly`).
pub const GNTMAP_READONLY: u32 = 1 << 2;
/// Map into an application's address space (PV only; `GNTMAP_application_map`).
pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3;
/// `host_addr` is the address of a PTE to update (PV only; `GNTMAP_contains_pte`).
pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;
/// Bits the guest may use freely (`GNTMAP_guest_avail_mask`).
pub const GNTMAP_GUEST_AVAIL_MASK: u32 = !0 << 16;

/// [`GnttabCopyPtr::u`] holds a grant reference, not a frame (`GNTCOPY_source_gref`).
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// [`GnttabCopy::dest`] holds a grant reference (`GNTCOPY_dest_gref`).
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// Normal return (`GNTST_okay`).
pub const GNTST_OKAY: i16 = 0;
/// General undefined error (`GNTST_general_error`).
pub const GNTST_GENERAL_ERROR: i16 = -1;
/// Unrecognised domain id (`GNTST_bad_domain`).
pub const GNTST_BAD_DOMAIN: i16 = -2;
/// Unrecognised or inappropriate grant reference (`GNTST_bad_gntref`).
pub const GNTST_BAD_GNTREF: i16 = -3;
/// Unrecognised or inappropriate handle (`GNTST_bad_handle`).
pub const GNTST_BAD_HANDLE: i16 = -4;
/// Inappropriate virtual address to map (`GNTST_bad_virt_addr`).
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
/// Inappropriate device address to unmap (`GNTST_bad_dev_addr`).
pub const GNTST_BAD_DEV_ADDR: i16 = -6;
/// Out of space in the I/O MMU (`GNTST_no_device_space`).
pub const GNTST_NO_DEVICE_SPACE: i16 = -7;
/// Not enough privilege for the operation (`GNTST_permission_denied`).
pub const GNTST_PERMISSION_DENIED: i16 = -8;
/// The page was invalid for the operation (`GNTST_bad_page`).
pub const GNTST_BAD_PAGE: i16 = -9;
/// Copy arguments cross a page boundary (`GNTST_bad_copy_arg`).
pub const GNTST_BAD_COPY_ARG: i16 = -10;
/// Transfer page address too large (`GNTST_address_too_big`).
pub const GNTST_ADDRESS_TOO_BIG: i16 = -11;
/// Operation not done; try again (`GNTST_eagain`).
pub const GNTST_EAGAIN: i16 = -12;
/// Out of space, e.g. handles (`GNTST_no_space`).
pub const GNTST_NO_SPACE: i16 = -13;

/// Xen's messages for the `GNTST_*` codes, indexed by `-status` (`GNTTABOP_error_msgs`).
pub const GNTTABOP_ERROR_MSGS: [&str; 14] = [
    "okay",
    "undefined error",
    "unrecognised domain id",
    "invalid grant reference",
    "invalid mapping handle",
    "invalid virtual address",
    "invalid device address",
    "no spare translation slot in the I/O MMU",
    "permission denied",
    "bad page",
    "copy arguments cross page boundary",
    "page address size too large",
    "operation not done; try again",
    "out of space",
];

/// A readable message for a `GNTST_*` status, as Xen words it.
pub fn gntst_message(status: i16) -> &'static str {
    usize::try_from(-i32::from(status))
        .ok()
        .and_then(|i| GNTTABOP_ERROR_MSGS.get(i).copied())
        .unwrap_or("unknown grant status")
}

/// The C name of a `GNTST_*` status (`"GNTST_bad_gntref"`), if it is one.
pub const fn gntst_name(status: i16) -> Option<&'static str> {
    Some(match status {
        GNTST_OKAY => "GNTST_okay",
        GNTST_GENERAL_ERROR => "GNTST_general_error",
        GNTST_BAD_DOMAIN => "GNTST_bad_domain",
        GNTST_BAD_GNTREF => "GNTST_bad_gntref",
        GNTST_BAD_HANDLE => "GNTST_bad_handle",
        GNTST_BAD_VIRT_ADDR => "GNTST_bad_virt_addr",
        GNTST_BAD_DEV_ADDR => "GNTST_bad_dev_addr",
        GNTST_NO_DEVICE_SPACE => "GNTST_no_device_space",
        GNTST_PERMISSION_DENIED => "GNTST_permission_denied",
        GNTST_BAD_PAGE => "GNTST_bad_page",
        GNTST_BAD_COPY_ARG => "GNTST_bad_copy_arg",
        GNTST_ADDRESS_TOO_BIG => "GNTST_address_too_big",
        GNTST_EAGAIN => "GNTST_eagain",
        GNTST_NO_SPACE => "GNTST_no_space",
        _ => return None,
    })
}

/// `struct gnttab_map_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabMapGrantRef {
    /// IN: guest-physical (HVM/PVH) or virtual/PTE (PV) address to map at.
    pub host_addr: u64,
    /// IN: `GNTMAP_*` flags.
    pub flags: u32,
    /// IN: the grant reference (`ref`).
    pub gref: GrantRef,
    /// IN: the granting domain.
    pub dom: DomId,
    /// OUT: a `GNTST_*` status.
    pub status: i16,
    /// OUT: handle for unmapping.
    pub handle: GrantHandle,
    /// OUT: bus address for device mappings.
    pub dev_bus_addr: u64,
}

/// `struct gnttab_unmap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabUnmapGrantRef {
    /// IN: the address the grant is mapped at.
    pub host_addr: u64,
    /// IN: the device address, or 0.
    pub dev_bus_addr: u64,
    /// IN: the handle from the map operation.
    pub handle: GrantHandle,
    /// OUT: a `GNTST_*` status.
    pub status: i16,
}

/// `struct gnttab_setup_table`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetupTable {
    /// IN: the domain ([`DOMID_SELF`](super::DOMID_SELF)).
    pub dom: DomId,
    /// IN: number of frames wanted.
    pub nr_frames: u32,
    /// OUT: a `GNTST_*` status.
    pub status: i16,
    /// IN: guest address of an array of `nr_frames` frame numbers (`u64`) to fill.
    pub frame_list: u64,
}

/// One side of a [`GnttabCopy`] (`struct gnttab_copy_ptr`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopyPtr {
    /// The C union `u`: a grant reference (low 32 bits) or a frame number, per the
    /// `GNTCOPY_*_gref` flag; use the constructors and accessors.
    pub u: u64,
    /// The domain owning the grant or frame.
    pub domid: DomId,
    /// Byte offset within the page.
    pub offset: u16,
}

impl GnttabCopyPtr {
    /// Points at `offset` in the page granted by `domid` as `gref`.
    pub const fn from_gref(gref: GrantRef, domid: DomId, offset: u16) -> Self {
        Self {
            u: gref as u64,
            domid,
            offset,
        }
    }

    /// Points at `offset` in frame `gmfn` of `domid`.
    pub const fn from_gmfn(gmfn: u64, domid: DomId, offset: u16) -> Self {
        Self {
            u: gmfn,
            domid,
            offset,
        }
    }

    /// The union read as a grant reference.
    pub const fn gref(&self) -> GrantRef {
        self.u as GrantRef
    }

    /// The union read as a frame number.
    pub const fn gmfn(&self) -> u64 {
        self.u
    }
}

/// `struct gnttab_copy`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopy {
    /// IN: where to copy from.
    pub source: GnttabCopyPtr,
    /// IN: where to copy to.
    pub dest: GnttabCopyPtr,
    /// IN: bytes to copy; neither side may cross a page boundary.
    pub len: u16,
    /// IN: `GNTCOPY_*` flags.
    pub flags: u16,
    /// OUT: a `GNTST_*` status.
    pub status: i16,
}

/// `struct gnttab_query_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabQuerySize {
    /// IN: the domain.
    pub dom: DomId,
    /// OUT: current number of frames.
    pub nr_frames: u32,
    /// OUT: maximum number of frames.
    pub max_nr_frames: u32,
    /// OUT: a `GNTST_*` status.
    pub status: i16,
}

/// `struct gnttab_set_version`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetVersion {
    /// IN: wanted version (1 or 2); OUT: the version in force.
    pub version: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_messages() {
        assert_eq!(gntst_message(GNTST_OKAY), "okay");
        assert_eq!(gntst_message(GNTST_BAD_GNTREF), "invalid grant reference");
        assert_eq!(gntst_message(GNTST_NO_SPACE), "out of space");
        assert_eq!(gntst_message(-14), "unknown grant status");
        assert_eq!(gntst_message(3), "unknown grant status");
        assert_eq!(gntst_message(i16::MIN), "unknown grant status");
        assert_eq!(gntst_name(GNTST_EAGAIN), Some("GNTST_eagain"));
        assert_eq!(gntst_name(1), None);
    }

    #[test]
    fn copy_ptr_union() {
        let p = GnttabCopyPtr::from_gref(77, 3, 128);
        assert_eq!((p.gref(), p.domid, p.offset), (77, 3, 128));
        assert_eq!(
            GnttabCopyPtr::from_gmfn(0x1_2345_6789, 0x7ff0, 0).gmfn(),
            0x1_2345_6789
        );
    }
}
