//! Set-up shared by the benchmarks: a fresh vault with one tenant, and import options.
#![allow(dead_code)] // each benchmark uses what it needs

use std::path::Path;

use phonevault::vault::{ImportOptions, OpenOptions, Unlock, Vault};
use phonevault_keys::{KdfParams, Passphrase};

/// A new sled vault in `dir` (cheap KDF: unlocking is not what is measured), open,
/// with tenant `bench` declaring purpose `otp`.
pub fn bench_vault(dir: &Path) -> Vault {
    let pass = Passphrase::new("bench".into());
    Vault::init(dir, &pass, KdfParams::cheap_for_tests()).expect("init");
    let vault = Vault::open(dir, &Unlock::Passphrase(pass), OpenOptions::default()).expect("open");
    vault
        .create_tenant("bench", &["otp".into()], None)
        .expect("tenant");
    vault
}

/// Import into `bench` with consent `otp`, numbers in column `phone`.
pub fn import_options() -> ImportOptions {
    ImportOptions {
        tenant: "bench".into(),
        purposes: vec!["otp".into()],
        source: "bench".into(),
        region: None,
        column: "phone".into(),
    }
}

/// This process's peak resident memory (VmHWM) in MB.
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
