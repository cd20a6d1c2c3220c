//! Issue 16, part 3: suppression lists (do-not-call, do-not-text) through the real
//! binary: `suppress import|list|drop`, the reads they refuse, the import and `stats`
//! counts, backups, and that the store never holds a listed number.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use common::Env;

use std::path::{Path, PathBuf};
use std::process::Output;

// Valid numbers under the crate's metadata (UK mobiles and a US number).
const A: &str = "+447400123951";
const B: &str = "+447400123952";
const C: &str = "+447400123953";
const D: &str = "+12025550143";

/// A vault with tenant `shop` (otp, marketing, share:acme).
fn shop() -> Env {
    let e = Env::new();
    e.init_tenant("shop", "otp,marketing,share:acme");
    e
}

impl Env {
    /// Writes a CSV file with a `phone` header.
    fn csv(&self, name: &str, numbers: &[&str]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, format!("phone\n{}\n", numbers.join("\n"))).unwrap();
        p
    }

    fn add(&self, phone: &str, consents: &str) {
        self.ok(&[
            "add",
            "--tenant",
            "shop",
            "--phone",
            phone,
            "--consent",
            consents,
        ]);
    }

    fn suppress(&self, list: &str, purposes: &str, file: &Path) -> serde_json::Value {
        self.json(&[
            "suppress",
            "import",
            "--tenant",
            "shop",
            "--list",
            list,
            "--purposes",
            purposes,
            file.to_str().unwrap(),
        ])
    }

    fn find(&self, phone: &str, purpose: &str) -> Output {
        self.run(&[
            "find",
            "--tenant",
            "shop",
            "--phone",
            phone,
            "--purpose",
            purpose,
        ])
    }

    fn audit(&self, action: &str) -> Vec<serde_json::Value> {
        self.ok(&["audit", "export", "--tenant", "shop", "--action", action])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn found(o: &Output) -> bool {
    match o.status.code() {
        Some(0) => true,
        Some(3) => false,
        other => panic!("find exited {other:?}"),
    }
}

#[test]
fn a_listed_number_is_refused_for_the_lists_purposes_only_and_audited() {
    let e = shop();
    e.add(A, "otp,marketing,share:acme");
    e.add(B, "otp,marketing,share:acme");
    let list = e.csv("dnc.csv", &[A, "not a number", C]);
    let r = e.suppress("dnc", "marketing,share:acme", &list);
    assert_eq!(r["version"], 1, "{r}");
    assert_eq!(r["rows"], 3, "{r}");
    assert_eq!(r["count"], 2, "{r}");
    assert_eq!(r["rejected"], 1, "{r}");

    // Refused exactly as a number without consent is: exit 3, the same words.
    let refused = e.find(A, "marketing");
    assert!(!found(&refused));
    let absent = e.find(D, "marketing");
    assert_eq!(refused.stderr, absent.stderr);
    assert!(found(&e.find(A, "otp")), "otp is not on the list");
    assert!(found(&e.find(B, "marketing")), "B is not listed");

    // Exports and shares for the purposes skip it.
    let out = e.path("marketing.csv");
    e.ok(&[
        "export",
        "--tenant",
        "shop",
        "--purpose",
        "marketing",
        "--reveal",
        "--out",
        out.to_str().unwrap(),
    ]);
    let exported = std::fs::read_to_string(&out).unwrap();
    assert!(exported.contains(B) && !exported.contains(A), "{exported}");
    let shared = e.path("acme.csv");
    e.ok(&[
        "share",
        "--tenant",
        "shop",
        "--partner",
        "acme",
        "--out",
        shared.to_str().unwrap(),
    ]);
    let shared = std::fs::read_to_string(&shared).unwrap();
    assert_eq!(shared.lines().count(), 2, "header and B only: {shared}");
    let otp = e.path("otp.csv");
    e.ok(&[
        "export",
        "--tenant",
        "shop",
        "--purpose",
        "otp",
        "--out",
        otp.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&otp).unwrap().lines().count(), 3);

    // The audit log: the import, the refused find, and one suppressed entry per read
    // (find, export, share), each naming the list and the purpose, never a number.
    let imports = e.audit("suppress-import");
    assert_eq!(imports.len(), 1);
    assert_eq!(imports[0]["outcome"], "ok", "{}", imports[0]);
    let finds = e.audit("find");
    assert!(finds
        .iter()
        .any(|f| f["outcome"] == "refused" && f["purpose"] == "marketing"));
    let suppressed = e.audit("suppressed:dnc");
    let purposes: Vec<&str> = suppressed
        .iter()
        .map(|s| s["purpose"].as_str().unwrap())
        .collect();
    assert_eq!(
        purposes,
        ["marketing", "marketing", "share:acme"],
        "{suppressed:?}"
    );
    for s in &suppressed {
        assert_eq!(s["outcome"], "refused");
        assert_eq!(s["records"].as_array().unwrap().len(), 1);
    }
    let log = e.ok(&["audit", "export"]);
    assert!(!log.contains("7400123951"));
}

#[test]
fn a_refreshed_list_replaces_the_old_version_and_drop_lifts_it() {
    let e = shop();
    for n in [A, B, C] {
        e.add(n, "marketing");
    }
    let v1 = e.csv("v1.csv", &[A, B]);
    e.suppress("dnc", "marketing", &v1);
    assert!(!found(&e.find(A, "marketing")));
    assert!(!found(&e.find(B, "marketing")));
    assert!(found(&e.find(C, "marketing")));

    let v2 = e.csv("v2.csv", &[B, C, C]);
    let r = e.suppress("dnc", "marketing", &v2);
    assert_eq!(r["version"], 2, "{r}");
    assert_eq!(r["replaced"], 1, "{r}");
    assert_eq!(r["count"], 2, "a number twice is one entry: {r}");
    assert_eq!(
        r["removed"], 2,
        "the old version's entries are deleted: {r}"
    );
    assert!(found(&e.find(A, "marketing")), "no longer listed");
    assert!(!found(&e.find(B, "marketing")));
    assert!(!found(&e.find(C, "marketing")));

    let lists = e.json(&["suppress", "list", "--tenant", "shop"]);
    assert_eq!(lists.as_array().unwrap().len(), 1, "{lists}");
    assert_eq!(lists[0]["list"], "dnc");
    assert_eq!(lists[0]["version"], 2);
    assert_eq!(lists[0]["count"], 2);
    assert_eq!(lists[0]["purposes"], serde_json::json!(["marketing"]));
    assert!(lists[0]["imported_at"].as_str().unwrap().ends_with('Z'));
    let text = e.ok(&["suppress", "list", "--tenant", "shop"]);
    assert!(
        text.starts_with("dnc  version 2  purposes: marketing  2 numbers"),
        "{text}"
    );

    // `check` verifies the list's entries against its row.
    assert!(e.ok(&["check"]).contains("0 problems"));

    let d = e.json(&["suppress", "drop", "--tenant", "shop", "--list", "dnc"]);
    assert_eq!(d["entries_removed"], 2, "{d}");
    assert!(found(&e.find(B, "marketing")));
    assert!(found(&e.find(C, "marketing")));
    assert_eq!(e.audit("suppress-drop").len(), 1);
    assert_eq!(e.audit("suppress-list").len(), 2);
    let none = e.ok(&["suppress", "list", "--tenant", "shop"]);
    assert_eq!(none.trim(), "no suppression lists");

    // Dropping it again: a clear error, not found.
    let again = e.run(&["suppress", "drop", "--tenant", "shop", "--list", "dnc"]);
    assert!(!again.status.success());
    let msg = String::from_utf8_lossy(&again.stderr);
    assert!(
        msg.contains("no suppression list of that name") && msg.contains("suppress list"),
        "{msg}"
    );
}

#[test]
fn misuse_gets_a_clear_error_that_echoes_nothing() {
    let e = shop();
    let list = e.csv("l.csv", &[A]);
    let path = list.to_str().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &["--list", "Bad Name!", "--purposes", "marketing"],
            "invalid list name",
        ),
        (
            &["--list", "dnc", "--purposes", "+447400123951"],
            "is not declared by tenant",
        ),
        (
            &[
                "--list",
                "dnc",
                "--purposes",
                "marketing",
                "--column",
                "number",
            ],
            "no column of the name given",
        ),
    ];
    for (args, hint) in cases {
        let mut all = vec!["suppress", "import", "--tenant", "shop"];
        all.extend_from_slice(args);
        all.push(path);
        let out = e.run(&all);
        assert!(!out.status.success(), "{all:?}");
        let msg = String::from_utf8_lossy(&out.stderr);
        assert!(msg.contains(hint), "{all:?}: {msg}");
        assert!(
            !msg.contains("7400123951") && !msg.contains("Bad Name"),
            "{msg}"
        );
    }
    let none = e.ok(&["suppress", "list", "--tenant", "shop"]);
    assert_eq!(none.trim(), "no suppression lists");
}

#[test]
fn imports_and_adds_report_listed_numbers_and_stats_count_them() {
    let e = shop();
    let dnc = e.csv("dnc.csv", &[A, B, C]);
    e.suppress("dnc", "marketing", &dnc);
    let own = e.csv("own.csv", &[D]);
    e.suppress("own", "marketing", &own);

    // The records are stored (they are the customers'); the summary counts them.
    let customers = e.csv("customers.csv", &[A, B, C, D, "+447400123958"]);
    let s = e.json(&[
        "import",
        "--tenant",
        "shop",
        "--consent",
        "otp,marketing",
        customers.to_str().unwrap(),
    ]);
    assert_eq!(s["created"], 5, "{s}");
    assert_eq!(s["listed"], 4, "{s}");
    let text = e.ok(&[
        "import",
        "--tenant",
        "shop",
        "--consent",
        "otp,marketing",
        customers.to_str().unwrap(),
    ]);
    assert!(
        text.contains("4 of the accepted rows are on a suppression list"),
        "{text}"
    );
    // An import for a purpose no list names counts none.
    let s = e.json(&[
        "import",
        "--tenant",
        "shop",
        "--consent",
        "otp",
        customers.to_str().unwrap(),
    ]);
    assert_eq!(s["listed"], 0, "{s}");
    assert!(found(&e.find(A, "otp")));
    assert!(!found(&e.find(A, "marketing")));

    // An add says so too.
    let a = e.json(&[
        "add",
        "--tenant",
        "shop",
        "--phone",
        C,
        "--consent",
        "otp,marketing",
    ]);
    assert_eq!(a["suppressed_for"], serde_json::json!(["marketing"]), "{a}");

    // Stats: per list, the live records it suppresses; below --min-group, not published.
    let st = e.json(&["stats", "--tenant", "shop", "--min-group", "2"]);
    let lists = st["suppression_lists"].as_array().unwrap();
    assert_eq!(lists.len(), 2, "{st}");
    assert_eq!(lists[0]["list"], "dnc");
    assert_eq!(lists[0]["records"], 3);
    assert_eq!(lists[1]["list"], "own");
    assert!(lists[1]["records"].is_null(), "1 record is below 2: {st}");
    let text = e.ok(&["stats", "--tenant", "shop", "--min-group", "2"]);
    assert!(text.contains("suppression list dnc (marketing): 3 live records suppressed"));
    assert!(text.contains("suppression list own (marketing): fewer than 2 live records"));
    // Opted out of everything: no longer live, no longer counted.
    e.ok(&["opt-out", "--tenant", "shop", "--phone", A, "--all"]);
    let st = e.json(&["stats", "--tenant", "shop", "--min-group", "2"]);
    assert_eq!(st["suppression_lists"][0]["records"], 2, "{st}");
}

#[test]
fn the_store_holds_no_number_of_a_list_and_backups_carry_lists() {
    let e = shop();
    // A copy, so the rejects file the import writes beside it stays out of the
    // repository (and out of what .ci/secret-grep reads as test numbers).
    let list = e.dir.join("national.csv");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/numbers-2k.csv"),
        &list,
    )
    .unwrap();
    let r = e.suppress("national", "marketing", &list);
    assert!(r["count"].as_u64().unwrap() >= 1990, "{r}");
    // The national significant numbers of the list (the digits after the country
    // code of the file's international-format rows, all its E.164 rows): none of them
    // anywhere in the vault directory, as digits.
    let text = std::fs::read_to_string(&list).unwrap();
    let mut needles: Vec<String> = Vec::new();
    let mut e164_rows = Vec::new();
    for row in text.lines().skip(1) {
        match row.split_once(' ') {
            Some((_, rest)) => needles.push(rest.chars().filter(char::is_ascii_digit).collect()),
            None => {
                needles.push(row.trim_start_matches('+').to_owned());
                e164_rows.push(row.trim_start_matches('+').to_owned());
            }
        }
    }
    needles.retain(|n| n.len() >= 6);
    assert!(needles.len() > 1900 && e164_rows.len() > 900);
    let mut files = Vec::new();
    common::files_under(&e.vault, &mut files).unwrap();
    let digits_of = |bytes: &[u8]| -> Vec<String> {
        bytes
            .split(|b| !b.is_ascii_digit())
            .filter(|run| run.len() >= 6)
            .map(|run| String::from_utf8_lossy(run).into_owned())
            .collect()
    };
    // The scan finds them where they are as digits: the list file's E.164 rows.
    let in_list = digits_of(text.as_bytes()).join(" ");
    assert!(e164_rows.iter().all(|n| in_list.contains(n.as_str())));
    for f in &files {
        let runs = digits_of(&std::fs::read(f).unwrap()).join(" ");
        for n in &needles {
            assert!(
                !runs.contains(n.as_str()),
                "a listed number appears in {}",
                f.display()
            );
        }
    }
    // No record and no ciphertext: the list made no record.
    let check = e.ok(&["check"]);
    assert!(
        check.contains(" 0 records") && check.contains("0 problems"),
        "{check}"
    );

    // A backup carries the list; restored, it still suppresses.
    let first = text.lines().nth(1).unwrap().to_owned();
    e.add(&first, "otp,marketing");
    assert!(!found(&e.find(&first, "marketing")));
    let backup = e.path("vault.pvbackup");
    e.ok(&["backup", backup.to_str().unwrap()]);
    let keyring = e.path("keyring.export");
    e.ok(&["keyring", "export", keyring.to_str().unwrap()]);
    let restored = e.beside("restored");
    restored.ok(&[
        "restore",
        backup.to_str().unwrap(),
        "--keyring",
        keyring.to_str().unwrap(),
    ]);
    let lists = restored.json(&["suppress", "list", "--tenant", "shop"]);
    assert_eq!(lists[0]["count"], r["count"], "{lists}");
    assert!(!found(&restored.find(&first, "marketing")));
    assert!(found(&restored.find(&first, "otp")));
}
