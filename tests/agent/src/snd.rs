//! `testbed-agent snd record <pcm> --secs S [--rate R] [--channels C]` records S seconds
//! worth of frames from an ALSA capture device and fails unless they came at the rate
//! (±5 %, timed from the start to the last frame) without an overrun.
//!
//! `testbed-agent snd tone <pcm> --freq F --secs S [--rate R] [--channels C] [--amp A]`:
//! plays a sine tone on an ALSA playback device (`/dev/snd/pcmC0D0p`) through the kernel's
//! PCM ioctls, without alsa-lib: hardware parameters (interleaved S16_LE, the rate and
//! channels asked, 1024-frame periods, 8 of them), software parameters (start when the
//! buffer is full, as aplay does), prepare, write every period, a buffer of silence, drop.
//! Underruns (`EPIPE`) are counted and recovered (prepare again), and reported.
//! After every write once the stream runs it asks ALSA for the delay (`SNDRV_PCM_IOCTL_DELAY`,
//! snd_pcm_delay: frames written and not yet reported played by the driver, i.e. how long a
//! frame written now waits before the device plays it), and it times the stream's start to
//! the return of the first write that needed room (the device took its first period). A last
//! line, `snd-stats underruns=U delay_med_ms=… delay_min_ms=… delay_max_ms=… samples=N
//! first_period_ms=… wall_s=…`, is for `cargo xtask bench snd`, whose guests run
//! `testbed-agent snd serve <pcm> --freq F [--rate R] [--channels C] [--amp A]`: a tone of
//! the seconds asked each time dom0 writes the domain's `data/go` (see [`serve`]); dom0
//! collects the results with `testbed-agent snd wait <path>… [--timeout S]` (see [`wait`]).
//!
//! The agent's second `unsafe` module: the ioctl boundary, as in `xendev`. Numbers and
//! layouts from Linux `include/uapi/sound/asound.h` (x86-64).

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

use testbed_agent::wav::tone;

extern "C" {
    fn ioctl(fd: i32, request: u64, ...) -> i32;
}

/// `struct snd_mask`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Mask {
    bits: [u32; 8],
}

/// `struct snd_interval` (`flags`: openmin 1, openmax 2, integer 4, empty 8).
#[repr(C)]
#[derive(Clone, Copy)]
struct Interval {
    min: u32,
    max: u32,
    flags: u32,
}

/// `struct snd_pcm_hw_params` (608 bytes).
#[repr(C)]
struct HwParams {
    flags: u32,
    masks: [Mask; 3],
    mres: [Mask; 5],
    intervals: [Interval; 12],
    ires: [Interval; 9],
    rmask: u32,
    cmask: u32,
    info: u32,
    msbits: u32,
    rate_num: u32,
    rate_den: u32,
    fifo_size: u64,
    reserved: [u8; 64],
}

const _: () = assert!(std::mem::size_of::<HwParams>() == 608);

/// `struct snd_pcm_sw_params` (136 bytes).
#[repr(C)]
struct SwParams {
    tstamp_mode: i32,
    period_step: u32,
    sleep_min: u32,
    avail_min: u64,
    xfer_align: u64,
    start_threshold: u64,
    stop_threshold: u64,
    silence_threshold: u64,
    silence_size: u64,
    boundary: u64,
    proto: u32,
    tstamp_type: u32,
    reserved: [u8; 56],
}

const _: () = assert!(std::mem::size_of::<SwParams>() == 136);

/// `struct snd_xferi` (writing).
#[repr(C)]
struct Xferi {
    result: i64,
    buf: *const i16,
    frames: u64,
}

/// `struct snd_xferi` (reading).
#[repr(C)]
struct XferiIn {
    result: i64,
    buf: *mut i16,
    frames: u64,
}

const SNDRV_PCM_IOCTL_HW_PARAMS: u64 = 0xc260_4111;
const SNDRV_PCM_IOCTL_SW_PARAMS: u64 = 0xc088_4113;
const SNDRV_PCM_IOCTL_PREPARE: u64 = 0x4140;
const SNDRV_PCM_IOCTL_DROP: u64 = 0x4143;
const SNDRV_PCM_IOCTL_WRITEI_FRAMES: u64 = 0x4018_4150;
const SNDRV_PCM_IOCTL_READI_FRAMES: u64 = 0x8018_4151;
const SNDRV_PCM_IOCTL_START: u64 = 0x4142;
/// `_IOR('A', 0x21, snd_pcm_sframes_t)`.
const SNDRV_PCM_IOCTL_DELAY: u64 = 0x8008_4121;
const ACCESS_RW_INTERLEAVED: u32 = 3;
const FORMAT_S16_LE: u32 = 2;
/// Interval indexes (parameter − `SNDRV_PCM_HW_PARAM_FIRST_INTERVAL`).
const I_SAMPLE_BITS: usize = 0;
const I_FRAME_BITS: usize = 1;
const I_CHANNELS: usize = 2;
const I_RATE: usize = 3;
const I_PERIOD_SIZE: usize = 5;
const I_PERIODS: usize = 7;
const I_BUFFER_SIZE: usize = 9;
const EPIPE: i32 = 32;

const PERIOD: u32 = 1024;
const PERIODS: u32 = 8;

fn hw_params(rate: u32, channels: u32) -> HwParams {
    let any = Interval {
        min: 0,
        max: u32::MAX,
        flags: 0,
    };
    let mut p = HwParams {
        flags: 0,
        masks: [Mask {
            bits: [u32::MAX; 8],
        }; 3],
        mres: [Mask { bits: [0; 8] }; 5],
        intervals: [any; 12],
        ires: [any; 9],
        rmask: u32::MAX,
        cmask: 0,
        info: u32::MAX,
        msbits: 0,
        rate_num: 0,
        rate_den: 0,
        fifo_size: 0,
        reserved: [0; 64],
    };
    let one = |bit: u32| {
        let mut m = Mask { bits: [0; 8] };
        m.bits[(bit / 32) as usize] = 1 << (bit % 32);
        m
    };
    p.masks[0] = one(ACCESS_RW_INTERLEAVED);
    p.masks[1] = one(FORMAT_S16_LE);
    p.masks[2] = one(0);
    let exact = |v: u32| Interval {
        min: v,
        max: v,
        flags: 4,
    };
    p.intervals[I_SAMPLE_BITS] = exact(16);
    p.intervals[I_FRAME_BITS] = exact(16 * channels);
    p.intervals[I_CHANNELS] = exact(channels);
    p.intervals[I_RATE] = exact(rate);
    p.intervals[I_PERIOD_SIZE] = exact(PERIOD);
    p.intervals[I_PERIODS] = exact(PERIODS);
    p.intervals[I_BUFFER_SIZE] = exact(PERIOD * PERIODS);
    p
}

fn arg<T: std::str::FromStr>(args: &[&str], name: &str, default: Option<T>) -> Result<T, String> {
    match args.iter().position(|a| *a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name}: bad or missing value")),
        None => default.ok_or_else(|| format!("{name} is required")),
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `snd …` subcommands.
pub fn main(args: &[&str]) -> Result<(), String> {
    match args {
        ["tone", dev, rest @ ..] => play_tone(dev, rest),
        ["record", dev, rest @ ..] => record(dev, rest),
        ["serve", dev, rest @ ..] => serve(dev, rest),
        ["wait", rest @ ..] => wait(rest),
        _ => Err("usage: snd tone <pcm> --freq F --secs S [--rate R] [--channels C] [--amp A] | snd record <pcm> --secs S [--rate R] [--channels C] | snd serve <pcm> --freq F [--rate R] [--channels C] [--amp A] | snd wait <path>... [--timeout S]".into()),
    }
}

/// Opens `dev` and sets it up for S16_LE at `rate` × `channels`, 8 periods of 1024 frames,
/// starting by itself once `start` frames are in the buffer.
fn setup(dev: &str, rate: u32, channels: u16, start: u64) -> Result<std::fs::File, String> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .map_err(|e| format!("{dev}: {e}"))?;
    let fd = f.as_raw_fd();
    let mut p = hw_params(rate, channels.into());
    // SAFETY: `p` is a live `snd_pcm_hw_params` of the size the request number encodes.
    if unsafe { ioctl(fd, SNDRV_PCM_IOCTL_HW_PARAMS, &mut p as *mut HwParams) } < 0 {
        return Err(format!(
            "{dev}: HW_PARAMS {rate} Hz, {channels} ch, S16_LE: {}",
            std::io::Error::last_os_error()
        ));
    }
    let buffer = u64::from(PERIOD * PERIODS);
    let mut sw = SwParams {
        tstamp_mode: 0,
        period_step: 1,
        sleep_min: 0,
        avail_min: u64::from(PERIOD),
        xfer_align: 1,
        start_threshold: start,
        stop_threshold: buffer,
        silence_threshold: 0,
        silence_size: 0,
        boundary: 0,
        proto: 0,
        tstamp_type: 0,
        reserved: [0; 56],
    };
    // SAFETY: `sw` is a live `snd_pcm_sw_params` of the size the request number encodes.
    if unsafe { ioctl(fd, SNDRV_PCM_IOCTL_SW_PARAMS, &mut sw as *mut SwParams) } < 0 {
        return Err(format!(
            "{dev}: SW_PARAMS: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: a request without argument.
    if unsafe { ioctl(fd, SNDRV_PCM_IOCTL_PREPARE) } < 0 {
        return Err(format!(
            "{dev}: PREPARE: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(f)
}

/// Records `--secs` worth of frames and checks they came at the rate (±5 %: the time
/// from the start to the last frame), then drops the stream.
fn record(dev: &str, rest: &[&str]) -> Result<(), String> {
    let secs: f64 = arg(rest, "--secs", None)?;
    let rate: u32 = arg(rest, "--rate", Some(48_000))?;
    let channels: u16 = arg(rest, "--channels", Some(2))?;
    let f = setup(dev, rate, channels, u64::from(PERIOD * PERIODS))?;
    let fd = f.as_raw_fd();
    // SAFETY: a request without argument.
    if unsafe { ioctl(fd, SNDRV_PCM_IOCTL_START) } < 0 {
        return Err(format!("{dev}: START: {}", std::io::Error::last_os_error()));
    }
    let t0 = std::time::Instant::now();
    let total = (secs * f64::from(rate)).round() as u64;
    let mut buf = vec![0i16; PERIOD as usize * usize::from(channels)];
    let (mut got, mut overruns, mut loud) = (0u64, 0u32, 0u64);
    while got < total {
        let want = (total - got).min(u64::from(PERIOD));
        let mut x = XferiIn {
            result: 0,
            buf: buf.as_mut_ptr(),
            frames: want,
        };
        // SAFETY: `x` names `want` frames inside `buf`, which outlives the call.
        if unsafe { ioctl(fd, SNDRV_PCM_IOCTL_READI_FRAMES, &mut x as *mut XferiIn) } < 0 {
            let e = errno();
            if e == EPIPE {
                overruns += 1;
                // SAFETY: requests without argument.
                unsafe {
                    ioctl(fd, SNDRV_PCM_IOCTL_PREPARE);
                    ioctl(fd, SNDRV_PCM_IOCTL_START);
                }
                continue;
            }
            return Err(format!(
                "{dev}: READI: {}",
                std::io::Error::from_raw_os_error(e)
            ));
        }
        let n = (x.result.max(0) as u64).min(want);
        loud += buf[..n as usize * usize::from(channels)]
            .iter()
            .filter(|s| **s != 0)
            .count() as u64;
        got += n;
    }
    let t = t0.elapsed().as_secs_f64();
    // SAFETY: a request without argument.
    if unsafe { ioctl(fd, SNDRV_PCM_IOCTL_DROP) } < 0 {
        return Err(format!("{dev}: DROP: {}", std::io::Error::last_os_error()));
    }
    let measured = got as f64 / t;
    println!(
        "recorded {got} frames in {t:.3} s: {measured:.0} frames/s (want {rate} ±5%), {overruns} overruns, {loud} non-zero samples"
    );
    if (measured - f64::from(rate)).abs() > 0.05 * f64::from(rate) || overruns > 0 {
        return Err(format!(
            "{got} frames in {t:.3} s ({overruns} overruns): not {rate} Hz ±5%"
        ));
    }
    Ok(())
}

/// Plays a tone (see the module's documentation).
fn play_tone(dev: &str, rest: &[&str]) -> Result<(), String> {
    let freq: f64 = arg(rest, "--freq", None)?;
    let secs: f64 = arg(rest, "--secs", None)?;
    let rate: u32 = arg(rest, "--rate", Some(48_000))?;
    let channels: u16 = arg(rest, "--channels", Some(2))?;
    let amp: f64 = arg(rest, "--amp", Some(0.5))?;
    let stats = play(dev, freq, secs, rate, channels, amp)?;
    println!("{stats}");
    Ok(())
}

/// `snd serve <pcm> --freq F [--rate R] [--channels C] [--amp A]` (`bench snd`'s guests):
/// waits on a xenstore watch (no polling, so an idle guest costs no CPU) for its domain's
/// `data/go` to take a new value `T:SECS`, plays SECS seconds of the tone as `snd tone`
/// does, writes the `snd-stats` line without its first word to `data/res-T` (`underruns=fail`
/// when the play failed), and waits again; it never returns on its own.
fn serve(dev: &str, rest: &[&str]) -> Result<(), String> {
    let freq: f64 = arg(rest, "--freq", None)?;
    let rate: u32 = arg(rest, "--rate", Some(48_000))?;
    let channels: u16 = arg(rest, "--channels", Some(2))?;
    let amp: f64 = arg(rest, "--amp", Some(0.5))?;
    let mut xs = xdd_control::xenstore::Xenstore::open()?;
    let home = format!("/local/domain/{}", xs.read("domid")?);
    let go = format!("{home}/data/go");
    xs.watch(&go, "go")?;
    let mut last = String::new();
    loop {
        xs.next_event()?;
        let Ok(v) = xs.read(&go) else { continue };
        if v == last {
            continue;
        }
        last = v.clone();
        let Some((turn, secs)) = v.split_once(':') else {
            continue;
        };
        let res = match secs.parse() {
            Ok(secs) => match play(dev, freq, secs, rate, channels, amp) {
                Ok(stats) => {
                    println!("bench {v}: {stats}");
                    stats.trim_start_matches("snd-stats ").to_string()
                }
                Err(e) => {
                    println!("bench {v}: {e}");
                    "underruns=fail".into()
                }
            },
            Err(_) => "underruns=fail".into(),
        };
        xs.write(&format!("{home}/data/res-{turn}"), &res)?;
    }
}

/// `snd wait <path>… [--timeout S]` (`bench snd`'s dom0 driver): waits on xenstore watches
/// (no polling, so the waiting costs dom0 no CPU while guests play) until every path exists,
/// then prints their values, one a line, in order; after S seconds (default 60) it fails,
/// printing nothing.
fn wait(rest: &[&str]) -> Result<(), String> {
    let timeout: f64 = arg(rest, "--timeout", Some(60.0))?;
    let paths: Vec<&str> = rest
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && (*i == 0 || rest[i - 1] != "--timeout"))
        .map(|(_, a)| *a)
        .collect();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs_f64(timeout));
        eprintln!("testbed-agent: snd wait: not every path appeared within {timeout} s");
        std::process::exit(1);
    });
    let mut xs = xdd_control::xenstore::Xenstore::open()?;
    for p in &paths {
        xs.watch(p, "res")?;
    }
    loop {
        let values: Vec<Option<String>> = paths.iter().map(|p| xs.read(p).ok()).collect();
        if values.iter().all(Option::is_some) {
            for v in values.into_iter().flatten() {
                println!("{v}");
            }
            return Ok(());
        }
        xs.next_event()?;
    }
}

/// Plays `secs` seconds of a tone; prints the frames played and returns the `snd-stats`
/// line.
fn play(
    dev: &str,
    freq: f64,
    secs: f64,
    rate: u32,
    channels: u16,
    amp: f64,
) -> Result<String, String> {
    // Start once the buffer is full, as aplay does (ALSA's default starts at the first
    // frame, and a guest on an emulated CPU then underruns right away).
    let f = setup(dev, rate, channels, u64::from(PERIOD * PERIODS))?;
    let fd = f.as_raw_fd();
    let total = (secs * f64::from(rate)).round() as u64;
    // After the tone, a buffer of silence: once it is accepted the backend has taken every
    // frame of the tone, and the stream is dropped (not drained: snd_xen_front signals a
    // period only when more than a period's frames were reported since the last one, so a
    // drain may wait for a wakeup that never comes and fail with EIO).
    let tail = u64::from(PERIOD * PERIODS);
    let mut done = 0u64;
    let mut underruns = 0u32;
    let t0 = std::time::Instant::now();
    // When the stream started (the write that filled the buffer returned) and how long the
    // next write waited for room; ALSA's delay after every write while running, in frames.
    let mut started: Option<std::time::Instant> = None;
    let mut first_period: Option<f64> = None;
    let mut delays: Vec<i64> = Vec::new();
    while done < total + tail {
        let n = (total + tail - done).min(u64::from(PERIOD)) as usize;
        let chunk = if done < total {
            tone(
                freq,
                rate,
                channels,
                amp,
                done,
                n.min((total - done) as usize),
            )
        } else {
            vec![0; n * usize::from(channels)]
        };
        let n = chunk.len() / usize::from(channels);
        let mut off = 0usize;
        while off < n {
            let mut x = Xferi {
                result: 0,
                buf: chunk[off * usize::from(channels)..].as_ptr(),
                frames: (n - off) as u64,
            };
            // SAFETY: `x` names `frames` frames inside `chunk`, which outlives the call.
            if unsafe { ioctl(fd, SNDRV_PCM_IOCTL_WRITEI_FRAMES, &mut x as *mut Xferi) } < 0 {
                let e = errno();
                if e == EPIPE {
                    underruns += 1;
                    // SAFETY: a request without argument.
                    unsafe { ioctl(fd, SNDRV_PCM_IOCTL_PREPARE) };
                    continue;
                }
                return Err(format!(
                    "{dev}: WRITEI: {}",
                    std::io::Error::from_raw_os_error(e)
                ));
            }
            off += x.result.max(0) as usize;
            match started {
                Some(t) => {
                    first_period.get_or_insert_with(|| t.elapsed().as_secs_f64() * 1000.0);
                    let mut d: i64 = 0;
                    // SAFETY: `d` is a live `snd_pcm_sframes_t`, as the request encodes.
                    if unsafe { ioctl(fd, SNDRV_PCM_IOCTL_DELAY, &mut d as *mut i64) } == 0 {
                        delays.push(d);
                    }
                }
                None if done + off as u64 >= u64::from(PERIOD * PERIODS) => {
                    started = Some(std::time::Instant::now());
                }
                None => {}
            }
        }
        done += n as u64;
    }
    let wall = t0.elapsed().as_secs_f64();
    // SAFETY: a request without argument.
    if unsafe { ioctl(fd, SNDRV_PCM_IOCTL_DROP) } < 0 {
        return Err(format!("{dev}: DROP: {}", std::io::Error::last_os_error()));
    }
    println!(
        "played {total} frames ({:.3} s) of {freq} Hz and {tail} of silence at {rate} Hz, {channels} ch, {underruns} underruns",
        total as f64 / f64::from(rate)
    );
    Ok(stats_line(underruns, &delays, rate, first_period, wall))
}

/// The player's `snd-stats …` line: underruns, ALSA's delay after each write (median, min,
/// max in ms at `rate`; `fail` without samples), the start's first period, the wall time.
fn stats_line(
    underruns: u32,
    delays: &[i64],
    rate: u32,
    first_period_ms: Option<f64>,
    wall_s: f64,
) -> String {
    let mut d = delays.to_vec();
    d.sort_unstable();
    let ms = |f: Option<&i64>| match f {
        Some(&f) => format!("{:.1}", f as f64 * 1000.0 / f64::from(rate)),
        None => "fail".into(),
    };
    let first = first_period_ms.map_or("fail".into(), |v| format!("{v:.1}"));
    format!(
        "snd-stats underruns={underruns} delay_med_ms={} delay_min_ms={} delay_max_ms={} samples={} first_period_ms={first} wall_s={wall_s:.3}",
        ms(d.get(d.len() / 2)),
        ms(d.first()),
        ms(d.last()),
        d.len()
    )
}

#[cfg(test)]
mod tests {
    use super::stats_line;

    #[test]
    fn the_stats_line_gives_delays_in_ms() {
        assert_eq!(
            stats_line(2, &[4800, 2400, 9600], 48_000, Some(21.3), 3.5),
            "snd-stats underruns=2 delay_med_ms=100.0 delay_min_ms=50.0 delay_max_ms=200.0 samples=3 first_period_ms=21.3 wall_s=3.500"
        );
        assert_eq!(
            stats_line(0, &[], 44_100, None, 0.0),
            "snd-stats underruns=0 delay_med_ms=fail delay_min_ms=fail delay_max_ms=fail samples=0 first_period_ms=fail wall_s=0.000"
        );
    }
}
