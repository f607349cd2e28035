//! The usbback driver domain (unikernel main): hands the runtime to
//! [`usbback::usbdd::run`] with the one platform-specific piece — connecting pcifront and
//! opening the passed-through xHCI controller (`minios_rt::xhci`) — and shuts the domain
//! down as it says.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;

use minios::executor::Executor;
use minios::pci::PciFrontTask;
use minios_rt::xhci::Xhci;
use minios_rt::Runtime;
use usbback::host::UsbHost;
use usbback::xhci::XhciHost;

minios_rt::entry!(main);

/// How long pcifront's handshake with dom0's pciback may take.
const PCI_CONNECT_NS: u64 = 10_000_000_000;

fn main(rt: Runtime) {
    let reason = usbback::usbdd::run(rt, rt.take_xenstore(), rt.cmdline(), Box::new(open));
    rt.shutdown(reason.into());
}

/// Connects pcifront, takes the first xHCI function and brings it up.
fn open(exec: &mut Executor<Runtime>) -> Result<Box<dyn UsbHost>, String> {
    let rt = *exec.platform();
    let bus = minios_rt::pci::connect(&rt, exec.xenstore(), PCI_CONNECT_NS)
        .map_err(|e| format!("{e}"))?;
    let f = bus
        .functions()
        .iter()
        .find(|f| minios_rt::xhci::drives(f.class))
        .copied()
        .ok_or_else(|| {
            format!(
                "none of the {} PCI function(s) given to this domain is an xHCI controller",
                bus.functions().len()
            )
        })?;
    let bus = Rc::new(bus);
    // Answers the toolstack's pci-detach/destroy requests (else xl waits 10 s for us).
    exec.spawn(PciFrontTask::new(bus.clone()))
        .map_err(|e| format!("watching pcifront: {e}"))?;
    let x = Xhci::open(rt, &bus, f.addr).map_err(|e| format!("{}: {e}", f.host))?;
    Ok(Box::new(XhciHost(x)))
}
