//! The hostile netfront: one netif device (TX and RX ring, one event channel) and the
//! attacks on it.

use super::frame::{self, Mac};
use super::front::{Front, CLOSING, CONNECTED};
use super::{nap, Log, Opts};
use crate::xendev::{Pages, PAGE};
use std::time::{Duration, Instant};
use xen_abi::netif::*;
use xen_abi::WireStruct;

/// The attacks `hostile net` knows.
pub const ATTACKS: &[&str] = &[
    "basic",
    "storm",
    "malformed",
    "bad-grants",
    "index-ahead",
    "index-behind",
    "rx-backlog",
    "split-headers",
    "max-slots",
    "double-fetch",
    "config",
    "flap",
    "watch-flood",
    "traffic",
    "tcp-sink",
];

const RING: u32 = NET_TX_RING_SIZE; // 256, as RX
const TX_DATA_PAGES: usize = 32;
const RX_PAGES: usize = 64;
/// What fills every RX buffer before it is posted: bytes the backend did not write.
const FILL: u8 = 0xa5;
/// Keys an earlier run may have left that change what the backend reads.
const STALE: &[&str] = &[
    "multi-queue-num-queues",
    "event-channel-tx",
    "event-channel-rx",
    "feature-sg",
    "feature-gso-tcpv4",
    "feature-no-csum-offload",
];

/// A connected hostile netfront.
struct Net {
    f: Front,
    tx: Pages,
    rx: Pages,
    txd: Pages,
    rxd: Pages,
    port: u32,
    tx_pvt: u32,
    tx_cons: u32,
    rx_pvt: u32,
    rx_cons: u32,
    next_page: usize,
    mac: Mac,
    ip: [u8; 4],
    peer: [u8; 4],
    peer_mac: Mac,
    /// RX buffers are posted again once consumed.
    repost: bool,
    /// Bytes found changed outside a received frame, over all RX buffers.
    outside_writes: usize,
    /// We offered `feature-sg`: without it every frame must come in one slot.
    sg: bool,
}

fn parse_mac(s: &str) -> Result<Mac, String> {
    let v: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("bad mac {s}"))?;
    v.try_into().map_err(|_| format!("bad mac {s}"))
}

impl Net {
    /// Resets device `opts.dev`, grants rings and buffers and writes the keys; `keys` may
    /// add or override keys (the attacks on configuration). Does not wait for Connected.
    fn setup(opts: &Opts, keys: &[(&str, String)]) -> Result<Self, String> {
        let mut f = Front::open("vif", opts.dev)?;
        f.reset(STALE)?;
        let mac = parse_mac(&f.xs.read(&format!("{}/mac", f.dir))?)?;
        let be = f.be_id;
        let tx = f.gnt.alloc(be, 1)?;
        let rx = f.gnt.alloc(be, 1)?;
        let txd = f.gnt.alloc(be, TX_DATA_PAGES)?;
        let rxd = f.gnt.alloc(be, RX_PAGES)?;
        for r in [&tx, &rx] {
            r.store_u32(4, 1);
            r.store_u32(12, 1);
        }
        let port = f.evt.bind_unbound(be)?;
        let mut all: Vec<(&str, String)> = vec![
            ("tx-ring-ref", tx.gref(0).to_string()),
            ("rx-ring-ref", rx.gref(0).to_string()),
            ("event-channel", port.to_string()),
            ("request-rx-copy", "1".into()),
            ("feature-rx-notify", "1".into()),
            ("feature-sg", if opts.sg { "1" } else { "0" }.into()),
            ("feature-no-csum-offload", "1".into()),
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
            tx,
            rx,
            txd,
            rxd,
            port,
            tx_pvt: 0,
            tx_cons: 0,
            rx_pvt: 0,
            rx_cons: 0,
            next_page: 0,
            mac,
            ip: opts.ip,
            peer: opts.peer,
            peer_mac: [0xff; 6],
            repost: true,
            outside_writes: 0,
            sg: opts.sg,
        })
    }

    /// Sets up, goes Connected, waits for the backend to connect and posts RX buffers.
    fn connect(opts: &Opts, log: &mut Log) -> Result<Self, String> {
        let mut n = Self::setup(opts, &[])?;
        n.f.set("state", &CONNECTED.to_string())?;
        n.f.wait_be(&[CONNECTED], 15.0)
            .map_err(|s| format!("backend did not connect (state {s})"))?;
        n.post_rx(RX_PAGES as u32)?;
        log.note(format!(
            "connected vif {} (backend {}, port {}, sg {})",
            opts.dev, n.f.be, n.port, opts.sg
        ));
        Ok(n)
    }

    fn notify(&self) -> Result<(), String> {
        self.f.evt.notify(self.port)
    }

    /// Writes one TX request at the private producer index.
    fn put(&mut self, r: NetifTxRequest) {
        let mut b = [0u8; 12];
        r.write_to(&mut b).unwrap();
        self.put_raw(&b);
    }

    fn put_raw(&mut self, b: &[u8; 12]) {
        let at = 64 + (self.tx_pvt % RING) as usize * 12;
        self.tx.write(at, b);
        self.tx_pvt = self.tx_pvt.wrapping_add(1);
    }

    /// Publishes the TX requests and notifies.
    fn push(&mut self) -> Result<(), String> {
        self.tx.store_u32(0, self.tx_pvt);
        self.notify()
    }

    /// Copies `data` into a fresh TX data page at `offset`; returns its grant.
    fn data_page(&mut self, offset: usize, data: &[u8]) -> u32 {
        let i = self.next_page % TX_DATA_PAGES;
        self.next_page += 1;
        self.txd.write(i * PAGE + offset, data);
        self.txd.gref(i)
    }

    /// Queues `f` in slots of at most `slot` bytes, each at `offset` of its own page.
    fn queue_frame(&mut self, f: &[u8], slot: usize, offset: usize) -> usize {
        let pieces: Vec<&[u8]> = f.chunks(slot).collect();
        let n = pieces.len();
        for (i, p) in pieces.iter().enumerate() {
            let gref = self.data_page(offset, p);
            let size = if i == 0 { f.len() } else { p.len() } as u16;
            let flags = if i + 1 < n { NETTXF_MORE_DATA } else { 0 };
            let id = self.tx_pvt as u16;
            self.put(NetifTxRequest {
                gref,
                offset: offset as u16,
                flags,
                id,
                size,
            });
        }
        n
    }

    /// Waits until every produced TX request is answered (or `secs` pass); returns the
    /// statuses collected. A bogus `rsp_prod` is an error.
    fn tx_done(&mut self, secs: f64) -> Result<Vec<i16>, String> {
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let mut st = Vec::new();
        loop {
            let prod = self.tx.load_u32(8);
            let n = prod.wrapping_sub(self.tx_cons);
            if n > self.tx_pvt.wrapping_sub(self.tx_cons) {
                return Err(format!(
                    "backend's tx rsp_prod {prod} passes our req_prod {}",
                    self.tx_pvt
                ));
            }
            while self.tx_cons != prod {
                let at = 64 + (self.tx_cons % RING) as usize * 12;
                let r = NetifTxResponse::read_from(&self.tx.read(at, 4)).unwrap();
                st.push(r.status);
                self.tx_cons = self.tx_cons.wrapping_add(1);
            }
            self.tx.store_u32(12, self.tx_cons.wrapping_add(1));
            if self.tx_cons == self.tx_pvt || Instant::now() > end {
                return Ok(st);
            }
            nap();
        }
    }

    /// Posts `n` RX buffers (ids = buffer pages), each filled with [`FILL`].
    fn post_rx(&mut self, n: u32) -> Result<(), String> {
        for _ in 0..n {
            let id = (self.rx_pvt as usize) % RX_PAGES;
            self.rxd.fill(id * PAGE, PAGE, FILL);
            let r = NetifRxRequest {
                id: id as u16,
                pad: 0,
                gref: self.rxd.gref(id),
            };
            let mut b = [0u8; 8];
            r.write_to(&mut b).unwrap();
            self.rx.write(64 + (self.rx_pvt % RING) as usize * 8, &b);
            self.rx_pvt = self.rx_pvt.wrapping_add(1);
        }
        self.rx.store_u32(0, self.rx_pvt);
        self.notify()
    }

    /// Takes the received frames, checks every buffer for bytes written outside the frame,
    /// and posts the buffers again (if `repost`).
    fn take_rx(&mut self) -> Result<Vec<Vec<u8>>, String> {
        let prod = self.rx.load_u32(8);
        if prod.wrapping_sub(self.rx_cons) > self.rx_pvt.wrapping_sub(self.rx_cons) {
            return Err(format!(
                "backend's rx rsp_prod {prod} passes our req_prod {}",
                self.rx_pvt
            ));
        }
        let mut frames = Vec::new();
        let mut cur: Vec<u8> = Vec::new();
        let mut consumed = 0;
        let mut skip_extra = false;
        while self.rx_cons != prod {
            let at = 64 + (self.rx_cons % RING) as usize * 8;
            self.rx_cons = self.rx_cons.wrapping_add(1);
            consumed += 1;
            if skip_extra {
                skip_extra = false;
                continue;
            }
            let r = NetifRxResponse::read_from(&self.rx.read(at, 8)).unwrap();
            let id = usize::from(r.id);
            if id >= RX_PAGES {
                return Err(format!("rx response with id {id} we never posted"));
            }
            let page = self.rxd.read(id * PAGE, PAGE);
            let (off, len) = (usize::from(r.offset), r.status.max(0) as usize);
            if off + len > PAGE {
                return Err(format!("rx response offset {off} + {len} beyond the page"));
            }
            let outside = page[..off]
                .iter()
                .chain(&page[off + len..])
                .filter(|&&b| b != FILL)
                .count();
            self.outside_writes += outside;
            cur.extend_from_slice(&page[off..off + len]);
            skip_extra = r.flags & NETRXF_EXTRA_INFO != 0;
            if !self.sg && r.flags & (NETRXF_MORE_DATA | NETRXF_EXTRA_INFO) != 0 {
                return Err(format!(
                    "rx response flags {:#x} to a frontend that offered neither sg nor GSO",
                    r.flags
                ));
            }
            if r.flags & NETRXF_MORE_DATA == 0 {
                if r.status > 0 {
                    frames.push(std::mem::take(&mut cur));
                }
                cur.clear();
            }
        }
        self.rx.store_u32(12, self.rx_cons.wrapping_add(1));
        if self.repost && consumed > 0 {
            self.post_rx(consumed)?;
        }
        if self.outside_writes > 0 {
            return Err(format!(
                "backend wrote {} bytes outside the frames in RX buffers",
                self.outside_writes
            ));
        }
        Ok(frames)
    }

    /// Waits up to `secs` for a received frame that `want` accepts.
    fn wait_frame<T>(
        &mut self,
        secs: f64,
        mut want: impl FnMut(&[u8]) -> Option<T>,
    ) -> Result<Option<T>, String> {
        let end = Instant::now() + Duration::from_secs_f64(secs);
        while Instant::now() < end {
            for f in self.take_rx()? {
                // The healthy guest checks its neighbour entry for us with ARP requests (and
                // drops its answers to us when we stay silent): answer them.
                if let Some(to) = frame::arp_request_for(&f, self.ip) {
                    self.send_ok(&frame::arp_reply(self.mac, self.ip, to), 2048, 0)?;
                    continue;
                }
                if let Some(t) = want(&f) {
                    return Ok(Some(t));
                }
            }
            nap();
        }
        Ok(None)
    }

    /// Sends `f` in one slot per `slot` bytes and requires every slot answered OKAY.
    fn send_ok(&mut self, f: &[u8], slot: usize, offset: usize) -> Result<(), String> {
        self.queue_frame(f, slot, offset);
        self.push()?;
        let st = self.tx_done(5.0)?;
        if st.iter().any(|&s| s != NETIF_RSP_OKAY) || self.tx_cons != self.tx_pvt {
            return Err(format!("a good frame was not answered OKAY: {st:?}"));
        }
        Ok(())
    }

    /// Learns the healthy guest's MAC by ARP.
    fn arp(&mut self) -> Result<(), String> {
        for _ in 0..5 {
            self.send_ok(&frame::arp_request(self.mac, self.ip, self.peer), 2048, 0)?;
            let peer = self.peer;
            if let Some(m) = self.wait_frame(2.0, |f| frame::arp_reply_from(f, peer))? {
                self.peer_mac = m;
                return Ok(());
            }
        }
        Err("no ARP reply from the healthy guest".into())
    }

    /// Sends an echo request of `size` payload bytes in `slot`-byte slots at `offset` and
    /// waits for the matching reply with the same payload.
    fn ping_with(
        &mut self,
        seq: u16,
        size: usize,
        slot: usize,
        offset: usize,
    ) -> Result<(), String> {
        let payload = frame::pattern(size, u32::from(seq));
        let f = frame::echo_request(
            (self.mac, self.ip),
            (self.peer_mac, self.peer),
            seq,
            &payload,
        );
        // Up to three tries: the healthy guest's own queue may drop one under load.
        for _ in 0..3 {
            self.send_ok(&f, slot, offset)?;
            let peer = self.peer;
            let got = self.wait_frame(3.0, |f| {
                frame::echo_reply_from(f, peer)
                    .filter(|(s, _)| *s == seq)
                    .map(|(_, p)| p.to_vec())
            })?;
            match got {
                Some(p) if p == payload => return Ok(()),
                Some(_) => {
                    return Err(format!("echo reply {seq} carries other bytes than we sent"))
                }
                None => {}
            }
        }
        Err(format!(
            "no echo reply {seq} from the healthy guest in three tries"
        ))
    }

    /// A plain round trip: the device works.
    fn ping(&mut self, seq: u16) -> Result<(), String> {
        self.ping_with(seq, 1000, 2048, 0)
    }

    /// Requires the backend to close the device (Closing, reason under error/ for dom0).
    fn expect_closed(&mut self, log: &mut Log, what: &str) -> Result<(), String> {
        match self.f.wait_be(&[CLOSING], 5.0) {
            Ok(_) => {
                log.note(format!("{what}: backend closed the device (state 5)"));
                Ok(())
            }
            Err(s) => Err(format!("{what}: backend still in state {s}, not Closing")),
        }
    }

    fn still_connected(&mut self, what: &str) -> Result<(), String> {
        match self.f.be_state() {
            CONNECTED => Ok(()),
            s => Err(format!("{what}: backend state {s}, not Connected")),
        }
    }
}

fn req(gref: u32, offset: u16, flags: u16, id: u16, size: u16) -> NetifTxRequest {
    NetifTxRequest {
        gref,
        offset,
        flags,
        id,
        size,
    }
}

/// Runs one attack.
pub fn run(attack: &str, o: &Opts, log: &mut Log) -> Result<String, String> {
    if attack == "config" {
        return config(o, log);
    }
    if attack == "flap" {
        return flap(o, log);
    }
    let mut n = Net::connect(o, log)?;
    n.arp()?;
    n.ping(1)?;
    log.note(format!(
        "healthy guest {:?} at {:02x?}; a round trip works",
        n.peer, n.peer_mac
    ));
    let r = match attack {
        "basic" => Ok("ARP and an echo round trip, RX buffers untouched outside the frames".into()),
        "traffic" => traffic(&mut n, o, log),
        "tcp-sink" => tcp_sink(&mut n, o, log),
        "storm" => storm(&mut n, o, log),
        "malformed" => malformed(&mut n, log),
        "bad-grants" => bad_grants(&mut n, log),
        "index-ahead" => {
            let p = n.tx_pvt.wrapping_add(100_000);
            n.tx.store_u32(0, p);
            n.notify()?;
            n.expect_closed(log, "tx req_prod 100000 ahead")
                .map(|_| "req_prod far ahead closes the device".into())
        }
        "index-behind" => {
            n.tx.store_u32(0, n.tx_pvt.wrapping_sub(3));
            n.notify()?;
            n.expect_closed(log, "tx req_prod moved back")
                .map(|_| "req_prod moving backwards closes the device".into())
        }
        "rx-backlog" => rx_backlog(&mut n, o, log),
        "split-headers" => {
            // An echo request whose headers come in 1-6 byte slots (XSA-423).
            let payload = frame::pattern(1000, 77);
            let f = frame::echo_request((n.mac, n.ip), (n.peer_mac, n.peer), 77, &payload);
            let cuts = [1usize, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 3, 3, 3, 3];
            let mut at = 0;
            for (i, c) in cuts.iter().enumerate() {
                let g = n.data_page(17, &f[at..at + c]);
                let size = if i == 0 { f.len() } else { *c } as u16;
                n.put(req(g, 17, NETTXF_MORE_DATA, i as u16, size));
                at += c;
            }
            let g = n.data_page(17, &f[at..]);
            n.put(req(g, 17, 0, 16, (f.len() - at) as u16));
            n.push()?;
            let st = n.tx_done(5.0)?;
            log.note(format!("statuses {st:?}"));
            let peer = n.peer;
            let got = n.wait_frame(5.0, |r| {
                frame::echo_reply_from(r, peer)
                    .filter(|(s, _)| *s == 77)
                    .map(|(_, p)| p.to_vec())
            })?;
            match (st.iter().all(|&s| s == NETIF_RSP_OKAY), got) {
                (true, Some(p)) if p == payload => Ok("17-slot echo answered intact".into()),
                (true, _) => Err("OKAY for the split frame but no intact reply".into()),
                (false, _) if st.iter().all(|&s| s == NETIF_RSP_ERROR) => {
                    Ok("split frame refused with errors".into())
                }
                (false, _) => Err(format!("mixed statuses {st:?}")),
            }
        }
        "max-slots" => {
            // A 60-byte frame in 18 slots (XSA-432): 9 bytes, then 17 of 3 at 4093.
            let f = frame::echo_request(
                (n.mac, n.ip),
                (n.peer_mac, n.peer),
                78,
                &frame::pattern(18, 78),
            );
            let g = n.data_page(0, &f[..9]);
            n.put(req(g, 0, NETTXF_MORE_DATA, 0, 60));
            for i in 0..17 {
                let g = n.data_page(4093, &f[9 + i * 3..12 + i * 3]);
                let flags = if i < 16 { NETTXF_MORE_DATA } else { 0 };
                n.put(req(g, 4093, flags, 1 + i as u16, 3));
            }
            n.push()?;
            let st = n.tx_done(5.0)?;
            log.note(format!("statuses {st:?}"));
            let peer = n.peer;
            let got = n.wait_frame(5.0, |r| {
                frame::echo_reply_from(r, peer)
                    .filter(|(s, _)| *s == 78)
                    .map(|_| ())
            })?;
            if st.len() == 18 && st.iter().all(|&s| s == NETIF_RSP_OKAY) && got.is_some() {
                Ok("18-slot 60-byte frame delivered and answered".into())
            } else if st.len() == 18 && st.iter().all(|&s| s == NETIF_RSP_ERROR) {
                Ok("18-slot frame refused with errors".into())
            } else {
                Err(format!("statuses {st:?}, reply {}", got.is_some()))
            }
        }
        "double-fetch" => double_fetch(&mut n, o, log),
        "watch-flood" => {
            let t = Instant::now();
            let sg = if o.sg { "1" } else { "0" };
            for _ in 0..o.count {
                n.f.set("feature-rx-notify", "1")?;
                n.f.set("state", &CONNECTED.to_string())?;
                n.f.set("feature-sg", sg)?;
            }
            log.note(format!(
                "{} rewrites of watched frontend nodes in {:.1} s",
                o.count * 3,
                t.elapsed().as_secs_f64()
            ));
            Ok("watch flood".into())
        }
        _ => Err(format!(
            "unknown net attack {attack} (known: {})",
            ATTACKS.join(" ")
        )),
    };
    let r = r.and_then(|s| {
        if ["index-ahead", "index-behind"].contains(&attack) {
            return Ok(s);
        }
        // The device still works after the attack (unless the attack closed it).
        if n.f.be_state() == CONNECTED {
            n.ping(999)?;
            Ok(format!("{s}; still serves a round trip"))
        } else {
            Ok(format!("{s}; device closed by the backend"))
        }
    });
    n.f.close();
    r
}

/// Real traffic for the healthy guest to answer: `count` echo round trips (the well-behaved
/// mode; with `--no-sg` a frontend that never offered scatter-gather).
fn traffic(n: &mut Net, o: &Opts, log: &mut Log) -> Result<String, String> {
    let t = Instant::now();
    let mut bytes = 0;
    for i in 0..o.count {
        let size = 1 + (i as usize * 97) % 1400;
        n.ping_with(2 + (i % 60000) as u16, size, 2048, (i as usize * 13) % 2000)?;
        bytes += size;
    }
    log.note(format!(
        "{} echo round trips ({bytes} payload bytes) in {:.1} s",
        o.count,
        t.elapsed().as_secs_f64()
    ));
    Ok(format!("{} intact round trips", o.count))
}

/// A TCP receiver on port 5001 for the healthy guest's upload (`nc IP 5001 < FILE`) of
/// `count` bytes. Run with `--no-sg`, it is the non-sg path driven for real: the sender's
/// GSO packets must reach us segmented into single-slot frames with full checksums (we set
/// `feature-no-csum-offload`). Answers ARP for our address; accepts only in-order data (the
/// sender retransmits the rest); publishes `data/hostile/net-tcp-sink-cksum` = the POSIX
/// `cksum` of the stream for dom0 to compare with the sender's.
fn tcp_sink(n: &mut Net, o: &Opts, log: &mut Log) -> Result<String, String> {
    use frame::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
    const PORT: u16 = 5001;
    let iss = 0x1000_0000u32;
    let me = (n.mac, n.ip, PORT);
    let mut peer_port = 0u16;
    let mut rcv_nxt: Option<u32> = None;
    let mut sum = frame::Cksum::default();
    let (mut segments, mut bad_csum, mut max_frame, mut fin) = (0u64, 0u64, 0usize, false);
    n.f.xs.write("data/hostile/net-tcp-sink-listening", "1")?;
    let t = Instant::now();
    let end = t + Duration::from_secs_f64(o.secs);
    while Instant::now() < end && !fin && sum.bytes() < u64::from(o.count) {
        let frames = n.take_rx()?;
        let mut replies = Vec::new();
        let mut ack = false;
        for f in &frames {
            max_frame = max_frame.max(f.len());
            if let Some(to) = frame::arp_request_for(f, n.ip) {
                replies.push(frame::arp_reply(n.mac, n.ip, to));
                continue;
            }
            let Some(seg) = frame::tcp_to(f, n.peer, n.ip) else {
                continue;
            };
            if seg.dport != PORT {
                continue;
            }
            if !seg.csum_ok {
                bad_csum += 1;
                continue;
            }
            segments += 1;
            if seg.flags & TCP_SYN != 0 {
                peer_port = seg.sport;
                rcv_nxt = Some(seg.seq.wrapping_add(1));
                let peer = (n.peer_mac, n.peer, peer_port);
                replies.push(frame::tcp_segment(
                    me,
                    peer,
                    iss,
                    seg.seq.wrapping_add(1),
                    TCP_SYN | TCP_ACK,
                ));
                continue;
            }
            let Some(nxt) = rcv_nxt else { continue };
            if seg.seq == nxt && !seg.data.is_empty() {
                sum.update(seg.data);
                rcv_nxt = Some(nxt.wrapping_add(seg.data.len() as u32));
            }
            if seg.flags & TCP_FIN != 0
                && seg.seq.wrapping_add(seg.data.len() as u32) == rcv_nxt.unwrap_or(0)
            {
                rcv_nxt = rcv_nxt.map(|x| x.wrapping_add(1));
                fin = true;
            }
            ack = true;
        }
        if let (true, Some(nxt)) = (ack, rcv_nxt) {
            let peer = (n.peer_mac, n.peer, peer_port);
            replies.push(frame::tcp_segment(
                me,
                peer,
                iss.wrapping_add(1),
                nxt,
                TCP_ACK,
            ));
        }
        for r in &replies {
            n.queue_frame(r, 2048, 0);
        }
        if !replies.is_empty() {
            n.push()?;
            n.tx_done(5.0)?;
        } else {
            nap();
        }
    }
    // Close our side (the sender may wait for it), then reset what is left.
    if let Some(nxt) = rcv_nxt {
        let peer = (n.peer_mac, n.peer, peer_port);
        n.queue_frame(
            &frame::tcp_segment(me, peer, iss.wrapping_add(1), nxt, TCP_FIN | TCP_ACK),
            2048,
            0,
        );
        n.push()?;
        n.tx_done(5.0)?;
        std::thread::sleep(Duration::from_millis(500));
        let _ = n.take_rx()?;
        n.queue_frame(
            &frame::tcp_segment(me, peer, iss.wrapping_add(2), nxt.wrapping_add(1), TCP_RST),
            2048,
            0,
        );
        n.push()?;
        n.tx_done(5.0)?;
    }
    let ck = sum.finish();
    n.f.xs.write("data/hostile/net-tcp-sink-cksum", &ck)?;
    log.note(format!(
        "received {} bytes (cksum {ck}) in {segments} segments in {:.1} s, largest frame {max_frame} bytes, {bad_csum} bad checksums, FIN {fin}",
        sum.bytes(),
        t.elapsed().as_secs_f64()
    ));
    if bad_csum > 0 {
        return Err(format!(
            "{bad_csum} TCP segments with bad checksums (we offered no checksum offload)"
        ));
    }
    if max_frame > 1514 {
        return Err(format!(
            "a {max_frame}-byte frame reached a frontend without sg/GSO"
        ));
    }
    if sum.bytes() < u64::from(o.count) {
        return Err(format!("only {} of {} bytes arrived", sum.bytes(), o.count));
    }
    Ok(format!(
        "{} bytes in order, every segment a single slot with valid checksums (cksum {ck})",
        sum.bytes()
    ))
}

/// Item 6: notify as fast as we can for `secs` (XSA-332).
fn storm(n: &mut Net, o: &Opts, log: &mut Log) -> Result<String, String> {
    let end = Instant::now() + Duration::from_secs_f64(o.secs);
    let mut count = 0u64;
    while Instant::now() < end {
        for _ in 0..256 {
            n.notify()?;
        }
        count += 256;
    }
    log.note(format!("{count} notifications in {} s", o.secs));
    n.still_connected("after the storm")?;
    Ok(format!("{count} notifications, device still connected"))
}

/// Item 10: malformed packets get error responses, the device stays up (XSA-374).
fn malformed(n: &mut Net, log: &mut Log) -> Result<String, String> {
    let f = frame::echo_request(
        (n.mac, n.ip),
        (n.peer_mac, n.peer),
        50,
        &frame::pattern(500, 5),
    );
    let g = n.data_page(0, &f);
    let mut packets = 0;
    let mut id = 100u16;
    let mut next = || {
        id += 1;
        id
    };
    // Zero length; runt; crossing the page.
    n.put(req(g, 0, 0, next(), 0));
    n.put(req(g, 0, 0, next(), 13));
    n.put(req(g, 4000, 0, next(), 200));
    packets += 3;
    // A later slot larger than the packet.
    n.put(req(g, 0, NETTXF_MORE_DATA, next(), 100));
    n.put(req(g, 0, 0, next(), 4000));
    packets += 1;
    // 19 data slots.
    n.put(req(g, 0, NETTXF_MORE_DATA, next(), 19 * 10));
    for i in 1..19 {
        n.put(req(
            g,
            0,
            if i < 18 { NETTXF_MORE_DATA } else { 0 },
            next(),
            10,
        ));
    }
    packets += 1;
    // Oversized: slots adding up to more than 64 KiB.
    n.put(req(g, 0, NETTXF_MORE_DATA, next(), 0xffff));
    for i in 0..16 {
        n.put(req(
            g,
            0,
            if i < 15 { NETTXF_MORE_DATA } else { 0 },
            next(),
            4096,
        ));
    }
    packets += 1;
    // Bad extra-info chains: unknown type, GSO of size 0, GSO of unknown type.
    let mut extras = 0;
    for e in [
        [9u8, 0, 0, 0, 0, 0, 0, 0],
        [1, 0, 0, 0, 1, 0, 0, 0],
        [1, 0, 0xa8, 5, 7, 0, 0, 0],
    ] {
        n.put(req(g, 0, NETTXF_EXTRA_INFO, next(), f.len() as u16));
        let mut raw = [0u8; 12];
        raw[..8].copy_from_slice(&e);
        n.put_raw(&raw);
        extras += 1;
        packets += 1;
    }
    let produced = n.tx_pvt.wrapping_sub(n.tx_cons);
    n.push()?;
    let st = n.tx_done(5.0)?;
    log.note(format!("{produced} slots, statuses {st:?}"));
    if n.f.be_state() != CONNECTED {
        return Err(
            "malformed packets closed the device: they should cost only error responses".into(),
        );
    }
    if st.len() as u32 != produced {
        return Err(format!("{} of {produced} slots answered", st.len()));
    }
    let ok = st.iter().filter(|&&s| s == NETIF_RSP_OKAY).count();
    let errors = st
        .iter()
        .filter(|&&s| s == NETIF_RSP_ERROR || s == NETIF_RSP_DROPPED)
        .count();
    if ok > 0 {
        return Err(format!("{ok} malformed slots answered OKAY"));
    }
    log.note(format!(
        "{packets} packets ({extras} with extra info): {errors} error statuses"
    ));
    if errors < packets {
        return Err(format!(
            "{errors} error statuses for {packets} malformed packets"
        ));
    }
    Ok(format!(
        "{packets} malformed packets, {errors} errors, no OKAY"
    ))
}

/// Item 9: grants never made, out of range, and revoked (XSA-365).
fn bad_grants(n: &mut Net, log: &mut Log) -> Result<String, String> {
    let f = frame::echo_request(
        (n.mac, n.ip),
        (n.peer_mac, n.peer),
        60,
        &frame::pattern(300, 6),
    );
    let revoked = {
        let p = n.f.gnt.alloc(n.f.be_id, 1)?;
        p.write(0, &f);
        p.gref(0)
    }; // dropped: the grant is ended
    let unused = n.rxd.gref(RX_PAGES - 1).wrapping_add(5000);
    let cases = [
        ("revoked", revoked),
        ("never granted", unused),
        ("out of range", 0x7fff_fff0),
    ];
    let mut out = Vec::new();
    for (what, g) in cases {
        n.put(req(g, 0, 0, 60, f.len() as u16));
        n.push()?;
        let st = n.tx_done(5.0)?;
        log.note(format!(
            "{what} gref {g}: statuses {st:?}, backend state {}",
            n.f.be_state()
        ));
        if st.contains(&NETIF_RSP_OKAY) {
            return Err(format!("{what} gref {g} answered OKAY"));
        }
        if st.is_empty() {
            n.expect_closed(log, what)?;
            return Ok(format!("{out:?}; {what} gref closed the device"));
        }
        out.push(what);
    }
    n.still_connected("after bad grants")?;
    Ok("revoked, never granted and out-of-range grefs answered with errors".into())
}

/// Item 11: never consume RX while the healthy guest answers a flood (CVE-2021-28714/5).
fn rx_backlog(n: &mut Net, o: &Opts, log: &mut Log) -> Result<String, String> {
    n.repost = false;
    let t = Instant::now();
    let mut sent = 0u32;
    while sent < o.count {
        // One batch per round, no larger than the TX data pages (each frame has its own).
        for _ in 0..TX_DATA_PAGES {
            let f = frame::echo_request(
                (n.mac, n.ip),
                (n.peer_mac, n.peer),
                (1000 + sent % 60000) as u16,
                &frame::pattern(1400, sent),
            );
            n.queue_frame(&f, 2048, 0);
            sent += 1;
        }
        n.push()?;
        let st = n.tx_done(5.0)?;
        if st.iter().any(|&s| s != NETIF_RSP_OKAY) {
            return Err(format!("flood frames not answered OKAY: {st:?}"));
        }
    }
    log.note(format!(
        "{sent} echo requests of 1442 bytes sent in {:.1} s with {RX_PAGES} RX buffers never consumed",
        t.elapsed().as_secs_f64()
    ));
    std::thread::sleep(Duration::from_secs(2));
    n.still_connected("after the backlog")?;
    let held = n.rx.load_u32(8).wrapping_sub(n.rx_cons);
    log.note(format!("backend filled {held} RX buffers"));
    if held > RX_PAGES as u32 {
        return Err(format!("{held} RX responses for {RX_PAGES} buffers"));
    }
    n.repost = true;
    let frames = n.take_rx()?.len();
    // Drain what the backend still queued, then a round trip works.
    for _ in 0..50 {
        if n.take_rx()?.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(format!(
        "{sent} answers sent at a non-consuming guest; it got {frames} in its {RX_PAGES} buffers"
    ))
}

/// Item 1: rewrite requests after producing them (XSA-155).
fn double_fetch(n: &mut Net, o: &Opts, log: &mut Log) -> Result<String, String> {
    let mut produced = 0u32;
    let mut rounds = 0;
    let end = Instant::now() + Duration::from_secs_f64(o.secs);
    while Instant::now() < end && n.f.be_state() == CONNECTED {
        let start = n.tx_pvt;
        for i in 0..8u32 {
            let f = frame::echo_request(
                (n.mac, n.ip),
                (n.peer_mac, n.peer),
                (3000 + i) as u16,
                &frame::pattern(2500, i),
            );
            n.queue_frame(&f, 1000, 0);
        }
        produced += n.tx_pvt.wrapping_sub(start);
        n.push()?;
        // Rewrite sizes, flags and grants of the produced slots while the backend reads them.
        let t = Instant::now();
        let mut k = 0u32;
        while t.elapsed() < Duration::from_millis(30) {
            for s in start..n.tx_pvt {
                let at = 64 + (s % RING) as usize * 12;
                let v = k.wrapping_mul(2_654_435_761).wrapping_add(s);
                n.tx.write(at + 10, &(v as u16).to_le_bytes());
                if k % 3 == 0 {
                    n.tx.write(at + 6, &((v >> 16) as u16 & 0xf).to_le_bytes());
                }
                if k % 7 == 0 {
                    n.tx.write(at, &v.to_le_bytes());
                }
            }
            k += 1;
        }
        let _ = n.tx_done(3.0)?;
        let _ = n.take_rx()?;
        rounds += 1;
    }
    let answered = n.tx_cons;
    log.note(format!(
        "{rounds} rounds, {produced} slots produced and rewritten, {answered} answered, backend state {}",
        n.f.be_state()
    ));
    if n.f.be_state() == CONNECTED {
        if n.tx_cons != n.tx_pvt {
            return Err(format!(
                "{} slots never answered",
                n.tx_pvt.wrapping_sub(n.tx_cons)
            ));
        }
        Ok(format!("{produced} rewritten slots each answered once"))
    } else {
        n.expect_closed(log, "rewritten requests")?;
        Ok("rewritten requests closed the device".into())
    }
}

/// Item 14: absurd configuration values; each must be refused (backend Closing), and a
/// sane configuration afterwards connects again.
fn config(o: &Opts, log: &mut Log) -> Result<String, String> {
    let cases: &[(&str, &str)] = &[
        ("multi-queue-num-queues", "1000"),
        ("multi-queue-num-queues", "0"),
        ("tx-ring-ref", "4294967296"),
        ("tx-ring-ref", "2147483000"),
        ("event-channel", "-1"),
        ("event-channel", "99999"),
        ("request-rx-copy", "0"),
        ("rx-ring-ref", "12abc"),
    ];
    for (k, v) in cases {
        let mut n = Net::setup(o, &[(k, v.to_string())])?;
        n.f.set("state", &CONNECTED.to_string())?;
        match n.f.wait_be(&[CLOSING, CONNECTED], 10.0) {
            Ok(CLOSING) => log.note(format!("{k}={v}: refused (backend Closing)")),
            Ok(s) => return Err(format!("{k}={v}: backend went to state {s}")),
            Err(s) => {
                return Err(format!(
                    "{k}={v}: backend in state {s}, neither refused nor connected"
                ))
            }
        }
        n.f.unset(k);
    }
    let mut n = Net::connect(o, log)?;
    n.arp()?;
    n.ping(5)?;
    n.f.close();
    Ok(format!(
        "{} absurd configurations refused, then a sane one served",
        cases.len()
    ))
}

/// Item 8: frontend state flapping (XSA-350), then a clean connect that works.
fn flap(o: &Opts, log: &mut Log) -> Result<String, String> {
    let n = Net::setup(o, &[])?;
    let mut f = Front::open("vif", o.dev)?;
    let states = ["3", "4", "5", "1", "4", "6", "4", "3", "5", "6", "1"];
    let t = Instant::now();
    for i in 0..o.count as usize {
        f.set("state", states[i % states.len()])?;
    }
    log.note(format!(
        "{} state writes in {:.1} s; backend state {}",
        o.count,
        t.elapsed().as_secs_f64(),
        f.be_state()
    ));
    // A frontend that means to start over closes the device before it frees the grants
    // (the backend may still be working through the flood with them).
    f.reset(STALE)?;
    drop(n);
    let mut n = Net::connect(o, log)?;
    n.arp()?;
    n.ping(6)?;
    n.f.close();
    Ok(format!(
        "{} state flips, then a clean connect served",
        o.count
    ))
}
