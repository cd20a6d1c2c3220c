//! Known-answer tests through the public API. Frozen: if one of these fails,
//! the change breaks existing vaults (keyrings, ciphertexts, indexes, audit
//! chains). The tenant, row-MAC and audit values were cross-checked against an
//! independent Python implementation of the spec.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use phonevault_keys::{
    derive_tenant_keys, derive_vault_keys, AuditKey, KeyError, KeyFileKey, KeyPurpose, Keyring,
    Passphrase, RootKey, SlotKind, TenantSeed, VaultId, VaultSeed,
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
fn kat_vault_keys() {
    let vs = VaultSeed::from_bytes(&core::array::from_fn(|i| 0x80 + i as u8));
    let keys = derive_vault_keys(&vs, &vault());
    assert_eq!(
        hex(&keys.row_mac.tag(&[b"tokens", b"tok-1"])),
        "9ca442d4b692be8175b82606a9548f3155dd2190fb92f06681beb4c3c83b3fef"
    );
    let mut stream = keys.backup.stream();
    stream.update(b"PVBACKUP");
    assert_eq!(
        hex(&stream.finalize()),
        "5c27e38aee24c48a5f3a4b599663f9fe8cc914da2b2b540b50bf1e23b1251e12"
    );
    let sealed = keys.state.seal(b"aad", b"state").unwrap();
    assert_eq!(
        keys.state.open(b"aad", &sealed).unwrap().as_slice(),
        b"state"
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

/// A keyring written by format version 1 (development builds): refused with a
/// clear error naming the version, never misread.
const FROZEN_KEYRING_V1: &str = "01a0a1a2a3a4a5a6a7a8a9aaabacadaeafadf0755514c2433672c9740249711236b4ffe0ec756afc7528e5d0865626c598020000fb00010101a4aa8b7b4431baad3d544621a5e1624d24bf661a34f0b5a2bc104f12c471731bebb145c9ba1d76263115ed0c4c2588ccef908d4e9f53ce511c2723f86ba46844d1601c22089b7728514c508f0101d8e5808768ff8833f348ae809227e765beaecb095061fdca2baa54e2b4b69f334df5e5277f03a499a23cf6ee977d0f4f2bd0da4da1cb6ad0b05535b1010461636d6501020201fc00f153650500abcc7a73c13c694336407a7dc1f56047b8781cf9e4cff5bc3d9d128488962ae9f741d79266c0dea00e2682301425872cccdc61ba4d757c51a152158902fc64f1536500009111c33abf6e34201ec5d4f2edecbf50602ab2b5d9c5bf7c3911a42487bd444543953f067bc1f57107ad312f115eef4d0996cd027e682dcea822f6685bcb9b98001b8ec1a7e294a54bfa3ff16435e920b469e2d33647e327d3e347a6";

#[test]
fn kat_keyring_v1_is_refused_clearly() {
    let bytes = hex::decode(FROZEN_KEYRING_V1).unwrap();
    let err = Keyring::decode(&bytes).unwrap_err();
    assert!(matches!(err, KeyError::OldFormat { found: 1 }), "{err:?}");
    assert!(err.to_string().contains("phonevault init"), "{err}");
}

/// Builds the keyring frozen below (random parts: vault seed, salts, nonces).
/// `cargo test -p phonevault-keys --test kat -- --ignored print_keyring_v2 --nocapture`
#[test]
#[ignore]
fn print_keyring_v2() {
    let rk = RootKey::from_bytes(&[0x42; 32]);
    let mut kr = Keyring::new(vault(), &rk).unwrap();
    kr.add_passphrase_slot(
        &rk,
        &Passphrase::new("correct horse".to_owned()),
        phonevault_keys::KdfParams::cheap_for_tests(),
    )
    .unwrap();
    kr.add_key_file_slot(&rk, &KeyFileKey::from_bytes(&[0x33; 32]).unwrap())
        .unwrap();
    kr.add_tenant(&rk, "acme", 1_700_000_000).unwrap();
    kr.note_encryptions("acme", 1, 5).unwrap();
    kr.rotate(&rk, "acme", KeyPurpose::Index, 1_700_000_100)
        .unwrap();
    kr.add_tenant(&rk, "old", 1_700_000_000).unwrap();
    kr.rotate(&rk, "old", KeyPurpose::Data, 1_700_000_200)
        .unwrap();
    kr.rotate(&rk, "old", KeyPurpose::Index, 1_700_000_300)
        .unwrap();
    kr.rotate(&rk, "old", KeyPurpose::Data, 1_700_000_400)
        .unwrap();
    kr.retire_below("old", 3).unwrap();
    kr.seal(&rk);
    println!("{}", hex(&kr.encode()));
    let keys = kr.vault_keys(&rk).unwrap();
    println!("{}", hex(&keys.row_mac.tag(&[b"tokens", b"tok-1"])));
}

/// A keyring written by format version 2: passphrase slot 0 ("correct horse",
/// cheap params), key-file slot 1 (32 × 0x33), tenant "acme" with seed v1
/// (data, 5 encryptions) and v2 (index), tenant "old" with versions 1 and 2
/// retired (v3 current index, v4 current data), root key 32 × 0x42.
const FROZEN_KEYRING_V2: &str = "02a0a1a2a3a4a5a6a7a8a9aaabacadaeafadf0755514c2433672c9740249711236b4ffe0ec756afc7528e5d0865626c598e217df02392a1b496fe01bc46382a28c81117d13eee475d42491cec62b2658e7286f0c31871357f4f2187e0d30ab00f6910602f411d24fb12a0a4dcd020000fb000101018bd0b4c958f4e0d54ce853a46b520bcb9271ad13d4c041b42816784009dac4f7053aee99ddb885cbe5e0ab493831b1f398d98827abd8eeb108e991c20eb14606a706babdcd195c01877af1b30101e0089fa67c119eac57701a20c196d22329a1c696e28ca8c482ba62f38ebcb7b4e88d2abc65f7aac5e3a7018819021252626bbdeaa24ff0f82ffc0e70020461636d6501020201fc00f1536505005ae62fc7ed9b7f0ac9d63fa63957a9f4bf8ee7658c5beaabbc12e6f1c1b53463fe464c9f0c9bf56fb5b5ff28f2d6b8e6f64045713a6704ce33449aeb02fc64f153650000e7e3d095f9d5ff200478a3d3e90fba61829fbdb4d9ebba1970fa59aae9fdbe0cad175efa776e6619367d554990ea9711a0ac4f81dca0d2e54d018c4500036f6c6404030203fc2cf2536500003325e25d017e2c218df1c1ad01dcf776611b82f3c65797c38bc0be50c2c761700be1b32f6a17c9cba0f8fc5353226eb04c4875db9a4283673695d3c004fc90f253650000f11a33f9686acacf718535bea89be27721f8b6f000b0956afb94f95fcc78c1085cf9f68dea98f4014b3d1189633299be09614d51b2817d5de0d6b4300348b0b66454624ada9495dddcdb4309d23d7af68a7ee7fb9b5e7a3095b9801204";

#[test]
fn kat_frozen_keyring_v2() {
    let bytes = hex::decode(FROZEN_KEYRING_V2).unwrap();
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
    let old = &kr.tenants["old"];
    assert_eq!(old.destroyed_below, 3);
    assert!(matches!(
        kr.tenant_keys(&rk, "old", 2),
        Err(KeyError::VersionRetired { version: 2 })
    ));
    let k2 = kr.current_keys(&rk, "acme", KeyPurpose::Index).unwrap();
    assert_eq!(k2.version, 2);
    // The vault seed (random when frozen) fixes the row-MAC key.
    assert_eq!(
        hex(&kr
            .vault_keys(&rk)
            .unwrap()
            .row_mac
            .tag(&[b"tokens", b"tok-1"])),
        "334239745094ebc41db2bb63f60769c7c758e19139a22e1cf46a1f8c8d425514"
    );
}
