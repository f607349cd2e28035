//! Xenbus: the split-device handshake over xenstore.
//!
//! - [`backend`]: discovers the devices the toolstack creates under
//!   `/local/domain/<own-domid>/backend/<type>/<frontend-domid>/<devid>` and runs one state
//!   machine per device, calling a [`BackendDevice`] at the points where backend-specific work
//!   happens (publish features, connect, ring work, disconnect).
//! - [`frontend`]: the other side, for driver domains that are themselves frontends
//!   (netfront uplink, blkfront backing disk).
//!
//! Trust: the backend directory is written by the toolstack (dom0) and read as configuration;
//! everything under the frontend directory is written by the guest and parsed strictly, its
//! failures confined to that one device.

pub mod backend;
pub mod frontend;
#[cfg(test)]
mod tests;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use backend::{Backend, BackendConfig, BackendDevice, BackendDriver, BackendStats};
pub use frontend::{Frontend, FrontendError};
pub use xen_abi::xenbus::XenbusState;

use crate::platform::{DomId, GrantError, Platform, XenErrno};
use crate::ring::RingAccessError;
use crate::xenstore::{parse_uint, Store, Xenstore, XsError};

/// Which device a backend instance serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceId {
    /// Backend type (`vif`, `vbd`, `vusb`, `vsnd`).
    pub kind: String,
    /// The frontend (guest) domain.
    pub frontend_id: DomId,
    /// Device id (the last path component).
    pub devid: u32,
    /// Our directory: `/local/domain/<own>/backend/<kind>/<frontend_id>/<devid>`.
    pub backend_path: String,
    /// The frontend's directory, as the toolstack wrote it in our `frontend` key.
    pub frontend_path: String,
}

impl fmt::Display for DeviceId {
    /// `vif 5/0`: the prefix of every log line about the device.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.frontend_id, self.devid)
    }
}

/// Why a device failed: an errno (as written to the `error` node, Linux style) and a reason
/// a person can act on ("frontend ring-ref 99999 not granted: GNTST_general_error").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceError {
    /// Errno reported with the reason.
    pub errno: XenErrno,
    /// The reason.
    pub reason: String,
}

impl DeviceError {
    /// An error with an explicit errno.
    pub fn new(errno: XenErrno, reason: impl Into<String>) -> Self {
        Self {
            errno,
            reason: reason.into(),
        }
    }

    /// The frontend broke the protocol (`EINVAL`).
    pub fn protocol(reason: impl Into<String>) -> Self {
        Self::new(XenErrno::EINVAL, reason)
    }

    /// Prefixes the reason with context ("ring-ref: ...").
    pub fn context(mut self, what: &str) -> Self {
        self.reason = format!("{what}: {}", self.reason);
        self
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.errno.name().unwrap_or("E?"))
    }
}

impl From<XsError> for DeviceError {
    fn from(e: XsError) -> Self {
        let errno = e.errno().unwrap_or(XenErrno::EIO);
        Self::new(errno, format!("{e}"))
    }
}

impl From<GrantError> for DeviceError {
    fn from(e: GrantError) -> Self {
        let errno = match e {
            GrantError::Exhausted => XenErrno::ENOMEM,
            _ => XenErrno::EINVAL,
        };
        Self::new(errno, format!("{e}"))
    }
}

impl From<RingAccessError> for DeviceError {
    fn from(e: RingAccessError) -> Self {
        Self::protocol(format!("{e}"))
    }
}

impl From<XenErrno> for DeviceError {
    fn from(e: XenErrno) -> Self {
        Self::new(e, format!("hypercall failed: {}", e.name().unwrap_or("E?")))
    }
}

/// What a device hook may use: the platform, xenstore, the device's identity, time, and a
/// buffer of keys to publish in the backend directory together with the next state switch.
pub struct DeviceCtx<'a, P: Platform> {
    /// The platform (grants, event channels, clock).
    pub platform: &'a P,
    /// The xenstore connection.
    pub xs: &'a mut Xenstore<P::Xs>,
    /// The device.
    pub id: &'a DeviceId,
    now_ns: u64,
    wake: &'a mut Option<u64>,
    publish: &'a mut Vec<(String, Vec<u8>)>,
}

impl<'a, P: Platform> DeviceCtx<'a, P> {
    /// A context for driving a device by hand (tests).
    pub fn new(
        platform: &'a P,
        xs: &'a mut Xenstore<P::Xs>,
        id: &'a DeviceId,
        wake: &'a mut Option<u64>,
        publish: &'a mut Vec<(String, Vec<u8>)>,
    ) -> Self {
        let now_ns = platform.now_ns();
        Self {
            platform,
            xs,
            id,
            now_ns,
            wake,
            publish,
        }
    }

    /// Time at the start of this pass.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Asks to be polled again no later than `deadline_ns` (per pass, see
    /// [`crate::executor::Ctx::wake_at`]).
    pub fn wake_at(&mut self, deadline_ns: u64) {
        *self.wake = Some(self.wake.map_or(deadline_ns, |d| d.min(deadline_ns)));
    }

    /// Asks to be polled again right away (bounded work per pass, more to do).
    pub fn wake_now(&mut self) {
        self.wake_at(self.now_ns);
    }

    /// Queues `key` = `value` (relative to the backend directory) to be written in the same
    /// transaction as the state switch that follows this hook (InitWait after
    /// [`BackendDevice::features`], Connected after [`BackendDevice::connect`]).
    pub fn publish(&mut self, key: &str, value: impl AsRef<[u8]>) {
        self.publish.push((key.into(), value.as_ref().into()));
    }

    /// Absolute path of a backend key.
    pub fn backend_key(&self, key: &str) -> String {
        format!("{}/{key}", self.id.backend_path)
    }

    /// Absolute path of a frontend key.
    pub fn frontend_key(&self, key: &str) -> String {
        format!("{}/{key}", self.id.frontend_path)
    }

    /// Reads a frontend key; missing or unreadable is an error naming the key.
    pub fn read_frontend(&mut self, key: &str) -> Result<Vec<u8>, DeviceError> {
        let path = self.frontend_key(key);
        self.xs
            .read(&path)
            .map_err(|e| DeviceError::from(e).context(&format!("frontend {key}")))
    }

    /// Reads an optional frontend key.
    pub fn read_frontend_opt(&mut self, key: &str) -> Result<Option<Vec<u8>>, DeviceError> {
        let path = self.frontend_key(key);
        self.xs
            .read_opt(&path)
            .map_err(|e| DeviceError::from(e).context(&format!("frontend {key}")))
    }

    /// Reads a frontend key as a strict unsigned decimal no larger than `max`.
    pub fn read_frontend_uint(&mut self, key: &str, max: u64) -> Result<u64, DeviceError> {
        let raw = self.read_frontend(key)?;
        parse_bounded(key, &raw, max)
    }

    /// Reads an optional frontend key as a strict unsigned decimal no larger than `max`.
    pub fn read_frontend_uint_opt(
        &mut self,
        key: &str,
        max: u64,
    ) -> Result<Option<u64>, DeviceError> {
        match self.read_frontend_opt(key)? {
            Some(raw) => parse_bounded(key, &raw, max).map(Some),
            None => Ok(None),
        }
    }

    /// Reads a backend (toolstack-written) key.
    pub fn read_backend(&mut self, key: &str) -> Result<Vec<u8>, DeviceError> {
        let path = self.backend_key(key);
        self.xs
            .read(&path)
            .map_err(|e| DeviceError::from(e).context(&format!("backend {key}")))
    }

    /// Reads an optional backend key.
    pub fn read_backend_opt(&mut self, key: &str) -> Result<Option<Vec<u8>>, DeviceError> {
        let path = self.backend_key(key);
        self.xs
            .read_opt(&path)
            .map_err(|e| DeviceError::from(e).context(&format!("backend {key}")))
    }

    /// Writes a backend key now (outside the state-switch transaction).
    pub fn write_backend(&mut self, key: &str, value: impl AsRef<[u8]>) -> Result<(), DeviceError> {
        let path = self.backend_key(key);
        self.xs
            .write(&path, value.as_ref())
            .map_err(|e| DeviceError::from(e).context(&format!("backend {key}")))
    }
}

/// Parses an untrusted decimal, naming the key and quoting (a prefix of) the bad value.
pub fn parse_bounded(key: &str, raw: &[u8], max: u64) -> Result<u64, DeviceError> {
    match parse_uint(raw) {
        Some(n) if n <= max => Ok(n),
        Some(n) => Err(DeviceError::protocol(format!("{key} {n} exceeds {max}"))),
        None => Err(DeviceError::protocol(format!(
            "{key} {} is not a decimal",
            quote(raw)
        ))),
    }
}

/// A short printable rendering of untrusted bytes for log lines (at most 32 bytes).
pub fn quote(raw: &[u8]) -> String {
    let shown = &raw[..raw.len().min(32)];
    let mut s = format!("{:?}", String::from_utf8_lossy(shown));
    if raw.len() > shown.len() {
        s.push_str("...");
    }
    s
}
