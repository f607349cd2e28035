//! Fuzz target `usbback_vusb`: see [`xdd_fuzz::usbback_vusb`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdd_fuzz::usbback_vusb::run(data));
