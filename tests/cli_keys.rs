//! Key lifecycle through the real binary: retire, rekey, passwd, key slots, keyring
//! export/import, crypto-shredding against old backups, backup/restore refusing
//! damaged files, and a rewrap killed part-way that resumes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use common::{Env, Server, PASS};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

impl Env {
    fn cmd_in(&self, vault: &Path, args: &[&str]) -> Command {
        common::phonevault(vault, PASS, args)
    }

    /// Runs a command expected to fail with exit code 1; returns its stderr.
    fn refused(&self, args: &[&str]) -> String {
        self.fails_with_code(args, 1)
    }

    /// `init`, and tenant `shop` with purposes otp and support.
    fn with_shop(&self) {
        self.init_tenant("shop", "otp,support");
    }

    fn add(&self, tenant: &str, phone: &str) -> String {
        self.ok(&[
            "add",
            "--tenant",
            tenant,
            "--phone",
            phone,
            "--consent",
            "otp",
            "--source",
            "web",
        ])
        .trim()
        .to_owned()
    }

    /// `dir/name` as a string, for an argument.
    fn file(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Imports the 2,000-number fixture (a copy, so the rejects file stays here).
    fn import_fixture(&self) -> u64 {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/numbers-2k.csv");
        let csv = self.path("numbers.csv");
        std::fs::copy(src, &csv).unwrap();
        let v = self.json(&[
            "import",
            "--tenant",
            "shop",
            "--consent",
            "otp",
            csv.to_str().unwrap(),
        ]);
        v["created"].as_u64().unwrap()
    }

    fn export_count(&self) -> usize {
        let out = self.file("export.csv");
        let _ = std::fs::remove_file(&out);
        self.ok(&[
            "export",
            "--tenant",
            "shop",
            "--purpose",
            "otp",
            "--out",
            &out,
        ]);
        std::fs::read_to_string(&out).unwrap().lines().count() - 1
    }
}

const NUMBERS: [&str; 4] = [
    "+447400123958",
    "+447400123959",
    "+14155550123",
    "+33612345610",
];

#[test]
fn key_retire_counts_refuses_and_reports_unreadable_records() {
    let e = Env::new();
    e.with_shop();
    let ids: Vec<String> = NUMBERS[..3].iter().map(|n| e.add("shop", n)).collect();
    e.ok(&["key", "rotate", "--tenant", "shop"]); // data v2
    e.ok(&["key", "rotate", "--tenant", "shop", "--index"]); // index v3

    // the current versions can never go
    let err = e.refused(&["key", "retire", "--tenant", "shop", "--below", "3"]);
    assert!(
        err.contains("refusing to retire a current key version"),
        "{err}"
    );
    assert!(err.contains("oldest current version is 2"), "{err}");
    // three records are still under v1: refused, with their number
    let err = e.refused(&["key", "retire", "--tenant", "shop", "--below", "2"]);
    assert!(
        err.contains("3 records of tenant `shop` are still under key versions below 2"),
        "{err}"
    );
    assert!(err.contains("phonevault key rewrap --tenant shop"), "{err}");
    for id in &ids {
        e.ok(&["get", "--tenant", "shop", id, "--purpose", "otp"]);
    }

    // after a rewrap nothing is left under v1: v1 goes
    e.ok(&["key", "rewrap", "--tenant", "shop"]);
    let r = e.json(&["key", "retire", "--tenant", "shop", "--below", "2"]);
    assert_eq!(r["destroyed"], serde_json::json!([1]));
    assert_eq!(r["unreadable_records"], 0);
    for (id, n) in ids.iter().zip(NUMBERS) {
        e.ok(&["get", "--tenant", "shop", id, "--purpose", "otp"]);
        e.ok(&["find", "--tenant", "shop", "--phone", n, "--purpose", "otp"]);
    }
    // refusals and the retirement are in the audit log, with the tenant
    let log = e.ok(&["audit", "export", "--action", "key-retire"]);
    let entries: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 3, "{log}");
    assert!(entries.iter().all(|v| v["tenant"] == "shop"));
    assert_eq!(entries[2]["outcome"], "ok");
    // nothing left below 2: a no-op, said so
    let out = e.ok(&["key", "retire", "--tenant", "shop", "--below", "2"]);
    assert!(out.contains("nothing changed"), "{out}");

    // --force destroys versions records are still under; reads report them
    e.ok(&["key", "rotate", "--tenant", "shop"]); // data v4
    e.ok(&["key", "rotate", "--tenant", "shop", "--index"]); // index v5
    let fresh = e.add("shop", NUMBERS[3]); // under (4, 5)
    let err = e.refused(&["key", "retire", "--tenant", "shop", "--below", "4"]);
    assert!(err.contains("3 records"), "{err}");
    let r = e.json(&[
        "key", "retire", "--tenant", "shop", "--below", "4", "--force",
    ]);
    assert_eq!(r["destroyed"], serde_json::json!([2, 3]));
    assert_eq!(r["unreadable_records"], 3);
    for id in &ids {
        let err = e.refused(&["get", "--tenant", "shop", id, "--purpose", "otp"]);
        assert!(err.contains("key version 2 was retired"), "{err}");
    }
    let out = e.file("out.csv");
    let err = e.refused(&[
        "export",
        "--tenant",
        "shop",
        "--purpose",
        "otp",
        "--out",
        &out,
    ]);
    assert!(err.contains("was retired"), "{err}");
    // the record under the current keys reads as before
    e.ok(&["get", "--tenant", "shop", &fresh, "--purpose", "otp"]);
    e.ok(&[
        "find",
        "--tenant",
        "shop",
        "--phone",
        NUMBERS[3],
        "--purpose",
        "otp",
    ]);
}

#[test]
fn rekey_then_reopen_with_the_same_credentials() {
    let e = Env::new();
    e.with_shop();
    let id = e.add("shop", NUMBERS[0]);
    let kf = e.file("second.key");
    e.ok(&["keyslot", "add", "--new-key-file", &kf]);
    let ring = e.vault.join("keyring");
    let before = std::fs::read(&ring).unwrap();

    // the key-file slot cannot be rewrapped without its key file: nothing changes
    let err = e.refused(&["rekey"]);
    assert!(err.contains("none given opens slot 1"), "{err}");
    assert!(err.contains("--other-key-file"), "{err}");
    assert_eq!(std::fs::read(&ring).unwrap(), before);

    e.ok(&["rekey", "--other-key-file", &kf]);
    let after = std::fs::read(&ring).unwrap();
    assert_ne!(after, before, "slots and seeds are rewrapped");
    assert_eq!(after.len(), before.len());
    // same passphrase, same key file, same data
    let got = e.ok(&[
        "get",
        "--tenant",
        "shop",
        &id,
        "--purpose",
        "otp",
        "--reveal",
    ]);
    assert!(got.contains(NUMBERS[0]), "{got}");
    let by_file = e
        .cmd(&["get", "--tenant", "shop", &id, "--purpose", "otp"])
        .env_remove("PHONEVAULT_PASSPHRASE")
        .arg("--key-file")
        .arg(&kf)
        .output()
        .unwrap();
    assert!(
        by_file.status.success(),
        "{}",
        String::from_utf8_lossy(&by_file.stderr)
    );
    // rows MACed before the rekey still verify (the row-MAC key comes from the vault seed)
    e.ok(&["tenant", "list"]);
    e.ok(&["key", "rotate", "--tenant", "shop"]);
    e.ok(&["key", "rewrap", "--tenant", "shop"]);
}

#[test]
fn passwd_and_key_slots() {
    let e = Env::new();
    e.with_shop();
    let id = e.add("shop", NUMBERS[0]);
    let newpass = e.file("new-pass");
    std::fs::write(&newpass, "a new passphrase\n").unwrap();
    let r = e.json(&["passwd", "--new-passphrase-file", &newpass]);
    assert_eq!(r["slot"], 0);
    let err = e.refused(&["get", "--tenant", "shop", &id, "--purpose", "otp"]);
    assert!(err.contains("could not unlock the vault"), "{err}");
    let with_new = |args: &[&str]| {
        e.cmd(args)
            .env("PHONEVAULT_PASSPHRASE", "a new passphrase")
            .output()
            .unwrap()
    };
    assert!(
        with_new(&["get", "--tenant", "shop", &id, "--purpose", "otp"])
            .status
            .success()
    );

    // a second passphrase slot and a key-file slot
    let second = e.file("second-pass");
    std::fs::write(&second, "second admin\n").unwrap();
    let kf = e.file("k.key");
    for args in [
        vec![
            "keyslot",
            "add",
            "--new-passphrase-file",
            second.as_str(),
            "--kdf-memory-kib",
            "256",
            "--kdf-iterations",
            "1",
        ],
        vec!["keyslot", "add", "--new-key-file", kf.as_str()],
    ] {
        let out = with_new(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = with_new(&["--json", "keyslot", "list"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["passphrase", "passphrase", "key-file"]);
    let listed = String::from_utf8(with_new(&["keyslot", "list"]).stdout).unwrap();
    assert!(!listed.contains("second admin") && !listed.contains("new passphrase"));
    // an existing key file is never overwritten
    let out = with_new(&["keyslot", "add", "--new-key-file", kf.as_str()]);
    assert_eq!(out.status.code(), Some(1));
    // a slot for a key file made elsewhere; a file of the wrong size is refused
    let outside = e.file("outside.key");
    std::fs::write(&outside, [0x5a; 32]).unwrap();
    let out = with_new(&["keyslot", "add", "--existing-key-file", outside.as_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(e.file("short.key"), [1; 31]).unwrap();
    let out = with_new(&[
        "keyslot",
        "add",
        "--existing-key-file",
        &e.file("short.key"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a phonevault key file"));
    let opened = e
        .cmd(&["get", "--tenant", "shop", &id, "--purpose", "otp"])
        .env_remove("PHONEVAULT_PASSPHRASE")
        .arg("--key-file")
        .arg(&outside)
        .output()
        .unwrap();
    assert!(
        opened.status.success(),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    let out = with_new(&["keyslot", "remove", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // remove down to one slot; the last one is refused
    let by_key_file = |args: &[&str]| {
        e.cmd(args)
            .env_remove("PHONEVAULT_PASSPHRASE")
            .arg("--key-file")
            .arg(&kf)
            .output()
            .unwrap()
    };
    for id in ["0", "1"] {
        let out = by_key_file(&["keyslot", "remove", id]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = by_key_file(&["keyslot", "remove", "2"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to remove the last key slot: add another slot first"),
        "{err}"
    );
    let out = by_key_file(&["keyslot", "remove", "7"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no key slot has this id"));
    assert!(
        by_key_file(&["get", "--tenant", "shop", &id, "--purpose", "otp"])
            .status
            .success()
    );
    // passwd needs a passphrase, not a key file
    let out = by_key_file(&["passwd", "--new-passphrase-file", &newpass]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("keyslot add"));
}

#[test]
fn shredded_tenant_stays_unreadable_after_restoring_an_earlier_backup() {
    let e = Env::new();
    e.with_shop();
    e.ok(&["tenant", "create", "keep", "--purposes", "otp"]);
    let shop_id = e.add("shop", NUMBERS[0]);
    e.add("shop", NUMBERS[1]);
    let keep_id = e.add("keep", NUMBERS[0]);
    let backup = e.file("before.pvbk");
    let b = e.json(&["backup", &backup]);
    let rows = |tree: &str| {
        b["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r[0] == tree)
            .unwrap()[1]
            .as_u64()
            .unwrap()
    };
    assert_eq!((rows("tenants"), rows("records"), rows("index")), (2, 3, 3));
    let exported = e.file("keyring.now");
    e.ok(&["keyring", "export", &exported]);

    let r = e.json(&["tenant", "delete", "shop", "--shred"]);
    assert_eq!(r["records_deleted"], 2);
    // the earlier backup back in place, with the vault's current keyring
    let err = e.refused(&["restore", &backup]);
    assert!(err.contains("--replace"), "{err}");
    let r = e.json(&["restore", &backup, "--replace"]);
    assert_eq!(r["skipped_tenants"], serde_json::json!(["shop"]));
    assert_eq!(r["skipped_rows"], 1 + 2 * 3);
    let err = e.refused(&["get", "--tenant", "shop", &shop_id, "--purpose", "otp"]);
    assert!(err.contains("unknown tenant"), "{err}");
    // the restored store's audit log records the restore
    let log = e.ok(&["audit", "export", "--action", "restore"]);
    assert_eq!(log.lines().count(), 1, "{log}");
    e.ok(&["get", "--tenant", "keep", &keep_id, "--purpose", "otp"]);
    // the name stays taken: nothing is ever encrypted under a seed thought dead
    assert!(e
        .refused(&["tenant", "create", "shop", "--purposes", "otp"])
        .contains("already exists"));

    // restored into a fresh directory with a keyring exported after the shredding:
    // the rows are in the backup, the keys are not
    let shredded_ring = e.file("keyring.after");
    e.ok(&["keyring", "export", &shredded_ring]);
    let fresh = e.dir.join("fresh");
    let out = e
        .cmd_in(
            &fresh,
            &["--json", "restore", &backup, "--keyring", &shredded_ring],
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = e
        .cmd_in(
            &fresh,
            &["get", "--tenant", "shop", &shop_id, "--purpose", "otp"],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // a keyring export made before the shredding would bring the keys back: refused
    let err = e.refused(&["keyring", "import", &exported]);
    assert!(err.contains("tenant `shop` was shredded"), "{err}");
    let _ = std::fs::remove_file(&exported);
}

#[test]
fn damaged_truncated_or_foreign_backups_are_refused_and_nothing_is_written() {
    let e = Env::new();
    e.with_shop();
    for n in NUMBERS {
        e.add("shop", n);
    }
    let backup = e.file("b.pvbk");
    e.ok(&["backup", &backup]);
    assert!(e.refused(&["backup", &backup]).contains("already exists"));
    let ring = e.file("ring");
    e.ok(&["keyring", "export", &ring]);
    let good = std::fs::read(&backup).unwrap();
    let target = e.dir.join("target");
    let restore = |file: &str, ring: &str| {
        e.cmd_in(&target, &["restore", file, "--keyring", ring])
            .output()
            .unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated by one byte",
            good[..good.len() - 1].to_vec(),
            "truncated",
        ),
        ("cut in half", good[..good.len() / 2].to_vec(), "truncated"),
        ("only the header", good[..60].to_vec(), "truncated"),
        (
            "one flipped byte",
            {
                let mut b = good.clone();
                // the last byte of the last row's value, just before the MAC
                b[good.len() - 33] ^= 0x20;
                b
            },
            "integrity check",
        ),
        (
            "an edited count",
            {
                let mut b = good.clone();
                b[34 + 8 * 2] ^= 1;
                b
            },
            "backup file",
        ),
        (
            "trailing bytes",
            {
                let mut b = good.clone();
                b.extend_from_slice(b"xx");
                b
            },
            "damaged",
        ),
        ("not a backup", b"hello".to_vec(), "not a phonevault backup"),
    ];
    for (what, bytes, expect) in cases {
        let file = e.file("bad.pvbk");
        std::fs::write(&file, bytes).unwrap();
        let out = restore(&file, &ring);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}");
        assert!(err.contains(expect), "{what}: {err}");
        assert!(!target.exists(), "{what}: nothing may be written");
    }
    // another vault's keyring
    let other = Env::new();
    other.with_shop();
    let other_ring = other.file("ring");
    other.ok(&["keyring", "export", &other_ring]);
    let out = restore(&backup, &other_ring);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the backup is of vault"), "{err}");
    assert!(!target.exists());
    // the intact file restores, and the restored vault opens with the same passphrase
    let out = restore(&backup, &ring);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for n in NUMBERS {
        let out = e
            .cmd_in(
                &target,
                &["find", "--tenant", "shop", "--phone", n, "--purpose", "otp"],
            )
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    let leftovers: Vec<_> = std::fs::read_dir(&e.dir)
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("restore-tmp") || n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn keyring_import_checks_vault_and_integrity() {
    let e = Env::new();
    e.with_shop();
    let id = e.add("shop", NUMBERS[0]);
    let ring = e.file("ring");
    e.ok(&["keyring", "export", &ring]);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&ring).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(e
        .refused(&["keyring", "export", &ring])
        .contains("cannot create"));
    // the keyring file lost: the export brings the vault back
    std::fs::remove_file(e.vault.join("keyring")).unwrap();
    assert!(e.refused(&["tenant", "list"]).contains("no vault"));
    e.ok(&["keyring", "import", &ring]);
    e.ok(&["get", "--tenant", "shop", &id, "--purpose", "otp"]);
    // damaged
    let mut bad = std::fs::read(&ring).unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let bad_path = e.file("bad-ring");
    std::fs::write(&bad_path, &bad).unwrap();
    let err = e.refused(&["keyring", "import", &bad_path]);
    assert!(err.contains("integrity check failed"), "{err}");
    std::fs::write(&bad_path, &bad[..40]).unwrap();
    assert!(e
        .refused(&["keyring", "import", &bad_path])
        .contains("corrupted, truncated"));
    // another vault's keyring, even with the same passphrase
    let other = Env::new();
    other.with_shop();
    let other_ring = other.file("ring");
    other.ok(&["keyring", "export", &other_ring]);
    let err = e.refused(&["keyring", "import", &other_ring]);
    assert!(err.contains("does not belong to this store"), "{err}");
    e.ok(&["get", "--tenant", "shop", &id, "--purpose", "otp"]);
}

#[test]
fn backup_says_so_when_a_server_holds_the_vault() {
    let e = Env::new();
    e.with_shop();
    let server = Server::spawn(e.cmd(&["serve"]), e.socket(), e.path("serve.log"));
    let backup = e.file("b.pvbk");
    let err = e.refused(&["backup", &backup]);
    server.kill();
    assert!(
        err.contains("a phonevault server holds this vault"),
        "{err}"
    );
    assert!(err.contains("`phonevault backup`"), "{err}");
    assert!(err.contains("stop the server"), "{err}");
    assert!(!Path::new(&backup).exists());
    assert!(!Path::new(&format!("{backup}.partial")).exists());
}

#[test]
fn rewrap_killed_part_way_resumes_and_completes() {
    let e = Env::new();
    e.with_shop();
    let created = e.import_fixture();
    assert!(created > 1500, "{created}");
    e.ok(&["key", "rotate", "--tenant", "shop"]);
    e.ok(&["key", "rotate", "--tenant", "shop", "--index"]);

    // The test hook prints progress after each committed chunk (500 records) and
    // pauses: the process is killed (SIGKILL) after the first chunk.
    let mut child = e
        .cmd(&["key", "rewrap", "--tenant", "shop"])
        .env("PHONEVAULT_TEST_REWRAP_PAUSE_MS", "60000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, format!("rewrap progress 500/{created}"));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished");

    // everything still reads, half old, half new
    assert_eq!(e.export_count() as u64, created);
    let r = e.json(&["key", "rewrap", "--tenant", "shop"]);
    assert_eq!(r["records"].as_u64(), Some(created));
    assert_eq!(r["resealed"].as_u64(), Some(created - 500), "resumed: {r}");
    assert_eq!(r["reindexed"].as_u64(), Some(created - 500));
    assert_eq!(
        (
            r["data_key_version"].as_u64(),
            r["index_key_version"].as_u64()
        ),
        (Some(2), Some(3))
    );
    // complete: nothing left under old versions, so they can be retired
    let r = e.json(&["key", "rewrap", "--tenant", "shop"]);
    assert_eq!(
        (r["resealed"].as_u64(), r["reindexed"].as_u64()),
        (Some(0), Some(0))
    );
    let r = e.json(&["key", "retire", "--tenant", "shop", "--below", "2"]);
    assert_eq!(r["unreadable_records"], 0);
    assert_eq!(e.export_count() as u64, created);
    e.ok(&[
        "find",
        "--tenant",
        "shop",
        "--phone",
        "+596596542555",
        "--purpose",
        "otp",
    ]);
}

/// `keyring import` and `restore --keyring` took an export older than a key rotation
/// (or than a tenant), overwrote the keyring and made every record under the newer
/// versions unreadable for good.
#[test]
fn an_older_keyring_export_that_lacks_newer_versions_is_refused() {
    let e = Env::new();
    e.with_shop();
    e.add("shop", NUMBERS[0]);
    let old = e.file("ring.old");
    e.ok(&["keyring", "export", &old]);
    e.ok(&["key", "rotate", "--tenant", "shop"]); // data v2
    let under_v2 = e.add("shop", NUMBERS[1]);
    e.ok(&["tenant", "create", "late", "--purposes", "otp"]);
    let backup = e.file("b.pvbk");
    e.ok(&["backup", &backup]);
    let before = std::fs::read(e.vault.join("keyring")).unwrap();

    let err = e.refused(&["keyring", "import", &old]);
    assert!(
        err.contains("lacks key versions this vault holds")
            && err.contains("tenant `shop`: key version(s) 2")
            && err.contains("tenant `late`: every key version"),
        "{err}"
    );
    let err = e.refused(&["restore", &backup, "--replace", "--keyring", &old]);
    assert!(err.contains("tenant `shop`: key version(s) 2"), "{err}");
    // nothing was overwritten: the newer record still opens
    assert_eq!(std::fs::read(e.vault.join("keyring")).unwrap(), before);
    e.ok(&["get", "--tenant", "shop", &under_v2, "--purpose", "otp"]);

    // the current export is accepted, by both
    let now = e.file("ring.now");
    e.ok(&["keyring", "export", &now]);
    e.ok(&["keyring", "import", &now]);
    e.ok(&["restore", &backup, "--replace", "--keyring", &now]);
    e.ok(&["get", "--tenant", "shop", &under_v2, "--purpose", "otp"]);
    // --force still installs the old one, as asked
    e.ok(&["keyring", "import", &old, "--force"]);
    let _ = std::fs::remove_file(&old);
    let _ = std::fs::remove_file(&now);
}
