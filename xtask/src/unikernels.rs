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
    /// Cargo features the image needs (e.g. `unikernel` for backend crates whose library
    /// also builds on the host).
    pub features: &'static [&'static str],
}

/// Every unikernel image the project builds.
pub const ALL: &[Unikernel] = &[
    Unikernel {
        name: "hello",
        package: "hello-dd",
        bin: "hello-dd",
        features: &["unikernel"],
    },
    Unikernel {
        name: "blkback",
        package: "blkback",
        bin: "blkback-dd",
        features: &["unikernel"],
    },
    Unikernel {
        name: "netback",
        package: "netback",
        bin: "netback-dd",
        features: &["unikernel"],
    },
    Unikernel {
        name: "usbback",
        package: "usbback",
        bin: "usbback-dd",
        features: &["unikernel"],
    },
    Unikernel {
        name: "audioback",
        package: "audioback",
        bin: "audioback-dd",
        features: &["unikernel"],
    },
];

/// `-p` and `--features` arguments naming every image, for checking them all in one command.
pub fn package_args() -> Vec<String> {
    let mut args = Vec::new();
    let mut features = Vec::new();
    for u in ALL {
        args.extend(["-p".to_string(), u.package.to_string()]);
        features.extend(u.features.iter().map(|f| format!("{}/{f}", u.package)));
    }
    args.extend(["--features".to_string(), features.join(",")]);
    args
}

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
            ])
            .args(u.features.iter().flat_map(|f| ["--features", f])),
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
