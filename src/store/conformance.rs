// The conformance suite every `Store` implementation passes: included (`include!`)
// by the unit tests of `store` (memory, sled) and by tests/pg.rs (PostgreSQL, which
// needs a database and so runs under its own harness). Items only, no `use`: the
// includer brings `Batch`, `Entry`, `Store`, `StoreError`, `Tree`, `MemoryStore` and
// `copy_trees` into scope.

/// The conformance suite every [`Store`] must pass.
pub(crate) fn conformance(s: &dyn Store) {
    // point reads and writes
    assert_eq!(s.get(Tree::Records, b"a").unwrap(), None);
    let mut b = Batch::default();
    b.put(Tree::Records, b"a".to_vec(), b"1".to_vec());
    b.put(Tree::Index, b"a".to_vec(), b"x".to_vec());
    s.commit(&b).unwrap();
    assert_eq!(s.get(Tree::Records, b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(s.get(Tree::Index, b"a").unwrap(), Some(b"x".to_vec()));
    assert_eq!(s.get(Tree::Meta, b"a").unwrap(), None, "trees are separate");

    // every tree holds its own keys, the last one (suppress) included
    let mut b = Batch::default();
    for (i, t) in Tree::ALL.iter().enumerate() {
        b.put(*t, b"every".to_vec(), vec![i as u8]);
    }
    s.commit(&b).unwrap();
    for (i, t) in Tree::ALL.iter().enumerate() {
        assert_eq!(s.get(*t, b"every").unwrap(), Some(vec![i as u8]), "{t:?}");
        assert_eq!(s.scan_prefix(*t, b"ever", 10).unwrap().len(), 1, "{t:?}");
    }
    let mut b = Batch::default();
    for t in Tree::ALL {
        b.delete(t, b"every".to_vec());
    }
    s.commit(&b).unwrap();
    assert_eq!(s.get(Tree::Suppress, b"every").unwrap(), None);

    // a failed guard changes nothing, in any tree
    let mut b = Batch::default();
    b.guard(Tree::Index, b"a".to_vec(), None);
    b.put(Tree::Records, b"b".to_vec(), b"2".to_vec());
    b.delete(Tree::Records, b"a".to_vec());
    assert!(matches!(s.commit(&b), Err(StoreError::Conflict)));
    assert_eq!(s.get(Tree::Records, b"b").unwrap(), None);
    assert_eq!(s.get(Tree::Records, b"a").unwrap(), Some(b"1".to_vec()));

    // a value guard on a key the batch rewrites is a compare-and-swap
    let mut b = Batch::default();
    b.guard(Tree::Records, b"a".to_vec(), Some(b"wrong".to_vec()));
    b.put(Tree::Records, b"a".to_vec(), b"9".to_vec());
    b.put(Tree::Records, b"z".to_vec(), b"9".to_vec());
    assert!(matches!(s.commit(&b), Err(StoreError::Conflict)));
    assert_eq!(s.get(Tree::Records, b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(s.get(Tree::Records, b"z").unwrap(), None);
    let mut b = Batch::default();
    b.guard(Tree::Records, b"a".to_vec(), Some(b"1".to_vec()));
    b.put(Tree::Records, b"a".to_vec(), b"2".to_vec());
    b.put(Tree::Records, b"a".to_vec(), b"1".to_vec());
    s.commit(&b).unwrap();
    assert_eq!(s.get(Tree::Records, b"a").unwrap(), Some(b"1".to_vec()));

    // a guard that holds lets the batch through
    let mut b = Batch::default();
    b.guard(Tree::Index, b"a".to_vec(), Some(b"x".to_vec()));
    b.guard(Tree::Index, b"zz".to_vec(), None);
    b.delete(Tree::Records, b"a".to_vec());
    b.delete(Tree::Index, b"a".to_vec());
    s.commit(&b).unwrap();
    assert_eq!(s.get(Tree::Records, b"a").unwrap(), None);
    assert_eq!(s.get(Tree::Index, b"a").unwrap(), None);

    // an entry and the row it names
    let mut b = Batch::default();
    b.put(Tree::Index, b"i1".to_vec(), b"r1".to_vec());
    b.put(Tree::Index, b"i2".to_vec(), b"gone".to_vec());
    b.put(Tree::Records, b"p\x00r1".to_vec(), b"row".to_vec());
    s.commit(&b).unwrap();
    assert_eq!(
        s.get_linked(Tree::Index, b"i1", Tree::Records, b"p\x00")
            .unwrap(),
        Some((b"r1".to_vec(), Some(b"row".to_vec())))
    );
    assert_eq!(
        s.get_linked(Tree::Index, b"i2", Tree::Records, b"p\x00")
            .unwrap(),
        Some((b"gone".to_vec(), None))
    );
    assert_eq!(
        s.get_linked(Tree::Index, b"i3", Tree::Records, b"")
            .unwrap(),
        None
    );
    let mut b = Batch::default();
    b.delete(Tree::Index, b"i1".to_vec());
    b.delete(Tree::Index, b"i2".to_vec());
    b.delete(Tree::Records, b"p\x00r1".to_vec());
    s.commit(&b).unwrap();

    // contradictory guards never hold; ops on one key apply in order
    let mut b = Batch::default();
    b.guard(Tree::Tokens, b"c".to_vec(), None);
    b.guard(Tree::Tokens, b"c".to_vec(), Some(b"v".to_vec()));
    b.put(Tree::Tokens, b"c".to_vec(), b"v".to_vec());
    assert!(matches!(s.commit(&b), Err(StoreError::Conflict)));
    assert_eq!(s.get(Tree::Tokens, b"c").unwrap(), None);
    let mut b = Batch::default();
    b.guard(Tree::Tokens, b"d".to_vec(), None);
    b.guard(Tree::Tokens, b"e".to_vec(), None);
    b.put(Tree::Tokens, b"d".to_vec(), b"1".to_vec());
    b.delete(Tree::Tokens, b"d".to_vec());
    b.put(Tree::Tokens, b"e".to_vec(), b"1".to_vec());
    b.put(Tree::Tokens, b"e".to_vec(), b"2".to_vec());
    s.commit(&b).unwrap();
    assert_eq!(s.get(Tree::Tokens, b"d").unwrap(), None);
    assert_eq!(s.get(Tree::Tokens, b"e").unwrap(), Some(b"2".to_vec()));
    let mut b = Batch::default();
    b.delete(Tree::Tokens, b"e".to_vec());
    s.commit(&b).unwrap();

    // ordered range and prefix scans, bounded by limit and by tree
    let mut b = Batch::default();
    for k in [&b"p\x00"[..], b"p\x01", b"p\xff", b"q", b"o"] {
        b.put(Tree::Expiry, k.to_vec(), k.to_vec());
    }
    b.put(Tree::Tokens, b"p\x02".to_vec(), b"other".to_vec());
    s.commit(&b).unwrap();
    let keys = |v: Vec<Entry>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(s.scan_prefix(Tree::Expiry, b"p", usize::MAX).unwrap()),
        vec![b"p\x00".to_vec(), b"p\x01".to_vec(), b"p\xff".to_vec()]
    );
    assert_eq!(s.scan_prefix(Tree::Expiry, b"p", 2).unwrap().len(), 2);
    assert_eq!(
        keys(s.range(Tree::Expiry, b"o", Some(b"p\x01"), 10).unwrap()),
        vec![b"o".to_vec(), b"p\x00".to_vec()]
    );
    assert_eq!(s.range(Tree::Expiry, b"", None, 100).unwrap().len(), 5);
    assert_eq!(s.range(Tree::Audit, b"", None, 100).unwrap().len(), 0);
    assert_eq!(
        s.scan_prefix(Tree::Tokens, b"", 10).unwrap(),
        vec![(b"p\x02".to_vec(), b"other".to_vec())]
    );
    // paged scans: every page size sees every entry once, in order, and no other tree
    let all = keys(s.range(Tree::Expiry, b"", None, usize::MAX).unwrap());
    for page in [1, 2, 3, 5, 100] {
        let paged: Vec<Vec<u8>> = s
            .scan(Tree::Expiry, b"", None, page)
            .map(|e| e.unwrap().0)
            .collect();
        assert_eq!(paged, all, "page size {page}");
        let sizes: Vec<usize> = s
            .pages(Tree::Expiry, b"", None, page)
            .map(|p| p.unwrap().len())
            .collect();
        assert!(sizes.iter().all(|n| *n > 0 && *n <= page), "{sizes:?}");
        assert_eq!(
            s.scan_all(Tree::Expiry, b"p", page)
                .map(|e| e.unwrap().0)
                .collect::<Vec<_>>(),
            vec![b"p\x00".to_vec(), b"p\x01".to_vec(), b"p\xff".to_vec()]
        );
        assert_eq!(
            s.scan(Tree::Expiry, b"o", Some(b"p\x01"), page).count(),
            2,
            "page size {page}"
        );
    }
    assert_eq!(s.scan_all(Tree::Audit, b"", 2).count(), 0);
    // the newest value of a tree: none when empty, then the value of the greatest key
    assert_eq!(s.last_value(Tree::Audit).unwrap(), None);
    let mut b = Batch::default();
    for k in [&b"\x00\x02"[..], b"\x00\x01", b"\x00\x03\xff"] {
        b.put(Tree::Audit, k.to_vec(), [b"link ", k].concat());
    }
    s.commit(&b).unwrap();
    assert_eq!(
        s.last_value(Tree::Audit).unwrap().as_deref(),
        Some(&b"link \x00\x03\xff"[..])
    );
    assert_eq!(s.last_value(Tree::Suppress).unwrap(), None);
    // a copy holds every row of every tree (the store is `compact`ed into a fresh one)
    let copy = MemoryStore::new();
    copy_trees(s, &copy).unwrap();
    for t in Tree::ALL {
        assert_eq!(
            copy.range(t, b"", None, usize::MAX).unwrap(),
            s.range(t, b"", None, usize::MAX).unwrap(),
            "{}",
            t.name()
        );
    }
    s.flush().unwrap();
}

/// Guards as a true compare-and-swap under contention: `stores` are handles on the
/// same data (one store shared, or several connections to one database). Every
/// increment of a guarded counter that commits is counted exactly once, and of many
/// racing creations of one key exactly one wins.
pub(crate) fn conformance_concurrent(stores: Vec<std::sync::Arc<dyn Store>>) {
    const THREADS: usize = 6;
    const INCREMENTS: u64 = 25;
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let s = stores[i % stores.len()].clone();
            std::thread::spawn(move || {
                let mut done = 0;
                while done < INCREMENTS {
                    let cur = s.get(Tree::Meta, b"counter").unwrap();
                    let n = cur
                        .as_deref()
                        .map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()));
                    let mut b = Batch::default();
                    b.guard(Tree::Meta, b"counter".to_vec(), cur);
                    b.put(
                        Tree::Meta,
                        b"counter".to_vec(),
                        (n + 1).to_be_bytes().to_vec(),
                    );
                    match s.commit(&b) {
                        Ok(()) => done += 1,
                        Err(StoreError::Conflict) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let v = stores[0].get(Tree::Meta, b"counter").unwrap().unwrap();
    assert_eq!(
        u64::from_be_bytes(v.try_into().unwrap()),
        THREADS as u64 * INCREMENTS
    );

    for round in 0u8..5 {
        let key = vec![b'u', round];
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let s = stores[i % stores.len()].clone();
                let key = key.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let mut b = Batch::default();
                    b.guard(Tree::Index, key.clone(), None);
                    b.put(Tree::Index, key.clone(), vec![i as u8]);
                    b.put(
                        Tree::Records,
                        [key.as_slice(), &[i as u8]].concat(),
                        vec![1],
                    );
                    barrier.wait();
                    match s.commit(&b) {
                        Ok(()) => true,
                        Err(StoreError::Conflict) => false,
                        Err(e) => panic!("{e}"),
                    }
                })
            })
            .collect();
        let wins: Vec<usize> = handles
            .into_iter()
            .enumerate()
            .filter_map(|(i, h)| h.join().unwrap().then_some(i))
            .collect();
        assert_eq!(wins.len(), 1, "exactly one creation wins");
        let winner = stores[1 % stores.len()].get(Tree::Index, &key).unwrap();
        assert_eq!(winner, Some(vec![wins[0] as u8]));
        // The losers wrote nothing, in any tree.
        assert_eq!(s_len(&*stores[0], Tree::Records, &key), 1);
    }

    // An absence guard on a key the batch does not write holds no placeholder.
    let mut b = Batch::default();
    b.guard(Tree::Audit, b"never".to_vec(), None);
    b.put(Tree::Audit, b"other".to_vec(), b"x".to_vec());
    stores[0].commit(&b).unwrap();
    assert_eq!(stores[0].get(Tree::Audit, b"never").unwrap(), None);
    assert_eq!(
        stores[0].scan_prefix(Tree::Audit, b"", 10).unwrap().len(),
        1
    );
}

fn s_len(s: &dyn Store, tree: Tree, prefix: &[u8]) -> usize {
    s.scan_prefix(tree, prefix, usize::MAX).unwrap().len()
}
