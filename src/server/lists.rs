//! The suppression-list routes: a tenant admin lists, uploads (in parts, for lists of
//! any size) and drops its do-not-contact lists. Uploads are stateless here: the
//! upload id is the new version's generation, and nothing is in force before the
//! commit (see `Vault::suppress_upload_begin`).

use std::sync::Arc;

use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::paths::{ListPath, TenantPath, UploadPath};
use super::{blocking, ApiError, App, Authed, JsonBody, MAX_BATCH_ITEMS};
use crate::api::request::{UploadCommitReq, UploadRowsReq, UploadStartReq};
use crate::api::response::{
    Committed, Dropped, RowError, SuppressionLists, UploadStarted, UploadedRows,
};
use crate::policy::{Access, Operation};
use crate::vault::ImportRow;

type Res = Result<Response, ApiError>;

/// A 200 answer, through a `Value` (members sorted by name, as every answer's).
fn answer<T: serde::Serialize>(v: &T) -> Res {
    let v = serde_json::to_value(v).map_err(|e| ApiError::internal(&e))?;
    Ok(Json(v).into_response())
}

/// `GET /v1/tenants/{tenant}/suppression-lists`
pub(crate) async fn list_lists(
    Extension(auth): Extension<Authed>,
    TenantPath(tenant): TenantPath,
) -> Res {
    let (vault, _) = auth.authorize(&Access::new(tenant.as_str(), Operation::Lists, &[]))?;
    let lists = blocking(move || vault.suppress_lists(&tenant)).await?;
    answer(&SuppressionLists { lists })
}

/// `DELETE /v1/tenants/{tenant}/suppression-lists/{list}`
pub(crate) async fn drop_list(
    State(app): State<Arc<App>>,
    Extension(auth): Extension<Authed>,
    TenantPath(tenant): TenantPath,
    Path(ListPath { list }): Path<ListPath>,
) -> Res {
    let (vault, info) = auth.authorize(&Access::new(tenant.as_str(), Operation::Lists, &[]))?;
    app.writes.take(&info.id, 1)?;
    let deleted = blocking(move || vault.suppress_drop(&tenant, &list)).await?;
    answer(&Dropped {
        dropped: true,
        entries_deleted: deleted,
    })
}

/// `POST /v1/tenants/{tenant}/suppression-lists/{list}/uploads`
pub(crate) async fn begin_upload(
    State(app): State<Arc<App>>,
    Extension(auth): Extension<Authed>,
    TenantPath(tenant): TenantPath,
    Path(ListPath { list }): Path<ListPath>,
    JsonBody(_): JsonBody<UploadStartReq>,
) -> Res {
    let (vault, info) = auth.authorize(&Access::new(tenant.as_str(), Operation::Lists, &[]))?;
    app.writes.take(&info.id, 1)?;
    let upload = blocking(move || vault.suppress_upload_begin(&tenant, &list)).await?;
    answer(&UploadStarted { upload })
}

/// `POST /v1/tenants/{tenant}/suppression-lists/{list}/uploads/{upload}/rows`
pub(crate) async fn upload_rows(
    State(app): State<Arc<App>>,
    Extension(auth): Extension<Authed>,
    TenantPath(tenant): TenantPath,
    Path(UploadPath { list, upload }): Path<UploadPath>,
    JsonBody(req): JsonBody<UploadRowsReq>,
) -> Res {
    let (vault, info) = auth.authorize(&Access::new(tenant.as_str(), Operation::Lists, &[]))?;
    if req.phones.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_argument",
            format!("one request holds at most {MAX_BATCH_ITEMS} numbers; send more requests"),
        ));
    }
    app.writes.take(&info.id, 1)?;
    let (report, rejects) = blocking(move || {
        let UploadRowsReq { phones, region } = req;
        let rows = phones
            .into_iter()
            .enumerate()
            .map(|(i, p)| ImportRow::Number {
                phone: zeroize::Zeroizing::new(p),
                line: i as u64,
            });
        let mut rejects = Vec::new();
        let report = vault.suppress_upload_rows(
            &tenant,
            (&list, &upload),
            region.as_deref(),
            rows,
            |r| {
                rejects.push(r);
                Ok(())
            },
        )?;
        Ok((report, rejects))
    })
    .await?;
    let errors = rejects
        .into_iter()
        .map(|r| RowError {
            index: r.line,
            code: "invalid_phone".to_owned(),
            reason: r.code.to_owned(),
            message: r.reason,
        })
        .collect();
    answer(&UploadedRows {
        rows: report.rows,
        rejected: report.rejected,
        errors,
    })
}

/// `POST /v1/tenants/{tenant}/suppression-lists/{list}/uploads/{upload}/commit`
pub(crate) async fn commit_upload(
    State(app): State<Arc<App>>,
    Extension(auth): Extension<Authed>,
    TenantPath(tenant): TenantPath,
    Path(UploadPath { list, upload }): Path<UploadPath>,
    JsonBody(req): JsonBody<UploadCommitReq>,
) -> Res {
    let purposes: Vec<&str> = req.purposes.iter().map(String::as_str).collect();
    let (vault, info) =
        auth.authorize(&Access::new(tenant.as_str(), Operation::Lists, &[]).purposes(&purposes))?;
    drop(purposes);
    app.writes.take(&info.id, 1)?;
    let report =
        blocking(move || vault.suppress_upload_commit(&tenant, (&list, &upload), &req.purposes))
            .await?;
    answer(&Committed::from(report))
}
