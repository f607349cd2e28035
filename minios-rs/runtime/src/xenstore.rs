//! The xenstore transport over the shared ring page xenstored set up for us
//! (`HVM_PARAM_STORE_PFN` / `HVM_PARAM_STORE_EVTCHN`), implementing
//! [`minios::platform::XsTransport`] for the `minios` xenstore client.
//!
//! Ring protocol (`io/xs_wire.h`): requests go into `req` (we produce, xenstored consumes),
//! replies and watch events come back in `rsp`. Each side publishes its index with a release
//! store after copying bytes and notifies the event channel; free-running 32-bit indices,
//! byte `i` at `i mod 1024`. Bogus indices from xenstored are an error, never a panic.

use crate::events::Channel;
use crate::mm::page::PhysPage;
use crate::page_ring::PageRing;
pub use crate::page_ring::RingError;
use crate::sync::Global;
use core::mem::offset_of;
use minios::platform::{SharedMem, TransportError, XsTransport};
use xen_abi::xs_wire::{XenstoreDomainInterface as Iface, XENSTORE_RING_SIZE};
use xen_abi::{EvtchnPort, XenErrno};

const REQ: usize = offset_of!(Iface, req);
const RSP: usize = offset_of!(Iface, rsp);
const REQ_CONS: usize = offset_of!(Iface, req_cons);
const REQ_PROD: usize = offset_of!(Iface, req_prod);
const RSP_CONS: usize = offset_of!(Iface, rsp_cons);
const RSP_PROD: usize = offset_of!(Iface, rsp_prod);

/// The request ring: we produce, xenstored consumes.
const REQ_RING: PageRing = PageRing {
    data: REQ,
    size: XENSTORE_RING_SIZE,
    cons: REQ_CONS,
    prod: REQ_PROD,
};
/// The response ring: xenstored produces, we consume.
const RSP_RING: PageRing = PageRing {
    data: RSP,
    size: XENSTORE_RING_SIZE,
    cons: RSP_CONS,
    prod: RSP_PROD,
};

/// Both byte rings of a xenstore page.
#[derive(Debug)]
pub struct XsRing<M> {
    page: M,
}

impl<M: SharedMem> XsRing<M> {
    /// Wraps the xenstore ring page.
    pub fn new(page: M) -> Self {
        Self { page }
    }

    /// Copies as much of `data` as fits into the request ring and publishes it; returns the
    /// number of bytes written (0 when full).
    pub fn write(&self, data: &[u8]) -> Result<usize, RingError> {
        REQ_RING.produce(&self.page, data)
    }

    /// Copies available reply bytes into `buf` and releases their space; returns the count.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, RingError> {
        RSP_RING.consume(&self.page, buf)
    }

    /// Whether reply bytes are waiting (bogus indices count as readable, so the reader
    /// wakes up and sees the error).
    pub fn readable(&self) -> bool {
        match (self.page.load_u32(RSP_CONS), self.page.load_u32(RSP_PROD)) {
            (Ok(c), Ok(p)) => c != p,
            _ => true,
        }
    }

    /// Whether the request ring has room (bogus indices count as writable, likewise).
    pub fn writable(&self) -> bool {
        match (self.page.load_u32(REQ_CONS), self.page.load_u32(REQ_PROD)) {
            (Ok(c), Ok(p)) => (p.wrapping_sub(c) as usize) < XENSTORE_RING_SIZE,
            _ => true,
        }
    }
}

/// Address and port of the ring, for [`readable`] (the transport itself is owned by the
/// xenstore client).
static RING: Global<Option<(u64, EvtchnPort)>> = Global::new(None);
static TRANSPORT: Global<Option<RingTransport>> = Global::new(None);

/// The transport over the xenstore ring page and its event channel.
#[derive(Debug)]
pub struct RingTransport {
    ring: XsRing<PhysPage>,
    channel: Channel,
}

/// Sets up the transport from the platform's ring page and port.
pub fn init() -> Result<(), XenErrno> {
    let (page, port) = crate::arch::platform::xenstore_ring().ok_or(XenErrno::ENODEV)?;
    let addr = page.addr();
    let channel = Channel::adopt(port)?;
    RING.with(|r| *r = Some((addr, port)));
    TRANSPORT.with(|t| {
        *t = Some(RingTransport {
            ring: XsRing::new(page),
            channel,
        })
    });
    Ok(())
}

/// Takes the transport (once; `None` afterwards or without xenstore).
pub fn take_transport() -> Option<RingTransport> {
    TRANSPORT.with(Option::take)
}

/// Whether xenstore reply bytes are waiting to be read.
pub fn readable() -> bool {
    let Some((addr, _)) = RING.with(|r| *r) else {
        return false;
    };
    // SAFETY: the ring page stays mapped for the whole run; this second view only reads the
    // indices atomically.
    let page = unsafe { PhysPage::new(addr, false) };
    XsRing::new(page).readable()
}

fn io_error(e: RingError) -> TransportError {
    log::error!("xenstore ring: {e:?}");
    TransportError::Io(XenErrno::EIO.0)
}

impl XsTransport for RingTransport {
    fn send(&mut self, mut bytes: &[u8]) -> Result<(), TransportError> {
        while !bytes.is_empty() {
            let n = self.ring.write(bytes).map_err(io_error)?;
            bytes = &bytes[n..];
            if n > 0 {
                let _ = self.channel.notify();
            }
            if !bytes.is_empty() {
                let ring = &self.ring;
                crate::events::block(None, || ring.writable());
            }
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        // Consume the port's flag before reading: a notification arriving after this point
        // sets it again, and the ring itself says whether data is waiting.
        self.channel.take_pending();
        let n = self.ring.read(buf).map_err(io_error)?;
        if n > 0 {
            // xenstored may be waiting for room to write the rest of a reply.
            let _ = self.channel.notify();
        }
        Ok(n)
    }

    fn wait_readable(&mut self) -> Result<(), TransportError> {
        self.wait_readable_until(None)
    }

    fn wait_readable_until(&mut self, deadline_ns: Option<u64>) -> Result<(), TransportError> {
        self.channel.take_pending();
        let ring = &self.ring;
        crate::events::block(deadline_ns, || ring.readable());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TestPage as HostPage;

    #[test]
    fn request_ring_fills_and_wraps() {
        let page = HostPage::new();
        let ring = XsRing::new(page.clone());
        page.store_u32(REQ_CONS, 1000).unwrap();
        page.store_u32(REQ_PROD, 1000).unwrap();
        assert_eq!(ring.write(&[1u8; 100]), Ok(100));
        assert_eq!(page.load_u32(REQ_PROD), Ok(1100));
        let snap = page.snapshot();
        assert!(snap[REQ + 1000..REQ + 1024].iter().all(|&b| b == 1));
        assert!(snap[REQ..REQ + 76].iter().all(|&b| b == 1));
        assert_eq!(ring.write(&[2u8; 2000]), Ok(924), "only the free space");
        assert!(!ring.writable());
        assert_eq!(ring.write(b"x"), Ok(0));
    }

    #[test]
    fn reply_ring_reads_and_releases() {
        let page = HostPage::new();
        let ring = XsRing::new(page.clone());
        assert!(!ring.readable());
        let start = u32::MAX - 1; // indices wrap during this read
        page.store_u32(RSP_CONS, start).unwrap();
        page.write(RSP + 1022, b"ab").unwrap();
        page.write(RSP, b"cd").unwrap();
        page.store_u32(RSP_PROD, start.wrapping_add(4)).unwrap();
        assert!(ring.readable());
        let mut buf = [0u8; 3];
        assert_eq!(ring.read(&mut buf), Ok(3));
        assert_eq!(&buf, b"abc");
        assert_eq!(page.load_u32(RSP_CONS), Ok(start.wrapping_add(3)));
        let mut rest = [0u8; 10];
        assert_eq!(ring.read(&mut rest), Ok(1));
        assert_eq!(rest[0], b'd');
        assert!(!ring.readable());
    }

    #[test]
    fn bogus_indices_are_errors_not_panics() {
        let page = HostPage::new();
        let ring = XsRing::new(page.clone());
        page.store_u32(RSP_PROD, 5000).unwrap(); // more than a ring's worth unread
        let mut buf = [0u8; 8];
        assert!(matches!(ring.read(&mut buf), Err(RingError::Index(_))));
        assert_eq!(page.load_u32(RSP_CONS), Ok(0));
        assert!(ring.readable(), "reader wakes and sees the error");
        page.store_u32(REQ_CONS, 10).unwrap(); // consumer ahead of producer
        assert!(matches!(ring.write(b"x"), Err(RingError::Index(_))));
    }
}
