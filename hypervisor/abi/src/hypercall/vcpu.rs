//! `HYPERVISOR_vcpu_op(cmd, vcpu, arg)` (`vcpu.h`): timers and vcpu_info placement.

/// Bring up a vCPU with an initial context.
pub const VCPUOP_INITIALISE: u32 = 0;
/// Start a vCPU.
pub const VCPUOP_UP: u32 = 1;
/// Stop a vCPU.
pub const VCPUOP_DOWN: u32 = 2;
/// Whether a vCPU is up.
pub const VCPUOP_IS_UP: u32 = 3;
/// Read a vCPU's runstate.
pub const VCPUOP_GET_RUNSTATE_INFO: u32 = 4;
/// Register a runstate area.
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u32 = 5;
/// Start a periodic timer (arg: [`VcpuSetPeriodicTimer`]).
pub const VCPUOP_SET_PERIODIC_TIMER: u32 = 6;
/// Stop the periodic timer (arg: none).
pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
/// Arm the one-shot timer; fires `VIRQ_TIMER` (arg: [`VcpuSetSingleshotTimer`]).
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
/// Disarm the one-shot timer (arg: none).
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;
/// Move this vCPU's `vcpu_info` to a page of our own (arg: [`VcpuRegisterVcpuInfo`]).
pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;
/// Send an NMI to a vCPU.
pub const VCPUOP_SEND_NMI: u32 = 11;
/// Physical id of a vCPU (dom0 only).
pub const VCPUOP_GET_PHYSID: u32 = 12;
/// Register a secondary `vcpu_time_info` area.
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u32 = 13;

/// [`VcpuSetSingleshotTimer::flags`]: fail with `-ETIME` if the timeout is already in the past
/// (`VCPU_SSHOTTMR_future`).
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1 << 0;

/// `struct vcpu_set_periodic_timer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetPeriodicTimer {
    /// Period in nanoseconds.
    pub period_ns: u64,
}

/// `struct vcpu_set_singleshot_timer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute Xen system time in nanoseconds.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*` flags.
    pub flags: u32,
}

/// `struct vcpu_register_vcpu_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterVcpuInfo {
    /// Frame (guest frame for HVM/PVH) of the page to hold the `vcpu_info`.
    pub mfn: u64,
    /// Byte offset of the `vcpu_info` within that page.
    pub offset: u32,
    /// Unused, zero.
    pub rsvd: u32,
}
