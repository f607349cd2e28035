//! blkback's ring requests, indirect segments and responses.
//!
//! blkback's ring requests ([`blkback::wire`]): the input is a two-byte
//! `feature-max-indirect-segments`, one 112-byte ring slot, then the contents of indirect
//! pages.
//!
//! Asserts: a request that parses holds only valid segments (`first_sect <= last_sect < 8`,
//! never past the page), at most 11 inline or at most the advertised indirect maximum, with
//! the indirect pages it needs; a refusal echoes the (inner) operation and the id; indirect
//! page segments parse only when all are valid; a response is emitted whole (16 bytes, the
//! padding zero) and says what it was given.

use crate::input::Input;
use blkback::wire::{
    parse_indirect_segments, Request, Response, Segments, Slot, Status, SECTORS_PER_PAGE,
};
use xen_abi::blkif::{
    BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_INDIRECT,
};

/// Segments per indirect page (4096 / 8).
const SEGS_PER_PAGE: usize = 512;

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let max_indirect = input.u16();
    let slot = Slot(input.array());
    let id = u64::from_le_bytes(slot.0[8..16].try_into().expect("8 bytes"));
    match Request::parse(&slot, max_indirect) {
        Ok(req) => {
            assert_eq!(req.id(), id);
            if let Request::Rw(rw) = req {
                match rw.segments {
                    Segments::Direct { count, .. } => {
                        assert!(usize::from(count) <= BLKIF_MAX_SEGMENTS_PER_REQUEST);
                        assert!(!rw.indirect && rw.segments.indirect_pages().is_empty());
                        for s in rw.segments.direct() {
                            assert!(s.first_sect <= s.last_sect && s.last_sect < SECTORS_PER_PAGE);
                            assert!(s.offset() + s.len() <= 4096);
                        }
                    }
                    Segments::Indirect { count, .. } => {
                        assert!(rw.indirect && slot.0[0] == BLKIF_OP_INDIRECT);
                        let count = usize::from(count);
                        assert!(count >= 1 && count <= usize::from(max_indirect));
                        assert!(count <= BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST * SEGS_PER_PAGE);
                        assert_eq!(
                            rw.segments.indirect_pages().len(),
                            count.div_ceil(SEGS_PER_PAGE)
                        );
                        assert!(rw.segments.direct().is_empty());
                    }
                }
            }
        }
        Err(e) => {
            assert_eq!(e.id, id);
            let echoed = if slot.0[0] == BLKIF_OP_INDIRECT {
                slot.0[1]
            } else {
                slot.0[0]
            };
            assert_eq!(e.operation, echoed);
        }
    }

    let pages = input.rest();
    let whole = &pages[..pages.len() / 8 * 8];
    let mut out = Vec::new();
    match parse_indirect_segments(whole, 3, &mut out) {
        Ok(()) => {
            assert_eq!(out.len(), whole.len() / 8);
            for s in &out {
                assert!(s.first_sect <= s.last_sect && s.last_sect < SECTORS_PER_PAGE);
            }
        }
        Err(_) => assert!(out.len() < whole.len() / 8),
    }

    for status in [Status::Okay, Status::Error, Status::NotSupported] {
        let rsp = Response {
            id,
            operation: slot.0[0],
            status,
        };
        let mut buf = [0xaau8; 112];
        rsp.emit(&mut buf).expect("room");
        let mut want = [0u8; 16];
        want[..8].copy_from_slice(&id.to_le_bytes());
        want[8] = slot.0[0];
        want[10..12].copy_from_slice(&status.to_wire().to_le_bytes());
        assert_eq!(buf[..16], want, "every response byte written");
        assert!(
            buf[16..].iter().all(|&b| b == 0xaa),
            "nothing past the response"
        );
    }
}
