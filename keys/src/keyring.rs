//! The keyring: key slots and wrapped tenant seeds, in one MACed file.

use std::collections::BTreeMap;
use std::fmt;

use bincode::{Decode, Encode};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::kdf::KdfParams;
use crate::labels;
use crate::slot::{KeySlot, Pkcs11Slot, SlotKind};
use crate::symmetric::{unwrap_key_into, wrap_key, NONCE_LEN, WRAPPED_LEN};
use crate::tenant::{derive_tenant_keys, TenantKeys};
use crate::util::lp_concat;
use crate::vault_keys::{derive_vault_keys, VaultKeys};
use crate::{
    HsmSecret, KeyError, KeyFileKey, Passphrase, RootKey, TenantSeed, VaultId, VaultSeed, KEY_LEN,
};

/// The first byte of an encoded keyring. Version 2 added the wrapped vault
/// seed and per-version retirement; version 1 keyrings (development builds
/// only) are refused with [`KeyError::OldFormat`].
pub const FORMAT_VERSION: u8 = 2;
/// Largest encoded keyring [`Keyring::decode`] accepts: 16 MiB.
pub const MAX_KEYRING_LEN: usize = 16 << 20;
/// Most key slots a keyring may hold (bounds the Argon2 work of `unlock`).
pub const MAX_SLOTS: usize = 16;
/// Longest tenant name, in bytes.
pub const MAX_TENANT_NAME_LEN: usize = 256;
/// Encryptions under one key version after which the data key must rotate:
/// 2^31, well inside the 2^32 bound for random 96-bit GCM nonces.
pub const ROTATE_AFTER_ENCRYPTIONS: u64 = 1 << 31;

const MAC_LEN: usize = 32;
const UNSET: [u8; KEY_LEN] = [0u8; KEY_LEN];

/// Which of a tenant's current key versions to rotate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPurpose {
    /// The data key (record encryption); rotates by itself past
    /// [`ROTATE_AFTER_ENCRYPTIONS`].
    Data,
    /// The blind-index key; rotating it means rebuilding the tenant's index.
    Index,
}

/// One key version of a tenant: its seed, wrapped under the root key.
///
/// ```text
/// wrapped = AES-256-GCM(HKDF(RK, vault id, lp("phonevault/v1/seed-wrap")), nonce, seed_v, aad)
/// aad = lp("phonevault/v1/seed-wrap") ‖ lp(vault id) ‖ lp(tenant) ‖ lp(u32 BE version)
/// ```
#[derive(Clone, PartialEq, Eq, Encode, Decode)]
pub struct SeedEntry {
    /// The key version (1, 2, …).
    pub version: u32,
    /// When it was made (unix seconds, given by the caller).
    pub created_at: u64,
    /// How many encryptions its data key has done (see [`Keyring::note_encryptions`]).
    pub encryptions: u64,
    /// True once this version is neither the current data nor the current
    /// index version: it is kept only to decrypt and look up old entries.
    /// Maintained by [`Keyring::rotate`].
    pub retired: bool,
    nonce: [u8; NONCE_LEN],
    wrapped: [u8; WRAPPED_LEN],
}

impl fmt::Debug for SeedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeedEntry")
            .field("version", &self.version)
            .field("created_at", &self.created_at)
            .field("encryptions", &self.encryptions)
            .field("retired", &self.retired)
            .finish_non_exhaustive()
    }
}

/// A tenant's key versions.
///
/// A crypto-shredded tenant keeps its entry with no seeds and both current
/// versions 0, so that its name is not reused.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct TenantKeyring {
    /// The version whose data key encrypts new records.
    pub current_data: u32,
    /// The version whose index key makes new index entries and lookups.
    pub current_index: u32,
    /// Every version still held, in increasing version order.
    pub seeds: Vec<SeedEntry>,
    /// Every version below this one was destroyed by
    /// [`Keyring::retire_below`] (0: none was).
    pub destroyed_below: u32,
}

impl TenantKeyring {
    /// The current version for `purpose`.
    pub fn current(&self, purpose: KeyPurpose) -> u32 {
        match purpose {
            KeyPurpose::Data => self.current_data,
            KeyPurpose::Index => self.current_index,
        }
    }

    /// True once [`Keyring::shred_tenant`] destroyed the tenant's seeds.
    pub fn is_shredded(&self) -> bool {
        self.seeds.is_empty()
    }

    /// True if `version` was destroyed by [`Keyring::retire_below`].
    pub fn is_destroyed(&self, version: u32) -> bool {
        version < self.destroyed_below
    }

    fn seed(&self, version: u32) -> Result<&SeedEntry, KeyError> {
        if self.is_shredded() {
            return Err(KeyError::Shredded);
        }
        match self.seeds.iter().find(|s| s.version == version) {
            Some(s) => Ok(s),
            None if self.is_destroyed(version) => Err(KeyError::VersionRetired { version }),
            None => Err(KeyError::UnknownKeyVersion),
        }
    }

    /// Structural invariants checked by [`Keyring::decode`].
    fn is_well_formed(&self) -> bool {
        if self.seeds.is_empty() {
            return self.current_data == 0 && self.current_index == 0;
        }
        let increasing = self
            .seeds
            .first()
            .is_some_and(|s| s.version >= 1 && s.version >= self.destroyed_below)
            && self.seeds.windows(2).all(|w| w[0].version < w[1].version);
        let has = |v: u32| self.seeds.iter().any(|s| s.version == v);
        increasing && has(self.current_data) && has(self.current_index)
    }
}

/// A credential that opens a key slot, for [`Keyring::rekey`].
#[derive(Clone, Copy, Debug)]
pub enum Credential<'a> {
    /// Opens passphrase slots.
    Passphrase(&'a Passphrase),
    /// Opens key-file slots.
    KeyFile(&'a KeyFileKey),
    /// Opens PKCS#11 slot `slot` with the secret its HSM unsealed.
    Pkcs11 {
        /// The slot.
        slot: u32,
        /// Its secret.
        secret: &'a HsmSecret,
    },
}

/// The vault's keyring: key slots wrapping the root key, and every tenant's
/// seeds wrapped under it, authenticated as a whole by a root-key-derived MAC.
///
/// # Encoding
///
/// ```text
/// keyring = body ‖ mac
/// body    = u8 FORMAT_VERSION (2) ‖ bincode2-standard(vault_id, root_check, vault_seed, slots, tenants)
/// mac     = HMAC-SHA256(HKDF(RK, vault id, lp("phonevault/v1/keyring-mac")), lp(body))
/// root_check = HKDF(RK, vault id, lp("phonevault/v1/root-key-check"))
/// vault_seed = nonce ‖ AES-256-GCM(HKDF(RK, vault id, lp("phonevault/v2/vault-seed-wrap")),
///                                  nonce, seed, aad = lp("phonevault/v2/vault-seed-wrap") ‖ lp(vault id))
/// ```
///
/// `root_check` lets the mutating calls refuse a root key that does not belong
/// to this keyring *before* they wrap anything under it (which would otherwise
/// make the new seed or slot unusable). It is set by the first call that is
/// given a root key, and by [`seal`](Self::seal).
///
/// # Sealing
///
/// Mutating calls do not update the MAC (except [`rekey`](Self::rekey)):
/// call [`seal`](Self::seal) after the last change and before
/// [`encode`](Self::encode), or the next [`unlock`](Self::unlock) fails with
/// [`KeyError::Mac`].
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    /// The vault's id, bound into every slot, seed and derived key.
    pub vault_id: VaultId,
    /// Key slots, each a wrapped copy of the root key.
    pub slots: Vec<KeySlot>,
    /// Tenants by name.
    pub tenants: BTreeMap<String, TenantKeyring>,
    root_check: [u8; KEY_LEN],
    vault_seed: WrappedVaultSeed,
    mac: [u8; MAC_LEN],
}

/// The vault seed wrapped under the root key.
#[derive(Clone, PartialEq, Eq, Encode, Decode)]
struct WrappedVaultSeed {
    nonce: [u8; NONCE_LEN],
    wrapped: [u8; WRAPPED_LEN],
}

fn vault_seed_aad(vault: &VaultId) -> Vec<u8> {
    lp_concat(&[labels::VAULT_SEED_WRAP, &vault.0])
}

fn wrap_vault_seed(
    rk: &RootKey,
    vault: &VaultId,
    seed: &VaultSeed,
) -> Result<WrappedVaultSeed, KeyError> {
    let kek = rk.subkey(vault, labels::VAULT_SEED_WRAP);
    let (nonce, wrapped) = wrap_key(&kek, &vault_seed_aad(vault), seed.as_bytes())?;
    Ok(WrappedVaultSeed { nonce, wrapped })
}

fn unwrap_vault_seed(
    rk: &RootKey,
    vault: &VaultId,
    w: &WrappedVaultSeed,
) -> Result<VaultSeed, KeyError> {
    let kek = rk.subkey(vault, labels::VAULT_SEED_WRAP);
    let mut seed = VaultSeed::from_bytes(&UNSET);
    unwrap_key_into(
        &kek,
        &vault_seed_aad(vault),
        &w.nonce,
        &w.wrapped,
        seed.as_mut_bytes(),
    )?;
    Ok(seed)
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("vault_id", &self.vault_id)
            .field("slots", &self.slots)
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

fn validate_tenant_name(tenant: &str) -> Result<(), KeyError> {
    if tenant.is_empty() || tenant.len() > MAX_TENANT_NAME_LEN {
        Err(KeyError::TenantName)
    } else {
        Ok(())
    }
}

fn seed_aad(vault: &VaultId, tenant: &str, version: u32) -> Vec<u8> {
    lp_concat(&[
        labels::SEED_WRAP,
        &vault.0,
        tenant.as_bytes(),
        &version.to_be_bytes(),
    ])
}

fn new_seed_entry(
    rk: &RootKey,
    vault: &VaultId,
    tenant: &str,
    version: u32,
    now: u64,
) -> Result<SeedEntry, KeyError> {
    let seed = TenantSeed::try_generate()?;
    let kek = rk.subkey(vault, labels::SEED_WRAP);
    let (nonce, wrapped) = wrap_key(&kek, &seed_aad(vault, tenant, version), seed.as_bytes())?;
    Ok(SeedEntry {
        version,
        created_at: now,
        encryptions: 0,
        retired: false,
        nonce,
        wrapped,
    })
}

fn unwrap_seed(
    rk: &RootKey,
    vault: &VaultId,
    tenant: &str,
    entry: &SeedEntry,
) -> Result<TenantSeed, KeyError> {
    let kek = rk.subkey(vault, labels::SEED_WRAP);
    let mut seed = TenantSeed::from_bytes(&UNSET);
    unwrap_key_into(
        &kek,
        &seed_aad(vault, tenant, entry.version),
        &entry.nonce,
        &entry.wrapped,
        seed.as_mut_bytes(),
    )?;
    Ok(seed)
}

type Body = (
    VaultId,
    [u8; KEY_LEN],
    WrappedVaultSeed,
    Vec<KeySlot>,
    BTreeMap<String, TenantKeyring>,
);

impl Keyring {
    /// An empty keyring for a new vault under root key `rk`, with a fresh
    /// random vault seed. Add at least one slot, then [`seal`](Self::seal).
    ///
    /// # Errors
    ///
    /// [`KeyError::Rng`].
    pub fn new(vault_id: VaultId, rk: &RootKey) -> Result<Self, KeyError> {
        let seed = VaultSeed::try_generate()?;
        let vault_seed = wrap_vault_seed(rk, &vault_id, &seed)?;
        let mut ring = Keyring {
            vault_id,
            slots: Vec::new(),
            tenants: BTreeMap::new(),
            root_check: UNSET,
            vault_seed,
            mac: [0u8; MAC_LEN],
        };
        ring.root_check = *ring.root_check_of(rk);
        Ok(ring)
    }

    /// The vault-wide working keys ([`derive_vault_keys`] of the vault seed).
    ///
    /// # Errors
    ///
    /// [`KeyError::WrongRootKey`]; [`KeyError::Decrypt`] (opaque) if the
    /// wrapped vault seed was modified.
    pub fn vault_keys(&self, rk: &RootKey) -> Result<VaultKeys, KeyError> {
        self.check_root(rk)?;
        let seed = unwrap_vault_seed(rk, &self.vault_id, &self.vault_seed)?;
        Ok(derive_vault_keys(&seed, &self.vault_id))
    }

    // ---- encoding -------------------------------------------------------

    /// `FORMAT_VERSION ‖ bincode(vault_id, root_check, vault_seed, slots, tenants)`:
    /// what the MAC covers.
    fn body(&self) -> Vec<u8> {
        let mut out = vec![FORMAT_VERSION];
        let fields = (
            &self.vault_id,
            &self.root_check,
            &self.vault_seed,
            &self.slots,
            &self.tenants,
        );
        match bincode::encode_into_std_write(fields, &mut out, bincode::config::standard()) {
            Ok(_) => out,
            // Writing to a Vec cannot fail, and none of these types has a
            // fallible Encode (no paths, locks or limits).
            Err(_) => unreachable!("encoding a keyring into a Vec cannot fail"),
        }
    }

    /// The keyring's bytes: [`FORMAT_VERSION`], the bincode 2 body, then the
    /// 32-byte MAC. Call [`seal`](Self::seal) first.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.body();
        out.extend_from_slice(&self.mac);
        out
    }

    /// Parses a keyring. Total: never panics, whatever the bytes.
    ///
    /// Only the structure is checked here; authenticity is checked by
    /// [`unlock`](Self::unlock) / [`verify`](Self::verify), which need the root key.
    ///
    /// # Errors
    ///
    /// [`KeyError::OldFormat`] for a keyring of an earlier format version;
    /// [`KeyError::Format`] for input over [`MAX_KEYRING_LEN`], an unknown
    /// format version, malformed, non-canonical or trailing bytes, more than [`MAX_SLOTS`]
    /// slots or duplicate slot ids, an invalid tenant name, or tenant seeds
    /// out of order or not matching the current versions.
    pub fn decode(bytes: &[u8]) -> Result<Keyring, KeyError> {
        if bytes.len() > MAX_KEYRING_LEN || bytes.len() < 1 + MAC_LEN {
            return Err(KeyError::Format);
        }
        let (body, mac) = bytes.split_at(bytes.len() - MAC_LEN);
        let (&version, fields) = body.split_first().ok_or(KeyError::Format)?;
        if (1..FORMAT_VERSION).contains(&version) {
            return Err(KeyError::OldFormat { found: version });
        }
        if version != FORMAT_VERSION {
            return Err(KeyError::Format);
        }
        let config = bincode::config::standard().with_limit::<MAX_KEYRING_LEN>();
        let ((vault_id, root_check, vault_seed, slots, tenants), used): (Body, usize) =
            bincode::decode_from_slice(fields, config).map_err(|_| KeyError::Format)?;
        if used != fields.len() {
            return Err(KeyError::Format);
        }
        if slots.len() > MAX_SLOTS {
            return Err(KeyError::Format);
        }
        for (i, slot) in slots.iter().enumerate() {
            if slots[..i].iter().any(|s| s.id == slot.id) {
                return Err(KeyError::Format);
            }
        }
        for (name, tk) in &tenants {
            if validate_tenant_name(name).is_err() || !tk.is_well_formed() {
                return Err(KeyError::Format);
            }
        }
        let mut mac_arr = [0u8; MAC_LEN];
        mac_arr.copy_from_slice(mac);
        let ring = Keyring {
            vault_id,
            slots,
            tenants,
            root_check,
            vault_seed,
            mac: mac_arr,
        };
        // bincode accepts over-long integer encodings (`fb 05 00` for 5): refuse them,
        // so that one keyring has one encoding and the MAC, computed over the
        // re-encoded body, covers exactly the bytes that were read.
        if ring.body() != body {
            return Err(KeyError::Format);
        }
        Ok(ring)
    }

    // ---- integrity --------------------------------------------------------

    fn root_check_of(&self, rk: &RootKey) -> Zeroizing<[u8; KEY_LEN]> {
        rk.subkey(&self.vault_id, labels::ROOT_KEY_CHECK)
    }

    /// Checks `rk` against the stored key-check value (if one is set) and
    /// returns the value to store.
    fn check_root(&self, rk: &RootKey) -> Result<[u8; KEY_LEN], KeyError> {
        let check = self.root_check_of(rk);
        if self.root_check != UNSET && !bool::from(self.root_check.ct_eq(check.as_slice())) {
            return Err(KeyError::WrongRootKey);
        }
        Ok(*check)
    }

    /// Checks that `rk` is this keyring's root key (by its key-check value),
    /// without unwrapping anything.
    ///
    /// # Errors
    ///
    /// [`KeyError::WrongRootKey`].
    pub fn check_root_key(&self, rk: &RootKey) -> Result<(), KeyError> {
        self.check_root(rk).map(|_| ())
    }

    /// Binds the keyring to `rk` and recomputes its MAC over the body.
    /// Call after every change, before [`encode`](Self::encode).
    ///
    /// # Security
    ///
    /// `seal` trusts `rk`: sealing with another root key makes the keyring
    /// fail [`verify`](Self::verify) under the real one.
    pub fn seal(&mut self, rk: &RootKey) {
        self.root_check = *self.root_check_of(rk);
        let body = self.body();
        self.mac = rk
            .mac_subkey(&self.vault_id, labels::KEYRING_MAC)
            .tag(&[&body]);
    }

    /// Checks the keyring MAC (in constant time).
    ///
    /// # Errors
    ///
    /// [`KeyError::Mac`] if anything in the keyring changed since the last
    /// [`seal`](Self::seal), or `rk` is not its root key.
    pub fn verify(&self, rk: &RootKey) -> Result<(), KeyError> {
        let body = self.body();
        rk.mac_subkey(&self.vault_id, labels::KEYRING_MAC)
            .verify(&[&body], &self.mac)
    }

    // ---- unlocking ----------------------------------------------------------

    /// Opens the vault with a passphrase: tries every passphrase slot, then
    /// verifies the keyring MAC under the root key found.
    ///
    /// Each passphrase slot tried costs one Argon2id run.
    ///
    /// # Errors
    ///
    /// [`KeyError::Unlock`] if no slot opens; [`KeyError::KdfParams`] if every
    /// passphrase slot has parameters outside the caps (an edited keyring);
    /// [`KeyError::Mac`] if a slot opened but the keyring was modified.
    pub fn unlock(&self, pass: &Passphrase) -> Result<RootKey, KeyError> {
        self.unlock_with_slot(pass).map(|(rk, _)| rk)
    }

    /// As [`unlock`](Self::unlock), also returning the id of the slot that
    /// opened (for `passwd`, which changes that slot).
    ///
    /// # Errors
    ///
    /// As [`unlock`](Self::unlock).
    pub fn unlock_with_slot(&self, pass: &Passphrase) -> Result<(RootKey, u32), KeyError> {
        let mut err = KeyError::Unlock;
        let mut tried = false;
        for slot in self
            .slots
            .iter()
            .filter(|s| matches!(s.kind, SlotKind::Passphrase { .. }))
        {
            match slot.unlock_passphrase(&self.vault_id, pass) {
                Ok(rk) => {
                    self.verify(&rk)?;
                    return Ok((rk, slot.id));
                }
                // Report out-of-range parameters only if no slot could even be tried.
                Err(KeyError::KdfParams) if !tried => err = KeyError::KdfParams,
                Err(KeyError::KdfParams) => {}
                Err(_) => {
                    tried = true;
                    err = KeyError::Unlock;
                }
            }
        }
        Err(err)
    }

    /// Opens the vault with a key file: tries every key-file slot, then
    /// verifies the keyring MAC.
    ///
    /// # Errors
    ///
    /// [`KeyError::Unlock`] if no slot opens; [`KeyError::Mac`] if a slot
    /// opened but the keyring was modified.
    pub fn unlock_key_file(&self, kf: &KeyFileKey) -> Result<RootKey, KeyError> {
        self.unlock_key_file_with_slot(kf).map(|(rk, _)| rk)
    }

    /// As [`unlock_key_file`](Self::unlock_key_file), also returning the id of
    /// the slot that opened.
    ///
    /// # Errors
    ///
    /// As [`unlock_key_file`](Self::unlock_key_file).
    pub fn unlock_key_file_with_slot(&self, kf: &KeyFileKey) -> Result<(RootKey, u32), KeyError> {
        for slot in self.slots.iter().filter(|s| s.kind == SlotKind::KeyFile) {
            if let Ok(rk) = slot.unlock_key_file(&self.vault_id, kf) {
                self.verify(&rk)?;
                return Ok((rk, slot.id));
            }
        }
        Err(KeyError::Unlock)
    }

    /// Opens the vault through PKCS#11 slot `id` with the secret its HSM unsealed, then
    /// verifies the keyring MAC.
    ///
    /// # Errors
    ///
    /// [`KeyError::UnknownSlot`]; [`KeyError::Unlock`] if the slot is not a PKCS#11 slot or
    /// the secret does not open it; [`KeyError::Mac`] if the keyring was modified.
    pub fn unlock_pkcs11(&self, id: u32, secret: &HsmSecret) -> Result<RootKey, KeyError> {
        let slot = self
            .slots
            .iter()
            .find(|s| s.id == id)
            .ok_or(KeyError::UnknownSlot)?;
        let rk = slot.unlock_pkcs11(&self.vault_id, secret)?;
        self.verify(&rk)?;
        Ok(rk)
    }

    /// The PKCS#11 slots, with what their HSM needs to unseal their secret.
    pub fn pkcs11_slots(&self) -> impl Iterator<Item = (u32, &Pkcs11Slot)> {
        self.slots.iter().filter_map(|s| match &s.kind {
            SlotKind::Pkcs11(p) => Some((s.id, p)),
            _ => None,
        })
    }

    // ---- slots ----------------------------------------------------------------

    /// The id the next slot added will get (a PKCS#11 secret is sealed for it before the
    /// slot exists).
    ///
    /// # Errors
    ///
    /// [`KeyError::TooManySlots`], [`KeyError::Exhausted`].
    pub fn next_slot_id(&self) -> Result<u32, KeyError> {
        if self.slots.len() >= MAX_SLOTS {
            return Err(KeyError::TooManySlots);
        }
        match self.slots.iter().map(|s| s.id).max() {
            None => Ok(0),
            Some(max) => max.checked_add(1).ok_or(KeyError::Exhausted),
        }
    }

    /// Adds a passphrase slot wrapping `rk`; returns its id.
    ///
    /// # Errors
    ///
    /// [`KeyError::WrongRootKey`], [`KeyError::TooManySlots`],
    /// [`KeyError::EmptyPassphrase`], [`KeyError::KdfParams`], [`KeyError::Rng`].
    pub fn add_passphrase_slot(
        &mut self,
        rk: &RootKey,
        pass: &Passphrase,
        params: KdfParams,
    ) -> Result<u32, KeyError> {
        let check = self.check_root(rk)?;
        let id = self.next_slot_id()?;
        let slot = KeySlot::new_passphrase(id, &self.vault_id, rk, pass, params)?;
        self.slots.push(slot);
        self.root_check = check;
        Ok(id)
    }

    /// Adds PKCS#11 slot `id` (from [`next_slot_id`](Self::next_slot_id)), whose secret
    /// `binding.sealed` the HSM sealed under [`pkcs11_seal_aad`](crate::pkcs11_seal_aad).
    ///
    /// # Errors
    ///
    /// [`KeyError::WrongRootKey`]; [`KeyError::UnknownSlot`] if `id` is not the next id;
    /// [`KeyError::Unlock`] for a binding outside the caps; [`KeyError::Rng`].
    pub fn add_pkcs11_slot(
        &mut self,
        rk: &RootKey,
        id: u32,
        binding: Pkcs11Slot,
        secret: &HsmSecret,
    ) -> Result<u32, KeyError> {
        let check = self.check_root(rk)?;
        if id != self.next_slot_id()? {
            return Err(KeyError::UnknownSlot);
        }
        let slot = KeySlot::new_pkcs11(id, &self.vault_id, rk, binding, secret)?;
        self.slots.push(slot);
        self.root_check = check;
        Ok(id)
    }

    /// Adds a key-file slot wrapping `rk`; returns its id.
    ///
    /// # Errors
    ///
    /// [`KeyError::WrongRootKey`], [`KeyError::TooManySlots`], [`KeyError::Rng`].
    pub fn add_key_file_slot(&mut self, rk: &RootKey, kf: &KeyFileKey) -> Result<u32, KeyError> {
        let check = self.check_root(rk)?;
        let id = self.next_slot_id()?;
        let slot = KeySlot::new_key_file(id, &self.vault_id, rk, kf)?;
        self.slots.push(slot);
        self.root_check = check;
        Ok(id)
    }

    /// Gives passphrase slot `id` a new passphrase: the slot is made again,
    /// same id, wrapping the same root key under the new passphrase with a
    /// fresh salt; `params` (when given) replace its Argon2id parameters.
    /// Nothing else changes (no data, no other slot).
    ///
    /// # Errors
    ///
    /// [`KeyError::WrongRootKey`], [`KeyError::UnknownSlot`],
    /// [`KeyError::NotPassphraseSlot`], [`KeyError::EmptyPassphrase`],
    /// [`KeyError::KdfParams`], [`KeyError::Rng`]. On error the keyring is
    /// unchanged.
    pub fn change_passphrase(
        &mut self,
        rk: &RootKey,
        id: u32,
        new: &Passphrase,
        params: Option<KdfParams>,
    ) -> Result<(), KeyError> {
        self.check_root(rk)?;
        let pos = self
            .slots
            .iter()
            .position(|s| s.id == id)
            .ok_or(KeyError::UnknownSlot)?;
        let SlotKind::Passphrase { params: old, .. } = self.slots[pos].kind else {
            return Err(KeyError::NotPassphraseSlot);
        };
        let slot = KeySlot::new_passphrase(id, &self.vault_id, rk, new, params.unwrap_or(old))?;
        self.slots[pos] = slot;
        Ok(())
    }

    /// Removes a key slot.
    ///
    /// # Errors
    ///
    /// [`KeyError::UnknownSlot`]; [`KeyError::LastSlot`] rather than leave a
    /// keyring nothing can open.
    pub fn remove_slot(&mut self, id: u32) -> Result<(), KeyError> {
        let pos = self
            .slots
            .iter()
            .position(|s| s.id == id)
            .ok_or(KeyError::UnknownSlot)?;
        if self.slots.len() == 1 {
            return Err(KeyError::LastSlot);
        }
        self.slots.remove(pos);
        Ok(())
    }

    // ---- tenants ----------------------------------------------------------------

    fn tenant_mut(&mut self, tenant: &str) -> Result<&mut TenantKeyring, KeyError> {
        self.tenants.get_mut(tenant).ok_or(KeyError::UnknownTenant)
    }

    /// Creates a tenant with a fresh random seed, version 1, current for both
    /// data and index.
    ///
    /// # Errors
    ///
    /// [`KeyError::TenantName`], [`KeyError::TenantExists`] (also for a
    /// shredded tenant), [`KeyError::WrongRootKey`], [`KeyError::Rng`].
    pub fn add_tenant(&mut self, rk: &RootKey, tenant: &str, now: u64) -> Result<(), KeyError> {
        validate_tenant_name(tenant)?;
        if self.tenants.contains_key(tenant) {
            return Err(KeyError::TenantExists);
        }
        let check = self.check_root(rk)?;
        let entry = new_seed_entry(rk, &self.vault_id, tenant, 1, now)?;
        self.tenants.insert(
            tenant.to_owned(),
            TenantKeyring {
                current_data: 1,
                current_index: 1,
                seeds: vec![entry],
                destroyed_below: 0,
            },
        );
        self.root_check = check;
        Ok(())
    }

    /// Makes a new key version (a new random seed, version = highest + 1) and
    /// makes it current for `purpose`; returns the new version.
    ///
    /// Earlier versions stay, so old ciphertexts and index entries still work;
    /// a version neither current for data nor for index is marked
    /// [`retired`](SeedEntry::retired).
    ///
    /// # Errors
    ///
    /// [`KeyError::UnknownTenant`], [`KeyError::Shredded`],
    /// [`KeyError::WrongRootKey`], [`KeyError::Exhausted`], [`KeyError::Rng`].
    pub fn rotate(
        &mut self,
        rk: &RootKey,
        tenant: &str,
        purpose: KeyPurpose,
        now: u64,
    ) -> Result<u32, KeyError> {
        let check = self.check_root(rk)?;
        let vault = self.vault_id;
        let tk = self.tenant_mut(tenant)?;
        let max = tk
            .seeds
            .last()
            .map(|s| s.version)
            .ok_or(KeyError::Shredded)?;
        let version = max.checked_add(1).ok_or(KeyError::Exhausted)?;
        let entry = new_seed_entry(rk, &vault, tenant, version, now)?;
        tk.seeds.push(entry);
        match purpose {
            KeyPurpose::Data => tk.current_data = version,
            KeyPurpose::Index => tk.current_index = version,
        }
        let (cd, ci) = (tk.current_data, tk.current_index);
        for s in &mut tk.seeds {
            s.retired = s.version != cd && s.version != ci;
        }
        self.root_check = check;
        Ok(version)
    }

    /// Destroys every key version of `tenant` below `below` (their wrapped
    /// seeds are zeroed and dropped): whatever was encrypted or indexed under
    /// them can never be opened again. Returns the versions destroyed (empty
    /// if none was left). Later calls for such a version fail with
    /// [`KeyError::VersionRetired`].
    ///
    /// Re-encrypt the data first (`key rewrap`); the caller should count what
    /// is still under those versions before calling this.
    ///
    /// # Security
    ///
    /// As for [`shred_tenant`](Self::shred_tenant): older copies of the keyring
    /// file still hold the destroyed seeds.
    ///
    /// # Errors
    ///
    /// [`KeyError::UnknownTenant`], [`KeyError::Shredded`];
    /// [`KeyError::RetireCurrent`] if `below` is above a current version (the
    /// current data or index version can never be retired). On error nothing
    /// changes.
    pub fn retire_below(&mut self, tenant: &str, below: u32) -> Result<Vec<u32>, KeyError> {
        let tk = self.tenant_mut(tenant)?;
        if tk.is_shredded() {
            return Err(KeyError::Shredded);
        }
        let lowest_current = tk.current_data.min(tk.current_index);
        if below > lowest_current {
            return Err(KeyError::RetireCurrent {
                current: lowest_current,
            });
        }
        let mut destroyed = Vec::new();
        tk.seeds.retain_mut(|s| {
            if s.version < below {
                s.nonce.zeroize();
                s.wrapped.zeroize();
                destroyed.push(s.version);
                false
            } else {
                true
            }
        });
        tk.destroyed_below = tk.destroyed_below.max(below);
        Ok(destroyed)
    }

    /// Unwraps a tenant's seed of `version` and derives its keys
    /// ([`derive_tenant_keys`]).
    ///
    /// # Errors
    ///
    /// [`KeyError::UnknownTenant`], [`KeyError::Shredded`],
    /// [`KeyError::VersionRetired`], [`KeyError::UnknownKeyVersion`],
    /// [`KeyError::WrongRootKey`]; [`KeyError::Decrypt`] (opaque) if the
    /// wrapped seed was modified.
    pub fn tenant_keys(
        &self,
        rk: &RootKey,
        tenant: &str,
        version: u32,
    ) -> Result<TenantKeys, KeyError> {
        let tk = self.tenants.get(tenant).ok_or(KeyError::UnknownTenant)?;
        let entry = tk.seed(version)?;
        self.check_root(rk)?;
        let seed = unwrap_seed(rk, &self.vault_id, tenant, entry)?;
        Ok(derive_tenant_keys(&seed, &self.vault_id, tenant, version))
    }

    /// The tenant's keys of its current version for `purpose`.
    ///
    /// # Errors
    ///
    /// As [`tenant_keys`](Self::tenant_keys).
    pub fn current_keys(
        &self,
        rk: &RootKey,
        tenant: &str,
        purpose: KeyPurpose,
    ) -> Result<TenantKeys, KeyError> {
        let tk = self.tenants.get(tenant).ok_or(KeyError::UnknownTenant)?;
        if tk.is_shredded() {
            return Err(KeyError::Shredded);
        }
        self.tenant_keys(rk, tenant, tk.current(purpose))
    }

    /// Adds `n` to the encryption counter of a key version. Returns true when
    /// the counter is at or past [`ROTATE_AFTER_ENCRYPTIONS`]: the caller
    /// should then [`rotate`](Self::rotate) the data key. It keeps returning
    /// true for that version, so a missed signal is repeated.
    ///
    /// # Errors
    ///
    /// [`KeyError::UnknownTenant`], [`KeyError::Shredded`], [`KeyError::UnknownKeyVersion`].
    pub fn note_encryptions(
        &mut self,
        tenant: &str,
        version: u32,
        n: u64,
    ) -> Result<bool, KeyError> {
        let tk = self.tenant_mut(tenant)?;
        if tk.is_shredded() {
            return Err(KeyError::Shredded);
        }
        let entry = tk
            .seeds
            .iter_mut()
            .find(|s| s.version == version)
            .ok_or(KeyError::UnknownKeyVersion)?;
        entry.encryptions = entry.encryptions.saturating_add(n);
        Ok(entry.encryptions >= ROTATE_AFTER_ENCRYPTIONS)
    }

    /// Takes back `n` encryptions counted by [`note_encryptions`](Self::note_encryptions)
    /// and never made (the unused part of a reservation, given back when a vault
    /// closes). The counter never goes below zero. Returns whether the version was
    /// found (a shredded tenant or a destroyed version has nothing to take back).
    pub fn release_encryptions(&mut self, tenant: &str, version: u32, n: u64) -> bool {
        let Some(entry) = self
            .tenants
            .get_mut(tenant)
            .and_then(|tk| tk.seeds.iter_mut().find(|s| s.version == version))
        else {
            return false;
        };
        entry.encryptions = entry.encryptions.saturating_sub(n);
        true
    }

    /// Crypto-shreds a tenant: destroys every wrapped seed, so none of its
    /// ciphertexts or index entries can be opened again. The tenant's entry
    /// stays (empty, versions 0) so its name is not reused.
    ///
    /// # Security
    ///
    /// Shredding is complete only once every older copy of the keyring file
    /// (backups, exports, the previous file on disk) is gone as well: any of
    /// them, with a slot credential, still opens the seeds.
    ///
    /// # Errors
    ///
    /// [`KeyError::UnknownTenant`]. Shredding twice is not an error.
    pub fn shred_tenant(&mut self, tenant: &str) -> Result<(), KeyError> {
        let tk = self.tenant_mut(tenant)?;
        for s in &mut tk.seeds {
            s.nonce.zeroize();
            s.wrapped.zeroize();
        }
        tk.seeds.clear();
        tk.current_data = 0;
        tk.current_index = 0;
        Ok(())
    }

    // ---- root key rotation --------------------------------------------------------

    /// Replaces the root key: rewraps the vault seed and every tenant seed
    /// under `new`, re-creates every key slot to wrap `new`, and
    /// [`seal`](Self::seal)s under `new`.
    ///
    /// A slot can only be rewrapped by opening it, so `credentials` must hold,
    /// for **every** slot, a passphrase or key file that opens it (one
    /// credential may open several slots). Slots keep their id and kind;
    /// passphrase slots keep their KDF parameters and get a fresh salt. To drop
    /// a slot whose credential is lost or compromised,
    /// [`remove_slot`](Self::remove_slot) it first. No data is re-encrypted:
    /// the vault seed and tenant seeds, and so every derived key (including the
    /// row-MAC key), are unchanged.
    ///
    /// All or nothing: on error the keyring is unchanged.
    ///
    /// Costs one Argon2id run per (passphrase slot, passphrase) pair tried.
    ///
    /// # Errors
    ///
    /// [`KeyError::WrongRootKey`] if `old` is not this keyring's root key;
    /// [`KeyError::RekeyMissingCredential`] naming the first slot nothing
    /// opened; [`KeyError::Decrypt`] if a wrapped seed was modified;
    /// [`KeyError::KdfParams`] if a slot's parameters are out of range;
    /// [`KeyError::Rng`].
    pub fn rekey(
        &mut self,
        old: &RootKey,
        new: &RootKey,
        credentials: &[Credential<'_>],
    ) -> Result<(), KeyError> {
        self.check_root(old)?;
        let vault = self.vault_id;

        let seed = unwrap_vault_seed(old, &vault, &self.vault_seed)?;
        let vault_seed = wrap_vault_seed(new, &vault, &seed)?;
        drop(seed);

        let mut tenants = self.tenants.clone();
        for (name, tk) in &mut tenants {
            for entry in &mut tk.seeds {
                let seed = unwrap_seed(old, &vault, name, entry)?;
                let kek = new.subkey(&vault, labels::SEED_WRAP);
                let (nonce, wrapped) = wrap_key(
                    &kek,
                    &seed_aad(&vault, name, entry.version),
                    seed.as_bytes(),
                )?;
                entry.nonce = nonce;
                entry.wrapped = wrapped;
            }
        }

        let mut slots = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let mut rewrapped = None;
            for cred in credentials {
                let opened = match (&slot.kind, cred) {
                    (SlotKind::Passphrase { .. }, Credential::Passphrase(p)) => {
                        slot.unlock_passphrase(&vault, p)
                    }
                    (SlotKind::KeyFile, Credential::KeyFile(kf)) => {
                        slot.unlock_key_file(&vault, kf)
                    }
                    (SlotKind::Pkcs11(_), Credential::Pkcs11 { slot: id, secret })
                        if *id == slot.id =>
                    {
                        slot.unlock_pkcs11(&vault, secret)
                    }
                    _ => continue,
                };
                match opened {
                    Ok(rk) if rk == *old => {}
                    Ok(_) | Err(KeyError::Unlock) => continue,
                    Err(e) => return Err(e),
                }
                rewrapped = Some(match (&slot.kind, cred) {
                    (SlotKind::Passphrase { params, .. }, Credential::Passphrase(p)) => {
                        KeySlot::new_passphrase(slot.id, &vault, new, p, *params)?
                    }
                    (_, Credential::KeyFile(kf)) => {
                        KeySlot::new_key_file(slot.id, &vault, new, kf)?
                    }
                    (SlotKind::Pkcs11(binding), Credential::Pkcs11 { secret, .. }) => {
                        KeySlot::new_pkcs11(slot.id, &vault, new, binding.clone(), secret)?
                    }
                    _ => continue,
                });
                break;
            }
            slots.push(rewrapped.ok_or(KeyError::RekeyMissingCredential { slot: slot.id })?);
        }

        self.tenants = tenants;
        self.slots = slots;
        self.vault_seed = vault_seed;
        self.seal(new);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one_tenant() -> (Keyring, RootKey) {
        let rk = RootKey::generate();
        let mut kr = Keyring::new(VaultId([9; 16]), &rk).unwrap();
        kr.add_key_file_slot(&rk, &KeyFileKey::generate()).unwrap();
        kr.add_tenant(&rk, "acme", 0).unwrap();
        (kr, rk)
    }

    /// Found by the `keyring` fuzz target: bincode reads over-long integers
    /// (`fb 01 00` for 1), so one keyring had many encodings, all passing the MAC.
    #[test]
    fn a_non_canonical_encoding_is_refused() {
        let (mut kr, rk) = one_tenant();
        kr.seal(&rk);
        let good = kr.encode();
        // version (1) ‖ vault id (16) ‖ root check (32) ‖ wrapped vault seed (nonce ‖
        // ciphertext) ‖ slot count: one byte, 1.
        let at = 1 + 16 + KEY_LEN + NONCE_LEN + WRAPPED_LEN;
        assert_eq!(good[at], 1);
        let mut long = good[..at].to_vec();
        long.extend_from_slice(&[0xfb, 0x01, 0x00]);
        long.extend_from_slice(&good[at + 1..]);
        assert!(matches!(Keyring::decode(&long), Err(KeyError::Format)));
        let back = Keyring::decode(&good).unwrap();
        assert_eq!(back.encode(), good);
        back.verify(&rk).unwrap();
    }

    #[test]
    fn every_flipped_byte_of_a_wrapped_seed_fails_opaquely() {
        let (kr, rk) = one_tenant();
        let good = kr.tenant_keys(&rk, "acme", 1).unwrap();
        let probe = good.index.digest(&[b"x"]);
        for i in 0..NONCE_LEN + WRAPPED_LEN {
            let mut bad = kr.clone();
            let entry = &mut bad.tenants.get_mut("acme").unwrap().seeds[0];
            if i < NONCE_LEN {
                entry.nonce[i] ^= 0x01;
            } else {
                entry.wrapped[i - NONCE_LEN] ^= 0x01;
            }
            assert!(
                matches!(bad.tenant_keys(&rk, "acme", 1), Err(KeyError::Decrypt)),
                "byte {i}"
            );
        }
        assert_eq!(
            kr.tenant_keys(&rk, "acme", 1)
                .unwrap()
                .index
                .digest(&[b"x"]),
            probe
        );
    }

    #[test]
    fn a_seed_moved_to_another_tenant_or_version_fails() {
        let (mut kr, rk) = one_tenant();
        kr.add_tenant(&rk, "beta", 0).unwrap();
        kr.rotate(&rk, "beta", KeyPurpose::Data, 1).unwrap();
        let acme_seed = kr.tenants["acme"].seeds[0].clone();
        let mut moved = kr.clone();
        moved.tenants.get_mut("beta").unwrap().seeds[0] = acme_seed.clone();
        assert!(matches!(
            moved.tenant_keys(&rk, "beta", 1),
            Err(KeyError::Decrypt)
        ));
        let mut reversioned = kr.clone();
        let mut s = acme_seed;
        s.version = 2;
        reversioned.tenants.get_mut("beta").unwrap().seeds[1] = s;
        assert!(matches!(
            reversioned.tenant_keys(&rk, "beta", 2),
            Err(KeyError::Decrypt)
        ));
        let mut other_vault = kr.clone();
        other_vault.vault_id.0[0] ^= 1;
        other_vault.root_check = UNSET;
        assert!(matches!(
            other_vault.tenant_keys(&rk, "acme", 1),
            Err(KeyError::Decrypt)
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn seed_wrap_round_trip(
            rk_bytes in any::<[u8; 32]>(),
            vault in any::<[u8; 16]>(),
            tenant in "[a-z0-9-]{1,40}",
            version in 1u32..,
            now in any::<u64>(),
        ) {
            let rk = RootKey::from_bytes(&rk_bytes);
            let vault = VaultId(vault);
            let entry = new_seed_entry(&rk, &vault, &tenant, version, now).unwrap();
            prop_assert_eq!(entry.version, version);
            prop_assert_eq!(entry.created_at, now);
            let a = unwrap_seed(&rk, &vault, &tenant, &entry).unwrap();
            let b = unwrap_seed(&rk, &vault, &tenant, &entry).unwrap();
            prop_assert!(a == b);
            let other = RootKey::from_bytes(&[!rk_bytes[0]; 32]);
            prop_assert!(matches!(unwrap_seed(&other, &vault, &tenant, &entry), Err(KeyError::Decrypt)));
        }
    }
}
