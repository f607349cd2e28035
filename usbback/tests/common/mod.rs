//! Host test harness: a driver domain running the `vusb` backend over a fake USB bus in a
//! simulated world, and a xen-hcd played by the test (well-behaved unless a test makes it
//! otherwise).
#![allow(dead_code)]

pub mod fake;

use std::cell::RefCell;
use std::rc::Rc;

use minios::executor::Executor;
use minios::host::{DeviceSpec, HostChannel, HostDomain, HostGranted, HostXs, World};
use minios::platform::{Access, DomId, EventChannel, Events, GrantedPage, Grants, SharedMem};
use minios::ring::FrontChannel;
use minios::xenbus::Backend;
use minios::xenstore::{Store, Xenstore};
use usbback::hub::{Hub, HubTask, SharedHub};
use usbback::wire::{IsoDescriptor, ISO_DESC_SIZE};
use usbback::{Options, UsbDriver, Vusb};
use xen_abi::usbif::*;

pub use fake::Bus;

/// The driver domain.
pub const DD: DomId = 1;

pub type TestBackend = Backend<HostDomain, UsbDriver>;

/// The world, the bus and the driver domain's executor.
pub struct Env {
    pub world: World,
    pub bus: Bus,
    pub hub: SharedHub,
    pub exec: Executor<HostDomain>,
    pub backend: Rc<RefCell<TestBackend>>,
}

impl Env {
    pub fn new() -> Self {
        Self::with_options(Options::default())
    }

    pub fn with_options(options: Options) -> Self {
        let world = World::new();
        let dd = world.create_domain(DD, "usbdd");
        let bus = Bus::new();
        let hub = Hub::new(bus.host()).shared();
        let backend = Backend::new(UsbDriver::new(hub.clone(), options), DD).shared();
        let mut exec = Executor::new(dd.clone(), dd.xenstore());
        exec.spawn(HubTask(hub.clone())).unwrap();
        exec.spawn(backend.clone()).unwrap();
        let mut env = Self {
            world,
            bus,
            hub,
            exec,
            backend,
        };
        env.settle();
        env
    }

    pub fn settle(&mut self) {
        minios::host::settle(&self.world, &mut [&mut self.exec]);
    }

    pub fn vusb<R>(&self, fe: DomId, devid: u32, f: impl FnOnce(&Vusb<HostDomain>) -> R) -> R {
        let b = self.backend.borrow();
        f(b.device(fe, devid).expect("device exists"))
    }

    pub fn be_key(&self, dev: &DeviceSpec, key: &str) -> Option<String> {
        self.world
            .read_str(&format!("{}/{key}", dev.backend_path()))
    }

    pub fn error_node(&self, dev: &DeviceSpec) -> Option<String> {
        self.world.read_str(&format!(
            "/local/domain/{DD}/error/backend/vusb/{}/{}/error",
            dev.frontend, dev.devid
        ))
    }

    /// The toolstack assigns `path` to port `n` of `dev` (hot attach; "" detaches).
    pub fn assign(&mut self, dev: &DeviceSpec, n: u8, path: &str) {
        self.world
            .write_as(
                0,
                &format!("{}/port/{n}", dev.backend_path()),
                path.as_bytes(),
            )
            .unwrap();
        self.settle();
    }

    pub fn counter(&self, dev: &DeviceSpec, key: &str) -> Option<u64> {
        self.world
            .read_str(&format!(
                "/local/domain/{DD}/data/vusb/{}/{}/{key}",
                dev.frontend, dev.devid
            ))
            .map(|v| v.parse().expect("a number"))
    }
}

pub type UrbRing = FrontChannel<HostGranted, UsbifUrbRequest, UsbifUrbResponse>;
pub type ConnRing = FrontChannel<HostGranted, UsbifConnRequest, UsbifConnResponse>;

/// A xen-hcd played by the test.
pub struct Front {
    pub dom: HostDomain,
    pub xs: Xenstore<HostXs>,
    pub dev: DeviceSpec,
    pub urb: Option<UrbRing>,
    pub conn: Option<ConnRing>,
    pub port: Option<HostChannel>,
    pub next_id: u16,
    /// Responses that arrived but were not asked for yet.
    pub stash: Vec<UsbifUrbResponse>,
}

/// A transfer's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: i32,
    pub actual: i32,
    pub data: Vec<u8>,
}

/// A setup packet.
pub fn setup(request_type: u8, request: u8, value: u16, index: u16, length: u16) -> [u8; 8] {
    let mut s = [request_type, request, 0, 0, 0, 0, 0, 0];
    s[2..4].copy_from_slice(&value.to_le_bytes());
    s[4..6].copy_from_slice(&index.to_le_bytes());
    s[6..8].copy_from_slice(&length.to_le_bytes());
    s
}

/// A request with its data pages (kept granted until the response).
pub struct Built {
    pub req: UsbifUrbRequest,
    pub pages: Vec<HostGranted>,
}

impl Front {
    /// Adds a guest (if new) and a `vusb` controller of `ports` ports (`port/N` from
    /// `assigned`), without connecting.
    pub fn add(env: &mut Env, domid: DomId, devid: u32, ports: u8, assigned: &[&str]) -> Self {
        if !env.world.exists(&format!("/local/domain/{domid}")) {
            env.world.create_domain(domid, "guest");
        }
        let mut dev = DeviceSpec::new("vusb", DD, domid, devid)
            .backend_key("num-ports", &ports.to_string())
            .backend_key("usb-ver", "2")
            .backend_key("type", "pv");
        for n in 1..=ports {
            let path = assigned.get(usize::from(n) - 1).copied().unwrap_or("");
            dev = dev.backend_key(&format!("port/{n}"), path);
        }
        env.world.add_device(&dev);
        env.settle();
        let dom = env.world.domain(domid);
        let xs = dom.xenstore();
        Self {
            dom,
            xs,
            dev,
            urb: None,
            conn: None,
            port: None,
            next_id: 0,
            stash: Vec::new(),
        }
    }

    /// Adds and connects as xen-hcd does (rings, event channel, conn requests posted, then
    /// straight to Connected); asserts the backend connected.
    pub fn attach(env: &mut Env, domid: DomId, devid: u32, ports: u8, assigned: &[&str]) -> Self {
        let mut f = Self::add(env, domid, devid, ports, assigned);
        assert_eq!(
            env.be_key(&f.dev, "state").as_deref(),
            Some("2"),
            "InitWait"
        );
        f.connect(env);
        assert_eq!(
            env.be_key(&f.dev, "state").as_deref(),
            Some("4"),
            "backend connected; error: {:?}",
            env.error_node(&f.dev)
        );
        f
    }

    pub fn write_key(&mut self, key: &str, value: &str) {
        self.xs
            .write(
                &format!("{}/{key}", self.dev.frontend_path()),
                value.as_bytes(),
            )
            .unwrap();
    }

    pub fn state(&mut self, s: &str) {
        self.write_key("state", s);
    }

    /// Grants both rings, posts every conn request, writes the keys and goes Connected.
    pub fn connect(&mut self, env: &mut Env) {
        let urb_page = self.dom.grant_page(DD, Access::ReadWrite).unwrap();
        let conn_page = self.dom.grant_page(DD, Access::ReadWrite).unwrap();
        let (urb_ref, conn_ref) = (urb_page.gref(), conn_page.gref());
        let urb = UrbRing::new(urb_page).unwrap();
        let mut conn = ConnRing::new(conn_page).unwrap();
        for id in 0..USB_CONN_RING_SIZE as u16 {
            conn.put_request(&UsbifConnRequest { id }).unwrap();
        }
        conn.push();
        let port = self.dom.alloc_unbound(DD).unwrap();
        self.write_key("urb-ring-ref", &urb_ref.to_string());
        self.write_key("conn-ring-ref", &conn_ref.to_string());
        self.write_key("event-channel", &port.port().to_string());
        self.urb = Some(urb);
        self.conn = Some(conn);
        self.port = Some(port);
        self.stash.clear();
        self.state("4");
        env.settle();
    }

    /// Port changes announced so far, as (port, speed); re-posts the slots.
    pub fn port_changes(&mut self) -> Vec<(u8, u8)> {
        let conn = self.conn.as_mut().expect("connected");
        let mut out = Vec::new();
        while let Some(r) = conn.next_response().unwrap() {
            out.push((r.portnum, r.speed));
            conn.put_request(&UsbifConnRequest { id: r.id }).unwrap();
        }
        if conn.push() {
            self.port.as_ref().unwrap().notify().unwrap();
        }
        out
    }

    pub fn id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// Builds a request: `pipe`, the union bytes, and a buffer of `out` (OUT) or `in_len`
    /// zero bytes (IN), split at `split` bytes per segment (≤ 4096), segments from offset 0.
    pub fn build(&mut self, pipe: UsbifPipe, u: [u8; 8], out: &[u8], in_len: usize) -> Built {
        let len = if pipe.is_in() { in_len } else { out.len() };
        let mut pages = Vec::new();
        let mut req = UsbifUrbRequest {
            id: self.id(),
            pipe: pipe.0,
            buffer_length: len as u16,
            u,
            ..Default::default()
        };
        let mut pos = 0;
        while pos < len {
            let n = (len - pos).min(4096);
            let access = if pipe.is_in() {
                Access::ReadWrite
            } else {
                Access::ReadOnly
            };
            let page = self.dom.grant_page(DD, access).unwrap();
            if !pipe.is_in() {
                page.write(0, &out[pos..pos + n]).unwrap();
            }
            req.seg[pages.len()] = UsbifRequestSegment {
                gref: page.gref(),
                offset: 0,
                length: n as u16,
            };
            pages.push(page);
            pos += n;
        }
        req.nr_buffer_segs = pages.len() as u16;
        Built { req, pages }
    }

    /// Puts a raw request on the ring and notifies.
    pub fn submit(&mut self, req: &UsbifUrbRequest) {
        let urb = self.urb.as_mut().expect("connected");
        urb.put_request(req).unwrap();
        if urb.push() {
            self.port.as_ref().unwrap().notify().unwrap();
        }
    }

    /// Every response that arrived (including stashed ones).
    pub fn responses(&mut self) -> Vec<UsbifUrbResponse> {
        let mut out = std::mem::take(&mut self.stash);
        let urb = self.urb.as_mut().expect("connected");
        while let Some(r) = urb.next_response().unwrap() {
            out.push(r);
        }
        out
    }

    /// The response to `id`, if it arrived (others are stashed).
    pub fn response_to(&mut self, id: u16) -> Option<UsbifUrbResponse> {
        let all = self.responses();
        let mut found = None;
        for r in all {
            if r.id == id && found.is_none() {
                found = Some(r);
            } else {
                self.stash.push(r);
            }
        }
        found
    }

    /// Submits a built request, settles, and returns its outcome (asserts it was answered).
    pub fn run(&mut self, env: &mut Env, b: Built) -> Outcome {
        self.submit(&b.req);
        env.settle();
        let r = self
            .response_to(b.req.id)
            .unwrap_or_else(|| panic!("request {} answered", b.req.id));
        let mut data = Vec::new();
        if UsbifPipe(b.req.pipe).is_in() {
            let n = r.actual_length.max(0) as usize;
            let mut left = n;
            for p in &b.pages {
                let k = left.min(4096);
                let mut buf = vec![0u8; k];
                p.read(0, &mut buf).unwrap();
                data.extend(buf);
                left -= k;
            }
        }
        Outcome {
            status: r.status,
            actual: r.actual_length,
            data,
        }
    }

    /// A control transfer on `port` to guest address `addr`.
    pub fn control(
        &mut self,
        env: &mut Env,
        port: u32,
        addr: u32,
        setup: [u8; 8],
        out: &[u8],
    ) -> Outcome {
        let is_in = setup[0] & 0x80 != 0;
        let w_length = usize::from(u16::from_le_bytes([setup[6], setup[7]]));
        let pipe = UsbifPipe::new(port, addr, 0, is_in, UsbPipeType::Control);
        let b = self.build(pipe, setup, out, w_length);
        self.run(env, b)
    }

    /// What xen-hcd and the USB core do with a new device on `port`: GET_DESCRIPTOR(8) at
    /// address 0, SET_ADDRESS(`addr`), the full device and configuration descriptors,
    /// SET_CONFIGURATION(1). Returns the configuration descriptor.
    pub fn enumerate(&mut self, env: &mut Env, port: u32, addr: u16) -> Vec<u8> {
        let r = self.control(env, port, 0, setup(0x80, 6, 0x100, 0, 8), &[]);
        assert_eq!(
            (r.status, r.actual),
            (USBIF_STATUS_OK, 8),
            "GET_DESCRIPTOR(8) at 0"
        );
        assert_eq!(&r.data[..], &fake::DEVICE_DESCRIPTOR[..8]);
        let r = self.control(env, port, 0, setup(0x00, 5, addr, 0, 0), &[]);
        assert_eq!(r.status, USBIF_STATUS_OK, "SET_ADDRESS");
        let a = u32::from(addr);
        let r = self.control(env, port, a, setup(0x80, 6, 0x100, 0, 18), &[]);
        assert_eq!(r.status, USBIF_STATUS_OK, "GET_DESCRIPTOR(device)");
        assert_eq!(r.data, fake::DEVICE_DESCRIPTOR);
        let r = self.control(env, port, a, setup(0x80, 6, 0x200, 0, 255), &[]);
        assert_eq!(r.status, USBIF_STATUS_OK, "GET_DESCRIPTOR(config)");
        assert_eq!(r.data, fake::config_descriptor());
        let r = self.control(env, port, a, setup(0x00, 9, 1, 0, 0), &[]);
        assert_eq!(r.status, USBIF_STATUS_OK, "SET_CONFIGURATION");
        fake::config_descriptor()
    }

    /// A bulk OUT transfer to endpoint `ep`.
    pub fn bulk_out(
        &mut self,
        env: &mut Env,
        port: u32,
        addr: u32,
        ep: u32,
        out: &[u8],
    ) -> Outcome {
        let pipe = UsbifPipe::new(port, addr, ep, false, UsbPipeType::Bulk);
        let b = self.build(pipe, [0; 8], out, 0);
        self.run(env, b)
    }

    /// A bulk IN transfer of up to `len` bytes from endpoint `ep`.
    pub fn bulk_in(&mut self, env: &mut Env, port: u32, addr: u32, ep: u32, len: usize) -> Outcome {
        let pipe = UsbifPipe::new(port, addr, ep, true, UsbPipeType::Bulk);
        let b = self.build(pipe, [0; 8], &[], len);
        self.run(env, b)
    }

    /// An isochronous transfer of `packets` (offset, length) on endpoint `ep`, with its
    /// frame descriptors in one extra granted page. Returns the response, the descriptors as
    /// the backend wrote them back, and (IN) the buffer.
    #[allow(clippy::too_many_arguments)]
    pub fn iso(
        &mut self,
        env: &mut Env,
        at: (u32, u32),
        ep: u32,
        is_in: bool,
        packets: &[(u32, u32)],
        out: &[u8],
        in_len: usize,
    ) -> (UsbifUrbResponse, Vec<IsoDescriptor>, Vec<u8>) {
        let pipe = UsbifPipe::new(at.0, at.1, ep, is_in, UsbPipeType::Isochronous);
        let mut b = self.build(pipe, [0; 8], out, in_len);
        let desc = self.dom.grant_page(DD, Access::ReadWrite).unwrap();
        for (i, &(offset, length)) in packets.iter().enumerate() {
            let d = IsoDescriptor {
                offset,
                length,
                actual_length: 0xdead,
                status: 0x5555,
            };
            desc.write(i * ISO_DESC_SIZE, &d.write()).unwrap();
        }
        let n = b.req.nr_buffer_segs as usize;
        b.req.seg[n] = UsbifRequestSegment {
            gref: desc.gref(),
            offset: 0,
            length: (packets.len() * ISO_DESC_SIZE) as u16,
        };
        b.req.u[0..2].copy_from_slice(&1u16.to_le_bytes());
        b.req.u[4..6].copy_from_slice(&(packets.len() as u16).to_le_bytes());
        b.req.u[6..8].copy_from_slice(&1u16.to_le_bytes());
        let id = b.req.id;
        self.submit(&b.req);
        env.settle();
        let r = self.response_to(id).expect("iso answered");
        let back = (0..packets.len())
            .map(|i| {
                let mut raw = [0u8; ISO_DESC_SIZE];
                desc.read(i * ISO_DESC_SIZE, &mut raw).unwrap();
                IsoDescriptor::read(&raw)
            })
            .collect();
        let mut data = vec![0u8; in_len];
        for (i, p) in b.pages.iter().enumerate() {
            let start = i * 4096;
            let end = (start + 4096).min(in_len);
            if start < end {
                p.read(0, &mut data[start..end]).unwrap();
            }
        }
        (r, back, data)
    }

    /// Writes `data` through the loopback and reads it back; asserts it arrived intact.
    pub fn loopback(&mut self, env: &mut Env, port: u32, addr: u32, data: &[u8]) {
        let w = self.bulk_out(env, port, addr, 2, data);
        assert_eq!(
            (w.status, w.actual as usize),
            (USBIF_STATUS_OK, data.len()),
            "bulk OUT"
        );
        let r = self.bulk_in(env, port, addr, 1, data.len());
        assert_eq!(
            (r.status, r.actual as usize),
            (USBIF_STATUS_OK, data.len()),
            "bulk IN"
        );
        assert!(r.data == data, "bulk data intact");
    }
}

/// A victim (guest 5: port 1 = `1-1` at address 5, port 2 empty) and a healthy guest (guest
/// 6: port 1 = `1-2` at address 2) on one driver domain, both enumerated; also the victim's
/// device on the bus (to make it misbehave).
pub fn victim_and_healthy() -> (Env, usbback::host::HostDeviceId, Front, Front) {
    let mut env = Env::new();
    let victim_dev = env.bus.attach("1-1", usbback::host::Speed::High);
    env.bus.attach("1-2", usbback::host::Speed::High);
    let mut victim = Front::attach(&mut env, 5, 0, 2, &["1-1", ""]);
    let mut healthy = Front::attach(&mut env, 6, 0, 1, &["1-2"]);
    assert_eq!(victim.port_changes(), vec![(1, USBIF_SPEED_HIGH)]);
    assert_eq!(healthy.port_changes(), vec![(1, USBIF_SPEED_HIGH)]);
    victim.enumerate(&mut env, 1, 5);
    healthy.enumerate(&mut env, 1, 2);
    (env, victim_dev, victim, healthy)
}

/// A byte pattern that differs per position and seed.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 13) as u8)
        .collect()
}
