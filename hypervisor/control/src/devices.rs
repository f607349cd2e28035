//! PV devices in xl.cfg whose backend can live in a driver domain (`vif`, `disk`, `usbctrl`,
//! `vsnd`): which backend each names, and how to re-create each with `xl *-attach`.

use crate::xlcfg::{ParseError, Value, XlConfig};
use serde::Deserialize;
use std::fmt;

/// A device type with a `backend=` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// Network interface (netif).
    Vif,
    /// Block device (blkif).
    Disk,
    /// PVUSB controller (usbif).
    Usbctrl,
    /// PV sound card (sndif).
    Vsnd,
}

impl DeviceKind {
    /// Every kind.
    pub const ALL: [DeviceKind; 4] = [
        DeviceKind::Vif,
        DeviceKind::Disk,
        DeviceKind::Usbctrl,
        DeviceKind::Vsnd,
    ];

    /// The xl.cfg key, also the name in appliance files (`serves = ["vif"]`).
    pub fn key(self) -> &'static str {
        match self {
            DeviceKind::Vif => "vif",
            DeviceKind::Disk => "disk",
            DeviceKind::Usbctrl => "usbctrl",
            DeviceKind::Vsnd => "vsnd",
        }
    }

    /// The device directory name in xenstore (`device/<dir>/<devid>`, `backend/<dir>/…`).
    pub fn xenstore_dir(self) -> &'static str {
        match self {
            DeviceKind::Vif => "vif",
            DeviceKind::Disk => "vbd",
            DeviceKind::Usbctrl => "vusb",
            DeviceKind::Vsnd => "vsnd",
        }
    }

    /// The kind of a xenstore device directory (`vbd` → disk; `qdisk`/`vbd3` too).
    pub fn from_xenstore_dir(dir: &str) -> Option<DeviceKind> {
        match dir {
            "vif" => Some(DeviceKind::Vif),
            "vbd" | "vbd3" | "qdisk" => Some(DeviceKind::Disk),
            "vusb" | "qusb" => Some(DeviceKind::Usbctrl),
            "vsnd" => Some(DeviceKind::Vsnd),
            _ => None,
        }
    }

    /// The kind named by an appliance file or xl.cfg key.
    pub fn from_key(key: &str) -> Option<DeviceKind> {
        DeviceKind::ALL.into_iter().find(|k| k.key() == key)
    }

    /// `xl` subcommand that attaches one to a running domain.
    pub fn attach_command(self) -> &'static str {
        match self {
            DeviceKind::Vif => "network-attach",
            DeviceKind::Disk => "block-attach",
            DeviceKind::Usbctrl => "usbctrl-attach",
            DeviceKind::Vsnd => "vsnd-attach",
        }
    }

    /// `xl` subcommand that detaches one (by devid).
    pub fn detach_command(self) -> &'static str {
        match self {
            DeviceKind::Vif => "network-detach",
            DeviceKind::Disk => "block-detach",
            DeviceKind::Usbctrl => "usbctrl-detach",
            DeviceKind::Vsnd => "vsnd-detach",
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// One device entry of a domain's xl.cfg (`vif = [ 'mac=…,backend=netdd' ]` has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEntry {
    /// Its type.
    pub kind: DeviceKind,
    /// Position in its list (the devid xl gives it unless the entry sets one).
    pub index: usize,
    /// Line in the xl.cfg file.
    pub line: usize,
    /// The backend domain it names, if any (`None`: dom0, or the appliance's default).
    pub backend: Option<String>,
    /// The entry as written.
    pub value: Value,
}

/// Bare disk flags (keywords without `=`), which are not positional parameters.
const DISK_FLAGS: &[&str] = &[
    "cdrom",
    "discard",
    "no-discard",
    "direct-io-safe",
    "trusted",
    "untrusted",
    "colo",
];

impl DeviceEntry {
    /// The comma-separated parameters of a vif/usbctrl/disk entry, trimmed.
    fn params(spec: &str) -> Vec<String> {
        spec.split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    }

    /// A named parameter (`key=value`) of a vif, usbctrl or disk entry, or of a vsnd card.
    pub fn param(&self, key: &str) -> Option<String> {
        let spec = self.spec_text();
        let params = match self.kind {
            DeviceKind::Disk => disk_params(&spec).0,
            _ => Self::params(&spec)
                .into_iter()
                .filter_map(|p| {
                    p.split_once('=')
                        .map(|(k, v)| (k.trim().into(), v.trim().into()))
                })
                .collect(),
        };
        params.into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The text carrying the parameters: the entry, or a vsnd card's `card, …` string.
    fn spec_text(&self) -> String {
        match &self.value {
            Value::List(items, _) => items
                .first()
                .and_then(Value::as_str)
                .map(|s| s.trim_start().trim_start_matches("card").to_string())
                .unwrap_or_default(),
            v => v.as_str().unwrap_or_default().to_string(),
        }
    }

    /// A disk's virtual device name (`xvda`), from `vdev=` or its position.
    pub fn vdev(&self) -> Option<String> {
        if self.kind != DeviceKind::Disk {
            return None;
        }
        let spec = self.spec_text();
        let (named, positional) = disk_params(&spec);
        if let Some((_, v)) = named.iter().find(|(k, _)| k == "vdev") {
            return Some(v.clone());
        }
        // Deprecated `format:target,vdev[:devtype],access` has the vdev second.
        let legacy = positional.len() == 3 && positional[0].contains(':');
        let v = if legacy {
            positional.get(1)
        } else {
            positional.get(2)
        };
        v.map(|v| v.split(':').next().unwrap_or(v).to_string())
            .filter(|v| !v.is_empty())
    }

    /// The devid this entry gets in xenstore (`device/<dir>/<devid>`): `devid=`, a disk's
    /// vdev number, else its position.
    pub fn devid(&self) -> Option<u32> {
        if let Some(d) = self.param("devid").and_then(|d| d.parse().ok()) {
            return Some(d);
        }
        match self.kind {
            DeviceKind::Disk => self.vdev().and_then(|v| vdev_to_devid(&v)),
            _ => u32::try_from(self.index).ok(),
        }
    }

    /// The entry with `backend=<name>` added (it must not name one yet).
    pub fn with_backend(&self, name: &str) -> Value {
        let line = self.value.line();
        match (&self.value, self.kind) {
            (Value::List(items, l), _) => {
                let mut items = items.clone();
                if let Some(Value::Str(card, cl)) = items.first().cloned() {
                    items[0] = Value::Str(format!("{card}, backend={name}"), cl);
                }
                Value::List(items, *l)
            }
            // Named parameters go first: a trailing `target=` takes the rest of a disk spec.
            (v, DeviceKind::Disk) => {
                let s = v.as_str().unwrap_or_default();
                Value::Str(join_param(&format!("backend={name}"), s), line)
            }
            (v, _) => {
                let s = v.as_str().unwrap_or_default();
                Value::Str(join_param(s, &format!("backend={name}")), line)
            }
        }
    }

    /// Arguments after the domain for `xl <attach_command>` re-creating this device with
    /// `backend=<backend>` (and, for a vif, the MAC it had, so the guest sees the same NIC).
    pub fn attach_args(&self, backend: &str, mac: Option<&str>) -> Vec<String> {
        let value = match &self.backend {
            Some(_) => self.value.clone(),
            None => self.with_backend(backend),
        };
        match (self.kind, &value) {
            (DeviceKind::Vsnd, Value::List(items, _)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            (DeviceKind::Disk, v) => vec![v.as_str().unwrap_or_default().to_string()],
            (kind, v) => {
                let mut params = Self::params(v.as_str().unwrap_or_default());
                if kind == DeviceKind::Vif && !params.iter().any(|p| p.starts_with("mac=")) {
                    if let Some(mac) = mac {
                        params.push(format!("mac={mac}"));
                    }
                }
                params
            }
        }
    }
}

fn join_param(a: &str, b: &str) -> String {
    match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a},{b}"),
    }
}

/// Splits a disk spec into named parameters and positional ones; a `target=` takes the rest
/// of the spec, commas included.
fn disk_params(spec: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut named = Vec::new();
    let mut positional = Vec::new();
    let mut rest = spec;
    while !rest.is_empty() {
        let trimmed = rest.trim_start();
        if let Some(target) = trimmed.strip_prefix("target=") {
            named.push(("target".to_string(), target.to_string()));
            break;
        }
        let (part, tail) = rest.split_once(',').unwrap_or((rest, ""));
        rest = tail;
        let part = part.trim();
        if DISK_FLAGS.contains(&part) {
            named.push((part.to_string(), String::new()));
        } else if let Some((k, v)) = part.split_once('=') {
            named.push((k.trim().to_string(), v.trim().to_string()));
        } else {
            positional.push(part.to_string());
        }
    }
    (named, positional)
}

/// The xenstore devid of a virtual disk name (xvdX, hdX, sdX, with partition; or a number),
/// as libxl computes it.
pub fn vdev_to_devid(vdev: &str) -> Option<u32> {
    if let Ok(n) = vdev.parse() {
        return Some(n);
    }
    let (prefix, rest) = ["xvd", "hd", "sd"]
        .iter()
        .find_map(|p| vdev.strip_prefix(p).map(|r| (*p, r)))?;
    let letters: String = rest
        .chars()
        .take_while(|c| c.is_ascii_lowercase())
        .collect();
    let digits = &rest[letters.len()..];
    if letters.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    // Bijective base 26: a = 0, z = 25, aa = 26.
    let mut disk: u32 = 0;
    for c in letters.chars() {
        disk = disk
            .checked_mul(26)?
            .checked_add(c as u32 - 'a' as u32 + 1)?;
    }
    let disk = disk - 1;
    let part: u32 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    match prefix {
        "xvd" if disk < 16 && part < 16 => Some((202 << 8) | (disk << 4) | part),
        "xvd" if disk < (1 << 20) && part < 256 => Some((1 << 28) | (disk << 8) | part),
        "hd" if disk < 4 && part < 64 => {
            let major = if disk < 2 { 3 } else { 22 };
            Some((major << 8) | ((disk % 2) << 6) | part)
        }
        "sd" if disk < 16 && part < 16 => Some((8 << 8) | (disk << 4) | part),
        _ => None,
    }
}

/// The device entries of an xl.cfg, in key order (vif, disk, usbctrl, vsnd) then list order.
pub fn device_entries(cfg: &XlConfig) -> Result<Vec<DeviceEntry>, ParseError> {
    let mut out = Vec::new();
    for kind in DeviceKind::ALL {
        let Some(items) = cfg.get_list(kind.key()) else {
            continue;
        };
        let key_line = cfg.line_of(kind.key()).unwrap_or(1);
        for (index, value) in items.into_iter().enumerate() {
            let line = value.line().max(key_line);
            let err = |message: String| ParseError {
                source: cfg.source.clone(),
                line,
                message,
            };
            let ok_shape = match (&value, kind) {
                (Value::List(items, _), DeviceKind::Vsnd) => {
                    items.iter().all(|i| i.as_str().is_some())
                }
                (Value::Str(..), DeviceKind::Vsnd) => false,
                (Value::Str(..), _) => true,
                _ => false,
            };
            if !ok_shape {
                return Err(err(match kind {
                    DeviceKind::Vsnd => {
                        "each `vsnd` entry is a list of strings (['card, …', 'pcm, …'])".into()
                    }
                    _ => format!("each `{}` entry is a string", kind.key()),
                }));
            }
            let mut entry = DeviceEntry {
                kind,
                index,
                line: value.line(),
                backend: None,
                value,
            };
            match entry.param("backend") {
                Some(b) if b.is_empty() => {
                    return Err(err(format!("`{}` entry has an empty backend=", kind.key())))
                }
                b => entry.backend = b,
            }
            out.push(entry);
        }
    }
    Ok(out)
}

/// True when a backend name means dom0 (no driver domain involved).
pub fn is_dom0(name: &str) -> bool {
    matches!(name, "0" | "dom0" | "Domain-0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<DeviceEntry> {
        device_entries(&XlConfig::parse(text, "g.cfg").unwrap()).unwrap()
    }

    #[test]
    fn finds_backends_of_every_kind() {
        let e = entries(
            "vif = [ 'mac=00:16:3e:00:00:01, backend=netdd', 'bridge=xenbr0' ]\n\
             disk = [ 'format=raw, vdev=xvda, backend=blkdd, target=/img,with,commas',\n\
                      '/dev/vg/x,,xvdb' ]\n\
             usbctrl = [ 'type=pv,version=2,ports=4,backend=usbdd' ]\n\
             vsnd = [ [ 'card, backend=snddd, buffer-size=65536', 'pcm, name=dev1' ] ]\n",
        );
        let got: Vec<(DeviceKind, usize, Option<&str>)> = e
            .iter()
            .map(|d| (d.kind, d.line, d.backend.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (DeviceKind::Vif, 1, Some("netdd")),
                (DeviceKind::Vif, 1, None),
                (DeviceKind::Disk, 2, Some("blkdd")),
                (DeviceKind::Disk, 3, None),
                (DeviceKind::Usbctrl, 4, Some("usbdd")),
                (DeviceKind::Vsnd, 5, Some("snddd")),
            ]
        );
        assert_eq!(e[2].param("target").as_deref(), Some("/img,with,commas"));
        assert_eq!(e[0].param("mac").as_deref(), Some("00:16:3e:00:00:01"));
    }

    #[test]
    fn a_target_keeps_backend_text_out_of_reach() {
        // `backend=` inside a trailing target= is part of the path, not an option.
        let e = entries("disk = [ 'vdev=xvda, target=/x,backend=evil' ]");
        assert_eq!(e[0].backend, None);
    }

    #[test]
    fn disk_vdevs_and_devids() {
        let e = entries(
            "disk = [ '/img,raw,xvda,rw', 'phy:/dev/vg/g,xvdb:cdrom,r', \
             'vdev=hdc, target=/x', 'format=raw,/y,xvdq' ]",
        );
        let vdevs: Vec<_> = e.iter().map(|d| d.vdev()).collect();
        assert_eq!(
            vdevs,
            [
                Some("xvda".to_string()),
                Some("xvdb".into()),
                Some("hdc".into()),
                None
            ]
        );
        assert_eq!(vdev_to_devid("xvda"), Some(51712));
        assert_eq!(vdev_to_devid("xvdb"), Some(51728));
        assert_eq!(vdev_to_devid("xvda1"), Some(51713));
        assert_eq!(vdev_to_devid("xvdq"), Some((1 << 28) | (16 << 8)));
        assert_eq!(vdev_to_devid("xvdaa"), Some((1 << 28) | (26 << 8)));
        assert_eq!(vdev_to_devid("hda"), Some(768));
        assert_eq!(vdev_to_devid("hdc"), Some(5632));
        assert_eq!(vdev_to_devid("sda"), Some(2048));
        assert_eq!(vdev_to_devid("51760"), Some(51760));
        assert_eq!(vdev_to_devid("nvme0"), None);
        assert_eq!(e[0].devid(), Some(51712));
        let v = entries("vif = [ 'bridge=a', 'devid=7' ]");
        assert_eq!((v[0].devid(), v[1].devid()), (Some(0), Some(7)));
    }

    #[test]
    fn adds_a_backend_where_xl_reads_it() {
        let e = entries(
            "vif = [ '', 'mac=00:16:3e:00:00:02' ]\ndisk = [ 'vdev=xvda, target=/a,b' ]\n\
             vsnd = [ [ 'card, short-name=c', 'pcm, name=p' ] ]\n",
        );
        assert_eq!(e[0].with_backend("netdd").to_xl(), "\"backend=netdd\"");
        assert_eq!(
            e[1].with_backend("netdd").to_xl(),
            "\"mac=00:16:3e:00:00:02,backend=netdd\""
        );
        assert_eq!(
            e[2].with_backend("blkdd").to_xl(),
            "\"backend=blkdd,vdev=xvda, target=/a,b\""
        );
        assert_eq!(
            e[3].with_backend("snd").to_xl(),
            "[ \"card, short-name=c, backend=snd\", \"pcm, name=p\" ]"
        );
    }

    #[test]
    fn attach_arguments_keep_the_mac() {
        let e = entries(
            "vif = [ 'bridge=xenbr0', 'backend=netdd,mac=00:16:3e:00:00:09' ]\n\
             disk = [ 'backend=blkdd,vdev=xvda,target=/img' ]\n\
             usbctrl = [ 'version=2,ports=4' ]\n\
             vsnd = [ [ 'card, backend=s', 'pcm, name=p' ] ]\n",
        );
        assert_eq!(
            e[0].attach_args("netdd", Some("00:16:3e:aa:bb:cc")),
            ["bridge=xenbr0", "backend=netdd", "mac=00:16:3e:aa:bb:cc"]
        );
        assert_eq!(
            e[1].attach_args("netdd", Some("00:16:3e:aa:bb:cc")),
            ["backend=netdd", "mac=00:16:3e:00:00:09"]
        );
        assert_eq!(
            e[2].attach_args("blkdd", None),
            ["backend=blkdd,vdev=xvda,target=/img"]
        );
        assert_eq!(
            e[3].attach_args("usbdd", None),
            ["version=2", "ports=4", "backend=usbdd"]
        );
        assert_eq!(
            e[4].attach_args("s", None),
            ["card, backend=s", "pcm, name=p"]
        );
    }

    #[test]
    fn rejects_malformed_entries_with_a_line() {
        let bad = |t: &str| {
            device_entries(&XlConfig::parse(t, "g.cfg").unwrap())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            bad("\nvif = [ ['x'] ]"),
            "g.cfg:2: each `vif` entry is a string"
        );
        assert_eq!(
            bad("vsnd = [ 'card' ]"),
            "g.cfg:1: each `vsnd` entry is a list of strings (['card, …', 'pcm, …'])"
        );
        assert_eq!(
            bad("vif = [ 'backend=' ]"),
            "g.cfg:1: `vif` entry has an empty backend="
        );
        assert!(is_dom0("Domain-0") && is_dom0("0") && !is_dom0("netdd"));
    }
}
