//! The working keys: AES-256-GCM data keys, HMAC-SHA256 blind-index and MAC
//! keys, and the fixed-size key wrap used by slots and seeds.
//!
//! # Security
//!
//! The AES key schedule is zeroized on drop (aes-gcm's `zeroize` feature).
//! The pre-keyed HMAC states in [`IndexKey`], [`MacKey`] and [`MacStream`], and
//! every per-message clone of them, are zeroized on drop too: `hmac` 0.13 over
//! `sha2` 0.11 with their `zeroize` feature wipe both hash states of an HMAC.

use std::fmt;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::util::{fill_random, hmac_sha256};
use crate::{KeyError, KEY_LEN};

/// Length of an AES-GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Length of an AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// Length of a wrapped 32-byte key: ciphertext ‖ tag.
pub(crate) const WRAPPED_LEN: usize = KEY_LEN + TAG_LEN;

fn aes256gcm(key: &[u8; KEY_LEN]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

/// An AES-256-GCM key: a tenant's data key (its cipher initialized once), or the
/// vault's state key, which seals every message under a subkey of its own.
///
/// Obtained from [`TenantKeys`](crate::TenantKeys) or
/// [`VaultKeys`](crate::VaultKeys); the key bytes are never exposed.
pub struct DataKey(Mode);

enum Mode {
    /// One key, random 96-bit nonces: counted by the caller (the keyring's counters).
    Direct(Aes256Gcm),
    /// A fresh subkey per message (see [`DataKey::seal`]); `legacy` opens what was
    /// sealed directly under the key before.
    PerMessage {
        key: Zeroizing<[u8; KEY_LEN]>,
        legacy: Aes256Gcm,
    },
}

/// First bytes of a message sealed under a per-message subkey.
pub(crate) const SUBKEY_MAGIC: &[u8; 4] = b"PVS2";
/// Length of the random salt a per-message subkey is derived with.
const SUBKEY_SALT_LEN: usize = 24;

impl DataKey {
    pub(crate) fn from_key(key: &[u8; KEY_LEN]) -> Self {
        DataKey(Mode::Direct(aes256gcm(key)))
    }

    /// A key that seals every message under its own subkey
    /// (`HKDF-SHA256(key, salt = 24 random bytes, info = lp("phonevault/v2/state-subkey"))`),
    /// so that no count of its encryptions is needed: each subkey seals one message,
    /// and 192-bit salts do not collide. For keys that seal without end (the audit
    /// log's state row, once per chain link) and have no counter to keep.
    pub(crate) fn per_message(key: &[u8; KEY_LEN]) -> Self {
        DataKey(Mode::PerMessage {
            key: Zeroizing::new(*key),
            legacy: aes256gcm(key),
        })
    }

    fn subkey(key: &[u8; KEY_LEN], salt: &[u8]) -> Aes256Gcm {
        aes256gcm(&crate::util::hkdf32(
            key,
            salt,
            &[crate::labels::STATE_SUBKEY],
        ))
    }

    /// Encrypts `plaintext` bound to `aad`; returns `nonce(12) ‖ ciphertext ‖ tag(16)`.
    ///
    /// The nonce is 96 random bits from the OS RNG, so one key may seal about
    /// 2^32 messages; the keyring counts encryptions and asks for rotation at
    /// 2^31 ([`Keyring::note_encryptions`](crate::Keyring::note_encryptions)).
    ///
    /// # Errors
    ///
    /// [`KeyError::Rng`] if the OS RNG fails; [`KeyError::Encrypt`] for a
    /// plaintext beyond GCM's limit (64 GiB).
    ///
    /// A per-message key ([`VaultKeys::state`](crate::VaultKeys::state)) returns
    /// `"PVS2" ‖ salt(24) ‖ nonce(12) ‖ ciphertext ‖ tag(16)` instead, sealed under
    /// the subkey of that salt.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        let head = match &self.0 {
            Mode::Direct(_) => 0,
            Mode::PerMessage { .. } => SUBKEY_MAGIC.len() + SUBKEY_SALT_LEN,
        };
        // One allocation of the final size: growing a buffer that holds
        // plaintext would leave copies of it in freed memory.
        let mut out = Vec::with_capacity(head + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.resize(head + NONCE_LEN, 0);
        fill_random(&mut out)?;
        out.extend_from_slice(plaintext);
        let (prefix, rest) = out.split_at_mut(head);
        let (nonce, body) = rest.split_at_mut(NONCE_LEN);
        let nonce = Nonce::from_slice(nonce);
        let tag = match &self.0 {
            Mode::Direct(c) => c.encrypt_in_place_detached(nonce, aad, body),
            Mode::PerMessage { key, .. } => {
                prefix[..SUBKEY_MAGIC.len()].copy_from_slice(SUBKEY_MAGIC);
                Self::subkey(key, &prefix[SUBKEY_MAGIC.len()..])
                    .encrypt_in_place_detached(nonce, aad, body)
            }
        }
        .map_err(|_| KeyError::Encrypt)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts what [`seal`](Self::seal) made with the same `aad`.
    ///
    /// # Errors
    ///
    /// [`KeyError::Decrypt`], opaque, for a wrong key, any modified byte, a
    /// different AAD, or input too short to hold a nonce and a tag.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        match &self.0 {
            Mode::Direct(c) => open_with(c, aad, sealed),
            Mode::PerMessage { key, legacy } => {
                let head = SUBKEY_MAGIC.len() + SUBKEY_SALT_LEN;
                if sealed.len() >= head && sealed.starts_with(SUBKEY_MAGIC) {
                    let (prefix, rest) = sealed.split_at(head);
                    let sub = Self::subkey(key, &prefix[SUBKEY_MAGIC.len()..]);
                    if let Ok(plain) = open_with(&sub, aad, rest) {
                        return Ok(plain);
                    }
                }
                // Sealed directly under the key (before per-message subkeys).
                open_with(legacy, aad, sealed)
            }
        }
    }
}

fn open_with(
    cipher: &Aes256Gcm,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(KeyError::Decrypt);
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut buf = Zeroizing::new(ct.to_vec());
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            aad,
            &mut buf,
            Tag::from_slice(tag),
        )
        .map_err(|_| KeyError::Decrypt)?;
    Ok(buf)
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey").finish_non_exhaustive()
    }
}

/// A tenant's HMAC-SHA256 blind-index key, pre-keyed.
///
/// # Security
///
/// As sensitive as the numbers themselves: with it, every possible phone
/// number can be hashed and matched against the index.
pub struct IndexKey(Hmac<Sha256>);

impl IndexKey {
    pub(crate) fn from_key(key: &[u8; KEY_LEN]) -> Self {
        IndexKey(hmac_sha256(key))
    }

    /// `HMAC-SHA256(key, p1 ‖ p2 ‖ …)` over the **plain** concatenation of
    /// `parts`, as the blind-index spec defines `HMAC(key, "e164:" ‖ E164)`.
    /// The caller's prefix (`"e164:"`) does the domain separation.
    pub fn digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

/// Both hash states of the HMAC wipe themselves on drop (see the module docs).
impl zeroize::ZeroizeOnDrop for IndexKey {}

impl fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexKey").finish_non_exhaustive()
    }
}

/// An HMAC-SHA256 key for row and record MACs, pre-keyed.
pub struct MacKey(Hmac<Sha256>);

impl MacKey {
    pub(crate) fn from_key(key: &[u8; KEY_LEN]) -> Self {
        MacKey(hmac_sha256(key))
    }

    fn keyed(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        for part in parts {
            // Streams lp(part) = u64 LE length ‖ part without building it.
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac
    }

    /// `HMAC-SHA256(key, lp(p1) ‖ lp(p2) ‖ …)` with `lp(x) = u64 LE len(x) ‖ x`,
    /// so that parts cannot slide into each other (`["ab","c"]` ≠ `["a","bc"]`).
    /// Name the table and the row key among the parts.
    pub fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        self.keyed(parts).finalize().into_bytes().into()
    }

    /// Checks `tag` against [`tag`](Self::tag)`(parts)` in constant time.
    ///
    /// # Errors
    ///
    /// [`KeyError::Mac`] if the tag differs or is not 32 bytes long.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> Result<(), KeyError> {
        let expected = self.tag(parts);
        if tag.len() == expected.len() && bool::from(expected.ct_eq(tag)) {
            Ok(())
        } else {
            Err(KeyError::Mac)
        }
    }
}

impl MacKey {
    /// Starts an HMAC over a stream of bytes too large to hold at once (a
    /// backup file): `HMAC-SHA256(key, bytes)` over the **plain** bytes, which
    /// the caller's own framing makes unambiguous. Use only with a key kept
    /// for that one stream format (such as the backup key), never with a row
    /// key, whose tags are over length-prefixed parts.
    pub fn stream(&self) -> MacStream {
        MacStream(self.0.clone())
    }
}

/// Both hash states of the HMAC wipe themselves on drop (see the module docs).
impl zeroize::ZeroizeOnDrop for MacKey {}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MacKey").finish_non_exhaustive()
    }
}

/// An HMAC-SHA256 in progress, from [`MacKey::stream`].
pub struct MacStream(Hmac<Sha256>);

impl MacStream {
    /// Feeds more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The 32-byte tag.
    pub fn finalize(self) -> [u8; 32] {
        self.0.finalize().into_bytes().into()
    }

    /// Checks `tag` against the tag of everything fed, in constant time.
    ///
    /// # Errors
    ///
    /// [`KeyError::Mac`] if the tag differs or is not 32 bytes long.
    pub fn verify(self, tag: &[u8]) -> Result<(), KeyError> {
        let expected = self.finalize();
        if tag.len() == expected.len() && bool::from(expected.ct_eq(tag)) {
            Ok(())
        } else {
            Err(KeyError::Mac)
        }
    }
}

/// Both hash states of the HMAC wipe themselves on drop (see the module docs).
impl zeroize::ZeroizeOnDrop for MacStream {}

impl fmt::Debug for MacStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MacStream").finish_non_exhaustive()
    }
}

/// Wraps a 32-byte key under `kek` with AES-256-GCM and a random nonce.
pub(crate) fn wrap_key(
    kek: &[u8; KEY_LEN],
    aad: &[u8],
    key: &[u8; KEY_LEN],
) -> Result<([u8; NONCE_LEN], [u8; WRAPPED_LEN]), KeyError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let mut wrapped = [0u8; WRAPPED_LEN];
    let (ct, tag_out) = wrapped.split_at_mut(KEY_LEN);
    ct.copy_from_slice(key);
    let tag = aes256gcm(kek)
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, ct)
        .map_err(|_| KeyError::Encrypt)?;
    tag_out.copy_from_slice(&tag);
    Ok((nonce, wrapped))
}

/// Unwraps what [`wrap_key`] made into `out`; `out` is left zeroed on failure.
pub(crate) fn unwrap_key_into(
    kek: &[u8; KEY_LEN],
    aad: &[u8],
    nonce: &[u8; NONCE_LEN],
    wrapped: &[u8; WRAPPED_LEN],
    out: &mut [u8; KEY_LEN],
) -> Result<(), KeyError> {
    let (ct, tag) = wrapped.split_at(KEY_LEN);
    out.copy_from_slice(ct);
    let res = aes256gcm(kek).decrypt_in_place_detached(
        Nonce::from_slice(nonce),
        aad,
        out,
        Tag::from_slice(tag),
    );
    if res.is_err() {
        out.fill(0);
        return Err(KeyError::Decrypt);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> DataKey {
        DataKey::from_key(&[0x42; 32])
    }

    /// Found in review: the vault state key sealed the audit log's state row once per
    /// chain link under one key with random 96-bit nonces, and nothing counted those
    /// encryptions (GCM's bound for random nonces is about 2^32 messages per key). It
    /// now seals every message under a subkey of its own, from a 24-byte random salt.
    #[test]
    fn the_state_key_seals_each_message_under_its_own_subkey() {
        let bytes = [0x42; 32];
        let state = crate::derive_vault_keys(
            &crate::VaultSeed::from_bytes(&[7; 32]),
            &crate::VaultId([1; 16]),
        )
        .state;
        let a = state.seal(b"aad", b"state").unwrap();
        assert!(a.starts_with(SUBKEY_MAGIC), "not a per-message seal");
        let k = DataKey::per_message(&bytes);
        let one = k.seal(b"aad", b"state").unwrap();
        let two = k.seal(b"aad", b"state").unwrap();
        assert_eq!(one.len(), 4 + 24 + NONCE_LEN + 5 + TAG_LEN);
        assert_ne!(one[4..28], two[4..28], "salts repeat");
        // By the construction: HKDF(key, salt, lp(label)) is a plain AES-GCM key.
        let sub = DataKey::from_key(&crate::util::hkdf32(
            &bytes,
            &one[4..28],
            &[crate::labels::STATE_SUBKEY],
        ));
        assert_eq!(sub.open(b"aad", &one[28..]).unwrap().as_slice(), b"state");
        assert_eq!(k.open(b"aad", &one).unwrap().as_slice(), b"state");
        // The base key itself opens none of them; a row sealed before (directly
        // under the key) still opens.
        assert!(DataKey::from_key(&bytes).open(b"aad", &one[28..]).is_err());
        let old = DataKey::from_key(&bytes).seal(b"aad", b"old").unwrap();
        assert_eq!(k.open(b"aad", &old).unwrap().as_slice(), b"old");
        // Tampering, another AAD: the one opaque error.
        for i in [0, 5, 30, one.len() - 1] {
            let mut bad = one.clone();
            bad[i] ^= 1;
            assert!(
                matches!(k.open(b"aad", &bad), Err(KeyError::Decrypt)),
                "byte {i}"
            );
        }
        assert!(matches!(k.open(b"other", &one), Err(KeyError::Decrypt)));
    }

    #[test]
    fn seal_layout_and_nonces() {
        let k = key();
        let a = k.seal(b"aad", b"hello").unwrap();
        let b = k.seal(b"aad", b"hello").unwrap();
        assert_eq!(a.len(), NONCE_LEN + 5 + TAG_LEN);
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN], "nonces must be random");
        assert_eq!(k.open(b"aad", &a).unwrap().as_slice(), b"hello");
    }

    #[test]
    fn open_rejects_short_input() {
        let k = key();
        for len in 0..NONCE_LEN + TAG_LEN {
            assert!(matches!(k.open(b"", &vec![0; len]), Err(KeyError::Decrypt)));
        }
    }

    #[test]
    fn every_flipped_byte_fails_opaquely() {
        let k = key();
        let aad = b"phonevault/v1/record|tenant|42".to_vec();
        let sealed = k.seal(&aad, b"+447700900123").unwrap();
        for i in 0..sealed.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = sealed.clone();
                bad[i] ^= bit;
                assert!(
                    matches!(k.open(&aad, &bad), Err(KeyError::Decrypt)),
                    "byte {i}"
                );
            }
        }
        for i in 0..aad.len() {
            let mut bad = aad.clone();
            bad[i] ^= 0x01;
            assert!(
                matches!(k.open(&bad, &sealed), Err(KeyError::Decrypt)),
                "aad byte {i}"
            );
        }
        assert!(matches!(k.open(&aad[1..], &sealed), Err(KeyError::Decrypt)));
        assert!(matches!(
            k.open(&aad, &sealed[..sealed.len() - 1]),
            Err(KeyError::Decrypt)
        ));
        let other = DataKey::from_key(&[0x43; 32]);
        assert!(matches!(other.open(&aad, &sealed), Err(KeyError::Decrypt)));
    }

    #[test]
    fn mac_tag_is_length_prefixed_and_verifies() {
        let m = MacKey::from_key(&[1; 32]);
        assert_ne!(m.tag(&[b"ab", b"c"]), m.tag(&[b"a", b"bc"]));
        assert_ne!(m.tag(&[b"abc"]), m.tag(&[b"abc", b""]));
        let t = m.tag(&[b"tokens", b"row-1"]);
        assert!(m.verify(&[b"tokens", b"row-1"], &t).is_ok());
        assert!(matches!(
            m.verify(&[b"tokens", b"row-2"], &t),
            Err(KeyError::Mac)
        ));
        assert!(matches!(
            m.verify(&[b"tokens", b"row-1"], &t[..31]),
            Err(KeyError::Mac)
        ));
        let mut bad = t;
        bad[31] ^= 1;
        assert!(matches!(
            m.verify(&[b"tokens", b"row-1"], &bad),
            Err(KeyError::Mac)
        ));
        // The encoding is exactly HMAC(key, lp(p1) ‖ lp(p2)).
        let mut direct = hmac_sha256(&[1; 32]);
        direct.update(&crate::util::lp_concat(&[b"tokens", b"row-1"]));
        assert_eq!(t, <[u8; 32]>::from(direct.finalize().into_bytes()));
    }

    #[test]
    fn mac_stream_is_plain_hmac_in_any_chunks() {
        let m = MacKey::from_key(&[3; 32]);
        let mut whole = m.stream();
        whole.update(b"abcdef");
        let t = whole.finalize();
        let mut parts = m.stream();
        parts.update(b"ab");
        parts.update(b"");
        parts.update(b"cdef");
        parts.verify(&t).unwrap();
        let mut direct = hmac_sha256(&[3; 32]);
        direct.update(b"abcdef");
        assert_eq!(t, <[u8; 32]>::from(direct.finalize().into_bytes()));
        let mut other = m.stream();
        other.update(b"abcdeF");
        assert!(matches!(other.verify(&t), Err(KeyError::Mac)));
        let mut short = m.stream();
        short.update(b"abcdef");
        assert!(matches!(short.verify(&t[..31]), Err(KeyError::Mac)));
    }

    #[test]
    fn index_digest_is_plain_concatenation() {
        let k = IndexKey::from_key(&[2; 32]);
        assert_eq!(
            k.digest(&[b"e164:", b"+15550100"]),
            k.digest(&[b"e164:+15550100"])
        );
        let mut direct = hmac_sha256(&[2; 32]);
        direct.update(b"e164:+15550100");
        assert_eq!(
            k.digest(&[b"e164:+15550100"]),
            <[u8; 32]>::from(direct.finalize().into_bytes())
        );
    }

    #[test]
    fn wrap_round_trip_and_tamper() {
        let kek = [9u8; 32];
        let (nonce, wrapped) = wrap_key(&kek, b"aad", &[5; 32]).unwrap();
        let mut out = [0u8; 32];
        unwrap_key_into(&kek, b"aad", &nonce, &wrapped, &mut out).unwrap();
        assert_eq!(out, [5; 32]);
        for i in 0..WRAPPED_LEN {
            let mut bad = wrapped;
            bad[i] ^= 0x10;
            let mut out = [0u8; 32];
            assert!(unwrap_key_into(&kek, b"aad", &nonce, &bad, &mut out).is_err());
            assert_eq!(out, [0; 32], "no partial plaintext on failure");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn seal_open_round_trip(
            key_bytes in any::<[u8; 32]>(),
            aad in proptest::collection::vec(any::<u8>(), 0..64),
            pt in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let k = DataKey::from_key(&key_bytes);
            let sealed = k.seal(&aad, &pt).unwrap();
            prop_assert_eq!(sealed.len(), NONCE_LEN + pt.len() + TAG_LEN);
            let opened = k.open(&aad, &sealed).unwrap();
            prop_assert_eq!(opened.as_slice(), pt.as_slice());
        }
    }
}
