//! `HYPERVISOR_event_channel_op`: allocating, binding, signalling and closing ports.

use super::{addr, addr_mut, op2};
use crate::arch::hypercall::hypercall;
use xen_abi::hypercall::event_channel::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindPirq, EvtchnBindVirq, EvtchnClose,
    EvtchnSend, EvtchnUnmask, EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_INTERDOMAIN,
    EVTCHNOP_BIND_PIRQ, EVTCHNOP_BIND_VIRQ, EVTCHNOP_CLOSE, EVTCHNOP_SEND, EVTCHNOP_UNMASK,
};
use xen_abi::hypercall::{MulticallEntry, HYPERVISOR_MULTICALL};
use xen_abi::hypercall::{DOMID_SELF, HYPERVISOR_EVENT_CHANNEL_OP};
use xen_abi::{DomId, EvtchnPort, XenErrno};

/// Allocates a local port that domain `remote` may bind to.
pub fn alloc_unbound(remote: DomId) -> Result<EvtchnPort, XenErrno> {
    let mut arg = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: remote,
        port: 0,
    };
    // SAFETY: EVTCHNOP_alloc_unbound reads and writes one `evtchn_alloc_unbound`.
    unsafe {
        op2(
            HYPERVISOR_EVENT_CHANNEL_OP,
            EVTCHNOP_ALLOC_UNBOUND.into(),
            addr_mut(&mut arg),
        )
    }?;
    Ok(arg.port)
}

/// Connects a new local port to `remote_port` of domain `remote`.
pub fn bind_interdomain(remote: DomId, remote_port: EvtchnPort) -> Result<EvtchnPort, XenErrno> {
    let mut arg = EvtchnBindInterdomain {
        remote_dom: remote,
        remote_port,
        local_port: 0,
    };
    // SAFETY: EVTCHNOP_bind_interdomain reads and writes one `evtchn_bind_interdomain`.
    unsafe {
        op2(
            HYPERVISOR_EVENT_CHANNEL_OP,
            EVTCHNOP_BIND_INTERDOMAIN.into(),
            addr_mut(&mut arg),
        )
    }?;
    Ok(arg.local_port)
}

/// Binds virtual IRQ `virq` (`VIRQ_*`) of vCPU `vcpu` to a new local port.
pub fn bind_virq(virq: u32, vcpu: u32) -> Result<EvtchnPort, XenErrno> {
    let mut arg = EvtchnBindVirq {
        virq,
        vcpu,
        port: 0,
    };
    // SAFETY: EVTCHNOP_bind_virq reads and writes one `evtchn_bind_virq`.
    unsafe {
        op2(
            HYPERVISOR_EVENT_CHANNEL_OP,
            EVTCHNOP_BIND_VIRQ.into(),
            addr_mut(&mut arg),
        )
    }?;
    Ok(arg.port)
}

/// Binds physical IRQ `pirq` (one the toolstack or pciback granted us) to a new local port.
pub fn bind_pirq(pirq: u32, flags: u32) -> Result<EvtchnPort, XenErrno> {
    let mut arg = EvtchnBindPirq {
        pirq,
        flags,
        port: 0,
    };
    // SAFETY: EVTCHNOP_bind_pirq reads and writes one `evtchn_bind_pirq`.
    unsafe {
        op2(
            HYPERVISOR_EVENT_CHANNEL_OP,
            EVTCHNOP_BIND_PIRQ.into(),
            addr_mut(&mut arg),
        )
    }?;
    Ok(arg.port)
}

/// Notifies the remote end of `port`.
pub fn send(port: EvtchnPort) -> Result<(), XenErrno> {
    let arg = EvtchnSend { port };
    // SAFETY: EVTCHNOP_send reads one `evtchn_send`.
    unsafe {
        op2(
            HYPERVISOR_EVENT_CHANNEL_OP,
            EVTCHNOP_SEND.into(),
            addr(&arg),
        )
    }
    .map(drop)
}

/// Most ports [`send_many`] notifies with one multicall.
pub const SEND_BATCH: usize = 16;

/// Notifies the remote ends of `ports` (at most [`SEND_BATCH`]) with one
/// `HYPERVISOR_multicall` of `EVTCHNOP_send`s; returns how many sends failed.
pub fn send_many(ports: &[EvtchnPort]) -> usize {
    match ports {
        [] => return 0,
        [one] => return usize::from(send(*one).is_err()),
        _ => {}
    }
    let ports = &ports[..ports.len().min(SEND_BATCH)];
    let mut args = [EvtchnSend { port: 0 }; SEND_BATCH];
    let mut calls = [MulticallEntry::default(); SEND_BATCH];
    for ((arg, call), &port) in args.iter_mut().zip(calls.iter_mut()).zip(ports) {
        arg.port = port;
        call.op = HYPERVISOR_EVENT_CHANNEL_OP.into();
        call.args[0] = EVTCHNOP_SEND.into();
        call.args[1] = addr(arg);
    }
    let n = ports.len();
    // SAFETY: HYPERVISOR_multicall reads `n` live `multicall_entry`s and writes their
    // `result`s; each entry's argument points at a live `evtchn_send` in `args`, which is
    // not touched until the call returns.
    let rc = unsafe {
        hypercall(
            HYPERVISOR_MULTICALL,
            addr_mut(&mut calls),
            n as u64,
            0,
            0,
            0,
        )
    };
    if rc != 0 {
        // The batch itself was refused (never expected: HVM guests may multicall): send
        // one by one rather than lose notifications.
        return ports.iter().filter(|&&p| send(p).is_err()).count();
    }
    calls[..n].iter().filter(|c| c.result != 0).count()
}

/// Unmasks `port`; Xen re-raises the upcall if it is pending.
pub fn unmask(port: EvtchnPort) -> Result<(), XenErrno> {
    let arg = EvtchnUnmask { port };
    // SAFETY: EVTCHNOP_unmask reads one `evtchn_unmask`.
    unsafe {
        op2(
            HYPERVISOR_EVENT_CHANNEL_OP,
            EVTCHNOP_UNMASK.into(),
            addr(&arg),
        )
    }
    .map(drop)
}

/// Closes `port`.
pub fn close(port: EvtchnPort) -> Result<(), XenErrno> {
    let arg = EvtchnClose { port };
    // SAFETY: EVTCHNOP_close reads one `evtchn_close`.
    unsafe {
        op2(
            HYPERVISOR_EVENT_CHANNEL_OP,
            EVTCHNOP_CLOSE.into(),
            addr(&arg),
        )
    }
    .map(drop)
}
