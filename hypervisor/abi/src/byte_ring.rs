//! Byte rings with free-running `u32` indices, as used by the xenstore ring
//! ([`crate::xs_wire::XenstoreDomainInterface`]) and the PV console
//! ([`crate::console::XenconsInterface`]).
//!
//! The producer writes at `prod & (size - 1)` and then advances `prod`; the consumer reads at
//! `cons & (size - 1)` and advances `cons`; both indices wrap at 2^32. The peer controls one
//! of the two indices, so `prod - cons > size` is possible on a hostile ring: it is reported
//! as [`RingIndexError`], never trusted.

use core::fmt;

/// A contiguous piece of the ring: `len` bytes starting at byte `offset`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Chunk {
    /// Offset into the ring buffer.
    pub offset: usize,
    /// Length in bytes (0: nothing to do now).
    pub len: usize,
}

/// The ring's indices or size are impossible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingIndexError {
    /// The ring size is not a non-zero power of two.
    BadSize {
        /// The size given.
        size: usize,
    },
    /// The producer is more than a ring ahead of the consumer (or behind it).
    Overflow {
        /// Consumer index.
        cons: u32,
        /// Producer index.
        prod: u32,
        /// Ring size.
        size: usize,
    },
}

impl fmt::Display for RingIndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadSize { size } => write!(f, "ring size {size} is not a power of two"),
            Self::Overflow { cons, prod, size } => write!(
                f,
                "bogus ring indices: prod {prod} - cons {cons} = {} exceeds ring size {size}",
                prod.wrapping_sub(cons)
            ),
        }
    }
}

/// Number of bytes in the ring, after checking `prod - cons <= size`.
pub fn used(size: usize, cons: u32, prod: u32) -> Result<usize, RingIndexError> {
    if size == 0 || !size.is_power_of_two() || size > 1 << 31 {
        return Err(RingIndexError::BadSize { size });
    }
    let used = prod.wrapping_sub(cons) as usize;
    if used > size {
        return Err(RingIndexError::Overflow { cons, prod, size });
    }
    Ok(used)
}

/// The contiguous space a producer can fill now, at `prod`.
pub fn write_chunk(size: usize, cons: u32, prod: u32) -> Result<Chunk, RingIndexError> {
    let free = size - used(size, cons, prod)?;
    let offset = prod as usize & (size - 1);
    Ok(Chunk {
        offset,
        len: free.min(size - offset),
    })
}

/// The contiguous data a consumer can take now, at `cons`.
pub fn read_chunk(size: usize, cons: u32, prod: u32) -> Result<Chunk, RingIndexError> {
    let used = used(size, cons, prod)?;
    let offset = cons as usize & (size - 1);
    Ok(Chunk {
        offset,
        len: used.min(size - offset),
    })
}

/// Copies as much of `data` as fits into `ring` (whose length is the ring size) at `prod`,
/// wrapping as needed. Returns the number of bytes written; advance `prod` by it (after a
/// write barrier) to publish them.
pub fn write(ring: &mut [u8], cons: u32, prod: u32, data: &[u8]) -> Result<usize, RingIndexError> {
    let mut done = 0;
    while done < data.len() {
        let chunk = write_chunk(ring.len(), cons, prod.wrapping_add(done as u32))?;
        if chunk.len == 0 {
            break;
        }
        let n = chunk.len.min(data.len() - done);
        ring[chunk.offset..chunk.offset + n].copy_from_slice(&data[done..done + n]);
        done += n;
    }
    Ok(done)
}

/// Copies as many bytes as are available (up to `out.len()`) from `ring` at `cons`. Returns
/// the number read; advance `cons` by it (after a full barrier) to free the space.
pub fn read(ring: &[u8], cons: u32, prod: u32, out: &mut [u8]) -> Result<usize, RingIndexError> {
    let mut done = 0;
    while done < out.len() {
        let chunk = read_chunk(ring.len(), cons.wrapping_add(done as u32), prod)?;
        if chunk.len == 0 {
            break;
        }
        let n = chunk.len.min(out.len() - done);
        out[done..done + n].copy_from_slice(&ring[chunk.offset..chunk.offset + n]);
        done += n;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_wrap_and_fill() {
        assert_eq!(
            write_chunk(1024, 0, 0),
            Ok(Chunk {
                offset: 0,
                len: 1024
            })
        );
        assert_eq!(write_chunk(1024, 0, 1024), Ok(Chunk { offset: 0, len: 0 }));
        assert_eq!(
            write_chunk(1024, 1000, 1020),
            Ok(Chunk {
                offset: 1020,
                len: 4
            })
        );
        assert_eq!(
            read_chunk(1024, 1000, 1020),
            Ok(Chunk {
                offset: 1000,
                len: 20
            })
        );
        assert_eq!(
            read_chunk(1024, 1020, 1030),
            Ok(Chunk {
                offset: 1020,
                len: 4
            })
        );
        assert_eq!(read_chunk(1024, 7, 7), Ok(Chunk { offset: 7, len: 0 }));
    }

    #[test]
    fn indices_wrap_at_u32_max() {
        let cons = u32::MAX - 5;
        let prod = cons.wrapping_add(10);
        assert_eq!(used(1024, cons, prod), Ok(10));
        assert_eq!(
            read_chunk(1024, cons, prod),
            Ok(Chunk {
                offset: 1018,
                len: 6
            })
        );
        assert_eq!(
            write_chunk(1024, cons, prod),
            Ok(Chunk {
                offset: 4,
                len: 1014
            })
        );
    }

    #[test]
    fn bogus_indices_are_errors() {
        assert_eq!(
            used(1024, 0, 1025),
            Err(RingIndexError::Overflow {
                cons: 0,
                prod: 1025,
                size: 1024
            })
        );
        // Producer behind the consumer.
        assert!(read_chunk(1024, 10, 9).is_err());
        assert!(write_chunk(1024, 10, 9).is_err());
        assert_eq!(
            used(1000, 0, 0),
            Err(RingIndexError::BadSize { size: 1000 })
        );
        assert_eq!(used(0, 0, 0), Err(RingIndexError::BadSize { size: 0 }));
    }

    #[test]
    fn copy_round_trip_across_the_end() {
        let mut ring = [0u8; 16];
        let start = u32::MAX - 3; // offset 12, indices wrap during the copy
        let data: std::vec::Vec<u8> = (0..20).collect();
        let written = write(&mut ring, start, start, &data).unwrap();
        assert_eq!(written, 16);
        let prod = start.wrapping_add(16);
        assert_eq!(write(&mut ring, start, prod, &data), Ok(0), "full");
        let mut out = [0u8; 10];
        assert_eq!(read(&ring, start, prod, &mut out), Ok(10));
        assert_eq!(out, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let mut rest = [0u8; 32];
        assert_eq!(read(&ring, start.wrapping_add(10), prod, &mut rest), Ok(6));
        assert_eq!(&rest[..6], &[10, 11, 12, 13, 14, 15]);
        assert!(read(&ring, 0, 100, &mut rest).is_err());
    }
}
