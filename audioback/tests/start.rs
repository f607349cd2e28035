//! Start-up as the unikernel runs it ([`audioback::snddd::boot`]): the policy every backend
//! shares (`minios::driver_domain`) — a configuration that cannot work is refused with one
//! line naming the cause, before `data/ready`; a good one serves `vsnd` devices.

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
        ("audioback.rat=48000", "audioback.rat=48000: unknown option"),
        (
            "audioback.channels=9",
            "audioback.channels=9: expected a number in 1..=8",
        ),
        (
            "audioback.device=virtio",
            "audioback.device=virtio: expected auto, null or hda",
        ),
        (
            "audioback.device=hda",
            "audioback.device=hda: no PCI function was passed through to this domain",
        ),
    ] {
        let world = World::new();
        let dd = world.create_domain(DD, "snddd");
        let err = audioback::snddd::boot(dd.clone(), Some(dd.xenstore()), cmdline)
            .err()
            .expect("refused");
        assert_eq!(err.0, want, "{cmdline}");
        assert_eq!(ready(&world), None, "{cmdline}: no data/ready");
    }
}

#[test]
fn a_sound_card_that_cannot_play_refuses_to_start() {
    let world = World::new();
    let dd = world.create_domain(DD, "snddd");
    let err = audioback::snddd::boot_with_device(
        dd.clone(),
        Some(dd.xenstore()),
        "",
        Box::new(|_, _, _| Err("hda 0000:00:13.0: no codec answered".into())),
    )
    .err()
    .expect("refused");
    assert_eq!(err.0, "sound device: hda 0000:00:13.0: no codec answered");
    assert_eq!(ready(&world), None);
}

#[test]
fn starts_serves_a_card_and_stops() {
    let world = World::new();
    let dd = world.create_domain(DD, "snddd");
    world.create_domain(5, "guest");
    let mut started =
        audioback::snddd::boot(dd.clone(), Some(dd.xenstore()), "audioback.period=512").unwrap();
    assert_eq!(ready(&world).as_deref(), Some("1"));
    let vsnd = DeviceSpec::new("vsnd", DD, 5, 0)
        .frontend_key("0/0/type", "p")
        .frontend_key("0/0/unique-id", "pb");
    world.add_device(&vsnd);
    settle(&world, &mut [&mut started.exec]);
    let key = |k: &str| world.read_str(&format!("{}/{k}", vsnd.backend_path()));
    assert_eq!(key("state").as_deref(), Some("2"), "InitWait");
    assert_eq!(key("versions").as_deref(), Some("2"));
    assert_eq!(
        started
            .domain
            .engine
            .borrow()
            .playback_params()
            .period_frames,
        512
    );
    world
        .domain(0)
        .xenstore()
        .write(&format!("/local/domain/{DD}/control/shutdown"), b"poweroff")
        .unwrap();
    settle(&world, &mut [&mut started.exec]);
    assert_eq!(started.exec.stop_requested(), Some(StopReason::Poweroff));
    assert_eq!(started.stop(StopReason::Poweroff), StopReason::Poweroff);
}
