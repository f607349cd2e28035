//! The network device a driver domain owns (a passed-through NIC), as the backends see it.
//!
//! A driver behind this trait (virtio-net in `minios-rt`, a fake in host tests) moves whole
//! Ethernet frames: it copies what it is given to transmit into its own DMA buffers, and
//! hands received frames out of its buffers to a callback before reposting them. Offloads
//! the device performs are announced by [`NetDevice::offloads`] and requested per frame
//! with [`TxMeta`]; a driver never sees a request for an offload it did not announce.
//!
//! Everything a device writes is untrusted: a driver bounds every length it reads back and
//! reports a device that breaks the protocol as [`NetError::Device`], after which the owner
//! stops using it.

use alloc::string::String;
use core::fmt;

/// Offloads the device performs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetOffloads {
    /// Completes the transport checksum of a transmitted frame ([`TxMeta::csum`]).
    pub tx_csum: bool,
    /// Segments TCP over IPv4 on transmit ([`TxMeta::gso`]).
    pub tx_tso4: bool,
    /// Segments TCP over IPv6 on transmit.
    pub tx_tso6: bool,
    /// Tells whether a received frame's checksum was verified ([`RxCsum`]).
    pub rx_csum: bool,
}

/// Segmentation the device should perform on a transmitted frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxGso {
    /// TCP over IPv6 (else IPv4).
    pub ipv6: bool,
    /// Payload bytes per segment.
    pub mss: u16,
    /// Bytes of headers (Ethernet, IP, TCP) in front of the payload.
    pub hdr_len: u16,
}

/// What the device must do to a frame before sending it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxMeta {
    /// Complete the checksum: it covers the frame from `start`, and goes at `start + offset`
    /// (the field holds the pseudo-header sum).
    pub csum: Option<(u16, u16)>,
    /// Segment the frame.
    pub gso: Option<TxGso>,
}

/// A received frame's checksum, as the device reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RxCsum {
    /// Not checked.
    #[default]
    Unverified,
    /// Verified good.
    Valid,
    /// Blank (the frame came from a local sender that left it to the receiver): covers
    /// the frame from `start`, and goes at `start + offset`.
    Partial {
        /// Where checksumming starts.
        start: u16,
        /// Where the checksum goes, relative to `start`.
        offset: u16,
    },
}

/// A received frame, valid only during the callback.
#[derive(Debug)]
pub struct RxFrame<'a> {
    /// The Ethernet frame.
    pub data: &'a [u8],
    /// Its checksum state.
    pub csum: RxCsum,
}

/// A device operation that did not happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetError {
    /// No room right now (transmit queue full): try again after [`NetDevice::poll`].
    Full,
    /// The frame is larger than the device takes (or asks for an offload not announced).
    Refused,
    /// The device broke its protocol or stopped answering; it must not be used any more.
    Device(String),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Full => f.write_str("transmit queue full"),
            NetError::Refused => f.write_str("frame refused"),
            NetError::Device(why) => write!(f, "device failed: {why}"),
        }
    }
}

/// A network device the driver domain owns.
pub trait NetDevice {
    /// What the device is, for logs and status (`virtio-net 0000:00:10.0 mac …`).
    fn describe(&self) -> String;

    /// The device's MAC address.
    fn mac(&self) -> [u8; 6];

    /// Largest frame (Ethernet header included, no GSO) it sends and receives.
    fn max_frame(&self) -> usize;

    /// What it offloads.
    fn offloads(&self) -> NetOffloads;

    /// Whether the link is up (devices that cannot tell say yes).
    fn link_up(&self) -> bool;

    /// Whether the device signalled (interrupt) since the last call; acknowledges it.
    fn take_interrupt(&mut self) -> bool;

    /// Reclaims finished transmissions and notices received frames; returns an error once
    /// the device has failed.
    fn poll(&mut self) -> Result<(), NetError>;

    /// Hands up to `budget` received frames to `each`, reposting their buffers; returns how
    /// many were handed out.
    fn receive(
        &mut self,
        budget: usize,
        each: &mut dyn FnMut(RxFrame<'_>),
    ) -> Result<usize, NetError>;

    /// Queues one frame (copied) with its offload requests.
    fn transmit(&mut self, frame: &[u8], meta: &TxMeta) -> Result<(), NetError>;

    /// Tells the device about frames queued since the last flush (one doorbell per batch).
    fn flush(&mut self) -> Result<(), NetError>;
}

impl<D: NetDevice + ?Sized> NetDevice for alloc::boxed::Box<D> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn mac(&self) -> [u8; 6] {
        (**self).mac()
    }
    fn max_frame(&self) -> usize {
        (**self).max_frame()
    }
    fn offloads(&self) -> NetOffloads {
        (**self).offloads()
    }
    fn link_up(&self) -> bool {
        (**self).link_up()
    }
    fn take_interrupt(&mut self) -> bool {
        (**self).take_interrupt()
    }
    fn poll(&mut self) -> Result<(), NetError> {
        (**self).poll()
    }
    fn receive(
        &mut self,
        budget: usize,
        each: &mut dyn FnMut(RxFrame<'_>),
    ) -> Result<usize, NetError> {
        (**self).receive(budget, each)
    }
    fn transmit(&mut self, frame: &[u8], meta: &TxMeta) -> Result<(), NetError> {
        (**self).transmit(frame, meta)
    }
    fn flush(&mut self) -> Result<(), NetError> {
        (**self).flush()
    }
}
