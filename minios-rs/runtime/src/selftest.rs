//! Bring-up checks run under plain QEMU (no Xen): the heap works and an exception taken
//! while data sits in the red zone leaves it intact (the IST switch works).

use alloc::string::String;
use alloc::vec::Vec;

/// Runs the checks and logs the outcome; any failure is fatal.
pub fn run() {
    let mut v: Vec<u64> = (0..10_000).collect();
    v.retain(|x| x % 3 == 0);
    let big = alloc::vec![7u8; 200_000];
    let s = String::from("heap") + " works";
    if v.len() != 3334
        || big.iter().map(|&b| u64::from(b)).sum::<u64>() != 1_400_000
        || s != "heap works"
    {
        crate::control::fatal(format_args!("heap self-test failed"));
    }
    drop(big);
    log::info!(
        "self-test: heap ok ({} KiB free in the heap)",
        crate::mm::heap_free_bytes() / 1024
    );

    let survived = red_zone_survives_breakpoint();
    if !survived {
        crate::control::fatal(format_args!(
            "self-test: red zone clobbered by an exception"
        ));
    }
    log::info!("self-test: red zone intact across int3 (IST stacks work)");

    if crate::cmdline::flag(crate::cmdline::get(), "selftest.overflow") {
        log::info!("self-test: overflowing the stack on purpose (expect a page fault)");
        let depth = recurse(core::hint::black_box(1));
        crate::control::fatal(format_args!("stack overflow not caught (depth {depth})"));
    }
}

/// Recurses until the stack runs into its guard page.
#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    let pad = core::hint::black_box([n; 64]);
    recurse(pad[n as usize % 64] + 1) + pad[0]
}

/// Stores values below `%rsp`, takes a breakpoint exception, and checks them.
fn red_zone_survives_breakpoint() -> bool {
    let (a, b): (u64, u64);
    // SAFETY: writes only into the red zone (128 bytes below %rsp, which the ABI reserves for
    // leaf code and which this asm block owns); `int3` is handled and resumed by the trap
    // handler.
    unsafe {
        core::arch::asm!(
            "mov qword ptr [rsp - 8], {x}",
            "mov qword ptr [rsp - 64], {x}",
            "int3",
            "mov {a}, qword ptr [rsp - 8]",
            "mov {b}, qword ptr [rsp - 64]",
            x = in(reg) 0x1234_5678_9abc_def0u64,
            a = out(reg) a,
            b = out(reg) b,
        );
    }
    a == 0x1234_5678_9abc_def0 && b == a
}

/// Checks on real Xen, through the same `minios` platform traits backends use: an event
/// channel looped back to ourselves (alloc unbound + bind interdomain, notify, wake-up,
/// mask/unmask, close) and a page granted to ourselves (grant, map, copy both ways, unmap,
/// revoke). Returns a description of the first failure.
pub fn on_xen(rt: &crate::Runtime) -> Result<(), alloc::string::String> {
    use alloc::format;
    use minios::platform::{
        Access, Clock, CopyDst, CopyOp, CopySrc, Events, ForeignRef, GrantedPage, Grants, Platform,
        SharedMem,
    };

    let me = rt.domid();
    let deadline = |ms: u64| rt.now_ns() + ms * 1_000_000;
    let wait_for = |ch: &crate::events::Channel, ms: u64| {
        let until = deadline(ms);
        loop {
            if ch.take_pending() {
                return true;
            }
            if rt.now_ns() >= until {
                return false;
            }
            rt.wait(Some(until));
        }
    };

    // Event channels.
    let a = rt
        .alloc_unbound(me)
        .map_err(|e| format!("alloc_unbound: {e:?}"))?;
    let b = rt
        .bind_interdomain(me, a.port())
        .map_err(|e| format!("bind_interdomain: {e:?}"))?;
    let t0 = rt.now_ns();
    b.notify().map_err(|e| format!("notify: {e:?}"))?;
    if !wait_for(&a, 1000) {
        return Err(format!(
            "port {} did not fire after notify from port {}",
            a.port(),
            b.port()
        ));
    }
    let latency_us = (rt.now_ns() - t0) / 1000;
    a.notify().map_err(|e| format!("notify: {e:?}"))?;
    if !wait_for(&b, 1000) {
        return Err(format!(
            "port {} did not fire after notify from port {}",
            b.port(),
            a.port()
        ));
    }
    a.mask();
    b.notify().map_err(|e| format!("notify: {e:?}"))?;
    if wait_for(&a, 20) {
        return Err(format!("masked port {} fired", a.port()));
    }
    a.unmask().map_err(|e| format!("unmask: {e:?}"))?;
    if !wait_for(&a, 1000) {
        return Err(format!(
            "event sent while port {} was masked was lost on unmask",
            a.port()
        ));
    }
    let ports = (a.port(), b.port());
    drop(b);
    drop(a);
    log::info!(
        "self-test: event channel loopback {}<->{} ok (notify to wake-up {latency_us} us), mask/unmask ok",
        ports.0,
        ports.1
    );

    // Grants: copies first, then a mapping (see below for why it comes last).
    let page = rt
        .grant_page(me, Access::ReadWrite)
        .map_err(|e| format!("grant_page: {e}"))?;
    page.write(100, b"granted by me")
        .map_err(|e| format!("write: {e}"))?;
    let gref = page.gref();
    let src = *b"copied in by GNTTABOP_copy";
    let mut dst = [0u8; 13];
    let foreign = |offset| ForeignRef {
        domid: me,
        gref,
        offset,
    };
    let mut ops = [
        CopyOp::new(
            CopySrc::Local(&src),
            CopyDst::Foreign(foreign(1000)),
            src.len() as u16,
        ),
        CopyOp::new(CopySrc::Foreign(foreign(100)), CopyDst::Local(&mut dst), 13),
        CopyOp::new(
            CopySrc::Foreign(foreign(4090)),
            CopyDst::Foreign(foreign(0)),
            10,
        ),
    ];
    rt.copy(&mut ops);
    let statuses: alloc::vec::Vec<_> = ops.iter().map(|o| o.status).collect();
    if statuses[0].is_err() || statuses[1].is_err() {
        return Err(format!("grant copy failed: {statuses:?}"));
    }
    if statuses[2].is_ok() {
        return Err(format!(
            "a copy crossing a page boundary was not refused: {statuses:?}"
        ));
    }
    let mut check = [0u8; 26];
    page.read(1000, &mut check)
        .map_err(|e| format!("read page: {e}"))?;
    if check != src || &dst != b"granted by me" {
        return Err(format!(
            "grant copy moved the wrong bytes: {check:?} / {dst:?}"
        ));
    }

    // Mapping our own grant: on HVM/PVH Xen moves the frame to the mapping's address (its p2m
    // drops the frame's other alias), so the page is unusable at its old address afterwards
    // and is deliberately leaked below. Grants from other domains do not have this effect.
    let mapping = rt
        .map(me, gref, Access::ReadWrite)
        .map_err(|e| format!("map gref {gref}: {e}"))?;
    let mut seen = [0u8; 26];
    mapping
        .read(1000, &mut seen)
        .map_err(|e| format!("read mapping: {e}"))?;
    mapping
        .write(2000, b"via mapping")
        .map_err(|e| format!("write mapping: {e}"))?;
    let mut back = [0u8; 11];
    mapping
        .read(2000, &mut back)
        .map_err(|e| format!("read mapping: {e}"))?;
    drop(mapping);
    core::mem::forget(page);
    if seen != src || &back != b"via mapping" {
        return Err(format!("mapped grant {gref} shows {seen:?} / {back:?}"));
    }
    log::info!(
        "self-test: grant {gref} to self: copy in/out ok, page-crossing copy refused ({:?}), map/read/write/unmap ok",
        statuses[2]
    );
    Ok(())
}
