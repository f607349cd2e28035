//! Moving transfer data between the guest's granted segments and local buffers, by grant
//! copy (one batched `GNTTABOP_copy` per URB; the backend never maps data grants). A bad
//! grant (unmapped, revoked, read-only for an IN transfer, of another domain) fails the URB,
//! nothing else.
//!
//! Planned (with the xHCI driver): DMA straight into the guest's pages where possible.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use minios::platform::{local_room, CopyDst, CopyOp, CopySrc, DomId, ForeignRef, Grants};

use crate::wire::Segment;

/// Pieces of one transfer: (segment index, offset in the segment, local range).
fn pieces(segs: &[Segment], local: &[u8], len: usize) -> Vec<(usize, usize, usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    for (i, s) in segs.iter().enumerate() {
        let mut done = 0usize;
        while done < usize::from(s.length) && pos < len {
            let room = local_room(&local[pos..]);
            let n = (usize::from(s.length) - done).min(len - pos).min(room);
            out.push((i, done, pos, n));
            done += n;
            pos += n;
        }
    }
    out
}

fn foreign(domid: DomId, s: &Segment, at: usize) -> ForeignRef {
    ForeignRef {
        domid,
        gref: s.gref,
        offset: s.offset + at as u16,
    }
}

/// Copies `len` bytes out of the guest's segments (an OUT transfer's data).
pub fn gather<G: Grants>(
    grants: &G,
    domid: DomId,
    segs: &[Segment],
    len: usize,
) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; len];
    let plan = pieces(segs, &buf, len);
    let mut ops: Vec<CopyOp<'_>> = Vec::with_capacity(plan.len());
    let mut rest: &mut [u8] = &mut buf;
    for &(seg, at, _, n) in &plan {
        let (head, tail) = rest.split_at_mut(n);
        rest = tail;
        ops.push(CopyOp::new(
            CopySrc::Foreign(foreign(domid, &segs[seg], at)),
            CopyDst::Local(head),
            n as u16,
        ));
    }
    grants.copy(&mut ops);
    check(&ops, segs, &plan)?;
    drop(ops);
    Ok(buf)
}

/// Copies `data` into the guest's segments (an IN transfer's data); returns the bytes
/// written (all of `data`, which must fit).
pub fn scatter<G: Grants>(
    grants: &G,
    domid: DomId,
    segs: &[Segment],
    data: &[u8],
) -> Result<usize, String> {
    let plan = pieces(segs, data, data.len());
    let mut ops: Vec<CopyOp<'_>> = plan
        .iter()
        .map(|&(seg, at, pos, n)| {
            CopyOp::new(
                CopySrc::Local(&data[pos..pos + n]),
                CopyDst::Foreign(foreign(domid, &segs[seg], at)),
                n as u16,
            )
        })
        .collect();
    grants.copy(&mut ops);
    check(&ops, segs, &plan)?;
    Ok(plan.iter().map(|p| p.3).sum())
}

fn check(
    ops: &[CopyOp<'_>],
    segs: &[Segment],
    plan: &[(usize, usize, usize, usize)],
) -> Result<(), String> {
    for (op, &(seg, _, _, _)) in ops.iter().zip(plan) {
        if let Err(e) = op.status {
            return Err(format!("grant {} (segment {seg}): {e}", segs[seg].gref));
        }
    }
    Ok(())
}
