//! `phonevault demo`, the README's first command, on a small input: it imports, serves,
//! looks up, withdraws and opts out through the socket, verifies the audit chain, prints
//! its figures and where the vault is, and the vault it leaves continues the tour.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn demo(dir: &Path, extra: &[&str]) -> std::process::Output {
    common::bare_command()
        .arg("demo")
        .arg("--numbers")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/numbers-2k.csv"))
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn demo_runs_the_product_end_to_end_and_leaves_a_vault_for_the_tour() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = demo(
        &dir,
        &["--limit", "400", "--lookups", "120", "--changes", "4"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    eprintln!("{stdout}");
    // The shipped sample's first 400 rows: 400 read, the valid ones stored.
    let imported = stdout
        .lines()
        .find(|l| l.starts_with("imported 400 rows in "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let records: u64 = imported
        .split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((390..=400).contains(&records), "{imported}");
    assert!(
        stdout.contains("120 lookups through the socket in ") && stdout.contains(": 120 found"),
        "{stdout}"
    );
    assert!(
        stdout.contains("withdrew `otp` from 4 numbers and opted 4 out of everything: 8 of 8 lookups for `otp` now refused"),
        "{stdout}"
    );
    assert!(stdout.contains("audit chain intact: "), "{stdout}");
    let vault = dir.join("vault");
    assert!(
        stdout.contains(&format!("The vault is in {}", vault.display())),
        "{stdout}"
    );
    assert!(stdout.contains("export PHONEVAULT_DIR="), "{stdout}");
    // No number of the input in anything the demo printed.
    let csv = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/numbers-2k.csv"),
    )
    .unwrap();
    for n in csv.lines().skip(1).take(400) {
        let digits: String = n.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= 8 {
            assert!(!stdout.contains(&digits) && !stderr.contains(&digits));
        }
    }
    // The passphrase is private, the server is gone, and the vault continues the tour.
    let mode = std::fs::metadata(dir.join("passphrase"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    assert!(
        !dir.join("phonevault.sock").exists(),
        "the server was stopped"
    );
    let passphrase = dir.join("passphrase");
    let args = [
        "--passphrase-file",
        passphrase.to_str().unwrap(),
        "--json",
        "tenant",
        "list",
    ];
    let mut c = common::bare_command();
    c.arg("--vault").arg(&vault).args(args);
    assert!(common::ok(c, &args).contains("\"demo\""));
}

#[test]
fn demo_misuse_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    // An existing directory is never reused.
    let out = demo(tmp.path(), &["--limit", "10"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("give --dir with a directory that does not exist yet"),
        "{err}"
    );
    // A missing input names the fix.
    let out = common::bare_command()
        .args(["demo", "--numbers", "/nonexistent/numbers.csv", "--dir"])
        .arg(tmp.path().join("d"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("run the demo from the repository's root, or give --numbers FILE"),
        "{err}"
    );
    assert!(
        !tmp.path().join("d").exists(),
        "nothing made before the input is read"
    );
}
