//! `cargo xtask bench snd`: Linux PV guests playing a tone through sounddd, beside the same
//! tone played by a guest that owns an identical Intel HDA itself, in one testbed boot
//! (tests/bench/snd.toml):
//!
//! - `xdd-1`, `xdd-2`, `xdd-4`: our audioback driver domain (PV, 32 MiB, `audioback.device=hda
//!   audioback.queue=8`) owns QEMU device `sound`; 1, 2 or 4 guests play at once through
//!   snd_xen_front (440, 550, 660, 880 Hz), mixed by sounddd;
//! - `direct`: a guest owns `sound-2` (the same ich9-intel-hda and hda-output codec) through
//!   pcifront and snd-hda-intel and plays the 440 Hz tone: no driver domain at all, the upper
//!   bound of any sound driver domain.
//!
//! Every player (`testbed-agent snd serve`, as `snd tone`) plays S seconds of a 48 kHz stereo S16 sine with
//! 1024-frame periods, 8 of them (a 170.7 ms buffer), started once the buffer is full, then a
//! buffer of silence. dom0 gives the setups their turns one at a time, the order rotated every
//! round. The figures of a turn:
//!
//! - **underruns**: the players' own (ALSA stopped the stream, `EPIPE`, summed over the
//!   playing guests); for xdd also sounddd's device underruns (`data/status/device-underruns`:
//!   periods the card played silence because sounddd was late) and the playing guests' card
//!   underruns (`data/vsnd/<fe>/0/underruns`: periods a running stream had no data), as
//!   deltas over the turn;
//! - **CPU per second of audio**: CPU seconds (`xl list`, 0.1 s resolution) taken before the
//!   first go and after the last player finished, divided by S: sounddd's, the playing
//!   guests' (summed), their sum (the path: sounddd + guests for xdd, the guest for direct),
//!   that divided by the streams playing at once (per second of one stream's audio), and
//!   dom0's (xenstore, the driver script). sounddd's CPU is also taken in direct's turns
//!   (idle) but not counted in direct's path;
//! - **latency from WRITE to the device**: ALSA's delay (`snd_pcm_delay`, the
//!   `SNDRV_PCM_IOCTL_DELAY` ioctl) sampled after every write while the stream runs: the
//!   frames written and not yet reported played by the driver, i.e. how long a frame written
//!   now waits before the device plays it, in ms (median per player, averaged over the
//!   playing guests; and the largest sample). With snd-hda-intel the driver reports the
//!   HDA's DMA position (`SDnLPIB`). With snd_xen_front it reports sounddd's `CUR_POS`: what
//!   the HDA has played of the stream, but at most half the guest's buffer (4 periods) behind
//!   what sounddd took into the card's queue, so up to `queue` − 4 = 4 periods (85.3 ms) more
//!   can wait in sounddd's queue than ALSA shows: the printed bound. QEMU's own audio
//!   buffering after the DMA position is the same device model on both sides and in neither.
//!   Also the time from the stream's start (the write that filled the buffer) to the return
//!   of the next write, i.e. until the driver reported the first period played (snd-hda-intel:
//!   the DMA position; snd_xen_front: sounddd's `CUR_POS`, which may run ahead of the card
//!   by the half buffer above).
//!
//! Prints every round, the medians with min–max and spread, the ratios xdd-N / direct and a
//! verdict line per figure. A benchmark: it fails only when a setup or a measurement fails.

use super::stats::{self, num, ratio};
use super::turns::{self, Report};
use crate::util::Result;

/// The setups: name in the scenario's `turn` lines, label printed.
const SETUPS: [&str; 4] = ["xdd-1", "xdd-2", "xdd-4", "direct"];
/// The driver-domain setups.
const XDD: [&str; 3] = ["xdd-1", "xdd-2", "xdd-4"];

/// Derived figures, added to every turn before printing: CPU seconds per second of audio.
const DD_PER_S: &str = "dd_cpu_per_s";
const GUESTS_PER_S: &str = "guests_cpu_per_s";
const PATH_PER_S: &str = "path_cpu_per_s";
/// The path's CPU per second of one stream's audio (xdd-N: divided by N).
const PATH_PER_STREAM_S: &str = "path_cpu_per_stream_s";
const DOM0_PER_S: &str = "dom0_cpu_per_s";

/// Frames sounddd may hold beyond the position it reports (`audioback.queue` 8 periods less
/// half the players' 8-period buffer), in ms at 48 kHz.
const HIDDEN_QUEUE_MS: f64 = 4.0 * 1024.0 * 1000.0 / 48_000.0;

/// Which setups a figure has a row for.
#[derive(Clone, Copy, PartialEq)]
enum Rows {
    /// Every setup, xdd-N compared with direct.
    Compared,
    /// Every setup, not compared (sounddd's own CPU, idle in direct's turns).
    All,
    /// Only the xdd setups (sounddd's counters).
    Xdd,
}

/// The printed figures: key in the turn, title, unit, decimals, rows.
const FIGURES: &[(&str, &str, &str, usize, Rows)] = &[
    (
        "guest_underruns",
        "underruns seen by the players (EPIPE, summed over the playing guests)",
        "count",
        0,
        Rows::All,
    ),
    (
        "dev_underruns",
        "sounddd device underruns (periods of silence: sounddd late)",
        "count",
        0,
        Rows::Xdd,
    ),
    (
        "card_underruns",
        "sounddd card underruns (periods a running stream had no data)",
        "count",
        0,
        Rows::Xdd,
    ),
    (
        PATH_PER_S,
        "CPU of the path per second of audio (sounddd + playing guests / the guest)",
        "s/s",
        3,
        Rows::Compared,
    ),
    (
        PATH_PER_STREAM_S,
        "CPU of the path per second of one stream's audio (xdd-N: / N)",
        "s/s",
        3,
        Rows::Compared,
    ),
    (
        DD_PER_S,
        "sounddd's CPU per second of audio (idle in direct's turns)",
        "s/s",
        3,
        Rows::All,
    ),
    (
        GUESTS_PER_S,
        "playing guests' CPU per second of audio (summed)",
        "s/s",
        3,
        Rows::Compared,
    ),
    (
        DOM0_PER_S,
        "dom0's CPU per second of audio",
        "s/s",
        3,
        Rows::Compared,
    ),
    (
        "delay_ms",
        "WRITE-to-device latency: ALSA delay after each write, median (mean over guests)",
        "ms",
        1,
        Rows::Compared,
    ),
    (
        "delay_max_ms",
        "WRITE-to-device latency: largest ALSA delay sample",
        "ms",
        1,
        Rows::Compared,
    ),
    (
        "first_period_ms",
        "start to the first period reported played (slowest guest)",
        "ms",
        1,
        Rows::Compared,
    ),
    (
        "secs",
        "turn wall time (dom0's clock)",
        "s",
        1,
        Rows::Compared,
    ),
];

/// Runs the snd benchmark.
pub fn run() -> Result {
    turns::run_and_print("snd", derive, render, &["guest_underruns", "delay_ms"])
}

/// Adds the CPU seconds per second of audio to every turn: sounddd's, the playing guests',
/// the path's (sounddd's counted only in the xdd setups), that per stream, and dom0's.
fn derive(rep: &mut Report) {
    for t in &mut rep.turns {
        let get = |k: &str| t.values.get(k).copied().unwrap_or(f64::NAN);
        let audio = get("audio_s");
        let (dd, guests) = (get("dd_cpu"), get("guests_cpu"));
        let path = if t.setup == "direct" {
            guests
        } else {
            dd + guests
        };
        let per_s = |cpu: f64| ratio(cpu, audio);
        let values = [
            (DD_PER_S, per_s(dd)),
            (GUESTS_PER_S, per_s(guests)),
            (PATH_PER_S, per_s(path)),
            (PATH_PER_STREAM_S, ratio(per_s(path), get("streams"))),
            (DOM0_PER_S, per_s(get("dom0_cpu"))),
        ];
        for (k, v) in values {
            t.values.insert(k.into(), v);
        }
    }
}

/// The printed result.
fn render(rep: &Report) -> String {
    let rounds = rep.rounds();
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let audio = stats::median(&rep.series("xdd-1", "audio_s"));
    line(String::new());
    line(format!(
        "snd benchmark: Linux PV guests play a {}-s 48 kHz stereo S16 tone (1024-frame periods, \
         8 of them: a 170.7 ms buffer)",
        num(audio, 0)
    ));
    line(
        "  xdd-N  = our audioback, PV 32 MiB, owning ich9-intel-hda (queue 8 periods); N guests \
         play at once through snd_xen_front"
            .into(),
    );
    line(
        "  direct = an identical HDA passed through to the guest itself, snd-hda-intel (upper \
         bound)"
            .into(),
    );
    line(
        "  CPU: xl list seconds over the turn / seconds of audio; latency: ALSA's delay \
         (snd_pcm_delay) after every write,"
            .into(),
    );
    line(format!(
        "  i.e. frames written and not yet played by the device as the driver reports it; for \
         xdd up to {HIDDEN_QUEUE_MS:.1} ms more wait in sounddd's queue"
    ));
    line(format!(
        "{rounds} rounds, order rotated each round; medians compared, ratios are xdd-N / direct"
    ));
    let mut medians = std::collections::BTreeMap::new();
    for &(key, title, unit, digits, rows) in FIGURES {
        line(String::new());
        line(format!("{title} [{unit}]"));
        let setups: &[&str] = if rows == Rows::Xdd { &XDD } else { &SETUPS };
        for &setup in setups {
            let v = rep.series(setup, key);
            medians.insert((setup, key), stats::median(&v));
            line(stats::row(setup, 7, &v, digits));
        }
        if rows == Rows::Compared {
            let r: Vec<String> = XDD
                .iter()
                .map(|s| {
                    format!(
                        "{s} {}x",
                        num(ratio(medians[&(*s, key)], medians[&("direct", key)]), 2)
                    )
                })
                .collect();
            line(format!("  ratio   {}", r.join(", ")));
        }
    }
    line(String::new());
    line(format!(
        "sounddd over the whole run (warm-up included): {} periods played, {} device underruns, \
         mixer at most {} ms late",
        num(rep.word("status", "periods-played", 0), 0),
        num(rep.word("status", "device-underruns", 0), 0),
        num(rep.word("status", "mixer-late-max-us", 0) / 1000.0, 1)
    ));
    line(format!(
        "memory (xl list): sounddd {} MiB, each xdd guest {} MiB; direct guest {} MiB",
        num(rep.word("memory", "sounddd", 0), 0),
        num(rep.word("memory", "g1", 0), 0),
        num(rep.word("memory", "gdirect", 0), 0)
    ));
    line(String::new());
    let total = |setup: &str, key: &str| stats::sum(&rep.series(setup, key));
    // Turns whose player failed (EIO, no result) are not underrun-free: say how many.
    let failed = |setup: &str| {
        let n = rep
            .series(setup, "guest_underruns")
            .iter()
            .filter(|v| v.is_nan())
            .count();
        if n == 0 {
            String::new()
        } else {
            format!(" ({n} failed turns)")
        }
    };
    let xdd_under: Vec<String> = XDD
        .iter()
        .map(|s| {
            format!(
                "{s} {} player / {} device / {} card{}",
                num(total(s, "guest_underruns"), 0),
                num(total(s, "dev_underruns"), 0),
                num(total(s, "card_underruns"), 0),
                failed(s)
            )
        })
        .collect();
    line(format!(
        "verdict, underruns over {rounds} rounds: {}; direct {} player{}",
        xdd_under.join(", "),
        num(total("direct", "guest_underruns"), 0),
        failed("direct")
    ));
    let cmp = |key: &str, digits: usize| -> String {
        XDD.iter()
            .map(|s| {
                format!(
                    "{s} {} ({}x)",
                    num(medians[&(*s, key)], digits),
                    num(ratio(medians[&(*s, key)], medians[&("direct", key)]), 2)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    line(format!(
        "verdict, CPU of the path per second of audio: {} vs direct {} s/s",
        cmp(PATH_PER_S, 3),
        num(medians[&("direct", PATH_PER_S)], 3)
    ));
    line(format!(
        "verdict, WRITE-to-device latency (median ALSA delay): {} vs direct {} ms; xdd's \
         bound with sounddd's queue: +{HIDDEN_QUEUE_MS:.1} ms",
        cmp("delay_ms", 1),
        num(medians[&("direct", "delay_ms")], 1)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
turn round=1 setup=xdd-1 streams=1 audio_s=6 guest_underruns=0 delay_ms=150.0 delay_max_ms=170.0 first_period_ms=30.0 play_wall_s=6.30 dev_underruns=0 card_underruns=1 dd_cpu=1.2 guests_cpu=0.6 dom0_cpu=0.3 secs=7.0
turn round=1 setup=xdd-2 streams=2 audio_s=6 guest_underruns=0 delay_ms=152.0 delay_max_ms=171.0 first_period_ms=35.0 play_wall_s=6.30 dev_underruns=1 card_underruns=2 dd_cpu=1.8 guests_cpu=1.2 dom0_cpu=0.3 secs=7.1
turn round=1 setup=xdd-4 streams=4 audio_s=6 guest_underruns=1 delay_ms=155.0 delay_max_ms=172.0 first_period_ms=40.0 play_wall_s=6.40 dev_underruns=2 card_underruns=4 dd_cpu=3.0 guests_cpu=2.4 dom0_cpu=0.6 secs=7.5
turn round=1 setup=direct streams=1 audio_s=6 guest_underruns=0 delay_ms=100.0 delay_max_ms=160.0 first_period_ms=20.0 play_wall_s=6.20 dd_cpu=0.0 guests_cpu=0.6 dom0_cpu=0.3 secs=6.9
turn round=2 setup=direct streams=1 audio_s=6 guest_underruns=0 delay_ms=120.0 delay_max_ms=160.0 first_period_ms=22.0 play_wall_s=6.20 dd_cpu=0.1 guests_cpu=0.6 dom0_cpu=0.3 secs=6.9
turn round=2 setup=xdd-1 streams=1 audio_s=6 guest_underruns=0 delay_ms=160.0 delay_max_ms=170.0 first_period_ms=30.0 play_wall_s=6.30 dev_underruns=0 card_underruns=1 dd_cpu=1.2 guests_cpu=1.2 dom0_cpu=0.3 secs=7.0
turn round=2 setup=xdd-2 streams=2 audio_s=6 guest_underruns=fail delay_ms=fail delay_max_ms=fail first_period_ms=fail play_wall_s=fail dev_underruns=0 card_underruns=0 dd_cpu=1.8 guests_cpu=1.2 dom0_cpu=0.3 secs=60.0
turn round=2 setup=xdd-4 streams=4 audio_s=6 guest_underruns=0 delay_ms=157.0 delay_max_ms=172.0 first_period_ms=40.0 play_wall_s=6.40 dev_underruns=0 card_underruns=4 dd_cpu=3.0 guests_cpu=2.4 dom0_cpu=0.6 secs=7.5
status periods-played 12345
status device-underruns 3
status mixer-late-max-us 41000
memory sounddd 32
memory g1 160
memory gdirect 160
";

    fn sample() -> Report {
        let mut rep = Report::parse(SAMPLE.lines());
        derive(&mut rep);
        rep
    }

    #[test]
    fn derives_cpu_per_second_of_audio() {
        let rep = sample();
        // xdd's path counts sounddd and the guests, direct's only the guest.
        let path = rep.series("xdd-1", PATH_PER_S);
        assert!((path[0] - 0.3).abs() < 1e-9, "{path:?}");
        assert!((path[1] - 0.4).abs() < 1e-9, "{path:?}");
        let direct = rep.series("direct", PATH_PER_S);
        assert!(direct.iter().all(|v| (v - 0.1).abs() < 1e-9), "{direct:?}");
        // xdd-4's path per stream: (3.0 + 2.4) / 6 / 4.
        let per_stream = rep.series("xdd-4", PATH_PER_STREAM_S);
        assert!((per_stream[0] - 0.225).abs() < 1e-9, "{per_stream:?}");
        let dd = rep.series("direct", DD_PER_S);
        assert!((dd[1] - 0.1 / 6.0).abs() < 1e-9, "{dd:?}");
    }

    #[test]
    fn renders_rows_ratios_and_verdicts() {
        let text = render(&sample());
        // Latency medians: xdd-1 155, direct 110: 1.41x.
        assert!(
            text.contains(
                "  xdd-1   median     155.0 (min 150.0, max 160.0, spread 6%)  rounds 150.0 / 160.0"
            ),
            "{text}"
        );
        assert!(text.contains("  direct  median     110.0"), "{text}");
        assert!(text.contains("rounds 152.0 / fail"), "{text}");
        assert!(
            text.contains("  ratio   xdd-1 1.41x, xdd-2 1.38x, xdd-4 1.42x"),
            "{text}"
        );
        // Path CPU medians: xdd-1 0.35, xdd-4 0.9, direct 0.1.
        assert!(
            text.contains(
                "verdict, CPU of the path per second of audio: xdd-1 0.350 (3.50x), xdd-2 0.500 \
                 (5.00x), xdd-4 0.900 (9.00x) vs direct 0.100 s/s"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "verdict, underruns over 2 rounds: xdd-1 0 player / 0 device / 2 card, xdd-2 0 \
                 player / 1 device / 2 card (1 failed turns), xdd-4 1 player / 2 device / 8 card; \
                 direct 0 player\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("xdd-1 155.0 (1.41x), xdd-2 152.0 (1.38x), xdd-4 156.0 (1.42x) vs direct 110.0 ms; xdd's bound with sounddd's queue: +85.3 ms"),
            "{text}"
        );
        assert!(
            text.contains("12345 periods played, 3 device underruns, mixer at most 41.0 ms late"),
            "{text}"
        );
        assert!(
            text.contains("sounddd 32 MiB, each xdd guest 160 MiB; direct guest 160 MiB"),
            "{text}"
        );
        // sounddd's counters have no direct row; sounddd's own CPU is not compared.
        let dev = text.split("sounddd device underruns").nth(1).unwrap();
        let dev = dev.split("\n\n").next().unwrap();
        assert!(!dev.contains("direct"), "{dev}");
        let own = text.split("sounddd's CPU per second").nth(1).unwrap();
        let own = own.split("\n\n").next().unwrap();
        assert!(!own.contains("ratio"), "{own}");
        assert!(own.contains("  direct "), "{own}");
    }

    #[test]
    fn the_scenario_is_valid() {
        let path = crate::util::workspace_root().join("tests/bench/snd.toml");
        let (s, _) = crate::testbed::load_file(&path).unwrap();
        assert_eq!(s.name, "snd");
        assert_eq!(s.qemu_devices.len(), 2);
        assert_eq!(s.domains.len(), 6);
    }
}
