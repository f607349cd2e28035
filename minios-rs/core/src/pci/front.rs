//! pcifront: the PV domain's side of PCI passthrough.
//!
//! ```text
//! let front = PciFront::connect(&platform, &mut xs, deadline)?;   // handshake with pciback
//! for f in front.functions() { … f.vendor, f.device, f.addr … }
//! let cfg = front.config(addr)?;                                 // a ConfigSpace
//! let pirqs = front.enable_msix(addr, &[0, 1])?;                  // bind them as events
//! ```
//!
//! Handshake (Linux pciback, `drivers/xen/xen-pciback/xenbus.c`): we grant one page and
//! allocate an event channel, write `pci-op-ref`, `event-channel` and `magic` and go
//! Initialised; pciback maps the page once it has exported the devices (publishing
//! `vdev-N`) and goes Connected; we read the device list and go Connected.
//!
//! Every operation is synchronous ([`OpChannel`]): pciback runs it in dom0 and clears the
//! page's active flag. Operations are for set-up (config space, interrupts), never on a
//! data path.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::sync::atomic::{fence, Ordering};

use log::{info, warn};
use xen_abi::pciif::{
    XenMsixEntry, XenPciOp, SHARED_FLAGS_OFFSET, SHARED_OP_OFFSET, SH_INFO_MAX_VEC,
    XEN_PCIF_ACTIVE, XEN_PCI_ERR_SUCCESS, XEN_PCI_MAGIC, XEN_PCI_OP_CONF_READ,
    XEN_PCI_OP_CONF_WRITE, XEN_PCI_OP_DISABLE_MSI, XEN_PCI_OP_DISABLE_MSIX, XEN_PCI_OP_ENABLE_MSI,
    XEN_PCI_OP_ENABLE_MSIX,
};
use xen_abi::WireStruct;

use super::config::{self, ConfigSpace};
use super::{PciAddress, PciError};
use crate::executor::{Ctx, Task};
use crate::platform::{Access, EventChannel, GrantedPage, Platform, SharedMem};
use crate::xenbus::{Frontend, XenbusState};
use crate::xenstore::{parse_uint, Event, Store, Xenstore, XsError};

/// How long pciback may take for one operation (it runs in a dom0 workqueue).
pub const OP_TIMEOUT_NS: u64 = 5_000_000_000;
/// Most functions read from the backend's list.
const MAX_FUNCTIONS: u64 = 32;

/// Carries one operation to pciback and returns its answer (with `err` still to check).
pub trait OpChannel {
    /// Performs `op`; `name` says what it is, for errors.
    fn call(&self, op: &XenPciOp, name: &'static str) -> Result<XenPciOp, PciError>;
}

/// The real channel: the granted `xen_pci_sharedinfo` page and its event channel.
pub struct SharedPage<P: Platform> {
    platform: P,
    page: P::Granted,
    evt: P::Channel,
    timeout_ns: u64,
    /// An operation timed out and pciback has not finished it yet: the page is not ours.
    busy: Cell<bool>,
}

impl<P: Platform> SharedPage<P> {
    /// Grants a fresh page to `backend` and allocates an event channel for it.
    pub fn new(platform: P, backend: crate::platform::DomId) -> Result<Self, PciError> {
        let page = platform
            .grant_page(backend, Access::ReadWrite)
            .map_err(PciError::Grant)?;
        let evt = platform.alloc_unbound(backend).map_err(PciError::Xen)?;
        // Masked except while an operation waits for its answer (see `call`).
        evt.mask();
        Ok(Self {
            platform,
            page,
            evt,
            timeout_ns: OP_TIMEOUT_NS,
            busy: Cell::new(false),
        })
    }

    /// The event channel pciback binds (`event-channel`).
    pub fn port(&self) -> crate::platform::EvtchnPort {
        self.evt.port()
    }

    /// Sets how long one operation may take.
    pub fn set_timeout(&mut self, ns: u64) {
        self.timeout_ns = ns;
    }

    /// Notifies pciback of the operation in the page and waits until it cleared the flag,
    /// with the port unmasked meanwhile.
    fn wait_answer(&self, name: &'static str) -> Result<(), PciError> {
        self.evt.unmask().map_err(PciError::Xen)?;
        let _ = self.evt.take_pending();
        self.evt.notify().map_err(PciError::Xen)?;
        let deadline = self.platform.now_ns().saturating_add(self.timeout_ns);
        while self.flags()? & XEN_PCIF_ACTIVE != 0 {
            if self.platform.now_ns() >= deadline {
                self.busy.set(true);
                return Err(PciError::Timeout { op: name });
            }
            self.platform.wait(Some(deadline));
            let _ = self.evt.take_pending();
        }
        Ok(())
    }

    fn flags(&self) -> Result<u32, PciError> {
        self.page
            .load_u32(SHARED_FLAGS_OFFSET)
            .map_err(|e| PciError::BadDevice(format!("shared page: {e}")))
    }
}

impl<P: Platform> OpChannel for SharedPage<P> {
    fn call(&self, op: &XenPciOp, name: &'static str) -> Result<XenPciOp, PciError> {
        if self.busy.get() {
            if self.flags()? & XEN_PCIF_ACTIVE != 0 {
                return Err(PciError::Timeout { op: name });
            }
            self.busy.set(false);
        }
        let mut raw = [0u8; XenPciOp::SIZE];
        let _ = op.write_to(&mut raw);
        let bad = |e| PciError::BadDevice(format!("shared page: {e}"));
        self.page.write(SHARED_OP_OFFSET, &raw).map_err(bad)?;
        fence(Ordering::SeqCst);
        // We do not offer AER handling, so pciback never sets the other bits.
        self.page
            .store_u32(SHARED_FLAGS_OFFSET, XEN_PCIF_ACTIVE)
            .map_err(bad)?;
        // pciback clears the flag and then notifies: an answer can be seen in the flag before
        // its notification arrives, or the notification after the operation ended. The port
        // wakes us only while we wait here; outside it stays masked, so a late notification
        // stays pending in Xen and never marks the port fired with nobody left to take it
        // (a fired port that is never taken keeps `Platform::wait` from blocking: the domain
        // would spin for good).
        let outcome = self.wait_answer(name);
        self.evt.mask();
        let _ = self.evt.take_pending();
        outcome?;
        fence(Ordering::SeqCst);
        // Copied once; only the copy is used.
        self.page.read(SHARED_OP_OFFSET, &mut raw).map_err(bad)?;
        XenPciOp::read_from(&raw).map_err(|e| PciError::BadDevice(format!("{e}")))
    }
}

/// One function the toolstack gave this domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciFunction {
    /// The address this domain uses (pciback's virtual bus: `vdev-N`).
    pub addr: PciAddress,
    /// The real address in dom0 (`dev-N`), for logs.
    pub host: PciAddress,
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Class code (class, subclass, programming interface) in the low 24 bits.
    pub class: u32,
}

/// A connected pcifront.
pub struct PciFront<C: OpChannel> {
    chan: C,
    functions: Vec<PciFunction>,
    /// Our `pci` device (absent for a front made with [`PciFront::from_channel`]).
    fe: Option<Frontend>,
    /// Functions the toolstack took away (`xl pci-detach`, `xl destroy`).
    removed: RefCell<Vec<PciAddress>>,
}

impl<P: Platform + Clone> PciFront<SharedPage<P>> {
    /// Connects to pciback through our `pci` device (devid 0) and reads the list of
    /// functions, blocking until `deadline_ns`. [`PciError::NoFrontend`] when the domain
    /// has no `pci` device (its xl.cfg gave it no `pci=`, or it is not PV).
    pub fn connect(
        platform: &P,
        xs: &mut Xenstore<P::Xs>,
        deadline_ns: u64,
    ) -> Result<Self, PciError> {
        let own = platform.domid();
        let Some(devid) = Frontend::list(xs, own, "pci")?.into_iter().min() else {
            return Err(PciError::NoFrontend);
        };
        let fe = Frontend::open(xs, own, "pci", devid)?;
        let chan = SharedPage::new(platform.clone(), fe.backend_id)?;
        let keys = [
            ("pci-op-ref", format!("{}", chan.page.gref())),
            ("event-channel", format!("{}", chan.evt.port())),
            ("magic", String::from(XEN_PCI_MAGIC)),
        ];
        let keys: Vec<(&str, &[u8])> = keys.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        fe.publish(xs, &keys, XenbusState::Initialised)?;
        fe.wait_backend(platform, xs, &[XenbusState::Connected], deadline_ns)?;
        let listed = read_function_list(xs, &fe)?;
        let mut front = Self::from_channel(chan, &listed);
        fe.set_state(xs, XenbusState::Connected)?;
        front.set_frontend(fe);
        for f in &front.functions {
            info!(
                "pcifront: {} (as {}): {:04x}:{:04x} class {:06x}",
                f.host, f.addr, f.vendor, f.device, f.class
            );
        }
        Ok(front)
    }
}

/// The backend's list: `num_devs`, then `dev-N` (real) and `vdev-N` (virtual; absent in
/// pciback's passthrough mode, where the real address is used).
fn read_function_list<S: Store + ?Sized>(
    xs: &mut S,
    fe: &Frontend,
) -> Result<Vec<(PciAddress, PciAddress)>, PciError> {
    let raw = xs.read(&fe.backend_key("num_devs"))?;
    let n = parse_uint(&raw)
        .filter(|&n| n <= MAX_FUNCTIONS)
        .ok_or_else(|| {
            PciError::BadDevice(format!("num_devs {:?}", String::from_utf8_lossy(&raw)))
        })?;
    let mut list = Vec::new();
    for i in 0..n {
        let parse = |raw: Vec<u8>| -> Result<PciAddress, PciError> {
            let s = String::from_utf8_lossy(&raw);
            s.trim_end_matches('\0')
                .parse()
                .map_err(|_| PciError::BadDevice(format!("function address {s:?}")))
        };
        let host = parse(xs.read(&fe.backend_key(&format!("dev-{i}")))?)?;
        let addr = match xs.read_opt(&fe.backend_key(&format!("vdev-{i}")))? {
            Some(v) => parse(v)?,
            None => host,
        };
        list.push((addr, host));
    }
    Ok(list)
}

impl<C: OpChannel> PciFront<C> {
    /// A front over `chan` for the listed functions (`(address we use, real address)`),
    /// each identified through config space; one that does not answer is left out with a
    /// warning.
    pub fn from_channel(chan: C, listed: &[(PciAddress, PciAddress)]) -> Self {
        let mut front = Self {
            chan,
            functions: Vec::new(),
            fe: None,
            removed: RefCell::new(Vec::new()),
        };
        for &(addr, host) in listed {
            match front.identify(addr, host) {
                Ok(f) => front.functions.push(f),
                Err(e) => warn!("pcifront: {host} (as {addr}): {e}"),
            }
        }
        front
    }

    /// The operation channel.
    pub fn channel(&self) -> &C {
        &self.chan
    }

    /// Associates the front with our `pci` device (done by [`PciFront::connect`]), so that a
    /// [`PciFrontTask`] can follow the toolstack's changes.
    pub fn set_frontend(&mut self, fe: Frontend) {
        self.fe = Some(fe);
    }

    /// Whether the toolstack took the function at `addr` away (its driver must stop).
    pub fn is_removed(&self, addr: PciAddress) -> bool {
        self.removed.borrow().contains(&addr)
    }

    /// Records that the toolstack took the function at `addr` away.
    pub fn mark_removed(&self, addr: PciAddress) {
        let mut r = self.removed.borrow_mut();
        if !r.contains(&addr) {
            r.push(addr);
        }
    }

    /// The functions given to this domain.
    pub fn functions(&self) -> &[PciFunction] {
        &self.functions
    }

    /// Reads a function's identity through config space.
    pub fn identify(&self, addr: PciAddress, host: PciAddress) -> Result<PciFunction, PciError> {
        let cfg = FunctionConfig { front: self, addr };
        let id = cfg.read32(config::VENDOR_ID)?;
        if id as u16 == 0xffff {
            return Err(PciError::NoSuchDevice(addr));
        }
        let class = cfg.read32(config::CLASS_REVISION)? >> 8;
        Ok(PciFunction {
            addr,
            host,
            vendor: id as u16,
            device: (id >> 16) as u16,
            class,
        })
    }

    /// Config space of the function at `addr` (one of [`functions`](Self::functions)).
    pub fn config(&self, addr: PciAddress) -> Result<FunctionConfig<'_, C>, PciError> {
        if !self.functions.iter().any(|f| f.addr == addr) {
            return Err(PciError::NoSuchDevice(addr));
        }
        Ok(FunctionConfig { front: self, addr })
    }

    fn op(
        &self,
        name: &'static str,
        addr: PciAddress,
        fill: impl FnOnce(&mut XenPciOp),
    ) -> Result<XenPciOp, PciError> {
        let mut op = XenPciOp {
            domain: addr.segment.into(),
            bus: addr.bus.into(),
            devfn: addr.devfn(),
            ..XenPciOp::default()
        };
        fill(&mut op);
        let answer = self.chan.call(&op, name)?;
        if answer.err != XEN_PCI_ERR_SUCCESS {
            return Err(PciError::Backend {
                op: name,
                code: answer.err,
            });
        }
        Ok(answer)
    }

    /// Enables MSI-X with the given table entries; returns one pirq per entry, in order.
    /// The device's MSI-X table is programmed by Xen/dom0; bind the pirqs to event channels.
    pub fn enable_msix(&self, addr: PciAddress, entries: &[u16]) -> Result<Vec<u32>, PciError> {
        if entries.is_empty() || entries.len() > SH_INFO_MAX_VEC {
            return Err(PciError::BadDevice(format!(
                "{} MSI-X entries requested",
                entries.len()
            )));
        }
        let answer = self.op("enable_msix", addr, |op| {
            op.cmd = XEN_PCI_OP_ENABLE_MSIX;
            op.value = entries.len() as u32;
            for (slot, &entry) in op.msix_entries.iter_mut().zip(entries) {
                *slot = XenMsixEntry { vector: 0, entry };
            }
        })?;
        // Linux pciback returns the count it enabled in `value`; a shortfall is an error.
        let pirqs: Vec<u32> = answer.msix_entries[..entries.len()]
            .iter()
            .map(|e| u32::from(e.vector))
            .collect();
        if pirqs.contains(&0) {
            return Err(PciError::BadDevice(format!(
                "enable_msix answered pirqs {pirqs:?}"
            )));
        }
        Ok(pirqs)
    }

    /// Disables MSI-X.
    pub fn disable_msix(&self, addr: PciAddress) -> Result<(), PciError> {
        self.op("disable_msix", addr, |op| op.cmd = XEN_PCI_OP_DISABLE_MSIX)
            .map(drop)
    }

    /// Enables MSI; returns its pirq.
    pub fn enable_msi(&self, addr: PciAddress) -> Result<u32, PciError> {
        let answer = self.op("enable_msi", addr, |op| op.cmd = XEN_PCI_OP_ENABLE_MSI)?;
        match answer.value {
            0 => Err(PciError::BadDevice(String::from(
                "enable_msi answered pirq 0",
            ))),
            pirq => Ok(pirq),
        }
    }

    /// Disables MSI.
    pub fn disable_msi(&self, addr: PciAddress) -> Result<(), PciError> {
        self.op("disable_msi", addr, |op| op.cmd = XEN_PCI_OP_DISABLE_MSI)
            .map(drop)
    }
}

/// Config space of one function, through pcifront operations.
pub struct FunctionConfig<'a, C: OpChannel> {
    front: &'a PciFront<C>,
    addr: PciAddress,
}

impl<C: OpChannel> FunctionConfig<'_, C> {
    /// The function's address.
    pub fn addr(&self) -> PciAddress {
        self.addr
    }
}

fn check_access(offset: u16, size: u8) -> Result<(), PciError> {
    if !matches!(size, 1 | 2 | 4) || offset % u16::from(size) != 0 || offset >= 4096 {
        return Err(PciError::BadDevice(format!(
            "config access of {size} bytes at {offset:#x}"
        )));
    }
    Ok(())
}

impl<C: OpChannel> ConfigSpace for FunctionConfig<'_, C> {
    fn read(&self, offset: u16, size: u8) -> Result<u32, PciError> {
        check_access(offset, size)?;
        let answer = self.front.op("conf_read", self.addr, |op| {
            op.cmd = XEN_PCI_OP_CONF_READ;
            op.offset = offset.into();
            op.size = size.into();
        })?;
        Ok(match size {
            1 => answer.value & 0xff,
            2 => answer.value & 0xffff,
            _ => answer.value,
        })
    }

    fn write(&self, offset: u16, size: u8, value: u32) -> Result<(), PciError> {
        check_access(offset, size)?;
        self.front
            .op("conf_write", self.addr, |op| {
                op.cmd = XEN_PCI_OP_CONF_WRITE;
                op.offset = offset.into();
                op.size = size.into();
                op.value = value;
            })
            .map(drop)
    }
}

/// Follows the toolstack's changes to our devices after the connection: `xl pci-detach` and
/// `xl destroy` ask (backend Reconfiguring, the function's `state-N` Closing) for functions
/// to be released; we mark them removed (their drivers stop using them) and answer as Linux's
/// pcifront does, so the toolstack does not wait for a timeout. A backend that goes away
/// removes everything.
pub struct PciFrontTask<C: OpChannel> {
    front: Rc<PciFront<C>>,
}

impl<C: OpChannel> PciFrontTask<C> {
    /// A task for a connected front.
    pub fn new(front: Rc<PciFront<C>>) -> Self {
        Self { front }
    }

    fn step<P: Platform>(&mut self, cx: &mut Ctx<'_, P>) {
        let Some(fe) = self.front.fe.as_ref() else {
            return;
        };
        let state = match fe.backend_state(cx.xs) {
            Ok(s) => s,
            Err(e) => {
                warn!("pcifront: {e}");
                return;
            }
        };
        let own = cx
            .xs
            .read_opt(&fe.key("state"))
            .ok()
            .flatten()
            .and_then(|raw| XenbusState::parse(&raw).ok());
        use XenbusState::*;
        match state {
            Reconfiguring if own == Some(Connected) => {
                for addr in closing_functions(cx.xs, fe) {
                    warn!("pcifront: the toolstack removes {addr}: its driver stops");
                    self.front.mark_removed(addr);
                }
                let _ = fe.set_state(cx.xs, Reconfiguring);
            }
            Reconfigured if own == Some(Reconfiguring) => {
                let _ = fe.set_state(cx.xs, Connected);
            }
            Closing | Closed | Unknown if own != Some(Closed) => {
                for f in &self.front.functions {
                    self.front.mark_removed(f.addr);
                }
                warn!("pcifront: backend {}: every device is gone", state.name());
                let _ = fe.set_state(cx.xs, if state == Closing { Closing } else { Closed });
            }
            _ => {}
        }
    }
}

/// The functions whose `state-N` is Closing (being taken away).
fn closing_functions<S: Store + ?Sized>(xs: &mut S, fe: &Frontend) -> Vec<PciAddress> {
    let Some(n) = xs
        .read_opt(&fe.backend_key("num_devs"))
        .ok()
        .flatten()
        .and_then(|raw| parse_uint(&raw))
        .filter(|&n| n <= MAX_FUNCTIONS)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in 0..n {
        let state = xs
            .read_opt(&fe.backend_key(&format!("state-{i}")))
            .ok()
            .flatten()
            .and_then(|raw| XenbusState::parse(&raw).ok());
        if state != Some(XenbusState::Closing) {
            continue;
        }
        let raw = match xs.read_opt(&fe.backend_key(&format!("vdev-{i}"))) {
            Ok(Some(v)) => Some(v),
            _ => xs.read(&fe.backend_key(&format!("dev-{i}"))).ok(),
        };
        if let Some(addr) = raw.and_then(|r| {
            String::from_utf8_lossy(&r)
                .trim_end_matches('\0')
                .parse()
                .ok()
        }) {
            out.push(addr);
        }
    }
    out
}

impl<P: Platform, C: OpChannel> Task<P> for PciFrontTask<C> {
    fn start(&mut self, cx: &mut Ctx<'_, P>) -> Result<(), XsError> {
        if let Some(fe) = self.front.fe.as_ref() {
            let path = fe.backend_key("state");
            cx.watch(&path, "backend")?;
        }
        Ok(())
    }

    fn on_event(&mut self, cx: &mut Ctx<'_, P>, _sub: &str, _event: &Event) {
        self.step(cx);
    }

    fn poll(&mut self, _cx: &mut Ctx<'_, P>) {}
}
