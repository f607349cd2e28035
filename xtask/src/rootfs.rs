//! Assembles initramfs trees from the unpacked Debian packages: programs with the libraries
//! their DT_NEEDED entries name, busybox with its applets, kernel modules with dependencies.

use crate::elf::Elf;
use crate::util::{self, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use testbed_agent::cpio::Archive;

/// Directories (relative to the sysroot) searched for shared libraries.
const LIB_DIRS: &[&str] = &[
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib",
    "usr/lib",
];

/// An initramfs under construction, drawing files from a sysroot.
pub struct RootFs {
    /// The archive being built.
    pub archive: Archive,
    sysroot: PathBuf,
    libs: BTreeSet<String>,
    /// modules.dep lines by module file.
    module_deps: BTreeMap<String, String>,
    /// Module name → file relative to /lib/modules/<kernel>.
    module_files: BTreeMap<String, String>,
}

impl RootFs {
    /// An empty tree drawing from `sysroot`.
    pub fn new(sysroot: &Path) -> RootFs {
        RootFs {
            archive: Archive::new(),
            sysroot: sysroot.to_path_buf(),
            libs: BTreeSet::new(),
            module_deps: BTreeMap::new(),
            module_files: BTreeMap::new(),
        }
    }

    /// Adds a host file at `dest`.
    pub fn host_file(&mut self, src: &Path, dest: &str, mode: u32) -> Result {
        let data = util::read(src)?;
        self.archive.file(dest, mode, data);
        Ok(())
    }

    /// Resolves a path inside the sysroot, following absolute symlinks inside it.
    fn resolve(&self, rel: &str) -> Result<PathBuf> {
        let rel = rel.trim_start_matches('/');
        match self.resolve_exact(rel) {
            Some(p) => Ok(p),
            // Merged-/usr releases (Debian 13) ship /lib, /bin, … only under /usr.
            None => self.resolve_exact(&format!("usr/{rel}")).ok_or_else(|| {
                format!(
                    "{rel} is not in the unpacked packages ({})",
                    self.sysroot.display()
                )
            }),
        }
    }

    fn resolve_exact(&self, rel: &str) -> Option<PathBuf> {
        let mut p = self.sysroot.join(rel);
        for _ in 0..16 {
            match std::fs::read_link(&p) {
                Ok(t) if t.is_absolute() => {
                    p = self.sysroot.join(t.strip_prefix("/").unwrap_or(&t));
                }
                Ok(t) => p = p.parent().unwrap_or(Path::new("/")).join(t),
                Err(_) => break,
            }
        }
        p.is_file().then_some(p)
    }

    /// Adds a dynamically linked program from the sysroot plus its library closure.
    pub fn program(&mut self, rel: &str, dest: &str) -> Result {
        let src = self.resolve(rel)?;
        let data = util::read(&src)?;
        self.add_elf_deps(&data, rel)?;
        self.archive.file(dest, 0o755, data);
        Ok(())
    }

    /// Adds a shared library by file name (also for dlopen'ed ones that DT_NEEDED misses).
    pub fn library(&mut self, name: &str) -> Result {
        if self.libs.contains(name) {
            return Ok(());
        }
        let rel = LIB_DIRS
            .iter()
            .map(|d| format!("{d}/{name}"))
            .find(|r| self.resolve(r).is_ok())
            .ok_or_else(|| {
                format!(
                    "library {name} is not in the unpacked packages: add its package to release.rs"
                )
            })?;
        self.libs.insert(name.to_string());
        let src = self.resolve(&rel)?;
        let data = util::read(&src)?;
        self.add_elf_deps(&data, &rel)?;
        self.archive.file(&rel, 0o755, data);
        Ok(())
    }

    fn add_elf_deps(&mut self, data: &[u8], what: &str) -> Result {
        let elf = Elf::parse(data).ok_or_else(|| format!("{what} is not an ELF64 file"))?;
        if let Some(interp) = elf.interpreter() {
            if !self.archive.contains(interp) {
                let src = self.resolve(interp)?;
                self.host_file(&src, interp, 0o755)?;
            }
        }
        let needed: Vec<String> = elf.needed().iter().map(|s| s.to_string()).collect();
        for lib in needed {
            self.library(&lib)?;
        }
        Ok(())
    }

    /// Adds the static busybox and a link for every applet it provides.
    pub fn busybox(&mut self) -> Result {
        let bb = self.resolve("bin/busybox")?;
        let list = util::output(Command::new(&bb).arg("--list-full"))?;
        self.host_file(&bb, "bin/busybox", 0o755)?;
        for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if applet != "bin/busybox" && !self.archive.contains(applet) {
                self.archive.symlink(applet, "/bin/busybox");
            }
        }
        Ok(())
    }

    /// Adds kernel modules and everything they depend on; returns them in load order and
    /// writes `modules.dep` for busybox modprobe.
    pub fn modules(&mut self, kernel: &str, names: &[&str]) -> Result<Vec<String>> {
        let base = format!("lib/modules/{kernel}");
        let src_dir = module_dir(&self.sysroot, kernel);
        let index = module_index(&src_dir)?;
        let mut order: Vec<String> = Vec::new();
        let mut deps_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for name in names {
            visit(&index, &src_dir, &norm(name), &mut order, &mut deps_of, 0)?;
        }
        for m in &order {
            let rel = &index[m];
            let data = read_module(&src_dir.join(rel))?;
            self.archive.file(&format!("{base}/{rel}"), 0o644, data);
            // depmod lists all (transitive) dependencies, the one to load first last.
            let mut all = Vec::new();
            transitive(m, &deps_of, &mut all);
            let list: Vec<&str> = all.iter().rev().map(|d| index[d].as_str()).collect();
            self.module_deps
                .insert(rel.clone(), format!("{rel}: {}\n", list.join(" ")));
            self.module_files.insert(m.clone(), rel.clone());
        }
        let dep_file: String = self.module_deps.values().cloned().collect();
        self.archive
            .file(&format!("{base}/modules.dep"), 0o644, dep_file);
        Ok(order)
    }

    /// Files (relative to /lib/modules/<kernel>) of modules added earlier, in the given order.
    pub fn module_files(&self, names: &[String]) -> Result<Vec<String>> {
        names
            .iter()
            .map(|n| {
                self.module_files
                    .get(n)
                    .cloned()
                    .ok_or_else(|| format!("module {n} was not added"))
            })
            .collect()
    }
}

/// The directory holding a kernel's modules in the sysroot (`/lib` or merged `/usr/lib`).
pub fn module_dir(sysroot: &Path, kernel: &str) -> PathBuf {
    let plain = sysroot.join("lib/modules").join(kernel);
    if plain.is_dir() {
        plain
    } else {
        sysroot.join("usr/lib/modules").join(kernel)
    }
}

/// Reads a module file, decompressing `.ko.xz` (busybox insmod wants plain ELF).
fn read_module(path: &Path) -> Result<Vec<u8>> {
    if !path.exists() {
        let xz = PathBuf::from(format!("{}.xz", path.display()));
        let out = Command::new("xz")
            .arg("-dc")
            .arg(&xz)
            .output()
            .map_err(|e| format!("cannot run xz: {e}"))?;
        if !out.status.success() {
            return Err(format!("cannot decompress {}", xz.display()));
        }
        return Ok(out.stdout);
    }
    util::read(path)
}

/// Module names treat `-` and `_` alike.
fn norm(name: &str) -> String {
    name.replace('-', "_")
}

fn module_index(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut index = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| format!("cannot list {}: {e}", d.display()))?;
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(stem) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".ko").or_else(|| n.strip_suffix(".ko.xz")))
            {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                index.insert(norm(stem), rel.trim_end_matches(".xz").to_string());
            }
        }
    }
    Ok(index)
}

fn visit(
    index: &BTreeMap<String, String>,
    base: &Path,
    name: &str,
    order: &mut Vec<String>,
    deps_of: &mut BTreeMap<String, Vec<String>>,
    depth: usize,
) -> Result {
    if order.iter().any(|m| m == name) {
        return Ok(());
    }
    if depth > 32 {
        return Err(format!("module dependency loop at {name}"));
    }
    let rel = index
        .get(name)
        .ok_or_else(|| format!("kernel module {name} not found"))?;
    let data = read_module(&base.join(rel))?;
    let elf = Elf::parse(&data).ok_or_else(|| format!("{rel} is not ELF"))?;
    let modinfo = elf.section(".modinfo").unwrap_or(&[]);
    let deps: Vec<String> = modinfo
        .split(|&b| b == 0)
        .filter_map(|kv| kv.strip_prefix(b"depends="))
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(norm)
                .collect::<Vec<_>>()
        })
        .filter(|d| !d.is_empty())
        .collect();
    for d in &deps {
        visit(index, base, d, order, deps_of, depth + 1)?;
    }
    deps_of.insert(name.to_string(), deps);
    order.push(name.to_string());
    Ok(())
}

/// Dependencies of `m` in load order (each before its dependents).
fn transitive(m: &str, deps_of: &BTreeMap<String, Vec<String>>, out: &mut Vec<String>) {
    for d in deps_of.get(m).map(Vec::as_slice).unwrap_or(&[]) {
        if !out.contains(d) {
            transitive(d, deps_of, out);
            out.push(d.clone());
        }
    }
}
