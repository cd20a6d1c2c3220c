//! Record writes: the one staging of a change with its index and expiry entries,
//! the add (create or merge), delete, and the retry of a lost race.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::layout::{expiry_key, record_key};
use super::tenants::{IndexEntries, TenantCtx};
use super::{audit, now_ms, receipts, Target, Vault, VaultError};
use crate::phone;
use crate::policy::{Source, TenantName};
use crate::record::{self, RecordBody, RecordId};
use crate::store::{Batch, StoreError, Tree};

/// Attempts of a read-modify-write that lost a race with another server.
pub(super) const CONFLICT_ATTEMPTS: u32 = 8;

/// What an add did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// A new record was created.
    Created(RecordId),
    /// The number existed; new consents were merged into it.
    Merged(RecordId),
    /// The number existed with these consents already; nothing changed.
    Unchanged(RecordId),
}

impl AddOutcome {
    /// The record id.
    pub fn id(&self) -> RecordId {
        match self {
            AddOutcome::Created(id) | AddOutcome::Merged(id) | AddOutcome::Unchanged(id) => *id,
        }
    }
}

pub(super) fn new_body(
    n: &phone::Normalized,
    purposes: &[String],
    source: &str,
    now: u64,
) -> RecordBody {
    let mut body = RecordBody {
        e164: n.e164.expose_secret().to_owned(),
        country_code: n.country_code,
        region: n.region.as_ref().map(|r| r.to_string()).unwrap_or_default(),
        kind: n.kind as u8,
        grants: Vec::new(),
        opt_outs: Vec::new(),
        created_at: now,
        updated_at: now,
        verified_at: None,
    };
    crate::policy::consent::initial(&mut body, purposes, source, now);
    body
}

/// One record's change, staged into a [`Batch`] by [`Vault::stage`].
pub(super) enum Change<'a> {
    /// A new record, sealed by the caller.
    Create {
        id: RecordId,
        body: &'a RecordBody,
        sealed: Vec<u8>,
        idx: IndexEntries,
    },
    /// A changed body; `stored` is the bytes it was read from.
    Update {
        id: RecordId,
        stored: Vec<u8>,
        old: &'a RecordBody,
        new: &'a RecordBody,
    },
    /// Removal of the record, its index entries and its expiry entry.
    Delete {
        id: RecordId,
        stored: Vec<u8>,
        old: &'a RecordBody,
    },
}

impl<'a> Change<'a> {
    /// [`Change::Update`] of the record `id` read as `stored`.
    pub(super) fn update(
        id: RecordId,
        stored: Vec<u8>,
        old: &'a RecordBody,
        new: &'a RecordBody,
    ) -> Change<'a> {
        Change::Update {
            id,
            stored,
            old,
            new,
        }
    }

    /// [`Change::Delete`] of the record `id` read as `stored`.
    pub(super) fn delete(id: RecordId, stored: Vec<u8>, old: &'a RecordBody) -> Change<'a> {
        Change::Delete { id, stored, old }
    }
}

impl Vault {
    /// Stages a record change with its index and expiry entries, guarded so that the
    /// batch applies only if nothing changed since the record was read. Returns the
    /// number of encryptions it made.
    pub(super) fn stage(
        &self,
        ctx: &TenantCtx,
        batch: &mut Batch,
        change: Change<'_>,
    ) -> Result<u64, VaultError> {
        let tid = ctx.row.id;
        match change {
            Change::Create {
                id,
                body,
                sealed,
                idx,
            } => {
                batch.guard(Tree::Index, idx.exact.clone(), None);
                batch.put(Tree::Records, record_key(tid, &id), sealed);
                batch.put(Tree::Index, idx.exact, id.0.to_vec());
                if let Some(l4) = idx.last4 {
                    batch.put(Tree::Index, l4, Vec::new());
                }
                batch.put(
                    Tree::Expiry,
                    expiry_key(tid, body.last_activity(), &id),
                    Vec::new(),
                );
                Ok(0)
            }
            Change::Update {
                id,
                stored,
                old,
                new,
            } => {
                let header = record::parse_header(&stored)?;
                let keys = ctx.current()?;
                let sealed = record::seal(
                    &keys.data,
                    keys.version,
                    header.index_key_version,
                    tid,
                    &id,
                    new,
                )?;
                let rk = record_key(tid, &id);
                batch.guard(Tree::Records, rk.clone(), Some(stored));
                batch.put(Tree::Records, rk, sealed);
                if old.last_activity() != new.last_activity() {
                    batch.delete(Tree::Expiry, expiry_key(tid, old.last_activity(), &id));
                    batch.put(
                        Tree::Expiry,
                        expiry_key(tid, new.last_activity(), &id),
                        Vec::new(),
                    );
                }
                Ok(1)
            }
            Change::Delete { id, stored, old } => {
                let header = record::parse_header(&stored)?;
                let keys = ctx.data_key(header.index_key_version)?;
                let idx = ctx.index_entries(keys, old, &id);
                let rk = record_key(tid, &id);
                batch.guard(Tree::Records, rk.clone(), Some(stored));
                batch.delete(Tree::Records, rk);
                batch.delete(Tree::Index, idx.exact);
                if let Some(l4) = idx.last4 {
                    batch.delete(Tree::Index, l4);
                }
                batch.delete(Tree::Expiry, expiry_key(tid, old.last_activity(), &id));
                // The list of its consent receipts goes with it.
                batch.delete(Tree::Meta, receipts::list_key(tid, &id));
                Ok(0)
            }
        }
    }

    /// Runs a read-modify-write again when it lost a race with another server
    /// ([`StoreError::Conflict`]): it re-reads what changed and reapplies itself.
    pub(super) fn retry_conflicts<T>(
        &self,
        mut f: impl FnMut() -> Result<T, VaultError>,
    ) -> Result<T, VaultError> {
        let mut attempt = 1;
        loop {
            match f() {
                Err(VaultError::Store(StoreError::Conflict)) if attempt < CONFLICT_ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(u64::from(attempt)));
                }
                other => return other,
            }
        }
    }

    pub(super) fn write_guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn check_purposes(ctx: &TenantCtx, purposes: &[String]) -> Result<(), VaultError> {
        if purposes.is_empty() {
            return Err(VaultError::NoConsent);
        }
        purposes
            .iter()
            .enumerate()
            .try_for_each(|(i, p)| ctx.check_purpose_at(p, i))
    }

    /// Adds a number with consents for `purposes`, or merges the consents into the
    /// existing record of that number. Durable when it returns.
    pub fn add(
        &self,
        tenant: &TenantName,
        input: &str,
        region: Option<&str>,
        purposes: &[String],
        source: &Source,
    ) -> Result<AddOutcome, VaultError> {
        let tenant = tenant.as_str();
        self.audited("add", Some(tenant), None, |ev| {
            self.add_in(tenant, input, region, purposes, source.as_str(), ev)
        })
    }

    pub(super) fn add_in(
        &self,
        tenant: &str,
        input: &str,
        region: Option<&str>,
        purposes: &[String],
        source: &str,
        ev: &mut audit::Event,
    ) -> Result<AddOutcome, VaultError> {
        let ctx = self.tenant(tenant)?;
        Self::check_purposes(&ctx, purposes)?;
        let n = phone::normalize(input, region)?;
        // Another server may add or change the same number between our read and our
        // commit: the guards then fail and the add starts over from a fresh read.
        self.retry_conflicts(|| {
            // What a lost attempt touched is not the operation's.
            ev.records.clear();
            self.add_once(&ctx, &n, purposes, source, ev)
        })
    }

    pub(super) fn add_once(
        &self,
        ctx: &Arc<TenantCtx>,
        n: &phone::Normalized,
        purposes: &[String],
        source: &str,
        ev: &mut audit::Event,
    ) -> Result<AddOutcome, VaultError> {
        let ctx = &**ctx;
        let _w = self.write_guard();
        let t = self.now();
        let mut batch = Batch::default();
        let outcome = match self.lookup_exact(ctx, &n.e164)? {
            Some((id, stored, old)) => {
                let mut body = old.clone();
                // An explicit add with a consent and a source is the one way to lift
                // an opt-out (imports never do).
                let changed = crate::policy::consent::explicit(&mut body, purposes, source, t);
                ev.touch(&id);
                if !changed {
                    return Ok(AddOutcome::Unchanged(id));
                }
                self.reserve_encryptions(ctx, 1)?;
                self.stage(ctx, &mut batch, Change::update(id, stored, &old, &body))?;
                AddOutcome::Merged(id)
            }
            None => {
                self.reserve_encryptions(ctx, 1)?;
                let id = RecordId::generate(now_ms());
                ev.touch(&id);
                let body = new_body(n, purposes, source, t);
                let (sealed, idx) = self.seal_new(ctx, &id, &body)?;
                self.stage(
                    ctx,
                    &mut batch,
                    Change::Create {
                        id,
                        body: &body,
                        sealed,
                        idx,
                    },
                )?;
                AddOutcome::Created(id)
            }
        };
        self.commit_audited(&mut batch, ev)?;
        Ok(outcome)
    }

    pub(super) fn seal_new(
        &self,
        ctx: &TenantCtx,
        id: &RecordId,
        body: &RecordBody,
    ) -> Result<(Vec<u8>, IndexEntries), VaultError> {
        let data = ctx.current()?;
        let index = ctx.index()?;
        let sealed = record::seal(
            &data.data,
            data.version,
            index.version,
            ctx.row.id,
            id,
            body,
        )?;
        let idx = ctx.index_entries(index, body, id);
        Ok((sealed, idx))
    }

    /// Deletes a record by id with its index and expiry entries, atomically and
    /// durably. Returns whether it existed.
    pub fn delete(&self, tenant: &TenantName, id: RecordId) -> Result<bool, VaultError> {
        match self.erase(tenant, Target::Id(id)) {
            Ok(_) => Ok(true),
            Err(VaultError::NoSuchRecord(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
