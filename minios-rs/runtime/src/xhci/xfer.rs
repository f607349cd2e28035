//! Transfer descriptors: a transfer's TRBs on an endpoint's ring (xHCI 4.11), its buffer
//! pages, and how a transfer event ends it.
//!
//! Every TD ends with an Event Data TRB with interrupt-on-completion whose data is the TD's
//! id: its event carries the bytes moved in the whole data stage (EDTLA), so a short IN
//! needs no per-TRB events. A control TD is Setup, Data (+ Normal per further page), Event
//! Data, Status (interrupt on completion): it ends at the status event. Buffers are whole
//! pages handed over one TRB per page, so no machine contiguity is needed.
//!
//! An isochronous transfer is one TD per packet (xHCI 4.11.2.5): an Isoch TRB with Start
//! Isoch ASAP (the controller schedules each packet one service interval after the one
//! before), a Normal TRB for each further page the packet's bytes span, and an Event Data
//! TRB whose data is the transfer's id plus the packet's index, so each packet's event
//! carries its own byte count. A packet that fails ends with an event on the TRB that
//! failed instead; the transfer completes when every packet has ended.

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
    /// Isochronous: the packets and how each ended.
    pub iso: Option<Iso>,
}

/// An isochronous transfer's packets on the ring.
pub struct Iso {
    /// Each packet's offset and length in the buffer.
    pub packets: Vec<(usize, usize)>,
    /// Index in the TD's `trbs` of each packet's first TRB.
    pub first: Vec<usize>,
    /// How each packet ended (status, bytes), once it has.
    pub results: Vec<Option<(Status, usize)>>,
    /// The frame the transfer was queued in.
    pub frame: u16,
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

/// TRBs an isochronous transfer needs: per packet, a TRB per page its bytes touch (one when
/// empty) and its event data TRB.
pub fn iso_trbs_needed(packets: &[(usize, usize)]) -> usize {
    packets
        .iter()
        .map(|&(off, len)| pages_spanned(off, len) + 1)
        .sum()
}

/// Pages of the buffer that bytes `off..off + len` touch (at least one).
fn pages_spanned(off: usize, len: usize) -> usize {
    if len == 0 {
        1
    } else {
        (off + len - 1) / PAGE - off / PAGE + 1
    }
}

/// Transfer Burst Count and Transfer Last Burst Packet Count (xHCI 4.11.2.3) of a packet of
/// `len` bytes on an endpoint of `max_packet` bytes and `burst` extra packets per burst.
fn iso_burst(len: usize, max_packet: u16, burst: u8) -> (u8, u8) {
    let packets = len.div_ceil(usize::from(max_packet.max(1))).max(1);
    let per = usize::from(burst) + 1;
    let tbc = packets.div_ceil(per) - 1;
    let last = match packets % per {
        0 => per - 1,
        r => r - 1,
    };
    (tbc.min(3) as u8, last.min(15) as u8)
}

/// A Normal TRB for `len` bytes at `ptr` with TD Size `rest`, chained to the next TRB.
fn chained_normal(ptr: u64, len: usize, rest: u8) -> [u32; 4] {
    let mut n = transfer::Normal::new();
    n.set_data_buffer_pointer(ptr)
        .set_trb_transfer_length(len as u32)
        .set_td_size(rest)
        .set_chain_bit();
    n.into_raw()
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
            chained_normal(ptr, chunk, rest)
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
        iso: None,
    })
}

/// What an isochronous transfer puts on the ring.
pub struct IsoSpec<'a> {
    /// Device to host.
    pub is_in: bool,
    /// OUT data (the whole buffer).
    pub data: &'a [u8],
    /// IN: the buffer's bytes.
    pub in_len: usize,
    /// The packets (offset, length), each checked to lie within the buffer.
    pub packets: &'a [(usize, usize)],
    /// Endpoint's max packet size and extra packets per burst.
    pub max_packet: u16,
    /// Extra packets per service interval (high-bandwidth endpoints).
    pub burst: u8,
    /// The frame the transfer is queued in.
    pub frame: u16,
}

/// Puts an isochronous transfer on `ring` (the caller checked it fits: see
/// [`iso_trbs_needed`]); the packets' event data values are `id`, `id + 1`, ….
pub fn build_iso(ring: &mut Ring, spec: &IsoSpec<'_>, tag: u64, id: u64) -> Result<Td, String> {
    let len = if spec.is_in {
        spec.in_len
    } else {
        spec.data.len()
    };
    if spec
        .packets
        .iter()
        .any(|&(off, l)| off.checked_add(l).is_none_or(|end| end > len))
    {
        return Err(String::from("isochronous packet beyond its buffer"));
    }
    let buf = Mem::alloc(len.div_ceil(PAGE).max(1))?;
    if !spec.is_in {
        buf.write_bytes(0, spec.data);
    }
    let mut trbs = Vec::new();
    let mut first = Vec::with_capacity(spec.packets.len());
    for (k, &(off, plen)) in spec.packets.iter().enumerate() {
        first.push(trbs.len());
        let mut at = off;
        let end = off + plen;
        loop {
            let chunk = (end - at).min(PAGE - at % PAGE);
            let rest = td_size(end - at - chunk, spec.max_packet);
            let raw = if at == off {
                let (tbc, tlbpc) = iso_burst(plen, spec.max_packet, spec.burst);
                let mut t = transfer::Isoch::new();
                t.set_data_buffer_pointer(buf.maddr(at))
                    .set_trb_transfer_length(chunk as u32)
                    .set_td_size_or_tbc(rest)
                    .set_transfer_burst_count(tbc)
                    .set_transfer_last_burst_packet_count(tlbpc)
                    .set_start_isoch_asap()
                    .set_chain_bit();
                t.into_raw()
            } else {
                chained_normal(buf.maddr(at), chunk, rest)
            };
            let p = ring.push(raw);
            trbs.push((p.maddr, p.index, chunk));
            at += chunk;
            if at >= end {
                break;
            }
        }
        let mut e = transfer::EventData::new();
        e.set_event_data(id + k as u64)
            .set_interrupt_on_completion();
        let p = ring.push(e.into_raw());
        trbs.push((p.maddr, p.index, 0));
    }
    Ok(Td {
        tag,
        id,
        owner: Owner::Caller,
        is_in: spec.is_in,
        control: false,
        buf: Some(buf),
        len,
        trbs,
        end: ring.position(),
        deadline: None,
        actual: None,
        iso: Some(Iso {
            packets: spec.packets.to_vec(),
            first,
            results: alloc::vec![None; spec.packets.len()],
            frame: spec.frame,
        }),
    })
}

impl Td {
    /// Event data values this TD's Event Data TRBs carry: its id, and for an isochronous
    /// transfer one per packet from it on.
    pub fn names(&self, data: u64) -> bool {
        let n = self.iso.as_ref().map_or(1, |i| i.packets.len() as u64);
        data >= self.id && data - self.id < n
    }

    /// An isochronous transfer's event: the packet it ends (by its event data value, or
    /// the TRB that failed with `residual` bytes left) recorded; true once every packet
    /// has ended. Events for packets already ended are ignored.
    pub fn iso_event(
        &mut self,
        ptr: u64,
        ed: bool,
        residual_or_moved: usize,
        status: Status,
    ) -> bool {
        let id = self.id;
        let Some(iso) = self.iso.as_mut() else {
            return false;
        };
        let found = if ed {
            Some(((ptr - id) as usize, residual_or_moved))
        } else {
            self.trbs.iter().position(|t| t.0 == ptr).map(|at| {
                let k = iso.first.partition_point(|&f| f <= at).saturating_sub(1);
                let before: usize = self.trbs[iso.first[k]..at].iter().map(|t| t.2).sum();
                (
                    k,
                    before + self.trbs[at].2.saturating_sub(residual_or_moved),
                )
            })
        };
        if let Some((k, moved)) = found {
            if let Some(r @ None) = iso.results.get_mut(k) {
                let cap = iso.packets[k].1;
                *r = Some((status, moved.min(cap)));
            }
        }
        iso.results.iter().all(Option::is_some)
    }

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

    /// An isochronous IN TD as `build_iso` lays it out, without DMA memory: packets of 192
    /// bytes at 0 and 192, and one at 4000 that spans two pages (two data TRBs).
    fn iso_td() -> Td {
        let trbs = alloc::vec![
            (0x1000, 0, 192),
            (0x1010, 1, 0),
            (0x1020, 2, 192),
            (0x1030, 3, 0),
            (0x1040, 4, 96),
            (0x1050, 5, 96),
            (0x1060, 6, 0),
        ];
        Td {
            tag: 7,
            id: 100,
            owner: Owner::Caller,
            is_in: true,
            control: false,
            buf: None,
            len: 4192,
            trbs,
            end: (0x1070, true),
            deadline: None,
            actual: None,
            iso: Some(Iso {
                packets: alloc::vec![(0, 192), (192, 192), (4000, 192)],
                first: alloc::vec![0, 2, 4],
                results: alloc::vec![None; 3],
                frame: 5,
            }),
        }
    }

    #[test]
    fn isochronous_packets_end_by_their_event_data_or_their_failed_trb() {
        let mut td = iso_td();
        assert!(td.names(100) && td.names(102) && !td.names(103) && !td.names(99));
        // Packet 1 short: its event data event carries 100 bytes.
        assert!(!td.iso_event(101, true, 100, Status::Ok));
        // Packet 2 fails on its second data TRB with 50 of its 96 bytes left: 96 + 46 moved.
        assert!(!td.iso_event(0x1050, false, 50, Status::IoError));
        // A late event for a packet already ended changes nothing.
        assert!(!td.iso_event(102, true, 192, Status::Ok));
        // A device claiming more than the packet holds is cut to the packet.
        assert!(td.iso_event(100, true, 5000, Status::Ok));
        let r = &td.iso.as_ref().unwrap().results;
        assert_eq!(
            r.as_slice(),
            &[
                Some((Status::Ok, 192)),
                Some((Status::Ok, 100)),
                Some((Status::IoError, 142))
            ]
        );
        // A bulk TD answers only to its own id.
        let mut bulk = iso_td();
        bulk.iso = None;
        assert!(bulk.names(100) && !bulk.names(101));
        assert!(!bulk.iso_event(100, true, 1, Status::Ok));
    }

    #[test]
    fn isochronous_trbs_and_bursts() {
        // A packet inside a page: Isoch + event data; one crossing a page: one more.
        assert_eq!(iso_trbs_needed(&[(0, 192), (192, 192)]), 4);
        assert_eq!(iso_trbs_needed(&[(4000, 192)]), 3);
        assert_eq!(iso_trbs_needed(&[(0, 0)]), 2);
        assert_eq!(iso_trbs_needed(&[(4096, 4096)]), 2);
        // One full-speed packet: one burst of one.
        assert_eq!(iso_burst(192, 192, 0), (0, 0));
        // High bandwidth: 3 packets of 1024 per microframe, 2500 bytes = 3 packets.
        assert_eq!(iso_burst(2500, 1024, 2), (0, 2));
        assert_eq!(iso_burst(0, 1024, 2), (0, 0));
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
