//! The audit journal of `serve --audit-sync process`: an append-only file beside the
//! store where a read's audit entry is written (one `write(2)`) before the read
//! answers, so that a killed server loses no entry of a read it acknowledged. A
//! background task syncs it every few milliseconds and folds its records into the
//! store's audit chain; on open, complete records not folded yet are folded in before
//! the vault serves anything.
//!
//! ```text
//! file     = header ‖ record*
//! header   = "PVAJRNL3" ‖ gen (16 random bytes) ‖ u32le(len(sealed)) ‖ sealed
//! sealed   = AES-256-GCM(state key, aad = lp(HEADER_LABEL) ‖ lp(vault id) ‖ lp(gen), JK)
//! record_i = u32le(len(body_i)) ‖ u32le(!len(body_i)) ‖ body_i ‖ tag_i
//! BK       = HKDF-SHA256(salt = gen, ikm = JK, info = BODY_KEY_LABEL)
//! body_i   = u64le(n_i) ‖ AES-256-GCM(BK, nonce = u64le(n_i) ‖ 0u32, aad = lp(BODY_LABEL) ‖ lp(gen),
//!                                     audit::encode_entries(entries))
//!            (n_i counts the seals of this journal, failed appends included: never twice)
//! head_i   = SHA-256(lp(RECORD_LABEL) ‖ lp(gen) ‖ lp(u64le(i)) ‖ lp(head_{i-1}) ‖ lp(body_i))
//!            head_{-1} = 32 zero bytes
//! tag_i    = HMAC-SHA-256(JK, head_i)
//! ```
//!
//! JK is a random key per journal file, readable only with the vault's state key (so
//! only with the root key). The entries are sealed under BK, a key of this file alone
//! derived from JK, so the journal shows no record id or purpose to a reader of the
//! disk; a record costs one AES-GCM seal with a counter nonce (no key derivation, no
//! random bytes), which is what keeps `process` mode near the socket's speed. Once
//! folded, the entries are in the chain's links, sealed under the audit read key.
//! Journals an earlier version left behind when it was killed are still folded, then
//! removed: version 2 (`"PVAJRNL2"`, each body sealed under the audit read key with a
//! per-message subkey) and version 1 (`"PVAJRNL1"`, entries in clear). Each record is chained to the one before it, so a record
//! edited, removed, reordered or moved from another journal fails its tag. A record
//! cut short at the end of the file (a write torn by a crash, or zeros a power loss
//! left past the last synced byte) is not a record: it was never acknowledged. Any
//! other damage makes the journal refused (the length is written twice, the second
//! time inverted, so that a damaged length is told from a torn record), and the vault does not open until an
//! operator looks at it.
//!
//! Which records are already in the chain is kept in the store, in the same batch as
//! the link that holds them (the journal mark: gen and record count), so folding is
//! idempotent: a crash between a fold and the journal's removal folds nothing twice.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use phonevault_keys::{AuditKey, AuditReadKey, DataKey, VaultId};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// File name of the journal in the vault directory.
pub(crate) const JOURNAL_FILE: &str = "audit.journal";
const MAGIC: &[u8; 8] = b"PVAJRNL3";
/// The magic of a journal whose bodies are sealed under the audit read key (read for
/// recovery, never written).
const MAGIC_READ_KEY: &[u8; 8] = b"PVAJRNL2";
/// The magic of a journal whose entries are in clear (read for recovery, never written).
const MAGIC_CLEAR: &[u8; 8] = b"PVAJRNL1";
/// AAD label of a record's sealed entries (version 3: under the journal's body key).
const BODY_LABEL: &[u8] = b"phonevault/v3/audit-journal-body";
/// AAD label of a version-2 record's entries (under the audit read key).
const BODY_LABEL_V2: &[u8] = b"phonevault/v2/audit-journal-body";
/// HKDF info of the journal's body key.
const BODY_KEY_LABEL: &[u8] = b"phonevault/v3/audit-journal-body-key";
/// Bytes of a version-3 body before its ciphertext (the nonce counter).
const NONCE_PREFIX: usize = 8;
/// AAD label of the sealed journal key.
const HEADER_LABEL: &[u8] = b"phonevault/v1/audit-journal-key";
/// Domain label of a record's chained hash.
const RECORD_LABEL: &[u8] = b"phonevault/v1/audit-journal-record";
/// Upper bound of one record's body (a read's entries are a few hundred bytes).
pub(crate) const MAX_RECORD: usize = 1 << 20;
/// Upper bound of the sealed key in the header.
const MAX_SEALED: usize = 256;

/// Why a journal could not be used.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The journal does not verify: edited, truncated in its middle, or not ours.
    #[error("the audit journal {path} failed its integrity check at record {record}: it was edited or damaged; keep a copy for the investigation, then move it away to open the vault (its unfolded entries are then lost)")]
    Tampered {
        /// The journal file.
        path: PathBuf,
        /// The first record that does not verify (0 for the header).
        record: u64,
    },
    /// Reading, writing or syncing the journal failed.
    #[error("audit journal {path}: {source}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the journal (a server running on this vault directory).
    #[error("the audit journal {0} is held by another process: a server already runs on this vault directory; give each server its own directory")]
    Busy(PathBuf),
}

fn lp(h: &mut Sha256, part: &[u8]) {
    h.update((part.len() as u64).to_le_bytes());
    h.update(part);
}

fn header_aad(vault: &VaultId, gen: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [HEADER_LABEL, &vault.0[..], &gen[..]] {
        out.extend_from_slice(&(part.len() as u64).to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn record_head(gen: &[u8; 16], index: u64, prev: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    lp(&mut h, RECORD_LABEL);
    lp(&mut h, gen);
    lp(&mut h, &index.to_le_bytes());
    lp(&mut h, prev);
    lp(&mut h, body);
    h.finalize().into()
}

/// A journal read back and verified.
pub(crate) struct Parsed {
    /// Its generation.
    pub gen: [u8; 16],
    /// The bodies of its complete records, in order (sealed: see [`open_body`]).
    pub records: Vec<Vec<u8>>,
    /// How the bodies are sealed.
    bodies: Bodies,
}

/// How a journal's record bodies are sealed, by version.
enum Bodies {
    /// Version 3: under the file's body key, with counter nonces.
    FileKey(Box<BodyKey>),
    /// Version 2: under the audit read key, a per-message subkey each.
    ReadKey,
    /// Version 1: in clear.
    Clear,
}

/// A journal file's body key BK (see the module doc).
struct BodyKey {
    cipher: aes_gcm::Aes256Gcm,
    aad: Vec<u8>,
}

impl BodyKey {
    fn derive(jk: &[u8; 32], gen: &[u8; 16]) -> BodyKey {
        use aes_gcm::KeyInit;
        let mut bk = zeroize::Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 8,160-byte limit: expand cannot fail.
        let _ = hkdf::Hkdf::<Sha256>::new(Some(gen), jk).expand(BODY_KEY_LABEL, &mut bk[..]);
        let mut aad = Vec::with_capacity(2 * 8 + BODY_LABEL.len() + gen.len());
        for part in [BODY_LABEL, &gen[..]] {
            aad.extend_from_slice(&(part.len() as u64).to_le_bytes());
            aad.extend_from_slice(part);
        }
        BodyKey {
            cipher: aes_gcm::Aes256Gcm::new(aes_gcm::Key::<aes_gcm::Aes256Gcm>::from_slice(
                &bk[..],
            )),
            aad,
        }
    }

    fn nonce(n: u64) -> aes_gcm::Nonce<aes_gcm::aes::cipher::consts::U12> {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&n.to_le_bytes());
        nonce.into()
    }

    /// `u64le(n) ‖ AES-256-GCM(BK, nonce(n), aad, plain)` into `out` (cleared first).
    fn seal_into(&self, n: u64, plain: &[u8], out: &mut Vec<u8>) -> Result<(), aes_gcm::Error> {
        use aes_gcm::aead::AeadInPlace;
        out.clear();
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(plain);
        let tag = self.cipher.encrypt_in_place_detached(
            &Self::nonce(n),
            &self.aad,
            &mut out[NONCE_PREFIX..],
        )?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    fn open(&self, body: &[u8]) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        use aes_gcm::aead::AeadInPlace;
        if body.len() < NONCE_PREFIX + 16 {
            return None;
        }
        let (n, rest) = body.split_at(NONCE_PREFIX);
        let n = u64::from_le_bytes(n.try_into().ok()?);
        let (ct, tag) = rest.split_at(rest.len() - 16);
        let mut plain = zeroize::Zeroizing::new(ct.to_vec());
        self.cipher
            .decrypt_in_place_detached(
                &Self::nonce(n),
                &self.aad,
                &mut plain,
                aes_gcm::Tag::from_slice(tag),
            )
            .ok()?;
        Some(plain)
    }
}

fn body_aad_v2() -> Vec<u8> {
    let mut out = (BODY_LABEL_V2.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(BODY_LABEL_V2);
    out
}

/// The encoded entries of a record body of a journal read back, opened as its
/// version seals them (`read` opens version 2's). `None` when it does not open.
pub(crate) fn open_body(
    read: &AuditReadKey,
    parsed: &Parsed,
    body: &[u8],
) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    match &parsed.bodies {
        Bodies::FileKey(bk) => bk.open(body),
        Bodies::ReadKey => read.open(&body_aad_v2(), body).ok(),
        Bodies::Clear => Some(zeroize::Zeroizing::new(body.to_vec())),
    }
}

/// Verifies a journal's bytes (pure: no I/O). A record cut short at the end, or a
/// tail of zeros, is ignored; anything else that does not verify is refused with the
/// index of the first bad record.
///
/// # Errors
/// `Err(record)`: the first record (0 for the header) that does not verify.
pub(crate) fn parse(bytes: &[u8], state_key: &DataKey, vault: &VaultId) -> Result<Parsed, u64> {
    // The header is written whole under a temporary name before the journal takes
    // its place: any header that does not read is damage.
    let fixed = MAGIC.len() + 16 + 4;
    if bytes.len() < fixed {
        return Err(0);
    }
    let version = match &bytes[..MAGIC.len()] {
        m if m == MAGIC => 3,
        m if m == MAGIC_READ_KEY => 2,
        m if m == MAGIC_CLEAR => 1,
        _ => return Err(0),
    };
    let mut gen = [0u8; 16];
    gen.copy_from_slice(&bytes[MAGIC.len()..MAGIC.len() + 16]);
    let mut n = [0u8; 4];
    n.copy_from_slice(&bytes[MAGIC.len() + 16..fixed]);
    let sealed_len = u32::from_le_bytes(n) as usize;
    if sealed_len > MAX_SEALED {
        return Err(0);
    }
    let sealed = bytes.get(fixed..fixed + sealed_len).ok_or(0u64)?;
    let plain = state_key
        .open(&header_aad(vault, &gen), sealed)
        .map_err(|_| 0u64)?;
    let key_bytes =
        zeroize::Zeroizing::new(<[u8; 32]>::try_from(plain.as_slice()).map_err(|_| 0u64)?);
    let key = AuditKey::from_bytes(&key_bytes);
    let bodies = match version {
        3 => Bodies::FileKey(Box::new(BodyKey::derive(&key_bytes, &gen))),
        2 => Bodies::ReadKey,
        _ => Bodies::Clear,
    };
    let mut at = fixed + sealed_len;
    let mut head = [0u8; 32];
    let mut records = Vec::new();
    loop {
        let rest = &bytes[at..];
        if rest.iter().all(|b| *b == 0) {
            // The end, or zeros past the last synced byte (power loss).
            break;
        }
        let index = records.len() as u64;
        if rest.len() < 8 {
            break; // torn length
        }
        let mut n = [0u8; 4];
        n.copy_from_slice(&rest[..4]);
        let len = u32::from_le_bytes(n);
        n.copy_from_slice(&rest[4..8]);
        if !u32::from_le_bytes(n) != len {
            return Err(index);
        }
        let len = len as usize;
        if len == 0 || len > MAX_RECORD {
            return Err(index);
        }
        let Some(record) = rest.get(8..8 + len + 32) else {
            break; // torn record: never acknowledged
        };
        let (body, tag) = record.split_at(len);
        let want = record_head(&gen, index, &head, body);
        if !bool::from(key.tag(&want)[..].ct_eq(tag)) {
            return Err(index);
        }
        head = want;
        records.push(body.to_vec());
        at += 8 + len + 32;
    }
    Ok(Parsed {
        gen,
        records,
        bodies,
    })
}

/// An open journal this process appends to (holding its lock).
pub(crate) struct Journal {
    path: PathBuf,
    file: Arc<File>,
    gen: [u8; 16],
    key: AuditKey,
    /// Seals the bodies.
    body_key: BodyKey,
    /// Seals made so far (the next one's nonce): a failed append used one too.
    seals: u64,
    /// The sealed body of the record being appended (reused).
    body: Vec<u8>,
    head: [u8; 32],
    /// Records written.
    count: u64,
    /// Bytes of the file that are whole records (where the next one goes).
    len: u64,
    /// Reused for each record: one allocation for the life of the journal.
    buf: Vec<u8>,
}

/// Locks `file` for this process alone, or says another holds it.
fn lock(file: &File, path: &Path) -> Result<(), JournalError> {
    use rustix::fs::{flock, FlockOperation};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(JournalError::Busy(path.to_owned())),
        Err(e) => Err(JournalError::Io {
            path: path.to_owned(),
            source: e.into(),
        }),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Opens and locks the journal in `dir` for recovery: its verified records, and the
/// locked file (kept locked until the caller is done with it). `Ok(None)` when there
/// is none.
///
/// # Errors
/// [`JournalError::Busy`] when another process holds it, [`JournalError::Tampered`],
/// I/O errors.
pub(crate) fn read(
    dir: &Path,
    state_key: &DataKey,
    vault: &VaultId,
) -> Result<Option<(File, Parsed)>, JournalError> {
    let path = dir.join(JOURNAL_FILE);
    let mut file = match std::fs::OpenOptions::new().read(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    lock(&file, &path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io(&path))?;
    match parse(&bytes, state_key, vault) {
        Ok(p) => Ok(Some((file, p))),
        Err(record) => Err(JournalError::Tampered { path, record }),
    }
}

/// Whether another process holds the journal in `dir` (a server running there).
///
/// # Errors
/// I/O errors other than a missing file.
pub(crate) fn held_elsewhere(dir: &Path) -> Result<bool, JournalError> {
    let path = dir.join(JOURNAL_FILE);
    match std::fs::File::open(&path) {
        Ok(f) => match lock(&f, &path) {
            Ok(()) => Ok(false),
            Err(JournalError::Busy(_)) => Ok(true),
            Err(e) => Err(e),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(&path)(e)),
    }
}

impl Journal {
    /// Starts a new journal in `dir` (a new generation and key), replacing the file
    /// that was there (check [`held_elsewhere`] first): written whole under a
    /// temporary name, synced, then renamed.
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn create(
        dir: &Path,
        state_key: &DataKey,
        vault: &VaultId,
    ) -> Result<Journal, JournalError> {
        let path = dir.join(JOURNAL_FILE);
        let mut gen = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut gen);
        let key = AuditKey::generate();
        let body_key = BodyKey::derive(key.expose_secret(), &gen);
        let sealed = state_key
            .seal(&header_aad(vault, &gen), key.expose_secret())
            .map_err(|_| JournalError::Io {
                path: path.clone(),
                source: std::io::Error::other("sealing the journal key failed"),
            })?;
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&gen);
        header.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        header.extend_from_slice(&sealed);
        let tmp = dir.join(format!(".{JOURNAL_FILE}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        lock(&file, &tmp)?;
        file.write_all(&header).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        Ok(Journal {
            path,
            file: Arc::new(file),
            gen,
            key,
            body_key,
            seals: 0,
            body: Vec::with_capacity(512),
            head: [0; 32],
            count: 0,
            len: header.len() as u64,
            buf: Vec::with_capacity(512),
        })
    }

    /// The generation of this journal.
    pub(crate) fn gen(&self) -> [u8; 16] {
        self.gen
    }

    /// Records written so far.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The file, to sync it without holding the journal.
    pub(crate) fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    /// Seals `plain` (encoded entries) and appends it as one record with one
    /// `write(2)` (more only if the kernel takes it in parts). Once this returns, a
    /// killed process loses nothing of it; a power loss may, until the next sync. A
    /// failed write is cut off again, so that no torn record stays in front of later
    /// ones.
    ///
    /// # Errors
    /// I/O errors; a record larger than [`MAX_RECORD`].
    #[cfg(test)]
    pub(crate) fn append(&mut self, plain: &[u8]) -> Result<(), JournalError> {
        self.append_all(&[plain])
    }

    /// Whether encoded entries of `len` bytes fit in one record.
    pub(crate) fn fits(len: usize) -> bool {
        len > 0 && len + NONCE_PREFIX + 16 <= MAX_RECORD
    }

    /// [`Journal::append`] of several records, in order, with one `write(2)`: all of
    /// them are in the file once this returns, or none is.
    ///
    /// # Errors
    /// I/O errors; a record larger than [`MAX_RECORD`] (then nothing is written).
    pub(crate) fn append_all(&mut self, plains: &[&[u8]]) -> Result<(), JournalError> {
        if !plains.iter().all(|p| Self::fits(p.len())) {
            return Err(JournalError::Io {
                path: self.path.clone(),
                source: std::io::Error::other("audit journal record out of bounds"),
            });
        }
        let mut body = std::mem::take(&mut self.body);
        self.buf.clear();
        let (mut head, mut count) = (self.head, self.count);
        let mut result = Ok(());
        for plain in plains {
            let n = self.seals;
            // Counted before the write: a nonce is never used twice, whatever fails.
            self.seals += 1;
            if self.body_key.seal_into(n, plain, &mut body).is_err() {
                result = Err(JournalError::Io {
                    path: self.path.clone(),
                    source: std::io::Error::other("sealing an audit journal record failed"),
                });
                break;
            }
            head = record_head(&self.gen, count, &head, &body);
            count += 1;
            self.buf
                .extend_from_slice(&(body.len() as u32).to_le_bytes());
            self.buf
                .extend_from_slice(&(!(body.len() as u32)).to_le_bytes());
            self.buf.extend_from_slice(&body);
            self.buf.extend_from_slice(&self.key.tag(&head));
        }
        self.body = body;
        result?;
        if let Err(e) = (&*self.file).write_all(&self.buf) {
            // Best effort: a torn record left here would make every later one unreadable.
            let _ = self.file.set_len(self.len);
            return Err(io(&self.path)(e));
        }
        self.head = head;
        self.count = count;
        self.len += self.buf.len() as u64;
        Ok(())
    }

    /// Removes the journal file (every record folded and the store flushed).
    pub(crate) fn remove(self) -> Result<(), JournalError> {
        std::fs::remove_file(&self.path).map_err(io(&self.path))
    }
}

/// Syncs a journal file's data (fdatasync).
///
/// # Errors
/// I/O errors.
pub(crate) fn sync(file: &File) -> std::io::Result<()> {
    file.sync_data()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is the failure report

    use super::*;

    fn keys() -> (DataKey, VaultId) {
        keys_of(VaultId([3; 16]), 9)
    }

    /// The state key of a keyring for `vault` under root key bytes `root`: the same
    /// keyring every call (its vault seed is random).
    fn keys_of(vault: VaultId, root: u8) -> (DataKey, VaultId) {
        static RINGS: std::sync::Mutex<Vec<(u8, phonevault_keys::Keyring)>> =
            std::sync::Mutex::new(Vec::new());
        let rk = phonevault_keys::RootKey::from_bytes(&[root; 32]);
        let mut rings = RINGS.lock().unwrap();
        if !rings.iter().any(|(r, _)| *r == root) {
            rings.push((root, phonevault_keys::Keyring::new(vault, &rk).unwrap()));
        }
        let ring = &rings.iter().find(|(r, _)| *r == root).unwrap().1;
        (ring.vault_keys(&rk).unwrap().state, vault)
    }

    fn written(n: usize) -> (tempfile::TempDir, Vec<u8>, Vec<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let (k, v) = keys();
        let mut j = Journal::create(dir.path(), &k, &v).unwrap();
        let bodies: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8 + 1; 10 + i]).collect();
        for b in &bodies {
            j.append(b).unwrap();
        }
        let bytes = std::fs::read(dir.path().join(JOURNAL_FILE)).unwrap();
        assert_eq!(bytes.len() as u64, j.len());
        (dir, bytes, bodies)
    }

    /// Bytes a record of `plain` takes in the file.
    fn record_len(plain: &[u8]) -> usize {
        8 + NONCE_PREFIX + plain.len() + 16 + 32
    }

    /// The opened bodies of a parsed journal.
    fn opened(p: &Parsed) -> Vec<Vec<u8>> {
        let read = AuditReadKey::from_bytes(&[4; 32]);
        p.records
            .iter()
            .map(|b| open_body(&read, p, b).unwrap().to_vec())
            .collect()
    }

    #[test]
    fn records_read_back_in_order() {
        let (_d, bytes, bodies) = written(5);
        let (k, v) = keys();
        let p = parse(&bytes, &k, &v).unwrap();
        assert_eq!(opened(&p), bodies);
        // the entries are not in the file in clear
        for b in &bodies {
            assert!(!bytes.windows(b.len()).any(|w| w == &b[..]));
        }
        // another vault's state key opens nothing
        assert_eq!(parse(&bytes, &keys_of(v, 10).0, &v).err(), Some(0));
        assert_eq!(parse(&bytes, &k, &VaultId([4; 16])).err(), Some(0));
    }

    #[test]
    fn a_torn_tail_record_is_ignored() {
        let (_d, bytes, bodies) = written(4);
        let (k, v) = keys();
        let last = record_len(&bodies[3]);
        for cut in 1..last {
            let p = parse(&bytes[..bytes.len() - cut], &k, &v).unwrap();
            assert_eq!(opened(&p), bodies[..3].to_vec(), "cut {cut}");
        }
        // zeros past the last synced byte (power loss) are not a record either
        let mut zeros = bytes.clone();
        zeros.extend_from_slice(&[0; 300]);
        assert_eq!(opened(&parse(&zeros, &k, &v).unwrap()), bodies);
        // the header is written whole before the journal is renamed into place:
        // one cut short is damage, not a torn write
        for cut in 0..40 {
            assert_eq!(parse(&bytes[..cut], &k, &v).err(), Some(0), "{cut}");
        }
    }

    #[test]
    fn a_flipped_byte_is_refused() {
        let (_d, bytes, bodies) = written(3);
        let (k, v) = keys();
        let header = bytes.len() - bodies.iter().map(|b| record_len(b)).sum::<usize>();
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 0x20;
            let r = parse(&t, &k, &v);
            let want_record = if i < header {
                0
            } else {
                let mut at = header;
                let mut rec = 0;
                for b in &bodies {
                    at += record_len(b);
                    if i < at {
                        break;
                    }
                    rec += 1;
                }
                rec
            };
            assert_eq!(r.err(), Some(want_record), "byte {i}");
        }
        // records swapped or removed fail their chain
        let first = header;
        let second = first + record_len(&bodies[0]);
        let mut removed = bytes[..first].to_vec();
        removed.extend_from_slice(&bytes[second..]);
        assert_eq!(parse(&removed, &k, &v).err(), Some(0));
    }

    #[test]
    fn each_seal_has_its_own_nonce_and_a_body_opens_only_where_it_was_sealed() {
        let (_d, bytes, _) = written(3);
        let (k, v) = keys();
        let p = parse(&bytes, &k, &v).unwrap();
        let nonces: Vec<&[u8]> = p.records.iter().map(|b| &b[..NONCE_PREFIX]).collect();
        assert_eq!(nonces.len(), 3);
        assert!(nonces[0] != nonces[1] && nonces[1] != nonces[2] && nonces[0] != nonces[2]);
        // a body of another journal (another gen and key) does not open here
        let (_d2, other, _) = written(1);
        let q = parse(&other, &k, &v).unwrap();
        let read = AuditReadKey::from_bytes(&[4; 32]);
        assert!(open_body(&read, &p, &q.records[0]).is_none());
        // nor one with its nonce counter changed
        let mut moved = p.records[1].clone();
        moved[0] ^= 1;
        assert!(open_body(&read, &p, &moved).is_none());
    }

    /// Several records in one write: each chained after the one before, in order, as
    /// if appended one by one.
    #[test]
    fn records_appended_together_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (k, v) = keys();
        let mut j = Journal::create(dir.path(), &k, &v).unwrap();
        j.append(b"one").unwrap();
        j.append_all(&[b"two", b"three", b"four"]).unwrap();
        j.append(b"five").unwrap();
        assert_eq!(j.count(), 5);
        let back = || {
            parse(
                &std::fs::read(dir.path().join(JOURNAL_FILE)).unwrap(),
                &k,
                &v,
            )
        };
        assert_eq!(
            opened(&back().unwrap()),
            [&b"one"[..], b"two", b"three", b"four", b"five"]
        );
        // one record too large: nothing of the call is written
        let big = vec![1u8; MAX_RECORD];
        assert!(j.append_all(&[b"six", &big]).is_err());
        assert_eq!(j.count(), 5);
        assert_eq!(opened(&back().unwrap()).len(), 5);
    }

    #[test]
    fn a_failed_append_burns_its_nonce() {
        let dir = tempfile::tempdir().unwrap();
        let (k, v) = keys();
        let mut j = Journal::create(dir.path(), &k, &v).unwrap();
        j.append(b"first").unwrap();
        // too large: refused before anything is written, yet no later seal reuses a nonce
        let seals = j.seals;
        assert!(j.append(&vec![1; MAX_RECORD]).is_err());
        assert_eq!(j.seals, seals);
        // a write that fails (the file made read-only under it) uses its nonce up
        let ro = std::fs::OpenOptions::new()
            .read(true)
            .open(dir.path().join(JOURNAL_FILE))
            .unwrap();
        let writable = std::mem::replace(&mut j.file, Arc::new(ro));
        assert!(j.append(b"lost").is_err());
        j.file = writable;
        j.append(b"second").unwrap();
        let bytes = std::fs::read(dir.path().join(JOURNAL_FILE)).unwrap();
        let p = parse(&bytes, &k, &v).unwrap();
        assert_eq!(opened(&p), vec![b"first".to_vec(), b"second".to_vec()]);
        let n: Vec<u64> = p
            .records
            .iter()
            .map(|b| u64::from_le_bytes(b[..8].try_into().unwrap()))
            .collect();
        assert_eq!(n, vec![0, 2]);
    }

    #[test]
    fn journals_of_versions_2_and_1_still_read() {
        let read = AuditReadKey::from_bytes(&[4; 32]);
        let (_d, mut bytes, bodies) = written(2);
        let (k, v) = keys();
        // version 2: bodies sealed under the audit read key
        let v2_body = read.seal(&body_aad_v2(), b"entries").unwrap();
        bytes[..MAGIC.len()].copy_from_slice(MAGIC_READ_KEY);
        let p = parse(&bytes, &k, &v).unwrap();
        assert_eq!(
            open_body(&read, &p, &v2_body).unwrap().as_slice(),
            b"entries"
        );
        assert!(open_body(&AuditReadKey::from_bytes(&[5; 32]), &p, &v2_body).is_none());
        assert!(open_body(&read, &p, b"entries").is_none());
        // version 1: bodies taken as they are
        bytes[..MAGIC.len()].copy_from_slice(MAGIC_CLEAR);
        let old = parse(&bytes, &k, &v).unwrap();
        assert_eq!(old.records.len(), bodies.len());
        assert_eq!(
            open_body(&read, &old, b"clear").unwrap().as_slice(),
            b"clear"
        );
    }

    #[test]
    fn another_process_cannot_take_a_held_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (k, v) = keys();
        let j = Journal::create(dir.path(), &k, &v).unwrap();
        // flock locks belong to the open file description: a second open is another holder
        assert!(matches!(
            read(dir.path(), &k, &v),
            Err(JournalError::Busy(_))
        ));
        assert!(held_elsewhere(dir.path()).unwrap());
        drop(j);
        assert!(!held_elsewhere(dir.path()).unwrap());
    }
}
