//! usbif (PVUSB) backend: serves USB devices of a host controller the driver domain owns
//! to stock xen-hcd guests from a Rust unikernel.
//!
//! Host-testable library; the unikernel (`src/main.rs`) only wires it to the runtime.
//! Read top-down:
//!
//! - [`wire`]: usbif URB requests as validated representations (parse once, emit whole).
//! - [`host`]: the host controller as a trait ([`host::UsbHost`]): attach/detach events,
//!   enable, endpoints, asynchronous transfers, cancel; [`xhci`] (unikernel builds):
//!   the trait on `minios-rt`'s xHCI driver.
//! - [`hub`]: the controller shared by all virtual controllers: claims and completions.
//! - [`ports`]: one virtual controller's ports and the guest-address → port table.
//! - [`guest`]: moving transfer data to and from the guest's granted segments.
//! - [`vusb`]: the xenbus device (conn ring, URB ring, unlink, status mapping).
//! - [`config`]: the command-line options; [`stats`]: per-controller counters;
//!   [`usbdd`]: wiring it all into a driver domain.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod config;
pub mod guest;
pub mod host;
pub mod hub;
pub mod ports;
pub mod stats;
pub mod usbdd;
pub mod vusb;
pub mod wire;
#[cfg(feature = "unikernel")]
pub mod xhci;

pub use vusb::{Options, UsbDriver, Vusb};
