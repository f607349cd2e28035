//! The uplink on a network device this domain owns ([`NetDevice`]: virtio-net on a
//! passed-through function, a fake in tests).
//!
//! Received frames enter the switch as the device reports them (a checksum it verified is
//! passed on as validated, a blank one as blank — after the switch's usual checks); frames
//! the switch queued for the port go out with the offloads the device announced, so the
//! switch segments and checksums in software only what the device cannot. A device that
//! fails is logged once and detached; the guests keep their switch.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use minios::netdev::{NetDevice, NetError, RxCsum, TxGso, TxMeta};
use minios::pci::{PciAddress, PciFunction};

use super::{UplinkCounters, UplinkPort};
use crate::frame;
use crate::packet::{Caps, Csum, Packet};
use crate::switch::{PortId, Switch};
use crate::wire::GsoKind;

/// PCI class of network controllers (the high byte of the class code).
const CLASS_NETWORK: u32 = 0x02;

/// Picks the uplink among the functions given to the domain: the one at `want` (its dom0
/// address, as in xl.cfg), or the first network controller. The error names what was
/// there instead.
pub fn select_nic(
    functions: &[PciFunction],
    want: Option<PciAddress>,
) -> Result<PciFunction, String> {
    let list = || {
        let names: Vec<String> = functions
            .iter()
            .map(|f| {
                format!(
                    "{} ({:04x}:{:04x} class {:06x})",
                    f.host, f.vendor, f.device, f.class
                )
            })
            .collect();
        if names.is_empty() {
            String::from("none")
        } else {
            names.join(", ")
        }
    };
    let found = match want {
        Some(a) => functions.iter().find(|f| f.host == a),
        None => functions.iter().find(|f| f.class >> 16 == CLASS_NETWORK),
    };
    found.copied().ok_or_else(|| match want {
        Some(a) => format!(
            "no PCI function {a} was given to this domain (it has: {})",
            list()
        ),
        None => format!(
            "no network controller among the PCI functions given to this domain ({})",
            list()
        ),
    })
}

/// Frames taken from the device per pass.
const RX_PER_POLL: usize = 128;
/// Frames handed to the device per pass (one doorbell for all of them).
const TX_PER_POLL: usize = 128;
/// A device whose transmit queue stays full this long while frames wait has stopped.
pub const TX_STALL_NS: u64 = 5_000_000_000;

/// An uplink on a device.
pub struct NicUplink<D: NetDevice> {
    dev: D,
    broken: Option<String>,
    /// Since when frames wait and the device takes none (its queue full).
    stalled_since: Option<u64>,
    /// Interrupts taken.
    pub interrupts: u64,
    /// Frames the device handed us that the switch refused as malformed.
    pub rx_malformed: u64,
}

impl<D: NetDevice> NicUplink<D> {
    /// Wraps an initialised device.
    pub fn new(dev: D) -> Self {
        Self {
            dev,
            broken: None,
            stalled_since: None,
            interrupts: 0,
            rx_malformed: 0,
        }
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// What the port accepts: the device's frame size and offloads.
    pub fn caps(&self) -> Caps {
        let o = self.dev.offloads();
        Caps {
            max_frame: self.dev.max_frame(),
            gso_tcpv4: o.tx_tso4,
            gso_tcpv6: o.tx_tso6,
            partial_ipv4: o.tx_csum,
            partial_ipv6: o.tx_csum,
        }
    }

    fn fail(&mut self, e: NetError) {
        if self.broken.is_none() {
            self.broken = Some(format!("{e}"));
        }
    }

    fn poll_inner(
        &mut self,
        switch: &mut Switch,
        port: PortId,
        now: u64,
    ) -> Result<bool, NetError> {
        if self.dev.take_interrupt() {
            self.interrupts += 1;
        }
        self.dev.poll()?;
        let mut malformed = 0;
        let received = self.dev.receive(RX_PER_POLL, &mut |f| {
            // Copied once out of the device's buffer; only the copy is examined.
            let mut pkt = Packet::new(f.data.to_vec());
            pkt.csum = match f.csum {
                RxCsum::Unverified => Csum::Unverified,
                RxCsum::Valid => Csum::Validated,
                RxCsum::Partial { .. } => Csum::Partial,
            };
            if pkt.validate_offloads().is_ok() {
                switch.ingress(port, pkt, now);
            } else {
                malformed += 1;
                if let Some(c) = switch.counters_mut(port) {
                    c.in_errors += 1;
                }
            }
        })?;
        self.rx_malformed += malformed;
        let mut sent = 0;
        let mut full = false;
        while sent < TX_PER_POLL {
            let Some(pkt) = switch.peek(port) else { break };
            let meta = tx_meta(pkt);
            match self.dev.transmit(&pkt.data, &meta) {
                Ok(()) => {
                    let len = pkt.len() as u64;
                    switch.pop(port);
                    if let Some(c) = switch.counters_mut(port) {
                        c.out_packets += 1;
                        c.out_bytes += len;
                    }
                    sent += 1;
                }
                Err(NetError::Full) => {
                    full = true;
                    break;
                }
                Err(NetError::Refused) => {
                    switch.pop(port);
                    if let Some(c) = switch.counters_mut(port) {
                        c.out_dropped += 1;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.dev.flush()?;
        // A device that takes nothing while frames wait has stopped (its transmissions never
        // complete): after a while it is failed, like Linux's transmit watchdog would reset it.
        if full && sent == 0 {
            let since = *self.stalled_since.get_or_insert(now);
            if now.saturating_sub(since) >= TX_STALL_NS {
                return Err(NetError::Device(format!(
                    "transmit queue full for {} s: the device stopped sending",
                    TX_STALL_NS / 1_000_000_000
                )));
            }
        } else if sent > 0 || switch.queued(port) == 0 {
            self.stalled_since = None;
        }
        Ok(received == RX_PER_POLL || (sent == TX_PER_POLL && switch.queued(port) > 0))
    }
}

/// The offload requests for a queued packet (the switch only queues for this port what its
/// [`Caps`] take, so these are offloads the device announced).
fn tx_meta(pkt: &Packet) -> TxMeta {
    if pkt.csum != Csum::Partial {
        return TxMeta::default();
    }
    let Ok(info) = frame::locate_l4(&pkt.data) else {
        return TxMeta::default();
    };
    let start = info.l4_off as u16;
    let offset = (info.csum_off() - info.l4_off) as u16;
    TxMeta {
        csum: Some((start, offset)),
        gso: pkt.gso.map(|g| TxGso {
            ipv6: g.kind == GsoKind::TcpV6,
            mss: g.mss,
            hdr_len: info.headers_len() as u16,
        }),
    }
}

impl<D: NetDevice> UplinkPort for NicUplink<D> {
    fn poll(&mut self, switch: &mut Switch, port: PortId, now: u64) -> bool {
        if self.broken.is_some() {
            return false;
        }
        match self.poll_inner(switch, port, now) {
            Ok(more) => more,
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    fn counters(&self) -> UplinkCounters {
        UplinkCounters {
            interrupts: self.interrupts,
            rx_malformed: self.rx_malformed,
        }
    }
}
