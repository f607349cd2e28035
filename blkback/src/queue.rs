//! One ring of a virtual disk: take requests, check them, run them against the volume,
//! answer.
//!
//! Per pass a queue takes at most a budget of requests (so one busy guest cannot starve the
//! others served by the same driver domain), copies each slot out once, parses it
//! ([`Request::parse`]), resolves indirect segments, checks range, alignment and access, and
//! starts the I/O. Requests the store finishes at once are answered in the same pass;
//! asynchronous ones are answered when the store reports them. Barrier and flush requests
//! wait until every earlier request of the queue has completed (write ordering), then write
//! their data (if any) and flush the store before they are acknowledged.
//!
//! Every request gets exactly one response; malformed ones get `BLKIF_RSP_ERROR`, unknown
//! operations `BLKIF_RSP_EOPNOTSUPP`. A corrupted ring (bogus indices) is the only thing that
//! fails the whole queue, and with it the device.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use minios::event_throttle::{count_hold, EventThrottle, Verdict};
use minios::platform::{DomId, EventChannel, PageSet, Platform};
use minios::ring::{BackChannel, RingAccessError};
use xen_abi::blkif::BlkifResponse;

use crate::guest::{read_indirect, AlignedPage, GrantCache, GuestPort};
use crate::stats::{ErrorClass, Stats};
use crate::store::{Completion, Io, Started, StoreError, Volume, VolumeInfo};
use crate::wire::{Kind, Request, Response, Segment, Segments, Slot, Status};

/// The ring type of a queue.
pub type Ring<M> = BackChannel<PageSet<M>, Slot, BlkifResponse>;

/// What a checked request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// Answer at once.
    Reply(Status, Option<ErrorClass>),
    /// One store operation, then answer.
    Io(Io),
    /// Write, then flush, then answer (barrier / flush with data).
    WriteThenFlush(Io),
}

/// A checked request; its segments live in the queue's segment buffer or next to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Job {
    id: u64,
    operation: u8,
    /// Must wait until earlier requests completed.
    ordered: bool,
    action: Action,
}

/// A started request the store has not finished.
#[derive(Debug)]
struct InFlight {
    job: Job,
    /// Data segments (reads deliver into them on completion).
    segs: Vec<Segment>,
}

/// Tag bits: generation (16) | queue (8) | sequence (40).
const SEQ_BITS: u32 = 40;

/// Builds a store tag.
pub fn make_tag(generation: u16, queue: u8, seq: u64) -> u64 {
    (u64::from(generation) << 48) | (u64::from(queue) << SEQ_BITS) | (seq & ((1 << SEQ_BITS) - 1))
}

/// The generation and queue of a tag.
pub fn tag_owner(tag: u64) -> (u16, u8) {
    ((tag >> 48) as u16, (tag >> SEQ_BITS) as u8)
}

/// One connected ring.
pub struct Queue<P: Platform> {
    index: u8,
    generation: u16,
    frontend: DomId,
    ring: Ring<P::Mapping>,
    channel: P::Channel,
    grants: Option<GrantCache<P::Mapping>>,
    max_indirect: u16,
    scratch: Box<AlignedPage>,
    segbuf: Vec<Segment>,
    inflight: BTreeMap<u64, InFlight>,
    /// The oldest taken request that could not start yet (store busy, or an ordered
    /// request waiting for earlier ones): nothing after it starts before it does.
    waiting: Option<InFlight>,
    next_seq: u64,
    /// Holds the event channel back during an event storm.
    events: EventThrottle,
}

impl<P: Platform> Queue<P> {
    /// A queue over a mapped ring and a bound event channel. `persistent_limit` is the
    /// persistent-grant cache size (`None`: persistent grants not negotiated).
    pub fn new(
        index: u8,
        generation: u16,
        frontend: DomId,
        ring: Ring<P::Mapping>,
        channel: P::Channel,
        persistent_limit: Option<usize>,
        max_indirect: u16,
    ) -> Self {
        Self {
            index,
            generation,
            frontend,
            ring,
            channel,
            grants: persistent_limit.map(GrantCache::new),
            max_indirect,
            scratch: AlignedPage::boxed(),
            segbuf: Vec::new(),
            inflight: BTreeMap::new(),
            waiting: None,
            next_seq: 0,
            events: EventThrottle::new(),
        }
    }

    /// Entries of the ring.
    pub fn ring_size(&self) -> u32 {
        self.ring.ring().nr_ents()
    }

    /// Grants currently mapped persistently.
    pub fn persistent_grants(&self) -> usize {
        self.grants.as_ref().map_or(0, GrantCache::len)
    }

    /// Requests started and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    fn tag(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        make_tag(self.generation, self.index, seq)
    }

    /// Takes and handles up to `budget` requests. Returns whether work is left (poll again
    /// soon) and, while the event channel is held back for an event storm
    /// ([`EventThrottle`]), when to poll again at the latest. An error means the frontend
    /// corrupted the ring.
    pub fn poll(
        &mut self,
        platform: &P,
        volume: &mut dyn Volume,
        stats: &mut Stats,
        budget: usize,
        now_ns: u64,
    ) -> Result<(bool, Option<u64>), RingAccessError> {
        let fired = self.events.take(&self.channel, now_ns);
        let mut more = false;
        let mut done = 0;
        // Nothing after a barrier or flush starts before it has completed.
        let ordered_busy = self.inflight.values().any(|f| f.job.ordered);
        if !ordered_busy && self.retry_waiting(platform, volume, stats) {
            loop {
                if done == budget {
                    more = true;
                    break;
                }
                let slot = match self.ring.next_request()? {
                    Some(slot) => slot,
                    None => {
                        if self.ring.final_check()? {
                            continue;
                        }
                        break;
                    }
                };
                done += 1;
                stats.requests += 1;
                let job = self.prepare(platform, volume.info(), &slot, stats);
                self.execute(platform, volume, stats, job);
                if self.waiting.is_some() || (job.ordered && !self.inflight.is_empty()) {
                    break;
                }
            }
        }
        self.push()?;
        let hold = match self.events.account(&self.channel, now_ns, fired, done > 0) {
            Verdict::Open => None,
            Verdict::Held { until_ns, started } => {
                if started {
                    let label = String::from(stats.label());
                    count_hold(&mut stats.event_holds, &label);
                }
                Some(until_ns)
            }
        };
        Ok((more, hold))
    }

    /// Publishes responses and notifies the frontend if it asked.
    fn push(&mut self) -> Result<(), RingAccessError> {
        if self.ring.push() {
            // A closed remote port only means the frontend is going away.
            let _ = self.channel.notify();
        }
        Ok(())
    }

    /// Answers a finished asynchronous operation of this queue.
    pub fn complete(
        &mut self,
        platform: &P,
        volume: &mut dyn Volume,
        stats: &mut Stats,
        done: Completion,
    ) -> Result<(), RingAccessError> {
        let Some(mut fl) = self.inflight.remove(&done.tag) else {
            stats.stale_completions += 1;
            return Ok(());
        };
        let mut result = done.result;
        if let (Ok(()), Some(data)) = (&result, done.data) {
            result = self.deliver(platform, &fl.segs, &data, stats);
        }
        match (result, fl.job.action) {
            (Ok(()), Action::WriteThenFlush(_)) => {
                // Data is stored: now the flush, before anything else of this queue starts.
                fl.job.action = Action::Io(Io::Flush);
                fl.segs.clear();
                self.start(platform, volume, stats, fl.job, fl.segs);
            }
            (result, _) => self.finish(stats, fl.job, result)?,
        }
        self.push()
    }

    fn deliver(
        &mut self,
        platform: &P,
        segs: &[Segment],
        data: &[u8],
        stats: &mut Stats,
    ) -> Result<(), StoreError> {
        if let Some(cache) = self.grants.as_mut() {
            cache.prepare(platform, self.frontend, segs.iter().map(|s| s.gref));
        }
        let mut port = GuestPort::new(platform, self.frontend, segs, self.grants.as_ref());
        let r = crate::store::DataPort::scatter(&mut port, 0, &[data]);
        stats.note_moved(port.moved);
        r
    }

    /// Starts the waiting request if it can start now; returns whether the queue may take
    /// new requests.
    fn retry_waiting(&mut self, platform: &P, volume: &mut dyn Volume, stats: &mut Stats) -> bool {
        let Some(w) = self.waiting.take() else {
            return true;
        };
        if w.job.ordered && !self.inflight.is_empty() {
            self.waiting = Some(w);
            return false;
        }
        self.start(platform, volume, stats, w.job, w.segs);
        self.waiting.is_none()
    }

    /// Parses and checks one slot into a job; its segments end up in `self.segbuf`.
    fn prepare(&mut self, platform: &P, info: &VolumeInfo, slot: &Slot, stats: &mut Stats) -> Job {
        self.segbuf.clear();
        let req = match Request::parse(slot, self.max_indirect) {
            Ok(req) => req,
            Err(e) => {
                stats.error(ErrorClass::Invalid, &e);
                return Job {
                    id: e.id,
                    operation: e.operation,
                    ordered: false,
                    action: Action::Reply(Status::Error, None),
                };
            }
        };
        let reply = |status, class| Job {
            id: req.id(),
            operation: req.response_operation(),
            ordered: false,
            action: Action::Reply(status, class),
        };
        match req {
            Request::Unsupported { operation, .. } => {
                stats.error(
                    ErrorClass::Unsupported,
                    &format_args!("operation {operation}"),
                );
                reply(Status::NotSupported, None)
            }
            Request::Discard(d) => {
                stats.discards += 1;
                let Some(discard) = info.discard else {
                    let why = if info.read_only {
                        "discard on a read-only volume"
                    } else {
                        "discard not supported by the volume"
                    };
                    stats.error(ErrorClass::Refused, &why);
                    return reply(Status::NotSupported, None);
                };
                if d.secure && !discard.secure {
                    stats.error(ErrorClass::Refused, &"secure discard not supported");
                    return reply(Status::NotSupported, None);
                }
                match d.sector.checked_add(d.nr_sectors) {
                    Some(end) if end <= info.sectors() => {}
                    _ => {
                        stats.error(
                            ErrorClass::Range,
                            &format_args!(
                                "discard of {} sectors at {} beyond the {} sectors of {}",
                                d.nr_sectors,
                                d.sector,
                                info.sectors(),
                                info.name
                            ),
                        );
                        return reply(Status::Error, None);
                    }
                }
                Job {
                    id: d.id,
                    operation: req.response_operation(),
                    ordered: false,
                    action: Action::Io(Io::Discard {
                        offset: d.sector * 512,
                        len: d.nr_sectors * 512,
                        secure: d.secure,
                    }),
                }
            }
            Request::Rw(rw) => {
                match rw.kind {
                    Kind::Read => stats.reads += 1,
                    Kind::Write => stats.writes += 1,
                    Kind::Flush | Kind::Barrier => stats.flushes += 1,
                }
                match rw.segments {
                    Segments::Direct { .. } => self.segbuf.extend_from_slice(rw.segments.direct()),
                    Segments::Indirect { count, .. } => {
                        let pages = rw.segments.indirect_pages();
                        if let Some(cache) = self.grants.as_mut() {
                            cache.prepare(platform, self.frontend, pages.iter().copied());
                        }
                        if let Err(e) = read_indirect(
                            platform,
                            self.frontend,
                            self.grants.as_ref(),
                            pages,
                            usize::from(count),
                            &mut self.scratch,
                            &mut self.segbuf,
                        ) {
                            stats.error(ErrorClass::Invalid, &e);
                            return reply(Status::Error, None);
                        }
                    }
                }
                if let Err(why) = check_rw(info, rw.kind, rw.sector, &self.segbuf) {
                    stats.error(why.0, &why.1);
                    return reply(Status::Error, None);
                }
                let sectors: u64 = self.segbuf.iter().map(Segment::sectors).sum();
                // Checked above: a request with data lies within the volume (an empty one's
                // sector is meaningless).
                let offset = if sectors == 0 { 0 } else { rw.sector * 512 };
                let len = sectors * 512;
                let action = match (rw.kind, len) {
                    (Kind::Read, _) => Action::Io(Io::Read { offset, len }),
                    (Kind::Write, _) => Action::Io(Io::Write { offset, len }),
                    (_, 0) => Action::Io(Io::Flush),
                    (_, _) => Action::WriteThenFlush(Io::Write { offset, len }),
                };
                Job {
                    id: rw.id,
                    operation: rw.kind.operation(),
                    ordered: rw.kind.is_ordered(),
                    action,
                }
            }
        }
    }

    fn execute(&mut self, platform: &P, volume: &mut dyn Volume, stats: &mut Stats, job: Job) {
        if let Action::Reply(status, _) = job.action {
            // Cannot fail: a request was just taken, so a response slot is free.
            let _ = self.respond(job.id, job.operation, status);
            return;
        }
        let segs = core::mem::take(&mut self.segbuf);
        if job.ordered && !self.inflight.is_empty() {
            stats.drains += 1;
            self.waiting = Some(InFlight { job, segs });
            self.segbuf = Vec::new();
            return;
        }
        self.start(platform, volume, stats, job, segs);
    }

    /// Starts a job's store operation; answers it, records it in flight, or parks it.
    fn start(
        &mut self,
        platform: &P,
        volume: &mut dyn Volume,
        stats: &mut Stats,
        mut job: Job,
        mut segs: Vec<Segment>,
    ) {
        loop {
            let io = match job.action {
                Action::Io(io) | Action::WriteThenFlush(io) => io,
                Action::Reply(status, _) => {
                    let _ = self.respond(job.id, job.operation, status);
                    self.recycle(segs);
                    return;
                }
            };
            if let Some(cache) = self.grants.as_mut() {
                if !segs.is_empty() {
                    cache.prepare(platform, self.frontend, segs.iter().map(|s| s.gref));
                }
            }
            let tag = self.tag();
            let mut port = GuestPort::new(platform, self.frontend, &segs, self.grants.as_ref());
            let started = volume.start(tag, io, &mut port);
            stats.note_moved(port.moved);
            match started {
                Started::Done(Ok(())) => {
                    stats.note_done(io);
                    if let Action::WriteThenFlush(_) = job.action {
                        job.action = Action::Io(Io::Flush);
                        segs.clear();
                        continue;
                    }
                    let _ = self.respond(job.id, job.operation, Status::Okay);
                    self.recycle(segs);
                }
                Started::Done(Err(e)) => {
                    let _ = self.finish(stats, job, Err(e));
                    self.recycle(segs);
                }
                Started::Pending => {
                    stats.note_done(io);
                    self.inflight.insert(tag, InFlight { job, segs });
                }
                Started::Busy => {
                    stats.busy += 1;
                    self.waiting = Some(InFlight { job, segs });
                }
            }
            return;
        }
    }

    fn recycle(&mut self, mut segs: Vec<Segment>) {
        if self.segbuf.capacity() < segs.capacity() {
            segs.clear();
            self.segbuf = segs;
        }
    }

    /// Answers a job with the store's verdict.
    fn finish(
        &mut self,
        stats: &mut Stats,
        job: Job,
        result: Result<(), StoreError>,
    ) -> Result<(), RingAccessError> {
        let status = match result {
            Ok(()) => Status::Okay,
            Err(StoreError::Unsupported) => {
                stats.error(ErrorClass::Refused, &StoreError::Unsupported);
                Status::NotSupported
            }
            Err(e) => {
                let class = match e {
                    StoreError::Guest(_) => ErrorClass::Grant,
                    StoreError::ReadOnly => ErrorClass::Refused,
                    StoreError::OutOfRange => ErrorClass::Range,
                    _ => ErrorClass::Store,
                };
                stats.error(class, &e);
                Status::Error
            }
        };
        self.respond(job.id, job.operation, status)
    }

    fn respond(&mut self, id: u64, operation: u8, status: Status) -> Result<(), RingAccessError> {
        let rsp = Response {
            id,
            operation,
            status,
        };
        self.ring.put_response(&rsp.to_wire())
    }
}

/// Checks a data request against the volume: access, alignment to the sector size, range.
fn check_rw(
    info: &VolumeInfo,
    kind: Kind,
    sector: u64,
    segs: &[Segment],
) -> Result<(), (ErrorClass, alloc::string::String)> {
    use alloc::format;
    let sectors: u64 = segs.iter().map(Segment::sectors).sum();
    if kind.writes() && info.read_only && (kind == Kind::Write || sectors > 0) {
        let why = format!("write to read-only volume {}", info.name);
        return Err((ErrorClass::Refused, why));
    }
    if sectors == 0 {
        // An empty flush or barrier: Linux's blkfront leaves its sector at -1, and Linux's
        // blkback checks the range only for requests with data.
        return Ok(());
    }
    let per_block = u64::from(info.sector_size / 512).max(1);
    if sector % per_block != 0 || segs.iter().any(|s| s.sectors() % per_block != 0) {
        let why = format!(
            "request at sector {sector} not aligned to the {}-byte sectors of {}",
            info.sector_size, info.name
        );
        return Err((ErrorClass::Range, why));
    }
    match sector.checked_add(sectors) {
        Some(end) if end <= info.sectors() => Ok(()),
        _ => Err((
            ErrorClass::Range,
            format!(
                "{sectors} sectors at {sector} beyond the {} sectors of {}",
                info.sectors(),
                info.name
            ),
        )),
    }
}
