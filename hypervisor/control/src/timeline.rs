//! The timeline xddctl prints while it starts, stops and restarts domains: one line per
//! event, stamped with dom0's clock (seconds since dom0 booted) and the time since the command
//! began.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Printed events, each stamped when it happened.
pub struct Timeline {
    start: Instant,
    /// dom0's uptime when `start` was taken (from /proc/uptime), if known.
    base: Option<f64>,
    out: Mutex<Box<dyn Write + Send>>,
    lines: Mutex<Vec<String>>,
}

/// dom0's uptime in seconds (/proc/uptime), if readable.
pub fn uptime() -> Option<f64> {
    std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Timeline {
    /// A timeline printing to stdout.
    pub fn stdout() -> Timeline {
        Timeline::new(Box::new(std::io::stdout()), uptime())
    }

    /// A timeline printing to `out`; `base` is dom0's uptime now.
    pub fn new(out: Box<dyn Write + Send>, base: Option<f64>) -> Timeline {
        Timeline {
            start: Instant::now(),
            base,
            out: Mutex::new(out),
            lines: Mutex::new(Vec::new()),
        }
    }

    /// Time since the timeline began.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Prints a header line (no timestamp).
    pub fn note(&self, text: &str) {
        self.print(format!("# {text}"));
    }

    /// Prints one event: `<dom0 uptime> +<since start>  <domain> <what> <detail>`.
    pub fn event(&self, domain: &str, what: &str, detail: &str) {
        let t = self.elapsed().as_secs_f64();
        let clock = match self.base {
            Some(b) => format!("{:9.3}", b + t),
            None => format!("{:>9}", "-"),
        };
        let line = format!("{clock} {:>+8.3}  {domain:<12} {what:<11} {detail}", t);
        self.print(line.trim_end().to_string());
    }

    fn print(&self, line: String) {
        {
            let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }

    /// Every line printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Seconds with two decimals, for event details.
pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_each_line() {
        let t = Timeline::new(Box::new(std::io::sink()), Some(100.0));
        t.note("header");
        t.event("netdd", "create", "driver domain");
        let l = t.lines();
        assert_eq!(l[0], "# header");
        assert!(
            l[1].starts_with("  100.000   +0.000  netdd        create      driver domain"),
            "{}",
            l[1]
        );
        let t = Timeline::new(Box::new(std::io::sink()), None);
        t.event("web1", "ready", "");
        assert!(t.lines()[0].starts_with("        -   +0.000  web1         ready"));
        assert_eq!(secs(Duration::from_millis(1234)), "1.23 s");
    }
}
