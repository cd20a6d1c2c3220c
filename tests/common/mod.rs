//! Shared by the integration tests that drive the real binary.

use std::path::Path;
use std::process::{Command, Stdio};

/// `phonevault --vault VAULT ARGS...` unlocking with `pass`, in an environment cleaned
/// of what a developer's shell may hold (passphrase file, vault directory, key file,
/// token), with no stdin. Callers add what their test needs.
pub fn phonevault(vault: &Path, pass: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phonevault"));
    c.arg("--vault")
        .arg(vault)
        .args(args)
        .env("PHONEVAULT_PASSPHRASE", pass)
        .env_remove("PHONEVAULT_PASSPHRASE_FILE")
        .env_remove("PHONEVAULT_DIR")
        .env_remove("PHONEVAULT_KEY_FILE")
        .env_remove("PHONEVAULT_TOKEN")
        .stdin(Stdio::null());
    c
}

/// Every file under `dir`, recursively.
#[allow(dead_code)] // not every test binary scans a directory
pub fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            files_under(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}
