//! `testbed-agent xs batch`: writes xenstore nodes and sets their permissions in one
//! transaction (what libxl does when it adds a device), for device nodes the toolstack
//! cannot write yet (e.g. a `vusb` controller served by a driver domain). Reads lines from
//! stdin: `write PATH [VALUE]` and `chmod PATH PERM...` (perms as xenstore spells them:
//! `n5`: owner 5, others none; `r3`: domain 3 may read). Talks to xenstored's socket (dom0).

use std::io::{BufRead, Read, Write};
use std::os::unix::net::UnixStream;

use xen_abi::xs_wire::{self, Header, XsMsgType, XS_HEADER_LEN};

/// xenstored's socket in dom0.
const SOCKET: &str = "/run/xenstored/socket";

struct Conn {
    s: UnixStream,
    next: u32,
}

impl Conn {
    fn request(&mut self, ty: XsMsgType, tx: u32, parts: &[&[u8]]) -> Result<Vec<u8>, String> {
        let id = self.next;
        self.next += 1;
        let mut buf = vec![0u8; XS_HEADER_LEN + xs_wire::XENSTORE_PAYLOAD_MAX];
        let n = xs_wire::encode(ty, id, tx, parts, &mut buf).map_err(|e| format!("{e}"))?;
        self.s
            .write_all(&buf[..n])
            .map_err(|e| format!("xenstore write: {e}"))?;
        loop {
            let mut h = [0u8; XS_HEADER_LEN];
            self.s
                .read_exact(&mut h)
                .map_err(|e| format!("xenstore read: {e}"))?;
            let header = Header::parse(&h).map_err(|e| format!("bad reply header: {e}"))?;
            let mut payload = vec![0u8; header.len as usize];
            self.s
                .read_exact(&mut payload)
                .map_err(|e| format!("xenstore read: {e}"))?;
            if header.req_id != id {
                continue;
            }
            if header.msg_type == XsMsgType::Error {
                return Err(String::from_utf8_lossy(&payload)
                    .trim_end_matches('\0')
                    .to_string());
            }
            return Ok(payload);
        }
    }
}

fn z(s: &str) -> Vec<u8> {
    [s.as_bytes(), b"\0"].concat()
}

/// Runs the batch read from stdin in one transaction (retried while xenstored says EAGAIN).
pub fn batch() -> Result<(), String> {
    let mut lines = Vec::new();
    for l in std::io::stdin().lock().lines() {
        let l = l.map_err(|e| format!("stdin: {e}"))?;
        if !l.trim().is_empty() {
            lines.push(l);
        }
    }
    let s = UnixStream::connect(SOCKET).map_err(|e| format!("{SOCKET}: {e}"))?;
    let mut c = Conn { s, next: 1 };
    for _ in 0..10 {
        let tx = c.request(XsMsgType::TransactionStart, 0, &[b"\0"])?;
        let tx: u32 = String::from_utf8_lossy(&tx)
            .trim_end_matches('\0')
            .parse()
            .map_err(|_| String::from("bad transaction id"))?;
        for l in &lines {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words.as_slice() {
                ["write", path, value @ ..] => {
                    let v = value.join(" ");
                    c.request(XsMsgType::Write, tx, &[&z(path), v.as_bytes()])
                        .map_err(|e| format!("write {path}: {e}"))?;
                }
                ["chmod", path, perms @ ..] if !perms.is_empty() => {
                    let mut parts = vec![z(path)];
                    parts.extend(perms.iter().map(|p| z(p)));
                    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                    c.request(XsMsgType::SetPerms, tx, &parts)
                        .map_err(|e| format!("chmod {path}: {e}"))?;
                }
                _ => return Err(format!("xs batch: cannot parse {l:?}")),
            }
        }
        match c.request(XsMsgType::TransactionEnd, tx, &[b"T\0"]) {
            Ok(_) => return Ok(()),
            Err(e) if e == "EAGAIN" => continue,
            Err(e) => return Err(format!("transaction end: {e}")),
        }
    }
    Err(String::from("xs batch: transaction kept conflicting"))
}
