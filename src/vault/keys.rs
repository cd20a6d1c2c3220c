//! Key lifecycle: rotation of a tenant's data or blind-index key, rewrap of every
//! record under the current versions (rebuilding the blind indexes after an
//! index-key rotation), resumable and chunked so the vault stays usable meanwhile;
//! retirement of old versions; crypto-shredding; the root key (`rekey`), key slots
//! and passphrases; the keyring's own export and import for the key holders.

use std::path::Path;
use std::sync::PoisonError;

use phonevault_keys::{
    Credential, KdfParams, KeyError, KeyFileKey, KeyPurpose, Keyring, Passphrase, RootKey, SlotKind,
};

use super::audit::Event;
use super::keyring_file::{check_private, write_atomic};
use super::keyring_rules::{
    check_no_loss, check_no_resurrection, merge_counters, unlock_pkcs11, unlock_ring,
};
use super::layout::record_key;
use super::{lifecycle, Unlock, Vault, VaultError, KEYRING_FILE, STORE_DIR};
use crate::policy::TenantName;
use crate::record;
use crate::store::{Batch, StoreLocation, Tree};

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
    pub fn shred_tenant(&self, tenant: &TenantName) -> Result<ShredReport, VaultError> {
        let tenant = tenant.as_str();
        self.audited("tenant-shred", Some(tenant), None, |ev| {
            self.shred_tenant_in(tenant, ev)
        })
    }

    fn shred_tenant_in(&self, tenant: &str, ev: &mut Event) -> Result<ShredReport, VaultError> {
        let row_bytes = self
            .store
            .get(Tree::Tenants, tenant.as_bytes())?
            .ok_or(VaultError::UnknownTenant(()))?;
        let row: super::TenantRow =
            super::rowmac::decode_row(&self.row_mac, "tenants", tenant.as_bytes(), &row_bytes)?;
        let _w = self.write_guard();
        {
            let mut ring = self.keyring_for_update()?;
            ring.shred_tenant(tenant)?;
            self.save_keyring(&mut ring)?;
        }
        self.forget_tenant(tenant);
        let prefix = row.id.to_be_bytes().to_vec();
        let mut report = ShredReport::default();
        for tree in [Tree::Records, Tree::Index, Tree::Expiry, Tree::Suppress] {
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
                // Each page of deletions with its own entry, in the same batch: a
                // crash never leaves deletions the log does not show.
                self.commit_audited_nowait(&mut b, ev)?;
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
    pub fn rotate_key(&self, tenant: &TenantName, index: bool) -> Result<u32, VaultError> {
        let tenant = tenant.as_str();
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
            self.rotate_agreed(&mut ring, tenant, purpose)?
        };
        self.forget_tenant(tenant);
        Ok(version)
    }

    /// Re-encrypts every record of the tenant not yet under the current data key, and
    /// moves index entries made with an older index key to the current one. Chunks
    /// commit atomically and are flushed before `on_progress` hears of them, so an
    /// interrupted rewrap (crash, kill, Ctrl-C, full disk) leaves every record whole
    /// and a re-run continues after the last chunk reported. `on_progress` gets
    /// (records done, records in all).
    pub fn rewrap(
        &self,
        tenant: &TenantName,
        on_progress: impl FnMut(u64, u64),
    ) -> Result<RewrapReport, VaultError> {
        let tenant = tenant.as_str();
        self.audited("key-rewrap", Some(tenant), None, |ev| {
            self.rewrap_in(tenant, on_progress, ev)
        })
    }

    fn rewrap_in(
        &self,
        tenant: &str,
        mut on_progress: impl FnMut(u64, u64),
        ev: &mut Event,
    ) -> Result<RewrapReport, VaultError> {
        self.forget_tenant(tenant);
        let ctx = self.tenant(tenant)?;
        let prefix = ctx.row.id.to_be_bytes().to_vec();
        let end = crate::store::prefix_end(&prefix);
        let mut total = 0u64;
        for page in self
            .store
            .pages(Tree::Records, &prefix, end.as_deref(), 10_000)
        {
            total += page?.len() as u64;
        }
        let data = ctx.current()?;
        let index = ctx.index()?;
        let mut report = RewrapReport {
            records: total,
            data_key_version: data.version,
            index_key_version: index.version,
            ..RewrapReport::default()
        };
        let mut done = 0u64;
        let mut pages = self
            .store
            .pages(Tree::Records, &prefix, end.as_deref(), REWRAP_CHUNK);
        loop {
            // The page is read under the write lock, which every record writer of this
            // process holds: it is current, and needs no second read per record. The
            // guards below still catch any other writer of a shared store.
            let w = self.write_guard();
            let Some(page) = pages.next() else { break };
            let page = page?;
            let mut b = Batch::default();
            let mut sealed_now = 0;
            let page_len = page.len() as u64;
            for (k, stored) in page {
                let id = super::layout::id_after(&k, 4, "records")?;
                let header = record::parse_header(&stored)?;
                if header.data_key_version == data.version
                    && header.index_key_version == index.version
                {
                    continue;
                }
                let keys = ctx.data_key(header.data_key_version)?;
                let body = record::open(&keys.data, ctx.row.id, &id, &stored)?;
                let sealed = record::seal(
                    &data.data,
                    data.version,
                    index.version,
                    ctx.row.id,
                    &id,
                    &body,
                )?;
                sealed_now += 1;
                ev.touch(&id);
                let rk = record_key(ctx.row.id, &id);
                b.guard(Tree::Records, rk.clone(), Some(stored));
                b.put(Tree::Records, rk, sealed);
                report.resealed += 1;
                if header.index_key_version != index.version {
                    let old_keys = ctx.data_key(header.index_key_version)?;
                    let old = ctx.index_entries(old_keys, &body, &id);
                    let new = ctx.index_entries(index, &body, &id);
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
                // The chunk and its entry (naming the records it re-encrypted) in one
                // batch: a crash never leaves rewritten records the log does not show.
                self.commit_audited_nowait(&mut b, ev)?;
                // Durable before it is reported: a killed rewrap resumes after the
                // last chunk it announced, instead of redoing work sled had buffered.
                self.sync_audited()?;
            }
            drop(w);
            done += page_len;
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

/// What `key retire` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RetireReport {
    /// The key versions destroyed (empty when none was left below the bound).
    pub destroyed: Vec<u32>,
    /// Records still under a destroyed data or index version: from now on reported
    /// as unreadable (non-zero only with `force`).
    pub unreadable_records: u64,
}

/// One key slot, as `keyslot list` shows it (no secret).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SlotInfo {
    /// Slot id.
    pub id: u32,
    /// `passphrase`, `key-file` or `pkcs11`.
    pub kind: &'static str,
    /// The token's label, of a PKCS#11 slot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkcs11_token: Option<String>,
    /// The key's label, of a PKCS#11 slot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkcs11_key: Option<String>,
    /// Argon2id memory (KiB) of a passphrase slot.
    pub kdf_memory_kib: Option<u32>,
    /// Argon2id iterations of a passphrase slot.
    pub kdf_iterations: Option<u32>,
}

/// What `keyring import` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeyringImportReport {
    /// Tenants with keys in the imported keyring.
    pub tenants: usize,
    /// Tenants of the store that the imported keyring has no keys for (their
    /// records cannot be read until a keyring holding them is imported).
    pub tenants_without_keys: Vec<String>,
}

impl Vault {
    /// The secret of this vault's PKCS#11 slot for `hsm`, as `rekey` needs it to rewrap that
    /// slot under a new root key.
    ///
    /// # Errors
    ///
    /// As unlocking through that slot.
    pub fn pkcs11_credential(
        &self,
        hsm: &crate::hsm::Pkcs11Config,
    ) -> Result<(u32, phonevault_keys::HsmSecret), VaultError> {
        unlock_pkcs11(&self.lock_ring(), hsm).map(|(_, c)| c)
    }
}

impl Vault {
    /// Per tenant and data-key version, the encryptions counted so far as a share of the
    /// count after which the key rotates by itself (for metrics).
    pub fn key_budgets(&self) -> Vec<(String, u32, f64)> {
        let ring = self.lock_ring();
        let limit = phonevault_keys::ROTATE_AFTER_ENCRYPTIONS as f64;
        ring.tenants
            .iter()
            .flat_map(|(name, tk)| {
                tk.seeds
                    .iter()
                    .map(move |s| (name.clone(), s.version, s.encryptions as f64 / limit))
            })
            .collect()
    }

    /// The store's size on disk, where it has one (see [`crate::store::Store::bytes_on_disk`]).
    pub fn store_size(&self) -> Option<u64> {
        self.store().bytes_on_disk()
    }

    fn lock_ring(&self) -> std::sync::MutexGuard<'_, Keyring> {
        self.keyring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `change` to a copy of the keyring, writes it (atomically), and only
    /// then makes it the vault's keyring: a failed write changes nothing.
    fn change_keyring<T>(
        &self,
        change: impl FnOnce(&mut Keyring) -> Result<T, VaultError>,
    ) -> Result<T, VaultError> {
        // Locked against other processes sharing the keyring file, and re-read first.
        let mut ring = self.keyring_for_update()?;
        let mut next = (*ring).clone();
        let out = change(&mut next)?;
        self.save_keyring(&mut next)?;
        *ring = next;
        Ok(out)
    }

    /// Records of the tenant whose data or index key version is below `below`.
    pub fn count_records_below(&self, tenant: &TenantName, below: u32) -> Result<u64, VaultError> {
        self.count_below(tenant.as_str(), below)
    }

    fn count_below(&self, tenant: &str, below: u32) -> Result<u64, VaultError> {
        let ctx = self.tenant(tenant)?;
        let mut n = 0u64;
        for entry in self
            .store
            .scan_all(Tree::Records, &ctx.row.id.to_be_bytes(), 10_000)
        {
            let h = record::parse_header(&entry?.1)?;
            if h.data_key_version < below || h.index_key_version < below {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Destroys the tenant's key versions below `below` (never a current one). First
    /// counts the records still under those versions (data or index key) and refuses
    /// with [`VaultError::RetireWouldStrand`] unless `force`; with `force` they stay
    /// in the store and every read of them fails with
    /// [`KeyError::VersionRetired`], so nothing disappears silently.
    ///
    /// The tenant row stops listing retired index versions first, then the keyring
    /// is written: a crash in between leaves every key, and a re-run finishes.
    pub fn retire_keys(
        &self,
        tenant: &TenantName,
        below: u32,
        force: bool,
    ) -> Result<RetireReport, VaultError> {
        let tenant = tenant.as_str();
        self.audited("key-retire", Some(tenant), None, |_| {
            self.retire_keys_in(tenant, below, force)
        })
    }

    fn retire_keys_in(
        &self,
        tenant: &str,
        below: u32,
        force: bool,
    ) -> Result<RetireReport, VaultError> {
        self.tenant(tenant)?;
        // Validate on a copy: refuses a current version before anything is counted.
        let would = self.lock_ring().clone().retire_below(tenant, below)?;
        if would.is_empty() {
            return Ok(RetireReport::default());
        }
        let records = self.count_below(tenant, below)?;
        if records > 0 && !force {
            return Err(VaultError::RetireWouldStrand {
                tenant: tenant.to_owned(),
                below,
                records,
            });
        }
        self.update_tenant(tenant, "tenant-drop-index-versions", |row| {
            row.stale_index_versions.retain(|v| *v >= below);
            Ok(())
        })?;
        let destroyed = {
            let _w = self.write_guard();
            self.change_keyring(|ring| Ok(ring.retire_below(tenant, below)?))?
        };
        self.forget_tenant(tenant);
        Ok(RetireReport {
            destroyed,
            unreadable_records: records,
        })
    }

    /// Replaces the root key with a fresh random one: the keyring's vault seed,
    /// tenant seeds and key slots are rewrapped (no record, row or index changes,
    /// since every working key comes from those seeds). `credentials` must open
    /// every key slot.
    ///
    /// This vault object keeps serving reads, but refuses any further keyring change
    /// ([`KeyError::WrongRootKey`]): open the vault again to work under the new root
    /// key.
    ///
    /// # Errors
    /// [`KeyError::RekeyMissingCredential`] naming a slot no credential opens;
    /// nothing is changed then.
    pub fn rekey(&self, credentials: &[Credential<'_>]) -> Result<(), VaultError> {
        self.audited("rekey", None, None, |_| {
            let new = RootKey::try_generate()?;
            let _w = self.write_guard();
            let mut ring = self.keyring_for_update()?;
            let mut next = (*ring).clone();
            next.rekey(&self.root, &new, credentials)?;
            if !self.dir.as_os_str().is_empty() {
                write_atomic(&self.dir.join(KEYRING_FILE), &next.encode())?;
                self.note_keyring_written();
            }
            *ring = next;
            Ok(())
        })
    }

    /// Gives the passphrase slot that `old` opens the passphrase `new` (with
    /// `params`, or the slot's own Argon2id parameters). Only that slot is rewrapped.
    /// Returns the slot id.
    ///
    /// # Errors
    /// [`VaultError::Unlock`] when `old` opens no slot of this vault.
    pub fn change_passphrase(
        &self,
        old: &Passphrase,
        new: &Passphrase,
        params: Option<KdfParams>,
    ) -> Result<u32, VaultError> {
        self.audited("passwd", None, None, |_| {
            self.change_passphrase_in(old, new, params)
        })
    }

    fn change_passphrase_in(
        &self,
        old: &Passphrase,
        new: &Passphrase,
        params: Option<KdfParams>,
    ) -> Result<u32, VaultError> {
        self.change_keyring(|ring| {
            let (rk, slot) = ring.unlock_with_slot(old).map_err(|e| match e {
                KeyError::Unlock => VaultError::Unlock,
                other => VaultError::Key(other),
            })?;
            if rk != self.root {
                return Err(VaultError::Unlock);
            }
            ring.change_passphrase(&self.root, slot, new, params)?;
            Ok(slot)
        })
    }

    /// Adds a passphrase slot unlocking this vault's root key; returns its id.
    pub fn add_passphrase_slot(
        &self,
        pass: &Passphrase,
        params: KdfParams,
    ) -> Result<u32, VaultError> {
        self.audited("keyslot-add", None, None, |_| {
            self.change_keyring(|ring| Ok(ring.add_passphrase_slot(&self.root, pass, params)?))
        })
    }

    /// Removes a key slot; refuses the last one ([`KeyError::LastSlot`]).
    pub fn remove_slot(&self, id: u32) -> Result<(), VaultError> {
        self.audited("keyslot-remove", None, None, |_| {
            self.change_keyring(|ring| Ok(ring.remove_slot(id)?))
        })
    }

    /// The key slots.
    pub fn slots(&self) -> Vec<SlotInfo> {
        self.lock_ring()
            .slots
            .iter()
            .map(|s| {
                let mut info = SlotInfo {
                    id: s.id,
                    kind: "key-file",
                    pkcs11_token: None,
                    pkcs11_key: None,
                    kdf_memory_kib: None,
                    kdf_iterations: None,
                };
                match &s.kind {
                    SlotKind::Passphrase { params, .. } => {
                        info.kind = "passphrase";
                        info.kdf_memory_kib = Some(params.m_kib);
                        info.kdf_iterations = Some(params.t);
                    }
                    SlotKind::KeyFile => {}
                    SlotKind::Pkcs11(p) => {
                        info.kind = "pkcs11";
                        info.pkcs11_token = Some(p.token.clone());
                        info.pkcs11_key = Some(p.key.clone());
                    }
                }
                info
            })
            .collect()
    }

    /// The keyring's bytes as the key holders keep them: slots and wrapped seeds
    /// under the keyring MAC (verified here). It opens only with a slot credential.
    pub fn export_keyring(&self) -> Result<Vec<u8>, VaultError> {
        self.audited("keyring-export", None, None, |_| {
            let ring = self.lock_ring();
            ring.verify(&self.root)?;
            Ok(ring.encode())
        })
    }

    /// Installs a keyring export into the vault at `dir` (written atomically). The
    /// export must open with `unlock` (which also verifies its MAC) and belong to
    /// this vault's store; unless `force`, it must not hold keys the current keyring
    /// has destroyed since (a shredded tenant, retired versions). Needs the vault
    /// closed (it opens the store to check it).
    pub fn import_keyring(
        dir: &Path,
        bytes: &[u8],
        unlock: &Unlock,
        force: bool,
    ) -> Result<KeyringImportReport, VaultError> {
        let mut ring = Keyring::decode(bytes)?;
        let root = unlock_ring(&ring, unlock)?;
        if !dir.join(STORE_DIR).exists() {
            return Err(VaultError::NoVault(dir.to_owned()));
        }
        check_private(dir)?;
        let path = dir.join(KEYRING_FILE);
        // A current keyring that cannot be read is what an import repairs.
        if let Some(cur) = std::fs::read(&path)
            .ok()
            .and_then(|b| Keyring::decode(&b).ok())
            .filter(|cur| cur.vault_id == ring.vault_id)
        {
            if !force {
                check_no_resurrection(&cur, &ring)?;
                check_no_loss(&cur, &ring)?;
            }
            if merge_counters(&cur, &mut ring) {
                ring.seal(&root);
            }
        }
        lifecycle::recover_compaction(dir)?;
        let store = StoreLocation::Sled.open(&dir.join(STORE_DIR), 8 << 20)?;
        // Checks the store's meta row under the imported keyring's row-MAC key.
        let vault = Vault::with_store(dir, store, ring.clone(), root)?;
        let tenants_without_keys = vault
            .tenants()?
            .into_iter()
            .filter(|t| !ring.tenants.contains_key(&t.name))
            .map(|t| t.name)
            .collect();
        vault.audited("keyring-import", None, None, |_| {
            write_atomic(&path, &ring.encode())
        })?;
        drop(vault);
        Ok(KeyringImportReport {
            tenants: ring.tenants.len(),
            tenants_without_keys,
        })
    }
}

impl Vault {
    /// Adds a PKCS#11 slot: a fresh secret sealed by the token's key (which must be
    /// non-extractable), wrapping the root key. Returns the slot id.
    ///
    /// # Errors
    ///
    /// [`VaultError::Hsm`] when the token, PIN or key is refused; keyring errors.
    pub fn add_pkcs11_slot(&self, hsm: &crate::hsm::Pkcs11Config) -> Result<u32, VaultError> {
        self.audited("keyslot-add", None, None, |_| {
            let mut ring = self.keyring_for_update()?;
            let id = ring.next_slot_id()?;
            let secret = phonevault_keys::HsmSecret::generate();
            let aad = phonevault_keys::pkcs11_seal_aad(&ring.vault_id, id);
            let binding = hsm.seal(&aad, &secret)?;
            // The token must give the secret back before the slot is trusted with the root key.
            if hsm.unseal(&aad, &binding)? != secret {
                return Err(crate::hsm::HsmError::Unseal {
                    token: hsm.token.clone(),
                    key: hsm.key.clone(),
                }
                .into());
            }
            let id = ring.add_pkcs11_slot(&self.root, id, binding, &secret)?;
            self.save_keyring(&mut ring)?;
            Ok(id)
        })
    }

    /// Adds a key-file slot unlocking this vault's root key.
    pub fn add_key_file_slot(&self, kf: &KeyFileKey) -> Result<u32, VaultError> {
        self.audited("keyslot-add", None, None, |_| {
            let mut ring = self.keyring_for_update()?;
            let id = ring.add_key_file_slot(&self.root, kf)?;
            self.save_keyring(&mut ring)?;
            Ok(id)
        })
    }
}
