//! PVUSB controllers served by a driver domain. Stock xl cannot create a `usbctrl` whose
//! backend is not dom0 (its `usbctrl=` parser takes no `backend=`), so xddctl takes such
//! entries out of the xl.cfg it hands to `xl create` and writes the controller's xenstore
//! nodes itself, as libxl does for a `type=pv` controller (libxl_usb.c): the backend
//! directory `backend/vusb/<fe>/<devid>` in the driver domain, owned by it and readable by
//! the guest; the frontend directory `device/vusb/<devid>` in the guest, owned by the guest
//! and readable by the driver domain; both in state Initialising, in one transaction.

use crate::appliance::Domain;
use crate::devices::DeviceEntry;
use crate::timeline::Timeline;
use crate::toolstack::Toolstack;
use std::collections::BTreeMap;
use std::fmt;
use xen_abi::xs_wire::{Perm, PermAccess};

/// Ports of a controller when the entry names none (libxl's default).
pub const DEFAULT_PORTS: u8 = 8;
/// Most ports usbif can address (`USBIF_MAX_PORTNR`).
pub const MAX_PORTS: u8 = 31;

/// One xenstore node to write: its path, value and (for a directory's top) permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Absolute path.
    pub path: String,
    /// Value.
    pub value: String,
    /// Permissions to set on it (owner first), or `None` to inherit the parent's.
    pub perms: Option<Vec<Perm>>,
}

/// A `usbctrl` entry served by a driver domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbController {
    /// Its devid (`device/vusb/<devid>`).
    pub devid: u32,
    /// USB version the guest's controller offers (1 or 2: usbif has no SuperSpeed).
    pub version: u8,
    /// Root ports (1–31).
    pub ports: u8,
    /// The driver domain serving it.
    pub backend: String,
    /// Devices given to its ports (`[[usb]]`): port → bus path on the driver domain's host
    /// controller.
    pub assigned: BTreeMap<u8, String>,
}

impl UsbController {
    /// The controller an xl.cfg `usbctrl` entry asks for, served by `backend`; `at` names
    /// the entry in errors (`file:line`).
    pub fn from_entry(e: &DeviceEntry, backend: &str, at: &str) -> Result<UsbController, String> {
        if let Some(t) = e.param("type") {
            if t != "pv" && t != "auto" {
                return Err(format!(
                    "{at}: usbctrl type={t} cannot be served by the driver domain `{backend}` \
                     (only type=pv: a PVUSB frontend in the guest)"
                ));
            }
        }
        let version = match e.param("version").as_deref() {
            None => 2,
            Some("1") => 1,
            Some("2") => 2,
            Some(v) => {
                return Err(format!(
                    "{at}: usbctrl version={v}: a PVUSB controller is USB 1 or 2 (usbif has \
                     no SuperSpeed)"
                ))
            }
        };
        let ports = match e.param("ports") {
            None => DEFAULT_PORTS,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if (1..=MAX_PORTS).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "{at}: usbctrl ports={p}: a controller has 1 to {MAX_PORTS} ports"
                    ))
                }
            },
        };
        let devid = e
            .devid()
            .ok_or_else(|| format!("{at}: usbctrl devid is not a number"))?;
        Ok(UsbController {
            devid,
            version,
            ports,
            backend: backend.to_string(),
            assigned: BTreeMap::new(),
        })
    }

    /// The backend directory for guest `fe` served from domain `be`.
    pub fn backend_path(&self, fe: u32, be: u32) -> String {
        backend_dir(be, fe, self.devid)
    }

    /// The frontend directory in guest `fe`.
    pub fn frontend_path(&self, fe: u32) -> String {
        format!("/local/domain/{fe}/device/vusb/{}", self.devid)
    }

    /// Every node of the controller between guest `fe` and driver domain `be`, with the
    /// assigned devices on their ports.
    pub fn nodes(&self, fe: u32, be: u32) -> Vec<Node> {
        let owned = |owner: u32, reader: u32| {
            Some(vec![
                perm(PermAccess::NoAccess, owner),
                perm(PermAccess::Read, reader),
            ])
        };
        let node = |path: String, value: String| Node {
            path,
            value,
            perms: None,
        };
        let back = self.backend_path(fe, be);
        let front = self.frontend_path(fe);
        let mut out = vec![
            Node {
                path: back.clone(),
                value: String::new(),
                perms: owned(be, fe),
            },
            node(format!("{back}/frontend"), front.clone()),
            node(format!("{back}/frontend-id"), fe.to_string()),
            node(format!("{back}/online"), "1".into()),
            node(format!("{back}/state"), "1".into()),
            node(format!("{back}/type"), "pv".into()),
            node(format!("{back}/usb-ver"), self.version.to_string()),
            node(format!("{back}/num-ports"), self.ports.to_string()),
        ];
        for n in 1..=self.ports {
            let device = self.assigned.get(&n).cloned().unwrap_or_default();
            out.push(node(format!("{back}/port/{n}"), device));
        }
        out.push(Node {
            path: front.clone(),
            value: String::new(),
            perms: owned(fe, be),
        });
        out.push(node(format!("{front}/backend"), back));
        out.push(node(format!("{front}/backend-id"), be.to_string()));
        out.push(node(format!("{front}/state"), "1".into()));
        out
    }
}

impl fmt::Display for UsbController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "usbctrl {} (USB {}, {} ports) served by {}",
            self.devid, self.version, self.ports, self.backend
        )
    }
}

/// Creates `guest`'s controllers (just created as `domid`) on their driver domains, which
/// must be running; logs each on the timeline.
pub fn create_controllers(
    guest: &Domain,
    domid: u32,
    ts: &dyn Toolstack,
    tl: &Timeline,
) -> Result<(), String> {
    if guest.usb_controllers.is_empty() {
        return Ok(());
    }
    let list = ts.list()?;
    for c in &guest.usb_controllers {
        let be = list
            .iter()
            .find(|d| d.name == c.backend && d.state.is_alive())
            .map(|d| d.domid)
            .ok_or_else(|| format!("{c}: the driver domain `{}` is not running", c.backend))?;
        ts.write_nodes(&c.nodes(domid, be))
            .map_err(|e| format!("{c}: {e}"))?;
        tl.event(
            &guest.name,
            "usbctrl",
            &format!("{c} (domid {be}): created by xddctl"),
        );
    }
    Ok(())
}

/// The backend directory of controller `devid` of guest `fe` in driver domain `be`.
pub fn backend_dir(be: u32, fe: u32, devid: u32) -> String {
    format!("/local/domain/{be}/backend/vusb/{fe}/{devid}")
}

/// A controller's ports as its backend directory `dir` holds them: `(port, device bus
/// path or "")` for ports 1 to `num-ports` (at most [`MAX_PORTS`]).
pub fn read_ports(ts: &dyn Toolstack, dir: &str) -> Vec<(u8, String)> {
    let ports: u8 = ts
        .read(&format!("{dir}/num-ports"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
        .min(MAX_PORTS);
    (1..=ports)
        .map(|n| (n, ts.read(&format!("{dir}/port/{n}")).unwrap_or_default()))
        .collect()
}

/// True for a USB bus path: `<bus>-<port>[.<port>…]`, decimal numbers (e.g. `1-2.3`).
pub fn is_bus_path(s: &str) -> bool {
    let number = |p: &str| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('-') {
        Some((bus, ports)) => number(bus) && ports.split('.').all(number),
        None => false,
    }
}

fn perm(access: PermAccess, domid: u32) -> Perm {
    Perm {
        access,
        domid: domid as u16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::device_entries;
    use crate::xlcfg::XlConfig;

    fn entries(text: &str) -> Vec<DeviceEntry> {
        device_entries(&XlConfig::parse(text, "g.cfg").unwrap()).unwrap()
    }

    #[test]
    fn nodes_are_what_libxl_writes_for_a_pv_controller() {
        let e = &entries("usbctrl = [ 'type=pv,version=2,ports=2,backend=usbdd' ]")[0];
        let c = UsbController::from_entry(e, "usbdd", "g.cfg:1").unwrap();
        let nodes = c.nodes(7, 3);
        let shown: Vec<String> = nodes
            .iter()
            .map(|n| {
                let perms = n
                    .perms
                    .as_ref()
                    .map(|p| {
                        let p: Vec<String> = p
                            .iter()
                            .map(|p| format!("{}{}", p.access.letter() as char, p.domid))
                            .collect();
                        format!(" [{}]", p.join(","))
                    })
                    .unwrap_or_default();
                format!("{}={}{perms}", n.path, n.value)
            })
            .collect();
        assert_eq!(
            shown,
            [
                "/local/domain/3/backend/vusb/7/0= [n3,r7]",
                "/local/domain/3/backend/vusb/7/0/frontend=/local/domain/7/device/vusb/0",
                "/local/domain/3/backend/vusb/7/0/frontend-id=7",
                "/local/domain/3/backend/vusb/7/0/online=1",
                "/local/domain/3/backend/vusb/7/0/state=1",
                "/local/domain/3/backend/vusb/7/0/type=pv",
                "/local/domain/3/backend/vusb/7/0/usb-ver=2",
                "/local/domain/3/backend/vusb/7/0/num-ports=2",
                "/local/domain/3/backend/vusb/7/0/port/1=",
                "/local/domain/3/backend/vusb/7/0/port/2=",
                "/local/domain/7/device/vusb/0= [n7,r3]",
                "/local/domain/7/device/vusb/0/backend=/local/domain/3/backend/vusb/7/0",
                "/local/domain/7/device/vusb/0/backend-id=3",
                "/local/domain/7/device/vusb/0/state=1",
            ]
        );
    }

    #[test]
    fn defaults_devids_and_refusals() {
        let es =
            entries("usbctrl = [ 'backend=usbdd', 'version=1,ports=31,devid=5,backend=usbdd' ]");
        let a = UsbController::from_entry(&es[0], "usbdd", "g.cfg:1").unwrap();
        assert_eq!((a.devid, a.version, a.ports), (0, 2, DEFAULT_PORTS));
        let b = UsbController::from_entry(&es[1], "usbdd", "g.cfg:1").unwrap();
        assert_eq!((b.devid, b.version, b.ports), (5, 1, 31));
        assert_eq!(b.to_string(), "usbctrl 5 (USB 1, 31 ports) served by usbdd");
        for (spec, want) in [
            (
                "type=qusb",
                "g.cfg:1: usbctrl type=qusb cannot be served by the driver domain `usbdd` \
                 (only type=pv: a PVUSB frontend in the guest)",
            ),
            (
                "version=3",
                "g.cfg:1: usbctrl version=3: a PVUSB controller is USB 1 or 2 (usbif has no \
                 SuperSpeed)",
            ),
            (
                "ports=0",
                "g.cfg:1: usbctrl ports=0: a controller has 1 to 31 ports",
            ),
            (
                "ports=32",
                "g.cfg:1: usbctrl ports=32: a controller has 1 to 31 ports",
            ),
            (
                "ports=x",
                "g.cfg:1: usbctrl ports=x: a controller has 1 to 31 ports",
            ),
        ] {
            let e = &entries(&format!("usbctrl = [ '{spec},backend=usbdd' ]"))[0];
            assert_eq!(
                UsbController::from_entry(e, "usbdd", "g.cfg:1").unwrap_err(),
                want
            );
        }
    }
}
