//! Tenants: their MACed rows, the vault's meta row, and the cached context (settings and
//! keys) every operation on a tenant starts from.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use bincode::{Decode, Encode};
use phonevault_keys::{KeyError, Keyring, MacKey, TenantKeys, VaultId};

use super::layout::{exact_index_key, last4_of, last4_prefix};
use super::rowmac::{decode_row, encode_row};
use super::{audit, check_name, now, suppress, Vault, VaultError, VAULT_FORMAT};
use crate::phone;
use crate::policy::TenantName;
use crate::record::{self, RecordBody, RecordId};
use crate::store::{Batch, Store, Tree};

/// How long a cached tenant context (settings and keys) is used before its row is
/// re-read. Other servers sharing the store see a change of tenant settings within
/// this bound; a change of the keyring file they share is seen at the next call (its
/// identity is checked every time); records, tokens, consents, opt-outs and erasures
/// are never cached.
pub const TENANT_CACHE_TTL: Duration = Duration::from_secs(2);

/// Settings of a tenant, stored MACed in the `tenants` tree.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct TenantRow {
    /// Internal numeric id, the prefix of its keys in every tree.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Declared purposes.
    pub purposes: Vec<String>,
    /// Bits of the last-4 partial index, when the tenant has one.
    pub last4_bits: Option<u8>,
    /// Expected row count the last-4 length was planned for.
    pub expected_rows: Option<u64>,
    /// Retention in days, counted from the latest consent or verification.
    pub retention_days: Option<u32>,
    /// libphonenumber metadata version the indexes were computed with.
    pub metadata_version: String,
    /// Older index-key versions that may still have index entries (after an
    /// index-key rotation, until `key rewrap` has rebuilt every entry).
    pub stale_index_versions: Vec<u32>,
    /// Unix seconds of creation.
    pub created_at: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub(super) struct MetaRow {
    pub(super) format: u8,
    pub(super) vault_id: [u8; 16],
    pub(super) next_tenant_id: u32,
    pub(super) created_at: u64,
}

impl MetaRow {
    /// The batch that writes the meta row of a new vault.
    pub(super) fn first_batch(row_mac: &MacKey, vault_id: &VaultId) -> Batch {
        let meta = MetaRow {
            format: VAULT_FORMAT,
            vault_id: vault_id.0,
            next_tenant_id: 1,
            created_at: now(),
        };
        let mut b = Batch::default();
        b.put(
            Tree::Meta,
            b"vault".to_vec(),
            encode_row(row_mac, "meta", b"vault", &meta),
        );
        b
    }
}

/// The meta row of `store`, checked against the keyring: the store is this vault's.
pub(super) fn check_meta(
    store: &dyn Store,
    row_mac: &MacKey,
    ring: &Keyring,
) -> Result<MetaRow, VaultError> {
    let bytes = store
        .get(Tree::Meta, b"vault")?
        .ok_or(VaultError::EmptyStore)?;
    let meta: MetaRow =
        decode_row(row_mac, "meta", b"vault", &bytes).map_err(|_| VaultError::KeyringMismatch)?;
    if meta.vault_id != ring.vault_id.0 || meta.format != VAULT_FORMAT {
        return Err(VaultError::KeyringMismatch);
    }
    Ok(meta)
}

pub(crate) struct TenantCtx {
    pub(super) row: TenantRow,
    pub(super) keys: BTreeMap<u32, TenantKeys>,
    pub(super) current_data: u32,
    pub(super) current_index: u32,
    /// Versions below this were destroyed by `key retire`.
    pub(super) destroyed_below: u32,
    /// When the row and keys were read (see [`TENANT_CACHE_TTL`]).
    pub(super) loaded: Instant,
    /// A sealed record under no id of the tenant, opened by a read that found
    /// nothing, so that "absent" costs the fetch and decryption of "refused".
    pub(super) decoy: std::sync::OnceLock<Vec<u8>>,
    /// The tenant's suppression lists, once a read loaded them (see
    /// `Vault::read_lists`).
    pub(super) lists: std::sync::OnceLock<Vec<suppress::ActiveList>>,
}

/// The id of [`TenantCtx::decoy`]: all ones, never generated (ids start with the
/// creation time in milliseconds).
pub(super) const DECOY_ID: RecordId = RecordId([0xff; 16]);

/// The index entries of one record, computed from its number.
#[derive(Clone)]
pub(super) struct IndexEntries {
    pub(super) exact: Vec<u8>,
    pub(super) last4: Option<Vec<u8>>,
}

impl TenantCtx {
    /// The index entries of record `id` holding `body`'s number, under the index key
    /// `keys`.
    pub(super) fn index_entries(
        &self,
        keys: &TenantKeys,
        body: &RecordBody,
        id: &RecordId,
    ) -> IndexEntries {
        let digest = record::exact_digest(&keys.index, &body.e164);
        let exact = exact_index_key(self.row.id, keys.version, &digest);
        let last4 = self.row.last4_bits.map(|bits| {
            let d =
                record::last4_digest(&keys.index, body.country_code, last4_of(&body.e164), bits);
            let mut k = last4_prefix(self.row.id, keys.version, &d);
            k.extend_from_slice(&id.0);
            k
        });
        IndexEntries { exact, last4 }
    }

    /// The index key versions a lookup tries, oldest first: a concurrent rewrap moves
    /// entries from old to new only, so looking at the old place before the new one
    /// cannot miss an entry in flight (new-then-old could, between the two reads).
    pub(super) fn index_versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.row
            .stale_index_versions
            .iter()
            .copied()
            .chain(std::iter::once(self.current_index))
    }

    pub(super) fn data_key(&self, version: u32) -> Result<&TenantKeys, VaultError> {
        self.keys
            .get(&version)
            .ok_or(VaultError::Key(if version < self.destroyed_below {
                KeyError::VersionRetired { version }
            } else {
                KeyError::UnknownKeyVersion
            }))
    }

    pub(super) fn current(&self) -> Result<&TenantKeys, VaultError> {
        self.data_key(self.current_data)
    }

    pub(super) fn index(&self) -> Result<&TenantKeys, VaultError> {
        self.data_key(self.current_index)
    }

    pub(super) fn check_purpose(&self, purpose: &str) -> Result<(), VaultError> {
        self.check_purpose_at(purpose, 0)
    }

    /// Checks `purpose`, the `position`th (0-based) of those given.
    pub(super) fn check_purpose_at(
        &self,
        purpose: &str,
        position: usize,
    ) -> Result<(), VaultError> {
        match crate::policy::Purpose::declared(&self.row.purposes, purpose, position) {
            Ok(_) => Ok(()),
            Err(_) => Err(VaultError::UnknownPurpose {
                position: position + 1,
                tenant: self.row.name.clone(),
                declared: self.row.purposes.join(", "),
            }),
        }
    }
}

impl Vault {
    /// Drops the cached context of a tenant (after its row or keys changed).
    pub(super) fn forget_tenant(&self, name: &str) {
        self.tenants
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    /// Creates a tenant with its declared purposes and, optionally, a last-4 partial
    /// index planned for `expected_rows` rows. Returns the row (with the planned bits).
    pub fn create_tenant(
        &self,
        name: &TenantName,
        purposes: &[String],
        last4_expected_rows: Option<u64>,
    ) -> Result<TenantRow, VaultError> {
        let name = name.as_str();
        self.audited("tenant-create", Some(name), None, |ev| {
            self.create_tenant_in(name, purposes, last4_expected_rows, ev)
        })
    }

    pub(super) fn create_tenant_in(
        &self,
        name: &str,
        purposes: &[String],
        last4_expected_rows: Option<u64>,
        ev: &mut audit::Event,
    ) -> Result<TenantRow, VaultError> {
        if purposes.is_empty() {
            return Err(VaultError::InvalidArgument(
                "a tenant needs at least one purpose (--purposes otp,support,...)".into(),
            ));
        }
        for p in purposes {
            check_name("purpose", p)?;
        }
        let _w = self.write_guard();
        if self.store.get(Tree::Tenants, name.as_bytes())?.is_some() {
            return Err(VaultError::TenantExists(name.to_owned()));
        }
        let meta_bytes = self
            .store
            .get(Tree::Meta, b"vault")?
            .ok_or(VaultError::RowTampered("meta"))?;
        let mut meta: MetaRow = decode_row(&self.row_mac, "meta", b"vault", &meta_bytes)?;
        let mut purposes_sorted = purposes.to_vec();
        purposes_sorted.sort();
        purposes_sorted.dedup();
        let row = TenantRow {
            id: meta.next_tenant_id,
            name: name.to_owned(),
            purposes: purposes_sorted,
            last4_bits: last4_expected_rows.map(|r| record::plan_last4_bits(r).0),
            expected_rows: last4_expected_rows,
            retention_days: None,
            metadata_version: phone::metadata_version().to_owned(),
            stale_index_versions: Vec::new(),
            created_at: now(),
        };
        meta.next_tenant_id = meta
            .next_tenant_id
            .checked_add(1)
            .ok_or_else(|| VaultError::InvalidArgument("too many tenants".into()))?;
        // Keys first: a crash between the two leaves an unused seed, never a tenant
        // without keys.
        {
            let mut ring = self.keyring_for_update()?;
            match ring.tenants.get(name) {
                None => {
                    ring.add_tenant(&self.root, name, now())?;
                    self.save_keyring(&mut ring)?;
                }
                // Keys of a shredded tenant are gone for good; its name stays taken
                // so nothing is ever encrypted under a seed the holders think is dead.
                Some(tk) if tk.is_shredded() => {
                    return Err(VaultError::TenantExists(name.to_owned()));
                }
                // Keys left by a crash between keyring and store writes: reuse them.
                Some(_) => {}
            }
        }
        let mut b = Batch::default();
        // Version 1 agreed through the store with the tenant row (see `versions`).
        let first = self
            .keyring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tenant_keys(&self.root, name, 1)?;
        self.stage_version_claim(&mut b, name, &first);
        b.guard(Tree::Meta, b"vault".to_vec(), Some(meta_bytes));
        b.guard(Tree::Tenants, name.as_bytes().to_vec(), None);
        b.put(
            Tree::Meta,
            b"vault".to_vec(),
            encode_row(&self.row_mac, "meta", b"vault", &meta),
        );
        b.put(
            Tree::Tenants,
            name.as_bytes().to_vec(),
            encode_row(&self.row_mac, "tenants", name.as_bytes(), &row),
        );
        self.commit_audited(&mut b, ev)?;
        Ok(row)
    }

    /// Every tenant, by name.
    pub fn tenants(&self) -> Result<Vec<TenantRow>, VaultError> {
        self.store
            .range(Tree::Tenants, b"", None, usize::MAX)?
            .into_iter()
            .map(|(k, v)| decode_row(&self.row_mac, "tenants", &k, &v))
            .collect()
    }

    pub(crate) fn tenant(&self, name: &str) -> Result<Arc<TenantCtx>, VaultError> {
        // A key change by another process sharing the keyring file (a rotation moves
        // the current index key, which decides where a number is looked up and made
        // unique) is picked up at once.
        self.refresh_keyring()?;
        if let Some(ctx) = self
            .tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            if ctx.loaded.elapsed() < TENANT_CACHE_TTL {
                return Ok(ctx.clone());
            }
        }
        // Expired or absent: another server may have changed the row.
        let bytes = self
            .store
            .get(Tree::Tenants, name.as_bytes())?
            .ok_or(VaultError::UnknownTenant(()))?;
        let row: TenantRow = decode_row(&self.row_mac, "tenants", name.as_bytes(), &bytes)?;
        let ring = self.keyring.lock().unwrap_or_else(PoisonError::into_inner);
        let tk = ring
            .tenants
            .get(name)
            .ok_or(VaultError::UnknownTenant(()))?;
        let mut keys = BTreeMap::new();
        // Every version still held decrypts: "retired" only means no longer current.
        for s in tk.seeds.iter() {
            keys.insert(s.version, ring.tenant_keys(&self.root, name, s.version)?);
        }
        let tk = tk.clone();
        drop(ring);
        // Used only once the store agrees on every version (see `versions`).
        self.agree_versions(name, &tk, &keys)?;
        let ctx = Arc::new(TenantCtx {
            row,
            keys,
            current_data: tk.current_data,
            current_index: tk.current_index,
            destroyed_below: tk.destroyed_below,
            loaded: Instant::now(),
            decoy: std::sync::OnceLock::new(),
            lists: std::sync::OnceLock::new(),
        });
        self.tenants
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), ctx.clone());
        Ok(ctx)
    }
}
