//! The forward-evolving audit key.

use std::fmt;

use hmac::Mac;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::labels;
use crate::util::hmac_sha256;
use crate::KEY_LEN;

/// The audit-log key `K(i)`.
///
/// `K0` is made at `init` and exported to the auditors; the vault then
/// [`evolve`](Self::evolve)s it forward, erasing the old key, so that a thief
/// of the running vault cannot re-MAC past entries (forward security, as in
/// Acra's audit log). Auditors holding `K0` replay the evolution to verify.
///
/// ```text
/// K(i+1) = SHA-256("phonevault/v1/audit-key-evolve" ‖ K(i))
/// tag_i(msg) = HMAC-SHA256(K(i), msg)
/// ```
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct AuditKey([u8; KEY_LEN]);

impl AuditKey {
    /// A fresh random `K0` from the OS RNG.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails.
    pub fn generate() -> Self {
        let mut k = AuditKey([0u8; KEY_LEN]);
        OsRng.fill_bytes(&mut k.0);
        k
    }

    /// An audit key from exported bytes (an auditor's `K0`, or a persisted `K(i)`).
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        AuditKey(*bytes)
    }

    /// The key bytes, for export to auditors or for persisting the current key.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Replaces `K(i)` by `K(i+1)`; the old bytes are overwritten.
    pub fn evolve(&mut self) {
        let mut h = Sha256::new();
        h.update(labels::AUDIT_KEY_EVOLVE);
        h.update(self.0);
        // Written straight over K(i): no copy of either key is left behind.
        h.finalize_into((&mut self.0).into());
    }

    /// `HMAC-SHA256(K(i), msg)`.
    pub fn tag(&self, msg: &[u8]) -> [u8; 32] {
        let mut mac = hmac_sha256(&self.0);
        mac.update(msg);
        mac.finalize().into_bytes().into()
    }
}

impl ConstantTimeEq for AuditKey {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

/// Constant-time.
impl PartialEq for AuditKey {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for AuditKey {}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditKey").finish_non_exhaustive()
    }
}

/// The key that seals audit entries (the bodies of chain links and of journal
/// records), so that a reader of the disk, the database or a backup learns nothing
/// from the log about which records were opted out, refused or withdrawn.
///
/// Derived from the vault seed ([`VaultKeys::audit_read`](crate::VaultKeys::audit_read)),
/// so the unlocked vault always has it; exported to the auditors beside `K0`, since
/// reading entries needs it while verifying the chain does not (the chain's hashes
/// and MACs are over the sealed bytes). Every message is sealed under a subkey of its
/// own, as the vault state key does:
///
/// ```text
/// subkey  = HKDF-SHA256(read key, salt = 24 random bytes, info = lp("phonevault/v2/state-subkey"))
/// sealed  = "PVS2" ‖ salt ‖ nonce(12) ‖ AES-256-GCM(subkey, nonce, aad, entries)
/// ```
///
/// so no count of its encryptions is needed however many links it seals.
pub struct AuditReadKey {
    bytes: zeroize::Zeroizing<[u8; KEY_LEN]>,
    sealer: crate::DataKey,
}

impl AuditReadKey {
    /// The read key from its bytes (exported, or derived from the vault seed).
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        AuditReadKey {
            bytes: zeroize::Zeroizing::new(*bytes),
            sealer: crate::DataKey::per_message(bytes),
        }
    }

    /// The key bytes, for export to the auditors.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// Seals `plaintext` bound to `aad` under a fresh subkey.
    ///
    /// # Errors
    ///
    /// [`KeyError::Rng`](crate::KeyError::Rng) if the OS RNG fails.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, crate::KeyError> {
        self.sealer.seal(aad, plaintext)
    }

    /// Opens what [`seal`](Self::seal) made with the same `aad`.
    ///
    /// # Errors
    ///
    /// [`KeyError::Decrypt`](crate::KeyError::Decrypt), opaque.
    pub fn open(
        &self,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::KeyError> {
        // Only per-message seals are read key seals: nothing was ever sealed
        // directly under it (no legacy form to accept).
        if !sealed.starts_with(crate::symmetric::SUBKEY_MAGIC) {
            return Err(crate::KeyError::Decrypt);
        }
        self.sealer.open(aad, sealed)
    }
}

impl ConstantTimeEq for AuditReadKey {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.bytes.ct_eq(&*other.bytes)
    }
}

/// Constant-time.
impl PartialEq for AuditReadKey {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for AuditReadKey {}

impl fmt::Debug for AuditReadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditReadKey").finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn the_read_key_seals_each_message_under_its_own_subkey() {
        let k = AuditReadKey::from_bytes(&[9; KEY_LEN]);
        let a = k.seal(b"aad", b"entries").unwrap();
        let b = k.seal(b"aad", b"entries").unwrap();
        assert_ne!(a, b);
        assert_eq!(k.open(b"aad", &a).unwrap().as_slice(), b"entries");
        assert!(k.open(b"other", &a).is_err());
        assert!(AuditReadKey::from_bytes(&[8; KEY_LEN])
            .open(b"aad", &a)
            .is_err());
        let mut flipped = a.clone();
        flipped[40] ^= 1;
        assert!(k.open(b"aad", &flipped).is_err());
        // a message sealed directly under the key (no subkey) is not accepted
        let direct = crate::DataKey::from_key(&[9; KEY_LEN])
            .seal(b"aad", b"entries")
            .unwrap();
        assert!(k.open(b"aad", &direct).is_err());
        assert_eq!(format!("{k:?}"), "AuditReadKey { .. }");
    }
}
