//! The backend state machine against simulated toolstack, healthy and hostile frontends.

extern crate std;

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use super::*;
use crate::executor::{Executor, ShutdownWatch, StopReason};
use crate::host::{DeviceSpec, HostChannel, HostDomain, HostGranted, HostMapping, HostXs, World};
use crate::platform::{Access, EventChannel, Events, GrantedPage, Grants, SharedMem};
use crate::ring::{BackChannel, FrontChannel};
use crate::testutil::{TestReq, TestRsp};
use crate::xenstore::XsConfig;

const DD: DomId = 1;

#[derive(Debug, Default)]
struct Log {
    probes: u32,
    features: u32,
    connects: u32,
    disconnects: u32,
    handled: u32,
    frontend_keys: u32,
    removed: u32,
}

struct TestDriver {
    log: Rc<RefCell<Log>>,
}

struct Conn {
    ring: BackChannel<HostMapping, TestReq, TestRsp>,
    ch: HostChannel,
}

struct TestDevice {
    log: Rc<RefCell<Log>>,
    conn: Option<Conn>,
}

impl BackendDriver<HostDomain> for TestDriver {
    type Device = TestDevice;

    fn kind(&self) -> &str {
        "vtest"
    }

    fn probe(&mut self, ctx: &mut DeviceCtx<'_, HostDomain>) -> Result<TestDevice, DeviceError> {
        self.log.borrow_mut().probes += 1;
        if ctx.read_backend_opt("mode")?.as_deref() == Some(b"broken") {
            return Err(DeviceError::new(
                XenErrno::ENODEV,
                "mode broken is not supported",
            ));
        }
        Ok(TestDevice {
            log: self.log.clone(),
            conn: None,
        })
    }
}

impl BackendDevice<HostDomain> for TestDevice {
    fn features(&mut self, ctx: &mut DeviceCtx<'_, HostDomain>) -> Result<(), DeviceError> {
        self.log.borrow_mut().features += 1;
        ctx.publish("feature-test", "1");
        ctx.publish("hotplug-status", "connected");
        Ok(())
    }

    fn connect(&mut self, ctx: &mut DeviceCtx<'_, HostDomain>) -> Result<(), DeviceError> {
        let gref = ctx.read_frontend_uint("ring-ref", u64::from(u32::MAX))? as u32;
        let port = ctx.read_frontend_uint("event-channel", u64::from(u32::MAX))? as u32;
        let fe = ctx.id.frontend_id;
        let mapping = ctx
            .platform
            .map(fe, gref, Access::ReadWrite)
            .map_err(|e| DeviceError::from(e).context(&format!("ring-ref {gref}")))?;
        let ring = BackChannel::new(mapping)?;
        let ch = ctx.platform.bind_interdomain(fe, port)?;
        self.conn = Some(Conn { ring, ch });
        self.log.borrow_mut().connects += 1;
        ctx.publish("connected-info", "ok");
        Ok(())
    }

    fn disconnect(&mut self, _ctx: &mut DeviceCtx<'_, HostDomain>) {
        if self.conn.take().is_some() {
            self.log.borrow_mut().disconnects += 1;
        }
    }

    fn poll(&mut self, ctx: &mut DeviceCtx<'_, HostDomain>) -> Result<(), DeviceError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let _ = conn.ch.take_pending();
        let mut done = 0;
        while let Some(req) = conn.ring.next_request()? {
            let status = (req.value as u16).wrapping_add(1);
            conn.ring.put_response(&TestRsp { id: req.id, status })?;
            done += 1;
            if done == 16 {
                ctx.wake_now(); // bounded work per pass
                break;
            }
        }
        if conn.ring.push() {
            conn.ch.notify()?;
        }
        self.log.borrow_mut().handled += done;
        Ok(())
    }

    fn frontend_changed(
        &mut self,
        _ctx: &mut DeviceCtx<'_, HostDomain>,
        _key: &str,
    ) -> Result<(), DeviceError> {
        self.log.borrow_mut().frontend_keys += 1;
        Ok(())
    }

    fn removed(&mut self, _ctx: &mut DeviceCtx<'_, HostDomain>) {
        assert!(self.conn.is_none(), "removed after the disconnect");
        self.log.borrow_mut().removed += 1;
    }
}

type TestBackend = Backend<HostDomain, TestDriver>;

struct Harness {
    world: World,
    exec: Executor<HostDomain>,
    backend: Rc<RefCell<TestBackend>>,
    log: Rc<RefCell<Log>>,
    config: BackendConfig,
}

impl Harness {
    fn new() -> Self {
        Self::with(XsConfig::default())
    }

    fn with(xs_config: XsConfig) -> Self {
        let world = World::new();
        let dd = world.create_domain(DD, "dd");
        let log = Rc::new(RefCell::new(Log::default()));
        let config = BackendConfig::default();
        let backend = Backend::with_config(TestDriver { log: log.clone() }, DD, config).shared();
        let xs = crate::xenstore::Xenstore::with_config(dd.xs_transport(), xs_config);
        let mut exec = Executor::new(dd, xs);
        exec.spawn(backend.clone()).unwrap();
        exec.spawn(ShutdownWatch::new()).unwrap();
        let mut h = Self {
            world,
            exec,
            backend,
            log,
            config,
        };
        h.settle();
        h
    }

    /// Runs passes until nothing is left to do right now (bounded).
    fn settle(&mut self) {
        crate::host::settle(&self.world, &mut [&mut self.exec]);
    }

    fn advance(&mut self, ns: u64) {
        self.world.advance(ns);
        self.settle();
    }

    fn be_state(&self, dev: &DeviceSpec) -> Option<String> {
        self.world
            .read_str(&format!("{}/state", dev.backend_path()))
    }

    fn error_node(&self, dev: &DeviceSpec) -> Option<String> {
        let path = format!(
            "/local/domain/{DD}/error/backend/{}/{}/{}/error",
            dev.kind, dev.frontend, dev.devid
        );
        self.world.read_str(&path)
    }

    fn connected(&self, dev: &DeviceSpec) -> bool {
        self.backend.borrow().is_connected(dev.frontend, dev.devid)
    }

    /// Adds a guest and its device, returns its frontend.
    fn guest(&mut self, domid: DomId, devid: u32) -> SimFrontend {
        if !self.world.exists(&format!("/local/domain/{domid}")) {
            self.world.create_domain(domid, "guest");
        }
        let dev = DeviceSpec::new("vtest", DD, domid, devid);
        self.world.add_device(&dev);
        SimFrontend::new(&self.world, dev)
    }
}

/// A guest's frontend driver, well-behaved unless a test makes it otherwise.
struct SimFrontend {
    dom: HostDomain,
    xs: crate::xenstore::Xenstore<HostXs>,
    dev: DeviceSpec,
    ring: Option<FrontChannel<HostGranted, TestReq, TestRsp>>,
    port: Option<HostChannel>,
}

impl SimFrontend {
    fn new(world: &World, dev: DeviceSpec) -> Self {
        let dom = world.domain(dev.frontend);
        let xs = dom.xenstore();
        Self {
            dom,
            xs,
            dev,
            ring: None,
            port: None,
        }
    }

    fn write(&mut self, key: &str, value: &[u8]) {
        self.xs
            .write(&format!("{}/{key}", self.dev.frontend_path()), value)
            .unwrap();
    }

    fn state(&mut self, s: &str) {
        self.write("state", s.as_bytes());
    }

    /// Grants a fresh ring and allocates a port, publishes both.
    fn setup_rings(&mut self) {
        let page = self.dom.grant_page(DD, Access::ReadWrite).unwrap();
        let gref = page.gref();
        self.ring = Some(FrontChannel::new(page).unwrap());
        let port = self.dom.alloc_unbound(DD).unwrap();
        self.write("ring-ref", format!("{gref}").as_bytes());
        self.write("event-channel", format!("{}", port.port()).as_bytes());
        self.port = Some(port);
    }

    fn connect(&mut self) {
        self.setup_rings();
        self.state("4");
    }

    fn send(&mut self, id: u32, value: u32) {
        let ring = self.ring.as_mut().unwrap();
        ring.put_request(&TestReq { id, value }).unwrap();
        if ring.push() {
            self.port.as_ref().unwrap().notify().unwrap();
        }
    }

    fn responses(&mut self) -> Vec<TestRsp> {
        let ring = self.ring.as_mut().unwrap();
        let mut out = Vec::new();
        while let Some(r) = ring.next_response().unwrap() {
            out.push(r);
        }
        out
    }

    fn notified(&self) -> bool {
        self.port.as_ref().unwrap().take_pending()
    }

    fn raw_page(&self) -> crate::host::HostPage {
        self.ring.as_ref().unwrap().ring().mem().page().clone()
    }
}

#[test]
fn handshake_and_io() {
    let mut h = Harness::new();
    let mut fe = h.guest(5, 0);
    h.settle();
    let bp = fe.dev.backend_path();
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("2"));
    assert_eq!(
        h.world.read_str(&format!("{bp}/feature-test")).as_deref(),
        Some("1")
    );
    assert_eq!(
        h.world.read_str(&format!("{bp}/hotplug-status")).as_deref(),
        Some("connected")
    );

    fe.setup_rings();
    fe.state("3");
    h.settle();
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("4"));
    assert_eq!(
        h.world.read_str(&format!("{bp}/connected-info")).as_deref(),
        Some("ok")
    );
    assert!(h.connected(&fe.dev));

    for i in 0..40 {
        fe.send(i, 100 + i);
    }
    h.settle();
    let rsp = fe.responses();
    assert_eq!(rsp.len(), 40);
    assert_eq!(
        rsp[39],
        TestRsp {
            id: 39,
            status: 140
        }
    );
    assert!(fe.notified());
    assert_eq!(h.log.borrow().handled, 40);
    assert_eq!((h.world.live_mappings(DD), h.world.open_ports(DD)), (1, 1));

    h.exec.signal_ready().unwrap();
    assert_eq!(
        h.world.read_str("/local/domain/1/data/ready").as_deref(),
        Some("1")
    );
    let stats = h.backend.borrow().stats();
    assert_eq!(
        (
            stats.devices,
            stats.connected,
            stats.connects,
            stats.failures
        ),
        (1, 1, 1, 0)
    );
}

#[test]
fn frontend_skipping_states_still_connects() {
    let mut h = Harness::new();
    let mut fe = h.guest(5, 0);
    // The frontend races ahead to Connected before the backend even reached InitWait.
    fe.connect();
    h.settle();
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("4"));
    fe.send(1, 1);
    h.settle();
    assert_eq!(fe.responses().len(), 1);
}

#[test]
fn close_and_reconnect() {
    let mut h = Harness::new();
    let mut fe = h.guest(5, 0);
    fe.connect();
    h.settle();
    fe.state("5");
    h.settle();
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("5"));
    assert!(!h.connected(&fe.dev));
    assert_eq!((h.world.live_mappings(DD), h.world.open_ports(DD)), (0, 0));
    fe.state("6");
    h.settle();
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("6"));

    // Reconnect through Initialising.
    fe.state("1");
    h.settle();
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("2"));
    fe.setup_rings();
    fe.state("3");
    h.settle();
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("4"));
    fe.send(9, 9);
    h.settle();
    assert_eq!(fe.responses(), [TestRsp { id: 9, status: 10 }]);

    // Reconnect skipping Initialising.
    fe.state("6");
    h.settle();
    fe.setup_rings();
    fe.state("4");
    h.settle();
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("4"));
    let log = h.log.borrow();
    assert_eq!(
        (log.probes, log.features, log.connects, log.disconnects),
        (1, 1, 3, 2)
    );
}

#[test]
fn reconnect_seen_only_as_closing_then_connected() {
    let mut h = Harness::new();
    let mut fe = h.guest(5, 0);
    fe.connect();
    h.settle();
    fe.state("5");
    h.settle();
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("5"));
    // The frontend closes and starts over before we read its state again: all we see is
    // Closing, then Connected with fresh rings.
    fe.state("6");
    fe.state("1");
    fe.setup_rings();
    fe.state("4");
    h.settle();
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("4"));
    fe.send(3, 3);
    h.settle();
    assert_eq!(fe.responses(), [TestRsp { id: 3, status: 4 }]);
    assert_eq!((h.world.live_mappings(DD), h.world.open_ports(DD)), (1, 1));
}

#[test]
fn flapping_frontend_costs_bounded_work_and_leaks_nothing() {
    let mut h = Harness::new();
    let mut fe = h.guest(5, 0);
    let mut good = h.guest(6, 0);
    fe.connect();
    good.connect();
    h.settle();
    let cycle = ["3", "4", "5", "3", "6", "1", "4", "5", "5", "3"];
    let mut settles = 0;
    for i in 0..600 {
        fe.state(cycle[(i * 7 + i / 3) % cycle.len()]);
        // 10 ms between writes: the device acts on a burst, then on the state it is in once
        // a second (it never rests), through all kinds of transitions.
        h.advance(10_000_000);
        if i % 5 == 0 {
            settles += 1;
            let connected = h.connected(&fe.dev);
            // Exactly the healthy guest's mapping and port, plus ours while connected.
            let expect = 1 + usize::from(connected);
            assert_eq!(
                (h.world.live_mappings(DD), h.world.open_ports(DD)),
                (expect, expect)
            );
            assert!(h.exec.xenstore().queued_events() <= XsConfig::default().max_events);
        }
    }
    fe.state("6");
    h.advance(h.config.state_limits.interval_ns);
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("6"));
    assert_eq!((h.world.live_mappings(DD), h.world.open_ports(DD)), (1, 1));
    let log = h.log.borrow();
    // At most the burst, one a second while the state never rests (6 s) and the last one,
    // and the healthy guest's one.
    let turns = h.config.state_limits.burst + 7;
    assert!(
        log.connects <= turns + 2 && log.connects >= 4,
        "{} connects in {settles} settles",
        log.connects
    );
    assert_eq!(
        log.connects,
        log.disconnects + 1,
        "every connect but the healthy one undone"
    );
    drop(log);
    // The healthy guest never noticed.
    good.send(1, 1);
    h.settle();
    assert_eq!(good.responses().len(), 1);
    assert_eq!(h.be_state(&good.dev).as_deref(), Some("4"));
}

/// Connects and disconnects the device made so far, for the tests of the state limit.
fn device_calls(h: &Harness) -> u32 {
    let log = h.log.borrow();
    log.connects + log.disconnects
}

#[test]
fn state_flood_is_acted_on_at_a_limited_rate_and_its_last_state_is_not_lost() {
    let mut h = Harness::new();
    let mut fe = h.guest(5, 0);
    fe.connect();
    h.settle();
    let (calls0, requests0) = (device_calls(&h), h.exec.xenstore().stats().requests);
    // 1000 writes in one second, each seen on its own (a settle after each): every one a
    // transition, Closing (a disconnect) or Connected (a reconnect).
    for i in 0..1000u32 {
        fe.state(if i % 2 == 0 { "5" } else { "4" });
        h.advance(1_000_000);
    }
    // The last word: Closed. It waits until the state has rested.
    fe.state("6");
    h.settle();
    let calls = device_calls(&h) - calls0;
    let requests = h.exec.xenstore().stats().requests - requests0;
    // The burst, then one a second while the state never rests: 12 + 1 reads and acts, each
    // at most a disconnect and a connect and a dozen xenstore requests (without the limit:
    // 1000 device calls and about 9000 requests).
    let turns = h.config.state_limits.burst + 1;
    assert!(calls <= 2 * turns, "{calls} device calls for 1000 writes");
    assert!(
        requests <= 12 * u64::from(turns),
        "{requests} xenstore requests"
    );
    let stats = h.backend.borrow().stats();
    assert!(
        stats.deferred_events >= 1000 - u64::from(turns),
        "{stats:?}"
    );
    assert_eq!(stats.state_floods, 1);
    assert_ne!(
        h.be_state(&fe.dev).as_deref(),
        Some("6"),
        "not yet its turn"
    );
    // Once it rested: the state it ended in is read and acted on, without another event.
    h.advance(h.config.state_limits.interval_ns);
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("6"));
    assert!(!h.connected(&fe.dev));
    assert_eq!((h.world.live_mappings(DD), h.world.open_ports(DD)), (0, 0));
    // Calm again: a clean reconnect is served at once.
    h.advance(u64::from(h.config.state_limits.burst) * h.config.state_limits.interval_ns);
    fe.state("1");
    h.settle();
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("2"));
    fe.connect();
    h.settle();
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("4"));
    fe.send(1, 1);
    h.settle();
    assert_eq!(fe.responses(), [TestRsp { id: 1, status: 2 }]);
    assert_eq!(h.backend.borrow().stats().state_floods, 1);
}

#[test]
fn a_flooding_device_does_not_delay_another() {
    let mut h = Harness::new();
    let mut bad = h.guest(5, 0);
    bad.connect();
    h.settle();
    for i in 0..100u32 {
        bad.state(if i % 2 == 0 { "5" } else { "4" });
        h.settle();
    }
    // The flooding device waits for its turn; time stands still.
    bad.state("6");
    h.settle();
    assert_ne!(h.be_state(&bad.dev).as_deref(), Some("6"));
    // A second guest's device appears, connects, closes and reconnects meanwhile: all at once.
    let mut good = h.guest(6, 0);
    h.settle();
    assert_eq!(h.be_state(&good.dev).as_deref(), Some("2"));
    good.connect();
    h.settle();
    assert_eq!(h.be_state(&good.dev).as_deref(), Some("4"));
    good.send(1, 1);
    h.settle();
    assert_eq!(good.responses().len(), 1);
    for (s, want) in [("5", "5"), ("6", "6"), ("1", "2")] {
        good.state(s);
        h.settle();
        assert_eq!(h.be_state(&good.dev).as_deref(), Some(want));
    }
    good.connect();
    h.settle();
    assert_eq!(h.be_state(&good.dev).as_deref(), Some("4"));
    // The flooding device's last state is acted on at its turn.
    h.advance(h.config.state_limits.interval_ns);
    assert_eq!(h.be_state(&bad.dev).as_deref(), Some("6"));
    assert_eq!(h.be_state(&good.dev).as_deref(), Some("4"));
}

#[test]
fn normal_connects_and_reconnects_are_never_deferred() {
    let mut h = Harness::new();
    let mut fe = h.guest(5, 0);
    h.settle();
    // A guest's life in one instant: connect through Initialised, close, reconnect through
    // Initialising, close, reconnect straight to Connected, close. Each step is answered at
    // once.
    let steps: &[(&str, &str)] = &[
        ("3", "4"),
        ("5", "5"),
        ("6", "6"),
        ("1", "2"),
        ("3", "4"),
        ("6", "6"),
        ("4", "4"),
        ("6", "6"),
    ];
    for (i, &(s, want)) in steps.iter().enumerate() {
        if matches!(s, "3" | "4") {
            fe.setup_rings();
        }
        fe.state(s);
        h.settle();
        assert_eq!(h.be_state(&fe.dev).as_deref(), Some(want), "step {i}");
    }
    // And again a few seconds later, as often as a guest reboots.
    h.advance(3_000_000_000);
    for (i, &(s, want)) in steps.iter().enumerate() {
        if matches!(s, "3" | "4") {
            fe.setup_rings();
        }
        fe.state(s);
        h.settle();
        assert_eq!(
            h.be_state(&fe.dev).as_deref(),
            Some(want),
            "again, step {i}"
        );
    }
    let stats = h.backend.borrow().stats();
    assert_eq!((stats.deferred_events, stats.state_floods), (0, 0));
    assert_eq!(h.log.borrow().connects, 6);
}

#[test]
fn garbage_frontend_state_fails_only_that_device() {
    let mut h = Harness::new();
    let mut bad = h.guest(5, 0);
    let mut good = h.guest(6, 0);
    bad.connect();
    good.connect();
    h.settle();
    bad.state("banana");
    h.settle();
    assert_eq!(h.be_state(&bad.dev).as_deref(), Some("5"));
    let err = h.error_node(&bad.dev).unwrap();
    assert!(err.starts_with("22 frontend state \"banana\""), "{err}");
    assert_eq!((h.world.live_mappings(DD), h.world.open_ports(DD)), (1, 1));
    good.send(3, 3);
    h.settle();
    assert_eq!(good.responses().len(), 1);

    // More garbage, oversized: still contained, logged once per failure episode.
    bad.write("state", &[b'9'; 4000]);
    h.settle();
    assert_eq!(h.be_state(&bad.dev).as_deref(), Some("5"));
    // The frontend closes and starts over: the device recovers.
    bad.state("6");
    h.settle();
    assert_eq!(h.be_state(&bad.dev).as_deref(), Some("6"));
    bad.state("1");
    h.settle();
    assert_eq!(h.be_state(&bad.dev).as_deref(), Some("2"));
    bad.setup_rings();
    bad.state("3");
    h.settle();
    assert_eq!(h.be_state(&bad.dev).as_deref(), Some("4"));
    assert_eq!(h.backend.borrow().stats().failures, 2);
}

#[test]
fn unreadable_frontend_state_fails_only_that_device() {
    let mut h = Harness::new();
    let mut bad = h.guest(5, 0);
    bad.connect();
    h.settle();
    let state = format!("{}/state", bad.dev.frontend_path());
    let hide = [crate::xenstore::Perm {
        access: crate::xenstore::PermAccess::NoAccess,
        domid: 5,
    }];
    bad.xs.set_perms(&state, &hide).unwrap();
    // Hiding the node hides its events too; touching the directory makes the backend look.
    let dir = bad.dev.frontend_path();
    bad.xs.write(&dir, b"").unwrap();
    h.settle();
    assert_eq!(h.be_state(&bad.dev).as_deref(), Some("5"));
    assert!(h
        .error_node(&bad.dev)
        .unwrap()
        .starts_with("13 frontend state"));
}

#[test]
fn hostile_ring_indices_fail_only_that_device() {
    let mut h = Harness::new();
    let mut bad = h.guest(5, 0);
    let mut good = h.guest(6, 0);
    bad.connect();
    good.connect();
    h.settle();
    bad.raw_page().store_u32(0, 100_000).unwrap(); // req_prod far ahead
    bad.port.as_ref().unwrap().notify().unwrap();
    good.send(1, 1);
    h.settle();
    assert_eq!(h.be_state(&bad.dev).as_deref(), Some("5"));
    let err = h.error_node(&bad.dev).unwrap();
    assert!(err.contains("req_prod 100000"), "{err}");
    assert_eq!(good.responses().len(), 1);
    assert_eq!((h.world.live_mappings(DD), h.world.open_ports(DD)), (1, 1));
}

#[test]
fn event_storm_does_not_starve_other_devices() {
    let mut h = Harness::new();
    let mut noisy = h.guest(5, 0);
    let mut good = h.guest(6, 0);
    noisy.connect();
    good.connect();
    h.settle();
    for i in 0..255 {
        noisy.send(i, 0);
    }
    for _ in 0..10_000 {
        noisy.port.as_ref().unwrap().notify().unwrap();
    }
    good.send(1, 1);
    // One pass: the good device is served although the noisy one has 255 requests queued.
    h.exec.run_once();
    assert_eq!(good.responses().len(), 1);
    assert_eq!(noisy.responses().len(), 16, "bounded work per pass");
    h.settle();
    assert_eq!(noisy.responses().len(), 255 - 16);
}

#[test]
fn bad_frontend_config_fails_connect() {
    let mut h = Harness::new();
    let mut good = h.guest(6, 0);
    good.connect();
    let cases: [(&[u8], &[u8], &str); 4] = [
        (b"99999", b"1", "GNTST"),
        (b"-1", b"1", "ring-ref \"-1\" is not a decimal"),
        (b"8", b"4294967296", "event-channel 4294967296 exceeds"),
        (b"8 ", b"1", "not a decimal"),
    ];
    for (i, (ring, port, expect)) in cases.iter().enumerate() {
        let mut bad = h.guest(7, i as u32);
        bad.write("ring-ref", ring);
        bad.write("event-channel", port);
        bad.state("3");
        h.settle();
        assert_eq!(h.be_state(&bad.dev).as_deref(), Some("5"));
        let err = h.error_node(&bad.dev).unwrap();
        assert!(err.contains(expect), "{err} should mention {expect}");
    }
    // A missing key and an event channel not offered to us.
    let mut bad = h.guest(8, 0);
    let page = bad.dom.grant_page(DD, Access::ReadWrite).unwrap();
    bad.write("ring-ref", format!("{}", page.gref()).as_bytes());
    bad.state("3");
    h.settle();
    assert!(h
        .error_node(&bad.dev)
        .unwrap()
        .contains("frontend event-channel"));
    let mut bad = h.guest(8, 1);
    let stranger = bad.dom.alloc_unbound(9).unwrap();
    bad.write("ring-ref", format!("{}", page.gref()).as_bytes());
    bad.write("event-channel", format!("{}", stranger.port()).as_bytes());
    bad.state("3");
    h.settle();
    assert!(h
        .error_node(&bad.dev)
        .unwrap()
        .starts_with("22 connect: hypercall failed: EINVAL"));
    // Nothing leaked from the half-done connects; the good device is fine.
    assert_eq!((h.world.live_mappings(DD), h.world.open_ports(DD)), (1, 1));
    good.send(1, 1);
    h.settle();
    assert_eq!(good.responses().len(), 1);
}

#[test]
fn probe_failure_is_confined_and_retried_on_restart() {
    let mut h = Harness::new();
    let dev = DeviceSpec::new("vtest", DD, 5, 3).backend_key("mode", "broken");
    h.world.create_domain(5, "guest");
    h.world.add_device(&dev);
    let mut good = h.guest(5, 0);
    good.connect();
    h.settle();
    assert_eq!(h.be_state(&dev).as_deref(), Some("5"));
    assert!(h
        .error_node(&dev)
        .unwrap()
        .starts_with("19 probe: mode broken"));
    assert_eq!(h.be_state(&good.dev).as_deref(), Some("4"));
    let mut fe = SimFrontend::new(&h.world, dev.clone());
    fe.state("6");
    h.settle();
    fe.state("1");
    h.settle();
    assert_eq!(h.log.borrow().probes, 3, "good once, broken twice");
    assert_eq!(h.be_state(&dev).as_deref(), Some("5"));
}

#[test]
fn toolstack_removal_waits_for_the_frontend() {
    let mut h = Harness::new();
    let mut fe = h.guest(5, 0);
    fe.connect();
    h.settle();
    fe.state("banana");
    h.settle();
    assert!(h.error_node(&fe.dev).is_some());
    fe.state("1");
    h.settle();
    fe.connect();
    h.settle();
    let tokens_before = h.exec.xenstore().watch_tokens().count();

    h.world.remove_device(&fe.dev);
    h.settle();
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("5"));
    assert!(h.connected(&fe.dev), "the frontend gets a chance to close");
    // The frontend sees Closing and closes.
    fe.state("5");
    h.settle();
    assert_eq!(
        h.be_state(&fe.dev).as_deref(),
        Some("6"),
        "libxl sees state 6 ..."
    );
    assert!(!h.connected(&fe.dev));
    assert_eq!(h.log.borrow().removed, 0);
    h.advance(h.config.remove_delay_ns);
    assert!(
        !h.world.exists(&fe.dev.backend_path()),
        "... then the directory goes"
    );
    assert_eq!(h.log.borrow().removed, 1, "the device cleaned up once");
    assert!(h.error_node(&fe.dev).is_none());
    assert_eq!(h.exec.xenstore().watch_tokens().count(), tokens_before - 1);
    assert_eq!((h.world.live_mappings(DD), h.world.open_ports(DD)), (0, 0));
    assert_eq!(h.backend.borrow().stats().devices, 0);
}

#[test]
fn toolstack_removal_forces_a_silent_frontend() {
    let mut h = Harness::new();
    let mut fe = h.guest(5, 0);
    fe.connect();
    h.settle();
    h.world.remove_device(&fe.dev);
    h.settle();
    h.advance(h.config.close_grace_ns - 1);
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("5"));
    h.advance(1);
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("6"));
    assert_eq!((h.world.live_mappings(DD), h.world.open_ports(DD)), (0, 0));
    h.advance(h.config.remove_delay_ns);
    assert!(!h.world.exists(&fe.dev.backend_path()));
    assert!(
        h.config.close_grace_ns + h.config.remove_delay_ns < 10_000_000_000,
        "within libxl's timeouts"
    );
}

#[test]
fn toolstack_removal_of_an_unconnected_device() {
    let mut h = Harness::new();
    let fe = h.guest(5, 0);
    h.settle();
    h.world.remove_device(&fe.dev);
    h.settle();
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("6"));
    h.advance(h.config.remove_delay_ns);
    assert!(!h.world.exists(&fe.dev.backend_path()));
    // The same device id may be added again.
    let mut again = h.guest(5, 0);
    again.connect();
    h.settle();
    assert_eq!(h.be_state(&again.dev).as_deref(), Some("4"));
}

#[test]
fn toolstack_re_adding_during_removal_gets_a_fresh_device() {
    let mut h = Harness::new();
    let fe = h.guest(5, 0);
    h.settle();
    h.world.remove_device(&fe.dev);
    h.settle();
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("6"));
    // Re-attached before our delayed removal ran.
    let mut again = h.guest(5, 0);
    h.settle();
    h.advance(h.config.remove_delay_ns);
    assert_eq!(
        h.be_state(&again.dev).as_deref(),
        Some("2"),
        "the new directory survives"
    );
    again.connect();
    h.settle();
    assert_eq!(h.be_state(&again.dev).as_deref(), Some("4"));
}

#[test]
fn toolstack_deleting_the_directory_drops_the_device() {
    let mut h = Harness::new();
    let mut fe = h.guest(5, 0);
    let mut other = h.guest(5, 1);
    fe.connect();
    other.connect();
    h.settle();
    h.world.rm_as(0, &fe.dev.backend_path()).unwrap();
    h.settle();
    assert!(
        !h.world.exists(&fe.dev.backend_path()),
        "not recreated by our writes"
    );
    assert_eq!((h.world.live_mappings(DD), h.world.open_ports(DD)), (1, 1));
    assert_eq!(h.backend.borrow().stats().devices, 1);
    assert_eq!(h.log.borrow().removed, 1);
    // The whole frontend-domain directory at once.
    h.world
        .rm_as(0, &format!("/local/domain/{DD}/backend/vtest/5"))
        .unwrap();
    h.settle();
    assert_eq!(h.backend.borrow().stats().devices, 0);
    assert_eq!(h.log.borrow().removed, 2);
    assert_eq!((h.world.live_mappings(DD), h.world.open_ports(DD)), (0, 0));
}

#[test]
fn watch_flood_stays_bounded() {
    let config = XsConfig {
        max_events: 16,
        ..XsConfig::default()
    };
    let mut h = Harness::with(config);
    let mut bad = h.guest(5, 0);
    let mut good = h.guest(6, 0);
    bad.connect();
    good.connect();
    h.settle();
    for i in 0..3000 {
        h.world
            .write_as(5, &format!("{}/junk{i}", bad.dev.frontend_path()), b"x")
            .unwrap();
        if i % 1000 == 0 {
            good.send(i, 1);
        }
    }
    h.settle();
    let stats = h.exec.xenstore().stats();
    assert!(stats.events_dropped > 2000, "{stats:?}");
    assert!(h.exec.xenstore().queued_events() <= 16);
    assert_eq!(good.responses().len(), 3);
    assert_eq!(
        h.be_state(&bad.dev).as_deref(),
        Some("4"),
        "junk is not a failure"
    );
    assert!(
        h.log.borrow().frontend_keys <= 16 * 3,
        "hook calls bounded by the queue"
    );
    bad.send(1, 1);
    h.settle();
    assert_eq!(bad.responses().len(), 1);
}

#[test]
fn frontend_vanishing_closes_the_device() {
    let mut h = Harness::new();
    let mut fe = h.guest(5, 0);
    fe.connect();
    h.settle();
    h.world.destroy_domain(5);
    h.settle();
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("6"));
    assert_eq!((h.world.live_mappings(DD), h.world.open_ports(DD)), (0, 0));
    // Reading below the vanished domain answers EACCES (as xenstored does): that is the
    // frontend going away, not a failure.
    assert_eq!(h.error_node(&fe.dev), None);
}

#[test]
fn shutdown_request_stops_the_loop() {
    let mut h = Harness::new();
    let mut fe = h.guest(5, 0);
    fe.connect();
    h.settle();
    let control = format!("/local/domain/{DD}/control");
    assert_eq!(
        h.world
            .read_str(&format!("{control}/feature-poweroff"))
            .as_deref(),
        Some("1")
    );
    h.world
        .write_as(0, &format!("{control}/shutdown"), b"suspend")
        .unwrap();
    h.settle();
    assert_eq!(
        h.exec.stop_requested(),
        None,
        "unsupported requests are ignored"
    );
    assert_eq!(
        h.world.read_str(&format!("{control}/shutdown")).as_deref(),
        Some("suspend")
    );
    h.world
        .write_as(0, &format!("{control}/shutdown"), b"poweroff")
        .unwrap();
    assert_eq!(h.exec.run(), StopReason::Poweroff);
    assert_eq!(
        h.world.read_str(&format!("{control}/shutdown")).as_deref(),
        Some("")
    );
    // Backends were stopped in order: devices disconnected and Closed.
    assert_eq!(h.be_state(&fe.dev).as_deref(), Some("6"));
    assert_eq!((h.world.live_mappings(DD), h.world.open_ports(DD)), (0, 0));
}

#[test]
fn frontend_helper_handshake() {
    use XenbusState::*;
    let world = World::new();
    let dd = world.create_domain(DD, "dd");
    let dev = DeviceSpec::new("vif", 0, DD, 0);
    world.add_device(&dev);
    let mut xs = dd.xenstore();
    assert_eq!(Frontend::list(&mut xs, DD, "vif").unwrap(), [0]);
    let fe = Frontend::open(&mut xs, DD, "vif", 0).unwrap();
    assert_eq!(
        (fe.backend_id, fe.backend_path.as_str()),
        (0, dev.backend_path().as_str())
    );

    world
        .write_as(0, &format!("{}/state", dev.backend_path()), b"2")
        .unwrap();
    world
        .write_as(0, &format!("{}/feature-sg", dev.backend_path()), b"1")
        .unwrap();
    assert_eq!(
        fe.wait_backend(&dd, &mut xs, &[InitWait], 1_000).unwrap(),
        InitWait
    );
    assert_eq!(
        fe.read_backend_uint(&mut xs, "feature-sg", 1).unwrap(),
        Some(1)
    );
    assert_eq!(
        fe.read_backend_uint(&mut xs, "feature-gso-tcpv4", 1)
            .unwrap(),
        None
    );
    fe.publish(
        &mut xs,
        &[("tx-ring-ref", b"8"), ("event-channel", b"3")],
        Connected,
    )
    .unwrap();
    assert_eq!(
        world
            .read_str(&format!("{}/tx-ring-ref", dev.frontend_path()))
            .as_deref(),
        Some("8")
    );
    assert_eq!(
        world
            .read_str(&format!("{}/state", dev.frontend_path()))
            .as_deref(),
        Some("4")
    );

    // The backend does not connect in time: Timeout, with the clock at the deadline.
    let deadline = world.now_ns() + 3_000_000_000;
    assert_eq!(
        fe.wait_backend(&dd, &mut xs, &[Connected], deadline),
        Err(FrontendError::Timeout { state: InitWait })
    );
    assert_eq!(world.now_ns(), deadline);
    world
        .write_as(0, &format!("{}/state", dev.backend_path()), b"4")
        .unwrap();
    assert_eq!(
        fe.wait_backend(&dd, &mut xs, &[Connected], deadline)
            .unwrap(),
        Connected
    );
    world
        .write_as(0, &format!("{}/state", dev.backend_path()), b"x")
        .unwrap();
    assert!(matches!(
        fe.backend_state(&mut xs),
        Err(FrontendError::BadBackend(_))
    ));
    assert_eq!(xs.watch_tokens().count(), 0, "the helper's watch is gone");

    world
        .write_as(0, &format!("{}/state", dev.backend_path()), b"6")
        .unwrap();
    fe.close(&dd, &mut xs, deadline + 1).unwrap();
    assert_eq!(
        world
            .read_str(&format!("{}/state", dev.frontend_path()))
            .as_deref(),
        Some("6")
    );

    // A toolstack entry pointing elsewhere is refused.
    world
        .write_as(
            0,
            &format!("{}/backend", dev.frontend_path()),
            b"/local/domain/7/x",
        )
        .unwrap();
    assert!(matches!(
        Frontend::open(&mut xs, DD, "vif", 0),
        Err(FrontendError::BadConfig(_))
    ));
}
