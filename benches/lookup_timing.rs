//! Refused and absent lookups side by side (issue 13, item 6): a lookup of a number
//! that is present but not consented for the purpose (refused) and one of a number
//! that is not in the vault (absent) must cost the same, or timing says which numbers
//! exist. Both answer `None`; an absent one opens the tenant's decoy record, so both
//! do an index read, a record fetch, a decryption and the consent check.
//!
//! In-process, on sled, with the read-lag audit mode (`--audit-read-lag-ms 10`), where
//! no fsync hides the difference. Samples alternate between the two kinds so drift
//! affects both alike. Prints the median and p99 of each kind per run and the medians
//! over runs. `cargo bench --bench lookup_timing`; `PHONEVAULT_BENCH_RUNS=N` (default
//! 5), `PHONEVAULT_BENCH_SAMPLES=N` per kind and run (default 5000).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;
use common::tenant;

use std::time::{Duration, Instant};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
}

fn quantile(sorted: &[u64], q: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let runs = env_or("PHONEVAULT_BENCH_RUNS", 5);
    let samples = env_or("PHONEVAULT_BENCH_SAMPLES", 5000);
    let rows = 20_000;
    let tmp = tempfile::tempdir().unwrap();
    let vault = common::bench_vault(&tmp.path().join("v"));
    vault
        .add_purposes(&tenant("bench"), &["marketing".into()])
        .expect("purpose");
    vault.set_read_audit_lag(Some(Duration::from_millis(10)));
    let mut csv = String::from("phone\n");
    let present: Vec<String> = (0..rows).map(|i| format!("+4474001{i:05}")).collect();
    let absent: Vec<String> = (0..rows).map(|i| format!("+4474002{i:05}")).collect();
    for p in &present {
        csv.push_str(p);
        csv.push('\n');
    }
    let summary = vault
        .import(
            &common::import_options(),
            phonevault::cli::CsvRows::new(csv.as_bytes(), "phone").expect("header"),
            |_| Ok(()),
            |_| {},
        )
        .expect("import");
    assert_eq!(summary.created, rows as u64);
    let bench = tenant("bench");
    let time = |n: &str| {
        let t = Instant::now();
        let found = vault.find(&bench, n, None, "marketing").expect("find");
        let d = t.elapsed();
        assert!(found.is_none());
        d.as_nanos() as u64
    };
    // Warm-up: caches, the decoy, the audit flusher.
    for i in 0..1000 {
        time(&present[i]);
        time(&absent[i]);
    }
    let (mut med_r, mut med_a, mut p99_r, mut p99_a) = (vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        let (mut r, mut a) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
        for i in 0..samples {
            let k = (run * samples + i) % rows;
            if i % 2 == 0 {
                r.push(time(&present[k]));
                a.push(time(&absent[k]));
            } else {
                a.push(time(&absent[k]));
                r.push(time(&present[k]));
            }
        }
        r.sort_unstable();
        a.sort_unstable();
        let us = |ns: u64| ns as f64 / 1000.0;
        println!(
            "run {run}: refused median {:.1} µs p99 {:.1} µs | absent median {:.1} µs p99 {:.1} µs",
            us(quantile(&r, 0.5)),
            us(quantile(&r, 0.99)),
            us(quantile(&a, 0.5)),
            us(quantile(&a, 0.99)),
        );
        med_r.push(us(quantile(&r, 0.5)));
        med_a.push(us(quantile(&a, 0.5)));
        p99_r.push(us(quantile(&r, 0.99)));
        p99_a.push(us(quantile(&a, 0.99)));
    }
    let (mr, ma) = (common::median(med_r), common::median(med_a));
    println!(
        "medians over {runs} runs: refused {mr:.1} µs (p99 {:.1}) | absent {ma:.1} µs (p99 {:.1}) | absent/refused {:.3}",
        common::median(p99_r),
        common::median(p99_a),
        ma / mr
    );
}
