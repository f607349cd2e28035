//! The driver domain's configuration, from its command line (xl.cfg `cmdline=`).
//!
//! ```text
//! audioback.device=auto        the sound device: `hda` (the Intel HDA controller passed
//!                              through to the domain: an error if there is none), `null`
//!                              (clock-paced, plays into nothing), `auto` (default: `hda`
//!                              when a PCI function was passed through, else `null`)
//! audioback.rate=<hz>          device rate (8000..=192000, default 48000)
//! audioback.channels=<n>       device channels (1..=8, default 2)
//! audioback.period=<frames>    device period (64..=16384, default 1024)
//! audioback.queue=<periods>    periods queued in the device (2..=16, default 4): with the
//!                              period, the bound on mixing latency; the mixer may run
//!                              up to queue - 1 periods late without the card running dry
//! audioback.linger=<ms>       silence played after the last stream stops, before the
//!                              device stops (0..=10000, default 500)
//! audioback.voices=<n>         open streams over all guests (1..=256, default 32)
//! audioback.streams=<n>        streams per card (1..=64, default 16)
//! audioback.buffer=<size>      largest stream buffer (4K..=4M, default 256K)
//! audioback.budget=<n>         requests per stream per pass (1..=1024, default 32)
//! audioback.stats_ms=<n>       per-card counters in xenstore at most every n ms (0 = never,
//!                              default 1000)
//! audioback.policy=<what>      what a card whose backend directory has no `xdd-policy`
//!                              (written by xddctl from the appliance file) may open:
//!                              `play,record` (default), `play`, `record` or `none`
//! ```
//!
//! Every error names the offending option.

use alloc::format;
use alloc::string::String;
use core::fmt;

use minios::options::{options, OptionError};

use crate::backend::Options;
use crate::device::DeviceParams;
use crate::policy::Policy;

/// Which sound device plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// The HDA controller if the domain was given PCI functions, else [`DeviceKind::Null`].
    Auto,
    /// The clock-paced device that plays into nothing.
    Null,
    /// The passed-through Intel HDA controller (required).
    Hda,
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The device.
    pub device: DeviceKind,
    /// Its rate, channels and period.
    pub params: DeviceParams,
    /// Periods queued in the device.
    pub queue_periods: usize,
    /// Mixer voices.
    pub voices: usize,
    /// Silence after the last stream stops, before the device stops (ms).
    pub linger_ms: u64,
    /// Backend limits.
    pub options: Options,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            device: DeviceKind::Auto,
            params: DeviceParams {
                rate: 48_000,
                channels: 2,
                period_frames: 1024,
            },
            queue_periods: 4,
            voices: 32,
            linger_ms: 500,
            options: Options::default(),
        }
    }
}

/// A configuration error, naming the option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl From<OptionError> for ConfigError {
    fn from(e: OptionError) -> Self {
        ConfigError(format!("{e}"))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Config {
    /// Parses the `audioback.*` options of a command line (others are ignored; the first
    /// unknown or invalid `audioback.*` option is the error).
    pub fn parse(cmdline: &str) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        for opt in options(cmdline, "audioback") {
            let o = &mut cfg.options;
            match opt.key {
                "device" => {
                    cfg.device = opt.parse("auto, null or hda", |v| match v {
                        "auto" => Some(DeviceKind::Auto),
                        "null" => Some(DeviceKind::Null),
                        "hda" => Some(DeviceKind::Hda),
                        _ => None,
                    })?
                }
                "rate" => cfg.params.rate = opt.uint(8000, 192_000)? as u32,
                "channels" => cfg.params.channels = opt.uint(1, 8)? as u8,
                "period" => cfg.params.period_frames = opt.uint(64, 16384)? as usize,
                "queue" => cfg.queue_periods = opt.uint(2, 16)? as usize,
                "voices" => cfg.voices = opt.uint(1, 256)? as usize,
                "linger" => cfg.linger_ms = opt.uint(0, 10_000)?,
                "streams" => o.max_streams = opt.uint(1, 64)? as usize,
                "buffer" => {
                    let size = opt.size()?;
                    if !(4096..=4 << 20).contains(&size) {
                        return Err(opt.error("expected a size in 4K..=4M").into());
                    }
                    o.max_buffer = size as u32;
                }
                "budget" => o.budget = opt.uint(1, 1024)? as usize,
                "stats_ms" => o.stats_ms = opt.uint(0, 3_600_000)?,
                "policy" => {
                    o.policy = opt.parse("play,record, play, record or none", |v| {
                        let (play, record) = match v {
                            "play,record" | "record,play" => (true, true),
                            "play" => (true, false),
                            "record" => (false, true),
                            "none" => (false, false),
                            _ => return None,
                        };
                        Some(Policy {
                            play,
                            record,
                            volume_mdb: 0,
                        })
                    })?
                }
                _ => return Err(opt.unknown().into()),
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_the_bad_option() {
        let c = Config::parse("console=hvc0 audioback.rate=44100 audioback.buffer=64K").unwrap();
        assert_eq!(c.params.rate, 44100);
        assert_eq!(c.options.max_buffer, 65536);
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert_eq!(
            Config::parse("audioback.device=hda").unwrap().device,
            DeviceKind::Hda
        );
        assert_eq!(c.options.policy, Policy::OPEN);
        assert_eq!(
            Config::parse("audioback.policy=none")
                .unwrap()
                .options
                .policy,
            Policy::NONE
        );
        let play = Config::parse("audioback.policy=play")
            .unwrap()
            .options
            .policy;
        assert!(play.play && !play.record);
        for (line, want) in [
            (
                "audioback.policy=all",
                "audioback.policy=all: expected play,record, play, record or none",
            ),
            (
                "audioback.rate=7",
                "audioback.rate=7: expected a number in 8000..=192000",
            ),
            (
                "audioback.device=virtio",
                "audioback.device=virtio: expected auto, null or hda",
            ),
            (
                "audioback.buffer=1G",
                "audioback.buffer=1G: expected a size in 4K..=4M",
            ),
            ("audioback.volume=3", "audioback.volume=3: unknown option"),
        ] {
            assert_eq!(Config::parse(line).unwrap_err().0, want);
        }
    }
}
