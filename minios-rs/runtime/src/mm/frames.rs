//! The page-frame allocator: one bit per 4 KiB frame of a span of guest frames (1 = in use),
//! next-fit search for contiguous runs (from just after the last allocation, wrapping
//! round). Also used for the foreign-mapping address window.
//!
//! The bitmap's storage is handed in (carved out of RAM at boot), so the allocator works
//! before the heap exists and tests on the host with a `Vec`.

/// Frame allocator over frames `[base, base + frames)`.
#[derive(Debug)]
pub struct FrameAllocator {
    base: u64,
    frames: u64,
    bitmap: &'static mut [u64],
    free: u64,
    /// Where the next search starts (just after the last allocation).
    hint: u64,
}

/// A frame range was outside the allocator's span or not in the expected state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadFrames {
    /// First frame of the offending range.
    pub pfn: u64,
    /// Number of frames.
    pub count: u64,
}

impl FrameAllocator {
    /// Bitmap words needed to track `frames` frames.
    pub const fn words_for(frames: u64) -> usize {
        frames.div_ceil(64) as usize
    }

    /// An allocator for frames `[base, base + frames)` with every frame in use; `bitmap`
    /// must have at least [`words_for`](Self::words_for)`(frames)` words.
    pub fn new(base: u64, frames: u64, bitmap: &'static mut [u64]) -> Self {
        assert!(
            bitmap.len() >= Self::words_for(frames),
            "frame bitmap too small"
        );
        bitmap.fill(!0);
        Self {
            base,
            frames,
            bitmap,
            free: 0,
            hint: 0,
        }
    }

    /// First frame of the span.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Number of frames in the span.
    pub fn span(&self) -> u64 {
        self.frames
    }

    /// Number of free frames.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    fn is_used(&self, i: u64) -> bool {
        self.bitmap[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: u64, used: bool) {
        let (w, b) = ((i / 64) as usize, 1u64 << (i % 64));
        if used {
            self.bitmap[w] |= b;
        } else {
            self.bitmap[w] &= !b;
        }
    }

    fn index(&self, pfn: u64, count: u64) -> Result<u64, BadFrames> {
        let bad = BadFrames { pfn, count };
        let i = pfn.checked_sub(self.base).ok_or(bad)?;
        match i.checked_add(count) {
            Some(end) if end <= self.frames => Ok(i),
            _ => Err(bad),
        }
    }

    /// Marks `count` frames from `pfn` free (making RAM available, or freeing an allocation).
    /// Fails, changing nothing, if any of them is outside the span or already free.
    pub fn free(&mut self, pfn: u64, count: u64) -> Result<(), BadFrames> {
        let i = self.index(pfn, count)?;
        if (i..i + count).any(|f| !self.is_used(f)) {
            return Err(BadFrames { pfn, count });
        }
        (i..i + count).for_each(|f| self.set(f, false));
        self.free += count;
        Ok(())
    }

    /// Marks `count` free frames from `pfn` used. Fails, changing nothing, if any is outside
    /// the span or already used.
    pub fn reserve(&mut self, pfn: u64, count: u64) -> Result<(), BadFrames> {
        let i = self.index(pfn, count)?;
        if (i..i + count).any(|f| self.is_used(f)) {
            return Err(BadFrames { pfn, count });
        }
        (i..i + count).for_each(|f| self.set(f, true));
        self.free -= count;
        Ok(())
    }

    /// Allocates `count` contiguous frames; returns the first frame number.
    pub fn alloc(&mut self, count: u64) -> Option<u64> {
        if count == 0 || count > self.free {
            return None;
        }
        let start = self
            .find(self.hint, self.frames, count)
            .or_else(|| self.find(0, self.hint, count))?;
        (start..start + count).for_each(|f| self.set(f, true));
        self.free -= count;
        self.hint = start + count;
        Some(self.base + start)
    }

    /// First run of `count` free frames that starts in `[from, to)` (it may extend past `to`).
    fn find(&self, from: u64, to: u64, count: u64) -> Option<u64> {
        let mut run_start = from;
        let mut i = from;
        while i < self.frames {
            if i - run_start == count {
                return Some(run_start);
            }
            if run_start >= to {
                return None;
            }
            if i % 64 == 0 && self.bitmap[(i / 64) as usize] == !0 {
                // A fully used word: skip it.
                i += 64;
                run_start = i;
                continue;
            }
            if self.is_used(i) {
                run_start = i + 1;
            }
            i += 1;
        }
        (run_start < to && run_start <= self.frames && self.frames - run_start >= count)
            .then_some(run_start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::vec;

    fn alloc_for(base: u64, frames: u64) -> FrameAllocator {
        let storage = Box::leak(vec![0u64; FrameAllocator::words_for(frames)].into_boxed_slice());
        FrameAllocator::new(base, frames, storage)
    }

    #[test]
    fn starts_full_then_free_ranges() {
        let mut a = alloc_for(0x100, 200);
        assert_eq!(a.alloc(1), None);
        a.free(0x110, 10).unwrap();
        a.free(0x180, 40).unwrap();
        assert_eq!(a.free_frames(), 50);
        assert_eq!(a.alloc(5), Some(0x110));
        assert_eq!(
            a.alloc(6),
            Some(0x180),
            "does not fit in the rest of the first run"
        );
        assert_eq!(
            a.alloc(5),
            Some(0x186),
            "next fit: continues after the last allocation"
        );
        assert_eq!(a.alloc(30), None);
        assert_eq!(a.alloc(29), Some(0x18b));
        assert_eq!(a.alloc(5), Some(0x115), "wraps round to earlier space");
        assert_eq!(a.free_frames(), 0);
    }

    #[test]
    fn double_free_and_out_of_span_are_refused() {
        let mut a = alloc_for(10, 100);
        a.free(10, 100).unwrap();
        assert_eq!(a.free(50, 1), Err(BadFrames { pfn: 50, count: 1 }));
        assert!(a.free(5, 1).is_err());
        assert!(a.free(105, 10).is_err());
        assert!(a.free(u64::MAX, 2).is_err());
        assert_eq!(a.free_frames(), 100);
        a.reserve(20, 5).unwrap();
        assert!(a.reserve(22, 1).is_err());
        assert_eq!(a.free_frames(), 95);
    }

    #[test]
    fn alloc_free_cycle_reuses_and_wraps_the_hint() {
        let mut a = alloc_for(0, 256);
        a.free(0, 256).unwrap();
        let x = a.alloc(100).unwrap();
        let y = a.alloc(100).unwrap();
        assert_eq!((x, y), (0, 100));
        a.free(x, 100).unwrap();
        assert_eq!(a.alloc(60), Some(0), "wraps round to the freed space");
        assert_eq!(a.alloc(56), Some(200));
        assert_eq!(a.alloc(41), None);
        assert_eq!(a.alloc(40), Some(60));
        assert_eq!(a.free_frames(), 0);
    }

    #[test]
    fn runs_across_word_boundaries() {
        let mut a = alloc_for(0, 300);
        a.free(60, 140).unwrap();
        assert_eq!(a.alloc(140), Some(60));
        a.free(130, 3).unwrap();
        assert_eq!(a.alloc(3), Some(130));
    }

    #[test]
    fn exhaustive_small_spans_match_a_model() {
        // Model check: for every free pattern of a 12-frame span and every count, alloc
        // returns a run that really is free, and fails only if none exists.
        for pattern in 0u32..(1 << 12) {
            for count in 1..=4u64 {
                let mut a = alloc_for(0, 12);
                for f in 0..12 {
                    if pattern & (1 << f) != 0 {
                        a.free(f, 1).unwrap();
                    }
                }
                let exists =
                    (0..=12 - count).any(|s| (s..s + count).all(|f| pattern & (1 << f) != 0));
                match a.alloc(count) {
                    Some(s) => assert!((s..s + count).all(|f| pattern & (1 << f) != 0)),
                    None => assert!(!exists, "pattern {pattern:#b} count {count}"),
                }
            }
        }
    }
}
