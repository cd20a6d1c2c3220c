//! Key management for phonevault: the root key, LUKS-style key slots, tenant
//! key derivation, field encryption keys, the keyring file format and the
//! forward-evolving audit key.
//!
//! This crate does no I/O: no files, no environment, no clock (times are
//! passed in as unix seconds). The caller moves bytes in and out.
//!
//! # Which API for which task
//!
//! | Task | API |
//! | --- | --- |
//! | `init` a vault | [`VaultId::generate`], [`RootKey::generate`], [`Keyring::new`] (makes the vault seed), [`Keyring::add_passphrase_slot`] / [`Keyring::add_key_file_slot`], [`Keyring::seal`], [`Keyring::encode`]; [`AuditKey::generate`] |
//! | open a vault | [`Keyring::decode`], then [`Keyring::unlock`] (passphrase) or [`Keyring::unlock_key_file`]: both verify the keyring MAC |
//! | change / add / remove a passphrase or key file | [`Keyring::unlock_with_slot`] + [`Keyring::change_passphrase`], [`Keyring::add_passphrase_slot`], [`Keyring::add_key_file_slot`], [`Keyring::remove_slot`] (no data is touched) |
//! | rotate the root key | [`Keyring::rekey`] (rewraps the vault seed, tenant seeds and slots, touches no data) |
//! | create a tenant, rotate its keys | [`Keyring::add_tenant`], [`Keyring::rotate`] with a [`KeyPurpose`] |
//! | destroy old key versions of a tenant | [`Keyring::retire_below`] (never a current version) |
//! | encrypt / decrypt a record body | [`Keyring::tenant_keys`] or [`Keyring::current_keys`] → [`TenantKeys::data`]: [`DataKey::seal`] / [`DataKey::open`]; count with [`Keyring::note_encryptions`] |
//! | blind index of a number | [`TenantKeys::index`]: [`IndexKey::digest`]`(&[b"e164:", e164])` |
//! | MAC a record | [`TenantKeys::mac`]: [`MacKey::tag`] / [`MacKey::verify`] |
//! | MAC a non-record row (tenant settings, tokens) | [`Keyring::vault_keys`] → [`VaultKeys::row_mac`] |
//! | seal a vault state row (the audit log's current key) | [`Keyring::vault_keys`] → [`VaultKeys::state`]: [`DataKey::seal`] / [`DataKey::open`] |
//! | MAC a data backup file | [`Keyring::vault_keys`] → [`VaultKeys::backup`]: [`MacKey::stream`] |
//! | crypto-shred a tenant | [`Keyring::shred_tenant`] |
//! | MAC the audit chain | [`AuditKey::tag`], [`AuditKey::evolve`] |
//!
//! After any change to a [`Keyring`], call [`Keyring::seal`] before
//! [`Keyring::encode`].
//!
//! # Example
//!
//! ```
//! use phonevault_keys::{KdfParams, KeyPurpose, Keyring, Passphrase, RootKey, VaultId};
//!
//! # fn main() -> Result<(), phonevault_keys::KeyError> {
//! // init
//! let rk = RootKey::generate();
//! let mut keyring = Keyring::new(VaultId::generate(), &rk)?;
//! let pass = Passphrase::new("correct horse battery staple".to_owned());
//! // Real vaults use KdfParams::DEFAULT; the example stays fast.
//! keyring.add_passphrase_slot(&rk, &pass, KdfParams::cheap_for_tests())?;
//! keyring.add_tenant(&rk, "acme", 1_700_000_000)?;
//! keyring.seal(&rk);
//! let file = keyring.encode();
//!
//! // later: open and encrypt a record body
//! let keyring = Keyring::decode(&file)?;
//! let rk = keyring.unlock(&pass)?;
//! let keys = keyring.current_keys(&rk, "acme", KeyPurpose::Data)?;
//! let sealed = keys.data.seal(b"record aad", b"+447700900123 ...")?;
//! assert_eq!(keys.data.open(b"record aad", &sealed)?.as_slice(), b"+447700900123 ...");
//! let index = keys.index.digest(&[b"e164:", b"+447700900123"]);
//! # let _ = index;
//! # Ok(())
//! # }
//! ```
//!
//! # Constructions
//!
//! ```text
//! lp(x) = u64 LE len(x) ‖ x
//! KEK_pass   = HKDF-SHA256(Argon2id(pass, salt, m, t, p), vault id, lp("phonevault/v1/passphrase-kek"))
//! KEK_file   = HKDF-SHA256(key file, vault id, lp("phonevault/v1/key-file-kek"))
//! slot       = AES-256-GCM(KEK, nonce, RK, aad = lp(slot-wrap label) ‖ lp(vault) ‖ lp(slot id) ‖ lp(kind) [‖ lp(m) ‖ lp(t) ‖ lp(p) ‖ lp(salt)])
//! seed wrap  = AES-256-GCM(HKDF(RK, vault, lp("phonevault/v1/seed-wrap")), nonce, seed_v,
//!                          aad = lp(seed-wrap label) ‖ lp(vault) ‖ lp(tenant) ‖ lp(u32 BE v))
//! tenant key = HKDF-SHA256(seed_v, vault, lp(label) ‖ lp(tenant) ‖ lp(u32 BE v))
//! vault seed wrap = AES-256-GCM(HKDF(RK, vault, lp("phonevault/v2/vault-seed-wrap")), nonce, VS,
//!                          aad = lp("phonevault/v2/vault-seed-wrap") ‖ lp(vault))
//! row MAC key   = HKDF-SHA256(VS, vault, lp("phonevault/v2/row-mac-key"))
//! state key     = HKDF-SHA256(VS, vault, lp("phonevault/v2/vault-state-key"))   (AES-256-GCM)
//! backup MAC key = HKDF-SHA256(VS, vault, lp("phonevault/v2/backup-mac-key"))
//! keyring MAC = HMAC-SHA256(HKDF(RK, vault, lp("phonevault/v1/keyring-mac")), lp(body))
//! K(i+1)     = SHA-256("phonevault/v1/audit-key-evolve" ‖ K(i))
//! ```
//!
//! `VS` is the vault seed: 32 random bytes made at `init`, kept only wrapped
//! under RK, so that `rekey` (a new RK) rewraps it and every vault-wide key
//! stays the same. The labels are in [`labels`]; known-answer tests freeze
//! every derivation.
//!
//! # Security
//!
//! Every secret has its own type, is zeroized on drop, cannot be cloned, and
//! its `Debug` prints only the type name. Key bytes are reachable only through
//! `expose_secret` where a caller must persist them ([`KeyFileKey`],
//! [`AuditKey`], [`Passphrase`]). Secret comparisons are constant-time.
//! Pre-keyed HMAC states ([`IndexKey`], [`MacKey`], [`MacStream`]) and every
//! per-message clone of them zeroize on drop (`hmac` 0.13 / `sha2` 0.11 with
//! their `zeroize` feature), and so do the HMAC states inside HKDF.

mod audit;
mod error;
pub mod fuzzing;
mod kdf;
mod keyring;
pub mod labels;
mod secrets;
mod slot;
mod symmetric;
mod tenant;
mod util;
mod vault_keys;

pub use audit::{AuditKey, AuditReadKey};
pub use error::KeyError;
pub use kdf::KdfParams;
pub use keyring::{
    Credential, KeyPurpose, Keyring, SeedEntry, TenantKeyring, FORMAT_VERSION, MAX_KEYRING_LEN,
    MAX_SLOTS, MAX_TENANT_NAME_LEN, ROTATE_AFTER_ENCRYPTIONS,
};
pub use secrets::{HsmSecret, KeyFileKey, Passphrase, RootKey, TenantSeed, VaultId, VaultSeed};
pub use slot::{
    pkcs11_seal_aad, KeySlot, Pkcs11Mechanism, Pkcs11Slot, SlotKind, MAX_PKCS11_LABEL,
    MAX_PKCS11_SEALED,
};
pub use symmetric::{DataKey, IndexKey, MacKey, MacStream, NONCE_LEN, TAG_LEN};
pub use tenant::{derive_tenant_keys, TenantKeys};
pub use vault_keys::{derive_vault_keys, VaultKeys};

/// Length of every symmetric key in the crate: 32 bytes.
pub const KEY_LEN: usize = 32;
