//! Crash safety: the real binary is killed with SIGKILL at random points while it
//! writes — `phonevault serve` during batch ingest over the socket, and `phonevault
//! import` mid-file — then restarted; every write it acknowledged must be present
//! and readable, `phonevault audit verify` must accept the audit chain, and
//! `phonevault check` must find no half-written record (each one decrypts, and index
//! and expiry entries match the records exactly). And `phonevault serve` in its
//! default `--audit-sync process` mode is killed under lookup load: every lookup it
//! answered has its entry in the verified chain after the restart.
//!
//! What this shows and what it does not: SIGKILL stops the process between any two
//! instructions, so these tests show that every write is atomic (a record and its
//! index entries appear together or not at all) and that nothing is acknowledged
//! before it was handed to the kernel in order. They do not show durability across
//! power loss or a kernel crash: the kernel's page cache survives a killed process,
//! so an fsync that is missing or misordered would go unnoticed here. That needs
//! fault injection below the filesystem (e.g. dm-log-writes), which CI lacks.
//!
//! Each round's seed is printed; `PV_CRASH_SEED` replays a run's choices (the
//! timing of the kill still varies), `PV_CRASH_ROUNDS` changes the round count.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use common::{Client, Env, Server};

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const PASS: &str = "crash test passphrase, not a real one";
const PURPOSES: [&str; 3] = ["otp", "support", "marketing"];
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/numbers-2k.csv");
/// The import test reads this many rows of the benchmark data: four import chunks of
/// 1000 records, so a kill can land before, between or inside commits.
const IMPORT_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/data/numbers-200k.csv");
const IMPORT_ROWS: usize = 4000;

fn rounds(default: u32) -> u32 {
    std::env::var("PV_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rng(test: &str) -> rand::rngs::StdRng {
    let seed = std::env::var("PV_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("{test}: PV_CRASH_SEED={seed}");
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// The numbers of the test data file, as written there (various formats).
fn numbers() -> Vec<String> {
    std::fs::read_to_string(DATA)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// The crash checks.
impl Env {
    /// `init`, the auditors' K0, and `tenants` with [`PURPOSES`].
    fn init_with(&self, tenants: &[&str]) {
        self.init();
        // The auditors' K0, to verify the audit chain after every crash.
        let k0 = self.k0();
        self.ok(&["audit", "key", "export", "--out", k0.to_str().unwrap()]);
        for t in tenants {
            self.ok(&["tenant", "create", t, "--purposes", &PURPOSES.join(",")]);
        }
    }

    fn k0(&self) -> PathBuf {
        self.path("k0.hex")
    }

    /// The vault after a crash: the audit chain verifies with K0 (no link half
    /// written, none lost that a write's batch carried), and the integrity check
    /// passes. Returns the number of records.
    fn check(&self, round: u32) -> u64 {
        let o = self.run(&["audit", "verify", "--key", self.k0().to_str().unwrap()]);
        assert!(
            o.status.success(),
            "round {round}: the audit chain does not verify after SIGKILL:\n{}",
            String::from_utf8_lossy(&o.stdout)
        );
        let o = self.run(&["--json", "check"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "round {round}: integrity check failed after SIGKILL:\n{out}"
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        v["records"].as_u64().unwrap()
    }

    /// The set of numbers (E.164) of `tenant` readable for `purpose`.
    fn export(&self, tenant: &str, purpose: &str) -> BTreeSet<String> {
        let out = self.path("export.csv");
        self.ok(&[
            "export",
            "--tenant",
            tenant,
            "--purpose",
            purpose,
            "--reveal",
            "--out",
            out.to_str().unwrap(),
        ]);
        let text = std::fs::read_to_string(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        text.lines()
            .skip(1)
            .map(|l| l.split_once(',').unwrap().1.to_owned())
            .collect()
    }
}

// ---------------------------------------------------------------------------------
// the server

/// Starts `serve` sealed, waits for its socket, and unseals it over the socket.
fn start_server(env: &Env) -> Server {
    let s = env.serve_sealed(&["--lookup-rate", "0", "--write-rate", "0"]);
    let (status, v) = s
        .try_post("/v1/sys/unseal", None, &json!({ "passphrase": PASS }))
        .unwrap();
    assert_eq!(status, 200, "unseal: {v}");
    s
}

fn token(env: &Env, role: &str) -> String {
    let v: Value = serde_json::from_str(&env.ok(&[
        "--json", "token", "create", "--tenant", "shop", "--role", role,
    ]))
    .unwrap();
    v["token"].as_str().unwrap().to_owned()
}

/// Sends batches until the server stops answering; reports each acknowledged batch
/// on `acked` as (number, purpose) pairs.
fn ingest(
    client: Client,
    writer: String,
    batches: Vec<(Vec<String>, &'static str)>,
    acked: mpsc::Sender<Vec<(String, &'static str)>>,
) {
    for (numbers, purpose) in batches {
        let items: Vec<Value> = numbers
            .iter()
            .map(|n| json!({ "phone": n, "consents": [purpose] }))
            .collect();
        let body = json!({ "items": items, "source": "crash-test" });
        let Ok((status, v)) =
            client.try_post("/v1/tenants/shop/numbers/batch", Some(&writer), &body)
        else {
            return;
        };
        assert_eq!(status, 200, "batch refused: {}", v["error"]);
        let ok: Vec<(String, &'static str)> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            // A writer without detail gets `accepted` for each stored item.
            .filter(|r| r["status"] == "ok" || r["status"] == "accepted")
            .map(|r| {
                (
                    numbers[r["index"].as_u64().unwrap() as usize].clone(),
                    purpose,
                )
            })
            .collect();
        if acked.send(ok).is_err() {
            return;
        }
    }
}

/// Every acknowledged (number, purpose) is found by a lookup for that purpose.
fn assert_readable(
    client: &Client,
    reader: &str,
    acked: &HashSet<(String, &'static str)>,
    round: u32,
) {
    let mut missing = 0;
    for (n, purpose) in acked {
        let (status, v) = client
            .try_post(
                "/v1/tenants/shop/lookup",
                Some(reader),
                &json!({ "phone": n, "purpose": purpose }),
            )
            .unwrap();
        if status != 200 {
            missing += 1;
            eprintln!(
                "round {round}: an acknowledged number is not readable: {status} {}",
                v["error"]["code"]
            );
        }
    }
    assert_eq!(
        missing,
        0,
        "round {round}: {missing} of {} acknowledged writes lost",
        acked.len()
    );
}

#[test]
fn server_killed_during_batch_ingest_loses_no_acknowledged_write() {
    let mut rng = rng("server");
    let env = Env::with_pass(PASS);
    env.init_with(&["shop"]);
    let writer = token(&env, "writer");
    let reader = token(&env, "reader");
    let numbers = numbers();
    let mut cursor = 0usize;
    let mut all_acked: HashSet<(String, &'static str)> = HashSet::new();
    let mut last_round: HashSet<(String, &'static str)> = HashSet::new();
    let mut total_batches = 0u32;
    for round in 0..rounds(20) {
        let server = start_server(&env);
        assert_readable(&server, &reader, &last_round, round);
        // The same numbers come back with other purposes in later rounds, so
        // updates (merges) are killed as well as creations.
        let purpose = PURPOSES[round as usize % PURPOSES.len()];
        let mut batches = Vec::new();
        for _ in 0..40 {
            let size = rng.gen_range(1..=40);
            let chunk: Vec<String> = (0..size)
                .map(|i| numbers[(cursor + i) % numbers.len()].clone())
                .collect();
            cursor = (cursor + size) % numbers.len();
            batches.push((chunk, purpose));
        }
        let (tx, rx) = mpsc::channel();
        let sender = {
            let (client, writer) = (server.client(), writer.clone());
            std::thread::spawn(move || ingest(client, writer, batches, tx))
        };
        // Kill after a random number of acknowledged batches, a random time into the
        // next: the point is chosen by progress, not by wall clock, so a slow machine
        // still kills mid-ingest.
        let wait_for = rng.gen_range(0..8);
        last_round.clear();
        for _ in 0..wait_for {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(ok) => last_round.extend(ok),
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..20_000)));
        server.kill();
        sender.join().unwrap();
        last_round.extend(rx.try_iter().flatten());
        total_batches += wait_for;
        all_acked.extend(last_round.iter().cloned());
        env.check(round);
    }
    // Finally every write acknowledged in any round is still there.
    let server = start_server(&env);
    assert_readable(&server, &reader, &all_acked, rounds(20));
    server.kill();
    env.check(rounds(20));
    eprintln!(
        "server: {} acknowledged writes over {} rounds, at least {total_batches} batches",
        all_acked.len(),
        rounds(20)
    );
    assert!(!all_acked.is_empty());
}

/// Sends lookups of `numbers` (each once, in order) until the server stops answering;
/// returns the record ids of the lookups answered with the record.
fn look_up(
    client: Client,
    reader: String,
    numbers: Vec<String>,
    progress: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Vec<String> {
    let mut answered = Vec::new();
    for n in numbers {
        let Ok((status, v)) = client.try_post(
            "/v1/tenants/shop/lookup",
            Some(&reader),
            &json!({ "phone": n, "purpose": "otp" }),
        ) else {
            break;
        };
        assert_eq!(status, 200, "lookup refused: {}", v["error"]);
        answered.push(v["id"].as_str().unwrap().to_owned());
        progress.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    answered
}

#[test]
fn server_killed_under_lookup_load_loses_no_answered_lookups_audit_entry() {
    const THREADS: usize = 4;
    let mut rng = rng("lookups");
    let env = Env::with_pass(PASS);
    env.init_with(&["shop"]);
    let writer = token(&env, "writer");
    let reader = token(&env, "reader");
    // Every number once, so that within a round each lookup names its own record.
    let server = start_server(&env);
    let numbers = numbers();
    let items: Vec<Value> = numbers
        .iter()
        .map(|n| json!({ "phone": n, "consents": ["otp"] }))
        .collect();
    let (status, v) = server
        .try_post(
            "/v1/tenants/shop/numbers/batch",
            Some(&writer),
            &json!({ "items": items }),
        )
        .unwrap();
    assert_eq!(status, 200, "{v}");
    let stored: Vec<String> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        // A writer without detail gets `accepted` for each stored item.
        .filter(|r| r["status"] == "ok" || r["status"] == "accepted")
        .map(|r| numbers[r["index"].as_u64().unwrap() as usize].clone())
        .collect();
    server.kill();
    let per_thread = stored.len() / THREADS;
    assert!(per_thread > 300, "{}", stored.len());
    let rounds = rounds(100);
    // answered[round] = record ids of the lookups answered in that round
    let mut answered: Vec<Vec<String>> = Vec::new();
    for _ in 0..rounds {
        // Start-up (sealed, then unsealed over the socket) folds what the journal of
        // the killed server holds, then logs `unseal`: the chain's round marker.
        let server = start_server(&env);
        let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let slice = stored[t * per_thread..(t + 1) * per_thread].to_vec();
                let (client, reader) = (server.client(), reader.clone());
                let progress = progress.clone();
                std::thread::spawn(move || look_up(client, reader, slice, progress))
            })
            .collect();
        // Killed by progress, not by wall clock (the first lookup loads the phone
        // metadata): after some answered lookups, a random time into the next ones.
        let wait_for = rng.gen_range(1..40);
        let start = Instant::now();
        while progress.load(std::sync::atomic::Ordering::SeqCst) < wait_for
            && start.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..5_000)));
        server.kill();
        let got: Vec<String> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        answered.push(got);
    }
    // The last round's journal is folded by the next open.
    env.ok(&["tenant", "list"]);
    let mut marks = Vec::new();
    for line in env
        .ok(&["audit", "export", "--key", env.k0().to_str().unwrap()])
        .lines()
    {
        let e: Value = serde_json::from_str(line).unwrap();
        marks.push((
            e["action"].as_str().unwrap().to_owned(),
            e["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect::<Vec<_>>(),
        ));
    }
    // Split the chain at the unseals: [setup] [round 0] [round 1] ...
    let mut rounds_logged: Vec<HashSet<String>> = Vec::new();
    for (action, records) in marks {
        match action.as_str() {
            "unseal" => rounds_logged.push(HashSet::new()),
            "find" => {
                if let Some(r) = rounds_logged.last_mut() {
                    r.extend(records);
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        rounds_logged.len(),
        rounds as usize + 1,
        "one unseal per start"
    );
    let mut total = 0;
    for (round, got) in answered.iter().enumerate() {
        let logged = &rounds_logged[round + 1];
        let lost: Vec<&String> = got.iter().filter(|id| !logged.contains(*id)).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} of {} answered lookups have no entry in the chain",
            lost.len(),
            got.len()
        );
        total += got.len();
    }
    eprintln!("lookups: {total} answered over {rounds} SIGKILLs, every one in the chain");
    assert!(total > rounds as usize, "too little load: {total} lookups");
}

// ---------------------------------------------------------------------------------
// the CLI import

#[test]
fn import_killed_midway_leaves_a_consistent_vault_that_a_rerun_completes() {
    let mut rng = rng("import");
    let env = Env::with_pass(PASS);
    env.init_with(&["reference"]);
    let rejects = env.path("rejects.csv");
    let data = env.path("numbers.csv");
    let text = std::fs::read_to_string(IMPORT_DATA).unwrap();
    let rows: Vec<&str> = text.lines().take(IMPORT_ROWS + 1).collect();
    std::fs::write(&data, rows.join("\n") + "\n").unwrap();
    let import = |tenant: &str| {
        let mut c = env.cmd(&[
            "import",
            "--tenant",
            tenant,
            "--consent",
            "otp",
            "--rejects",
        ]);
        c.arg(&rejects)
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    // A complete import to compare with, timed to place the kills.
    let start = Instant::now();
    let o = import("reference").output().unwrap();
    eprint!("{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success());
    let full = start.elapsed();
    let expected = env.export("reference", "otp");
    assert!(expected.len() > 3900);
    // Kills land between the end of start-up and the end of a full import.
    let start = Instant::now();
    env.ok(&["tenant", "list"]);
    let startup = start.elapsed().as_micros() as u64;
    let full = (full.as_micros() as u64).max(startup + 1);
    for round in 0..rounds(5) {
        let tenant = format!("t{round}");
        env.ok(&["tenant", "create", &tenant, "--purposes", "otp"]);
        let mut child = import(&tenant).spawn().unwrap();
        let delay = rng.gen_range(startup..full);
        std::thread::sleep(Duration::from_micros(delay));
        child.kill().unwrap();
        let o = child.wait_with_output().unwrap();
        eprint!("{}", String::from_utf8_lossy(&o.stderr));
        // Whatever the killed import committed is whole (the check), and no more
        // than the file holds; the rerun adds the rest.
        let before = expected.len() as u64 * (u64::from(round) + 1);
        let partial = env.check(round) - before;
        assert!(
            partial <= expected.len() as u64,
            "round {round}: more records than the file holds"
        );
        let o = import(&tenant).output().unwrap();
        eprint!("{}", String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success(), "round {round}: rerun failed");
        env.check(round);
        let done = env.export(&tenant, "otp");
        assert_eq!(
            done.len(),
            expected.len(),
            "round {round}: {} of {} numbers after the rerun",
            done.len(),
            expected.len()
        );
        assert!(
            done == expected,
            "round {round}: the rerun's numbers differ from a clean import's"
        );
        eprintln!(
            "import round {round}: killed after {delay} us with {partial} of {} numbers committed",
            expected.len()
        );
    }
}
