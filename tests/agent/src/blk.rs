//! `testbed-agent blk …`: block-device verification and benchmarks for guests (no fio in the
//! guests: its dependency closure is too large).
//!
//! ```text
//! blk verify DEV [--start B] [--len B] [--ops N] [--seed S] [--buffered]
//!     O_DIRECT random writes of 4 KiB and 1 MiB (aligned) inside the region, each read back
//!     and compared at once, then every block written compared again at the end.
//! blk fill DEV [--start B] [--len B] [--seed S] [--buffered]    write the region with a known pattern
//! blk check DEV [--start B] [--len B] [--seed S] [--buffered]   verify that pattern (persistence)
//! blk bench DEV --mode read|write|randread|randwrite [--bs B] [--len B] [--secs T]
//!     [--jobs J] [--record NAME]
//!     O_DIRECT throughput and IOPS with J threads (queue depth J); --record writes
//!     data/bench/NAME-mbps and NAME-iops to xenstore for dom0 to collect.
//! ```
//!
//! All I/O is O_DIRECT: a device or file that refuses O_DIRECT is an error, never a silent
//! fallback. `--buffered` (for image files on dom0's tmpfs, which refuse O_DIRECT) opens
//! without it, and every result line then says `buffered` instead of `O_DIRECT`.
//!
//! Every 4 KiB block written carries a header (magic, block number within the region,
//! generation, CRC32C of the block's payload) and a payload derived from seed, block and
//! generation, so a mismatch says whether the data is stale, misplaced or corrupt. Block
//! numbers count from the region's start, so dom0 can fill a slice inside an image file and
//! a guest check it from the start of its disk.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use testbed_agent::blkpattern::{check_block, make_block, xorshift, BLOCK};

const O_DIRECT: i32 = 0o40000;

/// Runs `blk <args>`.
pub fn main(args: &[&str]) -> Result<(), String> {
    let (cmd, dev, opts) = match args {
        [cmd, dev, rest @ ..] => (*cmd, *dev, Opts::parse(rest)?),
        _ => return Err("usage: testbed-agent blk verify|fill|check|bench DEV [options]".into()),
    };
    match cmd {
        "verify" => verify(dev, &opts),
        "fill" => fill(dev, &opts),
        "check" => check(dev, &opts),
        "bench" => bench(dev, &opts),
        _ => Err(format!("unknown blk command {cmd}")),
    }
}

struct Opts {
    start: u64,
    len: Option<u64>,
    ops: u64,
    seed: u64,
    mode: String,
    bs: usize,
    secs: f64,
    jobs: usize,
    record: Option<String>,
    /// `--buffered`: open without O_DIRECT (files on tmpfs refuse it).
    buffered: bool,
}

fn size(v: &str) -> Result<u64, String> {
    let (num, mul) = match v.chars().last() {
        Some('K' | 'k') => (&v[..v.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&v[..v.len() - 1], 1 << 20),
        Some('G' | 'g') => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mul)
        .map_err(|_| format!("bad size {v}"))
}

impl Opts {
    fn parse(args: &[&str]) -> Result<Self, String> {
        let mut o = Opts {
            start: 0,
            len: None,
            ops: 200,
            seed: 1,
            mode: "read".into(),
            bs: 1 << 20,
            secs: 10.0,
            jobs: 1,
            record: None,
            buffered: false,
        };
        let mut it = args.iter();
        while let Some(&k) = it.next() {
            if k == "--buffered" {
                o.buffered = true;
                continue;
            }
            let v = *it.next().ok_or_else(|| format!("{k} needs a value"))?;
            match k {
                "--start" => o.start = size(v)?,
                "--len" => o.len = Some(size(v)?),
                "--ops" => o.ops = v.parse().map_err(|_| format!("bad --ops {v}"))?,
                "--seed" => o.seed = v.parse().map_err(|_| format!("bad --seed {v}"))?,
                "--mode" => o.mode = v.into(),
                "--bs" => o.bs = size(v)? as usize,
                "--secs" => o.secs = v.parse().map_err(|_| format!("bad --secs {v}"))?,
                "--jobs" => o.jobs = v.parse().map_err(|_| format!("bad --jobs {v}"))?,
                "--record" => o.record = Some(v.into()),
                _ => return Err(format!("unknown option {k}")),
            }
        }
        if o.bs == 0 || o.bs % 512 != 0 || o.jobs == 0 {
            return Err("--bs must be a multiple of 512, --jobs at least 1".into());
        }
        Ok(o)
    }
}

/// A buffer aligned for O_DIRECT.
struct Aligned {
    raw: Vec<u8>,
    off: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize) -> Self {
        let raw = vec![0u8; len + BLOCK];
        let off = raw.as_ptr().align_offset(BLOCK);
        Self { raw, off, len }
    }
    fn buf(&mut self) -> &mut [u8] {
        &mut self.raw[self.off..self.off + self.len]
    }
}

/// Opens `dev` with O_DIRECT (without it under `--buffered`) and returns it with its size.
/// A refused O_DIRECT is an error: falling back would measure and verify the page cache.
fn open(dev: &str, write: bool, o: &Opts) -> Result<(File, u64), String> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(write);
    if !o.buffered {
        opts.custom_flags(O_DIRECT);
    }
    let mut f = opts.open(dev).map_err(|e| match e.raw_os_error() {
        Some(22) if !o.buffered => {
            format!("open {dev}: O_DIRECT refused ({e}); pass --buffered for files on tmpfs")
        }
        _ => format!("open {dev}: {e}"),
    })?;
    let size = f
        .seek(SeekFrom::End(0))
        .map_err(|e| format!("size of {dev}: {e}"))?;
    Ok((f, size))
}

impl Opts {
    /// How the I/O was done, for result lines.
    fn io_kind(&self) -> &'static str {
        if self.buffered {
            "buffered"
        } else {
            "O_DIRECT"
        }
    }
}

fn region(o: &Opts, dev_size: u64) -> Result<(u64, u64), String> {
    let len = o.len.unwrap_or(dev_size.saturating_sub(o.start));
    if o.start % BLOCK as u64 != 0 || len < BLOCK as u64 || o.start + len > dev_size {
        return Err(format!(
            "region {}+{} does not fit the {dev_size}-byte device in 4 KiB blocks",
            o.start, len
        ));
    }
    Ok((o.start / BLOCK as u64, len / BLOCK as u64))
}

fn verify(dev: &str, o: &Opts) -> Result<(), String> {
    let (f, dev_size) = open(dev, true, o)?;
    let (first, blocks) = region(o, dev_size)?;
    let mut gens: Vec<u32> = vec![0; blocks as usize];
    let big = (1usize << 20) / BLOCK;
    let mut buf = Aligned::new(big * BLOCK);
    let mut rd = Aligned::new(big * BLOCK);
    let mut scratch = vec![0u8; BLOCK];
    let mut rng = o.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let (mut small, mut large, mut bytes) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    for op in 0..o.ops {
        let n = if op % 4 == 3 && blocks as usize >= big {
            big
        } else {
            1
        };
        let at = xorshift(&mut rng) % (blocks - n as u64 + 1);
        let data = &mut buf.buf()[..n * BLOCK];
        for i in 0..n {
            let b = at + i as u64;
            gens[b as usize] += 1;
            make_block(
                &mut data[i * BLOCK..(i + 1) * BLOCK],
                o.seed,
                b,
                gens[b as usize],
            );
        }
        let off = (first + at) * BLOCK as u64;
        f.write_all_at(data, off)
            .map_err(|e| format!("write {} bytes at {off}: {e}", n * BLOCK))?;
        let back = &mut rd.buf()[..n * BLOCK];
        f.read_exact_at(back, off)
            .map_err(|e| format!("read {} bytes at {off}: {e}", n * BLOCK))?;
        for i in 0..n {
            let b = at + i as u64;
            check_block(
                &back[i * BLOCK..(i + 1) * BLOCK],
                o.seed,
                b,
                gens[b as usize],
                &mut scratch,
            )
            .map_err(|e| format!("read-back after write {op}: {e}"))?;
        }
        if n == 1 {
            small += 1;
        } else {
            large += 1;
        }
        bytes += (n * BLOCK) as u64;
    }
    // Final pass: every block written still holds its last generation.
    let mut verified = 0u64;
    let one = &mut rd.buf()[..BLOCK];
    for (b, &g) in gens.iter().enumerate() {
        if g == 0 {
            continue;
        }
        let off = (first + b as u64) * BLOCK as u64;
        f.read_exact_at(one, off)
            .map_err(|e| format!("final read at {off}: {e}"))?;
        check_block(one, o.seed, b as u64, g, &mut scratch)
            .map_err(|e| format!("final pass: {e}"))?;
        verified += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "verify {dev}: {small} x 4 KiB + {large} x 1 MiB {} writes ({} MiB) read back and \
         compared, final pass over {verified} blocks: 0 mismatches ({secs:.1} s)",
        o.io_kind(),
        bytes >> 20
    );
    Ok(())
}

fn fill(dev: &str, o: &Opts) -> Result<(), String> {
    let (f, dev_size) = open(dev, true, o)?;
    let (first, blocks) = region(o, dev_size)?;
    let per = 256u64;
    let mut buf = Aligned::new(per as usize * BLOCK);
    let mut b = 0;
    while b < blocks {
        let n = per.min(blocks - b);
        let data = &mut buf.buf()[..n as usize * BLOCK];
        for i in 0..n {
            make_block(
                &mut data[i as usize * BLOCK..(i as usize + 1) * BLOCK],
                o.seed,
                b + i,
                1,
            );
        }
        let off = (first + b) * BLOCK as u64;
        f.write_all_at(data, off)
            .map_err(|e| format!("write at {off}: {e}"))?;
        b += n;
    }
    f.sync_all().map_err(|e| format!("fsync: {e}"))?;
    println!(
        "fill {dev}: {} MiB written ({}) and synced",
        (blocks * BLOCK as u64) >> 20,
        o.io_kind()
    );
    Ok(())
}

fn check(dev: &str, o: &Opts) -> Result<(), String> {
    let (f, dev_size) = open(dev, false, o)?;
    let (first, blocks) = region(o, dev_size)?;
    let per = 256u64;
    let mut buf = Aligned::new(per as usize * BLOCK);
    let mut scratch = vec![0u8; BLOCK];
    let mut b = 0;
    while b < blocks {
        let n = per.min(blocks - b);
        let data = &mut buf.buf()[..n as usize * BLOCK];
        let off = (first + b) * BLOCK as u64;
        f.read_exact_at(data, off)
            .map_err(|e| format!("read at {off}: {e}"))?;
        for i in 0..n {
            let blk = &data[i as usize * BLOCK..(i as usize + 1) * BLOCK];
            check_block(blk, o.seed, b + i, 1, &mut scratch)?;
        }
        b += n;
    }
    println!(
        "check {dev}: {} MiB intact ({} reads)",
        (blocks * BLOCK as u64) >> 20,
        o.io_kind()
    );
    Ok(())
}

fn bench(dev: &str, o: &Opts) -> Result<(), String> {
    let write = o.mode.contains("write");
    let random = o.mode.starts_with("rand");
    if !matches!(o.mode.as_str(), "read" | "write" | "randread" | "randwrite") {
        return Err(format!("unknown --mode {}", o.mode));
    }
    let (f, dev_size) = open(dev, write, o)?;
    let len = o
        .len
        .unwrap_or(dev_size.saturating_sub(o.start))
        .min(dev_size - o.start.min(dev_size));
    let slots = len / o.bs as u64;
    if slots == 0 {
        return Err("region smaller than one block".into());
    }
    let f = Arc::new(f);
    let stop = Arc::new(AtomicBool::new(false));
    let ios = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let err: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let started = Instant::now();
    let mut threads = Vec::new();
    for job in 0..o.jobs {
        let (f, stop, ios, next, err) = (
            f.clone(),
            stop.clone(),
            ios.clone(),
            next.clone(),
            err.clone(),
        );
        let (bs, start, seed) = (o.bs, o.start, o.seed);
        threads.push(std::thread::spawn(move || {
            let mut buf = Aligned::new(bs);
            for (i, b) in buf.buf().iter_mut().enumerate() {
                *b = (i as u8) ^ (job as u8);
            }
            let mut rng = (seed + job as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            while !stop.load(Ordering::Relaxed) {
                let slot = if random {
                    xorshift(&mut rng) % slots
                } else {
                    next.fetch_add(1, Ordering::Relaxed) % slots
                };
                let off = start + slot * bs as u64;
                let r = if write {
                    f.write_all_at(buf.buf(), off)
                } else {
                    f.read_exact_at(buf.buf(), off)
                };
                if let Err(e) = r {
                    *err.lock().unwrap() = Some(format!("I/O at {off}: {e}"));
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
                ios.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    while started.elapsed() < Duration::from_secs_f64(o.secs) && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    if let Some(e) = err.lock().unwrap().take() {
        return Err(e);
    }
    let secs = started.elapsed().as_secs_f64();
    let n = ios.load(Ordering::Relaxed) as f64;
    let mbps = n * o.bs as f64 / secs / 1e6;
    let iops = n / secs;
    println!(
        "bench {dev} {} bs={} jobs={} {}: {mbps:.2} MB/s, {iops:.1} IOPS over {secs:.1} s",
        o.mode,
        o.bs,
        o.jobs,
        o.io_kind()
    );
    if let Some(name) = &o.record {
        let mut xs = xdd_control::xenstore::Xenstore::open()?;
        xs.write(&format!("data/bench/{name}-mbps"), &format!("{mbps:.2}"))?;
        xs.write(&format!("data/bench/{name}-iops"), &format!("{iops:.1}"))?;
    }
    Ok(())
}
