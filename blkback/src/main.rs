//! The blkback driver domain (unikernel main): hands the runtime to
//! [`blkback::blkdd::run_with_device`] — configuration, stores, backend, the loop and the
//! final flush are the library's, tested on the host — with the one platform-specific
//! piece, opening a passed-through virtio-blk or NVMe controller on the runtime's PCI layer
//! (`minios_rt::pci`, `minios_rt::virtio`, `minios_rt::nvme`), and shuts the domain down as
//! it says.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;

use blkback::config::DeviceKind;
use minios::blockdev::BlockDevice;
use minios::executor::Executor;
use minios::pci::PciFrontTask;
use minios_rt::nvme::Nvme;
use minios_rt::virtio::blk::VirtioBlk;
use minios_rt::virtio::transport::VirtioPci;
use minios_rt::Runtime;

minios_rt::entry!(main);

/// How long pcifront's handshake with dom0's pciback may take.
const PCI_CONNECT_NS: u64 = 10_000_000_000;

fn main(rt: Runtime) {
    let reason =
        blkback::blkdd::run_with_device(rt, rt.take_xenstore(), rt.cmdline(), Box::new(open));
    rt.shutdown(reason.into());
}

/// Connects pcifront, takes the first function of `kind` and brings it up.
fn open(exec: &mut Executor<Runtime>, kind: DeviceKind) -> Result<Box<dyn BlockDevice>, String> {
    let rt = *exec.platform();
    let bus = minios_rt::pci::connect(&rt, exec.xenstore(), PCI_CONNECT_NS)
        .map_err(|e| format!("{e}"))?;
    let f = bus
        .functions()
        .iter()
        .find(|f| match kind {
            DeviceKind::Virtio => VirtioBlk::drives(f.vendor, f.device),
            DeviceKind::Nvme => Nvme::drives(f.class),
        })
        .copied()
        .ok_or_else(|| {
            let what = match kind {
                DeviceKind::Virtio => "a virtio-blk",
                DeviceKind::Nvme => "an NVMe controller",
            };
            format!(
                "none of the {} PCI function(s) given to this domain is {what}",
                bus.functions().len()
            )
        })?;
    let bus = Rc::new(bus);
    // Answers the toolstack's pci-detach/destroy requests (else xl waits 10 s for us).
    exec.spawn(PciFrontTask::new(bus.clone()))
        .map_err(|e| format!("watching pcifront: {e}"))?;
    if kind == DeviceKind::Nvme {
        let nvme = Nvme::open(&bus, f.addr).map_err(|e| format!("{}: {e}", f.host))?;
        return Ok(Box::new(nvme));
    }
    let dev = VirtioPci::open(&bus, f.addr, 1).map_err(|e| format!("{}: {e}", f.host))?;
    let blk = VirtioBlk::new(dev).map_err(|e| format!("{}: {e}", f.host))?;
    Ok(Box::new(blk))
}
