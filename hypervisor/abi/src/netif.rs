//! Network interface rings (`io/netif.h`): TX and RX request/response entries, extra info
//! segments, the control ring, and the Toeplitz hash netback uses for `feature-ctrl-ring`.

use crate::ring::{entry_size, ring_size};
use crate::wire::impl_wire;
use crate::{GrantRef, XEN_PAGE_SIZE};

/// Minimum number of slots a packet may use that a backend must accept
/// (`XEN_NETIF_NR_SLOTS_MIN`).
pub const XEN_NETIF_NR_SLOTS_MIN: usize = 18;
/// Largest packet a TX request chain may describe (`XEN_NETIF_MAX_TX_SIZE`).
pub const XEN_NETIF_MAX_TX_SIZE: usize = 0xffff;

/// TX flag: the checksum is blank, the backend must fill it (`NETTXF_csum_blank`).
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
/// TX flag: the packet's data is validated (`NETTXF_data_validated`).
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// TX flag: the packet continues in the next request (`NETTXF_more_data`).
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// TX flag: an extra info segment follows (`NETTXF_extra_info`).
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

/// RX flag: the packet's data is validated (`NETRXF_data_validated`).
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
/// RX flag: the checksum is blank (`NETRXF_csum_blank`).
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// RX flag: the packet continues in the next response (`NETRXF_more_data`).
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// RX flag: an extra info segment follows (`NETRXF_extra_info`).
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// RX flag: a GSO prefix precedes the packet (`NETRXF_gso_prefix`).
pub const NETRXF_GSO_PREFIX: u16 = 1 << 4;

/// Extra info type: invalid (`XEN_NETIF_EXTRA_TYPE_NONE`).
pub const XEN_NETIF_EXTRA_TYPE_NONE: u8 = 0;
/// Extra info type: GSO parameters (`XEN_NETIF_EXTRA_TYPE_GSO`).
pub const XEN_NETIF_EXTRA_TYPE_GSO: u8 = 1;
/// Extra info type: add a multicast address (`XEN_NETIF_EXTRA_TYPE_MCAST_ADD`).
pub const XEN_NETIF_EXTRA_TYPE_MCAST_ADD: u8 = 2;
/// Extra info type: remove a multicast address (`XEN_NETIF_EXTRA_TYPE_MCAST_DEL`).
pub const XEN_NETIF_EXTRA_TYPE_MCAST_DEL: u8 = 3;
/// Extra info type: packet hash (`XEN_NETIF_EXTRA_TYPE_HASH`).
pub const XEN_NETIF_EXTRA_TYPE_HASH: u8 = 4;
/// One past the last extra info type (`XEN_NETIF_EXTRA_TYPE_MAX`).
pub const XEN_NETIF_EXTRA_TYPE_MAX: u8 = 5;
/// Extra info flag: another extra info segment follows (`XEN_NETIF_EXTRA_FLAG_MORE`).
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1 << 0;

/// GSO type: none (`XEN_NETIF_GSO_TYPE_NONE`).
pub const XEN_NETIF_GSO_TYPE_NONE: u8 = 0;
/// GSO type: TCP over IPv4 (`XEN_NETIF_GSO_TYPE_TCPV4`).
pub const XEN_NETIF_GSO_TYPE_TCPV4: u8 = 1;
/// GSO type: TCP over IPv6 (`XEN_NETIF_GSO_TYPE_TCPV6`).
pub const XEN_NETIF_GSO_TYPE_TCPV6: u8 = 2;

/// Response status: dropped (`NETIF_RSP_DROPPED`).
pub const NETIF_RSP_DROPPED: i16 = -2;
/// Response status: error (`NETIF_RSP_ERROR`).
pub const NETIF_RSP_ERROR: i16 = -1;
/// Response status: okay (`NETIF_RSP_OKAY`).
pub const NETIF_RSP_OKAY: i16 = 0;
/// Response status: no response, a padding slot for extra info (`NETIF_RSP_NULL`).
pub const NETIF_RSP_NULL: i16 = 1;

/// Hash type bit: IPv4 addresses (`XEN_NETIF_CTRL_HASH_TYPE_IPV4`).
pub const XEN_NETIF_CTRL_HASH_TYPE_IPV4: u32 = 1 << 0;
/// Hash type bit: IPv4 addresses and TCP ports (`XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP`).
pub const XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP: u32 = 1 << 1;
/// Hash type bit: IPv6 addresses (`XEN_NETIF_CTRL_HASH_TYPE_IPV6`).
pub const XEN_NETIF_CTRL_HASH_TYPE_IPV6: u32 = 1 << 2;
/// Hash type bit: IPv6 addresses and TCP ports (`XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP`).
pub const XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP: u32 = 1 << 3;
/// Hash algorithm: none (`XEN_NETIF_CTRL_HASH_ALGORITHM_NONE`).
pub const XEN_NETIF_CTRL_HASH_ALGORITHM_NONE: u32 = 0;
/// Hash algorithm: Toeplitz (`XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ`).
pub const XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ: u32 = 1;

/// Control request type: invalid (`XEN_NETIF_CTRL_TYPE_INVALID`).
pub const XEN_NETIF_CTRL_TYPE_INVALID: u16 = 0;
/// Control request type: read supported hash types (`XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS`).
pub const XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS: u16 = 1;
/// Control request type: set hash types (`XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS`).
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS: u16 = 2;
/// Control request type: set the hash key from a grant (`XEN_NETIF_CTRL_TYPE_SET_HASH_KEY`).
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_KEY: u16 = 3;
/// Control request type: maximum mapping table size
/// (`XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE`).
pub const XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE: u16 = 4;
/// Control request type: set mapping table size (`XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE`).
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE: u16 = 5;
/// Control request type: set mapping table entries from a grant
/// (`XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING`).
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING: u16 = 6;
/// Control request type: select the hash algorithm (`XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM`).
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM: u16 = 7;
/// Control request type: gref mapping table size (`XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE`).
pub const XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE: u16 = 8;
/// Control request type: add gref mappings (`XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING`).
pub const XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING: u16 = 9;
/// Control request type: remove gref mappings (`XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING`).
pub const XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING: u16 = 10;
/// Control status: success (`XEN_NETIF_CTRL_STATUS_SUCCESS`).
pub const XEN_NETIF_CTRL_STATUS_SUCCESS: u32 = 0;
/// Control status: not supported (`XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED`).
pub const XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED: u32 = 1;
/// Control status: invalid parameter (`XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER`).
pub const XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER: u32 = 2;
/// Control status: buffer overflow (`XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW`).
pub const XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW: u32 = 3;
/// [`NetifGref::flags`]: map read-only (`XEN_NETIF_CTRLF_GREF_readonly`).
pub const XEN_NETIF_CTRLF_GREF_READONLY: u16 = 1 << 0;

/// A TX request: one slot of a packet the frontend sends (`struct netif_tx_request`, 12 B).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifTxRequest {
    /// Grant of the page holding the data.
    pub gref: GrantRef,
    /// Offset of the data in that page.
    pub offset: u16,
    /// `NETTXF_*` flags.
    pub flags: u16,
    /// Echoed in the response.
    pub id: u16,
    /// First slot: total packet size; others: this slot's size.
    pub size: u16,
}
impl_wire!(NetifTxRequest {
    gref,
    offset,
    flags,
    id,
    size
});

/// A TX response (`struct netif_tx_response`, 4 B).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifTxResponse {
    /// The request's id.
    pub id: u16,
    /// A `NETIF_RSP_*` status.
    pub status: i16,
}
impl_wire!(NetifTxResponse { id, status });

/// An RX request: a buffer the frontend offers (`struct netif_rx_request`, 8 B).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifRxRequest {
    /// Echoed in the response.
    pub id: u16,
    /// Padding.
    pub pad: u16,
    /// Grant of the buffer page.
    pub gref: GrantRef,
}
impl_wire!(NetifRxRequest { id, pad, gref });

/// An RX response: where a received packet (slot) was put (`struct netif_rx_response`, 8 B).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifRxResponse {
    /// The request's id.
    pub id: u16,
    /// Offset of the data in the page.
    pub offset: u16,
    /// `NETRXF_*` flags.
    pub flags: u16,
    /// Bytes received (if ≥ 0) or a `NETIF_RSP_*` error.
    pub status: i16,
}
impl_wire!(NetifRxResponse {
    id,
    offset,
    flags,
    status
});

/// An extra info segment, in a TX request or RX response slot (`struct netif_extra_info`,
/// 8 B). The C union `u` is kept as bytes; use the accessors for the variant named by `type_`.
#[repr(C, align(2))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraInfo {
    /// A `XEN_NETIF_EXTRA_TYPE_*` value.
    pub type_: u8,
    /// `XEN_NETIF_EXTRA_FLAG_*` flags.
    pub flags: u8,
    /// The union `u` (`gso`, `mcast`, `hash` or `pad`).
    pub u: [u8; 6],
}
impl_wire!(NetifExtraInfo { type_, flags, u });

impl NetifExtraInfo {
    /// A GSO segment: MSS `size`, `XEN_NETIF_GSO_TYPE_*` `gso_type`.
    pub const fn gso(size: u16, gso_type: u8, flags: u8) -> Self {
        let s = size.to_le_bytes();
        Self {
            type_: XEN_NETIF_EXTRA_TYPE_GSO,
            flags,
            u: [s[0], s[1], gso_type, 0, 0, 0],
        }
    }

    /// A multicast add/delete segment for `addr`.
    pub const fn mcast(type_: u8, addr: [u8; 6], flags: u8) -> Self {
        Self {
            type_,
            flags,
            u: addr,
        }
    }

    /// A hash segment: `XEN_NETIF_CTRL_HASH_TYPE_*` bit number, algorithm and value.
    pub const fn hash(hash_type: u8, algorithm: u8, value: u32, flags: u8) -> Self {
        let v = value.to_le_bytes();
        Self {
            type_: XEN_NETIF_EXTRA_TYPE_HASH,
            flags,
            u: [hash_type, algorithm, v[0], v[1], v[2], v[3]],
        }
    }

    /// GSO: the maximum segment size (`u.gso.size`).
    pub const fn gso_size(&self) -> u16 {
        u16::from_le_bytes([self.u[0], self.u[1]])
    }

    /// GSO: the `XEN_NETIF_GSO_TYPE_*` (`u.gso.type`).
    pub const fn gso_type(&self) -> u8 {
        self.u[2]
    }

    /// GSO: feature flags, none defined (`u.gso.features`).
    pub const fn gso_features(&self) -> u16 {
        u16::from_le_bytes([self.u[4], self.u[5]])
    }

    /// Multicast: the address (`u.mcast.addr`).
    pub const fn mcast_addr(&self) -> [u8; 6] {
        self.u
    }

    /// Hash: the hash type bit number (`u.hash.type`).
    pub const fn hash_type(&self) -> u8 {
        self.u[0]
    }

    /// Hash: the algorithm (`u.hash.algorithm`).
    pub const fn hash_algorithm(&self) -> u8 {
        self.u[1]
    }

    /// Hash: the value (`u.hash.value`, little-endian).
    pub const fn hash_value(&self) -> u32 {
        u32::from_le_bytes([self.u[2], self.u[3], self.u[4], self.u[5]])
    }
}

/// A control ring request (`struct xen_netif_ctrl_request`, 16 B).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifCtrlRequest {
    /// Echoed in the response.
    pub id: u16,
    /// A `XEN_NETIF_CTRL_TYPE_*` value.
    pub type_: u16,
    /// Type-specific arguments.
    pub data: [u32; 3],
}
impl_wire!(NetifCtrlRequest { id, type_, data });

/// A control ring response (`struct xen_netif_ctrl_response`, 12 B).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifCtrlResponse {
    /// The request's id.
    pub id: u16,
    /// The request's type.
    pub type_: u16,
    /// A `XEN_NETIF_CTRL_STATUS_*` value.
    pub status: u32,
    /// Type-specific result.
    pub data: u32,
}
impl_wire!(NetifCtrlResponse {
    id,
    type_,
    status,
    data
});

/// An entry of the gref mapping table of `ADD/DEL_GREF_MAPPING` (`struct xen_netif_gref`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifGref {
    /// The grant.
    pub gref: GrantRef,
    /// `XEN_NETIF_CTRLF_GREF_*` flags.
    pub flags: u16,
    /// A `XEN_NETIF_CTRL_STATUS_*` value, set by the backend.
    pub status: u16,
}
impl_wire!(NetifGref {
    gref,
    flags,
    status
});

/// Ring slot size of the TX ring.
pub const NET_TX_ENTRY_SIZE: usize = entry_size::<NetifTxRequest, NetifTxResponse>();
/// Ring slot size of the RX ring.
pub const NET_RX_ENTRY_SIZE: usize = entry_size::<NetifRxRequest, NetifRxResponse>();
/// Ring slot size of the control ring.
pub const NET_CTRL_ENTRY_SIZE: usize = entry_size::<NetifCtrlRequest, NetifCtrlResponse>();
/// Entries of a one-page TX ring (256).
pub const NET_TX_RING_SIZE: u32 = ring_size(XEN_PAGE_SIZE, NET_TX_ENTRY_SIZE);
/// Entries of a one-page RX ring (256).
pub const NET_RX_RING_SIZE: u32 = ring_size(XEN_PAGE_SIZE, NET_RX_ENTRY_SIZE);
/// Entries of the one-page control ring (128).
pub const NET_CTRL_RING_SIZE: u32 = ring_size(XEN_PAGE_SIZE, NET_CTRL_ENTRY_SIZE);

/// The Toeplitz hash of `buf` under `key`, exactly as `xen_netif_toeplitz_hash` in netif.h
/// (missing key bytes count as zero).
pub fn toeplitz_hash(key: &[u8], buf: &[u8]) -> u32 {
    let key_byte = |i: usize| u64::from(key.get(i).copied().unwrap_or(0));
    let mut prefix: u64 = 0;
    for i in 0..8 {
        prefix = (prefix << 8) | key_byte(i);
    }
    let mut hash: u64 = 0;
    for (i, &byte) in buf.iter().enumerate() {
        let mut byte = byte;
        for _ in 0..8 {
            if byte & 0x80 != 0 {
                hash ^= prefix;
            }
            prefix <<= 1;
            byte <<= 1;
        }
        prefix |= key_byte(8 + i);
    }
    (hash >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WireStruct;

    #[test]
    fn ring_sizes() {
        assert_eq!((NET_TX_ENTRY_SIZE, NET_TX_RING_SIZE), (12, 256));
        assert_eq!((NET_RX_ENTRY_SIZE, NET_RX_RING_SIZE), (8, 256));
        assert_eq!((NET_CTRL_ENTRY_SIZE, NET_CTRL_RING_SIZE), (16, 128));
    }

    #[test]
    fn tx_request_bytes() {
        let raw = [0x10, 0, 0, 0, 0x20, 0, 0x05, 0, 0x07, 0, 0xea, 0x05];
        let req = NetifTxRequest::read_from(&raw).unwrap();
        assert_eq!(
            req,
            NetifTxRequest {
                gref: 16,
                offset: 32,
                flags: NETTXF_CSUM_BLANK | NETTXF_MORE_DATA,
                id: 7,
                size: 1514
            }
        );
        let mut out = [0xffu8; 12];
        req.write_to(&mut out).unwrap();
        assert_eq!(out, raw);
    }

    #[test]
    fn extra_info_variants() {
        let gso = NetifExtraInfo::gso(1448, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_EXTRA_FLAG_MORE);
        let mut raw = [0u8; 8];
        gso.write_to(&mut raw).unwrap();
        assert_eq!(raw, [1, 1, 0xa8, 0x05, 1, 0, 0, 0]);
        assert_eq!(
            (gso.gso_size(), gso.gso_type(), gso.gso_features()),
            (1448, 1, 0)
        );
        let m = NetifExtraInfo::mcast(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, [1, 0, 0x5e, 0, 0, 1], 0);
        assert_eq!(m.mcast_addr(), [1, 0, 0x5e, 0, 0, 1]);
        let h = NetifExtraInfo::hash(0, 1, 0xdead_beef, 0);
        assert_eq!(
            (h.hash_type(), h.hash_algorithm(), h.hash_value()),
            (0, 1, 0xdead_beef)
        );
    }

    #[test]
    fn toeplitz_matches_rss_test_vector() {
        // Microsoft RSS verification suite key and first IPv4 vector.
        let key = [
            0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
            0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
            0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
        ];
        // src 66.9.149.187, dst 161.142.100.80
        let addrs = [66, 9, 149, 187, 161, 142, 100, 80];
        assert_eq!(toeplitz_hash(&key, &addrs), 0x323e_8fc2);
        // + src port 2794, dst port 1766
        let tcp = [66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6];
        assert_eq!(toeplitz_hash(&key, &tcp), 0x51cc_c178);
        assert_eq!(toeplitz_hash(&[], &tcp), 0);
    }
}
