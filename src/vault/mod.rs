//! The vault: opens the keyring and the store, and implements every operation the CLI
//! and the socket API offer, so both share one implementation.
//!
//! | task | call |
//! |---|---|
//! | create a vault | [`Vault::init`] |
//! | open it | [`Vault::open`] with an [`Unlock`] |
//! | tenants | [`Vault::create_tenant`], [`Vault::tenants`] |
//! | write | [`Vault::add`], [`Vault::import`], [`Vault::delete`] |
//! | read (always for a purpose) | [`Vault::find`], [`Vault::find_last4`], [`Vault::get`], [`Vault::export`] |
//! | suppression lists | [`Vault::suppress_import`], [`Vault::suppress_lists`], [`Vault::suppress_drop`], [`Vault::suppression_stats`] |
//!
//! On disk a vault directory holds `keyring` (key slots and wrapped tenant seeds,
//! written atomically, never inside the store) and `store/` (sled).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bincode::{Decode, Encode};
use phonevault_keys::{
    KdfParams, KeyError, KeyFileKey, KeyPurpose, Keyring, MacKey, Passphrase, RootKey, TenantKeys,
    VaultId,
};

mod audit;
mod backup;
mod error;
mod import;
mod inbound;
mod integrity;
pub(crate) mod journal;
mod keyring_file;
mod keys;
mod layout;
mod lifecycle;
mod reads;
mod receipts;
mod reindex;
mod rows;
mod subject;
mod suppress;
mod tokens;
mod versions;

pub use audit::{cli_actor, AuditStats, AuditSync, ChainStatus};
pub use backup::{BackupReport, RestoreOptions, RestoreReport};
pub use error::VaultError;
pub use inbound::{InboundRequest, SmsAnswer, SmsChange, SmsSettings};
pub use integrity::{IntegrityReport, Problem};
pub use journal::JournalError;
pub use keyring_file::write_atomic;
use keyring_file::{check_private, read_keyring, FileStamp};
pub use keys::{KeyringImportReport, RetireReport, RewrapReport, ShredReport, SlotInfo};
use layout::{
    exact_index_key, expiry_key, id_after, last4_of, last4_prefix, record_key, INDEX_EXACT,
    INDEX_LAST4,
};
pub use lifecycle::{Changed, CompactReport, PurgeReport, SweepCursor, Target};
pub use receipts::{ReceiptController, ReceiptEntry, MAX_RECEIPTS_PER_RECORD};
pub use reindex::ReindexReport;
pub use rows::{import_column, import_reader, CsvRows, ImportRow};
pub use subject::{ConsentEntry, OptOutEntry, ReceiptStatus, Stale, SubjectReport};
pub use suppress::{
    list_digest, ListCount, ListInfo, SuppressOptions, SuppressReport, ENTRY_LABEL, SUPPRESS_CHUNK,
};
pub use tokens::{parse_ttl, Role, TokenInfo, TokenSecret, TokenSpec, TOKEN_PREFIX};

use crate::phone::{self, PhoneError, E164};
use crate::record::{self, RecordBody, RecordId};
use crate::store::{Batch, Store, StoreError, StoreLocation, Tree};

/// File name of the keyring inside the vault directory.
pub const KEYRING_FILE: &str = "keyring";
/// Directory of the sled store inside the vault directory.
pub const STORE_DIR: &str = "store";
/// Version of the vault layout.
pub const VAULT_FORMAT: u8 = 1;
/// Version byte of MACed rows (tenants, meta).
const ROW_VERSION: u8 = 1;
const ROW_TAG_LEN: usize = 32;
const MAX_ROW_LEN: usize = 64 * 1024;
/// The largest reservation of encryptions made in the keyring's counter at a time (see
/// `reserve_encryptions`): reservations start at what one call needs and double up to it.
pub const ENCRYPTION_RESERVATION: u64 = 1 << 16;
/// Records per atomic commit during an import; each chunk reports its rejected rows
/// (invalid, then suppressed) when it is written.
pub const IMPORT_CHUNK: usize = 1000;
/// How long a cached tenant context (settings and keys) is used before its row is
/// re-read. Other servers sharing the store see a change of tenant settings within
/// this bound; a change of the keyring file they share is seen at the next call (its
/// identity is checked every time); records, tokens, consents, opt-outs and erasures
/// are never cached.
pub const TENANT_CACHE_TTL: Duration = Duration::from_secs(2);
/// Attempts of a read-modify-write that lost a race with another server.
const CONFLICT_ATTEMPTS: u32 = 8;

/// How to unlock the root key.
pub enum Unlock {
    /// A passphrase slot.
    Passphrase(Passphrase),
    /// A key-file slot.
    KeyFile(KeyFileKey),
    /// A PKCS#11 slot whose token and key labels are the configuration's.
    Pkcs11(crate::hsm::Pkcs11Config),
}

impl std::fmt::Debug for Unlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unlock").finish_non_exhaustive()
    }
}

/// Settings of a tenant, stored MACed in the `tenants` tree.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct TenantRow {
    /// Internal numeric id, the prefix of its keys in every tree.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Declared purposes.
    pub purposes: Vec<String>,
    /// Bits of the last-4 partial index, when the tenant has one.
    pub last4_bits: Option<u8>,
    /// Expected row count the last-4 length was planned for.
    pub expected_rows: Option<u64>,
    /// Retention in days, counted from the latest consent or verification.
    pub retention_days: Option<u32>,
    /// libphonenumber metadata version the indexes were computed with.
    pub metadata_version: String,
    /// Older index-key versions that may still have index entries (after an
    /// index-key rotation, until `key rewrap` has rebuilt every entry).
    pub stale_index_versions: Vec<u32>,
    /// Unix seconds of creation.
    pub created_at: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
struct MetaRow {
    format: u8,
    vault_id: [u8; 16],
    next_tenant_id: u32,
    created_at: u64,
}

impl MetaRow {
    /// The batch that writes the meta row of a new vault.
    fn first_batch(row_mac: &MacKey, vault_id: &VaultId) -> Batch {
        let meta = MetaRow {
            format: VAULT_FORMAT,
            vault_id: vault_id.0,
            next_tenant_id: 1,
            created_at: now(),
        };
        let mut b = Batch::default();
        b.put(
            Tree::Meta,
            b"vault".to_vec(),
            encode_row(row_mac, "meta", b"vault", &meta),
        );
        b
    }
}

pub(crate) struct TenantCtx {
    row: TenantRow,
    keys: BTreeMap<u32, TenantKeys>,
    current_data: u32,
    current_index: u32,
    /// Versions below this were destroyed by `key retire`.
    destroyed_below: u32,
    /// When the row and keys were read (see [`TENANT_CACHE_TTL`]).
    loaded: Instant,
    /// A sealed record under no id of the tenant, opened by a read that found
    /// nothing, so that "absent" costs the fetch and decryption of "refused".
    decoy: std::sync::OnceLock<Vec<u8>>,
    /// The tenant's suppression lists, once a read loaded them (see
    /// `Vault::read_lists`).
    lists: std::sync::OnceLock<Vec<suppress::ActiveList>>,
}

/// The id of [`TenantCtx::decoy`]: all ones, never generated (ids start with the
/// creation time in milliseconds).
const DECOY_ID: RecordId = RecordId([0xff; 16]);

impl TenantCtx {
    /// The index key versions a lookup tries, oldest first: a concurrent rewrap moves
    /// entries from old to new only, so looking at the old place before the new one
    /// cannot miss an entry in flight (new-then-old could, between the two reads).
    fn index_versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.row
            .stale_index_versions
            .iter()
            .copied()
            .chain(std::iter::once(self.current_index))
    }

    fn data_key(&self, version: u32) -> Result<&TenantKeys, VaultError> {
        self.keys
            .get(&version)
            .ok_or(VaultError::Key(if version < self.destroyed_below {
                KeyError::VersionRetired { version }
            } else {
                KeyError::UnknownKeyVersion
            }))
    }

    fn current(&self) -> Result<&TenantKeys, VaultError> {
        self.data_key(self.current_data)
    }

    fn index(&self) -> Result<&TenantKeys, VaultError> {
        self.data_key(self.current_index)
    }

    fn check_purpose(&self, purpose: &str) -> Result<(), VaultError> {
        self.check_purpose_at(purpose, 0)
    }

    /// Checks `purpose`, the `position`th (0-based) of those given.
    fn check_purpose_at(&self, purpose: &str, position: usize) -> Result<(), VaultError> {
        match crate::policy::Purpose::declared(&self.row.purposes, purpose, position) {
            Ok(_) => Ok(()),
            Err(_) => Err(VaultError::UnknownPurpose {
                position: position + 1,
                tenant: self.row.name.clone(),
                declared: self.row.purposes.join(", "),
            }),
        }
    }
}

/// A record returned by a read. Holds the plaintext number: reveal it only with the
/// reveal right; [`Found::masked`] is what to show otherwise.
pub struct Found {
    /// Record id.
    pub id: RecordId,
    /// The number.
    pub e164: E164,
    /// The masked form (`+44 ••• ••• 0958`).
    pub masked: String,
    /// Country calling code.
    pub country_code: u16,
    /// Created, updated and verified times (unix seconds).
    pub created_at: u64,
    /// Last change.
    pub updated_at: u64,
    /// Last verification.
    pub verified_at: Option<u64>,
    /// Purposes with a live consent.
    pub purposes: Vec<String>,
}

impl std::fmt::Debug for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Found")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What an add did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// A new record was created.
    Created(RecordId),
    /// The number existed; new consents were merged into it.
    Merged(RecordId),
    /// The number existed with these consents already; nothing changed.
    Unchanged(RecordId),
}

impl AddOutcome {
    /// The record id.
    pub fn id(&self) -> RecordId {
        match self {
            AddOutcome::Created(id) | AddOutcome::Merged(id) | AddOutcome::Unchanged(id) => *id,
        }
    }
}

/// Counts of an import.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
// A count a server older than the field does not send is 0.
#[serde(default)]
pub struct ImportSummary {
    /// Rows read (excluding the header).
    pub rows: u64,
    /// New records.
    pub created: u64,
    /// Existing records that gained a consent.
    pub merged: u64,
    /// Existing records left as they were.
    pub unchanged: u64,
    /// Rows rejected (see the rejects file).
    pub rejected: u64,
    /// Numbers skipped because they opted out of everything (listed in the rejects
    /// file with code `suppressed`).
    pub suppressed: u64,
    /// Rows valid under the process's phone metadata that the release the tenant's
    /// indexes were made with rejected (0 when the release has not changed; see
    /// `phonevault reindex`).
    pub newly_valid: u64,
    /// Accepted rows whose number is on a suppression list for one of the import's
    /// purposes: stored, but refused for those purposes while listed.
    pub listed: u64,
}

impl ImportSummary {
    pub(crate) fn add(&mut self, o: &ImportSummary) {
        self.rows += o.rows;
        self.created += o.created;
        self.merged += o.merged;
        self.unchanged += o.unchanged;
        self.rejected += o.rejected;
        self.suppressed += o.suppressed;
        self.newly_valid += o.newly_valid;
        self.listed += o.listed;
    }
}

/// Options of an import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Tenant.
    pub tenant: String,
    /// Purposes every imported number consents to.
    pub purposes: Vec<String>,
    /// Source recorded with the consents.
    pub source: String,
    /// Region hint for national numbers.
    pub region: Option<String>,
    /// CSV column holding the number.
    pub column: String,
}

/// A rejected import row: 1-based line number and the reason (never the number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// Where the row came from: a file's line (the header is line 1), or a batch
    /// item's index ([`ImportRow`]).
    pub line: u64,
    /// Stable reason code.
    pub code: &'static str,
    /// Human-readable reason.
    pub reason: String,
}

impl Reject {
    /// The reject of a row the CSV reader could not read (`line`: where it started).
    pub fn malformed(e: &csv::Error, line: u64) -> Reject {
        Reject {
            line: e.position().map(|p| p.line()).unwrap_or(line),
            code: "csv",
            reason: "malformed CSV row".into(),
        }
    }
}

/// Checks the region hint of an import (the same for every row).
///
/// # Errors
/// [`PhoneError::InvalidRegionHint`] for a region the metadata does not know.
pub fn check_region_hint(region: Option<&str>) -> Result<(), VaultError> {
    if let Some(r) = region {
        phone::normalize("+1 202 555 0100", Some(r)).map_err(|_| PhoneError::InvalidRegionHint)?;
    }
    Ok(())
}

/// Current unix time in seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Checks a tenant name, purpose or source: 1-64 chars of `[a-z0-9._:-]`.
pub fn check_name(what: &'static str, name: &str) -> Result<(), VaultError> {
    crate::policy::values::check_name(what, name).map_err(|_| VaultError::InvalidName { what })
}

/// Checks a consent source: 1-128 printable ASCII characters, no quote or backslash.
pub(crate) fn check_source(source: &str) -> Result<(), VaultError> {
    let ok = !source.is_empty()
        && source.len() <= 128
        && source
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if ok {
        Ok(())
    } else {
        Err(VaultError::InvalidName { what: "source" })
    }
}

fn check_meta(store: &dyn Store, row_mac: &MacKey, ring: &Keyring) -> Result<MetaRow, VaultError> {
    let bytes = store
        .get(Tree::Meta, b"vault")?
        .ok_or(VaultError::EmptyStore)?;
    let meta: MetaRow =
        decode_row(row_mac, "meta", b"vault", &bytes).map_err(|_| VaultError::KeyringMismatch)?;
    if meta.vault_id != ring.vault_id.0 || meta.format != VAULT_FORMAT {
        return Err(VaultError::KeyringMismatch);
    }
    Ok(meta)
}

/// Options of [`Vault::open`].
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Page cache of the store in bytes (sled).
    pub cache_bytes: u64,
    /// Where the records live: sled in the vault directory, or a database.
    pub store: StoreLocation,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            cache_bytes: 64 << 20,
            store: StoreLocation::Sled,
        }
    }
}

/// An open, unlocked vault: a cheap handle (clones share one vault) that acts for
/// one actor, recorded with every operation in the audit log.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<VaultInner>,
    who: Who,
}

/// Who acts through a [`Vault`] handle.
#[derive(Clone, Debug)]
struct Who {
    actor: crate::audit::Actor,
    /// Whether full numbers are shown to the actor (recorded as reveals).
    reveal: bool,
    /// False only in benchmarks measuring the audit log's cost.
    audit: bool,
    /// Set on a [`Vault::deferring`] handle: the link its reads need durable.
    defer: Option<Arc<std::sync::atomic::AtomicU64>>,
}

/// The state shared by every handle of an open vault (reached through `Deref`; its
/// fields are private to the crate).
#[doc(hidden)]
pub struct VaultInner {
    dir: PathBuf,
    store: Arc<dyn Store>,
    keyring: Mutex<Keyring>,
    /// The keyring file's identity when it was last read or written.
    keyring_stamp: Mutex<Option<FileStamp>>,
    root: RootKey,
    row_mac: MacKey,
    tenants: RwLock<HashMap<String, Arc<TenantCtx>>>,
    /// Serializes read-modify-write sequences (add, merge, delete, import chunks).
    write_lock: Mutex<()>,
    /// Serializes suppression-list imports and drops (see `suppress`).
    suppress_lock: Mutex<()>,
    /// Verified tokens, on a store only this process opens.
    token_cache: tokens::TokenCache,
    /// Unix seconds; the system clock unless a test or simulation sets another.
    clock: RwLock<Clock>,
    audit: audit::AuditLog,
    /// Encryptions reserved in the keyring's counter and not used yet, per tenant and
    /// data-key version. Kept here, not in the tenant cache, so a cache refresh (every
    /// [`TENANT_CACHE_TTL`], or after another process changed the keyring) loses none.
    reservations: Mutex<HashMap<(String, u32), Reservation>>,
}

/// Encryptions a process reserved under one data-key version.
#[derive(Clone, Copy, Debug, Default)]
struct Reservation {
    /// Reserved and not used yet.
    left: u64,
    /// The size of the next reservation: doubles from what a call needs up to
    /// [`ENCRYPTION_RESERVATION`], so a process that encrypts little reserves little.
    next: u64,
}

impl Drop for VaultInner {
    fn drop(&mut self) {
        self.audit.close(self.store.as_ref());
        self.release_reservations();
    }
}

impl Vault {
    /// What dropping the last handle does, now: the audit log made durable and its
    /// journal folded into the chain, unused encryption reservations given back. The
    /// vault stays usable (a later write reserves again). For a process about to exit
    /// while another thread (the audit flusher, a request finishing) may hold the last
    /// handle, whose drop would then never run.
    pub fn close(&self) {
        self.audit.close(self.store.as_ref());
        self.release_reservations();
    }
}

impl VaultInner {
    /// Gives the unused part of every reservation back to the keyring's counters
    /// (when the vault is closed), so that the counters hold what was really used.
    /// Best effort: if the keyring cannot be written, the counters stay ahead, which
    /// is the safe direction.
    fn release_reservations(&self) {
        let all = std::mem::take(
            &mut *self
                .reservations
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if all.values().all(|r| r.left == 0) {
            return;
        }
        let Ok(mut ring) = self.keyring_for_update() else {
            return;
        };
        let mut changed = false;
        for ((tenant, version), res) in all {
            if res.left > 0 && ring.release_encryptions(&tenant, version, res.left) {
                changed = true;
            }
        }
        if changed {
            let _ = self.save_keyring(&mut ring);
        }
    }
}

impl std::ops::Deref for Vault {
    type Target = VaultInner;
    fn deref(&self) -> &VaultInner {
        &self.inner
    }
}

/// A source of unix seconds.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.dir)
            .field("actor", &self.who.actor)
            .finish_non_exhaustive()
    }
}

fn encode_row<T: Encode>(mac: &MacKey, table: &'static str, key: &[u8], row: &T) -> Vec<u8> {
    let mut out = vec![ROW_VERSION];
    let cfg = bincode::config::standard();
    if bincode::encode_into_std_write(row, &mut out, cfg).is_err() {
        out.truncate(1);
    }
    let tag = mac.tag(&[table.as_bytes(), key, &out]);
    out.extend_from_slice(&tag);
    out
}

fn decode_row<T: Decode<()>>(
    mac: &MacKey,
    table: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, VaultError> {
    if bytes.len() < 1 + ROW_TAG_LEN || bytes.len() > MAX_ROW_LEN || bytes[0] != ROW_VERSION {
        return Err(VaultError::RowTampered(table));
    }
    let (body, tag) = bytes.split_at(bytes.len() - ROW_TAG_LEN);
    mac.verify(&[table.as_bytes(), key, body], tag)
        .map_err(|_| VaultError::RowTampered(table))?;
    let cfg = bincode::config::standard().with_limit::<MAX_ROW_LEN>();
    let (row, used) =
        bincode::decode_from_slice(&body[1..], cfg).map_err(|_| VaultError::RowTampered(table))?;
    if used != body.len() - 1 {
        return Err(VaultError::RowTampered(table));
    }
    Ok(row)
}

/// The index entries of one record, computed from its number.
#[derive(Clone)]
struct IndexEntries {
    exact: Vec<u8>,
    last4: Option<Vec<u8>>,
}

fn index_entries(
    ctx: &TenantCtx,
    keys: &TenantKeys,
    e164: &str,
    country_code: u16,
    id: &RecordId,
) -> IndexEntries {
    let digest = record::exact_digest(&keys.index, e164);
    let exact = exact_index_key(ctx.row.id, keys.version, &digest);
    let last4 = ctx.row.last4_bits.map(|bits| {
        let d = record::last4_digest(&keys.index, country_code, last4_of(e164), bits);
        let mut k = last4_prefix(ctx.row.id, keys.version, &d);
        k.extend_from_slice(&id.0);
        k
    });
    IndexEntries { exact, last4 }
}

fn new_body(n: &phone::Normalized, purposes: &[String], source: &str, now: u64) -> RecordBody {
    let mut body = RecordBody {
        e164: n.e164.expose_secret().to_owned(),
        country_code: n.country_code,
        region: n.region.as_ref().map(|r| r.to_string()).unwrap_or_default(),
        kind: n.kind as u8,
        grants: Vec::new(),
        opt_outs: Vec::new(),
        created_at: now,
        updated_at: now,
        verified_at: None,
    };
    crate::policy::consent::initial(&mut body, purposes, source, now);
    body
}

/// One record's change, staged into a [`Batch`] by [`Vault::stage`].
enum Change<'a> {
    /// A new record, sealed by the caller.
    Create {
        id: RecordId,
        body: &'a RecordBody,
        sealed: Vec<u8>,
        idx: IndexEntries,
    },
    /// A changed body; `stored` is the bytes it was read from.
    Update {
        id: RecordId,
        stored: Vec<u8>,
        old: &'a RecordBody,
        new: &'a RecordBody,
    },
    /// Removal of the record, its index entries and its expiry entry.
    Delete {
        id: RecordId,
        stored: Vec<u8>,
        old: &'a RecordBody,
    },
}

impl Vault {
    /// Stages a record change with its index and expiry entries, guarded so that the
    /// batch applies only if nothing changed since the record was read. Returns the
    /// number of encryptions it made.
    fn stage(
        &self,
        ctx: &TenantCtx,
        batch: &mut Batch,
        change: Change<'_>,
    ) -> Result<u64, VaultError> {
        let tid = ctx.row.id;
        match change {
            Change::Create {
                id,
                body,
                sealed,
                idx,
            } => {
                batch.guard(Tree::Index, idx.exact.clone(), None);
                batch.put(Tree::Records, record_key(tid, &id), sealed);
                batch.put(Tree::Index, idx.exact, id.0.to_vec());
                if let Some(l4) = idx.last4 {
                    batch.put(Tree::Index, l4, Vec::new());
                }
                batch.put(
                    Tree::Expiry,
                    expiry_key(tid, body.last_activity(), &id),
                    Vec::new(),
                );
                Ok(0)
            }
            Change::Update {
                id,
                stored,
                old,
                new,
            } => {
                let header = record::parse_header(&stored)?;
                let keys = ctx.current()?;
                let sealed = record::seal(
                    &keys.data,
                    keys.version,
                    header.index_key_version,
                    tid,
                    &id,
                    new,
                )?;
                let rk = record_key(tid, &id);
                batch.guard(Tree::Records, rk.clone(), Some(stored));
                batch.put(Tree::Records, rk, sealed);
                if old.last_activity() != new.last_activity() {
                    batch.delete(Tree::Expiry, expiry_key(tid, old.last_activity(), &id));
                    batch.put(
                        Tree::Expiry,
                        expiry_key(tid, new.last_activity(), &id),
                        Vec::new(),
                    );
                }
                Ok(1)
            }
            Change::Delete { id, stored, old } => {
                let header = record::parse_header(&stored)?;
                let keys = ctx.data_key(header.index_key_version)?;
                let idx = index_entries(ctx, keys, &old.e164, old.country_code, &id);
                let rk = record_key(tid, &id);
                batch.guard(Tree::Records, rk.clone(), Some(stored));
                batch.delete(Tree::Records, rk);
                batch.delete(Tree::Index, idx.exact);
                if let Some(l4) = idx.last4 {
                    batch.delete(Tree::Index, l4);
                }
                batch.delete(Tree::Expiry, expiry_key(tid, old.last_activity(), &id));
                // The list of its consent receipts goes with it.
                batch.delete(Tree::Meta, receipts::list_key(tid, &id));
                Ok(0)
            }
        }
    }

    /// Creates a vault in `dir` with one passphrase slot.
    ///
    /// # Errors
    /// [`VaultError::AlreadyExists`] when `dir` already holds a vault or a store.
    pub fn init(dir: &Path, pass: &Passphrase, params: KdfParams) -> Result<(), VaultError> {
        Self::init_on(dir, &StoreLocation::Sled, pass, params)
    }

    /// Creates a vault with one passphrase slot whose keyring is in `dir` and whose
    /// records live at `store` (sled in `dir`, or a database).
    ///
    /// # Errors
    /// [`VaultError::AlreadyExists`] when `dir` holds a keyring or the store a vault.
    pub fn init_on(
        dir: &Path,
        store: &StoreLocation,
        pass: &Passphrase,
        params: KdfParams,
    ) -> Result<(), VaultError> {
        Self::init_with(dir, store, |ring, rk| {
            ring.add_passphrase_slot(rk, pass, params).map(|_| ())
        })
    }

    /// Creates a vault in `dir` with a key-file slot.
    pub fn init_with_key_file(dir: &Path, kf: &KeyFileKey) -> Result<(), VaultError> {
        Self::init_with(dir, &StoreLocation::Sled, |ring, rk| {
            ring.add_key_file_slot(rk, kf).map(|_| ())
        })
    }

    fn init_with(
        dir: &Path,
        location: &StoreLocation,
        add_slot: impl FnOnce(&mut Keyring, &RootKey) -> Result<(), KeyError>,
    ) -> Result<(), VaultError> {
        if let StoreLocation::Postgres(cfg) = location {
            return Self::init_in_database(dir, cfg, add_slot);
        }
        let ring_path = dir.join(KEYRING_FILE);
        if ring_path.exists() || dir.join(STORE_DIR).exists() {
            return Err(VaultError::AlreadyExists(dir.to_owned()));
        }
        let (ring, b) = Self::fresh_vault(dir, add_slot)?;
        // Store first: if the keyring cannot be written, a retry finds no keyring and
        // an empty store, and init removes it below.
        let store_dir = dir.join(STORE_DIR);
        let store = location.open(&store_dir, 8 << 20)?;
        let r = store
            .commit(&b)
            .and_then(|()| store.flush())
            .map_err(VaultError::from)
            .and_then(|()| write_atomic(&ring_path, &ring.encode()));
        if let Err(e) = r {
            drop(store);
            let _ = std::fs::remove_dir_all(&store_dir);
            return Err(e);
        }
        Ok(())
    }

    /// Creates the private vault directory and a new keyring with its first slot;
    /// returns the keyring and the store rows of an empty vault (meta row, audit
    /// genesis).
    fn fresh_vault(
        dir: &Path,
        add_slot: impl FnOnce(&mut Keyring, &RootKey) -> Result<(), KeyError>,
    ) -> Result<(Keyring, Batch), VaultError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| VaultError::io("creating", dir, e))?;
        check_private(dir)?;
        let vault_id = VaultId::generate();
        let rk = RootKey::generate();
        let mut ring = Keyring::new(vault_id, &rk)?;
        add_slot(&mut ring, &rk)?;
        ring.seal(&rk);
        let vault_keys = ring.vault_keys(&rk)?;
        let mut b = MetaRow::first_batch(&vault_keys.row_mac, &vault_id);
        audit::AuditLog::genesis(&vault_keys.state, &vault_id, &mut b)?;
        Ok((ring, b))
    }

    /// `init` with the records in a database: the keyring file in `dir`, the meta row
    /// (written only if the database holds no vault yet) in the database.
    fn init_in_database(
        dir: &Path,
        cfg: &crate::store::PgConfig,
        add_slot: impl FnOnce(&mut Keyring, &RootKey) -> Result<(), KeyError>,
    ) -> Result<(), VaultError> {
        let ring_path = dir.join(KEYRING_FILE);
        if ring_path.exists() {
            return Err(VaultError::AlreadyExists(dir.to_owned()));
        }
        let store = StoreLocation::Postgres(cfg.clone()).open(dir, 0)?;
        if store.get(Tree::Meta, b"vault")?.is_some() {
            return Err(VaultError::InvalidArgument(format!(
                "the database already holds a vault (schema `{}`): copy its keyring file to {} instead of running init, or choose another --pg-schema",
                cfg.schema,
                dir.display()
            )));
        }
        let (ring, mut b) = Self::fresh_vault(dir, add_slot)?;
        // Two concurrent inits: the guard lets one win.
        b.guard(Tree::Meta, b"vault".to_vec(), None);
        // Keyring first: a failed meta write leaves a keyring that `init` removes.
        write_atomic(&ring_path, &ring.encode())?;
        if let Err(e) = store.commit(&b) {
            let _ = std::fs::remove_file(&ring_path);
            return Err(match e {
                StoreError::Conflict => VaultError::InvalidArgument(
                    "another init wrote a vault into this database at the same time; copy its keyring file instead".into(),
                ),
                other => other.into(),
            });
        }
        Ok(())
    }

    /// Opens and unlocks the vault in `dir`.
    ///
    /// # Errors
    /// [`VaultError::NoVault`], [`VaultError::Unlock`] (wrong passphrase or key
    /// file), [`VaultError::InsecurePermissions`], [`StoreError::Locked`] when another
    /// process has it open.
    pub fn open(dir: &Path, unlock: &Unlock, opts: OpenOptions) -> Result<Vault, VaultError> {
        let ring = read_keyring(dir)?;
        let root = keys::unlock_ring(&ring, unlock)?;
        if matches!(opts.store, StoreLocation::Sled) {
            lifecycle::recover_compaction(dir)?;
        }
        let store = opts.store.open(&dir.join(STORE_DIR), opts.cache_bytes)?;
        Self::with_store(dir, store, ring, root)
    }

    /// Opens a vault over any [`Store`] (tests use [`crate::store::MemoryStore`]).
    pub fn with_store(
        dir: &Path,
        store: Arc<dyn Store>,
        ring: Keyring,
        root: RootKey,
    ) -> Result<Vault, VaultError> {
        let vault_keys = ring.vault_keys(&root)?;
        let row_mac = vault_keys.row_mac;
        let stamp = if dir.as_os_str().is_empty() {
            None
        } else {
            FileStamp::of(&dir.join(KEYRING_FILE))
        };
        check_meta(store.as_ref(), &row_mac, &ring)?;
        let audit = audit::AuditLog::load(
            store.as_ref(),
            vault_keys.state,
            vault_keys.audit_read,
            &ring.vault_id,
            dir,
        )?;
        // Entries a killed server wrote to its journal join the chain before anything
        // else happens.
        audit.recover(store.as_ref())?;
        let inner = VaultInner {
            dir: dir.to_owned(),
            store,
            keyring: Mutex::new(ring),
            keyring_stamp: Mutex::new(stamp),
            root,
            row_mac,
            tenants: RwLock::new(HashMap::new()),
            reservations: Mutex::new(HashMap::new()),
            write_lock: Mutex::new(()),
            suppress_lock: Mutex::new(()),
            token_cache: tokens::TokenCache::default(),
            clock: RwLock::new(Arc::new(now)),
            audit,
        };
        Ok(Vault {
            inner: Arc::new(inner),
            who: Who {
                actor: crate::audit::Actor::System,
                reveal: false,
                audit: true,
                defer: None,
            },
        })
    }

    /// Creates an in-memory vault (keyring kept in memory) for tests and benchmarks.
    pub fn in_memory(store: Arc<dyn Store>) -> Result<Vault, VaultError> {
        let vault_id = VaultId::generate();
        let root = RootKey::generate();
        let mut ring = Keyring::new(vault_id, &root)?;
        ring.add_key_file_slot(&root, &KeyFileKey::generate())?;
        ring.seal(&root);
        let vault_keys = ring.vault_keys(&root)?;
        let mut b = MetaRow::first_batch(&vault_keys.row_mac, &vault_id);
        audit::AuditLog::genesis(&vault_keys.state, &vault_id, &mut b)?;
        store.commit(&b)?;
        Self::with_store(Path::new(""), store, ring, root)
    }

    /// This handle, acting for `actor` (recorded with every operation it makes).
    pub fn acting_as(&self, actor: crate::audit::Actor) -> Vault {
        Vault {
            inner: self.inner.clone(),
            who: Who {
                actor,
                reveal: self.who.reveal,
                audit: self.who.audit,
                defer: self.who.defer.clone(),
            },
        }
    }

    /// This handle, recording its reads as reveals (full numbers shown) or not.
    pub fn revealing(mut self, reveal: bool) -> Vault {
        self.who.reveal = reveal;
        self
    }

    /// Replaces the clock (unix seconds) the vault stamps and judges times with: for
    /// tests and simulations of retention, never needed in production.
    pub fn set_clock(&mut self, clock: Clock) {
        *self.clock.write().unwrap_or_else(PoisonError::into_inner) = clock;
    }

    /// The current time by the vault's clock.
    pub fn now(&self) -> u64 {
        let clock = self
            .clock
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        clock()
    }

    /// The vault directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store (for maintenance commands and tests).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Runs a read-modify-write again when it lost a race with another server
    /// ([`StoreError::Conflict`]): it re-reads what changed and reapplies itself.
    fn retry_conflicts<T>(
        &self,
        mut f: impl FnMut() -> Result<T, VaultError>,
    ) -> Result<T, VaultError> {
        let mut attempt = 1;
        loop {
            match f() {
                Err(VaultError::Store(StoreError::Conflict)) if attempt < CONFLICT_ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(u64::from(attempt)));
                }
                other => return other,
            }
        }
    }

    /// Adds a key-file slot unlocking this vault's root key.
    /// Adds a PKCS#11 slot: a fresh secret sealed by the token's key (which must be
    /// non-extractable), wrapping the root key. Returns the slot id.
    ///
    /// # Errors
    ///
    /// [`VaultError::Hsm`] when the token, PIN or key is refused; keyring errors.
    pub fn add_pkcs11_slot(&self, hsm: &crate::hsm::Pkcs11Config) -> Result<u32, VaultError> {
        self.audited("keyslot-add", None, None, |_| {
            let mut ring = self.keyring_for_update()?;
            let id = ring.next_slot_id()?;
            let secret = phonevault_keys::HsmSecret::generate();
            let aad = phonevault_keys::pkcs11_seal_aad(&ring.vault_id, id);
            let binding = hsm.seal(&aad, &secret)?;
            // The token must give the secret back before the slot is trusted with the root key.
            if hsm.unseal(&aad, &binding)? != secret {
                return Err(crate::hsm::HsmError::Unseal {
                    token: hsm.token.clone(),
                    key: hsm.key.clone(),
                }
                .into());
            }
            let id = ring.add_pkcs11_slot(&self.root, id, binding, &secret)?;
            self.save_keyring(&mut ring)?;
            Ok(id)
        })
    }

    pub fn add_key_file_slot(&self, kf: &KeyFileKey) -> Result<u32, VaultError> {
        self.audited("keyslot-add", None, None, |_| {
            let mut ring = self.keyring_for_update()?;
            let id = ring.add_key_file_slot(&self.root, kf)?;
            self.save_keyring(&mut ring)?;
            Ok(id)
        })
    }

    /// Drops the cached context of a tenant (after its row or keys changed).
    fn forget_tenant(&self, name: &str) {
        self.tenants
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    fn write_guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    // -----------------------------------------------------------------------------
    // tenants

    /// Creates a tenant with its declared purposes and, optionally, a last-4 partial
    /// index planned for `expected_rows` rows. Returns the row (with the planned bits).
    pub fn create_tenant(
        &self,
        name: &str,
        purposes: &[String],
        last4_expected_rows: Option<u64>,
    ) -> Result<TenantRow, VaultError> {
        self.audited("tenant-create", Some(name), None, |ev| {
            self.create_tenant_in(name, purposes, last4_expected_rows, ev)
        })
    }

    fn create_tenant_in(
        &self,
        name: &str,
        purposes: &[String],
        last4_expected_rows: Option<u64>,
        ev: &mut audit::Event,
    ) -> Result<TenantRow, VaultError> {
        check_name("tenant name", name)?;
        if purposes.is_empty() {
            return Err(VaultError::InvalidArgument(
                "a tenant needs at least one purpose (--purposes otp,support,...)".into(),
            ));
        }
        for p in purposes {
            check_name("purpose", p)?;
        }
        let _w = self.write_guard();
        if self.store.get(Tree::Tenants, name.as_bytes())?.is_some() {
            return Err(VaultError::TenantExists(name.to_owned()));
        }
        let meta_bytes = self
            .store
            .get(Tree::Meta, b"vault")?
            .ok_or(VaultError::RowTampered("meta"))?;
        let mut meta: MetaRow = decode_row(&self.row_mac, "meta", b"vault", &meta_bytes)?;
        let mut purposes_sorted = purposes.to_vec();
        purposes_sorted.sort();
        purposes_sorted.dedup();
        let row = TenantRow {
            id: meta.next_tenant_id,
            name: name.to_owned(),
            purposes: purposes_sorted,
            last4_bits: last4_expected_rows.map(|r| record::plan_last4_bits(r).0),
            expected_rows: last4_expected_rows,
            retention_days: None,
            metadata_version: phone::metadata_version().to_owned(),
            stale_index_versions: Vec::new(),
            created_at: now(),
        };
        meta.next_tenant_id = meta
            .next_tenant_id
            .checked_add(1)
            .ok_or_else(|| VaultError::InvalidArgument("too many tenants".into()))?;
        // Keys first: a crash between the two leaves an unused seed, never a tenant
        // without keys.
        {
            let mut ring = self.keyring_for_update()?;
            match ring.tenants.get(name) {
                None => {
                    ring.add_tenant(&self.root, name, now())?;
                    self.save_keyring(&mut ring)?;
                }
                // Keys of a shredded tenant are gone for good; its name stays taken
                // so nothing is ever encrypted under a seed the holders think is dead.
                Some(tk) if tk.is_shredded() => {
                    return Err(VaultError::TenantExists(name.to_owned()));
                }
                // Keys left by a crash between keyring and store writes: reuse them.
                Some(_) => {}
            }
        }
        let mut b = Batch::default();
        // Version 1 agreed through the store with the tenant row (see `versions`).
        let first = self
            .keyring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tenant_keys(&self.root, name, 1)?;
        self.stage_version_claim(&mut b, name, &first);
        b.guard(Tree::Meta, b"vault".to_vec(), Some(meta_bytes));
        b.guard(Tree::Tenants, name.as_bytes().to_vec(), None);
        b.put(
            Tree::Meta,
            b"vault".to_vec(),
            encode_row(&self.row_mac, "meta", b"vault", &meta),
        );
        b.put(
            Tree::Tenants,
            name.as_bytes().to_vec(),
            encode_row(&self.row_mac, "tenants", name.as_bytes(), &row),
        );
        self.commit_audited(&mut b, ev)?;
        Ok(row)
    }

    /// Every tenant, by name.
    pub fn tenants(&self) -> Result<Vec<TenantRow>, VaultError> {
        self.store
            .range(Tree::Tenants, b"", None, usize::MAX)?
            .into_iter()
            .map(|(k, v)| decode_row(&self.row_mac, "tenants", &k, &v))
            .collect()
    }

    pub(crate) fn tenant(&self, name: &str) -> Result<Arc<TenantCtx>, VaultError> {
        // A key change by another process sharing the keyring file (a rotation moves
        // the current index key, which decides where a number is looked up and made
        // unique) is picked up at once.
        self.refresh_keyring()?;
        if let Some(ctx) = self
            .tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            if ctx.loaded.elapsed() < TENANT_CACHE_TTL {
                return Ok(ctx.clone());
            }
        }
        // Expired or absent: another server may have changed the row.
        let bytes = self
            .store
            .get(Tree::Tenants, name.as_bytes())?
            .ok_or(VaultError::UnknownTenant(()))?;
        let row: TenantRow = decode_row(&self.row_mac, "tenants", name.as_bytes(), &bytes)?;
        let ring = self.keyring.lock().unwrap_or_else(PoisonError::into_inner);
        let tk = ring
            .tenants
            .get(name)
            .ok_or(VaultError::UnknownTenant(()))?;
        let mut keys = BTreeMap::new();
        // Every version still held decrypts: "retired" only means no longer current.
        for s in tk.seeds.iter() {
            keys.insert(s.version, ring.tenant_keys(&self.root, name, s.version)?);
        }
        let tk = tk.clone();
        drop(ring);
        // Used only once the store agrees on every version (see `versions`).
        self.agree_versions(name, &tk, &keys)?;
        let ctx = Arc::new(TenantCtx {
            row,
            keys,
            current_data: tk.current_data,
            current_index: tk.current_index,
            destroyed_below: tk.destroyed_below,
            loaded: Instant::now(),
            decoy: std::sync::OnceLock::new(),
            lists: std::sync::OnceLock::new(),
        });
        self.tenants
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), ctx.clone());
        Ok(ctx)
    }

    /// Counts `n` encryptions under the tenant's current data key against the GCM
    /// random-nonce bound. The keyring counter is advanced in reservations, so a crash
    /// can only overcount; crossing 2^31 rotates the data key.
    ///
    /// A reservation outlives the tenant cache (it is kept per tenant and version in
    /// the vault), starts at `n` and doubles up to [`ENCRYPTION_RESERVATION`], so the
    /// counter runs at most about twice ahead of the encryptions really made; what is
    /// left unused is given back when the vault is closed.
    fn reserve_encryptions(&self, ctx: &TenantCtx, n: u64) -> Result<(), VaultError> {
        let mut all = self
            .reservations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let res = all
            .entry((ctx.row.name.clone(), ctx.current_data))
            .or_default();
        if res.left >= n {
            res.left -= n;
            return Ok(());
        }
        let grab = n.max(res.next);
        let mut ring = self.keyring_for_update()?;
        let crossed = ring.note_encryptions(&ctx.row.name, ctx.current_data, grab)?;
        if crossed {
            // Saves the keyring, and the cached context (naming an old version) is
            // reloaded on next use.
            self.rotate_agreed(&mut ring, &ctx.row.name, KeyPurpose::Data)?;
        } else {
            self.save_keyring(&mut ring)?;
        }
        // The old remainder was counted already and stays usable.
        res.left = res.left + grab - n;
        res.next = grab.saturating_mul(2).clamp(1, ENCRYPTION_RESERVATION);
        Ok(())
    }

    // -----------------------------------------------------------------------------
    // writes

    fn check_purposes(ctx: &TenantCtx, purposes: &[String]) -> Result<(), VaultError> {
        if purposes.is_empty() {
            return Err(VaultError::NoConsent);
        }
        purposes
            .iter()
            .enumerate()
            .try_for_each(|(i, p)| ctx.check_purpose_at(p, i))
    }

    /// Adds a number with consents for `purposes`, or merges the consents into the
    /// existing record of that number. Durable when it returns.
    pub fn add(
        &self,
        tenant: &str,
        input: &str,
        region: Option<&str>,
        purposes: &[String],
        source: &str,
    ) -> Result<AddOutcome, VaultError> {
        self.audited("add", Some(tenant), None, |ev| {
            self.add_in(tenant, input, region, purposes, source, ev)
        })
    }

    fn add_in(
        &self,
        tenant: &str,
        input: &str,
        region: Option<&str>,
        purposes: &[String],
        source: &str,
        ev: &mut audit::Event,
    ) -> Result<AddOutcome, VaultError> {
        let ctx = self.tenant(tenant)?;
        Self::check_purposes(&ctx, purposes)?;
        check_source(source)?;
        let n = phone::normalize(input, region)?;
        // Another server may add or change the same number between our read and our
        // commit: the guards then fail and the add starts over from a fresh read.
        self.retry_conflicts(|| {
            // What a lost attempt touched is not the operation's.
            ev.records.clear();
            self.add_once(&ctx, &n, purposes, source, ev)
        })
    }

    fn add_once(
        &self,
        ctx: &Arc<TenantCtx>,
        n: &phone::Normalized,
        purposes: &[String],
        source: &str,
        ev: &mut audit::Event,
    ) -> Result<AddOutcome, VaultError> {
        let ctx = &**ctx;
        let _w = self.write_guard();
        let t = self.now();
        let mut batch = Batch::default();
        let outcome = match self.lookup_exact(ctx, &n.e164)? {
            Some((id, stored, old)) => {
                let mut body = old.clone();
                // An explicit add with a consent and a source is the one way to lift
                // an opt-out (imports never do).
                let changed = crate::policy::consent::explicit(&mut body, purposes, source, t);
                ev.touch(&id);
                if !changed {
                    return Ok(AddOutcome::Unchanged(id));
                }
                self.reserve_encryptions(ctx, 1)?;
                self.stage(
                    ctx,
                    &mut batch,
                    Change::Update {
                        id,
                        stored,
                        old: &old,
                        new: &body,
                    },
                )?;
                AddOutcome::Merged(id)
            }
            None => {
                self.reserve_encryptions(ctx, 1)?;
                let id = RecordId::generate(now_ms());
                ev.touch(&id);
                let body = new_body(n, purposes, source, t);
                let (sealed, idx) = self.seal_new(ctx, &id, &body)?;
                self.stage(
                    ctx,
                    &mut batch,
                    Change::Create {
                        id,
                        body: &body,
                        sealed,
                        idx,
                    },
                )?;
                AddOutcome::Created(id)
            }
        };
        self.commit_audited(&mut batch, ev)?;
        Ok(outcome)
    }

    fn seal_new(
        &self,
        ctx: &TenantCtx,
        id: &RecordId,
        body: &RecordBody,
    ) -> Result<(Vec<u8>, IndexEntries), VaultError> {
        let data = ctx.current()?;
        let index = ctx.index()?;
        let sealed = record::seal(
            &data.data,
            data.version,
            index.version,
            ctx.row.id,
            id,
            body,
        )?;
        let idx = index_entries(ctx, index, &body.e164, body.country_code, id);
        Ok((sealed, idx))
    }

    /// Deletes a record by id with its index and expiry entries, atomically and
    /// durably. Returns whether it existed.
    pub fn delete(&self, tenant: &str, id: &str) -> Result<bool, VaultError> {
        match self.erase(tenant, Target::Id(id)) {
            Ok(_) => Ok(true),
            Err(VaultError::NoSuchRecord(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod last4_tests {
    #![allow(clippy::unwrap_used)] // a panic is the failure report

    use super::*;
    use crate::store::MemoryStore;

    /// Issue 13, item 1: the last-4 scan was unbounded (`scan_prefix(.., usize::MAX)`),
    /// so a tenant that outgrew its `--expected-rows` decrypted a whole bucket per
    /// search. Planned for 4 rows (1 bit: about half the tenant per bucket), 200
    /// records overflow the bound of 64 entries: the search is refused, not run.
    #[test]
    fn a_tenant_that_outgrew_its_plan_refuses_instead_of_scanning() {
        let v = Vault::in_memory(Arc::new(MemoryStore::new())).unwrap();
        v.create_tenant("t", &["otp".into()], Some(4)).unwrap();
        let otp = ["otp".to_owned()];
        for i in 0..200 {
            v.add("t", &format!("+4474001{i:05}"), None, &otp, "t")
                .unwrap();
        }
        let mut refused = 0;
        for i in 0..20 {
            match v.find_last4("t", 44, &format!("{i:04}"), "otp") {
                Err(VaultError::Last4TooBroad { limit }) => {
                    assert_eq!(limit, crate::policy::MAX_LAST4_RESULTS);
                    refused += 1;
                }
                Ok(found) => assert!(found.len() <= 1),
                Err(e) => panic!("{e}"),
            }
        }
        // Each bucket holds about 100 entries: nearly every search overflows.
        assert!(refused >= 15, "{refused} of 20 refused");
        // Planned for the tenant's size, the same searches run.
        let w = Vault::in_memory(Arc::new(MemoryStore::new())).unwrap();
        w.create_tenant("t", &["otp".into()], Some(200)).unwrap();
        for i in 0..200 {
            w.add("t", &format!("+4474001{i:05}"), None, &otp, "t")
                .unwrap();
        }
        let found = w.find_last4("t", 44, "0007", "otp").unwrap();
        assert_eq!(found.len(), 1);
    }

    /// Issue 13, item 1: more matching records than one search returns are refused
    /// with a request for more digits, not handed out.
    #[test]
    fn more_matches_than_a_search_returns_are_refused() {
        let v = Vault::in_memory(Arc::new(MemoryStore::new())).unwrap();
        v.create_tenant("t", &["otp".into()], Some(100_000))
            .unwrap();
        let otp = ["otp".to_owned()];
        for i in 0..=crate::policy::MAX_LAST4_RESULTS {
            v.add("t", &format!("+447401{i:02}5555"), None, &otp, "t")
                .unwrap();
        }
        assert!(matches!(
            v.find_last4("t", 44, "5555", "otp"),
            Err(VaultError::Last4TooBroad { .. })
        ));
        v.erase(
            "t",
            Target::Phone {
                input: "+447401005555",
                region: None,
            },
        )
        .unwrap();
        let found = v.find_last4("t", 44, "5555", "otp").unwrap();
        assert_eq!(found.len(), crate::policy::MAX_LAST4_RESULTS);
    }
}
