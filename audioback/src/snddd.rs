//! Wiring: an audioback driver domain from its command line — the sound device, the mixer
//! and its task, the `vsnd` backend — started and stopped by [`minios::driver_domain`] like
//! every backend. The unikernel's `main` calls [`run_with_device`] with its opener of the
//! passed-through sound card (platform-specific); host tests call [`boot`] and step the
//! executor.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
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
use crate::device::{DeviceParams, PcmSink, PcmSource};
use crate::mixer::{Engine, EngineTask, SharedEngine};
use crate::status::EngineStatus;

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

/// A passed-through sound card: its playback device, and its capture device if it has one.
pub struct Card {
    /// Playback.
    pub sink: Box<dyn PcmSink>,
    /// Capture (`None`: recording guests get silence from the null device).
    pub source: Option<Box<dyn PcmSource>>,
}

/// Opens the passed-through sound card at `params` with `queue` periods in flight:
/// `Ok(None)` when the domain was given no PCI function at all, an error (one line) when it
/// was and none can play.
pub type OpenDevice<P> =
    dyn FnOnce(&mut Executor<P>, DeviceParams, usize) -> Result<Option<Card>, String>;

/// The whole life of a driver domain without device drivers: start, serve until
/// `control/shutdown`, stop. Returns how the domain should shut down.
pub fn run<P: Platform + Clone + 'static>(
    platform: P,
    xs: Option<Xenstore<P::Xs>>,
    cmdline: &str,
) -> StopReason {
    run_with_device(platform, xs, cmdline, Box::new(no_device))
}

/// [`run`] for a driver domain that may own a sound card: `open` opens it (what `main`
/// calls).
pub fn run_with_device<P: Platform + Clone + 'static>(
    platform: P,
    xs: Option<Xenstore<P::Xs>>,
    cmdline: &str,
    open: Box<OpenDevice<P>>,
) -> StopReason {
    driver_domain::run(NAME, platform, xs, cmdline, |e, c| start(e, c, open))
}

fn no_device<P: Platform>(
    _: &mut Executor<P>,
    _: DeviceParams,
    _: usize,
) -> Result<Option<Card>, String> {
    Ok(None)
}

/// Starts the driver domain as [`run`] does and returns it running (`data/ready` written),
/// or the one-line reason it refuses to start (already logged).
pub fn boot<P: Platform + Clone + 'static>(
    platform: P,
    xs: Option<Xenstore<P::Xs>>,
    cmdline: &str,
) -> Result<Started<P, SndDd<P>>, StartError> {
    boot_with_device(platform, xs, cmdline, Box::new(no_device))
}

/// [`boot`] with a device opener.
pub fn boot_with_device<P: Platform + Clone + 'static>(
    platform: P,
    xs: Option<Xenstore<P::Xs>>,
    cmdline: &str,
    open: Box<OpenDevice<P>>,
) -> Result<Started<P, SndDd<P>>, StartError> {
    driver_domain::start(NAME, platform, xs, cmdline, |e, c| start(e, c, open))
}

fn start<P: Platform + Clone + 'static>(
    exec: &mut Executor<P>,
    cmdline: &str,
    open: Box<OpenDevice<P>>,
) -> Result<SndDd<P>, StartError> {
    let config = Config::parse(cmdline).map_err(StartError::new)?;
    let p = config.params;
    let q = config.queue_periods;
    let card = match config.device {
        DeviceKind::Null => None,
        DeviceKind::Auto | DeviceKind::Hda => {
            let opened =
                open(exec, p, q).map_err(|e| StartError::new(format_args!("sound device: {e}")))?;
            if opened.is_none() && config.device == DeviceKind::Hda {
                return Err(StartError::new(
                    "audioback.device=hda: no PCI function was passed through to this domain",
                ));
            }
            opened
        }
    };
    let what = match &card {
        Some(Card {
            source: Some(_), ..
        }) => "hda (the passed-through card; capture: hda)",
        Some(_) => "hda (the passed-through card; capture: null)",
        None => "null (plays into nothing)",
    };
    let (sink, source): (Box<dyn PcmSink>, Box<dyn PcmSource>) = match card {
        Some(Card { sink, source }) => (
            sink,
            source.unwrap_or_else(|| Box::new(ClockDevice::new(p, q, None))),
        ),
        None => (
            Box::new(ClockDevice::new(p, q, None)),
            Box::new(ClockDevice::new(p, q, None)),
        ),
    };
    let engine = Engine::new(sink, source, config.voices)
        .with_linger(config.linger_ms * 1_000_000)
        .shared();
    info!(
        "device: {what}, {} Hz, {} channels, period {} frames, {} queued",
        p.rate, p.channels, p.period_frames, q
    );
    let hook = crate::mixer::wait_hook(engine.clone(), exec.platform().clone());
    exec.xenstore().set_wait_hook(hook);
    exec.spawn(EngineTask::new(engine.clone()))
        .map_err(|e| StartError::new(format_args!("mixer task: {e}")))?;
    exec.spawn(EngineStatus::new(engine.clone(), config.options.stats_ms))
        .map_err(|e| StartError::new(format_args!("status task: {e}")))?;
    let domid = exec.platform().domid();
    let backend = Backend::new(SndDriver::new(engine.clone(), config.options), domid).shared();
    exec.spawn(backend.clone())
        .map_err(|e| StartError::new(format_args!("watching backend/vsnd: {e}")))?;
    Ok(SndDd { backend, engine })
}
