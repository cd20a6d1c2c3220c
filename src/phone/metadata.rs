//! Which libphonenumber metadata the parser runs over.
//!
//! Three sources, one type ([`PhoneMetadata`]):
//! - the release vendored in this crate (`PhoneNumberMetadata-9.0.35.xml`, libphonenumber's
//!   own `resources/PhoneNumberMetadata.xml` at tag v9.0.35, Apache-2.0, licence header kept):
//!   the default;
//! - the older release compiled into the `phonenumber` crate (9.0.33), kept as the baseline
//!   that tenants created before the vendored file carry in their rows;
//! - an operator's newer file (`--phone-metadata FILE`), checked before it is used: it must
//!   parse, define every country calling code the vendored file defines, and every pattern in
//!   it must compile. A file that fails any check is refused with the reason, never half-used.
//!
//! The process uses one of them, chosen once by [`install`] before the first number is parsed
//! (the CLI does it at start); without a call, the vendored release.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Once, OnceLock};

use phonenumber::metadata::Database;
use sha2::{Digest, Sha256};

use super::{enlarge_crate_regex_cache, normalize_in, Normalized, PhoneError, Tables};

/// libphonenumber's metadata file, release 9.0.35.
const VENDORED_XML: &str = include_str!("PhoneNumberMetadata-9.0.35.xml");
/// The release of [`VENDORED_XML`].
const VENDORED_VERSION: &str = "9.0.35";
/// The release compiled into the `phonenumber` crate we depend on (crate version
/// `0.3.10+9.0.33`; a test checks this against `Cargo.lock`).
const COMPILED_IN_VERSION: &str = "9.0.33";
/// A libphonenumber metadata file is about 1 MB; anything far larger is not one.
pub const MAX_METADATA_BYTES: u64 = 16 << 20;

/// Why a metadata file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The file could not be read.
    #[error("cannot read the phone metadata file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is far larger than any libphonenumber metadata file.
    #[error(
        "the phone metadata file {} is larger than {MAX_METADATA_BYTES} bytes: it is not a \
         libphonenumber PhoneNumberMetadata.xml",
        path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Not UTF-8, not XML, or not libphonenumber's schema.
    #[error(
        "the phone metadata file {} is not a valid libphonenumber PhoneNumberMetadata.xml \
         ({reason}); use resources/PhoneNumberMetadata.xml of a libphonenumber release",
        path.display()
    )]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file parses but lacks country calling codes that the vendored release defines.
    #[error(
        "the phone metadata file {} defines no metadata for {} country calling code(s) that \
         libphonenumber {VENDORED_VERSION} defines (e.g. +{first}): refusing an incomplete file, \
         which would make every number of those codes invalid",
        path.display(),
        missing.len(),
        first = missing.first().copied().unwrap_or_default()
    )]
    Incomplete {
        /// The file.
        path: PathBuf,
        /// The calling codes it lacks.
        missing: Vec<u16>,
    },
    /// A pattern of the file does not compile.
    #[error(
        "the phone metadata file {} has a pattern for region {region} that does not compile",
        path.display()
    )]
    BadPattern {
        /// The file.
        path: PathBuf,
        /// The region (or "001" for a non-geographic code) whose pattern failed.
        region: String,
    },
}

/// [`install`] came too late: this process has parsed numbers with other metadata already.
#[derive(Debug, thiserror::Error)]
#[error(
    "phone metadata {wanted} cannot be installed: this process already uses {in_use} \
     (install it before the first number is parsed)"
)]
pub struct InstallError {
    /// The version asked for.
    pub wanted: String,
    /// The version in use.
    pub in_use: String,
}

/// One set of libphonenumber metadata, ready for parsing.
pub struct PhoneMetadata {
    version: String,
    // Read by the test that checks every example number of the vendored file.
    #[cfg_attr(not(test), allow(dead_code))]
    db: &'static Database,
    tables: Tables,
}

impl std::fmt::Debug for PhoneMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhoneMetadata")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl PhoneMetadata {
    /// The release vendored in this crate (the default).
    pub fn vendored() -> &'static PhoneMetadata {
        static VENDORED: OnceLock<PhoneMetadata> = OnceLock::new();
        VENDORED.get_or_init(|| {
            match parse_xml(VENDORED_XML).map(|db| PhoneMetadata::new(VENDORED_VERSION, db)) {
                Ok(m) => m,
                // Unreachable with the file as shipped (a test parses it); never a panic.
                Err(_) => PhoneMetadata::new(COMPILED_IN_VERSION, &phonenumber::metadata::DATABASE),
            }
        })
    }

    /// The older release compiled into the `phonenumber` crate.
    pub fn compiled_in() -> &'static PhoneMetadata {
        static COMPILED_IN: OnceLock<PhoneMetadata> = OnceLock::new();
        COMPILED_IN.get_or_init(|| {
            enlarge_crate_regex_cache();
            PhoneMetadata::new(COMPILED_IN_VERSION, &phonenumber::metadata::DATABASE)
        })
    }

    /// The metadata of a known release, by its [`version`](Self::version) label: the vendored
    /// or the compiled-in one, or the process's own (see [`install`]).
    pub fn known(version: &str) -> Option<&'static PhoneMetadata> {
        let active = active();
        if active.version == version {
            return Some(active);
        }
        [Self::vendored(), Self::compiled_in()]
            .into_iter()
            .find(|m| m.version == version)
    }

    /// Reads and checks an operator's `PhoneNumberMetadata.xml`.
    ///
    /// # Errors
    ///
    /// [`MetadataError`] saying why the file is refused: unreadable, too large, malformed,
    /// incomplete (a calling code of the vendored release missing), or with a pattern that
    /// does not compile.
    pub fn load(path: &Path) -> Result<PhoneMetadata, MetadataError> {
        use std::io::Read;
        let read = |source| MetadataError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let mut bytes = Vec::new();
        file.take(MAX_METADATA_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read)?;
        if bytes.len() as u64 > MAX_METADATA_BYTES {
            return Err(MetadataError::TooLarge {
                path: path.to_owned(),
            });
        }
        Self::from_bytes(&bytes, path)
    }

    /// [`load`](Self::load) over bytes already read; `path` only names them in errors.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<PhoneMetadata, MetadataError> {
        let malformed = |reason: String| MetadataError::Malformed {
            path: path.to_owned(),
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8".into()))?;
        let version = if text == VENDORED_XML {
            VENDORED_VERSION.to_owned()
        } else {
            // libphonenumber's file names no release inside; its digest tells files apart.
            let digest = Sha256::digest(bytes);
            format!("sha256:{}", hex::encode(&digest[..8]))
        };
        let db = parse_xml(text).map_err(malformed)?;
        // Leaked on purpose: regions hand out `&'static str` ids, and a process loads its
        // metadata once.
        let meta = PhoneMetadata::new(&version, db);
        let missing: Vec<u16> = Self::vendored()
            .tables
            .by_cc
            .keys()
            .filter(|cc| !meta.tables.by_cc.contains_key(cc))
            .copied()
            .collect::<BTreeSet<u16>>()
            .into_iter()
            .collect();
        if !missing.is_empty() {
            return Err(MetadataError::Incomplete {
                path: path.to_owned(),
                missing,
            });
        }
        if let Some(region) = meta.tables.first_bad_pattern() {
            return Err(MetadataError::BadPattern {
                path: path.to_owned(),
                region: region.to_owned(),
            });
        }
        Ok(meta)
    }

    fn new(version: &str, db: &'static Database) -> PhoneMetadata {
        PhoneMetadata {
            version: version.to_owned(),
            db,
            tables: Tables::build(db),
        }
    }

    /// The release this metadata is (`"9.0.35"`), or `sha256:` and the first 8 bytes of the
    /// file's SHA-256 for an operator's file: the label tenants record with their indexes.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// [`normalize`](super::normalize) over this metadata.
    ///
    /// # Errors
    ///
    /// As [`normalize`](super::normalize).
    pub fn normalize(&self, input: &str, region: Option<&str>) -> Result<Normalized, PhoneError> {
        normalize_in(&self.tables, input, region)
    }

    /// The country calling codes whose rules differ between `self` and `other` (a region
    /// added, removed, or with another pattern, length, prefix or rule): only numbers of these
    /// codes can be valid under one and invalid under the other.
    pub fn changed_calling_codes(&self, other: &PhoneMetadata) -> BTreeSet<u16> {
        let codes: BTreeSet<u16> = self
            .tables
            .by_cc
            .keys()
            .chain(other.tables.by_cc.keys())
            .copied()
            .collect();
        codes
            .into_iter()
            .filter(|&cc| self.tables.fingerprint(cc) != other.tables.fingerprint(cc))
            .collect()
    }

    pub(super) fn tables(&self) -> &Tables {
        &self.tables
    }

    #[cfg(test)]
    pub(super) fn database(&self) -> &'static Database {
        self.db
    }
}

/// What a change of metadata since an earlier release does to validity: which numbers the
/// current metadata accepts that the earlier one rejected. Built by [`MetadataChange::since`].
#[derive(Debug)]
pub struct MetadataChange {
    earlier: &'static PhoneMetadata,
    codes: BTreeSet<u16>,
}

impl MetadataChange {
    /// The change from the release labelled `version` (as tenants record it) to the process's
    /// metadata; `None` when there is none, or when `version` is not a release this process
    /// knows (then no count can be given).
    pub fn since(version: &str) -> Option<MetadataChange> {
        let now = active();
        if now.version == version {
            return None;
        }
        let earlier = PhoneMetadata::known(version)?;
        Some(MetadataChange {
            earlier,
            codes: now.changed_calling_codes(earlier),
        })
    }

    /// The earlier release.
    pub fn earlier_version(&self) -> &str {
        &self.earlier.version
    }

    /// Whether `input`, which the current metadata normalized to `n`, was invalid under the
    /// earlier release. Cheap for the numbers of calling codes the change did not touch.
    pub fn turned_valid(&self, n: &Normalized, input: &str, region: Option<&str>) -> bool {
        self.codes.contains(&n.country_code) && self.earlier.normalize(input, region).is_err()
    }
}

/// Makes `meta` the metadata of this process (see [`super::normalize`]).
///
/// # Errors
///
/// [`InstallError`] if the process already uses other metadata (a number was parsed, or
/// another was installed). Installing the metadata in use again is fine.
pub fn install(meta: PhoneMetadata) -> Result<&'static PhoneMetadata, InstallError> {
    let wanted = meta.version.clone();
    let mut slot = Some(meta);
    let in_use = ACTIVE.get_or_init(|| match slot.take() {
        Some(m) => Box::leak(Box::new(m)),
        None => PhoneMetadata::vendored(),
    });
    if in_use.version == wanted {
        Ok(in_use)
    } else {
        Err(InstallError {
            wanted,
            in_use: in_use.version.clone(),
        })
    }
}

static ACTIVE: OnceLock<&'static PhoneMetadata> = OnceLock::new();

/// The metadata of this process.
pub(super) fn active() -> &'static PhoneMetadata {
    ACTIVE.get_or_init(PhoneMetadata::vendored)
}

thread_local! {
    /// Set while the `phonenumber` crate's loader runs: its panics are caught and reported as
    /// a malformed file, not printed.
    static QUIET_PANICS: Cell<bool> = const { Cell::new(false) };
}

/// The `phonenumber` crate's XML loader, made total: it panics on some malformed files (an
/// empty length list, a descriptor without a pattern), which is caught here and reported as
/// a malformed file.
fn parse_xml(text: &str) -> Result<&'static Database, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(Cell::get) {
                previous(info);
            }
        }));
    });
    QUIET_PANICS.with(|q| q.set(true));
    let parsed = std::panic::catch_unwind(|| Database::parse(text));
    QUIET_PANICS.with(|q| q.set(false));
    match parsed {
        Ok(Ok(db)) => Ok(Box::leak(Box::new(db))),
        Ok(Err(e)) => Err(first_line(&e.to_string())),
        Err(_) => Err("a required element or attribute is missing or empty".into()),
    }
}

/// The loader's messages can be long; one line of at most 200 characters.
fn first_line(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn refused(bytes: &[u8]) -> MetadataError {
        PhoneMetadata::from_bytes(bytes, Path::new("test.xml")).unwrap_err()
    }

    #[test]
    fn vendored_file_is_the_default_and_newer_than_the_crate() {
        assert_eq!(PhoneMetadata::vendored().version(), "9.0.35");
        assert_eq!(PhoneMetadata::compiled_in().version(), "9.0.33");
        assert_eq!(super::super::metadata_version(), "9.0.35");
        // The vendored file is what `from_bytes` calls 9.0.35.
        let again = PhoneMetadata::from_bytes(VENDORED_XML.as_bytes(), Path::new("x")).unwrap();
        assert_eq!(again.version(), "9.0.35");
        assert!(VENDORED_XML.contains("Licensed under the Apache License, Version 2.0"));
    }

    #[test]
    fn the_two_releases_differ_in_a_few_calling_codes() {
        let changed = PhoneMetadata::vendored().changed_calling_codes(PhoneMetadata::compiled_in());
        assert!(!changed.is_empty());
        assert!(changed.len() < 60, "{changed:?}");
        assert!(PhoneMetadata::vendored()
            .changed_calling_codes(PhoneMetadata::vendored())
            .is_empty());
    }

    #[test]
    fn a_changed_file_gets_a_digest_label() {
        let text = VENDORED_XML.replacen("<!--", "<!-- local copy", 1);
        let m = PhoneMetadata::from_bytes(text.as_bytes(), Path::new("x")).unwrap();
        assert!(m.version().starts_with("sha256:"), "{}", m.version());
        assert_eq!(m.version().len(), "sha256:".len() + 16);
        assert!(m
            .changed_calling_codes(PhoneMetadata::vendored())
            .is_empty());
        assert_eq!(
            m.normalize("+447400123456", None)
                .unwrap()
                .e164
                .expose_secret(),
            "+447400123456"
        );
    }

    #[test]
    fn malformed_files_are_refused_without_a_panic() {
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\xff\xfe not utf-8".to_vec(),
            b"<phoneNumberMetadata><territories>".to_vec(),
            b"not xml at all".to_vec(),
            VENDORED_XML.as_bytes()[..VENDORED_XML.len() / 2].to_vec(),
            // An empty length list: the crate's loader indexes its first byte.
            VENDORED_XML
                .replacen(
                    "possibleLengths national=\"",
                    "possibleLengths national=\",",
                    1,
                )
                .into_bytes(),
            // A descriptor without its pattern: the crate's loader unwraps it.
            {
                let start = VENDORED_XML.find("<nationalNumberPattern>").unwrap();
                let end = start
                    + VENDORED_XML[start..]
                        .find("</nationalNumberPattern>")
                        .unwrap()
                    + "</nationalNumberPattern>".len();
                format!("{}{}", &VENDORED_XML[..start], &VENDORED_XML[end..]).into_bytes()
            },
        ];
        for bytes in cases {
            match refused(&bytes) {
                MetadataError::Malformed { .. } | MetadataError::Incomplete { .. } => {}
                other => panic!("unexpected: {other}"),
            }
        }
    }

    #[test]
    fn an_incomplete_file_is_refused_naming_a_missing_code() {
        // Only the territories up to the first non-geographic entity: most codes missing.
        let cut = VENDORED_XML.find("<territory id=\"AE\"").unwrap();
        let text = format!(
            "{}</territories></phoneNumberMetadata>",
            &VENDORED_XML[..cut]
        );
        let e = refused(text.as_bytes());
        assert!(matches!(e, MetadataError::Incomplete { .. }), "{e}");
        assert!(e.to_string().contains("country calling code"), "{e}");
    }

    #[test]
    fn a_pattern_that_does_not_compile_is_refused() {
        let text =
            VENDORED_XML.replacen("<nationalNumberPattern>", "<nationalNumberPattern>(((", 1);
        let e = refused(text.as_bytes());
        assert!(
            matches!(
                e,
                MetadataError::BadPattern { .. } | MetadataError::Malformed { .. }
            ),
            "{e}"
        );
    }

    #[test]
    fn too_large_files_are_refused_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.xml");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(MAX_METADATA_BYTES + 1).unwrap();
        assert!(matches!(
            PhoneMetadata::load(&path),
            Err(MetadataError::TooLarge { .. })
        ));
        assert!(matches!(
            PhoneMetadata::load(&dir.path().join("absent.xml")),
            Err(MetadataError::Read { .. })
        ));
    }
}
