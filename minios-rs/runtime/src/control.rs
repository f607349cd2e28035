//! Stopping the domain: orderly power-off or reboot, and crashing on a panic or a CPU
//! exception so that `xl list` shows the domain as crashed (`on_crash=` then applies).

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};
use xen_abi::hypercall::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT};

/// How the domain should stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Stop for good (`SHUTDOWN_poweroff`): `xl shutdown`, or `main` returned.
    Poweroff,
    /// Ask the toolstack to restart us (`SHUTDOWN_reboot`).
    Reboot,
    /// Report a crash (`SHUTDOWN_crash`).
    Crash,
}

impl From<minios::executor::StopReason> for Shutdown {
    fn from(r: minios::executor::StopReason) -> Self {
        use minios::executor::StopReason;
        match r {
            StopReason::Poweroff => Shutdown::Poweroff,
            StopReason::Reboot => Shutdown::Reboot,
            StopReason::Crash => Shutdown::Crash,
        }
    }
}

impl Shutdown {
    fn reason(self) -> u32 {
        match self {
            Shutdown::Poweroff => SHUTDOWN_POWEROFF,
            Shutdown::Reboot => SHUTDOWN_REBOOT,
            Shutdown::Crash => SHUTDOWN_CRASH,
        }
    }
}

/// Stops the domain. Under plain QEMU (no Xen) it ends QEMU through isa-debug-exit with
/// status 33 for a clean stop and 35 for a crash.
pub fn shutdown(how: Shutdown) -> ! {
    if crate::arch::on_xen() {
        let _ = crate::xen::sched::shutdown(how.reason());
        // Xen deschedules us for good; if the call failed, halt (an HVM vCPU halting with
        // interrupts off is taken down by Xen too).
    } else {
        crate::arch::early_console::qemu_exit(if how == Shutdown::Crash { 0x11 } else { 0x10 });
    }
    crate::arch::cpu::halt_forever()
}

static DYING: AtomicBool = AtomicBool::new(false);

/// Logs `msg` on every console output and crashes the domain. A second failure while
/// dying (a panic in the logging path) skips straight to the crash.
pub fn fatal(msg: fmt::Arguments<'_>) -> ! {
    if !DYING.swap(true, Ordering::SeqCst) {
        crate::console::fatal_line(msg);
    }
    shutdown(Shutdown::Crash)
}

/// The panic handler's body (installed by [`crate::entry!`]).
pub fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(loc) => fatal(format_args!(
            "panic at {}:{}: {}",
            loc.file(),
            loc.line(),
            info.message()
        )),
        None => fatal(format_args!("panic: {}", info.message())),
    }
}
