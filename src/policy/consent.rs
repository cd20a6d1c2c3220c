//! What each consent operation does to a record body, one function each, so that the
//! CLI, the API and imports apply the same rule.
//!
//! | operation | rule |
//! |---|---|
//! | add or import of a new number | [`initial`]: a grant per purpose |
//! | add of a known number, `consent grant` | [`explicit`]: lifts the opt-outs the purpose overrides, then grants |
//! | import of a known number | [`bulk`]: never lifts an opt-out; skips a number opted out of everything |
//! | `consent withdraw` | [`withdraw`] |
//! | opt-out | [`opt_out`]: withdraws what it covers and records the opt-out |

use crate::record::RecordBody;

/// What [`bulk`] did to a known number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bulk {
    /// New grants were added.
    Changed,
    /// Every purpose was already granted or is opted out of.
    Unchanged,
    /// The number opted out of everything: an import never re-adds consent.
    Suppressed,
}

/// The grants of a new record: one per purpose (a repeated purpose once).
pub fn initial(body: &mut RecordBody, purposes: &[String], source: &str, now: u64) {
    for p in purposes {
        body.grant(p, source, now);
    }
}

/// An explicit consent (an add naming its consents and source, `consent grant`): the
/// one way to lift an opt-out. Returns whether the body changed.
pub fn explicit(body: &mut RecordBody, purposes: &[String], source: &str, now: u64) -> bool {
    let mut changed = false;
    for p in purposes {
        changed |= body.lift_opt_outs(p, now);
        changed |= body.grant(p, source, now);
    }
    changed
}

/// A bulk import's consent for a known number: grants what is neither granted nor
/// opted out of, and leaves a number opted out of everything alone.
pub fn bulk(body: &mut RecordBody, purposes: &[String], source: &str, now: u64) -> Bulk {
    if body.suppressed() {
        return Bulk::Suppressed;
    }
    let mut changed = false;
    for p in purposes {
        if !body.opted_out(p) {
            changed |= body.grant(p, source, now);
        }
    }
    if changed {
        Bulk::Changed
    } else {
        Bulk::Unchanged
    }
}

/// Withdraws the live grant for `purpose`. Returns whether the body changed.
pub fn withdraw(body: &mut RecordBody, purpose: &str, now: u64) -> bool {
    body.withdraw(purpose, now)
}

/// An opt-out of `purpose`, or of everything (`None`). Returns whether it changed.
pub fn opt_out(body: &mut RecordBody, purpose: Option<&str>, now: u64) -> bool {
    body.opt_out(purpose, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> RecordBody {
        RecordBody {
            e164: "+447700900123".into(),
            country_code: 44,
            region: "GB".into(),
            kind: 1,
            grants: Vec::new(),
            opt_outs: Vec::new(),
            created_at: 10,
            updated_at: 10,
            verified_at: None,
        }
    }

    fn p(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn initial_grants_each_purpose_once() {
        let mut b = body();
        initial(&mut b, &p(&["otp", "otp", "support"]), "web", 10);
        assert_eq!(b.grants.len(), 2);
        assert!(b.has_live_consent("otp") && b.has_live_consent("support"));
    }

    #[test]
    fn an_explicit_consent_lifts_an_opt_out_and_a_bulk_one_never_does() {
        let mut b = body();
        initial(&mut b, &p(&["otp"]), "web", 10);
        assert!(opt_out(&mut b, Some("marketing"), 20));
        assert_eq!(bulk(&mut b, &p(&["marketing"]), "crm", 30), Bulk::Unchanged);
        assert!(!b.has_live_consent("marketing"));
        assert!(explicit(&mut b, &p(&["marketing"]), "call", 40));
        assert!(b.has_live_consent("marketing"));
        assert!(!explicit(&mut b, &p(&["marketing"]), "call", 50));
    }

    #[test]
    fn a_bulk_consent_skips_a_number_opted_out_of_everything() {
        let mut b = body();
        initial(&mut b, &p(&["otp"]), "web", 10);
        assert_eq!(bulk(&mut b, &p(&["support"]), "crm", 15), Bulk::Changed);
        assert!(opt_out(&mut b, None, 20));
        assert!(!b.is_live());
        let before = b.clone();
        assert_eq!(
            bulk(&mut b, &p(&["otp", "support"]), "crm", 30),
            Bulk::Suppressed
        );
        assert!(b == before, "nothing changed");
    }

    #[test]
    fn withdraw_keeps_the_history() {
        let mut b = body();
        initial(&mut b, &p(&["otp"]), "web", 10);
        assert!(withdraw(&mut b, "otp", 20));
        assert!(!withdraw(&mut b, "otp", 30));
        assert_eq!(b.grants.len(), 1);
        assert_eq!(b.grants[0].withdrawn_at, Some(20));
    }
}
