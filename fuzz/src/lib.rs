//! The fuzz targets' bodies: each module's `run(data)` drives real library code with
//! fuzzer bytes and asserts what it can (no panic, parse→emit round trips, responses holding
//! only bytes the backend wrote). The binaries in `fuzz_targets/` are one line each around
//! these, so the targets' code is ordinary Rust the main workspace's style applies to.
//!
//! See README.md for the targets, how to run them and how to add one.
#![forbid(unsafe_code)]

pub mod harness;
pub mod input;

pub mod appliance;
pub mod audioback_stream;
pub mod blkback_request;
pub mod blkback_vbd;
pub mod netback_frame;
pub mod netback_tx_chain;
pub mod netback_vif;
pub mod options;
pub mod ring_indices;
pub mod seeds;
pub mod usbback_vusb;
pub mod xenbus_frontend;
pub mod xenstore_client;
pub mod xlcfg;

/// A target: its name (the binary in `fuzz_targets/`, the directory in `corpus/`) and its
/// body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("appliance", appliance::run),
    ("audioback_stream", audioback_stream::run),
    ("blkback_request", blkback_request::run),
    ("blkback_vbd", blkback_vbd::run),
    ("netback_frame", netback_frame::run),
    ("netback_tx_chain", netback_tx_chain::run),
    ("netback_vif", netback_vif::run),
    ("options", options::run),
    ("ring_indices", ring_indices::run),
    ("usbback_vusb", usbback_vusb::run),
    ("xenbus_frontend", xenbus_frontend::run),
    ("xenstore_client", xenstore_client::run),
    ("xlcfg", xlcfg::run),
];

#[cfg(test)]
mod tests {
    use super::TARGETS;
    use std::path::{Path, PathBuf};

    fn dir(sub: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(sub)
    }

    #[test]
    fn every_target_has_a_binary_and_a_corpus() {
        let mut bins: Vec<String> = std::fs::read_dir(dir("fuzz_targets"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
            .collect();
        bins.sort();
        let names: Vec<&str> = TARGETS.iter().map(|t| t.0).collect();
        assert_eq!(bins, names, "TARGETS lists fuzz_targets/*.rs, sorted");
        for name in names {
            assert!(dir("corpus").join(name).is_dir(), "corpus/{name}");
        }
    }

    /// With `XDD_FUZZ_BLESS=1`, (re)writes the seeds instead of comparing.
    #[test]
    fn seeds_are_in_the_corpus() {
        let bless = std::env::var_os("XDD_FUZZ_BLESS").is_some();
        for (name, _) in TARGETS {
            for (seed, bytes) in crate::seeds::seeds(name) {
                let path = dir("corpus").join(name).join(format!("seed-{seed}"));
                if bless {
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(&path, &bytes).unwrap();
                } else {
                    let have = std::fs::read(&path).unwrap_or_default();
                    assert!(
                        have == bytes,
                        "{} is missing or stale: XDD_FUZZ_BLESS=1 cargo test \
                         --manifest-path fuzz/Cargo.toml",
                        path.display()
                    );
                }
            }
        }
    }

    /// Every corpus input (seeds and the inputs of crashes found) passes, without
    /// instrumentation too.
    #[test]
    fn the_corpus_passes() {
        for (name, run) in TARGETS {
            for e in std::fs::read_dir(dir("corpus").join(name)).unwrap() {
                let path = e.unwrap().path();
                run(&std::fs::read(&path).unwrap());
            }
        }
    }
}
