//! The seed corpus: a few inputs per target that reach deep on the first run (well-formed
//! requests and frames like the crates' own tests send, plus one or two hostile ones), built
//! here from the same structures so they stay meaningful. `XDD_FUZZ_BLESS=1 cargo test
//! --manifest-path fuzz/Cargo.toml` writes them to `corpus/<target>/seed-<name>`; the test
//! `seeds_are_in_the_corpus` fails when one is missing or stale.

use crate::harness::{blk, net};
use netback::wire::{ExtraKind, ExtraRepr, Gso, GsoKind, TxRequestRepr};
use xen_abi::blkif::*;
use xen_abi::xs_wire::{encode, XsMsgType};
use xen_abi::WireStruct;

/// A named seed input.
pub type Seed = (&'static str, Vec<u8>);

/// The seeds of `target` (empty for a target without any).
pub fn seeds(target: &str) -> Vec<Seed> {
    match target {
        "appliance" => appliance(),
        "audioback_stream" => audioback_stream(),
        "blkback_request" => blkback_request(),
        "blkback_vbd" => blkback_vbd(),
        "netback_frame" => netback_frame(),
        "netback_tx_chain" => netback_tx_chain(),
        "netback_vif" => netback_vif(),
        "options" => options(),
        "ring_indices" => ring_indices(),
        "usbback_vusb" => usbback_vusb(),
        "xenbus_frontend" => xenbus_frontend(),
        "xenstore_client" => xenstore_client(),
        "xlcfg" => xlcfg(),
        _ => Vec::new(),
    }
}

fn appliance() -> Vec<Seed> {
    let toml = r#"
[settings]
image_dir = "/boot/xdd"
ready_timeout_s = 20

[defaults]
vif = "netdd"

[[driver_domain]]
config = "/etc/xdd/netdd.cfg"
serves = ["vif"]

[[driver_domain]]
name = "blkdd"
image = "blkback"
type = "pv"
memory = 16
serves = ["vbd"]
devices = ["0000:00:04.0"]
cmdline = "blkback.vol=vol1:ram:64M"

[[guest]]
config = "/etc/xen/web1.cfg"
"#;
    let cfg = "name = \"@\"\nmemory = 128\nvif = [ 'backend=netdd,mac=00:16:3e:00:01:10' ]\n\
               disk = [ 'backend=blkdd,vdev=xvda,target=vol1' ]\n";
    vec![("example", [toml.as_bytes(), b"\0", cfg.as_bytes()].concat())]
}

fn blkback_request() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let seg = |gref, first, last| BlkifRequestSegment {
        gref,
        first_sect: first,
        last_sect: last,
    };
    let mut read = BlkifRequest {
        operation: BLKIF_OP_READ,
        nr_segments: 2,
        id: 42,
        sector_number: 2048,
        ..Default::default()
    };
    read.seg[0] = seg(8, 0, 7);
    read.seg[1] = seg(9, 1, 3);
    seeds.push(("read", [&[0, 4][..], &slot(&read)].concat()));
    let mut grefs = [0u32; 8];
    grefs[0] = 7;
    let indirect = BlkifRequestIndirect {
        operation: BLKIF_OP_INDIRECT,
        indirect_op: BLKIF_OP_WRITE,
        nr_segments: 16,
        id: 7,
        sector_number: 0,
        handle: 0,
        indirect_grefs: grefs,
    };
    let mut page = Vec::new();
    for i in 0..16 {
        page.extend_from_slice(&wire(&seg(100 + i, 0, 7)));
    }
    seeds.push(("indirect", [&[0, 1][..], &slot(&indirect), &page].concat()));
    let discard = BlkifRequestDiscard {
        operation: BLKIF_OP_DISCARD,
        flag: BLKIF_DISCARD_SECURE,
        handle: 0,
        id: 3,
        sector_number: 8,
        nr_sectors: 64,
    };
    seeds.push(("discard", [&[0, 0][..], &slot(&discard)].concat()));
    seeds
}

fn blkback_vbd() -> Vec<Seed> {
    let g = crate::blkback_vbd::page_grefs();
    let seg = |gref, first, last| BlkifRequestSegment {
        gref,
        first_sect: first,
        last_sect: last,
    };
    let rw = |op, id, sector, segs: &[BlkifRequestSegment]| {
        let mut r = BlkifRequest {
            operation: op,
            nr_segments: segs.len() as u8,
            id,
            sector_number: sector,
            ..Default::default()
        };
        r.seg[..segs.len()].copy_from_slice(segs);
        slot(&r)
    };
    let flush = slot(&BlkifRequest {
        operation: BLKIF_OP_FLUSH_DISKCACHE,
        id: 5,
        ..Default::default()
    });
    let discard = slot(&BlkifRequestDiscard {
        operation: BLKIF_OP_DISCARD,
        flag: 0,
        handle: 0,
        id: 6,
        sector_number: 64,
        nr_sectors: 16,
    });
    let mut unknown = [0xaau8; 112];
    unknown[0] = 42;
    let mut grefs = [0u32; 8];
    grefs[0] = g[2];
    let indirect = slot(&BlkifRequestIndirect {
        operation: BLKIF_OP_INDIRECT,
        indirect_op: BLKIF_OP_WRITE,
        nr_segments: 16,
        id: 9,
        sector_number: 128,
        handle: 0,
        indirect_grefs: grefs,
    });
    let mut ipage = Vec::new();
    for i in 0..16 {
        ipage.extend_from_slice(&wire(&seg(g[i % 2], 0, 7)));
    }
    let requests = |flags: u8, slots: &[Vec<u8>], page: &[u8]| {
        let mut out = vec![flags, slots.len() as u8];
        for s in slots {
            out.extend_from_slice(s);
        }
        out.extend_from_slice(page);
        out
    };
    let write = rw(BLKIF_OP_WRITE, 1, 8, &[seg(g[0], 0, 7), seg(g[1], 0, 7)]);
    let read = rw(BLKIF_OP_READ, 2, 8, &[seg(g[0], 2, 5)]);
    vec![
        (
            "io",
            requests(0, &[write.clone(), read.clone(), flush, discard], &[]),
        ),
        ("indirect", requests(0, &[indirect.clone(), read], &ipage)),
        (
            "persistent-4k",
            requests(1 | 4, std::slice::from_ref(&write), &[]),
        ),
        (
            "read-only",
            requests(2, &[write, indirect, unknown.to_vec()], &ipage),
        ),
    ]
}

fn netback_frame() -> Vec<Seed> {
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let tcp = net::tcp_frame(
        net::mac(6),
        net::mac(5),
        net::ip(5),
        net::ip(6),
        &payload,
        true,
    );
    let udp = net::udp_frame(
        net::mac(6),
        net::mac(5),
        net::ip(5),
        net::ip(6),
        &payload[..600],
    );
    let tcp6 = tcp6_frame(&payload[..2000], &[]);
    let tcp6_ext = tcp6_frame(&payload[..300], &[6, 0, 0, 0, 0, 0, 0, 0]);
    // flags: csum (bits 0-1), GSO (2), GSO v6 (3), port caps (4-7); mss; max_frame.
    let seed = |flags: u8, mss: u16, max: u16, frame: &[u8]| {
        [&[flags][..], &mss.to_le_bytes(), &max.to_le_bytes(), frame].concat()
    };
    vec![
        ("tcp4-gso-segmented", seed(2 | 4, 1448, 1514 - 64, &tcp)),
        (
            "tcp4-gso-passed",
            seed(2 | 4 | 0x10 | 0x40, 1448, 1514 - 64, &tcp),
        ),
        ("tcp4-partial", seed(2, 0, 9000, &tcp)),
        ("udp4-partial", seed(2, 0, 1514 - 64, &udp)),
        ("tcp6-gso", seed(2 | 4 | 8, 1220, 1514 - 64, &tcp6)),
        ("tcp6-ext", seed(2 | 4 | 8, 100, 1514 - 64, &tcp6_ext)),
    ]
}

/// An Ethernet + IPv6 (+ `ext`, a hop-by-hop header) + TCP frame with `payload`.
fn tcp6_frame(payload: &[u8], ext: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&net::mac(6));
    f.extend_from_slice(&net::mac(5));
    f.extend_from_slice(&[0x86, 0xdd]);
    let plen = (ext.len() + 20 + payload.len()) as u16;
    let next = if ext.is_empty() { 6 } else { 0 };
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&plen.to_be_bytes());
    f.extend_from_slice(&[next, 64]);
    f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]);
    f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6]);
    f.extend_from_slice(ext);
    f.extend_from_slice(&[0x03, 0xe8, 0x07, 0xd0, 1, 2, 3, 4, 0, 0, 0, 0, 0x50, 0x18]);
    f.extend_from_slice(&[0x02, 0x00, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

fn tx_slot(r: TxRequestRepr) -> [u8; 12] {
    let mut b = [0u8; 12];
    r.emit().write_to(&mut b).expect("12 bytes");
    b
}

fn extra_slot(e: ExtraRepr) -> [u8; 12] {
    let mut b = [0u8; 12];
    e.emit().write_to(&mut b).expect("12 bytes");
    b
}

fn req(gref: u32, offset: u16, size: u16, id: u16, more: bool) -> TxRequestRepr {
    TxRequestRepr {
        gref,
        offset,
        size,
        id,
        csum_blank: false,
        data_validated: false,
        more_data: more,
        extra_info: false,
    }
}

fn gso_extra(mss: u16) -> [u8; 12] {
    extra_slot(ExtraRepr {
        kind: ExtraKind::Gso(Gso {
            kind: GsoKind::TcpV4,
            mss,
        }),
        more: false,
    })
}

/// A packet of `len` bytes in `n` slots over pages `grefs[i % 4]`, slot `i` at offset
/// `i * (len / n)` (where the same bytes sit in every page).
fn chain(grefs: &[u32], first_id: u16, len: u16, n: u16, gso: Option<u16>) -> Vec<[u8; 12]> {
    let per = len / n;
    let mut out = Vec::new();
    for i in 0..n {
        let size = if i == 0 {
            len
        } else if i + 1 == n {
            len - per * (n - 1)
        } else {
            per
        };
        let mut r = req(
            grefs[usize::from(i) % grefs.len()],
            i * per,
            size,
            first_id + i,
            i + 1 < n,
        );
        if i == 0 && gso.is_some() {
            r.extra_info = true;
            r.csum_blank = true;
            r.data_validated = true;
        }
        out.push(tx_slot(r));
        if let (0, Some(mss)) = (i, gso) {
            out.push(gso_extra(mss));
        }
    }
    out
}

fn netback_tx_chain() -> Vec<Seed> {
    let g = [10, 11, 12, 13];
    let cat = |slots: Vec<[u8; 12]>| slots.concat();
    let mut thin = vec![tx_slot(req(10, 0, 60, 0, true))];
    for i in 1..18 {
        thin.push(tx_slot(req(10, i * 8, 3, i, i != 17)));
    }
    let mut bad_extra = vec![tx_slot(TxRequestRepr {
        extra_info: true,
        ..req(10, 0, 100, 5, false)
    })];
    bad_extra.push([9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    bad_extra.push([1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    bad_extra.push(tx_slot(req(10, 0, 60, 6, false)));
    vec![
        ("one-slot", cat(chain(&g, 0, 60, 1, None))),
        ("three-slots", cat(chain(&g, 0, 3000, 3, None))),
        ("gso", cat(chain(&g, 0, 9000, 3, Some(1448)))),
        ("eighteen-slots", cat(thin)),
        ("bad-extras", cat(bad_extra)),
    ]
}

fn netback_vif() -> Vec<Seed> {
    let g = crate::netback_vif::data_grefs(false);
    let udp = net::udp_frame(
        net::mac(6),
        net::mac(5),
        net::ip(5),
        net::ip(6),
        &net::pattern(1000, 1),
    );
    let payload: Vec<u8> = net::pattern(3000, 2);
    let tcp = net::tcp_frame(
        net::mac(6),
        net::mac(5),
        net::ip(5),
        net::ip(6),
        &payload,
        true,
    );
    let seed = |flags: u8, slots: &[[u8; 12]], data: &[u8]| {
        let mut out = vec![flags, slots.len() as u8];
        for s in slots {
            out.extend_from_slice(s);
        }
        out.extend_from_slice(data);
        out
    };
    let len = |f: &[u8]| f.len() as u16;
    let mut bad = chain(&g, 0, len(&udp), 2, None);
    bad.push([9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    vec![
        (
            "udp-one-slot",
            seed(0, &chain(&g, 0, len(&udp), 1, None), &udp),
        ),
        (
            "udp-three-slots",
            seed(1, &chain(&g, 0, len(&udp), 3, None), &udp),
        ),
        (
            "tcp-gso-to-plain",
            seed(1, &chain(&g, 0, len(&tcp), 2, Some(1448)), &tcp),
        ),
        (
            "tcp-gso-to-linux",
            seed(0, &chain(&g, 0, len(&tcp), 2, Some(1448)), &tcp),
        ),
        ("runt-after-packet", seed(0, &bad, &udp)),
        ("hostile-receiver", {
            let r = crate::netback_vif::rx_grefs();
            let rx = |id: u16, gref: u32| {
                let mut b = [0u8; 8];
                b[..2].copy_from_slice(&id.to_le_bytes());
                b[4..].copy_from_slice(&gref.to_le_bytes());
                b
            };
            let mut out = vec![4u8];
            let g = crate::netback_vif::data_grefs(true);
            let tx = chain(&g, 0, len(&tcp), 2, Some(1448));
            out.push(tx.len() as u8);
            tx.iter().for_each(|s| out.extend_from_slice(s));
            let reqs = [
                rx(0, r[0]),
                rx(1, r[1]),
                rx(1, r[2]),
                rx(9, 0xdead),
                rx(3, r[3]),
            ];
            out.push(reqs.len() as u8);
            reqs.iter().for_each(|q| out.extend_from_slice(q));
            out.extend_from_slice(&tcp);
            out
        }),
        (
            "hostile-req-prod",
            [
                seed(2, &chain(&g, 0, len(&udp), 1, None), &[]),
                1000u32.to_le_bytes().to_vec(),
                udp.clone(),
            ]
            .concat(),
        ),
    ]
}

fn options() -> Vec<Seed> {
    let line = |n: u64, s: &str| [&n.to_le_bytes()[..], s.as_bytes()].concat();
    vec![
        (
            "netback",
            line(
                1 << 20,
                "netback.uplink=nic netback.ip=10.0.0.1/24 netback.antispoof=1 console=hvc0",
            ),
        ),
        (
            "netback-dhcp",
            line(0, "netback.ip=dhcp netback.mac=00:16:3e:00:00:01"),
        ),
        (
            "blkback",
            line(
                u64::MAX,
                "blkback.vol=vol1:ram:64M blkback.vol=data:disk:0+512M \
                 blkback.vol=golden:disk:512M+1G:ro:4k blkback.queues=4",
            ),
        ),
        ("uint", line(4096, "18446744073709551615")),
    ]
}

fn ring_indices() -> Vec<Seed> {
    // size 32, start near the wrap; produce, take, answer, consume, final checks.
    let start = (u32::MAX - 5).to_le_bytes();
    let honest = [
        &[5u8][..],
        &start,
        &[0, 3, 0, 3, 1, 2, 2, 2, 3, 4, 5, 0, 3, 1, 2, 3],
    ]
    .concat();
    let hostile = [
        &[5u8][..],
        &start,
        &[0, 1, 1, 6, 0xe8, 3, 0, 0, 1, 2, 7, 0, 0, 0, 0x10, 3, 4, 5],
    ]
    .concat();
    vec![("honest", honest), ("hostile", hostile)]
}

fn xenbus_frontend() -> Vec<Seed> {
    // Choice bytes per key (see xenbus_frontend.rs): 0 absent, 1 + 5k the k-th real grant or
    // port (or "1"), 3 + 5k the number k.
    let blk = [
        1, // ring-ref: page 0
        0, 0, 0, // ring-page-order, ring-ref0, ring-ref1
        1, // event-channel: port 0
        1, // protocol
        1, // feature-persistent
        0, 0, 0, 0, 0, // multi-queue-num-queues, queue-*
    ];
    let blk_mq = [
        0, 8, 1, 6, 0, 1, 1, // order 1 over pages 0 and 1
        13, 1, 1, 6, 6, // two queues
    ];
    let net = [
        1, 6, 1, 0, 0, // tx page 0, rx page 1, one event channel
        1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
    ];
    let net_split = [1, 6, 0, 1, 6, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
    let seed = |backend: u8, keys: &[u8], states: &[u8]| [&[backend][..], keys, states].concat();
    vec![
        ("blk-connect", seed(0, &blk, &[])),
        ("blk-flapping", seed(0, &blk, &[3, 5, 6, 1, 3, 4, 7, 6])),
        ("blk-multi-queue", seed(0, &blk_mq, &[])),
        ("net-connect", seed(1, &net, &[])),
        ("net-split", seed(1, &net_split, &[4, 5, 6, 4, 1])),
    ]
}

fn xenstore_client() -> Vec<Seed> {
    let mut stream = Vec::new();
    let mut msg = |ty: XsMsgType, req: u32, tx: u32, payload: &[u8]| {
        let mut buf = [0u8; 4096 + 16];
        let n = encode(ty, req, tx, &[payload], &mut buf).expect("fits");
        stream.extend_from_slice(&buf[..n]);
    };
    let ev = b"/local/domain/1/backend\0be\0";
    msg(XsMsgType::Watch, 1, 0, b"OK\0");
    msg(XsMsgType::WatchEvent, 0, 0, ev);
    msg(XsMsgType::Read, 2, 0, b"4");
    msg(
        XsMsgType::WatchEvent,
        0,
        0,
        b"/local/domain/1/backend/vif/5\0be\0",
    );
    msg(XsMsgType::Directory, 3, 0, b"5\x006\0");
    msg(XsMsgType::GetPerms, 4, 0, b"b0\0r5\0");
    msg(XsMsgType::GetDomainPath, 5, 0, b"/local/domain/5\0");
    msg(XsMsgType::TransactionStart, 6, 0, b"7\0");
    msg(XsMsgType::Read, 7, 7, b"8");
    msg(XsMsgType::Write, 8, 7, b"OK\0");
    msg(XsMsgType::Error, 9, 7, b"EAGAIN\0");
    msg(XsMsgType::TransactionStart, 10, 0, b"8\0");
    msg(XsMsgType::Read, 11, 8, b"8");
    msg(XsMsgType::Write, 12, 8, b"OK\0");
    msg(XsMsgType::TransactionEnd, 13, 8, b"OK\0");
    msg(XsMsgType::Write, 14, 0, b"OK\0");
    msg(
        XsMsgType::WatchEvent,
        0,
        0,
        b"/local/domain/1/backend/vbd\0be\0",
    );
    msg(
        XsMsgType::WatchEvent,
        0,
        0,
        b"/local/domain/1/backend\0other\0",
    );
    msg(XsMsgType::Unwatch, 15, 0, b"OK\0");
    vec![
        ("script", [&[255u8][..], &stream].concat()),
        ("bytewise", [&[0u8][..], &stream].concat()),
    ]
}

fn xlcfg() -> Vec<Seed> {
    let text = r#"# a guest
name = "web1"
type = "pvh"
memory = 160
vcpus = 0x2
vif = [ 'backend=netdd,mac=00:16:3e:00:01:10', "bridge=xenbr0" ]
disk = [ 'backend=blkdd,vdev=xvda,target=vol1' ]
extra = "console=hvc0 \x41\101\t"; on_crash = "destroy"
pci = [
    "0000:00:04.0",
    [ 'nested', 1 ],
]
pci += [ '0000:00:05.0' ]
"#;
    vec![
        ("guest", text.as_bytes().to_vec()),
        ("error", b"name = web1\n".to_vec()),
    ]
}

fn usbback_vusb() -> Vec<Seed> {
    use xen_abi::usbif::*;
    let g = crate::usbback_vusb::page_grefs();
    let seg = |gref: u32, length: u16| UsbifRequestSegment {
        gref,
        offset: 0,
        length,
    };
    let urb = |id: u16, pipe: UsbifPipe, u: [u8; 8], segs: &[UsbifRequestSegment]| {
        let mut r = UsbifUrbRequest {
            id,
            pipe: pipe.0,
            nr_buffer_segs: segs.len() as u16,
            buffer_length: segs.iter().map(|s| s.length).sum(),
            u,
            ..Default::default()
        };
        r.seg[..segs.len()].copy_from_slice(segs);
        wire(&r)
    };
    let get_device = [0x80, 6, 0, 1, 0, 0, 18, 0];
    let control_in = UsbifPipe::new(1, 5, 0, true, UsbPipeType::Control);
    let bulk_out = UsbifPipe::new(1, 5, 2, false, UsbPipeType::Bulk);
    let bulk_in = UsbifPipe::new(1, 5, 1, true, UsbPipeType::Bulk);
    let int_in = UsbifPipe::new(1, 5, 3, true, UsbPipeType::Interrupt);
    let iso_out = UsbifPipe::new(1, 5, 4, false, UsbPipeType::Isochronous);
    let seed = |flags: u8, reqs: &[Vec<u8>], page: &[u8]| {
        let mut out = vec![flags, reqs.len() as u8];
        reqs.iter().for_each(|r| out.extend_from_slice(r));
        out.extend_from_slice(page);
        out
    };
    let mut iso = {
        let mut r = UsbifUrbRequest {
            id: 30,
            pipe: iso_out.0,
            nr_buffer_segs: 1,
            buffer_length: 64,
            u: [1, 0, 0, 0, 2, 0, 1, 0],
            ..Default::default()
        };
        r.seg[0] = seg(g[0], 64);
        r.seg[1] = seg(g[2], 32);
        r
    };
    let descriptors: Vec<u8> = [(0u32, 32u32), (32, 32)]
        .iter()
        .flat_map(|&(offset, length)| {
            usbback::wire::IsoDescriptor {
                offset,
                length,
                ..Default::default()
            }
            .write()
        })
        .collect();
    let iso_ok = wire(&iso);
    iso.u[4] = 200;
    let iso_too_many = wire(&iso);
    let mut unlink = UsbifUrbRequest {
        id: 41,
        pipe: int_in.with_unlink().0,
        ..Default::default()
    };
    unlink.u[..2].copy_from_slice(&40u16.to_le_bytes());
    vec![
        (
            "control-get-descriptor",
            seed(0, &[urb(1, control_in, get_device, &[seg(g[0], 18)])], &[]),
        ),
        (
            "bulk-loopback",
            seed(
                0,
                &[
                    urb(10, bulk_out, [0; 8], &[seg(g[0], 100)]),
                    urb(11, bulk_in, [0; 8], &[seg(g[1], 100)]),
                ],
                &[],
            ),
        ),
        (
            "iso-out",
            seed(0, std::slice::from_ref(&iso_ok), &descriptors),
        ),
        (
            "interrupt-then-unlink",
            seed(
                0,
                &[
                    urb(40, int_in, [0, 0, 0, 0, 0, 0, 0, 0], &[seg(g[1], 8)]),
                    wire(&unlink),
                ],
                &[],
            ),
        ),
        (
            "faulty-device",
            seed(
                0x1f,
                &[
                    urb(50, bulk_in, [0; 8], &[seg(g[1], 512)]),
                    urb(51, int_in, [0; 8], &[seg(g[1], 8)]),
                    urb(
                        52,
                        control_in,
                        [0x80, 6, 0, 1, 0, 0, 0xff, 0xff],
                        &[seg(g[0], 18)],
                    ),
                    iso_too_many,
                ],
                &descriptors,
            ),
        ),
    ]
}

fn audioback_stream() -> Vec<Seed> {
    use xen_abi::sndif::*;
    let (dir, buffer, hostile) = crate::audioback_stream::grefs();
    let req = |id: u16, op: u8, payload: &dyn Fn() -> XensndReq| {
        let mut r = payload();
        r.id = id;
        r.operation = op;
        wire(&r)
    };
    let open = |dir: u32| {
        move || {
            XensndReq::new(
                0,
                XENSND_OP_OPEN,
                &XensndOpenReq {
                    pcm_rate: 48_000,
                    pcm_format: XENSND_PCM_FORMAT_S16_LE,
                    pcm_channels: 2,
                    reserved: 0,
                    buffer_sz: 16384,
                    gref_directory: dir,
                    period_sz: 4096,
                },
            )
            .expect("fits")
        }
    };
    let rw = |offset: u32, length: u32| {
        move || XensndReq::new(0, 0, &XensndRwReq { offset, length }).expect("fits")
    };
    let trigger =
        |t: u8| move || XensndReq::new(0, 0, &XensndTriggerReq { type_: t }).expect("fits");
    let query = || XensndReq::new(0, 0, &XensndQueryHwParam::default()).expect("fits");
    let seed = |reqs: &[(u8, u8, Vec<u8>)], page: &[u8]| {
        let mut out = vec![reqs.len() as u8];
        for (stream, delay, r) in reqs {
            out.push(*stream);
            out.push(*delay);
            out.extend_from_slice(r);
        }
        out.extend_from_slice(page);
        out
    };
    // A directory page whose `next` names itself (a loop), then the buffer pages.
    let mut looping = hostile.to_le_bytes().to_vec();
    for g in &buffer {
        looping.extend_from_slice(&g.to_le_bytes());
    }
    vec![
        (
            "play",
            seed(
                &[
                    (0, 0, req(1, XENSND_OP_OPEN, &open(dir))),
                    (0, 0, req(2, XENSND_OP_WRITE, &rw(0, 8192))),
                    (
                        0,
                        5,
                        req(3, XENSND_OP_TRIGGER, &trigger(XENSND_OP_TRIGGER_START)),
                    ),
                    (0, 20, req(4, XENSND_OP_WRITE, &rw(8192, 8192))),
                    (
                        0,
                        20,
                        req(5, XENSND_OP_TRIGGER, &trigger(XENSND_OP_TRIGGER_PAUSE)),
                    ),
                    (
                        0,
                        5,
                        req(6, XENSND_OP_TRIGGER, &trigger(XENSND_OP_TRIGGER_RESUME)),
                    ),
                    (
                        0,
                        5,
                        req(7, XENSND_OP_TRIGGER, &trigger(XENSND_OP_TRIGGER_STOP)),
                    ),
                    (0, 0, req(8, XENSND_OP_CLOSE, &rw(0, 0))),
                ],
                &[],
            ),
        ),
        (
            "query-volume-mute",
            seed(
                &[
                    (0, 0, req(1, XENSND_OP_HW_PARAM_QUERY, &query)),
                    (0, 0, req(2, XENSND_OP_OPEN, &open(dir))),
                    (0, 0, req(3, XENSND_OP_SET_VOLUME, &rw(0, 8))),
                    (0, 0, req(4, XENSND_OP_GET_VOLUME, &rw(0, 8))),
                    (0, 0, req(5, XENSND_OP_MUTE, &rw(0, 2))),
                    (0, 0, req(6, XENSND_OP_UNMUTE, &rw(0, 2))),
                ],
                &[],
            ),
        ),
        (
            "capture",
            seed(
                &[
                    (1, 0, req(1, XENSND_OP_OPEN, &open(dir))),
                    (
                        1,
                        0,
                        req(2, XENSND_OP_TRIGGER, &trigger(XENSND_OP_TRIGGER_START)),
                    ),
                    (1, 20, req(3, XENSND_OP_READ, &rw(0, 4096))),
                    (1, 0, req(4, XENSND_OP_CLOSE, &rw(0, 0))),
                ],
                &[],
            ),
        ),
        (
            "looping-directory",
            seed(
                &[
                    (0, 0, req(1, XENSND_OP_OPEN, &open(hostile))),
                    (0, 0, req(2, XENSND_OP_WRITE, &rw(16000, 4096))),
                    (0, 0, req(3, XENSND_OP_TRIGGER, &trigger(9))),
                    (1, 0, req(4, 77, &rw(0, 0))),
                ],
                &looping,
            ),
        ),
    ]
}

fn slot<T: WireStruct>(req: &T) -> Vec<u8> {
    blk::slot_of(req).0.to_vec()
}

fn wire<T: WireStruct>(v: &T) -> Vec<u8> {
    let mut b = vec![0u8; T::SIZE];
    v.write_to(&mut b).expect("sized");
    b
}
