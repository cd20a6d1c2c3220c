//! Key rotation and rewrap: old versions keep decrypting, lookups span index versions
//! until the rewrap, and an interrupted rewrap loses nothing and resumes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;
use common::vault::{record_id, source, tenant};

use common::vault::{self, in_memory, numbers};

use phonevault::record;
use phonevault::store::{MemoryStore, Store, StoreError, Tree};
use phonevault::vault::{Vault, VaultError};

fn p(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Imports `nums` into tenant `t` with consent for otp.
fn import(v: &Vault, nums: &[String]) {
    vault::import(v, "t", &["otp"], nums);
}

fn versions(store: &MemoryStore) -> Vec<(u32, u32)> {
    store
        .range(Tree::Records, b"", None, usize::MAX)
        .unwrap()
        .iter()
        .map(|(_, v)| {
            let h = record::parse_header(v).unwrap();
            (h.data_key_version, h.index_key_version)
        })
        .collect()
}

#[test]
fn rotation_rewrap_and_index_rebuild() {
    let (store, v) = in_memory();
    v.create_tenant(&tenant("t"), &p(&["otp"]), Some(10_000))
        .unwrap();
    let nums = numbers(0, 1200);
    import(&v, &nums[..600]);
    assert!(versions(&store).iter().all(|&x| x == (1, 1)));

    // data key: new writes use v2, v1 still decrypts
    assert_eq!(v.rotate_key(&tenant("t"), false).unwrap(), 2);
    v.add(&tenant("t"), &nums[600], None, &p(&["otp"]), &source("web"))
        .unwrap();
    assert!(versions(&store).contains(&(2, 1)));
    assert!(v
        .find(&tenant("t"), &nums[0], None, "otp")
        .unwrap()
        .is_some());

    // index key: old entries still found; re-adding an old number does not duplicate
    assert_eq!(v.rotate_key(&tenant("t"), true).unwrap(), 3);
    assert!(v
        .find(&tenant("t"), &nums[1], None, "otp")
        .unwrap()
        .is_some());
    let before = store
        .range(Tree::Records, b"", None, usize::MAX)
        .unwrap()
        .len();
    v.add(&tenant("t"), &nums[2], None, &p(&["otp"]), &source("web"))
        .unwrap();
    import(&v, &nums[..700]);
    let after = store
        .range(Tree::Records, b"", None, usize::MAX)
        .unwrap()
        .len();
    assert_eq!(after, before + 99, "only the 99 new numbers were created");
    let last4 = &nums[3][nums[3].len() - 4..];
    assert_eq!(
        v.find_last4(&tenant("t"), 44, last4, "otp").unwrap().len(),
        1
    );

    // an interrupted rewrap leaves everything readable and resumes
    store.fail_commits_after(Some(1));
    let err = v.rewrap(&tenant("t"), |_, _| {}).unwrap_err();
    assert!(matches!(err, VaultError::Store(StoreError::DiskFull)));
    store.fail_commits_after(None);
    for n in &nums[..700] {
        assert!(
            v.find(&tenant("t"), n, None, "otp").unwrap().is_some(),
            "{n}"
        );
    }
    let mut progress = Vec::new();
    let r = v
        .rewrap(&tenant("t"), |d, t| progress.push((d, t)))
        .unwrap();
    assert_eq!(r.records, 700);
    assert_eq!((r.data_key_version, r.index_key_version), (2, 3));
    assert!(r.resealed > 0 && r.resealed < 700, "{r:?}");
    assert_eq!(progress.last(), Some(&(700, 700)));
    assert!(versions(&store).iter().all(|&x| x == (2, 3)));

    // every index entry is now under version 3 (exact + last-4 per record)
    let idx = store.range(Tree::Index, b"", None, usize::MAX).unwrap();
    assert_eq!(idx.len(), 1400);
    assert!(idx.iter().all(|(k, _)| k[5..9] == 3u32.to_be_bytes()));
    for n in &nums[..700] {
        assert!(
            v.find(&tenant("t"), n, None, "otp").unwrap().is_some(),
            "{n}"
        );
    }
    assert_eq!(
        v.find_last4(&tenant("t"), 44, last4, "otp").unwrap().len(),
        1
    );
    // a second rewrap has nothing to do
    let r = v.rewrap(&tenant("t"), |_, _| {}).unwrap();
    assert_eq!((r.resealed, r.reindexed), (0, 0));
}

#[test]
fn shredding_makes_every_copy_undecryptable() {
    let (store, v) = in_memory();
    v.create_tenant(&tenant("t"), &p(&["otp"]), Some(1000))
        .unwrap();
    v.create_tenant(&tenant("keep"), &p(&["otp"]), None)
        .unwrap();
    let nums = numbers(0, 50);
    import(&v, &nums);
    v.add(
        &tenant("keep"),
        &nums[0],
        None,
        &p(&["otp"]),
        &source("web"),
    )
    .unwrap();
    // a "backup" of the store taken before the shredding
    let backup = MemoryStore::new();
    for tree in Tree::ALL {
        let mut b = phonevault::store::Batch::default();
        for (k, val) in store.range(tree, b"", None, usize::MAX).unwrap() {
            b.put(tree, k, val);
        }
        backup.commit(&b).unwrap();
    }
    let r = v.shred_tenant(&tenant("t")).unwrap();
    assert_eq!(r.records, 50);
    assert!(matches!(
        v.find(&tenant("t"), &nums[0], None, "otp"),
        Err(VaultError::UnknownTenant(_))
    ));
    assert!(
        v.find(&tenant("keep"), &nums[0], None, "otp")
            .unwrap()
            .is_some(),
        "other tenants untouched"
    );
    assert_eq!(
        store
            .range(Tree::Records, b"", None, usize::MAX)
            .unwrap()
            .len(),
        1
    );
    assert!(matches!(
        v.create_tenant(&tenant("t"), &p(&["otp"]), None),
        Err(VaultError::TenantExists(_))
    ));
    // The backup's rows are still there, but the tenant's keys are gone: restoring
    // the tenant row and records brings nothing back.
    let mut b = phonevault::store::Batch::default();
    b.put(
        Tree::Tenants,
        b"t".to_vec(),
        backup.get(Tree::Tenants, b"t").unwrap().unwrap(),
    );
    for (k, val) in backup.range(Tree::Records, b"", None, usize::MAX).unwrap() {
        b.put(Tree::Records, k, val);
    }
    store.commit(&b).unwrap();
    let err = v.find(&tenant("t"), &nums[0], None, "otp").unwrap_err();
    assert!(matches!(err, VaultError::Key(_)), "{err:?}");
}

#[test]
fn rotate_then_rewrap_under_concurrent_reads() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Barrier;

    let (store, v) = in_memory();
    v.create_tenant(&tenant("t"), &p(&["otp"]), Some(10_000))
        .unwrap();
    let nums = numbers(0, 3000);
    import(&v, &nums);
    // What every record reads as before: (number, id, masked, purposes).
    let snapshot = |v: &Vault| -> Vec<(String, String, String, Vec<String>)> {
        nums.iter()
            .map(|n| {
                let f = v.find(&tenant("t"), n, None, "otp").unwrap().unwrap();
                (
                    n.clone(),
                    f.id.to_string(),
                    f.masked.clone(),
                    f.purposes.clone(),
                )
            })
            .collect()
    };
    let before = snapshot(&v);
    assert_eq!(v.rotate_key(&tenant("t"), false).unwrap(), 2);
    assert_eq!(v.rotate_key(&tenant("t"), true).unwrap(), 3);

    let stop = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let start = Barrier::new(4);
    std::thread::scope(|s| {
        for r in 0..3usize {
            let (v, before, stop, reads, start) = (&v, &before, &stop, &reads, &start);
            s.spawn(move || {
                start.wait();
                let mut i = r * 997;
                loop {
                    let (n, id, masked, purposes) = &before[i % before.len()];
                    // by number (index lookups span the old and new index versions)
                    let f = v.find(&tenant("t"), n, None, "otp").unwrap();
                    let f = f.unwrap_or_else(|| panic!("{n} not found during rewrap"));
                    assert_eq!(&f.id.to_string(), id);
                    assert_eq!(f.e164.expose_secret(), n);
                    // by id
                    let g = v.get(&tenant("t"), record_id(id), "otp").unwrap().unwrap();
                    assert_eq!((&g.masked, &g.purposes), (masked, purposes));
                    // by last 4 digits
                    let l4 = &n[n.len() - 4..];
                    assert!(v
                        .find_last4(&tenant("t"), 44, l4, "otp")
                        .unwrap()
                        .iter()
                        .any(|x| &x.id.to_string() == id));
                    reads.fetch_add(1, Ordering::Relaxed);
                    i += 7;
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
            });
        }
        start.wait();
        let r = v.rewrap(&tenant("t"), |_, _| {}).unwrap();
        stop.store(true, Ordering::Relaxed);
        assert_eq!((r.records, r.resealed, r.reindexed), (3000, 3000, 3000));
    });
    assert!(reads.load(Ordering::Relaxed) >= 3);
    assert!(
        versions(&store).iter().all(|&x| x == (2, 3)),
        "none left under v1"
    );
    let idx = store.range(Tree::Index, b"", None, usize::MAX).unwrap();
    assert!(idx.iter().all(|(k, _)| k[5..9] == 3u32.to_be_bytes()));
    assert_eq!(snapshot(&v), before, "every record reads the same");
    // the old version can now go
    let r = v.retire_keys(&tenant("t"), 2, false).unwrap();
    assert_eq!((r.destroyed, r.unreadable_records), (vec![1], 0));
    assert_eq!(snapshot(&v), before);
}

/// The audit entries of `v`'s chain, verified from K0.
fn audit_entries(v: &Vault, k0: &phonevault_keys::AuditKey) -> Vec<phonevault::audit::Entry> {
    let links = v.audit_links(0, usize::MAX).unwrap();
    let (decoded, _) =
        phonevault::audit::verify(k0, links.iter().map(|(_, l)| l.as_slice()), None).unwrap();
    let read = v.audit_read_key();
    decoded
        .into_iter()
        .flat_map(|l| l.entries(Some(&read)).unwrap())
        .collect()
}

/// Rewrap chunks and shredding's deletions were committed with `store.commit`, their
/// one audit entry written at the end: a crash (here: a full disk) part-way left
/// re-encrypted or deleted records that no entry shows.
#[test]
fn rewrap_chunks_and_shred_deletions_carry_their_audit_entries() {
    let (store, v) = in_memory();
    let k0 = v.export_audit_key().unwrap();
    v.create_tenant(&tenant("t"), &p(&["otp"]), None).unwrap();
    import(&v, &numbers(0, 1200));
    v.rotate_key(&tenant("t"), false).unwrap();
    // The first chunk (500 records) commits; the disk is full from then on.
    store.fail_commits_after(Some(1));
    assert!(v.rewrap(&tenant("t"), |_, _| {}).is_err());
    store.fail_commits_after(None);
    let rewrapped: Vec<[u8; 16]> = store
        .range(Tree::Records, b"", None, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|(_, s)| record::parse_header(s).unwrap().data_key_version == 2)
        .map(|(k, _)| k[4..].try_into().unwrap())
        .collect();
    assert_eq!(rewrapped.len(), 500);
    let entries = audit_entries(&v, &k0);
    let logged: std::collections::HashSet<[u8; 16]> = entries
        .iter()
        .filter(|e| e.action == "key-rewrap")
        .flat_map(|e| e.records.iter().copied())
        .collect();
    for id in &rewrapped {
        assert!(logged.contains(id), "a rewrapped record without its entry");
    }

    // Shredding: the records' deletion commits, then the disk is full.
    v.create_tenant(&tenant("u"), &p(&["otp"]), None).unwrap();
    v.add(
        &tenant("u"),
        "+447400123958",
        None,
        &p(&["otp"]),
        &source("web"),
    )
    .unwrap();
    let before = audit_entries(&v, &k0).len();
    store.fail_commits_after(Some(1));
    assert!(v.shred_tenant(&tenant("u")).is_err());
    store.fail_commits_after(None);
    let entries = audit_entries(&v, &k0);
    assert!(
        entries[before..]
            .iter()
            .any(|e| e.action == "tenant-shred" && e.tenant.as_deref() == Some("u")),
        "deletions committed without their entry"
    );
    // the re-run finishes it
    v.shred_tenant(&tenant("u")).unwrap();
}
