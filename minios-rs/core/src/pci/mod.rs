//! PCI devices passed through to a PV driver domain: addresses, config space (capabilities,
//! BARs, MSI-X), and the pcifront protocol that reaches config space through dom0's pciback.
//!
//! A PV domain cannot use the config-space ports (Xen forwards them only for the hardware
//! domain); the toolstack gives it a `pci` xenbus device instead, and every config access
//! and every MSI/MSI-X enable becomes an operation on a shared page ([`front`]). The
//! platform-specific parts — mapping BARs, binding the pirqs the operations return, DMA
//! memory with machine addresses — live in the runtime (`minios-rt`).
//!
//! Everything read from a device is treated as untrusted input: capability chains are
//! bounded and loop-checked, BAR sizes and addresses are validated before use.
//!
//! - [`address`] — `segment:bus:device.function` addresses.
//! - [`config`] — the [`ConfigSpace`] trait, registers, capabilities, BARs, MSI-X.
//! - [`front`] — [`PciFront`], the pcifront connection and its operations.

pub mod address;
pub mod config;
pub mod front;
#[cfg(test)]
mod tests;

pub use address::PciAddress;
pub use config::{Bar, ConfigSpace, MsixInfo};
pub use front::{OpChannel, PciFront, PciFrontTask, PciFunction};

use alloc::string::String;
use core::fmt;

use crate::platform::GrantError;
use crate::xenbus::FrontendError;
use xen_abi::pciif::{
    XEN_PCI_ERR_ACCESS_DENIED, XEN_PCI_ERR_DEV_NOT_FOUND, XEN_PCI_ERR_INVALID_OFFSET,
    XEN_PCI_ERR_NOT_IMPLEMENTED, XEN_PCI_ERR_OP_FAILED,
};
use xen_abi::XenErrno;

/// A PCI operation that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PciError {
    /// The domain has no PCI frontend device (no `pci=` in its xl.cfg).
    NoFrontend,
    /// The domain runs as PVH: Xen gives PCI devices only to PV domains.
    NotPv,
    /// The xenbus handshake with pciback failed.
    Frontend(FrontendError),
    /// Granting the shared page failed.
    Grant(GrantError),
    /// An event channel or hypercall failed.
    Xen(XenErrno),
    /// pciback answered an operation with this `XEN_PCI_ERR_*` code.
    Backend {
        /// What was asked.
        op: &'static str,
        /// The code.
        code: i32,
    },
    /// pciback did not answer in time (the page stays busy until it does).
    Timeout {
        /// What was asked.
        op: &'static str,
    },
    /// No function with this address was given to the domain.
    NoSuchDevice(PciAddress),
    /// The device (or the backend) presented something impossible: a looping capability
    /// chain, a BAR that is not a power of two, a table outside its BAR.
    BadDevice(String),
}

impl PciError {
    /// Text for an `XEN_PCI_ERR_*` code.
    pub fn code_message(code: i32) -> &'static str {
        match code {
            XEN_PCI_ERR_DEV_NOT_FOUND => "device not found",
            XEN_PCI_ERR_INVALID_OFFSET => "invalid config-space offset",
            XEN_PCI_ERR_ACCESS_DENIED => "access denied",
            XEN_PCI_ERR_NOT_IMPLEMENTED => "not implemented",
            XEN_PCI_ERR_OP_FAILED => "operation failed",
            _ => "unknown error",
        }
    }
}

impl fmt::Display for PciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PciError::NoFrontend => {
                f.write_str("no PCI frontend (device/pci/0): the domain was given no pci= devices")
            }
            PciError::NotPv => f.write_str(
                "this domain runs as PVH and cannot own PCI devices (Xen passes devices \
                 through to PV domains only: type = \"pv\")",
            ),
            PciError::Frontend(e) => write!(f, "pcifront: {e}"),
            PciError::Grant(e) => write!(f, "pcifront shared page: {e}"),
            PciError::Xen(e) => write!(f, "{e:?}"),
            PciError::Backend { op, code } => {
                write!(
                    f,
                    "pciback refused {op}: {} ({code})",
                    Self::code_message(*code)
                )
            }
            PciError::Timeout { op } => write!(f, "pciback did not answer {op} in time"),
            PciError::NoSuchDevice(a) => write!(f, "no PCI function {a} in this domain"),
            PciError::BadDevice(s) => write!(f, "device misbehaves: {s}"),
        }
    }
}

impl From<FrontendError> for PciError {
    fn from(e: FrontendError) -> Self {
        PciError::Frontend(e)
    }
}

impl From<crate::xenstore::XsError> for PciError {
    fn from(e: crate::xenstore::XsError) -> Self {
        PciError::Frontend(FrontendError::Xs(e))
    }
}
