//! Grant table v1 entries (`grant_table.h`): how a domain lets another one access its pages.
//!
//! To grant a page, write `frame` and `domid`, then (after a write barrier) `flags` with
//! [`GTF_PERMIT_ACCESS`] (and [`GTF_READONLY`]); to revoke, atomically clear `flags` only if
//! [`GTF_READING`] and [`GTF_WRITING`] are clear. The hypercalls that map and copy grants are
//! in [`crate::hypercall::grant_table`].

use crate::{DomId, GrantRef, XEN_PAGE_SIZE};

/// One v1 grant table entry (`struct grant_entry_v1`, 8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV1 {
    /// `GTF_*` type and flags.
    pub flags: u16,
    /// The domain being granted access.
    pub domid: DomId,
    /// The granted frame (guest frame for HVM/PVH granters).
    pub frame: u32,
}

/// Number of v1 entries in one grant table frame.
pub const GRANT_ENTRIES_PER_PAGE: usize = XEN_PAGE_SIZE / core::mem::size_of::<GrantEntryV1>();

/// Entries reserved for the toolstack at the start of the table (`GNTTAB_NR_RESERVED_ENTRIES`).
pub const GNTTAB_NR_RESERVED_ENTRIES: GrantRef = 8;
/// Reserved entry granting the console ring to the backend (`GNTTAB_RESERVED_CONSOLE`).
pub const GNTTAB_RESERVED_CONSOLE: GrantRef = 0;
/// Reserved entry granting the xenstore ring to xenstored (`GNTTAB_RESERVED_XENSTORE`).
pub const GNTTAB_RESERVED_XENSTORE: GrantRef = 1;

/// Entry type: unused (`GTF_invalid`).
pub const GTF_INVALID: u16 = 0;
/// Entry type: `domid` may map or copy `frame` (`GTF_permit_access`).
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// Entry type: `domid` may transfer a page to us (`GTF_accept_transfer`).
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// Entry type: transitive grant, v2 only (`GTF_transitive`).
pub const GTF_TRANSITIVE: u16 = 3;
/// Mask of the entry type bits (`GTF_type_mask`).
pub const GTF_TYPE_MASK: u16 = 3;
/// Access is read-only (`GTF_readonly`).
pub const GTF_READONLY: u16 = 1 << 2;
/// Set by Xen while the grantee has the frame mapped or is copying from it (`GTF_reading`).
pub const GTF_READING: u16 = 1 << 3;
/// Set by Xen while the grantee has the frame mapped writable (`GTF_writing`).
pub const GTF_WRITING: u16 = 1 << 4;
/// Cache attribute: write-through (`GTF_PWT`).
pub const GTF_PWT: u16 = 1 << 5;
/// Cache attribute: cache disable (`GTF_PCD`).
pub const GTF_PCD: u16 = 1 << 6;
/// Cache attribute: PAT (`GTF_PAT`).
pub const GTF_PAT: u16 = 1 << 7;
/// Sub-page grant, v2 only (`GTF_sub_page`).
pub const GTF_SUB_PAGE: u16 = 1 << 8;
/// Transfer: Xen committed to the transfer (`GTF_transfer_committed`).
pub const GTF_TRANSFER_COMMITTED: u16 = 1 << 2;
/// Transfer: the transfer completed (`GTF_transfer_completed`).
pub const GTF_TRANSFER_COMPLETED: u16 = 1 << 3;

impl GrantEntryV1 {
    /// An entry letting `domid` access `frame`, read-only if `readonly`.
    pub const fn permit_access(domid: DomId, frame: u32, readonly: bool) -> Self {
        let flags = if readonly {
            GTF_PERMIT_ACCESS | GTF_READONLY
        } else {
            GTF_PERMIT_ACCESS
        };
        Self {
            flags,
            domid,
            frame,
        }
    }

    /// Whether the grantee currently uses the frame (Xen set reading or writing).
    pub const fn in_use(&self) -> bool {
        self.flags & (GTF_READING | GTF_WRITING) != 0
    }
}

/// Splits a grant reference into (table frame index, entry index within that frame).
pub const fn gref_location(gref: GrantRef) -> (usize, usize) {
    let gref = gref as usize;
    (gref / GRANT_ENTRIES_PER_PAGE, gref % GRANT_ENTRIES_PER_PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries() {
        assert_eq!(GRANT_ENTRIES_PER_PAGE, 512);
        let e = GrantEntryV1::permit_access(5, 0x1234, true);
        assert_eq!(e.flags, GTF_PERMIT_ACCESS | GTF_READONLY);
        assert!(!e.in_use());
        assert!(GrantEntryV1 {
            flags: e.flags | GTF_READING,
            ..e
        }
        .in_use());
        assert_eq!(gref_location(513), (1, 1));
    }
}
