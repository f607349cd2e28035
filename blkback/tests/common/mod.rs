//! Host test harness: a driver domain running the `vbd` backend in a simulated world, and a
//! blkfront played by the test (well-behaved unless a test makes it otherwise).
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

use blkback::backend::{BlkDriver, Catalog, Options, Vbd};
use blkback::store::ram::RamVolume;
use blkback::wire::Slot;
use minios::executor::Executor;
use minios::host::{DeviceSpec, HostChannel, HostDomain, HostGranted, HostXs, World};
use minios::platform::{
    Access, DomId, EventChannel, Events, GrantedPage, Grants, PageSet, SharedMem,
};
use minios::ring::FrontChannel;
use minios::xenbus::Backend;
use minios::xenstore::{Store, Xenstore};
use xen_abi::blkif::*;
use xen_abi::WireStruct;

/// The driver domain.
pub const DD: DomId = 1;

/// A RAM volume to configure.
pub struct Vol {
    pub name: &'static str,
    pub size: u64,
    pub sector_size: u32,
    pub read_only: bool,
}

impl Vol {
    pub fn new(name: &'static str, size: u64) -> Self {
        Self {
            name,
            size,
            sector_size: 512,
            read_only: false,
        }
    }
    pub fn sector_size(mut self, s: u32) -> Self {
        self.sector_size = s;
        self
    }
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }
}

pub type TestBackend = Backend<HostDomain, BlkDriver>;

/// The world and the driver domain's executor.
pub struct Env {
    pub world: World,
    pub exec: Executor<HostDomain>,
    pub backend: Rc<RefCell<TestBackend>>,
    /// Other domains' executors (dom0's disk backend), run along with the driver domain's.
    pub others: Vec<Executor<HostDomain>>,
}

impl Env {
    pub fn new(vols: &[Vol]) -> Self {
        Self::with_options(vols, Options::default())
    }

    pub fn with_options(vols: &[Vol], options: Options) -> Self {
        let mut catalog = Catalog::new();
        for v in vols {
            let ram = RamVolume::create(v.name, v.size, v.sector_size, v.read_only).unwrap();
            catalog.add(v.name, Box::new(ram));
        }
        Self::with_catalog(catalog, options)
    }

    pub fn with_catalog(catalog: Catalog, options: Options) -> Self {
        let world = World::new();
        world.create_domain(DD, "blkdd");
        Self::in_world(world, Vec::new(), catalog, options)
    }

    /// The driver domain (already created in `world`) with `catalog`, next to `others`.
    pub fn in_world(
        world: World,
        others: Vec<Executor<HostDomain>>,
        catalog: Catalog,
        options: Options,
    ) -> Self {
        let dd = world.domain(DD);
        let backend = Backend::new(BlkDriver::new(catalog, options), DD).shared();
        let mut exec = Executor::new(dd.clone(), dd.xenstore());
        exec.spawn(backend.clone()).unwrap();
        let mut env = Self {
            world,
            exec,
            backend,
            others,
        };
        env.settle();
        env
    }

    /// Runs passes until nothing is left to do right now (bounded).
    pub fn settle(&mut self) {
        let mut execs: Vec<&mut Executor<HostDomain>> = core::iter::once(&mut self.exec)
            .chain(self.others.iter_mut())
            .collect();
        minios::host::settle(&self.world, &mut execs);
    }

    /// One pass.
    pub fn pass(&mut self) {
        self.exec.run_once();
        for exec in &mut self.others {
            exec.run_once();
        }
    }

    /// Advances the clock, then settles.
    pub fn advance(&mut self, ns: u64) {
        self.world.advance(ns);
        self.settle();
    }

    /// The device's counter `key` as published in the driver domain's data area.
    pub fn counter(&self, dev: &DeviceSpec, key: &str) -> Option<u64> {
        self.world
            .read_str(&format!(
                "/local/domain/{DD}/data/vbd/{}/{}/{key}",
                dev.frontend, dev.devid
            ))
            .map(|v| v.parse().expect("a number"))
    }

    pub fn vbd<R>(&self, fe: DomId, devid: u32, f: impl FnOnce(&Vbd<HostDomain>) -> R) -> R {
        let b = self.backend.borrow();
        f(b.device(fe, devid).expect("device exists"))
    }

    pub fn be_key(&self, dev: &DeviceSpec, key: &str) -> Option<String> {
        self.world
            .read_str(&format!("{}/{key}", dev.backend_path()))
    }

    pub fn error_node(&self, dev: &DeviceSpec) -> Option<String> {
        self.world.read_str(&format!(
            "/local/domain/{DD}/error/backend/vbd/{}/{}/error",
            dev.frontend, dev.devid
        ))
    }
}

/// How a test frontend connects.
#[derive(Clone, Copy, Debug)]
pub struct FrontOpts {
    pub order: Option<u32>,
    pub queues: u32,
    pub persistent: bool,
    pub mode: &'static str,
}

impl Default for FrontOpts {
    fn default() -> Self {
        Self {
            order: None,
            queues: 1,
            persistent: false,
            mode: "w",
        }
    }
}

pub type FRing = FrontChannel<PageSet<HostGranted>, Slot, BlkifResponse>;

pub struct FQueue {
    pub ring: FRing,
    pub port: HostChannel,
    pub ring_grefs: Vec<u32>,
}

/// A blkfront played by the test.
pub struct Front {
    pub dom: HostDomain,
    pub xs: Xenstore<HostXs>,
    pub dev: DeviceSpec,
    pub opts: FrontOpts,
    pub queues: Vec<FQueue>,
    pub next_id: u64,
    /// Persistent data pages (reused by every request when persistent).
    pub pool: Vec<HostGranted>,
}

/// The outcome of one I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: i16,
    pub data: Vec<u8>,
}

pub fn slot_of<T: WireStruct>(req: &T) -> Slot {
    let mut s = Slot::default();
    req.write_to(&mut s.0).unwrap();
    s
}

impl Front {
    /// Adds a guest (if new) and a disk device for `volume`, without connecting.
    pub fn add(env: &mut Env, domid: DomId, devid: u32, volume: &str, opts: FrontOpts) -> Self {
        if !env.world.exists(&format!("/local/domain/{domid}")) {
            env.world.create_domain(domid, "guest");
        }
        let dev = DeviceSpec::new("vbd", DD, domid, devid)
            .backend_key("params", volume)
            .backend_key("mode", opts.mode)
            .backend_key("type", "phy")
            .frontend_key("virtual-device", &devid.to_string());
        env.world.add_device(&dev);
        env.settle();
        let dom = env.world.domain(domid);
        let xs = dom.xenstore();
        Self {
            dom,
            xs,
            dev,
            opts,
            queues: Vec::new(),
            next_id: 1,
            pool: Vec::new(),
        }
    }

    /// Adds and connects; asserts the backend reached Connected.
    pub fn attach(env: &mut Env, domid: DomId, devid: u32, volume: &str, opts: FrontOpts) -> Self {
        let mut f = Self::add(env, domid, devid, volume, opts);
        assert_eq!(
            env.be_key(&f.dev, "state").as_deref(),
            Some("2"),
            "InitWait"
        );
        f.setup_rings();
        f.state("3");
        env.settle();
        assert_eq!(
            env.be_key(&f.dev, "state").as_deref(),
            Some("4"),
            "backend connected; error: {:?}",
            env.error_node(&f.dev)
        );
        f.state("4");
        env.settle();
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

    /// Grants rings, allocates ports and writes all connect keys (not the state).
    pub fn setup_rings(&mut self) {
        self.queues.clear();
        let pages = 1usize << self.opts.order.unwrap_or(0);
        let n = self.opts.queues;
        if let Some(order) = self.opts.order {
            self.write_key("ring-page-order", &order.to_string());
        }
        if n > 1 {
            self.write_key("multi-queue-num-queues", &n.to_string());
        }
        self.write_key("protocol", "x86_64-abi");
        self.write_key(
            "feature-persistent",
            if self.opts.persistent { "1" } else { "0" },
        );
        for q in 0..n {
            let dir = if n > 1 {
                format!("queue-{q}/")
            } else {
                String::new()
            };
            let granted: Vec<HostGranted> = (0..pages)
                .map(|_| self.dom.grant_page(DD, Access::ReadWrite).unwrap())
                .collect();
            let grefs: Vec<u32> = granted.iter().map(|g| g.gref()).collect();
            if self.opts.order.is_some() {
                for (i, g) in grefs.iter().enumerate() {
                    self.write_key(&format!("{dir}ring-ref{i}"), &g.to_string());
                }
            } else {
                self.write_key(&format!("{dir}ring-ref"), &grefs[0].to_string());
            }
            let ring = FrontChannel::new(PageSet::new(granted).unwrap()).unwrap();
            let port = self.dom.alloc_unbound(DD).unwrap();
            self.write_key(&format!("{dir}event-channel"), &port.port().to_string());
            self.queues.push(FQueue {
                ring,
                port,
                ring_grefs: grefs,
            });
        }
    }

    /// Puts a raw slot on queue `q`, publishes and notifies.
    pub fn submit(&mut self, q: usize, slot: &Slot) {
        let fq = &mut self.queues[q];
        fq.ring.put_request(slot).unwrap();
        if fq.ring.push() {
            fq.port.notify().unwrap();
        }
    }

    /// Responses that arrived on queue `q`.
    pub fn responses(&mut self, q: usize) -> Vec<BlkifResponse> {
        let mut out = Vec::new();
        while let Some(r) = self.queues[q].ring.next_response().unwrap() {
            out.push(r);
        }
        out
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Data pages for `pages` segments: the persistent pool, or fresh grants.
    fn data_pages(&mut self, pages: usize) -> Vec<HostGranted> {
        if self.opts.persistent {
            while self.pool.len() < pages + 1 {
                self.pool
                    .push(self.dom.grant_page(DD, Access::ReadWrite).unwrap());
            }
            Vec::new()
        } else {
            (0..pages)
                .map(|_| self.dom.grant_page(DD, Access::ReadWrite).unwrap())
                .collect()
        }
    }

    fn page(&self, fresh: &[HostGranted], i: usize) -> (u32, minios::host::HostPage) {
        let g = if self.opts.persistent {
            &self.pool[i]
        } else {
            &fresh[i]
        };
        (g.gref(), g.page().clone())
    }

    /// Runs one data request of `op` (read/write/flush/barrier) on queue 0 over whole pages
    /// (`data.len()` a multiple of 512): direct up to 11 segments, indirect beyond.
    pub fn rw(&mut self, env: &mut Env, q: usize, op: u8, sector: u64, data: &[u8]) -> Outcome {
        assert_eq!(data.len() % 512, 0);
        let npages = data.len().div_ceil(4096);
        let fresh = self.data_pages(npages + 1);
        let mut segs = Vec::new();
        for i in 0..npages {
            let (gref, page) = self.page(&fresh, i);
            let chunk = &data[i * 4096..((i + 1) * 4096).min(data.len())];
            page.write(0, chunk).unwrap();
            segs.push(BlkifRequestSegment {
                gref,
                first_sect: 0,
                last_sect: (chunk.len() / 512 - 1) as u8,
            });
        }
        let id = self.id();
        let slot = if segs.len() <= 11 {
            let mut req = BlkifRequest {
                operation: op,
                nr_segments: segs.len() as u8,
                handle: 0,
                id,
                sector_number: sector,
                ..Default::default()
            };
            req.seg[..segs.len()].copy_from_slice(&segs);
            slot_of(&req)
        } else {
            let (igref, ipage) = self.page(&fresh, npages);
            for (i, s) in segs.iter().enumerate() {
                let mut b = [0u8; 8];
                s.write_to(&mut b).unwrap();
                ipage.write(i * 8, &b).unwrap();
            }
            let mut grefs = [0u32; 8];
            grefs[0] = igref;
            slot_of(&BlkifRequestIndirect {
                operation: BLKIF_OP_INDIRECT,
                indirect_op: op,
                nr_segments: segs.len() as u16,
                id,
                sector_number: sector,
                handle: 0,
                indirect_grefs: grefs,
            })
        };
        self.submit(q, &slot);
        env.settle();
        let rsp = self.responses(q);
        assert_eq!(rsp.len(), 1, "one response");
        assert_eq!(rsp[0].id, id);
        let mut out = vec![0u8; data.len()];
        for i in 0..npages {
            let (_, page) = self.page(&fresh, i);
            let n = (data.len() - i * 4096).min(4096);
            page.read(0, &mut out[i * 4096..i * 4096 + n]).unwrap();
        }
        Outcome {
            status: rsp[0].status,
            data: out,
        }
    }

    pub fn write(&mut self, env: &mut Env, sector: u64, data: &[u8]) -> i16 {
        self.rw(env, 0, BLKIF_OP_WRITE, sector, data).status
    }

    pub fn read(&mut self, env: &mut Env, sector: u64, len: usize) -> Outcome {
        self.rw(env, 0, BLKIF_OP_READ, sector, &vec![0u8; len])
    }

    /// A request without segments (flush, barrier) or a discard.
    pub fn simple(&mut self, env: &mut Env, slot: Slot) -> BlkifResponse {
        self.submit(0, &slot);
        env.settle();
        let rsp = self.responses(0);
        assert_eq!(rsp.len(), 1);
        rsp[0]
    }

    pub fn discard(&mut self, env: &mut Env, sector: u64, nr: u64, secure: bool) -> i16 {
        let id = self.id();
        let slot = slot_of(&BlkifRequestDiscard {
            operation: BLKIF_OP_DISCARD,
            flag: if secure { BLKIF_DISCARD_SECURE } else { 0 },
            handle: 0,
            id,
            sector_number: sector,
            nr_sectors: nr,
        });
        let r = self.simple(env, slot);
        assert_eq!((r.id, r.operation), (id, BLKIF_OP_DISCARD));
        r.status
    }

    pub fn flush(&mut self, env: &mut Env) -> i16 {
        let id = self.id();
        let slot = slot_of(&BlkifRequest {
            operation: BLKIF_OP_FLUSH_DISKCACHE,
            id,
            ..Default::default()
        });
        self.simple(env, slot).status
    }

    /// Writes a pattern and reads it back; asserts both worked.
    pub fn verified_io(&mut self, env: &mut Env, sector: u64, seed: u8) {
        let data: Vec<u8> = (0..8192usize)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect();
        assert_eq!(
            self.write(env, sector, &data),
            BLKIF_RSP_OKAY,
            "healthy write"
        );
        let back = self.read(env, sector, data.len());
        assert_eq!(back.status, BLKIF_RSP_OKAY, "healthy read");
        assert!(back.data == data, "healthy data intact");
    }
}

/// A byte pattern that differs per position and seed.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 13) as u8)
        .collect()
}
