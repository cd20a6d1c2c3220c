//! The rules of a keyring: what unlocks it (a passphrase, a key file, a PKCS#11 token),
//! and what a keyring that replaces the current one (`keyring import`, `restore`) must
//! keep: no destroyed key brought back, no key lost, no encryption counter run back.

use phonevault_keys::{KeyError, Keyring, RootKey};

use super::{Unlock, VaultError};

/// Opens `ring` with `unlock`.
pub(super) fn unlock_ring(ring: &Keyring, unlock: &Unlock) -> Result<RootKey, VaultError> {
    match unlock {
        Unlock::Passphrase(p) => ring.unlock(p),
        Unlock::KeyFile(k) => ring.unlock_key_file(k),
        Unlock::Pkcs11(hsm) => return unlock_pkcs11(ring, hsm).map(|(rk, _)| rk),
    }
    .map_err(|e| match e {
        KeyError::Unlock => VaultError::Unlock,
        other => VaultError::Key(other),
    })
}

/// Opens `ring` through its PKCS#11 slot for `hsm`'s token and key: the token unseals the
/// slot's secret. Returns the root key and the secret (for `rekey`).
pub(super) fn unlock_pkcs11(
    ring: &Keyring,
    hsm: &crate::hsm::Pkcs11Config,
) -> Result<(RootKey, (u32, phonevault_keys::HsmSecret)), VaultError> {
    let mut last = None;
    for (id, slot) in ring.pkcs11_slots().filter(|(_, s)| hsm.matches(s)) {
        let aad = phonevault_keys::pkcs11_seal_aad(&ring.vault_id, id);
        match hsm.unseal(&aad, slot) {
            Ok(secret) => {
                return match ring.unlock_pkcs11(id, &secret) {
                    Ok(rk) => Ok((rk, (id, secret))),
                    Err(KeyError::Unlock) => Err(VaultError::Unlock),
                    Err(other) => Err(VaultError::Key(other)),
                }
            }
            Err(e @ crate::hsm::HsmError::Unseal { .. }) => last = Some(e),
            // The token, PIN or key is the problem: say so, whichever slot.
            Err(e) => return Err(e.into()),
        }
    }
    Err(match last {
        Some(e) => e.into(),
        None => VaultError::NoPkcs11Slot {
            token: hsm.token.clone(),
            key: hsm.key.clone(),
        },
    })
}

/// Refuses a keyring `new` that holds keys `current` has destroyed: a shredded
/// tenant's seeds or retired versions.
pub(super) fn check_no_resurrection(current: &Keyring, new: &Keyring) -> Result<(), VaultError> {
    let mut found = Vec::new();
    for (name, cur) in &current.tenants {
        let Some(tk) = new.tenants.get(name) else {
            continue;
        };
        if cur.is_shredded() && !tk.is_shredded() {
            found.push(format!("tenant `{name}` was shredded"));
            continue;
        }
        let retired: Vec<String> = tk
            .seeds
            .iter()
            .filter(|s| cur.is_destroyed(s.version))
            .map(|s| s.version.to_string())
            .collect();
        if !retired.is_empty() {
            found.push(format!(
                "tenant `{name}` retired key version(s) {}",
                retired.join(", ")
            ));
        }
    }
    if found.is_empty() {
        Ok(())
    } else {
        Err(VaultError::ResurrectsKeys {
            what: found.join("; "),
        })
    }
}

/// Refuses a keyring `new` that lacks key versions `current` still holds (an export
/// older than a rotation or than a tenant): installing it would make every record
/// under those versions unreadable for good. Versions `new` destroyed itself (a later
/// retirement or shredding) are not missing.
pub(super) fn check_no_loss(current: &Keyring, new: &Keyring) -> Result<(), VaultError> {
    let mut missing = Vec::new();
    for (name, cur) in &current.tenants {
        if cur.is_shredded() {
            continue;
        }
        let Some(tk) = new.tenants.get(name) else {
            missing.push(format!("tenant `{name}`: every key version"));
            continue;
        };
        if tk.is_shredded() {
            continue;
        }
        let lacking: Vec<String> = cur
            .seeds
            .iter()
            .filter(|s| {
                !tk.is_destroyed(s.version) && !tk.seeds.iter().any(|n| n.version == s.version)
            })
            .map(|s| s.version.to_string())
            .collect();
        if !lacking.is_empty() {
            missing.push(format!(
                "tenant `{name}`: key version(s) {}",
                lacking.join(", ")
            ));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(VaultError::KeyringLacksVersions {
            what: missing.join("; "),
        })
    }
}

/// Carries the encryption counters of `current` over into `new` where they are
/// higher (an older export counted fewer encryptions), so that an import never
/// resets the nonce budget of a key. Returns whether `new` changed (it must then be
/// sealed again).
pub(super) fn merge_counters(current: &Keyring, new: &mut Keyring) -> bool {
    let mut changed = false;
    for (name, cur) in &current.tenants {
        let Some(tk) = new.tenants.get_mut(name) else {
            continue;
        };
        for s in &mut tk.seeds {
            if let Some(c) = cur.seeds.iter().find(|c| c.version == s.version) {
                if c.encryptions > s.encryptions {
                    s.encryptions = c.encryptions;
                    changed = true;
                }
            }
        }
    }
    changed
}
