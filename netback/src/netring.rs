//! The backend end of a netif ring, with slots of more than one type.
//!
//! `minios::ring::BackChannel` types every request slot the same; a netif TX ring interleaves
//! requests and extra-info segments, and an RX ring's responses include extra-info segments.
//! [`NetBackRing`] keeps `minios`' guarantees — each slot copied out of shared memory once,
//! each response written whole, producer indices checked against overflow — and lets the
//! caller say what type each slot holds.

use alloc::format;

use minios::platform::SharedMem;
use minios::ring::{RingAccessError, SharedRing};
use xen_abi::netif::{NetifExtraInfo, NetifTxRequest};
use xen_abi::ring::{BackRing, RingError, SharedRingIndices};
use xen_abi::WireStruct;

use crate::tx_chain::{ChainFatal, SlotSource};

/// A netif back ring over a mapped page.
#[derive(Debug)]
pub struct NetBackRing<M> {
    ring: SharedRing<M>,
    back: BackRing,
}

impl<M: SharedMem> NetBackRing<M> {
    /// Attaches to the ring the frontend initialised in `mem`, with `entry_size`-byte slots.
    pub fn new(mem: M, entry_size: usize) -> Result<Self, RingAccessError> {
        let ring = SharedRing::new(mem, entry_size)?;
        let back = BackRing::new(ring.nr_ents())?;
        Ok(Self { ring, back })
    }

    /// Number of slots.
    pub fn size(&self) -> u32 {
        self.ring.nr_ents()
    }

    /// Requests produced and not yet taken; an error if the frontend's index is impossible.
    pub fn unconsumed(&self) -> Result<u32, RingAccessError> {
        Ok(self.back.unconsumed_requests(&self.ring)?)
    }

    /// Where the frontend's request index stands (taken plus unconsumed requests); an error
    /// if its index is impossible.
    pub fn produced(&self) -> Result<u32, RingAccessError> {
        Ok(self.back.req_cons().wrapping_add(self.unconsumed()?))
    }

    /// Takes the next slot as a `T`, copied out once. Fails if none is available.
    pub fn take<T: WireStruct>(&mut self) -> Result<T, RingAccessError> {
        match self.back.next_request(&self.ring)? {
            Some(idx) => self.ring.read_entry(idx),
            None => Err(RingAccessError::Ring(RingError::NoOutstandingRequest)),
        }
    }

    /// Writes the next response slot (whole) as `value`; published by [`push`](Self::push).
    pub fn respond<T: WireStruct>(&mut self, value: &T) -> Result<(), RingAccessError> {
        let idx = self.back.next_response_slot()?;
        self.ring.write_entry(idx, value)
    }

    /// Publishes the responses written; returns whether the frontend wants a notification.
    pub fn push(&mut self) -> bool {
        self.back.push_responses(&self.ring)
    }

    /// Before going idle: asks for a notification at the next request and returns whether
    /// one arrived meanwhile (`RING_FINAL_CHECK_FOR_REQUESTS`).
    pub fn final_check(&mut self) -> Result<bool, RingAccessError> {
        Ok(self.back.final_check_for_requests(&self.ring)?)
    }

    /// Asks to be notified once `n` more requests than taken so far are available (an RX
    /// ring waiting for enough buffers for its next packet), then returns how many are
    /// available now (they may have arrived before the request was visible).
    pub fn want_requests(&mut self, n: u32) -> Result<u32, RingAccessError> {
        self.ring
            .store_req_event(self.back.req_cons().wrapping_add(n.max(1)));
        self.ring.full_barrier();
        self.unconsumed()
    }

    /// Requests taken and not yet answered.
    pub fn in_flight(&self) -> u32 {
        self.back.in_flight()
    }
}

impl<M: SharedMem> SlotSource for NetBackRing<M> {
    fn remaining(&self) -> u32 {
        self.unconsumed().unwrap_or(0)
    }
    fn take_request(&mut self) -> Result<NetifTxRequest, ChainFatal> {
        self.take().map_err(|e| ChainFatal::Ring(format!("{e}")))
    }
    fn take_extra(&mut self) -> Result<NetifExtraInfo, ChainFatal> {
        self.take().map_err(|e| ChainFatal::Ring(format!("{e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minios::host::World;
    use minios::platform::{Access, GrantedPage, Grants};
    use minios::ring::SharedRing;
    use xen_abi::netif::{NetifTxResponse, NET_TX_ENTRY_SIZE};
    use xen_abi::ring::FrontRing;

    #[test]
    fn mixed_slots_and_events() {
        let world = World::new();
        let be = world.create_domain(1, "dd");
        let fe = world.create_domain(5, "guest");
        let page = fe.grant_page(1, Access::ReadWrite).unwrap();
        let gref = page.gref();
        let front_ring = SharedRing::new(page, NET_TX_ENTRY_SIZE).unwrap();
        front_ring.init().unwrap();
        let mut front = FrontRing::new(front_ring.nr_ents()).unwrap();
        let req = NetifTxRequest {
            gref: 9,
            offset: 0,
            flags: 8,
            id: 1,
            size: 100,
        };
        let idx = front.next_request_slot().unwrap();
        front_ring.write_entry(idx, &req).unwrap();
        let idx = front.next_request_slot().unwrap();
        front_ring
            .write_entry(idx, &NetifExtraInfo::gso(1448, 1, 0))
            .unwrap();
        assert!(front.push_requests(&front_ring));

        let mut back = NetBackRing::new(
            be.map(5, gref, Access::ReadWrite).unwrap(),
            NET_TX_ENTRY_SIZE,
        )
        .unwrap();
        assert_eq!(back.size(), 256);
        assert_eq!(back.unconsumed(), Ok(2));
        assert_eq!(back.take::<NetifTxRequest>().unwrap(), req);
        assert_eq!(
            back.take::<NetifExtraInfo>().unwrap(),
            NetifExtraInfo::gso(1448, 1, 0)
        );
        assert!(back.take::<NetifTxRequest>().is_err());
        back.respond(&NetifTxResponse { id: 1, status: 0 }).unwrap();
        back.respond(&NetifTxResponse { id: 0, status: 1 }).unwrap();
        assert!(back.respond(&NetifTxResponse::default()).is_err());
        assert!(back.push(), "rsp_event starts at 1");
        assert_eq!(back.want_requests(3), Ok(0));
        assert_eq!(front_ring.load_req_event(), 5);
        assert!(!back.final_check().unwrap());
        assert_eq!(front_ring.load_req_event(), 3);
        // A frontend claiming more requests than fit is refused.
        front_ring.store_req_prod(2 + 257);
        assert!(back.unconsumed().is_err());
    }
}
