//! Newer phone-number metadata without a new release: `--phone-metadata FILE` is checked and
//! refused with a clear error when malformed, and `reindex` re-validates the stored numbers
//! under it, lists those that became invalid (kept, for re-verification) and stamps the tenant.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use common::Env;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

const VENDORED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/src/phone/PhoneNumberMetadata-9.0.35.xml"
);

impl Env {
    /// `normalize --jsonl` of one number, under `extra` global flags.
    fn normalize(&self, extra: &[&str], phone: &str) -> Output {
        use std::io::Write;
        let mut args = extra.to_vec();
        args.extend(["normalize", "--jsonl"]);
        let mut child = self
            .cmd(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let line = format!("{{\"input\": \"{phone}\"}}\n");
        let _ = child.stdin.take().unwrap().write_all(line.as_bytes());
        let out = child.wait_with_output().unwrap();
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// `ARGS` (`--json` among them), which must succeed; its output.
    fn json_of(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// The vendored file with Great Britain's mobile ranges narrowed to 7999..., as if a newer
/// release had withdrawn the others.
fn without_most_gb_mobiles() -> String {
    let xml = std::fs::read_to_string(VENDORED).unwrap();
    let gb = xml.find("<territory id=\"GB\"").unwrap();
    let mobile = gb + xml[gb..].find("<mobile>").unwrap();
    let start = mobile + xml[mobile..].find("<nationalNumberPattern>").unwrap();
    let start = start + "<nationalNumberPattern>".len();
    let end = start + xml[start..].find("</nationalNumberPattern>").unwrap();
    format!("{}7999\\d{{6}}{}", &xml[..start], &xml[end..])
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn malformed_metadata_files_are_refused_with_the_reason() {
    let e = Env::new();
    let xml = std::fs::read_to_string(VENDORED).unwrap();
    let cases = [
        ("empty.xml", String::new(), "not a valid libphonenumber"),
        (
            "half.xml",
            xml[..xml.len() / 2].to_owned(),
            "not a valid libphonenumber",
        ),
        (
            "nolength.xml",
            xml.replacen(
                "possibleLengths national=\"",
                "possibleLengths national=\",",
                1,
            ),
            "not a valid libphonenumber",
        ),
        (
            "short.xml",
            format!(
                "{}</territories></phoneNumberMetadata>",
                &xml[..xml.find("<territory id=\"AE\"").unwrap()]
            ),
            "country calling code",
        ),
    ];
    for (name, text, want) in cases {
        let f = e.file(name, &text);
        let out = e.normalize(&["--phone-metadata", path(&f)], "+447400123456");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(out.stdout.is_empty(), "{name}");
    }
    let out = e.normalize(&["--phone-metadata", "/nonexistent.xml"], "+447400123456");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the phone metadata file"));
}

#[test]
fn the_vendored_release_is_the_default_and_a_file_changes_validity() {
    let e = Env::new();
    let valid = |extra: &[&str]| {
        let out = e.normalize(extra, "+447400123456");
        assert!(out.status.success());
        let out = String::from_utf8(out.stdout).unwrap();
        serde_json::from_str::<Value>(out.trim()).unwrap()["valid"]
            .as_bool()
            .unwrap()
    };
    assert!(valid(&[]));
    let f = e.file("narrow.xml", &without_most_gb_mobiles());
    assert!(!valid(&["--phone-metadata", path(&f)]));
}

#[test]
fn reindex_lists_numbers_the_new_metadata_rejects_and_stamps_the_tenant() {
    let e = Env::new();
    e.ok(&["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]);
    e.ok(&["tenant", "create", "shop", "--purposes", "otp"]);
    let added = |phone: &str| {
        e.json_of(&[
            "--json",
            "add",
            "--tenant",
            "shop",
            "--phone",
            phone,
            "--consent",
            "otp",
        ])["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let gone = added("+447400123456");
    let _kept = added("+447999123456");
    let _other = added("+33612345678");

    // Created under the vendored release: nothing to do.
    let r = e.json_of(&["--json", "reindex"]);
    assert_eq!(r[0]["from_version"], "9.0.35");
    assert_eq!(r[0]["invalid"], serde_json::json!([]));
    assert_eq!(r[0]["stamped"], false);

    let f = e.file("narrow.xml", &without_most_gb_mobiles());
    let with_file = |args: &[&str]| {
        let mut a = vec!["--phone-metadata", path(&f)];
        a.extend(args);
        e.json_of(&a)
    };
    let dry = with_file(&["--json", "reindex", "--dry-run"]);
    assert_eq!(dry[0]["records"], 3);
    assert_eq!(dry[0]["invalid"], serde_json::json!([gone]));
    assert_eq!(dry[0]["stamped"], false);
    let done = with_file(&["--json", "reindex", "--tenant", "shop"]);
    assert_eq!(done[0]["invalid"], serde_json::json!([gone]));
    assert_eq!(done[0]["stamped"], true);
    let version = done[0]["to_version"].as_str().unwrap().to_owned();
    assert!(version.starts_with("sha256:"), "{version}");

    // Kept, for re-verification: still readable by id.
    let got = e.json_of(&[
        "--json",
        "get",
        "--tenant",
        "shop",
        &gone,
        "--purpose",
        "otp",
    ]);
    assert_eq!(got["id"], gone.as_str());

    // Back on the vendored release: the tenant was stamped with the file's digest.
    let back = e.json_of(&["--json", "reindex"]);
    assert_eq!(back[0]["from_version"], version.as_str());
    assert_eq!(back[0]["to_version"], "9.0.35");
    assert_eq!(back[0]["invalid"], serde_json::json!([]));
    assert_eq!(back[0]["stamped"], true);

    // Text output names the ids, never a number.
    let text = e.ok(&["--phone-metadata", path(&f), "reindex", "--dry-run"]);
    assert!(
        text.contains(&format!("invalid now (re-verify): {gone}")),
        "{text}"
    );
    assert!(!text.contains("7400123456"), "{text}");
}
