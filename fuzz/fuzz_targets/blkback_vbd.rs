//! Fuzz target `blkback_vbd`: see [`xdd_fuzz::blkback_vbd`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdd_fuzz::blkback_vbd::run(data));
