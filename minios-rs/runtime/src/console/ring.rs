//! The PV console ring (`io/console.h`, `struct xencons_interface`): we produce into `out`,
//! xenconsoled in dom0 consumes it (and produces keyboard input into `in`, which we ignore).
//!
//! Layout: `in[1024]`, `out[2048]`, then the 32-bit indices `in_cons`, `in_prod`,
//! `out_cons`, `out_prod`. Indices are free-running and wrap at 2^32; the byte at index `i`
//! lives at `i mod size`.

use crate::page_ring::PageRing;
pub use crate::page_ring::RingError;
use core::mem::offset_of;
use minios::platform::SharedMem;
use xen_abi::console::{XenconsInterface, XENCONS_OUT_SIZE};

const OUT_OFFSET: usize = offset_of!(XenconsInterface, out);
const OUT_CONS: usize = offset_of!(XenconsInterface, out_cons);
const OUT_PROD: usize = offset_of!(XenconsInterface, out_prod);
/// Size of the output ring.
pub const OUT_SIZE: usize = XENCONS_OUT_SIZE;
const OUT: PageRing = PageRing {
    data: OUT_OFFSET,
    size: OUT_SIZE,
    cons: OUT_CONS,
    prod: OUT_PROD,
};

/// The output side of a console ring page.
#[derive(Debug)]
pub struct ConsoleRing<M> {
    page: M,
}

impl<M: SharedMem> ConsoleRing<M> {
    /// Wraps the console ring page.
    pub fn new(page: M) -> Self {
        Self { page }
    }

    /// Copies as much of `data` as fits into `out` and publishes it (data, then a release
    /// store of `out_prod`). Returns the number of bytes written; 0 when the ring is full.
    pub fn write(&self, data: &[u8]) -> Result<usize, RingError> {
        OUT.produce(&self.page, data)
    }

    /// Bytes written but not yet consumed by the backend.
    pub fn unconsumed(&self) -> Result<usize, RingError> {
        OUT.used(&self.page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TestPage as HostPage;

    fn out_bytes(page: &HostPage, from: usize, len: usize) -> std::vec::Vec<u8> {
        let snap = page.snapshot();
        (0..len)
            .map(|i| snap[OUT_OFFSET + (from + i) % OUT_SIZE])
            .collect()
    }

    #[test]
    fn writes_and_publishes() {
        let page = HostPage::new();
        let ring = ConsoleRing::new(page.clone());
        assert_eq!(ring.write(b"hello\n"), Ok(6));
        assert_eq!(page.load_u32(OUT_PROD), Ok(6));
        assert_eq!(out_bytes(&page, 0, 6), b"hello\n");
        assert_eq!(ring.unconsumed(), Ok(6));
    }

    #[test]
    fn stops_when_full_and_resumes_after_consumption() {
        let page = HostPage::new();
        let ring = ConsoleRing::new(page.clone());
        let big = [b'x'; 3000];
        assert_eq!(ring.write(&big), Ok(OUT_SIZE));
        assert_eq!(ring.write(b"more"), Ok(0));
        page.store_u32(OUT_CONS, 100).unwrap(); // backend consumed 100 bytes
        assert_eq!(ring.write(&big), Ok(100));
        assert_eq!(page.load_u32(OUT_PROD), Ok(OUT_SIZE as u32 + 100));
    }

    #[test]
    fn wraps_around_the_buffer_and_the_index_space() {
        let page = HostPage::new();
        let start = u32::MAX - 2; // indices about to wrap at 2^32
        page.store_u32(OUT_CONS, start).unwrap();
        page.store_u32(OUT_PROD, start).unwrap();
        let ring = ConsoleRing::new(page.clone());
        assert_eq!(ring.write(b"abcdefgh"), Ok(8));
        assert_eq!(page.load_u32(OUT_PROD), Ok(start.wrapping_add(8)));
        let from = start as usize % OUT_SIZE;
        assert_eq!(from, OUT_SIZE - 3);
        assert_eq!(out_bytes(&page, from, 8), b"abcdefgh");
        // The first three bytes sit at the end of `out`, the rest at its start.
        assert_eq!(page.snapshot()[OUT_OFFSET..OUT_OFFSET + 5], *b"defgh");
    }

    #[test]
    fn bogus_consumer_index_is_an_error() {
        let page = HostPage::new();
        page.store_u32(OUT_CONS, 5000).unwrap(); // consumer ahead of producer
        let ring = ConsoleRing::new(page.clone());
        assert!(matches!(ring.write(b"x"), Err(RingError::Index(_))));
        assert_eq!(page.load_u32(OUT_PROD), Ok(0), "nothing published");
    }
}
