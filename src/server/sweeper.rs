//! The retention sweeper of `phonevault serve --purge-every D`: every D it deletes the records
//! past their tenant's retention, a page at a time (each page its own audited `purge` by the
//! vault itself), with a pause between pages so requests keep being served.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::App;
use crate::audit::Actor;
use crate::vault::{SweepCursor, Vault, VaultError};

/// Pause between two pages of a sweep: requests run in between.
const BETWEEN_PAGES: Duration = Duration::from_millis(20);

/// What the sweeper has done since the server started (for the metrics).
#[derive(Debug, Default)]
pub(crate) struct SweepStats {
    /// Sweeps finished.
    pub sweeps: AtomicU64,
    /// Records deleted.
    pub deleted: AtomicU64,
    /// Pages that failed (retried at the next sweep).
    pub failures: AtomicU64,
}

/// Runs a sweep every `every` while the server runs (nothing while sealed).
pub(crate) async fn run(app: Arc<App>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(vault) = app.current() else { continue };
        let vault = Arc::new(vault.acting_as(Actor::System));
        if let Err(e) = sweep(&vault, &app.sweeps).await {
            app.sweeps.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "phonevault serve: retention sweep stopped ({}): {e}; it runs again in {}s",
                e.code(),
                every.as_secs()
            );
        }
    }
}

/// One whole sweep, page by page.
pub(crate) async fn sweep(vault: &Arc<Vault>, stats: &SweepStats) -> Result<u64, VaultError> {
    let mut cursor = SweepCursor::default();
    let mut deleted = 0;
    while !cursor.done() {
        let v = vault.clone();
        let (c, n) = tokio::task::spawn_blocking(move || {
            let mut c = cursor;
            let n = v.purge_step(&mut c);
            (c, n)
        })
        .await
        .map_err(|e| VaultError::InvalidArgument(format!("sweeper task failed: {e}")))?;
        cursor = c;
        let n = n?;
        deleted += n;
        stats.deleted.fetch_add(n, Ordering::Relaxed);
        tokio::time::sleep(BETWEEN_PAGES).await;
    }
    stats.sweeps.fetch_add(1, Ordering::Relaxed);
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    //! The server's sweeper purges what `purge` would, page by page, audited as the vault.

    use super::*;
    use crate::policy::values::{source, tenant};
    use crate::store::MemoryStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sweep_deletes_exactly_the_expired_records_page_by_page() {
        let mut v = Vault::in_memory(Arc::new(MemoryStore::default())).unwrap();
        let start = 1_700_000_000u64;
        let clock = Arc::new(AtomicU64::new(start));
        let c = clock.clone();
        v.set_clock(Arc::new(move || c.load(Ordering::SeqCst)));
        v.create_tenant(&tenant("shop"), &["otp".to_owned()], None)
            .unwrap();
        v.create_tenant(&tenant("keep"), &["otp".to_owned()], None)
            .unwrap();
        v.set_retention(&tenant("shop"), Some(30)).unwrap();
        let csv: String = std::iter::once("phone".to_owned())
            .chain((0..2500).map(|i| format!("+4474001{i:05}")))
            .collect::<Vec<_>>()
            .join("\n");
        let opts = |name: &str| crate::vault::ImportOptions {
            tenant: tenant(name),
            purposes: vec!["otp".into()],
            source: source("test"),
            region: None,
        };
        v.import(
            &opts("shop"),
            crate::cli::CsvRows::new(csv.as_bytes(), "phone").unwrap(),
            |_| Ok(()),
            |_| {},
        )
        .unwrap();
        v.import(
            &opts("keep"),
            crate::cli::CsvRows::new(csv.as_bytes(), "phone").unwrap(),
            |_| Ok(()),
            |_| {},
        )
        .unwrap();
        // One record renewed later stays.
        clock.store(start + 20 * 86_400, Ordering::SeqCst);
        v.verify(
            &tenant("shop"),
            crate::vault::Target::Phone {
                input: "+447400100007",
                region: None,
            },
        )
        .unwrap();
        clock.store(start + 31 * 86_400, Ordering::SeqCst);
        let v = Arc::new(v.acting_as(Actor::System));
        let stats = SweepStats::default();
        assert_eq!(sweep(&v, &stats).await.unwrap(), 2499);
        assert_eq!(stats.sweeps.load(Ordering::Relaxed), 1);
        assert_eq!(v.purge(None, true).unwrap()[0].expired, 0);
        // The tenant without retention is untouched; a second sweep finds nothing.
        let found = v
            .find(&tenant("keep"), "+447400100007", None, "otp")
            .unwrap();
        assert!(found.is_some());
        assert_eq!(sweep(&v, &stats).await.unwrap(), 0);
        // Three pages of purge entries, by the vault itself.
        v.sync_audited().unwrap();
        let k0 = v.export_audit_key().unwrap();
        let links = v.audit_links(0, usize::MAX).unwrap();
        let (decoded, _) =
            crate::audit::verify(&k0, links.iter().map(|(_, l)| l.as_slice()), None).unwrap();
        let purges: Vec<_> = decoded
            .into_iter()
            .flat_map(|l| l.entries(Some(&v.audit_read_key())).unwrap())
            .filter(|e| e.action == "purge")
            .collect();
        assert!(purges.len() >= 3, "{} purge entries", purges.len());
        assert!(purges.iter().all(|e| matches!(e.actor, Actor::System)));
        let ids: usize = purges.iter().map(|e| e.records.len()).sum();
        assert_eq!(ids, 2499, "every deleted record named once");
    }
}
