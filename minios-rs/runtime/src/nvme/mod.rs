//! An NVMe controller on a passed-through function, as a [`BlockDevice`] (our own driver on
//! the runtime's PCI layer: see blkback/README.md for why not the `nvme-driver` crate).
//!
//! Bring-up ([`Nvme::open`]): BAR 0's registers and the first doorbells mapped uncached,
//! the controller disabled, the admin queue programmed (AQA/ASQ/ACQ), enabled with 4 KiB
//! pages and 64/16-byte entries, then — admin commands polled, with a deadline — Identify
//! Controller (MDTS, ONCS, VWC), Identify Namespace 1 (size, LBA format: 512 or 4096 bytes,
//! no metadata), Number of Queues, and as many I/O queue pairs as the controller grants, at
//! most [`io::MAX_IO_QUEUES`] (each a completion queue and its own submission queue of one
//! page each, 64 entries). Each completion queue interrupts on its own MSI-X vector when the
//! function has one per pair, else all on the first MSI-X (or the MSI, or the INTx) vector;
//! every completion queue is looked at on every pass, so either way nothing is missed. Pair
//! 1 must come up; a later pair that fails (memory, doorbells, the controller refusing it)
//! leaves the pairs before it, with one log line.
//!
//! Queues: the caller picks the submission queue of the requests it submits next
//! ([`BlockDevice::select_queue`]: blkback gives each guest device's ring its own queue);
//! each pair has its own command ids and slots (so one busy queue does not take another's
//! room), the data pages are shared.
//!
//! I/O: each request takes a command id (its slot on its queue), data pages from a pool of
//! single DMA pages and, for more than two pages, a PRP list in its slot (so no buffer needs
//! machine contiguity); READ/WRITE, FLUSH, and Dataset Management (deallocate) for discard when
//! ONCS offers it. Data is copied between the guest and the pool, as for virtio-blk, unless
//! the caller hands the request's memory itself ([`BlockDevice::submit_direct`]: a guest's
//! mapped grants, at their machine addresses, which Xen maps in our IOMMU context while they
//! are mapped): then the PRPs point at that memory when its pieces have the shape PRPs
//! allow ([`cmd::prp_segments`]) and no pool page is used.
//!
//! Hostile or dead hardware: every completion is checked (the submission queue its
//! completion queue serves, a command id in flight on it: [`io::answer`]); a command
//! unanswered after [`IO_TIMEOUT_NS`] fails its request ([`BlockStatus::Timeout`], logged:
//! each of the first timeouts, then every power of two, with the count so far) and its slot
//! and pages stay reserved until the controller answers it (it may still DMA into them); a
//! controller whose status reads all ones (gone) or fatal, that leaves every slot of a queue
//! unanswered, or whose unanswered commands hold so many of the shared data pages that a
//! copied request of the largest size could never be queued again, is failed as a whole.

pub mod cmd;
pub mod io;
pub mod queue;
pub mod slots;

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use minios::blockdev::{
    BlockDevice, BlockError, BlockInfo, BlockOp, BlockStatus, DiscardLimits, DmaSeg, OnComplete,
    SECTOR,
};
use minios::error_log::{thinning_note, worth_logging};
use minios::pci::config::{read_bars, Bar};
use minios::pci::PciAddress;

use self::cmd::{Command, ControllerId, NamespaceId, PAGE};
use self::queue::QueuePair;
use self::slots::{Answer, Slots};
use crate::dma::{machine_addr, DmaPages};
use crate::mmio::Mmio;
use crate::pci::{enable_device, enable_interrupts, DeviceIrqs, PciBus};

/// A command unanswered this long fails its request (Linux's default I/O timeout).
pub const IO_TIMEOUT_NS: u64 = 30_000_000_000;
/// Admin commands at bring-up.
const ADMIN_TIMEOUT_NS: u64 = 10_000_000_000;
/// Queue entries we ask for (one page of submission entries).
const DEPTH: u16 = 64;
/// Pages of data buffers (1 MiB).
const DATA_PAGES: usize = 256;
/// Data pages one request may carry (128 KiB; the PRP list of 31 entries fits a slot).
const MAX_PAGES: usize = 32;
/// Bytes per slot in the slot pages: the PRP list (256), the DSM range (16).
const SLOT_BYTES: usize = 512;
const DSM_AT: usize = 256;
const _: () = assert!(PAGE % SLOT_BYTES == 0 && (MAX_PAGES - 1) * 8 <= DSM_AT);
/// The namespace we serve.
const NSID: u32 = 1;
/// Most sectors one discard covers (a multiple of every block size).
const DISCARD_MAX_SECTORS: u32 = 1 << 22;

/// Register offsets.
const CAP: usize = 0x00;
const VS: usize = 0x08;
const CC: usize = 0x14;
const CSTS: usize = 0x1c;
const AQA: usize = 0x24;
const ASQ: usize = 0x28;
const ACQ: usize = 0x30;
/// CC: enable, 64-byte submission and 16-byte completion entries, 4 KiB pages, NVM set.
const CC_EN: u32 = 1;
const CC_ENTRIES: u32 = (6 << 16) | (4 << 20);
/// CSTS bits.
const CSTS_RDY: u32 = 1;
const CSTS_CFS: u32 = 1 << 1;
/// NVMe's PCI class code (mass storage, non-volatile memory, NVM Express).
const CLASS_NVME: u32 = 0x01_08_02;

/// What a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    Flush,
    Discard,
}

/// One command with the controller.
#[derive(Clone, Debug)]
struct Pending {
    id: u64,
    kind: Kind,
    pages: Vec<u16>,
    len: usize,
}

/// One I/O queue pair and its commands.
struct IoQueue {
    pair: QueuePair,
    /// PRP lists and DSM ranges, one slot per command id.
    slots_mem: DmaPages,
    /// Commands in flight by command id (= slot in `slots_mem`).
    slots: Slots<Pending>,
    /// Commands pushed since the last doorbell.
    rang: bool,
}

/// An NVMe controller owned by this domain (namespace 1, up to [`io::MAX_IO_QUEUES`] I/O
/// queue pairs).
pub struct Nvme {
    addr: PciAddress,
    host: PciAddress,
    bus: Rc<PciBus>,
    regs: Mmio,
    irqs: DeviceIrqs,
    /// Idle after bring-up, but the controller keeps its addresses: never freed.
    _admin: QueuePair,
    /// Pairs whose creation failed after the controller was told their addresses: never
    /// freed either.
    _abandoned: Vec<QueuePair>,
    io: Vec<IoQueue>,
    /// The queue [`BlockDevice::select_queue`] chose (index in `io`).
    current: usize,
    data: DmaPages,
    free_pages: Vec<u16>,
    lba_shift: u32,
    info: BlockInfo,
    failed: Option<String>,
    errors: u64,
    timeouts: u64,
    /// Answers that came after their command's timeout.
    late: u64,
}

fn dev_err(what: impl core::fmt::Display) -> BlockError {
    BlockError::Device(format!("{what}"))
}

fn now() -> u64 {
    crate::time::now_ns()
}

fn op_is_read(op: &BlockOp) -> bool {
    matches!(op, BlockOp::Read { .. })
}

/// Why the shared data pages can no longer serve a copied request of `max_pages` pages, if
/// the commands given up on (on any of `queues`) hold so many of the `pool` pages that fewer
/// are left: only the controller's late answers would free them, so such a request would
/// wait for them forever (and the store, keeping it as its backlog, every other request
/// behind it), while each queue may still have free slots. Only the pool pages those
/// commands hold count: a direct command holds none, a command in time or answered is not
/// stuck.
fn pool_wedged<'a>(
    queues: impl IntoIterator<Item = &'a Slots<Pending>>,
    pool: usize,
    max_pages: usize,
) -> Option<String> {
    let (mut commands, mut pages) = (0usize, 0usize);
    for p in queues.into_iter().flat_map(Slots::unanswered) {
        commands += 1;
        pages += p.pages.len();
    }
    (pages > 0 && pool.saturating_sub(pages) < max_pages).then(|| {
        format!(
            "{commands} commands unanswered after {} s hold {pages} of {pool} data pages: a copied request of {max_pages} pages ({} KiB) can no longer be queued",
            IO_TIMEOUT_NS / 1_000_000_000,
            max_pages * PAGE / 1024
        )
    })
}

/// Waits until `CSTS & mask == want` (or fatal status, or the deadline).
fn wait_ready(regs: &Mmio, want: u32, timeout_ns: u64) -> Result<(), BlockError> {
    let deadline = now().saturating_add(timeout_ns);
    loop {
        let csts = regs.read32(CSTS);
        if csts == u32::MAX {
            return Err(dev_err("controller status reads all ones (gone)"));
        }
        if csts & CSTS_CFS != 0 && want == CSTS_RDY {
            return Err(dev_err("controller fatal status while enabling"));
        }
        if csts & CSTS_RDY == want {
            return Ok(());
        }
        if now() > deadline {
            return Err(dev_err(format_args!(
                "CSTS.RDY did not become {want} within {} ms",
                timeout_ns / 1_000_000
            )));
        }
        core::hint::spin_loop();
    }
}

/// Runs one admin command to completion (polled).
fn admin(regs: &Mmio, q: &mut QueuePair, cid: &mut u16, cmd: &Command) -> Result<u32, BlockError> {
    *cid = cid.wrapping_add(1);
    q.push(cmd, *cid);
    q.ring(regs);
    let deadline = now().saturating_add(ADMIN_TIMEOUT_NS);
    loop {
        if let Some(c) = q.pop() {
            q.release(regs);
            if c.cid != *cid || c.sq_id != 0 {
                return Err(dev_err(format_args!(
                    "admin completion for command {} of queue {} (expected {} of 0)",
                    c.cid, c.sq_id, cid
                )));
            }
            if !c.ok() {
                return Err(dev_err(format_args!(
                    "admin command {:#x} failed with status {:#x}",
                    cmd.opcode, c.status
                )));
            }
            return Ok(c.result);
        }
        if now() > deadline {
            return Err(dev_err(format_args!(
                "admin command {:#x} unanswered after {} s",
                cmd.opcode,
                ADMIN_TIMEOUT_NS / 1_000_000_000
            )));
        }
        core::hint::spin_loop();
    }
}

impl Nvme {
    /// Whether this driver drives a function of class `class` (NVM Express).
    pub fn drives(class: u32) -> bool {
        class & 0xff_ff_ff == CLASS_NVME
    }

    /// Brings up the controller at `addr` and its namespace 1.
    pub fn open(bus: &Rc<PciBus>, addr: PciAddress) -> Result<Self, BlockError> {
        let pci = |e: minios::pci::PciError| dev_err(e);
        let host = bus
            .functions()
            .iter()
            .find(|f| f.addr == addr)
            .map(|f| f.host)
            .ok_or_else(|| dev_err(format_args!("no function {addr}")))?;
        enable_device(bus, addr).map_err(pci)?;
        let bars = read_bars(&bus.config(addr).map_err(pci)?).map_err(pci)?;
        let Some(&(_, Bar::Memory { base, size, .. })) = bars.iter().find(|(i, _)| *i == 0) else {
            return Err(dev_err("BAR 0 is not a memory BAR"));
        };
        // Registers and the first doorbells; the MSI-X table (which Xen keeps read-only)
        // lies beyond them.
        let window = (size as usize).min(0x2000);
        if window < 0x1010 {
            return Err(dev_err(format_args!("BAR 0 of {size:#x} bytes")));
        }
        let regs =
            Mmio::map(base, window).map_err(|e| dev_err(format_args!("mapping BAR 0: {e:?}")))?;
        let cap = u64::from(regs.read32(CAP)) | (u64::from(regs.read32(CAP + 4)) << 32);
        if cap == u64::MAX {
            return Err(dev_err("CAP reads all ones"));
        }
        let mqes = (cap & 0xffff) as u16;
        let timeout_ns = ((cap >> 24) & 0xff).max(1) * 500_000_000;
        let stride = 4usize << ((cap >> 32) & 0xf);
        let css_nvm = cap & (1 << 37) != 0;
        let mps_min = (cap >> 48) & 0xf;
        if !css_nvm || mps_min != 0 {
            return Err(dev_err(format_args!(
                "CAP {cap:#x}: needs the NVM command set and 4 KiB pages"
            )));
        }
        let depth = DEPTH.min(mqes.saturating_add(1)).max(2);
        let vs = regs.read32(VS);

        // Reset: disable, program the admin queue, enable.
        if regs.read32(CC) & CC_EN != 0 {
            regs.write32(CC, regs.read32(CC) & !CC_EN);
        }
        wait_ready(&regs, 0, timeout_ns)?;
        let mut aq = QueuePair::new(0, depth, stride).map_err(dev_err)?;
        let d = u32::from(aq.depth() - 1);
        regs.write32(AQA, d | (d << 16));
        regs.write32(ASQ, aq.sq_maddr() as u32);
        regs.write32(ASQ + 4, (aq.sq_maddr() >> 32) as u32);
        regs.write32(ACQ, aq.cq_maddr() as u32);
        regs.write32(ACQ + 4, (aq.cq_maddr() >> 32) as u32);
        regs.write32(CC, CC_ENTRIES | CC_EN);
        wait_ready(&regs, CSTS_RDY, timeout_ns)?;

        // Identify into a scratch page.
        let scratch = DmaPages::alloc(1).map_err(|e| dev_err(format_args!("{e:?}")))?;
        let scratch_ma = machine_addr(scratch.va()).ok_or_else(|| dev_err("no machine address"))?;
        let read_scratch = || {
            let mut buf = vec![0u8; PAGE];
            for (i, b) in buf.iter_mut().enumerate() {
                // SAFETY: byte `i` (< 4096) of our scratch page; the controller finished
                // writing it (its command completed).
                *b = unsafe { core::ptr::read_volatile((scratch.va() as usize + i) as *const u8) };
            }
            buf
        };
        let mut cid = 0u16;
        admin(
            &regs,
            &mut aq,
            &mut cid,
            &Command::identify(1, 0, scratch_ma),
        )?;
        let ctrl = ControllerId::parse(&read_scratch())
            .ok_or_else(|| dev_err("short Identify Controller"))?;
        if !ctrl.entry_sizes_ok() {
            return Err(dev_err(format_args!(
                "entry sizes SQES {:#x} CQES {:#x} exclude 64/16 bytes",
                ctrl.sqes, ctrl.cqes
            )));
        }
        if ctrl.nn < NSID {
            return Err(dev_err("the controller has no namespace"));
        }
        admin(
            &regs,
            &mut aq,
            &mut cid,
            &Command::identify(0, NSID, scratch_ma),
        )?;
        let ns = NamespaceId::parse(&read_scratch())
            .ok_or_else(|| dev_err("namespace 1 is inactive or its format invalid"))?;
        if ns.lba_shift != 9 && ns.lba_shift != 12 {
            return Err(dev_err(format_args!(
                "logical block size {} (512 and 4096 are supported)",
                1u64 << ns.lba_shift.min(63)
            )));
        }
        if ns.metadata != 0 {
            return Err(dev_err("LBA format with metadata"));
        }
        let granted = io::granted(
            admin(
                &regs,
                &mut aq,
                &mut cid,
                &Command::set_queue_count(io::MAX_IO_QUEUES),
            )?,
            io::MAX_IO_QUEUES,
        );

        // Interrupts before the I/O completion queues that raise them: a vector per pair if
        // the function has them (MSI-X), else one for all.
        let irqs = match enable_interrupts(bus, addr, granted) {
            Ok(irqs) => irqs,
            Err(e) if granted > 1 => {
                log::warn!("nvme {host}: {granted} interrupt vectors: {e}; trying one");
                enable_interrupts(bus, addr, 1).map_err(pci)?
            }
            Err(e) => return Err(pci(e)),
        };
        let vectors = irqs.pirqs.len();
        let slot_pages = (usize::from(depth - 1) * SLOT_BYTES).div_ceil(PAGE);
        let mut abandoned = Vec::new();
        let create = |qid: u16| -> Result<IoQueue, BlockError> {
            let pair = QueuePair::new(qid, depth, stride).map_err(dev_err)?;
            if pair.bells_end() > window {
                return Err(dev_err(format_args!(
                    "doorbell stride {stride} puts queue {qid}'s doorbells outside BAR 0"
                )));
            }
            let slots_mem = DmaPages::alloc(slot_pages as u64)
                .map_err(|e| dev_err(format_args!("slot memory: {e:?}")))?;
            // MSI-X/MSI vector, or the INTx line (which ignores the vector).
            let vector = io::cq_vector(qid, granted, vectors);
            let cq = Command::create_cq(qid, pair.depth(), pair.cq_maddr(), Some(vector));
            let sq = Command::create_sq(qid, pair.depth(), pair.sq_maddr(), qid);
            if let Err(e) = admin(&regs, &mut aq, &mut cid, &cq)
                .and_then(|_| admin(&regs, &mut aq, &mut cid, &sq))
            {
                // The controller may have taken (or may still take) the addresses.
                abandoned.push(pair);
                return Err(e);
            }
            Ok(IoQueue {
                slots: Slots::new(pair.depth() - 1, IO_TIMEOUT_NS),
                pair,
                slots_mem,
                rang: false,
            })
        };
        let queues = io::create_all(granted, create, |qid, e| {
            log::warn!(
                "nvme {host}: I/O queue pair {qid} of {granted} not created ({e}): using {}",
                qid - 1
            );
        })?;

        let mdts_bytes = match ctrl.mdts {
            0 => usize::MAX,
            m if m >= 20 => usize::MAX,
            m => PAGE << m,
        };
        let max_transfer = (MAX_PAGES * PAGE).min(mdts_bytes);
        if max_transfer < PAGE {
            return Err(dev_err("MDTS below one page"));
        }
        let block = 1u32 << ns.lba_shift;
        let info = BlockInfo {
            sectors: ns.blocks << (ns.lba_shift - 9),
            block_size: block,
            read_only: false,
            flush: ctrl.vwc,
            discard: ctrl.dsm().then_some(DiscardLimits {
                max_sectors: DISCARD_MAX_SECTORS,
                alignment_sectors: block / SECTOR as u32,
            }),
            max_transfer,
        };
        let data = DmaPages::alloc(DATA_PAGES as u64)
            .map_err(|e| dev_err(format_args!("buffer memory: {e:?}")))?;
        let dev = Self {
            addr,
            host,
            bus: bus.clone(),
            regs,
            irqs,
            _admin: aq,
            _abandoned: abandoned,
            io: queues,
            current: 0,
            data,
            free_pages: (0..DATA_PAGES as u16).rev().collect(),
            lba_shift: ns.lba_shift,
            info,
            failed: None,
            errors: 0,
            timeouts: 0,
            late: 0,
        };
        log::info!(
            "nvme {} (as {}): NVMe {}.{}, {} sectors, {}-byte blocks, queue depth {}, MDTS {}, volatile cache {}, DSM {}, {} I/O queue pairs (granted {}), interrupts {:?} ({} vectors, first pirq {})",
            host,
            addr,
            vs >> 16,
            (vs >> 8) & 0xff,
            dev.info.sectors,
            block,
            depth,
            ctrl.mdts,
            ctrl.vwc,
            ctrl.dsm(),
            dev.io.len(),
            granted,
            dev.irqs.mode,
            vectors,
            dev.irqs.pirqs.first().map_or(0, |p| p.pirq()),
        );
        Ok(dev)
    }

    /// The function's address.
    pub fn address(&self) -> PciAddress {
        self.addr
    }

    /// The I/O queue pairs in use.
    pub fn io_queues(&self) -> usize {
        self.io.len()
    }

    /// Slot `slot` of queue `q`.
    fn slot_va(&self, q: usize, slot: u16) -> usize {
        self.io[q].slots_mem.va() as usize + usize::from(slot) * SLOT_BYTES
    }

    /// The data buffers of a request of `len` bytes in `pages`.
    fn buffers(&self, pages: &[u16], len: usize) -> Vec<&'static mut [u8]> {
        let mut left = len;
        pages
            .iter()
            .map(|&p| {
                let n = left.min(PAGE);
                left -= n;
                let at = self.data.va() as usize + usize::from(p) * PAGE;
                // SAFETY: page `p` (< DATA_PAGES) lies inside the data pages, owned by this
                // request alone until the controller answers it, even late (the slot table
                // and the page free list say which).
                unsafe { core::slice::from_raw_parts_mut(at as *mut u8, n) }
            })
            .collect()
    }

    fn check(&mut self) -> Result<(), BlockError> {
        if self.failed.is_none() && self.bus.is_removed(self.addr) {
            self.failed = Some(String::from("the toolstack removed the device"));
        }
        match &self.failed {
            Some(why) => Err(BlockError::Device(why.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, why: String) -> BlockError {
        if self.failed.is_none() {
            log::warn!("nvme {}: {why}; the device is no longer used", self.host);
            self.failed = Some(why.clone());
        }
        BlockError::Device(why)
    }

    /// The machine addresses and lengths of a direct request's pieces, if the device can
    /// take `op` straight from them (a read or write within the transfer limit, whole
    /// blocks, each piece with an address, in the shape PRPs allow).
    fn direct_pieces(&self, op: &BlockOp, segs: &[DmaSeg]) -> Option<Vec<(u64, usize)>> {
        let len = match *op {
            BlockOp::Read { len, .. } | BlockOp::Write { len, .. } => len,
            _ => return None,
        };
        let block = self.info.block_size as usize;
        if len == 0 || len > self.info.max_transfer || len % block != 0 {
            return None;
        }
        let mut pieces = Vec::with_capacity(segs.len());
        let mut total = 0usize;
        for s in segs {
            let end = s.offset.checked_add(s.len)?;
            if end > s.mem.size() || end > PAGE || (op_is_read(op) && !s.mem.writable()) {
                return None;
            }
            pieces.push((s.mem.dma_addr()?.checked_add(s.offset as u64)?, s.len));
            total = total.checked_add(s.len)?;
        }
        let mut list = Vec::new();
        (total == len && cmd::prp_segments(&pieces, MAX_PAGES, 0, &mut list).is_some())
            .then_some(pieces)
    }

    /// Gives back a command of queue `q` that was never sent.
    fn release(&mut self, q: usize, slot: u16) {
        if let Some(p) = self.io[q].slots.abandon(slot) {
            self.free_pages.extend(p.pages);
        }
    }

    /// Fails the requests whose time is up (logging them thinned); fails the controller if
    /// it is gone, every slot of a queue waits for an answer (that queue could take no
    /// command any more), or the commands given up on hold the data pages a largest copied
    /// request needs ([`pool_wedged`]).
    fn expire(&mut self, each: &mut OnComplete<'_>) -> Result<usize, BlockError> {
        let host = self.host;
        let timeouts = &mut self.timeouts;
        let at = now();
        let mut n = 0;
        for q in &mut self.io {
            let qid = q.pair.qid();
            n += q.slots.expire(at, |cid, p| {
                *timeouts += 1;
                let count = *timeouts;
                if worth_logging(count) {
                    log::warn!(
                        "nvme {host}: {:?} command {cid} of queue {qid} unanswered after {} s: its request fails ({count} timeouts so far{})",
                        p.kind,
                        IO_TIMEOUT_NS / 1_000_000_000,
                        thinning_note(count)
                    );
                }
                each(p.id, BlockStatus::Timeout, &[]);
            });
        }
        if n > 0 {
            let csts = self.regs.read32(CSTS);
            if csts == u32::MAX {
                return Err(self.fail(String::from("controller status reads all ones (gone)")));
            }
            if csts & CSTS_CFS != 0 {
                return Err(self.fail(String::from("controller fatal status (CSTS.CFS)")));
            }
            if let Some(q) = self.io.iter().find(|q| q.slots.all_unanswered()) {
                let why = format!(
                    "all {} commands of queue {} unanswered: the controller stopped answering",
                    q.slots.len(),
                    q.pair.qid()
                );
                return Err(self.fail(why));
            }
            // The largest request `submit` takes (the store splits at `max_transfer`), in
            // pages as `has_room` counts them.
            let max_pages = self.info.max_transfer.div_ceil(PAGE);
            if let Some(why) = pool_wedged(self.io.iter().map(|q| &q.slots), DATA_PAGES, max_pages)
            {
                return Err(self.fail(why));
            }
        }
        Ok(n)
    }
}

impl Nvme {
    /// Takes the completions of queue `q` (index in `io`), each checked against that
    /// queue's commands ([`io::answer`]).
    fn complete_queue(&mut self, q: usize, each: &mut OnComplete<'_>) -> Result<usize, BlockError> {
        let mut n = 0;
        let mut popped = false;
        while let Some(c) = self.io[q].pair.pop() {
            popped = true;
            let io = &mut self.io[q];
            let answer = match io::answer(io.pair.qid(), &c, &mut io.slots) {
                Ok(a) => a,
                Err(why) => {
                    io.pair.release(&self.regs);
                    return Err(self.fail(why));
                }
            };
            let p = match answer {
                Answer::Late(p) => {
                    self.late += 1;
                    if worth_logging(self.late) {
                        log::info!(
                            "nvme {}: command {} of queue {} answered after its timeout (status {:#x}; {} late answers so far)",
                            self.host,
                            c.cid,
                            c.sq_id,
                            c.status,
                            self.late
                        );
                    }
                    self.free_pages.extend(p.pages);
                    continue;
                }
                Answer::Live(p) => p,
            };
            let status = if c.ok() {
                BlockStatus::Ok
            } else if c.unsupported() {
                BlockStatus::Unsupported
            } else {
                BlockStatus::IoError
            };
            if !c.ok() {
                self.errors += 1;
                if self.errors == 1 {
                    log::warn!(
                        "nvme {}: {:?} failed with status {:#x} (the first error; later ones are counted)",
                        self.host,
                        p.kind,
                        c.status
                    );
                }
            }
            if p.kind == Kind::Read && status == BlockStatus::Ok {
                let data = self.buffers(&p.pages, p.len);
                let refs: Vec<&[u8]> = data.iter().map(|b| &**b).collect();
                each(p.id, status, &refs);
            } else {
                each(p.id, status, &[]);
            }
            n += 1;
            self.free_pages.extend(p.pages);
        }
        if popped {
            self.io[q].pair.release(&self.regs);
        }
        Ok(n)
    }
}

impl BlockDevice for Nvme {
    fn describe(&self) -> String {
        format!("nvme {}, {} MiB", self.host, self.info.sectors / 2048)
    }

    fn info(&self) -> BlockInfo {
        self.info
    }

    fn queues(&self) -> usize {
        self.io.len()
    }

    fn select_queue(&mut self, q: usize) {
        self.current = q % self.io.len().max(1);
    }

    fn has_room(&self, ops: &[BlockOp]) -> bool {
        let pages: usize = ops.iter().map(|o| o.data_len().div_ceil(PAGE)).sum();
        ops.len() <= self.io[self.current].slots.free() && pages <= self.free_pages.len()
    }

    fn direct_ok(&self, op: &BlockOp, segs: &[DmaSeg]) -> bool {
        self.direct_pieces(op, segs).is_some()
    }

    fn has_room_direct(&self, ops: &[BlockOp]) -> bool {
        ops.len() <= self.io[self.current].slots.free()
    }

    fn submit_direct(&mut self, id: u64, op: BlockOp, segs: &[DmaSeg]) -> Result<(), BlockError> {
        self.check()?;
        let Some(pieces) = self.direct_pieces(&op, segs) else {
            return Err(BlockError::Refused(String::from("segments unfit for PRPs")));
        };
        let (kind, sector, len) = match op {
            BlockOp::Read { sector, len } => (Kind::Read, sector, len),
            BlockOp::Write { sector, len } => (Kind::Write, sector, len),
            _ => return Err(BlockError::Refused(String::from("not a transfer"))),
        };
        let block_sectors = u64::from(self.info.block_size) / SECTOR;
        if sector % block_sectors != 0 {
            return Err(BlockError::Refused(format!(
                "sector {sector} not block-aligned"
            )));
        }
        let p = Pending {
            id,
            kind,
            pages: Vec::new(),
            len,
        };
        let q = self.current;
        let Some(slot) = self.io[q].slots.take(now(), p) else {
            return Err(BlockError::Full);
        };
        let slot_va = self.slot_va(q, slot);
        let Some(slot_ma) = machine_addr(slot_va as u64) else {
            self.release(q, slot);
            return Err(self.fail(String::from("slot page has no machine address")));
        };
        let mut list = Vec::new();
        let Some(prp) = cmd::prp_segments(&pieces, MAX_PAGES, slot_ma, &mut list) else {
            self.release(q, slot);
            return Err(BlockError::Refused(String::from("segments unfit for PRPs")));
        };
        for (i, e) in list.iter().enumerate() {
            // SAFETY: entry `i` (< MAX_PAGES - 1, so inside the slot's 256-byte PRP list) of
            // this request's slot, owned by it until it is answered.
            unsafe { core::ptr::write_volatile((slot_va + 8 * i) as *mut u64, *e) };
        }
        let lba = sector >> (self.lba_shift - 9);
        let blocks = (len >> self.lba_shift) as u16;
        let io = &mut self.io[q];
        io.pair.push(
            &Command::rw(kind == Kind::Write, NSID, lba, blocks, prp),
            slot,
        );
        io.rang = true;
        Ok(())
    }

    fn submit(
        &mut self,
        id: u64,
        op: BlockOp,
        fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
    ) -> Result<(), BlockError> {
        self.check()?;
        let block_sectors = u64::from(self.info.block_size) / SECTOR;
        let (kind, sector, len) = match op {
            BlockOp::Read { sector, len } => (Kind::Read, sector, len),
            BlockOp::Write { sector, len } => (Kind::Write, sector, len),
            BlockOp::Flush => (Kind::Flush, 0, 0),
            BlockOp::Discard { .. } if self.info.discard.is_none() => {
                return Err(BlockError::Refused(String::from("no Dataset Management")))
            }
            BlockOp::Discard { sector, sectors } => {
                if u64::from(sectors) % block_sectors != 0 || sectors == 0 {
                    return Err(BlockError::Refused(format!("discard of {sectors} sectors")));
                }
                (Kind::Discard, sector, 0)
            }
        };
        let rw = matches!(kind, Kind::Read | Kind::Write);
        if rw
            && (len == 0
                || len > self.info.max_transfer
                || len % self.info.block_size as usize != 0)
        {
            return Err(BlockError::Refused(format!("transfer of {len} bytes")));
        }
        if sector % block_sectors != 0 {
            return Err(BlockError::Refused(format!(
                "sector {sector} not block-aligned"
            )));
        }
        if !self.has_room(&[op]) {
            return Err(BlockError::Full);
        }
        let pages: Vec<u16> = (0..len.div_ceil(PAGE))
            .filter_map(|_| self.free_pages.pop())
            .collect();
        let p = Pending {
            id,
            kind,
            pages: pages.clone(),
            len,
        };
        let q = self.current;
        let Some(slot) = self.io[q].slots.take(now(), p) else {
            self.free_pages.extend(pages);
            return Err(BlockError::Full);
        };
        if kind == Kind::Write {
            let mut bufs = self.buffers(&pages, len);
            if !fill(&mut bufs) {
                self.release(q, slot);
                return Err(BlockError::Aborted);
            }
        }
        let lba = sector >> (self.lba_shift - 9);
        let slot_va = self.slot_va(q, slot);
        let Some(slot_ma) = machine_addr(slot_va as u64) else {
            self.release(q, slot);
            return Err(self.fail(String::from("slot page has no machine address")));
        };
        let cmd = match op {
            BlockOp::Read { .. } | BlockOp::Write { .. } => {
                let mut maddrs = Vec::with_capacity(pages.len());
                for &p in &pages {
                    match machine_addr(self.data.va() + u64::from(p) * PAGE as u64) {
                        Some(m) => maddrs.push(m),
                        None => {
                            self.release(q, slot);
                            return Err(self.fail(String::from("data page has no machine address")));
                        }
                    }
                }
                let mut list = Vec::new();
                let Some(prp) = cmd::prp(&maddrs, slot_ma, &mut list) else {
                    self.release(q, slot);
                    return Err(BlockError::Refused(String::from("no data pages")));
                };
                for (i, e) in list.iter().enumerate() {
                    // SAFETY: entry `i` (< MAX_PAGES - 1, so inside the slot's 256-byte PRP
                    // list) of this request's slot, owned by it until it is answered.
                    unsafe { core::ptr::write_volatile((slot_va + 8 * i) as *mut u64, *e) };
                }
                let blocks = (len >> self.lba_shift) as u16;
                Command::rw(kind == Kind::Write, NSID, lba, blocks, prp)
            }
            BlockOp::Flush => Command::flush(NSID),
            BlockOp::Discard { sectors, .. } => {
                let range = cmd::dsm_range(lba, sectors >> (self.lba_shift - 9));
                let at = slot_va + DSM_AT;
                for (i, chunk) in range.chunks_exact(8).enumerate() {
                    let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
                    // SAFETY: the slot's 16-byte DSM range (bytes 256..272 of a 512-byte
                    // slot), owned by this request until it is answered.
                    unsafe { core::ptr::write_volatile((at + 8 * i) as *mut u64, word) };
                }
                Command::deallocate(NSID, slot_ma + DSM_AT as u64)
            }
        };
        let io = &mut self.io[q];
        io.pair.push(&cmd, slot);
        io.rang = true;
        Ok(())
    }

    fn kick(&mut self) -> Result<(), BlockError> {
        self.check()?;
        for q in &mut self.io {
            if core::mem::take(&mut q.rang) {
                q.pair.ring(&self.regs);
            }
        }
        Ok(())
    }

    fn take_interrupt(&mut self) -> bool {
        let mut fired = false;
        for p in &self.irqs.pirqs {
            fired |= p.take();
        }
        if fired {
            for p in &self.irqs.pirqs {
                if let Err(e) = p.eoi() {
                    log::warn!("nvme: EOI of pirq {}: {e:?}", p.pirq());
                }
            }
        }
        fired
    }

    fn complete(&mut self, each: &mut OnComplete<'_>) -> Result<usize, BlockError> {
        self.check()?;
        let mut n = 0;
        // Every completion queue on every pass: with one vector for all (MSI, INTx) any of
        // them may have raised it, and looking at an empty one costs one read.
        for q in 0..self.io.len() {
            n += self.complete_queue(q, each)?;
        }
        n += self.expire(each)?;
        Ok(n)
    }

    fn next_deadline(&self) -> Option<u64> {
        self.io.iter().filter_map(|q| q.slots.next_deadline()).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copied 128 KiB request, in pages.
    const LARGEST: usize = MAX_PAGES;

    /// Four queues of 63 commands, as the driver has them.
    fn queues() -> Vec<Slots<Pending>> {
        (0..4).map(|_| Slots::new(63, IO_TIMEOUT_NS)).collect()
    }

    /// A copied read of `pages` pool pages, taken from `pool`.
    fn copied(id: u64, pool: &mut Vec<u16>, pages: usize) -> Pending {
        let at = pool.len() - pages;
        Pending {
            id,
            kind: Kind::Read,
            pages: pool.split_off(at),
            len: pages * PAGE,
        }
    }

    /// A direct 128 KiB write (into a guest's pages: no pool page).
    fn direct(id: u64) -> Pending {
        Pending {
            id,
            kind: Kind::Write,
            pages: Vec::new(),
            len: LARGEST * PAGE,
        }
    }

    fn wedged(qs: &[Slots<Pending>], max_pages: usize) -> Option<String> {
        pool_wedged(qs, DATA_PAGES, max_pages)
    }

    #[test]
    fn stuck_commands_holding_a_largest_requests_pages_fail_the_controller_not_before() {
        let mut qs = queues();
        let mut pool: Vec<u16> = (0..DATA_PAGES as u16).collect();
        // Seven stuck 128 KiB copied reads, spread over the queues: 224 of 256 pages held,
        // 32 left, so a largest request still fits.
        let mut cids = Vec::new();
        for i in 0..7 {
            let p = copied(i, &mut pool, LARGEST);
            cids.push((i as usize % 4, qs[i as usize % 4].take(0, p).unwrap()));
        }
        let timed_out: usize = qs
            .iter_mut()
            .map(|q| q.expire(IO_TIMEOUT_NS, |_, _| {}))
            .sum();
        assert_eq!(timed_out, 7);
        assert_eq!(wedged(&qs, LARGEST), None, "32 pages left: not yet");
        // One more stuck page: 31 left, a 128 KiB request can never be queued again, though
        // every queue has free slots (so the all-unanswered rule alone never fires).
        let p = copied(7, &mut pool, 1);
        let last = qs[3].take(1, p).unwrap();
        assert_eq!(qs[3].expire(IO_TIMEOUT_NS + 1, |_, _| {}), 1);
        assert!(qs.iter().all(|q| !q.all_unanswered() && q.free() > 0));
        let why = wedged(&qs, LARGEST).expect("wedged");
        assert!(
            why.contains("8 commands unanswered after 30 s hold 225 of 256 data pages")
                && why.contains("a copied request of 32 pages (128 KiB) can no longer be queued"),
            "{why}"
        );
        // A controller with a smaller MDTS (32 KiB commands) can still be served.
        assert_eq!(wedged(&qs, 8), None);
        // A late answer gives its pages back: no longer wedged.
        assert!(matches!(qs[3].answer(last), Some(Answer::Late(_))));
        assert_eq!(wedged(&qs, LARGEST), None);
        let (q, cid) = cids[0];
        assert!(matches!(qs[q].answer(cid), Some(Answer::Late(_))));
        assert_eq!(wedged(&qs, LARGEST), None);
    }

    #[test]
    fn pages_of_commands_in_time_or_answered_and_direct_commands_fail_nothing() {
        let mut qs = queues();
        let mut pool: Vec<u16> = (0..DATA_PAGES as u16).collect();
        // Every pool page in flight, none stuck: the answers will free them.
        let cids: Vec<u16> = (0..8)
            .map(|i| qs[0].take(0, copied(i, &mut pool, LARGEST)).unwrap())
            .collect();
        assert!(pool.is_empty());
        assert_eq!(qs[0].expire(IO_TIMEOUT_NS - 1, |_, _| {}), 0);
        assert_eq!(wedged(&qs, LARGEST), None, "in time");
        // Answered in time: nothing held any more.
        for (i, &cid) in cids.iter().enumerate() {
            let Some(Answer::Live(p)) = qs[0].answer(cid) else {
                panic!("command {i} not live");
            };
            pool.extend(p.pages);
        }
        assert_eq!(wedged(&qs, LARGEST), None, "answered");

        // Seven stuck copied reads (224 pages), one copied read in flight (the last 32
        // pages), and sixteen stuck direct 128 KiB writes on every queue: only the 224 count.
        for i in 0..7 {
            qs[i % 4]
                .take(0, copied(i as u64, &mut pool, LARGEST))
                .unwrap();
        }
        for i in 0..16 {
            for q in &mut qs {
                q.take(0, direct(100 + i)).unwrap();
            }
        }
        let timed_out: usize = qs
            .iter_mut()
            .map(|q| q.expire(IO_TIMEOUT_NS, |_, _| {}))
            .sum();
        assert_eq!(timed_out, 7 + 64);
        qs[1].take(1, copied(8, &mut pool, LARGEST)).unwrap();
        assert!(pool.is_empty());
        assert_eq!(qs[1].expire(IO_TIMEOUT_NS, |_, _| {}), 0);
        assert_eq!(wedged(&qs, LARGEST), None);
    }
}
