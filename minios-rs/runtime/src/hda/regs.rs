//! Register offsets, verbs and parameters of the HDA specification (rev. 1.0a) that the
//! driver uses, and the stream format encoding.

/// Bytes of controller registers mapped (global registers and 30 stream descriptors).
pub const REGS_LEN: usize = 0x4000;

/// Global capabilities (16 bits).
pub const GCAP: usize = 0x00;
/// Global control (32 bits).
pub const GCTL: usize = 0x08;
/// `GCTL`: controller out of reset.
pub const GCTL_CRST: u32 = 1 << 0;
/// Codec state change status (16 bits, write 1 to clear).
pub const STATESTS: usize = 0x0e;
/// Interrupt control (32 bits).
pub const INTCTL: usize = 0x20;
/// CORB base, lower and upper (32 bits each).
pub const CORBLBASE: usize = 0x40;
/// CORB base, upper 32 bits.
pub const CORBUBASE: usize = 0x44;
/// CORB write pointer (16 bits).
pub const CORBWP: usize = 0x48;
/// CORB read pointer (16 bits).
pub const CORBRP: usize = 0x4a;
/// `CORBRP`: read pointer reset.
pub const CORBRP_RST: u16 = 1 << 15;
/// CORB control (8 bits).
pub const CORBCTL: usize = 0x4c;
/// `CORBCTL`: DMA engine run.
pub const CORBCTL_RUN: u8 = 1 << 1;
/// CORB size (8 bits).
pub const CORBSIZE: usize = 0x4e;
/// `CORBSIZE`/`RIRBSIZE` capability: 256 entries supported.
pub const CORBSIZE_CAP_256: u8 = 1 << 6;
/// `CORBSIZE`/`RIRBSIZE`: 256 entries.
pub const SIZE_256: u8 = 2;
/// RIRB base, lower 32 bits.
pub const RIRBLBASE: usize = 0x50;
/// RIRB base, upper 32 bits.
pub const RIRBUBASE: usize = 0x54;
/// RIRB write pointer (16 bits).
pub const RIRBWP: usize = 0x58;
/// `RIRBWP`: write pointer reset.
pub const RIRBWP_RST: u16 = 1 << 15;
/// Responses per RIRB interrupt (16 bits).
pub const RINTCNT: usize = 0x5a;
/// RIRB control (8 bits).
pub const RIRBCTL: usize = 0x5c;
/// `RIRBCTL`: response interrupt control (the status flag after `RINTCNT` responses).
pub const RIRBCTL_INTCTL: u8 = 1 << 0;
/// `RIRBCTL`: DMA enable.
pub const RIRBCTL_DMAEN: u8 = 1 << 1;
/// RIRB status (8 bits, write 1 to clear).
pub const RIRBSTS: usize = 0x5d;
/// `RIRBSTS`: response interrupt flag.
pub const RIRBSTS_INTFL: u8 = 1 << 0;
/// `RIRBSTS`: overrun.
pub const RIRBSTS_OIS: u8 = 1 << 2;
/// RIRB size (8 bits).
pub const RIRBSIZE: usize = 0x5e;
/// RIRB entry, extended word: unsolicited response.
pub const RIRB_EXT_UNSOL: u32 = 1 << 4;

/// First stream descriptor (input streams first, then output, then bidirectional).
pub const SD_BASE: usize = 0x80;
/// Bytes per stream descriptor.
pub const SD_LEN: usize = 0x20;
/// Stream descriptor: control (24 bits; bytes 0..3).
pub const SD_CTL: usize = 0x00;
/// `SDnCTL`: stream reset.
pub const SD_CTL_SRST: u32 = 1 << 0;
/// `SDnCTL`: DMA run.
pub const SD_CTL_RUN: u32 = 1 << 1;
/// `SDnCTL`: stream number (tag) shift.
pub const SD_CTL_TAG_SHIFT: u32 = 20;
/// Stream descriptor: status (8 bits, write 1 to clear).
pub const SD_STS: usize = 0x03;
/// Stream descriptor: link position in buffer (32 bits).
pub const SD_LPIB: usize = 0x04;
/// Stream descriptor: cyclic buffer length (32 bits).
pub const SD_CBL: usize = 0x08;
/// Stream descriptor: last valid BDL index (16 bits).
pub const SD_LVI: usize = 0x0c;
/// Stream descriptor: format (16 bits).
pub const SD_FMT: usize = 0x12;
/// Stream descriptor: BDL base, lower 32 bits.
pub const SD_BDPL: usize = 0x18;
/// Stream descriptor: BDL base, upper 32 bits.
pub const SD_BDPU: usize = 0x1c;

/// 12-bit verb: get parameter.
pub const VERB_GET_PARAMETER: u32 = 0xf00;
/// 12-bit verb: get connection list entries (payload: first index).
pub const VERB_GET_CONN_LIST: u32 = 0xf02;
/// 12-bit verb: get configuration default.
pub const VERB_GET_CONFIG_DEFAULT: u32 = 0xf1c;
/// 12-bit verb: connection select.
pub const VERB_SET_CONNECT_SEL: u32 = 0x701;
/// 12-bit verb: power state.
pub const VERB_SET_POWER_STATE: u32 = 0x705;
/// 12-bit verb: converter stream and channel.
pub const VERB_SET_CHANNEL_STREAMID: u32 = 0x706;
/// 12-bit verb: pin widget control.
pub const VERB_SET_PIN_WIDGET_CONTROL: u32 = 0x707;
/// 12-bit verb: EAPD/BTL enable.
pub const VERB_SET_EAPD: u32 = 0x70c;
/// 4-bit verb: converter format.
pub const VERB_SET_CONVERTER_FORMAT: u32 = 0x2;
/// 4-bit verb: amplifier gain/mute.
pub const VERB_SET_AMP_GAIN_MUTE: u32 = 0x3;

/// Parameter: subordinate node count.
pub const PARAM_NODE_COUNT: u32 = 0x04;
/// Parameter: function group type.
pub const PARAM_FUNCTION_TYPE: u32 = 0x05;
/// Parameter: audio widget capabilities.
pub const PARAM_WIDGET_CAP: u32 = 0x09;
/// Parameter: pin capabilities.
pub const PARAM_PIN_CAP: u32 = 0x0c;
/// Parameter: input amplifier capabilities.
pub const PARAM_AMP_IN_CAP: u32 = 0x0d;
/// Parameter: connection list length.
pub const PARAM_CONN_LIST_LEN: u32 = 0x0e;
/// Parameter: output amplifier capabilities.
pub const PARAM_AMP_OUT_CAP: u32 = 0x12;

/// Widget capability: input amplifier present.
pub const WCAP_IN_AMP: u32 = 1 << 1;
/// Widget capability: output amplifier present.
pub const WCAP_OUT_AMP: u32 = 1 << 2;
/// Widget capability: its own amplifier parameters (else the function group's).
pub const WCAP_AMP_OVERRIDE: u32 = 1 << 3;
/// Widget capability: connection list present.
pub const WCAP_CONN_LIST: u32 = 1 << 8;
/// Widget capability: power control.
pub const WCAP_POWER_CNTRL: u32 = 1 << 10;
/// Pin capability: EAPD.
pub const PIN_CAP_EAPD: u32 = 1 << 16;
/// Pin widget control: output enable.
pub const PIN_OUT_ENABLE: u32 = 1 << 6;
/// Pin widget control: input enable.
pub const PIN_IN_ENABLE: u32 = 1 << 5;
/// EAPD/BTL: EAPD on.
pub const EAPD_ENABLE: u32 = 1 << 1;
/// Amplifier gain/mute: output amplifier.
pub const AMP_SET_OUTPUT: u32 = 1 << 15;
/// Amplifier gain/mute: input amplifier.
pub const AMP_SET_INPUT: u32 = 1 << 14;
/// Amplifier gain/mute: left.
pub const AMP_SET_LEFT: u32 = 1 << 13;
/// Amplifier gain/mute: right.
pub const AMP_SET_RIGHT: u32 = 1 << 12;

/// The stream format word for `rate` Hz, `channels` (1..=16), 16 bits per sample; `None`
/// for rates the base/multiplier/divisor encoding cannot express.
pub fn stream_format(rate: u32, channels: u8) -> Option<u16> {
    if channels == 0 || channels > 16 {
        return None;
    }
    let (base, base_hz) = if rate % 11025 == 0 {
        (1u16, 44_100u32)
    } else {
        (0, 48_000)
    };
    for mult in 1..=4u32 {
        for div in 1..=8u32 {
            if base_hz * mult / div == rate && (base_hz * mult) % div == 0 {
                let bits = (base << 14)
                    | (((mult - 1) as u16) << 11)
                    | (((div - 1) as u16) << 8)
                    | (1 << 4) // 16 bits per sample
                    | u16::from(channels - 1);
                return Some(bits);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(stream_format(48_000, 2), Some(0x0011));
        assert_eq!(stream_format(44_100, 2), Some(0x4011));
        assert_eq!(stream_format(96_000, 2), Some(0x0811));
        assert_eq!(stream_format(8_000, 1), Some(0x0510));
        assert_eq!(stream_format(22_050, 1), Some(0x4110));
        assert_eq!(stream_format(12_345, 2), None);
        assert_eq!(stream_format(48_000, 0), None);
    }
}
