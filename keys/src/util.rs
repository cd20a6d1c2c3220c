//! Small building blocks shared by the key types: length-prefixed encoding,
//! HKDF, HMAC and the OS random number generator.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
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

/// `HKDF-SHA256(ikm, salt, info = lp(info_parts…))`, 32 bytes.
pub(crate) fn hkdf32(ikm: &[u8], salt: &[u8], info_parts: &[&[u8]]) -> Zeroizing<[u8; KEY_LEN]> {
    let info = lp_concat(info_parts);
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    match hk.expand(&info, okm.as_mut_slice()) {
        Ok(()) => okm,
        // HKDF-SHA256 can produce up to 255 * 32 bytes; we ask for 32.
        Err(_) => unreachable!("HKDF-SHA256 output length 32 is always valid"),
    }
}

/// A keyed HMAC-SHA256 state, to be cloned per message.
pub(crate) fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
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
        let ours = hkdf32(&ikm, &salt, &[b"x"]);
        let mut expect = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&salt), &ikm)
            .expand(&lp_concat(&[b"x"]), &mut expect)
            .unwrap();
        assert_eq!(*ours, expect);
    }

    #[test]
    fn hex_lower_works() {
        assert_eq!(hex_lower(&[0x00, 0xab, 0x7f]), "00ab7f");
    }
}
