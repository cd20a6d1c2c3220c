//! Import and lookup throughput on the embedded sled store, with the two floors
//! measured in the same run:
//!
//! - compute floor: parse + encrypt + blind index of every number, no storage;
//! - storage floor: a bare sled batch insert of as many records and index entries of
//!   the same sizes, one flush at the end.
//!
//! Lookups are measured in `serve`'s default audit mode (`--audit-sync process`: each
//! read's entry written to the audit journal) first, then in `always` (each read waits
//! for its entry's fsync, shared by concurrent reads) over the first 2,000 lookups.
//!
//! `cargo bench --bench ingest [-- NUMBERS.csv LOOKUPS.csv]` (defaults: benches/data).
//! Prints one line per figure; `PHONEVAULT_BENCH_RUNS=N` repeats and prints medians.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use phonevault::phone;
use phonevault::record::{self, RecordBody, RecordId};
use phonevault::store::{Batch, SledStore, Store, Tree};
use phonevault::vault::AuditSync;
use phonevault_keys::{derive_tenant_keys, TenantSeed, VaultId};

fn read_column(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read benchmark data");
    text.lines().skip(1).map(str::to_owned).collect()
}

fn compute_floor(numbers: &[String]) -> f64 {
    let keys = derive_tenant_keys(&TenantSeed::generate(), &VaultId::generate(), "bench", 1);
    let t = Instant::now();
    let mut sink = 0usize;
    for (i, n) in numbers.iter().enumerate() {
        let p = phone::normalize(n, None).expect("valid benchmark number");
        let body = RecordBody {
            e164: p.e164.expose_secret().to_owned(),
            country_code: p.country_code,
            region: p.region.as_ref().map(|r| r.to_string()).unwrap_or_default(),
            kind: p.kind as u8,
            grants: vec![record::Grant {
                purpose: "otp".into(),
                granted_at: 1,
                source: "import".into(),
                withdrawn_at: None,
            }],
            opt_outs: vec![],
            created_at: 1,
            updated_at: 1,
            verified_at: None,
        };
        let id = RecordId([i as u8; 16]);
        let sealed = record::seal(&keys.data, 1, 1, 1, &id, &body).expect("seal");
        let d = record::exact_digest(&keys.index, &body.e164);
        sink += sealed.len() + usize::from(d[0]);
    }
    std::hint::black_box(sink);
    numbers.len() as f64 / t.elapsed().as_secs_f64()
}

fn storage_floor(dir: &Path, n: usize, value_len: usize, with_expiry: bool) -> f64 {
    let store = SledStore::open(dir, 64 << 20).expect("open sled");
    let t = Instant::now();
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    for chunk in 0..n.div_ceil(1000) {
        let mut b = Batch::default();
        for i in chunk * 1000..((chunk + 1) * 1000).min(n) {
            let id = RecordId::generate(1_700_000_000_000 + i as u64);
            let mut rk = 1u32.to_be_bytes().to_vec();
            rk.extend_from_slice(&id.0);
            let mut v = vec![0u8; value_len];
            v[..8].copy_from_slice(&next().to_le_bytes());
            let mut ik = vec![0u8; 25];
            ik[9..17].copy_from_slice(&next().to_le_bytes());
            ik[17..25].copy_from_slice(&next().to_le_bytes());
            b.put(Tree::Records, rk, v);
            b.put(Tree::Index, ik, id.0.to_vec());
            if with_expiry {
                // the retention index: tenant ‖ time ‖ record id
                let mut ek = 1u32.to_be_bytes().to_vec();
                ek.extend_from_slice(&1_700_000_000u64.to_be_bytes());
                ek.extend_from_slice(&id.0);
                b.put(Tree::Expiry, ek, Vec::new());
            }
        }
        store.commit(&b).expect("commit");
    }
    store.flush().expect("flush");
    n as f64 / t.elapsed().as_secs_f64()
}

struct Run {
    import: f64,
    import_peak_mb: f64,
    lookup1: f64,
    lookup2: f64,
    strict1: f64,
    strict2: f64,
    compute: f64,
    storage: f64,
    storage3: f64,
}

fn one_run(numbers_path: &Path, lookups: &[String], numbers: &[String]) -> Run {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("vault");
    let vault = common::bench_vault(&dir);
    let opts = common::import_options();
    let file = std::fs::File::open(numbers_path).expect("open numbers");
    let t = Instant::now();
    let summary = vault
        .import(
            &opts,
            phonevault::cli::CsvRows::new(std::io::BufReader::new(file), "phone").unwrap(),
            |_| Ok(()),
            |_| {},
        )
        .expect("import");
    let import = summary.rows as f64 / t.elapsed().as_secs_f64();
    let import_peak_mb = common::peak_rss_mb();
    // The set was made with libphonenumber 9.0.43; the crate's older metadata rejects
    // a few numbers of newer ranges.
    assert_eq!(
        summary.created + summary.rejected,
        numbers.len() as u64,
        "{summary:?}"
    );
    let accepted: Vec<String> = numbers
        .iter()
        .filter(|n| phone::normalize(n, None).is_ok())
        .cloned()
        .collect();
    let lookups: Vec<String> = lookups
        .iter()
        .filter(|n| phone::normalize(n, None).is_ok())
        .cloned()
        .collect();
    let numbers = &accepted[..];

    vault
        .set_audit_sync(AuditSync::SERVER_DEFAULT)
        .expect("process mode");
    let vault = Arc::new(vault);
    let lookup1 = common::lookup_rate(&vault, &lookups, 1);
    let lookup2 = common::lookup_rate(&vault, &lookups, 2);
    vault.set_audit_sync(AuditSync::Always).expect("always");
    let few = &lookups[..lookups.len().min(2_000)];
    let strict1 = common::lookup_rate(&vault, few, 1);
    let strict2 = common::lookup_rate(&vault, few, 2);

    let sample = vault
        .store()
        .range(Tree::Records, b"", None, 1)
        .expect("sample");
    let value_len = sample.first().map_or(110, |(_, v)| v.len());
    drop(vault);

    let compute = compute_floor(numbers);
    let storage = storage_floor(&tmp.path().join("floor"), numbers.len(), value_len, false);
    let storage3 = storage_floor(&tmp.path().join("floor3"), numbers.len(), value_len, true);
    Run {
        import,
        import_peak_mb,
        lookup1,
        lookup2,
        strict1,
        strict2,
        compute,
        storage,
        storage3,
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/data");
    let numbers_path = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| data.join("numbers-200k.csv"));
    let lookups_path = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| data.join("lookups-20k.csv"));
    let numbers = read_column(&numbers_path);
    let lookups = read_column(&lookups_path);
    let runs: usize = std::env::var("PHONEVAULT_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    // Each run is its own process, so that peak memory is the import's own.
    if std::env::var_os("PHONEVAULT_BENCH_CHILD").is_some() {
        let r = one_run(&numbers_path, &lookups, &numbers);
        println!(
            "RESULT {} {} {} {} {} {} {} {} {}",
            r.import,
            r.import_peak_mb,
            r.lookup1,
            r.lookup2,
            r.compute,
            r.storage,
            r.storage3,
            r.strict1,
            r.strict2
        );
        return;
    }
    let mut all = Vec::new();
    for i in 0..runs {
        let mut child = std::process::Command::new(std::env::current_exe().expect("current exe"));
        child.args(&args).env("PHONEVAULT_BENCH_CHILD", "1");
        let v = common::child_figures(child);
        let r = Run {
            import: v[0],
            import_peak_mb: v[1],
            lookup1: v[2],
            lookup2: v[3],
            compute: v[4],
            storage: v[5],
            storage3: v[6],
            strict1: v[7],
            strict2: v[8],
        };
        println!(
            "run {}: lookups (default --audit-sync process) {:.0}/s (1 thread), {:.0}/s (2 threads); --audit-sync always {:.0}/s, {:.0}/s | import {:.0}/s (peak RSS {:.0} MB) | compute floor {:.0}/s | storage floor {:.0}/s (record + index), {:.0}/s (+ expiry entry) | import/storage floor {:.2}, {:.2}",
            i + 1,
            r.lookup1,
            r.lookup2,
            r.strict1,
            r.strict2,
            r.import,
            r.import_peak_mb,
            r.compute,
            r.storage,
            r.storage3,
            r.import / r.storage,
            r.import / r.storage3,
        );
        all.push(r);
    }
    if runs > 1 {
        println!(
            "median of {runs}: lookups (default --audit-sync process) {:.0}/s (1 thread), {:.0}/s (2 threads); --audit-sync always {:.0}/s, {:.0}/s | import {:.0}/s | peak RSS {:.0} MB | compute floor {:.0}/s | storage floor {:.0}/s (record + index), {:.0}/s (+ expiry) | import/storage floor {:.2}, {:.2}",
            common::median(all.iter().map(|r| r.lookup1).collect()),
            common::median(all.iter().map(|r| r.lookup2).collect()),
            common::median(all.iter().map(|r| r.strict1).collect()),
            common::median(all.iter().map(|r| r.strict2).collect()),
            common::median(all.iter().map(|r| r.import).collect()),
            common::median(all.iter().map(|r| r.import_peak_mb).collect()),
            common::median(all.iter().map(|r| r.compute).collect()),
            common::median(all.iter().map(|r| r.storage).collect()),
            common::median(all.iter().map(|r| r.storage3).collect()),
            common::median(all.iter().map(|r| r.import / r.storage).collect()),
            common::median(all.iter().map(|r| r.import / r.storage3).collect()),
        );
    }
}
