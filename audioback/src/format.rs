//! Sample formats the backend converts: the `XENSND_PCM_FORMAT_*` values it accepts from
//! guests, their sizes, and conversion of one sample to and from the mixer's scale (a
//! signed 16-bit value held in an `i32`).
//!
//! Wider formats keep their top 16 bits; float samples are clamped to [-1, 1] first. Formats
//! the backend does not convert (IEC958, µ-law, A-law, ADPCM, MPEG, GSM, float64) are never
//! offered: a guest that asks for one gets `-EINVAL` at OPEN and sees them missing from
//! `HW_PARAM_QUERY` answers.

use xen_abi::sndif::pcm_format_name;

/// A sample format the mixer converts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleFormat {
    /// Signed 8-bit.
    S8,
    /// Unsigned 8-bit.
    U8,
    /// Signed 16-bit little-endian.
    S16Le,
    /// Signed 16-bit big-endian.
    S16Be,
    /// Unsigned 16-bit little-endian.
    U16Le,
    /// Unsigned 16-bit big-endian.
    U16Be,
    /// Signed 24-bit in the low bytes of a little-endian 32-bit word (ALSA's S24_LE).
    S24Le,
    /// Signed 32-bit little-endian.
    S32Le,
    /// Signed 32-bit big-endian.
    S32Be,
    /// IEEE 754 single precision little-endian, nominal range [-1, 1].
    FloatLe,
}

/// Every format the mixer converts, in `XENSND_PCM_FORMAT_*` order.
pub const SUPPORTED: [SampleFormat; 10] = [
    SampleFormat::S8,
    SampleFormat::U8,
    SampleFormat::S16Le,
    SampleFormat::S16Be,
    SampleFormat::U16Le,
    SampleFormat::U16Be,
    SampleFormat::S24Le,
    SampleFormat::S32Le,
    SampleFormat::S32Be,
    SampleFormat::FloatLe,
];

/// Bit `n` set for every supported `XENSND_PCM_FORMAT_*` value `n`.
pub const SUPPORTED_MASK: u64 = {
    let mut mask = 0u64;
    let mut i = 0;
    while i < SUPPORTED.len() {
        mask |= 1 << SUPPORTED[i].xen() as u32;
        i += 1;
    }
    mask
};

/// Largest sample in bytes.
pub const MAX_SAMPLE_BYTES: usize = 4;

impl SampleFormat {
    /// The format for a `XENSND_PCM_FORMAT_*` value, if the mixer converts it.
    pub fn from_xen(value: u8) -> Option<Self> {
        SUPPORTED.iter().copied().find(|f| f.xen() == value)
    }

    /// The `XENSND_PCM_FORMAT_*` value.
    pub const fn xen(self) -> u8 {
        match self {
            SampleFormat::S8 => 0,
            SampleFormat::U8 => 1,
            SampleFormat::S16Le => 2,
            SampleFormat::S16Be => 3,
            SampleFormat::U16Le => 4,
            SampleFormat::U16Be => 5,
            SampleFormat::S24Le => 6,
            SampleFormat::S32Le => 10,
            SampleFormat::S32Be => 11,
            SampleFormat::FloatLe => 14,
        }
    }

    /// The xenstore name (`s16_le`).
    pub fn name(self) -> &'static str {
        pcm_format_name(self.xen()).unwrap_or("?")
    }

    /// Bytes per sample.
    pub const fn bytes(self) -> usize {
        match self {
            SampleFormat::S8 | SampleFormat::U8 => 1,
            SampleFormat::S16Le
            | SampleFormat::S16Be
            | SampleFormat::U16Le
            | SampleFormat::U16Be => 2,
            _ => 4,
        }
    }

    /// Decodes one sample from the start of `b` (at least [`bytes`](Self::bytes) long) to
    /// the mixer's 16-bit scale.
    pub fn decode(self, b: &[u8]) -> i32 {
        let w2 = |i: usize| [b[i], b[i + 1]];
        let w4 = || [b[0], b[1], b[2], b[3]];
        match self {
            SampleFormat::S8 => i32::from(b[0] as i8) << 8,
            SampleFormat::U8 => (i32::from(b[0]) - 128) << 8,
            SampleFormat::S16Le => i32::from(i16::from_le_bytes(w2(0))),
            SampleFormat::S16Be => i32::from(i16::from_be_bytes(w2(0))),
            SampleFormat::U16Le => i32::from(u16::from_le_bytes(w2(0))) - 32768,
            SampleFormat::U16Be => i32::from(u16::from_be_bytes(w2(0))) - 32768,
            // Sign-extend the low 24 bits, keep the top 16 of them.
            SampleFormat::S24Le => (i32::from_le_bytes(w4()) << 8) >> 16,
            SampleFormat::S32Le => i32::from_le_bytes(w4()) >> 16,
            SampleFormat::S32Be => i32::from_be_bytes(w4()) >> 16,
            SampleFormat::FloatLe => {
                let x = f32::from_le_bytes(w4());
                let x = if x.is_nan() { 0.0 } else { x.clamp(-1.0, 1.0) };
                clamp16((x * 32768.0) as i32)
            }
        }
    }

    /// Encodes one mixer-scale sample (clamped to 16 bits) into the start of `out` (at least
    /// [`bytes`](Self::bytes) long).
    pub fn encode(self, sample: i32, out: &mut [u8]) {
        let s = clamp16(sample);
        match self {
            SampleFormat::S8 => out[0] = (s >> 8) as i8 as u8,
            SampleFormat::U8 => out[0] = ((s >> 8) + 128) as u8,
            SampleFormat::S16Le => out[..2].copy_from_slice(&(s as i16).to_le_bytes()),
            SampleFormat::S16Be => out[..2].copy_from_slice(&(s as i16).to_be_bytes()),
            SampleFormat::U16Le => out[..2].copy_from_slice(&((s + 32768) as u16).to_le_bytes()),
            SampleFormat::U16Be => out[..2].copy_from_slice(&((s + 32768) as u16).to_be_bytes()),
            SampleFormat::S24Le => out[..4].copy_from_slice(&(s << 8).to_le_bytes()),
            SampleFormat::S32Le => out[..4].copy_from_slice(&(s << 16).to_le_bytes()),
            SampleFormat::S32Be => out[..4].copy_from_slice(&(s << 16).to_be_bytes()),
            SampleFormat::FloatLe => {
                out[..4].copy_from_slice(&(s as f32 / 32768.0).to_le_bytes());
            }
        }
    }
}

/// Saturates to the signed 16-bit range (the mixer's clipping).
pub fn clamp16(x: i32) -> i32 {
    x.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_round_trips_16_bit_values() {
        for f in SUPPORTED {
            assert_eq!(SampleFormat::from_xen(f.xen()), Some(f));
            let step = if f.bytes() == 1 { 256 } else { 1 };
            for s in [-32768, -12345, -256, 0, 256, 12288, 32767] {
                let s = s / step * step;
                let mut b = [0u8; 4];
                f.encode(s, &mut b);
                assert_eq!(f.decode(&b), s, "{f:?} {s}");
            }
        }
    }

    #[test]
    fn known_encodings() {
        assert_eq!(SampleFormat::U8.decode(&[0x80]), 0);
        assert_eq!(SampleFormat::S16Be.decode(&[0x80, 0x00]), -32768);
        assert_eq!(SampleFormat::S24Le.decode(&[0, 0, 0x80, 0xff]), -32768);
        assert_eq!(
            SampleFormat::S32Le.decode(&0x4000_0000i32.to_le_bytes()),
            16384
        );
        assert_eq!(SampleFormat::FloatLe.decode(&2.0f32.to_le_bytes()), 32767);
        assert_eq!(SampleFormat::FloatLe.decode(&f32::NAN.to_le_bytes()), 0);
        assert_eq!(SampleFormat::from_xen(20), None, "mu-law is not converted");
        assert_eq!(SUPPORTED_MASK & (1 << 2), 1 << 2);
        assert_eq!(SampleFormat::S16Le.name(), "s16_le");
    }
}
