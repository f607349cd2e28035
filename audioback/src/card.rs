//! The card a frontend's xenstore directory describes: xl writes it from the guest's
//! `vsnd=[['CARD,…', 'PCM,name=…', 'STREAM,unique-id=…,type=p'], …]` into
//! `device/vsnd/<devid>/` — card keys, then `<pcm>/` (0, 1, …) with `name`, then
//! `<pcm>/<stream>/` (0, 1, …) with `type` and `unique-id`. `sample-rates`,
//! `sample-formats`, `channels-min`, `channels-max` and `buffer-size` may sit at any level;
//! a stream inherits from its PCM, a PCM from the card (as Linux's `snd_xen_front` reads
//! them).
//!
//! The guest owns that directory and may rewrite any of it (XSA-178), so it is read once at
//! connect, every value parsed strictly and bounded: at most [`MAX_PCMS`] PCMs of
//! [`MAX_STREAMS_PER_PCM`] streams (Linux's own limits; further indices are not read), at
//! most `max_streams` streams in all, names and ids of bounded length, unique ids unique,
//! lists of bounded length whose every item is known. Anything else fails the device with
//! a reason naming the key.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use minios::xenbus::{parse_bounded, quote, DeviceError};
use xen_abi::sndif::{
    pcm_format_from_name, XENSND_FIELD_BUFFER_SIZE, XENSND_FIELD_CHANNELS_MAX,
    XENSND_FIELD_CHANNELS_MIN, XENSND_FIELD_DEVICE_NAME, XENSND_FIELD_SAMPLE_FORMATS,
    XENSND_FIELD_SAMPLE_RATES, XENSND_FIELD_STREAM_UNIQUE_ID, XENSND_FIELD_TYPE,
    XENSND_FIELD_VCARD_SHORT_NAME,
};

use crate::format::SUPPORTED_MASK;
use crate::params::{Offer, DEFAULT_MAX_RATE, MAX_CHANNELS, MIN_PERIOD_BYTES, RATES};

/// Most PCM devices per card (ALSA's `SNDRV_PCM_DEVICES`).
pub const MAX_PCMS: usize = 8;
/// Most streams per PCM (Linux's `VSND_MAX_STREAM`).
pub const MAX_STREAMS_PER_PCM: usize = 8;
/// Longest name or unique id.
pub const MAX_NAME: usize = 64;
/// Most items in a list value.
pub const MAX_LIST_ITEMS: usize = 32;

/// Playback or capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `type` = `p`: the guest plays.
    Playback,
    /// `type` = `c`: the guest records.
    Capture,
}

/// One configured stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// Directory relative to the card (`0/1`).
    pub dir: String,
    /// `unique-id`.
    pub unique_id: String,
    /// `type`.
    pub direction: Direction,
    /// What the stream accepts.
    pub offer: Offer,
}

/// One configured PCM device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcmConfig {
    /// `name` (may be empty).
    pub name: String,
    /// Its streams, in index order.
    pub streams: Vec<StreamConfig>,
}

/// A whole card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardConfig {
    /// `short-name` (may be empty).
    pub short_name: String,
    /// PCM devices in index order.
    pub pcms: Vec<PcmConfig>,
}

impl CardConfig {
    /// Every stream, in the order the frontend numbers them.
    pub fn streams(&self) -> impl Iterator<Item = &StreamConfig> {
        self.pcms.iter().flat_map(|p| p.streams.iter())
    }
}

/// Reads a frontend key relative to the card's directory: its value, `None` if missing.
pub type Reader<'a> = dyn FnMut(&str) -> Result<Option<Vec<u8>>, DeviceError> + 'a;

/// Backend-side bounds of what a card may configure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most streams in the card.
    pub max_streams: usize,
    /// Largest `buffer-size` in bytes (also the default when none is configured).
    pub max_buffer: u32,
}

/// The hardware keys of one level, as far as configured.
#[derive(Clone, Debug, Default)]
struct Hw {
    formats: Option<u64>,
    rates: Option<Vec<u32>>,
    channels_min: Option<u8>,
    channels_max: Option<u8>,
    buffer: Option<u32>,
}

impl Hw {
    fn inherit(&self, parent: &Hw) -> Hw {
        Hw {
            formats: self.formats.or(parent.formats),
            rates: self.rates.clone().or_else(|| parent.rates.clone()),
            channels_min: self.channels_min.or(parent.channels_min),
            channels_max: self.channels_max.or(parent.channels_max),
            buffer: self.buffer.or(parent.buffer),
        }
    }

    fn offer(&self, dir: &str, limits: &Limits) -> Result<Offer, DeviceError> {
        let formats = self.formats.unwrap_or(1 << 1 | 1 << 2); // Linux: U8 | S16_LE
        let rates = self.rates.clone().unwrap_or_else(|| {
            RATES
                .iter()
                .copied()
                .filter(|&r| r <= DEFAULT_MAX_RATE)
                .collect()
        });
        let channels_min = self.channels_min.unwrap_or(1);
        let channels_max = self.channels_max.unwrap_or(2);
        if channels_min > channels_max {
            return Err(DeviceError::protocol(format!(
                "{dir}: channels-min {channels_min} above channels-max {channels_max}"
            )));
        }
        Ok(Offer {
            formats,
            rates,
            channels_min,
            channels_max,
            buffer_max: self.buffer.unwrap_or(limits.max_buffer),
        })
    }
}

/// Reads a card through `read` (a frontend key relative to the card's directory →
/// its value, `None` if missing).
pub fn read_card(read: &mut Reader<'_>, limits: &Limits) -> Result<CardConfig, DeviceError> {
    let card_hw = read_hw(read, "", limits)?;
    let short_name = read_name(read, XENSND_FIELD_VCARD_SHORT_NAME)?;
    let mut pcms = Vec::new();
    let mut total = 0;
    let mut ids: Vec<String> = Vec::new();
    for p in 0..MAX_PCMS {
        let pdir = format!("{p}");
        let name_key = format!("{pdir}/{XENSND_FIELD_DEVICE_NAME}");
        let first_type = format!("{pdir}/0/{XENSND_FIELD_TYPE}");
        // A PCM exists if it has a name or a first stream.
        let name = read(&name_key)?;
        if name.is_none() && read(&first_type)?.is_none() {
            break;
        }
        let name = read_name(read, &name_key)?;
        let pcm_hw = read_hw(read, &format!("{pdir}/"), limits)?.inherit(&card_hw);
        let mut streams = Vec::new();
        for s in 0..MAX_STREAMS_PER_PCM {
            let sdir = format!("{pdir}/{s}");
            let Some(kind) = read(&format!("{sdir}/{XENSND_FIELD_TYPE}"))? else {
                break;
            };
            let direction = match kind.as_slice() {
                b"p" | b"P" => Direction::Playback,
                b"c" | b"C" => Direction::Capture,
                other => {
                    return Err(DeviceError::protocol(format!(
                        "{sdir}/type {} is neither p nor c",
                        quote(other)
                    )))
                }
            };
            total += 1;
            if total > limits.max_streams {
                return Err(DeviceError::protocol(format!(
                    "more than {} streams configured",
                    limits.max_streams
                )));
            }
            let id_key = format!("{sdir}/{XENSND_FIELD_STREAM_UNIQUE_ID}");
            let unique_id = read_name(read, &id_key)?;
            if unique_id.is_empty() {
                return Err(DeviceError::protocol(format!("{id_key} missing or empty")));
            }
            if ids.contains(&unique_id) {
                return Err(DeviceError::protocol(format!(
                    "{id_key} {unique_id:?} is not unique"
                )));
            }
            ids.push(unique_id.clone());
            let hw = read_hw(read, &format!("{sdir}/"), limits)?.inherit(&pcm_hw);
            streams.push(StreamConfig {
                offer: hw.offer(&sdir, limits)?,
                dir: sdir,
                unique_id,
                direction,
            });
        }
        pcms.push(PcmConfig { name, streams });
    }
    if total == 0 {
        return Err(DeviceError::protocol("no streams configured"));
    }
    Ok(CardConfig { short_name, pcms })
}

/// A name: printable ASCII, at most [`MAX_NAME`] bytes; missing is empty.
fn read_name(read: &mut Reader<'_>, key: &str) -> Result<String, DeviceError> {
    let Some(raw) = read(key)? else {
        return Ok(String::new());
    };
    if raw.len() > MAX_NAME || !raw.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Err(DeviceError::protocol(format!(
            "{key} {} is not a short printable name",
            quote(&raw)
        )));
    }
    Ok(String::from_utf8_lossy(&raw).to_string())
}

fn read_uint(
    read: &mut Reader<'_>,
    key: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, DeviceError> {
    let Some(raw) = read(key)? else {
        return Ok(None);
    };
    let v = parse_bounded(key, &raw, max)?;
    if v < min {
        return Err(DeviceError::protocol(format!("{key} {v} below {min}")));
    }
    Ok(Some(v))
}

/// Comma-separated items, each checked by `item`; bounded.
fn read_list<T>(
    read: &mut Reader<'_>,
    key: &str,
    mut item: impl FnMut(&str) -> Option<T>,
) -> Result<Option<Vec<T>>, DeviceError> {
    let Some(raw) = read(key)? else {
        return Ok(None);
    };
    let bad = |why: &str| DeviceError::protocol(format!("{key} {}: {why}", quote(&raw)));
    let text = core::str::from_utf8(&raw).map_err(|_| bad("not text"))?;
    let mut out = Vec::new();
    for word in text.split(',') {
        if out.len() == MAX_LIST_ITEMS {
            return Err(bad("too many items"));
        }
        out.push(item(word.trim()).ok_or_else(|| bad(&format!("{word:?} unknown")))?);
    }
    Ok(Some(out))
}

/// The hardware keys under `prefix` (`""`, `"0/"`, `"0/1/"`).
fn read_hw(read: &mut Reader<'_>, prefix: &str, limits: &Limits) -> Result<Hw, DeviceError> {
    let key = |k: &str| format!("{prefix}{k}");
    let rates_key = key(XENSND_FIELD_SAMPLE_RATES);
    let rates = read_list(read, &rates_key, |w| {
        w.parse::<u32>().ok().filter(|r| RATES.contains(r))
    })?;
    let rates = rates.map(|mut r| {
        r.sort_unstable();
        r.dedup();
        r
    });
    let formats_key = key(XENSND_FIELD_SAMPLE_FORMATS);
    let formats = read_list(read, &formats_key, |w| {
        pcm_format_from_name(&w.to_ascii_lowercase())
    })?;
    let formats = match formats {
        None => None,
        Some(list) => {
            let mask = list.iter().fold(0u64, |m, f| m | 1 << f) & SUPPORTED_MASK;
            if mask == 0 {
                return Err(DeviceError::protocol(format!(
                    "{formats_key}: none of the formats is one the mixer converts"
                )));
            }
            Some(mask)
        }
    };
    let max_ch = u64::from(MAX_CHANNELS);
    let channels_min = read_uint(read, &key(XENSND_FIELD_CHANNELS_MIN), 1, max_ch)?;
    let channels_max = read_uint(read, &key(XENSND_FIELD_CHANNELS_MAX), 1, max_ch)?;
    let buffer = read_uint(
        read,
        &key(XENSND_FIELD_BUFFER_SIZE),
        MIN_PERIOD_BYTES.into(),
        limits.max_buffer.into(),
    )?;
    Ok(Hw {
        formats,
        rates,
        channels_min: channels_min.map(|v| v as u8),
        channels_max: channels_max.map(|v| v as u8),
        buffer: buffer.map(|v| v as u32),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    fn card(keys: &[(&str, &str)]) -> Result<CardConfig, DeviceError> {
        let map: BTreeMap<String, Vec<u8>> = keys
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        let limits = Limits {
            max_streams: 4,
            max_buffer: 65536,
        };
        read_card(&mut |k| Ok(map.get(k).cloned()), &limits)
    }

    #[test]
    fn reads_and_inherits() {
        let c = card(&[
            ("short-name", "xdd"),
            ("sample-rates", "48000,44100"),
            ("sample-formats", "s16_le"),
            ("buffer-size", "32768"),
            ("0/name", "dev0"),
            ("0/0/type", "p"),
            ("0/0/unique-id", "pb0"),
            ("0/1/type", "c"),
            ("0/1/unique-id", "cap0"),
            ("0/1/channels-max", "1"),
        ])
        .unwrap();
        assert_eq!(c.short_name, "xdd");
        let s: Vec<_> = c.streams().collect();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].offer.rates, alloc::vec![44100, 48000]);
        assert_eq!(s[0].offer.formats, 1 << 2);
        assert_eq!(s[0].offer.buffer_max, 32768);
        assert_eq!((s[0].offer.channels_min, s[0].offer.channels_max), (1, 2));
        assert_eq!(s[1].direction, Direction::Capture);
        assert_eq!(s[1].offer.channels_max, 1);
        assert_eq!(s[1].dir, "0/1");
    }

    #[test]
    fn refuses_absurd_values() {
        let base = [("0/0/type", "p"), ("0/0/unique-id", "a")];
        for (extra, why) in [
            (("sample-rates", "48000,12345"), "12345"),
            (("sample-rates", ""), "unknown"),
            (("sample-formats", "s16_le,wav"), "wav"),
            (("sample-formats", "mu_law"), "converts"),
            (("channels-max", "99"), "exceeds"),
            (("channels-min", "0"), "below"),
            (("buffer-size", "1048576"), "exceeds"),
            (("buffer-size", "-1"), "decimal"),
            (("0/0/type", "x"), "neither"),
            (("0/name", "a\nb"), "printable"),
        ] {
            let mut keys: Vec<(&str, &str)> = base.to_vec();
            keys.retain(|(k, _)| *k != extra.0);
            keys.push(extra);
            let e = card(&keys).expect_err(extra.1);
            assert!(e.reason.contains(why), "{extra:?}: {}", e.reason);
        }
        let many: Vec<String> = (0..40).map(|i| (8000 + i).to_string()).collect();
        let long = many.join(",");
        assert!(card(&[base[0], base[1], ("sample-rates", &long)]).is_err());
        let e = card(&[
            ("0/0/type", "p"),
            ("0/0/unique-id", "a"),
            ("0/1/type", "p"),
            ("0/1/unique-id", "a"),
        ])
        .unwrap_err();
        assert!(e.reason.contains("not unique"), "{}", e.reason);
        let e = card(&[("0/0/type", "p")]).unwrap_err();
        assert!(e.reason.contains("unique-id"), "{}", e.reason);
        assert!(card(&[]).unwrap_err().reason.contains("no streams"));
        let e = card(&[
            ("channels-min", "2"),
            ("channels-max", "1"),
            base[0],
            base[1],
        ])
        .unwrap_err();
        assert!(e.reason.contains("above"), "{}", e.reason);
        let mut five = Vec::new();
        let names: Vec<(String, String, String)> = (0..5)
            .map(|i| {
                (
                    format!("0/{i}/type"),
                    format!("0/{i}/unique-id"),
                    format!("s{i}"),
                )
            })
            .collect();
        for (t, u, v) in &names {
            five.push((t.as_str(), "p"));
            five.push((u.as_str(), v.as_str()));
        }
        assert!(card(&five).unwrap_err().reason.contains("more than 4"));
    }
}
