//! One `[[guest]]` checked into a draft: its own xl.cfg read, its name, its devices (their
//! backends are checked later, in `backends.rs`), its `sound` table (`sound.rs`).

use super::load::{Draft, Loader};
use super::model::{Domain, Role, Settings};
use super::schema::GuestToml;
use super::sound::sound_policy;
use crate::devices::device_entries;

impl Loader<'_> {
    /// Checks the `i`-th (from 0) `[[guest]]`.
    pub(super) fn guest(
        &self,
        g: GuestToml,
        i: usize,
        settings: &Settings,
    ) -> Result<Draft, String> {
        let label = format!("guest #{}", i + 1);
        let cfg = self.read_cfg(&g.config, &label)?;
        let name = self.name_of(g.name, Some(&cfg), &label)?;
        let devices = device_entries(&cfg).map_err(|e| e.to_string())?;
        let sound = g
            .sound
            .map(|t| sound_policy(t, &format!("{}: {label} `{name}`", self.shown)))
            .transpose()?;
        let origin = format!("config {}", g.config.display());
        let (config_path, generated) = self.with_name(&g.config, &cfg, &name, settings)?;
        Ok(Draft {
            what: format!("guest ({origin})"),
            domain: Domain {
                config_path,
                name,
                role: Role::Guest,
                origin,
                image: None,
                generated,
                devices,
                serves: Vec::new(),
                needs: Vec::new(),
                ready: None,
                restart: false,
                owns: Vec::new(),
                pci: Vec::new(),
                usb_controllers: Vec::new(),
                sound,
            },
            cfg,
            uses: g.uses,
        })
    }
}
