//! Privileged x86_64 instructions: CPUID, MSRs, the TSC, I/O ports, halting.
//!
//! Thin wrappers: each is one instruction. They are safe to *compile* anywhere; the unsafe
//! ones may only run in ring 0 of a guest we control.

use core::arch::asm;

/// Executes CPUID for `leaf` (sub-leaf 0); returns (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects (CR4.TSD is clear: we never set it).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Writes model-specific register `msr`.
///
/// # Safety
/// Ring 0 only; the write must be valid for that MSR (a wrong one faults or changes CPU
/// behaviour).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags));
    }
}

/// Writes `byte` to I/O port `port`.
///
/// # Safety
/// Ring 0 only; the port must be one whose write has no harmful effect.
pub unsafe fn outb(port: u16, byte: u8) {
    // SAFETY: guaranteed by the caller.
    unsafe { asm!("out dx, al", in("dx") port, in("al") byte, options(nostack, preserves_flags)) };
}

/// Reads a byte from I/O port `port`.
///
/// # Safety
/// Ring 0 only; the read must have no harmful side effect.
pub unsafe fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: guaranteed by the caller.
    unsafe { asm!("in al, dx", out("al") v, in("dx") port, options(nostack, preserves_flags)) };
    v
}

/// Writes a 16-bit word to I/O port `port`.
///
/// # Safety
/// As for [`outb`].
pub unsafe fn outw(port: u16, word: u16) {
    // SAFETY: guaranteed by the caller.
    unsafe { asm!("out dx, ax", in("dx") port, in("ax") word, options(nostack, preserves_flags)) };
}

/// Halts forever with interrupts off (after a failed shutdown). A PV guest may not halt
/// or clear IF: it blocks in Xen instead.
pub fn halt_forever() -> ! {
    if super::platform::is_pv() {
        loop {
            crate::arch::platform::wait_for_event(&[], 0);
        }
    }
    loop {
        // SAFETY: with IF clear, `hlt` just stops this vCPU; Xen takes it down.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Copies `len` bytes from `src` to `dst` with `rep movsq` and `rep movsb` for the tail,
/// opaque to the compiler: each byte of shared memory is read (or written) exactly once, as
/// a volatile copy would.
///
/// # Safety
/// `src` must be valid for reads and `dst` for writes of `len` bytes; they must not overlap.
pub unsafe fn copy_bytes(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: guaranteed by the caller; DF is clear (SysV ABI).
    unsafe {
        asm!(
            "shr rcx, 3",
            "rep movsq",
            "mov rcx, {len}",
            "and rcx, 7",
            "rep movsb",
            len = in(reg) len,
            inout("rcx") len => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack),
        );
    }
}
