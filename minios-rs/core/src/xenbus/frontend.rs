//! The frontend side of the handshake, for driver domains that consume devices themselves
//! (a netfront uplink, a blkfront backing disk).
//!
//! The frontend code allocates and grants its ring pages and event channels through the
//! [`Platform`]; this helper does the xenstore part:
//!
//! ```text
//! let fe = Frontend::open(&mut xs, my_domid, "vif", 0)?;
//! fe.wait_backend(&platform, &mut xs, &[InitWait, Connected], deadline)?;   // features are up
//! let sg = fe.read_backend_uint(&mut xs, "feature-sg", 1)?;                  // optional keys
//! fe.publish(&mut xs, &[("tx-ring-ref", ...), ("event-channel", ...)], Connected)?;
//! fe.wait_backend(&platform, &mut xs, &[Connected], deadline)?;
//! ...
//! fe.close(&platform, &mut xs, deadline)?;
//! ```

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use log::info;
use xen_abi::xs_wire::validate_path;

use super::{quote, XenbusState};
use crate::platform::{DomId, Platform, XsTransport};
use crate::xenstore::{parse_uint, Store, Xenstore, XsError};

/// A frontend operation that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrontendError {
    /// Xenstore failed.
    Xs(XsError),
    /// The toolstack-written `backend` / `backend-id` keys are missing or inconsistent.
    BadConfig(String),
    /// The backend wrote something that is not a xenbus state or an expected value.
    BadBackend(String),
    /// The backend did not reach an accepted state before the deadline.
    Timeout {
        /// The backend's state at the deadline.
        state: XenbusState,
    },
}

impl fmt::Display for FrontendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrontendError::Xs(e) => write!(f, "{e}"),
            FrontendError::BadConfig(s) => write!(f, "bad device configuration: {s}"),
            FrontendError::BadBackend(s) => write!(f, "bad backend: {s}"),
            FrontendError::Timeout { state } => {
                write!(f, "backend still {} at the deadline", state.name())
            }
        }
    }
}

impl From<XsError> for FrontendError {
    fn from(e: XsError) -> Self {
        FrontendError::Xs(e)
    }
}

/// One of our frontend devices: `/local/domain/<own>/device/<kind>/<devid>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontend {
    /// Device type (`vif`, `vbd`).
    pub kind: String,
    /// Device id.
    pub devid: u32,
    /// Our directory.
    pub path: String,
    /// The backend's directory (from our `backend` key).
    pub backend_path: String,
    /// The backend domain (from our `backend-id` key).
    pub backend_id: DomId,
}

impl Frontend {
    /// The device ids of our frontends of `kind`.
    pub fn list<S: Store + ?Sized>(
        xs: &mut S,
        own: DomId,
        kind: &str,
    ) -> Result<Vec<u32>, XsError> {
        let dir = format!("/local/domain/{own}/device/{kind}");
        let names = xs.directory_opt(&dir)?;
        Ok(names
            .iter()
            .filter_map(|n| parse_uint(n.as_bytes()).and_then(|v| u32::try_from(v).ok()))
            .collect())
    }

    /// Reads the device's toolstack configuration (`backend`, `backend-id`).
    pub fn open<S: Store + ?Sized>(
        xs: &mut S,
        own: DomId,
        kind: &str,
        devid: u32,
    ) -> Result<Self, FrontendError> {
        let path = format!("/local/domain/{own}/device/{kind}/{devid}");
        let backend_path = xs.read_string(&format!("{path}/backend"))?;
        let raw_id = xs.read(&format!("{path}/backend-id"))?;
        let backend_id = parse_uint(&raw_id)
            .and_then(|v| DomId::try_from(v).ok())
            .ok_or_else(|| FrontendError::BadConfig(format!("backend-id {}", quote(&raw_id))))?;
        let home = format!("/local/domain/{backend_id}/backend/");
        if validate_path(&backend_path).is_err() || !backend_path.starts_with(&home) {
            let why = format!("backend {backend_path:?} is not in domain {backend_id}");
            return Err(FrontendError::BadConfig(why));
        }
        Ok(Self {
            kind: kind.into(),
            devid,
            path,
            backend_path,
            backend_id,
        })
    }

    /// Absolute path of one of our keys.
    pub fn key(&self, key: &str) -> String {
        format!("{}/{key}", self.path)
    }

    /// Absolute path of a backend key.
    pub fn backend_key(&self, key: &str) -> String {
        format!("{}/{key}", self.backend_path)
    }

    /// The backend's state (`Unknown` if its node is missing).
    pub fn backend_state<S: Store + ?Sized>(
        &self,
        xs: &mut S,
    ) -> Result<XenbusState, FrontendError> {
        match xs.read_opt(&self.backend_key("state"))? {
            None => Ok(XenbusState::Unknown),
            Some(raw) => XenbusState::parse(&raw)
                .map_err(|e| FrontendError::BadBackend(format!("state {}: {e}", quote(&raw)))),
        }
    }

    /// Reads an optional backend key as an unsigned decimal no larger than `max`
    /// (`None` if absent, as for an unadvertised feature).
    pub fn read_backend_uint<S: Store + ?Sized>(
        &self,
        xs: &mut S,
        key: &str,
        max: u64,
    ) -> Result<Option<u64>, FrontendError> {
        match xs.read_opt(&self.backend_key(key))? {
            None => Ok(None),
            Some(raw) => match parse_uint(&raw) {
                Some(v) if v <= max => Ok(Some(v)),
                _ => Err(FrontendError::BadBackend(format!("{key} {}", quote(&raw)))),
            },
        }
    }

    /// Writes our state.
    pub fn set_state<S: Store + ?Sized>(
        &self,
        xs: &mut S,
        state: XenbusState,
    ) -> Result<(), XsError> {
        xs.write(&self.key("state"), state.as_str().as_bytes())?;
        info!("{} {}: frontend -> {}", self.kind, self.devid, state.name());
        Ok(())
    }

    /// Writes `keys` (relative to our directory) and `state` in one transaction.
    pub fn publish<T: XsTransport>(
        &self,
        xs: &mut Xenstore<T>,
        keys: &[(&str, &[u8])],
        state: XenbusState,
    ) -> Result<(), XsError> {
        xs.transaction(|tx| {
            for (k, v) in keys {
                tx.write(&self.key(k), v)?;
            }
            tx.write(&self.key("state"), state.as_str().as_bytes())
        })?;
        info!(
            "{} {}: frontend published, -> {}",
            self.kind,
            self.devid,
            state.name()
        );
        Ok(())
    }

    /// Blocks (in [`Platform::wait`]) until the backend's state is one of `accept`, or
    /// `deadline_ns` passes. Uses a watch of its own; other watches' events stay queued.
    pub fn wait_backend<P: Platform>(
        &self,
        platform: &P,
        xs: &mut Xenstore<P::Xs>,
        accept: &[XenbusState],
        deadline_ns: u64,
    ) -> Result<XenbusState, FrontendError> {
        let token = format!("frontend-wait/{}/{}", self.kind, self.devid);
        xs.watch(&self.backend_key("state"), &token)?;
        let result = loop {
            let state = match self.backend_state(xs) {
                Ok(s) => s,
                Err(e) => break Err(e),
            };
            if accept.contains(&state) {
                break Ok(state);
            }
            if platform.now_ns() >= deadline_ns {
                break Err(FrontendError::Timeout { state });
            }
            platform.wait(Some(deadline_ns));
            if let Err(e) = xs.poll() {
                break Err(e.into());
            }
        };
        // Also drops this watch's queued events.
        let _ = xs.unwatch(&token);
        result
    }

    /// Closes the device: Closing, wait for the backend to close (until the deadline), Closed.
    pub fn close<P: Platform>(
        &self,
        platform: &P,
        xs: &mut Xenstore<P::Xs>,
        deadline_ns: u64,
    ) -> Result<(), FrontendError> {
        use XenbusState::*;
        self.set_state(xs, Closing)?;
        let waited = self.wait_backend(platform, xs, &[Closing, Closed, Unknown], deadline_ns);
        self.set_state(xs, Closed)?;
        waited.map(|_| ())
    }
}
