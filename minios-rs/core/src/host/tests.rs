//! Semantics of the host platform: grants, event channels, wait, xenstore permissions and
//! watches as other domains see them, and rings over simulated pages.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use xen_abi::hypercall::grant_table::{
    GNTST_BAD_COPY_ARG, GNTST_BAD_DOMAIN, GNTST_BAD_GNTREF, GNTST_GENERAL_ERROR, GNTST_NO_SPACE,
};
use xen_abi::ring::RingError;

use super::*;
use crate::platform::{local_room, ForeignRef, PageSet, PAGE_SIZE};
use crate::ring::{BackChannel, FrontChannel, RingAccessError};
use crate::testutil::{TestReq, TestRsp};
use crate::xenstore::{Event, Store, XsError};

fn two_domains() -> (World, HostDomain, HostDomain) {
    let world = World::new();
    let be = world.create_domain(1, "backend");
    let fe = world.create_domain(5, "frontend");
    (world, be, fe)
}

#[test]
fn map_read_write_and_unmap() {
    let (world, be, fe) = two_domains();
    let granted = fe.grant_page(1, Access::ReadWrite).unwrap();
    assert!(granted.gref() >= 8, "references 0-7 are reserved");
    granted.write(100, b"from the frontend").unwrap();
    let m = be.map(5, granted.gref(), Access::ReadWrite).unwrap();
    let mut buf = [0u8; 17];
    m.read(100, &mut buf).unwrap();
    assert_eq!(&buf, b"from the frontend");
    m.write(0, b"reply").unwrap();
    let mut back = [0u8; 5];
    granted.read(0, &mut back).unwrap();
    assert_eq!(&back, b"reply");
    assert_eq!(
        m.read(4090, &mut [0u8; 7]),
        Err(MemError::OutOfBounds {
            offset: 4090,
            len: 7,
            size: 4096
        })
    );
    assert_eq!(world.live_mappings(1), 1);
    drop(m);
    assert_eq!(world.live_mappings(1), 0);
    drop(granted);
    assert_eq!(world.grant_entries(5), 0);
}

#[test]
fn map_errors_are_xen_status_codes() {
    let (world, be, fe) = two_domains();
    let other = world.create_domain(6, "other");
    let ro = fe.grant_page(1, Access::ReadOnly).unwrap();
    let for_other = fe.grant_page(6, Access::ReadWrite).unwrap();
    let status = |r: Result<HostMapping, GrantError>| r.err();
    // Read-only grant mapped writable.
    assert_eq!(
        status(be.map(5, ro.gref(), Access::ReadWrite)),
        Some(GrantError::Status(GNTST_GENERAL_ERROR))
    );
    // Mapped read-only: writes refused by the accessor.
    let m = be.map(5, ro.gref(), Access::ReadOnly).unwrap();
    assert_eq!(m.write(0, b"x"), Err(MemError::ReadOnly));
    assert_eq!(m.store_u32(0, 1), Err(MemError::ReadOnly));
    assert!(!m.writable());
    // Granted to someone else.
    assert_eq!(
        status(be.map(5, for_other.gref(), Access::ReadOnly)),
        Some(GrantError::Status(GNTST_GENERAL_ERROR))
    );
    assert!(other.map(5, for_other.gref(), Access::ReadOnly).is_ok());
    // Never granted, beyond the table, unknown domain.
    assert_eq!(
        status(be.map(5, 500, Access::ReadOnly)),
        Some(GrantError::Status(GNTST_GENERAL_ERROR))
    );
    assert_eq!(
        status(be.map(5, u32::MAX, Access::ReadOnly)),
        Some(GrantError::Status(GNTST_BAD_GNTREF))
    );
    assert_eq!(
        status(be.map(77, 8, Access::ReadOnly)),
        Some(GrantError::Status(GNTST_BAD_DOMAIN))
    );
    fe.set_grant_limit(9);
    assert_eq!(
        status(be.map(5, 9, Access::ReadOnly)),
        Some(GrantError::Status(GNTST_BAD_GNTREF))
    );
}

#[test]
fn batched_maps_fail_per_ref() {
    let (world, be, fe) = two_domains();
    let a = fe.grant_page(1, Access::ReadWrite).unwrap();
    let b = fe.grant_page(1, Access::ReadWrite).unwrap();
    let maps = be.map_batch(5, &[a.gref(), 4000, b.gref()], Access::ReadWrite);
    assert!(maps[0].is_ok() && maps[2].is_ok());
    assert_eq!(
        maps[1].as_ref().err(),
        Some(&GrantError::Status(GNTST_GENERAL_ERROR))
    );
    assert_eq!(world.live_mappings(1), 2);
    drop(maps);
    assert_eq!(world.live_mappings(1), 0);
    // The maptrack limit.
    world.set_map_limit(1);
    let maps = be.map_batch(5, &[a.gref(), b.gref()], Access::ReadOnly);
    assert!(maps[0].is_ok());
    assert_eq!(
        maps[1].as_ref().err(),
        Some(&GrantError::Status(GNTST_NO_SPACE))
    );
}

#[test]
fn revoked_grants_keep_existing_mappings() {
    let (world, be, fe) = two_domains();
    let page = HostPage::new();
    let gref = fe.grant(&page, 1, Access::ReadWrite).unwrap();
    let m = be.map(5, gref, Access::ReadWrite).unwrap();
    fe.revoke(gref);
    // As on Xen: the mapping stays valid, new maps fail, the reference is not reused.
    m.write(0, b"still").unwrap();
    assert_eq!(
        be.map(5, gref, Access::ReadWrite).err(),
        Some(GrantError::Status(GNTST_GENERAL_ERROR))
    );
    let next = fe.grant(&HostPage::new(), 1, Access::ReadWrite).unwrap();
    assert_ne!(next, gref);
    // The frontend rewrites the page under the backend's mapping.
    page.write(0, b"CHANG").unwrap();
    let mut buf = [0u8; 5];
    m.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"CHANG");
    drop(m);
    assert_eq!(world.live_mappings(1), 0);
    assert!(fe.granted_page(gref).is_none(), "entry gone once unmapped");
}

#[test]
fn grant_copy_checks_each_op() {
    let (_world, be, fe) = two_domains();
    let src = fe.grant_page(1, Access::ReadOnly).unwrap();
    let dst = fe.grant_page(1, Access::ReadWrite).unwrap();
    src.write(4000, &[7u8; 96]).unwrap();
    let r = |g: &HostGranted, offset| ForeignRef {
        domid: 5,
        gref: g.gref(),
        offset,
    };
    // A page-aligned local buffer so local page crossing is predictable.
    let mut mem = vec![0u8; 3 * PAGE_SIZE];
    let start = local_room(&mem) % PAGE_SIZE;
    let (a, rest) = mem[start..].split_at_mut(96);
    let (b, rest) = rest.split_at_mut(PAGE_SIZE - 96 - 10);
    let c = &mut rest[..20]; // crosses the next page boundary
    let _ = b;
    let payload = [9u8; 20];
    let mut ops = [
        CopyOp::new(CopySrc::Foreign(r(&src, 4000)), CopyDst::Local(a), 96),
        CopyOp::new(CopySrc::Local(&payload), CopyDst::Foreign(r(&dst, 10)), 20),
        CopyOp::new(CopySrc::Foreign(r(&src, 4090)), CopyDst::Local(c), 20),
        CopyOp::new(CopySrc::Local(&payload), CopyDst::Foreign(r(&src, 0)), 20),
        CopyOp::new(
            CopySrc::Foreign(ForeignRef {
                domid: 5,
                gref: 999,
                offset: 0,
            }),
            CopyDst::Foreign(r(&dst, 0)),
            1,
        ),
    ];
    be.copy(&mut ops);
    let status: Vec<_> = ops.iter().map(|o| o.status).collect();
    assert_eq!(
        status,
        [
            Ok(()),
            Ok(()),
            Err(GrantError::Status(GNTST_BAD_COPY_ARG)),
            Err(GrantError::Status(GNTST_GENERAL_ERROR)), // read-only grant as destination
            Err(GrantError::Status(GNTST_GENERAL_ERROR)),
        ]
    );
    // (the ops' borrows of `mem` end here)
    assert_eq!(&mem[start..start + 96], &[7u8; 96]);
    let mut got = [0u8; 20];
    dst.read(10, &mut got).unwrap();
    assert_eq!(got, payload);
}

#[test]
fn event_channels_connect_notify_close() {
    let (world, be, fe) = two_domains();
    let unbound = fe.alloc_unbound(1).unwrap();
    // Only the named remote may bind; bad ports and domains fail like Xen.
    let stranger = world.create_domain(6, "stranger");
    assert_eq!(
        stranger.bind_interdomain(5, unbound.port()).err(),
        Some(XenErrno::EINVAL)
    );
    assert_eq!(be.bind_interdomain(5, 999).err(), Some(XenErrno::EINVAL));
    assert_eq!(be.bind_interdomain(77, 1).err(), Some(XenErrno::ESRCH));
    let bound = be.bind_interdomain(5, unbound.port()).unwrap();
    assert_eq!(world.port_peer(1, bound.port()), Some((5, unbound.port())));
    // Binding twice fails: the port is no longer unbound.
    assert_eq!(
        be.bind_interdomain(5, unbound.port()).err(),
        Some(XenErrno::EINVAL)
    );

    assert!(!bound.take_pending());
    unbound.notify().unwrap();
    unbound.notify().unwrap();
    assert!(bound.take_pending());
    assert!(!bound.take_pending(), "test and clear");
    bound.notify().unwrap();
    assert!(unbound.take_pending());
    assert_eq!(world.notifications_sent(5, unbound.port()), 2);

    // Closing one end leaves the other unbound; notifications are dropped silently.
    let port = bound.port();
    drop(bound);
    assert_eq!(world.open_ports(1), 0);
    unbound.notify().unwrap();
    assert!(!be.take_pending_raw(port));
    assert_eq!(be.notify_raw(port), Err(XenErrno::EINVAL));
    // The unbound end may be bound again (a reconnect), and ports are reused lowest first.
    let again = be.bind_interdomain(5, unbound.port()).unwrap();
    assert_eq!(again.port(), port);
}

#[test]
fn wait_returns_for_pending_ports_and_jumps_to_deadlines() {
    let (world, be, fe) = two_domains();
    be.wait(Some(1_000));
    assert_eq!(
        world.now_ns(),
        1_000,
        "idle wait advances virtual time to the deadline"
    );
    be.wait(Some(500));
    assert_eq!(world.now_ns(), 1_000, "time never goes backwards");
    be.wait(None);
    assert_eq!(world.idle_waits(), 1);

    let port = fe.alloc_unbound(1).unwrap();
    let ch = be.bind_interdomain(5, port.port()).unwrap();
    port.notify().unwrap();
    be.wait(Some(1_000_000));
    assert_eq!(world.now_ns(), 1_000, "a pending port returns at once");
    assert!(ch.take_pending());

    let mut xs = be.xenstore();
    xs.watch("/local/domain/1/data", "t").unwrap();
    xs.poll().unwrap();
    be.wait(Some(1_500));
    assert_eq!(world.now_ns(), 1_500, "nothing left unread");
    world.write_as(0, "/local/domain/1/data/x", b"1").unwrap();
    be.wait(Some(2_000_000));
    assert_eq!(
        world.now_ns(),
        1_500,
        "unread xenstore bytes return at once"
    );
    world.advance(5);
    assert_eq!(be.now_ns(), 1_505);
}

#[test]
fn toolstack_devices_have_libxl_permissions() {
    let (world, be, fe) = two_domains();
    let dev = DeviceSpec::new("vif", 1, 5, 0).backend_key("mac", "00:16:3e:00:00:01");
    world.add_device(&dev);
    let bp = dev.backend_path();
    let fp = dev.frontend_path();
    assert_eq!(world.read_str(&format!("{bp}/frontend")).unwrap(), fp);
    assert_eq!(world.read_str(&format!("{fp}/backend")).unwrap(), bp);
    assert_eq!(world.read_str(&format!("{bp}/state")).unwrap(), "1");
    assert_eq!(world.read_str(&format!("{bp}/online")).unwrap(), "1");

    let mut bxs = be.xenstore();
    let mut fxs = fe.xenstore();
    // Each side writes its own directory and reads the other's.
    bxs.write(&format!("{bp}/state"), b"2").unwrap();
    fxs.write(&format!("{fp}/ring-ref"), b"8").unwrap();
    assert_eq!(bxs.read(&format!("{fp}/ring-ref")).unwrap(), b"8");
    assert_eq!(fxs.read(&format!("{bp}/state")).unwrap(), b"2");
    let denied = Err(XsError::Errno(XenErrno::EACCES));
    assert_eq!(fxs.write(&format!("{bp}/state"), b"4"), denied);
    assert_eq!(fxs.write(&format!("{bp}/new"), b"4"), denied);
    assert_eq!(bxs.write(&format!("{fp}/state"), b"4"), denied);
    // The backend may remove its own device directory but not the toolstack's parents.
    assert_eq!(bxs.rm("/local/domain/1/backend/vif/5"), denied);
    bxs.rm(&bp).unwrap();
    assert!(!world.exists(&bp));
    // A frontend can hide its nodes from the backend.
    let hide = [crate::xenstore::Perm {
        access: PermAccess::NoAccess,
        domid: 5,
    }];
    fxs.set_perms(&format!("{fp}/ring-ref"), &hide).unwrap();
    assert_eq!(
        bxs.read(&format!("{fp}/ring-ref")).err(),
        Some(XsError::Errno(XenErrno::EACCES))
    );
    // Domains may write their data/ and error/ but not their name.
    bxs.write("/local/domain/1/data/ready", b"1").unwrap();
    bxs.write("/local/domain/1/error/x", b"1").unwrap();
    assert_eq!(bxs.write("/local/domain/1/name", b"x"), denied);
}

#[test]
fn watches_respect_read_permission_and_removal() {
    let (world, be, fe) = two_domains();
    let dev = DeviceSpec::new("vbd", 1, 5, 51712);
    world.add_device(&dev);
    let mut bxs = be.xenstore();
    bxs.watch(&dev.frontend_path(), "fe").unwrap();
    bxs.poll().unwrap();
    while bxs.next_event().is_some() {}
    let mut fxs = fe.xenstore();
    let secret = format!("{}/secret", dev.frontend_path());
    fxs.write(&secret, b"1").unwrap();
    fxs.set_perms(
        &secret,
        &[crate::xenstore::Perm {
            access: PermAccess::NoAccess,
            domid: 5,
        }],
    )
    .unwrap();
    bxs.poll().unwrap();
    let mut seen = 0;
    while bxs.next_event().is_some() {
        seen += 1;
    }
    assert_eq!(
        seen, 1,
        "the write is seen (still readable then); the perms change is not"
    );
    fxs.write(&secret, b"2").unwrap();
    bxs.poll().unwrap();
    assert!(bxs.next_event().is_none(), "unreadable node: no event");
    // Removing the frontend's parent fires the watch with the watched path.
    world.destroy_domain(5);
    bxs.poll().unwrap();
    match bxs.next_event() {
        Some(Event::Fired(ev)) => assert_eq!(ev.path, dev.frontend_path()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rings_over_simulated_pages() {
    let (world, be, fe) = two_domains();
    let page = fe.grant_page(1, Access::ReadWrite).unwrap();
    let gref = page.gref();
    let mut front: FrontChannel<_, TestReq, TestRsp> = FrontChannel::new(page).unwrap();
    let mapping = be.map(5, gref, Access::ReadWrite).unwrap();
    let mut back: BackChannel<_, TestReq, TestRsp> = BackChannel::new(mapping).unwrap();
    assert_eq!(back.ring().nr_ents(), 256);

    for i in 0..300u32 {
        front
            .put_request(&TestReq {
                id: i,
                value: i * 2,
            })
            .unwrap();
        front.push();
        let req = back.next_request().unwrap().unwrap();
        assert_eq!(
            req,
            TestReq {
                id: i,
                value: i * 2
            }
        );
        back.put_response(&TestRsp {
            id: req.id,
            status: 1,
        })
        .unwrap();
        back.push();
        assert_eq!(
            front.next_response().unwrap(),
            Some(TestRsp { id: i, status: 1 })
        );
    }
    assert!(!back.final_check().unwrap());
    assert_eq!(world.live_mappings(1), 1);

    // Every response byte is written, padding included (XSA-216).
    let raw = fe.granted_page(gref).unwrap();
    raw.fill(64, 4032, 0xee).unwrap();
    front.put_request(&TestReq { id: 1, value: 1 }).unwrap();
    front.push();
    let req = back.next_request().unwrap().unwrap();
    back.put_response(&TestRsp {
        id: req.id,
        status: 2,
    })
    .unwrap();
    back.push();
    let slot = 64 + (300 % 256) * 8;
    let mut bytes = [0u8; 8];
    raw.read(slot, &mut bytes).unwrap();
    assert_eq!(bytes, [1, 0, 0, 0, 2, 0, 0, 0]);

    // A hostile req_prod is an error, not a loop bound.
    raw.store_u32(0, 301 + 1000).unwrap();
    assert!(matches!(
        back.next_request(),
        Err(RingAccessError::Ring(RingError::RequestOverflow { .. }))
    ));
}

#[test]
fn requests_are_copied_once() {
    let (_world, be, fe) = two_domains();
    let page = fe.grant_page(1, Access::ReadWrite).unwrap();
    let gref = page.gref();
    let raw = page.page().clone();
    let mut front: FrontChannel<_, TestReq, TestRsp> = FrontChannel::new(page).unwrap();
    let mut back: BackChannel<_, TestReq, TestRsp> =
        BackChannel::new(be.map(5, gref, Access::ReadOnly).unwrap()).unwrap();
    front.put_request(&TestReq { id: 7, value: 100 }).unwrap();
    front.push();
    // The frontend rewrites the slot (bytes 64..72) right after each read of it, i.e.
    // between the backend's copy and its use: a second fetch, whole or of one field, sees
    // 0xff bytes.
    let slot_reads = Arc::new(AtomicUsize::new(0));
    {
        let slot_reads = slot_reads.clone();
        let rewriter = raw.clone();
        raw.after_each_read(move |offset, len| {
            if offset < 72 && offset + len > 64 {
                slot_reads.fetch_add(1, Ordering::SeqCst);
                rewriter.write(64, &[0xff; 8]).unwrap();
            }
        });
    }
    let req = back.next_request().unwrap().unwrap();
    raw.clear_read_hook();
    assert_eq!(
        req,
        TestReq { id: 7, value: 100 },
        "the request as produced"
    );
    assert_eq!(
        slot_reads.load(Ordering::SeqCst),
        1,
        "the slot is read once"
    );
    // A read-only mapping cannot be answered.
    assert_eq!(
        back.put_response(&TestRsp::default()),
        Err(RingAccessError::Mem(MemError::ReadOnly))
    );
}

#[test]
fn multi_page_rings() {
    let (_world, be, fe) = two_domains();
    let pages: Vec<_> = (0..4)
        .map(|_| fe.grant_page(1, Access::ReadWrite).unwrap())
        .collect();
    let grefs: Vec<_> = pages.iter().map(|p| p.gref()).collect();
    let mut front: FrontChannel<_, TestReq, TestRsp> =
        FrontChannel::new(PageSet::new(pages).unwrap()).unwrap();
    let maps: Result<Vec<_>, _> = be
        .map_batch(5, &grefs, Access::ReadWrite)
        .into_iter()
        .collect();
    let mut back: BackChannel<_, TestReq, TestRsp> =
        BackChannel::new(PageSet::new(maps.unwrap()).unwrap()).unwrap();
    assert_eq!(back.ring().nr_ents(), 1024, "2040 fit, rounded down");
    for i in 0..1024u32 {
        front.put_request(&TestReq { id: i, value: 0 }).unwrap();
    }
    front.push();
    for i in 0..1024u32 {
        assert_eq!(back.next_request().unwrap().unwrap().id, i);
    }
    assert!(PageSet::new(Vec::<HostPage>::new()).is_err());
}
