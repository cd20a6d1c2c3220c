//! What the audit log costs lookups, measured in one run on one vault:
//!
//! - `off`: reads not audited (a hidden benchmark-only handle);
//! - `process`: every read returns once its entry is written to the audit journal,
//!   synced and folded every 10 ms (`serve`'s default, `--audit-sync process`);
//! - `lag`: reads return at once, their entries flushed every 10 ms (`--audit-sync lag`);
//! - `always`: every read returns once its entry is durable (`--audit-sync always`, and
//!   the CLI's own reads), concurrent reads sharing one flush.
//!
//! Each with 1 and 16 threads. `cargo bench --bench audit [-- NUMBERS.csv LOOKUPS.csv]`;
//! `PHONEVAULT_BENCH_RUNS=N` repeats and prints medians; `PHONEVAULT_BENCH_ROWS=N`
//! imports only the first N numbers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use std::path::PathBuf;
use std::time::Duration;

use phonevault::phone;
use phonevault::vault::AuditSync;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/data");
    let numbers_path = args
        .first()
        .map_or(data.join("numbers-200k.csv"), PathBuf::from);
    let lookups_path = args
        .get(1)
        .map_or(data.join("lookups-20k.csv"), PathBuf::from);
    let runs: usize = std::env::var("PHONEVAULT_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let rows: usize = std::env::var("PHONEVAULT_BENCH_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(usize::MAX);

    let text = std::fs::read_to_string(&numbers_path).expect("numbers");
    let csv: String = text
        .lines()
        .take(rows.saturating_add(1))
        .collect::<Vec<_>>()
        .join("\n");
    let imported: std::collections::HashSet<String> = csv
        .lines()
        .skip(1)
        .filter_map(|n| phone::normalize(n, None).ok())
        .map(|n| n.e164.expose_secret().to_owned())
        .collect();
    let lookups: Vec<String> = std::fs::read_to_string(&lookups_path)
        .expect("lookups")
        .lines()
        .skip(1)
        .filter(|n| {
            phone::normalize(n, None).is_ok_and(|p| imported.contains(p.e164.expose_secret()))
        })
        .map(str::to_owned)
        .collect();

    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("vault");
    let vault = common::bench_vault(&dir);
    let opts = common::import_options();
    vault
        .import(
            &opts,
            phonevault::cli::CsvRows::new(csv.as_bytes(), "phone").unwrap(),
            |_| Ok(()),
            |_| {},
        )
        .expect("import");
    println!(
        "{} numbers imported, {} lookups; fsync-bound always single-thread runs use the first 1,000",
        imported.len(),
        lookups.len()
    );
    let off = vault.clone().without_read_audit_for_benchmarks();
    let few = &lookups[..lookups.len().min(1000)];
    let mut figures: Vec<Vec<f64>> = vec![Vec::new(); 8];
    for run in 1..=runs {
        vault.set_read_audit_lag(None);
        let r = [
            common::lookup_rate(&off, &lookups, 1),
            common::lookup_rate(&off, &lookups, 16),
            {
                vault
                    .set_audit_sync(AuditSync::Process(Duration::from_millis(10)))
                    .expect("process mode");
                common::lookup_rate(&vault, &lookups, 1)
            },
            common::lookup_rate(&vault, &lookups, 16),
            {
                vault.set_read_audit_lag(Some(Duration::from_millis(10)));
                common::lookup_rate(&vault, &lookups, 1)
            },
            common::lookup_rate(&vault, &lookups, 16),
            {
                vault.set_read_audit_lag(None);
                common::lookup_rate(&vault, few, 1)
            },
            common::lookup_rate(&vault, &lookups, 16),
        ];
        println!(
            "run {run}: off {:.0}/s (1 thr), {:.0}/s (16 thr) | process 10 ms {:.0}/s, {:.0}/s | lag 10 ms {:.0}/s, {:.0}/s | always {:.0}/s, {:.0}/s | cost vs off at 16 threads: process {:.0}%, lag {:.0}%, always {:.0}%",
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7],
            100.0 * (1.0 - r[3] / r[1]),
            100.0 * (1.0 - r[5] / r[1]),
            100.0 * (1.0 - r[7] / r[1]),
        );
        for (f, x) in figures.iter_mut().zip(r) {
            f.push(x);
        }
    }
    let m: Vec<f64> = figures.into_iter().map(common::median).collect();
    println!(
        "median of {runs}: off {:.0}/s (1 thr), {:.0}/s (16 thr) | process 10 ms {:.0}/s, {:.0}/s | lag 10 ms {:.0}/s, {:.0}/s | always {:.0}/s, {:.0}/s | cost vs off: process {:.0}% (1 thr), {:.0}% (16 thr); lag {:.0}%, {:.0}%; always {:.0}%, {:.0}%",
        m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7],
        100.0 * (1.0 - m[2] / m[0]),
        100.0 * (1.0 - m[3] / m[1]),
        100.0 * (1.0 - m[4] / m[0]),
        100.0 * (1.0 - m[5] / m[1]),
        100.0 * (1.0 - m[6] / m[0]),
        100.0 * (1.0 - m[7] / m[1]),
    );
}
