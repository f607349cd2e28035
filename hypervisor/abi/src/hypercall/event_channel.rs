//! `HYPERVISOR_event_channel_op(cmd, arg)` (`event_channel.h`).

use crate::{DomId, EvtchnPort};

/// Connect to a port another domain left unbound for us (arg: [`EvtchnBindInterdomain`]).
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
/// Bind a virtual IRQ to a new port (arg: [`EvtchnBindVirq`]).
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
/// Bind a physical IRQ to a new port (arg: [`EvtchnBindPirq`]).
pub const EVTCHNOP_BIND_PIRQ: u32 = 2;
/// Close a port (arg: [`EvtchnClose`]).
pub const EVTCHNOP_CLOSE: u32 = 3;
/// Notify the remote end of a port (arg: [`EvtchnSend`]).
pub const EVTCHNOP_SEND: u32 = 4;
/// Query a port's state (arg: [`EvtchnStatus`]).
pub const EVTCHNOP_STATUS: u32 = 5;
/// Allocate a port for a remote domain to bind to (arg: [`EvtchnAllocUnbound`]).
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// Bind an inter-vCPU IPI to a new port (arg: [`EvtchnBindIpi`]).
pub const EVTCHNOP_BIND_IPI: u32 = 7;
/// Change the vCPU a port notifies (arg: [`EvtchnBindVcpu`]).
pub const EVTCHNOP_BIND_VCPU: u32 = 8;
/// Unmask a port, re-raising it if pending (arg: [`EvtchnUnmask`]).
pub const EVTCHNOP_UNMASK: u32 = 9;
/// Close all ports of a domain.
pub const EVTCHNOP_RESET: u32 = 10;
/// Switch to the FIFO ABI: register a vCPU's control block.
pub const EVTCHNOP_INIT_CONTROL: u32 = 11;
/// FIFO ABI: add an event array page.
pub const EVTCHNOP_EXPAND_ARRAY: u32 = 12;
/// FIFO ABI: set a port's priority.
pub const EVTCHNOP_SET_PRIORITY: u32 = 13;

/// [`EvtchnStatus::status`]: the port is not in use.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
/// [`EvtchnStatus::status`]: the port waits for an inter-domain connection.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
/// [`EvtchnStatus::status`]: the port is connected to a remote domain.
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
/// [`EvtchnStatus::status`]: the port is bound to a physical IRQ.
pub const EVTCHNSTAT_PIRQ: u32 = 3;
/// [`EvtchnStatus::status`]: the port is bound to a virtual IRQ.
pub const EVTCHNSTAT_VIRQ: u32 = 4;
/// [`EvtchnStatus::status`]: the port is bound to an IPI.
pub const EVTCHNSTAT_IPI: u32 = 5;

/// [`EvtchnBindPirq::flags`]: the IRQ may be shared with other domains.
pub const BIND_PIRQ_WILL_SHARE: u32 = 1;

/// `struct evtchn_alloc_unbound`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnAllocUnbound {
    /// IN: domain that owns the new port ([`DOMID_SELF`](super::DOMID_SELF)).
    pub dom: DomId,
    /// IN: domain allowed to bind to it.
    pub remote_dom: DomId,
    /// OUT: the new port.
    pub port: EvtchnPort,
}

/// `struct evtchn_bind_interdomain`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindInterdomain {
    /// IN: the remote domain.
    pub remote_dom: DomId,
    /// IN: its unbound port.
    pub remote_port: EvtchnPort,
    /// OUT: the local port now connected to it.
    pub local_port: EvtchnPort,
}

/// `struct evtchn_bind_virq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVirq {
    /// IN: a `VIRQ_*` number.
    pub virq: u32,
    /// IN: the vCPU to notify.
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: EvtchnPort,
}

/// `struct evtchn_bind_pirq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindPirq {
    /// IN: the physical IRQ.
    pub pirq: u32,
    /// IN: `BIND_PIRQ_*` flags.
    pub flags: u32,
    /// OUT: the new port.
    pub port: EvtchnPort,
}

/// `struct evtchn_bind_ipi`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindIpi {
    /// IN: the vCPU to notify.
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: EvtchnPort,
}

/// `struct evtchn_close`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnClose {
    /// IN: the port to close.
    pub port: EvtchnPort,
}

/// `struct evtchn_send`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnSend {
    /// IN: the local port whose remote end to notify.
    pub port: EvtchnPort,
}

/// `struct evtchn_status`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnStatus {
    /// IN: the domain owning the port.
    pub dom: DomId,
    /// IN: the port.
    pub port: EvtchnPort,
    /// OUT: one of the `EVTCHNSTAT_*` values.
    pub status: u32,
    /// OUT: the vCPU the port notifies.
    pub vcpu: u32,
    /// OUT: the C union `u`, whose meaning depends on `status`; use the accessors.
    pub u: [u32; 2],
}

impl EvtchnStatus {
    /// For [`EVTCHNSTAT_UNBOUND`] and [`EVTCHNSTAT_INTERDOMAIN`]: the remote domain.
    pub const fn remote_dom(&self) -> DomId {
        self.u[0] as DomId
    }

    /// For [`EVTCHNSTAT_INTERDOMAIN`]: the remote port.
    pub const fn remote_port(&self) -> EvtchnPort {
        self.u[1]
    }

    /// For [`EVTCHNSTAT_PIRQ`] and [`EVTCHNSTAT_VIRQ`]: the IRQ number.
    pub const fn irq(&self) -> u32 {
        self.u[0]
    }
}

/// `struct evtchn_bind_vcpu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVcpu {
    /// IN: the port.
    pub port: EvtchnPort,
    /// IN: the vCPU it should notify from now on.
    pub vcpu: u32,
}

/// `struct evtchn_unmask`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnUnmask {
    /// IN: the port to unmask.
    pub port: EvtchnPort,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_union_accessors() {
        let st = EvtchnStatus {
            status: EVTCHNSTAT_INTERDOMAIN,
            u: [3, 17],
            ..Default::default()
        };
        assert_eq!((st.remote_dom(), st.remote_port()), (3, 17));
        let virq = EvtchnStatus {
            status: EVTCHNSTAT_VIRQ,
            u: [2, 0],
            ..Default::default()
        };
        assert_eq!(virq.irq(), 2);
    }
}
