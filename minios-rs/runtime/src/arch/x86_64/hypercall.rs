//! Issuing hypercalls through the hypercall page.
//!
//! Xen fills a page of ours with one 32-byte stub per hypercall (`mov $nr, %eax; vmcall`
//! or `vmmcall`, whichever this CPU needs). A PVH guest asks for it by writing the page's
//! physical address to the MSR that CPUID leaf `base + 2` names; a PV guest would get it
//! from its ELF note instead, so only [`install_via_msr`] is PVH-specific.
//!
//! x86_64 hypercall ABI: arguments in rdi, rsi, rdx, r10, r8; result in rax (negative =
//! `-errno`). Xen may clobber the argument registers, so they are all declared clobbered.

use super::cpu;
use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};
use xen_abi::hypercall::HYPERCALL_STUB_SIZE;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

static mut HYPERCALL_PAGE: Page = Page([0; 4096]);
/// Address of the installed hypercall page; 0 until [`install_via_msr`] ran.
static PAGE_ADDR: AtomicU64 = AtomicU64::new(0);

/// What CPUID tells us about the Xen we run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenCpuid {
    /// First CPUID leaf of Xen's range (0x40000000, or higher when Xen sits behind a
    /// Viridian/Hyper-V leaf range).
    pub base: u32,
    /// Xen version: major in the high 16 bits, minor in the low.
    pub version: u32,
    /// MSR to write the hypercall page's physical address to.
    pub hypercall_msr: u32,
}

/// Looks for Xen's CPUID signature "XenVMMXenVMM" in leaves 0x40000000..0x40010000 (step
/// 0x100). `None` on bare metal or another hypervisor (plain QEMU).
pub fn detect() -> Option<XenCpuid> {
    (0x4000_0000u32..0x4001_0000)
        .step_by(0x100)
        .find_map(|base| {
            let (max, b, c, d) = cpu::cpuid(base);
            let sig = [b.to_le_bytes(), c.to_le_bytes(), d.to_le_bytes()];
            if sig != [*b"XenV", *b"MMXe", *b"nVMM"] || max < base + 2 {
                return None;
            }
            let (version, ..) = cpu::cpuid(base + 1);
            let (_pages, msr, ..) = cpu::cpuid(base + 2);
            Some(XenCpuid {
                base,
                version,
                hypercall_msr: msr,
            })
        })
}

/// Asks Xen to fill our hypercall page (HVM/PVH method).
///
/// # Safety
/// Only under Xen (`xen` from [`detect`]), once, in ring 0, with the identity mapping
/// active (the page's virtual address is its physical address).
pub unsafe fn install_via_msr(xen: &XenCpuid) {
    let addr = (&raw const HYPERCALL_PAGE) as u64;
    // SAFETY: guaranteed by the caller; the MSR is Xen's documented hypercall-page MSR and
    // the page is ours, page aligned and executable in the identity mapping.
    unsafe { cpu::wrmsr(xen.hypercall_msr, addr) };
    PAGE_ADDR.store(addr, Ordering::Release);
}

/// Uses the hypercall page at `addr`, which the PV domain builder filled
/// (`XEN_ELFNOTE_HYPERCALL_PAGE`).
///
/// # Safety
/// `addr` must be that page.
pub unsafe fn set_page(addr: u64) {
    PAGE_ADDR.store(addr, Ordering::Release);
}

/// Whether hypercalls can be made (the page is installed).
pub fn available() -> bool {
    PAGE_ADDR.load(Ordering::Acquire) != 0
}

/// Issues hypercall `op` with up to five arguments, returning Xen's raw result.
///
/// # Safety
/// The arguments must be what `op` expects: pointers must point to live, correctly laid out
/// argument structs that Xen may read and write for the duration of the call. Panics-free;
/// returns `-ENOSYS` (38) if the page is not installed.
pub unsafe fn hypercall(op: u32, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let page = PAGE_ADDR.load(Ordering::Acquire);
    if page == 0 {
        return -38;
    }
    let entry = page + u64::from(op) * HYPERCALL_STUB_SIZE as u64;
    let ret: i64;
    // SAFETY: `entry` is Xen's stub for `op` in the installed hypercall page; argument
    // validity is guaranteed by the caller. Xen may clobber the argument registers.
    unsafe {
        asm!(
            "call {entry}",
            entry = in(reg) entry,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            inlateout("r8") a5 => _,
            lateout("rax") ret,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}
