//! TX slot chains: how the slots a frontend produced make up a packet, validated.
//!
//! A packet is a first slot (its `size` is the whole packet's), optionally followed by
//! extra-info slots (GSO parameters, chained with `XEN_NETIF_EXTRA_FLAG_MORE`), then data
//! slots while `NETTXF_more_data` is set. [`read_chain`] takes one packet's slots from a
//! [`SlotSource`] (each slot copied out of the ring once), checks every rule, and returns the
//! ids to answer plus either a [`TxPacket`] (grant, offset, length of each piece) or the
//! [`TxError`] that makes the packet an error response.
//!
//! Two outcomes: a malformed packet costs the frontend an error response for its slots
//! ([`TxError`]); a chain that cannot be delimited — it runs past the requests the frontend
//! produced, or the ring indices are corrupt — is a [`ChainFatal`] and disconnects the vif.
//!
//! No heap allocation for a well-formed chain: its ids and pieces are fixed-capacity lists
//! of [`MAX_SLOTS`] entries ([`SlotIds`], [`Pieces`]); only a chain longer than that — an
//! error — keeps its further ids on the heap.

use alloc::vec::Vec;
use core::fmt;

use xen_abi::netif::{NetifExtraInfo, NetifTxRequest, XEN_NETIF_NR_SLOTS_MIN};
use xen_abi::GrantRef;

use crate::frame::ETH_HLEN;
use crate::wire::{ExtraKind, ExtraRepr, Gso, TxRequestRepr, WireError};

/// Most data slots a packet may use (`XEN_NETIF_NR_SLOTS_MIN`, what Linux netback accepts).
pub const MAX_SLOTS: usize = XEN_NETIF_NR_SLOTS_MIN;

/// A packet's data pieces: at most [`MAX_SLOTS`], held inline.
pub type Pieces = heapless::Vec<Piece, MAX_SLOTS>;

/// The ids of a chain's data slots, first slot first, to answer each: the first
/// [`MAX_SLOTS`] inline; the rest of a longer chain (always [`TxError::TooManySlots`]) on the
/// heap, at most the TX ring's size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotIds {
    inline: heapless::Vec<u16, MAX_SLOTS>,
    spill: Vec<u16>,
}

impl SlotIds {
    /// Appends the next slot's id.
    pub fn push(&mut self, id: u16) {
        if let Err(id) = self.inline.push(id) {
            self.spill.push(id);
        }
    }

    /// Ids held (the chain's data slots).
    pub fn len(&self) -> usize {
        self.inline.len() + self.spill.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.inline.is_empty()
    }

    /// The ids in chain order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.inline.iter().chain(&self.spill).copied()
    }

    /// The ids in chain order, in two parts: the first [`MAX_SLOTS`], the rest.
    pub fn as_slices(&self) -> (&[u16], &[u16]) {
        (&self.inline, &self.spill)
    }

    /// Whether ids went to the heap (a chain longer than [`MAX_SLOTS`]).
    pub fn spilled(&self) -> bool {
        self.spill.capacity() > 0
    }
}

/// Where the slots of a chain come from: the TX ring (copying each slot out once).
pub trait SlotSource {
    /// Requests produced by the frontend and not yet taken.
    fn remaining(&self) -> u32;
    /// Takes the next slot as a TX request.
    fn take_request(&mut self) -> Result<NetifTxRequest, ChainFatal>;
    /// Takes the next slot as an extra-info segment.
    fn take_extra(&mut self) -> Result<NetifExtraInfo, ChainFatal>;
}

/// One piece of packet data in a frontend page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// The frontend's grant.
    pub gref: GrantRef,
    /// Offset in the page.
    pub offset: u16,
    /// Bytes (may be 0).
    pub len: u16,
}

/// A well-formed packet: its pieces in order and its offload flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxPacket {
    /// Data pieces; their lengths sum to `len`.
    pub pieces: Pieces,
    /// Total length.
    pub len: usize,
    /// `NETTXF_csum_blank`.
    pub csum_blank: bool,
    /// `NETTXF_data_validated`.
    pub data_validated: bool,
    /// GSO parameters from an extra-info slot.
    pub gso: Option<Gso>,
}

/// Why a packet is answered with `NETIF_RSP_ERROR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// Shorter than an Ethernet header.
    Runt {
        /// The packet's size.
        len: usize,
    },
    /// More data slots than [`MAX_SLOTS`].
    TooManySlots {
        /// Data slots in the chain.
        slots: usize,
    },
    /// A slot's data runs past the end of its page.
    CrossesPage {
        /// Slot index in the chain.
        slot: usize,
        /// Its offset.
        offset: u16,
        /// Its length.
        len: usize,
    },
    /// A later slot holds more than what is left of the packet's size.
    SlotTooBig {
        /// Slot index in the chain.
        slot: usize,
        /// Its size.
        size: u16,
        /// What was left.
        remaining: usize,
    },
    /// An extra-info slot is invalid.
    Extra(WireError),
    /// Reading the data failed (bad, revoked or unreadable grant).
    Copy,
}

impl fmt::Display for TxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TxError::Runt { len } => {
                write!(
                    f,
                    "packet of {len} bytes is shorter than an Ethernet header"
                )
            }
            TxError::TooManySlots { slots } => {
                write!(f, "tx slot chain of {slots} slots exceeds {MAX_SLOTS}")
            }
            TxError::CrossesPage { slot, offset, len } => write!(
                f,
                "tx slot {slot}: {len} bytes at offset {offset} cross the page boundary"
            ),
            TxError::SlotTooBig {
                slot,
                size,
                remaining,
            } => write!(
                f,
                "tx slot {slot}: size {size} exceeds the {remaining} bytes left of the packet"
            ),
            TxError::Extra(e) => write!(f, "{e}"),
            TxError::Copy => f.write_str("packet data unreadable (grant copy failed)"),
        }
    }
}

/// Why the TX ring cannot be used any more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainFatal {
    /// The chain continues past the requests the frontend produced.
    Truncated {
        /// Slots the chain had when the produced requests ran out.
        taken: usize,
    },
    /// The ring itself is broken (indices, memory).
    Ring(alloc::string::String),
}

impl fmt::Display for ChainFatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainFatal::Truncated { taken } => write!(
                f,
                "tx slot chain continues past the produced requests after {taken} slots"
            ),
            ChainFatal::Ring(e) => write!(f, "tx ring: {e}"),
        }
    }
}

/// One packet's slots, taken from the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// Ids of the data slots, to answer each (first slot first).
    pub ids: SlotIds,
    /// Extra-info slots, answered with `NETIF_RSP_NULL` each.
    pub extras: usize,
    /// The packet, or why it is an error.
    pub packet: Result<TxPacket, TxError>,
}

/// Records the first error of a chain (later slots are still taken and answered).
fn keep(e: TxError, error: &mut Option<TxError>) {
    error.get_or_insert(e);
}

/// Takes one packet's slots from `src` and validates them. The caller checked that at
/// least one request is available.
pub fn read_chain(src: &mut impl SlotSource) -> Result<Chain, ChainFatal> {
    let first = TxRequestRepr::parse(&src.take_request()?);
    let mut taken = 1;
    let mut ids = SlotIds::default();
    ids.push(first.id);
    let mut error: Option<TxError> = None;

    // Extra-info slots.
    let mut extras = 0;
    let mut gso = None;
    if first.extra_info {
        loop {
            if src.remaining() == 0 {
                return Err(ChainFatal::Truncated { taken });
            }
            let raw = src.take_extra()?;
            taken += 1;
            extras += 1;
            let more = ExtraRepr::raw_more(&raw);
            match ExtraRepr::parse(&raw) {
                Ok(ExtraRepr {
                    kind: ExtraKind::Gso(g),
                    ..
                }) => gso = Some(g),
                // Multicast control and hashes are not offered: accepted and ignored.
                Ok(_) => {}
                Err(e) => keep(TxError::Extra(e), &mut error),
            }
            if !more {
                break;
            }
        }
    }

    // Data slots: the first slot's own length is what the later ones leave of its size.
    let total = usize::from(first.size);
    let mut remaining = total;
    let mut pieces = Pieces::new();
    // The first of MAX_SLOTS: there is room.
    let _ = pieces.push(Piece {
        gref: first.gref,
        offset: first.offset,
        len: 0,
    });
    let mut more = first.more_data;
    while more {
        if src.remaining() == 0 {
            return Err(ChainFatal::Truncated { taken });
        }
        let slot = TxRequestRepr::parse(&src.take_request()?);
        taken += 1;
        ids.push(slot.id);
        more = slot.more_data;
        let index = pieces.len();
        let len = usize::from(slot.size);
        if len > remaining {
            keep(
                TxError::SlotTooBig {
                    slot: index,
                    size: slot.size,
                    remaining,
                },
                &mut error,
            );
            continue;
        }
        remaining -= len;
        if !slot.fits_page(len) {
            keep(
                TxError::CrossesPage {
                    slot: index,
                    offset: slot.offset,
                    len,
                },
                &mut error,
            );
        }
        // Beyond MAX_SLOTS the chain is an error (`TooManySlots` below): no more pieces kept.
        let _ = pieces.push(Piece {
            gref: slot.gref,
            offset: slot.offset,
            len: slot.size,
        });
    }
    pieces[0].len = remaining as u16;
    if !first.fits_page(remaining) {
        keep(
            TxError::CrossesPage {
                slot: 0,
                offset: first.offset,
                len: remaining,
            },
            &mut error,
        );
    }
    if ids.len() > MAX_SLOTS {
        // Reported before anything else: the most useful reason for such a chain.
        error = Some(TxError::TooManySlots { slots: ids.len() });
    }
    if total < ETH_HLEN {
        keep(TxError::Runt { len: total }, &mut error);
    }
    let packet = match error {
        Some(e) => Err(e),
        None => Ok(TxPacket {
            pieces,
            len: total,
            csum_blank: first.csum_blank,
            data_validated: first.data_validated,
            gso,
        }),
    };
    Ok(Chain {
        ids,
        extras,
        packet,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::GsoKind;
    use alloc::collections::VecDeque;
    use alloc::vec;
    use xen_abi::WireStruct;

    /// A slot as the ring holds it: 12 raw bytes (a request or an extra-info segment).
    #[derive(Default)]
    pub(crate) struct Slots(pub VecDeque<[u8; 12]>);

    impl Slots {
        pub(crate) fn req(&mut self, r: TxRequestRepr) -> &mut Self {
            let mut b = [0u8; 12];
            r.emit().write_to(&mut b).unwrap();
            self.0.push_back(b);
            self
        }
        pub(crate) fn extra(&mut self, e: ExtraRepr) -> &mut Self {
            let mut b = [0u8; 12];
            e.emit().write_to(&mut b).unwrap();
            self.0.push_back(b);
            self
        }
        pub(crate) fn raw(&mut self, b: [u8; 12]) -> &mut Self {
            self.0.push_back(b);
            self
        }
    }

    impl SlotSource for Slots {
        fn remaining(&self) -> u32 {
            self.0.len() as u32
        }
        fn take_request(&mut self) -> Result<NetifTxRequest, ChainFatal> {
            let b = self
                .0
                .pop_front()
                .ok_or(ChainFatal::Truncated { taken: 0 })?;
            Ok(NetifTxRequest::read_from(&b).unwrap())
        }
        fn take_extra(&mut self) -> Result<NetifExtraInfo, ChainFatal> {
            let b = self
                .0
                .pop_front()
                .ok_or(ChainFatal::Truncated { taken: 0 })?;
            Ok(NetifExtraInfo::read_from(&b).unwrap())
        }
    }

    /// A chain's ids as a list.
    fn ids(c: &Chain) -> Vec<u16> {
        c.ids.iter().collect()
    }

    pub(crate) fn slot(id: u16, gref: u32, offset: u16, size: u16, more: bool) -> TxRequestRepr {
        TxRequestRepr {
            gref,
            offset,
            size,
            id,
            csum_blank: false,
            data_validated: false,
            more_data: more,
            extra_info: false,
        }
    }

    #[test]
    fn single_slot_packet() {
        let mut s = Slots::default();
        s.req(slot(3, 10, 100, 60, false));
        let c = read_chain(&mut s).unwrap();
        assert_eq!(ids(&c), vec![3]);
        assert_eq!(c.extras, 0);
        let p = c.packet.unwrap();
        assert_eq!(p.len, 60);
        assert_eq!(
            p.pieces[..],
            [Piece {
                gref: 10,
                offset: 100,
                len: 60
            }]
        );
    }

    #[test]
    fn gso_chain_with_extra() {
        let mut s = Slots::default();
        let mut first = slot(1, 10, 0, 9000, true);
        first.extra_info = true;
        first.csum_blank = true;
        s.req(first);
        s.extra(ExtraRepr {
            kind: ExtraKind::Gso(Gso {
                kind: GsoKind::TcpV4,
                mss: 1448,
            }),
            more: false,
        });
        s.req(slot(2, 11, 0, 4096, true));
        s.req(slot(3, 12, 0, 4000, false));
        let c = read_chain(&mut s).unwrap();
        assert_eq!((ids(&c), c.extras), (vec![1, 2, 3], 1));
        let p = c.packet.unwrap();
        assert_eq!(p.pieces[0].len, 9000 - 8096);
        assert_eq!(
            p.gso,
            Some(Gso {
                kind: GsoKind::TcpV4,
                mss: 1448
            })
        );
        assert!(p.csum_blank);
    }

    #[test]
    fn slot_rules() {
        // Later slot larger than what is left.
        let mut s = Slots::default();
        s.req(slot(1, 10, 0, 100, true))
            .req(slot(2, 11, 0, 200, false));
        let c = read_chain(&mut s).unwrap();
        assert!(matches!(c.packet, Err(TxError::SlotTooBig { slot: 1, .. })));
        assert_eq!(ids(&c), vec![1, 2], "every slot is still answered");
        // Crossing the page.
        let mut s = Slots::default();
        s.req(slot(1, 10, 4000, 200, false));
        assert!(matches!(
            read_chain(&mut s).unwrap().packet,
            Err(TxError::CrossesPage { slot: 0, .. })
        ));
        let mut s = Slots::default();
        s.req(slot(1, 10, 0, 5000, true))
            .req(slot(2, 11, 4095, 2, false));
        assert!(matches!(
            read_chain(&mut s).unwrap().packet,
            Err(TxError::CrossesPage { slot: 1, .. })
        ));
        // Runts, including zero length.
        for len in [0, 1, 13] {
            let mut s = Slots::default();
            s.req(slot(1, 10, 0, len, false));
            assert_eq!(
                read_chain(&mut s).unwrap().packet,
                Err(TxError::Runt { len: len.into() })
            );
        }
    }

    #[test]
    fn slot_counts() {
        // 18 data slots: fine (a 60-byte packet spread thin, XSA-432).
        let mut s = Slots::default();
        s.req(slot(0, 10, 0, 60, true));
        for i in 1..18 {
            s.req(slot(i, 10, i * 8, 3, i != 17));
        }
        let c = read_chain(&mut s).unwrap();
        let p = c.packet.unwrap();
        assert!(!c.ids.spilled(), "18 ids: held inline");
        assert_eq!((p.pieces.len(), p.pieces[0].len), (18, 60 - 17 * 3));
        // 19: error, all 19 answered.
        let mut s = Slots::default();
        s.req(slot(0, 10, 0, 60, true));
        for i in 1..19 {
            s.req(slot(i, 10, 0, 1, i != 18));
        }
        let c = read_chain(&mut s).unwrap();
        assert_eq!(c.packet, Err(TxError::TooManySlots { slots: 19 }));
        assert_eq!(c.ids.len(), 19);
        assert!(c.ids.spilled());
        assert_eq!(
            ids(&c),
            (0..19).collect::<Vec<u16>>(),
            "all answered, in order"
        );
    }

    #[test]
    fn truncated_chains_are_fatal() {
        let mut s = Slots::default();
        s.req(slot(0, 10, 0, 100, true));
        assert_eq!(read_chain(&mut s), Err(ChainFatal::Truncated { taken: 1 }));
        let mut s = Slots::default();
        let mut first = slot(0, 10, 0, 100, false);
        first.extra_info = true;
        s.req(first);
        s.raw([1, 1, 0xa8, 5, 1, 0, 0, 0, 0, 0, 0, 0]); // GSO with MORE set, then nothing
        assert_eq!(read_chain(&mut s), Err(ChainFatal::Truncated { taken: 2 }));
    }

    #[test]
    fn bad_extras_are_errors_with_known_framing() {
        let mut s = Slots::default();
        let mut first = slot(5, 10, 0, 100, false);
        first.extra_info = true;
        s.req(first);
        s.raw([9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // unknown type, MORE
        s.raw([1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]); // GSO size 0
        s.req(slot(6, 10, 0, 60, false)); // the next packet
        let c = read_chain(&mut s).unwrap();
        assert_eq!(
            c.packet,
            Err(TxError::Extra(WireError::UnknownExtraType(9)))
        );
        assert_eq!((ids(&c), c.extras), (vec![5], 2));
        assert_eq!(ids(&read_chain(&mut s).unwrap()), vec![6]);
    }
}
