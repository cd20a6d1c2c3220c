//! Paged reads of a key range: the one way the vault walks a tree, a bounded page at
//! a time, whatever the store (a database answers each page in one query).
//!
//! ```
//! use phonevault::store::{Batch, MemoryStore, Store, Tree};
//! let store = MemoryStore::new();
//! let mut b = Batch::default();
//! for k in [b"a1", b"a2", b"b1"] {
//!     b.put(Tree::Records, k.to_vec(), b"v".to_vec());
//! }
//! store.commit(&b).unwrap();
//! let store: &dyn Store = &store;
//! let keys: Vec<Vec<u8>> = store
//!     .scan_all(Tree::Records, b"a", 1)
//!     .map(|e| e.map(|(k, _)| k))
//!     .collect::<Result<_, _>>()
//!     .unwrap();
//! assert_eq!(keys, [b"a1".to_vec(), b"a2".to_vec()]);
//! ```

use super::{prefix_end, Entry, Store, StoreError, Tree};

/// The pages of a key range, each at most `page` entries, read one at a time: an
/// entry written behind the last page read is not seen, one written ahead of it is.
/// After an error the iterator ends.
pub struct Pages<'s> {
    store: &'s dyn Store,
    tree: Tree,
    /// The first key of the next page; `None` once the range is done.
    next: Option<Vec<u8>>,
    end: Option<Vec<u8>>,
    page: usize,
}

impl<'s> Pages<'s> {
    /// The pages of `start <= key < end` (`end` `None`: to the end of the tree).
    pub fn new(
        store: &'s dyn Store,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        page: usize,
    ) -> Self {
        Pages {
            store,
            tree,
            next: Some(start.to_vec()),
            end: end.map(<[u8]>::to_vec),
            page: page.max(1),
        }
    }
}

impl Iterator for Pages<'_> {
    type Item = Result<Vec<Entry>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let from = self.next.take()?;
        match self
            .store
            .range(self.tree, &from, self.end.as_deref(), self.page)
        {
            Err(e) => Some(Err(e)),
            Ok(page) if page.is_empty() => None,
            Ok(page) => {
                if page.len() == self.page {
                    // The smallest key after the last one read.
                    self.next = page.last().map(|(k, _)| [k.as_slice(), &[0]].concat());
                }
                Some(Ok(page))
            }
        }
    }
}

/// The entries of a key range, read a page at a time ([`Pages`], flattened).
pub struct Scan<'s> {
    pages: Pages<'s>,
    current: std::vec::IntoIter<Entry>,
}

impl Iterator for Scan<'_> {
    type Item = Result<Entry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.current.next() {
                return Some(Ok(e));
            }
            match self.pages.next()? {
                Ok(page) => self.current = page.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl<'s> dyn Store + 's {
    /// The pages of `start <= key < end` in `tree`, `page` entries at most each.
    pub fn pages(&self, tree: Tree, start: &[u8], end: Option<&[u8]>, page: usize) -> Pages<'_> {
        Pages::new(self, tree, start, end, page)
    }

    /// The entries of `start <= key < end` in `tree`, read `page` at a time.
    pub fn scan(&self, tree: Tree, start: &[u8], end: Option<&[u8]>, page: usize) -> Scan<'_> {
        Scan {
            pages: self.pages(tree, start, end, page),
            current: Vec::new().into_iter(),
        }
    }

    /// The entries whose key starts with `prefix`, read `page` at a time.
    pub fn scan_all(&self, tree: Tree, prefix: &[u8], page: usize) -> Scan<'_> {
        let end = prefix_end(prefix);
        self.scan(tree, prefix, end.as_deref(), page)
    }
}
