//! The record format: pure functions over bytes.
//!
//! A stored record is an envelope around one AES-256-GCM ciphertext that holds the
//! whole record body (the number, its consents with their history, opt-outs and
//! dates). Only the record id, the key versions and the index keys stay outside.
//!
//! ```text
//! envelope = format (1) ‖ data key version (u32 BE) ‖ index key version (u32 BE)
//!            ‖ nonce (12) ‖ ciphertext ‖ tag (16)
//! aad      = lp(RECORD_AAD_LABEL) ‖ lp(format) ‖ lp(data key version)
//!            ‖ lp(index key version) ‖ lp(tenant id) ‖ lp(record id)
//! body     = BODY_VERSION (1) ‖ bincode-2(RecordBody)
//! ```
//!
//! `lp(x)` is the length of `x` as u64 little-endian followed by `x`, so two different
//! contexts can never produce the same AAD bytes.
//!
//! Nothing here does I/O; `store` moves the bytes and `vault` holds the keys.

use bincode::{Decode, Encode};
use phonevault_keys::{DataKey, IndexKey, KeyError};
use zeroize::{Zeroize, Zeroizing};

/// Version of the envelope layout.
pub const ENVELOPE_VERSION: u8 = 1;
/// Version of the encoded record body inside the ciphertext.
pub const BODY_VERSION: u8 = 1;
/// Domain label of the record AAD.
pub const RECORD_AAD_LABEL: &[u8] = b"phonevault/v1/record-aad";
/// Domain prefix of the exact-match blind index input (`"e164:" ‖ E.164`).
pub const EXACT_INDEX_PREFIX: &[u8] = b"e164:";
/// Domain prefix of the last-4 partial index input.
pub const LAST4_INDEX_PREFIX: &[u8] = b"last4:";
/// Upper bound on a decoded record body; a real body is a few hundred bytes.
pub const MAX_BODY_LEN: usize = 64 * 1024;
/// Upper bound on consents, grants and opt-outs a body may carry.
pub const MAX_CONSENTS: usize = 1024;
/// Length of the exact-match blind index in bytes (128 bits, never truncated).
pub const EXACT_INDEX_LEN: usize = 16;

const HEADER_LEN: usize = 1 + 4 + 4;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A record id: 16 bytes, time-ordered prefix (so inserts append) and random suffix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(pub [u8; 16]);

impl RecordId {
    /// Makes a new id from the current time in milliseconds and 10 random bytes.
    pub fn generate(now_ms: u64) -> RecordId {
        let mut id = [0u8; 16];
        id[..6].copy_from_slice(&now_ms.to_be_bytes()[2..]);
        rand::Rng::fill(&mut rand::thread_rng(), &mut id[6..]);
        RecordId(id)
    }

    /// Parses the 32-character lowercase hex form.
    pub fn parse(s: &str) -> Option<RecordId> {
        if s.len() != 32 {
            return None;
        }
        let mut id = [0u8; 16];
        hex::decode_to_slice(s, &mut id).ok()?;
        Some(RecordId(id))
    }
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordId({self})")
    }
}

/// One grant of consent for one purpose. Withdrawal is recorded, never deleted, so the
/// history proves what was consented and when.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Grant {
    /// The declared purpose (e.g. `otp`, `share:acme`).
    pub purpose: String,
    /// Unix seconds of the grant.
    pub granted_at: u64,
    /// Where the consent came from (e.g. `web-signup-2026-03`).
    pub source: String,
    /// Unix seconds of the withdrawal, if withdrawn.
    pub withdrawn_at: Option<u64>,
}

/// An opt-out: for one purpose, or for everything when `purpose` is `None`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct OptOut {
    /// The purpose opted out of, or `None` for all purposes.
    pub purpose: Option<String>,
    /// Unix seconds of the opt-out.
    pub at: u64,
    /// Unix seconds when an explicit new consent lifted it; `None` while in force.
    pub lifted_at: Option<u64>,
}

impl OptOut {
    /// Whether the opt-out is in force and covers `purpose`.
    pub fn covers(&self, purpose: &str) -> bool {
        self.lifted_at.is_none() && self.purpose.as_deref().is_none_or(|p| p == purpose)
    }

    /// Whether this is an opt-out of everything still in force.
    pub fn is_total(&self) -> bool {
        self.lifted_at.is_none() && self.purpose.is_none()
    }
}

/// Everything the vault holds about one number, encrypted as one AEAD ciphertext.
///
/// # Security
/// Holds a plaintext phone number: it is zeroized on drop and its `Debug` prints no
/// field values.
#[derive(Clone, PartialEq, Eq, Encode, Decode)]
pub struct RecordBody {
    /// The number in E.164.
    pub e164: String,
    /// Country calling code, kept for statistics and masking.
    pub country_code: u16,
    /// ISO 3166 region of the number (`"GB"`), empty for non-geographic numbers.
    pub region: String,
    /// Number type as a libphonenumber name index (see `phone::NumberKind`).
    pub kind: u8,
    /// Every grant, live or withdrawn, in order.
    pub grants: Vec<Grant>,
    /// Opt-outs, in force or lifted (kept as history).
    pub opt_outs: Vec<OptOut>,
    /// Unix seconds when the record was created.
    pub created_at: u64,
    /// Unix seconds of the last change.
    pub updated_at: u64,
    /// Unix seconds of the last verification of the number, if ever.
    pub verified_at: Option<u64>,
}

impl std::fmt::Debug for RecordBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBody").finish_non_exhaustive()
    }
}

impl Drop for RecordBody {
    fn drop(&mut self) {
        self.e164.zeroize();
    }
}

impl RecordBody {
    /// Whether a live (granted, not withdrawn, not opted out) consent exists for `purpose`.
    pub fn has_live_consent(&self, purpose: &str) -> bool {
        !self.opted_out(purpose)
            && self
                .grants
                .iter()
                .any(|g| g.purpose == purpose && g.withdrawn_at.is_none())
    }

    /// Whether an opt-out in force covers `purpose`.
    pub fn opted_out(&self, purpose: &str) -> bool {
        self.opt_outs.iter().any(|o| o.covers(purpose))
    }

    /// Whether the number opted out of everything (a suppression entry).
    pub fn suppressed(&self) -> bool {
        self.opt_outs.iter().any(OptOut::is_total)
    }

    /// Whether any live consent exists (the record is usable for something).
    pub fn is_live(&self) -> bool {
        self.grants
            .iter()
            .any(|g| g.withdrawn_at.is_none() && !self.opted_out(&g.purpose))
    }

    /// Withdraws the live grant for `purpose`. Returns whether it changed.
    pub fn withdraw(&mut self, purpose: &str, now: u64) -> bool {
        let mut changed = false;
        for g in &mut self.grants {
            if g.purpose == purpose && g.withdrawn_at.is_none() {
                g.withdrawn_at = Some(now);
                changed = true;
            }
        }
        if changed {
            self.updated_at = now;
        }
        changed
    }

    /// Opts out of `purpose` (or of everything with `None`): records the opt-out and
    /// withdraws the covered grants. Returns whether it changed.
    pub fn opt_out(&mut self, purpose: Option<&str>, now: u64) -> bool {
        // Record a per-purpose opt-out even under an opt-out of everything: lifting
        // the latter (an explicit consent for another purpose) must not lift it.
        let already = self
            .opt_outs
            .iter()
            .any(|o| o.lifted_at.is_none() && o.purpose.as_deref() == purpose);
        let purposes: Vec<String> = self
            .grants
            .iter()
            .filter(|g| g.withdrawn_at.is_none() && purpose.is_none_or(|p| p == g.purpose))
            .map(|g| g.purpose.clone())
            .collect();
        let mut changed = false;
        for p in purposes {
            changed |= self.withdraw(&p, now);
        }
        if !already {
            self.opt_outs.push(OptOut {
                purpose: purpose.map(str::to_owned),
                at: now,
                lifted_at: None,
            });
            changed = true;
        }
        if changed {
            self.updated_at = now;
        }
        changed
    }

    /// Lifts the opt-outs that an explicit new consent for `purpose` overrides: the
    /// opt-out of that purpose and an opt-out of everything. Returns whether it changed.
    pub fn lift_opt_outs(&mut self, purpose: &str, now: u64) -> bool {
        let mut changed = false;
        for o in &mut self.opt_outs {
            if o.lifted_at.is_none() && o.purpose.as_deref().is_none_or(|p| p == purpose) {
                o.lifted_at = Some(now);
                changed = true;
            }
        }
        changed
    }

    /// Adds a live grant for `purpose` unless one exists. Returns whether it changed.
    pub fn grant(&mut self, purpose: &str, source: &str, now: u64) -> bool {
        if self
            .grants
            .iter()
            .any(|g| g.purpose == purpose && g.withdrawn_at.is_none())
        {
            return false;
        }
        self.grants.push(Grant {
            purpose: purpose.to_owned(),
            granted_at: now,
            source: source.to_owned(),
            withdrawn_at: None,
        });
        self.updated_at = now;
        true
    }

    /// The latest consent or verification time, from which retention is counted.
    pub fn last_activity(&self) -> u64 {
        let g = self.grants.iter().map(|g| g.granted_at).max().unwrap_or(0);
        g.max(self.verified_at.unwrap_or(0)).max(self.created_at)
    }
}

/// Why a record could not be decoded or opened.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The bytes are not a record of a known format (truncated, unknown version,
    /// oversized, or malformed inside the ciphertext).
    #[error("corrupt record: the stored bytes are not a valid phonevault record; restore the vault from a backup or erase the record")]
    Corrupt,
    /// Authentication failed: wrong key, tampered bytes, or a ciphertext moved from
    /// another record or tenant.
    #[error("record failed authentication: it was tampered with, moved, or encrypted under a key this vault no longer has")]
    Decrypt,
    /// Encryption failed (random number generator).
    #[error("could not encrypt the record: {0}")]
    Encrypt(#[source] KeyError),
}

/// The parsed plaintext header of a stored record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Envelope format version.
    pub format: u8,
    /// Version of the tenant data key that sealed the body.
    pub data_key_version: u32,
    /// Version of the tenant index key its index entries were computed with.
    pub index_key_version: u32,
}

fn lp(out: &mut Vec<u8>, part: &[u8]) {
    out.extend_from_slice(&(part.len() as u64).to_le_bytes());
    out.extend_from_slice(part);
}

/// Builds the AAD that binds a ciphertext to its place and format.
pub fn record_aad(header: &Header, tenant_id: u32, id: &RecordId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(128);
    lp(&mut aad, RECORD_AAD_LABEL);
    lp(&mut aad, &[header.format]);
    lp(&mut aad, &header.data_key_version.to_be_bytes());
    lp(&mut aad, &header.index_key_version.to_be_bytes());
    lp(&mut aad, &tenant_id.to_be_bytes());
    lp(&mut aad, &id.0);
    aad
}

fn body_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_BODY_LEN>()
}

/// Encodes a body: version byte, then bincode 2. The result holds the plaintext number.
pub fn encode_body(body: &RecordBody) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(128));
    out.push(BODY_VERSION);
    // Encoding into a Vec cannot fail for these types; a failure would only come from
    // the size limit, which a body built by this crate never reaches.
    if bincode::encode_into_std_write(body, &mut *out, body_config()).is_err() {
        out.truncate(1);
    }
    out
}

/// Decodes a body, capping every length it reads. Never panics.
pub fn decode_body(bytes: &[u8]) -> Result<RecordBody, RecordError> {
    let (&version, rest) = bytes.split_first().ok_or(RecordError::Corrupt)?;
    if version != BODY_VERSION || rest.len() > MAX_BODY_LEN {
        return Err(RecordError::Corrupt);
    }
    let (body, used): (RecordBody, usize) =
        bincode::decode_from_slice(rest, body_config()).map_err(|_| RecordError::Corrupt)?;
    if used != rest.len()
        || body.grants.len() > MAX_CONSENTS
        || body.opt_outs.len() > MAX_CONSENTS
        || body.e164.len() > 20
        || body.region.len() > 3
    {
        return Err(RecordError::Corrupt);
    }
    Ok(body)
}

/// Parses the plaintext header of a stored record.
pub fn parse_header(stored: &[u8]) -> Result<Header, RecordError> {
    if stored.len() < HEADER_LEN + NONCE_LEN + TAG_LEN {
        return Err(RecordError::Corrupt);
    }
    let format = stored[0];
    if format != ENVELOPE_VERSION {
        return Err(RecordError::Corrupt);
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&stored[1..5]);
    let data_key_version = u32::from_be_bytes(v);
    v.copy_from_slice(&stored[5..9]);
    let index_key_version = u32::from_be_bytes(v);
    Ok(Header {
        format,
        data_key_version,
        index_key_version,
    })
}

/// Seals a body into a stored record.
pub fn seal(
    key: &DataKey,
    data_key_version: u32,
    index_key_version: u32,
    tenant_id: u32,
    id: &RecordId,
    body: &RecordBody,
) -> Result<Vec<u8>, RecordError> {
    let header = Header {
        format: ENVELOPE_VERSION,
        data_key_version,
        index_key_version,
    };
    let plain = encode_body(body);
    let aad = record_aad(&header, tenant_id, id);
    let sealed = key.seal(&aad, &plain).map_err(RecordError::Encrypt)?;
    let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(&data_key_version.to_be_bytes());
    out.extend_from_slice(&index_key_version.to_be_bytes());
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a stored record with the data key of its header's version.
pub fn open(
    key: &DataKey,
    tenant_id: u32,
    id: &RecordId,
    stored: &[u8],
) -> Result<RecordBody, RecordError> {
    let header = parse_header(stored)?;
    let aad = record_aad(&header, tenant_id, id);
    let plain = key
        .open(&aad, &stored[HEADER_LEN..])
        .map_err(|_| RecordError::Decrypt)?;
    decode_body(&plain)
}

/// The exact-match blind index of a number: `HMAC(index key, "e164:" ‖ E.164)`,
/// truncated to 128 bits (never further: it is the uniqueness key).
pub fn exact_digest(key: &IndexKey, e164: &str) -> [u8; EXACT_INDEX_LEN] {
    let full = key.digest(&[EXACT_INDEX_PREFIX, e164.as_bytes()]);
    let mut out = [0u8; EXACT_INDEX_LEN];
    out.copy_from_slice(&full[..EXACT_INDEX_LEN]);
    out
}

/// The last-4 partial index: `HMAC(index key, "last4:" ‖ country code ‖ ":" ‖ last 4
/// digits)`, truncated to `bits` bits (the rest zeroed), 1 ≤ bits ≤ 32.
pub fn last4_digest(key: &IndexKey, country_code: u16, last4: &str, bits: u8) -> [u8; 4] {
    let cc = country_code.to_string();
    let full = key.digest(&[LAST4_INDEX_PREFIX, cc.as_bytes(), b":", last4.as_bytes()]);
    truncate_bits(&full, bits)
}

/// Keeps the first `bits` bits of `full` (clamped to 1..=32) in a 4-byte array.
pub fn truncate_bits(full: &[u8; 32], bits: u8) -> [u8; 4] {
    let bits = u32::from(bits.clamp(1, 32));
    let mut v = u32::from_be_bytes([full[0], full[1], full[2], full[3]]);
    if bits < 32 {
        v &= !(u32::MAX >> bits);
    }
    v.to_be_bytes()
}

/// Picks the last-4 index length for an expected row count, after CipherSweet's
/// planning: about `rows / 2^bits` candidates per lookup, aiming for at least 2 and
/// fewer than √rows. Returns (bits, expected candidates).
pub fn plan_last4_bits(expected_rows: u64) -> (u8, f64) {
    let rows = expected_rows.max(4) as f64;
    // Largest L with rows / 2^L >= 2; beyond 14 bits the 10^4-value domain is
    // exhausted anyway, so more bits only add leakage.
    let bits = ((rows / 2.0).log2().floor() as i64).clamp(1, 14) as u8;
    let candidates = rows / f64::from(1u32 << bits);
    (bits, candidates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonevault_keys::{derive_tenant_keys, TenantSeed, VaultId};
    use proptest::prelude::*;

    fn keys() -> phonevault_keys::TenantKeys {
        let seed = TenantSeed::from_bytes(&[7u8; 32]);
        derive_tenant_keys(&seed, &VaultId([1u8; 16]), "acme", 1)
    }

    fn body() -> RecordBody {
        RecordBody {
            e164: "+447700900123".into(),
            country_code: 44,
            region: "GB".into(),
            kind: 1,
            grants: vec![Grant {
                purpose: "otp".into(),
                granted_at: 10,
                source: "web".into(),
                withdrawn_at: None,
            }],
            opt_outs: vec![],
            created_at: 10,
            updated_at: 10,
            verified_at: None,
        }
    }

    #[test]
    fn seal_open_round_trip() {
        let k = keys();
        let id = RecordId([3u8; 16]);
        let stored = seal(&k.data, 1, 1, 9, &id, &body()).unwrap();
        assert_eq!(open(&k.data, 9, &id, &stored).unwrap(), body());
    }

    #[test]
    fn moved_ciphertext_fails() {
        let k = keys();
        let id = RecordId([3u8; 16]);
        let stored = seal(&k.data, 1, 1, 9, &id, &body()).unwrap();
        assert!(matches!(
            open(&k.data, 9, &RecordId([4u8; 16]), &stored),
            Err(RecordError::Decrypt)
        ));
        assert!(matches!(
            open(&k.data, 8, &id, &stored),
            Err(RecordError::Decrypt)
        ));
    }

    #[test]
    fn every_flipped_byte_is_rejected() {
        let k = keys();
        let id = RecordId([3u8; 16]);
        let stored = seal(&k.data, 1, 1, 9, &id, &body()).unwrap();
        for i in 0..stored.len() {
            let mut t = stored.clone();
            t[i] ^= 0x01;
            assert!(open(&k.data, 9, &id, &t).is_err(), "byte {i}");
        }
    }

    #[test]
    fn debug_hides_the_number() {
        assert!(!format!("{:?}", body()).contains("7700"));
    }

    #[test]
    fn consent_rules() {
        let mut b = body();
        assert!(b.has_live_consent("otp"));
        assert!(!b.has_live_consent("marketing"));
        assert!(
            !b.grant("otp", "again", 20),
            "a live grant is not duplicated"
        );
        assert!(b.grant("marketing", "form", 20));
        assert!(b.opt_out(Some("marketing"), 25));
        assert!(!b.has_live_consent("marketing"));
        assert!(b.has_live_consent("otp"));
        assert!(!b.suppressed());
        assert!(b.opt_out(None, 30));
        assert!(!b.has_live_consent("otp"));
        assert!(b.suppressed());
        assert!(!b.is_live());
        assert!(!b.opt_out(None, 31), "opting out twice changes nothing");
        assert!(b.lift_opt_outs("otp", 40));
        assert!(!b.suppressed());
        assert!(b.opted_out("marketing"), "the per-purpose opt-out stays");
        assert!(b.grant("otp", "form", 40));
        assert!(b.has_live_consent("otp"));
        // history is kept
        assert_eq!(b.grants.iter().filter(|g| g.purpose == "otp").count(), 2);
        assert_eq!(b.opt_outs.len(), 2);
    }

    #[test]
    fn last4_planning() {
        let (bits, c) = plan_last4_bits(1_000_000);
        assert_eq!(bits, 14);
        assert!((2.0..1000.0).contains(&c));
        let (bits, c) = plan_last4_bits(1000);
        assert_eq!(bits, 8);
        assert!((2.0..32.0).contains(&c));
        assert_eq!(truncate_bits(&[0xff; 32], 4), [0xf0, 0, 0, 0]);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_body(&bytes);
            let _ = parse_header(&bytes);
        }

        #[test]
        fn body_round_trip(e in "\\+[1-9][0-9]{6,14}", p in "[a-z]{1,12}", s in "[ -~]{0,40}", t in any::<u64>()) {
            let mut b = body();
            b.e164 = e;
            b.grant(&p, &s, t);
            let enc = encode_body(&b);
            prop_assert_eq!(decode_body(&enc).unwrap(), b);
        }
    }
}
