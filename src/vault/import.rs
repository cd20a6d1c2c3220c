//! The bulk import: rows (from a CSV file or a batch request) normalized, sealed and
//! indexed on one thread while this one writes atomic chunks, each with its audit
//! entry; consents merged by `policy::consent`, listed numbers reported.

use std::collections::HashMap;

use super::audit;
use super::rows::{send_chunks, ImportRow, Reject};
use super::tenants::IndexEntries;
use super::writes::{new_body, Change};
use super::{now_ms, TenantCtx, Vault, VaultError};
use crate::phone::{self, PhoneError, E164};
use crate::policy::{Source, TenantName};
use crate::record::{self, RecordBody, RecordId};
use crate::store::{Batch, StoreError};

/// Records per atomic commit during an import; each chunk reports its rejected rows
/// (invalid, then suppressed) when it is written.
pub const IMPORT_CHUNK: usize = 1000;

/// Counts of an import.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
// A count a server older than the field does not send is 0.
#[serde(default)]
#[schema(as = DetailedSummary)]
pub struct ImportSummary {
    /// Rows read (excluding the header).
    pub rows: u64,
    /// New records.
    pub created: u64,
    /// Existing records that gained a consent.
    pub merged: u64,
    /// Existing records left as they were.
    pub unchanged: u64,
    /// Rows rejected (see the rejects file).
    pub rejected: u64,
    /// Numbers skipped because they opted out of everything (listed in the rejects
    /// file with code `suppressed`).
    pub suppressed: u64,
    /// Rows valid under the process's phone metadata that the release the tenant's
    /// indexes were made with rejected (0 when the release has not changed; see
    /// `phonevault reindex`).
    pub newly_valid: u64,
    /// Accepted rows whose number is on a suppression list for one of the import's
    /// purposes: stored, but refused for those purposes while listed.
    pub listed: u64,
}

impl ImportSummary {
    pub(crate) fn add(&mut self, o: &ImportSummary) {
        self.rows += o.rows;
        self.created += o.created;
        self.merged += o.merged;
        self.unchanged += o.unchanged;
        self.rejected += o.rejected;
        self.suppressed += o.suppressed;
        self.newly_valid += o.newly_valid;
        self.listed += o.listed;
    }
}

/// Options of an import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Tenant.
    pub tenant: TenantName,
    /// Purposes every imported number consents to.
    pub purposes: Vec<String>,
    /// Source recorded with the consents.
    pub source: Source,
    /// Region hint for national numbers.
    pub region: Option<String>,
}

/// Checks the region hint of an import (the same for every row).
///
/// # Errors
/// [`PhoneError::InvalidRegionHint`] for a region the metadata does not know.
pub fn check_region_hint(region: Option<&str>) -> Result<(), VaultError> {
    if let Some(r) = region {
        phone::normalize("+1 202 555 0100", Some(r)).map_err(|_| PhoneError::InvalidRegionHint)?;
    }
    Ok(())
}

impl Vault {
    /// Imports numbers, streaming: one thread normalizes and encrypts the rows (a CSV
    /// file's through `crate::cli::CsvRows`, a batch request's items) while this one
    /// writes atomic chunks, so crypto overlaps with storage. Rejected rows go to
    /// `on_reject` (the row's position and reason, never the number); `on_progress`
    /// gets the count of rows done. Re-importing the same rows changes nothing. Durable
    /// when it returns.
    pub fn import<I>(
        &self,
        opts: &ImportOptions,
        rows: I,
        on_reject: impl FnMut(Reject) -> Result<(), VaultError>,
        on_progress: impl FnMut(u64),
    ) -> Result<ImportSummary, VaultError>
    where
        I: IntoIterator<Item = ImportRow>,
        I::IntoIter: Send,
    {
        self.audited("import", Some(opts.tenant.as_str()), None, |ev| {
            self.import_in(opts, rows.into_iter(), on_reject, on_progress, ev)
        })
    }

    fn import_in(
        &self,
        opts: &ImportOptions,
        rows: impl Iterator<Item = ImportRow> + Send,
        mut on_reject: impl FnMut(Reject) -> Result<(), VaultError>,
        mut on_progress: impl FnMut(u64),
        ev: &mut audit::Event,
    ) -> Result<ImportSummary, VaultError> {
        let ctx = self.tenant(opts.tenant.as_str())?;
        Self::check_purposes(&ctx, &opts.purposes)?;
        check_region_hint(opts.region.as_deref())?;
        let t = self.now();
        let mut summary = ImportSummary::default();
        // Without older index versions, the current index entry is the only place a
        // number can already be: a guard on it suffices.
        let mut optimistic = ctx.row.stale_index_versions.is_empty();
        let change = phone::MetadataChange::since(&ctx.row.metadata_version);
        let change = change.as_ref();
        // The suppression lists of the import's purposes: the rows they hold are
        // stored (a customer's record is the customer's) and counted in the summary.
        let lists: Vec<_> = self
            .active_lists(&ctx, None)?
            .into_iter()
            .filter(|l| l.suppresses_any(&opts.purposes))
            .collect();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Prepared>>(4);
        std::thread::scope(|s| -> Result<(), VaultError> {
            let ctx2 = ctx.clone();
            let producer = s.spawn(move || {
                send_chunks(
                    rows,
                    IMPORT_CHUNK,
                    &tx,
                    |field, line| prepare(&ctx2, opts, (field, line, t), change),
                    Prepared::Reject,
                );
            });
            let mut result = Ok(());
            for chunk in rx.iter() {
                let turned_valid = chunk
                    .iter()
                    .filter(|p| matches!(p, Prepared::Ready(r) if r.turned_valid))
                    .count() as u64;
                let mut listed = 0u64;
                if !lists.is_empty() {
                    for p in &chunk {
                        if let Prepared::Ready(r) = p {
                            if self.listed_in(&ctx, &lists, &r.body.e164)?.is_some() {
                                listed += 1;
                            }
                        }
                    }
                }
                if let Err(e) = self.write_chunk(
                    &ctx,
                    opts,
                    chunk,
                    t,
                    (&mut summary, &mut optimistic, ev),
                    &mut on_reject,
                ) {
                    result = Err(e);
                    break;
                }
                summary.newly_valid += turned_valid;
                summary.listed += listed;
                on_progress(summary.rows);
            }
            drop(rx);
            let _ = producer.join();
            result
        })?;
        self.sync_audited()?;
        Ok(summary)
    }

    fn write_chunk(
        &self,
        ctx: &TenantCtx,
        opts: &ImportOptions,
        chunk: Vec<Prepared>,
        t: u64,
        (summary, optimistic, ev): (&mut ImportSummary, &mut bool, &mut audit::Event),
        on_reject: &mut impl FnMut(Reject) -> Result<(), VaultError>,
    ) -> Result<(), VaultError> {
        let _w = self.write_guard();
        ev.records.clear();
        // The producer sealed every row it did not reject, under the current data key
        // of `ctx`: count them once, whichever path writes the chunk (a merge below
        // seals again and is counted where it is staged).
        let sealed = chunk
            .iter()
            .filter(|p| matches!(p, Prepared::Ready(_)))
            .count() as u64;
        if sealed > 0 {
            self.reserve_encryptions(ctx, sealed)?;
        }
        if *optimistic {
            // Fast path for new numbers: no read before the write; the batch's guards
            // (index entry absent) make it fail whole if any number already exists,
            // and the chunk is then redone carefully below.
            let mut batch = Batch::default();
            let mut seen = std::collections::HashSet::new();
            let mut counts = ImportSummary::default();
            let mut rejects = Vec::new();
            for p in &chunk {
                counts.rows += 1;
                match p {
                    Prepared::Reject(r) => {
                        counts.rejected += 1;
                        rejects.push(r.clone());
                    }
                    Prepared::Ready(r) if !seen.insert(r.idx.exact.as_slice()) => {
                        counts.unchanged += 1;
                    }
                    Prepared::Ready(r) => {
                        counts.created += 1;
                        ev.touch(&r.id);
                        self.stage(
                            ctx,
                            &mut batch,
                            Change::Create {
                                id: r.id,
                                body: &r.body,
                                sealed: r.sealed.clone(),
                                idx: r.idx.clone(),
                            },
                        )?;
                    }
                }
            }
            match self.commit_audited_nowait(&mut batch, ev) {
                Ok(_) => {
                    for r in rejects {
                        on_reject(r)?;
                    }
                    summary.add(&counts);
                    return Ok(());
                }
                Err(VaultError::Store(StoreError::Conflict)) => {
                    *optimistic = false;
                    ev.records.clear();
                }
                Err(e) => return Err(e),
            }
        }
        // Careful path: every number read first. Another server writing one of these
        // numbers between our reads and our commit fails the guards: the chunk is redone
        // from fresh reads.
        let (counts, rejects, suppressed) = self.retry_conflicts(|| {
            ev.records.clear();
            self.write_chunk_careful(ctx, opts, &chunk, t, ev)
        })?;
        for r in rejects.into_iter().chain(suppressed) {
            on_reject(r)?;
        }
        // Back to the fast path once a chunk held only new numbers.
        *optimistic = ctx.row.stale_index_versions.is_empty()
            && counts.merged + counts.unchanged + counts.suppressed == 0;
        summary.add(&counts);
        Ok(())
    }

    /// One careful attempt at a chunk: returns its counts, rejects and suppressed rows
    /// once committed.
    fn write_chunk_careful(
        &self,
        ctx: &TenantCtx,
        opts: &ImportOptions,
        chunk: &[Prepared],
        t: u64,
        ev: &mut audit::Event,
    ) -> Result<(ImportSummary, Vec<Reject>, Vec<Reject>), VaultError> {
        let mut batch = Batch::default();
        let mut seen: HashMap<Vec<u8>, ()> = HashMap::new();
        let mut counts = ImportSummary::default();
        let mut rejects = Vec::new();
        let mut suppressed = Vec::new();
        let mut resealed = 0u64;
        for p in chunk {
            counts.rows += 1;
            let ready = match p {
                Prepared::Reject(r) => {
                    counts.rejected += 1;
                    rejects.push(r.clone());
                    continue;
                }
                Prepared::Ready(r) => r,
            };
            if seen.contains_key(&ready.idx.exact) {
                // Same number twice in one chunk: the import's consents are the same,
                // so the second changes nothing.
                counts.unchanged += 1;
                continue;
            }
            let existing = self.lookup_exact(ctx, &E164::from_trusted(ready.body.e164.clone()))?;
            match existing {
                None => {
                    ev.touch(&ready.id);
                    let exact = ready.idx.exact.clone();
                    self.stage(
                        ctx,
                        &mut batch,
                        Change::Create {
                            id: ready.id,
                            body: &ready.body,
                            sealed: ready.sealed.clone(),
                            idx: ready.idx.clone(),
                        },
                    )?;
                    seen.insert(exact, ());
                    counts.created += 1;
                    continue;
                }
                Some((id, stored, old)) => {
                    let mut body = old.clone();
                    let outcome = crate::policy::consent::bulk(
                        &mut body,
                        &opts.purposes,
                        opts.source.as_str(),
                        t,
                    );
                    if outcome == crate::policy::consent::Bulk::Suppressed {
                        // Opted out of everything: an import never re-adds consent.
                        counts.suppressed += 1;
                        suppressed.push(Reject {
                            line: ready.line,
                            code: "suppressed",
                            reason: "the number opted out of everything; skipped (only an explicit add with a consent lifts it)".into(),
                        });
                        seen.insert(ready.idx.exact.clone(), ());
                        continue;
                    }
                    if outcome == crate::policy::consent::Bulk::Changed {
                        ev.touch(&id);
                        resealed +=
                            self.stage(ctx, &mut batch, Change::update(id, stored, &old, &body))?;
                        counts.merged += 1;
                    } else {
                        counts.unchanged += 1;
                    }
                }
            }
            seen.insert(ready.idx.exact.clone(), ());
        }
        if resealed > 0 {
            // Each merge sealed its record again.
            self.reserve_encryptions(ctx, resealed)?;
        }
        if !batch.is_empty() {
            self.commit_audited_nowait(&mut batch, ev)?;
        }
        Ok((counts, rejects, suppressed))
    }
}

struct ReadyRow {
    line: u64,
    id: RecordId,
    body: RecordBody,
    sealed: Vec<u8>,
    idx: IndexEntries,
    /// Invalid under the phone metadata the tenant's indexes were made with.
    turned_valid: bool,
}

enum Prepared {
    Ready(ReadyRow),
    Reject(Reject),
}

fn prepare(
    ctx: &TenantCtx,
    opts: &ImportOptions,
    (field, line, t): (&str, u64, u64),
    change: Option<&phone::MetadataChange>,
) -> Prepared {
    let n = match phone::normalize(field, opts.region.as_deref()) {
        Ok(n) => n,
        Err(e) => {
            return Prepared::Reject(Reject {
                line,
                code: e.code(),
                reason: e.to_string(),
            })
        }
    };
    let id = RecordId::generate(now_ms());
    let body = new_body(&n, &opts.purposes, opts.source.as_str(), t);
    let (Ok(data), Ok(index)) = (ctx.current(), ctx.index()) else {
        return Prepared::Reject(Reject {
            line,
            code: "key",
            reason: "tenant key unavailable".into(),
        });
    };
    match record::seal(
        &data.data,
        data.version,
        index.version,
        ctx.row.id,
        &id,
        &body,
    ) {
        Ok(sealed) => {
            let idx = ctx.index_entries(index, &body, &id);
            let turned_valid =
                change.is_some_and(|c| c.turned_valid(&n, field, opts.region.as_deref()));
            Prepared::Ready(ReadyRow {
                line,
                id,
                body,
                sealed,
                idx,
                turned_valid,
            })
        }
        Err(e) => Prepared::Reject(Reject {
            line,
            code: "encrypt",
            reason: e.to_string(),
        }),
    }
}
