//! One start-up and stop for every driver domain.
//!
//! A backend crate's `main.rs` hands the runtime to its library (`netback::netdd::run`,
//! `blkback::blkdd::run`), which calls [`run`] with the backend's start function. The
//! policy is the same for every backend:
//!
//! 1. Log `<name> driver domain starting (cmdline "…")`.
//! 2. Start: parse the options ([`crate::options`]: strict), set up what the backend needs,
//!    spawn its tasks. Anything that cannot work is a [`StartError`]: one line
//!    `<name>: cannot start: <cause>` and the domain crashes, so `xl list` shows it failed at
//!    start rather than serving a configuration nobody asked for.
//! 3. Spawn the [`ShutdownWatch`], write `data/ready` ([`Executor::signal_ready`]).
//! 4. Run until `control/shutdown` (or a task's fatal error), let the backend stop in order
//!    ([`DriverDomain::stop`]), log `<name> stopping (…)`, and return why it stopped.
//!
//! Host tests drive the same path: [`start`] returns the running [`Started`] domain, whose
//! executor the test steps pass by pass, and [`Started::stop`] ends it as [`run`] would.

use alloc::string::{String, ToString};
use core::fmt;

use log::{error, info};

use crate::executor::{Executor, ShutdownWatch, StopReason};
use crate::options::OptionError;
use crate::platform::Platform;
use crate::xenstore::{Xenstore, XsError};

/// Why a driver domain cannot start: one line naming the cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartError(pub String);

impl StartError {
    /// An error with this cause.
    pub fn new(why: impl fmt::Display) -> Self {
        Self(why.to_string())
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<OptionError> for StartError {
    fn from(e: OptionError) -> Self {
        Self::new(e)
    }
}

impl From<XsError> for StartError {
    fn from(e: XsError) -> Self {
        Self::new(e)
    }
}

/// What a backend's start function returns: its running state, told when the loop stopped.
pub trait DriverDomain<P: Platform> {
    /// The loop stopped (`reason`): finish in order (flush, detach). Default: nothing.
    fn stop(&mut self, _exec: &mut Executor<P>, _reason: StopReason) {}
}

/// A driver domain that started: its executor (backend tasks spawned, `data/ready` written)
/// and the backend's state.
pub struct Started<P: Platform, D> {
    /// The log name (`netback`).
    pub name: &'static str,
    /// The loop, with every task spawned.
    pub exec: Executor<P>,
    /// What the backend's start function returned.
    pub domain: D,
}

impl<P: Platform, D: DriverDomain<P>> Started<P, D> {
    /// Runs the loop until a stop is requested, then stops in order.
    pub fn run(mut self) -> StopReason {
        let reason = self.exec.run();
        self.stop(reason)
    }

    /// Stops in order after the loop ended with `reason` (or a test decided to end it):
    /// the backend's [`DriverDomain::stop`], then the log line. Returns `reason`.
    pub fn stop(&mut self, reason: StopReason) -> StopReason {
        self.domain.stop(&mut self.exec, reason);
        info!("{} stopping ({reason:?})", self.name);
        reason
    }
}

/// Steps 1–3 of the start-up (see the module documentation): returns the started domain, or
/// the error it refused to start with (already logged).
pub fn start<P: Platform, D>(
    name: &'static str,
    platform: P,
    xs: Option<Xenstore<P::Xs>>,
    cmdline: &str,
    start: impl FnOnce(&mut Executor<P>, &str) -> Result<D, StartError>,
) -> Result<Started<P, D>, StartError> {
    info!("{name} driver domain starting (cmdline \"{cmdline}\")");
    let result = (|| {
        let xs = xs.ok_or_else(|| StartError::new("no xenstore connection"))?;
        let mut exec = Executor::new(platform, xs);
        let domain = start(&mut exec, cmdline)?;
        exec.spawn(ShutdownWatch::new())
            .map_err(|e| StartError::new(format_args!("watching control/shutdown: {e}")))?;
        exec.signal_ready()
            .map_err(|e| StartError::new(format_args!("writing data/ready: {e}")))?;
        Ok(Started { name, exec, domain })
    })();
    if let Err(e) = &result {
        error!("{name}: cannot start: {e}");
    }
    result
}

/// The whole life of a driver domain: [`start`], the loop, the orderly stop. Returns how
/// the domain should shut down ([`StopReason::Crash`] when it could not start).
pub fn run<P: Platform, D: DriverDomain<P>>(
    name: &'static str,
    platform: P,
    xs: Option<Xenstore<P::Xs>>,
    cmdline: &str,
    start_fn: impl FnOnce(&mut Executor<P>, &str) -> Result<D, StartError>,
) -> StopReason {
    match start(name, platform, xs, cmdline, start_fn) {
        Ok(started) => started.run(),
        Err(_) => StopReason::Crash,
    }
}
