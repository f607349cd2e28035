//! The console: the PV console ring once Xen gave us one, early ports before that; and the
//! `log` facade's backend, which prefixes every line with `[seconds.micros]` since boot.
//!
//! dom0's xenconsoled copies the ring to `/var/log/xen/console/guest-<name>.log`
//! (with `--log=guest`) and to `xl console`.

pub mod ring;

use crate::arch::early_console::EarlyConsole;
use crate::mm::page::PhysPage;
use crate::sync::Global;
use core::fmt::{self, Write};
use ring::ConsoleRing;
use xen_abi::EvtchnPort;

/// How long a writer waits for xenconsoled to drain a full ring before dropping output.
const FULL_RING_PATIENCE_NS: u64 = 2_000_000_000;
/// Poll slice while waiting for the ring to drain.
const POLL_SLICE_NS: u64 = 10_000_000;

struct Console {
    early: EarlyConsole,
    ring: Option<(ConsoleRing<PhysPage>, EvtchnPort)>,
}

static CONSOLE: Global<Console> = Global::new(Console {
    early: EarlyConsole {
        debug_port: false,
        serial: false,
    },
    ring: None,
});

/// Selects the early outputs (before the ring exists, and for fatal messages).
pub fn init_early(early: EarlyConsole) {
    CONSOLE.with(|c| c.early = early);
}

/// Switches output to the PV console ring `page` with event channel `port`. If
/// `keep_early` is false the early ports go quiet (each byte to port 0xe9 is a VM exit).
pub fn attach_ring(page: PhysPage, port: EvtchnPort, keep_early: bool) {
    CONSOLE.with(|c| {
        c.ring = Some((ConsoleRing::new(page), port));
        if !keep_early {
            c.early = EarlyConsole {
                debug_port: false,
                serial: false,
            };
        }
    });
}

/// Writes raw bytes to the console.
pub fn write_bytes(bytes: &[u8]) {
    CONSOLE.with(|c| c.write(bytes));
}

/// Writes a message on the way down: to every output, even if the console is in use further
/// up the stack (then only to the early ports, the ring state may be mid-update).
pub fn write_fatal(bytes: &[u8]) {
    let done = CONSOLE.try_with(|c| {
        let early = EarlyConsole {
            debug_port: true,
            serial: !crate::arch::on_xen(),
        };
        early.write(bytes);
        if c.ring.is_some() {
            c.write_ring(bytes);
        }
    });
    if done.is_none() {
        EarlyConsole {
            debug_port: true,
            serial: !crate::arch::on_xen(),
        }
        .write(bytes);
    }
}

impl Console {
    fn write(&mut self, bytes: &[u8]) {
        self.early.write(bytes);
        self.write_ring(bytes);
    }

    fn write_ring(&mut self, mut bytes: &[u8]) {
        let Some((ring, port)) = &self.ring else {
            return;
        };
        let mut waited_since = None;
        loop {
            match ring.write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(_) => {
                    // A corrupt ring: nothing we can do about it; stop using it.
                    self.ring = None;
                    return;
                }
            }
            let _ = crate::xen::evtchn::send(*port);
            if bytes.is_empty() {
                return;
            }
            // Full: wait (blocked in Xen, not spinning) for xenconsoled to consume.
            let now = crate::time::now_ns();
            let since = *waited_since.get_or_insert(now);
            if now.saturating_sub(since) > FULL_RING_PATIENCE_NS {
                return; // xenconsoled is not draining the ring: drop the rest
            }
            crate::events::poll_port(*port, now + POLL_SLICE_NS, || {
                ring.unconsumed().map_or(true, |used| used < ring::OUT_SIZE)
            });
        }
    }
}

/// A line buffer on the stack: log lines are formatted first, then written in one go.
struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Formats a console line: `[   12.345678] LEVEL target: message\n` (truncated to 512
/// bytes). Targets inside this crate are shortened to their last path segment.
fn format_line(ns: u64, level: log::Level, target: &str, args: fmt::Arguments<'_>) -> Line {
    let target = match target.strip_prefix("minios_rt::") {
        Some(rest) => rest.rsplit("::").next().unwrap_or(rest),
        None => target,
    };
    let mut line = Line {
        buf: [0; 512],
        len: 0,
    };
    let (s, us) = crate::time::secs_micros(ns);
    let _ = write!(line, "[{s:5}.{us:06}] {level:<5} {target}: {args}");
    if line.len == line.buf.len() {
        line.len -= 1;
    }
    line.buf[line.len] = b'\n';
    line.len += 1;
    line
}

/// The `log` backend.
struct Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(
            crate::time::now_ns(),
            record.level(),
            record.target(),
            *record.args(),
        );
        let bytes = &line.buf[..line.len];
        if CONSOLE.try_with(|c| c.write(bytes)).is_none() {
            // Logging from inside console code (or a trap taken there): early ports only.
            write_fatal(bytes);
        }
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Installs the console as the `log` backend with maximum level `level`.
pub fn init_logger(level: log::LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Formats a fatal message line with the current timestamp and writes it everywhere.
pub fn fatal_line(args: fmt::Arguments<'_>) {
    let line = format_line(crate::time::now_ns(), log::Level::Error, "minios_rt", args);
    write_fatal(&line.buf[..line.len]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let l = format_line(
            1_234_567_000,
            log::Level::Info,
            "hello",
            format_args!("x={}", 5),
        );
        assert_eq!(
            core::str::from_utf8(&l.buf[..l.len]).unwrap(),
            "[    1.234567] INFO  hello: x=5\n"
        );
        let l = format_line(
            0,
            log::Level::Debug,
            "minios_rt::arch::x86_64::pvh",
            format_args!("m"),
        );
        assert_eq!(
            core::str::from_utf8(&l.buf[..l.len]).unwrap(),
            "[    0.000000] DEBUG pvh: m\n"
        );
    }

    #[test]
    fn long_lines_are_truncated_with_newline() {
        let long = [b'a'; 600];
        let s = core::str::from_utf8(&long).unwrap();
        let l = format_line(0, log::Level::Warn, "t", format_args!("{s}"));
        assert_eq!(l.len, 512);
        assert_eq!(l.buf[511], b'\n');
    }
}
