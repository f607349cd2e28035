//! `testbed-agent hostile net|blk ATTACK [options]`: a userspace frontend that attacks a
//! driver domain from inside a Linux guest (issue 12; the catalogue is
//! shared/notes/hostile-frontends.md).
//!
//! The guest must not bind the kernel's frontend to the device (boot it with
//! `xdd.nomodules=1 xdd.modules=xen-evtchn,xen-gntalloc`): the tool is the frontend. It grants
//! its rings and buffers with `/dev/xen/gntalloc`, binds and notifies an event channel with
//! `/dev/xen/evtchn`, and writes its frontend keys and `state` under
//! `device/<vif|vbd>/<dev>/` itself. Each invocation runs one attack on one device: it resets
//! the device (frontend Closed, then Initialising, until the backend is back in InitWait),
//! connects, attacks, judges the backend's answers, and closes the device again. It prints
//! `hostile: …` lines and writes `data/hostile/<net|blk>-<attack>` = `pass|fail <summary>`;
//! it exits 0 only on a pass. See tests/README.md ("Hostile frontends").

mod blk;
mod frame;
mod front;
mod net;

use std::time::Duration;

/// Options shared by the attacks.
pub struct Opts {
    /// Device id under `device/<type>/`.
    pub dev: u32,
    /// Our IPv4 address (net).
    pub ip: [u8; 4],
    /// The healthy guest's address (net): the attacks talk to it.
    pub peer: [u8; 4],
    /// Duration of timed attacks (event storm, flooding).
    pub secs: f64,
    /// Repetitions of counted attacks.
    pub count: u32,
    /// Offer `feature-sg` (net).
    pub sg: bool,
}

fn ip(v: &str) -> Result<[u8; 4], String> {
    let p: Vec<u8> = v
        .split('.')
        .map(|x| x.parse::<u8>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("bad IPv4 address {v}"))?;
    p.try_into().map_err(|_| format!("bad IPv4 address {v}"))
}

impl Opts {
    fn parse(args: &[&str]) -> Result<Self, String> {
        let mut o = Opts {
            dev: 0,
            ip: [10, 0, 0, 66],
            peer: [10, 0, 0, 11],
            secs: 10.0,
            count: 2000,
            sg: true,
        };
        let mut it = args.iter();
        while let Some(&k) = it.next() {
            if k == "--no-sg" {
                o.sg = false;
                continue;
            }
            let v = it.next().ok_or(format!("{k} needs a value"))?;
            let num = |v: &str| v.parse::<f64>().map_err(|_| format!("bad number {v}"));
            match k {
                "--dev" => o.dev = num(v)? as u32,
                "--ip" => o.ip = ip(v)?,
                "--peer" => o.peer = ip(v)?,
                "--secs" => o.secs = num(v)?,
                "--count" => o.count = num(v)? as u32,
                _ => return Err(format!("unknown option {k}")),
            }
        }
        Ok(o)
    }
}

/// A verdict line collector: everything an attack observed, printed as it happens.
pub struct Log {
    name: String,
    lines: Vec<String>,
}

impl Log {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            lines: Vec::new(),
        }
    }

    /// Prints and keeps an observation.
    pub fn note(&mut self, line: impl Into<String>) {
        let line = line.into();
        println!("hostile: {}: {line}", self.name);
        self.lines.push(line);
    }
}

/// Runs `hostile <args>`.
pub fn main(args: &[&str]) -> Result<(), String> {
    if let ["cksum", path] = args {
        // The POSIX cksum of a file, as the tcp-sink attack computes it of what it received
        // (busybox in the guests has no cksum applet).
        let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        let mut c = frame::Cksum::default();
        c.update(&data);
        println!("{}", c.finish());
        return Ok(());
    }
    let (kind, attack, opts) = match args {
        [kind, attack, rest @ ..] => (*kind, *attack, Opts::parse(rest)?),
        _ => {
            return Err(format!(
                "usage: testbed-agent hostile net|blk ATTACK [--dev N] [--ip A] [--peer A] \
                 [--secs S] [--count N] [--no-sg]\n       testbed-agent hostile cksum FILE\n  net attacks: {}\n  blk attacks: {}",
                net::ATTACKS.join(" "),
                blk::ATTACKS.join(" ")
            ))
        }
    };
    let name = format!("{kind}-{attack}");
    let mut log = Log::new(&name);
    let result = match kind {
        "net" => net::run(attack, &opts, &mut log),
        "blk" => blk::run(attack, &opts, &mut log),
        _ => Err(format!("unknown device kind {kind}")),
    };
    let summary = match &result {
        Ok(s) => format!("pass {s}"),
        Err(e) => format!("fail {e}"),
    };
    println!("hostile: {name}: {summary}");
    if let Ok(mut xs) = xdd_control::xenstore::Xenstore::open() {
        let _ = xs.write(&format!("data/hostile/{name}"), &summary);
    }
    result.map(|_| ())
}

/// Sleeps a little between polls of shared memory or xenstore.
fn nap() {
    std::thread::sleep(Duration::from_millis(2));
}
