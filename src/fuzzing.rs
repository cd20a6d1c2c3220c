//! Entry points for the fuzz targets in `fuzz/` and for the corpus replay test
//! (`tests/fuzz_corpus.rs`). Not a public API: hidden from the docs, free to change
//! with the targets.
//!
//! Each target function takes the fuzzer's bytes, must never panic, and returns a
//! [`Violation`] when an invariant of the code under test breaks; the fuzz target
//! turns that into a crash, the replay test into a failure. Violations name what
//! broke, never the input (the input file is the reproduction).
//!
//! | target | function | code under test |
//! |---|---|---|
//! | `phone` | [`phone`] | [`crate::phone::normalize`], `report`, `mask` |
//! | `record` | [`record`] | [`crate::record::decode_body`] / `encode_body`, the policy methods of `RecordBody` |
//! | `envelope` | [`envelope`] | [`crate::record::parse_header`], `open`, `seal` |
//! | `keyring` | [`phonevault_keys::fuzzing::keyring`] | keyring and key-slot decoding |
//! | `http_body` | [`http_body`] | the request types of every socket API route, through the handlers' own parser |
//! | `csv_import` | [`csv_import`] | [`crate::vault::Vault::import`] over an in-memory store |
//! | `ops` | [`ops`] | vault operations against a model of the policy ([`run_ops`]; also `tests/model.rs`) |
//! | `values` | [`values`] | every parser of a command-line or JSON value ([`crate::policy::values`]) and the CSV column lookup of an import |
#![doc(hidden)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use arbitrary::Unstructured;
use phonevault_keys::{derive_tenant_keys, TenantKeys, TenantSeed, VaultId};

use crate::api::request as api;
use crate::phone::{self, NumberKind};
use crate::policy::{Source, TenantName};
use crate::record::{self, Grant, OptOut, RecordBody, RecordError, RecordId, MAX_BODY_LEN};
use crate::store::MemoryStore;
use crate::vault::{ImportOptions, Reject, Target, Vault, VaultError};

pub use phonevault_keys::fuzzing::{ensure, Violation};

/// The function a fuzz target calls.
pub type FuzzFn = fn(&[u8]) -> Result<(), Violation>;

/// Every fuzz target: its name (the file `fuzz/fuzz_targets/<name>.rs` and the corpus
/// directory `fuzz/corpus/<name>/`) and the function it calls.
pub const TARGETS: &[(&str, FuzzFn)] = &[
    ("phone", phone),
    ("record", record),
    ("envelope", envelope),
    ("keyring", phonevault_keys::fuzzing::keyring),
    ("http_body", http_body),
    ("csv_import", csv_import),
    ("ops", ops),
    ("values", values),
    ("inbound_sms", inbound_sms),
    ("receipt", receipt),
];

// ---------------------------------------------------------------------------------------------
// inbound_sms, receipt
// ---------------------------------------------------------------------------------------------

/// An inbound SMS body (first byte: 0 JSON, else form) through the parser, the keyword
/// classifier and the signature check: never panics, and no error holds a run of five
/// or more digits of the input.
pub fn inbound_sms(data: &[u8]) -> Result<(), Violation> {
    use crate::sms::{self, BodyKind};
    let Some((&k, body)) = data.split_first() else {
        return Ok(());
    };
    let kind = if k == 0 {
        BodyKind::Json
    } else {
        BodyKind::Form
    };
    match sms::parse_inbound(kind, body) {
        Ok(m) => {
            let _ = sms::classify(&m.body);
            let sig = sms::twilio_signature(b"k", "https://example.com/sms", &m.fields);
            ensure(
                sms::check_signature(
                    b"k",
                    "https://example.com/sms",
                    kind,
                    body,
                    &m.fields,
                    Some(&sig),
                )
                .is_ok()
                    || kind == BodyKind::Json,
                "a form's own signature does not check",
            )?;
        }
        Err(e) => {
            let text = e.to_string();
            let digits: String = String::from_utf8_lossy(body)
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            ensure(
                digits.len() < 5 || !text.contains(&digits),
                "an inbound error repeats the input's digits",
            )?;
        }
    }
    Ok(())
}

/// The seed of the receipt key the `receipt` target verifies against.
pub const RECEIPT_FUZZ_SEED: [u8; 32] = [0x5a; 32];

/// A receipt file through [`crate::receipt::verify`]: never panics; what verifies is
/// exactly canonical.
pub fn receipt(data: &[u8]) -> Result<(), Violation> {
    use crate::receipt;
    let key = ed25519_dalek::SigningKey::from_bytes(&RECEIPT_FUZZ_SEED);
    if let Ok(r) = receipt::verify(data, &key.verifying_key().to_bytes()) {
        ensure(r.is_object(), "a verified receipt is not an object")?;
        let body = data.strip_suffix(b"\n").unwrap_or(data);
        let doc: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| Violation::new("verified, yet not JSON"))?;
        ensure(
            receipt::canonical(&doc) == body,
            "verified, yet not canonical",
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// values
// ---------------------------------------------------------------------------------------------

/// Every parser of a command-line or JSON value over the input (as UTF-8, lossily),
/// and the CSV column lookup of an import with the input as both the header line and
/// the column asked for: none panics, and no error message holds a run of five or
/// more of the input's digits (a phone number typed into the wrong field must not
/// come back).
pub fn values(data: &[u8]) -> Result<(), Violation> {
    use crate::policy::{self, values as v};
    let s = String::from_utf8_lossy(data);
    let s = s.as_ref();
    let declared = ["otp".to_owned(), "support".to_owned()];
    let mut errors: Vec<String> = Vec::new();
    let mut note = |e: Option<String>| errors.extend(e);
    note(v::parse_duration(s).err().map(|e| e.to_string()));
    note(v::parse_time(s).err().map(|e| e.to_string()));
    note(v::parse_record_id(s).err().map(|e| e.to_string()));
    note(v::parse_last4(s).err().map(|e| e.to_string()));
    note(v::parse_region(s).err().map(|e| e.to_string()));
    note(v::parse_role(s).err().map(|e| e.to_string()));
    note(v::TenantName::parse(s).err().map(|e| e.to_string()));
    note(v::Source::parse(s).err().map(|e| e.to_string()));
    note(v::check_name("purpose", s).err().map(|e| e.to_string()));
    note(
        policy::Purpose::declared(&declared, s, 0)
            .err()
            .map(|e| e.to_string()),
    );
    if let Ok(n) = s.trim().parse::<u64>() {
        note(v::parse_country_code(n).err().map(|e| e.to_string()));
    }
    if let Ok(secs) = v::parse_duration(s) {
        ensure(secs > 0, "a duration parsed to zero seconds")?;
    }
    if let Ok(t) = v::parse_time(s) {
        ensure(t <= v::MAX_TIME, "a time past the end of year 9999")?;
    }
    if let Ok(source) = v::Source::parse(s) {
        ensure(
            source.as_str() == s
                && s.len() <= v::MAX_SOURCE_LEN
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'),
            "a source accepted outside 1-128 printable ASCII without quote or backslash",
        )?;
    }
    let mut rdr = crate::cli::import_reader(data);
    note(
        crate::cli::import_column(&mut rdr, s)
            .err()
            .map(|e| e.to_string()),
    );
    for run in s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|r| r.len() >= 5)
    {
        ensure(
            errors.iter().all(|m| !m.contains(run)),
            "an error message repeats digits of its input",
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// phone
// ---------------------------------------------------------------------------------------------

/// Splits `RR|input` into a region hint and the input; anything else is an input
/// without a hint.
fn split_region(data: &[u8]) -> (Option<String>, &[u8]) {
    match data {
        [a, b, b'|', rest @ ..] => (Some(String::from_utf8_lossy(&[*a, *b]).into_owned()), rest),
        _ => (None, data),
    }
}

/// Phone normalization. Input: `RR|number` (region hint `RR`) or `number`.
///
/// Invariants: never panics; [`phone::report`] agrees with [`phone::normalize`]; a
/// valid result is `+` and digits (at most 3 of country code and libphonenumber's
/// 17 of national number: German numbers may have more than E.164's 15 in all), of a
/// known kind and of the country code it names, and fits the record format; its
/// E.164 form normalizes to itself (same number, country, region and kind, with or
/// without the hint); its mask shows at most the country code and four digits.
///
/// # Errors
///
/// A [`Violation`] naming the broken invariant.
pub fn phone(data: &[u8]) -> Result<(), Violation> {
    let (hint, input) = split_region(data);
    let hint = hint.as_deref();
    let input = String::from_utf8_lossy(input);
    let report = phone::report(&input, hint);
    let n = match phone::normalize(&input, hint) {
        Ok(n) => n,
        Err(e) => {
            return ensure(
                !report.valid && report.error == Some(e.code()),
                "report() disagrees with normalize() on an invalid input",
            )
        }
    };
    let e164 = n.e164.expose_secret();
    ensure(
        report.valid && report.e164.as_deref() == Some(e164),
        "report() disagrees with normalize() on a valid input",
    )?;
    let digits = e164.strip_prefix('+').unwrap_or_default();
    ensure(
        (1..=3 + 17).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()),
        "the E.164 form is not + and 1 to 20 digits",
    )?;
    let stored = RecordBody {
        e164: e164.to_owned(),
        country_code: n.country_code,
        region: n.region.unwrap_or_default().to_owned(),
        kind: n.kind as u8,
        grants: Vec::new(),
        opt_outs: Vec::new(),
        created_at: 0,
        updated_at: 0,
        verified_at: None,
    };
    ensure(
        record::decode_body(&record::encode_body(&stored))
            .ok()
            .as_ref()
            == Some(&stored),
        "a valid number does not fit the record format",
    )?;
    ensure(
        n.kind != NumberKind::Unknown,
        "a valid number of kind Unknown",
    )?;
    ensure(
        n.e164.country_code() == Some(n.country_code),
        "the E.164 form starts with another country code than the one reported",
    )?;
    for again_hint in [None, hint] {
        let again = phone::normalize(e164, again_hint).map_err(|e| {
            Violation::new(format!(
                "the E.164 form of a valid number is rejected ({})",
                e.code()
            ))
        })?;
        ensure(
            again.e164.expose_secret() == e164,
            "the E.164 form normalizes to another number",
        )?;
        ensure(
            again.country_code == n.country_code
                && again.region == n.region
                && again.kind == n.kind
                && !again.extension_dropped,
            "the E.164 form normalizes with another country, region, kind or an extension",
        )?;
    }
    let masked = phone::mask(&n.e164);
    let shown = masked.chars().filter(char::is_ascii_digit).count();
    ensure(
        shown <= n.country_code.to_string().len() + 4,
        "the mask shows more than the country code and four digits",
    )
}

// ---------------------------------------------------------------------------------------------
// record
// ---------------------------------------------------------------------------------------------

/// Cuts `s` to at most `max` bytes, at a character boundary.
fn clip(mut s: String, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

fn some_string(u: &mut Unstructured<'_>, max: usize) -> String {
    clip(u.arbitrary::<String>().unwrap_or_default(), max)
}

fn some_u64(u: &mut Unstructured<'_>) -> u64 {
    u.arbitrary().unwrap_or_default()
}

/// A record body built from fuzzer bytes, within the limits `decode_body` enforces.
pub fn arbitrary_body(u: &mut Unstructured<'_>) -> RecordBody {
    let e164 = if u.ratio(1u8, 4).unwrap_or(false) {
        some_string(u, 20)
    } else {
        format!("+{}", some_u64(u) % 1_000_000_000_000_000)
    };
    let country_code = u.arbitrary().unwrap_or_default();
    let region = some_string(u, 3);
    let kind = u.arbitrary().unwrap_or_default();
    let grants = (0..u.int_in_range(0..=12u8).unwrap_or(0))
        .map(|_| Grant {
            purpose: some_string(u, 64),
            granted_at: some_u64(u),
            source: some_string(u, 128),
            withdrawn_at: u.arbitrary().unwrap_or_default(),
        })
        .collect();
    let opt_outs = (0..u.int_in_range(0..=6u8).unwrap_or(0))
        .map(|_| OptOut {
            purpose: u
                .arbitrary::<Option<String>>()
                .unwrap_or_default()
                .map(|p| clip(p, 64)),
            at: some_u64(u),
            lifted_at: u.arbitrary().unwrap_or_default(),
        })
        .collect();
    RecordBody {
        e164,
        country_code,
        region,
        kind,
        grants,
        opt_outs,
        created_at: some_u64(u),
        updated_at: some_u64(u),
        verified_at: u.arbitrary().unwrap_or_default(),
    }
}

/// The consent rules on any body: opting out removes consent, an opt-out of
/// everything suppresses, lifting and granting restores consent.
fn check_policy(body: &RecordBody) -> Result<(), Violation> {
    let _ = (body.is_live(), body.suppressed(), body.last_activity());
    let purposes: BTreeSet<&str> = body
        .grants
        .iter()
        .map(|g| g.purpose.as_str())
        .chain(body.opt_outs.iter().filter_map(|o| o.purpose.as_deref()))
        .chain(["otp"])
        .take(8)
        .collect();
    let now = body.updated_at.saturating_add(1);
    for p in purposes {
        let mut b = body.clone();
        b.withdraw(p, now);
        ensure(!b.has_live_consent(p), "consent still live after withdraw")?;
        let mut b = body.clone();
        b.opt_out(Some(p), now);
        ensure(
            !b.has_live_consent(p),
            "consent still live after an opt-out",
        )?;
        ensure(b.opted_out(p), "not opted out after an opt-out")?;
        let mut b = body.clone();
        b.opt_out(None, now);
        ensure(
            b.suppressed() && !b.is_live() && !b.has_live_consent(p),
            "a record opted out of everything is still usable",
        )?;
        ensure(
            !b.opt_out(None, now),
            "opting out of everything twice changed the record",
        )?;
        b.lift_opt_outs(p, now);
        b.grant(p, "fuzz", now);
        ensure(
            b.has_live_consent(p) && !b.suppressed(),
            "an explicit consent after lifting the opt-outs is not live",
        )?;
    }
    Ok(())
}

/// Record body decoding.
///
/// Invariants: [`record::decode_body`] never panics (and allocates within its
/// limits: the fuzzer's RSS limit catches the rest); a body it accepts re-encodes to
/// an equal body; a body built from the bytes round-trips, decode(encode(r)) == r, or
/// is refused when over the size limit; the consent rules hold on every decoded body.
///
/// # Errors
///
/// A [`Violation`] naming the broken invariant.
pub fn record(data: &[u8]) -> Result<(), Violation> {
    if let Ok(body) = record::decode_body(data) {
        let again = record::decode_body(&record::encode_body(&body))
            .map_err(|_| Violation::new("a decoded body does not decode after re-encoding"))?;
        ensure(again == body, "decode(encode(decode(b))) != decode(b)")?;
        check_policy(&body)?;
    }
    let body = arbitrary_body(&mut Unstructured::new(data));
    let encoded = record::encode_body(&body);
    let decoded = record::decode_body(&encoded);
    if encoded.len() > 1 + MAX_BODY_LEN {
        return ensure(decoded.is_err(), "an oversized body was accepted");
    }
    let decoded =
        decoded.map_err(|_| Violation::new("an encoded body within the limits does not decode"))?;
    ensure(decoded == body, "decode(encode(r)) != r")?;
    check_policy(&body)
}

// ---------------------------------------------------------------------------------------------
// envelope
// ---------------------------------------------------------------------------------------------

/// Tenant id the `envelope` target opens records under.
pub const ENVELOPE_TENANT: u32 = 9;
/// Record id the `envelope` target opens records under.
pub const ENVELOPE_RECORD: RecordId = RecordId([3u8; 16]);

/// The fixed tenant keys of the `envelope` target (its seeds are sealed under them).
pub fn envelope_keys() -> &'static TenantKeys {
    static KEYS: OnceLock<TenantKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        derive_tenant_keys(
            &TenantSeed::from_bytes(&[7u8; 32]),
            &VaultId([1u8; 16]),
            "fuzz",
            1,
        )
    })
}

/// The ciphertext envelope of a stored record.
///
/// Invariants: [`record::parse_header`] and [`record::open`] never panic; a header
/// that does not parse makes `open` fail as `Corrupt`; a parsed header agrees with
/// its bytes; a record that opens no longer opens with any byte flipped, nor under
/// another tenant or id, and re-seals to the same body; a body built from the bytes,
/// sealed, opens to itself, and no truncation of it opens.
///
/// # Errors
///
/// A [`Violation`] naming the broken invariant.
pub fn envelope(data: &[u8]) -> Result<(), Violation> {
    let keys = envelope_keys();
    let (tenant, id) = (ENVELOPE_TENANT, ENVELOPE_RECORD);
    let header = record::parse_header(data);
    let opened = record::open(&keys.data, tenant, &id, data);
    if let Ok(h) = &header {
        ensure(
            data.len() >= 1 + 4 + 4 + 12 + 16
                && h.format == record::ENVELOPE_VERSION
                && data.get(1..5) == Some(&h.data_key_version.to_be_bytes()[..])
                && data.get(5..9) == Some(&h.index_key_version.to_be_bytes()[..]),
            "the parsed header differs from its bytes",
        )?;
    } else {
        ensure(
            matches!(opened, Err(RecordError::Corrupt)),
            "a record whose header does not parse is not reported corrupt",
        )?;
    }
    if let (Ok(h), Ok(body)) = (&header, &opened) {
        for i in 0..data.len() {
            let mut t = data.to_vec();
            t[i] ^= 0x01;
            ensure(
                record::open(&keys.data, tenant, &id, &t).is_err(),
                "a record with a flipped byte still opens",
            )?;
        }
        ensure(
            record::open(&keys.data, tenant + 1, &id, data).is_err()
                && record::open(&keys.data, tenant, &RecordId([4u8; 16]), data).is_err(),
            "a record opens under another tenant or id",
        )?;
        let sealed = record::seal(
            &keys.data,
            h.data_key_version,
            h.index_key_version,
            tenant,
            &id,
            body,
        )
        .map_err(|_| Violation::new("re-sealing an opened record failed"))?;
        let again = record::open(&keys.data, tenant, &id, &sealed)
            .map_err(|_| Violation::new("a re-sealed record does not open"))?;
        ensure(&again == body, "a re-sealed record opens to another body")?;
    }

    let mut u = Unstructured::new(data);
    let body = arbitrary_body(&mut u);
    let (dv, iv): (u32, u32) = (
        u.arbitrary().unwrap_or_default(),
        u.arbitrary().unwrap_or_default(),
    );
    if record::encode_body(&body).len() > 1 + MAX_BODY_LEN {
        return Ok(());
    }
    let sealed = record::seal(&keys.data, dv, iv, tenant, &id, &body)
        .map_err(|_| Violation::new("sealing a body within the limits failed"))?;
    let opened = record::open(&keys.data, tenant, &id, &sealed)
        .map_err(|_| Violation::new("a sealed record does not open"))?;
    ensure(opened == body, "open(seal(r)) != r")?;
    let cut = u.choose_index(sealed.len()).unwrap_or(0);
    ensure(
        record::open(&keys.data, tenant, &id, &sealed[..cut]).is_err(),
        "a truncated record opens",
    )
}

// ---------------------------------------------------------------------------------------------
// http_body
// ---------------------------------------------------------------------------------------------

/// The routes whose requests carry data, in the order of the `http_body` target's
/// first byte (taken modulo the length): a JSON body, or the query string of
/// `numbers/{id}` (GET).
pub const HTTP_ENDPOINTS: [&str; 12] = [
    "sys/unseal",
    "numbers",
    "numbers/batch",
    "lookup",
    "lookup/last4",
    "numbers/{id}?",
    "consent/grant",
    "consent/withdraw",
    "opt-out",
    "erase",
    "verify",
    "stats",
];

/// The example number the error hints give ("give E.164 like +447700900123"): part
/// of the messages, not an echo of the input.
const HINT_EXAMPLE: &str = "+447700900123";

/// Whether `message`, less its hint example, holds a run of at least 6 digits that the
/// input holds too (a phone number has more).
fn repeats_digits(message: &str, input: &[u8]) -> bool {
    let message = message.replace(HINT_EXAMPLE, "");
    message
        .as_bytes()
        .split(|b| !b.is_ascii_digit())
        .filter(|run| run.len() >= 6)
        .any(|run| input.windows(run.len()).any(|w| w == run))
}

/// An error message repeats nothing of `input` that could be a number or a secret:
/// no digit run of the input, no quoted string, and between backticks only field
/// names or a punctuation character.
fn check_message(message: &str, input: &[u8]) -> Result<(), Violation> {
    ensure(
        !repeats_digits(message, input),
        "an error message repeats digits of the request",
    )?;
    ensure(
        !message.contains('"'),
        "an error message quotes a value of the request",
    )?;
    for (i, part) in message.split('`').enumerate() {
        if i % 2 == 1 {
            ensure(
                crate::server::field_like(part)
                    || (part.chars().count() == 1 && !part.contains(char::is_alphanumeric)),
                "an error message repeats a value of the request between backticks",
            )?;
        }
    }
    Ok(())
}

fn check_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    then: impl FnOnce(T) -> Result<(), Violation>,
) -> Result<(), Violation> {
    match crate::server::parse_body::<T>(body) {
        Ok(req) => {
            ensure(
                serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok(),
                "a body that is not JSON was accepted",
            )?;
            then(req)
        }
        Err(e) => {
            ensure(
                e.code == "bad_json" && e.status.as_u16() == 400,
                "a malformed body is not a 400 bad_json",
            )?;
            check_message(&e.message, body)
        }
    }
}

fn no_check<T>(_: T) -> Result<(), Violation> {
    Ok(())
}

/// A write's source, parsed as the routes parse it: a refusal repeats no value of the
/// request.
fn check_source(source: Option<&str>, body: &[u8]) -> Result<(), Violation> {
    match api::source_or_default(source) {
        Ok(_) => Ok(()),
        Err(e) => check_message(&e.to_string(), body),
    }
}

/// The record a targeted body names, parsed as the routes parse it (the record id
/// into a `RecordId`): a refusal repeats no value of the request.
fn check_target(req: &impl api::Targeted, body: &[u8]) -> Result<(), Violation> {
    match req.target() {
        Ok(_) => Ok(()),
        Err(e) => check_message(&e.to_string(), body),
    }
}

/// Socket API request bodies. Input: a first byte choosing the route
/// ([`HTTP_ENDPOINTS`], modulo its length), then the body (or query string).
///
/// Invariants: the handlers' parser never panics; what it accepts is JSON; what it
/// refuses is a 400 `bad_json` (`bad_query`) whose message repeats no value of the
/// request (no digits of it, no quoted strings, only field names between
/// backticks); an accepted stats request validates without panicking.
///
/// # Errors
///
/// A [`Violation`] naming the broken invariant.
pub fn http_body(data: &[u8]) -> Result<(), Violation> {
    let Some((&which, body)) = data.split_first() else {
        return Ok(());
    };
    match usize::from(which) % HTTP_ENDPOINTS.len() {
        0 => check_body::<api::UnsealReq>(body, no_check),
        1 => check_body::<api::AddReq>(body, |r| check_source(r.source.as_deref(), body)),
        2 => check_body::<api::BatchReq>(body, |r| check_source(r.source.as_deref(), body)),
        3 => check_body::<api::LookupReq>(body, no_check),
        4 => check_body::<api::Last4Req>(body, no_check),
        5 => {
            let Ok(query) = std::str::from_utf8(body) else {
                return Ok(());
            };
            match crate::server::api::parse_get_query(Some(query)) {
                Ok(_) => Ok(()),
                Err(e) => {
                    ensure(
                        e.code == "bad_query" && e.status.as_u16() == 400,
                        "a malformed query is not a 400 bad_query",
                    )?;
                    check_message(&e.message, body)
                }
            }
        }
        6 => check_body::<api::GrantReq>(body, |r| {
            check_target(&r, body)?;
            check_source(r.source.as_deref(), body)
        }),
        7 => check_body::<api::WithdrawReq>(body, |r| check_target(&r, body)),
        8 => check_body::<api::OptOutReq>(body, |r| check_target(&r, body)),
        9 | 10 => check_body::<api::TargetReq>(body, |r| check_target(&r, body)),
        _ => check_body::<api::StatsReq>(body, |req| {
            let _ = req.query().validate();
            Ok(())
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// csv_import
// ---------------------------------------------------------------------------------------------

/// The tenant of the vault targets, `t`.
fn model_tenant() -> Result<TenantName, Violation> {
    TenantName::parse("t").map_err(|_| Violation::new("the tenant name is refused"))
}

/// A consent source of the vault targets.
fn model_source(s: &str) -> Result<Source, Violation> {
    Source::parse(s).map_err(|_| Violation::new("the source is refused"))
}

/// A fresh in-memory vault with tenant `t` (purposes `otp`, `marketing`; last-4 index).
fn fresh_vault() -> Result<Vault, Violation> {
    let v = Vault::in_memory(Arc::new(MemoryStore::new()))
        .map_err(|_| Violation::new("could not make an in-memory vault"))?;
    let purposes: Vec<String> = MODEL_PURPOSES.iter().map(|s| s.to_string()).collect();
    v.create_tenant(&model_tenant()?, &purposes, Some(1000))
        .map_err(|_| Violation::new("could not create the tenant"))?;
    Ok(v)
}

/// The region hints of the `csv_import` target (low two bits of its first byte).
pub const CSV_REGIONS: [Option<&str>; 4] = [None, Some("GB"), Some("US"), Some("ZZ")];
/// Bit of the `csv_import` first byte that says the input brings its own header line.
pub const CSV_OWN_HEADER: u8 = 4;

/// Records held by tenant `t`, and whether each is readable for `purpose`.
fn held(v: &Vault, purpose: &str) -> Result<(u64, bool), Violation> {
    let ctx = v
        .tenant("t")
        .map_err(|_| Violation::new("the tenant disappeared"))?;
    let (mut n, mut all_live) = (0u64, true);
    v.for_each_record(&ctx, |_, body| {
        n += 1;
        all_live &= body.has_live_consent(purpose);
        Ok(())
    })
    .map_err(|_| Violation::new("a stored record does not open"))?;
    Ok((n, all_live))
}

/// CSV import rows through [`Vault::import`]. Input: a first byte (low bits: region
/// hint from [`CSV_REGIONS`]; [`CSV_OWN_HEADER`]: the rest has its own header line,
/// else a `phone` header is put before it), then the CSV.
///
/// Invariants: the import never panics; an error or a reject repeats no digits of
/// the input; the counts add up, and a first import into an empty tenant creates as
/// many records as the tenant then holds, each consented for the import's purpose;
/// importing the same bytes again creates and merges nothing.
///
/// # Errors
///
/// A [`Violation`] naming the broken invariant.
pub fn csv_import(data: &[u8]) -> Result<(), Violation> {
    let (flags, rest) = data.split_first().map_or((0, data), |(f, r)| (*f, r));
    let region = CSV_REGIONS[usize::from(flags & 3)];
    let input: Vec<u8> = if flags & CSV_OWN_HEADER == 0 {
        [b"phone\n".as_slice(), rest].concat()
    } else {
        rest.to_vec()
    };
    let v = fresh_vault()?;
    let opts = ImportOptions {
        tenant: model_tenant()?,
        purposes: vec!["otp".into()],
        source: model_source("fuzz")?,
        region: region.map(str::to_owned),
    };
    let lines = 1 + input.iter().filter(|&&b| b == b'\n' || b == b'\r').count() as u64;
    let run = |rejects: &mut Vec<Reject>| {
        let rows = crate::cli::CsvRows::new(&input[..], "phone")?;
        v.import(
            &opts,
            rows,
            |r| {
                rejects.push(r);
                Ok(())
            },
            |_| {},
        )
    };
    let mut rejects = Vec::new();
    let first = match run(&mut rejects) {
        Ok(s) => s,
        Err(e) => return check_message_digits(&e.to_string(), &input),
    };
    ensure(
        first.rows
            == first.created + first.merged + first.unchanged + first.rejected + first.suppressed,
        "import counts do not add up to the rows read",
    )?;
    ensure(
        first.merged == 0 && first.suppressed == 0,
        "a first import into an empty tenant merged or suppressed",
    )?;
    ensure(
        rejects.len() as u64 == first.rejected,
        "rejects reported differ from the rejected count",
    )?;
    for r in &rejects {
        // Lines are counted at `\n` (the csv crate's count): in a file whose lines end
        // in a lone `\r`, every row is on line 1.
        ensure(
            (1..=lines).contains(&r.line),
            "a reject names a line outside the input",
        )?;
        check_message_digits(&r.reason, &input)?;
    }
    let (n, all_live) = held(&v, "otp")?;
    ensure(
        n == first.created,
        "records held differ from records created",
    )?;
    ensure(all_live, "an imported record has no live consent")?;

    let mut rejects = Vec::new();
    let second = run(&mut rejects).map_err(|_| Violation::new("a re-import failed"))?;
    ensure(
        second.created == 0
            && second.merged == 0
            && second.rows == first.rows
            && second.rejected == first.rejected,
        "re-importing the same file changed something",
    )?;
    ensure(
        held(&v, "otp")?.0 == n,
        "re-importing the same file changed the record count",
    )
}

fn check_message_digits(message: &str, input: &[u8]) -> Result<(), Violation> {
    ensure(
        !repeats_digits(message, input),
        "an error message repeats digits of the input",
    )
}

// ---------------------------------------------------------------------------------------------
// ops: vault operations against a model
// ---------------------------------------------------------------------------------------------

/// The numbers the model plays with, and their country calling codes.
pub const MODEL_NUMBERS: [(&str, u16); 5] = [
    ("+447400123001", 44),
    ("+447400123002", 44),
    ("+12015550143", 1),
    ("+33612345610", 33),
    ("+3546111231", 354),
];
/// The purposes the model plays with.
pub const MODEL_PURPOSES: [&str; 2] = ["otp", "marketing"];

/// One vault operation; numbers and purposes are indexes into [`MODEL_NUMBERS`] and
/// [`MODEL_PURPOSES`] (taken modulo their lengths).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `add` of number with a consent for purpose.
    Add(usize, usize),
    /// `import` of the numbers (in order, repeats allowed) with a consent for purpose.
    Import(Vec<usize>, usize),
    /// `consent withdraw` of purpose.
    Withdraw(usize, usize),
    /// `opt-out` of purpose, or of everything.
    OptOut(usize, Option<usize>),
    /// `erase`.
    Erase(usize),
}

/// Most operations decoded from one input.
pub const MAX_OPS: usize = 64;

/// Decodes operations, two bytes each (`kind % 5`, argument), an import followed by
/// its numbers; stops at the end of the bytes or after [`MAX_OPS`].
pub fn decode_ops(data: &[u8]) -> Vec<Op> {
    let n = MODEL_NUMBERS.len();
    let mut ops = Vec::new();
    let mut bytes = data.iter().map(|&b| usize::from(b));
    while ops.len() < MAX_OPS {
        let (Some(kind), Some(a)) = (bytes.next(), bytes.next()) else {
            break;
        };
        ops.push(match kind % 5 {
            0 => Op::Add(a % n, (a / n) % 2),
            1 => {
                let count = 1 + (a / 2) % 4;
                let ns: Vec<usize> = bytes.by_ref().take(count).map(|b| b % n).collect();
                if ns.len() < count {
                    break;
                }
                Op::Import(ns, a % 2)
            }
            2 => Op::Withdraw(a % n, (a / n) % 2),
            3 => Op::OptOut(a % n, ((a / n) % 3).checked_sub(1)),
            _ => Op::Erase(a % n),
        });
    }
    ops
}

/// The bytes [`decode_ops`] reads back as `ops` (for seeds). Indexes are taken
/// modulo the model's sizes; an import holds 1 to 4 numbers (extra ones dropped).
pub fn encode_ops(ops: &[Op]) -> Vec<u8> {
    let n = MODEL_NUMBERS.len();
    let byte = |v: usize| u8::try_from(v).unwrap_or(0);
    let mut out = Vec::new();
    for op in ops {
        match op {
            Op::Add(x, p) => out.extend([0, byte(x % n + n * (p % 2))]),
            Op::Import(ns, p) => {
                let ns = &ns[..ns.len().min(4)];
                if ns.is_empty() {
                    continue;
                }
                out.extend([1, byte(p % 2 + 2 * (ns.len() - 1))]);
                out.extend(ns.iter().map(|x| byte(x % n)));
            }
            Op::Withdraw(x, p) => out.extend([2, byte(x % n + n * (p % 2))]),
            Op::OptOut(x, p) => out.extend([3, byte(x % n + n * p.map_or(0, |p| p % 2 + 1))]),
            Op::Erase(x) => out.extend([4, byte(x % n)]),
        }
    }
    out
}

/// What the model knows of one number.
#[derive(Clone, Debug, Default)]
struct Entry {
    live: BTreeSet<usize>,
    opted_out: BTreeSet<usize>,
    all: bool,
}

impl Entry {
    fn readable(&self, p: usize) -> bool {
        self.live.contains(&p) && !self.all && !self.opted_out.contains(&p)
    }
}

fn target(n: usize) -> Target<'static> {
    Target::Phone {
        input: MODEL_NUMBERS[n % MODEL_NUMBERS.len()].0,
        region: None,
    }
}

/// A vault call that the model says succeeds, or fails with "no such record".
fn expect_outcome<T>(r: Result<T, VaultError>, exists: bool, what: &str) -> Result<(), Violation> {
    match (r, exists) {
        (Ok(_), true) | (Err(VaultError::NoSuchRecord(_)), false) => Ok(()),
        (Ok(_), false) => Err(Violation::new(format!(
            "{what} succeeded on a number the model does not hold"
        ))),
        (Err(_), _) => Err(Violation::new(format!(
            "{what} failed where the model expects it to work"
        ))),
    }
}

/// Vault operation sequences, decoded by [`decode_ops`] and run by [`run_ops`].
///
/// # Errors
///
/// A [`Violation`] naming the step and the disagreement.
pub fn ops(data: &[u8]) -> Result<(), Violation> {
    run_ops(&decode_ops(data))
}

/// Runs `ops` on a fresh in-memory vault and on a plain model of the policy
/// (consent, withdrawal, opt-out of a purpose or of everything, erasure, an import
/// never lifting an opt-out), and after every step checks that every number is found
/// by number and by last 4 digits exactly for the purposes the model allows, and is
/// held exactly when the model holds it.
///
/// # Errors
///
/// A [`Violation`] naming the step and the disagreement.
pub fn run_ops(ops: &[Op]) -> Result<(), Violation> {
    let (nn, np) = (MODEL_NUMBERS.len(), MODEL_PURPOSES.len());
    let v = fresh_vault()?;
    let t = &model_tenant()?;
    let src = &model_source("src")?;
    let mut model: BTreeMap<usize, Entry> = BTreeMap::new();
    for (step, op) in ops.iter().enumerate() {
        let fail = |what: &str| Violation::new(format!("step {step} ({op:?}): {what}"));
        match op {
            &Op::Add(n, p) => {
                let (n, p) = (n % nn, p % np);
                v.add(
                    t,
                    MODEL_NUMBERS[n].0,
                    None,
                    &[MODEL_PURPOSES[p].to_owned()],
                    src,
                )
                .map_err(|_| fail("add failed"))?;
                let e = model.entry(n).or_default();
                e.all = false;
                e.opted_out.remove(&p);
                e.live.insert(p);
            }
            Op::Import(ns, p) => {
                let p = p % np;
                let csv = std::iter::once("phone")
                    .chain(ns.iter().map(|&n| MODEL_NUMBERS[n % nn].0))
                    .collect::<Vec<_>>()
                    .join("\n");
                let opts = ImportOptions {
                    tenant: t.clone(),
                    purposes: vec![MODEL_PURPOSES[p].to_owned()],
                    source: model_source("bulk")?,
                    region: None,
                };
                let rows = crate::cli::CsvRows::new(csv.as_bytes(), "phone")
                    .map_err(|_| fail("import failed"))?;
                v.import(&opts, rows, |_| Ok(()), |_| {})
                    .map_err(|_| fail("import failed"))?;
                for &n in ns {
                    let e = model.entry(n % nn).or_default();
                    if !e.all && !e.opted_out.contains(&p) {
                        e.live.insert(p);
                    }
                }
            }
            &Op::Withdraw(n, p) => {
                let (n, p) = (n % nn, p % np);
                let r = v.withdraw(t, target(n), MODEL_PURPOSES[p]);
                expect_outcome(r, model.contains_key(&n), "withdraw").map_err(|e| fail(&e.0))?;
                if let Some(e) = model.get_mut(&n) {
                    e.live.remove(&p);
                }
            }
            &Op::OptOut(n, p) => {
                let (n, p) = (n % nn, p.map(|p| p % np));
                let r = v.opt_out(t, target(n), p.map(|p| MODEL_PURPOSES[p]));
                expect_outcome(r, model.contains_key(&n), "opt-out").map_err(|e| fail(&e.0))?;
                if let Some(e) = model.get_mut(&n) {
                    match p {
                        Some(p) => {
                            e.opted_out.insert(p);
                            e.live.remove(&p);
                        }
                        None => {
                            e.all = true;
                            e.live.clear();
                        }
                    }
                }
            }
            &Op::Erase(n) => {
                let n = n % nn;
                let r = v.erase(t, target(n));
                expect_outcome(r, model.remove(&n).is_some(), "erase").map_err(|e| fail(&e.0))?;
            }
        }
        // After every step, every read agrees with the model.
        for (n, &(number, cc)) in MODEL_NUMBERS.iter().enumerate() {
            for (p, purpose) in MODEL_PURPOSES.iter().enumerate() {
                let want = model.get(&n).is_some_and(|e| e.readable(p));
                let got = v
                    .find(t, number, None, purpose)
                    .map_err(|_| fail("find failed"))?
                    .is_some();
                if got != want {
                    return Err(fail(&format!(
                        "find of number {n} for {purpose}: vault {got}, model {want}"
                    )));
                }
                let last4 = &number[number.len() - 4..];
                let by_last4 = v
                    .find_last4(t, cc, last4, purpose)
                    .map_err(|_| fail("find_last4 failed"))?;
                if by_last4.len() != usize::from(want) {
                    return Err(fail(&format!(
                        "find_last4 of number {n} for {purpose}: vault {} hits, model {want}",
                        by_last4.len()
                    )));
                }
            }
            let held = v
                .subject(t, number, None)
                .map_err(|_| fail("subject failed"))?
                .is_some();
            if held != model.contains_key(&n) {
                return Err(fail(&format!(
                    "subject of number {n}: vault holds it {held}, model {}",
                    model.contains_key(&n)
                )));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// seeds
// ---------------------------------------------------------------------------------------------

/// One seed input: target, file name (without the `seed-` prefix) and bytes.
pub type Seed = (&'static str, String, Vec<u8>);

fn sample_body(e164: &str, country_code: u16, region: &str, kind: u8) -> RecordBody {
    RecordBody {
        e164: e164.into(),
        country_code,
        region: region.into(),
        kind,
        grants: vec![Grant {
            purpose: "otp".into(),
            granted_at: 1_767_225_600,
            source: "web-signup-2026-03".into(),
            withdrawn_at: None,
        }],
        opt_outs: vec![],
        created_at: 1_767_225_600,
        updated_at: 1_767_225_600,
        verified_at: None,
    }
}

fn sample_bodies() -> Vec<(&'static str, RecordBody)> {
    let simple = sample_body("+447400123958", 44, "GB", 1);
    let mut history = sample_body("+12015550143", 1, "US", 2);
    history.grant("marketing", "form-2026-04", 1_767_300_000);
    history.opt_out(Some("marketing"), 1_767_400_000);
    history.opt_out(None, 1_767_500_000);
    history.lift_opt_outs("otp", 1_767_600_000);
    history.grant("otp", "call-2026-11", 1_767_600_000);
    history.verified_at = Some(1_767_700_000);
    let nongeo = sample_body("+80012345678", 800, "", 3);
    vec![
        ("gb-mobile", simple),
        ("us-history", history),
        ("nongeo", nongeo),
    ]
}

/// Built-in seed inputs of every target: meaningful inputs the fuzzer starts from
/// (written to `fuzz/corpus/` by the ignored test `write_seeds` in
/// `tests/fuzz_corpus.rs`, which adds samples from `tests/data/`).
///
/// # Errors
///
/// A [`Violation`] if a seed cannot be built.
pub fn seeds() -> Result<Vec<Seed>, Violation> {
    let mut out: Vec<Seed> = Vec::new();
    let mut add = |t: &'static str, name: &str, bytes: Vec<u8>| out.push((t, name.into(), bytes));

    for (name, text) in [
        ("e164", "+447400123958"),
        ("intl-spaces", "+44 7400 123958"),
        ("national-gb", "GB|07400 123958"),
        ("national-us", "US|(201) 555-0143"),
        ("idd-prefix", "GB|00 1 201 555 0143"),
        ("tel-uri", "tel:+1-201-555-0143;ext=22"),
        ("extension", "US|201-555-0143 ext. 1234"),
        ("fullwidth", "＋４４ ７４００ １２３９５８"),
        ("arabic-indic", "EG|٠١٠٠١٢٣٤٥٦٧"),
        ("nongeo", "+800 1234 5678"),
        ("leading-zero-it", "+39 06 6982 1234"),
        ("invalid-cc", "+999 123 4567"),
        ("too-short", "+44 12"),
        ("too-long", "+44 7400 123958 123958"),
        ("needs-region", "07400 123958"),
        ("bad-region", "ZZ|07400 123958"),
        ("letters", "call me maybe"),
        ("empty", ""),
    ] {
        add("phone", name, text.as_bytes().to_vec());
    }

    for (name, body) in sample_bodies() {
        add("record", name, record::encode_body(&body).to_vec());
        let keys = envelope_keys();
        let sealed = record::seal(&keys.data, 1, 2, ENVELOPE_TENANT, &ENVELOPE_RECORD, &body)
            .map_err(|_| Violation::new("sealing a seed failed"))?;
        add("envelope", name, sealed);
    }
    add("record", "empty", Vec::new());

    let keyrings = phonevault_keys::fuzzing::keyring_seeds()?;
    for (name, bytes) in ["key-file-only", "full", "lone-slot"].iter().zip(keyrings) {
        add("keyring", name, bytes);
    }

    let bodies: [(&str, &str); 18] = [
        ("sys/unseal", r#"{"passphrase": "correct horse"}"#),
        (
            "numbers",
            r#"{"phone": "+447400123958", "consents": ["otp"], "source": "web"}"#,
        ),
        ("numbers", r#"{"phone": 447400123958, "consents": []}"#),
        (
            "numbers/batch",
            r#"{"items": [{"phone": "+447400123958", "consents": ["otp"]}, {"phone": "07400 123959", "region": "GB", "consents": ["otp", "support"]}], "source": "crm"}"#,
        ),
        (
            "lookup",
            r#"{"phone": "+447400123958", "purpose": "otp", "reveal": true}"#,
        ),
        (
            "lookup/last4",
            r#"{"country_code": 44, "last4": "3958", "purpose": "support"}"#,
        ),
        (
            "lookup/last4",
            r#"{"country_code": "+447400123958", "last4": "3958", "purpose": "otp"}"#,
        ),
        ("numbers/{id}?", "purpose=otp&reveal=true"),
        ("numbers/{id}?", "purpose=otp&447400123958=1"),
        (
            "consent/grant",
            r#"{"id": "0190f1c2a3b4c5d6e7f8091a2b3c4d5e", "purposes": ["otp"]}"#,
        ),
        (
            "consent/withdraw",
            r#"{"phone": "+447400123958", "purpose": "marketing"}"#,
        ),
        ("opt-out", r#"{"phone": "+447400123958", "all": true}"#),
        (
            "opt-out",
            r#"{"phone": "+447400123958", "purpose": "marketing"}"#,
        ),
        ("erase", r#"{"phone": "07400 123958", "region": "GB"}"#),
        ("verify", r#"{"id": "0190f1c2a3b4c5d6e7f8091a2b3c4d5e"}"#),
        (
            "stats",
            r#"{"by_country": true, "by_type": true, "min_group": 5, "epsilon": 0.5}"#,
        ),
        ("stats", r#"{"epsilon": "447400123958"}"#),
        ("numbers", r#"{"447400123958": 1}"#),
    ];
    for (i, (route, body)) in bodies.iter().enumerate() {
        let which = HTTP_ENDPOINTS
            .iter()
            .position(|r| r == route)
            .and_then(|p| u8::try_from(p).ok())
            .ok_or_else(|| Violation::new("unknown route in a seed"))?;
        let name = format!("{:02}-{}", i, route.replace(['/', '{', '}', '?'], "_"));
        add("http_body", &name, [&[which][..], body.as_bytes()].concat());
    }

    for (name, flags, csv) in [
        ("e164", 0u8, "+447400123958\n+12015550143\n+33612345610\n"),
        (
            "national-gb",
            1,
            "07400 123958\n020 7946 0018\n+44 7400 123959\n",
        ),
        (
            "duplicates",
            0,
            "+447400123958\n+44 7400 123958\n+447400123958\n",
        ),
        ("rejects", 2, "not a number\n+999 1\n\n(201) 555-0143\n"),
        (
            "own-header",
            CSV_OWN_HEADER,
            "name,phone\nAda,+447400123958\n\"Lovelace, A\",\"+1 201 555 0143\"\nBob\n",
        ),
        (
            "quoted-bad",
            CSV_OWN_HEADER | 1,
            "phone,x\n\"07400 123958\nbroken\",1\n",
        ),
        ("bad-region", 3, "+447400123958\n"),
    ] {
        add("csv_import", name, [&[flags][..], csv.as_bytes()].concat());
    }

    for (name, ops) in [
        (
            "add-find",
            vec![Op::Add(0, 0), Op::Add(2, 1), Op::Withdraw(0, 0)],
        ),
        (
            "import-optout-add",
            vec![Op::Import(vec![4], 0), Op::OptOut(4, None), Op::Add(4, 0)],
        ),
        (
            "optout-under-total",
            vec![
                Op::Add(1, 0),
                Op::Add(1, 1),
                Op::OptOut(1, None),
                Op::OptOut(1, Some(1)),
                Op::Add(1, 0),
                Op::Import(vec![1, 1, 3], 1),
            ],
        ),
        (
            "erase-reimport",
            vec![
                Op::Import(vec![0, 1, 2, 3], 0),
                Op::Erase(2),
                Op::Withdraw(2, 0),
                Op::Import(vec![2], 1),
                Op::OptOut(3, Some(0)),
            ],
        ),
    ] {
        add("ops", name, encode_ops(&ops));
    }
    for (name, text) in [
        ("ttl-multibyte-unit", "5é"),
        ("ttl-days", "30d"),
        ("ttl-overflow", "99999999999999999999d"),
        ("time-rfc3339", "2026-11-28T09:00:00Z"),
        ("time-date", "2026-11-28"),
        ("time-phone", "+447700900123"),
        ("purpose-phone", "+447700900123"),
        ("tenant", "shop"),
        ("record-id", "0190f1c2a3b4c5d6e7f8091a2b3c4d5e"),
        ("record-id-multibyte", "éééééééééééééééééééééééééééééééé"),
        ("last4", "3958"),
        ("region", "GB"),
        ("country-code", "44"),
        ("csv-header", "id,phone,name"),
        ("csv-phone-header", "+447700900123,447700900124"),
    ] {
        add("values", name, text.as_bytes().to_vec());
    }
    for (name, kind, body) in [
        ("json-stop", 0u8, r#"{"from":"+447400123958","to":"+447400123001","body":"STOP"}"#),
        (
            "twilio-form",
            1,
            "ToCountry=GB&SmsMessageSid=SM01&NumMedia=0&Body=Stop+&To=%2B447400123001&From=%2B447400123958&ApiVersion=2010-04-01",
        ),
        ("form-missing-body", 1, "From=%2B447400123958&To=1"),
        ("form-bad-utf8", 1, "From=%ff&To=1&Body=x"),
    ] {
        let mut bytes = vec![kind];
        bytes.extend_from_slice(body.as_bytes());
        add("inbound_sms", name, bytes);
    }
    let key = ed25519_dalek::SigningKey::from_bytes(&RECEIPT_FUZZ_SEED);
    let fields = crate::receipt::ReceiptFields {
        receipt_id: "00112233445566778899aabbccddeeff".into(),
        time: 1_795_824_000,
        jurisdiction: Some("GB".into()),
        controller: "Shop Ltd".into(),
        contact: "privacy@shop.example".into(),
        policy_url: "https://shop.example/privacy".into(),
        service: "shop".into(),
        record_id: "0190f1c2a3b4c5d6e7f8091a2b3c4d5e".into(),
        purposes: vec!["marketing".into(), "share:acme".into()],
        source: "web".into(),
        method: "api".into(),
    };
    add("receipt", "valid", crate::receipt::issue(&key, &fields));
    add("receipt", "not-json", b"{\"receipt\":".to_vec());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_holds_its_invariants() {
        for (target, name, bytes) in seeds().unwrap() {
            let f = TARGETS.iter().find(|(t, _)| *t == target).unwrap().1;
            f(&bytes).unwrap_or_else(|v| panic!("{target}/{name}: {v}"));
        }
    }

    #[test]
    fn ops_encoding_round_trips() {
        let ops = vec![
            Op::Add(4, 1),
            Op::Import(vec![0, 4, 4], 1),
            Op::Withdraw(3, 0),
            Op::OptOut(2, None),
            Op::OptOut(1, Some(1)),
            Op::Erase(0),
        ];
        assert_eq!(decode_ops(&encode_ops(&ops)), ops);
    }

    #[test]
    fn message_check_catches_echoed_values() {
        let input = br#"{"phone": 447400123958}"#;
        assert!(check_message("invalid type: integer `447400123958`", input).is_err());
        assert!(check_message("invalid type: string \"secret\"", input).is_err());
        assert!(check_message("unknown field `phne`, expected `phone`", input).is_ok());
        assert!(check_message("expected `:` at line 1 column 9", input).is_ok());
        let near = b"+447700900 1";
        assert!(check_message_digits("give E.164 like +447700900123", near).is_ok());
        assert!(check_message_digits("got 447700900", near).is_err());
    }
}
