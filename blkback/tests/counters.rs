//! Per-device counters in the driver domain's data area
//! (`/local/domain/<dd>/data/vbd/<frontend-id>/<devid>/`): the right values under the right
//! names, at most every `stats_ms`, the final values at disconnect, gone with the device;
//! nothing at all with `stats_ms` = 0.

mod common;

use blkback::backend::Options;
use common::*;
use xen_abi::blkif::*;

const MIB: u64 = 1 << 20;
const SECOND: u64 = 1_000_000_000;

/// Reads, writes (one out of range), a flush, discards and two unknown operations.
fn some_io(env: &mut Env, f: &mut Front) {
    for i in 0..3 {
        let data = pattern(8192, i);
        assert_eq!(f.write(env, u64::from(i) * 16, &data), BLKIF_RSP_OKAY);
    }
    assert_eq!(
        f.write(env, 2048, &[7u8; 512]),
        BLKIF_RSP_ERROR,
        "beyond 1 MiB"
    );
    for i in 0..2 {
        assert_eq!(f.read(env, i * 8, 4096).status, BLKIF_RSP_OKAY);
    }
    assert_eq!(f.flush(env), BLKIF_RSP_OKAY);
    for i in 0..3 {
        assert_eq!(f.discard(env, 100 + i * 8, 8, false), BLKIF_RSP_OKAY);
    }
    for op in [99, 255] {
        let r = f.simple(
            env,
            slot_of(&BlkifRequest {
                operation: op,
                id: 77,
                ..Default::default()
            }),
        );
        assert_eq!(r.status, BLKIF_RSP_EOPNOTSUPP);
    }
}

#[test]
fn counters_are_published_rate_limited_and_removed_with_the_device() {
    let mut env = Env::new(&[
        Vol::new("vol1", MIB),
        Vol::new("big", MIB).sector_size(4096),
    ]);
    let mut f = Front::attach(&mut env, 5, 51712, "vol1", FrontOpts::default());
    let mut g = Front::attach(&mut env, 6, 768, "big", FrontOpts::default());
    let zeros = [
        "rd_req",
        "wr_req",
        "f_req",
        "ds_req",
        "oo_req",
        "rd_sect",
        "wr_sect",
        "errors",
        "err_invalid",
        "err_unsupported",
        "err_range",
        "err_refused",
        "err_grant",
        "err_store",
    ];
    for key in zeros {
        assert_eq!(env.counter(&f.dev, key), Some(0), "{key} at connect");
    }
    some_io(&mut env, &mut f);
    assert_eq!(
        env.counter(&f.dev, "wr_req"),
        Some(0),
        "at most every stats_ms"
    );
    env.advance(SECOND);
    let c = |key: &str| env.counter(&f.dev, key);
    assert_eq!(c("rd_req"), Some(2));
    assert_eq!(c("wr_req"), Some(4));
    assert_eq!(c("f_req"), Some(1));
    assert_eq!(c("ds_req"), Some(3));
    assert_eq!(c("oo_req"), Some(0));
    assert_eq!(c("rd_sect"), Some(16), "2 x 4 KiB");
    assert_eq!(c("wr_sect"), Some(48), "3 x 8 KiB (not the refused one)");
    assert_eq!(c("errors"), Some(3));
    assert_eq!(c("err_range"), Some(1));
    assert_eq!(c("err_unsupported"), Some(2));
    assert_eq!(c("err_invalid"), Some(0));
    assert_eq!(c("err_store"), Some(0));
    // Per device: the other guest's disk has its own (4096-byte sectors, counted in 512).
    assert_eq!(g.write(&mut env, 8, &pattern(8192, 9)), BLKIF_RSP_OKAY);
    env.advance(SECOND);
    assert_eq!(env.counter(&g.dev, "wr_req"), Some(1));
    assert_eq!(env.counter(&g.dev, "wr_sect"), Some(16));
    assert_eq!(env.counter(&f.dev, "wr_req"), Some(4), "unchanged");

    // A change after a quiet interval goes out at once, the next one waits ...
    assert_eq!(f.write(&mut env, 0, &[1u8; 512]), BLKIF_RSP_OKAY);
    assert_eq!(env.counter(&f.dev, "wr_req"), Some(5));
    assert_eq!(f.write(&mut env, 1, &[1u8; 512]), BLKIF_RSP_OKAY);
    assert_eq!(env.counter(&f.dev, "wr_req"), Some(5));
    // ... but the final values are written when the device disconnects, interval or not.
    f.state("5");
    env.settle();
    f.state("6");
    env.settle();
    assert_eq!(env.counter(&f.dev, "wr_req"), Some(6));
    assert_eq!(env.counter(&f.dev, "wr_sect"), Some(50));

    // Removed with the device; the other device's stay.
    env.world.remove_device(&f.dev);
    env.settle();
    env.advance(2 * SECOND);
    assert!(
        !env.world.exists(&f.dev.backend_path()),
        "backend removed itself"
    );
    assert!(!env
        .world
        .exists(&format!("/local/domain/{DD}/data/vbd/5/51712")));
    assert_eq!(env.counter(&g.dev, "wr_req"), Some(1));
}

#[test]
fn stats_ms_0_publishes_nothing() {
    let options = Options {
        stats_ms: 0,
        ..Options::default()
    };
    let mut env = Env::with_options(&[Vol::new("vol1", MIB)], options);
    let mut f = Front::attach(&mut env, 5, 51712, "vol1", FrontOpts::default());
    some_io(&mut env, &mut f);
    env.advance(2 * SECOND);
    f.state("5");
    env.settle();
    f.state("6");
    env.settle();
    env.advance(2 * SECOND);
    assert_eq!(
        env.vbd(5, 51712, |v| v.stats().writes),
        4,
        "counted all the same"
    );
    assert!(!env.world.exists(&format!("/local/domain/{DD}/data/vbd")));
    env.world.remove_device(&f.dev);
    env.settle();
    env.advance(2 * SECOND);
    assert!(!env.world.exists(&f.dev.backend_path()));
    assert!(!env.world.exists(&format!("/local/domain/{DD}/data/vbd")));
}
