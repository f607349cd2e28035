//! The shared info page and per-vCPU info (`xen.h`, `arch-x86/xen*.h`) and the pvclock time
//! conversion.
//!
//! # Reading time: the version rule
//!
//! Xen increments [`VcpuTimeInfo::version`] before and after updating the other fields, so an
//! odd version means an update is in progress. A consistent read is a seqlock read:
//!
//! 1. read `version`; if odd, retry;
//! 2. read barrier (acquire), then copy the fields;
//! 3. read barrier, read `version` again; if it changed, retry from 1.
//!
//! [`read_consistent`] implements that loop over caller-supplied loads (the runtime puts the
//! barriers in them); [`system_time_ns`] then converts a TSC value with the copied fields.
//! `wc_version` protects the wallclock fields of [`SharedInfo`] the same way.

use crate::wire::impl_wire;

/// Number of `vcpu_info` slots in the shared info page (`XEN_LEGACY_MAX_VCPUS`); later vCPUs
/// need `VCPUOP_register_vcpu_info`.
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;

/// [`VcpuTimeInfo::flags`]: the TSC is stable across vCPUs (`XEN_PVCLOCK_TSC_STABLE_BIT`).
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
/// [`VcpuTimeInfo::flags`]: the guest was stopped (`XEN_PVCLOCK_GUEST_STOPPED`).
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

/// Per-vCPU time parameters (`struct vcpu_time_info`, 32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuTimeInfo {
    /// Update counter: odd while Xen is updating (see the module docs).
    pub version: u32,
    /// Padding.
    pub pad0: u32,
    /// TSC at the last update.
    pub tsc_timestamp: u64,
    /// Xen system time (ns since boot) at the last update.
    pub system_time: u64,
    /// TSC-to-ns multiplier, a 32.32 fraction applied after `tsc_shift`.
    pub tsc_to_system_mul: u32,
    /// Power-of-two pre-shift of the TSC delta (negative: right shift).
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: u8,
    /// Padding.
    pub pad1: [u8; 2],
}
impl_wire!(VcpuTimeInfo {
    version,
    pad0,
    tsc_timestamp,
    system_time,
    tsc_to_system_mul,
    tsc_shift,
    flags,
    pad1
});

/// x86_64 part of [`VcpuInfo`] (`struct arch_vcpu_info`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchVcpuInfo {
    /// Faulting address of the last page fault (PV).
    pub cr2: u64,
    /// Padding to 64 bytes of `vcpu_info`.
    pub pad: u64,
}

/// Per-vCPU event and time state (`struct vcpu_info`, 64 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuInfo {
    /// Set non-zero by Xen when an upcall is pending; the guest clears it before scanning.
    pub evtchn_upcall_pending: u8,
    /// Non-zero masks upcalls to this vCPU.
    pub evtchn_upcall_mask: u8,
    /// Selector: bit `i` set means word `i` of `evtchn_pending` may have pending ports.
    pub evtchn_pending_sel: u64,
    /// Architecture-specific state.
    pub arch: ArchVcpuInfo,
    /// Time parameters.
    pub time: VcpuTimeInfo,
}

/// x86_64 part of [`SharedInfo`] (`struct arch_shared_info`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchSharedInfo {
    /// PV: number of valid p2m entries.
    pub max_pfn: u64,
    /// PV: frame of the p2m frame-list list.
    pub pfn_to_mfn_frame_list_list: u64,
    /// NMI reason bits.
    pub nmi_reason: u64,
    /// PV: cr3 of the linear p2m address space.
    pub p2m_cr3: u64,
    /// PV: virtual address of the linear p2m list.
    pub p2m_vaddr: u64,
    /// PV: p2m generation count.
    pub p2m_generation: u64,
}

/// The shared info page (`struct shared_info`; 3136 bytes on x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedInfo {
    /// Per-vCPU info of the first [`XEN_LEGACY_MAX_VCPUS`] vCPUs.
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// 2-level event channel pending bits, one per port.
    pub evtchn_pending: [u64; 64],
    /// 2-level event channel mask bits, one per port.
    pub evtchn_mask: [u64; 64],
    /// Wallclock update counter (same rule as [`VcpuTimeInfo::version`]).
    pub wc_version: u32,
    /// Wallclock seconds at system time 0, low 32 bits.
    pub wc_sec: u32,
    /// Wallclock nanoseconds at system time 0.
    pub wc_nsec: u32,
    /// Wallclock seconds, high 32 bits.
    pub wc_sec_hi: u32,
    /// Architecture-specific state.
    pub arch: ArchSharedInfo,
}

impl SharedInfo {
    /// Wallclock seconds at Xen system time 0 (`wc_sec_hi:wc_sec`).
    pub const fn wallclock_sec(&self) -> u64 {
        ((self.wc_sec_hi as u64) << 32) | self.wc_sec as u64
    }
}

/// Scales a TSC delta to nanoseconds exactly as Linux's `pvclock_scale_delta`: shift by
/// `tsc_shift`, then multiply by the 32.32 fraction `mul_frac` keeping bits 95:32 of the
/// 96-bit product. Shifts of 64 or more yield 0.
pub const fn pvclock_scale_delta(delta: u64, mul_frac: u32, shift: i8) -> u64 {
    let shifted = if shift < 0 {
        match delta.checked_shr(shift.unsigned_abs() as u32) {
            Some(v) => v,
            None => 0,
        }
    } else {
        match delta.checked_shl(shift as u32) {
            Some(v) => v,
            None => 0,
        }
    };
    ((shifted as u128 * mul_frac as u128) >> 32) as u64
}

/// Xen system time in nanoseconds at TSC value `tsc`:
/// `system_time + scale(tsc - tsc_timestamp)`, with wrapping arithmetic as in Linux (a TSC
/// read before `tsc_timestamp` is a caller bug and gives a meaningless result).
pub const fn system_time_ns(time: &VcpuTimeInfo, tsc: u64) -> u64 {
    let delta = tsc.wrapping_sub(time.tsc_timestamp);
    time.system_time.wrapping_add(pvclock_scale_delta(
        delta,
        time.tsc_to_system_mul,
        time.tsc_shift,
    ))
}

/// TSC frequency in Hz implied by the scaling parameters: `((10^9 << 32) / mul) >> shift`.
/// `None` if `mul` is 0 or the result does not fit.
pub const fn tsc_frequency_hz(tsc_to_system_mul: u32, tsc_shift: i8) -> Option<u64> {
    if tsc_to_system_mul == 0 {
        return None;
    }
    let base = (1_000_000_000u128 << 32) / tsc_to_system_mul as u128;
    let freq = if tsc_shift < 0 {
        match base.checked_shl(tsc_shift.unsigned_abs() as u32) {
            Some(v) if v >> tsc_shift.unsigned_abs() == base => v,
            _ => return None,
        }
    } else {
        match base.checked_shr(tsc_shift as u32) {
            Some(v) => v,
            None => 0,
        }
    };
    if freq > u64::MAX as u128 {
        None
    } else {
        Some(freq as u64)
    }
}

/// Whether a read bracketed by versions `before` and `after` saw a consistent snapshot: no
/// update was in progress (`before` even) and none happened (`before == after`).
pub const fn version_is_consistent(before: u32, after: u32) -> bool {
    before & 1 == 0 && before == after
}

/// Runs `read` until it observes a consistent snapshot under the version rule, then returns
/// it. `load_version` must read the version with acquire ordering and `read` must not be
/// reordered before it (the runtime adds the barriers).
pub fn read_consistent<T>(mut load_version: impl FnMut() -> u32, mut read: impl FnMut() -> T) -> T {
    loop {
        let before = load_version();
        if before & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        let value = read();
        if version_is_consistent(before, load_version()) {
            return value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    fn time(system_time: u64, tsc_timestamp: u64, mul: u32, shift: i8) -> VcpuTimeInfo {
        VcpuTimeInfo {
            system_time,
            tsc_timestamp,
            tsc_to_system_mul: mul,
            tsc_shift: shift,
            ..Default::default()
        }
    }

    #[test]
    fn scale_delta_hand_computed() {
        // 2 GHz TSC: mul = 0.5 * 2^32, shift 0 -> half a ns per tick.
        assert_eq!(
            pvclock_scale_delta(2_000_000_000, 0x8000_0000, 0),
            1_000_000_000
        );
        // 3 GHz: shift -1, mul = floor(2/3 * 2^32) = 0xAAAAAAAA;
        // (1.5e9 * 2863311530) >> 32 = floor(1e9 - 0.23) = 999_999_999.
        assert_eq!(
            pvclock_scale_delta(3_000_000_000, 0xAAAA_AAAA, -1),
            999_999_999
        );
        // 1 GHz: shift +1, mul = 0.5 * 2^32 -> identity.
        assert_eq!(pvclock_scale_delta(12_345, 0x8000_0000, 1), 12_345);
        // Needs the 96-bit product: 2^40 * (2^32 - 1) >> 32 = 2^40 - 2^8.
        assert_eq!(pvclock_scale_delta(1 << 40, u32::MAX, 0), (1 << 40) - 256);
        // Out-of-range shifts do not panic.
        assert_eq!(pvclock_scale_delta(u64::MAX, u32::MAX, 64), 0);
        assert_eq!(pvclock_scale_delta(u64::MAX, u32::MAX, -128), 0);
        // Left shift drops high bits like C: (2^63 << 1) = 0.
        assert_eq!(pvclock_scale_delta(1 << 63, u32::MAX, 1), 0);
    }

    #[test]
    fn system_time_from_tsc() {
        let t = time(5_000_000_000, 1_000_000, 0x8000_0000, 0);
        assert_eq!(system_time_ns(&t, 1_000_000), 5_000_000_000);
        assert_eq!(system_time_ns(&t, 1_000_000 + 2_000_000_000), 6_000_000_000);
        assert_eq!(system_time_ns(&t, 1_000_003), 5_000_000_001); // 1.5 ns rounds down
        let t3 = time(7, 0, 0xAAAA_AAAA, -1);
        assert_eq!(system_time_ns(&t3, 3_000_000_000), 1_000_000_006);
    }

    #[test]
    fn tsc_frequency() {
        assert_eq!(tsc_frequency_hz(0x8000_0000, 0), Some(2_000_000_000));
        assert_eq!(tsc_frequency_hz(0xAAAA_AAAA, -1), Some(3_000_000_000));
        assert_eq!(tsc_frequency_hz(0x8000_0000, 1), Some(1_000_000_000));
        assert_eq!(tsc_frequency_hz(0, 0), None);
        assert_eq!(tsc_frequency_hz(1, -100), None);
    }

    #[test]
    fn version_rule() {
        assert!(version_is_consistent(4, 4));
        assert!(!version_is_consistent(5, 5));
        assert!(!version_is_consistent(4, 6));

        // Versions seen: 3 (update in progress: retry), 4 then 6 (changed: retry), 6 and 6.
        let versions = [3u32, 4, 6, 6, 6];
        let next = Cell::new(0);
        let reads = Cell::new(0);
        let got = read_consistent(
            || {
                let v = versions[next.get()];
                next.set(next.get() + 1);
                v
            },
            || {
                reads.set(reads.get() + 1);
                reads.get()
            },
        );
        assert_eq!(got, 2, "second read is the consistent one");
        assert_eq!(next.get(), 5);
    }

    #[test]
    fn wallclock_combines_halves() {
        let mut s = SharedInfo {
            vcpu_info: [VcpuInfo::default(); XEN_LEGACY_MAX_VCPUS],
            evtchn_pending: [0; 64],
            evtchn_mask: [0; 64],
            wc_version: 0,
            wc_sec: 0x8000_0000,
            wc_nsec: 0,
            wc_sec_hi: 1,
            arch: ArchSharedInfo::default(),
        };
        assert_eq!(s.wallclock_sec(), 0x1_8000_0000);
        s.wc_sec_hi = 0;
        assert_eq!(s.wallclock_sec(), 0x8000_0000);
    }
}
