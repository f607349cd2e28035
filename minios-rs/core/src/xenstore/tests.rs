//! Client tests: against the in-memory store (real semantics) and against a scripted server
//! that sends malformed replies.

extern crate std;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use xen_abi::xs_wire::{encode, Header, XsMsgType};

use super::*;
use crate::host::World;

fn perm(access: PermAccess, domid: DomId) -> Perm {
    Perm { access, domid }
}

#[test]
fn basic_operations() {
    let world = World::new();
    let d = world.create_domain(3, "d");
    let mut xs = d.xenstore();
    let home = "/local/domain/3/data";
    xs.write(&format!("{home}/a/b"), b"hello").unwrap();
    assert_eq!(xs.read(&format!("{home}/a/b")).unwrap(), b"hello");
    assert_eq!(xs.read_string(&format!("{home}/a/b")).unwrap(), "hello");
    assert_eq!(
        xs.read(&format!("{home}/a")).unwrap(),
        b"",
        "implicit parent"
    );
    xs.mkdir(&format!("{home}/c")).unwrap();
    let mut dir = xs.directory(home).unwrap();
    dir.sort();
    assert_eq!(dir, ["a", "c"]);
    assert_eq!(xs.read_opt(&format!("{home}/nope")).unwrap(), None);
    assert!(xs.read(&format!("{home}/nope")).unwrap_err().is_enoent());
    assert_eq!(
        xs.directory_opt(&format!("{home}/nope")).unwrap(),
        Vec::<String>::new()
    );
    // Relative paths resolve against the domain's home.
    assert_eq!(xs.read("data/a/b").unwrap(), b"hello");
    // Permissions.
    let perms = xs.get_perms(&format!("{home}/a")).unwrap();
    assert_eq!(perms[0], perm(PermAccess::NoAccess, 3));
    let shared = [perm(PermAccess::NoAccess, 3), perm(PermAccess::Read, 4)];
    xs.set_perms(&format!("{home}/a/b"), &shared).unwrap();
    assert_eq!(xs.get_perms(&format!("{home}/a/b")).unwrap(), shared);
    let other = world.create_domain(4, "other");
    let mut xs4 = other.xenstore();
    assert_eq!(xs4.read(&format!("{home}/a/b")).unwrap(), b"hello");
    assert_eq!(
        xs4.read(&format!("{home}/a")),
        Err(XsError::Errno(XenErrno::EACCES))
    );
    assert_eq!(
        xs4.write(&format!("{home}/a/b"), b"x"),
        Err(XsError::Errno(XenErrno::EACCES))
    );
    // Domains cannot write outside what they were given.
    assert_eq!(
        xs.write("/local/domain/3/name", b"evil"),
        Err(XsError::Errno(XenErrno::EACCES))
    );
    assert_eq!(
        xs.write("/tool", b"x"),
        Err(XsError::Errno(XenErrno::EACCES))
    );
    xs.rm(&format!("{home}/a")).unwrap();
    assert!(xs.read(&format!("{home}/a/b")).unwrap_err().is_enoent());
    assert_eq!(xs.get_domain_path(7).unwrap(), "/local/domain/7");
}

#[test]
fn invalid_requests_are_refused_before_sending() {
    let world = World::new();
    let mut xs = world.domain(0).xenstore();
    assert!(matches!(xs.read("/a//b"), Err(XsError::Invalid(_))));
    assert!(matches!(xs.read("/a/b/"), Err(XsError::Invalid(_))));
    assert!(matches!(
        xs.write("/a", &[0u8; 5000]),
        Err(XsError::Invalid(_))
    ));
    assert!(matches!(xs.watch("/a", "to\0k"), Err(XsError::Invalid(_))));
    assert!(matches!(xs.set_perms("/a", &[]), Err(XsError::Invalid(_))));
    assert_eq!(xs.stats().requests, 0);
}

#[test]
fn transactions_commit_and_isolate() {
    let world = World::new();
    let mut xs = world.domain(0).xenstore();
    let mut other = world.domain(0).xenstore();
    let mut tx = xs.begin().unwrap();
    tx.write("/t/a", b"1").unwrap();
    tx.write("/t/b", b"2").unwrap();
    assert!(
        other.read("/t/a").unwrap_err().is_enoent(),
        "not visible before commit"
    );
    tx.commit().unwrap();
    assert_eq!(other.read("/t/b").unwrap(), b"2");

    let mut tx = xs.begin().unwrap();
    tx.write("/t/a", b"changed").unwrap();
    tx.abort();
    assert_eq!(other.read("/t/a").unwrap(), b"1");

    // Dropping an unfinished transaction aborts it.
    {
        let mut tx = xs.begin().unwrap();
        tx.write("/t/a", b"dropped").unwrap();
    }
    assert_eq!(other.read("/t/a").unwrap(), b"1");
}

#[test]
fn transaction_helper_retries_on_eagain() {
    let world = World::new();
    let mut xs = world.domain(0).xenstore();
    xs.write("/counter", b"0").unwrap();
    let mut attempts = 0;
    let value = xs
        .transaction(|tx| {
            attempts += 1;
            let v = tx.read("/counter")?;
            if attempts == 1 {
                // Another writer changes what we read: our commit must fail and be retried.
                world.write_as(0, "/counter", b"41").unwrap();
            }
            let n = parse_uint(&v).unwrap() + 1;
            tx.write("/counter", format!("{n}").as_bytes())?;
            Ok(n)
        })
        .unwrap();
    assert_eq!((attempts, value), (2, 42));
    assert_eq!(xs.read("/counter").unwrap(), b"42");
    assert_eq!(xs.stats().tx_retries, 1);
}

#[test]
fn transaction_helper_gives_up() {
    let world = World::new();
    let config = XsConfig {
        max_tx_attempts: 3,
        ..XsConfig::default()
    };
    let mut xs = Xenstore::with_config(world.domain(0).xs_transport(), config);
    xs.write("/hot", b"0").unwrap();
    let mut attempts = 0;
    let r = xs.transaction(|tx| {
        attempts += 1;
        tx.read("/hot")?;
        world
            .write_as(0, "/hot", format!("{attempts}").as_bytes())
            .unwrap();
        tx.write("/hot", b"mine")
    });
    assert_eq!(r, Err(XsError::TooManyRetries));
    assert_eq!(attempts, 3);
    // Errors from the closure abort and are returned without retry.
    let mut calls = 0;
    let r: Result<(), _> = xs.transaction(|tx| {
        calls += 1;
        tx.read("/missing").map(|_| ())
    });
    assert!(r.unwrap_err().is_enoent());
    assert_eq!(calls, 1);
}

#[test]
fn watches_fire_initially_and_on_change() {
    let world = World::new();
    let mut xs = world.domain(0).xenstore();
    xs.watch("/w", "tok").unwrap();
    xs.poll().unwrap();
    assert_eq!(
        xs.next_event(),
        Some(Event::Fired(WatchEvent {
            path: "/w".into(),
            token: "tok".into()
        })),
        "initial fire"
    );
    assert_eq!(xs.next_event(), None);
    world.write_as(0, "/w/x/y", b"1").unwrap();
    world.write_as(0, "/wx", b"1").unwrap(); // not below /w
    xs.poll().unwrap();
    assert_eq!(xs.next_event().unwrap().token(), "tok");
    assert_eq!(xs.next_event(), None);
    assert_eq!(
        xs.watch("/other", "tok"),
        Err(XsError::Errno(XenErrno::EEXIST))
    );
    // Events that arrive while a request is in flight are queued, not lost.
    world.write_as(0, "/w/z", b"1").unwrap();
    xs.read("/wx").unwrap();
    assert_eq!(
        xs.next_event(),
        Some(Event::Fired(WatchEvent {
            path: "/w/z".into(),
            token: "tok".into()
        }))
    );
    // Unwatch drops queued events and stops delivery.
    world.write_as(0, "/w/z", b"2").unwrap();
    xs.poll().unwrap();
    assert!(xs.has_events());
    xs.unwatch("tok").unwrap();
    assert!(!xs.has_events());
    world.write_as(0, "/w/z", b"3").unwrap();
    xs.poll().unwrap();
    assert_eq!(xs.next_event(), None);
    assert_eq!(xs.unwatch("tok"), Err(XsError::Errno(XenErrno::ENOENT)));
}

#[test]
fn watch_queue_coalesces_and_stays_bounded() {
    let world = World::new();
    let config = XsConfig {
        max_events: 8,
        max_event_bytes: 1 << 20,
        ..XsConfig::default()
    };
    let mut xs = Xenstore::with_config(world.domain(0).xs_transport(), config);
    xs.watch("/fe", "fe").unwrap();
    xs.watch("/quiet", "quiet").unwrap();
    xs.poll().unwrap();
    while xs.next_event().is_some() {}

    // A frontend rewriting one node in a loop: one queued event.
    for i in 0..1000 {
        world
            .write_as(0, "/fe/state", format!("{i}").as_bytes())
            .unwrap();
    }
    xs.poll().unwrap();
    assert_eq!(xs.queued_events(), 1);
    assert_eq!(xs.stats().events_coalesced, 999);
    assert!(xs.next_event().is_some());

    // Writing many distinct nodes: the queue fills, then the watch is marked overflowed.
    for i in 0..1000 {
        world.write_as(0, &format!("/fe/n{i}"), b"x").unwrap();
    }
    world.write_as(0, "/quiet/a", b"x").unwrap();
    xs.poll().unwrap();
    assert_eq!(xs.queued_events(), 8);
    assert!(xs.stats().events_dropped > 900);
    // Overflow notices come first, then what was kept.
    let mut overflow = Vec::new();
    let mut fired = 0;
    while let Some(ev) = xs.next_event() {
        match ev {
            Event::Overflow { token } => overflow.push(token),
            Event::Fired(_) => fired += 1,
        }
    }
    assert_eq!(
        overflow,
        ["fe", "quiet"],
        "the quiet watch lost its event too"
    );
    assert_eq!(fired, 8);
}

#[test]
fn watch_queue_bounds_bytes() {
    let world = World::new();
    let config = XsConfig {
        max_events: 1000,
        max_event_bytes: 4096,
        ..XsConfig::default()
    };
    let mut xs = Xenstore::with_config(world.domain(0).xs_transport(), config);
    xs.watch("/fe", "t").unwrap();
    xs.poll().unwrap();
    while xs.next_event().is_some() {}
    let long = "x".repeat(1000);
    for i in 0..20 {
        world.write_as(0, &format!("/fe/{long}{i}"), b"").unwrap();
    }
    xs.poll().unwrap();
    assert_eq!(xs.queued_events(), 4, "4 paths of ~1 KB fit in 4 KiB");
    assert_eq!(xs.next_event(), Some(Event::Overflow { token: "t".into() }));
}

// ---- a scripted server ----------------------------------------------------------------------

type Responder = Box<dyn FnMut(Header) -> Vec<u8>>;

/// Answers each request with the next scripted responder's bytes, delivered `chunk` bytes
/// per `recv`.
struct Scripted {
    responders: VecDeque<Responder>,
    out: VecDeque<u8>,
    chunk: usize,
}

impl Scripted {
    fn new(chunk: usize) -> Self {
        Self {
            responders: VecDeque::new(),
            out: VecDeque::new(),
            chunk,
        }
    }

    fn then(mut self, f: impl FnMut(Header) -> Vec<u8> + 'static) -> Self {
        self.responders.push_back(Box::new(f));
        self
    }
}

impl XsTransport for Scripted {
    fn send(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        let header = Header::parse(bytes).expect("client sent a valid header");
        if let Some(mut f) = self.responders.pop_front() {
            self.out.extend(f(header));
        }
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let n = buf.len().min(self.out.len()).min(self.chunk);
        for (d, s) in buf.iter_mut().zip(self.out.drain(..n)) {
            *d = s;
        }
        Ok(n)
    }
    fn wait_readable(&mut self) -> Result<(), TransportError> {
        if self.out.is_empty() {
            Err(TransportError::Stalled)
        } else {
            Ok(())
        }
    }
}

fn msg(ty: u32, req_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for word in [ty, req_id, 0, payload.len() as u32] {
        v.extend_from_slice(&word.to_le_bytes());
    }
    v.extend_from_slice(payload);
    v
}

fn reply(ty: XsMsgType, payload: &'static [u8]) -> impl FnMut(Header) -> Vec<u8> {
    move |h| msg(ty as u32, h.req_id, payload)
}

fn echo(payload: &'static [u8]) -> impl FnMut(Header) -> Vec<u8> {
    move |h| msg(h.msg_type as u32, h.req_id, payload)
}

#[test]
fn replies_arrive_in_pieces() {
    let t = Scripted::new(1).then(echo(b"value")).then(echo(b"a\0b\0"));
    let mut xs = Xenstore::new(t);
    assert_eq!(xs.read("/x").unwrap(), b"value");
    assert_eq!(xs.directory("/x").unwrap(), ["a", "b"]);
}

#[test]
fn error_replies_become_typed_errors() {
    let t = Scripted::new(64)
        .then(reply(XsMsgType::Error, b"ENOENT\0"))
        .then(reply(XsMsgType::Error, b"EWHAT\0"))
        .then(reply(XsMsgType::Error, b"EACCES"));
    let mut xs = Xenstore::new(t);
    assert_eq!(xs.read("/x"), Err(XsError::Errno(XenErrno::ENOENT)));
    assert!(matches!(
        xs.read("/x"),
        Err(XsError::Malformed {
            op: XsMsgType::Read,
            ..
        })
    ));
    assert!(matches!(xs.read("/x"), Err(XsError::Malformed { .. })));
}

#[test]
fn malformed_payloads_become_errors() {
    let t = Scripted::new(64)
        .then(echo(b"a\0b")) // directory without final NUL
        .then(echo(b"\xff\0")) // directory not UTF-8
        .then(echo(b"x5\0")) // bad permission letter
        .then(echo(b"")) // no permissions at all
        .then(echo(b"NOT OK\0")) // write reply
        .then(echo(b"OK")) // write reply without NUL
        .then(echo(b"abc\0")) // transaction id
        .then(echo(b"0\0")) // transaction id 0 is not a transaction
        .then(echo(b"/local/domain/1")); // domain path without NUL
    let mut xs = Xenstore::new(t);
    assert!(matches!(xs.directory("/x"), Err(XsError::Malformed { .. })));
    assert!(matches!(xs.directory("/x"), Err(XsError::Malformed { .. })));
    assert!(matches!(xs.get_perms("/x"), Err(XsError::Malformed { .. })));
    assert!(matches!(xs.get_perms("/x"), Err(XsError::Malformed { .. })));
    assert!(matches!(
        xs.write("/x", b"1"),
        Err(XsError::BadReply { expected: "OK", .. })
    ));
    assert!(matches!(
        xs.write("/x", b"1"),
        Err(XsError::Malformed { .. })
    ));
    assert!(matches!(xs.begin().err(), Some(XsError::BadReply { .. })));
    assert!(matches!(xs.begin().err(), Some(XsError::BadReply { .. })));
    assert!(matches!(
        xs.get_domain_path(1),
        Err(XsError::Malformed { .. })
    ));
}

#[test]
fn wrong_type_and_stale_ids() {
    let t = Scripted::new(64)
        .then(reply(XsMsgType::Write, b"OK\0"))
        .then(|h: Header| {
            let mut v = msg(XsMsgType::Read as u32, h.req_id.wrapping_add(100), b"stale");
            v.extend(msg(XsMsgType::Read as u32, h.req_id, b"fresh"));
            v
        });
    let mut xs = Xenstore::new(t);
    assert_eq!(
        xs.read("/x"),
        Err(XsError::UnexpectedReply {
            sent: XsMsgType::Read,
            got: XsMsgType::Write
        })
    );
    assert_eq!(xs.read("/x").unwrap(), b"fresh");
    assert_eq!(xs.stats().stale_replies, 1);
}

#[test]
fn broken_framing_is_an_error_not_a_panic() {
    let t = Scripted::new(64)
        .then(|h: Header| msg(99, h.req_id, b"")) // unknown type
        .then(|h: Header| {
            let mut v = msg(XsMsgType::Read as u32, h.req_id, b"");
            v[12..16].copy_from_slice(&5000u32.to_le_bytes()); // oversized payload
            v
        })
        .then(echo(b"ok"));
    let mut xs = Xenstore::new(t);
    assert!(matches!(xs.read("/x"), Err(XsError::Protocol(_))));
    assert!(matches!(xs.read("/x"), Err(XsError::Protocol(_))));
    assert_eq!(
        xs.read("/x").unwrap(),
        b"ok",
        "the client recovers once the stream is sane"
    );
    assert_eq!(xs.stats().desyncs, 2);
    // A server that never answers.
    assert_eq!(
        xs.read("/x"),
        Err(XsError::Transport(TransportError::Stalled))
    );
}

#[test]
fn malformed_watch_events_are_dropped() {
    let t = Scripted::new(7).then(|h: Header| {
        let mut v = msg(XsMsgType::WatchEvent as u32, 0, b"/p\0");
        v.extend(msg(XsMsgType::WatchEvent as u32, 0, b"/p\0tok\0extra\0"));
        v.extend(msg(XsMsgType::WatchEvent as u32, 0, b"/p\0unknown\0"));
        v.extend(msg(XsMsgType::WatchEvent as u32, 0, b"/p\0tok\0"));
        v.extend(msg(h.msg_type as u32, h.req_id, b"OK\0"));
        v
    });
    let mut xs = Xenstore::new(t);
    xs.watch("/p", "tok").unwrap();
    assert_eq!(xs.stats().events_ignored, 3);
    assert_eq!(xs.next_event().unwrap().token(), "tok");
    assert_eq!(xs.next_event(), None);
}

#[test]
fn garbage_streams_never_panic() {
    // Deterministic pseudo-random garbage, with and without valid headers in between.
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..300 {
        let len = (rand() % 300) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rand() as u8).collect();
        if round % 3 == 0 {
            let ty = (rand() % 24) as u32;
            let mut head = msg(ty, 1, &[]);
            head[12..16].copy_from_slice(&((rand() % 64) as u32).to_le_bytes());
            head.extend(bytes);
            bytes = head;
        }
        let t = Scripted::new(1 + (rand() % 50) as usize).then(move |_| bytes.clone());
        let mut xs = Xenstore::new(t);
        xs.watches.push(Registration {
            path: "/p".into(),
            token: "t".into(),
            overflowed: false,
        });
        let _ = xs.read("/x");
        let _ = xs.poll();
        while xs.next_event().is_some() {}
    }
}

#[test]
fn encode_matches_the_wire_format() {
    // The exact bytes a WRITE puts on the wire.
    struct Capture(Vec<u8>);
    impl XsTransport for Capture {
        fn send(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
            self.0.extend_from_slice(bytes);
            Ok(())
        }
        fn recv(&mut self, _: &mut [u8]) -> Result<usize, TransportError> {
            Ok(0)
        }
        fn wait_readable(&mut self) -> Result<(), TransportError> {
            Err(TransportError::Closed)
        }
    }
    let mut xs = Xenstore::new(Capture(Vec::new()));
    assert_eq!(
        xs.write("/a", b"v"),
        Err(XsError::Transport(TransportError::Closed))
    );
    let mut expect = vec![0u8; 64];
    let n = encode(XsMsgType::Write, 1, 0, &[b"/a\0v"], &mut expect).unwrap();
    assert_eq!(xs.transport_mut().0, &expect[..n]);
}

#[test]
fn a_wait_hook_runs_while_a_reply_is_awaited_and_sets_the_deadline() {
    // The reply comes after the third wait; every wait runs the hook first and returns by
    // the deadline the hook asked for.
    struct Slow {
        waits: Vec<Option<u64>>,
        reply: Vec<u8>,
    }
    impl XsTransport for Slow {
        fn send(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
            let h = Header::parse(bytes).expect("a valid header");
            self.reply = msg(XsMsgType::Read as u32, h.req_id, b"v");
            Ok(())
        }
        fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
            if self.waits.len() < 3 {
                return Ok(0);
            }
            let n = buf.len().min(self.reply.len());
            buf[..n].copy_from_slice(&self.reply[..n]);
            self.reply.drain(..n);
            Ok(n)
        }
        fn wait_readable(&mut self) -> Result<(), TransportError> {
            unreachable!("the deadline-aware wait is used")
        }
        fn wait_readable_until(&mut self, deadline_ns: Option<u64>) -> Result<(), TransportError> {
            self.waits.push(deadline_ns);
            Ok(())
        }
    }
    let runs = alloc::rc::Rc::new(core::cell::Cell::new(0u64));
    let mut xs = Xenstore::new(Slow {
        waits: Vec::new(),
        reply: Vec::new(),
    });
    let r = runs.clone();
    xs.set_wait_hook(Box::new(move || {
        r.set(r.get() + 1);
        Some(1_000 * r.get())
    }));
    assert_eq!(xs.read("/x").unwrap(), b"v");
    assert_eq!(runs.get(), 3);
    assert_eq!(
        xs.transport_mut().waits,
        [Some(1_000), Some(2_000), Some(3_000)]
    );
}
