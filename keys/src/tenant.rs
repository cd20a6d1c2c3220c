//! Derivation of a tenant's working keys from one seed version.

use std::fmt;

use zeroize::Zeroizing;

use crate::labels;
use crate::symmetric::{DataKey, IndexKey, MacKey};
use crate::util::hkdf32;
use crate::{TenantSeed, VaultId, KEY_LEN};

/// The three working keys of one key version of one tenant.
pub struct TenantKeys {
    /// The key version (seed version) these keys come from; store it beside
    /// every ciphertext and index entry.
    pub version: u32,
    /// AES-256-GCM key for record bodies.
    pub data: DataKey,
    /// HMAC-SHA256 key for blind indexes.
    pub index: IndexKey,
    /// HMAC-SHA256 key for record MACs.
    pub mac: MacKey,
    /// A fingerprint of the seed (not a key: nothing is derived from it, and it
    /// reveals neither the seed nor a key), stored beside the data so that hosts
    /// sharing a store can tell whether they hold the same seed for a version.
    pub fingerprint: [u8; KEY_LEN],
}

impl fmt::Debug for TenantKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantKeys")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Derives a tenant's data, index and MAC keys of one version:
///
/// ```text
/// key_X = HKDF-SHA256(ikm = seed_v, salt = vault id,
///                     info = lp(label_X) ‖ lp(tenant) ‖ lp(u32 BE version))
/// lp(x) = u64 LE len(x) ‖ x
/// label_data  = "phonevault/v1/tenant-data-key"
/// label_index = "phonevault/v1/tenant-index-key"
/// label_mac   = "phonevault/v1/tenant-mac-key"
/// fingerprint = the same with label "phonevault/v2/seed-fingerprint"
/// ```
///
/// Pure and deterministic; frozen by known-answer tests.
pub fn derive_tenant_keys(
    seed: &TenantSeed,
    vault: &VaultId,
    tenant: &str,
    version: u32,
) -> TenantKeys {
    let derive = |label: &[u8]| tenant_key_bytes(seed, vault, tenant, version, label);
    TenantKeys {
        version,
        data: DataKey::from_key(&derive(labels::TENANT_DATA_KEY)),
        index: IndexKey::from_key(&derive(labels::TENANT_INDEX_KEY)),
        mac: MacKey::from_key(&derive(labels::TENANT_MAC_KEY)),
        fingerprint: *derive(labels::SEED_FINGERPRINT),
    }
}

/// The raw bytes of one derived tenant key (for [`derive_tenant_keys`] and KATs).
pub(crate) fn tenant_key_bytes(
    seed: &TenantSeed,
    vault: &VaultId,
    tenant: &str,
    version: u32,
    label: &[u8],
) -> Zeroizing<[u8; KEY_LEN]> {
    hkdf32(
        seed.as_bytes(),
        &vault.0,
        &[label, tenant.as_bytes(), &version.to_be_bytes()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels;

    fn seed() -> TenantSeed {
        TenantSeed::from_bytes(&core::array::from_fn(|i| i as u8))
    }

    fn vault() -> VaultId {
        VaultId(core::array::from_fn(|i| 0xa0 + i as u8))
    }

    fn hex(b: &[u8]) -> String {
        crate::util::hex_lower(b)
    }

    /// Frozen: a change here breaks every existing vault. Values were also
    /// checked against an independent HKDF (Python hmac/hashlib).
    #[test]
    fn kat_tenant_key_derivation() {
        let cases: [(&[u8], u32, &str); 8] = [
            (
                labels::SEED_FINGERPRINT,
                1,
                "ac00f9af2de2ea56093c2d1a1ca53afb2a3dbca7c974a79f5df6d6bebf96273c",
            ),
            (
                labels::SEED_FINGERPRINT,
                2,
                "d94792e981608b147d0fd4d578c5ffdde16b1db797795a59780f9cfbbaef92ba",
            ),
            (
                labels::TENANT_DATA_KEY,
                1,
                "f24c5f695950f750098ef2a2faa2fb2edd8de1ff871e277b4ffdde2094f074f4",
            ),
            (
                labels::TENANT_DATA_KEY,
                2,
                "2dd5e62671a395e509eee78c1051a2dde25ce82bc679b8038bae8636281f3439",
            ),
            (
                labels::TENANT_INDEX_KEY,
                1,
                "98bd7cd5acb77c384ddcf74aea81565ec8d5d4b826240e6a16ee8417072261a0",
            ),
            (
                labels::TENANT_INDEX_KEY,
                2,
                "0962228744b48b03ebe19692061f71ec07f16c6ec63d1c7653f15070c70c1a02",
            ),
            (
                labels::TENANT_MAC_KEY,
                1,
                "ef57340634fc785be18f158e7aa4f642c019b6976823b857601746c2e04f5b8e",
            ),
            (
                labels::TENANT_MAC_KEY,
                2,
                "048c13ad64dad6e0390c75310b4dd8b6e52a69063af5b128663947f389006ac9",
            ),
        ];
        for (label, version, expect) in cases {
            let got = tenant_key_bytes(&seed(), &vault(), "acme", version, label);
            assert_eq!(
                hex(got.as_slice()),
                expect,
                "{} v{version}",
                String::from_utf8_lossy(label)
            );
        }
    }

    #[test]
    fn keys_are_separated_by_every_input() {
        let base = tenant_key_bytes(&seed(), &vault(), "acme", 1, labels::TENANT_DATA_KEY);
        let other_seed = TenantSeed::from_bytes(&[0xff; 32]);
        let mut other_vault = vault();
        other_vault.0[15] ^= 1;
        for other in [
            tenant_key_bytes(&other_seed, &vault(), "acme", 1, labels::TENANT_DATA_KEY),
            tenant_key_bytes(&seed(), &other_vault, "acme", 1, labels::TENANT_DATA_KEY),
            tenant_key_bytes(&seed(), &vault(), "acmf", 1, labels::TENANT_DATA_KEY),
            tenant_key_bytes(&seed(), &vault(), "acme", 2, labels::TENANT_DATA_KEY),
            tenant_key_bytes(&seed(), &vault(), "acme", 1, labels::TENANT_INDEX_KEY),
        ] {
            assert_ne!(*base, *other);
        }
    }
}
