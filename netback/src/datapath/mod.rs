//! The data path: every connected vif's rings, the uplink and the switch, driven by one task.
//!
//! Each executor pass ([`Datapath::poll`]):
//! 1. **TX** (`datapath/tx.rs`, the TX pass): take up to `tx_batch` packets from each vif's TX ring (round robin,
//!    so an event storm or a flood from one guest cannot starve another) and validate their
//!    slot chains; copy the first bytes of every packet with one batch of grant copies and
//!    let the switch decide where each goes. A packet for one other vif that takes it as it
//!    is, with buffers posted and nothing queued ahead of it, is copied **straight from the
//!    sender's pages into the receiver's buffers** (one grant copy per slot, no bounce
//!    through our memory); every other packet is copied into our memory and handed to the
//!    switch, which adapts and queues it. One more batch of grant copies does both, then
//!    every slot is answered. A packet for a port whose queue is full waits instead (and so
//!    does the rest of its sender's ring): back-pressure, bounded in time (`tx.rs`).
//! 2. **Uplink**: take what dom0 sent us, send what the switch queued for it.
//! 3. **RX** (`rx.rs`, also before TX, for what earlier passes left queued): for each vif
//!    with queued packets and enough posted buffers, fill the
//!    buffers with one batch of grant copies (multi-slot packets, a GSO extra-info slot where
//!    the frontend takes GSO) and answer them in order. A vif short of buffers asks to be
//!    notified when the frontend has posted enough (`req_event`), and its queue — bounded by
//!    the switch — absorbs or drops what arrives meanwhile.
//! 4. Notify each frontend at most once per ring per pass, and only if it asked
//!    (`rsp_event`).
//!
//! A frontend that breaks its ring (impossible indices, a slot chain that never ends) is not
//! served any more; its vif's [`BackendDevice::poll`](minios::xenbus::BackendDevice::poll)
//! reports the reason and the framework disconnects it. Malformed packets only cost their
//! sender error responses and `tx-errors`.

mod head;
mod kept;
mod layout;
mod rx;
mod storm;
mod tx;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use log::info;
use minios::error_log::ErrorLog;
use minios::executor::{Ctx, Task};
use minios::platform::{DomId, Platform};

use crate::netring::NetBackRing;
use crate::switch::{PortConfig, PortCounters, PortId, Switch};
use crate::uplink::{UplinkCounters, UplinkPort};
use alloc::boxed::Box;

pub use kept::{KeptMemory, KEEP_BYTES_MAX, KEEP_PACKETS};
pub use rx::RX_PASS_SLOTS;
pub use tx::{HEAD_LEN, PARK_MAX_NS};

/// Bytes of packet data taken from all TX rings in one pass (bounds the memory in flight).
pub const TX_PASS_BYTES: usize = 1 << 20;

/// A connected vif's rings and event channels, as `connect` set them up.
pub struct VifConn<P: Platform> {
    /// The frontend domain (owner of every grant in the rings).
    pub frontend: DomId,
    /// The TX ring (requests: packets the guest sends).
    pub tx: NetBackRing<P::Mapping>,
    /// The RX ring (requests: buffers the guest posts).
    pub rx: NetBackRing<P::Mapping>,
    /// The TX (or only) event channel.
    pub tx_evt: P::Channel,
    /// The RX event channel with `feature-split-event-channels`.
    pub rx_evt: Option<P::Channel>,
    /// The frontend takes multi-slot packets (`feature-sg`).
    pub sg: bool,
}

struct Vif<P: Platform> {
    conn: VifConn<P>,
    fatal: Option<String>,
    /// Malformed TX packets: the first logged, all counted in `tx-errors`.
    errors: ErrorLog<1>,
    notify_tx: bool,
    notify_rx: bool,
    /// Its ports held back during an event storm.
    events: storm::VifEvents,
}

impl<P: Platform> Vif<P> {
    fn fail(&mut self, why: String) {
        if self.fatal.is_none() {
            self.fatal = Some(why);
        }
    }
}

/// Counters of the data path itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatapathStats {
    /// Passes (polls of the data path).
    pub passes: u64,
    /// Passes that did ring work.
    pub busy_passes: u64,
    /// Packets taken from TX rings (well-formed or not).
    pub tx_packets: u64,
    /// Grant copy operations issued.
    pub copy_ops: u64,
    /// Batches of grant copies.
    pub copy_batches: u64,
    /// Packets copied straight from one guest to another.
    pub direct: u64,
    /// Packets copied into our memory and handed to the switch.
    pub switched: u64,
    /// ... of which because their receiver had too few buffers posted.
    pub local_no_buffers: u64,
    /// ... of which because packets for their receiver were queued ahead of them.
    pub local_behind_queue: u64,
    /// Packets that waited for room in their receiver's queue (back-pressure).
    pub parked: u64,
    /// ... of which were dropped after waiting too long (their receiver counts as stalled).
    pub park_timeouts: u64,
    /// Notifications sent to frontends.
    pub notifications: u64,
    /// Nanoseconds spent in data path passes (hypercalls included).
    pub poll_ns: u64,
    /// Nanoseconds spent in grant copy batches.
    pub copy_ns: u64,
    /// Nanoseconds spent notifying frontends.
    pub notify_ns: u64,
    /// Failed notifications (the frontend's port is gone).
    pub notify_failures: u64,
    /// Hypercalls that sent a pass's notifications (one multicall each on Xen).
    pub notify_calls: u64,
    /// Times a vif's event channel was held back for an event storm.
    pub event_holds: u64,
}

/// The data path (see the module documentation). Shared as `Rc<RefCell<Datapath<P>>>` between
/// the vif devices (attach/detach), the uplink and local-interface tasks, and the executor,
/// which polls it as a task.
pub struct Datapath<P: Platform> {
    /// The switch.
    pub switch: Switch,
    vifs: BTreeMap<PortId, Vif<P>>,
    uplink: Option<(PortId, Box<dyn UplinkPort>)>,
    tx_batch: usize,
    next_first: PortId,
    stats: DatapathStats,
    /// Packets whose heads were copied at the end of the last pass, to decide in the next
    /// (its room kept, `kept.rs`).
    carry: Vec<tx::TxPending>,
    /// Packets waiting for room in their receiver's queue, oldest first.
    parked: Vec<tx::TxPending>,
    /// Receivers that let a packet wait too long: not waited for until their queue drains.
    stalled: BTreeSet<PortId>,
    /// Kept between passes, empty (`kept.rs`): the TX pass's second packet vector ...
    tx_spare: Vec<tx::TxPending>,
    /// ... its per-packet flags ...
    tx_ok: Vec<bool>,
    /// ... and the order of the vifs.
    order: Vec<PortId>,
    /// Times one of those (or `carry`) had to grow during a pass.
    kept_grows: u64,
}

impl<P: Platform> Datapath<P> {
    /// A data path around `switch`, taking at most `tx_batch` packets per vif per pass.
    pub fn new(switch: Switch, tx_batch: usize) -> Self {
        Self {
            switch,
            vifs: BTreeMap::new(),
            uplink: None,
            tx_batch: tx_batch.max(1),
            next_first: 0,
            stats: DatapathStats::default(),
            carry: Vec::new(),
            parked: Vec::new(),
            stalled: BTreeSet::new(),
            tx_spare: Vec::new(),
            tx_ok: Vec::new(),
            order: Vec::new(),
            kept_grows: 0,
        }
    }

    /// Memory kept between passes to spare the next pass allocations (see `kept.rs`).
    pub fn kept_memory(&self) -> KeptMemory {
        KeptMemory {
            bytes: kept::bytes(&self.carry)
                + kept::bytes(&self.tx_spare)
                + kept::bytes(&self.tx_ok)
                + kept::bytes(&self.order),
            grows: self.kept_grows,
        }
    }

    /// Counters of the data path.
    pub fn stats(&self) -> DatapathStats {
        self.stats
    }

    /// Puts a connected vif on the switch.
    pub fn attach_vif(&mut self, conn: VifConn<P>, cfg: PortConfig) -> PortId {
        let errors = ErrorLog::new(
            module_path!(),
            cfg.name.clone(),
            ["tx error"],
            "in tx-errors",
        );
        let id = self.switch.add_port(cfg);
        info!("{}: on the switch as port {id}", self.switch.describe(id));
        self.vifs.insert(
            id,
            Vif {
                conn,
                fatal: None,
                errors,
                notify_tx: false,
                notify_rx: false,
                events: storm::VifEvents::default(),
            },
        );
        id
    }

    /// Takes a vif off the switch (dropping its rings unmaps them and closes its ports);
    /// returns its counters.
    pub fn detach_vif(&mut self, id: PortId) -> Option<PortCounters> {
        self.vifs.remove(&id);
        self.switch.remove_port(id)
    }

    /// Whether a vif is attached.
    pub fn has_vif(&self, id: PortId) -> bool {
        self.vifs.contains_key(&id)
    }

    /// Why a vif's rings cannot be used any more, if they cannot (taken once).
    pub fn take_fatal(&mut self, id: PortId) -> Option<String> {
        self.vifs.get_mut(&id)?.fatal.take()
    }

    /// Puts the uplink on the switch.
    pub fn attach_uplink(&mut self, conn: Box<dyn UplinkPort>, cfg: PortConfig) -> PortId {
        self.detach_uplink();
        let id = self.switch.add_port(cfg);
        info!("{}: on the switch as port {id}", self.switch.describe(id));
        self.uplink = Some((id, conn));
        id
    }

    /// Takes the uplink off the switch; returns its counters.
    pub fn detach_uplink(&mut self) -> Option<PortCounters> {
        let (id, _conn) = self.uplink.take()?;
        self.switch.remove_port(id)
    }

    /// The connected uplink's own counters (zero without one).
    pub fn uplink_counters(&self) -> UplinkCounters {
        self.uplink
            .as_ref()
            .map_or_else(UplinkCounters::default, |(_, up)| up.counters())
    }

    /// The uplink's port, if connected.
    pub fn uplink_port(&self) -> Option<PortId> {
        self.uplink.as_ref().map(|(id, _)| *id)
    }

    /// Ports in the order to serve them this pass (rotating, for fairness), in the kept
    /// vector (`self.order`, to give back).
    fn vif_order(&mut self) -> Vec<PortId> {
        let mut order = core::mem::take(&mut self.order);
        order.clear();
        kept::extend(&mut order, self.vifs.keys().copied(), &mut self.kept_grows);
        if let Some(pos) = order.iter().position(|&p| p >= self.next_first) {
            order.rotate_left(pos);
        }
        self.next_first = order.first().map_or(0, |&p| p + 1);
        order
    }

    /// Performs a batch of grant copies (one hypercall per 64 on Xen), counted and timed.
    fn run_copies(&mut self, platform: &P, ops: &mut [minios::platform::CopyOp<'_>]) {
        if ops.is_empty() {
            return;
        }
        let start = platform.now_ns();
        platform.copy(ops);
        self.stats.copy_ns += platform.now_ns().saturating_sub(start);
        self.stats.copy_ops += ops.len() as u64;
        self.stats.copy_batches += 1;
    }

    /// Publishes the responses of every ring that got some and notifies where asked — once
    /// per channel: a frontend with one event channel for both rings gets one notification.
    /// All notifications of a pass go to the platform together (one multicall on Xen).
    fn push_and_notify(&mut self, platform: &P) {
        let mut wanted: Vec<(PortId, bool, bool)> = Vec::new();
        for (&id, vif) in self.vifs.iter_mut() {
            let tx = core::mem::take(&mut vif.notify_tx) && vif.conn.tx.push();
            let rx = core::mem::take(&mut vif.notify_rx) && vif.conn.rx.push();
            if tx || rx {
                wanted.push((id, tx, rx));
            }
        }
        if wanted.is_empty() {
            return;
        }
        let mut channels: Vec<&P::Channel> = Vec::with_capacity(wanted.len() * 2);
        for (id, tx, rx) in wanted {
            let Some(vif) = self.vifs.get(&id) else {
                continue;
            };
            match &vif.conn.rx_evt {
                Some(rx_evt) => {
                    if tx {
                        channels.push(&vif.conn.tx_evt);
                    }
                    if rx {
                        channels.push(rx_evt);
                    }
                }
                None => channels.push(&vif.conn.tx_evt),
            }
        }
        let failed = platform.notify_many(&channels);
        self.stats.notify_calls += 1;
        // A failure means the frontend's domain is going away; the xenbus side tears the vif
        // down.
        self.stats.notifications += (channels.len() - failed) as u64;
        self.stats.notify_failures += failed as u64;
    }
}

impl<P: Platform> Datapath<P> {
    /// Accounts every vif's notifications of this pass (event storms, `storm.rs`); returns
    /// when to poll again to end the earliest hold.
    fn account_events(&mut self, now: u64) -> Option<u64> {
        let mut wake: Option<u64> = None;
        for (&port, vif) in self.vifs.iter_mut() {
            if vif.fatal.is_some() {
                continue;
            }
            let c = &vif.conn;
            let (until, started) =
                vif.events
                    .account(&c.tx_evt, c.rx_evt.as_ref(), &c.tx, &c.rx, now);
            if started {
                self.stats.event_holds += 1;
                let label = self.switch.describe(port);
                minios::event_throttle::count_hold(&mut vif.events.holds, &label);
            }
            if let Some(t) = until {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        }
        wake
    }

    /// Whether a parked packet's receiver has room now (or is gone): worth another pass.
    fn parked_can_move(&self) -> bool {
        self.parked.iter().any(|p| {
            p.waits_for().is_some_and(|to| {
                self.switch.has_room(to, 1, p.len()) || self.switch.caps(to).is_none()
            })
        })
    }
}

impl<P: Platform> Task<P> for Datapath<P> {
    fn poll(&mut self, cx: &mut Ctx<'_, P>) {
        let now = cx.now_ns();
        let platform = cx.platform;
        self.stats.passes += 1;
        let before = (self.stats.copy_batches, self.stats.notifications);
        // Drain what is still queued from earlier passes first: the receivers may have posted
        // buffers since, and an empty queue lets this pass's packets go direct.
        let mut more = self.rx_pass(platform);
        more |= self.tx_pass(platform, now);
        if let Some((port, up)) = self.uplink.as_mut() {
            more |= up.poll(&mut self.switch, *port, now);
        }
        more |= self.rx_pass(platform);
        if let Some((port, up)) = self.uplink.as_mut() {
            more |= up.poll(&mut self.switch, *port, now);
            // Deliver what that poll took in: its interrupt is taken, so nothing else would
            // wake us for it (a ping's answer waited for the next ping).
            more |= self.rx_pass(platform);
        }
        let t = platform.now_ns();
        self.push_and_notify(platform);
        if let Some(why) = self.uplink.as_ref().and_then(|(_, up)| up.broken()) {
            log::warn!("uplink: dropped after a failure: {why}");
            self.detach_uplink();
        }
        let end = platform.now_ns();
        self.stats.notify_ns += end.saturating_sub(t);
        self.stats.poll_ns += end.saturating_sub(now);
        if before != (self.stats.copy_batches, self.stats.notifications) {
            self.stats.busy_passes += 1;
        }
        if let Some(t) = self.account_events(now) {
            cx.wake_at(t);
        }
        if more || self.vifs.values().any(|v| v.fatal.is_some()) || self.parked_can_move() {
            cx.wake_now();
        } else if let Some(t) = self.parked.iter().filter_map(|p| p.park_deadline()).min() {
            cx.wake_at(t);
        }
    }

    fn stop(&mut self, _cx: &mut Ctx<'_, P>) {
        self.detach_uplink();
    }
}
