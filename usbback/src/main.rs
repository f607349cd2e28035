//! The usbback driver domain (unikernel main): hands the runtime to
//! [`usbback::usbdd::run`] and shuts the domain down as it says.
//!
//! There is no host controller driver yet (the xHCI driver is the next step, see the
//! README), so the domain refuses to start with one line saying so.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use minios_rt::Runtime;

minios_rt::entry!(main);

fn main(rt: Runtime) {
    let no_controller = alloc::boxed::Box::new(|_: &Runtime| {
        Err(String::from(
            "no host controller driver yet (the xHCI driver is planned, see usbback/README.md)",
        ))
    });
    let reason = usbback::usbdd::run(rt, rt.take_xenstore(), rt.cmdline(), no_controller);
    rt.shutdown(reason.into());
}
