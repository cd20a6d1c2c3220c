//! The encryption budget burnt 65,536 per tenant context: the unused part of a
//! reservation in the keyring's counter was lost at every tenant-cache refresh (every
//! 2 s), every process start and every keyring change, and imports did not count the
//! records a merge sealed a second time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;
use common::vault::{source, tenant};

use common::vault::{self, open, when_free};

use std::path::Path;

use phonevault::vault::{Vault, ENCRYPTION_RESERVATION, KEYRING_FILE, TENANT_CACHE_TTL};
use phonevault_keys::Keyring;

fn new_vault(dir: &Path) -> Vault {
    vault::create(dir, &["t"], &["otp", "support"])
}

/// The keyring's encryption counter of tenant `t`, version 1, as stored in the file.
/// Adds `number` to tenant `t` with consent `otp` (source `web`).
fn add_otp(v: &Vault, number: &str) {
    v.add(&tenant("t"), number, None, &["otp".into()], &source("web"))
        .unwrap();
}

fn counter(dir: &Path) -> u64 {
    let ring = Keyring::decode(&std::fs::read(dir.join(KEYRING_FILE)).unwrap()).unwrap();
    ring.tenants["t"].seeds[0].encryptions
}

fn import(v: &Vault, purpose: &str, nums: &[String]) {
    vault::import(v, "t", &[purpose], nums);
}

#[test]
fn a_cache_refresh_keeps_the_reservation() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().join("v");
    let v = new_vault(&dir);
    add_otp(&v, "+447400123001");
    let first = counter(&dir);
    assert!(first >= 1);
    std::thread::sleep(TENANT_CACHE_TTL + std::time::Duration::from_millis(200));
    add_otp(&v, "+447400123002");
    // Still within the first reservation, or one more at most.
    assert!(
        counter(&dir) <= ENCRYPTION_RESERVATION,
        "counter {} after two adds",
        counter(&dir)
    );
    drop(v);
    // Closing gives the unused part back: the counter holds what was used.
    assert_eq!(counter(&dir), 2);

    // A new process (here: a new open) starts from there.
    let v = open(&dir);
    add_otp(&v, "+447400123003");
    drop(v);
    assert_eq!(counter(&dir), 3);
}

#[test]
fn every_seal_of_an_import_is_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().join("v");
    let v = new_vault(&dir);
    let nums: Vec<String> = (0..30).map(|i| format!("+4474001{i:05}")).collect();
    // 20 new records: 20 seals.
    import(&v, "otp", &nums[..20]);
    // 20 rows: 10 already there gain a consent (each sealed by the reader, then
    // sealed again as a merge), 10 new: 30 seals. The first attempt (every number
    // taken for new) conflicts and the chunk is redone: its seals count once.
    import(&v, "support", &nums[10..]);
    drop(v);
    assert_eq!(counter(&dir), 20 + 30);
}

/// An older keyring export carries older (lower) encryption counters: importing it
/// reset the nonce budget of every key it holds.
#[test]
fn a_keyring_import_keeps_the_higher_counters() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().join("v");
    let v = new_vault(&dir);
    add_otp(&v, "+447400123001");
    let old = v.export_keyring().unwrap();
    for i in 2..=6 {
        add_otp(&v, &format!("+44740012300{i}"));
    }
    drop(v);
    assert_eq!(counter(&dir), 6);
    when_free(|| Vault::import_keyring(&dir, &old, &vault::unlock(), false));
    assert_eq!(counter(&dir), 6);
    // and the vault opens with it
    drop(open(&dir));
}
