//! sndif backend: PV sound for stock `snd_xen_front` guests from a Rust unikernel that owns
//! the sound device and mixes the guests that play through it.
//!
//! Host-testable library; the unikernel (`src/main.rs`) only wires it to the runtime.
//! Read top-down:
//!
//! - [`wire`]: sndif requests as validated values (copied once, responses emitted whole).
//! - [`card`]: the card, PCMs and streams the frontend's xenstore directory describes.
//! - [`params`]: what a stream offers; `HW_PARAM_QUERY` and `OPEN` checks.
//! - [`buffer`]: a stream's shared buffer behind its page-directory chain.
//! - [`events`]: the event page (`CUR_POS`, consecutive ids).
//! - [`stream`]: one stream's requests; [`backend`]: the xenbus device (`vsnd`).
//! - [`format`], [`mixer`]: sample formats, conversion, resampling, volume, the mix.
//! - [`device`]: the sound device as traits ([`device::PcmSink`], [`device::PcmSource`])
//!   and the clock-paced device (the `null` device, and the host tests' recording card).
//! - [`config`]: the command line; [`stats`]: per-device counters; [`status`]: the mixer's
//!   counters under `data/status/`; [`snddd`]: the wiring.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod backend;
pub mod buffer;
pub mod card;
pub mod config;
pub mod device;
pub mod events;
pub mod format;
pub mod mixer;
pub mod params;
pub mod policy;
pub mod snddd;
pub mod stats;
pub mod status;
pub mod stream;
pub mod stream_status;
pub mod wire;

pub use backend::{Options, SndDriver, Vsnd};
