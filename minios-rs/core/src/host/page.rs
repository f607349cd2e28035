//! A simulated 4 KiB page of guest memory, shared between simulated domains.

use super::std::sync::Mutex;
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::platform::{check_range, check_word, MemError, SharedMem, PAGE_SIZE};

const WORDS: usize = PAGE_SIZE / 4;

/// One page of simulated guest memory. Cloning shares the page (like two domains mapping it).
///
/// Stored as atomic words, so a test thread may rewrite it while backend code reads it
/// (double-fetch tests) without undefined behaviour. Every byte access is bounds-checked.
#[derive(Clone)]
pub struct HostPage {
    words: Arc<[AtomicU32; WORDS]>,
    reads: Arc<ReadHook>,
}

/// What runs after each byte read of a page (see [`HostPage::after_each_read`]).
type ReadFn = Box<dyn FnMut(usize, usize) + Send>;

/// The page's read hook; `set` keeps reads without a hook to one atomic load.
#[derive(Default)]
struct ReadHook {
    set: AtomicBool,
    hook: Mutex<Option<ReadFn>>,
}

impl Default for HostPage {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for HostPage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HostPage").finish_non_exhaustive()
    }
}

impl HostPage {
    /// A zeroed page.
    pub fn new() -> Self {
        let words: Box<[AtomicU32; WORDS]> = Box::new(core::array::from_fn(|_| AtomicU32::new(0)));
        Self {
            words: Arc::from(words),
            reads: Arc::default(),
        }
    }

    /// Runs `hook(offset, len)` after every byte read of this page (`SharedMem::read`, which
    /// ring slots and grant copies use; not the index words), through any mapping, until
    /// [`clear_read_hook`](Self::clear_read_hook). Lets a test play a frontend that rewrites
    /// a slot right after the backend read it: a second read of the same bytes sees the
    /// rewrite. Replaces an earlier hook.
    pub fn after_each_read(&self, hook: impl FnMut(usize, usize) + Send + 'static) {
        *self.reads.hook.lock().unwrap() = Some(Box::new(hook));
        self.reads.set.store(true, Ordering::SeqCst);
    }

    /// Removes the hook added with [`after_each_read`](Self::after_each_read).
    pub fn clear_read_hook(&self) {
        self.reads.set.store(false, Ordering::SeqCst);
        *self.reads.hook.lock().unwrap() = None;
    }

    fn after_read(&self, offset: usize, len: usize) {
        if !self.reads.set.load(Ordering::Relaxed) {
            return;
        }
        // Taken out while it runs, so the hook may itself read the page.
        let taken = self.reads.hook.lock().unwrap().take();
        if let Some(mut hook) = taken {
            hook(offset, len);
            let mut slot = self.reads.hook.lock().unwrap();
            if slot.is_none() && self.reads.set.load(Ordering::SeqCst) {
                *slot = Some(hook);
            }
        }
    }

    /// Whether `self` and `other` are the same page.
    pub fn same_page(&self, other: &HostPage) -> bool {
        Arc::ptr_eq(&self.words, &other.words)
    }

    /// A copy of the whole page.
    pub fn snapshot(&self) -> [u8; PAGE_SIZE] {
        let mut out = [0u8; PAGE_SIZE];
        for (chunk, w) in out.chunks_exact_mut(4).zip(self.words.iter()) {
            chunk.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        out
    }

    fn get(&self, i: usize) -> u8 {
        let w = self.words[i / 4].load(Ordering::Relaxed);
        w.to_le_bytes()[i % 4]
    }

    fn set(&self, i: usize, byte: u8) {
        let shift = 8 * (i % 4);
        let mask = 0xffu32 << shift;
        let bits = u32::from(byte) << shift;
        // Never fails: the closure always returns Some.
        let _ = self.words[i / 4].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
            Some((w & !mask) | bits)
        });
    }
}

impl SharedMem for HostPage {
    fn size(&self) -> usize {
        PAGE_SIZE
    }

    fn writable(&self) -> bool {
        true
    }

    fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), MemError> {
        check_range(offset, buf.len(), PAGE_SIZE)?;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.get(offset + i);
        }
        self.after_read(offset, buf.len());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_words_agree() {
        let p = HostPage::new();
        p.write(4093, &[1, 2, 3]).unwrap();
        p.store_u32(0, 0x0403_0201).unwrap();
        let mut b = [0u8; 4];
        p.read(0, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4]);
        p.write(1, &[0xaa]).unwrap();
        assert_eq!(p.load_u32(0).unwrap(), 0x0403_aa01);
        assert_eq!(p.snapshot()[4093..], [1, 2, 3]);
        assert!(p.write(4094, &[0; 3]).is_err());
        assert!(p.read(usize::MAX, &mut b).is_err());
        assert_eq!(p.load_u32(6), Err(MemError::Misaligned { offset: 6 }));
        let q = p.clone();
        assert!(q.same_page(&p) && !q.same_page(&HostPage::new()));
    }
}
