//! Fuzz target `netback_vif`: see [`xdd_fuzz::netback_vif`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdd_fuzz::netback_vif::run(data));
