//! The blkif backend against a well-behaved frontend: handshake keys, every operation, ring
//! shapes (multi-page, multi-queue, indirect), persistent grants, sector sizes, read-only
//! volumes, ordering and fairness.

mod common;

use blkback::backend::Options;
use common::*;
use minios::platform::{EventChannel, GrantedPage, Grants};
use xen_abi::blkif::*;

const MIB: u64 = 1 << 20;

#[test]
fn handshake_publishes_features_and_disk() {
    let mut env = Env::new(&[Vol::new("vol1", 16 * MIB)]);
    let f = Front::add(&mut env, 5, 51712, "vol1", FrontOpts::default());
    let key = |k: &str| env.be_key(&f.dev, k);
    assert_eq!(key("state").as_deref(), Some("2"));
    assert_eq!(key("feature-max-indirect-segments").as_deref(), Some("256"));
    assert_eq!(key("multi-queue-max-queues").as_deref(), Some("4"));
    assert_eq!(key("max-ring-page-order").as_deref(), Some("4"));
    assert_eq!(key("sectors").as_deref(), Some("32768"));
    assert_eq!(key("sector-size").as_deref(), Some("512"));
    assert_eq!(key("info").as_deref(), Some("0"));
    assert_eq!(key("feature-flush-cache").as_deref(), Some("1"));
    assert_eq!(key("feature-barrier").as_deref(), Some("1"));
    assert_eq!(key("feature-discard").as_deref(), Some("1"));
    assert_eq!(key("discard-granularity").as_deref(), Some("512"));
    assert_eq!(key("feature-persistent").as_deref(), Some("1"));
    assert_eq!(key("hotplug-status").as_deref(), Some("connected"));
    assert!(key("physical-device").is_some());
}

#[test]
fn unknown_volume_fails_the_device_with_a_reason() {
    let mut env = Env::new(&[Vol::new("vol1", MIB), Vol::new("vol2", MIB)]);
    let f = Front::add(&mut env, 5, 51712, "nope", FrontOpts::default());
    let err = env.error_node(&f.dev).expect("error node");
    assert!(
        err.contains("\"nope\"") && err.contains("vol1, vol2"),
        "{err}"
    );
    assert_eq!(env.be_key(&f.dev, "state").as_deref(), Some("5"));
}

fn round_trip(opts: FrontOpts) {
    let mut env = Env::new(&[Vol::new("vol1", 16 * MIB)]);
    let mut f = Front::attach(&mut env, 5, 51712, "vol1", opts);
    // direct: 1 sector, 1 page, 11 pages; indirect: 12 pages and 256 pages (1 MiB).
    for (i, len) in [512usize, 4096, 11 * 4096, 12 * 4096, 256 * 4096]
        .into_iter()
        .enumerate()
    {
        for q in 0..opts.queues as usize {
            let data = pattern(len, (i * 10 + q) as u32);
            let sector = (i as u64 * 4096) + q as u64 * 2048;
            let w = f.rw(&mut env, q, BLKIF_OP_WRITE, sector, &data);
            assert_eq!(w.status, BLKIF_RSP_OKAY, "write {len} on queue {q}");
            let r = f.rw(&mut env, q, BLKIF_OP_READ, sector, &vec![0; len]);
            assert_eq!(r.status, BLKIF_RSP_OKAY);
            assert!(r.data == data, "read back {len} bytes on queue {q}");
        }
    }
    let persistent = env.vbd(5, 51712, |v| v.persistent_grants());
    assert_eq!(
        persistent > 0,
        opts.persistent,
        "persistent grants {persistent}"
    );
    // Closing unmaps everything.
    f.state("5");
    env.settle();
    f.state("6");
    env.settle();
    assert_eq!(env.world.live_mappings(DD), 0);
    assert_eq!(env.world.open_ports(DD), 0);
}

#[test]
fn io_with_grant_copy() {
    round_trip(FrontOpts::default());
}

#[test]
fn io_with_persistent_grants() {
    round_trip(FrontOpts {
        persistent: true,
        ..FrontOpts::default()
    });
}

#[test]
fn io_on_multi_page_rings() {
    round_trip(FrontOpts {
        order: Some(2),
        ..FrontOpts::default()
    });
    round_trip(FrontOpts {
        order: Some(0),
        ..FrontOpts::default()
    });
}

#[test]
fn io_on_four_queues() {
    let opts = FrontOpts {
        queues: 4,
        order: Some(1),
        persistent: true,
        ..FrontOpts::default()
    };
    round_trip(opts);
    let mut env = Env::new(&[Vol::new("vol1", 16 * MIB)]);
    let f = Front::attach(&mut env, 5, 51712, "vol1", opts);
    assert_eq!(env.vbd(5, 51712, |v| (v.queues(), v.ring_size())), (4, 64));
    drop(f);
}

#[test]
fn a_full_ring_is_served() {
    let mut env = Env::new(&[Vol::new("vol1", 16 * MIB)]);
    let mut f = Front::attach(&mut env, 5, 51712, "vol1", FrontOpts::default());
    let page = f
        .dom
        .grant_page(DD, minios::platform::Access::ReadWrite)
        .unwrap();
    let gref = page.gref();
    for id in 0..32u64 {
        let mut req = BlkifRequest {
            operation: BLKIF_OP_READ,
            nr_segments: 1,
            id,
            sector_number: id * 8,
            ..Default::default()
        };
        req.seg[0] = BlkifRequestSegment {
            gref,
            first_sect: 0,
            last_sect: 7,
        };
        f.queues[0].ring.put_request(&slot_of(&req)).unwrap();
    }
    f.queues[0].ring.push();
    f.queues[0].port.notify().unwrap();
    env.settle();
    let rsp = f.responses(0);
    assert_eq!(rsp.len(), 32);
    assert!(rsp.iter().all(|r| r.status == BLKIF_RSP_OKAY));
}

#[test]
fn range_alignment_and_unknown_operations() {
    let mut env = Env::new(&[
        Vol::new("vol1", MIB),
        Vol::new("big", MIB).sector_size(4096),
    ]);
    let mut f = Front::attach(&mut env, 5, 51712, "vol1", FrontOpts::default());
    // The last sector works, one past it does not.
    assert_eq!(f.write(&mut env, 2047, &[7u8; 512]), BLKIF_RSP_OKAY);
    assert_eq!(f.write(&mut env, 2048, &[7u8; 512]), BLKIF_RSP_ERROR);
    assert_eq!(f.write(&mut env, 2040, &[7u8; 8192]), BLKIF_RSP_ERROR);
    assert_eq!(f.read(&mut env, u64::MAX - 3, 4096).status, BLKIF_RSP_ERROR);
    assert_eq!(f.discard(&mut env, 2000, 49, false), BLKIF_RSP_ERROR);
    for op in [BLKIF_OP_RESERVED_1, 7, 99, 255] {
        let r = f.simple(
            &mut env,
            slot_of(&BlkifRequest {
                operation: op,
                id: 77,
                ..Default::default()
            }),
        );
        assert_eq!(
            (r.id, r.operation, r.status),
            (77, op, BLKIF_RSP_EOPNOTSUPP)
        );
    }
    // 4096-byte sectors: sizes in 512-byte units, requests aligned to 8 of them.
    let mut g = Front::attach(&mut env, 6, 51712, "big", FrontOpts::default());
    assert_eq!(env.be_key(&g.dev, "sector-size").as_deref(), Some("4096"));
    assert_eq!(env.be_key(&g.dev, "sectors").as_deref(), Some("2048"));
    let data = pattern(8192, 3);
    assert_eq!(g.write(&mut env, 8, &data), BLKIF_RSP_OKAY);
    assert_eq!(g.read(&mut env, 8, 8192).data, data);
    assert_eq!(
        g.write(&mut env, 4, &data),
        BLKIF_RSP_ERROR,
        "misaligned start"
    );
    assert_eq!(
        g.write(&mut env, 8, &data[..512]),
        BLKIF_RSP_ERROR,
        "partial sector"
    );
    let stats = env.vbd(6, 51712, |v| v.stats().clone());
    assert_eq!(stats.errors_of(blkback::stats::ErrorClass::Range), 2);
}

#[test]
fn read_only_volumes_refuse_writes_and_discards() {
    let mut env = Env::new(&[Vol::new("ro", MIB).read_only(), Vol::new("rw", MIB)]);
    let mut f = Front::attach(&mut env, 5, 51712, "ro", FrontOpts::default());
    assert_eq!(env.be_key(&f.dev, "info").as_deref(), Some("4"));
    assert_eq!(env.be_key(&f.dev, "feature-discard").as_deref(), Some("0"));
    assert_eq!(f.write(&mut env, 0, &[1u8; 4096]), BLKIF_RSP_ERROR);
    assert_eq!(f.discard(&mut env, 0, 8, false), BLKIF_RSP_EOPNOTSUPP);
    assert_eq!(
        f.read(&mut env, 0, 4096),
        Outcome {
            status: 0,
            data: vec![0; 4096]
        }
    );
    assert_eq!(
        f.flush(&mut env),
        BLKIF_RSP_OKAY,
        "an empty flush is harmless"
    );
    // access=ro on a writable volume.
    let mut g = Front::attach(
        &mut env,
        6,
        51712,
        "rw",
        FrontOpts {
            mode: "r",
            ..FrontOpts::default()
        },
    );
    assert_eq!(env.be_key(&g.dev, "info").as_deref(), Some("4"));
    assert_eq!(g.write(&mut env, 0, &[1u8; 512]), BLKIF_RSP_ERROR);
    let barrier = g.rw(&mut env, 0, BLKIF_OP_WRITE_BARRIER, 0, &[1u8; 512]);
    assert_eq!(barrier.status, BLKIF_RSP_ERROR);
}

#[test]
fn flush_barrier_and_discard() {
    let mut env = Env::new(&[Vol::new("vol1", MIB)]);
    let mut f = Front::attach(&mut env, 5, 51712, "vol1", FrontOpts::default());
    let data = pattern(4096, 9);
    assert_eq!(f.write(&mut env, 16, &data), BLKIF_RSP_OKAY);
    assert_eq!(f.flush(&mut env), BLKIF_RSP_OKAY);
    // Linux's blkfront sends empty flushes and barriers with sector -1: no range to check.
    for op in [BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_WRITE_BARRIER] {
        let r = f.simple(
            &mut env,
            slot_of(&BlkifRequest {
                operation: op,
                id: 500,
                sector_number: u64::MAX,
                ..Default::default()
            }),
        );
        assert_eq!(
            (r.id, r.status),
            (500, BLKIF_RSP_OKAY),
            "empty op {op} at sector -1"
        );
    }
    // Flush and barrier with data write it.
    let d2 = pattern(4096, 10);
    let r = f.rw(&mut env, 0, BLKIF_OP_FLUSH_DISKCACHE, 24, &d2);
    assert_eq!(r.status, BLKIF_RSP_OKAY);
    let d3 = pattern(1024, 11);
    let r = f.rw(&mut env, 0, BLKIF_OP_WRITE_BARRIER, 40, &d3);
    assert_eq!(r.status, BLKIF_RSP_OKAY);
    assert_eq!(f.read(&mut env, 24, 4096).data, d2);
    assert_eq!(f.read(&mut env, 40, 1024).data, d3);
    // Discard zeroes (secure discard supported by RAM volumes).
    assert_eq!(f.discard(&mut env, 16, 8, true), BLKIF_RSP_OKAY);
    assert_eq!(f.read(&mut env, 16, 4096).data, vec![0; 4096]);
    assert_eq!(f.discard(&mut env, 0, 0, false), BLKIF_RSP_OKAY);
    let s = env.vbd(5, 51712, |v| v.stats().clone());
    assert_eq!((s.flushes, s.discards), (5, 2));
}

#[test]
fn busy_guests_do_not_starve_others() {
    let options = Options {
        budget: 4,
        ..Options::default()
    };
    let mut env = Env::with_options(&[Vol::new("a", MIB), Vol::new("b", MIB)], options);
    let mut fa = Front::attach(&mut env, 5, 51712, "a", FrontOpts::default());
    let mut fb = Front::attach(&mut env, 6, 51712, "b", FrontOpts::default());
    let pa = fa
        .dom
        .grant_page(DD, minios::platform::Access::ReadWrite)
        .unwrap();
    let pb = fb
        .dom
        .grant_page(DD, minios::platform::Access::ReadWrite)
        .unwrap();
    let read = |gref, id| {
        let mut req = BlkifRequest {
            operation: BLKIF_OP_READ,
            nr_segments: 1,
            id,
            ..Default::default()
        };
        req.seg[0] = BlkifRequestSegment {
            gref,
            first_sect: 0,
            last_sect: 7,
        };
        slot_of(&req)
    };
    for id in 0..32 {
        fa.queues[0].ring.put_request(&read(pa.gref(), id)).unwrap();
    }
    for id in 0..4 {
        fb.queues[0].ring.put_request(&read(pb.gref(), id)).unwrap();
    }
    fa.queues[0].ring.push();
    fb.queues[0].ring.push();
    fa.queues[0].port.notify().unwrap();
    fb.queues[0].port.notify().unwrap();
    env.pass();
    assert_eq!(fa.responses(0).len(), 4, "the busy guest gets its budget");
    assert_eq!(
        fb.responses(0).len(),
        4,
        "the other guest is served in the same pass"
    );
    env.settle();
    assert_eq!(fa.responses(0).len(), 28);
}

#[test]
fn reconnect_after_close_works() {
    let mut env = Env::new(&[Vol::new("vol1", MIB)]);
    let mut f = Front::attach(&mut env, 5, 51712, "vol1", FrontOpts::default());
    let data = pattern(4096, 1);
    assert_eq!(f.write(&mut env, 0, &data), 0);
    f.state("5");
    env.settle();
    f.state("6");
    env.settle();
    f.state("1");
    env.settle();
    assert_eq!(env.be_key(&f.dev, "state").as_deref(), Some("2"));
    f.setup_rings();
    f.state("3");
    env.settle();
    assert_eq!(env.be_key(&f.dev, "state").as_deref(), Some("4"));
    assert_eq!(
        f.read(&mut env, 0, 4096).data,
        data,
        "data survives a reconnect"
    );
}
