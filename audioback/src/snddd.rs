//! Wiring: an audioback driver domain from its command line — the sound device, the mixer
//! and its task, the `vsnd` backend — started and stopped by [`minios::driver_domain`] like
//! every backend. The unikernel's `main` only calls [`run`]; host tests call [`boot`] and
//! step the executor.

use alloc::boxed::Box;
use alloc::rc::Rc;
use core::cell::RefCell;

use log::info;
use minios::driver_domain::{self, DriverDomain, StartError, Started};
use minios::executor::{Executor, StopReason};
use minios::platform::Platform;
use minios::xenbus::Backend;
use minios::xenstore::Xenstore;

use crate::backend::SndDriver;
use crate::config::{Config, DeviceKind};
use crate::device::clock::ClockDevice;
use crate::mixer::{Engine, EngineTask, SharedEngine};

/// The log name.
pub const NAME: &str = "audioback";

/// What the driver domain runs (for tests).
pub struct SndDd<P: Platform> {
    /// The `vsnd` backend.
    pub backend: Rc<RefCell<Backend<P, SndDriver>>>,
    /// The mixer.
    pub engine: SharedEngine,
}

impl<P: Platform + Clone + 'static> DriverDomain<P> for SndDd<P> {
    fn stop(&mut self, _exec: &mut Executor<P>, _reason: StopReason) {}
}

/// The whole life of the driver domain (what `main` calls): start, serve until
/// `control/shutdown`, stop. Returns how the domain should shut down.
pub fn run<P: Platform + Clone + 'static>(
    platform: P,
    xs: Option<Xenstore<P::Xs>>,
    cmdline: &str,
) -> StopReason {
    driver_domain::run(NAME, platform, xs, cmdline, start)
}

/// Starts the driver domain as [`run`] does and returns it running (`data/ready` written),
/// or the one-line reason it refuses to start (already logged).
pub fn boot<P: Platform + Clone + 'static>(
    platform: P,
    xs: Option<Xenstore<P::Xs>>,
    cmdline: &str,
) -> Result<Started<P, SndDd<P>>, StartError> {
    driver_domain::start(NAME, platform, xs, cmdline, start)
}

fn start<P: Platform + Clone + 'static>(
    exec: &mut Executor<P>,
    cmdline: &str,
) -> Result<SndDd<P>, StartError> {
    let config = Config::parse(cmdline).map_err(StartError::new)?;
    let p = config.params;
    let engine = match config.device {
        DeviceKind::Null => Engine::new(
            Box::new(ClockDevice::new(p, config.queue_periods, None)),
            Box::new(ClockDevice::new(p, config.queue_periods, None)),
            config.voices,
        ),
    }
    .shared();
    info!(
        "device: null (plays into nothing), {} Hz, {} channels, period {} frames, {} queued",
        p.rate, p.channels, p.period_frames, config.queue_periods
    );
    exec.spawn(EngineTask(engine.clone()))
        .map_err(|e| StartError::new(format_args!("mixer task: {e}")))?;
    let domid = exec.platform().domid();
    let backend = Backend::new(SndDriver::new(engine.clone(), config.options), domid).shared();
    exec.spawn(backend.clone())
        .map_err(|e| StartError::new(format_args!("watching backend/vsnd: {e}")))?;
    Ok(SndDd { backend, engine })
}
