//! Vectors the data path keeps from one pass to the next, so that a busy pass reuses the
//! room of the last one instead of allocating (and growing) its vectors again.
//!
//! What is kept, and its bound (netdd runs in 16 MiB, or 4): the TX pass's two packet
//! vectors (the carried batch and a spare, see `tx.rs`) with room for at most
//! [`KEEP_PACKETS`] packets each, its per-packet flags (as many), and the order of the vifs
//! (one port id per vif attached). Beyond that, a pass still allocates what it needs, and
//! gives the excess back at its end: [`KeptMemory::bytes`] stays under
//! [`KEEP_BYTES_MAX`] whatever the load was (host test `kept_memory_is_bounded`).
//!
//! Every time one of these vectors must grow, [`KeptMemory::grows`] counts it: at a steady
//! load it stays put (host test `busy_passes_reuse_the_kept_vectors`).

use alloc::vec::Vec;

/// Packets whose room each kept TX vector keeps (two busy senders' default `tx_batch`).
pub const KEEP_PACKETS: usize = 128;

/// Most bytes the kept vectors hold between passes, vifs' order aside (4 bytes per vif).
pub const KEEP_BYTES_MAX: usize = 192 * 1024;

/// Memory the data path keeps between passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeptMemory {
    /// Bytes of room held by the kept vectors.
    pub bytes: usize,
    /// Times a kept vector had to grow (allocate) during a pass.
    pub grows: u64,
}

/// Appends `x`, counting in `grows` if `v` has to grow for it.
pub(super) fn push<T>(v: &mut Vec<T>, x: T, grows: &mut u64) {
    if v.len() == v.capacity() {
        *grows += 1;
    }
    v.push(x);
}

/// Appends what `items` yields, counting in `grows` if `v` has to grow for it.
pub(super) fn extend<T>(v: &mut Vec<T>, items: impl ExactSizeIterator<Item = T>, grows: &mut u64) {
    if v.capacity() - v.len() < items.len() {
        *grows += 1;
    }
    v.extend(items);
}

/// Makes `v` `n` copies of `x`, counting in `grows` if it has to grow for them.
pub(super) fn refill<T: Clone>(v: &mut Vec<T>, n: usize, x: T, grows: &mut u64) {
    v.clear();
    if v.capacity() < n {
        *grows += 1;
    }
    v.resize(n, x);
}

/// `v` with its room trimmed to [`KEEP_PACKETS`] (never below what it holds).
pub(super) fn trimmed<T>(mut v: Vec<T>) -> Vec<T> {
    if v.capacity() > KEEP_PACKETS {
        v.shrink_to(KEEP_PACKETS);
    }
    v
}

/// `v` emptied, with its room trimmed to [`KEEP_PACKETS`]: to keep for the next pass.
pub(super) fn emptied<T>(mut v: Vec<T>) -> Vec<T> {
    v.clear();
    trimmed(v)
}

/// Bytes of room `v` holds.
pub(super) fn bytes<T>(v: &Vec<T>) -> usize {
    v.capacity() * core::mem::size_of::<T>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_counted_and_room_is_trimmed() {
        let mut grows = 0;
        let mut v: Vec<u32> = Vec::new();
        for i in 0..200 {
            push(&mut v, i, &mut grows);
        }
        assert!(grows > 0);
        let v = emptied(v);
        assert!(v.is_empty() && v.capacity() <= KEEP_PACKETS && v.capacity() >= 100);
        // The next pass of up to KEEP_PACKETS fits in what was kept.
        let (mut v, before) = (v, grows);
        for i in 0..KEEP_PACKETS as u32 {
            push(&mut v, i, &mut grows);
        }
        refill(&mut v, KEEP_PACKETS, 7, &mut grows);
        extend(&mut v, 0..0, &mut grows);
        assert_eq!(grows, before, "no allocation within the kept room");
        // A vector holding more than the cap keeps what it holds.
        let mut big: Vec<u8> = Vec::with_capacity(4 * KEEP_PACKETS);
        big.resize(2 * KEEP_PACKETS, 0);
        assert!(trimmed(big).capacity() >= 2 * KEEP_PACKETS);
    }

    #[test]
    fn the_bound_covers_what_is_kept() {
        let packet = core::mem::size_of::<super::super::tx::TxPending>();
        let port = core::mem::size_of::<crate::switch::PortId>();
        // carry and spare, the flags, the vifs' order (up to KEEP_PACKETS vifs).
        let kept = 2 * KEEP_PACKETS * packet + KEEP_PACKETS * (1 + port);
        assert!(
            kept <= KEEP_BYTES_MAX,
            "{packet} bytes per packet: {kept} kept"
        );
    }
}
