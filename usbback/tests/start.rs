//! Start-up as the unikernel runs it ([`usbback::usbdd::boot`]): the policy every backend
//! shares (`minios::driver_domain`) — a configuration that cannot work, or no host
//! controller, is refused with one line before `data/ready`; a good one serves `vusb`.

mod common;

use minios::executor::StopReason;
use minios::host::{settle, DeviceSpec, World};
use minios::xenstore::Store;
use usbback::host::{Speed, UsbHost};

const DD: u16 = 1;

fn ready(world: &World) -> Option<String> {
    world.read_str(&format!("/local/domain/{DD}/data/ready"))
}

#[test]
fn a_configuration_that_cannot_work_refuses_to_start() {
    for (cmdline, host_ok, want) in [
        (
            "usbback.budget=0",
            true,
            "usbback.budget=0: expected a number in 1..=256",
        ),
        ("usbback.port=1", true, "usbback.port=1: unknown option"),
        ("", false, "USB host controller: no controller"),
    ] {
        let world = World::new();
        let dd = world.create_domain(DD, "usbdd");
        let bus = common::Bus::new();
        let host = Box::new(move |_: &mut _| -> Result<Box<dyn UsbHost>, String> {
            if host_ok {
                Ok(bus.host())
            } else {
                Err("no controller".into())
            }
        });
        let err = usbback::usbdd::boot(dd.clone(), Some(dd.xenstore()), cmdline, host)
            .err()
            .expect("refused");
        assert_eq!(err.0, want, "{cmdline}");
        assert_eq!(ready(&world), None, "{cmdline}: no data/ready");
    }
}

#[test]
fn starts_serves_a_controller_and_stops() {
    let world = World::new();
    let dd = world.create_domain(DD, "usbdd");
    world.create_domain(5, "guest");
    let bus = common::Bus::new();
    bus.attach("1-1", Speed::High);
    let b = bus.clone();
    let host = Box::new(move |_: &mut _| -> Result<Box<dyn UsbHost>, String> { Ok(b.host()) });
    let mut started =
        usbback::usbdd::boot(dd.clone(), Some(dd.xenstore()), "usbback.budget=8", host).unwrap();
    assert_eq!(ready(&world).as_deref(), Some("1"));
    let vusb = DeviceSpec::new("vusb", DD, 5, 0)
        .backend_key("num-ports", "4")
        .backend_key("usb-ver", "2")
        .backend_key("port/1", "1-1");
    world.add_device(&vusb);
    settle(&world, &mut [&mut started.exec]);
    let key = |k: &str| world.read_str(&format!("{}/{k}", vusb.backend_path()));
    assert_eq!(key("state").as_deref(), Some("2"), "InitWait");
    assert_eq!(
        started.domain.hub.borrow().devices().count(),
        1,
        "the bus was read"
    );
    // A controller the toolstack got wrong is refused with a reason.
    let bad = DeviceSpec::new("vusb", DD, 5, 1)
        .backend_key("num-ports", "32")
        .backend_key("usb-ver", "2");
    world.add_device(&bad);
    settle(&world, &mut [&mut started.exec]);
    let err = world
        .read_str(&format!("/local/domain/{DD}/error/backend/vusb/5/1/error"))
        .unwrap_or_default();
    assert!(err.contains("num-ports 32 exceeds 31"), "{err}");
    world
        .domain(0)
        .xenstore()
        .write(&format!("/local/domain/{DD}/control/shutdown"), b"poweroff")
        .unwrap();
    settle(&world, &mut [&mut started.exec]);
    assert_eq!(started.exec.stop_requested(), Some(StopReason::Poweroff));
    assert!(!bus.0.borrow().stopped);
    assert_eq!(started.stop(StopReason::Poweroff), StopReason::Poweroff);
    assert!(
        bus.0.borrow().stopped,
        "the controller is stopped with the domain"
    );
}
