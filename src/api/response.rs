//! The answers of the routes. The server answers these types and the CLI's socket
//! client decodes them. An `Option` field that the document says is nullable is sent
//! as `null`; one it says may be absent is left out.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::openapi::Purpose;
use super::{ErrorDetail, Shown};
use crate::stats::Stats;
use crate::vault::{
    AddOutcome, Changed, Found, ImportSummary, ListCount, ListInfo, SuppressReport, TokenInfo,
};

/// `POST /v1/tenants/{tenant}/stats`: the statistics, and for each suppression list
/// the live records it holds back, under the same threshold and noise (the same
/// object `phonevault --json stats` prints in process).
#[derive(Serialize, ToSchema)]
pub struct StatsAnswer {
    /// The statistics.
    #[serde(flatten)]
    pub stats: Stats,
    /// Per suppression list of the tenant, its live records (absent without lists).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suppression_lists: Vec<ListCount>,
}

/// `GET /v1/sys/health`, `POST /v1/sys/unseal` and `POST /v1/sys/seal`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SealState {
    /// Whether the vault is sealed.
    pub sealed: bool,
}

/// The answer of every write to a caller without detail (see
/// [`crate::policy::Decision::Allow`]): the same bytes whether the number was absent,
/// consented for other purposes only, suppressed or expired.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// Always true.
    #[schema(schema_with = super::openapi::always_true)]
    pub accepted: bool,
}

impl Accepted {
    /// The one answer.
    pub const ANSWER: Accepted = Accepted { accepted: true };
}

/// A write's answer as a client reads it: in detail (a tenant admin holding every
/// purpose), or [`Accepted`], the one answer every other token gets whatever the vault
/// holds (no existence oracle).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum WriteAnswer<T> {
    /// The detailed answer.
    Detailed(T),
    /// The answer without detail.
    Accepted(Accepted),
}

/// What an add did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AddStatus {
    /// A new record.
    Created,
    /// An existing record gained a consent.
    Merged,
    /// An existing record already held every consent.
    Unchanged,
}

impl AddStatus {
    /// As in the answer.
    pub fn as_str(self) -> &'static str {
        match self {
            AddStatus::Created => "created",
            AddStatus::Merged => "merged",
            AddStatus::Unchanged => "unchanged",
        }
    }
}

/// `POST .../numbers`, answered in detail.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = AddResult)]
pub struct Added {
    /// The record id.
    pub id: String,
    /// What the add did.
    pub status: AddStatus,
    /// The given purposes a suppression list holds the number for: stored, and
    /// refused for them while listed.
    #[serde(default)]
    #[schema(value_type = Vec<Purpose>)]
    pub suppressed_for: Vec<String>,
}

impl From<AddOutcome> for Added {
    fn from(o: AddOutcome) -> Added {
        let status = match o {
            AddOutcome::Created(_) => AddStatus::Created,
            AddOutcome::Merged(_) => AddStatus::Merged,
            AddOutcome::Unchanged(_) => AddStatus::Unchanged,
        };
        Added {
            id: o.id().to_string(),
            status,
            suppressed_for: Vec::new(),
        }
    }
}

/// A record as a read answers it (`lookup`, `numbers/{id}`, each of `lookup/last4`).
// No `Debug`: it holds the number (masked unless revealed).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Record {
    /// The record id.
    pub id: String,
    /// The number, masked (`+44 ••• ••• 4567`) unless revealed.
    #[schema(value_type = String)]
    pub phone: Shown,
    /// Whether `phone` is masked.
    pub masked: bool,
    /// Country calling code.
    pub country_code: u16,
    /// Purposes with a live consent.
    pub purposes: Vec<String>,
    /// Created (unix seconds).
    pub created_at: u64,
    /// Last change (unix seconds).
    pub updated_at: u64,
    /// Last verification (unix seconds), `null` if never.
    pub verified_at: Option<u64>,
}

impl Record {
    /// The record `f` as shown to a caller: its number only when `reveal`.
    pub fn of(f: &Found, reveal: bool) -> Record {
        let phone = if reveal {
            f.e164.expose_secret().to_owned()
        } else {
            f.masked.clone()
        };
        Record {
            id: f.id.to_string(),
            phone: Shown::new(phone),
            masked: !reveal,
            country_code: f.country_code,
            purposes: f.purposes.clone(),
            created_at: f.created_at,
            updated_at: f.updated_at,
            verified_at: f.verified_at,
        }
    }
}

/// `POST .../lookup/last4`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Records {
    /// The records found (none is an empty list, not a 404).
    pub results: Vec<Record>,
}

/// `POST .../consent/grant`, `.../consent/withdraw`, `.../opt-out` and `.../verify`,
/// answered in detail.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Changed)]
pub struct ChangedAnswer {
    /// The record id.
    pub id: String,
    /// Whether the record changed.
    pub changed: bool,
    /// The consent receipt file, for a grant with `"receipt": true` only: canonical
    /// JSON (sorted keys, no whitespace) of `{"receipt": Kantara Consent Receipt v1.1
    /// fields, "signature": {"alg": "Ed25519", "publicKey", "value"}}`; save these exact
    /// bytes and check them with `phonevault receipt verify FILE --public-key K`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub receipt: Option<String>,
}

impl From<Changed> for ChangedAnswer {
    fn from(c: Changed) -> ChangedAnswer {
        ChangedAnswer {
            id: c.id().to_string(),
            changed: matches!(c, Changed::Yes(_)),
            receipt: None,
        }
    }
}

/// `POST .../erase`, answered in detail.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Erased {
    /// The record id.
    pub id: String,
    /// Always true.
    pub erased: bool,
}

/// `DELETE .../numbers/{id}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    /// Always true.
    pub deleted: bool,
}

/// What became of one item of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Stored (detailed answer).
    Ok,
    /// Refused: see the item's error.
    Error,
    /// The number opted out of everything; a batch, like an import, never lifts that
    /// (detailed answer).
    Suppressed,
    /// A valid number (answer without detail).
    Accepted,
}

/// One item of a batch's answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = BatchItemResult)]
pub struct ItemResult {
    /// The item's position in the request, from 0.
    pub index: usize,
    /// What became of it.
    pub status: ItemStatus,
    /// Why it was refused or suppressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<ErrorDetail>,
}

/// The counts of a batch answered without detail: the created / merged / unchanged /
/// suppressed split would say which numbers exist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UniformSummary {
    /// Items.
    pub rows: u64,
    /// Items that are valid numbers.
    pub accepted: u64,
    /// Items refused.
    pub rejected: u64,
}

/// The counts of a batch (or of an import through batches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BatchSummary {
    /// Without detail. First: a detailed summary has no `accepted`.
    Uniform(UniformSummary),
    /// In detail.
    Detailed(ImportSummary),
}

impl BatchSummary {
    /// Both counts together (of two batches of one import). A detailed and a uniform
    /// summary add up to a uniform one (the detailed counts say nothing more then).
    pub fn plus(self, other: BatchSummary) -> BatchSummary {
        use BatchSummary::{Detailed, Uniform};
        match (self, other) {
            (Detailed(mut a), Detailed(b)) => {
                a.add(&b);
                Detailed(a)
            }
            (a, b) => {
                let (a, b) = (a.uniform(), b.uniform());
                Uniform(UniformSummary {
                    rows: a.rows + b.rows,
                    accepted: a.accepted + b.accepted,
                    rejected: a.rejected + b.rejected,
                })
            }
        }
    }

    /// The counts without detail.
    pub fn uniform(self) -> UniformSummary {
        match self {
            BatchSummary::Uniform(u) => u,
            BatchSummary::Detailed(d) => UniformSummary {
                rows: d.rows,
                accepted: d.rows.saturating_sub(d.rejected),
                rejected: d.rejected,
            },
        }
    }
}

/// Documented by hand rather than derived: serde's untagged enum would be a `oneOf`,
/// and a uniform summary matches the detailed schema too (whose members may all be
/// absent, from an older server), so it is an `anyOf` of the two.
impl utoipa::PartialSchema for BatchSummary {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::AnyOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name(
                UniformSummary::name(),
            ))
            .item(utoipa::openapi::Ref::from_schema_name(ImportSummary::name()))
            .description(Some(
                "In detail (a tenant admin holding every purpose), or without detail (every \
                 other writer: rows, accepted, rejected).",
            ))
            .into()
    }
}

impl ToSchema for BatchSummary {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push((UniformSummary::name().into(), UniformSummary::schema()));
        schemas.push((ImportSummary::name().into(), ImportSummary::schema()));
    }
}

/// `POST .../numbers/batch`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchAnswer {
    /// One per item, in the request's order.
    pub results: Vec<ItemResult>,
    /// The counts.
    pub summary: BatchSummary,
}

/// A token as the token routes show it (never its secret but at creation).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Token)]
pub struct TokenView {
    /// The token's id.
    pub id: String,
    /// Its tenant, `null` for a vault-wide token.
    pub tenant: Option<String>,
    /// Its role.
    #[schema(schema_with = super::openapi::role)]
    pub role: String,
    /// The purposes it may use (none: every purpose of the tenant).
    pub purposes: Vec<String>,
    /// Whether it may reveal numbers.
    pub reveal: bool,
    /// Created (unix seconds).
    pub created_at: u64,
    /// Expiry (unix seconds), `null` if none.
    pub expires_at: Option<u64>,
}

impl From<&TokenInfo> for TokenView {
    fn from(t: &TokenInfo) -> TokenView {
        TokenView {
            id: t.id.clone(),
            tenant: t.tenant.clone(),
            role: t.role.as_str().to_owned(),
            purposes: t.purposes.clone(),
            reveal: t.reveal,
            created_at: t.created_at,
            expires_at: t.expires_at,
        }
    }
}

/// `POST /v1/sys/tokens`: the token and, once only, its secret.
// No `Debug`: it holds the secret.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The token.
    #[serde(flatten)]
    pub info: TokenView,
    /// The bearer secret (`pvt_` and 64 hex characters), shown once.
    #[schema(value_type = String)]
    pub token: Shown,
}

/// `GET /v1/sys/tokens`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    /// Every live token.
    pub tokens: Vec<TokenView>,
}

/// `DELETE /v1/sys/tokens/{id}` and `POST /v1/sys/tokens/revoke-all`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Revoked {
    /// How many tokens were revoked.
    pub revoked: u64,
}

/// `POST .../inbound-sms`: the same for a known and an unknown sender.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = InboundSmsAnswer)]
pub struct SmsReply {
    /// `opted_out`, `opt_out_lifted`, `help` or `none`.
    #[schema(schema_with = super::openapi::sms_action)]
    pub action: String,
    /// The tenant's confirmation text for it (`tenant set-sms --reply-stop` ...); empty
    /// for other texts unless configured.
    pub reply: String,
}

/// `GET .../suppression-lists`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionLists {
    /// The tenant's lists.
    pub lists: Vec<ListInfo>,
}

/// `DELETE .../suppression-lists/{list}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Dropped {
    /// Always true.
    #[schema(schema_with = super::openapi::always_true)]
    pub dropped: bool,
    /// The list's entries deleted.
    pub entries_deleted: u64,
}

/// `POST .../suppression-lists/{list}/uploads`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadStarted {
    /// The upload's id, for its rows and its commit.
    #[schema(pattern = "^[0-9a-f]{16}$")]
    pub upload: String,
}

/// `POST .../uploads/{upload}/rows`: a rejected number is named by its index, never
/// repeated.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadedRows {
    /// Numbers read.
    pub rows: u64,
    /// Numbers rejected.
    pub rejected: u64,
    /// One per rejected number.
    pub errors: Vec<RowError>,
}

/// A number an upload rejected.
#[derive(Debug, Serialize, ToSchema)]
pub struct RowError {
    /// Its position in the request, from 0.
    pub index: u64,
    /// Always `invalid_phone`.
    pub code: String,
    /// The phone error's own code (`too_short`, ...).
    pub reason: String,
    /// What is wrong with it (never the number).
    pub message: String,
}

/// `POST .../uploads/{upload}/commit`: the version now in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct Committed {
    /// The list.
    pub list: String,
    /// Its version now in force.
    pub version: u32,
    /// Distinct numbers on it.
    pub count: u64,
    /// The version it replaced, `null` for a first import.
    pub replaced: Option<u32>,
    /// Entries of replaced or abandoned versions deleted.
    pub removed: u64,
}

impl From<SuppressReport> for Committed {
    fn from(r: SuppressReport) -> Committed {
        Committed {
            list: r.list,
            version: r.version,
            count: r.count,
            replaced: r.replaced,
            removed: r.removed,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is the failure report

    use super::*;

    /// A detailed summary with these counts.
    fn detailed(rows: u64, created: u64, merged: u64, rejected: u64) -> BatchSummary {
        BatchSummary::Detailed(ImportSummary {
            rows,
            created,
            merged,
            rejected,
            ..ImportSummary::default()
        })
    }

    fn uniform(rows: u64, accepted: u64, rejected: u64) -> BatchSummary {
        BatchSummary::Uniform(UniformSummary {
            rows,
            accepted,
            rejected,
        })
    }

    /// A client tells the two summaries apart by their members alone.
    #[test]
    fn a_batch_summary_decodes_as_the_kind_it_was_sent_as() {
        for s in [detailed(3, 1, 1, 1), uniform(3, 2, 1)] {
            let back: BatchSummary =
                serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
            assert_eq!(back, s);
        }
        // A server older than `newly_valid` and `listed`.
        let old: BatchSummary = serde_json::from_str(
            r#"{"rows":1,"created":1,"merged":0,"unchanged":0,"rejected":0,"suppressed":0}"#,
        )
        .unwrap();
        assert!(matches!(old, BatchSummary::Detailed(s) if s.created == 1 && s.listed == 0));
    }

    /// The rows a client rejects itself add to a server's counts either way; without
    /// detail they are rejected, not accepted.
    #[test]
    fn summaries_add_up_and_uniform_wins() {
        let local = detailed(2, 0, 0, 2);
        assert_eq!(local.plus(detailed(5, 4, 0, 1)), detailed(7, 4, 0, 3));
        assert_eq!(local.plus(uniform(5, 4, 1)), uniform(7, 4, 3));
        assert_eq!(uniform(5, 4, 1).plus(local), uniform(7, 4, 3));
    }

    /// Absent and `null` as the document says: `verified_at` and a token's `tenant`
    /// and `expires_at` are `null`; a receipt, an item's error and its reason are left
    /// out.
    #[test]
    fn optional_members_are_null_or_absent_as_documented() {
        let changed = ChangedAnswer {
            id: "r".into(),
            changed: true,
            receipt: None,
        };
        assert_eq!(
            serde_json::to_string(&changed).unwrap(),
            r#"{"id":"r","changed":true}"#
        );
        let item = ItemResult {
            index: 0,
            status: ItemStatus::Ok,
            error: None,
        };
        assert_eq!(
            serde_json::to_string(&item).unwrap(),
            r#"{"index":0,"status":"ok"}"#
        );
        let error = ErrorDetail {
            code: "invalid_argument".into(),
            message: "m".into(),
            reason: None,
        };
        assert_eq!(
            serde_json::to_string(&error).unwrap(),
            r#"{"code":"invalid_argument","message":"m"}"#
        );
        let token = TokenView {
            tenant: None,
            expires_at: None,
            ..token()
        };
        let v = serde_json::to_value(&token).unwrap();
        assert!(v["tenant"].is_null() && v["expires_at"].is_null());
        assert_eq!(v.as_object().unwrap().len(), 7);
        let v = serde_json::to_value(record()).unwrap();
        assert!(v["verified_at"].is_null());
        assert_eq!(v.as_object().unwrap().len(), 8);
    }

    /// The members of each alternative a document schema allows (one per alternative
    /// of an `anyOf` or `oneOf`; an `allOf` joins its parts): those it may send, and
    /// those of them it must.
    fn alternatives(doc: &serde_json::Value, schema: &serde_json::Value) -> Vec<Members> {
        let mut s = schema;
        while let Some(r) = s["$ref"].as_str() {
            s = &doc["components"]["schemas"][r.rsplit('/').next().unwrap()];
        }
        if let Some(any) = s["anyOf"].as_array().or(s["oneOf"].as_array()) {
            return any.iter().flat_map(|a| alternatives(doc, a)).collect();
        }
        if let Some(all) = s["allOf"].as_array() {
            let mut joined = Members::default();
            for part in all.iter().flat_map(|a| alternatives(doc, a)) {
                joined.may.extend(part.may);
                joined.must.extend(part.must);
            }
            return vec![joined];
        }
        let names = |v: &serde_json::Value| -> std::collections::BTreeSet<String> {
            match v {
                serde_json::Value::Object(m) => m.keys().cloned().collect(),
                serde_json::Value::Array(a) => {
                    a.iter().map(|n| n.as_str().unwrap().to_owned()).collect()
                }
                _ => Default::default(),
            }
        };
        vec![Members {
            may: names(&s["properties"]),
            must: names(&s["required"]),
        }]
    }

    /// The members of one alternative of a schema.
    #[derive(Debug, Default)]
    struct Members {
        /// Every member it names.
        may: std::collections::BTreeSet<String>,
        /// The members it requires.
        must: std::collections::BTreeSet<String>,
    }

    fn record() -> Record {
        Record {
            id: "r".into(),
            phone: Shown::new("+44 ••• ••• 4567".into()),
            masked: true,
            country_code: 44,
            purposes: vec!["otp".into()],
            created_at: 1,
            updated_at: 2,
            verified_at: None,
        }
    }

    fn token() -> TokenView {
        TokenView {
            id: "t".into(),
            tenant: Some("shop".into()),
            role: "writer".into(),
            purposes: Vec::new(),
            reveal: false,
            created_at: 1,
            expires_at: Some(2),
        }
    }

    /// Every answer type sends the members of one alternative of its route's answer
    /// schema in openapi.json: none undocumented, none it requires left out.
    #[test]
    fn every_answer_type_sends_the_members_its_document_names() {
        let doc: serde_json::Value = serde_json::from_str(&crate::server::OPENAPI).unwrap();
        let t = "/v1/tenants/{tenant}";
        let value = |v: &dyn erased::Ser| v.value();
        let changed = ChangedAnswer {
            id: "r".into(),
            changed: true,
            receipt: None,
        };
        let with_receipt = ChangedAnswer {
            id: "r".into(),
            changed: true,
            receipt: Some("receipt".into()),
        };
        let accepted = Accepted::ANSWER;
        let batch = BatchAnswer {
            results: Vec::new(),
            summary: BatchSummary::Detailed(ImportSummary::default()),
        };
        let cases: Vec<(&str, String, &str, serde_json::Value)> = vec![
            (
                "get",
                "/v1/sys/health".into(),
                "200",
                value(&SealState { sealed: true }),
            ),
            (
                "post",
                "/v1/sys/unseal".into(),
                "200",
                value(&SealState { sealed: false }),
            ),
            (
                "post",
                "/v1/sys/seal".into(),
                "200",
                value(&SealState { sealed: true }),
            ),
            (
                "get",
                "/v1/sys/tokens".into(),
                "200",
                value(&TokenList {
                    tokens: vec![token()],
                }),
            ),
            (
                "post",
                "/v1/sys/tokens".into(),
                "201",
                value(&CreatedToken {
                    info: token(),
                    token: Shown::new("pvt_x".into()),
                }),
            ),
            (
                "post",
                "/v1/sys/tokens/revoke-all".into(),
                "200",
                value(&Revoked { revoked: 2 }),
            ),
            (
                "delete",
                "/v1/sys/tokens/{id}".into(),
                "200",
                value(&Revoked { revoked: 1 }),
            ),
            (
                "post",
                format!("{t}/numbers"),
                "201",
                value(&Added {
                    id: "r".into(),
                    status: AddStatus::Created,
                    suppressed_for: vec!["marketing".into()],
                }),
            ),
            ("post", format!("{t}/numbers"), "200", value(&accepted)),
            ("post", format!("{t}/numbers/batch"), "200", value(&batch)),
            (
                "get",
                format!("{t}/numbers/{{id}}"),
                "200",
                value(&record()),
            ),
            (
                "delete",
                format!("{t}/numbers/{{id}}"),
                "200",
                value(&Deleted { deleted: true }),
            ),
            ("post", format!("{t}/lookup"), "200", value(&record())),
            (
                "post",
                format!("{t}/lookup/last4"),
                "200",
                value(&Records {
                    results: vec![record()],
                }),
            ),
            (
                "post",
                format!("{t}/consent/grant"),
                "200",
                value(&with_receipt),
            ),
            ("post", format!("{t}/consent/grant"), "200", value(&changed)),
            (
                "post",
                format!("{t}/consent/withdraw"),
                "200",
                value(&changed),
            ),
            ("post", format!("{t}/opt-out"), "200", value(&accepted)),
            (
                "post",
                format!("{t}/erase"),
                "200",
                value(&Erased {
                    id: "r".into(),
                    erased: true,
                }),
            ),
            ("post", format!("{t}/verify"), "200", value(&changed)),
            (
                "post",
                format!("{t}/inbound-sms"),
                "200",
                value(&SmsReply {
                    action: "help".into(),
                    reply: "text".into(),
                }),
            ),
            (
                "get",
                format!("{t}/suppression-lists"),
                "200",
                value(&SuppressionLists {
                    lists: vec![ListInfo {
                        name: "dnc".into(),
                        version: 1,
                        purposes: vec!["marketing".into()],
                        count: 2,
                        imported_at: 3,
                    }],
                }),
            ),
            (
                "delete",
                format!("{t}/suppression-lists/{{list}}"),
                "200",
                value(&Dropped {
                    dropped: true,
                    entries_deleted: 2,
                }),
            ),
            (
                "post",
                format!("{t}/suppression-lists/{{list}}/uploads"),
                "200",
                value(&UploadStarted {
                    upload: "0123456789abcdef".into(),
                }),
            ),
            (
                "post",
                format!("{t}/suppression-lists/{{list}}/uploads/{{upload}}/rows"),
                "200",
                value(&UploadedRows {
                    rows: 2,
                    rejected: 1,
                    errors: vec![RowError {
                        index: 1,
                        code: "invalid_phone".into(),
                        reason: "too_short".into(),
                        message: "m".into(),
                    }],
                }),
            ),
            (
                "post",
                format!("{t}/suppression-lists/{{list}}/uploads/{{upload}}/commit"),
                "200",
                value(&Committed {
                    list: "dnc".into(),
                    version: 2,
                    count: 2,
                    replaced: None,
                    removed: 0,
                }),
            ),
        ];
        for (method, path, status, v) in cases {
            let schema = &doc["paths"][&path][method]["responses"][status]["content"]
                ["application/json"]["schema"];
            let sent: std::collections::BTreeSet<String> =
                v.as_object().unwrap().keys().cloned().collect();
            let allowed = alternatives(&doc, schema);
            assert!(
                allowed
                    .iter()
                    .any(|a| a.must.is_subset(&sent) && sent.is_subset(&a.may)),
                "{method} {path} {status}: sends {sent:?}, the document allows {allowed:?}"
            );
        }
    }

    /// Any answer type as a `Value` (the test's list holds several types).
    mod erased {
        pub trait Ser {
            fn value(&self) -> serde_json::Value;
        }
        impl<T: serde::Serialize> Ser for T {
            fn value(&self) -> serde_json::Value {
                serde_json::to_value(self).unwrap()
            }
        }
    }
}
