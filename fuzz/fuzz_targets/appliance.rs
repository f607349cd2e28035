//! Fuzz target `appliance`: see [`xdd_fuzz::appliance`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdd_fuzz::appliance::run(data));
