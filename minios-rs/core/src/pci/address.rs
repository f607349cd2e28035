//! PCI function addresses: `segment:bus:device.function`, as xl, sysfs and pciback write them.

use core::fmt;
use core::str::FromStr;

/// The address of one PCI function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    /// PCI segment (domain).
    pub segment: u16,
    /// Bus.
    pub bus: u8,
    /// Device (0–31).
    pub device: u8,
    /// Function (0–7).
    pub function: u8,
}

impl PciAddress {
    /// A function address; `device` and `function` are masked to their 5 and 3 bits.
    pub const fn new(segment: u16, bus: u8, device: u8, function: u8) -> Self {
        Self {
            segment,
            bus,
            device: device & 0x1f,
            function: function & 7,
        }
    }

    /// `device << 3 | function`, as pcifront operations carry it.
    pub const fn devfn(&self) -> u32 {
        ((self.device as u32) << 3) | self.function as u32
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.segment, self.bus, self.device, self.function
        )
    }
}

/// Why a PCI address did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAddress;

impl fmt::Display for BadAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a PCI address (SSSS:BB:DD.F or BB:DD.F, hexadecimal)")
    }
}

fn hex<const MAX: u32>(s: &str, digits: usize) -> Result<u32, BadAddress> {
    if s.is_empty() || s.len() > digits || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BadAddress);
    }
    u32::from_str_radix(s, 16)
        .ok()
        .filter(|&v| v <= MAX)
        .ok_or(BadAddress)
}

impl FromStr for PciAddress {
    type Err = BadAddress;

    /// Parses `SSSS:BB:DD.F` or `BB:DD.F` (segment 0); pciback's `SSSS:BB:DD.FF` too.
    fn from_str(s: &str) -> Result<Self, BadAddress> {
        let (slot, func) = s.rsplit_once('.').ok_or(BadAddress)?;
        let mut parts = slot.rsplitn(3, ':');
        let dev = parts.next().ok_or(BadAddress)?;
        let bus = parts.next().ok_or(BadAddress)?;
        let seg = parts.next().unwrap_or("0");
        Ok(Self {
            segment: hex::<0xffff>(seg, 4)? as u16,
            bus: hex::<0xff>(bus, 2)? as u8,
            device: hex::<0x1f>(dev, 2)? as u8,
            // pciback writes the function with two digits (`0000:00:00.00`).
            function: hex::<7>(func, 2)? as u8,
        })
    }
}
