//! Device registers (a BAR of a passed-through device) mapped uncached.

use core::ptr::{read_volatile, write_volatile};
use xen_abi::XenErrno;

/// A mapped register window; accesses are bounds-checked volatile loads and stores of the
/// width given (a device register is never read or written twice by accident). The mapping
/// stays for the rest of the domain's life (drivers keep their devices): dropping the value
/// does not unmap it.
#[derive(Debug)]
pub struct Mmio {
    va: usize,
    len: usize,
}

impl Mmio {
    /// Maps `len` bytes of device memory at machine address `maddr` (PV only: the
    /// toolstack gave us access to the BAR).
    pub fn map(maddr: u64, len: usize) -> Result<Self, XenErrno> {
        if !crate::arch::platform::is_pv() {
            return Err(XenErrno::ENODEV);
        }
        let offset = maddr & 0xfff;
        let pages = (offset + len as u64).div_ceil(4096);
        let va = crate::arch::x86_64::pv::map_io(maddr >> 12, pages)?;
        Ok(Self {
            va: (va + offset) as usize,
            len,
        })
    }

    /// Where the window is mapped.
    pub fn as_ptr(&self) -> *mut u8 {
        self.va as *mut u8
    }

    /// Size of the window.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn at<T>(&self, offset: usize) -> *mut T {
        let size = core::mem::size_of::<T>();
        assert!(
            offset % size == 0 && offset.checked_add(size).is_some_and(|e| e <= self.len),
            "register access of {size} bytes at {offset:#x} outside a {:#x}-byte window",
            self.len
        );
        (self.va + offset) as *mut T
    }

    /// Reads the 32-bit register at `offset`.
    pub fn read32(&self, offset: usize) -> u32 {
        // SAFETY: in bounds and aligned (checked), mapped uncached for our lifetime.
        unsafe { read_volatile(self.at::<u32>(offset)) }
    }

    /// Writes the 32-bit register at `offset`.
    pub fn write32(&self, offset: usize, value: u32) {
        // SAFETY: as for `read32`.
        unsafe { write_volatile(self.at::<u32>(offset), value) }
    }

    /// Reads the 16-bit register at `offset`.
    pub fn read16(&self, offset: usize) -> u16 {
        // SAFETY: as for `read32`.
        unsafe { read_volatile(self.at::<u16>(offset)) }
    }

    /// Writes the 16-bit register at `offset`.
    pub fn write16(&self, offset: usize, value: u16) {
        // SAFETY: as for `read32`.
        unsafe { write_volatile(self.at::<u16>(offset), value) }
    }

    /// Reads the 8-bit register at `offset`.
    pub fn read8(&self, offset: usize) -> u8 {
        // SAFETY: as for `read32`.
        unsafe { read_volatile(self.at::<u8>(offset)) }
    }

    /// Writes the 8-bit register at `offset`.
    pub fn write8(&self, offset: usize, value: u8) {
        // SAFETY: as for `read32`.
        unsafe { write_volatile(self.at::<u8>(offset), value) }
    }
}
