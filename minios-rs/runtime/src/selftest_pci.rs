//! Bring-up check of the PCI layer on Xen (the `hello` image runs it with `hello.pci=1`):
//! pcifront lists the functions given to the domain; the first virtio-net among them is
//! opened (BARs mapped, MSI-X bound, queues in DMA memory) and must answer a real exchange:
//! an ARP request for the gateway goes out, and its reply has to come back; the domain only
//! looks for it when the device's interrupt has woken it (blocked in Xen meanwhile).

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

use minios::netdev::{NetDevice, TxMeta};
use minios::platform::{Clock, Platform};
use minios::xenstore::Xenstore;

use crate::virtio::net::VirtioNet;
use crate::virtio::transport::VirtioPci;
use crate::xenstore::RingTransport;
use crate::Runtime;

/// What the check found.
pub struct PciReport {
    /// The pcifront connection, for a [`minios::pci::PciFrontTask`] that answers the
    /// toolstack when it takes the functions away (`xl destroy`, `xl pci-detach`).
    pub bus: Rc<crate::pci::PciBus>,
    /// `host-address=vendor:device` of every function.
    pub functions: Vec<String>,
    /// The NIC's MAC.
    pub mac: String,
    /// How its interrupts arrive.
    pub irq_mode: String,
    /// Who answered the ARP request, and how long it took.
    pub arp_reply: String,
    /// Interrupts taken while waiting.
    pub interrupts: u32,
}

/// An ARP request from `mac`/`ip` for `target`.
fn arp_request(mac: [u8; 6], ip: [u8; 4], target: [u8; 4]) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip);
    f[38..42].copy_from_slice(&target);
    f
}

/// The sender of an ARP reply to `mac` for `target`, if `frame` is one.
fn arp_reply_from(frame: &[u8], mac: [u8; 6], target: [u8; 4]) -> Option<[u8; 6]> {
    let is_reply = frame.len() >= 42
        && frame[0..6] == mac
        && frame[12..14] == [0x08, 0x06]
        && frame[20..22] == [0, 2]
        && frame[28..32] == target;
    is_reply.then(|| {
        let mut m = [0u8; 6];
        m.copy_from_slice(&frame[22..28]);
        m
    })
}

fn mac_str(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Runs the check: ARP for `gateway` from `ip` on the first virtio-net, within `timeout_ns`.
pub fn run(
    rt: &Runtime,
    xs: &mut Xenstore<RingTransport>,
    ip: [u8; 4],
    gateway: [u8; 4],
    timeout_ns: u64,
) -> Result<PciReport, String> {
    let bus = crate::pci::connect(rt, xs, 10_000_000_000).map_err(|e| format!("{e}"))?;
    let functions: Vec<String> = bus
        .functions()
        .iter()
        .map(|f| format!("{}={:04x}:{:04x}", f.host, f.vendor, f.device))
        .collect();
    let nic = bus
        .functions()
        .iter()
        .find(|f| VirtioNet::drives(f.vendor, f.device))
        .copied()
        .ok_or_else(|| format!("no virtio-net among {functions:?}"))?;
    let bus = Rc::new(bus);
    let dev = VirtioPci::open(&bus, nic.addr, 1).map_err(|e| format!("{}: {e}", nic.host))?;
    let irq_mode = format!("{:?}", dev.irqs.mode);
    let mut net = VirtioNet::new(dev, [0x02, 0xdd, 0, 0, 0, 1]).map_err(|e| format!("{e}"))?;
    let mac = net.mac();
    let start = rt.now_ns();
    net.transmit(&arp_request(mac, ip, gateway), &TxMeta::default())
        .and_then(|()| net.flush())
        .map_err(|e| format!("sending the ARP request: {e}"))?;
    let deadline = start.saturating_add(timeout_ns);
    let mut interrupts = 0;
    let mut from = None;
    // Block until the device interrupts (its event wakes us), then look at what came in:
    // the reply must arrive by interrupt, not by polling.
    while from.is_none() {
        if rt.now_ns() >= deadline {
            return Err(format!(
                "no ARP reply from the gateway within {} ms ({interrupts} interrupts)",
                timeout_ns / 1_000_000
            ));
        }
        rt.wait(Some(deadline));
        if !net.take_interrupt() {
            continue;
        }
        interrupts += 1;
        net.poll().map_err(|e| format!("{e}"))?;
        net.receive(64, &mut |f| {
            if let Some(m) = arp_reply_from(f.data, mac, gateway) {
                from = Some(m);
            }
        })
        .and_then(|_| net.flush())
        .map_err(|e| format!("{e}"))?;
    }
    let us = (rt.now_ns() - start) / 1000;
    let m = from.unwrap_or_default();
    drop(net);
    Ok(PciReport {
        bus,
        functions,
        mac: mac_str(mac),
        irq_mode,
        arp_reply: format!(
            "{}.{}.{}.{} is-at {} after {us} us",
            gateway[0],
            gateway[1],
            gateway[2],
            gateway[3],
            mac_str(m)
        ),
        interrupts,
    })
}
