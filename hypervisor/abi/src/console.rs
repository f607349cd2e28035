//! The PV console ring page (`io/console.h`): two byte rings, input (to the guest) and output
//! (from the guest). Use [`crate::byte_ring`] with the sizes below for the index arithmetic.

/// Size of the input ring.
pub const XENCONS_IN_SIZE: usize = 1024;
/// Size of the output ring.
pub const XENCONS_OUT_SIZE: usize = 2048;

/// The console ring page (`struct xencons_interface`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenconsInterface {
    /// Input ring: bytes typed at the console, produced by the backend.
    pub in_: [u8; XENCONS_IN_SIZE],
    /// Output ring: bytes the guest prints.
    pub out: [u8; XENCONS_OUT_SIZE],
    /// Input consumer index (guest).
    pub in_cons: u32,
    /// Input producer index (backend).
    pub in_prod: u32,
    /// Output consumer index (backend).
    pub out_cons: u32,
    /// Output producer index (guest).
    pub out_prod: u32,
}

/// Offset of input ring index `idx` (`MASK_XENCONS_IDX(idx, in)`).
pub const fn mask_in_idx(idx: u32) -> usize {
    idx as usize & (XENCONS_IN_SIZE - 1)
}

/// Offset of output ring index `idx` (`MASK_XENCONS_IDX(idx, out)`).
pub const fn mask_out_idx(idx: u32) -> usize {
    idx as usize & (XENCONS_OUT_SIZE - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::byte_ring;

    #[test]
    fn masks_and_chunks() {
        assert_eq!(mask_in_idx(1025), 1);
        assert_eq!(mask_out_idx(2049), 1);
        let chunk = byte_ring::write_chunk(XENCONS_OUT_SIZE, 0, 2040).unwrap();
        assert_eq!((chunk.offset, chunk.len), (2040, 8));
    }
}
