//! Testbed agent library: the scenario format shared by `cargo xtask testbed` (host side) and
//! the agent that runs scenarios inside dom0, the scenario runner, the host's settings for
//! scenarios, and the initramfs writer.
#![forbid(unsafe_code)]

pub mod blkpattern;
pub mod cpio;
pub mod events;
pub mod hostenv;
pub mod runner;
pub mod scenario;
pub mod wav;
