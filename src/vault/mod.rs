//! The vault: opens the keyring and the store, and implements every operation the CLI
//! and the socket API offer, so both share one implementation.
//!
//! | task | call |
//! |---|---|
//! | create a vault | [`Vault::init`] |
//! | open it | [`Vault::open`] with an [`Unlock`] |
//! | tenants | [`Vault::create_tenant`], [`Vault::tenants`] |
//! | write | [`Vault::add`], [`Vault::import`], [`Vault::delete`] |
//! | read (always for a purpose) | [`Vault::find`], [`Vault::find_last4`], [`Vault::get`], [`Vault::export`] |
//! | suppression lists | [`Vault::suppress_import`], [`Vault::suppress_lists`], [`Vault::suppress_drop`], [`Vault::suppression_stats`] |
//!
//! On disk a vault directory holds `keyring` (key slots and wrapped tenant seeds,
//! written atomically, never inside the store) and `store/` (sled).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use phonevault_keys::{Keyring, MacKey, RootKey};

mod audit;
mod backup;
mod budget;
mod error;
mod import;
mod inbound;
mod integrity;
pub(crate) mod journal;
mod keyring_file;
mod keyring_rules;
mod keys;
mod layout;
mod lifecycle;
mod open;
mod reads;
mod receipts;
mod reindex;
mod rowmac;
mod rows;
mod subject;
mod suppress;
mod tenants;
mod tokens;
mod versions;
mod writes;

pub use audit::{cli_actor, AuditStats, AuditSync, ChainStatus};
pub use backup::{BackupReport, RestoreOptions, RestoreReport};
pub use budget::ENCRYPTION_RESERVATION;
pub use error::VaultError;
pub use import::{check_region_hint, ImportOptions, ImportSummary, IMPORT_CHUNK};
pub use inbound::{InboundRequest, SmsAnswer, SmsChange, SmsSettings};
pub use integrity::{IntegrityReport, Problem};
pub use journal::JournalError;
pub use keyring_file::write_atomic;
pub use keys::{KeyringImportReport, RetireReport, RewrapReport, ShredReport, SlotInfo};
pub use lifecycle::{Changed, CompactReport, PurgeReport, SweepCursor, Target};
pub use open::{OpenOptions, Unlock};
pub use reads::Found;
pub use receipts::{ReceiptController, ReceiptEntry, MAX_RECEIPTS_PER_RECORD};
pub use reindex::ReindexReport;
pub use rows::{ImportRow, Reject};
pub use subject::{ConsentEntry, OptOutEntry, ReceiptStatus, Stale, SubjectReport};
pub use suppress::{
    list_digest, ListCount, ListInfo, SuppressOptions, SuppressReport, ENTRY_LABEL, SUPPRESS_CHUNK,
};
pub(crate) use tenants::TenantCtx;
pub use tenants::{TenantRow, TENANT_CACHE_TTL};
pub use tokens::{parse_ttl, Role, TokenInfo, TokenSecret, TokenSpec, TOKEN_PREFIX};
pub use writes::AddOutcome;

use budget::Reservation;
use keyring_file::FileStamp;

use crate::store::Store;

/// File name of the keyring inside the vault directory.
pub const KEYRING_FILE: &str = "keyring";
/// Directory of the sled store inside the vault directory.
pub const STORE_DIR: &str = "store";
/// Version of the vault layout.
pub const VAULT_FORMAT: u8 = 1;

/// Current unix time in seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Checks a tenant name or purpose: 1-64 chars of `[a-z0-9._:-]`.
pub fn check_name(what: &'static str, name: &str) -> Result<(), VaultError> {
    crate::policy::values::check_name(what, name).map_err(|_| VaultError::InvalidName { what })
}

/// An open, unlocked vault: a cheap handle (clones share one vault) that acts for
/// one actor, recorded with every operation in the audit log.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<VaultInner>,
    who: Who,
}

/// Who acts through a [`Vault`] handle.
#[derive(Clone, Debug)]
struct Who {
    actor: crate::audit::Actor,
    /// Whether full numbers are shown to the actor (recorded as reveals).
    reveal: bool,
    /// False only in benchmarks measuring the audit log's cost.
    audit: bool,
    /// Set on a [`Vault::deferring`] handle: what its reads left for the caller to
    /// wait for (see [`Vault::audit_settled`]).
    defer: Option<Arc<audit::Deferred>>,
}

/// The state shared by every handle of an open vault (reached through `Deref`; its
/// fields are private to the crate).
#[doc(hidden)]
pub struct VaultInner {
    dir: PathBuf,
    store: Arc<dyn Store>,
    keyring: Mutex<Keyring>,
    /// The keyring file's identity when it was last read or written.
    keyring_stamp: Mutex<Option<FileStamp>>,
    root: RootKey,
    row_mac: MacKey,
    tenants: RwLock<HashMap<String, Arc<TenantCtx>>>,
    /// Serializes read-modify-write sequences (add, merge, delete, import chunks).
    write_lock: Mutex<()>,
    /// Serializes suppression-list imports and drops (see `suppress`).
    suppress_lock: Mutex<()>,
    /// Verified tokens, on a store only this process opens.
    token_cache: tokens::TokenCache,
    /// Unix seconds; the system clock unless a test or simulation sets another.
    clock: RwLock<Clock>,
    audit: audit::AuditLog,
    /// Encryptions reserved in the keyring's counter and not used yet, per tenant and
    /// data-key version. Kept here, not in the tenant cache, so a cache refresh (every
    /// [`TENANT_CACHE_TTL`], or after another process changed the keyring) loses none.
    reservations: Mutex<HashMap<(String, u32), Reservation>>,
}

impl Drop for VaultInner {
    fn drop(&mut self) {
        self.audit.close(self.store.as_ref());
        self.release_reservations();
    }
}

impl Vault {
    /// What dropping the last handle does, now: the audit log made durable and its
    /// journal folded into the chain, unused encryption reservations given back. The
    /// vault stays usable (a later write reserves again). For a process about to exit
    /// while another thread (the audit flusher, a request finishing) may hold the last
    /// handle, whose drop would then never run.
    pub fn close(&self) {
        self.audit.close(self.store.as_ref());
        self.release_reservations();
    }
}

impl std::ops::Deref for Vault {
    type Target = VaultInner;
    fn deref(&self) -> &VaultInner {
        &self.inner
    }
}

/// A source of unix seconds.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.dir)
            .field("actor", &self.who.actor)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// This handle, acting for `actor` (recorded with every operation it makes).
    pub fn acting_as(&self, actor: crate::audit::Actor) -> Vault {
        Vault {
            inner: self.inner.clone(),
            who: Who {
                actor,
                reveal: self.who.reveal,
                audit: self.who.audit,
                defer: self.who.defer.clone(),
            },
        }
    }

    /// This handle, recording its reads as reveals (full numbers shown) or not.
    pub fn revealing(mut self, reveal: bool) -> Vault {
        self.who.reveal = reveal;
        self
    }

    /// Replaces the clock (unix seconds) the vault stamps and judges times with: for
    /// tests and simulations of retention, never needed in production.
    pub fn set_clock(&mut self, clock: Clock) {
        *self.clock.write().unwrap_or_else(PoisonError::into_inner) = clock;
    }

    /// The current time by the vault's clock.
    pub fn now(&self) -> u64 {
        let clock = self
            .clock
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        clock()
    }

    /// The vault directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store (for maintenance commands and tests).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}
