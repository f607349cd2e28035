//! NVMe commands and completions as bytes (NVM Express Base 2.0, 3.3.3 and 5; NVM Command
//! Set 1.0, 3 and 4): submission entries built whole, completion entries and Identify data
//! parsed and checked once. Nothing here touches hardware, so it is tested on the host.

/// Bytes per submission queue entry (`CC.IOSQES` = 6).
pub const SQE_BYTES: usize = 64;
/// Bytes per completion queue entry (`CC.IOCQES` = 4).
pub const CQE_BYTES: usize = 16;
/// The memory page size we program (`CC.MPS` = 0).
pub const PAGE: usize = 4096;

/// Admin opcodes.
pub mod admin {
    /// Create I/O Submission Queue.
    pub const CREATE_SQ: u8 = 0x01;
    /// Create I/O Completion Queue.
    pub const CREATE_CQ: u8 = 0x05;
    /// Identify.
    pub const IDENTIFY: u8 = 0x06;
    /// Set Features.
    pub const SET_FEATURES: u8 = 0x09;
}

/// NVM command set opcodes.
pub mod nvm {
    /// Flush.
    pub const FLUSH: u8 = 0x00;
    /// Write.
    pub const WRITE: u8 = 0x01;
    /// Read.
    pub const READ: u8 = 0x02;
    /// Dataset Management.
    pub const DSM: u8 = 0x09;
}

/// Set Features: Number of Queues.
const FEATURE_QUEUES: u32 = 0x07;

/// A command before it gets its command id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// Opcode.
    pub opcode: u8,
    /// Namespace.
    pub nsid: u32,
    /// Data pointer: the first page.
    pub prp1: u64,
    /// Data pointer: the second page or the PRP list.
    pub prp2: u64,
    /// Command dwords 10–15.
    pub cdw: [u32; 6],
}

impl Command {
    /// The 64-byte submission entry with command id `cid` (PRPs, not SGLs; no fused
    /// operation; no metadata).
    pub fn encode(&self, cid: u16) -> [u8; SQE_BYTES] {
        let mut e = [0u8; SQE_BYTES];
        let dw0 = u32::from(self.opcode) | (u32::from(cid) << 16);
        e[0..4].copy_from_slice(&dw0.to_le_bytes());
        e[4..8].copy_from_slice(&self.nsid.to_le_bytes());
        e[24..32].copy_from_slice(&self.prp1.to_le_bytes());
        e[32..40].copy_from_slice(&self.prp2.to_le_bytes());
        for (i, dw) in self.cdw.iter().enumerate() {
            e[40 + 4 * i..44 + 4 * i].copy_from_slice(&dw.to_le_bytes());
        }
        e
    }

    /// Identify with `cns` (1: controller, 0: namespace `nsid`) into the page at `page`.
    pub fn identify(cns: u8, nsid: u32, page: u64) -> Self {
        Self {
            opcode: admin::IDENTIFY,
            nsid,
            prp1: page,
            cdw: [u32::from(cns), 0, 0, 0, 0, 0],
            ..Self::default()
        }
    }

    /// Set Features: ask for `n` I/O submission and completion queues.
    pub fn set_queue_count(n: u16) -> Self {
        let n = u32::from(n.max(1) - 1);
        Self {
            opcode: admin::SET_FEATURES,
            cdw: [FEATURE_QUEUES, n | (n << 16), 0, 0, 0, 0],
            ..Self::default()
        }
    }

    /// Create I/O Completion Queue `qid` of `entries` in the page at `page`, interrupting on
    /// MSI-X/MSI vector `vector` (or not at all).
    pub fn create_cq(qid: u16, entries: u16, page: u64, vector: Option<u16>) -> Self {
        let ien = match vector {
            Some(v) => (u32::from(v) << 16) | 0b10,
            None => 0,
        };
        Self {
            opcode: admin::CREATE_CQ,
            prp1: page,
            cdw: [queue_dw10(qid, entries), ien | 1, 0, 0, 0, 0],
            ..Self::default()
        }
    }

    /// Create I/O Submission Queue `qid` of `entries` in the page at `page`, completing on
    /// completion queue `cqid`.
    pub fn create_sq(qid: u16, entries: u16, page: u64, cqid: u16) -> Self {
        Self {
            opcode: admin::CREATE_SQ,
            prp1: page,
            cdw: [
                queue_dw10(qid, entries),
                (u32::from(cqid) << 16) | 1,
                0,
                0,
                0,
                0,
            ],
            ..Self::default()
        }
    }

    /// Read or write `blocks` logical blocks at `lba` of namespace `nsid`.
    pub fn rw(write: bool, nsid: u32, lba: u64, blocks: u16, prp: Prp) -> Self {
        Self {
            opcode: if write { nvm::WRITE } else { nvm::READ },
            nsid,
            prp1: prp.prp1,
            prp2: prp.prp2,
            cdw: [
                lba as u32,
                (lba >> 32) as u32,
                u32::from(blocks.max(1) - 1),
                0,
                0,
                0,
            ],
        }
    }

    /// Flush namespace `nsid`'s volatile write cache.
    pub fn flush(nsid: u32) -> Self {
        Self {
            opcode: nvm::FLUSH,
            nsid,
            ..Self::default()
        }
    }

    /// Dataset Management, deallocate, with one range ([`dsm_range`]) at `range`.
    pub fn deallocate(nsid: u32, range: u64) -> Self {
        Self {
            opcode: nvm::DSM,
            nsid,
            prp1: range,
            // NR = 0 (one range, 0-based); AD (deallocate) = bit 2.
            cdw: [0, 1 << 2, 0, 0, 0, 0],
            ..Self::default()
        }
    }
}

fn queue_dw10(qid: u16, entries: u16) -> u32 {
    u32::from(qid) | (u32::from(entries.max(2) - 1) << 16)
}

/// One Dataset Management range: `blocks` logical blocks at `lba`, no attributes.
pub fn dsm_range(lba: u64, blocks: u32) -> [u8; 16] {
    let mut r = [0u8; 16];
    r[4..8].copy_from_slice(&blocks.to_le_bytes());
    r[8..16].copy_from_slice(&lba.to_le_bytes());
    r
}

/// A command's data pointer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prp {
    /// The first page.
    pub prp1: u64,
    /// 0, the second page, or the PRP list.
    pub prp2: u64,
}

/// The data pointer of a transfer over whole pages at machine addresses `pages` (each
/// page-aligned; the transfer starts at the first page's start). With more than two pages,
/// `list` gets the entries of the PRP list (pages 2..) and `list_addr` is where the caller
/// puts it (inside one page). `None` when `pages` is empty or a page is not aligned.
pub fn prp(pages: &[u64], list_addr: u64, list: &mut alloc::vec::Vec<u64>) -> Option<Prp> {
    list.clear();
    if pages.iter().any(|p| p % PAGE as u64 != 0) {
        return None;
    }
    match *pages {
        [] => None,
        [one] => Some(Prp { prp1: one, prp2: 0 }),
        [first, second] => Some(Prp {
            prp1: first,
            prp2: second,
        }),
        [first, ref rest @ ..] => {
            list.extend_from_slice(rest);
            Some(Prp {
                prp1: first,
                prp2: list_addr,
            })
        }
    }
}

/// The data pointer of a transfer over `segs` (machine address, bytes), in order, each
/// within one page, as PRPs allow it: the first may start anywhere dword-aligned but must run
/// to its page's end when more follow, the others start at a page's start, and all but the
/// last end at a page's end; at most `max` of them. With more than two, `list` gets the PRP
/// list's entries (segments 2..) and `list_addr` is where the caller puts it. `None` when
/// the segments do not have that shape (the caller then uses its own pages).
pub fn prp_segments(
    segs: &[(u64, usize)],
    max: usize,
    list_addr: u64,
    list: &mut alloc::vec::Vec<u64>,
) -> Option<Prp> {
    list.clear();
    let page = PAGE as u64;
    if segs.is_empty() || segs.len() > max {
        return None;
    }
    let last = segs.len() - 1;
    for (i, &(addr, len)) in segs.iter().enumerate() {
        let off = addr % page;
        let end = off.checked_add(len as u64)?;
        let shape = len > 0
            && end <= page
            && (i == 0 || off == 0)
            && (i == last || end == page)
            && addr % 4 == 0;
        if !shape {
            return None;
        }
    }
    let first = segs[0].0;
    match segs {
        [_] => Some(Prp {
            prp1: first,
            prp2: 0,
        }),
        [_, (second, _)] => Some(Prp {
            prp1: first,
            prp2: *second,
        }),
        [_, rest @ ..] => {
            list.extend(rest.iter().map(|&(a, _)| a));
            Some(Prp {
                prp1: first,
                prp2: list_addr,
            })
        }
        [] => None,
    }
}

/// One completion queue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Command specific result (dword 0).
    pub result: u32,
    /// The submission queue's head as the controller saw it.
    pub sq_head: u16,
    /// Which submission queue the command came from.
    pub sq_id: u16,
    /// The command id.
    pub cid: u16,
    /// The phase tag.
    pub phase: bool,
    /// Status code type (bits 11:9 of the status field) and status code (bits 8:1), as
    /// `sct << 8 | sc`; 0 is success.
    pub status: u16,
}

impl Completion {
    /// Decodes a completion entry.
    pub fn parse(e: &[u8; CQE_BYTES]) -> Self {
        let dw =
            |i: usize| u32::from_le_bytes([e[4 * i], e[4 * i + 1], e[4 * i + 2], e[4 * i + 3]]);
        let dw2 = dw(2);
        let dw3 = dw(3);
        let sf = (dw3 >> 17) & 0x7fff;
        Self {
            result: dw(0),
            sq_head: dw2 as u16,
            sq_id: (dw2 >> 16) as u16,
            cid: dw3 as u16,
            phase: dw3 & (1 << 16) != 0,
            status: (((sf >> 8) & 0x7) << 8) as u16 | (sf & 0xff) as u16,
        }
    }

    /// Whether the command succeeded.
    pub fn ok(&self) -> bool {
        self.status == 0
    }

    /// Whether the status says "invalid opcode/field" (the command is not supported).
    pub fn unsupported(&self) -> bool {
        matches!(self.status, 0x001 | 0x002)
    }
}

/// What blkback needs from Identify Controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControllerId {
    /// Maximum data transfer size as a power of two of the minimum page size (0: no limit).
    pub mdts: u8,
    /// Number of namespaces.
    pub nn: u32,
    /// Optional NVM commands: bit 2 is Dataset Management.
    pub oncs: u16,
    /// A volatile write cache is present (bit 0).
    pub vwc: bool,
    /// Required and maximum submission entry size (log2), as one byte.
    pub sqes: u8,
    /// Required and maximum completion entry size (log2), as one byte.
    pub cqes: u8,
}

impl ControllerId {
    /// Decodes the Identify Controller data structure (4096 bytes).
    pub fn parse(d: &[u8]) -> Option<Self> {
        if d.len() < 4096 {
            return None;
        }
        Some(Self {
            mdts: d[77],
            sqes: d[512],
            cqes: d[513],
            nn: u32::from_le_bytes([d[516], d[517], d[518], d[519]]),
            oncs: u16::from_le_bytes([d[520], d[521]]),
            vwc: d[525] & 1 != 0,
        })
    }

    /// Whether Dataset Management is supported.
    pub fn dsm(&self) -> bool {
        self.oncs & (1 << 2) != 0
    }

    /// Whether our entry sizes (64-byte submission, 16-byte completion) are allowed.
    pub fn entry_sizes_ok(&self) -> bool {
        let ok = |b: u8, want: u8| (b & 0xf) <= want && (b >> 4 == 0 || want <= b >> 4);
        ok(self.sqes, 6) && ok(self.cqes, 4)
    }
}

/// What blkback needs from Identify Namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamespaceId {
    /// Size in logical blocks.
    pub blocks: u64,
    /// log2 of the logical block size of the format in use.
    pub lba_shift: u32,
    /// Metadata bytes per block of the format in use.
    pub metadata: u16,
}

impl NamespaceId {
    /// Decodes the Identify Namespace data structure (4096 bytes); `None` for an inactive
    /// namespace (size 0) or a format index beyond the formats listed.
    pub fn parse(d: &[u8]) -> Option<Self> {
        if d.len() < 4096 {
            return None;
        }
        let blocks = u64::from_le_bytes(d[0..8].try_into().ok()?);
        let nlbaf = usize::from(d[25]);
        let flbas = d[26];
        // Bits 3:0, and 6:5 as the upper bits when more than 16 formats exist.
        let index = usize::from(flbas & 0xf) | (usize::from((flbas >> 5) & 0x3) << 4);
        if blocks == 0 || index > nlbaf || index >= 64 {
            return None;
        }
        let at = 128 + 4 * index;
        let f = u32::from_le_bytes(d[at..at + 4].try_into().ok()?);
        Some(Self {
            blocks,
            lba_shift: (f >> 16) & 0xff,
            metadata: f as u16,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn a_read_is_encoded_with_cid_lba_and_zero_based_count() {
        let prp = Prp {
            prp1: 0x1234_5000,
            prp2: 0x9_8765_4000,
        };
        let e = Command::rw(false, 1, 0x1_0000_0002, 8, prp).encode(0x2a);
        assert_eq!(&e[0..4], &[0x02, 0, 0x2a, 0]);
        assert_eq!(&e[4..8], &1u32.to_le_bytes());
        assert_eq!(&e[24..32], &0x1234_5000u64.to_le_bytes());
        assert_eq!(&e[32..40], &0x9_8765_4000u64.to_le_bytes());
        assert_eq!(&e[40..44], &2u32.to_le_bytes());
        assert_eq!(&e[44..48], &1u32.to_le_bytes());
        assert_eq!(&e[48..52], &7u32.to_le_bytes());
        assert!(e[8..24].iter().all(|&b| b == 0));
        assert!(e[52..].iter().all(|&b| b == 0));
        assert_eq!(Command::rw(true, 1, 0, 1, prp).encode(0)[0], nvm::WRITE);
    }

    #[test]
    fn queue_creation_and_dsm_dwords() {
        let cq = Command::create_cq(1, 64, 0x5000, Some(0));
        assert_eq!(cq.cdw[0], 1 | (63 << 16));
        assert_eq!(cq.cdw[1], 0b11);
        assert_eq!(
            Command::create_cq(1, 64, 0x5000, Some(3)).cdw[1],
            (3 << 16) | 0b11
        );
        assert_eq!(Command::create_cq(1, 64, 0x5000, None).cdw[1], 1);
        let sq = Command::create_sq(1, 64, 0x6000, 1);
        assert_eq!(sq.cdw[1], (1 << 16) | 1);
        assert_eq!(Command::set_queue_count(1).cdw[1], 0);
        let four = Command::set_queue_count(4);
        assert_eq!((four.cdw[0], four.cdw[1]), (0x07, 3 | (3 << 16)));
        let d = Command::deallocate(1, 0x7010);
        assert_eq!(
            (d.opcode, d.prp1, d.cdw[0], d.cdw[1]),
            (nvm::DSM, 0x7010, 0, 4)
        );
        let r = dsm_range(0x1_0000_0010, 256);
        assert_eq!(&r[0..4], &[0; 4]);
        assert_eq!(&r[4..8], &256u32.to_le_bytes());
        assert_eq!(&r[8..16], &0x1_0000_0010u64.to_le_bytes());
    }

    #[test]
    fn prp_uses_the_second_entry_then_a_list() {
        let mut list = Vec::new();
        assert_eq!(prp(&[], 0x100, &mut list), None);
        assert_eq!(prp(&[0x1001], 0x100, &mut list), None);
        assert_eq!(
            prp(&[0x3000], 0x100, &mut list),
            Some(Prp {
                prp1: 0x3000,
                prp2: 0
            })
        );
        assert!(list.is_empty());
        assert_eq!(
            prp(&[0x3000, 0x9000], 0x100, &mut list),
            Some(Prp {
                prp1: 0x3000,
                prp2: 0x9000
            })
        );
        assert!(list.is_empty());
        assert_eq!(
            prp(&[0x3000, 0x9000, 0x2000, 0x8000], 0x7100, &mut list),
            Some(Prp {
                prp1: 0x3000,
                prp2: 0x7100
            })
        );
        assert_eq!(list, vec![0x9000, 0x2000, 0x8000]);
    }

    #[test]
    fn prps_from_guest_segments_follow_the_page_rules_or_are_refused() {
        let mut list = Vec::new();
        let p = |prp1, prp2| Some(Prp { prp1, prp2 });
        // One piece anywhere inside a page (dword-aligned).
        assert_eq!(
            prp_segments(&[(0x5200, 0x400)], 32, 0x100, &mut list),
            p(0x5200, 0)
        );
        // First piece to its page's end, then a page start.
        assert_eq!(
            prp_segments(&[(0x5200, 0xe00), (0x9000, 0x200)], 32, 0x100, &mut list),
            p(0x5200, 0x9000)
        );
        assert!(list.is_empty());
        // Three or more: a list of pages 2.. at the caller's address.
        assert_eq!(
            prp_segments(
                &[(0x5000, 0x1000), (0x9000, 0x1000), (0x2000, 0x600)],
                32,
                0x7100,
                &mut list
            ),
            p(0x5000, 0x7100)
        );
        assert_eq!(list, vec![0x9000, 0x2000]);
        // Shapes PRPs cannot express: a hole after the first piece, a later piece not at a
        // page start, a piece crossing its page, an empty or unaligned piece, too many.
        let refused: [&[(u64, usize)]; 7] = [
            &[(0x5000, 0x800), (0x9000, 0x1000)],
            &[(0x5000, 0x1000), (0x9200, 0xe00)],
            &[(0x5000, 0x1000), (0x9000, 0x800), (0x2000, 0x1000)],
            &[(0x5800, 0x1000)],
            &[(0x5000, 0)],
            &[(0x5002, 0x200)],
            &[],
        ];
        for segs in refused {
            list.push(1);
            assert_eq!(prp_segments(segs, 32, 0x100, &mut list), None, "{segs:x?}");
            assert!(list.is_empty());
        }
        let pages: Vec<(u64, usize)> = (0..33).map(|i| (i << 12, 0x1000)).collect();
        assert_eq!(prp_segments(&pages, 32, 0x100, &mut list), None);
        assert_eq!(
            prp_segments(&pages[..32], 32, 0x100, &mut list),
            p(0, 0x100)
        );
        assert_eq!(list.len(), 31);
    }

    #[test]
    fn completions_decode_phase_cid_and_status() {
        let mut e = [0u8; 16];
        e[0..4].copy_from_slice(&7u32.to_le_bytes());
        e[8..12].copy_from_slice(&(5u32 | (1 << 16)).to_le_bytes());
        // cid 0x33, phase 1, status: SCT 0, SC 0x02 (invalid field).
        e[12..16].copy_from_slice(&(0x33u32 | (1 << 16) | (0x02 << 17)).to_le_bytes());
        let c = Completion::parse(&e);
        assert_eq!(
            c,
            Completion {
                result: 7,
                sq_head: 5,
                sq_id: 1,
                cid: 0x33,
                phase: true,
                status: 0x002
            }
        );
        assert!(!c.ok() && c.unsupported());
        // SCT 2 (media error), SC 0x81 (unrecovered read), more and DNR set, phase 0.
        e[12..16].copy_from_slice(&(0x1u32 | (0x281 << 17) | (3 << 30)).to_le_bytes());
        let c = Completion::parse(&e);
        assert_eq!((c.cid, c.phase, c.status), (1, false, 0x281));
        assert!(!c.ok() && !c.unsupported());
    }

    #[test]
    fn identify_data_is_decoded() {
        let mut d = vec![0u8; 4096];
        d[77] = 5;
        d[512] = 0x66;
        d[513] = 0x44;
        d[516] = 1;
        d[520] = 0b100;
        d[525] = 1;
        let c = ControllerId::parse(&d).unwrap();
        assert_eq!((c.mdts, c.nn, c.vwc, c.dsm()), (5, 1, true, true));
        assert!(c.entry_sizes_ok());
        d[512] = 0x77;
        assert!(!ControllerId::parse(&d).unwrap().entry_sizes_ok());
        assert_eq!(ControllerId::parse(&d[..100]), None);

        let mut n = vec![0u8; 4096];
        n[0..8].copy_from_slice(&131072u64.to_le_bytes());
        n[25] = 1;
        n[26] = 1;
        n[128..132].copy_from_slice(&(9u32 << 16).to_le_bytes());
        n[132..136].copy_from_slice(&(12u32 << 16).to_le_bytes());
        let ns = NamespaceId::parse(&n).unwrap();
        assert_eq!((ns.blocks, ns.lba_shift, ns.metadata), (131072, 12, 0));
        n[26] = 2;
        assert_eq!(NamespaceId::parse(&n), None, "format beyond NLBAF");
        n[26] = 0;
        n[0..8].fill(0);
        assert_eq!(NamespaceId::parse(&n), None, "inactive namespace");
    }
}
