//! Fuzz target `xlcfg`: see [`xdd_fuzz::xlcfg`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdd_fuzz::xlcfg::run(data));
