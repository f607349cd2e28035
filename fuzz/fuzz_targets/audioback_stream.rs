//! Fuzz target `audioback_stream`: see [`xdd_fuzz::audioback_stream`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdd_fuzz::audioback_stream::run(data));
