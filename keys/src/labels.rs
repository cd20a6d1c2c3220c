//! Domain-separation labels.
//!
//! Every key derivation, key wrap and MAC in this crate names one of these
//! labels, so that a key or tag made for one purpose can never be mistaken for
//! one made for another. The labels are part of the on-disk format: changing
//! one breaks every existing vault, which the known-answer tests pin down.
//! A new construction gets a new label (and a new `vN` when its meaning
//! changes), never a reused one.

/// HKDF label of a tenant's AES-256-GCM data key.
pub const TENANT_DATA_KEY: &[u8] = b"phonevault/v1/tenant-data-key";
/// HKDF label of a tenant's HMAC-SHA256 blind-index key.
pub const TENANT_INDEX_KEY: &[u8] = b"phonevault/v1/tenant-index-key";
/// HKDF label of a tenant's HMAC-SHA256 record-MAC key.
pub const TENANT_MAC_KEY: &[u8] = b"phonevault/v1/tenant-mac-key";
/// HKDF label of a tenant seed's fingerprint: a one-way value that names a seed
/// version in the store (so hosts sharing it agree on versions) without revealing
/// the seed or any key derived from it.
pub const SEED_FINGERPRINT: &[u8] = b"phonevault/v2/seed-fingerprint";
/// HKDF label of the vault-seed-derived key that MACs non-record rows
/// (tenant settings, tokens, the store's meta row). `v2`: derived from the
/// vault seed, no longer from the root key, so `rekey` leaves it unchanged.
pub const VAULT_ROW_MAC_KEY: &[u8] = b"phonevault/v2/row-mac-key";
/// HKDF label of the vault-seed-derived AES-256-GCM key that seals vault
/// state rows (such as the audit log's current key).
pub const VAULT_STATE_KEY: &[u8] = b"phonevault/v2/vault-state-key";
/// HKDF label of the per-message subkeys of the vault state key: each sealed
/// state row gets a subkey from a 24-byte random salt, so that no count of the
/// state key's encryptions is needed.
pub const STATE_SUBKEY: &[u8] = b"phonevault/v2/state-subkey";
/// HKDF label of the vault-seed-derived key that seals audit entries (link bodies
/// and journal records), exported to the auditors beside K0.
pub const AUDIT_READ_KEY: &[u8] = b"phonevault/v2/audit-read-key";
/// HKDF label of the vault-seed-derived key that MACs a whole data backup.
pub const BACKUP_MAC_KEY: &[u8] = b"phonevault/v2/backup-mac-key";
/// HKDF label of the root-key-derived key that wraps the vault seed; also the
/// first part of its AAD.
pub const VAULT_SEED_WRAP: &[u8] = b"phonevault/v2/vault-seed-wrap";
/// HKDF label of the root-key-derived key that MACs the keyring file.
pub const KEYRING_MAC: &[u8] = b"phonevault/v1/keyring-mac";
/// HKDF label of the root-key-derived key-check value stored in the keyring,
/// which lets mutating calls refuse a root key that does not belong to it.
pub const ROOT_KEY_CHECK: &[u8] = b"phonevault/v1/root-key-check";
/// HKDF label of the root-key-derived key that wraps tenant seeds; also the
/// first part of the seed-wrap AAD.
pub const SEED_WRAP: &[u8] = b"phonevault/v1/seed-wrap";
/// First part of the AAD that binds a wrapped root key to its key slot.
pub const SLOT_WRAP: &[u8] = b"phonevault/v1/slot-wrap";
/// HKDF label turning an Argon2id output into a passphrase slot's KEK.
pub const PASSPHRASE_KEK: &[u8] = b"phonevault/v1/passphrase-kek";
/// HKDF label turning a key file's bytes into a key-file slot's KEK.
pub const KEY_FILE_KEK: &[u8] = b"phonevault/v1/key-file-kek";
/// HKDF label turning a PKCS#11 slot's HSM-sealed secret into the slot's KEK.
pub const PKCS11_KEK: &[u8] = b"phonevault/v1/pkcs11-kek";
/// First part of the AAD under which the HSM seals a PKCS#11 slot's secret.
pub const PKCS11_SEAL: &[u8] = b"phonevault/v1/pkcs11-seal";
/// Prefix of a suppression-list entry's blind index: `HMAC(index key, label ‖ E.164)`,
/// not the exact index's `e164:`, so a list entry and a record's index entry of the
/// same number share no bytes.
pub const SUPPRESS_INDEX_PREFIX: &[u8] = b"suppress-e164:";
/// First part of a suppression-list entry's tag under the row MAC key.
pub const SUPPRESS_ENTRY: &[u8] = b"phonevault/v1/suppress-entry";
/// Prefix hashed with the audit key to evolve it: `K(i+1) = SHA-256(label ‖ K(i))`.
pub const AUDIT_KEY_EVOLVE: &[u8] = b"phonevault/v1/audit-key-evolve";
