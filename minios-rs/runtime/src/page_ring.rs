//! One direction of a Xen byte ring (console `out`, xenstore `req`/`rsp`) inside a shared
//! page: copying bytes in or out in at most two chunks, then publishing the moved index with
//! one store. Index arithmetic and its checks are `xen_abi::byte_ring`'s; this adds the page.

use minios::platform::{MemError, SharedMem};
use xen_abi::byte_ring::{self, RingIndexError};

/// A ring access failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The other side's index is nonsense (more than a ring's worth apart from ours).
    Index(RingIndexError),
    /// The ring page could not be accessed.
    Mem(MemError),
}

impl From<RingIndexError> for RingError {
    fn from(e: RingIndexError) -> Self {
        RingError::Index(e)
    }
}

impl From<MemError> for RingError {
    fn from(e: MemError) -> Self {
        RingError::Mem(e)
    }
}

/// Where one byte ring lives in its page: the data area and the two 32-bit indices.
#[derive(Clone, Copy, Debug)]
pub struct PageRing {
    /// Offset of the data area.
    pub data: usize,
    /// Size of the data area (a power of two).
    pub size: usize,
    /// Offset of the consumer index.
    pub cons: usize,
    /// Offset of the producer index.
    pub prod: usize,
}

impl PageRing {
    /// As producer: copies as much of `data` as fits and publishes it (bytes first, then the
    /// producer index). Returns the number of bytes written; 0 when the ring is full.
    pub fn produce<M: SharedMem>(&self, page: &M, data: &[u8]) -> Result<usize, RingError> {
        let cons = page.load_u32(self.cons)?;
        let prod = page.load_u32(self.prod)?;
        let mut done = 0;
        while done < data.len() {
            let chunk = byte_ring::write_chunk(self.size, cons, prod.wrapping_add(done as u32))?;
            if chunk.len == 0 {
                break;
            }
            let n = chunk.len.min(data.len() - done);
            page.write(self.data + chunk.offset, &data[done..done + n])?;
            done += n;
        }
        if done > 0 {
            page.store_u32(self.prod, prod.wrapping_add(done as u32))?;
        }
        Ok(done)
    }

    /// As consumer: copies available bytes into `buf` and releases their space. Returns the
    /// number of bytes read; 0 when the ring is empty.
    pub fn consume<M: SharedMem>(&self, page: &M, buf: &mut [u8]) -> Result<usize, RingError> {
        let prod = page.load_u32(self.prod)?;
        let cons = page.load_u32(self.cons)?;
        let mut done = 0;
        while done < buf.len() {
            let chunk = byte_ring::read_chunk(self.size, cons.wrapping_add(done as u32), prod)?;
            if chunk.len == 0 {
                break;
            }
            let n = chunk.len.min(buf.len() - done);
            page.read(self.data + chunk.offset, &mut buf[done..done + n])?;
            done += n;
        }
        if done > 0 {
            page.store_u32(self.cons, cons.wrapping_add(done as u32))?;
        }
        Ok(done)
    }

    /// Bytes produced and not yet consumed.
    pub fn used<M: SharedMem>(&self, page: &M) -> Result<usize, RingError> {
        let cons = page.load_u32(self.cons)?;
        let prod = page.load_u32(self.prod)?;
        Ok(byte_ring::used(self.size, cons, prod)?)
    }
}
