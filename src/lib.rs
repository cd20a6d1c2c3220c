//! phonevault: a vault for customer phone numbers.
//!
//! Each number is encrypted at rest under per-tenant keys (AES-256-GCM, one
//! ciphertext per record body), found by number through a keyed blind index
//! (HMAC-SHA256, 128 bits), and read only for a purpose the customer consented to.
//!
//! | task | module |
//! |---|---|
//! | parse and normalize a number | [`phone`] |
//! | the record format and its encryption (pure, over bytes) | [`record`] |
//! | inbound SMS keywords and provider signatures (pure) | [`sms`] |
//! | signed consent receipts: issue, canonical form, offline verify (pure) | [`receipt`] |
//! | storage behind a trait (sled, in-memory) | [`store`] |
//! | who may do what; values parsed at the edge (pure) | [`policy`] |
//! | every vault operation (CLI and API share it) | [`vault`] |
//! | anonymized statistics, partner pseudonyms | [`stats`] |
//! | the tamper-evident audit chain (pure) | [`audit`] |
//! | the data backup file format (pure) | [`backup`] |
//! | the socket API (HTTP+JSON over a Unix socket) | [`server`] |
//! | the command line | [`cli`] |
//! | process hardening: no core dumps, no swap, private files | [`harden`] |
//! | key management (no I/O) | the `phonevault-keys` crate |
//!
//! ```no_run
//! use phonevault::policy::TenantName;
//! use phonevault::vault::{OpenOptions, Unlock, Vault};
//! use phonevault_keys::Passphrase;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let unlock = Unlock::Passphrase(Passphrase::new("correct horse".into()));
//! let vault = Vault::open("phonevault-data".as_ref(), &unlock, OpenOptions::default())?;
//! // Values are parsed once, at the edge; the vault takes the parsed types.
//! let shop = TenantName::parse("shop")?;
//! if let Some(found) = vault.find(&shop, "+447700900958", None, "otp")? {
//!     println!("{} {}", found.id, found.masked); // masked unless revealed
//! }
//! # Ok(()) }
//! ```

pub mod api;
pub mod audit;
pub mod backup;
pub mod cli;
pub mod fuzzing;
pub mod harden;
pub mod hsm;
pub mod logging;
pub mod phone;
pub mod policy;
pub mod receipt;
pub mod record;
pub mod server;
pub mod sms;
pub mod stats;
pub mod store;
pub mod vault;
