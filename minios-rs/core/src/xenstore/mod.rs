//! A blocking xenstore client over any [`XsTransport`].
//!
//! Each request is sent and the client then reads until the reply with the same request id
//! arrives; watch events that arrive meanwhile go into a bounded queue. Replies that are
//! malformed, of the wrong type or `XS_ERROR` become [`XsError`]s; nothing the server sends
//! can make the client panic or grow without bound.
//!
//! # Watch events are bounded (XSA-349)
//! A frontend can rewrite nodes under a watched path in a loop. The queue holds at most
//! [`XsConfig::max_events`] events and [`XsConfig::max_event_bytes`] bytes of paths; an event
//! identical to one already queued is coalesced, and when the queue is full the event is
//! dropped and its watch is marked overflowed. The consumer then receives
//! [`Event::Overflow`] for that token and must re-read everything the watch covers.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use xen_abi::xs_wire::{
    encode, parse_error, parse_perms, parse_string, parse_strings, parse_watch_event,
    validate_path, Header, MessageReader, WireError, XsMsgType, XENSTORE_PAYLOAD_MAX,
    XS_HEADER_LEN,
};
pub use xen_abi::xs_wire::{Perm, PermAccess};
use xen_abi::XenErrno;

use crate::platform::{DomId, TransportError, XsTransport};

/// A xenstore operation that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XsError {
    /// xenstored refused with this error (`XS_ERROR` reply): `ENOENT`, `EACCES`, `EAGAIN`…
    Errno(XenErrno),
    /// The byte stream from the server is not xenstore messages (bad header): the connection
    /// is out of sync and the buffered bytes were discarded.
    Protocol(WireError),
    /// The reply to `op` has a payload that does not parse.
    Malformed {
        /// The request type.
        op: XsMsgType,
        /// What was wrong.
        reason: WireError,
    },
    /// The reply to `sent` carried type `got`.
    UnexpectedReply {
        /// The request type.
        sent: XsMsgType,
        /// The reply type.
        got: XsMsgType,
    },
    /// The reply to `op` parsed but did not say what it must (`OK`, a transaction id…).
    BadReply {
        /// The request type.
        op: XsMsgType,
        /// What the reply should have been.
        expected: &'static str,
    },
    /// Our own request was invalid (bad path, payload too long); nothing was sent.
    Invalid(WireError),
    /// A value was not valid UTF-8 where text was required.
    NotUtf8,
    /// A transaction kept conflicting (`EAGAIN`) past the retry bound.
    TooManyRetries,
    /// The transport failed.
    Transport(TransportError),
}

impl XsError {
    /// The server errno, if this is one.
    pub fn errno(&self) -> Option<XenErrno> {
        match self {
            XsError::Errno(e) => Some(*e),
            _ => None,
        }
    }

    /// Whether the node does not exist.
    pub fn is_enoent(&self) -> bool {
        self.errno() == Some(XenErrno::ENOENT)
    }
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XsError::Errno(e) => write!(f, "xenstore error {}", e.name().unwrap_or("E?")),
            XsError::Protocol(e) => write!(f, "xenstore stream out of sync: {e}"),
            XsError::Malformed { op, reason } => {
                write!(f, "malformed reply to {}: {reason}", op.name())
            }
            XsError::UnexpectedReply { sent, got } => {
                write!(f, "reply to {} has type {}", sent.name(), got.name())
            }
            XsError::BadReply { op, expected } => {
                write!(f, "reply to {} is not {expected}", op.name())
            }
            XsError::Invalid(e) => write!(f, "invalid xenstore request: {e}"),
            XsError::NotUtf8 => f.write_str("xenstore value is not UTF-8"),
            XsError::TooManyRetries => f.write_str("xenstore transaction kept conflicting"),
            XsError::Transport(e) => write!(f, "{e}"),
        }
    }
}

impl From<TransportError> for XsError {
    fn from(e: TransportError) -> Self {
        XsError::Transport(e)
    }
}

/// A watch firing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The node that changed (at or below the watched path, as the server reports it).
    pub path: String,
    /// The token given to [`Xenstore::watch`].
    pub token: String,
}

/// What the watch queue delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A watch fired.
    Fired(WatchEvent),
    /// Events for this token were dropped because the queue was full: re-read everything
    /// the watch covers.
    Overflow {
        /// The watch's token.
        token: String,
    },
}

impl Event {
    /// The token of the watch this event belongs to.
    pub fn token(&self) -> &str {
        match self {
            Event::Fired(e) => &e.token,
            Event::Overflow { token } => token,
        }
    }
}

/// Client limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XsConfig {
    /// Most watch events queued at once.
    pub max_events: usize,
    /// Most bytes of paths and tokens queued at once.
    pub max_event_bytes: usize,
    /// Attempts of [`Xenstore::transaction`] before giving up with
    /// [`XsError::TooManyRetries`].
    pub max_tx_attempts: u32,
}

impl Default for XsConfig {
    fn default() -> Self {
        Self {
            max_events: 128,
            max_event_bytes: 64 * 1024,
            max_tx_attempts: 16,
        }
    }
}

/// Counters (no log lines on these paths: a hostile frontend could cause any number).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XsStats {
    /// Requests sent.
    pub requests: u64,
    /// Watch events queued.
    pub events_queued: u64,
    /// Watch events merged into an identical queued one.
    pub events_coalesced: u64,
    /// Watch events dropped because the queue was full.
    pub events_dropped: u64,
    /// Watch events for tokens we do not hold (after unwatch) or that did not parse.
    pub events_ignored: u64,
    /// Replies with a request id we were not waiting for.
    pub stale_replies: u64,
    /// Times the incoming stream had to be discarded.
    pub desyncs: u64,
    /// Transaction retries after `EAGAIN`.
    pub tx_retries: u64,
}

#[derive(Debug)]
struct Registration {
    path: String,
    token: String,
    overflowed: bool,
}

/// The operations available both directly and inside a transaction.
///
/// Paths are absolute (`/local/domain/…`) or relative to the connection's domain home.
pub trait Store {
    /// Reads a node's value.
    fn read(&mut self, path: &str) -> Result<Vec<u8>, XsError>;
    /// Writes a node, creating it and missing parents.
    fn write(&mut self, path: &str, value: &[u8]) -> Result<(), XsError>;
    /// Creates a node with an empty value if it does not exist.
    fn mkdir(&mut self, path: &str) -> Result<(), XsError>;
    /// Removes a node and everything below it.
    fn rm(&mut self, path: &str) -> Result<(), XsError>;
    /// Lists a node's children (names, not paths).
    fn directory(&mut self, path: &str) -> Result<Vec<String>, XsError>;
    /// Reads a node's permissions (owner first).
    fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>, XsError>;
    /// Sets a node's permissions (owner first).
    fn set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), XsError>;

    /// Reads a node as UTF-8 text.
    fn read_string(&mut self, path: &str) -> Result<String, XsError> {
        String::from_utf8(self.read(path)?).map_err(|_| XsError::NotUtf8)
    }

    /// Reads a node, `None` if it does not exist.
    fn read_opt(&mut self, path: &str) -> Result<Option<Vec<u8>>, XsError> {
        match self.read(path) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_enoent() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes text.
    fn write_str(&mut self, path: &str, value: &str) -> Result<(), XsError> {
        self.write(path, value.as_bytes())
    }

    /// Lists children, an empty list if the node does not exist.
    fn directory_opt(&mut self, path: &str) -> Result<Vec<String>, XsError> {
        match self.directory(path) {
            Err(e) if e.is_enoent() => Ok(Vec::new()),
            r => r,
        }
    }
}

/// Parses an untrusted unsigned decimal value strictly: 1 to 20 ASCII digits, no sign,
/// whitespace, NUL or trailing bytes, no overflow. `None` otherwise.
pub fn parse_uint(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 20 {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// A xenstore connection.
pub struct Xenstore<T> {
    transport: T,
    config: XsConfig,
    reader: MessageReader,
    rx: Vec<u8>,
    rx_pos: usize,
    rx_len: usize,
    tx_buf: Vec<u8>,
    next_req_id: u32,
    watches: Vec<Registration>,
    events: VecDeque<WatchEvent>,
    event_bytes: usize,
    stats: XsStats,
    wait_hook: Option<WaitHook>,
}

/// Work that cannot wait for a xenstore reply (a sound card's mixer): run while a request
/// waits for its reply; returns when it must run again (`None`: only once the reply came).
/// Replies from a busy dom0 can take a tenth of a second and more under load, and the
/// executor's tasks all wait behind a task's xenstore request.
pub type WaitHook = alloc::boxed::Box<dyn FnMut() -> Option<u64>>;

impl<T> fmt::Debug for Xenstore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Xenstore")
            .field("watches", &self.watches.len())
            .field("queued_events", &self.events.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<T: XsTransport> Xenstore<T> {
    /// A client with default limits.
    pub fn new(transport: T) -> Self {
        Self::with_config(transport, XsConfig::default())
    }

    /// A client with the given limits.
    pub fn with_config(transport: T, config: XsConfig) -> Self {
        Self {
            transport,
            config,
            reader: MessageReader::new(),
            rx: vec![0; 1024],
            rx_pos: 0,
            rx_len: 0,
            tx_buf: vec![0; XS_HEADER_LEN + XENSTORE_PAYLOAD_MAX],
            next_req_id: 1,
            watches: Vec::new(),
            events: VecDeque::new(),
            event_bytes: 0,
            stats: XsStats::default(),
            wait_hook: None,
        }
    }

    /// Runs `hook` whenever a request waits for its reply, and again by the time it asks
    /// for (see [`WaitHook`]).
    pub fn set_wait_hook(&mut self, hook: WaitHook) {
        self.wait_hook = Some(hook);
    }

    /// The transport.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Counters.
    pub fn stats(&self) -> XsStats {
        self.stats
    }

    /// Sends one request and waits for its reply; returns the reply payload.
    fn request(&mut self, op: XsMsgType, tx: u32, parts: &[&[u8]]) -> Result<Vec<u8>, XsError> {
        let req_id = self.next_req_id;
        self.next_req_id = self.next_req_id.wrapping_add(1).max(1);
        let n = encode(op, req_id, tx, parts, &mut self.tx_buf).map_err(XsError::Invalid)?;
        self.stats.requests += 1;
        self.transport.send(&self.tx_buf[..n])?;
        loop {
            let Some((header, payload)) = self.next_message()? else {
                let deadline = self.wait_hook.as_mut().and_then(|hook| hook());
                self.transport.wait_readable_until(deadline)?;
                continue;
            };
            if header.msg_type == XsMsgType::WatchEvent {
                self.queue_event(&payload);
                continue;
            }
            if header.req_id != req_id {
                self.stats.stale_replies += 1;
                continue;
            }
            if header.msg_type == XsMsgType::Error {
                let errno =
                    parse_error(&payload).map_err(|reason| XsError::Malformed { op, reason })?;
                return Err(XsError::Errno(errno));
            }
            if header.msg_type != op {
                return Err(XsError::UnexpectedReply {
                    sent: op,
                    got: header.msg_type,
                });
            }
            return Ok(payload);
        }
    }

    /// Sends a request whose reply must be `OK\0`.
    fn request_ok(&mut self, op: XsMsgType, tx: u32, parts: &[&[u8]]) -> Result<(), XsError> {
        let reply = self.request(op, tx, parts)?;
        match parse_string(&reply) {
            Ok("OK") => Ok(()),
            Ok(_) => Err(XsError::BadReply { op, expected: "OK" }),
            Err(reason) => Err(XsError::Malformed { op, reason }),
        }
    }

    /// Reads one complete message if the transport has its bytes, without blocking.
    fn next_message(&mut self) -> Result<Option<(Header, Vec<u8>)>, XsError> {
        loop {
            if let Some(msg) = self.reader.message() {
                let out = (msg.header, msg.payload.to_vec());
                self.reader.reset();
                return Ok(Some(out));
            }
            if self.rx_pos == self.rx_len {
                self.rx_pos = 0;
                self.rx_len = self.transport.recv(&mut self.rx)?;
                if self.rx_len == 0 {
                    return Ok(None);
                }
            }
            match self.reader.feed(&self.rx[self.rx_pos..self.rx_len]) {
                Ok(used) => self.rx_pos += used,
                Err(e) => {
                    self.stats.desyncs += 1;
                    self.rx_pos = self.rx_len;
                    return Err(XsError::Protocol(e));
                }
            }
        }
    }

    fn queue_event(&mut self, payload: &[u8]) {
        let Ok(ev) = parse_watch_event(payload) else {
            self.stats.events_ignored += 1;
            return;
        };
        let Some(reg) = self.watches.iter_mut().find(|w| w.token == ev.token) else {
            self.stats.events_ignored += 1;
            return;
        };
        if self
            .events
            .iter()
            .any(|e| e.path == ev.path && e.token == ev.token)
        {
            self.stats.events_coalesced += 1;
            return;
        }
        let size = ev.path.len() + ev.token.len();
        if self.events.len() >= self.config.max_events
            || self.event_bytes + size > self.config.max_event_bytes
        {
            reg.overflowed = true;
            self.stats.events_dropped += 1;
            return;
        }
        self.event_bytes += size;
        self.stats.events_queued += 1;
        self.events.push_back(WatchEvent {
            path: ev.path.to_string(),
            token: ev.token.to_string(),
        });
    }

    /// Reads whatever the transport has without blocking, queueing watch events. Replies
    /// nobody waits for are counted and dropped.
    pub fn poll(&mut self) -> Result<(), XsError> {
        while let Some((header, payload)) = self.next_message()? {
            if header.msg_type == XsMsgType::WatchEvent {
                self.queue_event(&payload);
            } else {
                self.stats.stale_replies += 1;
            }
        }
        Ok(())
    }

    /// Takes the next queued watch event (overflow notices first), without I/O.
    pub fn next_event(&mut self) -> Option<Event> {
        if let Some(reg) = self.watches.iter_mut().find(|w| w.overflowed) {
            reg.overflowed = false;
            return Some(Event::Overflow {
                token: reg.token.clone(),
            });
        }
        let ev = self.events.pop_front()?;
        self.event_bytes -= ev.path.len() + ev.token.len();
        Some(Event::Fired(ev))
    }

    /// Whether an event is queued (without I/O).
    pub fn has_events(&self) -> bool {
        !self.events.is_empty() || self.watches.iter().any(|w| w.overflowed)
    }

    /// Number of events queued.
    pub fn queued_events(&self) -> usize {
        self.events.len()
    }

    /// Watches `path` (and everything below it) under `token`. The server fires the watch
    /// once right away. Tokens must be unique per client.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        validate_path(path).map_err(|e| XsError::Invalid(e.into()))?;
        if token.as_bytes().contains(&0) {
            return Err(XsError::Invalid(WireError::UnexpectedNul));
        }
        if self.watches.iter().any(|w| w.token == token) {
            return Err(XsError::Errno(XenErrno::EEXIST));
        }
        // Registered before sending: the initial event may follow the reply immediately.
        self.watches.push(Registration {
            path: path.to_string(),
            token: token.to_string(),
            overflowed: false,
        });
        let r = self.request_ok(
            XsMsgType::Watch,
            0,
            &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"],
        );
        if r.is_err() {
            self.forget_watch(token);
        }
        r
    }

    /// Removes the watch with `token` and drops its queued events.
    pub fn unwatch(&mut self, token: &str) -> Result<(), XsError> {
        let Some(reg) = self.watches.iter().find(|w| w.token == token) else {
            return Err(XsError::Errno(XenErrno::ENOENT));
        };
        let path = reg.path.clone();
        self.forget_watch(token);
        self.request_ok(
            XsMsgType::Unwatch,
            0,
            &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"],
        )
    }

    fn forget_watch(&mut self, token: &str) {
        self.watches.retain(|w| w.token != token);
        let mut freed = 0;
        self.events.retain(|e| {
            let keep = e.token != token;
            if !keep {
                freed += e.path.len() + e.token.len();
            }
            keep
        });
        self.event_bytes -= freed;
    }

    /// Tokens of the watches currently held.
    pub fn watch_tokens(&self) -> impl Iterator<Item = &str> {
        self.watches.iter().map(|w| w.token.as_str())
    }

    /// `XS_GET_DOMAIN_PATH`: the home path of `domid` (`/local/domain/<domid>`).
    pub fn get_domain_path(&mut self, domid: DomId) -> Result<String, XsError> {
        let id = domid.to_string();
        let op = XsMsgType::GetDomainPath;
        let reply = self.request(op, 0, &[id.as_bytes(), b"\0"])?;
        parse_string(&reply)
            .map(ToString::to_string)
            .map_err(|reason| XsError::Malformed { op, reason })
    }

    /// Starts a transaction. Prefer [`transaction`](Self::transaction), which retries.
    pub fn begin(&mut self) -> Result<Transaction<'_, T>, XsError> {
        let op = XsMsgType::TransactionStart;
        let reply = self.request(op, 0, &[b"\0"])?;
        let id = parse_string(&reply)
            .map_err(|reason| XsError::Malformed { op, reason })
            .and_then(|s| {
                parse_uint(s.as_bytes())
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|&n| n != 0)
                    .ok_or(XsError::BadReply {
                        op,
                        expected: "a transaction id",
                    })
            })?;
        Ok(Transaction {
            xs: self,
            id,
            finished: false,
        })
    }

    /// Runs `f` in a transaction and commits it, retrying the whole closure when the commit
    /// (or an operation) fails with `EAGAIN`, at most [`XsConfig::max_tx_attempts`] times.
    /// An error from `f` aborts the transaction and is returned.
    pub fn transaction<R>(
        &mut self,
        mut f: impl FnMut(&mut Transaction<'_, T>) -> Result<R, XsError>,
    ) -> Result<R, XsError> {
        for attempt in 0..self.config.max_tx_attempts {
            if attempt > 0 {
                self.stats.tx_retries += 1;
            }
            let mut tx = self.begin()?;
            let result = f(&mut tx);
            let outcome = match result {
                Ok(r) => tx.commit().map(|()| r),
                Err(e) => {
                    tx.abort();
                    Err(e)
                }
            };
            match outcome {
                Err(XsError::Errno(XenErrno::EAGAIN)) => continue,
                other => return other,
            }
        }
        Err(XsError::TooManyRetries)
    }

    fn op_read(&mut self, tx: u32, path: &str) -> Result<Vec<u8>, XsError> {
        check_path(path)?;
        self.request(XsMsgType::Read, tx, &[path.as_bytes(), b"\0"])
    }

    fn op_write(&mut self, tx: u32, path: &str, value: &[u8]) -> Result<(), XsError> {
        check_path(path)?;
        self.request_ok(XsMsgType::Write, tx, &[path.as_bytes(), b"\0", value])
    }

    fn op_simple(&mut self, op: XsMsgType, tx: u32, path: &str) -> Result<(), XsError> {
        check_path(path)?;
        self.request_ok(op, tx, &[path.as_bytes(), b"\0"])
    }

    fn op_directory(&mut self, tx: u32, path: &str) -> Result<Vec<String>, XsError> {
        check_path(path)?;
        let op = XsMsgType::Directory;
        let reply = self.request(op, tx, &[path.as_bytes(), b"\0"])?;
        let names = parse_strings(&reply).map_err(|reason| XsError::Malformed { op, reason })?;
        Ok(names.map(ToString::to_string).collect())
    }

    fn op_get_perms(&mut self, tx: u32, path: &str) -> Result<Vec<Perm>, XsError> {
        check_path(path)?;
        let op = XsMsgType::GetPerms;
        let reply = self.request(op, tx, &[path.as_bytes(), b"\0"])?;
        let perms = parse_perms(&reply).map_err(|reason| XsError::Malformed { op, reason })?;
        let perms: Vec<Perm> = perms
            .collect::<Result<_, _>>()
            .map_err(|reason| XsError::Malformed { op, reason })?;
        if perms.is_empty() {
            return Err(XsError::Malformed {
                op,
                reason: WireError::BadPermission,
            });
        }
        Ok(perms)
    }

    fn op_set_perms(&mut self, tx: u32, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        check_path(path)?;
        if perms.is_empty() {
            return Err(XsError::Invalid(WireError::BadPermission));
        }
        let mut payload = Vec::with_capacity(path.len() + 1 + perms.len() * 7);
        payload.extend_from_slice(path.as_bytes());
        payload.push(0);
        for p in perms {
            let mut buf = [0u8; 8];
            let n = p.encode(&mut buf).map_err(XsError::Invalid)?;
            payload.extend_from_slice(&buf[..n]);
            payload.push(0);
        }
        self.request_ok(XsMsgType::SetPerms, tx, &[&payload])
    }
}

fn check_path(path: &str) -> Result<(), XsError> {
    validate_path(path)
        .map(|_| ())
        .map_err(|e| XsError::Invalid(e.into()))
}

impl<T: XsTransport> Store for Xenstore<T> {
    fn read(&mut self, path: &str) -> Result<Vec<u8>, XsError> {
        self.op_read(0, path)
    }
    fn write(&mut self, path: &str, value: &[u8]) -> Result<(), XsError> {
        self.op_write(0, path, value)
    }
    fn mkdir(&mut self, path: &str) -> Result<(), XsError> {
        self.op_simple(XsMsgType::Mkdir, 0, path)
    }
    fn rm(&mut self, path: &str) -> Result<(), XsError> {
        self.op_simple(XsMsgType::Rm, 0, path)
    }
    fn directory(&mut self, path: &str) -> Result<Vec<String>, XsError> {
        self.op_directory(0, path)
    }
    fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>, XsError> {
        self.op_get_perms(0, path)
    }
    fn set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        self.op_set_perms(0, path, perms)
    }
}

/// An open transaction. Operations see a private snapshot; [`commit`](Self::commit) applies
/// them atomically or fails with `EAGAIN`. Dropping it unfinished aborts it (best effort).
pub struct Transaction<'a, T: XsTransport> {
    xs: &'a mut Xenstore<T>,
    id: u32,
    finished: bool,
}

impl<T: XsTransport> Transaction<'_, T> {
    /// The transaction id.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn end(&mut self, commit: bool) -> Result<(), XsError> {
        self.finished = true;
        let flag: &[u8] = if commit { b"T\0" } else { b"F\0" };
        self.xs
            .request_ok(XsMsgType::TransactionEnd, self.id, &[flag])
    }

    /// Commits. `Err(Errno(EAGAIN))` means another writer interfered: start over.
    pub fn commit(mut self) -> Result<(), XsError> {
        self.end(true)
    }

    /// Aborts, discarding the changes.
    pub fn abort(mut self) {
        // Nothing useful to do if the abort itself fails: the server drops the transaction
        // when the connection goes.
        let _ = self.end(false);
    }
}

impl<T: XsTransport> Drop for Transaction<'_, T> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.end(false);
        }
    }
}

impl<T: XsTransport> Store for Transaction<'_, T> {
    fn read(&mut self, path: &str) -> Result<Vec<u8>, XsError> {
        self.xs.op_read(self.id, path)
    }
    fn write(&mut self, path: &str, value: &[u8]) -> Result<(), XsError> {
        self.xs.op_write(self.id, path, value)
    }
    fn mkdir(&mut self, path: &str) -> Result<(), XsError> {
        self.xs.op_simple(XsMsgType::Mkdir, self.id, path)
    }
    fn rm(&mut self, path: &str) -> Result<(), XsError> {
        self.xs.op_simple(XsMsgType::Rm, self.id, path)
    }
    fn directory(&mut self, path: &str) -> Result<Vec<String>, XsError> {
        self.xs.op_directory(self.id, path)
    }
    fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>, XsError> {
        self.xs.op_get_perms(self.id, path)
    }
    fn set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        self.xs.op_set_perms(self.id, path, perms)
    }
}

#[cfg(test)]
mod tests;
