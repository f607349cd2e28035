//! virtio devices passed through to the domain, on the `virtio-drivers` crate: its modern
//! PCI transport and virtqueues, with config space over pcifront ([`transport`]) and a
//! [`Hal`](virtio_drivers::Hal) that speaks machine addresses ([`hal`]). [`net`] is the
//! network device on top, [`blk`] the block device.

pub mod blk;
pub mod hal;
pub mod net;
pub mod transport;

use virtio_drivers::queue::VirtQueue;

/// Whether the device wants a doorbell for the buffers just added to `queue`.
///
/// The device may be finishing a pass: it re-enables notifications (clears
/// `VRING_USED_F_NO_NOTIFY`), then looks at the available index once more. Our index store
/// must be visible before we read its flag, or both sides miss each other and the buffers
/// wait for the next, unrelated doorbell. virtio-drivers orders the store with Release and
/// the load with Acquire, which does not order a store before a later load (x86 reorders
/// exactly that): a full fence does.
pub(crate) fn wants_doorbell<const SIZE: usize>(queue: &VirtQueue<hal::XenHal, SIZE>) -> bool {
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    queue.should_notify()
}
