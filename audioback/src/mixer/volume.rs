//! Per-channel volume and mute, applied in the backend: `SET_VOLUME` values are in steps of
//! 0.001 dB (0 = unity), turned into 16.16 fixed-point gains once when set.

use super::resample::{Frame, MAX_CH};

/// Quietest volume accepted (−100 dB, below a 16-bit sample's resolution: silence) and
/// loudest (+12 dB; the mix saturates, never wraps), in 0.001 dB: the range the
/// `xdd-policy` format shares with xddctl.
pub use xen_abi::xdd_policy::{MAX_MDB, MIN_MDB};

const UNITY: i32 = 1 << 16;

/// `10^(mdb / 20000)` in 16.16 fixed point (`mdb` within [`MIN_MDB`]..=[`MAX_MDB`]);
/// [`MIN_MDB`] is silence.
pub fn gain_q16(mdb: i32) -> i32 {
    if mdb <= MIN_MDB {
        return 0;
    }
    const LN2: f64 = core::f64::consts::LN_2;
    let y = f64::from(mdb.clamp(MIN_MDB, MAX_MDB)) * core::f64::consts::LN_10 / 20_000.0;
    // y = k·ln2 + r, 0 <= r < ln2; e^r by its Taylor series (error < 1e-7).
    let mut k = (y / LN2) as i32;
    if f64::from(k) * LN2 > y {
        k -= 1;
    }
    let r = y - f64::from(k) * LN2;
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for n in 1..10 {
        term *= r / f64::from(n);
        sum += term;
    }
    let scale = if k >= 0 {
        f64::from(1u32 << k.min(30))
    } else {
        1.0 / f64::from(1u32 << (-k).min(30))
    };
    (sum * scale * f64::from(UNITY) + 0.5) as i32
}

/// The volume state of one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gains {
    mdb: [i32; MAX_CH],
    muted: [bool; MAX_CH],
    q16: [i32; MAX_CH],
}

impl Default for Gains {
    fn default() -> Self {
        Self {
            mdb: [0; MAX_CH],
            muted: [false; MAX_CH],
            q16: [UNITY; MAX_CH],
        }
    }
}

impl Gains {
    /// Sets channel `c`'s volume (already range-checked).
    pub fn set(&mut self, c: usize, mdb: i32) {
        if c < MAX_CH {
            self.mdb[c] = mdb;
            self.q16[c] = gain_q16(mdb);
        }
    }

    /// Channel `c`'s volume in 0.001 dB.
    pub fn get(&self, c: usize) -> i32 {
        self.mdb.get(c).copied().unwrap_or(0)
    }

    /// Mutes or unmutes channel `c`.
    pub fn mute(&mut self, c: usize, muted: bool) {
        if c < MAX_CH {
            self.muted[c] = muted;
        }
    }

    /// Whether any channel's gain differs from unity.
    fn identity(&self) -> bool {
        self.q16.iter().all(|&g| g == UNITY) && !self.muted.iter().any(|&m| m)
    }

    /// Applies the gains to `frame`'s first `channels` samples.
    pub fn apply(&self, channels: usize, frame: &mut Frame) {
        if self.identity() {
            return;
        }
        let n = channels.min(MAX_CH);
        for ((s, &muted), &g) in frame[..n].iter_mut().zip(&self.muted).zip(&self.q16) {
            *s = if muted {
                0
            } else {
                ((i64::from(*s) * i64::from(g)) >> 16) as i32
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decibels_to_gains() {
        assert_eq!(gain_q16(0), 65536);
        // -6.0206 dB halves, +6.0206 dB doubles, -20 dB is a tenth.
        assert!((gain_q16(-6021) - 32768).abs() <= 2, "{}", gain_q16(-6021));
        assert!((gain_q16(6021) - 131072).abs() <= 8, "{}", gain_q16(6021));
        assert!(
            (gain_q16(-20_000) - 6554).abs() <= 1,
            "{}",
            gain_q16(-20_000)
        );
        assert_eq!(gain_q16(MIN_MDB), 0);
        // 0.001 dB steps are distinct at full scale.
        assert!(gain_q16(-1000) < gain_q16(-999));
    }

    #[test]
    fn mute_and_per_channel_gain() {
        let mut g = Gains::default();
        g.set(0, -20_000);
        g.mute(1, true);
        let mut f = [10_000; MAX_CH];
        g.apply(3, &mut f);
        assert_eq!(&f[..3], &[1000, 0, 10_000]);
        assert_eq!(g.get(0), -20_000);
    }
}
