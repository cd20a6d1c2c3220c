//! Suppression-list import throughput and peak memory on the embedded sled store, with
//! the compute floor measured in the same run: normalize + blind index of every row,
//! streamed from the same file, no storage (what the import's normalizing thread must
//! do at the least).
//!
//! The storage floor is a bare sled store given as many entries of the same sizes
//! (random keys, batches of the import's size, one flush), in its own process too, so
//! that its peak RSS shows what sled itself holds for that many entries.
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
use common::tenant;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use phonevault::store::{Batch, SledStore, Store, Tree};
use phonevault::vault::{list_digest, SuppressOptions, SUPPRESS_CHUNK};
use phonevault_keys::{derive_tenant_keys, TenantSeed, VaultId};

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
        .add_purposes(&tenant("bench"), &["marketing".into()])
        .expect("purpose");
    let opts = SuppressOptions {
        tenant: tenant("bench"),
        list: "dnc".into(),
        purposes: vec!["marketing".into()],
        region: None,
    };
    let file = std::fs::File::open(path).expect("open list");
    let t = Instant::now();
    let r = vault
        .suppress_import(
            &opts,
            phonevault::cli::CsvRows::new(std::io::BufReader::new(file), "phone").unwrap(),
            |_| Ok(()),
        )
        .expect("suppress import");
    let rate = r.rows as f64 / t.elapsed().as_secs_f64();
    let peak = common::peak_rss_mb();
    drop(vault);
    (rate, peak, compute_floor(path), r.count)
}

/// Entries per second of bare sled batch writes of `n` entries the size of a list's
/// (key 4 + 1 + 1 + 3 + 8 + 16 bytes, value 16), and the peak RSS (MB) after them.
fn storage_floor(n: u64) -> (f64, f64) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(tmp.path(), 64 << 20).expect("open sled");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let t = Instant::now();
    let mut done = 0u64;
    while done < n {
        let mut b = Batch::default();
        for _ in 0..SUPPRESS_CHUNK.min((n - done) as usize) {
            let mut k = vec![
                0, 0, 0, 1, b'E', 3, b'd', b'n', b'c', 7, 7, 7, 7, 7, 7, 7, 7,
            ];
            k.extend_from_slice(&next().to_le_bytes());
            k.extend_from_slice(&next().to_le_bytes());
            b.put(Tree::Suppress, k, next().to_le_bytes().repeat(2));
            done += 1;
        }
        store.commit(&b).expect("commit");
    }
    store.flush().expect("flush");
    (n as f64 / t.elapsed().as_secs_f64(), common::peak_rss_mb())
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

/// Runs this benchmark as a child with `var` set to `value`; returns its figures.
/// The figures of this benchmark run as a child process with `var` set to `value`.
fn child_figures(var: &str, value: &std::ffi::OsStr) -> Vec<f64> {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("current exe"));
    cmd.env(var, value);
    common::child_figures(cmd)
}

fn measure(label: &str, path: &Path, runs: usize) {
    let mut all = Vec::new();
    for i in 0..runs {
        let mut v = child_figures("PHONEVAULT_BENCH_CHILD", path.as_os_str());
        let floor = child_figures("PHONEVAULT_BENCH_FLOOR", v[3].to_string().as_ref());
        v.extend(floor);
        println!(
            "{label} run {}: suppress import {:.0} rows/s (peak RSS {:.0} MB) | compute floor {:.0} rows/s | storage floor {:.0} entries/s (peak RSS {:.0} MB) | import/compute {:.2} | import/storage {:.2} | {} entries",
            i + 1,
            v[0],
            v[1],
            v[2],
            v[4],
            v[5],
            v[0] / v[2],
            v[0] / v[4],
            v[3]
        );
        all.push(v);
    }
    let m = |i: usize| common::median(all.iter().map(|v| v[i]).collect());
    println!(
        "{label} median of {runs}: suppress import {:.0} rows/s (peak RSS {:.0} MB) | compute floor {:.0} rows/s | storage floor {:.0} entries/s (peak RSS {:.0} MB) | import/compute {:.2} | import/storage {:.2}",
        m(0),
        m(1),
        m(2),
        m(4),
        m(5),
        common::median(all.iter().map(|v| v[0] / v[2]).collect()),
        common::median(all.iter().map(|v| v[0] / v[4]).collect()),
    );
}

fn main() {
    if let Some(n) = std::env::var_os("PHONEVAULT_BENCH_FLOOR") {
        let n: u64 = n.to_string_lossy().parse().expect("entries");
        let (rate, peak) = storage_floor(n);
        println!("RESULT {rate} {peak}");
        return;
    }
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
