//! Storage behind a small trait, so the vault logic never sees sled.
//!
//! A [`Store`] is a set of ordered key/value trees ([`Tree`]) with point reads, range
//! scans and atomic multi-tree commits guarded by compare-and-set checks. It is shaped
//! for both an embedded engine (sled, [`SledStore`]) and a networked SQL backend (a
//! batch is one transaction, a guard is a `WHERE`/unique constraint), and an in-memory
//! implementation ([`MemoryStore`]) serves tests and can inject failures.
//!
//! A third, [`PgStore`] (module [`postgres`]), keeps the trees in PostgreSQL so that
//! several servers can share one database.
//!
//! Every implementation passes the same conformance suite (`tests::conformance`).

pub mod postgres;
pub use postgres::{PgConfig, PgStore};

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// The trees of a vault. The keyring is deliberately not among them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tree {
    /// Vault-wide settings (format version, vault id, counters).
    Meta,
    /// Tenant rows (MACed).
    Tenants,
    /// Encrypted records, keyed `tenant id ‖ record id`.
    Records,
    /// Blind-index entries.
    Index,
    /// Expiry index for retention.
    Expiry,
    /// API tokens (hashes, MACed).
    Tokens,
    /// The audit log.
    Audit,
    /// Suppression lists: MACed list rows and blind-index entries (no numbers).
    Suppress,
}

impl Tree {
    /// Every tree, in a fixed order.
    pub const ALL: [Tree; 8] = [
        Tree::Meta,
        Tree::Tenants,
        Tree::Records,
        Tree::Index,
        Tree::Expiry,
        Tree::Tokens,
        Tree::Audit,
        Tree::Suppress,
    ];

    /// The tree's name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::Tenants => "tenants",
            Tree::Records => "records",
            Tree::Index => "index",
            Tree::Expiry => "expiry",
            Tree::Tokens => "tokens",
            Tree::Audit => "audit",
            Tree::Suppress => "suppress",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// One change in a [`Batch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Set `key` to `value`.
    Put {
        /// Tree.
        tree: Tree,
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Remove `key` (no error when absent).
    Delete {
        /// Tree.
        tree: Tree,
        /// Key.
        key: Vec<u8>,
    },
}

/// A precondition of a [`Batch`]: the value of `key` must be `expect` (`None`: absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guard {
    /// Tree.
    pub tree: Tree,
    /// Key.
    pub key: Vec<u8>,
    /// Expected value, or `None` when the key must be absent.
    pub expect: Option<Vec<u8>>,
}

/// An atomic set of changes across trees, applied only when every guard holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Preconditions checked atomically with the changes.
    pub guards: Vec<Guard>,
    /// Changes, applied in order.
    pub ops: Vec<Op>,
}

impl Batch {
    /// Adds a put.
    pub fn put(&mut self, tree: Tree, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put {
            tree,
            key: key.into(),
            value: value.into(),
        });
    }

    /// Adds a delete.
    pub fn delete(&mut self, tree: Tree, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete {
            tree,
            key: key.into(),
        });
    }

    /// Requires `key` to hold `expect` (or be absent) when the batch commits.
    pub fn guard(&mut self, tree: Tree, key: impl Into<Vec<u8>>, expect: Option<Vec<u8>>) {
        self.guards.push(Guard {
            tree,
            key: key.into(),
            expect,
        });
    }

    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A key/value pair read from a tree.
pub type Entry = (Vec<u8>, Vec<u8>);

/// What [`Store::get_linked`] read: the entry's value and the row it names, if any.
pub type Linked = (Vec<u8>, Option<Vec<u8>>);

/// Why a storage call failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A guard of the batch did not hold; nothing was written. Re-read and retry.
    #[error("the data changed while this write was prepared; nothing was written, retry")]
    Conflict,
    /// The store is locked by another process.
    #[error("the vault is in use by another phonevault process (the store is locked); stop it or wait, then retry")]
    Locked,
    /// The disk is full; nothing of the failed write was kept.
    #[error("the disk is full: nothing of this write was stored; free space and retry")]
    DiskFull,
    /// The on-disk data is damaged.
    #[error("the store is corrupt: {0}; restore the vault from a backup")]
    Corrupt(String),
    /// Another I/O failure.
    #[error("storage I/O error: {0}")]
    Io(#[source] std::io::Error),
    /// The database cannot be reached (down, restarting, network, no free connection).
    /// The request was not acknowledged; connections are re-established by themselves.
    #[error("the database is unavailable ({0}): this request was not acknowledged; check that the database is running and reachable, then retry")]
    Unavailable(String),
    /// The database refused an operation for another reason.
    #[error("the database refused the operation ({0}); see the database server's log")]
    Database(String),
    /// The store's location or settings are malformed.
    #[error("invalid store setting: {0}")]
    Config(String),
}

/// Where a vault's records live.
#[derive(Clone, Debug, Default)]
pub enum StoreLocation {
    /// The embedded sled store in the vault directory (the default).
    #[default]
    Sled,
    /// A PostgreSQL database shared by several servers.
    Postgres(PgConfig),
}

impl StoreLocation {
    /// Parses `--store`: `sled`, or a `postgres://` / `postgresql://` URL.
    ///
    /// # Errors
    /// [`StoreError::Config`] for anything else (the message never repeats the value,
    /// which may hold a password).
    pub fn parse(s: &str) -> Result<StoreLocation, StoreError> {
        if s == "sled" || s.is_empty() {
            Ok(StoreLocation::Sled)
        } else if PgConfig::is_postgres_url(s) {
            Ok(StoreLocation::Postgres(PgConfig::new(s)))
        } else {
            Err(StoreError::Config(
                "--store takes `sled` or a URL postgres://USER@HOST[:PORT]/DATABASE".into(),
            ))
        }
    }
}

/// The storage a vault runs on. Implementations must be safe to share across threads.
pub trait Store: Send + Sync {
    /// Reads one value.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Reads up to `limit` entries with `start <= key` and `key < end` (`end` `None`:
    /// unbounded), in key order.
    fn range(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;

    /// Applies every op of `batch` atomically if every guard holds, else returns
    /// [`StoreError::Conflict`] and changes nothing.
    fn commit(&self, batch: &Batch) -> Result<(), StoreError>;

    /// Makes every committed batch durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// Whether other processes may open the same store at once (a database shared by
    /// several servers). Only then can the keyring file change under an open vault, so
    /// only then does the vault look for such changes on its read path.
    fn shared(&self) -> bool {
        false
    }

    /// Bytes the store occupies on this machine's disk, where that means something (an
    /// embedded store; not a database server).
    fn bytes_on_disk(&self) -> Option<u64> {
        None
    }

    /// Reads `key` in `tree` and, when present, the entry of `target` keyed
    /// `target_prefix ‖ <that value>`: an index entry and the row it names. A database
    /// does it in one round trip.
    fn get_linked(
        &self,
        tree: Tree,
        key: &[u8],
        target: Tree,
        target_prefix: &[u8],
    ) -> Result<Option<Linked>, StoreError> {
        let Some(v) = self.get(tree, key)? else {
            return Ok(None);
        };
        let linked = self.get(target, &[target_prefix, &v].concat())?;
        Ok(Some((v, linked)))
    }

    /// Reads up to `limit` entries whose key starts with `prefix`.
    fn scan_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let end = prefix_end(prefix);
        self.range(tree, prefix, end.as_deref(), limit)
    }
}

/// The smallest key greater than every key starting with `prefix` (`None`: unbounded).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

// ---------------------------------------------------------------------------------
// sled

/// The embedded default: one sled database, one sled tree per [`Tree`].
pub struct SledStore {
    db: sled::Db,
    trees: Vec<sled::Tree>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

fn sled_err(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) => io_err(io),
        sled::Error::Corruption { .. } => StoreError::Corrupt("sled reported corruption".into()),
        other => StoreError::Corrupt(other.to_string()),
    }
}

fn io_err(io: std::io::Error) -> StoreError {
    // ENOSPC / EDQUOT
    match io.raw_os_error() {
        Some(28) | Some(122) => StoreError::DiskFull,
        _ if io.kind() == std::io::ErrorKind::StorageFull => StoreError::DiskFull,
        _ if io.kind() == std::io::ErrorKind::WouldBlock
            || io.to_string().contains("could not acquire lock") =>
        {
            StoreError::Locked
        }
        _ => StoreError::Io(io),
    }
}

impl SledStore {
    /// How long [`SledStore::open`] waits for a lock another handle is releasing.
    pub const LOCK_WAIT_MS: u64 = 2000;

    /// Opens (or creates) the store in `dir`, with `cache_bytes` of page cache.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another process has it open.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledStore, StoreError> {
        // sled would create the directory with the umask's mode (0755 by default):
        // create it 0700 first, so the store is private whatever the caller's umask.
        {
            use std::os::unix::fs::DirBuilderExt;
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        let open = || {
            sled::Config::new()
                .path(dir)
                .cache_capacity(cache_bytes)
                .mode(sled::Mode::HighThroughput)
                .open()
                .map_err(sled_err)
        };
        // sled releases its file lock from a background thread a moment after the last
        // handle drops: a store closed and opened again at once (seal then unseal, a
        // restore's swap) would be refused as locked. Wait a little before saying so.
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_millis(Self::LOCK_WAIT_MS);
        let db = loop {
            match open() {
                Err(StoreError::Locked) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                other => break other?,
            }
        };
        let mut trees = Vec::with_capacity(Tree::ALL.len());
        for t in Tree::ALL {
            trees.push(db.open_tree(t.name()).map_err(sled_err)?);
        }
        Ok(SledStore { db, trees })
    }

    fn tree(&self, t: Tree) -> &sled::Tree {
        &self.trees[t.slot()]
    }

    /// The value of the last key of a tree (the audit log's newest link).
    pub fn last_value(&self, t: Tree) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(t)
            .last()
            .map_err(sled_err)?
            .map(|(_, v)| v.to_vec()))
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(sled_err)
    }

    /// Copies every tree into a fresh store at `dest` (used by `compact`).
    pub fn copy_into(&self, dest: &SledStore) -> Result<(), StoreError> {
        for t in Tree::ALL {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for kv in self.tree(t).iter() {
                let (k, v) = kv.map_err(sled_err)?;
                batch.insert(k, v);
                n += 1;
                if n == 10_000 {
                    dest.tree(t)
                        .apply_batch(std::mem::take(&mut batch))
                        .map_err(sled_err)?;
                    n = 0;
                }
            }
            dest.tree(t).apply_batch(batch).map_err(sled_err)?;
        }
        dest.flush()
    }
}

impl Store for SledStore {
    fn bytes_on_disk(&self) -> Option<u64> {
        self.size_on_disk().ok()
    }

    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(tree)
            .get(key)
            .map_err(sled_err)?
            .map(|v| v.to_vec()))
    }

    fn range(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let t = self.tree(tree);
        let upper = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for kv in t.range::<&[u8], _>((Bound::Included(start), upper)) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = kv.map_err(sled_err)?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        use sled::Transactional;

        // Only the trees the batch touches take part in the transaction.
        let mut used: Vec<Tree> = batch
            .guards
            .iter()
            .map(|g| g.tree)
            .chain(batch.ops.iter().map(|o| match o {
                Op::Put { tree, .. } | Op::Delete { tree, .. } => *tree,
            }))
            .collect();
        used.sort();
        used.dedup();
        if used.is_empty() {
            return Ok(());
        }
        let trees: Vec<&sled::Tree> = used.iter().map(|t| self.tree(*t)).collect();
        let pos = |t: Tree| used.iter().position(|u| *u == t).unwrap_or(0);
        let result = trees.as_slice().transaction(|tx| {
            for g in &batch.guards {
                let cur = tx[pos(g.tree)].get(&g.key)?;
                if cur.as_deref() != g.expect.as_deref() {
                    return Err(ConflictableTransactionError::Abort(()));
                }
            }
            for op in &batch.ops {
                match op {
                    Op::Put { tree, key, value } => {
                        tx[pos(*tree)].insert(key.as_slice(), value.as_slice())?;
                    }
                    Op::Delete { tree, key } => {
                        tx[pos(*tree)].remove(key.as_slice())?;
                    }
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(())) => Err(StoreError::Conflict),
            Err(TransactionError::Storage(e)) => Err(sled_err(e)),
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(sled_err)
    }
}

// ---------------------------------------------------------------------------------
// memory

type MemoryTrees = BTreeMap<(Tree, Vec<u8>), Vec<u8>>;

/// An in-memory store for tests, with failure injection.
#[derive(Debug, Default)]
pub struct MemoryStore {
    trees: Mutex<MemoryTrees>,
    fail_after: AtomicU64,
    commits: AtomicU64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// With `Some(n)`, lets the next `n` commits through and fails every later one
    /// with [`StoreError::DiskFull`], changing nothing; `None` stops the injection.
    pub fn fail_commits_after(&self, n: Option<u64>) {
        self.commits.store(0, Ordering::SeqCst);
        let v = n.map_or(0, |n| n.saturating_add(1));
        self.fail_after.store(v, Ordering::SeqCst);
    }
}

impl Store for MemoryStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let map = self.trees.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(map.get(&(tree, key.to_vec())).cloned())
    }

    fn range(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let map = self.trees.lock().unwrap_or_else(PoisonError::into_inner);
        let lo = Bound::Included((tree, start.to_vec()));
        let hi = match end {
            Some(e) => Bound::Excluded((tree, e.to_vec())),
            None => match Tree::ALL.get(tree.slot() + 1) {
                Some(next) => Bound::Excluded((*next, Vec::new())),
                None => Bound::Unbounded,
            },
        };
        Ok(map
            .range((lo, hi))
            .filter(|((t, _), _)| *t == tree)
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut map = self.trees.lock().unwrap_or_else(PoisonError::into_inner);
        let fail_after = self.fail_after.load(Ordering::SeqCst);
        if fail_after > 0 && self.commits.fetch_add(1, Ordering::SeqCst) + 1 >= fail_after {
            return Err(StoreError::DiskFull);
        }
        for g in &batch.guards {
            if map.get(&(g.tree, g.key.clone())) != g.expect.as_ref() {
                return Err(StoreError::Conflict);
            }
        }
        for op in &batch.ops {
            match op {
                Op::Put { tree, key, value } => {
                    map.insert((*tree, key.clone()), value.clone());
                }
                Op::Delete { tree, key } => {
                    map.remove(&(*tree, key.clone()));
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    include!("conformance.rs");

    #[test]
    fn memory_store_conforms() {
        conformance(&MemoryStore::new());
    }

    #[test]
    fn memory_store_guards_are_compare_and_swap() {
        conformance_concurrent(vec![std::sync::Arc::new(MemoryStore::new())]);
    }

    #[test]
    fn sled_store_guards_are_compare_and_swap() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path(), 1 << 20).unwrap();
        conformance_concurrent(vec![std::sync::Arc::new(s)]);
    }

    #[test]
    fn sled_store_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path(), 1 << 20).unwrap();
        conformance(&s);
    }

    #[test]
    fn sled_store_is_durable_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path(), 1 << 20).unwrap();
            let mut b = Batch::default();
            b.put(Tree::Records, b"k".to_vec(), b"v".to_vec());
            s.commit(&b).unwrap();
            s.flush().unwrap();
        }
        let s = SledStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.get(Tree::Records, b"k").unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn memory_store_injects_disk_full() {
        let s = MemoryStore::new();
        s.fail_commits_after(Some(1));
        let mut b = Batch::default();
        b.put(Tree::Records, b"k".to_vec(), b"v".to_vec());
        s.commit(&b).unwrap();
        let mut b2 = Batch::default();
        b2.put(Tree::Records, b"k2".to_vec(), b"v".to_vec());
        assert!(matches!(s.commit(&b2), Err(StoreError::DiskFull)));
        assert_eq!(s.get(Tree::Records, b"k2").unwrap(), None);
        s.fail_commits_after(None);
        s.commit(&b2).unwrap();
    }

    #[test]
    fn prefix_end_handles_ff() {
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
