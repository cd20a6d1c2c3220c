//! `serve --log-format json`: every line the server writes (its events and, with
//! `--access-log`, one per request) is a JSON object with a time, a level and a message,
//! and no line holds a phone number, a token or a passphrase, as with the plain log.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use common::{Env, PASS};

use std::time::Duration;

use serde_json::{json, Value};

const NUMBER: &str = "+447400123456";

#[test]
fn json_log_lines_are_objects_and_hold_no_number_or_secret() {
    let env = Env::new();
    env.init_tenant("shop", "otp");
    let token = env.token(&["--tenant", "shop", "--role", "writer", "--purposes", "otp"]);
    let s = env.serve_unsealed(&["--log-format", "json", "--access-log"]);
    let post = |path: &str, token: &str, body: &str| s.fetch("POST", path, Some(token), body).0;
    let add = json!({"phone": NUMBER, "consents": ["otp"], "source": "t"}).to_string();
    assert!(post("/v1/tenants/shop/numbers", &token, &add) < 300);
    // A refused one, and one with the number where a purpose belongs.
    let odd = json!({"phone": NUMBER, "purpose": NUMBER}).to_string();
    post("/v1/tenants/shop/consent/withdraw", &token, &odd);
    post("/v1/tenants/shop/numbers", "pv_not_a_token", &add);
    // The access log is written every 100 ms.
    std::thread::sleep(Duration::from_millis(400));
    let text = s.stop();
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
