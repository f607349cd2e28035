//! An Intel High Definition Audio controller passed through to the domain, and its first
//! codec's output path.
//!
//! [`Hda::open`] maps BAR 0, resets the controller (`GCTL.CRST` low then high, each wait
//! bounded), sets up the command rings (CORB 256 × 4 bytes and RIRB 256 × 8 bytes in one
//! DMA page, handed over by machine address) and finds the codecs that announced
//! themselves in `STATESTS`. Verbs go one at a time ([`Hda::verb`]): written to the CORB,
//! the answer awaited in the RIRB for at most [`VERB_TIMEOUT_NS`] (a codec that does not
//! answer is an error naming the verb, never a hang). Unsolicited responses are skipped.
//!
//! [`Hda::open_streams`] walks every codec's audio function group ([`graph`]) for an output
//! path (pin ← output converter) and, if asked, an input path (input converter ← pin),
//! powers each path up, unmutes its amplifiers at 0 dB, selects the connections, enables
//! the pin, sets the converter's format and stream tag, and programs the first output (and
//! first input) stream descriptor ([`stream::Stream`]).
//!
//! Interrupts are not used: the stream's position is polled (`SDnLPIB`) by whoever feeds
//! it, and the response ring by [`Hda::verb`]. Everything the device returns is bounded
//! before use (stream counts, node counts, connection lists, the position).

pub mod graph;
pub mod regs;
pub mod stream;

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ptr::{read_volatile, write_volatile};

use minios::pci::config::{read_bars, Bar};
use minios::pci::{PciAddress, PciError};

use crate::dma::{machine_addr, DmaPages};
use crate::mmio::Mmio;
use crate::pci::{enable_device, PciBus};
use graph::{Widget, WidgetType};
use regs::*;

/// How long one verb may take to be answered.
pub const VERB_TIMEOUT_NS: u64 = 100_000_000;
/// How long a reset edge (`CRST`, stream reset, ring DMA stop) may take.
pub const RESET_TIMEOUT_NS: u64 = 100_000_000;
/// Widgets read per function group at most.
const MAX_WIDGETS: u32 = 128;
/// Connections read per widget at most.
const MAX_CONNS: usize = 32;

/// Why the controller or its codec cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HdaError(pub String);

impl fmt::Display for HdaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<PciError> for HdaError {
    fn from(e: PciError) -> Self {
        HdaError(format!("{e}"))
    }
}

fn err(msg: impl Into<String>) -> HdaError {
    HdaError(msg.into())
}

/// Whether a PCI function with this class code is an HDA controller (class 04, subclass 03).
pub fn drives(class: u32) -> bool {
    (class >> 8) & 0xffff == 0x0403
}

/// Spins until `done()` or `timeout_ns` passed; whether it got done.
pub(crate) fn wait_until(timeout_ns: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = crate::time::now_ns().saturating_add(timeout_ns);
    loop {
        if done() {
            return true;
        }
        if crate::time::now_ns() >= deadline {
            return done();
        }
        core::hint::spin_loop();
    }
}

fn delay_ns(ns: u64) {
    let _ = wait_until(ns, || false);
}

/// An opened controller with its command rings running.
pub struct Hda {
    mmio: Mmio,
    /// CORB at offset 0, RIRB at [`RIRB_OFFSET`].
    rings: DmaPages,
    corb_wp: u16,
    rirb_rp: u16,
    /// Codec addresses that answered the reset (`STATESTS` bits).
    codecs: u16,
    input_streams: u8,
    output_streams: u8,
    /// The function, as dom0 names it (logs).
    pub host: PciAddress,
}

const RIRB_OFFSET: usize = 1024;
const RING_ENTRIES: u16 = 256;

impl Hda {
    /// Opens the HDA controller at `addr`: decoding and DMA on, BAR 0 mapped, controller
    /// reset, command rings running, codecs found.
    pub fn open(bus: &PciBus, addr: PciAddress) -> Result<Self, HdaError> {
        let host = bus
            .functions()
            .iter()
            .find(|f| f.addr == addr)
            .map(|f| f.host)
            .ok_or(PciError::NoSuchDevice(addr))?;
        enable_device(bus, addr)?;
        let cfg = bus.config(addr)?;
        let bars = read_bars(&cfg)?;
        let Some((_, Bar::Memory { base, size, .. })) = bars.iter().find(|(i, _)| *i == 0) else {
            return Err(err("BAR 0 is not a memory BAR"));
        };
        if *size < REGS_LEN as u64 {
            return Err(err(format!(
                "BAR 0 is {size} bytes, less than the {REGS_LEN} registers"
            )));
        }
        let mmio = Mmio::map(*base, REGS_LEN).map_err(|e| err(format!("mapping BAR 0: {e:?}")))?;
        let rings = DmaPages::alloc(1).map_err(|e| err(format!("command rings: {e:?}")))?;
        let mut hda = Self {
            mmio,
            rings,
            corb_wp: 0,
            rirb_rp: 0,
            codecs: 0,
            input_streams: 0,
            output_streams: 0,
            host,
        };
        hda.reset()?;
        hda.start_rings()?;
        Ok(hda)
    }

    /// Codec addresses that answered the reset.
    pub fn codecs(&self) -> u16 {
        self.codecs
    }

    fn reset(&mut self) -> Result<(), HdaError> {
        let m = &self.mmio;
        let gcap = m.read16(GCAP);
        self.output_streams = ((gcap >> 12) & 0xf) as u8;
        self.input_streams = ((gcap >> 8) & 0xf) as u8;
        let bidir = ((gcap >> 3) & 0x1f) as u8;
        if self.output_streams == 0 {
            return Err(err(format!("GCAP {gcap:#06x}: no output stream")));
        }
        if usize::from(self.input_streams + self.output_streams + bidir) * SD_LEN + SD_BASE
            > REGS_LEN
        {
            return Err(err(format!(
                "GCAP {gcap:#06x}: more streams than registers"
            )));
        }
        // Stop the ring DMA engines before the reset.
        m.write8(CORBCTL, 0);
        m.write8(RIRBCTL, 0);
        if !wait_until(RESET_TIMEOUT_NS, || {
            m.read8(CORBCTL) & CORBCTL_RUN == 0 && m.read8(RIRBCTL) & RIRBCTL_DMAEN == 0
        }) {
            return Err(err("the command ring DMA did not stop"));
        }
        m.write32(GCTL, m.read32(GCTL) & !GCTL_CRST);
        if !wait_until(RESET_TIMEOUT_NS, || m.read32(GCTL) & GCTL_CRST == 0) {
            return Err(err("controller reset: GCTL.CRST did not go low"));
        }
        delay_ns(100_000);
        m.write32(GCTL, m.read32(GCTL) | GCTL_CRST);
        if !wait_until(RESET_TIMEOUT_NS, || m.read32(GCTL) & GCTL_CRST != 0) {
            return Err(err("controller reset: GCTL.CRST did not come back high"));
        }
        // Codecs ask for an address within 521 us of the reset's end; give them 10 ms.
        wait_until(10_000_000, || m.read16(STATESTS) & 0x7fff != 0);
        self.codecs = m.read16(STATESTS) & 0x7fff;
        m.write16(STATESTS, self.codecs);
        if self.codecs == 0 {
            return Err(err("no codec answered the controller reset (STATESTS = 0)"));
        }
        // No interrupts: positions and responses are polled.
        m.write32(INTCTL, 0);
        Ok(())
    }

    fn rings_maddr(&self) -> Result<u64, HdaError> {
        machine_addr(self.rings.va()).ok_or_else(|| err("command rings have no machine address"))
    }

    fn start_rings(&mut self) -> Result<(), HdaError> {
        let base = self.rings_maddr()?;
        let m = &self.mmio;
        if m.read8(CORBSIZE) & CORBSIZE_CAP_256 == 0 || m.read8(RIRBSIZE) & CORBSIZE_CAP_256 == 0 {
            return Err(err("the controller has no 256-entry command rings"));
        }
        // CORB.
        m.write32(CORBLBASE, base as u32);
        m.write32(CORBUBASE, (base >> 32) as u32);
        m.write8(CORBSIZE, SIZE_256);
        m.write16(CORBRP, CORBRP_RST);
        // Some controllers never show the reset bit; go on either way.
        wait_until(1_000_000, || m.read16(CORBRP) & CORBRP_RST != 0);
        m.write16(CORBRP, 0);
        if !wait_until(RESET_TIMEOUT_NS, || m.read16(CORBRP) & CORBRP_RST == 0) {
            return Err(err("CORB read pointer reset did not clear"));
        }
        m.write16(CORBWP, 0);
        self.corb_wp = 0;
        // RIRB: one response per "interrupt" (the status bit, polled and cleared per verb;
        // a controller stops taking commands while it is set).
        let rirb = base + RIRB_OFFSET as u64;
        m.write32(RIRBLBASE, rirb as u32);
        m.write32(RIRBUBASE, (rirb >> 32) as u32);
        m.write8(RIRBSIZE, SIZE_256);
        m.write16(RIRBWP, RIRBWP_RST);
        m.write16(RINTCNT, 1);
        self.rirb_rp = 0;
        m.write8(RIRBSTS, RIRBSTS_INTFL | RIRBSTS_OIS);
        m.write8(RIRBCTL, RIRBCTL_DMAEN | RIRBCTL_INTCTL);
        m.write8(CORBCTL, CORBCTL_RUN);
        if !wait_until(RESET_TIMEOUT_NS, || m.read8(CORBCTL) & CORBCTL_RUN != 0) {
            return Err(err("the CORB did not start"));
        }
        Ok(())
    }

    fn corb_write(&mut self, slot: u16, value: u32) {
        let p = (self.rings.va() as usize + usize::from(slot % RING_ENTRIES) * 4) as *mut u32;
        // SAFETY: the CORB is the first KiB of our DMA page; `slot < 256` keeps it inside.
        unsafe { write_volatile(p, value) }
    }

    fn rirb_read(&self, slot: u16) -> (u32, u32) {
        let base = self.rings.va() as usize + RIRB_OFFSET + usize::from(slot % RING_ENTRIES) * 8;
        // SAFETY: the RIRB is bytes 1024..3072 of our DMA page; `slot < 256` keeps it inside.
        unsafe {
            (
                read_volatile(base as *const u32),
                read_volatile((base + 4) as *const u32),
            )
        }
    }

    /// Sends `verb` (12-bit verb and 8-bit payload, or 4-bit verb and 16-bit payload: the
    /// low 20 bits of a command) to node `nid` of codec `codec`, and returns its response.
    pub fn verb(&mut self, codec: u8, nid: u16, verb: u32) -> Result<u32, HdaError> {
        if codec > 14 || nid > 0x7f {
            return Err(err(format!(
                "verb {verb:#x} to codec {codec} node {nid}: bad address"
            )));
        }
        let cmd = (u32::from(codec) << 28) | (u32::from(nid) << 20) | (verb & 0xf_ffff);
        let wp = (self.corb_wp + 1) % RING_ENTRIES;
        self.corb_write(wp, cmd);
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        self.mmio.write16(CORBWP, wp);
        self.corb_wp = wp;
        let deadline = crate::time::now_ns().saturating_add(VERB_TIMEOUT_NS);
        loop {
            let hw = self.mmio.read16(RIRBWP) & 0xff;
            while self.rirb_rp != hw {
                self.rirb_rp = (self.rirb_rp + 1) % RING_ENTRIES;
                let (resp, ext) = self.rirb_read(self.rirb_rp);
                self.mmio.write8(RIRBSTS, RIRBSTS_INTFL | RIRBSTS_OIS);
                if ext & RIRB_EXT_UNSOL != 0 {
                    continue;
                }
                if (ext & 0xf) as u8 != codec {
                    log::warn!("hda: response {resp:#x} from codec {} ignored", ext & 0xf);
                    continue;
                }
                return Ok(resp);
            }
            if crate::time::now_ns() >= deadline {
                return Err(err(format!(
                    "codec {codec} node {nid:#x} did not answer verb {verb:#07x} within {} ms",
                    VERB_TIMEOUT_NS / 1_000_000
                )));
            }
            core::hint::spin_loop();
        }
    }

    fn param(&mut self, codec: u8, nid: u16, p: u32) -> Result<u32, HdaError> {
        self.verb(codec, nid, (VERB_GET_PARAMETER << 8) | p)
    }

    /// Every codec's first audio function group (codec address, node id).
    fn audio_functions(&mut self) -> Result<Vec<(u8, u16)>, HdaError> {
        let mut out = Vec::new();
        for codec in 0..15u8 {
            if self.codecs & (1 << codec) == 0 {
                continue;
            }
            let nodes = self.param(codec, 0, PARAM_NODE_COUNT)?;
            let (start, count) = (((nodes >> 16) & 0xff) as u16, (nodes & 0xff) as u16);
            for nid in start..start.saturating_add(count.min(16)) {
                if self.param(codec, nid, PARAM_FUNCTION_TYPE)? & 0xff == 1 {
                    out.push((codec, nid));
                    break;
                }
            }
        }
        if out.is_empty() {
            return Err(err(format!(
                "no codec (of {:#06x}) has an audio function group",
                self.codecs
            )));
        }
        Ok(out)
    }

    fn widgets(&mut self, codec: u8, afg: u16) -> Result<Vec<Widget>, HdaError> {
        let nodes = self.param(codec, afg, PARAM_NODE_COUNT)?;
        let (start, count) = ((nodes >> 16) & 0xff, (nodes & 0xff).min(MAX_WIDGETS));
        let mut out = Vec::new();
        for nid in start..(start + count).min(0x80) {
            let nid = nid as u16;
            let caps = self.param(codec, nid, PARAM_WIDGET_CAP)?;
            let kind = WidgetType::of(caps);
            let (mut pin_caps, mut config) = (0, 0);
            if kind == WidgetType::Pin {
                pin_caps = self.param(codec, nid, PARAM_PIN_CAP)?;
                config = self.verb(codec, nid, VERB_GET_CONFIG_DEFAULT << 8)?;
            }
            let mut conns = Vec::new();
            if caps & WCAP_CONN_LIST != 0 {
                let len = self.param(codec, nid, PARAM_CONN_LIST_LEN)?;
                let long = len & 0x80 != 0;
                let n = (len & 0x7f) as usize;
                let per = if long { 2 } else { 4 };
                let mut raw = Vec::new();
                let mut i = 0;
                while i < n.min(MAX_CONNS) {
                    let r = self.verb(codec, nid, (VERB_GET_CONN_LIST << 8) | i as u32)?;
                    for k in 0..per {
                        if i + k < n {
                            raw.push(if long {
                                (r >> (16 * k)) as u16
                            } else {
                                ((r >> (8 * k)) & 0xff) as u16
                            });
                        }
                    }
                    i += per;
                }
                conns = graph::expand_connections(&raw, long, MAX_CONNS);
            }
            out.push(Widget {
                nid,
                kind,
                caps,
                pin_caps,
                config,
                conns,
            });
        }
        Ok(out)
    }

    /// Sets the amplifier of `nid` (`output` or input `index`) to 0 dB, unmuted, both sides.
    fn unmute(
        &mut self,
        codec: u8,
        afg: u16,
        w: &Widget,
        output: bool,
        index: u8,
    ) -> Result<(), HdaError> {
        let (present, param) = if output {
            (WCAP_OUT_AMP, PARAM_AMP_OUT_CAP)
        } else {
            (WCAP_IN_AMP, PARAM_AMP_IN_CAP)
        };
        if w.caps & present == 0 {
            return Ok(());
        }
        let node = if w.caps & WCAP_AMP_OVERRIDE != 0 {
            w.nid
        } else {
            afg
        };
        let caps = self.param(codec, node, param)?;
        let gain = caps & 0x7f; // the offset: the step that is 0 dB
        let which = if output {
            AMP_SET_OUTPUT
        } else {
            AMP_SET_INPUT
        };
        let payload = which | AMP_SET_LEFT | AMP_SET_RIGHT | (u32::from(index) << 8) | gain;
        self.verb(codec, w.nid, (VERB_SET_AMP_GAIN_MUTE << 16) | payload)?;
        Ok(())
    }

    /// Sets up `path` (hops as [`graph`] returns them) of `codec` for `format` on stream
    /// tag `tag`: power, amplifiers at 0 dB, connections, the pin (`pin_ctl`), the
    /// converter (the path's first or last hop, `converter`).
    #[allow(clippy::too_many_arguments)]
    fn setup_path(
        &mut self,
        codec: u8,
        afg: u16,
        widgets: &[Widget],
        path: &[graph::Hop],
        converter: u16,
        pin_ctl: u32,
        format: u16,
        tag: u8,
    ) -> Result<(), HdaError> {
        for hop in path {
            let w = widgets
                .iter()
                .find(|w| w.nid == hop.nid)
                .cloned()
                .ok_or_else(|| err("path names an unknown widget"))?;
            if w.caps & WCAP_POWER_CNTRL != 0 {
                self.verb(codec, w.nid, VERB_SET_POWER_STATE << 8)?;
            }
            self.unmute(codec, afg, &w, true, 0)?;
            if let Some(index) = hop.index {
                self.unmute(codec, afg, &w, false, index)?;
                if w.kind != WidgetType::Mixer && w.conns.len() > 1 {
                    self.verb(codec, w.nid, (VERB_SET_CONNECT_SEL << 8) | u32::from(index))?;
                }
            }
            if w.kind == WidgetType::Pin {
                self.verb(codec, w.nid, (VERB_SET_PIN_WIDGET_CONTROL << 8) | pin_ctl)?;
                if pin_ctl == PIN_OUT_ENABLE && w.pin_caps & PIN_CAP_EAPD != 0 {
                    self.verb(codec, w.nid, (VERB_SET_EAPD << 8) | EAPD_ENABLE)?;
                }
            }
        }
        self.verb(
            codec,
            converter,
            (VERB_SET_CONVERTER_FORMAT << 16) | u32::from(format),
        )?;
        self.verb(
            codec,
            converter,
            (VERB_SET_CHANNEL_STREAMID << 8) | (u32::from(tag) << 4),
        )?;
        Ok(())
    }

    /// Sets up an output path (and with `input`, an input path: on any codec) for
    /// `rate` Hz, `channels`, signed 16-bit, and the first output (and first input) stream
    /// descriptor, each over a ring of `ring_bytes` bytes (a multiple of 128, at most
    /// 1 MiB) cut into BDL entries at every page and every `period_bytes`. No output path
    /// is an error; no input path (or no input stream) gives no input stream, logged.
    pub fn open_streams(
        mut self,
        rate: u32,
        channels: u8,
        ring_bytes: usize,
        period_bytes: usize,
        input: bool,
    ) -> Result<(stream::OutputStream, Option<stream::InputStream>), HdaError> {
        const OUT_TAG: u8 = 1;
        const IN_TAG: u8 = 2;
        let format = regs::stream_format(rate, channels)
            .ok_or_else(|| err(format!("{rate} Hz × {channels} channels is no HDA format")))?;
        let mut out_done = false;
        let mut in_done = !input || self.input_streams == 0;
        let mut widgets_seen = 0;
        for (codec, afg) in self.audio_functions()? {
            if out_done && in_done {
                break;
            }
            self.verb(codec, afg, VERB_SET_POWER_STATE << 8)?;
            let widgets = self.widgets(codec, afg)?;
            widgets_seen += widgets.len();
            if !out_done {
                if let Some(path) = graph::output_path(&widgets) {
                    let dac = path.last().map(|h| h.nid).unwrap_or(0);
                    self.setup_path(
                        codec,
                        afg,
                        &widgets,
                        &path,
                        dac,
                        PIN_OUT_ENABLE,
                        format,
                        OUT_TAG,
                    )?;
                    let nids: Vec<u16> = path.iter().map(|h| h.nid).collect();
                    log::info!(
                        "hda {}: codec {codec}, output path {nids:x?} (converter {dac:#x}), format {format:#06x}",
                        self.host
                    );
                    out_done = true;
                }
            }
            if !in_done {
                if let Some(path) = graph::input_path(&widgets) {
                    let adc = path.first().map(|h| h.nid).unwrap_or(0);
                    self.setup_path(
                        codec,
                        afg,
                        &widgets,
                        &path,
                        adc,
                        PIN_IN_ENABLE,
                        format,
                        IN_TAG,
                    )?;
                    let nids: Vec<u16> = path.iter().map(|h| h.nid).collect();
                    log::info!(
                        "hda {}: codec {codec}, input path {nids:x?} (converter {adc:#x}), format {format:#06x}",
                        self.host
                    );
                    in_done = true;
                }
            }
        }
        if !out_done {
            return Err(err(format!(
                "no path from an output pin to an output converter among {widgets_seen} widgets"
            )));
        }
        let record = input && in_done && self.input_streams > 0;
        if input && !record {
            log::info!("hda {}: no input path or stream: no recording", self.host);
        }
        let out_sd = SD_BASE + usize::from(self.input_streams) * SD_LEN;
        let hda = Rc::new(self);
        let out = stream::Stream::new(
            hda.clone(),
            out_sd,
            OUT_TAG,
            format,
            ring_bytes,
            period_bytes,
        )?;
        let inp = if record {
            Some(stream::Stream::new(
                hda,
                SD_BASE,
                IN_TAG,
                format,
                ring_bytes,
                period_bytes,
            )?)
        } else {
            None
        };
        Ok((out, inp))
    }

    pub(crate) fn mmio(&self) -> &Mmio {
        &self.mmio
    }
}
