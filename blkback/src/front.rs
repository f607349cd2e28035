//! A blkfront: the driver domain as a client of a disk that dom0 (or another backend) serves
//! it as an ordinary xen disk (`disk=[…]` in the driver domain's own xl.cfg).
//!
//! Handshake as Linux's blkfront does it: wait for the backend's InitWait, allocate a ring
//! of up to [`MAX_RING_ORDER`] pages granted to the backend plus an event channel, publish
//! `ring-ref`/`ring-refN`, `event-channel`, `protocol`, `feature-persistent` with
//! Initialised in one transaction, wait for Connected, read the disk's size and features.
//! The backend is trusted configuration-wise (it is dom0), but its replies are still parsed
//! strictly and checked against the ring.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use minios::platform::{Access, EventChannel, PageSet, Platform};
use minios::ring::{FrontChannel, RingAccessError};
use minios::xenbus::{Frontend, FrontendError, XenbusState};
use minios::xenstore::Xenstore;
use xen_abi::blkif::{BlkifResponse, VDISK_READONLY};

use crate::wire::Slot;

/// Largest ring we ask for: 2^2 pages, 128 entries.
pub const MAX_RING_ORDER: u32 = 2;

/// What the backend told us about the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskInfo {
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// Logical sector size.
    pub sector_size: u32,
    /// The backend refuses writes.
    pub read_only: bool,
    /// `feature-flush-cache`.
    pub flush: bool,
    /// `feature-barrier`.
    pub barrier: bool,
    /// `feature-discard`.
    pub discard: bool,
    /// `discard-secure`.
    pub discard_secure: bool,
    /// `discard-granularity` (bytes, 0 if not given).
    pub discard_granularity: u32,
    /// `feature-max-indirect-segments` (0: none).
    pub max_indirect: u16,
    /// Persistent grants negotiated.
    pub persistent: bool,
}

/// The ring type.
pub type FrontRing<G> = FrontChannel<PageSet<G>, Slot, BlkifResponse>;

/// A connected blkfront.
pub struct BlkFront<P: Platform> {
    fe: Frontend,
    ring: FrontRing<P::Granted>,
    channel: P::Channel,
    /// The disk.
    pub info: DiskInfo,
}

fn bad(why: String) -> FrontendError {
    FrontendError::BadBackend(why)
}

/// A frontend that offered its ring and waits for the backend to connect.
pub struct Offered<P: Platform> {
    /// The xenbus side.
    pub fe: Frontend,
    ring: FrontRing<P::Granted>,
    channel: P::Channel,
}

impl<P: Platform> BlkFront<P> {
    /// Connects our `vbd` device `devid` (default: the lowest devid we have) before
    /// `deadline_ns`, blocking in [`Platform::wait`].
    pub fn connect(
        platform: &P,
        xs: &mut Xenstore<P::Xs>,
        devid: Option<u32>,
        deadline_ns: u64,
    ) -> Result<Self, FrontendError> {
        use XenbusState::*;
        let fe = Self::open(platform, xs, devid)?;
        fe.wait_backend(platform, xs, &[InitWait, Connected], deadline_ns)?;
        let offered = Self::offer(platform, xs, fe)?;
        offered
            .fe
            .wait_backend(platform, xs, &[Connected], deadline_ns)?;
        offered.finish(xs)
    }

    /// Our device `devid` (default: the lowest devid we have).
    pub fn open(
        platform: &P,
        xs: &mut Xenstore<P::Xs>,
        devid: Option<u32>,
    ) -> Result<Frontend, FrontendError> {
        let own = platform.domid();
        let devid = match devid {
            Some(d) => d,
            None => Frontend::list(xs, own, "vbd")?
                .into_iter()
                .min()
                .ok_or_else(|| FrontendError::BadConfig("no disk (xl.cfg disk=[...])".into()))?,
        };
        Frontend::open(xs, own, "vbd", devid)
    }

    /// With the backend in InitWait: grants the ring, allocates the event channel, publishes
    /// them with Initialised.
    pub fn offer(
        platform: &P,
        xs: &mut Xenstore<P::Xs>,
        fe: Frontend,
    ) -> Result<Offered<P>, FrontendError> {
        let max_order = fe
            .read_backend_uint(xs, "max-ring-page-order", 16)?
            .unwrap_or(0) as u32;
        let order = max_order.min(MAX_RING_ORDER);
        let backend = fe.backend_id;
        let mut pages = Vec::new();
        for _ in 0..1u32 << order {
            pages.push(
                platform
                    .grant_page(backend, Access::ReadWrite)
                    .map_err(|e| bad(format!("granting a ring page: {e}")))?,
            );
        }
        let grefs: Vec<u32> = pages
            .iter()
            .map(minios::platform::GrantedPage::gref)
            .collect();
        let set = PageSet::new(pages).map_err(|_| bad("ring pages".into()))?;
        let ring: FrontRing<P::Granted> =
            FrontChannel::new(set).map_err(|e| bad(format!("ring: {e}")))?;
        let channel = platform
            .alloc_unbound(backend)
            .map_err(|e| bad(format!("event channel: {e:?}")))?;
        let port = format!("{}", channel.port());
        let mut keys: Vec<(String, String)> = Vec::new();
        if max_order > 0 {
            keys.push(("ring-page-order".into(), format!("{order}")));
            for (i, g) in grefs.iter().enumerate() {
                keys.push((format!("ring-ref{i}"), format!("{g}")));
            }
        } else {
            keys.push(("ring-ref".into(), format!("{}", grefs[0])));
        }
        keys.push(("event-channel".into(), port));
        keys.push(("protocol".into(), "x86_64-abi".into()));
        keys.push(("feature-persistent".into(), "1".into()));
        let refs: Vec<(&str, &[u8])> = keys
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        fe.publish(xs, &refs, XenbusState::Initialised)?;
        Ok(Offered { fe, ring, channel })
    }
}

impl<P: Platform> Offered<P> {
    /// With the backend Connected: reads the disk's size and features, goes Connected.
    pub fn finish(self, xs: &mut Xenstore<P::Xs>) -> Result<BlkFront<P>, FrontendError> {
        let Offered { fe, ring, channel } = self;
        if fe.backend_state(xs)? != XenbusState::Connected {
            return Err(bad("backend not connected".into()));
        }
        let uint =
            |xs: &mut Xenstore<P::Xs>, key: &str, max: u64| fe.read_backend_uint(xs, key, max);
        let sectors = uint(xs, "sectors", u64::MAX)?.ok_or_else(|| bad("no sectors".into()))?;
        let sector_size = uint(xs, "sector-size", 1 << 16)?.unwrap_or(512) as u32;
        if sector_size < 512 || !sector_size.is_power_of_two() {
            return Err(bad(format!("sector-size {sector_size}")));
        }
        let flag = |xs: &mut Xenstore<P::Xs>, key: &str| -> Result<bool, FrontendError> {
            Ok(fe.read_backend_uint(xs, key, u64::MAX)?.unwrap_or(0) != 0)
        };
        let info = DiskInfo {
            sectors,
            sector_size,
            read_only: uint(xs, "info", u64::from(u32::MAX))?.unwrap_or(0) as u32 & VDISK_READONLY
                != 0,
            flush: flag(xs, "feature-flush-cache")?,
            barrier: flag(xs, "feature-barrier")?,
            discard: flag(xs, "feature-discard")?,
            discard_secure: flag(xs, "discard-secure")?,
            discard_granularity: uint(xs, "discard-granularity", u64::from(u32::MAX))?.unwrap_or(0)
                as u32,
            max_indirect: uint(xs, "feature-max-indirect-segments", u64::MAX)?
                .unwrap_or(0)
                .min(4096) as u16,
            persistent: flag(xs, "feature-persistent")?,
        };
        fe.set_state(xs, XenbusState::Connected)?;
        log::info!(
            "backing disk vbd {}: {} sectors of {} bytes, ring of {} entries, indirect {}, \
             flush {}, discard {}, persistent grants {}",
            fe.devid,
            info.sectors,
            info.sector_size,
            ring.ring().nr_ents(),
            info.max_indirect,
            info.flush,
            info.discard,
            info.persistent
        );
        Ok(BlkFront {
            fe,
            ring,
            channel,
            info,
        })
    }
}

impl<P: Platform> BlkFront<P> {
    /// Free request slots.
    pub fn free_slots(&self) -> u32 {
        self.ring.indices().free_requests()
    }

    /// Ring entries.
    pub fn ring_size(&self) -> u32 {
        self.ring.ring().nr_ents()
    }

    /// The backend domain.
    pub fn backend_id(&self) -> minios::platform::DomId {
        self.fe.backend_id
    }

    /// Queues a request (call [`push`](Self::push) after a batch).
    pub fn put(&mut self, slot: &Slot) -> Result<(), RingAccessError> {
        self.ring.put_request(slot)
    }

    /// Publishes queued requests and notifies the backend if it asked.
    pub fn push(&mut self) {
        if self.ring.push() {
            let _ = self.channel.notify();
        }
    }

    /// Clears the event channel's pending flag; returns whether it had fired.
    pub fn take_event(&self) -> bool {
        self.channel.take_pending()
    }

    /// The next response, if any.
    pub fn next_response(&mut self) -> Result<Option<BlkifResponse>, RingAccessError> {
        self.ring.next_response()
    }

    /// Before going idle: re-arms the response event; true if responses arrived meanwhile.
    pub fn final_check(&mut self) -> Result<bool, RingAccessError> {
        self.ring.final_check()
    }

    /// Closes the device (Closing, wait for the backend, Closed).
    pub fn close(
        &self,
        platform: &P,
        xs: &mut Xenstore<P::Xs>,
        deadline_ns: u64,
    ) -> Result<(), FrontendError> {
        self.fe.close(platform, xs, deadline_ns)
    }
}
