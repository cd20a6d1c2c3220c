//! Metrics in the Prometheus text format: `GET /v1/sys/metrics` for a vault-wide admin token
//! and `serve --metrics-listen` on a listener of its own; what they count; no number, record
//! id or token in them; and Prometheus's own checker (`promtool check metrics`, Debian's
//! `prometheus` package) accepts them. The promtool test is reported as ignored where
//! promtool is missing (`.ci/run` installs it and requires it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use common::{http, Env};

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{json, Value};

const NUMBER: &str = "+447400123456";

/// A vault with tenant `shop` (purpose otp).
fn vault() -> Env {
    let e = Env::new();
    e.init_tenant("shop", "otp");
    e
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
    let e = vault();
    let admin = e.token(&["--admin"]);
    let writer = e.token(&["--tenant", "shop", "--role", "writer", "--purposes", "otp"]);
    let reader = e.token(&["--tenant", "shop", "--role", "reader", "--purposes", "otp"]);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let s = e.serve_unsealed(&["--metrics-listen", &listen]);
    let body = json!({"phone": NUMBER, "consents": ["otp"], "source": "t"}).to_string();
    let (st, added) = s.fetch("POST", "/v1/tenants/shop/numbers", Some(&writer), &body);
    assert!(st < 300, "{st} {added}");
    let lookup = json!({"phone": NUMBER, "purpose": "otp"}).to_string();
    let mut id = String::new();
    for _ in 0..3 {
        let (st, found) = s.fetch("POST", "/v1/tenants/shop/lookup", Some(&reader), &lookup);
        assert_eq!(st, 200);
        id = serde_json::from_str::<Value>(&found).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    let (st, _) = s.fetch("POST", "/v1/tenants/shop/lookup", Some("pv_wrong"), &lookup);
    assert_eq!(st, 401);
    // Only a vault-wide admin token reads them on the socket.
    let (st, _) = s.fetch("GET", "/v1/sys/metrics", Some(&reader), "");
    assert_eq!(st, 403);
    let (st, _) = s.fetch("GET", "/v1/sys/metrics", None, "");
    assert_eq!(st, 401);
    let (st, from_socket) = s.fetch("GET", "/v1/sys/metrics", Some(&admin), "");
    assert_eq!(st, 200, "{from_socket}");
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (st, from_listener) = http::fetch_on(&mut tcp, "GET", "/metrics", None, "");
    assert_eq!(st, 200);
    // Nothing else on that listener.
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (st, _) = http::fetch_on(&mut tcp, "GET", "/v1/sys/health", None, "");
    assert_eq!(st, 404);
    // SIGTERM; its log into the captured test output.
    drop(s);
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
            "phonevault_audit_journal_records_count",
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
