//! Building xenstore messages into caller-provided buffers.

use super::{
    validate_path, Header, WireError, XsMsgType, XENSTORE_PAYLOAD_MAX, XSD_ERRORS, XS_HEADER_LEN,
};
use crate::XenErrno;

/// Writes a message: the header, then `parts` concatenated as the payload (callers include
/// the NULs the message needs). Returns the total length written to `out`.
pub fn encode(
    msg_type: XsMsgType,
    req_id: u32,
    tx_id: u32,
    parts: &[&[u8]],
    out: &mut [u8],
) -> Result<usize, WireError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > XENSTORE_PAYLOAD_MAX {
        return Err(WireError::PayloadTooLong { len });
    }
    let total = XS_HEADER_LEN + len;
    let have = out.len();
    let out = out
        .get_mut(..total)
        .ok_or(WireError::OutputTooSmall { need: total, have })?;
    let header = Header {
        msg_type,
        req_id,
        tx_id,
        len: len as u32,
    };
    out[..XS_HEADER_LEN].copy_from_slice(&header.to_bytes());
    let mut at = XS_HEADER_LEN;
    for part in parts {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    Ok(total)
}

/// Writes a message whose payload is `strings`, each followed by a NUL (`a\0b\0`). A string
/// containing NUL is an error.
pub fn encode_strings(
    msg_type: XsMsgType,
    req_id: u32,
    tx_id: u32,
    strings: &[&str],
    out: &mut [u8],
) -> Result<usize, WireError> {
    let mut len = 0;
    for s in strings {
        if s.as_bytes().contains(&0) {
            return Err(WireError::UnexpectedNul);
        }
        len += s.len() + 1;
    }
    if len > XENSTORE_PAYLOAD_MAX {
        return Err(WireError::PayloadTooLong { len });
    }
    let total = XS_HEADER_LEN + len;
    let have = out.len();
    let out = out
        .get_mut(..total)
        .ok_or(WireError::OutputTooSmall { need: total, have })?;
    let header = Header {
        msg_type,
        req_id,
        tx_id,
        len: len as u32,
    };
    out[..XS_HEADER_LEN].copy_from_slice(&header.to_bytes());
    let mut at = XS_HEADER_LEN;
    for s in strings {
        out[at..at + s.len()].copy_from_slice(s.as_bytes());
        out[at + s.len()] = 0;
        at += s.len() + 1;
    }
    Ok(total)
}

/// `path\0`: READ, DIRECTORY, MKDIR, RM, GET_PERMS. The path is validated.
pub fn encode_path(
    msg_type: XsMsgType,
    req_id: u32,
    tx_id: u32,
    path: &str,
    out: &mut [u8],
) -> Result<usize, WireError> {
    validate_path(path)?;
    encode_strings(msg_type, req_id, tx_id, &[path], out)
}

/// `path\0value` (value not NUL-terminated, may hold any bytes): WRITE. The path is validated.
pub fn encode_path_value(
    msg_type: XsMsgType,
    req_id: u32,
    tx_id: u32,
    path: &str,
    value: &[u8],
    out: &mut [u8],
) -> Result<usize, WireError> {
    validate_path(path)?;
    encode(
        msg_type,
        req_id,
        tx_id,
        &[path.as_bytes(), b"\0", value],
        out,
    )
}

/// `path\0token\0`: WATCH, UNWATCH, WATCH_EVENT. The path is validated; the token must not
/// contain NUL.
pub fn encode_path_token(
    msg_type: XsMsgType,
    req_id: u32,
    tx_id: u32,
    path: &str,
    token: &str,
    out: &mut [u8],
) -> Result<usize, WireError> {
    validate_path(path)?;
    encode_strings(msg_type, req_id, tx_id, &[path, token], out)
}

/// An `XS_ERROR` reply naming `errno` (`EINVAL\0`), as xenstored sends it. Errnos outside
/// [`XSD_ERRORS`] are sent as `EINVAL`, as xenstored does.
pub fn encode_error(
    req_id: u32,
    tx_id: u32,
    errno: XenErrno,
    out: &mut [u8],
) -> Result<usize, WireError> {
    let name = if XSD_ERRORS.contains(&errno) {
        errno.name()
    } else {
        None
    };
    let name = name.unwrap_or("EINVAL");
    encode_strings(XsMsgType::Error, req_id, tx_id, &[name], out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xs_wire::PathError;

    #[test]
    fn read_request_bytes() {
        let mut out = [0u8; 64];
        let n = encode_path(XsMsgType::Read, 7, 0, "/a/b", &mut out).unwrap();
        assert_eq!(
            &out[..n],
            &[
                2, 0, 0, 0, // XS_READ
                7, 0, 0, 0, // req_id
                0, 0, 0, 0, // tx_id
                5, 0, 0, 0, // len
                b'/', b'a', b'/', b'b', 0,
            ]
        );
    }

    #[test]
    fn shapes() {
        let mut out = [0u8; 64];
        let n = encode_path_value(XsMsgType::Write, 1, 9, "x/state", b"4", &mut out).unwrap();
        assert_eq!(&out[16..n], b"x/state\x004");
        assert_eq!(out[8], 9);
        let n =
            encode_path_token(XsMsgType::Watch, 2, 0, "@releaseDomain", "tok", &mut out).unwrap();
        assert_eq!(&out[16..n], b"@releaseDomain\0tok\0");
        let n = encode_strings(XsMsgType::TransactionStart, 3, 0, &[""], &mut out).unwrap();
        assert_eq!(&out[12..n], &[1, 0, 0, 0, 0]);
        let n = encode_error(4, 0, XenErrno::ENOENT, &mut out).unwrap();
        assert_eq!(out[0], 16);
        assert_eq!(&out[16..n], b"ENOENT\0");
        let n = encode_error(4, 0, XenErrno::EFAULT, &mut out).unwrap();
        assert_eq!(
            &out[16..n],
            b"EINVAL\0",
            "untranslatable errors become EINVAL"
        );
        let n = encode(XsMsgType::ResetWatches, 5, 0, &[], &mut out).unwrap();
        assert_eq!(n, 16);
    }

    #[test]
    fn errors() {
        let mut out = [0u8; 8192];
        assert_eq!(
            encode_path(XsMsgType::Read, 0, 0, "/a//b", &mut out),
            Err(WireError::BadPath(PathError::DoubleSlash))
        );
        assert_eq!(
            encode_path_token(XsMsgType::Watch, 0, 0, "/a", "t\0k", &mut out),
            Err(WireError::UnexpectedNul)
        );
        let big = [b'x'; 4097];
        assert_eq!(
            encode(XsMsgType::Write, 0, 0, &[&big], &mut out),
            Err(WireError::PayloadTooLong { len: 4097 })
        );
        assert_eq!(
            encode_path_value(XsMsgType::Write, 0, 0, "/a", &big[..4094], &mut out),
            Err(WireError::PayloadTooLong { len: 4097 })
        );
        assert!(encode(XsMsgType::Write, 0, 0, &[&big[..4096]], &mut out).is_ok());
        let mut small = [0u8; 20];
        assert_eq!(
            encode_path(XsMsgType::Read, 0, 0, "/abcd", &mut small),
            Err(WireError::OutputTooSmall { need: 22, have: 20 })
        );
    }
}
