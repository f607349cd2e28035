//! The netback driver domain's logic: the netif backend, the switch between vifs, the uplink
//! and the driver domain's own interface — everything but the unikernel `main`, so all of it
//! runs in host tests against `minios`' in-process platform.
//!
//! Reading order (top down, as for every backend in this project):
//! - [`wire`]: ring entries as validated `Repr`s; [`tx_chain`]: TX slot chains.
//! - [`frame`]: Ethernet/IP/TCP/UDP headers and checksums; [`packet`]: checksum completion
//!   and software segmentation.
//! - [`switch`]: the learning switch with anti-spoofing and bounded queues.
//! - [`netring`], [`datapath`]: ring work for every vif in batched grant copies.
//! - [`vif`]: the xenbus side of a vif; [`uplink`]: our own netfront to dom0's bridge;
//!   [`stack`]: the driver domain's smoltcp interface.
//! - [`config`]: command-line options; [`netdd`]: wiring it all into an executor.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod config;
pub mod datapath;
pub mod frame;
pub mod netdd;
pub mod netring;
pub mod packet;
pub mod stack;
pub mod switch;
pub mod tx_chain;
pub mod uplink;
pub mod vif;
pub mod wire;
