//! Random sequences of vault operations checked against a plain model of the policy
//! rules (consent, withdrawal, opt-out, suppression, erasure, import). The model and
//! the checks are `phonevault::fuzzing::run_ops`, which the `ops` fuzz target runs too.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

use phonevault::fuzzing::{run_ops, Op, MODEL_NUMBERS, MODEL_PURPOSES};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    let n = 0..MODEL_NUMBERS.len();
    let p = 0..MODEL_PURPOSES.len();
    prop_oneof![
        (n.clone(), p.clone()).prop_map(|(n, p)| Op::Add(n, p)),
        (proptest::collection::vec(n.clone(), 1..4), p.clone())
            .prop_map(|(ns, p)| Op::Import(ns, p)),
        (n.clone(), p.clone()).prop_map(|(n, p)| Op::Withdraw(n, p)),
        (n.clone(), proptest::option::of(p)).prop_map(|(n, p)| Op::OptOut(n, p)),
        n.prop_map(Op::Erase),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn vault_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..30)) {
        if let Err(v) = run_ops(&ops) {
            prop_assert!(false, "{}", v);
        }
    }
}
