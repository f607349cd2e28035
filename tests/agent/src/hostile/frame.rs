//! Ethernet frames the hostile netfront sends and recognises: ARP requests/replies and ICMP
//! echo, which the healthy guest's kernel answers by itself.

/// A MAC address.
pub type Mac = [u8; 6];

/// Internet checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A broadcast ARP request from `mac`/`ip` for `target` (padded to 60 bytes).
pub fn arp_request(mac: Mac, ip: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f.resize(60, 0);
    f
}

/// The sender MAC of an ARP reply from `ip`, if `f` is one.
pub fn arp_reply_from(f: &[u8], ip: [u8; 4]) -> Option<Mac> {
    (f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2] && f[28..32] == ip)
        .then(|| f[22..28].try_into().unwrap())
}

/// An ICMP echo request (IPv4, DF) with `payload`.
pub fn echo_request(src: (Mac, [u8; 4]), dst: (Mac, [u8; 4]), seq: u16, payload: &[u8]) -> Vec<u8> {
    let ip_len = 20 + 8 + payload.len();
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 1, 0, 0];
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&seq.to_be_bytes());
    ip.extend_from_slice(&src.1);
    ip.extend_from_slice(&dst.1);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut icmp = vec![8, 0, 0, 0, 0x58, 0x44];
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(payload);
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&icmp);
    f
}

/// The sequence number of an ICMP echo reply from `ip` to us, if `f` is one whose IP length
/// fits the frame, with its payload.
pub fn echo_reply_from(f: &[u8], ip: [u8; 4]) -> Option<(u16, &[u8])> {
    if f.len() < 42 || f[12..14] != [0x08, 0x00] || f[23] != 1 || f[26..30] != ip {
        return None;
    }
    let ip_len = usize::from(u16::from_be_bytes([f[16], f[17]]));
    if f[34] != 0 || f[38..40] != [0x58, 0x44] || ip_len < 28 || 14 + ip_len > f.len() {
        return None;
    }
    Some((u16::from_be_bytes([f[40], f[41]]), &f[42..14 + ip_len]))
}

/// A payload of `n` bytes derived from `seed`.
pub fn pattern(n: usize, seed: u32) -> Vec<u8> {
    (0..n)
        .map(|i| {
            (i as u32)
                .wrapping_mul(31)
                .wrapping_add(seed.wrapping_mul(7)) as u8
        })
        .collect()
}

/// The ARP requester's MAC and address, if `f` asks who has `ip`.
pub fn arp_request_for(f: &[u8], ip: [u8; 4]) -> Option<(Mac, [u8; 4])> {
    (f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 1] && f[38..42] == ip)
        .then(|| (f[22..28].try_into().unwrap(), f[28..32].try_into().unwrap()))
}

/// An ARP reply from `mac`/`ip` to `to`.
pub fn arp_reply(mac: Mac, ip: [u8; 4], to: (Mac, [u8; 4])) -> Vec<u8> {
    let mut f = arp_request(mac, ip, to.1);
    f[0..6].copy_from_slice(&to.0);
    f[21] = 2;
    f[32..38].copy_from_slice(&to.0);
    f
}

/// TCP flags.
pub const TCP_FIN: u8 = 0x01;
/// SYN.
pub const TCP_SYN: u8 = 0x02;
/// RST.
pub const TCP_RST: u8 = 0x04;
/// ACK.
pub const TCP_ACK: u8 = 0x10;

/// A TCP segment as received.
pub struct Tcp<'a> {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Flags.
    pub flags: u8,
    /// Payload.
    pub data: &'a [u8],
    /// IP and TCP checksums both verify.
    pub csum_ok: bool,
}

fn tcp_checksum(src: [u8; 4], dst: [u8; 4], seg: &[u8]) -> u16 {
    let mut p = Vec::with_capacity(12 + seg.len());
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&[0, 6]);
    p.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    p.extend_from_slice(seg);
    checksum(&p)
}

/// A TCP segment from `src` to us (`ip`) in `f`, if it is one.
pub fn tcp_to(f: &[u8], src: [u8; 4], ip: [u8; 4]) -> Option<Tcp<'_>> {
    if f.len() < 54 || f[12..14] != [0x08, 0x00] || f[14] != 0x45 || f[23] != 6 {
        return None;
    }
    if f[26..30] != src || f[30..34] != ip {
        return None;
    }
    let ip_len = usize::from(u16::from_be_bytes([f[16], f[17]]));
    if ip_len < 40 || 14 + ip_len > f.len() {
        return None;
    }
    let seg = &f[34..14 + ip_len];
    let hl = usize::from(seg[12] >> 4) * 4;
    if hl < 20 || hl > seg.len() {
        return None;
    }
    Some(Tcp {
        sport: u16::from_be_bytes([seg[0], seg[1]]),
        dport: u16::from_be_bytes([seg[2], seg[3]]),
        seq: u32::from_be_bytes([seg[4], seg[5], seg[6], seg[7]]),
        flags: seg[13],
        data: &seg[hl..],
        csum_ok: checksum(&f[14..34]) == 0 && tcp_checksum(src, ip, seg) == 0,
    })
}

/// A TCP segment without payload (a SYN carries an MSS option of 1460).
pub fn tcp_segment(
    src: (Mac, [u8; 4], u16),
    dst: (Mac, [u8; 4], u16),
    seq: u32,
    ack: u32,
    flags: u8,
) -> Vec<u8> {
    let opts: &[u8] = if flags & TCP_SYN != 0 {
        &[2, 4, 0x05, 0xb4]
    } else {
        &[]
    };
    let tcp_len = 20 + opts.len();
    let mut f = Vec::with_capacity(14 + 20 + tcp_len);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0];
    ip[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
    ip.extend_from_slice(&src.1);
    ip.extend_from_slice(&dst.1);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut t = Vec::with_capacity(tcp_len);
    t.extend_from_slice(&src.2.to_be_bytes());
    t.extend_from_slice(&dst.2.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[((tcp_len / 4) as u8) << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(opts);
    let c = tcp_checksum(src.1, dst.1, &t);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&t);
    f
}

/// POSIX `cksum` (CRC-32, polynomial 0x04c11db7, not reflected, the length appended), as
/// busybox `cksum` prints it, computed incrementally.
#[derive(Default)]
pub struct Cksum {
    crc: u32,
    len: u64,
}

impl Cksum {
    fn byte(&mut self, b: u8) {
        self.crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            self.crc = if self.crc & 0x8000_0000 != 0 {
                (self.crc << 1) ^ 0x04c1_1db7
            } else {
                self.crc << 1
            };
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.byte(b);
        }
        self.len += data.len() as u64;
    }

    /// Bytes added so far.
    pub fn bytes(&self) -> u64 {
        self.len
    }

    /// `CRC LENGTH` as `cksum` prints them.
    pub fn finish(&self) -> String {
        let mut c = Cksum {
            crc: self.crc,
            len: 0,
        };
        let mut n = self.len;
        while n != 0 {
            c.byte(n as u8);
            n >>= 8;
        }
        format!("{} {}", !c.crc, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: (Mac, [u8; 4]) = ([2, 0, 0, 0, 0, 1], [10, 0, 0, 66]);
    const B: (Mac, [u8; 4]) = ([2, 0, 0, 0, 0, 2], [10, 0, 0, 11]);

    #[test]
    fn echo_request_checksums_verify() {
        let f = echo_request(A, B, 7, &pattern(101, 7));
        assert_eq!(f.len(), 14 + 20 + 8 + 101);
        assert_eq!(checksum(&f[14..34]), 0, "IP header");
        assert_eq!(checksum(&f[34..]), 0, "ICMP");
    }

    #[test]
    fn a_reply_is_recognised_with_its_payload() {
        let payload = pattern(40, 3);
        // The reply the peer's kernel sends: addresses swapped, type 0.
        let mut f = echo_request(B, A, 9, &payload);
        f[34] = 0;
        f.extend_from_slice(&[0; 4]); // Ethernet padding beyond the IP length
        assert_eq!(echo_reply_from(&f, B.1), Some((9, &payload[..])));
        assert_eq!(echo_reply_from(&f, A.1), None, "from another address");
        f[34] = 8;
        assert_eq!(echo_reply_from(&f, B.1), None, "a request is no reply");
    }

    #[test]
    fn arp_reply_gives_the_sender_mac() {
        let mut f = arp_request(B.0, B.1, A.1);
        assert_eq!(f.len(), 60);
        assert_eq!(arp_reply_from(&f, B.1), None, "a request is no reply");
        f[21] = 2;
        assert_eq!(arp_reply_from(&f, B.1), Some(B.0));
    }

    #[test]
    fn cksum_matches_posix() {
        // `printf 123456789 | cksum` prints 930766865 9; empty input 4294967295 0.
        let mut c = Cksum::default();
        c.update(b"123456789");
        assert_eq!(c.finish(), "930766865 9");
        assert_eq!(Cksum::default().finish(), "4294967295 0");
    }

    #[test]
    fn tcp_segments_round_trip() {
        let f = tcp_segment((A.0, A.1, 5001), (B.0, B.1, 40000), 7, 9, TCP_SYN | TCP_ACK);
        let t = tcp_to(&f, A.1, B.1).unwrap();
        assert!(t.csum_ok);
        assert_eq!(
            (t.sport, t.dport, t.seq, t.flags),
            (5001, 40000, 7, TCP_SYN | TCP_ACK)
        );
        let mut bad = f.clone();
        bad[40] ^= 1;
        assert!(!tcp_to(&bad, A.1, B.1).unwrap().csum_ok);
        let r = arp_reply(A.0, A.1, (B.0, B.1));
        assert_eq!(arp_reply_from(&r, A.1), Some(A.0));
        assert_eq!(
            arp_request_for(&arp_request(B.0, B.1, A.1), A.1),
            Some((B.0, B.1))
        );
    }
}
