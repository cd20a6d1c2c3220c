//! Metrics in the Prometheus text format: `GET /v1/sys/metrics` for a vault-wide admin token
//! and `serve --metrics-listen` on a listener of its own; what they count; no number, record
//! id or token in them; and Prometheus's own checker (`promtool check metrics`, Debian's
//! `prometheus` package) accepts them. The promtool test is reported as ignored where
//! promtool is missing (`.ci/run` installs it and requires it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{json, Value};

const PASS: &str = "correct horse battery staple";
const NUMBER: &str = "+447400123456";

struct Env {
    tmp: tempfile::TempDir,
    vault: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let vault = tmp.path().join("vault");
        let e = Env { tmp, vault };
        e.ok(&["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]);
        e.ok(&["tenant", "create", "shop", "--purposes", "otp"]);
        e
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = common::phonevault(&self.vault, PASS, args)
            .output()
            .unwrap();
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn token(&self, args: &[&str]) -> String {
        let mut a = vec!["--json", "token", "create"];
        a.extend_from_slice(args);
        let v: Value = serde_json::from_str(&self.ok(&a)).unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    fn serve(&self, extra: &[&str]) -> Child {
        let log = std::fs::File::create(self.tmp.path().join("serve.log")).unwrap();
        let mut args = vec!["--passphrase-file", "PASSFILE", "serve"];
        args.extend_from_slice(extra);
        let pass = self.tmp.path().join("pass");
        std::fs::write(&pass, PASS).unwrap();
        let args: Vec<&str> = args
            .iter()
            .map(|a| {
                if *a == "PASSFILE" {
                    pass.to_str().unwrap()
                } else {
                    a
                }
            })
            .collect();
        let child = common::phonevault(&self.vault, PASS, &args)
            .env_remove("PHONEVAULT_PASSPHRASE")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let start = Instant::now();
        while UnixStream::connect(self.socket()).is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "no server");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn socket(&self) -> PathBuf {
        self.vault.join("phonevault.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("serve.log")).unwrap_or_default()
    }
}

/// One request; the status and the body.
fn call(
    stream: &mut impl ReadWrite,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn on_socket(
    socket: &Path,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    call(&mut s, method, path, token, body)
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server with some traffic: an add, lookups, a refusal; its metrics from the socket and
/// from the metrics listener.
fn scraped() -> (String, String, Vec<String>) {
    let e = Env::new();
    let admin = e.token(&["--admin"]);
    let writer = e.token(&["--tenant", "shop", "--role", "writer", "--purposes", "otp"]);
    let reader = e.token(&["--tenant", "shop", "--role", "reader", "--purposes", "otp"]);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = e.serve(&["--metrics-listen", &listen]);
    let body = json!({"phone": NUMBER, "consents": ["otp"], "source": "t"}).to_string();
    let (st, added) = on_socket(
        &e.socket(),
        "POST",
        "/v1/tenants/shop/numbers",
        Some(&writer),
        &body,
    );
    assert!(st < 300, "{st} {added}");
    let lookup = json!({"phone": NUMBER, "purpose": "otp"}).to_string();
    let mut id = String::new();
    for _ in 0..3 {
        let (st, found) = on_socket(
            &e.socket(),
            "POST",
            "/v1/tenants/shop/lookup",
            Some(&reader),
            &lookup,
        );
        assert_eq!(st, 200);
        id = serde_json::from_str::<Value>(&found).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    let (st, _) = on_socket(
        &e.socket(),
        "POST",
        "/v1/tenants/shop/lookup",
        Some("pv_wrong"),
        &lookup,
    );
    assert_eq!(st, 401);
    // Only a vault-wide admin token reads them on the socket.
    let (st, _) = on_socket(&e.socket(), "GET", "/v1/sys/metrics", Some(&reader), "");
    assert_eq!(st, 403);
    let (st, _) = on_socket(&e.socket(), "GET", "/v1/sys/metrics", None, "");
    assert_eq!(st, 401);
    let (st, from_socket) = on_socket(&e.socket(), "GET", "/v1/sys/metrics", Some(&admin), "");
    assert_eq!(st, 200, "{from_socket}");
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (st, from_listener) = call(&mut tcp, "GET", "/metrics", None, "");
    assert_eq!(st, 200);
    // Nothing else on that listener.
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (st, _) = call(&mut tcp, "GET", "/v1/sys/health", None, "");
    assert_eq!(st, 404);
    stop(child);
    eprint!("{}", e.log());
    (from_socket, from_listener, vec![id, admin, writer, reader])
}

fn metrics_count_requests_and_hold_no_secret() {
    let (m, l, secrets) = scraped();
    for text in [&m, &l] {
        for want in [
            "# TYPE phonevault_requests_total counter",
            "phonevault_requests_total{route=\"/v1/tenants/{tenant}/lookup\",status=\"200\"} 3",
            "phonevault_requests_total{route=\"/v1/tenants/{tenant}/lookup\",status=\"401\"} 1",
            "# TYPE phonevault_request_duration_seconds histogram",
            "phonevault_sealed 0",
            "phonevault_audit_group_entries_count",
            "phonevault_audit_sync_seconds_sum",
            "phonevault_audit_pending_entries",
            "phonevault_key_encryptions_budget_ratio{tenant=\"shop\",version=\"1\"}",
            "phonevault_store_bytes",
            "phonevault_retention_sweeps_total",
        ] {
            assert!(text.contains(want), "{want} missing from:\n{text}");
        }
        let digits = NUMBER.trim_start_matches('+');
        assert!(!text.contains(digits), "a number in the metrics");
        assert!(
            !text.contains(&digits[2..]),
            "a national number in the metrics"
        );
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "a record id or token in the metrics"
            );
        }
    }
}

fn promtool_accepts_the_metrics() {
    let (m, _, _) = scraped();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(m.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "promtool check metrics: {}",
        if said.trim().is_empty() {
            "ok"
        } else {
            said.trim()
        }
    );
    // promtool exits 1 for errors and lint problems alike; any finding fails the test.
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{m}"
    );
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let promtool = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !promtool {
        if std::env::var("PHONEVAULT_REQUIRE_PROMTOOL").is_ok_and(|v| v == "1") {
            eprintln!("tests/metrics.rs: PHONEVAULT_REQUIRE_PROMTOOL=1 but promtool is missing");
            return std::process::ExitCode::FAILURE;
        }
        eprintln!(
            "tests/metrics.rs: promtool is not installed (Debian: apt-get install prometheus): \
             promtool_accepts_the_metrics is ignored"
        );
    }
    let tests = vec![
        Trial::test("metrics_count_requests_and_hold_no_secret", || {
            metrics_count_requests_and_hold_no_secret();
            Ok::<(), Failed>(())
        }),
        Trial::test("promtool_accepts_the_metrics", || {
            promtool_accepts_the_metrics();
            Ok::<(), Failed>(())
        })
        .with_ignored_flag(!promtool),
    ];
    libtest_mimic::run(&args, tests).exit_code()
}
