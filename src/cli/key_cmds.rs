//! Key lifecycle commands: `key rotate|rewrap|retire`, `rekey`, `passwd`,
//! `keyslot add|list|remove`, `keyring export|import`, `tenant delete --shred`,
//! `backup`, `restore`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use phonevault_keys::{Credential, KdfParams, KeyFileKey, Passphrase};
use zeroize::Zeroizing;

use super::{
    create_private, fail, non_empty, open, passphrase_from_sources, print_json, read_secret_file,
    say, unlock_source, write_new_secret_file, Cli, Failure, KeyCommand,
};
use crate::backup::BackupError;
use crate::policy::TenantName;
use crate::store::StoreError;
use crate::vault::{RestoreOptions, Unlock, Vault, VaultError};

/// Test hook, not a user setting: when set to N, `key rewrap` prints
/// `rewrap progress DONE/TOTAL` on stderr after each committed chunk and sleeps N
/// milliseconds, so that an integration test can kill the process part-way
/// (tests/cli_keys.rs). Unset in normal use: no output, no pause.
const REWRAP_TEST_PAUSE_ENV: &str = "PHONEVAULT_TEST_REWRAP_PAUSE_MS";

/// Argon2id parameters of a new passphrase slot.
#[derive(Debug, Args)]
pub struct KdfArgs {
    /// Argon2id memory in KiB (default 65536; lower it only for tests).
    #[arg(long)]
    pub kdf_memory_kib: Option<u32>,
    /// Argon2id iterations (default 3).
    #[arg(long)]
    pub kdf_iterations: Option<u32>,
}

impl KdfArgs {
    /// The parameters given, if any (missing ones from the default).
    fn given(&self) -> Option<KdfParams> {
        if self.kdf_memory_kib.is_none() && self.kdf_iterations.is_none() {
            return None;
        }
        Some(KdfParams {
            m_kib: self.kdf_memory_kib.unwrap_or(KdfParams::DEFAULT.m_kib),
            t: self.kdf_iterations.unwrap_or(KdfParams::DEFAULT.t),
            p: 1,
        })
    }
}

/// `passwd` options.
#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// File holding the new passphrase (first line); otherwise PHONEVAULT_NEW_PASSPHRASE,
    /// or a prompt (twice) on a terminal.
    #[arg(long)]
    pub new_passphrase_file: Option<PathBuf>,
    /// New Argon2id parameters (default: keep the slot's).
    #[command(flatten)]
    pub kdf: KdfArgs,
}

/// `rekey` options.
#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// Key file of another key-file slot (repeatable): every slot must be opened to
    /// be rewrapped.
    #[arg(long)]
    pub other_key_file: Vec<PathBuf>,
    /// File holding the passphrase of another passphrase slot (repeatable).
    #[arg(long)]
    pub other_passphrase_file: Vec<PathBuf>,
}

/// Key slot commands.
#[derive(Debug, Subcommand)]
pub enum KeyslotCommand {
    /// Add a passphrase slot, a key-file slot (--new-key-file, --existing-key-file), or a
    /// PKCS#11 slot (with the global --pkcs11-module, --pkcs11-token, --pkcs11-key flags).
    #[command(after_help = "Examples:
  phonevault keyslot add --new-key-file /root/phonevault-2.key
  phonevault keyslot add --existing-key-file /media/hsm-export/pv.key
  phonevault keyslot add --new-passphrase-file /run/secrets/second-admin
  PHONEVAULT_PKCS11_PIN_FILE=/run/secrets/hsm-pin phonevault keyslot add \\
      --pkcs11-module /usr/lib/softhsm/libsofthsm2.so --pkcs11-token vault --pkcs11-key phonevault-root
A PKCS#11 slot's secret is sealed by a non-extractable AES key in the token (the PIN comes
from --pkcs11-pin-file or PHONEVAULT_PKCS11_PIN, never the command line); a server given
the same --pkcs11-* flags then unseals itself at start.
The vault is unlocked as usual (--passphrase-file, --key-file, ...); the new slot
opens the same root key. No data is touched.")]
    Add {
        /// Create a random key file at this path (mode 0600, must not exist) and a
        /// slot for it.
        #[arg(long, conflicts_with_all = ["new_passphrase_file", "existing_key_file"])]
        new_key_file: Option<PathBuf>,
        /// A slot for this existing key file (exactly 32 bytes). (`--key-file` itself
        /// names the credential that unlocks the vault.)
        #[arg(long, conflicts_with = "new_passphrase_file")]
        existing_key_file: Option<PathBuf>,
        /// File holding the new slot's passphrase; otherwise PHONEVAULT_NEW_PASSPHRASE
        /// or a prompt.
        #[arg(long)]
        new_passphrase_file: Option<PathBuf>,
        /// Argon2id parameters of a passphrase slot.
        #[command(flatten)]
        kdf: KdfArgs,
    },
    /// List the key slots (ids and kinds, never secrets).
    List,
    /// Remove a key slot by id (refuses to remove the last one).
    #[command(after_help = "Example:
  phonevault keyslot remove 1")]
    Remove {
        /// Slot id (from `keyslot list`).
        id: u32,
    },
}

/// Keyring commands (key material, kept apart from data backups).
#[derive(Debug, Subcommand)]
pub enum KeyringCommand {
    /// Write the keyring (key slots and wrapped tenant seeds, MACed) to FILE.
    #[command(after_help = "Example:
  phonevault keyring export /media/keys/phonevault-keyring-2026-11
Keep it apart from data backups: with a slot credential it opens every tenant's keys,
including keys shredded after it was made.")]
    Export {
        /// Output file (created with mode 0600; must not exist).
        file: PathBuf,
    },
    /// Install a keyring export as the vault's keyring.
    #[command(after_help = "Example:
  phonevault keyring import /media/keys/phonevault-keyring-2026-11
Refuses another vault's keyring, a damaged file, and (without --force) one holding keys
destroyed since it was exported or lacking key versions made since (an older export).")]
    Import {
        /// The export.
        file: PathBuf,
        /// Install it even if it brings back shredded tenants or retired key versions, or
        /// lacks key versions the vault holds (their records become unreadable).
        #[arg(long)]
        force: bool,
    },
}

/// `backup` options.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Output file (mode 0600; must not exist).
    pub file: PathBuf,
}

/// `restore` options.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file.
    pub file: PathBuf,
    /// A keyring export to restore with (and install); default: the vault's keyring.
    #[arg(long)]
    pub keyring: Option<PathBuf>,
    /// Swap the vault's existing store for the backup (the current one is kept beside it).
    #[arg(long)]
    pub replace: bool,
    /// With --keyring: install it even if it brings back destroyed keys or lacks key
    /// versions the vault holds.
    #[arg(long, requires = "keyring")]
    pub force: bool,
    /// Restore the backup's API tokens too (by default they are left out, so that a
    /// token revoked after the backup stays revoked; issue new ones afterwards).
    #[arg(long)]
    pub keep_tokens: bool,
}

/// A store locked by another process, as the key commands explain it.
fn busy(e: VaultError) -> Failure {
    match e {
        VaultError::Store(StoreError::Locked) => fail(BackupError::VaultBusy.to_string()),
        other => other.into(),
    }
}

fn open_busy(cli: &Cli) -> Result<Vault, Failure> {
    if !cli.vault.join(crate::vault::KEYRING_FILE).exists() {
        return Err(VaultError::NoVault(cli.vault.clone()).into());
    }
    let unlock = unlock_source(cli)?;
    Vault::open(&cli.vault, &unlock, crate::vault::OpenOptions::default()).map_err(busy)
}

/// The new passphrase for `passwd` / `keyslot add`.
fn new_passphrase(file: Option<&Path>) -> Result<Passphrase, Failure> {
    if let Some(path) = file {
        let bytes = read_secret_file(path)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| fail(format!("{} is not UTF-8 text", path.display())))?;
        return non_empty(text.lines().next().unwrap_or("").to_owned());
    }
    if let Ok(p) = std::env::var("PHONEVAULT_NEW_PASSPHRASE") {
        return non_empty(p);
    }
    if !std::io::stdin().is_terminal() {
        return Err(fail(
            "no new passphrase given: use --new-passphrase-file FILE, PHONEVAULT_NEW_PASSPHRASE, or run on a terminal to be prompted",
        ));
    }
    let first = rpassword::prompt_password("New passphrase: ")
        .map_err(|e| fail(format!("cannot read the passphrase: {e}")))?;
    let second = Zeroizing::new(
        rpassword::prompt_password("Repeat new passphrase: ")
            .map_err(|e| fail(format!("cannot read the passphrase: {e}")))?,
    );
    if *second != first {
        return Err(fail("the passphrases differ; nothing was changed"));
    }
    non_empty(first)
}

fn key_file(path: &Path) -> Result<KeyFileKey, Failure> {
    let bytes = read_secret_file(path)?;
    KeyFileKey::from_bytes(&bytes).map_err(|_| {
        fail(format!(
            "{} is not a phonevault key file (32 bytes)",
            path.display()
        ))
    })
}

/// `key rotate|rewrap|retire`.
pub(super) fn key(cli: &Cli, c: &KeyCommand) -> Result<(), Failure> {
    match c {
        KeyCommand::Rotate { tenant, index } => {
            let v = open(cli)?.rotate_key(tenant, *index)?;
            let what = if *index { "blind-index" } else { "data" };
            say(cli, serde_json::json!({"tenant": tenant, "key": what, "version": v}),
                &format!("tenant {tenant}: new {what} key version {v}; run `phonevault key rewrap --tenant {tenant}` to move existing records to it"));
            Ok(())
        }
        KeyCommand::Rewrap { tenant } => {
            let v = open(cli)?;
            let bar = if std::io::stderr().is_terminal() && !cli.json {
                indicatif::ProgressBar::new(0)
            } else {
                indicatif::ProgressBar::hidden()
            };
            let pause = std::env::var(REWRAP_TEST_PAUSE_ENV)
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            let r = v.rewrap(tenant, |done, total| {
                bar.set_length(total);
                bar.set_position(done);
                if let Some(ms) = pause {
                    eprintln!("rewrap progress {done}/{total}");
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                }
            })?;
            bar.finish_and_clear();
            say(cli, serde_json::to_value(r).unwrap_or_default(),
                &format!("tenant {tenant}: {} records, {} re-encrypted under data key v{}, {} re-indexed under index key v{}",
                    r.records, r.resealed, r.data_key_version, r.reindexed, r.index_key_version));
            Ok(())
        }
        KeyCommand::Retire {
            tenant,
            below,
            force,
        } => {
            let r = open(cli)?.retire_keys(tenant, *below, *force)?;
            let versions = r
                .destroyed
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let text = if r.destroyed.is_empty() {
                format!("tenant {tenant}: no key version below {below} is left; nothing changed")
            } else if r.unreadable_records > 0 {
                format!("tenant {tenant}: destroyed key version(s) {versions}; {} records were still under them and are now unreadable (reads report them)", r.unreadable_records)
            } else {
                format!("tenant {tenant}: destroyed key version(s) {versions}; no record was under them. Destroy old copies of the keyring file (and exports) too")
            };
            say(
                cli,
                serde_json::json!({"tenant": tenant, "destroyed": r.destroyed, "unreadable_records": r.unreadable_records}),
                &text,
            );
            Ok(())
        }
    }
}

/// `rekey`.
pub(super) fn rekey(cli: &Cli, a: &RekeyArgs) -> Result<(), Failure> {
    let unlock = unlock_source(cli)?;
    let mut others_kf = Vec::new();
    for p in &a.other_key_file {
        others_kf.push(key_file(p)?);
    }
    let mut others_pass = Vec::new();
    for p in &a.other_passphrase_file {
        let bytes = read_secret_file(p)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| fail(format!("{} is not UTF-8 text", p.display())))?;
        others_pass.push(non_empty(text.lines().next().unwrap_or("").to_owned())?);
    }
    // The vault's own credential opens its slot; a key file given as well (with
    // --key-file next to a passphrase) opens another.
    let extra_kf = match (&unlock, &cli.key_file) {
        (Unlock::Passphrase(_), Some(p)) => Some(key_file(p)?),
        _ => None,
    };
    let mut creds: Vec<Credential<'_>> = Vec::new();
    match &unlock {
        Unlock::Passphrase(p) => creds.push(Credential::Passphrase(p)),
        Unlock::KeyFile(k) => creds.push(Credential::KeyFile(k)),
        // Its secret comes from the token once the vault is open, below.
        Unlock::Pkcs11(_) => {}
    }
    creds.extend(extra_kf.iter().map(Credential::KeyFile));
    creds.extend(others_kf.iter().map(Credential::KeyFile));
    creds.extend(others_pass.iter().map(Credential::Passphrase));
    if !cli.vault.join(crate::vault::KEYRING_FILE).exists() {
        return Err(VaultError::NoVault(cli.vault.clone()).into());
    }
    let v = Vault::open(&cli.vault, &unlock, crate::vault::OpenOptions::default()).map_err(busy)?;
    let hsm = match &unlock {
        Unlock::Pkcs11(hsm) => Some(v.pkcs11_credential(hsm)?),
        _ => None,
    };
    if let Some((slot, secret)) = &hsm {
        creds.push(Credential::Pkcs11 {
            slot: *slot,
            secret,
        });
    }
    let slots = v.slots().len();
    v.rekey(&creds).map_err(|e| match e {
        VaultError::Key(k @ phonevault_keys::KeyError::RekeyMissingCredential { .. }) => {
            fail(format!(
                "{k} (with --other-key-file F or --other-passphrase-file F); nothing was changed"
            ))
        }
        other => other.into(),
    })?;
    say(
        cli,
        serde_json::json!({"rekeyed": true, "slots": slots}),
        &format!("new root key: the vault seed, every tenant seed and {slots} key slot(s) rewrapped; credentials unchanged. Destroy old copies of the keyring file and exports"),
    );
    Ok(())
}

/// `passwd`.
pub(super) fn passwd(cli: &Cli, a: &PasswdArgs) -> Result<(), Failure> {
    if cli.passphrase_file.is_none()
        && std::env::var_os("PHONEVAULT_PASSPHRASE").is_none()
        && cli.key_file.is_some()
    {
        return Err(fail(
            "passwd changes the passphrase of the slot the current passphrase opens; give the current passphrase (not --key-file), or add a passphrase slot with `phonevault keyslot add`",
        ));
    }
    let old = passphrase_from_sources(cli, false)?;
    let new = new_passphrase(a.new_passphrase_file.as_deref())?;
    let v = Vault::open(
        &cli.vault,
        &Unlock::Passphrase(Passphrase::new(old.expose_secret().to_owned())),
        crate::vault::OpenOptions::default(),
    )
    .map_err(busy)?;
    let slot = v.change_passphrase(&old, &new, a.kdf.given())?;
    say(
        cli,
        serde_json::json!({"slot": slot, "changed": true}),
        &format!("passphrase of key slot {slot} changed; no data was touched"),
    );
    Ok(())
}

/// `keyslot add|list|remove`.
pub(super) fn keyslot(cli: &Cli, c: &KeyslotCommand) -> Result<(), Failure> {
    match c {
        KeyslotCommand::Add {
            new_key_file,
            existing_key_file,
            new_passphrase_file,
            kdf,
        } => {
            let v = open_busy(cli)?;
            let new_pkcs11 = existing_key_file.is_none()
                && new_key_file.is_none()
                && new_passphrase_file.is_none()
                && cli.pkcs11_module.is_some();
            let (id, kind) = if new_pkcs11 {
                (v.add_pkcs11_slot(&super::pkcs11_config(cli)?)?, "pkcs11")
            } else if let Some(path) = existing_key_file {
                (v.add_key_file_slot(&key_file(path)?)?, "key-file")
            } else if let Some(path) = new_key_file {
                let kf = KeyFileKey::generate();
                write_new_secret_file(path, kf.expose_secret())?;
                match v.add_key_file_slot(&kf) {
                    Ok(id) => (id, "key-file"),
                    Err(e) => {
                        // The file opens nothing: do not leave it behind.
                        let _ = std::fs::remove_file(path);
                        return Err(e.into());
                    }
                }
            } else {
                let pass = new_passphrase(new_passphrase_file.as_deref())?;
                let params = kdf.given().unwrap_or(KdfParams::DEFAULT);
                (v.add_passphrase_slot(&pass, params)?, "passphrase")
            };
            say(
                cli,
                serde_json::json!({"slot": id, "kind": kind}),
                &format!("added {kind} slot {id}"),
            );
            Ok(())
        }
        KeyslotCommand::List => {
            let slots = open_busy(cli)?.slots();
            if cli.json {
                print_json(&serde_json::to_value(&slots).unwrap_or_default());
            } else {
                for s in &slots {
                    match (s.kdf_memory_kib, s.kdf_iterations) {
                        (Some(m), Some(t)) => {
                            println!("{}  {}  argon2id m={m}KiB t={t}", s.id, s.kind)
                        }
                        _ => println!("{}  {}", s.id, s.kind),
                    }
                }
            }
            Ok(())
        }
        KeyslotCommand::Remove { id } => {
            open_busy(cli)?.remove_slot(*id)?;
            say(
                cli,
                serde_json::json!({"slot": id, "removed": true}),
                &format!("removed key slot {id}; destroy old copies of the keyring file and exports, which still hold it"),
            );
            Ok(())
        }
    }
}

/// `keyring export|import`.
pub(super) fn keyring(cli: &Cli, c: &KeyringCommand) -> Result<(), Failure> {
    match c {
        KeyringCommand::Export { file } => {
            let bytes = open_busy(cli)?.export_keyring()?;
            write_new_secret_file(file, &bytes)?;
            say(
                cli,
                serde_json::json!({"file": file.display().to_string(), "bytes": bytes.len()}),
                &format!(
                    "keyring written to {} ({} bytes, mode 0600); keep it with the key holders, apart from data backups",
                    file.display(),
                    bytes.len()
                ),
            );
            Ok(())
        }
        KeyringCommand::Import { file, force } => {
            let bytes = std::fs::read(file)
                .map_err(|e| fail(format!("cannot read {}: {e}", file.display())))?;
            let unlock = unlock_source(cli)?;
            let r = Vault::import_keyring(&cli.vault, &bytes, &unlock, *force).map_err(busy)?;
            let missing = if r.tenants_without_keys.is_empty() {
                String::new()
            } else {
                format!(
                    "; no keys for tenant(s) {}: their records stay unreadable until a keyring holding them is imported",
                    r.tenants_without_keys.join(", ")
                )
            };
            say(
                cli,
                serde_json::to_value(&r).unwrap_or_default(),
                &format!("keyring installed ({} tenants){missing}", r.tenants),
            );
            Ok(())
        }
    }
}

/// `tenant delete NAME --shred` (and its alias `tenant shred NAME --yes`).
pub(super) fn shred(cli: &Cli, name: &TenantName) -> Result<(), Failure> {
    let r = open(cli)?.shred_tenant(name)?;
    say(cli, serde_json::json!({"tenant": name, "shredded": true, "records_deleted": r.records}),
        &format!("tenant {name}: keys destroyed, {} records deleted; destroy old copies of the keyring file and exports too (data backups need nothing: they hold no keys)", r.records));
    Ok(())
}

/// `backup FILE`: written to `FILE.partial`, synced, then renamed, so a failed
/// backup never leaves a file that looks complete.
pub(super) fn backup(cli: &Cli, a: &BackupArgs) -> Result<(), Failure> {
    if a.file.exists() {
        return Err(fail(format!(
            "{} already exists; choose a new backup file name",
            a.file.display()
        )));
    }
    let v = open_busy(cli)?;
    let mut partial = a.file.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = (|| {
        let f = create_private(&partial)?;
        let (f, report) = v
            .backup(std::io::BufWriter::with_capacity(1 << 20, f))
            .map_err(Failure::from)?;
        let f = f
            .into_inner()
            .map_err(|e| fail(format!("cannot write {}: {}", partial.display(), e.error())))?;
        f.sync_all()
            .map_err(|e| fail(format!("cannot write {}: {e}", partial.display())))?;
        std::fs::rename(&partial, &a.file)
            .map_err(|e| fail(format!("cannot rename to {}: {e}", a.file.display())))?;
        Ok::<_, Failure>(report)
    })();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    let size = std::fs::metadata(&a.file).map(|m| m.len()).unwrap_or(0);
    if cli.json {
        let mut j = serde_json::to_value(&report).unwrap_or_default();
        j["file"] = serde_json::json!(a.file.display().to_string());
        j["bytes"] = serde_json::json!(size);
        print_json(&j);
    } else {
        let rows = report
            .rows
            .iter()
            .map(|(t, c)| format!("{t} {c}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "backup written to {} ({size} bytes; rows: {rows}); it holds no keys: keep a `phonevault keyring export` with the key holders",
            a.file.display()
        );
    }
    let _ = std::io::stdout().flush();
    Ok(())
}

/// `restore FILE --vault DIR [--keyring FILE] [--replace]`.
pub(super) fn restore(cli: &Cli, a: &RestoreArgs) -> Result<(), Failure> {
    let unlock = unlock_source(cli)?;
    let opts = RestoreOptions {
        keyring: a.keyring.clone(),
        replace: a.replace,
        force: a.force,
        keep_tokens: a.keep_tokens,
        stop_mid_swap: false,
    };
    let r = Vault::restore(&a.file, &cli.vault, &unlock, &opts).map_err(busy)?;
    if cli.json {
        print_json(&serde_json::to_value(&r).unwrap_or_default());
    } else {
        let mut text = format!(
            "restored {} rows into {} (backup of vault {} taken at {})",
            r.restored,
            cli.vault.display(),
            r.backup.vault_id,
            super::fmt_time(r.backup.created_at)
        );
        if !r.skipped_tenants.is_empty() {
            text.push_str(&format!(
                "; left out {} rows of tenant(s) {} whose keys were destroyed",
                r.skipped_rows,
                r.skipped_tenants.join(", ")
            ));
        }
        if r.tokens_dropped > 0 {
            text.push_str(&format!(
                "; left out the backup's {} API token rows (revocations since the backup stay \
                 in force): issue new tokens with `phonevault token create`, or restore with \
                 --keep-tokens",
                r.tokens_dropped
            ));
        }
        if let Some(p) = &r.audit_archive {
            text.push_str(&format!(
                "; the backup's audit links are in {} (verify them with the K0 of their chain: `audit verify --archive FILE --archives-only`); the restored vault starts a new audit chain: hand its K0 to the auditors with `phonevault audit key export`",
                p.display()
            ));
        }
        if let Some(p) = &r.replaced_store {
            text.push_str(&format!(
                "; the previous store is kept at {} (delete it when satisfied)",
                p.display()
            ));
        }
        println!("{text}");
    }
    Ok(())
}
