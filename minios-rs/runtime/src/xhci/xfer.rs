//! Transfer descriptors: a transfer's TRBs on an endpoint's ring (xHCI 4.11), its buffer
//! pages, and how a transfer event ends it.
//!
//! Every TD ends with an Event Data TRB with interrupt-on-completion whose data is the TD's
//! id: its event carries the bytes moved in the whole data stage (EDTLA), so a short IN
//! needs no per-TRB events. A control TD is Setup, Data (+ Normal per further page), Event
//! Data, Status (interrupt on completion): it ends at the status event. Buffers are whole
//! pages handed over one TRB per page, so no machine contiguity is needed.

use alloc::string::String;
use alloc::vec::Vec;
use xhci::ring::trb::event::CompletionCode;
use xhci::ring::trb::transfer;

use super::mem::{Mem, Ring, PAGE};
use super::Status;

/// What a TD is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A caller's transfer (completed as an event).
    Caller,
    /// The driver's own control transfer (waited for in place).
    Internal,
}

/// One transfer on a ring.
pub struct Td {
    /// The caller's tag (or the driver's for internal ones).
    pub tag: u64,
    /// The Event Data value that names this TD.
    pub id: u64,
    /// Whose.
    pub owner: Owner,
    /// Device to host.
    pub is_in: bool,
    /// A control transfer (ends at its status stage).
    pub control: bool,
    /// Buffer pages.
    pub buf: Option<Mem>,
    /// Bytes in the data stage.
    pub len: usize,
    /// Machine address, ring index and byte count of each TRB (0 bytes for non-data TRBs).
    pub trbs: Vec<(u64, usize, usize)>,
    /// Where the ring continues after this TD (for Set TR Dequeue) and its cycle.
    pub end: (u64, bool),
    /// When it fails if not finished.
    pub deadline: Option<u64>,
    /// Bytes the data stage moved, once known.
    pub actual: Option<usize>,
}

/// What to put on the ring.
pub struct Spec<'a> {
    /// Setup packet for control transfers.
    pub setup: Option<[u8; 8]>,
    /// Device to host.
    pub is_in: bool,
    /// OUT data.
    pub data: &'a [u8],
    /// IN bytes wanted.
    pub in_len: usize,
    /// Endpoint's max packet size (TD Size).
    pub max_packet: u16,
}

/// TRBs a transfer of `len` bytes needs: data pages (at least one for non-control), the
/// event data TRB, and setup and status for control.
pub fn trbs_needed(len: usize, control: bool) -> usize {
    let pages = len.div_ceil(PAGE);
    if control {
        2 + pages + usize::from(pages > 0)
    } else {
        pages.max(1) + 1
    }
}

fn td_size(remaining: usize, max_packet: u16) -> u8 {
    remaining.div_ceil(usize::from(max_packet.max(1))).min(31) as u8
}

/// Puts a transfer on `ring` (the caller checked it fits) and returns its TD.
pub fn build(
    ring: &mut Ring,
    spec: &Spec<'_>,
    tag: u64,
    id: u64,
    owner: Owner,
) -> Result<Td, String> {
    let len = if spec.is_in {
        spec.in_len
    } else {
        spec.data.len()
    };
    let buf = if len > 0 {
        let m = Mem::alloc(len.div_ceil(PAGE))?;
        if !spec.is_in {
            m.write_bytes(0, spec.data);
        }
        Some(m)
    } else {
        None
    };
    let mut trbs = Vec::new();
    let control = spec.setup.is_some();
    if let Some(setup) = spec.setup {
        let mut s = transfer::SetupStage::new();
        s.set_request_type(setup[0])
            .set_request(setup[1])
            .set_value(u16::from_le_bytes([setup[2], setup[3]]))
            .set_index(u16::from_le_bytes([setup[4], setup[5]]))
            .set_length(u16::from_le_bytes([setup[6], setup[7]]))
            .set_transfer_type(match (len, spec.is_in) {
                (0, _) => transfer::TransferType::No,
                (_, true) => transfer::TransferType::In,
                (_, false) => transfer::TransferType::Out,
            });
        let p = ring.push(s.into_raw());
        trbs.push((p.maddr, p.index, 0));
    }
    let pages = len.div_ceil(PAGE);
    for i in 0..pages.max(usize::from(!control)) {
        let chunk = len.saturating_sub(i * PAGE).min(PAGE);
        let ptr = buf.as_ref().map_or(0, |b| b.maddr(i * PAGE));
        let rest = td_size(len.saturating_sub(i * PAGE + chunk), spec.max_packet);
        let raw = if control && i == 0 {
            let mut d = transfer::DataStage::new();
            d.set_data_buffer_pointer(ptr)
                .set_trb_transfer_length(chunk as u32)
                .set_td_size(rest)
                .set_chain_bit()
                .set_direction(if spec.is_in {
                    transfer::Direction::In
                } else {
                    transfer::Direction::Out
                });
            d.into_raw()
        } else {
            let mut n = transfer::Normal::new();
            n.set_data_buffer_pointer(ptr)
                .set_trb_transfer_length(chunk as u32)
                .set_td_size(rest)
                .set_chain_bit();
            n.into_raw()
        };
        let p = ring.push(raw);
        trbs.push((p.maddr, p.index, chunk));
    }
    if !control || pages > 0 {
        let mut e = transfer::EventData::new();
        e.set_event_data(id).set_interrupt_on_completion();
        if control {
            e.set_chain_bit();
        }
        let p = ring.push(e.into_raw());
        trbs.push((p.maddr, p.index, 0));
    }
    if control {
        let mut s = transfer::StatusStage::new();
        // The status stage runs opposite to the data stage (IN when there is none).
        if len == 0 || !spec.is_in {
            s.set_direction();
        }
        s.set_interrupt_on_completion();
        let p = ring.push(s.into_raw());
        trbs.push((p.maddr, p.index, 0));
    }
    Ok(Td {
        tag,
        id,
        owner,
        is_in: spec.is_in,
        control,
        buf,
        len,
        trbs,
        end: ring.position(),
        deadline: None,
        actual: None,
    })
}

impl Td {
    /// Whether the TRB at `maddr` is one of this TD's.
    pub fn holds(&self, maddr: u64) -> bool {
        self.trbs.iter().any(|t| t.0 == maddr)
    }

    /// Whether the TRB at `maddr` is this control TD's status stage.
    pub fn is_status(&self, maddr: u64) -> bool {
        self.control && self.trbs.last().is_some_and(|t| t.0 == maddr)
    }

    /// Bytes moved when the transfer stopped on the TRB at `maddr` with `residual` bytes of
    /// it left (the TRBs before it are counted whole).
    pub fn moved_until(&self, maddr: u64, residual: usize) -> usize {
        let mut n = 0;
        for t in &self.trbs {
            if t.0 == maddr {
                return n + t.2.saturating_sub(residual);
            }
            n += t.2;
        }
        n
    }

    /// IN data: the first `actual` bytes of the buffer (at most the data stage's length).
    pub fn take_data(&self, actual: usize) -> Vec<u8> {
        let n = actual.min(self.len);
        let mut v = alloc::vec![0u8; n];
        if let Some(b) = &self.buf {
            b.read_bytes(0, &mut v);
        }
        v
    }
}

/// A completion code (xHCI 6.4.5) as a transfer status, and whether the endpoint is now
/// halted (stall, babble and transaction errors halt it; software must reset it).
pub fn status_of(code: u8) -> (Status, bool) {
    const SUCCESS: u8 = CompletionCode::Success as u8;
    const SHORT: u8 = CompletionCode::ShortPacket as u8;
    const STALL: u8 = CompletionCode::StallError as u8;
    const BABBLE: u8 = CompletionCode::BabbleDetectedError as u8;
    const TRANSACTION: u8 = CompletionCode::UsbTransactionError as u8;
    const SPLIT: u8 = CompletionCode::SplitTransactionError as u8;
    const STOPPED: u8 = CompletionCode::Stopped as u8;
    const STOPPED_INVALID: u8 = CompletionCode::StoppedLengthInvalid as u8;
    const STOPPED_SHORT: u8 = CompletionCode::StoppedShortPacket as u8;
    match code {
        SUCCESS | SHORT => (Status::Ok, false),
        STALL => (Status::Stall, true),
        BABBLE => (Status::Babble, true),
        TRANSACTION | SPLIT => (Status::IoError, true),
        STOPPED | STOPPED_INVALID | STOPPED_SHORT => (Status::Cancelled, false),
        _ => (Status::IoError, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_codes_map_to_statuses() {
        assert_eq!(status_of(1), (Status::Ok, false));
        assert_eq!(status_of(13), (Status::Ok, false));
        assert_eq!(status_of(6), (Status::Stall, true));
        assert_eq!(status_of(3), (Status::Babble, true));
        assert_eq!(status_of(4), (Status::IoError, true));
        assert_eq!(status_of(26), (Status::Cancelled, false));
        assert_eq!(status_of(2), (Status::IoError, false));
        assert_eq!(status_of(255), (Status::IoError, false));
    }

    #[test]
    fn trbs_per_transfer() {
        // Bulk: a TRB per page (one even when empty) and the event data TRB.
        assert_eq!(trbs_needed(0, false), 2);
        assert_eq!(trbs_needed(4096, false), 2);
        assert_eq!(trbs_needed(4097, false), 3);
        // Control: setup, status, and with data a TRB per page and the event data TRB.
        assert_eq!(trbs_needed(0, true), 2);
        assert_eq!(trbs_needed(18, true), 4);
        assert_eq!(trbs_needed(65536, true), 19);
        assert_eq!(td_size(0, 512), 0);
        assert_eq!(td_size(1024, 512), 2);
        assert_eq!(td_size(1 << 20, 512), 31);
    }
}
