//! `xddctl usb`: the USB devices on guests' PVUSB controllers that driver domains serve, at
//! run time — listed from the controllers' backend nodes, given to a port or taken back by
//! writing the port's node (`port/<n>` = the device's bus path, or empty), which the
//! driver domain's backend watches (a hot attach or detach, as `xl usbdev-attach` is for a
//! dom0 backend).

use crate::toolstack::Toolstack;
use crate::vusb::{backend_dir, is_bus_path, read_ports, Node};

/// One port of a guest's controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRow {
    /// The guest.
    pub guest: String,
    /// Its domid.
    pub guest_domid: u32,
    /// Its controller's devid.
    pub controller: u32,
    /// The port (1–31).
    pub port: u8,
    /// The device's bus path on the driver domain's host controller ("" when empty).
    pub device: String,
    /// The driver domain serving the controller.
    pub backend: String,
    /// Its domid.
    pub backend_domid: u32,
    /// The controller's backend xenbus state.
    pub state: Option<String>,
}

impl PortRow {
    /// The port's node (`…/port/<n>`).
    fn node(&self) -> String {
        let dir = backend_dir(self.backend_domid, self.guest_domid, self.controller);
        format!("{dir}/port/{}", self.port)
    }
}

/// Every port of every PVUSB controller a running domain serves, by guest, controller and
/// port.
pub fn list(ts: &dyn Toolstack) -> Result<Vec<PortRow>, String> {
    let domains = ts.list()?;
    let name_of = |domid: u32| {
        domains
            .iter()
            .find(|d| d.domid == domid)
            .map(|d| d.name.clone())
    };
    let mut rows = Vec::new();
    for be in domains.iter().filter(|d| d.state.is_alive()) {
        let base = format!("/local/domain/{}/backend/vusb", be.domid);
        for fe in ts.directory(&base) {
            let Ok(fe_id) = fe.parse::<u32>() else {
                continue;
            };
            let Some(guest) = name_of(fe_id) else {
                continue;
            };
            for devid in ts.directory(&format!("{base}/{fe}")) {
                let Ok(controller) = devid.parse::<u32>() else {
                    continue;
                };
                let dir = backend_dir(be.domid, fe_id, controller);
                let state = ts.read(&format!("{dir}/state"));
                for (port, device) in read_ports(ts, &dir) {
                    rows.push(PortRow {
                        guest: guest.clone(),
                        guest_domid: fe_id,
                        controller,
                        port,
                        device,
                        backend: be.name.clone(),
                        backend_domid: be.domid,
                        state: state.clone(),
                    });
                }
            }
        }
    }
    rows.sort_by(|a, b| (&a.guest, a.controller, a.port).cmp(&(&b.guest, b.controller, b.port)));
    Ok(rows)
}

/// The table `xddctl usb list` prints.
pub fn render(rows: &[PortRow]) -> String {
    let mut out = format!(
        "{:<12} {:<10} {:<5} {:<10} {:<12} {}\n",
        "guest", "usbctrl", "port", "device", "backend", "state"
    );
    for r in rows {
        let device = if r.device.is_empty() { "-" } else { &r.device };
        let state = crate::status::state_name(r.state.as_deref());
        out.push_str(&format!(
            "{:<12} {:<10} {:<5} {:<10} {:<12} {}\n",
            r.guest, r.controller, r.port, device, r.backend, state
        ));
    }
    if rows.is_empty() {
        out.push_str("(no PVUSB controller is served by a running domain)\n");
    }
    out
}

/// Gives `device` to a port of `guest`'s controller (`controller`, else its lowest devid;
/// `port`, else the first free one); returns what was done.
pub fn attach(
    ts: &dyn Toolstack,
    guest: &str,
    device: &str,
    controller: Option<u32>,
    port: Option<u8>,
) -> Result<String, String> {
    if !is_bus_path(device) {
        return Err(format!(
            "device \"{device}\" is not a bus path like \"1-2\" or \"1-2.3\" (see `xddctl usb \
             list` and the driver domain's log for the paths of attached devices)"
        ));
    }
    let rows = list(ts)?;
    let mine: Vec<&PortRow> = rows.iter().filter(|r| r.guest == guest).collect();
    let devid = match controller {
        Some(c) => c,
        None => mine.iter().map(|r| r.controller).min().ok_or_else(|| {
            format!("`{guest}` has no PVUSB controller served by a driver domain")
        })?,
    };
    let ports: Vec<&PortRow> = mine.into_iter().filter(|r| r.controller == devid).collect();
    let first = ports
        .first()
        .ok_or_else(|| format!("`{guest}` has no usbctrl {devid} served by a driver domain"))?;
    let backend = first.backend.clone();
    if let Some(r) = rows
        .iter()
        .find(|r| r.backend == backend && r.device == device)
    {
        return Err(format!(
            "device {device} of `{backend}` is on `{}`'s usbctrl {} port {} already (xddctl \
             usb detach {} {device} first)",
            r.guest, r.controller, r.port, r.guest
        ));
    }
    let target = match port {
        Some(p) => ports.iter().find(|r| r.port == p).ok_or_else(|| {
            format!(
                "`{guest}`'s usbctrl {devid} has ports 1 to {}, not {p}",
                ports.len()
            )
        })?,
        None => ports
            .iter()
            .find(|r| r.device.is_empty())
            .ok_or_else(|| format!("every port of `{guest}`'s usbctrl {devid} is taken"))?,
    };
    let row = *target;
    if !row.device.is_empty() {
        return Err(format!(
            "port {} of `{guest}`'s usbctrl {devid} has device {} (detach it first)",
            row.port, row.device
        ));
    }
    write(ts, row.node(), device)?;
    Ok(format!(
        "attached {device} ({backend}) to `{guest}` usbctrl {devid} port {}",
        row.port
    ))
}

/// Takes `device` back from `guest`; returns what was done.
pub fn detach(ts: &dyn Toolstack, guest: &str, device: &str) -> Result<String, String> {
    let rows = list(ts)?;
    let row = rows
        .iter()
        .find(|r| r.guest == guest && r.device == device)
        .ok_or_else(|| format!("`{guest}` has no device {device} (see `xddctl usb list`)"))?;
    write(ts, row.node(), "")?;
    Ok(format!(
        "detached {device} ({}) from `{guest}` usbctrl {} port {}",
        row.backend, row.controller, row.port
    ))
}

fn write(ts: &dyn Toolstack, path: String, value: &str) -> Result<(), String> {
    ts.write_nodes(&[Node {
        path,
        value: value.to_string(),
        perms: None,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appliance::tests::{load, usb_files, USB_APPLIANCE};
    use crate::fake::Fake;
    use crate::timeline::Timeline;

    /// usbdd (domid 1) serving desk (domid 2) a 4-port controller 0 with 1-1 on port 1, and
    /// an 8-port controller 7.
    fn running(tag: &str) -> Fake {
        let dir = std::env::temp_dir().join(format!("xddctl-usb-{}-{tag}", std::process::id()));
        let text = format!("{USB_APPLIANCE}\n[[usb]]\nguest = \"desk\"\ndevice = \"1-1\"\n")
            .replace("state_dir = \"/run/xdd\"", &format!("state_dir = {dir:?}"));
        let a = load(&text, &usb_files()).unwrap();
        let fake = Fake::new();
        crate::up::up(&a, &fake, &Timeline::new(Box::new(std::io::sink()), None)).unwrap();
        fake
    }

    #[test]
    fn lists_attaches_and_detaches() {
        let fake = running("cli");
        let table = render(&list(&fake).unwrap());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 1 + 4 + 8, "{table}");
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["desk", "0", "1", "1-1", "usbdd", "Initialising"]
        );
        assert_eq!(
            attach(&fake, "desk", "1-2", None, None).unwrap(),
            "attached 1-2 (usbdd) to `desk` usbctrl 0 port 2"
        );
        assert_eq!(
            fake.read("/local/domain/1/backend/vusb/2/0/port/2")
                .as_deref(),
            Some("1-2")
        );
        assert_eq!(
            attach(&fake, "desk", "1-3", Some(7), Some(5)).unwrap(),
            "attached 1-3 (usbdd) to `desk` usbctrl 7 port 5"
        );
        for (args, want) in [
            (
                ("1-1", Some(7), None),
                "device 1-1 of `usbdd` is on `desk`'s usbctrl 0 port 1 already (xddctl usb \
                 detach desk 1-1 first)",
            ),
            (
                ("1-4", None, Some(2)),
                "port 2 of `desk`'s usbctrl 0 has device 1-2 (detach it first)",
            ),
            (
                ("1-4", None, Some(9)),
                "`desk`'s usbctrl 0 has ports 1 to 4, not 9",
            ),
            (
                ("1-4", Some(3), None),
                "`desk` has no usbctrl 3 served by a driver domain",
            ),
            (
                ("usb1", None, None),
                "device \"usb1\" is not a bus path like \"1-2\" or \"1-2.3\" (see `xddctl usb \
                 list` and the driver domain's log for the paths of attached devices)",
            ),
        ] {
            assert_eq!(
                attach(&fake, "desk", args.0, args.1, args.2).unwrap_err(),
                want
            );
        }
        assert_eq!(
            attach(&fake, "usbdd", "1-4", None, None).unwrap_err(),
            "`usbdd` has no PVUSB controller served by a driver domain"
        );
        assert_eq!(
            detach(&fake, "desk", "1-1").unwrap(),
            "detached 1-1 (usbdd) from `desk` usbctrl 0 port 1"
        );
        assert_eq!(
            fake.read("/local/domain/1/backend/vusb/2/0/port/1")
                .as_deref(),
            Some("")
        );
        assert_eq!(
            detach(&fake, "desk", "1-1").unwrap_err(),
            "`desk` has no device 1-1 (see `xddctl usb list`)"
        );
        // Ports fill from the first free one; then the controller is full.
        for (d, port) in [("1-5", 1), ("1-6", 3), ("1-7", 4)] {
            assert!(attach(&fake, "desk", d, None, None)
                .unwrap()
                .ends_with(&format!("port {port}")));
        }
        assert_eq!(
            attach(&fake, "desk", "1-8", None, None).unwrap_err(),
            "every port of `desk`'s usbctrl 0 is taken"
        );
    }
}
