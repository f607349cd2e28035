//! Block device rings (`io/blkif.h`): requests with inline segments, discard and indirect
//! requests, and responses. All request variants share one 112-byte ring slot; read
//! `operation` (byte 0) first, then decode the slot as the matching struct.

use crate::ring::{entry_size, ring_size};
use crate::wire::impl_wire;
use crate::{GrantRef, XEN_PAGE_SIZE};

/// Read sectors (`BLKIF_OP_READ`).
pub const BLKIF_OP_READ: u8 = 0;
/// Write sectors (`BLKIF_OP_WRITE`).
pub const BLKIF_OP_WRITE: u8 = 1;
/// Write with barrier semantics (`BLKIF_OP_WRITE_BARRIER`; `feature-barrier`).
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
/// Flush the disk cache (`BLKIF_OP_FLUSH_DISKCACHE`; `feature-flush-cache`).
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;
/// Reserved, do not use (`BLKIF_OP_RESERVED_1`).
pub const BLKIF_OP_RESERVED_1: u8 = 4;
/// Discard sectors, as [`BlkifRequestDiscard`] (`BLKIF_OP_DISCARD`; `feature-discard`).
pub const BLKIF_OP_DISCARD: u8 = 5;
/// Read or write through indirect segment pages, as [`BlkifRequestIndirect`]
/// (`BLKIF_OP_INDIRECT`; `feature-max-indirect-segments`).
pub const BLKIF_OP_INDIRECT: u8 = 6;

/// Segments in a direct request (`BLKIF_MAX_SEGMENTS_PER_REQUEST`).
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// Indirect pages in an indirect request (`BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`).
pub const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;
/// Segments per indirect page: a page of 8-byte [`BlkifRequestSegment`]s (Linux's
/// `XEN_PAGES_PER_INDIRECT_FRAME`/`SEGS_PER_INDIRECT_FRAME`; not in blkif.h).
pub const SEGS_PER_INDIRECT_FRAME: usize =
    XEN_PAGE_SIZE / core::mem::size_of::<BlkifRequestSegment>();
/// Sector size of the protocol: sector numbers and `first_sect`/`last_sect` count 512 bytes.
pub const BLKIF_SECTOR_SIZE: usize = 512;
/// Sectors per page: `last_sect` must be below this.
pub const BLKIF_SECTORS_PER_PAGE: u8 = (XEN_PAGE_SIZE / BLKIF_SECTOR_SIZE) as u8;

/// [`BlkifRequestDiscard::flag`]: securely erase (`BLKIF_DISCARD_SECURE`).
pub const BLKIF_DISCARD_SECURE: u8 = 1 << 0;

/// Response status: not supported (`BLKIF_RSP_EOPNOTSUPP`).
pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;
/// Response status: failed (`BLKIF_RSP_ERROR`).
pub const BLKIF_RSP_ERROR: i16 = -1;
/// Response status: success (`BLKIF_RSP_OKAY`).
pub const BLKIF_RSP_OKAY: i16 = 0;

/// `info` bit: CD-ROM (`VDISK_CDROM`).
pub const VDISK_CDROM: u32 = 0x1;
/// `info` bit: removable (`VDISK_REMOVABLE`).
pub const VDISK_REMOVABLE: u32 = 0x2;
/// `info` bit: read-only (`VDISK_READONLY`).
pub const VDISK_READONLY: u32 = 0x4;

/// One segment: sectors `first_sect..=last_sect` of a granted page
/// (`struct blkif_request_segment`, 8 B).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestSegment {
    /// Grant of the data page.
    pub gref: GrantRef,
    /// First sector in the page (inclusive).
    pub first_sect: u8,
    /// Last sector in the page (inclusive).
    pub last_sect: u8,
}
impl_wire!(BlkifRequestSegment {
    gref,
    first_sect,
    last_sect
});

impl BlkifRequestSegment {
    /// Whether the sector range is non-empty and within one page (`first <= last < 8`).
    pub const fn is_valid(&self) -> bool {
        self.first_sect <= self.last_sect && self.last_sect < BLKIF_SECTORS_PER_PAGE
    }
}

/// A read/write/flush/barrier request (`struct blkif_request`, 112 B).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequest {
    /// A `BLKIF_OP_*` value.
    pub operation: u8,
    /// Number of valid entries in `seg`.
    pub nr_segments: u8,
    /// Virtual device handle (read/write only).
    pub handle: u16,
    /// Guest's request id, echoed in the response.
    pub id: u64,
    /// Start sector (512 bytes each).
    pub sector_number: u64,
    /// The segments.
    pub seg: [BlkifRequestSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
}
impl_wire!(BlkifRequest {
    operation,
    nr_segments,
    handle,
    id,
    sector_number,
    seg
});

/// A discard request (`struct blkif_request_discard`, 32 B).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestDiscard {
    /// [`BLKIF_OP_DISCARD`].
    pub operation: u8,
    /// [`BLKIF_DISCARD_SECURE`] or 0.
    pub flag: u8,
    /// Virtual device handle.
    pub handle: u16,
    /// Guest's request id.
    pub id: u64,
    /// Start sector.
    pub sector_number: u64,
    /// Number of sectors to discard.
    pub nr_sectors: u64,
}
impl_wire!(BlkifRequestDiscard {
    operation,
    flag,
    handle,
    id,
    sector_number,
    nr_sectors
});

/// An indirect request: segments live in granted pages (`struct blkif_request_indirect`,
/// 64 B on x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestIndirect {
    /// [`BLKIF_OP_INDIRECT`].
    pub operation: u8,
    /// [`BLKIF_OP_READ`] or [`BLKIF_OP_WRITE`].
    pub indirect_op: u8,
    /// Number of segments across the indirect pages.
    pub nr_segments: u16,
    /// Guest's request id.
    pub id: u64,
    /// Start sector.
    pub sector_number: u64,
    /// Virtual device handle.
    pub handle: u16,
    /// Grants of the pages of [`BlkifRequestSegment`]s; the first
    /// `ceil(nr_segments / SEGS_PER_INDIRECT_FRAME)` are used.
    pub indirect_grefs: [GrantRef; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
}
impl_wire!(BlkifRequestIndirect {
    operation,
    indirect_op,
    nr_segments,
    id,
    sector_number,
    handle,
    indirect_grefs
});

impl BlkifRequestIndirect {
    /// Number of indirect pages `nr_segments` segments need.
    pub const fn indirect_pages(nr_segments: u16) -> usize {
        (nr_segments as usize).div_ceil(SEGS_PER_INDIRECT_FRAME)
    }
}

/// A response (`struct blkif_response`, 16 B: `id`, `operation`, a padding byte, `status`,
/// 4 padding bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifResponse {
    /// The request's id.
    pub id: u64,
    /// The request's operation.
    pub operation: u8,
    /// A `BLKIF_RSP_*` status.
    pub status: i16,
}
impl_wire!(BlkifResponse {
    id,
    operation,
    status
});

/// Ring slot size (the request/response union).
pub const BLKIF_ENTRY_SIZE: usize = entry_size::<BlkifRequest, BlkifResponse>();
/// Entries of a one-page ring (32).
pub const BLKIF_RING_SIZE: u32 = ring_size(XEN_PAGE_SIZE, BLKIF_ENTRY_SIZE);

/// Entries of a ring of 2^`order` pages (`max-ring-page-order` / `ring-page-order`).
pub const fn blkif_ring_size(order: u32) -> u32 {
    ring_size(XEN_PAGE_SIZE << order, BLKIF_ENTRY_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WireStruct;

    #[test]
    fn geometry() {
        assert_eq!(SEGS_PER_INDIRECT_FRAME, 512);
        assert_eq!((BLKIF_ENTRY_SIZE, BLKIF_RING_SIZE), (112, 32));
        assert_eq!(blkif_ring_size(2), 128);
        assert_eq!(BlkifRequestIndirect::indirect_pages(0), 0);
        assert_eq!(BlkifRequestIndirect::indirect_pages(513), 2);
        assert_eq!(BlkifRequestIndirect::indirect_pages(4096), 8);
    }

    #[test]
    fn response_padding_is_zeroed() {
        let rsp = BlkifResponse {
            id: 0x1122_3344_5566_7788,
            operation: BLKIF_OP_WRITE,
            status: BLKIF_RSP_ERROR,
        };
        let mut slot = [0xaau8; 112];
        rsp.write_to(&mut slot).unwrap();
        assert_eq!(
            &slot[..16],
            &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 1, 0, 0xff, 0xff, 0, 0, 0, 0]
        );
        assert!(
            slot[16..].iter().all(|&b| b == 0xaa),
            "bytes past the response untouched"
        );
    }

    #[test]
    fn request_from_slot() {
        let mut slot = [0u8; 112];
        slot[0] = BLKIF_OP_READ;
        slot[1] = 2;
        slot[2..4].copy_from_slice(&51712u16.to_le_bytes());
        slot[8..16].copy_from_slice(&99u64.to_le_bytes());
        slot[16..24].copy_from_slice(&2048u64.to_le_bytes());
        slot[24..28].copy_from_slice(&8u32.to_le_bytes());
        slot[28] = 0;
        slot[29] = 7;
        slot[32..36].copy_from_slice(&9u32.to_le_bytes());
        slot[36] = 3;
        slot[37] = 2;
        let req = BlkifRequest::read_from(&slot).unwrap();
        assert_eq!(
            (
                req.operation,
                req.nr_segments,
                req.handle,
                req.id,
                req.sector_number
            ),
            (0, 2, 51712, 99, 2048)
        );
        assert_eq!(
            req.seg[0],
            BlkifRequestSegment {
                gref: 8,
                first_sect: 0,
                last_sect: 7
            }
        );
        assert!(req.seg[0].is_valid());
        assert!(!req.seg[1].is_valid(), "first > last");
        assert!(!BlkifRequestSegment {
            gref: 0,
            first_sect: 0,
            last_sect: 8
        }
        .is_valid());
    }
}
