//! What the testbed's HDA records: a steady tone in place of a microphone.
//!
//! QEMU's `wav` audio driver has no input, and its `none` driver records silence, so a
//! recording's content could not be checked. The duplex codec's audio driver is QEMU's
//! `alsa` instead, capturing from an ALSA device `xddtone` that the ALSA library QEMU loads
//! finds in `$HOME/.asoundrc` (QEMU runs with `HOME` set to a directory of the scratch
//! area): the `file` plugin over the `null` device, its input a FIFO into which a thread
//! of ours writes an endless [`TONE_HZ`] sine, 48 kHz stereo S16. A FIFO rather than a
//! file: the writer blocks while QEMU does not read, so the tone never ends and never
//! jumps (the plugin restarts a file that ends at an arbitrary point).

use crate::util::{self, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The frequency of the tone the card records (scenarios check it in the guest).
pub const TONE_HZ: f64 = 1000.0;

/// The ALSA device QEMU captures from.
pub const DEVICE: &str = "xddtone";

/// Frames written per chunk (a 48 kHz stereo S16 stream: 4 bytes a frame).
const CHUNK: usize = 1200;

/// The tone's source for one boot.
pub struct CaptureTone {
    /// The directory to give QEMU as `HOME`.
    pub home: PathBuf,
    written: Arc<AtomicU64>,
}

impl CaptureTone {
    /// Creates the FIFO and the ALSA configuration under `scratch` and starts the writer
    /// (detached: it waits for QEMU to open the FIFO, writes while QEMU reads, and waits
    /// again when QEMU closes it; a boot's FIFO is replaced by the next boot's).
    pub fn start(scratch: &Path) -> Result<CaptureTone> {
        let home = scratch.join("alsa-home");
        util::mkdirs(&home)?;
        let fifo = home.join("tone.fifo");
        if fifo.exists() {
            std::fs::remove_file(&fifo)
                .map_err(|e| format!("cannot remove {}: {e}", fifo.display()))?;
        }
        util::run(Command::new("mkfifo").arg(&fifo))?;
        let rc = format!(
            "# Written by cargo xtask for QEMU's alsa audio driver (capture_tone.rs).\n\
             pcm.{DEVICE} {{\n    type file\n    slave.pcm \"null\"\n    file \"/dev/null\"\n    \
             infile \"{}\"\n    format \"raw\"\n}}\n",
            fifo.display()
        );
        let rc_path = home.join(".asoundrc");
        std::fs::write(&rc_path, rc)
            .map_err(|e| format!("cannot write {}: {e}", rc_path.display()))?;
        let written = Arc::new(AtomicU64::new(0));
        let count = written.clone();
        std::thread::spawn(move || feed(&fifo, &count));
        Ok(CaptureTone { home, written })
    }

    /// What was fed, for the serial log.
    pub fn summary(&self) -> String {
        let frames = self.written.load(Ordering::Relaxed);
        format!(
            "capture tone: {:.1} s of {TONE_HZ} Hz fed to the HDA's input ({DEVICE})",
            frames as f64 / 48_000.0
        )
    }
}

/// Writes the tone into `fifo` whenever a reader has it open, counting frames.
fn feed(fifo: &Path, written: &AtomicU64) {
    let mut first = 0u64;
    loop {
        let Ok(mut out) = std::fs::OpenOptions::new().write(true).open(fifo) else {
            return; // the FIFO is gone (a later boot replaced it)
        };
        loop {
            let samples = testbed_agent::wav::tone(TONE_HZ, 48_000, 2, 0.5, first, CHUNK);
            let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
            if out.write_all(&bytes).is_err() {
                break; // QEMU closed it: wait for the next open
            }
            first += CHUNK as u64;
            written.fetch_add(CHUNK as u64, Ordering::Relaxed);
        }
    }
}
