//! Memory: the frame allocator over the RAM Xen gave us, the heap (`#[global_allocator]`,
//! grown on demand from frames), and the window of unpopulated guest-physical addresses
//! where foreign grants and grant-table frames get mapped.

pub mod frames;
pub mod heap;
pub mod memmap;
pub mod page;

use crate::sync::Global;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use frames::FrameAllocator;
use heap::FreeList;
use memmap::{MapEntry, Range};

/// Bytes per page.
pub const PAGE_SIZE: u64 = 4096;
/// The boot page tables identity-map this much; RAM above it is not used.
pub const MAPPED_LIMIT: u64 = 4 << 30;
/// Size of the foreign-mapping window (16384 page slots).
const WINDOW_BYTES: u64 = 64 << 20;
/// The window is placed in a hole between these addresses (below the 32-bit MMIO area where
/// the local APIC and Xen's special pages sit).
const WINDOW_LOW: u64 = 1 << 30;
const WINDOW_HIGH: u64 = 0xf000_0000;
/// The heap grows by at least this many pages at a time.
const HEAP_GROW_PAGES: u64 = 16;

static FRAMES: Global<Option<FrameAllocator>> = Global::new(None);
static WINDOW: Global<Option<FrameAllocator>> = Global::new(None);
static HEAP: Global<FreeList> = Global::new(FreeList::new());

/// What [`init`] set up.
#[derive(Clone, Copy, Debug)]
pub struct MemorySummary {
    /// Usable RAM handed to the frame allocator, in bytes.
    pub usable_bytes: u64,
    /// Lowest and highest usable address.
    pub span: Range,
    /// The foreign-mapping window.
    pub window: Range,
}

/// Sets up the frame allocator and the mapping window from the memory map `entries`,
/// keeping out `exclude` (our image, low memory, boot data still in use).
///
/// # Safety
/// Call once at boot. Everything the map calls RAM, minus `exclude`, must be unused and
/// identity-mapped: it becomes allocatable memory.
pub unsafe fn init(entries: &[MapEntry], exclude: &[Range]) -> Result<MemorySummary, &'static str> {
    let mut usable = memmap::usable_ram(entries, MAPPED_LIMIT, exclude);
    let (first, last) = match usable.ranges() {
        [] => return Err("no usable RAM in the memory map"),
        r => (r[0], r[r.len() - 1]),
    };
    let base = first.start / PAGE_SIZE;
    let frames = last.end / PAGE_SIZE - base;
    let bitmap_bytes = (FrameAllocator::words_for(frames) as u64 * 8).next_multiple_of(PAGE_SIZE);
    let storage = usable
        .ranges()
        .iter()
        .find(|r| r.len() >= bitmap_bytes)
        .map(|r| r.start)
        .ok_or("no room for the frame bitmap")?;
    usable.remove(Range::new(storage, storage + bitmap_bytes));
    // SAFETY: `storage` is usable RAM (caller's guarantee), now removed from the usable set,
    // so nothing else will ever use it; it is identity-mapped and 8-byte aligned.
    let bitmap = unsafe {
        core::slice::from_raw_parts_mut(storage as *mut u64, (bitmap_bytes / 8) as usize)
    };
    let mut alloc = FrameAllocator::new(base, frames, bitmap);
    for r in usable.ranges() {
        alloc
            .free(r.start / PAGE_SIZE, r.len() / PAGE_SIZE)
            .map_err(|_| "memory map ranges overlap")?;
    }

    let window_start = memmap::find_hole(
        entries,
        WINDOW_BYTES,
        2 << 20,
        WINDOW_LOW.max(last.end),
        WINDOW_HIGH,
        &[],
    )
    .ok_or("no hole in the physical address space for the mapping window")?;
    let window_frames = WINDOW_BYTES / PAGE_SIZE;
    let words = FrameAllocator::words_for(window_frames) as u64;
    let wpages = (words * 8).div_ceil(PAGE_SIZE);
    let wbits = alloc
        .alloc(wpages)
        .ok_or("no memory for the window bitmap")?;
    // SAFETY: frames just allocated for this purpose, identity-mapped, never freed.
    let wbitmap =
        unsafe { core::slice::from_raw_parts_mut((wbits * PAGE_SIZE) as *mut u64, words as usize) };
    let mut window = FrameAllocator::new(window_start / PAGE_SIZE, window_frames, wbitmap);
    window
        .free(window_start / PAGE_SIZE, window_frames)
        .map_err(|_| "window setup")?;

    let summary = MemorySummary {
        usable_bytes: alloc.free_frames() * PAGE_SIZE,
        span: Range::new(first.start, last.end),
        window: Range::new(window_start, window_start + WINDOW_BYTES),
    };
    FRAMES.with(|f| *f = Some(alloc));
    WINDOW.with(|w| *w = Some(window));
    Ok(summary)
}

/// Allocates `count` contiguous zeroed pages; returns the physical (= virtual) address.
pub fn alloc_pages(count: u64) -> Option<u64> {
    let pfn = FRAMES.with(|f| f.as_mut()?.alloc(count))?;
    let addr = pfn * PAGE_SIZE;
    // SAFETY: the frames were just allocated to us: identity-mapped RAM nobody else uses.
    unsafe { ptr::write_bytes(addr as *mut u8, 0, (count * PAGE_SIZE) as usize) };
    Some(addr)
}

/// Returns pages allocated by [`alloc_pages`].
///
/// # Safety
/// Nothing may use the pages afterwards (no references, no foreign access).
pub unsafe fn free_pages(addr: u64, count: u64) {
    let res = FRAMES.with(|f| f.as_mut().map(|f| f.free(addr / PAGE_SIZE, count)));
    if let Some(Err(e)) = res {
        panic!(
            "freeing frames {:#x}+{} that are not allocated",
            e.pfn, e.count
        );
    }
}

/// Free RAM in the frame allocator (not counting free heap space), in bytes.
pub fn free_bytes() -> u64 {
    FRAMES.with(|f| f.as_ref().map_or(0, |f| f.free_frames() * PAGE_SIZE))
}

/// Free bytes inside the heap.
pub fn heap_free_bytes() -> usize {
    HEAP.with(|h| h.free_bytes())
}

/// Reserves `count` contiguous guest frames of the mapping window: addresses with no RAM
/// behind them, where Xen can place foreign or grant-table pages. Returns the first frame.
pub fn alloc_window(count: u64) -> Option<u64> {
    WINDOW.with(|w| w.as_mut()?.alloc(count))
}

/// Returns window frames once nothing is mapped there any more.
pub fn free_window(pfn: u64, count: u64) {
    let res = WINDOW.with(|w| w.as_mut().map(|w| w.free(pfn, count)));
    if let Some(Err(e)) = res {
        panic!(
            "freeing window frames {:#x}+{} that are not allocated",
            e.pfn, e.count
        );
    }
}

/// The `#[global_allocator]` (installed by [`crate::entry!`]): the free-list heap, grown
/// from the frame allocator when it runs out.
pub struct Allocator;

// SAFETY: `alloc` returns blocks of at least `layout.size()` bytes at `layout.align()` from
// memory only the heap hands out; `dealloc` takes them back. The heap is a `Global`, so
// access is exclusive (the frame allocator it grows from never allocates from the heap).
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP.with(|h| {
            if let Some(p) = h.alloc(layout) {
                return p.as_ptr();
            }
            let worst =
                layout.size().max(heap::GRANULE) as u64 + layout.align().max(heap::GRANULE) as u64;
            let pages = worst.div_ceil(PAGE_SIZE);
            let grown = FRAMES.with(|f| {
                let f = f.as_mut()?;
                f.alloc(pages.max(HEAP_GROW_PAGES))
                    .map(|p| (p, pages.max(HEAP_GROW_PAGES)))
                    .or_else(|| f.alloc(pages).map(|p| (p, pages)))
            });
            let Some((pfn, count)) = grown else {
                return ptr::null_mut();
            };
            // SAFETY: frames fresh from the allocator, identity-mapped, now owned by the heap.
            unsafe { h.add_region((pfn * PAGE_SIZE) as *mut u8, (count * PAGE_SIZE) as usize) };
            h.alloc(layout).map_or(ptr::null_mut(), NonNull::as_ptr)
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc contract).
            HEAP.with(|h| unsafe { h.dealloc(p, layout) });
        }
    }
}
