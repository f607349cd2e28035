//! Fuzz target `netback_frame`: see [`xdd_fuzz::netback_frame`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdd_fuzz::netback_frame::run(data));
