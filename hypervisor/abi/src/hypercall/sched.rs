//! `HYPERVISOR_sched_op` (`sched.h`): yield, block, shut down, poll event channels.

/// Give up the CPU voluntarily (arg: none).
pub const SCHEDOP_YIELD: u32 = 0;
/// Block until an event arrives; re-enables event delivery (arg: none).
pub const SCHEDOP_BLOCK: u32 = 1;
/// Stop this domain (arg: [`SchedShutdown`]).
pub const SCHEDOP_SHUTDOWN: u32 = 2;
/// Block until one of a set of event channels is pending or a timeout (arg: [`SchedPoll`]).
pub const SCHEDOP_POLL: u32 = 3;
/// Shut down another domain (privileged).
pub const SCHEDOP_REMOTE_SHUTDOWN: u32 = 4;
/// Latch a shutdown code without shutting down (arg: [`SchedShutdown`]).
pub const SCHEDOP_SHUTDOWN_CODE: u32 = 5;
/// Set up, kick or kill a domain watchdog.
pub const SCHEDOP_WATCHDOG: u32 = 6;
/// Override the pCPU pinning of the current vCPU (debugging).
pub const SCHEDOP_PIN_OVERRIDE: u32 = 7;

/// Domain exited normally: clean up and kill (`SHUTDOWN_poweroff`).
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// Clean up, kill and restart (`SHUTDOWN_reboot`).
pub const SHUTDOWN_REBOOT: u32 = 1;
/// Clean up, save suspend info, kill (`SHUTDOWN_suspend`).
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// Tell the toolstack the domain crashed (`SHUTDOWN_crash`).
pub const SHUTDOWN_CRASH: u32 = 3;
/// Restart because the watchdog expired (`SHUTDOWN_watchdog`).
pub const SHUTDOWN_WATCHDOG: u32 = 4;
/// Soft reset: keep the domain, reset its state (`SHUTDOWN_soft_reset`).
pub const SHUTDOWN_SOFT_RESET: u32 = 5;

/// Argument of [`SCHEDOP_SHUTDOWN`] (`struct sched_shutdown`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedShutdown {
    /// One of the `SHUTDOWN_*` reasons.
    pub reason: u32,
}

/// Argument of [`SCHEDOP_POLL`] (`struct sched_poll`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedPoll {
    /// Guest address of an array of `nr_ports` event channel ports (`u32`).
    pub ports: u64,
    /// Number of ports in the array.
    pub nr_ports: u32,
    /// Absolute system time (ns) at which to give up, or 0 for no timeout.
    pub timeout: u64,
}
