//! Xen public interface (hypercall ABI, event channels, grant tables, xenstore wire format,
//! shared rings) as `no_std` Rust types.
//!
//! Every `#[repr(C)]` type mirrors a struct of Xen's public headers (`xen/include/public`,
//! installed as `/usr/include/xen` by libxen-dev) for x86_64, byte for byte; the host test
//! `tests/layout.rs` compiles those headers and checks every size, alignment, field offset and
//! constant against this crate.
//!
//! Naming: C constants keep their names upper-cased (`SCHEDOP_yield` → [`SCHEDOP_YIELD`],
//! `__HYPERVISOR_sched_op` → [`HYPERVISOR_SCHED_OP`]); C structs become CamelCase
//! (`struct netif_tx_request` → [`netif::NetifTxRequest`]); C fields keep their names except
//! `type` → `type_` and `ref` → `gref`. C unions are stored as plain words or bytes with typed
//! accessors, so nothing here needs `unsafe`.
//!
//! Nothing in this crate performs I/O: the runtime issues hypercalls and maps pages; this crate
//! supplies layouts, constants and the pure index arithmetic around them.
//!
//! [`SCHEDOP_YIELD`]: hypercall::sched::SCHEDOP_YIELD
//! [`HYPERVISOR_SCHED_OP`]: hypercall::HYPERVISOR_SCHED_OP
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

#[cfg(not(target_endian = "little"))]
compile_error!("xen-abi assumes a little-endian target (x86_64 or aarch64), as Xen does");

pub mod blkif;
pub mod byte_ring;
pub mod console;
pub mod evtchn;
pub mod grant;
pub mod hypercall;
pub mod netif;
pub mod pciif;
pub mod ring;
pub mod shared_info;
pub mod sndif;
pub mod start_info;
pub mod usbif;
pub mod wire;
pub mod xdd_policy;
pub mod xenbus;
pub mod xs_wire;

pub use hypercall::errno::XenErrno;
pub use wire::{ShortBuffer, WireStruct};

/// A domain id (`domid_t`).
pub type DomId = u16;

/// An event channel port number (`evtchn_port_t`).
pub type EvtchnPort = u32;

/// A grant reference (`grant_ref_t`): an index into a domain's grant table.
pub type GrantRef = u32;

/// Size of a Xen page on x86 (`XEN_PAGE_SIZE`), in bytes.
pub const XEN_PAGE_SIZE: usize = 4096;

/// log2 of [`XEN_PAGE_SIZE`] (`XEN_PAGE_SHIFT`).
pub const XEN_PAGE_SHIFT: u32 = 12;
