//! The in-memory xenstore's wire side: connections that speak real `xs_wire` bytes, so the
//! client's encoder and parser run in every host test.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use xen_abi::xs_wire::{
    encode, encode_error, parse_perms, parse_string, parse_strings, Header, Message, PathKind,
    Perm, WireError, XsMsgType, XENSTORE_PAYLOAD_MAX, XS_HEADER_LEN,
};
use xen_abi::XenErrno;

use super::store::{home, matches, Change, Scope, Store, Tx};
use crate::platform::DomId;

#[derive(Debug)]
struct Watch {
    /// As registered (relative, absolute or special).
    given: String,
    /// Absolute form (special paths unchanged).
    abs: String,
    token: String,
}

#[derive(Debug)]
struct Conn {
    domid: DomId,
    inbuf: Vec<u8>,
    out: VecDeque<u8>,
    watches: Vec<Watch>,
    txs: BTreeMap<u32, Tx>,
}

/// The server: the store plus its connections.
#[derive(Debug, Default)]
pub(crate) struct XsServer {
    pub(crate) store: Store,
    conns: BTreeMap<u32, Conn>,
    next_conn: u32,
    next_tx: u32,
}

fn encode_vec(
    msg_type: XsMsgType,
    req_id: u32,
    tx_id: u32,
    parts: &[&[u8]],
) -> Result<Vec<u8>, WireError> {
    let mut buf = vec![0u8; XS_HEADER_LEN + XENSTORE_PAYLOAD_MAX];
    let n = encode(msg_type, req_id, tx_id, parts, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn error_vec(req_id: u32, tx_id: u32, errno: XenErrno) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    // Cannot fail: an error name fits easily.
    let n = encode_error(req_id, tx_id, errno, &mut buf).unwrap_or(0);
    buf.truncate(n);
    buf
}

const OK: &[u8] = b"OK\0";

impl XsServer {
    pub(crate) fn connect(&mut self, domid: DomId) -> u32 {
        self.next_conn += 1;
        let id = self.next_conn;
        let conn = Conn {
            domid,
            inbuf: Vec::new(),
            out: VecDeque::new(),
            watches: Vec::new(),
            txs: BTreeMap::new(),
        };
        self.conns.insert(id, conn);
        id
    }

    pub(crate) fn disconnect(&mut self, conn: u32) {
        self.conns.remove(&conn);
    }

    /// Bytes waiting to be read by `conn`.
    pub(crate) fn pending_output(&self, conn: u32) -> usize {
        self.conns.get(&conn).map_or(0, |c| c.out.len())
    }

    /// Whether any connection of `domid` has bytes to read.
    pub(crate) fn domain_has_output(&self, domid: DomId) -> bool {
        self.conns
            .values()
            .any(|c| c.domid == domid && !c.out.is_empty())
    }

    pub(crate) fn recv(&mut self, conn: u32, buf: &mut [u8]) -> usize {
        let Some(c) = self.conns.get_mut(&conn) else {
            return 0;
        };
        let n = buf.len().min(c.out.len());
        for (dst, src) in buf.iter_mut().zip(c.out.drain(..n)) {
            *dst = src;
        }
        n
    }

    /// Appends raw bytes to what `conn` will read (tests forging server messages).
    pub(crate) fn inject(&mut self, conn: u32, bytes: &[u8]) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.out.extend(bytes);
        }
    }

    /// Takes bytes from `conn`'s client and answers every complete message.
    pub(crate) fn send(&mut self, conn: u32, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.inbuf.extend_from_slice(bytes);
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let parsed = match Message::parse(&c.inbuf) {
                Ok((msg, used)) => Ok((msg.header, msg.payload.to_vec(), used)),
                Err(WireError::Truncated { .. }) => return,
                Err(e) => Err(e),
            };
            match parsed {
                Ok((header, payload, used)) => {
                    c.inbuf.drain(..used);
                    self.handle(conn, header, &payload);
                }
                Err(_) => {
                    // A bad header: xenstored would drop the connection; we drop the bytes.
                    c.inbuf.clear();
                    c.out.extend(error_vec(0, 0, XenErrno::EINVAL));
                    return;
                }
            }
        }
    }

    fn push(&mut self, conn: u32, bytes: &[u8]) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.out.extend(bytes);
        }
    }

    fn handle(&mut self, conn: u32, h: Header, payload: &[u8]) {
        let Some(domid) = self.conns.get(&conn).map(|c| c.domid) else {
            return;
        };
        let op = h.msg_type;
        let (reply, changes) = match self.dispatch(conn, domid, h, payload) {
            Ok((reply, changes)) => (Ok(reply), changes),
            Err(e) => (Err(e), Vec::new()),
        };
        let watched = op == XsMsgType::Watch && reply.is_ok();
        let bytes = match reply {
            Ok(parts) => encode_vec(op, h.req_id, h.tx_id, &[&parts])
                .unwrap_or_else(|_| error_vec(h.req_id, h.tx_id, XenErrno::E2BIG)),
            Err(e) => error_vec(h.req_id, h.tx_id, e),
        };
        self.push(conn, &bytes);
        if watched {
            // The initial firing, right after the reply.
            if let Some(w) = self.conns.get(&conn).and_then(|c| c.watches.last()) {
                let parts = [w.given.as_bytes(), b"\0", w.token.as_bytes(), b"\0"];
                if let Ok(ev) = encode_vec(XsMsgType::WatchEvent, 0, 0, &parts) {
                    self.push(conn, &ev);
                }
            }
        }
        self.fire(&changes);
    }

    /// Delivers watch events for committed changes to every connection that may see them.
    pub(crate) fn fire(&mut self, changes: &[Change]) {
        for change in changes {
            for c in self.conns.values_mut() {
                for w in &c.watches {
                    let Some(path) = matches(change, &w.abs, c.domid) else {
                        continue;
                    };
                    let shown = if w.given.starts_with('/') {
                        path
                    } else {
                        let prefix = alloc::format!("{}/", home(c.domid));
                        path.strip_prefix(&prefix)
                            .map(ToString::to_string)
                            .unwrap_or(path)
                    };
                    let parts = [shown.as_bytes(), b"\0", w.token.as_bytes(), b"\0"];
                    if let Ok(ev) = encode_vec(XsMsgType::WatchEvent, 0, 0, &parts) {
                        c.out.extend(ev);
                    }
                }
            }
        }
    }

    /// Fires watches on a special path (`@releaseDomain`, `@introduceDomain`).
    pub(crate) fn fire_special(&mut self, special: &str) {
        for c in self.conns.values_mut() {
            for w in c.watches.iter().filter(|w| w.abs == special) {
                let parts = [special.as_bytes(), b"\0", w.token.as_bytes(), b"\0"];
                if let Ok(ev) = encode_vec(XsMsgType::WatchEvent, 0, 0, &parts) {
                    c.out.extend(ev);
                }
            }
        }
    }

    fn dispatch(
        &mut self,
        conn: u32,
        domid: DomId,
        h: Header,
        payload: &[u8],
    ) -> Result<(Vec<u8>, Vec<Change>), XenErrno> {
        fn inval<E>(_: E) -> XenErrno {
            XenErrno::EINVAL
        }
        let XsServer {
            store,
            conns,
            next_tx,
            ..
        } = self;
        let c = conns.get_mut(&conn).ok_or(XenErrno::EINVAL)?;
        let path_arg = |p: &[u8]| -> Result<String, XenErrno> {
            Store::resolve(domid, parse_string(p).map_err(inval)?)
        };
        let scope = |txs: &mut BTreeMap<u32, Tx>| -> Result<Option<u32>, XenErrno> {
            match h.tx_id {
                0 => Ok(None),
                t if txs.contains_key(&t) => Ok(Some(t)),
                _ => Err(XenErrno::ENOENT),
            }
        };
        let tx_id = scope(&mut c.txs)?;
        macro_rules! sc {
            () => {
                match tx_id {
                    None => Scope::Direct,
                    Some(t) => Scope::Tx(c.txs.get_mut(&t).ok_or(XenErrno::ENOENT)?),
                }
            };
        }
        match h.msg_type {
            XsMsgType::Read => {
                let path = path_arg(payload)?;
                Ok((store.read(sc!(), domid, &path)?, Vec::new()))
            }
            XsMsgType::Directory => {
                let path = path_arg(payload)?;
                let mut out = Vec::new();
                for name in store.directory(sc!(), domid, &path)? {
                    out.extend_from_slice(name.as_bytes());
                    out.push(0);
                }
                Ok((out, Vec::new()))
            }
            XsMsgType::GetPerms => {
                let path = path_arg(payload)?;
                let mut out = Vec::new();
                for p in store.get_perms(sc!(), domid, &path)? {
                    out.extend_from_slice(p.to_string().as_bytes());
                    out.push(0);
                }
                Ok((out, Vec::new()))
            }
            XsMsgType::Write => {
                let nul = payload
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or(XenErrno::EINVAL)?;
                let path = path_arg(&payload[..=nul])?;
                let changes = store.write(sc!(), domid, &path, Some(&payload[nul + 1..]))?;
                Ok((OK.to_vec(), changes))
            }
            XsMsgType::Mkdir => {
                let path = path_arg(payload)?;
                Ok((OK.to_vec(), store.write(sc!(), domid, &path, None)?))
            }
            XsMsgType::Rm => {
                let path = path_arg(payload)?;
                Ok((OK.to_vec(), store.rm(sc!(), domid, &path)?))
            }
            XsMsgType::SetPerms => {
                let mut strings = parse_strings(payload).map_err(inval)?;
                let path = strings.next().ok_or(XenErrno::EINVAL)?;
                let path = Store::resolve(domid, path)?;
                let rest_at = path_len_in(payload);
                let perms: Vec<Perm> = parse_perms(&payload[rest_at..])
                    .map_err(inval)?
                    .collect::<Result<_, _>>()
                    .map_err(inval)?;
                Ok((OK.to_vec(), store.set_perms(sc!(), domid, &path, &perms)?))
            }
            XsMsgType::Watch | XsMsgType::Unwatch => {
                let strings: Vec<&str> = parse_strings(payload).map_err(inval)?.collect();
                let [given, token] = strings[..] else {
                    return Err(XenErrno::EINVAL);
                };
                let abs = match xen_abi::xs_wire::validate_path(given).map_err(inval)? {
                    PathKind::Special => given.to_string(),
                    _ => Store::resolve(domid, given)?,
                };
                let pos = c
                    .watches
                    .iter()
                    .position(|w| w.abs == abs && w.token == token);
                if h.msg_type == XsMsgType::Watch {
                    if pos.is_some() {
                        return Err(XenErrno::EEXIST);
                    }
                    let w = Watch {
                        given: given.to_string(),
                        abs,
                        token: token.to_string(),
                    };
                    c.watches.push(w);
                } else {
                    c.watches.remove(pos.ok_or(XenErrno::ENOENT)?);
                }
                Ok((OK.to_vec(), Vec::new()))
            }
            XsMsgType::TransactionStart => {
                if h.tx_id != 0 {
                    return Err(XenErrno::EBUSY);
                }
                *next_tx += 1;
                c.txs.insert(*next_tx, store.begin());
                let mut id = next_tx.to_string().into_bytes();
                id.push(0);
                Ok((id, Vec::new()))
            }
            XsMsgType::TransactionEnd => {
                let t = tx_id.ok_or(XenErrno::ENOENT)?;
                let commit = match parse_string(payload).map_err(inval)? {
                    "T" => true,
                    "F" => false,
                    _ => return Err(XenErrno::EINVAL),
                };
                let tx = c.txs.remove(&t).ok_or(XenErrno::ENOENT)?;
                let changes = if commit {
                    store.commit(tx)?
                } else {
                    Vec::new()
                };
                Ok((OK.to_vec(), changes))
            }
            XsMsgType::GetDomainPath => {
                let id = parse_string(payload).map_err(inval)?;
                let id: DomId = id.parse().map_err(|_| XenErrno::EINVAL)?;
                let mut out = home(id).into_bytes();
                out.push(0);
                Ok((out, Vec::new()))
            }
            _ => Err(XenErrno::ENOSYS),
        }
    }
}

/// Offset just past the first NUL (the path of a `SET_PERMS` payload).
fn path_len_in(payload: &[u8]) -> usize {
    payload
        .iter()
        .position(|&b| b == 0)
        .map_or(payload.len(), |i| i + 1)
}
