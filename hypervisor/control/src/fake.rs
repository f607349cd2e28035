//! A fake toolstack for tests: domains and xenstore in memory, every call logged.

use crate::devices::DeviceKind;
use crate::pci::Bdf;
use crate::toolstack::{Change, DomainInfo, RunState, Toolstack};
use crate::xlcfg::XlConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// What the fake knows.
#[derive(Default)]
pub struct State {
    /// Next domid handed out.
    pub next_domid: u32,
    /// Running domains: name → domid.
    pub domains: BTreeMap<String, u32>,
    /// Xenstore.
    pub xs: BTreeMap<String, String>,
    /// Calls, as "create netdd", "destroy web1", …
    pub calls: Vec<String>,
    /// Domains that never write data/ready.
    pub never_ready: BTreeSet<String>,
    /// Domains whose create fails with this message.
    pub fail_create: BTreeMap<String, String>,
    /// Domains that ignore `xl shutdown`.
    pub ignore_shutdown: BTreeSet<String>,
    /// How long a create takes.
    pub create_delay: Duration,
    /// Domains `xl list` shows as crashed.
    pub crashed: BTreeSet<String>,
    /// PCI functions bound to pciback (assigned to a domain or not).
    pub assignable: BTreeSet<Bdf>,
    /// Transactions of `write_nodes` fail with this message.
    pub fail_xs_write: Option<String>,
    /// Domains `xl list` shows as paused.
    pub paused: BTreeSet<String>,
    /// Domains `xl list` shows as shut down (not yet destroyed).
    pub shut_down: BTreeSet<String>,
    /// libxl takes a dead domain's PCI functions away as the real one does: one at a time,
    /// each waiting for pciback (which follows the frontend's state) to be Connected again,
    /// and giving up after [`LIBXL_PCI_WAIT`] with a `not ready` call logged.
    pub libxl_waits_for_pciback: bool,
    /// Domains whose PCI functions libxl is taking away (by domid).
    pub removing_pci: BTreeSet<u32>,
}

/// The fake libxl's `libxl__wait_for_backend` (10 s in the real one).
pub const LIBXL_PCI_WAIT: Duration = Duration::from_millis(1500);

impl State {
    /// PCI functions assigned to domains, from libxl's backend nodes (as `xl pci-list`).
    pub fn held(&self) -> BTreeSet<Bdf> {
        self.xs
            .iter()
            .filter(|(k, _)| {
                k.starts_with("/local/domain/0/backend/pci/")
                    && k.rsplit('/').next().is_some_and(|n| n.starts_with("dev-"))
            })
            .filter_map(|(_, v)| Bdf::parse(v))
            .collect()
    }

    /// Writes libxl's backend nodes for PCI functions assigned to a domain.
    pub fn assign(&mut self, domid: u32, bdfs: &[Bdf]) {
        let base = format!("/local/domain/0/backend/pci/{domid}/0");
        for (i, b) in bdfs.iter().enumerate() {
            self.xs.insert(format!("{base}/dev-{i}"), b.to_string());
            self.xs.insert(format!("{base}/state-{i}"), "1".into());
        }
        self.xs
            .insert(format!("{base}/num_devs"), bdfs.len().to_string());
        // dom0's pciback published the devices and waits for the domain's pcifront.
        self.xs.insert(format!("{base}/state"), "3".into());
    }

    /// libxl's next step in taking domain `id`'s PCI functions away (the last one first),
    /// once pciback is Connected: forget the function just released, then ask for the next
    /// one (its `state-N` Closing, the backend Reconfiguring); with none left the domain is
    /// destroyed.
    fn libxl_pci_step(&mut self, id: u32) {
        let be = format!("/local/domain/0/backend/pci/{id}/0");
        if self.xs.get(&format!("{be}/state")).map(String::as_str) != Some("4") {
            return;
        }
        let mut n: u32 = self
            .xs
            .get(&format!("{be}/num_devs"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if n > 0
            && self
                .xs
                .get(&format!("{be}/state-{}", n - 1))
                .map(String::as_str)
                == Some("5")
        {
            n -= 1;
            self.xs.remove(&format!("{be}/dev-{n}"));
            self.xs.remove(&format!("{be}/state-{n}"));
            self.xs.insert(format!("{be}/num_devs"), n.to_string());
        }
        if n > 0 {
            self.xs.insert(format!("{be}/state-{}", n - 1), "5".into());
            self.xs.insert(format!("{be}/state"), "7".into());
        } else {
            self.removing_pci.remove(&id);
            if let Some(name) = self
                .domains
                .iter()
                .find(|(_, &d)| d == id)
                .map(|(n, _)| n.clone())
            {
                self.shut_down.remove(&name);
                self.crashed.remove(&name);
                remove_domain(self, &name);
            }
        }
    }

    /// True when domain `id` holds PCI functions whose pcifront had connected.
    fn pci_connected(&self, id: u32) -> bool {
        self.xs
            .contains_key(&format!("/local/domain/0/backend/pci/{id}/0/state"))
            && self
                .xs
                .contains_key(&format!("/local/domain/{id}/device/pci/0/state"))
    }
}

/// The fake toolstack.
pub struct Fake(pub Mutex<State>);

impl Fake {
    /// A fake with only Domain-0.
    pub fn new() -> Fake {
        let f = Fake(Mutex::new(State {
            next_domid: 1,
            ..Default::default()
        }));
        f.state().domains.insert("Domain-0".into(), 0);
        f
    }

    /// Locks the state.
    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    /// The domains that exist, by name: their domids (what `list` reports).
    pub fn domids(&self) -> BTreeMap<String, u32> {
        self.state().domains.clone()
    }

    /// The domid of domain `name`, which must exist.
    pub fn domid(&self, name: &str) -> u32 {
        self.state().domains[name]
    }

    /// Makes a domain exist without `create` (already running before a test).
    pub fn add_running(&self, name: &str) -> u32 {
        let mut s = self.state();
        let id = s.next_domid;
        s.next_domid += 1;
        s.domains.insert(name.into(), id);
        s.xs.insert(format!("/local/domain/{id}/name"), name.into());
        id
    }

    /// Makes a domain vanish as if it crashed and was destroyed (no call logged).
    pub fn kill(&self, name: &str) {
        remove_domain(&mut self.state(), name);
    }

    /// The domain's pcifront connects to dom0's pciback (both Connected).
    pub fn connect_pcifront(&self, name: &str) {
        let mut s = self.state();
        let id = s.domains[name];
        let fe = format!("/local/domain/{id}/device/pci/0");
        let be = format!("/local/domain/0/backend/pci/{id}/0");
        s.xs.insert(format!("{be}/frontend"), fe.clone());
        s.xs.insert(format!("{be}/state"), "4".into());
        s.xs.insert(format!("{fe}/state"), "4".into());
    }

    /// Makes a running domain hold PCI functions (as `xl create` with `pci=` or
    /// `xl pci-attach` would).
    pub fn hold_pci(&self, name: &str, bdfs: &[&str]) {
        let bdfs: Vec<Bdf> = bdfs.iter().map(|b| Bdf::parse(b).unwrap()).collect();
        let mut s = self.state();
        let id = s.domains[name];
        s.assignable.extend(bdfs.iter().copied());
        s.assign(id, &bdfs);
    }
}

/// Removes a domain with its xenstore home and its PCI backend; its PCI functions stay
/// assignable (libxl puts them back into quarantine).
fn remove_domain(s: &mut State, name: &str) {
    if let Some(id) = s.domains.remove(name) {
        let home = format!("/local/domain/{id}/");
        let pci = format!("/local/domain/0/backend/pci/{id}/");
        s.xs.retain(|k, _| !k.starts_with(&home) && !k.starts_with(&pci));
    }
}

/// The PCI functions an xl.cfg file passes through (none when it cannot be read).
fn pci_of(config: &Path) -> Vec<Bdf> {
    let Ok(text) = std::fs::read_to_string(config) else {
        return Vec::new();
    };
    let Ok(cfg) = XlConfig::parse(&text, "fake") else {
        return Vec::new();
    };
    cfg.get_list("pci")
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().and_then(Bdf::parse))
        .collect()
}

impl Toolstack for Fake {
    fn create(&self, name: &str, config: &Path) -> Result<u32, String> {
        let delay = {
            let mut s = self.state();
            s.calls.push(format!("create {name}"));
            s.create_delay
        };
        std::thread::sleep(delay);
        let mut s = self.state();
        if let Some(e) = s.fail_create.get(name) {
            return Err(e.clone());
        }
        if s.domains.contains_key(name) {
            return Err(format!("domain {name} already exists"));
        }
        let pci = pci_of(config);
        let held = s.held();
        if let Some(b) = pci
            .iter()
            .find(|b| !s.assignable.contains(b) || held.contains(b))
        {
            return Err(format!("libxl: error: {b} is not assignable"));
        }
        let id = s.next_domid;
        s.next_domid += 1;
        s.domains.insert(name.into(), id);
        if !pci.is_empty() {
            s.assign(id, &pci);
        }
        s.xs.insert(format!("/local/domain/{id}/name"), name.into());
        if !s.never_ready.contains(name) {
            s.xs.insert(format!("/local/domain/{id}/data/ready"), "1".into());
        }
        Ok(id)
    }

    fn destroy(&self, name: &str) -> Result<(), String> {
        let mut s = self.state();
        s.calls.push(format!("destroy {name}"));
        let id = s.domains.get(name).copied();
        if let Some(id) = id.filter(|&id| s.libxl_waits_for_pciback && s.pci_connected(id)) {
            // Like libxl: one function after the other, each waiting for pciback.
            if s.removing_pci.insert(id) {
                s.libxl_pci_step(id);
            }
            let be = format!("/local/domain/0/backend/pci/{id}/0");
            let mut last = s.xs.get(&format!("{be}/num_devs")).cloned();
            let mut since = std::time::Instant::now();
            while s.domains.get(name) == Some(&id) {
                let now = s.xs.get(&format!("{be}/num_devs")).cloned();
                if now != last {
                    (last, since) = (now, std::time::Instant::now());
                }
                if since.elapsed() >= LIBXL_PCI_WAIT {
                    s.calls.push(format!(
                        "libxl: Backend {be} not ready (after destroy {name})"
                    ));
                    break;
                }
                drop(s);
                std::thread::sleep(Duration::from_millis(10));
                s = self.state();
            }
        }
        s.crashed.remove(name);
        s.shut_down.remove(name);
        if let Some(id) = id {
            s.removing_pci.remove(&id);
        }
        if s.domains.get(name) == id.as_ref() {
            remove_domain(&mut s, name);
        }
        Ok(())
    }

    fn shutdown(&self, name: &str) -> Result<(), String> {
        let mut s = self.state();
        s.calls.push(format!("shutdown {name}"));
        if s.ignore_shutdown.contains(name) {
            return Ok(());
        }
        let id = s.domains.get(name).copied();
        match id.filter(|&id| s.libxl_waits_for_pciback && s.pci_connected(id)) {
            // The domain stops; xl's monitor destroys it, taking its PCI functions first.
            Some(id) => {
                s.shut_down.insert(name.into());
                s.removing_pci.insert(id);
                s.libxl_pci_step(id);
            }
            None => remove_domain(&mut s, name),
        }
        Ok(())
    }

    fn list(&self) -> Result<Vec<DomainInfo>, String> {
        let s = self.state();
        Ok(s.domains
            .iter()
            .map(|(n, &id)| DomainInfo {
                name: n.clone(),
                domid: id,
                memory_mib: 64,
                vcpus: 1,
                state: if s.crashed.contains(n) {
                    RunState::Crashed
                } else if s.shut_down.contains(n) {
                    RunState::Shutdown
                } else if s.paused.contains(n) {
                    RunState::Paused
                } else {
                    RunState::Running
                },
            })
            .collect())
    }

    fn uptimes(&self) -> Result<BTreeMap<String, u64>, String> {
        Ok(self
            .state()
            .domains
            .keys()
            .map(|n| (n.clone(), 42))
            .collect())
    }

    fn pci_assignable(&self, bdf: Bdf) -> Result<bool, String> {
        let mut s = self.state();
        s.calls.push(format!("pci-assignable {bdf}"));
        Ok(s.assignable.insert(bdf))
    }

    fn pci_assignable_list(&self) -> Result<Vec<Bdf>, String> {
        let s = self.state();
        let held = s.held();
        Ok(s.assignable.difference(&held).copied().collect())
    }

    fn pci_release(&self, bdf: Bdf) -> Result<(), String> {
        let mut s = self.state();
        s.calls.push(format!("pci-release {bdf}"));
        if s.held().contains(&bdf) || !s.assignable.remove(&bdf) {
            return Err(format!("libxl: error: failed to de-quarantine {bdf}"));
        }
        Ok(())
    }

    fn attach(&self, domain: &str, kind: DeviceKind, args: &[String]) -> Result<(), String> {
        let mut s = self.state();
        s.calls
            .push(format!("attach {domain} {kind} {}", args.join(" ")));
        let id = *s.domains.get(domain).ok_or("no such domain")?;
        let backend = args
            .iter()
            .flat_map(|a| a.split(','))
            .find_map(|p| p.trim().strip_prefix("backend="))
            .ok_or("no backend")?
            .to_string();
        let bid = *s.domains.get(&backend).ok_or("no such backend")?;
        let dir = format!("/local/domain/{id}/device/{}/", kind.xenstore_dir());
        let devid = (0..)
            .find(|n| !s.xs.keys().any(|k| k.starts_with(&format!("{dir}{n}/"))))
            .unwrap_or(0);
        // libxl writes the backend directory in the driver domain with the frontend's.
        let back = format!(
            "/local/domain/{bid}/backend/{}/{id}/{devid}",
            kind.xenstore_dir()
        );
        s.xs.insert(format!("{back}/frontend-id"), id.to_string());
        s.xs.insert(format!("{back}/state"), "4".into());
        s.xs.insert(format!("{dir}{devid}/backend"), back);
        s.xs.insert(format!("{dir}{devid}/backend-id"), bid.to_string());
        s.xs.insert(format!("{dir}{devid}/state"), "4".into());
        if let Some(mac) = args
            .iter()
            .flat_map(|a| a.split(','))
            .find_map(|p| p.trim().strip_prefix("mac="))
        {
            s.xs.insert(format!("{dir}{devid}/mac"), mac.to_string());
        }
        Ok(())
    }

    fn detach(&self, domain: &str, kind: DeviceKind, devid: u32) -> Result<(), String> {
        let mut s = self.state();
        s.calls.push(format!("detach {domain} {kind} {devid}"));
        let id = *s.domains.get(domain).ok_or("no such domain")?;
        let prefix = format!("/local/domain/{id}/device/{}/{devid}/", kind.xenstore_dir());
        // libxl removes the backend directory too.
        let back =
            s.xs.get(&format!("{prefix}backend"))
                .map(|b| format!("{b}/"));
        s.xs.retain(|k, _| {
            !k.starts_with(&prefix) && back.as_ref().is_none_or(|b| !k.starts_with(b))
        });
        Ok(())
    }

    fn read(&self, path: &str) -> Option<String> {
        self.state().xs.get(path).cloned()
    }

    fn directory(&self, path: &str) -> Vec<String> {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let s = self.state();
        let mut out: Vec<String> =
            s.xs.keys()
                .filter_map(|k| k.strip_prefix(&prefix))
                .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
                .collect();
        out.dedup();
        out
    }

    fn remove(&self, path: &str) -> Result<(), String> {
        let mut s = self.state();
        s.calls.push(format!("rm {path}"));
        let prefix = format!("{path}/");
        s.xs.retain(|k, _| k != path && !k.starts_with(&prefix));
        Ok(())
    }

    fn write_nodes(&self, nodes: &[crate::vusb::Node]) -> Result<(), String> {
        let mut s = self.state();
        if let Some(first) = nodes.first() {
            s.calls
                .push(format!("xs-write {} ({} nodes)", first.path, nodes.len()));
        }
        if let Some(e) = s.fail_xs_write.clone() {
            return Err(e);
        }
        for n in nodes {
            // The guest's frontend connects at once (as `attach` has it).
            let frontend_state = n.path.contains("/device/") && n.path.ends_with("/state");
            let value = if frontend_state { "4" } else { &n.value };
            s.xs.insert(n.path.clone(), value.to_string());
        }
        Ok(())
    }

    fn write(&self, path: &str, value: &str) -> Result<(), String> {
        let mut s = self.state();
        s.calls.push(format!("xs-write {path}={value}"));
        s.xs.insert(path.to_string(), value.to_string());
        // dom0's pciback follows its frontend's state (xen_pcibk_frontend_changed).
        let pcifront = path
            .strip_prefix("/local/domain/")
            .and_then(|r| r.strip_suffix("/device/pci/0/state"))
            .and_then(|id| id.parse::<u32>().ok());
        if let Some(id) = pcifront {
            let be = format!("/local/domain/0/backend/pci/{id}/0/state");
            match (s.xs.get(&be).map(String::as_str), value) {
                (Some("7"), "7") => {
                    s.xs.insert(be, "8".into());
                }
                (Some("8"), "4") => {
                    s.xs.insert(be, "4".into());
                    if s.removing_pci.contains(&id) {
                        s.libxl_pci_step(id);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn watch(&self, _on_change: Box<dyn Fn(Change) + Send>) -> Result<(), String> {
        Ok(())
    }
}
