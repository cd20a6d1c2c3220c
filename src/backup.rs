//! The data backup file: every tree of the store, rows exactly as stored (records
//! still encrypted, rows still MACed), framed and authenticated as a whole.
//!
//! ```text
//! file   = header ‖ entry* ‖ mac
//! header = "PVBACKUP" ‖ u8 format (2) ‖ vault id (16) ‖ u64 LE created_at (unix s)
//!          ‖ u8 tree count (8) ‖ 8 × u64 LE rows per tree (meta, tenants, records,
//!          index, expiry, tokens, audit, suppress)
//! entry  = u8 tree id ‖ u32 LE key length ‖ key ‖ u32 LE value length ‖ value
//! mac    = HMAC-SHA256(backup key, entry* ‖ header)
//! tree id: meta 0, tenants 1, records 2, index 3, expiry 4, tokens 5, audit 6,
//!          suppress 7 (frozen: `Tree::id`)
//! backup key = HKDF-SHA256(vault seed, vault id, lp("phonevault/v2/backup-mac-key"))
//! ```
//!
//! The header is MACed last so that a writer can stream the entries and fill in the
//! counts at the end (it seeks back to the start). Entries come tree by tree in that order, keys strictly increasing within a tree,
//! exactly as many per tree as the header says. No key material is in the file: the
//! keyring (key slots, tenant seeds) is backed up on its own (`keyring export`), so a
//! tenant shredded after a backup stays unreadable when the backup is restored.
//!
//! Format 1 (7 trees, before the suppression lists' tree) is still read: its header
//! holds 7 counts, and the suppress tree is restored empty.
//!
//! [`BackupReader`] is total: it caps every length it reads, never allocates from a
//! count, and reports a truncated, damaged or forged file as a [`BackupError`]; it
//! checks the MAC only at [`BackupReader::finish`], so a restore reads the file twice:
//! once to verify it whole before writing anything, once to write.

use std::io::Read;

use phonevault_keys::{MacKey, MacStream};

use crate::store::Tree;

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 8] = b"PVBACKUP";
/// The backup format this build writes (it reads [`OLD_BACKUP_FORMAT`] too).
pub const BACKUP_FORMAT: u8 = 2;
/// The format of backups made before the suppress tree existed: 7 trees.
pub const OLD_BACKUP_FORMAT: u8 = 1;
/// Trees of a format-1 backup (every tree but `suppress`).
const OLD_TREES: usize = 7;
/// Length of the header.
pub const HEADER_LEN: usize = header_len(TREES);
/// Length of the header before the tree counts.
const HEADER_FIXED: usize = 8 + 1 + 16 + 8 + 1;

/// Length of a header with `trees` counts.
const fn header_len(trees: usize) -> usize {
    HEADER_FIXED + 8 * trees
}

/// Trees a header of `format` counts.
fn trees_of(format: u8) -> Option<usize> {
    match format {
        BACKUP_FORMAT => Some(TREES),
        OLD_BACKUP_FORMAT => Some(OLD_TREES),
        _ => None,
    }
}
/// Length of the trailing MAC.
pub const MAC_LEN: usize = 32;
/// Longest key accepted in an entry.
pub const MAX_KEY_LEN: usize = 64 * 1024;
/// Longest value accepted in an entry.
pub const MAX_VALUE_LEN: usize = 16 << 20;

const TREES: usize = Tree::ALL.len();

/// Why a backup could not be written or read. Nothing in a message comes from the
/// file's rows.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The file does not start with the backup magic.
    #[error("this file is not a phonevault backup (it does not start with PVBACKUP); check the file name")]
    NotABackup,
    /// The file is of a backup format this build does not read.
    #[error("the backup has format version {0}, which this phonevault does not read; restore it with the version that wrote it")]
    UnsupportedFormat(u8),
    /// The file ends early.
    #[error("the backup file is truncated (it ends before its last entry and MAC); nothing was restored: use a complete copy")]
    Truncated,
    /// The structure is wrong: counts, order or lengths.
    #[error("the backup file is damaged ({0}); nothing was restored: use another copy")]
    Damaged(&'static str),
    /// The MAC does not verify.
    #[error(
        "the backup file failed its integrity check: it was modified or damaged, or the keyring \
         given is not this vault's; nothing was restored: use another copy or the vault's keyring"
    )]
    Mac,
    /// The backup is of another vault than the keyring.
    #[error(
        "the backup is of vault {backup} but the keyring is of vault {keyring}; nothing was \
         restored: give this vault's keyring with --keyring FILE"
    )]
    OtherVault {
        /// The backup's vault id (hex).
        backup: String,
        /// The keyring's vault id (hex).
        keyring: String,
    },
    /// The target already holds a store.
    #[error(
        "{0} already holds a vault store; nothing was restored: pass --replace to swap it for the \
         backup (the current store is kept beside it), or restore into another --vault DIR"
    )]
    TargetInUse(String),
    /// Another process holds the store.
    #[error(
        "the vault is held by another phonevault process (a running `phonevault serve`?): the \
         store is locked and can be read by one process only; stop the server (SIGTERM), run the \
         command, then start the server again"
    )]
    VaultBusy,
    /// An I/O error reading or writing the file.
    #[error("backup file I/O error: {0}")]
    Io(#[source] std::io::Error),
}

fn io_err(e: std::io::Error) -> BackupError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        BackupError::Truncated
    } else {
        BackupError::Io(e)
    }
}

/// What a backup file's header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The vault the rows belong to.
    pub vault_id: [u8; 16],
    /// When the snapshot was taken (unix seconds).
    pub created_at: u64,
    /// Rows per tree, by [`Tree::id`].
    pub counts: [u64; TREES],
}

impl Header {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8] = BACKUP_FORMAT;
        out[9..25].copy_from_slice(&self.vault_id);
        out[25..33].copy_from_slice(&self.created_at.to_le_bytes());
        out[33] = TREES as u8;
        for (i, c) in self.counts.iter().enumerate() {
            out[34 + 8 * i..42 + 8 * i].copy_from_slice(&c.to_le_bytes());
        }
        out
    }

    /// Parses a header. Total.
    ///
    /// # Errors
    /// [`BackupError::Truncated`], [`BackupError::NotABackup`],
    /// [`BackupError::UnsupportedFormat`], [`BackupError::Damaged`].
    pub fn decode(bytes: &[u8]) -> Result<Header, BackupError> {
        if bytes.len() < MAGIC.len() {
            return Err(if MAGIC.starts_with(bytes) {
                BackupError::Truncated
            } else {
                BackupError::NotABackup
            });
        }
        if &bytes[..8] != MAGIC {
            return Err(BackupError::NotABackup);
        }
        if bytes.len() < 9 {
            return Err(BackupError::Truncated);
        }
        let Some(trees) = trees_of(bytes[8]) else {
            return Err(BackupError::UnsupportedFormat(bytes[8]));
        };
        if bytes.len() < header_len(trees) {
            return Err(BackupError::Truncated);
        }
        if usize::from(bytes[33]) != trees {
            return Err(BackupError::Damaged("wrong number of trees"));
        }
        let mut vault_id = [0u8; 16];
        vault_id.copy_from_slice(&bytes[9..25]);
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        // A format-1 header counts no suppress rows: they stay 0.
        let mut counts = [0u64; TREES];
        for (i, c) in counts.iter_mut().take(trees).enumerate() {
            *c = u64_at(34 + 8 * i);
        }
        Ok(Header {
            vault_id,
            created_at: u64_at(25),
            counts,
        })
    }

    /// Rows in all trees.
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, c| a.saturating_add(*c))
    }
}

/// One row of a backup: its tree, key and value.
pub type BackupEntry = (Tree, Vec<u8>, Vec<u8>);

/// Appends one entry's bytes to `out`.
///
/// # Errors
/// [`BackupError::Damaged`] for a key or value over the caps (the reader would refuse
/// the file).
pub fn encode_entry(
    tree: Tree,
    key: &[u8],
    value: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), BackupError> {
    if key.len() > MAX_KEY_LEN || value.len() > MAX_VALUE_LEN {
        return Err(BackupError::Damaged("a row is larger than a backup allows"));
    }
    out.push(tree.id());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
    Ok(())
}

/// Writes a backup: a placeholder header, the entries (fed to the MAC as they go),
/// then the MAC, and finally the real header with the counts.
pub struct BackupWriter<W: std::io::Write + std::io::Seek> {
    out: W,
    mac: MacStream,
    buf: Vec<u8>,
    counts: [u64; TREES],
    last: Option<(Tree, Vec<u8>)>,
    start: u64,
}

impl<W: std::io::Write + std::io::Seek> BackupWriter<W> {
    /// Starts a backup at the current position of `out` (normally a new file).
    ///
    /// # Errors
    /// [`BackupError::Io`].
    pub fn new(mut out: W, key: &MacKey) -> Result<Self, BackupError> {
        let start = out.stream_position().map_err(BackupError::Io)?;
        out.write_all(&[0u8; HEADER_LEN]).map_err(BackupError::Io)?;
        Ok(BackupWriter {
            out,
            mac: key.stream(),
            buf: Vec::with_capacity(1 << 16),
            counts: [0; TREES],
            last: None,
            start,
        })
    }

    /// Appends one row. Rows must come tree by tree in [`Tree::id`] order, keys
    /// strictly increasing within a tree (as a store scan yields them).
    ///
    /// # Errors
    /// [`BackupError::Io`]; [`BackupError::Damaged`] for an oversized row or one out
    /// of order.
    pub fn entry(&mut self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), BackupError> {
        if let Some((t, k)) = &self.last {
            if (t.id(), k.as_slice()) >= (tree.id(), key) {
                return Err(BackupError::Damaged("rows given out of order"));
            }
        }
        encode_entry(tree, key, value, &mut self.buf)?;
        self.counts[usize::from(tree.id())] += 1;
        self.last = Some((tree, key.to_vec()));
        if self.buf.len() >= 1 << 16 {
            self.drain()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<(), BackupError> {
        self.mac.update(&self.buf);
        self.out.write_all(&self.buf).map_err(BackupError::Io)?;
        self.buf.clear();
        Ok(())
    }

    /// Writes the MAC and the header (with the counts), and returns the output and
    /// the header.
    ///
    /// # Errors
    /// [`BackupError::Io`].
    pub fn finish(
        mut self,
        vault_id: [u8; 16],
        created_at: u64,
    ) -> Result<(W, Header), BackupError> {
        use std::io::SeekFrom;
        self.drain()?;
        let header = Header {
            vault_id,
            created_at,
            counts: self.counts,
        };
        let h = header.encode();
        self.mac.update(&h);
        let tag = self.mac.finalize();
        self.out.write_all(&tag).map_err(BackupError::Io)?;
        let end = self.out.stream_position().map_err(BackupError::Io)?;
        self.out
            .seek(SeekFrom::Start(self.start))
            .map_err(BackupError::Io)?;
        self.out.write_all(&h).map_err(BackupError::Io)?;
        self.out
            .seek(SeekFrom::Start(end))
            .map_err(BackupError::Io)?;
        self.out.flush().map_err(BackupError::Io)?;
        Ok((self.out, header))
    }
}

/// Reads a backup entry by entry, checking its structure as it goes and its MAC at
/// [`finish`](Self::finish).
pub struct BackupReader<R: Read> {
    input: R,
    header: Header,
    /// The header as read (its length depends on the format).
    header_bytes: Vec<u8>,
    mac: MacStream,
    tree: usize,
    left_in_tree: u64,
    last_key: Option<Vec<u8>>,
}

/// Reads into `buf` until it is full or the input ends; returns the bytes read.
fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> Result<usize, BackupError> {
    let mut got = 0;
    while got < buf.len() {
        let n = input.read(&mut buf[got..]).map_err(io_err)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

impl<R: Read> BackupReader<R> {
    /// Reads the header. The header is not trusted until [`finish`](Self::finish)
    /// verified the MAC; use its vault id only to explain a mismatch.
    ///
    /// # Errors
    /// As [`Header::decode`]; [`BackupError::Io`].
    pub fn new(mut input: R, key: &MacKey) -> Result<Self, BackupError> {
        // The fixed part first: the format byte says how many counts follow.
        let mut h = vec![0u8; HEADER_FIXED];
        let mut got = read_full(&mut input, &mut h)?;
        if got == HEADER_FIXED {
            if let Some(trees) = trees_of(h[8]) {
                h.resize(header_len(trees), 0);
                got += read_full(&mut input, &mut h[HEADER_FIXED..])?;
            }
        }
        h.truncate(got);
        let header = Header::decode(&h)?;
        let left_in_tree = header.counts[0];
        Ok(BackupReader {
            input,
            header,
            header_bytes: h,
            mac: key.stream(),
            tree: 0,
            left_in_tree,
            last_key: None,
        })
    }

    /// The header as read.
    pub fn header(&self) -> &Header {
        &self.header
    }

    fn read_exact_mac(&mut self, buf: &mut [u8]) -> Result<(), BackupError> {
        self.input.read_exact(buf).map_err(io_err)?;
        self.mac.update(buf);
        Ok(())
    }

    fn read_len(&mut self, cap: usize) -> Result<usize, BackupError> {
        let mut b = [0u8; 4];
        self.read_exact_mac(&mut b)?;
        let len = u32::from_le_bytes(b) as usize;
        if len > cap {
            return Err(BackupError::Damaged("a length is over its limit"));
        }
        Ok(len)
    }

    /// The next row, or `None` after the last one the header announced.
    ///
    /// # Errors
    /// [`BackupError::Truncated`], [`BackupError::Damaged`] (wrong tree, keys out of
    /// order, oversized lengths), [`BackupError::Io`].
    pub fn next_entry(&mut self) -> Result<Option<BackupEntry>, BackupError> {
        while self.left_in_tree == 0 {
            self.tree += 1;
            self.last_key = None;
            match self.header.counts.get(self.tree) {
                Some(c) => self.left_in_tree = *c,
                None => return Ok(None),
            }
        }
        let mut t = [0u8; 1];
        self.read_exact_mac(&mut t)?;
        if usize::from(t[0]) != self.tree {
            return Err(BackupError::Damaged("an entry is in the wrong tree"));
        }
        let klen = self.read_len(MAX_KEY_LEN)?;
        let mut key = vec![0u8; klen];
        self.read_exact_mac(&mut key)?;
        let vlen = self.read_len(MAX_VALUE_LEN)?;
        let mut value = vec![0u8; vlen];
        self.read_exact_mac(&mut value)?;
        if self.last_key.as_ref().is_some_and(|last| *last >= key) {
            return Err(BackupError::Damaged("keys are out of order"));
        }
        self.last_key = Some(key.clone());
        self.left_in_tree -= 1;
        let tree = u8::try_from(self.tree)
            .ok()
            .and_then(Tree::from_id)
            .ok_or(BackupError::Damaged("an entry is in the wrong tree"))?;
        Ok(Some((tree, key, value)))
    }

    /// After the last entry: reads the MAC, checks that nothing follows it, and
    /// verifies it over everything read.
    ///
    /// # Errors
    /// [`BackupError::Damaged`] if entries are left unread or bytes follow the MAC;
    /// [`BackupError::Truncated`]; [`BackupError::Mac`].
    pub fn finish(mut self) -> Result<Header, BackupError> {
        if self.next_entry()?.is_some() {
            return Err(BackupError::Damaged("finish called before the last entry"));
        }
        let mut tag = [0u8; MAC_LEN];
        self.input.read_exact(&mut tag).map_err(io_err)?;
        let mut extra = [0u8; 1];
        loop {
            match self.input.read(&mut extra) {
                Ok(0) => break,
                Ok(_) => return Err(BackupError::Damaged("bytes follow the MAC")),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(BackupError::Io(e)),
            }
        }
        self.mac.update(&self.header_bytes);
        self.mac.verify(&tag).map_err(|_| BackupError::Mac)?;
        Ok(self.header)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use phonevault_keys::{derive_vault_keys, VaultId, VaultSeed};
    use proptest::prelude::*;

    fn key() -> MacKey {
        derive_vault_keys(&VaultSeed::from_bytes(&[5; 32]), &VaultId([6; 16])).backup
    }

    type Rows = Vec<BackupEntry>;

    fn write(rows: &Rows) -> Vec<u8> {
        let mut w = BackupWriter::new(std::io::Cursor::new(Vec::new()), &key()).unwrap();
        for (t, k, v) in rows {
            w.entry(*t, k, v).unwrap();
        }
        w.finish([6; 16], 1_700_000_000).unwrap().0.into_inner()
    }

    /// Frames rows as given, in any order, with a valid MAC (what a forger holding
    /// the key could write), to test the reader's own checks.
    fn write_raw(rows: &Rows) -> Vec<u8> {
        let mut counts = [0u64; TREES];
        let mut body = Vec::new();
        for (t, k, v) in rows {
            counts[usize::from(t.id())] += 1;
            encode_entry(*t, k, v, &mut body).unwrap();
        }
        let h = Header {
            vault_id: [6; 16],
            created_at: 1,
            counts,
        }
        .encode();
        let mut mac = key().stream();
        mac.update(&body);
        mac.update(&h);
        let mut out = h.to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(&mac.finalize());
        out
    }

    fn read(bytes: &[u8]) -> Result<Rows, BackupError> {
        let mut r = BackupReader::new(bytes, &key())?;
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            out.push(e);
        }
        r.finish()?;
        Ok(out)
    }

    fn sample() -> Rows {
        vec![
            (Tree::Meta, b"vault".to_vec(), vec![1; 40]),
            (Tree::Tenants, b"a".to_vec(), vec![2; 10]),
            (Tree::Tenants, b"b".to_vec(), vec![]),
            (Tree::Records, vec![0, 0, 0, 1, 9], vec![3; 100]),
            (Tree::Audit, vec![0; 8], vec![4; 3]),
        ]
    }

    /// Issue 16: format 2 added the suppress tree; a format-1 backup (7 counts) still
    /// reads, with no suppress rows.
    #[test]
    fn a_format_1_backup_still_reads() {
        let rows: Rows = vec![
            (Tree::Meta, b"vault".to_vec(), vec![1; 4]),
            (Tree::Audit, vec![0; 8], vec![4; 3]),
        ];
        let mut body = Vec::new();
        for (t, k, v) in &rows {
            encode_entry(*t, k, v, &mut body).unwrap();
        }
        let mut h = Header {
            vault_id: [6; 16],
            created_at: 1,
            counts: [1, 0, 0, 0, 0, 0, 1, 0],
        }
        .encode()[..header_len(OLD_TREES)]
            .to_vec();
        h[8] = OLD_BACKUP_FORMAT;
        h[33] = OLD_TREES as u8;
        let mut mac = key().stream();
        mac.update(&body);
        mac.update(&h);
        let mut file = h.clone();
        file.extend_from_slice(&body);
        file.extend_from_slice(&mac.finalize());
        assert_eq!(read(&file).unwrap(), rows);
        // The same bytes claiming format 2 are short of a count: refused.
        file[8] = BACKUP_FORMAT;
        assert!(read(&file).is_err());
    }

    #[test]
    fn round_trip_and_header() {
        let bytes = write(&sample());
        assert_eq!(read(&bytes).unwrap(), sample());
        let h = Header::decode(&bytes).unwrap();
        assert_eq!(h.counts, [1, 2, 1, 0, 0, 0, 1, 0]);
        assert_eq!(h.total(), 5);
        assert_eq!(&bytes[..8], MAGIC);
        assert_eq!(write(&Vec::new()).len(), HEADER_LEN + MAC_LEN);
        assert!(read(&write(&Vec::new())).unwrap().is_empty());
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = write(&sample());
        for len in 0..bytes.len() {
            let err = read(&bytes[..len]).unwrap_err();
            assert!(
                matches!(err, BackupError::Truncated | BackupError::Damaged(_)),
                "{len}: {err:?}"
            );
        }
        assert!(matches!(read(b"GIF89a..."), Err(BackupError::NotABackup)));
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let bytes = write(&sample());
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = bytes.clone();
                bad[i] ^= bit;
                assert!(read(&bad).is_err(), "byte {i} bit {bit:#x}");
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(read(&longer), Err(BackupError::Damaged(_))));
        let other = derive_vault_keys(&VaultSeed::from_bytes(&[7; 32]), &VaultId([6; 16])).backup;
        let mut r = BackupReader::new(bytes.as_slice(), &other).unwrap();
        while r.next_entry().unwrap().is_some() {}
        assert!(matches!(r.finish(), Err(BackupError::Mac)));
    }

    #[test]
    fn structure_is_checked_before_the_mac() {
        // Keys out of order within a tree, written by hand with a valid MAC.
        let rows = vec![
            (Tree::Records, b"b".to_vec(), vec![]),
            (Tree::Records, b"a".to_vec(), vec![]),
        ];
        assert!(matches!(
            read(&write_raw(&rows)),
            Err(BackupError::Damaged("keys are out of order"))
        ));
        let dup = vec![
            (Tree::Records, b"a".to_vec(), vec![]),
            (Tree::Records, b"a".to_vec(), vec![]),
        ];
        assert!(read(&write_raw(&dup)).is_err());
        assert_eq!(read(&write_raw(&sample())).unwrap(), sample());
        // the writer refuses rows out of order too
        let mut w = BackupWriter::new(std::io::Cursor::new(Vec::new()), &key()).unwrap();
        w.entry(Tree::Records, b"b", b"").unwrap();
        assert!(w.entry(Tree::Records, b"a", b"").is_err());
        assert!(w.entry(Tree::Tenants, b"z", b"").is_err());
        let mut header = Header::decode(&write(&sample())).unwrap().encode();
        header[8] = 9;
        assert!(matches!(
            Header::decode(&header),
            Err(BackupError::UnsupportedFormat(9))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut framed = write(&sample())[..HEADER_LEN].to_vec();
            framed.extend_from_slice(&bytes);
            let _ = read(&framed);
            let _ = read(&bytes);
        }

        #[test]
        fn round_trips(rows in proptest::collection::btree_map(
            (0usize..TREES, proptest::collection::vec(any::<u8>(), 0..12)),
            proptest::collection::vec(any::<u8>(), 0..64),
            0..40,
        )) {
            let rows: Rows = rows.into_iter().map(|((t, k), v)| (Tree::ALL[t], k, v)).collect();
            prop_assert_eq!(read(&write(&rows)).unwrap(), rows);
        }
    }
}
