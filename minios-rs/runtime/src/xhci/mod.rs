//! An xHCI USB host controller on a passed-through PCI function: reset, device context
//! array, scratchpads, command ring, one event ring on interrupter 0 (its MSI-X/MSI/INTx
//! bound to an event channel; the event ring is also read on every poll, so a lost
//! interrupt only delays), root-port attach/detach and reset, Enable Slot / Address Device
//! / Evaluate Context / Configure Endpoint, control, bulk and interrupt transfers on
//! transfer rings, cancellation (Stop Endpoint, then Set TR Dequeue past the transfer or
//! its TRBs turned into no-ops), halted endpoints reset, and timeouts.
//!
//! Register, TRB and completion-code layouts come from the `xhci` crate where it has them
//! (TRBs) and from offsets in [`regs`] and [`slot`] otherwise; the driver logic is ours.
//! Devices on root ports only (no hub support yet); no isochronous transfers yet.
//!
//! Nothing the controller or a device does may hang or panic the domain: commands and
//! driver-internal control transfers wait at most a bounded time (a command that never
//! completes fails the controller: every device is reported gone), transfers fail with
//! [`Status::IoError`] after their timeout, and descriptors are parsed with bounds checks.

mod mem;
mod regs;
mod slot;
mod xfer;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

use log::{info, warn};
use minios::pci::config::{read_bars, Bar};
use minios::pci::PciAddress;
use minios::platform::Clock;
use xhci::ring::trb::command;

use crate::mmio::Mmio;
use crate::pci::{enable_device, enable_interrupts, DeviceIrqs, IrqMode, PciBus};
use crate::Runtime;
use mem::{EventRing, Mem, Ring};
use regs::*;
use slot::{dci, EpDesc, Slot};
use xfer::{Owner, Spec, Td};

/// How long a command may take before the controller is given up.
const COMMAND_NS: u64 = 2_000_000_000;
/// How long a port reset may take.
const PORT_RESET_NS: u64 = 500_000_000;
/// How long the controller may take to halt, reset or start.
const CONTROLLER_NS: u64 = 1_000_000_000;
/// How long the driver's own control transfers (descriptors, SET_CONFIGURATION) may take
/// (USB 2.0 9.2.6.4: standard requests with data complete within 500 ms).
const INTERNAL_NS: u64 = 1_000_000_000;
/// Most configurations searched for a `SET_CONFIGURATION` value (a device may claim 255).
const MAX_CONFIGS: u8 = 8;
/// How long a caller's control transfer may take.
const CONTROL_NS: u64 = 5_000_000_000;
/// How long a caller's bulk transfer may take (interrupt transfers wait for the device).
const BULK_NS: u64 = 30_000_000_000;
/// Largest transfer accepted (usbif carries at most 16 pages).
const MAX_TRANSFER: usize = 256 * 1024;
/// How long an isochronous transfer may take beyond its packets' service intervals.
const ISO_SLACK_NS: u64 = 2_000_000_000;
/// Most packets in one isochronous transfer.
const MAX_ISO_PACKETS: usize = 1024;
/// Most events handled per poll.
const EVENTS_PER_POLL: usize = 128;
/// Most device slots used.
const MAX_SLOTS: u8 = 32;

/// TRB types of events (xHCI 6.4.2).
const EV_TRANSFER: u32 = 32;
const EV_COMMAND: u32 = 33;
const EV_PORT: u32 = 34;
const EV_HOST: u32 = 37;

/// A device's bus speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speed {
    /// 1.5 Mbit/s.
    Low,
    /// 12 Mbit/s.
    Full,
    /// 480 Mbit/s.
    High,
    /// 5 Gbit/s or more.
    Super,
}

/// An endpoint's transfer type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointKind {
    /// Control.
    Control,
    /// Isochronous.
    Isochronous,
    /// Bulk.
    Bulk,
    /// Interrupt.
    Interrupt,
}

/// How a transfer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Done (possibly short).
    Ok,
    /// The endpoint stalled.
    Stall,
    /// The device sent more than asked.
    Babble,
    /// The device is gone.
    NoDevice,
    /// Transaction error, timeout, or a controller failure.
    IoError,
    /// Cancelled.
    Cancelled,
}

/// Something that happened on the bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A device appeared on root port `port`.
    Attached {
        /// Its handle (unique while attached; a replug gets a new one).
        id: u32,
        /// Root port (1-based).
        port: u8,
        /// Its speed.
        speed: Speed,
    },
    /// A device went away; its transfers are dropped without completions.
    Detached {
        /// Its handle.
        id: u32,
    },
    /// A transfer finished.
    Done {
        /// The device.
        id: u32,
        /// The caller's tag.
        tag: u64,
        /// How it ended.
        status: Status,
        /// IN: the bytes received.
        data: Vec<u8>,
        /// OUT: bytes sent.
        sent: usize,
        /// Isochronous: how each packet ended.
        iso: Option<IsoDone>,
    },
}

/// How an isochronous transfer's packets ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsoDone {
    /// The frame (1 ms, 11 bits) the transfer was queued in.
    pub frame: u16,
    /// Per packet: its status and the bytes it moved (IN: at its offset in `data`).
    pub packets: Vec<(Status, usize)>,
}

/// What a transfer is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A control transfer on endpoint 0 with this setup packet.
    Control([u8; 8]),
    /// Bulk.
    Bulk,
    /// Interrupt.
    Interrupt,
    /// Isochronous: the packets (offset and length in the buffer, in order), one per
    /// service interval; `interval` is the endpoint's in frames (for the time limit).
    Isochronous {
        /// Polling interval in frames.
        interval: u16,
        /// The packets.
        packets: Vec<(usize, usize)>,
    },
}

/// A transfer to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The caller's tag (its completion carries it).
    pub tag: u64,
    /// Endpoint number.
    pub endpoint: u8,
    /// Device to host.
    pub is_in: bool,
    /// Control, bulk or interrupt.
    pub kind: Kind,
    /// OUT data.
    pub data: Vec<u8>,
    /// IN: bytes wanted.
    pub in_len: usize,
}

/// Why an operation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XhciError {
    /// No such device (gone).
    NoDevice,
    /// The endpoint's ring is full: try later.
    Busy,
    /// Refused, with the reason.
    Failed(String),
}

struct Port {
    usb3: bool,
    dev: Option<Attached>,
}

struct Attached {
    id: u32,
    speed: Speed,
    slot: Option<u8>,
}

/// The controller.
pub struct Xhci {
    rt: Runtime,
    regs: Regs,
    irqs: DeviceIrqs,
    bus: Rc<PciBus>,
    addr: PciAddress,
    csz: usize,
    max_slots: u8,
    dcbaa: Mem,
    _scratch: Vec<Mem>,
    cmd: Ring,
    events: EventRing,
    ports: Vec<Port>,
    slots: BTreeMap<u8, Slot>,
    out: VecDeque<Event>,
    deferred: VecDeque<[u32; 4]>,
    sync_done: Option<(u64, Status, Vec<u8>)>,
    next_td: u64,
    generation: u32,
    failed: Option<String>,
}

/// Whether this driver drives a PCI function of this class (serial bus, USB, xHCI).
pub fn drives(class: u32) -> bool {
    class & 0x00ff_ffff == 0x0c0330
}

fn speed_of(portsc: u32) -> Option<Speed> {
    match (portsc >> 10) & 0xf {
        1 => Some(Speed::Full),
        2 => Some(Speed::Low),
        3 => Some(Speed::High),
        4..=15 => Some(Speed::Super),
        _ => None,
    }
}

impl Xhci {
    /// Opens the xHCI function at `addr`: BAR 0 mapped, decoding and DMA on, one interrupt
    /// vector bound, the controller reset and started, the root ports powered and scanned
    /// (devices already connected are reported as attached by [`Xhci::poll`]).
    pub fn open(rt: Runtime, bus: &Rc<PciBus>, addr: PciAddress) -> Result<Self, String> {
        enable_device(bus, addr).map_err(|e| format!("enabling: {e}"))?;
        let cfg = bus.config(addr).map_err(|e| format!("config: {e}"))?;
        let bars = read_bars(&cfg).map_err(|e| format!("BARs: {e}"))?;
        let Some((_, Bar::Memory { base, size, .. })) = bars.iter().find(|(i, _)| *i == 0) else {
            return Err(String::from("BAR 0 is not a memory BAR"));
        };
        let size = (*size).min(1 << 20) as usize;
        let mmio = Mmio::map(*base, size).map_err(|e| format!("mapping BAR 0: {e:?}"))?;
        let regs = Regs::new(mmio).map_err(String::from)?;
        let irqs = enable_interrupts(bus, addr, 1).map_err(|e| format!("interrupts: {e}"))?;
        let mut x = Self {
            rt,
            regs,
            irqs,
            bus: bus.clone(),
            addr,
            csz: 32,
            max_slots: 0,
            dcbaa: Mem::alloc(1)?,
            _scratch: Vec::new(),
            cmd: Ring::new()?,
            events: EventRing::new()?,
            ports: Vec::new(),
            slots: BTreeMap::new(),
            out: VecDeque::new(),
            deferred: VecDeque::new(),
            sync_done: None,
            next_td: 1,
            generation: 0,
            failed: None,
        };
        x.start()?;
        Ok(x)
    }

    fn now(&self) -> u64 {
        self.rt.now_ns()
    }

    /// Spins until `done` holds or `ns` pass; whether it held.
    fn wait_for(&self, ns: u64, mut done: impl FnMut(&Regs) -> bool) -> bool {
        let deadline = self.now().saturating_add(ns);
        loop {
            if done(&self.regs) {
                return true;
            }
            if self.now() > deadline {
                return false;
            }
            core::hint::spin_loop();
        }
    }

    fn start(&mut self) -> Result<(), String> {
        let r = &self.regs;
        r.op_write(USBCMD, r.op_read(USBCMD) & !CMD_RUN);
        if !self.wait_for(CONTROLLER_NS, |r| r.op_read(USBSTS) & STS_HALTED != 0) {
            return Err(String::from("controller does not halt"));
        }
        self.regs.op_write(USBCMD, CMD_RESET);
        if !self.wait_for(CONTROLLER_NS, |r| {
            r.op_read(USBCMD) & CMD_RESET == 0 && r.op_read(USBSTS) & STS_CNR == 0
        }) {
            return Err(String::from("controller does not come out of reset"));
        }
        if self.regs.op_read(PAGESIZE) & 1 == 0 {
            return Err(String::from("controller does not support 4 KiB pages"));
        }
        let hcc = self.regs.hccparams1();
        self.csz = if hcc & (1 << 2) != 0 { 64 } else { 32 };
        let (slots, nports) = self.regs.limits();
        self.max_slots = slots.min(MAX_SLOTS);
        if self.max_slots == 0 || nports == 0 {
            return Err(format!("controller with {slots} slots and {nports} ports"));
        }
        self.regs.op_write(CONFIG, u32::from(self.max_slots));
        let n = self.regs.scratchpads();
        if n > 0 {
            if n > 512 {
                return Err(format!("{n} scratchpad buffers (at most 512 supported)"));
            }
            let array = Mem::alloc(1)?;
            for i in 0..n {
                let page = Mem::alloc(1)?;
                array.write64(i * 8, page.maddr(0));
                self._scratch.push(page);
            }
            self.dcbaa.write64(0, array.maddr(0));
            self._scratch.push(array);
        }
        self.regs.op_write64(DCBAAP, self.dcbaa.maddr(0));
        self.regs.op_write64(CRCR, self.cmd.base() | 1);
        self.regs
            .setup_interrupter(self.events.table(), self.events.dequeue());
        self.ports = (0..nports)
            .map(|_| Port {
                usb3: false,
                dev: None,
            })
            .collect();
        self.find_usb3_ports(hcc);
        self.regs.op_write(USBCMD, CMD_RUN | CMD_INTE);
        if !self.wait_for(CONTROLLER_NS, |r| r.op_read(USBSTS) & STS_HALTED == 0) {
            return Err(String::from("controller does not start"));
        }
        if hcc & (1 << 3) != 0 {
            for p in 1..=nports {
                if self.regs.portsc(p) & PORT_PP == 0 {
                    self.regs.portsc_write(p, PORT_PP);
                }
            }
            self.wait_for(20_000_000, |_| false);
        }
        let usb2 = self.ports.iter().filter(|p| !p.usb3).count();
        info!(
            "xhci {}: {} ports ({} USB2, {} USB3), {} slots, {}-byte contexts, {} scratchpads, {:?} interrupts",
            self.addr,
            nports,
            usb2,
            self.ports.len() - usb2,
            self.max_slots,
            self.csz,
            n,
            self.irqs.mode
        );
        for p in 1..=nports {
            let sc = self.regs.portsc(p);
            self.regs.portsc_write(p, sc & PORT_CHANGES);
            if sc & PORT_CCS != 0 {
                self.attach(p);
            }
        }
        Ok(())
    }

    /// Marks the ports that the Supported Protocol capabilities call USB 3.
    fn find_usb3_ports(&mut self, hcc: u32) {
        let mut off = ((hcc >> 16) as usize) * 4;
        for _ in 0..64 {
            if off == 0 {
                break;
            }
            let Some(dw) = self.regs.cap32(off) else {
                break;
            };
            if dw & 0xff == 2 {
                if let Some(dw2) = self.regs.cap32(off + 8) {
                    let first = (dw2 & 0xff) as usize;
                    let count = ((dw2 >> 8) & 0xff) as usize;
                    for p in first..first + count {
                        if let Some(port) = p.checked_sub(1).and_then(|i| self.ports.get_mut(i)) {
                            port.usb3 = dw >> 24 >= 3;
                        }
                    }
                }
            }
            match (dw >> 8) & 0xff {
                0 => break,
                next => off += next as usize * 4,
            }
        }
    }

    fn fail(&mut self, why: String) {
        if self.failed.is_some() {
            return;
        }
        warn!(
            "xhci {}: controller failed: {why}; every device is gone",
            self.addr
        );
        self.regs
            .op_write(USBCMD, self.regs.op_read(USBCMD) & !CMD_RUN);
        self.failed = Some(why);
        for p in &mut self.ports {
            if let Some(d) = p.dev.take() {
                self.out.push_back(Event::Detached { id: d.id });
            }
        }
        self.slots.clear();
    }

    fn port_reset(&mut self, port: u8) -> Result<(), String> {
        self.regs.portsc_write(port, PORT_PR);
        if !self.wait_for(PORT_RESET_NS, |r| r.portsc(port) & PORT_PRC != 0) {
            return Err(format!("port {port}: reset does not complete"));
        }
        self.regs.portsc_write(port, PORT_PRC);
        let sc = self.regs.portsc(port);
        if sc & PORT_CCS == 0 || sc & PORT_PED == 0 {
            return Err(format!("port {port}: not enabled after reset ({sc:#x})"));
        }
        Ok(())
    }

    fn attach(&mut self, port: u8) {
        let usb3 = self.ports[usize::from(port) - 1].usb3;
        if !usb3 {
            if let Err(e) = self.port_reset(port) {
                warn!("xhci {}: {e}", self.addr);
                return;
            }
        }
        let Some(speed) = speed_of(self.regs.portsc(port)) else {
            warn!("xhci {}: port {port}: no speed", self.addr);
            return;
        };
        self.generation = self.generation.wrapping_add(1) & 0x00ff_ffff;
        let id = (self.generation << 8) | u32::from(port);
        self.ports[usize::from(port) - 1].dev = Some(Attached {
            id,
            speed,
            slot: None,
        });
        self.out.push_back(Event::Attached { id, port, speed });
    }

    fn detach(&mut self, port: u8) {
        let Some(dev) = self.ports[usize::from(port) - 1].dev.take() else {
            return;
        };
        if let Some(s) = dev.slot {
            self.drop_slot(s);
        }
        self.out.push_back(Event::Detached { id: dev.id });
    }

    fn on_port(&mut self, port: u8) {
        if port == 0 || usize::from(port) > self.ports.len() {
            return;
        }
        let sc = self.regs.portsc(port);
        self.regs.portsc_write(port, sc & PORT_CHANGES);
        let present = self.ports[usize::from(port) - 1].dev.is_some();
        let connected = sc & PORT_CCS != 0;
        if present && (!connected || sc & PORT_CSC != 0) {
            self.detach(port);
        }
        if connected
            && (sc & PORT_CSC != 0 || !present)
            && self.ports[usize::from(port) - 1].dev.is_none()
        {
            self.attach(port);
        }
    }

    /// Runs a command and waits for its completion; the slot id it names on success.
    fn command(&mut self, trb: [u32; 4]) -> Result<u8, String> {
        if let Some(why) = &self.failed {
            return Err(format!("controller failed: {why}"));
        }
        if !self.cmd.fits(1) {
            return Err(String::from("command ring full"));
        }
        let placed = self.cmd.push(trb);
        self.regs.ring(0, 0);
        let deadline = self.now().saturating_add(COMMAND_NS);
        loop {
            while let Some(ev) = self.next_event() {
                let ptr = u64::from(ev[0]) | (u64::from(ev[1]) << 32);
                if (ev[3] >> 10) & 0x3f == EV_COMMAND && ptr == placed.maddr {
                    self.cmd.release(1);
                    let code = (ev[2] >> 24) as u8;
                    return match code {
                        1 => Ok((ev[3] >> 24) as u8),
                        c => Err(format!("completion code {c}")),
                    };
                }
                self.deferred.push_back(ev);
            }
            if self.now() > deadline {
                let why = format!("command type {} timed out", (trb[3] >> 10) & 0x3f);
                self.fail(why.clone());
                return Err(why);
            }
            core::hint::spin_loop();
        }
    }

    fn next_event(&mut self) -> Option<[u32; 4]> {
        let ev = self.events.next()?;
        self.regs.set_dequeue(self.events.dequeue());
        Some(ev)
    }

    fn drop_slot(&mut self, slot: u8) {
        if self.slots.remove(&slot).is_some() {
            let mut trb = command::DisableSlot::new();
            trb.set_slot_id(slot);
            if let Err(e) = self.command(trb.into_raw()) {
                warn!("xhci {}: disable slot {slot}: {e}", self.addr);
            }
            self.dcbaa.write64(usize::from(slot) * 8, 0);
        }
    }

    fn port_of(&self, id: u32) -> Option<u8> {
        let port = (id & 0xff) as u8;
        let p = self.ports.get(usize::from(port).checked_sub(1)?)?;
        p.dev.as_ref().filter(|d| d.id == id).map(|_| port)
    }

    fn slot_of(&self, id: u32) -> Result<u8, XhciError> {
        let port = self.port_of(id).ok_or(XhciError::NoDevice)?;
        self.ports[usize::from(port) - 1]
            .dev
            .as_ref()
            .and_then(|d| d.slot)
            .ok_or_else(|| XhciError::Failed(String::from("device not enabled")))
    }

    /// Resets the device's port and addresses it in a fresh slot (a previous slot of it is
    /// disabled first): afterwards endpoint 0 takes control transfers.
    pub fn enable(&mut self, id: u32) -> Result<(), XhciError> {
        let port = self.port_of(id).ok_or(XhciError::NoDevice)?;
        if let Some(s) = self.ports[usize::from(port) - 1]
            .dev
            .as_mut()
            .and_then(|d| d.slot.take())
        {
            self.drop_slot(s);
        }
        let usb3 = self.ports[usize::from(port) - 1].usb3;
        if !usb3 {
            self.port_reset(port).map_err(XhciError::Failed)?;
        }
        let speed = speed_of(self.regs.portsc(port))
            .ok_or_else(|| XhciError::Failed(String::from("no speed after reset")))?;
        let slot = self
            .command(command::EnableSlot::new().into_raw())
            .map_err(|e| XhciError::Failed(format!("enable slot: {e}")))?;
        if slot == 0 || slot > self.max_slots || self.slots.contains_key(&slot) {
            return Err(XhciError::Failed(format!("controller gave slot {slot}")));
        }
        match self.address(port, slot, speed) {
            Ok(()) => {
                if let Some(d) = self.ports[usize::from(port) - 1].dev.as_mut() {
                    d.slot = Some(slot);
                    d.speed = speed;
                }
                Ok(())
            }
            Err(e) => {
                if self.slots.contains_key(&slot) {
                    self.drop_slot(slot);
                } else {
                    let mut trb = command::DisableSlot::new();
                    trb.set_slot_id(slot);
                    let _ = self.command(trb.into_raw());
                }
                Err(XhciError::Failed(e))
            }
        }
    }

    fn address(&mut self, port: u8, slot_id: u8, speed: Speed) -> Result<(), String> {
        let mp0: u16 = match speed {
            Speed::Low | Speed::Full => 8,
            Speed::High => 64,
            Speed::Super => 512,
        };
        let ring = Ring::new()?;
        let slot = Slot {
            port,
            speed,
            out: Mem::alloc(1)?,
            input: Mem::alloc(1)?,
            csz: self.csz,
            eps: BTreeMap::new(),
            configs: 1,
            config: Vec::new(),
            alts: BTreeMap::new(),
        };
        slot.clear_input();
        slot.set_flags(0, 0b11);
        slot.write_slot_ctx(1);
        slot.write_ep_ctx(1, EndpointKind::Control, false, mp0, 0, ring.base());
        self.dcbaa
            .write64(usize::from(slot_id) * 8, slot.out.maddr(0));
        let input = slot.input.maddr(0);
        let mut slot = slot;
        slot.eps.insert(
            1,
            slot::Endpoint {
                kind: EndpointKind::Control,
                ring,
                max_packet: mp0,
                burst: 0,
                tds: VecDeque::new(),
            },
        );
        self.slots.insert(slot_id, slot);
        let mut trb = command::AddressDevice::new();
        trb.set_input_context_pointer(input).set_slot_id(slot_id);
        self.command(trb.into_raw())
            .map_err(|e| format!("address device: {e}"))?;
        if speed == Speed::Full {
            let d = self.get_descriptor(slot_id, 1, 0, 8)?;
            let mp = d.get(7).copied().map(u16::from).unwrap_or(8);
            if mp != mp0 && matches!(mp, 8 | 16 | 32 | 64) {
                let s = &self.slots[&slot_id];
                s.clear_input();
                s.set_flags(0, 0b10);
                let base = s.eps[&1].ring.position().0;
                s.write_ep_ctx(1, EndpointKind::Control, false, mp, 0, base);
                let mut trb = command::EvaluateContext::new();
                trb.set_input_context_pointer(input).set_slot_id(slot_id);
                self.command(trb.into_raw())
                    .map_err(|e| format!("evaluate context: {e}"))?;
                if let Some(ep) = self.slots.get_mut(&slot_id).and_then(|s| s.eps.get_mut(&1)) {
                    ep.max_packet = mp;
                }
            }
        }
        let d = self.get_descriptor(slot_id, 1, 0, 18)?;
        if d.len() < 18 {
            return Err(format!("device descriptor of {} bytes", d.len()));
        }
        if let Some(s) = self.slots.get_mut(&slot_id) {
            s.configs = d[17];
        }
        Ok(())
    }

    fn get_descriptor(
        &mut self,
        slot: u8,
        kind: u8,
        index: u8,
        len: u16,
    ) -> Result<Vec<u8>, String> {
        let l = len.to_le_bytes();
        let setup = [0x80, 6, index, kind, 0, 0, l[0], l[1]];
        match self.control_sync(slot, setup, &[], usize::from(len))? {
            (Status::Ok, data) => Ok(data),
            (s, _) => Err(format!("GET_DESCRIPTOR {kind}/{index}: {s:?}")),
        }
    }

    /// A control transfer of the driver's own, waited for (bounded).
    fn control_sync(
        &mut self,
        slot: u8,
        setup: [u8; 8],
        out: &[u8],
        in_len: usize,
    ) -> Result<(Status, Vec<u8>), String> {
        let is_in = setup[0] & 0x80 != 0;
        let spec = Spec {
            setup: Some(setup),
            is_in,
            data: out,
            in_len: if is_in { in_len } else { 0 },
            max_packet: 0,
        };
        let id = self
            .queue(slot, 1, &spec, 0, Owner::Internal)
            .map_err(|e| format!("{e:?}"))?;
        let deadline = self.now().saturating_add(INTERNAL_NS);
        loop {
            while let Some(ev) = self.next_event() {
                let is_ours = (ev[3] >> 10) & 0x3f == EV_TRANSFER
                    && (ev[3] >> 24) as u8 == slot
                    && (ev[3] >> 16) & 0x1f == 1;
                if is_ours {
                    self.on_transfer(ev);
                } else {
                    self.deferred.push_back(ev);
                }
                if let Some((done, status, data)) = self.sync_done.take() {
                    if done == id {
                        return Ok((status, data));
                    }
                }
            }
            if self.failed.is_some() || !self.slots.contains_key(&slot) {
                return Err(String::from("device gone"));
            }
            if self.now() > deadline {
                self.cancel_td(slot, 1, id);
                return Err(format!("control request {:#04x} timed out", setup[1]));
            }
            core::hint::spin_loop();
        }
    }

    /// Puts a transfer on endpoint `dci`'s ring and rings its doorbell; the TD's id.
    fn queue(
        &mut self,
        slot_id: u8,
        dci: u8,
        spec: &Spec<'_>,
        tag: u64,
        owner: Owner,
    ) -> Result<u64, XhciError> {
        let len = if spec.is_in {
            spec.in_len
        } else {
            spec.data.len()
        };
        if len > MAX_TRANSFER {
            return Err(XhciError::Failed(format!("transfer of {len} bytes")));
        }
        let now = self.now();
        let id = self.next_td;
        let slot = self.slots.get_mut(&slot_id).ok_or(XhciError::NoDevice)?;
        let ep = slot
            .eps
            .get_mut(&dci)
            .ok_or_else(|| XhciError::Failed(format!("no endpoint context {dci}")))?;
        if !ep.ring.fits(xfer::trbs_needed(len, spec.setup.is_some())) {
            return Err(XhciError::Busy);
        }
        let spec = Spec {
            max_packet: ep.max_packet,
            ..*spec
        };
        let mut td = xfer::build(&mut ep.ring, &spec, tag, id, owner).map_err(XhciError::Failed)?;
        td.deadline = match (owner, ep.kind) {
            (Owner::Internal, _) => None,
            (_, EndpointKind::Control) => Some(now + CONTROL_NS),
            (_, EndpointKind::Bulk) => Some(now + BULK_NS),
            _ => None,
        };
        ep.tds.push_back(td);
        self.next_td += 1;
        self.regs.ring(slot_id, dci);
        Ok(id)
    }

    fn on_event(&mut self, ev: [u32; 4]) {
        match (ev[3] >> 10) & 0x3f {
            EV_TRANSFER => self.on_transfer(ev),
            EV_PORT => self.on_port((ev[0] >> 24) as u8),
            EV_HOST => {
                let sts = self.regs.op_read(USBSTS);
                if sts & (STS_HSE | STS_HCE) != 0 {
                    self.fail(format!("host controller error (USBSTS {sts:#x})"));
                }
            }
            _ => {}
        }
    }

    fn on_transfer(&mut self, ev: [u32; 4]) {
        let slot_id = (ev[3] >> 24) as u8;
        let dci = ((ev[3] >> 16) & 0x1f) as u8;
        let ed = ev[3] & (1 << 2) != 0;
        let ptr = u64::from(ev[0]) | (u64::from(ev[1]) << 32);
        let len = (ev[2] & 0x00ff_ffff) as usize;
        let code = (ev[2] >> 24) as u8;
        let Some(slot) = self.slots.get_mut(&slot_id) else {
            return;
        };
        let port = slot.port;
        let Some(ep) = slot.eps.get_mut(&dci) else {
            return;
        };
        let found = if ed {
            ep.tds.iter().position(|t| t.names(ptr))
        } else {
            ep.tds.iter().position(|t| t.holds(ptr))
        };
        let Some(i) = found else {
            return;
        };
        let (status, halted) = xfer::status_of(code);
        let td = &mut ep.tds[i];
        if td.iso.is_some() {
            // Isochronous endpoints do not halt; a packet's error is that packet's.
            if status == Status::Cancelled || !td.iso_event(ptr, ed, len, status) {
                return;
            }
            let Some(td) = ep.tds.remove(i) else {
                return;
            };
            ep.ring.release(td.trbs.len());
            let len = td.len;
            self.finish(port, td, Status::Ok, len);
            return;
        }
        let actual = match status {
            Status::Cancelled => return,
            Status::Ok if ed => {
                td.actual = Some(len);
                if td.control {
                    return;
                }
                len
            }
            Status::Ok if td.is_status(ptr) => td.actual.unwrap_or(0),
            Status::Ok => return,
            _ if ed => len,
            _ => td.moved_until(ptr, len),
        };
        let Some(td) = ep.tds.remove(i) else {
            return;
        };
        ep.ring.release(td.trbs.len());
        let end = td.end;
        self.finish(port, td, status, actual);
        if halted {
            self.recover(slot_id, dci, end);
        }
    }

    fn finish(&mut self, port: u8, td: Td, status: Status, actual: usize) {
        let data = if td.is_in {
            td.take_data(actual)
        } else {
            Vec::new()
        };
        let iso = td.iso.as_ref().map(|i| IsoDone {
            frame: i.frame,
            packets: i
                .results
                .iter()
                .map(|r| r.unwrap_or((Status::IoError, 0)))
                .collect(),
        });
        let sent = match &iso {
            Some(i) if !td.is_in => i.packets.iter().map(|p| p.1).sum(),
            _ if td.is_in => 0,
            _ => actual.min(td.len),
        };
        match td.owner {
            Owner::Internal => self.sync_done = Some((td.id, status, data)),
            Owner::Caller => {
                if let Some(d) = self.ports[usize::from(port) - 1].dev.as_ref() {
                    self.out.push_back(Event::Done {
                        id: d.id,
                        tag: td.tag,
                        status,
                        data,
                        sent,
                        iso,
                    });
                }
            }
        }
    }

    /// Reports the caller's transfer `tag` on the device at root port `port` failed (I/O
    /// error, nothing moved): it timed out or its endpoint went away.
    fn fail_caller(&mut self, port: u8, tag: u64) {
        if let Some(dev) = self.ports[usize::from(port) - 1].dev.as_ref() {
            self.out.push_back(Event::Done {
                id: dev.id,
                tag,
                status: Status::IoError,
                data: Vec::new(),
                sent: 0,
                iso: None,
            });
        }
    }

    /// A halted endpoint: Reset Endpoint, dequeue past the failed TD, restart.
    fn recover(&mut self, slot_id: u8, dci: u8, end: (u64, bool)) {
        let mut reset = command::ResetEndpoint::new();
        reset.set_slot_id(slot_id).set_endpoint_id(dci);
        if let Err(e) = self.command(reset.into_raw()) {
            warn!(
                "xhci {}: reset endpoint {dci} of slot {slot_id}: {e}",
                self.addr
            );
        }
        self.set_dequeue(slot_id, dci, end);
    }

    fn set_dequeue(&mut self, slot_id: u8, dci: u8, (ptr, cycle): (u64, bool)) {
        let mut trb = command::SetTrDequeuePointer::new();
        trb.set_slot_id(slot_id)
            .set_endpoint_id(dci)
            .set_new_tr_dequeue_pointer(ptr);
        if cycle {
            trb.set_dequeue_cycle_state();
        }
        if let Err(e) = self.command(trb.into_raw()) {
            warn!(
                "xhci {}: set dequeue of endpoint {dci} of slot {slot_id}: {e}",
                self.addr
            );
        }
        if self
            .slots
            .get(&slot_id)
            .and_then(|s| s.eps.get(&dci))
            .is_some_and(|e| !e.tds.is_empty())
        {
            self.regs.ring(slot_id, dci);
        }
    }

    /// Takes TD `id` off endpoint `dci`: Stop Endpoint, then past it (if the controller
    /// stopped inside it) or its TRBs turned into no-ops, and the endpoint restarted.
    fn cancel_td(&mut self, slot_id: u8, dci: u8, id: u64) {
        let mut stop = command::StopEndpoint::new();
        stop.set_slot_id(slot_id).set_endpoint_id(dci);
        // A halted or already stopped endpoint refuses (context state error): fine.
        let _ = self.command(stop.into_raw());
        let Some(slot) = self.slots.get_mut(&slot_id) else {
            return;
        };
        let deq = slot.ep_dequeue(dci);
        let Some(ep) = slot.eps.get_mut(&dci) else {
            return;
        };
        let Some(i) = ep.tds.iter().position(|t| t.id == id) else {
            return;
        };
        let Some(td) = ep.tds.remove(i) else {
            return;
        };
        ep.ring.release(td.trbs.len());
        if td.holds(deq) {
            self.set_dequeue(slot_id, dci, td.end);
        } else {
            for t in &td.trbs {
                ep.ring.noop(t.1);
            }
            if !ep.tds.is_empty() {
                self.regs.ring(slot_id, dci);
            }
        }
    }

    /// The type of endpoint `number` in direction `is_in` in the active configuration.
    pub fn endpoint(&self, id: u32, number: u8, is_in: bool) -> Option<EndpointKind> {
        let slot = self.slot_of(id).ok()?;
        self.slots
            .get(&slot)?
            .eps
            .get(&dci(number, is_in))
            .map(|e| e.kind)
    }

    /// Starts a transfer; its [`Event::Done`] comes from [`Xhci::poll`]. `SET_CONFIGURATION`
    /// is carried out here (endpoints configured on the controller, then the request sent).
    pub fn submit(&mut self, id: u32, req: Request) -> Result<(), XhciError> {
        if let Some(why) = &self.failed {
            return Err(XhciError::Failed(format!("controller failed: {why}")));
        }
        let slot = self.slot_of(id)?;
        match &req.kind {
            &Kind::Control(setup) if matches!((setup[0], setup[1]), (0, 9) | (1, 11)) => {
                let (status, _) = if setup[1] == 9 {
                    self.set_configuration(slot, setup)
                } else {
                    self.set_interface(slot, setup)
                }
                .map_err(XhciError::Failed)?;
                self.out.push_back(Event::Done {
                    id,
                    tag: req.tag,
                    status,
                    data: Vec::new(),
                    sent: 0,
                    iso: None,
                });
                Ok(())
            }
            &Kind::Control(setup) => {
                let spec = Spec {
                    setup: Some(setup),
                    is_in: req.is_in,
                    data: &req.data,
                    in_len: req
                        .in_len
                        .min(usize::from(u16::from_le_bytes([setup[6], setup[7]]))),
                    max_packet: 0,
                };
                self.queue(slot, 1, &spec, req.tag, Owner::Caller)
                    .map(|_| ())
            }
            Kind::Bulk | Kind::Interrupt => {
                let dci = dci(req.endpoint, req.is_in);
                if req.endpoint == 0 || dci == 1 {
                    return Err(XhciError::Failed(String::from(
                        "bulk/interrupt on endpoint 0",
                    )));
                }
                let spec = Spec {
                    setup: None,
                    is_in: req.is_in,
                    data: &req.data,
                    in_len: req.in_len,
                    max_packet: 0,
                };
                self.queue(slot, dci, &spec, req.tag, Owner::Caller)
                    .map(|_| ())
            }
            Kind::Isochronous { interval, packets } => {
                self.queue_iso(slot, &req, *interval, packets)
            }
        }
    }

    /// Puts an isochronous transfer on its endpoint's ring and rings the doorbell.
    fn queue_iso(
        &mut self,
        slot_id: u8,
        req: &Request,
        interval: u16,
        packets: &[(usize, usize)],
    ) -> Result<(), XhciError> {
        let len = if req.is_in {
            req.in_len
        } else {
            req.data.len()
        };
        if len > MAX_TRANSFER || packets.is_empty() || packets.len() > MAX_ISO_PACKETS {
            return Err(XhciError::Failed(format!(
                "isochronous transfer of {len} bytes in {} packets",
                packets.len()
            )));
        }
        let needed = xfer::iso_trbs_needed(packets);
        if needed >= mem::RING_TRBS - 1 {
            return Err(XhciError::Failed(format!(
                "isochronous transfer of {} packets needs {needed} TRBs, more than a ring holds",
                packets.len()
            )));
        }
        let dci = dci(req.endpoint, req.is_in);
        let frame = ((self.regs.mfindex() >> 3) & 0x7ff) as u16;
        let deadline = self.now()
            + ISO_SLACK_NS
            + packets.len() as u64 * u64::from(interval.clamp(1, 1024)) * 1_000_000;
        let id = self.next_td;
        let slot = self.slots.get_mut(&slot_id).ok_or(XhciError::NoDevice)?;
        let ep = slot
            .eps
            .get_mut(&dci)
            .filter(|e| e.kind == EndpointKind::Isochronous)
            .ok_or_else(|| XhciError::Failed(format!("no isochronous endpoint context {dci}")))?;
        if !ep.ring.fits(needed) {
            return Err(XhciError::Busy);
        }
        let spec = xfer::IsoSpec {
            is_in: req.is_in,
            data: &req.data,
            in_len: req.in_len,
            packets,
            max_packet: ep.max_packet,
            burst: ep.burst,
            frame,
        };
        let mut td =
            xfer::build_iso(&mut ep.ring, &spec, req.tag, id).map_err(XhciError::Failed)?;
        td.deadline = Some(deadline);
        ep.tds.push_back(td);
        self.next_td += packets.len() as u64;
        self.regs.ring(slot_id, dci);
        Ok(())
    }

    fn set_configuration(
        &mut self,
        slot_id: u8,
        setup: [u8; 8],
    ) -> Result<(Status, Vec<u8>), String> {
        let value = setup[2];
        let (config, eps) = if value == 0 {
            (Vec::new(), Vec::new())
        } else {
            self.config_endpoints(slot_id, value)?
        };
        let old: Vec<u8> = self
            .slots
            .get(&slot_id)
            .map(|s| s.eps.keys().copied().filter(|d| *d > 1).collect())
            .unwrap_or_default();
        self.configure_endpoints(slot_id, &old, &eps)?;
        if let Some(s) = self.slots.get_mut(&slot_id) {
            s.config = config;
            s.alts.clear();
        }
        self.control_sync(slot_id, setup, &[], 0)
    }

    /// `SET_INTERFACE`: the request goes to the device; once it accepts, the endpoints of
    /// the interface's old alternate setting are dropped and the new one's added
    /// (Configure Endpoint). A setting the configuration does not have is the device's to
    /// refuse (its answer passed on).
    fn set_interface(&mut self, slot_id: u8, setup: [u8; 8]) -> Result<(Status, Vec<u8>), String> {
        let (alt, iface) = (setup[2], setup[4]);
        let answer = self.control_sync(slot_id, setup, &[], 0)?;
        if answer.0 != Status::Ok || setup[3] != 0 || setup[5] != 0 {
            return Ok(answer);
        }
        let Some(slot) = self.slots.get(&slot_id) else {
            return Err(String::from("device gone"));
        };
        let current = slot.alts.get(&iface).copied().unwrap_or(0);
        let old = slot::parse_alternate(&slot.config, iface, current)?.unwrap_or_default();
        let Some(new) = slot::parse_alternate(&slot.config, iface, alt)? else {
            return Ok(answer);
        };
        let drop: Vec<u8> = old
            .iter()
            .map(|e| dci(e.number, e.is_in))
            .filter(|d| slot.eps.contains_key(d))
            .collect();
        if !drop.is_empty() || !new.is_empty() {
            self.configure_endpoints(slot_id, &drop, &new)?;
        }
        if let Some(s) = self.slots.get_mut(&slot_id) {
            if alt == 0 {
                s.alts.remove(&iface);
            } else {
                s.alts.insert(iface, alt);
            }
        }
        Ok(answer)
    }

    /// The whole descriptor and the endpoints of the configuration whose
    /// bConfigurationValue is `value`.
    fn config_endpoints(
        &mut self,
        slot_id: u8,
        value: u8,
    ) -> Result<(Vec<u8>, Vec<EpDesc>), String> {
        let configs = self
            .slots
            .get(&slot_id)
            .map_or(0, |s| s.configs.min(MAX_CONFIGS));
        for index in 0..configs {
            let head = self.get_descriptor(slot_id, 2, index, 9)?;
            if head.len() < 9 || head[5] != value {
                continue;
            }
            let total = u16::from_le_bytes([head[2], head[3]]).clamp(9, 4096);
            let full = self.get_descriptor(slot_id, 2, index, total)?;
            let eps = slot::parse_config(&full)?;
            return Ok((full, eps));
        }
        Err(format!("no configuration {value}"))
    }

    /// Configure Endpoint: endpoints `drop` (device context indexes) dropped, `eps` added
    /// with new rings. The caller's transfers still on a dropped endpoint fail.
    fn configure_endpoints(
        &mut self,
        slot_id: u8,
        drop: &[u8],
        eps: &[EpDesc],
    ) -> Result<(), String> {
        let mut fresh = BTreeMap::new();
        for e in eps {
            if e.kind == EndpointKind::Control {
                continue;
            }
            let burst = self
                .slots
                .get(&slot_id)
                .ok_or("device gone")?
                .burst(e.kind, e.max_packet);
            fresh.insert(
                dci(e.number, e.is_in),
                (
                    *e,
                    slot::Endpoint {
                        kind: e.kind,
                        ring: Ring::new()?,
                        max_packet: e.max_packet & 0x7ff,
                        burst,
                        tds: VecDeque::new(),
                    },
                ),
            );
        }
        let slot = self.slots.get(&slot_id).ok_or("device gone")?;
        slot.clear_input();
        let drop_flags: u32 = drop.iter().filter(|d| **d > 1).map(|d| 1u32 << d).sum();
        let add: u32 = 1 | fresh.keys().map(|d| 1u32 << d).sum::<u32>();
        slot.set_flags(drop_flags, add);
        let last = slot
            .eps
            .keys()
            .filter(|d| !drop.contains(d))
            .chain(fresh.keys())
            .copied()
            .max()
            .unwrap_or(1)
            .max(1);
        slot.write_slot_ctx(last);
        for (d, (e, ep)) in &fresh {
            slot.write_ep_ctx(
                *d,
                e.kind,
                e.is_in,
                e.max_packet,
                e.interval,
                ep.ring.base(),
            );
        }
        let mut trb = command::ConfigureEndpoint::new();
        trb.set_input_context_pointer(slot.input.maddr(0))
            .set_slot_id(slot_id);
        self.command(trb.into_raw())
            .map_err(|e| format!("configure endpoint: {e}"))?;
        let Some(slot) = self.slots.get_mut(&slot_id) else {
            return Ok(());
        };
        let port = slot.port;
        let mut orphans = Vec::new();
        for d in drop.iter().filter(|d| **d > 1) {
            if let Some(ep) = slot.eps.remove(d) {
                orphans.extend(ep.tds.into_iter().filter(|t| t.owner == Owner::Caller));
            }
        }
        for (d, (_, ep)) in fresh {
            if let Some(old) = slot.eps.insert(d, ep) {
                orphans.extend(old.tds.into_iter().filter(|t| t.owner == Owner::Caller));
            }
        }
        for td in orphans {
            self.fail_caller(port, td.tag);
        }
        Ok(())
    }

    /// Cancels the transfer `tag` of device `id` (no completion follows; unknown: no-op).
    pub fn cancel(&mut self, id: u32, tag: u64) {
        let Ok(slot_id) = self.slot_of(id) else {
            return;
        };
        let Some(slot) = self.slots.get(&slot_id) else {
            return;
        };
        let found = slot.eps.iter().find_map(|(d, ep)| {
            ep.tds
                .iter()
                .find(|t| t.tag == tag && t.owner == Owner::Caller)
                .map(|t| (*d, t.id))
        });
        if let Some((d, td)) = found {
            self.cancel_td(slot_id, d, td);
        }
    }

    /// Services the controller (interrupt acknowledged, events handled, timed-out transfers
    /// failed) and returns the next bus event, if any.
    pub fn poll(&mut self) -> Option<Event> {
        if self.failed.is_none() {
            self.service();
        }
        self.out.pop_front()
    }

    fn service(&mut self) {
        let mut fired = false;
        for p in &self.irqs.pirqs {
            fired |= p.take();
        }
        if fired {
            self.regs.ack_interrupt();
            for p in &self.irqs.pirqs {
                if let Err(e) = p.eoi() {
                    warn!("xhci {}: EOI of pirq {}: {e:?}", self.addr, p.pirq());
                }
            }
        }
        if self.bus.is_removed(self.addr) {
            self.fail(String::from("the toolstack took the device away"));
            return;
        }
        let sts = self.regs.op_read(USBSTS);
        if sts == u32::MAX || sts & (STS_HSE | STS_HCE) != 0 {
            self.fail(format!("USBSTS {sts:#x}"));
            return;
        }
        if self.irqs.mode == IrqMode::Intx && sts & STS_EINT != 0 {
            self.regs.ack_interrupt();
        }
        for _ in 0..self.deferred.len() {
            if let Some(ev) = self.deferred.pop_front() {
                self.on_event(ev);
            }
        }
        for _ in 0..EVENTS_PER_POLL {
            let Some(ev) = self.next_event() else {
                break;
            };
            self.on_event(ev);
        }
        self.expire();
    }

    /// Fails the caller's transfers whose time is up.
    fn expire(&mut self) {
        let now = self.now();
        let mut late = Vec::new();
        for (s, slot) in &self.slots {
            for (d, ep) in &slot.eps {
                for t in &ep.tds {
                    if t.deadline.is_some_and(|dl| dl < now) {
                        late.push((*s, *d, t.id, t.tag, slot.port));
                    }
                }
            }
        }
        for (s, d, id, tag, port) in late {
            warn!(
                "xhci {}: transfer on slot {s} endpoint {d} timed out",
                self.addr
            );
            self.cancel_td(s, d, id);
            self.fail_caller(port, tag);
        }
    }

    /// The earliest transfer deadline (when [`Xhci::poll`] must run even without interrupts).
    pub fn next_deadline(&self) -> Option<u64> {
        self.slots
            .values()
            .flat_map(|s| s.eps.values())
            .flat_map(|e| e.tds.iter())
            .filter_map(|t| t.deadline)
            .min()
    }

    /// Stops the controller (run/stop cleared, halted within a bounded wait): no DMA after
    /// this; every later request is refused.
    pub fn halt(&mut self) {
        self.regs
            .op_write(USBCMD, self.regs.op_read(USBCMD) & !(CMD_RUN | CMD_INTE));
        let halted = self.wait_for(CONTROLLER_NS, |r| r.op_read(USBSTS) & STS_HALTED != 0);
        info!(
            "xhci {}: controller {}",
            self.addr,
            if halted { "halted" } else { "did not halt" }
        );
        if self.failed.is_none() {
            self.failed = Some(String::from("stopped"));
        }
    }

    /// Why the controller was given up, if it was.
    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }
}
