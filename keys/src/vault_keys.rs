//! The vault-wide working keys, derived from the vault seed.

use std::fmt;

use zeroize::Zeroizing;

use crate::audit::AuditReadKey;
use crate::labels;
use crate::symmetric::{DataKey, MacKey};
use crate::util::hkdf32;
use crate::{VaultId, VaultSeed, KEY_LEN};

/// The keys that belong to the vault as a whole rather than to a tenant.
///
/// They come from the vault seed, not from the root key, so replacing the
/// root key (`rekey`) changes none of them and no stored row has to be
/// re-authenticated. Obtained from [`Keyring::vault_keys`](crate::Keyring::vault_keys).
pub struct VaultKeys {
    /// HMAC-SHA256 key for rows that are not records (tenant settings, tokens,
    /// the store's meta row). Name the table and row key among the MAC parts.
    pub row_mac: MacKey,
    /// AES-256-GCM key for sealing vault state rows (such as the audit log's
    /// current key). Bind the table and row key into the AAD. Every message is
    /// sealed under a subkey of its own (see [`DataKey::seal`]), so its use needs
    /// no counting however many chain links it seals.
    pub state: DataKey,
    /// HMAC-SHA256 key for the trailing MAC of a data backup file.
    pub backup: MacKey,
    /// The key that seals audit entries (link bodies, journal records), exported
    /// to the auditors beside K0.
    pub audit_read: AuditReadKey,
}

impl fmt::Debug for VaultKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultKeys").finish_non_exhaustive()
    }
}

/// Derives the vault-wide keys from the vault seed:
///
/// ```text
/// key_X = HKDF-SHA256(ikm = vault seed, salt = vault id, info = lp(label_X))
/// label_row_mac = "phonevault/v2/row-mac-key"
/// label_state   = "phonevault/v2/vault-state-key"
/// label_backup  = "phonevault/v2/backup-mac-key"
/// label_audit_read = "phonevault/v2/audit-read-key"
/// ```
///
/// Pure and deterministic; frozen by known-answer tests.
pub fn derive_vault_keys(seed: &VaultSeed, vault: &VaultId) -> VaultKeys {
    VaultKeys {
        row_mac: MacKey::from_key(&vault_key_bytes(seed, vault, labels::VAULT_ROW_MAC_KEY)),
        state: DataKey::per_message(&vault_key_bytes(seed, vault, labels::VAULT_STATE_KEY)),
        backup: MacKey::from_key(&vault_key_bytes(seed, vault, labels::BACKUP_MAC_KEY)),
        audit_read: AuditReadKey::from_bytes(&vault_key_bytes(seed, vault, labels::AUDIT_READ_KEY)),
    }
}

/// The raw bytes of one vault-wide key (for [`derive_vault_keys`] and KATs).
pub(crate) fn vault_key_bytes(
    seed: &VaultSeed,
    vault: &VaultId,
    label: &[u8],
) -> Zeroizing<[u8; KEY_LEN]> {
    hkdf32(seed.as_bytes(), &vault.0, &[label])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        crate::util::hex_lower(b)
    }

    /// Frozen; cross-checked against an independent Python implementation
    /// (`hmac`/`hashlib` HKDF over the length-prefixed info).
    #[test]
    fn kat_vault_keys() {
        let seed = VaultSeed::from_bytes(&core::array::from_fn(|i| 0x80 + i as u8));
        let vault = VaultId(core::array::from_fn(|i| 0xa0 + i as u8));
        let cases: [(&[u8], &str); 4] = [
            (
                labels::VAULT_ROW_MAC_KEY,
                "7e588eb4a590a80e581a1661033eaf48d9b7aae260826d1cea3060997d03cd42",
            ),
            (
                labels::VAULT_STATE_KEY,
                "33922ec674dfd0d19e4c72198456a4fdcf6a0bb45a12b95d8182245d58837746",
            ),
            (
                labels::BACKUP_MAC_KEY,
                "4a3a8cd95c1735c9b113eaf831fc5cb6dae9c1b7775d11df75aa42700717e683",
            ),
            (
                labels::AUDIT_READ_KEY,
                "cea40cd872ef9b725724a60c0d55faa95cda260e463de7634500207864b4a779",
            ),
        ];
        for (label, expect) in cases {
            assert_eq!(
                hex(vault_key_bytes(&seed, &vault, label).as_slice()),
                expect,
                "{}",
                String::from_utf8_lossy(label)
            );
        }
    }

    #[test]
    fn vault_keys_are_separated() {
        let seed = VaultSeed::from_bytes(&[1; 32]);
        let vault = VaultId([2; 16]);
        let a = vault_key_bytes(&seed, &vault, labels::VAULT_ROW_MAC_KEY);
        let b = vault_key_bytes(&seed, &vault, labels::BACKUP_MAC_KEY);
        let c = vault_key_bytes(&seed, &VaultId([3; 16]), labels::VAULT_ROW_MAC_KEY);
        let d = vault_key_bytes(
            &VaultSeed::from_bytes(&[4; 32]),
            &vault,
            labels::VAULT_ROW_MAC_KEY,
        );
        assert_ne!(*a, *b);
        assert_ne!(*a, *c);
        assert_ne!(*a, *d);
    }
}
