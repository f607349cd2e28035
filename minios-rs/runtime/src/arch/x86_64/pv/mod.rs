//! The PV x86_64 platform: a domain Xen boots straight into 64-bit mode on page tables the
//! domain builder made (`start_info` in `%rsi`). Needed where PVH is refused (PCI
//! passthrough) and faster where every VM exit is expensive (nested, emulated hardware).
//!
//! Boot: the builder loads the image at its link address (`VIRT_BASE` 0, so virtual =
//! pseudo-physical), maps the boot region and fills our hypercall page. We map shared info
//! and mask event upcalls (events are only ever polled, as on PVH), install a trap table
//! that routes CPU exceptions to the common handler, unmap the stack guard page, map the
//! rest of RAM at its pseudo-physical address and hand memory to the allocator.

pub mod boot_asm;
pub mod pagetable;

use super::early_console::EarlyConsole;
use super::hypercall;
use crate::console;
use crate::mm::memmap::{MapEntry, Range};
use crate::mm::page::PhysPage;
use crate::sync::Global;
use crate::xen::pv::update_va_mapping;
use alloc::vec;
use pagetable::{mfn_of, pfn_of, INVALID_MFN};
use xen_abi::hypercall::pv::UVMF_INVLPG;
use xen_abi::hypercall::pv::{TrapInfo, FLAT_KERNEL_CS64, PTE_ADDR_MASK, PTE_PRESENT};
use xen_abi::start_info::StartInfo;
use xen_abi::{EvtchnPort, WireStruct, XenErrno};

/// The magic prefix of a 64-bit PV `start_info`.
const START_INFO_MAGIC: &[u8] = b"xen-3.0-x86_64";
/// Bytes between two trap stubs (see `boot_asm`).
pub const TRAP_STUB_SIZE: u64 = 32;
/// RAM entry type of the memory map we hand to `mm`.
const RAM: u32 = 1;

/// What the image's glue passes to the runtime at a PV boot.
#[derive(Clone, Copy, Debug)]
pub struct BootArgs {
    /// Virtual address of `start_info` (from `%rsi`).
    pub start_info: u64,
    /// The hypercall page the builder filled (`XEN_ELFNOTE_HYPERCALL_PAGE`).
    pub hypercall_page: u64,
    /// Address of the PV trap stub for vector 0 ([`TRAP_STUB_SIZE`] bytes per vector).
    pub trap_stubs: u64,
    /// The loaded image, `.bss` included.
    pub image: Range,
    /// The page below the boot stack, to be unmapped as a guard.
    pub stack_guard: u64,
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The page whose mapping is replaced by Xen's shared info page.
static mut SHARED_INFO_PAGE: Page = Page([0; 4096]);

/// The xenstore ring from `start_info`: (page address, event channel).
static XENSTORE: Global<Option<(u64, EvtchnPort)>> = Global::new(None);

/// Boots the runtime on PV and runs `main`; see [`crate::entry!`].
///
/// # Safety
/// Called exactly once, by the PV boot assembly, on the boot stack.
pub unsafe fn boot(args: BootArgs, main: fn(crate::Runtime)) -> ! {
    super::platform::set_pv();
    // SAFETY: the builder filled this page with Xen's hypercall stubs (our ELF note).
    unsafe { hypercall::set_page(args.hypercall_page) };
    crate::arch::set_on_xen(true);
    console::init_early(EarlyConsole {
        debug_port: false,
        serial: false,
    });
    console::init_logger(log::LevelFilter::Info);

    // SAFETY: `%rsi` at entry: the builder's start_info page, mapped in the boot region.
    let raw = unsafe { core::slice::from_raw_parts(args.start_info as *const u8, StartInfo::SIZE) };
    let info = match StartInfo::read_from(raw) {
        Ok(i) if i.magic.starts_with(START_INFO_MAGIC) => i,
        _ => crate::control::fatal(format_args!("bad PV start_info at {:#x}", args.start_info)),
    };
    // SAFETY: from our start_info.
    unsafe { pagetable::init(info.pt_base, info.mfn_list, info.nr_pages) };
    // The console ring needs nothing else, so even a failure below gets logged.
    attach_console_ring(&info);
    map_shared_info(info.shared_info);
    crate::shared_info::mask_upcalls();
    install_traps(args.trap_stubs);
    // SAFETY: the guard page belongs to the image and nothing uses it.
    if let Err(e) = unsafe { pagetable::unmap(args.stack_guard) } {
        log::warn!("could not unmap the stack guard page: {e:?}");
    }

    let len = info
        .cmd_line
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(info.cmd_line.len());
    // SAFETY: once, at boot, before any reader.
    unsafe { crate::cmdline::set(&info.cmd_line[..len]) };
    let cmd = crate::cmdline::get();
    if let Some(level) = crate::cmdline::option(cmd, "loglevel").and_then(|l| l.parse().ok()) {
        log::set_max_level(level);
    }
    crate::time::init();
    let version = crate::xen::pv::xen_version().unwrap_or(0);
    log::info!(
        "minios-rt on Xen {}.{} (PV), {} pages, cmdline \"{}\"",
        version >> 16,
        version & 0xffff,
        info.nr_pages,
        cmd
    );

    // The boot region ends with the page tables and the builder's one-page stack; the
    // padding after it is mapped and free, and feeds the first new page tables.
    let first_free = (info.pt_base >> 12) + info.nr_pt_frames + 1;
    let mut next = first_free;
    let mut bump = || {
        let addr = next << 12;
        next += 1;
        // SAFETY: a frame of the padding after the boot region (or of RAM mapped before
        // it is reached): mapped, unused, ours.
        unsafe { core::ptr::write_bytes(addr as *mut u8, 0, 4096) };
        Some(addr)
    };
    match pagetable::map_ram(first_free, info.nr_pages, &mut bump) {
        Ok(n) => log::debug!("mapped {n} pages of RAM"),
        Err(e) => crate::control::fatal(format_args!("mapping RAM failed: {e:?}")),
    }
    let store = (info.store_mfn, info.store_evtchn);
    XENSTORE.with(|x| *x = Some((pfn_of(store.0) << 12, store.1)));

    let map = [MapEntry {
        addr: 0,
        size: info.nr_pages << 12,
        kind: RAM,
    }];
    let exclude = [Range::new(0, next << 12), args.image];
    // SAFETY: once at boot; all RAM is now mapped at its pseudo-physical address and
    // everything below `next` (image, boot region, new page tables) is kept out.
    let mem = match unsafe { crate::mm::init(&map, &exclude) } {
        Ok(m) => m,
        Err(e) => crate::control::fatal(format_args!("memory setup failed: {e}")),
    };
    log::info!(
        "memory: {} KiB usable in {}, image {} ({} KiB), mapping window {}",
        mem.usable_bytes / 1024,
        mem.span,
        args.image,
        args.image.len() / 1024,
        mem.window
    );
    crate::start(main)
}

/// Maps Xen's shared info page (a machine address) over our `SHARED_INFO_PAGE`.
fn map_shared_info(maddr: u64) {
    let va = (&raw const SHARED_INFO_PAGE) as u64;
    // SAFETY: the static page is never accessed as Rust memory, only through
    // `shared_info`'s atomics once its address is recorded below; its L1 table exists
    // (the image lies in the boot region).
    let mapped = unsafe { pagetable::map_frame(va, maddr >> 12, &mut || None) };
    if let Err(e) = mapped {
        crate::control::fatal(format_args!("mapping shared info failed: {e:?}"));
    }
    // SAFETY: the page now is Xen's shared info for the rest of the run.
    unsafe { crate::shared_info::set_address(va) };
}

/// Vectors that get a trap-table entry: the CPU exceptions 0–19 except NMI (delivered
/// through its own callback) and the reserved vector 15.
const TRAP_VECTORS: usize = 18;

/// The virtual trap table for stubs at `stubs`: one entry per exception vector we handle,
/// then the zero terminator Xen expects.
pub fn trap_table(stubs: u64) -> [TrapInfo; TRAP_VECTORS + 1] {
    let mut table = [TrapInfo::default(); TRAP_VECTORS + 1];
    let vectors = (0..20u8).filter(|&v| v != 2 && v != 15);
    for (slot, vector) in table.iter_mut().zip(vectors) {
        *slot = TrapInfo {
            vector,
            // int3 and into may be raised with an instruction from our (ring 3) code.
            flags: if vector == 3 || vector == 4 { 3 } else { 0 },
            cs: FLAT_KERNEL_CS64,
            address: stubs + u64::from(vector) * TRAP_STUB_SIZE,
        };
    }
    table
}

/// Routes CPU exceptions to the common handler through the PV trap stubs.
fn install_traps(stubs: u64) {
    if let Err(e) = crate::xen::pv::set_trap_table(&trap_table(stubs)) {
        log::warn!("no trap table ({e:?}): a CPU exception will crash the domain silently");
    }
}

/// Switches logging to the PV console ring from `start_info`.
fn attach_console_ring(info: &StartInfo) {
    let mfn = info.console_mfn();
    if mfn == 0 {
        log::warn!("no PV console ring");
        return;
    }
    // SAFETY: the console page is part of the boot region, mapped at its pseudo-physical
    // address, and only ring code accesses it.
    let page = unsafe { PhysPage::new(pfn_of(mfn) << 12, true) };
    console::attach_ring(page, info.console_evtchn(), false);
}

/// The xenstore ring page and event channel.
pub fn xenstore_ring() -> Option<(PhysPage, EvtchnPort)> {
    let (addr, port) = XENSTORE.with(|x| *x)?;
    // SAFETY: the xenstore page is part of the boot region, mapped at its pseudo-physical
    // address; only the ring code accesses it.
    Some((unsafe { PhysPage::new(addr, true) }, port))
}

/// Makes sure a page table exists for window address `va`, so Xen can put a foreign or
/// grant-table page there.
pub fn prepare_window(va: u64) -> Result<(), XenErrno> {
    pagetable::l1_entry(va, &mut || crate::mm::alloc_pages(1)).map(drop)
}

/// The machine frame behind our address `addr` (RAM, or a page mapped in the window).
pub fn frame_of(addr: u64) -> u64 {
    match mfn_of(addr >> 12) {
        INVALID_MFN => {
            let pte = pagetable::pte_of(addr);
            if pte & PTE_PRESENT == 0 {
                INVALID_MFN
            } else {
                (pte & PTE_ADDR_MASK) >> 12
            }
        }
        mfn => mfn,
    }
}

/// Makes the `n` pages at `va` (ours, mapped at their pseudo-physical address, `n` a power
/// of two) machine-contiguous, trading them with Xen (`XENMEM_exchange`) unless they already
/// are; returns the first machine frame. The pages' contents are lost (they come back
/// zeroed). On failure the original pages stay in place.
///
/// # Safety
/// Nothing may use the pages during the call (they are unmapped for a moment).
pub unsafe fn make_contiguous(va: u64, n: u64) -> Result<u64, XenErrno> {
    let first_pfn = va >> 12;
    let mut mfns: alloc::vec::Vec<u64> = (0..n).map(|i| mfn_of(first_pfn + i)).collect();
    if mfns.contains(&INVALID_MFN) {
        return Err(XenErrno::EINVAL);
    }
    if mfns.windows(2).all(|w| w[1] == w[0] + 1) {
        return Ok(mfns[0]);
    }
    let original = mfns.clone();
    let remap = |mfns: &mut dyn Iterator<Item = u64>| -> Result<(), XenErrno> {
        for (i, mfn) in mfns.enumerate() {
            let page = va + i as u64 * 4096;
            // SAFETY: the page is ours (caller's guarantee) and `mfn` backs it now.
            unsafe { pagetable::set_mfn(first_pfn + i as u64, mfn) };
            // SAFETY: as above.
            unsafe { update_va_mapping(page, (mfn << 12) | pagetable::PTE_DATA, UVMF_INVLPG) }?;
        }
        Ok(())
    };
    for i in 0..n {
        // SAFETY: nobody uses the page during the call (caller's guarantee); Xen only takes
        // pages that nothing maps.
        unsafe { update_va_mapping(va + i * 4096, 0, UVMF_INVLPG) }?;
    }
    // SAFETY: the pages are ours and unmapped; their pfns are `first_pfn..`.
    match unsafe { crate::xen::memory::exchange_for_contiguous(&mut mfns, first_pfn) } {
        Ok(first) => {
            remap(&mut (first..first + n))?;
            // SAFETY: the pages are mapped again and still unused.
            unsafe { core::ptr::write_bytes(va as *mut u8, 0, (n * 4096) as usize) };
            Ok(first)
        }
        Err(e) => {
            remap(&mut original.into_iter())?;
            Err(e)
        }
    }
}

/// Maps `pages` frames of device memory from machine frame `mfn` (a BAR we were given
/// access to) uncached into window space; returns the address of the first.
pub fn map_io(mfn: u64, pages: u64) -> Result<u64, XenErrno> {
    let pfn = crate::mm::alloc_window(pages).ok_or(XenErrno::ENOMEM)?;
    let va = pfn << 12;
    for i in 0..pages {
        // SAFETY: fresh window space: nothing was mapped there; the frame is device memory
        // (Xen refuses the update otherwise).
        let r = unsafe {
            pagetable::map_io_frame(va + i * 4096, mfn + i, &mut || crate::mm::alloc_pages(1))
        };
        if let Err(e) = r {
            for j in 0..i {
                // SAFETY: we just mapped it and nothing uses it yet.
                let _ = unsafe { pagetable::unmap(va + j * 4096) };
            }
            crate::mm::free_window(pfn, pages);
            return Err(e);
        }
    }
    Ok(va)
}

/// Makes grant-table frame `idx` appear at `table + idx * 4096`.
///
/// # Safety
/// `table` must be window space reserved for more than `idx` frames.
pub unsafe fn map_grant_table_frame(table: u64, idx: u32) -> Result<(), XenErrno> {
    let mut frames = vec![0u64; idx as usize + 1];
    crate::xen::gnttab::setup_table(&mut frames)?;
    let va = table + u64::from(idx) * 4096;
    // SAFETY: window space reserved for the table (caller's guarantee): nothing mapped.
    unsafe { pagetable::map_frame(va, frames[idx as usize], &mut || crate::mm::alloc_pages(1)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn trap_table_covers_the_exceptions_and_ends_with_the_terminator() {
        let t = trap_table(0x10_0000);
        let vectors: Vec<u8> = t[..TRAP_VECTORS].iter().map(|e| e.vector).collect();
        let expected: Vec<u8> = (0..20).filter(|&v| v != 2 && v != 15).collect();
        assert_eq!(vectors, expected);
        for e in &t[..TRAP_VECTORS] {
            assert_eq!(e.address, 0x10_0000 + u64::from(e.vector) * TRAP_STUB_SIZE);
            assert_eq!(e.cs, FLAT_KERNEL_CS64);
            let dpl = if matches!(e.vector, 3 | 4) { 3 } else { 0 };
            assert_eq!(e.flags, dpl, "vector {}", e.vector);
        }
        assert_eq!(
            t[TRAP_VECTORS].address, 0,
            "Xen stops at an entry with address 0"
        );
    }
}
