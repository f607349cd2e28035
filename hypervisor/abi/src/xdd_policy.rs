//! `xdd-policy`: xdd's own key in a PV sound card's backend directory (not part of Xen's
//! sndif). dom0's control plane (xddctl, from the appliance file) writes it; the sound
//! driver domain (audioback) reads it when a guest opens a stream. One definition of the
//! format for both sides.
//!
//! The value is space-separated tokens: `play`, `record`, `volume_mdb=<n>` (milli-dB,
//! [`MIN_MDB`]..=[`MAX_MDB`]; left out at 0 dB), e.g. `play volume_mdb=-6000`. An empty
//! value allows nothing.

use core::fmt;

/// The key in a card's backend directory.
pub const POLICY_KEY: &str = "xdd-policy";
/// Lowest volume, in milli-dB (silence).
pub const MIN_MDB: i32 = -100_000;
/// Highest volume, in milli-dB.
pub const MAX_MDB: i32 = 12_000;

/// What a guest's card may do, and the volume its streams start at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoundPolicy {
    /// Playback streams may open.
    pub play: bool,
    /// Capture streams may open.
    pub record: bool,
    /// Gain every stream of the card starts with, in milli-dB ([`MIN_MDB`]..=[`MAX_MDB`];
    /// the frontend's own volume requests replace it).
    pub volume_mdb: i32,
}

/// Why a value does not parse (borrowing the offending token).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyError<'a> {
    /// A token that is none of `play`, `record`, `volume_mdb=<n>`.
    UnknownToken(&'a str),
    /// A `volume_mdb` that is not a number within [`MIN_MDB`]..=[`MAX_MDB`].
    BadVolume(&'a str),
}

impl fmt::Display for PolicyError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::UnknownToken(t) => write!(f, "unknown token {t:?}"),
            PolicyError::BadVolume(v) => {
                write!(f, "volume_mdb {v:?}: expected {MIN_MDB}..={MAX_MDB}")
            }
        }
    }
}

impl SoundPolicy {
    /// Everything allowed at 0 dB.
    pub const OPEN: SoundPolicy = SoundPolicy {
        play: true,
        record: true,
        volume_mdb: 0,
    };

    /// Nothing allowed.
    pub const NONE: SoundPolicy = SoundPolicy {
        play: false,
        record: false,
        volume_mdb: 0,
    };

    /// Parses a key's value.
    pub fn parse(text: &str) -> Result<SoundPolicy, PolicyError<'_>> {
        let mut p = SoundPolicy::NONE;
        for token in text.split_ascii_whitespace() {
            match token.split_once('=') {
                None if token == "play" => p.play = true,
                None if token == "record" => p.record = true,
                Some(("volume_mdb", v)) => {
                    p.volume_mdb = v
                        .parse::<i32>()
                        .ok()
                        .filter(|n| (MIN_MDB..=MAX_MDB).contains(n))
                        .ok_or(PolicyError::BadVolume(v))?
                }
                _ => return Err(PolicyError::UnknownToken(token)),
            }
        }
        Ok(p)
    }

    /// The key's value, as [`SoundPolicy::parse`] reads it back.
    pub fn value(&self) -> PolicyValue {
        PolicyValue(*self)
    }
}

/// A policy formatted as the key's value (see [`SoundPolicy::value`]).
#[derive(Clone, Copy, Debug)]
pub struct PolicyValue(SoundPolicy);

impl fmt::Display for PolicyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.0;
        let mut sep = "";
        for (on, token) in [(p.play, "play"), (p.record, "record")] {
            if on {
                write!(f, "{sep}{token}")?;
                sep = " ";
            }
        }
        if p.volume_mdb != 0 {
            write!(f, "{sep}volume_mdb={}", p.volume_mdb)?;
        }
        Ok(())
    }
}

/// For logs: `play, no record, volume -6.000 dB`.
impl fmt::Display for SoundPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
    use std::format;

    fn p(play: bool, record: bool, volume_mdb: i32) -> SoundPolicy {
        SoundPolicy {
            play,
            record,
            volume_mdb,
        }
    }

    #[test]
    fn parses_tokens_and_refuses_the_rest() {
        assert_eq!(
            SoundPolicy::parse("play volume_mdb=-6000"),
            Ok(p(true, false, -6000))
        );
        assert_eq!(SoundPolicy::parse(" record  play "), Ok(SoundPolicy::OPEN));
        assert_eq!(SoundPolicy::parse(""), Ok(SoundPolicy::NONE));
        assert_eq!(
            SoundPolicy::parse("play loud"),
            Err(PolicyError::UnknownToken("loud"))
        );
        assert_eq!(
            SoundPolicy::parse("volume_mdb=20000"),
            Err(PolicyError::BadVolume("20000"))
        );
        assert!(SoundPolicy::parse("volume_mdb=x").is_err());
        assert!(SoundPolicy::parse("play=1").is_err());
        assert_eq!(
            format!("{}", SoundPolicy::parse("volume_mdb=-100001").unwrap_err()),
            "volume_mdb \"-100001\": expected -100000..=12000"
        );
    }

    #[test]
    fn values_read_back_as_written() {
        assert_eq!(
            format!("{}", p(true, false, -6000).value()),
            "play volume_mdb=-6000"
        );
        assert_eq!(format!("{}", p(true, true, 0).value()), "play record");
        assert_eq!(
            format!("{}", p(false, true, 12000).value()),
            "record volume_mdb=12000"
        );
        assert_eq!(
            format!("{}", p(false, false, -500).value()),
            "volume_mdb=-500"
        );
        assert_eq!(format!("{}", p(false, false, 0).value()), "");
        for play in [false, true] {
            for record in [false, true] {
                for mdb in [MIN_MDB, -6500, 0, MAX_MDB] {
                    let q = p(play, record, mdb);
                    assert_eq!(SoundPolicy::parse(&format!("{}", q.value())), Ok(q));
                }
            }
        }
    }

    #[test]
    fn displays_for_logs() {
        assert_eq!(
            format!("{}", p(true, false, -6500)),
            "play, no record, volume -6.500 dB"
        );
        assert_eq!(
            format!("{}", p(false, false, -500)),
            "no play, no record, volume -0.500 dB"
        );
    }
}
