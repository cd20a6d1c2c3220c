//! The socket API: HTTP/1.1 and JSON over a Unix socket (`phonevault serve`).
//!
//! The server holds the store open while unsealed (sled allows one process per
//! vault). It starts sealed unless given an unlock source; `POST /v1/sys/unseal` opens
//! the vault, `POST /v1/sys/seal` drops it (keys zeroize on drop). Every data request
//! carries `Authorization: Bearer <token>`; see [`crate::vault::TokenInfo`] for what a
//! token is bound to.
//!
//! The hot path: on a store only this process opens (sled), authentication and reads
//! run on the async worker that received the request (a few microseconds of work: a
//! point read from the store's cache, a decryption, and the audit entry written to
//! the journal or queued for a shared flush); a thread hand-off would cost more than
//! the work. Writes, and everything on a database store (a network round trip), run
//! on the blocking pool. In `--audit-sync always` mode a read's answer waits for its
//! entry's flush asynchronously (see [`Vault::deferring`]), so every reader waiting
//! at that moment shares one flush without holding a thread.
//!
//! The routes are listed in [`ROUTES`], and the document generated from it and the
//! API's types ([`crate::api::openapi()`]) is served at `GET /v1/openapi.json` (and
//! committed as `openapi.json` at the repository root).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::net::UnixListener;

use crate::policy;
use crate::store::StoreLocation;
use crate::vault::{AuditSync, OpenOptions, TokenInfo, Unlock, Vault, VaultError};

pub(crate) mod api;
mod error;
mod limit;
mod lists;
pub(crate) mod metrics;
mod paths;
mod sweeper;

pub use error::ApiError;

/// Largest request body outside the batch route.
pub const MAX_BODY: usize = 1 << 20;
/// Largest body of the batch route.
pub const MAX_BATCH_BODY: usize = 16 << 20;
/// Most items in one batch.
pub const MAX_BATCH_ITEMS: usize = 10_000;

/// Every route: method, path and the caller it needs, as in `openapi.json`.
pub use crate::api::ROUTES;

/// The OpenAPI 3.1 document of this API, generated once from its types and route
/// table ([`crate::api::openapi()`]); `openapi.json` holds the same bytes.
pub static OPENAPI: std::sync::LazyLock<String> = std::sync::LazyLock::new(crate::api::openapi);

/// Why the server could not start or stopped with an error.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Another server answers on the socket.
    #[error(
        "a server is already listening on {0}: stop it first, or choose another --socket PATH"
    )]
    InUse(PathBuf),
    /// Something that is not a socket is in the way.
    #[error("{0} exists and is not a socket: remove it, or choose another --socket PATH")]
    NotASocket(PathBuf),
    /// The group given to --socket-group is unknown.
    #[error("unknown group `{0}` for --socket-group: give a group name from /etc/group or a numeric gid")]
    UnknownGroup(String),
    /// Socket or runtime I/O failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Opening the vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The metrics registry could not be built.
    #[error("cannot set up the metrics: {0}")]
    Metrics(String),
    /// `--metrics-listen` could not be bound.
    #[error(
        "cannot listen for metrics on {addr}: {source} (choose another --metrics-listen address)"
    )]
    MetricsListen {
        /// The address.
        addr: std::net::SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// How to run the server.
#[derive(Debug)]
pub struct ServeOptions {
    /// The vault directory.
    pub dir: PathBuf,
    /// Where the records live (sled in `dir`, or a database shared by servers).
    pub store: StoreLocation,
    /// Socket path.
    pub socket: PathBuf,
    /// Group (name or gid) given read/write access to the socket (mode 0660).
    pub socket_group: Option<String>,
    /// Peer uids allowed to connect; empty means any (the socket mode decides).
    pub allow_uids: Vec<u32>,
    /// Unlock at start; `None` starts sealed.
    pub unlock: Option<Unlock>,
    /// Lookups by number (and by last 4 digits) per second per token, with a burst of
    /// as many; 0 means no limit.
    pub lookup_rate: u32,
    /// Most connections open at once; more wait in the socket's backlog.
    pub max_connections: usize,
    /// Writes (numbers added, changed or erased) per second per token, with a burst
    /// of as many; a batch is charged per item. 0 means no limit.
    pub write_rate: u32,
    /// Records a token may get from last-4 searches per minute (a burst of as many);
    /// each search costs at least one. 0 means no limit.
    pub last4_per_minute: u32,
    /// Time a client has to send a request's head (slow-loris defence).
    pub header_timeout: Duration,
    /// Time from a request's arrival by which its body must have arrived (slow-body
    /// defence); past it the request gets 408 and its connection is closed.
    pub request_timeout: Duration,
    /// When a read's audit entry lets the read answer (see [`AuditSync`]).
    pub audit_sync: AuditSync,
    /// Log one line per request (method, route, status, peer) to stderr, buffered
    /// and written by a background thread.
    pub access_log: bool,
    /// Run the retention sweeper this often (`None`: never; `purge` by hand).
    pub purge_every: Option<Duration>,
    /// Serve the metrics alone on this TCP address as well (`GET /metrics`).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How log lines are written (the access log's too).
    pub log_format: crate::logging::LogFormat,
}

/// Default of [`ServeOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// Default of [`ServeOptions::lookup_rate`].
pub const DEFAULT_LOOKUP_RATE: u32 = 100;

/// Default of [`ServeOptions::write_rate`].
pub const DEFAULT_WRITE_RATE: u32 = 10_000;

/// Default of [`ServeOptions::last4_per_minute`].
pub const DEFAULT_LAST4_PER_MINUTE: u32 = 30;

/// Default of [`ServeOptions::request_timeout`], in seconds.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;

/// Largest body of `POST /v1/sys/unseal`, the one route that reads a body before it
/// knows who is asking.
pub const MAX_UNSEAL_BODY: usize = 4096;

/// Credentials of the connected peer, read with SO_PEERCRED once per connection.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// User id, `None` if the kernel did not tell.
    pub uid: Option<u32>,
    /// Group id.
    pub gid: Option<u32>,
    /// Process id.
    pub pid: Option<i32>,
}

impl Peer {
    /// The audit actor of an unauthenticated peer (unknown ids as `u32::MAX`).
    pub(crate) fn actor(&self) -> crate::audit::Actor {
        crate::audit::Actor::Peer {
            uid: self.uid.unwrap_or(u32::MAX),
            pid: self
                .pid
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(u32::MAX),
        }
    }

    /// The audit actor of a request made with token `id`.
    pub(crate) fn token_actor(&self, id: &str) -> crate::audit::Actor {
        crate::audit::Actor::Token {
            id: id.to_owned(),
            uid: self.uid.unwrap_or(u32::MAX),
            pid: self
                .pid
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(u32::MAX),
        }
    }

    /// Reads the peer credentials of a connected stream (SO_PEERCRED).
    fn of(stream: &tokio::net::UnixStream) -> Self {
        match stream.peer_cred() {
            Ok(c) => Peer {
                uid: Some(c.uid()),
                gid: Some(c.gid()),
                pid: c.pid(),
            },
            Err(_) => Peer {
                uid: None,
                gid: None,
                pid: None,
            },
        }
    }
}

/// Failed unseal attempts kept in memory while sealed.
pub(crate) const MAX_HELD_ENTRIES: usize = 10_000;

/// Shared server state.
pub(crate) struct App {
    dir: PathBuf,
    store: StoreLocation,
    vault: RwLock<Option<Arc<Vault>>>,
    /// Held for the whole of an unseal attempt (one at a time); counts failures.
    unseal: tokio::sync::Mutex<u32>,
    /// Failed unseal attempts, held until the vault opens and can log them (at most
    /// [`MAX_HELD_ENTRIES`]).
    held: std::sync::Mutex<Vec<crate::audit::Entry>>,
    allow_uids: Vec<u32>,
    /// Lookups by number, one unit each.
    lookups: limit::RateLimiter,
    /// Numbers written, one unit each (a batch item is one).
    writes: limit::RateLimiter,
    /// Records returned by last-4 searches, one unit each.
    last4: limit::RateLimiter,
    request_timeout: Duration,
    audit_sync: AuditSync,
    access_log: Option<Arc<AccessLog>>,
    /// What the retention sweeper did.
    sweeps: sweeper::SweepStats,
    /// Request metrics.
    metrics: metrics::Metrics,
}

impl App {
    /// A server state around an open vault, for handler tests.
    #[cfg(test)]
    pub(crate) fn for_test(vault: Vault, write_rate: u32) -> App {
        App {
            dir: PathBuf::new(),
            store: StoreLocation::Sled,
            vault: RwLock::new(Some(Arc::new(vault))),
            unseal: tokio::sync::Mutex::new(0),
            held: std::sync::Mutex::new(Vec::new()),
            allow_uids: Vec::new(),
            lookups: limit::RateLimiter::new(0.0, 0.0, "lookup", "--lookup-rate"),
            writes: limit::RateLimiter::new(
                f64::from(write_rate),
                f64::from(write_rate),
                "write",
                "--write-rate",
            ),
            last4: limit::RateLimiter::new(0.0, 0.0, "last-4 search", "--last4-per-minute"),
            request_timeout: Duration::from_secs(30),
            audit_sync: AuditSync::Always,
            access_log: None,
            metrics: metrics::Metrics::new().unwrap_or_else(|e| panic!("metrics: {e}")),
            sweeps: sweeper::SweepStats::default(),
        }
    }

    fn current(&self) -> Option<Arc<Vault>> {
        self.vault
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set(&self, v: Option<Arc<Vault>>) {
        *self
            .vault
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = v;
    }

    /// The open vault and the caller's token rights, or 503/401.
    fn authenticate(&self, headers: &HeaderMap) -> Result<(Arc<Vault>, TokenInfo), ApiError> {
        let vault = self.current().ok_or_else(ApiError::sealed)?;
        let token = bearer(headers)?;
        // One point read of the store's cache and a MAC check: short enough for the
        // async worker on sled (the tenant routes use `authenticate_blocking`).
        let info = vault.authenticate(token.trim())?;
        let info = info.ok_or_else(ApiError::unauthorized)?;
        Ok((vault, info))
    }

    /// [`App::authenticate`], on the blocking pool when the store is a database: the
    /// token read is then a network round trip, which must not hold an async worker.
    async fn authenticate_blocking(
        &self,
        headers: &HeaderMap,
    ) -> Result<(Arc<Vault>, TokenInfo), ApiError> {
        let vault = self.current().ok_or_else(ApiError::sealed)?;
        if inline(&vault) {
            let info = vault.authenticate(bearer(headers)?.trim())?;
            return Ok((vault, info.ok_or_else(ApiError::unauthorized)?));
        }
        let token = zeroize::Zeroizing::new(bearer(headers)?.trim().to_owned());
        let v = vault.clone();
        let info = blocking(move || v.authenticate(&token)).await?;
        let info = info.ok_or_else(ApiError::unauthorized)?;
        Ok((vault, info))
    }
}

/// The bearer token of a request, or 401.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(ApiError::unauthorized)
}

/// A request that passed authentication: the vault it runs against and the token's
/// rights. Put in the request's extensions by [`gate`] for every tenant route.
#[derive(Clone)]
pub(crate) struct Authed {
    /// The vault, acting for the token and its peer (recorded in the audit log).
    vault: Vault,
    info: TokenInfo,
}

impl Authed {
    /// The token as the policy sees it.
    fn caller(&self) -> policy::Caller<'_> {
        policy::Caller::Token {
            tenant: self.info.tenant.as_deref(),
            role: self.info.role,
            purposes: &self.info.purposes,
            reveal: self.info.reveal,
        }
    }

    /// Asks the policy whether the token may make `access` (refusals are 403 and
    /// repeat no value of the request).
    fn authorize(&self, access: &policy::Access<'_>) -> Result<(Vault, TokenInfo), ApiError> {
        match policy::decide(&self.caller(), access) {
            policy::Decision::Allow { .. } => Ok((self.vault.clone(), self.info.clone())),
            policy::Decision::Deny(r) => Err(ApiError::forbidden(r.to_string())),
        }
    }
}

/// Whether a write by `info` in `tenant` may answer in detail (see
/// [`policy::Decision::Allow`]): reads the tenant's declared purposes, so it runs on
/// the blocking pool.
fn write_detail(
    vault: &Vault,
    info: &TokenInfo,
    tenant: &policy::TenantName,
) -> Result<bool, VaultError> {
    let declared = vault.declared_purposes(tenant)?;
    let caller = policy::Caller::Token {
        tenant: info.tenant.as_deref(),
        role: info.role,
        purposes: &info.purposes,
        reveal: info.reveal,
    };
    let access = policy::Access::new(tenant.as_str(), policy::Operation::Write, &declared);
    Ok(matches!(
        policy::decide(&caller, &access),
        policy::Decision::Allow { detailed: true }
    ))
}

/// Whether reads of `vault` are short enough for an async worker: its store is one
/// only this process opens (sled's page cache), not a database across a network.
fn inline(vault: &Vault) -> bool {
    !vault.store().shared()
}

tokio::task_local! {
    /// Set by [`gate`] for a request whose vault serves reads inline.
    static INLINE_READS: bool;
}

/// Runs a read-only vault call (lookups, gets): on the async worker when the vault
/// serves reads inline (see [`inline`]), else on the blocking pool.
pub(crate) async fn quick<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, VaultError> + Send + 'static,
) -> Result<T, ApiError> {
    if INLINE_READS.try_with(|b| *b).unwrap_or(false) {
        f().map_err(ApiError::from)
    } else {
        blocking(f).await
    }
}

/// Runs a blocking vault call on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, VaultError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(&e)),
    }
}

/// A JSON body whose every failure is an [`ApiError`]: 413 `payload_too_large`, 400
/// `bad_json` with serde's precise message (unknown fields are refused by the types).
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        parse_body(&bytes).map(JsonBody)
    }
}

/// A body read whole, with the errors of [`JsonBody`] (413, 408), for the routes that
/// parse it themselves (inbound SMS: JSON or a form, and signed as sent).
pub(crate) struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_body(req, state).await.map(RawBody)
    }
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<axum::body::Bytes, ApiError> {
    let deadline = req.extensions().get::<DeadlineFired>().cloned();
    let bytes = match axum::body::Bytes::from_request(req, state).await {
        Ok(b) => b,
        Err(_)
            if deadline
                .as_ref()
                .is_some_and(|d| d.0.load(std::sync::atomic::Ordering::SeqCst)) =>
        {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                crate::api::code::REQUEST_TIMEOUT,
                "the request body did not arrive before the request deadline: send it at once",
            ))
        }
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                crate::api::code::PAYLOAD_TOO_LARGE,
                format!(
                    "request body too large: the limit is {} bytes ({} for the batch route); split the request",
                    MAX_BODY, MAX_BATCH_BODY
                ),
            ))
        }
        Err(r) => return Err(ApiError::bad_json(format!("cannot read the body: {r}"))),
    };
    Ok(bytes)
}

/// Parses a JSON request body into a handler's request type: the one parser of
/// [`JsonBody`] (and of the `http_body` fuzz target).
///
/// # Security
///
/// The error message names fields but never repeats a value of the request: serde's
/// own messages do (`invalid type: integer `447700900123`, expected a string`), and a
/// number sent in the wrong field would come back in the error.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every request body is a JSON object. serde would also build a struct whose fields
    // all have defaults from an array (`[]` was a valid stats request).
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|&b| b != b'{') {
        return Err(ApiError::bad_json(
            "malformed request body: expected a JSON object".to_owned(),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let text = e.to_string();
        let text = match e.classify() {
            // serde_json's syntax messages hold no input ("expected `:`", "EOF while ...").
            serde_json::error::Category::Data => {
                let at = format!(" at line {} column {}", e.line(), e.column());
                let what = text.strip_suffix(at.as_str()).unwrap_or(&text);
                format!("{}{at}", describe_data_error(what))
            }
            _ => text,
        };
        ApiError::bad_json(format!("malformed request body: {text}"))
    })
}

/// serde's message for a request that does not fit its type, without any value the
/// request sent: field names are kept, values are not.
pub(crate) fn describe_data_error(text: &str) -> String {
    const GENERIC: &str = "the request does not match its type (see GET /v1/openapi.json)";
    let mut out = text.to_owned();
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = text.strip_prefix(prefix) {
            // `<what was sent>, expected <what the type takes>`: only the latter is ours,
            // and the last ", expected " is serde's own.
            out = match rest.rsplit_once(", expected ") {
                Some((_, expected)) => format!("{prefix}expected {expected}"),
                None => GENERIC.to_owned(),
            };
        }
    }
    for prefix in ["unknown field `", "unknown variant `"] {
        if let Some(rest) = text.strip_prefix(prefix) {
            if let Some((name, tail)) = rest.split_once('`') {
                if !field_like(name) {
                    out = format!("{}(name not shown){tail}", &prefix[..prefix.len() - 1]);
                }
            }
        }
    }
    if repeats_no_value(&out) {
        out
    } else {
        GENERIC.to_owned()
    }
}

/// Whether `s` could be a field name of a request type (the only part of a request an
/// error message repeats): lowercase letters, `_` and at most four digits.
pub(crate) fn field_like(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
        && s.bytes().filter(u8::is_ascii_digit).count() <= 4
}

/// Whether a message is free of request values: no quoted string, nothing between
/// backticks but field names or one punctuation character, no run of six digits.
fn repeats_no_value(message: &str) -> bool {
    let quoted_ok = message.split('`').enumerate().all(|(i, part)| {
        i % 2 == 0
            || field_like(part)
            || (part.chars().count() == 1 && !part.contains(char::is_alphanumeric))
    });
    let longest_digits = message
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    !message.contains('"') && quoted_ok && longest_digits < 6
}

/// The access log of `--access-log`: lines gathered in memory and written to stderr
/// by a background thread every 100 ms, so a request never waits for the terminal
/// or a pipe. At most [`AccessLog::MAX_BUFFERED`] bytes wait; past that, lines are
/// counted as dropped and the count is logged.
pub(crate) struct AccessLog {
    buf: std::sync::Mutex<(String, u64)>,
    /// JSON lines (`--log-format json`) rather than plain ones.
    json: bool,
}

impl AccessLog {
    const MAX_BUFFERED: usize = 4 << 20;

    /// Starts the writer thread; it ends (after a last write) once the log is dropped.
    fn start(json: bool) -> Arc<AccessLog> {
        let log = Arc::new(AccessLog {
            buf: std::sync::Mutex::new((String::with_capacity(64 << 10), 0)),
            json,
        });
        let weak = Arc::downgrade(&log);
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(100));
                let Some(log) = weak.upgrade() else { return };
                log.write_out();
            });
        if spawned.is_err() {
            tracing::warn!("phonevault serve: no access-log thread; lines are written at shutdown");
        }
        log
    }

    fn push(&self, method: &axum::http::Method, path: &str, status: u16, peer: Peer) {
        use std::fmt::Write as _;
        let mut b = self
            .buf
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if b.0.len() > Self::MAX_BUFFERED {
            b.1 += 1;
            return;
        }
        if self.json {
            let line = serde_json::json!({
                "timestamp": crate::logging::timestamp(),
                "level": "INFO",
                "message": "request",
                "method": method.as_str(),
                "path": path,
                "status": status,
                "uid": peer.uid,
                "pid": peer.pid,
            });
            let _ = writeln!(b.0, "{line}");
            return;
        }
        let _ = write!(b.0, "phonevault serve: {method} {path} {status} uid=");
        match peer.uid {
            Some(u) => {
                let _ = write!(b.0, "{u}");
            }
            None => b.0.push('?'),
        }
        b.0.push_str(" pid=");
        match peer.pid {
            Some(p) => {
                let _ = write!(b.0, "{p}");
            }
            None => b.0.push('?'),
        }
        b.0.push('\n');
    }

    /// Writes what is buffered (the lock is held only to swap buffers).
    fn write_out(&self) {
        use std::io::Write as _;
        let (text, dropped) = {
            let mut b = self
                .buf
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if b.0.is_empty() && b.1 == 0 {
                return;
            }
            let text = std::mem::replace(&mut b.0, String::with_capacity(64 << 10));
            (text, std::mem::take(&mut b.1))
        };
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        if dropped > 0 {
            let message = format!("{dropped} access-log lines dropped (stderr too slow)");
            let _ = if self.json {
                let line = serde_json::json!({
                    "timestamp": crate::logging::timestamp(),
                    "level": "WARN",
                    "message": message,
                });
                writeln!(err, "{line}")
            } else {
                writeln!(err, "phonevault serve: {message}")
            };
        }
        let _ = err.flush();
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.write_out();
    }
}

/// Per-request gate: refuses peers outside --allow-uid, authenticates tenant routes,
/// holds a read's answer until its audit entry is as durable as `--audit-sync` asks,
/// and (with --access-log) logs method, route, status and peer credentials (never a
/// body, so never a number).
async fn gate(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
    next: Next,
) -> Response {
    // A clone of the request's URI shares its bytes: no allocation.
    let uri = req.uri().clone();
    let path = uri.path();
    let started = std::time::Instant::now();
    let method = req.method().clone();
    // Every body must arrive by the deadline, counted from here (the head arrived).
    let fired = DeadlineFired::default();
    let deadline = tokio::time::Instant::now() + app.request_timeout;
    let mut req =
        req.map(|b| axum::body::Body::new(limit::DeadlineBody::new(b, deadline, fired.0.clone())));
    req.extensions_mut().insert(fired.clone());
    let mut token_id = None;
    let mut token_tenant = None;
    let resp = if !app.allow_uids.is_empty()
        && !peer.uid.is_some_and(|u| app.allow_uids.contains(&u))
    {
        ApiError::forbidden("this user may not use the vault socket (--allow-uid)").into_response()
    } else if path.starts_with("/v1/tenants/") {
        // Sealed, then token, before the body is read: a sealed vault answers 503 and
        // an anonymous caller 401 whatever it sends.
        match app.authenticate_blocking(req.headers()).await {
            Ok((vault, info)) => {
                token_id = Some(info.id.clone());
                token_tenant = info.tenant.clone();
                let quick = inline(&vault);
                let vault = vault.acting_as(peer.token_actor(&info.id)).deferring();
                let waiter = vault.clone();
                let mut req = req;
                req.extensions_mut().insert(Authed { vault, info });
                let resp = INLINE_READS.scope(quick, next.run(req)).await;
                synced(&waiter, resp).await
            }
            Err(e) => {
                drain_small(req.into_body()).await;
                e.into_response()
            }
        }
    } else {
        next.run(req).await
    };
    // The tenant of the path is recorded (and logged) only when it is the token's own:
    // anything else is whatever the caller typed.
    let tenant = token_tenant.filter(|t| path_tenant(path) == Some(t.as_str()));
    let mut resp = audit_refusal(&app, peer, token_id, tenant.clone(), resp).await;
    if fired.0.load(std::sync::atomic::Ordering::SeqCst)
        || matches!(
            resp.status(),
            StatusCode::UNAUTHORIZED
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::SERVICE_UNAVAILABLE
        )
    {
        // The body may be unread: the connection is not reused.
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    let status = resp.status().as_u16();
    app.metrics
        .observe(method.as_str(), path, status, started.elapsed());
    if let Some(log) = &app.access_log {
        log.push(&method, &route_of(path, tenant.as_deref()), status, peer);
    }
    resp
}

/// `resp`, once the entries of the reads made through the [`Vault::deferring`] handle
/// `vault` are durable; 503 `audit_unavailable` instead when they cannot be made so.
async fn synced(vault: &Vault, resp: Response) -> Response {
    match vault.audit_settled().await {
        Ok(()) => resp,
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Reads and drops what a refused request sent, when it is small, before the refusal
/// is answered: a connection closed with unread bytes in it is reset, and the client
/// may lose the answer with it (schemathesis saw "closed without response" for 401s).
/// Read within the request deadline, dropped unparsed, and never more than
/// [`MAX_BODY`]: a larger body is left unread and its connection reset.
pub(crate) async fn drain_small(body: axum::body::Body) {
    use http_body_util::BodyExt;
    const DRAIN: usize = MAX_BODY;
    let mut body = body;
    let mut read = 0;
    while read <= DRAIN {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}

/// Set by a request's [`limit::DeadlineBody`] when its deadline passed.
#[derive(Clone, Default)]
pub(crate) struct DeadlineFired(Arc<std::sync::atomic::AtomicBool>);

/// The tenant segment of a tenant route's path.
fn path_tenant(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/tenants/")
        .and_then(|r| r.split('/').next())
}

/// The route of `path` as listed in [`ROUTES`], for the access log: the tenant shown
/// only when it is `tenant` (the token's own), record and token ids never (a path
/// segment is whatever the caller typed).
fn route_of(path: &str, tenant: Option<&str>) -> String {
    let segs: Vec<&str> = path.split('/').collect();
    for route in ROUTES.iter().map(|r| r.path) {
        let pattern: Vec<&str> = route.split('/').collect();
        if pattern.len() == segs.len()
            && pattern
                .iter()
                .zip(&segs)
                .all(|(p, s)| p.starts_with('{') || p == s)
        {
            return match tenant {
                Some(t) if path_tenant(path) == Some(t) => route.replace("{tenant}", t),
                _ => route.to_owned(),
            };
        }
    }
    "(no route)".to_owned()
}

/// Records refusals the vault itself never saw (failed authentication, a token used
/// outside its rights, the lookup rate limit) in the audit log. When the entry cannot
/// be written the caller gets 503 instead of the refusal: nothing goes unaudited.
async fn audit_refusal(
    app: &App,
    peer: Peer,
    token_id: Option<String>,
    tenant: Option<String>,
    resp: Response,
) -> Response {
    let action = match resp.status() {
        StatusCode::UNAUTHORIZED => "auth-failed",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::TOO_MANY_REQUESTS => "rate-limited",
        _ => return resp,
    };
    // Unseal failures are held until the vault opens (see `unseal`).
    let Some(vault) = app.current() else {
        return resp;
    };
    let actor = match &token_id {
        Some(id) => peer.token_actor(id),
        None => peer.actor(),
    };
    let quick = inline(&vault);
    let vault = vault.acting_as(actor).deferring();
    let log = {
        let vault = vault.clone();
        move || vault.audit_event(action, tenant.as_deref(), crate::audit::Outcome::Refused)
    };
    let logged = if quick {
        log().map_err(ApiError::from)
    } else {
        blocking(log).await
    };
    match logged {
        Ok(()) => synced(&vault, resp).await,
        Err(e) => e.into_response(),
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ServerError {
    let path = path.to_owned();
    move |source| ServerError::Io {
        action,
        path,
        source,
    }
}

fn resolve_group(g: &str) -> Result<u32, ServerError> {
    if let Ok(gid) = g.parse::<u32>() {
        return Ok(gid);
    }
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    groups
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let gid = f.nth(1)?.parse::<u32>().ok()?;
            (name == g).then_some(gid)
        })
        .next()
        .ok_or_else(|| ServerError::UnknownGroup(g.to_owned()))
}

/// Binds the socket with its final mode before anyone can reach it: bound inside a
/// fresh 0700 directory, given its mode (and group), then renamed into place. A stale
/// socket file is replaced; a live one is an error.
fn bind_socket(
    path: &Path,
    group: Option<u32>,
) -> Result<std::os::unix::net::UnixListener, ServerError> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ServerError::NotASocket(path.to_owned()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServerError::InUse(path.to_owned()));
        }
        std::fs::remove_file(path).map_err(io_err("removing the stale socket", path))?;
    }
    let parent = path.parent().unwrap_or(Path::new("."));
    let staging = parent.join(format!(".phonevault-sock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(io_err("creating", &staging))?;
    let tmp = staging.join("s");
    let result = (|| {
        let l = std::os::unix::net::UnixListener::bind(&tmp).map_err(io_err("binding", &tmp))?;
        let mode = if group.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .map_err(io_err("setting the mode of", &tmp))?;
        if let Some(gid) = group {
            std::os::unix::fs::chown(&tmp, None, Some(gid))
                .map_err(io_err("setting the group of", &tmp))?;
        }
        std::fs::rename(&tmp, path).map_err(io_err("moving the socket to", path))?;
        Ok(l)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// Opens the vault with `unlock` on the blocking pool, in durability mode `sync`.
async fn open_vault(
    dir: PathBuf,
    store: StoreLocation,
    unlock: Unlock,
    sync: AuditSync,
) -> Result<Vault, VaultError> {
    let opts = OpenOptions {
        store,
        ..OpenOptions::default()
    };
    match tokio::task::spawn_blocking(move || {
        let v = Vault::open(&dir, &unlock, opts)?;
        v.set_audit_sync(sync)?;
        Ok(v)
    })
    .await
    {
        Ok(r) => r,
        Err(e) => Err(VaultError::InvalidArgument(format!(
            "unlock task failed: {e}"
        ))),
    }
}

/// Delay after the `n`th consecutive failed unseal attempt.
fn unseal_delay(failures: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << failures.min(6)))
}

/// Runs the server until SIGTERM or SIGINT, then lets in-flight requests finish and
/// removes the socket file.
///
/// # Errors
/// [`ServerError`] when the socket cannot be bound or the vault cannot be opened.
pub fn serve(opts: ServeOptions) -> Result<(), ServerError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io_err("starting the runtime for", &opts.socket))?;
    rt.block_on(run(opts))
}

async fn run(opts: ServeOptions) -> Result<(), ServerError> {
    if !opts.dir.join(crate::vault::KEYRING_FILE).exists() {
        return Err(VaultError::NoVault(opts.dir.clone()).into());
    }
    let group = opts
        .socket_group
        .as_deref()
        .map(resolve_group)
        .transpose()?;
    let vault = match opts.unlock {
        Some(u) => Some(Arc::new(
            open_vault(opts.dir.clone(), opts.store.clone(), u, opts.audit_sync).await?,
        )),
        None => None,
    };
    let sealed = vault.is_none();
    let app = Arc::new(App {
        dir: opts.dir.clone(),
        store: opts.store.clone(),
        vault: RwLock::new(vault),
        unseal: tokio::sync::Mutex::new(0),
        held: std::sync::Mutex::new(Vec::new()),
        allow_uids: opts.allow_uids,
        lookups: limit::RateLimiter::new(
            f64::from(opts.lookup_rate),
            f64::from(opts.lookup_rate),
            "lookup",
            "--lookup-rate",
        ),
        writes: limit::RateLimiter::new(
            f64::from(opts.write_rate),
            f64::from(opts.write_rate),
            "write",
            "--write-rate",
        ),
        last4: limit::RateLimiter::new(
            f64::from(opts.last4_per_minute) / 60.0,
            f64::from(opts.last4_per_minute),
            "last-4 search",
            "--last4-per-minute",
        ),
        request_timeout: opts.request_timeout,
        audit_sync: opts.audit_sync,
        access_log: opts
            .access_log
            .then(|| AccessLog::start(opts.log_format == crate::logging::LogFormat::Json)),
        sweeps: sweeper::SweepStats::default(),
        metrics: metrics::Metrics::new().map_err(|e| ServerError::Metrics(e.to_string()))?,
    });
    if let Some(addr) = opts.metrics_listen {
        let app = app.clone();
        // Bound before the socket API answers, so a taken port fails the start.
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::MetricsListen { addr, source })?;
        tokio::spawn(async move {
            if let Err(e) = metrics::listen(app, listener, addr).await {
                tracing::warn!("phonevault serve: the metrics listener on {addr} stopped: {e}");
            }
        });
    }
    if let Some(every) = opts.purge_every {
        tokio::spawn(sweeper::run(app.clone(), every));
    }
    let std_listener = bind_socket(&opts.socket, group)?;
    std_listener
        .set_nonblocking(true)
        .map_err(io_err("configuring", &opts.socket))?;
    let listener =
        UnixListener::from_std(std_listener).map_err(io_err("listening on", &opts.socket))?;
    let listener = limit::LimitedListener::new(listener, opts.max_connections);
    tracing::info!(
        "phonevault serve: listening on {} ({})",
        opts.socket.display(),
        if sealed { "sealed" } else { "unsealed" }
    );
    let router = api::router(app.clone());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(io_err("installing the signal handler for", &opts.socket))?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("phonevault serve: shutting down");
    };
    let served = accept_loop(listener, router, opts.header_timeout, shutdown).await;
    let _ = std::fs::remove_file(&opts.socket);
    let last = app.current();
    app.set(None);
    if let Some(v) = last {
        // Folded and flushed before the process exits, whoever holds the last handle.
        let _ = tokio::task::spawn_blocking(move || v.close()).await;
    }
    if let Some(log) = &app.access_log {
        log.write_out();
    }
    served.map_err(io_err("serving on", &opts.socket))
}

/// Accepts connections until `shutdown` resolves, then waits for the open ones to
/// finish their requests. Each connection gets its peer credentials and an HTTP/1.1
/// server whose request head must arrive within `header_timeout` (slow-loris clients
/// are dropped).
async fn accept_loop(
    mut listener: limit::LimitedListener,
    router: axum::Router,
    header_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    use axum::serve::Listener;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (io, _) = tokio::select! {
            conn = listener.accept() => conn,
            () = &mut shutdown => break,
        };
        let peer = Peer::of(&io.inner);
        let svc = router.clone().layer(axum::Extension(ConnectInfo(peer)));
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A connection error (garbage, timeout, reset) concerns that client only.
            let _ = conn.await;
        });
    }
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is the failure report

    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn openapi_documents_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(&OPENAPI).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert((method.clone(), path.clone()));
            }
        }
        let routed: BTreeSet<_> = ROUTES
            .iter()
            .map(|r| (r.method.as_str().to_owned(), r.path.to_owned()))
            .collect();
        assert_eq!(documented, routed);
    }

    /// The route table names the role each route's document names (the server test
    /// `every_route_needs_the_role_its_document_names` shows the server enforces it).
    #[test]
    fn the_route_table_needs_the_documented_roles() {
        let doc: serde_json::Value = serde_json::from_str(&OPENAPI).unwrap();
        for r in ROUTES {
            let op = &doc["paths"][r.path][r.method.as_str()];
            assert_eq!(
                op["x-phonevault-role"].as_str(),
                Some(r.needs.as_str()),
                "{} {}",
                r.method.as_str(),
                r.path
            );
        }
    }

    #[test]
    fn unseal_delay_grows_and_is_capped() {
        assert!(unseal_delay(1) < unseal_delay(2));
        assert_eq!(unseal_delay(6), unseal_delay(60));
        assert!(unseal_delay(60) <= Duration::from_secs(16));
    }

    /// Found by the `http_body` fuzz target's message check: serde's messages repeat
    /// the value sent, so a number (or passphrase) in the wrong field came back in
    /// the error.
    /// Found by schemathesis: `[]` was a valid stats request, since serde builds a struct
    /// whose fields all have defaults from an array.
    #[test]
    fn a_body_that_is_not_an_object_is_refused() {
        #[derive(serde::Deserialize, Debug)]
        struct AllDefault {
            #[serde(default)]
            _x: Option<u8>,
        }
        for body in [&b"[]"[..], b" [1]", b"\"x\"", b"1", b"null"] {
            let e = parse_body::<AllDefault>(body).unwrap_err();
            assert_eq!(e.code, "bad_json");
        }
        assert!(parse_body::<AllDefault>(b" {}").is_ok());
    }

    #[test]
    fn body_errors_name_fields_but_repeat_no_value() {
        let message = |body: &str| {
            parse_body::<crate::api::request::AddReq>(body.as_bytes())
                .err()
                .unwrap()
                .message
        };
        for body in [
            r#"{"phone": 447700900123, "consents": []}"#,
            r#"{"phone": "+447700900123", "consents": "+447700900124"}"#,
            r#"{"phone": "+447700900123", "consents": [], "447700900125": 1}"#,
            r#"{"phone": "+447700900123", "consents": [4477009001]}"#,
        ] {
            let m = message(body);
            assert!(!m.contains("4477009001"), "{m}");
            assert!(m.contains("line 1 column"), "{m}");
        }
        assert!(message(r#"{"phone": 7, "consents": []}"#).contains("expected a string"));
        let m = message(r#"{"phone": "+447700900123", "consents": [], "extra": 1}"#);
        assert!(
            m.contains("unknown field `extra`, expected one of `phone`"),
            "{m}"
        );
        assert!(message(r#"{"consents": []}"#).contains("missing field `phone`"));
        assert!(message(r#"{"phone": "#).contains("EOF while parsing"));
        let stats =
            parse_body::<crate::api::request::StatsReq>(br#"{"epsilon": "secret passphrase"}"#);
        let m = stats.err().unwrap().message;
        assert!(!m.contains("secret") && m.contains("expected f64"), "{m}");
    }

    #[test]
    fn query_errors_repeat_no_value() {
        let e = api::parse_get_query(Some("purpose=otp&447700900123=1"))
            .err()
            .unwrap();
        assert_eq!(e.code, "bad_query");
        assert!(!e.message.contains("4477009001"), "{}", e.message);
        assert!(e.message.contains("unknown field"), "{}", e.message);
        let e = api::parse_get_query(Some("reveal=true")).err().unwrap();
        assert!(
            e.message.contains("missing field `purpose`"),
            "{}",
            e.message
        );
        let e = api::parse_get_query(None).err().unwrap();
        assert!(
            e.message.contains("missing field `purpose`"),
            "{}",
            e.message
        );
    }
}
