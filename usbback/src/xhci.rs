//! [`UsbHost`] on `minios-rt`'s xHCI driver (unikernel builds only): its events, speeds,
//! endpoint types and statuses translated one to one; root port `N` is bus path `1-N`.
//! Isochronous transfers carry their packets to the driver and their per-packet results
//! back.

use alloc::format;

use minios_rt::xhci::{self, Xhci};

use crate::host::{
    Completion, EndpointKind, HostDeviceId, HostError, HostEvent, IsoResult, Speed, Transfer,
    TransferKind, TransferStatus, UsbHost,
};

/// The controller as the backend's host.
pub struct XhciHost(pub Xhci);

fn speed(s: xhci::Speed) -> Speed {
    match s {
        xhci::Speed::Low => Speed::Low,
        xhci::Speed::Full => Speed::Full,
        xhci::Speed::High => Speed::High,
        xhci::Speed::Super => Speed::Super,
    }
}

fn status(s: xhci::Status) -> TransferStatus {
    match s {
        xhci::Status::Ok => TransferStatus::Ok,
        xhci::Status::Stall => TransferStatus::Stall,
        xhci::Status::Babble => TransferStatus::Babble,
        xhci::Status::NoDevice => TransferStatus::NoDevice,
        xhci::Status::IoError => TransferStatus::IoError,
        xhci::Status::Cancelled => TransferStatus::Cancelled,
    }
}

fn error(e: xhci::XhciError) -> HostError {
    match e {
        xhci::XhciError::NoDevice => HostError::NoDevice,
        xhci::XhciError::Busy => HostError::Busy,
        xhci::XhciError::Failed(why) => HostError::Failed(why),
    }
}

impl UsbHost for XhciHost {
    fn poll_event(&mut self) -> Option<HostEvent> {
        Some(match self.0.poll()? {
            xhci::Event::Attached { id, port, speed: s } => HostEvent::Attached {
                device: id,
                path: format!("1-{port}"),
                speed: speed(s),
            },
            xhci::Event::Detached { id } => HostEvent::Detached { device: id },
            xhci::Event::Done {
                id,
                tag,
                status: s,
                data,
                sent,
                iso,
            } => HostEvent::Completed(Completion {
                device: id,
                tag,
                status: status(s),
                data,
                sent,
                iso: iso.map(|i| {
                    let results = i
                        .packets
                        .iter()
                        .map(|&(s, actual)| IsoResult {
                            actual,
                            status: status(s),
                        })
                        .collect();
                    (i.frame, results)
                }),
            }),
        })
    }

    fn enable(&mut self, device: HostDeviceId) -> Result<(), HostError> {
        self.0.enable(device).map_err(error)
    }

    fn endpoint(&self, device: HostDeviceId, number: u8, is_in: bool) -> Option<EndpointKind> {
        if number == 0 {
            return Some(EndpointKind::Control);
        }
        Some(match self.0.endpoint(device, number, is_in)? {
            xhci::EndpointKind::Control => EndpointKind::Control,
            xhci::EndpointKind::Isochronous => EndpointKind::Isochronous,
            xhci::EndpointKind::Bulk => EndpointKind::Bulk,
            xhci::EndpointKind::Interrupt => EndpointKind::Interrupt,
        })
    }

    fn submit(&mut self, device: HostDeviceId, t: Transfer) -> Result<(), HostError> {
        let kind = match t.kind {
            TransferKind::Control { setup } => xhci::Kind::Control(setup),
            TransferKind::Bulk => xhci::Kind::Bulk,
            TransferKind::Interrupt => xhci::Kind::Interrupt,
            TransferKind::Isochronous { interval, packets } => xhci::Kind::Isochronous {
                interval,
                packets: packets.iter().map(|p| (p.offset, p.length)).collect(),
            },
        };
        let req = xhci::Request {
            tag: t.tag,
            endpoint: t.endpoint,
            is_in: t.is_in,
            kind,
            data: t.data,
            in_len: t.in_len,
        };
        self.0.submit(device, req).map_err(error)
    }

    fn cancel(&mut self, device: HostDeviceId, tag: u64) {
        self.0.cancel(device, tag)
    }

    fn next_deadline(&self) -> Option<u64> {
        self.0.next_deadline()
    }

    fn stop(&mut self) {
        self.0.halt()
    }
}
