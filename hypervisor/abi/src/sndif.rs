//! PV sound rings (`io/sndif.h`, protocol version 2): 64-byte requests and responses on the
//! per-stream ring, 64-byte events on the event page, and the page-directory chain that
//! shares the audio buffer.
//!
//! Requests, responses and events carry a 56-byte operation-specific payload (a C union),
//! kept as bytes; decode it with [`XensndReq::payload`] as the struct the `operation` names.

use crate::ring::{entry_size, ring_size};
use crate::wire::{impl_wire, ShortBuffer, WireStruct};
use crate::{GrantRef, XEN_PAGE_SIZE};

/// Protocol version this module implements (`XENSND_PROTOCOL_VERSION`).
pub const XENSND_PROTOCOL_VERSION: u32 = 2;

/// Open a stream: payload [`XensndOpenReq`] (`XENSND_OP_OPEN`).
pub const XENSND_OP_OPEN: u8 = 0;
/// Close a stream (`XENSND_OP_CLOSE`).
pub const XENSND_OP_CLOSE: u8 = 1;
/// Capture into the buffer: payload [`XensndRwReq`] (`XENSND_OP_READ`).
pub const XENSND_OP_READ: u8 = 2;
/// Play from the buffer: payload [`XensndRwReq`] (`XENSND_OP_WRITE`).
pub const XENSND_OP_WRITE: u8 = 3;
/// Set per-channel volumes held in the buffer: payload [`XensndRwReq`]
/// (`XENSND_OP_SET_VOLUME`).
pub const XENSND_OP_SET_VOLUME: u8 = 4;
/// Read per-channel volumes into the buffer: payload [`XensndRwReq`]
/// (`XENSND_OP_GET_VOLUME`).
pub const XENSND_OP_GET_VOLUME: u8 = 5;
/// Mute channels: payload [`XensndRwReq`] (`XENSND_OP_MUTE`).
pub const XENSND_OP_MUTE: u8 = 6;
/// Unmute channels: payload [`XensndRwReq`] (`XENSND_OP_UNMUTE`).
pub const XENSND_OP_UNMUTE: u8 = 7;
/// Start/pause/stop/resume: payload [`XensndTriggerReq`] (`XENSND_OP_TRIGGER`).
pub const XENSND_OP_TRIGGER: u8 = 8;
/// Negotiate hardware parameters: payload and response [`XensndQueryHwParam`]
/// (`XENSND_OP_HW_PARAM_QUERY`).
pub const XENSND_OP_HW_PARAM_QUERY: u8 = 9;

/// Trigger type: start (`XENSND_OP_TRIGGER_START`).
pub const XENSND_OP_TRIGGER_START: u8 = 0;
/// Trigger type: pause (`XENSND_OP_TRIGGER_PAUSE`).
pub const XENSND_OP_TRIGGER_PAUSE: u8 = 1;
/// Trigger type: stop (`XENSND_OP_TRIGGER_STOP`).
pub const XENSND_OP_TRIGGER_STOP: u8 = 2;
/// Trigger type: resume (`XENSND_OP_TRIGGER_RESUME`).
pub const XENSND_OP_TRIGGER_RESUME: u8 = 3;

/// Event: current stream position, payload [`XensndCurPosEvt`] (`XENSND_EVT_CUR_POS`).
pub const XENSND_EVT_CUR_POS: u8 = 0;

/// Driver name, the device type in xenstore (`XENSND_DRIVER_NAME`).
pub const XENSND_DRIVER_NAME: &str = "vsnd";
/// Separator of list values (`XENSND_LIST_SEPARATOR`).
pub const XENSND_LIST_SEPARATOR: &str = ",";
/// Backend's supported versions (`XENSND_FIELD_BE_VERSIONS`).
pub const XENSND_FIELD_BE_VERSIONS: &str = "versions";
/// Frontend's chosen version (`XENSND_FIELD_FE_VERSION`).
pub const XENSND_FIELD_FE_VERSION: &str = "version";
/// Card short name (`XENSND_FIELD_VCARD_SHORT_NAME`).
pub const XENSND_FIELD_VCARD_SHORT_NAME: &str = "short-name";
/// Card long name (`XENSND_FIELD_VCARD_LONG_NAME`).
pub const XENSND_FIELD_VCARD_LONG_NAME: &str = "long-name";
/// Request ring grant (`XENSND_FIELD_RING_REF`).
pub const XENSND_FIELD_RING_REF: &str = "ring-ref";
/// Request ring event channel (`XENSND_FIELD_EVT_CHNL`).
pub const XENSND_FIELD_EVT_CHNL: &str = "event-channel";
/// Event page grant (`XENSND_FIELD_EVT_RING_REF`).
pub const XENSND_FIELD_EVT_RING_REF: &str = "evt-ring-ref";
/// Event page event channel (`XENSND_FIELD_EVT_EVT_CHNL`).
pub const XENSND_FIELD_EVT_EVT_CHNL: &str = "evt-event-channel";
/// PCM device name (`XENSND_FIELD_DEVICE_NAME`).
pub const XENSND_FIELD_DEVICE_NAME: &str = "name";
/// Stream type, `p` or `c` (`XENSND_FIELD_TYPE`).
pub const XENSND_FIELD_TYPE: &str = "type";
/// Stream unique id (`XENSND_FIELD_STREAM_UNIQUE_ID`).
pub const XENSND_FIELD_STREAM_UNIQUE_ID: &str = "unique-id";
/// Minimum channels (`XENSND_FIELD_CHANNELS_MIN`).
pub const XENSND_FIELD_CHANNELS_MIN: &str = "channels-min";
/// Maximum channels (`XENSND_FIELD_CHANNELS_MAX`).
pub const XENSND_FIELD_CHANNELS_MAX: &str = "channels-max";
/// Supported sample rates, comma-separated (`XENSND_FIELD_SAMPLE_RATES`).
pub const XENSND_FIELD_SAMPLE_RATES: &str = "sample-rates";
/// Supported sample formats, comma-separated names (`XENSND_FIELD_SAMPLE_FORMATS`).
pub const XENSND_FIELD_SAMPLE_FORMATS: &str = "sample-formats";
/// Buffer size in bytes (`XENSND_FIELD_BUFFER_SIZE`).
pub const XENSND_FIELD_BUFFER_SIZE: &str = "buffer-size";
/// Stream type value: playback (`XENSND_STREAM_TYPE_PLAYBACK`).
pub const XENSND_STREAM_TYPE_PLAYBACK: &str = "p";
/// Stream type value: capture (`XENSND_STREAM_TYPE_CAPTURE`).
pub const XENSND_STREAM_TYPE_CAPTURE: &str = "c";
/// Longest sample rate string (`XENSND_SAMPLE_RATE_MAX_LEN`).
pub const XENSND_SAMPLE_RATE_MAX_LEN: usize = 11;
/// Longest sample format string (`XENSND_SAMPLE_FORMAT_MAX_LEN`).
pub const XENSND_SAMPLE_FORMAT_MAX_LEN: usize = 24;

/// Sample formats (`XENSND_PCM_FORMAT_*`) and their xenstore names (`…_STR`), by value.
pub const XENSND_PCM_FORMATS: [(u8, &str); 25] = [
    (0, "s8"),
    (1, "u8"),
    (2, "s16_le"),
    (3, "s16_be"),
    (4, "u16_le"),
    (5, "u16_be"),
    (6, "s24_le"),
    (7, "s24_be"),
    (8, "u24_le"),
    (9, "u24_be"),
    (10, "s32_le"),
    (11, "s32_be"),
    (12, "u32_le"),
    (13, "u32_be"),
    (14, "float_le"),
    (15, "float_be"),
    (16, "float64_le"),
    (17, "float64_be"),
    (18, "iec958_subframe_le"),
    (19, "iec958_subframe_be"),
    (20, "mu_law"),
    (21, "a_law"),
    (22, "ima_adpcm"),
    (23, "mpeg"),
    (24, "gsm"),
];
/// Signed 16-bit little-endian samples, the common format (`XENSND_PCM_FORMAT_S16_LE`).
pub const XENSND_PCM_FORMAT_S16_LE: u8 = 2;

/// The `XENSND_PCM_FORMAT_*` value for a xenstore format name (`"s16_le"`).
pub fn pcm_format_from_name(name: &str) -> Option<u8> {
    XENSND_PCM_FORMATS
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(v, _)| *v)
}

/// The xenstore name of a `XENSND_PCM_FORMAT_*` value.
pub fn pcm_format_name(format: u8) -> Option<&'static str> {
    XENSND_PCM_FORMATS.get(usize::from(format)).map(|(_, n)| *n)
}

/// Size of the operation payload union in requests, responses and events.
pub const XENSND_PAYLOAD_SIZE: usize = 56;

/// Payload of [`XENSND_OP_OPEN`] (`struct xensnd_open_req`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XensndOpenReq {
    /// Sample rate in Hz.
    pub pcm_rate: u32,
    /// A `XENSND_PCM_FORMAT_*` value.
    pub pcm_format: u8,
    /// Number of channels.
    pub pcm_channels: u8,
    /// Zero.
    pub reserved: u16,
    /// Buffer size in bytes.
    pub buffer_sz: u32,
    /// First page of the buffer's page directory.
    pub gref_directory: GrantRef,
    /// Bytes between `XENSND_EVT_CUR_POS` events, 0 for none.
    pub period_sz: u32,
}
impl_wire!(XensndOpenReq {
    pcm_rate,
    pcm_format,
    pcm_channels,
    reserved,
    buffer_sz,
    gref_directory,
    period_sz
});

/// A page of the buffer's page directory chain (`struct xensnd_page_directory`): the next
/// directory page, then grants of buffer pages filling the rest of the page
/// ([`XENSND_GREFS_PER_DIR_PAGE`] of them; `gref` shows the first).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XensndPageDirectory {
    /// Next directory page, or 0 for the last.
    pub gref_dir_next_page: GrantRef,
    /// First buffer page grant (the array runs to the end of the page).
    pub gref: [GrantRef; 1],
}
impl_wire!(XensndPageDirectory {
    gref_dir_next_page,
    gref
});

/// Buffer page grants per directory page: `(4096 - 4) / 4`.
pub const XENSND_GREFS_PER_DIR_PAGE: usize = (XEN_PAGE_SIZE
    - core::mem::offset_of!(XensndPageDirectory, gref))
    / core::mem::size_of::<GrantRef>();

/// Payload of READ/WRITE and the volume/mute ops (`struct xensnd_rw_req`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XensndRwReq {
    /// Offset in the buffer.
    pub offset: u32,
    /// Bytes.
    pub length: u32,
}
impl_wire!(XensndRwReq { offset, length });

/// Payload of [`XENSND_OP_TRIGGER`] (`struct xensnd_trigger_req`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XensndTriggerReq {
    /// A `XENSND_OP_TRIGGER_*` value.
    pub type_: u8,
}
impl_wire!(XensndTriggerReq { type_ });

/// An inclusive range in [`XensndQueryHwParam`] (anonymous struct in C).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XensndRange {
    /// Minimum.
    pub min: u32,
    /// Maximum.
    pub max: u32,
}
impl_wire!(XensndRange { min, max });

/// Payload and response of [`XENSND_OP_HW_PARAM_QUERY`] (`struct xensnd_query_hw_param`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XensndQueryHwParam {
    /// Bit `n` set: `XENSND_PCM_FORMAT_*` `n` acceptable.
    pub formats: u64,
    /// Sample rates, Hz.
    pub rates: XensndRange,
    /// Channels.
    pub channels: XensndRange,
    /// Buffer size, in frames (a frame: channels × bytes per sample).
    pub buffer: XensndRange,
    /// Period size, in frames.
    pub period: XensndRange,
}
impl_wire!(XensndQueryHwParam {
    formats,
    rates,
    channels,
    buffer,
    period
});

/// Payload of [`XENSND_EVT_CUR_POS`] (`struct xensnd_cur_pos_evt`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XensndCurPosEvt {
    /// Stream position in bytes.
    pub position: u64,
}
impl_wire!(XensndCurPosEvt { position });

/// A request (`struct xensnd_req`, 64 B).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XensndReq {
    /// Request id, echoed in the response.
    pub id: u16,
    /// A `XENSND_OP_*` value.
    pub operation: u8,
    /// Zero.
    pub reserved: [u8; 5],
    /// The union `op`.
    pub op: [u8; XENSND_PAYLOAD_SIZE],
}
impl_wire!(XensndReq {
    id,
    operation,
    reserved,
    op
});

/// A response (`struct xensnd_resp`, 64 B).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XensndResp {
    /// The request's id.
    pub id: u16,
    /// The request's operation.
    pub operation: u8,
    /// Zero.
    pub reserved: u8,
    /// 0 or a negative errno.
    pub status: i32,
    /// The union `resp` (only [`XensndQueryHwParam`] for now).
    pub resp: [u8; XENSND_PAYLOAD_SIZE],
}
impl_wire!(XensndResp {
    id,
    operation,
    reserved,
    status,
    resp
});

/// An event on the event page (`struct xensnd_evt`, 64 B).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XensndEvt {
    /// Event id.
    pub id: u16,
    /// A `XENSND_EVT_*` value.
    pub type_: u8,
    /// Zero.
    pub reserved: [u8; 5],
    /// The union `op`.
    pub op: [u8; XENSND_PAYLOAD_SIZE],
}
impl_wire!(XensndEvt {
    id,
    type_,
    reserved,
    op
});

/// Header of the event page (`struct xensnd_event_page`); events follow at
/// [`XENSND_IN_RING_OFFS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XensndEventPage {
    /// Consumer index (frontend).
    pub in_cons: u32,
    /// Producer index (backend).
    pub in_prod: u32,
    /// Zero.
    pub reserved: [u8; 56],
}
impl_wire!(XensndEventPage {
    in_cons,
    in_prod,
    reserved
});

/// Size of the event page (`XENSND_EVENT_PAGE_SIZE`).
pub const XENSND_EVENT_PAGE_SIZE: usize = 4096;
/// Offset of the first event (`XENSND_IN_RING_OFFS`).
pub const XENSND_IN_RING_OFFS: usize = core::mem::size_of::<XensndEventPage>();
/// Bytes available for events (`XENSND_IN_RING_SIZE`).
pub const XENSND_IN_RING_SIZE: usize = XENSND_EVENT_PAGE_SIZE - XENSND_IN_RING_OFFS;
/// Number of event slots (`XENSND_IN_RING_LEN`, 63: not a power of two, indices are taken
/// modulo it).
pub const XENSND_IN_RING_LEN: usize = XENSND_IN_RING_SIZE / core::mem::size_of::<XensndEvt>();

/// Byte offset in the event page of the slot for event index `idx` (`XENSND_IN_RING_REF`).
pub const fn event_offset(idx: u32) -> usize {
    XENSND_IN_RING_OFFS + (idx as usize % XENSND_IN_RING_LEN) * core::mem::size_of::<XensndEvt>()
}

fn decode_payload<T: WireStruct>(bytes: &[u8; XENSND_PAYLOAD_SIZE]) -> Result<T, ShortBuffer> {
    T::read_from(bytes)
}

fn encode_payload<T: WireStruct>(value: &T) -> Result<[u8; XENSND_PAYLOAD_SIZE], ShortBuffer> {
    let mut out = [0u8; XENSND_PAYLOAD_SIZE];
    value.write_to(&mut out)?;
    Ok(out)
}

impl XensndReq {
    /// A request with payload `payload` (zero-padded to 56 bytes).
    pub fn new<T: WireStruct>(id: u16, operation: u8, payload: &T) -> Result<Self, ShortBuffer> {
        Ok(Self {
            id,
            operation,
            reserved: [0; 5],
            op: encode_payload(payload)?,
        })
    }

    /// Decodes the payload as `T` (the struct `operation` names).
    pub fn payload<T: WireStruct>(&self) -> Result<T, ShortBuffer> {
        decode_payload(&self.op)
    }
}

impl XensndResp {
    /// A response without payload.
    pub const fn new(id: u16, operation: u8, status: i32) -> Self {
        Self {
            id,
            operation,
            reserved: 0,
            status,
            resp: [0; XENSND_PAYLOAD_SIZE],
        }
    }

    /// A response with payload `payload` (zero-padded to 56 bytes).
    pub fn with_payload<T: WireStruct>(
        id: u16,
        operation: u8,
        status: i32,
        payload: &T,
    ) -> Result<Self, ShortBuffer> {
        Ok(Self {
            resp: encode_payload(payload)?,
            ..Self::new(id, operation, status)
        })
    }

    /// Decodes the payload as `T`.
    pub fn payload<T: WireStruct>(&self) -> Result<T, ShortBuffer> {
        decode_payload(&self.resp)
    }
}

impl XensndEvt {
    /// A current-position event.
    pub fn cur_pos(id: u16, position: u64) -> Self {
        let mut op = [0u8; XENSND_PAYLOAD_SIZE];
        op[..8].copy_from_slice(&position.to_le_bytes());
        Self {
            id,
            type_: XENSND_EVT_CUR_POS,
            reserved: [0; 5],
            op,
        }
    }

    /// Decodes the payload as `T`.
    pub fn payload<T: WireStruct>(&self) -> Result<T, ShortBuffer> {
        decode_payload(&self.op)
    }
}

/// Ring slot size of the request ring.
pub const XENSND_ENTRY_SIZE: usize = entry_size::<XensndReq, XensndResp>();
/// Entries of the one-page request ring (32).
pub const XENSND_RING_SIZE: u32 = ring_size(XEN_PAGE_SIZE, XENSND_ENTRY_SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry() {
        assert_eq!((XENSND_ENTRY_SIZE, XENSND_RING_SIZE), (64, 32));
        assert_eq!((XENSND_IN_RING_OFFS, XENSND_IN_RING_LEN), (64, 63));
        assert_eq!(event_offset(0), 64);
        assert_eq!(event_offset(63), 64);
        assert_eq!(event_offset(62), 64 + 62 * 64);
        assert_eq!(XENSND_GREFS_PER_DIR_PAGE, 1023);
    }

    #[test]
    fn open_request_layout() {
        let open = XensndOpenReq {
            pcm_rate: 48_000,
            pcm_format: XENSND_PCM_FORMAT_S16_LE,
            pcm_channels: 2,
            reserved: 0,
            buffer_sz: 65_536,
            gref_directory: 77,
            period_sz: 4096,
        };
        let req = XensndReq::new(5, XENSND_OP_OPEN, &open).unwrap();
        let mut raw = [0u8; 64];
        req.write_to(&mut raw).unwrap();
        // Offsets from the octet diagram in sndif.h.
        assert_eq!(&raw[0..4], &[5, 0, XENSND_OP_OPEN, 0]);
        assert_eq!(&raw[8..12], &48_000u32.to_le_bytes());
        assert_eq!(&raw[12..14], &[2, 2]);
        assert_eq!(&raw[16..20], &65_536u32.to_le_bytes());
        assert_eq!(&raw[20..24], &77u32.to_le_bytes());
        assert_eq!(&raw[24..28], &4096u32.to_le_bytes());
        let back = XensndReq::read_from(&raw).unwrap();
        assert_eq!(back.payload::<XensndOpenReq>().unwrap(), open);
    }

    #[test]
    fn hw_param_response_and_events() {
        let q = XensndQueryHwParam {
            formats: 1 << XENSND_PCM_FORMAT_S16_LE,
            rates: XensndRange {
                min: 8000,
                max: 48_000,
            },
            channels: XensndRange { min: 1, max: 2 },
            buffer: XensndRange {
                min: 4096,
                max: 65_536,
            },
            period: XensndRange {
                min: 1024,
                max: 4096,
            },
        };
        let rsp = XensndResp::with_payload(1, XENSND_OP_HW_PARAM_QUERY, 0, &q).unwrap();
        assert_eq!(rsp.payload::<XensndQueryHwParam>().unwrap(), q);
        let ev = XensndEvt::cur_pos(3, 123_456);
        assert_eq!(ev.payload::<XensndCurPosEvt>().unwrap().position, 123_456);
    }

    #[test]
    fn format_names() {
        assert_eq!(pcm_format_from_name("s16_le"), Some(2));
        assert_eq!(pcm_format_from_name("float_le"), Some(14));
        assert_eq!(pcm_format_from_name("S16_LE"), None);
        assert_eq!(pcm_format_name(24), Some("gsm"));
        assert_eq!(pcm_format_name(25), None);
        for (i, (v, _)) in XENSND_PCM_FORMATS.iter().enumerate() {
            assert_eq!(usize::from(*v), i);
        }
    }
}
