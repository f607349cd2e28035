//! `cargo xtask fuzz`: coverage-guided fuzzing of the parsers of guest-controlled bytes.
//!
//! The targets live in `fuzz/` (a workspace of its own: see fuzz/README.md); they are
//! libFuzzer binaries built on the stable toolchain by passing LLVM's SanitizerCoverage
//! options through RUSTFLAGS, for the host triple given explicitly so build scripts and
//! proc macros stay uninstrumented. Each run starts from the committed corpus
//! (`fuzz/corpus/<target>`, read only) plus what earlier runs found on this machine
//! (`target/fuzz/corpus/<target>`, where new inputs go). A crash, a timeout or running out of
//! memory fails the run, naming the input libFuzzer saved.

use crate::hosttools;
use crate::util::{self, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The triple the targets are built for (explicit, so RUSTFLAGS skip build scripts).
const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// Seconds per target in `cargo xtask test`.
pub const TEST_SECONDS: u64 = 5;

/// Seconds per target when `--seconds` is not given.
const DEFAULT_SECONDS: u64 = 60;

/// What the instrumentation needs: libFuzzer's coverage counters and comparison tracing,
/// and `cfg(fuzzing)` as cargo-fuzz sets it.
const RUSTFLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg",
    "fuzzing",
];

const USAGE: &str = "\
usage: cargo xtask fuzz                               list the targets
       cargo xtask fuzz <target>|all [--seconds N]    fuzz (default 60 s per target)
       cargo xtask fuzz <target> --input FILE         run one input (reproduce a crash)";

fn fuzz_dir() -> PathBuf {
    util::workspace_root().join("fuzz")
}

fn out_dir() -> PathBuf {
    util::workspace_root().join("target").join("fuzz")
}

fn binary(target: &str) -> PathBuf {
    out_dir().join(TRIPLE).join("release").join(target)
}

/// The targets: one binary per `fuzz/fuzz_targets/<name>.rs`, sorted.
pub fn targets() -> Result<Vec<String>> {
    let dir = fuzz_dir().join("fuzz_targets");
    let rd = std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut names: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "rs").then(|| p.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    names.sort();
    Ok(names)
}

/// The first line of a target's module documentation (`fuzz/src/<name>.rs`).
fn summary(target: &str) -> String {
    let path = fuzz_dir().join("src").join(format!("{target}.rs"));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let first = text.lines().next().unwrap_or_default();
    first.trim_start_matches("//!").trim().to_string()
}

/// `cargo xtask fuzz …`.
pub fn command(args: &[&str]) -> Result {
    let names = targets()?;
    let (target, rest) = match args {
        [] | ["list"] => {
            println!("fuzz targets (cargo xtask fuzz <target>|all [--seconds N]):");
            for t in &names {
                println!("  {t:<18} {}", summary(t));
            }
            return Ok(());
        }
        [t, rest @ ..] => (*t, rest),
    };
    let chosen: Vec<String> = if target == "all" {
        names.clone()
    } else if names.iter().any(|n| n == target) {
        vec![target.to_string()]
    } else {
        return Err(format!(
            "no fuzz target `{target}` (targets: {})\n{USAGE}",
            names.join(", ")
        ));
    };
    match rest {
        [] => fuzz(&chosen, DEFAULT_SECONDS),
        ["--seconds", n] => {
            let secs: u64 = n
                .parse()
                .ok()
                .filter(|&s| s > 0)
                .ok_or_else(|| format!("--seconds {n}: expected a positive number\n{USAGE}"))?;
            fuzz(&chosen, secs)
        }
        ["--input", file] if chosen.len() == 1 => {
            prepare()?;
            util::run(Command::new(binary(&chosen[0])).arg(file))
        }
        _ => Err(format!("unexpected `{}`\n{USAGE}", rest.join(" "))),
    }
}

/// The short pass of `cargo xtask test`: every target for [`TEST_SECONDS`].
pub fn test_pass() -> Result {
    fuzz(&targets()?, TEST_SECONDS)
}

/// Installs what is missing (as root), builds, runs `targets` one after the other.
fn fuzz(targets: &[String], seconds: u64) -> Result {
    prepare()?;
    let mut failed = Vec::new();
    for t in targets {
        if let Err(e) = run_target(t, seconds) {
            eprintln!("{e}");
            failed.push(t.as_str());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} fuzz targets failed: {}",
            failed.len(),
            targets.len(),
            failed.join(", ")
        ))
    }
}

/// The C++ compiler libFuzzer needs, then the instrumented build.
fn prepare() -> Result {
    hosttools::ensure_fuzz(true)?;
    let t = Instant::now();
    eprintln!("fuzz: building the targets (instrumented, release)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    util::run(
        Command::new(cargo)
            .current_dir(fuzz_dir())
            .args(["build", "--quiet", "--release", "--bins", "--locked"])
            .args(["--target", TRIPLE])
            .arg("--target-dir")
            .arg(out_dir())
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env("RUSTFLAGS", RUSTFLAGS.join(" ")),
    )?;
    eprintln!("fuzz: built in {:.0} s", t.elapsed().as_secs_f64());
    Ok(())
}

/// Fuzzes one target for `seconds`; a failure names the saved input and how to rerun it.
fn run_target(target: &str, seconds: u64) -> Result {
    let seeds = fuzz_dir().join("corpus").join(target);
    let found = out_dir().join("corpus").join(target);
    let artifacts = out_dir().join("artifacts").join(target);
    let log = out_dir().join("logs").join(format!("{target}.log"));
    if artifacts.exists() {
        std::fs::remove_dir_all(&artifacts)
            .map_err(|e| format!("cannot clear {}: {e}", artifacts.display()))?;
    }
    for d in [&seeds, &found, &artifacts] {
        util::mkdirs(d)?;
    }
    util::mkdirs(log.parent().expect("a directory"))?;
    let out =
        std::fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot share {}: {e}", log.display()))?;
    let mut prefix = artifacts.clone().into_os_string();
    prefix.push("/");
    let mut cmd = Command::new(binary(target));
    cmd.arg(format!("-max_total_time={seconds}"))
        .args(["-timeout=10", "-rss_limit_mb=2048", "-max_len=8192"])
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}", prefix.to_string_lossy()))
        .arg(&found)
        .arg(&seeds)
        .stdout(out)
        .stderr(err);
    let t = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start `{}`: {e}", util::describe(&cmd)))?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let saved = saved_inputs(&artifacts);
    if status.success() && saved.is_empty() {
        eprintln!(
            "fuzz {target:<18} ok: {} runs in {:.0} s, {} (log {})",
            stat(&text, "stat::number_of_executed_units").unwrap_or("?"),
            t.elapsed().as_secs_f64(),
            coverage(&text).unwrap_or_else(|| "coverage ?".into()),
            log.display()
        );
        return Ok(());
    }
    let tail: Vec<&str> = text.lines().rev().take(30).collect();
    let mut msg = format!(
        "fuzz {target}: FAILED ({status}); the end of {}:\n",
        log.display()
    );
    for l in tail.iter().rev() {
        msg.push_str(&format!("  | {l}\n"));
    }
    if saved.is_empty() {
        msg.push_str("  (libFuzzer saved no input)\n");
    }
    for p in &saved {
        msg.push_str(&format!(
            "  failing input: {}\n  rerun it:      cargo xtask fuzz {target} --input {}\n",
            p.display(),
            p.display()
        ));
    }
    Err(msg)
}

/// Inputs libFuzzer saved for a failure (`crash-…`, `timeout-…`, `oom-…`, `leak-…`).
fn saved_inputs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.retain(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        ["crash-", "timeout-", "oom-", "leak-"]
            .iter()
            .any(|k| name.starts_with(k))
    });
    out.sort();
    out
}

/// A `stat::name: value` line of libFuzzer's final statistics.
fn stat<'a>(log: &'a str, name: &str) -> Option<&'a str> {
    log.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// `cov: N ft: M` of libFuzzer's last status line.
fn coverage(log: &str) -> Option<String> {
    let line = log.lines().rev().find(|l| l.contains(" cov: "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "cov:")?;
    let cov = words.get(at + 1)?;
    let corp = words
        .iter()
        .position(|w| *w == "corp:")
        .and_then(|i| words.get(i + 1))
        .unwrap_or(&"?");
    Some(format!("coverage {cov} edges, corpus {corp}"))
}

#[cfg(test)]
mod tests {
    use super::{coverage, stat};

    #[test]
    fn final_statistics_are_read_from_the_log() {
        let log = "#2\tINITED cov: 12 ft: 13 corp: 1/1b exec/s: 0 rss: 27Mb\n\
                   #5000\tDONE   cov: 123 ft: 238 corp: 50/14298b lim: 4096 exec/s: 1000\n\
                   stat::number_of_executed_units: 5000\n\
                   stat::average_exec_per_sec:     1000\n";
        assert_eq!(stat(log, "stat::number_of_executed_units"), Some("5000"));
        assert_eq!(stat(log, "stat::missing"), None);
        assert_eq!(
            coverage(log).as_deref(),
            Some("coverage 123 edges, corpus 50/14298b")
        );
    }
}
