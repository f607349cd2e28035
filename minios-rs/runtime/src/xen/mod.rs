//! Typed hypercalls: one safe function per operation the runtime uses.
//!
//! Each wrapper builds the argument struct from `xen-abi`, passes its address to
//! [`crate::arch::hypercall`] and turns Xen's `-errno` into a [`XenErrno`]. The `unsafe`
//! lives here, at the boundary: the only pointers handed to Xen are to live locals (or
//! caller-provided buffers whose length is checked).

pub mod evtchn;
pub mod gnttab;
pub mod hvm;
pub mod memory;
pub mod physdev;
pub mod pv;
pub mod sched;
pub mod vcpu;

use crate::arch::hypercall::hypercall;
use xen_abi::XenErrno;

/// Issues hypercall `op` with two arguments (most ops: `cmd`, pointer to the argument).
///
/// # Safety
/// `arg` must be what `op`/`cmd` expects (see [`hypercall`]).
unsafe fn op2(op: u32, cmd: u64, arg: u64) -> Result<u64, XenErrno> {
    // SAFETY: guaranteed by the caller.
    XenErrno::check(unsafe { hypercall(op, cmd, arg, 0, 0, 0) })
}

/// Issues hypercall `op` with three arguments.
///
/// # Safety
/// As for [`op2`].
unsafe fn op3(op: u32, a1: u64, a2: u64, a3: u64) -> Result<u64, XenErrno> {
    // SAFETY: guaranteed by the caller.
    XenErrno::check(unsafe { hypercall(op, a1, a2, a3, 0, 0) })
}

/// Address of an input-only argument struct.
fn addr<T>(v: &T) -> u64 {
    v as *const T as u64
}

/// Address of an argument struct Xen writes back into (the pointer is derived from `&mut`,
/// so the compiler knows the value may change).
fn addr_mut<T>(v: &mut T) -> u64 {
    v as *mut T as u64
}
