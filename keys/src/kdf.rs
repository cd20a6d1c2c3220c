//! Argon2id parameters for passphrase key slots.

use argon2::{Algorithm, Argon2, Params, Version};
use bincode::{Decode, Encode};
use zeroize::Zeroizing;

use crate::{KeyError, Passphrase, KEY_LEN};

/// Argon2id cost parameters, stored (authenticated) in each passphrase slot.
///
/// Because the parameters live in the slot, a vault keeps opening when the
/// defaults change, and tests can create cheap slots explicitly. Parameters
/// read from a keyring are checked against the caps below before any work is
/// done, so an edited keyring cannot make `unlock` allocate unbounded memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct KdfParams {
    /// Memory in KiB (at least `8 * p`).
    pub m_kib: u32,
    /// Number of passes.
    pub t: u32,
    /// Degree of parallelism (lanes).
    pub p: u32,
}

impl KdfParams {
    /// The defaults for new passphrase slots: 64 MiB, 3 passes, 1 lane
    /// (above OWASP's Argon2id minimums).
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 65536,
        t: 3,
        p: 1,
    };
    /// Largest accepted memory cost: 1 GiB.
    pub const MAX_M_KIB: u32 = 1 << 20;
    /// Largest accepted number of passes.
    pub const MAX_T: u32 = 16;
    /// Largest accepted number of lanes.
    pub const MAX_P: u32 = 16;

    /// 256 KiB, 1 pass, 1 lane.
    ///
    /// # Security
    ///
    /// **Insecure**: a passphrase behind these parameters can be guessed
    /// quickly. Only for tests, where real parameters would make every run slow.
    pub fn cheap_for_tests() -> Self {
        KdfParams {
            m_kib: 256,
            t: 1,
            p: 1,
        }
    }

    /// Checks the parameters against the caps.
    ///
    /// # Errors
    ///
    /// [`KeyError::KdfParams`] when `p` or `t` is 0 or above its cap, or the
    /// memory is below `8 * p` KiB (Argon2's minimum) or above [`Self::MAX_M_KIB`].
    pub fn validate(&self) -> Result<(), KeyError> {
        let p_ok = (1..=Self::MAX_P).contains(&self.p);
        let t_ok = (1..=Self::MAX_T).contains(&self.t);
        let m_ok = p_ok && (8 * self.p..=Self::MAX_M_KIB).contains(&self.m_kib);
        if p_ok && t_ok && m_ok {
            Ok(())
        } else {
            Err(KeyError::KdfParams)
        }
    }

    /// `Argon2id(passphrase, salt)` under these parameters, 32 bytes.
    pub(crate) fn derive(
        &self,
        pass: &Passphrase,
        salt: &[u8; 16],
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
        self.validate()?;
        let params = Params::new(self.m_kib, self.t, self.p, Some(KEY_LEN))
            .map_err(|_| KeyError::KdfParams)?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        argon
            .hash_password_into(pass.expose_secret().as_bytes(), salt, out.as_mut_slice())
            .map_err(|_| KeyError::KdfParams)?;
        Ok(out)
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps() {
        assert!(KdfParams::DEFAULT.validate().is_ok());
        assert!(KdfParams::cheap_for_tests().validate().is_ok());
        let bad = [
            KdfParams {
                m_kib: 0,
                t: 1,
                p: 1,
            },
            KdfParams {
                m_kib: 7,
                t: 1,
                p: 1,
            },
            KdfParams {
                m_kib: 256,
                t: 0,
                p: 1,
            },
            KdfParams {
                m_kib: 256,
                t: 1,
                p: 0,
            },
            KdfParams {
                m_kib: 256,
                t: 17,
                p: 1,
            },
            KdfParams {
                m_kib: 256,
                t: 1,
                p: 17,
            },
            KdfParams {
                m_kib: 64,
                t: 1,
                p: 16,
            },
            KdfParams {
                m_kib: KdfParams::MAX_M_KIB + 1,
                t: 1,
                p: 1,
            },
            KdfParams {
                m_kib: u32::MAX,
                t: u32::MAX,
                p: u32::MAX,
            },
        ];
        for params in bad {
            assert!(
                matches!(params.validate(), Err(KeyError::KdfParams)),
                "{params:?}"
            );
        }
        assert!(KdfParams {
            m_kib: KdfParams::MAX_M_KIB,
            t: 16,
            p: 16
        }
        .validate()
        .is_ok());
    }
}
