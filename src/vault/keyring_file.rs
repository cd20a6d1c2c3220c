//! The keyring file beside the store: reading it (private permissions checked),
//! writing it atomically, noticing another process's change, and the lock that
//! serializes changes between processes sharing it.

use std::io::Write;
use std::path::Path;
use std::sync::PoisonError;

use phonevault_keys::Keyring;

use super::{VaultError, VaultInner, KEYRING_FILE, STORE_DIR};

/// Lock file serializing keyring changes between processes sharing the keyring.
const KEYRING_LOCK_FILE: &str = "keyring.lock";

/// Identity of the keyring file as last read, to notice another process's change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl FileStamp {
    pub(crate) fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        })
    }
}

/// The keyring, held for a change: the in-process lock and, for a vault on disk, an
/// exclusive lock on `keyring.lock`, so that servers sharing the keyring file never
/// overwrite each other's changes (each change re-reads the file first).
pub(crate) struct KeyringWrite<'a> {
    ring: std::sync::MutexGuard<'a, Keyring>,
    _file: Option<std::fs::File>,
}

impl std::ops::Deref for KeyringWrite<'_> {
    type Target = Keyring;
    fn deref(&self) -> &Keyring {
        &self.ring
    }
}

impl std::ops::DerefMut for KeyringWrite<'_> {
    fn deref_mut(&mut self) -> &mut Keyring {
        &mut self.ring
    }
}

impl VaultInner {
    pub(crate) fn save_keyring(&self, ring: &mut Keyring) -> Result<(), VaultError> {
        // After `rekey` this vault's root key is the old one: sealing under it would
        // write a keyring nothing opens.
        ring.check_root_key(&self.root)?;
        ring.seal(&self.root);
        if self.dir.as_os_str().is_empty() {
            return Ok(()); // in-memory vault
        }
        write_atomic(&self.dir.join(KEYRING_FILE), &ring.encode())?;
        self.note_keyring_written();
        Ok(())
    }

    /// Records the keyring file this process just wrote as the one it holds, so that
    /// only other processes' changes are re-read.
    pub(crate) fn note_keyring_written(&self) {
        *self
            .keyring_stamp
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = FileStamp::of(&self.dir.join(KEYRING_FILE));
    }

    /// Re-reads the keyring file into `ring` if another process changed it since this
    /// one last read or wrote it. Returns whether it did.
    pub(crate) fn reload_keyring_into(&self, ring: &mut Keyring) -> Result<bool, VaultError> {
        if self.dir.as_os_str().is_empty() {
            return Ok(false);
        }
        let path = self.dir.join(KEYRING_FILE);
        let now = FileStamp::of(&path);
        let mut stamp = self
            .keyring_stamp
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if now.is_none() || *stamp == now {
            return Ok(false);
        }
        let fresh = read_keyring(&self.dir)?;
        if fresh.vault_id.0 != ring.vault_id.0 {
            return Err(VaultError::KeyringMismatch);
        }
        // The file's MAC under our root key: a keyring swapped in by someone without
        // the root key is refused, as at unlock.
        fresh.verify(&self.root)?;
        *ring = fresh;
        *stamp = now;
        drop(stamp);
        // Every cached context may name keys of the old file.
        self.tenants
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        Ok(true)
    }

    /// Picks up another process's keyring change (a rotation, a new tenant). Costs one
    /// `stat` when nothing changed, and nothing on a store only this process can open
    /// (sled: any other process that changes the keyring must open the store first).
    pub(crate) fn refresh_keyring(&self) -> Result<bool, VaultError> {
        if self.dir.as_os_str().is_empty() || !self.store.shared() {
            return Ok(false);
        }
        let now = FileStamp::of(&self.dir.join(KEYRING_FILE));
        let same = *self
            .keyring_stamp
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            == now;
        if now.is_none() || same {
            return Ok(false);
        }
        let mut ring = self.keyring.lock().unwrap_or_else(PoisonError::into_inner);
        self.reload_keyring_into(&mut ring)
    }

    /// The keyring, locked for a change against this process and every other one
    /// sharing the file, and re-read if another process changed it.
    pub(crate) fn keyring_for_update(&self) -> Result<KeyringWrite<'_>, VaultError> {
        let mut ring = self.keyring.lock().unwrap_or_else(PoisonError::into_inner);
        if self.dir.as_os_str().is_empty() {
            return Ok(KeyringWrite { ring, _file: None });
        }
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.dir.join(KEYRING_LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| VaultError::io("opening", &path, e))?;
        // Released when the file is closed (KeyringWrite dropped).
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| VaultError::io("locking", &path, e.into()))?;
        self.reload_keyring_into(&mut ring)?;
        Ok(KeyringWrite {
            ring,
            _file: Some(file),
        })
    }
}

/// Writes `bytes` to `path` atomically: a 0600 temp file in the same directory,
/// fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    use std::os::unix::fs::OpenOptionsExt;
    // The rename below would replace a device or pipe with a regular file: as root,
    // `keyring export /dev/null` put the keyring where /dev/null was.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let t = meta.file_type();
        if !t.is_file() && !t.is_symlink() {
            return Err(VaultError::InvalidArgument(format!(
                "{} exists and is not a regular file (a device, pipe or directory): refusing to replace it; name a file",
                path.display()
            )));
        }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("keyring")
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(VaultError::io("writing", path, e));
    }
    Ok(())
}

pub(crate) fn check_private(path: &Path) -> Result<(), VaultError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| VaultError::io("reading", path, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(VaultError::InsecurePermissions(path.to_owned()));
    }
    Ok(())
}

pub(crate) fn read_keyring(dir: &Path) -> Result<Keyring, VaultError> {
    let path = dir.join(KEYRING_FILE);
    if !path.exists() {
        return Err(VaultError::NoVault(dir.to_owned()));
    }
    check_private(dir)?;
    check_private(&path)?;
    let store = dir.join(STORE_DIR);
    if store.exists() {
        check_private(&store)?;
    }
    let bytes = std::fs::read(&path).map_err(|e| VaultError::io("reading", &path, e))?;
    Ok(Keyring::decode(&bytes)?)
}
