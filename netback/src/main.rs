//! The netback driver domain (unikernel main).
#![no_std]
#![no_main]

minios_rt::entry!(main);

fn main(_rt: minios_rt::Runtime) {}
