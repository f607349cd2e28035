//! The netback driver domain (unikernel main): configuration from the command line, the
//! uplink NIC opened on the runtime's PCI layer, the tasks of [`netback::netdd`],
//! readiness, the loop, shutdown. Everything else is the library, tested on the host.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;

use log::{info, warn};
use minios::executor::Executor;
use minios::netdev::NetDevice;
use minios::pci::{PciAddress, PciError, PciFrontTask};
use minios_rt::virtio::net::VirtioNet;
use minios_rt::virtio::transport::VirtioPci;
use minios_rt::{Runtime, Shutdown};
use netback::config::{Config, UplinkMode};

minios_rt::entry!(main);

/// How long pcifront's handshake with dom0's pciback may take.
const PCI_CONNECT_NS: u64 = 10_000_000_000;

fn fail(rt: &Runtime, why: &str) -> ! {
    log::error!("netback: cannot start: {why}");
    rt.shutdown(Shutdown::Crash)
}

fn main(rt: Runtime) {
    info!(
        "netback driver domain starting (cmdline \"{}\")",
        rt.cmdline()
    );
    let (mut config, problems) = Config::from_cmdline(rt.cmdline());
    for p in problems {
        warn!("{p}");
    }
    let free = minios_rt::mm::free_bytes() as usize;
    if config.fit_memory(free) {
        info!(
            "queue budget lowered to {} KiB to fit the {} KiB free",
            config.limits.total_bytes / 1024,
            free / 1024
        );
    }
    let Some(xs) = rt.take_xenstore() else {
        fail(&rt, "no xenstore connection");
    };
    let mut exec = Executor::new(rt, xs);
    let nic = match config.uplink {
        UplinkMode::Nic(want) => match open_nic(&rt, &mut exec, want, nic_fallback_mac(&rt)) {
            Ok(dev) => Some(dev),
            Err(NicProblem::Config(why)) => fail(&rt, &format!("netback.uplink=nic: {why}")),
            Err(NicProblem::Device(why)) => {
                warn!("uplink: the NIC failed: {why}");
                None
            }
        },
        _ => None,
    };
    if let Err(e) = netback::netdd::spawn(&mut exec, &config, free_bytes, nic) {
        fail(&rt, &format!("starting the backend: {e}"));
    }
    if let Err(e) = exec.signal_ready() {
        fail(&rt, &format!("writing data/ready: {e}"));
    }
    let reason = exec.run();
    info!(
        "stopping ({reason:?}), {} KiB free",
        minios_rt::mm::free_bytes() / 1024
    );
    rt.shutdown(reason.into());
}

/// Why the NIC uplink is not there.
enum NicProblem {
    /// The configuration cannot work (PVH, no device given, not a NIC we drive).
    Config(String),
    /// The device (or pciback) misbehaved: serve the guests without it.
    Device(String),
}

/// Connects pcifront, picks the NIC and brings it up.
fn open_nic(
    rt: &Runtime,
    exec: &mut Executor<Runtime>,
    want: Option<PciAddress>,
    fallback_mac: [u8; 6],
) -> Result<Box<dyn NetDevice>, NicProblem> {
    let bus =
        minios_rt::pci::connect(rt, exec.xenstore(), PCI_CONNECT_NS).map_err(|e| match e {
            PciError::NotPv | PciError::NoFrontend => NicProblem::Config(format!("{e}")),
            e => NicProblem::Device(format!("{e}")),
        })?;
    let f = netback::uplink::nic::select_nic(bus.functions(), want).map_err(NicProblem::Config)?;
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
    let net = VirtioNet::new(dev, fallback_mac)
        .map_err(|e| NicProblem::Device(format!("{}: {e}", f.host)))?;
    Ok(Box::new(net))
}

/// A MAC for a NIC that has none of its own: locally administered, per domain, distinct
/// from our interface's default (`02:dd:00:00:<domid>`).
fn nic_fallback_mac(rt: &Runtime) -> [u8; 6] {
    use minios::platform::Platform;
    let d = rt.domid().to_be_bytes();
    [0x02, 0xdd, 0x01, 0, d[0], d[1]]
}

/// Memory left: free frames plus free heap space.
fn free_bytes() -> u64 {
    minios_rt::mm::free_bytes() + minios_rt::mm::heap_free_bytes() as u64
}
