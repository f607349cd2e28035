//! A port's queue: packets waiting for the port to take them, bounded in packets and bytes
//! per port and in bytes over all ports ([`Limits`]): a receiver that stops reading loses
//! packets (counted by the caller), it never makes us grow.

use alloc::collections::VecDeque;

use super::Limits;
use crate::packet::Packet;

/// One port's queue.
#[derive(Debug, Default)]
pub struct PortQueue {
    packets: VecDeque<Packet>,
    bytes: usize,
}

impl PortQueue {
    /// Packets queued.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The next packet, without taking it.
    pub fn front(&self) -> Option<&Packet> {
        self.packets.front()
    }

    /// Takes the next packet.
    pub fn pop(&mut self) -> Option<Packet> {
        let p = self.packets.pop_front()?;
        self.bytes -= p.len();
        Some(p)
    }

    /// Whether `packets` more packets of `bytes` bytes in all fit this queue's limits and
    /// the bytes `used` over all queues.
    pub fn has_room(&self, packets: usize, bytes: usize, limits: &Limits, used: usize) -> bool {
        self.packets.len() + packets <= limits.queue_packets
            && self.bytes + bytes <= limits.queue_bytes
            && used + bytes <= limits.total_bytes
    }

    /// Queues `p` if it fits this queue's limits and the bytes `used` over all queues
    /// (updated); returns whether it did.
    pub fn push(&mut self, p: Packet, limits: &Limits, used: &mut usize) -> bool {
        let len = p.len();
        let fits = self.has_room(1, len, limits, *used);
        if fits {
            self.bytes += len;
            *used += len;
            self.packets.push_back(p);
        }
        fits
    }
}
