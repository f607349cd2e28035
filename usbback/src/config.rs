//! The driver domain's configuration, from its command line (xl.cfg `cmdline=`).
//!
//! ```text
//! usbback.budget=<n>      URB requests per controller per pass (1..=256, default 16)
//! usbback.stats_ms=<n>    per-controller counters in xenstore at most every n ms (0 = never,
//!                         default 1000; the same option as netback's and blkback's)
//! ```
//!
//! Which host device goes to which guest port is not configured here: the control plane
//! writes it to each controller's `port/N` (see the README). Every error names the
//! offending option.

use minios::options::{options, OptionError};

use crate::vusb::Options;

/// The whole configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Backend limits.
    pub options: Options,
}

impl Config {
    /// Parses the `usbback.*` options of a command line (other options are ignored; the
    /// first unknown or invalid `usbback.` option is the error).
    pub fn parse(cmdline: &str) -> Result<Config, OptionError> {
        let mut cfg = Config::default();
        for opt in options(cmdline, "usbback") {
            match opt.key {
                "budget" => cfg.options.budget = opt.uint(1, 256)? as usize,
                "stats_ms" => cfg.options.stats_ms = opt.uint(0, 3_600_000)?,
                _ => return Err(opt.unknown()),
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn parses_and_names_bad_options() {
        let c = Config::parse("console=hvc0 usbback.budget=4 usbback.stats_ms=0").unwrap();
        assert_eq!((c.options.budget, c.options.stats_ms), (4, 0));
        assert_eq!(Config::parse("").unwrap(), Config::default());
        let e = Config::parse("usbback.budget=0").unwrap_err().to_string();
        assert_eq!(e, "usbback.budget=0: expected a number in 1..=256");
        let e = Config::parse("usbback.ports=3").unwrap_err().to_string();
        assert_eq!(e, "usbback.ports=3: unknown option");
    }
}
