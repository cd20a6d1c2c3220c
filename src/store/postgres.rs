//! The PostgreSQL backend: several `phonevault serve` processes share one database
//! (PostgreSQL, or a distributed SQL engine that speaks its wire protocol).
//!
//! Each [`Tree`] is one table `pv_<tree> (k bytea PRIMARY KEY, v bytea NOT NULL)` in
//! the store's schema; `bytea` compares as `memcmp`, so range and prefix scans come
//! back in the same order as sled's. The schema is created and migrated by the vault
//! itself: versioned migrations recorded in `schema_migrations`, applied once, in one
//! transaction that first takes an advisory lock (two servers starting together
//! serialize; the primary key on the version catches engines without advisory locks).
//!
//! # Guards
//! A [`Batch`] is one transaction at READ COMMITTED, and its guards are a true
//! compare-and-swap across servers:
//! - a guard expecting a value reads the row `FOR UPDATE`: the row stays locked until
//!   the commit, and a concurrent writer's change is seen (PostgreSQL re-reads the
//!   newest version after waiting), so the comparison and the writes are atomic. When
//!   the batch's first op on that key is a put, guard and put are one
//!   `UPDATE ... WHERE v = expected` (same locking and re-check), its row count the
//!   verdict;
//! - a guard expecting absence inserts the key (`ON CONFLICT DO NOTHING`) with the
//!   batch's first value for it, or a placeholder: a committed row, or one a
//!   concurrent transaction is inserting, makes it fail (after waiting for that
//!   transaction), and while we hold the row nobody else can create the key.
//!   Placeholders of keys the batch never writes are deleted before the commit, so no
//!   other transaction ever sees one. Value guards are checked first, so a key
//!   guarded both ways fails.
//!
//! Deadlocks and serialization failures roll the transaction back and it is retried
//! whole; a guard that fails is [`StoreError::Conflict`] and changes nothing.
//!
//! # Sync over async
//! The [`Store`] trait is synchronous. The store owns a small tokio runtime; every call
//! is spawned onto it and the calling thread waits on a channel, so it is safe from
//! plain threads and from tokio's blocking pool alike (it never nests a runtime). Do
//! not call it from an async task: that would block a runtime worker.
//!
//! # Durability
//! A commit returns once PostgreSQL has committed (with `synchronous_commit` on, after
//! its WAL is flushed), so [`Store::flush`] has nothing left to do.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;
use zeroize::Zeroizing;

use super::{Batch, Entry, Linked, Op, Store, StoreError, Tree};

/// Default schema holding the vault's tables.
pub const DEFAULT_SCHEMA: &str = "phonevault";
/// Connections per store by default.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// How long a call waits for a connection (or for the database to answer) before it
/// fails with [`StoreError::Unavailable`].
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts of a transaction that hits a deadlock or a serialization failure.
const TX_ATTEMPTS: u32 = 8;

/// The schema version this build migrates to (the number of migrations): the
/// highest row of `schema_migrations` once a store has connected.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// The migrations, in order; `MIGRATIONS[i]` brings the schema to version `i + 1`.
/// Applied ones are never edited: a change is a new entry.
const MIGRATIONS: &[&str] = &[
    // 1: one table per tree.
    "CREATE TABLE {s}.pv_meta (k bytea PRIMARY KEY, v bytea NOT NULL);
     CREATE TABLE {s}.pv_tenants (k bytea PRIMARY KEY, v bytea NOT NULL);
     CREATE TABLE {s}.pv_records (k bytea PRIMARY KEY, v bytea NOT NULL);
     CREATE TABLE {s}.pv_index (k bytea PRIMARY KEY, v bytea NOT NULL);
     CREATE TABLE {s}.pv_expiry (k bytea PRIMARY KEY, v bytea NOT NULL);
     CREATE TABLE {s}.pv_tokens (k bytea PRIMARY KEY, v bytea NOT NULL);
     CREATE TABLE {s}.pv_audit (k bytea PRIMARY KEY, v bytea NOT NULL);",
    // 2: suppression lists (issue 16).
    "CREATE TABLE {s}.pv_suppress (k bytea PRIMARY KEY, v bytea NOT NULL);",
];

/// Where the PostgreSQL store is and how to use it.
///
/// # Security
/// The URL may hold a password: `Debug` prints neither it nor the URL.
#[derive(Clone)]
pub struct PgConfig {
    url: Zeroizing<String>,
    /// Schema holding the vault's tables (`[a-z_][a-z0-9_]*`, at most 48 bytes).
    pub schema: String,
    /// Connections in the pool.
    pub pool_size: usize,
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

impl PgConfig {
    /// A configuration for the connection `url` (`postgres://...`, or libpq's
    /// `key=value` form), with the default schema and pool size.
    pub fn new(url: &str) -> PgConfig {
        PgConfig {
            url: Zeroizing::new(url.to_owned()),
            schema: DEFAULT_SCHEMA.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
        }
    }

    /// The same with another schema.
    pub fn with_schema(mut self, schema: &str) -> PgConfig {
        schema.clone_into(&mut self.schema);
        self
    }

    /// Whether `s` names a PostgreSQL store (`postgres://`, `postgresql://`).
    pub fn is_postgres_url(s: &str) -> bool {
        s.starts_with("postgres://") || s.starts_with("postgresql://")
    }
}

fn check_schema(s: &str) -> Result<(), StoreError> {
    let ok = !s.is_empty()
        && s.len() <= 48
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(
            "invalid schema name: use 1-48 characters from a-z, 0-9 and '_', not starting with a digit".into(),
        ))
    }
}

/// Statements of one tree, with the schema filled in.
struct TreeSql {
    get: String,
    range_to: String,
    range_open: String,
    upsert: String,
    delete: String,
    guard_absent: String,
    guard_present: String,
    swap: String,
}

impl TreeSql {
    fn new(schema: &str, tree: Tree) -> TreeSql {
        let t = format!("{schema}.pv_{}", tree.name());
        TreeSql {
            get: format!("SELECT v FROM {t} WHERE k = $1"),
            range_to: format!("SELECT k, v FROM {t} WHERE k >= $1 AND k < $2 ORDER BY k LIMIT $3"),
            range_open: format!("SELECT k, v FROM {t} WHERE k >= $1 ORDER BY k LIMIT $2"),
            upsert: format!(
                "INSERT INTO {t} (k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"
            ),
            delete: format!("DELETE FROM {t} WHERE k = ANY($1::bytea[])"),
            guard_absent: format!(
                "INSERT INTO {t} (k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (k) DO NOTHING RETURNING k"
            ),
            swap: format!(
                "UPDATE {t} AS t SET v = u.n \
                 FROM unnest($1::bytea[], $2::bytea[], $3::bytea[]) AS u(k, e, n) \
                 WHERE t.k = u.k AND t.v = u.e RETURNING t.k"
            ),
            guard_present: format!(
                "SELECT k, v FROM {t} WHERE k = ANY($1::bytea[]) ORDER BY k FOR UPDATE"
            ),
        }
    }
}

/// A [`Store`] on PostgreSQL (or a PostgreSQL-wire distributed SQL engine).
pub struct PgStore {
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    sql: Arc<[TreeSql]>,
    schema: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside an async context (a server
        // may drop its last vault on a worker thread): let it wind down in the back.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// What one failed database call means for the caller.
enum Failure {
    /// Deadlock or serialization failure: the transaction may be retried whole.
    Retry,
    /// Anything else, already mapped.
    Fatal(StoreError),
}

fn pg_err(e: &tokio_postgres::Error) -> Failure {
    if let Some(code) = e.code() {
        if *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
        {
            return Failure::Retry;
        }
        if *code == SqlState::UNIQUE_VIOLATION {
            return Failure::Fatal(StoreError::Conflict);
        }
        if *code == SqlState::DISK_FULL {
            return Failure::Fatal(StoreError::DiskFull);
        }
        let class = &code.code()[..2];
        // 08: connection exception; 57: operator intervention (shutdown, restart);
        // 53: insufficient resources (too many connections, out of memory).
        if matches!(class, "08" | "57" | "53") {
            return Failure::Fatal(StoreError::Unavailable(describe(e)));
        }
        return Failure::Fatal(StoreError::Database(describe(e)));
    }
    // No SQLSTATE: the connection failed or closed.
    Failure::Fatal(StoreError::Unavailable(describe(e)))
}

/// A message for the error: SQLSTATE and the server's primary message, never its
/// detail (which may quote key bytes), never the connection string.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("SQLSTATE {}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

fn pool_err(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => match pg_err(&e) {
            Failure::Fatal(StoreError::Database(m))
            | Failure::Fatal(StoreError::Unavailable(m)) => StoreError::Unavailable(m),
            Failure::Fatal(other) => other,
            Failure::Retry => StoreError::Unavailable(describe(&e)),
        },
        PoolError::Timeout(_) => {
            StoreError::Unavailable("no database connection could be had in time".into())
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl PgStore {
    /// Connects, creates the schema or migrates it to this version, and returns the
    /// store.
    ///
    /// # Errors
    /// [`StoreError::Config`] for a malformed URL or schema name,
    /// [`StoreError::Unavailable`] when the database cannot be reached,
    /// [`StoreError::Database`] when it refuses the schema (e.g. no right to create
    /// it) or holds a newer schema version than this build knows.
    pub fn connect(cfg: &PgConfig) -> Result<PgStore, StoreError> {
        check_schema(&cfg.schema)?;
        let mut pg: tokio_postgres::Config = cfg.url.parse().map_err(|e| {
            StoreError::Config(format!(
                "the PostgreSQL connection string does not parse ({e}); expected postgres://USER@HOST[:PORT]/DATABASE"
            ))
        })?;
        if pg.get_application_name().is_none() {
            pg.application_name("phonevault");
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(5));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("phonevault-pg")
            .enable_all()
            .build()
            .map_err(StoreError::Io)?;
        let mgr = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // Building the pool needs the runtime's context (it looks up the timer).
        let pool = {
            let _enter = rt.enter();
            Pool::builder(mgr)
                .max_size(cfg.pool_size.max(1))
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(CALL_TIMEOUT))
                .create_timeout(Some(Duration::from_secs(5)))
                .recycle_timeout(Some(Duration::from_secs(5)))
                .build()
                .map_err(|e| StoreError::Config(e.to_string()))?
        };
        let sql = Tree::ALL
            .iter()
            .map(|t| TreeSql::new(&cfg.schema, *t))
            .collect();
        let store = PgStore {
            rt: Some(rt),
            pool,
            sql,
            schema: cfg.schema.clone(),
        };
        let schema = cfg.schema.clone();
        let pool = store.pool.clone();
        store.run(async move { migrate(&pool, &schema).await })?;
        Ok(store)
    }

    /// Runs `fut` on the store's runtime and waits for it on this thread.
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let Some(rt) = &self.rt else {
            return Err(StoreError::Unavailable("the store is shut down".into()));
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let r = match tokio::time::timeout(CALL_TIMEOUT * 2, fut).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Unavailable(
                    "the database did not answer in time".into(),
                )),
            };
            let _ = tx.send(r);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the store is shutting down".into())))
    }

    fn tree_sql(&self, tree: Tree) -> Result<&TreeSql, StoreError> {
        self.sql
            .get(tree.slot())
            .ok_or_else(|| StoreError::Config("unknown tree".into()))
    }

    /// [`Store::last_value`] in one query.
    fn newest_value(&self, tree: Tree) -> Result<Option<Vec<u8>>, StoreError> {
        let sql = format!(
            "SELECT v FROM {}.pv_{} ORDER BY k DESC LIMIT 1",
            self.schema,
            tree.name()
        );
        let pool = self.pool.clone();
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            let row = c.query_opt(&sql, &[]).await.map_err(fatal_only)?;
            Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
        })
    }

    /// Removes the schema and everything in it (tests and benchmarks clean up with it).
    ///
    /// # Errors
    /// As [`PgStore::connect`].
    pub fn drop_schema(cfg: &PgConfig) -> Result<(), StoreError> {
        check_schema(&cfg.schema)?;
        let store = PgStore::connect(cfg)?;
        let pool = store.pool.clone();
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", cfg.schema);
        store.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            c.batch_execute(&sql).await.map_err(|e| match pg_err(&e) {
                Failure::Fatal(e) => e,
                Failure::Retry => StoreError::Conflict,
            })
        })
    }
}

async fn migrate(pool: &Pool, schema: &str) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match migrate_once(pool, schema).await {
            Ok(()) => return Ok(()),
            // Two servers racing on an engine without advisory locks: one wins the
            // version row, the other retries and finds the work done.
            Err(Failure::Retry) | Err(Failure::Fatal(StoreError::Conflict))
                if attempt < TX_ATTEMPTS =>
            {
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
            }
            Err(Failure::Retry) | Err(Failure::Fatal(StoreError::Conflict)) => {
                return Err(StoreError::Unavailable(
                    "the schema migration kept conflicting with another server; retry".into(),
                ))
            }
            Err(Failure::Fatal(e)) => return Err(e),
        }
    }
}

/// A stable 63-bit advisory-lock key for the schema's migrations.
fn lock_key(schema: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("phonevault/v1/migrate/{schema}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(b) >> 1) as i64
}

async fn migrate_once(pool: &Pool, schema: &str) -> Result<(), Failure> {
    let fatal = |e: tokio_postgres::Error| pg_err(&e);
    let mut c = pool.get().await.map_err(|e| Failure::Fatal(pool_err(e)))?;
    let tx = c.transaction().await.map_err(fatal)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(schema)])
        .await
        .map_err(fatal)?;
    // A schema made beforehand by an administrator needs no CREATE right on the
    // database (which CREATE SCHEMA IF NOT EXISTS would check).
    let exists = tx
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await
        .map_err(fatal)?
        .is_some();
    if !exists {
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await
            .map_err(fatal)?;
    }
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now())"
    ))
    .await
    .map_err(fatal)?;
    let row = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {schema}.schema_migrations"),
            &[],
        )
        .await
        .map_err(fatal)?;
    let current: i32 = row.get(0);
    let known = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    if current > known {
        return Err(Failure::Fatal(StoreError::Database(format!(
            "the database schema is at version {current}, newer than this phonevault knows ({known}); upgrade phonevault"
        ))));
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        tx.batch_execute(&m.replace("{s}", schema))
            .await
            .map_err(fatal)?;
        let v = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.execute(
            &format!("INSERT INTO {schema}.schema_migrations (version) VALUES ($1)"),
            &[&v],
        )
        .await
        .map_err(fatal)?;
    }
    tx.commit().await.map_err(fatal)
}

/// One run of same-kind ops on one tree with distinct keys: one statement.
struct Group {
    tree: Tree,
    delete: bool,
    keys: Vec<Vec<u8>>,
    values: Vec<Vec<u8>>,
    seen: HashSet<Vec<u8>>,
}

/// Splits the ops into statements. Ops on different trees commute, so they are taken
/// tree by tree (keeping their order within a tree); a run of one kind becomes one
/// statement, and a key that comes back starts a new one, so the order of changes
/// to any one key is kept.
fn group_ops<'a>(ops: impl Iterator<Item = &'a Op>) -> Vec<Group> {
    let mut ops: Vec<&Op> = ops.collect();
    ops.sort_by_key(|op| match op {
        Op::Put { tree, .. } | Op::Delete { tree, .. } => *tree,
    });
    let mut groups: Vec<Group> = Vec::new();
    for op in ops {
        let (tree, key, value, delete) = match op {
            Op::Put { tree, key, value } => (*tree, key, Some(value), false),
            Op::Delete { tree, key } => (*tree, key, None, true),
        };
        let fits = groups
            .last()
            .is_some_and(|g| g.tree == tree && g.delete == delete && !g.seen.contains(key));
        if !fits {
            groups.push(Group {
                tree,
                delete,
                keys: Vec::new(),
                values: Vec::new(),
                seen: HashSet::new(),
            });
        }
        if let Some(g) = groups.last_mut() {
            g.seen.insert(key.clone());
            g.keys.push(key.clone());
            if let Some(v) = value {
                g.values.push(v.clone());
            }
        }
    }
    groups
}

/// Keys of one tree guarded to hold given values: sorted keys and the expectations.
type Expected = (Tree, Vec<Vec<u8>>, HashMap<Vec<u8>, Vec<u8>>);

/// Keys of one tree guarded to be absent, sorted, each with the value inserted in its
/// place: the batch's first put of that key, or an empty placeholder.
type Absent = (Tree, Vec<Vec<u8>>, Vec<Vec<u8>>);

/// Keys of one tree to compare-and-swap: sorted keys, expected and new values.
type Swap = (Tree, Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>);

/// Guards and ops of a batch, owned so the transaction can run on the runtime.
struct Plan {
    absent: Vec<Absent>,
    present: Vec<Expected>,
    /// Value guards whose key the batch puts first: one `UPDATE ... WHERE v = expected`
    /// each (keys sorted, expected values, new values).
    swaps: Vec<Swap>,
    groups: Vec<Group>,
    /// Placeholders of absence guards on keys the ops never touch: deleted before the
    /// commit.
    leftover: Vec<(Tree, Vec<Vec<u8>>)>,
}

fn plan(batch: &Batch) -> Plan {
    let mut absent: HashMap<Tree, Vec<Vec<u8>>> = HashMap::new();
    let mut present: HashMap<Tree, HashMap<Vec<u8>, Vec<u8>>> = HashMap::new();
    for g in &batch.guards {
        match &g.expect {
            None => absent.entry(g.tree).or_default().push(g.key.clone()),
            Some(v) => {
                present
                    .entry(g.tree)
                    .or_default()
                    .insert(g.key.clone(), v.clone());
            }
        }
    }
    // The first op on each key. An absent key whose first op is a put gets that value
    // inserted by the guard itself (the put is then done): same result, half the writes.
    let mut first: HashMap<(Tree, &[u8]), usize> = HashMap::new();
    for (i, op) in batch.ops.iter().enumerate() {
        let (Op::Put { tree, key, .. } | Op::Delete { tree, key }) = op;
        first.entry((*tree, key.as_slice())).or_insert(i);
    }
    let mut done = vec![false; batch.ops.len()];
    let mut leftover = Vec::new();
    // A key guarded both absent and present can never hold; both checks run, one fails.
    let mut absent: Vec<Absent> = absent
        .into_iter()
        .map(|(t, mut ks)| {
            ks.sort();
            ks.dedup();
            let mut untouched = Vec::new();
            let values = ks
                .iter()
                .map(|k| match first.get(&(t, k.as_slice())) {
                    Some(&i) => match &batch.ops[i] {
                        Op::Put { value, .. } => {
                            done[i] = true;
                            value.clone()
                        }
                        Op::Delete { .. } => Vec::new(),
                    },
                    None => {
                        untouched.push(k.clone());
                        Vec::new()
                    }
                })
                .collect();
            if !untouched.is_empty() {
                leftover.push((t, untouched));
            }
            (t, ks, values)
        })
        .collect();
    absent.sort_by_key(|(t, _, _)| *t);
    leftover.sort_by_key(|(t, _)| *t);
    // A value guard on a key the batch puts first (and does not also guard absent) is
    // a compare-and-swap: one UPDATE, checked by its row count.
    let absent_keys: HashSet<(Tree, &[u8])> = absent
        .iter()
        .flat_map(|(t, ks, _)| ks.iter().map(move |k| (*t, k.as_slice())))
        .collect();
    let mut swaps: Vec<Swap> = Vec::new();
    let mut present: Vec<Expected> = present
        .into_iter()
        .map(|(t, mut m)| {
            let mut sw: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = Vec::new();
            m.retain(|k, e| {
                if absent_keys.contains(&(t, k.as_slice())) {
                    return true;
                }
                match first.get(&(t, k.as_slice())) {
                    Some(&i) => match &batch.ops[i] {
                        Op::Put { value, .. } => {
                            done[i] = true;
                            sw.push((k.clone(), e.clone(), value.clone()));
                            false
                        }
                        Op::Delete { .. } => true,
                    },
                    None => true,
                }
            });
            if !sw.is_empty() {
                sw.sort();
                let (ks, (es, ns)): (Vec<_>, (Vec<_>, Vec<_>)) =
                    sw.into_iter().map(|(k, e, n)| (k, (e, n))).unzip();
                swaps.push((t, ks, es, ns));
            }
            let mut ks: Vec<Vec<u8>> = m.keys().cloned().collect();
            ks.sort();
            (t, ks, m)
        })
        .filter(|(_, ks, _)| !ks.is_empty())
        .collect();
    present.sort_by_key(|(t, _, _)| *t);
    swaps.sort_by_key(|(t, _, _, _)| *t);
    let groups = group_ops(
        batch
            .ops
            .iter()
            .zip(&done)
            .filter(|(_, d)| !**d)
            .map(|(op, _)| op),
    );
    Plan {
        absent,
        present,
        swaps,
        groups,
        leftover,
    }
}

impl PgStore {
    async fn commit_once(pool: &Pool, sql: &[TreeSql], plan: &Plan) -> Result<(), Failure> {
        let fatal = |e: tokio_postgres::Error| pg_err(&e);
        let mut c = pool.get().await.map_err(|e| Failure::Fatal(pool_err(e)))?;
        let tx = c.transaction().await.map_err(fatal)?;
        let s = |t: Tree| &sql[t.slot()];
        // Value guards first: a key also guarded absent must not see our own insert.
        for (tree, keys, expect) in &plan.present {
            let st = tx
                .prepare_cached(&s(*tree).guard_present)
                .await
                .map_err(fatal)?;
            let rows = tx.query(&st, &[keys]).await.map_err(fatal)?;
            if rows.len() != keys.len() {
                return Err(Failure::Fatal(StoreError::Conflict));
            }
            for row in rows {
                let k: &[u8] = row.get(0);
                let v: &[u8] = row.get(1);
                if expect.get(k).map(Vec::as_slice) != Some(v) {
                    return Err(Failure::Fatal(StoreError::Conflict));
                }
            }
        }
        for (tree, keys, expected, new) in &plan.swaps {
            let st = tx.prepare_cached(&s(*tree).swap).await.map_err(fatal)?;
            let rows = tx.query(&st, &[keys, expected, new]).await.map_err(fatal)?;
            if rows.len() != keys.len() {
                return Err(Failure::Fatal(StoreError::Conflict));
            }
        }
        for (tree, keys, values) in &plan.absent {
            let st = tx
                .prepare_cached(&s(*tree).guard_absent)
                .await
                .map_err(fatal)?;
            let rows = tx.query(&st, &[keys, values]).await.map_err(fatal)?;
            if rows.len() != keys.len() {
                return Err(Failure::Fatal(StoreError::Conflict));
            }
        }
        for g in &plan.groups {
            if g.delete {
                let st = tx.prepare_cached(&s(g.tree).delete).await.map_err(fatal)?;
                tx.execute(&st, &[&g.keys]).await.map_err(fatal)?;
            } else {
                let st = tx.prepare_cached(&s(g.tree).upsert).await.map_err(fatal)?;
                tx.execute(&st, &[&g.keys, &g.values])
                    .await
                    .map_err(fatal)?;
            }
        }
        for (tree, keys) in &plan.leftover {
            let st = tx.prepare_cached(&s(*tree).delete).await.map_err(fatal)?;
            tx.execute(&st, &[keys]).await.map_err(fatal)?;
        }
        tx.commit().await.map_err(fatal)
    }
}

impl Store for PgStore {
    fn shared(&self) -> bool {
        true
    }

    fn last_value(&self, tree: Tree) -> Result<Option<Vec<u8>>, StoreError> {
        self.newest_value(tree)
    }

    fn get_linked(
        &self,
        tree: Tree,
        key: &[u8],
        target: Tree,
        target_prefix: &[u8],
    ) -> Result<Option<Linked>, StoreError> {
        let sql = format!(
            "SELECT i.v, r.v FROM {}.pv_{} AS i LEFT JOIN {}.pv_{} AS r ON r.k = $2::bytea || i.v \
             WHERE i.k = $1",
            self.schema,
            tree.name(),
            self.schema,
            target.name()
        );
        let pool = self.pool.clone();
        let key = key.to_vec();
        let prefix = target_prefix.to_vec();
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            let st = c.prepare_cached(&sql).await.map_err(fatal_only)?;
            let row = c
                .query_opt(&st, &[&key, &prefix])
                .await
                .map_err(fatal_only)?;
            Ok(row.map(|r| (r.get::<_, Vec<u8>>(0), r.get::<_, Option<Vec<u8>>>(1))))
        })
    }

    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let sql = self.tree_sql(tree)?.get.clone();
        let pool = self.pool.clone();
        let key = key.to_vec();
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            let st = c.prepare_cached(&sql).await.map_err(fatal_only)?;
            let row = c.query_opt(&st, &[&key]).await.map_err(fatal_only)?;
            Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
        })
    }

    fn range(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let ts = self.tree_sql(tree)?;
        let sql = match end {
            Some(_) => ts.range_to.clone(),
            None => ts.range_open.clone(),
        };
        let pool = self.pool.clone();
        let start = start.to_vec();
        let end = end.map(<[u8]>::to_vec);
        let limit = limit_i64(limit);
        self.run(async move {
            let c = pool.get().await.map_err(pool_err)?;
            let st = c.prepare_cached(&sql).await.map_err(fatal_only)?;
            let rows = match &end {
                Some(e) => c.query(&st, &[&start, e, &limit]).await,
                None => c.query(&st, &[&start, &limit]).await,
            }
            .map_err(fatal_only)?;
            Ok(rows
                .into_iter()
                .map(|r| (r.get::<_, Vec<u8>>(0), r.get::<_, Vec<u8>>(1)))
                .collect())
        })
    }

    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        if batch.ops.is_empty() && batch.guards.is_empty() {
            return Ok(());
        }
        let plan = plan(batch);
        let sql = self.sql.clone();
        let pool = self.pool.clone();
        self.run(async move {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match PgStore::commit_once(&pool, &sql, &plan).await {
                    Ok(()) => return Ok(()),
                    Err(Failure::Retry) if attempt < TX_ATTEMPTS => {
                        tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
                    }
                    Err(Failure::Retry) => return Err(StoreError::Conflict),
                    Err(Failure::Fatal(e)) => return Err(e),
                }
            }
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Every acknowledged commit is already durable in the database.
        Ok(())
    }
}

fn fatal_only(e: tokio_postgres::Error) -> StoreError {
    match pg_err(&e) {
        Failure::Fatal(e) => e,
        Failure::Retry => StoreError::Unavailable(describe(&e)),
    }
}

/// For tests and benchmarks: a configuration with a fresh schema (`t_<tag>_<random>`)
/// in the database named by the environment variable `PHONEVAULT_TEST_PG`, or `None`
/// when it is unset (tests/pg.rs sets it to a throwaway cluster of its own; a
/// benchmark says why it skipped).
#[doc(hidden)]
pub fn test_config(tag: &str) -> Option<PgConfig> {
    let url = std::env::var("PHONEVAULT_TEST_PG").ok()?;
    if url.is_empty() {
        return None;
    }
    let tag: String = tag
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b.to_ascii_lowercase())
            } else {
                '_'
            }
        })
        .take(24)
        .collect();
    let schema = format!("t_{tag}_{:08x}", rand::random::<u32>());
    Some(PgConfig::new(&url).with_schema(&schema))
}

/// The line a PostgreSQL benchmark prints when it skips.
#[doc(hidden)]
pub const TEST_SKIP: &str =
    "skipped: PHONEVAULT_TEST_PG is not set (start a throwaway cluster with `eval \"$(.ci/pg start)\"`)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_unreachable_is_a_clear_error_without_the_url() {
        // A socket directory where no server listens.
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().display().to_string().replace('/', "%2F");
        let cfg = PgConfig::new(&format!("postgres://u:s3cret-pw@{host}/db"));
        let e = PgStore::connect(&cfg).unwrap_err();
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("database is unavailable"), "{msg}");
        assert!(!msg.contains("s3cret-pw") && !format!("{cfg:?}").contains("s3cret-pw"));
        // A malformed URL says so without echoing it.
        let e =
            PgStore::connect(&PgConfig::new("postgres://u:s3cret-pw@h:notaport/db")).unwrap_err();
        assert!(matches!(e, StoreError::Config(_)), "{e:?}");
        assert!(!e.to_string().contains("s3cret-pw"));
    }

    #[test]
    fn ops_are_grouped_in_order() {
        let mut b = Batch::default();
        b.put(Tree::Records, b"a".to_vec(), b"1".to_vec());
        b.put(Tree::Records, b"b".to_vec(), b"1".to_vec());
        b.delete(Tree::Records, b"a".to_vec());
        b.put(Tree::Records, b"a".to_vec(), b"2".to_vec());
        b.put(Tree::Records, b"a".to_vec(), b"3".to_vec());
        b.put(Tree::Meta, b"m".to_vec(), b"1".to_vec());
        b.put(Tree::Records, b"c".to_vec(), b"3".to_vec());
        let g = group_ops(b.ops.iter());
        let shape: Vec<(Tree, bool, usize)> =
            g.iter().map(|g| (g.tree, g.delete, g.keys.len())).collect();
        assert_eq!(
            shape,
            vec![
                (Tree::Meta, false, 1),
                (Tree::Records, false, 2),
                (Tree::Records, true, 1),
                (Tree::Records, false, 1),
                (Tree::Records, false, 2),
            ]
        );
        // An absence guard whose key is never written leaves no placeholder behind; one
        // whose key is put first inserts the value itself.
        let mut b = Batch::default();
        b.guard(Tree::Index, b"x".to_vec(), None);
        b.guard(Tree::Index, b"y".to_vec(), None);
        b.put(Tree::Index, b"y".to_vec(), b"v".to_vec());
        b.put(Tree::Index, b"y".to_vec(), b"w".to_vec());
        let p = plan(&b);
        assert_eq!(p.leftover, vec![(Tree::Index, vec![b"x".to_vec()])]);
        assert_eq!(
            p.absent,
            vec![(
                Tree::Index,
                vec![b"x".to_vec(), b"y".to_vec()],
                vec![Vec::new(), b"v".to_vec()]
            )]
        );
        assert_eq!(p.groups.len(), 1);
        assert_eq!(p.groups[0].values, vec![b"w".to_vec()]);
    }
}
