//! The device store: volumes on a block device the driver domain owns (in the unikernel a
//! passed-through virtio-blk; here a simulated device over a byte array that the test can
//! hold, fail and inspect), served to guests through the whole backend.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use blkback::backend::{Catalog, Options, VolumeSource};
use blkback::blkdd::BlkDd;
use blkback::config::DeviceKind;
use blkback::store::device::{DeviceStore, DeviceTask, HandleLimits, Shared, HANDLE_PARTS};
use common::*;
use std::collections::BTreeMap;

use minios::blockdev::{
    BlockDevice, BlockError, BlockInfo, BlockOp, BlockStatus, DiscardLimits, DmaSeg, OnComplete,
    SECTOR,
};
use minios::driver_domain::DriverDomain;
use minios::executor::StopReason;
use minios::host::{settle, DeviceSpec, HostDomain, World};
use minios::platform::{Access, GrantedPage, Grants, SharedMem};
use xen_abi::blkif::*;

const MIB: u64 = 1 << 20;
/// Requests the simulated device holds at once.
const SLOTS: usize = 8;

/// What the test sees and steers of the device.
#[derive(Default)]
struct Ctl {
    data: Vec<u8>,
    /// Queued requests: (id, op, the write's data).
    queued: Vec<(u64, BlockOp, Vec<u8>)>,
    /// Completions are withheld while set.
    hold: bool,
    /// Requests touching this sector fail with an I/O error.
    bad_sector: Option<u64>,
    /// The next `complete` reports the device broken.
    broken: bool,
    /// Every request as the device received it, and when it completed (in order).
    log: Vec<String>,
    max_in_flight: usize,
    flushes: u64,
    /// While completions are held: the time at which the driver gives up on what is queued
    /// (reported by `next_deadline`; at or after it, `complete` answers it `Timeout`), and
    /// the clock it reads.
    timeout_at: Option<(u64, World)>,
    /// The device takes reads and writes straight from the caller's memory (`DmaSeg`s).
    direct: bool,
    /// Each request's first sector (0 for flushes) and the device queue it was submitted to.
    on_queue: Vec<(u64, usize)>,
}

struct FakeDevice {
    ctl: Rc<RefCell<Ctl>>,
    info: BlockInfo,
    /// Direct requests' memory, by id, until they complete (the device's "DMA" target).
    segs: BTreeMap<u64, Vec<DmaSeg>>,
    /// Submission queues (room is counted over all of them).
    queues: usize,
    /// The queue `select_queue` chose.
    current: usize,
}

impl FakeDevice {
    fn record_queue(&self, op: &BlockOp) {
        let sector = match *op {
            BlockOp::Read { sector, .. }
            | BlockOp::Write { sector, .. }
            | BlockOp::Discard { sector, .. } => sector,
            BlockOp::Flush => 0,
        };
        self.ctl.borrow_mut().on_queue.push((sector, self.current));
    }
}

impl BlockDevice for FakeDevice {
    fn describe(&self) -> String {
        "fake-blk".into()
    }
    fn info(&self) -> BlockInfo {
        self.info
    }
    fn queues(&self) -> usize {
        self.queues
    }
    fn select_queue(&mut self, q: usize) {
        self.current = q % self.queues;
    }
    fn has_room(&self, ops: &[BlockOp]) -> bool {
        self.ctl.borrow().queued.len() + ops.len() <= SLOTS
    }
    fn submit(
        &mut self,
        id: u64,
        op: BlockOp,
        fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
    ) -> Result<(), BlockError> {
        let len = op.data_len();
        assert!(
            len <= self.info.max_transfer,
            "{op:?} exceeds the transfer limit"
        );
        if !self.has_room(&[op]) {
            return Err(BlockError::Full);
        }
        let mut data = Vec::new();
        if let BlockOp::Write { .. } = op {
            // Two buffers, as a driver with page-sized DMA buffers hands out.
            let mut a = vec![0u8; len.min(4096)];
            let mut b = vec![0u8; len - a.len()];
            if !fill(&mut [&mut a[..], &mut b[..]]) {
                return Err(BlockError::Aborted);
            }
            data = [a, b].concat();
        }
        self.record_queue(&op);
        let mut c = self.ctl.borrow_mut();
        c.log.push(format!("submit {op:?}"));
        c.queued.push((id, op, data));
        c.max_in_flight = c.max_in_flight.max(c.queued.len());
        Ok(())
    }
    fn direct_ok(&self, op: &BlockOp, segs: &[DmaSeg]) -> bool {
        let total: usize = segs.iter().map(|s| s.len).sum();
        self.ctl.borrow().direct
            && matches!(op, BlockOp::Read { .. } | BlockOp::Write { .. })
            && total == op.data_len()
            && segs.iter().all(|s| s.offset + s.len <= s.mem.size())
    }
    fn submit_direct(&mut self, id: u64, op: BlockOp, segs: &[DmaSeg]) -> Result<(), BlockError> {
        assert!(self.direct_ok(&op, segs), "{op:?} {segs:?} not accepted");
        if !self.has_room(&[op]) {
            return Err(BlockError::Full);
        }
        self.segs.insert(id, segs.to_vec());
        self.record_queue(&op);
        let mut c = self.ctl.borrow_mut();
        c.log.push(format!("submit direct {op:?}"));
        c.queued.push((id, op, Vec::new()));
        c.max_in_flight = c.max_in_flight.max(c.queued.len());
        Ok(())
    }
    fn kick(&mut self) -> Result<(), BlockError> {
        Ok(())
    }
    fn take_interrupt(&mut self) -> bool {
        true
    }
    fn complete(&mut self, each: &mut OnComplete<'_>) -> Result<usize, BlockError> {
        let mut c = self.ctl.borrow_mut();
        if c.broken {
            return Err(BlockError::Device(
                "the controller stopped answering".into(),
            ));
        }
        if c.hold {
            let expired = c
                .timeout_at
                .as_ref()
                .is_some_and(|(at, world)| world.now_ns() >= *at);
            if !expired {
                return Ok(0);
            }
            let queued = std::mem::take(&mut c.queued);
            for (id, op, _) in &queued {
                c.log.push(format!("timeout {op:?}"));
                self.segs.remove(id);
                each(*id, BlockStatus::Timeout, &[]);
            }
            return Ok(queued.len());
        }
        let queued = std::mem::take(&mut c.queued);
        let n = queued.len();
        // Out of order: the newest first.
        for (id, op, data) in queued.into_iter().rev() {
            let (sector, sectors) = match op {
                BlockOp::Read { sector, len } | BlockOp::Write { sector, len } => {
                    (sector, len as u64 / SECTOR)
                }
                BlockOp::Discard { sector, sectors } => (sector, u64::from(sectors)),
                BlockOp::Flush => (0, 0),
            };
            let bad = c
                .bad_sector
                .is_some_and(|b| b >= sector && b < sector + sectors);
            c.log.push(format!("complete {op:?}"));
            let at = (sector * SECTOR) as usize;
            let end = at + (sectors * SECTOR) as usize;
            let direct = self.segs.remove(&id);
            if bad {
                each(id, BlockStatus::IoError, &[]);
                continue;
            }
            match (op, direct) {
                // The device transfers to or from the caller's memory itself.
                (BlockOp::Read { .. }, Some(segs)) => {
                    let mut at = at;
                    for s in &segs {
                        s.mem.write(s.offset, &c.data[at..at + s.len]).unwrap();
                        at += s.len;
                    }
                    each(id, BlockStatus::Ok, &[]);
                }
                (BlockOp::Write { .. }, Some(segs)) => {
                    let mut at = at;
                    for s in &segs {
                        let mut buf = vec![0u8; s.len];
                        s.mem.read(s.offset, &mut buf).unwrap();
                        c.data[at..at + s.len].copy_from_slice(&buf);
                        at += s.len;
                    }
                    each(id, BlockStatus::Ok, &[]);
                }
                (BlockOp::Read { .. }, None) => {
                    let out = c.data[at..end].to_vec();
                    let (x, y) = out.split_at(out.len().min(4096));
                    each(id, BlockStatus::Ok, &[x, y]);
                }
                (BlockOp::Write { .. }, None) => {
                    c.data[at..end].copy_from_slice(&data);
                    each(id, BlockStatus::Ok, &[]);
                }
                (BlockOp::Discard { .. }, _) => {
                    c.data[at..end].fill(0);
                    each(id, BlockStatus::Ok, &[]);
                }
                (BlockOp::Flush, _) => {
                    c.flushes += 1;
                    each(id, BlockStatus::Ok, &[]);
                }
            }
        }
        Ok(n)
    }
    fn next_deadline(&self) -> Option<u64> {
        let c = self.ctl.borrow();
        match &c.timeout_at {
            Some((at, _)) if c.hold && !c.queued.is_empty() => Some(*at),
            _ => None,
        }
    }
}

fn device_info(discard: bool) -> BlockInfo {
    BlockInfo {
        sectors: 64 * MIB / SECTOR,
        block_size: 512,
        read_only: false,
        flush: true,
        discard: discard.then_some(DiscardLimits {
            max_sectors: 2048,
            alignment_sectors: 8,
        }),
        // Small, so that guest requests are split.
        max_transfer: 16 << 10,
    }
}

/// The driver domain with slices `a` (0+16M), `b` (16M+16M, 4 KiB sectors) and `c`
/// (32M+8M, read-only) of a 64 MiB simulated device.
fn setup(discard: bool) -> (Env, Rc<RefCell<Ctl>>, Shared) {
    setup_with(discard, Options::default())
}

/// [`setup`] with the backend's `options`.
fn setup_with(discard: bool, options: Options) -> (Env, Rc<RefCell<Ctl>>, Shared) {
    setup_device(device_info(discard), false, options)
}

/// [`setup_with`] on a device described by `info` that takes direct transfers if `direct`.
fn setup_device(
    info: BlockInfo,
    direct: bool,
    options: Options,
) -> (Env, Rc<RefCell<Ctl>>, Shared) {
    setup_queues(info, direct, options, 1)
}

/// [`setup_device`] on a device with `queues` submission queues.
fn setup_queues(
    info: BlockInfo,
    direct: bool,
    options: Options,
    queues: usize,
) -> (Env, Rc<RefCell<Ctl>>, Shared) {
    let ctl = Rc::new(RefCell::new(Ctl {
        data: vec![0; 64 * MIB as usize],
        direct,
        ..Ctl::default()
    }));
    let store = DeviceStore::new(Box::new(FakeDevice {
        ctl: ctl.clone(),
        info,
        segs: BTreeMap::new(),
        queues,
        current: 0,
    }));
    let mut catalog = Catalog::new();
    for (name, off, size, sector, ro) in [
        ("a", 0, 16 * MIB, 512, false),
        ("b", 16 * MIB, 16 * MIB, 4096, false),
        ("c", 32 * MIB, 8 * MIB, 512, true),
    ] {
        let slice = DeviceStore::slice(&store, name, off, size, sector, ro);
        catalog.add(name, Box::new(slice) as Box<dyn VolumeSource>);
    }
    let mut env = Env::with_catalog(catalog, options);
    env.exec.spawn(DeviceTask::new(store.clone())).unwrap();
    env.settle();
    (env, ctl, store)
}

/// Puts a write of `data` at `sector` on `f`'s ring without waiting; returns its id.
fn start_write(f: &mut Front, sector: u64, data: &[u8]) -> u64 {
    start_write_on(f, 0, sector, data)
}

/// [`start_write`] on `f`'s ring `ring`.
fn start_write_on(f: &mut Front, ring: usize, sector: u64, data: &[u8]) -> u64 {
    assert!(data.len() % 4096 == 0 && data.len() <= 11 * 4096);
    let mut req = BlkifRequest {
        operation: BLKIF_OP_WRITE,
        nr_segments: (data.len() / 4096) as u8,
        id: 1000 + sector,
        sector_number: sector,
        ..Default::default()
    };
    for (i, chunk) in data.chunks(4096).enumerate() {
        let g = f.dom.grant_page(DD, Access::ReadWrite).unwrap();
        g.write(0, chunk).unwrap();
        req.seg[i] = BlkifRequestSegment {
            gref: g.gref(),
            first_sect: 0,
            last_sect: 7,
        };
        std::mem::forget(g);
    }
    f.submit(ring, &slot_of(&req));
    req.id
}

#[test]
fn slices_map_onto_the_device_and_large_requests_are_split() {
    let (mut env, ctl, store) = setup(true);
    let mut fa = Front::attach(&mut env, 5, 51712, "a", FrontOpts::default());
    let mut fb = Front::attach(&mut env, 6, 51712, "b", FrontOpts::default());
    assert_eq!(env.be_key(&fb.dev, "sector-size").as_deref(), Some("4096"));
    let big = pattern(200 * 1024, 7);
    assert_eq!(fa.write(&mut env, 2048, &big), BLKIF_RSP_OKAY);
    let back = fa.read(&mut env, 2048, big.len());
    assert_eq!(back.status, BLKIF_RSP_OKAY);
    assert!(back.data == big, "read back what was written");
    assert!(ctl.borrow().data[MIB as usize..MIB as usize + big.len()] == big[..]);
    let small = pattern(8192, 9);
    assert_eq!(fb.write(&mut env, 8, &small), BLKIF_RSP_OKAY);
    let at = (16 * MIB + 4096) as usize;
    assert!(
        ctl.borrow().data[at..at + 8192] == small[..],
        "slice b starts at 16M"
    );
    assert_eq!(fb.read(&mut env, 8, 8192).data, small);
    // 200 KiB in 16 KiB device requests: 13 parts, each at its own sector.
    let parts = ctl
        .borrow()
        .log
        .iter()
        .filter(|l| l.starts_with("submit Write") && !l.contains("sector: 32776"))
        .count();
    assert_eq!(parts, 13);
    assert!(ctl.borrow().log.contains(&format!(
        "submit {:?}",
        BlockOp::Write {
            sector: 2048 + 12 * 32,
            len: 200 * 1024 - 12 * 16384
        }
    )));
    assert_eq!(store.borrow().in_flight(), 0);
    // Out of range and misaligned requests never reach the device.
    let before = ctl.borrow().log.len();
    assert_eq!(fa.read(&mut env, 32768 - 8, 8192).status, BLKIF_RSP_ERROR);
    assert_eq!(fb.read(&mut env, 1, 4096).status, BLKIF_RSP_ERROR);
    assert_eq!(ctl.borrow().log.len(), before);
}

#[test]
fn writes_and_flushes_are_acknowledged_only_after_the_device_completed_them() {
    let (mut env, ctl, _store) = setup(true);
    let mut f = Front::attach(&mut env, 5, 51712, "a", FrontOpts::default());
    assert_eq!(
        env.be_key(&f.dev, "feature-flush-cache").as_deref(),
        Some("1")
    );
    ctl.borrow_mut().hold = true;
    let data = pattern(8192, 3);
    let id = start_write(&mut f, 64, &data);
    env.settle();
    assert!(
        f.responses(0).is_empty(),
        "no answer before the device completed"
    );
    assert_eq!(ctl.borrow().queued.len(), 1);
    ctl.borrow_mut().hold = false;
    env.settle();
    let rsp = f.responses(0);
    assert_eq!(
        (rsp.len(), rsp[0].id, rsp[0].status),
        (1, id, BLKIF_RSP_OKAY)
    );
    assert!(ctl.borrow().data[64 * 512..64 * 512 + 8192] == data[..]);
    // A flush becomes the device's flush, answered only once it completed.
    ctl.borrow_mut().hold = true;
    f.submit(
        0,
        &slot_of(&BlkifRequest {
            operation: BLKIF_OP_FLUSH_DISKCACHE,
            id: 77,
            ..Default::default()
        }),
    );
    env.settle();
    assert!(f.responses(0).is_empty());
    assert_eq!(ctl.borrow().queued[0].1, BlockOp::Flush);
    ctl.borrow_mut().hold = false;
    env.settle();
    let rsp = f.responses(0);
    assert_eq!((rsp[0].id, rsp[0].status), (77, BLKIF_RSP_OKAY));
    assert_eq!(ctl.borrow().flushes, 1);
}

#[test]
fn a_request_the_device_never_answers_fails_at_its_timeout_without_an_interrupt() {
    // No counters: nothing else asks the executor to wake up.
    let options = Options {
        stats_ms: 0,
        ..Options::default()
    };
    let (mut env, ctl, store) = setup_with(true, options);
    let mut fa = Front::attach(&mut env, 5, 51712, "a", FrontOpts::default());
    let mut fb = Front::attach(&mut env, 6, 51712, "b", FrontOpts::default());
    let at = env.world.now_ns() + 30_000_000_000;
    {
        let mut c = ctl.borrow_mut();
        c.hold = true;
        c.timeout_at = Some((at, env.world.clone()));
    }
    let id = start_write(&mut fa, 64, &pattern(4096, 1));
    env.settle();
    assert!(fa.responses(0).is_empty());
    // The executor is told to come back at the timeout (nothing else would wake it: the
    // device raises no interrupt).
    let wake = env.exec.run_once();
    assert_eq!(
        wake,
        Some(at),
        "the device task asks to be woken at the timeout"
    );
    env.advance(29_000_000_000);
    assert!(fa.responses(0).is_empty(), "not before the timeout");
    env.advance(1_000_000_000);
    let rsp = fa.responses(0);
    assert_eq!(
        (rsp.len(), rsp[0].id, rsp[0].status),
        (1, id, BLKIF_RSP_ERROR),
        "the request fails at its timeout"
    );
    assert_eq!(store.borrow().stats.errors, 1);
    assert_eq!(store.borrow().stats.timeouts, 1);
    // The device goes on: the next requests (the other guest's too) are served.
    ctl.borrow_mut().hold = false;
    fb.verified_io(&mut env, 8, 7);
    fa.verified_io(&mut env, 128, 8);
}

#[test]
fn many_requests_from_two_guests_are_in_flight_at_once_and_fair() {
    let (mut env, ctl, store) = setup(true);
    let mut fa = Front::attach(&mut env, 5, 51712, "a", FrontOpts::default());
    let mut fb = Front::attach(&mut env, 6, 51712, "b", FrontOpts::default());
    ctl.borrow_mut().hold = true;
    // Guest a fills the device (8 slots) with 12 writes; guest b's one write must wait
    // its turn but not behind all of a's.
    let a_ids: Vec<u64> = (0..12)
        .map(|i| start_write(&mut fa, i * 8, &pattern(4096, i as u32)))
        .collect();
    env.settle();
    let b_id = start_write(&mut fb, 0, &pattern(4096, 99));
    env.settle();
    assert_eq!(ctl.borrow().queued.len(), SLOTS, "the device is kept full");
    assert!(store.borrow().waiting() >= 1);
    ctl.borrow_mut().hold = false;
    env.settle();
    let ra = fa.responses(0);
    let rb = fb.responses(0);
    assert_eq!(ra.len(), 12);
    assert!(ra
        .iter()
        .all(|r| r.status == BLKIF_RSP_OKAY && a_ids.contains(&r.id)));
    assert_eq!((rb[0].id, rb[0].status), (b_id, BLKIF_RSP_OKAY));
    assert_eq!(ctl.borrow().max_in_flight, SLOTS);
    // b's write went to the device before a's last ones (first come, first served).
    let log = ctl.borrow().log.clone();
    let pos = |needle: &str| log.iter().position(|l| l.contains(needle)).unwrap();
    let b_submit = pos("submit Write { sector: 32768,");
    let a_last = pos("submit Write { sector: 88,");
    assert!(b_submit < a_last, "{log:#?}");
    for i in 0..12u64 {
        let back = fa.read(&mut env, i * 8, 4096);
        assert_eq!(back.data, pattern(4096, i as u32));
    }
}

#[test]
fn a_guest_moving_large_requests_gets_no_more_of_the_device_in_bytes() {
    let (mut env, ctl, store) = setup(true);
    // 32 KiB per guest while the other has requests in flight: two of a's 16 KiB writes.
    store.borrow_mut().set_limits(HandleLimits {
        parts: HANDLE_PARTS,
        bytes: 32 << 10,
    });
    let mut fa = Front::attach(&mut env, 5, 51712, "a", FrontOpts::default());
    let mut fb = Front::attach(&mut env, 6, 51712, "b", FrontOpts::default());
    ctl.borrow_mut().hold = true;
    let b1 = start_write(&mut fb, 0, &pattern(4096, 50));
    env.settle();
    // a sends twelve 16 KiB writes (one device request each): it could fill the device's
    // free slots, but only 32 KiB of it goes while b's write is in flight.
    let a_ids: Vec<u64> = (0..12)
        .map(|i| start_write(&mut fa, i * 32, &pattern(16384, i as u32)))
        .collect();
    env.settle();
    assert_eq!(ctl.borrow().queued.len(), 3, "b's write and two of a's");
    assert!(store.borrow().stats.capped >= 1);
    // b's next small write goes to the device at once: a waiting for its share does not
    // hold it up.
    let b2 = start_write(&mut fb, 8, &pattern(4096, 51));
    env.settle();
    assert_eq!(ctl.borrow().queued.len(), 4);
    assert!(
        ctl.borrow()
            .queued
            .iter()
            .any(|(_, op, _)| matches!(op, BlockOp::Write { sector, .. } if *sector == 32768 + 8)),
        "{:?}",
        ctl.borrow().log
    );
    ctl.borrow_mut().hold = false;
    env.settle();
    let ra = fa.responses(0);
    let rb = fb.responses(0);
    assert_eq!(ra.len(), 12);
    assert!(ra
        .iter()
        .all(|r| r.status == BLKIF_RSP_OKAY && a_ids.contains(&r.id)));
    assert_eq!(rb.len(), 2);
    assert!(rb
        .iter()
        .all(|r| r.status == BLKIF_RSP_OKAY && (r.id == b1 || r.id == b2)));
    for i in 0..12u64 {
        assert_eq!(
            fa.read(&mut env, i * 32, 16384).data,
            pattern(16384, i as u32)
        );
    }
    assert_eq!(fb.read(&mut env, 0, 4096).data, pattern(4096, 50));
    assert_eq!(fb.read(&mut env, 8, 4096).data, pattern(4096, 51));
}

#[test]
fn device_errors_fail_only_the_requests_concerned() {
    let (mut env, ctl, _store) = setup(true);
    let mut f = Front::attach(&mut env, 5, 51712, "a", FrontOpts::default());
    ctl.borrow_mut().bad_sector = Some(100);
    // 64 KiB over sectors 64..192 in four parts: the one with sector 100 fails.
    let data = pattern(65536, 1);
    assert_eq!(f.write(&mut env, 64, &data), BLKIF_RSP_ERROR);
    assert_eq!(f.read(&mut env, 96, 4096).status, BLKIF_RSP_ERROR);
    // Elsewhere the device works.
    f.verified_io(&mut env, 1024, 5);
    env.advance(2_000_000_000);
    assert_eq!(env.counter(&f.dev, "err_store"), Some(2));
    assert_eq!(env.counter(&f.dev, "errors"), Some(2));
}

#[test]
fn a_broken_device_fails_what_is_in_flight_and_everything_after() {
    let (mut env, ctl, store) = setup(true);
    let mut f = Front::attach(&mut env, 5, 51712, "a", FrontOpts::default());
    ctl.borrow_mut().hold = true;
    let ids: Vec<u64> = (0..3)
        .map(|i| start_write(&mut f, i * 8, &pattern(4096, 1)))
        .collect();
    env.settle();
    assert!(f.responses(0).is_empty());
    ctl.borrow_mut().broken = true;
    env.settle();
    let rsp = f.responses(0);
    assert_eq!(rsp.len(), 3, "every request answered");
    assert!(rsp
        .iter()
        .all(|r| r.status == BLKIF_RSP_ERROR && ids.contains(&r.id)));
    assert!(store
        .borrow()
        .failed()
        .unwrap()
        .contains("stopped answering"));
    assert_eq!(f.read(&mut env, 0, 4096).status, BLKIF_RSP_ERROR);
    assert_eq!(f.flush(&mut env), BLKIF_RSP_ERROR);
}

#[test]
fn discard_reaches_the_device_when_it_offers_one() {
    let (mut env, ctl, _store) = setup(true);
    let mut f = Front::attach(&mut env, 5, 51712, "a", FrontOpts::default());
    assert_eq!(env.be_key(&f.dev, "feature-discard").as_deref(), Some("1"));
    assert_eq!(env.be_key(&f.dev, "discard-secure").as_deref(), Some("0"));
    assert_eq!(
        env.be_key(&f.dev, "discard-granularity").as_deref(),
        Some("4096")
    );
    let data = pattern(65536, 4);
    assert_eq!(f.write(&mut env, 0, &data), BLKIF_RSP_OKAY);
    // 3 MiB: more than the device's 2048 sectors per discard, so split.
    assert_eq!(f.discard(&mut env, 0, 6144, false), BLKIF_RSP_OKAY);
    assert!(ctl.borrow().data[..65536].iter().all(|&b| b == 0));
    let discards = ctl
        .borrow()
        .log
        .iter()
        .filter(|l| l.starts_with("submit Discard"))
        .count();
    assert_eq!(discards, 3);
    assert_eq!(
        f.discard(&mut env, 0, 8, true),
        BLKIF_RSP_EOPNOTSUPP,
        "no secure erase"
    );
    // The read-only slice refuses writes and offers no discard.
    let mut c = Front::attach(&mut env, 7, 51712, "c", FrontOpts::default());
    assert_eq!(env.be_key(&c.dev, "feature-discard").as_deref(), Some("0"));
    assert_eq!(c.write(&mut env, 0, &pattern(4096, 1)), BLKIF_RSP_ERROR);
    assert_eq!(c.read(&mut env, 0, 4096).status, BLKIF_RSP_OKAY);
}

#[test]
fn without_device_discard_none_is_offered() {
    let (mut env, ctl, _store) = setup(false);
    let mut f = Front::attach(&mut env, 5, 51712, "a", FrontOpts::default());
    assert_eq!(env.be_key(&f.dev, "feature-discard").as_deref(), Some("0"));
    assert_eq!(f.discard(&mut env, 0, 8, false), BLKIF_RSP_EOPNOTSUPP);
    assert!(!ctl.borrow().log.iter().any(|l| l.contains("Discard")));
}

#[test]
fn the_driver_domain_boots_with_a_device_and_flushes_it_at_the_stop() {
    use minios::xenstore::Store;
    let ctl = Rc::new(RefCell::new(Ctl {
        data: vec![0; 64 * MIB as usize],
        ..Ctl::default()
    }));
    let world = World::new();
    let dd = world.create_domain(DD, "blkdd");
    world.create_domain(5, "guest");
    let dev_ctl = ctl.clone();
    let mut started = blkback::blkdd::boot_with_device(
        dd.clone(),
        Some(dd.xenstore()),
        "blkback.vol=all:virtio:all",
        Box::new(move |_, _| {
            Ok(Box::new(FakeDevice {
                ctl: dev_ctl,
                info: device_info(true),
                segs: BTreeMap::new(),
                queues: 1,
                current: 0,
            }) as Box<dyn BlockDevice>)
        }),
    )
    .unwrap();
    assert_eq!(
        world
            .read_str(&format!("/local/domain/{DD}/data/ready"))
            .as_deref(),
        Some("1")
    );
    let vbd = DeviceSpec::new("vbd", DD, 5, 51712).backend_key("params", "all");
    world.add_device(&vbd);
    settle(&world, &mut [&mut started.exec]);
    let key = |k: &str| world.read_str(&format!("{}/{k}", vbd.backend_path()));
    assert_eq!(key("sectors"), Some((64 * MIB / 512).to_string()));
    world
        .domain(0)
        .xenstore()
        .write(&format!("/local/domain/{DD}/control/shutdown"), b"poweroff")
        .unwrap();
    settle(&world, &mut [&mut started.exec]);
    assert_eq!(started.stop(StopReason::Poweroff), StopReason::Poweroff);
    assert_eq!(ctl.borrow().flushes, 1, "flushed at the stop");
}

#[test]
fn device_configurations_that_cannot_work_are_refused() {
    for (cmdline, want) in [
        (
            "blkback.vol=a:virtio:32M+64M",
            "volume \"a\" (32M+64M) does not fit on the 64M device",
        ),
        (
            "blkback.vol=a:virtio:0+8M blkback.vol=b:virtio:4M+8M",
            "device slices overlap: a (0+8M) and b (4M+8M)",
        ),
    ] {
        let world = World::new();
        let dd = world.create_domain(DD, "blkdd");
        let err = blkback::blkdd::boot_with_device(
            dd.clone(),
            Some(dd.xenstore()),
            cmdline,
            Box::new(|_, _| {
                Ok(Box::new(FakeDevice {
                    ctl: Rc::new(RefCell::new(Ctl::default())),
                    info: device_info(false),
                    segs: BTreeMap::new(),
                    queues: 1,
                    current: 0,
                }) as Box<dyn BlockDevice>)
            }),
        )
        .err()
        .expect("refused");
        assert_eq!(err.0, want, "{cmdline}");
    }
    let world = World::new();
    let dd = world.create_domain(DD, "blkdd");
    let err = blkback::blkdd::boot(dd.clone(), Some(dd.xenstore()), "blkback.vol=a:virtio:all")
        .err()
        .expect("refused");
    assert_eq!(err.0, "virtio device: this build has no device drivers");
}

#[test]
fn nvme_volumes_ask_main_for_an_nvme_controller() {
    let world = World::new();
    let dd = world.create_domain(DD, "blkdd");
    world.create_domain(5, "guest");
    let asked = Rc::new(RefCell::new(Vec::new()));
    let log = asked.clone();
    let mut started = blkback::blkdd::boot_with_device(
        dd.clone(),
        Some(dd.xenstore()),
        "blkback.vol=a:nvme:0+16M blkback.vol=b:nvme:16M+16M:4k",
        Box::new(move |_, kind| {
            log.borrow_mut().push(kind);
            Ok(Box::new(FakeDevice {
                ctl: Rc::new(RefCell::new(Ctl {
                    data: vec![0; 64 * MIB as usize],
                    ..Ctl::default()
                })),
                info: device_info(true),
                segs: BTreeMap::new(),
                queues: 1,
                current: 0,
            }) as Box<dyn BlockDevice>)
        }),
    )
    .unwrap();
    assert_eq!(*asked.borrow(), [DeviceKind::Nvme]);
    let vbd = DeviceSpec::new("vbd", DD, 5, 51712).backend_key("params", "b");
    world.add_device(&vbd);
    settle(&world, &mut [&mut started.exec]);
    let key = |k: &str| world.read_str(&format!("{}/{k}", vbd.backend_path()));
    assert_eq!(key("sectors"), Some((16 * MIB / 512).to_string()));
    assert_eq!(key("sector-size").as_deref(), Some("4096"));

    // Without a controller the start is refused, naming the kind.
    let world = World::new();
    let dd = world.create_domain(DD, "blkdd");
    let err = blkback::blkdd::boot_with_device(
        dd.clone(),
        Some(dd.xenstore()),
        "blkback.vol=a:nvme:all",
        Box::new(|_, _| {
            Err("none of the 1 PCI function(s) given to this domain is an NVMe controller".into())
        }),
    )
    .err()
    .expect("refused");
    assert_eq!(
        err.0,
        "nvme device: none of the 1 PCI function(s) given to this domain is an NVMe controller"
    );
}

#[test]
fn a_request_larger_than_the_room_left_is_submitted_as_room_frees_up() {
    let (mut env, ctl, store) = setup(true);
    let mut fa = Front::attach(&mut env, 5, 51712, "a", FrontOpts::default());
    let mut fb = Front::attach(&mut env, 6, 51712, "b", FrontOpts::default());
    ctl.borrow_mut().hold = true;
    for i in 0..6 {
        start_write(&mut fb, i * 8, &pattern(4096, 50 + i as u32));
    }
    env.settle();
    assert_eq!(ctl.borrow().queued.len(), 6);
    // 40 KiB = three 16 KiB parts; two slots are left.
    let big = pattern(40960, 8);
    let id = start_write(&mut fa, 256, &big);
    env.settle();
    assert_eq!(ctl.borrow().queued.len(), SLOTS, "two parts queued at once");
    ctl.borrow_mut().hold = false;
    env.settle();
    let rsp = fa.responses(0);
    assert_eq!((rsp[0].id, rsp[0].status), (id, BLKIF_RSP_OKAY));
    assert_eq!(fb.responses(0).len(), 6);
    assert!(ctl.borrow().data[256 * 512..256 * 512 + 40960] == big[..]);
    assert_eq!(store.borrow().in_flight(), 0);
    assert_eq!(fa.read(&mut env, 256, 40960).data, big);
}

fn persistent() -> FrontOpts {
    FrontOpts {
        persistent: true,
        ..FrontOpts::default()
    }
}

fn count(ctl: &Rc<RefCell<Ctl>>, prefix: &str) -> usize {
    ctl.borrow()
        .log
        .iter()
        .filter(|l| l.starts_with(prefix))
        .count()
}

#[test]
fn reads_and_writes_move_straight_between_the_device_and_persistently_mapped_pages() {
    let (mut env, ctl, store) = setup_device(device_info(false), true, Options::default());
    let mut fa = Front::attach(&mut env, 5, 51712, "a", persistent());
    // 40 KiB: three device requests (16 KiB limit), each over the guest's own pages.
    let data = pattern(40960, 21);
    assert_eq!(fa.write(&mut env, 64, &data), BLKIF_RSP_OKAY);
    assert!(ctl.borrow().data[64 * 512..64 * 512 + 40960] == data[..]);
    assert_eq!(count(&ctl, "submit direct Write"), 3);
    // The read's pages are zeroed by the guest first: what it finds, the device put there
    // (a direct read hands the store no data to copy).
    assert_eq!(fa.read(&mut env, 64, 40960).data, data);
    assert_eq!(count(&ctl, "submit direct Read"), 3);
    assert_eq!(count(&ctl, "submit Read"), 0);
    assert_eq!(count(&ctl, "submit Write"), 0);
    let st = store.borrow().stats;
    assert_eq!((st.direct, st.direct_bytes, st.copied), (6, 2 * 40960, 0));
    // Grants that are not kept mapped (no persistent grants) go through the driver's
    // buffers, with the same result.
    let mut fb = Front::attach(&mut env, 6, 51712, "b", FrontOpts::default());
    let data = pattern(8192, 22);
    assert_eq!(fb.write(&mut env, 16, &data), BLKIF_RSP_OKAY);
    assert_eq!(fb.read(&mut env, 16, 8192).data, data);
    assert_eq!(store.borrow().stats.copied, 2);
    assert_eq!(store.borrow().stats.direct, 6);
}

#[test]
fn pieces_that_are_not_whole_device_blocks_are_copied_not_transferred_directly() {
    let mut info = device_info(false);
    info.block_size = 4096;
    let (mut env, ctl, store) = setup_device(info, true, Options::default());
    // Slice a has 512-byte sectors over the 4096-byte blocks: a 4 KiB request at a block
    // boundary made of two half pages fits the device, but its pieces are not blocks.
    let mut fa = Front::attach(&mut env, 5, 51712, "a", persistent());
    let data = pattern(4096, 23);
    let mut req = BlkifRequest {
        operation: BLKIF_OP_WRITE,
        nr_segments: 2,
        id: 4242,
        sector_number: 8,
        ..Default::default()
    };
    let mut pages = Vec::new();
    for (i, (first, last)) in [(0u8, 3u8), (4, 7)].into_iter().enumerate() {
        let g = fa.dom.grant_page(DD, Access::ReadWrite).unwrap();
        g.write(usize::from(first) * 512, &data[i * 2048..(i + 1) * 2048])
            .unwrap();
        req.seg[i] = BlkifRequestSegment {
            gref: g.gref(),
            first_sect: first,
            last_sect: last,
        };
        pages.push(g);
    }
    fa.submit(0, &slot_of(&req));
    env.settle();
    let rsp = fa.responses(0);
    assert_eq!((rsp[0].id, rsp[0].status), (4242, BLKIF_RSP_OKAY));
    assert!(ctl.borrow().data[4096..8192] == data[..]);
    assert_eq!(count(&ctl, "submit direct"), 0, "{:?}", ctl.borrow().log);
    assert_eq!(store.borrow().stats.copied, 1);
    // Whole pages of the same guest go direct.
    assert_eq!(fa.read(&mut env, 8, 4096).data, data);
    assert_eq!(count(&ctl, "submit direct Read"), 1);
}

#[test]
fn a_direct_request_keeps_the_guest_pages_mapped_until_the_device_answered() {
    let (mut env, ctl, store) = setup_device(device_info(false), true, Options::default());
    let mut fa = Front::attach(&mut env, 5, 51712, "a", persistent());
    ctl.borrow_mut().hold = true;
    let data = pattern(8192, 24);
    start_write(&mut fa, 64, &data);
    env.settle();
    assert_eq!(count(&ctl, "submit direct Write"), 1);
    // The guest goes away while the device still reads its pages: the queue and its grant
    // cache are gone, but the two data pages stay mapped for the device.
    fa.state("5");
    env.settle();
    fa.state("6");
    env.settle();
    assert_eq!(env.world.live_mappings(DD), 2, "only the request's pages");
    ctl.borrow_mut().hold = false;
    env.settle();
    assert_eq!(store.borrow().in_flight(), 0);
    assert!(ctl.borrow().data[64 * 512..64 * 512 + 8192] == data[..]);
    assert_eq!(env.world.live_mappings(DD), 0, "unmapped once answered");
}

#[test]
fn a_direct_request_that_timed_out_keeps_its_pages_mapped_for_good() {
    let (mut env, ctl, store) = setup_device(device_info(false), true, Options::default());
    let mut fa = Front::attach(&mut env, 5, 51712, "a", persistent());
    let at = env.world.now_ns() + 30_000_000_000;
    {
        let mut c = ctl.borrow_mut();
        c.hold = true;
        c.timeout_at = Some((at, env.world.clone()));
    }
    let id = start_write(&mut fa, 64, &pattern(4096, 25));
    env.settle();
    env.advance(30_000_000_000);
    let rsp = fa.responses(0);
    assert_eq!((rsp[0].id, rsp[0].status), (id, BLKIF_RSP_ERROR));
    fa.state("5");
    env.settle();
    fa.state("6");
    env.settle();
    // The device may still read the page of the request it never answered.
    assert_eq!(env.world.live_mappings(DD), 1);
    assert_eq!(store.borrow().stats.errors, 1);
}

#[test]
fn each_guest_ring_submits_to_a_device_queue_of_its_own() {
    let (mut env, ctl, store) = setup_queues(device_info(false), false, Options::default(), 4);
    let two = FrontOpts {
        queues: 2,
        ..FrontOpts::default()
    };
    let mut fa = Front::attach(&mut env, 5, 51712, "a", two);
    let mut fb = Front::attach(&mut env, 6, 51712, "b", FrontOpts::default());
    let mut fc = Front::attach(&mut env, 7, 51712, "c", FrontOpts::default());
    assert_eq!(fa.queues.len(), 2);
    // First requests in the order: a's ring 0, b's ring 0, a's ring 1: queues 0, 1, 2.
    // (Slice b starts at sector 32768.)
    start_write_on(&mut fa, 0, 0, &pattern(4096, 1));
    env.settle();
    start_write_on(&mut fb, 0, 0, &pattern(4096, 2));
    env.settle();
    start_write_on(&mut fa, 1, 8, &pattern(4096, 3));
    env.settle();
    // Each ring keeps its queue.
    start_write_on(&mut fa, 0, 16, &pattern(8192, 4));
    start_write_on(&mut fa, 1, 32, &pattern(4096, 5));
    start_write_on(&mut fb, 0, 8, &pattern(4096, 6));
    env.settle();
    assert_eq!(fa.responses(0).len(), 2);
    assert_eq!(fa.responses(1).len(), 2);
    assert_eq!(fb.responses(0).len(), 2);
    let on_queue = ctl.borrow().on_queue.clone();
    assert_eq!(
        on_queue,
        [
            (0, 0),
            (32768, 1),
            (8, 2),
            // 8 KiB over a 16 KiB transfer limit: one request.
            (16, 0),
            (32, 2),
            (32776, 1)
        ]
    );
    // The fourth ring (guest c's, on the read-only slice at sector 65536) takes queue 3.
    let back = fc.read(&mut env, 0, 4096);
    assert_eq!(back.data, vec![0; 4096]);
    assert_eq!(ctl.borrow().on_queue.last(), Some(&(65536, 3)));
    let st = store.borrow().stats;
    assert_eq!(st.queues, 4);
    assert_eq!(&st.per_queue[..5], &[2, 2, 2, 1, 0]);
    // The data landed where each guest put it.
    assert_eq!(fa.read(&mut env, 8, 4096).data, pattern(4096, 3));
    assert_eq!(fb.read(&mut env, 8, 4096).data, pattern(4096, 6));
}

#[test]
fn a_device_with_one_queue_gets_every_ring_on_it() {
    let (mut env, ctl, store) = setup_queues(device_info(false), false, Options::default(), 1);
    let two = FrontOpts {
        queues: 2,
        ..FrontOpts::default()
    };
    let mut fa = Front::attach(&mut env, 5, 51712, "a", two);
    let mut fb = Front::attach(&mut env, 6, 51712, "b", FrontOpts::default());
    start_write_on(&mut fa, 0, 0, &pattern(4096, 1));
    start_write_on(&mut fa, 1, 8, &pattern(4096, 2));
    start_write_on(&mut fb, 0, 0, &pattern(4096, 3));
    env.settle();
    assert!(ctl.borrow().on_queue.iter().all(|&(_, q)| q == 0));
    let st = store.borrow().stats;
    assert_eq!((st.queues, st.per_queue[0], st.per_queue[1]), (1, 3, 0));
}

/// The driver domain booted as `main` boots it (`blkdd::boot_with_device`) on a simulated
/// device with `queues` submission queues (taking direct transfers), as an [`Env`] the
/// test's frontends run against, and its state for the stop.
fn boot_device(cmdline: &str, queues: usize) -> (Env, Rc<RefCell<Ctl>>, BlkDd<HostDomain>) {
    let ctl = Rc::new(RefCell::new(Ctl {
        data: vec![0; 64 * MIB as usize],
        direct: true,
        ..Ctl::default()
    }));
    let world = World::new();
    let dd = world.create_domain(DD, "blkdd");
    let dev_ctl = ctl.clone();
    let started = blkback::blkdd::boot_with_device(
        dd.clone(),
        Some(dd.xenstore()),
        cmdline,
        Box::new(move |_, _| {
            Ok(Box::new(FakeDevice {
                ctl: dev_ctl,
                info: device_info(true),
                segs: BTreeMap::new(),
                queues,
                current: 0,
            }) as Box<dyn BlockDevice>)
        }),
    )
    .unwrap();
    let mut env = Env {
        world,
        exec: started.exec,
        backend: started.domain.backend.clone(),
        others: Vec::new(),
    };
    env.settle();
    (env, ctl, started.domain)
}

/// `data/status/<key>` of the driver domain.
fn status(env: &Env, key: &str) -> Option<u64> {
    env.world
        .read_str(&format!("/local/domain/{DD}/data/status/{key}"))
        .map(|v| v.parse().expect("a number"))
}

const SECOND: u64 = 1_000_000_000;

#[test]
fn the_device_counters_are_published_in_data_status() {
    let (mut env, ctl, mut blkdd) =
        boot_device("blkback.vol=a:virtio:0+16M blkback.vol=b:virtio:16M+16M", 2);
    // Guest 5 keeps its grants mapped (direct transfers) and takes queue 0 with its first
    // request; guest 6's grants are copied, on queue 1.
    let mut fa = Front::attach(&mut env, 5, 51712, "a", persistent());
    let mut fb = Front::attach(&mut env, 6, 51712, "b", FrontOpts::default());
    let zeros = [
        "device-requests",
        "device-flushes",
        "device-discards",
        "device-errors",
        "device-timeouts",
        "device-busy",
        "device-capped",
        "device-max-in-flight",
        "device-direct",
        "device-direct-kib",
        "device-copied",
        "device-queue-0-requests",
        "device-queue-1-requests",
    ];
    for key in zeros {
        assert_eq!(status(&env, key), Some(0), "{key} at start");
    }
    assert_eq!(status(&env, "device-queues"), Some(2));
    assert_eq!(status(&env, "device-queue-2-requests"), None, "two queues");
    // 40 KiB written and read back: three 16 KiB-at-most device requests each, direct.
    let data = pattern(40960, 31);
    assert_eq!(fa.write(&mut env, 64, &data), BLKIF_RSP_OKAY);
    assert_eq!(fa.read(&mut env, 64, 40960).data, data);
    // 8 KiB written and read back (one request each, copied), a flush, a 3 MiB discard
    // (three device requests of at most 2048 sectors), and a write the device fails.
    let data = pattern(8192, 32);
    assert_eq!(fb.write(&mut env, 0, &data), BLKIF_RSP_OKAY);
    assert_eq!(fb.read(&mut env, 0, 8192).data, data);
    assert_eq!(fb.flush(&mut env), BLKIF_RSP_OKAY);
    assert_eq!(fb.discard(&mut env, 0, 6144, false), BLKIF_RSP_OKAY);
    ctl.borrow_mut().bad_sector = Some(32768 + 1024);
    assert_eq!(
        fb.write(&mut env, 1024, &pattern(4096, 33)),
        BLKIF_RSP_ERROR
    );
    ctl.borrow_mut().bad_sector = None;
    // The device full: guest 6's ten 4 KiB writes, eight on the device, the ninth staged
    // as the backlog, the tenth finding no room.
    ctl.borrow_mut().hold = true;
    for i in 0..10 {
        start_write(&mut fb, 2048 + i * 8, &pattern(4096, 40 + i as u32));
    }
    env.settle();
    ctl.borrow_mut().hold = false;
    env.settle();
    assert_eq!(fb.responses(0).len(), 10);
    assert_eq!(
        status(&env, "device-requests"),
        Some(0),
        "at most every stats_ms"
    );
    env.advance(SECOND);
    let want = [
        ("device-requests", 23),
        ("device-flushes", 1),
        ("device-discards", 3),
        ("device-errors", 1),
        ("device-timeouts", 0),
        ("device-max-in-flight", 8),
        ("device-direct", 6),
        ("device-direct-kib", 80),
        ("device-copied", 13),
        ("device-queues", 2),
        ("device-queue-0-requests", 6),
        ("device-queue-1-requests", 17),
    ];
    for (key, value) in want {
        assert_eq!(status(&env, key), Some(value), "{key}");
    }
    // How often the tenth write was tried before room freed up is the queue's business:
    // at least once, and what the store counted.
    let busy = blkdd.device.as_ref().unwrap().borrow().stats.busy;
    assert!(busy >= 1);
    assert_eq!(status(&env, "device-busy"), Some(busy));
    assert_eq!(
        status(&env, "device-capped"),
        Some(0),
        "one guest at a time"
    );
    // The stop's flush is in the final values, published at once.
    blkdd.stop(&mut env.exec, StopReason::Poweroff);
    assert_eq!(ctl.borrow().flushes, 2);
    assert_eq!(status(&env, "device-requests"), Some(24));
    assert_eq!(status(&env, "device-flushes"), Some(2));
}

#[test]
fn a_request_the_device_never_answers_is_counted_in_device_timeouts() {
    let (mut env, ctl, mut blkdd) = boot_device("blkback.vol=a:virtio:0+16M", 1);
    let mut f = Front::attach(&mut env, 5, 51712, "a", FrontOpts::default());
    f.verified_io(&mut env, 8, 1);
    let at = env.world.now_ns() + 30_000_000_000;
    {
        let mut c = ctl.borrow_mut();
        c.hold = true;
        c.timeout_at = Some((at, env.world.clone()));
    }
    let id = start_write(&mut f, 64, &pattern(4096, 2));
    env.advance(29 * SECOND);
    assert!(f.responses(0).is_empty(), "not before the timeout");
    assert_eq!(status(&env, "device-timeouts"), Some(0));
    env.advance(SECOND);
    let rsp = f.responses(0);
    assert_eq!(
        (rsp.len(), rsp[0].id, rsp[0].status),
        (1, id, BLKIF_RSP_ERROR),
        "the guest gets an error"
    );
    assert_eq!(status(&env, "device-timeouts"), Some(1));
    assert_eq!(
        status(&env, "device-errors"),
        Some(1),
        "a timeout is an error"
    );
    assert_eq!(env.counter(&f.dev, "err_store"), Some(1));
    // An I/O error is an error but no timeout.
    {
        let mut c = ctl.borrow_mut();
        c.hold = false;
        c.bad_sector = Some(128);
    }
    assert_eq!(f.write(&mut env, 128, &pattern(4096, 3)), BLKIF_RSP_ERROR);
    env.advance(SECOND);
    assert_eq!(status(&env, "device-errors"), Some(2));
    assert_eq!(status(&env, "device-timeouts"), Some(1));
    blkdd.stop(&mut env.exec, StopReason::Poweroff);
    assert_eq!(status(&env, "device-timeouts"), Some(1), "the final values");
}

#[test]
fn nothing_is_published_in_data_status_with_stats_ms_0() {
    let (mut env, _ctl, mut blkdd) = boot_device("blkback.vol=a:virtio:all blkback.stats_ms=0", 1);
    let mut f = Front::attach(&mut env, 5, 51712, "a", FrontOpts::default());
    f.verified_io(&mut env, 8, 1);
    env.advance(SECOND);
    blkdd.stop(&mut env.exec, StopReason::Poweroff);
    assert!(!env.world.exists(&format!("/local/domain/{DD}/data/status")));
}
