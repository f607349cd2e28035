//! The PVH x86_64 platform: boot, shared info, rings from HVM parameters, grant-table frames
//! placed in the unpopulated address window.

pub mod boot_asm;
pub mod start_info;

use super::early_console::EarlyConsole;
use super::{descriptors, hypercall, paging};
use crate::console;
use crate::mm::memmap::{MapEntry, Range};
use crate::mm::page::PhysPage;
use xen_abi::hypercall::hvm::{
    HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN,
};
use xen_abi::hypercall::memory::{E820Entry, XENMAPSPACE_GRANT_TABLE, XENMAPSPACE_SHARED_INFO};
use xen_abi::EvtchnPort;
use xen_abi::XenErrno;

/// Without Xen (QEMU's own PVH loader, SeaBIOS) memory below this holds firmware and boot
/// data and is left alone. Under Xen the map is accurate and only page 0 is skipped.
const LOW_MEMORY: u64 = 1 << 20;
/// Memory map entries we accept.
const MAX_MAP_ENTRIES: usize = 128;

/// What the image's glue passes to the runtime at boot.
#[derive(Clone, Copy, Debug)]
pub struct BootArgs {
    /// Physical address of `hvm_start_info` (from `%ebx`).
    pub start_info: u64,
    /// Address of interrupt stub 0 (16 bytes per vector).
    pub idt_stubs: u64,
    /// The loaded image, `.bss` included (linker symbols `__image_start`/`__image_end`).
    pub image: Range,
    /// The page below the boot stack, to be unmapped as a guard.
    pub stack_guard: u64,
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The page whose frame Xen replaces with the shared info page.
static mut SHARED_INFO_PAGE: Page = Page([0; 4096]);

/// Boots the runtime and runs `main`; see [`crate::entry!`].
///
/// # Safety
/// Called exactly once, by the boot assembly, on the boot stack with interrupts off.
pub unsafe fn boot(args: BootArgs, main: fn(crate::Runtime)) -> ! {
    // SAFETY: early boot, interrupts off, `idt_stubs` comes from the boot assembly.
    unsafe { descriptors::init(args.idt_stubs) };
    // SAFETY: the guard page belongs to the image and nothing uses it.
    unsafe { paging::unmap_guard_page(args.stack_guard) };
    let xen = hypercall::detect();
    crate::arch::set_on_xen(xen.is_some());
    console::init_early(EarlyConsole {
        debug_port: true,
        serial: xen.is_none(),
    });
    console::init_logger(log::LevelFilter::Info);

    // SAFETY: `start_info` is the PVH entry's %ebx.
    let Some(info) = (unsafe { start_info::read(args.start_info) }) else {
        crate::control::fatal(format_args!("bad hvm_start_info at {:#x}", args.start_info));
    };
    let mut cmdline = [0u8; crate::cmdline::MAX_LEN];
    // SAFETY: `info` is valid; the command line is still intact this early.
    let len = unsafe { start_info::read_cmdline(info.cmdline_paddr, &mut cmdline) };
    // SAFETY: once, at boot, before any reader.
    unsafe { crate::cmdline::set(&cmdline[..len]) };
    let cmd = crate::cmdline::get();
    if let Some(level) = crate::cmdline::option(cmd, "loglevel").and_then(|l| l.parse().ok()) {
        log::set_max_level(level);
    }

    if let Some(xen) = &xen {
        // SAFETY: under Xen, once, identity-mapped.
        unsafe { hypercall::install_via_msr(xen) };
        map_shared_info();
        crate::time::init();
        attach_console_ring(crate::cmdline::flag(cmd, "console.e9"));
        log::info!(
            "minios-rt on Xen {}.{} (PVH), start_info v{}, cmdline \"{}\"",
            xen.version >> 16,
            xen.version & 0xffff,
            info.version,
            cmd
        );
    } else {
        log::info!("minios-rt: no Xen (plain QEMU bring-up), cmdline \"{cmd}\"");
    }

    let mut map = [MapEntry::default(); MAX_MAP_ENTRIES];
    let n = memory_map(&info, &mut map, xen.is_some());
    for e in &map[..n] {
        log::debug!("memory map: {:#x}+{:#x} type {}", e.addr, e.size, e.kind);
    }
    let low = if xen.is_some() { 4096 } else { LOW_MEMORY };
    let exclude = [Range::new(0, low), args.image];
    // SAFETY: once at boot; the map's RAM minus our image and low memory is unused (boot
    // data we still needed has been copied out above).
    let mem = match unsafe { crate::mm::init(&map[..n], &exclude) } {
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

    if xen.is_none() {
        crate::selftest::run();
        crate::control::shutdown(crate::control::Shutdown::Poweroff);
    }

    crate::start(main)
}

/// Places Xen's shared info page at our `SHARED_INFO_PAGE` frame.
fn map_shared_info() {
    let addr = (&raw const SHARED_INFO_PAGE) as u64;
    // SAFETY: the static page is ours and is never accessed as Rust memory: only through
    // `shared_info`'s atomics once its address is recorded below.
    let mapped =
        unsafe { crate::xen::memory::add_to_physmap(XENMAPSPACE_SHARED_INFO, 0, addr >> 12) };
    if let Err(e) = mapped {
        crate::control::fatal(format_args!("mapping shared info failed: {e:?}"));
    }
    // SAFETY: the frame now holds Xen's shared info page for the rest of the run; the static
    // is only ever accessed through `shared_info`'s atomics from here on.
    unsafe { crate::shared_info::set_address(addr) };
}

/// Switches logging to the PV console ring named by the HVM parameters.
fn attach_console_ring(keep_e9: bool) {
    match ring_params(HVM_PARAM_CONSOLE_PFN, HVM_PARAM_CONSOLE_EVTCHN) {
        Some((page, port)) => {
            let pfn = page.pfn();
            console::attach_ring(page, port, keep_e9);
            log::debug!("console ring at frame {pfn:#x}, event channel {port}");
        }
        None => log::warn!("no PV console ring: logging to port 0xe9 only"),
    }
}

/// The page and event channel of a ring Xen set up for us (console, xenstore).
fn ring_params(pfn_param: u32, evtchn_param: u32) -> Option<(PhysPage, EvtchnPort)> {
    let pfn = crate::xen::hvm::get_param(pfn_param)
        .ok()
        .filter(|&p| p != 0)?;
    let port = crate::xen::hvm::get_param(evtchn_param).ok()?;
    // SAFETY: Xen reserved this special page for the ring; it is outside the RAM we hand
    // out and identity-mapped (below 4 GiB), and only ring code accesses it.
    let page = unsafe { PhysPage::new(pfn << 12, true) };
    Some((page, port as EvtchnPort))
}

/// The xenstore ring page and event channel.
pub fn xenstore_ring() -> Option<(PhysPage, EvtchnPort)> {
    ring_params(HVM_PARAM_STORE_PFN, HVM_PARAM_STORE_EVTCHN)
}

/// Reads the memory map: from Xen (`XENMEM_memory_map`) when available, else from the
/// start info (version 1 has one; Xen may hand out version 0 without).
fn memory_map(info: &xen_abi::start_info::HvmStartInfo, out: &mut [MapEntry], xen: bool) -> usize {
    if xen {
        let mut raw = [E820Entry::default(); MAX_MAP_ENTRIES];
        match crate::xen::memory::memory_map(&mut raw) {
            Ok(n) => {
                for (o, e) in out.iter_mut().zip(&raw[..n]) {
                    *o = MapEntry {
                        addr: e.addr,
                        size: e.size,
                        kind: e.type_,
                    };
                }
                return n.min(out.len());
            }
            Err(e) => log::warn!("XENMEM_memory_map failed ({e:?}); using start_info's map"),
        }
    }
    // SAFETY: `info` was read and validated at boot.
    unsafe { start_info::read_memmap(info, out) }
}

/// Makes grant-table frame `idx` appear at `table + idx * 4096`.
///
/// # Safety
/// `table` must be window space reserved for more than `idx` frames.
pub unsafe fn map_grant_table_frame(table: u64, idx: u32) -> Result<(), XenErrno> {
    let gpfn = (table >> 12) + u64::from(idx);
    // SAFETY: the frame lies in window space reserved for the table (caller's guarantee):
    // no RAM, nothing else mapped there.
    unsafe { crate::xen::memory::add_to_physmap(XENMAPSPACE_GRANT_TABLE, idx.into(), gpfn) }
}
