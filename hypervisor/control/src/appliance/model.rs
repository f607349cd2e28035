//! The checked appliance, as the rest of xddctl sees it: [`Appliance`] (settings, domains,
//! dependency graph) and its [`Domain`]s, with the questions commands ask of them (a domain
//! by name, the guests, the stop order, the stop flag). Built only by `load.rs`.

use crate::devices::{DeviceEntry, DeviceKind};
use crate::graph::Graph;
use crate::pci::{Bdf, DeviceSpec};
use crate::vsnd::SoundPolicy;
use crate::vusb::UsbController;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// Appliance-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Where `image = "name"` is found (`<image_dir>/<name>.elf`).
    pub image_dir: PathBuf,
    /// Generated xl.cfg files and the stop flag.
    pub state_dir: PathBuf,
    /// How long `xl shutdown` may take before `xl destroy`.
    pub shutdown_timeout: Duration,
    /// How long `run` waits for a re-attached device to reconnect.
    pub reconnect_timeout: Duration,
}

/// A domain's part in the appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Serves backends; started first, waited for.
    Driver,
    /// Uses backends; started once they are ready.
    Guest,
}

impl Role {
    /// Short name for tables and timelines.
    pub fn label(self) -> &'static str {
        match self {
            Role::Driver => "driver",
            Role::Guest => "guest",
        }
    }
}

/// How a driver domain says it is ready: `<key>` under `/local/domain/<domid>` becomes "1".
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    /// Path relative to the domain's home in xenstore.
    pub key: String,
    /// How long after `xl create` returned the key may take.
    pub timeout: Duration,
}

impl Readiness {
    /// The absolute xenstore path for a domid.
    pub fn path(&self, domid: u32) -> String {
        format!("/local/domain/{domid}/{}", self.key)
    }
}

/// One domain of the appliance, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Domain {
    /// Domain name (xl's `name`).
    pub name: String,
    /// Driver domain or guest.
    pub role: Role,
    /// What it is built from: `image <path>` or `config <path>` (for messages and tables).
    pub origin: String,
    /// The unikernel image a generated driver domain boots.
    pub image: Option<PathBuf>,
    /// The xl.cfg file `xl create` gets.
    pub config_path: PathBuf,
    /// Contents xddctl writes to `config_path` before creating (generated or amended
    /// configs); `None` when the domain's own file is used as it is.
    pub generated: Option<String>,
    /// Its backend devices, with the backend each one ends up on (`None`: dom0).
    pub devices: Vec<DeviceEntry>,
    /// Device types it serves (driver domains).
    pub serves: Vec<DeviceKind>,
    /// The driver domains it needs ready before it starts, sorted.
    pub needs: Vec<String>,
    /// How readiness is seen (driver domains).
    pub ready: Option<Readiness>,
    /// Restarted by `xddctl run` when it dies (driver domains).
    pub restart: bool,
    /// PCI devices it owns, as the appliance (or its xl.cfg) names them.
    pub owns: Vec<DeviceSpec>,
    /// Their addresses, once [`crate::passthrough`] resolved them in dom0 (same order).
    pub pci: Vec<Bdf>,
    /// Its PVUSB controllers served by driver domains, which xddctl creates itself after
    /// `xl create` (stock xl cannot; they are left out of the xl.cfg it gets).
    pub usb_controllers: Vec<UsbController>,
    /// What its sound cards served by driver domains may do (a guest's `sound` table),
    /// written for audioback after `xl create`; `None`: the driver domain's default.
    pub sound: Option<SoundPolicy>,
}

/// A checked appliance.
#[derive(Debug, Clone)]
pub struct Appliance {
    /// Name (the file's `name`, else the file stem).
    pub name: String,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Settings.
    pub settings: Settings,
    /// Driver domains (file order), then guests (file order).
    pub domains: Vec<Domain>,
    /// Dependencies between `domains` (same indices).
    pub graph: Graph,
}

impl Appliance {
    /// A domain by name.
    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| d.name == name)
    }

    /// Index of a domain by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.domains.iter().position(|d| d.name == name)
    }

    /// Indices of the guests.
    pub fn guests(&self) -> BTreeSet<usize> {
        (0..self.domains.len())
            .filter(|&i| self.domains[i].role == Role::Guest)
            .collect()
    }

    /// The order in which a set of domains is stopped: guests together first, then driver
    /// domains once nothing in the set uses them.
    pub fn stop_waves(&self, set: &BTreeSet<usize>) -> Vec<Vec<usize>> {
        self.graph.stop_waves(set, &self.guests())
    }

    /// The file whose presence tells `xddctl run` that `down` is stopping the appliance.
    pub fn stop_flag(&self) -> PathBuf {
        self.settings
            .state_dir
            .join(format!("{}.stopping", self.name))
    }
}
