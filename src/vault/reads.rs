//! Reads: a number through the exact index, by id, by last four digits, every record
//! of a tenant; each read decided by the policy (consent, retention, suppression lists)
//! and audited, and an absent number doing the work of a refused one (no timing oracle).

use std::collections::BTreeMap;

use super::audit::{self, Event};
use super::layout::{exact_index_key, id_after, last4_of, last4_prefix, record_key};
use super::tenants::DECOY_ID;
use super::{TenantCtx, Vault, VaultError};
use crate::phone::{self, E164};
use crate::policy::TenantName;
use crate::record::{self, RecordBody, RecordId};
use crate::store::Tree;

/// A record returned by a read. Holds the plaintext number: reveal it only with the
/// reveal right; [`Found::masked`] is what to show otherwise.
pub struct Found {
    /// Record id.
    pub id: RecordId,
    /// The number.
    pub e164: E164,
    /// The masked form (`+44 ••• ••• 0958`).
    pub masked: String,
    /// Country calling code.
    pub country_code: u16,
    /// Created, updated and verified times (unix seconds).
    pub created_at: u64,
    /// Last change.
    pub updated_at: u64,
    /// Last verification.
    pub verified_at: Option<u64>,
    /// Purposes with a live consent.
    pub purposes: Vec<String>,
}

impl std::fmt::Debug for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Found")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Vault {
    pub(super) fn open_record(
        &self,
        ctx: &TenantCtx,
        id: &RecordId,
    ) -> Result<Option<(Vec<u8>, RecordBody)>, VaultError> {
        let Some(stored) = self.store.get(Tree::Records, &record_key(ctx.row.id, id))? else {
            return Ok(None);
        };
        let body = self.open_stored(ctx, id, &stored)?;
        Ok(Some((stored, body)))
    }

    /// Decrypts a stored record. A key version this process does not know yet (another
    /// server rotated the key moments ago) makes it re-read the keyring once.
    fn open_stored(
        &self,
        ctx: &TenantCtx,
        id: &RecordId,
        stored: &[u8],
    ) -> Result<RecordBody, VaultError> {
        let header = record::parse_header(stored)?;
        if let Ok(keys) = ctx.data_key(header.data_key_version) {
            return Ok(record::open(&keys.data, ctx.row.id, id, stored)?);
        }
        self.refresh_keyring()?;
        self.forget_tenant(&ctx.row.name);
        let fresh = self.tenant(&ctx.row.name)?;
        let keys = fresh.data_key(header.data_key_version)?;
        Ok(record::open(&keys.data, fresh.row.id, id, stored)?)
    }

    /// Finds the record of a number through the exact index: under older index keys
    /// whose entries are not rebuilt yet, then under the current index key.
    pub(super) fn lookup_exact(
        &self,
        ctx: &TenantCtx,
        e164: &E164,
    ) -> Result<Option<(RecordId, Vec<u8>, RecordBody)>, VaultError> {
        for v in ctx.index_versions() {
            let keys = ctx.data_key(v)?;
            let digest = record::exact_digest(&keys.index, e164.expose_secret());
            let key = exact_index_key(ctx.row.id, keys.version, &digest);
            // The index entry and the record it names: one round trip on a database.
            let prefix = ctx.row.id.to_be_bytes();
            let Some((rid, stored)) =
                self.store
                    .get_linked(Tree::Index, &key, Tree::Records, &prefix)?
            else {
                continue;
            };
            let id = RecordId(
                rid.as_slice()
                    .try_into()
                    .map_err(|_| VaultError::RowTampered("index"))?,
            );
            let Some(stored) = stored else {
                continue;
            };
            let body = self.open_stored(ctx, &id, &stored)?;
            // Every hit is decrypted and compared with the query.
            if body.e164 != e164.expose_secret() {
                return Err(VaultError::IndexMismatch);
            }
            return Ok(Some((id, stored, body)));
        }
        Ok(None)
    }

    pub(super) fn found(id: RecordId, body: &RecordBody) -> Found {
        let e164 = E164::from_trusted(body.e164.clone());
        let masked = phone::mask(&e164);
        let mut purposes: Vec<String> = body
            .grants
            .iter()
            .filter(|g| body.has_live_consent(&g.purpose))
            .map(|g| g.purpose.clone())
            .collect();
        purposes.sort();
        purposes.dedup();
        Found {
            id,
            e164,
            masked,
            country_code: body.country_code,
            created_at: body.created_at,
            updated_at: body.updated_at,
            verified_at: body.verified_at,
            purposes,
        }
    }

    /// The answer to a read of one record that was found: the record when it is
    /// readable for `purpose` now and on none of the purpose's suppression lists, else
    /// `None` and the entry marked refused. The lists are looked up either way, so a
    /// refused read does the work of a suppressed one (and of an absent one, see
    /// `read_decoy`).
    fn answer_read(
        &self,
        ctx: &TenantCtx,
        ev: &mut Event,
        purpose: &str,
        id: RecordId,
        body: &RecordBody,
    ) -> Result<Option<Found>, VaultError> {
        ev.touch(&id);
        let readable = self.readable(ctx, body, purpose, self.now());
        let listed = self.suppressed_read(ctx, purpose, &id, &body.e164, readable)?;
        if !readable || listed {
            ev.refused = true;
            return Ok(None);
        }
        Ok(Some(Self::found(id, body)))
    }

    /// Whether the record may be returned for `purpose` now.
    pub(super) fn readable(
        &self,
        ctx: &TenantCtx,
        body: &RecordBody,
        purpose: &str,
        now: u64,
    ) -> bool {
        if !body.has_live_consent(purpose) {
            return false;
        }
        !crate::policy::retention::expired(body, ctx.row.retention_days, now)
    }

    /// Finds a number for `purpose`. `None` when absent *or* not consented for the
    /// purpose: callers cannot tell which (no existence oracle).
    pub fn find(
        &self,
        tenant: &TenantName,
        input: &str,
        region: Option<&str>,
        purpose: &str,
    ) -> Result<Option<Found>, VaultError> {
        let tenant = tenant.as_str();
        self.audited("find", Some(tenant), Some(purpose), |ev| {
            let ctx = self.tenant(tenant)?;
            ctx.check_purpose(purpose)?;
            let n = phone::normalize(input, region)?;
            let Some((id, _, body)) = self.lookup_exact(&ctx, &n.e164)? else {
                self.read_decoy(&ctx, purpose)?;
                return Ok(None);
            };
            self.answer_read(&ctx, ev, purpose, id, &body)
        })
    }

    /// The work a refused read does, done by a read that found nothing: a record
    /// fetch (of an id no record has), a decryption (of the tenant's decoy) and the
    /// consent check, so that timing does not tell "absent" from "not consented".
    fn read_decoy(&self, ctx: &TenantCtx, purpose: &str) -> Result<(), VaultError> {
        let decoy = match ctx.decoy.get() {
            Some(d) => d,
            None => {
                let body = RecordBody {
                    e164: "+447700900000".into(),
                    country_code: 44,
                    region: "GB".into(),
                    kind: 1,
                    grants: vec![crate::record::Grant {
                        purpose: "decoy".into(),
                        granted_at: 0,
                        source: "decoy".into(),
                        withdrawn_at: None,
                    }],
                    opt_outs: Vec::new(),
                    created_at: 0,
                    updated_at: 0,
                    verified_at: None,
                };
                self.reserve_encryptions(ctx, 1)?;
                let data = ctx.current()?;
                let sealed = record::seal(
                    &data.data,
                    data.version,
                    ctx.current_index,
                    ctx.row.id,
                    &DECOY_ID,
                    &body,
                )?;
                ctx.decoy.get_or_init(|| sealed)
            }
        };
        let fetched = self
            .store
            .get(Tree::Records, &record_key(ctx.row.id, &DECOY_ID))?;
        let body = self.open_stored(ctx, &DECOY_ID, decoy)?;
        let readable = self.readable(ctx, &body, purpose, self.now());
        // As a found record is checked against the purpose's suppression lists.
        let lists = self.read_lists(ctx, purpose)?;
        let listed = self.listed_in(ctx, &lists, &body.e164)?.is_some();
        std::hint::black_box((fetched, readable, listed));
        Ok(())
    }

    /// The purposes a tenant declared.
    ///
    /// # Errors
    /// [`VaultError::UnknownTenant`], store errors.
    pub fn declared_purposes(&self, tenant: &TenantName) -> Result<Vec<String>, VaultError> {
        let tenant = tenant.as_str();
        Ok(self.tenant(tenant)?.row.purposes.clone())
    }

    /// Finds records whose number has country code `country_code` and ends in `last4`,
    /// through the tenant's last-4 partial index.
    pub fn find_last4(
        &self,
        tenant: &TenantName,
        country_code: u16,
        last4: &str,
        purpose: &str,
    ) -> Result<Vec<Found>, VaultError> {
        let tenant = tenant.as_str();
        self.audited("find-last4", Some(tenant), Some(purpose), |ev| {
            self.find_last4_in(tenant, country_code, last4, purpose, ev)
        })
    }

    fn find_last4_in(
        &self,
        tenant: &str,
        country_code: u16,
        last4: &str,
        purpose: &str,
        ev: &mut audit::Event,
    ) -> Result<Vec<Found>, VaultError> {
        let ctx = self.tenant(tenant)?;
        ctx.check_purpose(purpose)?;
        let Some(bits) = ctx.row.last4_bits else {
            return Err(VaultError::InvalidArgument(format!(
                "tenant `{tenant}` has no last-4 index (create it with --last4-index)"
            )));
        };
        let last4 = crate::policy::parse_last4(last4)
            .map_err(|e| VaultError::InvalidArgument(e.to_string()))?;
        let country_code = crate::policy::parse_country_code(u64::from(country_code))
            .map_err(|e| VaultError::InvalidArgument(e.to_string()))?;
        // Bounded work: at most `scan` index entries (each a fetch and a decryption),
        // and at most `MAX_LAST4_RESULTS` records returned.
        let planned = ctx.row.expected_rows.unwrap_or(0) as f64 / f64::from(1u32 << bits.min(31));
        let scan = crate::policy::last4_scan_limit(planned);
        let mut scanned = 0usize;
        let t = self.now();
        let mut seen = std::collections::HashSet::new();
        let mut out: Vec<Found> = Vec::new();
        let lists = self.read_lists(&ctx, purpose)?;
        let mut suppressed: BTreeMap<String, Vec<[u8; 16]>> = BTreeMap::new();
        for v in ctx.index_versions() {
            let keys = ctx.data_key(v)?;
            let d = record::last4_digest(&keys.index, country_code, last4, bits);
            let prefix = last4_prefix(ctx.row.id, keys.version, &d);
            let left = scan - scanned;
            let entries = self.store.scan_prefix(Tree::Index, &prefix, left + 1)?;
            if entries.len() > left {
                return Err(VaultError::Last4TooBroad {
                    limit: crate::policy::MAX_LAST4_RESULTS,
                });
            }
            scanned += entries.len();
            for (k, _) in entries {
                let id = id_after(&k, prefix.len(), "index")?;
                if !seen.insert(id) {
                    continue;
                }
                let Some((_, body)) = self.open_record(&ctx, &id)? else {
                    continue;
                };
                // Candidates of a truncated index are filtered after decryption.
                if body.country_code == country_code
                    && last4_of(&body.e164) == last4
                    && self.readable(&ctx, &body, purpose, t)
                {
                    if let Some(list) = self.listed_in(&ctx, &lists, &body.e164)? {
                        suppressed.entry(list.to_owned()).or_default().push(id.0);
                        continue;
                    }
                    if out.len() == crate::policy::MAX_LAST4_RESULTS {
                        return Err(VaultError::Last4TooBroad {
                            limit: crate::policy::MAX_LAST4_RESULTS,
                        });
                    }
                    out.push(Self::found(id, &body));
                }
            }
        }
        // The audit names only the records returned.
        for f in &out {
            ev.touch(&f.id);
        }
        self.log_suppressed(tenant, purpose, suppressed)?;
        Ok(out)
    }

    /// Reads a record by id for `purpose`. `None` when absent or not consented.
    pub fn get(
        &self,
        tenant: &TenantName,
        id: RecordId,
        purpose: &str,
    ) -> Result<Option<Found>, VaultError> {
        let tenant = tenant.as_str();
        self.audited("get", Some(tenant), Some(purpose), |ev| {
            let ctx = self.tenant(tenant)?;
            ctx.check_purpose(purpose)?;
            let Some((_, body)) = self.open_record(&ctx, &id)? else {
                self.read_decoy(&ctx, purpose)?;
                return Ok(None);
            };
            self.answer_read(&ctx, ev, purpose, id, &body)
        })
    }

    /// Calls `f` with every record of the tenant, decrypted, in record-id order, a
    /// page at a time (memory does not grow with the tenant). Plaintext lives only in
    /// memory, in zeroize-on-drop bodies.
    pub(crate) fn for_each_record(
        &self,
        ctx: &TenantCtx,
        mut f: impl FnMut(RecordId, &RecordBody) -> Result<(), VaultError>,
    ) -> Result<(), VaultError> {
        for entry in self
            .store
            .scan_all(Tree::Records, &ctx.row.id.to_be_bytes(), 1000)
        {
            let (k, stored) = entry?;
            let id = id_after(&k, 4, "records")?;
            let body = self.open_stored(ctx, &id, &stored)?;
            f(id, &body)?;
        }
        Ok(())
    }

    /// Streams every record readable for `purpose` to `sink`, in record-id order.
    /// Returns how many were passed on.
    pub fn export(
        &self,
        tenant: &TenantName,
        purpose: &str,
        mut sink: impl FnMut(&Found) -> Result<(), VaultError>,
    ) -> Result<u64, VaultError> {
        let tenant = tenant.as_str();
        self.audited("export", Some(tenant), Some(purpose), |ev| {
            let ctx = self.tenant(tenant)?;
            ctx.check_purpose(purpose)?;
            self.for_each_readable(&ctx, purpose, ev, |_, found| sink(found))
        })
    }

    /// Hands every record of `ctx` readable for `purpose` now, and on none of the
    /// purpose's suppression lists, to `sink` in record-id order, each named in `ev`
    /// before it is handed out (a failure part-way still names what left); the ones a
    /// list held back are logged per list. Returns how many were passed on.
    pub(super) fn for_each_readable(
        &self,
        ctx: &TenantCtx,
        purpose: &str,
        ev: &mut Event,
        mut sink: impl FnMut(&RecordId, &Found) -> Result<(), VaultError>,
    ) -> Result<u64, VaultError> {
        let t = self.now();
        let mut n = 0;
        let lists = self.read_lists(ctx, purpose)?;
        let mut suppressed: BTreeMap<String, Vec<[u8; 16]>> = BTreeMap::new();
        let done = self.for_each_record(ctx, |id, body| {
            if self.readable(ctx, body, purpose, t) {
                if let Some(list) = self.listed_in(ctx, &lists, &body.e164)? {
                    suppressed.entry(list.to_owned()).or_default().push(id.0);
                    return Ok(());
                }
                ev.touch(&id);
                sink(&id, &Self::found(id, body))?;
                n += 1;
            }
            Ok(())
        });
        self.log_suppressed(&ctx.row.name, purpose, suppressed)?;
        done?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is the failure report

    use super::*;
    use crate::policy::values::{source, tenant};
    use std::sync::Arc;

    use crate::store::MemoryStore;
    use crate::vault::Target;

    /// Issue 13, item 1: the last-4 scan was unbounded (`scan_prefix(.., usize::MAX)`),
    /// so a tenant that outgrew its `--expected-rows` decrypted a whole bucket per
    /// search. Planned for 4 rows (1 bit: about half the tenant per bucket), 200
    /// records overflow the bound of 64 entries: the search is refused, not run.
    #[test]
    fn a_tenant_that_outgrew_its_plan_refuses_instead_of_scanning() {
        let v = Vault::in_memory(Arc::new(MemoryStore::new())).unwrap();
        v.create_tenant(&tenant("t"), &["otp".into()], Some(4))
            .unwrap();
        let (otp, src) = (["otp".to_owned()], source("t"));
        for i in 0..200 {
            v.add(&tenant("t"), &format!("+4474001{i:05}"), None, &otp, &src)
                .unwrap();
        }
        let mut refused = 0;
        for i in 0..20 {
            match v.find_last4(&tenant("t"), 44, &format!("{i:04}"), "otp") {
                Err(VaultError::Last4TooBroad { limit }) => {
                    assert_eq!(limit, crate::policy::MAX_LAST4_RESULTS);
                    refused += 1;
                }
                Ok(found) => assert!(found.len() <= 1),
                Err(e) => panic!("{e}"),
            }
        }
        // Each bucket holds about 100 entries: nearly every search overflows.
        assert!(refused >= 15, "{refused} of 20 refused");
        // Planned for the tenant's size, the same searches run.
        let w = Vault::in_memory(Arc::new(MemoryStore::new())).unwrap();
        w.create_tenant(&tenant("t"), &["otp".into()], Some(200))
            .unwrap();
        for i in 0..200 {
            w.add(&tenant("t"), &format!("+4474001{i:05}"), None, &otp, &src)
                .unwrap();
        }
        let found = w.find_last4(&tenant("t"), 44, "0007", "otp").unwrap();
        assert_eq!(found.len(), 1);
    }

    /// Issue 13, item 1: more matching records than one search returns are refused
    /// with a request for more digits, not handed out.
    #[test]
    fn more_matches_than_a_search_returns_are_refused() {
        let v = Vault::in_memory(Arc::new(MemoryStore::new())).unwrap();
        v.create_tenant(&tenant("t"), &["otp".into()], Some(100_000))
            .unwrap();
        let (otp, src) = (["otp".to_owned()], source("t"));
        for i in 0..=crate::policy::MAX_LAST4_RESULTS {
            v.add(
                &tenant("t"),
                &format!("+447401{i:02}5555"),
                None,
                &otp,
                &src,
            )
            .unwrap();
        }
        assert!(matches!(
            v.find_last4(&tenant("t"), 44, "5555", "otp"),
            Err(VaultError::Last4TooBroad { .. })
        ));
        v.erase(
            &tenant("t"),
            Target::Phone {
                input: "+447401005555",
                region: None,
            },
        )
        .unwrap();
        let found = v.find_last4(&tenant("t"), 44, "5555", "otp").unwrap();
        assert_eq!(found.len(), crate::policy::MAX_LAST4_RESULTS);
    }
}
