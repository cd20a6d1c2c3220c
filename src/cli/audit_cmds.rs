//! `phonevault audit ...`: the auditors' key, verification, checkpoints, archives,
//! export and the incident-response report.
//!
//! Verification and checkpoints read the store's audit tree directly and need no
//! passphrase: auditors hold K0, not the vault's keys. The entries are sealed under
//! the audit read key, so export and report read them with the read key of the key
//! file (`--key`, written by `audit key export` beside K0) or, without one, unlock
//! the vault for its read key. `audit key export`, `audit archive` and `audit report
//! --reveal` unlock the vault.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use phonevault_keys::{AuditKey, AuditReadKey};
use serde_json::json;
use zeroize::Zeroizing;

use super::{create_private, fail, open, print_json, Cli, Failure};
use crate::audit::{self, AuditError, Checkpoint, Entry, Link, Outcome, Report};
use crate::policy::TenantName;
use crate::record::RecordId;
use crate::store::{Store, StoreLocation, Tree};
use crate::vault::{self, VaultError};

/// Audit log commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The auditors' key K0.
    #[command(subcommand)]
    Key(AuditKeyCommand),
    /// Verify the whole chain with K0 (exit 0 only when intact; otherwise names the
    /// first bad link).
    #[command(after_help = "Examples:
  phonevault audit verify --key /secure/k0.hex
  phonevault audit verify --key /secure/k0.hex --checkpoint cp-2026-11-01.json
  phonevault audit verify --key /secure/k0.hex --archive audit-2026-10.jsonl")]
    Verify(VerifyArgs),
    /// Print where the chain ends (sequence and head), to keep off this machine.
    #[command(after_help = "Example:
  phonevault audit checkpoint --out /mnt/offsite/cp-$(date +%F).json")]
    Checkpoint {
        /// Write the checkpoint to this file (0600) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Move links older than a time into an archive file (the live log then starts
    /// at the archive's last checkpoint).
    #[command(after_help = "Example:
  phonevault audit archive --before 2026-10-01 --out audit-until-2026-10.jsonl")]
    Archive {
        /// Archive links whose every entry is older than this (RFC 3339, YYYY-MM-DD
        /// or unix seconds).
        #[arg(long)]
        before: String,
        /// The archive file to write (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print entries as JSON lines.
    #[command(after_help = "Example:
  phonevault audit export --since 2026-11-01 --tenant shop --action find")]
    Export(ExportArgs),
    /// Incident-response summary: who revealed or exported how many numbers, which
    /// records were revealed, refusals and failed authentications, per tenant.
    #[command(after_help = "Examples:
  phonevault audit report --since 2026-11-28T00:00:00Z
  phonevault audit report --since 2026-11-28 --key k0.hex --reveal   # numbers for breach notification")]
    Report(ReportArgs),
}

/// `audit key` commands.
#[derive(Debug, Subcommand)]
pub enum AuditKeyCommand {
    /// Write K0 and the read key for the auditors, once: the vault then forgets K0.
    #[command(after_help = "Examples:
  phonevault audit key export --out /secure/auditors/k0.hex
  phonevault audit key export --read-only --out /secure/auditors/read.hex   # the read key again")]
    Export {
        /// File to write (0600, must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Write the read key alone (it opens the entries; it cannot verify or sign):
        /// for auditors whose K0 was exported before entries were sealed, or a new
        /// auditor. May be repeated; each export is audited.
        #[arg(long)]
        read_only: bool,
    },
}

/// Arguments of `audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The key file from `audit key export` (K0, and the read key that also lets
    /// verify open and count the entries).
    #[arg(long)]
    pub key: PathBuf,
    /// A checkpoint taken earlier: the chain must reach it unchanged.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Archive files, oldest first, when older links were archived.
    #[arg(long)]
    pub archive: Vec<PathBuf>,
    /// A checkpoint exported earlier and kept off the machine, trusted as the start of
    /// the chain when the archives before it were discarded. Without it, the chain must
    /// start at its first link (0): the oldest archive first.
    #[arg(long, value_name = "CHECKPOINT")]
    pub start: Option<PathBuf>,
    /// Verify the archives alone, not the live log: for the links a restore moved out
    /// of the store (`audit-restored-*.jsonl`, verified with the K0 of the chain they
    /// belong to), which the restored vault's new chain does not continue.
    #[arg(long, requires = "archive")]
    pub archives_only: bool,
}

/// Period and filters shared by export and report.
#[derive(Debug, Args)]
pub struct Period {
    /// From this time (RFC 3339, YYYY-MM-DD or unix seconds).
    #[arg(long)]
    pub since: Option<String>,
    /// Until this time, exclusive.
    #[arg(long)]
    pub until: Option<String>,
    /// The key file from `audit key export`: its K0 verifies the chain before it is
    /// read, its read key opens the entries. Without it, the vault is unlocked for its
    /// read key and the chain is read unverified.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Archive files to read before the live log, oldest first.
    #[arg(long)]
    pub archive: Vec<PathBuf>,
}

/// Arguments of `audit export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub period: Period,
    /// Only this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only this action (find, get, export, add, auth-failed, ...).
    #[arg(long)]
    pub action: Option<String>,
}

/// Arguments of `audit report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub period: Period,
    /// Also list the numbers of the revealed records, for breach notification
    /// (unlocks the vault; recorded as a reveal).
    #[arg(long)]
    pub reveal: bool,
}

/// Runs an `audit` command.
pub fn run(cli: &Cli, c: &AuditCommand) -> Result<(), Failure> {
    match c {
        AuditCommand::Key(AuditKeyCommand::Export { out, read_only }) => {
            key_export(cli, out, *read_only)
        }
        AuditCommand::Verify(a) => verify(cli, a),
        AuditCommand::Checkpoint { out } => checkpoint(cli, out.as_deref()),
        AuditCommand::Archive { before, out } => archive(cli, &parse_time(before)?, out),
        AuditCommand::Export(a) => export(cli, a),
        AuditCommand::Report(a) => report(cli, a),
    }
}

/// First line of a key file of `audit key export`.
const KEY_FILE_FORMAT: &str = "phonevault-audit-keys-v2";

fn key_export(cli: &Cli, out: &Path, read_only: bool) -> Result<(), Failure> {
    if out.exists() {
        return Err(fail(format!(
            "{} exists: refusing to overwrite it (choose another --out)",
            out.display()
        )));
    }
    let v = open(cli)?;
    let (k0, read) = if read_only {
        (None, v.export_audit_read_key()?)
    } else {
        (Some(v.export_audit_key()?), v.audit_read_key())
    };
    let mut text = Zeroizing::new(format!("{KEY_FILE_FORMAT}\n"));
    if let Some(k0) = &k0 {
        text.push_str(&format!("k0 {}\n", hex::encode(k0.expose_secret())));
    }
    text.push_str(&format!("read {}\n", hex::encode(read.expose_secret())));
    let mut f = create_private(out)?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| fail(format!("writing {}: {e}", out.display())))?;
    if cli.json {
        print_json(&json!({"exported": out.display().to_string(), "k0": k0.is_some()}));
    } else if k0.is_some() {
        println!(
            "K0 and the audit read key written to {}: give it to the auditors and keep no other copy; the vault no longer holds K0",
            out.display()
        );
    } else {
        println!(
            "the audit read key written to {}: it opens the audit entries (it cannot verify the chain); give it to the auditors",
            out.display()
        );
    }
    Ok(())
}

/// What a key file holds: K0 and the read key, either of which may be absent (a file
/// of `--read-only`; a bare K0 written before entries were sealed).
struct AuditKeys {
    k0: Option<AuditKey>,
    read: Option<AuditReadKey>,
}

fn read_keys(path: &Path) -> Result<AuditKeys, Failure> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| fail(format!("reading the audit key {}: {e}", path.display())))?,
    );
    let bad = || {
        fail(format!(
            "{} is not an audit key file: expected the file written by `phonevault audit key export`",
            path.display()
        ))
    };
    let key32 = |hex_text: &str| -> Result<Zeroizing<[u8; 32]>, Failure> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_text, &mut *bytes).map_err(|_| bad())?;
        Ok(bytes)
    };
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().ok_or_else(bad)?;
    if first != KEY_FILE_FORMAT {
        // The earlier form: K0 alone, 64 hexadecimal characters.
        if lines.next().is_some() {
            return Err(bad());
        }
        let k0 = AuditKey::from_bytes(&*key32(first)?);
        return Ok(AuditKeys {
            k0: Some(k0),
            read: None,
        });
    }
    let mut keys = AuditKeys {
        k0: None,
        read: None,
    };
    for line in lines {
        match line.split_once(' ') {
            Some(("k0", h)) if keys.k0.is_none() => {
                keys.k0 = Some(AuditKey::from_bytes(&*key32(h.trim())?));
            }
            Some(("read", h)) if keys.read.is_none() => {
                keys.read = Some(AuditReadKey::from_bytes(&*key32(h.trim())?));
            }
            _ => return Err(bad()),
        }
    }
    if keys.k0.is_none() && keys.read.is_none() {
        return Err(bad());
    }
    Ok(keys)
}

fn read_k0(path: &Path) -> Result<AuditKey, Failure> {
    read_keys(path)?.k0.ok_or_else(|| {
        fail(format!(
            "{} holds the audit read key only, not K0: verifying needs the file `phonevault audit key export` wrote first",
            path.display()
        ))
    })
}

/// The store alone, as `--store` names it: no passphrase, no keys.
type AuditStore = std::sync::Arc<dyn Store>;

/// Opens the store alone: no passphrase, no keys.
fn open_store(cli: &Cli) -> Result<AuditStore, Failure> {
    let location = super::store_location(cli)?;
    let dir = cli.vault.join(vault::STORE_DIR);
    if matches!(location, StoreLocation::Sled) && !dir.exists() {
        return Err(VaultError::NoVault(cli.vault.clone()).into());
    }
    Ok(location.open(&dir, 8 << 20).map_err(VaultError::from)?)
}

/// The live log's links in order, a page at a time.
fn live_links(store: &AuditStore) -> impl Iterator<Item = Result<Vec<u8>, Failure>> + '_ {
    let store: &dyn Store = &**store;
    store
        .scan(Tree::Audit, &[], None, 1000)
        .map(|e| e.map(|(_, v)| v).map_err(|e| VaultError::from(e).into()))
}

/// An archive file: a header line, then one link per line.
struct Archive {
    start: Checkpoint,
    end: Checkpoint,
    links: Vec<Vec<u8>>,
}

use audit::{checkpoint_json, ARCHIVE_FORMAT};

fn checkpoint_from(v: &serde_json::Value) -> Option<Checkpoint> {
    let next_seq = v.get("seq")?.as_u64()?;
    let mut head = [0u8; 32];
    hex::decode_to_slice(v.get("head")?.as_str()?, &mut head).ok()?;
    Some(Checkpoint { next_seq, head })
}

fn read_archive(path: &Path) -> Result<Archive, Failure> {
    let bad = |why: &str| {
        fail(format!(
            "{} is not a usable audit archive: {why}",
            path.display()
        ))
    };
    let f =
        std::fs::File::open(path).map_err(|e| fail(format!("reading {}: {e}", path.display())))?;
    let mut lines = std::io::BufReader::new(f).lines();
    let header: serde_json::Value = lines
        .next()
        .and_then(|l| l.ok())
        .and_then(|l| serde_json::from_str(&l).ok())
        .ok_or_else(|| bad("no header line"))?;
    if header.get("format").and_then(|f| f.as_str()) != Some(ARCHIVE_FORMAT) {
        return Err(bad("unknown format"));
    }
    let start = header
        .get("start")
        .and_then(checkpoint_from)
        .ok_or_else(|| bad("no start"))?;
    let end = header
        .get("end")
        .and_then(checkpoint_from)
        .ok_or_else(|| bad("no end"))?;
    let mut links = Vec::new();
    for line in lines {
        let line = line.map_err(|e| fail(format!("reading {}: {e}", path.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        links.push(hex::decode(line.trim()).map_err(|_| bad("a link line is not hexadecimal"))?);
    }
    Ok(Archive { start, end, links })
}

fn read_checkpoint(path: &Path) -> Result<Checkpoint, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(format!("reading {}: {e}", path.display())))?;
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .as_ref()
        .and_then(checkpoint_from)
        .ok_or_else(|| {
            fail(format!(
                "{} is not a checkpoint: expected {{\"seq\": N, \"head\": \"hex\"}} from `phonevault audit checkpoint`",
                path.display()
            ))
        })
}

fn broken(e: AuditError) -> Failure {
    fail(format!("audit verify FAILED: {e}"))
}

impl From<AuditError> for Failure {
    fn from(e: AuditError) -> Self {
        broken(e)
    }
}

/// Verifies (with K0) or only decodes every link of the archives, then of the live
/// log, passing each to `each`. Returns where the chain ends.
///
/// With K0 the chain must start at its first link, or at `trusted_start`: an archive
/// proves nothing about the links before its own start, so a missing oldest archive
/// must not pass as an intact chain.
fn walk(
    cli: &Cli,
    k0: Option<&AuditKey>,
    (archives, trusted_start, live): (&[PathBuf], Option<&Checkpoint>, bool),
    checkpoint: Option<&Checkpoint>,
    mut each: impl FnMut(Link) -> Result<(), Failure>,
) -> Result<Checkpoint, Failure> {
    let trusted = |start: &Checkpoint| {
        k0.is_none() || *start == Checkpoint::GENESIS || trusted_start == Some(start)
    };
    let store = open_store(cli)?;
    // The live log starts at its first stored link; before it, the archives.
    let first_live = match live_links(&store).next() {
        Some(l) => audit::decode_unverified(&l?).map(|l| l.seq),
        None => None,
    };
    let mut at: Option<Checkpoint> = None;
    let mut step = |start: Checkpoint,
                    links: &mut dyn Iterator<Item = Vec<u8>>,
                    cp: Option<&Checkpoint>|
     -> Result<Checkpoint, Failure> {
        match k0 {
            Some(k0) => audit::verify_from(k0, start, links, cp, &mut each),
            None => {
                let mut end = start;
                for bytes in links {
                    let link = audit::decode_unverified(&bytes)
                        .ok_or_else(|| broken(AuditError::BadLink(end.next_seq)))?;
                    end = Checkpoint {
                        next_seq: link.seq + 1,
                        head: link.head,
                    };
                    each(link)?;
                }
                Ok(end)
            }
        }
    };
    for path in archives {
        let a = read_archive(path)?;
        if at.is_none() && !trusted(&a.start) {
            return Err(fail(format!(
                "{} starts at link {}, not at the chain's first link: pass every archive, \
                 oldest first, or the checkpoint it starts at (exported earlier and kept off \
                 the machine) with --start; without one of them the links before it cannot be \
                 verified",
                path.display(),
                a.start.next_seq
            )));
        }
        if let Some(prev) = at {
            if prev != a.start {
                return Err(fail(format!(
                    "{} does not continue the previous archive (it starts at link {}, the previous ended at {}): pass the archives oldest first",
                    path.display(),
                    a.start.next_seq,
                    prev.next_seq
                )));
            }
        }
        let end = step(a.start, &mut a.links.into_iter(), None)?;
        if end != a.end {
            return Err(broken(AuditError::Checkpoint(a.end.next_seq)));
        }
        at = Some(end);
    }
    if !live {
        return at.ok_or_else(|| fail("no archive given: pass --archive FILE"));
    }
    let start = match (at, first_live) {
        (Some(a), _) => a,
        (None, None | Some(0)) => Checkpoint::GENESIS,
        (None, Some(n)) if trusted_start.is_some_and(|t| t.next_seq == n) => {
            trusted_start.copied().unwrap_or(Checkpoint::GENESIS)
        }
        (None, Some(n)) => {
            return Err(fail(format!(
                "the live audit log starts at link {n} (older links were archived): pass the archive files with --archive, oldest first"
            )))
        }
    };
    let mut err = None;
    let mut live = live_links(&store).map_while(|r| match r {
        Ok(v) => Some(v),
        Err(e) => {
            err = Some(e);
            None
        }
    });
    let end = step(start, &mut live, checkpoint)?;
    if let Some(e) = err {
        return Err(e);
    }
    Ok(end)
}

fn verify(cli: &Cli, a: &VerifyArgs) -> Result<(), Failure> {
    let k0 = read_k0(&a.key)?;
    let read = read_keys(&a.key)?.read;
    // Without the read key, sealed links are verified but their entries not counted.
    let mut sealed = 0u64;
    let cp = a.checkpoint.as_deref().map(read_checkpoint).transpose()?;
    let start = a.start.as_deref().map(read_checkpoint).transpose()?;
    let mut entries = 0u64;
    let mut links = 0u64;
    let end = walk(
        cli,
        Some(&k0),
        (&a.archive, start.as_ref(), !a.archives_only),
        cp.as_ref(),
        |l| {
            links += 1;
            if l.is_sealed() && read.is_none() {
                sealed += 1;
            } else {
                entries += l.entries(read.as_ref())?.len() as u64;
            }
            Ok(())
        },
    )?;
    let counted = if sealed == 0 {
        format!("{entries} entries")
    } else {
        format!("{entries} entries in the links in clear, {sealed} links sealed (the key file holds no read key)")
    };
    if cli.json {
        print_json(&json!({
            "intact": true,
            "links": links,
            "entries": (sealed == 0).then_some(entries),
            "end": checkpoint_json(&end),
        }));
    } else {
        println!(
            "audit chain intact: {links} links, {counted}, ends at link {} (head {})",
            end.next_seq,
            hex::encode(end.head)
        );
    }
    Ok(())
}

fn checkpoint(cli: &Cli, out: Option<&Path>) -> Result<(), Failure> {
    let store = open_store(cli)?;
    let last = store.last_value(Tree::Audit).map_err(VaultError::from)?;
    let cp = match last {
        None => Checkpoint::GENESIS,
        Some(bytes) => {
            let link =
                audit::decode_unverified(&bytes).ok_or_else(|| broken(AuditError::BadLink(0)))?;
            Checkpoint {
                next_seq: link.seq + 1,
                head: link.head,
            }
        }
    };
    let v = checkpoint_json(&cp);
    match out {
        Some(path) => {
            let mut f = create_private(path)?;
            writeln!(f, "{v}")
                .and_then(|()| f.sync_all())
                .map_err(|e| fail(format!("writing {}: {e}", path.display())))?;
            println!(
                "checkpoint of link {} written to {}",
                cp.next_seq,
                path.display()
            );
        }
        None => print_json(&v),
    }
    Ok(())
}

fn archive(cli: &Cli, before: &u64, out: &Path) -> Result<(), Failure> {
    if out.exists() {
        return Err(fail(format!(
            "{} exists: refusing to overwrite it (choose another --out)",
            out.display()
        )));
    }
    let v = open(cli)?;
    let result = v.archive_audit(*before, |start, links| {
        let end = links
            .last()
            .and_then(|(_, b)| audit::decode_unverified(b))
            .map(|l| Checkpoint {
                next_seq: l.seq + 1,
                head: l.head,
            })
            .unwrap_or(start);
        let text = audit::archive_text(&start, &end, links.iter().map(|(_, b)| b.as_slice()));
        vault::write_atomic(out, text.as_bytes())
    })?;
    match result {
        None => println!("nothing to archive: no link is entirely older than that"),
        Some(end) => println!(
            "archived links before {} to {}; keep it with its checkpoint (the live log now starts there)",
            end.next_seq,
            out.display()
        ),
    }
    Ok(())
}

/// A period's times, K0 (to verify with, when the key file holds it) and the read
/// key: the key file's, or else the unlocked vault's.
fn period(
    cli: &Cli,
    p: &Period,
) -> Result<(u64, Option<u64>, Option<AuditKey>, AuditReadKey), Failure> {
    let since = p.since.as_deref().map(parse_time).transpose()?.unwrap_or(0);
    let until = p.until.as_deref().map(parse_time).transpose()?;
    let keys = p.key.as_deref().map(read_keys).transpose()?;
    let (k0, read) = keys.map_or((None, None), |k| (k.k0, k.read));
    if k0.is_none() {
        eprintln!(
            "note: the chain is read without verification; pass --key KEY-FILE (from `phonevault audit key export`) to verify it first"
        );
    }
    let read = match read {
        Some(r) => r,
        None => {
            // The vault closes (and lets go of the store) before the chain is read.
            let v = open(cli).map_err(|e| {
                fail(format!(
                    "the audit entries are sealed: pass --key with the file of `phonevault audit key export` (it holds the read key), or unlock the vault ({})",
                    e.message
                ))
            })?;
            v.audit_read_key()
        }
    };
    Ok((since, until, k0, read))
}

fn outcome_json(o: &Outcome) -> serde_json::Value {
    match o {
        Outcome::Ok => json!("ok"),
        Outcome::Refused => json!("refused"),
        Outcome::Failed(code) => json!({"failed": code}),
    }
}

fn entry_json(seq: u64, e: &Entry) -> serde_json::Value {
    json!({
        "seq": seq,
        "time": super::fmt_time(e.time),
        "actor": e.actor,
        "tenant": e.tenant,
        "action": e.action,
        "records": e.records.iter().map(hex::encode).collect::<Vec<_>>(),
        "purpose": e.purpose,
        "reveal": e.reveal,
        "outcome": outcome_json(&e.outcome),
    })
}

fn export(cli: &Cli, a: &ExportArgs) -> Result<(), Failure> {
    let (since, until, key, read) = period(cli, &a.period)?;
    let window = Report::new(since, until);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    walk(
        cli,
        key.as_ref(),
        (&a.period.archive, None, true),
        None,
        |link| {
            for e in &link.entries(Some(&read))? {
                if !window.covers(e.time)
                    || a.tenant
                        .as_ref()
                        .is_some_and(|t| e.tenant.as_ref() != Some(t))
                    || a.action.as_ref().is_some_and(|x| &e.action != x)
                {
                    continue;
                }
                writeln!(out, "{}", entry_json(link.seq, e))
                    .map_err(|e| fail(format!("writing the export: {e}")))?;
            }
            Ok(())
        },
    )?;
    out.flush()
        .map_err(|e| fail(format!("writing the export: {e}")))
}

fn report(cli: &Cli, a: &ReportArgs) -> Result<(), Failure> {
    let (since, until, key, read) = period(cli, &a.period)?;
    let mut r = Report::new(since, until);
    walk(
        cli,
        key.as_ref(),
        (&a.period.archive, None, true),
        None,
        |link| {
            link.entries(Some(&read))?.iter().for_each(|e| r.add(e));
            Ok(())
        },
    )?;
    let mut numbers = serde_json::Map::new();
    if a.reveal {
        // The store was closed by `walk`; now the vault opens (the passphrase holder).
        let v = open(cli)?;
        for (tenant, actors) in &r.tenants {
            let ids: std::collections::BTreeSet<String> = actors
                .values()
                .flat_map(|s| s.revealed_ids.iter().cloned())
                .collect();
            // "-" (no tenant) and any name the vault would not have written hold no
            // records.
            let Ok(name) = TenantName::parse(tenant) else {
                continue;
            };
            if ids.is_empty() {
                continue;
            }
            let ids = ids
                .iter()
                .map(|id| RecordId::parse(id).ok_or(VaultError::InvalidRecordId))
                .collect::<Result<Vec<_>, _>>()?;
            let list = v.numbers_for_notification(&name, &ids)?;
            let m: serde_json::Map<String, serde_json::Value> = list
                .into_iter()
                .map(|(id, n)| {
                    let n = n.map_or(json!(null), |n| json!(n.expose_secret()));
                    (id.to_string(), n)
                })
                .collect();
            numbers.insert(tenant.clone(), serde_json::Value::Object(m));
        }
    }
    if cli.json {
        let mut v = serde_json::to_value(&r).unwrap_or_default();
        if a.reveal {
            v["numbers"] = serde_json::Value::Object(numbers);
        }
        print_json(&v);
        return Ok(());
    }
    println!(
        "audit report from {} to {}: {} entries",
        super::fmt_time(r.since),
        r.until.map_or("now".into(), super::fmt_time),
        r.entries
    );
    for (tenant, actors) in &r.tenants {
        println!("tenant {tenant}:");
        for (actor, s) in actors {
            println!(
                "  {actor}: {} reads, {} revealed, {} exported, {} refused, {} denied, {} failed, {} writes",
                s.reads, s.revealed, s.exported, s.refused, s.denied, s.failed, s.writes
            );
            for id in &s.revealed_ids {
                let n = numbers
                    .get(tenant)
                    .and_then(|m| m.get(id))
                    .map(|n| match n.as_str() {
                        Some(s) => format!("  {s}"),
                        None => "  (erased)".into(),
                    })
                    .unwrap_or_default();
                println!("    revealed {id}{n}");
            }
        }
    }
    Ok(())
}

/// Parses RFC 3339, `YYYY-MM-DD` (midnight UTC) or unix seconds.
pub(crate) fn parse_time(s: &str) -> Result<u64, Failure> {
    crate::policy::values::parse_time(s).map_err(|e| fail(e.to_string()))
}
