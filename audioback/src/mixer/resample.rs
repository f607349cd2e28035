//! Rate conversion by linear interpolation between neighbouring source frames, with a
//! 32.32 fixed-point source position: deterministic, no floating point, two frames of
//! state (so latency and memory are bounded). Equal rates pass frames through untouched.
//!
//! The source is pulled one frame at a time; when it runs dry the conversion stops where
//! it is and continues seamlessly once frames arrive again (no frame is dropped or
//! repeated by running dry).

/// Most channels a frame holds.
pub const MAX_CH: usize = 8;

/// One frame at the mixer's scale.
pub type Frame = [i32; MAX_CH];

const ONE: u64 = 1 << 32;

/// A converter from `from` Hz to `to` Hz.
#[derive(Clone, Debug)]
pub struct Resampler {
    step: u64,
    phase: u64,
    prev: Frame,
    cur: Frame,
    /// Source frames to take before the next output.
    need: u64,
}

impl Resampler {
    /// A converter; both rates non-zero.
    pub fn new(from: u32, to: u32) -> Self {
        let step = (u64::from(from) << 32) / u64::from(to.max(1));
        Self {
            step,
            phase: 0,
            prev: [0; MAX_CH],
            cur: [0; MAX_CH],
            need: 2,
        }
    }

    /// Whether frames pass through unchanged.
    pub fn is_passthrough(&self) -> bool {
        self.step == ONE
    }

    /// Produces the next output frame (`channels` of it) into `out`, pulling source frames
    /// with `pull` (which returns false when none is available). Returns false, leaving
    /// `out` untouched, when the source ran dry first.
    pub fn next(
        &mut self,
        channels: usize,
        pull: &mut dyn FnMut(&mut Frame) -> bool,
        out: &mut Frame,
    ) -> bool {
        if self.is_passthrough() {
            return pull(out);
        }
        while self.need > 0 {
            let mut next = [0; MAX_CH];
            if !pull(&mut next) {
                return false;
            }
            self.prev = self.cur;
            self.cur = next;
            self.need -= 1;
        }
        let t = self.phase as i64;
        let n = channels.min(MAX_CH);
        for ((o, &a), &b) in out[..n].iter_mut().zip(&self.prev).zip(&self.cur) {
            let (a, b) = (i64::from(a), i64::from(b));
            *o = (a + (((b - a) * t) >> 32)) as i32;
        }
        self.phase += self.step;
        self.need = self.phase >> 32;
        self.phase &= ONE - 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_rates_pass_through() {
        let mut r = Resampler::new(48000, 48000);
        let mut src = (0..5).map(|i| [i * 100; MAX_CH]);
        let mut out = [0; MAX_CH];
        let mut got = alloc::vec::Vec::new();
        while r.next(2, &mut |f| src.next().map(|v| *f = v).is_some(), &mut out) {
            got.push(out[0]);
        }
        assert_eq!(got, [0, 100, 200, 300, 400]);
    }

    #[test]
    fn interpolates_and_survives_running_dry() {
        // 1 → 2: every source frame, then the midpoint to the next.
        let mut r = Resampler::new(1, 2);
        let data = [0, 100, 200, 300];
        let mut i = 0;
        let mut limit = 2;
        let mut out = [0; MAX_CH];
        let mut got = alloc::vec::Vec::new();
        for _ in 0..2 {
            let mut pull = |f: &mut Frame| {
                if i < limit {
                    f[0] = data[i];
                    i += 1;
                    true
                } else {
                    false
                }
            };
            while r.next(1, &mut pull, &mut out) {
                got.push(out[0]);
            }
            limit = 4;
        }
        assert_eq!(got, [0, 50, 100, 150, 200, 250]);
    }
}
