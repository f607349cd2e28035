//! The audioback driver domain (unikernel main): hands the runtime to
//! [`audioback::snddd::run_with_device`] — configuration, mixer, backend and the loop are
//! the library's, tested on the host — with the one platform-specific piece, opening a
//! passed-through Intel HDA controller on the runtime's PCI layer (`minios_rt::pci`,
//! `minios_rt::hda`) under the library's [`RingSink`], and shuts the domain down as it says.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;

use audioback::device::ring::{ring_bytes, RingDma, RingSink, RingSource};
use audioback::device::DeviceParams;
use audioback::snddd::Card;
use minios::executor::Executor;
use minios::pci::{PciError, PciFrontTask};
use minios_rt::hda::stream::Stream;
use minios_rt::hda::{self, Hda};
use minios_rt::Runtime;

minios_rt::entry!(main);

/// How long pcifront's handshake with dom0's pciback may take.
const PCI_CONNECT_NS: u64 = 10_000_000_000;

fn main(rt: Runtime) {
    let reason =
        audioback::snddd::run_with_device(rt, rt.take_xenstore(), rt.cmdline(), Box::new(open));
    rt.shutdown(reason.into());
}

/// An HDA stream as the ring a [`RingSink`] fills or a [`RingSource`] reads.
struct HdaRing(Stream);

impl RingDma for HdaRing {
    fn ring_bytes(&self) -> usize {
        self.0.ring_bytes()
    }
    fn write_samples(&mut self, offset: usize, samples: &[i16]) {
        self.0.write_samples(offset, samples)
    }
    fn read_samples(&mut self, offset: usize, out: &mut [i16]) {
        self.0.read_samples(offset, out)
    }
    fn zero(&mut self, offset: usize, len: usize) {
        self.0.zero(offset, len)
    }
    fn start(&mut self) {
        self.0.start()
    }
    fn stop(&mut self) -> Result<(), String> {
        self.0.stop().map_err(|e| format!("{e}"))
    }
    fn position(&mut self) -> Option<usize> {
        self.0.position()
    }
}

/// Connects pcifront (no PCI function at all: `None`), takes the first HDA controller and
/// opens its output path and stream for `params`, and its input path and stream if it has
/// one.
fn open(
    exec: &mut Executor<Runtime>,
    params: DeviceParams,
    queue: usize,
) -> Result<Option<Card>, String> {
    let rt = *exec.platform();
    let bus = match minios_rt::pci::connect(&rt, exec.xenstore(), PCI_CONNECT_NS) {
        Ok(bus) => bus,
        Err(PciError::NoFrontend | PciError::NotPv) => return Ok(None),
        Err(e) => return Err(format!("{e}")),
    };
    let f = bus
        .functions()
        .iter()
        .find(|f| hda::drives(f.class))
        .copied()
        .ok_or_else(|| {
            format!(
                "none of the {} PCI function(s) given to this domain is an HDA controller",
                bus.functions().len()
            )
        })?;
    let bus = Rc::new(bus);
    // Answers the toolstack's pci-detach/destroy requests (else xl waits 10 s for us).
    exec.spawn(PciFrontTask::new(bus.clone()))
        .map_err(|e| format!("watching pcifront: {e}"))?;
    let controller = Hda::open(&bus, f.addr).map_err(|e| format!("hda {}: {e}", f.host))?;
    log::info!(
        "hda {}: controller up, codecs {:#06x}",
        f.host,
        controller.codecs()
    );
    let period_bytes = params.period_frames * 2 * usize::from(params.channels);
    let (out, inp) = controller
        .open_streams(
            params.rate,
            params.channels,
            ring_bytes(params, queue),
            period_bytes,
            true,
        )
        .map_err(|e| format!("hda {}: {e}", f.host))?;
    let sink = RingSink::new(HdaRing(out), params, queue)?;
    let source = match inp {
        Some(s) => Some(Box::new(
            RingSource::new(HdaRing(s), params, queue)?.with_name(format!("hda {} input", f.host)),
        ) as _),
        None => None,
    };
    Ok(Some(Card {
        sink: Box::new(sink),
        source,
    }))
}
