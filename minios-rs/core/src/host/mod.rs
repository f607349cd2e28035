//! The in-process platform for host unit tests and fuzzers (feature `host`).
//!
//! A [`World`] holds everything several simulated domains share: an in-memory xenstore with
//! xenstored's semantics (permissions, watches, transactions), grant tables over real 4 KiB
//! [`HostPage`]s with Xen's `GNTST_*` errors, inter-domain event channels, and a
//! controllable clock. Each [`HostDomain`] implements [`Platform`] for one domain, so a test
//! can run the toolstack (dom0), a driver domain and a hostile frontend against one store:
//!
//! ```
//! use minios::host::{DeviceSpec, World};
//! use minios::xenstore::Store;
//!
//! let world = World::new();
//! let dd = world.create_domain(1, "dd");
//! let guest = world.create_domain(5, "guest");
//! let vif = DeviceSpec::new("vif", 1, 5, 0);
//! world.add_device(&vif);
//! let mut xs = guest.xenstore();
//! // The frontend owns its device directory and may write anything there...
//! xs.write(&format!("{}/state", vif.frontend_path()), b"garbage").unwrap();
//! // ...but not the backend directory.
//! assert!(xs.write(&format!("{}/state", vif.backend_path()), b"4").is_err());
//! ```
//!
//! Not simulated: xenstore quotas, `XS_DIRECTORY_PART`, grant transfer, VIRQs.

extern crate std;

mod evtchn;
mod grant;
mod page;
mod settle;
mod store;
mod xs;

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};

pub use grant::DEFAULT_GRANT_ENTRIES;
pub use page::HostPage;
pub use settle::{settle, MAX_ROUNDS, QUIET_ROUNDS};

use self::store::Scope;
use crate::platform::{
    Access, Clock, CopyDst, CopyOp, CopySrc, DomId, EventChannel, Events, EvtchnPort, GrantError,
    GrantRef, GrantedPage, Grants, MemError, Platform, SharedMem, TransportError, XenErrno,
    XsTransport,
};
use crate::xenstore::{Perm, PermAccess, Xenstore};

#[derive(Debug, Default)]
struct State {
    now_ns: u64,
    domains: BTreeSet<DomId>,
    grants: grant::GrantTables,
    events: evtchn::EventChannels,
    xs: xs::XsServer,
    /// Most grant mappings one domain may hold at once (maptrack size).
    map_limit: usize,
    /// `wait` calls that found nothing to do and no deadline (would block forever).
    idle_waits: u64,
    /// Run after every grant-copy batch (tests that change memory between two copies).
    copy_hooks: CopyHooks,
}

impl State {
    /// Whether `domid`'s `wait` returns at once: one of its unmasked ports is pending or one
    /// of its xenstore connections has bytes to read.
    fn has_wakeup(&self, domid: DomId) -> bool {
        self.events.any_pending(domid) || self.xs.domain_has_output(domid)
    }
}

/// Test hooks run after each grant-copy batch.
#[derive(Default)]
struct CopyHooks(Vec<Box<dyn FnMut() + Send>>);

impl core::fmt::Debug for CopyHooks {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} copy hook(s)", self.0.len())
    }
}

/// Everything the simulated domains share. Cloning gives another handle to the same world.
#[derive(Clone, Debug)]
pub struct World {
    state: Arc<Mutex<State>>,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

/// A device as the toolstack (libxl) creates it: both directories with their permissions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Backend type (`vif`, `vbd`, `vusb`, `vsnd`).
    pub kind: String,
    /// Frontend directory name under `device/` (usually equal to `kind`).
    pub frontend_kind: String,
    /// The backend (driver) domain.
    pub backend: DomId,
    /// The frontend (guest) domain.
    pub frontend: DomId,
    /// Device id.
    pub devid: u32,
    /// Extra backend keys the toolstack writes (`mac`, `params`, `mode`…).
    pub backend_keys: Vec<(String, String)>,
    /// Extra frontend keys the toolstack writes (`mac`, `virtual-device`…).
    pub frontend_keys: Vec<(String, String)>,
}

impl DeviceSpec {
    /// A device with no extra keys.
    pub fn new(kind: &str, backend: DomId, frontend: DomId, devid: u32) -> Self {
        Self {
            kind: kind.into(),
            frontend_kind: kind.into(),
            backend,
            frontend,
            devid,
            backend_keys: Vec::new(),
            frontend_keys: Vec::new(),
        }
    }

    /// Adds a backend key.
    pub fn backend_key(mut self, key: &str, value: &str) -> Self {
        self.backend_keys.push((key.into(), value.into()));
        self
    }

    /// Adds a frontend key.
    pub fn frontend_key(mut self, key: &str, value: &str) -> Self {
        self.frontend_keys.push((key.into(), value.into()));
        self
    }

    /// `/local/domain/<backend>/backend/<kind>/<frontend>/<devid>`.
    pub fn backend_path(&self) -> String {
        alloc::format!(
            "/local/domain/{}/backend/{}/{}/{}",
            self.backend,
            self.kind,
            self.frontend,
            self.devid
        )
    }

    /// `/local/domain/<frontend>/device/<frontend_kind>/<devid>`.
    pub fn frontend_path(&self) -> String {
        alloc::format!(
            "/local/domain/{}/device/{}/{}",
            self.frontend,
            self.frontend_kind,
            self.devid
        )
    }
}

fn perm(access: PermAccess, domid: DomId) -> Perm {
    Perm { access, domid }
}

impl World {
    /// A world with dom0 and the skeleton `/local/domain/0`, clock at 0.
    pub fn new() -> Self {
        let world = Self {
            state: Arc::new(Mutex::new(State {
                map_limit: 4096,
                ..State::default()
            })),
        };
        world.add_domain(0);
        world.write_direct(0, "/local/domain/0/name", b"Domain-0", None);
        world
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not poison every later check.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add_domain(&self, domid: DomId) {
        let mut s = self.lock();
        s.domains.insert(domid);
        s.grants.add_domain(domid);
        s.events.add_domain(domid);
    }

    /// Writes as `as_dom` outside any transaction (firing watches); sets `perms` if given.
    fn write_direct(&self, as_dom: DomId, path: &str, value: &[u8], perms: Option<&[Perm]>) {
        let mut s = self.lock();
        let mut changes =
            s.xs.store
                .write(Scope::Direct, as_dom, path, Some(value))
                .unwrap_or_default();
        if let Some(perms) = perms {
            changes.extend(
                s.xs.store
                    .set_perms(Scope::Direct, as_dom, path, perms)
                    .unwrap_or_default(),
            );
        }
        s.xs.fire(&changes);
    }

    /// Creates a domain the way libxl does: `/local/domain/<id>` readable by the domain,
    /// `name`, `domid`, and the domain-writable `control/shutdown`, `control/feature-*`,
    /// `data`, `error`, `device`-side nodes. Returns its platform.
    pub fn create_domain(&self, domid: DomId, name: &str) -> HostDomain {
        self.add_domain(domid);
        let home = alloc::format!("/local/domain/{domid}");
        let ro = [perm(PermAccess::NoAccess, 0), perm(PermAccess::Read, domid)];
        let rw = [perm(PermAccess::NoAccess, domid)];
        self.write_direct(0, &home, b"", Some(&ro));
        self.write_direct(
            0,
            &alloc::format!("{home}/name"),
            name.as_bytes(),
            Some(&ro),
        );
        self.write_direct(
            0,
            &alloc::format!("{home}/domid"),
            domid.to_string().as_bytes(),
            Some(&ro),
        );
        for node in ["device", "control"] {
            self.write_direct(0, &alloc::format!("{home}/{node}"), b"", Some(&ro));
        }
        for node in [
            "control/shutdown",
            "control/feature-poweroff",
            "control/feature-reboot",
            "data",
            "drivers",
            "feature",
            "attr",
            "error",
        ] {
            self.write_direct(0, &alloc::format!("{home}/{node}"), b"", Some(&rw));
        }
        self.domain(domid)
    }

    /// A handle for an existing domain (dom0 is created by [`World::new`]).
    pub fn domain(&self, domid: DomId) -> HostDomain {
        HostDomain {
            world: self.clone(),
            domid,
        }
    }

    /// Destroys a domain: its ports close (peers' ports become unbound), its grants end
    /// (existing mappings stay valid until unmapped), its xenstore home is removed and
    /// `@releaseDomain` fires. Its `HostDomain` handles must not be used afterwards.
    pub fn destroy_domain(&self, domid: DomId) {
        let home = alloc::format!("/local/domain/{domid}");
        let mut s = self.lock();
        s.domains.remove(&domid);
        s.events.remove_domain(domid);
        s.grants.revoke_all(domid);
        let changes = s.xs.store.rm(Scope::Direct, 0, &home).unwrap_or_default();
        s.xs.fire(&changes);
        s.xs.fire_special("@releaseDomain");
    }

    /// Creates both directories of a device in one transaction, as libxl's
    /// `libxl__device_generic_add` does: backend dir owned by the backend and readable by the
    /// frontend (`frontend`, `frontend-id`, `online`=1, `state`=1 + extra keys), frontend dir
    /// owned by the frontend and readable by the backend (`backend`, `backend-id`, `state`=1
    /// + extra keys).
    pub fn add_device(&self, dev: &DeviceSpec) {
        let be = dev.backend_path();
        let fe = dev.frontend_path();
        let be_perms = [
            perm(PermAccess::NoAccess, dev.backend),
            perm(PermAccess::Read, dev.frontend),
        ];
        let fe_perms = [
            perm(PermAccess::NoAccess, dev.frontend),
            perm(PermAccess::Read, dev.backend),
        ];
        let mut be_keys: Vec<(String, String)> = alloc::vec![
            ("frontend".into(), fe.clone()),
            ("frontend-id".into(), dev.frontend.to_string()),
            ("online".into(), "1".into()),
            ("state".into(), "1".into()),
        ];
        be_keys.extend(dev.backend_keys.iter().cloned());
        let mut fe_keys: Vec<(String, String)> = alloc::vec![
            ("backend".into(), be.clone()),
            ("backend-id".into(), dev.backend.to_string()),
            ("state".into(), "1".into()),
        ];
        fe_keys.extend(dev.frontend_keys.iter().cloned());

        let mut s = self.lock();
        let State { xs, .. } = &mut *s;
        let mut tx = xs.store.begin();
        for (dir, perms, keys) in [(&fe, &fe_perms, &fe_keys), (&be, &be_perms, &be_keys)] {
            let _ = xs.store.rm(Scope::Tx(&mut tx), 0, dir);
            let _ = xs.store.write(Scope::Tx(&mut tx), 0, dir, Some(b""));
            let _ = xs.store.set_perms(Scope::Tx(&mut tx), 0, dir, perms);
            for (k, v) in keys {
                let path = alloc::format!("{dir}/{k}");
                let _ = xs
                    .store
                    .write(Scope::Tx(&mut tx), 0, &path, Some(v.as_bytes()));
                let _ = xs.store.set_perms(Scope::Tx(&mut tx), 0, &path, perms);
            }
        }
        let changes = xs.store.commit(tx).unwrap_or_default();
        xs.fire(&changes);
    }

    /// Starts removing a device as libxl does for a driver-domain backend: backend
    /// `online`=0 and `state`=5 (Closing) in one transaction. libxl then waits 10 s for the
    /// backend `state` to reach 6 and for the backend directory to vanish.
    pub fn remove_device(&self, dev: &DeviceSpec) {
        let be = dev.backend_path();
        let mut s = self.lock();
        let State { xs, .. } = &mut *s;
        let mut tx = xs.store.begin();
        let _ = xs.store.write(
            Scope::Tx(&mut tx),
            0,
            &alloc::format!("{be}/online"),
            Some(b"0"),
        );
        let _ = xs.store.write(
            Scope::Tx(&mut tx),
            0,
            &alloc::format!("{be}/state"),
            Some(b"5"),
        );
        let changes = xs.store.commit(tx).unwrap_or_default();
        xs.fire(&changes);
    }

    /// Reads a node as dom0, without side effects. `None` if missing.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.lock()
            .xs
            .store
            .tree()
            .get(path)
            .map(|n| n.value.clone())
    }

    /// [`read`](Self::read) as a lossy UTF-8 string.
    pub fn read_str(&self, path: &str) -> Option<String> {
        self.read(path)
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// Whether a node exists.
    pub fn exists(&self, path: &str) -> bool {
        self.read(path).is_some()
    }

    /// The permissions of a node, owner first.
    pub fn perms(&self, path: &str) -> Option<Vec<Perm>> {
        self.lock()
            .xs
            .store
            .tree()
            .get(path)
            .map(|n| n.perms.clone())
    }

    /// Writes a node as `as_dom` (with that domain's permissions), firing watches.
    pub fn write_as(&self, as_dom: DomId, path: &str, value: &[u8]) -> Result<(), XenErrno> {
        let mut s = self.lock();
        let changes = s.xs.store.write(Scope::Direct, as_dom, path, Some(value))?;
        s.xs.fire(&changes);
        Ok(())
    }

    /// Removes a subtree as `as_dom`, firing watches.
    pub fn rm_as(&self, as_dom: DomId, path: &str) -> Result<(), XenErrno> {
        let mut s = self.lock();
        let changes = s.xs.store.rm(Scope::Direct, as_dom, path)?;
        s.xs.fire(&changes);
        Ok(())
    }

    /// Every node path at or below `path`, sorted (debugging and leak checks).
    pub fn paths_below(&self, path: &str) -> Vec<String> {
        let s = self.lock();
        store::all_paths(s.xs.store.tree())
            .into_iter()
            .filter(|p| store::is_at_or_below(p, path))
            .collect()
    }

    /// A listing of the subtree at `path` (`path = value` lines), for assertion messages.
    pub fn dump(&self, path: &str) -> String {
        let mut out = String::new();
        for p in self.paths_below(path) {
            let v = self.read_str(&p).unwrap_or_default();
            let _ = writeln!(out, "{p} = {v:?}");
        }
        out
    }

    /// Current simulated time.
    pub fn now_ns(&self) -> u64 {
        self.lock().now_ns
    }

    /// Advances the clock.
    pub fn advance(&self, ns: u64) {
        let mut s = self.lock();
        s.now_ns = s.now_ns.saturating_add(ns);
    }

    /// Grant mappings `domid` currently holds (leak checks).
    pub fn live_mappings(&self, domid: DomId) -> usize {
        self.lock().grants.mapped_by(domid)
    }

    /// Grant entries in `domid`'s table, including ended ones still mapped by a peer.
    pub fn grant_entries(&self, domid: DomId) -> usize {
        self.lock().grants.granted_by(domid)
    }

    /// Open event channel ports of `domid` (leak checks).
    pub fn open_ports(&self, domid: DomId) -> usize {
        self.lock().events.open_ports(domid)
    }

    /// Whether `domid` holds `port` masked (an event storm being held back).
    pub fn port_masked(&self, domid: DomId, port: EvtchnPort) -> bool {
        self.lock().events.is_masked(domid, port)
    }

    /// Notifications `domid` has sent through `port` (XSA-391 bounds).
    pub fn notifications_sent(&self, domid: DomId, port: EvtchnPort) -> u64 {
        self.lock().events.sent(domid, port)
    }

    /// Where `domid`'s `port` is bound: `(remote domain, remote port)`.
    pub fn port_peer(&self, domid: DomId, port: EvtchnPort) -> Option<(DomId, EvtchnPort)> {
        self.lock().events.peer(domid, port)
    }

    /// Sets the most grant mappings any one domain may hold (default 4096); beyond it maps
    /// fail with `GNTST_no_space`.
    pub fn set_map_limit(&self, limit: usize) {
        self.lock().map_limit = limit;
    }

    /// `wait` calls so far that had nothing to wait for and no deadline: on Xen they would
    /// have blocked forever (or until an outside event).
    pub fn idle_waits(&self) -> u64 {
        self.lock().idle_waits
    }

    /// Runs `hook` after every grant-copy batch any domain issues, until `clear_copy_hooks`:
    /// lets a test play a frontend that rewrites its pages between two of the backend's
    /// copies.
    pub fn after_each_copy(&self, hook: impl FnMut() + Send + 'static) {
        self.lock().copy_hooks.0.push(Box::new(hook));
    }

    /// Removes every hook added with `after_each_copy`.
    pub fn clear_copy_hooks(&self) {
        self.lock().copy_hooks.0.clear();
    }
}

/// One simulated domain: implements [`Platform`], plus test hooks for playing a (possibly
/// hostile) frontend or toolstack.
#[derive(Clone, Debug)]
pub struct HostDomain {
    world: World,
    domid: DomId,
}

impl HostDomain {
    /// The world this domain lives in.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// Whether [`Platform::wait`] would return at once (something would wake the domain)
    /// rather than block: e.g. a held-back port's notifications must not.
    pub fn has_wakeup(&self) -> bool {
        self.world.lock().has_wakeup(self.domid)
    }

    /// A new xenstore connection for this domain.
    pub fn xs_transport(&self) -> HostXs {
        let conn = self.world.lock().xs.connect(self.domid);
        HostXs {
            world: self.world.clone(),
            conn,
        }
    }

    /// A xenstore client on a new connection.
    pub fn xenstore(&self) -> Xenstore<HostXs> {
        Xenstore::new(self.xs_transport())
    }

    /// Grants `to` access to `page` without an owning handle (for frontends that misbehave:
    /// grant the same page twice, never end access, …). See also [`Grants::grant_page`].
    pub fn grant(
        &self,
        page: &HostPage,
        to: DomId,
        access: Access,
    ) -> Result<GrantRef, GrantError> {
        self.world
            .lock()
            .grants
            .grant(self.domid, to, page.clone(), access)
    }

    /// Ends (revokes) access to one of our grants, even while the peer has it mapped: new
    /// maps and copies fail, existing mappings keep working (as on Xen).
    pub fn revoke(&self, gref: GrantRef) {
        self.world.lock().grants.end(self.domid, gref);
    }

    /// The page behind one of our grant references (to rewrite it while mapped).
    pub fn granted_page(&self, gref: GrantRef) -> Option<HostPage> {
        self.world.lock().grants.page(self.domid, gref)
    }

    /// Sets the size of our grant table (default [`DEFAULT_GRANT_ENTRIES`]).
    pub fn set_grant_limit(&self, entries: u32) {
        self.world.lock().grants.set_limit(self.domid, entries);
    }

    /// Allocates an unbound port without an owning handle.
    pub fn alloc_unbound_raw(&self, remote: DomId) -> Result<EvtchnPort, XenErrno> {
        self.world.lock().events.alloc_unbound(self.domid, remote)
    }

    /// Notifies through one of our ports by number (an event storm is a loop over this).
    pub fn notify_raw(&self, port: EvtchnPort) -> Result<(), XenErrno> {
        self.world.lock().events.send(self.domid, port)
    }

    /// Tests and clears one of our ports by number.
    pub fn take_pending_raw(&self, port: EvtchnPort) -> bool {
        self.world.lock().events.take_pending(self.domid, port)
    }

    /// Closes one of our ports by number.
    pub fn close_raw(&self, port: EvtchnPort) -> Result<(), XenErrno> {
        self.world.lock().events.close(self.domid, port)
    }
}

/// A mapped foreign grant in the host platform. Unmaps on drop.
#[derive(Debug)]
pub struct HostMapping {
    page: HostPage,
    writable: bool,
    world: World,
    mapper: DomId,
    owner: DomId,
    gref: GrantRef,
}

impl HostMapping {
    /// The granting domain and grant reference.
    pub fn source(&self) -> (DomId, GrantRef) {
        (self.owner, self.gref)
    }
}

impl Drop for HostMapping {
    fn drop(&mut self) {
        self.world
            .lock()
            .grants
            .unmap(self.mapper, self.owner, self.gref);
    }
}

impl SharedMem for HostMapping {
    fn size(&self) -> usize {
        self.page.size()
    }
    fn writable(&self) -> bool {
        self.writable
    }
    fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), MemError> {
        self.page.read(offset, buf)
    }
    fn write(&self, offset: usize, data: &[u8]) -> Result<(), MemError> {
        if !self.writable {
            return Err(MemError::ReadOnly);
        }
        self.page.write(offset, data)
    }
    fn load_u32(&self, offset: usize) -> Result<u32, MemError> {
        self.page.load_u32(offset)
    }
    fn store_u32(&self, offset: usize, value: u32) -> Result<(), MemError> {
        if !self.writable {
            return Err(MemError::ReadOnly);
        }
        self.page.store_u32(offset, value)
    }
}

/// One of our pages granted to another domain. Ends access on drop.
#[derive(Debug)]
pub struct HostGranted {
    page: HostPage,
    gref: GrantRef,
    world: World,
    owner: DomId,
}

impl HostGranted {
    /// The page itself.
    pub fn page(&self) -> &HostPage {
        &self.page
    }
}

impl Drop for HostGranted {
    fn drop(&mut self) {
        self.world.lock().grants.end(self.owner, self.gref);
    }
}

impl SharedMem for HostGranted {
    fn size(&self) -> usize {
        self.page.size()
    }
    fn writable(&self) -> bool {
        true
    }
    fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), MemError> {
        self.page.read(offset, buf)
    }
    fn write(&self, offset: usize, data: &[u8]) -> Result<(), MemError> {
        self.page.write(offset, data)
    }
    fn load_u32(&self, offset: usize) -> Result<u32, MemError> {
        self.page.load_u32(offset)
    }
    fn store_u32(&self, offset: usize, value: u32) -> Result<(), MemError> {
        self.page.store_u32(offset, value)
    }
}

impl GrantedPage for HostGranted {
    fn gref(&self) -> GrantRef {
        self.gref
    }
}

/// An open event channel in the host platform. Closes on drop.
#[derive(Debug)]
pub struct HostChannel {
    world: World,
    domid: DomId,
    port: EvtchnPort,
}

impl Drop for HostChannel {
    fn drop(&mut self) {
        let _ = self.world.lock().events.close(self.domid, self.port);
    }
}

impl EventChannel for HostChannel {
    fn port(&self) -> EvtchnPort {
        self.port
    }
    fn notify(&self) -> Result<(), XenErrno> {
        self.world.lock().events.send(self.domid, self.port)
    }
    fn take_pending(&self) -> bool {
        self.world.lock().events.take_pending(self.domid, self.port)
    }
    fn mask(&self) {
        let _ = self
            .world
            .lock()
            .events
            .set_masked(self.domid, self.port, true);
    }
    fn unmask(&self) -> Result<(), XenErrno> {
        self.world
            .lock()
            .events
            .set_masked(self.domid, self.port, false)
    }
}

/// A xenstore connection of one simulated domain. Requests are answered synchronously, so
/// a reply is always readable right after [`send`](XsTransport::send); waiting with nothing
/// queued returns [`TransportError::Stalled`] instead of hanging. Closes on drop (its
/// watches and transactions go).
#[derive(Debug)]
pub struct HostXs {
    world: World,
    conn: u32,
}

impl HostXs {
    /// Appends raw bytes to what this connection will read next: forged replies and events
    /// for testing the client against a misbehaving server.
    pub fn inject(&self, bytes: &[u8]) {
        self.world.lock().xs.inject(self.conn, bytes);
    }

    /// Bytes waiting to be read.
    pub fn pending_bytes(&self) -> usize {
        self.world.lock().xs.pending_output(self.conn)
    }
}

impl Drop for HostXs {
    fn drop(&mut self) {
        self.world.lock().xs.disconnect(self.conn);
    }
}

impl XsTransport for HostXs {
    fn send(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        self.world.lock().xs.send(self.conn, bytes);
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        Ok(self.world.lock().xs.recv(self.conn, buf))
    }
    fn wait_readable(&mut self) -> Result<(), TransportError> {
        if self.pending_bytes() > 0 {
            Ok(())
        } else {
            Err(TransportError::Stalled)
        }
    }
}

impl Grants for HostDomain {
    type Mapping = HostMapping;
    type Granted = HostGranted;

    fn map_batch(
        &self,
        domid: DomId,
        grefs: &[GrantRef],
        access: Access,
    ) -> Vec<Result<HostMapping, GrantError>> {
        let mut s = self.world.lock();
        let limit = s.map_limit;
        let pages: Vec<_> = grefs
            .iter()
            .map(|&gref| {
                s.grants
                    .map(self.domid, domid, gref, access, limit)
                    .map(|p| (p, gref))
            })
            .collect();
        drop(s);
        pages
            .into_iter()
            .map(|r| {
                r.map(|(page, gref)| HostMapping {
                    page,
                    writable: access == Access::ReadWrite,
                    world: self.world.clone(),
                    mapper: self.domid,
                    owner: domid,
                    gref,
                })
            })
            .collect()
    }

    fn copy(&self, ops: &mut [CopyOp<'_>]) {
        for op in ops.iter_mut() {
            op.status = self.copy_one(op);
        }
        // Hooks run outside the lock: they may touch pages, xenstore or events.
        let mut hooks = core::mem::take(&mut self.world.lock().copy_hooks.0);
        for hook in &mut hooks {
            hook();
        }
        let mut s = self.world.lock();
        let added = core::mem::replace(&mut s.copy_hooks.0, hooks);
        s.copy_hooks.0.extend(added);
    }

    fn grant_page(&self, domid: DomId, access: Access) -> Result<HostGranted, GrantError> {
        let page = HostPage::new();
        let gref = self.grant(&page, domid, access)?;
        Ok(HostGranted {
            page,
            gref,
            world: self.world.clone(),
            owner: self.domid,
        })
    }
}

impl HostDomain {
    fn copy_one(&self, op: &mut CopyOp<'_>) -> Result<(), GrantError> {
        op.validate()?;
        let len = usize::from(op.len);
        let mut bytes = alloc::vec![0u8; len];
        match &op.src {
            CopySrc::Local(b) => bytes.copy_from_slice(b),
            CopySrc::Foreign(r) => {
                let page = self.world.lock().grants.for_copy(
                    self.domid,
                    r.domid,
                    r.gref,
                    Access::ReadOnly,
                )?;
                // Cannot fail: validate() checked offset + len <= 4096.
                page.read(usize::from(r.offset), &mut bytes)
                    .map_err(|_| GrantError::NotAttempted)?;
            }
        }
        match &mut op.dst {
            CopyDst::Local(b) => b.copy_from_slice(&bytes),
            CopyDst::Foreign(r) => {
                let page = self.world.lock().grants.for_copy(
                    self.domid,
                    r.domid,
                    r.gref,
                    Access::ReadWrite,
                )?;
                page.write(usize::from(r.offset), &bytes)
                    .map_err(|_| GrantError::NotAttempted)?;
            }
        }
        Ok(())
    }
}

impl Events for HostDomain {
    type Channel = HostChannel;

    fn alloc_unbound(&self, remote: DomId) -> Result<HostChannel, XenErrno> {
        let port = self.world.lock().events.alloc_unbound(self.domid, remote)?;
        Ok(HostChannel {
            world: self.world.clone(),
            domid: self.domid,
            port,
        })
    }

    fn bind_interdomain(
        &self,
        remote: DomId,
        remote_port: EvtchnPort,
    ) -> Result<HostChannel, XenErrno> {
        let port = self
            .world
            .lock()
            .events
            .bind_interdomain(self.domid, remote, remote_port)?;
        Ok(HostChannel {
            world: self.world.clone(),
            domid: self.domid,
            port,
        })
    }
}

impl Clock for HostDomain {
    fn now_ns(&self) -> u64 {
        self.world.lock().now_ns
    }
}

impl Platform for HostDomain {
    type Xs = HostXs;

    fn domid(&self) -> DomId {
        self.domid
    }

    /// Returns at once if one of our ports is pending or one of our xenstore connections
    /// has bytes to read; otherwise jumps the clock to the deadline (virtual time), or with
    /// no deadline counts an idle wait ([`World::idle_waits`]) and returns.
    fn wait(&self, deadline_ns: Option<u64>) {
        let mut s = self.world.lock();
        if s.has_wakeup(self.domid) {
            return;
        }
        match deadline_ns {
            Some(d) => s.now_ns = s.now_ns.max(d),
            None => s.idle_waits += 1,
        }
    }
}

#[cfg(test)]
mod tests;
