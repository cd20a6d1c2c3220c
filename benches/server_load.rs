//! Load benchmark of the socket API, against the real binary on a real socket.
//!
//! ```sh
//! cargo bench --locked --bench server_load            # SECONDS=10 CONNECTIONS=16 to change
//! AUDIT_READ_LAG_MS=10 cargo bench --locked --bench server_load   # serve --audit-read-lag-ms 10
//! ```
//!
//! 1. In-process import of benches/data/numbers-200k.csv (`phonevault import`): the baseline.
//! 2. The same numbers into a second vault through `POST .../numbers/batch` (10,000 a request).
//! 3. Lookups from benches/data/lookups-20k.csv over 16 keep-alive connections for a fixed
//!    time: throughput and latency percentiles.
//! 4. The server's peak resident memory (VmHWM).
//!
//! The client runs on the same machine and shares its cores with the server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASS: &str = "bench passphrase";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/data")
        .join(name)
}

fn cmd(vault: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phonevault"));
    c.arg("--vault")
        .arg(vault)
        .args(args)
        .env("PHONEVAULT_PASSPHRASE", PASS)
        .env_remove("PHONEVAULT_PASSPHRASE_FILE")
        .env_remove("PHONEVAULT_KEY_FILE")
        .stdin(Stdio::null());
    c
}

fn ok(vault: &Path, args: &[&str]) -> String {
    let out = cmd(vault, args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A fresh vault with tenant `shop` (purpose otp) and a token of `role`.
fn vault(dir: &Path, role: &str) -> String {
    // Cheap KDF: the benchmark measures the API, not unlocking.
    ok(
        dir,
        &["init", "--kdf-memory-kib", "1024", "--kdf-iterations", "1"],
    );
    ok(dir, &["tenant", "create", "shop", "--purposes", "otp"]);
    let v: serde_json::Value = serde_json::from_str(&ok(
        dir,
        &[
            "--json", "token", "create", "--tenant", "shop", "--role", role,
        ],
    ))
    .unwrap();
    v["token"].as_str().unwrap().to_owned()
}

fn serve(dir: &Path) -> Child {
    let lag = std::env::var("AUDIT_READ_LAG_MS").unwrap_or_else(|_| "0".into());
    let child = cmd(
        dir,
        &[
            "serve",
            "--lookup-rate",
            "0",
            "--write-rate",
            "0",
            "--audit-read-lag-ms",
            &lag,
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let sock = dir.join("phonevault.sock");
    let start = Instant::now();
    while UnixStream::connect(&sock).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn stop(mut child: Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
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

fn main() {
    let secs: u64 = std::env::var("SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let conns: usize = std::env::var("CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let tmp = tempfile::tempdir().unwrap();
    let numbers = phones("numbers-200k.csv");

    // 1. Baseline: in-process import.
    let a = tmp.path().join("a");
    vault(&a, "reader");
    // A copy, so the rejects file the import writes beside it stays out of the repository.
    let file = tmp.path().join("numbers-200k.csv");
    std::fs::copy(data("numbers-200k.csv"), &file).unwrap();
    let t = Instant::now();
    ok(
        &a,
        &[
            "import",
            "--tenant",
            "shop",
            "--consent",
            "otp",
            file.to_str().unwrap(),
        ],
    );
    let import = t.elapsed();

    // 2. The same numbers through the socket, 10,000 per batch.
    let b = tmp.path().join("b");
    let writer = vault(&b, "writer");
    let reader: serde_json::Value = serde_json::from_str(&ok(
        &b,
        &[
            "--json",
            "token",
            "create",
            "--tenant",
            "shop",
            "--role",
            "reader",
            "--purposes",
            "otp",
        ],
    ))
    .unwrap();
    let reader = reader["token"].as_str().unwrap().to_owned();
    let server = serve(&b);
    let sock = b.join("phonevault.sock");
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

    // 3. Lookups over keep-alive connections for a fixed time.
    let lookups = phones("lookups-20k.csv");
    let bodies: Vec<Vec<u8>> = lookups
        .iter()
        .map(|p| serde_json::to_vec(&serde_json::json!({"phone": p, "purpose": "otp"})).unwrap())
        .collect();
    let bodies = std::sync::Arc::new(bodies);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let handles: Vec<_> = (0..conns)
        .map(|k| {
            let bodies = bodies.clone();
            let sock = sock.clone();
            let token = reader.clone();
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
                    found += u64::from(st == 200);
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
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let rss = peak_rss_mib(server.id());
    stop(server);

    println!("numbers: {}", numbers.len());
    println!("in-process import:       {:>8.2} s", import.as_secs_f64());
    println!(
        "batch ingest via socket: {:>8.2} s ({:+.0}% vs import; {created} created, {rejected} rejected)",
        ingest.as_secs_f64(),
        (ingest.as_secs_f64() / import.as_secs_f64() - 1.0) * 100.0
    );
    println!(
        "lookups: {} in {:.1} s over {conns} connections = {:.0}/s ({} found); p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        lat.len(),
        wall.as_secs_f64(),
        lat.len() as f64 / wall.as_secs_f64(),
        found,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
    println!("server peak RSS: {rss:.0} MiB");
}
