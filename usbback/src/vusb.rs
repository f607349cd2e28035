//! The xenbus side of a virtual USB controller (`vusb`, Linux's xen-hcd): ports, the conn
//! ring, the URB ring.
//!
//! - **Probe**: the toolstack's `num-ports` (1–31) and `usb-ver` (1 or 2), which xen-hcd
//!   reads from our directory, and `port/1..N`: the host device path assigned to each port
//!   (empty: none). A later write to `port/N` (hot attach/detach) takes effect at once.
//! - **Connect**: the frontend's `urb-ring-ref`, `conn-ring-ref` and `event-channel`
//!   (xen-hcd writes them and goes straight to Connected; the framework accepts that).
//! - **Poll**: the controller's events ([`crate::hub::Hub::pump`]), finished transfers answered, ports
//!   reconciled with the assignment and the bus (a device is claimed and enabled —
//!   reset and addressed on the controller's bus — before it is announced), port changes
//!   announced on the conn ring (a port whose device changed is first announced empty),
//!   then a bounded number of URB requests: parsed once ([`Request::parse`]), routed to the
//!   port's device ([`Ports::route`]), checked against its endpoints, `SET_ADDRESS`
//!   answered here, the rest submitted to the controller (isochronous: the frame
//!   descriptors copied once and checked, written back whole at completion). Every request gets exactly one
//!   response; a bad one gets `USBIF_STATUS_INVAL` (or `NODEV`), counted and logged once
//!   per class. Only a corrupted ring (bogus indices) fails the device.
//! - **Unlink** cancels the transfer and answers it `USBIF_STATUS_SHUTDOWN`; the unlink
//!   itself is answered OK, or INVAL when the target is not in flight.
//! - **Disconnect** cancels what is in flight and gives the devices back to the hub.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use log::{info, warn};
use minios::data_area::CounterPublisher;
use minios::event_throttle::{count_hold, EventThrottle, Verdict};
use minios::platform::{Access, EventChannel, Platform, XenErrno};
use minios::ring::{BackChannel, RingAccessError};
use minios::xenbus::{quote, BackendDevice, BackendDriver, DeviceCtx, DeviceError};
use xen_abi::usbif::{
    UsbifConnRequest, UsbifConnResponse, UsbifUrbRequest, UsbifUrbResponse, USBIF_MAX_PORTNR,
    USBIF_SPEED_NONE, USBIF_STATUS_BABBLE, USBIF_STATUS_INVAL, USBIF_STATUS_IOERROR,
    USBIF_STATUS_NODEV, USBIF_STATUS_OK, USBIF_STATUS_SHUTDOWN, USBIF_STATUS_STALL, USB_VER_USB11,
    USB_VER_USB20,
};

use crate::guest;
use crate::host::{
    Completion, EndpointKind, HostDeviceId, HostError, IsoPacket, Speed, Transfer, TransferKind,
    TransferStatus,
};
use crate::hub::{ClaimError, Owner, SharedHub};
use crate::ports::{Ports, RouteError};
use crate::stats::{ErrorClass, Stats};
use crate::wire::{
    iso_response, response, IsoDescriptor, Kind, Request, Segments, Unlink, Urb, ISO_DESC_SIZE,
    REQ_SET_ADDRESS,
};

/// Backend limits (configurable from the command line, see the README).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// URB requests taken per pass before yielding to other devices.
    pub budget: usize,
    /// Interval of the per-controller counters in xenstore, in ms (0: never).
    pub stats_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            budget: 16,
            stats_ms: 1000,
        }
    }
}

/// The URB ring.
pub type UrbRing<M> = BackChannel<M, UsbifUrbRequest, UsbifUrbResponse>;
/// The conn ring.
pub type ConnRing<M> = BackChannel<M, UsbifConnRequest, UsbifConnResponse>;

/// The `vusb` backend driver.
pub struct UsbDriver {
    hub: SharedHub,
    options: Options,
}

impl UsbDriver {
    /// A driver serving devices of `hub`.
    pub fn new(hub: SharedHub, options: Options) -> Self {
        Self { hub, options }
    }

    /// The hub.
    pub fn hub(&self) -> &SharedHub {
        &self.hub
    }
}

fn read_port_key<P: Platform>(
    ctx: &mut DeviceCtx<'_, P>,
    n: u8,
) -> Result<Option<String>, DeviceError> {
    let raw = ctx.read_backend_opt(&format!("port/{n}"))?;
    let Some(raw) = raw else { return Ok(None) };
    let text = core::str::from_utf8(&raw)
        .map(str::trim)
        .map_err(|_| DeviceError::new(XenErrno::EINVAL, format!("port/{n} {}", quote(&raw))))?;
    Ok((!text.is_empty()).then(|| text.into()))
}

impl<P: Platform> BackendDriver<P> for UsbDriver {
    type Device = Vusb<P>;

    fn kind(&self) -> &str {
        "vusb"
    }

    fn probe(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<Vusb<P>, DeviceError> {
        let raw = ctx.read_backend("num-ports")?;
        let num = minios::xenbus::parse_bounded("num-ports", &raw, USBIF_MAX_PORTNR.into())?;
        if num == 0 {
            return Err(DeviceError::new(XenErrno::EINVAL, "num-ports 0"));
        }
        let raw = ctx.read_backend("usb-ver")?;
        let usb_ver = minios::xenbus::parse_bounded("usb-ver", &raw, 3)? as u32;
        if usb_ver != USB_VER_USB11 && usb_ver != USB_VER_USB20 {
            let why = format!("usb-ver {usb_ver}: only 1 (USB 1.1) and 2 (USB 2.0)");
            return Err(DeviceError::new(XenErrno::EINVAL, why));
        }
        let mut ports = Ports::new(num as u8);
        for n in 1..=num as u8 {
            let assigned = read_port_key(ctx, n)?;
            if let Some(p) = ports.get_mut(n) {
                p.assigned = assigned;
            }
        }
        let owner = (ctx.id.frontend_id, ctx.id.devid);
        let label = format!("vusb {}/{}", owner.0, owner.1);
        info!("{label}: {num} ports, USB {usb_ver}.0");
        Ok(Vusb {
            owner,
            usb_ver,
            hub: self.hub.clone(),
            ports,
            options: self.options,
            stats: Stats::new(label),
            counters: CounterPublisher::for_device(ctx, self.options.stats_ms),
            conn: None,
        })
    }
}

/// A URB the controller is working on.
#[derive(Clone, Debug)]
struct InFlight {
    urb: Urb,
    device: HostDeviceId,
    /// Isochronous: the frame descriptors as first read (written back at completion).
    descs: Vec<IsoDescriptor>,
    /// When the request was taken off the ring.
    taken_ns: u64,
}

/// What the guest has been told about a port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Told {
    /// The speed last announced (`USBIF_SPEED_NONE`: empty).
    speed: u8,
    /// The device last announced.
    device: Option<HostDeviceId>,
}

/// A connected frontend.
struct Connection<P: Platform> {
    urb: UrbRing<P::Mapping>,
    conn: ConnRing<P::Mapping>,
    channel: P::Channel,
    /// Holds the event channel back during an event storm.
    events: EventThrottle,
    /// Both rings' request indices at the end of the last poll (work = either moved).
    seen: (Option<u32>, Option<u32>),
    /// By hub tag.
    inflight: BTreeMap<u64, InFlight>,
    /// The last [`RECENT_ANSWERS`] requests answered (port, id), oldest first: an unlink
    /// of one of them crossed its answer on the rings (a race every frontend can lose).
    answered: VecDeque<(u8, u16)>,
    /// Per port (index = port − 1).
    told: Vec<Told>,
}

/// How many answered requests a connection remembers for unlinks that cross them.
const RECENT_ANSWERS: usize = 64;

impl<P: Platform> Connection<P> {
    /// Notes that request `id` on `port` was answered.
    fn remember_answer(&mut self, port: u8, id: u16) {
        if self.answered.len() == RECENT_ANSWERS {
            self.answered.pop_front();
        }
        self.answered.push_back((port, id));
    }

    /// Whether request `id` on `port` was answered lately (forgotten now: a second unlink
    /// of it is the frontend's error).
    fn forget_answer(&mut self, port: u8, id: u16) -> bool {
        let found = self.answered.iter().position(|a| *a == (port, id));
        if let Some(i) = found {
            self.answered.remove(i);
        }
        found.is_some()
    }
}

/// One virtual USB controller.
pub struct Vusb<P: Platform> {
    owner: Owner,
    usb_ver: u32,
    hub: SharedHub,
    ports: Ports,
    options: Options,
    stats: Stats,
    counters: CounterPublisher,
    conn: Option<Connection<P>>,
}

fn status_of(s: TransferStatus) -> i32 {
    match s {
        TransferStatus::Ok => USBIF_STATUS_OK,
        TransferStatus::Stall => USBIF_STATUS_STALL,
        TransferStatus::Babble => USBIF_STATUS_BABBLE,
        TransferStatus::NoDevice => USBIF_STATUS_NODEV,
        TransferStatus::IoError => USBIF_STATUS_IOERROR,
        TransferStatus::Cancelled => USBIF_STATUS_SHUTDOWN,
    }
}

impl<P: Platform> Vusb<P> {
    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The ports.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// Transfers in flight.
    pub fn in_flight(&self) -> usize {
        self.conn.as_ref().map_or(0, |c| c.inflight.len())
    }

    /// Whether a frontend is connected.
    pub fn connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Fails (answers `status`) every transfer in flight on `port` and cancels it.
    fn fail_port(&mut self, port: u8, status: i32) -> Result<(), RingAccessError> {
        let Some(c) = self.conn.as_mut() else {
            return Ok(());
        };
        let tags: Vec<u64> = c
            .inflight
            .iter()
            .filter(|(_, f)| f.urb.port == port)
            .map(|(t, _)| *t)
            .collect();
        let mut hub = self.hub.borrow_mut();
        for tag in tags {
            if let Some(f) = c.inflight.remove(&tag) {
                hub.cancel(f.device, tag);
                c.urb.put_response(&response(f.urb.id, status, 0))?;
            }
        }
        Ok(())
    }

    /// Brings each port in line with its assignment and the bus.
    fn reconcile(&mut self) -> Result<(), RingAccessError> {
        for n in 1..=self.ports.len() {
            let Some(port) = self.ports.get(n) else {
                continue;
            };
            let current = port.device;
            let refused = port.refused;
            let wanted = {
                let hub = self.hub.borrow();
                port.assigned
                    .as_deref()
                    .and_then(|path| hub.find(path))
                    .map(|(d, p)| (d, p.speed))
            };
            // The current device stays while it is present, still ours and still assigned.
            if let Some((dev, _)) = current {
                let keep = wanted.is_some_and(|(d, _)| d == dev)
                    && self.hub.borrow().holds(self.owner, dev);
                if keep {
                    continue;
                }
                self.hub.borrow_mut().release(self.owner, dev);
                self.ports.forget_addresses(n);
                if let Some(p) = self.ports.get_mut(n) {
                    p.device = None;
                }
                self.fail_port(n, USBIF_STATUS_NODEV)?;
                info!("{}: port {n}: device {dev} gone", self.stats.label());
            }
            let Some((dev, speed)) = wanted else {
                continue;
            };
            // Refused before (speed, enable failure): not again until it is replugged or
            // reassigned, so a refusal is counted and logged once, not every pass.
            if refused == Some(dev) {
                continue;
            }
            // The same device assigned to two of our ports: the first port keeps it.
            if self
                .ports
                .iter()
                .any(|(m, p)| m != n && p.device.is_some_and(|(d, _)| d == dev))
            {
                continue;
            }
            if !self.speed_ok(n, speed) {
                if let Some(p) = self.ports.get_mut(n) {
                    p.refused = Some(dev);
                }
                continue;
            }
            let claimed = self.hub.borrow_mut().claim(self.owner, dev);
            match claimed {
                Ok(()) => {
                    info!(
                        "{}: port {n}: device {dev} ({speed:?} speed)",
                        self.stats.label()
                    );
                    self.ports.forget_addresses(n);
                    if let Some(p) = self.ports.get_mut(n) {
                        p.device = Some((dev, speed));
                    }
                }
                // Logged once by whoever holds it; we retry each pass (it may be released).
                Err(ClaimError::Held(_)) | Err(ClaimError::Gone) => {}
                Err(ClaimError::Enable(e)) => {
                    warn!(
                        "{}: port {n}: enabling device {dev}: {e} (not retried until it is \
                         replugged or reassigned)",
                        self.stats.label()
                    );
                    if let Some(p) = self.ports.get_mut(n) {
                        p.refused = Some(dev);
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether a device of `speed` can be shown on port `n` (not SuperSpeed; not high
    /// speed on a USB 1.1 controller). Counted (and the first logged) once per device.
    fn speed_ok(&mut self, n: u8, speed: Speed) -> bool {
        let ok = match speed {
            Speed::Super => false,
            Speed::High => self.usb_ver == USB_VER_USB20,
            Speed::Low | Speed::Full => true,
        };
        if !ok {
            self.stats.error(
                ErrorClass::Unsupported,
                &format_args!(
                    "port {n}: a {speed:?}-speed device cannot be shown on a USB {}.0 \
                     controller (attach it to a USB 2 port)",
                    self.usb_ver
                ),
            );
        }
        ok
    }

    /// Announces port changes while the frontend has conn requests posted.
    fn announce(&mut self) -> Result<(), RingAccessError> {
        let Some(c) = self.conn.as_mut() else {
            return Ok(());
        };
        for n in 1..=self.ports.len() {
            let now = self.ports.get(n).and_then(|p| p.device);
            let told = c.told[usize::from(n) - 1];
            let target = match now {
                Some((dev, speed)) => Told {
                    speed: speed.usbif().unwrap_or(USBIF_SPEED_NONE),
                    device: Some(dev),
                },
                None => Told::default(),
            };
            if told == target {
                continue;
            }
            // A changed device: first the port empties, then the new device appears.
            let step = if told.speed != USBIF_SPEED_NONE {
                Told::default()
            } else {
                target
            };
            let Some(req) = c.conn.next_request()? else {
                return Ok(());
            };
            c.conn.put_response(&UsbifConnResponse {
                id: req.id,
                portnum: n,
                speed: step.speed,
            })?;
            c.told[usize::from(n) - 1] = step;
            self.stats.announcements += 1;
            if step != target {
                let Some(req) = c.conn.next_request()? else {
                    return Ok(());
                };
                c.conn.put_response(&UsbifConnResponse {
                    id: req.id,
                    portnum: n,
                    speed: target.speed,
                })?;
                c.told[usize::from(n) - 1] = target;
                self.stats.announcements += 1;
            }
        }
        Ok(())
    }

    /// Answers finished transfers.
    fn complete(&mut self, platform: &P, fe: u16) -> Result<(), RingAccessError> {
        loop {
            let Some(done) = self.hub.borrow_mut().take_completion(self.owner) else {
                return Ok(());
            };
            let Some(c) = self.conn.as_mut() else {
                return Ok(());
            };
            let Some(f) = c.inflight.remove(&done.tag) else {
                continue;
            };
            let rsp = if f.descs.is_empty() {
                let (status, actual) = deliver(platform, fe, &f.urb, &done, &mut self.stats);
                response(f.urb.id, status, actual)
            } else {
                deliver_iso(platform, fe, &f, &done, &mut self.stats)
            };
            c.urb.put_response(&rsp)?;
            c.remember_answer(f.urb.port, f.urb.id);
            self.stats.answered += 1;
            self.stats.held_us += platform.now_ns().saturating_sub(f.taken_ns) / 1000;
        }
    }

    /// Takes and handles up to a budget of URB requests; returns whether more are waiting.
    fn take_requests(&mut self, platform: &P, fe: u16) -> Result<bool, RingAccessError> {
        for _ in 0..self.options.budget {
            let Some(c) = self.conn.as_mut() else {
                return Ok(false);
            };
            let raw = match c.urb.next_request()? {
                Some(raw) => raw,
                None => {
                    if c.urb.final_check()? {
                        continue;
                    }
                    return Ok(false);
                }
            };
            self.stats.requests += 1;
            let answer = match Request::parse(&raw) {
                Err(e) => {
                    self.stats.error(ErrorClass::Invalid, &e);
                    Some(response(e.id, USBIF_STATUS_INVAL, 0))
                }
                Ok(Request::Unlink(u)) => Some(self.unlink(u)?),
                Ok(Request::Submit(urb)) => self.submit(platform, fe, urb),
            };
            if let (Some(rsp), Some(c)) = (answer, self.conn.as_mut()) {
                c.urb.put_response(&rsp)?;
            }
        }
        Ok(true)
    }

    fn unlink(&mut self, u: Unlink) -> Result<UsbifUrbResponse, RingAccessError> {
        let Some(c) = self.conn.as_mut() else {
            return Ok(response(u.id, USBIF_STATUS_SHUTDOWN, 0));
        };
        let found = c
            .inflight
            .iter()
            .find(|(_, f)| f.urb.id == u.target && f.urb.port == u.port)
            .map(|(t, f)| (*t, f.urb, f.device));
        let Some((tag, target, device)) = found else {
            if c.forget_answer(u.port, u.target) {
                // Its answer was on its way when the frontend gave up on it: nothing to
                // cancel, and nothing wrong (QEMU's backend answers these OK too).
                self.stats.late_unlinks += 1;
                return Ok(response(u.id, USBIF_STATUS_OK, 0));
            }
            self.stats.error(
                ErrorClass::Unlink,
                &format_args!(
                    "unlink of request {} (port {}): not in flight",
                    u.target, u.port
                ),
            );
            return Ok(response(u.id, USBIF_STATUS_INVAL, 0));
        };
        c.inflight.remove(&tag);
        self.hub.borrow_mut().cancel(device, tag);
        c.urb
            .put_response(&response(target.id, USBIF_STATUS_SHUTDOWN, 0))?;
        self.stats.unlinks += 1;
        Ok(response(u.id, USBIF_STATUS_OK, 0))
    }

    /// Checks and starts one transfer; returns the answer when there is one now.
    fn submit(&mut self, platform: &P, fe: u16, urb: Urb) -> Option<UsbifUrbResponse> {
        let taken_ns = platform.now_ns();
        let refuse = |stats: &mut Stats, class, status, why: &dyn core::fmt::Display| {
            stats.error(class, &format_args!("request {}: {why}", urb.id));
            Some(response(urb.id, status, 0))
        };
        let device = match self.ports.route(urb.port, urb.device) {
            Ok(d) => d,
            Err(RouteError::NoSuchPort) => {
                let why = format_args!("port {} beyond num-ports {}", urb.port, self.ports.len());
                return refuse(
                    &mut self.stats,
                    ErrorClass::NoDevice,
                    USBIF_STATUS_INVAL,
                    &why,
                );
            }
            Err(RouteError::NoDevice) => {
                let why = format_args!("no device {} on port {}", urb.device, urb.port);
                return refuse(
                    &mut self.stats,
                    ErrorClass::NoDevice,
                    USBIF_STATUS_NODEV,
                    &why,
                );
            }
        };
        let conn = self.conn.as_ref()?;
        if conn.inflight.values().any(|f| f.urb.id == urb.id) {
            let why = "id already in flight";
            return refuse(
                &mut self.stats,
                ErrorClass::Invalid,
                USBIF_STATUS_INVAL,
                &why,
            );
        }
        let (want, mut kind) = match urb.kind {
            Kind::Control { setup } => {
                // Standard, to the device: SET_ADDRESS is ours.
                if setup[0] == 0 && setup[1] == REQ_SET_ADDRESS {
                    self.stats.set_address += 1;
                    let status = if self.ports.set_address(urb.port, urb.value()) {
                        USBIF_STATUS_OK
                    } else {
                        let why = format_args!("SET_ADDRESS {} refused", urb.value());
                        self.stats.error(ErrorClass::Invalid, &why);
                        USBIF_STATUS_INVAL
                    };
                    return Some(response(urb.id, status, 0));
                }
                (EndpointKind::Control, TransferKind::Control { setup })
            }
            Kind::Bulk => (EndpointKind::Bulk, TransferKind::Bulk),
            Kind::Interrupt { .. } => (EndpointKind::Interrupt, TransferKind::Interrupt),
            Kind::Isochronous { interval, .. } => (
                EndpointKind::Isochronous,
                TransferKind::Isochronous {
                    interval,
                    packets: Vec::new(),
                },
            ),
        };
        let has = self.hub.borrow().endpoint(device, urb.endpoint, urb.is_in);
        if has != Some(want) {
            let dir = if urb.is_in { "IN" } else { "OUT" };
            let why = format_args!(
                "endpoint {} {dir} is {has:?} on device {}, not {want:?}",
                urb.endpoint, urb.device
            );
            return refuse(
                &mut self.stats,
                ErrorClass::Endpoint,
                USBIF_STATUS_INVAL,
                &why,
            );
        }
        // Isochronous: the frame descriptors, copied once from the guest and checked.
        let mut descs = Vec::new();
        if let (
            Kind::Isochronous { packets, .. },
            TransferKind::Isochronous { packets: list, .. },
        ) = (urb.kind, &mut kind)
        {
            match read_iso_descriptors(platform, fe, &urb.segs, packets, urb.length) {
                Ok(d) => descs = d,
                Err((class, why)) => {
                    return refuse(&mut self.stats, class, USBIF_STATUS_INVAL, &why);
                }
            }
            list.extend(descs.iter().map(|d| IsoPacket {
                offset: d.offset as usize,
                length: d.length as usize,
            }));
        }
        let data = if urb.is_in {
            Vec::new()
        } else {
            match guest::gather(platform, fe, urb.segs.as_slice(), urb.length) {
                Ok(d) => d,
                Err(why) => {
                    return refuse(&mut self.stats, ErrorClass::Grant, USBIF_STATUS_INVAL, &why)
                }
            }
        };
        let transfer = Transfer {
            tag: 0,
            endpoint: urb.endpoint,
            is_in: urb.is_in,
            kind,
            data,
            in_len: if urb.is_in { urb.length } else { 0 },
        };
        let submitted = self.hub.borrow_mut().submit(self.owner, device, transfer);
        match submitted {
            Ok(tag) => {
                match urb.kind {
                    Kind::Control { .. } => self.stats.control += 1,
                    Kind::Bulk => self.stats.bulk += 1,
                    Kind::Interrupt { .. } => self.stats.interrupt += 1,
                    Kind::Isochronous { .. } => self.stats.isochronous += 1,
                }
                if let Some(c) = self.conn.as_mut() {
                    c.inflight.insert(
                        tag,
                        InFlight {
                            urb,
                            device,
                            descs,
                            taken_ns,
                        },
                    );
                }
                None
            }
            Err(HostError::NoDevice) => {
                let why = "device detached";
                refuse(
                    &mut self.stats,
                    ErrorClass::NoDevice,
                    USBIF_STATUS_NODEV,
                    &why,
                )
            }
            Err(e) => refuse(&mut self.stats, ErrorClass::Host, USBIF_STATUS_IOERROR, &e),
        }
    }

    fn release_all(&mut self) {
        let mut hub = self.hub.borrow_mut();
        if let Some(c) = self.conn.as_mut() {
            for (tag, f) in core::mem::take(&mut c.inflight) {
                hub.cancel(f.device, tag);
            }
        }
        hub.drop_owner(self.owner);
        for n in 1..=self.ports.len() {
            if let Some((dev, _)) = self.ports.get(n).and_then(|p| p.device) {
                hub.release(self.owner, dev);
            }
            if let Some(p) = self.ports.get_mut(n) {
                p.device = None;
            }
            self.ports.forget_addresses(n);
        }
    }
}

/// Delivers a finished transfer's data to the guest; returns the status and length to
/// answer.
fn deliver<P: Platform>(
    platform: &P,
    fe: u16,
    urb: &Urb,
    done: &Completion,
    stats: &mut Stats,
) -> (i32, usize) {
    let mut status = status_of(done.status);
    if !urb.is_in {
        let sent = done.sent.min(urb.length);
        stats.bytes_out += sent as u64;
        return (status, sent);
    }
    let room = urb.length;
    let data = if done.data.len() > room {
        status = USBIF_STATUS_BABBLE;
        &done.data[..room]
    } else {
        &done.data[..]
    };
    match guest::scatter(platform, fe, urb.segs.as_slice(), data) {
        Ok(n) => {
            stats.bytes_in += n as u64;
            (status, n)
        }
        Err(why) => {
            stats.error(
                ErrorClass::Grant,
                &format_args!("request {}: {why}", urb.id),
            );
            (USBIF_STATUS_INVAL, 0)
        }
    }
}

/// Copies an isochronous URB's frame descriptors out of the guest once and checks each
/// packet lies within the `length`-byte buffer.
fn read_iso_descriptors<P: Platform>(
    platform: &P,
    fe: u16,
    desc: &Segments,
    packets: u16,
    length: usize,
) -> Result<Vec<IsoDescriptor>, (ErrorClass, String)> {
    let bytes = guest::gather(
        platform,
        fe,
        desc.descriptors(),
        usize::from(packets) * ISO_DESC_SIZE,
    )
    .map_err(|why| (ErrorClass::Grant, why))?;
    let mut out = Vec::with_capacity(usize::from(packets));
    for (i, chunk) in bytes.chunks_exact(ISO_DESC_SIZE).enumerate() {
        let mut b = [0u8; ISO_DESC_SIZE];
        b.copy_from_slice(chunk);
        let d = IsoDescriptor::read(&b);
        let end = u64::from(d.offset) + u64::from(d.length);
        if end > length as u64 {
            let why = format!(
                "isochronous packet {i} ({}+{}) beyond the {length}-byte buffer",
                d.offset, d.length
            );
            return Err((ErrorClass::Invalid, why));
        }
        out.push(d);
    }
    Ok(out)
}

/// Answers a finished isochronous transfer: the IN data, each frame descriptor's
/// `actual_length` and `status` written back (offsets and lengths from our first copy),
/// the total length, the start frame and the failed-packet count.
fn deliver_iso<P: Platform>(
    platform: &P,
    fe: u16,
    f: &InFlight,
    done: &Completion,
    stats: &mut Stats,
) -> UsbifUrbResponse {
    let id = f.urb.id;
    let Some((start_frame, results)) = done.iso.as_ref().filter(|(_, r)| r.len() == f.descs.len())
    else {
        let status = match done.status {
            TransferStatus::Ok => USBIF_STATUS_IOERROR,
            s => status_of(s),
        };
        return response(id, status, 0);
    };
    let mut descs = Vec::with_capacity(f.descs.len() * ISO_DESC_SIZE);
    let (mut total, mut errors) = (0usize, 0usize);
    for (d, r) in f.descs.iter().zip(results) {
        let actual = r.actual.min(d.length as usize);
        let status = status_of(r.status);
        if status != USBIF_STATUS_OK {
            errors += 1;
        }
        total += actual;
        let back = IsoDescriptor {
            actual_length: actual as u32,
            status,
            ..*d
        };
        descs.extend_from_slice(&back.write());
    }
    if f.urb.is_in {
        let data = &done.data[..done.data.len().min(f.urb.length)];
        if let Err(why) = guest::scatter(platform, fe, f.urb.segs.as_slice(), data) {
            stats.error(ErrorClass::Grant, &format_args!("request {id}: {why}"));
            return response(id, USBIF_STATUS_INVAL, 0);
        }
        stats.bytes_in += total as u64;
    } else {
        stats.bytes_out += total as u64;
    }
    if let Err(why) = guest::scatter(platform, fe, f.urb.segs.descriptors(), &descs) {
        stats.error(ErrorClass::Grant, &format_args!("request {id}: {why}"));
        return response(id, USBIF_STATUS_INVAL, 0);
    }
    iso_response(id, status_of(done.status), total, *start_frame, errors)
}

impl<P: Platform> BackendDevice<P> for Vusb<P> {
    fn features(&mut self, _ctx: &mut DeviceCtx<'_, P>) -> Result<(), DeviceError> {
        // xen-hcd reads only the toolstack's num-ports and usb-ver; nothing to add.
        Ok(())
    }

    fn connect(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<(), DeviceError> {
        self.release_all();
        self.conn = None;
        let fe = ctx.id.frontend_id;
        let urb_ref = ctx.read_frontend_uint("urb-ring-ref", u32::MAX.into())? as u32;
        let conn_ref = ctx.read_frontend_uint("conn-ring-ref", u32::MAX.into())? as u32;
        let port = ctx.read_frontend_uint("event-channel", u32::MAX.into())? as u32;
        let mut maps = ctx
            .platform
            .map_batch(fe, &[urb_ref, conn_ref], Access::ReadWrite)
            .into_iter();
        let urb_page = maps
            .next()
            .unwrap_or(Err(minios::platform::GrantError::NotAttempted))
            .map_err(|e| DeviceError::from(e).context(&format!("urb-ring-ref {urb_ref}")))?;
        let conn_page = maps
            .next()
            .unwrap_or(Err(minios::platform::GrantError::NotAttempted))
            .map_err(|e| DeviceError::from(e).context(&format!("conn-ring-ref {conn_ref}")))?;
        let urb = UrbRing::new(urb_page).map_err(|e| DeviceError::from(e).context("urb ring"))?;
        let conn =
            ConnRing::new(conn_page).map_err(|e| DeviceError::from(e).context("conn ring"))?;
        let channel = ctx
            .platform
            .bind_interdomain(fe, port)
            .map_err(|e| DeviceError::from(e).context(&format!("event-channel {port}")))?;
        self.conn = Some(Connection {
            urb,
            conn,
            channel,
            events: EventThrottle::new(),
            seen: (None, None),
            inflight: BTreeMap::new(),
            answered: VecDeque::new(),
            told: alloc::vec![Told::default(); usize::from(self.ports.len())],
        });
        info!("{}: connected", self.stats.label());
        Ok(())
    }

    fn disconnect(&mut self, ctx: &mut DeviceCtx<'_, P>) {
        if self.conn.is_some() {
            self.release_all();
            self.conn = None;
            info!("{}: {}", self.stats.label(), self.stats);
            self.counters.due_now();
            self.counters.publish_device(ctx, &self.stats.fields());
        }
    }

    fn poll(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<(), DeviceError> {
        let now = ctx.now_ns();
        let Some(c) = self.conn.as_mut() else {
            return Ok(());
        };
        let fired = c.events.take(&c.channel, now);
        let platform = ctx.platform;
        let fe = ctx.id.frontend_id;
        let mut more = self.hub.borrow_mut().pump();
        self.complete(platform, fe)?;
        self.reconcile()?;
        self.announce()?;
        more |= self.take_requests(platform, fe)?;
        // Transfers the controller finished at once are answered in the same pass.
        more |= self.hub.borrow_mut().pump();
        self.complete(platform, fe)?;
        if let Some(c) = self.conn.as_mut() {
            let urb = c.urb.push();
            let conn = c.conn.push();
            if urb || conn {
                // A closed remote port only means the frontend is going away.
                let _ = c.channel.notify();
            }
            let seen = (c.urb.produced().ok(), c.conn.produced().ok());
            let moved = seen != c.seen;
            c.seen = seen;
            if let Verdict::Held { until_ns, started } =
                c.events.account(&c.channel, now, fired, moved)
            {
                if started {
                    let label = String::from(self.stats.label());
                    count_hold(&mut self.stats.event_holds, &label);
                }
                ctx.wake_at(until_ns);
            }
        }
        if more {
            ctx.wake_now();
        }
        self.counters.publish_device(ctx, &self.stats.fields());
        Ok(())
    }

    fn removed(&mut self, ctx: &mut DeviceCtx<'_, P>) {
        self.release_all();
        self.counters.remove(ctx.xs);
    }

    fn backend_changed(
        &mut self,
        ctx: &mut DeviceCtx<'_, P>,
        key: &str,
    ) -> Result<(), DeviceError> {
        let Some(n) = key.strip_prefix("port/") else {
            return Ok(());
        };
        let Some(n) = minios::xenstore::parse_uint(n.as_bytes())
            .and_then(|n| u8::try_from(n).ok())
            .filter(|n| *n >= 1 && *n <= self.ports.len())
        else {
            return Ok(());
        };
        let assigned = read_port_key(ctx, n)?;
        if let Some(p) = self.ports.get_mut(n) {
            if p.assigned != assigned {
                info!(
                    "{}: port {n} assigned {}",
                    self.stats.label(),
                    assigned.as_deref().unwrap_or("nothing")
                );
                p.assigned = assigned;
            }
            // Any write to port/N (the same path again too) retries a refused device.
            p.refused = None;
        }
        Ok(())
    }
}
