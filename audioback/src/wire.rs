//! sndif requests as validated values: a slot copied out of the ring once
//! ([`xen_abi::sndif::XensndReq`]) is parsed into a [`Request`]; responses are emitted
//! whole ([`xen_abi::sndif::XensndResp`], padding zeroed).
//!
//! Reserved bytes are not checked: Linux's frontend fills requests in place without
//! clearing a slot, so they hold whatever an earlier request left there.

use xen_abi::sndif::*;

/// A `TRIGGER` type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Start playing or recording.
    Start,
    /// Pause.
    Pause,
    /// Stop (queued data is dropped).
    Stop,
    /// Resume after a pause.
    Resume,
}

/// A parsed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// `OPEN` (parameters not yet checked against the stream's offer).
    Open(XensndOpenReq),
    /// `CLOSE`.
    Close,
    /// `READ`: fill `length` bytes at `offset` of the buffer with captured data.
    Read {
        /// Offset in the buffer.
        offset: u32,
        /// Bytes.
        length: u32,
    },
    /// `WRITE`: play `length` bytes at `offset` of the buffer.
    Write {
        /// Offset in the buffer.
        offset: u32,
        /// Bytes.
        length: u32,
    },
    /// `SET_VOLUME`, `GET_VOLUME`, `MUTE`, `UNMUTE`: per-channel values at `offset`.
    Volume {
        /// Which of the four.
        op: VolumeOp,
        /// Offset in the buffer.
        offset: u32,
        /// Bytes.
        length: u32,
    },
    /// `TRIGGER`.
    Trigger(Trigger),
    /// `TRIGGER` with an unknown type.
    BadTrigger(u8),
    /// `HW_PARAM_QUERY`.
    Query(XensndQueryHwParam),
    /// An operation this protocol version does not define.
    Unknown,
}

/// The volume and mute operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeOp {
    /// `SET_VOLUME`: one `i32` per channel, 0.001 dB.
    Set,
    /// `GET_VOLUME`.
    Get,
    /// `MUTE`: one byte per channel, non-zero mutes it.
    Mute,
    /// `UNMUTE`: one byte per channel, non-zero unmutes it.
    Unmute,
}

/// A request with the header to answer it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Echoed in the response.
    pub id: u16,
    /// Echoed in the response.
    pub operation: u8,
    /// What it asks.
    pub request: Request,
}

impl Parsed {
    /// Parses a request copied out of the ring.
    pub fn parse(req: &XensndReq) -> Parsed {
        // The payload types are at most 56 bytes: decoding cannot fail.
        let rw = || req.payload::<XensndRwReq>().unwrap_or_default();
        let request = match req.operation {
            XENSND_OP_OPEN => Request::Open(req.payload().unwrap_or_default()),
            XENSND_OP_CLOSE => Request::Close,
            XENSND_OP_READ => Request::Read {
                offset: rw().offset,
                length: rw().length,
            },
            XENSND_OP_WRITE => Request::Write {
                offset: rw().offset,
                length: rw().length,
            },
            XENSND_OP_SET_VOLUME | XENSND_OP_GET_VOLUME | XENSND_OP_MUTE | XENSND_OP_UNMUTE => {
                let op = match req.operation {
                    XENSND_OP_SET_VOLUME => VolumeOp::Set,
                    XENSND_OP_GET_VOLUME => VolumeOp::Get,
                    XENSND_OP_MUTE => VolumeOp::Mute,
                    _ => VolumeOp::Unmute,
                };
                Request::Volume {
                    op,
                    offset: rw().offset,
                    length: rw().length,
                }
            }
            XENSND_OP_TRIGGER => {
                let t = req.payload::<XensndTriggerReq>().unwrap_or_default().type_;
                match t {
                    XENSND_OP_TRIGGER_START => Request::Trigger(Trigger::Start),
                    XENSND_OP_TRIGGER_PAUSE => Request::Trigger(Trigger::Pause),
                    XENSND_OP_TRIGGER_STOP => Request::Trigger(Trigger::Stop),
                    XENSND_OP_TRIGGER_RESUME => Request::Trigger(Trigger::Resume),
                    other => Request::BadTrigger(other),
                }
            }
            XENSND_OP_HW_PARAM_QUERY => Request::Query(req.payload().unwrap_or_default()),
            _ => Request::Unknown,
        };
        Parsed {
            id: req.id,
            operation: req.operation,
            request,
        }
    }

    /// The response with `status` (0 or a negative errno).
    pub fn respond(&self, status: i32) -> XensndResp {
        XensndResp::new(self.id, self.operation, status)
    }

    /// The successful `HW_PARAM_QUERY` response.
    pub fn respond_query(&self, answer: &XensndQueryHwParam) -> XensndResp {
        XensndResp::with_payload(self.id, self.operation, 0, answer)
            .unwrap_or_else(|_| self.respond(-22))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_abi::WireStruct;

    fn raw(bytes: &[(usize, &[u8])]) -> XensndReq {
        let mut b = [0u8; 64];
        for (at, v) in bytes {
            b[*at..*at + v.len()].copy_from_slice(v);
        }
        XensndReq::read_from(&b).unwrap()
    }

    #[test]
    fn parses_the_octet_diagrams() {
        // WRITE id 7, offset 4096, length 1024; stale bytes in the reserved fields.
        let w = raw(&[
            (0, &[7, 0, XENSND_OP_WRITE, 0xaa]),
            (4, &[0xbb; 4]),
            (8, &4096u32.to_le_bytes()),
            (12, &1024u32.to_le_bytes()),
            (16, &[0xcc; 48]),
        ]);
        let p = Parsed::parse(&w);
        assert_eq!((p.id, p.operation), (7, XENSND_OP_WRITE));
        assert_eq!(
            p.request,
            Request::Write {
                offset: 4096,
                length: 1024
            }
        );
        let t = raw(&[
            (0, &[1, 0, XENSND_OP_TRIGGER]),
            (8, &[XENSND_OP_TRIGGER_PAUSE]),
        ]);
        assert_eq!(Parsed::parse(&t).request, Request::Trigger(Trigger::Pause));
        let t = raw(&[(0, &[1, 0, XENSND_OP_TRIGGER]), (8, &[9])]);
        assert_eq!(Parsed::parse(&t).request, Request::BadTrigger(9));
        let u = raw(&[(0, &[1, 0, 200])]);
        assert_eq!(Parsed::parse(&u).request, Request::Unknown);
        let m = raw(&[(0, &[1, 0, XENSND_OP_MUTE]), (12, &[2, 0, 0, 0])]);
        assert_eq!(
            Parsed::parse(&m).request,
            Request::Volume {
                op: VolumeOp::Mute,
                offset: 0,
                length: 2
            }
        );
    }

    #[test]
    fn responses_are_whole() {
        let p = Parsed::parse(&raw(&[(0, &[3, 1, XENSND_OP_OPEN])]));
        let mut out = [0xffu8; 64];
        p.respond(-22).write_to(&mut out).unwrap();
        assert_eq!(
            &out[..8],
            &[3, 1, XENSND_OP_OPEN, 0, 0xea, 0xff, 0xff, 0xff]
        );
        assert!(out[8..].iter().all(|&b| b == 0));
    }
}
