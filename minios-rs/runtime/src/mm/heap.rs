//! The heap's free list: first fit over an address-ordered singly linked list of free blocks,
//! coalescing neighbours on free. Regions are added on demand (the global allocator grows
//! the heap with frames from the frame allocator), so the heap is sized by what the domain
//! actually uses, out of the memory Xen gave it.
//!
//! Every block address and size is a multiple of [`GRANULE`] (16 bytes, enough for the
//! free-block header), so splitting never leaves a fragment too small to track.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

/// Allocation granule and minimum block size.
pub const GRANULE: usize = 16;

#[repr(C)]
struct Block {
    size: usize,
    next: Option<NonNull<Block>>,
}

/// A first-fit free-list allocator over memory regions handed to it.
#[derive(Debug, Default)]
pub struct FreeList {
    head: Option<NonNull<Block>>,
    free_bytes: usize,
}

// SAFETY: the list only holds pointers into memory given to it exclusively (`add_region`).
unsafe impl Send for FreeList {}

const fn round_up(v: usize, align: usize) -> Option<usize> {
    match v.checked_add(align - 1) {
        Some(x) => Some(x & !(align - 1)),
        None => None,
    }
}

/// The block size used for `layout`: at least one granule, rounded up to granules.
fn block_size(layout: &Layout) -> Option<usize> {
    round_up(layout.size().max(GRANULE), GRANULE)
}

impl FreeList {
    /// An empty heap.
    pub const fn new() -> Self {
        Self {
            head: None,
            free_bytes: 0,
        }
    }

    /// Bytes currently free.
    pub fn free_bytes(&self) -> usize {
        self.free_bytes
    }

    /// Gives `[start, start + size)` to the heap (trimmed inward to granules).
    ///
    /// # Safety
    /// The memory must be valid, writable, unused by anything else and never handed out
    /// again elsewhere; it must not overlap memory already in the heap.
    pub unsafe fn add_region(&mut self, start: *mut u8, size: usize) {
        let addr = start as usize;
        let Some(begin) = round_up(addr, GRANULE) else {
            return;
        };
        let end = addr.saturating_add(size) & !(GRANULE - 1);
        if end > begin {
            // SAFETY: forwarded from the caller's guarantee.
            unsafe { self.insert(begin, end - begin) };
        }
    }

    /// Allocates a block for `layout`.
    pub fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        let size = block_size(&layout)?;
        let align = layout.align().max(GRANULE);
        let mut prev: Option<NonNull<Block>> = None;
        let mut cur = self.head;
        while let Some(block) = cur {
            // SAFETY: every pointer in the list is a free block we own (insert invariant).
            let (bsize, next) = unsafe { ((*block.as_ptr()).size, (*block.as_ptr()).next) };
            let start = block.as_ptr() as usize;
            let end = start + bsize;
            if let Some(aligned) = round_up(start, align) {
                if aligned.checked_add(size).is_some_and(|e| e <= end) {
                    // Unlink the block, then give back the front and tail remainders (both
                    // are 0 or at least one granule: everything is granule-aligned).
                    match prev {
                        // SAFETY: `p` is a live free block preceding `block`.
                        Some(p) => unsafe { (*p.as_ptr()).next = next },
                        None => self.head = next,
                    }
                    self.free_bytes -= bsize;
                    // SAFETY: both remainders are parts of the block we just unlinked.
                    unsafe {
                        if aligned > start {
                            self.insert(start, aligned - start);
                        }
                        if end > aligned + size {
                            self.insert(aligned + size, end - aligned - size);
                        }
                    }
                    return NonNull::new(aligned as *mut u8);
                }
            }
            prev = cur;
            cur = next;
        }
        None
    }

    /// Returns a block allocated by [`alloc`](Self::alloc) with the same `layout`.
    ///
    /// # Safety
    /// `ptr` must come from `alloc(layout)` on this heap and not have been freed.
    pub unsafe fn dealloc(&mut self, ptr: NonNull<u8>, layout: Layout) {
        if let Some(size) = block_size(&layout) {
            // SAFETY: the block was ours and is no longer used (caller's guarantee).
            unsafe { self.insert(ptr.as_ptr() as usize, size) };
        }
    }

    /// Inserts a free block in address order, merging with adjacent neighbours.
    ///
    /// # Safety
    /// `[addr, addr + size)` is granule-aligned memory we own that is not in the list.
    unsafe fn insert(&mut self, addr: usize, size: usize) {
        self.free_bytes += size;
        let mut prev: Option<NonNull<Block>> = None;
        let mut cur = self.head;
        while let Some(block) = cur {
            if block.as_ptr() as usize > addr {
                break;
            }
            prev = cur;
            // SAFETY: list invariant.
            cur = unsafe { (*block.as_ptr()).next };
        }
        // SAFETY: list invariant for `prev`/`cur`; `addr` is writable memory we own.
        unsafe {
            let mut new = NonNull::new_unchecked(addr as *mut Block);
            ptr::write(new.as_ptr(), Block { size, next: cur });
            // Merge with the following block.
            if let Some(next) = cur {
                if addr + size == next.as_ptr() as usize {
                    (*new.as_ptr()).size += (*next.as_ptr()).size;
                    (*new.as_ptr()).next = (*next.as_ptr()).next;
                }
            }
            match prev {
                Some(p) if p.as_ptr() as usize + (*p.as_ptr()).size == addr => {
                    // Merge into the preceding block.
                    (*p.as_ptr()).size += (*new.as_ptr()).size;
                    (*p.as_ptr()).next = (*new.as_ptr()).next;
                    new = p;
                }
                Some(p) => (*p.as_ptr()).next = Some(new),
                None => self.head = Some(new),
            }
            let _ = new;
        }
    }

    /// Sizes of the free blocks in address order (for tests and statistics).
    pub fn blocks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let mut cur = self.head;
        core::iter::from_fn(move || {
            let block = cur?;
            // SAFETY: list invariant.
            let (size, next) = unsafe { ((*block.as_ptr()).size, (*block.as_ptr()).next) };
            cur = next;
            Some((block.as_ptr() as usize, size))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// A heap over a leaked, 4 KiB-aligned buffer.
    fn heap(bytes: usize) -> (FreeList, usize) {
        let layout = Layout::from_size_align(bytes, 4096).unwrap();
        // SAFETY: non-zero size.
        let mem = unsafe { std::alloc::alloc(layout) };
        let mut h = FreeList::new();
        // SAFETY: freshly allocated, exclusively ours, leaked for the test's duration.
        unsafe { h.add_region(mem, bytes) };
        (h, mem as usize)
    }

    fn l(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn alloc_free_coalesces_back_to_one_block() {
        let (mut h, base) = heap(4096);
        let a = h.alloc(l(10, 1)).unwrap();
        let b = h.alloc(l(100, 8)).unwrap();
        let c = h.alloc(l(1000, 64)).unwrap();
        assert_eq!(a.as_ptr() as usize, base);
        assert_eq!(b.as_ptr() as usize, base + 16);
        assert_eq!(c.as_ptr() as usize % 64, 0);
        assert_eq!(
            h.free_bytes(),
            4096 - 16 - 112 - 1008 - (c.as_ptr() as usize - base - 128)
        );
        // SAFETY: each pointer came from alloc with that layout, freed once.
        unsafe {
            h.dealloc(b, l(100, 8));
            h.dealloc(a, l(10, 1));
            h.dealloc(c, l(1000, 64));
        }
        assert_eq!(h.blocks().collect::<Vec<_>>(), [(base, 4096)]);
    }

    #[test]
    fn big_alignment_splits_front() {
        let (mut h, base) = heap(8192);
        let _small = h.alloc(l(16, 16)).unwrap();
        let page = h.alloc(l(4096, 4096)).unwrap();
        assert_eq!(page.as_ptr() as usize, base + 4096);
        let blocks: Vec<_> = h.blocks().collect();
        assert_eq!(blocks, [(base + 16, 4096 - 16)]);
        assert!(h.alloc(l(4096, 1)).is_none(), "exhausted");
    }

    #[test]
    fn regions_added_later_merge_with_neighbours() {
        let layout = l(3 * 4096, 4096);
        // SAFETY: non-zero size.
        let mem = unsafe { std::alloc::alloc(layout) } as usize;
        let mut h = FreeList::new();
        // SAFETY: disjoint parts of our buffer, each added once.
        unsafe {
            h.add_region((mem + 8192) as *mut u8, 4096);
            h.add_region(mem as *mut u8, 4096);
            h.add_region((mem + 4096) as *mut u8, 4096);
        }
        assert_eq!(h.blocks().collect::<Vec<_>>(), [(mem, 3 * 4096)]);
        assert!(h.alloc(l(3 * 4096, 8)).is_some());
        assert_eq!(h.free_bytes(), 0);
    }

    #[test]
    fn randomized_against_overlap() {
        // A simple LCG drives allocations and frees; live blocks must never overlap and
        // everything must coalesce back at the end.
        let (mut h, base) = heap(64 * 1024);
        let mut live: Vec<(usize, Layout)> = Vec::new();
        let mut seed = 12345u64;
        let mut rnd = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for _ in 0..5000 {
            if rnd(3) > 0 || live.is_empty() {
                let lay = l(1 + rnd(700) as usize, 1 << rnd(8));
                if let Some(p) = h.alloc(lay) {
                    let s = p.as_ptr() as usize;
                    assert_eq!(s % lay.align(), 0);
                    for &(o, ol) in &live {
                        assert!(s + lay.size() <= o || o + ol.size() <= s, "overlap");
                    }
                    live.push((s, lay));
                }
            } else {
                let (p, lay) = live.swap_remove(rnd(live.len() as u64) as usize);
                // SAFETY: allocated above with this layout, freed once.
                unsafe { h.dealloc(NonNull::new(p as *mut u8).unwrap(), lay) };
            }
        }
        for (p, lay) in live.drain(..) {
            // SAFETY: as above.
            unsafe { h.dealloc(NonNull::new(p as *mut u8).unwrap(), lay) };
        }
        assert_eq!(h.blocks().collect::<Vec<_>>(), [(base, 64 * 1024)]);
    }
}
