//! PCI passthrough to a PV domain: the pcifront/pciback protocol (`io/pciif.h`).
//!
//! The frontend grants one page holding a [`XenPciSharedInfo`]; for each operation it fills
//! in [`XenPciSharedInfo::op`], sets [`XEN_PCIF_ACTIVE`] in `flags`, notifies the event
//! channel and waits until the backend clears the flag again. The backend answers in the
//! same `op`: `err` (an `XEN_PCI_ERR_*` value), `value` for reads and MSI, the pirqs of
//! MSI-X in the entries' `vector` fields.
//!
//! Xenstore: the frontend writes `pci-op-ref`, `event-channel` and `magic` ([`XEN_PCI_MAGIC`])
//! in `device/pci/0`; the backend lists its devices as `num_devs`, `dev-N` (the real address)
//! and `vdev-N` (the address the domain uses in operations).

use crate::wire::impl_wire;

/// `magic` the frontend writes to xenstore (`XEN_PCI_MAGIC`).
pub const XEN_PCI_MAGIC: &str = "7";

/// Bit of [`XenPciSharedInfo::flags`]: an operation is in flight (`_XEN_PCIF_active`).
pub const XEN_PCIF_ACTIVE_BIT: u32 = 0;
/// [`XenPciSharedInfo::flags`]: an operation is in flight (`XEN_PCIF_active`).
pub const XEN_PCIF_ACTIVE: u32 = 1 << XEN_PCIF_ACTIVE_BIT;
/// [`XenPciSharedInfo::flags`]: the frontend handles AER (`XEN_PCIB_AERHANDLER`).
pub const XEN_PCIB_AERHANDLER: u32 = 1 << 1;
/// [`XenPciSharedInfo::flags`]: an AER operation from the backend is in flight
/// (`XEN_PCIB_active`).
pub const XEN_PCIB_ACTIVE: u32 = 1 << 2;

/// Read config space (`XEN_PCI_OP_conf_read`).
pub const XEN_PCI_OP_CONF_READ: u32 = 0;
/// Write config space (`XEN_PCI_OP_conf_write`).
pub const XEN_PCI_OP_CONF_WRITE: u32 = 1;
/// Enable MSI; the pirq comes back in `value` (`XEN_PCI_OP_enable_msi`).
pub const XEN_PCI_OP_ENABLE_MSI: u32 = 2;
/// Disable MSI (`XEN_PCI_OP_disable_msi`).
pub const XEN_PCI_OP_DISABLE_MSI: u32 = 3;
/// Enable MSI-X for `value` entries; pirqs come back in their `vector` fields
/// (`XEN_PCI_OP_enable_msix`).
pub const XEN_PCI_OP_ENABLE_MSIX: u32 = 4;
/// Disable MSI-X (`XEN_PCI_OP_disable_msix`).
pub const XEN_PCI_OP_DISABLE_MSIX: u32 = 5;
/// AER: error detected (`XEN_PCI_OP_aer_detected`).
pub const XEN_PCI_OP_AER_DETECTED: u32 = 6;
/// AER: resume (`XEN_PCI_OP_aer_resume`).
pub const XEN_PCI_OP_AER_RESUME: u32 = 7;
/// AER: MMIO enabled (`XEN_PCI_OP_aer_mmio`).
pub const XEN_PCI_OP_AER_MMIO: u32 = 8;
/// AER: slot reset (`XEN_PCI_OP_aer_slotreset`).
pub const XEN_PCI_OP_AER_SLOTRESET: u32 = 9;
/// Enable several MSI vectors (`XEN_PCI_OP_enable_multi_msi`).
pub const XEN_PCI_OP_ENABLE_MULTI_MSI: u32 = 10;

/// Success (`XEN_PCI_ERR_success`).
pub const XEN_PCI_ERR_SUCCESS: i32 = 0;
/// No such device (`XEN_PCI_ERR_dev_not_found`).
pub const XEN_PCI_ERR_DEV_NOT_FOUND: i32 = -1;
/// Bad config-space offset or size (`XEN_PCI_ERR_invalid_offset`).
pub const XEN_PCI_ERR_INVALID_OFFSET: i32 = -2;
/// The backend refused (`XEN_PCI_ERR_access_denied`).
pub const XEN_PCI_ERR_ACCESS_DENIED: i32 = -3;
/// Not implemented (`XEN_PCI_ERR_not_implemented`).
pub const XEN_PCI_ERR_NOT_IMPLEMENTED: i32 = -4;
/// The operation failed (`XEN_PCI_ERR_op_failed`).
pub const XEN_PCI_ERR_OP_FAILED: i32 = -5;

/// MSI-X entries one operation carries (`SH_INFO_MAX_VEC`).
pub const SH_INFO_MAX_VEC: usize = 128;

/// `struct xen_msix_entry`: one MSI-X table entry to enable and, on return, its pirq.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMsixEntry {
    /// OUT: the pirq bound to the entry.
    pub vector: u16,
    /// IN: index into the device's MSI-X table.
    pub entry: u16,
}
impl_wire!(XenMsixEntry { vector, entry });

/// `struct xen_pci_op`: one operation and its answer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenPciOp {
    /// IN: `XEN_PCI_OP_*`.
    pub cmd: u32,
    /// OUT: `XEN_PCI_ERR_*`.
    pub err: i32,
    /// IN: PCI segment.
    pub domain: u32,
    /// IN: bus.
    pub bus: u32,
    /// IN: device << 3 | function.
    pub devfn: u32,
    /// IN: config-space offset.
    pub offset: i32,
    /// IN: access size (1, 2 or 4).
    pub size: i32,
    /// IN/OUT: the value written, or read; the pirq of MSI; the number of MSI-X entries.
    pub value: u32,
    /// IN: extra information (unused by the ops above).
    pub info: u32,
    /// IN/OUT: MSI-X entries.
    pub msix_entries: [XenMsixEntry; SH_INFO_MAX_VEC],
}
impl_wire!(XenPciOp {
    cmd,
    err,
    domain,
    bus,
    devfn,
    offset,
    size,
    value,
    info,
    msix_entries
});

impl Default for XenPciOp {
    fn default() -> Self {
        Self {
            cmd: 0,
            err: 0,
            domain: 0,
            bus: 0,
            devfn: 0,
            offset: 0,
            size: 0,
            value: 0,
            info: 0,
            msix_entries: [XenMsixEntry::default(); SH_INFO_MAX_VEC],
        }
    }
}

/// `struct xen_pcie_aer_op`: an AER notification from the backend.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenPcieAerOp {
    /// `XEN_PCI_OP_aer_*`.
    pub cmd: u32,
    /// Result, or the error state on input.
    pub err: i32,
    /// PCI segment.
    pub domain: u32,
    /// Bus.
    pub bus: u32,
    /// Device << 3 | function.
    pub devfn: u32,
}
impl_wire!(XenPcieAerOp {
    cmd,
    err,
    domain,
    bus,
    devfn
});

/// `struct xen_pci_sharedinfo`: the granted page's layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenPciSharedInfo {
    /// `XEN_PCIF_*` / `XEN_PCIB_*` bits.
    pub flags: u32,
    /// The frontend's operation.
    pub op: XenPciOp,
    /// The backend's AER operation.
    pub aer_op: XenPcieAerOp,
}
impl_wire!(XenPciSharedInfo { flags, op, aer_op });

// The shared info must fit in the one granted page.
const _: () = assert!(core::mem::size_of::<XenPciSharedInfo>() <= crate::XEN_PAGE_SIZE);

/// Byte offset of [`XenPciSharedInfo::flags`] in the shared page.
pub const SHARED_FLAGS_OFFSET: usize = core::mem::offset_of!(XenPciSharedInfo, flags);
/// Byte offset of [`XenPciSharedInfo::op`] in the shared page.
pub const SHARED_OP_OFFSET: usize = core::mem::offset_of!(XenPciSharedInfo, op);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WireStruct;

    #[test]
    fn op_round_trips_through_its_image() {
        let mut op = XenPciOp {
            cmd: XEN_PCI_OP_ENABLE_MSIX,
            devfn: 0x20,
            value: 2,
            ..XenPciOp::default()
        };
        op.msix_entries[1] = XenMsixEntry {
            vector: 55,
            entry: 1,
        };
        let mut page = [0xffu8; 4096];
        op.write_to(&mut page[SHARED_OP_OFFSET..]).unwrap();
        let back = XenPciOp::read_from(&page[SHARED_OP_OFFSET..]).unwrap();
        assert_eq!(back, op);
        // entry 1: vector (u16) then entry (u16), after the nine 4-byte fields.
        let at = SHARED_OP_OFFSET + 36 + 4;
        assert_eq!(&page[at..at + 4], &[55, 0, 1, 0]);
        assert_eq!(SHARED_FLAGS_OFFSET, 0);
    }
}
