//! `HYPERVISOR_vcpu_op`: the one-shot and periodic timers of vCPU 0.

use super::{addr, op3};
use xen_abi::hypercall::vcpu::{
    VcpuSetSingleshotTimer, VCPUOP_SET_SINGLESHOT_TIMER, VCPUOP_STOP_PERIODIC_TIMER,
    VCPUOP_STOP_SINGLESHOT_TIMER,
};
use xen_abi::hypercall::HYPERVISOR_VCPU_OP;
use xen_abi::XenErrno;

/// Arms vCPU `vcpu`'s one-shot timer for Xen system time `deadline_ns`; it raises
/// `VIRQ_TIMER` then (at once if the deadline has passed).
pub fn set_singleshot_timer(vcpu: u32, deadline_ns: u64) -> Result<(), XenErrno> {
    let arg = VcpuSetSingleshotTimer {
        timeout_abs_ns: deadline_ns,
        flags: 0,
    };
    // SAFETY: VCPUOP_set_singleshot_timer reads one `vcpu_set_singleshot_timer`.
    unsafe {
        op3(
            HYPERVISOR_VCPU_OP,
            VCPUOP_SET_SINGLESHOT_TIMER.into(),
            vcpu.into(),
            addr(&arg),
        )
    }
    .map(drop)
}

/// Disarms vCPU `vcpu`'s one-shot timer.
pub fn stop_singleshot_timer(vcpu: u32) -> Result<(), XenErrno> {
    // SAFETY: VCPUOP_stop_singleshot_timer takes no argument struct.
    unsafe {
        op3(
            HYPERVISOR_VCPU_OP,
            VCPUOP_STOP_SINGLESHOT_TIMER.into(),
            vcpu.into(),
            0,
        )
    }
    .map(drop)
}

/// Stops vCPU `vcpu`'s periodic timer, so an idle domain is not woken 100 times a second.
pub fn stop_periodic_timer(vcpu: u32) -> Result<(), XenErrno> {
    // SAFETY: VCPUOP_stop_periodic_timer takes no argument struct.
    unsafe {
        op3(
            HYPERVISOR_VCPU_OP,
            VCPUOP_STOP_PERIODIC_TIMER.into(),
            vcpu.into(),
            0,
        )
    }
    .map(drop)
}
