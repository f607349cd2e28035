//! `HYPERVISOR_console_io(cmd, count, buffer)` (`xen.h`): Xen's own debug console.
//!
//! A domU's writes are dropped by a non-debug Xen; domUs log through the PV console ring
//! ([`crate::console`]).

/// Write `count` bytes from `buffer` to the Xen console (`CONSOLEIO_write`).
pub const CONSOLEIO_WRITE: u32 = 0;
/// Read up to `count` bytes from the Xen console into `buffer` (`CONSOLEIO_read`).
pub const CONSOLEIO_READ: u32 = 1;
