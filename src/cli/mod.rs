//! The `phonevault` command line: argument parsing, unlock sources, output.
//!
//! Exit codes: 0 success, 1 error, 2 usage error, 3 nothing found.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use phonevault_keys::{KdfParams, KeyFileKey, Passphrase};
use zeroize::Zeroizing;

mod audit_cmds;
mod backend;
mod client;
mod csv_rows;
mod demo;
mod key_cmds;
mod server_cmds;
mod suppress_cmds;

pub use csv_rows::{import_column, import_reader, malformed, CsvRows};
pub use key_cmds::{
    BackupArgs, KdfArgs, KeyringCommand, KeyslotCommand, PasswdArgs, RekeyArgs, RestoreArgs,
};
pub use server_cmds::{ServeArgs, TokenCommand, TokenCreateArgs};

use crate::api::response::{BatchSummary, Record};
use crate::phone;
use crate::policy::{parse_record_id, Source, TenantName};
use crate::record::RecordId;
use crate::store::StoreLocation;
use crate::vault::{self, OpenOptions, Unlock, Vault, VaultError};

/// Exit code when a read found nothing.
pub const EXIT_NOT_FOUND: u8 = 3;

const ABOUT: &str =
    "A vault for customer phone numbers: encrypted field by field under per-tenant keys, \
found by number through a keyed blind index, read only for a purpose the customer consented to.";

const AFTER_HELP: &str = "Examples:
  phonevault init
  phonevault tenant create shop --purposes otp,support,marketing
  phonevault add --tenant shop --phone '+44 7400 123958' --consent otp --source web-signup
  phonevault find --tenant shop --phone 07400123958 --region GB --purpose otp
  phonevault import --tenant shop --consent otp customers.csv

The passphrase is read from --passphrase-file, PHONEVAULT_PASSPHRASE_FILE, PHONEVAULT_PASSPHRASE, \
or a prompt; never from the command line.";

/// Command-line interface.
#[derive(Debug, Parser)]
#[command(name = "phonevault", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// Vault directory.
    #[arg(
        long,
        global = true,
        env = "PHONEVAULT_DIR",
        default_value = "./phonevault-data"
    )]
    pub vault: PathBuf,
    /// File holding the passphrase (first line).
    #[arg(long, global = true, env = "PHONEVAULT_PASSPHRASE_FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Key file (32 random bytes) unlocking a key-file slot instead of a passphrase.
    #[arg(long, global = true, env = "PHONEVAULT_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Where the records live: `sled` (the default, in the vault directory) or a
    /// PostgreSQL URL `postgres://USER@HOST/DB` shared by several servers (the keyring
    /// stays in the vault directory). The value is never printed.
    #[arg(
        long,
        global = true,
        env = "PHONEVAULT_STORE",
        hide_env_values = true,
        value_parser = parse_store,
        value_name = "sled|postgres://..."
    )]
    pub store: Option<StoreArg>,
    /// Schema holding the vault's tables in the database (with a PostgreSQL --store).
    #[arg(
        long,
        global = true,
        env = "PHONEVAULT_PG_SCHEMA",
        default_value = crate::store::postgres::DEFAULT_SCHEMA
    )]
    pub pg_schema: String,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// Socket of a running `phonevault serve`: commands go through it (without this,
    /// through <vault dir>/phonevault.sock when a server answers there). For `serve`,
    /// where to listen.
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// File holding the API token (first line) for commands that go through a server's
    /// socket; or set PHONEVAULT_TOKEN.
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// PKCS#11 library of an HSM or cloud KMS (e.g. /usr/lib/softhsm/libsofthsm2.so): with
    /// --pkcs11-token and --pkcs11-key, unlocks through the vault's PKCS#11 key slot when
    /// no passphrase or key file is given (a server then unseals itself at start); for
    /// `keyslot add`, the token of the new slot.
    #[arg(
        long,
        global = true,
        env = "PHONEVAULT_PKCS11_MODULE",
        value_name = "LIB"
    )]
    pub pkcs11_module: Option<PathBuf>,
    /// Label of the PKCS#11 token.
    #[arg(
        long,
        global = true,
        env = "PHONEVAULT_PKCS11_TOKEN",
        value_name = "LABEL"
    )]
    pub pkcs11_token: Option<String>,
    /// Label of the non-extractable AES key in that token.
    #[arg(
        long,
        global = true,
        env = "PHONEVAULT_PKCS11_KEY",
        value_name = "LABEL"
    )]
    pub pkcs11_key: Option<String>,
    /// File holding the token's user PIN (first line); or set PHONEVAULT_PKCS11_PIN.
    #[arg(
        long,
        global = true,
        env = "PHONEVAULT_PKCS11_PIN_FILE",
        value_name = "FILE"
    )]
    pub pkcs11_pin_file: Option<PathBuf>,
    /// libphonenumber metadata (its resources/PhoneNumberMetadata.xml) to validate numbers
    /// with instead of the vendored release; checked, and refused with the reason when
    /// malformed or incomplete. After a change, run `phonevault reindex`.
    #[arg(
        long,
        global = true,
        env = "PHONEVAULT_PHONE_METADATA",
        value_name = "FILE"
    )]
    pub phone_metadata: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new vault (refuses to overwrite an existing one).
    #[command(after_help = "Examples:
  phonevault init
  PHONEVAULT_PASSPHRASE_FILE=/run/secrets/pv phonevault --vault /var/lib/phonevault init
  phonevault init --new-key-file /root/phonevault.key")]
    Init(InitArgs),
    /// Manage tenants: create, list, purposes, retention, crypto-shredding.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Add a number with consents (merges consents when the number exists).
    #[command(after_help = "Example:
  phonevault add --tenant shop --phone '+44 7400 123958' --consent otp,support --source web-signup-2026-03")]
    Add(AddArgs),
    /// Find a number for a purpose; masked unless --reveal.
    #[command(after_help = "Examples:
  phonevault find --tenant shop --phone '+447400123958' --purpose otp
  phonevault find --tenant shop --phone '07400 123958' --region GB --purpose otp --reveal
  phonevault find --tenant shop --last4 3958 --country-code 44 --purpose support")]
    Find(FindArgs),
    /// Read a record by id for a purpose; masked unless --reveal.
    #[command(after_help = "Example:
  phonevault get --tenant shop 0190f1c2a3b4c5d6e7f8091a2b3c4d5e --purpose otp")]
    Get(GetArgs),
    /// Delete a record and its index entries.
    #[command(after_help = "Example:
  phonevault delete --tenant shop 0190f1c2a3b4c5d6e7f8091a2b3c4d5e")]
    Delete(DeleteArgs),
    /// Import numbers from a CSV file (streaming; re-running changes nothing).
    #[command(after_help = "Example:
  phonevault import --tenant shop --consent otp --region GB --source crm-2026-11 customers.csv
Rows that fail go to FILE.rejects.csv (line number and reason).")]
    Import(ImportArgs),
    /// Export the numbers consented for a purpose to CSV.
    #[command(after_help = "Example:
  phonevault export --tenant shop --purpose otp --reveal --out otp-list.csv")]
    Export(ExportArgs),
    /// Grant or withdraw a consent (the history is kept).
    #[command(subcommand)]
    Consent(ConsentCommand),
    /// Opt a number out of one purpose or of everything, effective at once.
    #[command(after_help = "Examples:
  phonevault opt-out --tenant shop --phone '+447400123958' --purpose marketing
  phonevault opt-out --tenant shop --phone '+447400123958' --all
Opting out of everything keeps a suppression entry: imports skip the number; only an
explicit `add` with a consent and a source lifts it.")]
    OptOut(OptOutArgs),
    /// Erase a record, its index entries and consents (right to be forgotten).
    #[command(after_help = "Example:
  phonevault erase --tenant shop --phone '+447400123958'
Run `phonevault compact` afterwards to rewrite the store (see SECURITY.md).")]
    Erase(TargetArgs),
    /// Stamp a number as verified now (accuracy).
    #[command(after_help = "Example:
  phonevault verify --tenant shop --phone '+447400123958'")]
    Verify(TargetArgs),
    /// Delete every record past its tenant's retention period.
    #[command(after_help = "Examples:
  phonevault purge --dry-run
  phonevault purge --tenant shop")]
    Purge(PurgeArgs),
    /// Rewrite the store so deleted data leaves the old log segments.
    #[command(after_help = "Example:
  phonevault compact
Needs the vault closed (no server running). See SECURITY.md for what compaction cannot guarantee.")]
    Compact,
    /// Check the store's integrity: every record decrypts and matches its index and
    /// expiry entries, no entry is orphaned, and every record is what its last audited
    /// write stored (a replayed or deleted row is named).
    #[command(after_help = "Example:
  phonevault check
Needs the vault closed (no server running). Exit code 1 when a problem is found; each
problem names its tenant and record id, never a number.")]
    Check,
    /// Re-check every stored number under the current phone metadata and stamp the
    /// tenants with it (after a metadata update).
    #[command(after_help = "Examples:
  phonevault reindex --dry-run
  phonevault --phone-metadata PhoneNumberMetadata.xml reindex --tenant shop
Lists the records whose number the metadata now rejects (to re-verify with the customer;
nothing is deleted) and those whose number now normalizes differently (to erase and add
again). Exit code 0 either way; --json for the record ids.")]
    Reindex(ReindexArgs),
    /// Everything the vault holds about a number (data-subject access request).
    #[command(after_help = "Example:
  phonevault subject --tenant shop --phone '+447400123958' --json")]
    Subject(SubjectArgs),
    /// Consent receipts: the vault's public key, and offline verification.
    #[command(subcommand)]
    Receipt(ReceiptCommand),
    /// Export the numbers consented for sharing with a partner, under pseudonymous ids.
    #[command(after_help = "Example:
  phonevault share --tenant shop --partner acme --out acme.csv
Only records with a live `share:acme` consent are written; ids are per partner.")]
    Share(ShareArgs),
    /// List records not verified within N days (masked).
    #[command(after_help = "Example:
  phonevault stale --tenant shop --days 365")]
    Stale(StaleArgs),
    /// Anonymized counts of live records by country and number type.
    #[command(after_help = "Examples:
  phonevault stats --tenant shop
  phonevault stats --tenant shop --by country --min-group 20 --epsilon 0.5 --csv
Groups smaller than --min-group are suppressed; each --epsilon query spends that much
privacy budget, and repeated queries add up (see SECURITY.md).")]
    Stats(StatsArgs),
    /// Suppression lists (do-not-call, do-not-text): import, list, drop. Reads for a
    /// list's purposes skip the numbers on it.
    #[command(subcommand)]
    Suppress(suppress_cmds::SuppressCommand),
    /// Rotate a tenant's keys and re-encrypt its records.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The tamper-evident audit log: the auditors' key, verify, checkpoint, archive,
    /// export, incident report.
    #[command(subcommand)]
    Audit(audit_cmds::AuditCommand),
    /// The product end to end in a new temporary vault: import the shipped 200k sample,
    /// serve it on a socket, look numbers up through it, withdraw and opt out a few,
    /// verify the audit chain, print the figures (needs no existing vault).
    #[command(after_help = "Examples (from the repository's root):
  cargo run --release -- demo
  phonevault demo --numbers customers.csv --limit 10000 --lookups 500")]
    Demo(demo::DemoArgs),
    /// Normalize numbers read from stdin, one per line (needs no vault).
    #[command(after_help = "Examples:
  printf '+44 7400 123958\\n020 7946 0018\\n' | phonevault normalize --region GB
  echo '{\"input\": \"07400 123958\", \"region\": \"GB\"}' | phonevault normalize --jsonl")]
    Normalize(NormalizeArgs),
    /// Serve the HTTP+JSON API on a Unix socket (starts sealed without an unlock source).
    #[command(after_help = "Examples:
  phonevault serve
  phonevault serve --socket /run/phonevault/api.sock --socket-group app --passphrase-file /run/secrets/pv
Stop it with SIGTERM or Ctrl-C: in-flight requests finish and the socket is removed.")]
    Serve(ServeArgs),
    /// Create, list and revoke API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Replace the root key (rewraps the vault seed, tenant seeds and key slots; no data).
    #[command(after_help = "Examples:
  phonevault rekey
  phonevault rekey --other-key-file /root/phonevault.key
Every key slot must be opened to be rewrapped: give the credentials of the other slots,
or remove those slots first. Passphrases and key files stay the same.")]
    Rekey(RekeyArgs),
    /// Change the passphrase of the slot the current passphrase opens.
    #[command(after_help = "Example:
  phonevault passwd --new-passphrase-file /run/secrets/new-pass
Only that slot's copy of the root key is rewrapped; no data is touched.")]
    Passwd(PasswdArgs),
    /// Add, list and remove key slots (passphrases and key files).
    #[command(subcommand)]
    Keyslot(KeyslotCommand),
    /// Export or import the keyring for the key holders (kept apart from data backups).
    #[command(subcommand)]
    Keyring(KeyringCommand),
    /// Write a consistent, still-encrypted snapshot of the store to FILE (no keys in it).
    #[command(after_help = "Example:
  phonevault backup /backups/phonevault-2026-11-29.pvbk
The file is MACed under a key from the vault; restoring it needs the vault's keyring
(or a `keyring export`). A tenant shredded after the backup stays unreadable.")]
    Backup(BackupArgs),
    /// Restore a backup into --vault DIR (verified whole before anything is written).
    #[command(after_help = "Examples:
  phonevault restore /backups/pv.pvbk --vault /var/lib/phonevault-new --keyring keyring.export
  phonevault restore /backups/pv.pvbk --replace
A damaged or truncated file is refused; the new store is renamed into place only when complete.")]
    Restore(RestoreArgs),
    /// Seal a running server: it drops the vault and its keys (vault-wide admin token).
    #[command(after_help = "Example:
  phonevault seal --token-file /run/secrets/pv-admin
Data calls then answer `sealed` until `phonevault unseal`.")]
    Seal,
    /// Unseal a running server with the vault passphrase (needs no token).
    #[command(after_help = "Examples:
  phonevault unseal
  phonevault unseal --passphrase-file /run/secrets/pv --socket /run/phonevault/api.sock")]
    Unseal,
}

/// `init` options.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Argon2id memory in KiB (default 65536). Lower it only for tests.
    #[arg(long, default_value_t = KdfParams::DEFAULT.m_kib)]
    pub kdf_memory_kib: u32,
    /// Argon2id iterations (default 3).
    #[arg(long, default_value_t = KdfParams::DEFAULT.t)]
    pub kdf_iterations: u32,
    /// Also create a random key file at this path (mode 0600) and a slot for it.
    #[arg(long)]
    pub new_key_file: Option<PathBuf>,
}

/// Tenant commands.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant with its declared purposes.
    #[command(after_help = "Examples:
  phonevault tenant create shop --purposes otp,support,marketing
  phonevault tenant create helpdesk --purposes support --last4-index --expected-rows 2000000")]
    Create {
        /// Tenant name (a-z, 0-9, '-', '_', '.').
        #[arg(value_parser = TenantName::parse)]
        name: TenantName,
        /// Comma-separated purposes (e.g. otp,support,marketing,share:acme).
        #[arg(long, value_delimiter = ',', required = true)]
        purposes: Vec<String>,
        /// Keep a last-4 partial index for support desks.
        #[arg(long)]
        last4_index: bool,
        /// Expected number of records, to size the last-4 index.
        #[arg(long, requires = "last4_index", default_value_t = 100_000)]
        expected_rows: u64,
    },
    /// List tenants.
    List,
    /// Delete a tenant by crypto-shredding: destroy its keys first, then its data.
    #[command(after_help = "Example:
  phonevault tenant delete oldshop --shred
Irreversible: every copy of the tenant's data (data backups, old store files) becomes
undecryptable at once. Old copies of the keyring file and keyring exports must be destroyed too.")]
    Delete {
        /// Tenant name.
        #[arg(value_parser = TenantName::parse)]
        name: TenantName,
        /// Destroy the tenant's keys (required: the only way a tenant is deleted).
        #[arg(long, required = true)]
        shred: bool,
    },
    /// Crypto-shred a tenant (same as `tenant delete NAME --shred`).
    #[command(after_help = "Example:
  phonevault tenant shred oldshop --yes
Irreversible: every copy of the tenant's data (backups, old store files) becomes
undecryptable. Old copies of the keyring file must be destroyed too.")]
    Shred {
        /// Tenant name.
        #[arg(value_parser = TenantName::parse)]
        name: TenantName,
        /// Confirm that this is irreversible.
        #[arg(long, required = true)]
        yes: bool,
    },
    /// Declare more purposes for a tenant.
    #[command(after_help = "Example:
  phonevault tenant add-purpose shop --purposes share:acme")]
    AddPurpose {
        /// Tenant name.
        #[arg(value_parser = TenantName::parse)]
        name: TenantName,
        /// Comma-separated purposes to add.
        #[arg(long, value_delimiter = ',', required = true)]
        purposes: Vec<String>,
    },
    /// Set how long records are kept after their latest consent or verification.
    #[command(after_help = "Examples:
  phonevault tenant set-retention shop --days 730
  phonevault tenant set-retention shop --unlimited")]
    SetRetention {
        /// Tenant name.
        #[arg(value_parser = TenantName::parse)]
        name: TenantName,
        /// Retention in days (at least 1).
        #[arg(
            long,
            required_unless_present = "unlimited",
            conflicts_with = "unlimited"
        )]
        days: Option<u32>,
        /// Keep records without a time limit.
        #[arg(long)]
        unlimited: bool,
    },
    /// Show or change the tenant's inbound SMS settings (keyword opt-out by STOP).
    #[command(after_help = "Examples:
  phonevault tenant set-sms shop --secret-file twilio-auth-token \\
      --webhook-url https://sms.example.com/v1/tenants/shop/inbound-sms
  phonevault tenant set-sms shop --number '+447700900001=marketing' --reply-stop 'Shop: unsubscribed. Reply START to resubscribe.'
  phonevault tenant set-sms shop        (shows the settings; never the secret)
The secret (the provider's auth token) is stored sealed under the vault's state key;
inbound messages must then carry a valid X-Twilio-Signature for the webhook URL.")]
    SetSms(SetSmsArgs),
    /// Set the controller details the tenant's consent receipts name.
    #[command(after_help = "Example:
  phonevault tenant set-receipt shop --controller 'Shop Ltd' --contact privacy@shop.example \\
      --policy-url https://shop.example/privacy --jurisdiction GB")]
    SetReceipt {
        /// Tenant name.
        #[arg(value_parser = TenantName::parse)]
        name: TenantName,
        /// The controller's name.
        #[arg(long)]
        controller: String,
        /// Its privacy contact (e-mail or address).
        #[arg(long)]
        contact: String,
        /// The privacy policy consents are given under.
        #[arg(long)]
        policy_url: String,
        /// Jurisdiction (e.g. GB, US-CA), optional.
        #[arg(long)]
        jurisdiction: Option<String>,
    },
}

/// Arguments of `tenant set-sms`.
#[derive(Debug, clap::Args)]
pub struct SetSmsArgs {
    /// Tenant name.
    #[arg(value_parser = TenantName::parse)]
    pub name: TenantName,
    /// File holding the provider's signing secret (Twilio: the auth token); a final
    /// newline is ignored.
    #[arg(long, conflicts_with = "no_secret")]
    pub secret_file: Option<PathBuf>,
    /// Remove the secret: inbound messages are then taken unsigned.
    #[arg(long)]
    pub no_secret: bool,
    /// The public URL the provider posts to, as configured there, without its query
    /// string (the request's own query is appended as received, as the provider signs it).
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// A sending number and the purposes a STOP to it opts out of (TO=purpose,purpose;
    /// repeatable). A STOP to a number not listed opts out of everything.
    #[arg(long = "number", value_name = "TO=PURPOSES")]
    pub numbers: Vec<String>,
    /// Remove every sending-number mapping first.
    #[arg(long)]
    pub clear_numbers: bool,
    /// Reply to an opt-out keyword (STOP, ...).
    #[arg(long)]
    pub reply_stop: Option<String>,
    /// Reply to START, YES, UNSTOP.
    #[arg(long)]
    pub reply_start: Option<String>,
    /// Reply to HELP, INFO.
    #[arg(long)]
    pub reply_help: Option<String>,
    /// Reply to any other text (empty by default: no reply).
    #[arg(long)]
    pub reply_other: Option<String>,
}

/// Key lifecycle commands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Make a new data-key version (or, with --index, a new blind-index key).
    #[command(after_help = "Examples:
  phonevault key rotate --tenant shop
  phonevault key rotate --tenant shop --index && phonevault key rewrap --tenant shop
New writes use the new version at once; older versions still decrypt until rewrapped.")]
    Rotate {
        /// Tenant.
        #[arg(long, value_parser = TenantName::parse)]
        tenant: TenantName,
        /// Rotate the blind-index key instead of the data key.
        #[arg(long)]
        index: bool,
    },
    /// Re-encrypt every record under the current versions (resumable).
    #[command(after_help = "Example:
  phonevault key rewrap --tenant shop
Safe to interrupt (Ctrl-C, crash): run it again to continue.")]
    Rewrap {
        /// Tenant.
        #[arg(long, value_parser = TenantName::parse)]
        tenant: TenantName,
    },
    /// Destroy a tenant's key versions below V (never a current one).
    #[command(after_help = "Examples:
  phonevault key rewrap --tenant shop && phonevault key retire --tenant shop --below 3
Refuses while records are still under those versions (it says how many) unless --force;
such records then stay, and reads report them as unreadable.")]
    Retire {
        /// Tenant.
        #[arg(long, value_parser = TenantName::parse)]
        tenant: TenantName,
        /// Destroy every version below this one.
        #[arg(long)]
        below: u32,
        /// Destroy them even though records are still under them.
        #[arg(long)]
        force: bool,
    },
}

/// Consent receipt commands.
#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Print (or write) the public key receipts are signed with (hex, 64 characters).
    #[command(after_help = "Example:
  phonevault receipt public-key --out receipt-key.hex")]
    PublicKey {
        /// Write it to FILE instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a receipt file offline, without the vault.
    #[command(after_help = "Example:
  phonevault receipt verify r.json --public-key receipt-key.hex
Exit code 0: the receipt is intact and signed by that key; 1 otherwise.")]
    Verify {
        /// The receipt file.
        file: PathBuf,
        /// The public key: 64 hexadecimal characters, or a file holding them.
        #[arg(long)]
        public_key: String,
    },
}

/// Consent commands.
#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// Grant consent for purposes (lifts an opt-out of them).
    #[command(after_help = "Example:
  phonevault consent grant --tenant shop --phone '+447400123958' --purpose marketing --source newsletter-form
  phonevault consent grant --tenant shop --phone '+447400123958' --purpose marketing --receipt --receipt-out r.json")]
    Grant {
        /// Which record.
        #[command(flatten)]
        target: TargetArgs,
        /// Purposes, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        purpose: Vec<String>,
        /// Where the consent came from (1-128 printable ASCII characters, no quote or
        /// backslash).
        #[arg(long, default_value = "cli", value_parser = Source::parse)]
        source: Source,
        /// Issue a signed consent receipt: printed on stdout, or written to
        /// --receipt-out (the tenant needs `tenant set-receipt` first).
        #[arg(long)]
        receipt: bool,
        /// Where to write the receipt (with --receipt).
        #[arg(long, requires = "receipt")]
        receipt_out: Option<PathBuf>,
    },
    /// Withdraw the consent for a purpose (kept in the history with its time).
    #[command(after_help = "Example:
  phonevault consent withdraw --tenant shop --phone '+447400123958' --purpose marketing")]
    Withdraw {
        /// Which record.
        #[command(flatten)]
        target: TargetArgs,
        /// The purpose.
        #[arg(long)]
        purpose: String,
    },
}

/// Selects one record of a tenant by number or by id.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Tenant.
    #[arg(long, value_parser = TenantName::parse)]
    pub tenant: TenantName,
    /// The number.
    #[arg(long, required_unless_present = "id", conflicts_with = "id")]
    pub phone: Option<String>,
    /// Record id.
    #[arg(long, value_parser = parse_record_id)]
    pub id: Option<RecordId>,
    /// Region hint for national numbers.
    #[arg(long)]
    pub region: Option<String>,
}

impl TargetArgs {
    fn target(&self) -> vault::Target<'_> {
        // clap asks for exactly one of --phone and --id.
        match (&self.phone, self.id) {
            (None, Some(id)) => vault::Target::Id(id),
            (phone, _) => vault::Target::Phone {
                input: phone.as_deref().unwrap_or_default(),
                region: self.region.as_deref(),
            },
        }
    }
}

/// `opt-out` options.
#[derive(Debug, Args)]
pub struct OptOutArgs {
    /// Which record.
    #[command(flatten)]
    pub target: TargetArgs,
    /// The purpose to opt out of.
    #[arg(long, required_unless_present = "all", conflicts_with = "all")]
    pub purpose: Option<String>,
    /// Opt out of everything.
    #[arg(long)]
    pub all: bool,
}

/// `subject` options.
#[derive(Debug, Args)]
pub struct SubjectArgs {
    /// Tenant.
    #[arg(long, value_parser = TenantName::parse)]
    pub tenant: TenantName,
    /// The number.
    #[arg(long)]
    pub phone: String,
    /// Region hint for national numbers.
    #[arg(long)]
    pub region: Option<String>,
    /// Print the full number.
    #[arg(long)]
    pub reveal: bool,
}

/// `share` options.
#[derive(Debug, Args)]
pub struct ShareArgs {
    /// Tenant.
    #[arg(long, value_parser = TenantName::parse)]
    pub tenant: TenantName,
    /// Partner name (the purpose is `share:<partner>`).
    #[arg(long)]
    pub partner: String,
    /// Output CSV file (created with mode 0600): partner id and number.
    #[arg(long)]
    pub out: PathBuf,
}

/// `stale` options.
#[derive(Debug, Args)]
pub struct StaleArgs {
    /// Tenant.
    #[arg(long, value_parser = TenantName::parse)]
    pub tenant: TenantName,
    /// Not verified within this many days.
    #[arg(long)]
    pub days: u32,
}

/// `stats` options.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Tenant.
    #[arg(long, value_parser = TenantName::parse)]
    pub tenant: TenantName,
    /// Grouping: country, type, or both.
    #[arg(long, value_delimiter = ',', default_value = "country,type", value_parser = ["country", "type"])]
    pub by: Vec<String>,
    /// Suppress groups smaller than this (at least 2).
    #[arg(long, default_value_t = 10)]
    pub min_group: u64,
    /// Add Laplace noise with this privacy budget (> 0).
    #[arg(long, allow_negative_numbers = true)]
    pub epsilon: Option<f64>,
    /// CSV output.
    #[arg(long)]
    pub csv: bool,
}

/// `purge` options.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Only this tenant.
    #[arg(long, value_parser = TenantName::parse)]
    pub tenant: Option<TenantName>,
    /// Report what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `reindex` options.
#[derive(Debug, Args)]
pub struct ReindexArgs {
    /// Only this tenant.
    #[arg(long, value_parser = TenantName::parse)]
    pub tenant: Option<TenantName>,
    /// Report, stamp nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `add` options.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Tenant.
    #[arg(long, value_parser = TenantName::parse)]
    pub tenant: TenantName,
    /// The number (E.164, international, national with --region, or tel: URI).
    #[arg(long)]
    pub phone: String,
    /// Region hint for national numbers (ISO 3166, e.g. GB).
    #[arg(long)]
    pub region: Option<String>,
    /// Purposes consented to, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub consent: Vec<String>,
    /// Where the consent came from (1-128 printable ASCII characters, no quote or
    /// backslash).
    #[arg(long, default_value = "cli", value_parser = Source::parse)]
    pub source: Source,
}

/// `find` options.
#[derive(Debug, Args)]
pub struct FindArgs {
    /// Tenant.
    #[arg(long, value_parser = TenantName::parse)]
    pub tenant: TenantName,
    /// The number.
    #[arg(long, required_unless_present = "last4", conflicts_with = "last4")]
    pub phone: Option<String>,
    /// Region hint for national numbers.
    #[arg(long)]
    pub region: Option<String>,
    /// Last four digits (uses the tenant's last-4 index; needs --country-code).
    #[arg(long, requires = "country_code")]
    pub last4: Option<String>,
    /// Country calling code for --last4 (e.g. 44).
    #[arg(long)]
    pub country_code: Option<u16>,
    /// Purpose of this read.
    #[arg(long)]
    pub purpose: String,
    /// Print the full number.
    #[arg(long)]
    pub reveal: bool,
}

/// `get` options.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Tenant.
    #[arg(long, value_parser = TenantName::parse)]
    pub tenant: TenantName,
    /// Record id.
    #[arg(value_parser = parse_record_id)]
    pub id: RecordId,
    /// Purpose of this read.
    #[arg(long)]
    pub purpose: String,
    /// Print the full number.
    #[arg(long)]
    pub reveal: bool,
}

/// `delete` options.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Tenant.
    #[arg(long, value_parser = TenantName::parse)]
    pub tenant: TenantName,
    /// Record id.
    #[arg(value_parser = parse_record_id)]
    pub id: RecordId,
}

/// `import` options.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Tenant.
    #[arg(long, value_parser = TenantName::parse)]
    pub tenant: TenantName,
    /// Purposes every number in the file consented to.
    #[arg(long, value_delimiter = ',', required = true)]
    pub consent: Vec<String>,
    /// Region hint for national numbers.
    #[arg(long)]
    pub region: Option<String>,
    /// CSV column holding the number.
    #[arg(long, default_value = "phone")]
    pub column: String,
    /// Where the consents came from (1-128 printable ASCII characters, no quote or
    /// backslash).
    #[arg(long, default_value = "import", value_parser = Source::parse)]
    pub source: Source,
    /// Where rejected rows go (default FILE.rejects.csv).
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// The CSV file.
    pub file: PathBuf,
}

/// `export` options.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Tenant.
    #[arg(long, value_parser = TenantName::parse)]
    pub tenant: TenantName,
    /// Purpose of this export.
    #[arg(long)]
    pub purpose: String,
    /// Write full numbers (otherwise masked).
    #[arg(long)]
    pub reveal: bool,
    /// Output CSV file (created with mode 0600).
    #[arg(long)]
    pub out: PathBuf,
}

/// `normalize` options.
#[derive(Debug, Args)]
pub struct NormalizeArgs {
    /// Region hint for national numbers.
    #[arg(long)]
    pub region: Option<String>,
    /// Read `{"input": ..., "region": ...}` lines, print one JSON result per line.
    #[arg(long)]
    pub jsonl: bool,
}

/// A CLI failure: the message for stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// Message (one line, with a hint).
    pub message: String,
    /// Exit code.
    pub code: u8,
}

/// A command-line value one of the edge parsers refused (a tenant name, a record id, a
/// consent source: see `value_parser` above), reported as every other refusal is: one line, exit 1,
/// the value not repeated (it may be a phone number typed into the wrong field; clap's
/// own report quotes it). `None` for every other parse error, which clap reports.
pub fn refused_value(e: &clap::Error) -> Option<Failure> {
    use std::error::Error as _;
    if e.kind() != clap::error::ErrorKind::ValueValidation {
        return None;
    }
    let refused = e.source()?.downcast_ref::<crate::policy::ValueError>()?;
    let arg = match e.get(clap::error::ContextKind::InvalidArg) {
        Some(clap::error::ContextValue::String(a)) => format!(" (given to {a})"),
        _ => String::new(),
    };
    Some(fail(format!("{refused}{arg}")))
}

impl From<VaultError> for Failure {
    fn from(e: VaultError) -> Self {
        Failure {
            message: e.to_string(),
            code: 1,
        }
    }
}

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 1,
    }
}

fn not_found(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: EXIT_NOT_FOUND,
    }
}

fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, Failure> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))
}

fn passphrase_from_sources(cli: &Cli, confirm: bool) -> Result<Passphrase, Failure> {
    if let Some(path) = &cli.passphrase_file {
        let bytes = read_secret_file(path)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| fail(format!("{} is not UTF-8 text", path.display())))?;
        let line = text.lines().next().unwrap_or("");
        return non_empty(line.to_owned());
    }
    if let Ok(p) = std::env::var("PHONEVAULT_PASSPHRASE") {
        return non_empty(p);
    }
    if !std::io::stdin().is_terminal() {
        return Err(fail(
            "no passphrase given: use --passphrase-file FILE, PHONEVAULT_PASSPHRASE_FILE, PHONEVAULT_PASSPHRASE, or run on a terminal to be prompted",
        ));
    }
    let first = rpassword::prompt_password("Vault passphrase: ")
        .map_err(|e| fail(format!("cannot read the passphrase: {e}")))?;
    if confirm {
        let second = Zeroizing::new(
            rpassword::prompt_password("Repeat passphrase: ")
                .map_err(|e| fail(format!("cannot read the passphrase: {e}")))?,
        );
        if *second != first {
            return Err(fail("the passphrases differ; nothing was created"));
        }
    }
    non_empty(first)
}

fn non_empty(p: String) -> Result<Passphrase, Failure> {
    let p = Zeroizing::new(p);
    if p.is_empty() {
        return Err(fail(
            "the passphrase is empty; choose a non-empty passphrase",
        ));
    }
    Ok(Passphrase::new(p.to_string()))
}

/// The PKCS#11 token and key named by the `--pkcs11-*` flags, with the PIN from its file
/// or `PHONEVAULT_PKCS11_PIN` (never from the command line).
pub(crate) fn pkcs11_config(cli: &Cli) -> Result<crate::hsm::Pkcs11Config, Failure> {
    let missing = |flag: &str| {
        fail(format!(
            "a PKCS#11 key slot needs --pkcs11-module, --pkcs11-token and --pkcs11-key ({flag} is missing)"
        ))
    };
    let module = cli
        .pkcs11_module
        .clone()
        .ok_or_else(|| missing("--pkcs11-module"))?;
    let token = cli
        .pkcs11_token
        .clone()
        .ok_or_else(|| missing("--pkcs11-token"))?;
    let key = cli
        .pkcs11_key
        .clone()
        .ok_or_else(|| missing("--pkcs11-key"))?;
    let pin = match &cli.pkcs11_pin_file {
        Some(path) => {
            let bytes = read_secret_file(path)?;
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| fail(format!("{} is not UTF-8 text", path.display())))?;
            crate::hsm::Pin::new(text)
        }
        None => match std::env::var("PHONEVAULT_PKCS11_PIN") {
            Ok(p) => crate::hsm::Pin::new(&Zeroizing::new(p)),
            Err(_) => Err(crate::hsm::HsmError::NoPin),
        },
    }
    .map_err(|e| fail(e.to_string()))?;
    Ok(crate::hsm::Pkcs11Config {
        module,
        token,
        key,
        pin,
    })
}

fn unlock_source(cli: &Cli) -> Result<Unlock, Failure> {
    let no_passphrase =
        cli.passphrase_file.is_none() && std::env::var_os("PHONEVAULT_PASSPHRASE").is_none();
    if no_passphrase && cli.key_file.is_none() && cli.pkcs11_module.is_some() {
        return Ok(Unlock::Pkcs11(pkcs11_config(cli)?));
    }
    if no_passphrase {
        if let Some(path) = &cli.key_file {
            let bytes = read_secret_file(path)?;
            let key = KeyFileKey::from_bytes(&bytes).map_err(|_| {
                fail(format!(
                    "{} is not a phonevault key file (32 bytes)",
                    path.display()
                ))
            })?;
            return Ok(Unlock::KeyFile(key));
        }
    }
    Ok(Unlock::Passphrase(passphrase_from_sources(cli, false)?))
}

/// The value of `--store`, checked after parsing: clap would echo a refused value in
/// its error, and a URL may hold a password. `Debug` prints neither.
#[derive(Clone)]
pub struct StoreArg(Result<StoreLocation, String>);

impl std::fmt::Debug for StoreArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreArg").finish_non_exhaustive()
    }
}

fn parse_store(s: &str) -> Result<StoreArg, String> {
    Ok(StoreArg(StoreLocation::parse(s).map_err(|e| e.to_string())))
}

/// The store named by `--store` and `--pg-schema`; a malformed `--store` is a usage
/// error (exit 2) whose message does not repeat the value.
pub(crate) fn store_location(cli: &Cli) -> Result<StoreLocation, Failure> {
    match &cli.store {
        None => Ok(StoreLocation::Sled),
        Some(StoreArg(Err(e))) => Err(Failure {
            message: e.clone(),
            code: 2,
        }),
        Some(StoreArg(Ok(StoreLocation::Postgres(cfg)))) => Ok(StoreLocation::Postgres(
            cfg.clone().with_schema(&cli.pg_schema),
        )),
        Some(StoreArg(Ok(other))) => Ok(other.clone()),
    }
}

fn open_options(cli: &Cli) -> Result<OpenOptions, Failure> {
    Ok(OpenOptions {
        store: store_location(cli)?,
        ..OpenOptions::default()
    })
}

fn open(cli: &Cli) -> Result<Vault, Failure> {
    let opts = open_options(cli)?;
    if !cli.vault.join(vault::KEYRING_FILE).exists() {
        return Err(VaultError::NoVault(cli.vault.clone()).into());
    }
    let unlock = unlock_source(cli)?;
    let v = Vault::open(&cli.vault, &unlock, opts).map_err(client::locked_hint)?;
    // Every operation is recorded in the audit log as this OS user's.
    Ok(v.acting_as(vault::cli_actor()))
}

fn print_json(v: &serde_json::Value) {
    println!("{v}");
}

/// What `add` prints, in process and through the socket alike.
pub(crate) fn print_added(cli: &Cli, id: &str, outcome: &str, listed: &[String]) {
    if cli.json {
        print_json(&serde_json::json!({"id": id, "outcome": outcome, "suppressed_for": listed}));
    } else {
        println!("{id}");
        if !listed.is_empty() {
            eprintln!(
                "note: the number is on a suppression list for {}: stored, and refused for {} while listed",
                listed.join(","),
                if listed.len() == 1 { "it" } else { "them" }
            );
        }
    }
}

fn fmt_time(t: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t as i64)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// Prints a record: the same lines for one the vault found here (shown as the server
/// shows it, [`Record::of`]) and for one a server answered.
fn print_found(cli: &Cli, r: &Record) {
    let phone = r.phone.expose_secret();
    if cli.json {
        print_json(&serde_json::json!({
            "id": r.id,
            "phone": phone,
            "masked": r.masked,
            "purposes": r.purposes,
            "created_at": fmt_time(r.created_at),
            "updated_at": fmt_time(r.updated_at),
            "verified_at": r.verified_at.map(fmt_time),
        }));
    } else {
        println!("{}  {}  purposes: {}", r.id, phone, r.purposes.join(","));
    }
}

/// Prints a read's result, or fails with exit code 3 (absent and not consented look
/// the same).
fn show_found(cli: &Cli, found: Option<Record>) -> Result<(), Failure> {
    match found {
        Some(r) => {
            print_found(cli, &r);
            Ok(())
        }
        None => Err(not_found("no record found for that purpose")),
    }
}

/// Prints a last-4 search's records, or fails with exit code 3 when there is none.
fn show_records(cli: &Cli, records: &[Record]) -> Result<(), Failure> {
    if records.is_empty() {
        return Err(not_found("no record found for that purpose"));
    }
    for r in records {
        print_found(cli, r);
    }
    Ok(())
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<(), Failure> {
    crate::logging::init(match &cli.command {
        Command::Serve(a) => a.log_format,
        _ => crate::logging::LogFormat::Text,
    });
    if let Some(path) = &cli.phone_metadata {
        let meta = crate::phone::PhoneMetadata::load(path).map_err(|e| fail(e.to_string()))?;
        crate::phone::install(meta).map_err(|e| fail(e.to_string()))?;
    }
    // While a server holds the vault (sled allows one process), go through its socket.
    if let Some(done) = client::through_server(&cli) {
        return done;
    }
    match &cli.command {
        Command::Init(a) => init(&cli, a),
        Command::Tenant(TenantCommand::Create {
            name,
            purposes,
            last4_index,
            expected_rows,
        }) => {
            let v = open(&cli)?;
            let rows = last4_index.then_some(*expected_rows);
            let row = v.create_tenant(name, purposes, rows)?;
            let candidates = rows.map(|r| vault_plan(r).1);
            if cli.json {
                print_json(&serde_json::json!({
                    "tenant": row.name, "purposes": row.purposes,
                    "last4_bits": row.last4_bits, "expected_candidates": candidates,
                }));
            } else {
                println!(
                    "created tenant {} (purposes: {})",
                    row.name,
                    row.purposes.join(",")
                );
                if let (Some(bits), Some(c)) = (row.last4_bits, candidates) {
                    println!(
                        "last-4 index: {bits} bits, about {c:.1} candidates per lookup at {} rows",
                        expected_rows
                    );
                }
            }
            Ok(())
        }
        Command::Tenant(TenantCommand::List) => {
            let v = open(&cli)?;
            let tenants = v.tenants()?;
            if cli.json {
                let list: Vec<_> = tenants
                    .iter()
                    .map(|t| serde_json::json!({"tenant": t.name, "purposes": t.purposes, "last4_bits": t.last4_bits, "retention_days": t.retention_days, "created_at": fmt_time(t.created_at)}))
                    .collect();
                print_json(&serde_json::Value::Array(list));
            } else {
                for t in tenants {
                    println!("{}  purposes: {}", t.name, t.purposes.join(","));
                }
            }
            Ok(())
        }
        // The record, import, stats and token commands: dispatched and printed in one place for the vault here
        // and for a server's socket alike.
        Command::Add(_)
        | Command::Find(_)
        | Command::Get(_)
        | Command::Delete(_)
        | Command::Consent(_)
        | Command::OptOut(_)
        | Command::Erase(_)
        | Command::Verify(_)
        | Command::Import(_)
        | Command::Stats(_)
        | Command::Token(_) => backend::dispatch(&cli, &mut backend::Local::new(&cli))
            .unwrap_or_else(|| Err(fail("this command is not a record command"))),
        Command::Export(a) => export(&cli, a),
        Command::Normalize(a) => normalize(&cli, a),
        Command::Demo(a) => demo::run(a),
        Command::Tenant(TenantCommand::AddPurpose { name, purposes }) => {
            let row = open(&cli)?.add_purposes(name, purposes)?;
            say(
                &cli,
                serde_json::json!({"tenant": row.name, "purposes": row.purposes}),
                &format!("tenant {} purposes: {}", row.name, row.purposes.join(",")),
            );
            Ok(())
        }
        Command::Tenant(TenantCommand::SetSms(a)) => set_sms(&cli, a),
        Command::Tenant(TenantCommand::SetReceipt {
            name,
            controller,
            contact,
            policy_url,
            jurisdiction,
        }) => {
            let c = open(&cli)?.set_receipt_controller(
                name,
                &vault::ReceiptController {
                    controller: controller.clone(),
                    contact: contact.clone(),
                    policy_url: policy_url.clone(),
                    jurisdiction: jurisdiction.clone(),
                },
            )?;
            say(
                &cli,
                serde_json::to_value(&c).unwrap_or_default(),
                &format!(
                    "tenant {name}: receipts name {} ({}), policy {}",
                    c.controller, c.contact, c.policy_url
                ),
            );
            Ok(())
        }
        Command::Receipt(ReceiptCommand::PublicKey { out }) => {
            let k = hex::encode(open(&cli)?.receipt_public_key()?);
            match out {
                Some(path) => std::fs::write(path, format!("{k}\n"))
                    .map_err(|e| fail(format!("cannot write {}: {e}", path.display()))),
                None => {
                    println!("{k}");
                    Ok(())
                }
            }
        }
        Command::Receipt(ReceiptCommand::Verify { file, public_key }) => {
            verify_receipt(&cli, file, public_key)
        }
        Command::Tenant(TenantCommand::SetRetention { name, days, .. }) => {
            let row = open(&cli)?.set_retention(name, *days)?;
            let text = match row.retention_days {
                Some(d) => format!(
                    "tenant {} keeps records {d} days after their latest consent or verification",
                    row.name
                ),
                None => format!("tenant {} keeps records without a time limit", row.name),
            };
            say(
                &cli,
                serde_json::json!({"tenant": row.name, "retention_days": row.retention_days}),
                &text,
            );
            Ok(())
        }
        Command::Purge(a) => {
            let reports = open(&cli)?.purge(a.tenant.as_ref(), a.dry_run)?;
            if cli.json {
                print_json(&serde_json::to_value(&reports).unwrap_or_default());
            } else if reports.is_empty() {
                println!("no tenant has a retention period; nothing to purge");
            } else {
                for r in reports {
                    if a.dry_run {
                        println!(
                            "{}: {} records past {} days of retention would be deleted",
                            r.tenant, r.expired, r.retention_days
                        );
                    } else {
                        println!(
                            "{}: deleted {} records past {} days of retention",
                            r.tenant, r.deleted, r.retention_days
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Subject(a) => {
            let v = open(&cli)?.revealing(a.reveal);
            let Some(mut r) = v.subject(&a.tenant, &a.phone, a.region.as_deref())? else {
                return Err(not_found("the vault holds nothing about that number"));
            };
            if a.reveal {
                r.reveal();
            }
            if cli.json {
                print_json(&serde_json::to_value(&r).unwrap_or_default());
            } else {
                println!("record {}: {} ({} {})", r.id, r.phone, r.region, r.kind);
                println!(
                    "created {}, updated {}, verified {}",
                    fmt_time(r.created_at),
                    fmt_time(r.updated_at),
                    r.verified_at.map_or("never".into(), fmt_time)
                );
                for c in &r.consents {
                    let w = c
                        .withdrawn_at
                        .map_or(String::new(), |t| format!(", withdrawn {}", fmt_time(t)));
                    println!(
                        "consent {}: granted {} (source {}){w}",
                        c.purpose,
                        fmt_time(c.granted_at),
                        c.source
                    );
                }
                for o in &r.opt_outs {
                    let l = o
                        .lifted_at
                        .map_or(String::new(), |t| format!(", lifted {}", fmt_time(t)));
                    println!(
                        "opt-out {}: {}{l}",
                        o.purpose.as_deref().unwrap_or("everything"),
                        fmt_time(o.at)
                    );
                }
                for rc in &r.receipts {
                    println!(
                        "receipt {}: {} at {} (sha256 {}){}",
                        rc.receipt.id,
                        rc.receipt.purposes.join(","),
                        fmt_time(rc.receipt.time),
                        rc.receipt.sha256,
                        if rc.withdrawn {
                            ", consent since withdrawn"
                        } else {
                            ""
                        }
                    );
                }
            }
            Ok(())
        }
        Command::Share(a) => {
            let v = open(&cli)?;
            let f = create_private(&a.out)?;
            let mut w = csv::Writer::from_writer(std::io::BufWriter::new(f));
            w.write_record(["partner_id", "phone"])
                .map_err(|e| fail(e.to_string()))?;
            let shared = v.share(&a.tenant, &a.partner, |pid, f| {
                w.write_record([pid, f.e164.expose_secret()])
                    .map_err(|e| VaultError::Csv(e.to_string()))
            });
            let n = match shared {
                Ok(n) => n,
                Err(e) => {
                    // Leave no partial file behind.
                    drop(w);
                    let _ = std::fs::remove_file(&a.out);
                    return Err(e.into());
                }
            };
            w.flush()
                .map_err(|e| fail(format!("cannot write {}: {e}", a.out.display())))?;
            say(
                &cli,
                serde_json::json!({"shared": n, "partner": a.partner, "out": a.out.display().to_string()}),
                &format!(
                    "wrote {n} records consented for sharing with {} to {}",
                    a.partner,
                    a.out.display()
                ),
            );
            Ok(())
        }
        Command::Stale(a) => {
            let list = open(&cli)?.stale(&a.tenant, a.days)?;
            if cli.json {
                print_json(&serde_json::to_value(&list).unwrap_or_default());
            } else {
                for s in &list {
                    println!(
                        "{}  {}  verified {}",
                        s.id,
                        s.masked,
                        s.verified_at.map_or("never".into(), fmt_time)
                    );
                }
                println!("{} records not verified within {} days", list.len(), a.days);
            }
            Ok(())
        }
        Command::Suppress(c) => suppress_cmds::run(&cli, c),
        Command::Tenant(TenantCommand::Shred { name, .. })
        | Command::Tenant(TenantCommand::Delete { name, .. }) => key_cmds::shred(&cli, name),
        Command::Key(c) => key_cmds::key(&cli, c),
        Command::Rekey(a) => key_cmds::rekey(&cli, a),
        Command::Passwd(a) => key_cmds::passwd(&cli, a),
        Command::Keyslot(c) => key_cmds::keyslot(&cli, c),
        Command::Keyring(c) => key_cmds::keyring(&cli, c),
        Command::Backup(a) => key_cmds::backup(&cli, a),
        Command::Restore(a) => key_cmds::restore(&cli, a),
        Command::Serve(a) => server_cmds::serve(&cli, a),
        Command::Audit(c) => audit_cmds::run(&cli, c),
        Command::Seal | Command::Unseal => Err(client::no_server(&cli)),
        Command::Compact => {
            if !matches!(store_location(&cli)?, StoreLocation::Sled) {
                return Err(VaultError::Unsupported(
                    "compact rewrites the embedded sled store; on PostgreSQL, space of deleted rows is reclaimed by VACUUM (run VACUUM FULL on the schema's pv_* tables to rewrite them)",
                )
                .into());
            }
            let unlock = unlock_source(&cli)?;
            if !cli.vault.join(vault::KEYRING_FILE).exists() {
                return Err(VaultError::NoVault(cli.vault.clone()).into());
            }
            let r = Vault::compact(&cli.vault, &unlock)?;
            say(
                &cli,
                serde_json::to_value(r).unwrap_or_default(),
                &format!(
                    "compacted the store: {} bytes before, {} after",
                    r.before, r.after
                ),
            );
            Ok(())
        }
        Command::Check => check(&cli),
        Command::Reindex(a) => reindex(&cli, a),
    }
}

fn check(cli: &Cli) -> Result<(), Failure> {
    let r = open(cli)?.check_integrity()?;
    if cli.json {
        print_json(&serde_json::to_value(&r).unwrap_or_default());
    } else {
        for p in &r.problems {
            println!(
                "{}  tenant {}  record {}: {}",
                p.code,
                p.tenant.as_deref().unwrap_or("-"),
                p.record.as_deref().unwrap_or("-"),
                p.detail
            );
        }
        println!(
            "checked {} tenants, {} records, {} index entries, {} expiry entries, {} tokens: {} problems",
            r.tenants, r.records, r.index_entries, r.expiry_entries, r.tokens, r.problem_count()
        );
    }
    if r.is_ok() {
        Ok(())
    } else {
        Err(fail(format!(
            "the integrity check found {} problems (listed on stdout): finish an interrupted \
             `tenant shred` or `key rewrap` by running it again, else restore the vault from a backup",
            r.problem_count()
        )))
    }
}

fn print_stats(
    cli: &Cli,
    a: &StatsArgs,
    s: &crate::stats::Stats,
    lists: &[vault::ListCount],
) -> Result<(), Failure> {
    if cli.json {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        if !lists.is_empty() {
            v["suppression_lists"] = serde_json::to_value(lists).unwrap_or_default();
        }
        print_json(&v);
        return Ok(());
    }
    if a.csv {
        let mut w = csv::Writer::from_writer(std::io::stdout().lock());
        let row = |w: &mut csv::Writer<_>, r: [&str; 3]| {
            w.write_record(r).map_err(|e| fail(e.to_string()))
        };
        row(&mut w, ["country", "type", "count"])?;
        for g in &s.groups {
            row(
                &mut w,
                [
                    g.country.as_deref().unwrap_or(""),
                    g.kind.unwrap_or(""),
                    &g.count.to_string(),
                ],
            )?;
        }
        return w.flush().map_err(|e| fail(e.to_string()));
    }
    println!("{:<8} {:<22} {:>10}", "country", "type", "count");
    for g in &s.groups {
        println!(
            "{:<8} {:<22} {:>10}",
            g.country.as_deref().unwrap_or("*"),
            g.kind.unwrap_or("*"),
            g.count
        );
    }
    println!(
        "{} groups smaller than {} suppressed{}",
        s.suppressed_groups,
        s.min_group,
        s.epsilon.map_or(String::new(), |e| format!(
            "; Laplace noise, epsilon {e} spent by this query"
        ))
    );
    for l in lists {
        match l.records {
            Some(n) => println!(
                "suppression list {} ({}): {n} live records suppressed",
                l.list,
                l.purposes.join(",")
            ),
            None => println!(
                "suppression list {} ({}): fewer than {} live records suppressed",
                l.list,
                l.purposes.join(","),
                s.min_group
            ),
        }
    }
    Ok(())
}

/// Prints or writes a receipt issued by `consent grant --receipt` (in-process or
/// through the server).
pub(super) fn emit_receipt(
    cli: &Cli,
    id: crate::record::RecordId,
    purposes: &[String],
    file: &[u8],
    out: Option<&Path>,
) -> Result<(), Failure> {
    match out {
        Some(path) => {
            let mut bytes = file.to_vec();
            bytes.push(b'\n');
            std::fs::write(path, bytes)
                .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
            say(
                cli,
                serde_json::json!({"id": id.to_string(), "granted": purposes, "receipt": path}),
                &format!(
                    "{id}: consent granted for {}; receipt written to {}",
                    purposes.join(","),
                    path.display()
                ),
            );
        }
        // The receipt alone, exactly as it verifies.
        None => println!("{}", String::from_utf8_lossy(file)),
    }
    Ok(())
}

fn verify_receipt(cli: &Cli, file: &Path, public_key: &str) -> Result<(), Failure> {
    let key_text = if public_key.trim().len() == 64 {
        public_key.to_owned()
    } else {
        std::fs::read_to_string(public_key).map_err(|_| {
            fail("--public-key is neither 64 hexadecimal characters nor a readable file holding them")
        })?
    };
    let key = crate::receipt::parse_public_key(&key_text).map_err(|e| fail(e.to_string()))?;
    let bytes =
        std::fs::read(file).map_err(|e| fail(format!("cannot read {}: {e}", file.display())))?;
    let r = crate::receipt::verify(&bytes, &key)
        .map_err(|e| fail(format!("{}: {e}", file.display())))?;
    let purposes: Vec<&str> = r["services"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["purposes"].as_array().into_iter().flatten())
        .filter_map(|p| p["purpose"].as_str())
        .collect();
    say(
        cli,
        serde_json::json!({"valid": true, "receipt": r}),
        &format!(
            "valid receipt {} of record {}: purposes {}, at {}",
            r["consentReceiptID"].as_str().unwrap_or_default(),
            r["piiPrincipalId"].as_str().unwrap_or_default(),
            purposes.join(","),
            r["consentTimestamp"]
                .as_u64()
                .map_or_else(String::new, fmt_time),
        ),
    );
    Ok(())
}

fn set_sms(cli: &Cli, a: &SetSmsArgs) -> Result<(), Failure> {
    let mut change = vault::SmsChange::default();
    if let Some(path) = &a.secret_file {
        let mut bytes = read_secret_file(path)?;
        while bytes.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
            bytes.pop();
        }
        change.secret = Some(Some(bytes));
    } else if a.no_secret {
        change.secret = Some(None);
    }
    change.webhook_url = a.webhook_url.clone().map(Some);
    for (i, m) in a.numbers.iter().enumerate() {
        let (to, purposes) = m.split_once('=').ok_or_else(|| {
            fail(format!(
                "--number number {} is not TO=purpose,purpose (e.g. +447700900001=marketing)",
                i + 1
            ))
        })?;
        let purposes = purposes.split(',').map(str::to_owned).collect();
        change.numbers.push((to.to_owned(), purposes));
    }
    change.clear_numbers = a.clear_numbers;
    change.reply_stop = a.reply_stop.clone();
    change.reply_start = a.reply_start.clone();
    change.reply_help = a.reply_help.clone();
    change.reply_other = a.reply_other.clone();
    let unchanged = change.secret.is_none()
        && change.webhook_url.is_none()
        && change.numbers.is_empty()
        && !change.clear_numbers
        && [&a.reply_stop, &a.reply_start, &a.reply_help, &a.reply_other]
            .iter()
            .all(|r| r.is_none());
    let v = open(cli)?;
    let s = if unchanged {
        v.sms_settings(&a.name)?
    } else {
        v.set_sms(&a.name, &change)?
    };
    let numbers: Vec<String> = s
        .numbers
        .iter()
        .map(|(n, p)| format!("{n}={}", p.join(",")))
        .collect();
    let text = format!(
        "tenant {} inbound SMS: signature {}; webhook URL: {}; sending numbers: {}\n  reply to STOP: {}\n  reply to START: {}\n  reply to HELP: {}\n  reply to other texts: {}",
        s.tenant,
        if s.secret_set { "required (secret set)" } else { "not checked (no secret)" },
        s.webhook_url.as_deref().unwrap_or("(none)"),
        if numbers.is_empty() { "(none: STOP opts out of everything)".to_owned() } else { numbers.join(" ") },
        s.reply_stop,
        s.reply_start,
        s.reply_help,
        s.reply_other,
    );
    say(cli, serde_json::to_value(&s).unwrap_or_default(), &text);
    Ok(())
}

fn say(cli: &Cli, json: serde_json::Value, text: &str) {
    if cli.json {
        print_json(&json);
    } else {
        println!("{text}");
    }
}

fn report_change(cli: &Cli, c: vault::Changed, yes: &str, no: &str) {
    let (changed, text) = match c {
        vault::Changed::Yes(_) => (true, yes),
        vault::Changed::No(_) => (false, no),
    };
    say(
        cli,
        serde_json::json!({"id": c.id().to_string(), "changed": changed}),
        &format!("{}: {text}", c.id()),
    );
}

fn vault_plan(rows: u64) -> (u8, f64) {
    crate::record::plan_last4_bits(rows)
}

fn init(cli: &Cli, a: &InitArgs) -> Result<(), Failure> {
    let location = store_location(cli)?;
    let sled = matches!(location, StoreLocation::Sled);
    if cli.vault.join(vault::KEYRING_FILE).exists()
        || (sled && cli.vault.join(vault::STORE_DIR).exists())
    {
        return Err(VaultError::AlreadyExists(cli.vault.clone()).into());
    }
    let params = KdfParams {
        m_kib: a.kdf_memory_kib,
        t: a.kdf_iterations,
        p: 1,
    };
    let pass = passphrase_from_sources(cli, true)?;
    Vault::init_on(&cli.vault, &location, &pass, params)?;
    if let Some(path) = &a.new_key_file {
        let kf = KeyFileKey::generate();
        write_new_secret_file(path, kf.expose_secret())?;
        let v = Vault::open(&cli.vault, &Unlock::Passphrase(pass), open_options(cli)?)?;
        v.add_key_file_slot(&kf)?;
    }
    if cli.json {
        print_json(&serde_json::json!({"vault": cli.vault.display().to_string()}));
    } else {
        println!("created vault at {}", cli.vault.display());
    }
    Ok(())
}

fn write_new_secret_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| fail(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))
}

/// Creates (or truncates) a file only its owner can read. `mode` applies only to a new
/// file, so an existing one is tightened to 0600 before anything is written to it.
fn create_private(path: &Path) -> Result<std::fs::File, Failure> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| fail(format!("cannot create {}: {e}", path.display())))?;
    // A device or pipe (`--out /dev/stdout`) is written to, never chmod-ed: as root that
    // would change /dev/null's mode for every user of the machine.
    let regular = f
        .metadata()
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?
        .is_file();
    if !regular {
        return Ok(f);
    }
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| {
            fail(format!(
                "cannot make {} private (chmod 600): {e}",
                path.display()
            ))
        })?;
    Ok(f)
}

/// The progress bar of an import (bytes of the file read): on a terminal only.
fn import_bar(cli: &Cli, len: u64) -> indicatif::ProgressBar {
    if std::io::stderr().is_terminal() && !cli.json {
        let b = indicatif::ProgressBar::new(len);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    }
}

fn reindex(cli: &Cli, a: &ReindexArgs) -> Result<(), Failure> {
    let reports = open(cli)?.reindex(a.tenant.as_ref(), a.dry_run)?;
    if cli.json {
        print_json(&serde_json::to_value(&reports).unwrap_or_default());
        return Ok(());
    }
    for r in reports {
        println!(
            "{}: {} records checked under phone metadata {} (indexes made with {}): {} invalid \
             now, {} normalized differently",
            r.tenant,
            r.records,
            r.to_version,
            r.from_version,
            r.invalid.len(),
            r.changed_form.len()
        );
        for id in &r.invalid {
            println!("  invalid now (re-verify): {id}");
        }
        for id in &r.changed_form {
            println!("  normalizes differently (erase and add again): {id}");
        }
        if r.stamped {
            println!("  stamped with {}", r.to_version);
        } else if a.dry_run && r.from_version != r.to_version {
            println!("  dry run: not stamped");
        }
    }
    Ok(())
}

/// Prints an import's counts: the same lines in-process and through the socket, where
/// a token that cannot read every purpose of its tenant is told fewer counts.
fn print_import(cli: &Cli, summary: &BatchSummary, rejects_path: &Path) {
    let rejected = summary.uniform().rejected;
    let mut v = serde_json::to_value(summary).unwrap_or_default();
    if rejected > 0 {
        v["rejects_file"] = rejects_path.display().to_string().into();
    }
    if cli.json {
        print_json(&v);
        return;
    }
    match summary {
        BatchSummary::Detailed(s) => println!(
            "imported {} rows: {} new, {} merged, {} unchanged, {} rejected",
            s.rows, s.created, s.merged, s.unchanged, s.rejected
        ),
        BatchSummary::Uniform(u) => println!(
            "imported {} rows: {} accepted, {} rejected (the server tells a token that cannot read every purpose of its tenant nothing more)",
            u.rows, u.accepted, u.rejected
        ),
    }
    if rejected > 0 {
        println!(
            "rejected rows (line and reason) are in {}",
            rejects_path.display()
        );
    }
    let BatchSummary::Detailed(summary) = summary else {
        return;
    };
    if summary.listed > 0 {
        println!(
            "{} of the accepted rows are on a suppression list for one of the import's \
             purposes: stored, and refused for those purposes while listed (see \
             `phonevault suppress list`)",
            summary.listed
        );
    }
    if summary.newly_valid > 0 {
        println!(
            "{} of the accepted rows were invalid under the phone metadata the tenant's \
             indexes were made with (run `phonevault reindex` to re-check the others)",
            summary.newly_valid
        );
    }
}

fn export(cli: &Cli, a: &ExportArgs) -> Result<(), Failure> {
    let v = open(cli)?.revealing(a.reveal);
    let f = create_private(&a.out)?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(f));
    w.write_record(["id", "phone"])
        .map_err(|e| fail(e.to_string()))?;
    let n = v.export(&a.tenant, &a.purpose, |f| {
        let id = f.id.to_string();
        let phone = if a.reveal {
            f.e164.expose_secret()
        } else {
            &f.masked
        };
        w.write_record([id.as_str(), phone])
            .map_err(|e| VaultError::Csv(e.to_string()))
    })?;
    w.flush()
        .map_err(|e| fail(format!("cannot write {}: {e}", a.out.display())))?;
    if cli.json {
        print_json(
            &serde_json::json!({"exported": n, "out": a.out.display().to_string(), "masked": !a.reveal}),
        );
    } else {
        println!("exported {n} records to {}", a.out.display());
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct JsonlInput {
    input: String,
    region: Option<String>,
}

fn normalize(cli: &Cli, a: &NormalizeArgs) -> Result<(), Failure> {
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (i, line) in stdin.lock().lines().enumerate() {
        let line = line.map_err(|e| fail(format!("cannot read stdin: {e}")))?;
        let written = if a.jsonl {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<JsonlInput>(&line) {
                Ok(j) => {
                    let region = j.region.as_deref().or(a.region.as_deref());
                    let report = phone::report(&j.input, region);
                    serde_json::to_writer(&mut out, &report)
                        .map_err(std::io::Error::other)
                        .and_then(|()| writeln!(out))
                }
                Err(_) => writeln!(
                    out,
                    "{}",
                    serde_json::json!({"valid": false, "e164": null, "region": null, "type": null, "error": "bad_json", "line": i + 1})
                ),
            }
        } else {
            match phone::normalize(&line, a.region.as_deref()) {
                Ok(n) if cli.json => {
                    let report = phone::report(&line, a.region.as_deref());
                    drop(n);
                    serde_json::to_writer(&mut out, &report)
                        .map_err(std::io::Error::other)
                        .and_then(|()| writeln!(out))
                }
                Ok(n) => writeln!(out, "{}", n.e164.expose_secret()),
                Err(e) if cli.json => {
                    let report = phone::report(&line, a.region.as_deref());
                    let _ = e;
                    serde_json::to_writer(&mut out, &report)
                        .map_err(std::io::Error::other)
                        .and_then(|()| writeln!(out))
                }
                Err(e) => writeln!(out, "error: {}: {e}", e.code()),
            }
        };
        written.map_err(|e| fail(format!("cannot write stdout: {e}")))?;
    }
    out.flush()
        .map_err(|e| fail(format!("cannot write stdout: {e}")))
}
