//! An in-memory store for tests, with fault injection: a full disk after some commits,
//! failing flushes, and guards that fail as if another writer had won.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{Batch, Entry, Op, Store, StoreError, Tree};

type MemoryTrees = BTreeMap<(Tree, Vec<u8>), Vec<u8>>;

/// An in-memory store for tests, with failure injection.
#[derive(Debug, Default)]
pub struct MemoryStore {
    trees: Mutex<MemoryTrees>,
    fail_after: AtomicU64,
    commits: AtomicU64,
    fail_flushes: AtomicBool,
    lost_guards: AtomicU64,
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

    /// While `on`, every [`Store::flush`] fails with an I/O error (a disk that stopped
    /// taking writes, a filesystem gone read-only); what was committed stays readable.
    pub fn fail_flushes(&self, on: bool) {
        self.fail_flushes.store(on, Ordering::SeqCst);
    }

    /// The next `n` commits that carry a guard fail with [`StoreError::Conflict`] and
    /// change nothing, as if another writer had changed a guarded row first (commits
    /// without guards go through).
    pub fn lose_guards(&self, n: u64) {
        self.lost_guards.store(n, Ordering::SeqCst);
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
        if !batch.guards.is_empty()
            && self
                .lost_guards
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(StoreError::Conflict);
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
        if self.fail_flushes.load(Ordering::SeqCst) {
            return Err(StoreError::Io(std::io::Error::other(
                "injected: the disk took no more writes",
            )));
        }
        Ok(())
    }
}
