//! `HYPERVISOR_grant_table_op`: table size, mapping foreign grants, copying.

use super::op3;
use xen_abi::hypercall::grant_table::{
    GnttabCopy, GnttabMapGrantRef, GnttabQuerySize, GnttabSetupTable, GnttabUnmapGrantRef,
    GNTTABOP_COPY, GNTTABOP_MAP_GRANT_REF, GNTTABOP_QUERY_SIZE, GNTTABOP_SETUP_TABLE,
    GNTTABOP_UNMAP_GRANT_REF,
};
use xen_abi::hypercall::{DOMID_SELF, HYPERVISOR_GRANT_TABLE_OP};
use xen_abi::XenErrno;

/// Current and maximum number of grant-table frames of this domain.
pub fn query_size() -> Result<(u32, u32), XenErrno> {
    let mut arg = GnttabQuerySize {
        dom: DOMID_SELF,
        ..Default::default()
    };
    // SAFETY: GNTTABOP_query_size reads and writes one `gnttab_query_size` (count 1).
    unsafe {
        op3(
            HYPERVISOR_GRANT_TABLE_OP,
            GNTTABOP_QUERY_SIZE.into(),
            super::addr_mut(&mut arg),
            1,
        )
    }?;
    if arg.status != 0 {
        return Err(XenErrno::EINVAL);
    }
    Ok((arg.nr_frames, arg.max_nr_frames))
}

/// Sizes our grant table to `frames.len()` frames and fills `frames` with their machine
/// frame numbers (PV: the guest then maps them itself).
pub fn setup_table(frames: &mut [u64]) -> Result<(), XenErrno> {
    let mut arg = GnttabSetupTable {
        dom: DOMID_SELF,
        nr_frames: u32::try_from(frames.len()).map_err(|_| XenErrno::EINVAL)?,
        status: 0,
        frame_list: frames.as_mut_ptr() as u64,
    };
    // SAFETY: GNTTABOP_setup_table reads and writes one `gnttab_setup_table` (count 1) and
    // writes `nr_frames` u64s to `frame_list`, which is `frames` (length checked above).
    unsafe {
        op3(
            HYPERVISOR_GRANT_TABLE_OP,
            GNTTABOP_SETUP_TABLE.into(),
            super::addr_mut(&mut arg),
            1,
        )
    }?;
    if arg.status != 0 {
        return Err(XenErrno::EINVAL);
    }
    Ok(())
}

/// Maps each op's grant; per-op results land in each op's `status`/`handle`.
///
/// # Safety
/// Each op's `host_addr` must be a guest-physical address (PVH) or virtual address with a
/// page table (PV) we own and that nothing else uses: Xen replaces whatever is mapped there
/// with the foreign page.
pub unsafe fn map_grant_refs(ops: &mut [GnttabMapGrantRef]) -> Result<(), XenErrno> {
    if ops.is_empty() {
        return Ok(());
    }
    // SAFETY: Xen reads and writes `ops.len()` live entries; address ownership is the
    // caller's guarantee.
    unsafe {
        op3(
            HYPERVISOR_GRANT_TABLE_OP,
            GNTTABOP_MAP_GRANT_REF.into(),
            ops.as_mut_ptr() as u64,
            ops.len() as u64,
        )
    }
    .map(drop)
}

/// Unmaps grants mapped by [`map_grant_refs`]; per-op results in `status`.
///
/// # Safety
/// Nothing may access the pages at the ops' `host_addr`s any more.
pub unsafe fn unmap_grant_refs(ops: &mut [GnttabUnmapGrantRef]) -> Result<(), XenErrno> {
    if ops.is_empty() {
        return Ok(());
    }
    // SAFETY: Xen reads and writes `ops.len()` live entries; the caller no longer uses the
    // mapped pages.
    unsafe {
        op3(
            HYPERVISOR_GRANT_TABLE_OP,
            GNTTABOP_UNMAP_GRANT_REF.into(),
            ops.as_mut_ptr() as u64,
            ops.len() as u64,
        )
    }
    .map(drop)
}

/// Performs a batch of grant copies; per-op results in `status`.
///
/// # Safety
/// Local frames named in the ops (`gmfn` sides) must be memory the caller may read (source)
/// or write (destination) for the duration of the call.
pub unsafe fn copy(ops: &mut [GnttabCopy]) -> Result<(), XenErrno> {
    if ops.is_empty() {
        return Ok(());
    }
    // SAFETY: Xen reads and writes `ops.len()` live entries; frame validity is the caller's
    // guarantee.
    unsafe {
        op3(
            HYPERVISOR_GRANT_TABLE_OP,
            GNTTABOP_COPY.into(),
            ops.as_mut_ptr() as u64,
            ops.len() as u64,
        )
    }
    .map(drop)
}
