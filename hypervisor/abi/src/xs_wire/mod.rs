//! The xenstore wire protocol (`io/xs_wire.h`): message header and types, error names, the
//! shared ring page, and a no-alloc encoder and validating decoder.
//!
//! A message is a 16-byte [`XsdSockmsg`] header (type, request id, transaction id, payload
//! length; little-endian `u32`s) and up to [`XENSTORE_PAYLOAD_MAX`] payload bytes, usually
//! NUL-terminated strings. Encoders: [`encode`] and the shape helpers ([`encode_path`],
//! [`encode_path_value`], [`encode_path_token`], [`encode_strings`], [`encode_error`]).
//! Decoders: [`Header::parse`], [`Message::parse`], the incremental [`MessageReader`], and
//! payload accessors ([`parse_strings`], [`parse_string`], [`parse_watch_event`],
//! [`parse_error`], [`parse_perms`]). Everything that reads peer bytes returns a
//! [`WireError`] on malformed input and never panics.

mod decode;
mod encode;
mod path;
mod perm;

pub use decode::{
    parse_error, parse_perms, parse_string, parse_strings, parse_watch_event, Header, Message,
    MessageReader, NulStrings, PermIter, WatchEvent,
};
pub use encode::{
    encode, encode_error, encode_path, encode_path_token, encode_path_value, encode_strings,
};
pub use path::{validate_path, PathError, PathKind};
pub use perm::{Perm, PermAccess};

use crate::wire::impl_wire;
use crate::XenErrno;
use core::fmt;

/// Size of the message header.
pub const XS_HEADER_LEN: usize = 16;
/// Maximum payload length (`XENSTORE_PAYLOAD_MAX`).
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// Maximum length of an absolute path, without the NUL (`XENSTORE_ABS_PATH_MAX`).
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// Maximum length of a relative path, without the NUL (`XENSTORE_REL_PATH_MAX`).
pub const XENSTORE_REL_PATH_MAX: usize = 2048;
/// Size of each of the two byte rings in the shared page (`XENSTORE_RING_SIZE`).
pub const XENSTORE_RING_SIZE: usize = 1024;
/// Number of valid message types, counting the unused 20 (`XS_TYPE_COUNT`).
pub const XS_TYPE_COUNT: u32 = 23;
/// A type value guaranteed never to be valid (`XS_INVALID`).
pub const XS_INVALID: u32 = 0xffff;
/// Index of the path in a watch event's strings (`XS_WATCH_PATH`).
pub const XS_WATCH_PATH: usize = 0;
/// Index of the token in a watch event's strings (`XS_WATCH_TOKEN`).
pub const XS_WATCH_TOKEN: usize = 1;
/// [`XenstoreDomainInterface::server_features`]: the server supports reconnection
/// (`XENSTORE_SERVER_FEATURE_RECONNECTION`).
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// [`XenstoreDomainInterface::server_features`]: the server reports errors in `error`
/// (`XENSTORE_SERVER_FEATURE_ERROR`).
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;
/// [`XenstoreDomainInterface::connection`]: steady state (`XENSTORE_CONNECTED`).
pub const XENSTORE_CONNECTED: u32 = 0;
/// [`XenstoreDomainInterface::connection`]: reconnect in progress (`XENSTORE_RECONNECT`).
pub const XENSTORE_RECONNECT: u32 = 1;
/// [`XenstoreDomainInterface::error`]: no error (`XENSTORE_ERROR_NONE`).
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// [`XenstoreDomainInterface::error`]: communication problem (`XENSTORE_ERROR_COMM`).
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// [`XenstoreDomainInterface::error`]: invalid ring index (`XENSTORE_ERROR_RINGIDX`).
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// [`XenstoreDomainInterface::error`]: protocol violation (`XENSTORE_ERROR_PROTO`).
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// Message types (`enum xsd_sockmsg_type`). 20 (the removed `XS_RESTRICT`) is unused.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XsMsgType {
    /// `XS_CONTROL` (alias `XS_DEBUG`): xenstored control commands.
    Control = 0,
    /// `XS_DIRECTORY`: list children; reply `child\0child\0…`.
    Directory = 1,
    /// `XS_READ`: read a node; reply is the raw value.
    Read = 2,
    /// `XS_GET_PERMS`: read permissions; reply `perm\0perm\0…`.
    GetPerms = 3,
    /// `XS_WATCH`: `path\0token\0`; reply `OK\0`.
    Watch = 4,
    /// `XS_UNWATCH`: `path\0token\0`.
    Unwatch = 5,
    /// `XS_TRANSACTION_START`: `\0`; reply `id\0`.
    TransactionStart = 6,
    /// `XS_TRANSACTION_END`: `T\0` to commit, `F\0` to abort.
    TransactionEnd = 7,
    /// `XS_INTRODUCE`: `domid\0mfn\0port\0` (dom0).
    Introduce = 8,
    /// `XS_RELEASE`: `domid\0` (dom0).
    Release = 9,
    /// `XS_GET_DOMAIN_PATH`: `domid\0`; reply `/local/domain/<domid>\0`.
    GetDomainPath = 10,
    /// `XS_WRITE`: `path\0value` (value not NUL-terminated).
    Write = 11,
    /// `XS_MKDIR`: `path\0`.
    Mkdir = 12,
    /// `XS_RM`: `path\0`.
    Rm = 13,
    /// `XS_SET_PERMS`: `path\0perm\0perm\0…`.
    SetPerms = 14,
    /// `XS_WATCH_EVENT`: asynchronous `path\0token\0`.
    WatchEvent = 15,
    /// `XS_ERROR`: reply carrying an errno name, `EINVAL\0`.
    Error = 16,
    /// `XS_IS_DOMAIN_INTRODUCED`: `domid\0`; reply `T\0` or `F\0`.
    IsDomainIntroduced = 17,
    /// `XS_RESUME`: `domid\0`.
    Resume = 18,
    /// `XS_SET_TARGET`: `domid\0target\0`.
    SetTarget = 19,
    /// `XS_RESET_WATCHES`: drop all watches of the connection.
    ResetWatches = 21,
    /// `XS_DIRECTORY_PART`: `path\0offset\0`; reply `generation\0child\0…\0`.
    DirectoryPart = 22,
}

impl XsMsgType {
    /// `XS_DEBUG`, the old name of [`XsMsgType::Control`].
    pub const DEBUG: Self = Self::Control;

    /// The type with wire value `value`.
    pub const fn from_u32(value: u32) -> Option<Self> {
        Some(match value {
            0 => Self::Control,
            1 => Self::Directory,
            2 => Self::Read,
            3 => Self::GetPerms,
            4 => Self::Watch,
            5 => Self::Unwatch,
            6 => Self::TransactionStart,
            7 => Self::TransactionEnd,
            8 => Self::Introduce,
            9 => Self::Release,
            10 => Self::GetDomainPath,
            11 => Self::Write,
            12 => Self::Mkdir,
            13 => Self::Rm,
            14 => Self::SetPerms,
            15 => Self::WatchEvent,
            16 => Self::Error,
            17 => Self::IsDomainIntroduced,
            18 => Self::Resume,
            19 => Self::SetTarget,
            21 => Self::ResetWatches,
            22 => Self::DirectoryPart,
            _ => return None,
        })
    }

    /// The C name (`"XS_WRITE"`), for logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Control => "XS_CONTROL",
            Self::Directory => "XS_DIRECTORY",
            Self::Read => "XS_READ",
            Self::GetPerms => "XS_GET_PERMS",
            Self::Watch => "XS_WATCH",
            Self::Unwatch => "XS_UNWATCH",
            Self::TransactionStart => "XS_TRANSACTION_START",
            Self::TransactionEnd => "XS_TRANSACTION_END",
            Self::Introduce => "XS_INTRODUCE",
            Self::Release => "XS_RELEASE",
            Self::GetDomainPath => "XS_GET_DOMAIN_PATH",
            Self::Write => "XS_WRITE",
            Self::Mkdir => "XS_MKDIR",
            Self::Rm => "XS_RM",
            Self::SetPerms => "XS_SET_PERMS",
            Self::WatchEvent => "XS_WATCH_EVENT",
            Self::Error => "XS_ERROR",
            Self::IsDomainIntroduced => "XS_IS_DOMAIN_INTRODUCED",
            Self::Resume => "XS_RESUME",
            Self::SetTarget => "XS_SET_TARGET",
            Self::ResetWatches => "XS_RESET_WATCHES",
            Self::DirectoryPart => "XS_DIRECTORY_PART",
        }
    }
}

/// The errors xenstored reports, in the order of `xsd_errors[]`; an `XS_ERROR` payload is the
/// name of one of them.
pub const XSD_ERRORS: [XenErrno; 16] = [
    XenErrno::EINVAL,
    XenErrno::EACCES,
    XenErrno::EEXIST,
    XenErrno::EISDIR,
    XenErrno::ENOENT,
    XenErrno::ENOMEM,
    XenErrno::ENOSPC,
    XenErrno::EIO,
    XenErrno::ENOTEMPTY,
    XenErrno::ENOSYS,
    XenErrno::EROFS,
    XenErrno::EBUSY,
    XenErrno::EAGAIN,
    XenErrno::EISCONN,
    XenErrno::E2BIG,
    XenErrno::EPERM,
];

/// The raw message header (`struct xsd_sockmsg`); [`Header`] is its validated form.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XsdSockmsg {
    /// An [`XsMsgType`] value.
    pub type_: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id, 0 outside transactions.
    pub tx_id: u32,
    /// Payload length.
    pub len: u32,
}
impl_wire!(XsdSockmsg {
    type_,
    req_id,
    tx_id,
    len
});

/// The shared xenstore ring page (`struct xenstore_domain_interface`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenstoreDomainInterface {
    /// Requests to xenstored.
    pub req: [u8; XENSTORE_RING_SIZE],
    /// Replies and watch events.
    pub rsp: [u8; XENSTORE_RING_SIZE],
    /// Request consumer index (xenstored).
    pub req_cons: u32,
    /// Request producer index (guest).
    pub req_prod: u32,
    /// Response consumer index (guest).
    pub rsp_cons: u32,
    /// Response producer index (xenstored).
    pub rsp_prod: u32,
    /// `XENSTORE_SERVER_FEATURE_*` bits.
    pub server_features: u32,
    /// `XENSTORE_CONNECTED` or `XENSTORE_RECONNECT`.
    pub connection: u32,
    /// A `XENSTORE_ERROR_*` value.
    pub error: u32,
}

/// Offset of a ring index within a ring (`MASK_XENSTORE_IDX`).
pub const fn mask_xenstore_idx(idx: u32) -> usize {
    idx as usize & (XENSTORE_RING_SIZE - 1)
}

/// Malformed or oversized xenstore data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The output buffer cannot hold the message.
    OutputTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The input ended before the header or payload was complete.
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The payload length exceeds [`XENSTORE_PAYLOAD_MAX`].
    PayloadTooLong {
        /// The length given.
        len: usize,
    },
    /// The header's type is not a known [`XsMsgType`].
    UnknownType(u32),
    /// Strings were expected but the payload does not end with NUL.
    MissingNul,
    /// A string had an embedded NUL where one string was expected.
    UnexpectedNul,
    /// A string was not valid UTF-8.
    NotUtf8,
    /// The payload held a different number of strings than the message has.
    WrongStringCount {
        /// Strings the message type has.
        expected: usize,
        /// Strings found.
        found: usize,
    },
    /// An `XS_ERROR` payload named no known errno.
    UnknownError,
    /// A permission string was not `<n|r|w|b><domid>`.
    BadPermission,
    /// A path failed [`validate_path`].
    BadPath(PathError),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OutputTooSmall { need, have } => {
                write!(f, "xenstore message needs {need} bytes, buffer has {have}")
            }
            Self::Truncated { need, have } => {
                write!(
                    f,
                    "xenstore message truncated: need {need} bytes, have {have}"
                )
            }
            Self::PayloadTooLong { len } => {
                write!(
                    f,
                    "xenstore payload of {len} bytes exceeds {XENSTORE_PAYLOAD_MAX}"
                )
            }
            Self::UnknownType(t) => write!(f, "unknown xenstore message type {t}"),
            Self::MissingNul => f.write_str("xenstore payload is not NUL-terminated"),
            Self::UnexpectedNul => f.write_str("xenstore string contains a NUL"),
            Self::NotUtf8 => f.write_str("xenstore string is not UTF-8"),
            Self::WrongStringCount { expected, found } => {
                write!(
                    f,
                    "xenstore payload has {found} strings, expected {expected}"
                )
            }
            Self::UnknownError => f.write_str("xenstore error reply names no known errno"),
            Self::BadPermission => f.write_str("malformed xenstore permission"),
            Self::BadPath(e) => write!(f, "invalid xenstore path: {e}"),
        }
    }
}

impl From<PathError> for WireError {
    fn from(e: PathError) -> Self {
        Self::BadPath(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::byte_ring::{self, Chunk};

    #[test]
    fn type_numbering() {
        assert_eq!(XsMsgType::SetTarget as u32, 19);
        assert_eq!(XsMsgType::from_u32(20), None, "XS_RESTRICT was removed");
        assert_eq!(XsMsgType::ResetWatches as u32, 21);
        assert_eq!(XsMsgType::DirectoryPart as u32, 22);
        assert_eq!(XsMsgType::from_u32(XS_TYPE_COUNT), None);
        assert_eq!(XsMsgType::from_u32(XS_INVALID), None);
        for t in 0..XS_TYPE_COUNT {
            if let Some(ty) = XsMsgType::from_u32(t) {
                assert_eq!(ty as u32, t);
                assert!(ty.name().starts_with("XS_"));
            }
        }
        assert_eq!(XsMsgType::DEBUG, XsMsgType::Control);
    }

    #[test]
    fn ring_helpers() {
        assert_eq!(mask_xenstore_idx(1025), 1);
        assert_eq!(
            byte_ring::write_chunk(XENSTORE_RING_SIZE, 0, 1000),
            Ok(Chunk {
                offset: 1000,
                len: 24
            })
        );
        assert!(byte_ring::read_chunk(XENSTORE_RING_SIZE, 0, 2000).is_err());
    }
}
