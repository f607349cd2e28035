//! Slices of a disk controller the driver domain owns (a passed-through virtio-blk or NVMe
//! controller): the device is a [`BlockDevice`] (the drivers live in `minios-rt`), and byte
//! ranges of it are volumes. dom0 is not on the data path.
//!
//! Data moves without a copy where it can: when every piece of a device request lies in a
//! grant the queue keeps mapped (persistent grants), in whole device blocks, and the driver
//! can point the device at them ([`BlockDevice::direct_ok`]: NVMe PRPs), the device reads a
//! write's data from, or writes a read's data into, the guest's pages itself
//! ([`BlockDevice::submit_direct`]); the request holds those mappings until it completes
//! (a request that timed out, or a failed device, keeps them mapped for good, since the
//! device may still transfer). Otherwise data is copied: a write is gathered from the
//! guest's grants straight into the driver's DMA pages (no staging copy) and queued; a read
//! lands in the DMA pages, is copied out when the device completes it, and delivered to
//! the guest. A guest request larger than one device request ([`BlockInfo::max_transfer`])
//! is split ([`split`]); it completes when all parts have, failed if any part failed.
//!
//! Durability: a write is acknowledged only when the device completed it; a guest flush
//! becomes the device's flush (virtio `FLUSH`, NVMe Flush) and is acknowledged only after it
//! completed. A device without a volatile cache has nothing to flush: its completed writes
//! are durable. Discard is the device's discard when it offers one (else not advertised).
//!
//! Errors: a request the device fails is answered with an error for that guest request
//! (the others go on); a device that breaks its protocol or goes away fails everything in
//! flight and every later request, with the reason logged once.
//!
//! Fairness and memory: volumes share the device. When a handle finds no room it queues up
//! and freed room goes to the handles in the order they queued. While another handle has
//! requests in flight, a handle may hold at most [`HandleLimits::parts`] device requests and
//! [`HandleLimits::bytes`] of data on the device (so a guest moving 1 MiB per request gets no
//! more of the device than one moving 4 KiB; a discard carries no data and counts as one
//! request, so a whole-volume discard is one request like any other). A handle at its limit
//! waits for its own requests to complete without holding up the handles queued behind it;
//! alone on the device it is not limited. A guest request
//! that does not fit the device's room at once becomes the one *backlog* I/O: its write data
//! is copied from the guest into a staging buffer at start, and its parts are submitted as
//! room frees up, before any other I/O starts (so at most one request is staged).
//!
//! Device queues: a device with several submission queues (NVMe I/O queue pairs) gets each
//! guest ring's requests on a queue of its own where it has enough: each ring (a handle and
//! the ring index its tags carry) takes the next queue round-robin at its first request and
//! keeps it, so two guests, or two rings of one guest, do not share a submission queue until
//! there are more rings than queues. A ring's requests stay in one queue; nothing is
//! rebalanced at run time, which on a one-vCPU domain would buy nothing (every queue is
//! served by the same pass) but cost bookkeeping. Fairness between handles is the store's
//! (the limits and the waiting order above, across queues), not the device's.
//!
//! One file per job: this module is the store; [`volume`] one device's view of a slice;
//! [`task`] the executor task and the final flush; [`status`] its counters in the driver
//! domain's `data/status/`.

pub mod status;
pub mod task;
pub mod volume;

pub use status::DeviceStatus;
pub use task::DeviceTask;
pub use volume::{DeviceSlice, DeviceVolume};

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use minios::blockdev::{BlockDevice, BlockError, BlockInfo, BlockOp, BlockStatus, DmaSeg, SECTOR};

use super::{Completion, DataPort, DiscardInfo, Io, Started, StoreError, VolumeInfo};
use crate::queue::tag_owner;

/// Device requests one handle may hold while other handles have requests in flight.
pub const HANDLE_PARTS: usize = 16;
/// Data bytes one handle may have on the device while other handles have requests in flight.
pub const HANDLE_BYTES: usize = 1 << 20;
/// Device queues counted apart in [`DeviceStats::per_queue`] (later ones count in the last).
pub const QUEUE_COUNTS: usize = 8;

/// What one handle (a guest's volume) may hold of the device while other handles have
/// requests in flight. A single I/O larger than either is still taken when the handle holds
/// nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleLimits {
    /// Device requests.
    pub parts: usize,
    /// Data bytes (reads and writes; flushes and discards carry none).
    pub bytes: usize,
}

impl Default for HandleLimits {
    fn default() -> Self {
        Self {
            parts: HANDLE_PARTS,
            bytes: HANDLE_BYTES,
        }
    }
}

/// A device request in flight.
#[derive(Clone, Debug)]
struct Part {
    /// The guest I/O it belongs to.
    io: u64,
    /// Its byte position in the I/O's data.
    pos: usize,
    /// Its data bytes.
    bytes: usize,
    /// A direct request's guest memory, held (mapped) until the device answered.
    hold: Vec<DmaSeg>,
}

/// The device requests of one guest I/O (positions in bytes of the I/O's data), or why it
/// cannot go to this device. `io` is in bytes on the device, already checked for range.
pub fn split(io: Io, info: &BlockInfo) -> Result<Vec<(BlockOp, usize)>, StoreError> {
    let block = u64::from(info.block_size);
    let aligned = |offset: u64, len: u64| offset % block == 0 && len % block == 0;
    let max = info.max_transfer.max(4096);
    let rw = |offset: u64, len: u64, write: bool| {
        if !aligned(offset, len) {
            return Err(StoreError::OutOfRange);
        }
        let len = usize::try_from(len).map_err(|_| StoreError::OutOfRange)?;
        let mut parts = Vec::with_capacity(len.div_ceil(max));
        let mut pos = 0;
        while pos < len {
            let n = (len - pos).min(max);
            let sector = (offset + pos as u64) / SECTOR;
            let op = if write {
                BlockOp::Write { sector, len: n }
            } else {
                BlockOp::Read { sector, len: n }
            };
            parts.push((op, pos));
            pos += n;
        }
        Ok(parts)
    };
    match io {
        Io::Read { offset, len } => rw(offset, len, false),
        Io::Write { offset, len } => rw(offset, len, true),
        Io::Flush => Ok(alloc::vec![(BlockOp::Flush, 0)]),
        Io::Discard { secure: true, .. } => Err(StoreError::Unsupported),
        Io::Discard { offset, len, .. } => {
            let limits = info.discard.ok_or(StoreError::Unsupported)?;
            if !aligned(offset, len) {
                return Err(StoreError::OutOfRange);
            }
            let max = u64::from(limits.max_sectors);
            let (mut sector, end) = (offset / SECTOR, (offset + len) / SECTOR);
            let mut parts = Vec::new();
            while sector < end {
                let n = (end - sector).min(max);
                parts.push((
                    BlockOp::Discard {
                        sector,
                        sectors: n as u32,
                    },
                    0,
                ));
                sector += n;
            }
            Ok(parts)
        }
    }
}

/// One guest I/O in progress on the device.
struct DevIo {
    handle: u32,
    tag: u64,
    /// The device queue its parts go to.
    queue: usize,
    /// Reads: the data, filled as parts complete.
    data: Option<Vec<u8>>,
    /// Parts not completed (queued to the device or still to submit).
    parts_left: usize,
    /// Parts still to submit (only the backlog I/O has any).
    todo: VecDeque<(BlockOp, usize)>,
    /// The backlog write's data, copied from the guest at start.
    staged: Option<Vec<u8>>,
    error: Option<StoreError>,
}

#[derive(Default)]
struct HandleState {
    done: VecDeque<Completion>,
    /// I/Os started and not collected.
    in_flight: usize,
    /// Device requests held.
    parts: usize,
    /// Data bytes of the device requests held.
    bytes: usize,
    /// The handle exists (its volume was not dropped).
    open: bool,
    /// Its device is connected and collects completions.
    attached: bool,
    /// The device queue of each of its rings that sent a request: (ring, queue).
    rings: Vec<(u8, usize)>,
}

/// Counters of the device store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Requests sent to the device.
    pub requests: u64,
    /// Discard requests among them.
    pub discards: u64,
    /// Flush requests among them.
    pub flushes: u64,
    /// Requests the device failed (timeouts included).
    pub errors: u64,
    /// Requests the device did not answer in time (the driver gave up on them:
    /// [`BlockStatus::Timeout`]); also counted in `errors`.
    pub timeouts: u64,
    /// Times a handle found no room.
    pub busy: u64,
    /// Times a handle was held at its share while others had requests in flight.
    pub capped: u64,
    /// Most device requests in flight at once.
    pub max_in_flight: usize,
    /// Reads and writes the device did straight from or into the guest's pages.
    pub direct: u64,
    /// Their data bytes.
    pub direct_bytes: u64,
    /// Reads and writes whose data went through the driver's buffers (copied).
    pub copied: u64,
    /// The device's queues.
    pub queues: usize,
    /// Requests sent to each device queue.
    pub per_queue: [u64; QUEUE_COUNTS],
}

/// The owned device and its shared state.
pub struct DeviceStore {
    dev: Box<dyn BlockDevice>,
    info: BlockInfo,
    /// Device requests in flight by id.
    parts: BTreeMap<u64, Part>,
    ios: BTreeMap<u64, DevIo>,
    next_id: u64,
    handles: BTreeMap<u32, HandleState>,
    waiters: VecDeque<u32>,
    limits: HandleLimits,
    /// The one I/O too large to queue at once, submitted part by part as room frees up
    /// (before any other I/O starts).
    backlog: Option<u64>,
    next_handle: u32,
    failed: Option<String>,
    /// Guest memory of direct requests the device never answered (timed out, or the device
    /// failed): kept mapped for good, since the device may still transfer.
    stuck: Vec<Vec<DmaSeg>>,
    /// I/Os finished since [`take_progress`](Self::take_progress) last looked.
    progress: bool,
    /// The device queue selected for the requests submitted next.
    queue: usize,
    /// The device queue the next new ring gets (round-robin).
    next_queue: usize,
    /// Counters.
    pub stats: DeviceStats,
}

/// Shared handle on the store.
pub type Shared = Rc<RefCell<DeviceStore>>;

impl DeviceStore {
    /// A store over an opened device.
    pub fn new(dev: Box<dyn BlockDevice>) -> Shared {
        let info = dev.info();
        let stats = DeviceStats {
            queues: dev.queues().max(1),
            ..DeviceStats::default()
        };
        Rc::new(RefCell::new(Self {
            dev,
            info,
            parts: BTreeMap::new(),
            ios: BTreeMap::new(),
            next_id: 1,
            handles: BTreeMap::new(),
            waiters: VecDeque::new(),
            limits: HandleLimits::default(),
            backlog: None,
            next_handle: 1,
            failed: None,
            stuck: Vec::new(),
            progress: false,
            queue: 0,
            next_queue: 0,
            stats,
        }))
    }

    /// Sets what one handle may hold of the device while others have requests in flight.
    pub fn set_limits(&mut self, limits: HandleLimits) {
        self.limits = limits;
    }

    /// The device's geometry and features.
    pub fn info(&self) -> BlockInfo {
        self.info
    }

    /// What the device is (for logs).
    pub fn describe(&self) -> String {
        self.dev.describe()
    }

    /// Size of the device in bytes.
    pub fn bytes(&self) -> u64 {
        self.info.sectors.saturating_mul(SECTOR)
    }

    /// A volume source for the slice `offset..offset + size` (checked by the caller with
    /// [`crate::config::Config::fit_device`]).
    pub fn slice(
        store: &Shared,
        name: &str,
        offset: u64,
        size: u64,
        sector_size: u32,
        read_only: bool,
    ) -> DeviceSlice {
        let info = store.borrow().info;
        let read_only = read_only || info.read_only;
        let discard = info.discard.filter(|_| !read_only).map(|d| DiscardInfo {
            granularity: (d.alignment_sectors.saturating_mul(512)).max(sector_size),
            alignment: 0,
            secure: false,
        });
        DeviceSlice {
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

    fn detach_handle(&mut self, h: u32) {
        self.waiters.retain(|&w| w != h);
        if let Some(st) = self.handles.get_mut(&h) {
            st.attached = false;
            st.done.clear();
        }
    }

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

    fn busy(&mut self, h: u32) -> Started {
        self.stats.busy += 1;
        if !self.waiters.contains(&h) {
            self.waiters.push_back(h);
        }
        Started::Busy
    }

    /// `h` holds its share while others have requests in flight: it tries again when its
    /// own requests complete, and does not hold up the handles queued for room.
    fn capped(&mut self, h: u32) -> Started {
        self.stats.capped += 1;
        self.waiters.retain(|&w| w != h);
        Started::Busy
    }

    /// Starts `io` (offsets on the device) for handle `h`.
    fn start(&mut self, h: u32, tag: u64, io: Io, port: &mut dyn DataPort) -> Started {
        if let Some(st) = self.handles.get_mut(&h) {
            st.attached = true;
        }
        if let Some(why) = &self.failed {
            return Started::Done(Err(StoreError::Device(why.clone())));
        }
        if io == Io::Flush && !self.info.flush {
            // No volatile cache: every completed write is durable already.
            return Started::Done(Ok(()));
        }
        let ops = match split(io, &self.info) {
            Ok(ops) => ops,
            Err(e) => return Started::Done(Err(e)),
        };
        self.drain_backlog();
        if self.backlog.is_some() || self.failed.is_some() {
            return self.busy(h);
        }
        if let Some(&first) = self.waiters.front() {
            if first != h {
                return self.busy(h);
            }
        }
        let (held, held_bytes) = self.handles.get(&h).map_or((0, 0), |s| (s.parts, s.bytes));
        let others = self.parts.len() - held.min(self.parts.len());
        let list: Vec<BlockOp> = ops.iter().map(|&(op, _)| op).collect();
        let bytes: usize = list.iter().map(BlockOp::data_len).sum();
        if held > 0
            && others > 0
            && (held + ops.len() > self.limits.parts || held_bytes + bytes > self.limits.bytes)
        {
            return self.capped(h);
        }
        let queue = self.queue_of(h, tag);
        self.select_queue(queue);
        // Straight between the device and the guest's pages, if every part can and the
        // device has room for them now; else through the driver's buffers.
        let direct = self
            .direct_parts(io, &ops, port)
            .filter(|_| self.dev.has_room_direct(&list));
        // More than the device has room for now (or ever: a 1 MiB guest request may need
        // more descriptors than a queue has): it becomes the backlog, submitted part by part
        // (its data staged) as room frees up, ahead of everything else.
        let whole = direct.is_some() || self.dev.has_room(&list);
        if self.waiters.front() == Some(&h) {
            self.waiters.pop_front();
        }
        let data = match io {
            Io::Read { len, .. } | Io::Write { len, .. }
                if direct.is_none() && (!whole || matches!(io, Io::Read { .. })) =>
            {
                let mut buf = Vec::new();
                let len = len as usize;
                if buf.try_reserve_exact(len).is_err() {
                    return Started::Done(Err(StoreError::NoMemory));
                }
                buf.resize(len, 0);
                Some(buf)
            }
            _ => None,
        };
        let io_id = self.next_id;
        self.next_id += 1;
        if !whole {
            let (data, staged) = match io {
                Io::Write { .. } => {
                    let mut buf = data.unwrap_or_default();
                    if let Err(e) = port.gather(0, &mut [&mut buf[..]]) {
                        return Started::Done(Err(e));
                    }
                    (None, Some(buf))
                }
                _ => (data, None),
            };
            self.ios.insert(
                io_id,
                DevIo {
                    handle: h,
                    tag,
                    queue,
                    data,
                    parts_left: ops.len(),
                    todo: ops.into_iter().collect(),
                    staged,
                    error: None,
                },
            );
            self.handles.entry(h).or_default().in_flight += 1;
            self.backlog = Some(io_id);
            self.drain_backlog();
            return Started::Pending;
        }
        let mut submitted = 0;
        let mut submitted_bytes = 0;
        let mut error = None;
        let mut direct = direct.map(Vec::into_iter);
        for &(op, pos) in &ops {
            let id = self.next_id;
            self.next_id += 1;
            let mut gathered = Ok(());
            let (r, hold) = match direct.as_mut().and_then(Iterator::next) {
                Some(segs) => (self.dev.submit_direct(id, op, &segs), segs),
                None => {
                    let mut fill = |bufs: &mut [&mut [u8]]| {
                        gathered = port.gather(pos, bufs);
                        gathered.is_ok()
                    };
                    (self.dev.submit(id, op, &mut fill), Vec::new())
                }
            };
            match self.submitted(id, io_id, (op, pos), r, gathered, hold) {
                Ok(()) => {
                    submitted += 1;
                    submitted_bytes += op.data_len();
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        self.kick();
        if submitted == 0 || self.failed.is_some() {
            // Nothing queued (or fail_all dropped the parts before this I/O was recorded).
            return Started::Done(Err(error.unwrap_or(StoreError::Device("no request".into()))));
        }
        self.ios.insert(
            io_id,
            DevIo {
                handle: h,
                tag,
                queue,
                data,
                parts_left: submitted,
                todo: VecDeque::new(),
                staged: None,
                error,
            },
        );
        let st = self.handles.entry(h).or_default();
        st.in_flight += 1;
        st.parts += submitted;
        st.bytes += submitted_bytes;
        Started::Pending
    }

    /// The guest memory of each part of a read or write, if every part can go straight
    /// between the device and the guest's pages (mapped grants in whole device blocks, in a
    /// shape the device takes).
    fn direct_parts(
        &self,
        io: Io,
        ops: &[(BlockOp, usize)],
        port: &mut dyn DataPort,
    ) -> Option<Vec<Vec<DmaSeg>>> {
        if !matches!(io, Io::Read { .. } | Io::Write { .. }) {
            return None;
        }
        let block = self.info.block_size as usize;
        let mut all = Vec::with_capacity(ops.len());
        for (op, pos) in ops {
            let segs = port.direct(*pos, op.data_len(), block)?;
            if !self.dev.direct_ok(op, &segs) {
                return None;
            }
            all.push(segs);
        }
        Some(all)
    }

    /// Books a part `submit` answered for: recorded and counted, or the error for its I/O
    /// (a broken device fails everything). `hold`: a direct part's guest memory.
    fn submitted(
        &mut self,
        id: u64,
        io_id: u64,
        (op, pos): (BlockOp, usize),
        r: Result<(), BlockError>,
        gathered: Result<(), StoreError>,
        hold: Vec<DmaSeg>,
    ) -> Result<(), StoreError> {
        match r {
            Ok(()) => {
                let bytes = op.data_len();
                match op {
                    BlockOp::Discard { .. } => self.stats.discards += 1,
                    BlockOp::Flush => self.stats.flushes += 1,
                    _ if hold.is_empty() => self.stats.copied += 1,
                    _ => {
                        self.stats.direct += 1;
                        self.stats.direct_bytes += bytes as u64;
                    }
                }
                self.parts.insert(
                    id,
                    Part {
                        io: io_id,
                        pos,
                        bytes,
                        hold,
                    },
                );
                self.stats.requests += 1;
                self.stats.per_queue[self.queue.min(QUEUE_COUNTS - 1)] += 1;
                self.stats.max_in_flight = self.stats.max_in_flight.max(self.parts.len());
                Ok(())
            }
            Err(BlockError::Aborted) => Err(gathered
                .err()
                .unwrap_or(StoreError::Guest("aborted".into()))),
            Err(BlockError::Device(why)) => {
                self.fail_all(format!("{}: {why}", self.dev.describe()));
                Err(StoreError::Device(why))
            }
            // Room was checked: the device disagrees with itself.
            Err(e) => Err(StoreError::Device(format!("{e}"))),
        }
    }

    /// The device queue of the ring `tag` comes from (its index is in the tag) on handle
    /// `h`: the one it got at its first request, else the next round-robin.
    fn queue_of(&mut self, h: u32, tag: u64) -> usize {
        let ring = tag_owner(tag).1;
        let st = self.handles.entry(h).or_default();
        if let Some(&(_, q)) = st.rings.iter().find(|&&(r, _)| r == ring) {
            return q;
        }
        let q = self.next_queue % self.stats.queues.max(1);
        self.next_queue = self.next_queue.wrapping_add(1);
        st.rings.push((ring, q));
        q
    }

    /// Sends the requests submitted next to device queue `q`.
    fn select_queue(&mut self, q: usize) {
        self.queue = q;
        self.dev.select_queue(q);
    }

    fn kick(&mut self) {
        if self.failed.is_none() {
            if let Err(e) = self.dev.kick() {
                self.fail_all(format!("{}: {e}", self.dev.describe()));
            }
        }
    }

    /// Submits what fits of the backlog I/O.
    fn drain_backlog(&mut self) {
        let Some(io_id) = self.backlog else {
            return;
        };
        let mut queued = false;
        loop {
            let Some(io) = self.ios.get_mut(&io_id) else {
                self.backlog = None;
                break;
            };
            let Some(&(op, pos)) = io.todo.front() else {
                self.backlog = None;
                break;
            };
            let queue = io.queue;
            self.queue = queue;
            self.dev.select_queue(queue);
            if !self.dev.has_room(&[op]) {
                break;
            }
            io.todo.pop_front();
            let handle = io.handle;
            let staged = io.staged.take();
            let id = self.next_id;
            self.next_id += 1;
            let mut fill = |bufs: &mut [&mut [u8]]| {
                let Some(src) = staged.as_deref() else {
                    return false;
                };
                let mut at = pos;
                for b in bufs.iter_mut() {
                    let n = b.len();
                    match src.get(at..at + n) {
                        Some(from) => b.copy_from_slice(from),
                        None => return false,
                    }
                    at += n;
                }
                true
            };
            let r = self.dev.submit(id, op, &mut fill);
            let r = self.submitted(id, io_id, (op, pos), r, Ok(()), Vec::new());
            let Some(io) = self.ios.get_mut(&io_id) else {
                // fail_all finished it.
                self.backlog = None;
                break;
            };
            io.staged = staged;
            match r {
                Ok(()) => {
                    queued = true;
                    if let Some(st) = self.handles.get_mut(&handle) {
                        st.parts += 1;
                        st.bytes += op.data_len();
                    }
                }
                Err(e) => {
                    // Abandon the rest; the I/O ends when its queued parts have.
                    io.error.get_or_insert(e);
                    io.parts_left -= 1 + io.todo.len();
                    io.todo.clear();
                    if io.parts_left == 0 {
                        if let Some(io) = self.ios.remove(&io_id) {
                            self.finish(io);
                        }
                    }
                    self.backlog = None;
                    break;
                }
            }
        }
        if queued {
            self.kick();
        }
    }

    /// Takes the device's completions and finishes I/Os. Returns how many I/Os finished.
    pub fn pump(&mut self) -> usize {
        if self.failed.is_some() {
            return 0;
        }
        let _ = self.dev.take_interrupt();
        let mut done: Vec<(u64, BlockStatus, Option<Vec<u8>>)> = Vec::new();
        let parts = &self.parts;
        let ios = &mut self.ios;
        let result = self.dev.complete(&mut |id, status, data| {
            // Reads: copy the data into the I/O's buffer now (the device reuses its pages).
            if let Some(&Part { io: io_id, pos, .. }) = parts.get(&id) {
                if let Some(buf) = ios.get_mut(&io_id).and_then(|io| io.data.as_mut()) {
                    let mut at = pos;
                    for d in data {
                        let end = (at + d.len()).min(buf.len());
                        if at < end {
                            buf[at..end].copy_from_slice(&d[..end - at]);
                        }
                        at = end;
                    }
                }
            }
            done.push((id, status, None));
        });
        let mut finished = 0;
        for (id, status, _) in done {
            let Some(Part {
                io: io_id,
                bytes,
                hold,
                ..
            }) = self.parts.remove(&id)
            else {
                continue;
            };
            if status == BlockStatus::Timeout && !hold.is_empty() {
                // The device may still transfer to or from these pages: keep them mapped.
                self.stuck.push(hold);
            }
            let Some(io) = self.ios.get_mut(&io_id) else {
                continue;
            };
            io.parts_left -= 1;
            if let Some(st) = self.handles.get_mut(&io.handle) {
                st.parts = st.parts.saturating_sub(1);
                st.bytes = st.bytes.saturating_sub(bytes);
            }
            if status != BlockStatus::Ok {
                self.stats.errors += 1;
                if status == BlockStatus::Timeout {
                    self.stats.timeouts += 1;
                }
                let why = format!("{} answered {status}", self.dev.describe());
                if self.stats.errors == 1 {
                    log::warn!("{why} (the first device error; later ones are counted)");
                }
                io.error.get_or_insert(StoreError::Device(why));
            }
            if io.parts_left == 0 {
                if let Some(io) = self.ios.remove(&io_id) {
                    self.finish(io);
                    finished += 1;
                }
            }
        }
        if let Err(e) = result {
            self.fail_all(format!("{}: {e}", self.dev.describe()));
        }
        self.drain_backlog();
        finished
    }

    fn finish(&mut self, io: DevIo) {
        let result = io.error.map_or(Ok(()), Err);
        let data = if result.is_ok() { io.data } else { None };
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

    /// The device failed: fail everything in flight, refuse new I/O.
    fn fail_all(&mut self, why: String) {
        if self.failed.is_none() {
            log::error!("{why}: failing all I/O to the device");
        }
        self.failed = Some(why.clone());
        // The device may still transfer to or from direct requests' pages: keep them mapped.
        let parts = core::mem::take(&mut self.parts);
        self.stuck.extend(
            parts
                .into_values()
                .map(|p| p.hold)
                .filter(|h| !h.is_empty()),
        );
        for st in self.handles.values_mut() {
            st.parts = 0;
            st.bytes = 0;
        }
        let ios: Vec<DevIo> = core::mem::take(&mut self.ios).into_values().collect();
        for mut io in ios {
            io.error = Some(StoreError::Device(why.clone()));
            self.finish(io);
        }
        self.waiters.clear();
        self.backlog = None;
    }

    /// Why the device is no longer used, if it failed.
    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Device requests in flight.
    pub fn in_flight(&self) -> usize {
        self.parts.len()
    }

    /// Handles waiting for room.
    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// Whether I/Os finished (room was freed) since the last call.
    pub fn take_progress(&mut self) -> bool {
        core::mem::take(&mut self.progress)
    }

    /// When the device wants its completions taken even without an interrupt (its next
    /// request timeout), if it does and has not failed.
    pub fn device_deadline(&self) -> Option<u64> {
        if self.failed.is_some() {
            return None;
        }
        self.dev.next_deadline()
    }

    /// Whether a connected device has completions to collect.
    pub fn has_queued(&self) -> bool {
        self.handles.values().any(|st| !st.done.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minios::blockdev::DiscardLimits;

    fn info(max: usize, discard: Option<DiscardLimits>) -> BlockInfo {
        BlockInfo {
            sectors: 1 << 20,
            block_size: 512,
            read_only: false,
            flush: true,
            discard,
            max_transfer: max,
        }
    }

    #[test]
    fn large_requests_split_at_the_transfer_limit() {
        let i = info(128 << 10, None);
        let parts = split(
            Io::Write {
                offset: 1 << 20,
                len: 300 << 10,
            },
            &i,
        )
        .unwrap();
        assert_eq!(
            parts,
            alloc::vec![
                (
                    BlockOp::Write {
                        sector: 2048,
                        len: 128 << 10
                    },
                    0
                ),
                (
                    BlockOp::Write {
                        sector: 2048 + 256,
                        len: 128 << 10
                    },
                    128 << 10
                ),
                (
                    BlockOp::Write {
                        sector: 2048 + 512,
                        len: 44 << 10
                    },
                    256 << 10
                ),
            ]
        );
        let one = split(
            Io::Read {
                offset: 512,
                len: 4096,
            },
            &i,
        )
        .unwrap();
        assert_eq!(
            one,
            alloc::vec![(
                BlockOp::Read {
                    sector: 1,
                    len: 4096
                },
                0
            )]
        );
    }

    #[test]
    fn discards_split_at_the_device_limit_and_need_support() {
        let limits = DiscardLimits {
            max_sectors: 1000,
            alignment_sectors: 8,
        };
        let d = Io::Discard {
            offset: 4096,
            len: 1 << 20,
            secure: false,
        };
        assert_eq!(split(d, &info(4096, None)), Err(StoreError::Unsupported));
        let parts = split(d, &info(4096, Some(limits))).unwrap();
        let sectors: Vec<(u64, u32)> = parts
            .iter()
            .map(|(op, _)| match *op {
                BlockOp::Discard { sector, sectors } => (sector, sectors),
                _ => panic!("{op:?}"),
            })
            .collect();
        assert_eq!(sectors, alloc::vec![(8, 1000), (1008, 1000), (2008, 48)]);
        let secure = Io::Discard {
            offset: 0,
            len: 4096,
            secure: true,
        };
        assert_eq!(
            split(secure, &info(4096, Some(limits))),
            Err(StoreError::Unsupported)
        );
    }

    #[test]
    fn misaligned_requests_are_refused_for_4k_devices() {
        let mut i = info(64 << 10, None);
        i.block_size = 4096;
        let r = Io::Read {
            offset: 512,
            len: 4096,
        };
        assert_eq!(split(r, &i), Err(StoreError::OutOfRange));
        assert_eq!(split(Io::Flush, &i).unwrap().len(), 1);
    }
}
