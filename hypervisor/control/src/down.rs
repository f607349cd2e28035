//! `xddctl down`: guests first (`xl shutdown`, `xl destroy` after the shutdown timeout), then
//! driver domains once nothing running uses them. It leaves a stop flag so `xddctl run` does
//! not restart what `down` stops.

use crate::appliance::Appliance;
use crate::passthrough;
use crate::pciback;
use crate::timeline::{secs, Timeline};
use crate::toolstack::{xenstore_alive, Toolstack};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// What `down` does with the PCI devices of the driver domains it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Devices {
    /// They stay assignable: no dom0 driver binds them (the default).
    Keep,
    /// Handed back to dom0 (`--release-devices`; the appliance's devices must be resolved).
    Release,
}

/// Stops the appliance's running domains, then keeps or releases the driver domains' PCI
/// devices; prints the timeline.
pub fn down(
    app: &Appliance,
    ts: &dyn Toolstack,
    tl: &Timeline,
    devices: Devices,
) -> Result<(), String> {
    let flag = app.stop_flag();
    if let Some(dir) = flag.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(&flag, "xddctl down\n")
        .map_err(|e| format!("cannot write {}: {e}", flag.display()))?;
    let list = ts.list()?;
    let by_name: BTreeMap<&str, (u32, bool)> = list
        .iter()
        .map(|d| (d.name.as_str(), (d.domid, d.state.is_alive())))
        .collect();
    let names: BTreeMap<u32, &str> = list.iter().map(|d| (d.domid, d.name.as_str())).collect();
    let set: BTreeSet<usize> = (0..app.domains.len())
        .filter(|&i| by_name.contains_key(app.domains[i].name.as_str()))
        .collect();
    tl.note(&format!(
        "xddctl down: appliance `{}`: {} of {} domain(s) running",
        app.name,
        set.len(),
        app.domains.len()
    ));
    for &i in &set {
        let d = &app.domains[i];
        let (domid, _) = by_name[d.name.as_str()];
        for (fe, kind) in frontends_of(ts, domid) {
            let fe_name = names.get(&fe).copied().unwrap_or("?");
            if app.domain(fe_name).is_none() {
                tl.event(
                    &d.name,
                    "warning",
                    &format!(
                        "still serves a {kind} of `{fe_name}` (domid {fe}), which is not part of \
                         the appliance: it loses that device"
                    ),
                );
            }
        }
    }
    let timeout = app.settings.shutdown_timeout;
    let mut errors = Vec::new();
    for wave in app.stop_waves(&set) {
        let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = wave
                .iter()
                .map(|&i| {
                    let name = app.domains[i].name.as_str();
                    let (domid, alive) = by_name[name];
                    scope.spawn(move || stop_one(ts, tl, name, domid, alive, timeout))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("stop thread panicked".into()))
                })
                .collect()
        });
        errors.extend(results.into_iter().filter_map(Result::err));
    }
    match devices {
        Devices::Keep => passthrough::note_kept(app, tl),
        Devices::Release => errors.extend(passthrough::release(app, ts, tl)),
    }
    if errors.is_empty() {
        tl.event("down", "done", &format!("in {}", secs(tl.elapsed())));
        Ok(())
    } else {
        tl.event("down", "failed", &errors.join("; "));
        Err(errors.join("; "))
    }
}

/// `(frontend domid, device kind)` of every backend a domain serves.
pub fn frontends_of(ts: &dyn Toolstack, domid: u32) -> Vec<(u32, String)> {
    let base = format!("/local/domain/{domid}/backend");
    let mut out = Vec::new();
    for kind in ts.directory(&base) {
        for fe in ts.directory(&format!("{base}/{kind}")) {
            if let Ok(fe) = fe.parse() {
                out.push((fe, kind.clone()));
            }
        }
    }
    out
}

/// Shuts one domain down, destroying it after `timeout` (or at once if it is not alive).
fn stop_one(
    ts: &dyn Toolstack,
    tl: &Timeline,
    name: &str,
    domid: u32,
    alive: bool,
    timeout: Duration,
) -> Result<(), String> {
    let t = Instant::now();
    if alive {
        tl.event(
            name,
            "shutdown",
            &format!("xl shutdown (destroy after {})", secs(timeout)),
        );
        match ts.shutdown(name) {
            Ok(()) => loop {
                if !xenstore_alive(ts, domid) {
                    tl.event(name, "stopped", &format!("after {}", secs(t.elapsed())));
                    return Ok(());
                }
                if t.elapsed() >= timeout {
                    tl.event(
                        name,
                        "destroy",
                        &format!("still there {} after xl shutdown", secs(timeout)),
                    );
                    break;
                }
                // Once it has shut down, xl's monitor destroys it: answer pciback for its
                // pcifront so libxl does not wait 10 s per PCI function.
                pciback::look(ts, tl, name, domid);
                std::thread::sleep(Duration::from_millis(100));
            },
            Err(e) => tl.event(name, "destroy", &format!("xl shutdown failed: {e}")),
        }
    } else {
        tl.event(name, "destroy", "not running (shut down or crashed)");
    }
    pciback::while_stopping(ts, tl, name, domid, || ts.destroy(name))
        .map_err(|e| format!("cannot destroy `{name}`: {e}"))?;
    tl.event(name, "destroyed", &format!("after {}", secs(t.elapsed())));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appliance::tests::{files, load, owning_a_nic, APPLIANCE};
    use crate::fake::Fake;
    use crate::passthrough::resolve;
    use crate::pci::tests::bus;

    fn app(tag: &str) -> Appliance {
        app_from(APPLIANCE, tag)
    }

    fn app_from(text: &str, tag: &str) -> Appliance {
        let dir = std::env::temp_dir().join(format!("xddctl-down-{}-{tag}", std::process::id()));
        let text = text
            .replace(
                "state_dir = \"/run/xdd\"",
                &format!("state_dir = {:?}", dir),
            )
            .replace(
                "ready_timeout_s = 20",
                "ready_timeout_s = 20\nshutdown_timeout_s = 0.3",
            );
        load(&text, &files()).unwrap()
    }

    #[test]
    fn stops_guests_first_then_driver_domains() {
        let a = app("order");
        let fake = Fake::new();
        for n in ["netdd", "hello", "web1", "web2", "other"] {
            fake.add_running(n);
        }
        let tl = Timeline::new(Box::new(std::io::sink()), None);
        down(&a, &fake, &tl, Devices::Keep).unwrap();
        let calls = fake.calls();
        let pos = |c: &str| calls.iter().position(|x| x == c).unwrap();
        assert_eq!(calls.len(), 4, "{calls:?}");
        assert!(pos("shutdown web1") < pos("shutdown netdd"));
        assert!(pos("shutdown web2") < pos("shutdown netdd"));
        assert!(pos("shutdown web2") < pos("shutdown hello"));
        let left: Vec<String> = fake.list().unwrap().into_iter().map(|d| d.name).collect();
        assert_eq!(left, ["Domain-0", "other"]);
        assert!(a.stop_flag().exists());
    }

    #[test]
    fn destroys_what_ignores_shutdown_and_warns_about_outsiders() {
        let a = app("stubborn");
        let fake = Fake::new();
        let netdd = fake.add_running("netdd");
        fake.add_running("web1");
        let other = fake.add_running("other");
        fake.state().ignore_shutdown.insert("web1".into());
        fake.state().xs.insert(
            format!("/local/domain/{netdd}/backend/vif/{other}/0/state"),
            "4".into(),
        );
        let tl = Timeline::new(Box::new(std::io::sink()), None);
        down(&a, &fake, &tl, Devices::Keep).unwrap();
        let calls = fake.calls();
        assert_eq!(
            calls,
            ["shutdown web1", "destroy web1", "shutdown netdd"],
            "{calls:?}"
        );
        let lines = tl.lines().join("\n");
        assert!(lines.contains("still serves a vif of `other`"), "{lines}");
        assert!(
            lines.contains("still there 0.30 s after xl shutdown"),
            "{lines}"
        );
    }

    #[test]
    fn a_pci_owner_that_shut_down_is_answered_for_instead_of_destroyed() {
        let mut a = app_from(&owning_a_nic(APPLIANCE), "pci-stop");
        resolve(&mut a, &bus()).unwrap();
        let fake = Fake::new();
        let id = fake.add_running("hello");
        fake.hold_pci("hello", &["0000:00:10.0"]);
        fake.connect_pcifront("hello");
        fake.state().libxl_waits_for_pciback = true;
        let tl = Timeline::new(Box::new(std::io::sink()), None);
        down(&a, &fake, &tl, Devices::Keep).unwrap();
        // xl shutdown; xl's monitor takes the function away and xddctl answers for the dead
        // pcifront, so the domain is gone well before the shutdown timeout: no xl destroy,
        // no `not ready`.
        assert_eq!(
            fake.calls(),
            [
                "shutdown hello".to_string(),
                format!("xs-write /local/domain/{id}/device/pci/0/state=7"),
                format!("xs-write /local/domain/{id}/device/pci/0/state=4"),
            ]
        );
        let lines = tl.lines().join("\n");
        assert!(lines.contains("hello        stopped"), "{lines}");
        assert!(
            lines.contains("hello        pci-removed 0000:00:10.0: answered pciback"),
            "{lines}"
        );
    }

    #[test]
    fn a_running_pci_owner_answers_for_itself() {
        let mut a = app_from(&owning_a_nic(APPLIANCE), "pci-alive");
        resolve(&mut a, &bus()).unwrap();
        let fake = Fake::new();
        let id = fake.add_running("hello");
        fake.hold_pci("hello", &["0000:00:10.0"]);
        fake.connect_pcifront("hello");
        fake.state().ignore_shutdown.insert("hello".into());
        // libxl asks (as for `xl pci-detach`) while the domain runs: not xddctl's business.
        let be = crate::pciback::backend_path(id);
        fake.state().xs.insert(format!("{be}/state-0"), "5".into());
        fake.state().xs.insert(format!("{be}/state"), "7".into());
        let tl = Timeline::new(Box::new(std::io::sink()), None);
        down(&a, &fake, &tl, Devices::Keep).unwrap();
        assert_eq!(fake.calls(), ["shutdown hello", "destroy hello"]);
        assert!(!tl.lines().join("\n").contains("pci-removed"));
    }

    #[test]
    fn devices_stay_assignable_unless_released() {
        let mut a = app_from(&owning_a_nic(APPLIANCE), "devices");
        resolve(&mut a, &bus()).unwrap();
        let quiet = || Timeline::new(Box::new(std::io::sink()), None);
        let nic = crate::pci::Bdf::parse("00:10.0").unwrap();
        for release in [false, true] {
            let fake = Fake::new();
            fake.add_running("hello");
            fake.hold_pci("hello", &["0000:00:10.0"]);
            let tl = quiet();
            let how = if release {
                Devices::Release
            } else {
                Devices::Keep
            };
            down(&a, &fake, &tl, how).unwrap();
            let calls = fake.calls();
            let lines = tl.lines().join("\n");
            if release {
                // Released once hello is gone, not before.
                assert_eq!(calls, ["shutdown hello", "pci-release 0000:00:10.0"]);
                assert!(!fake.state().assignable.contains(&nic));
                assert!(
                    lines.contains(
                        "hello        released    1af4:1000#1 (0000:00:10.0) back to dom0 (xl \
                     pci-assignable-remove -r)"
                    ),
                    "{lines}"
                );
            } else {
                assert_eq!(calls, ["shutdown hello"]);
                assert!(fake.pci_assignable_list().unwrap().contains(&nic));
                assert!(lines.contains(
                    "hello        kept        1af4:1000#1 stay(s) assignable, away from dom0's \
                     drivers"
                ), "{lines}");
            }
        }
    }
}
