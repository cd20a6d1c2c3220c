//! Backup of a vault in use: writers keep adding numbers while the snapshot is taken,
//! and the restored vault is consistent (every record has its index entries, every
//! index entry its record) and reads the same as the original did at that moment.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use phonevault::store::Tree;
use phonevault::vault::{ImportOptions, OpenOptions, RestoreOptions, Unlock, Vault};
use phonevault_keys::{KdfParams, Passphrase};

fn unlock() -> Unlock {
    Unlock::Passphrase(Passphrase::new("pw".into()))
}

fn numbers(from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| format!("+4474001{:05}", i))
        .collect()
}

#[test]
fn backup_while_writers_run_restores_a_consistent_vault() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    Vault::init(
        &dir,
        &Passphrase::new("pw".into()),
        KdfParams::cheap_for_tests(),
    )
    .unwrap();
    let v = Vault::open(&dir, &unlock(), OpenOptions::default()).unwrap();
    v.create_tenant("t", &["otp".into()], Some(100_000))
        .unwrap();
    let csv = std::iter::once("phone".to_owned())
        .chain(numbers(0, 3000))
        .collect::<Vec<_>>()
        .join("\n");
    let opts = ImportOptions {
        tenant: "t".into(),
        purposes: vec!["otp".into()],
        source: "bulk".into(),
        region: None,
        column: "phone".into(),
    };
    v.import(&opts, csv.as_bytes(), |_| Ok(()), |_| {}).unwrap();

    let file = tmp.path().join("b.pvbk");
    let stop = AtomicBool::new(false);
    let added = AtomicU64::new(0);
    let report = std::thread::scope(|s| {
        let (v, stop, added) = (&v, &stop, &added);
        s.spawn(move || {
            for n in numbers(50_000, 20_000) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                v.add("t", &n, None, &["otp".into()], "web").unwrap();
                added.fetch_add(1, Ordering::Relaxed);
            }
        });
        // let the writer get going, then snapshot while it runs
        while added.load(Ordering::Relaxed) < 50 {
            std::thread::yield_now();
        }
        let f = std::fs::File::create(&file).unwrap();
        let (_, report) = v.backup(f).unwrap();
        let during = added.load(Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        (report, during)
    });
    let (report, _) = report;
    let records = report.rows.iter().find(|(t, _)| t == "records").unwrap().1;
    let index = report.rows.iter().find(|(t, _)| t == "index").unwrap().1;
    assert!(
        records > 3000,
        "writes before the snapshot are in it: {records}"
    );
    assert_eq!(index, 2 * records, "exact + last-4 entry per record");

    let ring = tmp.path().join("ring");
    std::fs::write(&ring, v.export_keyring().unwrap()).unwrap();
    drop(v);
    let restored_dir = tmp.path().join("restored");
    let r = Vault::restore(
        &file,
        &restored_dir,
        &unlock(),
        &RestoreOptions {
            keyring: Some(ring),
            ..RestoreOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.restored, report.total);
    assert_eq!(r.skipped_rows, 0);
    let back = Vault::open(&restored_dir, &unlock(), OpenOptions::default()).unwrap();
    let rows = back
        .store()
        .range(Tree::Records, b"", None, usize::MAX)
        .unwrap();
    assert_eq!(rows.len() as u64, records);
    let mut seen = Vec::new();
    back.export("t", "otp", |f| {
        seen.push(f.e164.expose_secret().to_owned());
        Ok(())
    })
    .unwrap();
    assert_eq!(seen.len() as u64, records);
    for n in &seen {
        assert!(back.find("t", n, None, "otp").unwrap().is_some(), "{n}");
    }
    for n in numbers(0, 3000) {
        assert!(back.find("t", &n, None, "otp").unwrap().is_some(), "{n}");
    }
}

/// A crash during `restore --replace`'s store swap (old store moved aside under
/// compaction's name, new one in place) let the compaction recovery of the next open
/// delete the old store, which restore promises to keep.
#[test]
fn a_restore_stopped_mid_swap_keeps_the_replaced_store_and_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    Vault::init(
        &dir,
        &Passphrase::new("pw".into()),
        KdfParams::cheap_for_tests(),
    )
    .unwrap();
    let v = Vault::open(&dir, &unlock(), OpenOptions::default()).unwrap();
    v.create_tenant("t", &["otp".into()], None).unwrap();
    let [before, after] = [&numbers(0, 1)[0], &numbers(1, 1)[0]].map(|n| n.clone());
    v.add("t", &before, None, &["otp".into()], "web").unwrap();
    let file = tmp.path().join("b.pvbk");
    v.backup(std::fs::File::create(&file).unwrap()).unwrap();
    // written after the backup: only in the store that the restore replaces
    v.add("t", &after, None, &["otp".into()], "web").unwrap();
    drop(v);

    let err = Vault::restore(
        &file,
        &dir,
        &unlock(),
        &RestoreOptions {
            replace: true,
            stop_mid_swap: true,
            ..RestoreOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("crash test"), "{err}");

    // The next open finishes the swap and deletes nothing.
    let back = Vault::open(&dir, &unlock(), OpenOptions::default()).unwrap();
    assert!(back.find("t", &before, None, "otp").unwrap().is_some());
    assert!(back.find("t", &after, None, "otp").unwrap().is_none());
    drop(back);
    let kept: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("store."))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].starts_with("store.replaced-"), "{kept:?}");
    // the kept store is the one from before the restore: it opens as the vault's store
    std::fs::rename(dir.join("store"), tmp.path().join("restored")).unwrap();
    std::fs::rename(dir.join(&kept[0]), dir.join("store")).unwrap();
    let old = Vault::open(&dir, &unlock(), OpenOptions::default()).unwrap();
    assert!(old.find("t", &after, None, "otp").unwrap().is_some());
}
