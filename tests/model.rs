//! Random sequences of vault operations checked against a plain model of the policy
//! rules (consent, withdrawal, opt-out, suppression, erasure, import).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use phonevault::store::MemoryStore;
use phonevault::vault::{ImportOptions, Target, Vault, VaultError};
use proptest::prelude::*;

const NUMBERS: [&str; 5] = [
    "+447400123001",
    "+447400123002",
    "+12015550143",
    "+33612345610",
    "+3546111231",
];
const PURPOSES: [&str; 2] = ["otp", "marketing"];

#[derive(Clone, Debug)]
enum Op {
    Add(usize, usize),
    Import(Vec<usize>, usize),
    Withdraw(usize, usize),
    OptOut(usize, Option<usize>),
    Erase(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0..NUMBERS.len();
    let p = 0..PURPOSES.len();
    prop_oneof![
        (n.clone(), p.clone()).prop_map(|(n, p)| Op::Add(n, p)),
        (proptest::collection::vec(n.clone(), 1..4), p.clone())
            .prop_map(|(ns, p)| Op::Import(ns, p)),
        (n.clone(), p.clone()).prop_map(|(n, p)| Op::Withdraw(n, p)),
        (n.clone(), proptest::option::of(p)).prop_map(|(n, p)| Op::OptOut(n, p)),
        n.prop_map(Op::Erase),
    ]
}

#[derive(Clone, Debug, Default)]
struct Entry {
    live: BTreeSet<usize>,
    opted_out: BTreeSet<usize>,
    all: bool,
}

impl Entry {
    fn readable(&self, p: usize) -> bool {
        self.live.contains(&p) && !self.all && !self.opted_out.contains(&p)
    }
}

fn target(n: usize) -> Target<'static> {
    Target::Phone {
        input: NUMBERS[n],
        region: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn vault_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..30)) {
        let v = Vault::in_memory(Arc::new(MemoryStore::new())).unwrap();
        let purposes: Vec<String> = PURPOSES.iter().map(|s| s.to_string()).collect();
        v.create_tenant("t", &purposes, Some(1000)).unwrap();
        let mut model: BTreeMap<usize, Entry> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Add(n, p) => {
                    v.add("t", NUMBERS[n], None, &[PURPOSES[p].to_owned()], "src").unwrap();
                    let e = model.entry(n).or_default();
                    e.all = false;
                    e.opted_out.remove(&p);
                    e.live.insert(p);
                }
                Op::Import(ns, p) => {
                    let csv = std::iter::once("phone")
                        .chain(ns.iter().map(|&n| NUMBERS[n]))
                        .collect::<Vec<_>>()
                        .join("\n");
                    let opts = ImportOptions {
                        tenant: "t".into(),
                        purposes: vec![PURPOSES[p].to_owned()],
                        source: "bulk".into(),
                        region: None,
                        column: "phone".into(),
                    };
                    v.import(&opts, csv.as_bytes(), |_| Ok(()), |_| {}).unwrap();
                    for n in ns {
                        let e = model.entry(n).or_default();
                        if !e.all && !e.opted_out.contains(&p) {
                            e.live.insert(p);
                        }
                    }
                }
                Op::Withdraw(n, p) => {
                    let r = v.withdraw("t", target(n), PURPOSES[p]);
                    match model.get_mut(&n) {
                        None => prop_assert!(matches!(r, Err(VaultError::NoSuchRecord(_)))),
                        Some(e) => {
                            r.unwrap();
                            e.live.remove(&p);
                        }
                    }
                }
                Op::OptOut(n, p) => {
                    let r = v.opt_out("t", target(n), p.map(|p| PURPOSES[p]));
                    match model.get_mut(&n) {
                        None => prop_assert!(matches!(r, Err(VaultError::NoSuchRecord(_)))),
                        Some(e) => {
                            r.unwrap();
                            match p {
                                Some(p) => {
                                    e.opted_out.insert(p);
                                    e.live.remove(&p);
                                }
                                None => {
                                    e.all = true;
                                    e.live.clear();
                                }
                            }
                        }
                    }
                }
                Op::Erase(n) => {
                    let r = v.erase("t", target(n));
                    match model.remove(&n) {
                        None => prop_assert!(matches!(r, Err(VaultError::NoSuchRecord(_)))),
                        Some(_) => {
                            r.unwrap();
                        }
                    }
                }
            }
            // After every step, every read agrees with the model.
            for (n, number) in NUMBERS.iter().enumerate() {
                for (p, purpose) in PURPOSES.iter().enumerate() {
                    let want = model.get(&n).is_some_and(|e| e.readable(p));
                    let got = v.find("t", number, None, purpose).unwrap().is_some();
                    prop_assert_eq!(got, want, "{} {}", number, purpose);
                    let last4 = &number[number.len() - 4..];
                    let cc: u16 = if number.starts_with("+44") { 44 } else if number.starts_with("+33") { 33 } else if number.starts_with("+354") { 354 } else { 1 };
                    let by_last4 = v.find_last4("t", cc, last4, purpose).unwrap();
                    prop_assert_eq!(by_last4.len(), usize::from(want));
                }
                let held = v.subject("t", number, None).unwrap().is_some();
                prop_assert_eq!(held, model.contains_key(&n));
            }
        }
    }
}
