//! The project's unikernel images and how to build them.

use crate::util::{self, Result};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use testbed_agent::scenario::{DomainKind, Scenario};

/// A unikernel image: its name in scenarios (/boot/xdd/<name>.elf) and the cargo binary.
pub struct Unikernel {
    /// Image name.
    pub name: &'static str,
    /// Cargo package.
    pub package: &'static str,
    /// Binary target.
    pub bin: &'static str,
}

/// Every unikernel image the project builds.
pub const ALL: &[Unikernel] = &[Unikernel {
    name: "hello",
    package: "hello-dd",
    bin: "hello-dd",
}];

/// Builds one image with the `unikernel` profile; returns the ELF's path.
pub fn build(u: &Unikernel) -> Result<PathBuf> {
    let root = util::workspace_root();
    util::run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&root)
            .args([
                "build",
                "--quiet",
                "--profile",
                "unikernel",
                "-p",
                u.package,
                "--bin",
                u.bin,
            ]),
    )?;
    Ok(root.join("target/unikernel").join(u.bin))
}

/// Builds the images the scenarios use; returns `(name, path)` pairs.
pub fn build_for(scenarios: &[(Scenario, String)]) -> Result<Vec<(String, PathBuf)>> {
    let wanted: BTreeSet<&str> = scenarios
        .iter()
        .flat_map(|(s, _)| s.domains.iter())
        .filter(|d| d.kind == DomainKind::Unikernel)
        .filter_map(|d| d.image.as_deref())
        .collect();
    let mut out = Vec::new();
    for name in wanted {
        let u = ALL
            .iter()
            .find(|u| u.name == name)
            .ok_or_else(|| format!("unknown unikernel image `{name}` (known: {})", names()))?;
        out.push((name.to_string(), build(u)?));
    }
    Ok(out)
}

fn names() -> String {
    ALL.iter().map(|u| u.name).collect::<Vec<_>>().join(", ")
}
