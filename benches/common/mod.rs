//! Set-up shared by the benchmarks: a fresh vault with one tenant, and import options;
//! the integration tests' harness (the binary in a clean environment, a running server,
//! an HTTP client over its socket) for the benchmarks that drive the real server.
#![allow(dead_code)] // each benchmark uses what it needs

#[path = "../../tests/common/mod.rs"]
pub mod harness;

use std::path::Path;

pub use harness::vault::{source, tenant};
use phonevault::vault::{ImportOptions, OpenOptions, Unlock, Vault};
use phonevault_keys::{KdfParams, Passphrase};

/// A new sled vault in `dir` (cheap KDF: unlocking is not what is measured), open,
/// with tenant `bench` declaring purpose `otp`.
pub fn bench_vault(dir: &Path) -> Vault {
    let pass = Passphrase::new("bench".into());
    Vault::init(dir, &pass, KdfParams::cheap_for_tests()).expect("init");
    let vault = Vault::open(dir, &Unlock::Passphrase(pass), OpenOptions::default()).expect("open");
    vault
        .create_tenant(&tenant("bench"), &["otp".into()], None)
        .expect("tenant");
    vault
}

/// Import into `bench` with consent `otp`, numbers in column `phone`.
pub fn import_options() -> ImportOptions {
    ImportOptions {
        tenant: tenant("bench"),
        purposes: vec!["otp".into()],
        source: source("bench"),
        region: None,
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

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Lookups per second of `lookups` (each stored in `bench` with consent `otp`), split
/// over `threads` threads.
pub fn lookup_rate(v: &Vault, lookups: &[String], threads: usize) -> f64 {
    let t = std::time::Instant::now();
    std::thread::scope(|s| {
        for part in lookups.chunks(lookups.len().div_ceil(threads)) {
            let v = v.clone();
            s.spawn(move || {
                let bench = tenant("bench");
                for l in part {
                    assert!(v.find(&bench, l, None, "otp").expect("find").is_some());
                }
            });
        }
    });
    lookups.len() as f64 / t.elapsed().as_secs_f64()
}

/// Runs a benchmark's child process (`cmd`) and returns the figures of its
/// `RESULT a b c ...` line; panics with the child's stderr when there is none.
pub fn child_figures(mut cmd: std::process::Command) -> Vec<f64> {
    let out = cmd.output().expect("run the benchmark child");
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(line) = text.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
        panic!(
            "benchmark run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    line.split(' ')
        .map(|x| x.parse().expect("figure"))
        .collect()
}
