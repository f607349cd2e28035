//! Wiring: a usbback driver domain from its command line and a host controller — the
//! shared [`Hub`] over the controller, the `vusb` backend spawned — started and stopped by
//! [`minios::driver_domain`] like every backend. The unikernel's `main` calls [`run`] with
//! its controller; host tests call [`boot`] with a fake one and step the executor.
//!
//! A configuration that cannot work, or no controller, is refused at start with one line.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
use core::cell::RefCell;

use minios::driver_domain::{self, DriverDomain, StartError, Started};
use minios::executor::{Executor, StopReason};
use minios::platform::Platform;
use minios::xenbus::Backend;
use minios::xenstore::Xenstore;

use crate::config::Config;
use crate::host::UsbHost;
use crate::hub::{Hub, HubTask, SharedHub};
use crate::vusb::UsbDriver;

/// The log name.
pub const NAME: &str = "usbback";

/// What the driver domain runs (for tests).
pub struct UsbDd<P: Platform> {
    /// The `vusb` backend.
    pub backend: Rc<RefCell<Backend<P, UsbDriver>>>,
    /// The controller, shared by every virtual controller.
    pub hub: SharedHub,
}

impl<P: Platform + Clone + 'static> DriverDomain<P> for UsbDd<P> {
    fn stop(&mut self, _exec: &mut Executor<P>, _reason: StopReason) {
        self.hub.borrow_mut().stop();
    }
}

/// Finds the USB host controller the domain owns (the unikernel: on its PCI devices, with
/// the executor for pcifront's xenstore handshake and its task).
pub type HostSource<'a, P> = dyn FnOnce(&mut Executor<P>) -> Result<Box<dyn UsbHost>, String> + 'a;

/// The whole life of the driver domain (what `main` calls): start, serve until
/// `control/shutdown`, stop. Returns how the domain should shut down.
pub fn run<P: Platform + Clone + 'static>(
    platform: P,
    xs: Option<Xenstore<P::Xs>>,
    cmdline: &str,
    host: Box<HostSource<'_, P>>,
) -> StopReason {
    driver_domain::run(NAME, platform, xs, cmdline, |exec, cmdline| {
        start(exec, cmdline, host)
    })
}

/// Starts the driver domain as [`run`] does and returns it running (`data/ready` written),
/// or the one-line reason it refuses to start (already logged).
pub fn boot<P: Platform + Clone + 'static>(
    platform: P,
    xs: Option<Xenstore<P::Xs>>,
    cmdline: &str,
    host: Box<HostSource<'_, P>>,
) -> Result<Started<P, UsbDd<P>>, StartError> {
    driver_domain::start(NAME, platform, xs, cmdline, |exec, cmdline| {
        start(exec, cmdline, host)
    })
}

fn start<P: Platform + Clone + 'static>(
    exec: &mut Executor<P>,
    cmdline: &str,
    host: Box<HostSource<'_, P>>,
) -> Result<UsbDd<P>, StartError> {
    let config = Config::parse(cmdline)?;
    let host = host(exec).map_err(|e| StartError::new(format_args!("USB host controller: {e}")))?;
    let hub = Hub::new(host).shared();
    exec.spawn(HubTask(hub.clone()))
        .map_err(|e| StartError::new(format_args!("USB host controller task: {e}")))?;
    let domid = exec.platform().domid();
    let backend = Backend::new(UsbDriver::new(hub.clone(), config.options), domid).shared();
    exec.spawn(backend.clone())
        .map_err(|e| StartError::new(format_args!("watching backend/vusb: {e}")))?;
    Ok(UsbDd { backend, hub })
}
