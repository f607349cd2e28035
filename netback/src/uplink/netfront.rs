//! The netfront uplink: a netfront of our own, connecting the switch to dom0's bridge (or to another
//! network driver domain) through the vif the toolstack gave the driver domain
//! (`vif=['bridge=xenbr0']` in its xl.cfg).
//!
//! Deliberately plain: one page per frame (no `feature-sg`, no GSO: packets bound for the
//! uplink are segmented and checksummed by the switch), `feature-no-csum-offload=1` so the
//! backend hands us complete checksums, a fixed set of granted pages for RX buffers and for
//! TX data. [`UplinkTask`] runs the xenbus handshake without blocking the executor and
//! attaches the connection ([`UplinkConn`]) to the data path, which drives its rings.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};
use core::cell::RefCell;

use log::{info, warn};
use minios::executor::{Ctx, Task};
use minios::platform::{Access, DomId, EventChannel, GrantedPage, Platform, SharedMem};
use minios::ring::{FrontChannel, RingAccessError};
use minios::xenbus::{Frontend, XenbusState};
use minios::xenstore::{Event, Store, XsError};
use xen_abi::netif::{
    NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse, NETIF_RSP_OKAY,
    NETTXF_DATA_VALIDATED,
};
use xen_abi::XEN_PAGE_SIZE;

use crate::config::UplinkMode;
use crate::datapath::Datapath;
use crate::frame::{parse_mac, ETH_HLEN};
use crate::packet::{Caps, Csum, Packet};
use crate::switch::{Policy, PortConfig, PortId, Switch};
use crate::wire::RxResponseRepr;

/// Frames taken from the uplink's RX ring per poll.
const RX_PER_POLL: usize = 128;

/// xenstore keys a frontend publishes (relative to its directory).
pub type Keys = Vec<(&'static str, String)>;

/// A connected uplink: our rings, buffers and event channel.
pub struct UplinkConn<P: Platform> {
    tx: FrontChannel<P::Granted, NetifTxRequest, NetifTxResponse>,
    rx: FrontChannel<P::Granted, NetifRxRequest, NetifRxResponse>,
    evt: P::Channel,
    rx_bufs: Vec<P::Granted>,
    tx_bufs: Vec<P::Granted>,
    tx_free: Vec<u16>,
    max_frame: usize,
    broken: Option<String>,
    /// Responses the backend got wrong (bad ids, statuses).
    pub bad_responses: u64,
}

impl<P: Platform> UplinkConn<P> {
    /// Allocates and grants rings and `buffers` RX and TX pages to `backend`, binds an
    /// event channel; returns the connection and the keys to publish.
    pub fn new(
        platform: &P,
        backend: DomId,
        buffers: usize,
        mtu: usize,
    ) -> Result<(Self, Keys), String> {
        let grant = |access| {
            platform
                .grant_page(backend, access)
                .map_err(|e| format!("granting a page to domain {backend}: {e}"))
        };
        let tx_page = grant(Access::ReadWrite)?;
        let rx_page = grant(Access::ReadWrite)?;
        let keys = vec![
            ("tx-ring-ref", format!("{}", tx_page.gref())),
            ("rx-ring-ref", format!("{}", rx_page.gref())),
        ];
        let tx = FrontChannel::new(tx_page).map_err(|e| format!("tx ring: {e}"))?;
        let mut rx: FrontChannel<_, NetifRxRequest, NetifRxResponse> =
            FrontChannel::new(rx_page).map_err(|e| format!("rx ring: {e}"))?;
        let buffers = buffers.min(rx.indices().size() as usize);
        let mut rx_bufs = Vec::with_capacity(buffers);
        let mut tx_bufs = Vec::with_capacity(buffers);
        for _ in 0..buffers {
            rx_bufs.push(grant(Access::ReadWrite)?);
            tx_bufs.push(grant(Access::ReadOnly)?);
        }
        for (id, page) in rx_bufs.iter().enumerate() {
            let req = NetifRxRequest {
                id: id as u16,
                pad: 0,
                gref: page.gref(),
            };
            rx.put_request(&req).map_err(|e| format!("rx ring: {e}"))?;
        }
        rx.push();
        let evt = platform
            .alloc_unbound(backend)
            .map_err(|e| format!("event channel for domain {backend}: {e}"))?;
        let mut keys = keys;
        keys.push(("event-channel", format!("{}", evt.port())));
        for (k, v) in [
            ("request-rx-copy", "1"),
            ("feature-rx-notify", "1"),
            ("feature-sg", "0"),
            ("feature-gso-tcpv4", "0"),
            ("feature-gso-tcpv6", "0"),
            ("feature-ipv6-csum-offload", "0"),
            ("feature-no-csum-offload", "1"),
        ] {
            keys.push((k, String::from(v)));
        }
        let conn = Self {
            tx,
            rx,
            evt,
            rx_bufs,
            tx_free: (0..buffers as u16).rev().collect(),
            tx_bufs,
            max_frame: (mtu + ETH_HLEN).min(XEN_PAGE_SIZE),
            broken: None,
            bad_responses: 0,
        };
        Ok((conn, keys))
    }

    /// What the uplink port accepts.
    pub fn caps(&self) -> Caps {
        Caps {
            max_frame: self.max_frame,
            ..Caps::plain(0)
        }
    }

    /// Moves frames both ways; returns whether work is left for another pass.
    fn poll_rings(&mut self, switch: &mut Switch, port: PortId, now: u64) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let _ = self.evt.take_pending();
        match self.poll_inner(switch, port, now) {
            Ok(more) => more,
            Err(e) => {
                warn!("uplink: ring failure, uplink stopped: {e}");
                self.broken = Some(format!("{e}"));
                false
            }
        }
    }

    fn poll_inner(
        &mut self,
        switch: &mut Switch,
        port: PortId,
        now: u64,
    ) -> Result<bool, RingAccessError> {
        let mut notify = false;
        // Finished transmissions free their buffers.
        while let Some(rsp) = self.tx.next_response()? {
            let id = usize::from(rsp.id);
            if id < self.tx_bufs.len() && !self.tx_free.contains(&rsp.id) {
                self.tx_free.push(rsp.id);
            } else {
                self.bad_responses += 1;
            }
            if rsp.status != NETIF_RSP_OKAY {
                if let Some(c) = switch.counters_mut(port) {
                    c.out_errors += 1;
                }
            }
        }
        // Received frames go to the switch; their buffers are posted again.
        let mut more = false;
        let mut taken = 0;
        while let Some(raw) = self.rx.next_response()? {
            let Some(buf) = self.rx_bufs.get(usize::from(raw.id)) else {
                self.bad_responses += 1;
                continue;
            };
            match RxResponseRepr::parse(&raw) {
                Ok(rsp) if rsp.status > 0 && !rsp.more_data && !rsp.extra_info => {
                    let mut data = vec![0u8; rsp.status as usize];
                    if buf.read(usize::from(rsp.offset), &mut data).is_ok() {
                        let mut pkt = Packet::new(data);
                        pkt.csum = if rsp.csum.blank {
                            Csum::Partial
                        } else if rsp.csum.validated {
                            Csum::Validated
                        } else {
                            Csum::Unverified
                        };
                        if pkt.validate_offloads().is_ok() {
                            switch.ingress(port, pkt, now);
                        } else if let Some(c) = switch.counters_mut(port) {
                            c.in_errors += 1;
                        }
                    }
                }
                Ok(_) | Err(_) => {
                    if let Some(c) = switch.counters_mut(port) {
                        c.in_errors += 1;
                    }
                }
            }
            let req = NetifRxRequest {
                id: raw.id,
                pad: 0,
                gref: buf.gref(),
            };
            self.rx.put_request(&req)?;
            taken += 1;
            if taken >= RX_PER_POLL {
                more = true;
                break;
            }
        }
        notify |= self.rx.push();
        // Queued frames go out while TX buffers last.
        while let Some(id) = self.tx_free.pop() {
            let Some(pkt) = switch.pop(port) else {
                self.tx_free.push(id);
                break;
            };
            let page = &self.tx_bufs[usize::from(id)];
            if pkt.len() > XEN_PAGE_SIZE || page.write(0, &pkt.data).is_err() {
                self.tx_free.push(id);
                if let Some(c) = switch.counters_mut(port) {
                    c.out_dropped += 1;
                }
                continue;
            }
            let flags = if pkt.csum == Csum::Validated {
                NETTXF_DATA_VALIDATED
            } else {
                0
            };
            let req = NetifTxRequest {
                gref: page.gref(),
                offset: 0,
                flags,
                id,
                size: pkt.len() as u16,
            };
            self.tx.put_request(&req)?;
            if let Some(c) = switch.counters_mut(port) {
                c.out_packets += 1;
                c.out_bytes += pkt.len() as u64;
            }
        }
        notify |= self.tx.push();
        if notify {
            let _ = self.evt.notify();
        }
        // Re-arm both response events; anything that slipped in is handled next pass.
        more |= self.rx.final_check()?;
        more |= self.tx.final_check()? && switch.queued(port) > 0;
        Ok(more)
    }
}

impl<P: Platform> super::UplinkPort for UplinkConn<P> {
    fn poll(&mut self, switch: &mut Switch, port: PortId, now: u64) -> bool {
        self.poll_rings(switch, port, now)
    }

    /// Why the rings stopped working, if they did.
    fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }
}

/// Phases of the uplink's handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No uplink configured or available.
    Off,
    /// Waiting for the backend to publish its features (InitWait).
    WaitBackend,
    /// Rings attached to the data path.
    Connected,
    /// Given up (logged once); waits for the backend to start over.
    Failed,
}

/// The uplink's xenbus side: finds our vif frontend, connects when dom0's backend is ready,
/// reconnects after the backend restarts.
pub struct UplinkTask<P: Platform + 'static> {
    dp: Rc<RefCell<Datapath<P>>>,
    mode: UplinkMode,
    mtu: usize,
    buffers: usize,
    fe: Option<Frontend>,
    phase: Phase,
    /// The state we last wrote (the toolstack creates the device Initialising).
    own: XenbusState,
}

impl<P: Platform + 'static> UplinkTask<P> {
    /// An uplink task for the data path.
    pub fn new(dp: Rc<RefCell<Datapath<P>>>, mode: UplinkMode, mtu: usize, buffers: usize) -> Self {
        Self {
            dp,
            mode,
            mtu,
            buffers,
            fe: None,
            phase: Phase::Off,
            own: XenbusState::Initialising,
        }
    }

    /// Whether the uplink is connected.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    fn step(&mut self, cx: &mut Ctx<'_, P>) {
        let Some(fe) = self.fe.clone() else { return };
        let state = match fe.backend_state(cx.xs) {
            Ok(s) => s,
            Err(e) => {
                warn!("uplink: {e}");
                return;
            }
        };
        use XenbusState::*;
        match (self.phase, state) {
            (Phase::WaitBackend, InitWait | Connected) if self.own == Initialising => {
                match self.connect(cx, &fe) {
                    Ok(()) => {
                        self.phase = Phase::Connected;
                        self.own = Connected;
                    }
                    Err(e) => {
                        warn!("uplink: cannot connect to {}: {e}", fe.backend_path);
                        self.phase = Phase::Failed;
                        self.own = Closed;
                        let _ = fe.set_state(cx.xs, Closed);
                    }
                }
            }
            (Phase::Connected, Closing | Closed | Unknown) => {
                if let Some(c) = self.dp.borrow_mut().detach_uplink() {
                    info!("uplink: backend {}: disconnected ({c})", state.name());
                }
                self.own = if state == Closing { Closing } else { Closed };
                let _ = fe.set_state(cx.xs, self.own);
                self.phase = Phase::WaitBackend;
            }
            (Phase::Failed | Phase::WaitBackend, Closed | Initialising)
                if self.own != Initialising && fe.set_state(cx.xs, Initialising).is_ok() =>
            {
                // The backend starts over: so do we.
                self.own = Initialising;
                self.phase = Phase::WaitBackend;
            }
            _ => {}
        }
    }

    fn connect(&mut self, cx: &mut Ctx<'_, P>, fe: &Frontend) -> Result<(), String> {
        let xs = &mut *cx.xs;
        match fe.read_backend_uint(xs, "feature-rx-copy", 1) {
            Ok(Some(1)) => {}
            Ok(_) => return Err(String::from("backend does not offer feature-rx-copy")),
            Err(e) => return Err(format!("{e}")),
        }
        let (conn, keys) = UplinkConn::new(cx.platform, fe.backend_id, self.buffers, self.mtu)?;
        let keys: Vec<(&str, &[u8])> = keys.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        fe.publish(xs, &keys, XenbusState::Connected)
            .map_err(|e| format!("publishing rings: {e}"))?;
        let mac = xs
            .read_string(&fe.key("mac"))
            .ok()
            .and_then(|m| parse_mac(&m));
        let cfg = PortConfig {
            name: format!("uplink (vif {} via domain {})", fe.devid, fe.backend_id),
            caps: conn.caps(),
            policy: Policy::default(),
        };
        let port = self
            .dp
            .borrow_mut()
            .attach_uplink(alloc::boxed::Box::new(conn), cfg);
        info!(
            "uplink: connected, port {port}{}",
            mac.map(|m| format!(", mac {}", crate::frame::MacFmt(&m)))
                .unwrap_or_default()
        );
        Ok(())
    }
}

impl<P: Platform + 'static> Task<P> for UplinkTask<P> {
    fn start(&mut self, cx: &mut Ctx<'_, P>) -> Result<(), XsError> {
        let own = cx.platform.domid();
        let devid = match self.mode {
            UplinkMode::Off => {
                info!("uplink: off");
                return Ok(());
            }
            // The data path drives a NIC uplink directly.
            UplinkMode::Nic(_) => return Ok(()),
            UplinkMode::Devid(d) => Some(d),
            UplinkMode::Auto => Frontend::list(cx.xs, own, "vif")?.into_iter().min(),
        };
        let Some(devid) = devid else {
            info!("uplink: none (the toolstack gave this domain no vif)");
            return Ok(());
        };
        let fe = match Frontend::open(cx.xs, own, "vif", devid) {
            Ok(fe) => fe,
            Err(e) => {
                warn!("uplink: vif {devid}: {e}");
                return Ok(());
            }
        };
        cx.watch(&fe.backend_key("state"), "backend")?;
        info!("uplink: vif {devid}, backend {}", fe.backend_path);
        self.fe = Some(fe);
        self.phase = Phase::WaitBackend;
        self.step(cx);
        Ok(())
    }

    fn on_event(&mut self, cx: &mut Ctx<'_, P>, _sub: &str, _event: &Event) {
        self.step(cx);
    }

    fn poll(&mut self, cx: &mut Ctx<'_, P>) {
        if self.phase != Phase::Connected || self.dp.borrow().uplink_port().is_some() {
            return;
        }
        // The data path dropped the uplink (its rings failed): close and start over, as a
        // netfront does after an error.
        if let Some(fe) = self.fe.clone() {
            self.own = XenbusState::Closed;
            let _ = fe.set_state(cx.xs, XenbusState::Closed);
        }
        self.phase = Phase::WaitBackend;
        self.step(cx);
    }

    fn stop(&mut self, cx: &mut Ctx<'_, P>) {
        if let Some(fe) = &self.fe {
            self.dp.borrow_mut().detach_uplink();
            let _ = fe.set_state(cx.xs, XenbusState::Closed);
        }
    }
}
