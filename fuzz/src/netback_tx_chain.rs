//! netback's TX slot chains and netif ring entries.
//!
//! netback's TX slot chains ([`netback::tx_chain::read_chain`]) and the netif ring entries
//! ([`netback::wire`]): the input is a TX ring's slots, 12 bytes each, read packet after
//! packet as the backend reads them.
//!
//! Asserts: every slot is taken exactly once and accounted for (an id to answer or an
//! extra-info slot), a well-formed packet's pieces add up to its length and stay in their
//! pages, no packet has more than `MAX_SLOTS` data slots; a truncated chain reports the slots
//! it took. Every slot also round-trips as a request, an extra-info segment and an RX
//! response: parse → emit → parse gives the same value, and emit keeps what parse read.

use netback::frame::ETH_HLEN;
use netback::tx_chain::{read_chain, ChainFatal, SlotSource, MAX_SLOTS};
use netback::wire::{ExtraRepr, RxResponseRepr, TxRequestRepr};
use xen_abi::netif::{NetifExtraInfo, NetifRxResponse, NetifTxRequest};
use xen_abi::{WireStruct, XEN_PAGE_SIZE};

/// The ring's produced slots, taken in order.
struct Slots {
    slots: Vec<[u8; 12]>,
    pos: usize,
}

impl Slots {
    fn next(&mut self) -> Result<[u8; 12], ChainFatal> {
        let s = *self
            .slots
            .get(self.pos)
            .ok_or(ChainFatal::Truncated { taken: 0 })?;
        self.pos += 1;
        Ok(s)
    }
}

impl SlotSource for Slots {
    fn remaining(&self) -> u32 {
        (self.slots.len() - self.pos) as u32
    }
    fn take_request(&mut self) -> Result<NetifTxRequest, ChainFatal> {
        Ok(NetifTxRequest::read_from(&self.next()?).expect("12 bytes"))
    }
    fn take_extra(&mut self) -> Result<NetifExtraInfo, ChainFatal> {
        Ok(NetifExtraInfo::read_from(&self.next()?).expect("12 bytes"))
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let slots: Vec<[u8; 12]> = data
        .chunks(12)
        .map(|c| {
            let mut s = [0u8; 12];
            s[..c.len()].copy_from_slice(c);
            s
        })
        .collect();
    for s in &slots {
        round_trips(s);
    }
    let mut src = Slots { slots, pos: 0 };
    while src.remaining() > 0 {
        let before = src.pos;
        match read_chain(&mut src) {
            Ok(chain) => {
                let taken = src.pos - before;
                assert_eq!(
                    chain.ids.len() + chain.extras,
                    taken,
                    "every slot answered once"
                );
                assert!(!chain.ids.is_empty(), "the first slot is answered");
                if let Ok(p) = &chain.packet {
                    let sum: usize = p.pieces.iter().map(|x| usize::from(x.len)).sum();
                    assert_eq!(sum, p.len, "pieces add up to the packet");
                    assert!(p.len >= ETH_HLEN && p.len <= usize::from(u16::MAX));
                    assert!(p.pieces.len() <= MAX_SLOTS && p.pieces.len() == chain.ids.len());
                    for x in &p.pieces {
                        assert!(
                            usize::from(x.offset) + usize::from(x.len) <= XEN_PAGE_SIZE,
                            "piece {x:?} leaves its page"
                        );
                    }
                }
            }
            Err(ChainFatal::Truncated { taken }) => {
                assert_eq!(taken, src.pos - before, "truncation counts what it took");
                assert_eq!(src.remaining(), 0, "only the end truncates a chain");
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
}

/// parse → emit → parse of one slot in each of the forms it can take.
fn round_trips(s: &[u8; 12]) {
    let raw = NetifTxRequest::read_from(s).expect("12 bytes");
    let req = TxRequestRepr::parse(&raw);
    let emitted = req.emit();
    assert_eq!(TxRequestRepr::parse(&emitted), req);
    assert_eq!(
        (emitted.gref, emitted.offset, emitted.id, emitted.size),
        (raw.gref, raw.offset, raw.id, raw.size)
    );
    assert_eq!(
        emitted.flags,
        raw.flags & 0x000f,
        "known flags kept, others dropped"
    );

    let raw = NetifExtraInfo::read_from(s).expect("12 bytes");
    if let Ok(extra) = ExtraRepr::parse(&raw) {
        assert_eq!(ExtraRepr::parse(&extra.emit()), Ok(extra));
        assert_eq!(extra.more, ExtraRepr::raw_more(&raw));
    }

    let raw = NetifRxResponse::read_from(s).expect("8 bytes");
    if let Ok(rsp) = RxResponseRepr::parse(&raw) {
        assert_eq!(RxResponseRepr::parse(&rsp.emit()), Ok(rsp));
        assert!(rsp.status < 0 || usize::from(rsp.offset) + rsp.status as usize <= XEN_PAGE_SIZE);
    }
}
