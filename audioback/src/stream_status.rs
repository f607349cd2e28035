//! Each stream's state in xenstore for `xddctl status`: `data/vsnd/<fe>/<devid>/stream/<i>`
//! (the stream's index in the frontend's order) holds [`crate::stream::Stream::status`],
//! written when it changes, at most every `stats_ms` like the card's counters.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use log::warn;
use minios::platform::Platform;
use minios::xenbus::DeviceCtx;
use minios::xenstore::Store;

/// Publishes one line per stream under `<dir>/stream/`.
pub struct StreamStatus {
    dir: String,
    interval_ns: u64,
    due: u64,
    last: Vec<String>,
    warned: bool,
}

impl StreamStatus {
    /// Lines under `<card_dir>/stream/`, written at most every `interval_ms` (0: never).
    pub fn new(card_dir: &str, interval_ms: u64) -> Self {
        Self {
            dir: format!("{card_dir}/stream"),
            interval_ns: interval_ms.saturating_mul(1_000_000),
            due: 0,
            last: Vec::new(),
            warned: false,
        }
    }

    /// Writes the lines that changed, if the interval has passed; otherwise asks to be
    /// polled again when it has, so the last change is published too.
    pub fn publish<P: Platform>(&mut self, ctx: &mut DeviceCtx<'_, P>, lines: &[String]) {
        if self.interval_ns == 0 || self.last == lines {
            return;
        }
        let now = ctx.now_ns();
        if now < self.due {
            ctx.wake_at(self.due);
            return;
        }
        self.due = now.saturating_add(self.interval_ns);
        for (i, line) in lines.iter().enumerate() {
            if self.last.get(i) == Some(line) {
                continue;
            }
            let path = format!("{}/{i}", self.dir);
            if let Err(e) = ctx.xs.write(&path, line.as_bytes()) {
                if !core::mem::replace(&mut self.warned, true) {
                    warn!("cannot publish {path}: {e}");
                }
                return;
            }
        }
        self.last = lines.to_vec();
    }

    /// Removes the lines (the card disconnected: it has no streams until it connects
    /// again); the next publication writes every line.
    pub fn clear<S: Store + ?Sized>(&mut self, xs: &mut S) {
        if self.interval_ns == 0 || self.last.is_empty() {
            return;
        }
        if let Err(e) = xs.rm(&self.dir) {
            if !e.is_enoent() {
                warn!("cannot remove {}: {e}", self.dir);
            }
        }
        self.last.clear();
        self.due = 0;
    }
}
