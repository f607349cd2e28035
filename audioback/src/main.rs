//! The audioback driver domain (unikernel main): hands the runtime to
//! [`audioback::snddd::run`] — configuration, device, mixer, backend and the loop are the
//! library's, tested on the host — and shuts the domain down as it says.
#![no_std]
#![no_main]

use minios_rt::Runtime;

minios_rt::entry!(main);

fn main(rt: Runtime) {
    let reason = audioback::snddd::run(rt, rt.take_xenstore(), rt.cmdline());
    rt.shutdown(reason.into());
}
