//! One `[[driver_domain]]` checked into a draft: built from an `image` (its xl.cfg
//! generated) or from its own `config`, its readiness, the PCI devices it owns (in
//! `devices`, or `pci = [...]` in its own xl.cfg) and the type owning them requires.

use super::checks::seconds;
use super::load::{Draft, Loader};
use super::model::{Domain, Readiness, Role, Settings};
use super::schema::{DriverToml, DEFAULT_READY_KEY};
use crate::devices::device_entries;
use crate::generate::{driver_xl_cfg, DriverConfig};
use crate::pci::{xl_pci_address, DeviceSpec};
use crate::xlcfg::XlConfig;
use std::path::PathBuf;
use std::time::Duration;

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

impl Loader<'_> {
    /// Checks the `i`-th (from 0) `[[driver_domain]]`; `ready_timeout` is the appliance's
    /// default.
    pub(super) fn driver(
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
                usb_controllers: Vec::new(),
                sound: None,
            },
            cfg,
            uses: d.uses,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::appliance::fixtures::{err, err_with, files, load, APPLIANCE};
    use crate::appliance::Appliance;
    use crate::pci::Bdf;
    use crate::xlcfg::XlConfig;

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
}
