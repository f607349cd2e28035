//! The files of an appliance: reading what it refers to ([`Files`], [`RealFiles`]; a trait
//! so tests need no filesystem) and writing the xl.cfg files xddctl generates or amends
//! ([`Domain::config_text`], [`Appliance::write_configs`]).

use super::model::{Appliance, Domain};
use crate::generate::pci_setting;
use std::path::Path;

/// Reads the files an appliance refers to (a trait so tests need no filesystem).
pub trait Files {
    /// The contents of a text file.
    fn read(&self, path: &Path) -> Result<String, String>;
    /// True when a regular file exists.
    fn is_file(&self, path: &Path) -> bool;
}

/// The real filesystem.
pub struct RealFiles;

impl Files for RealFiles {
    fn read(&self, path: &Path) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }
    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }
}

impl Domain {
    /// The text xddctl writes to `config_path` (`None`: the domain's own file is used): the
    /// generated or amended config, plus `pci = [...]` with the resolved addresses of a
    /// driver domain built from an image.
    pub fn config_text(&self) -> Result<Option<String>, String> {
        let Some(text) = &self.generated else {
            return Ok(None);
        };
        if self.image.is_none() || self.owns.is_empty() {
            return Ok(Some(text.clone()));
        }
        if self.pci.len() != self.owns.len() {
            return Err(format!(
                "driver domain `{}`: its devices were not resolved in dom0 before writing its \
                 xl.cfg",
                self.name
            ));
        }
        Ok(Some(format!("{text}{}", pci_setting(&self.pci))))
    }
}

impl Appliance {
    /// Writes the generated xl.cfg files into the state directory.
    pub fn write_configs(&self) -> Result<(), String> {
        for d in &self.domains {
            if let Some(text) = d.config_text()? {
                if let Some(dir) = d.config_path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
                std::fs::write(&d.config_path, &text)
                    .map_err(|e| format!("cannot write {}: {e}", d.config_path.display()))?;
            }
        }
        Ok(())
    }
}
