//! Rewrap throughput on the embedded sled store, against the storage floor measured
//! in the same run.
//!
//! - data set: `PHONEVAULT_REWRAP_RECORDS` numbers (default 1,000,000) synthesized
//!   from benches/data/numbers-200k.csv by varying the last digits of each number and
//!   keeping only candidates libphonenumber still accepts as valid (all distinct);
//!   imported once into a fresh vault.
//! - rewrap: rotate the tenant's data key and its blind-index key, then `rewrap`
//!   (every record re-encrypted and re-indexed, in chunks of 500, each flushed); and
//!   a data-key rotation alone (every record re-encrypted, the index untouched: what
//!   the automatic rotation at 2^31 encryptions asks for).
//! - storage floor: a bare sled store taking as many rows of the same size, in
//!   batches of 500, with one flush at the end; and the same with a flush per batch.
//! - write-set floor: what a rewrap must write per record (the record, its old index
//!   entry deleted, its new one put), through the same store, a flush per batch, no
//!   crypto and no reads: how close rewrap gets to its own I/O.
//!
//! `cargo bench --bench rewrap`; `PHONEVAULT_BENCH_RUNS=N` (default 3) repeats the
//! rewrap and the floors and prints medians.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;
use common::tenant;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use phonevault::phone;
use phonevault::record::RecordId;
use phonevault::store::{Batch, SledStore, Store, Tree};

const CHUNK: usize = 500;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `n` distinct valid E.164 numbers: the base numbers first, then variants of each
/// with its last three digits changed (round robin over the bases), each checked
/// with the same validation the vault uses.
fn synthesize(base_path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(base_path).expect("read benchmark data");
    let bases: Vec<String> = text
        .lines()
        .skip(1)
        .filter_map(|l| phone::normalize(l, None).ok())
        .map(|p| p.e164.expose_secret().to_owned())
        .collect();
    let mut seen: HashSet<String> = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    for b in &bases {
        if out.len() == n {
            return out;
        }
        if seen.insert(b.clone()) {
            out.push(b.clone());
        }
    }
    for step in 1..1000u32 {
        for b in &bases {
            if out.len() == n {
                return out;
            }
            let (head, tail) = b.split_at(b.len() - 3);
            let last: u32 = tail.parse().expect("digits");
            let candidate = format!("{head}{:03}", (last + step * 7) % 1000);
            if seen.contains(&candidate) {
                continue;
            }
            if phone::normalize(&candidate, None).is_ok() {
                seen.insert(candidate.clone());
                out.push(candidate);
            }
        }
    }
    panic!("could not synthesize {n} distinct valid numbers");
}

/// Rows a rewrap writes per record, written bare: the record (overwritten), the old
/// exact-index entry deleted, the new one put.
fn write_set_floor(dir: &Path, n: usize, value_len: usize) -> f64 {
    let store = SledStore::open(dir, 64 << 20).expect("open sled");
    let key = |i: usize| {
        let id = RecordId::generate(1_700_000_000_000 + i as u64);
        let mut k = 1u32.to_be_bytes().to_vec();
        k.extend_from_slice(&id.0);
        (id, k)
    };
    let index_key = |version: u32, id: &RecordId| {
        let mut k = 1u32.to_be_bytes().to_vec();
        k.push(b'E');
        k.extend_from_slice(&version.to_be_bytes());
        k.extend_from_slice(&id.0); // stands in for the 16-byte digest
        k
    };
    // the rows as they were before the rewrap (not timed)
    for chunk in 0..n.div_ceil(CHUNK) {
        let mut b = Batch::default();
        for i in chunk * CHUNK..((chunk + 1) * CHUNK).min(n) {
            let (id, k) = key(i);
            b.put(Tree::Records, k, vec![1u8; value_len]);
            b.put(Tree::Index, index_key(1, &id), id.0.to_vec());
        }
        store.commit(&b).expect("commit");
    }
    store.flush().expect("flush");
    let t = Instant::now();
    for chunk in 0..n.div_ceil(CHUNK) {
        let mut b = Batch::default();
        for i in chunk * CHUNK..((chunk + 1) * CHUNK).min(n) {
            let (id, k) = key(i);
            b.put(Tree::Records, k, vec![2u8; value_len]);
            b.delete(Tree::Index, index_key(1, &id));
            b.put(Tree::Index, index_key(2, &id), id.0.to_vec());
        }
        store.commit(&b).expect("commit");
        store.flush().expect("flush");
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn storage_floor(dir: &Path, n: usize, value_len: usize, flush_each: bool) -> f64 {
    let store = SledStore::open(dir, 64 << 20).expect("open sled");
    let t = Instant::now();
    for chunk in 0..n.div_ceil(CHUNK) {
        let mut b = Batch::default();
        for i in chunk * CHUNK..((chunk + 1) * CHUNK).min(n) {
            let id = RecordId::generate(1_700_000_000_000 + i as u64);
            let mut k = 1u32.to_be_bytes().to_vec();
            k.extend_from_slice(&id.0);
            let mut v = vec![0u8; value_len];
            v[..16].copy_from_slice(&id.0);
            b.put(Tree::Records, k, v);
        }
        store.commit(&b).expect("commit");
        if flush_each {
            store.flush().expect("flush");
        }
    }
    store.flush().expect("flush");
    n as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let n = env_usize("PHONEVAULT_REWRAP_RECORDS", 1_000_000);
    let runs = env_usize("PHONEVAULT_BENCH_RUNS", 3).max(1);
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/data/numbers-200k.csv");

    let t = Instant::now();
    let numbers = synthesize(&data, n);
    println!(
        "synthesized {} valid numbers in {:.1}s",
        numbers.len(),
        t.elapsed().as_secs_f64()
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("vault");
    let csv = tmp.path().join("numbers.csv");
    std::fs::write(&csv, format!("phone\n{}\n", numbers.join("\n"))).expect("write csv");
    drop(numbers);
    let vault = common::bench_vault(&dir);
    let opts = common::import_options();
    let t = Instant::now();
    let file = std::fs::File::open(&csv).expect("open csv");
    let summary = vault
        .import(
            &opts,
            phonevault::cli::CsvRows::new(std::io::BufReader::new(file), "phone").unwrap(),
            |_| Ok(()),
            |_| {},
        )
        .expect("import");
    assert_eq!(summary.created, n as u64, "{summary:?}");
    println!(
        "imported {} records in {:.1}s",
        summary.created,
        t.elapsed().as_secs_f64()
    );
    let value_len = vault
        .store()
        .range(Tree::Records, b"", None, 1)
        .expect("sample")
        .first()
        .map_or(110, |(_, v)| v.len());

    let (mut rewrap, mut floor, mut floor_flushed, mut write_set) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut data_only = Vec::new();
    for run in 1..=runs {
        vault
            .rotate_key(&tenant("bench"), false)
            .expect("rotate data");
        let t = Instant::now();
        let r = vault.rewrap(&tenant("bench"), |_, _| {}).expect("rewrap");
        let rate_data = r.records as f64 / t.elapsed().as_secs_f64();
        assert_eq!((r.resealed, r.reindexed), (n as u64, 0), "{r:?}");
        data_only.push(rate_data);
        vault
            .rotate_key(&tenant("bench"), false)
            .expect("rotate data");
        vault
            .rotate_key(&tenant("bench"), true)
            .expect("rotate index");
        let t = Instant::now();
        let r = vault.rewrap(&tenant("bench"), |_, _| {}).expect("rewrap");
        let rate = r.records as f64 / t.elapsed().as_secs_f64();
        assert_eq!((r.resealed, r.reindexed), (n as u64, n as u64), "{r:?}");
        let f = storage_floor(&tmp.path().join(format!("floor{run}")), n, value_len, false);
        let ff = storage_floor(&tmp.path().join(format!("floorf{run}")), n, value_len, true);
        let ws = write_set_floor(&tmp.path().join(format!("floorw{run}")), n, value_len);
        println!(
            "run {run}: rewrap (re-encrypt + re-index) {rate:.0} records/s, (re-encrypt only) {rate_data:.0} records/s | storage floor {f:.0} rows/s ({value_len}-byte rows, batches of {CHUNK}), {ff:.0} rows/s (flush per batch) | write-set floor {ws:.0} records/s | rewrap/floor {:.2}, {:.2}, rewrap/write-set floor {:.2}",
            rate / f,
            rate / ff,
            rate / ws
        );
        rewrap.push(rate);
        floor.push(f);
        floor_flushed.push(ff);
        write_set.push(ws);
    }
    let ratios: Vec<f64> = rewrap.iter().zip(&floor).map(|(r, f)| r / f).collect();
    let ratios_data: Vec<f64> = data_only.iter().zip(&floor).map(|(r, f)| r / f).collect();
    let ratios_ws: Vec<f64> = rewrap.iter().zip(&write_set).map(|(r, f)| r / f).collect();
    let ratios_f: Vec<f64> = rewrap
        .iter()
        .zip(&floor_flushed)
        .map(|(r, f)| r / f)
        .collect();
    println!(
        "median of {runs} over {n} records: rewrap {:.0}/s (re-encrypt only: {:.0}/s, {:.2} of the floor) | storage floor {:.0}/s, {:.0}/s with a flush per batch | write-set floor {:.0}/s | rewrap/floor {:.2}, {:.2} (target >= 0.5) | rewrap/write-set floor {:.2}",
        common::median(rewrap),
        common::median(data_only),
        common::median(ratios_data),
        common::median(floor),
        common::median(floor_flushed),
        common::median(write_set),
        common::median(ratios),
        common::median(ratios_f),
        common::median(ratios_ws),
    );
}
