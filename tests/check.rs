//! `phonevault check` as a user sees it: a clean vault passes; a vault missing an
//! index entry fails with exit code 1, the problem named by code, tenant and record id
//! on stdout (never the number), and the hint on stderr; with a server running, the
//! command says to stop it first.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;
use common::vault::{source, tenant};

use common::{vault, Env};

use phonevault::store::{Batch, Tree};
use phonevault::vault::Target;

const NUMBER: &str = "+447400123958";

#[test]
fn check_passes_a_clean_vault_and_names_a_missing_index_entry() {
    let e = Env::new();
    let id = {
        let v = vault::create(&e.vault, &["shop"], &["otp"]);
        v.add(
            &tenant("shop"),
            NUMBER,
            None,
            &["otp".into()],
            &source("test"),
        )
        .unwrap()
        .id()
    };
    let ok = e.run(&["check"]);
    assert_eq!(ok.status.code(), Some(0));
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        text.contains("checked 1 tenants, 1 records, 1 index entries, 1 expiry entries"),
        "{text}"
    );
    assert!(text.trim_end().ends_with(": 0 problems"), "{text}");

    // Remove the record's exact-index entry behind the vault's back.
    {
        let v = vault::open(&e.vault);
        let entries = v.store().range(Tree::Index, b"", None, usize::MAX).unwrap();
        assert_eq!(entries.len(), 1);
        let mut b = Batch::default();
        b.delete(Tree::Index, entries[0].0.clone());
        v.store().commit(&b).unwrap();
        v.store().flush().unwrap();
    }
    let bad = e.run(&["check"]);
    assert_eq!(bad.status.code(), Some(1));
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(
        out.starts_with(&format!("index_missing  tenant shop  record {id}: ")),
        "{out}"
    );
    assert!(!out.contains(&NUMBER[3..]), "a number in the report");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.starts_with("error: the integrity check found 1 problems (listed on stdout)"),
        "{err}"
    );
    assert!(
        err.contains("else restore the vault from a backup"),
        "{err}"
    );

    let json = e.run(&["--json", "check"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["problems"][0]["code"], "index_missing");
    assert_eq!(v["problems"][0]["record"], id.to_string());
}

/// Issue 12 item 5: a database or disk writer could put back an older ciphertext of
/// a record (from before its opt-out), bring back an erased record or delete one, and
/// nothing noticed. Every write entry now carries a digest of the ciphertext it
/// stored, and `check` holds each record against its last audited write.
#[test]
fn check_names_records_that_are_not_what_their_last_audited_write_left() {
    let dir = tempfile::tempdir().unwrap();
    let v = vault::create(&dir.path().join("v"), &["shop"], &["otp"]);
    let add = |n: &str| {
        v.add(&tenant("shop"), n, None, &["otp".into()], &source("test"))
            .unwrap()
            .id()
    };
    let (replayed, erased, deleted) = (add(NUMBER), add("+447400123959"), add("+447400123960"));
    let row = |id: &phonevault::record::RecordId| {
        let rows = v
            .store()
            .range(Tree::Records, b"", None, usize::MAX)
            .unwrap();
        rows.into_iter().find(|(k, _)| k.ends_with(&id.0)).unwrap()
    };
    let (replayed_key, before_opt_out) = row(&replayed);
    let (erased_key, erased_row) = row(&erased);
    let (deleted_key, _) = row(&deleted);
    v.opt_out(&tenant("shop"), Target::Id(replayed), None)
        .unwrap();
    v.erase(&tenant("shop"), Target::Id(erased)).unwrap();
    assert!(v.check_integrity().unwrap().is_ok());

    // Behind the vault's back: the ciphertext from before the opt-out put back, the
    // erased record brought back, one record deleted, one written under a new id.
    let mut b = Batch::default();
    b.put(Tree::Records, replayed_key, before_opt_out.clone());
    b.put(Tree::Records, erased_key, erased_row);
    b.delete(Tree::Records, deleted_key);
    let mut forged = 1u32.to_be_bytes().to_vec();
    forged.extend_from_slice(&[0x42; 16]);
    b.put(Tree::Records, forged, before_opt_out);
    v.store().commit(&b).unwrap();
    v.store().flush().unwrap();
    let report = v.check_integrity().unwrap();
    let named = |code: &str| {
        report
            .problems
            .iter()
            .filter(|p| p.code == code)
            .map(|p| p.record.clone().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        named("record_replayed"),
        vec![replayed.to_string()],
        "{report:?}"
    );
    assert_eq!(
        named("record_resurrected"),
        vec![erased.to_string()],
        "{report:?}"
    );
    assert_eq!(
        named("record_missing"),
        vec![deleted.to_string()],
        "{report:?}"
    );
    assert_eq!(
        named("record_unaudited"),
        vec!["42".repeat(16)],
        "{report:?}"
    );
    assert!(!format!("{report:?}").contains(&NUMBER[3..]));
}
