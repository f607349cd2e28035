//! A host-side shared page for unit tests of the ring code.
//!
//! Deliberately not `minios::host::HostPage`: enabling `minios/host` (which links `std`)
//! from this crate's dev-dependencies would, through cargo's feature unification, also
//! enable it for the unikernel images in `cargo clippy --workspace --all-targets`, giving
//! them a second panic handler.

use minios::platform::{check_range, check_word, MemError, SharedMem, PAGE_SIZE};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::vec::Vec;

/// A zeroed 4 KiB page; clones share it (like two domains mapping one page).
#[derive(Clone)]
pub struct TestPage {
    words: Arc<Vec<AtomicU32>>,
}

impl TestPage {
    /// A zeroed page.
    pub fn new() -> Self {
        Self {
            words: Arc::new((0..PAGE_SIZE / 4).map(|_| AtomicU32::new(0)).collect()),
        }
    }

    /// A copy of the page's bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        self.words
            .iter()
            .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
            .collect()
    }

    fn set(&self, i: usize, b: u8) {
        let shift = 8 * (i % 4);
        let _ = self.words[i / 4].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
            Some((w & !(0xff << shift)) | (u32::from(b) << shift))
        });
    }
}

impl SharedMem for TestPage {
    fn size(&self) -> usize {
        PAGE_SIZE
    }
    fn writable(&self) -> bool {
        true
    }
    fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), MemError> {
        check_range(offset, buf.len(), PAGE_SIZE)?;
        let snap = self.snapshot();
        buf.copy_from_slice(&snap[offset..offset + buf.len()]);
        Ok(())
    }
    fn write(&self, offset: usize, data: &[u8]) -> Result<(), MemError> {
        check_range(offset, data.len(), PAGE_SIZE)?;
        for (i, &b) in data.iter().enumerate() {
            self.set(offset + i, b);
        }
        Ok(())
    }
    fn load_u32(&self, offset: usize) -> Result<u32, MemError> {
        check_word(offset, PAGE_SIZE)?;
        Ok(self.words[offset / 4].load(Ordering::Acquire))
    }
    fn store_u32(&self, offset: usize, value: u32) -> Result<(), MemError> {
        check_word(offset, PAGE_SIZE)?;
        self.words[offset / 4].store(value, Ordering::Release);
        Ok(())
    }
}
