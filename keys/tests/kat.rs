//! Known-answer tests through the public API. Frozen: if one of these fails,
//! the change breaks existing vaults (keyrings, ciphertexts, indexes, audit
//! chains). The tenant, row-MAC and audit values were cross-checked against an
//! independent Python implementation of the spec.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use phonevault_keys::{
    derive_tenant_keys, AuditKey, KeyError, KeyFileKey, KeyPurpose, Keyring, Passphrase, RootKey,
    SlotKind, TenantSeed, VaultId,
};

fn seed() -> TenantSeed {
    TenantSeed::from_bytes(&core::array::from_fn(|i| i as u8))
}

fn vault() -> VaultId {
    VaultId(core::array::from_fn(|i| 0xa0 + i as u8))
}

fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

#[test]
fn kat_blind_index_digest() {
    let keys = derive_tenant_keys(&seed(), &vault(), "acme", 1);
    assert_eq!(keys.version, 1);
    assert_eq!(
        hex(&keys.index.digest(&[b"e164:", b"+447700900123"])),
        "cc727205cad8680bdf085bdd5aa6d9a141661d92523e9d674455a2765cff4fbc"
    );
}

#[test]
fn kat_tenant_mac() {
    let keys = derive_tenant_keys(&seed(), &vault(), "acme", 1);
    let tag = keys.mac.tag(&[b"records", b"rec-1"]);
    assert_eq!(
        hex(&tag),
        "41b3a15eb4cd9e0d628e115414a2839d80059eb56e14894f810581929798576f"
    );
    keys.mac.verify(&[b"records", b"rec-1"], &tag).unwrap();
}

#[test]
fn kat_data_key_opens_frozen_ciphertext() {
    let keys = derive_tenant_keys(&seed(), &vault(), "acme", 1);
    let sealed = hex::decode(
        "7ac1eb55dd15d02da8bd4a33442e003ed7bf76fa2004c074000806c0611178d9bcc807b9f3116f7524",
    )
    .unwrap();
    assert_eq!(
        keys.data.open(b"aad", &sealed).unwrap().as_slice(),
        b"+447700900123"
    );
    let v2 = derive_tenant_keys(&seed(), &vault(), "acme", 2);
    assert!(matches!(
        v2.data.open(b"aad", &sealed),
        Err(KeyError::Decrypt)
    ));
}

#[test]
fn kat_row_mac_key() {
    let rk = RootKey::from_bytes(&[0x42; 32]);
    let mac = rk.row_mac_key(&vault());
    assert_eq!(
        hex(&mac.tag(&[b"tokens", b"tok-1"])),
        "d6deb0e0177c26feab5ecd11ec1eabde7ae627296b65ba4eba8d97486130d89e"
    );
}

#[test]
fn kat_audit_key_evolution() {
    let mut k = AuditKey::from_bytes(&[7; 32]);
    assert_eq!(
        hex(&k.tag(b"entry")),
        "68f111572e98b974199b471c3062472866a86c03b90aaaabc047ebf99f66e107"
    );
    k.evolve();
    assert_eq!(
        hex(k.expose_secret()),
        "5ffe948abce6d3f771f47ffb645cdb871a1d7f9a050b3dffa0c82e05f12bae4c"
    );
    assert_eq!(
        hex(&k.tag(b"entry")),
        "3ba75cda9524b1b87a899edaf30031519d067930c689df9808fc394dd06b0997"
    );
    k.evolve();
    assert_eq!(
        hex(k.expose_secret()),
        "04fd148402b31c25de3b6278ec8fb9def5b735e151408f19ed28ff6772834772"
    );
    // An auditor replaying from K0 reaches the same key.
    let mut replay = AuditKey::from_bytes(&[7; 32]);
    replay.evolve();
    replay.evolve();
    assert!(replay == k);
}

/// A keyring written by format version 1: passphrase slot 0 ("correct horse",
/// cheap params), key-file slot 1 (32 × 0x33), tenant "acme" with seed v1
/// (data, 5 encryptions) and v2 (index), root key 32 × 0x42.
const FROZEN_KEYRING_V1: &str = "01a0a1a2a3a4a5a6a7a8a9aaabacadaeafadf0755514c2433672c9740249711236b4ffe0ec756afc7528e5d0865626c598020000fb00010101a4aa8b7b4431baad3d544621a5e1624d24bf661a34f0b5a2bc104f12c471731bebb145c9ba1d76263115ed0c4c2588ccef908d4e9f53ce511c2723f86ba46844d1601c22089b7728514c508f0101d8e5808768ff8833f348ae809227e765beaecb095061fdca2baa54e2b4b69f334df5e5277f03a499a23cf6ee977d0f4f2bd0da4da1cb6ad0b05535b1010461636d6501020201fc00f153650500abcc7a73c13c694336407a7dc1f56047b8781cf9e4cff5bc3d9d128488962ae9f741d79266c0dea00e2682301425872cccdc61ba4d757c51a152158902fc64f1536500009111c33abf6e34201ec5d4f2edecbf50602ab2b5d9c5bf7c3911a42487bd444543953f067bc1f57107ad312f115eef4d0996cd027e682dcea822f6685bcb9b98001b8ec1a7e294a54bfa3ff16435e920b469e2d33647e327d3e347a6";

#[test]
fn kat_frozen_keyring_v1() {
    let bytes = hex::decode(FROZEN_KEYRING_V1).unwrap();
    let kr = Keyring::decode(&bytes).unwrap();
    assert_eq!(kr.encode(), bytes, "decode/encode must be canonical");
    assert_eq!(kr.vault_id, vault());
    assert_eq!(kr.slots.len(), 2);
    assert!(matches!(kr.slots[0].kind, SlotKind::Passphrase { .. }));
    assert_eq!(kr.slots[1].kind, SlotKind::KeyFile);

    let expected_rk = RootKey::from_bytes(&[0x42; 32]);
    let rk = kr
        .unlock(&Passphrase::new("correct horse".to_owned()))
        .unwrap();
    assert!(rk == expected_rk);
    let rk = kr
        .unlock_key_file(&KeyFileKey::from_bytes(&[0x33; 32]).unwrap())
        .unwrap();
    assert!(rk == expected_rk);
    kr.verify(&rk).unwrap();

    let acme = &kr.tenants["acme"];
    assert_eq!((acme.current_data, acme.current_index), (1, 2));
    assert_eq!(acme.seeds[0].encryptions, 5);
    assert_eq!(acme.seeds[1].created_at, 1_700_000_100);
    let k2 = kr.current_keys(&rk, "acme", KeyPurpose::Index).unwrap();
    assert_eq!(k2.version, 2);
    assert_eq!(
        hex(&k2.index.digest(&[b"e164:", b"+447700900123"])),
        "20cf2d1e46fbc05cd822690437b5666cb8b4a073e72b255b8338016a910271f6"
    );
}
