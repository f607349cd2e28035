//! Answering dom0's pciback for a driver domain that has died, so libxl does not wait 10 s
//! per PCI function while it destroys that domain.
//!
//! When libxl destroys a PV domain that holds PCI functions (`libxl__destroy_domid` →
//! `libxl__device_pci_destroy_all`, Xen 4.17 `tools/libs/light/libxl_pci.c`), it takes each
//! function away in this order: revokes the domain's I/O-memory, I/O-port and IRQ
//! permissions, resets the function, `xc_deassign_device` (the IOMMU context goes back to
//! quarantine), and only then does the xenstore bookkeeping
//! (`libxl__device_pci_remove_xenstore`): it writes the backend's `state-N` = 5 (Closing) and
//! `state` = 7 (Reconfiguring) and polls `state` for 10 s until it is 4 (Connected)
//! (`libxl__wait_for_backend`, else `Backend … not ready`). pciback (Linux
//! `drivers/xen/xen-pciback/xenbus.c`) moves only when its *frontend's* state changes:
//! frontend 7 → it releases the Closing functions and goes 8 (Reconfigured); frontend 4 → it
//! goes 4. A live pcifront does that dance (ours: `PciFrontTask` in minios-rs); a domain that
//! has shut down or crashed cannot, so every function costs 10 s (the next function's first
//! wait for 4 costs another 10 s).
//!
//! dom0 may write any xenstore node, so xddctl answers for the dead frontend: it writes the
//! frontend's `state` 7 when pciback is Reconfiguring, then 4 when pciback is Reconfigured.
//! This loses no safety: libxl has already reset and deassigned the function when it asks,
//! and xddctl answers only for a domain that `xl list` shows as no longer running (shut down,
//! crashed or dying) — a running (or paused) domain answers for itself.

use crate::timeline::Timeline;
use crate::toolstack::Toolstack;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// xenbus states as xenstore holds them.
const CLOSING: &str = "5";
const CONNECTED: &str = "4";
const RECONFIGURING: &str = "7";
const RECONFIGURED: &str = "8";

/// How often [`while_stopping`] looks.
const LOOK_EVERY: Duration = Duration::from_millis(50);

/// What one look at a dead domain's PCI backend did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// pciback was asked to release these functions (`dev-N` of the Closing `state-N`):
    /// the frontend's state is now Reconfiguring.
    Reconfiguring(Vec<String>),
    /// pciback had released them (Reconfigured): the frontend's state is Connected again,
    /// which lets pciback go Connected and ends libxl's wait.
    Connected,
}

/// libxl's PCI backend directory for domain `domid` (in dom0).
pub fn backend_path(domid: u32) -> String {
    format!("/local/domain/0/backend/pci/{domid}/0")
}

fn state(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim_end_matches('\0').trim().to_string())
}

/// True when domain `domid` can no longer run: `xl list` shows it shut down, crashed or
/// dying, or no longer lists it.
fn dead(ts: &dyn Toolstack, domid: u32) -> Result<bool, String> {
    let list = ts.list()?;
    Ok(list
        .iter()
        .find(|d| d.domid == domid)
        .is_none_or(|d| !d.state.is_alive()))
}

/// One look at domain `domid`'s PCI backend: if libxl is taking functions away and the domain
/// is dead, answers for its frontend (see the module documentation). `None`: nothing to do
/// (no PCI backend, no removal under way, the frontend already answered or is gone, or the
/// domain still runs).
pub fn answer_for_dead(ts: &dyn Toolstack, domid: u32) -> Result<Option<Answer>, String> {
    let be = backend_path(domid);
    let Some(backend) = state(ts.read(&format!("{be}/state"))) else {
        return Ok(None);
    };
    if backend != RECONFIGURING && backend != RECONFIGURED {
        return Ok(None);
    }
    let fe = ts
        .read(&format!("{be}/frontend"))
        .map(|p| p.trim_end_matches('\0').to_string())
        .unwrap_or_else(|| format!("/local/domain/{domid}/device/pci/0"));
    let fe_state = format!("{fe}/state");
    let Some(frontend) = state(ts.read(&fe_state)) else {
        return Ok(None);
    };
    match (backend.as_str(), frontend.as_str()) {
        (RECONFIGURING, CONNECTED) => {
            if !dead(ts, domid)? {
                return Ok(None);
            }
            let closing = closing_functions(ts, &be);
            ts.write(&fe_state, RECONFIGURING)?;
            Ok(Some(Answer::Reconfiguring(closing)))
        }
        (RECONFIGURED, RECONFIGURING) => {
            if !dead(ts, domid)? {
                return Ok(None);
            }
            ts.write(&fe_state, CONNECTED)?;
            Ok(Some(Answer::Connected))
        }
        _ => Ok(None),
    }
}

/// The `dev-N` of every function whose `state-N` is Closing.
fn closing_functions(ts: &dyn Toolstack, be: &str) -> Vec<String> {
    let n: u32 = state(ts.read(&format!("{be}/num_devs")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
        .min(256);
    (0..n)
        .filter(|i| state(ts.read(&format!("{be}/state-{i}"))).as_deref() == Some(CLOSING))
        .filter_map(|i| state(ts.read(&format!("{be}/dev-{i}"))))
        .collect()
}

/// [`answer_for_dead`], with one timeline line for each removal answered.
pub fn look(ts: &dyn Toolstack, tl: &Timeline, name: &str, domid: u32) {
    match answer_for_dead(ts, domid) {
        Ok(Some(Answer::Reconfiguring(functions))) => {
            let which = if functions.is_empty() {
                "its PCI function".to_string()
            } else {
                functions.join(", ")
            };
            tl.event(
                name,
                "pci-removed",
                &format!(
                    "{which}: answered pciback for the dead domain's pcifront (libxl had \
                     reset and deassigned it; unanswered, libxl waits 10 s)"
                ),
            );
        }
        Ok(Some(Answer::Connected)) | Ok(None) => {}
        Err(e) => log::debug!("{name}: looking at its PCI backend: {e}"),
    }
}

/// Runs `f` (an `xl destroy`, or waiting for a shutdown) while answering pciback for domain
/// `domid` should it be dead and libxl be taking its PCI functions away; returns what `f`
/// returned.
pub fn while_stopping<T>(
    ts: &dyn Toolstack,
    tl: &Timeline,
    name: &str,
    domid: u32,
    f: impl FnOnce() -> T,
) -> T {
    if ts
        .read(&format!("{}/num_devs", backend_path(domid)))
        .is_none()
    {
        return f();
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                look(ts, tl, name, domid);
                std::thread::sleep(LOOK_EVERY);
            }
        });
        let out = f();
        done.store(true, Ordering::Relaxed);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Fake;

    fn quiet() -> Timeline {
        Timeline::new(Box::new(std::io::sink()), None)
    }

    /// A driver domain holding two functions with its pcifront connected.
    fn connected(fake: &Fake) -> u32 {
        let id = fake.add_running("nicdd");
        fake.hold_pci("nicdd", &["0000:00:10.0", "0000:00:11.0"]);
        fake.connect_pcifront("nicdd");
        id
    }

    /// libxl begins taking function `i` away (its `state-i` Closing, the backend
    /// Reconfiguring), as `libxl__device_pci_remove_xenstore` does.
    fn libxl_removes(fake: &Fake, id: u32, i: u32) {
        let be = backend_path(id);
        let mut s = fake.state();
        s.xs.insert(format!("{be}/state-{i}"), "5".into());
        s.xs.insert(format!("{be}/state"), "7".into());
    }

    fn frontend_state(fake: &Fake, id: u32) -> String {
        fake.read(&format!("/local/domain/{id}/device/pci/0/state"))
            .unwrap()
    }

    #[test]
    fn answers_for_a_dead_domain_as_pcifront_would() {
        let fake = Fake::new();
        let id = connected(&fake);
        fake.state().crashed.insert("nicdd".into());
        // Nothing under way: nothing to answer.
        assert_eq!(answer_for_dead(&fake, id), Ok(None));
        libxl_removes(&fake, id, 1);
        assert_eq!(
            answer_for_dead(&fake, id),
            Ok(Some(Answer::Reconfiguring(vec!["0000:00:11.0".into()])))
        );
        assert_eq!(frontend_state(&fake, id), "7");
        // pciback released it at once (the fake's pciback follows the frontend's state).
        assert_eq!(
            fake.read(&format!("{}/state", backend_path(id))).unwrap(),
            "8"
        );
        assert_eq!(answer_for_dead(&fake, id), Ok(Some(Answer::Connected)));
        assert_eq!(frontend_state(&fake, id), "4");
        assert_eq!(
            fake.read(&format!("{}/state", backend_path(id))).unwrap(),
            "4"
        );
        assert_eq!(answer_for_dead(&fake, id), Ok(None));
    }

    #[test]
    fn leaves_a_running_or_paused_domain_to_its_own_pcifront() {
        let fake = Fake::new();
        let id = connected(&fake);
        libxl_removes(&fake, id, 0);
        assert_eq!(answer_for_dead(&fake, id), Ok(None));
        fake.state().paused.insert("nicdd".into());
        assert_eq!(answer_for_dead(&fake, id), Ok(None));
        assert_eq!(frontend_state(&fake, id), "4");
        assert!(fake.calls().iter().all(|c| !c.starts_with("xs-write")));
    }

    #[test]
    fn a_frontend_that_is_gone_or_never_connected_is_not_answered() {
        let fake = Fake::new();
        let id = fake.add_running("nicdd");
        fake.hold_pci("nicdd", &["0000:00:10.0"]);
        fake.state().crashed.insert("nicdd".into());
        libxl_removes(&fake, id, 0);
        // No frontend node at all (libxl removed it, or the domain never wrote it).
        assert_eq!(answer_for_dead(&fake, id), Ok(None));
        // A frontend that never connected (Initialising): pciback never was Connected.
        fake.state()
            .xs
            .insert(format!("/local/domain/{id}/device/pci/0/state"), "1".into());
        assert_eq!(answer_for_dead(&fake, id), Ok(None));
        assert!(fake.calls().iter().all(|c| !c.starts_with("xs-write")));
    }

    #[test]
    fn a_domain_xl_list_no_longer_shows_is_dead() {
        let fake = Fake::new();
        let id = connected(&fake);
        libxl_removes(&fake, id, 0);
        // Gone from `xl list` while its xenstore home still exists (being destroyed).
        fake.state().domains.remove("nicdd");
        assert_eq!(
            answer_for_dead(&fake, id),
            Ok(Some(Answer::Reconfiguring(vec!["0000:00:10.0".into()])))
        );
    }

    #[test]
    fn while_stopping_answers_every_function_libxl_takes_away() {
        let fake = Fake::new();
        let id = connected(&fake);
        fake.state().crashed.insert("nicdd".into());
        fake.state().libxl_waits_for_pciback = true;
        let tl = quiet();
        let t = std::time::Instant::now();
        while_stopping(&fake, &tl, "nicdd", id, || fake.destroy("nicdd")).unwrap();
        let calls = fake.calls();
        assert!(!calls.iter().any(|c| c.contains("not ready")), "{calls:?}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(fake.list().unwrap().iter().all(|d| d.name != "nicdd"));
        let lines = tl.lines().join("\n");
        for f in ["0000:00:10.0", "0000:00:11.0"] {
            assert!(
                lines.contains(&format!("pci-removed {f}: answered pciback")),
                "{lines}"
            );
        }
        assert_eq!(lines.matches("pci-removed").count(), 2, "{lines}");
    }

    #[test]
    fn unanswered_the_fake_libxl_times_out_as_the_real_one_does() {
        let fake = Fake::new();
        connected(&fake);
        fake.state().crashed.insert("nicdd".into());
        fake.state().libxl_waits_for_pciback = true;
        fake.destroy("nicdd").unwrap();
        let calls = fake.calls();
        assert!(calls.iter().any(|c| c.contains("not ready")), "{calls:?}");
    }
}
