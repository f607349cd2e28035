//! dom0 side of xdd: the control plane that starts driver domains before the guests that
//! need them (`xddctl`), and the xenstore client it (and the testbed agent) use.
//!
//! The decisions (what to start when, what to roll back, what to stop first, what to
//! re-attach after a driver domain restarts) are plain functions over an [`appliance`] model
//! and a [`toolstack::Toolstack`] trait, so they are tested without Xen; [`xl::Xl`] is the
//! real toolstack.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod appliance;
pub mod check;
pub mod devices;
pub mod down;
pub mod generate;
pub mod graph;
pub mod install;
pub mod logger;
pub mod passthrough;
pub mod pci;
pub mod pciback;
pub mod status;
pub mod supervise;
pub mod timeline;
pub mod toolstack;
pub mod up;
pub mod usb;
pub mod vsnd;
pub mod vusb;
pub mod xenstore;
pub mod xl;
pub mod xlcfg;

#[cfg(test)]
mod fake;
