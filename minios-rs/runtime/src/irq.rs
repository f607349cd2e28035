//! Interrupts of a device we own: a pirq (from pcifront's MSI/MSI-X answer, or the INTx the
//! toolstack mapped) bound to an event channel, so it wakes the domain like any event.

use crate::events::Channel;
use xen_abi::XenErrno;

/// One bound pirq.
#[derive(Debug)]
pub struct Pirq {
    channel: Channel,
    pirq: u32,
    needs_eoi: bool,
}

impl Pirq {
    /// Binds `pirq` to a new event channel and asks Xen whether it needs an EOI.
    pub fn bind(pirq: u32) -> Result<Self, XenErrno> {
        let channel = Channel::bind_pirq(pirq)?;
        let needs_eoi = crate::xen::physdev::needs_eoi(pirq)?;
        Ok(Self {
            channel,
            pirq,
            needs_eoi,
        })
    }

    /// The pirq number.
    pub fn pirq(&self) -> u32 {
        self.pirq
    }

    /// Whether Xen wants an EOI after each delivery (level-triggered lines).
    pub fn needs_eoi(&self) -> bool {
        self.needs_eoi
    }

    /// The event channel it arrives on.
    pub fn port(&self) -> xen_abi::EvtchnPort {
        self.channel.port()
    }

    /// Whether it fired since the last call (clears the flag).
    pub fn take(&self) -> bool {
        self.channel.take_pending()
    }

    /// Acknowledges a delivery once the device has been serviced (no-op unless needed).
    pub fn eoi(&self) -> Result<(), XenErrno> {
        if self.needs_eoi {
            crate::xen::physdev::eoi(self.pirq)
        } else {
            Ok(())
        }
    }
}
