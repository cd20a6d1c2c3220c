//! The crate's one error type.

use crate::kdf::KdfParams;

/// Everything that can go wrong in key management.
///
/// Messages say what happened and what to do next; none ever contains key
/// material, passphrases or plaintext. Failures to unwrap or decrypt are
/// deliberately opaque ([`KeyError::Unlock`], [`KeyError::Decrypt`]): they do
/// not say whether the key was wrong or the bytes were modified.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No key slot opened with the given passphrase or key file. Either the
    /// credential is wrong, or the slot was modified (including its KDF
    /// parameters or salt, which are authenticated).
    #[error(
        "could not unlock the vault: the passphrase or key file is wrong, or the key slot was \
         modified; check the credential and try again"
    )]
    Unlock,
    /// An AES-256-GCM ciphertext (a record body or a wrapped tenant seed) did
    /// not authenticate: wrong key, modified bytes, or a ciphertext moved to
    /// another place (its AAD differs).
    #[error(
        "decryption failed: the data was modified, moved from elsewhere, or sealed under another \
         key; restore it from a trusted backup"
    )]
    Decrypt,
    /// A MAC (keyring MAC, row MAC, record MAC) did not verify.
    #[error(
        "integrity check failed: the keyring or row was modified, or was authenticated under \
         another root key; restore it from a trusted backup"
    )]
    Mac,
    /// The bytes are not a keyring this version understands: truncated,
    /// corrupted, too large, structurally invalid, or of an unknown format
    /// version.
    #[error(
        "the keyring file is corrupted, truncated or of an unsupported format version; restore it \
         from a backup, or upgrade phonevault if it was written by a newer version"
    )]
    Format,
    /// The keyring was written by an earlier format version that this build no
    /// longer reads (only development builds wrote it).
    #[error(
        "the keyring has format version {found}, written by an earlier development build; this \
         phonevault reads only version 2: create a new vault with `phonevault init` and import \
         the data again"
    )]
    OldFormat {
        /// The format version found in the file.
        found: u8,
    },
    /// `retire_below` would destroy a current key version.
    #[error(
        "refusing to retire a current key version: the oldest current version is {current}; \
         retire only versions below it (rotate first to make a newer one current)"
    )]
    RetireCurrent {
        /// The lowest of the tenant's current data and index versions.
        current: u32,
    },
    /// The key version was destroyed by `key retire`; what was encrypted under
    /// it can no longer be decrypted, by design.
    #[error(
        "key version {version} was retired (destroyed) with `phonevault key retire`: records \
         still under it cannot be decrypted; to read them, import a keyring export made before \
         the retirement (`phonevault keyring import FILE --force`)"
    )]
    VersionRetired {
        /// The destroyed version.
        version: u32,
    },
    /// `change_passphrase` was asked to change a key-file slot.
    #[error("that key slot opens with a key file, not a passphrase; add a passphrase slot with `phonevault keyslot add` instead")]
    NotPassphraseSlot,
    /// Argon2id parameters are outside the accepted range.
    #[error(
        "passphrase KDF parameters are out of range (memory must be 8*p..={max_m} KiB, time \
         1..={max_t}, lanes 1..={max_p}); choose parameters within these limits, or restore the \
         keyring if it was edited",
        max_m = KdfParams::MAX_M_KIB,
        max_t = KdfParams::MAX_T,
        max_p = KdfParams::MAX_P
    )]
    KdfParams,
    /// A key file did not hold exactly 32 bytes.
    #[error("a key file must hold exactly 32 bytes; check that the right file was given and is not truncated")]
    KeyFileLength,
    /// A passphrase slot was requested with an empty passphrase.
    #[error("the passphrase is empty; choose a non-empty passphrase")]
    EmptyPassphrase,
    /// `add_tenant` was called for a tenant that already has keys (or was
    /// crypto-shredded: a shredded tenant's name is not reused).
    #[error("the tenant already exists (a shredded tenant's name cannot be reused); choose another name")]
    TenantExists,
    /// The tenant has no entry in the keyring.
    #[error("unknown tenant; list the tenants and check the name")]
    UnknownTenant,
    /// The tenant exists but has no seed of the requested version.
    #[error("the tenant has no key of this version; the data may predate a restore or the keyring may be stale")]
    UnknownKeyVersion,
    /// The tenant's seeds were destroyed by `shred_tenant`; its data can no
    /// longer be decrypted, by design.
    #[error(
        "the tenant was crypto-shredded: its keys are destroyed and its data cannot be decrypted"
    )]
    Shredded,
    /// The tenant name is empty or longer than
    /// [`MAX_TENANT_NAME_LEN`](crate::MAX_TENANT_NAME_LEN) bytes.
    #[error("invalid tenant name: it must be 1 to 256 bytes long")]
    TenantName,
    /// `remove_slot` would remove the last key slot, locking the vault for good.
    #[error("refusing to remove the last key slot: add another slot first")]
    LastSlot,
    /// No key slot has the given id.
    #[error("no key slot has this id; list the slots and check the id")]
    UnknownSlot,
    /// The keyring already holds [`MAX_SLOTS`](crate::MAX_SLOTS) key slots.
    #[error("the keyring holds the maximum number of key slots (16); remove one first")]
    TooManySlots,
    /// A slot id or key version counter would overflow `u32`.
    #[error(
        "slot ids or key versions are exhausted for this keyring; create a new vault and migrate"
    )]
    Exhausted,
    /// The root key given does not belong to this keyring (its key-check value
    /// differs). Nothing was changed.
    #[error("the root key does not belong to this keyring; unlock this vault again and retry")]
    WrongRootKey,
    /// `rekey` was not given a credential that opens this slot. Nothing was
    /// changed.
    #[error(
        "rekey needs a credential for every key slot, but none given opens slot {slot}; pass its \
         passphrase or key file, or remove the slot first"
    )]
    RekeyMissingCredential {
        /// The id of the slot no credential opened.
        slot: u32,
    },
    /// AES-256-GCM refused to encrypt (plaintext longer than GCM allows).
    #[error("encryption failed: the plaintext is too large for one AES-GCM message")]
    Encrypt,
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed; check the system and retry")]
    Rng,
}
