//! A blocking xenstore client over xenstored's unix socket (dom0) or /dev/xen/xenbus (guests
//! and driver domains), using xen-abi's wire format.

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
        let req_id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut parts: Vec<Vec<u8>> = strings
            .iter()
            .map(|s| [s.as_bytes(), b"\0"].concat())
            .collect();
        parts.push(tail.to_vec());
        let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let mut buf = vec![0u8; XS_HEADER_LEN + xs_wire::XENSTORE_PAYLOAD_MAX];
        let n = xs_wire::encode(ty, req_id, 0, &slices, &mut buf).map_err(|e| format!("{e}"))?;
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
