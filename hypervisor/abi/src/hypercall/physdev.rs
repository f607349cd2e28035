//! `HYPERVISOR_physdev_op(cmd, arg)` (`physdev.h`): what a domain that owns a device needs
//! for its interrupts — acknowledging a level-triggered pirq and asking whether it must.

/// Acknowledge a pirq (arg: [`PhysdevEoi`]).
pub const PHYSDEVOP_EOI: u32 = 12;
/// Ask how a pirq must be handled (arg: [`PhysdevIrqStatusQuery`]).
pub const PHYSDEVOP_IRQ_STATUS_QUERY: u32 = 5;
/// Map a GSI or MSI to a pirq (privileged; the toolstack or pciback does it for us).
pub const PHYSDEVOP_MAP_PIRQ: u32 = 13;
/// Unmap a pirq (privileged).
pub const PHYSDEVOP_UNMAP_PIRQ: u32 = 14;

/// Bit of [`PhysdevIrqStatusQuery::flags`]: the pirq needs [`PHYSDEVOP_EOI`] after each
/// delivery (`_XENIRQSTAT_needs_eoi`).
pub const XENIRQSTAT_NEEDS_EOI: u32 = 1 << 0;
/// Bit of [`PhysdevIrqStatusQuery::flags`]: the IRQ is shared with other domains
/// (`_XENIRQSTAT_shared`).
pub const XENIRQSTAT_SHARED: u32 = 1 << 1;

/// `struct physdev_eoi`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevEoi {
    /// IN: the pirq.
    pub irq: u32,
}

/// `struct physdev_irq_status_query`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevIrqStatusQuery {
    /// IN: the pirq.
    pub irq: u32,
    /// OUT: `XENIRQSTAT_*`.
    pub flags: u32,
}
