//! The socket API as a client sees it: the real binary (`phonevault serve`) on a real
//! Unix socket, spoken to in HTTP/1.1.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use common::{Env, Server, PASS};

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const NUMBER: &str = "+447400123958";
const NATIONAL: &str = "7400123958";

/// Starts `serve` sealed; no error body may hold the number.
fn serve(env: &Env, extra: &[&str]) -> Server {
    let mut s = env.serve_sealed(extra);
    s.forbid_in_errors(NATIONAL);
    s
}

/// Adds [`NUMBER`] to tenant `shop` with `consents` (comma-separated).
fn add_number(env: &Env, consents: &str) {
    let args = ["--tenant", "shop", "--phone", NUMBER, "--consent", consents];
    env.ok(&[&["add"][..], &args].concat());
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

struct Tokens {
    admin: String,
    writer: String,
    reader: String,
    revealer: String,
    auditor: String,
    other: String,
}

fn setup() -> (Env, Tokens) {
    let env = Env::new();
    env.ok(&["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]);
    env.ok(&[
        "tenant",
        "create",
        "shop",
        "--purposes",
        "otp,support,marketing",
    ]);
    env.ok(&["tenant", "create", "other", "--purposes", "otp"]);
    let t = Tokens {
        admin: env.token(&["--admin"]),
        writer: env.token(&[
            "--tenant",
            "shop",
            "--role",
            "writer",
            "--purposes",
            "otp,marketing",
        ]),
        reader: env.token(&["--tenant", "shop", "--role", "reader", "--purposes", "otp"]),
        revealer: env.token(&[
            "--tenant", "shop", "--role", "reader", "--reveal", "--ttl", "1d",
        ]),
        auditor: env.token(&["--tenant", "shop", "--role", "auditor"]),
        other: env.token(&["--tenant", "other", "--role", "admin", "--reveal"]),
    };
    (env, t)
}

fn unseal(s: &Server) {
    let (st, v) = s.post("/v1/sys/unseal", None, json!({ "passphrase": PASS }));
    assert_eq!((st, &v), (200, &json!({"sealed": false})));
}

#[test]
fn sealed_unseal_seal_and_access_control() {
    let (env, t) = setup();
    let s = serve(&env, &["--access-log"]);
    let mode = std::fs::metadata(env.socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Sealed: health says so and nothing more; data calls answer 503 whatever they send.
    let (st, v) = s.call("GET", "/v1/sys/health", None, b"");
    assert_eq!((st, v), (200, json!({"sealed": true})));
    let lookup = json!({"phone": NUMBER, "purpose": "otp"});
    let (st, v) = s.post("/v1/tenants/shop/lookup", Some(&t.reader), lookup.clone());
    assert_eq!((st, code(&v)), (503, "sealed"));
    let (st, v) = s.call("POST", "/v1/tenants/shop/lookup", None, b"{garbage");
    assert_eq!((st, code(&v)), (503, "sealed"));

    // A wrong passphrase fails (and is slowed down); the right one unseals.
    let (st, v) = s.post("/v1/sys/unseal", None, json!({"passphrase": "wrong"}));
    assert_eq!((st, code(&v)), (401, "unseal_failed"));
    unseal(&s);
    let (_, v) = s.call("GET", "/v1/sys/health", None, b"");
    assert_eq!(v, json!({"sealed": false}));

    // Authentication.
    let (st, v) = s.post("/v1/tenants/shop/lookup", None, lookup.clone());
    assert_eq!((st, code(&v)), (401, "unauthorized"));
    let fake = format!("pvt_{}", "ab".repeat(32));
    let (st, v) = s.post("/v1/tenants/shop/lookup", Some(&fake), lookup.clone());
    assert_eq!((st, code(&v)), (401, "unauthorized"));

    // Writer adds; reader cannot.
    let add = json!({"phone": "07400 123958", "region": "GB", "consents": ["otp"]});
    let (st, v) = s.post("/v1/tenants/shop/numbers", Some(&t.reader), add.clone());
    assert_eq!((st, code(&v)), (403, "forbidden"));
    // A writer that cannot read every purpose gets one answer whatever the vault
    // holds (issue 13: no existence oracle).
    let (st, v) = s.post("/v1/tenants/shop/numbers", Some(&t.writer), add.clone());
    assert_eq!((st, &v), (200, &json!({"accepted": true})));
    let (st, v2) = s.post("/v1/tenants/shop/numbers", Some(&t.writer), add);
    assert_eq!((st, &v2), (200, &v));
    // The writer's purposes bound what it may record.
    let (st, v) = s.post(
        "/v1/tenants/shop/numbers",
        Some(&t.writer),
        json!({"phone": NUMBER, "consents": ["support"]}),
    );
    assert_eq!((st, code(&v)), (403, "forbidden"));

    // Reader: masked by default, reveal refused without the right, purposes bound.
    let (st, v) = s.post("/v1/tenants/shop/lookup", Some(&t.reader), lookup.clone());
    assert_eq!(st, 200);
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(v["masked"], true);
    assert_eq!(v["phone"], "+44 ••• ••• 3958");
    let reveal = json!({"phone": NUMBER, "purpose": "otp", "reveal": true});
    let (st, v) = s.post("/v1/tenants/shop/lookup", Some(&t.reader), reveal.clone());
    assert_eq!((st, code(&v)), (403, "forbidden"));
    let (st, v) = s.post(
        "/v1/tenants/shop/lookup",
        Some(&t.reader),
        json!({"phone": NUMBER, "purpose": "support"}),
    );
    assert_eq!((st, code(&v)), (403, "forbidden"));
    let (st, v) = s.post("/v1/tenants/shop/lookup", Some(&t.revealer), reveal);
    assert_eq!((st, v["phone"].as_str()), (200, Some(NUMBER)));
    // Not consented for marketing: 404, the same as absent.
    let (st, v) = s.post(
        "/v1/tenants/shop/lookup",
        Some(&t.revealer),
        json!({"phone": NUMBER, "purpose": "marketing"}),
    );
    assert_eq!((st, code(&v)), (404, "not_found"));
    let (st, v) = s.post(
        "/v1/tenants/shop/lookup",
        Some(&t.revealer),
        json!({"phone": "+447400123959", "purpose": "otp"}),
    );
    assert_eq!((st, code(&v)), (404, "not_found"));

    // GET by id.
    let (st, v) = s.call(
        "GET",
        &format!("/v1/tenants/shop/numbers/{id}?purpose=otp"),
        Some(&t.reader),
        b"",
    );
    assert_eq!((st, v["masked"].as_bool()), (200, Some(true)));
    let (st, v) = s.call(
        "GET",
        &format!("/v1/tenants/shop/numbers/{id}"),
        Some(&t.reader),
        b"",
    );
    assert_eq!((st, code(&v)), (400, "bad_query"));

    // Another tenant's token: 403 for an existing and a missing tenant alike.
    let (st, v) = s.post("/v1/tenants/shop/lookup", Some(&t.other), lookup.clone());
    assert_eq!((st, code(&v)), (403, "forbidden"));
    let (st2, v2) = s.post("/v1/tenants/nosuch/lookup", Some(&t.other), lookup.clone());
    assert_eq!((st2, &v2), (st, &v));
    // The vault-wide admin token reads no tenant's data.
    let (st, v) = s.post("/v1/tenants/shop/lookup", Some(&t.admin), lookup.clone());
    assert_eq!((st, code(&v)), (403, "forbidden"));

    // Auditor: statistics only.
    let (st, v) = s.post("/v1/tenants/shop/lookup", Some(&t.auditor), lookup.clone());
    assert_eq!((st, code(&v)), (403, "forbidden"));
    let (st, v) = s.post(
        "/v1/tenants/shop/stats",
        Some(&t.auditor),
        json!({"min_group": 2}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["suppressed_groups"], 1);

    // Only a vault-wide admin seals; sealed again answers 503; unseal reopens the store.
    let (st, v) = s.post("/v1/sys/seal", Some(&t.writer), json!({}));
    assert_eq!((st, code(&v)), (403, "forbidden"));
    let (st, v) = s.post("/v1/sys/seal", Some(&t.admin), json!({}));
    assert_eq!((st, v), (200, json!({"sealed": true})));
    let (st, v) = s.post("/v1/tenants/shop/lookup", Some(&t.reader), lookup.clone());
    assert_eq!((st, code(&v)), (503, "sealed"));
    unseal(&s);
    let (st, _) = s.post("/v1/tenants/shop/lookup", Some(&t.reader), lookup);
    assert_eq!(st, 200);

    let log = s.stop();
    assert!(!env.socket().exists(), "SIGTERM must remove the socket");
    assert!(!log.contains(NATIONAL), "a number in the server log: {log}");
    assert!(log.contains("uid="), "peer credentials are logged: {log}");
}

#[test]
fn limits_malformed_input_and_lifecycle() {
    let (env, t) = setup();
    let s = serve(&env, &[]);
    unseal(&s);
    let w = Some(t.writer.as_str());

    // Oversized, malformed, wrong types, unknown fields: JSON errors, server unharmed.
    let big = vec![b' '; (1 << 20) + 10];
    let (st, v) = s.call("POST", "/v1/tenants/shop/lookup", Some(&t.reader), &big);
    assert_eq!((st, code(&v)), (413, "payload_too_large"));
    let (st, v) = s.call("POST", "/v1/tenants/shop/numbers", w, b"{\"phone\": ");
    assert_eq!((st, code(&v)), (400, "bad_json"));
    let (st, v) = s.post(
        "/v1/tenants/shop/numbers",
        w,
        json!({"phone": 7, "consents": []}),
    );
    assert_eq!((st, code(&v)), (400, "bad_json"));
    let (st, v) = s.post(
        "/v1/tenants/shop/numbers",
        w,
        json!({"phone": NUMBER, "consents": ["otp"], "extra": 1}),
    );
    assert_eq!((st, code(&v)), (400, "bad_json"));
    assert!(v["error"]["message"].as_str().unwrap().contains("extra"));
    let (st, v) = s.post(
        "/v1/tenants/shop/numbers",
        w,
        json!({"phone": "+44 12", "consents": ["otp"]}),
    );
    assert_eq!((st, code(&v)), (400, "invalid_phone"));
    assert!(v["error"]["reason"].as_str().is_some());
    let (st, v) = s.post(
        "/v1/tenants/shop/numbers",
        w,
        json!({"phone": NUMBER, "consents": ["nope"]}),
    );
    assert_eq!((st, code(&v)), (403, "forbidden"));

    // Garbage bytes: the connection is closed, the next client is served.
    let out = s.raw(b"\x00\x01\x02 not http at all\r\n\r\n");
    assert!(out.is_empty() || String::from_utf8_lossy(&out).starts_with("HTTP/1.1 400"));
    let (st, _) = s.call("GET", "/v1/sys/health", None, b"");
    assert_eq!(st, 200);

    // Batch: per-item results.
    let (st, v) = s.post(
        "/v1/tenants/shop/numbers/batch",
        w,
        json!({"source": "crm", "items": [
            {"phone": NUMBER, "consents": ["otp"]},
            {"phone": "not a number", "consents": ["otp"]},
            {"phone": "+447400123959", "consents": ["otp", "marketing"]},
            {"phone": NUMBER, "consents": ["otp"]},
        ]}),
    );
    assert_eq!(st, 200, "{v}");
    let r = v["results"].as_array().unwrap();
    let statuses: Vec<_> = r.iter().map(|i| i["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["accepted", "error", "accepted", "accepted"]);
    assert_eq!(r[1]["error"]["code"], "invalid_phone");
    assert!(r[1]["error"]["reason"].as_str().is_some());
    assert_eq!(
        v["summary"],
        json!({"rows": 4, "accepted": 3, "rejected": 1})
    );
    let too_many: Vec<Value> = (0..10_001)
        .map(|_| json!({"phone": NUMBER, "consents": ["otp"]}))
        .collect();
    let (st, v) = s.post(
        "/v1/tenants/shop/numbers/batch",
        w,
        json!({"items": too_many}),
    );
    // More than `maxItems` is a schema violation: 400, as the document says.
    assert_eq!((st, code(&v)), (400, "invalid_argument"));

    // Lifecycle: withdraw, grant, opt-out, verify, erase, delete.
    let target = json!({"phone": NUMBER});
    let (st, v) = s.post(
        "/v1/tenants/shop/consent/withdraw",
        w,
        json!({"phone": NUMBER, "purpose": "otp"}),
    );
    assert_eq!((st, &v), (200, &json!({"accepted": true})));
    let lookup = json!({"phone": NUMBER, "purpose": "otp"});
    let (st, _) = s.post("/v1/tenants/shop/lookup", Some(&t.reader), lookup.clone());
    assert_eq!(st, 404);
    let (st, v) = s.post(
        "/v1/tenants/shop/consent/grant",
        w,
        json!({"phone": NUMBER, "purposes": ["otp"], "source": "call"}),
    );
    assert_eq!((st, &v), (200, &json!({"accepted": true})));
    let (st, _) = s.post("/v1/tenants/shop/lookup", Some(&t.reader), lookup.clone());
    assert_eq!(st, 200);
    let (st, v) = s.post("/v1/tenants/shop/opt-out", w, json!({"phone": NUMBER}));
    assert_eq!((st, code(&v)), (400, "bad_json"));
    let (st, _) = s.post(
        "/v1/tenants/shop/opt-out",
        w,
        json!({"phone": NUMBER, "all": true}),
    );
    assert_eq!(st, 200);
    let (st, _) = s.post("/v1/tenants/shop/lookup", Some(&t.reader), lookup.clone());
    assert_eq!(st, 404);
    let (st, v) = s.post("/v1/tenants/shop/verify", w, target.clone());
    assert_eq!((st, &v), (200, &json!({"accepted": true})));
    let (st, v) = s.post("/v1/tenants/shop/erase", w, target.clone());
    assert_eq!((st, &v), (200, &json!({"accepted": true})));
    let (st, _) = s.post(
        "/v1/tenants/shop/lookup",
        Some(&t.revealer),
        json!({"phone": NUMBER, "purpose": "otp"}),
    );
    assert_eq!(st, 404, "erased");
    // Erasing again answers the same: the writer learns nothing from it.
    let (st, v2) = s.post("/v1/tenants/shop/erase", w, target);
    assert_eq!((st, &v2), (200, &v));
    let (_, found) = s.post(
        "/v1/tenants/shop/lookup",
        Some(&t.reader),
        json!({"phone": "+447400123959", "purpose": "otp"}),
    );
    let id = found["id"].as_str().unwrap();
    let path = format!("/v1/tenants/shop/numbers/{id}");
    let (st, _) = s.call("DELETE", &path, Some(&t.reader), b"");
    assert_eq!(st, 403);
    let (st, v) = s.call("DELETE", &path, w, b"");
    assert_eq!((st, v), (200, json!({"deleted": true})));
    let (st, v) = s.call("DELETE", &path, w, b"");
    assert_eq!((st, code(&v)), (404, "not_found"));

    let log = s.stop();
    assert!(!log.contains(NATIONAL), "a number in the server log: {log}");
}

#[test]
fn openapi_paths_are_all_routed() {
    let (env, t) = setup();
    let s = serve(&env, &[]);
    // Unsealed, with a valid token, so that a request reaches the router: an unrouted
    // tenant path would then answer `no_route` rather than 503 or 401.
    unseal(&s);
    let (st, doc) = s.call("GET", "/v1/openapi.json", None, b"");
    assert_eq!(st, 200);
    let on_disk: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(doc, on_disk);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 14);
    for (path, item) in paths {
        let concrete = path
            .replace("{tenant}", "shop")
            .replace("{id}", "0123456789abcdef0123456789abcdef");
        for method in item.as_object().unwrap().keys() {
            if path == "/v1/sys/metrics" {
                // The one answer in the Prometheus text format, not JSON.
                let req = format!(
                    "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n",
                    t.admin
                );
                let out = String::from_utf8(s.raw(req.as_bytes())).unwrap();
                assert!(out.starts_with("HTTP/1.1 200"), "{out}");
                assert!(out.contains("text/plain; version=0.0.4"), "{out}");
                continue;
            }
            // Revoking every token with the admin token would lock the later calls out;
            // a tenant token is refused (403), which shows the route as well.
            let token = if path == "/v1/sys/tokens/revoke-all" {
                &t.writer
            } else {
                &t.admin
            };
            let (st, v) = s.call(&method.to_uppercase(), &concrete, Some(token), b"{}");
            assert!(
                !matches!(code(&v), "no_route" | "method_not_allowed"),
                "{method} {path} is documented but not routed: {st} {v}"
            );
            if path == "/v1/sys/seal" {
                unseal(&s);
            }
        }
    }
    let (st, v) = s.call("GET", "/v1/nope", None, b"");
    assert_eq!((st, code(&v)), (404, "no_route"));
    let (st, v) = s.call("POST", "/v1/tenants/shop/nope", Some(&t.admin), b"{}");
    assert_eq!((st, code(&v)), (404, "no_route"));
    s.stop();
}

#[test]
fn socket_file_stale_live_and_permissions() {
    let (env, t) = setup();
    // A stale socket (bound, then its server gone) is replaced.
    drop(std::os::unix::net::UnixListener::bind(env.socket()).unwrap());
    assert!(env.socket().exists());
    let s = serve(&env, &[]);
    // A live one is an error, and stays in place.
    let out = env
        .cmd(&["serve"])
        .env_remove("PHONEVAULT_PASSPHRASE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already listening"), "{err}");
    let (st, _) = s.call("GET", "/v1/sys/health", None, b"");
    assert_eq!(st, 200);
    s.stop();
    assert!(!env.socket().exists());

    // A file that is not a socket is never removed.
    std::fs::write(env.socket(), b"precious").unwrap();
    let out = env.cmd(&["serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a socket"));
    std::fs::remove_file(env.socket()).unwrap();

    // --allow-uid: a peer with another uid is refused.
    let me = std::fs::metadata(&env.vault).unwrap();
    let other_uid = std::os::unix::fs::MetadataExt::uid(&me) + 1;
    let s = serve(&env, &["--allow-uid", &other_uid.to_string()]);
    let (st, v) = s.call("GET", "/v1/sys/health", None, b"");
    assert_eq!((st, code(&v)), (403, "forbidden"));
    s.stop();

    // Started with an unlock source: unsealed at once; SIGINT also shuts down cleanly.
    let s = Server::spawn(env.cmd(&["serve"]), env.socket(), env.path("serve2.log"));
    let (st, v) = s.post(
        "/v1/tenants/shop/lookup",
        Some(&t.reader),
        json!({"phone": NUMBER, "purpose": "otp"}),
    );
    assert_eq!((st, code(&v)), (404, "not_found"));
    s.signal("-INT");
    let mut s = s;
    assert!(s.wait_exit().is_some());
    assert!(!env.socket().exists());
}

/// Each `--audit-sync` mode (and the older `--audit-read-lag-ms`) serves lookups, and
/// their entries are in the chain once the server stopped; the journal of `process`
/// mode is folded in and removed at a clean stop. Conflicting flags are refused.
#[test]
fn every_audit_sync_mode_serves_and_logs_its_lookups() {
    let (env, t) = setup();
    let lookup = json!({"phone": NUMBER, "purpose": "otp"});
    let finds = || {
        env.ok(&["audit", "export", "--action", "find"])
            .lines()
            .count()
    };
    let journal = env.vault.join("audit.journal");
    for flags in [
        &["--audit-sync", "always"][..],
        &["--audit-sync", "process", "--audit-sync-ms", "5"],
        &[],
        &["--audit-sync", "lag", "--audit-sync-ms", "5"],
        &["--audit-read-lag-ms", "10"],
    ] {
        let before = finds();
        let s = serve(&env, flags);
        unseal(&s);
        let process = flags.is_empty() || flags.contains(&"process");
        assert_eq!(journal.exists(), process, "{flags:?}");
        for _ in 0..3 {
            let (st, _) = s.post("/v1/tenants/shop/lookup", Some(&t.reader), lookup.clone());
            assert_eq!(st, 404, "{flags:?}");
        }
        s.stop();
        assert!(
            !journal.exists(),
            "{flags:?}: the journal outlived a clean stop"
        );
        assert_eq!(finds(), before + 3, "{flags:?}");
    }
    for bad in [
        &["serve", "--audit-sync", "sometimes"][..],
        &["serve", "--audit-sync", "lag", "--audit-read-lag-ms", "10"],
        &["serve", "--audit-sync-ms", "0"],
    ] {
        let out = env.cmd(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

/// Tokens are served from memory on the hot path: a revocation through the socket
/// still holds on the very next request.
/// A verification renews retention, so a writer stamps only records consented for one
/// of its purposes; the answer is the same either way.
#[test]
fn a_writer_verifies_only_records_held_for_its_purposes() {
    let (env, t) = setup();
    env.ok(&[
        "add",
        "--tenant",
        "shop",
        "--phone",
        NUMBER,
        "--consent",
        "marketing",
    ]);
    let otp_writer = env.token(&["--tenant", "shop", "--role", "writer", "--purposes", "otp"]);
    let s = serve(&env, &[]);
    unseal(&s);
    let verified_at = || {
        let (st, v) = s.post(
            "/v1/tenants/shop/lookup",
            Some(&t.revealer),
            json!({"phone": NUMBER, "purpose": "marketing"}),
        );
        assert_eq!(st, 200, "{v}");
        v["verified_at"].clone()
    };
    let target = json!({"phone": NUMBER});
    let (st, v) = s.post("/v1/tenants/shop/verify", Some(&otp_writer), target.clone());
    assert_eq!((st, &v), (200, &json!({"accepted": true})));
    assert_eq!(verified_at(), Value::Null);
    let (st, v) = s.post("/v1/tenants/shop/verify", Some(&t.writer), target);
    assert_eq!((st, &v), (200, &json!({"accepted": true})));
    assert!(verified_at().is_u64());
    s.stop();
}

#[test]
fn a_token_revoked_through_the_socket_fails_on_the_next_request() {
    let (env, t) = setup();
    let s = serve(&env, &[]);
    unseal(&s);
    let lookup = json!({"phone": NUMBER, "purpose": "otp"});
    for _ in 0..3 {
        let (st, _) = s.post("/v1/tenants/shop/lookup", Some(&t.revealer), lookup.clone());
        assert_eq!(st, 404);
    }
    let (st, list) = s.call("GET", "/v1/sys/tokens", Some(&t.admin), b"");
    assert_eq!(st, 200, "{list}");
    let id = list["tokens"]
        .as_array()
        .or_else(|| list.as_array())
        .unwrap()
        .iter()
        .find(|r| r["role"] == "reader" && r["reveal"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, v) = s.call(
        "DELETE",
        &format!("/v1/sys/tokens/{id}"),
        Some(&t.admin),
        b"",
    );
    assert!(st < 300, "{st} {v}");
    let (st, v) = s.post("/v1/tenants/shop/lookup", Some(&t.revealer), lookup.clone());
    assert_eq!((st, code(&v)), (401, "unauthorized"));
    // The other reader still works; revoke-all ends it and the admin token at once.
    let (st, _) = s.post("/v1/tenants/shop/lookup", Some(&t.reader), lookup.clone());
    assert_eq!(st, 404);
    let (st, v) = s.post("/v1/sys/tokens/revoke-all", Some(&t.admin), json!({}));
    assert_eq!(st, 200, "{v}");
    let (st, _) = s.post("/v1/tenants/shop/lookup", Some(&t.reader), lookup);
    assert_eq!(st, 401);
    let (st, _) = s.call("GET", "/v1/sys/tokens", Some(&t.admin), b"");
    assert_eq!(st, 401);
    s.stop();
}

#[test]
fn token_cli_list_and_revoke() {
    let (env, t) = setup();
    let list: Value = serde_json::from_str(&env.ok(&["--json", "token", "list"])).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 6);
    let text = env.ok(&["token", "list"]);
    assert!(!text.contains(&t.reader[4..]), "a secret in token list");
    let reader_id = list
        .iter()
        .find(|r| r["role"] == "reader" && r["reveal"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.ok(&["token", "revoke", &reader_id]);
    let out = env.cmd(&["token", "revoke", &reader_id]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = env
        .cmd(&["token", "create", "--tenant", "shop", "--role", "boss"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role"));

    let s = serve(&env, &[]);
    unseal(&s);
    let lookup = json!({"phone": NUMBER, "purpose": "otp"});
    let (st, _) = s.post("/v1/tenants/shop/lookup", Some(&t.reader), lookup.clone());
    assert_eq!(st, 401, "a revoked token must not work");
    let (st, _) = s.post("/v1/tenants/shop/lookup", Some(&t.revealer), lookup.clone());
    assert_eq!(st, 404);
    s.stop();

    let v: Value = serde_json::from_str(&env.ok(&["--json", "token", "revoke", "--all"])).unwrap();
    assert_eq!(v["revoked"], 5);
    let s = serve(&env, &[]);
    unseal(&s);
    let (st, _) = s.post("/v1/tenants/shop/lookup", Some(&t.revealer), lookup);
    assert_eq!(st, 401);
    s.stop();
}

#[test]
fn lookups_are_rate_limited_per_token_and_socket_group() {
    let (env, t) = setup();
    let s = serve(
        &env,
        &["--lookup-rate", "5", "--socket-group", "0", "--access-log"],
    );
    let meta = std::fs::metadata(env.socket()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), 0);
    unseal(&s);
    let lookup = json!({"phone": NUMBER, "purpose": "otp"});
    // A burst of 5, then refusals (the refill, 5/s, is slower than these requests).
    let answers: Vec<(u16, Value)> = (0..20)
        .map(|_| s.post("/v1/tenants/shop/lookup", Some(&t.reader), lookup.clone()))
        .collect();
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert!(statuses[..5].iter().all(|&c| c == 404), "{statuses:?}");
    let refused: Vec<_> = answers.iter().filter(|a| a.0 == 429).collect();
    assert!(!refused.is_empty(), "{statuses:?}");
    assert!(refused.iter().all(|a| code(&a.1) == "rate_limited"));
    // Another token has its own budget.
    let (st, _) = s.post("/v1/tenants/shop/lookup", Some(&t.revealer), lookup);
    assert_eq!(st, 404);
    let log = s.stop();
    assert!(
        log.contains("/v1/tenants/shop/lookup 429"),
        "refusals are logged: {log}"
    );
}

/// A method the route does not take, with a body: the answer (405) is not lost with
/// the connection. The body is read before the answer when it comes within the
/// deadline, and the answer says `connection: close`, so a client does not send its
/// next request into a connection the server then closes (schemathesis, through a
/// relay that forwards the body after the head, saw "closed without response").
#[test]
fn a_wrong_method_with_a_body_is_answered_and_the_connection_not_reused() {
    let (env, t) = setup();
    let s = serve(&env, &[]);
    unseal(&s);
    let body = r#"{"phone": "+447400123958", "purposes": ["otp"], "source": "web"}"#;
    let mut c = UnixStream::connect(env.socket()).unwrap();
    c.write_all(
        format!(
            "PATCH /v1/tenants/shop/consent/grant HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            t.admin,
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    // The body after the head, as a relay may forward it.
    std::thread::sleep(Duration::from_millis(200));
    c.write_all(body.as_bytes()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 405"), "{out}");
    assert!(
        out.to_ascii_lowercase().contains("connection: close"),
        "{out}"
    );
    assert!(out.contains("method_not_allowed"), "{out}");
    s.stop();
}

#[test]
fn connections_past_the_cap_wait_their_turn() {
    let (env, _) = setup();
    let s = serve(&env, &["--max-connections", "1"]);
    // The first connection holds the only slot while it stays open.
    let first = UnixStream::connect(env.socket()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let sock = env.socket();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut c = UnixStream::connect(&sock).unwrap();
        c.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        tx.send(out).unwrap();
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "the second client was served while the first held the only slot"
    );
    drop(first);
    let out = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    s.stop();
}

#[test]
fn slow_clients_are_cut_off() {
    let (env, _) = setup();
    let s = serve(
        &env,
        &["--header-timeout-secs", "1", "--max-connections", "1"],
    );
    // A request head that never ends: the connection is closed after the timeout, and
    // its slot freed for the next client.
    let mut c = UnixStream::connect(env.socket()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    let (st, _) = s.call("GET", "/v1/sys/health", None, b"");
    assert_eq!(st, 200);
    s.stop();
}

#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let (env, t) = setup();
    let s = serve(&env, &[]);
    unseal(&s);
    let items: Vec<Value> = (0..3000)
        .map(|i| json!({"phone": format!("+4474001{i:05}"), "consents": ["otp"]}))
        .collect();
    let body = json!({ "items": items }).to_string();
    let sock = env.socket();
    let token = t.writer.clone();
    let client = std::thread::spawn(move || {
        let mut c = UnixStream::connect(&sock).unwrap();
        let req = format!(
            "POST /v1/tenants/shop/numbers/batch HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        c.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    });
    std::thread::sleep(Duration::from_millis(200));
    s.stop();
    let out = client.join().unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"accepted\":3000"), "{out}");
    assert!(!env.socket().exists());
}

#[test]
fn the_audit_report_names_the_token_its_peer_and_exactly_what_it_did() {
    let (env, t) = setup();
    let out = env.ok(&[
        "--json", "token", "create", "--tenant", "shop", "--role", "reader", "--reveal",
    ]);
    let made: Value = serde_json::from_str(&out).unwrap();
    let (id, token) = (
        made["id"].as_str().unwrap().to_owned(),
        made["token"].as_str().unwrap().to_owned(),
    );
    let s = serve(&env, &[]);
    // a failed unseal while sealed is held, then logged at unseal
    let (st, _) = s.post("/v1/sys/unseal", None, json!({"passphrase": "wrong"}));
    assert_eq!(st, 401);
    unseal(&s);
    let add = json!({"phone": NUMBER, "consents": ["otp"]});
    assert_eq!(
        s.post("/v1/tenants/shop/numbers", Some(&t.writer), add).0,
        200
    );
    let reveal = json!({"phone": NUMBER, "purpose": "otp", "reveal": true});
    for _ in 0..3 {
        let (st, v) = s.post("/v1/tenants/shop/lookup", Some(&token), reveal.clone());
        assert_eq!((st, v["phone"].as_str()), (200, Some(NUMBER)));
    }
    // refused by policy: no consent for marketing
    let refused = json!({"phone": NUMBER, "purpose": "marketing"});
    assert_eq!(
        s.post("/v1/tenants/shop/lookup", Some(&token), refused).0,
        404
    );
    // failed authentication
    assert_eq!(
        s.post("/v1/tenants/shop/lookup", None, reveal.clone()).0,
        401
    );
    s.stop();

    let report: Value =
        serde_json::from_str(&env.ok(&["--json", "audit", "report", "--since", "2020-01-01"]))
            .unwrap();
    let shop = &report["tenants"]["shop"];
    let by_token = &shop[format!("token:{id}")];
    assert_eq!(by_token["reads"], 3, "{report}");
    assert_eq!(by_token["revealed"], 3, "{report}");
    assert_eq!(by_token["refused"], 1, "{report}");
    assert_eq!(by_token["revealed_ids"].as_array().unwrap().len(), 1);
    let uid = std::fs::metadata(&env.vault)
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap();
    // The failed unseal and the failed authentication: the tenant of a path is
    // recorded only when it is the token's own (issue 13: the caller typed it).
    assert!(shop.get(format!("peer-uid:{uid}")).is_none(), "{report}");
    assert_eq!(
        report["tenants"]["-"][format!("peer-uid:{uid}")]["denied"],
        2,
        "the failed unseal and authentication: {report}"
    );
    // each reveal carries the peer's uid and pid; no number anywhere in the log
    let export = env.ok(&["audit", "export", "--tenant", "shop", "--action", "find"]);
    let first: Value = serde_json::from_str(export.lines().next().unwrap()).unwrap();
    assert_eq!(first["actor"]["Token"]["id"], id.as_str());
    assert_eq!(first["actor"]["Token"]["uid"], uid);
    assert!(first["actor"]["Token"]["pid"].as_u64().unwrap() > 1);
    let all = env.ok(&["audit", "export"]);
    assert!(!all.contains(NATIONAL));
}

/// The role each route's document states (`x-phonevault-role`, its security scheme and
/// its description) is the role the server enforces: with a token of that role the
/// route is not refused as `forbidden`, with a token of every other role it is.
#[test]
fn every_route_needs_the_role_its_document_names() {
    let (env, t) = setup();
    let inbound = env.token(&["--tenant", "shop", "--role", "inbound"]);
    let shop_admin = env.token(&["--tenant", "shop", "--role", "admin"]);
    let s = serve(&env, &[]);
    unseal(&s);
    let doc: Value = serde_json::from_str(&phonevault::server::OPENAPI).unwrap();
    assert!(
        doc.get("security").is_none(),
        "no global scheme: each route names its own"
    );
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    let ours = |role: &str| -> Option<&str> {
        match role {
            "vault-admin" => Some(&t.admin),
            "reader" => Some(&t.revealer),
            "writer" => Some(&t.writer),
            "auditor" => Some(&t.auditor),
            "inbound" => Some(&inbound),
            "admin" => Some(&shop_admin),
            _ => None,
        }
    };
    // A body each route parses, so that authorization, not the body, decides.
    let body = |path: &str| -> Value {
        match path.rsplit('/').next().unwrap() {
            "numbers" => json!({"phone": NUMBER, "consents": ["otp"]}),
            "batch" => json!({"items": []}),
            "lookup" => json!({"phone": NUMBER, "purpose": "otp"}),
            "last4" => json!({"country_code": 44, "last4": "3958", "purpose": "otp"}),
            "grant" => json!({"phone": NUMBER, "purposes": ["otp"]}),
            "withdraw" => json!({"phone": NUMBER, "purpose": "otp"}),
            "opt-out" => json!({"phone": NUMBER, "purpose": "otp"}),
            "erase" | "verify" => json!({"phone": NUMBER}),
            "stats" => json!({}),
            "inbound-sms" => json!({"from": NUMBER, "to": NUMBER, "body": "HELP"}),
            "tokens" => json!({"tenant": "shop", "role": "reader"}),
            "rows" => json!({"phones": [NUMBER]}),
            "commit" => json!({"purposes": ["marketing"]}),
            _ => json!({}),
        }
    };
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let role = op["x-phonevault-role"].as_str().unwrap_or_else(|| {
                panic!("{method} {path}: no x-phonevault-role");
            });
            let desc = op["description"].as_str().unwrap();
            assert!(desc.starts_with("Role: "), "{method} {path}: {desc}");
            let security = op["security"].as_array().unwrap();
            if role == "none" {
                assert!(security.is_empty(), "{method} {path}");
                continue;
            }
            let scheme = role.replace('-', "_");
            assert_eq!(security, &vec![json!({ &scheme: [] })], "{method} {path}");
            assert!(schemes.contains_key(&scheme), "{method} {path}: {scheme}");
            // The ending routes are checked with refusals only (they would seal or
            // revoke the tokens the rest of the test uses).
            // So is a route answering text (metrics): `call` reads JSON answers.
            let ending = path == "/v1/sys/seal"
                || path.starts_with("/v1/sys/tokens/")
                || op["responses"]["200"]["content"]
                    .get("application/json")
                    .is_none();
            let mut concrete = path
                .replace("{tenant}", "shop")
                .replace("{id}", "0123456789abcdef0123456789abcdef")
                .replace("{list}", "dnc")
                .replace("{upload}", "0123456789abcdef");
            if method == "get" && path.ends_with("/numbers/{id}") {
                // Its query is parsed before the token is looked at.
                concrete.push_str("?purpose=otp");
            }
            let m = method.to_uppercase();
            let b = serde_json::to_vec(&body(path)).unwrap();
            if role == "admin" {
                // Only a tenant admin: every other role is refused below.
                let (st, v) = s.call(&m, &concrete, Some(&shop_admin), &b);
                assert_ne!(st, 403, "{m} {path} with a tenant admin token: {v}");
                checked += 1;
            }
            for other in ["vault-admin", "reader", "writer", "auditor", "inbound"] {
                if other == role && ending {
                    continue;
                }
                let (st, v) = s.call(&m, &concrete, ours(other), &b);
                if other == role {
                    assert_ne!(st, 403, "{m} {path} with a {other} token: {v}");
                } else {
                    assert_eq!(
                        (st, code(&v)),
                        (403, "forbidden"),
                        "{m} {path} is documented for {role}, yet a {other} token got {v}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 60, "{checked}");
    s.stop();
}

/// Found running schemathesis against the server: requests the document refuses were
/// accepted (`null` for a string, a region hint beside a record id, a batch's bad
/// source when it has no items, an empty passphrase while unsealed, `+5d` as a token
/// lifetime).
#[test]
fn the_server_refuses_what_its_document_refuses() {
    let (env, t) = setup();
    let s = serve(&env, &[]);
    unseal(&s);
    let w = Some(t.writer.as_str());
    let (st, v) = s.post(
        "/v1/tenants/shop/numbers",
        w,
        json!({"phone": NUMBER, "consents": ["otp"]}),
    );
    // A writer without detail is answered `accepted` (issue 13); the id from a lookup.
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.post(
        "/v1/tenants/shop/lookup",
        Some(&t.reader),
        json!({"phone": NUMBER, "purpose": "otp"}),
    );
    assert_eq!(st, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let refused = [
        (
            "/v1/tenants/shop/numbers",
            json!({"phone": NUMBER, "consents": ["otp"], "source": null}),
        ),
        (
            "/v1/tenants/shop/numbers",
            json!({"phone": NUMBER, "consents": ["otp"], "region": null}),
        ),
        (
            "/v1/tenants/shop/numbers/batch",
            json!({"items": [{"phone": NUMBER, "consents": ["otp"]}], "source": null}),
        ),
        ("/v1/tenants/shop/verify", json!({"id": id, "phone": null})),
        ("/v1/tenants/shop/verify", json!({"id": id, "region": "GB"})),
        (
            "/v1/tenants/shop/consent/withdraw",
            json!({"id": id, "region": "GB", "purpose": "otp"}),
        ),
        (
            "/v1/tenants/shop/opt-out",
            json!({"id": id, "purpose": null, "all": true}),
        ),
    ];
    for (path, body) in refused {
        let (st, v) = s.post(path, w, body.clone());
        assert_eq!((st, code(&v)), (400, "bad_json"), "{path} {body}: {v}");
    }
    let (st, v) = s.post(
        "/v1/tenants/shop/numbers/batch",
        w,
        json!({"items": [], "source": ""}),
    );
    assert_eq!((st, code(&v)), (400, "invalid_argument"), "{v}");
    let (st, v) = s.post("/v1/sys/unseal", None, json!({"passphrase": ""}));
    assert_eq!((st, code(&v)), (400, "bad_json"), "{v}");
    let (st, v) = s.post(
        "/v1/sys/tokens",
        Some(&t.admin),
        json!({"tenant": "shop", "role": "reader", "ttl": "+5d"}),
    );
    assert_eq!((st, code(&v)), (400, "invalid_argument"), "{v}");
    // The record is untouched by all of it.
    let (st, v) = s.call(
        "GET",
        &format!("/v1/tenants/shop/numbers/{id}?purpose=otp"),
        Some(&t.revealer),
        b"",
    );
    assert_eq!((st, v["verified_at"].clone()), (200, Value::Null), "{v}");
    s.stop();
}

/// Issue 11: the routes parse a write's `source` into a `Source` before the vault is
/// asked; a malformed one is answered as the vault answered it (400
/// `invalid_argument`, the value not repeated) and writes nothing.
#[test]
fn a_malformed_source_is_refused_by_every_write_that_takes_one() {
    let (env, t) = setup();
    let s = serve(&env, &[]);
    unseal(&s);
    let w = Some(t.writer.as_str());
    for bad in ["", "web 7700900123", "crm\"7700900123", "a\\7700900123"] {
        let writes = [
            (
                "/v1/tenants/shop/numbers",
                json!({"phone": NUMBER, "consents": ["otp"], "source": bad}),
            ),
            (
                "/v1/tenants/shop/numbers/batch",
                json!({"items": [{"phone": NUMBER, "consents": ["otp"]}], "source": bad}),
            ),
            (
                "/v1/tenants/shop/consent/grant",
                json!({"phone": NUMBER, "purposes": ["otp"], "source": bad}),
            ),
        ];
        for (path, body) in writes {
            let (st, v) = s.post(path, w, body.clone());
            assert_eq!(
                (st, code(&v)),
                (400, "invalid_argument"),
                "{path} {body}: {v}"
            );
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("invalid source") && !m.contains("7700900123")),
                "{v}"
            );
        }
    }
    let lookup = json!({"phone": NUMBER, "purpose": "otp"});
    let (st, v) = s.post("/v1/tenants/shop/lookup", Some(&t.reader), lookup);
    assert_eq!((st, code(&v)), (404, "not_found"), "{v}");
    s.stop();
}

/// SECURITY.md said the vault-wide admin token "reads no data"; it reads none itself,
/// but it can mint a token with the reveal right for any tenant and read every number
/// through it. Pins down what SECURITY.md now says: the mint is possible, and audited.
#[test]
fn the_admin_token_can_mint_a_reveal_token_and_the_mint_is_audited() {
    let (env, t) = setup();
    let s = serve(&env, &[]);
    unseal(&s);
    let add = json!({"phone": NUMBER, "consents": ["otp"]});
    // A writer gets the one answer of writes (issue 13).
    let (st, _) = s.post("/v1/tenants/shop/numbers", Some(&t.writer), add);
    assert_eq!(st, 200);
    let lookup = json!({"phone": NUMBER, "purpose": "otp", "reveal": true});
    // by itself: no data
    let (st, _) = s.post("/v1/tenants/shop/lookup", Some(&t.admin), lookup.clone());
    assert_eq!(st, 403);
    let (st, v) = s.post(
        "/v1/sys/tokens",
        Some(&t.admin),
        json!({"tenant": "shop", "role": "reader", "purposes": ["otp"], "reveal": true}),
    );
    assert_eq!(st, 201, "{v}");
    let minted = v["token"].as_str().unwrap().to_owned();
    let (st, v) = s.post("/v1/tenants/shop/lookup", Some(&minted), lookup);
    assert_eq!((st, v["phone"].as_str()), (200, Some(NUMBER)));
    s.stop();
    let log = env.ok(&["audit", "export", "--action", "token-create"]);
    // the mint is recorded with the admin token as its actor
    let by_token: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["actor"].get("Token").is_some())
        .collect();
    assert_eq!(by_token.len(), 1, "{log}");
    assert_eq!(by_token[0]["tenant"], "shop");
}

/// Twilio's `X-Twilio-Signature`, computed here as Twilio documents it (base64 of
/// HMAC-SHA1 over the URL and each POST field sorted by name, name then value), not
/// with the vault's code.
fn twilio_signature(secret: &str, url: &str, fields: &[(&str, &str)]) -> String {
    use base64::Engine as _;
    use hmac::Mac;
    let mut sorted = fields.to_vec();
    sorted.sort();
    let mut data = url.to_owned();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A form body as Twilio's inbound-message webhook posts it (fields and their order
/// as Twilio sends them, values made up), URL-encoded.
fn twilio_form(from: &str, to: &str, text: &str) -> Vec<(&'static str, String)> {
    [
        ("ToCountry", "GB"),
        ("ToState", ""),
        ("SmsMessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("NumMedia", "0"),
        ("ToCity", ""),
        ("FromZip", ""),
        ("SmsSid", "SM0123456789abcdef0123456789abcdef"),
        ("FromState", ""),
        ("SmsStatus", "received"),
        ("FromCity", ""),
        ("Body", text),
        ("FromCountry", "GB"),
        ("To", to),
        ("MessagingServiceSid", "MG0123456789abcdef0123456789abcdef"),
        ("ToZip", ""),
        ("NumSegments", "1"),
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ]
    .map(|(k, v)| (k, v.to_owned()))
    .to_vec()
}

fn form_encode(fields: &[(&str, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| match b {
                    b' ' => "+".to_owned(),
                    b if b.is_ascii_alphanumeric() || b"-_.*".contains(&b) => {
                        (b as char).to_string()
                    }
                    b => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

const SMS_SECRET: &str = "0123456789abcdef0123456789abcdef";
const SMS_URL: &str = "https://sms.example.com/v1/tenants/shop/inbound-sms";
const SMS_TO: &str = "+447400123001";
const STRANGER: &str = "+447400123959";

impl Server {
    /// Posts a Twilio form to the inbound route, signed with `secret`.
    fn sms(&self, token: &str, secret: &str, from: &str, to: &str, text: &str) -> (u16, Value) {
        let fields = twilio_form(from, to, text);
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let sig = twilio_signature(secret, SMS_URL, &pairs);
        self.call_with(
            "POST",
            "/v1/tenants/shop/inbound-sms",
            Some(token),
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("X-Twilio-Signature", &sig),
            ],
            form_encode(&fields).as_bytes(),
        )
    }
}

#[test]
fn inbound_sms_stop_start_help_signed_as_twilio_signs() {
    let (env, t) = setup();
    let inbound = env.token(&["--tenant", "shop", "--role", "inbound"]);
    env.fails_with(
        &[
            "token",
            "create",
            "--tenant",
            "shop",
            "--role",
            "inbound",
            "--purposes",
            "otp",
        ],
        "an inbound token takes no purposes",
    );
    add_number(&env, "otp,marketing");
    let secret_file = env.vault.parent().unwrap().join("twilio-auth-token");
    std::fs::write(&secret_file, format!("{SMS_SECRET}\n")).unwrap();
    // Misuse, as a user sees it.
    let sf = secret_file.to_str().unwrap();
    env.fails_with(
        &["tenant", "set-sms", "shop", "--secret-file", sf],
        "a provider secret needs the webhook URL it signs",
    );
    env.fails_with(
        &["tenant", "set-sms", "shop", "--number", SMS_TO],
        "--number number 1 is not TO=purpose,purpose",
    );
    env.fails_with(
        &[
            "tenant",
            "set-sms",
            "shop",
            "--number",
            &format!("{SMS_TO}=nope"),
        ],
        "purpose number 1 given is not declared",
    );
    env.fails_with(
        &["tenant", "set-sms", "shop", "--webhook-url", "ftp://x"],
        "the webhook URL must be the full http(s) URL",
    );
    let shown = env.ok(&[
        "tenant",
        "set-sms",
        "shop",
        "--secret-file",
        secret_file.to_str().unwrap(),
        "--webhook-url",
        SMS_URL,
        "--number",
        &format!("{SMS_TO}=marketing"),
        "--reply-stop",
        "Shop: unsubscribed. Reply START to resubscribe.",
    ]);
    assert!(shown.contains("signature required (secret set)"), "{shown}");
    assert!(!shown.contains(SMS_SECRET));
    let s = serve(&env, &[]);
    unseal(&s);
    let marketing = |s: &Server| {
        let body = json!({"phone": NUMBER, "purpose": "marketing"});
        s.post("/v1/tenants/shop/lookup", Some(&t.revealer), body).0
    };
    let otp = |s: &Server| {
        let body = json!({"phone": NUMBER, "purpose": "otp"});
        s.post("/v1/tenants/shop/lookup", Some(&t.revealer), body).0
    };
    assert_eq!((marketing(&s), otp(&s)), (200, 200));

    // A wrong signature (another secret) is refused and changes nothing.
    let (st, v) = s.sms(&inbound, "wrong-secret", NUMBER, SMS_TO, "STOP");
    assert_eq!((st, code(&v)), (403, "bad_signature"));
    assert_eq!(marketing(&s), 200);
    // A tampered field breaks the signature too.
    let fields = twilio_form(NUMBER, SMS_TO, "HELLO");
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sig = twilio_signature(SMS_SECRET, SMS_URL, &pairs);
    let tampered = form_encode(&twilio_form(NUMBER, SMS_TO, "STOP"));
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("X-Twilio-Signature", sig.as_str()),
    ];
    let (st, v) = s.call_with(
        "POST",
        "/v1/tenants/shop/inbound-sms",
        Some(&inbound),
        &headers,
        tampered.as_bytes(),
    );
    assert_eq!((st, code(&v)), (403, "bad_signature"));
    assert_eq!(marketing(&s), 200);

    // STOP, in any case and spacing, to the marketing number: marketing is refused at
    // once, otp (not mapped to that number) still answers.
    let (st, stop) = s.sms(&inbound, SMS_SECRET, NUMBER, SMS_TO, " Stop ");
    assert_eq!(st, 200);
    assert_eq!(
        stop,
        json!({"action": "opted_out", "reply": "Shop: unsubscribed. Reply START to resubscribe."})
    );
    assert_eq!((marketing(&s), otp(&s)), (404, 200));

    // An unknown sender gets exactly the same answer.
    let (st2, stranger) = s.sms(&inbound, SMS_SECRET, STRANGER, SMS_TO, " Stop ");
    assert_eq!((st2, &stranger), (st, &stop));
    let (_, a) = s.sms(&inbound, SMS_SECRET, NUMBER, SMS_TO, "HELP");
    let (_, b) = s.sms(&inbound, SMS_SECRET, STRANGER, SMS_TO, "HELP");
    assert_eq!(a, b);
    assert_eq!(a["action"], "help");
    assert_eq!(marketing(&s), 404, "HELP changes nothing");
    let (_, a) = s.sms(&inbound, SMS_SECRET, NUMBER, SMS_TO, "what is this?");
    assert_eq!(a, json!({"action": "none", "reply": ""}));
    assert_eq!(marketing(&s), 404);

    // START lifts the SMS opt-out; the same answer for the stranger.
    let (st, a) = s.sms(&inbound, SMS_SECRET, NUMBER, SMS_TO, "start");
    assert_eq!((st, &a["action"]), (200, &json!("opt_out_lifted")));
    let (_, b) = s.sms(&inbound, SMS_SECRET, STRANGER, SMS_TO, "start");
    assert_eq!(a, b);
    assert_eq!(marketing(&s), 200);

    // STOP to a number the tenant mapped to nothing opts out of everything.
    let (_, v) = s.sms(&inbound, SMS_SECRET, NUMBER, "87654", "UNSUBSCRIBE");
    assert_eq!(v["action"], "opted_out");
    assert_eq!((marketing(&s), otp(&s)), (404, 404));
    let (_, v) = s.sms(&inbound, SMS_SECRET, NUMBER, "87654", "UNSTOP");
    assert_eq!(v["action"], "opt_out_lifted");
    assert_eq!((marketing(&s), otp(&s)), (200, 200));

    // JSON bodies: unsigned is refused while the tenant has a secret; signed as Twilio
    // signs JSON (bodySHA256 in the URL, the URL signed), it is taken.
    let body = json!({"from": NUMBER, "to": SMS_TO, "body": "QUIT"}).to_string();
    let (st, v) = s.call(
        "POST",
        "/v1/tenants/shop/inbound-sms",
        Some(&inbound),
        body.as_bytes(),
    );
    assert_eq!((st, code(&v)), (403, "bad_signature"));
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(body.as_bytes()))
    };
    let sig = twilio_signature(SMS_SECRET, &format!("{SMS_URL}?bodySHA256={hash}"), &[]);
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Twilio-Signature", sig.as_str()),
    ];
    let path = format!("/v1/tenants/shop/inbound-sms?bodySHA256={hash}");
    let (st, v) = s.call_with("POST", &path, Some(&inbound), &headers, body.as_bytes());
    assert_eq!((st, &v["action"]), (200, &json!("opted_out")));
    assert_eq!(marketing(&s), 404);

    // The inbound role does nothing else; other roles cannot post inbound messages.
    let (st, _) = s.post(
        "/v1/tenants/shop/lookup",
        Some(&inbound),
        json!({"phone": NUMBER, "purpose": "otp"}),
    );
    assert_eq!(st, 403);
    let (st, v) = s.sms(&t.writer, SMS_SECRET, NUMBER, SMS_TO, "START");
    assert_eq!((st, code(&v)), (403, "forbidden"));
    let (st, v) = s.call_with(
        "POST",
        "/v1/tenants/shop/inbound-sms",
        Some(&inbound),
        &[("Content-Type", "text/plain")],
        b"STOP",
    );
    assert_eq!((st, code(&v)), (415, "unsupported_media_type"));
    let log = s.stop();
    for n in [NATIONAL, "7400123959"] {
        assert!(!log.contains(n), "a number in the server log");
    }

    // The audit log names the channel and the record, never the number; the consent
    // START restored names its source.
    let audit = env.ok(&["audit", "export"]);
    assert!(audit.contains("opt-out:sms") && audit.contains("opt-out-lift:sms"));
    assert!(audit.contains("inbound-sms:help") && audit.contains("bad_signature"));
    for n in [NATIONAL, "7400123959"] {
        assert!(!audit.contains(n), "a number in the audit log");
    }
    let subject = env.ok(&["--json", "subject", "--tenant", "shop", "--phone", NUMBER]);
    assert!(subject.contains(&format!("sms:{SMS_TO}")), "{subject}");
    // The provider's secret is sealed at rest: no file of the vault holds it.
    fn holding(dir: &Path, needle: &[u8], hits: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                holding(&p, needle, hits);
            } else if std::fs::read(&p)
                .unwrap_or_default()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                hits.push(p);
            }
        }
    }
    let mut hits = Vec::new();
    holding(&env.vault, SMS_SECRET.as_bytes(), &mut hits);
    assert!(hits.is_empty(), "the SMS secret in clear in {hits:?}");
}

/// Without a secret, inbound messages are taken unsigned (an application relaying
/// its provider's webhook after checking it), and the signature header is ignored.
#[test]
fn inbound_sms_without_a_secret_takes_json() {
    let (env, t) = setup();
    let inbound = env.token(&["--tenant", "shop", "--role", "inbound"]);
    add_number(&env, "marketing");
    let s = serve(&env, &[]);
    unseal(&s);
    let body = json!({"from": NUMBER, "to": SMS_TO, "body": "end"});
    let (st, v) = s.post("/v1/tenants/shop/inbound-sms", Some(&inbound), body);
    assert_eq!(
        (st, v),
        (
            200,
            json!({"action": "opted_out", "reply": "You are unsubscribed and will receive no more messages. Reply START to resubscribe."})
        )
    );
    let (st, _) = s.post(
        "/v1/tenants/shop/lookup",
        Some(&t.revealer),
        json!({"phone": NUMBER, "purpose": "marketing"}),
    );
    assert_eq!(st, 404);
    // A malformed body is refused without echoing it.
    let (st, v) = s.post(
        "/v1/tenants/shop/inbound-sms",
        Some(&inbound),
        json!({"from": NUMBER}),
    );
    assert_eq!((st, code(&v)), (400, "invalid_argument"));
    let (st, v) = s.post(
        "/v1/tenants/shop/inbound-sms",
        Some(&inbound),
        json!({"from": "7", "to": SMS_TO, "body": "STOP"}),
    );
    assert_eq!((st, code(&v)), (400, "invalid_phone"));
    s.stop();
}

/// Consent receipts (issue 16 part 2): issued by the CLI and by the grant route, checked
/// offline with the exported public key, refused once one byte changes, still valid
/// after the consent is withdrawn, and listed by `subject` with the withdrawal.
#[test]
fn consent_receipts_verify_offline_and_subject_shows_withdrawal() {
    let (env, t) = setup();
    let dir = env.vault.parent().unwrap().to_owned();
    let tenant_admin = env.token(&["--tenant", "shop", "--role", "admin"]);
    // No controller details: refused before anything is granted.
    let cli_grant = [
        "consent",
        "grant",
        "--tenant",
        "shop",
        "--phone",
        NUMBER,
        "--receipt",
    ];
    env.fails_with(
        &[&cli_grant[..], &["--purpose", "otp"]].concat(),
        "tenant set-receipt shop",
    );
    env.ok(&[
        "tenant",
        "set-receipt",
        "shop",
        "--controller",
        "Shop Ltd",
        "--contact",
        "privacy@shop.example",
        "--policy-url",
        "https://shop.example/privacy",
        "--jurisdiction",
        "GB",
    ]);
    let r1 = dir.join("r1.json");
    let out = [
        "--purpose",
        "marketing",
        "--source",
        "newsletter-form",
        "--receipt-out",
    ];
    env.ok(&[&cli_grant[..], &out, &[r1.to_str().unwrap()]].concat());
    let key = dir.join("receipt-key.hex");
    env.ok(&["receipt", "public-key", "--out", key.to_str().unwrap()]);
    let key_hex = std::fs::read_to_string(&key).unwrap().trim().to_owned();
    assert_eq!(key_hex.len(), 64);
    assert_eq!(
        env.ok(&["receipt", "public-key"]).trim(),
        key_hex,
        "one key, made once"
    );
    let verify = |file: &Path| {
        common::phonevault(
            &dir.join("no-vault-here"),
            "",
            &[
                "receipt",
                "verify",
                file.to_str().unwrap(),
                "--public-key",
                &key_hex,
            ],
        )
        .output()
        .unwrap()
    };
    let out = common::phonevault(
        &dir,
        "",
        &[
            "receipt",
            "verify",
            r1.to_str().unwrap(),
            "--public-key",
            "abc",
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("--public-key is neither 64 hexadecimal characters"));
    let ok = verify(&r1);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let text = String::from_utf8_lossy(&ok.stdout).into_owned();
    assert!(
        text.contains("valid receipt") && text.contains("marketing"),
        "{text}"
    );
    let bytes = std::fs::read(&r1).unwrap();
    assert!(
        !String::from_utf8_lossy(&bytes).contains(NATIONAL),
        "the number in a receipt"
    );
    let receipt: Value = serde_json::from_slice(&bytes).unwrap();
    let r = &receipt["receipt"];
    assert_eq!(r["version"], "KI-CR-v1.1.0");
    assert_eq!(r["jurisdiction"], "GB");
    assert_eq!(r["piiControllers"][0]["piiController"], "Shop Ltd");
    assert_eq!(r["policyUrl"], "https://shop.example/privacy");
    assert_eq!(r["services"][0]["purposes"][0]["purpose"], "marketing");
    assert_eq!(r["source"], "newsletter-form");
    assert_eq!(r["collectionMethod"], "cli");
    let record = r["piiPrincipalId"].as_str().unwrap().to_owned();
    assert_eq!(record.len(), 32);
    // One byte changed (a purpose, a time, the signature): refused.
    for (from, to) in [("marketing", "marketinh"), ("newsletter", "mewsletter")] {
        let bad = String::from_utf8_lossy(&bytes).replacen(from, to, 1);
        let f = dir.join("bad.json");
        std::fs::write(&f, bad).unwrap();
        let out = verify(&f);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("does not verify"));
    }
    let sig_at = bytes.len() - 5;
    let mut bad = bytes.clone();
    bad[sig_at] = if bad[sig_at] == b'A' { b'B' } else { b'A' };
    std::fs::write(dir.join("bad.json"), &bad).unwrap();
    assert!(!verify(&dir.join("bad.json")).status.success());

    // Through the socket: a tenant admin holding every purpose gets the receipt; a
    // writer may not ask for one (it would learn the record id).
    let s = serve(&env, &[]);
    unseal(&s);
    let grant = json!({"phone": NUMBER, "purposes": ["otp"], "source": "app", "receipt": true});
    let (st, v) = s.post(
        "/v1/tenants/shop/consent/grant",
        Some(&tenant_admin),
        grant.clone(),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["id"], record.as_str());
    let r2 = dir.join("r2.json");
    std::fs::write(&r2, v["receipt"].as_str().unwrap()).unwrap();
    assert!(
        verify(&r2).status.success(),
        "verifies while a server holds the vault"
    );
    // The CLI through the socket asks the route for it.
    let r3 = dir.join("r3.json");
    let via = [
        "--purpose",
        "support",
        "--receipt-out",
        r3.to_str().unwrap(),
    ];
    let st = env
        .cmd(&[&cli_grant[..], &via].concat())
        .env("PHONEVAULT_TOKEN", &tenant_admin)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(verify(&r3).status.success());
    let (st, v) = s.post("/v1/tenants/shop/consent/grant", Some(&t.writer), grant);
    assert_eq!((st, code(&v)), (403, "forbidden"));
    s.stop();

    // Withdrawn: the receipt still verifies, and `subject` shows the withdrawal.
    env.ok(&[
        "consent",
        "withdraw",
        "--tenant",
        "shop",
        "--phone",
        NUMBER,
        "--purpose",
        "marketing",
    ]);
    assert!(verify(&r1).status.success());
    let subject: Value = serde_json::from_str(
        &env.ok(&["--json", "subject", "--tenant", "shop", "--phone", NUMBER]),
    )
    .unwrap();
    let receipts = subject["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), 3, "{subject}");
    assert_eq!(receipts[0]["id"], r["consentReceiptID"]);
    assert_eq!(receipts[0]["purposes"], json!(["marketing"]));
    assert_eq!(receipts[0]["withdrawn"], true);
    assert_eq!(receipts[1]["withdrawn"], false);
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(bytes.strip_suffix(b"\n").unwrap()))
    };
    assert_eq!(receipts[0]["sha256"], digest.as_str());
    let text = env.ok(&["subject", "--tenant", "shop", "--phone", NUMBER]);
    assert!(text.contains("consent since withdrawn"), "{text}");
}

/// Issue 16: a tenant admin loads a suppression list through the socket in parts
/// (nothing in force before the commit), marketing lookups of listed numbers are
/// refused while otp ones are not, the list is listed and dropped, and the store holds
/// no number of it.
#[test]
fn suppression_lists_through_the_socket() {
    let (env, t) = setup();
    let listed = "+447400123959";
    for n in [NUMBER, listed] {
        env.ok(&[
            "add",
            "--tenant",
            "shop",
            "--phone",
            n,
            "--consent",
            "otp,marketing",
        ]);
    }
    let admin = env.token(&["--tenant", "shop", "--role", "admin"]);
    let auditor = env.token(&["--tenant", "shop", "--role", "auditor"]);
    let s = serve(&env, &[]);
    unseal(&s);
    let lists = "/v1/tenants/shop/suppression-lists";
    let (st, v) = s.post(&format!("{lists}/dnc/uploads"), Some(&admin), json!({}));
    assert_eq!(st, 200, "{v}");
    let upload = v["upload"].as_str().unwrap().to_owned();
    let rows = format!("{lists}/dnc/uploads/{upload}/rows");
    let (st, v) = s.post(&rows, Some(&admin), json!({"phones": [listed, "+44 12"]}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["rows"].as_u64(), v["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(v["errors"][0]["index"], 1);
    assert!(!v.to_string().contains("+44 12"), "{v}");
    let lookup = |n: &str, purpose: &str| {
        s.post(
            "/v1/tenants/shop/lookup",
            Some(&t.revealer),
            json!({"phone": n, "purpose": purpose}),
        )
        .0
    };
    assert_eq!(
        lookup(listed, "marketing"),
        200,
        "not in force before the commit"
    );
    let commit = format!("{lists}/dnc/uploads/{upload}/commit");
    let (st, v) = s.post(&commit, Some(&t.writer), json!({"purposes": ["marketing"]}));
    assert_eq!(
        (st, code(&v)),
        (403, "forbidden"),
        "a writer manages no list"
    );
    let (st, v) = s.post(&commit, Some(&admin), json!({"purposes": ["marketing"]}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["version"].as_u64(), v["count"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(lookup(listed, "marketing"), 404);
    assert_eq!(lookup(listed, "otp"), 200);
    assert_eq!(lookup(NUMBER, "marketing"), 200);
    // Stats count the live records each list holds back, through the socket as in
    // process (the CLI's `stats` with a token prints them from the socket's answer).
    let (st, v) = s.post(
        "/v1/tenants/shop/stats",
        Some(&auditor),
        json!({"min_group": 2}),
    );
    assert_eq!(st, 200, "{v}");
    // One listed record is below the threshold of 2: the list, not its count.
    assert_eq!(
        v["suppression_lists"],
        json!([{"list": "dnc", "purposes": ["marketing"], "records": null}]),
        "{v}"
    );
    let out = env
        .cmd(&["stats", "--tenant", "shop", "--min-group", "2"])
        .env("PHONEVAULT_TOKEN", &auditor)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("suppression list dnc (marketing): fewer than 2 live records"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (st, v) = s.call("GET", lists, Some(&admin), b"");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["lists"][0]["name"], "dnc");
    assert_eq!(v["lists"][0]["purposes"], json!(["marketing"]));
    // The committed upload takes no more rows, and no second commit: a conflict with
    // the list's state (409, as the document says), not a malformed request.
    let (st, v) = s.post(&rows, Some(&admin), json!({"phones": [NUMBER]}));
    assert_eq!((st, code(&v)), (409, "conflict"), "{v}");
    let (st, v) = s.post(&commit, Some(&admin), json!({"purposes": ["marketing"]}));
    assert_eq!((st, code(&v)), (409, "conflict"), "{v}");
    let (st, v) = s.call("DELETE", &format!("{lists}/dnc"), Some(&admin), b"");
    assert_eq!((st, v["dropped"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(lookup(listed, "marketing"), 200);
    let (st, v) = s.call("DELETE", &format!("{lists}/dnc"), Some(&admin), b"");
    assert_eq!((st, code(&v)), (404, "not_found"));
    let log = s.stop();
    assert!(
        !log.contains(listed) && !log.contains("7400123959"),
        "{log}"
    );
}

/// Issue 11: the path's tenant and record id are parsed once, at the edge. A tenant
/// name of the wrong form is refused as the policy refuses another tenant's name (403,
/// before the body is parsed: it was a 400 for a malformed body), a malformed record
/// id with the vault's own code; neither is repeated.
#[test]
fn path_values_are_parsed_once_at_the_edge() {
    let env = Env::new();
    env.init();
    env.ok(&["tenant", "create", "shop", "--purposes", "otp"]);
    let reader = env.token(&["--tenant", "shop", "--role", "reader", "--purposes", "otp"]);
    let writer = env.token(&["--tenant", "shop", "--role", "writer"]);
    let s = env.serve_unsealed(&[]);
    let tk = Some(reader.as_str());
    for bad in ["Shop", "%2B447700900123", "a%2Fb"] {
        let (st, v) = s.call(
            "POST",
            &format!("/v1/tenants/{bad}/lookup"),
            tk,
            b"{garbage",
        );
        assert_eq!((st, code(&v)), (403, "forbidden"), "{bad}: {v}");
        assert!(!v.to_string().contains("7700900123"), "{v}");
        let path = format!("/v1/tenants/{bad}/numbers/{}?purpose=otp", "ab".repeat(16));
        let (st, v) = s.call("GET", &path, tk, b"");
        assert_eq!((st, code(&v)), (403, "forbidden"), "{bad}: {v}");
    }
    let (st, v) = s.call(
        "GET",
        "/v1/tenants/shop/numbers/447700900123?purpose=otp",
        tk,
        b"",
    );
    assert_eq!((st, code(&v)), (400, "invalid_record_id"), "{v}");
    assert!(!v.to_string().contains("7700900123"), "{v}");
    // The policy's refusal comes first, as when the vault parsed the id.
    let (st, v) = s.call("DELETE", "/v1/tenants/shop/numbers/xyz", tk, b"");
    assert_eq!((st, code(&v)), (403, "forbidden"), "{v}");
    let (st, v) = s.post(
        "/v1/tenants/shop/verify",
        Some(&writer),
        json!({"id": "xyz"}),
    );
    assert_eq!((st, code(&v)), (400, "invalid_record_id"), "{v}");
}
