//! Xen's errno values (`xen/errno.h`). Hypercalls return `-errno` on failure.

use core::fmt;

/// A Xen errno value, stored positive (a hypercall returning `-22` failed with
/// [`XenErrno::EINVAL`]). The values match Linux's on x86.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct XenErrno(pub i32);

macro_rules! errnos {
    ($($name:ident = $value:expr, $doc:expr;)*) => {
        impl XenErrno {
            $(#[doc = $doc] pub const $name: Self = Self($value);)*

            /// The symbolic name (`"EINVAL"`), if the value is one Xen defines.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    // EWOULDBLOCK and EDEADLOCK alias EAGAIN and EDEADLK; the first wins.
                    $(v if v == $value => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// The errno with the given symbolic name (`"ENOENT"`), as xenstore reports them.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $(stringify!($name) => Some(Self::$name),)*
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, "Operation not permitted.";
    ENOENT = 2, "No such file or directory.";
    ESRCH = 3, "No such process.";
    EIO = 5, "I/O error.";
    ENXIO = 6, "No such device or address.";
    E2BIG = 7, "Argument list too long.";
    ENOEXEC = 8, "Exec format error.";
    EBADF = 9, "Bad file number.";
    ECHILD = 10, "No child processes.";
    EAGAIN = 11, "Try again.";
    EWOULDBLOCK = 11, "Operation would block (alias of `EAGAIN`).";
    ENOMEM = 12, "Out of memory.";
    EACCES = 13, "Permission denied.";
    EFAULT = 14, "Bad address.";
    EBUSY = 16, "Device or resource busy.";
    EEXIST = 17, "File exists.";
    EXDEV = 18, "Cross-device link.";
    ENODEV = 19, "No such device.";
    ENOTDIR = 20, "Not a directory.";
    EISDIR = 21, "Is a directory.";
    EINVAL = 22, "Invalid argument.";
    ENFILE = 23, "File table overflow.";
    EMFILE = 24, "Too many open files.";
    ENOSPC = 28, "No space left on device.";
    EROFS = 30, "Read-only file system.";
    EMLINK = 31, "Too many links.";
    EDOM = 33, "Math argument out of domain of function.";
    ERANGE = 34, "Math result not representable.";
    EDEADLK = 35, "Resource deadlock would occur.";
    EDEADLOCK = 35, "Resource deadlock would occur (alias of `EDEADLK`).";
    ENAMETOOLONG = 36, "File name too long.";
    ENOLCK = 37, "No record locks available.";
    ENOSYS = 38, "Function not implemented.";
    ENOTEMPTY = 39, "Directory not empty.";
    ENODATA = 61, "No data available.";
    ETIME = 62, "Timer expired.";
    EBADMSG = 74, "Not a data message.";
    EOVERFLOW = 75, "Value too large for defined data type.";
    EILSEQ = 84, "Illegal byte sequence.";
    ENOTSOCK = 88, "Socket operation on non-socket.";
    EMSGSIZE = 90, "Message too large.";
    EOPNOTSUPP = 95, "Operation not supported on transport endpoint.";
    EADDRINUSE = 98, "Address already in use.";
    EADDRNOTAVAIL = 99, "Cannot assign requested address.";
    ENOBUFS = 105, "No buffer space available.";
    EISCONN = 106, "Transport endpoint is already connected.";
    ENOTCONN = 107, "Transport endpoint is not connected.";
    ETIMEDOUT = 110, "Connection timed out.";
    ECONNREFUSED = 111, "Connection refused.";
}

impl XenErrno {
    /// Splits a raw hypercall return value: negative values are errors, the rest results.
    pub fn check(ret: i64) -> Result<u64, XenErrno> {
        if ret < 0 {
            Err(XenErrno(
                i32::try_from(ret.unsigned_abs()).unwrap_or(i32::MAX),
            ))
        } else {
            Ok(ret.unsigned_abs())
        }
    }

    /// The value a hypercall returns for this error (`-errno`).
    pub const fn to_ret(self) -> i64 {
        -(self.0 as i64)
    }
}

impl fmt::Debug for XenErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "XenErrno({name})"),
            None => write!(f, "XenErrno({})", self.0),
        }
    }
}

impl fmt::Display for XenErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "Xen error {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn names_and_aliases() {
        assert_eq!(XenErrno::EINVAL.name(), Some("EINVAL"));
        assert_eq!(XenErrno(11).name(), Some("EAGAIN"));
        assert_eq!(XenErrno::EWOULDBLOCK, XenErrno::EAGAIN);
        assert_eq!(XenErrno(35).name(), Some("EDEADLK"));
        assert_eq!(XenErrno(4).name(), None, "EINTR is Xen-internal");
        assert_eq!(XenErrno::from_name("ENOENT"), Some(XenErrno::ENOENT));
        assert_eq!(XenErrno::from_name("EWHATEVER"), None);
    }

    #[test]
    fn check_splits_return_values() {
        assert_eq!(XenErrno::check(0), Ok(0));
        assert_eq!(XenErrno::check(4096), Ok(4096));
        assert_eq!(XenErrno::check(-22), Err(XenErrno::EINVAL));
        assert_eq!(XenErrno::check(i64::MIN), Err(XenErrno(i32::MAX)));
        assert_eq!(XenErrno::ENOSPC.to_ret(), -28);
    }

    #[test]
    fn formatting() {
        assert_eq!(format!("{}", XenErrno::EPERM), "EPERM (1)");
        assert_eq!(format!("{:?}", XenErrno::EPERM), "XenErrno(EPERM)");
        assert_eq!(format!("{}", XenErrno(999)), "Xen error 999");
    }
}
