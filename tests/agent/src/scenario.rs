//! The scenario format: a data file in tests/scenarios/ naming domains to create (with their
//! xl.cfg), steps to run in dom0 and guests, and timings to report.
//!
//! Both sides use it: `cargo xtask testbed` validates scenarios and learns which QEMU devices
//! they need before booting; the agent in dom0 executes them.

use serde::Deserialize;
use std::collections::BTreeSet;

/// One scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name; must equal the file name without `.toml`.
    pub name: String,
    /// One line saying what the scenario proves.
    pub summary: String,
    /// Upper bound for the whole scenario, in seconds.
    #[serde(default = "default_scenario_timeout")]
    pub timeout_s: u64,
    /// QEMU devices the scenario passes through to a domain (`@name` in xl.cfg, in a file's
    /// content or in a dom0 command gives its BDF).
    #[serde(default)]
    pub qemu_devices: Vec<QemuDevice>,
    /// Files written in dom0 before the first step (appliance descriptions, configs, …).
    #[serde(default, rename = "file")]
    pub files: Vec<File>,
    /// Domains the scenario may create.
    #[serde(default, rename = "domain")]
    pub domains: Vec<Domain>,
    /// Steps, run in order; the first failing one ends the scenario.
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
    /// Durations between recorded events, reported in the summary.
    #[serde(default, rename = "timing")]
    pub timings: Vec<Timing>,
    /// Checks of what the sound card played (QEMU's wav file), run on the host after QEMU.
    #[serde(default, rename = "wav_check")]
    pub wav_checks: Vec<crate::wav::WavCheck>,
    /// Checks of what a disk device holds (its image file), run on the host after QEMU.
    #[serde(default, rename = "disk_check")]
    pub disk_checks: Vec<DiskCheck>,
}

/// A check, on the host once QEMU has exited, that a region of a disk device's image holds
/// the pattern `testbed-agent blk fill --seed SEED` wrote (what a guest flushed reached
/// the device, whatever the driver domains did after).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskCheck {
    /// The check's name.
    pub name: String,
    /// The disk device (`virtio-blk`, `nvme`, `nvme-4k`).
    pub device: QemuDevice,
    /// Where the region starts in the image (`64M`, bytes without a suffix).
    pub start: String,
    /// Its length.
    pub len: String,
    /// The pattern's seed.
    pub seed: u64,
}

impl DiskCheck {
    /// Runs the check on the images in `scratch`: (name, passed, detail).
    pub fn run(&self, scratch: &std::path::Path) -> (String, bool, String) {
        let result = self.region().and_then(|(start, len)| {
            let image = self.device.disk_image().ok_or("not a disk device")?;
            crate::blkpattern::check_file(&scratch.join(image), start, len, self.seed)
                .map(|n| format!("{} MiB at {} of {image} intact", n >> 20, self.start))
        });
        match result {
            Ok(d) => (self.name.clone(), true, d),
            Err(e) => (self.name.clone(), false, e),
        }
    }

    fn region(&self) -> Result<(u64, u64), String> {
        Ok((size(&self.start)?, size(&self.len)?))
    }
}

/// A size: a number of bytes, or of KiB/MiB/GiB with `K`, `M`, `G`.
fn size(v: &str) -> Result<u64, String> {
    let (num, shift) = match v.chars().last() {
        Some('K') => (&v[..v.len() - 1], 10),
        Some('M') => (&v[..v.len() - 1], 20),
        Some('G') => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("bad size `{v}`"))
}

fn default_scenario_timeout() -> u64 {
    300
}

/// Default timeout of waiting steps, in seconds.
pub const WAIT_TIMEOUT_S: u64 = 60;
/// Default timeout of the other steps (commands, creates), in seconds.
pub const RUN_TIMEOUT_S: u64 = 120;
/// Time the agent may take after a scenario's steps: the Xen log check, a failure's
/// diagnostics (four 10-s commands at most) and the cleanup (a 10-s kill and a 60-s destroy
/// of every domain): 120 s, with room to spare.
pub const WIND_DOWN_S: u64 = 150;

/// QEMU devices a scenario can ask for; each gets a fixed PCI address in the testbed machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QemuDevice {
    /// virtio-net-pci on its own QEMU user network (10.0.2.0/24, gateway and DHCP server
    /// 10.0.2.2, the file server at 10.0.2.100:80).
    VirtioNet,
    /// virtio-blk-pci on a scratch image file.
    VirtioBlk,
    /// qemu-xhci with a usb-storage stick.
    Xhci,
    /// ich9-intel-hda with a duplex codec.
    Sound,
    /// A second virtio-net-pci, identical to `virtio-net` but on a user network of its own
    /// (same addresses, same file server), for side-by-side runs in one boot.
    #[serde(rename = "virtio-net-2")]
    VirtioNet2,
    /// A third virtio-net-pci, identical again (own user network, same addresses), that dom0
    /// keeps: not hidden, not made assignable; dom0 bridges it to guests as `xenbr1` (the
    /// path of a classic Xen host).
    VirtioNetDom0,
    /// An NVMe controller (QEMU's `nvme`, serial `xdd-nvme-1`) with one namespace of
    /// 512-byte blocks on a scratch image file.
    Nvme,
    /// A second NVMe controller (serial `xdd-nvme-2`): 4096-byte logical blocks and MDTS 2
    /// (16 KiB per command), on a scratch image file of its own.
    #[serde(rename = "nvme-4k")]
    Nvme4k,
    /// A third NVMe controller (serial `xdd-nvme-3`), identical to `nvme` (512-byte blocks,
    /// a 96 MiB scratch image of its own), for side-by-side runs in one boot.
    #[serde(rename = "nvme-2")]
    Nvme2,
    /// A fourth NVMe controller (serial `xdd-nvme-4`), identical to `nvme` again, that dom0
    /// keeps: not hidden, not made assignable (dom0's `nvme` driver, loaded with `modprobe
    /// nvme`, takes it as its only NVMe disk: the storage path of a classic Xen host).
    NvmeDom0,
    /// A second qemu-xhci, set up as `xhci` (8 USB 2 + 4 USB 3 ports) with a usb-storage
    /// stick of its own (same size, same known content, same port: high speed, bus path
    /// `1-9`) and no tablet: `bench usb`'s direct-passthrough side.
    #[serde(rename = "xhci-2")]
    Xhci2,
    /// A third qemu-xhci (8 USB 2 + 4 USB 3 ports) with media devices on USB 2 ports: a
    /// full-speed usb-audio (48 kHz stereo S16 isochronous OUT; what it plays goes to
    /// `usb-audio-out.wav` in the scratch directory, `[[wav_check]]` `source = "usb-audio"`)
    /// at bus path `1-9` and a full-speed usb-tablet at `1-10`, into which the testbed
    /// injects pointer input through QEMU's QMP socket while QEMU runs.
    XhciMedia,
    /// A second ich9-intel-hda, with one codec (`hda-output`, whose output goes to
    /// `hda-2-out.wav` in the scratch directory, 48 kHz stereo S16, as `sound`'s codec 0):
    /// `bench snd`'s guest that owns its HDA directly.
    #[serde(rename = "sound-2")]
    Sound2,
    /// A third ich9-intel-hda whose duplex codec is on QEMU's `none` audio driver with a
    /// 2-s audio timer: the HDA's input position stands still while the stream runs, a
    /// misbehaving capture device on purpose.
    #[serde(rename = "sound-stall")]
    SoundStall,
}

impl QemuDevice {
    /// The image file (in the testbed's scratch directory) of a disk device.
    pub fn disk_image(self) -> Option<&'static str> {
        match self {
            QemuDevice::VirtioBlk => Some("virtio-blk.img"),
            QemuDevice::Nvme => Some("nvme.img"),
            QemuDevice::Nvme4k => Some("nvme-4k.img"),
            QemuDevice::Nvme2 => Some("nvme-2.img"),
            QemuDevice::NvmeDom0 => Some("nvme-dom0.img"),
            _ => None,
        }
    }

    /// Every device, in PCI slot order.
    pub const ALL: [QemuDevice; 14] = [
        QemuDevice::VirtioNet,
        QemuDevice::VirtioBlk,
        QemuDevice::Xhci,
        QemuDevice::Sound,
        QemuDevice::VirtioNet2,
        QemuDevice::VirtioNetDom0,
        QemuDevice::Nvme,
        QemuDevice::Nvme4k,
        QemuDevice::Nvme2,
        QemuDevice::NvmeDom0,
        QemuDevice::Xhci2,
        QemuDevice::XhciMedia,
        QemuDevice::Sound2,
        QemuDevice::SoundStall,
    ];

    /// The name used in scenario files and as `@name` in xl.cfg text.
    pub fn name(self) -> &'static str {
        match self {
            QemuDevice::VirtioNet => "virtio-net",
            QemuDevice::VirtioBlk => "virtio-blk",
            QemuDevice::Xhci => "xhci",
            QemuDevice::Sound => "sound",
            QemuDevice::VirtioNet2 => "virtio-net-2",
            QemuDevice::VirtioNetDom0 => "virtio-net-dom0",
            QemuDevice::Nvme => "nvme",
            QemuDevice::Nvme4k => "nvme-4k",
            QemuDevice::Nvme2 => "nvme-2",
            QemuDevice::NvmeDom0 => "nvme-dom0",
            QemuDevice::Xhci2 => "xhci-2",
            QemuDevice::XhciMedia => "xhci-media",
            QemuDevice::Sound2 => "sound-2",
            QemuDevice::SoundStall => "sound-stall",
        }
    }

    /// PCI slot on bus 0 of the testbed machine.
    pub fn slot(self) -> u8 {
        match self {
            QemuDevice::VirtioNet => 0x10,
            QemuDevice::VirtioBlk => 0x11,
            QemuDevice::Xhci => 0x12,
            QemuDevice::Sound => 0x13,
            QemuDevice::VirtioNet2 => 0x14,
            QemuDevice::VirtioNetDom0 => 0x15,
            QemuDevice::Nvme => 0x16,
            QemuDevice::Nvme4k => 0x17,
            QemuDevice::Nvme2 => 0x18,
            QemuDevice::NvmeDom0 => 0x19,
            QemuDevice::Xhci2 => 0x1a,
            QemuDevice::XhciMedia => 0x1b,
            QemuDevice::Sound2 => 0x1c,
            QemuDevice::SoundStall => 0x1d,
        }
    }

    /// True for devices passed through to domUs: hidden from dom0 (`xen-pciback.hide`) and
    /// made assignable by the agent. False for those dom0 keeps for itself.
    pub fn passed_through(self) -> bool {
        !matches!(self, QemuDevice::VirtioNetDom0 | QemuDevice::NvmeDom0)
    }

    /// The device's BDF as xl and pciback spell it.
    pub fn bdf(self) -> String {
        format!("0000:00:{:02x}.0", self.slot())
    }
}

/// Replaces every `@name` in xl.cfg text with the BDF of the listed device of exactly that
/// name (`@virtio-net-2` is not `@virtio-net` followed by `-2`); Err names an unlisted one.
pub fn expand_devices(text: &str, devices: &[QemuDevice]) -> Result<String, String> {
    expand_at(text, devices, true)
}

/// Like [`expand_devices`] for free text (a file's content, a dom0 command): `@name` of a
/// QEMU device becomes its BDF (Err when the scenario does not list it), any other `@`
/// (`"$@"`, `user@host`) stays as it is.
pub fn expand_device_mentions(text: &str, devices: &[QemuDevice]) -> Result<String, String> {
    expand_at(text, devices, false)
}

fn expand_at(text: &str, devices: &[QemuDevice], strict: bool) -> Result<String, String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '-';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
        let name = &after[..end];
        let known = QemuDevice::ALL.iter().any(|d| d.name() == name);
        match devices.iter().find(|d| d.name() == name) {
            Some(dev) => out.push_str(&dev.bdf()),
            None if strict || known => return Err(format!("@{name}: list it in qemu_devices")),
            None => {
                out.push('@');
                out.push_str(name);
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A file the agent writes in dom0 before the scenario's steps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Absolute path in dom0.
    pub path: String,
    /// Contents (`@name` of a QEMU device becomes its BDF).
    pub content: String,
}

/// What a domain is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DomainKind {
    /// A Linux guest (stock frontends) running the domain's `script`.
    LinuxGuest,
    /// A Linux driver domain: netback/blkback, a bridge and `xl devd`.
    LinuxDd,
    /// One of the project's unikernel images (`image`).
    Unikernel,
}

/// A domain a scenario can create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// Domain name (`{domid:NAME}` in paths and commands becomes its domid).
    pub name: String,
    /// What it is built from.
    pub kind: DomainKind,
    /// Unikernel image name (file /boot/xdd/<image>.elf in dom0).
    #[serde(default)]
    pub image: Option<String>,
    /// `pv` or `pvh`; default pv for Linux, pvh for unikernels.
    #[serde(default, rename = "type")]
    pub domain_type: Option<String>,
    /// Memory in MiB.
    #[serde(default)]
    pub memory: Option<u32>,
    /// Address of the guest's eth0 (`10.0.0.10/24`); Linux kinds only.
    #[serde(default)]
    pub ip: Option<String>,
    /// Extra kernel command line.
    #[serde(default)]
    pub cmdline: String,
    /// More xl.cfg lines (vif=, disk=, pci=, …); `@virtio-net` etc. become BDFs.
    #[serde(default)]
    pub config: String,
    /// Shell script the guest runs after boot (Linux kinds); `check NAME CMD…` reports.
    #[serde(default)]
    pub script: String,
}

impl Domain {
    /// The xl.cfg `type`.
    pub fn xl_type(&self) -> &str {
        self.domain_type.as_deref().unwrap_or(match self.kind {
            DomainKind::Unikernel => "pvh",
            _ => "pv",
        })
    }

    /// Memory in MiB.
    pub fn memory_mib(&self) -> u32 {
        self.memory.unwrap_or(match self.kind {
            DomainKind::LinuxGuest => 160,
            DomainKind::LinuxDd => 128,
            DomainKind::Unikernel => 16,
        })
    }
}

/// One step. Exactly one action key is set (`run` may accompany `check` and `record`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// A dom0 shell command that must succeed (alone, or the body of `check`/`record`);
    /// `@name` of a QEMU device becomes its BDF.
    #[serde(default)]
    pub run: Option<String>,
    /// Names a dom0 check: `run` must exit 0.
    #[serde(default)]
    pub check: Option<String>,
    /// Records `run`'s output (a number) as a metric with this name.
    #[serde(default)]
    pub record: Option<String>,
    /// Unit of a recorded metric.
    #[serde(default)]
    pub unit: Option<String>,
    /// Reports what `run` prints, line by line, under this section of the demo's report for
    /// people (`{t:TIMING}` in a line becomes that timing's value).
    #[serde(default)]
    pub report: Option<String>,
    /// `xl create` of a scenario domain.
    #[serde(default)]
    pub create: Option<String>,
    /// Writes a domain's xl.cfg (and ramdisk) to /run/testbed/<scenario>/<name>.cfg without
    /// creating it, for tools under test (the control plane) to create.
    #[serde(default)]
    pub prepare: Option<String>,
    /// Waits for a guest check: `domain:check` (the guest's data/check/<check> = pass).
    #[serde(default)]
    pub wait: Option<String>,
    /// Waits until a xenstore node exists (`path`) or has a value (`path=value`); `{domid:NAME}` → domid.
    #[serde(default)]
    pub wait_key: Option<String>,
    /// `xl shutdown` of a domain, then waits until it is gone.
    #[serde(default)]
    pub shutdown: Option<String>,
    /// `xl destroy` of a domain.
    #[serde(default)]
    pub destroy: Option<String>,
    /// Sleeps this many seconds.
    #[serde(default)]
    pub sleep: Option<f64>,
    /// `pass` (default) or `fail`: for `create` and `check`, the expected outcome.
    #[serde(default)]
    pub expect: Option<String>,
    /// Step timeout in seconds (default 60; `run` 120).
    #[serde(default)]
    pub timeout_s: Option<u64>,
}

/// The action of a step, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Shell command in dom0 that must succeed.
    Run(String),
    /// Named dom0 check.
    Check { name: String, command: String },
    /// Metric recorded from a command's output.
    Record {
        name: String,
        command: String,
        unit: String,
    },
    /// Lines of a report for people, from a command's output.
    Report { section: String, command: String },
    /// `xl create`.
    Create(String),
    /// Write a domain's xl.cfg without creating it.
    Prepare(String),
    /// Wait for a guest check.
    Wait { domain: String, check: String },
    /// Wait for a xenstore node to exist, or to have a value.
    WaitKey { path: String, value: Option<String> },
    /// Orderly shutdown.
    Shutdown(String),
    /// Destroy.
    Destroy(String),
    /// Sleep.
    Sleep(f64),
}

impl Step {
    /// The step's action, or why the step is malformed.
    pub fn action(&self) -> Result<Action, String> {
        let mut actions = Vec::new();
        if let Some(section) = &self.report {
            if self.check.is_some() || self.record.is_some() {
                return Err("a step is one of `check`, `record`, `report`".into());
            }
            let command = self.run.clone().ok_or("`report` needs `run`")?;
            actions.push(Action::Report {
                section: section.clone(),
                command,
            });
        }
        match (&self.check, &self.record, &self.run) {
            _ if self.report.is_some() => {}
            (Some(_), Some(_), _) => return Err("a step is either `check` or `record`".into()),
            (Some(n), None, Some(c)) => actions.push(Action::Check {
                name: n.clone(),
                command: c.clone(),
            }),
            (None, Some(n), Some(c)) => actions.push(Action::Record {
                name: n.clone(),
                command: c.clone(),
                unit: self.unit.clone().unwrap_or_default(),
            }),
            (Some(_), None, None) | (None, Some(_), None) => {
                return Err("`check` and `record` need `run`".into())
            }
            (None, None, Some(c)) => actions.push(Action::Run(c.clone())),
            (None, None, None) => {}
        }
        if let Some(d) = &self.create {
            actions.push(Action::Create(d.clone()));
        }
        if let Some(d) = &self.prepare {
            actions.push(Action::Prepare(d.clone()));
        }
        if let Some(w) = &self.wait {
            let (domain, check) = w
                .split_once(':')
                .ok_or_else(|| format!("wait = \"{w}\": expected domain:check"))?;
            actions.push(Action::Wait {
                domain: domain.into(),
                check: check.into(),
            });
        }
        if let Some(w) = &self.wait_key {
            let (path, value) = match w.split_once('=') {
                Some((p, v)) => (p.to_string(), Some(v.to_string())),
                None => (w.clone(), None),
            };
            actions.push(Action::WaitKey { path, value });
        }
        if let Some(d) = &self.shutdown {
            actions.push(Action::Shutdown(d.clone()));
        }
        if let Some(d) = &self.destroy {
            actions.push(Action::Destroy(d.clone()));
        }
        if let Some(s) = self.sleep {
            actions.push(Action::Sleep(s));
        }
        match actions.len() {
            1 => Ok(actions.remove(0)),
            0 => Err(
                "a step needs an action (run, check, record, create, wait, wait_key, \
                      shutdown, destroy, sleep)"
                    .into(),
            ),
            _ => Err("a step has more than one action".into()),
        }
    }

    /// True when the step is expected to fail (`expect = "fail"`).
    pub fn expects_failure(&self) -> bool {
        self.expect.as_deref() == Some("fail")
    }

    /// A short label for result lines (no spaces).
    pub fn label(&self) -> String {
        self.describe().replace(' ', "_")
    }

    fn describe(&self) -> String {
        match self.action() {
            Ok(Action::Run(c)) => format!("run {}", first_words(&c)),
            Ok(Action::Check { name, .. }) => name,
            Ok(Action::Record { name, .. }) => name,
            Ok(Action::Report { section, .. }) => format!("report-{section}"),
            Ok(Action::Create(d)) => format!("create-{d}"),
            Ok(Action::Prepare(d)) => format!("prepare-{d}"),
            Ok(Action::Wait { domain, check }) => format!("{domain}:{check}"),
            Ok(Action::WaitKey {
                path,
                value: Some(v),
            }) => format!("key:{path}={v}"),
            Ok(Action::WaitKey { path, value: None }) => format!("key:{path}"),
            Ok(Action::Shutdown(d)) => format!("shutdown-{d}"),
            Ok(Action::Destroy(d)) => format!("destroy-{d}"),
            Ok(Action::Sleep(s)) => format!("sleep-{s}"),
            Err(e) => e,
        }
    }
}

fn first_words(s: &str) -> String {
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    line.chars().take(40).collect()
}

/// A duration between two events, reported as a timing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// Name in the summary.
    pub name: String,
    /// Start event (see [`Event`]).
    pub from: String,
    /// End event: the first matching event after `from`.
    pub to: String,
}

/// An event a timing refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `create:<dom>`: `xl create` started.
    CreateStart(String),
    /// `created:<dom>`: `xl create` returned.
    CreateDone(String),
    /// `xs:<path>=<value>`: a xenstore node took a value (`{domid:NAME}` → domid).
    Xenstore { path: String, value: String },
    /// `mark:<dom>:<name>`: a guest wrote data/mark/<name>.
    Mark { domain: String, name: String },
}

impl Event {
    /// Parses an event reference.
    pub fn parse(s: &str) -> Result<Event, String> {
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("event `{s}`: no kind"))?;
        match kind {
            "create" => Ok(Event::CreateStart(rest.into())),
            "created" => Ok(Event::CreateDone(rest.into())),
            "xs" => {
                let (p, v) = rest
                    .split_once('=')
                    .ok_or_else(|| format!("event `{s}`: expected xs:path=value"))?;
                Ok(Event::Xenstore {
                    path: p.into(),
                    value: v.into(),
                })
            }
            "mark" => {
                let (d, n) = rest
                    .split_once(':')
                    .ok_or_else(|| format!("event `{s}`: expected mark:dom:name"))?;
                Ok(Event::Mark {
                    domain: d.into(),
                    name: n.into(),
                })
            }
            _ => Err(format!(
                "event `{s}`: unknown kind `{kind}` (create, created, xs, mark)"
            )),
        }
    }
}

/// Domain names of the `{domid:NAME}` placeholders in a string (replaced by domids when run).
pub fn placeholders(s: &str) -> Vec<String> {
    s.split("{domid:")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_string()))
        .collect()
}

/// The placeholder text for a domain.
pub fn placeholder(name: &str) -> String {
    format!("{{domid:{name}}}")
}

impl Scenario {
    /// Parses and validates a scenario; `file_stem` is its file name without extension.
    pub fn parse(text: &str, file_stem: &str) -> Result<Scenario, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| format!("{file_stem}.toml: {e}"))?;
        s.validate(file_stem)
            .map_err(|e| format!("{file_stem}.toml: {e}"))?;
        Ok(s)
    }

    /// The longest one step may take, in seconds: its timeout (or the default of its kind),
    /// or its sleep. The agent looks at the scenario's own timeout only between steps, so a
    /// step started just before it may run this much beyond it.
    pub fn longest_step_s(&self) -> u64 {
        self.steps
            .iter()
            .map(|step| match step.action() {
                Ok(Action::Sleep(s)) => s.ceil() as u64,
                Ok(Action::Wait { .. } | Action::WaitKey { .. } | Action::Destroy(_)) => {
                    step.timeout_s.unwrap_or(WAIT_TIMEOUT_S)
                }
                // `xl shutdown` and then the wait for the domain to go, each up to the timeout.
                Ok(Action::Shutdown(_)) => 2 * step.timeout_s.unwrap_or(WAIT_TIMEOUT_S),
                _ => step.timeout_s.unwrap_or(RUN_TIMEOUT_S),
            })
            .max()
            .unwrap_or(0)
    }

    /// How long after it printed `scenario-start` the agent can still be running this
    /// scenario when everything it waits for ends by its timeout: making its devices
    /// assignable, its steps up to `timeout_s` plus one longest step, and the wind-down.
    /// A scenario running longer means dom0 or the whole testbed stopped; the host ends
    /// the boot then instead of waiting for every later scenario's budget too.
    pub fn hard_limit_s(&self) -> u64 {
        let assignable = self
            .qemu_devices
            .iter()
            .filter(|d| d.passed_through())
            .count() as u64;
        assignable * RUN_TIMEOUT_S + self.timeout_s + self.longest_step_s() + WIND_DOWN_S
    }

    /// Looks up a domain by name.
    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| d.name == name)
    }

    fn validate(&self, file_stem: &str) -> Result<(), String> {
        if self.name != file_stem {
            return Err(format!("name `{}` differs from the file name", self.name));
        }
        let mut names = BTreeSet::new();
        for d in &self.domains {
            if d.name.is_empty()
                || !d
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(format!(
                    "domain name `{}`: use letters, digits and '-'",
                    d.name
                ));
            }
            if !names.insert(d.name.as_str()) {
                return Err(format!("domain `{}` is defined twice", d.name));
            }
            match (d.kind, &d.image) {
                (DomainKind::Unikernel, None) => {
                    return Err(format!("domain `{}`: a unikernel needs `image`", d.name))
                }
                (DomainKind::LinuxGuest | DomainKind::LinuxDd, Some(_)) => {
                    return Err(format!("domain `{}`: `image` is for unikernels", d.name))
                }
                _ => {}
            }
            if !matches!(d.xl_type(), "pv" | "pvh") {
                return Err(format!("domain `{}`: type must be pv or pvh", d.name));
            }
            expand_devices(&d.config, &self.qemu_devices)
                .map_err(|e| format!("domain `{}` uses {e}", d.name))?;
        }
        for c in &self.wav_checks {
            let device = c.source.device();
            if !self.qemu_devices.contains(&device) {
                return Err(format!(
                    "wav_check `{}` (source {}) needs the {} device in qemu_devices",
                    c.name,
                    c.source.name(),
                    device.name()
                ));
            }
        }
        for c in &self.disk_checks {
            if c.device.disk_image().is_none() || !self.qemu_devices.contains(&c.device) {
                return Err(format!(
                    "disk_check `{}`: {:?} is not a disk device in qemu_devices",
                    c.name, c.device
                ));
            }
            c.region()
                .map_err(|e| format!("disk_check `{}`: {e}", c.name))?;
        }
        for f in &self.files {
            if !f.path.starts_with('/') {
                return Err(format!("file `{}`: the path must be absolute", f.path));
            }
            expand_device_mentions(&f.content, &self.qemu_devices)
                .map_err(|e| format!("file `{}` uses {e}", f.path))?;
        }
        let known = |n: &str| names.contains(n) || n == "dom0";
        let check_placeholders = |s: &str, what: &str| -> Result<(), String> {
            for p in placeholders(s) {
                if !known(&p) {
                    return Err(format!("{what}: `{}` names no domain", placeholder(&p)));
                }
            }
            Ok(())
        };
        for (i, step) in self.steps.iter().enumerate() {
            let what = format!("step {}", i + 1);
            let action = step.action().map_err(|e| format!("{what}: {e}"))?;
            if step
                .expect
                .as_deref()
                .is_some_and(|e| e != "pass" && e != "fail")
            {
                return Err(format!("{what}: expect must be pass or fail"));
            }
            match &action {
                Action::Create(d)
                | Action::Prepare(d)
                | Action::Shutdown(d)
                | Action::Destroy(d)
                | Action::Wait { domain: d, .. } => {
                    if !names.contains(d.as_str()) {
                        return Err(format!("{what}: unknown domain `{d}`"));
                    }
                }
                Action::Run(c)
                | Action::Check { command: c, .. }
                | Action::Record { command: c, .. }
                | Action::Report { command: c, .. } => {
                    check_placeholders(c, &what)?;
                    expand_device_mentions(c, &self.qemu_devices)
                        .map_err(|e| format!("{what} uses {e}"))?;
                }
                Action::WaitKey { path, .. } => check_placeholders(path, &what)?,
                Action::Sleep(s) if !(0.0..=600.0).contains(s) => {
                    return Err(format!("{what}: sleep must be 0–600 s"))
                }
                Action::Sleep(_) => {}
            }
        }
        for t in &self.timings {
            for e in [&t.from, &t.to] {
                match Event::parse(e).map_err(|err| format!("timing {}: {err}", t.name))? {
                    Event::CreateStart(d)
                    | Event::CreateDone(d)
                    | Event::Mark { domain: d, .. } => {
                        if !names.contains(d.as_str()) {
                            return Err(format!("timing {}: unknown domain `{d}`", t.name));
                        }
                    }
                    Event::Xenstore { path, .. } => {
                        check_placeholders(&path, &format!("timing {}", t.name))?
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "demo"
summary = "a guest pings dom0"
qemu_devices = ["virtio-net"]

[[domain]]
name = "guest"
kind = "linux-guest"
ip = "10.0.0.10/24"
config = "pci = ['@virtio-net']"
script = "check ping ping -c 1 10.0.0.1"

[[step]]
create = "guest"

[[step]]
wait = "guest:ping"
timeout_s = 30

[[step]]
check = "dom0-sees-guest"
run = "xl list guest"

[[timing]]
name = "connected"
from = "create:guest"
to = "xs:/local/domain/{domid:guest}/device/vif/0/state=4"
"#;

    #[test]
    fn parses_a_valid_scenario() {
        let s = Scenario::parse(GOOD, "demo").unwrap();
        assert_eq!(s.domains[0].xl_type(), "pv");
        assert_eq!(s.domains[0].memory_mib(), 160);
        assert_eq!(s.steps[0].action().unwrap(), Action::Create("guest".into()));
        assert_eq!(
            s.steps[1].action().unwrap(),
            Action::Wait {
                domain: "guest".into(),
                check: "ping".into()
            }
        );
        assert!(matches!(s.steps[2].action().unwrap(), Action::Check { .. }));
        assert_eq!(
            Event::parse(&s.timings[0].to).unwrap(),
            Event::Xenstore {
                path: "/local/domain/{domid:guest}/device/vif/0/state".into(),
                value: "4".into()
            }
        );
        assert_eq!(QemuDevice::VirtioNet.bdf(), "0000:00:10.0");
    }

    #[test]
    fn expands_device_mentions_in_files_and_commands() {
        let net = [QemuDevice::VirtioNet];
        assert_eq!(
            expand_device_mentions("devices = [\"@virtio-net\"] # \"$@\" root@host", &net).unwrap(),
            "devices = [\"0000:00:10.0\"] # \"$@\" root@host"
        );
        assert_eq!(
            expand_device_mentions("xl pci-list dd | grep @xhci", &net).unwrap_err(),
            "@xhci: list it in qemu_devices"
        );
        let with_file = format!("{GOOD}\n[[file]]\npath = \"/etc/a\"\ncontent = \"@sound\"\n");
        assert_eq!(
            err(&with_file),
            "demo.toml: file `/etc/a` uses @sound: list it in qemu_devices"
        );
        assert_eq!(
            err(&GOOD.replace(
                "run = \"xl list guest\"",
                "run = \"xl pci-list guest | grep @xhci\""
            )),
            "demo.toml: step 3 uses @xhci: list it in qemu_devices"
        );
    }

    #[test]
    fn expands_device_names_exactly() {
        let both = [QemuDevice::VirtioNet, QemuDevice::VirtioNet2];
        assert_eq!(
            expand_devices("pci = ['@virtio-net-2', '@virtio-net']", &both).unwrap(),
            "pci = ['0000:00:14.0', '0000:00:10.0']"
        );
        assert_eq!(
            expand_devices("pci=['@virtio-net-2']", &[QemuDevice::VirtioNet]).unwrap_err(),
            "@virtio-net-2: list it in qemu_devices"
        );
        let two: Scenario = toml::from_str(
            r#"
name = "t"
summary = "s"
qemu_devices = ["virtio-net-2", "virtio-net"]
"#,
        )
        .unwrap();
        assert_eq!(
            two.qemu_devices,
            [QemuDevice::VirtioNet2, QemuDevice::VirtioNet]
        );
        let slots: BTreeSet<u8> = QemuDevice::ALL.iter().map(|d| d.slot()).collect();
        assert_eq!(
            slots.len(),
            QemuDevice::ALL.len(),
            "every device has its own slot"
        );
        for d in QemuDevice::ALL {
            let one: Scenario = toml::from_str(&format!(
                "name = \"t\"\nsummary = \"s\"\nqemu_devices = [\"{}\"]\n",
                d.name()
            ))
            .unwrap();
            assert_eq!(one.qemu_devices, [d], "{} parses as itself", d.name());
            assert_eq!(
                d.passed_through(),
                !matches!(d, QemuDevice::VirtioNetDom0 | QemuDevice::NvmeDom0)
            );
        }
    }

    fn err(text: &str) -> String {
        Scenario::parse(text, "demo").unwrap_err()
    }

    #[test]
    fn rejects_mistakes_with_a_reason() {
        assert!(err(&GOOD.replace("name = \"demo\"", "name = \"other\"")).contains("differs"));
        assert!(
            err(&GOOD.replace("create = \"guest\"", "create = \"nobody\""))
                .contains("unknown domain")
        );
        assert!(err(&GOOD.replace("qemu_devices = [\"virtio-net\"]", "")).contains("@virtio-net"));
        assert!(err(&GOOD.replace("{domid:guest}", "{domid:ghost}")).contains("names no domain"));
        assert!(
            err(&GOOD.replace("wait = \"guest:ping\"", "wait = \"guest\""))
                .contains("domain:check")
        );
        assert!(
            err(&GOOD.replace("create = \"guest\"", "create = \"guest\"\nsleep = 1.0"))
                .contains("more than one")
        );
        assert!(
            err(&GOOD.replace("kind = \"linux-guest\"", "kind = \"unikernel\"")).contains("image")
        );
        assert!(err(&format!("{GOOD}\n[[step]]\nbogus = 1\n")).contains("bogus"));
        assert!(
            err(&GOOD.replace("from = \"create:guest\"", "from = \"boot:guest\""))
                .contains("unknown kind")
        );
    }

    #[test]
    fn a_wav_check_needs_the_device_of_its_source() {
        let base = "name = \"demo\"\nsummary = \"s\"\n";
        let check = |source: &str| {
            format!("\n[[wav_check]]\nname = \"w\"\n{source}tones_hz = [440.0]\nsecs = 3.0\n")
        };
        let hda = format!("{base}qemu_devices = [\"sound\"]\n{}", check(""));
        assert!(Scenario::parse(&hda, "demo").is_ok());
        let usb = check("source = \"usb-audio\"\n");
        assert_eq!(
            err(&format!("{base}qemu_devices = [\"sound\"]\n{usb}")),
            "demo.toml: wav_check `w` (source usb-audio) needs the xhci-media device in qemu_devices"
        );
        assert!(Scenario::parse(
            &format!("{base}qemu_devices = [\"xhci-media\"]\n{usb}"),
            "demo"
        )
        .is_ok());
    }

    #[test]
    fn the_hard_limit_covers_assignable_devices_every_step_and_the_wind_down() {
        let text = |steps: &str| {
            format!(
                "name = \"demo\"\nsummary = \"s\"\ntimeout_s = 100\nqemu_devices = [\"sound\"]\n{steps}"
            )
        };
        let steps = "[[step]]\nsleep = 30.5\n[[step]]\nrun = \"true\"\ntimeout_s = 400\n\
                     [[step]]\nwait_key = \"/a\"\n";
        let s = Scenario::parse(&text(steps), "demo").unwrap();
        assert!(QemuDevice::Sound.passed_through());
        assert_eq!(s.longest_step_s(), 400);
        assert_eq!(s.hard_limit_s(), RUN_TIMEOUT_S + 100 + 400 + WIND_DOWN_S);
        // Without a step timeout the default of the step's kind counts.
        let s = Scenario::parse(&text("[[step]]\nwait_key = \"/a\"\n"), "demo").unwrap();
        assert_eq!(s.longest_step_s(), WAIT_TIMEOUT_S);
        let s = Scenario::parse(&text("[[step]]\nrun = \"true\"\n"), "demo").unwrap();
        assert_eq!(s.longest_step_s(), RUN_TIMEOUT_S);
        let s = Scenario::parse(&text("[[step]]\nsleep = 599.2\n"), "demo").unwrap();
        assert_eq!(s.longest_step_s(), 600);
    }

    #[test]
    fn finds_placeholders() {
        assert_eq!(
            placeholders("/local/domain/{domid:a}/backend/vif/{domid:b}/0"),
            ["a", "b"]
        );
        assert!(placeholders("awk '{print $3}'").is_empty());
    }
}
