//! The domain's command line (xl.cfg `cmdline=` / `extra=`, passed in `hvm_start_info`):
//! whitespace-separated `key=value` options and bare flags, e.g.
//! `loglevel=debug hello.panic=1`.

use crate::sync::Global;

/// Longest command line kept (Xen's own limit for guests is 1024 bytes).
pub const MAX_LEN: usize = 1024;

struct Buffer {
    bytes: [u8; MAX_LEN],
    len: usize,
}

static CMDLINE: Global<Buffer> = Global::new(Buffer {
    bytes: [0; MAX_LEN],
    len: 0,
});
static mut SNAPSHOT: &str = "";

/// Stores the command line (truncated to [`MAX_LEN`], cut at the first NUL, invalid UTF-8
/// replaced by nothing: only the valid prefix is kept).
///
/// # Safety
/// Call once at boot, before any call to [`get`]: the returned strings borrow the buffer.
pub unsafe fn set(raw: &[u8]) {
    let raw = raw.split(|&b| b == 0).next().unwrap_or(&[]);
    let raw = &raw[..raw.len().min(MAX_LEN)];
    let valid = match core::str::from_utf8(raw) {
        Ok(s) => s.len(),
        Err(e) => e.valid_up_to(),
    };
    CMDLINE.with(|b| {
        b.bytes[..valid].copy_from_slice(&raw[..valid]);
        b.len = valid;
        // SAFETY: the buffer is a static that is never written again (boot-once contract),
        // and its first `valid` bytes are UTF-8.
        let s: &'static str = unsafe {
            core::str::from_utf8_unchecked(core::slice::from_raw_parts(b.bytes.as_ptr(), b.len))
        };
        // SAFETY: written once at boot before any reader (contract above).
        unsafe { SNAPSHOT = s };
    });
}

/// The whole command line.
pub fn get() -> &'static str {
    // SAFETY: only written by `set`, once, before any reader.
    unsafe { SNAPSHOT }
}

/// The value of option `key` in `cmdline` (`key=value`; the last occurrence wins; a bare
/// `key` gives `""`).
pub fn option<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .rev()
        .find_map(|tok| match tok.split_once('=') {
            Some((k, v)) if k == key => Some(v),
            None if tok == key => Some(""),
            _ => None,
        })
}

/// Whether option `key` is enabled: present as a bare flag, or `1`/`yes`/`true`/`on`.
pub fn flag(cmdline: &str, key: &str) -> bool {
    matches!(option(cmdline, key), Some("" | "1" | "yes" | "true" | "on"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_flags() {
        let c = "loglevel=debug  hello.panic=1 quiet x=a=b loglevel=trace";
        assert_eq!(option(c, "loglevel"), Some("trace"));
        assert_eq!(option(c, "quiet"), Some(""));
        assert_eq!(option(c, "x"), Some("a=b"));
        assert_eq!(option(c, "missing"), None);
        assert_eq!(option(c, "hello"), None);
        assert!(flag(c, "hello.panic"));
        assert!(flag(c, "quiet"));
        assert!(!flag("hello.panic=0", "hello.panic"));
        assert!(!flag("", "hello.panic"));
    }
}
