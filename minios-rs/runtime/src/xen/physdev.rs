//! `HYPERVISOR_physdev_op`: acknowledging the physical interrupts of a device we own.

use super::{addr, addr_mut, op2};
use xen_abi::hypercall::physdev::{
    PhysdevEoi, PhysdevIrqStatusQuery, PHYSDEVOP_EOI, PHYSDEVOP_IRQ_STATUS_QUERY,
    XENIRQSTAT_NEEDS_EOI,
};
use xen_abi::hypercall::HYPERVISOR_PHYSDEV_OP;
use xen_abi::XenErrno;

/// Whether `pirq` must be acknowledged with [`eoi`] after each delivery.
pub fn needs_eoi(pirq: u32) -> Result<bool, XenErrno> {
    let mut arg = PhysdevIrqStatusQuery {
        irq: pirq,
        flags: 0,
    };
    // SAFETY: PHYSDEVOP_irq_status_query reads and writes one `physdev_irq_status_query`.
    unsafe {
        op2(
            HYPERVISOR_PHYSDEV_OP,
            PHYSDEVOP_IRQ_STATUS_QUERY.into(),
            addr_mut(&mut arg),
        )
    }?;
    Ok(arg.flags & XENIRQSTAT_NEEDS_EOI != 0)
}

/// Acknowledges `pirq`: Xen unmasks the line for the next interrupt.
pub fn eoi(pirq: u32) -> Result<(), XenErrno> {
    let arg = PhysdevEoi { irq: pirq };
    // SAFETY: PHYSDEVOP_eoi reads one `physdev_eoi`.
    unsafe { op2(HYPERVISOR_PHYSDEV_OP, PHYSDEVOP_EOI.into(), addr(&arg)) }.map(drop)
}
