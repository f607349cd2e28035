//! Fuzz target `xenstore_client`: see [`xdd_fuzz::xenstore_client`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdd_fuzz::xenstore_client::run(data));
