//! `virtio_drivers::Hal` for a PV domain: DMA memory and buffers are given to the device by
//! machine address (the IOMMU maps our pages that way); device registers are BARs mapped
//! uncached by machine frame.

use alloc::vec::Vec;
use core::ptr::NonNull;

use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use crate::dma::{contiguous_machine_addr, DmaRegion};
use crate::mmio::Mmio;
use crate::sync::Global;

/// BARs mapped so far: (machine address, length, our address).
static BARS: Global<Vec<(u64, usize, usize)>> = Global::new(Vec::new());
/// Buffers shared through a bounce region: (device address, pages, region address).
static BOUNCES: Global<Vec<(u64, u64, u64)>> = Global::new(Vec::new());

/// Maps a memory BAR (once) so that the transport's registers inside it resolve; returns
/// our address of it.
pub fn map_bar(maddr: u64, len: usize) -> Result<usize, xen_abi::XenErrno> {
    if let Some(&(_, _, va)) = BARS
        .with(|b| b.iter().find(|(m, l, _)| *m == maddr && *l >= len).copied())
        .as_ref()
    {
        return Ok(va);
    }
    let mmio = Mmio::map(maddr, len)?;
    // Register mappings last as long as the domain (drivers keep their devices).
    let va = mmio.as_ptr() as usize;
    BARS.with(|b| b.push((maddr, len, va)));
    Ok(va)
}

/// The Hal of this runtime.
pub struct XenHal;

// SAFETY: allocations are fresh zeroed pages that alias nothing until freed; register
// addresses come from BAR mappings made for exactly those machine ranges; shared buffers
// are translated (or bounced) for the device and never moved.
unsafe impl Hal for XenHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match DmaRegion::alloc(pages as u64) {
            Ok(region) => {
                let (va, _, maddr) = region.into_raw();
                (
                    maddr,
                    NonNull::new(va as *mut u8).unwrap_or(NonNull::dangling()),
                )
            }
            Err(e) => {
                log::warn!("virtio: no DMA memory for {pages} pages: {e:?}");
                (0, NonNull::dangling())
            }
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let rounded = (pages as u64).max(1).next_power_of_two();
        // SAFETY: allocated by `dma_alloc` with the same rounding; the caller guarantees
        // the device no longer uses it.
        unsafe { DmaRegion::free_raw(vaddr.as_ptr() as u64, rounded) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let found = BARS.with(|b| {
            b.iter().find_map(|&(m, l, va)| {
                let end = m + l as u64;
                (paddr >= m && paddr.checked_add(size as u64).is_some_and(|e| e <= end))
                    .then(|| va + (paddr - m) as usize)
            })
        });
        let va = match found {
            Some(va) => va,
            None => match map_bar(paddr, size) {
                Ok(va) => va,
                // The trait cannot return an error; the BARs were mapped (and their
                // permissions proven) before the transport was created.
                Err(e) => panic!("cannot map device registers at {paddr:#x}: {e:?}"),
            },
        };
        NonNull::new(va as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let va = buffer.as_ptr() as *mut u8 as u64;
        let len = buffer.len() as u64;
        if let Some(maddr) = contiguous_machine_addr(va, len) {
            return maddr;
        }
        // The buffer crosses into a frame that is not the next machine frame: bounce.
        let pages = len.div_ceil(4096);
        let Ok(region) = DmaRegion::alloc(pages) else {
            log::warn!("virtio: no bounce memory for {len} bytes");
            return 0;
        };
        let (rva, rpages, maddr) = region.into_raw();
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: `buffer` is valid for `len` bytes (caller) and the region is ours.
            unsafe {
                core::ptr::copy_nonoverlapping(va as *const u8, rva as *mut u8, len as usize)
            };
        }
        BOUNCES.with(|b| b.push((maddr, rpages, rva)));
        maddr
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let Some((_, pages, rva)) = BOUNCES.with(|b| {
            let i = b.iter().position(|&(m, _, _)| m == paddr)?;
            Some(b.swap_remove(i))
        }) else {
            return;
        };
        if direction != BufferDirection::DriverToDevice {
            let va = buffer.as_ptr() as *mut u8;
            // SAFETY: the buffer is valid for its length (caller), the region holds as many.
            unsafe { core::ptr::copy_nonoverlapping(rva as *const u8, va, buffer.len()) };
        }
        // SAFETY: the device is done with the region (the caller unshares after use).
        unsafe { DmaRegion::free_raw(rva, pages) };
    }
}
