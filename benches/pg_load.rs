//! Batch ingest and lookups through the vault API on PostgreSQL and on sled in the
//! same run, then two vaults (as two servers) on one database in parallel.
//!
//! Needs `PHONEVAULT_TEST_PG` (a database URL; `eval "$(.ci/pg start)"` makes a
//! throwaway cluster); without it, prints why and exits 0. Knobs:
//! `PHONEVAULT_BENCH_N` numbers to ingest (default: all of benches/data/numbers-200k.csv),
//! `PHONEVAULT_BENCH_LOOKUPS` lookups (default 20,000), `PHONEVAULT_BENCH_THREADS`
//! lookup threads per vault (default 8).
//!
//! `cargo bench --bench pg_load`; small: `PHONEVAULT_BENCH_N=5000 PHONEVAULT_BENCH_LOOKUPS=2000 cargo bench --bench pg_load`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use phonevault::phone;
use phonevault::store::postgres::{test_config, TEST_SKIP};
use phonevault::store::{PgConfig, PgStore, StoreLocation};
use phonevault::vault::{ImportOptions, OpenOptions, Unlock, Vault};
use phonevault_keys::{KdfParams, Passphrase};

/// A tenant name the test writes out, parsed as the CLI and the server parse one.
fn tenant(name: &str) -> phonevault::policy::TenantName {
    phonevault::policy::TenantName::parse(name).expect("a tenant name of the accepted form")
}

/// A consent source the test writes out, parsed as the CLI and the server parse one.
fn source(s: &str) -> phonevault::policy::Source {
    phonevault::policy::Source::parse(s).expect("a consent source of the accepted form")
}

const PASS: &str = "bench";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn read_column(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read benchmark data");
    text.lines().skip(1).map(str::to_owned).collect()
}

fn csv(numbers: &[String]) -> Vec<u8> {
    let mut out = b"phone\n".to_vec();
    for n in numbers {
        out.extend_from_slice(n.as_bytes());
        out.push(b'\n');
    }
    out
}

fn p99(mut v: Vec<Duration>) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

fn open(dir: &Path, store: &StoreLocation) -> Vault {
    let opts = OpenOptions {
        store: store.clone(),
        ..OpenOptions::default()
    };
    Vault::open(dir, &Unlock::Passphrase(Passphrase::new(PASS.into())), opts).expect("open")
}

fn import_opts(name: &str) -> ImportOptions {
    ImportOptions {
        tenant: tenant(name),
        purposes: vec!["otp".into()],
        source: source("bench"),
        region: None,
    }
}

/// Imports `numbers`; returns (numbers/s, p99 of one 1,000-row chunk, created).
fn ingest(v: &Vault, tenant: &str, numbers: &[String]) -> (f64, Duration, u64) {
    let data = csv(numbers);
    let mut chunks = Vec::new();
    let mut last = Instant::now();
    let t = Instant::now();
    let s = v
        .import(
            &import_opts(tenant),
            phonevault::cli::CsvRows::new(&data[..], "phone").expect("header"),
            |_| Ok(()),
            |_| {
                let now = Instant::now();
                chunks.push(now - last);
                last = now;
            },
        )
        .expect("import");
    let rate = s.rows as f64 / t.elapsed().as_secs_f64();
    (rate, p99(chunks), s.created)
}

/// Looks up every number of `lookups` over `threads` threads of each vault; returns
/// (lookups/s over all vaults, p99 latency).
fn lookups(
    vaults: &[Arc<Vault>],
    tenant: &phonevault::policy::TenantName,
    lookups: &[String],
    threads: usize,
) -> (f64, Duration) {
    let workers = vaults.len() * threads;
    let per = lookups.len().div_ceil(workers).max(1);
    let t = Instant::now();
    let lat: Vec<Duration> = std::thread::scope(|s| {
        let hs: Vec<_> = lookups
            .chunks(per)
            .enumerate()
            .map(|(i, part)| {
                let v = vaults[i % vaults.len()].clone();
                s.spawn(move || {
                    let mut lat = Vec::with_capacity(part.len());
                    for n in part {
                        let t = Instant::now();
                        let f = v.find(tenant, n, None, "otp").expect("find");
                        lat.push(t.elapsed());
                        assert!(f.is_some(), "every looked-up number was ingested");
                    }
                    lat
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    (lat.len() as f64 / t.elapsed().as_secs_f64(), p99(lat))
}

struct Figures {
    ingest: f64,
    ingest_p99: Duration,
    lookup: f64,
    lookup_p99: Duration,
    lagged: f64,
}

/// Read-audit lag of the second lookup run (`serve --audit-read-lag-ms`).
const LAG: Duration = Duration::from_millis(50);

fn one_backend(
    name: &str,
    store: &StoreLocation,
    numbers: &[String],
    probes: &[String],
    threads: usize,
) -> Figures {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("vault");
    Vault::init_on(
        &dir,
        store,
        &Passphrase::new(PASS.into()),
        KdfParams::cheap_for_tests(),
    )
    .expect("init");
    let v = open(&dir, store);
    v.create_tenant(&tenant("bench"), &["otp".into()], None)
        .expect("tenant");
    let (ingest, ingest_p99, created) = ingest(&v, "bench", numbers);
    let v = Arc::new(v);
    let (lookup, lookup_p99) = lookups(std::slice::from_ref(&v), &tenant("bench"), probes, threads);
    println!(
        "{name:>9}: ingest {ingest:>9.0} numbers/s (p99 per 1,000-row batch {:>7.1} ms, {created} created); lookups {lookup:>8.0}/s over {threads} threads (p99 {:>6.2} ms)",
        ingest_p99.as_secs_f64() * 1e3,
        lookup_p99.as_secs_f64() * 1e3
    );
    // Each read's audit entry durable before it answers (above), or flushed every
    // LAG (`serve --audit-read-lag-ms`).
    v.set_read_audit_lag(Some(LAG));
    let (lagged, lagged_p99) = lookups(std::slice::from_ref(&v), &tenant("bench"), probes, threads);
    v.set_read_audit_lag(None);
    println!(
        "{name:>9}: lookups {lagged:>8.0}/s with read-audit lag {} ms (p99 {:>6.2} ms)",
        LAG.as_millis(),
        lagged_p99.as_secs_f64() * 1e3
    );
    Figures {
        ingest,
        ingest_p99,
        lookup,
        lookup_p99,
        lagged,
    }
}

fn two_vaults(cfg: &PgConfig, numbers: &[String], probes: &[String], threads: usize) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("vault");
    let store = StoreLocation::Postgres(cfg.clone());
    Vault::init_on(
        &dir,
        &store,
        &Passphrase::new(PASS.into()),
        KdfParams::cheap_for_tests(),
    )
    .expect("init");
    let a = Arc::new(open(&dir, &store));
    a.create_tenant(&tenant("bench"), &["otp".into()], None)
        .expect("tenant");
    let b = Arc::new(open(&dir, &store));
    let half = numbers.len().div_ceil(2);
    let t = Instant::now();
    let (ra, rb) = std::thread::scope(|s| {
        let (a2, b2) = (a.clone(), b.clone());
        let ha = s.spawn(move || ingest(&a2, "bench", &numbers[..half]));
        let hb = s.spawn(move || ingest(&b2, "bench", &numbers[half..]));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    let rate = numbers.len() as f64 / t.elapsed().as_secs_f64();
    println!(
        "2 vaults : ingest {rate:>9.0} numbers/s together (p99 per batch {:.1} / {:.1} ms); created {}",
        ra.1.as_secs_f64() * 1e3,
        rb.1.as_secs_f64() * 1e3,
        ra.2 + rb.2
    );
    let (lookup, p) = lookups(&[a.clone(), b.clone()], &tenant("bench"), probes, threads);
    println!(
        "2 vaults : lookups {lookup:>8.0}/s together over 2 x {threads} threads (p99 {:.2} ms)",
        p.as_secs_f64() * 1e3
    );
    a.set_read_audit_lag(Some(LAG));
    b.set_read_audit_lag(Some(LAG));
    let (lookup, p) = lookups(&[a.clone(), b.clone()], &tenant("bench"), probes, threads);
    a.set_read_audit_lag(None);
    b.set_read_audit_lag(None);
    println!(
        "2 vaults : lookups {lookup:>8.0}/s together with read-audit lag {} ms (p99 {:.2} ms)",
        LAG.as_millis(),
        p.as_secs_f64() * 1e3
    );
}

fn main() {
    let Some(cfg) = test_config("bench") else {
        println!("pg_load {TEST_SKIP}");
        return;
    };
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data");
    let n = env_usize("PHONEVAULT_BENCH_N", usize::MAX);
    let l = env_usize("PHONEVAULT_BENCH_LOOKUPS", 20_000);
    let threads = env_usize("PHONEVAULT_BENCH_THREADS", 8).max(1);
    let numbers: Vec<String> = read_column(&data.join("numbers-200k.csv"))
        .into_iter()
        .filter(|n| phone::normalize(n, None).is_ok())
        .take(n)
        .collect();
    // Lookups of ingested numbers: the lookup set when it is inside the ingested
    // prefix, else a stride through the ingested numbers.
    let ingested: std::collections::HashSet<&str> = numbers.iter().map(String::as_str).collect();
    let mut probes: Vec<String> = read_column(&data.join("lookups-20k.csv"))
        .into_iter()
        .filter(|p| ingested.contains(p.as_str()))
        .take(l)
        .collect();
    if probes.len() < l {
        let step = (numbers.len() / l.max(1)).max(1);
        probes = numbers.iter().step_by(step).take(l).cloned().collect();
    }
    println!(
        "pg_load: {} numbers, {} lookups, {threads} lookup threads per vault",
        numbers.len(),
        probes.len()
    );
    let sled = one_backend("sled", &StoreLocation::Sled, &numbers, &probes, threads);
    let pg = one_backend(
        "postgres",
        &StoreLocation::Postgres(cfg.clone()),
        &numbers,
        &probes,
        threads,
    );
    println!(
        "ratio postgres/sled: ingest {:.2}, lookups {:.2}, lagged-audit lookups {:.2} (p99 ingest batch {:.1}x, lookup {:.1}x)",
        pg.ingest / sled.ingest,
        pg.lookup / sled.lookup,
        pg.lagged / sled.lagged,
        pg.ingest_p99.as_secs_f64() / sled.ingest_p99.as_secs_f64().max(1e-9),
        pg.lookup_p99.as_secs_f64() / sled.lookup_p99.as_secs_f64().max(1e-9),
    );
    let _ = PgStore::drop_schema(&cfg);
    let cfg2 = test_config("bench2").expect("configured above");
    two_vaults(&cfg2, &numbers, &probes, threads);
    let _ = PgStore::drop_schema(&cfg2);
}
