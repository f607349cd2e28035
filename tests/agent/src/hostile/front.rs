//! The xenbus side of a userspace frontend: its device directory, the backend's state, and
//! the reset/connect/close dance.

use crate::xendev::{Evtchn, Gntalloc};
use std::time::{Duration, Instant};
use xdd_control::xenstore::Xenstore;

/// xenbus states.
pub const INITIALISING: u32 = 1;
/// InitWait.
pub const INIT_WAIT: u32 = 2;
/// Connected.
pub const CONNECTED: u32 = 4;
/// Closing.
pub const CLOSING: u32 = 5;
/// Closed.
pub const CLOSED: u32 = 6;

/// How long a backend state must hold before a reset takes it as the answer.
pub const SETTLE: Duration = Duration::from_millis(200);

/// One frontend device of this domain, driven by hand.
pub struct Front {
    /// Our xenstore connection.
    pub xs: Xenstore,
    /// `/local/domain/<self>/device/<type>/<dev>`.
    pub dir: String,
    /// The backend's directory.
    pub be: String,
    /// The backend's domain.
    pub be_id: u16,
    /// Granted pages.
    pub gnt: Gntalloc,
    /// Event channels.
    pub evt: Evtchn,
}

impl Front {
    /// Opens device `dev` of `kind` (`vif`, `vbd`).
    pub fn open(kind: &str, dev: u32) -> Result<Self, String> {
        let mut xs = Xenstore::open()?;
        let me = xs.read("domid")?;
        let dir = format!("/local/domain/{me}/device/{kind}/{dev}");
        let be = xs
            .read(&format!("{dir}/backend"))
            .map_err(|e| format!("{dir}/backend: {e} (no such device?)"))?;
        let be_id = xs
            .read(&format!("{dir}/backend-id"))?
            .parse::<u16>()
            .map_err(|e| format!("backend-id: {e}"))?;
        Ok(Self {
            xs,
            dir,
            be,
            be_id,
            gnt: Gntalloc::open()?,
            evt: Evtchn::open()?,
        })
    }

    /// Writes one of our keys.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let p = format!("{}/{key}", self.dir);
        self.xs.write(&p, value).map_err(|e| format!("{p}: {e}"))
    }

    /// Removes one of our keys (absent is fine).
    pub fn unset(&mut self, key: &str) {
        let _ = self.xs.rm(&format!("{}/{key}", self.dir));
    }

    /// Reads a key of the backend.
    pub fn be_key(&mut self, key: &str) -> Option<String> {
        self.xs.read(&format!("{}/{key}", self.be)).ok()
    }

    /// The backend's state (0 when unreadable).
    pub fn be_state(&mut self) -> u32 {
        self.be_key("state")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Waits until the backend's state is one of `want`; returns it, or the last state seen
    /// when `secs` pass first.
    pub fn wait_be(&mut self, want: &[u32], secs: f64) -> Result<u32, u32> {
        let end = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            let s = self.be_state();
            if want.contains(&s) {
                return Ok(s);
            }
            if Instant::now() > end {
                return Err(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Brings the device back to a fresh start: frontend Closed until the backend is
    /// Closed, then Initialising until it waits in InitWait again, as a frontend that
    /// follows the protocol does. `stale` keys (from an earlier run) are removed first.
    ///
    /// Never skipped, and each state must hold for [`SETTLE`]: after an attack (a state
    /// flood) the backend still works through what it read earlier, and a state it passes
    /// through on the way (an InitWait it left a moment later) is not an answer to ours.
    pub fn reset(&mut self, stale: &[&str]) -> Result<(), String> {
        for k in stale {
            self.unset(k);
        }
        self.set("state", &CLOSED.to_string())?;
        self.wait_be_settled(CLOSED, 15.0)
            .map_err(|s| format!("backend stuck in state {s} after frontend Closed"))?;
        self.set("state", &INITIALISING.to_string())?;
        self.wait_be_settled(INIT_WAIT, 15.0)
            .map_err(|s| format!("backend in state {s}, not InitWait, after a reset"))?;
        Ok(())
    }

    /// Waits until the backend's state is `want` and stays so for [`SETTLE`]; returns the
    /// last state seen when `secs` pass first.
    pub fn wait_be_settled(&mut self, want: u32, secs: f64) -> Result<(), u32> {
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let mut since: Option<Instant> = None;
        loop {
            let s = self.be_state();
            if s == want {
                let t = *since.get_or_insert_with(Instant::now);
                if t.elapsed() >= SETTLE {
                    return Ok(());
                }
            } else {
                since = None;
            }
            if Instant::now() > end {
                return Err(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Closes the device (frontend Closed) and waits for the backend to follow, so no
    /// grant of ours stays mapped when the process exits.
    pub fn close(&mut self) {
        let _ = self.set("state", &CLOSED.to_string());
        let _ = self.wait_be(&[CLOSED, INIT_WAIT], 10.0);
    }
}
