//! Reading `hvm_start_info` and what it points to (command line, memory map) out of
//! physical memory, right at boot, before anything can overwrite it.

use crate::mm::memmap::MapEntry;
use xen_abi::start_info::{HvmMemmapTableEntry, HvmStartInfo};
use xen_abi::WireStruct;

/// Reads `len` bytes of physical memory at `addr` into `out`.
///
/// # Safety
/// `[addr, addr + len)` must be identity-mapped memory that is not concurrently written.
unsafe fn read_phys(addr: u64, out: &mut [u8]) {
    // SAFETY: guaranteed by the caller.
    unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, out.as_mut_ptr(), out.len()) };
}

/// Copies the `hvm_start_info` at `addr`; `None` if its magic is wrong.
///
/// # Safety
/// `addr` is the value the PVH entry received in `%ebx`.
pub unsafe fn read(addr: u64) -> Option<HvmStartInfo> {
    let mut raw = [0u8; HvmStartInfo::SIZE];
    // SAFETY: the start info lies in RAM below 4 GiB (PVH ABI), identity-mapped.
    unsafe { read_phys(addr, &mut raw) };
    HvmStartInfo::read_from(&raw)
        .ok()
        .filter(HvmStartInfo::is_valid)
}

/// Copies the NUL-terminated command line at `addr` (at most `out.len()` bytes); returns
/// its length. `addr == 0` means no command line.
///
/// # Safety
/// `addr` is `cmdline_paddr` from a valid start info.
pub unsafe fn read_cmdline(addr: u64, out: &mut [u8]) -> usize {
    if addr == 0 {
        return 0;
    }
    for (i, b) in out.iter_mut().enumerate() {
        // SAFETY: the loader placed a NUL-terminated string there; we stop at the NUL.
        unsafe { read_phys(addr + i as u64, core::slice::from_mut(b)) };
        if *b == 0 {
            return i;
        }
    }
    out.len()
}

/// Copies up to `out.len()` memory map entries from the start info's table; returns how many.
///
/// # Safety
/// `info` is a valid start info read with [`read`].
pub unsafe fn read_memmap(info: &HvmStartInfo, out: &mut [MapEntry]) -> usize {
    let Some((table, count)) = info.memmap() else {
        return 0;
    };
    let n = (count as usize).min(out.len());
    for (i, slot) in out[..n].iter_mut().enumerate() {
        let mut raw = [0u8; HvmMemmapTableEntry::SIZE];
        // SAFETY: the table has `count` entries (PVH ABI).
        unsafe { read_phys(table + (i * HvmMemmapTableEntry::SIZE) as u64, &mut raw) };
        if let Ok(e) = HvmMemmapTableEntry::read_from(&raw) {
            *slot = MapEntry {
                addr: e.addr,
                size: e.size,
                kind: e.type_,
            };
        }
    }
    n
}
