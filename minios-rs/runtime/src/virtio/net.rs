//! virtio-net on a passed-through function, as a [`NetDevice`].
//!
//! The crate's transport and virtqueues carry the frames; this module owns the buffers
//! (DMA memory, handed to the device by machine address), the `virtio_net_hdr` in front of
//! every frame and the offloads: transmit checksum and TSO are negotiated when the device
//! offers them (`VIRTIO_NET_F_CSUM`, `HOST_TSO4/6`), receive checksum state when it offers
//! `GUEST_CSUM`; received frames are at most one buffer (no `GUEST_TSO`, no mergeable
//! buffers), so the device segments for us.
//!
//! Everything the device writes back (used lengths, descriptor ids, headers) is bounded or
//! checked; a device that names a buffer we did not give it is failed, not trusted.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use bitflags::bitflags;
use minios::netdev::{NetDevice, NetError, NetOffloads, RxCsum, RxFrame, TxMeta};
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::Transport;

use super::hal::XenHal;
use super::transport::VirtioPci;
use crate::dma::DmaPages;
use crate::pci::IrqMode;

/// Descriptors per queue.
const QUEUE_SIZE: usize = 128;
/// `virtio_net_hdr` with `num_buffers` (VERSION_1).
const HDR: usize = 12;
/// Bytes per receive buffer: header + a 1514-byte frame, two per page.
const RX_BUF: usize = 2048;
/// Pages of transmit buffers; a frame takes as many as header + frame need.
const TX_SLOTS: usize = 64;
const PAGE: usize = 4096;
const RX_QUEUE: u16 = 0;
const TX_QUEUE: u16 = 1;
/// Largest frame without offloads (1500-byte MTU).
const MAX_FRAME: usize = 1514;
/// Largest TSO frame we hand the device.
const MAX_GSO_FRAME: usize = 65535 + 14;

bitflags! {
    /// The feature bits we may negotiate.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Features: u64 {
        const CSUM = 1 << 0;
        const GUEST_CSUM = 1 << 1;
        const MAC = 1 << 5;
        const HOST_TSO4 = 1 << 11;
        const HOST_TSO6 = 1 << 12;
        const STATUS = 1 << 16;
        const RING_INDIRECT_DESC = 1 << 28;
        const RING_EVENT_IDX = 1 << 29;
        const VERSION_1 = 1 << 32;
    }
}

/// `virtio_net_hdr.flags`: the checksum is to be completed.
const NEEDS_CSUM: u8 = 1;
/// `virtio_net_hdr.flags`: the checksum was verified.
const DATA_VALID: u8 = 2;
/// `virtio_net_hdr.gso_type` values.
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
/// Link-up bit of the device's `status` config field.
const LINK_UP: u16 = 1;

/// Counters of what the device got wrong.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceErrors {
    /// Received buffers with an impossible length.
    pub bad_rx_len: u64,
}

/// A virtio-net device owned by this domain.
pub struct VirtioNet {
    dev: VirtioPci,
    rx: VirtQueue<XenHal, QUEUE_SIZE>,
    tx: VirtQueue<XenHal, QUEUE_SIZE>,
    rx_pool: DmaPages,
    /// Receive buffer index per descriptor token.
    rx_posted: Vec<Option<u16>>,
    tx_pool: DmaPages,
    tx_free: Vec<u16>,
    /// Transmit slots and frame length per descriptor token.
    tx_inflight: Vec<Option<(Vec<u16>, usize)>>,
    features: Features,
    mac: [u8; 6],
    notify_rx: bool,
    notify_tx: bool,
    failed: Option<String>,
    /// What the device got wrong so far.
    pub errors: DeviceErrors,
}

fn device_error(what: &str, e: impl core::fmt::Display) -> NetError {
    NetError::Device(format!("{what}: {e}"))
}

/// virtio's PCI vendor id.
const VIRTIO_VENDOR: u16 = 0x1af4;

impl VirtioNet {
    /// Whether this driver drives the PCI function with these ids (virtio-net, modern or
    /// transitional).
    pub fn drives(vendor: u16, device: u16) -> bool {
        vendor == VIRTIO_VENDOR && (device == 0x1041 || device == 0x1000)
    }

    /// Negotiates features, sets up both queues (their interrupts on the function's first
    /// vector) and posts every receive buffer. `fallback_mac` is used when the device has
    /// no MAC of its own.
    pub fn new(mut dev: VirtioPci, fallback_mac: [u8; 6]) -> Result<Self, NetError> {
        // Not RING_EVENT_IDX: virtio-drivers 0.13 compares the 16-bit ring indexes without
        // wrapping (after 65536 buffers the device is never notified again) and publishes
        // `used_event` without a full barrier before re-reading the used ring (an interrupt
        // can be missed, so a received frame waits for an unrelated wake-up). The flag-based
        // suppression it uses instead has neither problem.
        let wanted = Features::CSUM
            | Features::GUEST_CSUM
            | Features::MAC
            | Features::HOST_TSO4
            | Features::HOST_TSO6
            | Features::STATUS
            | Features::RING_INDIRECT_DESC
            | Features::VERSION_1;
        let features = dev.transport.begin_init(wanted);
        if !features.contains(Features::VERSION_1) {
            return Err(NetError::Device(String::from(
                "device does not offer VIRTIO_F_VERSION_1",
            )));
        }
        let mac = if features.contains(Features::MAC) {
            dev.transport
                .read_config_space::<[u8; 6]>(0)
                .map_err(|e| device_error("reading the MAC", e))?
        } else {
            fallback_mac
        };
        for q in [RX_QUEUE, TX_QUEUE] {
            dev.set_queue_vector(q, 0)
                .map_err(|e| device_error("MSI-X vector", e))?;
        }
        let indirect = features.contains(Features::RING_INDIRECT_DESC);
        let event_idx = features.contains(Features::RING_EVENT_IDX);
        let rx = VirtQueue::new(&mut *dev.transport, RX_QUEUE, indirect, event_idx)
            .map_err(|e| device_error("receive queue", e))?;
        let tx = VirtQueue::new(&mut *dev.transport, TX_QUEUE, indirect, event_idx)
            .map_err(|e| device_error("transmit queue", e))?;
        dev.transport.finish_init();
        // Every buffer lies inside one page: the pools need no machine contiguity.
        let alloc = |bytes: usize| {
            DmaPages::alloc((bytes / PAGE) as u64)
                .map_err(|e| device_error("buffer memory", format!("{e:?}")))
        };
        let rx_pool = alloc(QUEUE_SIZE * RX_BUF)?;
        let tx_pool = alloc(TX_SLOTS * PAGE)?;
        let mut net = Self {
            dev,
            rx,
            tx,
            rx_pool,
            rx_posted: vec![None; QUEUE_SIZE],
            tx_pool,
            tx_free: (0..TX_SLOTS as u16).rev().collect(),
            tx_inflight: vec![None; QUEUE_SIZE],
            features,
            mac,
            notify_rx: false,
            notify_tx: false,
            failed: None,
            errors: DeviceErrors::default(),
        };
        for i in 0..QUEUE_SIZE as u16 {
            net.post_rx(i)?;
        }
        net.flush()?;
        log::info!(
            "virtio-net {} (as {}): mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, features {:?}, interrupts {:?} (pirq {})",
            net.dev.host,
            net.dev.addr,
            mac[0], mac[1], mac[2], mac[3], mac[4], mac[5],
            features,
            net.dev.irqs.mode,
            net.dev.irqs.pirqs.first().map_or(0, |p| p.pirq()),
        );
        Ok(net)
    }

    /// The function's address.
    pub fn address(&self) -> minios::pci::PciAddress {
        self.dev.addr
    }

    fn rx_buf(&self, idx: u16) -> &'static mut [u8] {
        let at = self.rx_pool.va() as usize + usize::from(idx) * RX_BUF;
        // SAFETY: buffer `idx` (< QUEUE_SIZE) lies inside the pool, which lives as long as
        // the device; each buffer is either with the device or handled by exactly one
        // caller at a time (the token maps say which).
        unsafe { core::slice::from_raw_parts_mut(at as *mut u8, RX_BUF) }
    }

    fn tx_slot(&self, slot: u16) -> *mut u8 {
        (self.tx_pool.va() as usize + usize::from(slot) * PAGE) as *mut u8
    }

    fn post_rx(&mut self, idx: u16) -> Result<(), NetError> {
        let buf = self.rx_buf(idx);
        // SAFETY: the buffer stays valid and untouched by us until its token is popped.
        let token = unsafe { self.rx.add(&[], &mut [buf]) }
            .map_err(|e| device_error("posting a receive buffer", e))?;
        match self.rx_posted.get_mut(usize::from(token)) {
            Some(slot @ None) => *slot = Some(idx),
            _ => return Err(NetError::Device(format!("receive token {token} reused"))),
        }
        self.notify_rx = true;
        Ok(())
    }

    fn fail(&mut self, e: NetError) -> NetError {
        if let NetError::Device(why) = &e {
            if self.failed.is_none() {
                log::warn!(
                    "virtio-net {}: {why}; the device is no longer used",
                    self.dev.addr
                );
                self.failed = Some(why.clone());
            }
        }
        e
    }

    fn check(&mut self) -> Result<(), NetError> {
        if self.failed.is_none() && self.dev.removed() {
            self.failed = Some(String::from("the toolstack removed the device"));
        }
        match &self.failed {
            Some(why) => Err(NetError::Device(why.clone())),
            None => Ok(()),
        }
    }

    fn reclaim_tx(&mut self) -> Result<(), NetError> {
        while let Some(token) = self.tx.peek_used() {
            let Some((slots, len)) = self
                .tx_inflight
                .get_mut(usize::from(token))
                .and_then(Option::take)
            else {
                return Err(NetError::Device(format!(
                    "device completed transmit token {token} it was never given"
                )));
            };
            let inputs = self.tx_slices(&slots, len);
            let refs: Vec<&[u8]> = inputs.iter().map(|s| &**s).collect();
            // SAFETY: these are the slices added with this token.
            unsafe { self.tx.pop_used(token, &refs, &mut []) }
                .map_err(|e| device_error("transmit completion", e))?;
            self.tx_free.extend(slots);
        }
        Ok(())
    }

    /// The slices a frame of `len` bytes (header included) occupies in `slots`.
    fn tx_slices(&self, slots: &[u16], len: usize) -> Vec<&'static [u8]> {
        let mut left = len;
        slots
            .iter()
            .map(|&s| {
                let n = left.min(PAGE);
                left -= n;
                // SAFETY: slot `s` is a page of the pool, owned by this frame until popped.
                unsafe { core::slice::from_raw_parts(self.tx_slot(s), n) }
            })
            .collect()
    }
}

/// The `virtio_net_hdr` asking the device for `meta`'s offloads; refused unless `features`
/// include them (checksum: `CSUM`; TSO: `HOST_TSO4/6` with a checksum request).
fn tx_header(features: Features, meta: &TxMeta) -> Result<[u8; HDR], NetError> {
    let mut h = [0u8; HDR];
    if let Some((start, offset)) = meta.csum {
        if !features.contains(Features::CSUM) {
            return Err(NetError::Refused);
        }
        h[0] = NEEDS_CSUM;
        h[6..8].copy_from_slice(&start.to_le_bytes());
        h[8..10].copy_from_slice(&offset.to_le_bytes());
    }
    if let Some(gso) = meta.gso {
        let tso = if gso.ipv6 {
            Features::HOST_TSO6
        } else {
            Features::HOST_TSO4
        };
        if meta.csum.is_none() || !features.contains(tso) {
            return Err(NetError::Refused);
        }
        h[1] = if gso.ipv6 { GSO_TCPV6 } else { GSO_TCPV4 };
        h[2..4].copy_from_slice(&gso.hdr_len.to_le_bytes());
        h[4..6].copy_from_slice(&gso.mss.to_le_bytes());
    }
    Ok(h)
}

/// A received frame's checksum state from its `virtio_net_hdr`.
fn rx_csum(h: &[u8; HDR]) -> RxCsum {
    if h[0] & NEEDS_CSUM != 0 {
        RxCsum::Partial {
            start: u16::from_le_bytes([h[6], h[7]]),
            offset: u16::from_le_bytes([h[8], h[9]]),
        }
    } else if h[0] & DATA_VALID != 0 {
        RxCsum::Valid
    } else {
        RxCsum::Unverified
    }
}

impl NetDevice for VirtioNet {
    fn describe(&self) -> String {
        let m = self.mac;
        format!(
            "virtio-net {} mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            self.dev.host, m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn max_frame(&self) -> usize {
        MAX_FRAME
    }

    fn offloads(&self) -> NetOffloads {
        let csum = self.features.contains(Features::CSUM);
        NetOffloads {
            tx_csum: csum,
            tx_tso4: csum && self.features.contains(Features::HOST_TSO4),
            tx_tso6: csum && self.features.contains(Features::HOST_TSO6),
            rx_csum: self.features.contains(Features::GUEST_CSUM),
        }
    }

    fn link_up(&self) -> bool {
        if !self.features.contains(Features::STATUS) {
            return true;
        }
        self.dev
            .transport
            .read_config_space::<u16>(6)
            .map_or(true, |s| s & LINK_UP != 0)
    }

    fn take_interrupt(&mut self) -> bool {
        let mut fired = false;
        for p in &self.dev.irqs.pirqs {
            fired |= p.take();
        }
        if fired {
            if self.dev.irqs.mode == IrqMode::Intx {
                // Reading the ISR deasserts the line; then Xen may deliver the next one.
                self.dev.transport.ack_interrupt();
            }
            for p in &self.dev.irqs.pirqs {
                if let Err(e) = p.eoi() {
                    log::warn!("virtio-net: EOI of pirq {}: {e:?}", p.pirq());
                }
            }
        }
        fired
    }

    fn poll(&mut self) -> Result<(), NetError> {
        self.check()?;
        self.reclaim_tx().map_err(|e| self.fail(e))
    }

    fn receive(
        &mut self,
        budget: usize,
        each: &mut dyn FnMut(RxFrame<'_>),
    ) -> Result<usize, NetError> {
        self.check()?;
        let mut n = 0;
        while n < budget {
            let Some(token) = self.rx.peek_used() else {
                break;
            };
            let Some(idx) = self
                .rx_posted
                .get_mut(usize::from(token))
                .and_then(Option::take)
            else {
                let e = NetError::Device(format!(
                    "device returned receive token {token} it was never given"
                ));
                return Err(self.fail(e));
            };
            let buf = self.rx_buf(idx);
            // SAFETY: the buffer added with this token.
            let used = unsafe { self.rx.pop_used(token, &[], &mut [&mut *buf]) };
            let used = match used {
                Ok(len) => len as usize,
                Err(e) => return Err(self.fail(device_error("receive completion", e))),
            };
            if (HDR..=RX_BUF).contains(&used) && used > HDR {
                let mut h = [0u8; HDR];
                h.copy_from_slice(&buf[..HDR]);
                let csum = rx_csum(&h);
                each(RxFrame {
                    data: &buf[HDR..used],
                    csum,
                });
                n += 1;
            } else {
                self.errors.bad_rx_len += 1;
            }
            if let Err(e) = self.post_rx(idx) {
                return Err(self.fail(e));
            }
        }
        Ok(n)
    }

    fn transmit(&mut self, frame: &[u8], meta: &TxMeta) -> Result<(), NetError> {
        self.check()?;
        let limit = if meta.gso.is_some() {
            MAX_GSO_FRAME
        } else {
            MAX_FRAME
        };
        if frame.is_empty() || frame.len() > limit {
            return Err(NetError::Refused);
        }
        let header = tx_header(self.features, meta)?;
        let total = HDR + frame.len();
        let needed = total.div_ceil(PAGE);
        if self.tx_free.len() < needed {
            self.reclaim_tx().map_err(|e| self.fail(e))?;
            if self.tx_free.len() < needed {
                return Err(NetError::Full);
            }
        }
        let slots: Vec<u16> = (0..needed).filter_map(|_| self.tx_free.pop()).collect();
        // Header and frame, laid out across the slots' pages.
        let mut at = 0;
        for part in [&header[..], frame] {
            let mut rest = part;
            while !rest.is_empty() {
                let (slot, off) = (slots[at / PAGE], at % PAGE);
                let n = rest.len().min(PAGE - off);
                // SAFETY: `off + n` stays inside slot `slot`, a page of the pool we own until
                // it is added to the queue; `rest` is the caller's memory.
                unsafe {
                    core::ptr::copy_nonoverlapping(rest.as_ptr(), self.tx_slot(slot).add(off), n)
                };
                rest = &rest[n..];
                at += n;
            }
        }
        let inputs = self.tx_slices(&slots, total);
        // SAFETY: the slot pages stay untouched until the token is popped in `reclaim_tx`.
        let token = match unsafe { self.tx.add(&inputs, &mut []) } {
            Ok(t) => t,
            Err(virtio_drivers::Error::QueueFull) => {
                self.tx_free.extend(slots);
                return Err(NetError::Full);
            }
            Err(e) => return Err(self.fail(device_error("queueing a frame", e))),
        };
        match self.tx_inflight.get_mut(usize::from(token)) {
            Some(slot @ None) => *slot = Some((slots, total)),
            _ => return Err(self.fail(NetError::Device(format!("transmit token {token} reused")))),
        }
        self.notify_tx = true;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), NetError> {
        self.check()?;
        if core::mem::take(&mut self.notify_rx) && super::wants_doorbell(&self.rx) {
            self.dev.transport.notify(RX_QUEUE);
        }
        if core::mem::take(&mut self.notify_tx) && super::wants_doorbell(&self.tx) {
            self.dev.transport.notify(TX_QUEUE);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minios::netdev::TxGso;

    #[test]
    fn headers_ask_only_for_negotiated_offloads() {
        let none = TxMeta::default();
        assert_eq!(tx_header(Features::empty(), &none), Ok([0; HDR]));
        let csum = TxMeta {
            csum: Some((34, 16)),
            gso: None,
        };
        assert_eq!(tx_header(Features::empty(), &csum), Err(NetError::Refused));
        let h = tx_header(Features::CSUM, &csum).unwrap();
        assert_eq!(h, [NEEDS_CSUM, 0, 0, 0, 0, 0, 34, 0, 16, 0, 0, 0]);
        let tso = TxMeta {
            csum: Some((34, 16)),
            gso: Some(TxGso {
                ipv6: false,
                mss: 1448,
                hdr_len: 54,
            }),
        };
        assert_eq!(tx_header(Features::CSUM, &tso), Err(NetError::Refused));
        assert_eq!(
            tx_header(Features::CSUM | Features::HOST_TSO6, &tso),
            Err(NetError::Refused),
            "TSO over IPv4 needs HOST_TSO4"
        );
        let h = tx_header(Features::CSUM | Features::HOST_TSO4, &tso).unwrap();
        assert_eq!(h[1], GSO_TCPV4);
        assert_eq!(u16::from_le_bytes([h[2], h[3]]), 54);
        assert_eq!(u16::from_le_bytes([h[4], h[5]]), 1448);
        let no_csum = TxMeta { csum: None, ..tso };
        assert_eq!(
            tx_header(Features::all(), &no_csum),
            Err(NetError::Refused),
            "TSO without a checksum request"
        );
    }

    #[test]
    fn receive_headers_give_the_checksum_state() {
        let mut h = [0u8; HDR];
        assert_eq!(rx_csum(&h), RxCsum::Unverified);
        h[0] = DATA_VALID;
        assert_eq!(rx_csum(&h), RxCsum::Valid);
        h[0] = NEEDS_CSUM | DATA_VALID;
        h[6] = 34;
        h[8] = 16;
        assert_eq!(
            rx_csum(&h),
            RxCsum::Partial {
                start: 34,
                offset: 16
            }
        );
    }
}
