//! Parsing xenstore messages from untrusted bytes.

use super::perm::Perm;
use super::{WireError, XsMsgType, XsdSockmsg, XENSTORE_PAYLOAD_MAX, XS_HEADER_LEN};
use crate::wire::WireStruct;
use crate::XenErrno;

/// A validated message header: known type, payload length within [`XENSTORE_PAYLOAD_MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message type.
    pub msg_type: XsMsgType,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id, 0 outside transactions.
    pub tx_id: u32,
    /// Payload length.
    pub len: u32,
}

impl Header {
    /// Parses and validates the first [`XS_HEADER_LEN`] bytes of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let raw = XsdSockmsg::read_from(bytes).map_err(|e| WireError::Truncated {
            need: e.need,
            have: e.have,
        })?;
        let msg_type = XsMsgType::from_u32(raw.type_).ok_or(WireError::UnknownType(raw.type_))?;
        if raw.len as usize > XENSTORE_PAYLOAD_MAX {
            return Err(WireError::PayloadTooLong {
                len: raw.len as usize,
            });
        }
        Ok(Self {
            msg_type,
            req_id: raw.req_id,
            tx_id: raw.tx_id,
            len: raw.len,
        })
    }

    /// The header's wire bytes.
    pub fn to_bytes(&self) -> [u8; XS_HEADER_LEN] {
        let raw = XsdSockmsg {
            type_: self.msg_type as u32,
            req_id: self.req_id,
            tx_id: self.tx_id,
            len: self.len,
        };
        let mut out = [0u8; XS_HEADER_LEN];
        // Cannot fail: the buffer is exactly the header size.
        let _ = raw.write_to(&mut out);
        out
    }
}

/// A complete message: header and payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// The validated header.
    pub header: Header,
    /// Exactly `header.len` payload bytes.
    pub payload: &'a [u8],
}

impl<'a> Message<'a> {
    /// Parses one message from the start of `bytes`; returns it and the bytes it spans.
    pub fn parse(bytes: &'a [u8]) -> Result<(Self, usize), WireError> {
        let header = Header::parse(bytes)?;
        let total = XS_HEADER_LEN + header.len as usize;
        let payload = bytes
            .get(XS_HEADER_LEN..total)
            .ok_or(WireError::Truncated {
                need: total,
                have: bytes.len(),
            })?;
        Ok((Self { header, payload }, total))
    }

    /// For an `XS_ERROR` reply, the error it names; `None` for other types.
    pub fn as_error(&self) -> Option<Result<XenErrno, WireError>> {
        (self.header.msg_type == XsMsgType::Error).then(|| parse_error(self.payload))
    }
}

/// Iterator over the strings of a validated `a\0b\0…` payload.
#[derive(Clone, Debug)]
pub struct NulStrings<'a> {
    rest: &'a str,
}

impl<'a> Iterator for NulStrings<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let (item, rest) = self.rest.split_once('\0')?;
        self.rest = rest;
        Some(item)
    }
}

/// Splits a payload of NUL-terminated UTF-8 strings (`DIRECTORY`, `GET_PERMS`,
/// `WATCH_EVENT` …). An empty payload has no strings; otherwise it must end with NUL.
pub fn parse_strings(payload: &[u8]) -> Result<NulStrings<'_>, WireError> {
    if payload.last().is_some_and(|&b| b != 0) {
        return Err(WireError::MissingNul);
    }
    let rest = core::str::from_utf8(payload).map_err(|_| WireError::NotUtf8)?;
    Ok(NulStrings { rest })
}

/// A payload that is exactly one NUL-terminated UTF-8 string (`GET_DOMAIN_PATH` and
/// `TRANSACTION_START` replies, `OK\0`, error names).
pub fn parse_string(payload: &[u8]) -> Result<&str, WireError> {
    let (&last, body) = payload.split_last().ok_or(WireError::MissingNul)?;
    if last != 0 {
        return Err(WireError::MissingNul);
    }
    if body.contains(&0) {
        return Err(WireError::UnexpectedNul);
    }
    core::str::from_utf8(body).map_err(|_| WireError::NotUtf8)
}

/// A watch firing: the path that changed and the token given to `XS_WATCH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchEvent<'a> {
    /// The path that changed (below the watched path).
    pub path: &'a str,
    /// The watch's token.
    pub token: &'a str,
}

/// Parses a `WATCH_EVENT` payload: exactly `path\0token\0`.
pub fn parse_watch_event(payload: &[u8]) -> Result<WatchEvent<'_>, WireError> {
    let mut strings = parse_strings(payload)?;
    let found = strings.clone().count();
    match (strings.next(), strings.next()) {
        (Some(path), Some(token)) if found == 2 => Ok(WatchEvent { path, token }),
        _ => Err(WireError::WrongStringCount { expected: 2, found }),
    }
}

/// Parses an `XS_ERROR` payload (`EINVAL\0`) into the errno it names.
pub fn parse_error(payload: &[u8]) -> Result<XenErrno, WireError> {
    XenErrno::from_name(parse_string(payload)?).ok_or(WireError::UnknownError)
}

/// Iterator over the permissions of a `GET_PERMS` reply; each item is parsed on the way.
#[derive(Clone, Debug)]
pub struct PermIter<'a> {
    strings: NulStrings<'a>,
}

impl Iterator for PermIter<'_> {
    type Item = Result<Perm, WireError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.strings.next().map(|s| Perm::parse(s.as_bytes()))
    }
}

/// Parses a `GET_PERMS` reply or `SET_PERMS` permission list (`r0\0b5\0`).
pub fn parse_perms(payload: &[u8]) -> Result<PermIter<'_>, WireError> {
    Ok(PermIter {
        strings: parse_strings(payload)?,
    })
}

/// Reassembles messages from a byte stream that arrives in pieces (the xenstore ring),
/// without allocating: holds one header and up to [`XENSTORE_PAYLOAD_MAX`] payload bytes.
///
/// Feed bytes with [`feed`](Self::feed) until [`message`](Self::message) returns the message,
/// then [`reset`](Self::reset). A header error means the stream is out of sync: the reader
/// resets itself, and the connection must be re-established.
#[derive(Clone, Debug)]
pub struct MessageReader {
    buf: [u8; XS_HEADER_LEN + XENSTORE_PAYLOAD_MAX],
    filled: usize,
    header: Option<Header>,
}

impl Default for MessageReader {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageReader {
    /// An empty reader.
    pub const fn new() -> Self {
        Self {
            buf: [0; XS_HEADER_LEN + XENSTORE_PAYLOAD_MAX],
            filled: 0,
            header: None,
        }
    }

    /// Bytes still needed before the next stage: the rest of the header, or of the payload.
    /// 0 when a message is complete.
    pub fn needed(&self) -> usize {
        match self.header {
            None => XS_HEADER_LEN - self.filled,
            Some(h) => XS_HEADER_LEN + h.len as usize - self.filled,
        }
    }

    /// Takes bytes from `data` up to the end of the current message and returns how many it
    /// took. Validates the header as soon as it is complete.
    pub fn feed(&mut self, data: &[u8]) -> Result<usize, WireError> {
        let mut used = 0;
        loop {
            let n = self.needed().min(data.len() - used);
            if n == 0 {
                return Ok(used);
            }
            self.buf[self.filled..self.filled + n].copy_from_slice(&data[used..used + n]);
            self.filled += n;
            used += n;
            if self.header.is_none() && self.filled == XS_HEADER_LEN {
                match Header::parse(&self.buf[..XS_HEADER_LEN]) {
                    Ok(h) => self.header = Some(h),
                    Err(e) => {
                        self.reset();
                        return Err(e);
                    }
                }
            }
        }
    }

    /// The complete message, once all its bytes have been fed.
    pub fn message(&self) -> Option<Message<'_>> {
        let header = self.header?;
        let total = XS_HEADER_LEN + header.len as usize;
        (self.filled == total).then(|| Message {
            header,
            payload: &self.buf[XS_HEADER_LEN..total],
        })
    }

    /// Discards the current message and starts on the next.
    pub fn reset(&mut self) {
        self.filled = 0;
        self.header = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xs_wire::{encode, encode_error, encode_path_token, encode_path_value, PermAccess};
    use std::vec::Vec;

    fn header_bytes(type_: u32, len: u32) -> [u8; 16] {
        let mut b = [0u8; 16];
        XsdSockmsg {
            type_,
            req_id: 1,
            tx_id: 0,
            len,
        }
        .write_to(&mut b)
        .unwrap();
        b
    }

    #[test]
    fn header_validation() {
        assert_eq!(
            Header::parse(&[0; 15]),
            Err(WireError::Truncated { need: 16, have: 15 })
        );
        assert_eq!(
            Header::parse(&header_bytes(20, 0)),
            Err(WireError::UnknownType(20))
        );
        assert_eq!(
            Header::parse(&header_bytes(23, 0)),
            Err(WireError::UnknownType(23))
        );
        assert_eq!(
            Header::parse(&header_bytes(2, 4097)),
            Err(WireError::PayloadTooLong { len: 4097 })
        );
        assert_eq!(
            Header::parse(&header_bytes(2, u32::MAX)),
            Err(WireError::PayloadTooLong {
                len: u32::MAX as usize
            })
        );
        let h = Header::parse(&header_bytes(22, 4096)).unwrap();
        assert_eq!((h.msg_type, h.len), (XsMsgType::DirectoryPart, 4096));
        assert_eq!(h.to_bytes(), header_bytes(22, 4096));
    }

    #[test]
    fn round_trip_write() {
        let mut buf = [0u8; 128];
        let n = encode_path_value(XsMsgType::Write, 42, 3, "/a/state", b"4", &mut buf).unwrap();
        let (msg, used) = Message::parse(&buf[..n + 5]).unwrap();
        assert_eq!(used, n);
        assert_eq!(
            msg.header,
            Header {
                msg_type: XsMsgType::Write,
                req_id: 42,
                tx_id: 3,
                len: 10
            }
        );
        assert_eq!(msg.payload, b"/a/state\x004");
        assert_eq!(
            Message::parse(&buf[..n - 1]),
            Err(WireError::Truncated {
                need: n,
                have: n - 1
            })
        );
    }

    #[test]
    fn round_trip_watch_event() {
        let mut buf = [0u8; 128];
        let n = encode_path_token(
            XsMsgType::WatchEvent,
            0,
            0,
            "/local/domain/1/state",
            "be:1",
            &mut buf,
        )
        .unwrap();
        let (msg, _) = Message::parse(&buf[..n]).unwrap();
        let ev = parse_watch_event(msg.payload).unwrap();
        assert_eq!(
            ev,
            WatchEvent {
                path: "/local/domain/1/state",
                token: "be:1"
            }
        );
    }

    #[test]
    fn round_trip_error() {
        let mut buf = [0u8; 64];
        let n = encode_error(9, 0, XenErrno::EACCES, &mut buf).unwrap();
        let (msg, _) = Message::parse(&buf[..n]).unwrap();
        assert_eq!(msg.as_error(), Some(Ok(XenErrno::EACCES)));
        assert_eq!(parse_error(b"EWHAT\0"), Err(WireError::UnknownError));
        assert_eq!(parse_error(b"EINVAL"), Err(WireError::MissingNul));
    }

    #[test]
    fn strings() {
        let dir: Vec<&str> = parse_strings(b"vif\0vbd\0\0x\0").unwrap().collect();
        assert_eq!(dir, ["vif", "vbd", "", "x"]);
        assert_eq!(parse_strings(b"").unwrap().count(), 0);
        assert_eq!(parse_strings(b"a\0b").unwrap_err(), WireError::MissingNul);
        assert_eq!(parse_strings(b"\xff\0").unwrap_err(), WireError::NotUtf8);
        assert_eq!(parse_string(b"/local/domain/3\0"), Ok("/local/domain/3"));
        assert_eq!(parse_string(b""), Err(WireError::MissingNul));
        assert_eq!(parse_string(b"a\0b\0"), Err(WireError::UnexpectedNul));
        assert_eq!(parse_string(b"\xc3\0"), Err(WireError::NotUtf8));
    }

    #[test]
    fn malformed_watch_events() {
        assert_eq!(
            parse_watch_event(b"path\0"),
            Err(WireError::WrongStringCount {
                expected: 2,
                found: 1
            })
        );
        assert_eq!(
            parse_watch_event(b"p\0t\0x\0"),
            Err(WireError::WrongStringCount {
                expected: 2,
                found: 3
            })
        );
        assert_eq!(parse_watch_event(b"p\0t"), Err(WireError::MissingNul));
        assert_eq!(
            parse_watch_event(b""),
            Err(WireError::WrongStringCount {
                expected: 2,
                found: 0
            })
        );
    }

    #[test]
    fn perms() {
        let perms: Vec<_> = parse_perms(b"n0\0r5\0b7\0")
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            perms[0],
            Perm {
                access: PermAccess::NoAccess,
                domid: 0
            }
        );
        assert_eq!(
            perms[2],
            Perm {
                access: PermAccess::ReadWrite,
                domid: 7
            }
        );
        let bad: Result<Vec<_>, _> = parse_perms(b"n0\0q5\0").unwrap().collect();
        assert_eq!(bad, Err(WireError::BadPermission));
    }

    #[test]
    fn reader_reassembles_byte_by_byte() {
        let mut stream = [0u8; 256];
        let a = encode_path_value(XsMsgType::Write, 1, 0, "/x", b"hello", &mut stream).unwrap();
        let b =
            encode_path_token(XsMsgType::WatchEvent, 0, 0, "/y", "t", &mut stream[a..]).unwrap();
        let stream = &stream[..a + b];

        let mut reader = MessageReader::new();
        let mut got = Vec::new();
        for byte in stream.chunks(1) {
            assert_eq!(reader.feed(byte).unwrap(), 1);
            if let Some(msg) = reader.message() {
                got.push((msg.header.msg_type, msg.payload.to_vec()));
                reader.reset();
            }
        }
        assert_eq!(got[0], (XsMsgType::Write, b"/x\0hello".to_vec()));
        assert_eq!(got[1], (XsMsgType::WatchEvent, b"/y\0t\0".to_vec()));
    }

    #[test]
    fn reader_stops_at_message_boundary() {
        let mut stream = [0u8; 256];
        let a = encode_path_value(XsMsgType::Write, 1, 0, "/x", b"v", &mut stream).unwrap();
        let b = encode(XsMsgType::ResetWatches, 2, 0, &[], &mut stream[a..]).unwrap();
        let mut reader = MessageReader::new();
        assert_eq!(reader.feed(&stream[..a + b]), Ok(a));
        assert_eq!(reader.message().unwrap().header.req_id, 1);
        assert_eq!(
            reader.feed(&stream[a..a + b]),
            Ok(0),
            "complete message is not overrun"
        );
        reader.reset();
        assert_eq!(reader.feed(&stream[a..a + b]), Ok(b));
        assert_eq!(
            reader.message().unwrap().header.msg_type,
            XsMsgType::ResetWatches
        );
    }

    #[test]
    fn reader_rejects_bad_header() {
        let mut reader = MessageReader::new();
        assert_eq!(
            reader.feed(&header_bytes(99, 0)),
            Err(WireError::UnknownType(99))
        );
        assert_eq!(reader.needed(), 16, "reset after the error");
        assert_eq!(
            reader.feed(&header_bytes(2, 5000)),
            Err(WireError::PayloadTooLong { len: 5000 })
        );
        assert!(reader.message().is_none());
    }
}
