//! The access rule and the values parsed at the edge: pure functions, no I/O.
//!
//! | task | item |
//! |---|---|
//! | may this caller do this? | [`decide`] → [`Decision`], over a [`Role`] |
//! | what consent operations do to a record | [`consent`] |
//! | has a record outlived its retention? | [`retention`] |
//! | a purpose, checked against what the tenant declared | [`Purpose::declared`] |
//! | tenant names, record ids, durations, last-4 digits, country codes, regions | [`values`] |
//!
//! Both the server and the CLI's in-process path ask [`decide`], so a refusal is
//! decided (and worded) in one place. Every value a caller sends is checked here
//! before anything logs, echoes or stores it; an error never repeats the value
//! (a phone number typed into the wrong field must not come back in a message, a log
//! line or the audit log): an undeclared purpose is named by its position.
//!
//! ```
//! use phonevault::policy::{decide, Access, Caller, Decision, Operation};
//! use phonevault::vault::Role;
//! let declared = ["otp".to_owned(), "marketing".to_owned()];
//! let token_purposes = ["otp".to_owned()];
//! let caller = Caller::Token {
//!     tenant: Some("shop"),
//!     role: Role::Writer,
//!     purposes: &token_purposes,
//!     reveal: false,
//! };
//! let d = decide(&caller, &Access::new("shop", Operation::Write, &declared).purposes(&["otp"]));
//! // A writer that cannot read everything gets the uniform answer of write routes.
//! assert!(matches!(d, Decision::Allow { detailed: false }));
//! ```

pub mod consent;
pub mod retention;
pub mod values;

pub use values::{
    parse_country_code, parse_duration, parse_last4, parse_record_id, parse_region, Source,
    TenantName, ValueError,
};

use bincode::{Decode, Encode};

/// The most records one last-4 search may return; more is refused with a request for
/// more digits (a support desk needs a handful, an enumeration needs them all).
pub const MAX_LAST4_RESULTS: usize = 10;

/// The fewest index entries a last-4 search may scan, whatever the tenant planned.
pub const MIN_LAST4_SCAN: usize = 64;

/// How many index entries a last-4 search may scan (and decrypt) in a tenant whose
/// index was planned for `expected_candidates` candidates per search: sixteen times
/// the plan, at least [`MIN_LAST4_SCAN`]. A tenant that outgrew its plan gets an
/// error asking for a rebuild, not a scan of the tenant.
pub fn last4_scan_limit(expected_candidates: f64) -> usize {
    let planned = if expected_candidates.is_finite() && expected_candidates > 0.0 {
        (expected_candidates * 16.0).ceil().min(1e6) as usize
    } else {
        0
    };
    planned.max(MIN_LAST4_SCAN)
}

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Role {
    /// Everything in its tenant (or, vault-wide, sealing and management).
    Admin,
    /// Adds, consent changes, opt-outs, verification, erasure.
    Writer,
    /// Lookups and reads for its purposes.
    Reader,
    /// Anonymized statistics only.
    Auditor,
    /// The inbound-message webhook of an SMS provider: opts a number out (and lifts
    /// an SMS opt-out) by the keyword its owner texted, and learns nothing else.
    Inbound,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Writer,
        Role::Reader,
        Role::Auditor,
        Role::Inbound,
    ];

    /// Parses `admin`, `writer`, `reader`, `auditor` or `inbound`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "writer" => Some(Role::Writer),
            "reader" => Some(Role::Reader),
            "auditor" => Some(Role::Auditor),
            "inbound" => Some(Role::Inbound),
            _ => None,
        }
    }

    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Writer => "writer",
            Role::Reader => "reader",
            Role::Auditor => "auditor",
            Role::Inbound => "inbound",
        }
    }
}

/// A purpose that the tenant declared: the only form in which a purpose reaches the
/// audit log, a message or the store.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Purpose(String);

impl Purpose {
    /// The purpose `given` if `declared` holds it; otherwise the refusal names it by
    /// `position` (0-based, shown 1-based) and never repeats it.
    ///
    /// # Errors
    /// [`ValueError::UndeclaredPurpose`].
    pub fn declared(declared: &[String], given: &str, position: usize) -> Result<Self, ValueError> {
        if declared.iter().any(|d| d == given) {
            Ok(Purpose(given.to_owned()))
        } else {
            Err(ValueError::UndeclaredPurpose {
                position: position.saturating_add(1),
                declared: declared.join(", "),
            })
        }
    }

    /// Every purpose of `given`, each checked with [`Purpose::declared`].
    ///
    /// # Errors
    /// [`ValueError::UndeclaredPurpose`] for the first undeclared one.
    pub fn all_declared(declared: &[String], given: &[String]) -> Result<Vec<Self>, ValueError> {
        given
            .iter()
            .enumerate()
            .map(|(i, p)| Purpose::declared(declared, p, i))
            .collect()
    }

    /// The purpose's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a request does, for the role check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Read a record by number or id.
    Read,
    /// Search by country code and last four digits.
    ReadLast4,
    /// Add, change consents, opt out, verify, erase.
    Write,
    /// Anonymized statistics.
    Stats,
    /// An inbound SMS: opt out or lift an SMS opt-out by the keyword its sender texted.
    InboundSms,
    /// Suppression lists: list, upload, drop (a tenant admin's task: a list decides
    /// what marketing reaches).
    Lists,
}

impl Operation {
    fn describe(self) -> &'static str {
        match self {
            Operation::Read | Operation::ReadLast4 => "read numbers (needs reader or admin)",
            Operation::Write => "change records (needs writer or admin)",
            Operation::Stats => "read statistics (needs auditor or admin)",
            Operation::InboundSms => "take inbound SMS (needs inbound or admin)",
            Operation::Lists => "manage suppression lists (needs admin)",
        }
    }

    fn allows(self, role: Role) -> bool {
        match self {
            Operation::Read | Operation::ReadLast4 => matches!(role, Role::Admin | Role::Reader),
            Operation::Write => matches!(role, Role::Admin | Role::Writer),
            Operation::Stats => matches!(role, Role::Admin | Role::Auditor),
            Operation::InboundSms => matches!(role, Role::Admin | Role::Inbound),
            Operation::Lists => role == Role::Admin,
        }
    }
}

/// Who asks.
#[derive(Clone, Copy, Debug)]
pub enum Caller<'a> {
    /// The operator at the command line, holding the vault's passphrase or key file:
    /// every right, but the rules that hold for everyone (no full numbers from a
    /// last-4 search) still apply.
    Operator,
    /// A bearer token.
    Token {
        /// Its tenant (`None`: vault-wide admin, which reads no tenant's data).
        tenant: Option<&'a str>,
        /// Its role.
        role: Role,
        /// Its purposes; empty means every purpose of its tenant.
        purposes: &'a [String],
        /// Whether it may see full numbers.
        reveal: bool,
    },
}

/// One request's access question.
#[derive(Clone, Copy, Debug)]
pub struct Access<'a> {
    tenant: &'a str,
    op: Operation,
    declared: &'a [String],
    purposes: &'a [&'a str],
    reveal: bool,
}

impl<'a> Access<'a> {
    /// `op` in `tenant`, whose declared purposes are `declared` (empty when not known
    /// yet: the vault checks them again).
    pub fn new(tenant: &'a str, op: Operation, declared: &'a [String]) -> Self {
        Access {
            tenant,
            op,
            declared,
            purposes: &[],
            reveal: false,
        }
    }

    /// The purposes the request names (the read purpose, or the consents to record).
    pub fn purposes(mut self, purposes: &'a [&'a str]) -> Self {
        self.purposes = purposes;
        self
    }

    /// Whether the request asks for full numbers.
    pub fn reveal(mut self, reveal: bool) -> Self {
        self.reveal = reveal;
        self
    }
}

/// The answer to an access question: a value, audited the same way whoever asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow {
        /// Whether a write may answer in detail (created or merged, changed or not,
        /// the record id). Only a caller that could read every record of the tenant
        /// anyway gets detail; any other writer gets the same bytes whether the
        /// number is absent, consented for other purposes only, suppressed or
        /// expired, so a write is no existence oracle.
        detailed: bool,
    },
    /// Refused.
    Deny(Refusal),
}

/// Why a request was refused. Messages say what to do next and repeat no value of
/// the request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The token belongs to another tenant (same answer whether or not the tenant
    /// exists).
    #[error("this token is not valid for this tenant: use a token created with --tenant for it")]
    WrongTenant,
    /// The role may not do the operation.
    #[error("role `{role}` may not {what}: use a token with the right role")]
    Role {
        /// The token's role.
        role: &'static str,
        /// What was asked.
        what: &'static str,
    },
    /// The token may not use the purpose at this position of the request.
    #[error("this token may not use purpose number {position} of the request: use a token created with --purposes including it")]
    Purpose {
        /// 1-based position among the purposes the request names.
        position: usize,
    },
    /// Full numbers without the reveal right.
    #[error("this token may not reveal full numbers: omit \"reveal\" for masked numbers, or use a token created with --reveal")]
    Reveal,
    /// Full numbers asked of a last-4 search.
    #[error("a last-4 search returns masked numbers only: look the full number up with its id (GET numbers/{{id}}) or by number, with reveal")]
    Last4Reveal,
}

/// Decides whether `caller` may make `access`: tenant, role, purposes, reveal, in
/// that order, the first failing check giving the refusal.
pub fn decide(caller: &Caller<'_>, access: &Access<'_>) -> Decision {
    if access.op == Operation::ReadLast4 && access.reveal {
        return Decision::Deny(Refusal::Last4Reveal);
    }
    let Caller::Token {
        tenant,
        role,
        purposes,
        reveal,
    } = *caller
    else {
        return Decision::Allow { detailed: true };
    };
    if tenant != Some(access.tenant) {
        return Decision::Deny(Refusal::WrongTenant);
    }
    if !access.op.allows(role) {
        return Decision::Deny(Refusal::Role {
            role: role.as_str(),
            what: access.op.describe(),
        });
    }
    let allows = |p: &str| purposes.is_empty() || purposes.iter().any(|q| q == p);
    if let Some(position) = access.purposes.iter().position(|p| !allows(p)) {
        return Decision::Deny(Refusal::Purpose {
            position: position + 1,
        });
    }
    if access.reveal && !reveal {
        return Decision::Deny(Refusal::Reveal);
    }
    // Detail only for a tenant admin that holds every declared purpose: it can read
    // whatever a write would tell it.
    let all_purposes = purposes.is_empty()
        || (!access.declared.is_empty() && access.declared.iter().all(|d| allows(d)));
    Decision::Allow {
        detailed: role == Role::Admin && all_purposes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token<'a>(role: Role, purposes: &'a [String], reveal: bool) -> Caller<'a> {
        Caller::Token {
            tenant: Some("shop"),
            role,
            purposes,
            reveal,
        }
    }

    fn declared() -> Vec<String> {
        vec!["marketing".into(), "otp".into()]
    }

    #[test]
    fn only_a_tenant_admin_manages_suppression_lists() {
        let d = declared();
        let marketing = ["marketing"];
        let a = Access::new("shop", Operation::Lists, &d).purposes(&marketing);
        for role in [Role::Writer, Role::Reader, Role::Auditor, Role::Inbound] {
            assert!(
                matches!(
                    decide(&token(role, &[], false), &a),
                    Decision::Deny(Refusal::Role { .. })
                ),
                "{role:?}"
            );
        }
        assert!(matches!(
            decide(&token(Role::Admin, &[], false), &a),
            Decision::Allow { .. }
        ));
        // An admin for otp only cannot make a list suppress marketing.
        let otp = ["otp".to_owned()];
        assert!(matches!(
            decide(&token(Role::Admin, &otp, false), &a),
            Decision::Deny(Refusal::Purpose { position: 1 })
        ));
    }

    #[test]
    fn another_tenants_token_is_refused_whatever_else() {
        let d = declared();
        let c = token(Role::Admin, &[], true);
        let a = Access::new("other", Operation::Read, &d);
        assert_eq!(decide(&c, &a), Decision::Deny(Refusal::WrongTenant));
        let vault_wide = Caller::Token {
            tenant: None,
            role: Role::Admin,
            purposes: &[],
            reveal: true,
        };
        let a = Access::new("shop", Operation::Read, &d);
        assert_eq!(
            decide(&vault_wide, &a),
            Decision::Deny(Refusal::WrongTenant)
        );
    }

    #[test]
    fn roles_allow_their_operations_only() {
        let d = declared();
        for (role, ok) in [
            (Role::Admin, [true, true, true, true, true]),
            (Role::Reader, [true, true, false, false, false]),
            (Role::Writer, [false, false, true, false, false]),
            (Role::Auditor, [false, false, false, true, false]),
            (Role::Inbound, [false, false, false, false, true]),
        ] {
            for (op, ok) in [
                Operation::Read,
                Operation::ReadLast4,
                Operation::Write,
                Operation::Stats,
                Operation::InboundSms,
            ]
            .into_iter()
            .zip(ok)
            {
                let got = decide(&token(role, &[], false), &Access::new("shop", op, &d));
                assert_eq!(matches!(got, Decision::Allow { .. }), ok, "{role:?} {op:?}");
            }
        }
    }

    #[test]
    fn an_inbound_token_only_takes_inbound_sms_and_never_gets_detail() {
        let d = declared();
        let c = token(Role::Inbound, &[], false);
        let a = Access::new("shop", Operation::InboundSms, &d);
        assert_eq!(decide(&c, &a), Decision::Allow { detailed: false });
        for op in [
            Operation::Read,
            Operation::ReadLast4,
            Operation::Write,
            Operation::Stats,
        ] {
            let got = decide(&c, &Access::new("shop", op, &d));
            assert!(
                matches!(
                    got,
                    Decision::Deny(Refusal::Role {
                        role: "inbound",
                        ..
                    })
                ),
                "{op:?}"
            );
        }
        // Another tenant's inbound webhook is refused before the role is looked at.
        let a = Access::new("other", Operation::InboundSms, &d);
        assert_eq!(decide(&c, &a), Decision::Deny(Refusal::WrongTenant));
        // Readers, writers and auditors may not stand in for the provider.
        for role in [Role::Reader, Role::Writer, Role::Auditor] {
            let a = Access::new("shop", Operation::InboundSms, &d);
            assert!(matches!(
                decide(&token(role, &[], false), &a),
                Decision::Deny(Refusal::Role { .. })
            ));
        }
    }

    #[test]
    fn a_purpose_outside_the_token_is_named_by_position() {
        let d = declared();
        let p = vec!["otp".to_owned()];
        let c = token(Role::Writer, &p, false);
        let a = Access::new("shop", Operation::Write, &d).purposes(&["otp", "+447700900123"]);
        let got = decide(&c, &a);
        assert_eq!(got, Decision::Deny(Refusal::Purpose { position: 2 }));
        let Decision::Deny(r) = got else {
            unreachable!()
        };
        assert!(!r.to_string().contains("447700900123"));
    }

    #[test]
    fn reveal_needs_the_right_and_never_comes_from_last4() {
        let d = declared();
        let a = Access::new("shop", Operation::Read, &d).reveal(true);
        assert_eq!(
            decide(&token(Role::Reader, &[], false), &a),
            Decision::Deny(Refusal::Reveal)
        );
        assert!(matches!(
            decide(&token(Role::Reader, &[], true), &a),
            Decision::Allow { .. }
        ));
        let a = Access::new("shop", Operation::ReadLast4, &d).reveal(true);
        for c in [token(Role::Admin, &[], true), Caller::Operator] {
            assert_eq!(decide(&c, &a), Decision::Deny(Refusal::Last4Reveal));
        }
    }

    #[test]
    fn write_detail_only_for_an_admin_holding_every_purpose() {
        let d = declared();
        let a = Access::new("shop", Operation::Write, &d);
        let otp = vec!["otp".to_owned()];
        let both = declared();
        for (c, detailed) in [
            (token(Role::Admin, &[], false), true),
            (token(Role::Admin, &both, false), true),
            (token(Role::Admin, &otp, false), false),
            (token(Role::Writer, &[], false), false),
            (Caller::Operator, true),
        ] {
            assert_eq!(decide(&c, &a), Decision::Allow { detailed }, "{c:?}");
        }
        // Purposes not known: no detail for a token naming purposes.
        let a = Access::new("shop", Operation::Write, &[]);
        assert_eq!(
            decide(&token(Role::Admin, &both, false), &a),
            Decision::Allow { detailed: false }
        );
    }

    #[test]
    fn undeclared_purposes_are_named_by_position_never_repeated() {
        let d = declared();
        assert_eq!(Purpose::declared(&d, "otp", 0).unwrap().as_str(), "otp");
        let e = Purpose::all_declared(&d, &["otp".into(), "+447700900123".into()]).unwrap_err();
        assert_eq!(
            e,
            ValueError::UndeclaredPurpose {
                position: 2,
                declared: "marketing, otp".into()
            }
        );
        assert!(!e.to_string().contains("447700900123"), "{e}");
    }

    #[test]
    fn the_last4_scan_is_bounded_by_the_plan() {
        assert_eq!(last4_scan_limit(3.9), MIN_LAST4_SCAN);
        assert_eq!(last4_scan_limit(10.0), 160);
        assert_eq!(last4_scan_limit(f64::NAN), MIN_LAST4_SCAN);
        assert_eq!(last4_scan_limit(f64::INFINITY), MIN_LAST4_SCAN);
        assert!(last4_scan_limit(1e300) <= 1_000_000);
    }
}
