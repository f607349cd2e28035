//! netback's Ethernet/IP/TCP/UDP header parsing, checksums and segmentation.
//!
//! netback's header parsing ([`netback::frame`]) and offloads ([`netback::packet`]): the
//! input is three bytes of offload state and port capabilities, then one Ethernet frame as a
//! guest sends it.
//!
//! Asserts: the located headers lie inside the frame; a checksum we fill verifies; a packet
//! that passed `validate_offloads` and was adapted to a port never exceeds what the port
//! takes (unless handed over as GSO to a port that takes GSO), carries a complete checksum
//! unless the port finishes partial ones, and segmentation keeps every payload byte in order
//! with a valid IPv4 header checksum on every segment.

use crate::input::Input;
use netback::frame::{self, L3Source, IPPROTO_TCP};
use netback::packet::{Caps, Csum, Packet, MAX_FRAME};
use netback::wire::{Gso, GsoKind};

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let mss = input.u16();
    let max_raw = input.u16();
    let frame = input.rest().to_vec();

    let _ = frame::dst_mac(&frame);
    let _ = frame::src_mac(&frame);
    let _ = frame::ethertype(&frame);
    if let Ok(L3Source::Other(ty)) = frame::l3_source(&frame) {
        assert_eq!(Some(ty), frame::ethertype(&frame));
    }
    if let Ok(info) = frame::locate_l4(&frame) {
        assert!(info.l3_off <= info.l4_off && info.headers_len() <= info.end);
        assert!(info.end <= frame.len(), "{info:?} beyond the frame");
        let mut f = frame.clone();
        frame::fill_l4_checksum(&mut f, &info);
        assert!(
            frame::l4_checksum_ok(&f, &info),
            "a filled checksum verifies"
        );
    }

    let csum = match flags & 3 {
        0 => Csum::Unverified,
        1 => Csum::Validated,
        _ => Csum::Partial,
    };
    let gso = (flags & 4 != 0).then_some(Gso {
        kind: if flags & 8 != 0 {
            GsoKind::TcpV6
        } else {
            GsoKind::TcpV4
        },
        mss,
    });
    let caps = Caps {
        // A port takes at least a minimal frame and at most what netif can carry.
        max_frame: 64 + usize::from(max_raw) % (MAX_FRAME - 63),
        gso_tcpv4: flags & 0x10 != 0,
        gso_tcpv6: flags & 0x20 != 0,
        partial_ipv4: flags & 0x40 != 0,
        partial_ipv6: flags & 0x80 != 0,
    };
    let mut pkt = Packet {
        data: frame,
        csum,
        gso,
    };
    if pkt.validate_offloads().is_err() {
        return;
    }
    let original = pkt.clone();
    let mut out = Vec::new();
    let Ok(n) = pkt.adapt(&caps, &mut |p| {
        out.push(p);
        true
    }) else {
        return;
    };
    assert_eq!(n, out.len());
    for p in &out {
        match p.gso {
            Some(g) => assert!(caps.takes_gso(&g), "GSO only to a port that takes it"),
            None => assert!(
                p.len() <= caps.max_frame,
                "{} > {}",
                p.len(),
                caps.max_frame
            ),
        }
        if p.csum == Csum::Partial {
            let info = frame::locate_l4(&p.data).expect("a partial packet has L4 headers");
            assert!(if info.ipv6 {
                caps.partial_ipv6
            } else {
                caps.partial_ipv4
            });
        }
    }
    let segmented = original.gso.is_some() && out.iter().all(|p| p.gso.is_none());
    if segmented && !out.is_empty() {
        let info = frame::locate_l4(&original.data).expect("validated");
        assert_eq!(info.proto, IPPROTO_TCP);
        let hdr = info.headers_len();
        let mut payload = Vec::new();
        for seg in &out {
            let si = frame::locate_l4(&seg.data).expect("a segment parses");
            assert_eq!(si.headers_len(), hdr, "same headers");
            assert!(frame::l4_checksum_ok(&seg.data, &si), "segment checksum");
            if !si.ipv6 {
                let ihl = si.l4_off - si.l3_off;
                let s = frame::sum(&seg.data[si.l3_off..si.l3_off + ihl], 0);
                assert_eq!(frame::fold(s), 0xffff, "segment IPv4 header checksum");
            }
            payload.extend_from_slice(&seg.data[hdr..si.end]);
        }
        assert!(
            payload == original.data[hdr..info.end],
            "segments carry the payload in order"
        );
    }
}
