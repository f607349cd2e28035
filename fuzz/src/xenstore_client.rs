//! minios' xenstore client reading the input as the server's messages.
//!
//! minios' xenstore client ([`minios::xenstore::Xenstore`]) reading what the xenstore server
//! sends: the input's first byte sets how many bytes the transport hands over at a time, the
//! rest is the byte stream from the server (replies, errors, watch events, garbage) while the
//! client runs a fixed script (watch, read, directory, permissions, domain path, a
//! transaction, write, polling events, unwatch). The stream also goes through `xs_wire`'s
//! decoders directly.
//!
//! Asserts: the client never panics or loops; every request it sends is one well-formed
//! message; the event queue stays within its limits and hands out only events for the
//! token being watched; the incremental `MessageReader` agrees with `Message::parse`;
//! headers, permissions and strings round-trip through their encoders.

use crate::input::Input;
use minios::platform::{TransportError, XsTransport};
use minios::xenstore::{Event, Store, Xenstore, XsConfig};
use xen_abi::xs_wire::{
    parse_perms, parse_strings, parse_watch_event, Header, Message, MessageReader, Perm,
    XS_HEADER_LEN,
};

/// The server side: hands the input over in chunks, records what the client sends.
struct Server<'a> {
    stream: &'a [u8],
    chunk: usize,
    sent: Vec<Vec<u8>>,
}

impl XsTransport for Server<'_> {
    fn send(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        self.sent.push(bytes.to_vec());
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let n = self.chunk.min(buf.len()).min(self.stream.len());
        buf[..n].copy_from_slice(&self.stream[..n]);
        self.stream = &self.stream[n..];
        Ok(n)
    }
    fn wait_readable(&mut self) -> Result<(), TransportError> {
        if self.stream.is_empty() {
            Err(TransportError::Stalled)
        } else {
            Ok(())
        }
    }
}

const TOKEN: &str = "be";

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let chunk = 1 + usize::from(input.u8());
    let stream = input.rest();
    decoders(stream, chunk);

    let config = XsConfig {
        max_events: 4,
        max_event_bytes: 256,
        max_tx_attempts: 3,
    };
    let server = Server {
        stream,
        chunk,
        sent: Vec::new(),
    };
    let mut xs = Xenstore::with_config(server, config);
    let dir = "/local/domain/1/backend/vif";
    let _ = xs.watch("/local/domain/1/backend", TOKEN);
    let _ = xs.read("/local/domain/5/device/vif/0/state");
    let _ = xs.directory(dir);
    let _ = xs.get_perms(dir);
    let _ = xs.get_domain_path(5);
    let _ = xs.transaction(|tx| {
        let v = tx.read("/local/domain/5/device/vif/0/tx-ring-ref")?;
        tx.write("/local/domain/1/backend/vif/5/0/state", &v)
    });
    let _ = xs.write("/local/domain/1/backend/vif/5/0/state", b"4");
    let _ = xs.poll();
    drain(&mut xs, config);
    // Unwatching forgets the watch whatever the server answers: no event after it.
    let _ = xs.unwatch(TOKEN);
    let _ = xs.poll();
    assert!(!xs.has_events(), "no events after unwatch");

    for msg in &xs.transport_mut().sent {
        let (m, used) = Message::parse(msg).expect("the client sends well-formed messages");
        assert_eq!(used, msg.len(), "one message per send");
        assert!(m.header.req_id != 0);
    }
}

/// Takes every queued event: only the watched token, within the limits.
fn drain(xs: &mut Xenstore<Server<'_>>, config: XsConfig) {
    assert!(xs.queued_events() <= config.max_events);
    let mut bytes = 0;
    while let Some(ev) = xs.next_event() {
        assert_eq!(ev.token(), TOKEN, "events only for the watch we hold");
        if let Event::Fired(w) = &ev {
            bytes += w.path.len() + w.token.len();
        }
    }
    assert!(bytes <= config.max_event_bytes);
}

/// The stream through the wire decoders: the incremental reader against whole parses, and
/// the round trips of what parses.
fn decoders(stream: &[u8], chunk: usize) {
    let mut reader = MessageReader::new();
    let mut at = 0;
    let mut start = 0;
    while at < stream.len() {
        let end = (at + chunk).min(stream.len());
        match reader.feed(&stream[at..end]) {
            Ok(used) => at += used,
            Err(_) => {
                assert!(Header::parse(&stream[start..]).is_err());
                return;
            }
        }
        if let Some(m) = reader.message() {
            let (whole, used) = Message::parse(&stream[start..]).expect("reader agrees");
            assert_eq!(whole, m);
            assert_eq!(start + used, at);
            check_message(&m);
            reader.reset();
            start = at;
        }
    }
}

fn check_message(m: &Message<'_>) {
    let bytes = m.header.to_bytes();
    assert_eq!(Header::parse(&bytes), Ok(m.header));
    assert_eq!(bytes.len(), XS_HEADER_LEN);
    if let Ok(strings) = parse_strings(m.payload) {
        let joined: Vec<u8> = strings.flat_map(|s| s.bytes().chain([0])).collect();
        assert!(m.payload.starts_with(&joined));
    }
    if let Ok(ev) = parse_watch_event(m.payload) {
        assert!(!ev.path.contains('\0') && !ev.token.contains('\0'));
    }
    if let Ok(perms) = parse_perms(m.payload) {
        for p in perms.flatten() {
            let mut out = [0u8; 8];
            let n = p.encode(&mut out).expect("room");
            assert_eq!(Perm::parse(&out[..n]), Ok(p));
        }
    }
}
