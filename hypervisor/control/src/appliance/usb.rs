//! `[[usb]]`: which USB device of a driver domain's host controller goes to which port of a
//! guest's PVUSB controller. A device is named by its bus path on that controller
//! (`<bus>-<port>[.<port>…]`, as Linux and usbback name it); each device has one owner and
//! each port one device.

use super::load::{Draft, Loader};
use super::schema::UsbToml;
use crate::vusb::is_bus_path;
use std::collections::BTreeMap;

impl Loader<'_> {
    /// Checks every `[[usb]]` and records it on its guest's controller.
    pub(super) fn assign_usb(&self, drafts: &mut [Draft], usb: Vec<UsbToml>) -> Result<(), String> {
        let shown = self.shown;
        // Device (with its driver domain) → the entry that took it.
        let mut owners: BTreeMap<(String, String), String> = BTreeMap::new();
        for (i, u) in usb.into_iter().enumerate() {
            let at = format!("{shown}: [[usb]] #{}", i + 1);
            if !is_bus_path(&u.device) {
                return Err(format!(
                    "{at}: device \"{}\" is not a bus path like \"1-2\" or \"1-2.3\" (bus, then \
                     the ports from the root hub)",
                    u.device
                ));
            }
            let guest = drafts
                .iter_mut()
                .find(|d| d.domain.name == u.guest)
                .ok_or_else(|| format!("{at}: `{}` is not a domain of this appliance", u.guest))?;
            let controllers = &mut guest.domain.usb_controllers;
            let c = match u.controller {
                Some(devid) => controllers.iter_mut().find(|c| c.devid == devid),
                None => controllers.first_mut(),
            }
            .ok_or_else(|| {
                let which = u
                    .controller
                    .map(|d| format!("usbctrl {d}"))
                    .unwrap_or_else(|| "usbctrl".into());
                format!(
                    "{at}: `{}` has no {which} served by a driver domain (add one to its \
                     xl.cfg: usbctrl = [ 'version=2,ports=4,backend=<driver domain>' ])",
                    u.guest
                )
            })?;
            let port = match u.port {
                Some(p) if p == 0 || p > c.ports => {
                    return Err(format!(
                        "{at}: port {p}, but `{}`'s usbctrl {} has ports 1 to {}",
                        u.guest, c.devid, c.ports
                    ))
                }
                Some(p) => p,
                None => (1..=c.ports)
                    .find(|p| !c.assigned.contains_key(p))
                    .ok_or_else(|| {
                        format!(
                            "{at}: every port of `{}`'s usbctrl {} is taken ({} ports)",
                            u.guest, c.devid, c.ports
                        )
                    })?,
            };
            if let Some(other) = c.assigned.get(&port) {
                return Err(format!(
                    "{at}: port {port} of `{}`'s usbctrl {} already has device {other}",
                    u.guest, c.devid
                ));
            }
            let key = (c.backend.clone(), u.device.clone());
            if let Some(first) = owners.get(&key) {
                return Err(format!(
                    "{at}: device {} of `{}` is already given by {first}; a device has one owner",
                    u.device, c.backend
                ));
            }
            owners.insert(key, format!("[[usb]] #{} (`{}`)", i + 1, u.guest));
            c.assigned.insert(port, u.device);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::appliance::fixtures::{load, usb_files, USB_APPLIANCE};

    fn with(usb: &str) -> Result<crate::appliance::Appliance, String> {
        load(&format!("{USB_APPLIANCE}\n{usb}"), &usb_files())
    }

    #[test]
    fn devices_go_to_the_named_or_first_free_port() {
        let a = with(
            "[[usb]]\nguest = \"desk\"\ndevice = \"1-1\"\n\
             [[usb]]\nguest = \"desk\"\ndevice = \"1-2.3\"\n\
             [[usb]]\nguest = \"desk\"\ndevice = \"2-1\"\ncontroller = 7\nport = 8\n",
        )
        .unwrap();
        let cs = &a.domain("desk").unwrap().usb_controllers;
        let shown: Vec<String> = cs
            .iter()
            .flat_map(|c| {
                c.assigned
                    .iter()
                    .map(move |(p, d)| format!("{}/{p}={d}", c.devid))
            })
            .collect();
        assert_eq!(shown, ["0/1=1-1", "0/2=1-2.3", "7/8=2-1"]);
    }

    #[test]
    fn mistakes_are_one_line() {
        let e = |usb: &str| with(usb).unwrap_err();
        let shown = "/etc/xdd/appliance.toml: [[usb]] #";
        for (usb, want) in [
            (
                "[[usb]]\nguest = \"desk\"\ndevice = \"046d:c52b\"\n",
                "1: device \"046d:c52b\" is not a bus path like \"1-2\" or \"1-2.3\" (bus, then \
                 the ports from the root hub)",
            ),
            (
                "[[usb]]\nguest = \"nobody\"\ndevice = \"1-1\"\n",
                "1: `nobody` is not a domain of this appliance",
            ),
            (
                "[[usb]]\nguest = \"usbdd\"\ndevice = \"1-1\"\n",
                "1: `usbdd` has no usbctrl served by a driver domain (add one to its xl.cfg: \
                 usbctrl = [ 'version=2,ports=4,backend=<driver domain>' ])",
            ),
            (
                "[[usb]]\nguest = \"desk\"\ndevice = \"1-1\"\ncontroller = 3\n",
                "1: `desk` has no usbctrl 3 served by a driver domain (add one to its xl.cfg: \
                 usbctrl = [ 'version=2,ports=4,backend=<driver domain>' ])",
            ),
            (
                "[[usb]]\nguest = \"desk\"\ndevice = \"1-1\"\nport = 5\n",
                "1: port 5, but `desk`'s usbctrl 0 has ports 1 to 4",
            ),
            (
                "[[usb]]\nguest = \"desk\"\ndevice = \"1-1\"\nport = 2\n\
                 [[usb]]\nguest = \"desk\"\ndevice = \"1-2\"\nport = 2\n",
                "2: port 2 of `desk`'s usbctrl 0 already has device 1-1",
            ),
            (
                "[[usb]]\nguest = \"desk\"\ndevice = \"1-1\"\n\
                 [[usb]]\nguest = \"desk\"\ndevice = \"1-1\"\ncontroller = 7\n",
                "2: device 1-1 of `usbdd` is already given by [[usb]] #1 (`desk`); a device \
                 has one owner",
            ),
        ] {
            assert_eq!(e(usb), format!("{shown}{want}"), "{usb}");
        }
        let full: String = (1..=5)
            .map(|i| format!("[[usb]]\nguest = \"desk\"\ndevice = \"1-{i}\"\n"))
            .collect();
        assert_eq!(
            e(&full),
            format!("{shown}5: every port of `desk`'s usbctrl 0 is taken (4 ports)")
        );
    }
}
