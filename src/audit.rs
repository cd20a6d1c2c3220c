//! The tamper-evident audit chain: pure functions over bytes (no storage, no clock).
//!
//! Entries are appended in links (one link per group commit). Each link is chained to
//! the previous one by a hash and MACed with a key that evolves forward after every
//! link, after Acra's log:
//!
//! ```text
//! body_i = 0x01 ‖ bincode-2(seq_i, entries_i)
//! head_i = SHA-256(lp(LINK_LABEL) ‖ lp(head_{i-1}) ‖ lp(body_i))      head_{-1} = 32 zero bytes
//! tag_i  = HMAC-SHA-256(K_i, head_i)
//! K_{i+1} = SHA-256("phonevault/v1/audit-key-evolve" ‖ K_i)           (K_i erased)
//! stored_i = body_i ‖ head_i ‖ tag_i
//! ```
//!
//! Whoever holds K0 (the auditors) can recompute every key and check every link; the
//! vault only ever holds the current key, so a key stolen today cannot re-sign
//! yesterday's links. A checkpoint `(seq, head)` kept off the machine detects a
//! truncated or rolled-back chain.
//!
//! Entries never hold a phone number or a blind index: record ids only.

use bincode::{Decode, Encode};
use phonevault_keys::AuditKey;
use sha2::{Digest, Sha256};

/// Domain label of the link hash.
pub const LINK_LABEL: &[u8] = b"phonevault/v1/audit-link";
/// Version byte of a link body.
pub const LINK_VERSION: u8 = 1;
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
}

#[derive(Encode)]
struct BodyRef<'a> {
    seq: u64,
    entries: &'a [Entry],
}

#[derive(Decode)]
struct Body {
    seq: u64,
    entries: Vec<Entry>,
}

/// A decoded link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Position in the chain, from 0.
    pub seq: u64,
    /// Its entries.
    pub entries: Vec<Entry>,
    /// Chain head after it.
    pub head: [u8; 32],
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

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_LINK_LEN>()
}

/// Seals `entries` as the next link under `key` (the current key), then evolves the
/// key and advances `at`. Returns the stored bytes.
///
/// # Errors
/// [`AuditError::TooLarge`] when the link would exceed [`MAX_LINK_LEN`] (callers
/// split their entries well below it); nothing is changed then.
pub fn append(
    at: &mut Checkpoint,
    key: &mut AuditKey,
    entries: &[Entry],
) -> Result<Vec<u8>, AuditError> {
    let mut body = vec![LINK_VERSION];
    let b = BodyRef {
        seq: at.next_seq,
        entries,
    };
    bincode::encode_into_std_write(&b, &mut body, config()).map_err(|_| AuditError::TooLarge)?;
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

/// The encoded form of `entries` exactly as a link body holds them (after its
/// sequence number): the audit journal of `serve --audit-sync process` carries these
/// bytes, so a change of the entry format reaches the journal unchanged.
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
/// archive, and for reading a log that [`verify_from`] checks separately). `None` when
/// it does not decode.
pub fn decode_unverified(stored: &[u8]) -> Option<Link> {
    let (body, head, _tag) = split_link(stored)?;
    let b = decode_body(body)?;
    Some(Link {
        seq: b.seq,
        entries: b.entries,
        head: *head,
    })
}

/// A stored link's parts: body (with its version byte), head and tag.
fn split_link(stored: &[u8]) -> Option<(&[u8], &[u8; 32], &[u8; 32])> {
    if stored.len() < 1 + 64 || stored.len() > MAX_LINK_LEN || stored[0] != LINK_VERSION {
        return None;
    }
    let (rest, tag) = stored.split_at(stored.len() - 32);
    let (body, head) = rest.split_at(rest.len() - 32);
    Some((body, head.try_into().ok()?, tag.try_into().ok()?))
}

/// A link body, which must be read whole.
fn decode_body(body: &[u8]) -> Option<Body> {
    let (b, used): (Body, usize) = bincode::decode_from_slice(body.get(1..)?, config()).ok()?;
    (used == body.len() - 1).then_some(b)
}

/// The latest entry time and the head of a stored link, unverified (see
/// [`decode_unverified`]).
pub fn link_time_and_head(stored: &[u8]) -> Option<(u64, [u8; 32])> {
    let link = decode_unverified(stored)?;
    let time = link.entries.iter().map(|e| e.time).max().unwrap_or(0);
    Some((time, link.head))
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
        let b = decode_body(body).filter(|b| b.seq == seq).ok_or_else(bad)?;
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
        each(Link {
            seq,
            entries: b.entries,
            head: want,
        })?;
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
        }
    }

    fn chain(n: u64) -> (AuditKey, Vec<Vec<u8>>, Checkpoint, AuditKey) {
        let k0 = AuditKey::generate();
        let mut key = AuditKey::from_bytes(k0.expose_secret());
        let mut at = Checkpoint::GENESIS;
        let links = (0..n)
            .map(|i| append(&mut at, &mut key, &[entry(i), entry(i + 100)]).unwrap())
            .collect();
        (k0, links, at, key)
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
        assert_eq!(decoded[7].entries[0], entry(7));
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
        links[3] = append(&mut at, &mut stolen, &[forged]).unwrap();
        assert_eq!(
            verify(&k0, refs(&links), None).unwrap_err(),
            AuditError::BadLink(3)
        );
    }

    #[test]
    fn journal_entry_bytes_are_the_link_body_bytes() {
        let entries = [entry(1), entry(2)];
        let bytes = encode_entries(&entries).unwrap();
        assert_eq!(decode_entries(&bytes).unwrap(), entries.to_vec());
        let mut at = Checkpoint::GENESIS;
        let link = append(&mut at, &mut AuditKey::generate(), &entries).unwrap();
        // body = version ‖ seq (one varint byte for 0) ‖ the entries' bytes
        assert_eq!(&link[2..2 + bytes.len()], bytes.as_slice());
        assert!(decode_entries(&bytes[..bytes.len() - 1]).is_none());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_entries(&longer).is_none());
    }

    proptest! {
        #[test]
        fn arbitrary_links_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let k0 = AuditKey::generate();
            let _ = verify(&k0, [bytes.as_slice()], None);
        }
    }
}
