//! The write side of the privacy policy: consent withdrawal, opt-out, erasure,
//! verification, tenant policy changes, retention purge and store compaction.

use std::path::Path;

use super::audit::Event;
use super::keyring_file::read_keyring;
use super::layout::{expiry_key, COMPACT_NEW, COMPACT_OLD, RESTORE_NEW, RESTORE_PARTIAL};
use super::rowmac::{decode_row, encode_row};
use super::writes::Change;
use super::{TenantCtx, TenantRow, Unlock, Vault, VaultError, STORE_DIR};
use crate::phone;
use crate::policy::{consent, retention};
use crate::policy::{Source, TenantName};
use crate::record::{RecordBody, RecordId};
use crate::store::{Batch, StoreLocation, Tree};

/// Which record an operation targets.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    /// By phone number (any accepted format) with an optional region hint.
    Phone {
        /// The number as given.
        input: &'a str,
        /// Region hint.
        region: Option<&'a str>,
    },
    /// By record id (parsed at the edge).
    Id(RecordId),
}

impl std::fmt::Debug for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Phone { .. } => f.write_str("Target::Phone(..)"),
            Target::Id(id) => write!(f, "Target::Id({id})"),
        }
    }
}

/// What a policy change did to a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Changed {
    /// The record changed.
    Yes(RecordId),
    /// It already was in that state; nothing was written.
    No(RecordId),
}

impl Changed {
    /// The record id.
    pub fn id(&self) -> RecordId {
        match self {
            Changed::Yes(id) | Changed::No(id) => *id,
        }
    }
}

/// What `purge` found (and, unless a dry run, deleted) for one tenant.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PurgeReport {
    /// Tenant.
    pub tenant: String,
    /// Retention period in days.
    pub retention_days: u32,
    /// Records past their retention.
    pub expired: u64,
    /// Records deleted (0 in a dry run).
    pub deleted: u64,
}

/// What one page of a purge found and deleted, and where the next page starts.
#[derive(Default)]
struct PurgePage {
    expired: u64,
    deleted: u64,
    next: Option<Vec<u8>>,
}

/// Where a retention sweep (see [`Vault::purge_step`]) stands: the tenants with a
/// retention period when it began, and the expiry key it stopped at.
#[derive(Debug, Default)]
pub struct SweepCursor {
    tenants: Option<Vec<String>>,
    pos: usize,
    from: Option<Vec<u8>>,
}

impl SweepCursor {
    /// Whether every tenant has been swept.
    pub fn done(&self) -> bool {
        self.tenants.as_ref().is_some_and(|t| self.pos >= t.len())
    }
}

/// Sizes of the store before and after `compact`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CompactReport {
    /// Bytes before.
    pub before: u64,
    /// Bytes after.
    pub after: u64,
}

const PURGE_PAGE: usize = 1000;

impl Vault {
    fn locate(
        &self,
        ctx: &TenantCtx,
        target: Target<'_>,
    ) -> Result<Option<(RecordId, Vec<u8>, RecordBody)>, VaultError> {
        match target {
            Target::Phone { input, region } => {
                let n = phone::normalize(input, region)?;
                self.lookup_exact(ctx, &n.e164)
            }
            Target::Id(id) => Ok(self.open_record(ctx, &id)?.map(|(s, b)| (id, s, b))),
        }
    }

    /// Reads the target record, applies `f` to a copy of its body and writes it back
    /// (durably) if `f` says it changed. A race lost to another server (the record
    /// changed in between) starts over from a fresh read.
    pub(super) fn update(
        &self,
        tenant: &str,
        target: Target<'_>,
        ev: &mut Event,
        f: impl Fn(&mut RecordBody, u64) -> bool,
    ) -> Result<Changed, VaultError> {
        self.retry_conflicts(|| {
            // What a lost attempt touched is not the operation's.
            ev.records.clear();
            self.update_once(tenant, target, ev, &f)
        })
    }

    fn update_once(
        &self,
        tenant: &str,
        target: Target<'_>,
        ev: &mut Event,
        f: &impl Fn(&mut RecordBody, u64) -> bool,
    ) -> Result<Changed, VaultError> {
        let ctx = self.tenant(tenant)?;
        let _w = self.write_guard();
        let Some((id, stored, old)) = self.locate(&ctx, target)? else {
            return Err(VaultError::NoSuchRecord(tenant.to_owned()));
        };
        ev.touch(&id);
        let mut body = old.clone();
        if !f(&mut body, self.now()) {
            return Ok(Changed::No(id));
        }
        self.reserve_encryptions(&ctx, 1)?;
        let mut b = Batch::default();
        self.stage(&ctx, &mut b, Change::update(id, stored, &old, &body))?;
        self.commit_audited(&mut b, ev)?;
        Ok(Changed::Yes(id))
    }

    /// Grants consents to an existing record by id, lifting opt-outs of those
    /// purposes (like an explicit `add` of its number).
    pub fn grant_by_id(
        &self,
        tenant: &TenantName,
        id: RecordId,
        purposes: &[String],
        source: &Source,
    ) -> Result<Changed, VaultError> {
        let tenant = tenant.as_str();
        self.audited("consent-grant", Some(tenant), None, |ev| {
            Self::check_purposes(&*self.tenant(tenant)?, purposes)?;
            self.update(tenant, Target::Id(id), ev, |b, t| {
                consent::explicit(b, purposes, source.as_str(), t)
            })
        })
    }

    /// Withdraws the consent for `purpose`; the grant stays in the history with its
    /// withdrawal time.
    pub fn withdraw(
        &self,
        tenant: &TenantName,
        target: Target<'_>,
        purpose: &str,
    ) -> Result<Changed, VaultError> {
        let tenant = tenant.as_str();
        self.audited("consent-withdraw", Some(tenant), Some(purpose), |ev| {
            self.tenant(tenant)?.check_purpose(purpose)?;
            self.update(tenant, target, ev, |b, t| b.withdraw(purpose, t))
        })
    }

    /// Opts the record out of `purpose`, or of everything with `None`, effective at
    /// once. Opting out of everything leaves a suppression entry (the encrypted record
    /// and its blind index) so an import never silently re-adds consent.
    pub fn opt_out(
        &self,
        tenant: &TenantName,
        target: Target<'_>,
        purpose: Option<&str>,
    ) -> Result<Changed, VaultError> {
        let tenant = tenant.as_str();
        self.audited("opt-out", Some(tenant), purpose, |ev| {
            if let Some(p) = purpose {
                self.tenant(tenant)?.check_purpose(p)?;
            }
            self.update(tenant, target, ev, |b, t| b.opt_out(purpose, t))
        })
    }

    /// Stamps `verified_at` (the number was confirmed to reach its owner).
    pub fn verify(&self, tenant: &TenantName, target: Target<'_>) -> Result<Changed, VaultError> {
        self.verify_for(tenant, target, &[])
    }

    /// [`Vault::verify`] by a caller acting for `purposes` (empty: every purpose).
    /// A verification renews the record's retention, so a caller acting for some
    /// purposes stamps only a record consented for one of them: a writer for `otp`
    /// cannot keep alive a record held for marketing. Any other record is left as it
    /// is ([`Changed::No`]), which the uniform answer of write routes does not tell.
    pub fn verify_for(
        &self,
        tenant: &TenantName,
        target: Target<'_>,
        purposes: &[String],
    ) -> Result<Changed, VaultError> {
        let tenant = tenant.as_str();
        self.audited("verify", Some(tenant), None, |ev| {
            self.update(tenant, target, ev, |b, t| {
                let held_for_caller = purposes.is_empty()
                    || b.grants
                        .iter()
                        .any(|g| g.withdrawn_at.is_none() && purposes.contains(&g.purpose));
                if !held_for_caller {
                    return false;
                }
                b.verified_at = Some(t);
                b.updated_at = t;
                true
            })
        })
    }

    /// Erases the record (right to be forgotten): the record, its index entries and its
    /// expiry entry, atomically and durably. See SECURITY.md for what remains on disk
    /// until `compact`.
    pub fn erase(&self, tenant: &TenantName, target: Target<'_>) -> Result<RecordId, VaultError> {
        let tenant = tenant.as_str();
        self.audited("erase", Some(tenant), None, |ev| {
            self.retry_conflicts(|| {
                ev.records.clear();
                self.erase_in(tenant, target, ev)
            })
        })
    }

    fn erase_in(
        &self,
        tenant: &str,
        target: Target<'_>,
        ev: &mut Event,
    ) -> Result<RecordId, VaultError> {
        let ctx = self.tenant(tenant)?;
        let _w = self.write_guard();
        let Some((id, stored, old)) = self.locate(&ctx, target)? else {
            return Err(VaultError::NoSuchRecord(tenant.to_owned()));
        };
        ev.touch(&id);
        let mut b = Batch::default();
        self.stage(&ctx, &mut b, Change::delete(id, stored, &old))?;
        self.commit_audited(&mut b, ev)?;
        Ok(id)
    }

    pub(super) fn update_tenant(
        &self,
        tenant: &str,
        action: &'static str,
        f: impl Fn(&mut TenantRow) -> Result<(), VaultError>,
    ) -> Result<TenantRow, VaultError> {
        self.audited(action, Some(tenant), None, |ev| {
            self.retry_conflicts(|| self.update_tenant_in(tenant, ev, &f))
        })
    }

    fn update_tenant_in(
        &self,
        tenant: &str,
        ev: &mut Event,
        f: &impl Fn(&mut TenantRow) -> Result<(), VaultError>,
    ) -> Result<TenantRow, VaultError> {
        let _w = self.write_guard();
        let key = tenant.as_bytes();
        let bytes = self
            .store
            .get(Tree::Tenants, key)?
            .ok_or(VaultError::UnknownTenant(()))?;
        let mut row: TenantRow = decode_row(&self.row_mac, "tenants", key, &bytes)?;
        f(&mut row)?;
        let mut b = Batch::default();
        b.guard(Tree::Tenants, key.to_vec(), Some(bytes));
        b.put(
            Tree::Tenants,
            key.to_vec(),
            encode_row(&self.row_mac, "tenants", key, &row),
        );
        self.commit_audited(&mut b, ev)?;
        self.forget_tenant(tenant);
        Ok(row)
    }

    /// Declares more purposes for a tenant.
    pub fn add_purposes(
        &self,
        tenant: &TenantName,
        purposes: &[String],
    ) -> Result<TenantRow, VaultError> {
        let tenant = tenant.as_str();
        for p in purposes {
            super::check_name("purpose", p)?;
        }
        self.update_tenant(tenant, "tenant-add-purpose", |row| {
            row.purposes.extend(purposes.iter().cloned());
            row.purposes.sort();
            row.purposes.dedup();
            Ok(())
        })
    }

    /// Sets the retention period: records whose latest consent or verification is
    /// older than `days` are never returned and are deleted by [`Vault::purge`].
    pub fn set_retention(
        &self,
        tenant: &TenantName,
        days: Option<u32>,
    ) -> Result<TenantRow, VaultError> {
        let tenant = tenant.as_str();
        if days == Some(0) {
            return Err(VaultError::InvalidArgument(
                "retention must be at least 1 day (omit it to keep records without limit)".into(),
            ));
        }
        self.update_tenant(tenant, "tenant-set-retention", |row| {
            row.retention_days = days;
            Ok(())
        })
    }

    /// Finds (and unless `dry_run`, deletes) every record past its tenant's retention.
    /// Cost is proportional to what expired: the expiry index is keyed by the time of
    /// the latest consent or verification.
    pub fn purge(
        &self,
        only: Option<&TenantName>,
        dry_run: bool,
    ) -> Result<Vec<PurgeReport>, VaultError> {
        let only = only.map(TenantName::as_str);
        let action = if dry_run { "purge-dry-run" } else { "purge" };
        self.audited(action, only, None, |ev| self.purge_in(only, dry_run, ev))
    }

    fn purge_in(
        &self,
        only: Option<&str>,
        dry_run: bool,
        ev: &mut Event,
    ) -> Result<Vec<PurgeReport>, VaultError> {
        let now = self.now();
        let mut reports = Vec::new();
        for row in self.tenants()? {
            if only.is_some_and(|t| t != row.name) {
                continue;
            }
            let Some(days) = row.retention_days else {
                continue;
            };
            let mut report = PurgeReport {
                tenant: row.name.clone(),
                retention_days: days,
                expired: 0,
                deleted: 0,
            };
            let mut from = None;
            loop {
                let page = self.purge_page(&row, now, from.as_deref(), dry_run, ev)?;
                report.expired += page.expired;
                report.deleted += page.deleted;
                match page.next {
                    Some(next) => from = Some(next),
                    None => break,
                }
            }
            reports.push(report);
        }
        self.sync_audited()?;
        Ok(reports)
    }

    /// Purges one page (at most [`PURGE_PAGE`] expiry entries) of tenant `row`, from the
    /// expiry key `from` (the start when `None`); the write commits with `ev`'s entry.
    fn purge_page(
        &self,
        row: &TenantRow,
        now: u64,
        from: Option<&[u8]>,
        dry_run: bool,
        ev: &mut Event,
    ) -> Result<PurgePage, VaultError> {
        let mut out = PurgePage::default();
        let Some(days) = row.retention_days else {
            return Ok(out);
        };
        let Some(cutoff) = retention::expiry_cutoff(days, now) else {
            return Ok(out);
        };
        let ctx = self.tenant(&row.name)?;
        let start = expiry_key(row.id, 0, &RecordId([0; 16]));
        // Expired means last activity <= cutoff.
        let end = expiry_key(row.id, cutoff.saturating_add(1), &RecordId([0; 16]));
        let from = from.unwrap_or(&start);
        let page = self
            .store
            .range(Tree::Expiry, from, Some(&end), PURGE_PAGE)?;
        let Some((last, _)) = page.last() else {
            return Ok(out);
        };
        let mut next = last.clone();
        next.push(0);
        out.next = (page.len() == PURGE_PAGE).then_some(next);
        let _w = self.write_guard();
        let mut b = Batch::default();
        for (k, _) in &page {
            let id = super::layout::id_after(k, 12, "expiry")?;
            match self.open_record(&ctx, &id)? {
                Some((stored, old)) if retention::expired(&old, Some(days), now) => {
                    out.expired += 1;
                    if !dry_run {
                        self.stage(&ctx, &mut b, Change::delete(id, stored, &old))?;
                        out.deleted += 1;
                        ev.touch(&id);
                    }
                }
                // The record moved on (renewed consent) or is gone: drop the stale entry.
                _ if !dry_run => b.delete(Tree::Expiry, k.clone()),
                _ => {}
            }
        }
        if !b.is_empty() {
            self.commit_audited_nowait(&mut b, ev)?;
        }
        Ok(out)
    }

    /// One step of the server's retention sweeper: purges at most one page of expired
    /// records (see [`Vault::purge`]) where `cursor` stopped, as its own audited `purge`
    /// (durable when it returns), so that requests run between the steps. A sweep is done
    /// when [`SweepCursor::done`] says so.
    ///
    /// # Errors
    ///
    /// As [`Vault::purge`]; the cursor is left where it was, to be tried again.
    pub fn purge_step(&self, cursor: &mut SweepCursor) -> Result<u64, VaultError> {
        if cursor.tenants.is_none() {
            let with_retention = self
                .tenants()?
                .into_iter()
                .filter(|r| r.retention_days.is_some())
                .map(|r| r.name)
                .collect();
            cursor.tenants = Some(with_retention);
        }
        let Some(name) = cursor
            .tenants
            .as_ref()
            .and_then(|t| t.get(cursor.pos))
            .cloned()
        else {
            return Ok(0);
        };
        let row = match self.tenant(&name) {
            Ok(ctx) => ctx.row.clone(),
            // Deleted since the sweep began.
            Err(VaultError::UnknownTenant(_)) => {
                cursor.pos += 1;
                cursor.from = None;
                return Ok(0);
            }
            Err(e) => return Err(e),
        };
        let now = self.now();
        let from = cursor.from.clone();
        let page = self.audited("purge", Some(&name), None, |ev| {
            self.purge_page(&row, now, from.as_deref(), false, ev)
        })?;
        match page.next {
            Some(next) => cursor.from = Some(next),
            None => {
                cursor.pos += 1;
                cursor.from = None;
            }
        }
        Ok(page.deleted)
    }

    /// Rewrites the store into a fresh one, so that deleted records no longer linger
    /// in old log segments, and swaps it in. Needs the vault closed (it takes the
    /// store's lock). Crash-safe: the old store is kept until the new one is complete
    /// and renamed into place, and `open` finishes an interrupted swap.
    pub fn compact(dir: &Path, unlock: &Unlock) -> Result<CompactReport, VaultError> {
        // Check the credentials before touching anything.
        let ring = read_keyring(dir)?;
        super::keyring_rules::unlock_ring(&ring, unlock)?;
        recover_compaction(dir)?;
        let live = dir.join(STORE_DIR);
        let fresh = dir.join(COMPACT_NEW);
        let old = dir.join(COMPACT_OLD);
        if fresh.exists() {
            std::fs::remove_dir_all(&fresh).map_err(|e| VaultError::io("removing", &fresh, e))?;
        }
        let before;
        let after;
        {
            let src = StoreLocation::Sled.open(&live, 8 << 20)?;
            before = src.bytes_on_disk().unwrap_or(0);
            let dst = StoreLocation::Sled.open(&fresh, 8 << 20)?;
            let copied = crate::store::copy_trees(&*src, &*dst);
            if let Err(e) = copied {
                drop(dst);
                let _ = std::fs::remove_dir_all(&fresh);
                return Err(e.into());
            }
            after = dst.bytes_on_disk().unwrap_or(0);
        }
        std::fs::rename(&live, &old).map_err(|e| VaultError::io("renaming", &live, e))?;
        std::fs::rename(&fresh, &live).map_err(|e| VaultError::io("renaming", &fresh, e))?;
        sync_dir(dir)?;
        std::fs::remove_dir_all(&old).map_err(|e| VaultError::io("removing", &old, e))?;
        Ok(CompactReport { before, after })
    }
}

fn sync_dir(dir: &Path) -> Result<(), VaultError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| VaultError::io("syncing", dir, e))
}

/// Finishes or undoes an interrupted compaction: if the live store is missing, the
/// old one is put back (the new one may be incomplete); a leftover old store after a
/// completed swap is removed.
pub(crate) fn recover_compaction(dir: &Path) -> Result<(), VaultError> {
    let live = dir.join(STORE_DIR);
    let old = dir.join(COMPACT_OLD);
    if old.exists() {
        if live.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| VaultError::io("removing", &old, e))?;
        } else {
            std::fs::rename(&old, &live).map_err(|e| VaultError::io("renaming", &old, e))?;
            sync_dir(dir)?;
        }
    }
    // A restore interrupted while writing its rows: they are redone by running it again.
    let partial = dir.join(RESTORE_PARTIAL);
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| VaultError::io("removing", &partial, e))?;
    }
    // A restore interrupted during its swap: with the live store still in place it had
    // not begun (and reported failure), so the new store goes; with the live store
    // already kept aside (`store.replaced-T`, never touched here), it is finished.
    let ready = dir.join(RESTORE_NEW);
    if ready.exists() {
        if live.exists() {
            std::fs::remove_dir_all(&ready).map_err(|e| VaultError::io("removing", &ready, e))?;
        } else {
            std::fs::rename(&ready, &live).map_err(|e| VaultError::io("renaming", &ready, e))?;
            sync_dir(dir)?;
        }
    }
    Ok(())
}
