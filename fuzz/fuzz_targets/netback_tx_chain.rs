//! Fuzz target `netback_tx_chain`: see [`xdd_fuzz::netback_tx_chain`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdd_fuzz::netback_tx_chain::run(data));
