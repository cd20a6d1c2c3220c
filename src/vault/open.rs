//! Creating a vault (a keyring and an empty store) and opening one.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use phonevault_keys::{KdfParams, KeyError, KeyFileKey, Keyring, Passphrase, RootKey, VaultId};

use super::keyring_file::{check_private, read_keyring, write_atomic, FileStamp};
use super::tenants::{check_meta, MetaRow};
use super::{
    audit, keyring_rules, lifecycle, now, tokens, Vault, VaultError, VaultInner, Who, KEYRING_FILE,
    STORE_DIR,
};
use crate::store::{Batch, Store, StoreError, StoreLocation, Tree};

/// How to unlock the root key.
pub enum Unlock {
    /// A passphrase slot.
    Passphrase(Passphrase),
    /// A key-file slot.
    KeyFile(KeyFileKey),
    /// A PKCS#11 slot whose token and key labels are the configuration's.
    Pkcs11(crate::hsm::Pkcs11Config),
}

impl std::fmt::Debug for Unlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unlock").finish_non_exhaustive()
    }
}

/// Options of [`Vault::open`].
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Page cache of the store in bytes (sled).
    pub cache_bytes: u64,
    /// Where the records live: sled in the vault directory, or a database.
    pub store: StoreLocation,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            cache_bytes: 64 << 20,
            store: StoreLocation::Sled,
        }
    }
}

impl Vault {
    /// Creates a vault in `dir` with one passphrase slot.
    ///
    /// # Errors
    /// [`VaultError::AlreadyExists`] when `dir` already holds a vault or a store.
    pub fn init(dir: &Path, pass: &Passphrase, params: KdfParams) -> Result<(), VaultError> {
        Self::init_on(dir, &StoreLocation::Sled, pass, params)
    }

    /// Creates a vault with one passphrase slot whose keyring is in `dir` and whose
    /// records live at `store` (sled in `dir`, or a database).
    ///
    /// # Errors
    /// [`VaultError::AlreadyExists`] when `dir` holds a keyring or the store a vault.
    pub fn init_on(
        dir: &Path,
        store: &StoreLocation,
        pass: &Passphrase,
        params: KdfParams,
    ) -> Result<(), VaultError> {
        Self::init_with(dir, store, |ring, rk| {
            ring.add_passphrase_slot(rk, pass, params).map(|_| ())
        })
    }

    /// Creates a vault in `dir` with a key-file slot.
    pub fn init_with_key_file(dir: &Path, kf: &KeyFileKey) -> Result<(), VaultError> {
        Self::init_with(dir, &StoreLocation::Sled, |ring, rk| {
            ring.add_key_file_slot(rk, kf).map(|_| ())
        })
    }

    pub(super) fn init_with(
        dir: &Path,
        location: &StoreLocation,
        add_slot: impl FnOnce(&mut Keyring, &RootKey) -> Result<(), KeyError>,
    ) -> Result<(), VaultError> {
        if let StoreLocation::Postgres(cfg) = location {
            return Self::init_in_database(dir, cfg, add_slot);
        }
        let ring_path = dir.join(KEYRING_FILE);
        if ring_path.exists() || dir.join(STORE_DIR).exists() {
            return Err(VaultError::AlreadyExists(dir.to_owned()));
        }
        let (ring, b) = Self::fresh_vault(dir, add_slot)?;
        // Store first: if the keyring cannot be written, a retry finds no keyring and
        // an empty store, and init removes it below.
        let store_dir = dir.join(STORE_DIR);
        let store = location.open(&store_dir, 8 << 20)?;
        let r = store
            .commit(&b)
            .and_then(|()| store.flush())
            .map_err(VaultError::from)
            .and_then(|()| write_atomic(&ring_path, &ring.encode()));
        if let Err(e) = r {
            drop(store);
            let _ = std::fs::remove_dir_all(&store_dir);
            return Err(e);
        }
        Ok(())
    }

    /// Creates the private vault directory and a new keyring with its first slot;
    /// returns the keyring and the store rows of an empty vault (meta row, audit
    /// genesis).
    pub(super) fn fresh_vault(
        dir: &Path,
        add_slot: impl FnOnce(&mut Keyring, &RootKey) -> Result<(), KeyError>,
    ) -> Result<(Keyring, Batch), VaultError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| VaultError::io("creating", dir, e))?;
        check_private(dir)?;
        let vault_id = VaultId::generate();
        let rk = RootKey::generate();
        let mut ring = Keyring::new(vault_id, &rk)?;
        add_slot(&mut ring, &rk)?;
        ring.seal(&rk);
        let vault_keys = ring.vault_keys(&rk)?;
        let mut b = MetaRow::first_batch(&vault_keys.row_mac, &vault_id);
        audit::AuditLog::genesis(&vault_keys.state, &vault_id, &mut b)?;
        Ok((ring, b))
    }

    /// `init` with the records in a database: the keyring file in `dir`, the meta row
    /// (written only if the database holds no vault yet) in the database.
    pub(super) fn init_in_database(
        dir: &Path,
        cfg: &crate::store::PgConfig,
        add_slot: impl FnOnce(&mut Keyring, &RootKey) -> Result<(), KeyError>,
    ) -> Result<(), VaultError> {
        let ring_path = dir.join(KEYRING_FILE);
        if ring_path.exists() {
            return Err(VaultError::AlreadyExists(dir.to_owned()));
        }
        let store = StoreLocation::Postgres(cfg.clone()).open(dir, 0)?;
        if store.get(Tree::Meta, b"vault")?.is_some() {
            return Err(VaultError::InvalidArgument(format!(
                "the database already holds a vault (schema `{}`): copy its keyring file to {} instead of running init, or choose another --pg-schema",
                cfg.schema,
                dir.display()
            )));
        }
        let (ring, mut b) = Self::fresh_vault(dir, add_slot)?;
        // Two concurrent inits: the guard lets one win.
        b.guard(Tree::Meta, b"vault".to_vec(), None);
        // Keyring first: a failed meta write leaves a keyring that `init` removes.
        write_atomic(&ring_path, &ring.encode())?;
        if let Err(e) = store.commit(&b) {
            let _ = std::fs::remove_file(&ring_path);
            return Err(match e {
                StoreError::Conflict => VaultError::InvalidArgument(
                    "another init wrote a vault into this database at the same time; copy its keyring file instead".into(),
                ),
                other => other.into(),
            });
        }
        Ok(())
    }

    /// Opens and unlocks the vault in `dir`.
    ///
    /// # Errors
    /// [`VaultError::NoVault`], [`VaultError::Unlock`] (wrong passphrase or key
    /// file), [`VaultError::InsecurePermissions`], [`StoreError::Locked`] when another
    /// process has it open.
    pub fn open(dir: &Path, unlock: &Unlock, opts: OpenOptions) -> Result<Vault, VaultError> {
        let ring = read_keyring(dir)?;
        let root = keyring_rules::unlock_ring(&ring, unlock)?;
        if matches!(opts.store, StoreLocation::Sled) {
            lifecycle::recover_compaction(dir)?;
        }
        let store = opts.store.open(&dir.join(STORE_DIR), opts.cache_bytes)?;
        Self::with_store(dir, store, ring, root)
    }

    /// Opens a vault over any [`Store`] (tests use [`crate::store::MemoryStore`]).
    pub fn with_store(
        dir: &Path,
        store: Arc<dyn Store>,
        ring: Keyring,
        root: RootKey,
    ) -> Result<Vault, VaultError> {
        let vault_keys = ring.vault_keys(&root)?;
        let row_mac = vault_keys.row_mac;
        let stamp = if dir.as_os_str().is_empty() {
            None
        } else {
            FileStamp::of(&dir.join(KEYRING_FILE))
        };
        check_meta(store.as_ref(), &row_mac, &ring)?;
        let audit = audit::AuditLog::load(
            store.as_ref(),
            vault_keys.state,
            vault_keys.audit_read,
            &ring.vault_id,
            dir,
        )?;
        // Entries a killed server wrote to its journal join the chain before anything
        // else happens.
        audit.recover(store.as_ref())?;
        let inner = VaultInner {
            dir: dir.to_owned(),
            store,
            keyring: Mutex::new(ring),
            keyring_stamp: Mutex::new(stamp),
            root,
            row_mac,
            tenants: RwLock::new(HashMap::new()),
            reservations: Mutex::new(HashMap::new()),
            write_lock: Mutex::new(()),
            suppress_lock: Mutex::new(()),
            token_cache: tokens::TokenCache::default(),
            clock: RwLock::new(Arc::new(now)),
            audit,
        };
        Ok(Vault {
            inner: Arc::new(inner),
            who: Who {
                actor: crate::audit::Actor::System,
                reveal: false,
                audit: true,
                defer: None,
            },
        })
    }

    /// Creates an in-memory vault (keyring kept in memory) for tests and benchmarks.
    pub fn in_memory(store: Arc<dyn Store>) -> Result<Vault, VaultError> {
        let vault_id = VaultId::generate();
        let root = RootKey::generate();
        let mut ring = Keyring::new(vault_id, &root)?;
        ring.add_key_file_slot(&root, &KeyFileKey::generate())?;
        ring.seal(&root);
        let vault_keys = ring.vault_keys(&root)?;
        let mut b = MetaRow::first_batch(&vault_keys.row_mac, &vault_id);
        audit::AuditLog::genesis(&vault_keys.state, &vault_id, &mut b)?;
        store.commit(&b)?;
        Self::with_store(Path::new(""), store, ring, root)
    }
}
