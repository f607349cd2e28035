//! A whole blkback driver domain whose guest's ring holds the input.
//!
//! A whole blkback driver domain on `minios::host` (the in-process Xen) with a guest whose
//! ring holds fuzzer bytes. The input: a flags byte (sector size 4096, read-only volume,
//! persistent grants), a slot count, that many 112-byte ring slots, then the contents of a
//! page the guest granted (what indirect requests point at). The guest has also granted two
//! data pages; the grant numbers are the same in every run (see the seeds).
//!
//! Asserts: either the device stays connected and every request gets exactly one response
//! with its id and (inner) operation, a known status, and every other byte of the response
//! slot zero (nothing the backend did not write), a write to a read-only volume never
//! succeeding; or the device is disconnected with a logged reason.

use crate::harness::blk::{Env, Front, FrontOpts, Vol, DD};
use crate::input::Input;
use minios::host::HostGranted;
use minios::platform::{Access, GrantedPage, Grants, SharedMem};
use xen_abi::blkif::{
    BLKIF_OP_INDIRECT, BLKIF_OP_WRITE, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
};

/// Slots in a one-page blkif ring.
const RING: usize = 32;
/// Offset of the first slot in the shared ring page.
const SLOTS_AT: usize = 64;
/// Bytes per slot.
const SLOT: usize = 112;

/// The driver domain with one volume, the guest's connected disk, and its three granted
/// pages (two for data, the third holding `page_bytes`).
fn setup(flags: u8, page_bytes: &[u8]) -> (Env, Front, Vec<HostGranted>) {
    let sector_size = if flags & 1 != 0 { 4096 } else { 512 };
    let read_only = flags & 2 != 0;
    let mut vol = Vol::new("victim", 1 << 20).sector_size(sector_size);
    if read_only {
        vol = vol.read_only();
    }
    let mut env = Env::new(&[vol]);
    let opts = FrontOpts {
        persistent: flags & 4 != 0,
        mode: if read_only { "r" } else { "w" },
        ..FrontOpts::default()
    };
    let front = Front::attach(&mut env, 5, 51712, "victim", opts);
    let pages: Vec<_> = (0..3)
        .map(|_| front.dom.grant_page(DD, Access::ReadWrite).expect("grant"))
        .collect();
    pages[2].write(0, page_bytes).expect("in the page");
    (env, front, pages)
}

/// The grant references of the guest's three pages (the same in every run).
pub fn page_grefs() -> Vec<u32> {
    setup(0, &[]).2.iter().map(|p| p.gref()).collect()
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let count = usize::from(input.u8()) % (RING + 1);
    let mut slots = Vec::with_capacity(count);
    for _ in 0..count {
        slots.push(blkback::wire::Slot(input.array()));
    }
    let page_bytes = input.bytes(4096);

    let (mut env, mut front, _pages) = setup(flags, page_bytes);
    let read_only = flags & 2 != 0;
    let ring_page = front.queues[0].ring.ring().mem().pages()[0].page().clone();

    for s in &slots {
        front.submit(0, s);
    }
    env.settle();
    let responses = front.responses(0);

    if env.be_key(&front.dev, "state").as_deref() != Some("4") {
        assert!(
            env.error_node(&front.dev).is_some(),
            "a device that is not connected says why"
        );
        return;
    }
    assert_eq!(responses.len(), slots.len(), "one response per request");
    let mut want: Vec<(u64, u8)> = slots.iter().map(expected).collect();
    let mut got: Vec<(u64, u8)> = responses.iter().map(|r| (r.id, r.operation)).collect();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want, "ids and operations echoed");
    for (i, r) in responses.iter().enumerate() {
        assert!(
            [BLKIF_RSP_OKAY, BLKIF_RSP_ERROR, BLKIF_RSP_EOPNOTSUPP].contains(&r.status),
            "{r:?}"
        );
        if read_only && r.operation == BLKIF_OP_WRITE {
            assert_ne!(r.status, BLKIF_RSP_OKAY, "a write to a read-only volume");
        }
        let mut raw = [0u8; SLOT];
        ring_page
            .read(SLOTS_AT + i * SLOT, &mut raw)
            .expect("in the page");
        assert_eq!(raw[9], 0, "response padding");
        assert!(
            raw[12..].iter().all(|&b| b == 0),
            "response slot {i} holds bytes the backend did not write: {raw:?}"
        );
    }
}

/// The id and operation a response to `slot` must carry.
fn expected(slot: &blkback::wire::Slot) -> (u64, u8) {
    let id = u64::from_le_bytes(slot.0[8..16].try_into().expect("8 bytes"));
    let op = if slot.0[0] == BLKIF_OP_INDIRECT {
        slot.0[1]
    } else {
        slot.0[0]
    };
    (id, op)
}
