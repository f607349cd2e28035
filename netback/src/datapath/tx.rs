//! TX: packets from the guests' TX rings, into another guest's buffers directly or into the
//! switch.
//!
//! Three batches of work per pass, each one batch of grant copies:
//! 1. **heads**: the first bytes of every packet (its first slot, up to [`HEAD_LEN`]),
//!    enough for the switch to decide (addresses for anti-spoofing and lookup, transport
//!    header for offloads); a packet whose first slot is too short for that takes the local
//!    plan, and the switch decides again on the whole packet;
//! 2. **bodies**: per packet either the direct plan — copied from the sender's pages into
//!    the receiver's buffers, never touching our memory — or the local plan: the rest of the
//!    packet into our memory, for the switch to adapt and queue;
//! 3. only if a direct copy failed (a revoked or bogus grant on either side): the packet's
//!    data into our memory, to learn whose grant was bad and answer accordingly.
//!
//! A direct packet keeps the sender's slot layout (one copy per slot, each at the same
//! offset in the receiver's buffer) when that layout is one netfront handles well (see
//! `DIRECT_MAX_SLOTS` in `layout.rs`); otherwise it is re-laid into full pages on the way,
//! as a queued packet would be.
//!
//! Back-pressure: a packet for one port whose queue is full waits (is *parked*) instead of
//! being dropped, and its sender's ring is not read further meanwhile, so the sender's own
//! ring fills and its netfront stops its queue — TCP slows down instead of losing packets.
//! A packet parked for [`PARK_MAX_NS`] is dropped as before, and its receiver counts as
//! stalled (packets for it are dropped without waiting) until its queue has drained: a
//! receiver that stops reading holds up its senders once, not for ever.
//!
//! Ordering: a packet goes direct only if nothing is queued for the receiver and no earlier
//! packet of this pass took the local plan towards it, so each receiver sees packets in the
//! order they were sent. RX responses are written in the order their buffers were taken.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use minios::platform::{local_room, CopyDst, CopyOp, CopySrc, ForeignRef, Platform};
use minios::ring::RingAccessError;
use xen_abi::netif::{NetifRxRequest, NETIF_RSP_ERROR};

use super::head::Head;
use super::layout::{pieces, Layout, DIRECT_MAX_BUFFERS};
use super::{kept, Datapath, Vif, TX_PASS_BYTES};
use crate::frame::{self, ETH_HLEN, IPPROTO_TCP};
use crate::packet::{Csum, Packet, MIN_MSS};
use crate::switch::{Decision, PortId, Switch};
use crate::tx_chain::{self, Chain, SlotIds, TxError, TxPacket};
use crate::wire::{
    ExtraKind, ExtraRepr, GsoKind, RxCsum, RxRequestRepr, RxResponseRepr, TxResponseRepr, TxStatus,
};

/// Bytes of each packet copied first, to decide where it goes (as Linux netback's
/// `XEN_NETBACK_TX_COPY_LEN`).
pub const HEAD_LEN: usize = 128;

/// Longest a packet waits for room in its receiver's queue before it is dropped.
pub const PARK_MAX_NS: u64 = 200_000_000;

/// The first slot of a direct packet that is not TCP/UDP must hold this much (or all of it).
const DIRECT_MIN_FIRST: usize = 64;

/// The receiver's buffers taken for a direct packet.
type RxBuffers = heapless::Vec<RxRequestRepr, DIRECT_MAX_BUFFERS>;

/// A packet taken from a TX ring: held inline (no heap but a local packet's buffer).
pub(super) struct TxPending {
    port: PortId,
    ids: SlotIds,
    extras: usize,
    packet: TxPacket,
    csum: Csum,
    head: Head,
    plan: Plan,
    /// Since when it waits for room in its receiver's queue.
    parked_since: Option<u64>,
}

impl TxPending {
    /// When a parked packet stops waiting.
    pub(super) fn park_deadline(&self) -> Option<u64> {
        self.parked_since.map(|t| t + PARK_MAX_NS)
    }

    /// The packet's length.
    pub(super) fn len(&self) -> usize {
        self.packet.len
    }

    /// The port a parked packet waits for.
    pub(super) fn waits_for(&self) -> Option<PortId> {
        match self.plan {
            Plan::Wait(to) => Some(to),
            _ => None,
        }
    }
}

enum Plan {
    /// Not decided yet, or its data could not be read: already answered.
    None,
    /// Parked: port `to`'s queue has no room for it yet.
    Wait(PortId),
    /// Copy the rest into this buffer (which starts with the head) and hand it to the switch.
    Local(Vec<u8>),
    /// Copy the packet into these buffers of port `to` (ring order: first data slot, GSO
    /// extra slot, the other data slots), laid out as `layout` says.
    Direct {
        to: PortId,
        reqs: RxBuffers,
        layout: Layout,
    },
}

/// What a copy operation belongs to.
#[derive(Clone, Copy)]
enum Owner {
    /// The head of packet `i` of a batch.
    Head(usize),
    /// The body of packet `i` of a batch.
    Body(usize),
}

/// Indices of the packets whose head copies failed.
fn failed_heads(ops: &[CopyOp<'_>], owner: &[Owner]) -> BTreeSet<usize> {
    ops.iter()
        .zip(owner)
        .filter_map(|(op, o)| match (o, &op.status) {
            (Owner::Head(i), Err(_)) => Some(*i),
            _ => None,
        })
        .collect()
}

/// What a pass planned so far: the ports that must not get direct packets for the rest of
/// the pass, and the queue room its local packets will take (they are queued only after
/// their copies).
#[derive(Default)]
struct Blocked {
    all: bool,
    ports: BTreeSet<PortId>,
    /// Packets and bytes planned into each port's queue.
    reserved: BTreeMap<PortId, (usize, usize)>,
}

impl Blocked {
    fn contains(&self, port: PortId) -> bool {
        self.all || self.ports.contains(&port)
    }
}

/// The senders of parked packets (their rings are not read until those have gone).
fn parked_ports(parked: &[TxPending]) -> BTreeSet<PortId> {
    parked.iter().map(|p| p.port).collect()
}

impl<P: Platform> Datapath<P> {
    /// One pass of TX: returns whether work is left for another pass (a budget was
    /// exhausted, or packets whose heads were just copied wait to be decided).
    ///
    /// Pipelined: the heads of the packets taken at the end of a pass are copied in the same
    /// batch as the bodies of the packets decided in it, so under load every pass costs one
    /// batch of grant copies instead of two.
    pub(super) fn tx_pass(&mut self, platform: &P, now: u64) -> bool {
        let mut more = false;
        // The packets whose heads the last pass copied, or else new ones with their heads
        // copied now; in the vectors kept between passes (`kept.rs`), never moved in bulk.
        let mut batch = core::mem::take(&mut self.carry);
        if batch.is_empty() {
            let skip = parked_ports(&self.parked);
            more |= self.take_tx(&skip, now, &mut batch);
            let mut ops: Vec<CopyOp<'_>> = Vec::with_capacity(batch.len() * 2);
            let mut owner: Vec<Owner> = Vec::with_capacity(batch.len() * 2);
            self.head_ops(&mut batch, &mut ops, &mut owner, Owner::Head);
            self.run_copies(platform, &mut ops);
            let failed = failed_heads(&ops, &owner);
            drop(ops);
            self.fail_heads(&mut batch, failed);
        }
        // Parked packets first: they are older than anything else of their senders.
        if !self.parked.is_empty() {
            let parked = core::mem::take(&mut self.parked);
            batch.splice(0..0, parked);
        }
        // Parked or carried over from the last pass: their vif may have gone or failed since.
        batch.retain(|p| self.vifs.get(&p.port).is_some_and(|v| v.fatal.is_none()));
        if batch.is_empty() {
            self.carry = batch;
            return more;
        }
        let mut blocked = Blocked::default();
        // Senders with a parked packet, and the receiver it waits for.
        let mut waiting = BTreeMap::new();
        for p in batch.iter_mut() {
            if p.head.is_empty() {
                continue; // unreadable, answered
            }
            p.plan = match waiting.get(&p.port) {
                // An earlier packet of its sender waits: so does it (ring order).
                Some(&to) => Plan::Wait(to),
                None => self.plan(p, now, &mut blocked),
            };
            if let Plan::Wait(to) = p.plan {
                waiting.entry(p.port).or_insert(to);
                if p.parked_since.is_none() {
                    p.parked_since = Some(now);
                    self.stats.parked += 1;
                }
            }
        }
        if !waiting.is_empty() {
            // Back-pressure: the waiting packets set aside, in order, the others moved to the
            // spare vector (which takes the batch's room in exchange).
            let mut rest = core::mem::take(&mut self.tx_spare);
            for p in batch.drain(..) {
                if p.waits_for().is_some() {
                    self.parked.push(p);
                } else {
                    kept::push(&mut rest, p, &mut self.kept_grows);
                }
            }
            self.tx_spare = core::mem::replace(&mut batch, rest);
        }
        let skip: BTreeSet<PortId> = waiting.into_keys().collect();
        let mut next = core::mem::take(&mut self.tx_spare);
        more |= self.take_tx(&skip, now, &mut next);
        let mut ok = core::mem::take(&mut self.tx_ok);
        kept::refill(&mut ok, batch.len(), true, &mut self.kept_grows);
        let failed = {
            let mut ops: Vec<CopyOp<'_>> = Vec::with_capacity(batch.len() * 4);
            let mut owner: Vec<Owner> = Vec::with_capacity(batch.len() * 4);
            self.body_ops(&mut batch, &mut ops, &mut owner, &mut ok);
            self.head_ops(&mut next, &mut ops, &mut owner, Owner::Head);
            self.run_copies(platform, &mut ops);
            for (op, o) in ops.iter().zip(&owner) {
                if let (Err(_), Owner::Body(i)) = (&op.status, o) {
                    ok[*i] = false;
                }
            }
            failed_heads(&ops, &owner)
        };
        self.fail_heads(&mut next, failed);
        let mut retry = false;
        for (p, &ok) in batch.iter_mut().zip(&ok) {
            retry |= self.finish_tx(p, ok, now);
        }
        if retry {
            // A direct copy failed (rare): those packets keep their plan.
            let retry: Vec<TxPending> = batch
                .drain(..)
                .filter(|p| matches!(p.plan, Plan::Direct { .. }))
                .collect();
            self.retry_direct(platform, retry);
        }
        next.retain(|p| !p.head.is_empty());
        more |= !next.is_empty();
        self.carry = kept::trimmed(next);
        self.tx_spare = kept::emptied(batch);
        self.tx_ok = kept::emptied(ok);
        more
    }

    /// Takes up to the budget of packets from every vif's TX ring into `batch` (empty);
    /// malformed ones are answered at once. Returns whether a budget was exhausted.
    fn take_tx(&mut self, skip: &BTreeSet<PortId>, now: u64, batch: &mut Vec<TxPending>) -> bool {
        let mut bytes = 0usize;
        let mut more = false;
        let order = self.vif_order();
        for &port in &order {
            let Some(vif) = self.vifs.get_mut(&port) else {
                continue;
            };
            if vif.fatal.is_some() {
                continue;
            }
            vif.events.take_tx(&vif.conn.tx_evt, now);
            if skip.contains(&port) {
                continue; // a packet of its waits: the rest stays in its ring
            }
            let mut taken = 0;
            loop {
                let available = match vif.conn.tx.unconsumed() {
                    Ok(n) => n,
                    Err(e) => {
                        vif.fail(format!("tx ring: {e}"));
                        break;
                    }
                };
                if available == 0 {
                    match vif.conn.tx.final_check() {
                        Ok(true) => continue,
                        Ok(false) => break,
                        Err(e) => {
                            vif.fail(format!("tx ring: {e}"));
                            break;
                        }
                    }
                }
                if taken >= self.tx_batch || bytes >= TX_PASS_BYTES {
                    more = true;
                    break;
                }
                let chain: Chain = match tx_chain::read_chain(&mut vif.conn.tx) {
                    Ok(c) => c,
                    Err(e) => {
                        vif.fail(format!("{e}"));
                        break;
                    }
                };
                taken += 1;
                self.stats.tx_packets += 1;
                match chain.packet {
                    Ok(packet) => {
                        bytes += packet.len;
                        let csum = if packet.csum_blank {
                            Csum::Partial
                        } else if packet.data_validated {
                            Csum::Validated
                        } else {
                            Csum::Unverified
                        };
                        // The first slot's bytes (up to HEAD_LEN): one copy, and all a
                        // direct packet may have (its headers must be in its first slot).
                        // Never empty (packets have at least 14 bytes), which marks a
                        // packet as answered.
                        let first = usize::from(packet.pieces[0].len);
                        let head = if first > 0 { first } else { packet.len };
                        let p = TxPending {
                            port,
                            head: Head::zeroed(head),
                            ids: chain.ids,
                            extras: chain.extras,
                            csum,
                            packet,
                            plan: Plan::None,
                            parked_since: None,
                        };
                        kept::push(batch, p, &mut self.kept_grows);
                    }
                    Err(e) => {
                        tx_error(vif, &mut self.switch, port, &e);
                        if let Err(e) = respond_tx(vif, &chain.ids, chain.extras, TxStatus::Error) {
                            vif.fail(format!("tx ring: {e}"));
                            break;
                        }
                    }
                }
            }
        }
        self.order = kept::emptied(order);
        more
    }

    /// Adds the copies of the first bytes of every packet in `batch` to `ops`.
    fn head_ops<'a>(
        &self,
        batch: &'a mut [TxPending],
        ops: &mut Vec<CopyOp<'a>>,
        owner: &mut Vec<Owner>,
        tag: fn(usize) -> Owner,
    ) {
        for (i, p) in batch.iter_mut().enumerate() {
            let Some(vif) = self.vifs.get(&p.port) else {
                continue;
            };
            let domid = vif.conn.frontend;
            let mut rest: &mut [u8] = &mut p.head[..];
            for piece in pieces(&p.packet) {
                if rest.is_empty() {
                    break;
                }
                let mut offset = piece.offset;
                let mut len = usize::from(piece.len).min(rest.len());
                while len > 0 {
                    let n = local_room(rest).min(len);
                    let (head, tail) = core::mem::take(&mut rest).split_at_mut(n);
                    rest = tail;
                    let src = CopySrc::Foreign(ForeignRef {
                        domid,
                        gref: piece.gref,
                        offset,
                    });
                    ops.push(CopyOp::new(src, CopyDst::Local(head), n as u16));
                    owner.push(tag(i));
                    offset += n as u16;
                    len -= n;
                }
            }
        }
    }

    /// Answers the packets whose heads could not be read with errors and empties their
    /// heads (so they are skipped from then on).
    fn fail_heads(&mut self, batch: &mut [TxPending], failed: BTreeSet<usize>) {
        for i in failed {
            let p = &mut batch[i];
            p.head.clear();
            if let Some(vif) = self.vifs.get_mut(&p.port) {
                tx_error(vif, &mut self.switch, p.port, &TxError::Copy);
                if let Err(e) = respond_tx(vif, &p.ids, p.extras, TxStatus::Error) {
                    vif.fail(format!("tx ring: {e}"));
                }
            }
        }
    }

    /// Where a packet goes: straight into another vif's buffers if it can, else through
    /// our memory and the switch.
    fn plan(&mut self, p: &TxPending, now: u64, blocked: &mut Blocked) -> Plan {
        let local = |p: &TxPending| {
            let mut buf = vec![0u8; p.packet.len];
            buf[..p.head.len()].copy_from_slice(&p.head);
            Plan::Local(buf)
        };
        let to = match self.switch.decide(p.port, &p.head, now) {
            Decision::Unicast(to) => to,
            Decision::Flood => {
                blocked.all = true;
                return local(p);
            }
            // The switch counts it when it sees the packet again.
            Decision::Drop(_) => return local(p),
        };
        match self.direct_buffers(p, to, blocked) {
            Some((reqs, layout)) => Plan::Direct { to, reqs, layout },
            None if self.must_wait(p, to, now, blocked) => Plan::Wait(to),
            None => {
                blocked.ports.insert(to);
                let r = blocked.reserved.entry(to).or_default();
                r.0 += 1;
                r.1 += p.packet.len;
                local(p)
            }
        }
    }

    /// Whether a packet for `to` that cannot go direct waits for room in `to`'s queue
    /// (back-pressure) rather than being queued now — or dropped, if the queue is full and
    /// it waited long enough, or `to` is stalled.
    fn must_wait(&mut self, p: &TxPending, to: PortId, now: u64, blocked: &Blocked) -> bool {
        if self.stalled.contains(&to) {
            if self.switch.queued(to) > 0 {
                return false;
            }
            self.stalled.remove(&to);
        }
        let (packets, bytes) = blocked.reserved.get(&to).copied().unwrap_or_default();
        if self.switch.has_room(to, packets + 1, bytes + p.packet.len) {
            return false;
        }
        if p.park_deadline().is_some_and(|d| now >= d) {
            self.stats.park_timeouts += 1;
            self.stalled.insert(to);
            return false;
        }
        true
    }

    /// Takes the receiver's buffers for a direct copy, if the packet can go direct, with the
    /// slot layout to fill them with.
    fn direct_buffers(
        &mut self,
        p: &TxPending,
        to: PortId,
        blocked: &Blocked,
    ) -> Option<(RxBuffers, Layout)> {
        if blocked.contains(to) || self.switch.queued(to) > 0 {
            self.stats.local_behind_queue += 1;
            return None;
        }
        let caps = self.switch.caps(to)?;
        let gso = p.packet.gso;
        // The offload state must be final as it is: what `Packet::validate_offloads` would
        // change or refuse goes the local way.
        let ipv6 = if p.csum == Csum::Partial || gso.is_some() {
            let info = frame::locate_l4_in(&p.head, p.packet.len).ok()?;
            if let Some(g) = gso {
                let payload = info.end.saturating_sub(info.headers_len());
                let kind_ok = info.ipv6 == (g.kind == GsoKind::TcpV6);
                if info.proto != IPPROTO_TCP
                    || !kind_ok
                    || g.mss < MIN_MSS
                    || p.csum != Csum::Partial
                    || payload <= usize::from(g.mss)
                {
                    return None;
                }
            }
            info.ipv6
        } else {
            false
        };
        if !caps.takes_as_is(p.packet.len, p.csum, gso, ipv6) {
            return None;
        }
        let headers = frame::locate_l4_in(&p.head, p.packet.len)
            .map_or(DIRECT_MIN_FIRST, |info| info.headers_len().max(ETH_HLEN));
        let layout = Layout::of(&p.packet, headers);
        let data = layout.slots(&p.packet);
        let vif = self.vifs.get_mut(&to)?;
        if vif.fatal.is_some() {
            return None;
        }
        if data > 1 && !vif.conn.sg {
            return None;
        }
        let need = data + usize::from(gso.is_some());
        if need > DIRECT_MAX_BUFFERS {
            return None; // cannot happen (see DIRECT_MAX_BUFFERS)
        }
        match vif.conn.rx.unconsumed() {
            Ok(n) if n as usize >= need => {}
            Ok(_) => {
                self.stats.local_no_buffers += 1;
                return None;
            }
            Err(e) => {
                vif.fail(format!("rx ring: {e}"));
                return None;
            }
        }
        let mut reqs = RxBuffers::new();
        for _ in 0..need {
            match vif.conn.rx.take::<NetifRxRequest>() {
                Ok(r) => {
                    // Room checked above.
                    let _ = reqs.push(RxRequestRepr::parse(&r));
                }
                Err(e) => {
                    vif.fail(format!("rx ring: {e}"));
                    return None;
                }
            }
        }
        Some((reqs, layout))
    }

    /// Adds the copies of every packet's body, by its plan, to `ops`; a packet that cannot
    /// be copied is marked in `ok`.
    fn body_ops<'a>(
        &self,
        batch: &'a mut [TxPending],
        ops: &mut Vec<CopyOp<'a>>,
        owner: &mut Vec<Owner>,
        ok: &mut [bool],
    ) {
        for (i, p) in batch.iter_mut().enumerate() {
            let TxPending {
                port,
                packet,
                head,
                plan,
                ..
            } = p;
            // What the switch and the offload checks examined: our own copy.
            let head: &'a Head = head;
            let Some(src_dom) = self.vifs.get(port).map(|v| v.conn.frontend) else {
                continue;
            };
            match plan {
                Plan::None | Plan::Wait(_) => {}
                Plan::Local(buf) => {
                    let skip = head.len();
                    let mut rest: &mut [u8] = &mut buf[skip..];
                    let mut at = 0usize; // packet offset of the current piece
                    for piece in &packet.pieces {
                        let len = usize::from(piece.len);
                        let start = skip.saturating_sub(at).min(len);
                        at += len;
                        let mut offset = piece.offset + start as u16;
                        let mut left = len - start;
                        while left > 0 {
                            let n = local_room(rest).min(left);
                            let (head, tail) = core::mem::take(&mut rest).split_at_mut(n);
                            rest = tail;
                            let src = CopySrc::Foreign(ForeignRef {
                                domid: src_dom,
                                gref: piece.gref,
                                offset,
                            });
                            ops.push(CopyOp::new(src, CopyDst::Local(head), n as u16));
                            owner.push(Owner::Body(i));
                            offset += n as u16;
                            left -= n;
                        }
                    }
                }
                Plan::Direct { to, reqs, layout } => {
                    let Some(dst_dom) = self.vifs.get(to).map(|v| v.conn.frontend) else {
                        ok[i] = false;
                        continue;
                    };
                    let extra = usize::from(packet.gso.is_some());
                    // Walk the packet's bytes through the sender's pieces and the receiver's
                    // slots at once; each overlap is one copy. The head's bytes come from our
                    // copy, not again from the sender's page: the receiver gets exactly the
                    // headers that were checked (anti-spoofing, forwarding, offloads), even
                    // if the sender rewrites its page meanwhile.
                    let mut slots = layout.spans(packet).enumerate().filter(|(_, s)| s.1 > 0);
                    let mut dst = slots.next();
                    let mut dst_used = 0u16;
                    let mut at = 0usize; // packet offset of the next byte
                    for piece in pieces(packet) {
                        let mut src_used = 0u16;
                        while src_used < piece.len {
                            let Some((k, (d_off, d_len))) = dst else {
                                ok[i] = false;
                                break;
                            };
                            let mut n = (piece.len - src_used).min(d_len - dst_used);
                            let slot = if k == 0 { 0 } else { k + extra };
                            let src = match head.get(at..) {
                                Some(ours) if !ours.is_empty() => {
                                    let m = usize::from(n).min(ours.len()).min(local_room(ours));
                                    n = m as u16;
                                    CopySrc::Local(&ours[..m])
                                }
                                _ => CopySrc::Foreign(ForeignRef {
                                    domid: src_dom,
                                    gref: piece.gref,
                                    offset: piece.offset + src_used,
                                }),
                            };
                            let dst_ref = CopyDst::Foreign(ForeignRef {
                                domid: dst_dom,
                                gref: reqs[slot].gref,
                                offset: d_off + dst_used,
                            });
                            ops.push(CopyOp::new(src, dst_ref, n));
                            owner.push(Owner::Body(i));
                            src_used += n;
                            dst_used += n;
                            at += usize::from(n);
                            if dst_used == d_len {
                                dst = slots.next();
                                dst_used = 0;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Answers a packet whose body was copied (or not), leaving it without a plan. A direct
    /// packet whose copy failed gets its receiver's buffers answered with errors now (in
    /// ring order) and keeps its plan: `true`, to find out whose grant was bad.
    fn finish_tx(&mut self, p: &mut TxPending, copied: bool, now: u64) -> bool {
        match core::mem::replace(&mut p.plan, Plan::None) {
            // Parked packets never get here: `tx_pass` sets them aside before the copies.
            Plan::None | Plan::Wait(_) => false,
            Plan::Local(buf) => {
                let Some(vif) = self.vifs.get_mut(&p.port) else {
                    return false;
                };
                let status = if copied {
                    TxStatus::Okay
                } else {
                    TxStatus::Error
                };
                if let Err(e) = respond_tx(vif, &p.ids, p.extras, status) {
                    vif.fail(format!("tx ring: {e}"));
                    return false;
                }
                if !copied {
                    tx_error(vif, &mut self.switch, p.port, &TxError::Copy);
                    return false;
                }
                let mut packet = Packet {
                    data: buf,
                    csum: p.csum,
                    gso: p.packet.gso,
                };
                if let Err(e) = packet.validate_offloads() {
                    vif.errors.record(0, &format_args!("packet dropped: {e}"));
                    if let Some(c) = self.switch.counters_mut(p.port) {
                        c.in_errors += 1;
                    }
                    return false;
                }
                self.stats.switched += 1;
                self.switch.ingress(p.port, packet, now);
                false
            }
            Plan::Direct { to, reqs, layout } => {
                if !copied {
                    if let Some(dst) = self.vifs.get_mut(&to) {
                        if let Err(e) = respond_rx_errors(dst, &reqs) {
                            dst.fail(format!("rx ring: {e}"));
                        }
                    }
                    p.plan = Plan::Direct { to, reqs, layout };
                    return true;
                }
                if let Some(dst) = self.vifs.get_mut(&to) {
                    if let Err(e) = respond_rx_direct(dst, p, &reqs, layout) {
                        dst.fail(format!("rx ring: {e}"));
                    }
                }
                let Some(vif) = self.vifs.get_mut(&p.port) else {
                    return false;
                };
                if let Err(e) = respond_tx(vif, &p.ids, p.extras, TxStatus::Okay) {
                    vif.fail(format!("tx ring: {e}"));
                }
                self.stats.direct += 1;
                self.switch.count_direct(p.port, to, p.packet.len, true);
                false
            }
        }
    }

    /// Direct copies failed: read each packet into our memory to tell a bad sender grant
    /// (error to the sender) from a bad receiver buffer (the receiver already got errors).
    fn retry_direct(&mut self, platform: &P, retry: Vec<TxPending>) {
        let mut bufs: Vec<Vec<u8>> = retry.iter().map(|p| vec![0u8; p.packet.len]).collect();
        let mut ops: Vec<CopyOp<'_>> = Vec::new();
        let mut owner: Vec<usize> = Vec::new();
        for (i, (p, buf)) in retry.iter().zip(bufs.iter_mut()).enumerate() {
            let Some(domid) = self.vifs.get(&p.port).map(|v| v.conn.frontend) else {
                continue;
            };
            let mut rest: &mut [u8] = &mut buf[..];
            for piece in &p.packet.pieces {
                let mut offset = piece.offset;
                let mut len = usize::from(piece.len);
                while len > 0 {
                    let n = local_room(rest).min(len);
                    let (head, tail) = core::mem::take(&mut rest).split_at_mut(n);
                    rest = tail;
                    let src = CopySrc::Foreign(ForeignRef {
                        domid,
                        gref: piece.gref,
                        offset,
                    });
                    ops.push(CopyOp::new(src, CopyDst::Local(head), n as u16));
                    owner.push(i);
                    offset += n as u16;
                    len -= n;
                }
            }
        }
        self.run_copies(platform, &mut ops);
        let mut ok = vec![true; retry.len()];
        for (op, &i) in ops.iter().zip(&owner) {
            if op.status.is_err() {
                ok[i] = false;
            }
        }
        drop(ops);
        for (p, sender_ok) in retry.into_iter().zip(ok) {
            let Plan::Direct { to, .. } = p.plan else {
                continue;
            };
            let Some(vif) = self.vifs.get_mut(&p.port) else {
                continue;
            };
            let status = if sender_ok {
                TxStatus::Okay
            } else {
                TxStatus::Error
            };
            if let Err(e) = respond_tx(vif, &p.ids, p.extras, status) {
                vif.fail(format!("tx ring: {e}"));
            }
            if sender_ok {
                self.switch.count_direct(p.port, to, p.packet.len, false);
            } else {
                tx_error(vif, &mut self.switch, p.port, &TxError::Copy);
            }
        }
    }
}

/// Answers one chain: the first slot, `NETIF_RSP_NULL` for each extra-info slot, the rest.
fn respond_tx<P: Platform>(
    vif: &mut Vif<P>,
    ids: &SlotIds,
    extras: usize,
    status: TxStatus,
) -> Result<(), RingAccessError> {
    vif.notify_tx = true;
    let ring = &mut vif.conn.tx;
    let (ids, more_ids) = ids.as_slices();
    let (first, rest) = match ids.split_first() {
        Some((&id, rest)) => (Some(id), rest),
        None => (None, ids),
    };
    if let Some(id) = first {
        ring.respond(&TxResponseRepr { id, status }.emit())?;
    }
    for _ in 0..extras {
        let null = TxResponseRepr {
            id: 0,
            status: TxStatus::Null,
        };
        ring.respond(&null.emit())?;
    }
    for &id in rest {
        ring.respond(&TxResponseRepr { id, status }.emit())?;
    }
    for &id in more_ids {
        ring.respond(&TxResponseRepr { id, status }.emit())?;
    }
    Ok(())
}

/// Answers the receiver's buffers of a direct packet: one data slot per `layout` entry, and
/// the GSO extra slot after the first.
fn respond_rx_direct<P: Platform>(
    vif: &mut Vif<P>,
    p: &TxPending,
    reqs: &[RxRequestRepr],
    layout: Layout,
) -> Result<(), RingAccessError> {
    vif.notify_rx = true;
    let gso = p.packet.gso;
    let slots = layout.slots(&p.packet);
    let mut reqs = reqs.iter();
    for (k, (offset, len)) in layout.spans(&p.packet).enumerate() {
        let Some(req) = reqs.next() else { break };
        let rsp = RxResponseRepr {
            id: req.id,
            offset,
            csum: if k == 0 {
                p.csum.rx_flags()
            } else {
                RxCsum::default()
            },
            more_data: k + 1 < slots,
            extra_info: k == 0 && gso.is_some(),
            status: len as i16,
        };
        vif.conn.rx.respond(&rsp.emit())?;
        if let (0, Some(g)) = (k, gso) {
            let _extra_slot = reqs.next();
            let extra = ExtraRepr {
                kind: ExtraKind::Gso(g),
                more: false,
            };
            vif.conn.rx.respond(&extra.emit())?;
        }
    }
    Ok(())
}

/// Answers buffers taken for a packet that could not be written: each an error on its own.
fn respond_rx_errors<P: Platform>(
    vif: &mut Vif<P>,
    reqs: &[RxRequestRepr],
) -> Result<(), RingAccessError> {
    vif.notify_rx = true;
    for req in reqs {
        let rsp = RxResponseRepr {
            id: req.id,
            offset: 0,
            csum: RxCsum::default(),
            more_data: false,
            extra_info: false,
            status: NETIF_RSP_ERROR,
        };
        vif.conn.rx.respond(&rsp.emit())?;
    }
    Ok(())
}

fn tx_error<P: Platform>(vif: &mut Vif<P>, switch: &mut Switch, port: PortId, e: &TxError) {
    if let Some(c) = switch.counters_mut(port) {
        c.in_errors += 1;
    }
    vif.errors.record(0, e);
}
