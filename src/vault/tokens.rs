//! API tokens: random 256-bit bearer secrets, stored only as SHA-256 hashes in MACed
//! rows of the `tokens` tree, each bound to a tenant (or vault-wide for admin), a role,
//! a set of purposes, the reveal right and an optional expiry.
//!
//! Rows are keyed `b'h' ‖ SHA-256(token)`, so authenticating a request is one point
//! read; the stored hash is then compared with the presented one in constant time.
//! The row MAC (key derived from the root key, bound to table and row key) means a
//! writer of the store cannot mint a token or widen one's rights.

use bincode::{Decode, Encode};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::rowmac::{decode_row, encode_row};
use super::{check_name, Vault, VaultError};
use crate::policy::TenantName;
use crate::store::{Batch, Tree};

const TABLE: &str = "tokens";
const HASH_PREFIX: u8 = b'h';
/// Prefix of every token, so secret scanners and humans can recognize one.
pub const TOKEN_PREFIX: &str = "pvt_";

pub use crate::policy::Role;

/// A stored token's rights (everything but the secret).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct TokenInfo {
    /// Public identifier (16 hex characters), used to list and revoke.
    pub id: String,
    /// The tenant it is bound to; `None` for a vault-wide admin token.
    pub tenant: Option<String>,
    /// Role.
    pub role: Role,
    /// Purposes it may use; empty means every purpose of its tenant.
    pub purposes: Vec<String>,
    /// Whether it may see full numbers.
    pub reveal: bool,
    /// Unix seconds of creation.
    pub created_at: u64,
    /// Unix seconds after which it no longer works.
    pub expires_at: Option<u64>,
}

impl TokenInfo {
    /// Whether the token may act for `purpose`.
    pub fn allows_purpose(&self, purpose: &str) -> bool {
        self.purposes.is_empty() || self.purposes.iter().any(|p| p == purpose)
    }
}

#[derive(Encode, Decode)]
struct TokenRow {
    hash: [u8; 32],
    info: TokenInfo,
}

/// What to create with [`Vault::create_token`].
#[derive(Clone, Debug)]
pub struct TokenSpec {
    /// Tenant, or `None` for a vault-wide admin token.
    pub tenant: Option<TenantName>,
    /// Role (must be admin when `tenant` is `None`).
    pub role: Role,
    /// Allowed purposes; empty means all of the tenant's.
    pub purposes: Vec<String>,
    /// Reveal right.
    pub reveal: bool,
    /// Lifetime in seconds.
    pub ttl_secs: Option<u64>,
}

/// A bearer token as handed out once. No `Debug`, `Clone` or `Display`: the text is
/// reached only through [`TokenSecret::expose_secret`] and zeroized on drop.
pub struct TokenSecret(Zeroizing<String>);

impl TokenSecret {
    /// The token text (`pvt_` and 64 hex characters).
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSecret").finish_non_exhaustive()
    }
}

/// Verified tokens of this process, by hash, so that authenticating a request on a
/// store only this process opens (sled) is one hash-map read: every change to the
/// `tokens` tree then goes through this process, and every revocation empties the
/// cache before it returns (a read racing it inserts nothing: see `generation`).
#[derive(Default)]
pub(crate) struct TokenCache {
    map: std::sync::RwLock<std::collections::HashMap<[u8; 32], TokenInfo>>,
    /// Moved on by every revocation: a row read under an older generation is not cached.
    generation: std::sync::atomic::AtomicU64,
}

/// Most tokens kept; past it the cache starts over (a deployment has a few dozen).
const MAX_CACHED_TOKENS: usize = 4096;

impl TokenCache {
    fn get(&self, hash: &[u8; 32]) -> Option<TokenInfo> {
        self.map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(hash)
            .cloned()
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn insert(&self, hash: [u8; 32], info: &TokenInfo, read_at: u64) {
        let mut map = self
            .map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.generation() != read_at {
            return;
        }
        if map.len() >= MAX_CACHED_TOKENS {
            map.clear();
        }
        map.insert(hash, info.clone());
    }

    fn clear(&self) {
        let mut map = self
            .map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        map.clear();
    }
}

fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn row_key(hash: &[u8; 32]) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(HASH_PREFIX);
    k.extend_from_slice(hash);
    k
}

/// Parses a token lifetime such as `30d`, `12h`, `45m` or `90s`.
///
/// # Errors
/// [`VaultError::InvalidArgument`] for anything else.
pub fn parse_ttl(s: &str) -> Result<u64, VaultError> {
    // The value is not repeated: it may be anything typed in the wrong place.
    crate::policy::parse_duration(s).map_err(|_| {
        VaultError::InvalidArgument("invalid --ttl: use e.g. 30d, 12h, 45m or 90s".into())
    })
}

impl Vault {
    /// Creates a token and returns its info and the secret, which is not stored and
    /// cannot be shown again.
    ///
    /// # Errors
    /// [`VaultError::UnknownTenant`], [`VaultError::UnknownPurpose`], or
    /// [`VaultError::InvalidArgument`] for a vault-wide token that is not admin.
    pub fn create_token(&self, spec: &TokenSpec) -> Result<(TokenInfo, TokenSecret), VaultError> {
        self.audited(
            "token-create",
            spec.tenant.as_ref().map(TenantName::as_str),
            None,
            |ev| self.create_token_in(spec, ev),
        )
    }

    fn create_token_in(
        &self,
        spec: &TokenSpec,
        ev: &mut super::audit::Event,
    ) -> Result<(TokenInfo, TokenSecret), VaultError> {
        match &spec.tenant {
            Some(_) if spec.role == Role::Inbound && (!spec.purposes.is_empty() || spec.reveal) => {
                return Err(VaultError::InvalidArgument(
                    "an inbound token takes no purposes and no reveal right: it only opts numbers out and in by the keyword texted".into(),
                ));
            }
            Some(t) => {
                let ctx = self.tenant(t.as_str())?;
                for (i, p) in spec.purposes.iter().enumerate() {
                    check_name("purpose", p)?;
                    ctx.check_purpose_at(p, i)?;
                }
            }
            None => {
                if spec.role != Role::Admin || !spec.purposes.is_empty() || spec.reveal {
                    return Err(VaultError::InvalidArgument(
                        "a token without --tenant is a vault-wide admin token (use --admin); it takes no purposes and no reveal right".into(),
                    ));
                }
            }
        }
        let mut raw = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *raw);
        let secret = TokenSecret(Zeroizing::new(format!(
            "{TOKEN_PREFIX}{}",
            hex::encode(*raw)
        )));
        let mut idb = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut idb);
        let t = self.now();
        let info = TokenInfo {
            id: hex::encode(idb),
            tenant: spec.tenant.as_ref().map(|t| t.as_str().to_owned()),
            role: spec.role,
            purposes: spec.purposes.clone(),
            reveal: spec.reveal,
            created_at: t,
            expires_at: spec.ttl_secs.map(|s| t.saturating_add(s)),
        };
        let hash = hash_token(secret.expose_secret());
        let key = row_key(&hash);
        let row = TokenRow {
            hash,
            info: info.clone(),
        };
        let mut b = Batch::default();
        b.guard(Tree::Tokens, key.clone(), None);
        b.put(
            Tree::Tokens,
            key.clone(),
            encode_row(&self.row_mac, TABLE, &key, &row),
        );
        self.commit_audited(&mut b, ev)?;
        Ok((info, secret))
    }

    /// Every token, with its rights (never its secret).
    ///
    /// # Errors
    /// [`VaultError::RowTampered`] when a row fails its MAC.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>, VaultError> {
        let mut out = Vec::new();
        for (k, v) in self
            .store
            .scan_prefix(Tree::Tokens, &[HASH_PREFIX], usize::MAX)?
        {
            let row: TokenRow = decode_row(&self.row_mac, TABLE, &k, &v)?;
            out.push(row.info);
        }
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    /// Revokes the token with public id `id`; returns whether it existed.
    ///
    /// # Errors
    /// Store failures.
    pub fn revoke_token(&self, id: &str) -> Result<bool, VaultError> {
        self.revoke_where(|info| info.id == id).map(|n| n > 0)
    }

    /// Revokes every token (incident response); returns how many.
    ///
    /// # Errors
    /// Store failures.
    pub fn revoke_all_tokens(&self) -> Result<u64, VaultError> {
        self.revoke_where(|_| true)
    }

    fn revoke_where(&self, f: impl Fn(&TokenInfo) -> bool) -> Result<u64, VaultError> {
        self.audited("token-revoke", None, None, |ev| self.revoke_where_in(f, ev))
    }

    fn revoke_where_in(
        &self,
        f: impl Fn(&TokenInfo) -> bool,
        ev: &mut super::audit::Event,
    ) -> Result<u64, VaultError> {
        // Emptied before and after: no revoked token is served from memory once this
        // returns, whatever it returns.
        self.token_cache.clear();
        let _cleared = ClearOnDrop(&self.token_cache);
        let mut b = Batch::default();
        let mut n = 0;
        for (k, v) in self
            .store
            .scan_prefix(Tree::Tokens, &[HASH_PREFIX], usize::MAX)?
        {
            // A row that fails its MAC is removed too: it grants nothing anyway.
            let matches = match decode_row::<TokenRow>(&self.row_mac, TABLE, &k, &v) {
                Ok(row) => f(&row.info),
                Err(_) => true,
            };
            if matches {
                b.delete(Tree::Tokens, k);
                n += 1;
            }
        }
        if n > 0 {
            self.commit_audited(&mut b, ev)?;
        }
        Ok(n)
    }

    /// The rights of a presented bearer token, or `None` when it is unknown, expired or
    /// its row fails its MAC.
    ///
    /// # Security
    /// The stored hash is compared with the presented one in constant time.
    ///
    /// # Errors
    /// Store failures.
    pub fn authenticate(&self, token: &str) -> Result<Option<TokenInfo>, VaultError> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() != TOKEN_PREFIX.len() + 64 {
            return Ok(None);
        }
        let hash = hash_token(token);
        // On a shared store another process may revoke: read the row every time.
        let cached = !self.store.shared();
        if cached {
            if let Some(info) = self.token_cache.get(&hash) {
                if info.expires_at.is_some_and(|e| self.now() >= e) {
                    return Ok(None);
                }
                return Ok(Some(info));
            }
        }
        let read_at = self.token_cache.generation();
        let key = row_key(&hash);
        let Some(v) = self.store.get(Tree::Tokens, &key)? else {
            return Ok(None);
        };
        let Ok(row) = decode_row::<TokenRow>(&self.row_mac, TABLE, &key, &v) else {
            return Ok(None);
        };
        if !bool::from(row.hash.ct_eq(&hash)) {
            return Ok(None);
        }
        if row.info.expires_at.is_some_and(|e| self.now() >= e) {
            return Ok(None);
        }
        if cached {
            self.token_cache.insert(hash, &row.info, read_at);
        }
        Ok(Some(row.info))
    }
}

/// Empties the token cache when a revocation ends, however it ends.
struct ClearOnDrop<'a>(&'a TokenCache);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is the failure report

    use super::*;
    use crate::policy::values::tenant;
    use crate::store::MemoryStore;
    use std::sync::Arc;

    /// Found checking the OpenAPI document against the server: a lifetime ending in a
    /// multi-byte character panicked (split inside the character), and `+5d` passed
    /// where the document allows digits only.
    #[test]
    fn ttl_is_digits_and_a_unit_and_never_panics() {
        for bad in ["5é", "é", "+5d", "-5d", " 5d", "5 d", "1e3s"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_ttl("0005m").unwrap(), 300);
    }

    fn vault() -> Vault {
        let v = Vault::in_memory(Arc::new(MemoryStore::new())).unwrap();
        v.create_tenant(&tenant("shop"), &["otp".into(), "support".into()], None)
            .unwrap();
        v
    }

    fn spec(role: Role) -> TokenSpec {
        TokenSpec {
            tenant: Some(tenant("shop")),
            role,
            purposes: vec!["otp".into()],
            reveal: false,
            ttl_secs: None,
        }
    }

    #[test]
    fn create_authenticate_revoke() {
        let v = vault();
        let (info, secret) = v.create_token(&spec(Role::Reader)).unwrap();
        assert_eq!(secret.expose_secret().len(), 68);
        assert_eq!(
            v.authenticate(secret.expose_secret()).unwrap(),
            Some(info.clone())
        );
        assert_eq!(v.tokens().unwrap(), vec![info.clone()]);
        // A different token of the right shape is unknown.
        let other = format!("{TOKEN_PREFIX}{}", "0".repeat(64));
        assert_eq!(v.authenticate(&other).unwrap(), None);
        assert_eq!(v.authenticate("garbage").unwrap(), None);
        assert!(v.revoke_token(&info.id).unwrap());
        assert!(!v.revoke_token(&info.id).unwrap());
        assert_eq!(v.authenticate(secret.expose_secret()).unwrap(), None);
    }

    #[test]
    fn only_the_hash_is_stored() {
        let v = vault();
        let (_, secret) = v.create_token(&spec(Role::Writer)).unwrap();
        let hex_part = &secret.expose_secret()[TOKEN_PREFIX.len()..];
        for (k, val) in v.store.scan_prefix(Tree::Tokens, b"", usize::MAX).unwrap() {
            let raw = hex::decode(hex_part).unwrap();
            assert!(!k.windows(32).any(|w| w == raw.as_slice()));
            assert!(!val.windows(32).any(|w| w == raw.as_slice()));
            assert!(!val.windows(64).any(|w| w == hex_part.as_bytes()));
        }
    }

    #[test]
    fn expiry_and_revoke_all() {
        let mut v = vault();
        let now = Arc::new(std::sync::atomic::AtomicU64::new(1_000_000));
        let n2 = now.clone();
        v.set_clock(Arc::new(move || {
            n2.load(std::sync::atomic::Ordering::SeqCst)
        }));
        let mut s = spec(Role::Reader);
        s.ttl_secs = Some(60);
        let (_, a) = v.create_token(&s).unwrap();
        let (_, b) = v.create_token(&spec(Role::Admin)).unwrap();
        assert!(v.authenticate(a.expose_secret()).unwrap().is_some());
        now.store(1_000_060, std::sync::atomic::Ordering::SeqCst);
        assert!(v.authenticate(a.expose_secret()).unwrap().is_none());
        assert!(v.authenticate(b.expose_secret()).unwrap().is_some());
        assert_eq!(v.revoke_all_tokens().unwrap(), 2);
        assert!(v.authenticate(b.expose_secret()).unwrap().is_none());
    }

    #[test]
    fn tampered_row_grants_nothing() {
        let v = vault();
        let (_, secret) = v.create_token(&spec(Role::Reader)).unwrap();
        let key = row_key(&hash_token(secret.expose_secret()));
        let mut val = v.store.get(Tree::Tokens, &key).unwrap().unwrap();
        let last = val.len() - 40;
        val[last] ^= 1;
        let mut b = Batch::default();
        b.put(Tree::Tokens, key, val);
        v.store.commit(&b).unwrap();
        assert!(v.authenticate(secret.expose_secret()).unwrap().is_none());
    }

    #[test]
    fn bindings_are_checked() {
        let v = vault();
        let mut s = spec(Role::Reader);
        s.purposes = vec!["marketing".into()];
        assert!(matches!(
            v.create_token(&s),
            Err(VaultError::UnknownPurpose { .. })
        ));
        s.tenant = Some(tenant("nope"));
        assert!(matches!(
            v.create_token(&s),
            Err(VaultError::UnknownTenant(_))
        ));
        let global = TokenSpec {
            tenant: None,
            role: Role::Reader,
            purposes: vec![],
            reveal: false,
            ttl_secs: None,
        };
        assert!(v.create_token(&global).is_err());
        assert_eq!(parse_ttl("30d").unwrap(), 30 * 86_400);
        assert!(parse_ttl("0d").is_err());
        assert!(parse_ttl("d").is_err());
        assert!(parse_ttl("5y").is_err());
    }
}
