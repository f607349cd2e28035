//! Fuzz target `xenbus_frontend`: see [`xdd_fuzz::xenbus_frontend`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdd_fuzz::xenbus_frontend::run(data));
