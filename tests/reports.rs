//! The privacy policy's read side: anonymized statistics, third-party sharing under
//! per-partner pseudonyms, subject access and stale numbers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use phonevault::stats::StatsQuery;
use phonevault::store::MemoryStore;
use phonevault::vault::{Target, Vault, VaultError};

/// A tenant name the test writes out, parsed as the CLI and the server parse one.
fn tenant(name: &str) -> phonevault::policy::TenantName {
    phonevault::policy::TenantName::parse(name).expect("a tenant name of the accepted form")
}

/// A consent source the test writes out, parsed as the CLI and the server parse one.
fn source(s: &str) -> phonevault::policy::Source {
    phonevault::policy::Source::parse(s).expect("a consent source of the accepted form")
}

fn p(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn vault() -> (Vault, Arc<AtomicU64>) {
    let mut v = Vault::in_memory(Arc::new(MemoryStore::new())).unwrap();
    let clock = Arc::new(AtomicU64::new(1_790_000_000));
    let c = clock.clone();
    v.set_clock(Arc::new(move || c.load(Ordering::SeqCst)));
    v.create_tenant(
        &tenant("shop"),
        &p(&["otp", "marketing", "share:acme", "share:globex"]),
        None,
    )
    .unwrap();
    (v, clock)
}

fn add(v: &Vault, n: &str, purposes: &[&str]) {
    v.add(&tenant("shop"), n, None, &p(purposes), &source("test"))
        .unwrap();
}

#[test]
fn stats_suppress_small_groups() {
    let (v, _) = vault();
    for i in 1..=3 {
        add(&v, &format!("+354611123{i}"), &["otp"]); // IS mobile: 3
    }
    for i in 10..22 {
        add(&v, &format!("+4474001230{i}"), &["otp"]); // GB mobile: 12
    }
    for i in 10..25 {
        add(&v, &format!("+336123456{i}"), &["otp"]); // FR mobile: 15
    }
    // opted out of everything: not live, not counted
    v.opt_out(
        &tenant("shop"),
        Target::Phone {
            input: "+33612345610",
            region: None,
        },
        None,
    )
    .unwrap();
    let q = StatsQuery {
        by_country: true,
        by_type: true,
        min_group: 10,
        epsilon: None,
    };
    let s = v.stats(&tenant("shop"), &q).unwrap();
    assert_eq!(s.suppressed_groups, 1);
    assert!(s.groups.iter().all(|g| g.count >= 10));
    assert!(s.groups.iter().all(|g| g.country.as_deref() != Some("IS")));
    let fr = s
        .groups
        .iter()
        .find(|g| g.country.as_deref() == Some("FR"))
        .unwrap();
    assert_eq!(fr.count, 14);
    assert_eq!(fr.kind, Some("MOBILE"));

    let noisy = StatsQuery {
        epsilon: Some(1.0),
        ..q
    };
    for _ in 0..50 {
        let s = v.stats(&tenant("shop"), &noisy).unwrap();
        assert!(s.groups.iter().all(|g| g.count >= 10));
        assert!(s
            .groups
            .iter()
            .all(|g| g.country.as_deref() != Some("IS") || g.count >= 10));
    }
    for bad in [
        StatsQuery { min_group: 1, ..q },
        StatsQuery {
            epsilon: Some(0.0),
            ..q
        },
        StatsQuery {
            epsilon: Some(-2.0),
            ..q
        },
    ] {
        assert!(matches!(
            v.stats(&tenant("shop"), &bad),
            Err(VaultError::Stats(_))
        ));
    }
}

#[test]
fn share_writes_only_the_partners_consented_records_under_its_own_ids() {
    let (v, _) = vault();
    add(&v, "+447400123001", &["share:acme"]);
    add(&v, "+447400123002", &["share:globex"]);
    add(&v, "+447400123003", &["share:acme", "share:globex"]);
    add(&v, "+447400123004", &["marketing", "otp"]); // no sharing consent at all
    let collect = |partner: &str| {
        let mut rows = Vec::new();
        v.share(&tenant("shop"), partner, |pid, f| {
            rows.push((
                pid.to_owned(),
                f.e164.expose_secret().to_owned(),
                f.id.to_string(),
            ));
            Ok(())
        })
        .unwrap();
        rows
    };
    let acme = collect("acme");
    let globex = collect("globex");
    let numbers = |rows: &[(String, String, String)]| {
        let mut n: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(numbers(&acme), vec!["+447400123001", "+447400123003"]);
    assert_eq!(numbers(&globex), vec!["+447400123002", "+447400123003"]);
    let a3 = acme.iter().find(|r| r.1 == "+447400123003").unwrap();
    let g3 = globex.iter().find(|r| r.1 == "+447400123003").unwrap();
    assert_ne!(
        a3.0, g3.0,
        "two partners get different ids for one customer"
    );
    assert_ne!(a3.0, a3.2, "the record id never leaves the vault");
    assert_eq!(a3.0.len(), 32);
    // stable across exports for one partner, and across a data-key rotation
    assert_eq!(collect("acme")[0].0, acme[0].0);
    v.rotate_key(&tenant("shop"), false).unwrap();
    assert_eq!(collect("acme")[0].0, acme[0].0);
    // withdrawn sharing consent: no longer shared
    v.withdraw(
        &tenant("shop"),
        Target::Phone {
            input: "+447400123001",
            region: None,
        },
        "share:acme",
    )
    .unwrap();
    assert_eq!(numbers(&collect("acme")), vec!["+447400123003"]);
    // undeclared partner
    assert!(matches!(
        v.share(&tenant("shop"), "initech", |_, _| Ok(())),
        Err(VaultError::UnknownPurpose { .. })
    ));
}

#[test]
fn subject_report_shows_a_withdrawn_consent_with_both_dates() {
    let (v, clock) = vault();
    let n = "+447400123958";
    add(&v, n, &["otp", "marketing"]);
    let granted = v.now();
    clock.fetch_add(3600, Ordering::SeqCst);
    v.withdraw(
        &tenant("shop"),
        Target::Phone {
            input: n,
            region: None,
        },
        "marketing",
    )
    .unwrap();
    let withdrawn = v.now();
    v.opt_out(
        &tenant("shop"),
        Target::Phone {
            input: n,
            region: None,
        },
        Some("marketing"),
    )
    .unwrap();
    let mut r = v.subject(&tenant("shop"), n, None).unwrap().unwrap();
    let m = r
        .consents
        .iter()
        .find(|c| c.purpose == "marketing")
        .unwrap();
    assert_eq!(m.granted_at, granted);
    assert_eq!(m.withdrawn_at, Some(withdrawn));
    assert_eq!(m.source, "test");
    let o = r.consents.iter().find(|c| c.purpose == "otp").unwrap();
    assert_eq!(o.withdrawn_at, None);
    assert_eq!(r.opt_outs.len(), 1);
    assert!(!r.phone.contains("7400123958"), "masked by default");
    assert!(!format!("{r:?}").contains("7400"));
    r.reveal();
    assert_eq!(r.phone, n);
    assert!(v
        .subject(&tenant("shop"), "+447400123959", None)
        .unwrap()
        .is_none());
}

#[test]
fn stale_lists_numbers_not_verified_within_n_days() {
    let (v, clock) = vault();
    add(&v, "+447400123001", &["otp"]);
    add(&v, "+447400123002", &["otp"]);
    clock.fetch_add(40 * 86_400, Ordering::SeqCst);
    v.verify(
        &tenant("shop"),
        Target::Phone {
            input: "+447400123002",
            region: None,
        },
    )
    .unwrap();
    clock.fetch_add(86_400, Ordering::SeqCst);
    let stale = v.stale(&tenant("shop"), 30).unwrap();
    assert_eq!(stale.len(), 1);
    assert!(stale[0].masked.ends_with("3001"));
    assert_eq!(stale[0].verified_at, None);
    assert_eq!(v.stale(&tenant("shop"), 0).unwrap().len(), 2);
    assert_eq!(v.stale(&tenant("shop"), 100).unwrap().len(), 0);
    // expired records are not listed, even before a purge
    v.set_retention(&tenant("shop"), Some(30)).unwrap();
    assert_eq!(v.stale(&tenant("shop"), 0).unwrap().len(), 1);
}
