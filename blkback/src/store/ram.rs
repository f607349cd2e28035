//! RAM volumes: the whole volume in the driver domain's memory, allocated at start (so a
//! volume that does not fit is refused at start, not by a failed write later).
//!
//! Data moves straight between the guest's pages and the volume's memory (one copy). A
//! flush has nothing to do: memory is the store. A discard zeroes the range, so discarded
//! data is gone (`discard-secure`). Contents live as long as the driver domain.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use super::{
    check_range, Completion, DataPort, DiscardInfo, Io, Started, StoreError, Volume, VolumeInfo,
};

/// Bytes per allocation: the volume is a list of chunks, so it needs no huge contiguous
/// allocation.
pub const CHUNK: usize = 1 << 20;

#[derive(Debug)]
struct RamData {
    chunks: Vec<Vec<u8>>,
}

impl RamData {
    /// The byte ranges of `offset..offset+len` in the chunks, as (chunk, start, end).
    fn pieces(&self, offset: u64, len: u64) -> impl Iterator<Item = (usize, usize, usize)> {
        let mut pos = offset;
        let end = offset + len;
        core::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let chunk = (pos / CHUNK as u64) as usize;
            let start = (pos % CHUNK as u64) as usize;
            let n = (CHUNK - start).min((end - pos) as usize);
            pos += n as u64;
            Some((chunk, start, start + n))
        })
    }
}

/// A RAM volume. Cloning gives another handle on the same memory (two devices attached to
/// one volume see each other's writes).
#[derive(Clone, Debug)]
pub struct RamVolume {
    info: VolumeInfo,
    data: Rc<RefCell<RamData>>,
}

impl RamVolume {
    /// Allocates a zeroed volume of `size` bytes (a multiple of `sector_size`, which is 512
    /// or 4096). Fails with [`StoreError::NoMemory`] when the memory is not there.
    pub fn create(
        name: &str,
        size: u64,
        sector_size: u32,
        read_only: bool,
    ) -> Result<Self, StoreError> {
        let total = usize::try_from(size).map_err(|_| StoreError::NoMemory)?;
        let mut chunks = Vec::new();
        chunks
            .try_reserve_exact(total.div_ceil(CHUNK))
            .map_err(|_| StoreError::NoMemory)?;
        let mut left = total;
        while left > 0 {
            let n = left.min(CHUNK);
            let mut chunk = Vec::new();
            chunk
                .try_reserve_exact(n)
                .map_err(|_| StoreError::NoMemory)?;
            chunk.resize(n, 0);
            chunks.push(chunk);
            left -= n;
        }
        let discard = (!read_only).then_some(DiscardInfo {
            granularity: sector_size,
            alignment: 0,
            secure: true,
        });
        Ok(Self {
            info: VolumeInfo {
                name: String::from(name),
                size,
                sector_size,
                read_only,
                discard,
            },
            data: Rc::new(RefCell::new(RamData { chunks })),
        })
    }

    /// Another handle on this volume, read-only if `read_only` (a device attached with
    /// `access=ro` to a writable volume).
    pub fn handle(&self, read_only: bool) -> RamVolume {
        let mut h = self.clone();
        if read_only && !h.info.read_only {
            h.info.read_only = true;
            h.info.discard = None;
        }
        h
    }

    fn run(&mut self, io: Io, port: &mut dyn DataPort) -> Result<(), StoreError> {
        let size = self.info.size;
        let mut data = self.data.borrow_mut();
        match io {
            Io::Read { offset, len } => {
                check_range(offset, len, size)?;
                let pieces: Vec<(usize, usize, usize)> = data.pieces(offset, len).collect();
                let bufs: Vec<&[u8]> = pieces
                    .iter()
                    .map(|&(c, s, e)| &data.chunks[c][s..e])
                    .collect();
                port.scatter(0, &bufs)
            }
            Io::Write { offset, len } => {
                if self.info.read_only {
                    return Err(StoreError::ReadOnly);
                }
                check_range(offset, len, size)?;
                let pieces: Vec<(usize, usize, usize)> = data.pieces(offset, len).collect();
                // Hand out disjoint mutable pieces: the ranges are increasing and within
                // distinct chunks or disjoint ranges of one chunk.
                let mut bufs: Vec<&mut [u8]> = Vec::with_capacity(pieces.len());
                let mut rest: &mut [Vec<u8>] = &mut data.chunks;
                let mut base = 0usize;
                for &(c, s, e) in &pieces {
                    let (_, tail) = core::mem::take(&mut rest).split_at_mut(c - base);
                    let (chunk, after) = tail.split_at_mut(1);
                    bufs.push(&mut chunk[0][s..e]);
                    rest = after;
                    base = c + 1;
                }
                port.gather(0, &mut bufs)
            }
            Io::Flush => Ok(()),
            Io::Discard { offset, len, .. } => {
                if self.info.read_only {
                    return Err(StoreError::ReadOnly);
                }
                check_range(offset, len, size)?;
                let pieces: Vec<(usize, usize, usize)> = data.pieces(offset, len).collect();
                for (c, s, e) in pieces {
                    data.chunks[c][s..e].fill(0);
                }
                Ok(())
            }
        }
    }
}

impl Volume for RamVolume {
    fn info(&self) -> &VolumeInfo {
        &self.info
    }

    fn start(&mut self, _tag: u64, io: Io, data: &mut dyn DataPort) -> Started {
        Started::Done(self.run(io, data))
    }

    fn completed(&mut self) -> Option<Completion> {
        None
    }

    fn in_flight(&self) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// A port over a plain buffer.
    struct Buf(Vec<u8>);

    impl DataPort for Buf {
        fn gather(&mut self, pos: usize, bufs: &mut [&mut [u8]]) -> Result<(), StoreError> {
            let mut at = pos;
            for b in bufs.iter_mut() {
                b.copy_from_slice(&self.0[at..at + b.len()]);
                at += b.len();
            }
            Ok(())
        }
        fn scatter(&mut self, pos: usize, bufs: &[&[u8]]) -> Result<(), StoreError> {
            let mut at = pos;
            for b in bufs {
                self.0[at..at + b.len()].copy_from_slice(b);
                at += b.len();
            }
            Ok(())
        }
    }

    #[test]
    fn writes_read_back_across_chunks() {
        let mut v = RamVolume::create("v", 3 * CHUNK as u64, 512, false).unwrap();
        let pattern: Vec<u8> = (0..CHUNK + 8192).map(|i| (i * 7 % 251) as u8).collect();
        let offset = CHUNK as u64 - 4096;
        let len = pattern.len() as u64;
        let w = v.start(1, Io::Write { offset, len }, &mut Buf(pattern.clone()));
        assert_eq!(w, Started::Done(Ok(())));
        let mut out = Buf(vec![0; pattern.len()]);
        assert_eq!(
            v.start(2, Io::Read { offset, len }, &mut out),
            Started::Done(Ok(()))
        );
        assert_eq!(out.0, pattern);
        // Another handle sees the data; discard zeroes.
        let mut h = v.handle(false);
        let d = Io::Discard {
            offset,
            len: 4096,
            secure: false,
        };
        assert_eq!(h.start(3, d, &mut Buf(vec![])), Started::Done(Ok(())));
        let mut out = Buf(vec![1; 8192]);
        h.start(4, Io::Read { offset, len: 8192 }, &mut out);
        assert!(out.0[..4096].iter().all(|&b| b == 0));
        assert_eq!(&out.0[4096..], &pattern[4096..8192]);
    }

    #[test]
    fn read_only_and_range_are_enforced() {
        let v = RamVolume::create("v", 1 << 20, 4096, false).unwrap();
        let mut ro = v.handle(true);
        assert!(ro.info().read_only && ro.info().discard.is_none());
        let w = Io::Write {
            offset: 0,
            len: 4096,
        };
        assert_eq!(
            ro.start(1, w, &mut Buf(vec![0; 4096])),
            Started::Done(Err(StoreError::ReadOnly))
        );
        let mut rw = v.handle(false);
        let past = Io::Read {
            offset: (1 << 20) - 512,
            len: 1024,
        };
        assert_eq!(
            rw.start(2, past, &mut Buf(vec![0; 1024])),
            Started::Done(Err(StoreError::OutOfRange))
        );
        assert_eq!(
            rw.start(3, Io::Flush, &mut Buf(vec![])),
            Started::Done(Ok(()))
        );
    }

    #[test]
    fn too_large_is_refused() {
        assert_eq!(
            RamVolume::create("huge", 1 << 62, 512, false).unwrap_err(),
            StoreError::NoMemory
        );
    }
}
