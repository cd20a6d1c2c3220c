//! `phonevault serve` and `phonevault token ...`.

use clap::{Args, Subcommand};

use super::{fail, print_json, unlock_source, Cli, Failure};
use crate::policy::TenantName;
use crate::server::{self, ServeOptions};
use crate::vault::{self, Role, TokenInfo};

/// `serve` options (the socket path is the global `--socket`, default
/// `<vault dir>/phonevault.sock`).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Give this group (name or gid) access to the socket: mode 0660 instead of 0600.
    /// The socket must then live in a directory that group can reach.
    #[arg(long)]
    pub socket_group: Option<String>,
    /// Accept connections only from these peer uids (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub allow_uid: Vec<u32>,
    /// Lookups per second allowed to each token (by number or last 4 digits; bursts of
    /// as many); 0 disables the limit. Refusals are 429 `rate_limited`.
    #[arg(long, default_value_t = server::DEFAULT_LOOKUP_RATE)]
    pub lookup_rate: u32,
    /// Numbers written (added, changed, erased; a batch item is one) per second per
    /// token, with bursts of as many; 0 disables the limit.
    #[arg(long, default_value_t = server::DEFAULT_WRITE_RATE)]
    pub write_rate: u32,
    /// Records each token may get from last-4 searches per minute (bursts of as many;
    /// a search that finds nothing costs one); 0 disables the limit.
    #[arg(long, default_value_t = server::DEFAULT_LAST4_PER_MINUTE)]
    pub last4_per_minute: u32,
    /// Seconds from a request's head to the end of its body; a slower body gets 408
    /// and its connection is closed.
    #[arg(long, default_value_t = server::DEFAULT_REQUEST_TIMEOUT_SECS)]
    pub request_timeout_secs: u64,
    /// Most client connections open at once; more wait in the socket's backlog.
    #[arg(long, default_value_t = server::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Seconds a client has to send a request's head before its connection is closed;
    /// an idle keep-alive connection is closed after as long.
    #[arg(long, default_value_t = 30)]
    pub header_timeout_secs: u64,
    /// When a read may answer, as to its audit entry: `always` once the entry is on
    /// disk (fsync, shared by every read waiting then); `process` once it is written
    /// to the audit journal beside the store (a killed server loses no answered read's
    /// entry; a power loss may lose the last --audit-sync-ms); `lag` at once, entries
    /// kept in memory and flushed every --audit-sync-ms (a kill or a power loss may
    /// lose the last --audit-sync-ms). Writes always answer once durable with their entry.
    #[arg(long, value_enum, default_value_t = AuditSyncArg::Process)]
    pub audit_sync: AuditSyncArg,
    /// The interval of --audit-sync process (journal synced and folded into the chain)
    /// and lag (entries flushed), in milliseconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub audit_sync_ms: u64,
    /// Same as `--audit-sync lag --audit-sync-ms N` (kept for older scripts); 0 means
    /// `--audit-sync always`.
    #[arg(long, conflicts_with_all = ["audit_sync", "audit_sync_ms"], hide = true)]
    pub audit_read_lag_ms: Option<u64>,
    /// Log one line per request (method, route, status, peer uid and pid; never a
    /// body) to stderr, buffered off the request path.
    #[arg(long)]
    pub access_log: bool,
    /// Delete the records past their tenant's retention this often (e.g. 1h, 30m; 0
    /// disables), a page at a time between requests, audited like `purge`.
    #[arg(long, default_value = "1h", value_parser = parse_every, value_name = "DURATION")]
    pub purge_every: Every,
    /// Also serve the metrics (Prometheus text format) alone on this TCP address, e.g.
    /// 127.0.0.1:9464, for a scraper: `GET /metrics`, nothing else, no token. On the
    /// socket they are at `GET /v1/sys/metrics` for a vault-wide admin token.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The server's log lines on stderr: `text` (one plain line each) or `json` (one JSON
    /// object per line, for a log collector; the access log too).
    #[arg(long, value_enum, default_value_t = crate::logging::LogFormat::Text)]
    pub log_format: crate::logging::LogFormat,
}

/// A `--purge-every` value: `None` for 0; a refused value is kept as its error and
/// reported after parsing (clap would echo it).
#[derive(Clone, Debug)]
pub struct Every(Result<Option<std::time::Duration>, String>);

impl Every {
    /// The interval, or the usage error (exit 2) for a refused value.
    fn interval(&self) -> Result<Option<std::time::Duration>, Failure> {
        self.0.clone().map_err(|message| Failure {
            message: format!("--purge-every: {message}"),
            code: 2,
        })
    }
}

fn parse_every(s: &str) -> Result<Every, String> {
    if s == "0" {
        return Ok(Every(Ok(None)));
    }
    // Durations are ASCII: anything else is refused before the unit is split off.
    let secs = s.is_ascii().then(|| vault::parse_ttl(s).ok()).flatten();
    Ok(Every(
        secs.map(|s| Some(std::time::Duration::from_secs(s)))
            .ok_or_else(|| "use a duration such as 1h, 30m or 90s, or 0 to disable".to_owned()),
    ))
}

/// Values of `serve --audit-sync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditSyncArg {
    /// A read answers once its entry is on disk.
    Always,
    /// A read answers once its entry is in the audit journal (written to the OS).
    Process,
    /// A read answers at once; entries are flushed every --audit-sync-ms.
    Lag,
}

impl ServeArgs {
    /// The durability mode these flags ask for.
    pub fn audit_sync(&self) -> vault::AuditSync {
        use std::time::Duration;
        if let Some(ms) = self.audit_read_lag_ms {
            return if ms == 0 {
                vault::AuditSync::Always
            } else {
                vault::AuditSync::Lag(Duration::from_millis(ms.min(60_000)))
            };
        }
        let every = Duration::from_millis(self.audit_sync_ms);
        match self.audit_sync {
            AuditSyncArg::Always => vault::AuditSync::Always,
            AuditSyncArg::Process => vault::AuditSync::Process(every),
            AuditSyncArg::Lag => vault::AuditSync::Lag(every),
        }
    }
}

/// Token management.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints it once (only its SHA-256 is stored).
    #[command(after_help = "Examples:
  phonevault token create --tenant shop --role reader --purposes otp
  phonevault token create --tenant shop --role reader --purposes support --reveal --ttl 30d
  phonevault --json token create --admin")]
    Create(TokenCreateArgs),
    /// List tokens (ids and rights, never the secrets).
    List,
    /// Revoke a token by id, or every token with --all.
    #[command(after_help = "Examples:
  phonevault token revoke 3f9c0a1b2c3d4e5f
  phonevault token revoke --all")]
    Revoke {
        /// Token id (from `token list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Revoke every token (incident response).
        #[arg(long)]
        all: bool,
    },
}

/// `token create` options.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Tenant the token is bound to.
    #[arg(long, required_unless_present = "admin", conflicts_with = "admin", value_parser = TenantName::parse)]
    pub tenant: Option<TenantName>,
    /// Role: admin, writer, reader, auditor or inbound (an SMS provider's webhook).
    #[arg(long, required_unless_present = "admin", conflicts_with = "admin")]
    pub role: Option<String>,
    /// A vault-wide admin token (no tenant): sealing and management.
    #[arg(long)]
    pub admin: bool,
    /// Comma-separated purposes the token may use (default: all of the tenant's).
    #[arg(long, value_delimiter = ',', conflicts_with = "admin")]
    pub purposes: Vec<String>,
    /// Allow the token to see full numbers.
    #[arg(long, conflicts_with = "admin")]
    pub reveal: bool,
    /// Lifetime, e.g. 30d, 12h, 45m.
    #[arg(long)]
    pub ttl: Option<String>,
}

pub(super) fn serve(cli: &Cli, a: &ServeArgs) -> Result<(), Failure> {
    // Sealed unless an unlock source is given; the server never prompts.
    let given = cli.passphrase_file.is_some()
        || std::env::var_os("PHONEVAULT_PASSPHRASE").is_some()
        || cli.key_file.is_some()
        || cli.pkcs11_module.is_some();
    let unlock = if given {
        Some(unlock_source(cli)?)
    } else {
        None
    };
    let socket = super::client::socket_path(cli);
    server::serve(ServeOptions {
        dir: cli.vault.clone(),
        store: super::store_location(cli)?,
        socket,
        socket_group: a.socket_group.clone(),
        allow_uids: a.allow_uid.clone(),
        unlock,
        lookup_rate: a.lookup_rate,
        write_rate: a.write_rate,
        last4_per_minute: a.last4_per_minute,
        max_connections: a.max_connections,
        header_timeout: std::time::Duration::from_secs(a.header_timeout_secs.max(1)),
        request_timeout: std::time::Duration::from_secs(a.request_timeout_secs.max(1)),
        audit_sync: a.audit_sync(),
        access_log: a.access_log,
        purge_every: a.purge_every.interval()?,
        log_format: a.log_format,
        metrics_listen: a.metrics_listen,
    })
    .map_err(|e| match e {
        server::ServerError::Vault(v) => v.into(),
        e => fail(e.to_string()),
    })
}

fn fmt_expiry(t: Option<u64>) -> String {
    t.map_or("never".into(), super::fmt_time)
}

/// The role asked for by `token create`.
pub(super) fn token_role(a: &TokenCreateArgs) -> Result<Role, Failure> {
    match (&a.role, a.admin) {
        (_, true) => Ok(Role::Admin),
        (Some(r), false) => crate::policy::values::parse_role(r).map_err(|e| fail(e.to_string())),
        (None, false) => Err(fail("give --role, or --admin")),
    }
}

/// Prints a new token (the secret on stdout, once) and its id.
pub(super) fn print_created(cli: &Cli, info: &TokenInfo, secret: &str) {
    if cli.json {
        print_json(&serde_json::json!({"id": info.id, "token": secret}));
    } else {
        println!("{secret}");
        eprintln!(
            "token {} created (shown once; only its hash is stored); expires: {}",
            info.id,
            fmt_expiry(info.expires_at)
        );
    }
}

/// Prints the token list (never the secrets).
pub(super) fn print_tokens(cli: &Cli, list: &[TokenInfo]) {
    if cli.json {
        let arr: Vec<_> = list
            .iter()
            .map(|t| {
                serde_json::json!({
                    "id": t.id, "tenant": t.tenant, "role": t.role.as_str(),
                    "purposes": t.purposes, "reveal": t.reveal,
                    "created_at": super::fmt_time(t.created_at),
                    "expires_at": t.expires_at.map(super::fmt_time),
                })
            })
            .collect();
        print_json(&serde_json::Value::Array(arr));
    } else {
        for t in list {
            println!(
                "{}  tenant: {}  role: {}  purposes: {}  reveal: {}  expires: {}",
                t.id,
                t.tenant.as_deref().unwrap_or("(vault-wide)"),
                t.role.as_str(),
                if t.purposes.is_empty() {
                    "all".to_owned()
                } else {
                    t.purposes.join(",")
                },
                if t.reveal { "yes" } else { "no" },
                fmt_expiry(t.expires_at)
            );
        }
    }
}

/// The refusal of `token revoke ID` for an unknown id (not repeated: it may be
/// anything typed in its place).
pub(super) fn no_such_token() -> Failure {
    fail("no token with the id given: list them with `phonevault token list`")
}

/// Prints how many tokens were revoked.
pub(super) fn print_revoked(cli: &Cli, n: u64) {
    if cli.json {
        print_json(&serde_json::json!({ "revoked": n }));
    } else {
        println!("revoked {n} token(s)");
    }
}
