//! Suppression lists (do-not-call, do-not-text): numbers a tenant must not contact for
//! some purposes, kept as blind-index entries only.
//!
//! A list is never a set of numbers: each of its numbers is normalized and keyed with
//! the tenant's blind-index key, as an exact-index lookup keys it but under its own
//! domain-separation prefix, and only that digest is stored. The vault never holds a
//! number it was only told to avoid, and a reader of the store cannot match a list's
//! entries with the records' index entries (which listed customers are records).
//!
//! ```text
//! list row   = tid ‖ 'M' ‖ name                       → MACed ListRow
//! entry      = tid ‖ 'E' ‖ u8 len(name) ‖ name ‖ generation (8) ‖ digest (16)
//!                                                     → tag (16)
//! digest     = HMAC-SHA256(index key v, "suppress-e164:" ‖ E.164)[..16]   (v: the row's index_version)
//! tag        = HMAC-SHA256(row MAC key, lp(ENTRY_LABEL) ‖ lp(entry key))[..16]
//! ```
//!
//! An import writes the new version's entries under a fresh random generation, counts
//! them, and only then replaces the list row in one guarded batch (with its audit
//! entry): until that commit the old version is in force, whatever happens to the
//! import. The old generation's entries are deleted afterwards, a chunk at a time; what
//! a crash leaves behind is deleted by the list's next import or by its drop.
//!
//! Reads for a purpose a list names ([`Vault::find`], [`Vault::get`],
//! [`Vault::find_last4`], [`Vault::export`], [`Vault::share`]) treat a listed number as
//! refused for that purpose, and log a `suppressed:<list>` entry naming the records.

use std::collections::{BTreeMap, HashSet};
use std::sync::PoisonError;

use bincode::{Decode, Encode};

use super::audit::{Event, MAX_IDS_PER_ENTRY};
use super::rowmac::{decode_row, encode_row};
use super::rows::send_chunks;
use super::{check_name, check_region_hint, ImportRow, Reject, TenantCtx, Vault, VaultError};
use crate::audit::{Entry, Outcome};
use crate::phone;
use crate::policy::TenantName;
use crate::record::{self, RecordBody, RecordId};
use crate::store::{prefix_end, Batch, Tree};

/// Entries written per atomic batch during a list import (memory is bounded by a few
/// of these, whatever the size of the list).
pub const SUPPRESS_CHUNK: usize = 10_000;
/// The MAC table name of list rows.
const TABLE: &str = "suppress";
/// Domain label of an entry's tag.
pub const ENTRY_LABEL: &[u8] = phonevault_keys::labels::SUPPRESS_ENTRY;
/// Prefix of a list entry's digest: not the exact index's `e164:`, so that equal
/// numbers do not give equal bytes in the two trees.
pub const SUPPRESS_INDEX_PREFIX: &[u8] = phonevault_keys::labels::SUPPRESS_INDEX_PREFIX;
const ROW_KIND: u8 = b'M';
const ENTRY_KIND: u8 = b'E';
const GENERATION_LEN: usize = 8;
const TAG_LEN: usize = 16;
/// Bytes of an entry's digest: 128 bits, as the exact index.
const DIGEST_LEN: usize = record::EXACT_INDEX_LEN;
/// Chunks in flight between the normalizing thread and the writer.
const CHANNEL_CHUNKS: usize = 4;

/// A list as stored (MACed, bound to its key).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
struct ListRow {
    name: String,
    /// 1 for the first import, +1 for each refresh.
    version: u32,
    /// Where this version's entries live (random, so no two imports share one).
    generation: [u8; GENERATION_LEN],
    purposes: Vec<String>,
    /// Distinct numbers (entries) of this version.
    count: u64,
    imported_at: u64,
    /// The tenant's index-key version the digests were made with.
    index_version: u32,
}

/// A list, as `suppress list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = SuppressionList)]
pub struct ListInfo {
    /// Name.
    pub name: String,
    /// Version (1 for the first import, +1 for each refresh).
    pub version: u32,
    /// Purposes the list suppresses.
    pub purposes: Vec<String>,
    /// Distinct numbers on it.
    pub count: u64,
    /// Unix seconds of the import that made this version.
    pub imported_at: u64,
}

/// Options of a list import.
#[derive(Clone, Debug)]
pub struct SuppressOptions {
    /// Tenant.
    pub tenant: TenantName,
    /// List name (`[a-z0-9._:-]`, 1-64).
    pub list: String,
    /// Purposes the list suppresses (declared by the tenant).
    pub purposes: Vec<String>,
    /// Region hint for national numbers.
    pub region: Option<String>,
}

/// What a list import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SuppressReport {
    /// The list.
    pub list: String,
    /// The version now in force.
    pub version: u32,
    /// Rows read (excluding the header).
    pub rows: u64,
    /// Distinct numbers on the new version.
    pub count: u64,
    /// Rows rejected (not a valid number, malformed CSV).
    pub rejected: u64,
    /// The version replaced, if any.
    pub replaced: Option<u32>,
    /// Entries of replaced or abandoned versions deleted.
    pub removed: u64,
}

/// How many live records a list suppresses, as `stats` publishes it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ListCount {
    /// The list.
    pub list: String,
    /// Its purposes.
    pub purposes: Vec<String>,
    /// Live records on it (noisy with epsilon); `None` when below the threshold.
    pub records: Option<u64>,
}

/// A list loaded for reads: where its entries are and how they are keyed.
#[derive(Clone)]
pub(crate) struct ActiveList {
    name: String,
    prefix: Vec<u8>,
    index_version: u32,
    purposes: Vec<String>,
}

impl ActiveList {
    /// Whether the list suppresses one of `purposes`.
    pub(crate) fn suppresses_any(&self, purposes: &[String]) -> bool {
        self.purposes.iter().any(|p| purposes.contains(p))
    }
}

fn row_prefix(tid: u32) -> Vec<u8> {
    let mut k = tid.to_be_bytes().to_vec();
    k.push(ROW_KIND);
    k
}

fn row_key(tid: u32, name: &str) -> Vec<u8> {
    let mut k = row_prefix(tid);
    k.extend_from_slice(name.as_bytes());
    k
}

/// The prefix of every entry of a list, all generations.
fn list_prefix(tid: u32, name: &str) -> Vec<u8> {
    let mut k = tid.to_be_bytes().to_vec();
    k.push(ENTRY_KIND);
    // Names are at most 64 bytes (check_name): the length fits, and "ab" is no
    // prefix of "abc".
    k.push(name.len() as u8);
    k.extend_from_slice(name.as_bytes());
    k
}

fn generation_prefix(tid: u32, name: &str, generation: &[u8; GENERATION_LEN]) -> Vec<u8> {
    let mut k = list_prefix(tid, name);
    k.extend_from_slice(generation);
    k
}

/// The tag of an entry: only the holder of the row MAC key can add one.
/// A list row: its stored bytes (for a guard) and what they decode to.
type StoredRow = (Vec<u8>, ListRow);

/// An upload id as [`Vault::suppress_upload_begin`] gave it: the generation in hex.
fn parse_upload(upload: &str) -> Result<[u8; GENERATION_LEN], VaultError> {
    let mut g = [0u8; GENERATION_LEN];
    match hex::decode_to_slice(upload, &mut g) {
        Ok(()) => Ok(g),
        Err(_) => Err(VaultError::InvalidArgument(format!(
            "an upload id is {} hex digits, as the upload's start answered",
            2 * GENERATION_LEN
        ))),
    }
}

fn entry_tag(mac: &phonevault_keys::MacKey, key: &[u8]) -> [u8; TAG_LEN] {
    let full = mac.tag(&[ENTRY_LABEL, key]);
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&full[..TAG_LEN]);
    t
}

/// A normalized row of a list file: its entry key, or why it was rejected.
enum Prepared {
    Entry(Vec<u8>),
    Reject(Reject),
}

/// The digest a list stores for `e164`.
fn entry_digest(index: &phonevault_keys::IndexKey, e164: &str) -> [u8; DIGEST_LEN] {
    let full = index.digest(&[SUPPRESS_INDEX_PREFIX, e164.as_bytes()]);
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(&full[..DIGEST_LEN]);
    out
}

/// Normalizes one field and keys it: the work of a list import without storage (the
/// compute floor the benchmark compares the import with).
///
/// # Errors
/// The field is not a valid number.
pub fn list_digest(
    index: &phonevault_keys::IndexKey,
    field: &str,
    region: Option<&str>,
) -> Result<[u8; DIGEST_LEN], phone::PhoneError> {
    let n = phone::normalize(field, region)?;
    Ok(entry_digest(index, n.e164.expose_secret()))
}

impl Vault {
    /// Loads the tenant's lists and verifies their rows.
    fn list_rows(&self, ctx: &TenantCtx) -> Result<Vec<(Vec<u8>, ListRow)>, VaultError> {
        let prefix = row_prefix(ctx.row.id);
        self.store
            .scan_prefix(Tree::Suppress, &prefix, usize::MAX)?
            .into_iter()
            .map(|(k, v)| {
                let row: ListRow = decode_row(&self.row_mac, TABLE, &k, &v)?;
                if k[prefix.len()..] != *row.name.as_bytes() {
                    return Err(VaultError::RowTampered(TABLE));
                }
                Ok((v, row))
            })
            .collect()
    }

    /// The lists that suppress `purpose` (every list with `None`).
    pub(crate) fn active_lists(
        &self,
        ctx: &TenantCtx,
        purpose: Option<&str>,
    ) -> Result<Vec<ActiveList>, VaultError> {
        Ok(self
            .list_rows(ctx)?
            .into_iter()
            .filter(|(_, r)| purpose.is_none_or(|p| r.purposes.iter().any(|q| q == p)))
            .map(|(_, r)| ActiveList {
                prefix: generation_prefix(ctx.row.id, &r.name, &r.generation),
                name: r.name,
                index_version: r.index_version,
                purposes: r.purposes,
            })
            .collect())
    }

    /// [`Vault::active_lists`] for a read: kept in the tenant's context when only this
    /// process writes the store (every list change here forgets the context, so the
    /// next read loads the lists again), read from the store each time when the store
    /// is shared (another server may change a list at any moment).
    pub(crate) fn read_lists(
        &self,
        ctx: &TenantCtx,
        purpose: &str,
    ) -> Result<Vec<ActiveList>, VaultError> {
        if self.store.shared() {
            return self.active_lists(ctx, Some(purpose));
        }
        let all = match ctx.lists.get() {
            Some(all) => all,
            None => {
                let all = self.active_lists(ctx, None)?;
                ctx.lists.get_or_init(|| all)
            }
        };
        Ok(all
            .iter()
            .filter(|l| l.purposes.iter().any(|q| q == purpose))
            .cloned()
            .collect())
    }

    /// The first of `lists` holding `e164`, if any. An entry whose tag does not verify
    /// was not written by the vault: the store was tampered with.
    pub(crate) fn listed_in<'a>(
        &self,
        ctx: &TenantCtx,
        lists: &'a [ActiveList],
        e164: &str,
    ) -> Result<Option<&'a str>, VaultError> {
        let mut digests: Vec<(u32, [u8; DIGEST_LEN])> = Vec::new();
        for l in lists {
            let digest = match digests.iter().find(|(v, _)| *v == l.index_version) {
                Some((_, d)) => *d,
                None => {
                    let keys = ctx
                        .data_key(l.index_version)
                        .map_err(|_| VaultError::SuppressKeyGone(l.name.clone()))?;
                    let d = entry_digest(&keys.index, e164);
                    digests.push((l.index_version, d));
                    d
                }
            };
            let mut key = l.prefix.clone();
            key.extend_from_slice(&digest);
            if let Some(tag) = self.store.get(Tree::Suppress, &key)? {
                let want = entry_tag(&self.row_mac, &key);
                if !bool::from(subtle::ConstantTimeEq::ct_eq(&tag[..], &want[..])) {
                    return Err(VaultError::RowTampered(TABLE));
                }
                return Ok(Some(&l.name));
            }
        }
        Ok(None)
    }

    /// Logs the records a read left out because a list suppresses them, one entry per
    /// list (action `suppressed:<list>`, outcome refused).
    pub(crate) fn log_suppressed(
        &self,
        tenant: &str,
        purpose: &str,
        by_list: BTreeMap<String, Vec<[u8; 16]>>,
    ) -> Result<(), VaultError> {
        if !self.who.audit || by_list.is_empty() {
            return Ok(());
        }
        let time = self.now();
        let mut entries = Vec::new();
        for (list, ids) in by_list {
            for chunk in ids.chunks(MAX_IDS_PER_ENTRY) {
                entries.push(Entry {
                    time,
                    actor: self.who.actor.clone(),
                    tenant: Some(tenant.to_owned()),
                    action: format!("suppressed:{list}"),
                    records: chunk.to_vec(),
                    purpose: Some(purpose.to_owned()),
                    reveal: false,
                    outcome: Outcome::Refused,
                    writes: Vec::new(),
                });
            }
        }
        self.log_entries(entries)
            .map_err(|e| VaultError::AuditUnavailable(Box::new(e)))
    }

    /// For one-record reads: whether the lists for `purpose` suppress `e164`; logged
    /// as a `suppressed:<list>` entry when the record was `readable` otherwise (a
    /// record refused anyway was not left out because of the list).
    pub(crate) fn suppressed_read(
        &self,
        ctx: &TenantCtx,
        purpose: &str,
        id: &RecordId,
        e164: &str,
        readable: bool,
    ) -> Result<bool, VaultError> {
        let lists = self.read_lists(ctx, purpose)?;
        let Some(list) = self.listed_in(ctx, &lists, e164)? else {
            return Ok(false);
        };
        if !readable {
            return Ok(true);
        }
        let mut by = BTreeMap::new();
        by.insert(list.to_owned(), vec![id.0]);
        self.log_suppressed(&ctx.row.name, purpose, by)?;
        Ok(true)
    }

    /// Imports (or refreshes) a suppression list from rows (a CSV file's through
    /// `crate::cli::CsvRows`), streaming: one thread
    /// normalizes and keys the numbers while this one writes bounded batches. The new
    /// version replaces the old one atomically once it is complete; rejected rows go to
    /// `on_reject` (line and reason, never the number).
    ///
    /// # Errors
    /// Unknown tenant or purpose, a bad list name,
    /// store errors. On any error the list's previous version stays in force.
    pub fn suppress_import<I>(
        &self,
        opts: &SuppressOptions,
        rows: I,
        on_reject: impl FnMut(Reject) -> Result<(), VaultError>,
    ) -> Result<SuppressReport, VaultError>
    where
        I: IntoIterator<Item = ImportRow>,
        I::IntoIter: Send,
    {
        self.audited("suppress-import", Some(opts.tenant.as_str()), None, |ev| {
            self.suppress_import_in(opts, rows.into_iter(), on_reject, ev)
        })
    }

    fn suppress_import_in(
        &self,
        opts: &SuppressOptions,
        rows: impl Iterator<Item = ImportRow> + Send,
        mut on_reject: impl FnMut(Reject) -> Result<(), VaultError>,
        ev: &mut Event,
    ) -> Result<SuppressReport, VaultError> {
        let ctx = self.tenant(opts.tenant.as_str())?;
        check_name("list name", &opts.list)?;
        Self::check_purposes(&ctx, &opts.purposes)?;
        check_region_hint(opts.region.as_deref())?;
        // One import of a list at a time in this process: a second one would sweep
        // the first's entries as abandoned.
        let _one = self.one_list_change();
        let (generation, prev, mut report) = self.begin_generation(&ctx, &opts.list)?;
        let gen_prefix = generation_prefix(ctx.row.id, &opts.list, &generation);
        let index = ctx.index()?;
        let written = self.write_list_entries(
            (index, &gen_prefix),
            opts.region.as_deref(),
            rows,
            &mut report,
            &mut on_reject,
        );
        match written {
            // Against the version this import began over: another import that
            // committed meanwhile makes the flip a conflict, not a silent replacement.
            Ok(()) => {
                let to = (generation, &opts.purposes[..]);
                self.flip_generation(&ctx, &opts.list, to, prev, report, ev)
            }
            Err(e) => {
                // Best effort: the entries are unreachable either way, and the next
                // import of the list sweeps what is left.
                let _ = self.delete_prefix(&gen_prefix);
                Err(e)
            }
        }
    }

    /// The in-process lock held by every change of a list's versions: one import,
    /// upload start or commit, or drop at a time (a second import would sweep the
    /// first's entries as abandoned).
    fn one_list_change(&self) -> std::sync::MutexGuard<'_, ()> {
        self.suppress_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh generation for a new version of `list`, after sweeping what failed or
    /// abandoned imports left; the report names the version it will replace.
    fn begin_generation(
        &self,
        ctx: &TenantCtx,
        list: &str,
    ) -> Result<([u8; GENERATION_LEN], Option<StoredRow>, SuppressReport), VaultError> {
        let prev = self.list_row(ctx, list)?;
        let mut report = SuppressReport {
            list: list.to_owned(),
            replaced: prev.as_ref().map(|(_, p)| p.version),
            ..SuppressReport::default()
        };
        report.removed +=
            self.delete_generations(ctx.row.id, list, prev.as_ref().map(|(_, p)| p))?;
        let mut generation = [0u8; GENERATION_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut generation);
        Ok((generation, prev, report))
    }

    /// The list's row (its stored bytes and decoded form), if it has one.
    fn list_row(&self, ctx: &TenantCtx, list: &str) -> Result<Option<StoredRow>, VaultError> {
        let rk = row_key(ctx.row.id, list);
        let Some(bytes) = self.store.get(Tree::Suppress, &rk)? else {
            return Ok(None);
        };
        let row = decode_row(&self.row_mac, TABLE, &rk, &bytes)?;
        Ok(Some((bytes, row)))
    }

    /// Puts `generation` in force as the list's next version, suppressing
    /// `purposes`, in place of `prev` (one batch guarded on `prev` and audited: in
    /// force from this commit on, and not a moment before), then deletes the version
    /// it replaced.
    fn flip_generation(
        &self,
        ctx: &TenantCtx,
        list: &str,
        (generation, purposes): ([u8; GENERATION_LEN], &[String]),
        prev: Option<StoredRow>,
        mut report: SuppressReport,
        ev: &mut Event,
    ) -> Result<SuppressReport, VaultError> {
        let tid = ctx.row.id;
        let gen_prefix = generation_prefix(tid, list, &generation);
        if prev
            .as_ref()
            .is_some_and(|(_, p)| p.generation == generation)
        {
            return Err(VaultError::UploadInForce);
        }
        report.count = self.count_entries(&gen_prefix)?;
        let index = ctx.index()?;
        let row = ListRow {
            name: list.to_owned(),
            version: prev
                .as_ref()
                .map_or(1, |(_, p)| p.version.saturating_add(1)),
            generation,
            purposes: purposes.to_vec(),
            count: report.count,
            imported_at: self.now(),
            index_version: index.version,
        };
        report.version = row.version;
        report.replaced = prev.as_ref().map(|(_, p)| p.version);
        let rk = row_key(tid, list);
        let mut b = Batch::default();
        b.guard(
            Tree::Suppress,
            rk.clone(),
            prev.as_ref().map(|(b, _)| b.clone()),
        );
        b.put(
            Tree::Suppress,
            rk.clone(),
            encode_row(&self.row_mac, TABLE, &rk, &row),
        );
        if let Err(e) = self.commit_audited(&mut b, ev) {
            let _ = self.delete_prefix(&gen_prefix);
            return Err(e);
        }
        // Reads that kept the tenant's lists (see `read_lists`) take the new version.
        self.forget_tenant(&ctx.row.name);
        if let Some((_, p)) = &prev {
            report.removed += self.delete_prefix(&generation_prefix(tid, list, &p.generation))?;
        }
        Ok(report)
    }

    /// Starts a list import over several requests (the socket's way to load a list too
    /// large for one request): sweeps what earlier failed or abandoned imports of the
    /// list left (an upload of the same list still in progress is abandoned with them)
    /// and returns the new upload's id. The version in force stays in force until
    /// [`Vault::suppress_upload_commit`].
    ///
    /// # Errors
    /// [`VaultError::UnknownTenant`], [`VaultError::InvalidName`], store errors.
    pub fn suppress_upload_begin(
        &self,
        tenant: &TenantName,
        list: &str,
    ) -> Result<String, VaultError> {
        let tenant = tenant.as_str();
        self.audited("suppress-upload", Some(tenant), None, |_| {
            let ctx = self.tenant(tenant)?;
            check_name("list name", list)?;
            let _one = self.one_list_change();
            let (generation, _, _) = self.begin_generation(&ctx, list)?;
            Ok(hex::encode(generation))
        })
    }

    /// Adds rows to upload `upload` of `list` (entries only: nothing is in force yet).
    ///
    /// # Errors
    /// [`VaultError::InvalidArgument`] for an upload id that is malformed or the
    /// version in force; as [`Vault::suppress_import`].
    pub fn suppress_upload_rows(
        &self,
        tenant: &TenantName,
        (list, upload): (&str, &str),
        region: Option<&str>,
        rows: impl IntoIterator<Item = ImportRow, IntoIter: Send>,
        mut on_reject: impl FnMut(Reject) -> Result<(), VaultError>,
    ) -> Result<SuppressReport, VaultError> {
        let tenant = tenant.as_str();
        self.audited("suppress-upload-rows", Some(tenant), None, |_| {
            let ctx = self.tenant(tenant)?;
            check_name("list name", list)?;
            check_region_hint(region)?;
            let generation = parse_upload(upload)?;
            if self
                .list_row(&ctx, list)?
                .is_some_and(|(_, p)| p.generation == generation)
            {
                return Err(VaultError::UploadInForce);
            }
            let mut report = SuppressReport {
                list: list.to_owned(),
                ..SuppressReport::default()
            };
            let index = ctx.index()?;
            self.write_list_entries(
                (index, &generation_prefix(ctx.row.id, list, &generation)),
                region,
                rows.into_iter(),
                &mut report,
                &mut on_reject,
            )?;
            Ok(report)
        })
    }

    /// Puts upload `upload` in force as the next version of `list`, suppressing
    /// `purposes`; the version it replaces is deleted.
    ///
    /// # Errors
    /// As [`Vault::suppress_upload_rows`]; [`VaultError::Store`] `Conflict` when
    /// another import of the list committed meanwhile.
    pub fn suppress_upload_commit(
        &self,
        tenant: &TenantName,
        (list, upload): (&str, &str),
        purposes: &[String],
    ) -> Result<SuppressReport, VaultError> {
        let tenant = tenant.as_str();
        self.audited("suppress-import", Some(tenant), None, |ev| {
            let ctx = self.tenant(tenant)?;
            check_name("list name", list)?;
            Self::check_purposes(&ctx, purposes)?;
            if purposes.is_empty() {
                return Err(VaultError::InvalidArgument(
                    "a list suppresses at least one purpose: name them".into(),
                ));
            }
            let generation = parse_upload(upload)?;
            let _one = self.one_list_change();
            let report = SuppressReport {
                list: list.to_owned(),
                ..SuppressReport::default()
            };
            let prev = self.list_row(&ctx, list)?;
            self.flip_generation(&ctx, list, (generation, purposes), prev, report, ev)
        })
    }

    /// Streams `rows` into entries under `gen_prefix`, in batches of
    /// [`SUPPRESS_CHUNK`]: a second thread normalizes and keys while this one writes.
    fn write_list_entries(
        &self,
        (index, gen_prefix): (&phonevault_keys::TenantKeys, &[u8]),
        region: Option<&str>,
        rows: impl Iterator<Item = ImportRow> + Send,
        report: &mut SuppressReport,
        on_reject: &mut impl FnMut(Reject) -> Result<(), VaultError>,
    ) -> Result<(), VaultError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Prepared>>(CHANNEL_CHUNKS);
        std::thread::scope(|s| -> Result<(), VaultError> {
            let producer = s.spawn(move || {
                send_chunks(
                    rows,
                    SUPPRESS_CHUNK,
                    &tx,
                    |field, line| match list_digest(&index.index, field, region) {
                        Ok(d) => {
                            let mut k = Vec::with_capacity(gen_prefix.len() + d.len());
                            k.extend_from_slice(gen_prefix);
                            k.extend_from_slice(&d);
                            Prepared::Entry(k)
                        }
                        Err(e) => Prepared::Reject(Reject {
                            line,
                            code: e.code(),
                            reason: e.to_string(),
                        }),
                    },
                    Prepared::Reject,
                );
            });
            let mut result = Ok(());
            for chunk in rx.iter() {
                if let Err(e) = self.write_list_chunk(chunk, report, on_reject) {
                    result = Err(e);
                    break;
                }
            }
            drop(rx);
            let _ = producer.join();
            result
        })
    }

    fn write_list_chunk(
        &self,
        chunk: Vec<Prepared>,
        report: &mut SuppressReport,
        on_reject: &mut impl FnMut(Reject) -> Result<(), VaultError>,
    ) -> Result<(), VaultError> {
        let mut b = Batch::default();
        let mut seen: HashSet<&[u8]> = HashSet::with_capacity(chunk.len());
        for p in &chunk {
            report.rows += 1;
            match p {
                Prepared::Reject(r) => {
                    report.rejected += 1;
                    on_reject(r.clone())?;
                }
                Prepared::Entry(k) if seen.insert(k) => {
                    b.put(
                        Tree::Suppress,
                        k.clone(),
                        entry_tag(&self.row_mac, k).to_vec(),
                    );
                }
                Prepared::Entry(_) => {}
            }
        }
        if !b.is_empty() {
            self.store.commit(&b)?;
        }
        Ok(())
    }

    /// Counts the entries under `prefix`, a page at a time.
    fn count_entries(&self, prefix: &[u8]) -> Result<u64, VaultError> {
        let end = prefix_end(prefix);
        let mut start = prefix.to_vec();
        let mut n = 0u64;
        loop {
            let page = self
                .store
                .range(Tree::Suppress, &start, end.as_deref(), SUPPRESS_CHUNK)?;
            let Some((last, _)) = page.last() else {
                return Ok(n);
            };
            n += page.len() as u64;
            start = last.clone();
            start.push(0);
        }
    }

    /// Deletes every entry under `prefix`, a chunk per batch. Returns how many.
    fn delete_prefix(&self, prefix: &[u8]) -> Result<u64, VaultError> {
        let mut n = 0u64;
        loop {
            let page = self
                .store
                .scan_prefix(Tree::Suppress, prefix, SUPPRESS_CHUNK)?;
            if page.is_empty() {
                return Ok(n);
            }
            let mut b = Batch::default();
            for (k, _) in page {
                b.delete(Tree::Suppress, k);
                n += 1;
            }
            self.store.commit(&b)?;
        }
    }

    /// Deletes the entries of every generation of a list but `keep`'s.
    fn delete_generations(
        &self,
        tid: u32,
        name: &str,
        keep: Option<&ListRow>,
    ) -> Result<u64, VaultError> {
        let all = list_prefix(tid, name);
        let Some(keep) = keep else {
            return self.delete_prefix(&all);
        };
        let kept = generation_prefix(tid, name, &keep.generation);
        // Below the kept generation, then above it.
        let mut n = 0u64;
        let end = prefix_end(&all);
        for (from, to) in [
            (all.clone(), Some(kept.clone())),
            (prefix_end(&kept).unwrap_or_default(), end),
        ] {
            if from.is_empty() {
                continue;
            }
            loop {
                let page =
                    self.store
                        .range(Tree::Suppress, &from, to.as_deref(), SUPPRESS_CHUNK)?;
                if page.is_empty() {
                    break;
                }
                let mut b = Batch::default();
                for (k, _) in page {
                    b.delete(Tree::Suppress, k);
                    n += 1;
                }
                self.store.commit(&b)?;
            }
        }
        Ok(n)
    }

    /// The tenant's lists, by name.
    ///
    /// # Errors
    /// [`VaultError::UnknownTenant`]; [`VaultError::RowTampered`] for a list row that
    /// fails its MAC.
    pub fn suppress_lists(&self, tenant: &TenantName) -> Result<Vec<ListInfo>, VaultError> {
        let tenant = tenant.as_str();
        self.audited("suppress-list", Some(tenant), None, |_| {
            let ctx = self.tenant(tenant)?;
            Ok(self
                .list_rows(&ctx)?
                .into_iter()
                .map(|(_, r)| ListInfo {
                    name: r.name,
                    version: r.version,
                    purposes: r.purposes,
                    count: r.count,
                    imported_at: r.imported_at,
                })
                .collect())
        })
    }

    /// Drops a list: its row goes in one audited batch (reads stop consulting it at
    /// once), then its entries, a chunk at a time. Returns the entries deleted.
    ///
    /// # Errors
    /// [`VaultError::NoSuchList`] when the tenant has no list of that name.
    pub fn suppress_drop(&self, tenant: &TenantName, list: &str) -> Result<u64, VaultError> {
        let tenant = tenant.as_str();
        self.audited("suppress-drop", Some(tenant), None, |ev| {
            let ctx = self.tenant(tenant)?;
            check_name("list name", list)?;
            let _one = self.one_list_change();
            let rk = row_key(ctx.row.id, list);
            let bytes = self
                .store
                .get(Tree::Suppress, &rk)?
                .ok_or(VaultError::NoSuchList)?;
            let _: ListRow = decode_row(&self.row_mac, TABLE, &rk, &bytes)?;
            let mut b = Batch::default();
            b.guard(Tree::Suppress, rk.clone(), Some(bytes));
            b.delete(Tree::Suppress, rk);
            self.commit_audited(&mut b, ev)?;
            self.forget_tenant(&ctx.row.name);
            self.delete_prefix(&list_prefix(ctx.row.id, list))
        })
    }

    /// How many live records (a live consent, within retention) each list holds,
    /// under the protections of a `stats` query: counts below its threshold are not
    /// published, and with epsilon each count gets Laplace noise.
    ///
    /// # Errors
    /// As [`Vault::stats`].
    pub fn suppression_stats(
        &self,
        tenant: &TenantName,
        q: &crate::stats::StatsQuery,
    ) -> Result<Vec<ListCount>, VaultError> {
        let tenant = tenant.as_str();
        self.audited("suppress-stats", Some(tenant), None, |_| {
            q.validate()?;
            let ctx = self.tenant(tenant)?;
            let lists = self.active_lists(&ctx, None)?;
            if lists.is_empty() {
                return Ok(Vec::new());
            }
            let t = self.now();
            let mut counts = vec![0u64; lists.len()];
            self.for_each_record(&ctx, |_, body: &RecordBody| {
                let within = !crate::policy::retention::expired(body, ctx.row.retention_days, t);
                if !(within && body.is_live()) {
                    return Ok(());
                }
                for (i, l) in lists.iter().enumerate() {
                    if self
                        .listed_in(&ctx, std::slice::from_ref(l), &body.e164)?
                        .is_some()
                    {
                        counts[i] += 1;
                    }
                }
                Ok(())
            })?;
            let mut rng = rand::rngs::OsRng;
            Ok(lists
                .into_iter()
                .zip(counts)
                .map(|(l, c)| ListCount {
                    list: l.name,
                    purposes: l.purposes,
                    records: crate::stats::publish_count(c, q, &mut rng),
                })
                .collect())
        })
    }

    /// Of `purposes`, those a list holding `input` suppresses (for `add` to say so).
    ///
    /// # Errors
    /// Unknown tenant, an invalid number, store errors.
    pub fn suppressed_purposes(
        &self,
        tenant: &TenantName,
        input: &str,
        region: Option<&str>,
        purposes: &[String],
    ) -> Result<Vec<String>, VaultError> {
        let tenant = tenant.as_str();
        let ctx = self.tenant(tenant)?;
        let n = phone::normalize(input, region)?;
        let lists = self.active_lists(&ctx, None)?;
        let mut out = Vec::new();
        for p in purposes {
            let covering: Vec<&ActiveList> = lists
                .iter()
                .filter(|l| l.suppresses_any(std::slice::from_ref(p)))
                .collect();
            for l in covering {
                if self
                    .listed_in(&ctx, std::slice::from_ref(l), n.e164.expose_secret())?
                    .is_some()
                {
                    out.push(p.clone());
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Integrity of the tenant's lists (`phonevault check`): every entry of a list's
    /// version carries its tag, and there are as many as its row says (a deleted entry
    /// shows as a shortfall). Returns the problems found, as (code, detail).
    pub(crate) fn check_suppression(
        &self,
        ctx: &TenantCtx,
    ) -> Result<Vec<(&'static str, String)>, VaultError> {
        let mut problems = Vec::new();
        let rows = match self.list_rows(ctx) {
            Ok(r) => r,
            Err(e) => {
                problems.push(("suppress_row", e.to_string()));
                return Ok(problems);
            }
        };
        for (_, row) in rows {
            let prefix = generation_prefix(ctx.row.id, &row.name, &row.generation);
            let end = prefix_end(&prefix);
            let mut start = prefix.clone();
            let (mut n, mut bad) = (0u64, 0u64);
            loop {
                let page =
                    self.store
                        .range(Tree::Suppress, &start, end.as_deref(), SUPPRESS_CHUNK)?;
                let Some((last, _)) = page.last() else { break };
                start = last.clone();
                start.push(0);
                for (k, v) in &page {
                    n += 1;
                    if v[..] != entry_tag(&self.row_mac, k)[..] {
                        bad += 1;
                    }
                }
            }
            if bad > 0 {
                problems.push((
                    "suppress_entry",
                    format!(
                        "suppression list `{}`: {bad} entries fail their tag (written outside the vault)",
                        row.name
                    ),
                ));
            }
            if n - bad != row.count {
                problems.push((
                    "suppress_count",
                    format!(
                        "suppression list `{}` version {} should hold {} entries and holds {}: re-import it",
                        row.name, row.version, row.count, n - bad
                    ),
                ));
            }
        }
        Ok(problems)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is the failure report

    use std::sync::Arc;

    use super::*;
    use crate::policy::values::{source, tenant};
    use crate::store::{MemoryStore, Store};

    fn opts(list: &str) -> SuppressOptions {
        SuppressOptions {
            tenant: tenant("t"),
            list: list.into(),
            purposes: vec!["marketing".into()],
            region: None,
        }
    }

    /// `n` valid UK mobile numbers from `start`, as a list file.
    fn file(start: u32, n: u32) -> String {
        let mut s = String::from("phone\n");
        for i in start..start + n {
            s.push_str(&format!("+44740{i:07}\n"));
        }
        s
    }

    fn vault() -> (Vault, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::new());
        let v = Vault::in_memory(store.clone()).unwrap();
        v.create_tenant(&tenant("t"), &["otp".into(), "marketing".into()], None)
            .unwrap();
        (v, store)
    }

    fn listed(v: &Vault, phone: &str) -> bool {
        let ctx = v.tenant("t").unwrap();
        let lists = v.active_lists(&ctx, Some("marketing")).unwrap();
        v.listed_in(&ctx, &lists, phone).unwrap().is_some()
    }

    fn import(v: &Vault, list: &str, csv: &str) -> Result<SuppressReport, VaultError> {
        v.suppress_import(
            &opts(list),
            crate::cli::CsvRows::new(csv.as_bytes(), "phone")?,
            |_| Ok(()),
        )
    }

    fn rows(start: u32, n: u32) -> Vec<ImportRow> {
        (start..start + n)
            .enumerate()
            .map(|(i, k)| ImportRow::Number {
                phone: zeroize::Zeroizing::new(format!("+44740{k:07}")),
                line: i as u64,
            })
            .collect()
    }

    /// Reads keep the tenant's lists between list changes (the store is this
    /// process's alone): an import, a refresh and a drop through the same vault each
    /// take effect for the very next read.
    #[test]
    fn a_list_change_reaches_the_next_read_at_once() {
        let (v, _store) = vault();
        let number = "+447400000005";
        v.add(
            &tenant("t"),
            number,
            None,
            &["marketing".into()],
            &source("web"),
        )
        .unwrap();
        let found = |v: &Vault| {
            v.find(&tenant("t"), number, None, "marketing")
                .unwrap()
                .is_some()
        };
        assert!(
            found(&v),
            "no list yet: readable (and the empty list set kept)"
        );
        import(&v, "dnc", &file(0, 10)).unwrap();
        assert!(!found(&v), "listed by the import: refused at once");
        import(&v, "dnc", &file(100, 10)).unwrap();
        assert!(
            found(&v),
            "the refreshed list no longer holds it: readable at once"
        );
        import(&v, "dnc", &file(0, 10)).unwrap();
        assert!(!found(&v));
        v.suppress_drop(&tenant("t"), "dnc").unwrap();
        assert!(found(&v), "the list dropped: readable at once");
    }

    /// An upload over several requests: nothing is in force before its commit, the
    /// version it replaces stays whole until then, and an upload cannot be reused.
    #[test]
    fn an_upload_in_parts_is_in_force_only_once_committed() {
        let (v, _) = vault();
        import(&v, "dnc", &file(0, 10)).unwrap();
        let up = v.suppress_upload_begin(&tenant("t"), "dnc").unwrap();
        assert_eq!(up.len(), 2 * GENERATION_LEN);
        let r = v
            .suppress_upload_rows(&tenant("t"), ("dnc", &up), None, rows(100, 5), |_| Ok(()))
            .unwrap();
        assert_eq!(r.rows, 5);
        let mut rejects = Vec::new();
        let bad = vec![ImportRow::Number {
            phone: zeroize::Zeroizing::new("not a number".into()),
            line: 0,
        }];
        let r = v
            .suppress_upload_rows(
                &tenant("t"),
                ("dnc", &up),
                None,
                rows(105, 5).into_iter().chain(bad),
                |r| {
                    rejects.push(r);
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!((r.rows, r.rejected, rejects.len()), (6, 1, 1));
        // Not in force yet: the old version is.
        assert!(listed(&v, "+447400000003"));
        assert!(!listed(&v, "+447400000103"));
        let marketing = ["marketing".to_owned()];
        let done = v
            .suppress_upload_commit(&tenant("t"), ("dnc", &up), &marketing)
            .unwrap();
        assert_eq!((done.version, done.count, done.replaced), (2, 10, Some(1)));
        assert!(!listed(&v, "+447400000003"));
        assert!(listed(&v, "+447400000103") && listed(&v, "+447400000109"));
        // The version in force takes no more rows and is not committed again.
        assert!(v
            .suppress_upload_rows(&tenant("t"), ("dnc", &up), None, rows(200, 1), |_| Ok(()))
            .is_err());
        assert!(v
            .suppress_upload_commit(&tenant("t"), ("dnc", &up), &marketing)
            .is_err());
        assert!(v
            .suppress_upload_rows(&tenant("t"), ("dnc", "zz"), None, rows(200, 1), |_| Ok(()))
            .is_err());
        // An upload begun and abandoned leaves the version in force whole.
        let abandoned = v.suppress_upload_begin(&tenant("t"), "dnc").unwrap();
        v.suppress_upload_rows(
            &tenant("t"),
            ("dnc", &abandoned),
            None,
            rows(300, 3),
            |_| Ok(()),
        )
        .unwrap();
        assert!(!listed(&v, "+447400000300"));
        assert_eq!(v.suppress_lists(&tenant("t")).unwrap()[0].count, 10);
    }

    /// Issue 16: a refresh that fails part-way (here: the disk fills after its
    /// first batch of entries) leaves the previous version in force, whole; the next
    /// import sweeps what the failed one wrote.
    #[test]
    fn a_failed_refresh_leaves_the_old_version_in_force() {
        let (v, store) = vault();
        import(&v, "dnc", &file(0, 100)).unwrap();
        let entries_before = store
            .scan_prefix(Tree::Suppress, b"", usize::MAX)
            .unwrap()
            .len();
        let n = (SUPPRESS_CHUNK as u32) * 2 + 7;
        store.fail_commits_after(Some(1));
        assert!(matches!(
            import(&v, "dnc", &file(50, n)),
            Err(VaultError::Store(crate::store::StoreError::DiskFull))
        ));
        store.fail_commits_after(None);
        let lists = v.suppress_lists(&tenant("t")).unwrap();
        assert_eq!((lists[0].version, lists[0].count), (1, 100));
        assert!(listed(&v, "+447400000000"), "old-only number still listed");
        assert!(
            !listed(&v, "+447400000150"),
            "new-only number not yet listed"
        );
        // The failed import's first batch is still there (its clean-up was refused
        // too), unreachable; the next import removes it.
        let left = store
            .scan_prefix(Tree::Suppress, b"", usize::MAX)
            .unwrap()
            .len();
        assert_eq!(left, entries_before + SUPPRESS_CHUNK);
        let r = import(&v, "dnc", &file(50, n)).unwrap();
        assert_eq!((r.version, r.count, r.replaced), (2, u64::from(n), Some(1)));
        assert_eq!(r.removed, SUPPRESS_CHUNK as u64 + 100);
        assert!(!listed(&v, "+447400000000"));
        assert!(listed(&v, "+447400000150"));
        let all = store
            .scan_prefix(Tree::Suppress, b"", usize::MAX)
            .unwrap()
            .len();
        assert_eq!(
            all,
            n as usize + 1,
            "the entries and the list row, nothing else"
        );
        assert!(v.check_integrity().unwrap().is_ok());
    }

    /// A database writer cannot add an entry (its tag needs the row MAC key) nor
    /// remove one unseen by `check` (the row holds the count), nor edit the list row.
    #[test]
    fn tampered_entries_and_rows_are_detected() {
        let (v, store) = vault();
        import(&v, "dnc", &file(0, 10)).unwrap();
        let ctx = v.tenant("t").unwrap();
        let lists = v.active_lists(&ctx, None).unwrap();
        // Forge an entry for a number not on the list: its key is computable only with
        // the index key, but even with it, not its tag.
        let digest = entry_digest(&ctx.index().unwrap().index, "+447400000099");
        let mut key = lists[0].prefix.clone();
        key.extend_from_slice(&digest);
        let mut b = Batch::default();
        b.put(Tree::Suppress, key.clone(), vec![0u8; TAG_LEN]);
        store.commit(&b).unwrap();
        assert!(matches!(
            v.listed_in(&ctx, &lists, "+447400000099"),
            Err(VaultError::RowTampered("suppress"))
        ));
        let report = v.check_integrity().unwrap();
        assert!(report.problems.iter().any(|p| p.code == "suppress_entry"));
        let mut b = Batch::default();
        b.delete(Tree::Suppress, key);
        store.commit(&b).unwrap();
        assert!(v.check_integrity().unwrap().is_ok());

        // Remove a real entry: lookups cannot tell, `check` does.
        let digest = entry_digest(&ctx.index().unwrap().index, "+447400000003");
        let mut key = lists[0].prefix.clone();
        key.extend_from_slice(&digest);
        let mut b = Batch::default();
        b.delete(Tree::Suppress, key);
        store.commit(&b).unwrap();
        let report = v.check_integrity().unwrap();
        assert!(
            report.problems.iter().any(|p| p.code == "suppress_count"),
            "{report:?}"
        );

        // Edit the list row (say, drop its purposes): refused as tampered.
        let rk = row_key(ctx.row.id, "dnc");
        let mut row = store.get(Tree::Suppress, &rk).unwrap().unwrap();
        row[3] ^= 1;
        let mut b = Batch::default();
        b.put(Tree::Suppress, rk, row);
        store.commit(&b).unwrap();
        assert!(matches!(
            v.suppress_lists(&tenant("t")),
            Err(VaultError::RowTampered("suppress"))
        ));
        assert!(v
            .find(&tenant("t"), "+447400000001", None, "marketing")
            .is_err());
    }

    /// A list's entry and the record index entry of the same number share no bytes:
    /// a reader of the store cannot tell which records are listed.
    #[test]
    fn index_and_list_digests_of_a_number_differ() {
        let (v, store) = vault();
        v.add(
            &tenant("t"),
            "+447400000001",
            None,
            &["otp".into()],
            &source("s"),
        )
        .unwrap();
        import(&v, "dnc", &file(0, 3)).unwrap();
        let index: Vec<Vec<u8>> = store
            .scan_prefix(Tree::Index, b"", usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k[k.len() - DIGEST_LEN..].to_vec())
            .collect();
        assert_eq!(index.len(), 1);
        let entries = store.scan_prefix(Tree::Suppress, b"", usize::MAX).unwrap();
        assert_eq!(entries.len(), 4, "three entries and the list row");
        for (k, _) in entries {
            assert!(!k.windows(DIGEST_LEN).any(|w| w == index[0].as_slice()));
        }
        assert!(listed(&v, "+447400000001"));
    }

    /// Known answers, frozen: a change breaks every stored list (the entry keys and
    /// tags of existing vaults). Both values were also computed apart from this code,
    /// with Python's hmac and hashlib, from the construction in SECURITY.md (HKDF of
    /// the index and row MAC keys, then the two HMACs).
    #[test]
    fn entry_digest_and_tag_known_answers() {
        let keys = phonevault_keys::derive_tenant_keys(
            &phonevault_keys::TenantSeed::from_bytes(&[7; 32]),
            &phonevault_keys::VaultId([9; 16]),
            "t",
            1,
        );
        let digest = entry_digest(&keys.index, "+447400123958");
        let mac = phonevault_keys::derive_vault_keys(
            &phonevault_keys::VaultSeed::from_bytes(&[5; 32]),
            &phonevault_keys::VaultId([9; 16]),
        )
        .row_mac;
        let mut key = generation_prefix(1, "dnc", &[3; GENERATION_LEN]);
        key.extend_from_slice(&digest);
        let tag = entry_tag(&mac, &key);
        assert_eq!(hex::encode(digest), "97cf7e8f0858d66f5dffbb5de5933163");
        assert_eq!(hex::encode(tag), "4119b126ac0460ba238ec69f3630e8dc");
    }

    /// Lists of one tenant are invisible to another, and a name is no prefix of another.
    #[test]
    fn lists_are_per_tenant_and_per_name() {
        let (v, _) = vault();
        v.create_tenant(&tenant("u"), &["marketing".into()], None)
            .unwrap();
        import(&v, "dnc", &file(0, 3)).unwrap();
        import(&v, "dnc2", &file(10, 3)).unwrap();
        assert_eq!(v.suppress_lists(&tenant("u")).unwrap(), Vec::new());
        assert_eq!(v.suppress_drop(&tenant("t"), "dnc").unwrap(), 3);
        assert!(!listed(&v, "+447400000001"));
        assert!(listed(&v, "+447400000011"));
        assert!(matches!(
            v.suppress_drop(&tenant("t"), "dnc"),
            Err(VaultError::NoSuchList)
        ));
    }
}
