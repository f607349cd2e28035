//! The controller's registers (xHCI 1.2 chapter 5) on its mapped BAR 0: capability,
//! operational, runtime (interrupter 0) and doorbell registers, by offset.

use crate::mmio::Mmio;

/// HCSPARAMS1, HCSPARAMS2, HCCPARAMS1, DBOFF, RTSOFF (capability registers).
const HCSPARAMS1: usize = 0x04;
const HCSPARAMS2: usize = 0x08;
const HCCPARAMS1: usize = 0x10;
const DBOFF: usize = 0x14;
const RTSOFF: usize = 0x18;

/// Operational registers (from CAPLENGTH).
pub const USBCMD: usize = 0x00;
/// USB status.
pub const USBSTS: usize = 0x04;
/// Supported page sizes.
pub const PAGESIZE: usize = 0x08;
/// Command ring control.
pub const CRCR: usize = 0x18;
/// Device context base address array pointer.
pub const DCBAAP: usize = 0x30;
/// Configure (MaxSlotsEn).
pub const CONFIG: usize = 0x38;

/// USBCMD: run/stop, reset, interrupter enable.
pub const CMD_RUN: u32 = 1 << 0;
/// USBCMD: host controller reset.
pub const CMD_RESET: u32 = 1 << 1;
/// USBCMD: interrupter enable.
pub const CMD_INTE: u32 = 1 << 2;
/// USBSTS: halted.
pub const STS_HALTED: u32 = 1 << 0;
/// USBSTS: host system error.
pub const STS_HSE: u32 = 1 << 2;
/// USBSTS: event interrupt (RW1C).
pub const STS_EINT: u32 = 1 << 3;
/// USBSTS: controller not ready.
pub const STS_CNR: u32 = 1 << 11;
/// USBSTS: host controller error.
pub const STS_HCE: u32 = 1 << 12;

/// PORTSC bits.
pub const PORT_CCS: u32 = 1 << 0;
/// Port enabled (RW1C: never written as 1).
pub const PORT_PED: u32 = 1 << 1;
/// Port reset.
pub const PORT_PR: u32 = 1 << 4;
/// Port power.
pub const PORT_PP: u32 = 1 << 9;
/// Connect status change.
pub const PORT_CSC: u32 = 1 << 17;
/// Port reset change.
pub const PORT_PRC: u32 = 1 << 21;
/// All change bits (CSC, PEC, WRC, OCC, PRC, PLC, CEC; RW1C).
pub const PORT_CHANGES: u32 = 0x7f << 17;
/// Bits written back as read (port power, indicator, wake enables); everything else is
/// RW1C or RO, or an action.
const PORT_PRESERVE: u32 = PORT_PP | (3 << 14) | (7 << 25);

/// Interrupter 0 registers (from RTSOFF + 0x20).
const IMAN: usize = 0x00;
const IMOD: usize = 0x04;
const ERSTSZ: usize = 0x08;
const ERSTBA: usize = 0x10;
const ERDP: usize = 0x18;

/// The register file.
pub struct Regs {
    mmio: Mmio,
    op: usize,
    rt: usize,
    db: usize,
}

impl Regs {
    /// Locates the register sets in the mapped BAR (offsets checked against its size).
    pub fn new(mmio: Mmio) -> Result<Self, &'static str> {
        if mmio.len() < 0x40 {
            return Err("BAR 0 too small for xHCI registers");
        }
        let op = usize::from(mmio.read8(0));
        let rt = (mmio.read32(RTSOFF) & !0x1f) as usize;
        let db = (mmio.read32(DBOFF) & !0x3) as usize;
        let ports = (mmio.read32(HCSPARAMS1) >> 24) as usize;
        let slots = (mmio.read32(HCSPARAMS1) & 0xff) as usize;
        let fits = |base: usize, len: usize| base.checked_add(len).is_some_and(|e| e <= mmio.len());
        if op < 0x20
            || !fits(op, 0x400 + 0x10 * ports)
            || !fits(rt, 0x40)
            || !fits(db, 4 * (slots + 1))
        {
            return Err("xHCI register sets outside BAR 0");
        }
        Ok(Self { mmio, op, rt, db })
    }

    /// HCSPARAMS1: (max slots, max ports).
    pub fn limits(&self) -> (u8, u8) {
        let p = self.mmio.read32(HCSPARAMS1);
        ((p & 0xff) as u8, (p >> 24) as u8)
    }

    /// Scratchpad buffers the controller wants (HCSPARAMS2).
    pub fn scratchpads(&self) -> usize {
        let p = self.mmio.read32(HCSPARAMS2);
        ((((p >> 21) & 0x1f) << 5) | ((p >> 27) & 0x1f)) as usize
    }

    /// HCCPARAMS1.
    pub fn hccparams1(&self) -> u32 {
        self.mmio.read32(HCCPARAMS1)
    }

    /// Reads a capability-space dword at `off` (extended capabilities), `None` outside the BAR.
    pub fn cap32(&self, off: usize) -> Option<u32> {
        (off % 4 == 0 && off + 4 <= self.mmio.len()).then(|| self.mmio.read32(off))
    }

    /// Reads an operational register.
    pub fn op_read(&self, reg: usize) -> u32 {
        self.mmio.read32(self.op + reg)
    }

    /// Writes an operational register.
    pub fn op_write(&self, reg: usize, v: u32) {
        self.mmio.write32(self.op + reg, v)
    }

    /// Writes a 64-bit operational register, low half first.
    pub fn op_write64(&self, reg: usize, v: u64) {
        self.op_write(reg, v as u32);
        self.op_write(reg + 4, (v >> 32) as u32);
    }

    /// PORTSC of root port `port` (1-based).
    pub fn portsc(&self, port: u8) -> u32 {
        self.op_read(0x400 + 0x10 * (usize::from(port) - 1))
    }

    /// Writes PORTSC: the preserved bits as read, plus `set` (actions, RW1C change bits).
    pub fn portsc_write(&self, port: u8, set: u32) {
        let v = (self.portsc(port) & PORT_PRESERVE) | set;
        self.op_write(0x400 + 0x10 * (usize::from(port) - 1), v)
    }

    /// MFINDEX: the controller's microframe counter (14 bits, 125 µs each).
    pub fn mfindex(&self) -> u32 {
        self.mmio.read32(self.rt) & 0x3fff
    }

    fn ir(&self, reg: usize) -> usize {
        self.rt + 0x20 + reg
    }

    /// Sets up interrupter 0 on an event ring: size, dequeue pointer, table (last), enabled.
    pub fn setup_interrupter(&self, table: u64, dequeue: u64) {
        self.mmio.write32(self.ir(ERSTSZ), 1);
        self.set_dequeue(dequeue);
        self.mmio.write32(self.ir(ERSTBA), table as u32);
        self.mmio.write32(self.ir(ERSTBA) + 4, (table >> 32) as u32);
        // 40 µs moderation (units of 250 ns).
        self.mmio.write32(self.ir(IMOD), 160);
        self.mmio.write32(self.ir(IMAN), 0b11);
    }

    /// Acknowledges interrupter 0 (IP is RW1C; IE stays set).
    pub fn ack_interrupt(&self) {
        self.mmio.write32(self.ir(IMAN), 0b11);
        self.op_write(USBSTS, STS_EINT);
    }

    /// Writes ERDP (with the event-handler-busy bit cleared by writing 1).
    pub fn set_dequeue(&self, dequeue: u64) {
        let v = dequeue | (1 << 3);
        self.mmio.write32(self.ir(ERDP), v as u32);
        self.mmio.write32(self.ir(ERDP) + 4, (v >> 32) as u32);
    }

    /// Rings doorbell `slot` (0: the command ring) for `target`.
    pub fn ring(&self, slot: u8, target: u8) {
        self.mmio
            .write32(self.db + 4 * usize::from(slot), u32::from(target));
    }
}
