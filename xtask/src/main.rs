//! `cargo xtask …`: builds images, drives the Xen testbed, runs the demo, tests and benchmarks.

mod apt;
mod bench;
mod elf;
mod fetch;
mod fileserver;
mod fuzz;
mod hosttools;
mod images;
mod profile;
mod qemu;
mod release;
mod results;
mod rootfs;
mod suite;
mod testbed;
mod unikernels;
mod util;
mod watchdog;

use release::Release;
use util::Result;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  demo                         boot the appliance in the testbed and show what each guest got
  test                         run every test: format, clippy, unit tests, a short fuzzing
                               pass, all testbed scenarios
  fuzz [<target>|all] [--seconds N]
                               list the fuzz targets, or fuzz one or all (see fuzz/README.md)
  bench net|blk|nic|usb|snd    our driver domains next to Linux's, in one testbed boot
  profile net [mtu|small|gso] [--packets N]
                               instructions per packet in netback's data path (host
                               platform, callgrind), grouped, with the costliest functions
  testbed fetch                download and unpack the release's Debian packages (cached)
  testbed run <scenario>...    boot Xen under QEMU and run scenarios (`all` for every one)
  testbed list                 list the scenarios in tests/scenarios
  testbed selftest             check that the harness reports failures and hangs

environment:
  XDD_RELEASE=bookworm|trixie  Xen 4.17/Linux 6.1 (default) or Xen 4.20/Linux 6.12
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    if words == ["serve-file"] {
        // Hidden: QEMU's slirp runs this per connection to the testbed's file server. Its
        // stderr is the connection too, so failure is told by the exit status alone.
        std::process::exit(i32::from(fileserver::serve_stdio().is_err()));
    }
    if let Err(e) = dispatch(&words) {
        eprintln!("xtask: error: {e}");
        std::process::exit(1);
    }
}

fn dispatch(args: &[&str]) -> Result {
    match args {
        ["testbed", "fetch"] => {
            hosttools::ensure(false)?;
            fetch::fetch(&fetch::Cache::new(Release::from_env()?)).map(|_| ())
        }
        ["testbed", "list"] => testbed::list(),
        ["testbed", "selftest"] => testbed::selftest(),
        ["test"] => suite::test(),
        ["fuzz", rest @ ..] => fuzz::command(rest),
        ["bench", what] => bench::run(what),
        ["profile", rest @ ..] => profile::command(rest),
        ["demo"] => suite::demo(),
        ["testbed", "run", names @ ..] => testbed::run(names).map(|_| ()),
        [] | ["help"] | ["--help"] | ["-h"] => {
            print!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown command `{}`\n{USAGE}", args.join(" "))),
    }
}
