//! blkif backend: serves Xen virtual disks to stock blkfront guests from a Rust unikernel.
//!
//! Host-testable library; the unikernel (`src/main.rs`) only wires it to the runtime.
//! Read top-down:
//!
//! - [`wire`]: blkif ring entries as validated representations (parse once, emit whole).
//! - [`store`]: the storage trait and its stores: RAM volumes and slices of a disk dom0 hands
//!   us ([`store::disk`], where the driver domain is itself a blkfront client).
//! - [`guest`]: moving data between guest grants and local buffers (persistent grants, grant
//!   copy, indirect segment pages).
//! - [`queue`]: one ring's request pipeline (checks, ordering, fairness budget).
//! - [`backend`]: the xenbus device (features, connect, multi-queue, multi-page rings).
//! - [`config`]: the command-line configuration of volumes and limits.
//! - [`front`]: a blkfront (the driver domain's client of dom0's disk).
//! - [`stats`]: per-device counters; [`blkdd`]: wiring it all into a driver domain.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod backend;
pub mod blkdd;
pub mod config;
pub mod front;
pub mod guest;
pub mod queue;
pub mod stats;
pub mod store;
pub mod wire;

pub use backend::{BlkDriver, Catalog, Options, Vbd};
