//! PV USB rings (`io/usbif.h`): the URB ring carrying transfers and the connection ring
//! reporting port changes, plus the pipe word that addresses a transfer.

use crate::ring::{entry_size, ring_size};
use crate::wire::impl_wire;
use crate::GrantRef;

/// USB version unknown (`USB_VER_UNKNOWN`).
pub const USB_VER_UNKNOWN: u32 = 0;
/// USB 1.1 (`USB_VER_USB11`).
pub const USB_VER_USB11: u32 = 1;
/// USB 2.0 (`USB_VER_USB20`).
pub const USB_VER_USB20: u32 = 2;
/// USB 3.0, not supported yet (`USB_VER_USB30`).
pub const USB_VER_USB30: u32 = 3;

/// Pipe: port number bits (`USBIF_PIPE_PORT_MASK`).
pub const USBIF_PIPE_PORT_MASK: u32 = 0x0000_001f;
/// Pipe: this is an unlink request (`USBIF_PIPE_UNLINK`).
pub const USBIF_PIPE_UNLINK: u32 = 0x0000_0020;
/// Pipe: direction IN (`USBIF_PIPE_DIR`).
pub const USBIF_PIPE_DIR: u32 = 0x0000_0080;
/// Pipe: device address mask after shifting (`USBIF_PIPE_DEV_MASK`).
pub const USBIF_PIPE_DEV_MASK: u32 = 0x0000_007f;
/// Pipe: device address shift (`USBIF_PIPE_DEV_SHIFT`).
pub const USBIF_PIPE_DEV_SHIFT: u32 = 8;
/// Pipe: endpoint mask after shifting (`USBIF_PIPE_EP_MASK`).
pub const USBIF_PIPE_EP_MASK: u32 = 0x0000_000f;
/// Pipe: endpoint shift (`USBIF_PIPE_EP_SHIFT`).
pub const USBIF_PIPE_EP_SHIFT: u32 = 15;
/// Pipe: transfer type mask after shifting (`USBIF_PIPE_TYPE_MASK`).
pub const USBIF_PIPE_TYPE_MASK: u32 = 0x0000_0003;
/// Pipe: transfer type shift (`USBIF_PIPE_TYPE_SHIFT`).
pub const USBIF_PIPE_TYPE_SHIFT: u32 = 30;
/// Transfer type: isochronous (`USBIF_PIPE_TYPE_ISOC`).
pub const USBIF_PIPE_TYPE_ISOC: u32 = 0;
/// Transfer type: interrupt (`USBIF_PIPE_TYPE_INT`).
pub const USBIF_PIPE_TYPE_INT: u32 = 1;
/// Transfer type: control (`USBIF_PIPE_TYPE_CTRL`).
pub const USBIF_PIPE_TYPE_CTRL: u32 = 2;
/// Transfer type: bulk (`USBIF_PIPE_TYPE_BULK`).
pub const USBIF_PIPE_TYPE_BULK: u32 = 3;

/// Segments per URB request (`USBIF_MAX_SEGMENTS_PER_REQUEST`).
pub const USBIF_MAX_SEGMENTS_PER_REQUEST: usize = 16;
/// Highest port number (`USBIF_MAX_PORTNR`).
pub const USBIF_MAX_PORTNR: u32 = 31;
/// Size of each ring (`USBIF_RING_SIZE`).
pub const USBIF_RING_SIZE: usize = 4096;
/// [`UsbifUrbRequest::transfer_flags`]: short reads are errors (`USBIF_SHORT_NOT_OK`).
pub const USBIF_SHORT_NOT_OK: u16 = 0x0001;

/// URB status: success (`USBIF_STATUS_OK`).
pub const USBIF_STATUS_OK: i32 = 0;
/// URB status: no device (`USBIF_STATUS_NODEV`).
pub const USBIF_STATUS_NODEV: i32 = -19;
/// URB status: invalid request (`USBIF_STATUS_INVAL`).
pub const USBIF_STATUS_INVAL: i32 = -22;
/// URB status: endpoint stalled (`USBIF_STATUS_STALL`).
pub const USBIF_STATUS_STALL: i32 = -32;
/// URB status: I/O error (`USBIF_STATUS_IOERROR`).
pub const USBIF_STATUS_IOERROR: i32 = -71;
/// URB status: babble (`USBIF_STATUS_BABBLE`).
pub const USBIF_STATUS_BABBLE: i32 = -75;
/// URB status: shut down/unlinked (`USBIF_STATUS_SHUTDOWN`).
pub const USBIF_STATUS_SHUTDOWN: i32 = -108;

/// Port speed: nothing attached (`USBIF_SPEED_NONE`).
pub const USBIF_SPEED_NONE: u8 = 0;
/// Port speed: low (`USBIF_SPEED_LOW`).
pub const USBIF_SPEED_LOW: u8 = 1;
/// Port speed: full (`USBIF_SPEED_FULL`).
pub const USBIF_SPEED_FULL: u8 = 2;
/// Port speed: high (`USBIF_SPEED_HIGH`).
pub const USBIF_SPEED_HIGH: u8 = 3;

/// A transfer's transfer type, from the pipe word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsbPipeType {
    /// Isochronous.
    Isochronous,
    /// Interrupt.
    Interrupt,
    /// Control.
    Control,
    /// Bulk.
    Bulk,
}

/// The pipe word of a URB request, with the `usbif_pipe*` accessors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsbifPipe(pub u32);

impl UsbifPipe {
    /// Encodes a submit pipe (the inverse of the accessors; fields are masked to their
    /// widths, as `usb_pipe*` encoders in xen-hcd do).
    pub const fn new(port: u32, device: u32, endpoint: u32, is_in: bool, ty: UsbPipeType) -> Self {
        let ty = match ty {
            UsbPipeType::Isochronous => USBIF_PIPE_TYPE_ISOC,
            UsbPipeType::Interrupt => USBIF_PIPE_TYPE_INT,
            UsbPipeType::Control => USBIF_PIPE_TYPE_CTRL,
            UsbPipeType::Bulk => USBIF_PIPE_TYPE_BULK,
        };
        let dir = if is_in { USBIF_PIPE_DIR } else { 0 };
        Self(
            (port & USBIF_PIPE_PORT_MASK)
                | dir
                | ((device & USBIF_PIPE_DEV_MASK) << USBIF_PIPE_DEV_SHIFT)
                | ((endpoint & USBIF_PIPE_EP_MASK) << USBIF_PIPE_EP_SHIFT)
                | ((ty & USBIF_PIPE_TYPE_MASK) << USBIF_PIPE_TYPE_SHIFT),
        )
    }

    /// The same pipe as an unlink request (`usbif_setunlink_pipe`).
    pub const fn with_unlink(self) -> Self {
        Self(self.0 | USBIF_PIPE_UNLINK)
    }

    /// Port number, 1 to [`USBIF_MAX_PORTNR`] when valid (`usbif_pipeportnum`).
    pub const fn port(self) -> u32 {
        self.0 & USBIF_PIPE_PORT_MASK
    }

    /// Whether this is an unlink request (`usbif_pipeunlink`).
    pub const fn is_unlink(self) -> bool {
        self.0 & USBIF_PIPE_UNLINK != 0
    }

    /// Whether data flows device to host (`usbif_pipein`).
    pub const fn is_in(self) -> bool {
        self.0 & USBIF_PIPE_DIR != 0
    }

    /// Device address (`usbif_pipedevice`).
    pub const fn device(self) -> u32 {
        (self.0 >> USBIF_PIPE_DEV_SHIFT) & USBIF_PIPE_DEV_MASK
    }

    /// Endpoint number (`usbif_pipeendpoint`).
    pub const fn endpoint(self) -> u32 {
        (self.0 >> USBIF_PIPE_EP_SHIFT) & USBIF_PIPE_EP_MASK
    }

    /// Transfer type (`usbif_pipetype`).
    pub const fn transfer_type(self) -> UsbPipeType {
        match (self.0 >> USBIF_PIPE_TYPE_SHIFT) & USBIF_PIPE_TYPE_MASK {
            USBIF_PIPE_TYPE_ISOC => UsbPipeType::Isochronous,
            USBIF_PIPE_TYPE_INT => UsbPipeType::Interrupt,
            USBIF_PIPE_TYPE_CTRL => UsbPipeType::Control,
            _ => UsbPipeType::Bulk,
        }
    }
}

/// A data segment: `length` bytes at `offset` in a granted page
/// (`struct usbif_request_segment`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsbifRequestSegment {
    /// Grant of the page.
    pub gref: GrantRef,
    /// Offset in the page.
    pub offset: u16,
    /// Length in bytes.
    pub length: u16,
}
impl_wire!(UsbifRequestSegment {
    gref,
    offset,
    length
});

/// A URB request (`struct usbif_urb_request`, 148 B). The C union `u` is kept as 8 bytes;
/// use the accessors for the transfer type in `pipe`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsbifUrbRequest {
    /// Request id.
    pub id: u16,
    /// Number of data segments used.
    pub nr_buffer_segs: u16,
    /// The pipe word ([`UsbifPipe`]).
    pub pipe: u32,
    /// `USBIF_SHORT_NOT_OK` etc.
    pub transfer_flags: u16,
    /// Transfer length.
    pub buffer_length: u16,
    /// The union `u` (`ctrl`, `isoc`, `intr`, `unlink`).
    pub u: [u8; 8],
    /// Data segments, then (isochronous) frame descriptor segments.
    pub seg: [UsbifRequestSegment; USBIF_MAX_SEGMENTS_PER_REQUEST],
}
impl_wire!(UsbifUrbRequest {
    id,
    nr_buffer_segs,
    pipe,
    transfer_flags,
    buffer_length,
    u,
    seg
});

impl UsbifUrbRequest {
    fn u16_at(&self, i: usize) -> u16 {
        u16::from_le_bytes([self.u[i], self.u[i + 1]])
    }

    /// The pipe word, decoded.
    pub const fn pipe(&self) -> UsbifPipe {
        UsbifPipe(self.pipe)
    }

    /// Control: the 8-byte setup packet (`u.ctrl`).
    pub const fn setup_packet(&self) -> [u8; 8] {
        self.u
    }

    /// Isochronous and interrupt: the polling interval (`u.isoc.interval`, `u.intr.interval`).
    pub fn interval(&self) -> u16 {
        self.u16_at(0)
    }

    /// Isochronous: start frame (`u.isoc.start_frame`).
    pub fn isoc_start_frame(&self) -> u16 {
        self.u16_at(2)
    }

    /// Isochronous: number of packets (`u.isoc.number_of_packets`).
    pub fn isoc_number_of_packets(&self) -> u16 {
        self.u16_at(4)
    }

    /// Isochronous: number of frame descriptor segments (`u.isoc.nr_frame_desc_segs`).
    pub fn isoc_nr_frame_desc_segs(&self) -> u16 {
        self.u16_at(6)
    }

    /// Unlink: id of the request to cancel (`u.unlink.unlink_id`).
    pub fn unlink_id(&self) -> u16 {
        self.u16_at(0)
    }
}

/// A URB response (`struct usbif_urb_response`, 16 B).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsbifUrbResponse {
    /// The request's id.
    pub id: u16,
    /// Start frame (isochronous).
    pub start_frame: u16,
    /// A `USBIF_STATUS_*` value.
    pub status: i32,
    /// Bytes transferred.
    pub actual_length: i32,
    /// Isochronous error count.
    pub error_count: i32,
}
impl_wire!(UsbifUrbResponse {
    id,
    start_frame,
    status,
    actual_length,
    error_count
});

/// A connection ring request: an empty slot for the backend to fill
/// (`struct usbif_conn_request`, 2 B).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsbifConnRequest {
    /// Request id.
    pub id: u16,
}
impl_wire!(UsbifConnRequest { id });

/// A port change (`struct usbif_conn_response`, 4 B).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsbifConnResponse {
    /// The request's id.
    pub id: u16,
    /// The port that changed.
    pub portnum: u8,
    /// A `USBIF_SPEED_*` value ([`USBIF_SPEED_NONE`]: detached).
    pub speed: u8,
}
impl_wire!(UsbifConnResponse { id, portnum, speed });

/// Ring slot size of the URB ring.
pub const USB_URB_ENTRY_SIZE: usize = entry_size::<UsbifUrbRequest, UsbifUrbResponse>();
/// Ring slot size of the connection ring.
pub const USB_CONN_ENTRY_SIZE: usize = entry_size::<UsbifConnRequest, UsbifConnResponse>();
/// Entries of the URB ring (`USB_URB_RING_SIZE`, 16).
pub const USB_URB_RING_SIZE: u32 = ring_size(USBIF_RING_SIZE, USB_URB_ENTRY_SIZE);
/// Entries of the connection ring (`USB_CONN_RING_SIZE`, 512).
pub const USB_CONN_RING_SIZE: u32 = ring_size(USBIF_RING_SIZE, USB_CONN_ENTRY_SIZE);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WireStruct;

    #[test]
    fn ring_sizes() {
        assert_eq!((USB_URB_ENTRY_SIZE, USB_URB_RING_SIZE), (148, 16));
        assert_eq!((USB_CONN_ENTRY_SIZE, USB_CONN_RING_SIZE), (4, 512));
    }

    #[test]
    fn pipe_fields() {
        // Bulk IN, endpoint 2, device 5, port 3.
        let pipe = UsbifPipe((3 << 30) | (2 << 15) | (5 << 8) | USBIF_PIPE_DIR | 3);
        assert_eq!(pipe.port(), 3);
        assert!(pipe.is_in());
        assert!(!pipe.is_unlink());
        assert_eq!(pipe.device(), 5);
        assert_eq!(pipe.endpoint(), 2);
        assert_eq!(pipe.transfer_type(), UsbPipeType::Bulk);
        let ctrl = UsbifPipe((USBIF_PIPE_TYPE_CTRL << 30) | USBIF_PIPE_UNLINK | 31);
        assert_eq!(
            (ctrl.port(), ctrl.is_unlink(), ctrl.is_in()),
            (31, true, false)
        );
        assert_eq!(ctrl.transfer_type(), UsbPipeType::Control);
    }

    #[test]
    fn pipe_encode_round_trips() {
        let pipe = UsbifPipe::new(3, 5, 2, true, UsbPipeType::Bulk);
        assert_eq!(
            pipe.0,
            (3 << 30) | (2 << 15) | (5 << 8) | USBIF_PIPE_DIR | 3
        );
        for ty in [
            UsbPipeType::Isochronous,
            UsbPipeType::Interrupt,
            UsbPipeType::Control,
            UsbPipeType::Bulk,
        ] {
            let p = UsbifPipe::new(31, 127, 15, false, ty).with_unlink();
            assert_eq!((p.port(), p.device(), p.endpoint()), (31, 127, 15));
            assert_eq!(
                (p.is_in(), p.is_unlink(), p.transfer_type()),
                (false, true, ty)
            );
        }
        // Out-of-range fields are masked, never spill into neighbours.
        let p = UsbifPipe::new(32, 128, 16, false, UsbPipeType::Isochronous);
        assert_eq!(p.0, 0);
    }

    #[test]
    fn urb_union_accessors() {
        let mut slot = [0u8; 148];
        slot[12..20].copy_from_slice(&[8, 0, 100, 0, 4, 0, 1, 0]);
        let req = UsbifUrbRequest::read_from(&slot).unwrap();
        assert_eq!(req.interval(), 8);
        assert_eq!(req.isoc_start_frame(), 100);
        assert_eq!(req.isoc_number_of_packets(), 4);
        assert_eq!(req.isoc_nr_frame_desc_segs(), 1);
        assert_eq!(req.unlink_id(), 8);
        assert_eq!(req.setup_packet(), [8, 0, 100, 0, 4, 0, 1, 0]);
    }
}
