//! Backup of a vault in use: writers keep adding numbers while the snapshot is taken,
//! and the restored vault is consistent (every record has its index entries, every
//! index entry its record) and reads the same as the original did at that moment.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;
use common::vault::{source, tenant};

use common::vault::{self, numbers, open, unlock, when_free};

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use phonevault::store::Tree;
use phonevault::vault::{RestoreOptions, Role, TokenSpec, Vault};

#[test]
fn backup_while_writers_run_restores_a_consistent_vault() {
    let tmp = tempfile::tempdir().unwrap();
    let v = vault::create(&tmp.path().join("vault"), &[], &[]);
    v.create_tenant(&tenant("t"), &["otp".into()], Some(100_000))
        .unwrap();
    vault::import(&v, "t", &["otp"], &numbers(0, 3000));

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
                v.add(&tenant("t"), &n, None, &["otp".into()], &source("web"))
                    .unwrap();
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
    let back = open(&restored_dir);
    let rows = back
        .store()
        .range(Tree::Records, b"", None, usize::MAX)
        .unwrap();
    assert_eq!(rows.len() as u64, records);
    let mut seen = Vec::new();
    back.export(&tenant("t"), "otp", |f| {
        seen.push(f.e164.expose_secret().to_owned());
        Ok(())
    })
    .unwrap();
    assert_eq!(seen.len() as u64, records);
    for n in &seen {
        assert!(
            back.find(&tenant("t"), n, None, "otp").unwrap().is_some(),
            "{n}"
        );
    }
    for n in numbers(0, 3000) {
        assert!(
            back.find(&tenant("t"), &n, None, "otp").unwrap().is_some(),
            "{n}"
        );
    }
}

/// A vault `vault` in a temporary directory (its other files go there too), open,
/// with tenant `t` (otp).
fn shop() -> (tempfile::TempDir, PathBuf, Vault) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let v = vault::create(&dir, &["t"], &["otp"]);
    (tmp, dir, v)
}

/// A crash during `restore --replace`'s store swap (old store moved aside under
/// compaction's name, new one in place) let the compaction recovery of the next open
/// delete the old store, which restore promises to keep.
#[test]
fn a_restore_stopped_mid_swap_keeps_the_replaced_store_and_finishes() {
    let (tmp, dir, v) = shop();
    let [before, after] = [&numbers(0, 1)[0], &numbers(1, 1)[0]].map(|n| n.clone());
    v.add(&tenant("t"), &before, None, &["otp".into()], &source("web"))
        .unwrap();
    let file = tmp.path().join("b.pvbk");
    v.backup(std::fs::File::create(&file).unwrap()).unwrap();
    // written after the backup: only in the store that the restore replaces
    v.add(&tenant("t"), &after, None, &["otp".into()], &source("web"))
        .unwrap();
    drop(v);

    let err = when_free(|| {
        match Vault::restore(
            &file,
            &dir,
            &unlock(),
            &RestoreOptions {
                replace: true,
                stop_mid_swap: true,
                ..RestoreOptions::default()
            },
        ) {
            Ok(_) => panic!("the swap was not stopped"),
            Err(e) if e.to_string().contains("crash test") => Ok(e),
            Err(e) => Err(e),
        }
    });
    assert!(err.to_string().contains("crash test"), "{err}");

    // The next open finishes the swap and deletes nothing.
    let back = open(&dir);
    assert!(back
        .find(&tenant("t"), &before, None, "otp")
        .unwrap()
        .is_some());
    assert!(back
        .find(&tenant("t"), &after, None, "otp")
        .unwrap()
        .is_none());
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
    let old = open(&dir);
    assert!(old
        .find(&tenant("t"), &after, None, "otp")
        .unwrap()
        .is_some());
}

/// `restore` kept the backup's token tree, so a token revoked after the backup was
/// made worked again once the backup was restored (undoing step 2 of the incident
/// runbook, "cut every client off").
#[test]
fn a_restore_does_not_bring_back_revoked_tokens() {
    let (tmp, dir, v) = shop();
    let (info, secret) = v
        .create_token(&TokenSpec {
            tenant: Some(tenant("t")),
            role: Role::Reader,
            purposes: vec!["otp".into()],
            reveal: true,
            ttl_secs: None,
        })
        .unwrap();
    let file = tmp.path().join("b.pvbk");
    v.backup(std::fs::File::create(&file).unwrap()).unwrap();
    v.revoke_token(&info.id).unwrap();
    drop(v);

    let restore = |keep_tokens| {
        when_free(|| {
            Vault::restore(
                &file,
                &dir,
                &unlock(),
                &RestoreOptions {
                    replace: true,
                    keep_tokens,
                    ..RestoreOptions::default()
                },
            )
        })
    };
    let r = restore(false);
    assert_eq!(r.tokens_dropped, 1);
    let back = open(&dir);
    assert!(back.authenticate(secret.expose_secret()).unwrap().is_none());
    assert!(back.tokens().unwrap().is_empty());
    drop(back);
    // Asked for, the backup's tokens come back as they were then.
    let r = restore(true);
    assert_eq!(r.tokens_dropped, 0);
    let back = open(&dir);
    assert!(back.authenticate(secret.expose_secret()).unwrap().is_some());
}

/// A backup taken before `audit key export` held K0, and restoring it brought K0
/// back: the export could run again, handing the key that re-signs the whole chain to
/// whoever asked next. Backups also held the sealed current audit key, which (with the
/// keyring and a credential) re-signs every link made after the backup. Issue 12 item
/// 4: backups now hold neither; a restore, into the same directory or a fresh one,
/// archives the backup's links and starts a new chain under a new K0.
#[test]
fn a_restore_never_brings_back_an_audit_key() {
    let (tmp, dir, v) = shop();
    v.add(
        &tenant("t"),
        "+447400123958",
        None,
        &["otp".into()],
        &source("web"),
    )
    .unwrap();
    let file = tmp.path().join("b.pvbk");
    v.backup(std::fs::File::create(&file).unwrap()).unwrap();
    let ring = tmp.path().join("ring");
    std::fs::write(&ring, v.export_keyring().unwrap()).unwrap();
    let k0 = v.export_audit_key().unwrap();
    drop(v);
    let bytes = std::fs::read(&file).unwrap();
    for row in [&b"audit-state"[..], b"audit-k0", b"audit-journal"] {
        assert!(
            !bytes.windows(row.len()).any(|w| w == row),
            "the backup holds the meta row {}",
            String::from_utf8_lossy(row)
        );
    }
    let check = |target: &std::path::Path, opts: RestoreOptions| {
        let r = when_free(|| Vault::restore(&file, target, &unlock(), &opts));
        let archive = r
            .audit_archive
            .clone()
            .expect("the backup's links archived");
        assert!(archive.starts_with(target), "{}", archive.display());
        // the backup's links verify with the old K0, as an archive from genesis
        let text = std::fs::read_to_string(&archive).unwrap();
        let links: Vec<Vec<u8>> = text
            .lines()
            .skip(1)
            .map(|l| hex::decode(l).unwrap())
            .collect();
        assert!(!links.is_empty());
        phonevault::audit::verify(&k0, links.iter().map(Vec::as_slice), None).unwrap();
        // the restored vault's chain is new: its K0 is not the old one, and verifies it
        let back = open(target);
        let new_k0 = back.export_audit_key().unwrap();
        assert!(new_k0 != k0, "a restore brought K0 back");
        let live = back.audit_links(0, usize::MAX).unwrap();
        assert_eq!(live[0].0, 0);
        phonevault::audit::verify(&new_k0, live.iter().map(|(_, l)| l.as_slice()), None).unwrap();
        assert!(
            phonevault::audit::verify(&k0, live.iter().map(|(_, l)| l.as_slice()), None).is_err()
        );
        assert!(matches!(
            back.export_audit_key(),
            Err(phonevault::vault::VaultError::AuditKeyGone)
        ));
        // the restored records' writes are in the archive, not in the new chain:
        // `check` does not call them unaudited
        let r = back.check_integrity().unwrap();
        assert!(r.is_ok(), "{:?}", r.problems);
    };
    // into the vault it came from (K0 exported since)
    check(
        &dir,
        RestoreOptions {
            replace: true,
            ..RestoreOptions::default()
        },
    );
    // into a fresh directory
    check(
        &tmp.path().join("fresh"),
        RestoreOptions {
            keyring: Some(ring),
            ..RestoreOptions::default()
        },
    );
}
