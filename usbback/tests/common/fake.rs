//! A fake USB bus behind [`UsbHost`]: devices with mass-storage-like descriptors (one
//! interface, bulk IN 1 / bulk OUT 2, plus an interrupt IN 3), whose bulk endpoints are a
//! loopback (what is written to OUT 2 is read back from IN 1) and whose interrupt endpoint
//! completes only when the test posts data. The test keeps a handle ([`Bus`]) to attach and
//! detach devices and to make them stall or babble.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use usbback::host::*;

/// The device descriptor (USB 2.0, vendor 0x46f4 product 0x0001, one configuration).
pub const DEVICE_DESCRIPTOR: [u8; 18] = [
    18, 1, 0x00, 0x02, 0, 0, 0, 64, 0xf4, 0x46, 0x01, 0x00, 0x00, 0x01, 1, 2, 3, 1,
];

/// Configuration 1: interface 0 mass storage (8/6/0x50: bulk IN 0x81, bulk OUT 0x02,
/// interrupt IN 0x83), interface 1 audio streaming (1/2/0: isochronous OUT 0x04, IN 0x85).
pub fn config_descriptor() -> Vec<u8> {
    let mut d = vec![9, 2, 0, 0, 2, 1, 0, 0x80, 50];
    d.extend([9, 4, 0, 0, 3, 8, 6, 0x50, 0]);
    d.extend([7, 5, 0x81, 2, 0x00, 0x02, 0]);
    d.extend([7, 5, 0x02, 2, 0x00, 0x02, 0]);
    d.extend([7, 5, 0x83, 3, 8, 0, 4]);
    d.extend([9, 4, 1, 0, 2, 1, 2, 0, 0]);
    d.extend([7, 5, 0x04, 1, 0xc0, 0, 1]);
    d.extend([7, 5, 0x85, 1, 0xc0, 0, 1]);
    let len = d.len() as u16;
    d[2..4].copy_from_slice(&len.to_le_bytes());
    d
}

#[derive(Default)]
pub struct FakeDevice {
    pub path: String,
    pub speed: Option<Speed>,
    pub enabled: bool,
    pub configuration: u8,
    /// Bulk loopback contents.
    pub fifo: VecDeque<u8>,
    /// The next bulk IN transfer ends in babble.
    pub babble_next: bool,
    /// The next bulk IN transfer hands back one byte more than asked, as success (a faulty
    /// controller; the backend must not pass it on).
    pub overrun_next: bool,
    /// Endpoints that stall.
    pub stalled: BTreeSet<u8>,
    /// Interrupt IN transfers waiting for data.
    pub waiting: Vec<Transfer>,
    /// Isochronous OUT packets received (endpoint 4), in order.
    pub iso_sink: Vec<Vec<u8>>,
    /// Isochronous IN packets (endpoint 5) that fail with a bus error, by index in the URB.
    pub iso_fail: BTreeSet<usize>,
}

#[derive(Default)]
pub struct BusState {
    pub devices: BTreeMap<HostDeviceId, FakeDevice>,
    pub events: VecDeque<HostEvent>,
    pub enables: u32,
    /// `enable` fails (a device that does not take an address).
    pub fail_enable: bool,
    pub cancels: Vec<u64>,
    pub submitted: u64,
    /// The driver domain stopped the controller.
    pub stopped: bool,
    next_id: HostDeviceId,
}

/// The test's handle on the bus.
#[derive(Clone, Default)]
pub struct Bus(pub Rc<RefCell<BusState>>);

impl Bus {
    pub fn new() -> Self {
        Self::default()
    }

    /// A controller driver over this bus for the backend.
    pub fn host(&self) -> Box<dyn UsbHost> {
        Box::new(FakeHost(self.clone()))
    }

    /// Plugs a device in at `path`; returns its id.
    pub fn attach(&self, path: &str, speed: Speed) -> HostDeviceId {
        let mut s = self.0.borrow_mut();
        s.next_id += 1;
        let id = s.next_id;
        s.devices.insert(
            id,
            FakeDevice {
                path: path.into(),
                speed: Some(speed),
                ..Default::default()
            },
        );
        s.events.push_back(HostEvent::Attached {
            device: id,
            path: path.into(),
            speed,
        });
        id
    }

    /// Unplugs a device: its waiting transfers are dropped.
    pub fn detach(&self, id: HostDeviceId) {
        let mut s = self.0.borrow_mut();
        s.devices.remove(&id);
        s.events.push_back(HostEvent::Detached { device: id });
    }

    pub fn with<R>(&self, id: HostDeviceId, f: impl FnOnce(&mut FakeDevice) -> R) -> R {
        f(self.0.borrow_mut().devices.get_mut(&id).expect("device"))
    }

    /// Completes the device's oldest waiting interrupt transfer with `data`.
    pub fn interrupt(&self, id: HostDeviceId, data: &[u8]) -> bool {
        let mut s = self.0.borrow_mut();
        let Some(t) = s.devices.get_mut(&id).and_then(|d| {
            if d.waiting.is_empty() {
                None
            } else {
                Some(d.waiting.remove(0))
            }
        }) else {
            return false;
        };
        let n = data.len().min(t.in_len);
        s.events.push_back(HostEvent::Completed(Completion {
            device: id,
            tag: t.tag,
            status: TransferStatus::Ok,
            data: data[..n].to_vec(),
            sent: 0,
            iso: None,
        }));
        true
    }

    pub fn enables(&self) -> u32 {
        self.0.borrow().enables
    }
}

struct FakeHost(Bus);

fn done(
    device: HostDeviceId,
    tag: u64,
    status: TransferStatus,
    data: Vec<u8>,
    sent: usize,
) -> HostEvent {
    HostEvent::Completed(Completion {
        device,
        tag,
        status,
        data,
        sent,
        iso: None,
    })
}

impl FakeDevice {
    fn control(
        &mut self,
        setup: [u8; 8],
        data: &[u8],
        in_len: usize,
    ) -> (TransferStatus, Vec<u8>, usize) {
        let value = u16::from_le_bytes([setup[2], setup[3]]);
        let w_length = usize::from(u16::from_le_bytes([setup[6], setup[7]]));
        let answer = |bytes: &[u8]| {
            let n = bytes.len().min(w_length).min(in_len);
            (TransferStatus::Ok, bytes[..n].to_vec(), 0)
        };
        match (setup[0], setup[1]) {
            // GET_DESCRIPTOR
            (0x80, 6) => match value >> 8 {
                1 => answer(&DEVICE_DESCRIPTOR),
                2 => answer(&config_descriptor()),
                _ => (TransferStatus::Stall, Vec::new(), 0),
            },
            // GET_CONFIGURATION
            (0x80, 8) => answer(&[self.configuration]),
            // GET_STATUS
            (0x80, 0) => answer(&[0, 0]),
            // SET_CONFIGURATION
            (0x00, 9) if value <= 1 => {
                self.configuration = value as u8;
                (TransferStatus::Ok, Vec::new(), 0)
            }
            // CLEAR_FEATURE(ENDPOINT_HALT)
            (0x02, 1) if value == 0 => {
                self.stalled.remove(&setup[4]);
                (TransferStatus::Ok, Vec::new(), 0)
            }
            // SET_ADDRESS must never reach the device: the backend answers it.
            (0x00, 5) => panic!("SET_ADDRESS reached the controller"),
            _ => {
                let _ = data;
                (TransferStatus::Stall, Vec::new(), 0)
            }
        }
    }
}

impl UsbHost for FakeHost {
    fn poll_event(&mut self) -> Option<HostEvent> {
        self.0 .0.borrow_mut().events.pop_front()
    }

    fn enable(&mut self, device: HostDeviceId) -> Result<(), HostError> {
        let mut s = self.0 .0.borrow_mut();
        s.enables += 1;
        if s.fail_enable {
            return Err(HostError::Failed(
                "Address Device: USB transaction error".into(),
            ));
        }
        let d = s.devices.get_mut(&device).ok_or(HostError::NoDevice)?;
        d.enabled = true;
        d.configuration = 0;
        d.fifo.clear();
        d.waiting.clear();
        Ok(())
    }

    fn endpoint(&self, device: HostDeviceId, number: u8, is_in: bool) -> Option<EndpointKind> {
        let s = self.0 .0.borrow();
        let d = s.devices.get(&device)?;
        match (number, is_in, d.configuration) {
            (0, _, _) => Some(EndpointKind::Control),
            (1, true, 1) | (2, false, 1) => Some(EndpointKind::Bulk),
            (3, true, 1) => Some(EndpointKind::Interrupt),
            (4, false, 1) | (5, true, 1) => Some(EndpointKind::Isochronous),
            _ => None,
        }
    }

    fn submit(&mut self, device: HostDeviceId, t: Transfer) -> Result<(), HostError> {
        let mut s = self.0 .0.borrow_mut();
        s.submitted += 1;
        let d = s.devices.get_mut(&device).ok_or(HostError::NoDevice)?;
        if !d.enabled {
            return Err(HostError::Failed("device not enabled".into()));
        }
        let ep_addr = t.endpoint | if t.is_in { 0x80 } else { 0 };
        let event = match t.kind {
            TransferKind::Control { setup } => {
                let (status, data, sent) = d.control(setup, &t.data, t.in_len);
                done(device, t.tag, status, data, sent.max(t.data.len()))
            }
            _ if d.stalled.contains(&ep_addr) => {
                done(device, t.tag, TransferStatus::Stall, Vec::new(), 0)
            }
            TransferKind::Bulk if t.is_in => {
                // Babble as a controller reports it: the buffer filled, then the error.
                let babble = std::mem::take(&mut d.babble_next);
                // A faulty controller: one byte too many, reported as success.
                let extra = usize::from(std::mem::take(&mut d.overrun_next));
                let n = (t.in_len + extra).min(d.fifo.len());
                let data: Vec<u8> = d.fifo.drain(..n).collect();
                let status = if babble {
                    TransferStatus::Babble
                } else {
                    TransferStatus::Ok
                };
                done(device, t.tag, status, data, 0)
            }
            TransferKind::Bulk => {
                d.fifo.extend(&t.data);
                done(device, t.tag, TransferStatus::Ok, Vec::new(), t.data.len())
            }
            TransferKind::Interrupt => {
                d.waiting.push(t);
                return Ok(());
            }
            TransferKind::Isochronous { ref packets, .. } if t.is_in => {
                // A source: packet i carries bytes i+1, one byte short on odd packets.
                let mut data = vec![0u8; t.in_len];
                let mut results = Vec::new();
                for (i, p) in packets.iter().enumerate() {
                    if d.iso_fail.contains(&i) {
                        results.push(IsoResult {
                            actual: 0,
                            status: TransferStatus::IoError,
                        });
                        continue;
                    }
                    let n = p.length.saturating_sub(i % 2);
                    data[p.offset..p.offset + n].fill(i as u8 + 1);
                    results.push(IsoResult {
                        actual: n,
                        status: TransferStatus::Ok,
                    });
                }
                HostEvent::Completed(Completion {
                    device,
                    tag: t.tag,
                    status: TransferStatus::Ok,
                    data,
                    sent: 0,
                    iso: Some((42, results)),
                })
            }
            TransferKind::Isochronous { ref packets, .. } => {
                // A sink: keeps every packet.
                let mut results = Vec::new();
                for p in packets {
                    d.iso_sink
                        .push(t.data[p.offset..p.offset + p.length].to_vec());
                    results.push(IsoResult {
                        actual: p.length,
                        status: TransferStatus::Ok,
                    });
                }
                HostEvent::Completed(Completion {
                    device,
                    tag: t.tag,
                    status: TransferStatus::Ok,
                    data: Vec::new(),
                    sent: t.data.len(),
                    iso: Some((7, results)),
                })
            }
        };
        s.events.push_back(event);
        Ok(())
    }

    fn cancel(&mut self, device: HostDeviceId, tag: u64) {
        let mut s = self.0 .0.borrow_mut();
        s.cancels.push(tag);
        if let Some(d) = s.devices.get_mut(&device) {
            d.waiting.retain(|t| t.tag != tag);
        }
    }

    fn stop(&mut self) {
        self.0 .0.borrow_mut().stopped = true;
    }
}
