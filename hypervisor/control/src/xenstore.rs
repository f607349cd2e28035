//! A blocking xenstore client over xenstored's unix socket (dom0) or /dev/xen/xenbus (guests
//! and driver domains), using xen-abi's wire format.

use crate::vusb::Node;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use xen_abi::xs_wire::{self, Header, XsMsgType, XS_HEADER_LEN};

/// xenstored's socket in dom0.
const SOCKET: &str = "/run/xenstored/socket";
/// The kernel's xenstore device in other domains.
const DEVICE: &str = "/dev/xen/xenbus";

enum Conn {
    Socket(UnixStream),
    Device(File),
}

impl Conn {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Socket(s) => s.write_all(b),
            Conn::Device(f) => f.write_all(b),
        }
    }
    fn read_exact(&mut self, b: &mut [u8]) -> std::io::Result<()> {
        match self {
            Conn::Socket(s) => s.read_exact(b),
            Conn::Device(f) => f.read_exact(b),
        }
    }
}

/// A watch event: the path that changed and the watch's token.
pub type WatchEvent = (String, String);

/// A connection to xenstored.
pub struct Xenstore {
    conn: Conn,
    next_id: u32,
    events: VecDeque<WatchEvent>,
}

impl Xenstore {
    /// Connects through the socket if it exists, else the device.
    pub fn open() -> Result<Xenstore, String> {
        let conn = match UnixStream::connect(SOCKET) {
            Ok(s) => Conn::Socket(s),
            Err(_) => Conn::Device(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(DEVICE)
                    .map_err(|e| format!("cannot open {SOCKET} or {DEVICE}: {e}"))?,
            ),
        };
        Ok(Xenstore {
            conn,
            next_id: 1,
            events: VecDeque::new(),
        })
    }

    /// Sends a request and returns the reply payload; an `XS_ERROR` reply becomes its name.
    fn request(&mut self, ty: XsMsgType, strings: &[&str], tail: &[u8]) -> Result<Vec<u8>, String> {
        self.request_in(0, ty, strings, tail)
    }

    /// [`Xenstore::request`] inside transaction `tx` (0: none).
    fn request_in(
        &mut self,
        tx: u32,
        ty: XsMsgType,
        strings: &[&str],
        tail: &[u8],
    ) -> Result<Vec<u8>, String> {
        let req_id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut parts: Vec<Vec<u8>> = strings
            .iter()
            .map(|s| [s.as_bytes(), b"\0"].concat())
            .collect();
        parts.push(tail.to_vec());
        let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let mut buf = vec![0u8; XS_HEADER_LEN + xs_wire::XENSTORE_PAYLOAD_MAX];
        let n = xs_wire::encode(ty, req_id, tx, &slices, &mut buf).map_err(|e| format!("{e}"))?;
        self.conn
            .write_all(&buf[..n])
            .map_err(|e| format!("xenstore write: {e}"))?;
        loop {
            let (header, payload) = self.read_message()?;
            if header.msg_type == XsMsgType::WatchEvent {
                self.queue_event(&payload);
                continue;
            }
            if header.req_id != req_id {
                continue;
            }
            if header.msg_type == XsMsgType::Error {
                let name = xs_wire::parse_error(&payload)
                    .map(|e| e.to_string())
                    .unwrap_or_else(|_| String::from_utf8_lossy(&payload).into_owned());
                return Err(name);
            }
            return Ok(payload);
        }
    }

    fn read_message(&mut self) -> Result<(Header, Vec<u8>), String> {
        let mut h = [0u8; XS_HEADER_LEN];
        self.conn
            .read_exact(&mut h)
            .map_err(|e| format!("xenstore read: {e}"))?;
        let header = Header::parse(&h).map_err(|e| format!("bad reply header: {e}"))?;
        let mut payload = vec![0u8; header.len as usize];
        self.conn
            .read_exact(&mut payload)
            .map_err(|e| format!("xenstore read: {e}"))?;
        Ok((header, payload))
    }

    fn queue_event(&mut self, payload: &[u8]) {
        if let Ok(ev) = xs_wire::parse_watch_event(payload) {
            self.events
                .push_back((ev.path.to_string(), ev.token.to_string()));
        }
    }

    /// Reads a node's value.
    pub fn read(&mut self, path: &str) -> Result<String, String> {
        let v = self.request(XsMsgType::Read, &[path], &[])?;
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    /// Writes a node (parents are created by xenstored).
    pub fn write(&mut self, path: &str, value: &str) -> Result<(), String> {
        self.request(XsMsgType::Write, &[path], value.as_bytes())
            .map(|_| ())
    }

    /// Removes a node and its children.
    pub fn rm(&mut self, path: &str) -> Result<(), String> {
        self.request(XsMsgType::Rm, &[path], &[]).map(|_| ())
    }

    /// Lists a node's children.
    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, String> {
        let v = self.request(XsMsgType::Directory, &[path], &[])?;
        Ok(v.split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect())
    }

    /// Writes `nodes` (and their permissions) in one transaction, started again while
    /// xenstored answers EAGAIN (another writer committed first).
    pub fn write_nodes(&mut self, nodes: &[Node]) -> Result<(), String> {
        const ATTEMPTS: usize = 20;
        for _ in 0..ATTEMPTS {
            let reply = self.request(XsMsgType::TransactionStart, &[""], &[])?;
            let tx: u32 = String::from_utf8_lossy(&reply)
                .trim_end_matches('\0')
                .parse()
                .map_err(|_| "xenstore: bad transaction id".to_string())?;
            let written = nodes.iter().try_for_each(|n| self.write_node(tx, n));
            if let Err(e) = written {
                let _ = self.request_in(tx, XsMsgType::TransactionEnd, &["F"], &[]);
                return Err(e);
            }
            match self.request_in(tx, XsMsgType::TransactionEnd, &["T"], &[]) {
                Ok(_) => return Ok(()),
                Err(e) if e.contains("EAGAIN") => continue,
                Err(e) => return Err(format!("xenstore: committing the transaction: {e}")),
            }
        }
        Err(format!(
            "xenstore: the transaction met a concurrent writer {ATTEMPTS} times (EAGAIN)"
        ))
    }

    fn write_node(&mut self, tx: u32, n: &Node) -> Result<(), String> {
        self.request_in(tx, XsMsgType::Write, &[&n.path], n.value.as_bytes())
            .map_err(|e| format!("xenstore: writing {}: {e}", n.path))?;
        if let Some(perms) = &n.perms {
            let list: Vec<String> = perms
                .iter()
                .map(|p| format!("{}{}", p.access.letter() as char, p.domid))
                .collect();
            let mut args: Vec<&str> = vec![&n.path];
            args.extend(list.iter().map(String::as_str));
            self.request_in(tx, XsMsgType::SetPerms, &args, &[])
                .map_err(|e| format!("xenstore: permissions of {}: {e}", n.path))?;
        }
        Ok(())
    }

    /// Registers a watch; events arrive through [`Xenstore::next_event`].
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), String> {
        self.request(XsMsgType::Watch, &[path, token], &[])
            .map(|_| ())
    }

    /// Blocks until the next watch event.
    pub fn next_event(&mut self) -> Result<WatchEvent, String> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(e);
            }
            let (header, payload) = self.read_message()?;
            if header.msg_type == XsMsgType::WatchEvent {
                self.queue_event(&payload);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_abi::xs_wire::{encode_error, encode_strings, Perm, PermAccess};
    use xen_abi::XenErrno;

    /// A xenstored on the other end of a socket pair that answers a transaction's first
    /// commit with EAGAIN and records every request as (type, tx id, payload).
    fn xenstored(mut s: UnixStream) -> std::thread::JoinHandle<Vec<(XsMsgType, u32, String)>> {
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut next_tx = 9;
            let mut commits = 0;
            loop {
                let mut h = [0u8; XS_HEADER_LEN];
                if s.read_exact(&mut h).is_err() {
                    return seen;
                }
                let h = Header::parse(&h).unwrap();
                let mut p = vec![0u8; h.len as usize];
                s.read_exact(&mut p).unwrap();
                seen.push((
                    h.msg_type,
                    h.tx_id,
                    String::from_utf8_lossy(&p).into_owned(),
                ));
                let mut out = [0u8; 64];
                let n = match h.msg_type {
                    XsMsgType::TransactionStart => {
                        next_tx += 1;
                        let id = (next_tx - 1).to_string();
                        encode_strings(h.msg_type, h.req_id, 0, &[&id], &mut out).unwrap()
                    }
                    XsMsgType::TransactionEnd if commits == 0 => {
                        commits += 1;
                        encode_error(h.req_id, h.tx_id, XenErrno::EAGAIN, &mut out).unwrap()
                    }
                    _ => encode_strings(h.msg_type, h.req_id, h.tx_id, &["OK"], &mut out).unwrap(),
                };
                s.write_all(&out[..n]).unwrap();
            }
        })
    }

    #[test]
    fn nodes_are_written_with_permissions_in_a_transaction_retried_on_eagain() {
        let (a, b) = UnixStream::pair().unwrap();
        let server = xenstored(b);
        let mut xs = Xenstore {
            conn: Conn::Socket(a),
            next_id: 1,
            events: VecDeque::new(),
        };
        let perms = vec![
            Perm {
                access: PermAccess::NoAccess,
                domid: 3,
            },
            Perm {
                access: PermAccess::Read,
                domid: 7,
            },
        ];
        xs.write_nodes(&[
            Node {
                path: "/a".into(),
                value: String::new(),
                perms: Some(perms),
            },
            Node {
                path: "/a/state".into(),
                value: "1".into(),
                perms: None,
            },
        ])
        .unwrap();
        drop(xs);
        let seen: Vec<String> = server
            .join()
            .unwrap()
            .into_iter()
            .map(|(t, tx, p)| format!("{t:?} tx={tx} {:?}", p))
            .collect();
        assert_eq!(
            seen,
            [
                "TransactionStart tx=0 \"\\0\"",
                "Write tx=9 \"/a\\0\"",
                "SetPerms tx=9 \"/a\\0n3\\0r7\\0\"",
                "Write tx=9 \"/a/state\\01\"",
                "TransactionEnd tx=9 \"T\\0\"",
                "TransactionStart tx=0 \"\\0\"",
                "Write tx=10 \"/a\\0\"",
                "SetPerms tx=10 \"/a\\0n3\\0r7\\0\"",
                "Write tx=10 \"/a/state\\01\"",
                "TransactionEnd tx=10 \"T\\0\"",
            ]
        );
    }
}
