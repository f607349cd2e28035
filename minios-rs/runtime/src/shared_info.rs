//! Atomic access to the shared info page: vCPU 0's upcall flags and time, and the 2-level
//! event-channel bitmaps. Xen writes this page concurrently, so every access is an atomic
//! operation on the field's address (never a Rust reference to the struct).
//!
//! The platform code maps the page (PVH: `XENMEM_add_to_physmap(XENMAPSPACE_shared_info)`;
//! PV: a page-table entry for the machine address in `start_info`)
//! and calls [`set_address`]; until then accessors return zeros and do nothing.

use core::mem::offset_of;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use xen_abi::evtchn::{port_bit, port_word, EventWords};
use xen_abi::shared_info::{SharedInfo, VcpuInfo, VcpuTimeInfo};
use xen_abi::EvtchnPort;

static ADDR: AtomicU64 = AtomicU64::new(0);

/// Records where the shared info page is mapped.
///
/// # Safety
/// `addr` must be the address of Xen's shared info page for this domain, mapped for the rest
/// of the run, and never accessed through Rust references.
pub unsafe fn set_address(addr: u64) {
    ADDR.store(addr, Ordering::Release);
}

/// Whether the page is mapped.
pub fn mapped() -> bool {
    ADDR.load(Ordering::Acquire) != 0
}

fn field<T>(offset: usize) -> Option<*mut T> {
    match ADDR.load(Ordering::Acquire) {
        0 => None,
        base => Some((base as usize + offset) as *mut T),
    }
}

fn u8_at(offset: usize) -> Option<&'static AtomicU8> {
    // SAFETY: the page is mapped for the rest of the run (`set_address` contract) and the
    // offset comes from `offset_of!` on the ABI struct, so it is in bounds and aligned.
    field::<u8>(offset).map(|p| unsafe { AtomicU8::from_ptr(p) })
}

fn u32_at(offset: usize) -> Option<&'static AtomicU32> {
    // SAFETY: as for `u8_at`.
    field::<u32>(offset).map(|p| unsafe { AtomicU32::from_ptr(p) })
}

fn u64_at(offset: usize) -> Option<&'static AtomicU64> {
    // SAFETY: as for `u8_at`.
    field::<u64>(offset).map(|p| unsafe { AtomicU64::from_ptr(p) })
}

const VCPU0: usize = offset_of!(SharedInfo, vcpu_info);
const PENDING: usize = offset_of!(SharedInfo, evtchn_pending);
const MASK: usize = offset_of!(SharedInfo, evtchn_mask);
const TIME: usize = VCPU0 + offset_of!(VcpuInfo, time);

/// Sets vCPU 0's `evtchn_upcall_mask`: Xen then never tries to deliver an event upcall. A
/// PV guest without an event callback must do this before binding any port; the runtime
/// only ever polls.
pub fn mask_upcalls() {
    if let Some(f) = u8_at(VCPU0 + offset_of!(VcpuInfo, evtchn_upcall_mask)) {
        f.store(1, Ordering::SeqCst);
    }
}

/// Clears vCPU 0's `evtchn_upcall_pending` (done before each scan; the runtime configures no
/// upcall, so this only keeps the flag meaningful for a debugger).
pub fn clear_upcall_pending() {
    if let Some(f) = u8_at(VCPU0 + offset_of!(VcpuInfo, evtchn_upcall_pending)) {
        f.store(0, Ordering::SeqCst);
    }
}

/// Atomically takes (swaps with 0) vCPU 0's `evtchn_pending_sel`.
pub fn take_pending_sel() -> u64 {
    u64_at(VCPU0 + offset_of!(VcpuInfo, evtchn_pending_sel))
        .map_or(0, |f| f.swap(0, Ordering::SeqCst))
}

fn word_at(base: usize, word: usize) -> Option<&'static AtomicU64> {
    if word >= 64 {
        return None;
    }
    u64_at(base + word * 8)
}

/// Atomically clears `port`'s pending bit; returns whether it was set.
pub fn test_and_clear_pending(port: EvtchnPort) -> bool {
    word_at(PENDING, port_word(port))
        .is_some_and(|w| w.fetch_and(!port_bit(port), Ordering::SeqCst) & port_bit(port) != 0)
}

/// Sets `port`'s mask bit (Xen then neither raises the upcall nor sets the selector).
pub fn mask(port: EvtchnPort) {
    if let Some(w) = word_at(MASK, port_word(port)) {
        w.fetch_or(port_bit(port), Ordering::SeqCst);
    }
}

/// The live event bitmaps, for `xen_abi::evtchn::next_pending_port`.
pub struct LiveWords;

impl EventWords for LiveWords {
    fn pending(&self, word: usize) -> u64 {
        word_at(PENDING, word).map_or(0, |w| w.load(Ordering::SeqCst))
    }
    fn mask(&self, word: usize) -> u64 {
        word_at(MASK, word).map_or(!0, |w| w.load(Ordering::SeqCst))
    }
}

/// A consistent copy of vCPU 0's `vcpu_time_info` (seqlock read on `version`), or `None`
/// before the page is mapped.
pub fn vcpu0_time() -> Option<VcpuTimeInfo> {
    let version = u32_at(TIME + offset_of!(VcpuTimeInfo, version))?;
    let tsc = u64_at(TIME + offset_of!(VcpuTimeInfo, tsc_timestamp))?;
    let sys = u64_at(TIME + offset_of!(VcpuTimeInfo, system_time))?;
    let mul = u32_at(TIME + offset_of!(VcpuTimeInfo, tsc_to_system_mul))?;
    let shift = u8_at(TIME + offset_of!(VcpuTimeInfo, tsc_shift))?;
    let flags = u8_at(TIME + offset_of!(VcpuTimeInfo, flags))?;
    Some(xen_abi::shared_info::read_consistent(
        || version.load(Ordering::Acquire),
        || {
            let t = VcpuTimeInfo {
                tsc_timestamp: tsc.load(Ordering::Relaxed),
                system_time: sys.load(Ordering::Relaxed),
                tsc_to_system_mul: mul.load(Ordering::Relaxed),
                tsc_shift: shift.load(Ordering::Relaxed) as i8,
                flags: flags.load(Ordering::Relaxed),
                ..VcpuTimeInfo::default()
            };
            core::sync::atomic::fence(Ordering::Acquire);
            t
        },
    ))
}
