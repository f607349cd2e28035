//! The host controller shared by every virtual controller of the driver domain: which host
//! devices are present, which guest controller has claimed each, and whose transfer each
//! completion is.
//!
//! Every `vusb` device pumps the controller's events on its poll ([`Hub::pump`]);
//! completions wait in a queue per owner until that owner takes them, so one guest's
//! completions never reach another guest's ring. Tags are the hub's, unique for the life of
//! the driver domain; a completion whose tag was cancelled (or whose owner went) is dropped
//! and counted ([`Hub::stale`]).

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::Rc;
use alloc::string::String;
use core::cell::RefCell;

use log::info;
use minios::executor::{Ctx, Task};
use minios::platform::{DomId, Platform};

use crate::host::{
    Completion, EndpointKind, HostDeviceId, HostError, HostEvent, Speed, Transfer, UsbHost,
};

/// A virtual controller: (frontend domain, devid).
pub type Owner = (DomId, u32);

/// Most bus events handled per pump (the rest wait for the next pass).
pub const EVENTS_PER_PUMP: usize = 256;

/// A present host device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Present {
    /// `<bus>-<port>…` path.
    pub path: String,
    /// Bus speed.
    pub speed: Speed,
    /// The virtual controller that has it, if any.
    pub owner: Option<Owner>,
}

/// The shared controller.
pub struct Hub {
    host: Box<dyn UsbHost>,
    present: BTreeMap<HostDeviceId, Present>,
    tags: BTreeMap<u64, Owner>,
    done: BTreeMap<Owner, VecDeque<Completion>>,
    next_tag: u64,
    stale: u64,
}

/// The hub as every `vusb` device holds it.
pub type SharedHub = Rc<RefCell<Hub>>;

impl Hub {
    /// A hub over a controller driver.
    pub fn new(host: Box<dyn UsbHost>) -> Self {
        Self {
            host,
            present: BTreeMap::new(),
            tags: BTreeMap::new(),
            done: BTreeMap::new(),
            next_tag: 1,
            stale: 0,
        }
    }

    /// Wrapped for sharing.
    pub fn shared(self) -> SharedHub {
        Rc::new(RefCell::new(self))
    }

    /// Handles up to [`EVENTS_PER_PUMP`] bus events; returns whether more may be waiting.
    pub fn pump(&mut self) -> bool {
        for _ in 0..EVENTS_PER_PUMP {
            let Some(event) = self.host.poll_event() else {
                return false;
            };
            match event {
                HostEvent::Attached {
                    device,
                    path,
                    speed,
                } => {
                    info!("usb {path}: attached ({speed:?} speed, device {device})");
                    self.present.insert(
                        device,
                        Present {
                            path,
                            speed,
                            owner: None,
                        },
                    );
                }
                HostEvent::Detached { device } => {
                    if let Some(p) = self.present.remove(&device) {
                        info!("usb {}: detached", p.path);
                    }
                }
                HostEvent::Completed(c) => match self.tags.remove(&c.tag) {
                    Some(owner) => self.done.entry(owner).or_default().push_back(c),
                    None => self.stale += 1,
                },
            }
        }
        true
    }

    /// Present devices.
    pub fn devices(&self) -> impl Iterator<Item = (HostDeviceId, &Present)> {
        self.present.iter().map(|(d, p)| (*d, p))
    }

    /// The present device at `path`.
    pub fn find(&self, path: &str) -> Option<(HostDeviceId, &Present)> {
        self.devices().find(|(_, p)| p.path == path)
    }

    /// Whether `device` is present and claimed by `owner`.
    pub fn holds(&self, owner: Owner, device: HostDeviceId) -> bool {
        self.present
            .get(&device)
            .is_some_and(|p| p.owner == Some(owner))
    }

    /// Claims a present, unclaimed device for `owner` and enables it (port reset, address
    /// on the controller's bus). Returns the holder if another controller has it.
    pub fn claim(&mut self, owner: Owner, device: HostDeviceId) -> Result<(), ClaimError> {
        let p = self.present.get_mut(&device).ok_or(ClaimError::Gone)?;
        match p.owner {
            Some(o) if o != owner => return Err(ClaimError::Held(o)),
            _ => {}
        }
        p.owner = Some(owner);
        if let Err(e) = self.host.enable(device) {
            if let Some(p) = self.present.get_mut(&device) {
                p.owner = None;
            }
            return Err(ClaimError::Enable(e));
        }
        Ok(())
    }

    /// Gives a device up (if `owner` holds it).
    pub fn release(&mut self, owner: Owner, device: HostDeviceId) {
        if let Some(p) = self.present.get_mut(&device) {
            if p.owner == Some(owner) {
                p.owner = None;
            }
        }
    }

    /// The device's endpoint (see [`UsbHost::endpoint`]).
    pub fn endpoint(&self, device: HostDeviceId, number: u8, is_in: bool) -> Option<EndpointKind> {
        self.host.endpoint(device, number, is_in)
    }

    /// Starts a transfer for `owner` with a fresh tag (any tag in `transfer` is replaced);
    /// returns the tag.
    pub fn submit(
        &mut self,
        owner: Owner,
        device: HostDeviceId,
        mut transfer: Transfer,
    ) -> Result<u64, HostError> {
        let tag = self.next_tag;
        self.next_tag += 1;
        transfer.tag = tag;
        self.host.submit(device, transfer)?;
        self.tags.insert(tag, owner);
        Ok(tag)
    }

    /// Cancels a transfer; its completion, should one still come, is dropped.
    pub fn cancel(&mut self, device: HostDeviceId, tag: u64) {
        self.tags.remove(&tag);
        self.host.cancel(device, tag);
    }

    /// The next completion for `owner`.
    pub fn take_completion(&mut self, owner: Owner) -> Option<Completion> {
        let q = self.done.get_mut(&owner)?;
        let c = q.pop_front();
        if q.is_empty() {
            self.done.remove(&owner);
        }
        c
    }

    /// Forgets `owner`'s queued completions (it disconnected).
    pub fn drop_owner(&mut self, owner: Owner) {
        if let Some(q) = self.done.remove(&owner) {
            self.stale += q.len() as u64;
        }
    }

    /// Completions dropped because nobody waited for them any more.
    pub fn stale(&self) -> u64 {
        self.stale
    }

    /// When the controller must be pumped next even without a wake-up (see
    /// [`UsbHost::next_deadline`]).
    pub fn next_deadline(&self) -> Option<u64> {
        self.host.next_deadline()
    }

    /// Stops the controller (the driver domain is stopping).
    pub fn stop(&mut self) {
        self.host.stop();
    }

    /// Transfers in flight (all owners).
    pub fn in_flight(&self) -> usize {
        self.tags.len()
    }
}

/// Pumps the controller on every pass, so attach and detach are seen (and logged) even while
/// no guest controller is connected. Connected `vusb` devices pump too, around their ring
/// work, so a transfer finished at once is answered in the same pass.
pub struct HubTask(pub SharedHub);

impl<P: Platform> Task<P> for HubTask {
    fn poll(&mut self, cx: &mut Ctx<'_, P>) {
        let mut hub = self.0.borrow_mut();
        if hub.pump() {
            cx.wake_now();
        }
        if let Some(deadline) = hub.next_deadline() {
            cx.wake_at(deadline);
        }
    }
}

/// Why a device could not be claimed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimError {
    /// It is not present (any more).
    Gone,
    /// Another virtual controller has it.
    Held(Owner),
    /// The controller could not enable it.
    Enable(HostError),
}
