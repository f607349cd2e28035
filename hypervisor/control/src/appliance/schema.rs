//! The appliance file as serde reads it: one struct per TOML table, the defaults of what
//! the file leaves out, and how a TOML mistake becomes one `file:line:column` line. Nothing
//! here is checked beyond what serde refuses (unknown keys, wrong types).

use crate::devices::DeviceKind;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where `xddctl` looks for the appliance file by default.
pub const DEFAULT_PATH: &str = "/etc/xdd/appliance.toml";
/// Where `image = "name"` is looked up by default (`<dir>/<name>.elf`).
pub const DEFAULT_IMAGE_DIR: &str = "/usr/lib/xen/boot";
/// Where generated xl.cfg files and the stop flag live by default.
pub const DEFAULT_STATE_DIR: &str = "/run/xdd";
/// The readiness key of xdd driver domains, relative to `/local/domain/<domid>`.
pub const DEFAULT_READY_KEY: &str = "data/ready";

/// The whole file. Fields here and below are the TOML keys (the README's *The appliance
/// file* says what each means).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileToml {
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) settings: SettingsToml,
    #[serde(default)]
    pub(super) defaults: BTreeMap<String, String>,
    #[serde(default, rename = "driver_domain")]
    pub(super) driver_domains: Vec<DriverToml>,
    #[serde(default, rename = "guest")]
    pub(super) guests: Vec<GuestToml>,
    #[serde(default)]
    pub(super) usb: Vec<UsbToml>,
}

/// `[settings]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SettingsToml {
    pub(super) image_dir: Option<PathBuf>,
    pub(super) state_dir: Option<PathBuf>,
    pub(super) ready_timeout_s: Option<f64>,
    pub(super) shutdown_timeout_s: Option<f64>,
    pub(super) reconnect_timeout_s: Option<f64>,
}

/// One `[[driver_domain]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DriverToml {
    pub(super) name: Option<String>,
    pub(super) image: Option<String>,
    pub(super) config: Option<PathBuf>,
    #[serde(rename = "type")]
    pub(super) domain_type: Option<String>,
    pub(super) memory: Option<u32>,
    pub(super) vcpus: Option<u32>,
    #[serde(default, alias = "pci")]
    pub(super) devices: Vec<String>,
    #[serde(default)]
    pub(super) serves: Vec<DeviceKind>,
    #[serde(default)]
    pub(super) uses: Vec<String>,
    pub(super) cmdline: Option<String>,
    pub(super) xl_extra: Option<String>,
    pub(super) ready_key: Option<String>,
    pub(super) ready_timeout_s: Option<f64>,
    pub(super) restart: Option<bool>,
}

/// One `[[guest]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GuestToml {
    pub(super) name: Option<String>,
    pub(super) config: PathBuf,
    #[serde(default)]
    pub(super) uses: Vec<String>,
    pub(super) sound: Option<SoundToml>,
}

/// A guest's `sound = { play = true, record = false, volume_db = -6.0 }`: what its sound
/// cards on driver domains may do.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SoundToml {
    pub(super) play: Option<bool>,
    pub(super) record: Option<bool>,
    pub(super) volume_db: Option<f64>,
}

/// `sound.play` when the table leaves it out.
pub(super) const DEFAULT_PLAY: bool = true;
/// `sound.record` when the table leaves it out (recording is privacy-sensitive).
pub(super) const DEFAULT_RECORD: bool = false;
/// `sound.volume_db` when the table leaves it out.
pub(super) const DEFAULT_VOLUME_DB: f64 = 0.0;

/// One `[[usb]]`: a USB device of a driver domain's host controller given to a guest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UsbToml {
    pub(super) guest: String,
    pub(super) device: String,
    pub(super) controller: Option<u32>,
    pub(super) port: Option<u8>,
}

/// One line for a TOML error: `file:line:column: message`.
pub(super) fn toml_error(shown: &str, text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
            format!("{shown}:{line}:{col}: {msg}")
        }
        None => format!("{shown}: {msg}"),
    }
}
