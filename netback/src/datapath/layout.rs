//! The receiver's slot layout of a direct packet (`tx.rs`): the sender's own or full pages,
//! derived from the packet whenever it is needed rather than stored with it.

use xen_abi::XEN_PAGE_SIZE;

use super::rx::data_slots;
use crate::tx_chain::{Piece, TxPacket};

/// Most data slots of a packet copied directly (Linux's `MAX_SKB_FRAGS` with 4 KiB pages);
/// longer chains are re-laid into full pages through our memory.
pub const DIRECT_MAX_SLOTS: usize = 17;

/// Most receiver buffers a direct packet takes: its data slots and a GSO extra slot (a
/// re-laid packet takes at most 16 data slots: packets are at most 65 535 bytes).
pub const DIRECT_MAX_BUFFERS: usize = DIRECT_MAX_SLOTS + 1;

/// Where a piece of a direct packet goes in a receiver's buffer: offset and length (one
/// per receiver ring slot; a "slot" itself is always a ring entry).
pub(super) type BufSpan = (u16, u16);

/// How a direct packet is laid out in its receiver's buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    /// The sender's own: one slot per non-empty piece, at the same offset (one copy per
    /// slot).
    Sender,
    /// Full pages from offset 0, as a queued packet would be.
    Pages,
}

impl Layout {
    /// The layout for `p`, whose headers take `headers` bytes: the sender's own when netfront
    /// handles it well (at most [`DIRECT_MAX_SLOTS`], headers in the first), else full pages.
    pub(super) fn of(p: &TxPacket, headers: usize) -> Self {
        let data = pieces(p).count();
        let first = pieces(p).next().map_or(0, |piece| usize::from(piece.len));
        if data <= DIRECT_MAX_SLOTS && first >= headers.min(p.len) {
            Layout::Sender
        } else {
            Layout::Pages
        }
    }

    /// The receiver's data slots it takes.
    pub(super) fn slots(self, p: &TxPacket) -> usize {
        match self {
            Layout::Sender => pieces(p).count(),
            Layout::Pages => data_slots(p.len),
        }
    }

    /// Each receiver data slot's span, in order.
    pub(super) fn spans(self, p: &TxPacket) -> Spans<'_> {
        match self {
            Layout::Sender => Spans::Sender(p.pieces.iter()),
            Layout::Pages => Spans::Pages { left: p.len },
        }
    }
}

/// The spans of a [`Layout`], one per receiver data slot.
pub(super) enum Spans<'a> {
    /// The sender's non-empty pieces.
    Sender(core::slice::Iter<'a, Piece>),
    /// Full pages until `left` bytes are laid out (at least one slot).
    Pages {
        /// Bytes not laid out yet (`usize::MAX`: done).
        left: usize,
    },
}

impl Iterator for Spans<'_> {
    type Item = BufSpan;

    #[inline]
    fn next(&mut self) -> Option<BufSpan> {
        match self {
            Spans::Sender(pieces) => pieces
                .find(|piece| piece.len > 0)
                .map(|piece| (piece.offset, piece.len)),
            Spans::Pages { left } => {
                if *left == usize::MAX {
                    return None;
                }
                let len = (*left).min(XEN_PAGE_SIZE);
                *left -= len;
                if *left == 0 {
                    *left = usize::MAX;
                }
                Some((0, len as u16))
            }
        }
    }
}

/// Non-empty pieces of a packet, in order.
pub(super) fn pieces(p: &TxPacket) -> impl Iterator<Item = &Piece> {
    p.pieces.iter().filter(|piece| piece.len > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx_chain::Pieces;
    use alloc::vec::Vec;

    fn packet(pieces: &[(u16, u16)]) -> TxPacket {
        let pieces: Vec<Piece> = pieces
            .iter()
            .map(|&(offset, len)| Piece {
                gref: 1,
                offset,
                len,
            })
            .collect();
        TxPacket {
            len: pieces.iter().map(|p| usize::from(p.len)).sum(),
            pieces: Pieces::from_slice(&pieces).unwrap(),
            csum_blank: false,
            data_validated: false,
            gso: None,
        }
    }

    fn spans(l: Layout, p: &TxPacket) -> Vec<BufSpan> {
        let s: Vec<BufSpan> = l.spans(p).collect();
        assert_eq!(s.len(), l.slots(p));
        s
    }

    #[test]
    fn the_senders_layout_when_netfront_takes_it() {
        let p = packet(&[(100, 60)]);
        assert_eq!(Layout::of(&p, 42), Layout::Sender);
        assert_eq!(spans(Layout::Sender, &p), [(100, 60)]);
        // Empty pieces take no slot.
        let p = packet(&[(0, 54), (7, 0), (10, 1000)]);
        assert_eq!(Layout::of(&p, 54), Layout::Sender);
        assert_eq!(spans(Layout::Sender, &p), [(0, 54), (10, 1000)]);
    }

    #[test]
    fn full_pages_otherwise() {
        // Headers not in the first piece.
        let p = packet(&[(0, 20), (0, 4096), (0, 100)]);
        assert_eq!(Layout::of(&p, 54), Layout::Pages);
        assert_eq!(spans(Layout::Pages, &p), [(0, 4096), (0, 120)]);
        // More pieces than netfront takes.
        let many: Vec<(u16, u16)> = (0..18).map(|i| (i * 8, 100)).collect();
        let p = packet(&many);
        assert_eq!(Layout::of(&p, 54), Layout::Pages);
        assert_eq!(spans(Layout::Pages, &p), [(0, 1800)]);
        // The most a packet takes: 16 pages.
        let p = packet(&[(0, 4096); 16]);
        assert_eq!(Layout::Pages.slots(&p), 16);
        assert!(Layout::Pages.slots(&p) < DIRECT_MAX_BUFFERS);
    }
}
