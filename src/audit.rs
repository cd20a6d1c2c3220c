//! The tamper-evident audit chain: pure functions over bytes (no storage, no clock).
//!
//! Entries are appended in links (one link per group commit). Each link's entries are
//! sealed under the audit read key R (derived from the vault seed, exported to the
//! auditors beside K0), and the sealed bytes are chained to the previous link by a
//! hash and MACed with a key that evolves forward after every link, after Acra's log:
//!
//! ```text
//! sealed_i = AEAD_R(aad = lp(BODY_LABEL) ‖ lp(u64le(seq_i)), bincode-2(entries_i))
//!            (AES-256-GCM under a fresh per-message subkey of R, see AuditReadKey)
//! body_i   = 0x02 ‖ u64le(seq_i) ‖ sealed_i
//! head_i   = SHA-256(lp(LINK_LABEL) ‖ lp(head_{i-1}) ‖ lp(body_i))    head_{-1} = 32 zero bytes
//! tag_i    = HMAC-SHA-256(K_i, head_i)
//! K_{i+1}  = SHA-256("phonevault/v1/audit-key-evolve" ‖ K_i)         (K_i erased)
//! stored_i = body_i ‖ head_i ‖ tag_i
//! ```
//!
//! Whoever holds K0 (the auditors) can recompute every key and check every link,
//! without R and without unlocking anything: the hash and the MAC cover the sealed
//! bytes. Reading the entries needs R (or the unlocked vault). The vault only ever
//! holds the current key, so a key stolen today cannot re-sign yesterday's links. A
//! checkpoint `(seq, head)` kept off the machine detects a truncated or rolled-back
//! chain.
//!
//! Links of version 1 (`body = 0x01 ‖ bincode-2(seq, entries)`, entries in clear)
//! were written before entries were sealed; they still verify and read, since
//! re-sealing them would need the past keys that no longer exist. A version-1 link
//! after a version-2 link is refused: the vault never writes one.
//!
//! Entries never hold a phone number or a blind index: record ids only.

use bincode::{Decode, Encode};
use phonevault_keys::{AuditKey, AuditReadKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Domain label of the link hash.
pub const LINK_LABEL: &[u8] = b"phonevault/v1/audit-link";
/// AAD label of a link's sealed entries.
pub const BODY_LABEL: &[u8] = b"phonevault/v2/audit-link-body";
/// Version byte of a link body: 2, entries sealed under the audit read key.
pub const LINK_VERSION: u8 = 2;
/// Version byte of a link body written before entries were sealed (read, never written).
pub const LINK_VERSION_CLEAR: u8 = 1;
/// Upper bound on a stored link.
pub const MAX_LINK_LEN: usize = 4 << 20;

/// Who acted.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub enum Actor {
    /// A command-line user.
    Cli {
        /// OS user name.
        user: String,
        /// OS user id.
        uid: u32,
    },
    /// An API token, with the socket peer's credentials.
    Token {
        /// Token id (never the token).
        id: String,
        /// Peer uid.
        uid: u32,
        /// Peer pid.
        pid: u32,
    },
    /// An unauthenticated socket peer (failed authentication).
    Peer {
        /// Peer uid.
        uid: u32,
        /// Peer pid.
        pid: u32,
    },
    /// The vault itself (sweeper, automatic rotation).
    System,
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub enum Outcome {
    /// Done.
    Ok,
    /// Refused by policy (no consent for the purpose, opted out, expired, no right).
    Refused,
    /// Failed, with the stable error code.
    Failed(String),
}

/// One audited operation.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct Entry {
    /// Unix seconds.
    pub time: u64,
    /// Who.
    pub actor: Actor,
    /// Tenant, when the operation concerns one.
    pub tenant: Option<String>,
    /// What (`add`, `find`, `reveal`, `export`, `opt-out`, `unseal`, ...).
    pub action: String,
    /// Record ids touched (never numbers, never blind indexes).
    pub records: Vec<[u8; 16]>,
    /// Purpose stated for a read.
    pub purpose: Option<String>,
    /// Whether full numbers were shown (a reveal), rather than masked ones.
    pub reveal: bool,
    /// Outcome.
    pub outcome: Outcome,
    /// The record rows the operation's batch wrote, each with a digest of the
    /// ciphertext it stored (`None`: the row was deleted), so that `check` can hold
    /// every stored record against its last audited write. Empty for reads, and in
    /// links of version 1.
    pub writes: Vec<RowWrite>,
}

/// One record row a write stored or deleted.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct RowWrite {
    /// The row's key in the `records` tree (tenant id ‖ record id).
    pub key: Vec<u8>,
    /// `ROW_DIGEST_LABEL`-prefixed SHA-256 of the stored ciphertext, first 16 bytes;
    /// `None` for a deletion.
    pub digest: Option<[u8; 16]>,
}

/// Domain label of a stored row's digest in a write entry.
pub const ROW_DIGEST_LABEL: &[u8] = b"phonevault/v2/audit-row-digest";

/// The digest a write entry carries for a stored record ciphertext:
/// `SHA-256(lp(ROW_DIGEST_LABEL) ‖ lp(ciphertext))[..16]`.
pub fn row_digest(stored: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    lp(&mut h, ROW_DIGEST_LABEL);
    lp(&mut h, stored);
    let full: [u8; 32] = h.finalize().into();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// An entry of a version-1 link (before write digests).
#[derive(Decode)]
#[cfg_attr(test, derive(Encode))]
struct EntryV1 {
    time: u64,
    actor: Actor,
    tenant: Option<String>,
    action: String,
    records: Vec<[u8; 16]>,
    purpose: Option<String>,
    reveal: bool,
    outcome: Outcome,
}

impl From<EntryV1> for Entry {
    fn from(e: EntryV1) -> Entry {
        Entry {
            time: e.time,
            actor: e.actor,
            tenant: e.tenant,
            action: e.action,
            records: e.records,
            purpose: e.purpose,
            reveal: e.reveal,
            outcome: e.outcome,
            writes: Vec::new(),
        }
    }
}

/// A version-1 link body (entries in clear).
#[derive(Decode)]
struct ClearBody {
    seq: u64,
    entries: Vec<EntryV1>,
}

/// A decoded link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Position in the chain, from 0.
    pub seq: u64,
    /// Chain head after it.
    pub head: [u8; 32],
    /// Its entries, as stored.
    body: LinkBody,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum LinkBody {
    /// Version 1: in clear.
    Clear(Vec<Entry>),
    /// Version 2: sealed under the audit read key.
    Sealed(Vec<u8>),
}

impl Link {
    /// Its entries: opened with the audit read key, or as they are for a version-1
    /// link (written before entries were sealed).
    ///
    /// # Errors
    /// [`AuditError::Sealed`] when the link is sealed and no key is given;
    /// [`AuditError::Unreadable`] when it does not open with `key`.
    pub fn entries(&self, key: Option<&AuditReadKey>) -> Result<Vec<Entry>, AuditError> {
        match &self.body {
            LinkBody::Clear(entries) => Ok(entries.clone()),
            LinkBody::Sealed(sealed) => {
                let key = key.ok_or(AuditError::Sealed(self.seq))?;
                let plain = key
                    .open(&body_aad(self.seq), sealed)
                    .map_err(|_| AuditError::Unreadable(self.seq))?;
                decode_entries(&plain).ok_or(AuditError::Unreadable(self.seq))
            }
        }
    }

    /// Whether its entries are sealed (version 2), rather than in clear (version 1).
    pub fn is_sealed(&self) -> bool {
        matches!(self.body, LinkBody::Sealed(_))
    }
}

/// Where the chain stands: the next sequence number and the head so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Number of links (the next link's sequence number).
    pub next_seq: u64,
    /// Head after the last link (zeros for an empty chain).
    pub head: [u8; 32],
}

impl Checkpoint {
    /// The empty chain.
    pub const GENESIS: Checkpoint = Checkpoint {
        next_seq: 0,
        head: [0; 32],
    };
}

/// Why a chain does not verify.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// A link is malformed, out of sequence, unchained or wrongly MACed.
    #[error("audit chain broken at link {0}: it was edited, removed, reordered or forged")]
    BadLink(u64),
    /// The chain is shorter than, or differs from, a checkpoint taken earlier.
    #[error(
        "audit chain does not reach checkpoint {0}: the log was truncated or the vault rolled back"
    )]
    Checkpoint(u64),
    /// A link would exceed the size bound.
    #[error("audit link too large: split the entries")]
    TooLarge,
    /// A link's entries are sealed and no audit read key was given.
    #[error("the entries of audit link {0} are sealed: pass the audit key file written by `phonevault audit key export` (it holds the read key), or run this where the vault can be unlocked")]
    Sealed(u64),
    /// A link's sealed entries do not open with the read key given.
    #[error("the entries of audit link {0} do not open with this audit read key: the key file belongs to another vault, or the link was altered (check it with `phonevault audit verify`)")]
    Unreadable(u64),
    /// The entries could not be sealed.
    #[error(
        "audit entries could not be sealed: the operating system's random number generator failed"
    )]
    Seal,
}

fn lp(h: &mut Sha256, part: &[u8]) {
    h.update((part.len() as u64).to_le_bytes());
    h.update(part);
}

fn link_head(prev: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    lp(&mut h, LINK_LABEL);
    lp(&mut h, prev);
    lp(&mut h, body);
    h.finalize().into()
}

/// The AAD of link `seq`'s sealed entries.
fn body_aad(seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + BODY_LABEL.len() + 16);
    for part in [BODY_LABEL, &seq.to_le_bytes()[..]] {
        out.extend_from_slice(&(part.len() as u64).to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_LINK_LEN>()
}

/// Seals `entries` under `read` as the next link, MACed under `key` (the current
/// key), then evolves the key and advances `at`. Returns the stored bytes.
///
/// # Errors
/// [`AuditError::TooLarge`] when the link would exceed [`MAX_LINK_LEN`] (callers
/// split their entries well below it), [`AuditError::Seal`] when the OS RNG fails;
/// nothing is changed then.
pub fn append(
    at: &mut Checkpoint,
    key: &mut AuditKey,
    read: &AuditReadKey,
    entries: &[Entry],
) -> Result<Vec<u8>, AuditError> {
    let plain = Zeroizing::new(encode_entries(entries)?);
    if plain.len() + 128 > MAX_LINK_LEN {
        return Err(AuditError::TooLarge);
    }
    let sealed = read
        .seal(&body_aad(at.next_seq), &plain)
        .map_err(|_| AuditError::Seal)?;
    let mut body = Vec::with_capacity(1 + 8 + sealed.len() + 64);
    body.push(LINK_VERSION);
    body.extend_from_slice(&at.next_seq.to_le_bytes());
    body.extend_from_slice(&sealed);
    if body.len() + 64 > MAX_LINK_LEN {
        return Err(AuditError::TooLarge);
    }
    let head = link_head(&at.head, &body);
    let tag = key.tag(&head);
    key.evolve();
    at.next_seq += 1;
    at.head = head;
    let mut out = body;
    out.extend_from_slice(&head);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// The encoded form of `entries` exactly as a link seals them: the audit journal of
/// `serve --audit-sync process` seals these bytes too, so a change of the entry
/// format reaches the journal unchanged.
///
/// # Errors
/// [`AuditError::TooLarge`] past [`MAX_LINK_LEN`].
pub fn encode_entries(entries: &[Entry]) -> Result<Vec<u8>, AuditError> {
    bincode::encode_to_vec(entries, config()).map_err(|_| AuditError::TooLarge)
}

/// Decodes what [`encode_entries`] made, which must be read whole; `None` when it
/// does not decode.
pub fn decode_entries(bytes: &[u8]) -> Option<Vec<Entry>> {
    let (entries, used): (Vec<Entry>, usize) = bincode::decode_from_slice(bytes, config()).ok()?;
    (used == bytes.len()).then_some(entries)
}

/// Verifies a whole chain from K0: every link in sequence, chained and MACed under
/// its key. With a checkpoint, also that the chain reaches it. Returns the links and
/// where the chain ends.
///
/// # Errors
/// [`AuditError::BadLink`] naming the first bad link, or [`AuditError::Checkpoint`].
pub fn verify<'a>(
    k0: &AuditKey,
    links: impl IntoIterator<Item = &'a [u8]>,
    checkpoint: Option<&Checkpoint>,
) -> Result<(Vec<Link>, Checkpoint), AuditError> {
    let mut out = Vec::new();
    let end = verify_from(k0, Checkpoint::GENESIS, links, checkpoint, |l| {
        out.push(l);
        Ok(())
    })?;
    Ok((out, end))
}

/// Decodes a stored link WITHOUT checking its chain or MAC (for choosing what to
/// archive, and for reading a log that [`verify_from`] checks separately). Its
/// entries stay sealed until [`Link::entries`]. `None` when it does not decode.
pub fn decode_unverified(stored: &[u8]) -> Option<Link> {
    let (body, head, _tag) = split_link(stored)?;
    decode_body(body, *head)
}

/// A stored link's parts: body (with its version byte), head and tag.
fn split_link(stored: &[u8]) -> Option<(&[u8], &[u8; 32], &[u8; 32])> {
    if stored.len() < 1 + 64
        || stored.len() > MAX_LINK_LEN
        || !matches!(stored[0], LINK_VERSION | LINK_VERSION_CLEAR)
    {
        return None;
    }
    let (rest, tag) = stored.split_at(stored.len() - 32);
    let (body, head) = rest.split_at(rest.len() - 32);
    Some((body, head.try_into().ok()?, tag.try_into().ok()?))
}

/// A link body, which must be read whole (the sealed entries of version 2 are
/// opened later, by [`Link::entries`]).
fn decode_body(body: &[u8], head: [u8; 32]) -> Option<Link> {
    match *body.first()? {
        LINK_VERSION => {
            let seq = u64::from_le_bytes(body.get(1..9)?.try_into().ok()?);
            let sealed = body.get(9..)?;
            (!sealed.is_empty()).then(|| Link {
                seq,
                head,
                body: LinkBody::Sealed(sealed.to_vec()),
            })
        }
        LINK_VERSION_CLEAR => {
            let (b, used): (ClearBody, usize) =
                bincode::decode_from_slice(body.get(1..)?, config()).ok()?;
            (used == body.len() - 1).then_some(Link {
                seq: b.seq,
                head,
                body: LinkBody::Clear(b.entries.into_iter().map(Entry::from).collect()),
            })
        }
        _ => None,
    }
}

/// The latest entry time and the head of a stored link, unverified (see
/// [`decode_unverified`]), its entries opened with `read`.
pub fn link_time_and_head(stored: &[u8], read: &AuditReadKey) -> Option<(u64, [u8; 32])> {
    let link = decode_unverified(stored)?;
    let entries = link.entries(Some(read)).ok()?;
    let time = entries.iter().map(|e| e.time).max().unwrap_or(0);
    Some((time, link.head))
}

/// Format name of an audit archive file (`audit archive`, and the links a restore
/// moves out of the store).
pub const ARCHIVE_FORMAT: &str = "phonevault-audit-archive-v1";

/// A checkpoint as JSON: `{"seq": N, "head": "hex"}`.
pub fn checkpoint_json(c: &Checkpoint) -> serde_json::Value {
    serde_json::json!({"seq": c.next_seq, "head": hex::encode(c.head)})
}

/// An archive file's text: a header line (format, start, end), then one link per
/// line in hex.
pub fn archive_text<'a>(
    start: &Checkpoint,
    end: &Checkpoint,
    links: impl IntoIterator<Item = &'a [u8]>,
) -> String {
    let mut text = serde_json::json!({
        "format": ARCHIVE_FORMAT,
        "start": checkpoint_json(start),
        "end": checkpoint_json(end),
    })
    .to_string();
    text.push('\n');
    for l in links {
        text.push_str(&hex::encode(l));
        text.push('\n');
    }
    text
}

impl Actor {
    /// A short, stable name for reports: `token:ID`, `user:NAME`, `peer:UID`, `system`.
    pub fn label(&self) -> String {
        match self {
            Actor::Cli { user, .. } => format!("user:{user}"),
            Actor::Token { id, .. } => format!("token:{id}"),
            Actor::Peer { uid, .. } => format!("peer-uid:{uid}"),
            Actor::System => "system".into(),
        }
    }
}

/// Actions that hand numbers out of the vault (full, or masked with a record id).
pub const READ_ACTIONS: &[&str] = &["find", "find-last4", "get", "export", "subject", "share"];

/// Actions that are refusals of unauthenticated or unauthorized callers.
pub const AUTH_ACTIONS: &[&str] = &["auth-failed", "forbidden", "rate-limited", "unseal-failed"];

/// What one actor did in one tenant over a report's period.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ActorSummary {
    /// Reads that returned records (find, get, export, subject, share).
    pub reads: u64,
    /// Records returned in full (reveals), counted per record.
    pub revealed: u64,
    /// Records exported or shared (masked or not), counted per record.
    pub exported: u64,
    /// Operations refused by policy (no consent, opted out, expired).
    pub refused: u64,
    /// Failed authentication, requests outside the token's rights, rate-limit refusals.
    pub denied: u64,
    /// Operations that failed with an error.
    pub failed: u64,
    /// Writes (add, import, consent, opt-out, erase, ...).
    pub writes: u64,
    /// Record ids revealed (hex), sorted.
    pub revealed_ids: std::collections::BTreeSet<String>,
}

/// The incident-response summary of a period: per tenant (`-` for vault-wide
/// events), per actor.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Start of the period (unix seconds, inclusive).
    pub since: u64,
    /// End of the period (unix seconds, exclusive), if any.
    pub until: Option<u64>,
    /// Entries in the period.
    pub entries: u64,
    /// tenant → actor → summary.
    pub tenants:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, ActorSummary>>,
}

impl Report {
    /// An empty report of the period `[since, until)`.
    pub fn new(since: u64, until: Option<u64>) -> Report {
        Report {
            since,
            until,
            ..Report::default()
        }
    }

    /// Whether `time` is in the period.
    pub fn covers(&self, time: u64) -> bool {
        time >= self.since && self.until.is_none_or(|u| time < u)
    }

    /// Adds one entry (ignored when outside the period).
    pub fn add(&mut self, e: &Entry) {
        if !self.covers(e.time) {
            return;
        }
        self.entries += 1;
        let tenant = e.tenant.clone().unwrap_or_else(|| "-".into());
        let s = self
            .tenants
            .entry(tenant)
            .or_default()
            .entry(e.actor.label())
            .or_default();
        let action = e.action.as_str();
        match &e.outcome {
            Outcome::Refused if AUTH_ACTIONS.contains(&action) => s.denied += 1,
            Outcome::Failed(_) if AUTH_ACTIONS.contains(&action) => s.denied += 1,
            Outcome::Refused => s.refused += 1,
            Outcome::Failed(_) => s.failed += 1,
            Outcome::Ok if READ_ACTIONS.contains(&action) => {
                if !e.records.is_empty() {
                    s.reads += 1;
                }
                if matches!(action, "export" | "share") {
                    s.exported += e.records.len() as u64;
                }
                if e.reveal {
                    s.revealed += e.records.len() as u64;
                    s.revealed_ids.extend(e.records.iter().map(hex::encode));
                }
            }
            Outcome::Ok => s.writes += 1,
        }
    }
}

/// The key of link `seq`: K0 evolved `seq` times.
pub fn key_at(k0: &AuditKey, seq: u64) -> AuditKey {
    let mut key = AuditKey::from_bytes(k0.expose_secret());
    for _ in 0..seq {
        key.evolve();
    }
    key
}

/// Verifies links that continue the chain after `start` (an archive's end, or
/// genesis), passing each decoded link to `each` as it goes, so a long log is checked
/// in constant memory. With a checkpoint at or after `start`, also that the chain
/// reaches it. Returns where the chain ends.
///
/// # Errors
/// [`AuditError::BadLink`] naming the first bad link, [`AuditError::Checkpoint`]
/// (both as `E`), or what `each` returns.
pub fn verify_from<L: AsRef<[u8]>, E: From<AuditError>>(
    k0: &AuditKey,
    start: Checkpoint,
    links: impl IntoIterator<Item = L>,
    checkpoint: Option<&Checkpoint>,
    mut each: impl FnMut(Link) -> Result<(), E>,
) -> Result<Checkpoint, E> {
    let mut key = key_at(k0, start.next_seq);
    let mut at = start;
    let mut reached = checkpoint.is_none_or(|c| c.next_seq <= start.next_seq);
    // Once a sealed link is seen, a link in clear after it is a downgrade.
    let mut sealed_seen = false;
    if let Some(c) = checkpoint {
        if c.next_seq == start.next_seq && c.head != start.head {
            return Err(AuditError::Checkpoint(c.next_seq).into());
        }
    }
    for stored in links {
        let seq = at.next_seq;
        let bad = || E::from(AuditError::BadLink(seq));
        let (body, head, tag) = split_link(stored.as_ref()).ok_or_else(bad)?;
        let want = link_head(&at.head, body);
        if *head != want
            || !bool::from(subtle::ConstantTimeEq::ct_eq(&key.tag(&want)[..], &tag[..]))
        {
            return Err(bad());
        }
        let link = decode_body(body, want)
            .filter(|l| l.seq == seq && (l.is_sealed() || !sealed_seen))
            .ok_or_else(bad)?;
        sealed_seen |= link.is_sealed();
        key.evolve();
        at = Checkpoint {
            next_seq: seq + 1,
            head: want,
        };
        if let Some(c) = checkpoint {
            if c.next_seq == at.next_seq {
                if c.head != at.head {
                    return Err(AuditError::Checkpoint(c.next_seq).into());
                }
                reached = true;
            }
        }
        each(link)?;
    }
    if !reached {
        return Err(AuditError::Checkpoint(checkpoint.map_or(0, |c| c.next_seq)).into());
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(i: u64) -> Entry {
        Entry {
            time: 1_790_000_000 + i,
            actor: Actor::Token {
                id: "tok_1".into(),
                uid: 1000,
                pid: 42,
            },
            tenant: Some("shop".into()),
            action: "find".into(),
            records: vec![[i as u8; 16]],
            purpose: Some("otp".into()),
            reveal: i % 2 == 0,
            outcome: if i % 3 == 0 {
                Outcome::Refused
            } else {
                Outcome::Ok
            },
            writes: if i % 4 == 1 {
                vec![RowWrite {
                    key: vec![i as u8; 20],
                    digest: Some(row_digest(&[i as u8; 40])),
                }]
            } else {
                Vec::new()
            },
        }
    }

    fn read_key() -> AuditReadKey {
        AuditReadKey::from_bytes(&[0x5a; 32])
    }

    fn chain(n: u64) -> (AuditKey, Vec<Vec<u8>>, Checkpoint, AuditKey) {
        let k0 = AuditKey::generate();
        let mut key = AuditKey::from_bytes(k0.expose_secret());
        let mut at = Checkpoint::GENESIS;
        let links = (0..n)
            .map(|i| append(&mut at, &mut key, &read_key(), &[entry(i), entry(i + 100)]).unwrap())
            .collect();
        (k0, links, at, key)
    }

    /// A version-1 link, as vaults wrote them before entries were sealed.
    fn append_clear(at: &mut Checkpoint, key: &mut AuditKey, entries: &[Entry]) -> Vec<u8> {
        #[derive(Encode)]
        struct V1 {
            seq: u64,
            entries: Vec<EntryV1>,
        }
        let mut body = vec![LINK_VERSION_CLEAR];
        let v1 = V1 {
            seq: at.next_seq,
            entries: entries
                .iter()
                .map(|e| EntryV1 {
                    time: e.time,
                    actor: e.actor.clone(),
                    tenant: e.tenant.clone(),
                    action: e.action.clone(),
                    records: e.records.clone(),
                    purpose: e.purpose.clone(),
                    reveal: e.reveal,
                    outcome: e.outcome.clone(),
                })
                .collect(),
        };
        bincode::encode_into_std_write(&v1, &mut body, config()).unwrap();
        let head = link_head(&at.head, &body);
        let tag = key.tag(&head);
        key.evolve();
        at.next_seq += 1;
        at.head = head;
        body.extend_from_slice(&head);
        body.extend_from_slice(&tag);
        body
    }

    fn refs(links: &[Vec<u8>]) -> Vec<&[u8]> {
        links.iter().map(Vec::as_slice).collect()
    }

    #[test]
    fn an_intact_chain_verifies_and_reaches_its_checkpoint() {
        let (k0, links, at, _) = chain(20);
        let (decoded, end) = verify(&k0, refs(&links), Some(&at)).unwrap();
        assert_eq!(end, at);
        assert_eq!(decoded.len(), 20);
        assert_eq!(decoded[7].entries(Some(&read_key())).unwrap()[0], entry(7));
        // an earlier checkpoint is reached too
        let (_, mid) = verify(&k0, refs(&links[..5]), None).unwrap();
        verify(&k0, refs(&links), Some(&mid)).unwrap();
    }

    #[test]
    fn edits_removals_and_reorders_name_the_first_bad_link() {
        let (k0, links, _, _) = chain(10);
        for i in 0..links[4].len() {
            let mut t = links.clone();
            t[4][i] ^= 1;
            assert_eq!(
                verify(&k0, refs(&t), None).unwrap_err(),
                AuditError::BadLink(4)
            );
        }
        let mut removed = links.clone();
        removed.remove(3);
        assert_eq!(
            verify(&k0, refs(&removed), None).unwrap_err(),
            AuditError::BadLink(3)
        );
        let mut swapped = links.clone();
        swapped.swap(2, 6);
        assert_eq!(
            verify(&k0, refs(&swapped), None).unwrap_err(),
            AuditError::BadLink(2)
        );
        assert!(verify(&AuditKey::generate(), refs(&links), None).is_err());
    }

    #[test]
    fn truncation_and_rollback_are_caught_by_a_checkpoint() {
        let (k0, links, at, _) = chain(10);
        // truncated: an intact prefix, but the checkpoint is further on
        assert_eq!(
            verify(&k0, refs(&links[..8]), Some(&at)).unwrap_err(),
            AuditError::Checkpoint(10)
        );
        // rolled back and re-grown to the same length: the head differs
        let (_, other, _, _) = chain(10);
        assert!(verify(&k0, refs(&other), Some(&at)).is_err());
    }

    #[test]
    fn a_key_stolen_now_cannot_resign_the_past() {
        // The thief has the vault's current key (K_10) and rewrites link 3 with it.
        let (k0, mut links, _, current) = chain(10);
        let mut at = Checkpoint::GENESIS;
        let (decoded, _) = verify(&k0, refs(&links[..3]), None).unwrap();
        at.next_seq = 3;
        at.head = decoded[2].head;
        let mut stolen = AuditKey::from_bytes(current.expose_secret());
        let mut forged = entry(3);
        forged.outcome = Outcome::Ok;
        forged.action = "nothing-happened".into();
        links[3] = append(&mut at, &mut stolen, &read_key(), &[forged]).unwrap();
        assert_eq!(
            verify(&k0, refs(&links), None).unwrap_err(),
            AuditError::BadLink(3)
        );
    }

    #[test]
    fn entries_round_trip_through_their_encoding_read_whole() {
        let entries = [entry(1), entry(2)];
        let bytes = encode_entries(&entries).unwrap();
        assert_eq!(decode_entries(&bytes).unwrap(), entries.to_vec());
        assert!(decode_entries(&bytes[..bytes.len() - 1]).is_none());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_entries(&longer).is_none());
    }

    /// Issue 12 item 3: entries were stored in clear, so a reader of the disk saw the
    /// record ids of opt-outs, refusals and withdrawals.
    #[test]
    fn a_link_holds_no_record_id_or_purpose_and_verifies_without_the_read_key() {
        let mut e = entry(3);
        e.records = vec![[0xc7; 16]];
        e.purpose = Some("marketing-sms".into());
        e.action = "opt-out".into();
        let k0 = AuditKey::generate();
        let mut key = AuditKey::from_bytes(k0.expose_secret());
        let mut at = Checkpoint::GENESIS;
        let link = append(&mut at, &mut key, &read_key(), &[e.clone()]).unwrap();
        let hex_link = hex::encode(&link);
        assert!(!link.windows(16).any(|w| w == [0xc7; 16]));
        assert!(!hex_link.contains(&hex::encode([0xc7; 16])));
        assert!(!link.windows(13).any(|w| w == b"marketing-sms"));
        assert!(!link.windows(7).any(|w| w == b"opt-out"));
        // K0 alone verifies; the entries need the read key
        let (links, _) = verify(&k0, [link.as_slice()], None).unwrap();
        assert_eq!(links[0].entries(None), Err(AuditError::Sealed(0)));
        assert_eq!(
            links[0].entries(Some(&AuditReadKey::from_bytes(&[1; 32]))),
            Err(AuditError::Unreadable(0))
        );
        assert_eq!(links[0].entries(Some(&read_key())).unwrap(), vec![e]);
        // the same entries sealed twice differ (fresh subkey and nonce)
        let mut at2 = Checkpoint::GENESIS;
        let again = append(
            &mut at2,
            &mut AuditKey::from_bytes(k0.expose_secret()),
            &read_key(),
            &[entry(3)],
        )
        .unwrap();
        assert_ne!(again[9..40], link[9..40]);
        // sealed entries moved to another position do not open there
        let moved = Link {
            seq: 1,
            head: links[0].head,
            body: links[0].body.clone(),
        };
        assert_eq!(
            moved.entries(Some(&read_key())),
            Err(AuditError::Unreadable(1))
        );
    }

    #[test]
    fn links_in_clear_from_before_still_verify_and_read_but_never_after_a_sealed_one() {
        let k0 = AuditKey::generate();
        let mut key = AuditKey::from_bytes(k0.expose_secret());
        let mut at = Checkpoint::GENESIS;
        let mut links = vec![
            append_clear(&mut at, &mut key, &[entry(0)]),
            append_clear(&mut at, &mut key, &[entry(1)]),
        ];
        links.push(append(&mut at, &mut key, &read_key(), &[entry(2)]).unwrap());
        let (decoded, end) = verify(&k0, refs(&links), Some(&at)).unwrap();
        assert_eq!(end, at);
        assert!(!decoded[0].is_sealed() && decoded[2].is_sealed());
        assert_eq!(decoded[0].entries(None).unwrap(), vec![entry(0)]);
        assert_eq!(
            decoded[2].entries(Some(&read_key())).unwrap(),
            vec![entry(2)]
        );
        // a link in clear after a sealed one: refused even with a valid MAC
        links.push(append_clear(&mut at, &mut key, &[entry(3)]));
        assert_eq!(
            verify(&k0, refs(&links), None).unwrap_err(),
            AuditError::BadLink(3)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_links_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let k0 = AuditKey::generate();
            let _ = verify(&k0, [bytes.as_slice()], None);
        }
    }
}
