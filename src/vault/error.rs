//! Why a vault operation failed: one error type and the one table of its stable codes
//! (the audit log's and the API's alike; the server maps codes to HTTP statuses only).

use std::path::{Path, PathBuf};

use phonevault_keys::KeyError;

use super::journal::JournalError;
use crate::phone::PhoneError;
use crate::record::RecordError;
use crate::store::StoreError;

/// Why a vault operation failed. Messages say what happened and what to do next, and
/// never contain a phone number or a secret.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// No vault at the given directory.
    #[error(
        "no vault at {0}: run `phonevault init` first, or pass --vault DIR (or set PHONEVAULT_DIR)"
    )]
    NoVault(PathBuf),
    /// `init` found an existing vault.
    #[error(
        "a vault already exists at {0}; refusing to overwrite it (choose another --vault DIR)"
    )]
    AlreadyExists(PathBuf),
    /// Wrong passphrase or key file.
    #[error("could not unlock the vault: wrong passphrase or key file")]
    Unlock,
    /// Vault files readable by other users.
    #[error("refusing to open the vault: {0} is accessible by other users; run `chmod 700` on the vault directory and on its store/ directory, and `chmod 600` on its keyring")]
    InsecurePermissions(PathBuf),
    /// The keyring and the store do not belong together.
    #[error("the keyring does not belong to this store (vault ids differ): restore the matching keyring file")]
    KeyringMismatch,
    /// The tenant does not exist. The name given is not repeated: it may be anything
    /// a caller typed (a phone number in the wrong field).
    #[error(
        "unknown tenant: check the name given, and list tenants with `phonevault tenant list`"
    )]
    UnknownTenant(()),
    /// The tenant already exists.
    #[error("tenant `{0}` already exists")]
    TenantExists(String),
    /// A name (tenant, purpose) is not acceptable.
    #[error("invalid {what}: use 1-64 characters from a-z, 0-9, '-', '_', '.', ':' ")]
    InvalidName {
        /// Which kind of name.
        what: &'static str,
    },
    /// The purpose is not declared by the tenant.
    #[error("purpose number {position} given is not declared by tenant `{tenant}`: declared purposes are {declared}")]
    UnknownPurpose {
        /// 1-based position of the purpose among those given (the value itself is
        /// never repeated).
        position: usize,
        /// The tenant.
        tenant: String,
        /// Its declared purposes.
        declared: String,
    },
    /// An add needs at least one consent.
    #[error("no consent given: name at least one purpose with --consent")]
    NoConsent,
    /// The number or record id is not in the tenant.
    #[error("no such record in tenant `{0}` (or the number was erased): nothing changed")]
    NoSuchRecord(String),
    /// A record id that is not of the vault's form.
    #[error("invalid record id: expected 32 hexadecimal characters")]
    InvalidRecordId,
    /// An inbound SMS whose provider signature is missing or wrong; nothing changed.
    #[error("the X-Twilio-Signature header is missing or does not match: check the tenant's --webhook-url (the exact public URL the provider posts to) and its secret (the provider's auth token)")]
    BadSignature,
    /// Invalid argument.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A value of the wrong form, refused where it was parsed (a consent source).
    #[error(transparent)]
    InvalidValue(crate::policy::ValueError),
    /// The phone number was rejected.
    #[error(transparent)]
    Phone(#[from] PhoneError),
    /// A statistics query was refused.
    #[error(transparent)]
    Stats(#[from] crate::stats::StatsError),
    /// A stored record could not be read.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// Key management failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored row failed its MAC or does not decode.
    #[error("stored {0} row failed its integrity check: the store was tampered with or damaged; restore it from a backup")]
    RowTampered(&'static str),
    /// A last-4 search matched more records than one search may return, or more
    /// candidates than the tenant's index plan allows to scan.
    #[error("too many records match these last four digits (a search returns at most {limit}): ask the customer for the full number, or look it up by another factor")]
    Last4TooBroad {
        /// The most records one search returns.
        limit: usize,
    },
    /// The index pointed at a record holding another number (HMAC collision or tampering).
    #[error("index inconsistency: an index entry points at a record for another number; run `phonevault key rewrap` to rebuild the index")]
    IndexMismatch,
    /// Filesystem error with the path it concerns.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// CSV input or output failed.
    #[error("CSV error: {0}")]
    Csv(String),
    /// The database holds no vault yet.
    #[error("the store holds no vault: run `phonevault init` with the same --store first (a second server needs only a copy of the keyring file)")]
    EmptyStore,
    /// The operation exists only for the embedded store.
    #[error("{0}")]
    Unsupported(&'static str),
    /// `key retire` would leave records under destroyed key versions.
    #[error(
        "{records} records of tenant `{tenant}` are still under key versions below {below}: run \
         `phonevault key rewrap --tenant {tenant}` first, or pass --force to destroy those \
         versions anyway (the records stay, reported as unreadable)"
    )]
    RetireWouldStrand {
        /// The tenant.
        tenant: String,
        /// The version asked for.
        below: u32,
        /// Records still under an older data or index key version.
        records: u64,
    },
    /// A keyring to import holds keys this vault has destroyed since.
    #[error(
        "the keyring to import still holds keys this vault has destroyed ({what}); importing it \
         would bring them back: check that this is the latest keyring export, or pass --force if \
         that is intended"
    )]
    ResurrectsKeys {
        /// Which tenants and versions.
        what: String,
    },
    /// A keyring to import lacks key versions this vault holds (an older export).
    #[error(
        "the keyring to import lacks key versions this vault holds ({what}): it is older than \
         the vault's keyring, and installing it would make the records under those versions \
         unreadable for good; import the latest keyring export instead (or pass --force if \
         those records are meant to be lost)"
    )]
    KeyringLacksVersions {
        /// Which tenants and versions.
        what: String,
    },
    /// The store knows key versions of a tenant that this host's keyring lacks.
    #[error(
        "tenant `{tenant}` has key version(s) {versions} made by another host sharing this \
         store, and this host's keyring lacks them: copy that host's keyring file to this host \
         (the `keyring` of its vault directory, or `phonevault keyring export FILE` there); \
         until then this host refuses the tenant rather than misread its records"
    )]
    KeyVersionMissing {
        /// The tenant.
        tenant: String,
        /// The versions.
        versions: String,
    },
    /// This host's seed of a key version is not the one the store records.
    #[error(
        "key version {version} of tenant `{tenant}` in this host's keyring is not the one the \
         store records: another host made a different seed under the same number (nothing was \
         tampered with, and nothing was written under this host's copy, which is used only once \
         the store holds it); copy the keyring file of the host that made it to this host \
         (the `keyring` of its vault directory, or `phonevault keyring export FILE` there)"
    )]
    KeyVersionConflict {
        /// The tenant.
        tenant: String,
        /// The version.
        version: u32,
    },
    /// Backup or restore failed.
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
    /// The audit chain is broken, or an audit link could not be built.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// The operation's audit entry could not be written, so its result is withheld.
    #[error("the audit log could not record this operation, so its result is withheld: {0}")]
    AuditUnavailable(Box<VaultError>),
    /// The audit journal of `--audit-sync process` could not be used or does not verify.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// K0 was exported before and is no longer in the vault.
    #[error("the audit key K0 was already exported and is no longer held by the vault: ask the auditors who hold it (`phonevault audit key export --read-only` hands out the read key alone again)")]
    AuditKeyGone,
    /// The PKCS#11 token could not seal or unseal a key slot's secret.
    #[error(transparent)]
    Hsm(#[from] crate::hsm::HsmError),
    /// The keyring has no PKCS#11 slot for the configured token and key.
    #[error("the keyring has no PKCS#11 key slot for token {token:?} and key {key:?}: add one with `phonevault keyslot add --pkcs11-token ... --pkcs11-key ...`, or unlock another way")]
    NoPkcs11Slot {
        /// The token label.
        token: String,
        /// The key label.
        key: String,
    },
    /// The tenant has no suppression list of the name given.
    #[error("no suppression list of that name in this tenant: list them with `phonevault suppress list --tenant T`")]
    NoSuchList,
    /// The upload named is the version of its list in force already (it was
    /// committed): rows or a second commit would change a list nobody is uploading.
    #[error("that upload is already the list's version in force: start a new one")]
    UploadInForce,
    /// A suppression list was keyed with an index-key version destroyed since.
    #[error("suppression list `{0}` was built with an index key destroyed since (`key retire`): reads for its purposes are refused until it is imported again with `phonevault suppress import`")]
    SuppressKeyGone(String),
}

impl VaultError {
    /// A stable, machine-readable code for the error (the socket API's `code`, and
    /// the outcome of a failed operation in the audit log).
    pub fn code(&self) -> &'static str {
        match self {
            VaultError::NoVault(_) => "no_vault",
            VaultError::AlreadyExists(_) => "already_exists",
            VaultError::Unlock => "unseal_failed",
            VaultError::InsecurePermissions(_) => "insecure_permissions",
            VaultError::KeyringMismatch => "keyring_mismatch",
            VaultError::UnknownTenant(_) => "unknown_tenant",
            VaultError::TenantExists(_) => "conflict",
            VaultError::InvalidName { .. }
            | VaultError::InvalidArgument(_)
            | VaultError::InvalidValue(_) => "invalid_argument",
            VaultError::UnknownPurpose { .. } => "unknown_purpose",
            VaultError::NoConsent => "no_consent",
            VaultError::NoSuchRecord(_) => "not_found",
            VaultError::BadSignature => "bad_signature",
            VaultError::InvalidRecordId => "invalid_record_id",
            VaultError::Phone(_) => "invalid_phone",
            VaultError::Stats(_) => "invalid_argument",
            VaultError::Record(_) => "record_unreadable",
            VaultError::Key(_) => "key_error",
            VaultError::Store(StoreError::Conflict) => "conflict",
            VaultError::Store(StoreError::DiskFull) => "storage_full",
            VaultError::Store(StoreError::Locked) => "locked",
            VaultError::Store(StoreError::Unavailable(_)) => "store_unavailable",
            VaultError::Store(_) => "store_error",
            VaultError::RowTampered(_) | VaultError::IndexMismatch => "tampered",
            VaultError::Last4TooBroad { .. } => "too_many_matches",
            VaultError::Io { .. } => "io_error",
            VaultError::Hsm(_) | VaultError::NoPkcs11Slot { .. } => "hsm_unavailable",
            VaultError::Csv(_) => "csv_error",
            VaultError::Audit(_) => "audit_broken",
            VaultError::AuditUnavailable(_) => "audit_unavailable",
            VaultError::AuditKeyGone => "audit_key_gone",
            VaultError::Journal(JournalError::Tampered { .. }) => "audit_broken",
            VaultError::Journal(_) => "audit_unavailable",
            VaultError::EmptyStore => "empty_store",
            VaultError::Unsupported(_) => "unsupported",
            VaultError::RetireWouldStrand { .. } => "records_under_old_keys",
            VaultError::ResurrectsKeys { .. } | VaultError::KeyringLacksVersions { .. } => {
                "keyring_conflict"
            }
            VaultError::Backup(_) => "backup_error",
            VaultError::KeyVersionMissing { .. } => "key_version_missing",
            VaultError::KeyVersionConflict { .. } => "key_version_conflict",
            VaultError::NoSuchList => "not_found",
            VaultError::UploadInForce => "conflict",
            VaultError::SuppressKeyGone(_) => "suppression_key_gone",
        }
    }
}

impl VaultError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> VaultError {
        if matches!(source.raw_os_error(), Some(28) | Some(122)) {
            return VaultError::Store(StoreError::DiskFull);
        }
        VaultError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}
