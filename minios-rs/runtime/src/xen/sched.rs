//! `HYPERVISOR_sched_op`: shutdown, yield and polling.

use super::{addr, op2};
use xen_abi::hypercall::sched::{
    SchedPoll, SchedShutdown, SCHEDOP_POLL, SCHEDOP_SHUTDOWN, SCHEDOP_YIELD,
};
use xen_abi::hypercall::HYPERVISOR_SCHED_OP;
use xen_abi::{EvtchnPort, XenErrno};

/// Asks Xen to shut this domain down for `reason` (`SHUTDOWN_*`). Returns only if Xen
/// refused (or while the toolstack has not yet destroyed us).
pub fn shutdown(reason: u32) -> Result<(), XenErrno> {
    let arg = SchedShutdown { reason };
    // SAFETY: SCHEDOP_shutdown reads one `sched_shutdown` from the pointer.
    unsafe { op2(HYPERVISOR_SCHED_OP, SCHEDOP_SHUTDOWN.into(), addr(&arg)) }.map(drop)
}

/// Gives up the CPU voluntarily.
pub fn yield_now() {
    // SAFETY: SCHEDOP_yield takes no argument.
    let _ = unsafe { op2(HYPERVISOR_SCHED_OP, SCHEDOP_YIELD.into(), 0) };
}

/// Blocks until one of `ports` is pending or Xen system time reaches `timeout_ns` (0: no
/// timeout). Works with events masked and without an upcall: Xen wakes pollers directly.
pub fn poll(ports: &[EvtchnPort], timeout_ns: u64) -> Result<(), XenErrno> {
    let arg = SchedPoll {
        ports: ports.as_ptr() as u64,
        nr_ports: u32::try_from(ports.len()).map_err(|_| XenErrno::EINVAL)?,
        timeout: timeout_ns,
    };
    // SAFETY: SCHEDOP_poll reads `nr_ports` ports from the live slice and the struct.
    unsafe { op2(HYPERVISOR_SCHED_OP, SCHEDOP_POLL.into(), addr(&arg)) }.map(drop)
}
