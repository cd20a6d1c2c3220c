//! Data backups and restores: a consistent snapshot of every tree of the store, rows
//! as stored, in the format of [`crate::backup`]; key material stays out of it.

use std::collections::BTreeSet;
use std::io::{BufReader, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::PoisonError;

use phonevault_keys::Keyring;

use super::audit::{self as vault_audit, AuditLog};
use super::keyring_file::{check_private, read_keyring, write_atomic};
use super::keyring_rules::{check_no_loss, check_no_resurrection, merge_counters, unlock_ring};
use super::layout::{BACKUP_START_ROW, KEY_ROWS, RESTORE_NEW, RESTORE_PARTIAL, STATE_ROW};
use super::rowmac::decode_row;
use super::{lifecycle, TenantRow, Unlock, Vault, VaultError, KEYRING_FILE, STORE_DIR};
use crate::audit::{self, Checkpoint};
use crate::backup::{BackupError, BackupReader, BackupWriter, Header};
use crate::store::{Batch, StoreError, StoreLocation, Tree};

/// Rows read from the store per page while backing up.
const PAGE: usize = 1000;

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BackupReport {
    /// The vault id (hex).
    pub vault_id: String,
    /// When the snapshot was taken (unix seconds).
    pub created_at: u64,
    /// Rows per tree, by tree name.
    pub rows: Vec<(String, u64)>,
    /// Rows in all.
    pub total: u64,
}

impl BackupReport {
    fn from_header(h: &Header) -> BackupReport {
        BackupReport {
            vault_id: hex::encode(h.vault_id),
            created_at: h.created_at,
            rows: Tree::ALL
                .iter()
                .zip(h.counts)
                .map(|(t, c)| (t.name().to_owned(), c))
                .collect(),
            total: h.total(),
        }
    }
}

/// How to restore.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// A keyring export to use (and install) instead of the vault directory's keyring.
    pub keyring: Option<PathBuf>,
    /// Swap an existing store for the backup (the current one is kept beside it).
    pub replace: bool,
    /// Install a `keyring` that holds keys the current keyring has destroyed.
    pub force: bool,
    /// Restore the backup's API tokens too. Off by default: a token revoked after the
    /// backup was made would work again (undoing a revocation of the incident runbook).
    pub keep_tokens: bool,
    /// For crash tests: stop (with an error, cleaning nothing up) between the two
    /// renames of the store swap, as a crash there would.
    #[doc(hidden)]
    pub stop_mid_swap: bool,
}

/// What a restore did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RestoreReport {
    /// The backup's header.
    pub backup: BackupReport,
    /// Rows written into the new store.
    pub restored: u64,
    /// Rows left out because their tenant has no keys in the keyring (shredded
    /// after the backup was made): they could never be decrypted.
    pub skipped_rows: u64,
    /// The tenants left out.
    pub skipped_tenants: Vec<String>,
    /// API tokens of the backup left out (all of them, unless `keep_tokens`): issue
    /// new ones with `phonevault token create`.
    pub tokens_dropped: u64,
    /// Where the replaced store was kept (with `replace`).
    pub replaced_store: Option<PathBuf>,
    /// The archive file the backup's audit links went to (in the vault directory):
    /// the restored vault starts a new chain under a new K0 (`audit key export`), and
    /// the backup's links are verified there with the K0 of their chain
    /// (`audit verify --archive FILE --archives-only`).
    pub audit_archive: Option<PathBuf>,
}

fn busy(e: StoreError) -> VaultError {
    match e {
        StoreError::Locked => VaultError::Backup(BackupError::VaultBusy),
        other => VaultError::Store(other),
    }
}

fn open_file(path: &Path) -> Result<BufReader<std::fs::File>, VaultError> {
    std::fs::File::open(path)
        .map(|f| BufReader::with_capacity(1 << 20, f))
        .map_err(|e| VaultError::io("opening", path, e))
}

fn sync_dir(dir: &Path) -> Result<(), VaultError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| VaultError::io("syncing", dir, e))
}

impl Vault {
    /// Writes a consistent snapshot of every tree of the store to `out`: rows exactly
    /// as stored (records encrypted, rows MACed), the header with the counts, and a
    /// MAC under the vault's backup key. No key material goes into it: neither K0 nor
    /// the sealed current audit key (nor the journal mark) is copied, only the chain's
    /// links and where the live chain starts.
    ///
    /// Works on an open vault in use: reads go on meanwhile, and record writes (which
    /// all take the vault's write lock, as this does) wait until the snapshot is done,
    /// so records, index and expiry entries are captured together.
    pub fn backup<W: Write + Seek>(&self, out: W) -> Result<(W, BackupReport), VaultError> {
        self.audited("backup", None, None, |_| self.backup_in(out))
    }

    fn backup_in<W: Write + Seek>(&self, out: W) -> Result<(W, BackupReport), VaultError> {
        let (key, vault_id) = {
            let ring = self.keyring.lock().unwrap_or_else(PoisonError::into_inner);
            (ring.vault_keys(&self.root)?.backup, ring.vault_id.0)
        };
        let _w = self.write_guard();
        let mut w = BackupWriter::new(out, &key)?;
        let start = self.audit_status().start;
        let mut start_row = start.next_seq.to_le_bytes().to_vec();
        start_row.extend_from_slice(&start.head);
        let mut start_written = false;
        for tree in Tree::ALL {
            for row in self.store.scan(tree, &[], None, PAGE) {
                let (k, v) = row?;
                if tree == Tree::Meta {
                    if KEY_ROWS.contains(&k.as_slice()) {
                        continue;
                    }
                    if !start_written && k.as_slice() > BACKUP_START_ROW {
                        w.entry(tree, BACKUP_START_ROW, &start_row)?;
                        start_written = true;
                    }
                }
                w.entry(tree, &k, &v)?;
            }
            if tree == Tree::Meta && !start_written {
                w.entry(tree, BACKUP_START_ROW, &start_row)?;
                start_written = true;
            }
        }
        let (out, header) = w.finish(vault_id, self.now())?;
        Ok((out, BackupReport::from_header(&header)))
    }

    /// Reads a backup file whole and checks it: structure, vault, MAC. Writes nothing.
    pub fn verify_backup(
        file: &Path,
        ring: &Keyring,
        unlock: &Unlock,
    ) -> Result<BackupReport, VaultError> {
        let root = unlock_ring(ring, unlock)?;
        let key = ring.vault_keys(&root)?.backup;
        let mut r = BackupReader::new(open_file(file)?, &key)?;
        check_vault(r.header(), ring)?;
        while r.next_entry()?.is_some() {}
        Ok(BackupReport::from_header(&r.finish()?))
    }

    /// Restores a backup into the vault directory `dir`.
    ///
    /// The whole file is read and its MAC verified before anything is written; a
    /// damaged, truncated or foreign file is refused. The rows go into a new store
    /// beside the live one, which is renamed into place only when complete (a crash
    /// leaves the old vault, or none, never half of one). The keyring is the
    /// directory's, or `opts.keyring` (a `keyring export`), which is then installed.
    /// Rows of tenants the keyring holds no keys for (shredded after the backup) are
    /// left out: the backup never brings back what shredding destroyed.
    pub fn restore(
        file: &Path,
        dir: &Path,
        unlock: &Unlock,
        opts: &RestoreOptions,
    ) -> Result<RestoreReport, VaultError> {
        let given = match &opts.keyring {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| VaultError::io("reading", path, e))?;
                Some(Keyring::decode(&bytes)?)
            }
            None => None,
        };
        let current = if dir.join(KEYRING_FILE).exists() {
            Some(read_keyring(dir)?)
        } else {
            None
        };
        let mut ring = match (&given, &current) {
            (Some(g), _) => g.clone(),
            (None, Some(c)) => c.clone(),
            (None, None) => {
                return Err(VaultError::InvalidArgument(format!(
                    "no keyring at {}: give the vault's keyring export with --keyring FILE",
                    dir.display()
                )))
            }
        };
        if let (Some(g), Some(c)) = (&given, &current) {
            if g.vault_id != c.vault_id {
                return Err(VaultError::KeyringMismatch);
            }
            if !opts.force {
                check_no_resurrection(c, g)?;
                check_no_loss(c, g)?;
            }
        }
        // 1. Verify the whole file before writing anything.
        let report = Self::verify_backup(file, &ring, unlock)?;
        let root = unlock_ring(&ring, unlock)?;
        if let (Some(_), Some(c)) = (&given, &current) {
            if merge_counters(c, &mut ring) {
                ring.seal(&root);
            }
        }
        let keys = ring.vault_keys(&root)?;

        // 2. Where the new store is built.
        let live = dir.join(STORE_DIR);
        let fresh_dir = !dir.exists();
        let staging_dir = if fresh_dir {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "vault".to_owned());
            dir.parent()
                .unwrap_or(Path::new("."))
                .join(format!(".{name}.restore-tmp"))
        } else {
            check_private(dir)?;
            lifecycle::recover_compaction(dir)?;
            dir.to_owned()
        };
        if live.exists() {
            if !opts.replace {
                return Err(BackupError::TargetInUse(dir.display().to_string()).into());
            }
            // Fails now, before any work, if a server holds the store.
            drop(StoreLocation::Sled.open(&live, 1 << 20).map_err(busy)?);
        }
        // Into a directory of its own, never compaction's: its crash recovery deletes a
        // store it finds under its names.
        let staged = if fresh_dir {
            staging_dir.join(STORE_DIR)
        } else {
            staging_dir.join(RESTORE_PARTIAL)
        };
        if fresh_dir && staging_dir.exists() {
            std::fs::remove_dir_all(&staging_dir)
                .map_err(|e| VaultError::io("removing", &staging_dir, e))?;
        }
        if staged.exists() {
            std::fs::remove_dir_all(&staged).map_err(|e| VaultError::io("removing", &staged, e))?;
        }
        if fresh_dir {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&staging_dir)
                .map_err(|e| VaultError::io("creating", &staging_dir, e))?;
        }

        // 3. Write the rows (the file is verified again as it is read).
        let cleanup = |e: VaultError| {
            let _ = std::fs::remove_dir_all(if fresh_dir { &staging_dir } else { &staged });
            e
        };
        let archive_name = format!("audit-restored-{}.jsonl", super::now());
        let archive_at = if fresh_dir {
            staging_dir.join(&archive_name)
        } else {
            dir.join(&archive_name)
        };
        let (restored, skipped_rows, skipped_tenants, tokens_dropped, archived) =
            write_rows(file, &staged, &ring, &keys, opts.keep_tokens, &archive_at)
                .map_err(cleanup)?;
        let audit_archive = archived.then(|| dir.join(&archive_name));
        if fresh_dir {
            write_atomic(&staging_dir.join(KEYRING_FILE), &ring.encode()).map_err(cleanup)?;
        }

        // 4. Swap it in.
        let mut replaced_store = None;
        if fresh_dir {
            std::fs::rename(&staging_dir, dir)
                .map_err(|e| VaultError::io("renaming", &staging_dir, e))?;
            sync_dir(dir.parent().unwrap_or(Path::new(".")))?;
        } else {
            if given.is_some() {
                write_atomic(&dir.join(KEYRING_FILE), &ring.encode()).map_err(cleanup)?;
            }
            // The complete new store gets its final staging name first: from then on
            // a crash is finished by `lifecycle::recover_compaction` (at the next open)
            // once the live store has moved aside, and undone before that.
            let ready = dir.join(RESTORE_NEW);
            std::fs::rename(&staged, &ready).map_err(|e| VaultError::io("renaming", &staged, e))?;
            sync_dir(dir)?;
            if live.exists() {
                // The current store goes straight to where it is kept, under a name no
                // recovery ever deletes.
                let stamp = super::now();
                let kept = (0u32..)
                    .map(|i| match i {
                        0 => dir.join(format!("store.replaced-{stamp}")),
                        i => dir.join(format!("store.replaced-{stamp}-{i}")),
                    })
                    .find(|p| !p.exists())
                    .unwrap_or_else(|| dir.join(format!("store.replaced-{stamp}")));
                std::fs::rename(&live, &kept).map_err(|e| VaultError::io("renaming", &live, e))?;
                sync_dir(dir)?;
                if opts.stop_mid_swap {
                    return Err(VaultError::InvalidArgument(
                        "restore stopped between the renames of its store swap (crash test)".into(),
                    ));
                }
                replaced_store = Some(kept);
            }
            std::fs::rename(&ready, &live).map_err(|e| VaultError::io("renaming", &ready, e))?;
            sync_dir(dir)?;
        }
        // The restored vault's audit log (as of the backup) records the restore.
        let opened = Vault::open(dir, unlock, super::OpenOptions::default())?;
        opened.audited("restore", None, None, |_| Ok(()))?;
        drop(opened);
        Ok(RestoreReport {
            backup: report,
            restored,
            skipped_rows,
            skipped_tenants,
            tokens_dropped,
            replaced_store,
            audit_archive,
        })
    }
}

fn check_vault(h: &Header, ring: &Keyring) -> Result<(), VaultError> {
    if h.vault_id != ring.vault_id.0 {
        return Err(BackupError::OtherVault {
            backup: hex::encode(h.vault_id),
            keyring: hex::encode(ring.vault_id.0),
        }
        .into());
    }
    Ok(())
}

/// Streams the backup's rows into a new store at `dest`, leaving out tenants with
/// no keys and (unless `keep_tokens`) the API tokens; verifies the MAC again at the
/// end (the file could have changed since). The backup's audit links go to an
/// archive file at `archive` instead, and the new store gets a new chain under a new
/// K0: no audit key of the backup (an older backup's sealed current key or K0) is
/// restored, so nothing restored can re-sign a link. Returns the rows restored (the
/// archived links and the chain's start among them), the rows skipped, the tenants skipped, the tokens
/// dropped and whether an archive was written.
fn write_rows(
    file: &Path,
    dest: &Path,
    ring: &Keyring,
    keys: &phonevault_keys::VaultKeys,
    keep_tokens: bool,
    archive: &Path,
) -> Result<(u64, u64, Vec<String>, u64, bool), VaultError> {
    let (row_mac, backup_key) = (&keys.row_mac, &keys.backup);
    let store = StoreLocation::Sled.open(dest, 64 << 20)?;
    let mut r = BackupReader::new(open_file(file)?, backup_key)?;
    check_vault(r.header(), ring)?;
    let mut links: Vec<Vec<u8>> = Vec::new();
    let mut start: Option<Checkpoint> = None;
    let mut skip_ids: BTreeSet<[u8; 4]> = BTreeSet::new();
    let mut skipped_tenants = Vec::new();
    let (mut restored, mut skipped, mut tokens_dropped) = (0u64, 0u64, 0u64);
    let mut batch = Batch::default();
    while let Some((tree, key, value)) = r.next_entry()? {
        if tree == Tree::Tokens && !keep_tokens {
            tokens_dropped += 1;
            continue;
        }
        if tree == Tree::Meta && key == BACKUP_START_ROW {
            if value.len() == 40 {
                let mut head = [0u8; 32];
                head.copy_from_slice(&value[8..]);
                let mut n = [0u8; 8];
                n.copy_from_slice(&value[..8]);
                start = Some(Checkpoint {
                    next_seq: u64::from_le_bytes(n),
                    head,
                });
            }
            // Restored as the archive's start.
            restored += 1;
            continue;
        }
        if tree == Tree::Meta && KEY_ROWS.contains(&key.as_slice()) {
            // A backup made before backups left them out: only where its chain started
            // is taken from its state row.
            if key == STATE_ROW && start.is_none() {
                start = vault_audit::state_row_start(&keys.state, &ring.vault_id, &value);
            }
            continue;
        }
        if tree == Tree::Audit {
            links.push(value);
            restored += 1;
            continue;
        }
        let skip = match tree {
            Tree::Tenants => {
                let row: TenantRow = decode_row(row_mac, "tenants", &key, &value)?;
                let has_keys = ring
                    .tenants
                    .get(&row.name)
                    .is_some_and(|t| !t.is_shredded());
                if !has_keys {
                    skip_ids.insert(row.id.to_be_bytes());
                    skipped_tenants.push(row.name);
                }
                !has_keys
            }
            Tree::Records | Tree::Index | Tree::Expiry | Tree::Suppress => key
                .get(..4)
                .and_then(|p| <[u8; 4]>::try_from(p).ok())
                .is_some_and(|p| skip_ids.contains(&p)),
            _ => false,
        };
        if skip {
            skipped += 1;
            continue;
        }
        batch.put(tree, key, value);
        restored += 1;
        if batch.ops.len() >= PAGE {
            store.commit(&std::mem::take(&mut batch))?;
        }
    }
    r.finish()?;
    let archived = !links.is_empty();
    if archived {
        let first = audit::decode_unverified(&links[0]).ok_or(VaultError::RowTampered("audit"))?;
        let last = audit::decode_unverified(&links[links.len() - 1])
            .ok_or(VaultError::RowTampered("audit"))?;
        let start = match start {
            Some(s) if s.next_seq == first.seq => s,
            _ if first.seq == 0 => Checkpoint::GENESIS,
            _ => return Err(VaultError::RowTampered("audit")),
        };
        let end = Checkpoint {
            next_seq: last.seq + 1,
            head: last.head,
        };
        let text = audit::archive_text(&start, &end, links.iter().map(Vec::as_slice));
        write_atomic(archive, text.as_bytes())?;
    }
    AuditLog::genesis(&keys.state, &ring.vault_id, &mut batch)?;
    store.commit(&batch)?;
    store.flush()?;
    Ok((restored, skipped, skipped_tenants, tokens_dropped, archived))
}
