//! The vault in-process, for the tests that drive the library rather than the binary.

use std::path::Path;
use std::sync::Arc;

use phonevault::policy::{Source, TenantName};
use phonevault::record::RecordId;
use phonevault::store::MemoryStore;
use phonevault::vault::{ImportOptions, OpenOptions, Unlock, Vault, VaultError};
use phonevault_keys::{KdfParams, Passphrase};

use super::PASS;

/// The unlock source of [`create`]'s vaults: [`PASS`].
/// A tenant name the test writes out, parsed as the CLI and the server parse one.
pub fn tenant(name: &str) -> TenantName {
    TenantName::parse(name).expect("a tenant name of the accepted form")
}

/// A consent source the test writes out, parsed as the CLI and the server parse one.
pub fn source(s: &str) -> Source {
    Source::parse(s).expect("a consent source of the accepted form")
}

/// A record id as the vault prints one (the CLI's and the API's answers).
pub fn record_id(id: &str) -> RecordId {
    RecordId::parse(id).expect("a record id of the vault's form")
}

pub fn unlock() -> Unlock {
    Unlock::Passphrase(Passphrase::new(PASS.into()))
}

/// A new vault in `dir` (cheap KDF), open ([`open`]: init's store may still be held),
/// with `tenants` each declaring `purposes`.
pub fn create(dir: &Path, tenants: &[&str], purposes: &[&str]) -> Vault {
    Vault::init(
        dir,
        &Passphrase::new(PASS.into()),
        KdfParams::cheap_for_tests(),
    )
    .unwrap();
    let v = open(dir);
    let purposes: Vec<String> = purposes.iter().map(|p| p.to_string()).collect();
    for t in tenants {
        v.create_tenant(&tenant(t), &purposes, None).unwrap();
    }
    v
}

/// A new vault on a new in-memory store, and the store (for the test to look into or
/// to fail).
pub fn in_memory() -> (Arc<MemoryStore>, Vault) {
    let store = Arc::new(MemoryStore::new());
    let v = Vault::in_memory(store.clone()).unwrap();
    (store, v)
}

/// Opens the vault in `dir` once its store is free ([`when_free`]).
pub fn open(dir: &Path) -> Vault {
    when_free(|| Vault::open(dir, &unlock(), OpenOptions::default()))
}

/// Runs `f` until the store is no longer held: sled releases a dropped store's lock
/// from its background thread, a moment after the drop.
pub fn when_free<T>(mut f: impl FnMut() -> Result<T, VaultError>) -> T {
    for _ in 0..100 {
        match f() {
            Err(VaultError::Store(phonevault::store::StoreError::Locked))
            | Err(VaultError::Backup(phonevault::backup::BackupError::VaultBusy)) => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            r => return r.unwrap(),
        }
    }
    panic!("the store stayed locked");
}

/// `n` valid UK mobile numbers, `+4474001` and five digits counting from `from`.
pub fn numbers(from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| format!("+4474001{i:05}"))
        .collect()
}

/// Imports `numbers` into `tenant` with consent `purposes` (source `bulk`).
pub fn import(v: &Vault, tenant: &str, purposes: &[&str], numbers: &[String]) {
    let csv = std::iter::once("phone".to_owned())
        .chain(numbers.iter().cloned())
        .collect::<Vec<_>>()
        .join("\n");
    let opts = ImportOptions {
        tenant: self::tenant(tenant),
        purposes: purposes.iter().map(|p| p.to_string()).collect(),
        source: source("bulk"),
        region: None,
    };
    v.import(
        &opts,
        phonevault::cli::CsvRows::new(csv.as_bytes(), "phone").unwrap(),
        |_| Ok(()),
        |_| {},
    )
    .unwrap();
}
