//! The vault identifier and the secret key types held in memory.

use std::fmt;

use bincode::{Decode, Encode};
use rand::rngs::OsRng;
use rand::RngCore;
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::symmetric::MacKey;
use crate::util::{hex_lower, hkdf32};
use crate::{KeyError, KEY_LEN};

/// The random identifier of one vault. Not secret.
///
/// It salts every HKDF in the vault and is bound into every AAD, so keys and
/// ciphertexts from one vault are useless in another.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub struct VaultId(pub [u8; 16]);

impl VaultId {
    /// A fresh random vault id from the OS RNG.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails.
    pub fn generate() -> Self {
        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        VaultId(id)
    }

    /// The 16 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Debug for VaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VaultId({})", hex_lower(&self.0))
    }
}

impl fmt::Display for VaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex_lower(&self.0))
    }
}

/// Implements the constant-time comparison and the redacted `Debug` shared by
/// all 32-byte secret keys.
macro_rules! secret_bytes_common {
    ($ty:ident) => {
        impl ConstantTimeEq for $ty {
            fn ct_eq(&self, other: &Self) -> Choice {
                self.0.ct_eq(&other.0)
            }
        }

        /// Constant-time.
        impl PartialEq for $ty {
            fn eq(&self, other: &Self) -> bool {
                self.ct_eq(other).into()
            }
        }

        impl Eq for $ty {}

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty)).finish_non_exhaustive()
            }
        }
    };
}

/// The vault's root key RK: 32 random bytes, never stored in clear.
///
/// RK is wrapped by every key slot, wraps every tenant seed and the vault
/// seed, and derives the keyring-MAC key. It is obtained from
/// [`Keyring::unlock`](crate::Keyring::unlock) (or made once by
/// [`RootKey::generate`] at `init`).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct RootKey([u8; KEY_LEN]);

secret_bytes_common!(RootKey);

impl RootKey {
    /// A fresh random root key from the OS RNG.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails.
    pub fn generate() -> Self {
        let mut rk = RootKey([0u8; KEY_LEN]);
        OsRng.fill_bytes(&mut rk.0);
        rk
    }

    /// A fresh random root key, reporting a failing OS RNG as an error
    /// rather than panicking (for `rekey` in a running program).
    ///
    /// # Errors
    ///
    /// [`KeyError::Rng`].
    pub fn try_generate() -> Result<Self, KeyError> {
        let mut rk = RootKey([0u8; KEY_LEN]);
        crate::util::fill_random(&mut rk.0)?;
        Ok(rk)
    }

    /// A root key from known bytes: for known-answer tests and recovery
    /// tooling. Normal code gets its root key from a key slot.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        RootKey(*bytes)
    }

    /// `HKDF-SHA256(RK, salt = vault id, info = lp(label))`.
    pub(crate) fn subkey(
        &self,
        vault: &VaultId,
        label: &[u8],
    ) -> zeroize::Zeroizing<[u8; KEY_LEN]> {
        hkdf32(&self.0, &vault.0, &[label])
    }

    pub(crate) fn mac_subkey(&self, vault: &VaultId, label: &[u8]) -> MacKey {
        MacKey::from_key(&self.subkey(vault, label))
    }

    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

/// A passphrase for a passphrase key slot. Zeroized on drop.
///
/// The passphrase is used as its UTF-8 bytes, without Unicode normalization:
/// the front end must read it the same way every time.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Passphrase(String);

impl Passphrase {
    /// Takes ownership of the passphrase (the `String` is zeroized on drop).
    pub fn new(pass: String) -> Self {
        Passphrase(pass)
    }

    /// The passphrase text.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Passphrase").finish_non_exhaustive()
    }
}

/// `generate`, `from_bytes` and `expose_secret` of a 32-byte secret that a caller must
/// persist or hand on (a key file, an HSM-sealed slot secret).
macro_rules! random_secret_bytes {
    ($ty:ident, $from:literal, $expose:literal) => {
        impl $ty {
            /// Fresh random bytes from the OS RNG.
            ///
            /// # Panics
            ///
            /// If the operating system's random number generator fails.
            pub fn generate() -> Self {
                let mut k = $ty([0u8; KEY_LEN]);
                OsRng.fill_bytes(&mut k.0);
                k
            }

            #[doc = $from]
            ///
            /// # Errors
            ///
            /// [`KeyError::KeyFileLength`] unless `bytes` is exactly 32 bytes long.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
                let mut k = $ty([0u8; KEY_LEN]);
                if bytes.len() != KEY_LEN {
                    return Err(KeyError::KeyFileLength);
                }
                k.0.copy_from_slice(bytes);
                Ok(k)
            }

            #[doc = $expose]
            pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
                &self.0
            }
        }
    };
}

/// The content of a key file: 32 random bytes that open a key-file slot.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct KeyFileKey([u8; KEY_LEN]);

secret_bytes_common!(KeyFileKey);
random_secret_bytes!(
    KeyFileKey,
    "Reads a key file's content.",
    "The 32 bytes, to write the key file."
);

/// The secret behind a PKCS#11 key slot: 32 random bytes, stored only sealed by a
/// non-extractable key inside an HSM (the slot's `sealed` field), from which the slot's KEK
/// is derived.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct HsmSecret([u8; KEY_LEN]);

secret_bytes_common!(HsmSecret);
random_secret_bytes!(
    HsmSecret,
    "The secret as the HSM returned it.",
    "The 32 bytes, to hand to the HSM for sealing."
);

/// The random 32-byte seed of one key version of one tenant; the tenant's
/// data, index and MAC keys of that version are derived from it by
/// [`derive_tenant_keys`](crate::derive_tenant_keys).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct TenantSeed([u8; KEY_LEN]);

secret_bytes_common!(TenantSeed);

impl TenantSeed {
    /// A fresh random seed from the OS RNG.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails.
    pub fn generate() -> Self {
        let mut s = TenantSeed([0u8; KEY_LEN]);
        OsRng.fill_bytes(&mut s.0);
        s
    }

    /// A seed from known bytes, for known-answer tests.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        TenantSeed(*bytes)
    }

    pub(crate) fn try_generate() -> Result<Self, KeyError> {
        let mut s = TenantSeed([0u8; KEY_LEN]);
        crate::util::fill_random(&mut s.0)?;
        Ok(s)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub(crate) fn as_mut_bytes(&mut self) -> &mut [u8; KEY_LEN] {
        &mut self.0
    }
}

/// The vault seed: 32 random bytes made at `init`, kept in the keyring
/// wrapped under the root key. The vault-wide working keys (row MAC, state
/// sealing, backup MAC) are derived from it by
/// [`derive_vault_keys`](crate::derive_vault_keys), so replacing the root key
/// (`rekey`) only rewraps it.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct VaultSeed([u8; KEY_LEN]);

secret_bytes_common!(VaultSeed);

impl VaultSeed {
    /// A seed from known bytes, for known-answer tests.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        VaultSeed(*bytes)
    }

    pub(crate) fn try_generate() -> Result<Self, KeyError> {
        let mut s = VaultSeed([0u8; KEY_LEN]);
        crate::util::fill_random(&mut s.0)?;
        Ok(s)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub(crate) fn as_mut_bytes(&mut self) -> &mut [u8; KEY_LEN] {
        &mut self.0
    }
}

impl RootKey {
    pub(crate) fn zeroed() -> Self {
        RootKey([0u8; KEY_LEN])
    }

    pub(crate) fn as_mut_bytes(&mut self) -> &mut [u8; KEY_LEN] {
        &mut self.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn key_file_length() {
        assert!(matches!(
            KeyFileKey::from_bytes(&[0; 31]),
            Err(KeyError::KeyFileLength)
        ));
        assert!(matches!(
            KeyFileKey::from_bytes(&[0; 33]),
            Err(KeyError::KeyFileLength)
        ));
        assert!(matches!(
            KeyFileKey::from_bytes(&[]),
            Err(KeyError::KeyFileLength)
        ));
        let k = KeyFileKey::from_bytes(&[7; 32]).unwrap();
        assert_eq!(k.expose_secret(), &[7; 32]);
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(RootKey::generate(), RootKey::generate());
        assert_ne!(VaultId::generate(), VaultId::generate());
        assert_ne!(TenantSeed::generate(), TenantSeed::generate());
        assert_ne!(KeyFileKey::generate(), KeyFileKey::generate());
    }

    #[test]
    fn vault_id_prints_hex() {
        let v = VaultId([0xab; 16]);
        assert_eq!(format!("{v:?}"), format!("VaultId({})", "ab".repeat(16)));
        assert_eq!(v.to_string(), "ab".repeat(16));
    }
}
