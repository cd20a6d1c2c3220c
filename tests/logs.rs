//! `serve --log-format json`: every line the server writes (its events and, with
//! `--access-log`, one per request) is a JSON object with a time, a level and a message,
//! and no line holds a phone number, a token or a passphrase, as with the plain log.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const PASS: &str = "correct horse battery staple";
const NUMBER: &str = "+447400123456";

fn post(socket: &std::path::Path, path: &str, token: &str, body: &str) -> u16 {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn json_log_lines_are_objects_and_hold_no_number_or_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("vault");
    let run = |args: &[&str]| {
        let out = common::phonevault(&vault, PASS, args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]);
    run(&["tenant", "create", "shop", "--purposes", "otp"]);
    let token: Value = serde_json::from_str(&run(&[
        "--json",
        "token",
        "create",
        "--tenant",
        "shop",
        "--role",
        "writer",
        "--purposes",
        "otp",
    ]))
    .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let log = tmp.path().join("serve.log");
    let pass = tmp.path().join("pass");
    std::fs::write(&pass, PASS).unwrap();
    let mut child = common::phonevault(
        &vault,
        PASS,
        &[
            "--passphrase-file",
            pass.to_str().unwrap(),
            "serve",
            "--log-format",
            "json",
            "--access-log",
        ],
    )
    .env_remove("PHONEVAULT_PASSPHRASE")
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    let socket = vault.join("phonevault.sock");
    let start = Instant::now();
    while UnixStream::connect(&socket).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    let add = json!({"phone": NUMBER, "consents": ["otp"], "source": "t"}).to_string();
    assert!(post(&socket, "/v1/tenants/shop/numbers", &token, &add) < 300);
    // A refused one, and one with the number where a purpose belongs.
    let odd = json!({"phone": NUMBER, "purpose": NUMBER}).to_string();
    post(&socket, "/v1/tenants/shop/consent/withdraw", &token, &odd);
    post(&socket, "/v1/tenants/shop/numbers", "pv_not_a_token", &add);
    // The access log is written every 100 ms.
    std::thread::sleep(Duration::from_millis(400));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    eprint!("{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    for l in &lines {
        assert!(
            l["timestamp"].as_str().is_some_and(|t| t.len() >= 20),
            "{l}"
        );
        assert!(l["level"].as_str().is_some(), "{l}");
        assert!(l["message"].as_str().is_some(), "{l}");
    }
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(
        messages.iter().any(|m| m.contains("listening on")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("shutting down")),
        "{messages:?}"
    );
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert_eq!(requests.len(), 3, "{text}");
    assert!(requests.iter().any(|r| r["status"] == 401));
    for secret in [NUMBER, &NUMBER[3..], token.as_str(), PASS] {
        assert!(!text.contains(secret), "a secret in the log");
    }
}
