//! Slices of a disk dom0 hands the driver domain: the driver domain is a blkfront client of
//! dom0 ([`BlkFront`]) and re-exports byte ranges of that disk as volumes. Data written and
//! flushed is on dom0's disk, so it survives driver-domain restarts.
//!
//! Data goes through a pool of bounce pages granted to dom0 once and reused (persistent
//! grants when dom0 offers them): a write is gathered from the guest into the pool and sent
//! to dom0; a read comes back into the pool and is delivered to the guest when dom0 answers.
//! A guest request larger than one dom0 request is split; it completes when all parts have.
//!
//! Fairness: all volumes share the dom0 ring and the pool. One handle may hold at most half
//! of the ring, and when a handle finds no room it queues up; freed room goes to the handles
//! in the order they queued, so a busy guest cannot starve a quiet one.
//!
//! Flush: `BLKIF_OP_FLUSH_DISKCACHE` to dom0 (or a barrier if that is all it offers); the
//! guest's flush is acknowledged only when dom0 acknowledged it. Discard is forwarded when dom0
//! supports it.
//!
//! One file per job: this module is the store (the pool, handles, requests to dom0 and their
//! completions); [`volume`] is one device's view of a slice; [`task`] runs the store on the
//! executor and flushes it at the stop.

pub mod task;
pub mod volume;

pub use task::DiskTask;
pub use volume::{DiskSlice, DiskVolume};

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use minios::platform::{Access, GrantedPage, Platform, SharedMem, PAGE_SIZE};
use minios::xenbus::FrontendError;
use minios::xenstore::Xenstore;
use xen_abi::blkif::{
    BlkifRequest, BlkifRequestDiscard, BlkifRequestIndirect, BlkifRequestSegment,
    BLKIF_DISCARD_SECURE, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_DISCARD,
    BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_OKAY, SEGS_PER_INDIRECT_FRAME,
};
use xen_abi::WireStruct;

use super::{Completion, DataPort, DiscardInfo, Io, Started, StoreError, VolumeInfo};
use crate::front::BlkFront;
use crate::wire::Slot;

/// One guest I/O in progress on the disk.
struct DiskIo {
    handle: u32,
    tag: u64,
    read: bool,
    /// Bytes of data (reads: to deliver).
    len: usize,
    /// Bounce pages holding the data (and indirect pages), released at the end.
    pages: Vec<usize>,
    parts_left: usize,
    error: Option<StoreError>,
}

#[derive(Default)]
struct HandleState {
    done: VecDeque<Completion>,
    /// I/Os started and not collected.
    in_flight: usize,
    /// Ring slots held.
    slots: usize,
    /// The handle exists (its volume was not dropped).
    open: bool,
    /// Its device is connected and collects completions.
    attached: bool,
}

/// Counters of the disk store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Requests sent to the backing disk.
    pub requests: u64,
    /// Requests it failed.
    pub errors: u64,
    /// Times a handle found no room.
    pub busy: u64,
    /// Responses with ids we never sent (ignored).
    pub bogus_responses: u64,
}

/// The backing disk and its shared state.
pub struct DiskStore<P: Platform> {
    platform: P,
    front: BlkFront<P>,
    pages: Vec<P::Granted>,
    free_pages: Vec<usize>,
    /// dom0 request id → I/O id.
    ring_ops: BTreeMap<u64, u64>,
    ios: BTreeMap<u64, DiskIo>,
    next_id: u64,
    handles: BTreeMap<u32, HandleState>,
    waiters: VecDeque<u32>,
    next_handle: u32,
    staging: Vec<u8>,
    failed: Option<String>,
    /// I/Os finished since [`take_progress`](Self::take_progress) last looked.
    progress: bool,
    /// Counters.
    pub stats: DiskStats,
}

/// Shared handle on the store.
pub type Shared<P> = Rc<RefCell<DiskStore<P>>>;

impl<P: Platform> DiskStore<P> {
    /// Connects our disk `devid` (default: the first) and grants `bounce_pages` pages to its
    /// backend.
    pub fn connect(
        platform: P,
        xs: &mut Xenstore<P::Xs>,
        devid: Option<u32>,
        bounce_pages: usize,
        deadline_ns: u64,
    ) -> Result<Shared<P>, FrontendError> {
        let front = BlkFront::connect(&platform, xs, devid, deadline_ns)?;
        let backend = front.backend_id();
        let mut pages = Vec::with_capacity(bounce_pages);
        for _ in 0..bounce_pages {
            let page = platform
                .grant_page(backend, Access::ReadWrite)
                .map_err(|e| {
                    FrontendError::BadConfig(format!("granting bounce pages to the backend: {e}"))
                })?;
            pages.push(page);
        }
        Ok(Rc::new(RefCell::new(Self::new(platform, front, pages))))
    }

    /// A store over a connected front and granted bounce pages.
    pub fn new(platform: P, front: BlkFront<P>, pages: Vec<P::Granted>) -> Self {
        let free_pages = (0..pages.len()).rev().collect();
        Self {
            platform,
            front,
            pages,
            free_pages,
            ring_ops: BTreeMap::new(),
            ios: BTreeMap::new(),
            next_id: 1,
            handles: BTreeMap::new(),
            waiters: VecDeque::new(),
            next_handle: 1,
            staging: Vec::new(),
            failed: None,
            progress: false,
            stats: DiskStats::default(),
        }
    }

    /// Size in bytes and sector size of the backing disk.
    pub fn geometry(&self) -> (u64, u32) {
        (self.front.info.sectors * 512, self.front.info.sector_size)
    }

    /// A volume source for the slice `offset..offset + size` (checked by the caller with
    /// [`crate::config::Config::check_disk`]).
    pub fn slice(
        store: &Shared<P>,
        name: &str,
        offset: u64,
        size: u64,
        sector_size: u32,
        read_only: bool,
    ) -> DiskSlice<P> {
        let info = &store.borrow().front.info;
        let read_only = read_only || info.read_only;
        let discard = (info.discard && !read_only).then_some(DiscardInfo {
            granularity: info.discard_granularity.max(sector_size),
            alignment: 0,
            secure: info.discard_secure,
        });
        DiskSlice {
            store: store.clone(),
            offset,
            info: VolumeInfo {
                name: name.into(),
                size,
                sector_size,
                read_only,
                discard,
            },
        }
    }

    fn open_handle(&mut self) -> u32 {
        let h = self.next_handle;
        self.next_handle += 1;
        self.handles.insert(
            h,
            HandleState {
                open: true,
                attached: true,
                ..HandleState::default()
            },
        );
        h
    }

    /// Stops delivering completions to handle `h` and drops it from the waiters.
    fn detach_handle(&mut self, h: u32) {
        self.waiters.retain(|&w| w != h);
        if let Some(st) = self.handles.get_mut(&h) {
            st.attached = false;
            st.done.clear();
        }
    }

    /// Forgets a handle's queued completions; its I/Os in flight finish unseen.
    fn close_handle(&mut self, h: u32) {
        self.waiters.retain(|&w| w != h);
        let gone = match self.handles.get_mut(&h) {
            Some(st) => {
                st.open = false;
                st.done.clear();
                st.in_flight == 0
            }
            None => false,
        };
        if gone {
            self.handles.remove(&h);
        }
    }

    /// Segments one dom0 request may carry (one indirect page at most).
    fn max_segs(&self) -> usize {
        usize::from(self.front.info.max_indirect)
            .clamp(BLKIF_MAX_SEGMENTS_PER_REQUEST, SEGS_PER_INDIRECT_FRAME)
    }

    fn busy(&mut self, h: u32) -> Started {
        log::debug!(
            "disk: handle {h} busy (waiters {:?}, {} free pages, {} free slots)",
            self.waiters,
            self.free_pages.len(),
            self.front.free_slots()
        );
        self.stats.busy += 1;
        if !self.waiters.contains(&h) {
            self.waiters.push_back(h);
        }
        Started::Busy
    }

    /// Starts `io` (offsets on the disk) for handle `h`.
    fn start(&mut self, h: u32, tag: u64, io: Io, port: &mut dyn DataPort) -> Started {
        if let Some(st) = self.handles.get_mut(&h) {
            st.attached = true;
        }
        if let Some(why) = &self.failed {
            return Started::Done(Err(StoreError::Device(why.clone())));
        }
        // First come, first served among handles that found no room.
        if let Some(&first) = self.waiters.front() {
            if first != h {
                return self.busy(h);
            }
        }
        let info = self.front.info;
        let (op, offset, len) = match io {
            Io::Read { offset, len } => (BLKIF_OP_READ, offset, len as usize),
            Io::Write { offset, len } => (BLKIF_OP_WRITE, offset, len as usize),
            Io::Flush if info.flush => (BLKIF_OP_FLUSH_DISKCACHE, 0, 0),
            Io::Flush if info.barrier => (BLKIF_OP_WRITE_BARRIER, 0, 0),
            // A backend without a cache to flush writes through.
            Io::Flush => return Started::Done(Ok(())),
            Io::Discard { .. } if !info.discard => {
                return Started::Done(Err(StoreError::Unsupported))
            }
            Io::Discard { secure, .. } if secure && !info.discard_secure => {
                return Started::Done(Err(StoreError::Unsupported))
            }
            Io::Discard { offset, len, .. } => (BLKIF_OP_DISCARD, offset, len as usize),
        };
        let data_pages = if op == BLKIF_OP_DISCARD {
            0
        } else {
            len.div_ceil(PAGE_SIZE)
        };
        let max_segs = self.max_segs();
        let parts = data_pages.div_ceil(max_segs).max(1);
        let indirect = max_segs > BLKIF_MAX_SEGMENTS_PER_REQUEST
            && data_pages > BLKIF_MAX_SEGMENTS_PER_REQUEST;
        let need_pages = data_pages + if indirect { parts } else { 0 };
        if need_pages > self.pages.len() {
            let why = format!(
                "I/O of {need_pages} pages exceeds the bounce pool of {} (blkback.bounce)",
                self.pages.len()
            );
            return Started::Done(Err(StoreError::Device(why)));
        }
        let ring_size = self.front.ring_size() as usize;
        let held = self.handles.get(&h).map_or(0, |s| s.slots);
        let cap = (ring_size / 2).max(1);
        let others = self.ring_ops.len() - held.min(self.ring_ops.len());
        if (self.front.free_slots() as usize) < parts
            || self.free_pages.len() < need_pages
            || (held + parts > cap && others > 0)
        {
            return self.busy(h);
        }
        if self.waiters.front() == Some(&h) {
            self.waiters.pop_front();
        }
        let pages: Vec<usize> = (0..need_pages)
            .filter_map(|_| self.free_pages.pop())
            .collect();
        if op == BLKIF_OP_WRITE {
            if let Err(e) = self.load(port, &pages[..data_pages], len) {
                self.free_pages.extend(pages);
                return Started::Done(Err(e));
            }
        }
        let id_io = self.next_id;
        self.next_id += 1;
        let mut first_sector = offset / 512;
        for part in 0..parts {
            let chunk = &pages[part * max_segs..((part + 1) * max_segs).min(data_pages)];
            let mut segs = Vec::with_capacity(chunk.len());
            let mut sectors = 0u64;
            for (i, &p) in chunk.iter().enumerate() {
                let byte = (part * max_segs + i) * PAGE_SIZE;
                let n = (len - byte).min(PAGE_SIZE);
                let last = (n / 512) as u8 - 1;
                sectors += (n / 512) as u64;
                segs.push(BlkifRequestSegment {
                    gref: self.pages[p].gref(),
                    first_sect: 0,
                    last_sect: last,
                });
            }
            let rid = self.next_id;
            self.next_id += 1;
            let slot = if op == BLKIF_OP_DISCARD {
                slot_of(&BlkifRequestDiscard {
                    operation: op,
                    flag: if matches!(io, Io::Discard { secure: true, .. }) {
                        BLKIF_DISCARD_SECURE
                    } else {
                        0
                    },
                    handle: 0,
                    id: rid,
                    sector_number: offset / 512,
                    nr_sectors: len as u64 / 512,
                })
            } else if indirect {
                let ipage = pages[data_pages + part];
                let mut raw = [0u8; 8];
                for (i, s) in segs.iter().enumerate() {
                    let _ = s.write_to(&mut raw);
                    let _ = self.pages[ipage].write(i * 8, &raw);
                }
                let mut grefs = [0u32; 8];
                grefs[0] = self.pages[ipage].gref();
                slot_of(&BlkifRequestIndirect {
                    operation: BLKIF_OP_INDIRECT,
                    indirect_op: op,
                    nr_segments: segs.len() as u16,
                    id: rid,
                    sector_number: first_sector,
                    handle: 0,
                    indirect_grefs: grefs,
                })
            } else {
                let mut req = BlkifRequest {
                    operation: op,
                    nr_segments: segs.len() as u8,
                    handle: 0,
                    id: rid,
                    sector_number: first_sector,
                    ..Default::default()
                };
                req.seg[..segs.len()].copy_from_slice(&segs);
                slot_of(&req)
            };
            first_sector += sectors;
            if self.front.put(&slot).is_err() {
                // Cannot happen: free slots were checked above.
                self.failed = Some("request ring full".into());
            }
            self.ring_ops.insert(rid, id_io);
            self.stats.requests += 1;
        }
        self.front.push();
        log::debug!(
            "disk: I/O {id_io} (handle {h}): op {op} at sector {} len {len} in {parts} part(s), {} pages, {} free",
            offset / 512,
            need_pages,
            self.free_pages.len()
        );
        self.ios.insert(
            id_io,
            DiskIo {
                handle: h,
                tag,
                read: op == BLKIF_OP_READ,
                len,
                pages,
                parts_left: parts,
                error: None,
            },
        );
        let st = self.handles.entry(h).or_default();
        st.in_flight += 1;
        st.slots += parts;
        Started::Pending
    }

    /// Gathers `len` bytes of guest data into the bounce `pages`.
    fn load(
        &mut self,
        port: &mut dyn DataPort,
        pages: &[usize],
        len: usize,
    ) -> Result<(), StoreError> {
        self.staging.clear();
        self.staging
            .try_reserve(len)
            .map_err(|_| StoreError::NoMemory)?;
        self.staging.resize(len, 0);
        port.gather(0, &mut [&mut self.staging[..]])?;
        for (i, &p) in pages.iter().enumerate() {
            let chunk = &self.staging[i * PAGE_SIZE..((i + 1) * PAGE_SIZE).min(len)];
            self.pages[p]
                .write(0, chunk)
                .map_err(|e| StoreError::Device(format!("bounce page: {e}")))?;
        }
        Ok(())
    }

    /// Takes dom0's responses and finishes I/Os. Returns how many I/Os finished.
    pub fn pump(&mut self) -> usize {
        let _ = self.front.take_event();
        let mut finished = 0;
        loop {
            let rsp = match self.front.next_response() {
                Ok(Some(r)) => r,
                Ok(None) => match self.front.final_check() {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        self.fail_all(format!("backing disk ring: {e}"));
                        break;
                    }
                },
                Err(e) => {
                    self.fail_all(format!("backing disk ring: {e}"));
                    break;
                }
            };
            log::debug!(
                "disk: response id {} op {} status {}",
                rsp.id,
                rsp.operation,
                rsp.status
            );
            let Some(io_id) = self.ring_ops.remove(&rsp.id) else {
                self.stats.bogus_responses += 1;
                continue;
            };
            let Some(io) = self.ios.get_mut(&io_id) else {
                continue;
            };
            io.parts_left -= 1;
            if let Some(st) = self.handles.get_mut(&io.handle) {
                st.slots = st.slots.saturating_sub(1);
            }
            if rsp.status != BLKIF_RSP_OKAY {
                self.stats.errors += 1;
                io.error = Some(StoreError::Device(format!(
                    "backing disk answered status {} to operation {}",
                    rsp.status, rsp.operation
                )));
            }
            if io.parts_left == 0 {
                if let Some(io) = self.ios.remove(&io_id) {
                    self.finish(io);
                    finished += 1;
                }
            }
        }
        finished
    }

    fn finish(&mut self, io: DiskIo) {
        let mut result = io.error.map_or(Ok(()), Err);
        let mut data = None;
        if io.read && result.is_ok() {
            let mut buf = Vec::new();
            if buf.try_reserve_exact(io.len).is_err() {
                result = Err(StoreError::NoMemory);
            } else {
                buf.resize(io.len, 0);
                for (i, &p) in io.pages.iter().enumerate() {
                    let start = i * PAGE_SIZE;
                    if start >= io.len {
                        break;
                    }
                    let end = (start + PAGE_SIZE).min(io.len);
                    let _ = self.pages[p].read(0, &mut buf[start..end]);
                }
                data = Some(buf);
            }
        }
        self.free_pages.extend(io.pages);
        self.progress = true;
        let remove = match self.handles.get_mut(&io.handle) {
            Some(st) => {
                st.in_flight -= 1;
                if st.open && st.attached {
                    st.done.push_back(Completion {
                        tag: io.tag,
                        result,
                        data,
                    });
                }
                !st.open && st.in_flight == 0
            }
            None => false,
        };
        if remove {
            self.handles.remove(&io.handle);
        }
    }

    /// The backing disk's ring is broken: fail everything in flight, refuse new I/O.
    fn fail_all(&mut self, why: String) {
        log::error!("{why}: failing all I/O to the backing disk");
        self.failed = Some(why.clone());
        self.ring_ops.clear();
        let ios: Vec<DiskIo> = core::mem::take(&mut self.ios).into_values().collect();
        for mut io in ios {
            io.error = Some(StoreError::Device(why.clone()));
            self.finish(io);
        }
    }

    /// Handles waiting for room.
    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// Whether I/Os finished (room was freed) since the last call.
    pub fn take_progress(&mut self) -> bool {
        core::mem::take(&mut self.progress)
    }

    /// Whether a connected device has completions to collect.
    pub fn has_queued(&self) -> bool {
        self.handles.values().any(|st| !st.done.is_empty())
    }
}

/// A port with no data (flushes and discards).
struct NoData;

impl DataPort for NoData {
    fn gather(&mut self, _pos: usize, _bufs: &mut [&mut [u8]]) -> Result<(), StoreError> {
        Ok(())
    }
    fn scatter(&mut self, _pos: usize, _bufs: &[&[u8]]) -> Result<(), StoreError> {
        Ok(())
    }
}

fn slot_of<T: WireStruct>(req: &T) -> Slot {
    let mut s = Slot::default();
    // Cannot fail: every request struct fits a slot.
    let _ = req.write_to(&mut s.0);
    s
}

impl<P: Platform> DiskStore<P> {
    /// Pages in the bounce pool.
    pub fn bounce_pages(&self) -> usize {
        self.pages.len()
    }

    /// Counters.
    pub fn counters(&self) -> DiskStats {
        self.stats
    }

    /// The backing disk's properties.
    pub fn disk_info(&self) -> crate::front::DiskInfo {
        self.front.info
    }

    /// Segments per request to the backing disk.
    pub fn segments_per_request(&self) -> usize {
        self.max_segs()
    }
}
