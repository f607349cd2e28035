//! A whole netback driver domain whose sending guest's TX ring holds the input.
//!
//! A whole netback driver domain on `minios::host` (the in-process Xen) with a guest whose
//! TX ring holds fuzzer bytes, and a second guest receiving what the switch forwards. The
//! input: a flags byte (bit 0: the receiver without scatter-gather/GSO/checksum offload;
//! bit 1: a hostile `req_prod` after the slots; bit 2: the receiver's RX ring from the input
//! too), a slot count, that many 12-byte TX slots, [the `req_prod`], [an RX request count and
//! that many 8-byte RX requests], then the packet data (written at offset 0 of each of the
//! four pages the sender granted; the receiver granted four pages too; the grant numbers are
//! the same in every run, see the seeds).
//!
//! Asserts: either the sender's vif stays connected and every slot is answered exactly
//! once, by id, with a known status, each response slot's unused bytes zero (nothing the
//! backend did not write); or it is disconnected with a logged reason. A well-behaved
//! receiver only gets frames it can take (without scatter-gather and GSO: each in one page,
//! no GSO metadata) and stays connected; a receiver with hostile RX requests gets no more
//! responses than it made requests, each one that a frontend would accept (a length that
//! fits the page at its offset, or an error), or is disconnected with a reason.

use crate::harness::net::{FrontOpts, Harness, TestFront, DD};
use crate::input::Input;
use minios::host::HostGranted;
use minios::platform::{Access, GrantedPage, Grants, SharedMem};
use netback::wire::RxResponseRepr;
use xen_abi::netif::{
    NetifRxRequest, NetifRxResponse, NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETIF_RSP_NULL,
    NETIF_RSP_OKAY, NETTXF_EXTRA_INFO,
};
use xen_abi::ring::SharedRingIndices;
use xen_abi::WireStruct;
use xen_abi::XEN_PAGE_SIZE;

/// Offset of the first slot in the shared ring page.
const SLOTS_AT: usize = 64;

/// The driver domain, the sender `a` (domid 5) and the receiver `b` (6), with their data
/// pages.
struct Setup {
    h: Harness,
    a: TestFront,
    b: TestFront,
    /// `a`'s four pages, each holding the packet data at offset 0.
    a_pages: Vec<HostGranted>,
    /// `b`'s four pages for hostile RX requests.
    b_pages: Vec<HostGranted>,
}

/// Builds the world; `b` posts no buffers of its own when `hostile_rx`.
fn setup(plain: bool, hostile_rx: bool, payload: &[u8]) -> Setup {
    let mut h = Harness::new("netback.uplink=off");
    let a_opts = FrontOpts {
        rx_buffers: 8,
        ..FrontOpts::linux(5)
    };
    let mut b_opts = if plain {
        FrontOpts::plain(6)
    } else {
        FrontOpts::linux(6)
    };
    b_opts.rx_buffers = if hostile_rx { 0 } else { 64 };
    let a = h.guest(5, a_opts);
    let b = h.guest(6, b_opts);
    let a_pages: Vec<_> = (0..4)
        .map(|_| a.dom.grant_page(DD, Access::ReadOnly).expect("grant"))
        .collect();
    for p in &a_pages {
        p.write(0, payload).expect("in the page");
    }
    let b_pages = (0..4)
        .map(|_| b.dom.grant_page(DD, Access::ReadWrite).expect("grant"))
        .collect();
    Setup {
        h,
        a,
        b,
        a_pages,
        b_pages,
    }
}

/// The grant references of the sender's four data pages (the same in every run with the
/// same `hostile_rx`).
pub fn data_grefs(hostile_rx: bool) -> Vec<u32> {
    setup(false, hostile_rx, &[])
        .a_pages
        .iter()
        .map(|p| p.gref())
        .collect()
}

/// The grant references of the receiver's four pages (the same in every run).
pub fn rx_grefs() -> Vec<u32> {
    setup(false, true, &[])
        .b_pages
        .iter()
        .map(|p| p.gref())
        .collect()
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let count = usize::from(input.u8());
    let mut slots = Vec::with_capacity(count);
    for _ in 0..count {
        slots.push(input.array::<12>());
    }
    let hostile_prod = (flags & 2 != 0).then(|| input.u32());
    let hostile_rx = flags & 4 != 0;
    let mut rx_slots = Vec::new();
    if hostile_rx {
        for _ in 0..input.u8() % 32 {
            rx_slots.push(input.array::<8>());
        }
    }
    let payload = input.bytes(4096);

    let plain = flags & 1 != 0;
    // (The pages are bound to live to the end: dropping a grant revokes it.)
    let Setup {
        mut h,
        mut a,
        mut b,
        a_pages: _a_pages,
        b_pages: _b_pages,
    } = setup(plain, hostile_rx, payload);

    for r in &rx_slots {
        let idx = b.rx_front.next_request_slot().expect("room");
        let req = NetifRxRequest::read_from(r).expect("8 bytes");
        b.rx_ring().write_entry(idx, &req).expect("in the ring");
    }
    if b.rx_front.push_requests(b.rx_ring()) {
        b.notify_rx();
    }
    for s in &slots {
        a.put_raw(*s);
    }
    a.push_tx();
    if let Some(prod) = hostile_prod {
        a.tx_ring().store_req_prod(prod);
        a.notify_tx();
    }
    h.settle();
    if hostile_prod.is_none() {
        // (The test frontend's own index checks would refuse responses to requests it did
        // not make, so only a well-behaved one reads them.)
        a.poll();
    }
    if hostile_rx {
        check_hostile_receiver(&h, &b, rx_slots.len());
    } else {
        check_receiver(&h, &mut b, plain);
    }
    check_sender(&h, &mut a, &slots, hostile_prod.is_some());
}

/// A receiver that posted hostile RX requests: at most one response per request, each
/// acceptable to a frontend (extra-info slots aside), or a disconnect with a reason.
fn check_hostile_receiver(h: &Harness, b: &TestFront, requests: usize) {
    if !h.connected(b) {
        assert!(h.error_node(b).is_some(), "a disconnected vif says why");
        return;
    }
    let ring = b.rx_ring();
    let produced = ring.load_rsp_prod() as usize;
    assert!(
        produced <= requests,
        "{produced} responses to {requests} requests"
    );
    let mut extra_next = false;
    for i in 0..produced {
        let raw: NetifRxResponse = ring.read_entry(i as u32).expect("in the ring");
        if extra_next {
            // An extra-info slot (GSO); `more` chains another.
            extra_next = raw.id & 0x100 != 0;
            continue;
        }
        let rsp =
            RxResponseRepr::parse(&raw).unwrap_or_else(|e| panic!("rx response {i} {raw:?}: {e}"));
        extra_next = rsp.extra_info;
    }
}

/// A well-behaved receiver: connected, given only what it can take.
fn check_receiver(h: &Harness, b: &mut TestFront, plain: bool) {
    let received = b.take_received();
    assert!(h.connected(b), "the receiver is not affected");
    for r in &received {
        // An error slot is allowed: a direct guest-to-guest copy whose source grant turns
        // out bad answers the receiver's buffers it took with errors (datapath/tx.rs,
        // `respond_rx_errors`); it carries no data.
        assert!(r.data.len() <= usize::from(u16::MAX), "{r:?}");
        assert!(!r.error || r.data.is_empty(), "{r:?}");
        if plain {
            // Without scatter-gather and GSO: one buffer page per packet, no GSO metadata.
            assert!(
                r.slots == 1 && r.data.len() <= XEN_PAGE_SIZE && r.gso.is_none(),
                "{} bytes in {} slots (GSO {:?}) to a port without SG/GSO",
                r.data.len(),
                r.slots,
                r.gso
            );
        }
    }
}

/// The sender: every slot answered once, or a disconnect with a reason.
fn check_sender(h: &Harness, a: &mut TestFront, slots: &[[u8; 12]], hostile_prod: bool) {
    if !h.connected(a) {
        assert!(h.error_node(a).is_some(), "a disconnected vif says why");
        return;
    }
    if hostile_prod {
        return;
    }
    assert_eq!(a.tx_done.len(), slots.len(), "every slot answered once");
    for &(id, status) in &a.tx_done {
        assert!(
            [
                NETIF_RSP_OKAY,
                NETIF_RSP_ERROR,
                NETIF_RSP_DROPPED,
                NETIF_RSP_NULL
            ]
            .contains(&status),
            "status {status}"
        );
        if status != NETIF_RSP_NULL {
            assert!(
                slots.iter().any(|s| u16::from_le_bytes([s[8], s[9]]) == id),
                "response id {id} was never a request id"
            );
        }
    }
    let extras_possible = slots
        .iter()
        .any(|s| u16::from_le_bytes([s[6], s[7]]) & NETTXF_EXTRA_INFO != 0);
    if !extras_possible {
        assert!(a.tx_done.iter().all(|&(_, s)| s != NETIF_RSP_NULL));
    }
    let ring = a.tx_ring().mem().page().clone();
    for i in 0..slots.len() {
        let mut raw = [0u8; 12];
        ring.read(SLOTS_AT + i * 12, &mut raw).expect("in the page");
        assert!(
            raw[4..].iter().all(|&b| b == 0),
            "tx response slot {i} holds bytes the backend did not write: {raw:?}"
        );
    }
}
