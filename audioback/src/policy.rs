//! Which streams a guest's card may open, and at what volume: dom0 (xddctl, from the
//! appliance file) writes `xdd-policy` into the card's backend directory; without it the
//! driver domain's default (`audioback.policy=`) applies. The value's format is shared with
//! xddctl: [`xen_abi::xdd_policy`]. A value that does not parse allows nothing (and says
//! why).

use crate::card::Direction;

pub use xen_abi::xdd_policy::{SoundPolicy as Policy, POLICY_KEY};

/// Whether `policy` lets a stream of `direction` open.
pub fn allows(policy: &Policy, direction: Direction) -> bool {
    match direction {
        Direction::Playback => policy.play,
        Direction::Capture => policy.record,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_direction_needs_its_token() {
        let play = Policy::parse("play volume_mdb=-6000").unwrap();
        assert!(allows(&play, Direction::Playback));
        assert!(!allows(&play, Direction::Capture));
        let record = Policy::parse("record").unwrap();
        assert!(!allows(&record, Direction::Playback));
        assert!(allows(&record, Direction::Capture));
        assert!(!allows(&Policy::NONE, Direction::Playback));
    }
}
