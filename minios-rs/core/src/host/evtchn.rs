//! Simulated inter-domain event channels with Xen's `EVTCHNOP_*` semantics and errors.

use alloc::collections::BTreeMap;

use xen_abi::evtchn::EVTCHN_2L_NR_CHANNELS;

use crate::platform::{DomId, EvtchnPort, XenErrno};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Unbound {
        remote: DomId,
    },
    Interdomain {
        remote: DomId,
        remote_port: EvtchnPort,
    },
}

#[derive(Debug)]
struct Port {
    state: State,
    pending: bool,
    /// Masked by its owner: its pending flag neither wakes `wait` nor is taken.
    masked: bool,
    /// Notifications sent from this port.
    sent: u64,
}

/// All domains' ports.
#[derive(Debug, Default)]
pub(crate) struct EventChannels {
    ports: BTreeMap<DomId, BTreeMap<EvtchnPort, Port>>,
}

impl EventChannels {
    pub(crate) fn add_domain(&mut self, domid: DomId) {
        self.ports.entry(domid).or_default();
    }

    fn alloc(&mut self, domid: DomId, state: State) -> Result<EvtchnPort, XenErrno> {
        let ports = self.ports.get_mut(&domid).ok_or(XenErrno::ESRCH)?;
        // Lowest free port; 0 is reserved. Reuse is deliberate: stale port numbers are a real
        // hazard backends must survive.
        let mut port = 1;
        for &used in ports.keys() {
            if used > port {
                break;
            }
            if used == port {
                port += 1;
            }
        }
        if port >= EVTCHN_2L_NR_CHANNELS {
            return Err(XenErrno::ENOSPC);
        }
        ports.insert(
            port,
            Port {
                state,
                pending: false,
                masked: false,
                sent: 0,
            },
        );
        Ok(port)
    }

    pub(crate) fn alloc_unbound(
        &mut self,
        domid: DomId,
        remote: DomId,
    ) -> Result<EvtchnPort, XenErrno> {
        self.alloc(domid, State::Unbound { remote })
    }

    pub(crate) fn bind_interdomain(
        &mut self,
        domid: DomId,
        remote: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, XenErrno> {
        let rports = self.ports.get(&remote).ok_or(XenErrno::ESRCH)?;
        match rports.get(&remote_port).map(|p| p.state) {
            Some(State::Unbound { remote: allowed }) if allowed == domid => {}
            _ => return Err(XenErrno::EINVAL),
        }
        let port = self.alloc(
            domid,
            State::Interdomain {
                remote,
                remote_port,
            },
        )?;
        if let Some(p) = self
            .ports
            .get_mut(&remote)
            .and_then(|r| r.get_mut(&remote_port))
        {
            p.state = State::Interdomain {
                remote: domid,
                remote_port: port,
            };
        }
        Ok(port)
    }

    /// `EVTCHNOP_send`: marks the peer pending. Unbound ports drop the notification silently.
    pub(crate) fn send(&mut self, domid: DomId, port: EvtchnPort) -> Result<(), XenErrno> {
        let p = self
            .ports
            .get_mut(&domid)
            .and_then(|d| d.get_mut(&port))
            .ok_or(XenErrno::EINVAL)?;
        p.sent += 1;
        if let State::Interdomain {
            remote,
            remote_port,
        } = p.state
        {
            if let Some(r) = self
                .ports
                .get_mut(&remote)
                .and_then(|d| d.get_mut(&remote_port))
            {
                r.pending = true;
            }
        }
        Ok(())
    }

    /// `EVTCHNOP_close`: the peer's port reverts to unbound (to us), as in Xen.
    pub(crate) fn close(&mut self, domid: DomId, port: EvtchnPort) -> Result<(), XenErrno> {
        let p = self
            .ports
            .get_mut(&domid)
            .and_then(|d| d.remove(&port))
            .ok_or(XenErrno::EINVAL)?;
        if let State::Interdomain {
            remote,
            remote_port,
        } = p.state
        {
            if let Some(r) = self
                .ports
                .get_mut(&remote)
                .and_then(|d| d.get_mut(&remote_port))
            {
                r.state = State::Unbound { remote: domid };
            }
        }
        Ok(())
    }

    /// Closes every port of a dying domain; peers' ports revert to unbound.
    pub(crate) fn remove_domain(&mut self, domid: DomId) {
        let ports: alloc::vec::Vec<EvtchnPort> = self
            .ports
            .get(&domid)
            .map(|d| d.keys().copied().collect())
            .unwrap_or_default();
        for port in ports {
            let _ = self.close(domid, port);
        }
        self.ports.remove(&domid);
    }

    pub(crate) fn take_pending(&mut self, domid: DomId, port: EvtchnPort) -> bool {
        match self.ports.get_mut(&domid).and_then(|d| d.get_mut(&port)) {
            Some(p) if !p.masked => core::mem::replace(&mut p.pending, false),
            _ => false,
        }
    }

    /// Masks or unmasks one of `domid`'s ports (its pending flag is kept either way).
    pub(crate) fn set_masked(
        &mut self,
        domid: DomId,
        port: EvtchnPort,
        masked: bool,
    ) -> Result<(), XenErrno> {
        let p = self
            .ports
            .get_mut(&domid)
            .and_then(|d| d.get_mut(&port))
            .ok_or(XenErrno::EINVAL)?;
        p.masked = masked;
        Ok(())
    }

    /// Whether one of `domid`'s ports is masked.
    pub(crate) fn is_masked(&self, domid: DomId, port: EvtchnPort) -> bool {
        self.ports
            .get(&domid)
            .and_then(|d| d.get(&port))
            .is_some_and(|p| p.masked)
    }

    pub(crate) fn any_pending(&self, domid: DomId) -> bool {
        self.ports
            .get(&domid)
            .is_some_and(|d| d.values().any(|p| p.pending && !p.masked))
    }

    pub(crate) fn open_ports(&self, domid: DomId) -> usize {
        self.ports.get(&domid).map_or(0, BTreeMap::len)
    }

    pub(crate) fn sent(&self, domid: DomId, port: EvtchnPort) -> u64 {
        self.ports
            .get(&domid)
            .and_then(|d| d.get(&port))
            .map_or(0, |p| p.sent)
    }

    /// The `(remote domain, remote port)` a port is bound to, if interdomain.
    pub(crate) fn peer(&self, domid: DomId, port: EvtchnPort) -> Option<(DomId, EvtchnPort)> {
        match self.ports.get(&domid)?.get(&port)?.state {
            State::Interdomain {
                remote,
                remote_port,
            } => Some((remote, remote_port)),
            State::Unbound { .. } => None,
        }
    }
}
