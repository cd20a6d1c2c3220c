//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/`) through the
//! same `phonevault::fuzzing` functions the cargo-fuzz targets call, so CI covers the
//! corpora, crash reproducers included, on stable without libFuzzer. A panic or a
//! broken invariant on any file fails the test.
//!
//! `cargo test --test fuzz_corpus -- --ignored write_seeds` rewrites the `seed-*`
//! files from `phonevault::fuzzing::seeds` and samples of `tests/data/`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

use std::collections::BTreeSet;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use phonevault::fuzzing::{seeds, CSV_OWN_HEADER, TARGETS};

/// Most corpus files in all (the corpus is kept minimized, not accumulated).
const MAX_CORPUS_FILES: usize = 500;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn names_in(dir: &Path, strip: &str) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(strip).map(str::to_owned))
        .collect()
}

#[test]
fn every_target_has_a_harness_a_replay_and_a_corpus() {
    let replayed: BTreeSet<String> = TARGETS.iter().map(|(t, _)| t.to_string()).collect();
    let harnesses = names_in(&fuzz_dir().join("fuzz_targets"), ".rs");
    let corpora = names_in(&fuzz_dir().join("corpus"), "");
    assert_eq!(harnesses, replayed, "fuzz/fuzz_targets vs fuzzing::TARGETS");
    assert_eq!(corpora, replayed, "fuzz/corpus vs fuzzing::TARGETS");
}

#[test]
fn every_corpus_file_holds_its_invariants() {
    let mut failures = Vec::new();
    let mut total = 0;
    for (target, f) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(target);
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "the corpus of {target} is empty");
        for path in files {
            let bytes = fs::read(&path).unwrap();
            let name = format!("{target}/{}", path.file_name().unwrap().to_string_lossy());
            match catch_unwind(AssertUnwindSafe(|| f(&bytes))) {
                Ok(Ok(())) => {}
                Ok(Err(v)) => failures.push(format!("{name}: {v}")),
                Err(_) => failures.push(format!("{name}: panicked")),
            }
            total += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "corpus failures:\n{}",
        failures.join("\n")
    );
    assert!(
        total <= MAX_CORPUS_FILES,
        "{total} corpus files: minimize with `cargo fuzz cmin`"
    );
}

#[test]
fn the_built_in_seeds_are_in_the_corpus() {
    for (target, name, bytes) in seeds().unwrap() {
        let path = fuzz_dir()
            .join("corpus")
            .join(target)
            .join(format!("seed-{name}"));
        let on_disk =
            fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run write_seeds)", path.display()));
        // Sealed records and keyrings hold random nonces and keys: same length only.
        if matches!(target, "envelope" | "keyring") {
            assert_eq!(on_disk.len(), bytes.len(), "{}", path.display());
        } else {
            assert_eq!(on_disk, bytes, "{} (run write_seeds)", path.display());
        }
    }
}

/// Phone inputs from the libphonenumber answers in tests/data, one in six, as
/// `RR|input` when they come with a region.
fn phone_samples() -> Vec<(String, Vec<u8>)> {
    let text = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/phone-sample.jsonl"),
    )
    .unwrap();
    text.lines()
        .step_by(6)
        .enumerate()
        .map(|(i, line)| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let input = v["input"].as_str().unwrap();
            let bytes = match v["region"].as_str() {
                Some(r) => format!("{r}|{input}"),
                None => input.to_owned(),
            };
            (format!("sample-{i:02}"), bytes.into_bytes())
        })
        .collect()
}

/// CSV chunks of the import fixture, with and without a region hint.
fn csv_samples() -> Vec<(String, Vec<u8>)> {
    let text =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/numbers-2k.csv"))
            .unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    (0..4)
        .map(|i| {
            let chunk = rows[i * 250..i * 250 + 12].join("\n");
            let flags = if i % 2 == 0 { 0 } else { 1 };
            let mut bytes = vec![flags];
            if i == 3 {
                bytes[0] |= CSV_OWN_HEADER;
                bytes.extend_from_slice(b"phone\n");
            }
            bytes.extend_from_slice(chunk.as_bytes());
            (format!("sample-{i}"), bytes)
        })
        .collect()
}

#[test]
#[ignore = "writes fuzz/corpus/*/seed-*; run by hand after changing the seeds"]
fn write_seeds() {
    let mut all: Vec<(&str, String, Vec<u8>)> = seeds().unwrap();
    all.extend(phone_samples().into_iter().map(|(n, b)| ("phone", n, b)));
    all.extend(csv_samples().into_iter().map(|(n, b)| ("csv_import", n, b)));
    for (target, name, bytes) in all {
        let dir = fuzz_dir().join("corpus").join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}
