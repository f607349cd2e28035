//! A stream's shared buffer: the pages an `OPEN` names through its page-directory chain,
//! mapped once for the life of the open stream.
//!
//! The chain (`struct xensnd_page_directory`) is a linked list of granted directory pages,
//! each holding the next directory's grant (0 on the last) and up to
//! [`XENSND_GREFS_PER_DIR_PAGE`] buffer-page grants. Every directory page is copied out once
//! and only the copy is read. The walk is bounded by the buffer size the `OPEN` states:
//! exactly `ceil(pages / 1023)` directory pages are read, a chain that ends early, links to
//! a directory page already visited (a loop) or goes on past the last needed page is
//! refused, and every access afterwards is checked against the stated size.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use minios::platform::{Access, DomId, GrantRef, PageSet, Platform, SharedMem, PAGE_SIZE};
use xen_abi::sndif::XENSND_GREFS_PER_DIR_PAGE;

/// A buffer the frontend shares: `len` bytes over mapped pages.
pub struct GuestBuffer<M> {
    pages: PageSet<M>,
    len: usize,
}

/// Why a buffer could not be mapped or accessed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferError(pub String);

impl<M: SharedMem> GuestBuffer<M> {
    /// Walks the chain starting at `directory` for a buffer of `len` bytes (> 0) and maps
    /// its pages read-write.
    pub fn map<P: Platform<Mapping = M>>(
        platform: &P,
        frontend: DomId,
        directory: GrantRef,
        len: u32,
    ) -> Result<Self, BufferError> {
        let len = len as usize;
        let npages = len.div_ceil(PAGE_SIZE);
        let ndirs = npages.div_ceil(XENSND_GREFS_PER_DIR_PAGE);
        if npages == 0 {
            return Err(BufferError("empty buffer".into()));
        }
        let mut grefs: Vec<GrantRef> = Vec::with_capacity(npages);
        let mut visited: Vec<GrantRef> = Vec::with_capacity(ndirs);
        let mut dir = directory;
        let mut page = alloc::vec![0u8; PAGE_SIZE];
        for i in 0..ndirs {
            if visited.contains(&dir) {
                return Err(BufferError(format!(
                    "page directory {i} (gref {dir}) loops back to an earlier one"
                )));
            }
            visited.push(dir);
            let mapped = platform
                .map(frontend, dir, Access::ReadOnly)
                .map_err(|e| BufferError(format!("page directory {i} (gref {dir}): {e}")))?;
            // One copy; the frontend may keep rewriting the page.
            mapped
                .read(0, &mut page)
                .map_err(|e| BufferError(format!("page directory {i}: {e}")))?;
            drop(mapped);
            let word =
                |k: usize| u32::from_le_bytes([page[k], page[k + 1], page[k + 2], page[k + 3]]);
            let next = word(0);
            let here = (npages - grefs.len()).min(XENSND_GREFS_PER_DIR_PAGE);
            grefs.extend((0..here).map(|k| word(4 + 4 * k)));
            let last = i + 1 == ndirs;
            match (last, next) {
                (true, 0) | (false, 1..) => dir = next,
                (true, _) => {
                    return Err(BufferError(format!(
                        "page directory chain runs past the {len}-byte buffer (gref {next} after the last needed page)"
                    )))
                }
                (false, 0) => {
                    return Err(BufferError(format!(
                        "page directory chain ends after {} of {ndirs} pages",
                        i + 1
                    )))
                }
            }
        }
        let mut pages = Vec::with_capacity(npages);
        for (k, m) in platform
            .map_batch(frontend, &grefs, Access::ReadWrite)
            .into_iter()
            .enumerate()
        {
            pages.push(
                m.map_err(|e| BufferError(format!("buffer page {k} (gref {}): {e}", grefs[k])))?,
            );
        }
        let pages = PageSet::new(pages).map_err(|_| BufferError("bad page set".into()))?;
        Ok(Self { pages, len })
    }

    /// Size in bytes (as the `OPEN` stated it).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty (never, once mapped).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks `offset..offset + length` against the buffer.
    pub fn check(&self, offset: u32, length: u32) -> Result<(), BufferError> {
        match (offset as usize).checked_add(length as usize) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(BufferError(format!(
                "{length} bytes at offset {offset} beyond the {}-byte buffer",
                self.len
            ))),
        }
    }

    /// Copies `buf.len()` bytes at `offset` out of the buffer.
    pub fn read(&self, offset: u32, buf: &mut [u8]) -> Result<(), BufferError> {
        self.check(offset, buf.len() as u32)?;
        self.pages
            .read(offset as usize, buf)
            .map_err(|e| BufferError(format!("{e}")))
    }

    /// Copies `data` into the buffer at `offset`.
    pub fn write(&self, offset: u32, data: &[u8]) -> Result<(), BufferError> {
        self.check(offset, data.len() as u32)?;
        self.pages
            .write(offset as usize, data)
            .map_err(|e| BufferError(format!("{e}")))
    }
}
