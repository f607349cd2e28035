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
}
