//! The monotonic clock (pvclock: `vcpu_time_info` + TSC) and vCPU 0's one-shot timer.
//!
//! [`now_ns`] counts from the moment [`init`] ran (≈ boot). Xen system time is
//! `system_time + ((tsc - tsc_timestamp) scaled by tsc_to_system_mul / tsc_shift)`, read
//! under the version seqlock; the result is clamped so it never goes backwards.

use crate::arch::cpu::rdtsc;
use crate::shared_info;
use core::sync::atomic::{AtomicU64, Ordering};
use xen_abi::shared_info::system_time_ns;
use xen_abi::XenErrno;

static BOOT_SYSTEM_NS: AtomicU64 = AtomicU64::new(0);
static LAST_NS: AtomicU64 = AtomicU64::new(0);
/// The deadline the one-shot timer is armed for (our clock; 0: none).
static ARMED_NS: AtomicU64 = AtomicU64::new(0);

/// Xen system time (ns since the host booted), or `None` before shared info is mapped.
fn system_ns() -> Option<u64> {
    shared_info::vcpu0_time().map(|t| system_time_ns(&t, rdtsc()))
}

/// Starts the clock and stops Xen's default periodic timer, so an idle domain stays asleep.
pub fn init() {
    if let Some(now) = system_ns() {
        BOOT_SYSTEM_NS.store(now, Ordering::Relaxed);
    }
    if let Err(e) = crate::xen::vcpu::stop_periodic_timer(0) {
        log::warn!("could not stop the periodic timer: {e:?}");
    }
}

/// Nanoseconds since boot; 0 before the clock is available. Never decreases.
pub fn now_ns() -> u64 {
    let Some(sys) = system_ns() else { return 0 };
    let now = sys.saturating_sub(BOOT_SYSTEM_NS.load(Ordering::Relaxed));
    let last = LAST_NS.fetch_max(now, Ordering::Relaxed);
    now.max(last)
}

/// Arms the one-shot timer to raise `VIRQ_TIMER` at `deadline_ns` (our clock); a deadline in
/// the past fires at once. Re-arming replaces the previous deadline; arming again for the
/// deadline already armed makes no hypercall (a busy loop blocking many times towards one
/// deadline pays for the timer once).
pub fn arm(deadline_ns: u64) -> Result<(), XenErrno> {
    if deadline_ns != 0 && ARMED_NS.load(Ordering::Relaxed) == deadline_ns {
        return Ok(());
    }
    crate::xen::vcpu::set_singleshot_timer(0, to_system(deadline_ns))?;
    ARMED_NS.store(deadline_ns, Ordering::Relaxed);
    Ok(())
}

/// Converts a deadline on our clock to Xen system time (for `SCHEDOP_poll`).
pub fn to_system(deadline_ns: u64) -> u64 {
    deadline_ns.saturating_add(BOOT_SYSTEM_NS.load(Ordering::Relaxed))
}

/// Disarms the one-shot timer.
pub fn disarm() {
    ARMED_NS.store(0, Ordering::Relaxed);
    let _ = crate::xen::vcpu::stop_singleshot_timer(0);
}

/// Splits nanoseconds into (seconds, microseconds) for log timestamps.
pub fn secs_micros(ns: u64) -> (u64, u32) {
    (ns / 1_000_000_000, ((ns % 1_000_000_000) / 1_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_split() {
        assert_eq!(secs_micros(0), (0, 0));
        assert_eq!(secs_micros(1_234_567_890), (1, 234_567));
        assert_eq!(secs_micros(999), (0, 0));
    }
}
