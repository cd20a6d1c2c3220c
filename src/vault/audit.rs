//! The vault's side of the audit chain ([`crate::audit`]): where the chain's current
//! key and head live, how every operation's entry joins a link, and group commit.
//!
//! The chain state (the current key K_i, the next sequence number, the head, and where
//! the live log starts after archives) is one row of the `meta` tree, sealed with
//! AES-256-GCM under a key derived from the root key, so a reader of the disk cannot
//! take K_i. Every link is written in the same store batch as the state row that
//! follows it, guarded by the state row it replaces: appends are serialized even when
//! several processes share one store.
//!
//! A write operation's entry goes into the batch of the write itself, so the change and
//! its audit entry are atomic. A read's entry waits in `pending` and joins the next
//! link any caller commits; when the read may answer is the durability mode
//! ([`AuditSync`]): once a flush has made that link durable (`Always`; concurrent
//! callers share one flush, group commit), once the entry is written to the audit
//! journal ([`super::journal`], `Process`), or at once (`Lag`). If an entry cannot be
//! written, the operation fails: there is no unaudited access.
//!
//! K0, the key the auditors verify with, is kept only until `audit key export` hands
//! it out; from then on the vault holds nothing that can re-sign past links.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bincode::{Decode, Encode};
use phonevault_keys::{AuditKey, AuditReadKey, DataKey, VaultId};
use zeroize::{Zeroize, Zeroizing};

use super::journal::{self, Journal, JournalError};
use super::layout::{JOURNAL_ROW, K0_ROW, STATE_ROW};
use super::{Vault, VaultError};

/// Attempts of an append that lost the chain's head to another server.
const APPEND_ATTEMPTS: u32 = 32;
use crate::audit::{self, Actor, Checkpoint, Entry, Outcome};
use crate::policy::TenantName;
use crate::store::{Batch, Store, StoreError, Tree};

/// A journal past this size is folded, the store flushed, and a new one started.
const ROTATE_BYTES: u64 = 64 << 20;
/// Entries folded into one link when a journal is recovered.
const FOLD_ENTRIES: usize = 5_000;
/// Pending entries that make a link at once, bounding memory between flushes.
const MAX_PENDING: usize = 10_000;

/// When a read's audit entry is safe enough for the read to answer (writes always
/// commit with their entry in one durable batch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditSync {
    /// Once the entry is on disk (the store flushed), the flush shared by every read
    /// waiting at that moment (group commit). Nothing acknowledged is lost to a
    /// process kill or a power loss.
    Always,
    /// Once the entry is written to the audit journal (one `write(2)`), which is
    /// synced at least every interval and folded into the chain. Nothing acknowledged
    /// is lost to a process kill; a power loss may lose the entries of the last
    /// interval. Needs a vault directory (the journal lives beside the store).
    Process(Duration),
    /// At once: entries wait in memory and are flushed every interval. A process kill
    /// or a power loss may lose the read entries of the last interval.
    Lag(Duration),
}

impl AuditSync {
    /// The default of `serve`: `Process` synced every 10 ms.
    pub const SERVER_DEFAULT: AuditSync = AuditSync::Process(Duration::from_millis(10));
}

const MODE_ALWAYS: u8 = 0;
const MODE_PROCESS: u8 = 1;
const MODE_LAG: u8 = 2;
/// AAD label of the sealed audit rows.
const STATE_LABEL: &[u8] = b"phonevault/v1/audit-state";
/// A link holds at most this many record ids, so it stays far below
/// [`audit::MAX_LINK_LEN`].
const MAX_IDS_PER_LINK: usize = 100_000;
/// An entry lists at most this many record ids; larger operations write several.
pub(crate) const MAX_IDS_PER_ENTRY: usize = 50_000;

#[derive(Encode, Decode)]
struct StateRow {
    key: [u8; 32],
    next_seq: u64,
    head: [u8; 32],
    start_seq: u64,
    start_head: [u8; 32],
}

impl Drop for StateRow {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

fn aad(vault: &VaultId, row: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [STATE_LABEL, &vault.0[..], row] {
        out.extend_from_slice(&(part.len() as u64).to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn bincode_cfg() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<256>()
}

fn seal_row(
    key: &DataKey,
    vault: &VaultId,
    row: &[u8],
    plain: &[u8],
) -> Result<Vec<u8>, VaultError> {
    Ok(key.seal(&aad(vault, row), plain)?)
}

/// The chain as this process knows it.
struct Chain {
    key: AuditKey,
    at: Checkpoint,
    start: Checkpoint,
    /// The stored state row, guarded by the next append.
    stored: Vec<u8>,
    /// Entries of reads and failed operations waiting for the next link.
    pending: Vec<Entry>,
    /// The journal position (generation, records) the chain will cover once the
    /// pending entries are in it.
    journal_at: Option<([u8; 16], u64)>,
    /// The journal mark as stored.
    mark: Option<([u8; 16], u64)>,
}

/// What a read of `AuditSync::Process` touches: the journal, and the entries written to
/// it since the last fold (in `AuditSync::Lag`, no journal: the entries waiting for the
/// next flush). It has its own lock, so that a read waits for no fold's commit, only
/// for other reads' appends (one combined seal-and-write, see [`JournalQueue`]). Lock
/// order: [`AuditLog::chain`] before this, never the other way.
#[derive(Default)]
struct Journaled {
    /// The journal reads are written to (`AuditSync::Process`).
    journal: Option<Journal>,
    /// Entries in the journal (or, without one, in memory) and in no link yet, oldest
    /// first.
    pending: Vec<Entry>,
}

/// Moves the journaled entries to the chain's pending ones (after them: the order of
/// the log is the order of the answers), with the journal position they reach.
fn drain(chain: &mut Chain, j: &mut Journaled) {
    if let Some(journal) = &j.journal {
        chain.journal_at = Some((journal.gen(), journal.count()));
    }
    chain.pending.append(&mut j.pending);
}

/// Reads waiting for their journal record (`AuditSync::Process`). A read queues its
/// encoded entries here (a lock held for a push), then either finds the journal free
/// and writes every queued record with one `write(2)` (it combines), or spins until
/// the reader that does has written its own. Two workers sharing one journal then
/// neither sleep on its lock nor pay one `write(2)` each.
#[derive(Default)]
struct JournalQueue {
    items: Vec<Queued>,
}

struct Queued {
    encoded: Vec<u8>,
    entries: Vec<Entry>,
    done: Arc<Written>,
}

/// Whether a queued record is in the journal.
#[derive(Debug, Default)]
struct Written {
    /// `QUEUED`, `WRITTEN`, `FAILED` or `NO_JOURNAL`.
    state: AtomicU8,
    /// What failed, for `FAILED` (an I/O error: a path and the OS's message).
    error: std::sync::OnceLock<(std::io::ErrorKind, String)>,
    /// The entries, handed back for `NO_JOURNAL`.
    back: Mutex<Vec<Entry>>,
}

impl Written {
    fn take_back(&self) -> Vec<Entry> {
        std::mem::take(&mut *lock(&self.back))
    }
}

const QUEUED: u8 = 0;
const WRITTEN: u8 = 1;
const FAILED: u8 = 2;
const NO_JOURNAL: u8 = 3;
/// Turns a read waits for the combining reader before it blocks on the journal's lock
/// (a combined write takes a few microseconds; a futex sleep and wake-up cost more).
const SPINS: u32 = 2_000;

/// What the reads of a [`Vault::deferring`] handle left for its caller to wait for
/// before it answers ([`Vault::audit_settled`]).
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    /// The link they need durable (`AuditSync::Always`), 0 for none.
    ticket: AtomicU64,
    /// Their queued journal records (`AuditSync::Process`), not waited for yet.
    queued: Mutex<Vec<Arc<Written>>>,
}

#[derive(Default)]
struct Sync {
    /// Links below this sequence number are durable.
    durable: u64,
    flushing: bool,
}

/// The audit log of an open vault.
pub(crate) struct AuditLog {
    state_key: DataKey,
    /// Seals the entries of links and journal records.
    read_key: AuditReadKey,
    vault: VaultId,
    chain: Mutex<Chain>,
    journaled: Mutex<Journaled>,
    /// Reads waiting for their journal record (see [`JournalQueue`]).
    queue: Mutex<JournalQueue>,
    sync: Mutex<Sync>,
    flushed: Condvar,
    /// The [`AuditSync`] mode (`MODE_*`) and its interval in milliseconds.
    mode: AtomicU8,
    interval_ms: AtomicU64,
    flusher: AtomicBool,
    /// The background flusher failed: reads are refused until a flush succeeds.
    broken: AtomicBool,
    /// Where the journal lives (the vault directory; empty for a vault in memory).
    dir: PathBuf,
    /// (links durable, failed flushes so far), for callers that wait asynchronously.
    synced: tokio::sync::watch::Sender<(u64, u64)>,
    /// A flush for asynchronous waiters is running.
    leader: AtomicBool,
    /// Counters for the server's metrics.
    stats: AuditCounters,
}

/// What the audit log has done since it was opened (for metrics; never an entry's content).
#[derive(Debug, Default)]
struct AuditCounters {
    links: AtomicU64,
    entries: AtomicU64,
    syncs: AtomicU64,
    sync_nanos: AtomicU64,
    journal_writes: AtomicU64,
    journal_records: AtomicU64,
}

impl AuditCounters {
    fn timed<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = std::time::Instant::now();
        let out = f();
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.sync_nanos.fetch_add(nanos, Ordering::Relaxed);
        out
    }
}

/// A snapshot of the audit log's counters, for the server's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AuditStats {
    /// Chain links committed (each a group of entries).
    pub links: u64,
    /// Entries in those links.
    pub entries: u64,
    /// Syncs to disk (store flushes for `always`, journal fdatasyncs for `process`).
    pub syncs: u64,
    /// Seconds spent in them.
    pub sync_seconds: f64,
    /// Entries answered for but not yet in a stored link (journal or memory).
    pub pending: u64,
    /// `write(2)`s to the journal (`process`), each of one or more records.
    pub journal_writes: u64,
    /// Records in those writes (one per read answered).
    pub journal_records: u64,
}

/// Where the live chain stands, for `audit checkpoint` and `audit verify`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainStatus {
    /// The first link still in the store (links before it were archived).
    pub start: Checkpoint,
    /// The end of the chain.
    pub end: Checkpoint,
}

/// The stored journal mark: which records of which journal are in the chain.
fn read_mark(
    store: &dyn Store,
    key: &DataKey,
    vault: &VaultId,
) -> Result<Option<([u8; 16], u64)>, VaultError> {
    let Some(stored) = store.get(Tree::Meta, JOURNAL_ROW)? else {
        return Ok(None);
    };
    let plain = key
        .open(&aad(vault, JOURNAL_ROW), &stored)
        .map_err(|_| VaultError::RowTampered("audit journal mark"))?;
    if plain.len() != 24 {
        return Err(VaultError::RowTampered("audit journal mark"));
    }
    let mut gen = [0u8; 16];
    gen.copy_from_slice(&plain[..16]);
    let mut n = [0u8; 8];
    n.copy_from_slice(&plain[16..]);
    Ok(Some((gen, u64::from_le_bytes(n))))
}

/// Where the chain of a sealed state row (of a backup made before backups left it
/// out) started. `None` when it does not open.
pub(crate) fn state_row_start(key: &DataKey, vault: &VaultId, sealed: &[u8]) -> Option<Checkpoint> {
    let plain = key.open(&aad(vault, STATE_ROW), sealed).ok()?;
    let (s, used): (StateRow, usize) = bincode::decode_from_slice(&plain, bincode_cfg()).ok()?;
    (used == plain.len()).then_some(Checkpoint {
        next_seq: s.start_seq,
        head: s.start_head,
    })
}

/// The record rows `batch` stores or deletes, with the digest of each stored
/// ciphertext, in batch order.
fn record_writes(batch: &Batch) -> Vec<audit::RowWrite> {
    batch
        .ops
        .iter()
        .filter_map(|op| match op {
            crate::store::Op::Put {
                tree: Tree::Records,
                key,
                value,
            } => Some(audit::RowWrite {
                key: key.clone(),
                digest: Some(audit::row_digest(value)),
            }),
            crate::store::Op::Delete {
                tree: Tree::Records,
                key,
            } => Some(audit::RowWrite {
                key: key.clone(),
                digest: None,
            }),
            _ => None,
        })
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn seq_key(seq: u64) -> Vec<u8> {
    seq.to_be_bytes().to_vec()
}

impl AuditLog {
    /// The rows of a new vault's empty chain: its state under a fresh K0, and K0
    /// itself, kept for `audit key export`.
    pub(crate) fn genesis(
        key: &DataKey,
        vault: &VaultId,
        batch: &mut Batch,
    ) -> Result<(), VaultError> {
        let k0 = AuditKey::generate();
        let state = StateRow {
            key: *k0.expose_secret(),
            next_seq: 0,
            head: [0; 32],
            start_seq: 0,
            start_head: [0; 32],
        };
        let plain = Zeroizing::new(
            bincode::encode_to_vec(&state, bincode_cfg())
                .map_err(|_| VaultError::RowTampered("audit"))?,
        );
        batch.put(
            Tree::Meta,
            STATE_ROW.to_vec(),
            seal_row(key, vault, STATE_ROW, &plain)?,
        );
        batch.put(
            Tree::Meta,
            K0_ROW.to_vec(),
            seal_row(key, vault, K0_ROW, k0.expose_secret())?,
        );
        Ok(())
    }

    /// Loads the chain state of an open vault.
    pub(crate) fn load(
        store: &dyn Store,
        state_key: DataKey,
        read_key: AuditReadKey,
        vault: &VaultId,
        dir: &Path,
    ) -> Result<AuditLog, VaultError> {
        let mut chain = Self::read_chain(store, &state_key, vault)?;
        chain.mark = read_mark(store, &state_key, vault)?;
        let durable = chain.at.next_seq;
        Ok(AuditLog {
            state_key,
            read_key,
            vault: *vault,
            chain: Mutex::new(chain),
            journaled: Mutex::new(Journaled::default()),
            queue: Mutex::new(JournalQueue::default()),
            sync: Mutex::new(Sync {
                durable,
                flushing: false,
            }),
            flushed: Condvar::new(),
            mode: AtomicU8::new(MODE_ALWAYS),
            interval_ms: AtomicU64::new(0),
            flusher: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            dir: dir.to_owned(),
            synced: tokio::sync::watch::Sender::new((durable, 0)),
            leader: AtomicBool::new(false),
            stats: AuditCounters::default(),
        })
    }

    /// Folds the complete records of a journal left by a process that stopped before
    /// folding them (killed, or the machine lost power) into the chain, flushes, and
    /// removes the journal. A journal held by a live process (another server on this
    /// directory) is left to it.
    ///
    /// # Errors
    /// [`JournalError::Tampered`] when the journal does not verify: the vault does not
    /// open over a journal whose entries cannot be trusted.
    pub(crate) fn recover(&self, store: &dyn Store) -> Result<(), VaultError> {
        if self.dir.as_os_str().is_empty() {
            return Ok(());
        }
        let (file, parsed) = match journal::read(&self.dir, &self.state_key, &self.vault) {
            Ok(Some(found)) => found,
            Ok(None) | Err(JournalError::Busy(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut chain = lock(&self.chain);
        let total = parsed.records.len() as u64;
        let mut next = match chain.mark {
            Some((gen, n)) if gen == parsed.gen => n.min(total),
            _ => 0,
        };
        while next < total {
            let mut entries = Vec::new();
            while next < total && entries.len() < FOLD_ENTRIES {
                let body = &parsed.records[next as usize];
                let decoded = journal::open_body(&self.read_key, &parsed, body)
                    .and_then(|plain| audit::decode_entries(&plain))
                    .ok_or_else(|| JournalError::Tampered {
                        path: self.dir.join(journal::JOURNAL_FILE),
                        record: next,
                    })?;
                entries.extend(decoded);
                next += 1;
            }
            chain.journal_at = Some((parsed.gen, next));
            self.commit_link(store, &mut chain, &mut Batch::default(), &entries)?;
        }
        chain.journal_at = None;
        drop(chain);
        store.flush()?;
        // Every record is in the flushed chain now: the file can go. (Were its
        // removal lost, the mark says there is nothing left to fold.)
        let path = self.dir.join(journal::JOURNAL_FILE);
        std::fs::remove_file(&path).map_err(|source| JournalError::Io { path, source })?;
        drop(file);
        Ok(())
    }

    fn mode(&self) -> u8 {
        self.mode.load(Ordering::Relaxed)
    }

    /// One round of the background task in `Process` mode: sync the journal, fold
    /// what it holds into the chain, and start a new journal when it is large.
    fn journal_tick(&self, store: &dyn Store) {
        self.write_leftovers(store);
        let file = lock(&self.journaled).journal.as_ref().map(Journal::file);
        if let Some(f) = file {
            if let Err(e) = self.stats.timed(|| journal::sync(&f)) {
                tracing::warn!(
                    "phonevault: syncing the audit journal failed ({}): a power loss may lose more read entries than --audit-sync-ms",
                    e.kind()
                );
            }
        }
        if let Err(e) = self.commit_pending(store) {
            tracing::warn!(
                "phonevault: folding the audit journal into the chain failed ({}); its entries stay in the journal",
                e.code()
            );
        }
        let mut chain = lock(&self.chain);
        let mut journaled = lock(&self.journaled);
        if journaled
            .journal
            .as_ref()
            .is_some_and(|j| j.len() > ROTATE_BYTES)
        {
            if let Err(e) = self.rotate(store, &mut chain, &mut journaled) {
                tracing::warn!(
                    "phonevault: starting a new audit journal failed ({}); the current one grows",
                    e.code()
                );
            }
        }
    }

    /// Folds everything, flushes the store, and replaces the journal with a new one
    /// (holding the journal throughout: no read may land in a file being replaced).
    fn rotate(
        &self,
        store: &dyn Store,
        chain: &mut Chain,
        journaled: &mut Journaled,
    ) -> Result<(), VaultError> {
        drain(chain, journaled);
        if !chain.pending.is_empty() {
            self.commit_link(store, chain, &mut Batch::default(), &[])?;
        }
        store.flush()?;
        let fresh = Journal::create(&self.dir, &self.state_key, &self.vault)?;
        chain.journal_at = Some((fresh.gen(), 0));
        // The old file was renamed over: dropping it closes it, nothing else.
        journaled.journal = Some(fresh);
        Ok(())
    }

    /// Starts writing reads to a journal (none yet), or stops (folds it in, flushes
    /// and removes it).
    fn use_journal(&self, store: &dyn Store, on: bool) -> Result<(), VaultError> {
        let mut chain = lock(&self.chain);
        let mut journaled = lock(&self.journaled);
        if on == journaled.journal.is_some() {
            return Ok(());
        }
        if on {
            if self.dir.as_os_str().is_empty() {
                return Err(VaultError::InvalidArgument(
                    "--audit-sync process needs a vault directory for its journal".into(),
                ));
            }
            if journal::held_elsewhere(&self.dir)? {
                return Err(JournalError::Busy(self.dir.join(journal::JOURNAL_FILE)).into());
            }
            let j = Journal::create(&self.dir, &self.state_key, &self.vault)?;
            chain.journal_at = Some((j.gen(), 0));
            journaled.journal = Some(j);
            return Ok(());
        }
        drain(&mut chain, &mut journaled);
        if !chain.pending.is_empty() {
            self.commit_link(store, &mut chain, &mut Batch::default(), &[])?;
        }
        store.flush()?;
        if let Some(j) = journaled.journal.take() {
            j.remove()?;
        }
        chain.journal_at = None;
        Ok(())
    }

    /// The ticket that covers every entry so far, pending ones included.
    fn ticket_all(&self) -> u64 {
        let chain = lock(&self.chain);
        let journaled = lock(&self.journaled);
        chain.at.next_seq + u64::from(!chain.pending.is_empty() || !journaled.pending.is_empty())
    }

    /// Writes the records still queued (a deferring reader whose request was dropped
    /// before it waited for its own): to the journal, or, when there is none any more,
    /// to the chain's pending entries. Its entry is logged even if it never answered.
    fn write_leftovers(&self, store: &dyn Store) {
        let full = {
            let mut chain = lock(&self.chain);
            let mut journaled = lock(&self.journaled);
            let mut queue = lock(&self.queue);
            if journaled.journal.is_none() {
                for item in std::mem::take(&mut queue.items) {
                    chain.pending.extend(item.entries);
                    // Its owner finds nothing handed back: its entries are already
                    // pending, and it waits for them as without a journal.
                    item.done.state.store(NO_JOURNAL, Ordering::Release);
                }
                false
            } else {
                self.write_queued(&mut journaled, &mut queue.items)
            }
        };
        if full {
            if let Err(e) = self.commit_pending(store) {
                tracing::warn!(
                    "phonevault: folding the audit journal into the chain failed ({}); its entries stay in the journal",
                    e.code()
                );
            }
        }
    }

    /// Makes every entry so far durable, once more, when the vault closes.
    pub(crate) fn close(&self, store: &dyn Store) {
        self.write_leftovers(store);
        if self.wait_durable(store, self.ticket_all()).is_err() {
            tracing::warn!("phonevault: the last audit entries could not be flushed at close");
            // The journal keeps them for the next open.
            return;
        }
        let chain = lock(&self.chain);
        let mut journaled = lock(&self.journaled);
        if chain.pending.is_empty() && journaled.pending.is_empty() {
            if let Some(j) = journaled.journal.take() {
                if j.remove().is_err() {
                    tracing::warn!("phonevault: the audit journal could not be removed at close; the next open finds it folded");
                }
            }
        }
    }

    fn read_chain(store: &dyn Store, key: &DataKey, vault: &VaultId) -> Result<Chain, VaultError> {
        let stored = store
            .get(Tree::Meta, STATE_ROW)?
            .ok_or(VaultError::RowTampered("audit"))?;
        let plain = key
            .open(&aad(vault, STATE_ROW), &stored)
            .map_err(|_| VaultError::RowTampered("audit"))?;
        let (s, used): (StateRow, usize) = bincode::decode_from_slice(&plain, bincode_cfg())
            .map_err(|_| VaultError::RowTampered("audit"))?;
        if used != plain.len() {
            return Err(VaultError::RowTampered("audit"));
        }
        Ok(Chain {
            key: AuditKey::from_bytes(&s.key),
            at: Checkpoint {
                next_seq: s.next_seq,
                head: s.head,
            },
            start: Checkpoint {
                next_seq: s.start_seq,
                head: s.start_head,
            },
            stored,
            pending: Vec::new(),
            journal_at: None,
            mark: None,
        })
    }

    fn sealed_state(
        &self,
        key: &AuditKey,
        at: Checkpoint,
        start: Checkpoint,
    ) -> Result<Vec<u8>, VaultError> {
        let state = StateRow {
            key: *key.expose_secret(),
            next_seq: at.next_seq,
            head: at.head,
            start_seq: start.next_seq,
            start_head: start.head,
        };
        let plain = Zeroizing::new(
            bincode::encode_to_vec(&state, bincode_cfg())
                .map_err(|_| VaultError::RowTampered("audit"))?,
        );
        seal_row(&self.state_key, &self.vault, STATE_ROW, &plain)
    }

    /// Waits until the queued record `done` is in the journal (`Ok(true)`), writing
    /// the queue itself whenever the journal is free; `Ok(false)` when there is no
    /// journal (the entries are handed back in `done`).
    fn await_journaled(&self, store: &dyn Store, done: &Written) -> Result<bool, VaultError> {
        let mut turns = 0u32;
        loop {
            match done.state.load(Ordering::Acquire) {
                WRITTEN => return Ok(true),
                NO_JOURNAL => return Ok(false),
                FAILED => {
                    let (kind, msg) = done
                        .error
                        .get()
                        .cloned()
                        .unwrap_or((std::io::ErrorKind::Other, String::new()));
                    return Err(JournalError::Io {
                        path: self.dir.join(journal::JOURNAL_FILE),
                        source: std::io::Error::new(kind, msg),
                    }
                    .into());
                }
                _ => {}
            }
            let journaled = if turns < SPINS {
                match self.journaled.try_lock() {
                    Ok(g) => Some(g),
                    Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                    Err(std::sync::TryLockError::WouldBlock) => None,
                }
            } else {
                Some(lock(&self.journaled))
            };
            let Some(mut journaled) = journaled else {
                turns += 1;
                if turns % 64 == 0 {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
                continue;
            };
            // Holding the journal, no other reader is writing: a record not written
            // yet is still in the queue.
            if done.state.load(Ordering::Acquire) != QUEUED {
                continue;
            }
            let full = self.write_queued(&mut journaled, &mut lock(&self.queue).items);
            drop(journaled);
            if full {
                // Bounded memory when folds fall behind (the entries are safe in the
                // journal already).
                self.commit_pending(store)?;
            }
        }
    }

    /// Writes every queued record to the journal with one `write(2)` and marks each
    /// (written, failed, or no journal). Returns whether the journaled entries reach
    /// [`MAX_PENDING`].
    fn write_queued(&self, journaled: &mut Journaled, queue: &mut Vec<Queued>) -> bool {
        let items = std::mem::take(queue);
        let Some(j) = journaled.journal.as_mut() else {
            for item in items {
                *lock(&item.done.back) = item.entries;
                item.done.state.store(NO_JOURNAL, Ordering::Release);
            }
            return false;
        };
        let plains: Vec<&[u8]> = items.iter().map(|i| i.encoded.as_slice()).collect();
        match j.append_all(&plains) {
            Ok(()) => {
                self.stats.journal_writes.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .journal_records
                    .fetch_add(items.len() as u64, Ordering::Relaxed);
                for item in items {
                    journaled.pending.extend(item.entries);
                    item.done.state.store(WRITTEN, Ordering::Release);
                }
            }
            Err(e) => {
                let why = match &e {
                    JournalError::Io { source, .. } => (source.kind(), source.to_string()),
                    other => (std::io::ErrorKind::Other, other.to_string()),
                };
                for item in items {
                    let _ = item.done.error.set(why.clone());
                    item.done.state.store(FAILED, Ordering::Release);
                }
            }
        }
        journaled.pending.len() >= MAX_PENDING
    }

    /// [`AuditLog::commit_link`] after the journaled entries (which come first).
    fn commit_link_all(
        &self,
        store: &dyn Store,
        chain: &mut Chain,
        batch: &mut Batch,
        entries: &[Entry],
    ) -> Result<u64, VaultError> {
        drain(chain, &mut lock(&self.journaled));
        self.commit_link(store, chain, batch, entries)
    }

    /// Adds a link of `entries` (after the pending ones) to `batch` and commits it.
    /// Returns the sequence number the link must be durable up to.
    fn commit_link(
        &self,
        store: &dyn Store,
        chain: &mut Chain,
        batch: &mut Batch,
        entries: &[Entry],
    ) -> Result<u64, VaultError> {
        let ids = |es: &[Entry]| es.iter().map(|e| e.records.len()).sum::<usize>();
        if !chain.pending.is_empty() && ids(&chain.pending) + ids(entries) > MAX_IDS_PER_LINK {
            // Too much for one link: the pending entries get a link of their own first.
            self.commit_link(store, chain, &mut Batch::default(), &[])?;
        }
        let mut all = std::mem::take(&mut chain.pending);
        let n_pending = all.len();
        all.extend_from_slice(entries);
        // What the batch does to record rows goes into its first entry: `check` holds
        // every stored record against its last audited write.
        let writes = record_writes(batch);
        if !writes.is_empty() {
            match all.get_mut(n_pending) {
                Some(first) => first.writes = writes,
                None => all.push(Entry {
                    time: crate::vault::now(),
                    actor: Actor::System,
                    tenant: None,
                    action: "write".into(),
                    records: Vec::new(),
                    purpose: None,
                    reveal: false,
                    outcome: Outcome::Ok,
                    writes,
                }),
            }
        }
        // Servers sharing one database append to one chain: when another one appended
        // since our last link (the state row moved; `try_commit` has read the new head),
        // the same batch goes again on the new head. When our own guards failed, the
        // state row has not moved and the conflict is the caller's.
        let mut attempt = 1;
        let result = loop {
            let before = chain.stored.clone();
            let mut b = batch.clone();
            match self.try_commit(store, chain, &mut b, &all) {
                Err(VaultError::Store(StoreError::Conflict))
                    if chain.stored != before && attempt < APPEND_ATTEMPTS =>
                {
                    attempt += 1;
                }
                other => {
                    if other.is_ok() {
                        *batch = b;
                        self.stats.links.fetch_add(1, Ordering::Relaxed);
                        self.stats
                            .entries
                            .fetch_add(all.len() as u64, Ordering::Relaxed);
                    }
                    break other;
                }
            }
        };
        if result.is_err() {
            // The link was not written: the pending entries wait for the next one.
            all.truncate(n_pending);
            all.append(&mut chain.pending);
            chain.pending = all;
        }
        result
    }

    fn try_commit(
        &self,
        store: &dyn Store,
        chain: &mut Chain,
        batch: &mut Batch,
        entries: &[Entry],
    ) -> Result<u64, VaultError> {
        let mut key = AuditKey::from_bytes(chain.key.expose_secret());
        let mut at = chain.at;
        let seq = at.next_seq;
        let link =
            audit::append(&mut at, &mut key, &self.read_key, entries).map_err(VaultError::Audit)?;
        let state = self.sealed_state(&key, at, chain.start)?;
        batch.guard(Tree::Meta, STATE_ROW.to_vec(), Some(chain.stored.clone()));
        batch.guard(Tree::Audit, seq_key(seq), None);
        batch.put(Tree::Audit, seq_key(seq), link);
        batch.put(Tree::Meta, STATE_ROW.to_vec(), state.clone());
        let mark = chain.journal_at.filter(|j| chain.mark != Some(*j));
        if let Some((gen, n)) = mark {
            // The journal records these entries came from are in the chain with them.
            let mut plain = gen.to_vec();
            plain.extend_from_slice(&n.to_le_bytes());
            batch.put(
                Tree::Meta,
                JOURNAL_ROW.to_vec(),
                seal_row(&self.state_key, &self.vault, JOURNAL_ROW, &plain)?,
            );
        }
        match store.commit(batch) {
            Ok(()) => {
                chain.key = key;
                chain.at = at;
                chain.stored = state;
                if mark.is_some() {
                    chain.mark = mark;
                }
                Ok(at.next_seq)
            }
            Err(StoreError::Conflict) => {
                // Another process sharing the store appended: take its state, and let
                // the caller retry.
                if let Ok(fresh) = Self::read_chain(store, &self.state_key, &self.vault) {
                    chain.key = fresh.key;
                    chain.at = fresh.at;
                    chain.start = fresh.start;
                    chain.stored = fresh.stored;
                }
                Err(StoreError::Conflict.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Commits the pending entries, if any, as one link.
    fn commit_pending(&self, store: &dyn Store) -> Result<u64, VaultError> {
        let mut chain = lock(&self.chain);
        drain(&mut chain, &mut lock(&self.journaled));
        if !chain.pending.is_empty() {
            let mut tries = 0;
            loop {
                match self.commit_link(store, &mut chain, &mut Batch::default(), &[]) {
                    Err(VaultError::Store(StoreError::Conflict)) if tries < 8 => tries += 1,
                    other => {
                        other?;
                        break;
                    }
                }
            }
        }
        Ok(chain.at.next_seq)
    }

    /// Returns once every link below `ticket` is durable, flushing (for every waiting
    /// caller at once) when no other caller is.
    fn wait_durable(&self, store: &dyn Store, ticket: u64) -> Result<(), VaultError> {
        let mut s = lock(&self.sync);
        loop {
            if s.durable >= ticket {
                return Ok(());
            }
            if s.flushing {
                s = self.flushed.wait(s).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            s.flushing = true;
            drop(s);
            let result = self.commit_pending(store).and_then(|upto| {
                self.stats
                    .timed(|| store.flush())
                    .map(|()| upto)
                    .map_err(VaultError::from)
            });
            s = lock(&self.sync);
            s.flushing = false;
            self.flushed.notify_all();
            self.broken.store(result.is_err(), Ordering::SeqCst);
            match result {
                Ok(upto) => {
                    s.durable = s.durable.max(upto);
                    let durable = s.durable;
                    self.synced.send_modify(|v| v.0 = v.0.max(durable));
                }
                Err(e) => {
                    self.synced.send_modify(|v| v.1 += 1);
                    return Err(e);
                }
            }
        }
    }

    fn stats(&self) -> AuditStats {
        let c = &self.stats;
        AuditStats {
            links: c.links.load(Ordering::Relaxed),
            entries: c.entries.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            sync_seconds: c.sync_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            pending: (lock(&self.chain).pending.len() + lock(&self.journaled).pending.len()) as u64,
            journal_writes: c.journal_writes.load(Ordering::Relaxed),
            journal_records: c.journal_records.load(Ordering::Relaxed),
        }
    }

    fn status(&self) -> ChainStatus {
        let chain = lock(&self.chain);
        ChainStatus {
            start: chain.start,
            end: chain.at,
        }
    }
}

/// What the audit log records for a purpose that the tenant did not declare (not a
/// valid purpose name, so it cannot be mistaken for one).
pub(crate) const UNDECLARED_PURPOSE: &str = "(undeclared)";

/// An operation being audited: filled in as it learns what it touches.
#[derive(Debug)]
pub(crate) struct Event {
    action: &'static str,
    tenant: Option<String>,
    purpose: Option<String>,
    /// Record ids touched.
    pub(crate) records: Vec<[u8; 16]>,
    /// The operation was refused by policy (no consent, opted out, expired).
    pub(crate) refused: bool,
    /// Its entry is in the chain already (committed with the write).
    logged: bool,
    /// The link its write must be durable up to before the operation returns.
    ticket: Option<u64>,
}

impl Event {
    pub(crate) fn touch(&mut self, id: &crate::record::RecordId) {
        self.records.push(id.0);
    }
}

impl Vault {
    /// Starts the audit entry of an operation.
    pub(crate) fn event(
        &self,
        action: &'static str,
        tenant: Option<&str>,
        purpose: Option<&str>,
    ) -> Event {
        Event {
            action,
            tenant: tenant.map(str::to_owned),
            purpose: purpose.map(str::to_owned),
            records: Vec::new(),
            refused: false,
            logged: false,
            ticket: None,
        }
    }

    fn entries(&self, ev: &Event, outcome: Outcome) -> Vec<Entry> {
        let time = self.now();
        let one = |records: &[[u8; 16]]| Entry {
            time,
            actor: self.who.actor.clone(),
            tenant: ev.tenant.clone(),
            action: ev.action.to_owned(),
            records: records.to_vec(),
            purpose: ev.purpose.clone(),
            reveal: self.who.reveal && matches!(outcome, Outcome::Ok) && !ev.records.is_empty(),
            outcome: outcome.clone(),
            writes: Vec::new(),
        };
        if ev.records.is_empty() {
            vec![one(&[])]
        } else {
            ev.records.chunks(MAX_IDS_PER_ENTRY).map(one).collect()
        }
    }

    /// Runs an operation as one audited event: `f` notes what it touches in the event;
    /// its outcome is logged (unless it went in with a write) before the result is
    /// returned.
    pub(crate) fn audited<T>(
        &self,
        action: &'static str,
        tenant: Option<&str>,
        purpose: Option<&str>,
        f: impl FnOnce(&mut Event) -> Result<T, VaultError>,
    ) -> Result<T, VaultError> {
        let mut ev = self.event(action, tenant, purpose);
        let result = f(&mut ev);
        self.conclude(ev, result)
    }

    /// Commits a write's batch with its audit entry in the same batch. The operation
    /// returns once that is durable: [`Vault::conclude`] waits for it after the
    /// operation released its locks, so concurrent writes share one flush (group
    /// commit).
    pub(crate) fn commit_audited(
        &self,
        batch: &mut Batch,
        ev: &mut Event,
    ) -> Result<(), VaultError> {
        let ticket = self.commit_audited_nowait(batch, ev)?;
        ev.ticket = Some(ticket);
        Ok(())
    }

    /// As [`Vault::commit_audited`], without waiting for durability (import chunks,
    /// rewrap pages: the operation flushes once at its end).
    pub(crate) fn commit_audited_nowait(
        &self,
        batch: &mut Batch,
        ev: &mut Event,
    ) -> Result<u64, VaultError> {
        let entries = self.entries(ev, Outcome::Ok);
        let mut chain = lock(&self.audit.chain);
        let ticket =
            self.audit
                .commit_link_all(self.store.as_ref(), &mut chain, batch, &entries)?;
        ev.logged = true;
        ev.records.clear();
        Ok(ticket)
    }

    /// Makes everything committed so far durable (one shared flush).
    pub(crate) fn sync_audited(&self) -> Result<(), VaultError> {
        let ticket = self.audit.ticket_all();
        self.audit.wait_durable(self.store.as_ref(), ticket)
    }

    /// Ends an operation: unless its entry went in with its write, logs it with the
    /// outcome `result` gives and waits until it is durable. A result the log could not
    /// record is not returned: the caller gets the logging error instead.
    pub(crate) fn conclude<T>(
        &self,
        mut ev: Event,
        result: Result<T, VaultError>,
    ) -> Result<T, VaultError> {
        // A tenant or purpose the operation refused as unknown is whatever the caller
        // typed (a phone number in the wrong field): it is not stored.
        match &result {
            Err(VaultError::UnknownTenant(_) | VaultError::InvalidName { .. }) => {
                ev.tenant = None;
                ev.purpose = None;
            }
            Err(VaultError::UnknownPurpose { .. }) => {
                ev.purpose = Some(UNDECLARED_PURPOSE.to_owned());
            }
            _ => {}
        }
        if let Some(ticket) = ev.ticket {
            // The write and its entry are committed; the operation answers once both
            // are durable.
            self.audit.wait_durable(self.store.as_ref(), ticket)?;
        }
        if !self.who.audit {
            return result;
        }
        if ev.logged && ev.records.is_empty() && result.is_ok() {
            return result;
        }
        let outcome = match &result {
            Ok(_) if ev.refused => Outcome::Refused,
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Failed(e.code().to_owned()),
        };
        let logged = self.log_entries(self.entries(&ev, outcome));
        match (result, logged) {
            (Ok(v), Ok(())) => Ok(v),
            (Ok(_), Err(e)) => Err(VaultError::AuditUnavailable(Box::new(e))),
            (Err(e), _) => Err(e),
        }
    }

    /// Appends entries that belong to no write (reads, refusals, server events), and
    /// returns when the durability mode lets their operation answer (see
    /// [`AuditSync`]; a [`Vault::deferring`] handle leaves the wait of `Always` to its
    /// caller).
    pub(crate) fn log_entries(&self, entries: Vec<Entry>) -> Result<(), VaultError> {
        let mode = self.audit.mode();
        if mode == MODE_PROCESS {
            // Encoded before any lock: only the seal, the chained tag and the write
            // hold the journal (never a fold: that is the chain's lock).
            let encoded = audit::encode_entries(&entries)?;
            if !Journal::fits(encoded.len()) {
                return Err(JournalError::Io {
                    path: self.audit.dir.join(journal::JOURNAL_FILE),
                    source: std::io::Error::other("audit journal record out of bounds"),
                }
                .into());
            }
            let done = Arc::new(Written::default());
            lock(&self.audit.queue).items.push(Queued {
                encoded,
                entries,
                done: done.clone(),
            });
            if let Some(d) = &self.who.defer {
                // A store only this process opens: the caller waits for the write on
                // its async worker, after the other requests ready on that worker
                // queued theirs (one write(2) for all; see `audit_settled`).
                if !self.store.shared() {
                    lock(&d.queued).push(done);
                    return Ok(());
                }
            }
            match self.audit.await_journaled(self.store.as_ref(), &done)? {
                true => return Ok(()),
                // No journal (it could not be started, or was closed): strict.
                false => return self.log_handed_back(&done, mode),
            }
        }
        self.log_entries_unjournaled(entries, mode)
    }

    /// Logs the entries of a queued record that found no journal: those handed back
    /// in `done`, or, when [`AuditLog::write_leftovers`] moved them to the chain's
    /// pending entries already, waits for (or, deferring, notes) a link covering them.
    fn log_handed_back(&self, done: &Written, mode: u8) -> Result<(), VaultError> {
        let back = done.take_back();
        if !back.is_empty() {
            return self.log_entries_unjournaled(back, mode);
        }
        let ticket = self.audit.ticket_all();
        if let Some(d) = &self.who.defer {
            d.ticket.fetch_max(ticket, Ordering::SeqCst);
            return Ok(());
        }
        self.audit.wait_durable(self.store.as_ref(), ticket)
    }

    /// [`Vault::log_entries`] in `Always` or `Lag` mode, or in `Process` mode without a
    /// journal (strict then).
    fn log_entries_unjournaled(&self, entries: Vec<Entry>, mode: u8) -> Result<(), VaultError> {
        let lagged = mode == MODE_LAG;
        if lagged && self.audit.broken.load(Ordering::SeqCst) {
            return Err(VaultError::AuditUnavailable(Box::new(VaultError::Store(
                StoreError::Io(std::io::Error::other("the audit log could not be flushed")),
            ))));
        }
        if lagged {
            // Beside the journaled entries (there is no journal in this mode): under
            // their short lock, not the chain's, which a flush holds while it commits.
            let full = {
                let mut journaled = lock(&self.audit.journaled);
                journaled.pending.extend(entries);
                journaled.pending.len() >= MAX_PENDING
            };
            if full {
                // Bounded memory: a full batch becomes a link now (flushed later).
                self.audit.commit_pending(self.store.as_ref())?;
            }
            return Ok(());
        }
        let ticket = {
            let mut chain = lock(&self.audit.chain);
            chain.pending.extend(entries);
            chain.at.next_seq + 1
        };
        if let Some(d) = &self.who.defer {
            d.ticket.fetch_max(ticket, Ordering::SeqCst);
            return Ok(());
        }
        self.audit.wait_durable(self.store.as_ref(), ticket)
    }

    /// How long a read's audit entry may wait before it is durable: `None` is
    /// [`AuditSync::Always`], `Some(d)` is [`AuditSync::Lag`]`(d)`.
    pub fn set_read_audit_lag(&self, lag: Option<Duration>) {
        let mode = lag.map_or(AuditSync::Always, AuditSync::Lag);
        // Neither mode needs a journal, so neither can fail to start one.
        let _ = self.set_audit_sync(mode);
    }

    /// Chooses when a read's audit entry lets the read answer ([`AuditSync`]); writes
    /// always answer once they and their entry are durable. `Process` and `Lag` start
    /// a background thread that syncs and folds (or flushes) every interval (clamped
    /// to 1 ms ..= 60 s). If a background flush fails in `Lag` mode, reads are refused
    /// until one succeeds.
    ///
    /// # Errors
    /// `Process` on a vault without a directory, or when the journal cannot be
    /// started (another process holds it, I/O); the mode is then unchanged.
    pub fn set_audit_sync(&self, mode: AuditSync) -> Result<(), VaultError> {
        let (kind, every) = match mode {
            AuditSync::Always => (MODE_ALWAYS, Duration::ZERO),
            AuditSync::Process(d) => (MODE_PROCESS, d),
            AuditSync::Lag(d) => (MODE_LAG, d),
        };
        self.audit
            .use_journal(self.store.as_ref(), kind == MODE_PROCESS)?;
        let ms = every.as_millis().clamp(1, 60_000) as u64;
        self.audit.interval_ms.store(ms, Ordering::SeqCst);
        self.audit.mode.store(kind, Ordering::SeqCst);
        if kind == MODE_ALWAYS || self.audit.flusher.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let weak = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("audit-flusher".into())
            .spawn(move || loop {
                // The first round comes one interval after the mode was set, like every
                // later one (not at once, which a late-scheduled thread would make
                // "after the first reads").
                let ms = match weak.upgrade() {
                    Some(inner) => inner.audit.interval_ms.load(Ordering::SeqCst),
                    None => return,
                };
                std::thread::sleep(Duration::from_millis(ms));
                let Some(inner) = weak.upgrade() else { return };
                match inner.audit.mode() {
                    MODE_PROCESS => inner.audit.journal_tick(inner.store.as_ref()),
                    MODE_LAG => {
                        let ticket = inner.audit.ticket_all();
                        if let Err(e) = inner.audit.wait_durable(inner.store.as_ref(), ticket) {
                            tracing::warn!(
                                "phonevault: audit flush failed ({}); reads are refused until it succeeds",
                                e.code()
                            );
                        }
                    }
                    _ => {
                        inner.audit.flusher.store(false, Ordering::SeqCst);
                        return;
                    }
                }
                drop(inner);
            });
        if spawned.is_err() {
            // No thread: reads stay strict.
            self.audit.flusher.store(false, Ordering::SeqCst);
            self.audit.use_journal(self.store.as_ref(), false)?;
            self.audit.mode.store(MODE_ALWAYS, Ordering::SeqCst);
        }
        Ok(())
    }

    /// This handle, whose reads do not wait for their entry: in [`AuditSync::Always`]
    /// mode they note the link they need durable, and in [`AuditSync::Process`] mode
    /// (on a store only this process opens) they queue their journal record unwritten.
    /// The caller waits for both with [`Vault::audit_settled`] before it shows any
    /// result: asynchronously, sharing one flush, or one journal write, with every
    /// reader waiting then.
    ///
    /// # Security
    /// A result obtained through this handle must not be shown before that wait
    /// succeeded: until then its entry may not be durable, or not written at all.
    pub fn deferring(&self) -> Vault {
        let mut v = self.clone();
        v.who.defer = Some(Arc::new(Deferred::default()));
        v
    }

    /// The link the reads of a [`Vault::deferring`] handle need durable, if any.
    pub fn deferred_ticket(&self) -> Option<u64> {
        self.who
            .defer
            .as_ref()
            .map(|d| d.ticket.load(Ordering::SeqCst))
            .filter(|t| *t > 0)
    }

    /// Waits until the entries of the reads made through this [`Vault::deferring`]
    /// handle are as durable as the mode asks (at once for a handle that does not
    /// defer): their journal records written, then their link durable.
    ///
    /// The journal records are written from this task, not by another thread: it
    /// first yields once, so that the other requests its worker has ready run up to
    /// their own wait and queue their records, and the first of them to resume writes
    /// every queued record with one `write(2)` (the others find theirs written).
    ///
    /// # Errors
    /// [`VaultError::AuditUnavailable`] when the journal or a flush failed: the
    /// result must not be shown.
    pub async fn audit_settled(&self) -> Result<(), VaultError> {
        let Some(d) = &self.who.defer else {
            return Ok(());
        };
        let queued = std::mem::take(&mut *lock(&d.queued));
        if queued
            .iter()
            .any(|w| w.state.load(Ordering::Acquire) == QUEUED)
            && tokio::runtime::Handle::try_current().is_ok()
        {
            tokio::task::yield_now().await;
        }
        for done in &queued {
            let unavailable = |e| VaultError::AuditUnavailable(Box::new(e));
            if !self
                .audit
                .await_journaled(self.store.as_ref(), done)
                .map_err(unavailable)?
            {
                // No journal any more (closed, or switched off): strict, as
                // `log_entries` is then. This handle defers, so the link it needs is
                // noted and waited for below.
                self.log_handed_back(done, MODE_ALWAYS)
                    .map_err(unavailable)?;
            }
        }
        match self.deferred_ticket() {
            Some(ticket) => self.audit_synced(ticket).await,
            None => Ok(()),
        }
    }

    /// Waits until every link below `ticket` is durable, without holding a thread: one
    /// waiter at a time runs the flush on the blocking pool for everyone waiting.
    ///
    /// # Errors
    /// [`VaultError::AuditUnavailable`] when a flush failed meanwhile.
    pub async fn audit_synced(&self, ticket: u64) -> Result<(), VaultError> {
        let mut rx = self.audit.synced.subscribe();
        let failures_before = rx.borrow().1;
        loop {
            let (durable, failures) = *rx.borrow_and_update();
            if durable >= ticket {
                return Ok(());
            }
            if failures > failures_before {
                return Err(VaultError::AuditUnavailable(Box::new(VaultError::Store(
                    StoreError::Io(std::io::Error::other("the audit log could not be flushed")),
                ))));
            }
            if !self.audit.leader.swap(true, Ordering::SeqCst) {
                let inner = self.inner.clone();
                let run = move || {
                    let ticket = inner.audit.ticket_all();
                    // Its outcome reaches every waiter through `synced`.
                    let _ = inner.audit.wait_durable(inner.store.as_ref(), ticket);
                    inner.audit.leader.store(false, Ordering::SeqCst);
                    // Wake the waiters again: one not covered becomes the next leader.
                    inner.audit.synced.send_modify(|_| {});
                };
                if tokio::runtime::Handle::try_current().is_ok() {
                    drop(tokio::task::spawn_blocking(run));
                } else {
                    run();
                }
            }
            if rx.changed().await.is_err() {
                return Err(VaultError::AuditUnavailable(Box::new(VaultError::Store(
                    StoreError::Io(std::io::Error::other("the audit log closed")),
                ))));
            }
        }
    }

    /// A handle whose reads are not audited, for benchmarks that measure what the audit
    /// log costs. Never used by the CLI or the server.
    #[doc(hidden)]
    pub fn without_read_audit_for_benchmarks(mut self) -> Vault {
        self.who.audit = false;
        self
    }

    /// Records an event that happened outside the vault's own operations (failed
    /// authentication, refusals by the rate limit, seal and unseal) with the handle's
    /// actor.
    ///
    /// # Errors
    /// When the entry cannot be written.
    pub fn audit_event(
        &self,
        action: &'static str,
        tenant: Option<&str>,
        outcome: Outcome,
    ) -> Result<(), VaultError> {
        let ev = self.event(action, tenant, None);
        self.log_entries(self.entries(&ev, outcome))
    }

    /// An entry for `action` by this handle's actor, stamped now.
    pub fn entry_now(&self, action: &'static str, tenant: Option<&str>, outcome: Outcome) -> Entry {
        Entry {
            time: self.now(),
            actor: self.who.actor.clone(),
            tenant: tenant.map(str::to_owned),
            action: action.to_owned(),
            records: Vec::new(),
            purpose: None,
            reveal: false,
            outcome,
            writes: Vec::new(),
        }
    }

    /// Logs entries made while the vault could not (failed unseal attempts), then
    /// waits until they are durable.
    ///
    /// # Errors
    /// When they cannot be written.
    pub fn log_held(&self, entries: Vec<Entry>) -> Result<(), VaultError> {
        self.log_entries(entries)
    }

    /// The numbers of records named in an incident report, whatever their consents,
    /// for breach notification. Needs the unlocked vault (the holder of a passphrase);
    /// recorded as a reveal. Records erased since give `None`; so does a tenant that
    /// was shredded.
    ///
    /// # Errors
    /// Store and decryption errors.
    pub fn numbers_for_notification(
        &self,
        tenant: &TenantName,
        ids: &[crate::record::RecordId],
    ) -> Result<Vec<(crate::record::RecordId, Option<crate::phone::E164>)>, VaultError> {
        let tenant = tenant.as_str();
        let v = self.clone().revealing(true);
        v.audited("breach-notification", Some(tenant), None, |ev| {
            let ctx = match v.tenant(tenant) {
                Ok(c) => c,
                Err(VaultError::UnknownTenant(_)) => {
                    return Ok(ids.iter().map(|i| (*i, None)).collect());
                }
                Err(e) => return Err(e),
            };
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let found = v.open_record(&ctx, id)?;
                if found.is_some() {
                    ev.touch(id);
                }
                out.push((
                    *id,
                    found.map(|(_, body)| crate::phone::E164::from_trusted(body.e164.clone())),
                ));
            }
            Ok(out)
        })
    }

    /// The audit log's counters since the vault was opened (group sizes, syncs, what is
    /// not yet in a stored link), for metrics.
    pub fn audit_stats(&self) -> AuditStats {
        self.audit.stats()
    }

    /// Where the live chain starts and ends.
    pub fn audit_status(&self) -> ChainStatus {
        self.audit.status()
    }

    /// The stored links from `from` on, in order, at most `limit`.
    ///
    /// # Errors
    /// Store errors.
    pub fn audit_links(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, VaultError> {
        let rows = self.store.range(Tree::Audit, &seq_key(from), None, limit)?;
        rows.into_iter()
            .map(|(k, v)| {
                let seq = <[u8; 8]>::try_from(k.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| VaultError::RowTampered("audit"))?;
                Ok((seq, v))
            })
            .collect()
    }

    /// The key that opens the audit entries, for the audit commands of the unlocked
    /// vault (not audited: whoever unlocks the vault reads the records themselves).
    pub fn audit_read_key(&self) -> AuditReadKey {
        AuditReadKey::from_bytes(self.audit.read_key.expose_secret())
    }

    /// The read key alone, handed out to the auditors again (a vault whose K0 was
    /// exported before entries were sealed, or a new auditor); audited as
    /// `audit-read-key-export`.
    ///
    /// # Errors
    /// When the entry cannot be written.
    pub fn export_audit_read_key(&self) -> Result<AuditReadKey, VaultError> {
        self.audited("audit-read-key-export", None, None, |_| Ok(()))?;
        Ok(self.audit_read_key())
    }

    /// Hands out K0 once and forgets it: from then on only the auditors can verify,
    /// and nobody holding this vault can re-sign past links. The auditors also need
    /// the read key ([`Vault::audit_read_key`]) to read the entries; `audit key
    /// export` writes both.
    ///
    /// # Errors
    /// [`VaultError::AuditKeyGone`] when it was exported before.
    pub fn export_audit_key(&self) -> Result<AuditKey, VaultError> {
        let stored = self
            .store
            .get(Tree::Meta, K0_ROW)?
            .ok_or(VaultError::AuditKeyGone)?;
        let plain = self
            .audit
            .state_key
            .open(&aad(&self.audit.vault, K0_ROW), &stored)
            .map_err(|_| VaultError::RowTampered("audit"))?;
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::RowTampered("audit"))?;
        let k0 = AuditKey::from_bytes(&bytes);
        let mut b = Batch::default();
        b.guard(Tree::Meta, K0_ROW.to_vec(), Some(stored));
        b.delete(Tree::Meta, K0_ROW.to_vec());
        self.audited("audit-key-export", None, None, |ev| {
            self.commit_audited(&mut b, ev)
        })?;
        Ok(k0)
    }

    /// Moves the links whose entries are all before `before` (unix seconds) out of the
    /// store: `write` receives them in order (with the checkpoint they start after)
    /// and must make them durable before this returns; then they are deleted and the
    /// chain's start moves past them. Returns the checkpoint the live log now starts
    /// at, or `None` when nothing was old enough.
    ///
    /// # Errors
    /// Store errors, or what `write` returns (then nothing is deleted).
    pub fn archive_audit(
        &self,
        before: u64,
        write: impl FnOnce(Checkpoint, &[(u64, Vec<u8>)]) -> Result<(), VaultError>,
    ) -> Result<Option<Checkpoint>, VaultError> {
        let _w = self.write_guard();
        let status = self.audit_status();
        // Decide which links go, reading them with the verifier's decoder (no key
        // needed for the times; their MACs are checked by whoever verifies the file).
        let mut taken: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut end = status.start;
        let mut from = status.start.next_seq;
        'outer: loop {
            let page = self.audit_links(from, 1000)?;
            let Some(last) = page.last() else { break };
            from = last.0 + 1;
            for (seq, bytes) in page {
                // The last link stays: the live log must never be empty of its head.
                if seq + 1 >= status.end.next_seq {
                    break 'outer;
                }
                let Some((time, head)) = audit::link_time_and_head(&bytes, &self.audit.read_key)
                else {
                    return Err(VaultError::RowTampered("audit"));
                };
                if time >= before {
                    break 'outer;
                }
                end = Checkpoint {
                    next_seq: seq + 1,
                    head,
                };
                taken.push((seq, bytes));
            }
        }
        if taken.is_empty() {
            return Ok(None);
        }
        write(status.start, &taken)?;
        let mut chain = lock(&self.audit.chain);
        let mut b = Batch::default();
        for (seq, bytes) in &taken {
            b.guard(Tree::Audit, seq_key(*seq), Some(bytes.clone()));
            b.delete(Tree::Audit, seq_key(*seq));
        }
        chain.start = end;
        let entries = self.entries(&self.event("audit-archive", None, None), Outcome::Ok);
        let r = self
            .audit
            .commit_link_all(self.store.as_ref(), &mut chain, &mut b, &entries);
        if r.is_err() {
            chain.start = status.start;
        }
        let ticket = r?;
        drop(chain);
        self.audit.wait_durable(self.store.as_ref(), ticket)?;
        Ok(Some(end))
    }
}

/// The actor of a command-line user: the OS user running it, named from its real uid
/// (never from `$USER`, which the caller sets at will).
pub fn cli_actor() -> Actor {
    let uid = rustix::process::getuid().as_raw();
    let user = std::fs::read("/etc/passwd")
        .ok()
        .and_then(|b| passwd_name(&String::from_utf8_lossy(&b), uid))
        .unwrap_or_else(|| format!("uid-{uid}"));
    Actor::Cli { user, uid }
}

/// The name of `uid` in a passwd(5) file: the first entry with that uid and a name
/// of 1-64 printable characters. Users known only to a directory service (NSS) are
/// not in the file: their actor is then `uid-N`.
fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let id = f.nth(1)?.parse::<u32>().ok()?;
        (id == uid
            && !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_graphic()))
        .then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::policy::values::{source, tenant};

    /// Adds `number` to tenant `shop` with consent `otp` (source `web`).
    fn add_otp(v: &Vault, number: &str) {
        v.add(
            &tenant("shop"),
            number,
            None,
            &["otp".into()],
            &source("web"),
        )
        .unwrap();
    }
    use crate::store::MemoryStore;

    const NUMBER: &str = "+447400123958";
    const NUMBER_2: &str = "+447400123959";

    #[test]
    fn the_cli_user_is_named_from_the_passwd_file() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\n\
                      # a comment\n\
                      bad line\n\
                      :x:7:7::/:/bin/sh\n\
                      alice:x:1000:1000:Alice:/home/alice:/bin/sh\n\
                      mallory:x:1000:1000::/:/bin/sh\n";
        assert_eq!(passwd_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(passwd_name(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(passwd_name(passwd, 7), None);
        assert_eq!(passwd_name(passwd, 4242), None);
    }

    fn vault() -> (Arc<MemoryStore>, Vault) {
        let store = Arc::new(MemoryStore::new());
        let v = Vault::in_memory(store.clone()).unwrap();
        v.create_tenant(&tenant("shop"), &["otp".into(), "marketing".into()], None)
            .unwrap();
        add_otp(&v, NUMBER);
        (store, v)
    }

    fn chain(v: &Vault) -> Vec<Entry> {
        let k0 = v.export_audit_key().unwrap();
        let links = v.audit_links(0, usize::MAX).unwrap();
        let (decoded, end) =
            audit::verify(&k0, links.iter().map(|(_, l)| l.as_slice()), None).unwrap();
        assert_eq!(end, v.audit_status().end);
        let read = v.audit_read_key();
        decoded
            .into_iter()
            .flat_map(|l| l.entries(Some(&read)).unwrap())
            .collect()
    }

    #[test]
    fn reads_writes_and_refusals_are_logged_with_the_actor_and_the_records() {
        let (_, v) = vault();
        let token = v.acting_as(Actor::Token {
            id: "t1".into(),
            uid: 1000,
            pid: 7,
        });
        let found = token
            .clone()
            .revealing(true)
            .find(&tenant("shop"), NUMBER, None, "otp")
            .unwrap()
            .unwrap();
        assert!(token
            .find(&tenant("shop"), NUMBER, None, "marketing")
            .unwrap()
            .is_none());
        assert!(token
            .find(&tenant("shop"), "+447400000000", None, "otp")
            .unwrap()
            .is_none());
        assert!(token.find(&tenant("shop"), "garbage", None, "otp").is_err());
        let entries = chain(&v);
        let by_token: Vec<&Entry> = entries
            .iter()
            .filter(|e| matches!(&e.actor, Actor::Token { id, .. } if id == "t1"))
            .collect();
        assert_eq!(by_token.len(), 4);
        assert_eq!(by_token[0].records, vec![found.id.0]);
        assert!(by_token[0].reveal);
        assert_eq!(by_token[0].outcome, Outcome::Ok);
        assert_eq!(by_token[1].outcome, Outcome::Refused);
        assert_eq!(by_token[1].records, vec![found.id.0]);
        assert!(!by_token[1].reveal);
        // absent: nothing touched, nothing refused
        assert_eq!(by_token[2].outcome, Outcome::Ok);
        assert!(by_token[2].records.is_empty());
        assert_eq!(by_token[3].outcome, Outcome::Failed("invalid_phone".into()));
        // the add before them is in the chain as a write by the system actor
        assert!(entries
            .iter()
            .any(|e| e.action == "add" && e.records == vec![found.id.0]));
        // no number in any entry
        assert!(!format!("{entries:?}").contains("7400123958"));
    }

    #[test]
    fn a_read_whose_entry_cannot_be_written_returns_nothing() {
        let (store, v) = vault();
        store.fail_commits_after(Some(0));
        let r = v.find(&tenant("shop"), NUMBER, None, "otp");
        assert!(
            matches!(r, Err(VaultError::AuditUnavailable(_))),
            "an unaudited read got through: {r:?}"
        );
        // and a write fails whole: no record change without its entry
        let r = v.add(
            &tenant("shop"),
            "+447400123959",
            None,
            &["otp".into()],
            &source("web"),
        );
        assert!(r.is_err());
        store.fail_commits_after(None);
        assert!(v
            .find(&tenant("shop"), "+447400123959", None, "otp")
            .unwrap()
            .is_none());
        // the failed read's entry was kept and went into the next link
        let entries = chain(&v);
        let finds = entries.iter().filter(|e| e.action == "find").count();
        assert_eq!(finds, 2);
    }

    #[test]
    fn concurrent_reads_share_links_and_every_one_is_logged() {
        let (_, v) = vault();
        let before = v.audit_status().end.next_seq;
        std::thread::scope(|s| {
            for _ in 0..8 {
                let v = v.clone();
                s.spawn(move || {
                    for _ in 0..25 {
                        v.find(&tenant("shop"), NUMBER, None, "otp")
                            .unwrap()
                            .unwrap();
                    }
                });
            }
        });
        let links = v.audit_status().end.next_seq - before;
        assert!(links <= 200, "{links}");
        let finds = chain(&v).iter().filter(|e| e.action == "find").count();
        assert_eq!(finds, 200);
    }

    /// A store whose flush is slow and counted, to see writes share flushes.
    struct SlowFlush {
        inner: MemoryStore,
        flushes: std::sync::atomic::AtomicU64,
    }

    impl Store for SlowFlush {
        fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(tree, key)
        }
        fn range(
            &self,
            tree: Tree,
            start: &[u8],
            end: Option<&[u8]>,
            limit: usize,
        ) -> Result<Vec<crate::store::Entry>, StoreError> {
            self.inner.range(tree, start, end, limit)
        }
        fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
            self.inner.commit(batch)
        }
        fn flush(&self) -> Result<(), StoreError> {
            self.flushes.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            self.inner.flush()
        }
    }

    #[test]
    fn concurrent_writes_share_flushes_and_each_answers_once_durable() {
        let store = Arc::new(SlowFlush {
            inner: MemoryStore::new(),
            flushes: Default::default(),
        });
        let v = Vault::in_memory(store.clone()).unwrap();
        v.create_tenant(&tenant("shop"), &["otp".into()], None)
            .unwrap();
        let before = store.flushes.load(Ordering::SeqCst);
        std::thread::scope(|s| {
            for t in 0..8 {
                let v = v.clone();
                s.spawn(move || {
                    for i in 0..10 {
                        let n = format!("+4474001{t:02}{i:03}");
                        add_otp(&v, &n);
                    }
                });
            }
        });
        let flushes = store.flushes.load(Ordering::SeqCst) - before;
        assert!(
            flushes < 60,
            "80 writes made {flushes} flushes: no group commit"
        );
        assert_eq!(chain(&v).iter().filter(|e| e.action == "add").count(), 80);
    }

    #[test]
    fn with_a_read_lag_reads_return_at_once_and_are_flushed_in_the_background() {
        let store = Arc::new(SlowFlush {
            inner: MemoryStore::new(),
            flushes: Default::default(),
        });
        let v = Vault::in_memory(store.clone()).unwrap();
        v.create_tenant(&tenant("shop"), &["otp".into()], None)
            .unwrap();
        add_otp(&v, NUMBER);
        v.set_read_audit_lag(Some(Duration::from_millis(20)));
        let before = store.flushes.load(Ordering::SeqCst);
        for _ in 0..50 {
            v.find(&tenant("shop"), NUMBER, None, "otp")
                .unwrap()
                .unwrap();
        }
        let during = store.flushes.load(Ordering::SeqCst) - before;
        assert!(during < 50, "{during} flushes for 50 lagged reads");
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(v.audit.ticket_all(), lock(&v.audit.sync).durable);
        assert_eq!(chain(&v).iter().filter(|e| e.action == "find").count(), 50);
    }

    /// A vault over a memory store whose journal lives in a directory, and how to open
    /// it again (the same keyring and root key) over a copy of its store and journal:
    /// what a SIGKILL leaves behind.
    struct Twin {
        ring: phonevault_keys::Keyring,
        root: [u8; 32],
    }

    impl Twin {
        fn new() -> (Twin, Arc<MemoryStore>) {
            let bytes: [u8; 32] = rand::random();
            let root = phonevault_keys::RootKey::from_bytes(&bytes);
            let mut ring = phonevault_keys::Keyring::new(VaultId::generate(), &root).unwrap();
            ring.add_key_file_slot(&root, &phonevault_keys::KeyFileKey::generate())
                .unwrap();
            ring.seal(&root);
            let keys = ring.vault_keys(&root).unwrap();
            let mut b = super::super::tenants::MetaRow::first_batch(&keys.row_mac, &ring.vault_id);
            AuditLog::genesis(&keys.state, &ring.vault_id, &mut b).unwrap();
            let store = Arc::new(MemoryStore::new());
            store.commit(&b).unwrap();
            (Twin { ring, root: bytes }, store)
        }

        fn open(&self, store: Arc<MemoryStore>, dir: &Path) -> Result<Vault, VaultError> {
            Vault::with_store(
                dir,
                store,
                self.ring.clone(),
                phonevault_keys::RootKey::from_bytes(&self.root),
            )
        }
    }

    /// Everything in `store`, as a new store: the state a killed process left.
    fn snapshot(store: &MemoryStore) -> Arc<MemoryStore> {
        let copy = Arc::new(MemoryStore::new());
        let mut b = Batch::default();
        for tree in Tree::ALL {
            for (k, v) in store.range(tree, b"", None, usize::MAX).unwrap() {
                b.put(tree, k, v);
            }
        }
        copy.commit(&b).unwrap();
        copy
    }

    fn crashed_copy(store: &MemoryStore, from: &Path, to: &Path) -> Arc<MemoryStore> {
        std::fs::copy(
            from.join(journal::JOURNAL_FILE),
            to.join(journal::JOURNAL_FILE),
        )
        .unwrap();
        snapshot(store)
    }

    /// A vault in `process` mode with one record of `NUMBER`, nothing folded by the
    /// background task during a test; its twin, store and two directories (the
    /// vault's, and one to open another vault in).
    fn process_mode_vault() -> (
        Twin,
        Arc<MemoryStore>,
        tempfile::TempDir,
        tempfile::TempDir,
        Vault,
    ) {
        let (twin, store) = Twin::new();
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = twin.open(store.clone(), a_dir.path()).unwrap();
        a.create_tenant(&tenant("shop"), &["otp".into()], None)
            .unwrap();
        add_otp(&a, NUMBER);
        a.set_audit_sync(AuditSync::Process(Duration::from_secs(60)))
            .unwrap();
        (twin, store, a_dir, b_dir, a)
    }

    fn finds(v: &Vault) -> usize {
        chain(v).iter().filter(|e| e.action == "find").count()
    }

    #[test]
    fn in_process_mode_a_killed_vault_loses_no_answered_read_and_folds_once() {
        let (twin, store, a_dir, b_dir, a) = process_mode_vault();
        let links = a.audit_status().end.next_seq;
        for _ in 0..3 {
            a.find(&tenant("shop"), NUMBER, None, "otp")
                .unwrap()
                .unwrap();
        }
        // The reads answered without a link: their entries are in the journal only.
        assert_eq!(a.audit_status().end.next_seq, links);
        // A fold of the first three, then two more reads in the journal only.
        a.audit.journal_tick(a.store.as_ref());
        assert_eq!(a.audit_status().end.next_seq, links + 1);
        for _ in 0..2 {
            a.find(&tenant("shop"), NUMBER, None, "otp")
                .unwrap()
                .unwrap();
        }
        // SIGKILL now: the store as it is, the journal as written.
        let crashed = crashed_copy(&store, a_dir.path(), b_dir.path());
        let b = twin.open(crashed.clone(), b_dir.path()).unwrap();
        assert!(!b_dir.path().join(journal::JOURNAL_FILE).exists());
        let after_b = snapshot(&crashed);
        assert_eq!(
            finds(&b),
            5,
            "the three folded and the two in the journal only"
        );
        drop(b);
        // Killed again after the fold, before the journal was removed: nothing twice.
        let c_dir = tempfile::tempdir().unwrap();
        let again = crashed_copy(&after_b, a_dir.path(), c_dir.path());
        let c = twin.open(again, c_dir.path()).unwrap();
        assert_eq!(finds(&c), 5);
        // The live vault folds its own at close and leaves no journal behind.
        drop(a);
        assert!(!a_dir.path().join(journal::JOURNAL_FILE).exists());
        let d = twin.open(store, a_dir.path()).unwrap();
        assert_eq!(finds(&d), 5);
    }

    /// Issue 14: a read of `process` mode waits for no fold. The journal has its own
    /// lock; the chain's (held by a fold's commit) is never taken by a read, and the
    /// log keeps the order of the answers, reads and writes alike.
    #[test]
    fn in_process_mode_a_read_does_not_wait_for_a_fold_and_the_order_is_kept() {
        let (twin, store) = Twin::new();
        let dir = tempfile::tempdir().unwrap();
        let a = twin.open(store, dir.path()).unwrap();
        a.create_tenant(&tenant("shop"), &["otp".into()], None)
            .unwrap();
        add_otp(&a, NUMBER);
        a.set_audit_sync(AuditSync::Process(Duration::from_secs(60)))
            .unwrap();
        // A fold in progress: the chain locked by another thread.
        let held = lock(&a.audit.chain);
        let reader = {
            let a = a.clone();
            std::thread::spawn(move || {
                a.find(&tenant("shop"), NUMBER, None, "otp")
                    .unwrap()
                    .is_some()
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !reader.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "the read waited for the chain's lock"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(held);
        assert!(reader.join().unwrap());
        // read, write, read: in the chain in that order, the journaled read before the
        // write's link although it was folded by it
        add_otp(&a, NUMBER_2);
        a.find(&tenant("shop"), NUMBER_2, None, "otp")
            .unwrap()
            .unwrap();
        a.audit.journal_tick(a.store.as_ref());
        let actions: Vec<String> = chain(&a)
            .iter()
            .map(|e| e.action.clone())
            .filter(|a| a == "find" || a == "add")
            .collect();
        assert_eq!(actions, ["add", "find", "add", "find"]);
    }

    /// Reads on several threads share the journal (one combines the queued records
    /// into one write while the others wait for theirs): every answered read's entry
    /// reaches the chain once, and a vault opened on the journal left behind folds
    /// exactly those (the records verify, in the order written).
    #[test]
    fn in_process_mode_concurrent_reads_each_journal_their_entry_once() {
        let (twin, store, a_dir, b_dir, a) = process_mode_vault();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let a = a.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        a.find(&tenant("shop"), NUMBER, None, "otp")
                            .unwrap()
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(lock(&a.audit.journaled).pending.len(), 400);
        assert!(lock(&a.audit.queue).items.is_empty());
        // Left behind as by a killed server, then folded by the next open.
        std::fs::copy(
            a_dir.path().join(journal::JOURNAL_FILE),
            b_dir.path().join(journal::JOURNAL_FILE),
        )
        .unwrap();
        let b = twin.open(store, b_dir.path()).unwrap();
        assert_eq!(finds(&b), 400);
    }

    /// Issue 14: reads through deferring handles (the server's) queue their journal
    /// record and write none until their caller waits; the first to resume after the
    /// others queued theirs writes them all with one `write(2)`.
    #[test]
    fn in_process_mode_deferred_reads_share_one_journal_write() {
        let (_twin, _store, _a_dir, _b_dir, a) = process_mode_vault();
        let before = a.audit_stats();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let d = a.deferring();
                    tokio::spawn(async move {
                        d.find(&tenant("shop"), NUMBER, None, "otp")
                            .unwrap()
                            .unwrap();
                        d.audit_settled().await.unwrap();
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        let after = a.audit_stats();
        assert_eq!(after.journal_records - before.journal_records, 8);
        let writes = after.journal_writes - before.journal_writes;
        assert!(writes < 8, "{writes} writes for 8 reads: nothing shared");
        assert_eq!(lock(&a.audit.journaled).pending.len(), 8);
        // Not written before its caller waits: a read answered only after that.
        let d = a.deferring();
        d.find(&tenant("shop"), NUMBER, None, "otp")
            .unwrap()
            .unwrap();
        assert_eq!(lock(&a.audit.queue).items.len(), 1);
        assert_eq!(a.audit_stats().journal_records, after.journal_records);
        rt.block_on(d.audit_settled()).unwrap();
        assert!(lock(&a.audit.queue).items.is_empty());
        assert_eq!(a.audit_stats().journal_records, after.journal_records + 1);
    }

    /// A deferring read whose caller never waited (its request was dropped) is still
    /// logged: the journal's next round writes what is left in the queue.
    #[test]
    fn a_deferred_read_never_waited_for_is_logged_by_the_next_round() {
        let (_twin, _store, _a_dir, _b_dir, a) = process_mode_vault();
        let d = a.deferring();
        d.find(&tenant("shop"), NUMBER, None, "otp")
            .unwrap()
            .unwrap();
        drop(d);
        a.audit.journal_tick(a.store.as_ref());
        assert!(lock(&a.audit.queue).items.is_empty());
        assert_eq!(finds(&a), 1);
    }

    /// Issue 12 item 3: the journal of `--audit-sync process` held each read's entry
    /// in clear: a refused read's record id and purpose were on disk.
    #[test]
    fn the_journal_holds_no_record_id_or_purpose() {
        let (twin, store) = Twin::new();
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = twin.open(store.clone(), a_dir.path()).unwrap();
        a.create_tenant(&tenant("shop"), &["otp".into(), "newsletter".into()], None)
            .unwrap();
        let id = a
            .add(
                &tenant("shop"),
                NUMBER,
                None,
                &["otp".into()],
                &source("web"),
            )
            .unwrap()
            .id();
        a.set_audit_sync(AuditSync::Process(Duration::from_secs(60)))
            .unwrap();
        // refused (no consent): its entry carries the record id and the purpose
        assert!(a
            .find(&tenant("shop"), NUMBER, None, "newsletter")
            .unwrap()
            .is_none());
        a.find(&tenant("shop"), NUMBER, None, "otp")
            .unwrap()
            .unwrap();
        let bytes = std::fs::read(a_dir.path().join(journal::JOURNAL_FILE)).unwrap();
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(!has(&id.0), "a raw record id in the journal");
        assert!(
            !has(hex::encode(id.0).as_bytes()),
            "a hex record id in the journal"
        );
        for word in ["newsletter", "shop", "find"] {
            assert!(!has(word.as_bytes()), "`{word}` in the journal");
        }
        // and a killed server's journal still folds: both reads are in the chain
        let crashed = crashed_copy(&store, a_dir.path(), b_dir.path());
        let b = twin.open(crashed, b_dir.path()).unwrap();
        let entries = chain(&b);
        let refused: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.action == "find" && e.outcome == Outcome::Refused)
            .collect();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].records, vec![id.0]);
        assert_eq!(entries.iter().filter(|e| e.action == "find").count(), 2);
    }

    #[test]
    fn a_journal_that_does_not_verify_keeps_the_vault_closed() {
        let (twin, store) = Twin::new();
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = twin.open(store.clone(), a_dir.path()).unwrap();
        a.create_tenant(&tenant("shop"), &["otp".into()], None)
            .unwrap();
        add_otp(&a, NUMBER);
        a.set_audit_sync(AuditSync::Process(Duration::from_secs(60)))
            .unwrap();
        for _ in 0..4 {
            a.find(&tenant("shop"), NUMBER, None, "otp")
                .unwrap()
                .unwrap();
        }
        let crashed = crashed_copy(&store, a_dir.path(), b_dir.path());
        let path = b_dir.path().join(journal::JOURNAL_FILE);
        let good = std::fs::read(&path).unwrap();
        // A record in the middle edited: refused, and the journal stays for inspection.
        let mut bad = good.clone();
        let at = good.len() - 150;
        bad[at] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let r = twin.open(snapshot(&crashed), b_dir.path());
        assert!(
            matches!(r, Err(VaultError::Journal(JournalError::Tampered { .. }))),
            "{r:?}"
        );
        assert!(path.exists());
        // The last record torn by the kill: the three before it are folded.
        std::fs::write(&path, &good[..good.len() - 10]).unwrap();
        let b = twin.open(crashed, b_dir.path()).unwrap();
        assert_eq!(finds(&b), 3);
    }

    #[test]
    fn a_deferring_handle_answers_before_the_flush_and_its_caller_waits_for_it() {
        let store = Arc::new(SlowFlush {
            inner: MemoryStore::new(),
            flushes: Default::default(),
        });
        let v = Vault::in_memory(store.clone()).unwrap();
        v.create_tenant(&tenant("shop"), &["otp".into()], None)
            .unwrap();
        add_otp(&v, NUMBER);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let before = store.flushes.load(Ordering::SeqCst);
        rt.block_on(async {
            let mut waits = Vec::new();
            for _ in 0..16 {
                let d = v.deferring();
                d.find(&tenant("shop"), NUMBER, None, "otp")
                    .unwrap()
                    .unwrap();
                let ticket = d.deferred_ticket().unwrap();
                assert!(
                    lock(&v.audit.sync).durable < ticket,
                    "flushed before answering"
                );
                waits.push(tokio::spawn(async move { d.audit_synced(ticket).await }));
            }
            for w in waits {
                w.await.unwrap().unwrap();
            }
        });
        let flushes = store.flushes.load(Ordering::SeqCst) - before;
        assert!(
            flushes < 16,
            "{flushes} flushes for 16 waiting reads: no group commit"
        );
        assert_eq!(v.audit.ticket_all(), lock(&v.audit.sync).durable);
        assert_eq!(finds(&v), 16);
        // A handle that does not defer keeps waiting itself.
        assert_eq!(v.deferred_ticket(), None);
    }

    #[test]
    fn archiving_moves_old_links_out_and_the_rest_verifies_from_the_archive_end() {
        let mut v = Vault::in_memory(Arc::new(MemoryStore::new())).unwrap();
        let t = Arc::new(std::sync::atomic::AtomicU64::new(1_000));
        let t2 = t.clone();
        v.set_clock(Arc::new(move || {
            t2.load(std::sync::atomic::Ordering::SeqCst)
        }));
        v.create_tenant(&tenant("shop"), &["otp".into()], None)
            .unwrap();
        add_otp(&v, NUMBER);
        for _ in 0..5 {
            v.find(&tenant("shop"), NUMBER, None, "otp").unwrap();
        }
        t.store(5_000, std::sync::atomic::Ordering::SeqCst);
        v.find(&tenant("shop"), NUMBER, None, "otp").unwrap();
        let mut archived = Vec::new();
        let end = v
            .archive_audit(2_000, |start, links| {
                archived = links.to_vec();
                assert_eq!(start, Checkpoint::GENESIS);
                Ok(())
            })
            .unwrap()
            .unwrap();
        let k0 = v.export_audit_key().unwrap();
        // the archive verifies from genesis and ends where the live log starts
        let got = audit::verify_from(
            &k0,
            Checkpoint::GENESIS,
            archived.iter().map(|(_, l)| l.as_slice()),
            None,
            |_| Ok::<(), audit::AuditError>(()),
        )
        .unwrap();
        assert_eq!(got, end);
        let live = v.audit_links(0, usize::MAX).unwrap();
        assert_eq!(live[0].0, end.next_seq);
        assert_eq!(v.audit_status().start, end);
        audit::verify_from(
            &k0,
            end,
            live.iter().map(|(_, l)| l.as_slice()),
            None,
            |_| Ok::<(), audit::AuditError>(()),
        )
        .unwrap();
    }
}
