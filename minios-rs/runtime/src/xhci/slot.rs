//! A device slot: its output and input contexts (xHCI 6.2), its endpoints and their
//! transfer rings, and the endpoints of a configuration descriptor.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use super::mem::{Mem, Ring};
use super::xfer::Td;
use super::{EndpointKind, Speed};

/// One endpoint of a slot.
pub struct Endpoint {
    /// Its type.
    pub kind: EndpointKind,
    /// Its transfer ring.
    pub ring: Ring,
    /// wMaxPacketSize (packet bytes).
    pub max_packet: u16,
    /// Extra packets per service interval (high-speed high-bandwidth periodic endpoints).
    pub burst: u8,
    /// Transfers on the ring, oldest first.
    pub tds: VecDeque<Td>,
}

/// An enabled device slot.
pub struct Slot {
    /// The root port it hangs off.
    pub port: u8,
    /// Its speed.
    pub speed: Speed,
    /// The output device context (DCBAA points at it).
    pub out: Mem,
    /// The input context for commands.
    pub input: Mem,
    /// Context size (32 or 64 bytes).
    pub csz: usize,
    /// Endpoints by device context index (1: endpoint 0).
    pub eps: BTreeMap<u8, Endpoint>,
    /// bNumConfigurations from the device descriptor.
    pub configs: u8,
    /// The active configuration's whole descriptor (empty when unconfigured).
    pub config: Vec<u8>,
    /// Interfaces set to an alternate setting other than 0 (`SET_INTERFACE`).
    pub alts: BTreeMap<u8, u8>,
}

/// The device context index of endpoint `number` in direction `is_in` (endpoint 0: 1).
pub fn dci(number: u8, is_in: bool) -> u8 {
    if number == 0 {
        1
    } else {
        number * 2 + u8::from(is_in)
    }
}

/// xHCI endpoint type field (6.2.3): 4 control, 1–3 iso/bulk/interrupt OUT, 5–7 IN.
fn ep_type(kind: EndpointKind, is_in: bool) -> u32 {
    let base = match kind {
        EndpointKind::Control => return 4,
        EndpointKind::Isochronous => 1,
        EndpointKind::Bulk => 2,
        EndpointKind::Interrupt => 3,
    };
    base + if is_in { 4 } else { 0 }
}

/// PSIV of a speed (the default protocol speed IDs).
pub fn psiv(speed: Speed) -> u32 {
    match speed {
        Speed::Full => 1,
        Speed::Low => 2,
        Speed::High => 3,
        Speed::Super => 4,
    }
}

/// An endpoint as a configuration descriptor names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpDesc {
    /// Endpoint number.
    pub number: u8,
    /// Device to host.
    pub is_in: bool,
    /// Transfer type.
    pub kind: EndpointKind,
    /// wMaxPacketSize as sent.
    pub max_packet: u16,
    /// bInterval.
    pub interval: u8,
}

/// The endpoints of alternate setting 0 of every interface in a configuration descriptor
/// (bounds-checked: a malformed descriptor is an error, not a panic).
pub fn parse_config(desc: &[u8]) -> Result<Vec<EpDesc>, String> {
    Ok(endpoints(desc, |_, alt| alt == 0)?.0)
}

/// The endpoints of alternate setting `alt` of interface `iface` in a configuration
/// descriptor; `None` if the descriptor has no such setting.
pub fn parse_alternate(desc: &[u8], iface: u8, alt: u8) -> Result<Option<Vec<EpDesc>>, String> {
    let (eps, found) = endpoints(desc, |i, a| i == iface && a == alt)?;
    Ok(found.then_some(eps))
}

/// The endpoints of the interface settings `pick` (interface number, alternate setting)
/// chooses, and whether it chose any setting at all.
fn endpoints(desc: &[u8], pick: impl Fn(u8, u8) -> bool) -> Result<(Vec<EpDesc>, bool), String> {
    let mut eps = Vec::new();
    let mut i = 0;
    let mut picked = false;
    let mut found = false;
    while i + 2 <= desc.len() {
        let len = usize::from(desc[i]);
        if len < 2 || i + len > desc.len() {
            return Err(alloc::format!(
                "configuration descriptor: bad length {len} at {i}"
            ));
        }
        match desc[i + 1] {
            4 if len >= 9 => {
                picked = pick(desc[i + 2], desc[i + 3]);
                found |= picked;
            }
            5 if len >= 7 && picked => {
                let addr = desc[i + 2];
                let kind = match desc[i + 3] & 3 {
                    0 => EndpointKind::Control,
                    1 => EndpointKind::Isochronous,
                    2 => EndpointKind::Bulk,
                    _ => EndpointKind::Interrupt,
                };
                let number = addr & 0x0f;
                if number != 0 {
                    eps.push(EpDesc {
                        number,
                        is_in: addr & 0x80 != 0,
                        kind,
                        max_packet: u16::from_le_bytes([desc[i + 4], desc[i + 5]]),
                        interval: desc[i + 6],
                    });
                }
            }
            _ => {}
        }
        i += len;
    }
    Ok((eps, found))
}

/// The endpoint context's Interval field (6.2.3.6) from bInterval.
fn interval(speed: Speed, kind: EndpointKind, b: u8) -> u32 {
    let v = match (kind, speed) {
        (EndpointKind::Bulk | EndpointKind::Control, _) => 0,
        (EndpointKind::Interrupt, Speed::Low | Speed::Full) => {
            // Frames to a power of two of microframes.
            let frames = u32::from(b.max(1)) * 8;
            31 - frames.leading_zeros()
        }
        (EndpointKind::Isochronous, Speed::Full) => u32::from(b.clamp(1, 16)) + 2,
        _ => u32::from(b.clamp(1, 16)) - 1,
    };
    v.min(15)
}

impl Slot {
    /// Zeroes the input context.
    pub fn clear_input(&self) {
        self.input.zero(0, self.csz * 33);
    }

    /// Offset of context `index` in the input context (0: input control, 1: slot, 2…: DCI 1…).
    fn in_ctx(&self, index: usize) -> usize {
        index * self.csz
    }

    /// Sets the input control context's drop and add flags.
    pub fn set_flags(&self, drop: u32, add: u32) {
        self.input.write32(0, drop);
        self.input.write32(4, add);
    }

    /// Writes the slot context for a root-port device with `entries` context entries.
    pub fn write_slot_ctx(&self, entries: u8) {
        let s = self.in_ctx(1);
        self.input
            .write32(s, (psiv(self.speed) << 20) | (u32::from(entries) << 27));
        self.input.write32(s + 4, u32::from(self.port) << 16);
    }

    /// Writes endpoint `dci`'s context in the input context for a ring at `deq` (cycle 1).
    pub fn write_ep_ctx(
        &self,
        dci: u8,
        kind: EndpointKind,
        is_in: bool,
        mp: u16,
        b_interval: u8,
        deq: u64,
    ) {
        let e = self.in_ctx(usize::from(dci) + 1);
        let max_packet = u32::from(mp & 0x7ff);
        let periodic = matches!(kind, EndpointKind::Interrupt | EndpointKind::Isochronous);
        let burst = u32::from(self.burst(kind, mp));
        self.input
            .write32(e, interval(self.speed, kind, b_interval) << 16);
        let cerr = if kind == EndpointKind::Isochronous {
            0
        } else {
            3
        };
        self.input.write32(
            e + 4,
            (cerr << 1) | (ep_type(kind, is_in) << 3) | (burst << 8) | (max_packet << 16),
        );
        self.input.write64(e + 8, deq | 1);
        let esit = if periodic {
            max_packet * (burst + 1)
        } else {
            0
        };
        let avg = match kind {
            EndpointKind::Control => 8,
            EndpointKind::Interrupt => 1024,
            _ => 3072,
        };
        self.input.write32(e + 16, avg | (esit << 16));
    }

    /// Extra packets per service interval of an endpoint of this device: a high-speed
    /// periodic endpoint's wMaxPacketSize bits 12:11 (high bandwidth), else 0.
    pub fn burst(&self, kind: EndpointKind, mp: u16) -> u8 {
        let periodic = matches!(kind, EndpointKind::Interrupt | EndpointKind::Isochronous);
        if periodic && self.speed == Speed::High {
            ((mp >> 11) & 3) as u8
        } else {
            0
        }
    }

    /// The endpoint's TR dequeue pointer in the output context.
    pub fn ep_dequeue(&self, dci: u8) -> u64 {
        let e = usize::from(dci) * self.csz;
        (u64::from(self.out.read32(e + 8)) | (u64::from(self.out.read32(e + 12)) << 32)) & !0xf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mass-storage configuration: interface 0 alt 0 with bulk IN 1 and OUT 2, and an
    /// alternate setting 1 whose interrupt endpoint must not be taken.
    const STORAGE: &[u8] = &[
        9, 2, 46, 0, 1, 1, 0, 0x80, 50, // configuration
        9, 4, 0, 0, 2, 8, 6, 80, 0, // interface 0 alt 0
        7, 5, 0x81, 2, 0, 2, 0, // bulk IN 1, 512
        7, 5, 0x02, 2, 0, 2, 0, // bulk OUT 2, 512
        9, 4, 0, 1, 1, 3, 0, 0, 0, // interface 0 alt 1
        7, 5, 0x83, 3, 8, 0, 4, // interrupt IN 3 (alt 1 only)
    ];

    #[test]
    fn parses_alternate_setting_zero_endpoints() {
        let eps = parse_config(STORAGE).unwrap();
        assert_eq!(eps.len(), 2);
        assert_eq!(
            (eps[0].number, eps[0].is_in, eps[0].kind),
            (1, true, EndpointKind::Bulk)
        );
        assert_eq!(eps[0].max_packet, 512);
        assert_eq!((eps[1].number, eps[1].is_in), (2, false));
    }

    #[test]
    fn parses_an_alternate_settings_endpoints() {
        let alt1 = parse_alternate(STORAGE, 0, 1).unwrap().unwrap();
        assert_eq!(alt1.len(), 1);
        assert_eq!(
            (
                alt1[0].number,
                alt1[0].is_in,
                alt1[0].kind,
                alt1[0].interval
            ),
            (3, true, EndpointKind::Interrupt, 4)
        );
        assert_eq!(parse_alternate(STORAGE, 0, 0).unwrap().unwrap().len(), 2);
        assert_eq!(parse_alternate(STORAGE, 0, 2).unwrap(), None);
        assert_eq!(parse_alternate(STORAGE, 1, 0).unwrap(), None);
        // An audio streaming interface: alt 0 has no endpoints, alt 1 an isochronous OUT.
        const AUDIO: &[u8] = &[
            9, 2, 34, 0, 1, 1, 0, 0x80, 50, // configuration
            9, 4, 1, 0, 0, 1, 2, 0, 0, // interface 1 alt 0: no endpoints
            9, 4, 1, 1, 1, 1, 2, 0, 0, // interface 1 alt 1
            9, 5, 0x01, 0x0d, 0xc0, 0, 1, 0, 0, // iso OUT 1, 192 bytes, every frame
        ];
        assert_eq!(parse_alternate(AUDIO, 1, 0).unwrap(), Some(Vec::new()));
        let iso = parse_alternate(AUDIO, 1, 1).unwrap().unwrap();
        assert_eq!(
            (iso[0].number, iso[0].is_in, iso[0].kind, iso[0].max_packet),
            (1, false, EndpointKind::Isochronous, 192)
        );
        assert!(parse_config(AUDIO).unwrap().is_empty());
    }

    #[test]
    fn refuses_malformed_descriptors() {
        // A descriptor claiming more bytes than there are, and one of length 0 (a loop).
        let mut long = STORAGE.to_vec();
        long[18] = 40;
        assert!(parse_config(&long).is_err());
        let mut zero = STORAGE.to_vec();
        zero[9] = 0;
        assert!(parse_config(&zero).is_err());
        assert!(parse_config(&STORAGE[..20]).is_err());
    }

    #[test]
    fn context_indexes_and_intervals() {
        assert_eq!(dci(0, false), 1);
        assert_eq!(dci(0, true), 1);
        assert_eq!(dci(1, true), 3);
        assert_eq!(dci(2, false), 4);
        assert_eq!(dci(15, true), 31);
        assert_eq!(interval(Speed::High, EndpointKind::Bulk, 255), 0);
        // Full-speed interrupt every 10 frames: 80 microframes, rounded down to 2^6.
        assert_eq!(interval(Speed::Full, EndpointKind::Interrupt, 10), 6);
        // High-speed interrupt bInterval 4: 2^3 microframes.
        assert_eq!(interval(Speed::High, EndpointKind::Interrupt, 4), 3);
        assert_eq!(interval(Speed::High, EndpointKind::Interrupt, 0), 0);
        assert_eq!(interval(Speed::High, EndpointKind::Interrupt, 255), 15);
    }
}
