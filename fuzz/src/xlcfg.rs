//! The control plane's xl.cfg parser.
//!
//! The xl.cfg parser of the control plane ([`xdd_control::xlcfg::XlConfig`]): the input is
//! the text of an xl.cfg file.
//!
//! Asserts: parsing never panics; an error names a line of the file; a file that parses,
//! written back setting by setting (`key = value` with [`Value::to_xl`]), parses to the same
//! settings, and writing that again gives the same text (parse → emit round trip).

use xdd_control::xlcfg::{Value, XlConfig};

/// Runs one input.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count().max(1);
    match XlConfig::parse(&text, "fuzz.cfg") {
        Ok(cfg) => {
            let written = emit(&cfg);
            let again = XlConfig::parse(&written, "again.cfg")
                .unwrap_or_else(|e| panic!("written back it does not parse: {e}\n{written}"));
            assert_eq!(cfg.settings.len(), again.settings.len());
            for (a, b) in cfg.settings.iter().zip(&again.settings) {
                assert_eq!((&a.key, a.append), (&b.key, b.append));
                assert!(same(&a.value, &b.value), "{:?} != {:?}", a.value, b.value);
            }
            assert_eq!(emit(&again), written);
            for s in &cfg.settings {
                assert!(cfg.get(&s.key).is_some() && cfg.line_of(&s.key).is_some());
                let _ = cfg.get_list(&s.key);
                let _ = cfg.get_str(&s.key);
            }
        }
        Err(e) => {
            assert!(e.line >= 1 && e.line <= lines + 1, "{e} (of {lines} lines)");
            assert!(!e.message.is_empty());
        }
    }
}

/// The file written back, one setting per line.
fn emit(cfg: &XlConfig) -> String {
    cfg.settings
        .iter()
        .map(|s| {
            let op = if s.append { "+=" } else { "=" };
            format!("{} {op} {}\n", s.key, s.value.to_xl())
        })
        .collect()
}

/// Equal values, line numbers aside.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Str(x, _), Value::Str(y, _)) | (Value::Num(x, _), Value::Num(y, _)) => x == y,
        (Value::List(x, _), Value::List(y, _)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        _ => false,
    }
}
