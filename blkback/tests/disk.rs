//! The disk store: the driver domain as a blkfront client of a disk "dom0" serves (here dom0
//! runs this crate's own backend over a RAM volume), re-exporting slices of it to guests.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use blkback::backend::{BlkDriver, Catalog, Options, VolumeSource};
use blkback::front::BlkFront;
use blkback::store::disk::{DiskStore, DiskTask, Shared};
use blkback::store::ram::RamVolume;
use blkback::store::{DataPort, Io, Started, StoreError, Volume};
use common::*;
use minios::executor::Executor;
use minios::host::{DeviceSpec, HostDomain, World};
use minios::platform::{Access, Grants};
use minios::xenbus::Backend;
use xen_abi::blkif::*;

const MIB: u64 = 1 << 20;

/// dom0's side: a RAM "disk" behind this crate's backend.
struct Dom0 {
    disk: RamVolume,
    backend: Rc<RefCell<Backend<HostDomain, BlkDriver>>>,
}

/// Reads bytes of dom0's disk directly.
struct Buf(Vec<u8>);
impl DataPort for Buf {
    fn gather(&mut self, _pos: usize, _bufs: &mut [&mut [u8]]) -> Result<(), StoreError> {
        Ok(())
    }
    fn scatter(&mut self, pos: usize, bufs: &[&[u8]]) -> Result<(), StoreError> {
        let mut at = pos;
        for b in bufs {
            self.0[at..at + b.len()].copy_from_slice(b);
            at += b.len();
        }
        Ok(())
    }
}

impl Dom0 {
    fn read(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut h = self.disk.handle(true);
        let mut out = Buf(vec![0; len]);
        assert_eq!(
            h.start(
                0,
                Io::Read {
                    offset,
                    len: len as u64
                },
                &mut out
            ),
            Started::Done(Ok(()))
        );
        out.0
    }
}

/// Builds the world: dom0 serving a 64 MiB disk (`dom0_options`), the driver domain
/// connected to it as `vbd 51712` with `bounce` pages, and slices `a` (0+16M), `b`
/// (16M+16M) and `c` (32M+8M, read-only).
fn setup(dom0_options: Options, bounce: usize) -> (Env, Dom0, Shared<HostDomain>) {
    let world = World::new();
    let dom0 = world.domain(0);
    let disk = RamVolume::create("disk", 64 * MIB, 512, false).unwrap();
    let mut cat0 = Catalog::new();
    cat0.add("disk", Box::new(disk.clone()));
    let backend0 = Backend::new(BlkDriver::new(cat0, dom0_options), 0).shared();
    let mut exec0 = Executor::new(dom0.clone(), dom0.xenstore());
    exec0.spawn(backend0.clone()).unwrap();

    let dd = world.create_domain(DD, "blkdd");
    let dev = DeviceSpec::new("vbd", 0, DD, 51712).backend_key("params", "disk");
    world.add_device(&dev);
    exec0.run_once();
    // The driver domain's blkfront handshake, step by step with dom0 in between.
    let mut xs = dd.xenstore();
    let fe = BlkFront::open(&dd, &mut xs, None).unwrap();
    let offered = BlkFront::offer(&dd, &mut xs, fe).unwrap();
    for _ in 0..10 {
        exec0.run_once();
    }
    let front = offered.finish(&mut xs).unwrap();
    assert_eq!(front.info.sectors, 131072);
    let pages = (0..bounce)
        .map(|_| dd.grant_page(0, Access::ReadWrite).unwrap())
        .collect();
    let store = Rc::new(RefCell::new(DiskStore::new(dd.clone(), front, pages)));
    let mut catalog = Catalog::new();
    for (name, off, size, ro) in [
        ("a", 0, 16 * MIB, false),
        ("b", 16 * MIB, 16 * MIB, false),
        ("c", 32 * MIB, 8 * MIB, true),
    ] {
        let slice = DiskStore::slice(&store, name, off, size, 512, ro);
        catalog.add(name, Box::new(slice) as Box<dyn VolumeSource>);
    }
    let mut env = Env::in_world(world, vec![exec0], catalog, Options::default());
    env.exec.spawn(DiskTask::new(store.clone())).unwrap();
    env.settle();
    (
        env,
        Dom0 {
            disk,
            backend: backend0,
        },
        store,
    )
}

#[test]
fn slices_map_onto_the_disk() {
    let (mut env, dom0, store) = setup(Options::default(), 512);
    let mut fa = Front::attach(&mut env, 5, 51712, "a", FrontOpts::default());
    let mut fb = Front::attach(
        &mut env,
        6,
        51712,
        "b",
        FrontOpts {
            persistent: true,
            ..FrontOpts::default()
        },
    );
    assert_eq!(env.be_key(&fb.dev, "sectors").as_deref(), Some("32768"));
    for (len, sector) in [
        (512usize, 0u64),
        (4096, 8),
        (11 * 4096, 64),
        (256 * 4096, 4096),
    ] {
        let da = pattern(len, sector as u32);
        let db = pattern(len, sector as u32 + 1);
        assert_eq!(fa.write(&mut env, sector, &da), BLKIF_RSP_OKAY, "a {len}");
        assert_eq!(fb.write(&mut env, sector, &db), BLKIF_RSP_OKAY, "b {len}");
        assert_eq!(fa.read(&mut env, sector, len).data, da);
        assert_eq!(fb.read(&mut env, sector, len).data, db);
        // On dom0's disk at the slice offsets.
        assert!(dom0.read(sector * 512, len) == da);
        assert!(dom0.read(16 * MIB + sector * 512, len) == db);
    }
    // Range: the slice's end is the end.
    assert_eq!(fa.write(&mut env, 32767, &[1u8; 512]), BLKIF_RSP_OKAY);
    assert_eq!(fa.write(&mut env, 32768, &[1u8; 512]), BLKIF_RSP_ERROR);
    assert_eq!(
        dom0.read(16 * MIB, 512),
        pattern(512, 1),
        "b untouched by a's overflow"
    );
    // Flush and discard reach dom0.
    assert_eq!(fa.flush(&mut env), BLKIF_RSP_OKAY);
    let data = fa.rw(&mut env, 0, BLKIF_OP_WRITE_BARRIER, 100, &pattern(4096, 77));
    assert_eq!(data.status, BLKIF_RSP_OKAY);
    assert_eq!(dom0.read(100 * 512, 4096), pattern(4096, 77));
    assert_eq!(fb.discard(&mut env, 8, 8, false), BLKIF_RSP_OKAY);
    assert_eq!(dom0.read(16 * MIB + 8 * 512, 4096), vec![0; 4096]);
    let s0 = dom0
        .backend
        .borrow()
        .device(DD, 51712)
        .unwrap()
        .stats()
        .clone();
    assert!(s0.flushes >= 2 && s0.discards == 1, "{s0}");
    assert_eq!(store.borrow().counters().errors, 0);
    // Read-only slice.
    let mut fc = Front::attach(&mut env, 7, 51712, "c", FrontOpts::default());
    assert_eq!(env.be_key(&fc.dev, "info").as_deref(), Some("4"));
    assert_eq!(fc.write(&mut env, 0, &[1u8; 4096]), BLKIF_RSP_ERROR);
    assert_eq!(fc.read(&mut env, 0, 4096).status, BLKIF_RSP_OKAY);
}

#[test]
fn backends_without_indirect_get_split_requests() {
    let dom0_options = Options {
        max_indirect_segments: 0,
        persistent: false,
        ..Options::default()
    };
    let (mut env, dom0, store) = setup(dom0_options, 300);
    let mut fa = Front::attach(&mut env, 5, 51712, "a", FrontOpts::default());
    let data = pattern(256 * 4096, 5);
    assert_eq!(fa.write(&mut env, 8, &data), BLKIF_RSP_OKAY);
    assert_eq!(fa.read(&mut env, 8, data.len()).data, data);
    assert!(dom0.read(4096, data.len()) == data);
    // 256 pages in requests of 11 segments: 24 parts each way.
    let requests = store.borrow().counters().requests;
    assert!(requests >= 48, "{requests}");
}

#[test]
fn guests_share_the_disk_fairly() {
    // A small pool and ring: guests must take turns.
    let (mut env, _dom0, store) = setup(Options::default(), 300);
    let mut fa = Front::attach(&mut env, 5, 51712, "a", FrontOpts::default());
    let mut fb = Front::attach(&mut env, 6, 51712, "b", FrontOpts::default());
    // Guest a queues 16 requests of 1 MiB (more than the pool holds), guest b 4 small ones.
    let pa: Vec<_> = (0..16 * 257)
        .map(|_| fa.dom.grant_page(DD, Access::ReadWrite).unwrap())
        .collect();
    for r in 0..16 {
        let ip = &pa[r * 257 + 256];
        for i in 0..256 {
            let seg = BlkifRequestSegment {
                gref: minios::platform::GrantedPage::gref(&pa[r * 257 + i]),
                first_sect: 0,
                last_sect: 7,
            };
            let mut raw = [0u8; 8];
            xen_abi::WireStruct::write_to(&seg, &mut raw).unwrap();
            minios::platform::SharedMem::write(ip, i * 8, &raw).unwrap();
        }
        let mut grefs = [0; 8];
        grefs[0] = minios::platform::GrantedPage::gref(ip);
        fa.queues[0]
            .ring
            .put_request(&slot_of(&BlkifRequestIndirect {
                operation: BLKIF_OP_INDIRECT,
                indirect_op: BLKIF_OP_WRITE,
                nr_segments: 256,
                id: r as u64,
                sector_number: (r as u64) * 2048,
                handle: 0,
                indirect_grefs: grefs,
            }))
            .unwrap();
    }
    fa.queues[0].ring.push();
    minios::platform::EventChannel::notify(&fa.queues[0].port).unwrap();
    env.pass();
    env.pass();
    // b's small requests complete while a's big ones are still queued.
    let page = fb.dom.grant_page(DD, Access::ReadWrite).unwrap();
    for id in 0..4u64 {
        let mut req = BlkifRequest {
            operation: BLKIF_OP_WRITE,
            nr_segments: 1,
            id,
            sector_number: id * 8,
            ..Default::default()
        };
        req.seg[0] = BlkifRequestSegment {
            gref: minios::platform::GrantedPage::gref(&page),
            first_sect: 0,
            last_sect: 7,
        };
        fb.queues[0].ring.put_request(&slot_of(&req)).unwrap();
    }
    fb.queues[0].ring.push();
    minios::platform::EventChannel::notify(&fb.queues[0].port).unwrap();
    let mut b_done = 0;
    let mut a_done_when_b_finished = None;
    let mut a_done = 0;
    for _ in 0..200 {
        env.pass();
        a_done += fa.responses(0).len();
        b_done += fb.responses(0).len();
        if b_done == 4 && a_done_when_b_finished.is_none() {
            a_done_when_b_finished = Some(a_done);
        }
    }
    env.settle();
    a_done += fa.responses(0).len();
    assert_eq!((a_done, b_done), (16, 4));
    let when = a_done_when_b_finished.expect("b finished");
    assert!(
        when < 16,
        "b finished before a's queue drained (a had {when} done)"
    );
    assert!(
        store.borrow().counters().busy > 0,
        "the pool ran out at some point"
    );
}

#[test]
fn data_survives_a_new_driver_domain_session() {
    let (mut env, dom0, _store) = setup(Options::default(), 512);
    let mut fa = Front::attach(&mut env, 5, 51712, "a", FrontOpts::default());
    let data = pattern(64 * 1024, 9);
    assert_eq!(fa.write(&mut env, 1000, &data), BLKIF_RSP_OKAY);
    assert_eq!(fa.flush(&mut env), BLKIF_RSP_OKAY);
    drop(fa);
    // A "restarted" driver domain: a fresh blkfront session on the same dom0 disk.
    let (mut env2, _, _) = {
        let world = env.world.clone();
        let dd2 = world.create_domain(9, "blkdd2");
        let dev = DeviceSpec::new("vbd", 0, 9, 51712).backend_key("params", "disk");
        world.add_device(&dev);
        env.settle();
        let mut xs = dd2.xenstore();
        let fe = BlkFront::open(&dd2, &mut xs, None).unwrap();
        let offered = BlkFront::offer(&dd2, &mut xs, fe).unwrap();
        env.settle();
        let front = offered.finish(&mut xs).unwrap();
        let pages = (0..300)
            .map(|_| dd2.grant_page(0, Access::ReadWrite).unwrap())
            .collect();
        let store = Rc::new(RefCell::new(DiskStore::new(dd2.clone(), front, pages)));
        let slice = DiskStore::slice(&store, "a", 0, 16 * MIB, 512, false);
        let mut vol = slice.open(false).unwrap();
        let mut out = Buf(vec![0; data.len()]);
        let r = vol.start(
            1,
            Io::Read {
                offset: 1000 * 512,
                len: data.len() as u64,
            },
            &mut out,
        );
        assert_eq!(r, Started::Pending);
        let mut done = None;
        for _ in 0..50 {
            env.settle();
            if let Some(c) = vol.completed() {
                done = Some(c);
                break;
            }
        }
        let c = done.expect("read completed");
        assert_eq!(c.result, Ok(()));
        assert!(c.data.unwrap() == data, "data intact in the new session");
        (env, (), ())
    };
    env2.settle();
    assert!(dom0.read(1000 * 512, data.len()) == data);
}

#[test]
fn completions_taken_by_another_handle_wake_the_loop() {
    // On Xen, dom0 answers while the driver domain is in the middle of a pass: a device polled
    // late may take responses that belong to a device polled earlier. The disk task (polled
    // after the backend) must then ask for another pass, or the loop blocks with them queued.
    use minios::executor::{Ctx, StopReason, Task, TaskId};
    let (mut env, _dom0, store) = setup(Options::default(), 512);
    let mut first =
        VolumeSource::open(&DiskStore::slice(&store, "x", 0, MIB, 512, false), false).unwrap();
    let mut second =
        VolumeSource::open(&DiskStore::slice(&store, "y", MIB, MIB, 512, false), false).unwrap();
    let mut flush = Buf(Vec::new());
    assert_eq!(first.start(7, Io::Flush, &mut flush), Started::Pending);
    assert_eq!(first.completed(), None, "dom0 has not answered yet");
    for _ in 0..5 {
        env.others[0].run_once();
    }
    assert_eq!(
        second.completed(),
        None,
        "the other handle took the response for the first"
    );
    let dd = env.world.domain(DD);
    let mut xs = dd.xenstore();
    let (mut wake, mut stop) = (None::<u64>, None::<StopReason>);
    let mut task = DiskTask::new(store.clone());
    task.poll(&mut Ctx::new(&dd, &mut xs, TaskId(9), &mut wake, &mut stop));
    assert!(wake.is_some(), "the disk task asks for another pass");
    let c = first
        .completed()
        .expect("the first handle's completion is kept");
    assert_eq!((c.tag, c.result), (7, Ok(())));
    // Nothing left: no more passes asked for.
    let mut wake = None;
    task.poll(&mut Ctx::new(&dd, &mut xs, TaskId(9), &mut wake, &mut stop));
    assert_eq!(wake, None);
}

#[test]
fn barriers_wait_for_earlier_requests_and_hold_later_ones() {
    let (mut env, dom0, _store) = setup(Options::default(), 512);
    let mut f = Front::attach(&mut env, 5, 51712, "a", FrontOpts::default());
    let g = |f: &Front| f.dom.grant_page(DD, Access::ReadWrite).unwrap();
    let data: Vec<_> = (0..4).map(|_| g(&f)).collect();
    for (i, p) in data.iter().enumerate() {
        minios::platform::SharedMem::fill(p, 0, 4096, 0x10 + i as u8).unwrap();
    }
    let readback = g(&f);
    let req = |op: u8, id: u64, sector: u64, page: Option<&minios::host::HostGranted>| {
        let mut r = BlkifRequest {
            operation: op,
            id,
            sector_number: sector,
            ..Default::default()
        };
        if let Some(p) = page {
            r.nr_segments = 1;
            r.seg[0] = BlkifRequestSegment {
                gref: minios::platform::GrantedPage::gref(p),
                first_sect: 0,
                last_sect: 7,
            };
        }
        slot_of(&r)
    };
    // Four writes, a barrier with data, a flush, and a read of what the barrier wrote.
    for (i, p) in data.iter().take(3).enumerate() {
        f.queues[0]
            .ring
            .put_request(&req(BLKIF_OP_WRITE, i as u64, i as u64 * 8, Some(p)))
            .unwrap();
    }
    f.queues[0]
        .ring
        .put_request(&req(BLKIF_OP_WRITE_BARRIER, 10, 80, Some(&data[3])))
        .unwrap();
    f.queues[0]
        .ring
        .put_request(&req(BLKIF_OP_FLUSH_DISKCACHE, 11, 0, None))
        .unwrap();
    f.queues[0]
        .ring
        .put_request(&req(BLKIF_OP_READ, 12, 80, Some(&readback)))
        .unwrap();
    f.queues[0].ring.push();
    minios::platform::EventChannel::notify(&f.queues[0].port).unwrap();
    env.settle();
    let order: Vec<u64> = f
        .responses(0)
        .iter()
        .map(|r| {
            assert_eq!(r.status, BLKIF_RSP_OKAY, "{r:?}");
            r.id
        })
        .collect();
    assert_eq!(order.len(), 6);
    let pos = |id| order.iter().position(|&x| x == id).unwrap();
    assert!(
        (0..3).all(|i| pos(i) < pos(10)),
        "earlier writes complete before the barrier: {order:?}"
    );
    assert!(
        pos(10) < pos(11) && pos(11) < pos(12),
        "later requests after it: {order:?}"
    );
    assert!(readback.page().snapshot().iter().all(|&b| b == 0x13));
    assert_eq!(dom0.read(80 * 512, 4096), vec![0x13; 4096]);
    assert!(env.vbd(5, 51712, |v| v.stats().drains) >= 1);
}
