//! The PCI devices driver domains own. Before anything starts (`check`, `up`, `run`), every
//! device the appliance lists is resolved to its address in dom0 and refused when it does not
//! exist, when two driver domains list it, or when a domain other than the driver domain
//! listing it holds it; `down --release-devices` hands the devices back to dom0 afterwards.

use crate::appliance::{Appliance, Role};
use crate::pci::{Bdf, DeviceSpec, PciBus};
use crate::timeline::Timeline;
use crate::toolstack::Toolstack;
use std::collections::BTreeMap;

/// Where libxl records the PCI functions assigned to each domain (`<domid>/0/dev-N`); this
/// is what `xl pci-list` reads.
pub const PCI_BACKEND: &str = "/local/domain/0/backend/pci";

/// A domain holding a PCI function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its domain id.
    pub domid: u32,
    /// Its name.
    pub name: String,
}

/// The domain holding each assigned PCI function. Only domains `xl list` shows count: libxl
/// can leave the PCI backend of a destroyed domain behind (seen in the testbed: a squatter's,
/// state Closed, after `xl destroy`).
pub fn holders(ts: &dyn Toolstack) -> Result<BTreeMap<Bdf, Holder>, String> {
    let names: BTreeMap<u32, String> = ts.list()?.into_iter().map(|d| (d.domid, d.name)).collect();
    let mut out = BTreeMap::new();
    for dom in ts.directory(PCI_BACKEND) {
        let Some((domid, name)) = dom
            .parse::<u32>()
            .ok()
            .and_then(|id| names.get(&id).map(|n| (id, n)))
        else {
            continue;
        };
        let base = format!("{PCI_BACKEND}/{domid}/0");
        let n: usize = ts
            .read(&format!("{base}/num_devs"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        for i in 0..n {
            if let Some(bdf) = ts
                .read(&format!("{base}/dev-{i}"))
                .as_deref()
                .and_then(Bdf::parse)
            {
                let name = name.clone();
                out.insert(bdf, Holder { domid, name });
            }
        }
    }
    Ok(out)
}

/// A device for messages: its address, and the ID it was named by.
pub fn shown(spec: &DeviceSpec, bdf: Bdf) -> String {
    match spec {
        DeviceSpec::Bdf(_) => bdf.to_string(),
        DeviceSpec::Id { .. } => format!("{spec} ({bdf})"),
    }
}

/// Resolves every driver domain's devices among dom0's PCI functions (filling
/// `Domain::pci`): refuses an address that does not exist, an ID that matches no function or
/// several, and a device listed twice.
pub fn resolve(app: &mut Appliance, bus: &dyn PciBus) -> Result<(), String> {
    if app.domains.iter().all(|d| d.owns.is_empty()) {
        return Ok(());
    }
    let file = app.path.display().to_string();
    let functions = bus
        .functions()
        .map_err(|e| format!("{file}: cannot list dom0's PCI devices: {e}"))?;
    let mut owner: BTreeMap<Bdf, (String, DeviceSpec)> = BTreeMap::new();
    for d in app.domains.iter_mut().filter(|d| d.role == Role::Driver) {
        let mut pci = Vec::new();
        for spec in &d.owns {
            let bdf = spec
                .resolve(&functions)
                .map_err(|e| format!("{file}: driver domain `{}`: {e}", d.name))?;
            if let Some((first, first_spec)) = owner.insert(bdf, (d.name.clone(), *spec)) {
                let how = |name: &str, s: &DeviceSpec| match s {
                    DeviceSpec::Bdf(_) => None,
                    DeviceSpec::Id { .. } => Some(format!("`{name}` as {s}")),
                };
                let named: Vec<String> = [how(&first, &first_spec), how(&d.name, spec)]
                    .into_iter()
                    .flatten()
                    .collect();
                let named = if named.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", named.join(", "))
                };
                return Err(if first == d.name {
                    format!("{file}: driver domain `{first}` lists device {bdf} twice{named}")
                } else {
                    format!(
                        "{file}: driver domains `{first}` and `{}` both list device {bdf}{named}; \
                         a device has one owner: remove it from one of them",
                        d.name
                    )
                });
            }
            pci.push(bdf);
        }
        d.pci = pci;
    }
    Ok(())
}

/// What `check`, `up` and `run` verify about devices before anything starts: [`resolve`],
/// then that no domain holds a device except the driver domain that lists it (by name: the
/// appliance's own domain, already running).
pub fn claim(app: &mut Appliance, bus: &dyn PciBus, ts: &dyn Toolstack) -> Result<(), String> {
    resolve(app, bus)?;
    if app.domains.iter().all(|d| d.pci.is_empty()) {
        return Ok(());
    }
    let held = holders(ts)?;
    for d in &app.domains {
        for (spec, bdf) in d.owns.iter().zip(&d.pci) {
            match held.get(bdf) {
                Some(h) if h.name != d.name => {
                    return Err(format!(
                        "{}: driver domain `{}`: device {} is assigned to domain `{}` (domid {}; \
                         see `xl pci-list {}`): shut that domain down or detach the device \
                         (`xl pci-detach {} {bdf}`) first",
                        app.path.display(),
                        d.name,
                        shown(spec, *bdf),
                        h.name,
                        h.domid,
                        h.name,
                        h.name
                    ))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// `down` without `--release-devices`: says that each driver domain's devices stay
/// assignable (not dom0's).
pub fn note_kept(app: &Appliance, tl: &Timeline) {
    for d in app.domains.iter().filter(|d| !d.owns.is_empty()) {
        let list: Vec<String> = d.owns.iter().map(|s| s.to_string()).collect();
        tl.event(
            &d.name,
            "kept",
            &format!(
                "{} stay(s) assignable, away from dom0's drivers (`xddctl down \
                 --release-devices` gives devices back to dom0)",
                list.join(", ")
            ),
        );
    }
}

/// `down --release-devices`, after the driver domains stopped: hands each (resolved) device
/// of the appliance's driver domains back to dom0 with `xl pci-assignable-remove -r`, which
/// re-binds the dom0 driver it had, logging each. A device some domain still holds stays
/// where it is. Returns the errors.
pub fn release(app: &Appliance, ts: &dyn Toolstack, tl: &Timeline) -> Vec<String> {
    let mut errors = Vec::new();
    let (held, assignable) = match (holders(ts), ts.pci_assignable_list()) {
        (Ok(h), Ok(a)) => (h, a),
        (Err(e), _) | (_, Err(e)) => return vec![format!("cannot release devices: {e}")],
    };
    for d in &app.domains {
        for (spec, bdf) in d.owns.iter().zip(&d.pci) {
            let dev = shown(spec, *bdf);
            if let Some(h) = held.get(bdf) {
                tl.event(
                    &d.name,
                    "kept",
                    &format!(
                        "{dev}: still assigned to `{}` (domid {}), not released",
                        h.name, h.domid
                    ),
                );
            } else if !assignable.contains(bdf) {
                tl.event(&d.name, "released", &format!("{dev}: dom0's already"));
            } else {
                match ts.pci_release(*bdf) {
                    Ok(()) => tl.event(
                        &d.name,
                        "released",
                        &format!("{dev} back to dom0 (xl pci-assignable-remove -r)"),
                    ),
                    Err(e) => {
                        tl.event(&d.name, "failed", &format!("releasing {dev}: {e}"));
                        errors.push(format!("cannot release {dev} of `{}`: {e}", d.name));
                    }
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appliance::tests::{files, load};
    use crate::fake::Fake;
    use crate::pci::tests::bus;

    /// netdd owns the first virtio-net by address; `extra` adds to the file.
    fn app(extra: &str) -> Appliance {
        let text = format!(
            r#"
[settings]
image_dir = "/boot/xdd"

[[driver_domain]]
name = "netdd"
image = "hello"
type = "pv"
devices = ["00:10.0"]
serves = ["vif"]
{extra}"#
        );
        load(&text, &files()).unwrap()
    }

    fn claim_err(a: &mut Appliance, fake: &Fake) -> String {
        claim(a, &bus(), fake).unwrap_err()
    }

    #[test]
    fn resolves_addresses_and_ids() {
        let mut a = app(r#"
[[driver_domain]]
name = "usbdd"
image = "hello"
type = "pv"
devices = ["1b36:000d", "1af4:1000#2"]
"#);
        claim(&mut a, &bus(), &Fake::new()).unwrap();
        let pci = |n: &str| -> Vec<String> {
            a.domain(n)
                .unwrap()
                .pci
                .iter()
                .map(Bdf::to_string)
                .collect()
        };
        assert_eq!(pci("netdd"), ["0000:00:10.0"]);
        assert_eq!(pci("usbdd"), ["0000:00:12.0", "0000:00:11.0"]);
        let text = a.domain("usbdd").unwrap().config_text().unwrap().unwrap();
        assert!(
            text.ends_with("pci = [ \"0000:00:12.0\", \"0000:00:11.0\" ]\n"),
            "{text}"
        );
    }

    #[test]
    fn refuses_a_device_dom0_does_not_have() {
        let mut a = load(
            r#"
[settings]
image_dir = "/boot/xdd"
[[driver_domain]]
name = "netdd"
image = "hello"
type = "pv"
devices = ["0000:00:1f.7"]
"#,
            &files(),
        )
        .unwrap();
        assert_eq!(
            claim_err(&mut a, &Fake::new()),
            "/etc/xdd/appliance.toml: driver domain `netdd`: device 0000:00:1f.7 does not exist \
             in dom0 (no /sys/bus/pci/devices/0000:00:1f.7; `lspci -D` lists the PCI devices)"
        );
        let mut a = app("");
        a.domains[0].owns = vec![DeviceSpec::parse("8086:10fb").unwrap()];
        assert_eq!(
            claim_err(&mut a, &Fake::new()),
            "/etc/xdd/appliance.toml: driver domain `netdd`: device 8086:10fb matches no PCI \
             function in dom0 (`lspci -nn` shows vendor:device IDs)"
        );
        a.domains[0].owns = vec![DeviceSpec::parse("1af4:1000").unwrap()];
        assert!(claim_err(&mut a, &Fake::new()).starts_with(
            "/etc/xdd/appliance.toml: driver domain `netdd`: device 1af4:1000 matches 2 PCI \
             functions in dom0 (#1 0000:00:10.0, #2 0000:00:11.0): write \"1af4:1000#1\""
        ));
    }

    #[test]
    fn refuses_a_device_two_driver_domains_list() {
        let mut a = app(r#"
[[driver_domain]]
name = "otherdd"
image = "hello"
type = "pv"
devices = ["1af4:1000#1"]
"#);
        assert_eq!(
            claim_err(&mut a, &Fake::new()),
            "/etc/xdd/appliance.toml: driver domains `netdd` and `otherdd` both list device \
             0000:00:10.0 (`otherdd` as 1af4:1000#1); a device has one owner: remove it from \
             one of them"
        );
        let mut a = app("");
        a.domains[0]
            .owns
            .push(DeviceSpec::parse("0000:00:10.0").unwrap());
        assert_eq!(
            claim_err(&mut a, &Fake::new()),
            "/etc/xdd/appliance.toml: driver domain `netdd` lists device 0000:00:10.0 twice"
        );
    }

    #[test]
    fn refuses_a_device_another_domain_holds() {
        let mut a = app("");
        let fake = Fake::new();
        fake.add_running("squatter");
        fake.hold_pci("squatter", &["0000:00:10.0"]);
        assert_eq!(
            claim_err(&mut a, &fake),
            "/etc/xdd/appliance.toml: driver domain `netdd`: device 0000:00:10.0 is assigned to \
             domain `squatter` (domid 1; see `xl pci-list squatter`): shut that domain down or \
             detach the device (`xl pci-detach squatter 0000:00:10.0`) first"
        );
        // A stale backend of a domain that no longer exists holds nothing.
        fake.kill("squatter");
        fake.state().assign(7, &[Bdf::parse("00:10.0").unwrap()]);
        claim(&mut a, &bus(), &fake).unwrap();
    }

    #[test]
    fn its_own_running_domain_may_hold_it() {
        let mut a = app("");
        let fake = Fake::new();
        fake.add_running("netdd");
        fake.hold_pci("netdd", &["0000:00:10.0"]);
        claim(&mut a, &bus(), &fake).unwrap();
        assert_eq!(a.domains[0].pci, [Bdf::parse("00:10.0").unwrap()]);
    }

    #[test]
    fn an_appliance_without_devices_needs_no_pci_bus() {
        struct NoBus;
        impl PciBus for NoBus {
            fn functions(&self) -> Result<Vec<crate::pci::PciFunction>, String> {
                Err("no sysfs here".into())
            }
        }
        let mut a = load(crate::appliance::tests::APPLIANCE, &files()).unwrap();
        claim(&mut a, &NoBus, &Fake::new()).unwrap();
        let mut a = app("");
        assert_eq!(
            claim(&mut a, &NoBus, &Fake::new()).unwrap_err(),
            "/etc/xdd/appliance.toml: cannot list dom0's PCI devices: no sysfs here"
        );
    }

    #[test]
    fn release_hands_assignable_devices_back_and_keeps_held_ones() {
        let mut a = app(r#"
[[driver_domain]]
name = "usbdd"
image = "hello"
type = "pv"
devices = ["1b36:000d", "1af4:1000#2"]
"#);
        let fake = Fake::new();
        resolve(&mut a, &bus()).unwrap();
        {
            let mut s = fake.state();
            s.assignable
                .extend(["00:10.0", "00:12.0"].map(|b| Bdf::parse(b).unwrap()));
        }
        // Someone else took usbdd's xHCI meanwhile; 00:11.0 is dom0's already.
        fake.add_running("thief");
        fake.hold_pci("thief", &["0000:00:12.0"]);
        let tl = Timeline::new(Box::new(std::io::sink()), None);
        assert!(release(&a, &fake, &tl).is_empty());
        assert_eq!(fake.calls(), ["pci-release 0000:00:10.0"]);
        let lines = tl.lines().join("\n");
        for want in [
            "netdd        released    0000:00:10.0 back to dom0 (xl pci-assignable-remove -r)",
            "usbdd        kept        1b36:000d (0000:00:12.0): still assigned to `thief` \
             (domid 1), not released",
            "usbdd        released    1af4:1000#2 (0000:00:11.0): dom0's already",
        ] {
            assert!(lines.contains(want), "{want} not in\n{lines}");
        }
    }
}
