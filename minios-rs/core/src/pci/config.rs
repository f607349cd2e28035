//! Config space: the registers a driver domain uses, the capability list, BARs and MSI-X.
//!
//! Values come from the device (through pciback): every walk is bounded and every size and
//! offset is checked before it is used to map or program anything.

use alloc::format;
use alloc::vec::Vec;

use super::PciError;

/// Vendor id (16 bits).
pub const VENDOR_ID: u16 = 0x00;
/// Device id (16 bits).
pub const DEVICE_ID: u16 = 0x02;
/// Command register (16 bits).
pub const COMMAND: u16 = 0x04;
/// Status register (16 bits).
pub const STATUS: u16 = 0x06;
/// Revision id (8 bits), then programming interface, subclass, class.
pub const CLASS_REVISION: u16 = 0x08;
/// Header type (8 bits).
pub const HEADER_TYPE: u16 = 0x0e;
/// First base address register (6 in a type 0 header, 4 bytes apart).
pub const BAR0: u16 = 0x10;
/// Subsystem vendor id (16 bits).
pub const SUBSYSTEM_VENDOR_ID: u16 = 0x2c;
/// Offset of the first capability (8 bits).
pub const CAPABILITIES_POINTER: u16 = 0x34;
/// Interrupt line (8 bits): for a passed-through device, the pirq of its INTx.
pub const INTERRUPT_LINE: u16 = 0x3c;
/// Interrupt pin (8 bits): 0 none, 1–4 INTA–INTD.
pub const INTERRUPT_PIN: u16 = 0x3d;

/// [`COMMAND`]: respond to I/O-space accesses.
pub const COMMAND_IO: u16 = 1 << 0;
/// [`COMMAND`]: respond to memory-space accesses.
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// [`COMMAND`]: the device may master the bus (DMA).
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// [`COMMAND`]: INTx disabled.
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
/// [`STATUS`]: a capability list is present.
pub const STATUS_CAP_LIST: u16 = 1 << 4;

/// Capability id: MSI.
pub const CAP_MSI: u8 = 0x05;
/// Capability id: vendor specific (virtio's structures).
pub const CAP_VENDOR: u8 = 0x09;
/// Capability id: PCI Express.
pub const CAP_EXPRESS: u8 = 0x10;
/// Capability id: MSI-X.
pub const CAP_MSIX: u8 = 0x11;

/// Number of BARs in a type 0 header.
pub const BAR_COUNT: u8 = 6;
/// Most capabilities a walk visits (a 256-byte space holds at most 48 of 4 bytes each).
const MAX_CAPS: usize = 48;

/// Access to one function's config space. Implementations perform each access once (a
/// config read may have side effects) and report what refused it.
pub trait ConfigSpace {
    /// Reads `size` (1, 2 or 4) bytes at `offset` (aligned to `size`).
    fn read(&self, offset: u16, size: u8) -> Result<u32, PciError>;

    /// Writes the low `size` (1, 2 or 4) bytes of `value` at `offset` (aligned to `size`).
    fn write(&self, offset: u16, size: u8, value: u32) -> Result<(), PciError>;

    /// Reads a byte.
    fn read8(&self, offset: u16) -> Result<u8, PciError> {
        self.read(offset, 1).map(|v| v as u8)
    }

    /// Reads a 16-bit word.
    fn read16(&self, offset: u16) -> Result<u16, PciError> {
        self.read(offset, 2).map(|v| v as u16)
    }

    /// Reads a 32-bit word.
    fn read32(&self, offset: u16) -> Result<u32, PciError> {
        self.read(offset, 4)
    }

    /// Writes a 16-bit word.
    fn write16(&self, offset: u16, value: u16) -> Result<(), PciError> {
        self.write(offset, 2, value.into())
    }

    /// Writes a 32-bit word.
    fn write32(&self, offset: u16, value: u32) -> Result<(), PciError> {
        self.write(offset, 4, value)
    }
}

/// One entry of the capability list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    /// Capability id (`CAP_*`).
    pub id: u8,
    /// Its offset in config space.
    pub offset: u16,
}

/// The capability list, walked once: at most 48 entries, each at a dword-aligned offset in
/// 0x40..=0xfc, none visited twice (a device that loops is refused, not followed).
pub fn capabilities(cfg: &impl ConfigSpace) -> Result<Vec<Capability>, PciError> {
    let mut caps = Vec::new();
    if cfg.read16(STATUS)? & STATUS_CAP_LIST == 0 {
        return Ok(caps);
    }
    let mut next = u16::from(cfg.read8(CAPABILITIES_POINTER)? & 0xfc);
    while next != 0 {
        if !(0x40..=0xfc).contains(&next) {
            return Err(PciError::BadDevice(format!(
                "capability pointer {next:#x} outside the device-specific area"
            )));
        }
        if caps.iter().any(|c: &Capability| c.offset == next) || caps.len() == MAX_CAPS {
            return Err(PciError::BadDevice(format!(
                "capability list loops (at {next:#x})"
            )));
        }
        let header = cfg.read16(next)?;
        caps.push(Capability {
            id: header as u8,
            offset: next,
        });
        next = (header >> 8) & 0xfc;
    }
    Ok(caps)
}

/// The first capability with `id`, if any.
pub fn find_capability(cfg: &impl ConfigSpace, id: u8) -> Result<Option<u16>, PciError> {
    Ok(capabilities(cfg)?
        .into_iter()
        .find(|c| c.id == id)
        .map(|c| c.offset))
}

/// A decoded base address register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    /// A memory BAR: `size` bytes (a power of two) at bus address `base`.
    Memory {
        /// Bus (for a PV domain: machine) address.
        base: u64,
        /// Size in bytes.
        size: u64,
        /// Prefetchable.
        prefetchable: bool,
        /// Takes two BAR slots (64-bit).
        wide: bool,
    },
    /// An I/O-port BAR.
    Io {
        /// First port.
        base: u32,
        /// Number of ports.
        size: u32,
    },
}

impl Bar {
    /// Whether the BAR occupies two slots.
    pub fn is_wide(&self) -> bool {
        matches!(self, Bar::Memory { wide: true, .. })
    }
}

/// Decodes BAR `index` by the usual sizing dance: read, write all ones, read the mask,
/// restore. `None` for an unimplemented BAR (or the upper half of a 64-bit one, which the
/// caller skips by [`Bar::is_wide`]). pciback virtualises this dance for a passed-through
/// device, so it never moves the real BAR.
pub fn read_bar(cfg: &impl ConfigSpace, index: u8) -> Result<Option<Bar>, PciError> {
    if index >= BAR_COUNT {
        return Ok(None);
    }
    let off = BAR0 + u16::from(index) * 4;
    let orig = cfg.read32(off)?;
    cfg.write32(off, u32::MAX)?;
    let mask = cfg.read32(off)?;
    cfg.write32(off, orig)?;
    if orig & 1 == 1 {
        let size_mask = mask & !0x3 & 0xffff;
        if size_mask == 0 {
            return Ok(None);
        }
        let size = (!size_mask & 0xffff) + 1;
        return check_bar(Bar::Io {
            base: orig & !0x3,
            size,
        })
        .map(Some);
    }
    let kind = (orig >> 1) & 3;
    let prefetchable = orig & 0x8 != 0;
    let (base, size, wide) = match kind {
        0 => {
            let m = mask & !0xf;
            if m == 0 {
                return Ok(None);
            }
            (
                u64::from(orig & !0xf),
                u64::from((!m).wrapping_add(1)),
                false,
            )
        }
        2 if index + 1 < BAR_COUNT => {
            let hi_off = off + 4;
            let hi = cfg.read32(hi_off)?;
            cfg.write32(hi_off, u32::MAX)?;
            let hi_mask = cfg.read32(hi_off)?;
            cfg.write32(hi_off, hi)?;
            let m = u64::from(hi_mask) << 32 | u64::from(mask & !0xf);
            if m == 0 {
                return Ok(None);
            }
            (
                u64::from(hi) << 32 | u64::from(orig & !0xf),
                (!m).wrapping_add(1),
                true,
            )
        }
        _ => {
            return Err(PciError::BadDevice(format!(
                "BAR {index} has reserved type {kind}"
            )))
        }
    };
    check_bar(Bar::Memory {
        base,
        size,
        prefetchable,
        wide,
    })
    .map(Some)
}

/// A BAR is usable when its size is a power of two, its base is aligned to it and the range
/// does not wrap.
fn check_bar(bar: Bar) -> Result<Bar, PciError> {
    let (base, size) = match bar {
        Bar::Memory { base, size, .. } => (base, size),
        Bar::Io { base, size } => (u64::from(base), u64::from(size)),
    };
    if size == 0 || !size.is_power_of_two() || base % size != 0 || base.checked_add(size).is_none()
    {
        return Err(PciError::BadDevice(format!(
            "BAR at {base:#x} with size {size:#x}"
        )));
    }
    Ok(bar)
}

/// Every implemented BAR of a type 0 header, by index.
pub fn read_bars(cfg: &impl ConfigSpace) -> Result<Vec<(u8, Bar)>, PciError> {
    let mut bars = Vec::new();
    let mut i = 0;
    while i < BAR_COUNT {
        match read_bar(cfg, i)? {
            Some(bar) => {
                bars.push((i, bar));
                i += if bar.is_wide() { 2 } else { 1 };
            }
            None => i += 1,
        }
    }
    Ok(bars)
}

/// Where a region named by a capability (BAR index, offset, length) lies: checks that it
/// fits inside the BAR and returns its bus address.
pub fn region_in_bar(bars: &[(u8, Bar)], bar: u8, offset: u64, len: u64) -> Result<u64, PciError> {
    let Some((_, Bar::Memory { base, size, .. })) = bars.iter().find(|(i, _)| *i == bar) else {
        return Err(PciError::BadDevice(format!(
            "region in BAR {bar}, which is not a memory BAR"
        )));
    };
    match offset.checked_add(len) {
        Some(end) if end <= *size => Ok(base + offset),
        _ => Err(PciError::BadDevice(format!(
            "region {offset:#x}+{len:#x} outside BAR {bar} of {size:#x} bytes"
        ))),
    }
}

/// The MSI-X capability of a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixInfo {
    /// Offset of the capability.
    pub offset: u16,
    /// Number of table entries (1–2048).
    pub table_size: u16,
    /// BAR holding the table, and the table's offset in it.
    pub table: (u8, u32),
    /// BAR holding the pending-bit array, and its offset in it.
    pub pba: (u8, u32),
}

/// Reads the MSI-X capability, if the function has one.
pub fn msix_info(cfg: &impl ConfigSpace) -> Result<Option<MsixInfo>, PciError> {
    let Some(offset) = find_capability(cfg, CAP_MSIX)? else {
        return Ok(None);
    };
    let control = cfg.read16(offset + 2)?;
    let table = cfg.read32(offset + 4)?;
    let pba = cfg.read32(offset + 8)?;
    let bir = |v: u32| (v & 7) as u8;
    if bir(table) >= BAR_COUNT || bir(pba) >= BAR_COUNT {
        return Err(PciError::BadDevice(format!(
            "MSI-X table in BAR {} / PBA in BAR {}",
            bir(table),
            bir(pba)
        )));
    }
    Ok(Some(MsixInfo {
        offset,
        table_size: (control & 0x7ff) + 1,
        table: (bir(table), table & !7),
        pba: (bir(pba), pba & !7),
    }))
}
