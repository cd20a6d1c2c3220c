//! Errors of the socket API: every one is `{"error": {"code", "message"}}` with a
//! stable code, and no message ever holds a phone number.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::{code, ErrorBody, ErrorDetail};
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
            code::SEALED,
            "the vault is sealed: POST /v1/sys/unseal with the passphrase, or start the server with --passphrase-file or --key-file",
        )
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHORIZED,
            "missing, unknown, revoked or expired token: send `Authorization: Bearer <token>` with a token from `phonevault token create`",
        )
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code::FORBIDDEN, message)
    }

    /// 400 `bad_json`.
    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code::BAD_JSON, message)
    }

    /// 404 `not_found`: absent, or not readable for that purpose (callers cannot tell).
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            "no record readable for this purpose (absent, erased, not consented, or opted out)",
        )
    }

    /// 500 `internal`; the detail goes to the server's log, not to the client.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!("phonevault serve: internal error: {detail}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL,
            "internal error: see the server log",
        )
    }

    /// The error as the body (and a batch item) carries it.
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code.to_owned(),
            message: self.message.clone(),
            reason: self.reason.map(str::to_owned),
        }
    }
}

impl From<VaultError> for ApiError {
    /// The error's one code ([`VaultError::code`], the same the audit log records)
    /// with its HTTP status; errors with no status of their own are internal (their
    /// detail goes to the log, never to the client).
    fn from(e: VaultError) -> Self {
        use StatusCode as S;
        let status = match &e {
            VaultError::UnknownTenant(_) | VaultError::NoSuchRecord(_) | VaultError::NoSuchList => {
                S::NOT_FOUND
            }
            VaultError::UnknownPurpose { .. }
            | VaultError::NoConsent
            | VaultError::InvalidRecordId
            | VaultError::InvalidArgument(_)
            | VaultError::InvalidValue(_)
            | VaultError::InvalidName { .. }
            | VaultError::Stats(_)
            | VaultError::Last4TooBroad { .. } => S::BAD_REQUEST,
            VaultError::BadSignature => S::FORBIDDEN,
            VaultError::Phone(p) => {
                return ApiError {
                    status: S::BAD_REQUEST,
                    code: e.code(),
                    message: e.to_string(),
                    reason: Some(p.code()),
                }
            }
            VaultError::TenantExists(_)
            | VaultError::Store(StoreError::Conflict)
            | VaultError::UploadInForce => S::CONFLICT,
            VaultError::Unlock => S::UNAUTHORIZED,
            VaultError::Store(StoreError::DiskFull) => S::INSUFFICIENT_STORAGE,
            VaultError::Store(StoreError::Locked) => S::SERVICE_UNAVAILABLE,
            VaultError::Store(StoreError::Unavailable(_)) => {
                // The detail (driver message) goes to the log; the client learns what
                // to do.
                tracing::warn!("phonevault serve: store unavailable: {e}");
                return ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    e.code(),
                    "the database is unavailable: the request was not acknowledged; retry shortly (the server reconnects by itself, and adds and consent changes are safe to repeat)",
                );
            }
            VaultError::KeyVersionMissing { .. } | VaultError::KeyVersionConflict { .. } => {
                // Not the caller's fault and not tampering: this host needs another
                // host's keyring. The operator's instructions go to the log.
                tracing::warn!("phonevault serve: {e}");
                return ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    e.code(),
                    "this server lacks a key version of the tenant that another server sharing its database made: the request was not acknowledged; the operator must copy that server's keyring here (see the server log)",
                );
            }
            _ => return ApiError::internal(&e),
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.detail(),
        };
        // Through a `Value`, whose members are sorted by name: the bytes every error
        // answer has always had.
        match serde_json::to_value(&body) {
            Ok(v) => (self.status, axum::Json(v)).into_response(),
            Err(_) => self.status.into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host missing another host's key version is unavailable (retry once the
    /// operator copied the keyring), not an internal error and not tampering.
    #[test]
    fn missing_and_conflicting_key_versions_are_unavailable() {
        let missing = ApiError::from(VaultError::KeyVersionMissing {
            tenant: "shop".into(),
            versions: "2".into(),
        });
        assert_eq!(missing.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(missing.code, "key_version_missing");
        let conflict = ApiError::from(VaultError::KeyVersionConflict {
            tenant: "shop".into(),
            version: 3,
        });
        assert_eq!(conflict.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(conflict.code, "key_version_conflict");
        assert!(!conflict.message.contains("tamper"), "{}", conflict.message);
    }

    /// The API names a failure as the audit log does: one code table.
    #[test]
    fn api_codes_are_the_vault_codes() {
        let errors = [
            VaultError::Unlock,
            VaultError::UnknownTenant(()),
            VaultError::NoConsent,
            VaultError::InvalidRecordId,
            VaultError::InvalidArgument("x".into()),
            VaultError::InvalidValue(crate::policy::ValueError::Source),
            VaultError::TenantExists("shop".into()),
            VaultError::Store(StoreError::Conflict),
            VaultError::Store(StoreError::DiskFull),
            VaultError::Store(StoreError::Locked),
            VaultError::Store(StoreError::Unavailable("down".into())),
            VaultError::Last4TooBroad { limit: 10 },
        ];
        for e in errors {
            let code = e.code();
            assert_eq!(ApiError::from(e).code, code);
        }
        assert_eq!(VaultError::Unlock.code(), "unseal_failed");
    }
}
