//! Settings the host passes to scenarios (the file server's URL and its files' SHA-256):
//! `cargo xtask testbed` writes them to /testbed/env in dom0 as `NAME=value` lines; the agent
//! exports them to dom0 steps and puts them at the top of every Linux domain's script.

/// Where xtask puts the settings in dom0.
pub const PATH: &str = "/testbed/env";

/// One setting.
pub type Var = (String, String);

/// Parses `NAME=value` lines (blank lines ignored). Names are `[A-Z0-9_]+`; values are
/// limited to characters that need no shell quoting, so they are safe in generated scripts.
pub fn parse(text: &str) -> Result<Vec<Var>, String> {
    let mut vars = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| format!("`{line}`: expected NAME=value"))?;
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        let value_ok = value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":/._-".contains(c));
        if !name_ok || !value_ok {
            return Err(format!("`{line}`: unsafe name or value"));
        }
        vars.push((name.to_string(), value.to_string()));
    }
    Ok(vars)
}

/// Reads [`PATH`].
pub fn load() -> Result<Vec<Var>, String> {
    let text = std::fs::read_to_string(PATH).map_err(|e| format!("cannot read {PATH}: {e}"))?;
    parse(&text).map_err(|e| format!("{PATH}: {e}"))
}

/// `export NAME=value` lines for the top of a shell script.
pub fn exports(vars: &[Var]) -> String {
    vars.iter()
        .map(|(n, v)| format!("export {n}={v}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_exports() {
        let vars = parse("XDD_FILESERVER=http://10.0.2.100\n\nXDD_FILE_1M_SHA256=ab12\n").unwrap();
        assert_eq!(
            exports(&vars),
            "export XDD_FILESERVER=http://10.0.2.100\nexport XDD_FILE_1M_SHA256=ab12\n"
        );
    }

    #[test]
    fn rejects_what_a_shell_would_interpret() {
        assert!(parse("X=$(reboot)").is_err());
        assert!(parse("X=a b").is_err());
        assert!(parse("lower=1").is_err());
        assert!(parse("=1").is_err());
        assert!(parse("NOEQUALS").is_err());
    }
}
