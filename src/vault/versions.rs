//! Key versions agreed through the store.
//!
//! Hosts sharing one store (PostgreSQL) each hold their own copy of the keyring. A
//! rotation on one host makes a version the others lack, and another host might make
//! its own seed under the same number: its records would then fail to decrypt
//! elsewhere, and copying one keyring over the other would lose records for good. So
//! every key version of a tenant has a row in the store's `meta` tree, MACed like
//! every other non-record row, holding a fingerprint of its seed (never the seed):
//!
//! ```text
//! key   = "keyver:" ‖ tenant ‖ 0x00 ‖ u32-be(version)
//! value = MACed row of (fingerprint, created)
//! fingerprint = HKDF-SHA-256(seed_v, vault_id, lp("phonevault/v2/seed-fingerprint") ‖ lp(tenant) ‖ lp(u32-be(v)))
//! ```
//!
//! A version is made only if the store holds no higher one, and claimed with a guard
//! (the row must be absent), so two hosts can never both own a number. A tenant's keys
//! are used only once every version the keyring holds is in the store with the same
//! fingerprint and the keyring holds every version the store knows; otherwise the
//! tenant fails closed with a message naming the keyring to import. Rows missing for
//! versions the keyring holds (a vault made before this check, or a crash between the
//! keyring write and the claim) are claimed when the tenant is loaded.

use std::collections::BTreeMap;

use bincode::{Decode, Encode};
use phonevault_keys::{KeyPurpose, Keyring, TenantKeyring, TenantKeys};

use super::rowmac::{decode_row, encode_row};
use super::{now, Vault, VaultError};
use crate::store::{prefix_end, Batch, StoreError, Tree};

const PREFIX: &[u8] = b"keyver:";
const TABLE: &str = "meta";

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
struct KeyVersionRow {
    fingerprint: [u8; 32],
    created_at: u64,
}

fn tenant_prefix(tenant: &str) -> Vec<u8> {
    let mut k = PREFIX.to_vec();
    k.extend_from_slice(tenant.as_bytes());
    k.push(0);
    k
}

fn row_key(tenant: &str, version: u32) -> Vec<u8> {
    let mut k = tenant_prefix(tenant);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

impl Vault {
    /// The versions of `tenant` the store knows, with their seed fingerprints.
    fn stored_versions(&self, tenant: &str) -> Result<BTreeMap<u32, [u8; 32]>, VaultError> {
        let prefix = tenant_prefix(tenant);
        let end = prefix_end(&prefix);
        let rows = self
            .store
            .range(Tree::Meta, &prefix, end.as_deref(), usize::MAX)?;
        let mut out = BTreeMap::new();
        for (k, v) in rows {
            let version = k
                .get(prefix.len()..)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
                .ok_or(VaultError::RowTampered(TABLE))?;
            let row: KeyVersionRow = decode_row(&self.row_mac, TABLE, &k, &v)?;
            out.insert(version, row.fingerprint);
        }
        Ok(out)
    }

    /// Stages the claim of a version: its row, guarded to be absent.
    pub(super) fn stage_version_claim(&self, b: &mut Batch, tenant: &str, keys: &TenantKeys) {
        let key = row_key(tenant, keys.version);
        let row = KeyVersionRow {
            fingerprint: keys.fingerprint,
            created_at: now(),
        };
        b.guard(Tree::Meta, key.clone(), None);
        b.put(
            Tree::Meta,
            key.clone(),
            encode_row(&self.row_mac, TABLE, &key, &row),
        );
    }

    /// Checks a tenant's keys against the versions the store knows, and claims the
    /// versions the keyring holds that the store lacks.
    ///
    /// # Errors
    /// [`VaultError::KeyVersionMissing`] when the store knows a version this keyring
    /// lacks (made by another host); [`VaultError::KeyVersionConflict`] when this
    /// keyring's seed of a version is not the store's.
    pub(super) fn agree_versions(
        &self,
        tenant: &str,
        tk: &TenantKeyring,
        keys: &BTreeMap<u32, TenantKeys>,
    ) -> Result<(), VaultError> {
        for attempt in 0..2 {
            let stored = self.stored_versions(tenant)?;
            let mut missing = Vec::new();
            for (&v, fp) in &stored {
                match keys.get(&v) {
                    Some(k) if k.fingerprint == *fp => {}
                    Some(_) => {
                        return Err(VaultError::KeyVersionConflict {
                            tenant: tenant.to_owned(),
                            version: v,
                        })
                    }
                    // Destroyed here on purpose (retired, shredded): nothing to read.
                    None if tk.is_destroyed(v) || tk.is_shredded() => {}
                    None => missing.push(v),
                }
            }
            if !missing.is_empty() {
                return Err(VaultError::KeyVersionMissing {
                    tenant: tenant.to_owned(),
                    versions: join(&missing),
                });
            }
            let mut b = Batch::default();
            for k in keys.values().filter(|k| !stored.contains_key(&k.version)) {
                self.stage_version_claim(&mut b, tenant, k);
            }
            if b.is_empty() {
                return Ok(());
            }
            match self.store.commit(&b) {
                Ok(()) => return Ok(()),
                // Another process claimed one first: compare with what it wrote.
                Err(StoreError::Conflict) if attempt == 0 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict.into())
    }

    /// Makes a new key version for `purpose` in `ring` (saved), once the store holds
    /// no version this keyring lacks, and claims it in the store. Returns it.
    ///
    /// # Errors
    /// [`VaultError::KeyVersionMissing`] before anything changes when another host
    /// made a newer version; [`VaultError::KeyVersionConflict`] when another host
    /// claimed the same number in the moment between (this keyring's new version is
    /// then never used: the tenant fails closed until the other host's keyring is
    /// imported).
    pub(super) fn rotate_agreed(
        &self,
        ring: &mut Keyring,
        tenant: &str,
        purpose: KeyPurpose,
    ) -> Result<u32, VaultError> {
        let local_max = ring
            .tenants
            .get(tenant)
            .and_then(|tk| tk.seeds.last().map(|s| s.version))
            .unwrap_or(0);
        let newer: Vec<u32> = self
            .stored_versions(tenant)?
            .into_keys()
            .filter(|&v| v > local_max)
            .collect();
        if !newer.is_empty() {
            return Err(VaultError::KeyVersionMissing {
                tenant: tenant.to_owned(),
                versions: join(&newer),
            });
        }
        let version = ring.rotate(&self.root, tenant, purpose, self.now())?;
        // The keyring first: a crash before the claim leaves a version the next load
        // claims; a version is used only once claimed.
        self.save_keyring(ring)?;
        self.forget_tenant(tenant);
        let keys = ring.tenant_keys(&self.root, tenant, version)?;
        let mut b = Batch::default();
        self.stage_version_claim(&mut b, tenant, &keys);
        match self.store.commit(&b) {
            Ok(()) => Ok(version),
            Err(StoreError::Conflict) => Err(VaultError::KeyVersionConflict {
                tenant: tenant.to_owned(),
                version,
            }),
            Err(e) => Err(e.into()),
        }
    }
}

fn join(versions: &[u32]) -> String {
    versions
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
