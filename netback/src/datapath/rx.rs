//! RX: packets the switch queued for a vif, into the buffers its frontend posted.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use minios::platform::{local_room, CopyDst, CopyOp, CopySrc, ForeignRef, Platform};
use minios::ring::RingAccessError;
use xen_abi::netif::{NetifRxRequest, NETIF_RSP_ERROR};
use xen_abi::XEN_PAGE_SIZE;

use super::Datapath;
use crate::packet::Packet;
use crate::switch::PortId;
use crate::wire::{ExtraKind, ExtraRepr, RxCsum, RxRequestRepr, RxResponseRepr};

/// RX slots filled per vif per pass.
pub const RX_PASS_SLOTS: usize = 256;

/// A packet on its way into an RX ring.
struct RxPending {
    port: PortId,
    packet: Packet,
    /// The buffers taken for it, in ring order (data slot 0, GSO extra, data slots 1..).
    reqs: Vec<RxRequestRepr>,
    /// Per data slot: whether its copy succeeded.
    ok: Vec<bool>,
}

/// Slots a packet of `len` bytes needs in an RX ring (data only).
pub(super) fn data_slots(len: usize) -> usize {
    len.div_ceil(XEN_PAGE_SIZE).max(1)
}

impl<P: Platform> Datapath<P> {
    /// One pass of RX over every vif: returns whether a vif has packets and buffers left.
    pub(super) fn rx_pass(&mut self, platform: &P) -> bool {
        let mut batch: Vec<RxPending> = Vec::new();
        let mut more = false;
        for (&port, vif) in self.vifs.iter_mut() {
            if let Some(ch) = &vif.conn.rx_evt {
                vif.events.take_rx(ch, platform.now_ns());
            }
            if vif.fatal.is_some() {
                continue;
            }
            let mut slots = 0;
            while let Some(head) = self.switch.peek(port) {
                let data = data_slots(head.len());
                let gso = head.gso;
                if data > 1 && !vif.conn.sg {
                    // The switch adapts packets to the port's caps; this only happens if the
                    // caps changed while packets were queued.
                    self.switch.pop(port);
                    if let Some(c) = self.switch.counters_mut(port) {
                        c.out_dropped += 1;
                    }
                    continue;
                }
                let need = data + usize::from(gso.is_some());
                if slots + need > RX_PASS_SLOTS {
                    more = true;
                    break;
                }
                let available = match vif.conn.rx.unconsumed() {
                    Ok(n) => n as usize,
                    Err(e) => {
                        vif.fail(format!("rx ring: {e}"));
                        break;
                    }
                };
                if available < need {
                    match vif.conn.rx.want_requests(need as u32) {
                        Ok(n) if n as usize >= need => {}
                        Ok(_) => break,
                        Err(e) => {
                            vif.fail(format!("rx ring: {e}"));
                            break;
                        }
                    }
                }
                let mut reqs = Vec::with_capacity(need);
                for _ in 0..need {
                    match vif.conn.rx.take::<NetifRxRequest>() {
                        Ok(r) => reqs.push(RxRequestRepr::parse(&r)),
                        Err(e) => {
                            vif.fail(format!("rx ring: {e}"));
                            break;
                        }
                    }
                }
                if reqs.len() != need {
                    break;
                }
                slots += need;
                let Some(packet) = self.switch.pop(port) else {
                    break;
                };
                batch.push(RxPending {
                    port,
                    packet,
                    reqs,
                    ok: vec![true; data],
                });
            }
        }
        if !batch.is_empty() {
            self.copy_rx(platform, &mut batch);
            for p in batch {
                self.finish_rx(p);
            }
        }
        more
    }

    /// Copies every pending packet into its frontend's buffers in one batch, recording
    /// per data slot whether the copy succeeded.
    fn copy_rx(&mut self, platform: &P, batch: &mut [RxPending]) {
        let mut ops: Vec<CopyOp<'_>> = Vec::new();
        let mut owner: Vec<(usize, usize)> = Vec::new();
        for (i, p) in batch.iter().enumerate() {
            let Some(vif) = self.vifs.get(&p.port) else {
                continue;
            };
            let domid = vif.conn.frontend;
            let extra = usize::from(p.packet.gso.is_some());
            for (k, chunk) in p.packet.data.chunks(XEN_PAGE_SIZE).enumerate() {
                let req = p.reqs[if k == 0 { 0 } else { k + extra }];
                let mut rest = chunk;
                let mut offset = 0u16;
                while !rest.is_empty() {
                    let n = local_room(rest).min(rest.len());
                    let (head, tail) = rest.split_at(n);
                    rest = tail;
                    let dst = CopyDst::Foreign(ForeignRef {
                        domid,
                        gref: req.gref,
                        offset,
                    });
                    ops.push(CopyOp::new(CopySrc::Local(head), dst, n as u16));
                    owner.push((i, k));
                    offset += n as u16;
                }
            }
        }
        self.run_copies(platform, &mut ops);
        let failed: Vec<(usize, usize)> = ops
            .iter()
            .zip(&owner)
            .filter(|(op, _)| op.status.is_err())
            .map(|(_, &o)| o)
            .collect();
        drop(ops);
        for (i, k) in failed {
            batch[i].ok[k] = false;
        }
    }

    fn finish_rx(&mut self, p: RxPending) {
        let Some(vif) = self.vifs.get_mut(&p.port) else {
            return;
        };
        let len = p.packet.len();
        let data = p.ok.len();
        let csum: RxCsum = p.packet.csum.rx_flags();
        let mut result: Result<(), RingAccessError> = Ok(());
        let mut reqs = p.reqs.iter();
        for k in 0..data {
            let Some(req) = reqs.next() else { break };
            let bytes = (len - k * XEN_PAGE_SIZE).min(XEN_PAGE_SIZE);
            let rsp = RxResponseRepr {
                id: req.id,
                offset: 0,
                csum: if k == 0 { csum } else { RxCsum::default() },
                more_data: k + 1 < data,
                extra_info: k == 0 && p.packet.gso.is_some(),
                status: if p.ok[k] {
                    bytes as i16
                } else {
                    NETIF_RSP_ERROR
                },
            };
            result = result.and(vif.conn.rx.respond(&rsp.emit()));
            if k == 0 {
                if let Some(gso) = p.packet.gso {
                    let _extra_slot = reqs.next();
                    let extra = ExtraRepr {
                        kind: ExtraKind::Gso(gso),
                        more: false,
                    };
                    result = result.and(vif.conn.rx.respond(&extra.emit()));
                }
            }
        }
        vif.notify_rx = true;
        if let Err(e) = result {
            vif.fail(format!("rx ring: {e}"));
            return;
        }
        if let Some(c) = self.switch.counters_mut(p.port) {
            if p.ok.iter().all(|&ok| ok) {
                c.out_packets += 1;
                c.out_bytes += len as u64;
            } else {
                c.out_errors += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_per_packet() {
        assert_eq!(data_slots(0), 1);
        assert_eq!(data_slots(60), 1);
        assert_eq!(data_slots(4096), 1);
        assert_eq!(data_slots(4097), 2);
        assert_eq!(data_slots(65535), 16);
    }
}
