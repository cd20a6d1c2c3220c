//! The audit log as auditors use it: the real binary writes the chain, tests tamper
//! with a copy of the store, and `phonevault audit verify` must fail at the right link.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use common::{assert_success, Env};

use std::path::{Path, PathBuf};
use std::process::Output;

use phonevault::store::{Batch, SledStore, Store, Tree};

const NUMBER: &str = "+447400123958";

/// The name of the uid running the tests (`id -un`), which the CLI records as its
/// actor whatever `$USER` says.
fn whoami() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// An environment whose commands run with `$USER` set to alice (not the actor's name).
fn env() -> Env {
    Env::new().with_env("USER", "alice")
}

impl Env {
    /// A vault with a tenant, one number and `reads` revealing finds: 2 + reads links.
    fn scenario(&self, reads: usize) {
        self.init_tenant("shop", "otp,marketing");
        self.ok(&[
            "add",
            "--tenant",
            "shop",
            "--phone",
            NUMBER,
            "--consent",
            "otp",
            "--source",
            "web",
        ]);
        for _ in 0..reads {
            self.ok(&[
                "find",
                "--tenant",
                "shop",
                "--phone",
                NUMBER,
                "--purpose",
                "otp",
                "--reveal",
            ]);
        }
    }

    /// The K0 file, exported from this vault the first time.
    fn k0(&self) -> PathBuf {
        let k0 = self.path("k0.hex");
        if !k0.exists() {
            self.ok(&["audit", "key", "export", "--out", k0.to_str().unwrap()]);
        }
        k0
    }

    /// The vault's sled store, opened directly (no command may hold it).
    fn store(&self) -> SledStore {
        SledStore::open(&self.vault.join("store"), 1 << 20).unwrap()
    }

    /// A copy `name` of the vault, beside it, whose audit tree `f` may change.
    fn tampered(&self, name: &str, f: impl FnOnce(&SledStore)) -> Env {
        let copy = self.beside(name);
        copy_dir(&self.vault, &copy.vault);
        {
            let store = copy.store();
            f(&store);
            store.flush().unwrap();
        }
        copy
    }

    /// `audit verify --key K0 EXTRA` on this vault.
    fn verify(&self, extra: &[&str]) -> Output {
        self.verify_copy(self, extra)
    }

    /// `audit verify --key K0 EXTRA` on `copy` ([`Env::tampered`]), with this vault's K0.
    fn verify_copy(&self, copy: &Env, extra: &[&str]) -> Output {
        let k0 = self.k0();
        let mut args = vec!["audit", "verify", "--key", k0.to_str().unwrap()];
        args.extend_from_slice(extra);
        copy.run(&args)
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn seq(n: u64) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

fn link(s: &SledStore, n: u64) -> Vec<u8> {
    s.get(Tree::Audit, &seq(n)).unwrap().unwrap()
}

fn put(s: &SledStore, n: u64, v: Vec<u8>) {
    let mut b = Batch::default();
    b.put(Tree::Audit, seq(n), v);
    s.commit(&b).unwrap();
}

fn delete(s: &SledStore, n: u64) {
    let mut b = Batch::default();
    b.delete(Tree::Audit, seq(n));
    s.commit(&b).unwrap();
}

fn assert_broken_at(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "verify passed a tampered log");
    assert!(err.contains(what), "expected `{what}` in: {err}");
}

#[test]
fn verify_names_the_first_edited_removed_reordered_or_truncated_link() {
    let e = env();
    e.scenario(6); // links 0..8
    let intact = e.verify(&[]);
    assert_success(&intact);
    // a checkpoint taken now (the key export made link 8)
    let cp = e.path("cp.json");
    e.ok(&["audit", "checkpoint", "--out", cp.to_str().unwrap()]);

    // one flipped byte anywhere in link 4: its body, its head or its tag
    let size = {
        let s = e.store();
        link(&s, 4).len()
    };
    for (i, at) in [0, 1, size / 2, size - 40, size - 1]
        .into_iter()
        .enumerate()
    {
        let v = e.tampered(&format!("flip{i}"), |s| {
            let mut l = link(s, 4);
            l[at] ^= 0x01;
            put(s, 4, l);
        });
        assert_broken_at(&e.verify_copy(&v, &[]), "link 4");
    }

    // removed
    let v = e.tampered("removed", |s| delete(s, 3));
    assert_broken_at(&e.verify_copy(&v, &[]), "link 3");

    // reordered
    let v = e.tampered("reordered", |s| {
        let (a, b) = (link(s, 2), link(s, 5));
        put(s, 2, b);
        put(s, 5, a);
    });
    assert_broken_at(&e.verify_copy(&v, &[]), "link 2");

    // an entry rewritten with another link's bytes (same length family)
    let v = e.tampered("replaced", |s| {
        let l = link(s, 6);
        put(s, 7, l);
    });
    assert_broken_at(&e.verify_copy(&v, &[]), "link 7");

    // truncated: the prefix is intact, so only the off-machine checkpoint tells
    let v = e.tampered("truncated", |s| {
        delete(s, 8);
        delete(s, 7);
    });
    assert!(e.verify_copy(&v, &[]).status.success());
    assert_broken_at(
        &e.verify_copy(&v, &["--checkpoint", cp.to_str().unwrap()]),
        "checkpoint 9",
    );
    // and the intact log reaches it
    assert!(e
        .verify(&["--checkpoint", cp.to_str().unwrap()])
        .status
        .success());
}

/// Also pins a bug found in review: the CLI actor's name was taken from `$USER`,
/// which whoever runs the command sets at will; it is now the uid's name.
#[test]
fn the_report_counts_reveals_and_refusals_exactly() {
    let e = env();
    e.scenario(3);
    // one refused read: no consent for marketing
    e.fails_with_code(
        &[
            "find",
            "--tenant",
            "shop",
            "--phone",
            NUMBER,
            "--purpose",
            "marketing",
        ],
        3,
    );
    // one masked read: a read, not a reveal
    e.ok(&[
        "find",
        "--tenant",
        "shop",
        "--phone",
        NUMBER,
        "--purpose",
        "otp",
    ]);
    let k0 = e.k0();
    let report = e.json(&[
        "audit",
        "report",
        "--since",
        "2020-01-01",
        "--key",
        k0.to_str().unwrap(),
    ]);
    // `$USER` is alice, but the actor is named from the uid
    let me = format!("user:{}", whoami());
    if me != "user:alice" {
        assert!(
            report["tenants"]["shop"].get("user:alice").is_none(),
            "{report}"
        );
    }
    let alice = &report["tenants"]["shop"][me.as_str()];
    assert_eq!(alice["reads"], 4, "{report}");
    assert_eq!(alice["revealed"], 3, "{report}");
    assert_eq!(alice["refused"], 1, "{report}");
    assert_eq!(alice["denied"], 0, "{report}");
    assert_eq!(alice["writes"], 2, "{report}"); // tenant create, add
    assert_eq!(alice["revealed_ids"].as_array().unwrap().len(), 1);
    // no number in the report without --reveal
    assert!(!report.to_string().contains("7400123958"));

    // --reveal lists the number for breach notification, and is itself audited
    let with = e.ok(&["audit", "report", "--since", "2020-01-01", "--reveal"]);
    assert!(with.contains(NUMBER), "{with}");
    let export = e.ok(&["audit", "export", "--action", "breach-notification"]);
    assert_eq!(export.lines().count(), 1, "{export}");
    assert!(!export.contains("7400123958"));
}

#[test]
fn k0_is_handed_out_once_and_archives_keep_the_chain_verifiable() {
    let e = env();
    e.scenario(4);
    let k0 = e.k0();
    e.fails_with(
        &[
            "audit",
            "key",
            "export",
            "--out",
            e.path("k0-again").to_str().unwrap(),
        ],
        "already exported",
    );

    // archive everything older than a future time: all links but the newest go
    let archive = e.path("archive.jsonl");
    e.ok(&[
        "audit",
        "archive",
        "--before",
        "2999-01-01",
        "--out",
        archive.to_str().unwrap(),
    ]);
    let without = e.verify(&[]);
    assert!(!without.status.success());
    assert!(String::from_utf8_lossy(&without.stderr).contains("--archive"));
    let with = e.verify(&["--archive", archive.to_str().unwrap()]);
    assert_success(&with);
    // an edited archive fails
    let text = std::fs::read_to_string(&archive).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let l = &mut lines[2];
    let flipped = if l.ends_with('0') { '1' } else { '0' };
    l.pop();
    l.push(flipped);
    let bad = e.path("bad-archive.jsonl");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    assert_broken_at(&e.verify(&["--archive", bad.to_str().unwrap()]), "link 1");
    // the report still reads across the archive and the live log
    let report = e.json(&[
        "audit",
        "report",
        "--key",
        k0.to_str().unwrap(),
        "--archive",
        archive.to_str().unwrap(),
    ]);
    assert_eq!(
        report["tenants"]["shop"][format!("user:{}", whoami()).as_str()]["revealed"],
        4
    );
}

/// `audit verify` called a chain intact when its oldest archive was missing: an
/// archive's own header said where it started, and K0 verifies from any position, so
/// whatever came before went unchecked. The chain must now start at its first link,
/// or at a checkpoint given with --start.
#[test]
fn verify_needs_the_chain_from_its_first_link_or_a_trusted_start() {
    let e = env();
    e.scenario(2);
    let _ = e.k0();
    let archive = |name: &str| {
        let path = e.path(name);
        e.ok(&[
            "audit",
            "archive",
            "--before",
            "2999-01-01",
            "--out",
            path.to_str().unwrap(),
        ]);
        path
    };
    let first = archive("a1.jsonl");
    e.ok(&["tenant", "create", "later", "--purposes", "otp"]);
    let second = archive("a2.jsonl");
    let (a1, a2) = (first.to_str().unwrap(), second.to_str().unwrap());

    let out = e.verify(&["--archive", a2]);
    assert!(!out.status.success(), "a missing oldest archive passed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not at the chain's first link"), "{err}");

    let out = e.verify(&["--archive", a1, "--archive", a2]);
    assert_success(&out);

    // A start checkpoint kept from before: here the one the second archive starts at.
    let header: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&second)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let start = e.path("start.json");
    std::fs::write(&start, header["start"].to_string()).unwrap();
    let out = e.verify(&["--archive", a2, "--start", start.to_str().unwrap()]);
    assert_success(&out);
}

/// Issue 12 item 3: entries were stored in clear, so whoever had the disk, the
/// database or a backup could pick out the record ids of opt-outs, withdrawals and
/// refusals from the audit tree. Entries are now sealed under the audit read key; the
/// chain still verifies with K0 alone.
#[test]
fn the_audit_tree_shows_no_record_id_or_purpose_and_still_verifies_with_k0() {
    let e = env();
    e.init_tenant("shop", "otp,newsletter");
    let mut ids = Vec::new();
    for n in [NUMBER, "+447400123959"] {
        let v = e.json(&[
            "add",
            "--tenant",
            "shop",
            "--phone",
            n,
            "--consent",
            "otp,newsletter",
            "--source",
            "web",
        ]);
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    // an opt-out of everything, a withdrawal and a refused read
    e.ok(&[
        "opt-out",
        "--tenant",
        "shop",
        "--phone",
        "+447400123959",
        "--all",
    ]);
    e.ok(&[
        "consent",
        "withdraw",
        "--tenant",
        "shop",
        "--phone",
        NUMBER,
        "--purpose",
        "newsletter",
    ]);
    e.fails_with_code(
        &[
            "find",
            "--tenant",
            "shop",
            "--phone",
            NUMBER,
            "--purpose",
            "newsletter",
        ],
        3,
    );
    let k0 = e.k0();

    let raw: Vec<u8> = {
        let s = e.store();
        s.range(Tree::Audit, b"", None, usize::MAX)
            .unwrap()
            .into_iter()
            .flat_map(|(_, v)| v)
            .collect()
    };
    assert!(raw.len() > 500, "the audit tree holds the links");
    let has = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    for id in &ids {
        let bytes = hex::decode(id).unwrap();
        assert!(!has(&bytes), "a raw record id in the audit tree");
        assert!(!has(id.as_bytes()), "a hex record id in the audit tree");
    }
    for word in ["newsletter", "opt-out", "withdraw", "shop"] {
        assert!(!has(word.as_bytes()), "`{word}` in the audit tree");
    }

    // K0 alone verifies (no passphrase, no read key)
    let k0_only = e.path("k0-only.hex");
    let text = std::fs::read_to_string(&k0).unwrap();
    let k0_hex = text.lines().find_map(|l| l.strip_prefix("k0 ")).unwrap();
    std::fs::write(&k0_only, format!("{k0_hex}\n")).unwrap();
    let locked = |args: &[&str]| {
        let mut c = e.cmd(args);
        // Not "wrong passphrase": that is the text of the unlock error, which the secret
        // grep would then find in the echoed stderr.
        c.env("PHONEVAULT_PASSPHRASE", "not this vault's passphrase");
        c
    };
    let out = common::run(locked(&[
        "audit",
        "verify",
        "--key",
        k0_only.to_str().unwrap(),
    ]));
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("sealed"));

    // the auditors read the entries with the read key of their key file
    let log = e.ok(&[
        "audit",
        "export",
        "--key",
        k0.to_str().unwrap(),
        "--action",
        "opt-out",
    ]);
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(log.contains(&ids[1]), "{log}");
    // without it, not without unlocking the vault
    let args = ["audit", "export", "--key", k0_only.to_str().unwrap()];
    let err = common::fails(locked(&args), &args);
    assert!(err.contains("sealed"), "{err}");
    // a read key handed out again reads too, and cannot verify
    let read = e.path("read.hex");
    e.ok(&[
        "audit",
        "key",
        "export",
        "--read-only",
        "--out",
        read.to_str().unwrap(),
    ]);
    let log = e.ok(&[
        "audit",
        "export",
        "--key",
        read.to_str().unwrap(),
        "--action",
        "find",
    ]);
    assert!(log.contains("refused") && log.contains(&ids[0]), "{log}");
    e.fails_with(
        &["audit", "verify", "--key", read.to_str().unwrap()],
        "not K0",
    );

    // one flipped byte of a sealed body fails verification at its link
    let last = {
        let s = e.store();
        s.range(Tree::Audit, b"", None, usize::MAX).unwrap().len() as u64 - 1
    };
    let target = last - 2;
    let v = e.tampered("sealed-flip", |s| {
        let mut l = link(s, target);
        assert_eq!(l[0], 2, "a sealed link");
        l[30] ^= 0x01;
        put(s, target, l);
    });
    assert_broken_at(&e.verify_copy(&v, &[]), &format!("link {target}"));
}

/// Issue 12 item 4, as an operator sees it: a restore archives the backup's links
/// (verified with the old K0) and starts a new chain, verified with the new K0.
#[test]
fn a_restore_archives_the_old_chain_and_starts_a_new_one() {
    let e = env();
    e.scenario(1);
    let k0 = e.k0();
    let backup = e.path("b.pvbk");
    e.ok(&["backup", backup.to_str().unwrap()]);
    let out = e.ok(&["restore", backup.to_str().unwrap(), "--replace"]);
    assert!(out.contains("new audit chain"), "{out}");
    let archive = std::fs::read_dir(&e.vault)
        .unwrap()
        .map(|d| d.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("audit-restored-")
        })
        .expect("the restore wrote an archive");
    let a = archive.to_str().unwrap();
    let old = e.verify(&["--archive", a, "--archives-only"]);
    assert_success(&old);
    // the old K0 does not verify (or sign) the new chain
    assert!(!e.verify(&[]).status.success());
    let new_k0 = e.path("k0-new.hex");
    e.ok(&["audit", "key", "export", "--out", new_k0.to_str().unwrap()]);
    assert_ne!(
        std::fs::read_to_string(&new_k0).unwrap(),
        std::fs::read_to_string(&k0).unwrap()
    );
    let new = e.run(&["audit", "verify", "--key", new_k0.to_str().unwrap()]);
    assert_success(&new);
    let log = e.ok(&[
        "audit",
        "export",
        "--key",
        new_k0.to_str().unwrap(),
        "--action",
        "restore",
    ]);
    assert_eq!(log.lines().count(), 1, "{log}");
}
