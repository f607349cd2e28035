//! A whole usbback driver domain whose guest's URB ring holds the input.
//!
//! A whole usbback driver domain on `minios::host` with the fake USB bus of usbback's host
//! tests (`usbback/tests/common`): the victim guest's controller has the device `1-1` on
//! port 1, enumerated at address 5 and configured (bulk loopback IN 1 / OUT 2, interrupt IN
//! 3, isochronous OUT 4 / IN 5); a healthy guest has `1-2` at address 2. The victim has
//! granted three pages read-write (the grant numbers are the same in every run, see the
//! seeds); the third holds fuzzer bytes (isochronous frame descriptors, say).
//!
//! The input: a flags byte (bit 0: bulk IN 1 stalls, 1: the next bulk IN babbles, 2: the
//! next bulk IN overruns its buffer, 3: the device posts interrupt data, 4: the device is
//! unplugged after the requests), a request count, that many raw URB requests
//! (`usbif_urb_request`, 144 bytes each), then the third page's bytes.
//!
//! Asserts: either the victim's controller stays connected and every response answers a
//! request that was submitted with that id (never more responses for an id than requests),
//! with a status usbif knows and `actual_length` within that request's `buffer_length`
//! (isochronous: within `buffer_length` per packet, since packets may overlap); or
//! it is disconnected with a reason under `error/`. In both cases the healthy guest's device
//! still moves data intact through the same driver domain.

use crate::harness::usb::{pattern, victim_and_healthy, Env, Front, DD};
use crate::input::Input;
use minios::host::HostGranted;
use minios::platform::{Access, GrantedPage, Grants, SharedMem};
use usbback::host::HostDeviceId;
use xen_abi::usbif::*;
use xen_abi::WireStruct;

/// Most requests one input puts on the ring (`USB_URB_RING_SIZE`).
const MAX_REQUESTS: usize = 16;

/// Every status a usbif response may carry.
const STATUSES: [i32; 7] = [
    USBIF_STATUS_OK,
    USBIF_STATUS_NODEV,
    USBIF_STATUS_INVAL,
    USBIF_STATUS_STALL,
    USBIF_STATUS_IOERROR,
    USBIF_STATUS_BABBLE,
    USBIF_STATUS_SHUTDOWN,
];

/// The driver domain, the victim's device on the bus, the victim and the healthy guest
/// (both enumerated), and the victim's three granted pages.
fn setup() -> (Env, HostDeviceId, Front, Front, Vec<HostGranted>) {
    let (env, victim_dev, victim, healthy) = victim_and_healthy();
    let pages = (0..3)
        .map(|_| victim.dom.grant_page(DD, Access::ReadWrite).expect("grant"))
        .collect();
    (env, victim_dev, victim, healthy, pages)
}

/// The grant references of the victim's three pages (the same in every run).
pub fn page_grefs() -> Vec<u32> {
    setup().4.iter().map(|p| p.gref()).collect()
}

/// The most bytes a response to `r` may report: its buffer, or for an isochronous request
/// each packet's (packets lie within the buffer but may overlap, as on a real bus).
fn bound(r: &UsbifUrbRequest) -> i64 {
    // `buffer_length` holds the low 16 bits of the length (xen-hcd sends 64 KiB as 0): the
    // buffer is what the segments hold when those bits agree.
    let segs = usize::from(r.nr_buffer_segs).min(r.seg.len());
    let held: i64 = r.seg[..segs].iter().map(|s| i64::from(s.length)).sum();
    let buffer = if held & 0xffff == i64::from(r.buffer_length) {
        held
    } else {
        i64::from(r.buffer_length)
    };
    match UsbifPipe(r.pipe).transfer_type() {
        UsbPipeType::Isochronous => buffer * i64::from(r.isoc_number_of_packets()),
        _ => buffer,
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let count = usize::from(input.u8()) % (MAX_REQUESTS + 1);
    let mut requests = Vec::with_capacity(count);
    for _ in 0..count {
        let raw: [u8; UsbifUrbRequest::SIZE] = input.array();
        requests.push(UsbifUrbRequest::read_from(&raw).expect("sized"));
    }
    let page_bytes = input.bytes(4096);

    let (mut env, victim_dev, mut victim, mut healthy, pages) = setup();
    pages[2].write(0, page_bytes).expect("in the page");
    env.bus.with(victim_dev, |d| {
        if flags & 1 != 0 {
            d.stalled.insert(1);
        }
        d.babble_next = flags & 2 != 0;
        d.overrun_next = flags & 4 != 0;
    });

    for r in &requests {
        victim.submit(r);
    }
    env.settle();
    if flags & 8 != 0 {
        env.bus.interrupt(victim_dev, b"hostile interrupt data");
    }
    if flags & 16 != 0 {
        env.bus.detach(victim_dev);
    }
    env.settle();

    if env.be_key(&victim.dev, "state").as_deref() == Some("4") {
        let mut answered: Vec<u16> = Vec::new();
        for rsp in victim.responses() {
            let asked: Vec<&UsbifUrbRequest> = requests.iter().filter(|r| r.id == rsp.id).collect();
            answered.push(rsp.id);
            let times = answered.iter().filter(|&&id| id == rsp.id).count();
            assert!(
                times <= asked.len(),
                "response {times} to id {} but {} requests had it",
                rsp.id,
                asked.len()
            );
            assert!(
                STATUSES.contains(&rsp.status),
                "unknown status {} for id {}",
                rsp.status,
                rsp.id
            );
            let most = asked.iter().map(|r| bound(r)).max().unwrap_or(0);
            assert!(
                rsp.actual_length >= 0 && i64::from(rsp.actual_length) <= most,
                "actual_length {} beyond the buffer ({most}) for id {}",
                rsp.actual_length,
                rsp.id
            );
        }
    } else {
        assert!(
            env.error_node(&victim.dev).is_some(),
            "the victim's controller left Connected without a reason under error/"
        );
    }

    assert_eq!(env.be_key(&healthy.dev, "state").as_deref(), Some("4"));
    healthy.loopback(&mut env, 1, 2, &pattern(3000, u32::from(flags)));
}
