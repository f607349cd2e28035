//! The hostile blkfront: one blkif device (a one-page ring, one event channel) and the
//! attacks on it.

use super::front::{Front, CLOSING, CONNECTED};
use super::{frame, nap, Log, Opts};
use crate::xendev::{Pages, PAGE};
use std::time::{Duration, Instant};
use xen_abi::blkif::*;
use xen_abi::WireStruct;

/// The attacks `hostile blk` knows.
pub const ATTACKS: &[&str] = &[
    "basic",
    "beyond",
    "segments",
    "indirect",
    "unknown-op",
    "readonly",
    "bad-grants",
    "double-fetch",
    "index-ahead",
    "storm",
    "config",
    "flap",
    "watch-flood",
];

const SLOT: usize = 112;
const DATA_PAGES: usize = 16;
/// What fills data pages before a read: bytes the backend did not write.
const FILL: u8 = 0xa5;
/// Request ids carry this in their high bytes, so a response slot whose padding the backend
/// left unwritten still shows request bytes (XSA-216).
const ID_TAG: u64 = 0xa5a5_a5a5_a5a5_a500;
const STALE: &[&str] = &[
    "multi-queue-num-queues",
    "ring-page-order",
    "ring-ref0",
    "feature-persistent",
];

/// A response as the frontend sees it.
#[derive(Debug, Clone, Copy)]
struct Rsp {
    id: u64,
    op: u8,
    status: i16,
}

struct Blk {
    f: Front,
    ring: Pages,
    data: Pages,
    port: u32,
    pvt: u32,
    cons: u32,
    size: u32,
    sectors: u64,
    sector_size: u64,
    read_only: bool,
    max_indirect: u64,
}

impl Blk {
    fn setup(opts: &Opts, keys: &[(&str, String)]) -> Result<Self, String> {
        let mut f = Front::open("vbd", opts.dev)?;
        f.reset(STALE)?;
        let be = f.be_id;
        let ring = f.gnt.alloc(be, 1)?;
        ring.store_u32(4, 1);
        ring.store_u32(12, 1);
        let data = f.gnt.alloc(be, DATA_PAGES)?;
        let port = f.evt.bind_unbound(be)?;
        let mut all: Vec<(&str, String)> = vec![
            ("ring-ref", ring.gref(0).to_string()),
            ("event-channel", port.to_string()),
            ("protocol", "x86_64-abi".into()),
            ("feature-persistent", "0".into()),
        ];
        for (k, v) in keys {
            all.retain(|(a, _)| a != k);
            all.push((k, v.clone()));
        }
        for (k, v) in &all {
            f.set(k, v)?;
        }
        Ok(Self {
            f,
            ring,
            data,
            port,
            pvt: 0,
            cons: 0,
            size: BLKIF_RING_SIZE,
            sectors: 0,
            sector_size: 512,
            read_only: false,
            max_indirect: 0,
        })
    }

    fn connect(opts: &Opts, log: &mut Log) -> Result<Self, String> {
        let mut b = Self::setup(opts, &[])?;
        b.f.set("state", &CONNECTED.to_string())?;
        b.f.wait_be(&[CONNECTED], 15.0)
            .map_err(|s| format!("backend did not connect (state {s})"))?;
        let num = |b: &mut Self, k: &str| b.f.be_key(k).and_then(|v| v.parse::<u64>().ok());
        b.sectors = num(&mut b, "sectors").ok_or("backend has no sectors")?;
        b.sector_size = num(&mut b, "sector-size").unwrap_or(512);
        b.read_only = num(&mut b, "info").unwrap_or(0) & u64::from(VDISK_READONLY) != 0;
        b.max_indirect = num(&mut b, "feature-max-indirect-segments").unwrap_or(0);
        log.note(format!(
            "connected vbd {} (backend {}): {} sectors of {}, read-only {}, indirect {}",
            opts.dev, b.f.be, b.sectors, b.sector_size, b.read_only, b.max_indirect
        ));
        if b.sector_size != 512 {
            return Err("the attacks assume 512-byte sectors".into());
        }
        Ok(b)
    }

    fn put(&mut self, bytes: &[u8]) {
        let mut slot = [0u8; SLOT];
        slot[..bytes.len()].copy_from_slice(bytes);
        self.ring
            .write(64 + (self.pvt % self.size) as usize * SLOT, &slot);
        self.pvt = self.pvt.wrapping_add(1);
    }

    fn push(&mut self) -> Result<(), String> {
        self.ring.store_u32(0, self.pvt);
        self.f.evt.notify(self.port)
    }

    /// Collects responses until all produced requests are answered or `secs` pass; checks
    /// every response's padding.
    fn collect(&mut self, secs: f64) -> Result<Vec<Rsp>, String> {
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let mut out = Vec::new();
        loop {
            let prod = self.ring.load_u32(8);
            if prod.wrapping_sub(self.cons) > self.pvt.wrapping_sub(self.cons) {
                return Err(format!(
                    "backend's rsp_prod {prod} passes our req_prod {}",
                    self.pvt
                ));
            }
            while self.cons != prod {
                let at = 64 + (self.cons % self.size) as usize * SLOT;
                let raw = self.ring.read(at, 16);
                if raw[9] != 0 || raw[12..16] != [0; 4] {
                    return Err(format!(
                        "response padding not written by the backend: {raw:02x?}"
                    ));
                }
                let r = BlkifResponse::read_from(&raw).unwrap();
                out.push(Rsp {
                    id: r.id,
                    op: r.operation,
                    status: r.status,
                });
                self.cons = self.cons.wrapping_add(1);
            }
            self.ring.store_u32(12, self.cons.wrapping_add(1));
            if self.cons == self.pvt || Instant::now() > end {
                return Ok(out);
            }
            nap();
        }
    }

    /// One read or write request of `segs` at `sector`.
    fn rw(&mut self, op: u8, n: u64, sector: u64, segs: &[BlkifRequestSegment], nr: u8) {
        let mut r = BlkifRequest {
            operation: op,
            nr_segments: nr,
            handle: 0,
            id: ID_TAG | n,
            sector_number: sector,
            seg: Default::default(),
        };
        for (i, s) in segs.iter().take(BLKIF_MAX_SEGMENTS_PER_REQUEST).enumerate() {
            r.seg[i] = *s;
        }
        let mut b = [0u8; SLOT];
        r.write_to(&mut b).unwrap();
        self.put(&b);
    }

    fn seg(&self, page: usize, first: u8, last: u8) -> BlkifRequestSegment {
        BlkifRequestSegment {
            gref: self.data.gref(page),
            first_sect: first,
            last_sect: last,
        }
    }

    /// Submits one request and returns its status (None: no answer in time).
    fn one(&mut self) -> Result<Option<i16>, String> {
        self.push()?;
        let r = self.collect(5.0)?;
        Ok(r.first().map(|r| r.status))
    }

    /// A write of page 0 at `sector` and a partial read-back (sectors 2..=5 into a page
    /// filled with FILL): the data matches and nothing outside the segment was written.
    fn round_trip(&mut self, sector: u64, seed: u32) -> Result<(), String> {
        let pat = frame::pattern(PAGE, seed);
        self.data.write(0, &pat);
        if !self.read_only {
            let s = self.seg(0, 0, 7);
            self.rw(BLKIF_OP_WRITE, 1, sector, &[s], 1);
            if self.one()? != Some(BLKIF_RSP_OKAY) {
                return Err(format!("a good write at sector {sector} failed"));
            }
        }
        self.data.fill(PAGE, PAGE, FILL);
        let s = self.seg(1, 2, 5);
        self.rw(BLKIF_OP_READ, 2, sector + 2, &[s], 1);
        if self.one()? != Some(BLKIF_RSP_OKAY) {
            return Err(format!("a good read at sector {sector} failed"));
        }
        let got = self.data.read(PAGE, PAGE);
        if got[..1024].iter().chain(&got[3072..]).any(|&b| b != FILL) {
            return Err("the backend wrote outside the read's segment".into());
        }
        if !self.read_only && got[1024..3072] != pat[1024..3072] {
            return Err("read back other data than written".into());
        }
        Ok(())
    }

    /// Submits the queued requests and requires each answered with a status in `allowed`.
    fn expect_all(&mut self, what: &str, allowed: &[i16], log: &mut Log) -> Result<usize, String> {
        let produced = self.pvt.wrapping_sub(self.cons) as usize;
        self.push()?;
        let r = self.collect(5.0)?;
        log.note(format!(
            "{what}: {produced} requests, responses {:?}",
            r.iter()
                .map(|r| (r.id & 0xff, r.op, r.status))
                .collect::<Vec<_>>()
        ));
        if r.len() != produced {
            if self.f.be_state() == CLOSING {
                return Err(format!(
                    "{what}: the backend closed the device instead of answering"
                ));
            }
            return Err(format!("{what}: {} of {produced} answered", r.len()));
        }
        if let Some(bad) = r.iter().find(|r| !allowed.contains(&r.status)) {
            return Err(format!(
                "{what}: request {} answered {} (want one of {allowed:?})",
                bad.id & 0xff,
                bad.status
            ));
        }
        Ok(produced)
    }
}

const ERR: &[i16] = &[BLKIF_RSP_ERROR];
const ERR_OR_UNSUPPORTED: &[i16] = &[BLKIF_RSP_ERROR, BLKIF_RSP_EOPNOTSUPP];

/// Runs one attack.
pub fn run(attack: &str, o: &Opts, log: &mut Log) -> Result<String, String> {
    if attack == "config" {
        return config(o, log);
    }
    if attack == "flap" {
        return flap(o, log);
    }
    let mut b = Blk::connect(o, log)?;
    b.round_trip(64, 1)?;
    let r = match attack {
        "basic" => Ok("write and partial read back intact, response padding zero".into()),
        "beyond" => {
            let s = b.seg(0, 0, 7);
            let end = b.sectors;
            b.rw(BLKIF_OP_READ, 1, end, &[s], 1);
            b.rw(BLKIF_OP_READ, 2, end - 4, &[s], 1);
            b.rw(BLKIF_OP_READ, 3, u64::MAX - 3, &[s], 1);
            b.rw(BLKIF_OP_WRITE, 4, end - 1, &[s], 1);
            let segs = [s; 11];
            b.rw(BLKIF_OP_READ, 5, end - 80, &segs, 11);
            b.expect_all("sectors beyond the disk", ERR, log)
                .map(|n| format!("{n} requests past the end refused"))
        }
        "segments" => {
            let s = b.seg(0, 0, 7);
            b.rw(BLKIF_OP_READ, 1, 0, &[s], 0);
            b.rw(BLKIF_OP_WRITE, 2, 0, &[s], 0);
            b.rw(BLKIF_OP_READ, 3, 0, &[s; 11], 12);
            b.rw(BLKIF_OP_READ, 4, 0, &[s; 11], 255);
            let bad = b.seg(0, 5, 3);
            b.rw(BLKIF_OP_READ, 5, 0, &[bad], 1);
            let bad = b.seg(0, 0, 8);
            b.rw(BLKIF_OP_READ, 6, 0, &[bad], 1);
            let bad = b.seg(0, 7, 255);
            b.rw(BLKIF_OP_WRITE, 7, 0, &[bad], 1);
            b.expect_all("bad segment counts and sector ranges", ERR, log)
                .map(|n| format!("{n} requests with bad segments refused"))
        }
        "indirect" => indirect(&mut b, log),
        "unknown-op" => {
            for (i, op) in [BLKIF_OP_RESERVED_1, 7, 8, 0x7f, 0xff].iter().enumerate() {
                let s = b.seg(0, 0, 7);
                b.rw(*op, i as u64, 0, &[s], 1);
            }
            b.expect_all("unknown operations", &[BLKIF_RSP_EOPNOTSUPP], log)
                .map(|n| format!("{n} unknown operations answered EOPNOTSUPP"))
        }
        "readonly" => {
            if !b.read_only {
                Err("readonly needs a read-only device (--dev of an access=ro disk)".into())
            } else {
                let s = b.seg(0, 0, 7);
                b.rw(BLKIF_OP_WRITE, 1, 0, &[s], 1);
                b.rw(BLKIF_OP_WRITE, 2, 8, &[s, s], 2);
                let d = BlkifRequestDiscard {
                    operation: BLKIF_OP_DISCARD,
                    flag: 0,
                    handle: 0,
                    id: ID_TAG | 3,
                    sector_number: 0,
                    nr_sectors: 64,
                };
                let mut raw = [0u8; SLOT];
                d.write_to(&mut raw).unwrap();
                b.put(&raw);
                b.expect_all(
                    "writes and discard on a read-only disk",
                    ERR_OR_UNSUPPORTED,
                    log,
                )
                .map(|n| format!("{n} writes/discards on a read-only disk refused"))
            }
        }
        "bad-grants" => {
            let revoked = b.f.gnt.alloc(b.f.be_id, 1)?.gref(0);
            let unused = b.data.gref(DATA_PAGES - 1).wrapping_add(5000);
            for (i, g) in [revoked, unused, 0x7fff_fff0].iter().enumerate() {
                let s = BlkifRequestSegment {
                    gref: *g,
                    first_sect: 0,
                    last_sect: 7,
                };
                b.rw(BLKIF_OP_READ, i as u64, 0, &[s], 1);
                let good = b.seg(0, 0, 7);
                // A good segment followed by a bad one: a partial map failure.
                b.rw(BLKIF_OP_WRITE, 10 + i as u64, 0, &[good, s], 2);
            }
            b.expect_all("revoked, never granted and out-of-range grants", ERR, log)
                .map(|n| format!("{n} requests with bad grants refused"))
        }
        "double-fetch" => double_fetch(&mut b, o, log),
        "index-ahead" => {
            b.ring.store_u32(0, b.pvt.wrapping_add(100_000));
            b.f.evt.notify(b.port)?;
            match b.f.wait_be(&[CLOSING], 5.0) {
                Ok(_) => Ok("req_prod far ahead closes the device".into()),
                Err(s) => Err(format!("req_prod far ahead: backend still in state {s}")),
            }
        }
        "storm" => {
            let end = Instant::now() + Duration::from_secs_f64(o.secs);
            let mut count = 0u64;
            while Instant::now() < end {
                for _ in 0..256 {
                    b.f.evt.notify(b.port)?;
                }
                count += 256;
            }
            log.note(format!("{count} notifications in {} s", o.secs));
            Ok(format!("{count} notifications"))
        }
        "watch-flood" => {
            for _ in 0..o.count {
                b.f.set("state", &CONNECTED.to_string())?;
                b.f.set("feature-persistent", "0")?;
            }
            Ok(format!("{} rewrites of watched nodes", o.count * 2))
        }
        _ => Err(format!(
            "unknown blk attack {attack} (known: {})",
            ATTACKS.join(" ")
        )),
    };
    let r = r.and_then(|s| {
        if attack == "index-ahead" || b.f.be_state() != CONNECTED && attack == "double-fetch" {
            return Ok(s);
        }
        if b.f.be_state() != CONNECTED {
            return Err(format!(
                "{s}, but the backend closed the device (state {})",
                b.f.be_state()
            ));
        }
        b.round_trip(128, 2)?;
        Ok(format!("{s}; good I/O still works"))
    });
    b.f.close();
    r
}

/// Indirect requests with bad counts and bad indirect pages.
fn indirect(b: &mut Blk, log: &mut Log) -> Result<String, String> {
    let req = |n: u64, nr: u16, grefs: &[u32]| {
        let mut r = BlkifRequestIndirect {
            operation: BLKIF_OP_INDIRECT,
            indirect_op: BLKIF_OP_READ,
            nr_segments: nr,
            id: ID_TAG | n,
            sector_number: 0,
            handle: 0,
            indirect_grefs: [0; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
        };
        r.indirect_grefs[..grefs.len()].copy_from_slice(grefs);
        let mut raw = [0u8; SLOT];
        r.write_to(&mut raw).unwrap();
        raw
    };
    // Indirect page 2: 512 segments, the first good, the rest with bad sector ranges.
    let good = b.seg(0, 0, 7);
    let mut page = vec![0u8; PAGE];
    for i in 0..SEGS_PER_INDIRECT_FRAME {
        let s = if i == 0 {
            good
        } else {
            BlkifRequestSegment {
                gref: good.gref,
                first_sect: 6,
                last_sect: 9,
            }
        };
        s.write_to(&mut page[i * 8..]).unwrap();
    }
    b.data.write(2 * PAGE, &page);
    let ind = b.data.gref(2);
    let max = b.max_indirect.min(u64::from(u16::MAX)) as u16;
    let cases: Vec<(&str, [u8; SLOT])> = vec![
        ("0 segments", req(1, 0, &[ind])),
        ("max+1 segments", req(2, max.saturating_add(1), &[ind; 8])),
        ("65535 segments", req(3, u16::MAX, &[ind; 8])),
        ("bad indirect gref", req(4, 8, &[0x7fff_fff0])),
        ("bad segments in the indirect page", req(5, 4, &[ind])),
    ];
    for (what, raw) in &cases {
        log.note(format!("indirect: {what}"));
        b.put(raw);
    }
    let allowed = if b.max_indirect == 0 {
        ERR_OR_UNSUPPORTED
    } else {
        ERR
    };
    b.expect_all("indirect requests", allowed, log).map(|n| {
        format!(
            "{n} bad indirect requests refused (backend offers {} indirect segments)",
            b.max_indirect
        )
    })
}

/// Item 1 for blkif: rewrite requests after producing them.
fn double_fetch(b: &mut Blk, o: &Opts, log: &mut Log) -> Result<String, String> {
    let end = Instant::now() + Duration::from_secs_f64(o.secs);
    let mut produced = 0u32;
    let mut answered = 0usize;
    while Instant::now() < end && b.f.be_state() == CONNECTED {
        let start = b.pvt;
        for i in 0..16u64 {
            let s = b.seg((i % 4) as usize, 0, 7);
            b.rw(BLKIF_OP_READ, i, 256 + i * 8, &[s], 1);
        }
        produced += 16;
        b.push()?;
        let t = Instant::now();
        let mut k = 0u32;
        while t.elapsed() < Duration::from_millis(20) {
            for s in start..b.pvt {
                let at = 64 + (s % b.size) as usize * SLOT;
                let v = k.wrapping_mul(2_654_435_761).wrapping_add(s);
                b.ring.write(at + 1, &[(v % 40) as u8]);
                b.ring
                    .write(at + 16, &u64::from(v).wrapping_mul(1 << 20).to_le_bytes());
                b.ring
                    .write(at + 24 + 4, &[(v >> 8) as u8, (v >> 16) as u8]);
                if k % 5 == 0 {
                    b.ring.write(at, &[(v >> 24) as u8]);
                }
            }
            k += 1;
        }
        let r = b.collect(5.0)?;
        // Responses go to the slots we keep rewriting: bytes 0 and 1 (operation and
        // segment count of a request) are the low bytes of a response's id there, so only
        // the id's upper six bytes are ours to check.
        for x in &r {
            if x.id >> 16 != ID_TAG >> 16 {
                return Err(format!("response with an id we never used: {:#x}", x.id));
            }
        }
        answered += r.len();
    }
    log.note(format!(
        "{produced} requests rewritten after production, {answered} answered, backend state {}",
        b.f.be_state()
    ));
    if b.f.be_state() == CONNECTED && answered != produced as usize {
        return Err(format!("{answered} responses for {produced} requests"));
    }
    Ok(format!("{produced} rewritten requests, each answered once"))
}

/// Item 14 for blkif.
fn config(o: &Opts, log: &mut Log) -> Result<String, String> {
    let cases: &[(&str, &str)] = &[
        ("ring-page-order", "30"),
        ("multi-queue-num-queues", "1000"),
        ("ring-ref", "4294967296"),
        ("ring-ref", "2147483000"),
        ("event-channel", "-1"),
        ("protocol", "x86_32-abi-bogus"),
    ];
    for (k, v) in cases {
        let mut b = Blk::setup(o, &[(k, v.to_string())])?;
        b.f.set("state", &CONNECTED.to_string())?;
        match b.f.wait_be(&[CLOSING, CONNECTED], 10.0) {
            Ok(CLOSING) => log.note(format!("{k}={v}: refused (backend Closing)")),
            Ok(s) => return Err(format!("{k}={v}: backend went to state {s}")),
            Err(s) => {
                return Err(format!(
                    "{k}={v}: backend in state {s}, neither refused nor connected"
                ))
            }
        }
        b.f.unset(k);
    }
    let mut b = Blk::connect(o, log)?;
    b.round_trip(64, 3)?;
    b.f.close();
    Ok(format!(
        "{} absurd configurations refused, then a sane one served",
        cases.len()
    ))
}

/// Item 8 for blkif.
fn flap(o: &Opts, log: &mut Log) -> Result<String, String> {
    let b = Blk::setup(o, &[])?;
    let mut f = Front::open("vbd", o.dev)?;
    let states = ["3", "4", "5", "1", "4", "6", "4", "3", "5", "6", "1"];
    for i in 0..o.count as usize {
        f.set("state", states[i % states.len()])?;
    }
    log.note(format!(
        "{} state writes; backend state {}",
        o.count,
        f.be_state()
    ));
    // Closed before the grants are freed, as in the net flap.
    f.reset(STALE)?;
    drop(b);
    let mut b = Blk::connect(o, log)?;
    b.round_trip(64, 4)?;
    b.f.close();
    Ok(format!(
        "{} state flips, then a clean connect served",
        o.count
    ))
}
