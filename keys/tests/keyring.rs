//! Keyring behaviour through the public API: slots, tenants, rotation,
//! shredding, rekeying, the MAC, and total decoding.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use phonevault_keys::{
    derive_tenant_keys, AuditKey, Credential, DataKey, KdfParams, KeyError, KeyFileKey, KeyPurpose,
    Keyring, Passphrase, RootKey, SlotKind, TenantSeed, VaultId, MAX_KEYRING_LEN, MAX_SLOTS,
    ROTATE_AFTER_ENCRYPTIONS,
};
use proptest::prelude::*;

fn cheap() -> KdfParams {
    KdfParams::cheap_for_tests()
}

fn pass(s: &str) -> Passphrase {
    Passphrase::new(s.to_owned())
}

/// A sealed keyring with a passphrase slot, a key-file slot and tenant "acme".
fn setup() -> (Keyring, RootKey, KeyFileKey) {
    let rk = RootKey::generate();
    let kf = KeyFileKey::generate();
    let mut kr = Keyring::new(VaultId::generate(), &rk).unwrap();
    assert_eq!(
        kr.add_passphrase_slot(&rk, &pass("pw"), cheap()).unwrap(),
        0
    );
    assert_eq!(kr.add_key_file_slot(&rk, &kf).unwrap(), 1);
    kr.add_tenant(&rk, "acme", 100).unwrap();
    kr.seal(&rk);
    (kr, rk, kf)
}

fn probe(kr: &Keyring, rk: &RootKey, version: u32) -> [u8; 32] {
    kr.tenant_keys(rk, "acme", version)
        .unwrap()
        .index
        .digest(&[b"e164:", b"+15550100"])
}

#[test]
fn init_encode_decode_unlock() {
    let (kr, rk, kf) = setup();
    let bytes = kr.encode();
    let back = Keyring::decode(&bytes).unwrap();
    assert_eq!(back, kr);
    assert!(back.unlock(&pass("pw")).unwrap() == rk);
    assert!(back.unlock_key_file(&kf).unwrap() == rk);
    assert!(matches!(back.unlock(&pass("pW")), Err(KeyError::Unlock)));
    assert!(matches!(
        back.unlock_key_file(&KeyFileKey::generate()),
        Err(KeyError::Unlock)
    ));
    let t = &back.tenants["acme"];
    assert_eq!((t.current_data, t.current_index, t.seeds.len()), (1, 1, 1));
    assert_eq!(t.seeds[0].created_at, 100);
    assert_eq!(probe(&back, &rk, 1), probe(&kr, &rk, 1));
}

#[test]
fn unsealed_changes_fail_the_mac() {
    let (mut kr, rk, _) = setup();
    kr.add_tenant(&rk, "beta", 0).unwrap();
    assert!(matches!(kr.verify(&rk), Err(KeyError::Mac)));
    assert!(matches!(kr.unlock(&pass("pw")), Err(KeyError::Mac)));
    kr.seal(&rk);
    kr.verify(&rk).unwrap();
    assert!(matches!(
        kr.verify(&RootKey::generate()),
        Err(KeyError::Mac)
    ));
}

#[test]
fn mac_detects_an_edited_current_data_pointer() {
    let (mut kr, rk, kf) = setup();
    kr.rotate(&rk, "acme", KeyPurpose::Data, 200).unwrap();
    kr.seal(&rk);
    let bytes = kr.encode();

    // An attacker rolls the data key back to version 1 and rewrites the file.
    let mut edited = Keyring::decode(&bytes).unwrap();
    edited.tenants.get_mut("acme").unwrap().current_data = 1;
    let edited_bytes = edited.encode();
    assert_ne!(edited_bytes, bytes);
    let reread = Keyring::decode(&edited_bytes).unwrap();
    assert!(matches!(reread.unlock_key_file(&kf), Err(KeyError::Mac)));
    assert!(matches!(reread.unlock(&pass("pw")), Err(KeyError::Mac)));
    assert!(matches!(reread.verify(&rk), Err(KeyError::Mac)));

    // So does an edited counter or retired flag.
    let mut edited = Keyring::decode(&bytes).unwrap();
    edited.tenants.get_mut("acme").unwrap().seeds[0].encryptions = 1;
    assert!(matches!(edited.verify(&rk), Err(KeyError::Mac)));
}

#[test]
fn every_single_byte_edit_of_the_file_is_detected() {
    let (kr, _, kf) = setup();
    let bytes = kr.encode();
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = bytes.clone();
            bad[i] ^= bit;
            match Keyring::decode(&bad) {
                Err(e) => assert!(matches!(e, KeyError::Format), "byte {i}: {e:?}"),
                Ok(k) => {
                    let r = k.unlock_key_file(&kf);
                    assert!(
                        matches!(r, Err(KeyError::Unlock | KeyError::Mac)),
                        "byte {i}: {r:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn slot_params_cannot_be_downgraded_or_inflated() {
    let (kr, _, _) = setup();
    let SlotKind::Passphrase { params, salt } = kr.slots[0].kind else {
        panic!("slot 0 is a passphrase slot")
    };

    let mut weaker = kr.clone();
    weaker.slots[0].kind = SlotKind::Passphrase {
        params: KdfParams { m_kib: 8, ..params },
        salt,
    };
    assert!(matches!(
        Keyring::decode(&weaker.encode())
            .unwrap()
            .unlock(&pass("pw")),
        Err(KeyError::Unlock)
    ));

    let mut huge = kr.clone();
    huge.slots[0].kind = SlotKind::Passphrase {
        params: KdfParams {
            m_kib: u32::MAX,
            t: u32::MAX,
            p: 1,
        },
        salt,
    };
    let huge = Keyring::decode(&huge.encode()).unwrap();
    assert!(matches!(huge.unlock(&pass("pw")), Err(KeyError::KdfParams)));
    assert!(matches!(
        huge.slots[0].unlock_passphrase(&huge.vault_id, &pass("pw")),
        Err(KeyError::KdfParams)
    ));
}

#[test]
fn slots_add_and_remove() {
    let (mut kr, rk, kf) = setup();
    assert!(matches!(kr.remove_slot(99), Err(KeyError::UnknownSlot)));
    let id = kr
        .add_passphrase_slot(&rk, &pass("second"), cheap())
        .unwrap();
    assert_eq!(id, 2);
    kr.remove_slot(0).unwrap();
    kr.seal(&rk);
    assert!(matches!(kr.unlock(&pass("pw")), Err(KeyError::Unlock)));
    assert!(kr.unlock(&pass("second")).unwrap() == rk);
    kr.remove_slot(1).unwrap();
    assert!(matches!(kr.remove_slot(2), Err(KeyError::LastSlot)));
    assert_eq!(kr.slots.len(), 1);
    // Ids are never reused while higher ones exist.
    assert_eq!(kr.add_key_file_slot(&rk, &kf).unwrap(), 3);
    assert!(matches!(
        kr.add_passphrase_slot(&rk, &pass(""), cheap()),
        Err(KeyError::EmptyPassphrase)
    ));
    assert!(matches!(
        kr.add_passphrase_slot(
            &rk,
            &pass("x"),
            KdfParams {
                m_kib: 1 << 21,
                t: 1,
                p: 1
            }
        ),
        Err(KeyError::KdfParams)
    ));
}

#[test]
fn slot_count_is_capped() {
    let rk = RootKey::generate();
    let kf = KeyFileKey::generate();
    let mut kr = Keyring::new(VaultId::generate(), &rk).unwrap();
    for _ in 0..MAX_SLOTS {
        kr.add_key_file_slot(&rk, &kf).unwrap();
    }
    assert!(matches!(
        kr.add_key_file_slot(&rk, &kf),
        Err(KeyError::TooManySlots)
    ));
}

#[test]
fn a_foreign_root_key_is_refused_before_anything_is_wrapped() {
    let (mut kr, _, kf) = setup();
    let other = RootKey::generate();
    let before = kr.clone();
    assert!(matches!(
        kr.add_tenant(&other, "beta", 0),
        Err(KeyError::WrongRootKey)
    ));
    assert!(matches!(
        kr.rotate(&other, "acme", KeyPurpose::Data, 0),
        Err(KeyError::WrongRootKey)
    ));
    assert!(matches!(
        kr.add_key_file_slot(&other, &kf),
        Err(KeyError::WrongRootKey)
    ));
    assert!(matches!(
        kr.add_passphrase_slot(&other, &pass("x"), cheap()),
        Err(KeyError::WrongRootKey)
    ));
    assert!(matches!(
        kr.tenant_keys(&other, "acme", 1),
        Err(KeyError::WrongRootKey)
    ));
    assert!(matches!(
        kr.rekey(&other, &RootKey::generate(), &[]),
        Err(KeyError::WrongRootKey)
    ));
    assert_eq!(kr, before);
}

#[test]
fn tenants_errors() {
    let (mut kr, rk, _) = setup();
    assert!(matches!(
        kr.add_tenant(&rk, "acme", 0),
        Err(KeyError::TenantExists)
    ));
    assert!(matches!(
        kr.add_tenant(&rk, "", 0),
        Err(KeyError::TenantName)
    ));
    assert!(matches!(
        kr.add_tenant(&rk, &"x".repeat(257), 0),
        Err(KeyError::TenantName)
    ));
    kr.add_tenant(&rk, &"x".repeat(256), 0).unwrap();
    assert!(matches!(
        kr.tenant_keys(&rk, "nobody", 1),
        Err(KeyError::UnknownTenant)
    ));
    assert!(matches!(
        kr.tenant_keys(&rk, "acme", 2),
        Err(KeyError::UnknownKeyVersion)
    ));
    assert!(matches!(
        kr.tenant_keys(&rk, "acme", 0),
        Err(KeyError::UnknownKeyVersion)
    ));
    assert!(matches!(
        kr.rotate(&rk, "nobody", KeyPurpose::Data, 0),
        Err(KeyError::UnknownTenant)
    ));
    assert!(matches!(
        kr.note_encryptions("nobody", 1, 1),
        Err(KeyError::UnknownTenant)
    ));
    assert!(matches!(
        kr.note_encryptions("acme", 7, 1),
        Err(KeyError::UnknownKeyVersion)
    ));
    assert!(matches!(
        kr.shred_tenant("nobody"),
        Err(KeyError::UnknownTenant)
    ));
}

#[test]
fn tenant_keys_match_the_published_derivation() {
    // tenant_keys = derive_tenant_keys(unwrapped seed, ...): the two tenants'
    // keys and the two versions' keys all differ.
    let (mut kr, rk, _) = setup();
    kr.add_tenant(&rk, "beta", 0).unwrap();
    let a = kr.tenant_keys(&rk, "acme", 1).unwrap();
    let b = kr.tenant_keys(&rk, "beta", 1).unwrap();
    assert_ne!(a.index.digest(&[b"e164:+1"]), b.index.digest(&[b"e164:+1"]));
    assert_ne!(a.mac.tag(&[b"r"]), b.mac.tag(&[b"r"]));
    let sealed = a.data.seal(b"", b"x").unwrap();
    assert!(matches!(b.data.open(b"", &sealed), Err(KeyError::Decrypt)));
    // Unrelated seed gives unrelated keys.
    let s = derive_tenant_keys(&TenantSeed::generate(), &kr.vault_id, "acme", 1);
    assert_ne!(s.index.digest(&[b"e164:+1"]), a.index.digest(&[b"e164:+1"]));
}

#[test]
fn rotation_keeps_old_versions_and_tracks_retirement() {
    let (mut kr, rk, _) = setup();
    let v1 = probe(&kr, &rk, 1);
    let old = kr.tenant_keys(&rk, "acme", 1).unwrap();
    let old_ct = old.data.seal(b"aad", b"body").unwrap();

    assert_eq!(kr.rotate(&rk, "acme", KeyPurpose::Data, 200).unwrap(), 2);
    let t = &kr.tenants["acme"];
    assert_eq!((t.current_data, t.current_index), (2, 1));
    assert!(!t.seeds[0].retired, "v1 is still the index version");
    assert_eq!(t.seeds[1].created_at, 200);

    assert_eq!(kr.rotate(&rk, "acme", KeyPurpose::Index, 300).unwrap(), 3);
    let t = &kr.tenants["acme"];
    assert_eq!((t.current_data, t.current_index), (2, 3));
    let retired: Vec<bool> = t.seeds.iter().map(|s| s.retired).collect();
    assert_eq!(retired, [true, false, false]);

    // Old data still opens; new versions use new keys.
    assert_eq!(probe(&kr, &rk, 1), v1);
    let again = kr.tenant_keys(&rk, "acme", 1).unwrap();
    assert_eq!(
        again.data.open(b"aad", &old_ct).unwrap().as_slice(),
        b"body"
    );
    assert_ne!(probe(&kr, &rk, 2), v1);
    assert_ne!(probe(&kr, &rk, 3), probe(&kr, &rk, 2));
    let cur = kr.current_keys(&rk, "acme", KeyPurpose::Data).unwrap();
    assert_eq!(cur.version, 2);
    assert!(matches!(
        cur.data.open(b"aad", &old_ct),
        Err(KeyError::Decrypt)
    ));
    assert_eq!(
        kr.current_keys(&rk, "acme", KeyPurpose::Index)
            .unwrap()
            .version,
        3
    );

    kr.seal(&rk);
    let back = Keyring::decode(&kr.encode()).unwrap();
    assert_eq!(back, kr);
}

#[test]
fn encryption_counter_signals_rotation() {
    let (mut kr, _, _) = setup();
    assert!(!kr
        .note_encryptions("acme", 1, ROTATE_AFTER_ENCRYPTIONS - 1)
        .unwrap());
    assert!(kr.note_encryptions("acme", 1, 1).unwrap());
    assert!(
        kr.note_encryptions("acme", 1, 0).unwrap(),
        "a missed signal repeats"
    );
    assert!(kr.note_encryptions("acme", 1, u64::MAX).unwrap());
    assert_eq!(kr.tenants["acme"].seeds[0].encryptions, u64::MAX);
}

#[test]
fn shredding_destroys_every_seed() {
    let (mut kr, rk, kf) = setup();
    kr.rotate(&rk, "acme", KeyPurpose::Data, 1).unwrap();
    let keys = kr.tenant_keys(&rk, "acme", 2).unwrap();
    let ct = keys.data.seal(b"", b"+15550100").unwrap();
    drop(keys);
    kr.shred_tenant("acme").unwrap();
    kr.shred_tenant("acme").unwrap();
    let t = &kr.tenants["acme"];
    assert!(t.is_shredded());
    assert_eq!((t.current_data, t.current_index), (0, 0));
    for v in [0, 1, 2] {
        assert!(matches!(
            kr.tenant_keys(&rk, "acme", v),
            Err(KeyError::Shredded)
        ));
    }
    assert!(matches!(
        kr.current_keys(&rk, "acme", KeyPurpose::Data),
        Err(KeyError::Shredded)
    ));
    assert!(matches!(
        kr.rotate(&rk, "acme", KeyPurpose::Data, 2),
        Err(KeyError::Shredded)
    ));
    assert!(matches!(
        kr.note_encryptions("acme", 1, 1),
        Err(KeyError::Shredded)
    ));
    assert!(matches!(
        kr.add_tenant(&rk, "acme", 2),
        Err(KeyError::TenantExists)
    ));
    kr.seal(&rk);
    let back = Keyring::decode(&kr.encode()).unwrap();
    assert!(back.unlock_key_file(&kf).is_ok());
    assert!(back.tenants["acme"].is_shredded());
    let _ = ct; // nothing left can open it
}

#[test]
fn rekey_rewraps_seeds_and_slots() {
    let (mut kr, old, kf) = setup();
    kr.add_passphrase_slot(&old, &pass("second"), cheap())
        .unwrap();
    kr.rotate(&old, "acme", KeyPurpose::Index, 5).unwrap();
    kr.seal(&old);
    let before = (probe(&kr, &old, 1), probe(&kr, &old, 2));
    let new = RootKey::generate();

    // A missing credential changes nothing.
    let snapshot = kr.clone();
    let p1 = pass("pw");
    let r = kr.rekey(
        &old,
        &new,
        &[Credential::Passphrase(&p1), Credential::KeyFile(&kf)],
    );
    assert!(
        matches!(r, Err(KeyError::RekeyMissingCredential { slot: 2 })),
        "{r:?}"
    );
    assert_eq!(kr, snapshot);

    let p2 = pass("second");
    kr.rekey(
        &old,
        &new,
        &[
            Credential::KeyFile(&kf),
            Credential::Passphrase(&p2),
            Credential::Passphrase(&p1),
        ],
    )
    .unwrap();
    let back = Keyring::decode(&kr.encode()).unwrap();
    assert_eq!(
        back.slots.iter().map(|s| s.id).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert!(back.unlock(&pass("pw")).unwrap() == new);
    assert!(back.unlock(&pass("second")).unwrap() == new);
    assert!(back.unlock_key_file(&kf).unwrap() == new);
    // Same seeds, so same derived keys: no data needs re-encryption.
    assert_eq!((probe(&back, &new, 1), probe(&back, &new, 2)), before);
    assert!(matches!(
        back.tenant_keys(&old, "acme", 1),
        Err(KeyError::WrongRootKey)
    ));
    assert!(matches!(back.verify(&old), Err(KeyError::Mac)));
    // Passphrase slots keep their params but get a fresh salt.
    let (
        SlotKind::Passphrase {
            params: a,
            salt: sa,
        },
        SlotKind::Passphrase {
            params: b,
            salt: sb,
        },
    ) = (snapshot.slots[0].kind.clone(), back.slots[0].kind.clone())
    else {
        panic!("slot 0 is a passphrase slot")
    };
    assert_eq!(a, b);
    assert_ne!(sa, sb);
}

#[test]
fn decode_rejects_bad_framing() {
    let (kr, _, _) = setup();
    let bytes = kr.encode();
    assert!(matches!(Keyring::decode(&[]), Err(KeyError::Format)));
    assert!(matches!(Keyring::decode(&[1; 32]), Err(KeyError::Format)));
    let mut v3 = bytes.clone();
    v3[0] = 3;
    assert!(matches!(Keyring::decode(&v3), Err(KeyError::Format)));
    let mut v1 = bytes.clone();
    v1[0] = 1;
    assert!(matches!(
        Keyring::decode(&v1),
        Err(KeyError::OldFormat { found: 1 })
    ));
    let mut trailing = bytes.clone();
    trailing.insert(bytes.len() - 32, 0);
    assert!(matches!(Keyring::decode(&trailing), Err(KeyError::Format)));
    let mut huge = bytes.clone();
    huge.resize(MAX_KEYRING_LEN + 1, 0);
    assert!(matches!(Keyring::decode(&huge), Err(KeyError::Format)));
    for len in 0..bytes.len() {
        assert!(
            Keyring::decode(&bytes[..len]).is_err(),
            "prefix of {len} bytes"
        );
    }
}

#[test]
fn decode_rejects_structural_nonsense() {
    let (kr, rk, kf) = setup();
    let mut dup = kr.clone();
    dup.slots[1].id = 0;
    assert!(matches!(
        Keyring::decode(&dup.encode()),
        Err(KeyError::Format)
    ));
    let mut dangling = kr.clone();
    dangling.tenants.get_mut("acme").unwrap().current_data = 9;
    assert!(matches!(
        Keyring::decode(&dangling.encode()),
        Err(KeyError::Format)
    ));
    let mut many = Keyring::new(kr.vault_id, &rk).unwrap();
    for _ in 0..MAX_SLOTS {
        many.add_key_file_slot(&rk, &kf).unwrap();
    }
    many.slots.push(many.slots[0].clone());
    many.slots.last_mut().unwrap().id = 1000;
    assert!(matches!(
        Keyring::decode(&many.encode()),
        Err(KeyError::Format)
    ));
}

#[test]
fn debug_output_holds_no_secrets() {
    let raw = [0xa7u8; 32];
    let hex_raw = hex::encode(raw);
    let checks: Vec<(String, &str)> = vec![
        (
            format!(
                "{:?} {:#?}",
                RootKey::from_bytes(&raw),
                RootKey::from_bytes(&raw)
            ),
            "RootKey",
        ),
        (
            format!("{:?}", KeyFileKey::from_bytes(&raw).unwrap()),
            "KeyFileKey",
        ),
        (format!("{:?}", TenantSeed::from_bytes(&raw)), "TenantSeed"),
        (format!("{:?}", AuditKey::from_bytes(&raw)), "AuditKey"),
        (format!("{:?}", pass("hunter2-secret")), "Passphrase"),
    ];
    for (out, name) in &checks {
        assert!(out.starts_with(&format!("{name} {{ .. }}")), "{out}");
        assert!(
            !out.contains(&hex_raw) && !out.contains("167") && !out.contains("a7"),
            "{out}"
        );
        assert!(!out.contains("hunter2"), "{out}");
    }
    let keys = derive_tenant_keys(&TenantSeed::from_bytes(&raw), &VaultId([0; 16]), "acme", 4);
    assert_eq!(format!("{:?}", keys.data), "DataKey { .. }");
    assert_eq!(format!("{:?}", keys.index), "IndexKey { .. }");
    assert_eq!(format!("{:?}", keys.mac), "MacKey { .. }");
    assert_eq!(format!("{keys:?}"), "TenantKeys { version: 4, .. }");
    let _: &DataKey = &keys.data;

    // The keyring's Debug omits wrapped keys and the MAC.
    let (kr, _, _) = setup();
    let out = format!("{kr:?}");
    assert!(out.contains("KeySlot { id: 0"), "{out}");
    assert!(
        !out.contains("wrapped") && !out.contains("nonce") && !out.contains("mac:"),
        "{out}"
    );
    // Error messages never carry key bytes either.
    let msg = KeyError::Unlock.to_string();
    assert!(msg.contains("passphrase or key file is wrong"), "{msg}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn decode_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Keyring::decode(&bytes);
        let mut framed = bytes.clone();
        framed.insert(0, 1);
        let _ = Keyring::decode(&framed);
    }
}

fn sample_keyring_bytes() -> Vec<u8> {
    use std::sync::OnceLock;
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            let (mut kr, rk, _) = setup();
            kr.add_tenant(&rk, "beta", 7).unwrap();
            kr.rotate(&rk, "beta", KeyPurpose::Data, 8).unwrap();
            kr.shred_tenant("acme").unwrap();
            kr.seal(&rk);
            kr.encode()
        })
        .clone()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn decode_never_panics_on_mutated_keyrings(
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let good = sample_keyring_bytes();
        let mut bytes = good.clone();
        for (i, x) in &flips {
            let i = i.index(bytes.len());
            bytes[i] ^= *x;
        }
        let _ = Keyring::decode(&bytes);
        let truncated = &good[..cut.index(good.len())];
        prop_assert!(Keyring::decode(truncated).is_err());
        let mut extended = good.clone();
        extended.extend_from_slice(&tail);
        let _ = Keyring::decode(&extended);
    }

    #[test]
    fn keyring_round_trips(
        names in proptest::collection::btree_set("[a-z]{1,12}", 0..5),
        rotations in proptest::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 0..6),
        now in any::<u64>(),
    ) {
        let rk = RootKey::generate();
        let mut kr = Keyring::new(VaultId::generate(), &rk).unwrap();
        kr.add_key_file_slot(&rk, &KeyFileKey::generate()).unwrap();
        let names: Vec<String> = names.into_iter().collect();
        for n in &names {
            kr.add_tenant(&rk, n, now).unwrap();
        }
        if !names.is_empty() {
            for (i, data) in rotations {
                let purpose = if data { KeyPurpose::Data } else { KeyPurpose::Index };
                kr.rotate(&rk, &names[i.index(names.len())], purpose, now).unwrap();
            }
        }
        kr.seal(&rk);
        let back = Keyring::decode(&kr.encode()).unwrap();
        back.verify(&rk).unwrap();
        prop_assert_eq!(back.encode(), kr.encode());
        prop_assert_eq!(back, kr);
    }
}

#[test]
fn vault_keys_survive_rekey_and_need_the_root_key() {
    let (mut kr, rk, kf) = setup();
    let before = kr
        .vault_keys(&rk)
        .unwrap()
        .row_mac
        .tag(&[b"tenants", b"acme"]);
    let backup_before = kr.vault_keys(&rk).unwrap().backup.tag(&[b"x"]);
    assert_ne!(before, backup_before, "row and backup keys differ");
    assert!(matches!(
        kr.vault_keys(&RootKey::generate()),
        Err(KeyError::WrongRootKey)
    ));
    let new = RootKey::generate();
    kr.rekey(
        &rk,
        &new,
        &[
            Credential::Passphrase(&pass("pw")),
            Credential::KeyFile(&kf),
        ],
    )
    .unwrap();
    let back = Keyring::decode(&kr.encode()).unwrap();
    let rk2 = back.unlock(&pass("pw")).unwrap();
    assert!(rk2 == new);
    assert_eq!(
        back.vault_keys(&rk2)
            .unwrap()
            .row_mac
            .tag(&[b"tenants", b"acme"]),
        before,
        "rekey changes no vault-wide key"
    );
    assert!(matches!(back.vault_keys(&rk), Err(KeyError::WrongRootKey)));
    // Two vaults never share vault keys.
    let (other, ork, _) = setup();
    assert_ne!(
        other
            .vault_keys(&ork)
            .unwrap()
            .row_mac
            .tag(&[b"tenants", b"acme"]),
        before
    );
}

#[test]
fn retire_destroys_only_old_versions() {
    let (mut kr, rk, _) = setup();
    kr.rotate(&rk, "acme", KeyPurpose::Data, 1).unwrap(); // v2 data
    kr.rotate(&rk, "acme", KeyPurpose::Index, 2).unwrap(); // v3 index
    kr.rotate(&rk, "acme", KeyPurpose::Data, 3).unwrap(); // v4 data
                                                          // current data 4, index 3: versions below 3 may go, not 3 or 4
    assert!(matches!(
        kr.retire_below("acme", 4),
        Err(KeyError::RetireCurrent { current: 3 })
    ));
    assert!(matches!(
        kr.retire_below("nope", 2),
        Err(KeyError::UnknownTenant)
    ));
    let keep = probe(&kr, &rk, 3);
    assert_eq!(kr.retire_below("acme", 3).unwrap(), vec![1, 2]);
    assert_eq!(kr.retire_below("acme", 2).unwrap(), Vec::<u32>::new());
    kr.seal(&rk);
    let back = Keyring::decode(&kr.encode()).unwrap();
    back.verify(&rk).unwrap();
    for v in [1, 2] {
        assert!(matches!(
            back.tenant_keys(&rk, "acme", v),
            Err(KeyError::VersionRetired { version }) if version == v
        ));
    }
    assert!(matches!(
        back.tenant_keys(&rk, "acme", 9),
        Err(KeyError::UnknownKeyVersion)
    ));
    assert_eq!(probe(&back, &rk, 3), keep);
    assert_eq!(back.tenants["acme"].destroyed_below, 3);
    // a retired version is also refused after a later rotation
    let mut more = back.clone();
    more.rotate(&rk, "acme", KeyPurpose::Index, 4).unwrap();
    assert!(more.tenant_keys(&rk, "acme", 2).is_err());
    // a shredded tenant has nothing to retire
    more.shred_tenant("acme").unwrap();
    assert!(matches!(
        more.retire_below("acme", 1),
        Err(KeyError::Shredded)
    ));
}

#[test]
fn change_passphrase_rewraps_one_slot_only() {
    let (mut kr, rk, kf) = setup();
    let (got, slot) = kr.unlock_with_slot(&pass("pw")).unwrap();
    assert!(got == rk);
    assert_eq!(slot, 0);
    assert_eq!(kr.unlock_key_file_with_slot(&kf).unwrap().1, 1);
    let key_file_slot = kr.slots[1].clone();
    let tenants = kr.tenants.clone();
    assert!(matches!(
        kr.change_passphrase(&rk, 1, &pass("x"), None),
        Err(KeyError::NotPassphraseSlot)
    ));
    assert!(matches!(
        kr.change_passphrase(&rk, 7, &pass("x"), None),
        Err(KeyError::UnknownSlot)
    ));
    assert!(matches!(
        kr.change_passphrase(&rk, 0, &pass(""), None),
        Err(KeyError::EmptyPassphrase)
    ));
    assert!(matches!(
        kr.change_passphrase(&RootKey::generate(), 0, &pass("x"), None),
        Err(KeyError::WrongRootKey)
    ));
    kr.change_passphrase(&rk, 0, &pass("new pw"), None).unwrap();
    kr.seal(&rk);
    let back = Keyring::decode(&kr.encode()).unwrap();
    assert!(matches!(back.unlock(&pass("pw")), Err(KeyError::Unlock)));
    assert!(back.unlock(&pass("new pw")).unwrap() == rk);
    assert_eq!(back.slots[1], key_file_slot);
    assert_eq!(back.tenants, tenants, "no seed was touched");
    assert!(matches!(back.slots[0].kind, SlotKind::Passphrase { params, .. } if params == cheap()));
}
