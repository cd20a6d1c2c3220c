//! Entry points for the fuzz targets in `fuzz/` and for the corpus replay test.
//!
//! Not a public API: hidden from the docs, and free to change with the targets.
//! Each function takes the fuzzer's bytes, must never panic, and returns a
//! [`Violation`] when an invariant of the code under test breaks; the fuzz target
//! turns that into a crash, the replay test into a failure.
#![doc(hidden)]

use std::fmt;

use crate::{KeyFileKey, KeyPurpose, KeySlot, Keyring, RootKey, SlotKind, VaultId, MAX_SLOTS};

/// A broken invariant, named without any of the input's bytes (the input file is
/// the reproduction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

impl Violation {
    /// A violation with the given description.
    pub fn new(what: impl Into<String>) -> Self {
        Violation(what.into())
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fuzz invariant broken: {}", self.0)
    }
}

impl std::error::Error for Violation {}

/// Returns `Err(Violation)` with `what` unless `cond` holds.
pub fn ensure(cond: bool, what: &str) -> Result<(), Violation> {
    if cond {
        Ok(())
    } else {
        Err(Violation::new(what))
    }
}

/// The key file that opens the key-file slots of the seed keyrings
/// ([`keyring_seeds`]); the fuzzer mutates keyrings around it.
pub const FIXTURE_KEY_FILE: [u8; 32] = [0x42; 32];

/// Keyring and key-slot decoding.
///
/// Invariants: [`Keyring::decode`] never panics, whatever the bytes; a decoded
/// keyring re-encodes to the same bytes (the encoding is canonical, so the MAC over
/// the re-encoded body covers exactly what was read) and decodes to an equal value;
/// it holds at most [`MAX_SLOTS`] slots with distinct ids; opening it with the
/// fixture key file either fails or yields a root key that verifies the keyring and
/// unwraps every live tenant's current keys. A key slot decoded on its own
/// (the same bincode layout as inside a keyring) round-trips too.
///
/// # Errors
///
/// A [`Violation`] naming the broken invariant.
pub fn keyring(data: &[u8]) -> Result<(), Violation> {
    slot(data)?;
    let Ok(ring) = Keyring::decode(data) else {
        return Ok(());
    };
    let encoded = ring.encode();
    ensure(
        encoded == data,
        "a decoded keyring does not re-encode to the bytes it was read from",
    )?;
    let again = Keyring::decode(&encoded)
        .map_err(|_| Violation::new("a re-encoded keyring does not decode"))?;
    ensure(again == ring, "keyring decode(encode(k)) != k")?;
    ensure(ring.slots.len() <= MAX_SLOTS, "more slots than MAX_SLOTS")?;
    for (i, s) in ring.slots.iter().enumerate() {
        ensure(
            ring.slots[..i].iter().all(|o| o.id != s.id),
            "duplicate slot ids accepted",
        )?;
        if let SlotKind::Passphrase { params, .. } = s.kind {
            // Only checked, never run: the parameters may ask for a gibibyte.
            let _ = params.validate();
        }
    }
    let kf = KeyFileKey::from_bytes(&FIXTURE_KEY_FILE)
        .map_err(|_| Violation::new("fixture key file has the wrong length"))?;
    if let Ok(rk) = ring.unlock_key_file(&kf) {
        ensure(
            ring.verify(&rk).is_ok(),
            "an unlocked keyring fails to verify",
        )?;
        for (name, tk) in &ring.tenants {
            if tk.is_shredded() {
                continue;
            }
            for purpose in [KeyPurpose::Data, KeyPurpose::Index] {
                ensure(
                    ring.current_keys(&rk, name, purpose).is_ok(),
                    "a verified keyring holds a tenant whose current keys do not unwrap",
                )?;
            }
        }
    }
    Ok(())
}

/// One key slot in its bincode layout (as inside a keyring, whose decoding also
/// refuses non-canonical bytes): decoding never panics, and a decoded slot decodes
/// to itself after re-encoding.
fn slot(data: &[u8]) -> Result<(), Violation> {
    let config = bincode::config::standard().with_limit::<4096>();
    let Ok((slot, _)) = bincode::decode_from_slice::<KeySlot, _>(data, config) else {
        return Ok(());
    };
    let again = bincode::encode_to_vec(&slot, config)
        .ok()
        .and_then(|bytes| bincode::decode_from_slice::<KeySlot, _>(&bytes, config).ok())
        .map(|(s, _)| s);
    ensure(
        again.as_ref() == Some(&slot),
        "a decoded key slot does not survive re-encoding",
    )
}

/// Seed inputs for the `keyring` target: real keyrings (a key-file slot opened by
/// [`FIXTURE_KEY_FILE`], a cheap passphrase slot, tenants with rotated and shredded
/// keys), and a lone key slot.
///
/// # Errors
///
/// A [`Violation`] if building a seed fails (random number generator).
pub fn keyring_seeds() -> Result<Vec<Vec<u8>>, Violation> {
    let fail = |_| Violation::new("building a seed keyring failed");
    let kf = KeyFileKey::from_bytes(&FIXTURE_KEY_FILE).map_err(fail)?;
    let rk = RootKey::generate();

    let mut empty = Keyring::new(VaultId([1u8; 16]), &rk).map_err(fail)?;
    empty.add_key_file_slot(&rk, &kf).map_err(fail)?;
    empty.seal(&rk);

    let mut full = Keyring::new(VaultId([2u8; 16]), &rk).map_err(fail)?;
    full.add_key_file_slot(&rk, &kf).map_err(fail)?;
    full.add_passphrase_slot(
        &rk,
        &crate::Passphrase::new("fuzz".to_owned()),
        crate::KdfParams::cheap_for_tests(),
    )
    .map_err(fail)?;
    full.add_tenant(&rk, "shop", 1_700_000_000).map_err(fail)?;
    full.rotate(&rk, "shop", KeyPurpose::Data, 1_700_000_100)
        .map_err(fail)?;
    full.rotate(&rk, "shop", KeyPurpose::Index, 1_700_000_200)
        .map_err(fail)?;
    full.add_tenant(&rk, "gone", 1_700_000_000).map_err(fail)?;
    full.shred_tenant("gone").map_err(fail)?;
    full.seal(&rk);

    let lone_slot = full
        .slots
        .first()
        .and_then(|s| bincode::encode_to_vec(s, bincode::config::standard()).ok())
        .ok_or_else(|| Violation::new("no slot to encode"))?;
    Ok(vec![empty.encode(), full.encode(), lone_slot])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_hold_the_invariants() {
        for seed in keyring_seeds().unwrap() {
            keyring(&seed).unwrap();
        }
    }

    #[test]
    fn seeds_unlock_with_the_fixture_key_file() {
        let seeds = keyring_seeds().unwrap();
        let ring = Keyring::decode(&seeds[1]).unwrap();
        let kf = KeyFileKey::from_bytes(&FIXTURE_KEY_FILE).unwrap();
        assert!(ring.unlock_key_file(&kf).is_ok());
    }

    #[test]
    fn truncations_and_flips_never_panic() {
        let seeds = keyring_seeds().unwrap();
        let full = &seeds[1];
        for i in 0..full.len() {
            keyring(&full[..i]).unwrap();
            let mut t = full.clone();
            t[i] ^= 0x80;
            keyring(&t).unwrap();
        }
    }
}
