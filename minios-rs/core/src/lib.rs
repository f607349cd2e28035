//! Platform-independent unikernel runtime: platform traits, xenstore client, xenbus framework,
//! executor.
//!
//! - [`platform`]: the traits backends reach Xen through (grants, event channels, xenstore
//!   transport, clock, `wait`), implemented by `minios-rt` on Xen and by `host` in tests.
//! - [`ring`]: ring.h shared rings over [`platform::SharedMem`], copy-once.
//! - [`xenstore`]: a blocking xenstore client with a bounded watch queue.
//! - [`xenbus`]: the backend device state machine and a frontend helper.
//! - [`netdev`]: the network device (passed-through NIC) a driver domain owns, as a trait;
//!   [`blockdev`]: the same for a passed-through disk controller.
//! - [`pci`]: PCI passthrough for PV driver domains: pcifront, config space, BARs, MSI-X.
//! - [`executor`]: the poll loop, `control/shutdown`, and the `data/ready` signal.
//! - [`driver_domain`]: the start-up and stop every driver domain shares; [`options`]: its
//!   command-line options, parsed strictly.
//! - [`data_area`]: what a driver domain publishes under `data/` (facts, counters);
//!   [`error_log`]: per-device error counts that log only the first of each class, and the
//!   thinning of bursts of events each worth a line ([`error_log::worth_logging`]).
//! - [`event_throttle`]: holding back a port whose frontend notifies with nothing to do.
//! - `host` (feature `host`): the in-process platform for tests and fuzzers.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod blockdev;
pub mod data_area;
pub mod driver_domain;
pub mod error_log;
pub mod event_throttle;
pub mod executor;
#[cfg(any(test, feature = "host"))]
pub mod host;
pub mod netdev;
pub mod options;
pub mod pci;
pub mod platform;
pub mod ring;
#[cfg(test)]
mod testutil;
pub mod xenbus;
pub mod xenstore;
