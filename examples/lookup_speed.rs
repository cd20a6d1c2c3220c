//! Speed check for in-process lookups (`Vault::find`) in the server's default audit
//! mode, for profiling: `cargo run --release --example lookup_speed -- [numbers.csv] [seconds] [threads]`.
//!
//! Imports the list (default `benches/data/lookups-20k.csv`, header `phone`) into a
//! fresh vault in a temporary directory, then looks its numbers up for `seconds`
//! (default 5) on `threads` threads (default 1) and prints lookups per second.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use phonevault::phone;
use phonevault::vault::{AuditSync, ImportOptions, OpenOptions, Unlock, Vault};
use phonevault_keys::{KdfParams, Passphrase};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "benches/data/lookups-20k.csv".into());
    let seconds: u64 = args.next().map_or(Ok(5), |s| s.parse())?;
    let threads: usize = args.next().map_or(Ok(1), |s| s.parse())?;
    let tmp = std::env::temp_dir().join(format!("pv-lookup-speed-{}", std::process::id()));
    let pass = Passphrase::new("speed".into());
    Vault::init(&tmp, &pass, KdfParams::cheap_for_tests())?;
    let vault = Vault::open(&tmp, &Unlock::Passphrase(pass), OpenOptions::default())?;
    let tenant = phonevault::policy::TenantName::parse("speed")?;
    vault.create_tenant(&tenant, &["otp".into()], None)?;
    let opts = ImportOptions {
        tenant: tenant.clone(),
        purposes: vec!["otp".into()],
        source: phonevault::policy::Source::parse("speed")?,
        region: None,
    };
    let text = std::fs::read_to_string(&path)?;
    let rows = phonevault::cli::CsvRows::new(text.as_bytes(), "phone")?;
    vault.import(&opts, rows, |_| Ok(()), |_| {})?;
    let numbers: Arc<Vec<String>> = Arc::new(
        text.lines()
            .skip(1)
            .map(|l| l.trim().trim_matches('"').to_owned())
            .filter(|l| phone::normalize(l, None).is_ok())
            .collect(),
    );
    vault.set_audit_sync(AuditSync::SERVER_DEFAULT)?;
    let vault = Arc::new(vault);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let total: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (v, numbers, tenant) = (vault.clone(), numbers.clone(), &tenant);
                s.spawn(move || {
                    let mut n = 0usize;
                    let mut i = t;
                    while Instant::now() < deadline {
                        let found = v.find(tenant, &numbers[i % numbers.len()], None, "otp");
                        assert!(matches!(found, Ok(Some(_))));
                        n += 1;
                        i += threads;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let rate = total as f64 / start.elapsed().as_secs_f64();
    println!("{total} lookups on {threads} thread(s): {rate:.0}/s");
    drop(vault);
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}
