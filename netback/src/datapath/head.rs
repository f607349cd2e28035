//! A TX packet's head: its first bytes (at most [`HEAD_LEN`]) copied into our memory, for
//! the switch and the offload checks to decide on; held inline.

use core::ops::{Deref, DerefMut};

use super::tx::HEAD_LEN;

// The length is a byte.
const _: () = assert!(HEAD_LEN <= u8::MAX as usize);

/// A packet's first bytes; empty once the packet was answered (its data was unreadable).
pub(super) struct Head {
    buf: [u8; HEAD_LEN],
    len: u8,
}

impl Head {
    /// `len` zero bytes (at most [`HEAD_LEN`]), to copy the packet's first bytes into.
    pub(super) fn zeroed(len: usize) -> Self {
        Self {
            buf: [0; HEAD_LEN],
            len: len.min(HEAD_LEN) as u8,
        }
    }

    /// Empties it: the packet was answered.
    pub(super) fn clear(&mut self) {
        self.len = 0;
    }
}

impl Deref for Head {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl DerefMut for Head {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..usize::from(self.len)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_head_len_bytes_until_cleared() {
        let mut h = Head::zeroed(60);
        assert_eq!(&h[..], &[0u8; 60][..]);
        h[59] = 7;
        assert_eq!(h.last(), Some(&7));
        assert_eq!(Head::zeroed(5000).len(), HEAD_LEN);
        h.clear();
        assert!(h.is_empty());
    }
}
