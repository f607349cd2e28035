//! What a backend implements: the driver ([`BackendDriver`], one per device type) and its
//! devices ([`BackendDevice`], the hooks the state machine calls).

use super::super::{DeviceCtx, DeviceError};
use crate::platform::Platform;

/// The backend-specific part of one device.
///
/// Hooks are called in this order: `features` once after probe (and not again on
/// reconnect), then any number of `connect` … `disconnect` rounds, with `poll` between them.
/// `disconnect` must be idempotent and must also clean up after a `connect` that failed
/// half-way: the framework calls it after every failure. Release grant mappings and event
/// channels by dropping them.
pub trait BackendDevice<P: Platform> {
    /// Publishes the features (`ctx.publish("feature-sg", "1")`); they are written with the
    /// switch to InitWait in one transaction.
    fn features(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<(), DeviceError>;

    /// The frontend is Initialised or Connected: read its ring references and event
    /// channels (untrusted), map and bind them. Keys published here are written with the
    /// switch to Connected.
    fn connect(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<(), DeviceError>;

    /// Drops rings, mappings and channels.
    fn disconnect(&mut self, ctx: &mut DeviceCtx<'_, P>);

    /// Called on every pass while connected: check the event channel (`take_pending`), do a
    /// bounded amount of ring work, ask for a wakeup if more is left. An error fails the
    /// device.
    fn poll(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<(), DeviceError>;

    /// The device is about to be dropped (its backend directory removed, by us or the
    /// toolstack, or replaced by a new instance), after its disconnect: remove what it wrote
    /// outside its backend directory, such as its counters in the data area
    /// ([`crate::data_area::CounterPublisher::remove`]). Default: nothing.
    fn removed(&mut self, _ctx: &mut DeviceCtx<'_, P>) {}

    /// A key in our backend directory changed (toolstack hotplug such as PVUSB `port/N`;
    /// our own writes show up here too). Default: ignore.
    fn backend_changed(
        &mut self,
        _ctx: &mut DeviceCtx<'_, P>,
        _key: &str,
    ) -> Result<(), DeviceError> {
        Ok(())
    }

    /// A frontend key other than `state` changed (untrusted; may fire at any rate, bounded
    /// by the watch queue). Default: ignore.
    fn frontend_changed(
        &mut self,
        _ctx: &mut DeviceCtx<'_, P>,
        _key: &str,
    ) -> Result<(), DeviceError> {
        Ok(())
    }
}

/// Creates devices of one type.
pub trait BackendDriver<P: Platform> {
    /// The device type.
    type Device: BackendDevice<P>;

    /// Backend type, the directory name under `backend/` (`vif`, `vbd`, `vusb`, `vsnd`).
    fn kind(&self) -> &str;

    /// Creates the device for a new backend directory; read the toolstack's configuration
    /// keys (`ctx.read_backend("params")`) here.
    fn probe(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<Self::Device, DeviceError>;
}
