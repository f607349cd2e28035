//! CPU exceptions. Every exception is fatal except the breakpoint (`int3`), which is logged
//! and resumed (used by the bring-up self-test to prove the IST switch protects the red zone).

use core::fmt;

/// Registers saved by the common interrupt path, lowest address first.
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Vector number pushed by the stub.
    pub vector: u64,
    /// CPU error code, or 0 for vectors without one.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Vector of the breakpoint exception.
const BREAKPOINT: u64 = 3;
/// Vector of the page fault.
const PAGE_FAULT: u64 = 14;

/// Mnemonic of an exception vector.
fn name(vector: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "#DE divide error",
        "#DB debug",
        "NMI",
        "#BP breakpoint",
        "#OF overflow",
        "#BR bound range",
        "#UD invalid opcode",
        "#NM device not available",
        "#DF double fault",
        "coprocessor overrun",
        "#TS invalid TSS",
        "#NP segment not present",
        "#SS stack fault",
        "#GP general protection",
        "#PF page fault",
        "reserved",
        "#MF x87 error",
        "#AC alignment check",
        "#MC machine check",
        "#XM SIMD error",
        "#VE virtualization",
        "#CP control protection",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "#HV injection",
        "#VC VMM communication",
        "#SX security",
        "reserved",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("interrupt")
}

impl fmt::Display for TrapFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (vector {}, error {:#x}) at rip {:#x} rsp {:#x} rflags {:#x}",
            name(self.vector),
            self.vector,
            self.error_code,
            self.rip,
            self.rsp,
            self.rflags
        )?;
        if self.vector == PAGE_FAULT {
            let cr2: u64;
            // SAFETY: reading CR2 has no side effects; we are in ring 0.
            unsafe { core::arch::asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack)) };
            write!(f, " address {cr2:#x}")?;
        }
        write!(
            f,
            "\n  rax {:#x} rbx {:#x} rcx {:#x} rdx {:#x} rsi {:#x} rdi {:#x} rbp {:#x}",
            self.rax, self.rbx, self.rcx, self.rdx, self.rsi, self.rdi, self.rbp
        )
    }
}

/// Called by the boot assembly for vectors 0–31 with the saved frame. Returns only for a
/// breakpoint; everything else crashes the domain with the frame in the log.
///
/// # Safety
/// Only the interrupt path may call this, with a pointer to the frame it just built.
pub unsafe extern "C" fn trap_entry(frame: *mut TrapFrame) {
    // SAFETY: the assembly passes a valid, exclusive pointer to the frame on the IST stack.
    let frame = unsafe { &mut *frame };
    if frame.vector == BREAKPOINT {
        log::info!("breakpoint at {:#x}", frame.rip);
        return;
    }
    crate::control::fatal(format_args!("CPU exception: {frame}"));
}
