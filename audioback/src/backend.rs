//! The xenbus side of a virtual sound card (`vsnd`): the card the frontend's directory
//! describes, one ring and one event page per stream, and the per-pass work.
//!
//! - **Probe**: nothing to read from the backend directory (xl puts the whole card
//!   configuration in the frontend's); the device gets its counters.
//! - **InitWait**: `versions` = `2` (the sndif protocol version we speak).
//! - **Connect**: the frontend's optional `version` must be 2; the card is read from the
//!   frontend's directory ([`crate::card`], strictly and bounded); for every stream its
//!   `ring-ref`, `event-channel`, `evt-ring-ref`, `evt-event-channel` are mapped and bound.
//!   Any failure fails the device with the reason (the framework logs it, writes the
//!   `error` node and closes the device; other guests go on).
//! - **Poll**: every stream takes a bounded budget of requests and reports its position;
//!   then the counters to `/local/domain/<dd>/data/vsnd/<frontend-id>/<devid>/`.
//! - **Disconnect** drops the streams (their voices leave the mixer, grants are unmapped,
//!   ports closed) and publishes the final counters; **removed** deletes them.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use log::info;
use minios::data_area::CounterPublisher;
use minios::platform::{Access, Platform};
use minios::xenbus::{quote, BackendDevice, BackendDriver, DeviceCtx, DeviceError};
use minios::xenstore::Store;
use xen_abi::sndif::{
    XENSND_FIELD_BE_VERSIONS, XENSND_FIELD_EVT_CHNL, XENSND_FIELD_EVT_EVT_CHNL,
    XENSND_FIELD_EVT_RING_REF, XENSND_FIELD_FE_VERSION, XENSND_FIELD_RING_REF,
};

use crate::card::{read_card, Limits, StreamConfig};
use crate::events::EventRing;
use crate::mixer::SharedEngine;
use crate::policy::{Policy, POLICY_KEY};
use crate::stats::Stats;
use crate::stream::{label, ReqRing, Stream, StreamRings};
use crate::stream_status::StreamStatus;

/// Backend limits (configurable from the command line, see the README).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Most streams per card.
    pub max_streams: usize,
    /// Largest stream buffer in bytes.
    pub max_buffer: u32,
    /// Requests a stream takes per pass before yielding.
    pub budget: usize,
    /// Interval of the per-device counters in xenstore, in ms (0: never).
    pub stats_ms: u64,
    /// What a card whose backend directory has no `xdd-policy` may do.
    pub policy: Policy,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_streams: 16,
            max_buffer: 256 * 1024,
            budget: 32,
            stats_ms: 1000,
            policy: Policy::OPEN,
        }
    }
}

/// The `vsnd` backend driver.
pub struct SndDriver {
    engine: SharedEngine,
    options: Options,
}

impl SndDriver {
    /// A driver whose cards play through `engine`.
    pub fn new(engine: SharedEngine, options: Options) -> Self {
        Self { engine, options }
    }
}

impl<P: Platform> BackendDriver<P> for SndDriver {
    type Device = Vsnd<P>;

    fn kind(&self) -> &str {
        "vsnd"
    }

    fn probe(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<Vsnd<P>, DeviceError> {
        let label = format!("{}", ctx.id);
        let counters = CounterPublisher::for_device(ctx, self.options.stats_ms);
        Ok(Vsnd {
            options: self.options,
            engine: self.engine.clone(),
            stats: Stats::new(label),
            stream_status: StreamStatus::new(counters.dir(), self.options.stats_ms),
            counters,
            streams: Vec::new(),
            policy: None,
        })
    }
}

/// One virtual sound card.
pub struct Vsnd<P: Platform> {
    options: Options,
    engine: SharedEngine,
    stats: Stats,
    counters: CounterPublisher,
    stream_status: StreamStatus,
    streams: Vec<Stream<P>>,
    /// The card's `xdd-policy` as last read (to log it when it changes).
    policy: Option<Policy>,
}

impl<P: Platform> Vsnd<P> {
    /// The device's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The connected streams, in the frontend's order.
    pub fn streams(&self) -> &[Stream<P>] {
        &self.streams
    }

    fn connect_stream(
        &self,
        ctx: &mut DeviceCtx<'_, P>,
        cfg: StreamConfig,
    ) -> Result<Stream<P>, DeviceError> {
        let fe = ctx.id.frontend_id;
        let dir = cfg.dir.clone();
        let mut key = |k: &str| -> Result<u32, DeviceError> {
            ctx.read_frontend_uint(&format!("{dir}/{k}"), u32::MAX.into())
                .map(|v| v as u32)
        };
        let ring_ref = key(XENSND_FIELD_RING_REF)?;
        let ring_port = key(XENSND_FIELD_EVT_CHNL)?;
        let evt_ref = key(XENSND_FIELD_EVT_RING_REF)?;
        let evt_port = key(XENSND_FIELD_EVT_EVT_CHNL)?;
        let ctx_err = |what: &str, v: u32| format!("{dir}/{what} {v}");
        let mut maps = ctx
            .platform
            .map_batch(fe, &[ring_ref, evt_ref], Access::ReadWrite)
            .into_iter();
        let ring_page = maps
            .next()
            .unwrap_or(Err(minios::platform::GrantError::NotAttempted))
            .map_err(|e| DeviceError::from(e).context(&ctx_err("ring-ref", ring_ref)))?;
        let evt_page = maps
            .next()
            .unwrap_or(Err(minios::platform::GrantError::NotAttempted))
            .map_err(|e| DeviceError::from(e).context(&ctx_err("evt-ring-ref", evt_ref)))?;
        let ring: ReqRing<P::Mapping> = ReqRing::new(ring_page)
            .map_err(|e| DeviceError::from(e).context(&ctx_err("ring-ref", ring_ref)))?;
        let ring_channel = ctx
            .platform
            .bind_interdomain(fe, ring_port)
            .map_err(|e| DeviceError::from(e).context(&ctx_err("event-channel", ring_port)))?;
        let event_channel = ctx
            .platform
            .bind_interdomain(fe, evt_port)
            .map_err(|e| DeviceError::from(e).context(&ctx_err("evt-event-channel", evt_port)))?;
        let label = label(self.stats.label(), &cfg);
        Ok(Stream::new(
            cfg,
            label,
            fe,
            StreamRings {
                ring,
                ring_channel,
                events: EventRing::new(evt_page),
                event_channel,
            },
            self.engine.clone(),
        ))
    }
}

impl<P: Platform> BackendDevice<P> for Vsnd<P> {
    fn features(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<(), DeviceError> {
        ctx.publish(XENSND_FIELD_BE_VERSIONS, "2");
        Ok(())
    }

    fn connect(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<(), DeviceError> {
        self.streams.clear();
        self.policy = None;
        match ctx.read_frontend_opt(XENSND_FIELD_FE_VERSION)?.as_deref() {
            None | Some(b"2") => {}
            Some(other) => {
                return Err(DeviceError::protocol(format!(
                    "version {} not supported (only 2)",
                    quote(other)
                )))
            }
        }
        let limits = Limits {
            max_streams: self.options.max_streams,
            max_buffer: self.options.max_buffer,
        };
        let card = read_card(&mut |k| ctx.read_frontend_opt(k), &limits)?;
        let mut streams = Vec::new();
        for cfg in card.streams() {
            streams.push(self.connect_stream(ctx, cfg.clone())?);
        }
        let summary: Vec<String> = streams
            .iter()
            .map(|s: &Stream<P>| {
                let c = s.config();
                format!(
                    "{} {:?} {} Hz {}",
                    c.unique_id,
                    c.direction,
                    c.offer
                        .rates
                        .iter()
                        .map(|r| format!("{r}"))
                        .collect::<Vec<_>>()
                        .join("/"),
                    c.offer.format_names()
                )
            })
            .collect();
        info!(
            "{}: connected: card {:?}, {} stream(s): {}",
            self.stats.label(),
            card.short_name,
            streams.len(),
            summary.join("; ")
        );
        self.streams = streams;
        Ok(())
    }

    fn disconnect(&mut self, ctx: &mut DeviceCtx<'_, P>) {
        if !self.streams.is_empty() {
            self.streams.clear();
            info!("{}: {}", self.stats.label(), self.stats);
            self.counters.due_now();
            self.counters.publish_device(ctx, &self.stats.fields());
        }
        self.stream_status.clear(ctx.xs);
    }

    fn poll(&mut self, ctx: &mut DeviceCtx<'_, P>) -> Result<(), DeviceError> {
        let mut more = false;
        let budget = self.options.budget;
        let now = ctx.now_ns();
        let default = self.options.policy;
        let last = &mut self.policy;
        let (xs, id) = (&mut *ctx.xs, ctx.id);
        // Read at each OPEN that needs it: dom0 writes it right after creating the guest or
        // re-attaching the card, and again when it finds the guest running with an edited
        // appliance file. Logged when it changes.
        let mut policy = || -> Result<Policy, String> {
            let path = format!("{}/{POLICY_KEY}", id.backend_path);
            match xs.read_opt(&path) {
                Ok(None) => Ok(default),
                Ok(Some(raw)) => {
                    let text = core::str::from_utf8(&raw)
                        .map_err(|_| format!("{POLICY_KEY} {}: not text", quote(&raw)))?;
                    let p = Policy::parse(text)
                        .map_err(|why| format!("{POLICY_KEY} {}: {why}", quote(&raw)))?;
                    if *last != Some(p) {
                        info!("{id}: policy from {POLICY_KEY}: {p}");
                        *last = Some(p);
                    }
                    Ok(p)
                }
                Err(e) => Err(format!("cannot read {path}: {e}")),
            }
        };
        let mut hold_until: Option<u64> = None;
        for stream in &mut self.streams {
            more |= stream
                .poll(ctx.platform, &mut self.stats, budget, now, &mut policy)
                .map_err(|e| {
                    DeviceError::from(e).context(&format!("stream {}", stream.config().unique_id))
                })?;
            if let Some(t) = stream.hold_until() {
                hold_until = Some(hold_until.map_or(t, |h| h.min(t)));
            }
        }
        if let Some(t) = hold_until {
            ctx.wake_at(t);
        }
        if more {
            ctx.wake_now();
        }
        self.counters.publish_device(ctx, &self.stats.fields());
        let lines: Vec<String> = self.streams.iter().map(Stream::status).collect();
        self.stream_status.publish(ctx, &lines);
        Ok(())
    }

    fn removed(&mut self, ctx: &mut DeviceCtx<'_, P>) {
        self.counters.remove(ctx.xs);
    }
}
