//! A stream's event page: backend-produced events (`CUR_POS`) in a 63-slot ring the
//! frontend consumes.
//!
//! Our producer index is private; the frontend's `in_cons` is read (untrusted) only to
//! know whether a slot is free. Event ids are consecutive for the life of the connection
//! (Linux's `snd_xen_front` counts them from 0 at connect, across OPENs, and drops any
//! event whose id is not the next one), so an id is used only by an event that was
//! actually written: when the ring is full (a frontend that does not consume, or an
//! `in_cons` that makes no sense) the event is dropped and counted, never skipped in the
//! numbering. Each event is written whole, then `in_prod` is published.

use core::sync::atomic::{fence, Ordering};

use minios::platform::{MemError, SharedMem};
use xen_abi::sndif::{event_offset, XensndEvt, XENSND_IN_RING_LEN};
use xen_abi::WireStruct;

const IN_CONS: usize = 0;
const IN_PROD: usize = 4;

/// The backend end of an event page.
pub struct EventRing<M> {
    page: M,
    prod: u32,
    next_id: u16,
    /// Events dropped because the ring was full.
    pub dropped: u64,
}

impl<M: SharedMem> EventRing<M> {
    /// Attaches to a mapped event page; `in_prod` starts at 0 (as the frontend zeroed it).
    pub fn new(page: M) -> Self {
        Self {
            page,
            prod: 0,
            next_id: 0,
            dropped: 0,
        }
    }

    /// The id the next event gets.
    pub fn next_id(&self) -> u16 {
        self.next_id
    }

    /// Writes a `CUR_POS` event; returns whether it was written (the caller notifies).
    pub fn cur_pos(&mut self, position: u64) -> Result<bool, MemError> {
        let cons = self.page.load_u32(IN_CONS)?;
        let used = self.prod.wrapping_sub(cons);
        if used >= XENSND_IN_RING_LEN as u32 {
            self.dropped += 1;
            return Ok(false);
        }
        let evt = XensndEvt::cur_pos(self.next_id, position);
        let mut slot = [0u8; 64];
        // 64-byte struct into a 64-byte slot: cannot fail.
        let _ = evt.write_to(&mut slot);
        self.page.write(event_offset(self.prod), &slot)?;
        fence(Ordering::Release);
        self.prod = self.prod.wrapping_add(1);
        self.page.store_u32(IN_PROD, self.prod)?;
        self.next_id = self.next_id.wrapping_add(1);
        Ok(true)
    }
}
