//! Key slots: the root key wrapped under a passphrase or a key file, as in LUKS.

use std::fmt;

use bincode::{Decode, Encode};
use zeroize::Zeroizing;

use crate::kdf::KdfParams;
use crate::labels;
use crate::symmetric::{unwrap_key_into, wrap_key, NONCE_LEN, WRAPPED_LEN};
use crate::util::{fill_random, hkdf32, lp_concat};
use crate::{HsmSecret, KeyError, KeyFileKey, Passphrase, RootKey, VaultId, KEY_LEN};

/// Longest token or key label a PKCS#11 slot stores (bytes).
pub const MAX_PKCS11_LABEL: usize = 64;
/// Longest HSM-sealed secret a PKCS#11 slot stores (bytes): IV, 32 bytes, tag, with room.
pub const MAX_PKCS11_SEALED: usize = 128;

/// How the HSM seals a PKCS#11 slot's secret. Part of the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
pub enum Pkcs11Mechanism {
    /// `CKM_AES_GCM`, 96-bit random IV, 128-bit tag; `sealed = IV ‖ ciphertext ‖ tag`.
    AesGcm,
}

impl Pkcs11Mechanism {
    fn tag(self) -> u8 {
        match self {
            Pkcs11Mechanism::AesGcm => 1,
        }
    }

    /// The PKCS#11 name.
    pub fn name(self) -> &'static str {
        match self {
            Pkcs11Mechanism::AesGcm => "CKM_AES_GCM",
        }
    }
}

/// Where a PKCS#11 slot's secret lives: which token and key sealed it, how, and the sealed
/// bytes. Never the PIN, which is the operator's to give at unlock.
#[derive(Clone, PartialEq, Eq, Encode, Decode)]
pub struct Pkcs11Slot {
    /// The token's label (`CKA_LABEL` of the token, as `softhsm2-util --show-slots` prints).
    pub token: String,
    /// The label of the non-extractable AES key in that token.
    pub key: String,
    /// How the key sealed the secret.
    pub mechanism: Pkcs11Mechanism,
    /// The secret, sealed by that key under [`pkcs11_seal_aad`].
    pub sealed: Vec<u8>,
}

impl fmt::Debug for Pkcs11Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Slot")
            .field("token", &self.token)
            .field("key", &self.key)
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Slot {
    fn check(&self) -> Result<(), KeyError> {
        let label_ok = |l: &str| !l.is_empty() && l.len() <= MAX_PKCS11_LABEL;
        if label_ok(&self.token)
            && label_ok(&self.key)
            && !self.sealed.is_empty()
            && self.sealed.len() <= MAX_PKCS11_SEALED
        {
            Ok(())
        } else {
            Err(KeyError::Unlock)
        }
    }
}

/// The AAD under which the HSM seals the secret of PKCS#11 slot `id` of vault `vault`:
/// `lp("phonevault/v1/pkcs11-seal") ‖ lp(vault id) ‖ lp(u32 BE slot id)`, so a sealed secret
/// cannot be moved to another vault or slot.
pub fn pkcs11_seal_aad(vault: &VaultId, id: u32) -> Vec<u8> {
    lp_concat(&[labels::PKCS11_SEAL, &vault.0, &id.to_be_bytes()])
}

/// What opens a key slot. Not secret.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum SlotKind {
    /// `KEK = HKDF(Argon2id(passphrase, salt, params), vault id, "passphrase-kek")`.
    Passphrase {
        /// Argon2id cost, authenticated by the slot's AAD.
        params: KdfParams,
        /// Random Argon2 salt, authenticated by the slot's AAD.
        salt: [u8; 16],
    },
    /// `KEK = HKDF(key file bytes, vault id, "key-file-kek")`.
    KeyFile,
    /// `KEK = HKDF(secret, vault id, "pkcs11-kek")`, where the 32-byte secret is kept only
    /// sealed by a non-extractable key in a PKCS#11 token (an HSM or a cloud KMS).
    Pkcs11(Pkcs11Slot),
}

impl SlotKind {
    /// Tag bound into the AAD; part of the format.
    fn tag(&self) -> u8 {
        match self {
            SlotKind::Passphrase { .. } => 1,
            SlotKind::KeyFile => 2,
            SlotKind::Pkcs11(_) => 3,
        }
    }
}

/// One wrapped copy of the root key.
///
/// ```text
/// wrapped = AES-256-GCM(KEK, nonce, RK, aad)
/// aad = lp("phonevault/v1/slot-wrap") ‖ lp(vault id) ‖ lp(u32 BE slot id) ‖ lp(kind tag)
///       [‖ lp(u32 BE m_kib) ‖ lp(u32 BE t) ‖ lp(u32 BE p) ‖ lp(salt)]   (passphrase slots)
///       [‖ lp(token) ‖ lp(key) ‖ lp(mechanism tag) ‖ lp(sealed)]         (PKCS#11 slots)
/// ```
///
/// Because the AAD binds the slot id, kind, KDF parameters and salt, a slot
/// cannot be moved to another vault or id, and its parameters cannot be
/// downgraded by editing the keyring: any such edit makes it fail to open.
#[derive(Clone, PartialEq, Eq, Encode, Decode)]
pub struct KeySlot {
    /// The slot's id, unique within a keyring.
    pub id: u32,
    /// What opens it.
    pub kind: SlotKind,
    nonce: [u8; NONCE_LEN],
    wrapped: [u8; WRAPPED_LEN],
}

impl fmt::Debug for KeySlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySlot")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

fn slot_aad(vault: &VaultId, id: u32, kind: &SlotKind) -> Vec<u8> {
    let id = id.to_be_bytes();
    let tag = [kind.tag()];
    match kind {
        SlotKind::Passphrase { params, salt } => lp_concat(&[
            labels::SLOT_WRAP,
            &vault.0,
            &id,
            &tag,
            &params.m_kib.to_be_bytes(),
            &params.t.to_be_bytes(),
            &params.p.to_be_bytes(),
            salt,
        ]),
        SlotKind::KeyFile => lp_concat(&[labels::SLOT_WRAP, &vault.0, &id, &tag]),
        SlotKind::Pkcs11(p) => lp_concat(&[
            labels::SLOT_WRAP,
            &vault.0,
            &id,
            &tag,
            p.token.as_bytes(),
            p.key.as_bytes(),
            &[p.mechanism.tag()],
            &p.sealed,
        ]),
    }
}

fn pkcs11_kek(vault: &VaultId, secret: &HsmSecret) -> Zeroizing<[u8; KEY_LEN]> {
    hkdf32(secret.expose_secret(), &vault.0, &[labels::PKCS11_KEK])
}

fn passphrase_kek(
    vault: &VaultId,
    pass: &Passphrase,
    params: &KdfParams,
    salt: &[u8; 16],
) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let stretched = params.derive(pass, salt)?;
    Ok(hkdf32(
        stretched.as_slice(),
        &vault.0,
        &[labels::PASSPHRASE_KEK],
    ))
}

fn key_file_kek(vault: &VaultId, kf: &KeyFileKey) -> Zeroizing<[u8; KEY_LEN]> {
    hkdf32(kf.expose_secret(), &vault.0, &[labels::KEY_FILE_KEK])
}

impl KeySlot {
    fn wrap(
        id: u32,
        kind: SlotKind,
        vault: &VaultId,
        kek: &[u8; KEY_LEN],
        rk: &RootKey,
    ) -> Result<Self, KeyError> {
        let (nonce, wrapped) = wrap_key(kek, &slot_aad(vault, id, &kind), rk.as_bytes())?;
        Ok(KeySlot {
            id,
            kind,
            nonce,
            wrapped,
        })
    }

    fn unwrap(&self, vault: &VaultId, kek: &[u8; KEY_LEN]) -> Result<RootKey, KeyError> {
        let mut rk = RootKey::zeroed();
        unwrap_key_into(
            kek,
            &slot_aad(vault, self.id, &self.kind),
            &self.nonce,
            &self.wrapped,
            rk.as_mut_bytes(),
        )
        .map_err(|_| KeyError::Unlock)?;
        Ok(rk)
    }

    /// Wraps `rk` under a passphrase, with a fresh random salt.
    ///
    /// # Errors
    ///
    /// [`KeyError::EmptyPassphrase`], [`KeyError::KdfParams`] for parameters
    /// outside the caps, [`KeyError::Rng`].
    pub fn new_passphrase(
        id: u32,
        vault: &VaultId,
        rk: &RootKey,
        pass: &Passphrase,
        params: KdfParams,
    ) -> Result<KeySlot, KeyError> {
        if pass.expose_secret().is_empty() {
            return Err(KeyError::EmptyPassphrase);
        }
        params.validate()?;
        let mut salt = [0u8; 16];
        fill_random(&mut salt)?;
        let kek = passphrase_kek(vault, pass, &params, &salt)?;
        Self::wrap(id, SlotKind::Passphrase { params, salt }, vault, &kek, rk)
    }

    /// Wraps `rk` under a key file.
    ///
    /// # Errors
    ///
    /// [`KeyError::Rng`].
    pub fn new_key_file(
        id: u32,
        vault: &VaultId,
        rk: &RootKey,
        kf: &KeyFileKey,
    ) -> Result<KeySlot, KeyError> {
        Self::wrap(id, SlotKind::KeyFile, vault, &key_file_kek(vault, kf), rk)
    }

    /// Wraps `rk` under the secret of a PKCS#11 slot; `binding` holds the secret as the HSM
    /// sealed it under [`pkcs11_seal_aad`] for this vault and `id`.
    ///
    /// # Errors
    ///
    /// [`KeyError::Unlock`] for labels or sealed bytes outside the caps; [`KeyError::Rng`].
    pub fn new_pkcs11(
        id: u32,
        vault: &VaultId,
        rk: &RootKey,
        binding: Pkcs11Slot,
        secret: &HsmSecret,
    ) -> Result<KeySlot, KeyError> {
        binding.check()?;
        Self::wrap(
            id,
            SlotKind::Pkcs11(binding),
            vault,
            &pkcs11_kek(vault, secret),
            rk,
        )
    }

    /// Opens a PKCS#11 slot with the secret the HSM unsealed.
    ///
    /// # Errors
    ///
    /// [`KeyError::Unlock`], opaque, for a wrong secret, a modified slot, or a slot of
    /// another kind.
    pub fn unlock_pkcs11(&self, vault: &VaultId, secret: &HsmSecret) -> Result<RootKey, KeyError> {
        let SlotKind::Pkcs11(binding) = &self.kind else {
            return Err(KeyError::Unlock);
        };
        binding.check()?;
        self.unwrap(vault, &pkcs11_kek(vault, secret))
    }

    /// Opens a passphrase slot.
    ///
    /// # Errors
    ///
    /// [`KeyError::KdfParams`] if the slot's stored parameters are outside the
    /// caps (checked before any Argon2 work, so an edited keyring cannot
    /// exhaust memory); [`KeyError::Unlock`], opaque, for a wrong passphrase,
    /// a modified slot, or a key-file slot.
    pub fn unlock_passphrase(
        &self,
        vault: &VaultId,
        pass: &Passphrase,
    ) -> Result<RootKey, KeyError> {
        let SlotKind::Passphrase { params, salt } = &self.kind else {
            return Err(KeyError::Unlock);
        };
        params.validate()?;
        let kek = passphrase_kek(vault, pass, params, salt)?;
        self.unwrap(vault, &kek)
    }

    /// Opens a key-file slot.
    ///
    /// # Errors
    ///
    /// [`KeyError::Unlock`], opaque, for a wrong key file, a modified slot, or
    /// a passphrase slot.
    pub fn unlock_key_file(&self, vault: &VaultId, kf: &KeyFileKey) -> Result<RootKey, KeyError> {
        if self.kind != SlotKind::KeyFile {
            return Err(KeyError::Unlock);
        }
        self.unwrap(vault, &key_file_kek(vault, kf))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cheap() -> KdfParams {
        KdfParams::cheap_for_tests()
    }

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.to_owned())
    }

    fn hsm_binding(sealed: &[u8]) -> Pkcs11Slot {
        Pkcs11Slot {
            token: "phonevault".into(),
            key: "root-wrap".into(),
            mechanism: Pkcs11Mechanism::AesGcm,
            sealed: sealed.to_vec(),
        }
    }

    #[test]
    fn pkcs11_round_trip_and_every_binding_counts() {
        let vault = VaultId([1; 16]);
        let rk = RootKey::generate();
        let secret = HsmSecret::generate();
        let slot = KeySlot::new_pkcs11(4, &vault, &rk, hsm_binding(&[7; 60]), &secret).unwrap();
        assert_eq!(slot.unlock_pkcs11(&vault, &secret).unwrap(), rk);
        assert!(matches!(
            slot.unlock_pkcs11(&vault, &HsmSecret::generate()),
            Err(KeyError::Unlock)
        ));
        assert!(matches!(
            slot.unlock_pkcs11(&VaultId([2; 16]), &secret),
            Err(KeyError::Unlock)
        ));
        // Labels, mechanism, sealed bytes and slot id are bound by the AAD.
        let edits: [fn(&mut KeySlot); 4] = [
            |s| s.id = 5,
            |s| {
                if let SlotKind::Pkcs11(p) = &mut s.kind {
                    p.token = "other".into();
                }
            },
            |s| {
                if let SlotKind::Pkcs11(p) = &mut s.kind {
                    p.key = "other".into();
                }
            },
            |s| {
                if let SlotKind::Pkcs11(p) = &mut s.kind {
                    p.sealed[0] ^= 1;
                }
            },
        ];
        for edit in edits {
            let mut bad = slot.clone();
            edit(&mut bad);
            assert!(matches!(
                bad.unlock_pkcs11(&vault, &secret),
                Err(KeyError::Unlock)
            ));
        }
        // Not a passphrase or key-file slot, and no secret opens another kind.
        assert!(matches!(
            slot.unlock_key_file(&vault, &KeyFileKey::generate()),
            Err(KeyError::Unlock)
        ));
        let kf = KeySlot::new_key_file(0, &vault, &rk, &KeyFileKey::generate()).unwrap();
        assert!(matches!(
            kf.unlock_pkcs11(&vault, &secret),
            Err(KeyError::Unlock)
        ));
        // The Debug output names the labels, never the sealed bytes.
        let dbg = format!("{slot:?}");
        assert!(
            dbg.contains("root-wrap") && !dbg.contains("sealed"),
            "{dbg}"
        );
    }

    #[test]
    fn pkcs11_bindings_outside_the_caps_are_refused() {
        let vault = VaultId([1; 16]);
        let rk = RootKey::generate();
        let secret = HsmSecret::generate();
        let mut long = hsm_binding(&[7; 60]);
        long.key = "k".repeat(MAX_PKCS11_LABEL + 1);
        for b in [
            long,
            hsm_binding(&[]),
            hsm_binding(&[7; MAX_PKCS11_SEALED + 1]),
        ] {
            assert!(KeySlot::new_pkcs11(0, &vault, &rk, b, &secret).is_err());
        }
        assert_ne!(pkcs11_seal_aad(&vault, 1), pkcs11_seal_aad(&vault, 2));
        assert_ne!(
            pkcs11_seal_aad(&vault, 1),
            pkcs11_seal_aad(&VaultId([2; 16]), 1)
        );
    }

    #[test]
    fn passphrase_round_trip_and_wrong_passphrase() {
        let vault = VaultId([1; 16]);
        let rk = RootKey::generate();
        let slot =
            KeySlot::new_passphrase(0, &vault, &rk, &pass("correct horse"), cheap()).unwrap();
        assert_eq!(
            slot.unlock_passphrase(&vault, &pass("correct horse"))
                .unwrap(),
            rk
        );
        assert!(matches!(
            slot.unlock_passphrase(&vault, &pass("wrong horse")),
            Err(KeyError::Unlock)
        ));
        assert!(matches!(
            slot.unlock_passphrase(&VaultId([2; 16]), &pass("correct horse")),
            Err(KeyError::Unlock)
        ));
        assert!(matches!(
            slot.unlock_key_file(&vault, &KeyFileKey::generate()),
            Err(KeyError::Unlock)
        ));
    }

    #[test]
    fn empty_passphrase_and_bad_params_refused() {
        let vault = VaultId([1; 16]);
        let rk = RootKey::generate();
        assert!(matches!(
            KeySlot::new_passphrase(0, &vault, &rk, &pass(""), cheap()),
            Err(KeyError::EmptyPassphrase)
        ));
        assert!(matches!(
            KeySlot::new_passphrase(
                0,
                &vault,
                &rk,
                &pass("x"),
                KdfParams {
                    m_kib: 256,
                    t: 0,
                    p: 1
                }
            ),
            Err(KeyError::KdfParams)
        ));
    }

    #[test]
    fn edited_params_are_capped_or_fail_opaquely() {
        let vault = VaultId([1; 16]);
        let rk = RootKey::generate();
        let p = pass("pw");
        let slot = KeySlot::new_passphrase(3, &vault, &rk, &p, cheap()).unwrap();
        let SlotKind::Passphrase { params, salt } = slot.kind else {
            unreachable!()
        };

        // Over the caps: refused before any Argon2 work.
        for huge in [
            KdfParams {
                m_kib: KdfParams::MAX_M_KIB + 1,
                ..params
            },
            KdfParams { t: 17, ..params },
            KdfParams { p: 0, ..params },
            KdfParams {
                m_kib: u32::MAX,
                t: u32::MAX,
                p: u32::MAX,
            },
        ] {
            let mut bad = slot.clone();
            bad.kind = SlotKind::Passphrase { params: huge, salt };
            assert!(matches!(
                bad.unlock_passphrase(&vault, &p),
                Err(KeyError::KdfParams)
            ));
        }
        // Within the caps but different (a downgrade or upgrade): the AAD no longer matches.
        for other in [
            KdfParams {
                m_kib: 264,
                ..params
            },
            KdfParams { t: 2, ..params },
            KdfParams {
                m_kib: 256,
                t: 1,
                p: 2,
            },
        ] {
            let mut bad = slot.clone();
            bad.kind = SlotKind::Passphrase {
                params: other,
                salt,
            };
            assert!(matches!(
                bad.unlock_passphrase(&vault, &p),
                Err(KeyError::Unlock)
            ));
        }
        for i in 0..16 {
            let mut bad = slot.clone();
            let mut s = salt;
            s[i] ^= 1;
            bad.kind = SlotKind::Passphrase { params, salt: s };
            assert!(matches!(
                bad.unlock_passphrase(&vault, &p),
                Err(KeyError::Unlock)
            ));
        }
        let mut moved = slot.clone();
        moved.id = 4;
        assert!(matches!(
            moved.unlock_passphrase(&vault, &p),
            Err(KeyError::Unlock)
        ));
    }

    #[test]
    fn every_flipped_byte_of_a_passphrase_slot_fails() {
        let vault = VaultId([1; 16]);
        let rk = RootKey::generate();
        let p = pass("pw");
        let slot = KeySlot::new_passphrase(0, &vault, &rk, &p, cheap()).unwrap();
        for i in 0..NONCE_LEN + WRAPPED_LEN {
            let mut bad = slot.clone();
            if i < NONCE_LEN {
                bad.nonce[i] ^= 0x01;
            } else {
                bad.wrapped[i - NONCE_LEN] ^= 0x01;
            }
            assert!(
                matches!(bad.unlock_passphrase(&vault, &p), Err(KeyError::Unlock)),
                "byte {i}"
            );
        }
    }

    #[test]
    fn every_flipped_byte_of_a_key_file_slot_fails() {
        let vault = VaultId([1; 16]);
        let rk = RootKey::generate();
        let kf = KeyFileKey::generate();
        let slot = KeySlot::new_key_file(7, &vault, &rk, &kf).unwrap();
        assert_eq!(slot.unlock_key_file(&vault, &kf).unwrap(), rk);
        for i in 0..NONCE_LEN + WRAPPED_LEN {
            for bit in [0x01u8, 0x80] {
                let mut bad = slot.clone();
                if i < NONCE_LEN {
                    bad.nonce[i] ^= bit;
                } else {
                    bad.wrapped[i - NONCE_LEN] ^= bit;
                }
                assert!(
                    matches!(bad.unlock_key_file(&vault, &kf), Err(KeyError::Unlock)),
                    "byte {i}"
                );
            }
        }
        for i in 0..16 {
            let mut v = vault;
            v.0[i] ^= 1;
            assert!(matches!(
                slot.unlock_key_file(&v, &kf),
                Err(KeyError::Unlock)
            ));
        }
        let mut moved = slot.clone();
        moved.id = 8;
        assert!(matches!(
            moved.unlock_key_file(&vault, &kf),
            Err(KeyError::Unlock)
        ));
        assert!(matches!(
            slot.unlock_key_file(&vault, &KeyFileKey::generate()),
            Err(KeyError::Unlock)
        ));
        assert!(matches!(
            slot.unlock_passphrase(&vault, &pass("pw")),
            Err(KeyError::Unlock)
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8))]
        #[test]
        fn passphrase_slot_round_trip(
            rk_bytes in any::<[u8; 32]>(),
            vault in any::<[u8; 16]>(),
            id in any::<u32>(),
            pw in "\\PC{1,40}",
        ) {
            let vault = VaultId(vault);
            let rk = RootKey::from_bytes(&rk_bytes);
            let slot = KeySlot::new_passphrase(id, &vault, &rk, &pass(&pw), cheap()).unwrap();
            prop_assert!(slot.unlock_passphrase(&vault, &pass(&pw)).unwrap() == rk);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn key_file_slot_round_trip(
            rk_bytes in any::<[u8; 32]>(),
            kf_bytes in any::<[u8; 32]>(),
            vault in any::<[u8; 16]>(),
            id in any::<u32>(),
        ) {
            let vault = VaultId(vault);
            let rk = RootKey::from_bytes(&rk_bytes);
            let kf = KeyFileKey::from_bytes(&kf_bytes).unwrap();
            let slot = KeySlot::new_key_file(id, &vault, &rk, &kf).unwrap();
            prop_assert!(slot.unlock_key_file(&vault, &kf).unwrap() == rk);
        }
    }
}
