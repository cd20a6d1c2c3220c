//! `phonevault demo`: the product's main job, end to end, in a fresh vault in a new
//! temporary directory: import the shipped sample with a progress bar, serve it on a
//! socket, look numbers up through the socket, withdraw consents and opt numbers out,
//! verify the audit chain, and print what it measured and where the vault is.
//!
//! Everything goes through the real paths: the vault's import, `phonevault serve` (this
//! binary, as a child process), HTTP/1.1 over the Unix socket, `audit key export` and
//! `audit verify`. No number is printed: the summary has counts and rates only.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::json;
use zeroize::Zeroizing;

use super::{create_private, fail, Failure};
use crate::policy::{Source, TenantName};
use crate::vault::{ImportOptions, OpenOptions, Role, TokenSpec, Unlock, Vault};
use phonevault_keys::{KdfParams, Passphrase};

/// `demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// CSV of numbers to import (a `phone` column): the shipped 200,000-number sample
    /// by default (run from the repository's root).
    #[arg(long, default_value = "benches/data/numbers-200k.csv")]
    pub numbers: PathBuf,
    /// Import only the first N rows (0: all of them).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Lookups to run through the socket.
    #[arg(long, default_value_t = 2_000)]
    pub lookups: usize,
    /// Numbers to withdraw a consent from, and as many to opt out of everything.
    #[arg(long, default_value_t = 5)]
    pub changes: usize,
    /// Directory to make the demo in (must not exist; default: a new one in the
    /// system's temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

const TENANT: &str = "demo";
const PURPOSES: [&str; 3] = ["otp", "support", "marketing"];
/// Longest wait for the server's socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read from the server.
const MAX_ANSWER: usize = 1 << 20;

/// Runs the demo; prints its steps and a summary on stdout.
pub(super) fn run(a: &DemoArgs) -> Result<(), Failure> {
    let csv = read_input(a)?;
    let dir = make_dir(a.dir.as_deref())?;
    let vault_dir = dir.join("vault");
    let pass_file = dir.join("passphrase");
    let pass = new_passphrase();
    {
        let mut f = create_private(&pass_file)?;
        std::io::Write::write_all(&mut f, pass.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| fail(format!("cannot write {}: {e}", pass_file.display())))?;
    }
    println!("phonevault demo in {}", dir.display());

    // 1. A vault, a tenant, the sample imported with a progress bar.
    Vault::init(
        &vault_dir,
        &Passphrase::new(pass.to_string()),
        KdfParams::default(),
    )?;
    let v = Vault::open(
        &vault_dir,
        &Unlock::Passphrase(Passphrase::new(pass.to_string())),
        OpenOptions::default(),
    )?;
    let purposes: Vec<String> = PURPOSES.iter().map(|p| (*p).to_owned()).collect();
    let tenant = TenantName::parse(TENANT).map_err(|e| super::fail(e.to_string()))?;
    v.create_tenant(&tenant, &purposes, None)?;
    let opts = ImportOptions {
        tenant: tenant.clone(),
        purposes: vec!["otp".into(), "support".into()],
        source: Source::parse("demo").map_err(|e| super::fail(e.to_string()))?,
        region: None,
    };
    let bar = progress_bar(csv.len() as u64);
    let started = Instant::now();
    let rows = super::CsvRows::new(bar.wrap_read(&csv[..]), "phone")?;
    let summary = v.import(&opts, rows, |_| Ok(()), |_| {})?;
    let import_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    println!(
        "imported {} rows in {import_secs:.1} s ({:.0} rows/s): {} records, {} rejected (invalid numbers)",
        summary.rows,
        per_sec(summary.rows, import_secs),
        summary.created,
        summary.rejected
    );
    let token = |role: Role| {
        v.create_token(&TokenSpec {
            tenant: Some(tenant.clone()),
            role,
            purposes: Vec::new(),
            reveal: false,
            ttl_secs: None,
        })
        .map(|(_, secret)| Zeroizing::new(secret.expose_secret().to_owned()))
    };
    let reader = token(Role::Reader)?;
    let writer = token(Role::Writer)?;
    drop(v); // the server takes the vault (sled: one process)

    // 2. Served on a socket; lookups, withdrawals and opt-outs through it.
    let socket = dir.join("phonevault.sock");
    let mut server = Server::start(&vault_dir, &pass_file, &socket, &dir.join("server.log"))?;
    let numbers = valid_numbers(&csv, a.lookups.max(2 * a.changes));
    let result = drive(&socket, &reader, &writer, &numbers, a);
    server.stop();
    let d = result?;
    println!(
        "{} lookups through the socket in {:.1} s ({:.0}/s): {} found",
        d.lookups,
        d.lookup_secs,
        per_sec(d.lookups as u64, d.lookup_secs),
        d.found
    );
    println!(
        "withdrew `otp` from {} numbers and opted {} out of everything: {} of {} lookups for `otp` now refused",
        d.withdrawn,
        d.opted_out,
        d.refused_after,
        d.withdrawn + d.opted_out
    );

    // 3. The audit chain, verified with the auditors' key as an auditor would.
    let k0 = dir.join("audit-k0.hex");
    cli_json(
        &vault_dir,
        &pass_file,
        &["audit", "key", "export", "--out"],
        Some(&k0),
    )?;
    let verified = cli_json(
        &vault_dir,
        &pass_file,
        &["audit", "verify", "--key"],
        Some(&k0),
    )?;
    let intact = verified["intact"] == json!(true);
    println!(
        "audit chain {}: {} entries in {} links",
        if intact { "intact" } else { "BROKEN" },
        verified["entries"],
        verified["links"]
    );
    if !intact || d.refused_after != d.withdrawn + d.opted_out {
        return Err(fail("the demo's checks failed: see above"));
    }

    let vd = vault_dir.display();
    let pf = pass_file.display();
    println!();
    println!(
        "The vault is in {vd} (passphrase in {pf}, auditors' key in {}).",
        k0.display()
    );
    println!("Continue the tour (README, \"A five-minute tour of the CLI\") with it:");
    println!("  export PHONEVAULT_DIR={vd} PHONEVAULT_PASSPHRASE_FILE={pf}");
    println!("  phonevault tenant list");
    println!("  phonevault stats --tenant {TENANT}");
    println!("  phonevault audit report --since 2020-01-01");
    println!("  phonevault serve &   # then the socket API, README \"The socket API\"");
    println!("Remove it with: rm -r {}", dir.display());
    Ok(())
}

/// The input, whole or its first `limit` rows (with the header).
fn read_input(a: &DemoArgs) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let mut f = std::fs::File::open(&a.numbers).map_err(|e| {
        fail(format!(
            "cannot open {}: {e}; run the demo from the repository's root, or give --numbers FILE (a CSV with a `phone` column)",
            a.numbers.display()
        ))
    })?;
    let mut all = Zeroizing::new(Vec::new());
    f.read_to_end(&mut all)
        .map_err(|e| fail(format!("cannot read {}: {e}", a.numbers.display())))?;
    if a.limit == 0 {
        return Ok(all);
    }
    let end = all
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(a.limit)
        .map_or(all.len(), |(i, _)| i + 1);
    Ok(Zeroizing::new(all[..end].to_vec()))
}

/// The demo's directory: the one given (which must not exist), or a new one in the
/// system's temporary directory.
fn make_dir(given: Option<&Path>) -> Result<PathBuf, Failure> {
    let dir = match given {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!(
            "phonevault-demo-{}",
            hex::encode(rand::random::<[u8; 4]>())
        )),
    };
    std::fs::create_dir(&dir).map_err(|e| {
        fail(format!(
            "cannot create {}: {e}; give --dir with a directory that does not exist yet",
            dir.display()
        ))
    })?;
    Ok(dir)
}

/// A random passphrase for the demo vault (kept in its directory, mode 0600).
fn new_passphrase() -> Zeroizing<String> {
    Zeroizing::new(hex::encode(rand::random::<[u8; 24]>()))
}

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(len);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "importing {bar:40} {bytes}/{total_bytes} {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    }
}

fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// Up to `n` distinct valid numbers of the input, in E.164 (for the lookups).
fn valid_numbers(csv: &[u8], n: usize) -> Vec<Zeroizing<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut rows = csv::Reader::from_reader(csv);
    for row in rows.records().flatten() {
        if out.len() >= n {
            break;
        }
        let Some(field) = row.get(0) else { continue };
        if let Ok(p) = crate::phone::normalize(field, None) {
            let e164 = p.e164.expose_secret().to_owned();
            if seen.insert(e164.clone()) {
                out.push(Zeroizing::new(e164));
            }
        }
    }
    out
}

/// `phonevault serve` on the demo vault, as a child process.
struct Server {
    child: Child,
}

impl Server {
    fn start(vault: &Path, pass_file: &Path, socket: &Path, log: &Path) -> Result<Server, Failure> {
        let exe = std::env::current_exe()
            .map_err(|e| fail(format!("cannot find this program to start the server: {e}")))?;
        let log = create_private(log)?;
        let child = Command::new(exe)
            .arg("--vault")
            .arg(vault)
            .arg("--passphrase-file")
            .arg(pass_file)
            .arg("serve")
            .arg("--socket")
            .arg(socket)
            .args(["--lookup-rate", "0"])
            .env_remove("PHONEVAULT_PASSPHRASE")
            .env_remove("PHONEVAULT_STORE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| fail(format!("cannot start `phonevault serve`: {e}")))?;
        let mut s = Server { child };
        let started = Instant::now();
        while std::os::unix::net::UnixStream::connect(socket).is_err() {
            if started.elapsed() > START_TIMEOUT || matches!(s.child.try_wait(), Ok(Some(_))) {
                s.stop();
                return Err(fail(format!(
                    "the demo server did not start: see {}",
                    socket.with_file_name("server.log").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(s)
    }

    /// SIGTERM (in-flight requests finish, the socket is removed), then wait.
    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the socket part measured.
struct Driven {
    lookups: usize,
    found: usize,
    lookup_secs: f64,
    withdrawn: usize,
    opted_out: usize,
    refused_after: usize,
}

/// Lookups, then withdrawals and opt-outs, then lookups of those again, over one
/// kept-alive connection.
fn drive(
    socket: &Path,
    reader: &str,
    writer: &str,
    numbers: &[Zeroizing<String>],
    a: &DemoArgs,
) -> Result<Driven, Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start the client runtime: {e}")))?;
    rt.block_on(async {
        let mut c = Conn::connect(socket).await?;
        let lookups = a.lookups.min(numbers.len());
        let started = Instant::now();
        let mut found = 0;
        for n in &numbers[..lookups] {
            let body = json!({"phone": n.as_str(), "purpose": "otp"});
            if c.post(reader, "lookup", &body).await? == 200 {
                found += 1;
            }
        }
        let lookup_secs = started.elapsed().as_secs_f64();
        let changes = a.changes.min(numbers.len() / 2);
        let (withdraw, opt_out) = numbers[..2 * changes].split_at(changes);
        let mut withdrawn = 0;
        for n in withdraw {
            let body = json!({"phone": n.as_str(), "purpose": "otp"});
            if c.post(writer, "consent/withdraw", &body).await? == 200 {
                withdrawn += 1;
            }
        }
        let mut opted_out = 0;
        for n in opt_out {
            let body = json!({"phone": n.as_str(), "all": true});
            if c.post(writer, "opt-out", &body).await? == 200 {
                opted_out += 1;
            }
        }
        let mut refused_after = 0;
        for n in &numbers[..2 * changes] {
            let body = json!({"phone": n.as_str(), "purpose": "otp"});
            if c.post(reader, "lookup", &body).await? == 404 {
                refused_after += 1;
            }
        }
        Ok(Driven {
            lookups,
            found,
            lookup_secs,
            withdrawn,
            opted_out,
            refused_after,
        })
    })
}

/// One HTTP/1.1 connection to the server's socket.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    async fn connect(socket: &Path) -> Result<Conn, Failure> {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| fail(format!("cannot connect to {}: {e}", socket.display())))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| fail(format!("HTTP handshake with the demo server failed: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { sender })
    }

    /// POSTs `body` to `/v1/tenants/demo/<route>`; the answer's status.
    async fn post(
        &mut self,
        token: &str,
        route: &str,
        body: &serde_json::Value,
    ) -> Result<u16, Failure> {
        let bytes = Zeroizing::new(
            serde_json::to_vec(body).map_err(|e| fail(format!("cannot encode a request: {e}")))?,
        );
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("/v1/tenants/{TENANT}/{route}"))
            .header(HOST, "localhost")
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_owner(bytes)))
            .map_err(|e| fail(format!("cannot build a request: {e}")))?;
        let lost = |e: hyper::Error| fail(format!("the demo server's connection failed: {e}"));
        self.sender.ready().await.map_err(lost)?;
        let resp = self.sender.send_request(req).await.map_err(lost)?;
        let status = resp.status().as_u16();
        // Read (and drop) the answer, so that the connection serves the next request.
        Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| fail(format!("cannot read the demo server's answer: {e}")))?;
        if status >= 500 || status == 401 || status == 403 {
            return Err(fail(format!(
                "the demo server answered {status} to {route}: see its log"
            )));
        }
        Ok(status)
    }
}

/// Runs this program's `ARGS [path]` with `--json` on the demo vault and returns its
/// JSON output.
fn cli_json(
    vault: &Path,
    pass_file: &Path,
    args: &[&str],
    path: Option<&Path>,
) -> Result<serde_json::Value, Failure> {
    let exe =
        std::env::current_exe().map_err(|e| fail(format!("cannot find this program: {e}")))?;
    let mut c = Command::new(exe);
    c.arg("--json")
        .arg("--vault")
        .arg(vault)
        .arg("--passphrase-file")
        .arg(pass_file)
        .args(args)
        .env_remove("PHONEVAULT_PASSPHRASE")
        .env_remove("PHONEVAULT_STORE")
        .stdin(Stdio::null());
    if let Some(p) = path {
        c.arg(p);
    }
    let out = c
        .output()
        .map_err(|e| fail(format!("cannot run `phonevault {}`: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(fail(format!(
            "`phonevault {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(serde_json::from_str(text.trim()).unwrap_or(serde_json::Value::Null))
}
