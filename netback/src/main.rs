//! The netback driver domain (unikernel main): hands the runtime to [`netback::netdd::run`]
//! with the [`Machine`] it runs on — free memory from the runtime's allocator, the uplink
//! NIC opened on the runtime's PCI layer (`minios_rt::pci`, `minios_rt::virtio`). Those two
//! are the platform-specific part; everything else is the library, tested on the host.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;

use minios::executor::Executor;
use minios::netdev::NetDevice;
use minios::pci::{PciAddress, PciError, PciFrontTask};
use minios::platform::Platform;
use minios_rt::virtio::net::VirtioNet;
use minios_rt::virtio::transport::VirtioPci;
use minios_rt::Runtime;
use netback::netdd::{Machine, NicProblem};

minios_rt::entry!(main);

/// How long pcifront's handshake with dom0's pciback may take.
const PCI_CONNECT_NS: u64 = 10_000_000_000;

fn main(rt: Runtime) {
    let reason = netback::netdd::run(rt, rt.take_xenstore(), rt.cmdline(), RuntimeMachine);
    rt.shutdown(reason.into());
}

/// The machine of a unikernel on Xen.
struct RuntimeMachine;

impl Machine<Runtime> for RuntimeMachine {
    fn free_bytes(&self) -> u64 {
        minios_rt::mm::free_bytes() + minios_rt::mm::heap_free_bytes() as u64
    }

    /// Connects pcifront, picks the NIC and brings it up.
    fn open_nic(
        &self,
        exec: &mut Executor<Runtime>,
        want: Option<PciAddress>,
    ) -> Result<Box<dyn NetDevice>, NicProblem> {
        let rt = *exec.platform();
        let bus =
            minios_rt::pci::connect(&rt, exec.xenstore(), PCI_CONNECT_NS).map_err(|e| match e {
                PciError::NotPv | PciError::NoFrontend => NicProblem::Config(format!("{e}")),
                e => NicProblem::Device(format!("{e}")),
            })?;
        let f =
            netback::uplink::nic::select_nic(bus.functions(), want).map_err(NicProblem::Config)?;
        if !VirtioNet::drives(f.vendor, f.device) {
            return Err(NicProblem::Config(format!(
                "{} ({:04x}:{:04x}) is a NIC this domain has no driver for (it drives virtio-net)",
                f.host, f.vendor, f.device
            )));
        }
        let bus = Rc::new(bus);
        // Answers the toolstack's pci-detach/destroy requests (else xl waits 10 s for us).
        exec.spawn(PciFrontTask::new(bus.clone()))
            .map_err(|e| NicProblem::Device(format!("watching pcifront: {e}")))?;
        let dev = VirtioPci::open(&bus, f.addr, 1)
            .map_err(|e| NicProblem::Device(format!("{}: {e}", f.host)))?;
        let net = VirtioNet::new(dev, nic_fallback_mac(&rt))
            .map_err(|e| NicProblem::Device(format!("{}: {e}", f.host)))?;
        Ok(Box::new(net))
    }
}

/// A MAC for a NIC that has none of its own: locally administered, per domain, distinct
/// from our interface's default (`02:dd:00:00:<domid>`).
fn nic_fallback_mac(rt: &Runtime) -> [u8; 6] {
    let d = rt.domid().to_be_bytes();
    [0x02, 0xdd, 0x01, 0, d[0], d[1]]
}
