//! testbed-agent: runs testbed scenarios in dom0, and is the xenstore tool of hotplug scripts
//! and guests.
//!
//! `unsafe` is denied except in `xendev` (ioctl and shared mappings of a Linux guest's
//! /dev/xen devices, which the hostile frontend needs) and `snd` (ALSA's PCM ioctls, to
//! play a tone without alsa-lib): the test tool's kernel boundary.
#![deny(unsafe_code)]

mod blk;
mod hostile;
#[allow(unsafe_code)]
mod snd;
#[allow(unsafe_code)]
mod xendev;
mod xsperm;

use std::sync::Arc;
use testbed_agent::events::{Kind, Log};
use testbed_agent::{hostenv, runner};
use xdd_control::xenstore::Xenstore;

const USAGE: &str = "\
usage: testbed-agent run <plan>              run the scenarios listed in <plan> (dom0)
       testbed-agent xs read|rm <path>       xenstore read / remove
       testbed-agent xs write <path> <value> xenstore write
       testbed-agent xs ls <path>            xenstore directory
       testbed-agent xs batch                writes and chmods from stdin, one transaction (dom0; xsperm.rs)
       testbed-agent mark <name>             write data/mark/<name> (a timed event)
       testbed-agent blk verify|fill|check|bench <dev> [options]   block I/O tests (blk.rs)
       testbed-agent hostile net|blk <attack> [options]   a hostile frontend (hostile/)
       testbed-agent snd tone|record <pcm> --secs S [options]   play a tone / record (snd.rs)
       testbed-agent snd serve <pcm> --freq F | snd wait <path>...   bench snd's player and dom0 wait (snd.rs)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["run", plan] => {
            // The host's settings reach dom0 steps as environment variables (set before any
            // thread starts) and guests through their scripts. Without them, scripts that use
            // them fail on their own; say why here.
            let env = hostenv::load().unwrap_or_else(|e| {
                println!("@@XDD warn host-env={}", e.replace(' ', "_"));
                Vec::new()
            });
            for (name, value) in &env {
                std::env::set_var(name, value);
            }
            let log = Arc::new(Log::new());
            start_watcher(log.clone());
            let failed = runner::run_plan(std::path::Path::new(plan), log, &env);
            std::process::exit(i32::from(failed > 0));
        }
        ["xs", "read", path] => xs().and_then(|mut x| x.read(path)).map(|v| println!("{v}")),
        ["xs", "write", path, value] => xs().and_then(|mut x| x.write(path, value)),
        ["xs", "rm", path] => xs().and_then(|mut x| x.rm(path)),
        ["xs", "batch"] => xsperm::batch(),
        ["xs", "ls", path] => xs().and_then(|mut x| x.directory(path)).map(|v| {
            for name in v {
                println!("{name}");
            }
        }),
        ["mark", name] => {
            let uptime = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
            let t = uptime.split_whitespace().next().unwrap_or("0").to_string();
            xs().and_then(|mut x| x.write(&format!("data/mark/{name}"), &t))
        }
        ["blk", rest @ ..] => blk::main(rest),
        ["hostile", rest @ ..] => hostile::main(rest),
        ["snd", rest @ ..] => snd::main(rest),
        _ => Err(USAGE.to_string()),
    };
    if let Err(e) = result {
        eprintln!("testbed-agent: {e}");
        std::process::exit(1);
    }
}

fn xs() -> Result<Xenstore, String> {
    Xenstore::open()
}

/// Records every change under /local/domain with dom0's clock, on its own connection.
fn start_watcher(log: Arc<Log>) {
    std::thread::spawn(move || {
        let mut watch = match Xenstore::open() {
            Ok(x) => x,
            Err(e) => return eprintln!("testbed-agent: watcher: {e}"),
        };
        let mut reader = match Xenstore::open() {
            Ok(x) => x,
            Err(e) => return eprintln!("testbed-agent: watcher: {e}"),
        };
        if let Err(e) = watch.watch("/local/domain", "all") {
            return eprintln!("testbed-agent: watch /local/domain: {e}");
        }
        while let Ok((path, _token)) = watch.next_event() {
            let value = reader.read(&path).ok();
            log.push(Kind::Node { path, value });
        }
    });
}
