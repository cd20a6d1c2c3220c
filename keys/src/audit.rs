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
