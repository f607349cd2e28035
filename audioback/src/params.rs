//! What one stream offers (rates, formats, channels, buffer) and the two questions a guest
//! asks about it: `HW_PARAM_QUERY` (the offer intersected with the guest's current
//! intervals — ALSA's hw rules narrow a configuration by asking repeatedly) and `OPEN` (is
//! this exact configuration within the offer).
//!
//! The offer is what the toolstack configured for the stream (xl's `vsnd=` values in the
//! frontend's directory, see [`crate::card`]) intersected with what the mixer converts
//! ([`crate::format::SUPPORTED`], [`RATES`], at most [`MAX_CHANNELS`]).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xen_abi::sndif::{XensndOpenReq, XensndQueryHwParam, XensndRange};

use crate::format::SampleFormat;

/// Sample rates a stream may use (Linux's `snd_xen_front` knows these names; the resampler
/// converts any of them to the device's rate).
pub const RATES: [u32; 12] = [
    5512, 8000, 11025, 16000, 22050, 32000, 44100, 48000, 64000, 96000, 176400, 192000,
];

/// Rates offered when the toolstack configured none (Linux's default range 5512–48000).
pub const DEFAULT_MAX_RATE: u32 = 48_000;

/// Most channels per stream.
pub const MAX_CHANNELS: u8 = 8;

/// Smallest period and buffer, in bytes (Linux's `MIN_PERIOD_SIZE`).
pub const MIN_PERIOD_BYTES: u32 = 64;

/// What one stream accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// Bit `n`: `XENSND_PCM_FORMAT_*` `n` accepted (only formats the mixer converts).
    pub formats: u64,
    /// Accepted rates, ascending, a subset of [`RATES`], never empty.
    pub rates: Vec<u32>,
    /// Fewest channels.
    pub channels_min: u8,
    /// Most channels.
    pub channels_max: u8,
    /// Largest buffer in bytes.
    pub buffer_max: u32,
}

/// A refused `OPEN` or an empty `HW_PARAM_QUERY` answer, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(pub String);

/// The validated parameters of an `OPEN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenParams {
    /// Sample format.
    pub format: SampleFormat,
    /// Channels.
    pub channels: u8,
    /// Rate in Hz.
    pub rate: u32,
    /// Buffer bytes.
    pub buffer_bytes: u32,
    /// Bytes between position events (0: none).
    pub period_bytes: u32,
}

impl OpenParams {
    /// Bytes per frame.
    pub fn frame_bytes(&self) -> usize {
        self.format.bytes() * usize::from(self.channels)
    }
}

fn intersect(a: XensndRange, lo: u32, hi: u32) -> Option<XensndRange> {
    let r = XensndRange {
        min: a.min.max(lo),
        max: a.max.min(hi),
    };
    (r.min <= r.max).then_some(r)
}

impl Offer {
    /// Formats as names, for log lines.
    pub fn format_names(&self) -> String {
        let names: Vec<&str> = crate::format::SUPPORTED
            .iter()
            .filter(|f| self.formats & (1 << f.xen()) != 0)
            .map(|f| f.name())
            .collect();
        names.join(",")
    }

    /// Bytes per sample over the formats of `mask`: (smallest, largest); `None` if empty.
    fn sample_bytes(mask: u64) -> Option<(u32, u32)> {
        let sizes = crate::format::SUPPORTED
            .iter()
            .filter(|f| mask & (1 << f.xen()) != 0)
            .map(|f| f.bytes() as u32);
        let min = sizes.clone().min()?;
        Some((min, sizes.max()?))
    }

    /// Answers `HW_PARAM_QUERY`: the guest's intervals narrowed to what this stream
    /// accepts. Buffer and period are in frames; their bounds hold for some frame size the
    /// narrowed formats and channels allow (OPEN checks the exact bytes).
    pub fn query(&self, req: &XensndQueryHwParam) -> Result<XensndQueryHwParam, Refused> {
        let formats = req.formats & self.formats;
        let (min_sample, max_sample) = Self::sample_bytes(formats)
            .ok_or_else(|| Refused(format!("no format of mask {:#x} offered", req.formats)))?;
        let rates: Vec<u32> = self
            .rates
            .iter()
            .copied()
            .filter(|r| (req.rates.min..=req.rates.max).contains(r))
            .collect();
        let (Some(&rmin), Some(&rmax)) = (rates.first(), rates.last()) else {
            return Err(Refused(format!(
                "no rate in {}..={} offered",
                req.rates.min, req.rates.max
            )));
        };
        let channels = intersect(
            req.channels,
            self.channels_min.into(),
            self.channels_max.into(),
        )
        .ok_or_else(|| {
            Refused(format!(
                "channels {}..={} not offered",
                req.channels.min, req.channels.max
            ))
        })?;
        let min_frame = min_sample * channels.min;
        let max_frame = max_sample * channels.max;
        let most_frames = self.buffer_max / min_frame;
        let fewest_frames = MIN_PERIOD_BYTES.div_ceil(max_frame).max(1);
        let buffer = intersect(req.buffer, fewest_frames, most_frames).ok_or_else(|| {
            Refused(format!(
                "buffer {}..={} frames not offered",
                req.buffer.min, req.buffer.max
            ))
        })?;
        let period = intersect(req.period, fewest_frames, buffer.max).ok_or_else(|| {
            Refused(format!(
                "period {}..={} frames not offered",
                req.period.min, req.period.max
            ))
        })?;
        Ok(XensndQueryHwParam {
            formats,
            rates: XensndRange {
                min: rmin,
                max: rmax,
            },
            channels,
            buffer,
            period,
        })
    }

    /// Checks an `OPEN` against the offer.
    pub fn check_open(&self, open: &XensndOpenReq) -> Result<OpenParams, Refused> {
        let format = SampleFormat::from_xen(open.pcm_format)
            .filter(|f| self.formats & (1 << f.xen()) != 0)
            .ok_or_else(|| Refused(format!("format {} not offered", open.pcm_format)))?;
        if !self.rates.contains(&open.pcm_rate) {
            return Err(Refused(format!("rate {} not offered", open.pcm_rate)));
        }
        if !(self.channels_min..=self.channels_max).contains(&open.pcm_channels) {
            return Err(Refused(format!(
                "{} channels not offered ({}..={})",
                open.pcm_channels, self.channels_min, self.channels_max
            )));
        }
        let params = OpenParams {
            format,
            channels: open.pcm_channels,
            rate: open.pcm_rate,
            buffer_bytes: open.buffer_sz,
            period_bytes: open.period_sz,
        };
        let frame = params.frame_bytes() as u32;
        if !(MIN_PERIOD_BYTES..=self.buffer_max).contains(&open.buffer_sz)
            || open.buffer_sz % frame != 0
        {
            return Err(Refused(format!(
                "buffer of {} bytes not offered ({MIN_PERIOD_BYTES}..={}, whole {frame}-byte frames)",
                open.buffer_sz, self.buffer_max
            )));
        }
        if open.period_sz != 0
            && (!(MIN_PERIOD_BYTES..=open.buffer_sz).contains(&open.period_sz)
                || open.period_sz % frame != 0)
        {
            return Err(Refused(format!(
                "period of {} bytes not offered ({MIN_PERIOD_BYTES}..={}, whole frames)",
                open.period_sz, open.buffer_sz
            )));
        }
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> Offer {
        Offer {
            formats: 1 << 2 | 1 << 1,
            rates: alloc::vec![44100, 48000],
            channels_min: 1,
            channels_max: 2,
            buffer_max: 65536,
        }
    }

    fn range(min: u32, max: u32) -> XensndRange {
        XensndRange { min, max }
    }

    #[test]
    fn query_intersects() {
        let req = XensndQueryHwParam {
            formats: u64::MAX,
            rates: range(0, u32::MAX),
            channels: range(2, 6),
            buffer: range(0, u32::MAX),
            period: range(0, u32::MAX),
        };
        let rsp = offer().query(&req).unwrap();
        assert_eq!(rsp.formats, 1 << 2 | 1 << 1);
        assert_eq!(rsp.rates, range(44100, 48000));
        assert_eq!(rsp.channels, range(2, 2));
        // u8 stereo: 2-byte frames → 32768 frames; s16 stereo: 4-byte frames → 16 minimum.
        assert_eq!(rsp.buffer, range(16, 32768));
        assert_eq!(rsp.period, range(16, 32768));
        let only_rate = XensndQueryHwParam {
            rates: range(48000, 48000),
            ..req
        };
        assert_eq!(
            offer().query(&only_rate).unwrap().rates,
            range(48000, 48000)
        );
        let none = XensndQueryHwParam {
            rates: range(8000, 22050),
            ..req
        };
        assert!(offer().query(&none).is_err());
        let bad_format = XensndQueryHwParam {
            formats: 1 << 20,
            ..req
        };
        assert!(offer().query(&bad_format).is_err());
    }

    #[test]
    fn open_checks_everything() {
        let ok = XensndOpenReq {
            pcm_rate: 48000,
            pcm_format: 2,
            pcm_channels: 2,
            reserved: 0,
            buffer_sz: 16384,
            gref_directory: 9,
            period_sz: 4096,
        };
        assert!(offer().check_open(&ok).is_ok());
        for bad in [
            XensndOpenReq {
                pcm_rate: 22050,
                ..ok
            },
            XensndOpenReq {
                pcm_format: 10,
                ..ok
            },
            XensndOpenReq {
                pcm_channels: 3,
                ..ok
            },
            XensndOpenReq {
                pcm_channels: 0,
                ..ok
            },
            XensndOpenReq {
                buffer_sz: 65540,
                ..ok
            },
            XensndOpenReq {
                buffer_sz: 16386,
                ..ok
            },
            XensndOpenReq {
                period_sz: 32768,
                ..ok
            },
        ] {
            assert!(offer().check_open(&bad).is_err(), "{bad:?}");
        }
    }
}
