//! The store's key layout: how every row of a vault is keyed, byte by byte. Keys
//! begin with the tenant's 4-byte id (big-endian), so one tenant's rows of a tree are
//! one contiguous range, and carry no number and no digest an outsider could invert.
//!
//! | tree | key |
//! |---|---|
//! | records | `u32-be tenant ‖ record id (16)` |
//! | index, exact | `u32-be tenant ‖ 'E' ‖ u32-be index key version ‖ HMAC digest (16)` → record id |
//! | index, last 4 | `u32-be tenant ‖ 'L' ‖ u32-be index key version ‖ digest (4) ‖ record id (16)` |
//! | expiry | `u32-be tenant ‖ u64-be last activity ‖ record id (16)` |
//!
//! Below: the meta rows of the audit log, and the names a vault directory holds
//! besides `keyring` and `store/` while a compaction or a restore runs.

use crate::record::RecordId;

use super::VaultError;

/// Meta row holding the sealed chain state.
pub(crate) const STATE_ROW: &[u8] = b"audit-state";
/// Meta row holding K0 until it is exported.
pub(crate) const K0_ROW: &[u8] = b"audit-k0";
/// Meta row holding the journal mark: which journal records are in the chain.
pub(crate) const JOURNAL_ROW: &[u8] = b"audit-journal";
/// Meta row of a data backup (never of a live store): where the live chain started
/// when the backup was taken (`u64le(seq) ‖ head`, not secret), for the archive a
/// restore makes of the backup's links.
pub(crate) const BACKUP_START_ROW: &[u8] = b"audit-backup-start";
/// The meta rows that hold audit keys or the chain's state: never in a data backup.
pub(crate) const KEY_ROWS: [&[u8]; 3] = [STATE_ROW, K0_ROW, JOURNAL_ROW];

/// Where `compact` builds the new store.
pub(crate) const COMPACT_NEW: &str = "store.compact-new";
/// Where `compact` keeps the old store during the swap.
pub(crate) const COMPACT_OLD: &str = "store.compact-old";
/// Where `restore` writes the rows of the new store.
pub(crate) const RESTORE_PARTIAL: &str = "store.restore-partial";
/// The complete new store of a `restore`, before it is renamed into place.
pub(crate) const RESTORE_NEW: &str = "store.restore-new";

/// Kind byte of an exact index entry.
pub(crate) const INDEX_EXACT: u8 = b'E';
/// Kind byte of a last-4 index entry.
pub(crate) const INDEX_LAST4: u8 = b'L';

/// The record id that ends a store key after `offset` bytes of prefix.
pub(crate) fn id_after(
    key: &[u8],
    offset: usize,
    table: &'static str,
) -> Result<RecordId, VaultError> {
    key.get(offset..)
        .and_then(|r| <[u8; 16]>::try_from(r).ok())
        .map(RecordId)
        .ok_or(VaultError::RowTampered(table))
}

pub(crate) fn record_key(tenant_id: u32, id: &RecordId) -> Vec<u8> {
    let mut k = Vec::with_capacity(20);
    k.extend_from_slice(&tenant_id.to_be_bytes());
    k.extend_from_slice(&id.0);
    k
}

pub(crate) fn exact_index_key(tenant_id: u32, index_version: u32, digest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(25);
    k.extend_from_slice(&tenant_id.to_be_bytes());
    k.push(INDEX_EXACT);
    k.extend_from_slice(&index_version.to_be_bytes());
    k.extend_from_slice(digest);
    k
}

pub(crate) fn last4_prefix(tenant_id: u32, index_version: u32, digest: &[u8; 4]) -> Vec<u8> {
    let mut k = Vec::with_capacity(29);
    k.extend_from_slice(&tenant_id.to_be_bytes());
    k.push(INDEX_LAST4);
    k.extend_from_slice(&index_version.to_be_bytes());
    k.extend_from_slice(digest);
    k
}

/// Expiry index entry: `tenant id ‖ u64-be(last consent or verification) ‖ record id`.
/// Keyed by activity time rather than by expiry time, so a change of the retention
/// period needs no rebuild, and `purge` scans only what has expired.
pub(crate) fn expiry_key(tenant_id: u32, last_activity: u64, id: &RecordId) -> Vec<u8> {
    let mut k = Vec::with_capacity(28);
    k.extend_from_slice(&tenant_id.to_be_bytes());
    k.extend_from_slice(&last_activity.to_be_bytes());
    k.extend_from_slice(&id.0);
    k
}

pub(crate) fn last4_of(e164: &str) -> &str {
    &e164[e164.len().saturating_sub(4)..]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: RecordId = RecordId([0xab; 16]);

    #[test]
    fn keys_are_laid_out_as_documented() {
        let mut rec = vec![0, 0, 1, 2];
        rec.extend_from_slice(&[0xab; 16]);
        assert_eq!(record_key(0x0102, &ID), rec);

        let mut exact = vec![0, 0, 0, 7, b'E', 0, 0, 0, 3];
        exact.extend_from_slice(&[9; 16]);
        assert_eq!(exact_index_key(7, 3, &[9; 16]), exact);

        assert_eq!(
            last4_prefix(7, 3, &[1, 2, 3, 4]),
            [0, 0, 0, 7, b'L', 0, 0, 0, 3, 1, 2, 3, 4]
        );

        let mut exp = vec![0, 0, 0, 7, 0, 0, 0, 0, 0x6a, 0xb0, 0x1e, 0x80];
        exp.extend_from_slice(&[0xab; 16]);
        assert_eq!(expiry_key(7, 0x6ab0_1e80, &ID), exp);
    }

    #[test]
    fn the_record_id_after_a_prefix_is_exactly_sixteen_bytes() {
        let key = record_key(7, &ID);
        assert_eq!(id_after(&key, 4, "records").unwrap(), ID);
        assert!(id_after(&key[..19], 4, "records").is_err());
        assert!(id_after(&[key.as_slice(), &[0]].concat(), 4, "records").is_err());
        assert_eq!(last4_of("+447400123958"), "3958");
        assert_eq!(last4_of("12"), "12");
    }
}
