//! The socket API's one contract: every route ([`ROUTES`]: method, path, role, and what
//! it takes and answers), the request body each one takes ([`request`]), the answers it
//! gives ([`response`]) and the error body ([`ErrorBody`]). The server (`crate::server`)
//! routes, parses and answers with these, and the CLI's socket client (`crate::cli`)
//! sends and decodes them, so a route is not written twice; the OpenAPI document
//! ([`openapi()`], served at `GET /v1/openapi.json` and committed as `openapi.json`) is
//! generated from the same types (utoipa's `ToSchema`) and the same table.
//!
//! Request types refuse unknown fields and `null` where the document says string or
//! number. Types that carry a phone number or a token hold it in [`Shown`]: zeroized on
//! drop, no `Debug`.

pub mod openapi;
pub mod request;
pub mod response;
mod routes;

pub use openapi::openapi;
pub use routes::{Answer, Body, Content, Doc, Method, Needs, Refusal, Route, ROUTES};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A string that may be a phone number or a secret (a revealed number, a masked one, a
/// token, a passphrase): zeroized on drop, no `Debug`, shown only through
/// [`Shown::expose_secret`].
pub struct Shown(zeroize::Zeroizing<String>);

impl Shown {
    /// Takes the string (it is zeroized when this drops).
    pub fn new(s: String) -> Shown {
        Shown(zeroize::Zeroizing::new(s))
    }

    /// The string.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl Serialize for Shown {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Shown {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Shown::new)
    }
}

/// Every error answer: `{"error": {"code", "message"[, "reason"]}}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error of an [`ErrorBody`], and of one failed item of a batch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code: the API's own ([`code`]) or the vault's.
    #[schema(schema_with = code::schema)]
    pub code: String,
    /// What happened and what to do next; never a number, never a caller's value.
    pub message: String,
    /// For `invalid_phone`: the phone error's own code (`too_short`,
    /// `invalid_country_code`, `not_a_number`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<String>,
}

/// The codes of the API's own refusals (the HTTP layer: routing, bodies, tokens, limits);
/// every other error answer carries the vault's code for it
/// (`crate::vault::VaultError::code`, the same the audit log records).
pub mod code {
    /// The body is not the JSON the route takes.
    pub const BAD_JSON: &str = "bad_json";
    /// The query string is not the one the route takes.
    pub const BAD_QUERY: &str = "bad_query";
    /// A value out of the route's range.
    pub const INVALID_ARGUMENT: &str = "invalid_argument";
    /// No token, or an unknown, revoked or expired one.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// The token may not do this.
    pub const FORBIDDEN: &str = "forbidden";
    /// No such record readable for the purpose, or no such token.
    pub const NOT_FOUND: &str = "not_found";
    /// No such route.
    pub const NO_ROUTE: &str = "no_route";
    /// The route does not take that method.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// The body is over the route's byte limit.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// The body did not arrive within the request deadline.
    pub const REQUEST_TIMEOUT: &str = "request_timeout";
    /// The route does not take that content type.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// The token's rate limit is spent.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The vault is sealed.
    pub const SEALED: &str = "sealed";
    /// A failure whose detail went to the server log.
    pub const INTERNAL: &str = "internal";

    /// Every code an answer of the API may carry: the API's own, those of the vault's
    /// errors that the server answers with a status of their own (any other is answered
    /// as [`INTERNAL`]; see `crate::server::ApiError`'s `From<VaultError>`), and a batch
    /// item's `suppressed`.
    pub const ANSWERED: &[&str] = &[
        BAD_JSON,
        BAD_QUERY,
        INVALID_ARGUMENT,
        UNAUTHORIZED,
        FORBIDDEN,
        NOT_FOUND,
        NO_ROUTE,
        METHOD_NOT_ALLOWED,
        PAYLOAD_TOO_LARGE,
        REQUEST_TIMEOUT,
        UNSUPPORTED_MEDIA_TYPE,
        RATE_LIMITED,
        SEALED,
        INTERNAL,
        "invalid_phone",
        "unknown_purpose",
        "unknown_tenant",
        "no_consent",
        "invalid_record_id",
        "unseal_failed",
        "conflict",
        "locked",
        "storage_full",
        "bad_signature",
        "key_version_missing",
        "key_version_conflict",
        "too_many_matches",
        "audit_unavailable",
        "store_unavailable",
        "suppression_key_gone",
        // A batch item's only (the number opted out of everything: not stored).
        "suppressed",
    ];

    /// The schema of a code: one of [`ANSWERED`].
    pub(crate) fn schema() -> utoipa::openapi::schema::Object {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .enum_values(Some(ANSWERED.iter().copied()))
            .build()
    }
}
