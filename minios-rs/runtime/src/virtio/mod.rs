//! virtio devices passed through to the domain, on the `virtio-drivers` crate: its modern
//! PCI transport and virtqueues, with config space over pcifront ([`transport`]) and a
//! [`Hal`](virtio_drivers::Hal) that speaks machine addresses ([`hal`]). [`net`] is the
//! network device on top, [`blk`] the block device.

pub mod blk;
pub mod hal;
pub mod net;
pub mod transport;
