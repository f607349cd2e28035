//! Test fixtures shared across the crate: files in memory, the example appliance and its
//! xl.cfg files, and loading or failing to load an appliance text.

use super::files::Files;
use super::model::Appliance;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Files in memory.
pub(crate) struct MemFiles(
    /// Contents by path.
    pub BTreeMap<PathBuf, String>,
);

impl Files for MemFiles {
    fn read(&self, path: &Path) -> Result<String, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| format!("cannot read {}: No such file or directory", path.display()))
    }
    fn is_file(&self, path: &Path) -> bool {
        self.0.contains_key(path)
    }
}

/// The example appliance: a `config` driver domain `netdd` (the default vif backend), an
/// `image` driver domain `hello`, and guests `web1` and `web2`.
pub(crate) const APPLIANCE: &str = r#"
[settings]
image_dir = "/boot/xdd"
state_dir = "/run/xdd"
ready_timeout_s = 20

[defaults]
vif = "netdd"

[[driver_domain]]
config = "/etc/xdd/netdd.cfg"
serves = ["vif"]

[[driver_domain]]
name = "hello"
image = "hello"
memory = 16
cmdline = "hello.greeting=1"
ready_timeout_s = 5

[[guest]]
config = "/etc/xen/web1.cfg"

[[guest]]
config = "/etc/xen/web2.cfg"
"#;

/// The files [`APPLIANCE`] refers to (and the appliance file itself), in memory.
pub(crate) fn files() -> MemFiles {
    let mut m = BTreeMap::new();
    for (p, t) in [
        ("/etc/xdd/appliance.toml", APPLIANCE),
        (
            "/etc/xdd/netdd.cfg",
            "name = \"netdd\"\ntype = \"pv\"\nmemory = 128\ndriver_domain = 1\n",
        ),
        ("/boot/xdd/hello.elf", "\x7fELF"),
        (
            "/etc/xen/web1.cfg",
            "name = \"web1\"\nmemory = 160\nvif = [ 'backend=netdd,mac=00:16:3e:00:01:10' ]\n",
        ),
        (
            "/etc/xen/web2.cfg",
            "name = \"web2\"\nvif = [ 'mac=00:16:3e:00:01:11',\n        'bridge=xenbr0,backend=0' ]\n",
        ),
    ] {
        m.insert(PathBuf::from(p), t.to_string());
    }
    MemFiles(m)
}

/// An appliance text whose `hello` driver domain runs as PV and owns the first virtio-net
/// of [`crate::pci::tests::bus`] by its ID.
pub(crate) fn owning_a_nic(text: &str) -> String {
    text.replace(
        "memory = 16",
        "memory = 16\ntype = \"pv\"\ndevices = [\"1af4:1000#1\"]",
    )
}

/// Loads an appliance text as `/etc/xdd/appliance.toml`.
pub(crate) fn load(text: &str, files: &MemFiles) -> Result<Appliance, String> {
    Appliance::parse(text, Path::new("/etc/xdd/appliance.toml"), files)
}

/// The error loading an appliance text with [`files`] gives.
pub(super) fn err(text: &str) -> String {
    load(text, &files()).unwrap_err()
}

/// The error loading an appliance text gives when `path` holds `content`.
pub(super) fn err_with(text: &str, path: &str, content: &str) -> String {
    let mut f = files();
    f.0.insert(PathBuf::from(path), content.to_string());
    load(text, &f).unwrap_err()
}

/// An appliance with a USB driver domain `usbdd` (the default usbctrl backend) and a guest
/// `desk` whose xl.cfg asks usbdd for a 4-port controller, dom0 for a 2-port one, and names
/// no backend for a third (devid 7, so usbdd's by default).
pub(crate) const USB_APPLIANCE: &str = r#"
[settings]
state_dir = "/run/xdd"
ready_timeout_s = 20

[defaults]
usbctrl = "usbdd"

[[driver_domain]]
config = "/etc/xdd/usbdd.cfg"
serves = ["usbctrl"]

[[guest]]
config = "/etc/xen/desk.cfg"
"#;

/// [`files`] plus the xl.cfg files of [`USB_APPLIANCE`].
pub(crate) fn usb_files() -> MemFiles {
    let mut f = files();
    f.0.insert(
        "/etc/xdd/usbdd.cfg".into(),
        "name = \"usbdd\"\ntype = \"pv\"\ndriver_domain = 1\n".into(),
    );
    f.0.insert(
        "/etc/xen/desk.cfg".into(),
        "name = \"desk\"\nusbctrl = [ 'version=2,ports=4,backend=usbdd',\n  \
         'type=pv,ports=2,backend=0', 'devid=7' ]\n"
            .into(),
    );
    f
}

/// An appliance with a sound driver domain `sounddd` and two guests with cards on it:
/// `radio` (a `sound` table: play at -6 dB; two cards on sounddd, one on dom0) and `quiet`
/// (no `sound`: sounddd's default applies).
pub(crate) const SOUND_APPLIANCE: &str = r#"
[settings]
state_dir = "/run/xdd"
ready_timeout_s = 20

[[driver_domain]]
config = "/etc/xdd/sounddd.cfg"
serves = ["vsnd"]

[[guest]]
config = "/etc/xen/radio.cfg"
sound = { volume_db = -6.0 }

[[guest]]
config = "/etc/xen/quiet.cfg"
"#;

/// [`files`] plus the xl.cfg files of [`SOUND_APPLIANCE`].
pub(crate) fn sound_files() -> MemFiles {
    let mut f = files();
    f.0.insert(
        "/etc/xdd/sounddd.cfg".into(),
        "name = \"sounddd\"\ntype = \"pv\"\ndriver_domain = 1\n".into(),
    );
    f.0.insert(
        "/etc/xen/radio.cfg".into(),
        "name = \"radio\"\nvsnd = [ [ 'CARD, backend=sounddd, short-name=r0', 'PCM, name=dev0' ],\n  \
         [ 'CARD, backend=sounddd, short-name=r1', 'PCM, name=dev0' ],\n  \
         [ 'CARD, backend=0', 'PCM, name=dev0' ] ]\n"
            .into(),
    );
    f.0.insert(
        "/etc/xen/quiet.cfg".into(),
        "name = \"quiet\"\nvsnd = [ [ 'CARD, backend=sounddd', 'PCM, name=dev0' ] ]\n".into(),
    );
    f
}
