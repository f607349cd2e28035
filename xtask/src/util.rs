//! Small helpers for running host commands with errors a person can act on.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The error type of every xtask step: a message for the person running it.
pub type Error = String;
/// Result of an xtask step.
pub type Result<T = ()> = std::result::Result<T, Error>;

/// Renders a command line for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command with inherited stdio; fails if it cannot start or exits non-zero.
pub fn run(cmd: &mut Command) -> Result {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start `{}`: {e}", describe(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", describe(cmd)))
    }
}

/// Runs a command and returns its stdout; stderr is shown on failure.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot start `{}`: {e}", describe(cmd)))?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The workspace root (parent of xtask/).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// The directory under target/ where the testbed keeps its cache and outputs.
pub fn testbed_dir() -> PathBuf {
    workspace_root().join("target").join("testbed")
}

/// Creates a directory and its parents.
pub fn mkdirs(p: &Path) -> Result {
    std::fs::create_dir_all(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
}

/// Reads a file, naming it in the error.
pub fn read(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
}

/// Writes a file (creating parents), naming it in the error.
pub fn write(p: &Path, data: impl AsRef<[u8]>) -> Result {
    if let Some(parent) = p.parent() {
        mkdirs(parent)?;
    }
    std::fs::write(p, data).map_err(|e| format!("cannot write {}: {e}", p.display()))
}

/// True when the process runs as root.
pub fn is_root() -> bool {
    output(Command::new("id").arg("-u"))
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
}

/// Finds a program on PATH.
pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}
