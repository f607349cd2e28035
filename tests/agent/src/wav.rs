//! Sound checks: a sine tone as 16-bit samples (what a guest plays), WAV files (what
//! QEMU's `-audiodev wav` writes of what the card played), and their analysis: where the
//! sound is, silent gaps inside it, and its strongest frequencies.

/// Interleaved signed 16-bit frames with their rate.
#[derive(Clone, Debug, PartialEq)]
pub struct Pcm {
    /// Frames per second.
    pub rate: u32,
    /// Channels per frame.
    pub channels: u16,
    /// Samples, interleaved.
    pub samples: Vec<i16>,
}

/// `frames` frames of a sine of `hz` at `rate`, amplitude `amp` (of full scale), the same
/// on each of `channels`, starting at frame `first` (so successive chunks join up).
pub fn tone(hz: f64, rate: u32, channels: u16, amp: f64, first: u64, frames: usize) -> Vec<i16> {
    let mut out = Vec::with_capacity(frames * usize::from(channels));
    for i in 0..frames as u64 {
        let t = (first + i) as f64 / f64::from(rate);
        let v = (amp * 32767.0 * (2.0 * std::f64::consts::PI * hz * t).sin()).round() as i16;
        for _ in 0..channels {
            out.push(v);
        }
    }
    out
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses a PCM WAV file (16-bit). A data chunk whose size is 0 or runs past the end (a
/// writer killed before it finished the header) is taken to the end of the file.
pub fn parse(bytes: &[u8]) -> Result<Pcm, String> {
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err("not a RIFF/WAVE file".into());
    }
    let mut at = 12;
    let mut fmt = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32_at(bytes, at + 4).unwrap_or(0) as usize;
        let body = at + 8;
        if id == b"fmt " {
            let tag = u16_at(bytes, body).ok_or("short fmt chunk")?;
            let channels = u16_at(bytes, body + 2).ok_or("short fmt chunk")?;
            let rate = u32_at(bytes, body + 4).ok_or("short fmt chunk")?;
            let bits = u16_at(bytes, body + 14).ok_or("short fmt chunk")?;
            if tag != 1 || bits != 16 || channels == 0 {
                return Err(format!(
                    "format tag {tag}, {bits} bits, {channels} channels: not 16-bit PCM"
                ));
            }
            fmt = Some((rate, channels));
        } else if id == b"data" {
            let (rate, channels) = fmt.ok_or("data before fmt")?;
            let end = if len == 0 || body + len > bytes.len() {
                bytes.len()
            } else {
                body + len
            };
            let samples = bytes[body..end]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return Ok(Pcm {
                rate,
                channels,
                samples,
            });
        }
        at = body + len + (len & 1);
    }
    Err("no data chunk".into())
}

/// What [`analyze`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// Frames in the file.
    pub frames: usize,
    /// First and one-past-last frame that is not silent (`None`: all silent).
    pub sound: Option<(usize, usize)>,
    /// Silent runs inside the sound of at least the gap length: (first frame, frames).
    pub gaps: Vec<(usize, usize)>,
    /// Peak absolute sample value.
    pub peak: i16,
}

impl Analysis {
    /// Seconds from the first to the last sounding frame.
    pub fn sound_secs(&self, rate: u32) -> f64 {
        self.sound
            .map(|(a, b)| (b - a) as f64 / f64::from(rate))
            .unwrap_or(0.0)
    }
}

/// Finds the sounding part of `pcm` (frames with any sample above `threshold` in
/// magnitude) and every run of at least `min_gap` silent frames inside it.
pub fn analyze(pcm: &Pcm, threshold: i16, min_gap: usize) -> Analysis {
    let ch = usize::from(pcm.channels.max(1));
    let frames = pcm.samples.len() / ch;
    let loud = |f: usize| {
        pcm.samples[f * ch..f * ch + ch]
            .iter()
            .any(|s| s.unsigned_abs() > threshold.unsigned_abs())
    };
    let first = (0..frames).find(|&f| loud(f));
    let last = (0..frames).rev().find(|&f| loud(f));
    let peak = pcm
        .samples
        .iter()
        .map(|s| s.saturating_abs())
        .max()
        .unwrap_or(0);
    let (Some(a), Some(b)) = (first, last) else {
        return Analysis {
            frames,
            sound: None,
            gaps: Vec::new(),
            peak,
        };
    };
    let mut gaps = Vec::new();
    let mut run_start = None;
    for f in a..=b {
        // Silence here means digital zeros on every channel: what an underrun plays.
        let silent = pcm.samples[f * ch..f * ch + ch].iter().all(|&s| s == 0);
        match (silent, run_start) {
            (true, None) => run_start = Some(f),
            (false, Some(s)) => {
                if f - s >= min_gap {
                    gaps.push((s, f - s));
                }
                run_start = None;
            }
            _ => {}
        }
    }
    Analysis {
        frames,
        sound: Some((a, b + 1)),
        gaps,
        peak,
    }
}

/// The power of `hz` in the first channel of frames `range` (Goertzel).
fn power(pcm: &Pcm, range: (usize, usize), hz: f64) -> f64 {
    let ch = usize::from(pcm.channels.max(1));
    let w = 2.0 * std::f64::consts::PI * hz / f64::from(pcm.rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for f in range.0..range.1 {
        let x = f64::from(pcm.samples[f * ch]);
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// The strongest frequencies (Hz, to 0.1 Hz) in frames `range` of the first channel,
/// strongest first: peaks of a 20 Hz–`max_hz` scan in 5 Hz steps over at most a second in
/// the middle of the range (where tones that start a little apart, as two guests' do, all
/// sound) whose power is at least `rel` of the strongest, each refined over the whole range.
pub fn peaks(pcm: &Pcm, range: (usize, usize), max_hz: f64, rel: f64) -> Vec<(f64, f64)> {
    let second = pcm.rate as usize;
    let coarse_start = if range.1 - range.0 > second {
        range.0 + (range.1 - range.0 - second) / 2
    } else {
        range.0
    };
    let coarse_end = range.1.min(coarse_start + second);
    let grid: Vec<f64> = (4..=(max_hz / 5.0) as usize)
        .map(|k| k as f64 * 5.0)
        .collect();
    let p: Vec<f64> = grid
        .iter()
        .map(|&hz| power(pcm, (coarse_start, coarse_end), hz))
        .collect();
    let top = p.iter().cloned().fold(0.0, f64::max);
    let mut out = Vec::new();
    for i in 0..grid.len() {
        let left = if i > 0 { p[i - 1] } else { 0.0 };
        let right = p.get(i + 1).copied().unwrap_or(0.0);
        if p[i] >= left && p[i] >= right && p[i] >= rel * top && top > 0.0 {
            // Refine ±5 Hz in 0.1 Hz steps over the whole range.
            let (mut best, mut best_p) = (grid[i], 0.0);
            for k in -50..=50 {
                let hz = grid[i] + f64::from(k) * 0.1;
                let q = power(pcm, range, hz);
                if q > best_p {
                    best = hz;
                    best_p = q;
                }
            }
            out.push((best, best_p));
        }
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// A scenario's check of what the sound card played (`[[wav_check]]`), run on the host
/// on QEMU's `-audiodev wav` file once QEMU has exited: the sound lasts `secs` (±
/// `tolerance_pct` %), every tone of `tones_hz` is among its strongest frequencies (±
/// `tolerance_hz`), and no run of digital silence of `gap_ms` or more interrupts it.
///
/// With `part`, the file is first cut into parts at quiet stretches of `split_ms` or more
/// (one boot writes one file; a scenario that plays several times separates them with
/// silence) and the check looks at part `part` (0 first) only.
///
/// `source` names the QEMU sound device whose output file is checked (default: the HDA).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WavCheck {
    /// Prefix of the check names.
    pub name: String,
    /// Which device's output file.
    #[serde(default)]
    pub source: WavSource,
    /// Tones that must be present.
    pub tones_hz: Vec<f64>,
    /// Expected length of the sound, seconds.
    pub secs: f64,
    /// Frequency tolerance.
    #[serde(default = "default_tolerance_hz")]
    pub tolerance_hz: f64,
    /// Length tolerance, percent.
    #[serde(default = "default_tolerance_pct")]
    pub tolerance_pct: f64,
    /// Shortest silence inside the sound that counts as a gap, milliseconds.
    #[serde(default = "default_gap_ms")]
    pub gap_ms: f64,
    /// Which part of the file (see above); `None`: the whole file.
    #[serde(default)]
    pub part: Option<usize>,
    /// Quiet stretches that separate parts, milliseconds.
    #[serde(default = "default_split_ms")]
    pub split_ms: f64,
}

/// A QEMU sound device that writes what it plays to a WAV file in the testbed's scratch
/// directory (`-audiodev wav`, 48 kHz stereo S16): the file a `[[wav_check]]` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WavSource {
    /// Codec 0 (`hda-output`) of the Intel HDA (QEMU device `sound`).
    #[default]
    Hda,
    /// The usb-audio on the media xHCI (QEMU device `xhci-media`).
    UsbAudio,
}

impl WavSource {
    /// Every source.
    pub const ALL: [WavSource; 2] = [WavSource::Hda, WavSource::UsbAudio];

    /// The name used in scenario files (`source = "…"`).
    pub fn name(self) -> &'static str {
        match self {
            WavSource::Hda => "hda",
            WavSource::UsbAudio => "usb-audio",
        }
    }

    /// The output file's name in the scratch directory.
    pub fn file(self) -> &'static str {
        match self {
            WavSource::Hda => "hda-out.wav",
            WavSource::UsbAudio => "usb-audio-out.wav",
        }
    }

    /// The QEMU device (in a scenario's `qemu_devices`) that has this sound device.
    pub fn device(self) -> crate::scenario::QemuDevice {
        match self {
            WavSource::Hda => crate::scenario::QemuDevice::Sound,
            WavSource::UsbAudio => crate::scenario::QemuDevice::XhciMedia,
        }
    }
}

fn default_split_ms() -> f64 {
    100.0
}

/// The parts of `pcm`: frame ranges of sound separated by at least `split` quiet frames.
pub fn parts(pcm: &Pcm, split: usize) -> Vec<(usize, usize)> {
    let ch = usize::from(pcm.channels.max(1));
    let frames = pcm.samples.len() / ch;
    let mut out = Vec::new();
    let mut start = None;
    let mut last_loud = 0;
    for f in 0..frames {
        let loud = pcm.samples[f * ch..f * ch + ch]
            .iter()
            .any(|s| s.unsigned_abs() > QUIET.unsigned_abs());
        if !loud {
            continue;
        }
        match start {
            None => start = Some(f),
            Some(s) if f - last_loud > split => {
                out.push((s, last_loud + 1));
                start = Some(f);
            }
            _ => {}
        }
        last_loud = f;
    }
    if let Some(s) = start {
        out.push((s, last_loud + 1));
    }
    out
}

fn default_tolerance_hz() -> f64 {
    2.0
}

fn default_tolerance_pct() -> f64 {
    5.0
}

fn default_gap_ms() -> f64 {
    2.0
}

/// Samples at most this far from zero are quiet (for where the sound starts and ends).
const QUIET: i16 = 64;

impl WavCheck {
    /// Runs the check on a WAV file's bytes: (check name, passed, detail) per check.
    pub fn run(&self, file: Result<Vec<u8>, String>) -> Vec<(String, bool, String)> {
        let names = ["duration", "tones", "no-gaps"].map(|n| format!("{}-{n}", self.name));
        let pcm = match file.and_then(|b| parse(&b)) {
            Ok(p) => p,
            Err(e) => return names.into_iter().map(|n| (n, false, e.clone())).collect(),
        };
        let pcm = match self.part {
            None => pcm,
            Some(k) => {
                let split = ((self.split_ms / 1000.0) * f64::from(pcm.rate)) as usize;
                let found = parts(&pcm, split.max(1));
                let Some(&(a, b)) = found.get(k) else {
                    let why = format!("no part {k}: the file has {} part(s)", found.len());
                    return names.into_iter().map(|n| (n, false, why.clone())).collect();
                };
                let ch = usize::from(pcm.channels.max(1));
                Pcm {
                    samples: pcm.samples[a * ch..b * ch].to_vec(),
                    ..pcm
                }
            }
        };
        let min_gap = ((self.gap_ms / 1000.0) * f64::from(pcm.rate)).max(1.0) as usize;
        let a = analyze(&pcm, QUIET, min_gap);
        let Some(range) = a.sound else {
            let why = format!("{} frames, all silent (peak {})", a.frames, a.peak);
            return names.into_iter().map(|n| (n, false, why.clone())).collect();
        };
        let secs = a.sound_secs(pcm.rate);
        let dur_ok = (secs - self.secs).abs() <= self.secs * self.tolerance_pct / 100.0;
        let found = peaks(&pcm, range, 5000.0, 0.1);
        let listed: Vec<String> = found
            .iter()
            .take(4)
            .map(|p| format!("{:.1}", p.0))
            .collect();
        let tones_ok = self.tones_hz.iter().all(|t| {
            found
                .iter()
                .take(self.tones_hz.len() + 2)
                .any(|p| (p.0 - t).abs() <= self.tolerance_hz)
        }) && !found.is_empty()
            && self
                .tones_hz
                .iter()
                .any(|t| (found[0].0 - t).abs() <= self.tolerance_hz);
        let gaps: Vec<String> = a
            .gaps
            .iter()
            .take(5)
            .map(|(at, n)| {
                format!(
                    "{:.1}ms@{:.3}s",
                    *n as f64 * 1000.0 / f64::from(pcm.rate),
                    (*at - range.0) as f64 / f64::from(pcm.rate)
                )
            })
            .collect();
        vec![
            (
                names[0].clone(),
                dur_ok,
                format!(
                    "{secs:.3} s of sound (want {} ±{}%) at {} Hz, {} ch, peak {}",
                    self.secs, self.tolerance_pct, pcm.rate, pcm.channels, a.peak
                ),
            ),
            (
                names[1].clone(),
                tones_ok,
                format!(
                    "strongest Hz: {} (want {:?} ±{})",
                    listed.join(","),
                    self.tones_hz,
                    self.tolerance_hz
                ),
            ),
            (
                names[2].clone(),
                a.gaps.is_empty(),
                format!(
                    "{} gaps of >= {} ms: {}",
                    a.gaps.len(),
                    self.gap_ms,
                    gaps.join(",")
                ),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tones_that_start_apart_are_both_found() {
        // Two guests' tones started by the same go, seen 0.8 s apart: 440 Hz for 0–3 s,
        // 660 Hz for 0.8–3.8 s (a CI run had them about 0.5 s apart plus the slow start).
        let rate = 48_000;
        let frames = rate as usize * 38 / 10;
        let a = tone(440.0, rate, 1, 0.3, 0, rate as usize * 3);
        let b = tone(660.0, rate, 1, 0.3, 0, rate as usize * 3);
        let start_b = rate as usize * 8 / 10;
        let samples: Vec<i16> = (0..frames)
            .map(|i| {
                let x = a.get(i).copied().unwrap_or(0);
                let y = i
                    .checked_sub(start_b)
                    .and_then(|j| b.get(j))
                    .copied()
                    .unwrap_or(0);
                x.saturating_add(y)
            })
            .collect();
        let pcm = Pcm {
            rate,
            channels: 1,
            samples,
        };
        let p = peaks(&pcm, (0, frames), 5000.0, 0.1);
        let found = |hz: f64| p.iter().take(4).any(|q| (q.0 - hz).abs() <= 2.0);
        assert!(found(440.0) && found(660.0), "{p:?}");
    }

    fn wav(pcm: &Pcm, data_len_field: Option<u32>) -> Vec<u8> {
        let data: Vec<u8> = pcm.samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&pcm.channels.to_le_bytes());
        b.extend_from_slice(&pcm.rate.to_le_bytes());
        b.extend_from_slice(&(pcm.rate * 2 * u32::from(pcm.channels)).to_le_bytes());
        b.extend_from_slice(&(2 * pcm.channels).to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&data_len_field.unwrap_or(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&data);
        b
    }

    #[test]
    fn a_tone_with_silence_around_is_found_and_measured() {
        let mut samples = vec![0i16; 2 * 4800];
        samples.extend(tone(440.0, 48_000, 2, 0.5, 0, 48_000));
        samples.extend(vec![0; 2 * 4800]);
        let pcm = Pcm {
            rate: 48_000,
            channels: 2,
            samples,
        };
        // A writer killed before it wrote the sizes.
        let back = parse(&wav(&pcm, Some(0))).unwrap();
        assert_eq!(back, pcm);
        let a = analyze(&back, 64, 48);
        assert!((a.sound_secs(48_000) - 1.0).abs() < 0.002, "{a:?}");
        assert!(a.gaps.is_empty(), "{:?}", a.gaps);
        let (s, e) = a.sound.unwrap();
        let p = peaks(&back, (s, e), 4000.0, 0.2);
        assert!((p[0].0 - 440.0).abs() < 0.5, "{p:?}");
        assert_eq!(p.len(), 1, "{p:?}");
    }

    #[test]
    fn a_mix_shows_both_tones_and_a_dropout_shows_as_a_gap() {
        let a = tone(440.0, 48_000, 1, 0.3, 0, 48_000);
        let b = tone(660.0, 48_000, 1, 0.3, 0, 48_000);
        let mut samples: Vec<i16> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        samples[20_000..21_024].fill(0);
        let pcm = Pcm {
            rate: 48_000,
            channels: 1,
            samples,
        };
        let an = analyze(&pcm, 64, 48);
        assert_eq!(an.gaps, vec![(20_000, 1024)]);
        let p = peaks(&pcm, an.sound.unwrap(), 4000.0, 0.2);
        let mut hz: Vec<f64> = p.iter().take(2).map(|x| x.0.round()).collect();
        hz.sort_by(f64::total_cmp);
        assert_eq!(hz, vec![440.0, 660.0], "{p:?}");
    }

    #[test]
    fn the_scenario_check_passes_a_clean_tone_and_names_what_is_wrong() {
        let check = WavCheck {
            name: "tone".into(),
            source: WavSource::Hda,
            tones_hz: vec![440.0],
            secs: 1.0,
            tolerance_hz: 2.0,
            tolerance_pct: 5.0,
            gap_ms: 2.0,
            part: None,
            split_ms: 100.0,
        };
        let mut samples = vec![0i16; 2 * 2400];
        samples.extend(tone(440.0, 48_000, 2, 0.5, 0, 48_000));
        let good = Pcm {
            rate: 48_000,
            channels: 2,
            samples,
        };
        let r = check.run(Ok(wav(&good, None)));
        assert!(r.iter().all(|c| c.1), "{r:?}");
        // A dropped period (1024 frames of zeros) in the middle.
        let mut dropped = good.clone();
        dropped.samples[2 * 30_000..2 * 31_024].fill(0);
        let r = check.run(Ok(wav(&dropped, None)));
        assert!(r[0].1 && r[1].1 && !r[2].1, "{r:?}");
        assert!(r[2].2.starts_with("1 gaps"), "{r:?}");
        // The wrong tone, too short.
        let mut wrong = good.clone();
        wrong.samples = tone(660.0, 48_000, 2, 0.5, 0, 40_000);
        let r = check.run(Ok(wav(&wrong, None)));
        assert!(!r[0].1 && !r[1].1 && r[2].1, "{r:?}");
        // No file.
        let r = check.run(Err("no such file".into()));
        assert!(r.iter().all(|c| !c.1 && c.2 == "no such file"));
    }

    #[test]
    fn parts_are_cut_at_silence_and_checked_alone() {
        let mut samples = tone(440.0, 48_000, 1, 0.5, 0, 24_000);
        samples.extend(vec![0; 9600]); // 200 ms
        let mix: Vec<i16> = tone(440.0, 48_000, 1, 0.3, 0, 48_000)
            .iter()
            .zip(tone(660.0, 48_000, 1, 0.3, 0, 48_000))
            .map(|(a, b)| a + b)
            .collect();
        samples.extend(mix);
        samples.extend(vec![0; 2400]); // 50 ms: not a split
        samples.extend(tone(1000.0, 48_000, 1, 0.5, 0, 4800));
        let pcm = Pcm {
            rate: 48_000,
            channels: 1,
            samples,
        };
        let p = parts(&pcm, 4800);
        assert_eq!(p.len(), 2, "{p:?}");
        let mut check = WavCheck {
            name: "mix".into(),
            source: WavSource::Hda,
            tones_hz: vec![440.0, 660.0],
            secs: 1.15,
            tolerance_hz: 2.0,
            tolerance_pct: 5.0,
            gap_ms: 100.0,
            part: Some(1),
            split_ms: 100.0,
        };
        let r = check.run(Ok(wav(&pcm, None)));
        assert!(r.iter().all(|c| c.1), "{r:?}");
        check.part = Some(0);
        let r = check.run(Ok(wav(&pcm, None)));
        assert!(!r[1].1, "part 0 has no 660 Hz: {r:?}");
        check.part = Some(2);
        let r = check.run(Ok(wav(&pcm, None)));
        assert!(r.iter().all(|c| !c.1 && c.2.contains("2 part(s)")), "{r:?}");
    }

    #[test]
    fn not_pcm16_is_refused() {
        let pcm = Pcm {
            rate: 8000,
            channels: 1,
            samples: vec![1, 2],
        };
        let mut b = wav(&pcm, None);
        b[34] = 8; // 8 bits per sample
        assert!(parse(&b).unwrap_err().contains("not 16-bit PCM"));
        assert!(parse(b"nonsense").is_err());
    }

    #[test]
    fn the_source_defaults_to_the_hda_and_names_its_file_and_device() {
        let parse = |extra: &str| -> Result<WavCheck, String> {
            toml::from_str(&format!(
                "name = \"t\"\ntones_hz = [440.0]\nsecs = 3.0\n{extra}"
            ))
            .map_err(|e| e.to_string())
        };
        let hda = parse("").unwrap();
        assert_eq!(hda.source, WavSource::Hda);
        assert_eq!(hda.source.file(), "hda-out.wav");
        let usb = parse("source = \"usb-audio\"").unwrap();
        assert_eq!(usb.source, WavSource::UsbAudio);
        assert_eq!(usb.source.file(), "usb-audio-out.wav");
        assert_eq!(usb.source.device().name(), "xhci-media");
        assert!(parse("source = \"pc-speaker\"").is_err());
        for s in WavSource::ALL {
            assert_eq!(
                parse(&format!("source = \"{}\"", s.name())).unwrap().source,
                s
            );
        }
    }
}
