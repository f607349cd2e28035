//! Ethernet, ARP, IPv4, IPv6, TCP and UDP headers as far as a switch with checksum and
//! segmentation offload needs them, and the Internet checksum.
//!
//! Every function here reads bytes a guest wrote: each access is bounds-checked, lengths in
//! headers are checked against the frame, and failures are values ([`FrameError`]), never
//! panics.

use core::fmt;

/// An Ethernet (MAC) address.
pub type Mac = [u8; 6];

/// Length of an Ethernet header (no VLAN tag).
pub const ETH_HLEN: usize = 14;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;

/// The broadcast address.
pub const BROADCAST: Mac = [0xff; 6];

/// Why a frame's headers could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame ends inside a header.
    Truncated,
    /// Neither IPv4 nor IPv6.
    NotIp(u16),
    /// A header field is inconsistent (version, header length, total length).
    BadHeader(&'static str),
    /// A fragment: its transport header is not (entirely) in this frame.
    Fragment,
    /// Neither TCP nor UDP.
    NotTcpUdp(u8),
    /// IPv6 extension headers nest deeper than we follow.
    TooManyExtensions,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameError::Truncated => f.write_str("frame ends inside a header"),
            FrameError::NotIp(t) => write!(f, "ethertype {t:#06x} is not IP"),
            FrameError::BadHeader(what) => write!(f, "bad {what}"),
            FrameError::Fragment => f.write_str("IP fragment"),
            FrameError::NotTcpUdp(p) => write!(f, "IP protocol {p} is neither TCP nor UDP"),
            FrameError::TooManyExtensions => f.write_str("too many IPv6 extension headers"),
        }
    }
}

fn be16(b: &[u8], at: usize) -> Result<u16, FrameError> {
    match b.get(at..at + 2) {
        Some(s) => Ok(u16::from_be_bytes([s[0], s[1]])),
        None => Err(FrameError::Truncated),
    }
}

fn byte(b: &[u8], at: usize) -> Result<u8, FrameError> {
    b.get(at).copied().ok_or(FrameError::Truncated)
}

fn array<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], FrameError> {
    let s = b.get(at..at + N).ok_or(FrameError::Truncated)?;
    let mut out = [0u8; N];
    out.copy_from_slice(s);
    Ok(out)
}

/// Destination MAC of a frame (`None` if shorter than an Ethernet header).
pub fn dst_mac(frame: &[u8]) -> Option<Mac> {
    if frame.len() < ETH_HLEN {
        return None;
    }
    array(frame, 0).ok()
}

/// Source MAC of a frame.
pub fn src_mac(frame: &[u8]) -> Option<Mac> {
    if frame.len() < ETH_HLEN {
        return None;
    }
    array(frame, 6).ok()
}

/// EtherType of a frame.
pub fn ethertype(frame: &[u8]) -> Option<u16> {
    be16(frame, 12).ok()
}

/// Whether `mac` is a group (multicast or broadcast) address.
pub const fn is_group(mac: &Mac) -> bool {
    mac[0] & 1 != 0
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub struct MacFmt<'a>(pub &'a Mac);

impl fmt::Display for MacFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// Parses `aa:bb:cc:dd:ee:ff` (hex digits, `:` or `-` separated).
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Who a frame claims to come from at layer 3, for anti-spoofing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3Source {
    /// An IPv4 packet from this address.
    Ipv4([u8; 4]),
    /// An IPv6 packet from this address.
    Ipv6([u8; 16]),
    /// An ARP packet (IPv4 over Ethernet) announcing this sender.
    Arp {
        /// Sender hardware address.
        mac: Mac,
        /// Sender protocol address.
        ip: [u8; 4],
    },
    /// Another protocol (the EtherType).
    Other(u16),
}

/// Reads the layer-3 source of a frame.
pub fn l3_source(frame: &[u8]) -> Result<L3Source, FrameError> {
    let ty = be16(frame, 12)?;
    let l3 = frame.get(ETH_HLEN..).unwrap_or_default();
    match ty {
        ETHERTYPE_IPV4 => {
            if byte(l3, 0)? >> 4 != 4 {
                return Err(FrameError::BadHeader("IPv4 version"));
            }
            Ok(L3Source::Ipv4(array(l3, 12)?))
        }
        ETHERTYPE_IPV6 => {
            if byte(l3, 0)? >> 4 != 6 {
                return Err(FrameError::BadHeader("IPv6 version"));
            }
            Ok(L3Source::Ipv6(array(l3, 8)?))
        }
        ETHERTYPE_ARP => {
            // Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4.
            if be16(l3, 0)? != 1 || be16(l3, 2)? != ETHERTYPE_IPV4 || be16(l3, 4)? != 0x0604 {
                return Err(FrameError::BadHeader("ARP header"));
            }
            Ok(L3Source::Arp {
                mac: array(l3, 8)?,
                ip: array(l3, 14)?,
            })
        }
        other => Ok(L3Source::Other(other)),
    }
}

/// Where the transport header of a TCP or UDP packet sits (offsets from the frame start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L4Info {
    /// IPv6 (else IPv4).
    pub ipv6: bool,
    /// Start of the IP header.
    pub l3_off: usize,
    /// Start of the TCP/UDP header.
    pub l4_off: usize,
    /// End of the IP packet (Ethernet padding after it is not part of it).
    pub end: usize,
    /// `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub proto: u8,
    /// TCP/UDP header length (TCP: from the data offset; UDP: 8).
    pub l4_hlen: usize,
}

impl L4Info {
    /// Absolute offset of the transport checksum field.
    pub fn csum_off(&self) -> usize {
        self.l4_off + if self.proto == IPPROTO_TCP { 16 } else { 6 }
    }

    /// Bytes from the transport header to the end of the IP packet.
    pub fn l4_len(&self) -> usize {
        self.end - self.l4_off
    }

    /// Header bytes up to the end of the transport header.
    pub fn headers_len(&self) -> usize {
        self.l4_off + self.l4_hlen
    }
}

/// Most IPv6 extension headers followed before giving up.
const MAX_IPV6_EXTENSIONS: usize = 8;

/// Locates the TCP or UDP header of an unfragmented IPv4/IPv6 packet, checking every length
/// against the frame.
pub fn locate_l4(frame: &[u8]) -> Result<L4Info, FrameError> {
    locate_l4_in(frame, frame.len())
}

/// [`locate_l4`] on the first bytes of a frame of `frame_len` bytes: header fields must lie
/// in `frame` (else [`FrameError::Truncated`]), packet lengths are checked against
/// `frame_len`.
pub fn locate_l4_in(frame: &[u8], frame_len: usize) -> Result<L4Info, FrameError> {
    let ty = be16(frame, 12)?;
    let l3_off = ETH_HLEN;
    let (ipv6, l4_off, end, proto) = match ty {
        ETHERTYPE_IPV4 => {
            let vihl = byte(frame, l3_off)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 {
                return Err(FrameError::BadHeader("IPv4 version or header length"));
            }
            let total = usize::from(be16(frame, l3_off + 2)?);
            let end = l3_off + total;
            if total < ihl || end > frame_len {
                return Err(FrameError::BadHeader("IPv4 total length"));
            }
            let frag = be16(frame, l3_off + 6)?;
            if frag & 0x3fff != 0 {
                return Err(FrameError::Fragment);
            }
            (false, l3_off + ihl, end, byte(frame, l3_off + 9)?)
        }
        ETHERTYPE_IPV6 => {
            if byte(frame, l3_off)? >> 4 != 6 {
                return Err(FrameError::BadHeader("IPv6 version"));
            }
            let payload = usize::from(be16(frame, l3_off + 4)?);
            let end = l3_off + 40 + payload;
            if end > frame_len {
                return Err(FrameError::BadHeader("IPv6 payload length"));
            }
            let mut next = byte(frame, l3_off + 6)?;
            let mut off = l3_off + 40;
            let mut hops = 0;
            loop {
                match next {
                    // Hop-by-hop, routing, destination options: (len + 1) * 8 bytes.
                    0 | 43 | 60 => {
                        hops += 1;
                        if hops > MAX_IPV6_EXTENSIONS {
                            return Err(FrameError::TooManyExtensions);
                        }
                        let len = (usize::from(byte(frame, off + 1)?) + 1) * 8;
                        next = byte(frame, off)?;
                        off += len;
                        if off > end {
                            return Err(FrameError::BadHeader("IPv6 extension header"));
                        }
                    }
                    44 => return Err(FrameError::Fragment),
                    _ => break,
                }
            }
            (true, off, end, next)
        }
        other => return Err(FrameError::NotIp(other)),
    };
    let l4_hlen = match proto {
        IPPROTO_TCP => {
            let doff = usize::from(byte(frame, l4_off + 12)? >> 4) * 4;
            if doff < 20 {
                return Err(FrameError::BadHeader("TCP data offset"));
            }
            doff
        }
        IPPROTO_UDP => 8,
        other => return Err(FrameError::NotTcpUdp(other)),
    };
    if l4_off + l4_hlen > end {
        return Err(FrameError::BadHeader("transport header length"));
    }
    Ok(L4Info {
        ipv6,
        l3_off,
        l4_off,
        end,
        proto,
        l4_hlen,
    })
}

// ---------------------------------------------------------------------------------------------
// The Internet checksum (RFC 1071)
// ---------------------------------------------------------------------------------------------

/// Adds `data` to a running ones'-complement sum as big-endian 16-bit words (an odd final
/// byte is padded with zero). Sums of consecutive pieces chain as long as every piece but the
/// last has an even length.
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        acc += u64::from(rest[i]) << 8;
    }
    acc
}

/// Folds a running sum to 16 bits (not complemented).
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The pseudo-header sum of a transport segment of `l4_len` bytes described by `info`.
pub fn pseudo_header_sum(frame: &[u8], info: &L4Info, l4_len: usize) -> u64 {
    let mut acc = 0;
    if info.ipv6 {
        // Source and destination addresses: bytes 8..40 of the IPv6 header.
        acc = sum(&frame[info.l3_off + 8..info.l3_off + 40], acc);
        acc += (l4_len as u64 >> 16) + (l4_len as u64 & 0xffff);
    } else {
        acc = sum(&frame[info.l3_off + 12..info.l3_off + 20], acc);
        acc += l4_len as u64;
    }
    acc + u64::from(info.proto)
}

/// Writes a complete transport checksum into the packet described by `info` (computed from
/// scratch: whatever the field held is ignored).
pub fn fill_l4_checksum(frame: &mut [u8], info: &L4Info) {
    let off = info.csum_off();
    frame[off] = 0;
    frame[off + 1] = 0;
    let acc = pseudo_header_sum(frame, info, info.l4_len());
    let mut csum = !fold(sum(&frame[info.l4_off..info.end], acc));
    if csum == 0 && info.proto == IPPROTO_UDP {
        csum = 0xffff; // 0 means "no checksum" in UDP
    }
    frame[off..off + 2].copy_from_slice(&csum.to_be_bytes());
}

/// Writes the folded pseudo-header sum into the checksum field: the state a packet with
/// `csum_blank` / `CHECKSUM_PARTIAL` must be in for the receiver to finish it.
pub fn fill_partial_checksum(frame: &mut [u8], info: &L4Info) {
    let off = info.csum_off();
    let partial = fold(pseudo_header_sum(frame, info, info.l4_len()));
    frame[off..off + 2].copy_from_slice(&partial.to_be_bytes());
}

/// Whether the transport checksum of the packet verifies.
pub fn l4_checksum_ok(frame: &[u8], info: &L4Info) -> bool {
    let acc = pseudo_header_sum(frame, info, info.l4_len());
    fold(sum(&frame[info.l4_off..info.end], acc)) == 0xffff
}

/// Recomputes the IPv4 header checksum of the header at `l3_off` (`ihl` bytes).
pub fn fill_ipv4_checksum(frame: &mut [u8], l3_off: usize, ihl: usize) {
    frame[l3_off + 10] = 0;
    frame[l3_off + 11] = 0;
    let csum = !fold(sum(&frame[l3_off..l3_off + ihl], 0));
    frame[l3_off + 10..l3_off + 12].copy_from_slice(&csum.to_be_bytes());
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// An Ethernet + IPv4 + TCP frame with `payload`, checksums complete.
    pub(crate) fn tcp4(src_ip: [u8; 4], dst_ip: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let total = (20 + 20 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0]);
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&src_ip);
        f.extend_from_slice(&dst_ip);
        // ports 1000 -> 2000, seq 0x01020304, ack 0, doff 5, flags PSH|ACK, window 512.
        f.extend_from_slice(&[0x03, 0xe8, 0x07, 0xd0, 1, 2, 3, 4, 0, 0, 0, 0, 0x50, 0x18]);
        f.extend_from_slice(&[0x02, 0x00, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        fill_ipv4_checksum(&mut f, 14, 20);
        let info = locate_l4(&f).unwrap();
        fill_l4_checksum(&mut f, &info);
        f
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3: words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        // Pieces chain when all but the last are even.
        assert_eq!(fold(sum(&data[6..], sum(&data[..6], 0))), 0xddf2);
        assert_eq!(fold(sum(&[0xff], 0)), 0xff00);
    }

    #[test]
    fn known_ipv4_header_checksum() {
        // A classic example header (Wikipedia "IPv4 header checksum"): checksum b861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let mut frame = Vec::from([0u8; 14]);
        frame.extend_from_slice(&h);
        fill_ipv4_checksum(&mut frame, 14, 20);
        h[10] = 0xb8;
        h[11] = 0x61;
        assert_eq!(&frame[14..], &h);
    }

    #[test]
    fn tcp_checksum_round_trip() {
        let mut f = tcp4([10, 0, 0, 1], [10, 0, 0, 2], b"hello, world!");
        let info = locate_l4(&f).unwrap();
        assert_eq!((info.l4_off, info.l4_hlen, info.end), (34, 20, f.len()));
        assert!(l4_checksum_ok(&f, &info));
        fill_partial_checksum(&mut f, &info);
        assert!(!l4_checksum_ok(&f, &info));
        fill_l4_checksum(&mut f, &info);
        assert!(l4_checksum_ok(&f, &info));
        f[60] ^= 1;
        assert!(!l4_checksum_ok(&f, &info));
    }

    #[test]
    fn hostile_lengths_are_refused() {
        let f = tcp4([10, 0, 0, 1], [10, 0, 0, 2], b"x");
        for cut in 0..f.len() - 1 {
            // Truncating the frame below the IP total length must not panic or succeed.
            assert!(locate_l4(&f[..cut]).is_err(), "cut at {cut}");
        }
        let mut g = f.clone();
        g[14] = 0x44; // ihl 4
        assert!(locate_l4(&g).is_err());
        let mut g = f.clone();
        g[16..18].copy_from_slice(&0xffffu16.to_be_bytes());
        assert!(locate_l4(&g).is_err());
        let mut g = f.clone();
        g[20] = 0x20; // more fragments
        assert_eq!(locate_l4(&g), Err(FrameError::Fragment));
        let mut g = f.clone();
        g[46] = 0xf0; // TCP data offset 60 > packet
        assert!(locate_l4(&g).is_err());
        let mut g = f;
        g[23] = 1; // ICMP
        assert_eq!(locate_l4(&g), Err(FrameError::NotTcpUdp(1)));
    }

    #[test]
    fn ipv6_extension_headers() {
        let mut f = Vec::new();
        f.extend_from_slice(&[0u8; 12]);
        f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let mut ip = [0u8; 40];
        ip[0] = 0x60;
        ip[6] = 0; // hop-by-hop first
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[IPPROTO_UDP, 0, 0, 0, 0, 0, 0, 0]); // 8-byte hop-by-hop
        f.extend_from_slice(&[0, 1, 0, 2, 0, 12, 0, 0, 1, 2, 3, 4]); // UDP + 4 bytes
        let payload = (f.len() - 54) as u16;
        f[18..20].copy_from_slice(&payload.to_be_bytes());
        let info = locate_l4(&f).unwrap();
        assert!(info.ipv6);
        assert_eq!(
            (info.l4_off, info.proto, info.end),
            (62, IPPROTO_UDP, f.len())
        );
        fill_l4_checksum(&mut f, &info);
        assert!(l4_checksum_ok(&f, &info));
        // A loop of hop-by-hop headers pointing at themselves runs out.
        let mut g = f.clone();
        g[54] = 0;
        assert!(locate_l4(&g).is_err());
    }

    #[test]
    fn sources() {
        let f = tcp4([10, 0, 0, 9], [10, 0, 0, 2], b"");
        assert_eq!(l3_source(&f), Ok(L3Source::Ipv4([10, 0, 0, 9])));
        let mut arp = Vec::from([0xffu8; 6]);
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 5]);
        arp.extend_from_slice(&[0; 6]);
        arp.extend_from_slice(&[10, 0, 0, 1]);
        assert_eq!(
            l3_source(&arp),
            Ok(L3Source::Arp {
                mac: [2, 0, 0, 0, 0, 1],
                ip: [10, 0, 0, 5]
            })
        );
        assert_eq!(l3_source(&arp[..20]), Err(FrameError::Truncated));
        assert_eq!(
            l3_source(&[0u8; 14]),
            Ok(L3Source::Other(0)),
            "short but complete Ethernet header"
        );
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("00:16:3e:0A:ff:01"),
            Some([0, 0x16, 0x3e, 10, 255, 1])
        );
        assert_eq!(
            parse_mac("00-16-3e-0a-ff-01"),
            Some([0, 0x16, 0x3e, 10, 255, 1])
        );
        for bad in [
            "",
            "00:16:3e:0a:ff",
            "00:16:3e:0a:ff:01:02",
            "0:1:2:3:4:xyz",
            "::::::",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        assert_eq!(
            alloc::format!("{}", MacFmt(&[0, 0x16, 0x3e, 10, 255, 1])),
            "00:16:3e:0a:ff:01"
        );
        assert!(is_group(&BROADCAST) && !is_group(&[2, 0, 0, 0, 0, 1]));
    }
}
