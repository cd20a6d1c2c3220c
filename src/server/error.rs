//! Errors of the socket API: every one is `{"error": {"code", "message"}}` with a
//! stable code, and no message ever holds a phone number.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;
use crate::vault::VaultError;

/// An API error: HTTP status, stable code, and a message saying what to do next.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message (never a phone number).
    pub message: String,
    /// For `invalid_phone`: the phone error's own code (`too_short`, ...).
    pub reason: Option<&'static str>,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            reason: None,
        }
    }

    /// 503 `sealed`.
    pub fn sealed() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sealed",
            "the vault is sealed: POST /v1/sys/unseal with the passphrase, or start the server with --passphrase-file or --key-file",
        )
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing, unknown, revoked or expired token: send `Authorization: Bearer <token>` with a token from `phonevault token create`",
        )
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 400 `bad_json`.
    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_json", message)
    }

    /// 404 `not_found`: absent, or not readable for that purpose (callers cannot tell).
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no record readable for this purpose (absent, erased, not consented, or opted out)",
        )
    }

    /// 500 `internal`; the detail goes to the server's log, not to the client.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!("phonevault serve: internal error: {detail}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error: see the server log",
        )
    }
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        use StatusCode as S;
        let (status, code) = match &e {
            VaultError::UnknownTenant(_) => (S::NOT_FOUND, "unknown_tenant"),
            VaultError::UnknownPurpose { .. } => (S::BAD_REQUEST, "unknown_purpose"),
            VaultError::NoConsent => (S::BAD_REQUEST, "no_consent"),
            VaultError::NoSuchRecord(_) => (S::NOT_FOUND, "not_found"),
            VaultError::InvalidRecordId => (S::BAD_REQUEST, "invalid_record_id"),
            VaultError::BadSignature => (S::FORBIDDEN, "bad_signature"),
            VaultError::InvalidArgument(_) | VaultError::InvalidName { .. } => {
                (S::BAD_REQUEST, "invalid_argument")
            }
            VaultError::TenantExists(_) => (S::CONFLICT, "conflict"),
            VaultError::Stats(_) => (S::BAD_REQUEST, "invalid_argument"),
            VaultError::Last4TooBroad { .. } => (S::BAD_REQUEST, "too_many_matches"),
            VaultError::Phone(p) => {
                return ApiError {
                    status: S::BAD_REQUEST,
                    code: "invalid_phone",
                    message: e.to_string(),
                    reason: Some(p.code()),
                }
            }
            VaultError::Unlock => (S::UNAUTHORIZED, "unseal_failed"),
            VaultError::Store(StoreError::Conflict) => (S::CONFLICT, "conflict"),
            VaultError::Store(StoreError::DiskFull) => (S::INSUFFICIENT_STORAGE, "storage_full"),
            VaultError::Store(StoreError::Locked) => (S::SERVICE_UNAVAILABLE, "locked"),
            VaultError::Store(StoreError::Unavailable(_)) => {
                // The detail (driver message) goes to the log; the client learns what
                // to do.
                tracing::warn!("phonevault serve: store unavailable: {e}");
                return ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the database is unavailable: the request was not acknowledged; retry shortly (the server reconnects by itself, and adds and consent changes are safe to repeat)",
                );
            }
            _ => return ApiError::internal(&e),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = serde_json::json!({"code": self.code, "message": self.message});
        if let Some(r) = self.reason {
            err["reason"] = serde_json::Value::from(r);
        }
        (self.status, axum::Json(serde_json::json!({ "error": err }))).into_response()
    }
}
