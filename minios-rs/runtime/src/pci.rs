//! PCI devices passed through to this domain: pcifront with the runtime as its platform,
//! and what a driver does before it touches a device — decoding on, bus mastering on, and
//! its interrupts bound to event channels (MSI-X, else MSI, else the INTx pirq).
//!
//! Only a PV domain owns devices (Xen refuses passthrough to PVH); on PVH [`connect`] says
//! so and nothing else here is usable.

use alloc::vec::Vec;

use minios::pci::config::{
    self, find_capability, ConfigSpace, CAP_MSI, COMMAND, COMMAND_BUS_MASTER, COMMAND_INTX_DISABLE,
    COMMAND_MEMORY, INTERRUPT_LINE, INTERRUPT_PIN,
};
use minios::pci::front::SharedPage;
use minios::pci::{PciAddress, PciError, PciFront};
use minios::platform::Clock;
use minios::xenstore::Xenstore;

use crate::irq::Pirq;
use crate::xenstore::RingTransport;
use crate::Runtime;

/// pcifront on Xen.
pub type PciBus = PciFront<SharedPage<Runtime>>;

/// Connects to dom0's pciback and lists the functions given to this domain (waits at most
/// `timeout_ns` for the handshake). [`PciError::NotPv`] on PVH, [`PciError::NoFrontend`]
/// when the domain was given no devices.
pub fn connect(
    rt: &Runtime,
    xs: &mut Xenstore<RingTransport>,
    timeout_ns: u64,
) -> Result<PciBus, PciError> {
    if !crate::arch::platform::is_pv() {
        return Err(PciError::NotPv);
    }
    let deadline = rt.now_ns().saturating_add(timeout_ns);
    PciFront::connect(rt, xs, deadline)
}

/// Turns on memory decoding and bus mastering (DMA) for the function at `addr`.
pub fn enable_device(bus: &PciBus, addr: PciAddress) -> Result<(), PciError> {
    let cfg = bus.config(addr)?;
    let cmd = cfg.read16(COMMAND)?;
    cfg.write16(COMMAND, cmd | COMMAND_MEMORY | COMMAND_BUS_MASTER)
}

/// How a function interrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqMode {
    /// MSI-X, table entries `0..n` (pirq `i` serves entry `i`).
    MsiX,
    /// MSI, one vector.
    Msi,
    /// The legacy INTx line (level-triggered, shared: the driver must check its device).
    Intx,
}

/// A function's interrupts, bound to event channels.
#[derive(Debug)]
pub struct DeviceIrqs {
    /// How they are delivered.
    pub mode: IrqMode,
    /// One per vector (MSI-X entry order), or the single MSI/INTx pirq.
    pub pirqs: Vec<Pirq>,
}

/// Sets up `vectors` interrupt vectors for the function: MSI-X if it has the capability
/// (as many entries as it has, up to `vectors`), else MSI, else INTx.
pub fn enable_interrupts(
    bus: &PciBus,
    addr: PciAddress,
    vectors: u16,
) -> Result<DeviceIrqs, PciError> {
    let cfg = bus.config(addr)?;
    let bind = |pirq: u32| Pirq::bind(pirq).map_err(PciError::Xen);
    if let Some(msix) = config::msix_info(&cfg)? {
        let n = vectors.clamp(1, msix.table_size);
        let entries: Vec<u16> = (0..n).collect();
        let pirqs = bus.enable_msix(addr, &entries)?;
        let pirqs = pirqs.into_iter().map(bind).collect::<Result<Vec<_>, _>>()?;
        disable_intx(&cfg)?;
        return Ok(DeviceIrqs {
            mode: IrqMode::MsiX,
            pirqs,
        });
    }
    if find_capability(&cfg, CAP_MSI)?.is_some() {
        let pirq = bind(bus.enable_msi(addr)?)?;
        disable_intx(&cfg)?;
        return Ok(DeviceIrqs {
            mode: IrqMode::Msi,
            pirqs: alloc::vec![pirq],
        });
    }
    if cfg.read8(INTERRUPT_PIN)? == 0 {
        return Err(PciError::BadDevice(alloc::string::String::from(
            "no MSI-X, no MSI and no interrupt pin",
        )));
    }
    // For a passed-through device the line register holds the pirq the toolstack mapped.
    let line = cfg.read8(INTERRUPT_LINE)?;
    Ok(DeviceIrqs {
        mode: IrqMode::Intx,
        pirqs: alloc::vec![bind(line.into())?],
    })
}

fn disable_intx(cfg: &impl ConfigSpace) -> Result<(), PciError> {
    let cmd = cfg.read16(COMMAND)?;
    cfg.write16(COMMAND, cmd | COMMAND_INTX_DISABLE)
}
