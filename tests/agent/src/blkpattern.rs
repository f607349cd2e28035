//! The known pattern of `testbed-agent blk` (fill, check, verify), shared with the host
//! side (`[[disk_check]]`, which reads a QEMU disk image after the boot).
//!
//! Every 4 KiB block carries a header (magic, block number within the region, generation,
//! CRC32C of the block's payload) and a payload derived from seed, block and generation,
//! so a mismatch says whether the data is stale, misplaced or corrupt.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// The pattern's block size.
pub const BLOCK: usize = 4096;
const MAGIC: u32 = 0x5844_4442; // "XDDB"

/// CRC32C (Castagnoli), bitwise table built once.
pub fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0x82f6_3b78 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    let mut c = !0u32;
    for &b in data {
        c = t[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// The pattern's pseudo-random generator (also the agent's random offsets).
pub fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Fills one block's image: header + payload from (seed, block, generation).
pub fn make_block(out: &mut [u8], seed: u64, block: u64, gen: u32) {
    let mut s = seed ^ block.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (u64::from(gen) << 40) | 1;
    for chunk in out[16..].chunks_mut(8) {
        let v = xorshift(&mut s).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    let crc = crc32c(&out[16..]);
    out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    out[4..8].copy_from_slice(&(block as u32).to_le_bytes());
    out[8..12].copy_from_slice(&gen.to_le_bytes());
    out[12..16].copy_from_slice(&crc.to_le_bytes());
}

/// Compares a block read back with what it should be; explains a mismatch.
pub fn check_block(
    got: &[u8],
    seed: u64,
    block: u64,
    gen: u32,
    scratch: &mut [u8],
) -> Result<(), String> {
    make_block(scratch, seed, block, gen);
    if got == scratch {
        return Ok(());
    }
    let word = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let why = if word(got, 0) != MAGIC {
        "no block header (never written or overwritten by something else)".to_string()
    } else if u64::from(word(got, 4)) != block & 0xffff_ffff {
        format!("holds block {} (misplaced)", word(got, 4))
    } else if word(got, 8) != gen {
        format!("holds generation {} (stale or lost write)", word(got, 8))
    } else if crc32c(&got[16..]) != word(got, 12) {
        "payload corrupt (crc32c mismatch)".to_string()
    } else {
        "payload differs".to_string()
    };
    Err(format!("block {block} (expected generation {gen}): {why}"))
}

/// Checks that `len` bytes from `start` of the file at `path` hold the pattern `blk fill`
/// writes with `seed` (generation 1, blocks counted from `start`); the first bad block
/// explains itself.
pub fn check_file(path: &std::path::Path, start: u64, len: u64, seed: u64) -> Result<u64, String> {
    let f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if start % BLOCK as u64 != 0 || len < BLOCK as u64 || len % BLOCK as u64 != 0 {
        return Err(format!("region {start}+{len} is not in whole 4 KiB blocks"));
    }
    let mut buf = vec![0u8; 256 * BLOCK];
    let mut scratch = vec![0u8; BLOCK];
    let blocks = len / BLOCK as u64;
    let mut b = 0;
    while b < blocks {
        let n = (blocks - b).min(256) as usize;
        let data = &mut buf[..n * BLOCK];
        let off = start + b * BLOCK as u64;
        f.read_exact_at(data, off)
            .map_err(|e| format!("{} at {off}: {e}", path.display()))?;
        for (i, blk) in data.chunks_exact(BLOCK).enumerate() {
            check_block(blk, seed, b + i as u64, 1, &mut scratch)?;
        }
        b += n as u64;
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn blocks_explain_mismatches() {
        let mut a = vec![0u8; BLOCK];
        let mut s = vec![0u8; BLOCK];
        make_block(&mut a, 7, 42, 3);
        assert!(check_block(&a, 7, 42, 3, &mut s).is_ok());
        let e = check_block(&a, 7, 42, 4, &mut s).unwrap_err();
        assert!(e.contains("generation 3"), "{e}");
        let e = check_block(&a, 7, 43, 3, &mut s).unwrap_err();
        assert!(e.contains("misplaced"), "{e}");
        a[100] ^= 1;
        let e = check_block(&a, 7, 42, 3, &mut s).unwrap_err();
        assert!(e.contains("crc32c"), "{e}");
    }

    #[test]
    fn a_file_holds_the_pattern_or_says_why_not() {
        let path = std::env::temp_dir().join(format!("blkpattern-{}", std::process::id()));
        let mut img = vec![0u8; 16 * BLOCK];
        for b in 0..4 {
            make_block(&mut img[(8 + b) * BLOCK..(9 + b) * BLOCK], 7, b as u64, 1);
        }
        std::fs::write(&path, &img).unwrap();
        let at = 8 * BLOCK as u64;
        assert_eq!(
            check_file(&path, at, 4 * BLOCK as u64, 7),
            Ok(4 * BLOCK as u64)
        );
        let e = check_file(&path, at, 5 * BLOCK as u64, 7).unwrap_err();
        assert!(
            e.contains("block 4") && e.contains("no block header"),
            "{e}"
        );
        let e = check_file(&path, at, 4 * BLOCK as u64, 8).unwrap_err();
        assert!(e.contains("block 0"), "{e}");
        img[9 * BLOCK + 100] ^= 1;
        std::fs::write(&path, &img).unwrap();
        let e = check_file(&path, at, 4 * BLOCK as u64, 7).unwrap_err();
        assert!(e.contains("block 1") && e.contains("crc32c"), "{e}");
        let _ = std::fs::remove_file(&path);
    }
}
