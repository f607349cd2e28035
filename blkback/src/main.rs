//! The blkback driver domain (unikernel main): hands the runtime to
//! [`blkback::blkdd::run`] — configuration, stores, backend, the loop and the final flush
//! are the library's, tested on the host — and shuts the domain down as it says.
#![no_std]
#![no_main]

use minios_rt::Runtime;

minios_rt::entry!(main);

fn main(rt: Runtime) {
    let reason = blkback::blkdd::run(rt, rt.take_xenstore(), rt.cmdline());
    rt.shutdown(reason.into());
}
