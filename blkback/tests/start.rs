//! Start-up as the unikernel runs it ([`blkback::blkdd::boot`]): the policy every backend
//! shares (`minios::driver_domain`) — a configuration that cannot work is refused with one
//! line naming the cause, before `data/ready`; a good one serves its volumes (and, owning
//! no device, publishes nothing in `data/status/`).

use minios::executor::StopReason;
use minios::host::{settle, DeviceSpec, World};
use minios::xenstore::Store;

const DD: u16 = 1;

fn ready(world: &World) -> Option<String> {
    world.read_str(&format!("/local/domain/{DD}/data/ready"))
}

#[test]
fn a_configuration_that_cannot_work_refuses_to_start() {
    for (cmdline, want) in [
        (
            "blkback.vol=a:ram:1M blkback.queus=2",
            "blkback.queus=2: unknown option",
        ),
        (
            "blkback.vol=a:ram:1M blkback.queues=17",
            "blkback.queues=17: expected a number in 1..=16",
        ),
        (
            "loglevel=debug",
            "no volumes configured (blkback.vol=<name>:ram:<size>, see the README)",
        ),
        (
            "blkback.vol=a:ram:1M blkback.vol=a:ram:2M",
            "volume \"a\" is configured twice",
        ),
    ] {
        let world = World::new();
        let dd = world.create_domain(DD, "blkdd");
        let err = blkback::blkdd::boot(dd.clone(), Some(dd.xenstore()), cmdline)
            .err()
            .expect("refused");
        assert_eq!(err.0, want, "{cmdline}");
        assert_eq!(ready(&world), None, "{cmdline}: no data/ready");
    }
}

#[test]
fn starts_publishes_a_volume_and_stops() {
    let world = World::new();
    let dd = world.create_domain(DD, "blkdd");
    world.create_domain(5, "guest");
    let mut started = blkback::blkdd::boot(
        dd.clone(),
        Some(dd.xenstore()),
        "blkback.vol=vol1:ram:1M:ro",
    )
    .unwrap();
    assert_eq!(ready(&world).as_deref(), Some("1"));
    let vbd = DeviceSpec::new("vbd", DD, 5, 51712).backend_key("params", "vol1");
    world.add_device(&vbd);
    settle(&world, &mut [&mut started.exec]);
    let key = |k: &str| world.read_str(&format!("{}/{k}", vbd.backend_path()));
    assert_eq!(key("state").as_deref(), Some("2"), "InitWait");
    assert_eq!(key("sectors").as_deref(), Some("2048"));
    assert_eq!(key("info").as_deref(), Some("4"), "VDISK_READONLY");
    world
        .domain(0)
        .xenstore()
        .write(&format!("/local/domain/{DD}/control/shutdown"), b"poweroff")
        .unwrap();
    settle(&world, &mut [&mut started.exec]);
    assert_eq!(started.exec.stop_requested(), Some(StopReason::Poweroff));
    assert_eq!(started.stop(StopReason::Poweroff), StopReason::Poweroff);
    // The device counters of data/status/ are only for a driver domain that owns one.
    assert!(!world.exists(&format!("/local/domain/{DD}/data/status")));
}
