//! blkif ring entries as validated representations (smoltcp-style `Repr`s).
//!
//! A ring slot is copied out of shared memory exactly once, as a [`Slot`] of bytes (XSA-155).
//! [`Request::parse`] reads the operation byte, decodes the slot as the matching `io/blkif.h`
//! struct and checks every invariant the backend relies on (segment count, each segment's
//! sector range within its page, the indirect operation); from then on the backend only
//! touches the [`Request`]. A failed parse still yields the request's `id` and effective
//! operation ([`RequestError`]) so the frontend gets a well-formed error response.
//! [`Response::emit`] encodes a response; the ring writes the whole slot, padding included
//! (XSA-216).

use core::fmt;

use xen_abi::blkif::{
    BlkifRequest, BlkifRequestDiscard, BlkifRequestIndirect, BlkifRequestSegment, BlkifResponse,
    BLKIF_DISCARD_SECURE, BLKIF_ENTRY_SIZE, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST,
    BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT,
    BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR,
    BLKIF_RSP_OKAY, BLKIF_SECTORS_PER_PAGE, BLKIF_SECTOR_SIZE, SEGS_PER_INDIRECT_FRAME,
};
use xen_abi::{GrantRef, ShortBuffer, WireStruct};

/// The raw bytes of one ring slot, copied out of the shared ring once.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Slot(pub [u8; BLKIF_ENTRY_SIZE]);

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Slot(op {}, id {:#x})", self.0[0], field_u64(&self.0, 8))
    }
}

impl Default for Slot {
    fn default() -> Self {
        Slot([0; BLKIF_ENTRY_SIZE])
    }
}

impl WireStruct for Slot {
    const SIZE: usize = BLKIF_ENTRY_SIZE;

    fn read_from(src: &[u8]) -> Result<Self, ShortBuffer> {
        let bytes = src.get(..Self::SIZE).ok_or(ShortBuffer {
            need: Self::SIZE,
            have: src.len(),
        })?;
        let mut slot = [0u8; BLKIF_ENTRY_SIZE];
        slot.copy_from_slice(bytes);
        Ok(Slot(slot))
    }

    fn write_to(&self, dst: &mut [u8]) -> Result<(), ShortBuffer> {
        let have = dst.len();
        let out = dst.get_mut(..Self::SIZE).ok_or(ShortBuffer {
            need: Self::SIZE,
            have,
        })?;
        out.copy_from_slice(&self.0);
        Ok(())
    }
}

fn field_u64(b: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(raw)
}

/// One validated data segment: sectors `first_sect..=last_sect` (512 bytes each) of a granted
/// page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Grant of the data page.
    pub gref: GrantRef,
    /// First sector in the page.
    pub first_sect: u8,
    /// Last sector in the page (inclusive, `first_sect <= last_sect < 8`).
    pub last_sect: u8,
}

impl Segment {
    /// Validates a wire segment: `first_sect <= last_sect < 8` (XSA-229: never past the page).
    pub fn parse(raw: &BlkifRequestSegment) -> Option<Self> {
        raw.is_valid().then_some(Segment {
            gref: raw.gref,
            first_sect: raw.first_sect,
            last_sect: raw.last_sect,
        })
    }

    /// Byte offset of the data in the page.
    pub fn offset(&self) -> usize {
        usize::from(self.first_sect) * BLKIF_SECTOR_SIZE
    }

    /// Number of 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        u64::from(self.last_sect - self.first_sect) + 1
    }

    /// Length of the data in bytes (512..=4096).
    pub fn len(&self) -> usize {
        self.sectors() as usize * BLKIF_SECTOR_SIZE
    }

    /// Always false: a valid segment holds at least one sector.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The wire form.
    pub fn to_wire(self) -> BlkifRequestSegment {
        BlkifRequestSegment {
            gref: self.gref,
            first_sect: self.first_sect,
            last_sect: self.last_sect,
        }
    }
}

/// What a data request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `BLKIF_OP_READ`.
    Read,
    /// `BLKIF_OP_WRITE`.
    Write,
    /// `BLKIF_OP_WRITE_BARRIER`: earlier requests complete first, the data (if any) and
    /// everything before it is durable when acknowledged.
    Barrier,
    /// `BLKIF_OP_FLUSH_DISKCACHE`: everything written before is durable when acknowledged;
    /// may carry data (Linux sends FUA writes this way).
    Flush,
}

impl Kind {
    /// The `BLKIF_OP_*` value.
    pub fn operation(self) -> u8 {
        match self {
            Kind::Read => BLKIF_OP_READ,
            Kind::Write => BLKIF_OP_WRITE,
            Kind::Barrier => BLKIF_OP_WRITE_BARRIER,
            Kind::Flush => BLKIF_OP_FLUSH_DISKCACHE,
        }
    }

    /// Whether the data moves from the guest to the store.
    pub fn writes(self) -> bool {
        !matches!(self, Kind::Read)
    }

    /// Whether the request orders and flushes (barrier or flush).
    pub fn is_ordered(self) -> bool {
        matches!(self, Kind::Barrier | Kind::Flush)
    }
}

/// Where a data request's segments are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segments {
    /// Inline in the request (at most 11).
    Direct {
        /// The segments; the first `count` are valid.
        segs: [Segment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
        /// Number of segments.
        count: u8,
    },
    /// In pages the frontend granted (`BLKIF_OP_INDIRECT`); the segments themselves are
    /// validated when they are copied out of those pages.
    Indirect {
        /// Number of segments.
        count: u16,
        /// Grants of the indirect pages; the first `pages()` are used.
        grefs: [GrantRef; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
    },
}

impl Segments {
    /// Number of segments.
    pub fn count(&self) -> usize {
        match self {
            Segments::Direct { count, .. } => usize::from(*count),
            Segments::Indirect { count, .. } => usize::from(*count),
        }
    }

    /// The inline segments (empty for indirect requests).
    pub fn direct(&self) -> &[Segment] {
        match self {
            Segments::Direct { segs, count } => &segs[..usize::from(*count)],
            Segments::Indirect { .. } => &[],
        }
    }

    /// The grants of the indirect pages in use (empty for direct requests).
    pub fn indirect_pages(&self) -> &[GrantRef] {
        match self {
            Segments::Direct { .. } => &[],
            Segments::Indirect { count, grefs } => {
                &grefs[..BlkifRequestIndirect::indirect_pages(*count)]
            }
        }
    }
}

/// A read, write, barrier or flush request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RwRequest {
    /// The frontend's id, echoed in the response.
    pub id: u64,
    /// What to do.
    pub kind: Kind,
    /// Whether it came as `BLKIF_OP_INDIRECT`.
    pub indirect: bool,
    /// Virtual device handle (informational; Linux ignores it too).
    pub handle: u16,
    /// First 512-byte sector.
    pub sector: u64,
    /// The data segments.
    pub segments: Segments,
}

/// A discard request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscardRequest {
    /// The frontend's id.
    pub id: u64,
    /// First 512-byte sector.
    pub sector: u64,
    /// Number of 512-byte sectors.
    pub nr_sectors: u64,
    /// `BLKIF_DISCARD_SECURE` was set.
    pub secure: bool,
}

/// A validated request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Read / write / barrier / flush, direct or indirect.
    Rw(RwRequest),
    /// Discard.
    Discard(DiscardRequest),
    /// An operation we do not implement: answered with `BLKIF_RSP_EOPNOTSUPP`.
    Unsupported {
        /// The frontend's id.
        id: u64,
        /// The operation byte.
        operation: u8,
    },
}

/// Why a request was refused; the frontend gets `BLKIF_RSP_ERROR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// A read or write without segments.
    NoSegments,
    /// More segments than the request form allows.
    TooManySegments {
        /// Segments in the request.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A segment whose sector range is empty or leaves its page.
    BadSegment {
        /// Index of the segment.
        index: usize,
        /// Its first sector.
        first_sect: u8,
        /// Its last sector.
        last_sect: u8,
    },
    /// An indirect request whose inner operation is not read or write.
    BadIndirectOperation(u8),
    /// Indirect descriptors were not negotiated (`feature-max-indirect-segments` absent).
    IndirectNotSupported,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Invalid::NoSegments => f.write_str("data request without segments"),
            Invalid::TooManySegments { count, max } => {
                write!(f, "{count} segments exceed the maximum of {max}")
            }
            Invalid::BadSegment {
                index,
                first_sect,
                last_sect,
            } => write!(
                f,
                "segment {index} covers sectors {first_sect}..={last_sect} (must lie in 0..=7)"
            ),
            Invalid::BadIndirectOperation(op) => {
                write!(f, "indirect request with inner operation {op}")
            }
            Invalid::IndirectNotSupported => f.write_str("indirect request not negotiated"),
        }
    }
}

/// A request that failed validation, with what is needed to answer it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestError {
    /// The frontend's id.
    pub id: u64,
    /// The operation to echo (the inner operation of an indirect request).
    pub operation: u8,
    /// What was wrong.
    pub reason: Invalid,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request {:#x} (op {}): {}",
            self.id, self.operation, self.reason
        )
    }
}

impl Request {
    /// Parses a slot. `max_indirect` is the `feature-max-indirect-segments` we advertised
    /// (0: indirect requests are refused).
    pub fn parse(slot: &Slot, max_indirect: u16) -> Result<Request, RequestError> {
        let bytes = &slot.0;
        let operation = bytes[0];
        let id = field_u64(bytes, 8);
        let fail = |operation, reason| RequestError {
            id,
            operation,
            reason,
        };
        match operation {
            BLKIF_OP_READ | BLKIF_OP_WRITE | BLKIF_OP_WRITE_BARRIER | BLKIF_OP_FLUSH_DISKCACHE => {
                // Cannot fail: a slot is the size of the largest request.
                let req = BlkifRequest::read_from(bytes).unwrap_or_default();
                let kind = match operation {
                    BLKIF_OP_READ => Kind::Read,
                    BLKIF_OP_WRITE => Kind::Write,
                    BLKIF_OP_WRITE_BARRIER => Kind::Barrier,
                    _ => Kind::Flush,
                };
                let count = usize::from(req.nr_segments);
                if count == 0 && !kind.is_ordered() {
                    return Err(fail(operation, Invalid::NoSegments));
                }
                if count > BLKIF_MAX_SEGMENTS_PER_REQUEST {
                    let max = BLKIF_MAX_SEGMENTS_PER_REQUEST;
                    return Err(fail(operation, Invalid::TooManySegments { count, max }));
                }
                let mut segs = [Segment::default(); BLKIF_MAX_SEGMENTS_PER_REQUEST];
                for (index, (raw, out)) in req.seg[..count].iter().zip(&mut segs).enumerate() {
                    *out = Segment::parse(raw).ok_or(fail(
                        operation,
                        Invalid::BadSegment {
                            index,
                            first_sect: raw.first_sect,
                            last_sect: raw.last_sect,
                        },
                    ))?;
                }
                Ok(Request::Rw(RwRequest {
                    id,
                    kind,
                    indirect: false,
                    handle: req.handle,
                    sector: req.sector_number,
                    segments: Segments::Direct {
                        segs,
                        count: req.nr_segments,
                    },
                }))
            }
            BLKIF_OP_INDIRECT => {
                let req = BlkifRequestIndirect::read_from(bytes).unwrap_or_default();
                let inner = req.indirect_op;
                let kind = match inner {
                    BLKIF_OP_READ => Kind::Read,
                    BLKIF_OP_WRITE => Kind::Write,
                    _ => return Err(fail(inner, Invalid::BadIndirectOperation(inner))),
                };
                if max_indirect == 0 {
                    return Err(fail(inner, Invalid::IndirectNotSupported));
                }
                let count = usize::from(req.nr_segments);
                if count == 0 {
                    return Err(fail(inner, Invalid::NoSegments));
                }
                let max = usize::from(max_indirect)
                    .min(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST * SEGS_PER_INDIRECT_FRAME);
                if count > max {
                    return Err(fail(inner, Invalid::TooManySegments { count, max }));
                }
                Ok(Request::Rw(RwRequest {
                    id,
                    kind,
                    indirect: true,
                    handle: req.handle,
                    sector: req.sector_number,
                    segments: Segments::Indirect {
                        count: req.nr_segments,
                        grefs: req.indirect_grefs,
                    },
                }))
            }
            BLKIF_OP_DISCARD => {
                let req = BlkifRequestDiscard::read_from(bytes).unwrap_or_default();
                Ok(Request::Discard(DiscardRequest {
                    id,
                    sector: req.sector_number,
                    nr_sectors: req.nr_sectors,
                    secure: req.flag & BLKIF_DISCARD_SECURE != 0,
                }))
            }
            _ => Ok(Request::Unsupported { id, operation }),
        }
    }

    /// The frontend's id.
    pub fn id(&self) -> u64 {
        match self {
            Request::Rw(r) => r.id,
            Request::Discard(d) => d.id,
            Request::Unsupported { id, .. } => *id,
        }
    }

    /// The operation a response to this request carries (Linux's blkfront checks it; for
    /// indirect requests it is the inner operation).
    pub fn response_operation(&self) -> u8 {
        match self {
            Request::Rw(r) => r.kind.operation(),
            Request::Discard(_) => BLKIF_OP_DISCARD,
            Request::Unsupported { operation, .. } => *operation,
        }
    }
}

/// Parses the segments of one indirect page (`count` of them, copied out of the page once
/// into `raw`) into `out`. `base` is the index of the first one within the request, for the
/// error.
pub fn parse_indirect_segments(
    raw: &[u8],
    base: usize,
    out: &mut alloc::vec::Vec<Segment>,
) -> Result<(), Invalid> {
    for (i, chunk) in raw.chunks_exact(BlkifRequestSegment::SIZE).enumerate() {
        // Cannot fail: chunks are exactly the segment size.
        let seg = BlkifRequestSegment::read_from(chunk).unwrap_or_default();
        let parsed = Segment::parse(&seg).ok_or(Invalid::BadSegment {
            index: base + i,
            first_sect: seg.first_sect,
            last_sect: seg.last_sect,
        })?;
        out.push(parsed);
    }
    Ok(())
}

/// Sectors of a page, for checks on segment ranges.
pub const SECTORS_PER_PAGE: u8 = BLKIF_SECTORS_PER_PAGE;

/// A response status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `BLKIF_RSP_OKAY`.
    Okay,
    /// `BLKIF_RSP_ERROR`.
    Error,
    /// `BLKIF_RSP_EOPNOTSUPP`.
    NotSupported,
}

impl Status {
    /// The wire value.
    pub fn to_wire(self) -> i16 {
        match self {
            Status::Okay => BLKIF_RSP_OKAY,
            Status::Error => BLKIF_RSP_ERROR,
            Status::NotSupported => BLKIF_RSP_EOPNOTSUPP,
        }
    }
}

/// A response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// The request's (effective) operation.
    pub operation: u8,
    /// The outcome.
    pub status: Status,
}

impl Response {
    /// The wire struct (the ring writes it into a zeroed slot image, so every byte of the
    /// slot is ours).
    pub fn to_wire(&self) -> BlkifResponse {
        BlkifResponse {
            id: self.id,
            operation: self.operation,
            status: self.status.to_wire(),
        }
    }

    /// Encodes into `buf` (16 bytes; padding zeroed).
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), ShortBuffer> {
        self.to_wire().write_to(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(bytes: &[u8]) -> Slot {
        let mut s = Slot::default();
        s.0[..bytes.len()].copy_from_slice(bytes);
        s
    }

    // op, nr_segments, handle(2), pad(4), id(8), sector(8), segments (gref u32, first, last, pad 2)
    const READ_2_SEGS: [u8; 40] = [
        0, 2, 0x00, 0xca, 0, 0, 0, 0, // operation READ, 2 segments, handle 0xca00
        0x2a, 0, 0, 0, 0, 0, 0, 0, // id 42
        0x00, 0x08, 0, 0, 0, 0, 0, 0, // sector 2048
        8, 0, 0, 0, 0, 7, 0, 0, // gref 8, sectors 0..=7
        9, 0, 0, 0, 2, 3, 0, 0, // gref 9, sectors 2..=3
    ];

    #[test]
    fn parses_a_direct_read() {
        let req = Request::parse(&slot(&READ_2_SEGS), 256).unwrap();
        let Request::Rw(rw) = req else {
            panic!("not rw: {req:?}")
        };
        assert_eq!(
            (rw.id, rw.kind, rw.sector, rw.handle),
            (42, Kind::Read, 2048, 0xca00)
        );
        assert!(!rw.indirect);
        let segs = rw.segments.direct();
        assert_eq!(segs.len(), 2);
        assert_eq!((segs[0].offset(), segs[0].len()), (0, 4096));
        assert_eq!(
            (segs[1].gref, segs[1].offset(), segs[1].len()),
            (9, 1024, 1024)
        );
        assert_eq!(req.response_operation(), BLKIF_OP_READ);
    }

    #[test]
    fn refuses_segments_leaving_the_page() {
        let mut bytes = READ_2_SEGS;
        bytes[37] = 8; // last_sect 8
        let err = Request::parse(&slot(&bytes), 256).unwrap_err();
        assert_eq!(err.id, 42);
        assert_eq!(
            err.reason,
            Invalid::BadSegment {
                index: 1,
                first_sect: 2,
                last_sect: 8
            }
        );
        bytes[37] = 1; // first > last
        assert!(matches!(
            Request::parse(&slot(&bytes), 256).unwrap_err().reason,
            Invalid::BadSegment { index: 1, .. }
        ));
    }

    #[test]
    fn segment_counts_are_bounded() {
        let mut bytes = READ_2_SEGS;
        bytes[1] = 0;
        assert_eq!(
            Request::parse(&slot(&bytes), 256).unwrap_err().reason,
            Invalid::NoSegments
        );
        bytes[1] = 12;
        assert_eq!(
            Request::parse(&slot(&bytes), 256).unwrap_err().reason,
            Invalid::TooManySegments { count: 12, max: 11 }
        );
        // A flush may be empty.
        bytes[0] = BLKIF_OP_FLUSH_DISKCACHE;
        bytes[1] = 0;
        let Ok(Request::Rw(rw)) = Request::parse(&slot(&bytes), 256) else {
            panic!()
        };
        assert_eq!((rw.kind, rw.segments.count()), (Kind::Flush, 0));
    }

    #[test]
    fn parses_indirect_requests() {
        // op INDIRECT, indirect_op WRITE, nr_segments 600, id 7, sector 16, handle 1, grefs
        let mut b = [0u8; 64];
        b[0] = BLKIF_OP_INDIRECT;
        b[1] = BLKIF_OP_WRITE;
        b[2..4].copy_from_slice(&600u16.to_le_bytes());
        b[8] = 7;
        b[16] = 16;
        b[24..26].copy_from_slice(&1u16.to_le_bytes());
        b[28..32].copy_from_slice(&100u32.to_le_bytes());
        b[32..36].copy_from_slice(&101u32.to_le_bytes());
        let req = Request::parse(&slot(&b), 1024).unwrap();
        let Request::Rw(rw) = req else { panic!() };
        assert_eq!(
            (rw.id, rw.kind, rw.sector, rw.handle),
            (7, Kind::Write, 16, 1)
        );
        assert!(rw.indirect);
        assert_eq!(rw.segments.count(), 600);
        assert_eq!(rw.segments.indirect_pages(), &[100, 101]);
        assert_eq!(req.response_operation(), BLKIF_OP_WRITE);

        let err = Request::parse(&slot(&b), 256).unwrap_err();
        assert_eq!(
            (err.operation, err.reason),
            (
                BLKIF_OP_WRITE,
                Invalid::TooManySegments {
                    count: 600,
                    max: 256
                }
            )
        );
        assert_eq!(
            Request::parse(&slot(&b), 0).unwrap_err().reason,
            Invalid::IndirectNotSupported
        );
        b[1] = BLKIF_OP_DISCARD;
        let err = Request::parse(&slot(&b), 512).unwrap_err();
        assert_eq!((err.id, err.operation), (7, BLKIF_OP_DISCARD));
        assert_eq!(err.reason, Invalid::BadIndirectOperation(BLKIF_OP_DISCARD));
    }

    #[test]
    fn parses_discard_and_unknown() {
        let mut b = [0u8; 32];
        b[0] = BLKIF_OP_DISCARD;
        b[1] = BLKIF_DISCARD_SECURE;
        b[8] = 3;
        b[16..24].copy_from_slice(&4096u64.to_le_bytes());
        b[24..32].copy_from_slice(&8u64.to_le_bytes());
        assert_eq!(
            Request::parse(&slot(&b), 0).unwrap(),
            Request::Discard(DiscardRequest {
                id: 3,
                sector: 4096,
                nr_sectors: 8,
                secure: true
            })
        );
        for op in [4u8, 7, 200, 255] {
            b[0] = op;
            assert_eq!(
                Request::parse(&slot(&b), 0).unwrap(),
                Request::Unsupported {
                    id: 3,
                    operation: op
                }
            );
        }
    }

    #[test]
    fn indirect_page_segments_are_validated() {
        let mut raw = [0u8; 24];
        raw[0] = 5;
        raw[5] = 7;
        raw[8] = 6;
        raw[12] = 3;
        raw[13] = 3;
        raw[16] = 7;
        raw[20] = 0;
        raw[21] = 9;
        let mut out = alloc::vec::Vec::new();
        let err = parse_indirect_segments(&raw, 512, &mut out).unwrap_err();
        assert_eq!(
            err,
            Invalid::BadSegment {
                index: 514,
                first_sect: 0,
                last_sect: 9
            }
        );
        assert_eq!(out.len(), 2);
        assert_eq!((out[1].gref, out[1].offset(), out[1].len()), (6, 1536, 512));
    }

    #[test]
    fn responses_emit_every_byte() {
        let rsp = Response {
            id: 0x0102_0304_0506_0708,
            operation: BLKIF_OP_DISCARD,
            status: Status::NotSupported,
        };
        let mut buf = [0xaau8; 16];
        rsp.emit(&mut buf).unwrap();
        assert_eq!(buf, [8, 7, 6, 5, 4, 3, 2, 1, 5, 0, 0xfe, 0xff, 0, 0, 0, 0]);
    }

    #[test]
    fn slots_round_trip() {
        let s = slot(&READ_2_SEGS);
        let mut buf = [0u8; 112];
        s.write_to(&mut buf).unwrap();
        assert_eq!(Slot::read_from(&buf).unwrap(), s);
        assert!(Slot::read_from(&buf[..100]).is_err());
    }
}
