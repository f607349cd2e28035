//! The switch's unit tests: rules, learning, anti-spoofing, bounded queues and table.

use super::*;
use crate::frame::tests::tcp4;
use crate::packet::MAX_FRAME;
use alloc::vec;

const A: Mac = [0, 0x16, 0x3e, 0, 0, 0xa];
const B: Mac = [0, 0x16, 0x3e, 0, 0, 0xb];
const X: Mac = [2, 0, 0, 0, 0, 0x99];

fn caps() -> Caps {
    Caps::plain(1500)
}

fn frame(dst: Mac, src: Mac, src_ip: [u8; 4]) -> Packet {
    let mut data = tcp4(src_ip, [10, 0, 0, 99], b"payload");
    data[0..6].copy_from_slice(&dst);
    data[6..12].copy_from_slice(&src);
    Packet::new(data)
}

fn port(sw: &mut Switch, name: &str, mac: Option<Mac>, ips: Option<&str>) -> PortId {
    sw.add_port(PortConfig {
        name: name.into(),
        caps: caps(),
        policy: Policy {
            mac,
            ips: ips.map(|s| s.split(' ').map(|r| IpRule::parse(r).unwrap()).collect()),
        },
    })
}

#[test]
fn ip_rules() {
    let r = IpRule::parse("10.0.0.0/24").unwrap();
    assert!(r.matches("10.0.0.77".parse().unwrap()));
    assert!(!r.matches("10.0.1.1".parse().unwrap()));
    assert!(!r.matches("::1".parse().unwrap()));
    let r = IpRule::parse("10.0.0.5").unwrap();
    assert_eq!(r.prefix, 32);
    assert!(r.matches("10.0.0.5".parse().unwrap()));
    assert!(!r.matches("10.0.0.4".parse().unwrap()));
    let r = IpRule::parse("fd00::/12").unwrap();
    assert!(r.matches("fd0f::1".parse().unwrap()));
    assert!(!r.matches("fd10::1".parse().unwrap()));
    assert!(IpRule::parse("0.0.0.0/0")
        .unwrap()
        .matches("1.2.3.4".parse().unwrap()));
    for bad in ["", "10.0.0.1/33", "10.0.0", "x/8", "::/129", "10.0.0.1/"] {
        assert_eq!(IpRule::parse(bad), None, "{bad}");
    }
    assert_eq!(
        alloc::format!("{}", IpRule::parse("fd00::/12").unwrap()),
        "fd00::/12"
    );
}

#[test]
fn learns_and_forwards_unicast() {
    let mut sw = Switch::new(Limits::default());
    let a = port(&mut sw, "a", Some(A), None);
    let b = port(&mut sw, "b", Some(B), None);
    let up = port(&mut sw, "up", None, None);
    // A to B: static entry, unicast.
    assert_eq!(sw.ingress(a, frame(B, A, [10, 0, 0, 1]), 0), 1);
    assert_eq!((sw.queued(b), sw.queued(up)), (1, 0));
    // A to unknown X: flooded to b and up.
    assert_eq!(sw.ingress(a, frame(X, A, [10, 0, 0, 1]), 0), 2);
    assert_eq!(sw.stats().flooded, 1);
    // X answers from the uplink: learnt; A to X is now unicast.
    sw.ingress(up, frame(A, X, [10, 0, 0, 9]), 0);
    assert_eq!(sw.queued(a), 1);
    assert_eq!(sw.ingress(a, frame(X, A, [10, 0, 0, 1]), 1), 1);
    assert_eq!((sw.queued(b), sw.queued(up)), (2, 2));
    // Broadcast goes everywhere but back.
    assert_eq!(
        sw.ingress(b, frame(frame::BROADCAST, B, [10, 0, 0, 2]), 2),
        2
    );
    // Entries age out.
    let age = sw.limits().fdb_age_ns;
    assert_eq!(
        sw.ingress(a, frame(X, A, [10, 0, 0, 1]), age + 5),
        2,
        "flooded again"
    );
}

#[test]
fn anti_spoofing() {
    let mut sw = Switch::new(Limits::default());
    let a = port(&mut sw, "a", Some(A), Some("10.0.0.10 fd00::10"));
    let b = port(&mut sw, "b", Some(B), None);
    let up = port(&mut sw, "up", None, None);
    // Wrong source MAC.
    assert_eq!(sw.ingress(a, frame(B, X, [10, 0, 0, 10]), 0), 0);
    // Wrong source IP.
    assert_eq!(sw.ingress(a, frame(B, A, [10, 0, 0, 11]), 0), 0);
    // Right ones.
    assert_eq!(sw.ingress(a, frame(B, A, [10, 0, 0, 10]), 0), 1);
    // DHCP from 0.0.0.0.
    assert_eq!(sw.ingress(a, frame(B, A, [0, 0, 0, 0]), 0), 1);
    assert_eq!(sw.counters(a).unwrap().in_spoofed, 2);
    // B without ip= may use any address, but not A's MAC.
    assert_eq!(sw.ingress(b, frame(X, B, [1, 2, 3, 4]), 0), 2);
    assert_eq!(sw.ingress(b, frame(X, A, [1, 2, 3, 4]), 0), 0);
    // Nobody, not even the uplink, takes over a vif's MAC.
    assert_eq!(sw.ingress(up, frame(B, A, [10, 0, 0, 10]), 0), 0);
    assert_eq!(sw.stats().stolen_mac, 1);
    // A group source MAC is never valid.
    assert_eq!(
        sw.ingress(up, frame(B, frame::BROADCAST, [1, 1, 1, 1]), 0),
        0
    );
    // Other protocols are refused when ip= is set.
    let mut other = frame(B, A, [10, 0, 0, 10]);
    other.data[12] = 0x88;
    assert_eq!(sw.ingress(a, other, 0), 0);
}

#[test]
fn arp_and_ipv6_sources() {
    let policy = Policy {
        mac: Some(A),
        ips: Some(vec![IpRule::parse("10.0.0.10").unwrap()]),
    };
    let arp = |sender_mac: Mac, ip: [u8; 4]| {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&A);
        f.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&sender_mac);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0; 10]);
        f
    };
    assert_eq!(policy.check(&arp(A, [10, 0, 0, 10])), Ok(()));
    assert_eq!(policy.check(&arp(A, [0; 4])), Ok(()), "ARP probe");
    assert!(policy.check(&arp(B, [10, 0, 0, 10])).is_err());
    assert!(policy.check(&arp(A, [10, 0, 0, 1])).is_err());
    let v6 = |src: [u8; 16]| {
        let mut f = vec![0x33; 6];
        f.extend_from_slice(&A);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 0, 58, 255]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0; 16]);
        f
    };
    let mut ll = [0u8; 16];
    ll[0] = 0xfe;
    ll[1] = 0x80;
    ll[15] = 1;
    assert_eq!(policy.check(&v6(ll)), Ok(()));
    assert_eq!(policy.check(&v6([0; 16])), Ok(()));
    let mut global = [0u8; 16];
    global[0] = 0x20;
    assert!(policy.check(&v6(global)).is_err());
    assert!(policy.check(&v6(ll)[..30]).is_err(), "truncated");
}

#[test]
fn queues_are_bounded() {
    let limits = Limits {
        queue_packets: 4,
        queue_bytes: 100_000,
        total_bytes: 1_000_000,
        ..Limits::default()
    };
    let mut sw = Switch::new(limits);
    let a = port(&mut sw, "a", Some(A), None);
    let b = port(&mut sw, "b", Some(B), None);
    for _ in 0..10 {
        sw.ingress(a, frame(B, A, [10, 0, 0, 1]), 0);
    }
    assert_eq!(sw.queued(b), 4);
    assert_eq!(sw.counters(b).unwrap().out_dropped, 6);
    let bytes = sw.queued_bytes(b);
    assert_eq!(sw.used_bytes(), bytes);
    sw.pop(b).unwrap();
    assert_eq!(sw.used_bytes(), bytes - bytes / 4);
    // The global budget binds too.
    let limits = Limits {
        total_bytes: 200,
        ..Limits::default()
    };
    let mut sw = Switch::new(limits);
    let a = port(&mut sw, "a", Some(A), None);
    let b = port(&mut sw, "b", Some(B), None);
    for _ in 0..10 {
        sw.ingress(a, frame(B, A, [10, 0, 0, 1]), 0);
    }
    assert!(sw.used_bytes() <= 200);
    assert_eq!(sw.queued(b), 200 / 61);
    // Removing a port returns its budget.
    sw.remove_port(b).unwrap();
    assert_eq!(sw.used_bytes(), 0);
    assert_eq!(sw.fdb_len(), 1);
}

#[test]
fn fdb_is_bounded() {
    let limits = Limits {
        fdb_entries: 8,
        ..Limits::default()
    };
    let mut sw = Switch::new(limits);
    let up = port(&mut sw, "up", None, None);
    let _b = port(&mut sw, "b", Some(B), None);
    for i in 0..100u8 {
        sw.ingress(up, frame(B, [2, 0, 0, 0, 1, i], [10, 0, 0, 1]), 0);
    }
    assert_eq!(sw.fdb_len(), 8);
    assert_eq!(sw.stats().fdb_full, 93);
}

#[test]
fn segmentation_on_the_way_to_a_plain_port() {
    let mut sw = Switch::new(Limits::default());
    let guest_caps = Caps {
        max_frame: MAX_FRAME,
        gso_tcpv4: true,
        gso_tcpv6: true,
        partial_ipv4: true,
        partial_ipv6: true,
    };
    let a = sw.add_port(PortConfig {
        name: "a".into(),
        caps: guest_caps,
        policy: Policy {
            mac: Some(A),
            ips: None,
        },
    });
    let up = port(&mut sw, "up", None, None);
    let payload = vec![7u8; 5000];
    let mut data = tcp4([10, 0, 0, 1], [10, 0, 0, 2], &payload);
    data[0..6].copy_from_slice(&X);
    data[6..12].copy_from_slice(&A);
    let mut p = Packet::new(data);
    p.csum = crate::packet::Csum::Partial;
    p.gso = Some(crate::wire::Gso {
        kind: crate::wire::GsoKind::TcpV4,
        mss: 1000,
    });
    assert_eq!(sw.ingress(a, p, 0), 5);
    assert_eq!(sw.queued(up), 5);
    // A frame too big for the uplink is dropped and counted.
    let mut big = frame(X, A, [10, 0, 0, 1]);
    big.data.resize(3000, 0);
    assert_eq!(sw.ingress(a, big, 0), 0);
    assert_eq!(sw.counters(up).unwrap().out_dropped, 1);
}
