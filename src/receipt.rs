//! Consent receipts: a machine-readable record of one consent grant, in the shape of
//! the Kantara Initiative Consent Receipt v1.1 (the fields ISO/IEC TS 27560 builds
//! on), signed with the vault's Ed25519 receipt key so that the customer, the company
//! and a regulator can each check it without the vault. Pure: no I/O, no keys stored.
//!
//! A receipt file is one JSON object, written in its canonical form:
//!
//! ```text
//! file      = canonical({"receipt": R, "signature": {"alg": "Ed25519",
//!                                                     "publicKey": hex(pk),
//!                                                     "value": base64(sig)}})
//! sig       = Ed25519-Sign(sk, SIGNING_LABEL ‖ canonical(R))
//! canonical = JSON, object keys sorted by their UTF-8 bytes, no whitespace, strings
//!             escaped as serde_json writes them, integers only (RFC 8785 for the
//!             values receipts hold)
//! ```
//!
//! [`verify`] accepts a file only if its bytes (one final newline allowed) are exactly
//! the canonical form of what they parse to, the signature's key is the one given,
//! and the signature holds: any byte changed fails.
//!
//! ```
//! use phonevault::receipt::{issue, verify, ReceiptFields};
//! let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
//! let fields = ReceiptFields {
//!     receipt_id: "00112233445566778899aabbccddeeff".into(),
//!     time: 1_795_824_000,
//!     jurisdiction: Some("GB".into()),
//!     controller: "Shop Ltd".into(),
//!     contact: "privacy@shop.example".into(),
//!     policy_url: "https://shop.example/privacy".into(),
//!     service: "shop".into(),
//!     record_id: "0190f1c2a3b4c5d6e7f8091a2b3c4d5e".into(),
//!     purposes: vec!["marketing".into()],
//!     source: "newsletter-form".into(),
//!     method: "api".into(),
//! };
//! let file = issue(&key, &fields);
//! let receipt = verify(&file, &key.verifying_key().to_bytes()).unwrap();
//! assert_eq!(receipt["piiPrincipalId"], "0190f1c2a3b4c5d6e7f8091a2b3c4d5e");
//! ```

use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The Kantara Consent Receipt version the receipts follow.
pub const RECEIPT_VERSION: &str = "KI-CR-v1.1.0";
/// Domain separation of the signed bytes: a receipt signature signs nothing else.
pub const SIGNING_LABEL: &[u8] = b"phonevault/v1/consent-receipt\n";
/// Largest receipt file [`verify`] reads.
pub const MAX_RECEIPT: usize = 64 * 1024;

/// What one receipt says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptFields {
    /// Random receipt id (32 hex characters).
    pub receipt_id: String,
    /// Unix seconds of the consent.
    pub time: u64,
    /// Jurisdiction of the controller (e.g. `GB`), if configured.
    pub jurisdiction: Option<String>,
    /// The controller's name.
    pub controller: String,
    /// The controller's privacy contact.
    pub contact: String,
    /// The privacy policy the consent was given under.
    pub policy_url: String,
    /// The service (the tenant).
    pub service: String,
    /// The record's pseudonymous id (the record id; never the number).
    pub record_id: String,
    /// Purposes consented to.
    pub purposes: Vec<String>,
    /// Where the consent came from (the grant's source).
    pub source: String,
    /// How it was collected (`api`, `cli`).
    pub method: String,
}

/// The receipt object (unsigned), Kantara v1.1 field names; `source` is an extension.
pub fn receipt_json(f: &ReceiptFields, public_key: &[u8; 32]) -> Value {
    let purposes: Vec<Value> = f
        .purposes
        .iter()
        .map(|p| {
            let partner = p.strip_prefix("share:");
            let mut v = json!({
                "purpose": p,
                "purposeCategory": [p],
                "consentType": "EXPLICIT",
                "piiCategory": ["phone number"],
                "primaryPurpose": false,
                "termination": "until withdrawn or opted out",
                "thirdPartyDisclosure": partner.is_some(),
            });
            if let Some(partner) = partner {
                v["thirdPartyName"] = json!(partner);
            }
            v
        })
        .collect();
    let mut r = json!({
        "version": RECEIPT_VERSION,
        "consentTimestamp": f.time,
        "collectionMethod": f.method,
        "consentReceiptID": f.receipt_id,
        "publicKey": hex::encode(public_key),
        "language": "en",
        "piiPrincipalId": f.record_id,
        "piiControllers": [{
            "piiController": f.controller,
            "onBehalf": false,
            "contact": f.contact,
            "piiControllerUrl": f.policy_url,
        }],
        "policyUrl": f.policy_url,
        "services": [{"service": f.service, "purposes": purposes}],
        "sensitive": false,
        "spiCat": [],
        "source": f.source,
    });
    if let Some(j) = &f.jurisdiction {
        r["jurisdiction"] = json!(j);
    }
    r
}

/// The canonical bytes of `v` (see the module docs).
pub fn canonical(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(&Value::String(k.clone()), out);
                out.push(b':');
                write_canonical(&m[k], out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out);
            }
            out.push(b']');
        }
        // Scalars: serde_json's own form (no whitespace, one escaping).
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

fn signed_bytes(receipt: &Value) -> Vec<u8> {
    let mut m = SIGNING_LABEL.to_vec();
    m.extend_from_slice(&canonical(receipt));
    m
}

/// The SHA-256 of a receipt file's bytes, stored with the record to list its receipts.
pub fn digest(file: &[u8]) -> [u8; 32] {
    Sha256::digest(file).into()
}

/// Builds, signs and encodes a receipt: the bytes of its file (canonical JSON).
pub fn issue(key: &SigningKey, f: &ReceiptFields) -> Vec<u8> {
    let pk = key.verifying_key().to_bytes();
    let receipt = receipt_json(f, &pk);
    let sig = key.sign(&signed_bytes(&receipt));
    let doc = json!({
        "receipt": receipt,
        "signature": {
            "alg": "Ed25519",
            "publicKey": hex::encode(pk),
            "value": base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
        },
    });
    canonical(&doc)
}

/// Why a receipt did not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Not a receipt file: not JSON of the receipt's shape, not canonical, too large.
    #[error("not a phonevault consent receipt (malformed, not in canonical form, or changed)")]
    Malformed,
    /// Signed by another key than the one given.
    #[error("the receipt is signed by another key than the one given: check --public-key (`phonevault receipt public-key` of the vault that issued it)")]
    OtherKey,
    /// The signature does not hold: the receipt was changed.
    #[error("the receipt's signature does not verify: it was changed after it was issued")]
    BadSignature,
    /// Not an Ed25519 public key.
    #[error(
        "invalid public key: give the 64 hexadecimal characters of `phonevault receipt public-key`"
    )]
    PublicKey,
}

/// Checks a receipt file against `public_key`; returns the receipt object.
///
/// # Errors
/// [`ReceiptError`].
pub fn verify(file: &[u8], public_key: &[u8; 32]) -> Result<Value, ReceiptError> {
    if file.len() > MAX_RECEIPT {
        return Err(ReceiptError::Malformed);
    }
    let body = file.strip_suffix(b"\n").unwrap_or(file);
    let doc: Value = serde_json::from_slice(body).map_err(|_| ReceiptError::Malformed)?;
    if canonical(&doc) != body {
        return Err(ReceiptError::Malformed);
    }
    let obj: &Map<String, Value> = doc.as_object().ok_or(ReceiptError::Malformed)?;
    let (Some(receipt), Some(sig), 2) = (obj.get("receipt"), obj.get("signature"), obj.len())
    else {
        return Err(ReceiptError::Malformed);
    };
    if sig["alg"] != "Ed25519" || !receipt.is_object() {
        return Err(ReceiptError::Malformed);
    }
    let vk = VerifyingKey::from_bytes(public_key).map_err(|_| ReceiptError::PublicKey)?;
    let pk_hex = hex::encode(public_key);
    if sig["publicKey"] != pk_hex.as_str() || receipt["publicKey"] != pk_hex.as_str() {
        return Err(ReceiptError::OtherKey);
    }
    let value = sig["value"].as_str().ok_or(ReceiptError::Malformed)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|_| ReceiptError::Malformed)?;
    let bytes: [u8; 64] = bytes.try_into().map_err(|_| ReceiptError::Malformed)?;
    let sig = ed25519_dalek::Signature::from_bytes(&bytes);
    vk.verify(&signed_bytes(receipt), &sig)
        .map_err(|_| ReceiptError::BadSignature)?;
    Ok(receipt.clone())
}

/// Parses a public key given as 64 hexadecimal characters (surrounding whitespace
/// ignored).
///
/// # Errors
/// [`ReceiptError::PublicKey`].
pub fn parse_public_key(s: &str) -> Result<[u8; 32], ReceiptError> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut k).map_err(|_| ReceiptError::PublicKey)?;
    VerifyingKey::from_bytes(&k).map_err(|_| ReceiptError::PublicKey)?;
    Ok(k)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn fields() -> ReceiptFields {
        ReceiptFields {
            receipt_id: "00112233445566778899aabbccddeeff".into(),
            time: 1_795_824_000,
            jurisdiction: None,
            controller: "Shop \"Ltd\"".into(),
            contact: "privacy@shop.example".into(),
            policy_url: "https://shop.example/privacy".into(),
            service: "shop".into(),
            record_id: "0190f1c2a3b4c5d6e7f8091a2b3c4d5e".into(),
            purposes: vec!["marketing".into(), "share:acme".into()],
            source: "web-signup".into(),
            method: "cli".into(),
        }
    }

    #[test]
    fn every_byte_changed_fails() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let pk = key.verifying_key().to_bytes();
        let file = issue(&key, &fields());
        let r = verify(&file, &pk).unwrap();
        assert_eq!(r["services"][0]["purposes"][1]["thirdPartyName"], "acme");
        assert!(r.get("jurisdiction").is_none());
        let mut with_newline = file.clone();
        with_newline.push(b'\n');
        assert!(verify(&with_newline, &pk).is_ok());
        for i in 0..file.len() {
            for flip in [1u8, 0x20] {
                let mut bad = file.clone();
                bad[i] ^= flip;
                assert!(verify(&bad, &pk).is_err(), "byte {i} ^ {flip}");
            }
        }
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes();
        assert_eq!(verify(&file, &other), Err(ReceiptError::OtherKey));
    }

    #[test]
    fn canonical_form_sorts_keys_and_drops_whitespace() {
        let v: Value =
            serde_json::from_str(r#"{ "b": [1, {"d": "x\"y", "c": true}], "a": null }"#).unwrap();
        assert_eq!(
            canonical(&v),
            br#"{"a":null,"b":[1,{"c":true,"d":"x\"y"}]}"#.to_vec()
        );
    }

    #[test]
    fn a_resigned_receipt_under_another_key_is_refused() {
        // Someone re-signs a changed receipt with their own key and names it.
        let ours = SigningKey::from_bytes(&[1; 32]);
        let theirs = SigningKey::from_bytes(&[2; 32]);
        let mut f = fields();
        f.purposes = vec!["otp".into()];
        let forged = issue(&theirs, &f);
        assert_eq!(
            verify(&forged, &ours.verifying_key().to_bytes()),
            Err(ReceiptError::OtherKey)
        );
        assert!(parse_public_key("zz").is_err());
        let hexk = hex::encode(ours.verifying_key().to_bytes());
        assert_eq!(
            parse_public_key(&format!(" {hexk}\n")).unwrap(),
            ours.verifying_key().to_bytes()
        );
    }
}
