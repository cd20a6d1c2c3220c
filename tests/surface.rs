//! Regression tests of issue 13 (the API and CLI surface, security review part 2):
//! last-4 enumeration, echoed request values, slow bodies and panics from input,
//! each driven through the real binary and the real socket.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use common::Env;

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The number sent in every field that is not a phone field.
const PLANTED: &str = "+447700900123";
/// What must never show up: its national significant number.
const PLANTED_DIGITS: &str = "7700900123";

/// Every byte of every file under `dir`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p);
                }
            }
        }
    }
    hits
}

/// Issue 13, item 1: one rate-limit token covered every record of a (country code,
/// last 4) pair, so a reader dumped a one-country tenant in 10^4 searches. Now a token
/// gets a small, bounded number of records from last-4 searches before it is refused.
#[test]
fn last4_searches_cannot_enumerate_the_tenant() {
    let env = Env::new();
    env.init();
    env.ok(&[
        "tenant",
        "create",
        "desk",
        "--purposes",
        "support",
        "--last4-index",
        // Planned for its real size: a tenant ten times its plan overflows a bucket
        // now and then (a refusal of its own, `too_many_matches` too, tested in
        // `vault::reads`), which is not what this test is about.
        "--expected-rows",
        "10011",
    ]);
    let dir = env.vault.parent().unwrap();
    let mut csv = String::from("phone\n");
    for i in 0..10_000 {
        csv.push_str(&format!("+44740010{i:04}\n"));
    }
    // Eleven numbers ending in 5555 besides +447400105555.
    for i in 0..11 {
        csv.push_str(&format!("+447401{i:02}5555\n"));
    }
    std::fs::write(dir.join("n.csv"), csv).unwrap();
    let d = dir.join("n.csv");
    env.ok(&[
        "import",
        "--tenant",
        "desk",
        "--consent",
        "support",
        d.to_str().unwrap(),
    ]);
    let reader = env.token(&["--tenant", "desk", "--role", "reader", "--reveal"]);
    let other = env.token(&["--tenant", "desk", "--role", "reader", "--reveal"]);
    let s = env.serve_unsealed(&["--lookup-rate", "0"]);
    let path = "/v1/tenants/desk/lookup/last4";
    let search = |token: &str, last4: &str, reveal: bool| {
        s.post_any(
            path,
            Some(token),
            &json!({"country_code": 44, "last4": last4, "purpose": "support", "reveal": reveal}),
        )
    };

    // Never full numbers from a last-4 search, even with the reveal right.
    let (st, v) = search(&other, "0001", true);
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    // Too many matches: a clear error asking for more.
    let (st, v) = search(&other, "5555", false);
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("too_many_matches")),
        "{v}"
    );

    let mut ids = BTreeSet::new();
    let mut refused = false;
    for n in 0..10_000 {
        let (st, v) = search(&reader, &format!("{n:04}"), false);
        if st == 429 {
            assert_eq!(v["error"]["code"], "rate_limited");
            refused = true;
            break;
        }
        assert_eq!(st, 200, "{v}");
        for r in v["results"].as_array().unwrap() {
            assert_eq!(r["masked"], true);
            ids.insert(r["id"].as_str().unwrap().to_owned());
        }
    }
    assert!(refused, "10,000 searches were never refused");
    // A burst of 30 records a minute (the default), and at most ten per search.
    assert!(
        ids.len() <= 45,
        "{} records before the first refusal",
        ids.len()
    );
    assert!(!ids.is_empty());
}

/// Issue 13, item 3: the purpose was recorded before it was validated and echoed in
/// `unknown_purpose` and in the 403 (`find --purpose +447700900123` printed the number
/// back, and it was then in the store's files). A number in any field that is not a
/// phone field now shows up nowhere: not in an answer, the server's log, the CLI's
/// output, or any byte of the vault.
#[test]
fn a_number_in_any_other_field_is_never_echoed_logged_or_stored() {
    let env = Env::new();
    env.init();
    env.ok(&[
        "tenant",
        "create",
        "shop",
        "--purposes",
        "otp,support",
        "--last4-index",
        "--expected-rows",
        "100",
    ]);
    env.ok(&[
        "add",
        "--tenant",
        "shop",
        "--phone",
        "+447400123958",
        "--consent",
        "otp",
    ]);
    let admin = env.token(&["--admin"]);
    let all = env.token(&["--tenant", "shop", "--role", "admin", "--reveal"]);
    let writer = env.token(&["--tenant", "shop", "--role", "writer", "--purposes", "otp"]);
    let reader = env.token(&["--tenant", "shop", "--role", "reader", "--purposes", "otp"]);
    let inbound = env.token(&["--tenant", "shop", "--role", "inbound"]);
    let id = {
        let out = env.ok(&[
            "--json",
            "find",
            "--tenant",
            "shop",
            "--phone",
            "+447400123958",
            "--purpose",
            "otp",
        ]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v["id"].as_str().unwrap().to_owned()
    };
    let n = PLANTED;
    // The access log on: every route is logged, and must not show the number.
    let s = env.serve_unsealed(&["--access-log"]);
    let mut answers = Vec::new();
    let mut send = |method: &str, path: &str, token: Option<&str>, body: Value| {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let (st, text) = s.text(method, path, token, &body);
        assert!(st != 0 && st != 500, "{method} {path} {body}: {text}");
        answers.push((format!("{method} {path} {body}"), text));
    };
    let t = "/v1/tenants/shop";
    for token in [&all, &writer, &reader] {
        let tk = Some(token.as_str());
        send("POST", "/v1/sys/unseal", None, json!({"passphrase": n}));
        send(
            "POST",
            &format!("/v1/tenants/{n}/lookup"),
            tk,
            json!({"phone": n, "purpose": "otp"}),
        );
        send(
            "GET",
            &format!("{t}/numbers/{n}?purpose=otp"),
            tk,
            Value::Null,
        );
        send(
            "GET",
            &format!("{t}/numbers/{id}?purpose={}", "%2B447700900123"),
            tk,
            Value::Null,
        );
        send("DELETE", &format!("{t}/numbers/{n}"), tk, Value::Null);
        for body in [
            json!({"phone": "+447400123958", "region": n, "consents": ["otp"]}),
            json!({"phone": "+447400123958", "consents": [n]}),
            json!({"phone": "+447400123958", "consents": ["otp", n]}),
            json!({"phone": "+447400123958", "consents": ["otp"], "source": n}),
        ] {
            send("POST", &format!("{t}/numbers"), tk, body);
        }
        for item in [
            json!({"phone": "+447400123958", "region": n, "consents": ["otp"]}),
            json!({"phone": "+447400123958", "consents": [n]}),
        ] {
            send(
                "POST",
                &format!("{t}/numbers/batch"),
                tk,
                json!({"items": [item]}),
            );
        }
        send(
            "POST",
            &format!("{t}/numbers/batch"),
            tk,
            json!({"items": [{"phone": "+447400123958", "consents": ["otp"]}], "source": n}),
        );
        for body in [
            json!({"phone": "+447400123958", "region": n, "purpose": "otp"}),
            json!({"phone": "+447400123958", "purpose": n}),
        ] {
            send("POST", &format!("{t}/lookup"), tk, body);
        }
        for body in [
            json!({"country_code": 44, "last4": n, "purpose": "otp"}),
            json!({"country_code": 44, "last4": "3958", "purpose": n}),
        ] {
            send("POST", &format!("{t}/lookup/last4"), tk, body);
        }
        for body in [
            json!({"id": n, "purposes": ["otp"]}),
            json!({"phone": "+447400123958", "region": n, "purposes": ["otp"]}),
            json!({"phone": "+447400123958", "purposes": [n]}),
            json!({"phone": "+447400123958", "purposes": ["otp"], "source": n}),
        ] {
            send("POST", &format!("{t}/consent/grant"), tk, body);
        }
        for route in ["consent/withdraw", "opt-out"] {
            for body in [
                json!({"id": n, "purpose": "otp"}),
                json!({"phone": "+447400123958", "region": n, "purpose": "otp"}),
                json!({"phone": "+447400123958", "purpose": n}),
            ] {
                send("POST", &format!("{t}/{route}"), tk, body);
            }
        }
        for route in ["verify", "erase"] {
            for body in [
                json!({"id": n}),
                json!({"phone": "+447499999999", "region": n}),
            ] {
                send("POST", &format!("{t}/{route}"), tk, body);
            }
        }
    }
    // Inbound SMS: the planted number as sender (unknown to the vault), as sending
    // number, as text; known and unknown senders, every keyword.
    for text in ["STOP", "START", "HELP", n] {
        for body in [
            json!({"from": n, "to": "+447400123001", "body": text}),
            json!({"from": "+447400123958", "to": n, "body": text}),
            json!({"from": n, "to": n, "body": text}),
        ] {
            send("POST", &format!("{t}/inbound-sms"), Some(&inbound), body);
        }
    }
    let a = Some(admin.as_str());
    for body in [
        json!({"tenant": n, "role": "reader"}),
        json!({"tenant": "shop", "role": n}),
        json!({"tenant": "shop", "role": "reader", "purposes": [n]}),
        json!({"tenant": "shop", "role": "reader", "purposes": ["otp", n]}),
        json!({"tenant": "shop", "role": "reader", "ttl": n}),
        json!({"tenant": "shop", "role": "reader", "ttl": "5é"}),
    ] {
        send("POST", "/v1/sys/tokens", a, body);
    }
    send("DELETE", &format!("/v1/sys/tokens/{n}"), a, Value::Null);
    for (what, text) in &answers {
        assert!(!text.contains(PLANTED_DIGITS), "{what} answered {text}");
    }
    let log = s.stop();
    assert!(!log.contains(PLANTED_DIGITS), "the server logged it: {log}");

    // The CLI, in-process: every flag that takes a string (but the phone and the
    // declaring ones: a tenant's name and purposes are what its creator chose).
    let idf = id.as_str();
    let csv_path = env.vault.parent().unwrap().join("in.csv");
    std::fs::write(&csv_path, "phone\n+447400123958\n").unwrap();
    let csv = csv_path.to_str().unwrap().to_owned();
    let out_path = env.vault.parent().unwrap().join("out.csv");
    let out = out_path.to_str().unwrap().to_owned();
    let sms_purpose = format!("+447400123001={n}");
    let cli: Vec<Vec<&str>> = vec![
        vec![
            "find",
            "--tenant",
            n,
            "--phone",
            "+447400123958",
            "--purpose",
            "otp",
        ],
        vec![
            "find",
            "--tenant",
            "shop",
            "--phone",
            "+447400123958",
            "--purpose",
            n,
        ],
        vec![
            "find",
            "--tenant",
            "shop",
            "--phone",
            "7400123958",
            "--region",
            n,
            "--purpose",
            "otp",
        ],
        vec![
            "find",
            "--tenant",
            "shop",
            "--last4",
            n,
            "--country-code",
            "44",
            "--purpose",
            "otp",
        ],
        vec!["get", "--tenant", "shop", n, "--purpose", "otp"],
        vec!["get", "--tenant", "shop", idf, "--purpose", n],
        vec!["delete", "--tenant", "shop", n],
        vec![
            "add",
            "--tenant",
            "shop",
            "--phone",
            "+447400123958",
            "--consent",
            n,
        ],
        vec![
            "add",
            "--tenant",
            "shop",
            "--phone",
            "7400123958",
            "--region",
            n,
            "--consent",
            "otp",
        ],
        vec![
            "add",
            "--tenant",
            n,
            "--phone",
            "+447400123958",
            "--consent",
            "otp",
        ],
        vec![
            "consent",
            "grant",
            "--tenant",
            "shop",
            "--id",
            n,
            "--purpose",
            "otp",
        ],
        vec![
            "consent",
            "grant",
            "--tenant",
            "shop",
            "--id",
            idf,
            "--purpose",
            n,
        ],
        vec![
            "consent",
            "withdraw",
            "--tenant",
            "shop",
            "--id",
            idf,
            "--purpose",
            n,
        ],
        vec!["opt-out", "--tenant", "shop", "--id", idf, "--purpose", n],
        vec!["verify", "--tenant", "shop", "--id", n],
        vec!["erase", "--tenant", "shop", "--id", n],
        vec!["export", "--tenant", "shop", "--purpose", n, "--out", &out],
        vec!["stats", "--tenant", n],
        vec!["token", "create", "--tenant", n, "--role", "reader"],
        vec!["token", "create", "--tenant", "shop", "--role", n],
        vec![
            "token",
            "create",
            "--tenant",
            "shop",
            "--role",
            "reader",
            "--purposes",
            n,
        ],
        vec![
            "token", "create", "--tenant", "shop", "--role", "reader", "--ttl", n,
        ],
        vec![
            "token", "create", "--tenant", "shop", "--role", "reader", "--ttl", "5é",
        ],
        vec!["token", "revoke", n],
        vec!["audit", "report", "--since", n],
        vec!["tenant", "set-retention", n, "--days", "30"],
        vec!["tenant", "add-purpose", n, "--purposes", "otp"],
        vec!["tenant", "set-sms", n],
        vec!["tenant", "set-sms", "shop", "--number", n],
        vec!["tenant", "set-sms", "shop", "--number", &sms_purpose],
        vec!["tenant", "set-sms", "shop", "--webhook-url", n],
        vec![
            "add",
            "--tenant",
            "shop",
            "--phone",
            "+447400123958",
            "--consent",
            "otp",
            "--source",
            n,
        ],
        vec![
            "import",
            "--tenant",
            "shop",
            "--consent",
            "otp",
            "--column",
            n,
            &csv,
        ],
        vec!["import", "--tenant", "shop", "--consent", n, &csv],
        vec![
            "import",
            "--tenant",
            "shop",
            "--consent",
            "otp",
            "--region",
            n,
            &csv,
        ],
        vec!["share", "--tenant", "shop", "--partner", n, "--out", &out],
    ];
    for args in &cli {
        let out = env.cmd(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_ne!(out.status.code(), Some(101), "{args:?} panicked: {text}");
        assert!(!text.contains(PLANTED_DIGITS), "{args:?} printed {text}");
    }
    let hits = files_holding(&env.vault, PLANTED_DIGITS.as_bytes());
    assert!(hits.is_empty(), "the number is in {hits:?}");
}

/// Issue 13, item 4: the header timeout covered the head only, so two clients that
/// sent `Content-Length: 100` and then a byte every few seconds held a server with
/// `--max-connections 2` forever (and `/v1/sys/unseal` reads its body before any
/// check). With a whole-request deadline a third client is served within it.
#[test]
fn slow_bodies_do_not_hold_the_connections() {
    let env = Env::new();
    env.init();
    let s = env.serve_unsealed(&["--max-connections", "2", "--request-timeout-secs", "2"]);
    let slow = |path: &'static str| {
        let sock = env.socket();
        std::thread::spawn(move || {
            let mut c = UnixStream::connect(sock).unwrap();
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            );
            c.write_all(head.as_bytes()).unwrap();
            for _ in 0..30 {
                std::thread::sleep(Duration::from_millis(500));
                if c.write_all(b" ").is_err() {
                    break;
                }
            }
        })
    };
    let a = slow("/v1/sys/unseal");
    let b = slow("/v1/sys/tokens");
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let (st, text) = s.text("GET", "/v1/sys/health", None, "");
    let waited = start.elapsed();
    assert_eq!(st, 200, "{text}");
    assert!(
        waited < Duration::from_secs(6),
        "the third client waited {waited:?}"
    );
    a.join().unwrap();
    b.join().unwrap();
}

/// Issue 13, item 5: `token create --ttl 5é` exited 101 with a backtrace (`split_at`
/// inside a character), and the same value panicked the token route's handler.
#[test]
fn a_multibyte_ttl_is_a_usage_error_not_a_panic() {
    let env = Env::new();
    env.init();
    env.ok(&["tenant", "create", "shop", "--purposes", "otp"]);
    let out = env
        .cmd(&[
            "token", "create", "--tenant", "shop", "--role", "reader", "--ttl", "5é",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("invalid --ttl"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("5é"), "{err}");
    let admin = env.token(&["--admin"]);
    let s = env.serve_unsealed(&[]);
    let (st, v) = s.post_any(
        "/v1/sys/tokens",
        Some(&admin),
        &json!({"tenant": "shop", "role": "reader", "ttl": "5é"}),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("invalid_argument")),
        "{v}"
    );
    let (st, _) = s.text("GET", "/v1/sys/health", None, "");
    assert_eq!(st, 200);
}
