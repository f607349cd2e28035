//! `xddctl install`: puts an appliance on a Xen host — the driver-domain images into the
//! image directory, the appliance file into /etc/xdd, xddctl into /usr/sbin and the systemd
//! unit into /etc/systemd/system — under a root directory (`/`, or a staging tree).

use crate::appliance::{Appliance, Files, RealFiles, DEFAULT_PATH};
use std::path::{Path, PathBuf};

/// The systemd unit.
pub const UNIT: &str = include_str!("../dist/xdd.service");
/// Where the unit goes.
pub const UNIT_PATH: &str = "/etc/systemd/system/xdd.service";
/// Where xddctl goes.
pub const BINARY_PATH: &str = "/usr/sbin/xddctl";

/// What to install.
pub struct Install<'a> {
    /// The appliance file to install.
    pub config: &'a Path,
    /// Where the images are now (`<name>.elf` or `<name>`); `None`: already in place.
    pub images: Option<&'a Path>,
    /// Root of the target tree.
    pub root: &'a Path,
    /// The xddctl binary to copy (`None`: leave it).
    pub binary: Option<&'a Path>,
}

/// Finds images in the source directory while the appliance is checked.
struct Staged<'a> {
    images: Option<&'a Path>,
}

impl Staged<'_> {
    /// The source of an image that belongs at `target`.
    fn source(&self, target: &Path) -> Option<PathBuf> {
        let dir = self.images?;
        let file = target.file_name()?;
        let plain = target.file_stem()?;
        [dir.join(file), dir.join(plain)]
            .into_iter()
            .find(|p| p.is_file())
    }
}

impl Files for Staged<'_> {
    fn read(&self, path: &Path) -> Result<String, String> {
        RealFiles.read(path)
    }
    fn is_file(&self, path: &Path) -> bool {
        path.is_file() || self.source(path).is_some()
    }
}

/// `root` + an absolute path.
fn under(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

fn copy(from: &Path, to: &Path, mode: u32, done: &mut Vec<String>) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if from != to {
        // Through a temporary file: replacing a running binary must not truncate it.
        let tmp = to.with_extension("xddctl-new");
        std::fs::copy(from, &tmp)
            .and_then(|_| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)))
            .and_then(|_| std::fs::rename(&tmp, to))
            .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
    }
    done.push(format!("{} → {}", from.display(), to.display()));
    Ok(())
}

/// Checks the appliance (with images taken from `images`) and installs it; returns one line
/// per installed file.
pub fn install(i: &Install) -> Result<Vec<String>, String> {
    let staged = Staged { images: i.images };
    let app = Appliance::load(i.config, &staged)?;
    let mut done = Vec::new();
    let mut images: Vec<&PathBuf> = app
        .domains
        .iter()
        .filter_map(|d| d.image.as_ref())
        .collect();
    images.sort();
    images.dedup();
    for target in images {
        let from = staged
            .source(target)
            .unwrap_or_else(|| target.to_path_buf());
        copy(&from, &under(i.root, target), 0o644, &mut done)?;
    }
    copy(
        i.config,
        &under(i.root, Path::new(DEFAULT_PATH)),
        0o644,
        &mut done,
    )?;
    if let Some(bin) = i.binary {
        copy(
            bin,
            &under(i.root, Path::new(BINARY_PATH)),
            0o755,
            &mut done,
        )?;
    }
    let unit = under(i.root, Path::new(UNIT_PATH));
    if let Some(dir) = unit.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(&unit, UNIT).map_err(|e| format!("cannot write {}: {e}", unit.display()))?;
    done.push(format!("systemd unit → {}", unit.display()));
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_images_config_binary_and_unit() {
        let base = std::env::temp_dir().join(format!("xddctl-install-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (root, src) = (base.join("root"), base.join("src"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("hello"), b"\x7fELF").unwrap();
        std::fs::write(src.join("xddctl"), b"#!bin").unwrap();
        std::fs::write(
            src.join("web.cfg"),
            "name = 'web'\nvif = ['backend=hello']\n",
        )
        .unwrap();
        let cfg = src.join("appliance.toml");
        std::fs::write(
            &cfg,
            format!(
                "[[driver_domain]]\nname = \"hello\"\nimage = \"hello\"\nserves = [\"vif\"]\n\
                 [[driver_domain]]\nname = \"hello2\"\nimage = \"hello\"\n\
                 [[guest]]\nconfig = {:?}\n",
                src.join("web.cfg")
            ),
        )
        .unwrap();
        let bin = src.join("xddctl");
        let done = install(&Install {
            config: &cfg,
            images: Some(&src),
            root: &root,
            binary: Some(&bin),
        })
        .unwrap();
        assert_eq!(done.len(), 4, "{done:?}");
        assert_eq!(
            std::fs::read(root.join("usr/lib/xen/boot/hello.elf")).unwrap(),
            b"\x7fELF"
        );
        assert!(root.join("etc/xdd/appliance.toml").is_file());
        assert!(root.join("usr/sbin/xddctl").is_file());
        let unit = std::fs::read_to_string(root.join("etc/systemd/system/xdd.service")).unwrap();
        assert!(unit.contains("ExecStart=/usr/sbin/xddctl --config /etc/xdd/appliance.toml run"));

        // A missing image is the usual clear error.
        std::fs::remove_file(src.join("hello")).unwrap();
        let e = install(&Install {
            config: &cfg,
            images: Some(&base.join("elsewhere")),
            root: &base.join("root2"),
            binary: None,
        })
        .unwrap_err();
        assert!(e.contains("unknown image `hello`"), "{e}");
        let _ = std::fs::remove_dir_all(&base);
    }
}
