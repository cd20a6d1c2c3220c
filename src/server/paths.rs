//! The segments of a tenant route's path, parsed once into the values the vault takes:
//! `{tenant}` into a [`TenantName`], `{id}` into a [`RecordId`]. The refusals are the
//! answers the same request had when the vault checked the form itself.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiError;
use crate::policy::{Refusal, TenantName};
use crate::record::RecordId;
use crate::vault::VaultError;

/// The value of the path parameter `name`; a path the router could not decode (not
/// UTF-8) is refused as axum's `Path` refuses it.
async fn segment<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    name: &str,
) -> Result<String, Response> {
    let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
        .await
        .map_err(IntoResponse::into_response)?;
    params
        .into_iter()
        .find_map(|(k, v)| (k == name).then_some(v))
        .ok_or_else(|| ApiError::internal(&format!("no path parameter {name}")).into_response())
}

/// The `{tenant}` segment. A name of the wrong form is no token's tenant (a token is
/// bound to a tenant that exists): it is refused as the policy refuses another
/// tenant's name, 403, before any vault work, and audited by the gate as such.
pub(crate) struct TenantPath(pub TenantName);

impl<S: Send + Sync> FromRequestParts<S> for TenantPath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let s = segment(parts, state, "tenant").await?;
        TenantName::parse(&s)
            .map(TenantPath)
            .map_err(|_| ApiError::forbidden(Refusal::WrongTenant.to_string()).into_response())
    }
}

/// The `{id}` segment of a record route, parsed here; a malformed one is refused (400
/// `invalid_record_id`) by [`RecordPath::id`], which a route calls after the policy's
/// decision, so that a caller the policy refuses is told so first, as before.
pub(crate) struct RecordPath(Option<RecordId>);

impl RecordPath {
    /// The record id, or 400 `invalid_record_id`.
    pub(crate) fn id(&self) -> Result<RecordId, ApiError> {
        self.0.ok_or_else(|| VaultError::InvalidRecordId.into())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RecordPath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let s = segment(parts, state, "id").await?;
        Ok(RecordPath(RecordId::parse(&s)))
    }
}

/// The `{list}` segment of a suppression-list route (its form is the vault's to check).
#[derive(Deserialize)]
pub(crate) struct ListPath {
    pub list: String,
}

/// The `{list}` and `{upload}` segments of an upload route.
#[derive(Deserialize)]
pub(crate) struct UploadPath {
    pub list: String,
    pub upload: String,
}
