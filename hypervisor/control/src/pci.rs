//! PCI functions as an appliance names them — a PCI address (`0000:03:00.0`, or `03:00.0` in
//! PCI segment 0) or a vendor:device ID (`8086:10fb`; `8086:10fb#2` is the second function
//! with that ID, in the order `lspci -d 8086:10fb` lists them) — and dom0's PCI bus (sysfs),
//! against which IDs are resolved to addresses.

use std::fmt;
use std::path::PathBuf;

/// A PCI function address: segment, bus, device, function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    /// PCI segment (domain).
    pub segment: u16,
    /// Bus.
    pub bus: u8,
    /// Device (0–0x1f).
    pub device: u8,
    /// Function (0–7).
    pub function: u8,
}

impl Bdf {
    /// Parses `SSSS:BB:DD.F` or `BB:DD.F` (segment 0), hexadecimal, any case.
    pub fn parse(s: &str) -> Option<Bdf> {
        let s = s.trim();
        let (rest, function) = s.rsplit_once('.')?;
        let parts: Vec<&str> = rest.split(':').collect();
        let (segment, bus, device) = match parts.as_slice() {
            [b, d] => ("0", *b, *d),
            [s, b, d] => (*s, *b, *d),
            _ => return None,
        };
        let hex = |t: &str, max_len: usize| -> Option<u32> {
            if t.is_empty() || t.len() > max_len || !t.chars().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            u32::from_str_radix(t, 16).ok()
        };
        let bdf = Bdf {
            segment: hex(segment, 4)? as u16,
            bus: hex(bus, 2)? as u8,
            device: hex(device, 2)? as u8,
            function: hex(function, 1)? as u8,
        };
        (bdf.device <= 0x1f && bdf.function <= 7).then_some(bdf)
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.segment, self.bus, self.device, self.function
        )
    }
}

/// A PCI vendor:device ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PciId {
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
}

impl PciId {
    /// Parses `VVVV:DDDD` (four hexadecimal digits each).
    pub fn parse(s: &str) -> Option<PciId> {
        let (v, d) = s.trim().split_once(':')?;
        let hex4 = |t: &str| {
            (t.len() == 4 && t.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| u16::from_str_radix(t, 16).ok())
                .flatten()
        };
        Some(PciId {
            vendor: hex4(v)?,
            device: hex4(d)?,
        })
    }
}

impl fmt::Display for PciId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor, self.device)
    }
}

/// The function an xl.cfg `pci=` entry names: `BDF[@VSLOT][,KEY=VALUE…]` or `bdf=BDF,…`
/// (`None` for whole slots, `03:00.*`, and entries by name).
pub fn xl_pci_address(entry: &str) -> Option<Bdf> {
    entry
        .split(',')
        .map(str::trim)
        .enumerate()
        .find_map(|(i, t)| match t.strip_prefix("bdf=") {
            Some(b) => Some(b),
            None if i == 0 && !t.contains('=') => t.split('@').next(),
            None => None,
        })
        .and_then(Bdf::parse)
}

/// One PCI function dom0 sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciFunction {
    /// Its address.
    pub bdf: Bdf,
    /// Its vendor:device ID.
    pub id: PciId,
}

/// How an appliance names a device a driver domain owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// By address.
    Bdf(Bdf),
    /// By vendor:device ID; `nth` (1-based, in address order) picks one of several.
    Id {
        /// The ID.
        id: PciId,
        /// Which match, when several functions have the ID.
        nth: Option<usize>,
    },
}

impl DeviceSpec {
    /// Parses an entry of `devices`; the error says which forms exist.
    pub fn parse(s: &str) -> Result<DeviceSpec, String> {
        let t = s.trim();
        if let Some(bdf) = Bdf::parse(t) {
            return Ok(DeviceSpec::Bdf(bdf));
        }
        let (id, nth) = match t.split_once('#') {
            Some((id, n)) => (id, Some(n)),
            None => (t, None),
        };
        let nth = match nth {
            None => None,
            Some(n) => match n.parse::<usize>() {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    return Err(format!(
                        "device `{s}`: `#{n}` must be a number from 1 (which of the functions \
                         with that vendor:device ID, in `lspci -d` order)"
                    ))
                }
            },
        };
        match PciId::parse(id) {
            Some(id) => Ok(DeviceSpec::Id { id, nth }),
            None => Err(format!(
                "device `{s}` is neither a PCI address (0000:03:00.0 or 03:00.0) nor a \
                 vendor:device ID (8086:10fb, or 8086:10fb#2 for the second of several)"
            )),
        }
    }

    /// The address this entry names among dom0's PCI functions.
    pub fn resolve(&self, functions: &[PciFunction]) -> Result<Bdf, String> {
        match *self {
            DeviceSpec::Bdf(bdf) => {
                if functions.iter().any(|f| f.bdf == bdf) {
                    Ok(bdf)
                } else {
                    Err(format!(
                        "device {bdf} does not exist in dom0 (no {SYSFS_PCI}/{bdf}; `lspci -D` \
                         lists the PCI devices)"
                    ))
                }
            }
            DeviceSpec::Id { id, nth } => {
                let mut found: Vec<Bdf> = functions
                    .iter()
                    .filter(|f| f.id == id)
                    .map(|f| f.bdf)
                    .collect();
                found.sort();
                let listed = || {
                    found
                        .iter()
                        .enumerate()
                        .map(|(i, b)| format!("#{} {b}", i + 1))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                match (nth, found.len()) {
                    (_, 0) => Err(format!(
                        "device {self} matches no PCI function in dom0 (`lspci -nn` shows \
                         vendor:device IDs)"
                    )),
                    (None, 1) => Ok(found[0]),
                    (None, n) => Err(format!(
                        "device {id} matches {n} PCI functions in dom0 ({}): write \
                         \"{id}#1\" … \"{id}#{n}\" (in that order) or the address of the one \
                         it owns",
                        listed()
                    )),
                    (Some(k), n) if k <= n => Ok(found[k - 1]),
                    (Some(_), n) => Err(format!(
                        "device {self}: only {n} PCI function(s) in dom0 have ID {id} ({})",
                        listed()
                    )),
                }
            }
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Bdf(b) => write!(f, "{b}"),
            DeviceSpec::Id { id, nth: None } => write!(f, "{id}"),
            DeviceSpec::Id { id, nth: Some(n) } => write!(f, "{id}#{n}"),
        }
    }
}

/// Where dom0's kernel lists PCI functions.
pub const SYSFS_PCI: &str = "/sys/bus/pci/devices";

/// dom0's PCI bus (a trait so tests need no hardware).
pub trait PciBus {
    /// Every PCI function dom0 sees.
    fn functions(&self) -> Result<Vec<PciFunction>, String>;
}

/// The real bus: `<root>/<BDF>/{vendor,device}` (root: [`SYSFS_PCI`]).
pub struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    /// dom0's sysfs.
    pub fn dom0() -> Sysfs {
        Sysfs::at(SYSFS_PCI)
    }

    /// A directory laid out like /sys/bus/pci/devices.
    pub fn at(root: impl Into<PathBuf>) -> Sysfs {
        Sysfs { root: root.into() }
    }
}

impl PciBus for Sysfs {
    fn functions(&self) -> Result<Vec<PciFunction>, String> {
        let dir = std::fs::read_dir(&self.root)
            .map_err(|e| format!("cannot list {}: {e}", self.root.display()))?;
        let mut out = Vec::new();
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(bdf) = name.to_str().and_then(Bdf::parse) else {
                continue;
            };
            let read = |what: &str| {
                let p = entry.path().join(what);
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                let t = text.trim();
                u16::from_str_radix(t.strip_prefix("0x").unwrap_or(t), 16)
                    .map_err(|_| format!("{}: `{t}` is not a PCI ID", p.display()))
            };
            out.push(PciFunction {
                bdf,
                id: PciId {
                    vendor: read("vendor")?,
                    device: read("device")?,
                },
            });
        }
        out.sort_by_key(|f| f.bdf);
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A PCI bus in memory.
    pub(crate) struct MemBus(pub Vec<PciFunction>);

    impl PciBus for MemBus {
        fn functions(&self) -> Result<Vec<PciFunction>, String> {
            Ok(self.0.clone())
        }
    }

    pub(crate) fn function(bdf: &str, id: &str) -> PciFunction {
        PciFunction {
            bdf: Bdf::parse(bdf).unwrap(),
            id: PciId::parse(id).unwrap(),
        }
    }

    /// The testbed's bus: a host bridge, two virtio-net functions and an xHCI controller.
    pub(crate) fn bus() -> MemBus {
        MemBus(vec![
            function("0000:00:00.0", "8086:29c0"),
            function("0000:00:10.0", "1af4:1000"),
            function("0000:00:11.0", "1af4:1000"),
            function("0000:00:12.0", "1b36:000d"),
        ])
    }

    #[test]
    fn parses_and_prints_addresses() {
        let b = Bdf::parse("0000:03:1f.7").unwrap();
        assert_eq!((b.segment, b.bus, b.device, b.function), (0, 3, 0x1f, 7));
        assert_eq!(Bdf::parse("03:00.1").unwrap().to_string(), "0000:03:00.1");
        assert_eq!(
            Bdf::parse("00AB:FF:0A.3").unwrap().to_string(),
            "00ab:ff:0a.3"
        );
        for bad in [
            "03:00",
            "03:20.0",
            "03:00.8",
            "0:0:0:0.0",
            "x3:00.0",
            "03:00.0@2",
            "",
            "8086:10fb",
        ] {
            assert_eq!(Bdf::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn reads_xl_pci_entries() {
        let a = |e: &str| xl_pci_address(e).map(|b| b.to_string());
        assert_eq!(a("03:00.0").as_deref(), Some("0000:03:00.0"));
        assert_eq!(
            a("0000:03:00.1@5,permissive=1").as_deref(),
            Some("0000:03:00.1")
        );
        assert_eq!(
            a("permissive=1, bdf=03:00.2").as_deref(),
            Some("0000:03:00.2")
        );
        assert_eq!(a("03:00.*"), None);
        assert_eq!(a("name=nic0"), None);
        assert_eq!(a(""), None);
    }

    #[test]
    fn parses_device_entries() {
        assert_eq!(
            DeviceSpec::parse("00:04.0").unwrap(),
            DeviceSpec::Bdf(Bdf::parse("0000:00:04.0").unwrap())
        );
        assert_eq!(
            DeviceSpec::parse("1AF4:1000").unwrap().to_string(),
            "1af4:1000"
        );
        assert_eq!(
            DeviceSpec::parse("1af4:1000#2").unwrap().to_string(),
            "1af4:1000#2"
        );
        assert_eq!(
            DeviceSpec::parse("eth0").unwrap_err(),
            "device `eth0` is neither a PCI address (0000:03:00.0 or 03:00.0) nor a \
             vendor:device ID (8086:10fb, or 8086:10fb#2 for the second of several)"
        );
        assert!(DeviceSpec::parse("1af4:1000#0")
            .unwrap_err()
            .starts_with("device `1af4:1000#0`: `#0` must be a number from 1"));
    }

    #[test]
    fn resolves_against_dom0s_functions() {
        let f = bus().0;
        let r = |s: &str| DeviceSpec::parse(s).unwrap().resolve(&f);
        assert_eq!(r("00:12.0").unwrap().to_string(), "0000:00:12.0");
        assert_eq!(r("1b36:000d").unwrap().to_string(), "0000:00:12.0");
        assert_eq!(r("1af4:1000#2").unwrap().to_string(), "0000:00:11.0");
        assert_eq!(
            r("0000:00:1f.7").unwrap_err(),
            "device 0000:00:1f.7 does not exist in dom0 (no /sys/bus/pci/devices/0000:00:1f.7; \
             `lspci -D` lists the PCI devices)"
        );
        assert_eq!(
            r("8086:10fb").unwrap_err(),
            "device 8086:10fb matches no PCI function in dom0 (`lspci -nn` shows vendor:device \
             IDs)"
        );
        assert_eq!(
            r("1af4:1000").unwrap_err(),
            "device 1af4:1000 matches 2 PCI functions in dom0 (#1 0000:00:10.0, #2 \
             0000:00:11.0): write \"1af4:1000#1\" … \"1af4:1000#2\" (in that order) or the \
             address of the one it owns"
        );
        assert_eq!(
            r("1af4:1000#3").unwrap_err(),
            "device 1af4:1000#3: only 2 PCI function(s) in dom0 have ID 1af4:1000 (#1 \
             0000:00:10.0, #2 0000:00:11.0)"
        );
    }

    #[test]
    fn reads_sysfs() {
        let root = std::env::temp_dir().join(format!("xddctl-sysfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (bdf, v, d) in [
            ("0000:00:11.0", "0x1af4", "0x1000"),
            ("0000:00:10.0", "0x1af4", "0x1000"),
            ("0000:00:00.0", "0x8086", "0x29c0"),
        ] {
            let dir = root.join(bdf);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("vendor"), format!("{v}\n")).unwrap();
            std::fs::write(dir.join("device"), format!("{d}\n")).unwrap();
        }
        std::fs::create_dir_all(root.join("not-a-device")).unwrap();
        let f = Sysfs::at(&root).functions().unwrap();
        let shown: Vec<String> = f.iter().map(|f| format!("{} {}", f.bdf, f.id)).collect();
        assert_eq!(
            shown,
            [
                "0000:00:00.0 8086:29c0",
                "0000:00:10.0 1af4:1000",
                "0000:00:11.0 1af4:1000"
            ]
        );
        assert!(Sysfs::at(root.join("nope"))
            .functions()
            .unwrap_err()
            .starts_with("cannot list "));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
