//! Integrity check of a whole vault (`phonevault check`): every record decrypts, every
//! record has exactly the index and expiry entries its number and dates call for, and
//! every index or expiry entry belongs to a record. It is what the crash tests run
//! after killing the process, to show that no write is ever half-applied.
//!
//! Every stored record is also held against the audit chain: each write's entry
//! carries a digest of the ciphertext it stored (or that it deleted the row), so a row
//! that is not what its last audited write left (an older ciphertext put back, a row
//! deleted or brought back behind the vault's back) is named. Rows with no audited
//! write at all are named when the live chain covers the vault's whole life (it starts
//! at genesis with sealed links, and not at a restore). The chain is read as stored:
//! that it is intact is what `phonevault audit verify` (with K0) proves.
//!
//! A problem names its tenant, its record id and a stable code, never a number.

use std::collections::BTreeMap;
use std::sync::PoisonError;

use super::layout::{expiry_key, id_after, record_key, INDEX_EXACT, INDEX_LAST4};
use super::rowmac::decode_row;
use super::tenants::check_meta;
use super::{TenantCtx, TenantRow, Vault, VaultError};
use crate::record::{self, RecordBody, RecordId};
use crate::store::{prefix_end, Tree};

/// Problems listed in a report; past this many they are only counted.
const MAX_LISTED: usize = 1000;
/// Entries read per page while scanning.
const PAGE: usize = 1000;

/// One inconsistency. Its `code` is stable (scripts may match on it); nothing in it
/// holds a phone number.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Stable code: `meta`, `tenant_row`, `tenant_keys`, `shred_incomplete`,
    /// `record_key`, `record_undecryptable`, `index_missing`, `index_points_elsewhere`,
    /// `last4_missing`, `expiry_missing`, `index_orphan`, `expiry_orphan`,
    /// `unknown_tenant`, `tokens`, `suppress_row`, `suppress_entry`, `suppress_count`,
    /// `record_replayed`, `record_unaudited`, `record_resurrected`, `record_missing`,
    /// `audit_unreadable`.
    pub code: &'static str,
    /// The tenant concerned, when known.
    pub tenant: Option<String>,
    /// The record id concerned (hex), when there is one.
    pub record: Option<String>,
    /// What is wrong, in words.
    pub detail: String,
}

/// What [`Vault::check_integrity`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IntegrityReport {
    /// Tenants checked.
    pub tenants: u64,
    /// Records read and decrypted.
    pub records: u64,
    /// Index entries (exact and last-4) checked.
    pub index_entries: u64,
    /// Expiry entries checked.
    pub expiry_entries: u64,
    /// API tokens whose rows verified.
    pub tokens: u64,
    /// The first problems found (at most 1000).
    pub problems: Vec<Problem>,
    /// Problems found beyond those listed.
    pub unlisted_problems: u64,
}

impl IntegrityReport {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.unlisted_problems == 0
    }

    /// How many problems were found in all.
    pub fn problem_count(&self) -> u64 {
        self.problems.len() as u64 + self.unlisted_problems
    }

    fn note(
        &mut self,
        code: &'static str,
        tenant: Option<&str>,
        record: Option<&RecordId>,
        detail: impl Into<String>,
    ) {
        if self.problems.len() >= MAX_LISTED {
            self.unlisted_problems += 1;
            return;
        }
        self.problems.push(Problem {
            code,
            tenant: tenant.map(str::to_owned),
            record: record.map(|r| r.to_string()),
            detail: detail.into(),
        });
    }
}

impl Vault {
    /// Checks the whole store against itself: see the module documentation. Writers
    /// wait while it runs (it holds the write lock), so a concurrent write cannot show
    /// up as a false problem.
    ///
    /// # Errors
    /// Only when the store cannot be read; everything found wrong in what was read is
    /// a [`Problem`] in the report.
    pub fn check_integrity(&self) -> Result<IntegrityReport, VaultError> {
        let _w = self.write_guard();
        let mut report = IntegrityReport::default();
        let meta = {
            let ring = self.keyring.lock().unwrap_or_else(PoisonError::into_inner);
            check_meta(self.store.as_ref(), &self.row_mac, &ring)
        };
        if let Err(e) = meta {
            report.note("meta", None, None, e.to_string());
        }
        let mut known: BTreeMap<u32, String> = BTreeMap::new();
        for (k, v) in self.store.range(Tree::Tenants, b"", None, usize::MAX)? {
            let name = String::from_utf8_lossy(&k).into_owned();
            match decode_row::<TenantRow>(&self.row_mac, "tenants", &k, &v) {
                Ok(row) => {
                    known.insert(row.id, row.name);
                }
                Err(e) => report.note("tenant_row", Some(&name), None, e.to_string()),
            }
        }
        for name in known.values() {
            report.tenants += 1;
            let Some(ctx) = self.integrity_ctx(name, &mut report) else {
                continue;
            };
            self.check_records(&ctx, &mut report)?;
            self.check_index(&ctx, &mut report)?;
            self.check_expiry(&ctx, &mut report)?;
            for (code, detail) in self.check_suppression(&ctx)? {
                report.note(code, Some(name), None, detail);
            }
        }
        self.check_unknown_tenants(&known, &mut report)?;
        self.check_against_audit(&known, &mut report)?;
        match self.tokens() {
            Ok(t) => report.tokens = t.len() as u64,
            Err(e) => report.note("tokens", None, None, e.to_string()),
        }
        Ok(report)
    }

    /// The tenant's keys, or `None` (with the problem noted) when they are gone.
    fn integrity_ctx(
        &self,
        name: &str,
        report: &mut IntegrityReport,
    ) -> Option<std::sync::Arc<TenantCtx>> {
        let shredded = {
            let ring = self.keyring.lock().unwrap_or_else(PoisonError::into_inner);
            ring.tenants.get(name).map(|t| t.is_shredded())
        };
        match shredded {
            None => {
                report.note("tenant_keys", Some(name), None, "the keyring holds no keys for this tenant: restore the keyring that belongs to this store");
                return None;
            }
            Some(true) => {
                report.note("shred_incomplete", Some(name), None, format!("the tenant's keys are destroyed but its rows remain: run `phonevault tenant shred {name} --yes` again"));
                return None;
            }
            Some(false) => {}
        }
        match self.tenant(name) {
            Ok(ctx) => Some(ctx),
            Err(e) => {
                report.note("tenant_keys", Some(name), None, e.to_string());
                None
            }
        }
    }

    /// Reads and decrypts one record, with its header.
    /// The record an index or expiry entry names, opened: `None` when it does not exist
    /// (noted as `code`) or does not open (the record pass reports that).
    fn entry_record(
        &self,
        ctx: &TenantCtx,
        id: &RecordId,
        report: &mut IntegrityReport,
        code: &'static str,
        missing: &'static str,
    ) -> Result<Option<(record::Header, RecordBody)>, VaultError> {
        let Some(stored) = self.store.get(Tree::Records, &record_key(ctx.row.id, id))? else {
            report.note(code, Some(ctx.row.name.as_str()), Some(id), missing);
            return Ok(None);
        };
        Ok(self.integrity_load(ctx, id, &stored).ok())
    }

    fn integrity_load(
        &self,
        ctx: &TenantCtx,
        id: &RecordId,
        stored: &[u8],
    ) -> Result<(record::Header, RecordBody), VaultError> {
        let header = record::parse_header(stored)?;
        let keys = ctx.data_key(header.data_key_version)?;
        let body = record::open(&keys.data, ctx.row.id, id, stored)?;
        Ok((header, body))
    }

    /// Every record decrypts and has its index and expiry entries.
    fn check_records(
        &self,
        ctx: &TenantCtx,
        report: &mut IntegrityReport,
    ) -> Result<(), VaultError> {
        let tenant = Some(ctx.row.name.as_str());
        let tid = ctx.row.id;
        for_each_page(
            self,
            Tree::Records,
            &tid.to_be_bytes(),
            |k, stored, report| {
                report.records += 1;
                let Ok(id) = id_after(k, 4, "records") else {
                    report.note(
                        "record_key",
                        tenant,
                        None,
                        "a record key of the wrong length",
                    );
                    return Ok(());
                };
                let (header, body) = match self.integrity_load(ctx, &id, stored) {
                    Ok(r) => r,
                    Err(e) => {
                        report.note("record_undecryptable", tenant, Some(&id), e.to_string());
                        return Ok(());
                    }
                };
                let Ok(keys) = ctx.data_key(header.index_key_version) else {
                    report.note(
                        "record_undecryptable",
                        tenant,
                        Some(&id),
                        format!(
                            "the record names index-key version {} which the keyring does not hold",
                            header.index_key_version
                        ),
                    );
                    return Ok(());
                };
                let idx = ctx.index_entries(keys, &body, &id);
                match self.store.get(Tree::Index, &idx.exact)? {
                    None => report.note(
                        "index_missing",
                        tenant,
                        Some(&id),
                        "the record has no exact-index entry: lookups by number cannot find it",
                    ),
                    Some(v) if v != id.0 => report.note(
                        "index_points_elsewhere",
                        tenant,
                        Some(&id),
                        "the record's exact-index entry points at another record",
                    ),
                    Some(_) => {}
                }
                if let Some(l4) = &idx.last4 {
                    if self.store.get(Tree::Index, l4)?.is_none() {
                        report.note(
                            "last4_missing",
                            tenant,
                            Some(&id),
                            "the record has no last-4 index entry",
                        );
                    }
                }
                let ek = expiry_key(tid, body.last_activity(), &id);
                if self.store.get(Tree::Expiry, &ek)?.is_none() {
                    report.note(
                        "expiry_missing",
                        tenant,
                        Some(&id),
                        "the record has no expiry entry: retention purges would miss it",
                    );
                }
                Ok(())
            },
            report,
        )
    }

    /// Every index entry is one its record calls for.
    fn check_index(&self, ctx: &TenantCtx, report: &mut IntegrityReport) -> Result<(), VaultError> {
        let tenant = Some(ctx.row.name.as_str());
        let tid = ctx.row.id;
        for_each_page(
            self,
            Tree::Index,
            &tid.to_be_bytes(),
            |k, v, report| {
                report.index_entries += 1;
                let id = match k.get(4) {
                    Some(&INDEX_EXACT) => <[u8; 16]>::try_from(v).ok().map(RecordId),
                    Some(&INDEX_LAST4) => id_after(k, k.len().saturating_sub(16), "index").ok(),
                    _ => None,
                };
                let Some(id) = id else {
                    report.note(
                        "index_orphan",
                        tenant,
                        None,
                        "an index entry of unknown form",
                    );
                    return Ok(());
                };
                let Some((header, body)) = self.entry_record(
                    ctx,
                    &id,
                    report,
                    "index_orphan",
                    "an index entry for a record that does not exist",
                )?
                else {
                    return Ok(());
                };
                let Ok(keys) = ctx.data_key(header.index_key_version) else {
                    return Ok(());
                };
                let idx = ctx.index_entries(keys, &body, &id);
                if idx.exact != k && idx.last4.as_deref() != Some(k) {
                    report.note("index_orphan", tenant, Some(&id), "an index entry that does not match its record's number or index-key version");
                }
                Ok(())
            },
            report,
        )
    }

    /// Every expiry entry belongs to a record with that activity time.
    fn check_expiry(
        &self,
        ctx: &TenantCtx,
        report: &mut IntegrityReport,
    ) -> Result<(), VaultError> {
        let tenant = Some(ctx.row.name.as_str());
        let tid = ctx.row.id;
        for_each_page(
            self,
            Tree::Expiry,
            &tid.to_be_bytes(),
            |k, _, report| {
                report.expiry_entries += 1;
                let Ok(id) = id_after(k, 12, "expiry") else {
                    report.note(
                        "expiry_orphan",
                        tenant,
                        None,
                        "an expiry entry of unknown form",
                    );
                    return Ok(());
                };
                let Some((_, body)) = self.entry_record(
                    ctx,
                    &id,
                    report,
                    "expiry_orphan",
                    "an expiry entry for a record that does not exist",
                )?
                else {
                    return Ok(());
                };
                if expiry_key(tid, body.last_activity(), &id) != k {
                    report.note("expiry_orphan", tenant, Some(&id), "an expiry entry whose time is not the record's latest consent or verification");
                }
                Ok(())
            },
            report,
        )
    }

    /// Rows under a tenant id that no tenant row owns. Seeks from one tenant prefix to
    /// the next, so known tenants' rows are not read again.
    fn check_unknown_tenants(
        &self,
        known: &BTreeMap<u32, String>,
        report: &mut IntegrityReport,
    ) -> Result<(), VaultError> {
        for tree in [Tree::Records, Tree::Index, Tree::Expiry, Tree::Suppress] {
            let mut start: Vec<u8> = Vec::new();
            loop {
                let first = self.store.range(tree, &start, None, 1)?;
                let Some((k, _)) = first.first() else { break };
                let Some(prefix) = k.get(..4) else {
                    report.note(
                        "unknown_tenant",
                        None,
                        None,
                        format!("a {} key too short to name a tenant", tree.name()),
                    );
                    start = k.clone();
                    start.push(0);
                    continue;
                };
                let tid = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
                if !known.contains_key(&tid) {
                    let mut n = 0u64;
                    for_each_page(
                        self,
                        tree,
                        prefix,
                        |_, _, _| {
                            n += 1;
                            Ok(())
                        },
                        report,
                    )?;
                    report.note(
                        "unknown_tenant",
                        None,
                        None,
                        format!(
                            "{n} {} entries under tenant id {tid}, which no tenant row owns",
                            tree.name()
                        ),
                    );
                }
                match prefix_end(prefix) {
                    Some(end) => start = end,
                    None => break,
                }
            }
        }
        Ok(())
    }
}

/// Calls `f` with every entry of `tree` under `prefix`, a page at a time.
impl Vault {
    /// Every record row against the last audited write of its key (see the module
    /// documentation).
    fn check_against_audit(
        &self,
        known: &BTreeMap<u32, String>,
        report: &mut IntegrityReport,
    ) -> Result<(), VaultError> {
        let read = self.audit_read_key();
        let status = self.audit_status();
        let mut last: std::collections::HashMap<Vec<u8>, Option<[u8; 16]>> =
            std::collections::HashMap::new();
        let mut covered = status.start == crate::audit::Checkpoint::GENESIS;
        let mut from = status.start.next_seq;
        loop {
            let page = self.audit_links(from, PAGE)?;
            let Some((seq, _)) = page.last() else { break };
            from = seq + 1;
            for (seq, stored) in &page {
                let entries = crate::audit::decode_unverified(stored)
                    .ok_or(crate::audit::AuditError::BadLink(*seq))
                    .and_then(|l| {
                        if *seq == 0 && !l.is_sealed() {
                            // Written before write digests: the chain does not cover
                            // the vault's whole life.
                            covered = false;
                        }
                        l.entries(Some(&read))
                    });
                let entries = match entries {
                    Ok(e) => e,
                    Err(e) => {
                        report.note(
                            "audit_unreadable",
                            None,
                            None,
                            format!("{e}: the records were not held against the audit chain"),
                        );
                        return Ok(());
                    }
                };
                for e in entries {
                    if *seq == 0 && e.action == "restore" {
                        // A restored vault's chain starts after its records were written.
                        covered = false;
                    }
                    for w in e.writes {
                        last.insert(w.key, w.digest);
                    }
                }
            }
        }
        let name = |key: &[u8]| {
            let tenant = key
                .get(..4)
                .and_then(|t| <[u8; 4]>::try_from(t).ok())
                .and_then(|t| known.get(&u32::from_be_bytes(t)).cloned());
            let id = key
                .get(4..20)
                .and_then(|r| <[u8; 16]>::try_from(r).ok())
                .map(RecordId);
            (tenant, id)
        };
        for row in self.store.scan(Tree::Records, &[], None, PAGE) {
            let (key, stored) = row?;
            let (tenant, id) = name(&key);
            let (tenant, id) = (tenant.as_deref(), id.as_ref());
            match last.remove(&key) {
                Some(Some(d)) if d == crate::audit::row_digest(&stored) => {}
                Some(Some(_)) => report.note("record_replayed", tenant, id, "the stored ciphertext is not the one its last audited write stored: an older copy was put back, or it was written without an audit entry; restore the record from a trusted backup or re-add it"),
                Some(None) => report.note("record_resurrected", tenant, id, "the record is stored though its last audited write deleted it (opted out and erased, purged or shredded): it was put back behind the vault's back; erase it again"),
                None if covered => report.note("record_unaudited", tenant, id, "no audited write stored this record: it was written behind the vault's back"),
                None => {}
            }
        }
        let mut missing: Vec<Vec<u8>> =
            last.into_iter().filter_map(|(k, d)| d.map(|_| k)).collect();
        missing.sort();
        for key in missing {
            let (tenant, id) = name(&key);
            report.note("record_missing", tenant.as_deref(), id.as_ref(), "the record's last audited write stored it, but it is gone: it was deleted behind the vault's back");
        }
        Ok(())
    }
}

fn for_each_page(
    vault: &Vault,
    tree: Tree,
    prefix: &[u8],
    mut f: impl FnMut(&[u8], &[u8], &mut IntegrityReport) -> Result<(), VaultError>,
    report: &mut IntegrityReport,
) -> Result<(), VaultError> {
    for row in vault.store.scan_all(tree, prefix, PAGE) {
        let (k, v) = row?;
        f(&k, &v, report)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is the failure report

    use std::sync::Arc;

    use super::*;
    use crate::policy::values::{source, tenant};
    use crate::store::{Batch, MemoryStore, Store};
    use crate::vault::Target;

    const NUMBERS: [&str; 4] = [
        "+447400123958",
        "+14155550123",
        "+33612345678",
        "+4915112345678",
    ];

    fn vault() -> (Vault, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::new());
        let v = Vault::in_memory(store.clone()).unwrap();
        v.create_tenant(
            &tenant("shop"),
            &["otp".into(), "support".into()],
            Some(100_000),
        )
        .unwrap();
        v.create_tenant(&tenant("desk"), &["support".into()], None)
            .unwrap();
        for n in NUMBERS {
            v.add(&tenant("shop"), n, None, &["otp".into()], &source("test"))
                .unwrap();
            v.add(
                &tenant("desk"),
                n,
                None,
                &["support".into()],
                &source("test"),
            )
            .unwrap();
        }
        (v, store)
    }

    fn codes(r: &IntegrityReport) -> Vec<&'static str> {
        r.problems.iter().map(|p| p.code).collect()
    }

    fn shop_record(v: &Vault) -> (Vec<u8>, Vec<u8>) {
        let ctx = v.tenant("shop").unwrap();
        v.store()
            .scan_prefix(Tree::Records, &ctx.row.id.to_be_bytes(), 1)
            .unwrap()
            .remove(0)
    }

    fn apply(store: &MemoryStore, f: impl FnOnce(&mut Batch)) {
        let mut b = Batch::default();
        f(&mut b);
        store.commit(&b).unwrap();
    }

    #[test]
    fn a_consistent_vault_passes_and_everything_is_counted() {
        let (v, _) = vault();
        // A merge, an opt-out, a verification and an erase change index and expiry.
        v.add(
            &tenant("shop"),
            NUMBERS[0],
            None,
            &["support".into()],
            &source("again"),
        )
        .unwrap();
        v.verify(
            &tenant("shop"),
            Target::Phone {
                input: NUMBERS[1],
                region: None,
            },
        )
        .unwrap();
        v.erase(
            &tenant("desk"),
            Target::Phone {
                input: NUMBERS[2],
                region: None,
            },
        )
        .unwrap();
        let r = v.check_integrity().unwrap();
        assert!(r.is_ok(), "{:?}", r.problems);
        assert_eq!((r.tenants, r.records), (2, 7));
        // shop: exact + last-4 per record; desk: exact only.
        assert_eq!(r.index_entries, 4 * 2 + 3);
        assert_eq!(r.expiry_entries, 7);
    }

    #[test]
    fn index_rotation_before_and_after_rewrap_is_consistent() {
        let (v, _) = vault();
        v.rotate_key(&tenant("shop"), true).unwrap();
        v.add(
            &tenant("shop"),
            "+447400123959",
            None,
            &["otp".into()],
            &source("t"),
        )
        .unwrap();
        assert!(v.check_integrity().unwrap().is_ok());
        v.rewrap(&tenant("shop"), |_, _| {}).unwrap();
        let r = v.check_integrity().unwrap();
        assert!(r.is_ok(), "{:?}", r.problems);
    }

    #[test]
    fn a_missing_index_entry_is_found() {
        let (v, store) = vault();
        let (k, _) = shop_record(&v);
        let exact: Vec<u8> = store
            .scan_prefix(
                Tree::Index,
                &[&k[..4], &[INDEX_EXACT][..]].concat(),
                usize::MAX,
            )
            .unwrap()
            .into_iter()
            .find(|(_, val)| val[..] == k[4..])
            .unwrap()
            .0;
        apply(&store, |b| b.delete(Tree::Index, exact));
        let r = v.check_integrity().unwrap();
        assert_eq!(codes(&r), ["index_missing"]);
        assert_eq!(r.problems[0].tenant.as_deref(), Some("shop"));
        assert_eq!(
            r.problems[0].record.as_deref(),
            Some(RecordId(k[4..].try_into().unwrap()).to_string().as_str())
        );
    }

    #[test]
    fn a_record_gone_but_its_entries_left_is_found() {
        let (v, store) = vault();
        let (k, _) = shop_record(&v);
        apply(&store, |b| b.delete(Tree::Records, k));
        let r = v.check_integrity().unwrap();
        let mut c = codes(&r);
        c.sort();
        // and the audit chain says it was stored and never deleted
        assert_eq!(
            c,
            [
                "expiry_orphan",
                "index_orphan",
                "index_orphan",
                "record_missing"
            ]
        );
    }

    #[test]
    fn a_half_written_or_flipped_record_is_found_without_its_number() {
        let (v, store) = vault();
        let (k, stored) = shop_record(&v);
        apply(&store, |b| {
            b.put(
                Tree::Records,
                k.clone(),
                stored[..stored.len() / 2].to_vec(),
            )
        });
        let r = v.check_integrity().unwrap();
        // not what its last audited write stored, either
        assert_eq!(codes(&r), ["record_undecryptable", "record_replayed"]);
        let mut flipped = stored.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        apply(&store, |b| b.put(Tree::Records, k, flipped));
        let r = v.check_integrity().unwrap();
        // not what its last audited write stored, either
        assert_eq!(codes(&r), ["record_undecryptable", "record_replayed"]);
        let text = format!("{:?}", r);
        for n in NUMBERS {
            assert!(!text.contains(&n[3..]), "a number in the report");
        }
    }

    #[test]
    fn an_index_entry_pointing_at_the_wrong_record_is_found() {
        let (v, store) = vault();
        let ctx = v.tenant("shop").unwrap();
        let exact = store
            .scan_prefix(
                Tree::Index,
                &[&ctx.row.id.to_be_bytes()[..], &[INDEX_EXACT][..]].concat(),
                2,
            )
            .unwrap();
        let (k0, _) = &exact[0];
        let (_, v1) = &exact[1];
        apply(&store, |b| b.put(Tree::Index, k0.clone(), v1.clone()));
        let mut c = codes(&v.check_integrity().unwrap());
        c.sort();
        assert_eq!(c, ["index_orphan", "index_points_elsewhere"]);
    }

    #[test]
    fn rows_of_an_unknown_tenant_and_a_forged_tenant_row_are_found() {
        let (v, store) = vault();
        let mut k = 99u32.to_be_bytes().to_vec();
        k.extend_from_slice(&[7; 16]);
        apply(&store, |b| b.put(Tree::Records, k, vec![1, 2, 3]));
        apply(&store, |b| {
            b.put(Tree::Tenants, b"ghost".to_vec(), vec![1; 40])
        });
        let r = v.check_integrity().unwrap();
        let mut c = codes(&r);
        c.sort();
        // no audited write stored the row, either
        assert_eq!(c, ["record_unaudited", "tenant_row", "unknown_tenant"]);
        assert!(r.problems.iter().any(|p| p.detail.contains("tenant id 99")));
    }

    #[test]
    fn an_interrupted_shred_is_found_with_the_command_that_finishes_it() {
        let (v, _) = vault();
        {
            let mut ring = v.keyring.lock().unwrap();
            ring.shred_tenant("desk").unwrap();
        }
        v.forget_tenant("desk");
        let r = v.check_integrity().unwrap();
        assert_eq!(codes(&r), ["shred_incomplete"]);
        assert!(r.problems[0]
            .detail
            .contains("phonevault tenant shred desk --yes"));
    }
}
