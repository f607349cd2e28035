//! Fuzz target `blkback_request`: see [`xdd_fuzz::blkback_request`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdd_fuzz::blkback_request::run(data));
