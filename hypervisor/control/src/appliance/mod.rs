//! The appliance file (TOML): driver domains and guests, loaded and checked into a model
//! with every domain's effective xl.cfg and its dependencies. Every mistake is one line that
//! names the file (and line) and what to change, before anything is started.
//!
//! This file is the public surface (the items below are re-exported from the files that
//! define them). One job per file:
//!
//! - `schema.rs`: the TOML file as serde reads it, the defaults of what it leaves out, and
//!   a TOML mistake as one `file:line:column` line.
//! - `model.rs`: the checked appliance: [`Appliance`], [`Domain`], [`Settings`], [`Role`],
//!   [`Readiness`], and the questions commands ask of them.
//! - `files.rs`: the files it reads ([`Files`], [`RealFiles`]) and the xl.cfg files xddctl
//!   writes ([`Domain::config_text`], [`Appliance::write_configs`]).
//! - `load.rs`: [`Appliance::load`] and [`Appliance::parse`]: the order of the checks, unique
//!   names, no dependency cycle.
//! - `driver.rs`: one `[[driver_domain]]`: `image` or `config`, readiness, the PCI devices
//!   it owns.
//! - `guest.rs`: one `[[guest]]`.
//! - `own_cfg.rs`: a domain's own xl.cfg: read, its name agreeing with the appliance's, a
//!   copy with the name added.
//! - `backends.rs`: which driver domain serves which device: `[defaults]`, backends checked,
//!   `needs`, the amended xl.cfg of guests that got a default backend.
//! - `usb.rs`: `[[usb]]`: USB devices given to guests' PVUSB controllers on driver domains.
//! - `sound.rs`: a guest's `sound` table: the policy of its sound cards on driver domains.
//! - `checks.rs`: checks made in several places: domain names, timeouts.
//! - `fixtures.rs` (tests only): files in memory and the example appliance, for tests
//!   across the crate.

mod backends;
mod checks;
mod driver;
mod files;
mod guest;
mod load;
mod model;
mod own_cfg;
mod schema;
mod sound;
mod usb;

#[cfg(test)]
pub(crate) mod fixtures;
/// The fixtures under the name the crate's tests use (`crate::appliance::tests::…`).
#[cfg(test)]
pub(crate) use fixtures as tests;

pub use files::{Files, RealFiles};
pub use model::{Appliance, Domain, Readiness, Role, Settings};
pub use schema::{DEFAULT_IMAGE_DIR, DEFAULT_PATH, DEFAULT_READY_KEY, DEFAULT_STATE_DIR};
