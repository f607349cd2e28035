//! [`Runtime`]: the handle an image's `main` receives, implementing the `minios` platform
//! traits with the hypercall-backed services of this crate, so backends written against
//! `minios::platform` run unchanged on Xen.

use crate::events::Channel;
use crate::grants::{GrantedPage, Mapping};
use crate::sync::Global;
use crate::xenstore::RingTransport;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use minios::platform::{Access, Clock, CopyOp, Events, GrantError, Grants, Platform};
use minios::xenstore::Xenstore;
use xen_abi::{DomId, EvtchnPort, GrantRef, XenErrno};

/// Handle to the running runtime, passed to the image's `main`. Cheap to copy; all state is
/// global to the domain.
#[derive(Clone, Copy, Debug)]
pub struct Runtime {
    _private: (),
}

static DOMID: AtomicU32 = AtomicU32::new(u32::MAX);
/// Boxed: the client is a few KiB and would otherwise sit in the image's `.data`.
static XENSTORE: Global<Option<Box<Xenstore<RingTransport>>>> = Global::new(None);

impl Runtime {
    /// Only `start` creates the handle, once the services are up.
    pub(crate) fn new(domid: DomId, xenstore: Xenstore<RingTransport>) -> Self {
        DOMID.store(u32::from(domid), Ordering::Relaxed);
        XENSTORE.with(|x| *x = Some(Box::new(xenstore)));
        Runtime { _private: () }
    }

    /// The xenstore client (over the ring). Available once: later calls return `None`.
    pub fn take_xenstore(&self) -> Option<Xenstore<RingTransport>> {
        XENSTORE.with(Option::take).map(|b| *b)
    }

    /// The domain's command line (xl.cfg `cmdline=`/`extra=`).
    pub fn cmdline(&self) -> &'static str {
        crate::cmdline::get()
    }

    /// The value of command-line option `key` (`key=value`; bare `key` gives `""`).
    pub fn option(&self, key: &str) -> Option<&'static str> {
        crate::cmdline::option(crate::cmdline::get(), key)
    }

    /// Whether command-line flag `key` is set (`key`, `key=1`, `key=yes`, …).
    pub fn flag(&self, key: &str) -> bool {
        crate::cmdline::flag(crate::cmdline::get(), key)
    }

    /// Binds virtual IRQ `virq` (`VIRQ_*`) to a new port.
    pub fn bind_virq(&self, virq: u32) -> Result<Channel, XenErrno> {
        Channel::bind_virq(virq)
    }

    /// Sleeps (blocked in Xen) until `now + ns`, ignoring other events.
    pub fn sleep_ns(&self, ns: u64) {
        let deadline = crate::time::now_ns().saturating_add(ns);
        while crate::time::now_ns() < deadline {
            crate::events::block(Some(deadline), || false);
        }
    }

    /// Stops the domain (see [`crate::control::Shutdown`]).
    pub fn shutdown(&self, how: crate::control::Shutdown) -> ! {
        crate::control::shutdown(how)
    }
}

impl Clock for Runtime {
    fn now_ns(&self) -> u64 {
        crate::time::now_ns()
    }
}

impl Events for Runtime {
    type Channel = Channel;

    fn alloc_unbound(&self, remote: DomId) -> Result<Channel, XenErrno> {
        Channel::alloc_unbound(remote)
    }

    fn bind_interdomain(
        &self,
        remote: DomId,
        remote_port: EvtchnPort,
    ) -> Result<Channel, XenErrno> {
        Channel::bind_interdomain(remote, remote_port)
    }

    fn notify_many(&self, channels: &[&Channel]) -> usize {
        let mut ports = [0; crate::xen::evtchn::SEND_BATCH];
        let mut failed = 0;
        for chunk in channels.chunks(ports.len()) {
            for (slot, ch) in ports.iter_mut().zip(chunk) {
                *slot = ch.port();
            }
            failed += crate::xen::evtchn::send_many(&ports[..chunk.len()]);
        }
        failed
    }
}

impl Grants for Runtime {
    type Mapping = Mapping;
    type Granted = GrantedPage;

    fn map_batch(
        &self,
        domid: DomId,
        grefs: &[GrantRef],
        access: Access,
    ) -> Vec<Result<Mapping, GrantError>> {
        crate::grants::map_batch(domid, grefs, access)
    }

    fn copy(&self, ops: &mut [CopyOp<'_>]) {
        crate::grants::copy(ops)
    }

    fn grant_page(&self, domid: DomId, access: Access) -> Result<GrantedPage, GrantError> {
        GrantedPage::new(domid, access)
    }
}

impl Platform for Runtime {
    type Xs = RingTransport;

    fn domid(&self) -> DomId {
        DOMID.load(Ordering::Relaxed) as DomId
    }

    fn wait(&self, deadline_ns: Option<u64>) {
        crate::events::block(deadline_ns, || {
            crate::events::any_fired() || crate::xenstore::readable()
        });
    }
}
