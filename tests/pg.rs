//! The PostgreSQL backend at the vault level and with two real servers: same behaviour
//! as sled, one record per number across servers, changes seen by every server, what a
//! database administrator sees, and an unreachable database.
//!
//! A harness of its own (`harness = false`, libtest-mimic), so that a test that cannot
//! run is reported as ignored, never as passed. The database: `PHONEVAULT_TEST_PG` when
//! it names one; else a throwaway cluster this binary starts (initdb in a temporary
//! directory, as an unprivileged user when run as root, Unix socket only) and stops at
//! exit, where PostgreSQL's server binaries are installed
//! (`/usr/lib/postgresql/*/bin/initdb`); else the tests that need a database are
//! ignored, with the reason on stderr, and `PHONEVAULT_REQUIRE_PG=1` (set by `.ci/run`)
//! makes that a failure. Each test works in a schema of its own and drops it at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;
use common::vault::{source, tenant};

use common::{http, Server};

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use phonevault::store::postgres::{test_config, SCHEMA_VERSION};
use phonevault::store::{Batch, Entry, PgConfig, PgStore, Store, StoreError, StoreLocation, Tree};
use phonevault::vault::{
    ImportOptions, OpenOptions, Role, Target, TokenSpec, Unlock, Vault, VaultError,
    TENANT_CACHE_TTL,
};
use phonevault_keys::{KdfParams, Passphrase};
use serde_json::{json, Value};

const PASS: &str = "correct horse battery staple";

fn purposes(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| s.to_string()).collect()
}

/// A vault whose keyring is in a temporary directory and whose records are in a
/// fresh schema, dropped at the end.
struct Db {
    cfg: PgConfig,
    tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = PgStore::drop_schema(&self.cfg);
    }
}

impl Db {
    fn new(tag: &str) -> Db {
        let cfg = test_config(tag).expect("the harness names a database before any test");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vault");
        Vault::init_on(
            &dir,
            &StoreLocation::Postgres(cfg.clone()),
            &Passphrase::new(PASS.into()),
            KdfParams::cheap_for_tests(),
        )
        .unwrap();
        Db { cfg, tmp, dir }
    }

    fn open_with(&self, cfg: &PgConfig) -> Vault {
        let opts = OpenOptions {
            store: StoreLocation::Postgres(cfg.clone()),
            ..OpenOptions::default()
        };
        let unlock = Unlock::Passphrase(Passphrase::new(PASS.into()));
        Vault::open(&self.dir, &unlock, opts).unwrap()
    }

    fn open(&self) -> Vault {
        self.open_with(&self.cfg)
    }
}

fn record_count(v: &Vault) -> usize {
    v.store()
        .range(Tree::Records, b"", None, usize::MAX)
        .unwrap()
        .len()
}

fn vault_operations_behave_as_on_sled() {
    let db = Db::new("vault_ops");
    let v = db.open();
    v.create_tenant(
        &tenant("shop"),
        &purposes(&["otp", "support", "marketing"]),
        Some(10_000),
    )
    .unwrap();
    // add, merge, find, last-4, get
    let id = v
        .add(
            &tenant("shop"),
            "+44 7400 123958",
            None,
            &purposes(&["otp"]),
            &source("web"),
        )
        .unwrap()
        .id();
    let again = v
        .add(
            &tenant("shop"),
            "07400 123958",
            Some("GB"),
            &purposes(&["support"]),
            &source("call"),
        )
        .unwrap();
    assert_eq!(again.id(), id, "one record per number: consents merged");
    let f = v
        .find(&tenant("shop"), "+447400123958", None, "support")
        .unwrap()
        .unwrap();
    assert_eq!(f.purposes, purposes(&["otp", "support"]));
    assert_eq!(
        v.find_last4(&tenant("shop"), 44, "3958", "otp")
            .unwrap()
            .len(),
        1
    );
    assert!(v.get(&tenant("shop"), id, "otp").unwrap().is_some());
    assert!(v
        .find(&tenant("shop"), "+447400123958", None, "marketing")
        .unwrap()
        .is_none());
    // withdraw, opt-out, erase
    v.withdraw(&tenant("shop"), Target::Id(id), "support")
        .unwrap();
    assert!(v
        .find(&tenant("shop"), "+447400123958", None, "support")
        .unwrap()
        .is_none());
    v.opt_out(&tenant("shop"), Target::Id(id), None).unwrap();
    assert!(v
        .find(&tenant("shop"), "+447400123958", None, "otp")
        .unwrap()
        .is_none());
    v.erase(
        &tenant("shop"),
        Target::Phone {
            input: "+447400123958",
            region: None,
        },
    )
    .unwrap();
    assert_eq!(record_count(&v), 0);
    assert!(v
        .store()
        .range(Tree::Index, b"", None, 10)
        .unwrap()
        .is_empty());

    // import: streaming chunks, then re-import changes nothing
    let csv = std::fs::read("tests/data/numbers-2k.csv").unwrap();
    let opts = ImportOptions {
        tenant: tenant("shop"),
        purposes: purposes(&["otp"]),
        source: source("import"),
        region: None,
    };
    let s1 = v
        .import(
            &opts,
            phonevault::cli::CsvRows::new(&csv[..], "phone").unwrap(),
            |_| Ok(()),
            |_| {},
        )
        .unwrap();
    assert!(s1.created > 1500, "{s1:?}");
    let s2 = v
        .import(
            &opts,
            phonevault::cli::CsvRows::new(&csv[..], "phone").unwrap(),
            |_| Ok(()),
            |_| {},
        )
        .unwrap();
    assert_eq!((s2.created, s2.merged), (0, 0));
    assert_eq!(record_count(&v) as u64, s1.created);
    let exported = v.export(&tenant("shop"), "otp", |_| Ok(())).unwrap();
    assert_eq!(exported, s1.created);

    // tokens
    let (info, secret) = v
        .create_token(&TokenSpec {
            tenant: Some(tenant("shop")),
            role: Role::Reader,
            purposes: vec![],
            reveal: false,
            ttl_secs: None,
        })
        .unwrap();
    assert!(v.authenticate(secret.expose_secret()).unwrap().is_some());
    assert!(v.revoke_token(&info.id).unwrap());
    assert!(v.authenticate(secret.expose_secret()).unwrap().is_none());

    // key rotation and rewrap
    v.rotate_key(&tenant("shop"), false).unwrap();
    v.rotate_key(&tenant("shop"), true).unwrap();
    let r = v.rewrap(&tenant("shop"), |_, _| {}).unwrap();
    assert!(r.resealed > 0 && r.reindexed > 0, "{r:?}");
    let some = csv_numbers(&csv, 5);
    for n in &some {
        assert!(v.find(&tenant("shop"), n, None, "otp").unwrap().is_some());
    }

    // A database administrator with full access sees no phone number.
    let dump = dump_tables(&db.cfg);
    assert!(
        dump.len() > 4000,
        "every table dumped ({} bytes)",
        dump.len()
    );
    for n in csv_numbers(&csv, usize::MAX) {
        let digits: String = n.chars().filter(char::is_ascii_digit).collect();
        let nsn = &digits[digits.len().saturating_sub(9)..];
        assert!(!dump.contains(&digits), "a number in the database dump");
        assert!(
            !dump.contains(nsn),
            "a number's last digits in the database dump"
        );
    }
}

fn csv_numbers(csv: &[u8], n: usize) -> Vec<String> {
    std::str::from_utf8(csv)
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| l.starts_with('+'))
        .filter(|l| phonevault::phone::normalize(l, None).is_ok())
        .take(n)
        .map(str::to_owned)
        .collect()
}

/// Every table of the schema as text: keys and values in PostgreSQL's `escape`
/// encoding (printable ASCII as is), plus the schema's migration rows.
fn dump_tables(cfg: &PgConfig) -> String {
    let url = std::env::var("PHONEVAULT_TEST_PG").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let tables = client
            .query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
                &[&cfg.schema],
            )
            .await
            .unwrap();
        assert!(tables.len() >= 8, "the trees and schema_migrations");
        let mut out = String::new();
        for t in tables {
            let name: String = t.get(0);
            // Trees as text (bytes escaped, printable ASCII as is); other tables whole.
            let sql = if name.starts_with("pv_") {
                format!(
                    "SELECT encode(k, 'escape') || ' ' || encode(v, 'escape') FROM {}.{name}",
                    cfg.schema
                )
            } else {
                format!("SELECT t::text FROM {}.{name} AS t", cfg.schema)
            };
            for r in client.query(&sql, &[]).await.unwrap() {
                out.push_str(&r.get::<_, String>(0));
                out.push('\n');
            }
        }
        out
    })
}

fn two_vaults_adding_one_number_at_once_make_one_record() {
    let db = Db::new("two_add");
    let a = Arc::new(db.open());
    a.create_tenant(&tenant("shop"), &purposes(&["otp", "marketing"]), None)
        .unwrap();
    let b = Arc::new(db.open());
    const ROUNDS: usize = 40;
    let barrier = Arc::new(Barrier::new(2));
    let number = |i: usize| format!("+4474001{i:05}");
    let run = |v: Arc<Vault>, purpose: &'static str| {
        let barrier = barrier.clone();
        std::thread::spawn(move || {
            for i in 0..ROUNDS {
                barrier.wait();
                v.add(
                    &tenant("shop"),
                    &number(i),
                    None,
                    &purposes(&[purpose]),
                    &source("race"),
                )
                .unwrap();
            }
        })
    };
    let ha = run(a.clone(), "otp");
    let hb = run(b.clone(), "marketing");
    ha.join().unwrap();
    hb.join().unwrap();
    assert_eq!(record_count(&a), ROUNDS, "one record per number");
    for i in 0..ROUNDS {
        let f = b
            .find(&tenant("shop"), &number(i), None, "otp")
            .unwrap()
            .unwrap();
        assert_eq!(
            f.purposes,
            purposes(&["marketing", "otp"]),
            "consents merged"
        );
    }
}

fn changes_through_one_vault_reach_the_other() {
    let db = Db::new("two_see");
    let a = db.open();
    a.create_tenant(&tenant("shop"), &purposes(&["otp", "support"]), None)
        .unwrap();
    let b = db.open();
    let n = "+447400123958";
    let id = a
        .add(&tenant("shop"), n, None, &purposes(&["otp"]), &source("x"))
        .unwrap()
        .id();
    assert!(b.find(&tenant("shop"), n, None, "otp").unwrap().is_some());
    // Opt-out and erasure: at once, no cache.
    a.opt_out(&tenant("shop"), Target::Id(id), Some("otp"))
        .unwrap();
    assert!(b.find(&tenant("shop"), n, None, "otp").unwrap().is_none());
    a.erase(&tenant("shop"), Target::Id(id)).unwrap();
    assert!(b.get(&tenant("shop"), id, "otp").unwrap().is_none());
    // Tokens: at once.
    let (info, secret) = a
        .create_token(&TokenSpec {
            tenant: Some(tenant("shop")),
            role: Role::Writer,
            purposes: vec![],
            reveal: false,
            ttl_secs: None,
        })
        .unwrap();
    assert!(b.authenticate(secret.expose_secret()).unwrap().is_some());
    a.revoke_token(&info.id).unwrap();
    assert!(b.authenticate(secret.expose_secret()).unwrap().is_none());
    // A data-key rotation by one: the other decrypts the new records at once.
    a.rotate_key(&tenant("shop"), false).unwrap();
    let m = "+447400123959";
    a.add(&tenant("shop"), m, None, &purposes(&["otp"]), &source("x"))
        .unwrap();
    assert!(b.find(&tenant("shop"), m, None, "otp").unwrap().is_some());
    // Tenant settings: within the documented bound.
    a.add_purposes(&tenant("shop"), &purposes(&["marketing"]))
        .unwrap();
    std::thread::sleep(TENANT_CACHE_TTL + Duration::from_millis(200));
    b.add(
        &tenant("shop"),
        m,
        None,
        &purposes(&["marketing"]),
        &source("y"),
    )
    .unwrap();
    let f = a
        .find(&tenant("shop"), m, None, "marketing")
        .unwrap()
        .unwrap();
    assert_eq!(f.purposes, purposes(&["marketing", "otp"]));
    // A tenant made by one is usable on the other at once (keyring re-read).
    a.create_tenant(&tenant("desk"), &purposes(&["support"]), None)
        .unwrap();
    b.add(
        &tenant("desk"),
        n,
        None,
        &purposes(&["support"]),
        &source("z"),
    )
    .unwrap();
    assert!(a
        .find(&tenant("desk"), n, None, "support")
        .unwrap()
        .is_some());
    // Keyring changes by both, back to back, on the one file: neither is lost.
    a.create_tenant(&tenant("t1"), &purposes(&["otp"]), None)
        .unwrap();
    b.create_tenant(&tenant("t2"), &purposes(&["otp"]), None)
        .unwrap();
    a.rotate_key(&tenant("t2"), false).unwrap();
    b.rotate_key(&tenant("t1"), true).unwrap();
    let c = db.open();
    for (v, t) in [(&a, "t2"), (&b, "t1"), (&c, "t1"), (&c, "t2")] {
        let t = &tenant(t);
        v.add(t, n, None, &purposes(&["otp"]), &source("k"))
            .unwrap();
        assert!(a.find(t, n, None, "otp").unwrap().is_some());
        assert!(b.find(t, n, None, "otp").unwrap().is_some());
    }
    assert_eq!(c.tenants().unwrap().len(), 4);
}

// ---------------------------------------------------------------------------------
// faults: a proxy in front of the database that can be cut and restored

/// A Unix-socket proxy to the test database: `down` refuses new connections and cuts
/// the open ones, as a database restart or a network failure would.
struct Proxy {
    dir: tempfile::TempDir,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<UnixStream>>>,
    user: String,
    dbname: String,
}

impl Proxy {
    fn start() -> Proxy {
        let url = std::env::var("PHONEVAULT_TEST_PG").unwrap();
        let pg: tokio_postgres::Config = url.parse().unwrap();
        let port = pg.get_ports().first().copied().unwrap_or(5432);
        let upstream = match pg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Unix(p)) => p.join(format!(".s.PGSQL.{port}")),
            _ => panic!("the fault tests need PHONEVAULT_TEST_PG on a Unix socket"),
        };
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join(".s.PGSQL.5432")).unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let (d, o) = (down.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if d.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let Ok(server) = UnixStream::connect(&upstream) else {
                    continue;
                };
                let mut list = o.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy {
            dir,
            down,
            open,
            user: pg.get_user().unwrap_or("postgres").to_owned(),
            dbname: pg.get_dbname().unwrap_or("postgres").to_owned(),
        }
    }

    fn url(&self) -> String {
        let host = self.dir.path().display().to_string().replace('/', "%2F");
        format!("postgresql://{}@{host}/{}", self.user, self.dbname)
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

fn unreachable_database_fails_clearly_and_recovers_by_itself() {
    let db = Db::new("fault_vault");
    let proxy = Proxy::start();
    let cfg = PgConfig::new(&proxy.url()).with_schema(&db.cfg.schema);
    let v = db.open_with(&cfg);
    v.create_tenant(&tenant("shop"), &purposes(&["otp"]), None)
        .unwrap();
    let mut acked = Vec::new();
    for i in 0..20 {
        let n = format!("+4474001{i:05}");
        v.add(&tenant("shop"), &n, None, &purposes(&["otp"]), &source("x"))
            .unwrap();
        acked.push(n);
    }
    proxy.cut();
    let e = v
        .add(
            &tenant("shop"),
            "+447400199999",
            None,
            &purposes(&["otp"]),
            &source("x"),
        )
        .unwrap_err();
    assert!(
        matches!(e, VaultError::Store(StoreError::Unavailable(_))),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("database is unavailable") && msg.contains("retry"),
        "{msg}"
    );
    assert!(!msg.contains("7400199999"));
    let e = v.find(&tenant("shop"), &acked[0], None, "otp").unwrap_err();
    assert!(
        matches!(e, VaultError::Store(StoreError::Unavailable(_))),
        "{e:?}"
    );
    proxy.restore();
    // Reconnects by itself; nothing acknowledged was lost.
    let start = Instant::now();
    loop {
        match v.find(&tenant("shop"), &acked[0], None, "otp") {
            Ok(found) => {
                assert!(found.is_some());
                break;
            }
            Err(e) if start.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("no reconnection: {e}"),
        }
    }
    for n in &acked {
        assert!(v.find(&tenant("shop"), n, None, "otp").unwrap().is_some());
    }
    v.add(
        &tenant("shop"),
        "+447400199999",
        None,
        &purposes(&["otp"]),
        &source("x"),
    )
    .unwrap();
    assert_eq!(record_count(&v), acked.len() + 1);
}

// ---------------------------------------------------------------------------------
// two real servers on one database

struct Cluster {
    db: Db,
    url: String,
}

impl Cluster {
    fn cmd(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = common::phonevault(dir, PASS, args);
        c.env("PHONEVAULT_STORE", &self.url)
            .env("PHONEVAULT_PG_SCHEMA", &self.db.cfg.schema);
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        common::ok(self.cmd(&self.db.dir, args), &args)
    }

    fn token(&self, args: &[&str]) -> (String, String) {
        let mut a = vec!["--json", "token", "create"];
        a.extend_from_slice(args);
        let v: Value = serde_json::from_str(&self.ok(&a)).unwrap();
        (
            v["id"].as_str().unwrap().to_owned(),
            v["token"].as_str().unwrap().to_owned(),
        )
    }

    /// A server on its own socket and its own vault directory (a copy of the keyring:
    /// as on another host), unlocked at start.
    fn serve(&self, name: &str) -> Server {
        let dir = self.db.tmp.path().join(name);
        if dir != self.db.dir {
            copy_vault_dir(&self.db.dir, &dir);
        }
        let socket = self.db.tmp.path().join(format!("{name}.sock"));
        let log = self.db.tmp.path().join(format!("{name}.log"));
        Server::spawn(
            self.cmd(&dir, &["serve", "--socket", socket.to_str().unwrap()]),
            socket,
            log,
        )
    }
}

fn copy_vault_dir(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    let ring = to.join("keyring");
    std::fs::copy(from.join("keyring"), &ring).unwrap();
    std::fs::set_permissions(&ring, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Hosts sharing one database each keep their own keyring file: a rotation on one
/// made a version the other lacked, and the other could make its own seed under the
/// same number, its records then failing GCM and reported as tampering. Versions are
/// now agreed through the database (a row per tenant and version with a seed
/// fingerprint), and a host lacking one fails closed naming the keyring to copy.
fn key_versions_are_agreed_through_the_database() {
    let db = Db::new("key_versions");
    let unlock = || Unlock::Passphrase(Passphrase::new(PASS.into()));
    let open = |dir: &Path| {
        let opts = OpenOptions {
            store: StoreLocation::Postgres(db.cfg.clone()),
            ..OpenOptions::default()
        };
        Vault::open(dir, &unlock(), opts)
    };
    let a = db.open();
    a.create_tenant(&tenant("shop"), &purposes(&["otp"]), None)
        .unwrap();
    let [n1, n2, n3] = ["+447400123951", "+447400123952", "+447400123953"];
    a.add(&tenant("shop"), n1, None, &purposes(&["otp"]), &source("x"))
        .unwrap();
    // host B: its own copy of the keyring, made now
    let b_dir = db.tmp.path().join("host-b");
    copy_vault_dir(&db.dir, &b_dir);
    let old_ring = std::fs::read(b_dir.join("keyring")).unwrap();
    assert!(open(&b_dir)
        .unwrap()
        .find(&tenant("shop"), n1, None, "otp")
        .unwrap()
        .is_some());

    // rotate on A and write under the new version
    assert_eq!(a.rotate_key(&tenant("shop"), false).unwrap(), 2);
    a.add(&tenant("shop"), n2, None, &purposes(&["otp"]), &source("x"))
        .unwrap();

    // B lacks version 2: it refuses the tenant, saying what to do, never "tampered"
    let b = open(&b_dir).unwrap();
    for err in [
        b.add(&tenant("shop"), n3, None, &purposes(&["otp"]), &source("y"))
            .unwrap_err(),
        b.find(&tenant("shop"), n2, None, "otp").unwrap_err(),
        // and never makes a version 2 of its own
        b.rotate_key(&tenant("shop"), false).unwrap_err(),
    ] {
        assert!(
            matches!(&err, VaultError::KeyVersionMissing { versions, .. } if versions == "2"),
            "{err}"
        );
        assert_eq!(err.code(), "key_version_missing");
        assert!(
            err.to_string().contains("copy that host's keyring file"),
            "{err}"
        );
    }
    drop(b);
    assert_eq!(std::fs::read(b_dir.join("keyring")).unwrap(), old_ring);

    // A reads everything; with A's keyring, B reads and writes under version 2
    assert!(a.find(&tenant("shop"), n2, None, "otp").unwrap().is_some());
    std::fs::copy(db.dir.join("keyring"), b_dir.join("keyring")).unwrap();
    let b = open(&b_dir).unwrap();
    assert!(b.find(&tenant("shop"), n2, None, "otp").unwrap().is_some());
    b.add(&tenant("shop"), n3, None, &purposes(&["otp"]), &source("y"))
        .unwrap();
    assert!(a.find(&tenant("shop"), n3, None, "otp").unwrap().is_some());
    drop(b);

    // Another seed under an existing number (the old copy rotated offline, as an older
    // build would have): refused as a conflict before any record is read or written.
    let mut ring = phonevault_keys::Keyring::decode(&old_ring).unwrap();
    let rk = ring.unlock(&Passphrase::new(PASS.into())).unwrap();
    assert_eq!(
        ring.rotate(&rk, "shop", phonevault_keys::KeyPurpose::Data, 0)
            .unwrap(),
        2
    );
    ring.seal(&rk);
    std::fs::write(b_dir.join("keyring"), ring.encode()).unwrap();
    let b = open(&b_dir).unwrap();
    let err = b.find(&tenant("shop"), n1, None, "otp").unwrap_err();
    assert!(
        matches!(err, VaultError::KeyVersionConflict { version: 2, .. }),
        "{err}"
    );
    assert_eq!(err.code(), "key_version_conflict");
    assert!(b
        .add(&tenant("shop"), n3, None, &purposes(&["otp"]), &source("y"))
        .is_err());
    // A is unaffected
    assert!(a.find(&tenant("shop"), n3, None, "otp").unwrap().is_some());
}

fn two_servers_on_one_database() {
    let db = Db::new("two_servers");
    let url = std::env::var("PHONEVAULT_TEST_PG").unwrap();
    let c = Cluster { db, url };
    c.ok(&["tenant", "create", "shop", "--purposes", "otp,marketing"]);
    let (_, writer) = c.token(&["--tenant", "shop", "--role", "writer"]);
    let (reader_id, reader) = c.token(&["--tenant", "shop", "--role", "reader"]);
    let one = c.serve("vault");
    let two = c.serve("two");
    let t = "/v1/tenants/shop";
    let n = "+447400123958";
    let (st, v) = one.post_any(
        &format!("{t}/numbers"),
        Some(&writer),
        &json!({"phone": n, "consents": ["otp", "marketing"]}),
    );
    // A writer gets the one answer of writes (issue 13: no existence oracle).
    assert_eq!((st, &v), (200, &json!({"accepted": true})), "{v}");
    let lookup = json!({"phone": n, "purpose": "otp"});
    let (st, v) = two.post_any(&format!("{t}/lookup"), Some(&reader), &lookup);
    assert_eq!(
        st, 200,
        "a write through one is visible through the other: {v}"
    );
    // Opt-out through the second: the first refuses at once.
    let (st, _) = two.post_any(
        &format!("{t}/opt-out"),
        Some(&writer),
        &json!({"phone": n, "purpose": "otp"}),
    );
    assert_eq!(st, 200);
    let (st, _) = one.post_any(&format!("{t}/lookup"), Some(&reader), &lookup);
    assert_eq!(st, 404);
    let mk = json!({"phone": n, "purpose": "marketing"});
    assert_eq!(
        one.post_any(&format!("{t}/lookup"), Some(&reader), &mk).0,
        200
    );
    // Erasure through the first: gone on the second.
    let (st, _) = one.post_any(&format!("{t}/erase"), Some(&writer), &json!({"phone": n}));
    assert_eq!(st, 200);
    assert_eq!(
        two.post_any(&format!("{t}/lookup"), Some(&reader), &mk).0,
        404
    );
    // Revocation with the CLI while both serve: both refuse the token at once.
    c.ok(&["token", "revoke", &reader_id]);
    for s in [&one, &two] {
        let (st, v) = s.post_any(&format!("{t}/lookup"), Some(&reader), &mk);
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (401, Some("unauthorized"))
        );
    }
    for s in [&one, &two] {
        assert!(!s.log_text().contains("7400123958"));
    }
    // Both servers appended to one audit chain, which verifies whole.
    let k0 = c.db.tmp.path().join("k0.hex");
    c.ok(&["audit", "key", "export", "--out", k0.to_str().unwrap()]);
    let out = c.ok(&["audit", "verify", "--key", k0.to_str().unwrap()]);
    assert!(!out.is_empty());
    let cp = c.db.tmp.path().join("cp.json");
    c.ok(&["audit", "checkpoint", "--out", cp.to_str().unwrap()]);
    let cp: Value = serde_json::from_str(&std::fs::read_to_string(&cp).unwrap()).unwrap();
    assert!(cp.to_string().len() > 10, "{cp}");
}

fn server_answers_503_while_the_database_is_down() {
    let db = Db::new("fault_server");
    let proxy = Proxy::start();
    let c = Cluster {
        db,
        url: proxy.url(),
    };
    c.ok(&["tenant", "create", "shop", "--purposes", "otp"]);
    let (_, writer) = c.token(&["--tenant", "shop", "--role", "admin"]);
    let s = c.serve("vault");
    let t = "/v1/tenants/shop";
    let add = |n: &str| {
        s.post_any(
            &format!("{t}/numbers"),
            Some(&writer),
            &json!({"phone": n, "consents": ["otp"]}),
        )
    };
    assert_eq!(add("+447400123958").0, 201);
    proxy.cut();
    let (st, v) = add("+447400123959");
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (503, Some("store_unavailable")),
        "{v}"
    );
    proxy.restore();
    let start = Instant::now();
    loop {
        let (st, v) = add("+447400123959");
        if st == 201 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no recovery: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (st, _) = s.post_any(
        &format!("{t}/lookup"),
        Some(&writer),
        &json!({"phone": "+447400123958", "purpose": "otp"}),
    );
    assert_eq!(st, 200, "acknowledged before the outage, still there");
    let log = s.log_text();
    assert!(log.contains("store unavailable"), "{log}");
    assert!(!log.contains(&proxy.url()) && !log.contains("7400123959"));
}

fn store_trait_on_postgres_is_shared_by_two_stores() {
    let db = Db::new("raw");
    let a = PgStore::connect(&db.cfg).unwrap();
    let b = PgStore::connect(&db.cfg).unwrap();
    let mut batch = phonevault::store::Batch::default();
    batch.put(Tree::Tokens, b"k".to_vec(), b"v".to_vec());
    a.commit(&batch).unwrap();
    assert_eq!(b.get(Tree::Tokens, b"k").unwrap(), Some(b"v".to_vec()));
}

fn server_killed_mid_batch_leaves_no_half_written_record() {
    let db = Db::new("kill_batch");
    let url = std::env::var("PHONEVAULT_TEST_PG").unwrap();
    let c = Cluster { db, url };
    c.ok(&["tenant", "create", "shop", "--purposes", "otp"]);
    let (_, writer) = c.token(&["--tenant", "shop", "--role", "writer"]);
    let csv = std::fs::read("tests/data/numbers-2k.csv").unwrap();
    let numbers = csv_numbers(&csv, usize::MAX);
    let s = c.serve("vault");
    let client = s.client();
    let items: Vec<Value> = numbers
        .iter()
        .map(|n| json!({"phone": n, "consents": ["otp"]}))
        .collect();
    let body = json!({ "items": items }).to_string();
    let sender = std::thread::spawn(move || {
        client.raw(&http::request(
            "POST",
            "/v1/tenants/shop/numbers/batch",
            Some(&writer),
            http::JSON,
            body.as_bytes(),
        ));
    });
    // Kill it while the batch is being written (some chunks committed, not all).
    let v = c.db.open();
    let start = Instant::now();
    while record_count(&v) == 0 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(2));
    }
    s.kill();
    sender.join().unwrap();
    // Every record has its index entry and every index entry its record.
    let records = record_count(&v);
    assert!(records > 0);
    let index = v.store().range(Tree::Index, b"", None, usize::MAX).unwrap();
    assert_eq!(index.len(), records, "one exact index entry per record");
    let expiry = v
        .store()
        .range(Tree::Expiry, b"", None, usize::MAX)
        .unwrap();
    assert_eq!(expiry.len(), records, "one expiry entry per record");
    let distinct: std::collections::HashSet<String> = numbers
        .iter()
        .map(|n| {
            let p = phonevault::phone::normalize(n, None).unwrap();
            p.e164.expose_secret().to_owned()
        })
        .collect();
    let mut found = 0;
    for n in &distinct {
        if v.find(&tenant("shop"), n, None, "otp").unwrap().is_some() {
            found += 1;
        }
    }
    assert_eq!(found, records, "every stored record is found by its number");
    eprintln!("killed after {records} of {} records", distinct.len());
}

fn store_option_misuse_is_explained_and_never_echoed() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str], store: &str| {
        common::phonevault(&tmp.path().join("v"), PASS, args)
            .env("PHONEVAULT_STORE", store)
            .output()
            .unwrap()
    };
    let out = run(&["tenant", "list"], "mysql://u:s3cretpw@h/db");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--store takes `sled` or a URL postgres://"),
        "{err}"
    );
    assert!(!err.contains("s3cretpw"), "{err}");
    let out = run(&["--help"], "postgres://u:s3cretpw@h/db");
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cretpw"));
    let out = run(&["compact"], "postgres://u:s3cretpw@h/db");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("VACUUM"), "{err}");
    assert!(!err.contains("s3cretpw"), "{err}");
    // An unreachable database: a clear error, no URL.
    let ring_dir = tmp.path().join("v");
    let out = run(&["init"], "postgres://u:s3cretpw@%2Fnonexistent-dir/db");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("database is unavailable"), "{err}");
    assert!(!err.contains("s3cretpw"), "{err}");
    assert!(!ring_dir.join("keyring").exists(), "nothing left behind");
}

fn two_vaults_importing_overlapping_files_at_once_make_one_record_per_number() {
    let db = Db::new("two_import");
    let a = Arc::new(db.open());
    a.create_tenant(
        &tenant("shop"),
        &purposes(&["otp", "marketing", "support"]),
        None,
    )
    .unwrap();
    let b = Arc::new(db.open());
    let csv = std::fs::read("tests/data/numbers-2k.csv").unwrap();
    // Every number exists already: both imports read then merge, chunk by chunk in
    // step, so their commits race on the same records.
    let first = ImportOptions {
        tenant: tenant("shop"),
        purposes: purposes(&["support"]),
        source: source("first"),
        region: None,
    };
    a.import(
        &first,
        phonevault::cli::CsvRows::new(&csv[..], "phone").unwrap(),
        |_| Ok(()),
        |_| {},
    )
    .unwrap();
    let before = record_count(&a) as u64;
    let barrier = Arc::new(Barrier::new(2));
    let run = |v: Arc<Vault>, purpose: &'static str| {
        let (csv, barrier) = (csv.clone(), barrier.clone());
        std::thread::spawn(move || {
            let opts = ImportOptions {
                tenant: tenant("shop"),
                purposes: purposes(&[purpose]),
                source: source("import"),
                region: None,
            };
            barrier.wait();
            v.import(
                &opts,
                phonevault::cli::CsvRows::new(&csv[..], "phone").unwrap(),
                |_| Ok(()),
                |_| {},
            )
            .unwrap()
        })
    };
    let ha = run(a.clone(), "otp");
    let hb = run(b.clone(), "marketing");
    let (sa, sb) = (ha.join().unwrap(), hb.join().unwrap());
    assert_eq!(record_count(&a) as u64, before, "{sa:?} {sb:?}");
    assert_eq!(sa.created + sb.created, 0, "{sa:?} {sb:?}");
    for s in [&sa, &sb] {
        assert_eq!(
            s.created + s.merged + s.unchanged + s.rejected,
            s.rows,
            "{s:?}"
        );
    }
    for n in csv_numbers(&csv, 50) {
        let f = b.find(&tenant("shop"), &n, None, "otp").unwrap().unwrap();
        assert_eq!(
            f.purposes,
            purposes(&["marketing", "otp", "support"]),
            "every import's consent"
        );
    }
}

// ---------------------------------------------------------------------------------
// the Store trait itself (moved here from the unit tests of store/postgres.rs, which
// the default harness would count as passed without a database)

mod conformance {
    use super::{Batch, Entry, Store, StoreError, Tree};
    use phonevault::store::{copy_trees, MemoryStore};
    include!("../src/store/conformance.rs");
}

fn store(tag: &str) -> (PgConfig, PgStore) {
    let cfg = test_config(tag).expect("the harness names a database before any test");
    let s = PgStore::connect(&cfg).unwrap();
    (cfg, s)
}

fn pg_store_conforms() {
    let (cfg, s) = store("conform");
    conformance::conformance(&s);
    drop(s);
    PgStore::drop_schema(&cfg).unwrap();
}

fn pg_guards_are_compare_and_swap_across_stores() {
    let (cfg, s) = store("cas");
    // Two stores, two pools: as two servers on one database.
    let other = PgStore::connect(&cfg).unwrap();
    conformance::conformance_concurrent(vec![Arc::new(s), Arc::new(other)]);
    PgStore::drop_schema(&cfg).unwrap();
}

fn pg_migrations_run_once_when_servers_start_together() {
    let cfg = test_config("migrate").expect("the harness names a database before any test");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let cfg = cfg.clone();
            std::thread::spawn(move || PgStore::connect(&cfg).map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let url = std::env::var("PHONEVAULT_TEST_PG").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let versions: Vec<i32> = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let sql = format!(
            "SELECT version FROM {}.schema_migrations ORDER BY 1",
            cfg.schema
        );
        let rows = client.query(&sql, &[]).await.unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    });
    let expected: Vec<i32> = (1..=i32::try_from(SCHEMA_VERSION).unwrap()).collect();
    assert_eq!(versions, expected, "every migration applied exactly once");
    PgStore::drop_schema(&cfg).unwrap();
}

// ---------------------------------------------------------------------------------
// the harness: which database, and which tests can run

/// A throwaway cluster: initdb in a temporary directory, a server listening on a Unix
/// socket in that directory only (trust authentication: nothing but the directory
/// reaches it), stopped and removed when dropped.
struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// `setpriv ... --` when running as root (initdb and postgres refuse root).
    run_as: Vec<String>,
}

impl PgCluster {
    /// The newest `/usr/lib/postgresql/<version>/bin` holding an `initdb`.
    fn server_binaries() -> Option<PathBuf> {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((version, bin))
            })
            .collect();
        found.sort();
        found.pop().map(|(_, bin)| bin)
    }

    fn command(&self, program: &str) -> Command {
        let mut c = match self.run_as.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(self.bin.join(program));
                c
            }
            None => Command::new(self.bin.join(program)),
        };
        c.stdin(Stdio::null());
        c
    }

    fn start(bin: PathBuf) -> Result<PgCluster, String> {
        let dir = tempfile::Builder::new()
            .prefix("phonevault-pg.")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let mut run_as = Vec::new();
        if rustix::process::geteuid().is_root() {
            // The account of Debian's package, else nobody.
            let user = ["postgres", "nobody"]
                .into_iter()
                .find(|u| {
                    Command::new("id")
                        .args(["-u", u])
                        .output()
                        .is_ok_and(|o| o.status.success())
                })
                .ok_or("neither a `postgres` nor a `nobody` account to run the cluster as")?;
            let id = |flag: &str| -> Result<u32, String> {
                let o = Command::new("id")
                    .args([flag, user])
                    .output()
                    .map_err(|e| format!("id {flag} {user}: {e}"))?;
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse()
                    .map_err(|_| format!("id {flag} {user}: not a number"))
            };
            let (uid, gid) = (id("-u")?, id("-g")?);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("chown of the cluster directory: {e}"))?;
            run_as = vec![
                "setpriv".into(),
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
                "--".into(),
            ];
        }
        let c = PgCluster { bin, dir, run_as };
        let data = c.dir.path().join("data");
        let out = c
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "phonevault",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let opts = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c max_connections=200",
            c.dir.path().display()
        );
        let log = c.dir.path().join("server.log");
        let out = c
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &opts, "start"])
            .output()
            .map_err(|e| format!("pg_ctl start: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "pg_ctl start failed: {}{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        Ok(c)
    }

    fn url(&self) -> String {
        let host = self.dir.path().display().to_string().replace('/', "%2F");
        format!("postgresql://phonevault@{host}/postgres")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .output();
    }
}

/// The cluster this binary started (if it did), or why there is no database at all.
type Database = (Option<PgCluster>, Option<String>);

fn database(args: &Arguments) -> Result<Database, String> {
    if std::env::var("PHONEVAULT_TEST_PG").is_ok_and(|u| !u.is_empty()) {
        return Ok((None, None));
    }
    if args.list {
        return Ok((None, None));
    }
    let Some(bin) = PgCluster::server_binaries() else {
        return Ok((
            None,
            Some(
                "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb) and \
                 PHONEVAULT_TEST_PG unset: install Debian's `postgresql` package, or point \
                 PHONEVAULT_TEST_PG at a database"
                    .into(),
            ),
        ));
    };
    // Binaries that are there but cannot start a cluster are a failure, not a skip.
    let cluster = PgCluster::start(bin)?;
    // Before any test thread starts: every test reads the variable.
    std::env::set_var("PHONEVAULT_TEST_PG", cluster.url());
    Ok((Some(cluster), None))
}

fn trial(name: &'static str, f: fn()) -> Trial {
    Trial::test(name, move || {
        f();
        Ok::<(), Failed>(())
    })
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let (cluster, missing) = match database(&args) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("tests/pg.rs: PostgreSQL is installed but no cluster could be started: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Some(why) = &missing {
        if std::env::var("PHONEVAULT_REQUIRE_PG").is_ok_and(|v| v == "1") {
            eprintln!("tests/pg.rs: PHONEVAULT_REQUIRE_PG=1 but {why}");
            return std::process::ExitCode::FAILURE;
        }
        eprintln!("tests/pg.rs: the PostgreSQL tests are ignored: {why}");
    }
    let all: [(&'static str, fn()); 14] = [
        (
            "key_versions_are_agreed_through_the_database",
            key_versions_are_agreed_through_the_database,
        ),
        (
            "vault_operations_behave_as_on_sled",
            vault_operations_behave_as_on_sled,
        ),
        (
            "two_vaults_adding_one_number_at_once_make_one_record",
            two_vaults_adding_one_number_at_once_make_one_record,
        ),
        (
            "changes_through_one_vault_reach_the_other",
            changes_through_one_vault_reach_the_other,
        ),
        (
            "unreachable_database_fails_clearly_and_recovers_by_itself",
            unreachable_database_fails_clearly_and_recovers_by_itself,
        ),
        ("two_servers_on_one_database", two_servers_on_one_database),
        (
            "server_answers_503_while_the_database_is_down",
            server_answers_503_while_the_database_is_down,
        ),
        (
            "store_trait_on_postgres_is_shared_by_two_stores",
            store_trait_on_postgres_is_shared_by_two_stores,
        ),
        (
            "server_killed_mid_batch_leaves_no_half_written_record",
            server_killed_mid_batch_leaves_no_half_written_record,
        ),
        (
            "two_vaults_importing_overlapping_files_at_once_make_one_record_per_number",
            two_vaults_importing_overlapping_files_at_once_make_one_record_per_number,
        ),
        ("store::pg_store_conforms", pg_store_conforms),
        (
            "store::pg_guards_are_compare_and_swap_across_stores",
            pg_guards_are_compare_and_swap_across_stores,
        ),
        (
            "store::pg_migrations_run_once_when_servers_start_together",
            pg_migrations_run_once_when_servers_start_together,
        ),
        (
            "store_option_misuse_is_explained_and_never_echoed",
            store_option_misuse_is_explained_and_never_echoed,
        ),
    ];
    let tests = all
        .into_iter()
        .map(|(name, f)| {
            // The one test that needs no database runs everywhere.
            let needs = name != "store_option_misuse_is_explained_and_never_echoed";
            trial(name, f).with_ignored_flag(needs && missing.is_some())
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, tests);
    drop(cluster); // stops a cluster this binary started
    conclusion.exit_code()
}
