//! Xenstore path validation, following xenstored's `is_valid_nodename`.

use super::{XENSTORE_ABS_PATH_MAX, XENSTORE_REL_PATH_MAX};
use core::fmt;

/// What kind of path [`validate_path`] accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    /// Starts with `/`.
    Absolute,
    /// Relative to the domain's home `/local/domain/<domid>`.
    Relative,
    /// A special watch path such as `@introduceDomain` or `@releaseDomain`.
    Special,
}

/// Why a path is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The path is empty.
    Empty,
    /// The path is longer than allowed for its kind.
    TooLong {
        /// Its length.
        len: usize,
        /// The limit ([`XENSTORE_ABS_PATH_MAX`] or [`XENSTORE_REL_PATH_MAX`]).
        max: usize,
    },
    /// A byte outside `[A-Za-z0-9/_@-]`.
    BadChar {
        /// The byte.
        byte: u8,
        /// Its position.
        at: usize,
    },
    /// The path contains `//`.
    DoubleSlash,
    /// The path ends in `/` and is not `/`.
    TrailingSlash,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => f.write_str("path is empty"),
            Self::TooLong { len, max } => write!(f, "path of {len} bytes exceeds {max}"),
            Self::BadChar { byte, at } => write!(f, "byte {byte:#04x} at {at} is not allowed"),
            Self::DoubleSlash => f.write_str("path contains //"),
            Self::TrailingSlash => f.write_str("path ends in /"),
        }
    }
}

const fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'@')
}

/// Checks a path the way xenstored does: only `[A-Za-z0-9/_@-]`, no `//`, no trailing `/`
/// except the root itself, at most [`XENSTORE_ABS_PATH_MAX`] bytes for absolute and special
/// paths and [`XENSTORE_REL_PATH_MAX`] for relative ones.
pub fn validate_path(path: &str) -> Result<PathKind, PathError> {
    let bytes = path.as_bytes();
    let (kind, max) = match bytes.first() {
        None => return Err(PathError::Empty),
        Some(b'/') => (PathKind::Absolute, XENSTORE_ABS_PATH_MAX),
        Some(b'@') => (PathKind::Special, XENSTORE_ABS_PATH_MAX),
        Some(_) => (PathKind::Relative, XENSTORE_REL_PATH_MAX),
    };
    if bytes.len() > max {
        return Err(PathError::TooLong {
            len: bytes.len(),
            max,
        });
    }
    if let Some(at) = bytes.iter().position(|&b| !allowed(b)) {
        return Err(PathError::BadChar {
            byte: bytes[at],
            at,
        });
    }
    if bytes.windows(2).any(|w| w == b"//") {
        return Err(PathError::DoubleSlash);
    }
    if bytes.len() > 1 && bytes.ends_with(b"/") {
        return Err(PathError::TrailingSlash);
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    #[test]
    fn accepts_valid_paths() {
        assert_eq!(validate_path("/"), Ok(PathKind::Absolute));
        assert_eq!(
            validate_path("/local/domain/3/device/vif/0/state"),
            Ok(PathKind::Absolute)
        );
        assert_eq!(validate_path("backend/vbd/7/51712"), Ok(PathKind::Relative));
        assert_eq!(validate_path("device"), Ok(PathKind::Relative));
        assert_eq!(validate_path("@releaseDomain"), Ok(PathKind::Special));
        assert_eq!(validate_path("/a-b_c@d/E9"), Ok(PathKind::Absolute));
    }

    #[test]
    fn rejects_invalid_paths() {
        assert_eq!(validate_path(""), Err(PathError::Empty));
        assert_eq!(validate_path("/local//domain"), Err(PathError::DoubleSlash));
        assert_eq!(validate_path("/local/"), Err(PathError::TrailingSlash));
        assert_eq!(validate_path("device/"), Err(PathError::TrailingSlash));
        assert_eq!(
            validate_path("/a b"),
            Err(PathError::BadChar { byte: b' ', at: 2 })
        );
        assert_eq!(
            validate_path("/a.b"),
            Err(PathError::BadChar { byte: b'.', at: 2 })
        );
        assert_eq!(
            validate_path("/a\0"),
            Err(PathError::BadChar { byte: 0, at: 2 })
        );
        assert_eq!(
            validate_path("/é"),
            Err(PathError::BadChar { byte: 0xc3, at: 1 })
        );
    }

    #[test]
    fn length_limits() {
        let abs: String = core::iter::once('/')
            .chain(core::iter::repeat_n('a', 3071))
            .collect();
        assert_eq!(validate_path(&abs), Ok(PathKind::Absolute));
        let abs_long = abs.clone() + "a";
        assert_eq!(
            validate_path(&abs_long),
            Err(PathError::TooLong {
                len: 3073,
                max: 3072
            })
        );
        let rel: String = core::iter::repeat_n('a', 2048).collect();
        assert_eq!(validate_path(&rel), Ok(PathKind::Relative));
        let rel_long = rel + "a";
        assert_eq!(
            validate_path(&rel_long),
            Err(PathError::TooLong {
                len: 2049,
                max: 2048
            })
        );
    }
}
