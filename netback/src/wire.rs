//! netif ring entries as validated representations, in the style of smoltcp's `wire`.
//!
//! The backend copies each ring slot out of shared memory once (as the `xen_abi::netif`
//! struct), parses the copy into a `…Repr` that holds only meaningful, checked values, and
//! from then on touches only the `Repr`. Responses are built as `Repr`s and emitted whole
//! (every byte of the slot written, see `minios::ring::SharedRing::write_entry`).
//!
//! Unknown flag bits are ignored, as Linux does (forward compatibility); values that cannot
//! mean anything (an extra-info type of 0, a GSO size of 0) are errors.

use core::fmt;

use xen_abi::netif::{
    NetifExtraInfo, NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse,
    NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETRXF_CSUM_BLANK,
    NETRXF_DATA_VALIDATED, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA, NETTXF_CSUM_BLANK,
    NETTXF_DATA_VALIDATED, NETTXF_EXTRA_INFO, NETTXF_MORE_DATA, XEN_NETIF_EXTRA_FLAG_MORE,
    XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_EXTRA_TYPE_HASH, XEN_NETIF_EXTRA_TYPE_MCAST_ADD,
    XEN_NETIF_EXTRA_TYPE_MCAST_DEL, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6,
};
use xen_abi::{GrantRef, XEN_PAGE_SIZE};

/// A ring entry that does not mean anything valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// An extra-info segment of type 0 or of a type this protocol version does not define.
    UnknownExtraType(u8),
    /// A GSO extra-info segment with a type other than TCPv4/TCPv6.
    UnknownGsoType(u8),
    /// A GSO extra-info segment with a segment size of 0.
    ZeroGsoSize,
    /// An RX response status outside `-2..=4096` (a frontend-side parse of our output).
    BadRxStatus(i16),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WireError::UnknownExtraType(t) => write!(f, "extra info of unknown type {t}"),
            WireError::UnknownGsoType(t) => write!(f, "GSO extra info of unknown type {t}"),
            WireError::ZeroGsoSize => f.write_str("GSO extra info with segment size 0"),
            WireError::BadRxStatus(s) => write!(f, "rx response status {s} out of range"),
        }
    }
}

/// The TCP flavour of a GSO packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GsoKind {
    /// TCP over IPv4 (`XEN_NETIF_GSO_TYPE_TCPV4`).
    TcpV4,
    /// TCP over IPv6 (`XEN_NETIF_GSO_TYPE_TCPV6`).
    TcpV6,
}

impl GsoKind {
    /// The `XEN_NETIF_GSO_TYPE_*` value.
    pub const fn raw(self) -> u8 {
        match self {
            GsoKind::TcpV4 => XEN_NETIF_GSO_TYPE_TCPV4,
            GsoKind::TcpV6 => XEN_NETIF_GSO_TYPE_TCPV6,
        }
    }
}

/// Large-send metadata: the packet is one TCP super-segment to be cut into `mss`-byte
/// segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gso {
    /// IPv4 or IPv6.
    pub kind: GsoKind,
    /// Maximum segment size (TCP payload bytes per segment), never 0.
    pub mss: u16,
}

/// One TX slot: a piece of a packet the frontend sends (`netif_tx_request`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxRequestRepr {
    /// Grant of the page holding the data.
    pub gref: GrantRef,
    /// Offset of the data in that page.
    pub offset: u16,
    /// First slot of a packet: the whole packet's size; later slots: this slot's size.
    pub size: u16,
    /// Echoed in the response.
    pub id: u16,
    /// `NETTXF_csum_blank`: the L4 checksum holds only the pseudo-header sum.
    pub csum_blank: bool,
    /// `NETTXF_data_validated`: the sender vouches for the data.
    pub data_validated: bool,
    /// `NETTXF_more_data`: another data slot follows.
    pub more_data: bool,
    /// `NETTXF_extra_info`: extra-info slots follow this (first) slot.
    pub extra_info: bool,
}

impl TxRequestRepr {
    /// Parses a slot copied out of the ring. Cannot fail: every bit pattern is a request
    /// whose consistency is checked with the rest of its chain (see [`crate::tx_chain`]).
    pub fn parse(raw: &NetifTxRequest) -> Self {
        Self {
            gref: raw.gref,
            offset: raw.offset,
            size: raw.size,
            id: raw.id,
            csum_blank: raw.flags & NETTXF_CSUM_BLANK != 0,
            data_validated: raw.flags & NETTXF_DATA_VALIDATED != 0,
            more_data: raw.flags & NETTXF_MORE_DATA != 0,
            extra_info: raw.flags & NETTXF_EXTRA_INFO != 0,
        }
    }

    /// Whether `offset + len` stays within the granted page.
    pub fn fits_page(&self, len: usize) -> bool {
        usize::from(self.offset) + len <= XEN_PAGE_SIZE
    }

    /// The ring image (what a frontend writes).
    pub fn emit(&self) -> NetifTxRequest {
        let mut flags = 0;
        for (on, bit) in [
            (self.csum_blank, NETTXF_CSUM_BLANK),
            (self.data_validated, NETTXF_DATA_VALIDATED),
            (self.more_data, NETTXF_MORE_DATA),
            (self.extra_info, NETTXF_EXTRA_INFO),
        ] {
            if on {
                flags |= bit;
            }
        }
        NetifTxRequest {
            gref: self.gref,
            offset: self.offset,
            flags,
            id: self.id,
            size: self.size,
        }
    }
}

/// The meaning of one extra-info segment (`netif_extra_info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtraKind {
    /// Large-send parameters.
    Gso(Gso),
    /// Join a multicast group (only meaningful with multicast control, which we do not offer).
    McastAdd([u8; 6]),
    /// Leave a multicast group.
    McastDel([u8; 6]),
    /// A packet hash (only meaningful with the control ring, which we do not offer).
    Hash {
        /// Hash type bit number.
        hash_type: u8,
        /// Algorithm.
        algorithm: u8,
        /// Value.
        value: u32,
    },
}

/// One extra-info segment and whether another follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtraRepr {
    /// What it says.
    pub kind: ExtraKind,
    /// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra-info segment follows.
    pub more: bool,
}

impl ExtraRepr {
    /// Whether the raw segment asks for another one after it, even if it does not parse
    /// (the chain's framing stays known when its contents are bad).
    pub fn raw_more(raw: &NetifExtraInfo) -> bool {
        raw.flags & XEN_NETIF_EXTRA_FLAG_MORE != 0
    }

    /// Parses a segment copied out of the ring.
    pub fn parse(raw: &NetifExtraInfo) -> Result<Self, WireError> {
        let kind = match raw.type_ {
            XEN_NETIF_EXTRA_TYPE_GSO => {
                let kind = match raw.gso_type() {
                    XEN_NETIF_GSO_TYPE_TCPV4 => GsoKind::TcpV4,
                    XEN_NETIF_GSO_TYPE_TCPV6 => GsoKind::TcpV6,
                    other => return Err(WireError::UnknownGsoType(other)),
                };
                let mss = raw.gso_size();
                if mss == 0 {
                    return Err(WireError::ZeroGsoSize);
                }
                ExtraKind::Gso(Gso { kind, mss })
            }
            XEN_NETIF_EXTRA_TYPE_MCAST_ADD => ExtraKind::McastAdd(raw.mcast_addr()),
            XEN_NETIF_EXTRA_TYPE_MCAST_DEL => ExtraKind::McastDel(raw.mcast_addr()),
            XEN_NETIF_EXTRA_TYPE_HASH => ExtraKind::Hash {
                hash_type: raw.hash_type(),
                algorithm: raw.hash_algorithm(),
                value: raw.hash_value(),
            },
            other => return Err(WireError::UnknownExtraType(other)),
        };
        Ok(Self {
            kind,
            more: Self::raw_more(raw),
        })
    }

    /// The ring image.
    pub fn emit(&self) -> NetifExtraInfo {
        let flags = if self.more {
            XEN_NETIF_EXTRA_FLAG_MORE
        } else {
            0
        };
        match self.kind {
            ExtraKind::Gso(g) => NetifExtraInfo::gso(g.mss, g.kind.raw(), flags),
            ExtraKind::McastAdd(a) => {
                NetifExtraInfo::mcast(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, a, flags)
            }
            ExtraKind::McastDel(a) => {
                NetifExtraInfo::mcast(XEN_NETIF_EXTRA_TYPE_MCAST_DEL, a, flags)
            }
            ExtraKind::Hash {
                hash_type,
                algorithm,
                value,
            } => NetifExtraInfo::hash(hash_type, algorithm, value, flags),
        }
    }
}

/// Outcome of a TX slot, as reported to the frontend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// Sent (or deliberately dropped by policy: the frontend need not know).
    Okay,
    /// The request was malformed or its data unreadable.
    Error,
    /// Dropped.
    Dropped,
    /// The slot held extra info (`NETIF_RSP_NULL`): no request id to answer.
    Null,
}

impl TxStatus {
    /// The `NETIF_RSP_*` value.
    pub const fn raw(self) -> i16 {
        match self {
            TxStatus::Okay => NETIF_RSP_OKAY,
            TxStatus::Error => NETIF_RSP_ERROR,
            TxStatus::Dropped => NETIF_RSP_DROPPED,
            TxStatus::Null => NETIF_RSP_NULL,
        }
    }
}

/// A TX response (`netif_tx_response`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxResponseRepr {
    /// The request's id (0 for [`TxStatus::Null`]).
    pub id: u16,
    /// The outcome.
    pub status: TxStatus,
}

impl TxResponseRepr {
    /// The ring image.
    pub fn emit(&self) -> NetifTxResponse {
        NetifTxResponse {
            id: self.id,
            status: self.status.raw(),
        }
    }
}

/// An RX buffer the frontend offers: one whole granted page (`netif_rx_request`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxRequestRepr {
    /// Echoed in the response.
    pub id: u16,
    /// Grant of the buffer page (must be writable by us).
    pub gref: GrantRef,
}

impl RxRequestRepr {
    /// Parses a slot copied out of the ring (the padding is ignored).
    pub fn parse(raw: &NetifRxRequest) -> Self {
        Self {
            id: raw.id,
            gref: raw.gref,
        }
    }

    /// The ring image.
    pub fn emit(&self) -> NetifRxRequest {
        NetifRxRequest {
            id: self.id,
            pad: 0,
            gref: self.gref,
        }
    }
}

/// Checksum state of a received packet, as RX flags tell it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxCsum {
    /// `NETRXF_csum_blank`: the L4 checksum holds only the pseudo-header sum.
    pub blank: bool,
    /// `NETRXF_data_validated`: the data is known good.
    pub validated: bool,
}

/// An RX response: where (part of) a received packet was put (`netif_rx_response`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxResponseRepr {
    /// The request's id.
    pub id: u16,
    /// Offset of the data in the buffer page.
    pub offset: u16,
    /// Checksum flags (first slot of a packet only).
    pub csum: RxCsum,
    /// `NETRXF_more_data`: the packet continues in the next data slot.
    pub more_data: bool,
    /// `NETRXF_extra_info`: extra-info slots follow (first slot only).
    pub extra_info: bool,
    /// Bytes in this slot (≥ 0) or a negative `NETIF_RSP_*` error.
    pub status: i16,
}

impl RxResponseRepr {
    /// The ring image.
    pub fn emit(&self) -> NetifRxResponse {
        let mut flags = 0;
        for (on, bit) in [
            (self.csum.validated, NETRXF_DATA_VALIDATED),
            (self.csum.blank, NETRXF_CSUM_BLANK),
            (self.more_data, NETRXF_MORE_DATA),
            (self.extra_info, NETRXF_EXTRA_INFO),
        ] {
            if on {
                flags |= bit;
            }
        }
        NetifRxResponse {
            id: self.id,
            offset: self.offset,
            flags,
            status: self.status,
        }
    }

    /// Parses a response (frontend side: our uplink, and test frontends). The status must
    /// be an error code or a length that fits the page at `offset`.
    pub fn parse(raw: &NetifRxResponse) -> Result<Self, WireError> {
        let fits = i32::from(raw.offset) + i32::from(raw.status) <= XEN_PAGE_SIZE as i32;
        if raw.status < NETIF_RSP_DROPPED || !fits {
            return Err(WireError::BadRxStatus(raw.status));
        }
        Ok(Self {
            id: raw.id,
            offset: raw.offset,
            csum: RxCsum {
                blank: raw.flags & NETRXF_CSUM_BLANK != 0,
                validated: raw.flags & NETRXF_DATA_VALIDATED != 0,
            },
            more_data: raw.flags & NETRXF_MORE_DATA != 0,
            extra_info: raw.flags & NETRXF_EXTRA_INFO != 0,
            status: raw.status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_abi::WireStruct;

    #[test]
    fn tx_request_deconstruct_and_construct() {
        // gref 16, offset 32, flags csum_blank|more_data, id 7, size 1514.
        let raw = [0x10, 0, 0, 0, 0x20, 0, 0x05, 0, 0x07, 0, 0xea, 0x05];
        let repr = TxRequestRepr::parse(&NetifTxRequest::read_from(&raw).unwrap());
        let want = TxRequestRepr {
            gref: 16,
            offset: 32,
            size: 1514,
            id: 7,
            csum_blank: true,
            data_validated: false,
            more_data: true,
            extra_info: false,
        };
        assert_eq!(repr, want);
        let mut out = [0xaa; 12];
        want.emit().write_to(&mut out).unwrap();
        assert_eq!(out, raw);
        assert!(repr.fits_page(4064) && !repr.fits_page(4065));
    }

    #[test]
    fn unknown_tx_flags_are_ignored() {
        let raw = NetifTxRequest {
            flags: 0xfff0,
            ..Default::default()
        };
        let repr = TxRequestRepr::parse(&raw);
        assert!(!repr.more_data && !repr.extra_info && !repr.csum_blank);
    }

    #[test]
    fn extra_info_gso() {
        let raw = [1, 1, 0xa8, 0x05, 1, 0, 0, 0];
        let extra = ExtraRepr::parse(&NetifExtraInfo::read_from(&raw).unwrap()).unwrap();
        let want = ExtraRepr {
            kind: ExtraKind::Gso(Gso {
                kind: GsoKind::TcpV4,
                mss: 1448,
            }),
            more: true,
        };
        assert_eq!(extra, want);
        let mut out = [0xff; 8];
        want.emit().write_to(&mut out).unwrap();
        assert_eq!(out, raw);
    }

    #[test]
    fn extra_info_errors() {
        let bad = |bytes: [u8; 8]| ExtraRepr::parse(&NetifExtraInfo::read_from(&bytes).unwrap());
        assert_eq!(bad([0; 8]), Err(WireError::UnknownExtraType(0)));
        assert_eq!(
            bad([5, 0, 0, 0, 0, 0, 0, 0]),
            Err(WireError::UnknownExtraType(5))
        );
        assert_eq!(bad([1, 0, 0, 0, 1, 0, 0, 0]), Err(WireError::ZeroGsoSize));
        assert_eq!(
            bad([1, 0, 64, 0, 3, 0, 0, 0]),
            Err(WireError::UnknownGsoType(3))
        );
        let raw = NetifExtraInfo::read_from(&[9, 1, 0, 0, 0, 0, 0, 0]).unwrap();
        assert!(
            ExtraRepr::raw_more(&raw),
            "framing known even when the type is not"
        );
        let m = bad([2, 0, 1, 0, 0x5e, 0, 0, 1]).unwrap();
        assert_eq!(m.kind, ExtraKind::McastAdd([1, 0, 0x5e, 0, 0, 1]));
        assert_eq!(ExtraRepr::parse(&m.emit()).unwrap(), m, "mcast round trip");
    }

    #[test]
    fn responses_are_emitted_whole() {
        let mut out = [0xffu8; 8];
        let rsp = RxResponseRepr {
            id: 3,
            offset: 0,
            csum: RxCsum {
                blank: true,
                validated: true,
            },
            more_data: true,
            extra_info: false,
            status: 4096,
        };
        rsp.emit().write_to(&mut out).unwrap();
        assert_eq!(out, [3, 0, 0, 0, 0b111, 0, 0x00, 0x10]);
        assert_eq!(RxResponseRepr::parse(&rsp.emit()), Ok(rsp));
        let mut out = [0xffu8; 4];
        TxResponseRepr {
            id: 0,
            status: TxStatus::Null,
        }
        .emit()
        .write_to(&mut out)
        .unwrap();
        assert_eq!(out, [0, 0, 1, 0]);
    }

    #[test]
    fn rx_response_bounds() {
        let raw = |offset, status| NetifRxResponse {
            id: 0,
            offset,
            flags: 0,
            status,
        };
        assert!(RxResponseRepr::parse(&raw(4000, 97)).is_err());
        assert!(RxResponseRepr::parse(&raw(4000, 96)).is_ok());
        assert!(RxResponseRepr::parse(&raw(0, -3)).is_err());
        assert!(RxResponseRepr::parse(&raw(0, NETIF_RSP_ERROR)).is_ok());
    }

    #[test]
    fn rx_request_ignores_padding() {
        let raw = NetifRxRequest {
            id: 9,
            pad: 0xdead,
            gref: 77,
        };
        let r = RxRequestRepr::parse(&raw);
        assert_eq!(r, RxRequestRepr { id: 9, gref: 77 });
        assert_eq!(r.emit().pad, 0);
    }
}
