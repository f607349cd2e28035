//! `cargo xtask testbed fetch`: downloads the release's Debian packages once and unpacks them.

use crate::apt::Apt;
use crate::release::Release;
use crate::util::{self, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where one release's testbed files live under target/testbed/<suite>/.
#[derive(Debug, Clone)]
pub struct Cache {
    /// The release these files belong to.
    pub release: Release,
    /// target/testbed/<suite>
    pub base: PathBuf,
}

/// What the manifest records about the fetched packages.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Kernel flavour, e.g. `6.1.0-56-amd64`.
    pub kernel: String,
    /// `(package, version, file name)` for every downloaded package.
    pub packages: Vec<(String, String, String)>,
    /// The release's package list the download was made for.
    pub wanted: Vec<String>,
}

/// The package names a release needs besides the kernel-specific ones.
fn wanted(r: Release) -> Vec<String> {
    let mut names = r.dom0_packages();
    names.extend(r.guest_tool_packages());
    names
}

impl Cache {
    /// The cache of `release`.
    pub fn new(release: Release) -> Cache {
        Cache {
            release,
            base: util::testbed_dir().join(release.suite),
        }
    }
    /// Downloaded .deb files.
    pub fn debs(&self) -> PathBuf {
        self.base.join("debs")
    }
    /// All packages unpacked into one tree.
    pub fn sysroot(&self) -> PathBuf {
        self.base.join("sysroot")
    }
    /// Built images (initramfs, kernels, modules).
    pub fn images(&self) -> PathBuf {
        self.base.join("images")
    }
    fn manifest_path(&self) -> PathBuf {
        self.base.join("manifest.txt")
    }

    /// Reads the manifest if every package it names is present.
    pub fn manifest(&self) -> Option<Manifest> {
        let text = std::fs::read_to_string(self.manifest_path()).ok()?;
        let mut kernel = None;
        let mut packages = Vec::new();
        let mut wanted_list = Vec::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["kernel", k] => kernel = Some(k.to_string()),
                ["wanted", names @ ..] => {
                    wanted_list = names.iter().map(|n| n.to_string()).collect()
                }
                ["package", p, v, file] => {
                    packages.push((p.to_string(), v.to_string(), file.to_string()))
                }
                _ => {}
            }
        }
        let complete = packages
            .iter()
            .all(|(_, _, f)| self.debs().join(f).is_file());
        let current = wanted_list == wanted(self.release);
        (complete && current && !packages.is_empty()).then_some(Manifest {
            kernel: kernel?,
            packages,
            wanted: wanted_list,
        })
    }
}

/// Fetches (if needed) and unpacks the packages of `cache.release`; returns the manifest.
pub fn fetch(cache: &Cache) -> Result<Manifest> {
    let manifest = match cache.manifest() {
        Some(m) => {
            eprintln!(
                "testbed: {} packages for {} already cached in {} (nothing downloaded)",
                m.packages.len(),
                cache.release.suite,
                cache.debs().display()
            );
            m
        }
        None => download(cache)?,
    };
    unpack(cache, &manifest)?;
    Ok(manifest)
}

fn download(cache: &Cache) -> Result<Manifest> {
    let r = cache.release;
    let apt = Apt::new(cache.base.join("apt"), r);
    apt.update()?;
    let kernel = apt.kernel_flavour()?;
    let image_pkg = format!("linux-image-{kernel}");
    let image_version = apt.version(&image_pkg)?;
    let headers = format!("linux-headers-{kernel}");
    let mut names: Vec<String> = wanted(r);
    names.push(image_pkg);
    names.push(headers.clone());
    names.extend(header_dependencies(&apt, &headers)?);
    let mut specs = Vec::new();
    let mut packages = Vec::new();
    for name in &names {
        let version = apt.version(name)?;
        specs.push(format!("{name}={version}"));
        packages.push((name.clone(), version));
    }
    // The kernel source must be exactly the running kernel's to build xen-hcd.
    let src_version = apt
        .version(&format!("{}={image_version}", r.linux_source))
        .or_else(|_| apt.version(r.linux_source))?;
    specs.push(format!("{}={src_version}", r.linux_source));
    packages.push((r.linux_source.to_string(), src_version));

    eprintln!(
        "testbed: downloading {} packages ({}, kernel {kernel})",
        specs.len(),
        r.suite
    );
    let debs = cache.debs();
    if debs.exists() {
        std::fs::remove_dir_all(&debs)
            .map_err(|e| format!("cannot clean {}: {e}", debs.display()))?;
    }
    apt.download(&specs, &debs)?;
    let files = list_debs(&debs)?;
    let mut manifest = Manifest {
        kernel,
        packages: Vec::new(),
        wanted: wanted(r),
    };
    for (name, version) in packages {
        let prefix = format!("{name}_");
        let file = files
            .iter()
            .find(|f| f.starts_with(&prefix))
            .ok_or_else(|| format!("apt-get download did not produce {name}"))?;
        manifest.packages.push((name, version, file.clone()));
    }
    let mut text = format!(
        "# testbed packages for {}\nkernel {}\nwanted {}\n",
        r.suite,
        manifest.kernel,
        manifest.wanted.join(" ")
    );
    for (p, v, f) in &manifest.packages {
        text.push_str(&format!("package {p} {v} {f}\n"));
    }
    util::write(&cache.manifest_path(), text)?;
    // A new download invalidates the unpacked tree.
    let _ = std::fs::remove_file(cache.base.join("sysroot.stamp"));
    Ok(manifest)
}

/// The `linux-headers-*-common` and `linux-kbuild-*` packages the headers depend on.
fn header_dependencies(apt: &Apt, headers: &str) -> Result<Vec<String>> {
    let deps: Vec<String> = apt
        .depends(headers)?
        .into_iter()
        .filter(|s| s.starts_with("linux-headers-") || s.starts_with("linux-kbuild-"))
        .collect();
    if deps.is_empty() {
        return Err(format!("cannot resolve the dependencies of {headers}"));
    }
    Ok(deps)
}

fn list_debs(dir: &Path) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    Ok(rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".deb"))
        .collect())
}

/// Unpacks every package into the sysroot once (a stamp records which manifest it came from).
fn unpack(cache: &Cache, m: &Manifest) -> Result {
    let stamp = cache.base.join("sysroot.stamp");
    let want: String = m
        .packages
        .iter()
        .map(|(_, _, f)| format!("{f}\n"))
        .collect();
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    let root = cache.sysroot();
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .map_err(|e| format!("cannot clean {}: {e}", root.display()))?;
    }
    util::mkdirs(&root)?;
    eprintln!(
        "testbed: unpacking {} packages into {}",
        m.packages.len(),
        root.display()
    );
    for (_, _, f) in &m.packages {
        util::run(
            Command::new("dpkg-deb")
                .arg("-x")
                .arg(cache.debs().join(f))
                .arg(&root),
        )?;
    }
    util::write(&stamp, want)
}
