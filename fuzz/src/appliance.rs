//! The control plane's appliance file (TOML) with the xl.cfg files it refers to.
//!
//! The appliance file of the control plane ([`xdd_control::appliance::Appliance::parse`]):
//! the input is the appliance TOML, a NUL, then the text every xl.cfg file it refers to
//! reads as (the files live in memory; `@` in it reads as the file's stem).
//!
//! Asserts: loading never panics; an error is one non-empty message; a loaded appliance has
//! unique domain names, each found by name, and the xl.cfg text xddctl would write for each
//! domain parses as xl.cfg.

use std::collections::BTreeSet;
use std::path::Path;
use xdd_control::appliance::{Appliance, Files};
use xdd_control::xlcfg::XlConfig;

/// Every referenced file exists and reads as the same text, with each `@` replaced by the
/// file's stem (so `name = "@"` agrees with any file name).
struct MemFiles<'a> {
    cfg: &'a str,
}

impl Files for MemFiles<'_> {
    fn read(&self, path: &Path) -> Result<String, String> {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default();
        Ok(self.cfg.replace('@', &stem))
    }
    fn is_file(&self, _path: &Path) -> bool {
        true
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let (toml, cfg) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let toml = String::from_utf8_lossy(toml);
    let cfg = String::from_utf8_lossy(cfg);
    let files = MemFiles { cfg: &cfg };
    match Appliance::parse(&toml, Path::new("/etc/xdd/appliance.toml"), &files) {
        Ok(app) => {
            let mut names = BTreeSet::new();
            for d in &app.domains {
                assert!(names.insert(d.name.clone()), "duplicate domain {}", d.name);
                assert_eq!(app.domain(&d.name).map(|x| &x.name), Some(&d.name));
                if let Ok(Some(text)) = d.config_text() {
                    XlConfig::parse(&text, "generated.cfg").unwrap_or_else(|e| {
                        panic!("xddctl would write an xl.cfg that does not parse: {e}\n{text}")
                    });
                }
            }
            let all: BTreeSet<usize> = (0..app.domains.len()).collect();
            let mut stopped: Vec<usize> = app.stop_waves(&all).into_iter().flatten().collect();
            stopped.sort_unstable();
            assert!(stopped.iter().copied().eq(all), "every domain stopped once");
        }
        Err(e) => assert!(!e.is_empty()),
    }
}
