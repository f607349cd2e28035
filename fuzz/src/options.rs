//! The driver domains' command lines and xenstore's untrusted decimals.
//!
//! The driver domains' command lines and the untrusted decimals of xenstore: the input's
//! first eight bytes are a number, the rest a command line (and a xenstore value).
//!
//! Drives `netback::config::Config::parse` and `blkback::config::Config::parse` over
//! `minios::options`, and `minios::xenstore::parse_uint` / `minios::xenbus::parse_bounded`
//! (every frontend-written number a backend reads goes through them). Asserts: parsing is
//! deterministic, an error names a word of the command line or the options involved,
//! numbers and sizes round-trip through their renderings, and a value is accepted only when
//! it is all digits, at most 20 of them, without overflow.

use crate::input::Input;
use minios::options::{parse_bool, parse_ipv4_prefix, parse_size, Size};
use minios::xenbus::{parse_bounded, quote};
use minios::xenstore::parse_uint;

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let n = u64::from_le_bytes(input.array());
    let raw = input.rest();

    assert_eq!(parse_uint(n.to_string().as_bytes()), Some(n));
    assert_eq!(parse_size(&Size(n).to_string()), Some(n));
    match parse_uint(raw) {
        Some(v) => {
            assert!(!raw.is_empty() && raw.len() <= 20 && raw.iter().all(u8::is_ascii_digit));
            let digits = core::str::from_utf8(raw).expect("ASCII");
            assert_eq!(
                digits.trim_start_matches('0').parse::<u64>().unwrap_or(0),
                v
            );
            assert_eq!(parse_bounded("k", raw, v).ok(), Some(v));
            assert!(v == 0 || parse_bounded("k", raw, v - 1).is_err());
        }
        None => assert!(parse_bounded("k", raw, u64::MAX).is_err()),
    }
    assert!(quote(raw).len() <= 3 * 32 * 4 + 8, "a log line stays short");

    let cmdline = String::from_utf8_lossy(raw);
    let _ = parse_bool(&cmdline);
    if let Some((_, prefix)) = parse_ipv4_prefix(&cmdline) {
        assert!(prefix <= 32);
    }
    let net = netback::config::Config::parse(&cmdline);
    assert_eq!(net, netback::config::Config::parse(&cmdline));
    if let Err(e) = &net {
        assert!(!e.to_string().is_empty());
    }
    let blk = blkback::config::Config::parse(&cmdline);
    assert_eq!(blk, blkback::config::Config::parse(&cmdline));
    if let Err(e) = &blk {
        assert!(!e.to_string().is_empty());
    }
}
