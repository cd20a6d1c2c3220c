//! Load benchmark of the socket API, against the real binary on a real socket, with the
//! HTTP floor measured in the same run.
//!
//! ```sh
//! cargo bench --locked --bench server_load     # SECONDS=10 per figure, RUNS=1, CONNECTIONS=16,64
//! RUNS=3 SECONDS=5 cargo bench --locked --bench server_load    # medians of three runs
//! QUICK=1 MODES=process cargo bench --locked --bench server_load # to profile: 20,000 numbers
//! ```
//!
//! 1. In-process import of benches/data/numbers-200k.csv (`phonevault import`): the baseline.
//! 2. The same numbers into a second vault through `POST .../numbers/batch` (10,000 a request).
//! 3. The HTTP floor: a bare hyper server (its own process, a 2-worker tokio runtime as
//!    the vault's server has on this machine) on a Unix socket, answering every request
//!    with a fixed 150-byte JSON body after reading the request body.
//! 4. `phonevault serve --audit-sync process|always|lag` on the second vault, one after
//!    the other. Each of 3 and 4 is driven by the same client (one thread per
//!    keep-alive connection sending lookups from benches/data/lookups-20k.csv) at each
//!    connection count for a fixed time: lookups/s, p50, p99, and the ratios to the floor.
//! 5. The server's peak resident memory (VmHWM), and its CPU time per lookup (user +
//!    system, from /proc): a figure the load of the rest of the machine barely moves.
//!
//! The client runs on the same machine and shares its cores with the server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use common::harness::{Env, Server};

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PASS: &str = "bench passphrase";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/data")
        .join(name)
}

/// A fresh vault `name` in `env`'s directory with tenant `shop` (purpose otp) and a
/// token of `role`.
fn vault(env: &Env, name: &str, role: &str) -> (Env, String) {
    let v = env.beside(name);
    // Cheap KDF: the benchmark measures the API, not unlocking.
    v.ok(&["init", "--kdf-memory-kib", "1024", "--kdf-iterations", "1"]);
    v.ok(&["tenant", "create", "shop", "--purposes", "otp"]);
    let token = v.token(&["--tenant", "shop", "--role", role]);
    (v, token)
}

fn serve(v: &Env, mode: &str) -> Server {
    // No rate limits: the benchmark measures the server, not the per-token budgets.
    let c = v.cmd(&[
        "serve",
        "--lookup-rate",
        "0",
        "--write-rate",
        "0",
        "--audit-sync",
        mode,
    ]);
    Server::spawn(c, v.socket(), v.vault.with_extension(format!("{mode}.log")))
}

/// The HTTP floor's fixed answer: 150 bytes of JSON, the size of a lookup's answer.
const FLOOR_BODY: &[u8] = br#"{"id":"0190f3a2c4e84b7a9d1e2f3a4b5c6d7e","phone":"+44 ... ... 4567","masked":true,"country_code":44,"purposes":["otp"],"created_at":1790000000,"x":1}"#;

/// Runs the floor server on `sock` until killed (in a child process of this bench).
fn floor_server(sock: &Path) {
    use http_body_util::BodyExt;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::UnixListener::bind(sock).unwrap();
        loop {
            let (io, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let _ = req.into_body().collect().await;
                        let resp = hyper::Response::builder()
                            .header("content-type", "application/json")
                            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                                FLOOR_BODY,
                            )))
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(resp)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
                    .await;
            });
        }
    });
}

fn start_floor(dir: &Path) -> Server {
    let sock = dir.join("floor.sock");
    let _ = std::fs::remove_file(&sock);
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.env("PHONEVAULT_FLOOR_SOCKET", &sock);
    Server::spawn(c, sock, dir.join("floor.log"))
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    w: UnixStream,
    r: BufReader<UnixStream>,
}

impl Conn {
    fn new(sock: &Path) -> Conn {
        let s = UnixStream::connect(sock).unwrap();
        Conn {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    fn post(&mut self, path: &str, token: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: pv\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        self.w.write_all(&req).unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut len = 0usize;
        loop {
            line.clear();
            self.r.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        self.r.read_exact(&mut body).unwrap();
        (status, body)
    }
}

fn phones(file: &str) -> Vec<String> {
    let mut r = csv::Reader::from_path(data(file)).unwrap();
    r.records().map(|r| r.unwrap()[0].to_owned()).collect()
}

fn peak_rss_mib(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU seconds (user + system, all threads) that process `pid` has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and
    // 13th of them, in clock ticks (100 a second on Linux).
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (tick(11) + tick(12)) / 100.0
}

fn main() {
    if let Some(sock) = std::env::var_os("PHONEVAULT_FLOOR_SOCKET") {
        floor_server(Path::new(&sock));
        return;
    }
    let secs: u64 = std::env::var("SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let conns: Vec<usize> = std::env::var("CONNECTIONS")
        .unwrap_or_else(|_| "16,64".into())
        .split(',')
        .map(|c| c.trim().parse().unwrap())
        .collect();
    let env = Env::with_pass(PASS);
    let numbers = phones("numbers-200k.csv");

    // QUICK=1 (for profiling): no in-process baseline, only 20,000 numbers ingested.
    let quick = std::env::var_os("QUICK").is_some();
    let numbers = if quick {
        numbers[..20_000].to_vec()
    } else {
        numbers
    };

    // 1. Baseline: in-process import.
    let (a, _) = vault(&env, "a", "reader");
    // A copy, so the rejects file the import writes beside it stays out of the repository.
    let file = env.path("numbers-200k.csv");
    std::fs::copy(data("numbers-200k.csv"), &file).unwrap();
    let t = Instant::now();
    if !quick {
        a.ok(&[
            "import",
            "--tenant",
            "shop",
            "--consent",
            "otp",
            file.to_str().unwrap(),
        ]);
    }
    let import = t.elapsed();

    // 2. The same numbers through the socket, 10,000 per batch.
    let (b, writer) = vault(&env, "b", "writer");
    let reader = b.token(&["--tenant", "shop", "--role", "reader", "--purposes", "otp"]);
    let server = serve(&b, "process");
    let sock = server.socket().to_owned();
    let bodies: Vec<Vec<u8>> = numbers
        .chunks(10_000)
        .map(|c| {
            let items: Vec<_> = c
                .iter()
                .map(|p| serde_json::json!({"phone": p, "consents": ["otp"]}))
                .collect();
            serde_json::to_vec(&serde_json::json!({ "items": items })).unwrap()
        })
        .collect();
    let mut conn = Conn::new(&sock);
    let t = Instant::now();
    let (mut created, mut rejected) = (0, 0);
    for body in &bodies {
        let (st, resp) = conn.post("/v1/tenants/shop/numbers/batch", &writer, body);
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&resp));
        let v: serde_json::Value = serde_json::from_slice(&resp).unwrap();
        // A writer token gets `accepted` (no created/merged split: issue 13).
        created += v["summary"]["accepted"].as_u64().unwrap();
        rejected += v["summary"]["rejected"].as_u64().unwrap();
    }
    let ingest = t.elapsed();

    let rss = peak_rss_mib(server.pid());
    // SIGTERM, and the wait for its exit.
    drop(server);
    println!("numbers: {}", numbers.len());
    println!("in-process import:       {:>8.2} s", import.as_secs_f64());
    println!(
        "batch ingest via socket: {:>8.2} s ({:+.0}% vs import; {created} created, {rejected} rejected)",
        ingest.as_secs_f64(),
        (ingest.as_secs_f64() / import.as_secs_f64() - 1.0) * 100.0
    );
    println!("server peak RSS during ingest: {rss:.0} MiB");

    // 3 and 4. Lookups over keep-alive connections for a fixed time: the floor, then
    // the vault in each mode.
    let lookups = phones("lookups-20k.csv");
    let bodies: Vec<Vec<u8>> = lookups
        .iter()
        .map(|p| serde_json::to_vec(&serde_json::json!({"phone": p, "purpose": "otp"})).unwrap())
        .collect();
    let bodies = std::sync::Arc::new(bodies);
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    // MODES=process,always to choose (the floor is always measured).
    let modes = std::env::var("MODES").unwrap_or_else(|_| "process,always,lag".into());
    let servers: Vec<&str> = std::iter::once("floor")
        .chain(modes.split(',').map(str::trim))
        .collect();
    // figures[server][conns] = one Load per run
    let mut figures: Vec<Vec<Vec<Load>>> = vec![vec![Vec::new(); conns.len()]; servers.len()];
    for run in 0..runs {
        for (si, name) in servers.iter().enumerate() {
            let server = if *name == "floor" {
                start_floor(&env.dir)
            } else {
                serve(&b, name)
            };
            let sock = server.socket().to_owned();
            for (ci, &c) in conns.iter().enumerate() {
                let cpu_before = cpu_seconds(server.pid());
                let mut l = load(&sock, &reader, &bodies, c, secs, *name == "floor");
                l.cpu_us = (cpu_seconds(server.pid()) - cpu_before) * 1e6 / l.count as f64;
                println!(
                    "run {}: {name:>8} {c:>3} connections: {:>7.0} lookups/s ({} found), p50 {:.3} ms, p99 {:.3} ms, server CPU {:.1} µs/lookup",
                    run + 1,
                    l.rate,
                    l.found,
                    l.p50 * 1e3,
                    l.p99 * 1e3,
                    l.cpu_us
                );
                figures[si][ci].push(l);
            }
            if *name == "floor" {
                server.kill();
            } else {
                let rss = peak_rss_mib(server.pid());
                println!("run {}: {name:>8} server peak RSS: {rss:.0} MiB", run + 1);
                drop(server);
            }
        }
    }
    let med = |v: Vec<f64>| {
        let mut v = v;
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("\nmedians of {runs} run(s), ratios to the HTTP floor of the same run:");
    for (ci, &c) in conns.iter().enumerate() {
        for (si, name) in servers.iter().enumerate() {
            let rate = med(figures[si][ci].iter().map(|l| l.rate).collect());
            let p50 = med(figures[si][ci].iter().map(|l| l.p50).collect());
            let p99 = med(figures[si][ci].iter().map(|l| l.p99).collect());
            let cpu = med(figures[si][ci].iter().map(|l| l.cpu_us).collect());
            let ratio = med((0..runs)
                .map(|r| figures[si][ci][r].rate / figures[0][ci][r].rate)
                .collect());
            let p99_ratio = med((0..runs)
                .map(|r| figures[si][ci][r].p99 / figures[0][ci][r].p99)
                .collect());
            println!(
                "{name:>8} {c:>3} connections: {rate:>7.0} lookups/s = {ratio:.2} x floor; p50 {:.3} ms, p99 {:.3} ms = {p99_ratio:.2} x floor p99; server CPU {cpu:.1} µs/lookup",
                p50 * 1e3,
                p99 * 1e3
            );
        }
    }
}

/// One load figure.
#[derive(Clone, Copy)]
struct Load {
    rate: f64,
    /// Requests answered.
    count: usize,
    /// Server CPU time (user + system) per request, in µs: what the server spends,
    /// whatever the client and the rest of the machine take.
    cpu_us: f64,
    found: u64,
    p50: f64,
    p99: f64,
}

/// Drives `conns` keep-alive connections for `secs` seconds.
fn load(
    sock: &Path,
    token: &str,
    bodies: &std::sync::Arc<Vec<Vec<u8>>>,
    conns: usize,
    secs: u64,
    floor: bool,
) -> Load {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let handles: Vec<_> = (0..conns)
        .map(|k| {
            let bodies = bodies.clone();
            let sock = sock.to_owned();
            let token = token.to_owned();
            std::thread::spawn(move || {
                let mut c = Conn::new(&sock);
                let mut lat = Vec::new();
                let mut found = 0u64;
                let mut i = k * 1_000;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let (st, body) =
                        c.post("/v1/tenants/shop/lookup", &token, &bodies[i % bodies.len()]);
                    lat.push(t.elapsed());
                    // 400: a number the phone metadata rejects (the import rejected it too).
                    assert!(
                        matches!(st, 200 | 404 | 400),
                        "status {st}: {}",
                        String::from_utf8_lossy(&body)
                    );
                    found += u64::from(st == 200 && !floor);
                    i += 1;
                }
                (lat, found)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut found = 0;
    for h in handles {
        let (l, f) = h.join().unwrap();
        lat.extend(l);
        found += f;
    }
    let wall = start.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64();
    Load {
        rate: lat.len() as f64 / wall.as_secs_f64(),
        count: lat.len(),
        cpu_us: f64::NAN,
        found,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}
