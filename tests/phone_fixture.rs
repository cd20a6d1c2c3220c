//! Agreement of `phone::normalize` with libphonenumber on a fixed sample of inputs.
//!
//! `tests/data/phone-sample.jsonl` holds 384 inputs (every format, Unicode digits and
//! separators, hostile input) with the answers of libphonenumber 9.0.43 (PyPI `phonenumbers`).
//! Our metadata is 9.0.33, so a few answers may legitimately differ; disagreements are
//! printed, and the test fails only below the thresholds — except for false accepts: an
//! input libphonenumber rejects must never be accepted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use phonevault::phone::{metadata_version, report, PhoneMetadata};
use serde_json::Value;

struct Row {
    input: String,
    region: Option<String>,
    valid: bool,
    e164: Option<String>,
    want_region: Option<String>,
    want_type: Option<String>,
}

fn rows() -> Vec<Row> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/phone-sample.jsonl");
    let text = std::fs::read_to_string(path).expect("read fixture");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("fixture line is JSON");
            let s = |v: &Value| v.as_str().map(str::to_owned);
            Row {
                input: s(&v["input"]).expect("input"),
                region: s(&v["region"]),
                valid: v["expect"]["valid"].as_bool().expect("valid"),
                e164: s(&v["expect"]["e164"]),
                want_region: s(&v["expect"]["region"]),
                want_type: s(&v["expect"]["type"]),
            }
        })
        .collect()
}

fn shown(input: &str) -> String {
    let s: String = input.chars().take(60).collect();
    format!("{}", s.escape_debug())
}

#[test]
fn agrees_with_libphonenumber() {
    let rows = rows();
    assert_eq!(rows.len(), 384);
    let mut agree = 0;
    let mut false_accepts = Vec::new();
    let mut both_valid = 0;
    let mut type_agree = 0;
    let mut region_agree = 0;
    for row in &rows {
        let got = report(&row.input, row.region.as_deref());
        let same = got.valid == row.valid && got.e164 == row.e164;
        if same {
            agree += 1;
        } else {
            println!(
                "DISAGREE {:?} region={:?}: libphonenumber valid={} e164={:?}; ours valid={} e164={:?} error={:?}",
                shown(&row.input), row.region, row.valid, row.e164, got.valid, got.e164, got.error
            );
        }
        if got.valid && !row.valid {
            false_accepts.push(shown(&row.input));
        }
        if same && row.valid {
            both_valid += 1;
            if got.r#type == row.want_type.as_deref() {
                type_agree += 1;
            } else {
                println!(
                    "TYPE {:?}: libphonenumber {:?}, ours {:?}",
                    shown(&row.input),
                    row.want_type,
                    got.r#type
                );
            }
            // libphonenumber names non-geographic numbers' region "001"; we say None.
            let want_region = row.want_region.as_deref().filter(|r| *r != "001");
            if got.region.as_deref() == want_region {
                region_agree += 1;
            } else {
                println!(
                    "REGION {:?}: libphonenumber {:?}, ours {:?}",
                    shown(&row.input),
                    row.want_region,
                    got.region
                );
            }
        }
    }
    let pct = |n: usize, d: usize| 100.0 * n as f64 / d.max(1) as f64;
    println!(
        "valid/e164 agreement: {agree}/{} = {:.2}%",
        rows.len(),
        pct(agree, rows.len())
    );
    println!(
        "type agreement among agreeing valid: {type_agree}/{both_valid} = {:.2}%",
        pct(type_agree, both_valid)
    );
    println!(
        "region agreement among agreeing valid: {region_agree}/{both_valid} = {:.2}%",
        pct(region_agree, both_valid)
    );
    println!("metadata {} vs fixture 9.0.43", metadata_version());
    assert!(
        false_accepts.is_empty(),
        "accepted what libphonenumber rejects: {false_accepts:?}"
    );
    assert!(
        pct(agree, rows.len()) >= 99.0,
        "valid/e164 agreement below 99%"
    );
    assert!(
        pct(type_agree, both_valid) >= 95.0,
        "type agreement below 95%"
    );
    assert!(
        pct(region_agree, both_valid) >= 95.0,
        "region agreement below 95%"
    );
}

#[test]
fn metadata_version_matches_the_locked_crate() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"))
        .expect("read Cargo.lock");
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"phonenumber\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .expect("phonenumber in Cargo.lock");
    let want = format!("+{}\"", PhoneMetadata::compiled_in().version());
    assert!(
        version.ends_with(&want),
        "Cargo.lock has phonenumber {version}"
    );
}
