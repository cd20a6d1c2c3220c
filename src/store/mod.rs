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
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the trait, trees, batches, errors, [`StoreLocation::open`] (the factory) |
//! | `scan.rs` | [`Pages`] and [`Scan`]: a key range read a bounded page at a time |
//! | `sled_store.rs` | [`SledStore`], the only module that names sled's API |
//! | `postgres.rs` | [`PgStore`] |
//! | `memory.rs` | [`MemoryStore`], with fault injection (full disk, failing flushes, lost guards) |
//! | `conformance.rs` | the suite every store passes |

mod memory;
pub mod postgres;
mod scan;
mod sled_store;

pub use memory::MemoryStore;
pub use postgres::{PgConfig, PgStore};
pub use scan::{Pages, Scan};
pub use sled_store::SledStore;

use std::path::Path;
use std::sync::Arc;

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
    /// Every tree, in the order of their [`Tree::id`]s.
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

    /// The tree's number in the backup format, frozen: a tree added later takes the
    /// next free number, and none is ever renumbered (the order of the enum does not
    /// decide it).
    pub fn id(self) -> u8 {
        match self {
            Tree::Meta => 0,
            Tree::Tenants => 1,
            Tree::Records => 2,
            Tree::Index => 3,
            Tree::Expiry => 4,
            Tree::Tokens => 5,
            Tree::Audit => 6,
            Tree::Suppress => 7,
        }
    }

    /// The tree numbered `id` ([`Tree::id`]).
    pub fn from_id(id: u8) -> Option<Tree> {
        Tree::ALL.get(usize::from(id)).copied()
    }

    fn slot(self) -> usize {
        usize::from(self.id())
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
    /// Opens (or creates) the store: sled in `dir` with `cache_bytes` of page cache,
    /// or a connection pool to the database (which ignores both).
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another process has the sled store open; the
    /// database's connection errors.
    pub fn open(&self, dir: &Path, cache_bytes: u64) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            StoreLocation::Sled => Arc::new(SledStore::open(dir, cache_bytes)?),
            StoreLocation::Postgres(cfg) => Arc::new(PgStore::connect(cfg)?),
        })
    }

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

    /// The value of the last key of `tree` (the audit log's newest link). The default
    /// pages through the whole tree; the stores read it directly.
    ///
    /// # Errors
    /// The store's read errors.
    fn last_value(&self, tree: Tree) -> Result<Option<Vec<u8>>, StoreError> {
        let mut last = None;
        let mut from = Vec::new();
        loop {
            let page = self.range(tree, &from, None, 1_000)?;
            let Some((k, v)) = page.last() else {
                return Ok(last);
            };
            from = [k.as_slice(), &[0]].concat();
            last = Some(v.clone());
        }
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

/// Copies every tree of `src` into `dest` (a fresh store: `compact` writes the live
/// one into a new directory), in batches of 10,000 rows, then flushes `dest`.
///
/// # Errors
/// Either store's errors.
pub fn copy_trees(src: &dyn Store, dest: &dyn Store) -> Result<(), StoreError> {
    const ROWS: usize = 10_000;
    for t in Tree::ALL {
        let mut batch = Batch::default();
        let mut n = 0;
        for kv in src.scan(t, &[], None, ROWS) {
            let (k, v) = kv?;
            batch.put(t, k, v);
            n += 1;
            if n == ROWS {
                dest.commit(&std::mem::take(&mut batch))?;
                n = 0;
            }
        }
        if !batch.is_empty() {
            dest.commit(&batch)?;
        }
    }
    dest.flush()
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
    fn memory_store_injects_failing_flushes_and_lost_guards() {
        let s = MemoryStore::new();
        let mut b = Batch::default();
        b.put(Tree::Records, b"k".to_vec(), b"v".to_vec());
        s.commit(&b).unwrap();
        s.fail_flushes(true);
        assert!(matches!(s.flush(), Err(StoreError::Io(_))));
        assert_eq!(s.get(Tree::Records, b"k").unwrap(), Some(b"v".to_vec()));
        s.fail_flushes(false);
        s.flush().unwrap();

        s.lose_guards(2);
        let mut guarded = Batch::default();
        guarded.guard(Tree::Records, b"k".to_vec(), Some(b"v".to_vec()));
        guarded.put(Tree::Records, b"k".to_vec(), b"w".to_vec());
        // A commit without guards is not a lost race.
        s.commit(&b).unwrap();
        for _ in 0..2 {
            assert!(matches!(s.commit(&guarded), Err(StoreError::Conflict)));
            assert_eq!(s.get(Tree::Records, b"k").unwrap(), Some(b"v".to_vec()));
        }
        s.commit(&guarded).unwrap();
        assert_eq!(s.get(Tree::Records, b"k").unwrap(), Some(b"w".to_vec()));
    }

    /// The backup format's tree numbers, as files written so far hold them.
    #[test]
    fn tree_ids_are_frozen() {
        let ids: Vec<(&str, u8)> = Tree::ALL.iter().map(|t| (t.name(), t.id())).collect();
        assert_eq!(
            ids,
            [
                ("meta", 0),
                ("tenants", 1),
                ("records", 2),
                ("index", 3),
                ("expiry", 4),
                ("tokens", 5),
                ("audit", 6),
                ("suppress", 7),
            ]
        );
        for t in Tree::ALL {
            assert_eq!(Tree::from_id(t.id()), Some(t));
        }
        assert_eq!(Tree::from_id(8), None);
    }

    #[test]
    fn prefix_end_handles_ff() {
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
