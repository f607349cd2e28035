//! [`PhysPage`]: bounded access to one page of our physical memory that another domain also
//! sees (a ring page, a page we granted, a foreign page we mapped).

use crate::arch::cpu::copy_bytes;
use core::sync::atomic::{AtomicU32, Ordering};
use minios::platform::{check_range, check_word, MemError, SharedMem, PAGE_SIZE};

/// One 4 KiB page at a fixed address in our identity-mapped physical memory.
///
/// Reads and writes are single-pass byte copies the compiler cannot merge or repeat; 32-bit
/// loads and stores are atomic (acquire/release), as ring protocols require.
#[derive(Debug)]
pub struct PhysPage {
    addr: usize,
    writable: bool,
}

impl PhysPage {
    /// Wraps the page at physical (= virtual) address `addr`.
    ///
    /// # Safety
    /// `addr` must be page aligned and the page must stay mapped and not be used as Rust
    /// memory (no references into it) for as long as the returned value or copies made from
    /// its address exist.
    pub unsafe fn new(addr: u64, writable: bool) -> Self {
        debug_assert_eq!(addr % PAGE_SIZE as u64, 0);
        Self {
            addr: addr as usize,
            writable,
        }
    }

    /// Physical address of the page.
    pub fn addr(&self) -> u64 {
        self.addr as u64
    }

    /// Guest frame number of the page.
    pub fn pfn(&self) -> u64 {
        self.addr as u64 / PAGE_SIZE as u64
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: `offset` was checked to be a 4-aligned in-bounds offset; the page is
        // mapped for our lifetime (constructor contract) and only accessed atomically or via
        // raw copies, never through Rust references to plain data.
        unsafe { AtomicU32::from_ptr((self.addr + offset) as *mut u32) }
    }
}

impl SharedMem for PhysPage {
    fn size(&self) -> usize {
        PAGE_SIZE
    }

    fn writable(&self) -> bool {
        self.writable
    }

    fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), MemError> {
        check_range(offset, buf.len(), PAGE_SIZE)?;
        // SAFETY: in bounds of the mapped page (checked above); `buf` is private memory.
        unsafe {
            copy_bytes(
                buf.as_mut_ptr(),
                (self.addr + offset) as *const u8,
                buf.len(),
            )
        };
        Ok(())
    }

    fn write(&self, offset: usize, data: &[u8]) -> Result<(), MemError> {
        check_range(offset, data.len(), PAGE_SIZE)?;
        if !self.writable {
            return Err(MemError::ReadOnly);
        }
        // SAFETY: in bounds of the mapped, writable page (checked above).
        unsafe { copy_bytes((self.addr + offset) as *mut u8, data.as_ptr(), data.len()) };
        Ok(())
    }

    fn load_u32(&self, offset: usize) -> Result<u32, MemError> {
        check_word(offset, PAGE_SIZE)?;
        Ok(self.word(offset).load(Ordering::Acquire))
    }

    fn store_u32(&self, offset: usize, value: u32) -> Result<(), MemError> {
        check_word(offset, PAGE_SIZE)?;
        if !self.writable {
            return Err(MemError::ReadOnly);
        }
        self.word(offset).store(value, Ordering::Release);
        Ok(())
    }
}
