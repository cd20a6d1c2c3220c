//! Re-validation after a phone-metadata change (`phonevault reindex`).
//!
//! A tenant records the libphonenumber release its indexes were made with. When the process
//! runs newer metadata (the vendored release, or `--phone-metadata FILE`), some stored
//! numbers may no longer be valid, and (rarely) one may normalize to another E.164 form, which
//! its blind index would then miss. Reindexing decrypts every record, normalizes its number
//! again under the current metadata, reports both kinds by record id (for re-verification:
//! nothing is dropped) and stamps the tenant with the current release.

use super::{TenantRow, Vault, VaultError};
use crate::phone;
use crate::policy::TenantName;
use crate::record::RecordId;

/// What reindexing found for one tenant.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReindexReport {
    /// Tenant.
    pub tenant: String,
    /// The release the tenant's indexes were made with, before.
    pub from_version: String,
    /// The release they are stamped with now (the process's).
    pub to_version: String,
    /// Records checked.
    pub records: u64,
    /// Records whose number the current metadata rejects: to be re-verified with the
    /// customer (they are kept, and read as before).
    pub invalid: Vec<String>,
    /// Records whose number now normalizes to another E.164 form: lookups by number miss
    /// them until they are erased and added again.
    pub changed_form: Vec<String>,
    /// Whether the tenant was stamped (not in a dry run, and not when nothing changed).
    pub stamped: bool,
}

impl Vault {
    /// Re-validates the numbers of `only` (or of every tenant) under the process's phone
    /// metadata, and unless `dry_run`, stamps each tenant with it.
    ///
    /// # Errors
    ///
    /// Store, decryption and audit failures; [`VaultError::UnknownTenant`].
    pub fn reindex(
        &self,
        only: Option<&TenantName>,
        dry_run: bool,
    ) -> Result<Vec<ReindexReport>, VaultError> {
        let tenants: Vec<TenantRow> = match only {
            Some(name) => vec![self.tenant(name.as_str())?.row.clone()],
            None => self.tenants()?,
        };
        let mut reports = Vec::with_capacity(tenants.len());
        for row in tenants {
            let report = self.reindex_tenant(&row.name, dry_run)?;
            reports.push(report);
        }
        Ok(reports)
    }

    fn reindex_tenant(&self, tenant: &str, dry_run: bool) -> Result<ReindexReport, VaultError> {
        let to_version = phone::metadata_version().to_owned();
        let mut report = self.audited("reindex", Some(tenant), None, |ev| {
            let ctx = self.tenant(tenant)?;
            let mut report = ReindexReport {
                tenant: tenant.to_owned(),
                from_version: ctx.row.metadata_version.clone(),
                to_version: to_version.clone(),
                records: 0,
                invalid: Vec::new(),
                changed_form: Vec::new(),
                stamped: false,
            };
            let mut flag = |list: &mut Vec<String>, id: RecordId| {
                ev.touch(&id);
                list.push(id.to_string());
            };
            self.for_each_record(&ctx, |id, body| {
                report.records += 1;
                match phone::normalize(&body.e164, None) {
                    Err(_) => flag(&mut report.invalid, id),
                    Ok(n) if n.e164.expose_secret() != body.e164 => {
                        flag(&mut report.changed_form, id)
                    }
                    Ok(_) => {}
                }
                Ok(())
            })?;
            Ok(report)
        })?;
        if !dry_run && report.from_version != to_version {
            self.update_tenant(tenant, "tenant-stamp-metadata", |row| {
                row.metadata_version = to_version.clone();
                Ok(())
            })?;
            report.stamped = true;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    //! `reindex` reports numbers the current metadata rejects and stamps the tenant; an
    //! import reports the rows a metadata change turned valid.

    use std::sync::Arc;

    use super::super::layout::record_key;
    use super::super::writes::Change;
    use super::super::{ImportOptions, TenantCtx, TenantRow, Vault};
    use crate::phone::{self, PhoneMetadata};
    use crate::policy::values::{source, tenant};
    use crate::record::{RecordBody, RecordId};
    use crate::store::{Batch, MemoryStore, Tree};

    impl Vault {
        /// Stores `body` as record `id`, sealed as the vault would: a record written under
        /// metadata that accepted what today's rejects.
        fn rewrite_body_for_test(&self, ctx: &TenantCtx, id: &RecordId, body: &RecordBody) {
            let key = record_key(ctx.row.id, id);
            let stored = self.store.get(Tree::Records, &key).unwrap().unwrap();
            let old = body.clone();
            let mut batch = Batch::default();
            let change = Change::Update {
                id: *id,
                stored,
                old: &old,
                new: body,
            };
            self.stage(ctx, &mut batch, change).unwrap();
            self.store.commit(&batch).unwrap();
        }
    }

    /// A number valid under the vendored release and rejected by the crate's older one
    /// (found by scanning the example numbers of the calling codes that differ).
    fn newly_valid_example() -> String {
        let old = PhoneMetadata::compiled_in();
        let new = PhoneMetadata::vendored();
        for cc in new.changed_calling_codes(old) {
            for len in 4..=12 {
                for seed in 0..400u64 {
                    let digits: String = (0..len)
                        .map(|i| char::from(b'0' + ((seed * 7919 + i * 104_729) % 10) as u8))
                        .collect();
                    let input = format!("+{cc}{digits}");
                    if new.normalize(&input, None).is_ok() && old.normalize(&input, None).is_err() {
                        return input;
                    }
                }
            }
        }
        panic!("no number that only the vendored release accepts");
    }

    fn vault_with_tenant_on(version: &str) -> Vault {
        let v = Vault::in_memory(Arc::new(MemoryStore::default())).unwrap();
        v.create_tenant(&tenant("shop"), &["otp".to_owned()], None)
            .unwrap();
        v.update_tenant("shop", "test-set-version", |row: &mut TenantRow| {
            row.metadata_version = version.to_owned();
            Ok(())
        })
        .unwrap();
        v
    }

    fn import(v: &Vault, csv: &str) -> super::super::ImportSummary {
        let opts = ImportOptions {
            tenant: tenant("shop"),
            purposes: vec!["otp".into()],
            source: source("test"),
            region: None,
        };
        v.import(
            &opts,
            crate::cli::CsvRows::new(csv.as_bytes(), "phone").unwrap(),
            |_| Ok(()),
            |_| {},
        )
        .unwrap()
    }

    #[test]
    fn import_counts_rows_the_newer_metadata_turned_valid() {
        assert_eq!(phone::metadata_version(), "9.0.35");
        let fresh = newly_valid_example();
        let csv = format!("phone\n{fresh}\n+447400123456\n");
        let v = vault_with_tenant_on("9.0.33");
        let s = import(&v, &csv);
        assert_eq!((s.created, s.newly_valid), (2, 1));
        // A tenant already on the current release: nothing to report.
        let v = vault_with_tenant_on("9.0.35");
        let s = import(&v, &csv);
        assert_eq!((s.created, s.newly_valid), (2, 0));
    }

    #[test]
    fn reindex_reports_invalid_numbers_and_stamps_the_tenant() {
        let v = vault_with_tenant_on("9.0.33");
        import(&v, "phone\n+447400123456\n+14155550100\n");
        // A record whose stored number the current metadata rejects: written as an older
        // release (or a tampering-free bug) could have left it.
        let id = v
            .add(
                &tenant("shop"),
                "+447400123999",
                None,
                &["otp".to_owned()],
                &source("test"),
            )
            .unwrap()
            .id();
        let ctx = v.tenant("shop").unwrap();
        let mut body = None;
        v.for_each_record(&ctx, |rid, b| {
            if rid == id {
                body = Some(b.clone());
            }
            Ok(())
        })
        .unwrap();
        let mut body = body.unwrap();
        body.e164 = "+4470".to_owned();
        v.rewrite_body_for_test(&ctx, &id, &body);

        let dry = v.reindex(Some(&tenant("shop")), true).unwrap();
        assert_eq!(dry[0].invalid, vec![id.to_string()]);
        assert_eq!(dry[0].records, 3);
        assert!(!dry[0].stamped);
        assert_eq!(v.tenant("shop").unwrap().row.metadata_version, "9.0.33");

        let done = v.reindex(None, false).unwrap();
        assert_eq!(done[0].from_version, "9.0.33");
        assert_eq!(done[0].to_version, "9.0.35");
        assert_eq!(done[0].invalid, vec![id.to_string()]);
        assert!(done[0].stamped);
        assert_eq!(v.tenant("shop").unwrap().row.metadata_version, "9.0.35");
        // The invalid record is kept.
        let mut n = 0;
        v.for_each_record(&v.tenant("shop").unwrap(), |_, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 3);
        // Nothing changed since: a second run stamps nothing.
        assert!(!v.reindex(None, false).unwrap()[0].stamped);
    }
}
