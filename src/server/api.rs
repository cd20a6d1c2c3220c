//! The `/v1` routes: authorization, and the vault call each one makes. The request
//! and answer types are the API's contract ([`crate::api`]).

use std::sync::Arc;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{DefaultBodyLimit, Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Serialize;

use super::paths::{RecordPath, TenantPath};
use super::{
    blocking, open_vault, quick, unseal_delay, write_detail, ApiError, App, Authed, JsonBody, Peer,
    RawBody, MAX_BATCH_BODY, MAX_BATCH_ITEMS, MAX_BODY, MAX_HELD_ENTRIES, MAX_UNSEAL_BODY, OPENAPI,
};
use crate::api::code;
use crate::api::request::{
    AddReq, BatchReq, GetQuery, GrantReq, Last4Req, LookupReq, OptOutReq, StatsReq, TargetError,
    TargetReq, Targeted, TokenReq, UnsealReq, WithdrawReq,
};
use crate::api::response::{
    Accepted, Added, BatchAnswer, BatchSummary, ChangedAnswer, CreatedToken, Deleted, Erased,
    ItemResult, ItemStatus, Record, Records, Revoked, SealState, SmsReply, StatsAnswer, TokenList,
    TokenView, UniformSummary,
};
use crate::api::{ErrorDetail, Shown};
use crate::audit::{Entry, Outcome};
use crate::policy::{Access, Operation, Source, TenantName};
use crate::vault::{AddOutcome, Found, Role, Target, TokenInfo, TokenSpec, Unlock};
use phonevault_keys::Passphrase;

type Res = Result<Response, ApiError>;

pub(crate) fn router(app: Arc<App>) -> Router {
    // Built from the static route table before the first request: a table the
    // generator cannot document stops the server at start, never mid-request.
    std::sync::LazyLock::force(&OPENAPI);
    let t = "/v1/tenants/{tenant}";
    Router::new()
        .route("/v1/sys/health", get(health))
        .route("/v1/sys/metrics", get(metrics))
        .route(
            "/v1/sys/unseal",
            post(unseal).layer(DefaultBodyLimit::max(MAX_UNSEAL_BODY)),
        )
        .route("/v1/sys/seal", post(seal))
        .route("/v1/sys/tokens", get(list_tokens).post(create_token))
        .route("/v1/sys/tokens/revoke-all", post(revoke_all_tokens))
        .route("/v1/sys/tokens/{id}", delete(revoke_token))
        .route("/v1/openapi.json", get(openapi))
        .route(&format!("{t}/numbers"), post(add))
        .route(
            &format!("{t}/numbers/batch"),
            post(batch).layer(DefaultBodyLimit::max(MAX_BATCH_BODY)),
        )
        .route(
            &format!("{t}/numbers/{{id}}"),
            get(get_number).delete(delete_number),
        )
        .route(&format!("{t}/lookup"), post(lookup))
        .route(&format!("{t}/lookup/last4"), post(lookup_last4))
        .route(&format!("{t}/consent/grant"), post(grant))
        .route(&format!("{t}/consent/withdraw"), post(withdraw))
        .route(&format!("{t}/opt-out"), post(opt_out))
        .route(&format!("{t}/erase"), post(erase))
        .route(&format!("{t}/verify"), post(verify))
        .route(&format!("{t}/stats"), post(stats))
        .route(&format!("{t}/inbound-sms"), post(inbound_sms))
        .route(
            &format!("{t}/suppression-lists"),
            get(super::lists::list_lists),
        )
        .route(
            &format!("{t}/suppression-lists/{{list}}"),
            delete(super::lists::drop_list),
        )
        .route(
            &format!("{t}/suppression-lists/{{list}}/uploads"),
            post(super::lists::begin_upload),
        )
        .route(
            &format!("{t}/suppression-lists/{{list}}/uploads/{{upload}}/rows"),
            post(super::lists::upload_rows).layer(DefaultBodyLimit::max(MAX_BATCH_BODY)),
        )
        .route(
            &format!("{t}/suppression-lists/{{list}}/uploads/{{upload}}/commit"),
            post(super::lists::commit_upload),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            super::gate,
        ))
        .with_state(app)
}

async fn no_route(req: axum::extract::Request) -> ApiError {
    // What it sent is read first (when small), so the connection stays usable.
    super::drain_small(req.into_body()).await;
    ApiError::new(
        StatusCode::NOT_FOUND,
        code::NO_ROUTE,
        "no such API route: see GET /v1/openapi.json",
    )
}

async fn method_not_allowed(req: axum::extract::Request) -> ApiError {
    // The route reads no body for this method: what was sent is read first (when
    // small), as for a refusal, so that the answer is not lost with the connection
    // (schemathesis saw "closed without response" for PATCH and PUT with a body).
    super::drain_small(req.into_body()).await;
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        code::METHOD_NOT_ALLOWED,
        "this route does not take that method: see GET /v1/openapi.json",
    )
}

/// A 200 answer. Through a `Value`, whose members are sorted by name: the bytes the
/// routes have always sent, whatever the order of the type's fields.
fn ok<T: Serialize>(v: &T) -> Res {
    answer(StatusCode::OK, v)
}

/// An answer with `status`, its members sorted by name (see [`ok`]).
fn answer<T: Serialize>(status: StatusCode, v: &T) -> Res {
    let v = serde_json::to_value(v).map_err(|e| ApiError::internal(&e))?;
    Ok((status, Json(v)).into_response())
}

async fn health(State(app): State<Arc<App>>) -> Res {
    ok(&SealState {
        sealed: app.current().is_none(),
    })
}

/// The metrics, for a vault-wide admin token (see [`super::metrics`]).
async fn metrics(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Res {
    vault_admin(&app, peer, &headers, "reading the metrics")?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            super::metrics::CONTENT_TYPE,
        )],
        app.metrics.render(&app),
    )
        .into_response())
}

async fn openapi() -> Res {
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI.as_str(),
    )
        .into_response())
}

async fn unseal(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    JsonBody(req): JsonBody<UnsealReq>,
) -> Res {
    // Refused whether or not the vault is open: the document says `minLength: 1`.
    if req.passphrase.expose_secret().is_empty() {
        return Err(ApiError::bad_json("\"passphrase\" is empty"));
    }
    // One attempt at a time: the lock is held through the Argon2 work and the delay.
    let mut failures = app.unseal.lock().await;
    if app.current().is_some() {
        return ok(&SealState { sealed: false });
    }
    let unlock = Unlock::Passphrase(Passphrase::new(req.passphrase.expose_secret().to_owned()));
    match open_vault(app.dir.clone(), app.store.clone(), unlock, app.audit_sync).await {
        Ok(v) => {
            // The failed attempts made while sealed, then this one, go into the log
            // before the vault serves anything.
            let mut entries = std::mem::take(
                &mut *app
                    .held
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            let v = v.acting_as(peer.actor());
            let v2 = v.clone();
            blocking(move || {
                entries.push(v2.entry_now("unseal", None, Outcome::Ok));
                v2.log_held(entries)
            })
            .await?;
            *failures = 0;
            app.set(Some(Arc::new(v)));
            tracing::info!("phonevault serve: unsealed");
            ok(&SealState { sealed: false })
        }
        Err(e) => {
            *failures = failures.saturating_add(1);
            {
                let mut held = app
                    .held
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if held.len() < MAX_HELD_ENTRIES {
                    held.push(Entry {
                        time: crate::vault::now(),
                        actor: peer.actor(),
                        tenant: None,
                        action: "unseal-failed".into(),
                        records: Vec::new(),
                        purpose: None,
                        reveal: false,
                        outcome: Outcome::Failed(e.code().into()),
                        writes: Vec::new(),
                    });
                }
            }
            tokio::time::sleep(unseal_delay(*failures)).await;
            Err(e.into())
        }
    }
}

/// The open vault acting for the caller, if the caller holds a vault-wide admin token;
/// `what` names the operation in the refusal.
fn vault_admin(
    app: &App,
    peer: Peer,
    headers: &HeaderMap,
    what: &str,
) -> Result<crate::vault::Vault, ApiError> {
    let (vault, info) = app.authenticate(headers)?;
    if !(info.role == Role::Admin && info.tenant.is_none()) {
        return Err(ApiError::forbidden(format!(
            "{what} needs a vault-wide admin token (`phonevault token create --admin`)"
        )));
    }
    Ok(vault.acting_as(peer.token_actor(&info.id)))
}

async fn seal(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Res {
    let vault = vault_admin(&app, peer, &headers, "sealing")?;
    blocking(move || vault.audit_event("seal", None, Outcome::Ok)).await?;
    // In-flight requests keep their reference; the keys zeroize when the last drops.
    app.set(None);
    tracing::info!("phonevault serve: sealed");
    ok(&SealState { sealed: true })
}

/// The answer of every write to a caller without detail (see
/// [`crate::policy::Decision::Allow`]): the same bytes whether the number was absent,
/// consented for other purposes only, suppressed or expired.
fn accepted() -> Res {
    ok(&Accepted::ANSWER)
}

/// The purposes of a request, for the access decision.
fn names(purposes: &[String]) -> Vec<&str> {
    purposes.iter().map(String::as_str).collect()
}

async fn add(
    State(app): State<Arc<App>>,
    Extension(auth): Extension<Authed>,
    TenantPath(tenant): TenantPath,
    JsonBody(req): JsonBody<AddReq>,
) -> Res {
    let consents = names(&req.consents);
    let (vault, info) =
        auth.authorize(&Access::new(tenant.as_str(), Operation::Write, &[]).purposes(&consents))?;
    app.writes.take(&info.id, 1)?;
    let source = source_of(req.source.as_deref())?;
    let (detailed, o) = blocking(move || {
        let detailed = write_detail(&vault, &info, &tenant)?;
        let o = vault.add(
            &tenant,
            &req.phone,
            req.region.as_deref(),
            &req.consents,
            &source,
        )?;
        // Only a caller answered in detail learns which of its purposes a list holds
        // the number for (it could read the record anyway).
        let listed = if detailed {
            vault.suppressed_purposes(&tenant, &req.phone, req.region.as_deref(), &req.consents)?
        } else {
            Vec::new()
        };
        Ok((detailed, (o, listed)))
    })
    .await?;
    if !detailed {
        return accepted();
    }
    let (o, listed) = o;
    let status = if matches!(o, AddOutcome::Created(_)) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut added = Added::from(o);
    added.suppressed_for = listed;
    answer(status, &added)
}

async fn batch(
    State(app): State<Arc<App>>,
    Extension(auth): Extension<Authed>,
    TenantPath(tenant): TenantPath,
    JsonBody(req): JsonBody<BatchReq>,
) -> Res {
    let consents: Vec<&str> = req
        .items
        .iter()
        .flat_map(|i| &i.consents)
        .map(String::as_str)
        .collect();
    let (vault, info) =
        auth.authorize(&Access::new(tenant.as_str(), Operation::Write, &[]).purposes(&consents))?;
    drop(consents);
    if req.items.len() > MAX_BATCH_ITEMS {
        // A schema violation (`maxItems`), so a 400 like any other; 413 is for bodies
        // over the byte limit.
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            code::INVALID_ARGUMENT,
            format!("a batch holds at most {MAX_BATCH_ITEMS} items; split it"),
        ));
    }
    // Parsed before any group's import: a batch without items still refuses a source
    // the document refuses.
    let source = source_of(req.source.as_deref())?;
    app.writes.take(&info.id, req.items.len())?;
    let (detailed, (results, summary)) = blocking(move || {
        let detailed = write_detail(&vault, &info, &tenant)?;
        Ok((detailed, batch_import(&vault, &tenant, &source, req)?))
    })
    .await?;
    if detailed {
        return ok(&BatchAnswer {
            results,
            summary: BatchSummary::Detailed(summary),
        });
    }
    // Without detail: `suppressed` items and the created / merged / unchanged counts
    // would say which numbers exist; every item that is a valid number is `accepted`.
    let results: Vec<ItemResult> = results
        .into_iter()
        .map(|r| {
            if r.status == ItemStatus::Error {
                r
            } else {
                ItemResult {
                    index: r.index,
                    status: ItemStatus::Accepted,
                    error: None,
                }
            }
        })
        .collect();
    let rejected = results
        .iter()
        .filter(|r| r.status == ItemStatus::Error)
        .count() as u64;
    let rows = results.len() as u64;
    ok(&BatchAnswer {
        results,
        summary: BatchSummary::Uniform(UniformSummary {
            rows,
            accepted: rows - rejected,
            rejected,
        }),
    })
}

/// Runs a batch through the streaming import, one import per distinct (consents,
/// region) group: one atomic commit per chunk and one flush per group instead of one
/// per number. Like an import, a batch never lifts an opt-out of everything (such
/// numbers come back as `suppressed`); an explicit add does.
fn batch_import(
    vault: &crate::vault::Vault,
    tenant: &TenantName,
    source: &Source,
    req: BatchReq,
) -> Result<(Vec<ItemResult>, crate::vault::ImportSummary), crate::vault::VaultError> {
    use std::collections::BTreeMap;
    let mut groups: BTreeMap<(Vec<String>, Option<String>), Vec<usize>> = BTreeMap::new();
    for (i, item) in req.items.iter().enumerate() {
        let mut c = item.consents.clone();
        c.sort();
        c.dedup();
        groups.entry((c, item.region.clone())).or_default().push(i);
    }
    let mut results: Vec<ItemResult> = (0..req.items.len())
        .map(|index| ItemResult {
            index,
            status: ItemStatus::Ok,
            error: None,
        })
        .collect();
    let mut total = crate::vault::ImportSummary::default();
    for ((purposes, region), members) in groups {
        // The import is the one bulk path, so batch and import cannot drift apart; a
        // reject names its item by the position given here.
        let rows = members.iter().map(|&i| crate::vault::ImportRow::Number {
            phone: zeroize::Zeroizing::new(req.items[i].phone.clone()),
            line: i as u64,
        });
        let opts = crate::vault::ImportOptions {
            tenant: tenant.clone(),
            purposes,
            source: source.clone(),
            region,
        };
        let mut rejects = Vec::new();
        let summary = match vault.import(
            &opts,
            rows,
            |r| {
                rejects.push(r);
                Ok(())
            },
            |_| {},
        ) {
            Ok(s) => s,
            // A whole group refused (unknown purpose, bad region hint, ...): every
            // member gets the error.
            Err(e) => {
                let e = ApiError::from(e);
                for &i in &members {
                    results[i] = item_error(i, &e);
                }
                continue;
            }
        };
        for r in rejects {
            let Ok(i) = usize::try_from(r.line) else {
                continue;
            };
            if i >= results.len() {
                continue;
            }
            let (status, error) = if r.code == "suppressed" {
                let error = ErrorDetail {
                    code: r.code.into(),
                    message: r.reason,
                    reason: None,
                };
                (ItemStatus::Suppressed, error)
            } else {
                let error = ErrorDetail {
                    code: "invalid_phone".into(),
                    message: r.reason,
                    reason: Some(r.code.into()),
                };
                (ItemStatus::Error, error)
            };
            results[i] = ItemResult {
                index: i,
                status,
                error: Some(error),
            };
        }
        total.add(&summary);
    }
    Ok((results, total))
}

fn item_error(index: usize, e: &ApiError) -> ItemResult {
    ItemResult {
        index,
        status: ItemStatus::Error,
        error: Some(e.detail()),
    }
}

async fn lookup(
    State(app): State<Arc<App>>,
    Extension(auth): Extension<Authed>,
    TenantPath(tenant): TenantPath,
    JsonBody(req): JsonBody<LookupReq>,
) -> Res {
    let vault = admit_read(&auth, &tenant, &req.purpose, req.reveal, Some(&app.lookups))?;
    let reveal = req.reveal;
    let found =
        quick(move || vault.find(&tenant, &req.phone, req.region.as_deref(), &req.purpose)).await?;
    record_or_absent(found, reveal)
}

/// The first steps of a read of one record (by number or by id): the policy's decision
/// for the purpose and the reveal, and the token's `budget` if the route has one; the
/// vault, revealing as asked.
fn admit_read(
    auth: &Authed,
    tenant: &TenantName,
    purpose: &str,
    reveal: bool,
    budget: Option<&super::limit::RateLimiter>,
) -> Result<crate::vault::Vault, ApiError> {
    let purposes = [purpose];
    let access = Access::new(tenant.as_str(), Operation::Read, &[])
        .purposes(&purposes)
        .reveal(reveal);
    let (vault, info) = auth.authorize(&access)?;
    if let Some(budget) = budget {
        budget.take(&info.id, 1)?;
    }
    Ok(vault.revealing(reveal))
}

/// A read's answer: the record, or 404 (absent and not readable look the same).
fn record_or_absent(found: Option<Found>, reveal: bool) -> Res {
    match found {
        Some(f) => ok(&Record::of(&f, reveal)),
        None => Err(ApiError::not_found()),
    }
}

async fn lookup_last4(
    State(app): State<Arc<App>>,
    Extension(auth): Extension<Authed>,
    TenantPath(tenant): TenantPath,
    JsonBody(req): JsonBody<Last4Req>,
) -> Res {
    let purpose = [req.purpose.as_str()];
    let access = Access::new(tenant.as_str(), Operation::ReadLast4, &[])
        .purposes(&purpose)
        .reveal(req.reveal);
    let (vault, info) = auth.authorize(&access)?;
    // Charged per record returned (at least one per search): one search may name up
    // to `MAX_LAST4_RESULTS` records.
    app.last4.check(&info.id)?;
    app.lookups.take(&info.id, 1)?;
    let id = info.id.clone();
    let found = quick(move || {
        vault
            .revealing(false)
            .find_last4(&tenant, req.country_code, &req.last4, &req.purpose)
    })
    .await;
    app.last4
        .charge(&id, found.as_ref().map_or(1, |f| f.len().max(1)));
    let results = found?.iter().map(|f| Record::of(f, false)).collect();
    ok(&Records { results })
}

/// Parses the query string of `GET numbers/{id}` (as axum's `Query` does).
pub(crate) fn parse_get_query(query: Option<&str>) -> Result<GetQuery, ApiError> {
    serde_urlencoded::from_str(query.unwrap_or_default()).map_err(|e| {
        // As for bodies: name the fields, never repeat a value of the query.
        ApiError::new(
            StatusCode::BAD_REQUEST,
            code::BAD_QUERY,
            format!(
                "malformed query string: {}; use ?purpose=P[&reveal=true]",
                super::describe_data_error(&e.to_string())
            ),
        )
    })
}

async fn get_number(
    Extension(auth): Extension<Authed>,
    TenantPath(tenant): TenantPath,
    id: RecordPath,
    uri: Uri,
) -> Res {
    let q = parse_get_query(uri.query())?;
    let vault = admit_read(&auth, &tenant, &q.purpose, q.reveal, None)?;
    let id = id.id()?;
    let reveal = q.reveal;
    let found = quick(move || vault.get(&tenant, id, &q.purpose)).await?;
    record_or_absent(found, reveal)
}

async fn delete_number(
    Extension(auth): Extension<Authed>,
    TenantPath(tenant): TenantPath,
    id: RecordPath,
) -> Res {
    let (vault, _) = auth.authorize(&Access::new(tenant.as_str(), Operation::Write, &[]))?;
    let id = id.id()?;
    if blocking(move || vault.delete(&tenant, id)).await? {
        ok(&Deleted { deleted: true })
    } else {
        Err(ApiError::not_found())
    }
}

/// A request that names no one record, as the caller is told.
fn bad_target(e: TargetError) -> ApiError {
    match e {
        // The answer the vault gave when it parsed the id itself.
        TargetError::InvalidRecordId => crate::vault::VaultError::InvalidRecordId.into(),
        e => ApiError::bad_json(e.to_string()),
    }
}

/// The same, inside a vault call.
fn invalid_target(e: TargetError) -> crate::vault::VaultError {
    match e {
        TargetError::InvalidRecordId => crate::vault::VaultError::InvalidRecordId,
        e => crate::vault::VaultError::InvalidArgument(e.to_string()),
    }
}

async fn grant(
    State(app): State<Arc<App>>,
    Extension(auth): Extension<Authed>,
    TenantPath(tenant): TenantPath,
    JsonBody(req): JsonBody<GrantReq>,
) -> Res {
    let (vault, info) = admit(&app, &auth, &tenant, &names(&req.purposes), &req)?;
    let source = source_of(req.source.as_deref())?;
    if req.receipt {
        return grant_with_receipt(vault, info, tenant, req, source).await;
    }
    let v = change_record(
        vault,
        info,
        tenant,
        req,
        move |vault, _, tenant, t, req| match t {
            Target::Id(id) => vault.grant_by_id(tenant, id, &req.purposes, &source),
            Target::Phone { input, region } => vault
                .add(tenant, input, region, &req.purposes, &source)
                .map(|o| match o {
                    AddOutcome::Unchanged(id) => crate::vault::Changed::No(id),
                    AddOutcome::Created(id) | AddOutcome::Merged(id) => {
                        crate::vault::Changed::Yes(id)
                    }
                }),
        },
    )
    .await?;
    answer_changed(v)
}

/// A write's `source`, or the default when it names none: a malformed one is refused
/// with 400 `invalid_argument`, as the vault refused it before it took a `Source`.
fn source_of(given: Option<&str>) -> Result<Source, crate::vault::VaultError> {
    crate::api::request::source_or_default(given).map_err(crate::vault::VaultError::InvalidValue)
}

/// The first steps of every write that names one record: the policy's decision for the
/// request's `purposes`, the record named exactly once, and the token's write budget
/// (one), before any vault work.
fn admit<R: Targeted>(
    app: &App,
    auth: &Authed,
    tenant: &TenantName,
    purposes: &[&str],
    req: &R,
) -> Result<(crate::vault::Vault, TokenInfo), ApiError> {
    let (vault, info) =
        auth.authorize(&Access::new(tenant.as_str(), Operation::Write, &[]).purposes(purposes))?;
    req.target().map_err(bad_target)?;
    app.writes.take(&info.id, 1)?;
    Ok((vault, info))
}

/// The rest of such a write, once [`admit`]ted: `change` on the blocking pool, answered
/// in detail or, to a caller without detail, `None` (see [`uniform`]).
async fn change_record<R, T>(
    vault: crate::vault::Vault,
    info: TokenInfo,
    tenant: TenantName,
    req: R,
    change: impl FnOnce(
            &crate::vault::Vault,
            &TokenInfo,
            &TenantName,
            Target<'_>,
            &R,
        ) -> Result<T, crate::vault::VaultError>
        + Send
        + 'static,
) -> Result<Option<T>, ApiError>
where
    R: Targeted + Send + 'static,
    T: Send + 'static,
{
    blocking(move || {
        let detailed = write_detail(&vault, &info, &tenant)?;
        let t = req.target().map_err(invalid_target)?;
        uniform(detailed, change(&vault, &info, &tenant, t, &req))
    })
    .await
}

/// A grant with `"receipt": true`: the detailed answer and the receipt file (as a
/// string: its exact bytes are what verifies). A receipt names the record id, so only a
/// caller answered in detail may ask for one (any other writer would learn the id).
async fn grant_with_receipt(
    vault: crate::vault::Vault,
    info: TokenInfo,
    tenant: TenantName,
    req: GrantReq,
    source: Source,
) -> Res {
    let (changed, file) = blocking(move || {
        if !write_detail(&vault, &info, &tenant)? {
            return Ok(None);
        }
        let t = req.target().map_err(invalid_target)?;
        vault
            .grant_with_receipt(&tenant, t, &req.purposes, &source, "api")
            .map(Some)
    })
    .await?
    .ok_or_else(|| {
        ApiError::forbidden(
            "a consent receipt names the record id: ask for one with a tenant admin token holding every purpose",
        )
    })?;
    ok(&ChangedAnswer {
        receipt: Some(String::from_utf8_lossy(&file).into_owned()),
        ..ChangedAnswer::from(changed)
    })
}

/// What a record change answers: in detail, or (see [`accepted`]) `None`, the one
/// answer whether the record exists or not.
fn uniform<T>(
    detailed: bool,
    r: Result<T, crate::vault::VaultError>,
) -> Result<Option<T>, crate::vault::VaultError> {
    match (detailed, r) {
        (true, r) => r.map(Some),
        (false, Ok(_) | Err(crate::vault::VaultError::NoSuchRecord(_))) => Ok(None),
        (false, Err(e)) => Err(e),
    }
}

fn answer_changed(v: Option<crate::vault::Changed>) -> Res {
    match v {
        Some(c) => ok(&ChangedAnswer::from(c)),
        None => accepted(),
    }
}

async fn withdraw(
    State(app): State<Arc<App>>,
    Extension(auth): Extension<Authed>,
    TenantPath(tenant): TenantPath,
    JsonBody(req): JsonBody<WithdrawReq>,
) -> Res {
    let (vault, info) = admit(&app, &auth, &tenant, &[req.purpose.as_str()], &req)?;
    let v = change_record(vault, info, tenant, req, |vault, _, tenant, t, req| {
        vault.withdraw(tenant, t, &req.purpose)
    })
    .await?;
    answer_changed(v)
}

async fn opt_out(
    State(app): State<Arc<App>>,
    Extension(auth): Extension<Authed>,
    TenantPath(tenant): TenantPath,
    JsonBody(req): JsonBody<OptOutReq>,
) -> Res {
    let purpose: Vec<&str> = match (&req.purpose, req.all) {
        (Some(p), false) => vec![p.as_str()],
        (None, true) => Vec::new(),
        _ => {
            return Err(ApiError::bad_json(
                "give exactly one of \"purpose\" and \"all\": true",
            ))
        }
    };
    let (vault, info) = admit(&app, &auth, &tenant, &purpose, &req)?;
    drop(purpose);
    let v = change_record(vault, info, tenant, req, |vault, _, tenant, t, req| {
        vault.opt_out(tenant, t, req.purpose.as_deref())
    })
    .await?;
    answer_changed(v)
}

/// An SMS provider's inbound-message webhook (or an application relaying one): the
/// keyword opt-out. The answer is the same for a known and an unknown sender.
async fn inbound_sms(
    State(app): State<Arc<App>>,
    Extension(auth): Extension<Authed>,
    TenantPath(tenant): TenantPath,
    headers: HeaderMap,
    uri: Uri,
    RawBody(body): RawBody,
) -> Res {
    let (vault, info) =
        auth.authorize(&Access::new(tenant.as_str(), Operation::InboundSms, &[]))?;
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let kind = crate::sms::body_kind(content_type).map_err(|e| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::UNSUPPORTED_MEDIA_TYPE,
            e.to_string(),
        )
    })?;
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let query = uri.query().map(str::to_owned);
    app.writes.take(&info.id, 1)?;
    let answer = blocking(move || {
        vault.inbound_sms(
            &tenant,
            &crate::vault::InboundRequest {
                kind,
                body: &body,
                query: query.as_deref(),
                signature: signature.as_deref(),
            },
        )
    })
    .await?;
    ok(&SmsReply {
        action: answer.action.to_owned(),
        reply: answer.reply,
    })
}

async fn erase(
    State(app): State<Arc<App>>,
    Extension(auth): Extension<Authed>,
    TenantPath(tenant): TenantPath,
    JsonBody(req): JsonBody<TargetReq>,
) -> Res {
    let (vault, info) = admit(&app, &auth, &tenant, &[], &req)?;
    let id = change_record(vault, info, tenant, req, |vault, _, tenant, t, _| {
        vault.erase(tenant, t)
    })
    .await?;
    match id {
        Some(id) => ok(&Erased {
            id: id.to_string(),
            erased: true,
        }),
        None => accepted(),
    }
}

async fn verify(
    State(app): State<Arc<App>>,
    Extension(auth): Extension<Authed>,
    TenantPath(tenant): TenantPath,
    JsonBody(req): JsonBody<TargetReq>,
) -> Res {
    let (vault, info) = admit(&app, &auth, &tenant, &[], &req)?;
    let v = change_record(vault, info, tenant, req, |vault, info, tenant, t, _| {
        vault.verify_for(tenant, t, &info.purposes)
    })
    .await?;
    answer_changed(v)
}

async fn stats(
    Extension(auth): Extension<Authed>,
    TenantPath(tenant): TenantPath,
    JsonBody(req): JsonBody<StatsReq>,
) -> Res {
    let (vault, _) = auth.authorize(&Access::new(tenant.as_str(), Operation::Stats, &[]))?;
    let q = req.query();
    let answer = blocking(move || {
        Ok(StatsAnswer {
            stats: vault.stats(&tenant, &q)?,
            suppression_lists: vault.suppression_stats(&tenant, &q)?,
        })
    })
    .await?;
    ok(&answer)
}

async fn create_token(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: axum::extract::Request,
) -> Res {
    // Who asks, before a byte of the body is read.
    let vault = vault_admin(&app, peer, req.headers(), "creating tokens")?;
    let JsonBody(req) =
        <JsonBody<TokenReq> as axum::extract::FromRequest<()>>::from_request(req, &()).await?;
    let invalid = |e: crate::policy::ValueError| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            code::INVALID_ARGUMENT,
            e.to_string(),
        )
    };
    let role = crate::policy::values::parse_role(&req.role).map_err(invalid)?;
    // The CLI's own message, so that `token create` through the socket prints what it
    // prints in-process.
    let ttl_secs = req
        .ttl
        .as_deref()
        .map(crate::vault::parse_ttl)
        .transpose()?;
    // A name of the wrong form is no tenant: refused as the vault refused it (404
    // `unknown_tenant`, audited without the name), before the vault is asked.
    let tenant = match req.tenant.as_deref().map(TenantName::parse).transpose() {
        Ok(t) => t,
        Err(_) => {
            let e = crate::vault::VaultError::UnknownTenant(());
            let outcome = Outcome::Failed(e.code().to_owned());
            blocking(move || vault.audit_event("token-create", None, outcome)).await?;
            return Err(e.into());
        }
    };
    let spec = TokenSpec {
        tenant,
        role,
        purposes: req.purposes,
        reveal: req.reveal,
        ttl_secs,
    };
    let (info, secret) = blocking(move || vault.create_token(&spec)).await?;
    let created = CreatedToken {
        info: TokenView::from(&info),
        token: Shown::new(secret.expose_secret().to_owned()),
    };
    answer(StatusCode::CREATED, &created)
}

async fn list_tokens(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Res {
    let vault = vault_admin(&app, peer, &headers, "listing tokens")?;
    let list = blocking(move || vault.tokens()).await?;
    ok(&TokenList {
        tokens: list.iter().map(TokenView::from).collect(),
    })
}

async fn revoke_token(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Res {
    let vault = vault_admin(&app, peer, &headers, "revoking tokens")?;
    if blocking(move || vault.revoke_token(&id)).await? {
        ok(&Revoked { revoked: 1 })
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            "no token with that id: list them with GET /v1/sys/tokens",
        ))
    }
}

async fn revoke_all_tokens(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Res {
    let vault = vault_admin(&app, peer, &headers, "revoking tokens")?;
    let n = blocking(move || vault.revoke_all_tokens()).await?;
    ok(&Revoked { revoked: n })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is the failure report

    use super::*;
    use crate::policy::values::{source, tenant};
    use crate::store::MemoryStore;
    use serde_json::{json, Value};
    use std::sync::atomic::{AtomicU64, Ordering};

    const DAY: u64 = 86_400;
    const OTHER_ONLY: &str = "+447400123001";
    const SUPPRESSED: &str = "+447400123002";
    const EXPIRED: &str = "+447400123003";
    const ABSENT: &str = "+447400123004";

    /// A tenant `shop` (otp, marketing; retention 1 day) holding a number consented
    /// for marketing only, one opted out of everything, and one past its retention.
    fn populated() -> crate::vault::Vault {
        let now = Arc::new(AtomicU64::new(1_800_000_000));
        let mut vault = crate::vault::Vault::in_memory(Arc::new(MemoryStore::new())).unwrap();
        let c = now.clone();
        vault.set_clock(Arc::new(move || c.load(Ordering::SeqCst)));
        let purposes = ["otp".to_owned(), "marketing".to_owned()];
        vault
            .create_tenant(&tenant("shop"), &purposes, None)
            .unwrap();
        vault.set_retention(&tenant("shop"), Some(1)).unwrap();
        let otp = ["otp".to_owned()];
        vault
            .add(&tenant("shop"), EXPIRED, None, &otp, &source("t"))
            .unwrap();
        now.fetch_add(2 * DAY, Ordering::SeqCst);
        vault
            .add(
                &tenant("shop"),
                OTHER_ONLY,
                None,
                &["marketing".to_owned()],
                &source("t"),
            )
            .unwrap();
        vault
            .add(&tenant("shop"), SUPPRESSED, None, &otp, &source("t"))
            .unwrap();
        let t = Target::Phone {
            input: SUPPRESSED,
            region: None,
        };
        vault.opt_out(&tenant("shop"), t, None).unwrap();
        vault
    }

    fn writer(vault: &crate::vault::Vault) -> Authed {
        let info = TokenInfo {
            id: "0123456789abcdef".into(),
            tenant: Some("shop".into()),
            role: Role::Writer,
            purposes: vec!["otp".into()],
            reveal: false,
            created_at: 0,
            expires_at: None,
        };
        Authed {
            vault: vault.clone(),
            info,
        }
    }

    /// A request body for a number.
    type BodyFor = fn(&str) -> Value;

    /// Every write route that takes a number, as (name, body for `phone`).
    fn write_routes() -> Vec<(&'static str, BodyFor)> {
        vec![
            ("add", |p| json!({"phone": p, "consents": ["otp"]})),
            (
                "batch",
                |p| json!({"items": [{"phone": p, "consents": ["otp"]}]}),
            ),
            ("grant", |p| json!({"phone": p, "purposes": ["otp"]})),
            ("withdraw", |p| json!({"phone": p, "purpose": "otp"})),
            ("opt-out", |p| json!({"phone": p, "purpose": "otp"})),
            ("opt-out-all", |p| json!({"phone": p, "all": true})),
            ("verify", |p| json!({"phone": p})),
            ("erase", |p| json!({"phone": p})),
        ]
    }

    /// Calls one route's handler as the router would, and returns the status and the
    /// exact bytes of the answer.
    async fn call(app: &Arc<App>, auth: &Authed, route: &str, body: Value) -> (u16, Vec<u8>) {
        let bytes = body.to_string();
        let t = || TenantPath(tenant("shop"));
        let s = || State(app.clone());
        let e = || Extension(auth.clone());
        macro_rules! parse {
            () => {
                JsonBody(super::super::parse_body(bytes.as_bytes()).unwrap())
            };
        }
        let r = match route {
            "add" => add(s(), e(), t(), parse!()).await,
            "batch" => batch(s(), e(), t(), parse!()).await,
            "grant" => grant(s(), e(), t(), parse!()).await,
            "withdraw" => withdraw(s(), e(), t(), parse!()).await,
            "opt-out" | "opt-out-all" => opt_out(s(), e(), t(), parse!()).await,
            "verify" => verify(s(), e(), t(), parse!()).await,
            "erase" => erase(s(), e(), t(), parse!()).await,
            other => panic!("no route {other}"),
        };
        let resp = r.unwrap_or_else(IntoResponse::into_response);
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, body.to_vec())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Issue 13, item 2: a writer limited to `otp` learned whether a number existed
    /// (404 against `200 {"changed":false,"id":…}`), was suppressed or had expired.
    #[test]
    fn write_answers_are_the_same_bytes_for_absent_other_purpose_suppressed_and_expired() {
        let rt = runtime();
        for (route, body) in write_routes() {
            let answers: Vec<(u16, Vec<u8>)> = [ABSENT, OTHER_ONLY, SUPPRESSED, EXPIRED]
                .into_iter()
                .map(|phone| {
                    // A fresh vault per case: a write must not change the next case.
                    let vault = populated();
                    let app = Arc::new(App::for_test(vault.clone(), 0));
                    rt.block_on(call(&app, &writer(&vault), route, body(phone)))
                })
                .collect();
            let text = |a: &(u16, Vec<u8>)| format!("{} {}", a.0, String::from_utf8_lossy(&a.1));
            assert_eq!(answers[0].0, 200, "{route}: {}", text(&answers[0]));
            for a in &answers[1..] {
                assert_eq!(
                    a,
                    &answers[0],
                    "{route}: {} vs {}",
                    text(a),
                    text(&answers[0])
                );
            }
        }
    }

    /// Issue 13, item 2: the write routes had no rate limit at all.
    #[test]
    fn every_write_route_is_rate_limited_per_token() {
        let rt = runtime();
        for (route, body) in write_routes() {
            let vault = populated();
            let app = Arc::new(App::for_test(vault.clone(), 1));
            let auth = writer(&vault);
            let first = rt.block_on(call(&app, &auth, route, body(ABSENT)));
            assert_eq!(first.0, 200, "{route}");
            let second = rt.block_on(call(&app, &auth, route, body(OTHER_ONLY)));
            assert_eq!(second.0, 429, "{route}");
            // Another token has its own budget.
            let mut other = writer(&vault);
            other.info.id = "fedcba9876543210".into();
            let third = rt.block_on(call(&app, &other, route, body(OTHER_ONLY)));
            assert_eq!(third.0, 200, "{route}");
        }
    }

    /// The detailed answers stay for a tenant admin holding every purpose (the CLI
    /// through the socket relies on them).
    #[test]
    fn a_tenant_admin_with_every_purpose_gets_detail() {
        let rt = runtime();
        let vault = populated();
        let app = Arc::new(App::for_test(vault.clone(), 0));
        let mut admin = writer(&vault);
        admin.info.role = Role::Admin;
        admin.info.purposes.clear();
        let (st, body) = rt.block_on(call(&app, &admin, "erase", json!({"phone": ABSENT})));
        assert_eq!(st, 404, "{}", String::from_utf8_lossy(&body));
        let (st, body) = rt.block_on(call(
            &app,
            &admin,
            "add",
            json!({"phone": ABSENT, "consents": ["otp"]}),
        ));
        assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));
    }

    /// Found while checking the `csv_import` fuzz target's line numbers: a phone
    /// with a line break shifted the lines of the members after it, so a batch
    /// answered "ok" for a rejected item and "error" for a stored one.
    #[test]
    fn batch_results_stay_with_their_items_across_line_breaks() {
        let vault = crate::vault::Vault::in_memory(Arc::new(MemoryStore::new())).unwrap();
        vault
            .create_tenant(&tenant("t"), &["otp".into()], None)
            .unwrap();
        let req: BatchReq = super::super::parse_body(
            br#"{"items": [
                {"phone": "+447400123958\n", "consents": ["otp"]},
                {"phone": "junk", "consents": ["otp"]},
                {"phone": "+447400123959", "consents": ["otp"]}
            ]}"#,
        )
        .unwrap();
        let (results, summary) =
            batch_import(&vault, &tenant("t"), &source_of(None).unwrap(), req).unwrap();
        let status: Vec<ItemStatus> = results.iter().map(|r| r.status).collect();
        assert_eq!(status, [ItemStatus::Ok, ItemStatus::Error, ItemStatus::Ok]);
        assert_eq!((summary.created, summary.rejected), (2, 1));
    }
}
