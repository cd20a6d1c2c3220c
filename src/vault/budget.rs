//! The encryption budget: reservations of the keyring's per-key counters, kept per
//! process and given back at close.

use std::sync::PoisonError;

use phonevault_keys::KeyPurpose;

use super::tenants::TenantCtx;
use super::{Vault, VaultError, VaultInner};

/// The largest reservation of encryptions made in the keyring's counter at a time (see
/// `reserve_encryptions`): reservations start at what one call needs and double up to it.
pub const ENCRYPTION_RESERVATION: u64 = 1 << 16;

/// Encryptions a process reserved under one data-key version.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Reservation {
    /// Reserved and not used yet.
    pub(super) left: u64,
    /// The size of the next reservation: doubles from what a call needs up to
    /// [`ENCRYPTION_RESERVATION`], so a process that encrypts little reserves little.
    pub(super) next: u64,
}

impl VaultInner {
    /// Gives the unused part of every reservation back to the keyring's counters
    /// (when the vault is closed), so that the counters hold what was really used.
    /// Best effort: if the keyring cannot be written, the counters stay ahead, which
    /// is the safe direction.
    pub(super) fn release_reservations(&self) {
        let all = std::mem::take(
            &mut *self
                .reservations
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if all.values().all(|r| r.left == 0) {
            return;
        }
        let Ok(mut ring) = self.keyring_for_update() else {
            return;
        };
        let mut changed = false;
        for ((tenant, version), res) in all {
            if res.left > 0 && ring.release_encryptions(&tenant, version, res.left) {
                changed = true;
            }
        }
        if changed {
            let _ = self.save_keyring(&mut ring);
        }
    }
}

impl Vault {
    /// Counts `n` encryptions under the tenant's current data key against the GCM
    /// random-nonce bound. The keyring counter is advanced in reservations, so a crash
    /// can only overcount; crossing 2^31 rotates the data key.
    ///
    /// A reservation outlives the tenant cache (it is kept per tenant and version in
    /// the vault), starts at `n` and doubles up to [`ENCRYPTION_RESERVATION`], so the
    /// counter runs at most about twice ahead of the encryptions really made; what is
    /// left unused is given back when the vault is closed.
    pub(super) fn reserve_encryptions(&self, ctx: &TenantCtx, n: u64) -> Result<(), VaultError> {
        let mut all = self
            .reservations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let res = all
            .entry((ctx.row.name.clone(), ctx.current_data))
            .or_default();
        if res.left >= n {
            res.left -= n;
            return Ok(());
        }
        let grab = n.max(res.next);
        let mut ring = self.keyring_for_update()?;
        let crossed = ring.note_encryptions(&ctx.row.name, ctx.current_data, grab)?;
        if crossed {
            // Saves the keyring, and the cached context (naming an old version) is
            // reloaded on next use.
            self.rotate_agreed(&mut ring, &ctx.row.name, KeyPurpose::Data)?;
        } else {
            self.save_keyring(&mut ring)?;
        }
        // The old remainder was counted already and stays usable.
        res.left = res.left + grab - n;
        res.next = grab.saturating_mul(2).clamp(1, ENCRYPTION_RESERVATION);
        Ok(())
    }
}
