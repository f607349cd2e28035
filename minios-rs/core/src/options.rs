//! A driver domain's command-line options (xl.cfg `cmdline=` / `extra=`), parsed the same way
//! by every backend.
//!
//! A backend owns the words `<prefix>.<key>=<value>` (`netback.ip=dhcp`, `blkback.vol=…`);
//! every other word belongs to someone else (the runtime's `loglevel=`, another backend) and
//! is skipped. The policy is strict: an unknown key or a value that does not parse is an
//! [`OptionError`] naming the word as written, and the driver domain refuses to start with
//! that one line (see [`crate::driver_domain`]) — a typo never runs a different configuration.
//!
//! ```
//! # use minios::options::{options, OptionError};
//! let mut queues = 4;
//! for opt in options("loglevel=debug blk.queues=2", "blk") {
//!     match opt.key {
//!         "queues" => queues = opt.uint(1, 16)?,
//!         _ => return Err(opt.unknown()),
//!     }
//! }
//! assert_eq!(queues, 2);
//! let bad = options("blk.queues=0", "blk").next().unwrap().uint(1, 16).unwrap_err();
//! assert_eq!(bad.to_string(), "blk.queues=0: expected a number in 1..=16");
//! # Ok::<(), OptionError>(())
//! ```

use alloc::string::{String, ToString};
use core::fmt;
use core::net::Ipv4Addr;

use crate::xenstore::parse_uint;

/// An option that cannot be used: the word as written and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionError {
    /// The word from the command line (`netback.ip=10.0.0.300`), or the options involved
    /// when several conflict.
    pub option: String,
    /// What is wrong with it, for the administrator.
    pub why: String,
}

impl OptionError {
    /// An error about `option` (a word or a description of several).
    pub fn new(option: impl Into<String>, why: impl fmt::Display) -> Self {
        Self {
            option: option.into(),
            why: why.to_string(),
        }
    }
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.option, self.why)
    }
}

/// One `<prefix>.<key>[=<value>]` word of the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opt<'a> {
    /// The whole word, as written (used in error messages).
    pub word: &'a str,
    /// The key after the prefix (`ip` in `netback.ip=dhcp`).
    pub key: &'a str,
    /// The value after `=` (empty for a bare `netback.antispoof`).
    pub value: &'a str,
}

/// The words of `cmdline` that belong to `prefix` (`netback` takes `netback.*`), in order.
pub fn options<'a>(cmdline: &'a str, prefix: &'a str) -> impl Iterator<Item = Opt<'a>> + 'a {
    cmdline.split_ascii_whitespace().filter_map(move |word| {
        let rest = word.strip_prefix(prefix)?.strip_prefix('.')?;
        let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
        Some(Opt { word, key, value })
    })
}

impl Opt<'_> {
    /// An error about this option.
    pub fn error(&self, why: impl fmt::Display) -> OptionError {
        OptionError::new(self.word, why)
    }

    /// The error for a key the backend does not have.
    pub fn unknown(&self) -> OptionError {
        self.error("unknown option")
    }

    /// The value parsed by `parse`; `expected` says what a valid value looks like.
    pub fn parse<T>(
        &self,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, OptionError> {
        parse(self.value).ok_or_else(|| self.error(format_args!("expected {expected}")))
    }

    /// A decimal number in `min..=max`.
    pub fn uint(&self, min: u64, max: u64) -> Result<u64, OptionError> {
        parse_uint(self.value.as_bytes())
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| self.error(format_args!("expected a number in {min}..={max}")))
    }

    /// A byte count with an optional binary suffix (see [`parse_size`]).
    pub fn size(&self) -> Result<u64, OptionError> {
        self.parse("a size (bytes, or with a K, M, G or T suffix)", parse_size)
    }

    /// On or off: `1`/`yes`/`on`/`true` (or the bare key), `0`/`no`/`off`/`false`.
    pub fn bool(&self) -> Result<bool, OptionError> {
        self.parse("0 or 1", parse_bool)
    }

    /// An IPv4 address (`A.B.C.D`).
    pub fn ipv4(&self) -> Result<Ipv4Addr, OptionError> {
        self.parse("an IPv4 address A.B.C.D", |v| v.parse().ok())
    }
}

/// On or off, as [`Opt::bool`] reads it.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "" | "1" | "yes" | "on" | "true" => Some(true),
        "0" | "no" | "off" | "false" => Some(false),
        _ => None,
    }
}

/// An IPv4 address with a prefix length: `A.B.C.D/N`, or `A.B.C.D` for `/24`.
pub fn parse_ipv4_prefix(v: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, p) = v.split_once('/').unwrap_or((v, "24"));
    let prefix = parse_uint(p.as_bytes()).filter(|&p| p <= 32)?;
    Some((a.parse().ok()?, prefix as u8))
}

/// Parses a size: decimal bytes with an optional binary suffix `K`, `M`, `G` or `T`
/// (`64M` = 64 MiB).
pub fn parse_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 10),
        b'm' | b'M' => (&text[..text.len() - 1], 20),
        b'g' | b'G' => (&text[..text.len() - 1], 30),
        b't' | b'T' => (&text[..text.len() - 1], 40),
        _ => (text, 0),
    };
    parse_uint(digits.as_bytes())?.checked_mul(1u64 << shift)
}

/// Renders a byte count the way [`parse_size`] reads it (largest exact binary unit).
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
            if n != 0 && n % (1u64 << shift) == 0 {
                return write!(f, "{}{unit}", n >> shift);
            }
        }
        write!(f, "{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec::Vec;

    fn one(cmdline: &str) -> Opt<'_> {
        options(cmdline, "dd").next().expect("one option")
    }

    #[test]
    fn only_the_prefix_is_taken() {
        let got: Vec<(&str, &str)> = options(
            "loglevel=debug dd.a=1 ddx.b=2 dd.flag other.dd.c=3 dd.d=x=y",
            "dd",
        )
        .map(|o| (o.key, o.value))
        .collect();
        assert_eq!(got, [("a", "1"), ("flag", ""), ("d", "x=y")]);
    }

    #[test]
    fn typed_values() {
        assert_eq!(one("dd.n=16").uint(1, 16), Ok(16));
        assert_eq!(
            one("dd.n=+5").uint(0, 9).unwrap_err().to_string(),
            "dd.n=+5: expected a number in 0..=9"
        );
        assert_eq!(one("dd.s=64M").size(), Ok(64 << 20));
        assert_eq!(
            one("dd.s=1.5M").size().unwrap_err().why,
            "expected a size (bytes, or with a K, M, G or T suffix)"
        );
        assert_eq!(one("dd.b").bool(), Ok(true));
        assert_eq!(one("dd.b=off").bool(), Ok(false));
        assert_eq!(
            one("dd.b=2").bool().unwrap_err().to_string(),
            "dd.b=2: expected 0 or 1"
        );
        assert_eq!(one("dd.gw=10.0.0.1").ipv4(), Ok(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(one("dd.gw=10.0.0.256").ipv4().is_err());
        assert_eq!(
            one("dd.x=y").unknown().to_string(),
            "dd.x=y: unknown option"
        );
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            parse_ipv4_prefix("10.1.2.3/16"),
            Some((Ipv4Addr::new(10, 1, 2, 3), 16))
        );
        assert_eq!(parse_ipv4_prefix("10.1.2.3").map(|p| p.1), Some(24));
        for bad in ["10.1.2.3/33", "10.1.2.3/", "10.1.2/8", "10.0.0.300/24"] {
            assert_eq!(parse_ipv4_prefix(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("4K"), Some(4096));
        for bad in ["", "M", "-1", "1.5M", "12X", "99999999999999999999T"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(format!("{}", Size(64 << 20)), "64M");
        assert_eq!(format!("{}", Size(1536)), "1536");
        assert_eq!(format!("{}", Size(0)), "0");
    }
}
