//! Downloads Debian packages through a private apt configuration.
//!
//! The machine's own apt sources, lists and status are never changed: the testbed keeps its
//! own sources.list (same mirrors as the machine, other suite), lists and cache under
//! target/testbed/<suite>/apt.

use crate::release::Release;
use crate::util::{self, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// apt with a private configuration rooted in one directory.
pub struct Apt {
    dir: PathBuf,
    release: Release,
}

impl Apt {
    /// A private apt for `release` keeping its state in `dir`.
    pub fn new(dir: PathBuf, release: Release) -> Apt {
        Apt { dir, release }
    }

    fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        vec![
            format!("-oDir::Etc::SourceList={d}/sources.list"),
            "-oDir::Etc::SourceParts=/dev/null".into(),
            format!("-oDir::State::Lists={d}/lists"),
            format!("-oDir::Cache={d}/cache"),
            "-oDir::State::status=/dev/null".into(),
            "-oAPT::Sandbox::User=root".into(),
            "-oDebug::NoLocking=1".into(),
            "-oAcquire::Retries=3".into(),
            "-qq".into(),
        ]
    }

    fn command(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        c.args(self.options());
        c
    }

    /// Writes the private sources.list and downloads the package lists.
    pub fn update(&self) -> Result {
        let (main, security) = machine_mirrors()?;
        let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
        let s = self.release.suite;
        let sources = format!(
            "deb [signed-by={keyring}] {main} {s} main\n\
             deb [signed-by={keyring}] {main} {s}-updates main\n\
             deb [signed-by={keyring}] {security} {s}-security main\n"
        );
        util::write(&self.dir.join("sources.list"), sources)?;
        util::mkdirs(&self.dir.join("lists/partial"))?;
        util::mkdirs(&self.dir.join("cache/archives/partial"))?;
        eprintln!(
            "testbed: apt update ({s}, private lists under {})",
            self.dir.display()
        );
        util::run(self.command("apt-get").arg("update"))
    }

    /// The candidate version of a package.
    pub fn version(&self, pkg: &str) -> Result<String> {
        let out = util::output(
            self.command("apt-cache")
                .args(["show", "--no-all-versions", pkg]),
        )?;
        out.lines()
            .find_map(|l| l.strip_prefix("Version: "))
            .map(|v| v.trim().to_string())
            .ok_or_else(|| format!("apt has no version of {pkg} in {}", self.release.suite))
    }

    /// The versioned kernel image package behind `linux-image-amd64` (e.g. `6.1.0-56-amd64`).
    pub fn kernel_flavour(&self) -> Result<String> {
        self.depends("linux-image-amd64")?
            .into_iter()
            .filter_map(|d| d.strip_prefix("linux-image-").map(String::from))
            .find(|s| s.starts_with(|c: char| c.is_ascii_digit()))
            .ok_or_else(|| "cannot resolve linux-image-amd64 to a kernel version".to_string())
    }

    /// The direct `Depends:` of a package (virtual-package brackets removed).
    pub fn depends(&self, pkg: &str) -> Result<Vec<String>> {
        let out = util::output(self.command("apt-cache").args(["depends", pkg]))?;
        Ok(out
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .map(|s| {
                s.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
            .collect())
    }

    /// Downloads `pkg=version` specs into `dest`.
    pub fn download(&self, specs: &[String], dest: &Path) -> Result {
        util::mkdirs(dest)?;
        util::run(
            self.command("apt-get")
                .arg("download")
                .args(specs)
                .current_dir(dest),
        )
    }
}

/// The Debian and Debian-security mirror URIs configured on this machine.
fn machine_mirrors() -> Result<(String, String)> {
    let mut uris = Vec::new();
    let mut texts = Vec::new();
    if let Ok(t) = std::fs::read_to_string("/etc/apt/sources.list") {
        texts.push(t);
    }
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in rd.flatten() {
            let p = e.path();
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext == "sources" || ext == "list" {
                if let Ok(t) = std::fs::read_to_string(&p) {
                    texts.push(t);
                }
            }
        }
    }
    for t in &texts {
        for line in t.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("URIs:") {
                uris.extend(rest.split_whitespace().map(String::from));
            } else if line.starts_with("deb ") {
                let words: Vec<&str> = line.split_whitespace().collect();
                if let Some(u) = words.iter().skip(1).find(|w| w.contains("://")) {
                    uris.push(u.to_string());
                }
            }
        }
    }
    let is_debian = |u: &&String| u.trim_end_matches('/').ends_with("/debian");
    let is_security = |u: &&String| u.trim_end_matches('/').ends_with("/debian-security");
    let main = uris.iter().find(is_debian).cloned();
    let security = uris.iter().find(is_security).cloned();
    match (main, security) {
        (Some(m), Some(s)) => Ok((m, s)),
        (Some(m), None) => {
            let s = format!("{}-security", m.trim_end_matches('/'));
            Ok((m, s))
        }
        _ => Err(
            "no Debian mirror found in /etc/apt/sources.list{,.d}: the testbed takes its \
                  mirror from the machine's apt configuration"
                .into(),
        ),
    }
}
