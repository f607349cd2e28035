//! Fuzz target `options`: see [`xdd_fuzz::options`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdd_fuzz::options::run(data));
