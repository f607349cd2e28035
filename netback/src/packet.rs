//! Packets on the switch, what each port can take, and the offloads that bridge the two:
//! checksum completion and software segmentation (TSO done by us when a receiver cannot).
//!
//! A packet carries the offload state the sender gave it ([`Csum`], [`Gso`]). Before a packet
//! is queued for a port, [`Packet::adapt`] turns it into what the port accepts ([`Caps`]):
//! a receiver that cannot finish a blank checksum gets a complete one; a receiver without
//! GSO gets the super-segment cut into MSS-sized segments with complete checksums; a frame
//! larger than the receiver can take is dropped.

use alloc::vec::Vec;
use core::fmt;

use crate::frame::{self, FrameError, L4Info, ETH_HLEN, IPPROTO_TCP};
use crate::wire::{Gso, GsoKind, RxCsum};

/// Largest frame a netif chain can describe (`XEN_NETIF_MAX_TX_SIZE`).
pub const MAX_FRAME: usize = xen_abi::netif::XEN_NETIF_MAX_TX_SIZE;

/// Smallest MSS we segment for: smaller ones would turn one 64 KiB packet into thousands.
pub const MIN_MSS: u16 = 64;

/// The transport checksum's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Csum {
    /// Unknown: the receiver verifies it.
    Unverified,
    /// Known good (verified, or vouched for by a sender we trust to have done so).
    Validated,
    /// Blank: the field holds the pseudo-header sum and must be completed before the
    /// packet leaves a machine (`CHECKSUM_PARTIAL`).
    Partial,
}

impl Csum {
    /// The RX flags that tell a netfront this state.
    pub fn rx_flags(self) -> RxCsum {
        match self {
            Csum::Unverified => RxCsum::default(),
            Csum::Validated => RxCsum {
                blank: false,
                validated: true,
            },
            Csum::Partial => RxCsum {
                blank: true,
                validated: true,
            },
        }
    }
}

/// A frame in flight through the switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The Ethernet frame.
    pub data: Vec<u8>,
    /// Transport checksum state.
    pub csum: Csum,
    /// Large-send metadata, if the frame is a TCP super-segment.
    pub gso: Option<Gso>,
}

/// What a port accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Largest frame (without GSO) the port takes.
    pub max_frame: usize,
    /// GSO TCPv4 super-segments.
    pub gso_tcpv4: bool,
    /// GSO TCPv6 super-segments.
    pub gso_tcpv6: bool,
    /// Blank checksums in IPv4 packets.
    pub partial_ipv4: bool,
    /// Blank checksums in IPv6 packets.
    pub partial_ipv6: bool,
}

impl Caps {
    /// A plain 1500-byte-MTU port without offloads (the uplink, our own stack).
    pub const fn plain(mtu: usize) -> Self {
        Self {
            max_frame: mtu + ETH_HLEN,
            gso_tcpv4: false,
            gso_tcpv6: false,
            partial_ipv4: false,
            partial_ipv6: false,
        }
    }

    /// Whether the port takes GSO super-segments of this kind (with their blank checksum).
    pub fn takes_gso(&self, gso: &Gso) -> bool {
        match gso.kind {
            GsoKind::TcpV4 => self.gso_tcpv4 && self.partial_ipv4,
            GsoKind::TcpV6 => self.gso_tcpv6 && self.partial_ipv6,
        }
    }

    /// Whether a packet of `len` bytes with this offload state goes to the port unchanged
    /// (no segmentation, no checksum to finish); `ipv6` matters for a blank checksum only.
    pub fn takes_as_is(&self, len: usize, csum: Csum, gso: Option<Gso>, ipv6: bool) -> bool {
        match gso {
            Some(g) => self.takes_gso(&g),
            None => {
                let partial_ok = match (csum, ipv6) {
                    (Csum::Partial, false) => self.partial_ipv4,
                    (Csum::Partial, true) => self.partial_ipv6,
                    _ => true,
                };
                len <= self.max_frame && partial_ok
            }
        }
    }
}

/// Why a packet could not be delivered to a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdaptError {
    /// Larger than the port's largest frame and not segmentable.
    TooBig {
        /// The frame's length.
        len: usize,
        /// The port's limit.
        max: usize,
    },
    /// The headers needed for a checksum or segmentation are broken.
    Headers(FrameError),
    /// GSO metadata that does not fit the packet (wrong IP version, not TCP, tiny MSS).
    BadGso(&'static str),
}

impl fmt::Display for AdaptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdaptError::TooBig { len, max } => {
                write!(f, "frame of {len} bytes exceeds the port's {max}")
            }
            AdaptError::Headers(e) => write!(f, "{e}"),
            AdaptError::BadGso(why) => write!(f, "GSO packet {why}"),
        }
    }
}

impl From<FrameError> for AdaptError {
    fn from(e: FrameError) -> Self {
        AdaptError::Headers(e)
    }
}

impl Packet {
    /// A frame with no offload state.
    pub fn new(data: Vec<u8>) -> Self {
        Self {
            data,
            csum: Csum::Unverified,
            gso: None,
        }
    }

    /// Length of the frame.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the frame is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Checks the offload state a sender claimed against the headers, so that everything
    /// downstream can rely on it: a blank checksum needs a TCP/UDP header to finish it in; a
    /// GSO packet must be TCP of the stated IP version with an MSS of at least [`MIN_MSS`].
    /// A GSO packet that arrived without `csum_blank` gets its pseudo-header sum filled in
    /// (as Linux does for such senders).
    pub fn validate_offloads(&mut self) -> Result<(), AdaptError> {
        if self.csum != Csum::Partial && self.gso.is_none() {
            return Ok(());
        }
        let info = frame::locate_l4(&self.data)?;
        if let Some(gso) = self.gso {
            if info.proto != IPPROTO_TCP {
                return Err(AdaptError::BadGso("is not TCP"));
            }
            if info.ipv6 != (gso.kind == GsoKind::TcpV6) {
                return Err(AdaptError::BadGso("has the wrong IP version"));
            }
            if gso.mss < MIN_MSS {
                return Err(AdaptError::BadGso("has an MSS below 64"));
            }
            if self.csum != Csum::Partial {
                frame::fill_partial_checksum(&mut self.data, &info);
                self.csum = Csum::Partial;
            }
            // A super-segment that fits in one segment is just a packet.
            if info.end - info.headers_len() <= usize::from(gso.mss) {
                self.gso = None;
            }
        }
        Ok(())
    }

    /// Turns the packet into what a port with `caps` accepts and hands the result (one
    /// packet, or the segments) to `out`; stops early if `out` returns false (the port's
    /// queue is full). Returns the number of packets handed over.
    pub fn adapt(
        mut self,
        caps: &Caps,
        out: &mut dyn FnMut(Packet) -> bool,
    ) -> Result<usize, AdaptError> {
        if let Some(gso) = self.gso {
            if caps.takes_gso(&gso) {
                return Ok(usize::from(out(self)));
            }
            return segment(&self, gso, caps.max_frame, out);
        }
        if self.len() > caps.max_frame {
            return Err(AdaptError::TooBig {
                len: self.len(),
                max: caps.max_frame,
            });
        }
        if self.csum == Csum::Partial {
            let info = frame::locate_l4(&self.data)?;
            let keep = if info.ipv6 {
                caps.partial_ipv6
            } else {
                caps.partial_ipv4
            };
            if !keep {
                frame::fill_l4_checksum(&mut self.data, &info);
                self.csum = Csum::Validated;
            }
        }
        Ok(usize::from(out(self)))
    }
}

/// Cuts a TCP super-segment into MSS-sized segments with complete checksums.
fn segment(
    pkt: &Packet,
    gso: Gso,
    max_frame: usize,
    out: &mut dyn FnMut(Packet) -> bool,
) -> Result<usize, AdaptError> {
    let info: L4Info = frame::locate_l4(&pkt.data)?;
    if info.proto != IPPROTO_TCP {
        return Err(AdaptError::BadGso("is not TCP"));
    }
    let hdr = info.headers_len();
    let mss = usize::from(gso.mss.max(MIN_MSS));
    if hdr + mss > max_frame {
        return Err(AdaptError::TooBig {
            len: hdr + mss,
            max: max_frame,
        });
    }
    let payload = &pkt.data[hdr..info.end];
    let headers = &pkt.data[..hdr];
    let l3 = info.l3_off;
    let l4 = info.l4_off;
    let seq0 = u32::from_be_bytes([
        headers[l4 + 4],
        headers[l4 + 5],
        headers[l4 + 6],
        headers[l4 + 7],
    ]);
    let flags0 = headers[l4 + 13];
    let ihl = l4 - l3; // IPv4: the header; IPv6: header plus extension headers
    let id0 = u16::from_be_bytes([headers[l3 + 4], headers[l3 + 5]]);
    let count = payload.len().div_ceil(mss).max(1);
    let mut sent = 0;
    for (i, chunk) in payload.chunks(mss).enumerate() {
        let mut seg = Vec::with_capacity(hdr + chunk.len());
        seg.extend_from_slice(headers);
        seg.extend_from_slice(chunk);
        let offset = (i * mss) as u32;
        seg[l4 + 4..l4 + 8].copy_from_slice(&seq0.wrapping_add(offset).to_be_bytes());
        let mut flags = flags0;
        if i != 0 {
            flags &= !0x80; // CWR only on the first segment
        }
        if i + 1 != count {
            flags &= !(0x01 | 0x08); // FIN and PSH only on the last
        }
        seg[l4 + 13] = flags;
        if info.ipv6 {
            let plen = (seg.len() - l3 - 40) as u16;
            seg[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
        } else {
            let total = (seg.len() - l3) as u16;
            seg[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
            let id = id0.wrapping_add(i as u16);
            seg[l3 + 4..l3 + 6].copy_from_slice(&id.to_be_bytes());
            frame::fill_ipv4_checksum(&mut seg, l3, ihl);
        }
        let seg_info = L4Info {
            end: seg.len(),
            ..info
        };
        frame::fill_l4_checksum(&mut seg, &seg_info);
        let packet = Packet {
            data: seg,
            csum: Csum::Validated,
            gso: None,
        };
        if !out(packet) {
            break;
        }
        sent += 1;
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::tcp4;
    use crate::frame::{l4_checksum_ok, locate_l4};

    fn gso_packet(payload_len: usize, mss: u16) -> Packet {
        let payload: Vec<u8> = (0..payload_len).map(|i| (i * 7 % 251) as u8).collect();
        let mut data = tcp4([10, 0, 0, 1], [10, 0, 0, 2], &payload);
        data[47] |= 0x01 | 0x80; // FIN and CWR on the super-segment (PSH already set)
        let info = locate_l4(&data).unwrap();
        frame::fill_partial_checksum(&mut data, &info);
        Packet {
            data,
            csum: Csum::Partial,
            gso: Some(Gso {
                kind: GsoKind::TcpV4,
                mss,
            }),
        }
    }

    fn collect(p: Packet, caps: &Caps) -> (Result<usize, AdaptError>, Vec<Packet>) {
        let mut got = Vec::new();
        let r = p.adapt(caps, &mut |p| {
            got.push(p);
            true
        });
        (r, got)
    }

    const GUEST: Caps = Caps {
        max_frame: MAX_FRAME,
        gso_tcpv4: true,
        gso_tcpv6: true,
        partial_ipv4: true,
        partial_ipv6: true,
    };

    #[test]
    fn gso_passes_to_a_gso_receiver() {
        let p = gso_packet(10_000, 1448);
        let (r, got) = collect(p.clone(), &GUEST);
        assert_eq!(r, Ok(1));
        assert_eq!(got[0], p);
    }

    #[test]
    fn gso_is_segmented_for_a_plain_receiver() {
        let p = gso_packet(10_000, 1448);
        let (r, got) = collect(p.clone(), &Caps::plain(1500));
        assert_eq!(r, Ok(7));
        let mut payload = Vec::new();
        for (i, s) in got.iter().enumerate() {
            assert!(s.len() <= 1514);
            let info = locate_l4(&s.data).unwrap();
            assert!(l4_checksum_ok(&s.data, &info), "segment {i} checksum");
            let ip = &s.data[14..34];
            assert_eq!(!fold(frame::sum(ip, 0)), 0, "segment {i} IP checksum");
            let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
            assert_eq!(total + 14, s.len());
            let seq = u32::from_be_bytes(s.data[38..42].try_into().unwrap());
            assert_eq!(seq, 0x0102_0304 + (i as u32) * 1448);
            let flags = s.data[47];
            assert_eq!(flags & 0x80 != 0, i == 0, "CWR on the first only");
            assert_eq!(flags & 0x09 != 0, i == 6, "FIN/PSH on the last only");
            assert_eq!(s.csum, Csum::Validated);
            payload.extend_from_slice(&s.data[54..]);
        }
        assert_eq!(payload, p.data[54..]);
    }

    use crate::frame::fold;

    #[test]
    fn segmentation_stops_when_the_queue_is_full() {
        let p = gso_packet(10_000, 1000);
        let mut n = 0;
        let r = p.adapt(&Caps::plain(1500), &mut |_| {
            n += 1;
            n < 3
        });
        assert_eq!(r, Ok(2));
    }

    #[test]
    fn blank_checksum_is_completed_for_a_plain_receiver() {
        let mut p = gso_packet(500, 1448);
        p.gso = None;
        let (_, got) = collect(p.clone(), &GUEST);
        assert_eq!(got[0].csum, Csum::Partial, "passed on blank");
        let (_, got) = collect(p, &Caps::plain(1500));
        let info = locate_l4(&got[0].data).unwrap();
        assert!(l4_checksum_ok(&got[0].data, &info));
        assert_eq!(got[0].csum, Csum::Validated);
    }

    #[test]
    fn oversized_frames_are_refused() {
        let p = Packet::new(alloc::vec![0; 2000]);
        assert_eq!(
            collect(p, &Caps::plain(1500)).0,
            Err(AdaptError::TooBig {
                len: 2000,
                max: 1514
            })
        );
    }

    #[test]
    fn offload_claims_are_checked() {
        let mut p = gso_packet(5000, 1448);
        p.gso = Some(Gso {
            kind: GsoKind::TcpV6,
            mss: 1448,
        });
        assert!(p.validate_offloads().is_err());
        let mut p = gso_packet(5000, 10);
        assert!(p.validate_offloads().is_err());
        // GSO without csum_blank: the pseudo-header sum is filled in.
        let mut p = gso_packet(5000, 1448);
        p.csum = Csum::Unverified;
        let off = 14 + 20 + 16;
        p.data[off] = 0xde;
        p.validate_offloads().unwrap();
        assert_eq!(p.csum, Csum::Partial);
        assert_eq!(p, gso_packet(5000, 1448));
        // A blank checksum on a non-TCP/UDP packet cannot be finished.
        let mut p = Packet::new(alloc::vec![0; 60]);
        p.csum = Csum::Partial;
        assert!(p.validate_offloads().is_err());
        // A super-segment of one segment is a plain packet.
        let mut p = gso_packet(1000, 1448);
        p.validate_offloads().unwrap();
        assert_eq!(p.gso, None);
    }
}
