//! Xenbus device states (`io/xenbus.h`), stored in xenstore as decimal strings under each
//! frontend's and backend's `state` node.

use core::fmt;
use core::str::FromStr;

/// The state of one end of a split device (`enum xenbus_state`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum XenbusState {
    /// No state yet (also what a missing node means).
    Unknown = 0,
    /// Being set up; the toolstack creates both ends in this state.
    Initialising = 1,
    /// Backend: features published, waiting for the frontend's ring details.
    InitWait = 2,
    /// Frontend: rings and event channels published.
    Initialised = 3,
    /// Up and running.
    Connected = 4,
    /// Tearing down.
    Closing = 5,
    /// Torn down.
    Closed = 6,
    /// Reconfiguration in progress.
    Reconfiguring = 7,
    /// Reconfiguration done.
    Reconfigured = 8,
}

/// A `state` node value that is not a xenbus state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateParseError {
    /// The value was empty.
    Empty,
    /// The value held something other than decimal digits (whitespace and NUL included).
    NotDecimal,
    /// The number is not one of the states 0 to 8.
    OutOfRange,
}

impl fmt::Display for StateParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "xenbus state is empty",
            Self::NotDecimal => "xenbus state is not a decimal number",
            Self::OutOfRange => "xenbus state is not in 0..=8",
        })
    }
}

impl XenbusState {
    /// All states, in numeric order.
    pub const ALL: [XenbusState; 9] = [
        Self::Unknown,
        Self::Initialising,
        Self::InitWait,
        Self::Initialised,
        Self::Connected,
        Self::Closing,
        Self::Closed,
        Self::Reconfiguring,
        Self::Reconfigured,
    ];

    /// The state with number `n`.
    pub const fn from_u32(n: u32) -> Option<Self> {
        if n < Self::ALL.len() as u32 {
            Some(Self::ALL[n as usize])
        } else {
            None
        }
    }

    /// Parses a node value strictly: one or more ASCII digits, value 0 to 8; no sign, no
    /// whitespace, no NUL.
    pub fn parse(value: &[u8]) -> Result<Self, StateParseError> {
        if value.is_empty() {
            return Err(StateParseError::Empty);
        }
        let mut n: u32 = 0;
        for &b in value {
            if !b.is_ascii_digit() {
                return Err(StateParseError::NotDecimal);
            }
            n = n.saturating_mul(10).saturating_add(u32::from(b - b'0'));
        }
        Self::from_u32(n).ok_or(StateParseError::OutOfRange)
    }

    /// The decimal string to write to xenstore (`"4"` for `Connected`).
    pub const fn as_str(self) -> &'static str {
        ["0", "1", "2", "3", "4", "5", "6", "7", "8"][self as usize]
    }

    /// The state's name (`"InitWait"`), for logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::Initialising => "Initialising",
            Self::InitWait => "InitWait",
            Self::Initialised => "Initialised",
            Self::Connected => "Connected",
            Self::Closing => "Closing",
            Self::Closed => "Closed",
            Self::Reconfiguring => "Reconfiguring",
            Self::Reconfigured => "Reconfigured",
        }
    }
}

impl FromStr for XenbusState {
    type Err = StateParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

impl fmt::Display for XenbusState {
    /// The number, as xenstore holds it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<XenbusState> for u32 {
    fn from(state: XenbusState) -> u32 {
        state as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn parse_every_state() {
        for (n, state) in XenbusState::ALL.iter().enumerate() {
            assert_eq!(*state as usize, n);
            assert_eq!(XenbusState::parse(state.to_string().as_bytes()), Ok(*state));
            assert_eq!(state.as_str().parse::<XenbusState>(), Ok(*state));
        }
        assert_eq!(XenbusState::parse(b"4"), Ok(XenbusState::Connected));
        assert_eq!(XenbusState::parse(b"004"), Ok(XenbusState::Connected));
        assert_eq!(XenbusState::InitWait.name(), "InitWait");
    }

    #[test]
    fn reject_malformed() {
        use StateParseError::*;
        assert_eq!(XenbusState::parse(b""), Err(Empty));
        assert_eq!(XenbusState::parse(b"9"), Err(OutOfRange));
        assert_eq!(XenbusState::parse(b"99999999999999999999"), Err(OutOfRange));
        assert_eq!(XenbusState::parse(b"4\0"), Err(NotDecimal));
        assert_eq!(XenbusState::parse(b"4\n"), Err(NotDecimal));
        assert_eq!(XenbusState::parse(b" 4"), Err(NotDecimal));
        assert_eq!(XenbusState::parse(b"+4"), Err(NotDecimal));
        assert_eq!(XenbusState::parse(b"-1"), Err(NotDecimal));
        assert_eq!(XenbusState::parse(b"Connected"), Err(NotDecimal));
        assert_eq!(XenbusState::parse(&[0xff]), Err(NotDecimal));
    }

    #[test]
    fn display_is_the_number() {
        assert_eq!(XenbusState::Closed.to_string(), "6");
        assert_eq!(u32::from(XenbusState::Reconfigured), 8);
        assert_eq!(XenbusState::from_u32(9), None);
    }
}
