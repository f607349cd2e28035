//! Which streams a guest's card may open, and at what volume: dom0 (xddctl, from the
//! appliance file) writes `xdd-policy` into the card's backend directory; without it the
//! driver domain's default (`audioback.policy=`) applies.
//!
//! The value is space-separated tokens: `play`, `record`, `volume_mdb=<n>` (milli-dB,
//! [`MIN_MDB`]..=[`MAX_MDB`]), e.g. `play volume_mdb=-6000`; an empty value allows nothing.
//! A value that does not parse allows nothing either (and says why).

use alloc::format;
use alloc::string::String;

use crate::card::Direction;
use crate::mixer::volume::{MAX_MDB, MIN_MDB};

/// The key in a card's backend directory.
pub const POLICY_KEY: &str = "xdd-policy";

/// What a card may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Playback streams may open.
    pub play: bool,
    /// Capture streams may open.
    pub record: bool,
    /// Gain every stream of the card starts with, in milli-dB (the frontend's own volume
    /// requests replace it).
    pub volume_mdb: i32,
}

impl Policy {
    /// Everything allowed at 0 dB (the default default).
    pub const OPEN: Policy = Policy {
        play: true,
        record: true,
        volume_mdb: 0,
    };

    /// Nothing allowed.
    pub const NONE: Policy = Policy {
        play: false,
        record: false,
        volume_mdb: 0,
    };

    /// Parses a key's value.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let mut p = Policy::NONE;
        for token in text.split_ascii_whitespace() {
            match token.split_once('=') {
                None if token == "play" => p.play = true,
                None if token == "record" => p.record = true,
                Some(("volume_mdb", v)) => {
                    p.volume_mdb = v
                        .parse::<i32>()
                        .ok()
                        .filter(|n| (MIN_MDB..=MAX_MDB).contains(n))
                        .ok_or_else(|| {
                            format!("volume_mdb {v:?}: expected {MIN_MDB}..={MAX_MDB}")
                        })?
                }
                _ => return Err(format!("unknown token {token:?}")),
            }
        }
        Ok(p)
    }

    /// Whether a stream of `direction` may open.
    pub fn allows(&self, direction: Direction) -> bool {
        match direction {
            Direction::Playback => self.play,
            Direction::Capture => self.record,
        }
    }
}

impl core::fmt::Display for Policy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let yes = |b: bool| if b { "" } else { "no " };
        let sign = if self.volume_mdb < 0 { "-" } else { "" };
        let mdb = self.volume_mdb.unsigned_abs();
        write!(
            f,
            "{}play, {}record, volume {sign}{}.{:03} dB",
            yes(self.play),
            yes(self.record),
            mdb / 1000,
            mdb % 1000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens_and_refuses_the_rest() {
        assert_eq!(
            Policy::parse("play volume_mdb=-6000"),
            Ok(Policy {
                play: true,
                record: false,
                volume_mdb: -6000
            })
        );
        assert_eq!(Policy::parse(" record  play "), Ok(Policy::OPEN));
        assert_eq!(Policy::parse(""), Ok(Policy::NONE));
        assert!(Policy::parse("play loud").is_err());
        assert!(Policy::parse("volume_mdb=20000").is_err());
        assert!(Policy::parse("volume_mdb=x").is_err());
        assert!(Policy::parse("play=1").is_err());
        assert_eq!(
            format!("{}", Policy::parse("play volume_mdb=-6500").unwrap()),
            "play, no record, volume -6.500 dB"
        );
        assert_eq!(
            format!("{}", Policy::parse("volume_mdb=-500").unwrap()),
            "no play, no record, volume -0.500 dB"
        );
    }
}
