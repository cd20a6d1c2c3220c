//! Vault-level guarantees on the real sled store: tenant isolation, ciphertexts bound
//! to their place, tampering and faults reported without losing data.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;
use common::vault::{source, tenant};

use common::vault;

use std::path::Path;
use std::sync::Arc;

use phonevault::store::{MemoryStore, StoreError, Tree};

use phonevault::policy::TenantName;
use phonevault::vault::{AddOutcome, ImportOptions, OpenOptions, Vault, VaultError};

fn new_vault(dir: &Path) -> Vault {
    vault::create(dir, &["a", "b"], &["otp", "support"])
}

fn purposes(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| s.to_string()).collect()
}

/// Adds `number` to `tenant` with consents for `p` (source `t`).
fn add(v: &Vault, tenant: &TenantName, number: &str, p: &[&str]) -> Result<AddOutcome, VaultError> {
    v.add(tenant, number, None, &purposes(p), &source("t"))
}

fn records(v: &Vault) -> Vec<(Vec<u8>, Vec<u8>)> {
    v.store()
        .range(Tree::Records, b"", None, usize::MAX)
        .unwrap()
}

#[test]
fn same_number_in_two_tenants_is_unlinkable() {
    let dir = tempfile::tempdir().unwrap();
    let v = new_vault(&dir.path().join("v"));
    let ida = add(&v, &tenant("a"), "+447400123958", &["otp"])
        .unwrap()
        .id();
    let idb = add(&v, &tenant("b"), "+447400123958", &["otp"])
        .unwrap()
        .id();
    assert_ne!(ida, idb);
    let recs = records(&v);
    assert_eq!(recs.len(), 2);
    // different ciphertexts (beyond the header)
    assert_ne!(recs[0].1[9..], recs[1].1[9..]);
    // different blind indexes: the digests (after tenant id, kind, version) differ
    let idx = v.store().range(Tree::Index, b"", None, usize::MAX).unwrap();
    assert_eq!(idx.len(), 2);
    assert_ne!(idx[0].0[9..], idx[1].0[9..]);
    assert_ne!(idx[0].0[..4], idx[1].0[..4]);

    // b cannot find a's number once b no longer holds it
    assert!(v.delete(&tenant("b"), idb).unwrap());
    assert!(v
        .find(&tenant("b"), "+447400123958", None, "otp")
        .unwrap()
        .is_none());
    assert!(v
        .find(&tenant("a"), "+447400123958", None, "otp")
        .unwrap()
        .is_some());
    // nor read a's record by id
    assert!(v.get(&tenant("b"), ida, "otp").unwrap().is_none());
}

#[test]
fn ciphertext_copied_into_another_record_fails_to_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let v = new_vault(&dir.path().join("v"));
    let id1 = add(&v, &tenant("a"), "+447400123958", &["otp"])
        .unwrap()
        .id();
    let id2 = add(&v, &tenant("a"), "+12015550143", &["otp"])
        .unwrap()
        .id();
    let recs = records(&v);
    let (k1, v1) = recs.iter().find(|(k, _)| k.ends_with(&id1.0)).unwrap();
    let (k2, _) = recs.iter().find(|(k, _)| k.ends_with(&id2.0)).unwrap();
    let mut b = phonevault::store::Batch::default();
    b.put(Tree::Records, k2.clone(), v1.clone());
    v.store().commit(&b).unwrap();
    assert!(matches!(
        v.get(&tenant("a"), id2, "otp"),
        Err(VaultError::Record(phonevault::record::RecordError::Decrypt))
    ));
    // the untouched record still reads
    assert!(v.get(&tenant("a"), id1, "otp").unwrap().is_some());
    let _ = k1;
}

#[test]
fn tampered_and_corrupt_records_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let v = new_vault(&dir.path().join("v"));
    let id = add(&v, &tenant("a"), "+447400123958", &["otp"])
        .unwrap()
        .id();
    let (k, stored) = records(&v).remove(0);
    for i in [0usize, 3, 9, 20, stored.len() - 1] {
        let mut t = stored.clone();
        t[i] ^= 0x40;
        let mut b = phonevault::store::Batch::default();
        b.put(Tree::Records, k.clone(), t);
        v.store().commit(&b).unwrap();
        let err = v
            .find(&tenant("a"), "+447400123958", None, "otp")
            .unwrap_err();
        assert!(
            matches!(err, VaultError::Record(_) | VaultError::Key(_)),
            "byte {i}: {err:?}"
        );
        assert!(!err.to_string().contains("7400"));
    }
    // truncated bytes
    let mut b = phonevault::store::Batch::default();
    b.put(Tree::Records, k.clone(), vec![1, 0, 0]);
    v.store().commit(&b).unwrap();
    assert!(v.get(&tenant("a"), id, "otp").is_err());
    // restoring the original bytes makes it readable again: nothing was lost
    let mut b = phonevault::store::Batch::default();
    b.put(Tree::Records, k, stored);
    v.store().commit(&b).unwrap();
    assert!(v.get(&tenant("a"), id, "otp").unwrap().is_some());
}

#[test]
fn tampered_tenant_row_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    let v = new_vault(&path);
    let row = v.store().get(Tree::Tenants, b"a").unwrap().unwrap();
    let mut t = row.clone();
    let n = t.len();
    t[n / 2] ^= 1;
    let mut b = phonevault::store::Batch::default();
    b.put(Tree::Tenants, b"a".to_vec(), t);
    // a row moved to another key fails too
    b.put(Tree::Tenants, b"c".to_vec(), row);
    v.store().commit(&b).unwrap();
    v.store().flush().unwrap();
    drop(v);
    let v = Vault::open(&path, &vault::unlock(), OpenOptions::default()).unwrap();
    assert!(matches!(
        v.find(&tenant("a"), "+447400123958", None, "otp"),
        Err(VaultError::RowTampered("tenants"))
    ));
    assert!(matches!(
        v.find(&tenant("c"), "+447400123958", None, "otp"),
        Err(VaultError::RowTampered("tenants"))
    ));
}

#[test]
fn full_disk_fails_cleanly_and_loses_nothing() {
    let store = Arc::new(MemoryStore::new());
    let v = Vault::in_memory(store.clone()).unwrap();
    v.create_tenant(&tenant("a"), &purposes(&["otp"]), Some(1000))
        .unwrap();
    let id = add(&v, &tenant("a"), "+447400123958", &["otp"])
        .unwrap()
        .id();
    let before = records(&v);
    store.fail_commits_after(Some(0));
    let err = add(&v, &tenant("a"), "+12015550143", &["otp"]).unwrap_err();
    assert!(
        matches!(err, VaultError::Store(StoreError::DiskFull)),
        "{err:?}"
    );
    assert!(err.to_string().contains("disk is full"));
    store.fail_commits_after(None);
    assert_eq!(records(&v), before, "nothing half-written");
    assert!(v.get(&tenant("a"), id, "otp").unwrap().is_some());
    assert!(v
        .find(&tenant("a"), "+12015550143", None, "otp")
        .unwrap()
        .is_none());

    // an import that hits a full disk midway keeps the chunks before it, and a
    // re-run completes it
    let csv: String = std::iter::once("phone".to_string())
        .chain((0..2500).map(|i| format!("+1201555{:04}", i)))
        .collect::<Vec<_>>()
        .join("\n");
    let opts = ImportOptions {
        tenant: tenant("a"),
        purposes: purposes(&["otp"]),
        source: source("import"),
        region: None,
    };
    store.fail_commits_after(Some(1));
    let err = v
        .import(
            &opts,
            phonevault::cli::CsvRows::new(csv.as_bytes(), "phone").unwrap(),
            |_| Ok(()),
            |_| {},
        )
        .unwrap_err();
    assert!(matches!(err, VaultError::Store(StoreError::DiskFull)));
    store.fail_commits_after(None);
    let s = v
        .import(
            &opts,
            phonevault::cli::CsvRows::new(csv.as_bytes(), "phone").unwrap(),
            |_| Ok(()),
            |_| {},
        )
        .unwrap();
    assert_eq!(s.rows, 2500);
    assert_eq!(s.created + s.unchanged, 2500);
    assert_eq!(s.created, 1500, "{s:?}");
    // 2500 + the first record
    assert_eq!(records(&v).len(), 2501);
}

#[test]
fn a_vault_open_elsewhere_is_reported_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    let _v = new_vault(&path);
    let out = common::phonevault(&path, common::PASS, &["tenant", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use by another phonevault process"),
        "{err}"
    );
}

/// A disk that stops taking flushes: no read is answered (its audit entry is not
/// durable) and no write is acknowledged; both work again once the disk does.
#[test]
fn failing_flushes_answer_no_read_and_acknowledge_no_write() {
    let store = Arc::new(MemoryStore::new());
    let v = Vault::in_memory(store.clone()).unwrap();
    let a = tenant("a");
    v.create_tenant(&a, &purposes(&["otp"]), None).unwrap();
    add(&v, &a, "+447400123958", &["otp"]).unwrap();
    store.fail_flushes(true);
    let err = v.find(&a, "+447400123958", None, "otp").unwrap_err();
    assert_eq!(err.code(), "audit_unavailable", "{err:?}");
    assert!(add(&v, &a, "+12015550143", &["otp"]).is_err());
    store.fail_flushes(false);
    assert!(v.find(&a, "+447400123958", None, "otp").unwrap().is_some());
    add(&v, &a, "+12015550143", &["otp"]).unwrap();
    assert!(v.find(&a, "+12015550143", None, "otp").unwrap().is_some());
}

/// Writes that lose the race for a guarded row (another writer changed it first) are
/// prepared again on what is stored now: the add lands once, with one audit entry.
#[test]
fn writes_that_lose_a_guard_are_retried_on_the_new_state() {
    let store = Arc::new(MemoryStore::new());
    let v = Vault::in_memory(store.clone()).unwrap();
    let a = tenant("a");
    v.create_tenant(&a, &purposes(&["otp", "support"]), None)
        .unwrap();
    add(&v, &a, "+447400123958", &["otp"]).unwrap();
    let before = records(&v).len();
    store.lose_guards(3);
    add(&v, &a, "+447400123958", &["support"]).unwrap();
    assert_eq!(records(&v).len(), before, "merged, not duplicated");
    let found = v.find(&a, "+447400123958", None, "support").unwrap();
    assert!(found.is_some());
    // Past the retry budget, the conflict reaches the caller and nothing changed.
    store.lose_guards(1_000);
    let err = add(&v, &a, "+12015550143", &["otp"]).unwrap_err();
    assert!(
        matches!(err, VaultError::Store(StoreError::Conflict)),
        "{err:?}"
    );
    store.lose_guards(0);
    assert!(v.find(&a, "+12015550143", None, "otp").unwrap().is_none());
}
