//! Event channels: binding ports, the race-free pending scan, per-port "fired" flags, and
//! blocking in the hypervisor until something happens.
//!
//! # Delivery design: no interrupts
//! Interrupts stay disabled for the whole run and no upcall is configured. Xen marks a port
//! pending in the shared info bitmaps and, for an unmasked port, sets the word's bit in
//! vCPU 0's `evtchn_pending_sel`. [`scan`] runs in normal code and
//! 1. clears `evtchn_upcall_pending` (kept tidy; nothing reads it);
//! 2. swaps `evtchn_pending_sel` with 0;
//! 3. for each pending, unmasked port in those words, atomically test-and-clears its pending
//!    bit and records it in our own `fired` bitmap.
//!
//! [`block`] scans, checks its wake condition and only then blocks with `SCHEDOP_poll`,
//! listing every bound, unmasked port (plus `VIRQ_TIMER`'s). That is race-free by Xen's
//! construction: `do_poll` marks the vCPU blocked first and then checks the listed ports'
//! pending bits, so an event that arrived after our scan makes it return at once; while
//! blocked, any port becoming pending wakes the vCPU (`evtchn_check_pollers`). Deadlines arm
//! the one-shot timer (`VCPUOP_set_singleshot_timer` → `VIRQ_TIMER`) and are also passed as
//! the poll's own timeout. Owners take their port's flag with [`Channel::take_pending`]; a
//! flag that is not taken keeps [`Platform::wait`](minios::platform::Platform::wait) from
//! blocking, so no notification is lost between a check and a wait.
//!
//! Why not `SCHEDOP_block`: an HVM/PVH vCPU blocked in it is only woken by event channels
//! when an upcall (callback vector) is configured (Xen's `hvm_assert_evtchn_irq`), and then
//! the race-free idiom is `sti; hlt` with an interrupt per wake-up. That worked, but under
//! the TCG-emulated testbed the vCPU twice wedged at the first instruction of the upcall
//! handler (2 of ~40 boots); polling takes no interrupts at all.
//!
//! `SCHEDOP_poll` accepts at most 128 ports. With more bound ports the rest are still
//! delivered (any pending port wakes a poller), but one that fires in the instant between the
//! scan and the poll would only be seen at the next wake-up, so the poll is then capped at
//! [`OVERFLOW_POLL_NS`].
//!
//! All 4096 ports start masked; a port is unmasked when bound. The console's port stays
//! masked and out of the poll set (xenconsoled notifies after every read; the console polls
//! it only while its ring is full).

use crate::shared_info::{self, LiveWords};
use crate::sync::Global;
use xen_abi::evtchn::{next_pending_port, port_bit, port_word, EVTCHN_2L_NR_CHANNELS};
use xen_abi::hypercall::VIRQ_TIMER;
use xen_abi::{DomId, EvtchnPort, XenErrno};

const WORDS: usize = 64;
/// Most ports one `SCHEDOP_poll` may list (Xen's limit).
const MAX_POLL_PORTS: usize = 128;
/// Longest poll when more ports are bound than one poll can list.
pub const OVERFLOW_POLL_NS: u64 = 10_000_000;

struct State {
    /// Ports that fired and were not yet taken by their owner.
    fired: [u64; WORDS],
    /// Ports bound through this module (closed on drop of their `Channel`).
    owned: [u64; WORDS],
    /// Owned ports their owner masked: left out of the poll set (a masked port stays
    /// pending, which would make every poll return at once).
    masked: [u64; WORDS],
    /// `VIRQ_TIMER`'s port: it only wakes us, nobody takes it.
    timer_port: Option<EvtchnPort>,
}

static STATE: Global<State> = Global::new(State {
    fired: [0; WORDS],
    owned: [0; WORDS],
    masked: [0; WORDS],
    timer_port: None,
});

fn test(bits: &[u64; WORDS], port: EvtchnPort) -> bool {
    bits[port_word(port)] & port_bit(port) != 0
}

fn assign(bits: &mut [u64; WORDS], port: EvtchnPort, on: bool) {
    if on {
        bits[port_word(port)] |= port_bit(port);
    } else {
        bits[port_word(port)] &= !port_bit(port);
    }
}

/// Masks every port and binds `VIRQ_TIMER`.
pub fn init() -> Result<(), XenErrno> {
    for port in 0..EVTCHN_2L_NR_CHANNELS {
        shared_info::mask(port);
    }
    let timer = crate::xen::evtchn::bind_virq(VIRQ_TIMER, 0)?;
    crate::xen::evtchn::unmask(timer)?;
    STATE.with(|s| s.timer_port = Some(timer));
    Ok(())
}

/// Moves pending ports from Xen's bitmaps into our `fired` flags (see the module docs).
pub fn scan() {
    shared_info::clear_upcall_pending();
    let sel = shared_info::take_pending_sel();
    if sel == 0 {
        return;
    }
    STATE.with(|s| {
        let mut from = 0;
        while let Some(port) = next_pending_port(sel, &LiveWords, from) {
            if shared_info::test_and_clear_pending(port) && Some(port) != s.timer_port {
                assign(&mut s.fired, port, true);
            }
            from = port + 1;
            if from >= EVTCHN_2L_NR_CHANNELS {
                break;
            }
        }
    });
}

/// Takes `port`'s fired flag: true if it fired since the last call.
pub fn take(port: EvtchnPort) -> bool {
    scan();
    STATE.with(|s| {
        let was = test(&s.fired, port);
        assign(&mut s.fired, port, false);
        was
    })
}

/// Whether any bound port fired and was not taken.
pub fn any_fired() -> bool {
    STATE.with(|s| s.fired.iter().zip(&s.owned).any(|(f, o)| f & o != 0))
}

/// Blocks in the hypervisor until `ready()` holds, `deadline_ns` (our clock) passes, or any
/// port fires (spurious returns are allowed; callers re-check). `ready` is evaluated after a
/// scan, with events recorded, immediately before blocking.
pub fn block(deadline_ns: Option<u64>, ready: impl Fn() -> bool) {
    scan();
    if ready() {
        return;
    }
    let now = crate::time::now_ns();
    let mut timeout = 0;
    if let Some(deadline) = deadline_ns {
        if now >= deadline {
            return;
        }
        if let Err(e) = crate::time::arm(deadline) {
            log::warn!("cannot arm the one-shot timer: {e:?}");
        }
        timeout = crate::time::to_system(deadline);
    }
    let mut ports = [0; MAX_POLL_PORTS];
    let (n, complete) = STATE.with(|s| s.poll_set(&mut ports));
    if !complete {
        let cap = crate::time::to_system(now + OVERFLOW_POLL_NS);
        timeout = if timeout == 0 { cap } else { timeout.min(cap) };
    }
    crate::arch::platform::wait_for_event(&ports[..n], timeout);
    scan();
}

impl State {
    /// Fills `out` with the ports a poll must watch: the timer's, then every owned, unmasked
    /// port. Returns how many, and whether all of them fitted.
    fn poll_set(&self, out: &mut [EvtchnPort; MAX_POLL_PORTS]) -> (usize, bool) {
        let mut n = 0;
        if let Some(t) = self.timer_port {
            out[n] = t;
            n += 1;
        }
        for (w, (&owned, &masked)) in self.owned.iter().zip(&self.masked).enumerate() {
            let mut bits = owned & !masked;
            while bits != 0 {
                if n == MAX_POLL_PORTS {
                    return (n, false);
                }
                out[n] = w as EvtchnPort * 64 + bits.trailing_zeros();
                bits &= bits - 1;
                n += 1;
            }
        }
        (n, true)
    }
}

/// Waits for the console-style `port` (masked, not owned) with `SCHEDOP_poll` until
/// `ready()` or `deadline_ns`. Used where the normal wake-up path cannot be (the console is
/// written from inside logging).
pub fn poll_port(port: EvtchnPort, deadline_ns: u64, ready: impl Fn() -> bool) {
    shared_info::test_and_clear_pending(port);
    if ready() {
        return;
    }
    let _ = crate::xen::sched::poll(&[port], crate::time::to_system(deadline_ns));
}

/// Masks `port` (it no longer sets the selector; used for the console ring's port).
pub fn mask(port: EvtchnPort) {
    shared_info::mask(port);
}

/// An event channel port bound by this domain. Closed on drop.
#[derive(Debug)]
pub struct Channel {
    port: EvtchnPort,
}

impl Channel {
    fn register(port: EvtchnPort) -> Result<Self, XenErrno> {
        STATE.with(|s| {
            assign(&mut s.owned, port, true);
            assign(&mut s.masked, port, false);
            assign(&mut s.fired, port, false);
        });
        let ch = Channel { port };
        crate::xen::evtchn::unmask(port)?;
        Ok(ch)
    }

    /// Allocates a port that `remote` may bind to (frontend side).
    pub fn alloc_unbound(remote: DomId) -> Result<Self, XenErrno> {
        Self::register(crate::xen::evtchn::alloc_unbound(remote)?)
    }

    /// Binds to `remote_port` of domain `remote` (backend side).
    pub fn bind_interdomain(remote: DomId, remote_port: EvtchnPort) -> Result<Self, XenErrno> {
        Self::register(crate::xen::evtchn::bind_interdomain(remote, remote_port)?)
    }

    /// Binds virtual IRQ `virq` (`VIRQ_*`, on vCPU 0).
    pub fn bind_virq(virq: u32) -> Result<Self, XenErrno> {
        Self::register(crate::xen::evtchn::bind_virq(virq, 0)?)
    }

    /// Binds physical IRQ `pirq` of a device we own (from pcifront's MSI/MSI-X answers or
    /// the toolstack's INTx mapping).
    pub fn bind_pirq(pirq: u32) -> Result<Self, XenErrno> {
        Self::register(crate::xen::evtchn::bind_pirq(pirq, 0)?)
    }

    /// Adopts a port Xen or the toolstack bound for us (the xenstore ring's).
    pub fn adopt(port: EvtchnPort) -> Result<Self, XenErrno> {
        Self::register(port)
    }

    /// The local port number.
    pub fn port(&self) -> EvtchnPort {
        self.port
    }

    /// Notifies the remote end.
    pub fn notify(&self) -> Result<(), XenErrno> {
        crate::xen::evtchn::send(self.port)
    }

    /// Whether the port fired since the last call (clears the flag).
    pub fn take_pending(&self) -> bool {
        take(self.port)
    }

    /// Stops the port from waking us (events still mark it pending).
    pub fn mask(&self) {
        STATE.with(|s| assign(&mut s.masked, self.port, true));
        shared_info::mask(self.port);
    }

    /// Lets the port wake us again; an event that arrived while masked is delivered now.
    pub fn unmask(&self) -> Result<(), XenErrno> {
        crate::xen::evtchn::unmask(self.port)?;
        STATE.with(|s| assign(&mut s.masked, self.port, false));
        Ok(())
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        shared_info::mask(self.port);
        if let Err(e) = crate::xen::evtchn::close(self.port) {
            log::warn!("closing event channel {}: {e:?}", self.port);
        }
        shared_info::test_and_clear_pending(self.port);
        STATE.with(|s| {
            assign(&mut s.owned, self.port, false);
            assign(&mut s.masked, self.port, false);
            assign(&mut s.fired, self.port, false);
        });
    }
}

impl minios::platform::EventChannel for Channel {
    fn port(&self) -> EvtchnPort {
        self.port
    }

    fn notify(&self) -> Result<(), XenErrno> {
        Channel::notify(self)
    }

    fn take_pending(&self) -> bool {
        Channel::take_pending(self)
    }

    fn mask(&self) {
        Channel::mask(self)
    }

    fn unmask(&self) -> Result<(), XenErrno> {
        Channel::unmask(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            fired: [0; WORDS],
            owned: [0; WORDS],
            masked: [0; WORDS],
            timer_port: Some(3),
        }
    }

    #[test]
    fn poll_set_lists_timer_then_unmasked_owned_ports() {
        let mut s = state();
        for p in [5, 64, 200, 4095] {
            assign(&mut s.owned, p, true);
        }
        assign(&mut s.masked, 64, true);
        let mut out = [0; MAX_POLL_PORTS];
        let (n, complete) = s.poll_set(&mut out);
        assert_eq!((&out[..n], complete), (&[3, 5, 200, 4095][..], true));
    }

    #[test]
    fn poll_set_overflow_is_reported() {
        let mut s = state();
        for p in 10..200 {
            assign(&mut s.owned, p, true);
        }
        let mut out = [0; MAX_POLL_PORTS];
        let (n, complete) = s.poll_set(&mut out);
        assert_eq!((n, complete), (MAX_POLL_PORTS, false));
        assert_eq!(out[1], 10);
        assert_eq!(out[MAX_POLL_PORTS - 1], 10 + MAX_POLL_PORTS as u32 - 2);
    }
}
