//! Suppression-list import throughput and peak memory on the embedded sled store, with
//! the compute floor measured in the same run: normalize + blind index of every row,
//! streamed from the same file, no storage (what the import's normalizing thread must
//! do at the least).
//!
//! Each import runs in its own process, so that its peak RSS (VmHWM) is its own: the
//! 200k set (benches/data/numbers-200k.csv, mixed countries) and a synthetic list of
//! `PHONEVAULT_BENCH_BIG` (default 2,000,000) UK mobile numbers, to show that memory
//! does not grow with the list.
//!
//! `cargo bench --bench suppress`; `PHONEVAULT_BENCH_RUNS=N` (default 3) runs of each,
//! medians printed; `PHONEVAULT_BENCH_BIG=0` skips the big list.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use phonevault::vault::{list_digest, SuppressOptions};
use phonevault_keys::{derive_tenant_keys, TenantSeed, VaultId};

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Rows per second of normalize + blind index over the file, streamed as the import
/// reads it, on one thread (the import normalizes on one thread too).
fn compute_floor(path: &Path) -> f64 {
    let keys = derive_tenant_keys(&TenantSeed::generate(), &VaultId::generate(), "bench", 1);
    let mut rdr = csv::Reader::from_path(path).expect("open list");
    let mut record = csv::StringRecord::new();
    let t = Instant::now();
    let (mut rows, mut sink) = (0u64, 0u64);
    while rdr.read_record(&mut record).expect("read") {
        rows += 1;
        if let Ok(d) = list_digest(&keys.index, record.get(0).unwrap_or(""), None) {
            sink += u64::from(d[0]);
        }
    }
    std::hint::black_box(sink);
    rows as f64 / t.elapsed().as_secs_f64()
}

/// One import of the list at `path` into a fresh vault: rows/s, peak RSS (MB) after
/// it, and the compute floor of the same file.
fn child(path: &Path) -> (f64, f64, f64, u64) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let vault = common::bench_vault(&tmp.path().join("vault"));
    vault
        .add_purposes("bench", &["marketing".into()])
        .expect("purpose");
    let opts = SuppressOptions {
        tenant: "bench".into(),
        list: "dnc".into(),
        purposes: vec!["marketing".into()],
        region: None,
        column: "phone".into(),
    };
    let file = std::fs::File::open(path).expect("open list");
    let t = Instant::now();
    let r = vault
        .suppress_import(&opts, std::io::BufReader::new(file), |_| Ok(()))
        .expect("suppress import");
    let rate = r.rows as f64 / t.elapsed().as_secs_f64();
    let peak = peak_rss_mb();
    drop(vault);
    (rate, peak, compute_floor(path), r.count)
}

/// A list of `n` distinct valid UK mobile numbers (E.164).
fn synthetic(path: &Path, n: u64) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    writeln!(w, "phone").expect("write");
    for i in 0..n {
        writeln!(w, "+4474{:08}", i).expect("write");
    }
    w.flush().expect("flush");
}

fn measure(label: &str, path: &Path, runs: usize) {
    let mut all = Vec::new();
    for i in 0..runs {
        let mut child = std::process::Command::new(std::env::current_exe().expect("current exe"));
        child.env("PHONEVAULT_BENCH_CHILD", path);
        let v = common::child_figures(child);
        println!(
            "{label} run {}: suppress import {:.0} rows/s | compute floor {:.0} rows/s | import/floor {:.2} | peak RSS {:.0} MB | {} entries",
            i + 1,
            v[0],
            v[2],
            v[0] / v[2],
            v[1],
            v[3]
        );
        all.push(v);
    }
    let m = |i: usize| common::median(all.iter().map(|v| v[i]).collect());
    println!(
        "{label} median of {runs}: suppress import {:.0} rows/s | compute floor {:.0} rows/s | import/floor {:.2} | peak RSS {:.0} MB",
        m(0),
        m(2),
        common::median(all.iter().map(|v| v[0] / v[2]).collect()),
        m(1)
    );
}

fn main() {
    if let Some(path) = std::env::var_os("PHONEVAULT_BENCH_CHILD") {
        let (rate, peak, floor, count) = child(Path::new(&path));
        println!("RESULT {rate} {peak} {floor} {count}");
        return;
    }
    let runs: usize = std::env::var("PHONEVAULT_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let big: u64 = std::env::var("PHONEVAULT_BENCH_BIG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/data");
    measure("200k", &data.join("numbers-200k.csv"), runs);
    if big > 0 {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("big.csv");
        synthetic(&path, big);
        measure(&format!("synthetic {big}"), &path, runs);
    }
}
