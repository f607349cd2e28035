//! A whole netback driver domain whose sending guest's TX ring holds the input.
//!
//! A whole netback driver domain on `minios::host` (the in-process Xen) with a guest whose
//! TX ring holds fuzzer bytes, and a second guest receiving what the switch forwards. The
//! input: a flags byte (the receiver without scatter-gather/GSO/checksum offload; a hostile
//! `req_prod` after the slots), a slot count, that many 12-byte TX slots, then the packet
//! data (written at offset 0 of each of the four pages the sender granted; the grant numbers
//! are the same in every run, see the seeds).
//!
//! Asserts: either the sender's vif stays connected and every slot is answered exactly
//! once, by id, with a known status, each response slot's unused bytes zero (nothing the
//! backend did not write); or it is disconnected with a logged reason. The receiver only
//! gets frames it can take (a receiver without scatter-gather and GSO: each in one page, no
//! GSO metadata) and stays connected.

use crate::harness::net::{FrontOpts, Harness, TestFront, DD};
use crate::input::Input;
use minios::host::HostGranted;
use minios::platform::{Access, GrantedPage, Grants, SharedMem};
use xen_abi::netif::{
    NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETTXF_EXTRA_INFO,
};
use xen_abi::ring::SharedRingIndices;
use xen_abi::XEN_PAGE_SIZE;

/// Offset of the first slot in the shared ring page.
const SLOTS_AT: usize = 64;

/// The driver domain, the sender `a` (domid 5), the receiver `b` (6), and `a`'s four data
/// pages holding `payload`.
fn setup(plain: bool, payload: &[u8]) -> (Harness, TestFront, TestFront, Vec<HostGranted>) {
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
    b_opts.rx_buffers = 64;
    let a = h.guest(5, a_opts);
    let b = h.guest(6, b_opts);
    let pages: Vec<_> = (0..4)
        .map(|_| a.dom.grant_page(DD, Access::ReadOnly).expect("grant"))
        .collect();
    for p in &pages {
        p.write(0, payload).expect("in the page");
    }
    (h, a, b, pages)
}

/// The grant references of the sender's four data pages (the same in every run).
pub fn data_grefs() -> Vec<u32> {
    setup(false, &[]).3.iter().map(|p| p.gref()).collect()
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
    let payload = input.bytes(4096);

    let plain = flags & 1 != 0;
    let (mut h, mut a, mut b, _pages) = setup(plain, payload);

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
    let received = b.take_received();

    assert!(h.connected(&b), "the receiver is not affected");
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
    if !h.connected(&a) {
        assert!(h.error_node(&a).is_some(), "a disconnected vif says why");
        return;
    }
    if hostile_prod.is_some() {
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
