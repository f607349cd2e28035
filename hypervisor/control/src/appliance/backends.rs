//! Which driver domain serves which device: `[defaults]` (the backend of guests' devices
//! that name none), each device's backend checked against the driver domains and what they
//! `serve`, the `needs` that follow (plus `uses`), and the amended xl.cfg of a guest that got
//! a default backend.

use super::load::{Draft, Loader};
use super::model::Role;
use crate::devices::{is_dom0, DeviceKind};
use crate::vusb::UsbController;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `[defaults]` by device type; refuses a key that is not one.
pub(super) fn parse_defaults(
    shown: &str,
    raw: BTreeMap<String, String>,
) -> Result<BTreeMap<DeviceKind, String>, String> {
    let mut defaults: BTreeMap<DeviceKind, String> = BTreeMap::new();
    for (k, v) in raw {
        let kind = DeviceKind::from_key(&k).ok_or_else(|| {
            format!("{shown}: [defaults] `{k}` is not a device type (vif, disk, usbctrl, vsnd)")
        })?;
        defaults.insert(kind, v);
    }
    Ok(defaults)
}

impl Loader<'_> {
    /// Checks `[defaults]` against the driver domains, then resolves every draft's backends
    /// and dependencies.
    pub(super) fn resolve_backends(
        &self,
        drafts: &mut [Draft],
        defaults: &BTreeMap<DeviceKind, String>,
        state_dir: &Path,
    ) -> Result<(), String> {
        let shown = self.shown;
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
        for (kind, dd) in defaults {
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

        for d in drafts {
            self.resolve(d, &drivers, &driver_list, defaults, state_dir)?;
        }
        Ok(())
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
        // usbctrl entries a driver domain serves: xddctl creates them, xl must not see them.
        let mut served_usb: BTreeSet<usize> = BTreeSet::new();
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
                    if dev.kind == DeviceKind::Usbctrl {
                        let c = UsbController::from_entry(dev, &backend, &at)?;
                        if let Some(other) =
                            d.domain.usb_controllers.iter().find(|o| o.devid == c.devid)
                        {
                            return Err(format!(
                                "{at}: usbctrl devid {} is also the devid of `{other}`",
                                c.devid
                            ));
                        }
                        d.domain.usb_controllers.push(c);
                        served_usb.insert(dev.index);
                        amended.insert(DeviceKind::Usbctrl);
                    }
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
            if !served_usb.is_empty() {
                text.push_str(
                    "# usbctrl entries a driver domain serves are left out: xddctl creates \
                     them after `xl create` (xl cannot)\n",
                );
            }
            for kind in amended {
                let items: Vec<String> = d
                    .domain
                    .devices
                    .iter()
                    .filter(|e| e.kind == kind)
                    .filter(|e| !(kind == DeviceKind::Usbctrl && served_usb.contains(&e.index)))
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
mod tests {
    use crate::appliance::fixtures::{files, load};
    use crate::pci::DeviceSpec;

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
}
