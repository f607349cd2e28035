//! Boot-time output without Xen's help: the debug port 0xe9 and the first serial port.
//!
//! Port 0xe9 reaches Xen's own console for an HVM/PVH guest (`(d5) …` lines, shown with
//! `guest_loglvl=all`) and QEMU's `-debugcon`. COM1 is what plain `qemu-system-x86_64
//! -nographic` shows. Under Xen a PVH domain has no UART, so COM1 is only used without Xen.

use super::cpu::{inb, outb};

const DEBUG_PORT: u16 = 0xe9;
const COM1: u16 = 0x3f8;
/// Line status register: transmit holding register empty.
const LSR_THRE: u8 = 1 << 5;

/// Which early outputs to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EarlyConsole {
    /// Write to port 0xe9.
    pub debug_port: bool,
    /// Write to COM1.
    pub serial: bool,
}

impl EarlyConsole {
    /// Writes `bytes` to the enabled outputs (LF becomes CRLF on the serial port).
    pub fn write(&self, bytes: &[u8]) {
        // A PV guest runs without I/O privilege: a port write would fault.
        if super::platform::is_pv() {
            return;
        }
        for &b in bytes {
            if self.debug_port {
                // SAFETY: port 0xe9 is a write-only debug sink in Xen and QEMU.
                unsafe { outb(DEBUG_PORT, b) };
            }
            if self.serial {
                if b == b'\n' {
                    serial_put(b'\r');
                }
                serial_put(b);
            }
        }
    }
}

fn serial_put(b: u8) {
    // Bounded wait: a missing UART reads as 0xff (THRE set), so this never hangs.
    for _ in 0..100_000 {
        // SAFETY: reading COM1's line status register has no side effects.
        if unsafe { inb(COM1 + 5) } & LSR_THRE != 0 {
            break;
        }
        core::hint::spin_loop();
    }
    // SAFETY: writing COM1's transmit register sends one byte (or nothing without a UART).
    unsafe { outb(COM1, b) };
}

/// Ends a plain QEMU run through `-device isa-debug-exit,iobase=0xf4,iosize=0x04`: QEMU exits
/// with status `(code << 1) | 1`. Does nothing elsewhere (then the caller halts).
pub fn qemu_exit(code: u8) {
    // SAFETY: port 0xf4 is QEMU's isa-debug-exit when configured, otherwise unused.
    unsafe { super::cpu::outw(0xf4, u16::from(code)) };
}
