//! The uplink on a NIC the driver domain owns, against a fake device on the host platform:
//! guests on the physical segment, the driver domain's address by DHCP, the device's
//! offloads used (and done in software where it has none), a full queue, a failing device.

mod common;

use common::*;
use minios::netdev::{RxCsum, TxGso};
use netback::wire::{Gso, GsoKind};
use smoltcp::wire::{DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, Ipv4Address};

const CMD: &str = "netback.uplink=nic netback.ip=off";
/// The gateway on the wire (QEMU's user network).
const GW_MAC: [u8; 6] = [0x52, 0x55, 10, 0, 2, 2];
const GW_IP: [u8; 4] = [10, 0, 2, 2];

fn nic_harness(cmdline: &str, nic: &FakeNic) -> (Harness, TestFront, TestFront) {
    let mut h = Harness::with_nic(cmdline, nic.clone());
    let a = h.guest(5, FrontOpts::linux(5));
    let b = h.guest(6, FrontOpts::plain(6));
    (h, a, b)
}

#[test]
fn guests_reach_the_wire_and_the_wire_reaches_them() {
    let nic = FakeNic::new();
    let (mut h, mut a, mut b) = nic_harness(CMD, &nic);
    assert_eq!(
        h.read(&format!("/local/domain/{DD}/data/uplink"))
            .as_deref(),
        Some("fake-nic 0000:00:10.0")
    );
    let out = udp_frame(GW_MAC, mac(5), [10, 0, 2, 15], GW_IP, &pattern(700, 1));
    a.send(&out, &SendOpts::default());
    h.settle();
    let sent = nic.take_tx();
    assert_eq!(sent.len(), 1, "one frame on the wire");
    assert_eq!(sent[0].0, out, "unchanged");
    assert_eq!(sent[0].1.csum, None);
    // The gateway's MAC was not learnt yet: b saw the flood, as on any learning switch.
    assert_eq!(b.take_received().len(), 1);
    // The gateway answers a's MAC (learnt on a's port) and broadcasts.
    let back = udp_frame(mac(5), GW_MAC, GW_IP, [10, 0, 2, 15], &pattern(900, 2));
    nic.inject(&back, RxCsum::Unverified);
    let bcast = udp_frame([0xff; 6], GW_MAC, GW_IP, [10, 0, 2, 255], &pattern(100, 3));
    nic.inject(&bcast, RxCsum::Unverified);
    h.settle();
    let got_a: Vec<Vec<u8>> = a.take_received().into_iter().map(|r| r.data).collect();
    let got_b: Vec<Vec<u8>> = b.take_received().into_iter().map(|r| r.data).collect();
    assert_eq!(got_a, vec![back, bcast.clone()]);
    assert_eq!(got_b, vec![bcast], "b got only the broadcast");
    // A frame the device marks as verified reaches the guest as validated.
    let v = udp_frame(mac(5), GW_MAC, GW_IP, [10, 0, 2, 15], &pattern(64, 4));
    nic.inject(&v, RxCsum::Valid);
    h.settle();
    let r = a.take_received();
    assert!(r[0].data_validated && !r[0].csum_blank);
}

/// A minimal DHCP server on the wire: answers the driver domain's DISCOVER with an OFFER and
/// its REQUEST with an ACK for `lease`.
fn serve_dhcp(h: &mut Harness, nic: &FakeNic, lease: [u8; 4]) -> Vec<DhcpMessageType> {
    let mut seen = Vec::new();
    for _ in 0..20 {
        h.advance(1_000_000_000);
        h.settle();
        for (frame, _) in nic.take_tx() {
            // Ethernet + IPv4 (no options) + UDP to port 67.
            if frame.len() < 42 || frame[23] != 17 || frame[36..38] != [0, 67] {
                continue;
            }
            let pkt = DhcpPacket::new_checked(&frame[42..]).unwrap();
            let req = DhcpRepr::parse(&pkt).unwrap();
            seen.push(req.message_type);
            let reply_type = match req.message_type {
                DhcpMessageType::Discover => DhcpMessageType::Offer,
                DhcpMessageType::Request => DhcpMessageType::Ack,
                _ => continue,
            };
            let reply = DhcpRepr {
                message_type: reply_type,
                transaction_id: req.transaction_id,
                secs: 0,
                client_hardware_address: req.client_hardware_address,
                client_ip: Ipv4Address::UNSPECIFIED,
                your_ip: Ipv4Address::from(lease),
                server_ip: Ipv4Address::from(GW_IP),
                router: Some(Ipv4Address::from(GW_IP)),
                subnet_mask: Some(Ipv4Address::new(255, 255, 255, 0)),
                relay_agent_ip: Ipv4Address::UNSPECIFIED,
                broadcast: false,
                requested_ip: None,
                client_identifier: None,
                server_identifier: Some(Ipv4Address::from(GW_IP)),
                parameter_request_list: None,
                dns_servers: None,
                max_size: None,
                lease_duration: Some(86_400),
                renew_duration: None,
                rebind_duration: None,
                additional_options: &[],
            };
            let mut payload = vec![0u8; reply.buffer_len()];
            reply
                .emit(&mut DhcpPacket::new_unchecked(&mut payload[..]))
                .unwrap();
            let EthernetAddress(client) = req.client_hardware_address;
            let mut f = udp_frame(client, GW_MAC, GW_IP, lease, &payload);
            // Ports 67 -> 68 (the checksum covers them: recompute).
            f[34..38].copy_from_slice(&[0, 67, 0, 68]);
            f[40..42].copy_from_slice(&[0, 0]);
            let info = netback::frame::locate_l4(&f).unwrap();
            netback::frame::fill_l4_checksum(&mut f, &info);
            nic.inject(&f, RxCsum::Unverified);
        }
        if seen.contains(&DhcpMessageType::Request) {
            h.settle();
            break;
        }
    }
    seen
}

#[test]
fn the_driver_domain_takes_its_address_by_dhcp_through_the_nic() {
    let nic = FakeNic::new();
    let mut h = Harness::with_nic("netback.uplink=nic", nic.clone());
    let seen = serve_dhcp(&mut h, &nic, [10, 0, 2, 15]);
    assert_eq!(
        seen,
        vec![DhcpMessageType::Discover, DhcpMessageType::Request],
        "DISCOVER then REQUEST"
    );
    assert_eq!(
        h.read(&format!("/local/domain/{DD}/data/ip")).as_deref(),
        Some("10.0.2.15/24")
    );
    // It now answers ARP for the leased address from the wire.
    nic.take_tx();
    let mut arp = vec![0u8; 42];
    arp[0..6].copy_from_slice(&[0xff; 6]);
    arp[6..12].copy_from_slice(&GW_MAC);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    arp[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp[22..28].copy_from_slice(&GW_MAC);
    arp[28..32].copy_from_slice(&GW_IP);
    arp[38..42].copy_from_slice(&[10, 0, 2, 15]);
    nic.inject(&arp, RxCsum::Unverified);
    h.settle();
    let replies: Vec<Vec<u8>> = nic
        .take_tx()
        .into_iter()
        .map(|(f, _)| f)
        .filter(|f| f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2])
        .collect();
    assert_eq!(replies.len(), 1, "one ARP reply");
    assert_eq!(&replies[0][28..32], &[10, 0, 2, 15]);
}

/// The device's interrupts and the frames refused from it are counted in `data/status/`,
/// so a driver domain that misses its NIC's interrupts can be told from a slow one.
#[test]
fn interrupts_and_refused_frames_show_in_the_status() {
    let nic = FakeNic::new();
    let (mut h, mut a, _b) = nic_harness(&format!("{CMD} netback.status_ms=1"), &nic);
    let status = |h: &Harness, key: &str| {
        h.read(&format!("/local/domain/{DD}/data/status/{key}"))
            .and_then(|v| v.parse::<u64>().ok())
    };
    for i in 0..3 {
        let f = udp_frame(mac(5), GW_MAC, GW_IP, [10, 0, 2, 15], &pattern(100, i));
        nic.inject(&f, RxCsum::Unverified);
        h.settle();
    }
    assert_eq!(a.take_received().len(), 3);
    // "Checksum partial" on a frame that is not IP: the switch refuses it.
    let mut arp = vec![0u8; 60];
    arp[0..6].copy_from_slice(&mac(5));
    arp[6..12].copy_from_slice(&GW_MAC);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    nic.inject(
        &arp,
        RxCsum::Partial {
            start: 14,
            offset: 6,
        },
    );
    h.advance(2_000_000);
    assert!(
        a.take_received().is_empty(),
        "the refused frame reached nobody"
    );
    assert_eq!(
        status(&h, "uplink-interrupts"),
        Some(4),
        "one per injection"
    );
    assert_eq!(status(&h, "uplink-rx-malformed"), Some(1));
}

/// The wire answers while the driver domain is still in the pass that sent the frame (QEMU's
/// user network answers a ping inside the doorbell write): the answer reaches the guest in
/// that pass or the pass asks for another at once. It must not wait in the switch for the
/// next, unrelated wake-up (on the testbed a ping's round trip was the ping interval).
#[test]
fn an_answer_that_arrives_during_the_pass_is_not_left_waiting() {
    let nic = FakeNic::new();
    nic.0.borrow_mut().answer = Some(|f: &[u8]| {
        let mut r = f.to_vec();
        r[0..6].copy_from_slice(&f[6..12]);
        r[6..12].copy_from_slice(&f[0..6]);
        Some(r)
    });
    let (mut h, mut a, _b) = nic_harness(CMD, &nic);
    for round in 0..3u32 {
        let out = udp_frame(GW_MAC, mac(5), [10, 0, 2, 15], GW_IP, &pattern(200, round));
        a.send(&out, &SendOpts::default());
        let mut passes = 0;
        loop {
            let wake = h.pass();
            passes += 1;
            if !a.take_received().is_empty() {
                break;
            }
            assert!(
                wake.is_some_and(|t| t <= h.world.now_ns()),
                "round {round}: the answer waits with nothing due after {passes} passes"
            );
            assert!(passes < 10, "round {round}: never delivered");
        }
    }
}

#[test]
fn without_a_nic_uplink_the_default_is_no_address() {
    let h = Harness::new("netback.uplink=off");
    assert_eq!(h.read(&format!("/local/domain/{DD}/data/ip")), None);
}

fn gso_frame(payload: usize) -> Vec<u8> {
    tcp_frame(
        GW_MAC,
        mac(5),
        [10, 0, 2, 15],
        GW_IP,
        &pattern(payload, 9),
        true,
    )
}

#[test]
fn offloads_the_device_announces_are_used() {
    let nic = FakeNic::new();
    {
        let mut s = nic.0.borrow_mut();
        s.offloads.tx_csum = true;
        s.offloads.tx_tso4 = true;
    }
    let (mut h, mut a, _b) = nic_harness(CMD, &nic);
    let f = gso_frame(30_000);
    let gso = Gso {
        kind: GsoKind::TcpV4,
        mss: 1448,
    };
    a.send(
        &f,
        &SendOpts {
            csum_blank: true,
            gso: Some(gso),
            ..SendOpts::default()
        },
    );
    h.settle();
    let sent = nic.take_tx();
    assert_eq!(sent.len(), 1, "the device segments: one super-segment");
    assert_eq!(sent[0].0, f);
    assert_eq!(
        sent[0].1.csum,
        Some((34, 16)),
        "checksum from the TCP header"
    );
    assert_eq!(
        sent[0].1.gso,
        Some(TxGso {
            ipv6: false,
            mss: 1448,
            hdr_len: 54
        })
    );
}

#[test]
fn without_offloads_the_switch_segments_and_checksums() {
    let nic = FakeNic::new();
    let (mut h, mut a, _b) = nic_harness(CMD, &nic);
    let f = gso_frame(30_000);
    a.send(
        &f,
        &SendOpts {
            csum_blank: true,
            gso: Some(Gso {
                kind: GsoKind::TcpV4,
                mss: 1448,
            }),
            ..SendOpts::default()
        },
    );
    h.settle();
    let sent = nic.take_tx();
    assert_eq!(sent.len(), 30_000usize.div_ceil(1448));
    let mut payload = Vec::new();
    for (frame, meta) in &sent {
        assert!(frame.len() <= 1514);
        assert_eq!(*meta, Default::default(), "no offload asked of the device");
        assert!(l4_ok(frame), "complete checksum");
        payload.extend_from_slice(&frame[54..]);
    }
    assert_eq!(payload, &f[54..], "the segments carry the payload in order");
}

#[test]
fn a_full_device_queue_holds_frames_back_in_order() {
    let nic = FakeNic::new();
    nic.0.borrow_mut().tx_room = Some(1);
    let (mut h, mut a, _b) = nic_harness(CMD, &nic);
    let frames: Vec<Vec<u8>> = (0..4)
        .map(|i| udp_frame(GW_MAC, mac(5), [10, 0, 2, 15], GW_IP, &pattern(200, i)))
        .collect();
    for f in &frames {
        a.send(f, &SendOpts::default());
    }
    h.settle();
    assert_eq!(nic.take_tx().len(), 1, "the device took one");
    nic.0.borrow_mut().tx_room = None;
    nic.0.borrow_mut().irq = true;
    h.settle();
    let rest: Vec<Vec<u8>> = nic.take_tx().into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        rest,
        frames[1..].to_vec(),
        "the rest, in order, nothing lost"
    );
}

#[test]
fn a_failing_device_is_detached_and_the_guests_keep_their_switch() {
    let nic = FakeNic::new();
    let (mut h, mut a, mut b) = nic_harness(CMD, &nic);
    assert!(h.netdd.dp.borrow().uplink_port().is_some());
    nic.0.borrow_mut().fail = Some("controller stopped answering".into());
    nic.0.borrow_mut().irq = true;
    let out = udp_frame(GW_MAC, mac(5), [10, 0, 2, 15], GW_IP, &pattern(100, 1));
    a.send(&out, &SendOpts::default());
    h.settle();
    assert!(
        h.netdd.dp.borrow().uplink_port().is_none(),
        "the uplink is gone"
    );
    b.take_received();
    let ab = udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(300, 2));
    a.send(&ab, &SendOpts::default());
    h.settle();
    let got = b.take_received();
    assert_eq!(got.len(), 1, "guests still reach each other");
    assert_eq!(got[0].data, ab);
}

#[test]
fn a_device_that_stops_sending_is_failed_after_a_while() {
    let nic = FakeNic::new();
    nic.0.borrow_mut().tx_room = Some(0);
    let (mut h, mut a, mut b) = nic_harness(CMD, &nic);
    let out = udp_frame(GW_MAC, mac(5), [10, 0, 2, 15], GW_IP, &pattern(100, 1));
    a.send(&out, &SendOpts::default());
    h.settle();
    b.take_received();
    for _ in 0..4 {
        h.advance(1_000_000_000);
        nic.0.borrow_mut().irq = true;
        h.settle();
    }
    assert!(
        h.netdd.dp.borrow().uplink_port().is_some(),
        "4 s of a full queue is patience, not failure"
    );
    for _ in 0..2 {
        h.advance(1_000_000_000);
        nic.0.borrow_mut().irq = true;
        h.settle();
    }
    assert!(
        h.netdd.dp.borrow().uplink_port().is_none(),
        "after 5 s the device is dropped"
    );
    let ab = udp_frame(mac(6), mac(5), ip(5), ip(6), &pattern(300, 2));
    a.send(&ab, &SendOpts::default());
    h.settle();
    assert_eq!(b.take_received().len(), 1, "the guests keep their switch");
}
