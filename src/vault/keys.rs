//! Key lifecycle of a tenant: rotation of the data or blind-index key, and rewrap of
//! every record under the current versions (rebuilding the blind indexes after an
//! index-key rotation), resumable and chunked so the vault stays usable meanwhile.

use phonevault_keys::KeyPurpose;

use super::audit::Event;
use super::{index_entries, record_key, Vault, VaultError};
use crate::record;
use crate::store::{Batch, Tree};

/// Records rewrapped per atomic commit; the write lock is released between chunks.
const REWRAP_CHUNK: usize = 500;

/// What a rewrap did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RewrapReport {
    /// Records of the tenant.
    pub records: u64,
    /// Records re-encrypted under the current data key.
    pub resealed: u64,
    /// Records whose blind-index entries were rebuilt under the current index key.
    pub reindexed: u64,
    /// The data-key version every record is now under.
    pub data_key_version: u32,
    /// The index-key version every index entry is now under.
    pub index_key_version: u32,
}

/// What a crypto-shredding did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShredReport {
    /// Records (now undecryptable) deleted from the store.
    pub records: u64,
}

impl Vault {
    /// Crypto-shreds a tenant: destroys every key seed it has (in the keyring, which
    /// is never inside the store or its backups), so every copy of its ciphertexts —
    /// in old log segments, on SSD blocks, in backups and replicas — can never be
    /// decrypted again; then deletes its records, index and expiry entries and its
    /// settings. The keyring is written first: a crash afterwards leaves only
    /// undecryptable rows, which a re-run removes. The name cannot be reused.
    pub fn shred_tenant(&self, tenant: &str) -> Result<ShredReport, VaultError> {
        self.audited("tenant-shred", Some(tenant), None, |ev| {
            self.shred_tenant_in(tenant, ev)
        })
    }

    fn shred_tenant_in(&self, tenant: &str, ev: &mut Event) -> Result<ShredReport, VaultError> {
        let row_bytes = self
            .store
            .get(Tree::Tenants, tenant.as_bytes())?
            .ok_or_else(|| VaultError::UnknownTenant(tenant.to_owned()))?;
        let row: super::TenantRow =
            super::decode_row(&self.row_mac, "tenants", tenant.as_bytes(), &row_bytes)?;
        let _w = self.write_guard();
        {
            let mut ring = self.keyring_for_update()?;
            ring.shred_tenant(tenant)?;
            self.save_keyring(&mut ring)?;
        }
        self.forget_tenant(tenant);
        let prefix = row.id.to_be_bytes().to_vec();
        let mut report = ShredReport::default();
        for tree in [Tree::Records, Tree::Index, Tree::Expiry] {
            loop {
                let page = self.store.scan_prefix(tree, &prefix, 10_000)?;
                if page.is_empty() {
                    break;
                }
                let mut b = Batch::default();
                for (k, _) in page {
                    if tree == Tree::Records {
                        report.records += 1;
                    }
                    b.delete(tree, k);
                }
                self.store.commit(&b)?;
            }
        }
        let mut b = Batch::default();
        b.delete(Tree::Tenants, tenant.as_bytes().to_vec());
        self.commit_audited(&mut b, ev)?;
        Ok(report)
    }

    /// Makes a new key version for the tenant: its data key (new writes use it at
    /// once; older versions still decrypt) or, with `index`, its blind-index key
    /// (lookups also search the older index until `rewrap` has rebuilt it). Returns
    /// the new version.
    pub fn rotate_key(&self, tenant: &str, index: bool) -> Result<u32, VaultError> {
        let action = if index {
            "key-rotate-index"
        } else {
            "key-rotate"
        };
        self.audited(action, Some(tenant), None, |_| {
            self.rotate_key_in(tenant, index)
        })
    }

    fn rotate_key_in(&self, tenant: &str, index: bool) -> Result<u32, VaultError> {
        let ctx = self.tenant(tenant)?;
        if index {
            // Record the old version as still searched *before* the keyring moves on:
            // a crash in between leaves a harmless duplicate, never a lost index.
            let old = ctx.current_index;
            self.update_tenant(tenant, "tenant-keep-index", |row| {
                if !row.stale_index_versions.contains(&old) {
                    row.stale_index_versions.push(old);
                }
                Ok(())
            })?;
        }
        let _w = self.write_guard();
        let purpose = if index {
            KeyPurpose::Index
        } else {
            KeyPurpose::Data
        };
        let version = {
            let mut ring = self.keyring_for_update()?;
            let v = ring.rotate(&self.root, tenant, purpose, self.now())?;
            self.save_keyring(&mut ring)?;
            v
        };
        self.forget_tenant(tenant);
        Ok(version)
    }

    /// Re-encrypts every record of the tenant not yet under the current data key, and
    /// moves index entries made with an older index key to the current one. Chunks
    /// commit atomically, so an interrupted rewrap (crash, Ctrl-C, full disk) leaves
    /// every record whole and a re-run continues where it stopped. `on_progress` gets
    /// (records done, records in all).
    pub fn rewrap(
        &self,
        tenant: &str,
        on_progress: impl FnMut(u64, u64),
    ) -> Result<RewrapReport, VaultError> {
        self.audited("key-rewrap", Some(tenant), None, |_| {
            self.rewrap_in(tenant, on_progress)
        })
    }

    fn rewrap_in(
        &self,
        tenant: &str,
        mut on_progress: impl FnMut(u64, u64),
    ) -> Result<RewrapReport, VaultError> {
        self.forget_tenant(tenant);
        let ctx = self.tenant(tenant)?;
        let prefix = ctx.row.id.to_be_bytes().to_vec();
        let end = crate::store::prefix_end(&prefix);
        let total = {
            let mut n = 0u64;
            let mut from = prefix.clone();
            loop {
                let page = self
                    .store
                    .range(Tree::Records, &from, end.as_deref(), 10_000)?;
                let Some((last, _)) = page.last() else { break };
                n += page.len() as u64;
                from = last.clone();
                from.push(0);
            }
            n
        };
        let data = ctx.current()?;
        let index = ctx.index()?;
        let mut report = RewrapReport {
            records: total,
            data_key_version: data.version,
            index_key_version: index.version,
            ..RewrapReport::default()
        };
        let mut done = 0u64;
        let mut from = prefix;
        loop {
            let page = self
                .store
                .range(Tree::Records, &from, end.as_deref(), REWRAP_CHUNK)?;
            let Some((last, _)) = page.last() else { break };
            from = last.clone();
            from.push(0);
            let _w = self.write_guard();
            let mut b = Batch::default();
            let mut sealed_now = 0;
            for (k, _) in &page {
                let id = super::id_after(k, 4, "records")?;
                // Re-read under the lock: the record may have changed since the page.
                let Some((stored, body)) = self.open_record(&ctx, &id)? else {
                    continue;
                };
                let header = record::parse_header(&stored)?;
                if header.data_key_version == data.version
                    && header.index_key_version == index.version
                {
                    continue;
                }
                let sealed = record::seal(
                    &data.data,
                    data.version,
                    index.version,
                    ctx.row.id,
                    &id,
                    &body,
                )?;
                sealed_now += 1;
                let rk = record_key(ctx.row.id, &id);
                b.guard(Tree::Records, rk.clone(), Some(stored));
                b.put(Tree::Records, rk, sealed);
                report.resealed += 1;
                if header.index_key_version != index.version {
                    let old_keys = ctx.data_key(header.index_key_version)?;
                    let old = index_entries(&ctx, old_keys, &body.e164, body.country_code, &id);
                    let new = index_entries(&ctx, index, &body.e164, body.country_code, &id);
                    b.delete(Tree::Index, old.exact);
                    if let Some(l4) = old.last4 {
                        b.delete(Tree::Index, l4);
                    }
                    b.guard(Tree::Index, new.exact.clone(), None);
                    b.put(Tree::Index, new.exact, id.0.to_vec());
                    if let Some(l4) = new.last4 {
                        b.put(Tree::Index, l4, Vec::new());
                    }
                    report.reindexed += 1;
                }
            }
            if sealed_now > 0 {
                self.reserve_encryptions(&ctx, sealed_now)?;
                self.store.commit(&b)?;
            }
            done += page.len() as u64;
            on_progress(done.min(total), total);
        }
        self.store.flush()?;
        if !ctx.row.stale_index_versions.is_empty() {
            // Every entry now lives under the current index key.
            self.update_tenant(tenant, "tenant-drop-stale-index", |row| {
                row.stale_index_versions.clear();
                Ok(())
            })?;
        }
        Ok(report)
    }
}
