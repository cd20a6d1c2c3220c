//! The CLI as a client of a running server: the real binary, once in-process on one
//! vault and once through `phonevault serve`'s socket on a twin vault, must print the
//! same output with the same exit codes; refusals through the socket say what to do.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use common::{Env, Server};

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

const NUMBER: &str = "+447400123958";
/// The national significant number, to check that no message holds the number.
const NATIONAL: &str = "7400123958";

/// A vault in its own directory; commands run in that directory, so that relative
/// paths (import files, rejects files) print the same for two vaults.
impl Env {
    fn cmd_as(&self, token: Option<&str>, args: &[&str]) -> Command {
        let mut c = self.cmd(args);
        c.current_dir(&self.dir);
        if let Some(t) = token {
            c.env("PHONEVAULT_TOKEN", t);
        }
        c
    }

    fn run_as(&self, token: Option<&str>, args: &[&str]) -> Output {
        common::run(self.cmd_as(token, args))
    }

    fn ok_as(&self, token: Option<&str>, args: &[&str]) -> String {
        common::ok(self.cmd_as(token, args), &args)
    }

    /// Starts `serve` sealed (no unlock source) and waits for the socket.
    fn serve(&self) -> Server {
        let mut c = self.cmd_as(None, &["serve", "--access-log"]);
        c.env_remove("PHONEVAULT_PASSPHRASE");
        Server::spawn(c, self.socket(), self.path("serve.log"))
    }
}

/// Two vaults made alike: tenants `shop` (with a last-4 index) and `other`.
fn vault() -> Env {
    let env = Env::new();
    env.ok_as(
        None,
        &["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"],
    );
    env.ok_as(
        None,
        &[
            "tenant",
            "create",
            "shop",
            "--purposes",
            "otp,support,marketing",
            "--last4-index",
            "--expected-rows",
            "1000",
        ],
    );
    env.ok_as(None, &["tenant", "create", "other", "--purposes", "otp"]);
    env
}

/// Output with what differs between two vaults replaced: record ids, token ids,
/// tokens and times.
fn normalize(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let is_hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    while i < chars.len() {
        let rest: String = chars[i..chars.len().min(i + 20)].iter().collect();
        if rest.len() == 20 && is_time(&rest) {
            out.push_str("<time>");
            i += 20;
            continue;
        }
        if chars[i..].starts_with(&['p', 'v', 't', '_']) {
            out.push_str("<token>");
            i += 4;
            while i < chars.len() && is_hex(chars[i]) {
                i += 1;
            }
            continue;
        }
        let boundary = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
        if boundary && is_hex(chars[i]) {
            let mut j = i;
            while j < chars.len() && is_hex(chars[j]) {
                j += 1;
            }
            let ends = j == chars.len() || !chars[j].is_ascii_alphanumeric();
            if ends && (j - i == 32 || j - i == 16) {
                out.push_str(if j - i == 32 { "<id>" } else { "<token-id>" });
                i = j;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// `2026-11-29T07:14:48Z`
fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    digits.iter().all(|&k| b[k].is_ascii_digit())
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
}

/// What a user sees: exit code, stdout and stderr, normalized.
fn seen(out: &Output) -> (Option<i32>, String, String) {
    (
        out.status.code(),
        normalize(&String::from_utf8_lossy(&out.stdout)),
        normalize(&String::from_utf8_lossy(&out.stderr)),
    )
}

/// The pair under test: `local` runs in-process, `remote` goes through its server.
struct Twins {
    local: Env,
    remote: Env,
    /// The remote tenant token (admin of `shop`, with the reveal right).
    token: String,
    _server: Server,
}

impl Twins {
    fn new() -> Twins {
        let local = vault();
        let remote = vault();
        let token = remote.token(&["--tenant", "shop", "--role", "admin", "--reveal"]);
        let server = remote.serve();
        // Unseal through the CLI: the passphrase comes from PHONEVAULT_PASSPHRASE.
        let out = remote.ok_as(None, &["--json", "unseal"]);
        assert_eq!(out.trim(), r#"{"sealed":false}"#);
        Twins {
            local,
            remote,
            token,
            _server: server,
        }
    }

    /// Runs `args` on both (`{id}` replaced by each vault's `id`), checks that they
    /// look the same, and returns the local output.
    fn same(&self, args: &[&str], ids: Option<(&str, &str)>) -> Output {
        let with = |id: Option<&str>| -> Vec<String> {
            args.iter()
                .map(|a| match id {
                    Some(id) => a.replace("{id}", id),
                    None => (*a).to_owned(),
                })
                .collect()
        };
        let la = with(ids.map(|i| i.0));
        let ra = with(ids.map(|i| i.1));
        let la: Vec<&str> = la.iter().map(String::as_str).collect();
        let ra: Vec<&str> = ra.iter().map(String::as_str).collect();
        let l = self.local.run_as(None, &la);
        let r = self.remote.run_as(Some(&self.token), &ra);
        assert_eq!(
            seen(&l),
            seen(&r),
            "{args:?}: in-process vs through the socket"
        );
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert!(!stderr.contains(NATIONAL), "a number on stderr: {stderr}");
        l
    }

    /// The record id of `NUMBER` in each vault.
    fn ids(&self) -> (String, String) {
        let id = |env: &Env, token: Option<&str>| {
            let out = env.ok_as(
                token,
                &[
                    "--json",
                    "find",
                    "--tenant",
                    "shop",
                    "--phone",
                    NUMBER,
                    "--purpose",
                    "otp",
                ],
            );
            let v: Value = serde_json::from_str(&out).unwrap();
            v["id"].as_str().unwrap().to_owned()
        };
        (id(&self.local, None), id(&self.remote, Some(&self.token)))
    }
}

fn write_import_file(env: &Env) {
    // The fixture's 2,000 numbers, with invalid rows, a row the CSV reader cannot
    // read (not UTF-8), repeats, and NUMBER (opted out of everything by then) both
    // in the first and the second chunk of 1,000 rows.
    let fixture = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/numbers-2k.csv"),
    )
    .unwrap();
    let mut bytes = b"name,phone\n".to_vec();
    for (i, line) in fixture.lines().skip(1).enumerate() {
        let field = match i {
            3 => "not a number".to_owned(),
            10 | 1500 => NUMBER.to_owned(),
            777 => "+44".to_owned(),
            1200 => "0".repeat(300),
            _ => line.to_owned(),
        };
        bytes.extend_from_slice(format!("row{i},\"{field}\"\n").as_bytes());
        if i == 50 {
            bytes.extend_from_slice(b"bad,\"\xff\xfe\"\n");
        }
        if i == 60 {
            bytes.extend_from_slice(b"repeat,\"+596596542555\"\n");
        }
    }
    std::fs::write(env.dir.join("in.csv"), bytes).unwrap();
}

#[test]
fn commands_through_the_socket_print_what_they_print_in_process() {
    let t = Twins::new();
    let shop = ["--tenant", "shop"];
    let with = |a: &[&'static str]| -> Vec<&'static str> {
        let mut v = a.to_vec();
        v.extend_from_slice(&shop);
        v
    };

    // add: created, unchanged, merged, national with a region, invalid.
    for json in [false, true] {
        let j: &[&str] = if json { &["--json"] } else { &[] };
        let mut a = j.to_vec();
        a.extend(with(&[
            "add",
            "--phone",
            "+44 7400 123958",
            "--consent",
            "otp",
            "--source",
            "signup",
        ]));
        t.same(&a, None);
    }
    t.same(
        &with(&[
            "add",
            "--phone",
            "07400 123958",
            "--region",
            "GB",
            "--consent",
            "otp,marketing",
        ]),
        None,
    );
    let out = t.same(&with(&["add", "--phone", "12", "--consent", "otp"]), None);
    assert_eq!(out.status.code(), Some(1));
    t.same(
        &with(&["add", "--phone", NUMBER, "--consent", "nope"]),
        None,
    );

    // find: masked, revealed, by last 4 digits, not consented (exit 3), invalid.
    for json in [false, true] {
        for reveal in [false, true] {
            let mut a = if json { vec!["--json"] } else { vec![] };
            a.extend(with(&["find", "--phone", NUMBER, "--purpose", "otp"]));
            if reveal {
                a.push("--reveal");
            }
            let out = t.same(&a, None);
            assert_eq!(out.status.code(), Some(0));
        }
        let mut a = if json { vec!["--json"] } else { vec![] };
        a.extend(with(&[
            "find",
            "--last4",
            "3958",
            "--country-code",
            "44",
            "--purpose",
            "marketing",
        ]));
        t.same(&a, None);
    }
    let out = t.same(
        &with(&["find", "--phone", NUMBER, "--purpose", "support"]),
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    let out = t.same(
        &with(&[
            "find",
            "--last4",
            "0000",
            "--country-code",
            "44",
            "--purpose",
            "otp",
        ]),
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    t.same(
        &with(&["find", "--phone", "+44 12", "--purpose", "otp"]),
        None,
    );

    // get and delete by id.
    let (lid, rid) = t.ids();
    let ids = Some((lid.as_str(), rid.as_str()));
    for json in [false, true] {
        let mut a = if json { vec!["--json"] } else { vec![] };
        a.extend(with(&["get", "{id}", "--purpose", "otp"]));
        t.same(&a, ids);
    }
    let out = t.same(&with(&["get", "{id}", "--purpose", "support"]), ids);
    assert_eq!(out.status.code(), Some(3));
    t.same(&with(&["get", "not-an-id", "--purpose", "otp"]), None);

    // consent, opt-out, verify.
    t.same(
        &with(&[
            "consent",
            "grant",
            "--phone",
            NUMBER,
            "--purpose",
            "support",
            "--source",
            "call",
        ]),
        None,
    );
    for _ in 0..2 {
        t.same(
            &with(&[
                "consent",
                "withdraw",
                "--phone",
                NUMBER,
                "--purpose",
                "marketing",
            ]),
            None,
        );
    }
    t.same(
        &with(&[
            "--json",
            "consent",
            "grant",
            "--id",
            "{id}",
            "--purpose",
            "otp",
        ]),
        ids,
    );
    t.same(&with(&["verify", "--id", "{id}"]), ids);
    t.same(&with(&["--json", "verify", "--phone", NUMBER]), None);
    t.same(
        &with(&["opt-out", "--phone", NUMBER, "--purpose", "support"]),
        None,
    );
    for _ in 0..2 {
        t.same(&with(&["opt-out", "--phone", NUMBER, "--all"]), None);
    }
    t.same(
        &with(&["find", "--phone", NUMBER, "--purpose", "otp"]),
        None,
    );

    // import: new, merged, unchanged, rejected (invalid, unreadable, too long) and
    // suppressed rows, in the same order in the rejects file; then again, in JSON.
    write_import_file(&t.local);
    write_import_file(&t.remote);
    let import = with(&[
        "import",
        "--consent",
        "otp",
        "--region",
        "GB",
        "--column",
        "phone",
        "--source",
        "crm",
        "in.csv",
    ]);
    let out = t.same(&import, None);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rejected"),
        "{out:?}"
    );
    let rejects = |env: &Env| std::fs::read_to_string(env.dir.join("in.csv.rejects.csv")).unwrap();
    assert_eq!(rejects(&t.local), rejects(&t.remote));
    for code in ["not_a_number", "csv", "input_too_long", "suppressed"] {
        assert!(rejects(&t.local).contains(code), "{code} missing");
    }
    let mut again = vec!["--json"];
    again.extend(import.iter().copied());
    let out = t.same(&again, None);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["created"], 0);
    assert_eq!(v["suppressed"], 2);
    assert_eq!(rejects(&t.local), rejects(&t.remote));
    // Refusals of the whole file.
    t.same(
        &with(&["import", "--consent", "otp", "--column", "tel", "in.csv"]),
        None,
    );
    t.same(&with(&["import", "--consent", "nope", "in.csv"]), None);
    t.same(
        &with(&["import", "--consent", "otp", "--region", "XX", "in.csv"]),
        None,
    );
    t.same(&with(&["import", "--consent", "otp", "missing.csv"]), None);

    // stats: text, CSV, JSON; refused parameters.
    t.same(&with(&["stats", "--min-group", "2"]), None);
    t.same(&with(&["stats", "--by", "country", "--csv"]), None);
    t.same(&with(&["--json", "stats", "--by", "type"]), None);
    t.same(&with(&["stats", "--min-group", "1"]), None);
    t.same(&with(&["stats", "--epsilon", "0"]), None);
    t.same(&with(&["stats", "--epsilon", "inf"]), None);

    // erase, then delete (found, then gone).
    t.same(&with(&["erase", "--phone", "+596596542555"]), None);
    t.same(
        &with(&["--json", "erase", "--phone", "+596596542555"]),
        None,
    );
    let out = t.same(&with(&["delete", "{id}"]), ids);
    assert_eq!(out.status.code(), Some(0));
    let out = t.same(&with(&["--json", "delete", "{id}"]), ids);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn tokens_and_seal_through_the_socket() {
    let local = vault();
    let remote = vault();
    let admin = remote.token(&["--admin"]);
    let _server = remote.serve();
    remote.ok_as(None, &["unseal"]);

    // token create: the same output, and the token works.
    let create = [
        "--json",
        "token",
        "create",
        "--tenant",
        "shop",
        "--role",
        "reader",
        "--purposes",
        "otp",
        "--ttl",
        "30d",
    ];
    let l = local.run_as(None, &create);
    let r = remote.run_as(Some(&admin), &create);
    assert_eq!(seen(&l), seen(&r));
    let v: Value = serde_json::from_slice(&r.stdout).unwrap();
    let reader = v["token"].as_str().unwrap().to_owned();
    let id = v["id"].as_str().unwrap().to_owned();
    let add = [
        "add",
        "--tenant",
        "shop",
        "--phone",
        NUMBER,
        "--consent",
        "otp",
    ];
    let writer = {
        let out = remote.ok_as(
            Some(&admin),
            &["token", "create", "--tenant", "shop", "--role", "writer"],
        );
        out.trim().to_owned()
    };
    remote.ok_as(Some(&writer), &add);
    local.ok_as(None, &add);
    let find = [
        "find",
        "--tenant",
        "shop",
        "--phone",
        NUMBER,
        "--purpose",
        "otp",
    ];
    assert_eq!(
        normalize(&remote.ok_as(Some(&reader), &find)),
        normalize(&local.ok_as(None, &find))
    );
    // Text output: the token on stdout, its id on stderr.
    let text = ["token", "create", "--tenant", "other", "--role", "auditor"];
    assert_eq!(
        seen(&local.run_as(None, &text)),
        seen(&remote.run_as(Some(&admin), &text))
    );
    // Refusals as in-process: unknown role, bad ttl, unknown tenant.
    for bad in [
        &["token", "create", "--tenant", "shop", "--role", "boss"][..],
        &[
            "token", "create", "--tenant", "shop", "--role", "reader", "--ttl", "soon",
        ],
        &["token", "create", "--tenant", "nope", "--role", "reader"],
        &[
            "token",
            "create",
            "--tenant",
            "shop",
            "--role",
            "reader",
            "--purposes",
            "nope",
        ],
    ] {
        assert_eq!(
            seen(&local.run_as(None, bad)),
            seen(&remote.run_as(Some(&admin), bad))
        );
    }
    // A tenant token may not manage tokens.
    let out = remote.run_as(Some(&reader), &["token", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("vault-wide admin token"));

    // token list and revoke.
    let list = remote.ok_as(Some(&admin), &["token", "list"]);
    assert_eq!(list.lines().count(), 4, "{list}");
    assert!(list.contains(&format!("{id}  tenant: shop  role: reader  purposes: otp")));
    let out = remote.ok_as(Some(&admin), &["--json", "token", "revoke", &id]);
    assert_eq!(out.trim(), r#"{"revoked":1}"#);
    let out = remote.run_as(Some(&admin), &["token", "revoke", &id]);
    let l = local.run_as(None, &["token", "revoke", &id]);
    assert_eq!(seen(&out), seen(&l));
    let out = remote.run_as(Some(&reader), &find);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the API token"));

    // seal: data calls answer sealed; unseal opens the vault again.
    let out = remote.run_as(Some(&writer), &["seal"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("vault-wide admin token"));
    let out = remote.ok_as(Some(&admin), &["--json", "seal"]);
    assert_eq!(out.trim(), r#"{"sealed":true}"#);
    let out = remote.ok_as(Some(&admin), &["seal"]);
    assert!(out.contains("already sealed"), "{out}");
    let out = remote.run_as(Some(&writer), &add);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the vault is sealed: run `phonevault unseal`"),
        "{err}"
    );
    // A wrong passphrase is refused with the in-process message.
    let wrong = remote
        .cmd_as(None, &["unseal"])
        .env("PHONEVAULT_PASSPHRASE", "wrong")
        .output()
        .unwrap();
    let local_wrong = local
        .cmd_as(
            None,
            &[
                "find",
                "--tenant",
                "shop",
                "--phone",
                NUMBER,
                "--purpose",
                "otp",
            ],
        )
        .env("PHONEVAULT_PASSPHRASE", "wrong")
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    assert_eq!(wrong.stderr, local_wrong.stderr);
    let out = remote.ok_as(None, &["unseal"]);
    assert!(out.starts_with("unsealed"), "{out}");
    remote.ok_as(Some(&writer), &add);

    // revoke --all through the socket (incident response), the caller's token included.
    let out = remote.ok_as(Some(&admin), &["token", "revoke", "--all"]);
    assert_eq!(out.trim(), "revoked 3 token(s)");
    let out = remote.run_as(Some(&admin), &["token", "list"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn refusals_through_the_socket_say_what_to_do() {
    let env = vault();
    let shop = env.token(&["--tenant", "shop", "--role", "admin"]);
    let other = env.token(&["--tenant", "other", "--role", "admin"]);
    let reader = env.token(&["--tenant", "shop", "--role", "reader"]);
    let token_file = env.dir.join("shop.token");
    std::fs::write(&token_file, format!("{shop}\n")).unwrap();
    std::fs::write(env.dir.join("empty.token"), "\n").unwrap();

    // No server: seal and unseal say so; a forced --socket that does not answer too.
    for c in ["seal", "unseal"] {
        let out = env.run_as(None, &[c]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no phonevault server answers at"), "{err}");
        assert!(err.contains("phonevault.sock"), "{err}");
    }
    let add = [
        "add",
        "--tenant",
        "shop",
        "--phone",
        NUMBER,
        "--consent",
        "otp",
    ];
    let mut forced = vec!["--socket", "nowhere.sock"];
    forced.extend_from_slice(&add);
    let out = env.run_as(Some(&shop), &forced);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no phonevault server answers at nowhere.sock"),
        "{err}"
    );
    assert!(err.contains("leave out --socket"), "{err}");

    let _server = env.serve();
    env.ok_as(None, &["unseal"]);
    let check = |out: &Output, wanted: &str| {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(wanted), "wanted {wanted:?} in {err}");
        assert!(!err.contains("lock"), "{err}");
        assert!(!err.contains(NATIONAL), "{err}");
        assert!(out.stdout.is_empty());
    };

    // No token.
    let out = env.run_as(None, &add);
    check(
        &out,
        "needs an API token: pass --token-file FILE or set PHONEVAULT_TOKEN",
    );
    check(&out, &env.socket().display().to_string());
    // An empty token file, an unreadable one.
    let out = env.run_as(
        None,
        &[
            "--token-file",
            "empty.token",
            "find",
            "--tenant",
            "shop",
            "--phone",
            NUMBER,
            "--purpose",
            "otp",
        ],
    );
    check(&out, "empty.token does not hold an API token");
    let out = env.run_as(
        None,
        &[
            "--token-file",
            "missing.token",
            "verify",
            "--tenant",
            "shop",
            "--phone",
            NUMBER,
        ],
    );
    check(&out, "cannot read missing.token");
    // An unknown token.
    let out = env.run_as(Some(&format!("pvt_{}", "0".repeat(64))), &add);
    check(&out, "refused the API token (unknown, revoked or expired)");
    // Another tenant's token: refused, whether or not the record exists.
    let out = env.run_as(Some(&other), &add);
    check(&out, "this token is not valid for this tenant");
    // The wrong role.
    let out = env.run_as(Some(&reader), &add);
    check(&out, "role `reader` may not change records");
    // The token file works, and so does --socket given explicitly.
    let mut explicit = vec!["--token-file", "shop.token", "--socket"];
    let sock = env.socket().display().to_string();
    explicit.push(&sock);
    explicit.extend_from_slice(&add);
    let out = env.ok_as(None, &explicit);
    assert_eq!(out.trim().len(), 32, "{out}");

    // Commands without an API route name the socket and what to do.
    for (args, name) in [
        (&["tenant", "list"][..], "tenant list"),
        (
            &[
                "export",
                "--tenant",
                "shop",
                "--purpose",
                "otp",
                "--out",
                "x.csv",
            ],
            "export",
        ),
        (
            &["subject", "--tenant", "shop", "--phone", NUMBER],
            "subject",
        ),
        (&["key", "rotate", "--tenant", "shop"], "key rotate"),
        (&["compact"], "compact"),
        (&["audit", "checkpoint"], "audit"),
    ] {
        let out = env.run_as(Some(&shop), args);
        check(&out, &format!("`phonevault {name}` has no API route"));
        check(
            &out,
            &format!("a phonevault server holds this vault (socket {sock})"),
        );
        check(
            &out,
            "stop the server (SIGTERM), run the command, then start the server again",
        );
    }
    assert!(!env.dir.join("x.csv").exists());
}

#[test]
fn a_large_import_goes_in_several_batches_and_a_stale_socket_is_ignored() {
    let local = vault();
    let remote = vault();
    // A tenant admin holding every purpose gets the detailed answers the in-process
    // import prints (a writer gets `accepted` only: issue 13).
    let token = remote.token(&["--tenant", "shop", "--role", "admin"]);
    // A socket file nobody listens on (a crashed server): the CLI uses the vault.
    drop(std::os::unix::net::UnixListener::bind(remote.socket()).unwrap());
    assert!(remote.socket().exists());
    let add = [
        "add",
        "--tenant",
        "shop",
        "--phone",
        "+447400199999",
        "--consent",
        "otp",
    ];
    remote.ok_as(None, &add);
    local.ok_as(None, &add);

    // More rows than one batch holds, invalid ones in every chunk.
    let mut csv = String::from("phone\n");
    for i in 0..12_500u32 {
        if i % 997 == 0 {
            csv.push_str("+44 12\n");
        } else {
            csv.push_str(&format!("+4474001{:05}\n", i % 10_000));
        }
    }
    std::fs::write(local.dir.join("big.csv"), &csv).unwrap();
    std::fs::write(remote.dir.join("big.csv"), &csv).unwrap();
    let _server = remote.serve();
    remote.ok_as(None, &["unseal"]);
    let import = [
        "--json",
        "import",
        "--tenant",
        "shop",
        "--consent",
        "otp",
        "big.csv",
    ];
    let l = local.run_as(None, &import);
    let r = remote.run_as(Some(&token), &import);
    assert_eq!(seen(&l), seen(&r));
    let v: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["rows"], 12_500);
    assert_eq!(v["rejected"], 13);
    let rejects = |env: &Env| std::fs::read_to_string(env.dir.join("big.csv.rejects.csv")).unwrap();
    assert_eq!(rejects(&local), rejects(&remote));
    // The access log is written by a background thread every 100 ms.
    let batches = || {
        let log = std::fs::read_to_string(remote.dir.join("serve.log")).unwrap();
        let n = log
            .lines()
            .filter(|l| l.contains("POST /v1/tenants/shop/numbers/batch 200"))
            .count();
        (n, log)
    };
    let start = Instant::now();
    while batches().0 < 2 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (n, log) = batches();
    assert_eq!(n, 2, "{log}");
}

/// A writer's import through the socket is told counts without detail (issue 13): the
/// counts of every batch, and the rows the CLI rejected itself, add up to one summary.
#[test]
fn a_writers_import_adds_the_counts_of_every_batch_without_detail() {
    let remote = vault();
    let writer = remote.token(&["--tenant", "shop", "--role", "writer"]);
    let mut csv = String::from("phone\n");
    for i in 0..12_500u32 {
        if i % 997 == 0 {
            csv.push_str("+44 12\n");
        } else {
            csv.push_str(&format!("+4474001{:05}\n", i % 10_000));
        }
    }
    // Too long to be a number: rejected by the CLI, never sent.
    csv.push_str(&"7".repeat(300));
    csv.push('\n');
    std::fs::write(remote.dir.join("big.csv"), &csv).unwrap();
    let _server = remote.serve();
    remote.ok_as(None, &["unseal"]);
    let import = ["import", "--tenant", "shop", "--consent", "otp", "big.csv"];
    let mut json = vec!["--json"];
    json.extend(import);
    let out = remote.ok_as(Some(&writer), &json);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["rows"], 12_501, "{v}");
    assert_eq!(v["rejected"], 14, "{v}");
    assert_eq!(v["accepted"], 12_487, "{v}");
    assert!(v["rejects_file"]
        .as_str()
        .unwrap()
        .ends_with("big.csv.rejects.csv"));
    assert!(v.get("created").is_none(), "{v}");
    let text = remote.ok_as(Some(&writer), &import);
    assert!(
        text.starts_with("imported 12501 rows: 12487 accepted, 14 rejected (the server tells"),
        "{text}"
    );
    assert!(
        text.contains("rejected rows (line and reason) are in "),
        "{text}"
    );
}
