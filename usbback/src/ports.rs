//! The root ports of one virtual controller and the guest's device addresses.
//!
//! Each port (1..=`num-ports`) may be assigned a host device by path (the toolstack's
//! `port/N`), and has a device when that path is attached and enabled on the controller.
//! The guest addresses devices as xen-hcd does: a fresh (or reset) device answers at address
//! 0 on its port; the guest's `SET_ADDRESS` is answered by the backend ([`Ports::set_address`])
//! and recorded in an address table (guest address → port), as QEMU's `xen-usb.c` does. The
//! controller never sees guest addresses: every request is routed to the port's device
//! ([`Ports::route`]).

use alloc::string::String;
use alloc::vec::Vec;

use crate::host::{HostDeviceId, Speed};

/// Guest addresses 0–127.
pub const ADDRESSES: usize = 128;

/// One root port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Port {
    /// The host device path assigned to this port (`port/N`; empty: none).
    pub assigned: Option<String>,
    /// The enabled device on this port, if any.
    pub device: Option<(HostDeviceId, Speed)>,
    /// A device that was refused for this port (too fast, or it could not be enabled).
    pub refused: Option<HostDeviceId>,
}

/// Why a request cannot be routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// The port is beyond `num-ports`.
    NoSuchPort,
    /// Nothing on the port, or no device has that address there.
    NoDevice,
}

/// The ports of one controller.
#[derive(Clone, Debug)]
pub struct Ports {
    ports: Vec<Port>,
    /// Guest address → port (1-based); address 0 is never stored.
    addr: [u8; ADDRESSES],
}

impl Ports {
    /// `num` empty ports.
    pub fn new(num: u8) -> Self {
        Self {
            ports: (0..num).map(|_| Port::default()).collect(),
            addr: [0; ADDRESSES],
        }
    }

    /// Number of ports.
    pub fn len(&self) -> u8 {
        self.ports.len() as u8
    }

    /// Whether there are no ports (never: `num-ports` ≥ 1).
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// Port `n` (1-based).
    pub fn get(&self, n: u8) -> Option<&Port> {
        self.ports.get(usize::from(n).checked_sub(1)?)
    }

    /// Port `n` (1-based), mutable.
    pub fn get_mut(&mut self, n: u8) -> Option<&mut Port> {
        self.ports.get_mut(usize::from(n).checked_sub(1)?)
    }

    /// Ports as `(number, port)`.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &Port)> {
        self.ports.iter().enumerate().map(|(i, p)| (i as u8 + 1, p))
    }

    /// The port a guest address belongs to.
    pub fn port_of(&self, address: u8) -> Option<u8> {
        match self.addr.get(usize::from(address)) {
            Some(&p) if p != 0 => Some(p),
            _ => None,
        }
    }

    /// The host device a request on `port` to guest address `device` goes to. Address 0
    /// reaches the port's device (before the guest addressed it); any other address must be
    /// one the guest gave the device on that same port.
    pub fn route(&self, port: u8, device: u8) -> Result<HostDeviceId, RouteError> {
        let p = self.get(port).ok_or(RouteError::NoSuchPort)?;
        let (dev, _) = p.device.ok_or(RouteError::NoDevice)?;
        if device != 0 && self.port_of(device) != Some(port) {
            return Err(RouteError::NoDevice);
        }
        Ok(dev)
    }

    /// The guest's `SET_ADDRESS(new)` to address `device` on `port` (already routed):
    /// forgets the port's old address, records `new` (0: none). Returns false if `new` is
    /// out of range or taken by another port's device (the request is refused).
    pub fn set_address(&mut self, port: u8, new: u16) -> bool {
        let Ok(new) = u8::try_from(new) else {
            return false;
        };
        if usize::from(new) >= ADDRESSES {
            return false;
        }
        if new != 0 && self.port_of(new).is_some_and(|p| p != port) {
            return false;
        }
        self.forget_addresses(port);
        if new != 0 {
            self.addr[usize::from(new)] = port;
        }
        true
    }

    /// Drops every address of `port` (its device went, or was reset).
    pub fn forget_addresses(&mut self, port: u8) {
        for a in self.addr.iter_mut() {
            if *a == port {
                *a = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> Ports {
        let mut p = Ports::new(4);
        p.get_mut(1).unwrap().device = Some((10, Speed::High));
        p.get_mut(3).unwrap().device = Some((30, Speed::Full));
        p
    }

    #[test]
    fn address_zero_reaches_the_port_device() {
        let p = ports();
        assert_eq!(p.route(1, 0), Ok(10));
        assert_eq!(p.route(2, 0), Err(RouteError::NoDevice));
        assert_eq!(p.route(5, 0), Err(RouteError::NoSuchPort));
        assert_eq!(p.route(0, 0), Err(RouteError::NoSuchPort));
    }

    #[test]
    fn set_address_routes_by_port() {
        let mut p = ports();
        assert!(p.set_address(1, 5));
        assert!(p.set_address(3, 6));
        assert_eq!(p.route(1, 5), Ok(10));
        assert_eq!(p.route(3, 6), Ok(30));
        // An address of another port does not reach this port's device.
        assert_eq!(p.route(1, 6), Err(RouteError::NoDevice));
        assert_eq!(p.route(1, 7), Err(RouteError::NoDevice));
        // Taken by port 3: refused; re-addressing moves the entry.
        assert!(!p.set_address(1, 6));
        assert!(p.set_address(1, 9));
        assert_eq!(p.route(1, 5), Err(RouteError::NoDevice));
        assert_eq!(p.route(1, 9), Ok(10));
        assert!(!p.set_address(1, 128));
        p.forget_addresses(3);
        assert_eq!(p.route(3, 6), Err(RouteError::NoDevice));
    }
}
