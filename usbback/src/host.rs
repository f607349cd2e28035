//! The USB host controller as the backend sees it: a trait a controller driver implements
//! (`xhci.rs` implements it on `minios-rt`'s xHCI driver; host tests use a fake device).
//!
//! The controller owns the physical bus. It reports devices as they attach and detach
//! ([`HostEvent`]), enables a device (port reset, then an address on *its* bus: xHCI
//! Enable Slot + Address Device) before the backend announces it to a guest, runs transfers
//! asynchronously (submit now, [`HostEvent::Completed`] later, identified by the backend's
//! tag) and cancels them. It answers which endpoints the device's active configuration has,
//! so the backend can refuse pipes that name no real endpoint.
//!
//! Guest addresses never reach the controller: the backend answers `SET_ADDRESS` itself and
//! routes by port (see [`crate::ports`]). Every other control request, `SET_CONFIGURATION`
//! and `SET_INTERFACE` included, goes to the controller, which must reconfigure its
//! endpoints from them (xHCI Configure Endpoint).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use xen_abi::usbif::{USBIF_SPEED_FULL, USBIF_SPEED_HIGH, USBIF_SPEED_LOW};

/// The controller's handle for an attached device (xHCI: a slot; unique while attached).
pub type HostDeviceId = u32;

/// A device's bus speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speed {
    /// 1.5 Mbit/s.
    Low,
    /// 12 Mbit/s.
    Full,
    /// 480 Mbit/s.
    High,
    /// 5 Gbit/s or more: usbif has no value for it.
    Super,
}

impl Speed {
    /// The conn-ring speed (`USBIF_SPEED_*`), `None` for SuperSpeed (not in the protocol).
    pub fn usbif(self) -> Option<u8> {
        match self {
            Speed::Low => Some(USBIF_SPEED_LOW),
            Speed::Full => Some(USBIF_SPEED_FULL),
            Speed::High => Some(USBIF_SPEED_HIGH),
            Speed::Super => None,
        }
    }
}

/// An endpoint's transfer type (from its descriptor; endpoint 0 is always control).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointKind {
    /// Control.
    Control,
    /// Isochronous.
    Isochronous,
    /// Bulk.
    Bulk,
    /// Interrupt.
    Interrupt,
}

/// What a transfer does (the backend has checked it against the device's endpoints and,
/// for isochronous packets, against the buffer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferKind {
    /// A control transfer on endpoint 0: the setup packet; the data stage direction is the
    /// setup packet's.
    Control {
        /// The 8-byte setup packet.
        setup: [u8; 8],
    },
    /// Bulk.
    Bulk,
    /// Interrupt.
    Interrupt,
    /// Isochronous: the packets, each a range of the transfer buffer (OUT: of `data`; IN:
    /// of a buffer of `in_len` bytes), checked to lie within it.
    Isochronous {
        /// Polling interval (frames).
        interval: u16,
        /// The packets in order.
        packets: Vec<IsoPacket>,
    },
}

/// One isochronous packet: `length` bytes at `offset` of the transfer buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsoPacket {
    /// Offset in the buffer.
    pub offset: usize,
    /// Length.
    pub length: usize,
}

/// How one isochronous packet ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsoResult {
    /// Bytes moved (IN: placed at the packet's offset in the completion's data).
    pub actual: usize,
    /// Its status.
    pub status: TransferStatus,
}

/// A transfer for the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The backend's tag; the completion carries it back.
    pub tag: u64,
    /// Endpoint number (0–15).
    pub endpoint: u8,
    /// Device to host.
    pub is_in: bool,
    /// Control, bulk, interrupt or isochronous.
    pub kind: TransferKind,
    /// OUT: the data to send. IN: empty.
    pub data: Vec<u8>,
    /// IN: bytes the guest's buffer holds (the device may send fewer; more is babble).
    pub in_len: usize,
}

/// How a transfer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferStatus {
    /// Done (possibly short).
    Ok,
    /// The endpoint stalled (or the device refused a control request).
    Stall,
    /// The device sent more than the buffer holds.
    Babble,
    /// The device is gone.
    NoDevice,
    /// A bus error (CRC, timeout, transaction error).
    IoError,
    /// Cancelled by the backend.
    Cancelled,
}

/// A finished transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The device.
    pub device: HostDeviceId,
    /// The transfer's tag.
    pub tag: u64,
    /// How it ended.
    pub status: TransferStatus,
    /// IN: the bytes received (at most `in_len`; isochronous: the whole buffer, each
    /// packet's bytes at its offset). OUT: empty.
    pub data: Vec<u8>,
    /// OUT: bytes sent. IN: ignored (`data.len()` counts).
    pub sent: usize,
    /// Isochronous: one result per packet, and the frame the transfer started in.
    pub iso: Option<(u16, Vec<IsoResult>)>,
}

/// Something that happened on the bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostEvent {
    /// A device appeared.
    Attached {
        /// Its handle.
        device: HostDeviceId,
        /// Where it is, `<bus>-<port>[.<port>…]` as Linux names it (what `port/N` names).
        path: String,
        /// Its speed.
        speed: Speed,
    },
    /// A device went away (its transfers complete with [`TransferStatus::NoDevice`] or are
    /// dropped; the backend fails what it still has in flight).
    Detached {
        /// Its handle.
        device: HostDeviceId,
    },
    /// A transfer finished.
    Completed(Completion),
}

/// Why the controller refused an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostError {
    /// No such device (detached meanwhile).
    NoDevice,
    /// Out of transfer slots or memory: try again later.
    Busy,
    /// Refused for a reason worth logging.
    Failed(String),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::NoDevice => f.write_str("no such device"),
            HostError::Busy => f.write_str("controller busy"),
            HostError::Failed(why) => f.write_str(why),
        }
    }
}

/// A USB host controller driver.
pub trait UsbHost {
    /// The next bus event, if any (attach/detach in bus order, completions).
    fn poll_event(&mut self) -> Option<HostEvent>;

    /// Resets the device's port and gives the device an address on the controller's bus;
    /// afterwards endpoint 0 takes control transfers. Called before a device is announced
    /// to a guest, and again when it moves to another guest.
    fn enable(&mut self, device: HostDeviceId) -> Result<(), HostError>;

    /// The type of endpoint `number` in direction `is_in` in the device's active
    /// configuration (endpoint 0: control, both directions), `None` if there is none.
    fn endpoint(&self, device: HostDeviceId, number: u8, is_in: bool) -> Option<EndpointKind>;

    /// Starts a transfer; its completion comes later as [`HostEvent::Completed`].
    fn submit(&mut self, device: HostDeviceId, transfer: Transfer) -> Result<(), HostError>;

    /// Cancels a transfer (a no-op for an unknown tag). No completion follows for it.
    fn cancel(&mut self, device: HostDeviceId, tag: u64);

    /// When [`UsbHost::poll_event`] must run next even if nothing wakes the domain (a
    /// transfer's timeout), in the platform's nanoseconds; `None`: only on wake-ups.
    fn next_deadline(&self) -> Option<u64> {
        None
    }

    /// The driver domain is stopping: stop the controller (no more DMA into memory that is
    /// about to be given back). Nothing is called afterwards.
    fn stop(&mut self) {}
}
