//! The testbed's file server: a tiny HTTP/1.0 responder serving deterministic files to every
//! domain on QEMU's user networks, and the hashes the scenarios check them against.
//!
//! QEMU's slirp runs `xtask serve-file` once per connection to 10.0.2.100:80 (`guestfwd=…-cmd:`)
//! with the connection as its stdin and stdout (and stderr), so no host port is used and
//! parallel runs cannot collide. A file's bytes are the first N bytes of a SplitMix64 stream.
//! `POST` or `PUT` to [`SINK`] is the upload direction: the body is read and discarded and the
//! answer is its byte count, so a guest can time guest → host transfers.

use crate::util::Result;
use std::io::{Read, Write};
use std::process::{Command, Stdio};

/// The address guests connect to (on each user network).
pub const GUEST_ADDR: &str = "10.0.2.100";
/// The TCP port guests connect to.
pub const GUEST_PORT: u16 = 80;

/// The files served: URL path (without `/`) and length in bytes.
pub const FILES: [(&str, u64); 2] = [("1M", 1 << 20), ("64M", 64 << 20)];

/// The upload sink's URL path: `POST`/`PUT` a body with `Content-Length`, get its byte count.
pub const SINK: &str = "/sink";

/// Seed of the content stream ("xdd-file").
const SEED: u64 = 0x7864_642d_6669_6c65;
/// Largest request head read before answering 400.
const MAX_HEAD: usize = 8192;

/// Increment of SplitMix64's state per output word.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Word `k` of the SplitMix64 stream started at `seed` (the generator is counter-based, so any
/// word is computed directly).
fn word(seed: u64, k: u64) -> u64 {
    let mut z = seed.wrapping_add(k.wrapping_add(1).wrapping_mul(GAMMA));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A served file's content: the first `len` bytes of the stream (words as little-endian).
pub struct Content {
    pos: u64,
    len: u64,
}

impl Content {
    /// The first `len` bytes of the stream.
    pub fn new(len: u64) -> Content {
        Content { pos: 0, len }
    }
}

impl Read for Content {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.len - self.pos) as usize;
        let mut i = 0;
        while i < n {
            let at = self.pos + i as u64;
            let off = (at % 8) as usize;
            let take = (8 - off).min(n - i);
            let w = word(SEED, at / 8).to_le_bytes();
            buf[i..i + take].copy_from_slice(&w[off..off + take]);
            i += take;
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// 200 with the file's length; the body unless `head_only`.
    File { len: u64, head_only: bool },
    /// An upload to the sink: read and discard `len` bytes of body, answer the count.
    Sink { len: u64 },
    /// An error status line (e.g. `404 Not Found`).
    Error(&'static str),
}

/// Decides the answer from the request head (request line and headers).
fn answer(head: &[u8]) -> Answer {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let words: Vec<&str> = line.split_whitespace().collect();
    let (method, path) = match words.as_slice() {
        [m, p, v] if v.starts_with("HTTP/") => (*m, *p),
        _ => return Answer::Error("400 Bad Request"),
    };
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        "POST" | "PUT" if path == SINK => {
            return match content_length(head) {
                Some(Ok(len)) => Answer::Sink { len },
                Some(Err(())) => Answer::Error("400 Bad Request"),
                None => Answer::Error("411 Length Required"),
            };
        }
        _ => return Answer::Error("405 Method Not Allowed"),
    };
    match FILES
        .iter()
        .find(|(name, _)| path.strip_prefix('/') == Some(name))
    {
        Some(&(_, len)) => Answer::File { len, head_only },
        None => Answer::Error("404 Not Found"),
    }
}

/// The `Content-Length` header's value: None when absent, Err when not a number.
fn content_length(head: &[u8]) -> Option<std::result::Result<u64, ()>> {
    String::from_utf8_lossy(head).lines().skip(1).find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().map_err(|_| ()))
    })
}

/// Reads the request head: up to the blank line, EOF or [`MAX_HEAD`] bytes. Returns the head
/// (through its blank line) and the bytes read after it (the start of a body).
fn read_head(input: &mut impl Read) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while head_end(&head).is_none() && head.len() < MAX_HEAD {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let rest = match head_end(&head) {
        Some(end) => head.split_off(end),
        None => Vec::new(),
    };
    Ok((head, rest))
}

/// The offset just past the head's blank line, if there is one.
fn head_end(head: &[u8]) -> Option<usize> {
    let crlf = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = head.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    crlf.into_iter().chain(lf).min()
}

/// Reads and discards up to `len` body bytes (`already` of them came with the head); returns
/// how many there were (fewer when the client closed early).
fn discard(input: &mut impl Read, already: u64, len: u64) -> std::io::Result<u64> {
    let mut got = already.min(len);
    let mut buf = vec![0u8; 64 << 10];
    while got < len {
        let want = (len - got).min(buf.len() as u64) as usize;
        let n = input.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    Ok(got)
}

/// Writes a small text answer.
fn text_answer(output: &mut impl Write, status: &str, body: &str) -> std::io::Result<()> {
    write!(
        output,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Answers one HTTP request read from `input` on `output`, then returns (the caller exits,
/// which closes the connection: HTTP/1.0 without keep-alive).
pub fn serve(mut input: impl Read, mut output: impl Write) -> std::io::Result<()> {
    let (head, rest) = read_head(&mut input)?;
    match answer(&head) {
        Answer::File { len, head_only } => {
            write!(
                output,
                "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {len}\r\nConnection: close\r\n\r\n"
            )?;
            if !head_only {
                let mut body = Content::new(len);
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = body.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    output.write_all(&buf[..n])?;
                }
            }
        }
        Answer::Sink { len } => {
            let got = discard(&mut input, rest.len() as u64, len)?;
            let status = if got == len {
                "200 OK"
            } else {
                "400 Bad Request"
            };
            text_answer(&mut output, status, &format!("{got}\n"))?;
        }
        Answer::Error(status) => text_answer(&mut output, status, &format!("{status}\n"))?,
    }
    output.flush()
}

/// `xtask serve-file`: serves one connection on stdin/stdout. Writes nothing to stderr (slirp
/// connects stderr to the socket too); the exit status tells failure.
pub fn serve_stdio() -> std::io::Result<()> {
    use std::os::fd::AsFd;
    // The raw descriptor, not the line-buffered Stdout: the body is binary.
    let out = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    serve(
        std::io::stdin().lock(),
        std::io::BufWriter::with_capacity(64 << 10, out),
    )
}

/// The hex SHA-256 of a served file, computed by the host's `sha256sum` (an implementation
/// independent of ours).
pub fn sha256(len: u64) -> Result<String> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run sha256sum: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || std::io::copy(&mut Content::new(len), &mut stdin));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("sha256sum: {e}"))?;
    writer
        .join()
        .map_err(|_| "sha256sum writer panicked".to_string())?
        .map_err(|e| format!("sha256sum: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let hash = text.split_whitespace().next().unwrap_or_default();
    if !out.status.success() || hash.len() != 64 {
        return Err(format!("sha256sum failed ({}): {text}", out.status));
    }
    Ok(hash.to_string())
}

/// The settings scenarios see (dom0 file /testbed/env, exported to dom0 steps and guest
/// scripts): `XDD_FILESERVER=http://10.0.2.100` and `XDD_FILE_<NAME>_SHA256=<hex>` per file.
pub fn scenario_env() -> Result<String> {
    let mut env = format!("XDD_FILESERVER=http://{GUEST_ADDR}\n");
    for (name, len) in FILES {
        env.push_str(&format!("XDD_FILE_{name}_SHA256={}\n", sha256(len)?));
    }
    Ok(env)
}

/// The `guestfwd=` value of a `-netdev user` option running `exe serve-file` per connection
/// (commas doubled for QEMU's option parser, the path quoted for slirp's argv parsing).
pub fn guestfwd(exe: &std::path::Path) -> String {
    let quoted = format!("'{}'", exe.display().to_string().replace('\'', r"'\''"));
    format!("guestfwd=tcp:{GUEST_ADDR}:{GUEST_PORT}-cmd:{quoted} serve-file").replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(request: &str) -> Vec<u8> {
        let mut out = Vec::new();
        serve(request.as_bytes(), &mut out).unwrap();
        out
    }

    fn split(response: &[u8]) -> (String, &[u8]) {
        let at = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a header end");
        (
            String::from_utf8_lossy(&response[..at]).into_owned(),
            &response[at + 4..],
        )
    }

    #[test]
    fn content_is_splitmix64_and_independent_of_read_sizes() {
        // SplitMix64 from seed 0 yields 0xe220a8397b1dcdaf first (the reference sequence).
        assert_eq!(word(0, 0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(word(0, 1), 0x6e78_9e6a_a1b9_65f4);
        let mut whole = Vec::new();
        Content::new(1000).read_to_end(&mut whole).unwrap();
        assert_eq!(whole.len(), 1000);
        let mut pieces = Vec::new();
        let mut c = Content::new(1000);
        for size in [3usize, 17, 64, 5].iter().cycle() {
            let mut buf = vec![0u8; *size];
            let n = c.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            pieces.extend_from_slice(&buf[..n]);
        }
        assert_eq!(whole, pieces);
        assert_ne!(whole[..8], whole[8..16]);
    }

    #[test]
    fn serves_files_by_path() {
        let response = get("GET /1M HTTP/1.1\r\nHost: 10.0.2.100\r\n\r\n");
        let (head, body) = split(&response);
        assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
        assert!(head.contains("Content-Length: 1048576"), "{head}");
        let mut want = Vec::new();
        Content::new(1 << 20).read_to_end(&mut want).unwrap();
        assert_eq!(body, want);
        let response = get("HEAD /64M HTTP/1.0\n\n");
        let (head, body) = split(&response);
        assert!(head.contains("Content-Length: 67108864"), "{head}");
        assert!(body.is_empty());
    }

    #[test]
    fn answers_errors() {
        let status = |req: &str| split(&get(req)).0.lines().next().unwrap().to_string();
        assert_eq!(status("GET /2M HTTP/1.0\r\n\r\n"), "HTTP/1.0 404 Not Found");
        assert_eq!(
            status("GET /1M/x HTTP/1.0\r\n\r\n"),
            "HTTP/1.0 404 Not Found"
        );
        assert_eq!(
            status("PUT /1M HTTP/1.0\r\n\r\n"),
            "HTTP/1.0 405 Method Not Allowed"
        );
        assert_eq!(status("hello\r\n\r\n"), "HTTP/1.0 400 Bad Request");
        assert_eq!(status(""), "HTTP/1.0 400 Bad Request");
    }

    #[test]
    fn sink_counts_and_discards_uploads() {
        // The body may arrive with the head (one read) or after it; either way all is counted.
        let body = vec![7u8; 200_000];
        for method in ["POST", "PUT"] {
            let mut req = format!(
                "{method} /sink HTTP/1.0\r\nHost: x\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            req.extend_from_slice(&body);
            let mut out = Vec::new();
            serve(req.as_slice(), &mut out).unwrap();
            let (head, answer) = split(&out);
            assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
            assert_eq!(answer, b"200000\n");
        }
        // A body shorter than announced: the count says how much came.
        let mut out = Vec::new();
        serve(
            &b"POST /sink HTTP/1.0\nContent-Length: 10\n\nabc"[..],
            &mut out,
        )
        .unwrap();
        let (head, answer) = split(&out);
        assert!(head.starts_with("HTTP/1.0 400 Bad Request"), "{head}");
        assert_eq!(answer, b"3\n");
        // Bytes after the announced length are not read as part of it.
        let mut out = Vec::new();
        serve(
            &b"PUT /sink HTTP/1.0\r\nContent-Length: 2\r\n\r\nabcdef"[..],
            &mut out,
        )
        .unwrap();
        assert_eq!(split(&out).1, b"2\n");
    }

    #[test]
    fn sink_needs_a_length() {
        let status = |req: &str| split(&get(req)).0.lines().next().unwrap().to_string();
        assert_eq!(
            status("POST /sink HTTP/1.0\r\n\r\n"),
            "HTTP/1.0 411 Length Required"
        );
        assert_eq!(
            status("POST /sink HTTP/1.0\r\nContent-Length: lots\r\n\r\n"),
            "HTTP/1.0 400 Bad Request"
        );
        assert_eq!(
            status("GET /sink HTTP/1.0\r\n\r\n"),
            "HTTP/1.0 404 Not Found"
        );
        assert_eq!(
            status("POST /1M HTTP/1.0\r\nContent-Length: 1\r\n\r\nx"),
            "HTTP/1.0 405 Method Not Allowed"
        );
        assert_eq!(content_length(b"POST /sink HTTP/1.0\r\nX: 1\r\n"), None);
        assert_eq!(
            head_end(b"POST / HTTP/1.0\r\nA: b\r\n\r\nbody\n\n"),
            Some(25)
        );
    }

    #[test]
    fn hashes_with_the_host_tool() {
        // The empty file's SHA-256 is well known; a 1 MiB one must differ from a 64 MiB one.
        assert_eq!(
            sha256(0).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let env = scenario_env().unwrap();
        let hashes: Vec<&str> = env
            .lines()
            .filter_map(|l| l.split_once("_SHA256=").map(|(_, h)| h))
            .collect();
        assert_eq!(hashes.len(), 2);
        assert_ne!(hashes[0], hashes[1]);
        assert!(env.starts_with("XDD_FILESERVER=http://10.0.2.100\n"));
    }

    #[test]
    fn guestfwd_escapes_for_qemu() {
        assert_eq!(
            guestfwd(std::path::Path::new("/a,b/it's/xtask")),
            r"guestfwd=tcp:10.0.2.100:80-cmd:'/a,,b/it'\''s/xtask' serve-file"
        );
    }
}
