//! MACed rows (tenants, meta, tokens, suppression lists): `version ‖ bincode-2(row) ‖
//! HMAC-SHA-256(row MAC key, lp(table) ‖ lp(key) ‖ lp(version ‖ row))`, so a row
//! moved to another key or table fails.

use bincode::{Decode, Encode};
use phonevault_keys::MacKey;

use super::VaultError;

/// Version byte of MACed rows (tenants, meta).
const ROW_VERSION: u8 = 1;
const ROW_TAG_LEN: usize = 32;
const MAX_ROW_LEN: usize = 64 * 1024;

pub(super) fn encode_row<T: Encode>(
    mac: &MacKey,
    table: &'static str,
    key: &[u8],
    row: &T,
) -> Vec<u8> {
    let mut out = vec![ROW_VERSION];
    let cfg = bincode::config::standard();
    if bincode::encode_into_std_write(row, &mut out, cfg).is_err() {
        out.truncate(1);
    }
    let tag = mac.tag(&[table.as_bytes(), key, &out]);
    out.extend_from_slice(&tag);
    out
}

pub(super) fn decode_row<T: Decode<()>>(
    mac: &MacKey,
    table: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, VaultError> {
    if bytes.len() < 1 + ROW_TAG_LEN || bytes.len() > MAX_ROW_LEN || bytes[0] != ROW_VERSION {
        return Err(VaultError::RowTampered(table));
    }
    let (body, tag) = bytes.split_at(bytes.len() - ROW_TAG_LEN);
    mac.verify(&[table.as_bytes(), key, body], tag)
        .map_err(|_| VaultError::RowTampered(table))?;
    let cfg = bincode::config::standard().with_limit::<MAX_ROW_LEN>();
    let (row, used) =
        bincode::decode_from_slice(&body[1..], cfg).map_err(|_| VaultError::RowTampered(table))?;
    if used != body.len() - 1 {
        return Err(VaultError::RowTampered(table));
    }
    Ok(row)
}
