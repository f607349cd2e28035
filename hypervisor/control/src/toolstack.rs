//! The operations xddctl needs from the Xen toolstack and xenstore, as a trait: `xl` and
//! xenstored on a real host ([`crate::xl::Xl`]), a fake in tests.

use crate::devices::DeviceKind;
use crate::pci::Bdf;
use std::collections::BTreeMap;
use std::path::Path;

/// A domain's run state, from the flags column of `xl list` (`r-----`, `-b----`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Running or blocked (waiting for events): alive.
    Running,
    /// Paused.
    Paused,
    /// Shut down but not yet destroyed.
    Shutdown,
    /// Crashed (and preserved).
    Crashed,
    /// Being destroyed.
    Dying,
}

impl RunState {
    /// Parses `xl list`'s six flag characters (r b p s c d).
    pub fn from_flags(flags: &str) -> RunState {
        let has = |c| flags.contains(c);
        if has('d') {
            RunState::Dying
        } else if has('c') {
            RunState::Crashed
        } else if has('s') {
            RunState::Shutdown
        } else if has('p') {
            RunState::Paused
        } else {
            RunState::Running
        }
    }

    /// True for a domain that runs (or could, once unpaused).
    pub fn is_alive(self) -> bool {
        matches!(self, RunState::Running | RunState::Paused)
    }

    /// Word for tables.
    pub fn label(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Shutdown => "shutdown",
            RunState::Crashed => "crashed",
            RunState::Dying => "dying",
        }
    }
}

/// One line of `xl list`.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainInfo {
    /// Name.
    pub name: String,
    /// Domain id.
    pub domid: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Run state.
    pub state: RunState,
}

/// Parses `xl list` output.
pub fn parse_xl_list(out: &str) -> Vec<DomainInfo> {
    out.lines()
        .filter(|l| !l.starts_with("Name"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 {
                return None;
            }
            let n = f.len();
            Some(DomainInfo {
                name: f[..n - 5].join(" "),
                domid: f[n - 5].parse().ok()?,
                memory_mib: f[n - 4].parse().ok()?,
                vcpus: f[n - 3].parse().ok()?,
                state: RunState::from_flags(f[n - 2]),
            })
        })
        .collect()
}

/// Parses `xl uptime` output into seconds per domain name.
pub fn parse_xl_uptime(out: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in out.lines().filter(|l| !l.starts_with("Name")) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let name = f[0].to_string();
        let rest = &f[2..];
        let mut secs = 0u64;
        let mut ok = true;
        let mut i = 0;
        while i < rest.len() {
            let w = rest[i].trim_end_matches(',');
            if rest.get(i + 1).is_some_and(|u| u.starts_with("day")) {
                secs += w.parse::<u64>().unwrap_or(0) * 86_400;
                i += 2;
                continue;
            }
            let parts: Vec<u64> = w.split(':').filter_map(|p| p.parse().ok()).collect();
            match parts.as_slice() {
                [h, m, s] => secs += h * 3600 + m * 60 + s,
                [m, s] => secs += m * 60 + s,
                _ => ok = false,
            }
            i += 1;
        }
        if ok {
            m.insert(name, secs);
        }
    }
    m
}

/// Parses `xl pci-assignable-list` output (one address per line, maybe followed by a name).
pub fn parse_assignable_list(out: &str) -> Vec<Bdf> {
    out.lines()
        .filter_map(|l| l.split_whitespace().next().and_then(Bdf::parse))
        .collect()
}

/// A xenstore watch event: the path that changed (`@releaseDomain` when a domain went away).
pub type Change = String;

/// Toolstack and xenstore operations. Methods take `&self` and may be called from several
/// threads at once (parallel `xl create`).
pub trait Toolstack: Sync {
    /// `xl create <config>`; returns the new domain's id.
    fn create(&self, name: &str, config: &Path) -> Result<u32, String>;
    /// `xl destroy`.
    fn destroy(&self, name: &str) -> Result<(), String>;
    /// `xl shutdown` (asks the domain; does not wait).
    fn shutdown(&self, name: &str) -> Result<(), String>;
    /// Every domain (`xl list`).
    fn list(&self) -> Result<Vec<DomainInfo>, String>;
    /// Uptime in seconds per domain (`xl uptime`).
    fn uptimes(&self) -> Result<BTreeMap<String, u64>, String>;
    /// Makes a PCI function assignable to domUs: `xl pci-assignable-add` (which unbinds dom0's
    /// driver) unless it is assignable already; true when it was added now.
    fn pci_assignable(&self, bdf: Bdf) -> Result<bool, String>;
    /// The PCI functions that are assignable and not assigned to a domain
    /// (`xl pci-assignable-list`).
    fn pci_assignable_list(&self) -> Result<Vec<Bdf>, String>;
    /// Hands an assignable PCI function back to dom0 (`xl pci-assignable-remove -r`).
    fn pci_release(&self, bdf: Bdf) -> Result<(), String>;
    /// Attaches a device to a running domain (`xl network-attach` …); `args` follow the domain.
    fn attach(&self, domain: &str, kind: DeviceKind, args: &[String]) -> Result<(), String>;
    /// Detaches a device by devid (`xl network-detach` …).
    fn detach(&self, domain: &str, kind: DeviceKind, devid: u32) -> Result<(), String>;
    /// Reads a xenstore node (`None` when missing or unreadable).
    fn read(&self, path: &str) -> Option<String>;
    /// Lists a xenstore directory (empty when missing).
    fn directory(&self, path: &str) -> Vec<String>;
    /// Writes one xenstore node (an existing node keeps its permissions).
    fn write(&self, path: &str, value: &str) -> Result<(), String>;
    /// Removes a xenstore node and its children.
    fn remove(&self, path: &str) -> Result<(), String>;
    /// Writes xenstore nodes (with their permissions) in one transaction.
    fn write_nodes(&self, nodes: &[crate::vusb::Node]) -> Result<(), String>;
    /// Calls `on_change` (from another thread) for every change under /local/domain and when
    /// a domain is released; without it callers fall back to polling.
    fn watch(&self, on_change: Box<dyn Fn(Change) + Send>) -> Result<(), String>;
}

/// True while a domain's home in xenstore exists (libxl removes it on destroy).
pub fn xenstore_alive(ts: &dyn Toolstack, domid: u32) -> bool {
    ts.read(&format!("/local/domain/{domid}/name")).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_xl_list() {
        let out = "Name                                        ID   Mem VCPUs\tState\tTime(s)\n\
                   Domain-0                                     0  1024     2     r-----      12.3\n\
                   netdd                                        3   128     1     -b----       2.1\n\
                   web1                                         5   160     1     --p---       0.0\n\
                   dead                                         6   160     1     ---sc-       0.9\n";
        let l = parse_xl_list(out);
        assert_eq!(l.len(), 4);
        assert_eq!(
            l[1],
            DomainInfo {
                name: "netdd".into(),
                domid: 3,
                memory_mib: 128,
                vcpus: 1,
                state: RunState::Running
            }
        );
        assert_eq!(l[2].state, RunState::Paused);
        assert_eq!(l[3].state, RunState::Crashed);
        assert!(!l[3].state.is_alive());
    }

    #[test]
    fn parses_xl_pci_assignable_list() {
        let l = parse_assignable_list("0000:00:10.0\n0000:03:00.1 nic0\nlibxl: warning\n\n");
        let l: Vec<String> = l.iter().map(Bdf::to_string).collect();
        assert_eq!(l, ["0000:00:10.0", "0000:03:00.1"]);
    }

    #[test]
    fn parses_xl_uptime() {
        let out = "Name                                ID Uptime\n\
                   Domain-0                             0  0:10:23\n\
                   netdd                                1  2 days,  1:00:04\n\
                   web1                                 2  1 day,  0:00:05\n";
        let u = parse_xl_uptime(out);
        assert_eq!(u["Domain-0"], 623);
        assert_eq!(u["netdd"], 2 * 86_400 + 3604);
        assert_eq!(u["web1"], 86_405);
    }
}
