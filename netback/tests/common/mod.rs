//! Host test harness: a netback driver domain on `minios`' in-process platform, and
//! scriptable netfronts (well-behaved or hostile) in simulated guest domains.

#![allow(dead_code)]

use std::collections::BTreeMap;

use minios::driver_domain::{StartError, Started};
use minios::executor::Executor;
use minios::host::{settle, DeviceSpec, HostChannel, HostDomain, HostGranted, HostXs, World};
use minios::netdev::{NetDevice, NetError, NetOffloads, RxCsum, RxFrame, TxMeta};
use minios::pci::PciAddress;
use minios::platform::{Access, EventChannel, Events, GrantedPage, Grants, SharedMem};
use minios::ring::SharedRing;
use minios::xenstore::{Store, Xenstore};
use netback::netdd::{self, Machine, NetDd, NicProblem};
use netback::switch::PortCounters;
use netback::wire::{ExtraRepr, Gso, TxRequestRepr};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use xen_abi::netif::{
    NetifExtraInfo, NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse,
    NETRXF_CSUM_BLANK, NETRXF_DATA_VALIDATED, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA,
    NET_RX_ENTRY_SIZE, NET_TX_ENTRY_SIZE,
};
use xen_abi::ring::{FrontRing, SharedRingIndices};
use xen_abi::WireStruct;

/// The driver domain's id in every test.
pub const DD: u16 = 1;

/// A netback driver domain in a simulated world.
pub struct Harness {
    pub world: World,
    pub dd: HostDomain,
    pub exec: Executor<HostDomain>,
    pub netdd: NetDd<HostDomain>,
    /// A second netback instance in dom0 serving our uplink (see [`Harness::with_uplink`]).
    pub peer: Option<(Executor<HostDomain>, NetDd<HostDomain>)>,
}

fn start(dom: &HostDomain, cmdline: &str) -> (Executor<HostDomain>, NetDd<HostDomain>) {
    start_with(dom, cmdline, None)
}

/// The machine of a host test: 1 MiB free, and the NIC the test hands it (if any).
pub struct TestMachine {
    pub nic: RefCell<Option<Box<dyn NetDevice>>>,
}

impl Machine<HostDomain> for TestMachine {
    fn free_bytes(&self) -> u64 {
        1 << 20
    }

    fn open_nic(
        &self,
        _exec: &mut Executor<HostDomain>,
        _want: Option<PciAddress>,
    ) -> Result<Box<dyn NetDevice>, NicProblem> {
        self.nic
            .borrow_mut()
            .take()
            .ok_or_else(|| NicProblem::Config("the test gave no NIC".into()))
    }
}

/// Boots a netback driver domain in `dom` as the unikernel does ([`netdd::boot`]).
pub fn boot(
    dom: &HostDomain,
    cmdline: &str,
    nic: Option<Box<dyn NetDevice>>,
) -> Result<Started<HostDomain, NetDd<HostDomain>>, StartError> {
    let machine = TestMachine {
        nic: RefCell::new(nic),
    };
    netdd::boot(dom.clone(), Some(dom.xenstore()), cmdline, machine)
}

fn start_with(
    dom: &HostDomain,
    cmdline: &str,
    nic: Option<Box<dyn NetDevice>>,
) -> (Executor<HostDomain>, NetDd<HostDomain>) {
    let started = boot(dom, cmdline, nic).expect("the driver domain starts");
    (started.exec, started.domain)
}

impl Harness {
    pub fn new(cmdline: &str) -> Self {
        let world = World::new();
        let dd = world.create_domain(DD, "netdd");
        let (exec, netdd) = start(&dd, cmdline);
        let mut h = Self {
            world,
            dd,
            exec,
            netdd,
            peer: None,
        };
        h.settle();
        h
    }

    /// A driver domain whose uplink is `nic` (a device it owns).
    pub fn with_nic(cmdline: &str, nic: FakeNic) -> Self {
        let world = World::new();
        let dd = world.create_domain(DD, "netdd");
        let (exec, netdd) = start_with(&dd, cmdline, Some(Box::new(nic)));
        let mut h = Self {
            world,
            dd,
            exec,
            netdd,
            peer: None,
        };
        h.settle();
        h
    }

    /// A driver domain whose uplink (its vif 0) is served by another netback instance in
    /// dom0, started with `peer_cmdline`.
    pub fn with_uplink(cmdline: &str, peer_cmdline: &str) -> Self {
        let world = World::new();
        let dd = world.create_domain(DD, "netdd");
        let uplink = DeviceSpec::new("vif", 0, DD, 0)
            .backend_key("mac", "00:16:3e:00:00:01")
            .frontend_key("mac", "00:16:3e:00:00:01");
        world.add_device(&uplink);
        let dom0 = world.domain(0);
        let peer = start(&dom0, peer_cmdline);
        let (exec, netdd) = start(&dd, cmdline);
        let mut h = Self {
            world,
            dd,
            exec,
            netdd,
            peer: Some(peer),
        };
        h.settle();
        h
    }

    /// Runs the driver domain (and the peer) until nothing is due ([`settle`]).
    pub fn settle(&mut self) {
        match self.peer.as_mut() {
            Some((peer, _)) => settle(&self.world, &mut [&mut self.exec, peer]),
            None => settle(&self.world, &mut [&mut self.exec]),
        }
    }

    /// One executor pass; returns when the driver domain asks to run again (`None`: only
    /// when an event arrives).
    pub fn pass(&mut self) -> Option<u64> {
        self.exec.run_once()
    }

    pub fn advance(&mut self, ns: u64) {
        self.world.advance(ns);
        self.settle();
    }

    pub fn read(&self, path: &str) -> Option<String> {
        self.world.read_str(path)
    }

    pub fn be_state(&self, f: &TestFront) -> Option<String> {
        self.read(&format!("{}/state", f.spec.backend_path()))
    }

    pub fn error_node(&self, f: &TestFront) -> Option<String> {
        self.read(&format!(
            "/local/domain/{DD}/error/backend/vif/{}/{}/error",
            f.spec.frontend, f.spec.devid
        ))
    }

    /// Counters of a vif as published in xenstore.
    pub fn published(&self, f: &TestFront, key: &str) -> Option<u64> {
        self.read(&format!(
            "/local/domain/{DD}/data/vif/{}/{}/{key}",
            f.spec.frontend, f.spec.devid
        ))
        .and_then(|v| v.parse().ok())
    }

    /// The switch port of a connected vif.
    pub fn counters_port(&self, f: &TestFront) -> netback::switch::PortId {
        self.netdd
            .backend
            .borrow()
            .device(f.spec.frontend, f.spec.devid)
            .and_then(|d| d.port())
            .expect("vif connected")
    }

    /// Live counters of a vif's current port.
    pub fn counters(&self, f: &TestFront) -> PortCounters {
        let port = self.counters_port(f);
        self.netdd.dp.borrow().switch.counters(port).unwrap()
    }

    pub fn connected(&self, f: &TestFront) -> bool {
        self.netdd
            .backend
            .borrow()
            .is_connected(f.spec.frontend, f.spec.devid)
    }

    /// Creates a guest with one vif and connects it with `opts`.
    pub fn guest(&mut self, domid: u16, opts: FrontOpts) -> TestFront {
        let mut f = TestFront::create(&self.world, domid, 0, &opts);
        self.settle();
        assert_eq!(
            self.be_state(&f).as_deref(),
            Some("2"),
            "backend in InitWait"
        );
        f.connect(&opts);
        self.settle();
        assert_eq!(self.be_state(&f).as_deref(), Some("4"), "backend Connected");
        f
    }
}

/// How a test frontend connects.
#[derive(Clone, Debug)]
pub struct FrontOpts {
    pub mac: [u8; 6],
    pub ip: Option<String>,
    pub sg: bool,
    pub gso: bool,
    pub csum: bool,
    pub split: bool,
    pub rx_buffers: usize,
}

impl FrontOpts {
    pub fn linux(n: u8) -> Self {
        Self {
            mac: mac(n),
            ip: None,
            sg: true,
            gso: true,
            csum: true,
            split: true,
            rx_buffers: 256,
        }
    }

    pub fn plain(n: u8) -> Self {
        Self {
            sg: false,
            gso: false,
            csum: false,
            split: false,
            ..Self::linux(n)
        }
    }
}

pub fn mac(n: u8) -> [u8; 6] {
    [0x00, 0x16, 0x3e, 0, 0, n]
}

pub fn ip(n: u8) -> [u8; 4] {
    [10, 0, 0, n]
}

/// How a frame is split into TX slots.
#[derive(Clone, Debug, Default)]
pub struct SendOpts {
    /// Bytes per slot (0: up to the end of the page).
    pub slot_len: usize,
    /// Offset of each slot's data in its page.
    pub offset: usize,
    pub csum_blank: bool,
    pub data_validated: bool,
    pub gso: Option<Gso>,
}

/// A received packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub data: Vec<u8>,
    pub csum_blank: bool,
    pub data_validated: bool,
    pub gso: Option<NetifExtraInfo>,
    pub slots: usize,
    pub error: bool,
    /// Bytes in each data slot.
    pub slot_lens: Vec<usize>,
}

/// A netfront in a simulated guest: real rings, grants and event channels, driven by hand.
pub struct TestFront {
    pub dom: HostDomain,
    pub xs: Xenstore<HostXs>,
    pub spec: DeviceSpec,
    pub tx: Option<SharedRing<HostGranted>>,
    pub tx_front: FrontRing,
    pub rx: Option<SharedRing<HostGranted>>,
    pub rx_front: FrontRing,
    pub evt_tx: Option<HostChannel>,
    pub evt_rx: Option<HostChannel>,
    pub rx_bufs: BTreeMap<u16, HostGranted>,
    pub next_rx_id: u16,
    pub tx_pages: BTreeMap<u16, Vec<HostGranted>>,
    pub next_tx_id: u16,
    /// `(id, status)` of every TX response.
    pub tx_done: Vec<(u16, i16)>,
    pub received: Vec<Received>,
    pub repost: bool,
}

impl TestFront {
    /// Creates the guest domain and its vif (as libxl would), not yet connected.
    pub fn create(world: &World, domid: u16, devid: u32, opts: &FrontOpts) -> Self {
        let dom = world.create_domain(domid, &format!("guest{domid}"));
        let mac = opts.mac;
        let mac_str = format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
        );
        let mut spec = DeviceSpec::new("vif", DD, domid, devid)
            .backend_key("mac", &mac_str)
            .backend_key("handle", &devid.to_string())
            .frontend_key("mac", &mac_str)
            .frontend_key("handle", &devid.to_string());
        if let Some(ip) = &opts.ip {
            spec = spec.backend_key("ip", ip);
        }
        world.add_device(&spec);
        let xs = dom.xenstore();
        Self {
            dom,
            xs,
            spec,
            tx: None,
            tx_front: FrontRing::new(256).unwrap(),
            rx: None,
            rx_front: FrontRing::new(256).unwrap(),
            evt_tx: None,
            evt_rx: None,
            rx_bufs: BTreeMap::new(),
            next_rx_id: 0,
            tx_pages: BTreeMap::new(),
            next_tx_id: 0,
            tx_done: Vec::new(),
            received: Vec::new(),
            repost: true,
        }
    }

    pub fn key(&self, k: &str) -> String {
        format!("{}/{k}", self.spec.frontend_path())
    }

    pub fn write(&mut self, k: &str, v: &str) {
        let path = self.key(k);
        self.xs.write(&path, v.as_bytes()).unwrap();
    }

    /// Grants rings, allocates channels, posts RX buffers; returns the keys to publish.
    pub fn setup_rings(&mut self, opts: &FrontOpts) -> Vec<(String, String)> {
        let txp = self.dom.grant_page(DD, Access::ReadWrite).unwrap();
        let rxp = self.dom.grant_page(DD, Access::ReadWrite).unwrap();
        let mut keys = vec![
            ("tx-ring-ref".to_string(), txp.gref().to_string()),
            ("rx-ring-ref".to_string(), rxp.gref().to_string()),
        ];
        let tx = SharedRing::new(txp, NET_TX_ENTRY_SIZE).unwrap();
        tx.init().unwrap();
        let rx = SharedRing::new(rxp, NET_RX_ENTRY_SIZE).unwrap();
        rx.init().unwrap();
        self.tx_front = FrontRing::new(tx.nr_ents()).unwrap();
        self.rx_front = FrontRing::new(rx.nr_ents()).unwrap();
        self.tx = Some(tx);
        self.rx = Some(rx);
        let t = self.dom.alloc_unbound(DD).unwrap();
        if opts.split {
            let r = self.dom.alloc_unbound(DD).unwrap();
            keys.push(("event-channel-tx".into(), t.port().to_string()));
            keys.push(("event-channel-rx".into(), r.port().to_string()));
            self.evt_rx = Some(r);
        } else {
            keys.push(("event-channel".into(), t.port().to_string()));
        }
        self.evt_tx = Some(t);
        let b = |on: bool| if on { "1" } else { "0" }.to_string();
        keys.push(("request-rx-copy".into(), "1".into()));
        keys.push(("feature-rx-notify".into(), "1".into()));
        keys.push(("feature-sg".into(), b(opts.sg)));
        keys.push(("feature-gso-tcpv4".into(), b(opts.gso)));
        keys.push(("feature-gso-tcpv6".into(), b(opts.gso)));
        keys.push(("feature-ipv6-csum-offload".into(), b(opts.csum)));
        if !opts.csum {
            keys.push(("feature-no-csum-offload".into(), "1".into()));
        }
        self.post_rx(opts.rx_buffers);
        keys
    }

    /// Publishes `keys` and state Connected (as Linux netfront does) in one transaction.
    pub fn publish(&mut self, keys: &[(String, String)]) {
        let dir = self.spec.frontend_path();
        self.xs
            .transaction(|tx| {
                for (k, v) in keys {
                    tx.write(&format!("{dir}/{k}"), v.as_bytes())?;
                }
                tx.write(&format!("{dir}/state"), b"4")
            })
            .unwrap();
    }

    pub fn connect(&mut self, opts: &FrontOpts) {
        let keys = self.setup_rings(opts);
        self.publish(&keys);
    }

    /// Closes (Closing then Closed) and drops rings and channels.
    pub fn close(&mut self) {
        self.write("state", "5");
        self.write("state", "6");
        self.tx = None;
        self.rx = None;
        self.evt_tx = None;
        self.evt_rx = None;
        self.rx_bufs.clear();
        self.tx_pages.clear();
    }

    pub fn tx_ring(&self) -> &SharedRing<HostGranted> {
        self.tx.as_ref().unwrap()
    }

    pub fn rx_ring(&self) -> &SharedRing<HostGranted> {
        self.rx.as_ref().unwrap()
    }

    pub fn post_rx(&mut self, n: usize) {
        for _ in 0..n {
            if self.rx_front.is_full() {
                break;
            }
            let page = self.dom.grant_page(DD, Access::ReadWrite).unwrap();
            let id = self.next_rx_id;
            self.next_rx_id = self.next_rx_id.wrapping_add(1) % 256;
            let req = NetifRxRequest {
                id,
                pad: 0,
                gref: page.gref(),
            };
            self.rx_bufs.insert(id, page);
            let idx = self.rx_front.next_request_slot().unwrap();
            self.rx.as_ref().unwrap().write_entry(idx, &req).unwrap();
        }
        if self.rx_front.push_requests(self.rx.as_ref().unwrap()) {
            self.notify_rx();
        }
    }

    /// Posts an RX request with an arbitrary grant reference (hostile).
    pub fn post_rx_gref(&mut self, gref: u32) {
        let id = self.next_rx_id;
        self.next_rx_id = self.next_rx_id.wrapping_add(1) % 256;
        let idx = self.rx_front.next_request_slot().unwrap();
        let req = NetifRxRequest { id, pad: 0, gref };
        self.rx.as_ref().unwrap().write_entry(idx, &req).unwrap();
        if self.rx_front.push_requests(self.rx.as_ref().unwrap()) {
            self.notify_rx();
        }
    }

    pub fn notify_tx(&self) {
        if let Some(c) = &self.evt_tx {
            c.notify().unwrap();
        }
    }

    pub fn notify_rx(&self) {
        match &self.evt_rx {
            Some(c) => c.notify().unwrap(),
            None => self.notify_tx(),
        }
    }

    fn new_tx_id(&mut self) -> u16 {
        let id = self.next_tx_id;
        self.next_tx_id = (self.next_tx_id + 1) % 256;
        id
    }

    /// Writes a raw slot image into the next TX request slot (not pushed).
    pub fn put_raw(&mut self, slot: [u8; 12]) {
        let idx = self.tx_front.next_request_slot().unwrap();
        self.tx_ring().write_entry(idx, &RawSlot(slot)).unwrap();
    }

    /// Publishes the TX requests written; notifies if the backend asked.
    pub fn push_tx(&mut self) {
        if self.tx_front.push_requests(self.tx.as_ref().unwrap()) {
            self.notify_tx();
        }
    }

    /// Grants a fresh page holding `data` at `offset`; returns its grant.
    pub fn data_page(&mut self, id: u16, offset: usize, data: &[u8]) -> u32 {
        let page = self.dom.grant_page(DD, Access::ReadOnly).unwrap();
        page.write(offset, data).unwrap();
        let gref = page.gref();
        self.tx_pages.entry(id).or_default().push(page);
        gref
    }

    /// Queues one frame as a slot chain (not pushed). Returns the first slot's id.
    pub fn queue_frame(&mut self, frame: &[u8], o: &SendOpts) -> u16 {
        let cap = 4096 - o.offset;
        let slot_len = if o.slot_len == 0 {
            cap
        } else {
            o.slot_len.min(cap)
        };
        let chunks: Vec<&[u8]> = if frame.is_empty() {
            vec![&[][..]]
        } else {
            frame.chunks(slot_len).collect()
        };
        let mut first_id = 0;
        for (i, chunk) in chunks.iter().enumerate() {
            let id = self.new_tx_id();
            let gref = self.data_page(id, o.offset, chunk);
            let req = TxRequestRepr {
                gref,
                offset: o.offset as u16,
                size: if i == 0 {
                    frame.len() as u16
                } else {
                    chunk.len() as u16
                },
                id,
                csum_blank: i == 0 && o.csum_blank,
                data_validated: i == 0 && (o.data_validated || o.csum_blank),
                more_data: i + 1 < chunks.len(),
                extra_info: i == 0 && o.gso.is_some(),
            };
            let idx = self.tx_front.next_request_slot().unwrap();
            self.tx_ring().write_entry(idx, &req.emit()).unwrap();
            if i == 0 {
                first_id = id;
                if let Some(g) = o.gso {
                    let extra = ExtraRepr {
                        kind: netback::wire::ExtraKind::Gso(g),
                        more: false,
                    };
                    let idx = self.tx_front.next_request_slot().unwrap();
                    self.tx_ring().write_entry(idx, &extra.emit()).unwrap();
                }
            }
        }
        first_id
    }

    pub fn send(&mut self, frame: &[u8], o: &SendOpts) -> u16 {
        let id = self.queue_frame(frame, o);
        self.push_tx();
        id
    }

    /// Takes every response: TX statuses, received packets (reposting buffers).
    pub fn poll(&mut self) {
        if let Some(c) = &self.evt_tx {
            let _ = c.take_pending();
        }
        if let Some(c) = &self.evt_rx {
            let _ = c.take_pending();
        }
        if self.tx.is_none() {
            return;
        }
        while let Some(idx) = self
            .tx_front
            .next_response(self.tx.as_ref().unwrap())
            .unwrap()
        {
            let rsp: NetifTxResponse = self.tx_ring().read_entry(idx).unwrap();
            if rsp.status != 1 {
                self.tx_pages.remove(&rsp.id);
            }
            self.tx_done.push((rsp.id, rsp.status));
        }
        let mut reposts = 0;
        loop {
            let rx = self.rx.as_ref().unwrap();
            let Some(idx) = self.rx_front.next_response(rx).unwrap() else {
                break;
            };
            let first: NetifRxResponse = rx.read_entry(idx).unwrap();
            let mut pkt = Received {
                data: Vec::new(),
                csum_blank: first.flags & NETRXF_CSUM_BLANK != 0,
                data_validated: first.flags & NETRXF_DATA_VALIDATED != 0,
                gso: None,
                slots: 0,
                error: false,
                slot_lens: Vec::new(),
            };
            let mut rsp = first;
            if first.flags & NETRXF_EXTRA_INFO != 0 {
                let eidx = self
                    .rx_front
                    .next_response(rx)
                    .unwrap()
                    .expect("extra slot");
                pkt.gso = Some(rx.read_entry(eidx).unwrap());
                reposts += 1;
            }
            loop {
                pkt.slots += 1;
                pkt.slot_lens.push(rsp.status.max(0) as usize);
                reposts += 1;
                if rsp.status < 0 {
                    pkt.error = true;
                } else {
                    let buf = &self.rx_bufs[&rsp.id];
                    let mut bytes = vec![0u8; rsp.status as usize];
                    buf.read(rsp.offset as usize, &mut bytes).unwrap();
                    pkt.data.extend_from_slice(&bytes);
                }
                if rsp.flags & NETRXF_MORE_DATA == 0 {
                    break;
                }
                let nidx = self.rx_front.next_response(rx).unwrap().expect("more data");
                rsp = rx.read_entry(nidx).unwrap();
            }
            self.received.push(pkt);
        }
        self.rx_front
            .final_check_for_responses(self.rx.as_ref().unwrap())
            .unwrap();
        self.tx_front
            .final_check_for_responses(self.tx.as_ref().unwrap())
            .unwrap();
        if self.repost && reposts > 0 {
            // Buffers stay granted; post fresh ones for simplicity (old ones are dropped).
            self.rx_bufs.retain(|_, _| true);
            self.post_rx(reposts);
        }
    }

    pub fn take_received(&mut self) -> Vec<Received> {
        self.poll();
        std::mem::take(&mut self.received)
    }

    /// Statuses of all TX responses so far (NULL responses included).
    pub fn statuses(&self) -> Vec<i16> {
        self.tx_done.iter().map(|&(_, s)| s).collect()
    }
}

/// A raw 12-byte TX slot image.
pub struct RawSlot(pub [u8; 12]);

impl WireStruct for RawSlot {
    const SIZE: usize = 12;
    fn read_from(src: &[u8]) -> Result<Self, xen_abi::ShortBuffer> {
        let mut b = [0u8; 12];
        b.copy_from_slice(src.get(..12).ok_or(xen_abi::ShortBuffer {
            need: 12,
            have: src.len(),
        })?);
        Ok(Self(b))
    }
    fn write_to(&self, dst: &mut [u8]) -> Result<(), xen_abi::ShortBuffer> {
        let have = dst.len();
        dst.get_mut(..12)
            .ok_or(xen_abi::ShortBuffer { need: 12, have })?
            .copy_from_slice(&self.0);
        Ok(())
    }
}

/// A raw TX request image.
pub fn raw_req(r: NetifTxRequest) -> [u8; 12] {
    let mut b = [0u8; 12];
    r.write_to(&mut b).unwrap();
    b
}

/// A raw extra-info image in a TX slot.
pub fn raw_extra(e: NetifExtraInfo) -> [u8; 12] {
    let mut b = [0u8; 12];
    e.write_to(&mut b).unwrap();
    b
}

// ---------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------

/// An Ethernet + IPv4 + UDP frame with a complete checksum.
pub fn udp_frame(
    dst: [u8; 6],
    src: [u8; 6],
    sip: [u8; 4],
    dip: [u8; 4],
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0]);
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&sip);
    f.extend_from_slice(&dip);
    let ulen = (8 + payload.len()) as u16;
    f.extend_from_slice(&[0x30, 0x39, 0x30, 0x3a]);
    f.extend_from_slice(&ulen.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    netback::frame::fill_ipv4_checksum(&mut f, 14, 20);
    let info = netback::frame::locate_l4(&f).unwrap();
    netback::frame::fill_l4_checksum(&mut f, &info);
    f
}

/// An Ethernet + IPv4 + TCP frame; checksum complete, or blank (pseudo-header sum) if
/// `partial`.
pub fn tcp_frame(
    dst: [u8; 6],
    src: [u8; 6],
    sip: [u8; 4],
    dip: [u8; 4],
    payload: &[u8],
    partial: bool,
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 20 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0, 0, 0, 0x10, 0x00, 0x40, 0, 64, 6, 0, 0]);
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&sip);
    f.extend_from_slice(&dip);
    f.extend_from_slice(&[
        0x9c, 0x40, 0x14, 0x51, 0, 0, 0x10, 0, 0, 0, 0, 0, 0x50, 0x18,
    ]);
    f.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    netback::frame::fill_ipv4_checksum(&mut f, 14, 20);
    let info = netback::frame::locate_l4(&f).unwrap();
    if partial {
        netback::frame::fill_partial_checksum(&mut f, &info);
    } else {
        netback::frame::fill_l4_checksum(&mut f, &info);
    }
    f
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Whether the transport checksum of a received IPv4 TCP/UDP frame verifies.
pub fn l4_ok(frame: &[u8]) -> bool {
    let info = netback::frame::locate_l4(frame).unwrap();
    netback::frame::l4_checksum_ok(frame, &info)
}

/// Reads the shared ring index `req_event` (tests of notification suppression).
pub fn req_event(r: &SharedRing<HostGranted>) -> u32 {
    r.load_req_event()
}

// ---------------------------------------------------------------------------------------------
// A NIC the driver domain owns
// ---------------------------------------------------------------------------------------------

/// How the fake wire answers one transmitted frame (`None`: no answer).
pub type WireAnswer = fn(&[u8]) -> Option<Vec<u8>>;

/// What a [`FakeNic`] saw and will deliver; shared with the test.
#[derive(Default)]
pub struct NicState {
    /// Frames the wire delivers to the driver domain next.
    pub rx: VecDeque<(Vec<u8>, RxCsum)>,
    /// Frames the driver domain transmitted, with their offload requests.
    pub tx: Vec<(Vec<u8>, TxMeta)>,
    /// Frames the device accepts before it reports a full queue (`None`: unlimited).
    pub tx_room: Option<usize>,
    /// The device fails with this reason.
    pub fail: Option<String>,
    /// Offloads announced.
    pub offloads: NetOffloads,
    /// An interrupt is pending.
    pub irq: bool,
    /// The wire's answer to a transmitted frame, delivered (with an interrupt) as soon as
    /// the driver rings the doorbell, as QEMU's user network answers a ping while the
    /// doorbell write is still being handled.
    pub answer: Option<WireAnswer>,
    /// Transmitted frames already answered.
    pub answered: usize,
}

/// A network device on the host: frames go to and come from [`NicState`].
#[derive(Clone, Default)]
pub struct FakeNic(pub Rc<RefCell<NicState>>);

/// The fake NIC's MAC.
pub const NIC_MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

impl FakeNic {
    /// A NIC without offloads.
    pub fn new() -> Self {
        Self::default()
    }

    /// Delivers a frame from the wire.
    pub fn inject(&self, frame: &[u8], csum: RxCsum) {
        let mut s = self.0.borrow_mut();
        s.rx.push_back((frame.to_vec(), csum));
        s.irq = true;
    }

    /// Takes what was transmitted so far.
    pub fn take_tx(&self) -> Vec<(Vec<u8>, TxMeta)> {
        std::mem::take(&mut self.0.borrow_mut().tx)
    }

    fn check(&self) -> Result<(), NetError> {
        match &self.0.borrow().fail {
            Some(why) => Err(NetError::Device(why.clone())),
            None => Ok(()),
        }
    }
}

impl NetDevice for FakeNic {
    fn describe(&self) -> String {
        "fake-nic 0000:00:10.0".into()
    }
    fn mac(&self) -> [u8; 6] {
        NIC_MAC
    }
    fn max_frame(&self) -> usize {
        1514
    }
    fn offloads(&self) -> NetOffloads {
        self.0.borrow().offloads
    }
    fn link_up(&self) -> bool {
        true
    }
    fn take_interrupt(&mut self) -> bool {
        std::mem::take(&mut self.0.borrow_mut().irq)
    }
    fn poll(&mut self) -> Result<(), NetError> {
        self.check()
    }
    fn receive(
        &mut self,
        budget: usize,
        each: &mut dyn FnMut(RxFrame<'_>),
    ) -> Result<usize, NetError> {
        self.check()?;
        let mut n = 0;
        while n < budget {
            let Some((data, csum)) = self.0.borrow_mut().rx.pop_front() else {
                break;
            };
            each(RxFrame { data: &data, csum });
            n += 1;
        }
        Ok(n)
    }
    fn transmit(&mut self, frame: &[u8], meta: &TxMeta) -> Result<(), NetError> {
        self.check()?;
        let mut s = self.0.borrow_mut();
        match s.tx_room {
            Some(0) => return Err(NetError::Full),
            Some(ref mut n) => *n -= 1,
            None => {}
        }
        let o = s.offloads;
        if (meta.csum.is_some() && !o.tx_csum) || (meta.gso.is_some() && !o.tx_tso4) {
            return Err(NetError::Refused);
        }
        s.tx.push((frame.to_vec(), *meta));
        Ok(())
    }
    fn flush(&mut self) -> Result<(), NetError> {
        self.check()?;
        let mut s = self.0.borrow_mut();
        if let Some(answer) = s.answer {
            while s.answered < s.tx.len() {
                let reply = answer(&s.tx[s.answered].0);
                s.answered += 1;
                if let Some(reply) = reply {
                    s.rx.push_back((reply, RxCsum::Unverified));
                    s.irq = true;
                }
            }
        }
        Ok(())
    }
}
