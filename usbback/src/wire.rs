//! usbif ring entries as validated representations: a URB request is copied out of the ring
//! once ([`xen_abi::usbif::UsbifUrbRequest`], by value) and parsed here into a [`Request`];
//! everything later acts on that copy. Responses are written whole ([`response`]).
//!
//! What parsing checks (independent of the device state; the port and endpoint checks are
//! the device's, [`crate::ports`]):
//! - the port number is 1–31 (`USBIF_MAX_PORTNR`);
//! - at most 16 segments in all (`USBIF_MAX_SEGMENTS_PER_REQUEST`), each within its page;
//! - the buffer segments hold exactly `buffer_length` bytes (xen-hcd splits the buffer so),
//!   modulo 65536: `buffer_length` is 16 bits wide and xen-hcd writes a 64 KiB transfer's
//!   length (16 full pages, what usb-storage's large reads are) truncated to 0, so the
//!   transfer's length is the segments' total;
//! - control: the setup packet's `wLength` fits the buffer and its direction is the pipe's;
//! - isochronous: 1 ≤ `number_of_packets` ≤ what the frame descriptor segments hold, at
//!   least one descriptor segment, descriptor segments whole descriptors.

use core::fmt;

use xen_abi::usbif::{
    UsbPipeType, UsbifRequestSegment, UsbifUrbRequest, UsbifUrbResponse, USBIF_MAX_PORTNR,
    USBIF_MAX_SEGMENTS_PER_REQUEST, USBIF_SHORT_NOT_OK,
};

/// Bytes of one page.
pub const PAGE_SIZE: usize = 4096;

/// Bytes of one isochronous frame descriptor in a descriptor segment (Linux's
/// `struct usb_iso_packet_descriptor`: offset, length, actual_length, status).
pub const ISO_DESC_SIZE: usize = 16;

/// Most isochronous packets in one URB: 1024, the frames of one xHCI schedule window (what
/// 15 descriptor pages could describe is far more; the bound keeps one URB's work small).
pub const MAX_ISO_PACKETS: u16 = 1024;

/// One isochronous frame descriptor as the guest lays it out (Linux's
/// `struct usb_iso_packet_descriptor`, little-endian): where the packet lies in the buffer,
/// its length, and (written back by the backend) the bytes moved and the packet's status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IsoDescriptor {
    /// Offset of the packet in the transfer buffer.
    pub offset: u32,
    /// Packet length.
    pub length: u32,
    /// Bytes moved (written back).
    pub actual_length: u32,
    /// Status, a `USBIF_STATUS_*` value (written back).
    pub status: i32,
}

impl IsoDescriptor {
    /// Decodes one descriptor.
    pub fn read(b: &[u8; ISO_DESC_SIZE]) -> Self {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Self {
            offset: word(0),
            length: word(4),
            actual_length: word(8),
            status: word(12) as i32,
        }
    }

    /// Encodes one descriptor.
    pub fn write(&self) -> [u8; ISO_DESC_SIZE] {
        let mut b = [0u8; ISO_DESC_SIZE];
        b[0..4].copy_from_slice(&self.offset.to_le_bytes());
        b[4..8].copy_from_slice(&self.length.to_le_bytes());
        b[8..12].copy_from_slice(&self.actual_length.to_le_bytes());
        b[12..16].copy_from_slice(&self.status.to_le_bytes());
        b
    }
}

/// A standard control request (`bRequest`) the backend handles itself.
pub const REQ_SET_ADDRESS: u8 = 5;

/// A data segment, checked to lie within its page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Grant of the page.
    pub gref: u32,
    /// Offset in the page.
    pub offset: u16,
    /// Length.
    pub length: u16,
}

/// Up to 16 checked segments: the buffer segments, then (isochronous) the frame
/// descriptor segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segments {
    segs: [Segment; USBIF_MAX_SEGMENTS_PER_REQUEST],
    len: u8,
    extra: u8,
}

impl Segments {
    /// The buffer segments.
    pub fn as_slice(&self) -> &[Segment] {
        &self.segs[..usize::from(self.len)]
    }

    /// The frame descriptor segments (isochronous; empty otherwise).
    pub fn descriptors(&self) -> &[Segment] {
        &self.segs[usize::from(self.len)..usize::from(self.len + self.extra)]
    }

    /// Total bytes.
    pub fn bytes(&self) -> usize {
        self.as_slice().iter().map(|s| usize::from(s.length)).sum()
    }
}

/// The transfer a submit request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Control, with its setup packet.
    Control {
        /// The 8-byte setup packet.
        setup: [u8; 8],
    },
    /// Bulk.
    Bulk,
    /// Interrupt, polling interval (ms).
    Interrupt {
        /// Interval.
        interval: u16,
    },
    /// Isochronous: the packets' frame descriptors are in the descriptor segments
    /// ([`Segments::descriptors`]; guest memory, read once and written back at completion).
    Isochronous {
        /// Packets.
        packets: u16,
        /// Frame descriptor segments (after the buffer segments).
        desc_segs: u16,
        /// Polling interval (frames).
        interval: u16,
    },
}

/// A checked submit request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Urb {
    /// Request id.
    pub id: u16,
    /// Port 1–31.
    pub port: u8,
    /// Guest device address 0–127.
    pub device: u8,
    /// Endpoint 0–15.
    pub endpoint: u8,
    /// Device to host.
    pub is_in: bool,
    /// Short IN transfers are errors (`USBIF_SHORT_NOT_OK`).
    pub short_not_ok: bool,
    /// What to do.
    pub kind: Kind,
    /// Transfer length (the buffer segments' total, at most 64 KiB).
    pub length: usize,
    /// The buffer segments (frame descriptor segments are not included).
    pub segs: Segments,
}

impl Urb {
    /// Control: `bRequest`.
    pub fn request(&self) -> Option<u8> {
        match self.kind {
            Kind::Control { setup } => Some(setup[1]),
            _ => None,
        }
    }

    /// Control: `wValue`.
    pub fn value(&self) -> u16 {
        match self.kind {
            Kind::Control { setup } => u16::from_le_bytes([setup[2], setup[3]]),
            _ => 0,
        }
    }
}

/// A checked unlink request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unlink {
    /// Request id (of the unlink request itself).
    pub id: u16,
    /// Port 1–31.
    pub port: u8,
    /// Guest device address.
    pub device: u8,
    /// The request to cancel.
    pub target: u16,
}

/// A parsed URB ring request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Start a transfer.
    Submit(Urb),
    /// Cancel one.
    Unlink(Unlink),
}

/// Why a request was refused (answered `USBIF_STATUS_INVAL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The request's id (answered with it).
    pub id: u16,
    /// What is wrong.
    pub why: Why,
}

/// What is wrong with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// Port 0 (the pipe names no port).
    NoPort,
    /// More than 16 segments.
    TooManySegments(u32),
    /// A segment crosses its page.
    SegmentCrossesPage(u16, u16),
    /// The buffer segments do not hold `buffer_length` bytes.
    LengthMismatch {
        /// `buffer_length`.
        length: u16,
        /// Bytes in the buffer segments.
        segments: usize,
    },
    /// A control request's `wLength` exceeds its buffer.
    ControlLonger {
        /// `wLength`.
        w_length: u16,
        /// The buffer's bytes.
        length: usize,
    },
    /// A control request's setup direction differs from the pipe's.
    ControlDirection,
    /// Isochronous packet count outside 1..=what the descriptors hold.
    IsoPackets(u16),
    /// Isochronous descriptor segments missing or not whole descriptors.
    IsoDescriptors,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Why::NoPort => f.write_str("pipe names port 0"),
            Why::TooManySegments(n) => {
                write!(f, "{n} segments (most {USBIF_MAX_SEGMENTS_PER_REQUEST})")
            }
            Why::SegmentCrossesPage(o, l) => write!(f, "segment {o}+{l} crosses its page"),
            Why::LengthMismatch { length, segments } => write!(
                f,
                "buffer_length {length} but the segments hold {segments} bytes"
            ),
            Why::ControlLonger { w_length, length } => write!(
                f,
                "control request wLength {w_length} longer than its {length}-byte buffer"
            ),
            Why::ControlDirection => f.write_str("setup packet direction differs from the pipe"),
            Why::IsoPackets(n) => write!(f, "isochronous packet count {n} out of range"),
            Why::IsoDescriptors => f.write_str("isochronous frame descriptors missing or partial"),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request {}: {}", self.id, self.why)
    }
}

fn segment(raw: &UsbifRequestSegment) -> Result<Segment, Why> {
    if usize::from(raw.offset) + usize::from(raw.length) > PAGE_SIZE {
        return Err(Why::SegmentCrossesPage(raw.offset, raw.length));
    }
    Ok(Segment {
        gref: raw.gref,
        offset: raw.offset,
        length: raw.length,
    })
}

impl Request {
    /// Parses one request copied out of the ring.
    pub fn parse(raw: &UsbifUrbRequest) -> Result<Request, Invalid> {
        let id = raw.id;
        let err = |why| Invalid { id, why };
        let pipe = raw.pipe();
        let port = pipe.port();
        if port == 0 || port > USBIF_MAX_PORTNR {
            return Err(err(Why::NoPort));
        }
        let port = port as u8;
        let device = pipe.device() as u8;
        if pipe.is_unlink() {
            return Ok(Request::Unlink(Unlink {
                id,
                port,
                device,
                target: raw.unlink_id(),
            }));
        }
        let ty = pipe.transfer_type();
        let extra = match ty {
            UsbPipeType::Isochronous => u32::from(raw.isoc_nr_frame_desc_segs()),
            _ => 0,
        };
        let total = u32::from(raw.nr_buffer_segs) + extra;
        if total > USBIF_MAX_SEGMENTS_PER_REQUEST as u32 {
            return Err(err(Why::TooManySegments(total)));
        }
        let mut segs = Segments {
            segs: [Segment {
                gref: 0,
                offset: 0,
                length: 0,
            }; USBIF_MAX_SEGMENTS_PER_REQUEST],
            len: raw.nr_buffer_segs as u8,
            extra: 0,
        };
        for (dst, src) in segs.segs.iter_mut().zip(&raw.seg[..usize::from(segs.len)]) {
            *dst = segment(src).map_err(err)?;
        }
        // `buffer_length` holds the low 16 bits of the length (65536 arrives as 0).
        let length = segs.bytes();
        if length & 0xffff != usize::from(raw.buffer_length) {
            return Err(err(Why::LengthMismatch {
                length: raw.buffer_length,
                segments: segs.bytes(),
            }));
        }
        let is_in = pipe.is_in();
        let kind = match ty {
            UsbPipeType::Control => {
                let setup = raw.setup_packet();
                let w_length = u16::from_le_bytes([setup[6], setup[7]]);
                if usize::from(w_length) > length {
                    return Err(err(Why::ControlLonger { w_length, length }));
                }
                if w_length > 0 && (setup[0] & 0x80 != 0) != is_in {
                    return Err(err(Why::ControlDirection));
                }
                Kind::Control { setup }
            }
            UsbPipeType::Bulk => Kind::Bulk,
            UsbPipeType::Interrupt => Kind::Interrupt {
                interval: raw.interval(),
            },
            UsbPipeType::Isochronous => {
                let desc_segs = raw.isoc_nr_frame_desc_segs();
                let first = usize::from(raw.nr_buffer_segs);
                let descs = &raw.seg[first..first + usize::from(desc_segs)];
                segs.extra = desc_segs as u8;
                let mut desc_bytes = 0usize;
                for (dst, d) in segs.segs[first..].iter_mut().zip(descs) {
                    let d = segment(d).map_err(err)?;
                    if usize::from(d.length) % ISO_DESC_SIZE != 0 {
                        return Err(err(Why::IsoDescriptors));
                    }
                    desc_bytes += usize::from(d.length);
                    *dst = d;
                }
                if desc_segs == 0 {
                    return Err(err(Why::IsoDescriptors));
                }
                let packets = raw.isoc_number_of_packets();
                let held = desc_bytes / ISO_DESC_SIZE;
                if packets == 0 || packets > MAX_ISO_PACKETS || usize::from(packets) > held {
                    return Err(err(Why::IsoPackets(packets)));
                }
                Kind::Isochronous {
                    packets,
                    desc_segs,
                    interval: raw.interval(),
                }
            }
        };
        Ok(Request::Submit(Urb {
            id,
            port,
            device,
            endpoint: pipe.endpoint() as u8,
            is_in,
            short_not_ok: raw.transfer_flags & USBIF_SHORT_NOT_OK != 0,
            kind,
            length,
            segs,
        }))
    }
}

/// The whole response for request `id` (every byte written: no padding in the struct).
pub fn response(id: u16, status: i32, actual_length: usize) -> UsbifUrbResponse {
    UsbifUrbResponse {
        id,
        start_frame: 0,
        status,
        actual_length: actual_length.min(i32::MAX as usize) as i32,
        error_count: 0,
    }
}

/// The response to an isochronous request: its start frame and failed-packet count too.
pub fn iso_response(
    id: u16,
    status: i32,
    actual_length: usize,
    start_frame: u16,
    error_count: usize,
) -> UsbifUrbResponse {
    UsbifUrbResponse {
        start_frame,
        error_count: error_count.min(i32::MAX as usize) as i32,
        ..response(id, status, actual_length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_abi::usbif::UsbifPipe;

    fn req(pipe: UsbifPipe, len: u16, segs: &[(u16, u16)]) -> UsbifUrbRequest {
        let mut r = UsbifUrbRequest {
            id: 7,
            nr_buffer_segs: segs.len() as u16,
            pipe: pipe.0,
            buffer_length: len,
            ..Default::default()
        };
        for (i, &(offset, length)) in segs.iter().enumerate() {
            r.seg[i] = UsbifRequestSegment {
                gref: 100 + i as u32,
                offset,
                length,
            };
        }
        r
    }

    fn bulk_in() -> UsbifPipe {
        UsbifPipe::new(1, 2, 1, true, UsbPipeType::Bulk)
    }

    #[test]
    fn bulk_parses() {
        let r = req(bulk_in(), 600, &[(4000, 96), (0, 504)]);
        let Ok(Request::Submit(urb)) = Request::parse(&r) else {
            panic!("parses")
        };
        assert_eq!(
            (urb.port, urb.device, urb.endpoint, urb.is_in),
            (1, 2, 1, true)
        );
        assert_eq!(urb.segs.bytes(), 600);
        assert_eq!(urb.kind, Kind::Bulk);
    }

    #[test]
    fn a_64_kib_transfer_arrives_with_buffer_length_0() {
        // xen-hcd writes the 16-bit buffer_length of 16 full pages truncated to 0.
        let pages: alloc::vec::Vec<(u16, u16)> = (0..16).map(|_| (0, 4096)).collect();
        let r = req(bulk_in(), 0, &pages);
        let Ok(Request::Submit(urb)) = Request::parse(&r) else {
            panic!("parses")
        };
        assert_eq!((urb.length, urb.segs.bytes()), (65536, 65536));
        // Anything else that does not match stays refused.
        let r = req(bulk_in(), 0, &pages[..15]);
        assert!(Request::parse(&r).is_err());
    }

    #[test]
    fn refusals() {
        let why = |r: &UsbifUrbRequest| Request::parse(r).unwrap_err().why;
        assert_eq!(
            why(&req(
                UsbifPipe::new(0, 2, 1, true, UsbPipeType::Bulk),
                0,
                &[]
            )),
            Why::NoPort
        );
        assert_eq!(
            why(&req(bulk_in(), 100, &[(4090, 10), (0, 90)])),
            Why::SegmentCrossesPage(4090, 10)
        );
        assert_eq!(
            why(&req(bulk_in(), 101, &[(0, 100)])),
            Why::LengthMismatch {
                length: 101,
                segments: 100
            }
        );
        let mut r = req(bulk_in(), 0, &[]);
        r.nr_buffer_segs = 17;
        assert_eq!(why(&r), Why::TooManySegments(17));
        // GET_DESCRIPTOR asking 18 bytes into a 8-byte buffer.
        let mut r = req(
            UsbifPipe::new(1, 0, 0, true, UsbPipeType::Control),
            8,
            &[(0, 8)],
        );
        r.u = [0x80, 6, 0, 1, 0, 0, 18, 0];
        assert_eq!(
            why(&r),
            Why::ControlLonger {
                w_length: 18,
                length: 8
            }
        );
        r.u = [0x00, 6, 0, 1, 0, 0, 8, 0];
        assert_eq!(why(&r), Why::ControlDirection);
    }

    #[test]
    fn iso_counts_are_bounded() {
        let iso = UsbifPipe::new(1, 2, 3, true, UsbPipeType::Isochronous);
        let mk = |packets: u16, desc_len: u16, desc_segs: u16| {
            let mut r = req(iso, 100, &[(0, 100)]);
            r.u[4..6].copy_from_slice(&packets.to_le_bytes());
            r.u[6..8].copy_from_slice(&desc_segs.to_le_bytes());
            r.seg[1] = UsbifRequestSegment {
                gref: 9,
                offset: 0,
                length: desc_len,
            };
            r
        };
        let Ok(Request::Submit(Urb {
            kind:
                Kind::Isochronous {
                    packets: 4,
                    desc_segs: 1,
                    ..
                },
            segs,
            ..
        })) = Request::parse(&mk(4, 64, 1))
        else {
            panic!("parses")
        };
        assert_eq!(segs.as_slice().len(), 1);
        assert_eq!(
            segs.descriptors(),
            [Segment {
                gref: 9,
                offset: 0,
                length: 64
            }]
        );
        let why = |r: UsbifUrbRequest| Request::parse(&r).unwrap_err().why;
        assert_eq!(why(mk(0, 64, 1)), Why::IsoPackets(0));
        assert_eq!(why(mk(5, 64, 1)), Why::IsoPackets(5));
        assert_eq!(why(mk(4, 60, 1)), Why::IsoDescriptors);
        assert_eq!(why(mk(4, 64, 0)), Why::IsoDescriptors);
        assert_eq!(why(mk(4, 64, 16)), Why::TooManySegments(17));
    }

    #[test]
    fn unlink_parses_without_segments() {
        let mut r = req(bulk_in().with_unlink(), 0, &[]);
        r.u[0..2].copy_from_slice(&42u16.to_le_bytes());
        assert_eq!(
            Request::parse(&r),
            Ok(Request::Unlink(Unlink {
                id: 7,
                port: 1,
                device: 2,
                target: 42
            }))
        );
    }
}
