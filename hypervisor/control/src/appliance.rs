//! The appliance file (TOML): driver domains and guests, loaded and checked into a model
//! with every domain's effective xl.cfg and its dependencies. Every mistake is one line that
//! names the file (and line) and what to change, before anything is started.

use crate::devices::{device_entries, is_dom0, DeviceEntry, DeviceKind};
use crate::generate::{driver_xl_cfg, pci_setting, DriverConfig};
use crate::graph::Graph;
use crate::pci::{xl_pci_address, Bdf, DeviceSpec};
use crate::xlcfg::{quote, XlConfig};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `xddctl` looks for the appliance file by default.
pub const DEFAULT_PATH: &str = "/etc/xdd/appliance.toml";
/// Where `image = "name"` is looked up by default (`<dir>/<name>.elf`).
pub const DEFAULT_IMAGE_DIR: &str = "/usr/lib/xen/boot";
/// Where generated xl.cfg files and the stop flag live by default.
pub const DEFAULT_STATE_DIR: &str = "/run/xdd";
/// The readiness key of xdd driver domains, relative to /local/domain/<domid>.
pub const DEFAULT_READY_KEY: &str = "data/ready";

/// Reads the files an appliance refers to (a trait so tests need no filesystem).
pub trait Files {
    /// The contents of a text file.
    fn read(&self, path: &Path) -> Result<String, String>;
    /// True when a regular file exists.
    fn is_file(&self, path: &Path) -> bool;
}

/// The real filesystem.
pub struct RealFiles;

impl Files for RealFiles {
    fn read(&self, path: &Path) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }
    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    name: Option<String>,
    #[serde(default)]
    settings: SettingsToml,
    #[serde(default)]
    defaults: BTreeMap<String, String>,
    #[serde(default, rename = "driver_domain")]
    driver_domains: Vec<DriverToml>,
    #[serde(default, rename = "guest")]
    guests: Vec<GuestToml>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsToml {
    image_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    ready_timeout_s: Option<f64>,
    shutdown_timeout_s: Option<f64>,
    reconnect_timeout_s: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DriverToml {
    name: Option<String>,
    image: Option<String>,
    config: Option<PathBuf>,
    #[serde(rename = "type")]
    domain_type: Option<String>,
    memory: Option<u32>,
    vcpus: Option<u32>,
    #[serde(default, alias = "pci")]
    devices: Vec<String>,
    #[serde(default)]
    serves: Vec<DeviceKind>,
    #[serde(default)]
    uses: Vec<String>,
    cmdline: Option<String>,
    xl_extra: Option<String>,
    ready_key: Option<String>,
    ready_timeout_s: Option<f64>,
    restart: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuestToml {
    name: Option<String>,
    config: PathBuf,
    #[serde(default)]
    uses: Vec<String>,
}

/// Appliance-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Where `image = "name"` is found (`<image_dir>/<name>.elf`).
    pub image_dir: PathBuf,
    /// Generated xl.cfg files and the stop flag.
    pub state_dir: PathBuf,
    /// How long `xl shutdown` may take before `xl destroy`.
    pub shutdown_timeout: Duration,
    /// How long `run` waits for a re-attached device to reconnect.
    pub reconnect_timeout: Duration,
}

/// A domain's part in the appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Serves backends; started first, waited for.
    Driver,
    /// Uses backends; started once they are ready.
    Guest,
}

impl Role {
    /// Short name for tables and timelines.
    pub fn label(self) -> &'static str {
        match self {
            Role::Driver => "driver",
            Role::Guest => "guest",
        }
    }
}

/// How a driver domain says it is ready: `<key>` under /local/domain/<domid> becomes "1".
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    /// Path relative to the domain's home in xenstore.
    pub key: String,
    /// How long after `xl create` returned the key may take.
    pub timeout: Duration,
}

impl Readiness {
    /// The absolute xenstore path for a domid.
    pub fn path(&self, domid: u32) -> String {
        format!("/local/domain/{domid}/{}", self.key)
    }
}

/// One domain of the appliance, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Domain {
    /// Domain name (xl's `name`).
    pub name: String,
    /// Driver domain or guest.
    pub role: Role,
    /// What it is built from: `image <path>` or `config <path>` (for messages and tables).
    pub origin: String,
    /// The unikernel image a generated driver domain boots.
    pub image: Option<PathBuf>,
    /// The xl.cfg file `xl create` gets.
    pub config_path: PathBuf,
    /// Contents xddctl writes to `config_path` before creating (generated or amended
    /// configs); `None` when the domain's own file is used as it is.
    pub generated: Option<String>,
    /// Its backend devices, with the backend each one ends up on (`None`: dom0).
    pub devices: Vec<DeviceEntry>,
    /// Device types it serves (driver domains).
    pub serves: Vec<DeviceKind>,
    /// The driver domains it needs ready before it starts, sorted.
    pub needs: Vec<String>,
    /// How readiness is seen (driver domains).
    pub ready: Option<Readiness>,
    /// Restarted by `xddctl run` when it dies (driver domains).
    pub restart: bool,
    /// PCI devices it owns, as the appliance (or its xl.cfg) names them.
    pub owns: Vec<DeviceSpec>,
    /// Their addresses, once [`crate::passthrough`] resolved them in dom0 (same order).
    pub pci: Vec<Bdf>,
}

impl Domain {
    /// The text xddctl writes to `config_path` (`None`: the domain's own file is used): the
    /// generated or amended config, plus `pci = [...]` with the resolved addresses of a
    /// driver domain built from an image.
    pub fn config_text(&self) -> Result<Option<String>, String> {
        let Some(text) = &self.generated else {
            return Ok(None);
        };
        if self.image.is_none() || self.owns.is_empty() {
            return Ok(Some(text.clone()));
        }
        if self.pci.len() != self.owns.len() {
            return Err(format!(
                "driver domain `{}`: its devices were not resolved in dom0 before writing its \
                 xl.cfg",
                self.name
            ));
        }
        Ok(Some(format!("{text}{}", pci_setting(&self.pci))))
    }
}

/// A checked appliance.
#[derive(Debug, Clone)]
pub struct Appliance {
    /// Name (the file's `name`, else the file stem).
    pub name: String,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Settings.
    pub settings: Settings,
    /// Driver domains (file order), then guests (file order).
    pub domains: Vec<Domain>,
    /// Dependencies between `domains` (same indices).
    pub graph: Graph,
}

impl Appliance {
    /// Loads and checks an appliance file.
    pub fn load(path: &Path, files: &dyn Files) -> Result<Appliance, String> {
        let text = files.read(path)?;
        Appliance::parse(&text, path, files)
    }

    /// Checks appliance text (`path` names it in messages and gives the default name).
    pub fn parse(text: &str, path: &Path, files: &dyn Files) -> Result<Appliance, String> {
        let shown = path.display().to_string();
        let file: FileToml = toml::from_str(text).map_err(|e| toml_error(&shown, text, &e))?;
        Loader {
            shown: &shown,
            files,
        }
        .build(file, path)
    }

    /// A domain by name.
    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| d.name == name)
    }

    /// Index of a domain by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.domains.iter().position(|d| d.name == name)
    }

    /// Indices of the guests.
    pub fn guests(&self) -> BTreeSet<usize> {
        (0..self.domains.len())
            .filter(|&i| self.domains[i].role == Role::Guest)
            .collect()
    }

    /// The order in which a set of domains is stopped: guests together first, then driver
    /// domains once nothing in the set uses them.
    pub fn stop_waves(&self, set: &BTreeSet<usize>) -> Vec<Vec<usize>> {
        self.graph.stop_waves(set, &self.guests())
    }

    /// The file whose presence tells `xddctl run` that `down` is stopping the appliance.
    pub fn stop_flag(&self) -> PathBuf {
        self.settings
            .state_dir
            .join(format!("{}.stopping", self.name))
    }

    /// Writes the generated xl.cfg files into the state directory.
    pub fn write_configs(&self) -> Result<(), String> {
        for d in &self.domains {
            if let Some(text) = d.config_text()? {
                if let Some(dir) = d.config_path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
                std::fs::write(&d.config_path, &text)
                    .map_err(|e| format!("cannot write {}: {e}", d.config_path.display()))?;
            }
        }
        Ok(())
    }
}

/// One line for a TOML error: `file:line:column: message`.
fn toml_error(shown: &str, text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
            format!("{shown}:{line}:{col}: {msg}")
        }
        None => format!("{shown}: {msg}"),
    }
}

fn seconds(v: Option<f64>, default: f64, what: &str, shown: &str) -> Result<Duration, String> {
    let s = v.unwrap_or(default);
    if !(0.0..=3600.0).contains(&s) || s.is_nan() {
        return Err(format!(
            "{shown}: {what} must be between 0 and 3600 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(s))
}

fn check_name(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || is_dom0(name)
    {
        return Err(format!(
            "{what}: `{name}` is not a usable domain name (letters, digits, '-', '_', '.'; \
             not dom0)"
        ));
    }
    Ok(())
}

/// The devices a driver domain's own xl.cfg passes through (`pci = [...]`), by address.
fn xl_pci_entries(cfg: &XlConfig) -> Result<Vec<DeviceSpec>, String> {
    let mut out = Vec::new();
    for v in cfg.get_list("pci").unwrap_or_default() {
        let entry = v.as_str().unwrap_or_default();
        match xl_pci_address(entry) {
            Some(b) => out.push(DeviceSpec::Bdf(b)),
            None => {
                return Err(format!(
                    "{}:{}: pci entry `{entry}`: xddctl checks one PCI function per entry, \
                     named by its address (like 0000:03:00.0)",
                    cfg.source,
                    v.line()
                ))
            }
        }
    }
    Ok(out)
}

/// A domain before dependencies are resolved.
struct Draft {
    domain: Domain,
    /// The parsed xl.cfg text it is created from, and its source name for messages.
    cfg: XlConfig,
    /// Extra dependencies (`uses`).
    uses: Vec<String>,
    /// Where the domain is described, for messages.
    what: String,
}

struct Loader<'a> {
    shown: &'a str,
    files: &'a dyn Files,
}

impl Loader<'_> {
    fn build(&self, file: FileToml, path: &Path) -> Result<Appliance, String> {
        let shown = self.shown;
        let name = match file.name {
            Some(n) => n,
            None => path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("appliance")
                .to_string(),
        };
        check_name(&name, &format!("{shown}: name"))?;
        let st = file.settings;
        let ready_timeout = seconds(st.ready_timeout_s, 30.0, "ready_timeout_s", shown)?;
        let settings = Settings {
            image_dir: st.image_dir.unwrap_or_else(|| DEFAULT_IMAGE_DIR.into()),
            state_dir: st.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            shutdown_timeout: seconds(st.shutdown_timeout_s, 30.0, "shutdown_timeout_s", shown)?,
            reconnect_timeout: seconds(st.reconnect_timeout_s, 30.0, "reconnect_timeout_s", shown)?,
        };
        let mut defaults: BTreeMap<DeviceKind, String> = BTreeMap::new();
        for (k, v) in file.defaults {
            let kind = DeviceKind::from_key(&k).ok_or_else(|| {
                format!("{shown}: [defaults] `{k}` is not a device type (vif, disk, usbctrl, vsnd)")
            })?;
            defaults.insert(kind, v);
        }

        let mut drafts = Vec::new();
        for (i, d) in file.driver_domains.into_iter().enumerate() {
            drafts.push(self.driver(d, i, &settings, ready_timeout)?);
        }
        for (i, g) in file.guests.into_iter().enumerate() {
            drafts.push(self.guest(g, i, &settings)?);
        }

        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for d in &drafts {
            if let Some(first) = seen.insert(d.domain.name.clone(), d.what.clone()) {
                return Err(format!(
                    "{shown}: two domains are called `{}`: {first} and {}",
                    d.domain.name, d.what
                ));
            }
        }
        let drivers: BTreeMap<String, Vec<DeviceKind>> = drafts
            .iter()
            .filter(|d| d.domain.role == Role::Driver)
            .map(|d| (d.domain.name.clone(), d.domain.serves.clone()))
            .collect();
        let driver_list = if drivers.is_empty() {
            "there are none".to_string()
        } else {
            format!(
                "driver domains: {}",
                drivers.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        for (kind, dd) in &defaults {
            match drivers.get(dd) {
                None => {
                    return Err(format!(
                        "{shown}: [defaults] {kind} = \"{dd}\" is not a driver domain of this \
                         appliance ({driver_list})"
                    ))
                }
                Some(serves) if !serves.contains(kind) => {
                    return Err(format!(
                        "{shown}: [defaults] {kind} = \"{dd}\", but `{dd}` does not serve {kind} \
                         (add \"{kind}\" to its `serves`)"
                    ))
                }
                Some(_) => {}
            }
        }

        for d in &mut drafts {
            self.resolve(d, &drivers, &driver_list, &defaults, &settings.state_dir)?;
        }

        let nodes: Vec<(String, Vec<String>)> = drafts
            .iter()
            .map(|d| (d.domain.name.clone(), d.domain.needs.clone()))
            .collect();
        let graph = Graph::new(&nodes).map_err(|e| format!("{shown}: {e}"))?;
        if let Some(cycle) = graph.find_cycle() {
            return Err(format!(
                "{shown}: dependency cycle: {} (each needs the next one ready before it starts)",
                cycle.join(" → ")
            ));
        }
        Ok(Appliance {
            name,
            path: path.to_path_buf(),
            settings,
            domains: drafts.into_iter().map(|d| d.domain).collect(),
            graph,
        })
    }

    /// Where a domain's own xl.cfg is created from: the file itself, or (when it has no
    /// `name =`) a copy with the name added in the state directory.
    fn with_name(
        &self,
        path: &Path,
        cfg: &XlConfig,
        name: &str,
        settings: &Settings,
    ) -> Result<(PathBuf, Option<String>), String> {
        if cfg.get_str("name").is_some() {
            return Ok((path.to_path_buf(), None));
        }
        let text = self.files.read(path)?;
        let text = format!(
            "{text}\n# added by xddctl ({})\nname = {}\n",
            self.shown,
            quote(name)
        );
        Ok((settings.state_dir.join(format!("{name}.cfg")), Some(text)))
    }

    /// Reads and parses a domain's own xl.cfg.
    fn read_cfg(&self, path: &Path, what: &str) -> Result<XlConfig, String> {
        let text = self
            .files
            .read(path)
            .map_err(|e| format!("{}: {what}: {e}", self.shown))?;
        XlConfig::parse(&text, &path.display().to_string()).map_err(|e| e.to_string())
    }

    /// The domain name from the appliance and/or its xl.cfg, which must agree.
    fn name_of(
        &self,
        given: Option<String>,
        cfg: Option<&XlConfig>,
        what: &str,
    ) -> Result<String, String> {
        let from_cfg = cfg.and_then(|c| c.get_str("name"));
        let name = match (given, from_cfg) {
            (Some(a), Some(b)) if a != b => {
                let c = cfg.expect("cfg has a name");
                return Err(format!(
                    "{}:{}: name = \"{b}\", but the appliance calls this domain `{a}` \
                     ({}); make them equal",
                    c.source,
                    c.line_of("name").unwrap_or(1),
                    self.shown
                ));
            }
            (Some(a), _) => a,
            (None, Some(b)) => b,
            (None, None) => {
                return Err(match cfg {
                    Some(c) => format!(
                        "{}: no `name =` in this xl.cfg and no `name` for it in {}",
                        c.source, self.shown
                    ),
                    None => format!("{}: {what} needs a `name`", self.shown),
                })
            }
        };
        check_name(&name, &format!("{}: {what}", self.shown))?;
        Ok(name)
    }

    fn driver(
        &self,
        d: DriverToml,
        i: usize,
        settings: &Settings,
        ready_timeout: Duration,
    ) -> Result<Draft, String> {
        let shown = self.shown;
        let label = format!(
            "driver domain #{}{}",
            i + 1,
            d.name
                .as_ref()
                .map(|n| format!(" `{n}`"))
                .unwrap_or_default()
        );
        let ready_key = d.ready_key.unwrap_or_else(|| DEFAULT_READY_KEY.into());
        if ready_key.is_empty() || ready_key.starts_with('/') || ready_key.contains("//") {
            return Err(format!(
                "{shown}: {label}: ready_key `{ready_key}` must be a relative xenstore path \
                 (like data/ready)"
            ));
        }
        let ready = Readiness {
            key: ready_key,
            timeout: seconds(
                d.ready_timeout_s,
                ready_timeout.as_secs_f64(),
                "ready_timeout_s",
                &format!("{shown}: {label}"),
            )?,
        };
        let mut image_path = None;
        let (name, origin, config_path, generated, cfg, owns) = match (&d.image, &d.config) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(format!(
                    "{shown}: {label}: give either `image` (a unikernel in {}) or `config` \
                     (an xl.cfg file)",
                    settings.image_dir.display()
                ))
            }
            (None, Some(path)) => {
                if !d.devices.is_empty() {
                    return Err(format!(
                        "{shown}: {label}: its PCI devices come from its xl.cfg ({}, \
                         `pci = [...]`); list them there",
                        path.display()
                    ));
                }
                for (set, key) in [
                    (d.domain_type.is_some(), "type"),
                    (d.memory.is_some(), "memory"),
                    (d.vcpus.is_some(), "vcpus"),
                    (d.cmdline.is_some(), "cmdline"),
                    (d.xl_extra.is_some(), "xl_extra"),
                ] {
                    if set {
                        return Err(format!(
                            "{shown}: {label}: `{key}` comes from its xl.cfg ({}); set it there",
                            path.display()
                        ));
                    }
                }
                let cfg = self.read_cfg(path, &label)?;
                let name = self.name_of(d.name.clone(), Some(&cfg), &label)?;
                let owns = xl_pci_entries(&cfg)?;
                if let (Some(first), Some(ty)) = (owns.first(), cfg.get_str("type")) {
                    if ty != "pv" {
                        return Err(format!(
                            "{}:{}: driver domain `{name}` owns device {first}, so it must be \
                             type = \"pv\" (it is \"{ty}\"; Xen refuses PCI passthrough to \
                             PVH and this appliance drives no HVM device model)",
                            cfg.source,
                            cfg.line_of("type").unwrap_or(1)
                        ));
                    }
                }
                let (config_path, generated) = self.with_name(path, &cfg, &name, settings)?;
                let origin = format!("config {}", path.display());
                (name, origin, config_path, generated, cfg, owns)
            }
            (Some(image), None) => {
                let name = self.name_of(d.name.clone(), None, &label)?;
                let label = format!("driver domain `{name}`");
                let path = if image.contains('/') {
                    PathBuf::from(image)
                } else {
                    settings.image_dir.join(format!("{image}.elf"))
                };
                if !self.files.is_file(&path) {
                    return Err(format!(
                        "{shown}: {label}: unknown image `{image}`: {} does not exist \
                         (install it with `xddctl install --images DIR`, or set \
                         settings.image_dir)",
                        path.display()
                    ));
                }
                let image_path = image_path.insert(path);
                let ty = d.domain_type.clone().unwrap_or_else(|| "pvh".into());
                if ty != "pv" && ty != "pvh" {
                    return Err(format!(
                        "{shown}: {label}: type = \"{ty}\"; driver domains are \"pv\" or \"pvh\""
                    ));
                }
                let owns = d
                    .devices
                    .iter()
                    .map(|s| DeviceSpec::parse(s))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("{shown}: {label}: {e}"))?;
                if let Some(first) = owns.first() {
                    if ty != "pv" {
                        return Err(format!(
                            "{shown}: {label}: owns device {first}, so it must be type = \"pv\" \
                             (it is \"{ty}\"; Xen refuses PCI passthrough to PVH guests)"
                        ));
                    }
                }
                let text = driver_xl_cfg(&DriverConfig {
                    name: &name,
                    ty: &ty,
                    kernel: image_path,
                    memory: d.memory.unwrap_or(32),
                    vcpus: d.vcpus.unwrap_or(1),
                    cmdline: d.cmdline.as_deref(),
                    extra: d.xl_extra.as_deref(),
                    source: shown,
                });
                let cfg_name = format!("{shown} (driver domain `{name}`, generated)");
                let cfg = XlConfig::parse(&text, &cfg_name).map_err(|e| {
                    format!("{shown}: {label}: xl_extra does not parse: {}", e.message)
                })?;
                if cfg.get("pci").is_some() {
                    return Err(format!(
                        "{shown}: {label}: list its PCI devices in `devices`, not as pci= in \
                         xl_extra (xddctl checks, resolves and assigns them)"
                    ));
                }
                let origin = format!("image {}", image_path.display());
                let path = settings.state_dir.join(format!("{name}.cfg"));
                (name, origin, path, Some(text), cfg, owns)
            }
        };
        let devices = device_entries(&cfg).map_err(|e| e.to_string())?;
        Ok(Draft {
            what: format!("driver domain ({origin})"),
            domain: Domain {
                name,
                role: Role::Driver,
                origin,
                image: image_path,
                config_path,
                generated,
                devices,
                serves: d.serves,
                needs: Vec::new(),
                ready: Some(ready),
                restart: d.restart.unwrap_or(true),
                owns,
                pci: Vec::new(),
            },
            cfg,
            uses: d.uses,
        })
    }

    fn guest(&self, g: GuestToml, i: usize, settings: &Settings) -> Result<Draft, String> {
        let label = format!("guest #{}", i + 1);
        let cfg = self.read_cfg(&g.config, &label)?;
        let name = self.name_of(g.name, Some(&cfg), &label)?;
        let devices = device_entries(&cfg).map_err(|e| e.to_string())?;
        let origin = format!("config {}", g.config.display());
        let (config_path, generated) = self.with_name(&g.config, &cfg, &name, settings)?;
        Ok(Draft {
            what: format!("guest ({origin})"),
            domain: Domain {
                config_path,
                name,
                role: Role::Guest,
                origin,
                image: None,
                generated,
                devices,
                serves: Vec::new(),
                needs: Vec::new(),
                ready: None,
                restart: false,
                owns: Vec::new(),
                pci: Vec::new(),
            },
            cfg,
            uses: g.uses,
        })
    }

    /// Resolves a draft's backends (applying defaults to guests), its dependencies, and the
    /// amended xl.cfg when a default backend or a name had to be added.
    fn resolve(
        &self,
        d: &mut Draft,
        drivers: &BTreeMap<String, Vec<DeviceKind>>,
        driver_list: &str,
        defaults: &BTreeMap<DeviceKind, String>,
        state_dir: &Path,
    ) -> Result<(), String> {
        let mut needs: BTreeSet<String> = BTreeSet::new();
        let mut amended: BTreeSet<DeviceKind> = BTreeSet::new();
        let is_guest = d.domain.role == Role::Guest;
        for dev in &mut d.domain.devices {
            let at = format!("{}:{}", d.cfg.source, dev.line);
            let backend = match &dev.backend {
                Some(b) if is_dom0(b) => continue,
                Some(b) => b.clone(),
                None => match defaults.get(&dev.kind) {
                    Some(b) if is_guest => {
                        dev.value = dev.with_backend(b);
                        dev.backend = Some(b.clone());
                        amended.insert(dev.kind);
                        b.clone()
                    }
                    _ => continue,
                },
            };
            if backend == d.domain.name {
                return Err(format!(
                    "{at}: {} backend `{backend}` is this domain itself",
                    dev.kind
                ));
            }
            match drivers.get(&backend) {
                None => {
                    return Err(format!(
                        "{at}: {} backend `{backend}` is not a driver domain of this appliance \
                         ({driver_list}; {})",
                        dev.kind, self.shown
                    ))
                }
                Some(serves) if !serves.contains(&dev.kind) => {
                    let s = if serves.is_empty() {
                        "nothing".to_string()
                    } else {
                        serves
                            .iter()
                            .map(|k| k.key())
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    return Err(format!(
                        "{at}: {} backend `{backend}` does not serve {} (it serves {s}; \
                         see its `serves` in {})",
                        dev.kind, dev.kind, self.shown
                    ));
                }
                Some(_) => {
                    needs.insert(backend);
                }
            }
        }
        for u in &d.uses {
            if !drivers.contains_key(u) {
                return Err(format!(
                    "{}: {}: uses `{u}`, which is not a driver domain of this appliance \
                     ({driver_list})",
                    self.shown, d.what
                ));
            }
            needs.insert(u.clone());
        }
        d.domain.needs = needs.into_iter().collect();
        if !amended.is_empty() {
            let base = match &d.domain.generated {
                Some(t) => t.clone(),
                None => self
                    .files
                    .read(&d.domain.config_path)
                    .map_err(|e| format!("{}: {e}", self.shown))?,
            };
            let mut text = format!(
                "{base}\n# added by xddctl: default backends from {}\n",
                self.shown
            );
            for kind in amended {
                let items: Vec<String> = d
                    .domain
                    .devices
                    .iter()
                    .filter(|e| e.kind == kind)
                    .map(|e| e.value.to_xl())
                    .collect();
                text.push_str(&format!("{} = [ {} ]\n", kind.key(), items.join(", ")));
            }
            d.domain.generated = Some(text);
            d.domain.config_path = state_dir.join(format!("{}.cfg", d.domain.name));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Files in memory.
    pub(crate) struct MemFiles(pub BTreeMap<PathBuf, String>);

    impl Files for MemFiles {
        fn read(&self, path: &Path) -> Result<String, String> {
            self.0
                .get(path)
                .cloned()
                .ok_or_else(|| format!("cannot read {}: No such file or directory", path.display()))
        }
        fn is_file(&self, path: &Path) -> bool {
            self.0.contains_key(path)
        }
    }

    pub(crate) const APPLIANCE: &str = r#"
[settings]
image_dir = "/boot/xdd"
state_dir = "/run/xdd"
ready_timeout_s = 20

[defaults]
vif = "netdd"

[[driver_domain]]
config = "/etc/xdd/netdd.cfg"
serves = ["vif"]

[[driver_domain]]
name = "hello"
image = "hello"
memory = 16
cmdline = "hello.greeting=1"
ready_timeout_s = 5

[[guest]]
config = "/etc/xen/web1.cfg"

[[guest]]
config = "/etc/xen/web2.cfg"
"#;

    pub(crate) fn files() -> MemFiles {
        let mut m = BTreeMap::new();
        for (p, t) in [
            ("/etc/xdd/appliance.toml", APPLIANCE),
            (
                "/etc/xdd/netdd.cfg",
                "name = \"netdd\"\ntype = \"pv\"\nmemory = 128\ndriver_domain = 1\n",
            ),
            ("/boot/xdd/hello.elf", "\x7fELF"),
            (
                "/etc/xen/web1.cfg",
                "name = \"web1\"\nmemory = 160\nvif = [ 'backend=netdd,mac=00:16:3e:00:01:10' ]\n",
            ),
            (
                "/etc/xen/web2.cfg",
                "name = \"web2\"\nvif = [ 'mac=00:16:3e:00:01:11',\n        'bridge=xenbr0,backend=0' ]\n",
            ),
        ] {
            m.insert(PathBuf::from(p), t.to_string());
        }
        MemFiles(m)
    }

    /// An appliance text whose `hello` driver domain runs as PV and owns the first virtio-net
    /// of [`crate::pci::tests::bus`] by its ID.
    pub(crate) fn owning_a_nic(text: &str) -> String {
        text.replace(
            "memory = 16",
            "memory = 16\ntype = \"pv\"\ndevices = [\"1af4:1000#1\"]",
        )
    }

    pub(crate) fn load(text: &str, files: &MemFiles) -> Result<Appliance, String> {
        Appliance::parse(text, Path::new("/etc/xdd/appliance.toml"), files)
    }

    fn err(text: &str) -> String {
        load(text, &files()).unwrap_err()
    }

    fn err_with(text: &str, path: &str, content: &str) -> String {
        let mut f = files();
        f.0.insert(PathBuf::from(path), content.to_string());
        load(text, &f).unwrap_err()
    }

    #[test]
    fn loads_driver_domains_and_guests() {
        let a = load(APPLIANCE, &files()).unwrap();
        assert_eq!(a.name, "appliance");
        let names: Vec<&str> = a.domains.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["netdd", "hello", "web1", "web2"]);
        let netdd = a.domain("netdd").unwrap();
        assert_eq!(netdd.role, Role::Driver);
        assert_eq!(netdd.config_path, Path::new("/etc/xdd/netdd.cfg"));
        assert_eq!(netdd.generated, None);
        assert_eq!(
            netdd.ready,
            Some(Readiness {
                key: "data/ready".into(),
                timeout: Duration::from_secs(20)
            })
        );
        let hello = a.domain("hello").unwrap();
        assert_eq!(hello.config_path, Path::new("/run/xdd/hello.cfg"));
        let text = hello.generated.as_deref().unwrap();
        for line in [
            "name = \"hello\"",
            "type = \"pvh\"",
            "kernel = \"/boot/xdd/hello.elf\"",
            "memory = 16",
            "cmdline = \"hello.greeting=1\"",
            "on_crash = \"destroy\"",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
        assert_eq!(
            hello.ready.as_ref().unwrap().timeout,
            Duration::from_secs(5)
        );
        assert_eq!(
            hello.ready.as_ref().unwrap().path(7),
            "/local/domain/7/data/ready"
        );

        let web1 = a.domain("web1").unwrap();
        assert_eq!(web1.needs, ["netdd"]);
        assert_eq!(web1.generated, None);
        assert_eq!(web1.config_path, Path::new("/etc/xen/web1.cfg"));
        // web2's first vif had no backend: the default applies, written into a copy.
        let web2 = a.domain("web2").unwrap();
        assert_eq!(web2.needs, ["netdd"]);
        assert_eq!(web2.config_path, Path::new("/run/xdd/web2.cfg"));
        let amended = web2.generated.as_deref().unwrap();
        assert!(amended.ends_with(
            "vif = [ \"mac=00:16:3e:00:01:11,backend=netdd\", \"bridge=xenbr0,backend=0\" ]\n"
        ));
        let reparsed = XlConfig::parse(amended, "web2").unwrap();
        let devs = device_entries(&reparsed).unwrap();
        assert_eq!(devs[0].backend.as_deref(), Some("netdd"));
        assert_eq!(devs[1].backend.as_deref(), Some("0"));

        let waves: Vec<Vec<&str>> = a
            .graph
            .start_waves()
            .into_iter()
            .map(|w| w.into_iter().map(|i| a.domains[i].name.as_str()).collect())
            .collect();
        assert_eq!(waves, [vec!["netdd", "hello"], vec!["web1", "web2"]]);
        assert_eq!(a.stop_flag(), Path::new("/run/xdd/appliance.stopping"));
    }

    #[test]
    fn driver_domains_using_each_other_are_ordered() {
        let text = r#"
[[driver_domain]]
name = "stordd"
image = "/boot/xdd/hello.elf"
serves = ["disk"]
xl_extra = "vif = [ 'backend=netdd' ]"
[[driver_domain]]
name = "netdd"
image = "/boot/xdd/hello.elf"
type = "pv"
pci = ["0000:00:10.0"]
serves = ["vif"]
[[guest]]
config = "/etc/xen/db.cfg"
"#;
        let mut f = files();
        f.0.insert(
            "/etc/xen/db.cfg".into(),
            "name='db'\ndisk=['backend=stordd,vdev=xvda,target=/srv/db.img']".into(),
        );
        let a = load(text, &f).unwrap();
        assert_eq!(a.domain("stordd").unwrap().needs, ["netdd"]);
        assert_eq!(a.domain("db").unwrap().needs, ["stordd"]);
        // `pci` is the former name of `devices`.
        let netdd = a.domain("netdd").unwrap();
        assert_eq!(netdd.owns, [DeviceSpec::parse("0000:00:10.0").unwrap()]);
        let order: Vec<&str> = a
            .graph
            .start_waves()
            .concat()
            .into_iter()
            .map(|i| a.domains[i].name.as_str())
            .collect();
        assert_eq!(order, ["netdd", "stordd", "db"]);
    }

    #[test]
    fn driver_domains_own_devices_by_address_or_id() {
        let text = r#"
[[driver_domain]]
name = "nicdd"
image = "/boot/xdd/hello.elf"
type = "pv"
devices = ["00:10.0", "1af4:1000#2", "8086:10FB"]
[[driver_domain]]
config = "/etc/xdd/usbdd.cfg"
"#;
        let mut f = files();
        f.0.insert(
            "/etc/xdd/usbdd.cfg".into(),
            "name = 'usbdd'\ntype = 'pv'\npci = [ '00:12.0@3,permissive=1', 'bdf=0000:00:13.0' ]\n"
                .into(),
        );
        let mut a = load(text, &f).unwrap();
        let owns = |a: &Appliance, n: &str| -> Vec<String> {
            a.domain(n)
                .unwrap()
                .owns
                .iter()
                .map(|s| s.to_string())
                .collect()
        };
        assert_eq!(
            owns(&a, "nicdd"),
            ["0000:00:10.0", "1af4:1000#2", "8086:10fb"]
        );
        assert_eq!(owns(&a, "usbdd"), ["0000:00:12.0", "0000:00:13.0"]);
        // The generated xl.cfg gets the addresses once they are resolved, never before.
        let nicdd = &mut a.domains[0];
        assert!(!nicdd.generated.as_deref().unwrap().contains("pci"));
        assert_eq!(
            nicdd.config_text().unwrap_err(),
            "driver domain `nicdd`: its devices were not resolved in dom0 before writing its \
             xl.cfg"
        );
        nicdd.pci = ["00:10.0", "00:11.0", "03:00.0"]
            .map(|b| Bdf::parse(b).unwrap())
            .to_vec();
        let text = nicdd.config_text().unwrap().unwrap();
        let cfg = XlConfig::parse(&text, "nicdd").unwrap();
        let pci: Vec<String> = cfg
            .get_list("pci")
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        assert_eq!(pci, ["0000:00:10.0", "0000:00:11.0", "0000:03:00.0"]);
        // A config driver domain's own xl.cfg is used as it is.
        assert_eq!(a.domain("usbdd").unwrap().config_text().unwrap(), None);
    }

    #[test]
    fn one_clear_error_for_each_mistake_about_devices() {
        let pv = APPLIANCE.replace("memory = 16", "memory = 16\ntype = \"pv\"");
        assert_eq!(
            err(&pv.replace("memory = 16", "memory = 16\ndevices = [\"eth0\"]")),
            "/etc/xdd/appliance.toml: driver domain `hello`: device `eth0` is neither a PCI \
             address (0000:03:00.0 or 03:00.0) nor a vendor:device ID (8086:10fb, or \
             8086:10fb#2 for the second of several)"
        );
        assert_eq!(
            err(&APPLIANCE.replace("memory = 16", "memory = 16\ndevices = [\"0000:03:00.0\"]")),
            "/etc/xdd/appliance.toml: driver domain `hello`: owns device 0000:03:00.0, so it \
             must be type = \"pv\" (it is \"pvh\"; Xen refuses PCI passthrough to PVH guests)"
        );
        assert_eq!(
            err(&APPLIANCE.replace(
                "memory = 16",
                "memory = 16\ntype = \"pvh\"\npci = [\"8086:10fb\"]"
            )),
            "/etc/xdd/appliance.toml: driver domain `hello`: owns device 8086:10fb, so it must \
             be type = \"pv\" (it is \"pvh\"; Xen refuses PCI passthrough to PVH guests)"
        );
        assert_eq!(
            err(&pv.replace(
                "memory = 16",
                "memory = 16\nxl_extra = \"pci = [ '03:00.0' ]\""
            )),
            "/etc/xdd/appliance.toml: driver domain `hello`: list its PCI devices in `devices`, \
             not as pci= in xl_extra (xddctl checks, resolves and assigns them)"
        );
        assert_eq!(
            err(&APPLIANCE.replace(
                "serves = [\"vif\"]",
                "serves = [\"vif\"]\ndevices = [\"03:00.0\"]"
            )),
            "/etc/xdd/appliance.toml: driver domain #1: its PCI devices come from its xl.cfg \
             (/etc/xdd/netdd.cfg, `pci = [...]`); list them there"
        );
        assert_eq!(
            err_with(
                APPLIANCE,
                "/etc/xdd/netdd.cfg",
                "name = 'netdd'\ntype = 'pvh'\npci = [ '03:00.0' ]\n"
            ),
            "/etc/xdd/netdd.cfg:2: driver domain `netdd` owns device 0000:03:00.0, so it must be \
             type = \"pv\" (it is \"pvh\"; Xen refuses PCI passthrough to PVH and this \
             appliance drives no HVM device model)"
        );
        assert_eq!(
            err_with(
                APPLIANCE,
                "/etc/xdd/netdd.cfg",
                "name = 'netdd'\ntype = 'pv'\npci = [\n  '03:00.*' ]\n"
            ),
            "/etc/xdd/netdd.cfg:4: pci entry `03:00.*`: xddctl checks one PCI function per \
             entry, named by its address (like 0000:03:00.0)"
        );
    }

    #[test]
    fn one_clear_error_for_each_mistake() {
        assert_eq!(
            err(&APPLIANCE.replace("image = \"hello\"", "image = \"netback\"")),
            "/etc/xdd/appliance.toml: driver domain `hello`: unknown image `netback`: \
             /boot/xdd/netback.elf does not exist (install it with `xddctl install --images \
             DIR`, or set settings.image_dir)"
        );
        assert_eq!(
            err_with(
                APPLIANCE,
                "/etc/xen/web1.cfg",
                "name='web1'\n\nvif=['backend=netd']"
            ),
            "/etc/xen/web1.cfg:3: vif backend `netd` is not a driver domain of this appliance \
             (driver domains: hello, netdd; /etc/xdd/appliance.toml)"
        );
        assert_eq!(
            err_with(
                APPLIANCE,
                "/etc/xen/web1.cfg",
                "name='web1'\nvif=['backend=hello']"
            ),
            "/etc/xen/web1.cfg:2: vif backend `hello` does not serve vif (it serves nothing; \
             see its `serves` in /etc/xdd/appliance.toml)"
        );
        assert_eq!(
            err_with(APPLIANCE, "/etc/xen/web2.cfg", "name = 'web1'"),
            "/etc/xdd/appliance.toml: two domains are called `web1`: guest (config \
             /etc/xen/web1.cfg) and guest (config /etc/xen/web2.cfg)"
        );
        assert_eq!(
            err_with(APPLIANCE, "/etc/xen/web2.cfg", "name = 'web2'\nvif = [ 'a',\nmemory = 3"),
            "/etc/xen/web2.cfg:3: expected a value or `]` in the list of `vif` (opened on line 2), \
             found `memory`"
        );
        assert_eq!(
            err_with(APPLIANCE, "/etc/xen/web2.cfg", "name = 'Domain-0'"),
            "/etc/xdd/appliance.toml: guest #2: `Domain-0` is not a usable domain name \
             (letters, digits, '-', '_', '.'; not dom0)"
        );
        assert_eq!(
            err(&APPLIANCE.replace(
                "config = \"/etc/xen/web2.cfg\"",
                "config = \"/etc/xen/web2.cfg\"\nname = \"db\""
            )),
            "/etc/xen/web2.cfg:1: name = \"web2\", but the appliance calls this domain `db` \
             (/etc/xdd/appliance.toml); make them equal"
        );
        assert_eq!(
            err_with(APPLIANCE, "/etc/xen/web2.cfg", "memory = 3"),
            "/etc/xen/web2.cfg: no `name =` in this xl.cfg and no `name` for it in \
             /etc/xdd/appliance.toml"
        );
        assert_eq!(
            err(&APPLIANCE.replace("/etc/xen/web2.cfg", "/etc/xen/nope.cfg")),
            "/etc/xdd/appliance.toml: guest #2: cannot read /etc/xen/nope.cfg: No such file or \
             directory"
        );
        assert_eq!(
            err(&APPLIANCE.replace("[defaults]", "[defaults]\nvfi = \"netdd\"")),
            "/etc/xdd/appliance.toml: [defaults] `vfi` is not a device type (vif, disk, \
             usbctrl, vsnd)"
        );
        assert_eq!(
            err(&APPLIANCE.replace("vif = \"netdd\"", "vif = \"hello\"")),
            "/etc/xdd/appliance.toml: [defaults] vif = \"hello\", but `hello` does not serve \
             vif (add \"vif\" to its `serves`)"
        );
        assert_eq!(
            err(&APPLIANCE.replace("image = \"hello\"", "image = \"hello\"\nconfig = \"/x\"")),
            "/etc/xdd/appliance.toml: driver domain #2 `hello`: give either `image` (a \
             unikernel in /boot/xdd) or `config` (an xl.cfg file)"
        );
        assert_eq!(
            err(&APPLIANCE.replace("serves = [\"vif\"]", "serves = [\"vif\"]\nmemory = 64")),
            "/etc/xdd/appliance.toml: driver domain #1: `memory` comes from its xl.cfg \
             (/etc/xdd/netdd.cfg); set it there"
        );
        assert_eq!(
            err(&APPLIANCE.replace(
                "serves = [\"vif\"]",
                "serves = [\"vif\"]\nuses = [\"web1\"]"
            )),
            "/etc/xdd/appliance.toml: driver domain (config /etc/xdd/netdd.cfg): uses `web1`, \
             which is not a driver domain of this appliance (driver domains: hello, netdd)"
        );
        assert_eq!(
            err(&APPLIANCE.replace("ready_timeout_s = 5", "ready_key = \"/data/ready\"")),
            "/etc/xdd/appliance.toml: driver domain #2 `hello`: ready_key `/data/ready` must be \
             a relative xenstore path (like data/ready)"
        );
        assert_eq!(
            err(&APPLIANCE.replace("serves = [\"vif\"]", "serves = [\"net\"]")),
            "/etc/xdd/appliance.toml:12:11: unknown variant `net`, expected one of `vif`, \
             `disk`, `usbctrl`, `vsnd`"
        );
        assert_eq!(
            err(&APPLIANCE.replace("memory = 16", "memroy = 16")),
            "/etc/xdd/appliance.toml:17:1: unknown field `memroy`, expected one of `name`, \
             `image`, `config`, `type`, `memory`, `vcpus`, `devices`, `pci`, `serves`, `uses`, \
             `cmdline`, `xl_extra`, `ready_key`, `ready_timeout_s`, `restart`"
        );
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let mut f = files();
        for p in [
            "/usr/lib/xen/boot/netback.elf",
            "/usr/lib/xen/boot/blkback.elf",
        ] {
            f.0.insert(p.into(), "\x7fELF".into());
        }
        f.0.insert(
            "/etc/xdd/usbdd.cfg".into(),
            "name = 'usbdd'\ntype = 'pv'\nmemory = 128\ndriver_domain = 1\n".into(),
        );
        f.0.insert(
            "/etc/xen/web.cfg".into(),
            "name = 'web'\nvif = [ 'mac=00:16:3e:00:00:10' ]\nusbctrl = [ 'version=2,backend=usbdd' ]\n"
                .into(),
        );
        f.0.insert(
            "/etc/xen/db.cfg".into(),
            "name = 'db'\nvif = [ '' ]\ndisk = [ 'vdev=xvda, target=/srv/db.img' ]\n".into(),
        );
        let text = include_str!("../dist/appliance.toml");
        let a = Appliance::parse(text, Path::new("/etc/xdd/appliance.toml"), &f).unwrap();
        assert_eq!(a.domain("blkdd").unwrap().needs, ["netdd"]);
        assert_eq!(a.domain("web").unwrap().needs, ["netdd", "usbdd"]);
        assert_eq!(a.domain("db").unwrap().needs, ["blkdd", "netdd"]);
        let order: Vec<Vec<&str>> = a
            .graph
            .start_waves()
            .into_iter()
            .map(|w| w.into_iter().map(|i| a.domains[i].name.as_str()).collect())
            .collect();
        assert_eq!(
            order,
            [vec!["netdd", "usbdd"], vec!["blkdd", "web"], vec!["db"]]
        );
    }

    #[test]
    fn names_a_dependency_cycle() {
        let text = r#"
[[driver_domain]]
name = "stordd"
image = "hello"
serves = ["disk"]
xl_extra = "vif = [ 'backend=netdd' ]"
[[driver_domain]]
name = "netdd"
image = "hello"
serves = ["vif"]
uses = ["stordd"]
[settings]
image_dir = "/boot/xdd"
"#;
        assert_eq!(
            err(text),
            "/etc/xdd/appliance.toml: dependency cycle: stordd → netdd → stordd (each needs \
             the next one ready before it starts)"
        );
        let selfish = r#"
[[driver_domain]]
name = "netdd"
image = "/boot/xdd/hello.elf"
serves = ["vif"]
xl_extra = "vif = [ 'backend=netdd' ]"
"#;
        assert_eq!(
            err(selfish),
            "/etc/xdd/appliance.toml (driver domain `netdd`, generated):13: vif backend `netdd` \
             is this domain itself"
        );
    }
}
