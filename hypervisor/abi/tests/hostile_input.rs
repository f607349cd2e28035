//! Property-style tests with a deterministic PRNG: decoders and index checks fed random and
//! mutated input never panic, and whatever they accept satisfies the protocol's bounds.

use xen_abi::byte_ring;
use xen_abi::ring::{BackRing, FrontRing, LocalIndices};
use xen_abi::xenbus::XenbusState;
use xen_abi::xs_wire::{
    encode_path_token, encode_path_value, parse_error, parse_perms, parse_string, parse_strings,
    parse_watch_event, validate_path, Header, Message, MessageReader, Perm, XsMsgType,
    XENSTORE_PAYLOAD_MAX, XS_HEADER_LEN,
};

/// xorshift64*: small, deterministic, good enough to spread inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, len: usize, alphabet: &[u8]) -> Vec<u8> {
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }
}

const ANY: &[u8] = &{
    let mut all = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        all[i] = i as u8;
        i += 1;
    }
    all
};
/// Bytes that make decoders go deeper: NULs, digits, permission letters, path characters.
const PLAUSIBLE: &[u8] = b"\0\0\0/0123456789nrwbEINVAL@_-abc\xff\x01\x10";

fn exercise_payload(payload: &[u8]) {
    if let Ok(strings) = parse_strings(payload) {
        for s in strings {
            assert!(!s.contains('\0'));
            let _ = validate_path(s);
            let _ = XenbusState::parse(s.as_bytes());
        }
    }
    let _ = parse_string(payload);
    if let Ok(ev) = parse_watch_event(payload) {
        assert_eq!(ev.path.len() + ev.token.len() + 2, payload.len());
    }
    let _ = parse_error(payload);
    if let Ok(perms) = parse_perms(payload) {
        for p in perms.flatten() {
            let mut out = [0u8; 8];
            let n = p.encode(&mut out).unwrap();
            assert_eq!(Perm::parse(&out[..n]), Ok(p));
        }
    }
    let _ = Perm::parse(payload);
    let _ = XenbusState::parse(payload);
}

fn exercise_stream(rng: &mut Rng, input: &[u8]) {
    if let Ok(header) = Header::parse(input) {
        assert!(header.len as usize <= XENSTORE_PAYLOAD_MAX);
    }
    if let Ok((msg, used)) = Message::parse(input) {
        assert!(used <= input.len());
        assert_eq!(msg.payload.len(), msg.header.len as usize);
        assert_eq!(used, XS_HEADER_LEN + msg.payload.len());
        exercise_payload(msg.payload);
        let _ = msg.as_error();
    }
    exercise_payload(input);

    // The same bytes through the incremental reader, in random pieces.
    let mut reader = MessageReader::new();
    let mut rest = input;
    while !rest.is_empty() {
        let piece = &rest[..1 + rng.below(rest.len())];
        match reader.feed(piece) {
            Ok(n) => {
                assert!(n <= piece.len());
                rest = &rest[n..];
                if let Some(msg) = reader.message() {
                    assert!(msg.payload.len() <= XENSTORE_PAYLOAD_MAX);
                    exercise_payload(msg.payload);
                    reader.reset();
                } else if n < piece.len() {
                    panic!("reader stopped short without a complete message");
                }
            }
            Err(_) => break,
        }
    }
}

#[test]
fn xenstore_decoders_survive_random_bytes() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..20_000 {
        let alphabet = if round % 2 == 0 { ANY } else { PLAUSIBLE };
        let len = rng.below(96);
        let mut input = rng.bytes(len, alphabet);
        // Half the time, start with a plausible header so payload parsing is reached.
        if round % 4 < 2 && input.len() >= XS_HEADER_LEN {
            input[..4].copy_from_slice(&(rng.below(24) as u32).to_le_bytes());
            let len = (input.len() - XS_HEADER_LEN + rng.below(3)) as u32;
            input[12..16].copy_from_slice(&len.to_le_bytes());
        }
        exercise_stream(&mut rng, &input);
    }
}

#[test]
fn xenstore_decoders_survive_mutated_messages() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut buf = [0u8; 256];
    for _ in 0..20_000 {
        let n = if rng.below(2) == 0 {
            encode_path_token(
                XsMsgType::WatchEvent,
                1,
                0,
                "/local/domain/7/device/vif/0",
                "tok",
                &mut buf,
            )
        } else {
            encode_path_value(
                XsMsgType::Write,
                2,
                5,
                "backend/vbd/3/51712/state",
                b"4",
                &mut buf,
            )
        }
        .unwrap();
        let mut msg = buf[..n].to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(msg.len());
            msg[at] = ANY[rng.below(256)];
        }
        msg.truncate(msg.len() - rng.below(4).min(msg.len()));
        exercise_stream(&mut rng, &msg);
    }
}

#[test]
fn xenstore_round_trips_random_valid_messages() {
    let mut rng = Rng(42);
    const PATH_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_@";
    let mut buf = vec![0u8; XS_HEADER_LEN + XENSTORE_PAYLOAD_MAX];
    for _ in 0..5_000 {
        let mut path = String::new();
        for _ in 0..1 + rng.below(6) {
            path.push('/');
            let len = 1 + rng.below(12);
            let seg = rng.bytes(len, PATH_CHARS);
            path.push_str(std::str::from_utf8(&seg).unwrap());
        }
        assert!(validate_path(&path).is_ok(), "{path}");
        let len = rng.below(200);
        let value = rng.bytes(len, ANY);
        let req_id = rng.next() as u32;
        let n = encode_path_value(XsMsgType::Write, req_id, 9, &path, &value, &mut buf).unwrap();
        let (msg, used) = Message::parse(&buf[..n]).unwrap();
        assert_eq!(used, n);
        assert_eq!(
            (msg.header.msg_type, msg.header.req_id, msg.header.tx_id),
            (XsMsgType::Write, req_id, 9)
        );
        let (p, v) = msg.payload.split_at(path.len());
        assert_eq!((p, &v[1..]), (path.as_bytes(), &value[..]));
    }
}

#[test]
fn ring_indices_from_a_hostile_peer_are_bounded() {
    let mut rng = Rng(7);
    for _ in 0..20_000 {
        let nr_ents = 1u32 << rng.below(9);
        let start = rng.next() as u32;
        let shared = LocalIndices::new();
        let mut back = BackRing::attach(nr_ents, start).unwrap();
        let mut front = FrontRing::attach(nr_ents, start).unwrap();
        // A peer writing arbitrary producer values, sometimes near the truth.
        for _ in 0..8 {
            let near = start.wrapping_add(rng.below(2 * nr_ents as usize + 2) as u32);
            shared.req_prod.set(if rng.below(2) == 0 {
                near
            } else {
                rng.next() as u32
            });
            let mut taken = 0;
            while let Ok(Some(_)) = back.next_request(&shared) {
                taken += 1;
                assert!(taken <= nr_ents, "more requests than slots");
            }
            assert!(back.in_flight() <= nr_ents);
            while back.next_response_slot().is_ok() {}
            let _ = back.push_responses(&shared);
            let _ = back.final_check_for_requests(&shared);

            shared.rsp_prod.set(rng.next() as u32);
            while front.next_request_slot().is_ok() {}
            let mut got = 0;
            while let Ok(Some(_)) = front.next_response(&shared) {
                got += 1;
                assert!(got <= nr_ents, "more responses than requests");
            }
            let _ = front.final_check_for_responses(&shared);
        }
    }
}

#[test]
fn byte_ring_indices_from_a_hostile_peer_are_bounded() {
    let mut rng = Rng(99);
    let mut ring = [0u8; 1024];
    let mut out = [0u8; 2048];
    for _ in 0..50_000 {
        let cons = rng.next() as u32;
        let prod = if rng.below(2) == 0 {
            cons.wrapping_add(rng.below(1100) as u32)
        } else {
            rng.next() as u32
        };
        if let Ok(chunk) = byte_ring::read_chunk(ring.len(), cons, prod) {
            assert!(chunk.offset + chunk.len <= ring.len());
        }
        if let Ok(chunk) = byte_ring::write_chunk(ring.len(), cons, prod) {
            assert!(chunk.offset + chunk.len <= ring.len());
        }
        if let Ok(n) = byte_ring::read(&ring, cons, prod, &mut out) {
            assert!(n <= ring.len());
        }
        let data = [0xa5u8; 1500];
        if let Ok(n) = byte_ring::write(&mut ring, cons, prod, &data) {
            assert!(n <= ring.len());
        }
    }
}
