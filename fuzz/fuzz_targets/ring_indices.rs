//! Fuzz target `ring_indices`: see [`xdd_fuzz::ring_indices`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdd_fuzz::ring_indices::run(data));
