//! Small building blocks shared by the key types: length-prefixed encoding,
//! HKDF, HMAC and the OS random number generator.
//!
//! HMAC states (and so HKDF's) zeroize on drop: `hmac` 0.13 over `sha2` 0.11 with
//! their `zeroize` feature wipe both hash states of a keyed HMAC when it is dropped,
//! including each per-message clone.

use hmac::digest::FixedOutput;
use hmac::{Hmac, KeyInit, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{KeyError, KEY_LEN};

/// Appends `u64 LE length ‖ bytes` to `out`.
pub(crate) fn push_lp(out: &mut Vec<u8>, part: &[u8]) {
    out.extend_from_slice(&(part.len() as u64).to_le_bytes());
    out.extend_from_slice(part);
}

/// `lp(p1) ‖ lp(p2) ‖ …`: an injective encoding of a list of byte strings, so
/// two different contexts can never produce the same HKDF info, AAD or MAC
/// input.
pub(crate) fn lp_concat(parts: &[&[u8]]) -> Vec<u8> {
    let len = parts.iter().map(|p| 8 + p.len()).sum();
    let mut out = Vec::with_capacity(len);
    for part in parts {
        push_lp(&mut out, part);
    }
    out
}

/// `HKDF-SHA256(ikm, salt, info = lp(info_parts…))`, 32 bytes (RFC 5869: one
/// expand block, `OKM = HMAC(PRK, info ‖ 0x01)` with `PRK = HMAC(salt, ikm)`).
/// Built here on the zeroizing HMAC rather than taken from the `hkdf` crate, whose
/// HMAC states are not wiped; the tests check it against `hkdf`.
pub(crate) fn hkdf32(ikm: &[u8], salt: &[u8], info_parts: &[&[u8]]) -> Zeroizing<[u8; KEY_LEN]> {
    let info = lp_concat(info_parts);
    let mut extract = hmac_sha256(salt);
    extract.update(ikm);
    let mut prk = Zeroizing::new([0u8; KEY_LEN]);
    extract.finalize_into((&mut *prk).into());
    let mut expand = hmac_sha256(prk.as_slice());
    expand.update(&info);
    expand.update(&[1u8]);
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    expand.finalize_into((&mut *okm).into());
    okm
}

/// A keyed HMAC-SHA256 state, to be cloned per message.
pub(crate) fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC accepts keys of any length (RFC 2104 §2).
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    }
}

/// Fills `buf` from the OS random number generator.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), KeyError> {
    OsRng.try_fill_bytes(buf).map_err(|_| KeyError::Rng)
}

/// Lowercase hex, for non-secret identifiers only.
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn lp_concat_is_length_prefixed() {
        assert_eq!(
            lp_concat(&[b"ab", b""]),
            [&[2, 0, 0, 0, 0, 0, 0, 0][..], b"ab", &[0; 8]].concat()
        );
        // The boundary between parts matters.
        assert_ne!(lp_concat(&[b"ab", b"c"]), lp_concat(&[b"a", b"bc"]));
    }

    #[test]
    fn hkdf32_is_hkdf_over_lp_info() {
        let ikm = [0x0b; 22];
        let salt: Vec<u8> = (0u8..=0x0c).collect();
        for (info, ikm) in [(&b"x"[..], &ikm[..]), (&[7u8; 200][..], &[0x42; 100][..])] {
            let ours = hkdf32(ikm, &salt, &[info]);
            let mut expect = [0u8; 32];
            hkdf::Hkdf::<sha2_ref::Sha256>::new(Some(&salt), ikm)
                .expand(&lp_concat(&[info]), &mut expect)
                .unwrap();
            assert_eq!(*ours, expect);
        }
        // RFC 5869 test case 1's PRK and first OKM block, through the same HMAC.
        let mut prk = hmac_sha256(&salt);
        prk.update(&[0x0b; 22]);
        assert_eq!(
            hex_lower(&prk.finalize().into_bytes()),
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
        );
    }

    /// Found in review: the pre-keyed HMAC states behind the index, record-MAC,
    /// row-MAC and backup keys (and every per-message clone of them) were never
    /// wiped, as `hmac` 0.12 / `sha2` 0.10 cannot. Each hash state inside an HMAC
    /// must now zeroize on drop; without the `zeroize` feature of `sha2` this does
    /// not compile.
    #[test]
    fn hmac_hash_states_zeroize_on_drop() {
        fn zeroizes_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        // The two hash states an `Hmac<Sha256>` holds (inner and outer pad).
        zeroizes_on_drop::<<Sha256 as sha2::digest::block_api::EagerHash>::Core>();
        zeroizes_on_drop::<crate::IndexKey>();
        zeroizes_on_drop::<crate::MacKey>();
        zeroizes_on_drop::<crate::MacStream>();
    }

    #[test]
    fn hex_lower_works() {
        assert_eq!(hex_lower(&[0x00, 0xab, 0x7f]), "00ab7f");
    }
}
