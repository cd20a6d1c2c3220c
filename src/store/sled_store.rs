//! The embedded default: one sled database in the vault directory, one sled tree per
//! [`Tree`]. The only module that names sled.

use std::ops::Bound;
use std::path::Path;

use super::{Batch, Entry, Op, Store, StoreError, Tree};

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
}

impl Store for SledStore {
    fn bytes_on_disk(&self) -> Option<u64> {
        self.db.size_on_disk().ok()
    }

    fn last_value(&self, t: Tree) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(t)
            .last()
            .map_err(sled_err)?
            .map(|(_, v)| v.to_vec()))
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
