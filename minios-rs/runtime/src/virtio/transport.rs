//! Opening a passed-through virtio PCI function: config space over pcifront for
//! `virtio-drivers`' transport, its register regions checked and mapped first, and its
//! interrupts (MSI-X vectors, which the crate does not program) bound to event channels.

use alloc::format;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::mem::ManuallyDrop;

use minios::pci::config::{read_bars, region_in_bar, ConfigSpace, CAP_VENDOR};
use minios::pci::{PciAddress, PciError};
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::PciTransport;

use super::hal::{map_bar, XenHal};
use crate::pci::{enable_device, enable_interrupts, DeviceIrqs, IrqMode, PciBus};

/// `virtio_pci_cap.cfg_type` of the common configuration structure.
const COMMON_CFG: u8 = 1;
/// Highest `cfg_type` the transport maps (common, notify, ISR, device).
const DEVICE_CFG: u8 = 4;
/// Offsets in `virtio_pci_common_cfg`.
const MSIX_CONFIG: usize = 0x10;
const QUEUE_SELECT: usize = 0x16;
const QUEUE_MSIX_VECTOR: usize = 0x1a;
/// "No vector" in the MSI-X vector registers.
pub const NO_VECTOR: u16 = 0xffff;

/// Config space of the functions on pcifront, as `virtio-drivers` reads it. A failed
/// operation reads as all ones (what a missing device reads as on real hardware).
pub struct PcifrontCam {
    bus: Rc<PciBus>,
}

fn address(df: DeviceFunction) -> PciAddress {
    PciAddress::new(0, df.bus, df.device, df.function)
}

impl ConfigurationAccess for PcifrontCam {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        let r = self
            .bus
            .config(address(df))
            .and_then(|c| c.read32(offset.into()));
        r.unwrap_or_else(|e| {
            log::warn!("virtio: config read {:#x} of {}: {e}", offset, address(df));
            u32::MAX
        })
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        let r = self
            .bus
            .config(address(df))
            .and_then(|c| c.write32(offset.into(), data));
        if let Err(e) = r {
            log::warn!("virtio: config write {:#x} of {}: {e}", offset, address(df));
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        Self {
            bus: self.bus.clone(),
        }
    }
}

/// An opened virtio function.
pub struct VirtioPci {
    /// The function (the address this domain uses).
    pub addr: PciAddress,
    /// Its address in dom0 (what xl.cfg and logs name).
    pub host: PciAddress,
    /// The crate's transport. Never dropped: its drop spins until the device resets, which
    /// a vanished device never does; [`VirtioPci::reset`] bounds that wait.
    pub transport: ManuallyDrop<PciTransport>,
    /// Its interrupts.
    pub irqs: DeviceIrqs,
    common: usize,
    bus: Rc<PciBus>,
}

/// One `virtio_pci_cap` we read ourselves (to check and map its region first).
struct VirtioCap {
    cfg_type: u8,
    bar: u8,
    offset: u32,
    length: u32,
}

fn virtio_caps(cfg: &impl ConfigSpace) -> Result<Vec<VirtioCap>, PciError> {
    let mut caps = Vec::new();
    for cap in minios::pci::config::capabilities(cfg)? {
        if cap.id != CAP_VENDOR || cfg.read8(cap.offset + 2)? < 16 {
            continue;
        }
        caps.push(VirtioCap {
            cfg_type: cfg.read8(cap.offset + 3)?,
            bar: cfg.read8(cap.offset + 4)?,
            offset: cfg.read32(cap.offset + 8)?,
            length: cfg.read32(cap.offset + 12)?,
        });
    }
    Ok(caps)
}

impl VirtioPci {
    /// Opens the virtio function at `addr`: decoding and DMA on, the register regions its
    /// capabilities name checked against its BARs and mapped, `vectors` interrupt vectors
    /// set up, the transport created (the device is then reset, ready for a driver's
    /// feature negotiation).
    pub fn open(bus: &Rc<PciBus>, addr: PciAddress, vectors: u16) -> Result<Self, PciError> {
        let host = bus
            .functions()
            .iter()
            .find(|f| f.addr == addr)
            .map(|f| f.host)
            .ok_or(PciError::NoSuchDevice(addr))?;
        enable_device(bus, addr)?;
        let cfg = bus.config(addr)?;
        let bars = read_bars(&cfg)?;
        let mut common = None;
        for cap in virtio_caps(&cfg)?
            .iter()
            .filter(|c| (COMMON_CFG..=DEVICE_CFG).contains(&c.cfg_type))
        {
            let maddr = region_in_bar(&bars, cap.bar, cap.offset.into(), cap.length.into())?;
            let va = map_bar(maddr, cap.length as usize).map_err(PciError::Xen)?;
            if cap.cfg_type == COMMON_CFG && common.is_none() {
                if cap.length < 0x38 {
                    return Err(PciError::BadDevice(format!(
                        "common configuration of {} bytes",
                        cap.length
                    )));
                }
                common = Some(va);
            }
        }
        let common = common
            .ok_or_else(|| PciError::BadDevice(format!("{addr}: no virtio common config")))?;
        let irqs = enable_interrupts(bus, addr, vectors)?;
        let mut root = PciRoot::new(PcifrontCam { bus: bus.clone() });
        let df = DeviceFunction {
            bus: addr.bus,
            device: addr.device,
            function: addr.function,
        };
        let transport = PciTransport::new::<XenHal, _>(&mut root, df)
            .map_err(|e| PciError::BadDevice(format!("virtio transport: {e}")))?;
        let dev = Self {
            addr,
            host,
            transport: ManuallyDrop::new(transport),
            irqs,
            common,
            bus: bus.clone(),
        };
        if dev.irqs.mode == IrqMode::MsiX {
            dev.write16(MSIX_CONFIG, NO_VECTOR);
        }
        Ok(dev)
    }

    /// Whether the toolstack took the function away (the driver must stop using it).
    pub fn removed(&self) -> bool {
        self.bus.is_removed(self.addr)
    }

    fn write16(&self, offset: usize, value: u16) {
        // SAFETY: `common` maps the checked common configuration region (≥ 0x38 bytes),
        // uncached, for the rest of the run; `offset` is a 2-aligned register in it.
        unsafe { core::ptr::write_volatile((self.common + offset) as *mut u16, value) }
    }

    fn read16(&self, offset: usize) -> u16 {
        // SAFETY: as for `write16`.
        unsafe { core::ptr::read_volatile((self.common + offset) as *const u16) }
    }

    /// Routes `queue`'s interrupts to MSI-X `vector` (call before the queue is set up). A
    /// no-op unless the function uses MSI-X.
    pub fn set_queue_vector(&self, queue: u16, vector: u16) -> Result<(), PciError> {
        if self.irqs.mode != IrqMode::MsiX {
            return Ok(());
        }
        self.write16(QUEUE_SELECT, queue);
        self.write16(QUEUE_MSIX_VECTOR, vector);
        match self.read16(QUEUE_MSIX_VECTOR) {
            v if v == vector => Ok(()),
            v => Err(PciError::BadDevice(format!(
                "queue {queue} took MSI-X vector {v:#x} instead of {vector}"
            ))),
        }
    }
}
