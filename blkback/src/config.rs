//! The driver domain's configuration, from its command line (xl.cfg `cmdline=`).
//!
//! ```text
//! blkback.vol=<name>:ram:<size>[:ro][:4k]             a RAM volume
//! blkback.vol=<name>:disk:<offset>+<size>[:ro][:4k]   a slice of the backing disk
//! blkback.vol=<name>:virtio:<offset>+<size>[:ro][:4k] a slice of the passed-through virtio-blk
//! blkback.vol=<name>:virtio:all[:ro][:4k]             the whole passed-through virtio-blk
//! blkback.vol=<name>:nvme:<offset>+<size>[:ro][:4k]   a slice of the passed-through NVMe
//! blkback.vol=<name>:nvme:all[:ro][:4k]               the whole passed-through NVMe (namespace 1)
//! blkback.disk=<devid>        which of our own xen disks backs `disk` slices (default: first)
//! blkback.queues=<n>          multi-queue-max-queues (1..=16, default 4)
//! blkback.ring-order=<n>      max-ring-page-order (0..=4, default 4)
//! blkback.indirect=<n>        feature-max-indirect-segments (0 or 11..=4096, default 256)
//! blkback.persistent=<0|1>    offer persistent grants (default 1)
//! blkback.pgrants=<n>         persistent grants kept mapped per queue (default 1056)
//! blkback.budget=<n>          requests per queue per pass (default 32)
//! blkback.bounce=<n>          pages shared with dom0 for disk slices (default 512)
//! blkback.stats_ms=<n>        per-vbd counters (and an owned device's in data/status/) in
//!                             xenstore at most every n ms (0 = never, default 1000; the
//!                             same option as netback's)
//! ```
//!
//! Sizes take `K`, `M`, `G`, `T` suffixes (binary). Volume names are what guests' xl.cfg
//! `target=` names. `4k` gives a volume 4096-byte logical sectors. Slices must be multiples of
//! 4 KiB; overlapping slices are refused here, slices beyond the disk once its size is known
//! ([`Config::check_disk`], [`Config::fit_device`]). Every error names the offending option.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use minios::options::{options, parse_size, OptionError, Size};

use crate::backend::Options;

/// Where a volume's bytes live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// In the driver domain's memory.
    Ram,
    /// Bytes `offset..offset + size` of the backing disk.
    Disk {
        /// Byte offset on the disk.
        offset: u64,
    },
    /// Bytes `offset..offset + size` of the passed-through controller; `whole`: all of it
    /// (offset 0, the size known once the device is open: [`Config::fit_device`]).
    Device {
        /// Which kind of controller.
        kind: DeviceKind,
        /// Byte offset on the device.
        offset: u64,
        /// The whole device.
        whole: bool,
    },
}

/// The kinds of passed-through block controller a domain can own (one per domain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// A virtio-blk PCI function.
    Virtio,
    /// An NVMe controller (its namespace 1).
    Nvme,
}

impl DeviceKind {
    /// The store's name on the command line (`virtio`, `nvme`).
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Virtio => "virtio",
            DeviceKind::Nvme => "nvme",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "virtio" => Some(DeviceKind::Virtio),
            "nvme" => Some(DeviceKind::Nvme),
            _ => None,
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One configured volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeSpec {
    /// Name (xl.cfg `target=`).
    pub name: String,
    /// Where it lives.
    pub backing: Backing,
    /// Size in bytes.
    pub size: u64,
    /// Logical sector size (512 or 4096).
    pub sector_size: u32,
    /// Refuse writes and discards.
    pub read_only: bool,
}

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Volumes in command-line order.
    pub volumes: Vec<VolumeSpec>,
    /// Backend limits and features.
    pub options: Options,
    /// The devid of our own disk that backs `disk` slices (`None`: the first one).
    pub disk: Option<u32>,
    /// Pages shared with dom0 for I/O to the backing disk.
    pub bounce_pages: usize,
}

/// A configuration error, naming the option (or the options that conflict).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl From<OptionError> for ConfigError {
    fn from(e: OptionError) -> Self {
        ConfigError(format!("{e}"))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(token: &str, why: impl fmt::Display) -> ConfigError {
    OptionError::new(token, why).into()
}

/// Default bounce pages for the disk store.
pub const DEFAULT_BOUNCE_PAGES: usize = 512;

impl Config {
    /// Parses the `blkback.*` options of a command line (other options are ignored; see
    /// [`minios::options`] for the policy: the first unknown or invalid option is the error).
    pub fn parse(cmdline: &str) -> Result<Config, ConfigError> {
        let mut cfg = Config {
            bounce_pages: DEFAULT_BOUNCE_PAGES,
            ..Config::default()
        };
        for opt in options(cmdline, "blkback") {
            let o = &mut cfg.options;
            match opt.key {
                "vol" => cfg.volumes.push(parse_volume(opt.word, opt.value)?),
                "disk" => cfg.disk = Some(opt.uint(0, u32::MAX.into())? as u32),
                "queues" => o.max_queues = opt.uint(1, 16)? as u32,
                "ring-order" => o.max_ring_page_order = opt.uint(0, 4)? as u32,
                "indirect" => {
                    let n = opt.uint(0, 4096)?;
                    if n != 0 && n <= 11 {
                        return Err(err(opt.word, "use 0 (off) or more than 11 segments"));
                    }
                    o.max_indirect_segments = n as u16;
                }
                "persistent" => o.persistent = opt.uint(0, 1)? == 1,
                "pgrants" => o.max_persistent_grants = opt.uint(0, 16384)? as usize,
                "budget" => o.budget = opt.uint(1, 4096)? as usize,
                "bounce" => cfg.bounce_pages = opt.uint(16, 4096)? as usize,
                "stats_ms" => o.stats_ms = opt.uint(0, 3_600_000)?,
                _ => return Err(opt.unknown().into()),
            }
        }
        cfg.check()?;
        Ok(cfg)
    }

    /// Whether any volume is a disk slice.
    pub fn needs_disk(&self) -> bool {
        self.volumes
            .iter()
            .any(|v| matches!(v.backing, Backing::Disk { .. }))
    }

    /// Whether any volume lives on a passed-through controller.
    pub fn needs_device(&self) -> bool {
        self.device_kind().is_some()
    }

    /// The kind of passed-through controller the volumes live on, if any (the check at
    /// parse time makes it one kind).
    pub fn device_kind(&self) -> Option<DeviceKind> {
        self.volumes.iter().find_map(|v| match v.backing {
            Backing::Device { kind, .. } => Some(kind),
            _ => None,
        })
    }

    /// Bytes of RAM volumes.
    pub fn ram_bytes(&self) -> u64 {
        self.volumes
            .iter()
            .filter(|v| v.backing == Backing::Ram)
            .map(|v| v.size)
            .sum()
    }

    fn check(&self) -> Result<(), ConfigError> {
        let largest = usize::from(self.options.max_indirect_segments).max(11) + 8;
        if self.needs_disk() && self.bounce_pages < largest {
            return Err(ConfigError(format!(
                "blkback.bounce={}: disk slices need at least {largest} bounce pages for \
                 requests of blkback.indirect={} segments",
                self.bounce_pages, self.options.max_indirect_segments
            )));
        }
        for (i, v) in self.volumes.iter().enumerate() {
            if self.volumes[..i].iter().any(|w| w.name == v.name) {
                return Err(ConfigError(format!(
                    "volume {:?} is configured twice",
                    v.name
                )));
            }
        }
        let disk: Vec<(u64, u64, &str)> = self
            .volumes
            .iter()
            .filter_map(|v| match v.backing {
                Backing::Disk { offset } => Some((offset, v.size, v.name.as_str())),
                _ => None,
            })
            .collect();
        no_overlap("disk", disk)?;
        let mut kinds = self.volumes.iter().filter_map(|v| match v.backing {
            Backing::Device { kind, .. } => Some((kind, v.name.as_str())),
            _ => None,
        });
        if let Some((first, a)) = kinds.next() {
            if let Some((other, b)) = kinds.find(|(k, _)| *k != first) {
                return Err(ConfigError(format!(
                    "volumes {a:?} ({first}) and {b:?} ({other}): a domain owns one controller"
                )));
            }
        }
        self.device_overlap()
    }

    /// Refuses overlapping slices of the device (a whole-device volume overlaps any other
    /// once its size is known; before, it counts as one byte at 0).
    fn device_overlap(&self) -> Result<(), ConfigError> {
        let slices: Vec<(u64, u64, &str)> = self
            .volumes
            .iter()
            .filter_map(|v| match v.backing {
                Backing::Device { offset, .. } => Some((offset, v.size.max(1), v.name.as_str())),
                _ => None,
            })
            .collect();
        no_overlap("device", slices)
    }

    /// Sizes whole-device volumes and checks the device's slices against the device
    /// (`device_bytes` long, `block_size` bytes per logical block).
    pub fn fit_device(&mut self, device_bytes: u64, block_size: u32) -> Result<(), ConfigError> {
        for v in &mut self.volumes {
            let Backing::Device { offset, whole, .. } = v.backing else {
                continue;
            };
            if whole {
                v.size = device_bytes - device_bytes % u64::from(v.sector_size);
                if v.size == 0 {
                    return Err(ConfigError(format!(
                        "volume {:?}: the device has no {}-byte sector",
                        v.name, v.sector_size
                    )));
                }
            }
            if offset + v.size > device_bytes {
                return Err(ConfigError(format!(
                    "volume {:?} ({}+{}) does not fit on the {} device",
                    v.name,
                    Size(offset),
                    Size(v.size),
                    Size(device_bytes)
                )));
            }
            if offset % u64::from(block_size) != 0 || v.sector_size < block_size {
                return Err(ConfigError(format!(
                    "volume {:?}: the device has {block_size}-byte blocks",
                    v.name
                )));
            }
        }
        self.device_overlap()
    }

    /// Checks the disk slices against the backing disk (`disk_bytes` long, `sector_size`
    /// bytes per sector).
    pub fn check_disk(&self, disk_bytes: u64, sector_size: u32) -> Result<(), ConfigError> {
        for v in &self.volumes {
            let Backing::Disk { offset } = v.backing else {
                continue;
            };
            if offset + v.size > disk_bytes {
                return Err(ConfigError(format!(
                    "volume {:?} ({}+{}) does not fit on the {} backing disk",
                    v.name,
                    Size(offset),
                    Size(v.size),
                    Size(disk_bytes)
                )));
            }
            if offset % u64::from(sector_size) != 0 || v.sector_size < sector_size {
                return Err(ConfigError(format!(
                    "volume {:?}: the backing disk has {sector_size}-byte sectors",
                    v.name
                )));
            }
        }
        Ok(())
    }
}

/// Refuses overlapping ranges among `slices` (offset, size, name) of one `what`.
fn no_overlap(what: &str, mut slices: Vec<(u64, u64, &str)>) -> Result<(), ConfigError> {
    slices.sort();
    for pair in slices.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.0 + a.1 > b.0 {
            return Err(ConfigError(format!(
                "{what} slices overlap: {} ({}+{}) and {} ({}+{})",
                a.2,
                Size(a.0),
                Size(a.1),
                b.2,
                Size(b.0),
                Size(b.1)
            )));
        }
    }
    Ok(())
}

fn parse_volume(token: &str, value: &str) -> Result<VolumeSpec, ConfigError> {
    let mut parts = value.split(':');
    let name = parts.next().unwrap_or("");
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
    {
        return Err(err(token, "a volume name is 1-64 of A-Z a-z 0-9 . _ - /"));
    }
    let store = parts.next().unwrap_or("");
    let geometry = parts.next().ok_or_else(|| {
        err(
            token,
            "expected <name>:ram:<size>, <name>:disk:<offset>+<size>, <name>:virtio:<offset>+<size> or <name>:nvme:<offset>+<size>",
        )
    })?;
    let mut spec = VolumeSpec {
        name: name.to_string(),
        backing: Backing::Ram,
        size: 0,
        sector_size: 512,
        read_only: false,
    };
    match store {
        "ram" => {
            spec.size = parse_size(geometry).ok_or_else(|| err(token, "bad size"))?;
        }
        "virtio" | "nvme" if geometry == "all" => {
            spec.backing = Backing::Device {
                kind: DeviceKind::from_name(store).unwrap_or(DeviceKind::Virtio),
                offset: 0,
                whole: true,
            };
        }
        "disk" | "virtio" | "nvme" => {
            let (off, size) = geometry
                .split_once('+')
                .ok_or_else(|| err(token, format_args!("a {store} slice is <offset>+<size>")))?;
            let offset = parse_size(off).ok_or_else(|| err(token, "bad offset"))?;
            spec.size = parse_size(size).ok_or_else(|| err(token, "bad size"))?;
            if offset % 4096 != 0 || spec.size % 4096 != 0 {
                return Err(err(token, "slice offset and size must be multiples of 4K"));
            }
            if offset.checked_add(spec.size).is_none() {
                return Err(err(token, "slice ends beyond 2^64"));
            }
            spec.backing = match DeviceKind::from_name(store) {
                None => Backing::Disk { offset },
                Some(kind) => Backing::Device {
                    kind,
                    offset,
                    whole: false,
                },
            };
        }
        other => {
            return Err(err(
                token,
                format_args!("unknown store {other:?} (ram, disk, virtio, nvme)"),
            ))
        }
    }
    for flag in parts {
        match flag {
            "ro" => spec.read_only = true,
            "rw" => spec.read_only = false,
            "4k" | "4096" => spec.sector_size = 4096,
            "512" => spec.sector_size = 512,
            other => return Err(err(token, format_args!("unknown flag {other:?} (ro, 4k)"))),
        }
    }
    let whole = matches!(spec.backing, Backing::Device { whole: true, .. });
    if !whole && (spec.size == 0 || spec.size % u64::from(spec.sector_size) != 0) {
        return Err(err(
            token,
            format_args!("size must be a non-zero multiple of {}", spec.sector_size),
        ));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_volumes_and_options() {
        let cfg = Config::parse(
            "loglevel=debug blkback.vol=vol1:ram:64M blkback.vol=big:ram:8M:4k:ro \
             blkback.vol=data:disk:0+256M blkback.vol=logs:disk:256M+1G:ro \
             blkback.queues=2 blkback.ring-order=2 blkback.indirect=512 blkback.persistent=0 \
             blkback.disk=51712 blkback.bounce=600 blkback.stats_ms=0",
        )
        .unwrap();
        assert_eq!(cfg.volumes.len(), 4);
        assert_eq!(
            cfg.volumes[1],
            VolumeSpec {
                name: "big".into(),
                backing: Backing::Ram,
                size: 8 << 20,
                sector_size: 4096,
                read_only: true
            }
        );
        assert_eq!(cfg.volumes[3].backing, Backing::Disk { offset: 256 << 20 });
        assert_eq!(cfg.ram_bytes(), 72 << 20);
        assert!(cfg.needs_disk());
        assert_eq!(
            (cfg.options.max_queues, cfg.options.max_ring_page_order),
            (2, 2)
        );
        assert_eq!(cfg.options.max_indirect_segments, 512);
        assert!(!cfg.options.persistent);
        assert_eq!(cfg.options.stats_ms, 0);
        assert_eq!((cfg.disk, cfg.bounce_pages), (Some(51712), 600));
        assert!(cfg.check_disk(2 << 30, 512).is_ok());
        let e = cfg.check_disk(1 << 30, 512).unwrap_err();
        assert_eq!(
            e.0,
            "volume \"logs\" (256M+1G) does not fit on the 1G backing disk"
        );
    }

    #[test]
    fn device_volumes_are_sized_and_fitted_to_the_device() {
        let mut cfg = Config::parse(
            "blkback.vol=a:virtio:0+16M blkback.vol=b:virtio:16M+16M:4k:ro blkback.vol=r:ram:1M",
        )
        .unwrap();
        assert!(cfg.needs_device() && !cfg.needs_disk());
        assert_eq!(
            cfg.volumes[1].backing,
            Backing::Device {
                kind: DeviceKind::Virtio,
                offset: 16 << 20,
                whole: false
            }
        );
        assert_eq!(cfg.device_kind(), Some(DeviceKind::Virtio));
        assert!(cfg.volumes[1].read_only);
        assert!(cfg.clone().fit_device(64 << 20, 512).is_ok());
        assert_eq!(
            cfg.clone().fit_device(24 << 20, 512).unwrap_err().0,
            "volume \"b\" (16M+16M) does not fit on the 24M device"
        );
        assert_eq!(
            cfg.fit_device(64 << 20, 4096).unwrap_err().0,
            "volume \"a\": the device has 4096-byte blocks"
        );
        let mut whole = Config::parse("blkback.vol=all:virtio:all:4k").unwrap();
        whole.fit_device((64 << 20) + 512, 512).unwrap();
        assert_eq!(whole.volumes[0].size, 64 << 20);
        let mut two =
            Config::parse("blkback.vol=a:virtio:all blkback.vol=b:virtio:32M+1M").unwrap();
        assert_eq!(
            two.fit_device(64 << 20, 512).unwrap_err().0,
            "device slices overlap: a (0+64M) and b (32M+1M)"
        );
    }

    #[test]
    fn nvme_volumes_are_parsed_like_virtio_ones() {
        let mut cfg = Config::parse(
            "blkback.vol=a:nvme:0+24M blkback.vol=b:nvme:24M+24M:4k blkback.vol=c:nvme:48M+8M:ro",
        )
        .unwrap();
        assert_eq!(cfg.device_kind(), Some(DeviceKind::Nvme));
        assert_eq!(
            cfg.volumes[1].backing,
            Backing::Device {
                kind: DeviceKind::Nvme,
                offset: 24 << 20,
                whole: false
            }
        );
        assert_eq!(cfg.volumes[1].sector_size, 4096);
        assert!(cfg.volumes[2].read_only && !cfg.volumes[0].read_only);
        cfg.fit_device(64 << 20, 512).unwrap();
        let mut whole = Config::parse("blkback.vol=all:nvme:all:ro").unwrap();
        assert_eq!(
            whole.volumes[0].backing,
            Backing::Device {
                kind: DeviceKind::Nvme,
                offset: 0,
                whole: true
            }
        );
        whole.fit_device(64 << 20, 4096).unwrap_err();
        let mut whole = Config::parse("blkback.vol=all:nvme:all:4k").unwrap();
        whole.fit_device(64 << 20, 4096).unwrap();
        assert_eq!(whole.volumes[0].size, 64 << 20);
        assert_eq!(
            Config::parse("blkback.vol=r:ram:1M").unwrap().device_kind(),
            None
        );
    }

    #[test]
    fn defaults() {
        let cfg = Config::parse("").unwrap();
        assert_eq!(cfg.options, Options::default());
        assert_eq!(cfg.options.stats_ms, 1000);
        assert!(cfg.volumes.is_empty() && !cfg.needs_disk());
    }

    #[test]
    fn errors_name_the_option() {
        let cases = [
            (
                "blkback.vol=a:ram:1M blkback.vol=a:ram:2M",
                "volume \"a\" is configured twice",
            ),
            (
                "blkback.vol=a:disk:0+2M blkback.vol=b:disk:1M+1M",
                "disk slices overlap: a (0+2M) and b (1M+1M)",
            ),
            (
                "blkback.vol=a:ram:1000",
                "blkback.vol=a:ram:1000: size must be a non-zero multiple of 512",
            ),
            (
                "blkback.vol=a:ram:2K:4k",
                "blkback.vol=a:ram:2K:4k: size must be a non-zero multiple of 4096",
            ),
            (
                "blkback.vol=a:tape:1M",
                "blkback.vol=a:tape:1M: unknown store \"tape\" (ram, disk, virtio, nvme)",
            ),
            (
                "blkback.vol=a:nvme:0+2M blkback.vol=b:nvme:1M+1M",
                "device slices overlap: a (0+2M) and b (1M+1M)",
            ),
            (
                "blkback.vol=a:nvme:1M",
                "blkback.vol=a:nvme:1M: a nvme slice is <offset>+<size>",
            ),
            (
                "blkback.vol=a:nvme:2K+1M",
                "blkback.vol=a:nvme:2K+1M: slice offset and size must be multiples of 4K",
            ),
            (
                "blkback.vol=a:virtio:0+1M blkback.vol=b:nvme:1M+1M",
                "volumes \"a\" (virtio) and \"b\" (nvme): a domain owns one controller",
            ),
            (
                "blkback.vol=a:disk:512+1M",
                "blkback.vol=a:disk:512+1M: slice offset and size must be multiples of 4K",
            ),
            (
                "blkback.vol=a:virtio:0+2M blkback.vol=b:virtio:1M+1M",
                "device slices overlap: a (0+2M) and b (1M+1M)",
            ),
            (
                "blkback.vol=a:virtio:all blkback.vol=b:virtio:0+1M",
                "device slices overlap: a (0+1) and b (0+1M)",
            ),
            (
                "blkback.vol=a:virtio:1M",
                "blkback.vol=a:virtio:1M: a virtio slice is <offset>+<size>",
            ),
            (
                "blkback.vol=a:disk:1M",
                "blkback.vol=a:disk:1M: a disk slice is <offset>+<size>",
            ),
            (
                "blkback.vol=:ram:1M",
                "blkback.vol=:ram:1M: a volume name is 1-64 of A-Z a-z 0-9 . _ - /",
            ),
            (
                "blkback.vol=a:ram:1M:fast",
                "blkback.vol=a:ram:1M:fast: unknown flag \"fast\" (ro, 4k)",
            ),
            (
                "blkback.queues=0",
                "blkback.queues=0: expected a number in 1..=16",
            ),
            (
                "blkback.ring-order=5",
                "blkback.ring-order=5: expected a number in 0..=4",
            ),
            (
                "blkback.indirect=8",
                "blkback.indirect=8: use 0 (off) or more than 11 segments",
            ),
            ("blkback.colour=blue", "blkback.colour=blue: unknown option"),
            (
                "blkback.stats_ms=3600001",
                "blkback.stats_ms=3600001: expected a number in 0..=3600000",
            ),
            (
                "blkback.vol=a:ram",
                "blkback.vol=a:ram: expected <name>:ram:<size>, <name>:disk:<offset>+<size>, <name>:virtio:<offset>+<size> or <name>:nvme:<offset>+<size>",
            ),
            (
                "blkback.vol=a:disk:0+1M blkback.bounce=100",
                "blkback.bounce=100: disk slices need at least 264 bounce pages for requests of \
                 blkback.indirect=256 segments",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(Config::parse(line).unwrap_err().0, want, "{line}");
        }
    }
}
