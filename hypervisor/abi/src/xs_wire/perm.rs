//! Xenstore permission strings: an access letter and a domain id, e.g. `"r5"`.
//!
//! A node's permission list is `owner-perm\0acl\0acl\0…`: the first entry names the owner
//! (its letter is the access for domains not listed), the rest grant access to one domain each.

use super::WireError;
use crate::DomId;
use core::fmt;

/// The access a permission grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PermAccess {
    /// `n`: no access.
    NoAccess,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    ReadWrite,
}

impl PermAccess {
    /// The wire letter.
    pub const fn letter(self) -> u8 {
        match self {
            Self::NoAccess => b'n',
            Self::Read => b'r',
            Self::Write => b'w',
            Self::ReadWrite => b'b',
        }
    }

    /// The access for a wire letter.
    pub const fn from_letter(letter: u8) -> Option<Self> {
        match letter {
            b'n' => Some(Self::NoAccess),
            b'r' => Some(Self::Read),
            b'w' => Some(Self::Write),
            b'b' => Some(Self::ReadWrite),
            _ => None,
        }
    }
}

/// One permission entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The access granted.
    pub access: PermAccess,
    /// The domain it applies to (the owner, for the first entry).
    pub domid: DomId,
}

/// Longest encoded permission: a letter and five digits.
pub(super) const PERM_MAX_LEN: usize = 6;

impl Perm {
    /// Parses `<n|r|w|b><decimal domid>`; the domid must fit in 16 bits and have no sign,
    /// whitespace or other bytes.
    pub fn parse(s: &[u8]) -> Result<Self, WireError> {
        let (&letter, digits) = s.split_first().ok_or(WireError::BadPermission)?;
        let access = PermAccess::from_letter(letter).ok_or(WireError::BadPermission)?;
        if digits.is_empty() || digits.len() > PERM_MAX_LEN - 1 {
            return Err(WireError::BadPermission);
        }
        let mut domid: u32 = 0;
        for &d in digits {
            if !d.is_ascii_digit() {
                return Err(WireError::BadPermission);
            }
            domid = domid * 10 + u32::from(d - b'0');
        }
        let domid = DomId::try_from(domid).map_err(|_| WireError::BadPermission)?;
        Ok(Self { access, domid })
    }

    /// Writes the permission (without NUL) into `out`; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let mut buf = [0u8; PERM_MAX_LEN];
        buf[0] = self.access.letter();
        let mut digits = [0u8; 5];
        let mut n = self.domid;
        let mut count = 0;
        loop {
            digits[count] = b'0' + (n % 10) as u8;
            count += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for i in 0..count {
            buf[1 + i] = digits[count - 1 - i];
        }
        let len = 1 + count;
        let have = out.len();
        out.get_mut(..len)
            .ok_or(WireError::OutputTooSmall { need: len, have })?
            .copy_from_slice(&buf[..len]);
        Ok(len)
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", char::from(self.access.letter()), self.domid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn parse_and_format() {
        let cases = [
            (&b"n0"[..], PermAccess::NoAccess, 0),
            (b"r1", PermAccess::Read, 1),
            (b"w2", PermAccess::Write, 2),
            (b"b3", PermAccess::ReadWrite, 3),
            (b"r65535", PermAccess::Read, 65535),
            (b"b32752", PermAccess::ReadWrite, 0x7ff0),
        ];
        for (text, access, domid) in cases {
            let p = Perm::parse(text).unwrap();
            assert_eq!(p, Perm { access, domid });
            let mut out = [0u8; 8];
            let n = p.encode(&mut out).unwrap();
            assert_eq!(&out[..n], text);
            assert_eq!(p.to_string().as_bytes(), text);
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b""[..],
            b"r",
            b"x1",
            b"R1",
            b"r-1",
            b"r+1",
            b"r 1",
            b"r1 ",
            b"r65536",
            b"r000001",
            b"r1\0",
            b"rr1",
            b"1r",
        ] {
            assert_eq!(Perm::parse(bad), Err(WireError::BadPermission), "{bad:?}");
        }
    }

    #[test]
    fn encode_needs_room() {
        let p = Perm {
            access: PermAccess::Read,
            domid: 12345,
        };
        let mut small = [0u8; 5];
        assert_eq!(
            p.encode(&mut small),
            Err(WireError::OutputTooSmall { need: 6, have: 5 })
        );
    }
}
