//! Host tools the testbed needs, and installing them when run as root.

use crate::util::{self, Result};
use std::process::Command;

/// `(program, Debian package)` the testbed runs on the host.
const TOOLS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("cpio", "cpio"),
    ("gzip", "gzip"),
    ("xz", "xz-utils"),
    ("zstd", "zstd"),
    ("dpkg-deb", "dpkg"),
    ("apt-get", "apt"),
    ("make", "make"),
    ("gcc-12", "gcc-12"),
];

/// Debian packages the test command installs (host tools plus Xen headers for ABI tests).
pub const TEST_PACKAGES: &[&str] = &["libxen-dev"];

/// `(program, Debian package)` the fuzz targets need: libfuzzer-sys compiles libFuzzer (C++).
const FUZZ_TOOLS: &[(&str, &str)] = &[("c++", "g++")];

/// Checks the host tools; installs missing ones with apt when `install` and root.
pub fn ensure(install: bool) -> Result {
    ensure_tools(TOOLS, TEST_PACKAGES, install)
}

/// Checks what `cargo xtask fuzz` needs; installs it with apt when `install` and root.
pub fn ensure_fuzz(install: bool) -> Result {
    ensure_tools(FUZZ_TOOLS, &[], install)
}

/// `(program, Debian package)` `cargo xtask profile` runs.
const PROFILE_TOOLS: &[(&str, &str)] =
    &[("valgrind", "valgrind"), ("callgrind_annotate", "valgrind")];

/// Checks what `cargo xtask profile` needs; installs it with apt when `install` and root.
pub fn ensure_profile(install: bool) -> Result {
    ensure_tools(PROFILE_TOOLS, &[], install)
}

/// Checks `tools` (and, when installing, `packages`); installs what is missing as root.
fn ensure_tools(tools: &[(&str, &str)], packages: &[&str], install: bool) -> Result {
    let missing: Vec<(&str, &str)> = tools
        .iter()
        .copied()
        .filter(|(p, _)| util::which(p).is_none())
        .collect();
    let missing_pkgs: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() && (!install || missing_pkgs.is_empty()) {
        return Ok(());
    }
    let mut pkgs: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
    if install {
        pkgs.extend(&missing_pkgs);
    }
    if install && util::is_root() {
        eprintln!("xtask: installing host packages: {}", pkgs.join(" "));
        util::run(Command::new("apt-get").args(["update", "-qq"]))?;
        util::run(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&pkgs)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
        return Ok(());
    }
    let progs: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
    Err(format!(
        "missing host tools ({}): install them with `sudo apt-get install {}`",
        progs.join(", "),
        pkgs.join(" ")
    ))
}

fn dpkg_installed(pkg: &str) -> bool {
    util::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .map(|s| s.contains("install ok installed"))
        .unwrap_or(false)
}
