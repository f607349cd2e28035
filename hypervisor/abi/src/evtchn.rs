//! The 2-level event channel ABI: pending/mask bitmaps in the shared info page, a per-vCPU
//! selector word, and the scan that finds the next port to handle.
//!
//! The upcall handler clears `evtchn_upcall_pending`, swaps `evtchn_pending_sel` with 0 and
//! then repeatedly calls [`next_pending_port`] with that selector, clearing each returned
//! port's pending bit (atomically) before handling it and continuing from `port + 1`. The
//! scan itself only reads, through [`EventWords`], so the runtime can back it with atomics in
//! the shared page and tests with plain arrays.

use crate::EvtchnPort;

/// Bits per pending/mask word (`xen_ulong_t` is 64 bits on x86_64).
pub const BITS_PER_EVTCHN_WORD: u32 = 64;

/// Number of ports of the 2-level ABI on 64-bit (`EVTCHN_2L_NR_CHANNELS`): 64 words of 64 bits.
pub const EVTCHN_2L_NR_CHANNELS: u32 = BITS_PER_EVTCHN_WORD * BITS_PER_EVTCHN_WORD;

/// Number of pending (and mask) words.
pub const EVTCHN_2L_NR_WORDS: usize = (EVTCHN_2L_NR_CHANNELS / BITS_PER_EVTCHN_WORD) as usize;

/// Index of the pending/mask word holding `port`.
pub const fn port_word(port: EvtchnPort) -> usize {
    (port / BITS_PER_EVTCHN_WORD) as usize
}

/// The bit of `port` within its word.
pub const fn port_bit(port: EvtchnPort) -> u64 {
    1 << (port % BITS_PER_EVTCHN_WORD)
}

/// Read access to the pending and mask bitmaps. Words beyond the bitmaps read as 0.
pub trait EventWords {
    /// Pending word `word` (`shared_info.evtchn_pending[word]`).
    fn pending(&self, word: usize) -> u64;
    /// Mask word `word` (`shared_info.evtchn_mask[word]`).
    fn mask(&self, word: usize) -> u64;
}

/// [`EventWords`] over plain slices, for tests and snapshots.
#[derive(Clone, Copy, Debug)]
pub struct SliceWords<'a> {
    /// Pending words.
    pub pending: &'a [u64],
    /// Mask words.
    pub mask: &'a [u64],
}

impl EventWords for SliceWords<'_> {
    fn pending(&self, word: usize) -> u64 {
        self.pending.get(word).copied().unwrap_or(0)
    }
    fn mask(&self, word: usize) -> u64 {
        self.mask.get(word).copied().unwrap_or(0)
    }
}

impl EventWords for crate::shared_info::SharedInfo {
    fn pending(&self, word: usize) -> u64 {
        self.evtchn_pending.get(word).copied().unwrap_or(0)
    }
    fn mask(&self, word: usize) -> u64 {
        self.evtchn_mask.get(word).copied().unwrap_or(0)
    }
}

/// The next port that is pending and not masked, in a word whose bit is set in `selector`,
/// scanning ports upwards from `from` and wrapping round once (so a busy low port cannot
/// starve the others when the caller passes `last + 1`). `None` if there is none.
pub fn next_pending_port<W: EventWords + ?Sized>(
    selector: u64,
    words: &W,
    from: EvtchnPort,
) -> Option<EvtchnPort> {
    let from = from % EVTCHN_2L_NR_CHANNELS;
    let start_word = port_word(from);
    let start_bit = from % BITS_PER_EVTCHN_WORD;
    // Visit the start word twice: first its bits >= start_bit, at the end its bits below.
    for step in 0..=EVTCHN_2L_NR_WORDS {
        let word = (start_word + step) % EVTCHN_2L_NR_WORDS;
        if selector & (1 << word) == 0 {
            continue;
        }
        let mut active = words.pending(word) & !words.mask(word);
        if step == 0 {
            active &= !0u64 << start_bit;
        } else if step == EVTCHN_2L_NR_WORDS {
            active &= !(!0u64 << start_bit);
        }
        if active != 0 {
            return Some(word as u32 * BITS_PER_EVTCHN_WORD + active.trailing_zeros());
        }
    }
    None
}

/// The selector bits whose words still hold pending unmasked ports: what remains to do.
pub fn active_selector<W: EventWords + ?Sized>(selector: u64, words: &W) -> u64 {
    (0..EVTCHN_2L_NR_WORDS)
        .filter(|&w| selector & (1 << w) != 0 && words.pending(w) & !words.mask(w) != 0)
        .fold(0, |acc, w| acc | (1 << w))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bitmaps {
        pending: [u64; 64],
        mask: [u64; 64],
    }

    impl Bitmaps {
        fn new() -> Self {
            Self {
                pending: [0; 64],
                mask: [0; 64],
            }
        }
        fn raise(&mut self, port: u32) -> u64 {
            self.pending[port_word(port)] |= port_bit(port);
            1 << port_word(port)
        }
        fn words(&self) -> SliceWords<'_> {
            SliceWords {
                pending: &self.pending,
                mask: &self.mask,
            }
        }
    }

    #[test]
    fn constants() {
        assert_eq!(EVTCHN_2L_NR_CHANNELS, 4096);
        assert_eq!(port_word(130), 2);
        assert_eq!(port_bit(130), 1 << 2);
    }

    #[test]
    fn finds_ports_in_order_and_skips_masked() {
        let mut b = Bitmaps::new();
        let sel = b.raise(3) | b.raise(70) | b.raise(4095) | b.raise(5);
        b.mask[0] |= port_bit(3);
        let w = b.words();
        assert_eq!(next_pending_port(sel, &w, 0), Some(5));
        assert_eq!(next_pending_port(sel, &w, 6), Some(70));
        assert_eq!(next_pending_port(sel, &w, 71), Some(4095));
        // Wraps round to the start word's lower bits.
        assert_eq!(next_pending_port(sel, &w, 4096), Some(5));
        assert_eq!(next_pending_port(sel, &w, 6 + 4096 * 3), Some(70));
    }

    #[test]
    fn selector_limits_the_scan() {
        let mut b = Bitmaps::new();
        b.raise(1);
        let sel = b.raise(200);
        assert_eq!(next_pending_port(sel, &b.words(), 0), Some(200));
        assert_eq!(next_pending_port(0, &b.words(), 0), None);
    }

    #[test]
    fn wraps_within_start_word() {
        let mut b = Bitmaps::new();
        let sel = b.raise(129) | b.raise(150);
        let w = b.words();
        assert_eq!(next_pending_port(sel, &w, 140), Some(150));
        assert_eq!(next_pending_port(sel, &w, 151), Some(129));
        assert_eq!(next_pending_port(sel, &w, 130), Some(150));
    }

    #[test]
    fn handler_loop_drains_everything() {
        let mut b = Bitmaps::new();
        let mut sel = 0;
        for port in [0, 63, 64, 1000, 2047, 4095] {
            sel |= b.raise(port);
        }
        let mut seen = std::vec::Vec::new();
        let mut from = 0;
        while let Some(port) = next_pending_port(sel, &b.words(), from) {
            b.pending[port_word(port)] &= !port_bit(port);
            seen.push(port);
            from = port + 1;
        }
        assert_eq!(seen, [0, 63, 64, 1000, 2047, 4095]);
        assert_eq!(active_selector(sel, &b.words()), 0);
    }

    #[test]
    fn active_selector_reports_remaining_words() {
        let mut b = Bitmaps::new();
        let sel = b.raise(10) | b.raise(300);
        b.mask[port_word(300)] = !0;
        assert_eq!(active_selector(sel, &b.words()), 1);
    }

    #[test]
    fn short_slices_read_as_zero() {
        let pending = [1u64];
        let w = SliceWords {
            pending: &pending,
            mask: &[],
        };
        assert_eq!(next_pending_port(!0, &w, 0), Some(0));
        assert_eq!(next_pending_port(!0, &w, 1), Some(0), "wrapped round");
        let none = SliceWords {
            pending: &[],
            mask: &[],
        };
        assert_eq!(next_pending_port(!0, &none, 0), None);
    }
}
