//! The physical memory map: which page-aligned ranges are usable RAM, and where a hole of
//! unused guest-physical address space lies (for mapping foreign pages and grant frames).
//!
//! Pure logic over fixed-capacity arrays (it runs before the heap exists).

use core::fmt;

const PAGE: u64 = 4096;

/// Memory types from the E820 map (`E820_*`, same values as `XEN_HVM_MEMMAP_TYPE_*`).
pub const TYPE_RAM: u32 = 1;

/// A half-open physical address range `[start, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Range {
    /// `[start, end)`.
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    /// Length in bytes.
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the range is empty.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    fn overlaps(&self, other: &Range) -> bool {
        self.start < other.end && other.start < self.end
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}-{:#x}", self.start, self.end)
    }
}

/// One entry of a firmware memory map: (address, size, type).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapEntry {
    /// Start address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// E820 type ([`TYPE_RAM`] = usable).
    pub kind: u32,
}

impl MapEntry {
    /// The entry's range, or `None` if it is empty or wraps around.
    pub fn range(&self) -> Option<Range> {
        let end = self.addr.checked_add(self.size)?;
        (end > self.addr).then_some(Range::new(self.addr, end))
    }
}

/// Maximum number of ranges a [`RangeSet`] holds.
pub const MAX_RANGES: usize = 64;

/// A sorted set of disjoint, non-adjacent ranges with fixed capacity.
#[derive(Clone, Debug)]
pub struct RangeSet {
    ranges: [Range; MAX_RANGES],
    len: usize,
}

impl Default for RangeSet {
    fn default() -> Self {
        Self::new()
    }
}

impl RangeSet {
    /// An empty set.
    pub const fn new() -> Self {
        Self {
            ranges: [Range::new(0, 0); MAX_RANGES],
            len: 0,
        }
    }

    /// The ranges, sorted by address.
    pub fn ranges(&self) -> &[Range] {
        &self.ranges[..self.len]
    }

    /// Total bytes covered.
    pub fn total(&self) -> u64 {
        self.ranges().iter().map(Range::len).sum()
    }

    /// Adds `r`, merging with overlapping or adjacent ranges. Ranges beyond the capacity are
    /// dropped (returns false).
    pub fn add(&mut self, r: Range) -> bool {
        if r.is_empty() {
            return true;
        }
        let mut merged = r;
        let mut out = RangeSet::new();
        let mut placed = false;
        let mut ok = true;
        for &x in self.ranges() {
            if x.end < merged.start {
                ok &= out.push(x);
            } else if merged.end < x.start {
                if !placed {
                    ok &= out.push(merged);
                    placed = true;
                }
                ok &= out.push(x);
            } else {
                merged = Range::new(merged.start.min(x.start), merged.end.max(x.end));
            }
        }
        if !placed {
            ok &= out.push(merged);
        }
        *self = out;
        ok
    }

    /// Removes `r` from the set.
    pub fn remove(&mut self, r: Range) {
        if r.is_empty() {
            return;
        }
        let mut out = RangeSet::new();
        for &x in self.ranges() {
            if !x.overlaps(&r) {
                out.push(x);
                continue;
            }
            // Splitting one range can need one more slot; at capacity the tail is dropped,
            // which only ever loses usable memory, never makes reserved memory usable.
            if x.start < r.start {
                out.push(Range::new(x.start, r.start));
            }
            if r.end < x.end {
                out.push(Range::new(r.end, x.end));
            }
        }
        *self = out;
    }

    /// Whether any range overlaps `r`.
    pub fn overlaps(&self, r: &Range) -> bool {
        self.ranges().iter().any(|x| x.overlaps(r))
    }

    /// Appends `r` (callers keep the order); false if the set is full.
    fn push(&mut self, r: Range) -> bool {
        if self.len == MAX_RANGES {
            return false;
        }
        self.ranges[self.len] = r;
        self.len += 1;
        true
    }
}

/// The usable RAM in `entries`: RAM entries shrunk inward to page boundaries, clipped below
/// `limit` (what the page tables map), minus every non-RAM entry (reserved wins where they
/// overlap) and minus `exclude` (our image, low memory, pages Xen placed for us).
pub fn usable_ram(entries: &[MapEntry], limit: u64, exclude: &[Range]) -> RangeSet {
    let mut set = RangeSet::new();
    for e in entries.iter().filter(|e| e.kind == TYPE_RAM) {
        let Some(r) = e.range() else { continue };
        let start = r
            .start
            .checked_add(PAGE - 1)
            .map_or(u64::MAX, |v| v & !(PAGE - 1));
        let end = r.end.min(limit) & !(PAGE - 1);
        set.add(Range::new(start, end));
    }
    for e in entries.iter().filter(|e| e.kind != TYPE_RAM) {
        if let Some(r) = e.range() {
            set.remove(Range::new(
                r.start & !(PAGE - 1),
                r.end.saturating_add(PAGE - 1) & !(PAGE - 1),
            ));
        }
    }
    for &r in exclude {
        set.remove(Range::new(
            r.start & !(PAGE - 1),
            r.end.saturating_add(PAGE - 1) & !(PAGE - 1),
        ));
    }
    set
}

/// Finds `size` bytes of guest-physical address space, aligned to `align` (a power of two),
/// within `[lo, hi)`, that no map entry (of any type) touches and that avoids `avoid`.
/// Returns the lowest such start address.
pub fn find_hole(
    entries: &[MapEntry],
    size: u64,
    align: u64,
    lo: u64,
    hi: u64,
    avoid: &[Range],
) -> Option<u64> {
    let mut taken = RangeSet::new();
    for r in entries
        .iter()
        .filter_map(MapEntry::range)
        .chain(avoid.iter().copied())
    {
        taken.add(r);
    }
    let mut candidate = lo.checked_add(align - 1)? & !(align - 1);
    loop {
        let end = candidate.checked_add(size)?;
        if end > hi {
            return None;
        }
        let want = Range::new(candidate, end);
        match taken.ranges().iter().find(|x| x.overlaps(&want)) {
            None => return Some(candidate),
            Some(x) => candidate = x.end.checked_add(align - 1)? & !(align - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn e(addr: u64, size: u64, kind: u32) -> MapEntry {
        MapEntry { addr, size, kind }
    }

    /// What Xen 4.17 gives a 16 MiB PVH domU (seen in `xl -vvv create`): RAM from 0, then
    /// reserved areas at the top of the 32-bit space.
    fn pvh_16m() -> [MapEntry; 3] {
        [
            e(0, 16 * MIB, 1),
            e(0xfc00_0000, 0x0300_0000, 2),
            e(0xfeff_f000, 0x1000, 2),
        ]
    }

    #[test]
    fn ram_minus_exclusions() {
        let set = usable_ram(
            &pvh_16m(),
            4 << 30,
            &[Range::new(0, MIB), Range::new(MIB, MIB + 0x2_3456)],
        );
        assert_eq!(set.ranges(), &[Range::new(MIB + 0x2_4000, 16 * MIB)]);
        assert_eq!(set.total(), 15 * MIB - 0x2_4000);
    }

    #[test]
    fn unaligned_ram_shrinks_and_reserved_wins() {
        let map = [
            e(0x1234, 0x10_0000, 1),
            e(0x5_0800, 0x100, 2),
            e(0x100_0000, 0x1000, 7),
        ];
        let set = usable_ram(&map, u64::MAX, &[]);
        assert_eq!(
            set.ranges(),
            &[
                Range::new(0x2000, 0x5_0000),
                Range::new(0x5_1000, 0x10_1000)
            ]
        );
    }

    #[test]
    fn clipped_to_the_mapped_limit_and_merged() {
        let map = [e(0, 2 * MIB, 1), e(2 * MIB, 2 * MIB, 1), e(5 << 30, MIB, 1)];
        let set = usable_ram(&map, 3 * MIB, &[]);
        assert_eq!(set.ranges(), &[Range::new(0, 3 * MIB)]);
    }

    #[test]
    fn bogus_entries_are_ignored() {
        let map = [
            e(u64::MAX - 10, 100, 1),
            e(0x1000, 0, 1),
            e(0x2000, 0x800, 1),
        ];
        assert_eq!(usable_ram(&map, u64::MAX, &[]).total(), 0);
    }

    #[test]
    fn range_set_add_and_remove() {
        let mut s = RangeSet::new();
        s.add(Range::new(10, 20));
        s.add(Range::new(30, 40));
        s.add(Range::new(20, 30)); // bridges both
        assert_eq!(s.ranges(), &[Range::new(10, 40)]);
        s.remove(Range::new(15, 25));
        assert_eq!(s.ranges(), &[Range::new(10, 15), Range::new(25, 40)]);
        s.add(Range::new(0, 5));
        assert_eq!(s.ranges()[0], Range::new(0, 5));
        assert!(s.overlaps(&Range::new(14, 16)));
        assert!(!s.overlaps(&Range::new(15, 25)));
    }

    #[test]
    fn range_set_capacity_is_bounded() {
        let mut s = RangeSet::new();
        for i in 0..(MAX_RANGES as u64 + 10) {
            s.add(Range::new(i * 10, i * 10 + 5));
        }
        assert_eq!(s.ranges().len(), MAX_RANGES);
    }

    #[test]
    fn hole_above_ram_avoiding_reserved() {
        let map = pvh_16m();
        let hole = find_hole(&map, 64 * MIB, 2 * MIB, 1 << 30, 0xfc00_0000, &[]);
        assert_eq!(hole, Some(1 << 30));
        // Too big to fit below the reserved area.
        assert_eq!(
            find_hole(&map, 4 << 30, 2 * MIB, 1 << 30, 0xfc00_0000, &[]),
            None
        );
        // Skips over something in the way.
        let avoid = [Range::new((1 << 30) + 5, (1 << 30) + 7 * MIB)];
        assert_eq!(
            find_hole(&map, 64 * MIB, 2 * MIB, 1 << 30, 0xfc00_0000, &avoid),
            Some((1 << 30) + 8 * MIB)
        );
    }
}
