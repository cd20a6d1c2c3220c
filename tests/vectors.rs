//! Published format vectors (`tests/vectors/*.json`): normalize → blind index →
//! truncation, and a fixed record envelope to decrypt. Other implementations and
//! future versions check compatibility against them; a change that breaks them
//! breaks every existing vault. `cargo test --test vectors -- --ignored regenerate`
//! rewrites them (only for a deliberate format change, with a new format version).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

use std::path::PathBuf;

use phonevault::phone;
use phonevault::record::{self, Grant, OptOut, RecordBody, RecordId};
use phonevault_keys::{derive_tenant_keys, TenantSeed, VaultId};
use serde_json::{json, Value};

const SEED: [u8; 32] = [0x42; 32];
const VAULT: [u8; 16] = [0x07; 16];
const TENANT: &str = "acme";
const VERSION: u32 = 1;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name)
}

fn keys() -> phonevault_keys::TenantKeys {
    derive_tenant_keys(
        &TenantSeed::from_bytes(&SEED),
        &VaultId(VAULT),
        TENANT,
        VERSION,
    )
}

const INPUTS: [(&str, Option<&str>); 6] = [
    ("+44 7400 123958", None),
    ("07400 123958", Some("GB")),
    ("tel:+1-201-555-0143;ext=12", None),
    ("(201) 555-0143", Some("US")),
    ("+33 6 12 34 56 10", None),
    ("\u{FF0B}\u{FF13}\u{FF15}\u{FF14} 611 1231", None),
];

fn blind_index_vectors() -> Value {
    let k = keys();
    let cases: Vec<Value> = INPUTS
        .iter()
        .map(|(input, region)| {
            let n = phone::normalize(input, *region).unwrap();
            let e164 = n.e164.expose_secret();
            let last4 = &e164[e164.len() - 4..];
            json!({
                "input": input,
                "region": region,
                "e164": e164,
                "exact_index": hex::encode(record::exact_digest(&k.index, e164)),
                "last4_index_8_bits": hex::encode(record::last4_digest(&k.index, n.country_code, last4, 8)),
                "last4_index_14_bits": hex::encode(record::last4_digest(&k.index, n.country_code, last4, 14)),
            })
        })
        .collect();
    json!({
        "description": "normalize -> blind index -> truncate. index key = HKDF-SHA-256(seed, salt = vault id, info = lp(\"phonevault/v1/tenant-index-key\") || lp(tenant) || lp(u32-be(version))); exact = HMAC-SHA-256(index key, \"e164:\" || E.164)[0..16]; last4 = first `bits` bits of HMAC-SHA-256(index key, \"last4:\" || country code || \":\" || last 4 digits), rest zero, 4 bytes",
        "seed": hex::encode(SEED),
        "vault_id": hex::encode(VAULT),
        "tenant": TENANT,
        "version": VERSION,
        "cases": cases,
    })
}

fn body() -> RecordBody {
    RecordBody {
        e164: "+447400123958".into(),
        country_code: 44,
        region: "GB".into(),
        kind: phone::NumberKind::Mobile as u8,
        grants: vec![
            Grant {
                purpose: "otp".into(),
                granted_at: 1_790_000_000,
                source: "web-signup-2026-03".into(),
                withdrawn_at: None,
            },
            Grant {
                purpose: "marketing".into(),
                granted_at: 1_790_000_000,
                source: "web-signup-2026-03".into(),
                withdrawn_at: Some(1_790_086_400),
            },
        ],
        opt_outs: vec![OptOut {
            purpose: Some("marketing".into()),
            at: 1_790_086_400,
            lifted_at: None,
        }],
        created_at: 1_790_000_000,
        updated_at: 1_790_086_400,
        verified_at: Some(1_790_050_000),
    }
}

const TENANT_ID: u32 = 3;
const RECORD_ID: [u8; 16] = [
    0x01, 0x9a, 0x00, 0x00, 0x00, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
];

fn record_vector() -> Value {
    let k = keys();
    let sealed = record::seal(
        &k.data,
        VERSION,
        VERSION,
        TENANT_ID,
        &RecordId(RECORD_ID),
        &body(),
    )
    .unwrap();
    json!({
        "description": "a stored record: 0x01 || u32-be(data key version) || u32-be(index key version) || nonce(12) || AES-256-GCM(data key, body, aad); aad = lp(\"phonevault/v1/record-aad\") || lp(0x01) || lp(u32-be(data version)) || lp(u32-be(index version)) || lp(u32-be(tenant id)) || lp(record id); body = 0x01 || bincode-2 standard(e164, country_code, region, kind, grants, opt_outs, created_at, updated_at, verified_at). data key = HKDF-SHA-256(seed, vault id, lp(\"phonevault/v1/tenant-data-key\") || lp(tenant) || lp(u32-be(version)))",
        "seed": hex::encode(SEED),
        "vault_id": hex::encode(VAULT),
        "tenant": TENANT,
        "tenant_id": TENANT_ID,
        "record_id": hex::encode(RECORD_ID),
        "stored": hex::encode(sealed),
        "body_plaintext": hex::encode(&*record::encode_body(&body())),
        "e164": "+447400123958",
    })
}

#[test]
fn blind_index_vectors_hold() {
    let text = std::fs::read_to_string(path("blind-index.json")).unwrap();
    let published: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(published, blind_index_vectors());
}

#[test]
fn record_vector_decrypts() {
    let text = std::fs::read_to_string(path("record.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let stored = hex::decode(v["stored"].as_str().unwrap()).unwrap();
    let k = keys();
    let id = RecordId(RECORD_ID);
    let opened = record::open(&k.data, TENANT_ID, &id, &stored).unwrap();
    assert_eq!(opened, body());
    assert_eq!(
        hex::encode(&*record::encode_body(&opened)),
        v["body_plaintext"].as_str().unwrap()
    );
    // bound to its place: another tenant id or record id fails
    assert!(record::open(&k.data, TENANT_ID + 1, &id, &stored).is_err());
    assert!(record::open(&k.data, TENANT_ID, &RecordId([0; 16]), &stored).is_err());
}

#[test]
#[ignore = "rewrites the published vectors; run only for a deliberate format change"]
fn regenerate() {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap() + "\n";
    std::fs::write(path("blind-index.json"), pretty(&blind_index_vectors())).unwrap();
    std::fs::write(path("record.json"), pretty(&record_vector())).unwrap();
}
