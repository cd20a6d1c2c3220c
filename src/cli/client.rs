//! The CLI as a client of a running `phonevault serve`.
//!
//! sled lets one process open a vault, and a server holds it. While one answers on the
//! vault's socket (`<vault dir>/phonevault.sock`, or `--socket PATH`), every command
//! with an API route goes through it, authenticated with the token in `--token-file
//! FILE` or `PHONEVAULT_TOKEN`, and prints what the in-process path prints, with the
//! same exit codes; the server's errors carry the same messages as the local ones
//! (`crate::server::ApiError` is built from the same `VaultError`). A command without a
//! route stops with a message naming the socket instead of a lock error.
//!
//! HTTP/1.1 over the Unix socket is hyper's client connection on a current-thread
//! tokio runtime: one connection, kept alive across the requests of a command.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use super::backend::{self, Backend, RejectsFile, RowReject};
use super::server_cmds::{self, TokenCreateArgs};
use super::{
    fail, passphrase_from_sources, read_secret_file, say, AddArgs, Cli, Command, DeleteArgs,
    Failure, FindArgs, GetArgs, ImportArgs, KeyCommand, StatsArgs, TargetArgs, TenantCommand,
};
use crate::api::response::{
    Added, BatchAnswer, BatchSummary, ChangedAnswer, CreatedToken, Deleted, Erased, ItemStatus,
    Record, Records, Revoked, SealState, TokenList, TokenView, WriteAnswer,
};
use crate::api::{code, ErrorBody, ErrorDetail, Shown};
use crate::phone::{self, NumberKind};
use crate::policy::{Source, TenantName};
use crate::stats::{Group, Stats, StatsError, StatsQuery};
use crate::store::StoreError;
use crate::vault::{self, ImportSummary, ListCount, Role, TokenInfo, VaultError};

/// The socket a server makes in the vault directory unless given `--socket`.
pub const DEFAULT_SOCKET: &str = "phonevault.sock";

/// Longest wait for one answer (an unseal runs Argon2 and may be slowed down after
/// failed attempts; a batch writes up to 10,000 numbers).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest answer read (a batch answer lists every item).
const MAX_ANSWER: usize = 64 << 20;
/// Upper bound of one batch item's JSON: a number of at most
/// [`phone::MAX_INPUT_CHARS`] characters, each escaped to at most 6 bytes, and the
/// field names.
const MAX_ITEM_JSON: usize = 6 * phone::MAX_INPUT_CHARS + 64;

/// The socket of the server: `--socket`, or the default one in the vault directory.
pub(super) fn socket_path(cli: &Cli) -> PathBuf {
    cli.socket
        .clone()
        .unwrap_or_else(|| cli.vault.join(DEFAULT_SOCKET))
}

/// Runs the command through a server when one holds the vault: `None` when the command
/// runs in-process (no server answers, or the command needs no vault).
pub(super) fn through_server(cli: &Cli) -> Option<Result<(), Failure>> {
    if matches!(
        cli.command,
        Command::Init(_)
            | Command::Normalize(_)
            | Command::Serve(_)
            | Command::Demo(_)
            | Command::Receipt(super::ReceiptCommand::Verify { .. })
    ) {
        return None;
    }
    let socket = socket_path(cli);
    match std::os::unix::net::UnixStream::connect(&socket) {
        Ok(_) => Some(Remote::new(cli, socket).and_then(|mut r| r.run(cli))),
        // No server (or a stale socket file): the vault is free.
        Err(_) if cli.socket.is_none() => None,
        Err(e) => Some(Err(fail(format!(
            "no phonevault server answers at {}: {e}; start `phonevault serve`, or leave out --socket to use the vault directly",
            socket.display()
        )))),
    }
}

/// The refusal of `seal` and `unseal` when no server answers.
pub(super) fn no_server(cli: &Cli) -> Failure {
    fail(format!(
        "no phonevault server answers at {}: seal and unseal act on a running `phonevault serve` (give its socket with --socket PATH)",
        socket_path(cli).display()
    ))
}

/// A local open that found the store locked: perhaps a server on another socket.
pub(super) fn locked_hint(e: VaultError) -> Failure {
    if matches!(e, VaultError::Store(StoreError::Locked)) {
        fail(format!(
            "{e}; if a `phonevault serve` holds it on a socket outside the vault directory, pass --socket PATH and a token (--token-file FILE or PHONEVAULT_TOKEN)"
        ))
    } else {
        e.into()
    }
}

/// An API token from `--token-file` or `PHONEVAULT_TOKEN`. No `Debug` of the text, no
/// `Clone`, no `Display`; zeroized on drop.
struct ApiToken(Zeroizing<String>);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken").finish_non_exhaustive()
    }
}

impl ApiToken {
    fn read(cli: &Cli) -> Result<Option<ApiToken>, Failure> {
        let (text, from) = if let Some(path) = &cli.token_file {
            let bytes = read_secret_file(path)?;
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                fail(format!(
                    "{} is not UTF-8 text: put the token (from `phonevault token create`) on its first line",
                    path.display()
                ))
            })?;
            let line = Zeroizing::new(text.lines().next().unwrap_or("").trim().to_owned());
            (line, path.display().to_string())
        } else if let Some(t) = std::env::var_os("PHONEVAULT_TOKEN") {
            let t = Zeroizing::new(t.into_string().unwrap_or_default());
            (
                Zeroizing::new(t.trim().to_owned()),
                "PHONEVAULT_TOKEN".into(),
            )
        } else {
            return Ok(None);
        };
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(fail(format!(
                "{from} does not hold an API token: give the token printed by `phonevault token create` (pvt_ and 64 hex characters)"
            )));
        }
        Ok(Some(ApiToken(text)))
    }

    fn header(&self) -> Result<HeaderValue, Failure> {
        let text = Zeroizing::new(format!("Bearer {}", self.0.as_str()));
        let mut v = HeaderValue::from_str(&text)
            .map_err(|_| fail("the API token holds characters a header cannot carry"))?;
        v.set_sensitive(true);
        Ok(v)
    }
}

/// A growable byte buffer whose old allocations are zeroized as it grows (request
/// bodies carry numbers and passphrases).
struct SecretBuf(Zeroizing<Vec<u8>>);

impl SecretBuf {
    fn with_capacity(n: usize) -> SecretBuf {
        SecretBuf(Zeroizing::new(Vec::with_capacity(n)))
    }
}

impl Write for SecretBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let need = self.0.len() + buf.len();
        if need > self.0.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(need.max(2 * self.0.capacity())));
            bigger.extend_from_slice(&self.0);
            // The old allocation is zeroized when it drops here.
            self.0 = bigger;
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn json_body(v: &impl Serialize) -> Result<SecretBuf, Failure> {
    let mut b = SecretBuf::with_capacity(1024);
    serde_json::to_writer(&mut b, v)
        .map_err(|e| fail(format!("cannot encode the request: {e}")))?;
    Ok(b)
}

/// A token the server showed, as the CLI prints it.
fn token_info(t: TokenView) -> Result<TokenInfo, Failure> {
    let role = Role::parse(&t.role).ok_or_else(|| {
        fail(format!(
            "the server sent an unknown token role `{}`: is the CLI older than the server?",
            t.role
        ))
    })?;
    Ok(TokenInfo {
        id: t.id,
        tenant: t.tenant,
        role,
        purposes: t.purposes,
        reveal: t.reveal,
        created_at: t.created_at,
        expires_at: t.expires_at,
    })
}

/// An object without its `null` members: the server refuses `null` where the document
/// says string or number, and an absent member means the default.
fn without_nulls(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, m| !m.is_null());
    }
    v
}

/// `POST .../numbers`. Request bodies borrow the numbers, so that no copy outlives
/// the zeroized body.
#[derive(Serialize)]
struct AddBody<'a> {
    phone: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
    consents: &'a [String],
    source: &'a Source,
}

/// `POST .../lookup`.
#[derive(Serialize)]
struct LookupBody<'a> {
    phone: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
    purpose: &'a str,
    reveal: bool,
}

/// `POST .../consent/grant`, `.../consent/withdraw` and `.../opt-out`: a target and
/// what to do with it.
#[derive(Serialize)]
struct TargetedBody<'a> {
    #[serde(flatten)]
    target: TargetBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purposes: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purpose: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    all: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    receipt: bool,
}

impl<'a> TargetedBody<'a> {
    fn of(t: &'a TargetArgs) -> TargetedBody<'a> {
        TargetedBody {
            target: TargetBody::of(t),
            purposes: None,
            source: None,
            purpose: None,
            all: false,
            receipt: false,
        }
    }
}

/// `POST /v1/sys/unseal`.
#[derive(Serialize)]
struct UnsealBody<'a> {
    passphrase: &'a str,
}

/// A target record in a request body: by number (with its region hint) or by id.
#[derive(Serialize)]
struct TargetBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
}

impl<'a> TargetBody<'a> {
    fn of(t: &'a TargetArgs) -> TargetBody<'a> {
        // clap asks for exactly one of --phone and --id.
        match (&t.phone, t.id) {
            (None, Some(id)) => TargetBody {
                phone: None,
                region: None,
                id: Some(id.to_string()),
            },
            (phone, _) => TargetBody {
                phone: Some(phone.as_deref().unwrap_or_default()),
                region: t.region.as_deref(),
                id: None,
            },
        }
    }
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn tenant_path(tenant: &TenantName, rest: &str) -> String {
    format!("/v1/tenants/{}/{rest}", enc(tenant.as_str()))
}

/// A connection to the server and the caller's token.
struct Remote {
    socket: PathBuf,
    token: Option<ApiToken>,
    rt: tokio::runtime::Runtime,
    conn: Option<SendRequest<Full<Bytes>>>,
}

async fn connect(socket: &Path) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| e.to_string())?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes the connection.
        let _ = conn.await;
    });
    Ok(sender)
}

impl Remote {
    fn new(cli: &Cli, socket: PathBuf) -> Result<Remote, Failure> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start the client runtime: {e}")))?;
        Ok(Remote {
            socket,
            token: ApiToken::read(cli)?,
            rt,
            conn: None,
        })
    }

    fn token_header(&self) -> Result<HeaderValue, Failure> {
        match &self.token {
            Some(t) => t.header(),
            None => Err(fail(format!(
                "a phonevault server holds this vault (socket {}): this command goes through it and needs an API token: pass --token-file FILE or set PHONEVAULT_TOKEN (tokens come from `phonevault token create`)",
                self.socket.display()
            ))),
        }
    }

    /// Sends one request and returns the status and the body of the answer.
    fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<SecretBuf>,
        auth: bool,
    ) -> Result<(StatusCode, Zeroizing<Vec<u8>>), Failure> {
        let token = if auth {
            Some(self.token_header()?)
        } else {
            None
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, "localhost");
        if let Some(t) = token {
            req = req.header(AUTHORIZATION, t);
        }
        let body = match body {
            // Zeroized when hyper drops the last reference to it.
            Some(b) => {
                req = req.header(CONTENT_TYPE, "application/json");
                Full::new(Bytes::from_owner(b.0))
            }
            None => Full::new(Bytes::new()),
        };
        let req = req
            .body(body)
            .map_err(|e| fail(format!("cannot build the request for {path}: {e}")))?;
        let socket = self.socket.clone();
        let conn = self.conn.take();
        let exchange = async move {
            let mut sender = match conn {
                Some(s) if !s.is_closed() => s,
                _ => connect(&socket).await?,
            };
            if sender.ready().await.is_err() {
                // The server closed the kept-alive connection: nothing was sent yet.
                sender = connect(&socket).await?;
                sender.ready().await.map_err(|e| e.to_string())?;
            }
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((sender, status, Zeroizing::new(bytes.to_vec())))
        };
        // The timer is made inside the runtime: it needs its time driver.
        let answer = self
            .rt
            .block_on(async move { tokio::time::timeout(REQUEST_TIMEOUT, exchange).await });
        match answer {
            Ok(Ok((sender, status, bytes))) => {
                self.conn = Some(sender);
                Ok((status, bytes))
            }
            Ok(Err(e)) => Err(fail(format!(
                "cannot talk to the phonevault server at {}: {e}; is it running? (see its log)",
                self.socket.display()
            ))),
            Err(_) => Err(fail(format!(
                "the phonevault server at {} did not answer within {} seconds: see its log",
                self.socket.display(),
                REQUEST_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Sends a request: a success parsed into `T`, or the server's refusal.
    fn request<T: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<SecretBuf>,
        auth: bool,
    ) -> Result<Result<T, ErrorDetail>, Failure> {
        let (status, bytes) = self.send(method, path, body, auth)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map(Ok).map_err(|e| {
                fail(format!(
                    "the server at {} sent an answer this CLI does not understand ({e}): is the CLI older than the server?",
                    self.socket.display()
                ))
            });
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(ErrorBody { error }) => Ok(Err(error)),
            Err(_) => Err(fail(format!(
                "the server at {} answered {status} without a phonevault error: is it a phonevault server?",
                self.socket.display()
            ))),
        }
    }

    /// Maps a server refusal to the CLI's failure: the vault's own errors come with
    /// the same message as in-process; socket-only ones get a CLI hint.
    fn refusal(&self, code: &str, message: &str) -> Failure {
        let sock = self.socket.display();
        match code {
            code::SEALED => fail(format!(
                "the vault is sealed: run `phonevault unseal` (the server at {sock} holds it), or start the server with --passphrase-file or --key-file"
            )),
            code::UNAUTHORIZED => fail(format!(
                "the server at {sock} refused the API token (unknown, revoked or expired): pass a valid one with --token-file FILE or PHONEVAULT_TOKEN"
            )),
            code::INTERNAL => fail(format!(
                "the server at {sock} failed on this request: see its log"
            )),
            // Messages from the server never hold a number; control characters are
            // dropped so that a message cannot rewrite the terminal.
            _ => fail(
                message
                    .chars()
                    .filter(|c| !c.is_control())
                    .collect::<String>(),
            ),
        }
    }

    /// An authenticated request; every refusal becomes the CLI's failure.
    fn call<T: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<SecretBuf>,
    ) -> Result<T, Failure> {
        self.request(method, path, body, true)?
            .map_err(|e| self.refusal(&e.code, &e.message))
    }

    /// An authenticated read: `None` when the server answers `not_found` (absent, or
    /// not readable for the purpose: the in-process "nothing found").
    fn call_or_absent<T: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<SecretBuf>,
    ) -> Result<Option<T>, Failure> {
        match self.request(method, path, body, true)? {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code == code::NOT_FOUND => Ok(None),
            Err(e) => Err(self.refusal(&e.code, &e.message)),
        }
    }

    /// A request without a token (health, unseal).
    fn call_anonymous<T: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<SecretBuf>,
    ) -> Result<T, Failure> {
        self.request(method, path, body, false)?
            .map_err(|e| self.refusal(&e.code, &e.message))
    }

    fn post<T: DeserializeOwned>(
        &mut self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Failure> {
        self.call(Method::POST, path, Some(json_body(body)?))
    }

    fn no_route(&self, what: &str) -> Failure {
        fail(format!(
            "a phonevault server holds this vault (socket {}) and `phonevault {what}` has no API route: stop the server (SIGTERM), run the command, then start the server again",
            self.socket.display()
        ))
    }

    fn run(&mut self, cli: &Cli) -> Result<(), Failure> {
        if let Some(done) = backend::dispatch(cli, self) {
            return done;
        }
        match &cli.command {
            Command::Seal => self.seal(cli),
            Command::Unseal => self.unseal(cli),
            // Every other command (and any added later) has no route.
            c => Err(self.no_route(command_name(c))),
        }
    }

    fn sealed(&mut self) -> Result<bool, Failure> {
        let h: SealState = self.call_anonymous(Method::GET, "/v1/sys/health", None)?;
        Ok(h.sealed)
    }

    fn seal(&mut self, cli: &Cli) -> Result<(), Failure> {
        let sock = self.socket.display().to_string();
        if self.sealed()? {
            say(
                cli,
                json!({"sealed": true}),
                &format!("the server at {sock} is already sealed"),
            );
            return Ok(());
        }
        let r: SealState = self.call(Method::POST, "/v1/sys/seal", None)?;
        say(
            cli,
            json!({"sealed": r.sealed}),
            &format!("sealed: the server at {sock} dropped the vault and its keys; `phonevault unseal` opens it again"),
        );
        Ok(())
    }

    fn unseal(&mut self, cli: &Cli) -> Result<(), Failure> {
        let sock = self.socket.display().to_string();
        if !self.sealed()? {
            say(
                cli,
                json!({"sealed": false}),
                &format!("the server at {sock} is already unsealed"),
            );
            return Ok(());
        }
        let given_pass =
            cli.passphrase_file.is_some() || std::env::var_os("PHONEVAULT_PASSPHRASE").is_some();
        if cli.key_file.is_some() && !given_pass {
            return Err(fail(
                "a running server unseals with the passphrase only: give it (--passphrase-file FILE, PHONEVAULT_PASSPHRASE, or the prompt), or restart the server with --key-file",
            ));
        }
        let pass = passphrase_from_sources(cli, false)?;
        let body = json_body(&UnsealBody {
            passphrase: pass.expose_secret(),
        })?;
        let r: SealState = self.call_anonymous(Method::POST, "/v1/sys/unseal", Some(body))?;
        say(
            cli,
            json!({"sealed": r.sealed}),
            &format!("unsealed: the server at {sock} holds the vault open"),
        );
        Ok(())
    }

    fn send_batch(&mut self, a: &ImportArgs, batch: &mut Batch) -> Result<BatchDone, Failure> {
        let rejects = std::mem::take(&mut batch.local);
        let local = rejects.len() as u64;
        let mut done = BatchDone {
            summary: BatchSummary::Detailed(ImportSummary {
                rows: local,
                rejected: local,
                ..ImportSummary::default()
            }),
            rejects,
        };
        if let Some((body, sent)) = batch.take_request()? {
            let r: BatchAnswer = self.call(
                Method::POST,
                &tenant_path(&a.tenant, "numbers/batch"),
                Some(body),
            )?;
            if r.results.len() != sent.len() {
                return Err(fail(format!(
                    "the server at {} answered {} results for {} numbers: see its log",
                    self.socket.display(),
                    r.results.len(),
                    sent.len()
                )));
            }
            for item in r.results {
                let Some(&(row, line)) = sent.get(item.index) else {
                    continue;
                };
                match (item.status, item.error) {
                    (ItemStatus::Suppressed, Some(e)) => done.rejects.push((
                        row,
                        true,
                        RowReject {
                            line,
                            code: "suppressed".into(),
                            reason: e.message,
                        },
                    )),
                    (_, Some(e)) if e.code == "invalid_phone" => {
                        done.rejects.push((row, false, phone_reject(line, &e)))
                    }
                    // A refusal of the whole batch (unknown tenant, purpose or region,
                    // ...), as the in-process import refuses the whole file.
                    (_, Some(e)) => return Err(self.refusal(&e.code, &e.message)),
                    _ => {}
                }
            }
            done.summary = done.summary.plus(r.summary);
        }
        // The in-process import's order: chunk by chunk, the invalid rows, then the
        // suppressed ones.
        done.rejects
            .sort_by_key(|(row, suppressed, r)| (row / vault::IMPORT_CHUNK, *suppressed, r.line));
        Ok(done)
    }
}

/// The name of a command without an API route, for the refusal.
impl Backend for Remote {
    fn add(&mut self, a: &AddArgs) -> Result<WriteAnswer<Added>, Failure> {
        self.post(
            &tenant_path(&a.tenant, "numbers"),
            &AddBody {
                phone: &a.phone,
                region: a.region.as_deref(),
                consents: &a.consent,
                source: &a.source,
            },
        )
    }

    fn find(&mut self, a: &FindArgs) -> Result<Option<Record>, Failure> {
        let body = json_body(&LookupBody {
            phone: a.phone.as_deref().unwrap_or(""),
            region: a.region.as_deref(),
            purpose: &a.purpose,
            reveal: a.reveal,
        })?;
        self.call_or_absent(Method::POST, &tenant_path(&a.tenant, "lookup"), Some(body))
    }

    fn find_last4(
        &mut self,
        a: &FindArgs,
        country_code: u16,
        last4: &str,
    ) -> Result<Vec<Record>, Failure> {
        let r: Records = self.post(
            &tenant_path(&a.tenant, "lookup/last4"),
            &json!({"country_code": country_code, "last4": last4, "purpose": a.purpose, "reveal": a.reveal}),
        )?;
        Ok(r.results)
    }

    fn get(&mut self, a: &GetArgs) -> Result<Option<Record>, Failure> {
        let mut path = tenant_path(
            &a.tenant,
            &format!("numbers/{}?purpose={}", a.id, enc(&a.purpose)),
        );
        if a.reveal {
            path.push_str("&reveal=true");
        }
        self.call_or_absent(Method::GET, &path, None)
    }

    fn delete(&mut self, a: &DeleteArgs) -> Result<bool, Failure> {
        let path = tenant_path(&a.tenant, &format!("numbers/{}", a.id));
        Ok(self
            .call_or_absent::<Deleted>(Method::DELETE, &path, None)?
            .is_some())
    }

    fn grant(
        &mut self,
        target: &TargetArgs,
        purposes: &[String],
        source: &Source,
        receipt: bool,
    ) -> Result<WriteAnswer<ChangedAnswer>, Failure> {
        self.post(
            &tenant_path(&target.tenant, "consent/grant"),
            &TargetedBody {
                purposes: Some(purposes),
                source: Some(source),
                receipt,
                ..TargetedBody::of(target)
            },
        )
    }

    fn withdraw(
        &mut self,
        target: &TargetArgs,
        purpose: &str,
    ) -> Result<WriteAnswer<ChangedAnswer>, Failure> {
        self.post(
            &tenant_path(&target.tenant, "consent/withdraw"),
            &TargetedBody {
                purpose: Some(purpose),
                ..TargetedBody::of(target)
            },
        )
    }

    fn opt_out(
        &mut self,
        target: &TargetArgs,
        purpose: Option<&str>,
    ) -> Result<WriteAnswer<ChangedAnswer>, Failure> {
        self.post(
            &tenant_path(&target.tenant, "opt-out"),
            &TargetedBody {
                purpose,
                all: purpose.is_none(),
                ..TargetedBody::of(target)
            },
        )
    }

    fn erase(&mut self, target: &TargetArgs) -> Result<WriteAnswer<Erased>, Failure> {
        self.post(
            &tenant_path(&target.tenant, "erase"),
            &TargetBody::of(target),
        )
    }

    fn verify(&mut self, target: &TargetArgs) -> Result<WriteAnswer<ChangedAnswer>, Failure> {
        self.post(
            &tenant_path(&target.tenant, "verify"),
            &TargetBody::of(target),
        )
    }

    /// `import` through the batch route: the file is read here (as the in-process
    /// import reads it), and its rows go in batches within the route's limits. Rows
    /// the CSV reader cannot read, and inputs too long to be a number, are rejected
    /// here with the in-process import's code and reason; the server rejects the rest.
    fn import(
        &mut self,
        a: &ImportArgs,
        input: Box<dyn std::io::Read + Send + '_>,
        rejects: &mut RejectsFile,
    ) -> Result<BatchSummary, Failure> {
        // Checked here: the batch route reports a bad hint per item, like a bad number.
        vault::check_region_hint(a.region.as_deref())?;
        let mut rdr = super::import_reader(input);
        let col = super::import_column(&mut rdr, &a.column)?;
        let mut batch = Batch::new(a)?;
        let mut summary = BatchSummary::Detailed(ImportSummary::default());
        let mut record = csv::StringRecord::new();
        let mut row = 0usize;
        loop {
            let line = rdr.position().line();
            let more = match rdr.read_record(&mut record) {
                Ok(false) => false,
                Ok(true) => {
                    batch.push(
                        row,
                        line,
                        record.get(col).unwrap_or(""),
                        a.region.as_deref(),
                    )?;
                    true
                }
                Err(e) => {
                    batch
                        .local
                        .push((row, false, super::malformed(&e, line).into()));
                    true
                }
            };
            if more {
                row += 1;
            }
            // Whole chunks of the in-process import per batch, so that the rejects
            // file lists rows in the same order.
            let chunk_done = row % vault::IMPORT_CHUNK == 0;
            if !more || (chunk_done && batch.full()) {
                let done = self.send_batch(a, &mut batch)?;
                summary = summary.plus(done.summary);
                for (_, _, r) in done.rejects {
                    rejects.write(&r)?;
                }
            }
            if !more {
                break;
            }
        }
        Ok(summary)
    }

    fn stats(&mut self, a: &StatsArgs, q: &StatsQuery) -> Result<(Stats, Vec<ListCount>), Failure> {
        // JSON has no infinity or NaN: refuse them here as the vault does.
        if q.epsilon.is_some_and(|e| !e.is_finite()) {
            return Err(VaultError::Stats(StatsError::Epsilon).into());
        }
        let mut s: StatsAnswer = self.post(
            &tenant_path(&a.tenant, "stats"),
            &without_nulls(json!({
                "by_country": q.by_country, "by_type": q.by_type,
                "min_group": q.min_group, "epsilon": q.epsilon,
            })),
        )?;
        let lists = std::mem::take(&mut s.suppression_lists);
        Ok((s.stats()?, lists))
    }

    fn create_token(&mut self, a: &TokenCreateArgs) -> Result<(TokenInfo, Shown), Failure> {
        let role = server_cmds::token_role(a)?;
        let r: CreatedToken = self.post(
            "/v1/sys/tokens",
            &without_nulls(json!({
                "tenant": a.tenant, "role": role.as_str(), "purposes": a.purposes,
                "reveal": a.reveal, "ttl": a.ttl,
            })),
        )?;
        Ok((token_info(r.info)?, r.token))
    }

    fn tokens(&mut self) -> Result<Vec<TokenInfo>, Failure> {
        let r: TokenList = self.call(Method::GET, "/v1/sys/tokens", None)?;
        r.tokens.into_iter().map(token_info).collect()
    }

    fn revoke_token(&mut self, id: &str) -> Result<bool, Failure> {
        let path = format!("/v1/sys/tokens/{}", enc(id));
        Ok(self
            .call_or_absent::<Revoked>(Method::DELETE, &path, None)?
            .is_some())
    }

    fn revoke_all_tokens(&mut self) -> Result<u64, Failure> {
        Ok(self
            .call::<Revoked>(Method::POST, "/v1/sys/tokens/revoke-all", None)?
            .revoked)
    }
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Tenant(TenantCommand::Create { .. }) => "tenant create",
        Command::Tenant(TenantCommand::List) => "tenant list",
        Command::Tenant(TenantCommand::Shred { .. }) => "tenant shred",
        Command::Tenant(TenantCommand::AddPurpose { .. }) => "tenant add-purpose",
        Command::Tenant(TenantCommand::SetRetention { .. }) => "tenant set-retention",
        Command::Tenant(TenantCommand::SetSms(_)) => "tenant set-sms",
        Command::Tenant(TenantCommand::SetReceipt { .. }) => "tenant set-receipt",
        Command::Receipt(_) => "receipt public-key",
        Command::Key(KeyCommand::Rotate { .. }) => "key rotate",
        Command::Key(KeyCommand::Rewrap { .. }) => "key rewrap",
        Command::Key(KeyCommand::Retire { .. }) => "key retire",
        Command::Tenant(TenantCommand::Delete { .. }) => "tenant delete",
        Command::Rekey(_) => "rekey",
        Command::Passwd(_) => "passwd",
        Command::Keyslot(_) => "keyslot",
        Command::Keyring(_) => "keyring",
        Command::Backup(_) => "backup",
        Command::Restore(_) => "restore",
        Command::Export(_) => "export",
        Command::Purge(_) => "purge",
        Command::Compact => "compact",
        Command::Check => "check",
        Command::Reindex(_) => "reindex",
        Command::Subject(_) => "subject",
        Command::Share(_) => "share",
        Command::Stale(_) => "stale",
        Command::Audit(_) => "audit",
        Command::Suppress(_) => "suppress",
        _ => "this command",
    }
}

/// The reject of a number the server refused: `reason` holds the code of the
/// in-process import's reject.
fn phone_reject(line: u64, e: &ErrorDetail) -> RowReject {
    RowReject {
        line,
        code: e.reason.clone().unwrap_or_else(|| e.code.clone()).into(),
        reason: e.message.clone(),
    }
}

/// A row's index in the file (from 0) and the line it starts on (the header is 1).
type RowLine = (usize, u64);

/// One batch request being built: the JSON body and, per item, its row and line.
struct Batch {
    body: SecretBuf,
    /// `,"region":...,"consents":[...]}`: the same for every item.
    item_tail: Vec<u8>,
    /// The body's end: `],"source":...}`.
    end: Vec<u8>,
    /// (row, line) of each item sent.
    sent: Vec<RowLine>,
    /// Rows rejected here: (row, suppressed, reject).
    local: Vec<(usize, bool, RowReject)>,
}

impl Batch {
    fn new(a: &ImportArgs) -> Result<Batch, Failure> {
        let enc = |v: serde_json::Value| {
            serde_json::to_vec(&v).map_err(|e| fail(format!("cannot encode the request: {e}")))
        };
        // Absent, never null: the server refuses `null` where the document says string.
        let mut item_tail = Vec::new();
        if let Some(region) = &a.region {
            item_tail.extend_from_slice(b",\"region\":");
            item_tail.extend(enc(json!(region))?);
        }
        item_tail.extend_from_slice(b",\"consents\":");
        item_tail.extend(enc(json!(a.consent))?);
        item_tail.push(b'}');
        let mut end = b"],\"source\":".to_vec();
        end.extend(enc(json!(a.source))?);
        end.push(b'}');
        let mut b = Batch {
            body: SecretBuf::with_capacity(1 << 20),
            item_tail,
            end,
            sent: Vec::new(),
            local: Vec::new(),
        };
        b.start();
        Ok(b)
    }

    fn start(&mut self) {
        self.body = SecretBuf::with_capacity(1 << 20);
        self.body.0.extend_from_slice(b"{\"items\":[");
    }

    /// Adds a row's field; an input too long to be a number is rejected here with the
    /// reason the server would give (the same pure check), keeping every item small.
    fn push(
        &mut self,
        row: usize,
        line: u64,
        field: &str,
        region: Option<&str>,
    ) -> Result<(), Failure> {
        if field.chars().nth(phone::MAX_INPUT_CHARS).is_some() {
            if let Err(e) = phone::normalize(field, region) {
                self.local.push((
                    row,
                    false,
                    RowReject {
                        line,
                        code: e.code().into(),
                        reason: e.to_string(),
                    },
                ));
                return Ok(());
            }
        }
        let sep: &[u8] = if self.sent.is_empty() { b"" } else { b"," };
        let written = self
            .body
            .write_all(sep)
            .and_then(|()| self.body.write_all(b"{\"phone\":"))
            .and_then(|()| {
                serde_json::to_writer(&mut self.body, field).map_err(std::io::Error::other)
            })
            .and_then(|()| self.body.write_all(&self.item_tail));
        written.map_err(|e| fail(format!("cannot encode the request: {e}")))?;
        self.sent.push((row, line));
        Ok(())
    }

    /// Whether another chunk of the in-process import's size might not fit.
    fn full(&self) -> bool {
        let per_item = MAX_ITEM_JSON + self.item_tail.len();
        self.sent.len() + vault::IMPORT_CHUNK > crate::server::MAX_BATCH_ITEMS
            || self.body.0.len() + vault::IMPORT_CHUNK * per_item + self.end.len()
                > crate::server::MAX_BATCH_BODY
    }

    /// The finished body and the (row, line) of its items, if any was added; the
    /// batch starts over.
    fn take_request(&mut self) -> Result<Option<(SecretBuf, Vec<RowLine>)>, Failure> {
        if self.sent.is_empty() {
            return Ok(None);
        }
        self.body
            .write_all(&self.end)
            .map_err(|e| fail(format!("cannot encode the request: {e}")))?;
        let body = std::mem::replace(&mut self.body, SecretBuf::with_capacity(0));
        self.start();
        Ok(Some((body, std::mem::take(&mut self.sent))))
    }
}

struct BatchDone {
    /// The counts: without detail when the server answers so (a token that cannot read
    /// every purpose: no created / merged / unchanged / suppressed split).
    summary: BatchSummary,
    rejects: Vec<(usize, bool, RowReject)>,
}

#[derive(Deserialize)]
struct StatsAnswer {
    groups: Vec<GroupAnswer>,
    suppressed_groups: u64,
    min_group: u64,
    epsilon: Option<f64>,
    #[serde(default)]
    suppression_lists: Vec<crate::vault::ListCount>,
}

#[derive(Deserialize)]
struct GroupAnswer {
    country: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    count: u64,
}

impl StatsAnswer {
    fn stats(self) -> Result<Stats, Failure> {
        let groups = self
            .groups
            .into_iter()
            .map(|g| {
                let kind = match g.kind {
                    None => None,
                    Some(k) => Some(
                        NumberKind::ALL
                            .iter()
                            .map(|n| n.as_str())
                            .find(|n| *n == k)
                            .ok_or_else(|| {
                                fail("the server sent an unknown number type: is the CLI older than the server?")
                            })?,
                    ),
                };
                Ok(Group {
                    country: g.country,
                    kind,
                    count: g.count,
                })
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        Ok(Stats {
            groups,
            suppressed_groups: self.suppressed_groups,
            min_group: self.min_group,
            epsilon: self.epsilon,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is the failure report

    use super::*;
    use crate::policy::values::{source, tenant};

    fn args(region: Option<&str>) -> ImportArgs {
        ImportArgs {
            tenant: tenant("shop"),
            consent: vec!["otp".into(), "share:acme".into()],
            region: region.map(str::to_owned),
            source: source("crm:2026-11/web"),
            column: "phone".into(),
            rejects: None,
            file: PathBuf::from("in.csv"),
        }
    }

    #[test]
    fn secret_buf_keeps_every_byte_across_growth() {
        let mut b = SecretBuf::with_capacity(1);
        let mut want = Vec::new();
        for i in 0..1000u32 {
            let chunk = i.to_le_bytes();
            b.write_all(&chunk).unwrap();
            want.extend_from_slice(&chunk);
        }
        assert_eq!(&b.0[..], &want[..]);
    }

    #[test]
    fn batch_body_is_the_json_the_route_takes() {
        let mut b = Batch::new(&args(Some("GB"))).unwrap();
        let fields = ["+44 7400 123958", "a\"b\\c\u{1}é\n", ""];
        for (i, f) in fields.iter().enumerate() {
            b.push(i, i as u64 + 2, f, Some("GB")).unwrap();
        }
        // Too long to be a number: rejected here, with the parser's own reason.
        b.push(3, 5, &"9".repeat(phone::MAX_INPUT_CHARS + 1), Some("GB"))
            .unwrap();
        assert_eq!(b.sent, vec![(0, 2), (1, 3), (2, 4)]);
        assert_eq!(b.local.len(), 1);
        assert_eq!(b.local[0].2.code, "input_too_long");
        let (body, sent) = b.take_request().unwrap().unwrap();
        assert_eq!(sent, vec![(0, 2), (1, 3), (2, 4)]);
        let v: serde_json::Value = serde_json::from_slice(&body.0).unwrap();
        assert_eq!(v["source"], "crm:2026-11/web");
        let items = v["items"].as_array().unwrap();
        assert_eq!(items.len(), fields.len());
        for (item, f) in items.iter().zip(fields) {
            assert_eq!(item["phone"], f);
            assert_eq!(item["region"], "GB");
            assert_eq!(item["consents"], json!(["otp", "share:acme"]));
        }
        // The batch starts over: nothing to send, then a body of its own.
        assert!(b.take_request().unwrap().is_none());
        b.push(4, 6, "+447400123958", None).unwrap();
        let (body, sent) = b.take_request().unwrap().unwrap();
        assert_eq!(sent, vec![(4, 6)]);
        let v: serde_json::Value = serde_json::from_slice(&body.0).unwrap();
        assert_eq!(v["items"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_batch_is_full_before_the_route_limits() {
        let mut b = Batch::new(&args(None)).unwrap();
        let mut rows = 0;
        while !b.full() {
            for _ in 0..vault::IMPORT_CHUNK {
                b.push(
                    rows,
                    rows as u64 + 2,
                    &"1".repeat(phone::MAX_INPUT_CHARS),
                    None,
                )
                .unwrap();
                rows += 1;
            }
        }
        assert!(b.sent.len() <= crate::server::MAX_BATCH_ITEMS);
        let (body, _) = b.take_request().unwrap().unwrap();
        assert!(body.0.len() <= crate::server::MAX_BATCH_BODY);
    }
}
