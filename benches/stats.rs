//! Anonymized statistics over 1,000,000 records on the sled store: the time of
//! `Vault::stats` (decrypt every record, count live ones by country and type,
//! suppress and noise), median of several runs. Target: under 10 s.
//!
//! `cargo bench --bench stats` (PHONEVAULT_STATS_ROWS to change the size).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;
use common::tenant;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use phonevault::phone;
use phonevault::stats::StatsQuery;

/// Distinct valid numbers: the benchmark set and variants of it with other last digits.
fn numbers(want: usize) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/data/numbers-200k.csv");
    let text = std::fs::read_to_string(path).unwrap();
    let base: Vec<String> = text
        .lines()
        .skip(1)
        .filter_map(|l| phone::normalize(l, None).ok())
        .map(|n| n.e164.expose_secret().to_owned())
        .collect();
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(want);
    'outer: for d in 0..100u32 {
        for b in &base {
            let mut v = b[..b.len() - 2].to_owned();
            v.push_str(&format!(
                "{:02}",
                (u32::from(b.as_bytes()[b.len() - 1] - b'0') + d) % 100
            ));
            if seen.contains(&v) || phone::normalize(&v, None).is_err() {
                continue;
            }
            seen.insert(v.clone());
            out.push(v);
            if out.len() == want {
                break 'outer;
            }
        }
    }
    out
}

fn main() {
    let rows: usize = std::env::var("PHONEVAULT_STATS_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let t = Instant::now();
    let nums = numbers(rows);
    println!(
        "generated {} distinct valid numbers in {:.1} s",
        nums.len(),
        t.elapsed().as_secs_f64()
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let v = common::bench_vault(&dir);
    let csv = std::iter::once("phone".to_owned())
        .chain(nums)
        .collect::<Vec<_>>()
        .join("\n");
    let opts = common::import_options();
    let t = Instant::now();
    let s = v
        .import(
            &opts,
            phonevault::cli::CsvRows::new(csv.as_bytes(), "phone").unwrap(),
            |_| Ok(()),
            |_| {},
        )
        .unwrap();
    drop(csv);
    println!(
        "imported {} records in {:.1} s",
        s.created,
        t.elapsed().as_secs_f64()
    );
    let q = StatsQuery {
        by_country: true,
        by_type: true,
        min_group: 10,
        epsilon: Some(1.0),
    };
    let mut times = Vec::new();
    for i in 0..3 {
        let t = Instant::now();
        let stats = v.stats(&tenant("bench"), &q).unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "run {}: stats over {} records in {:.2} s ({:.0} records/s), {} groups published, {} suppressed",
            i + 1,
            s.created,
            secs,
            s.created as f64 / secs,
            stats.groups.len(),
            stats.suppressed_groups
        );
        times.push(secs);
    }
    times.sort_by(f64::total_cmp);
    println!("median: {:.2} s for {} records", times[1], s.created);
}
