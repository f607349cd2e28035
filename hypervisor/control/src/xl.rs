//! The real toolstack: `xl` as a subprocess, xenstored through [`crate::xenstore`].

use crate::devices::DeviceKind;
use crate::pci::Bdf;
use crate::toolstack::{
    parse_assignable_list, parse_xl_list, parse_xl_uptime, Change, DomainInfo, Toolstack,
};
use crate::xenstore::Xenstore;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long `xl create` may take (it waits up to 10 s per device backend).
const CREATE_TIMEOUT: Duration = Duration::from_secs(180);
/// How long other `xl` commands may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// `xl` and xenstored.
pub struct Xl {
    xl: String,
    xs: Mutex<Xenstore>,
}

impl Xl {
    /// Connects to xenstored; `xl` is looked up in PATH (or `$XDD_XL`).
    pub fn new() -> Result<Xl, String> {
        let xs = Xenstore::open().map_err(|e| {
            format!(
                "cannot connect to xenstored ({e}); run xddctl in dom0 with the Xen toolstack up"
            )
        })?;
        Ok(Xl {
            xl: std::env::var("XDD_XL").unwrap_or_else(|_| "xl".into()),
            xs: Mutex::new(xs),
        })
    }

    fn xl(&self, args: &[&str], timeout: Duration) -> Result<String, String> {
        run(&self.xl, args, timeout)
    }

    fn xs<T>(&self, f: impl FnOnce(&mut Xenstore) -> T) -> T {
        let mut guard = self.xs.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// The domid of a domain name, from xenstore.
    fn domid(&self, name: &str) -> Option<u32> {
        self.directory("/local/domain")
            .into_iter()
            .filter_map(|d| d.parse::<u32>().ok())
            .find(|id| self.read(&format!("/local/domain/{id}/name")).as_deref() == Some(name))
    }
}

static OUTPUT_SEQ: AtomicU64 = AtomicU64::new(0);

/// Runs a program with a timeout; Ok(output) on success, else Err with the meaningful lines.
/// Output goes through a file: `xl create` leaves a daemon behind that must not hold a pipe.
pub fn run(program: &str, args: &[&str], timeout: Duration) -> Result<String, String> {
    let shown = format!("{program} {}", args.join(" "));
    let path = std::env::temp_dir().join(format!(
        "xddctl-{}-{}.out",
        std::process::id(),
        OUTPUT_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let out = std::fs::File::create(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    log::debug!("running {shown}");
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("{shown}: {e}")),
        }
    };
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    match status {
        Some(s) if s.success() => Ok(text),
        Some(s) => Err(format!("`{shown}` failed ({s}): {}", gist(&text))),
        None => Err(format!(
            "`{shown}` did not finish within {} s: {}",
            timeout.as_secs(),
            gist(&text)
        )),
    }
}

/// The lines of xl's output that say what went wrong, on one line.
pub fn gist(out: &str) -> String {
    let lines: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Parsing config from"))
        .collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("error") || l.contains("rror:"))
        .collect();
    let pick = if errors.is_empty() { &lines } else { &errors };
    let tail = &pick[pick.len().saturating_sub(3)..];
    if tail.is_empty() {
        "no output".into()
    } else {
        tail.join(" | ")
    }
}

impl Toolstack for Xl {
    fn create(&self, name: &str, config: &Path) -> Result<u32, String> {
        let cfg = config.display().to_string();
        self.xl(&["create", &cfg], CREATE_TIMEOUT)?;
        self.domid(name)
            .ok_or_else(|| format!("xl create {cfg} succeeded but no domain `{name}` exists"))
    }

    fn destroy(&self, name: &str) -> Result<(), String> {
        self.xl(&["destroy", name], COMMAND_TIMEOUT).map(|_| ())
    }

    fn shutdown(&self, name: &str) -> Result<(), String> {
        self.xl(&["shutdown", name], COMMAND_TIMEOUT).map(|_| ())
    }

    fn list(&self) -> Result<Vec<DomainInfo>, String> {
        self.xl(&["list"], COMMAND_TIMEOUT)
            .map(|o| parse_xl_list(&o))
    }

    fn uptimes(&self) -> Result<BTreeMap<String, u64>, String> {
        self.xl(&["uptime"], COMMAND_TIMEOUT)
            .map(|o| parse_xl_uptime(&o))
    }

    fn pci_assignable(&self, bdf: Bdf) -> Result<bool, String> {
        if self.pci_assignable_list()?.contains(&bdf) {
            return Ok(false);
        }
        self.xl(&["pci-assignable-add", &bdf.to_string()], COMMAND_TIMEOUT)
            .map(|_| true)
    }

    fn pci_assignable_list(&self) -> Result<Vec<Bdf>, String> {
        self.xl(&["pci-assignable-list"], COMMAND_TIMEOUT)
            .map(|o| parse_assignable_list(&o))
    }

    fn pci_release(&self, bdf: Bdf) -> Result<(), String> {
        self.xl(
            &["pci-assignable-remove", "-r", &bdf.to_string()],
            COMMAND_TIMEOUT,
        )
        .map(|_| ())
    }

    fn attach(&self, domain: &str, kind: DeviceKind, args: &[String]) -> Result<(), String> {
        let mut a: Vec<&str> = vec![kind.attach_command(), domain];
        a.extend(args.iter().map(String::as_str));
        self.xl(&a, COMMAND_TIMEOUT).map(|_| ())
    }

    fn detach(&self, domain: &str, kind: DeviceKind, devid: u32) -> Result<(), String> {
        let id = devid.to_string();
        self.xl(&[kind.detach_command(), domain, &id], COMMAND_TIMEOUT)
            .map(|_| ())
    }

    fn read(&self, path: &str) -> Option<String> {
        self.xs(|x| x.read(path)).ok()
    }

    fn directory(&self, path: &str) -> Vec<String> {
        self.xs(|x| x.directory(path)).unwrap_or_default()
    }

    fn write(&self, path: &str, value: &str) -> Result<(), String> {
        self.xs(|x| x.write(path, value))
    }

    fn remove(&self, path: &str) -> Result<(), String> {
        self.xs(|x| x.rm(path))
    }

    fn write_nodes(&self, nodes: &[crate::vusb::Node]) -> Result<(), String> {
        self.xs(|x| x.write_nodes(nodes))
    }

    fn watch(&self, on_change: Box<dyn Fn(Change) + Send>) -> Result<(), String> {
        let mut w = Xenstore::open()?;
        w.watch("/local/domain", "domains")?;
        w.watch("@releaseDomain", "released")?;
        std::thread::spawn(move || {
            while let Ok((path, _token)) = w.next_event() {
                on_change(path);
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gist_keeps_the_error_lines() {
        let out = "Parsing config from /etc/xen/a.cfg\n\
                   libxl: error: libxl_device.c:1: unable to add device\n\
                   libxl: error: libxl_create.c:2: cannot add nic\n\
                   some noise\n";
        assert_eq!(
            gist(out),
            "libxl: error: libxl_device.c:1: unable to add device | libxl: error: \
             libxl_create.c:2: cannot add nic"
        );
        assert_eq!(gist("Parsing config from x\n"), "no output");
        assert_eq!(gist("a\nb\nc\nd\n"), "b | c | d");
    }

    #[test]
    fn runs_programs_with_a_timeout() {
        assert_eq!(
            run("sh", &["-c", "echo hi"], Duration::from_secs(5)).unwrap(),
            "hi\n"
        );
        let e = run(
            "sh",
            &["-c", "echo bad >&2; exit 3"],
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(e.contains("failed") && e.contains("bad"), "{e}");
        let e = run("sh", &["-c", "sleep 5"], Duration::from_millis(100)).unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
        assert!(run("/nonexistent/xl", &[], Duration::from_secs(1))
            .unwrap_err()
            .contains("cannot run"));
    }
}
