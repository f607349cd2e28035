//! Start-up as the unikernel runs it ([`netback::netdd::boot`]): the shared policy of
//! `minios::driver_domain` — a configuration that cannot work is refused with one line naming
//! the cause, before `data/ready`; a good one serves guests and stops in order.

mod common;

use common::*;
use minios::executor::StopReason;
use minios::host::{settle, World};
use minios::xenstore::Store;

fn ready(world: &World) -> Option<String> {
    world.read_str(&format!("/local/domain/{DD}/data/ready"))
}

/// A typo is not a default: the domain does not start (it used to warn and run the default).
#[test]
fn a_bad_or_unknown_option_refuses_to_start() {
    for (cmdline, want) in [
        (
            "netback.ip=dchp",
            "netback.ip=dchp: expected dhcp, off or A.B.C.D/N",
        ),
        ("netback.uplnk=off", "netback.uplnk=off: unknown option"),
        (
            "netback.ip=10.0.0.2/24 netback.queue_kb=1",
            "netback.queue_kb=1: expected a number in 64..=1048576",
        ),
    ] {
        let world = World::new();
        let dd = world.create_domain(DD, "netdd");
        let err = boot(&dd, cmdline, None).err().expect("refused");
        assert_eq!(err.0, want, "{cmdline}");
        assert_eq!(ready(&world), None, "{cmdline}: no data/ready");
    }
}

/// `netback.uplink=nic` on a machine that cannot give us the NIC (PVH, no `pci=`, a device
/// we have no driver for) refuses to start, naming the option.
#[test]
fn a_nic_uplink_without_a_nic_refuses_to_start() {
    let world = World::new();
    let dd = world.create_domain(DD, "netdd");
    let err = boot(&dd, "netback.uplink=nic", None)
        .err()
        .expect("refused");
    assert_eq!(err.0, "netback.uplink=nic: the test gave no NIC");
    assert_eq!(ready(&world), None);
}

/// A good configuration: ready, serving, and an orderly stop on `control/shutdown`.
#[test]
fn starts_serves_and_stops() {
    let world = World::new();
    let dd = world.create_domain(DD, "netdd");
    let mut started = boot(&dd, "netback.ip=10.0.0.2/24 netback.uplink=off", None).unwrap();
    assert_eq!(ready(&world).as_deref(), Some("1"));
    settle(&world, &mut [&mut started.exec]);
    world
        .domain(0)
        .xenstore()
        .write(&format!("/local/domain/{DD}/control/shutdown"), b"poweroff")
        .unwrap();
    settle(&world, &mut [&mut started.exec]);
    assert_eq!(started.exec.stop_requested(), Some(StopReason::Poweroff));
    assert_eq!(started.stop(StopReason::Poweroff), StopReason::Poweroff);
}
