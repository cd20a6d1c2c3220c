//! Inbound SMS: a tenant's SMS settings (the provider's signing secret, the public
//! webhook URL, which purposes each sending number stands for, the reply texts) and
//! the keyword opt-out a customer's reply asks for.
//!
//! The settings live in one row of the `meta` tree per tenant, sealed (AES-256-GCM)
//! under the vault state key, so the provider's secret is never on disk in clear:
//!
//! ```text
//! key   = "sms:" ‖ u32-be(tenant id)
//! value = seal(state key, aad, bincode(SmsRow))
//! aad   = lp("phonevault/v1/sms-settings") ‖ lp(vault id) ‖ lp(key)
//! ```
//!
//! The keyword rule is [`crate::sms::apply`]; the opt-out goes through the same
//! record update as `opt-out`, audited as `opt-out:sms` (or `opt-out-lift:sms`,
//! `inbound-sms:help`, `inbound-sms:none`) with the record id, never the number.

use bincode::{Decode, Encode};
use std::sync::PoisonError;
use zeroize::{Zeroize, Zeroizing};

use super::lifecycle::Target;
use super::{check_name, Vault, VaultError};
use crate::phone;
use crate::policy::TenantName;
use crate::sms::{self, BodyKind, Keyword};
use crate::store::{Batch, Tree};

const ROW_PREFIX: &[u8] = b"sms:";
/// Domain label of the sealed settings row's AAD.
pub const SMS_SETTINGS_LABEL: &[u8] = b"phonevault/v1/sms-settings";
/// Longest reply text (ten SMS segments).
pub const MAX_REPLY: usize = 1530;
/// Longest webhook URL.
pub const MAX_URL: usize = 2048;
/// Longest provider secret.
pub const MAX_SECRET: usize = 256;
/// Most sending numbers mapped to purposes.
pub const MAX_NUMBERS: usize = 256;

/// The reply to STOP when the tenant configured none.
pub const DEFAULT_STOP_REPLY: &str =
    "You are unsubscribed and will receive no more messages. Reply START to resubscribe.";
/// The reply to START when the tenant configured none.
pub const DEFAULT_START_REPLY: &str = "You are resubscribed. Reply STOP to unsubscribe.";
/// The reply to HELP when the tenant configured none.
pub const DEFAULT_HELP_REPLY: &str = "Reply STOP to unsubscribe or START to resubscribe.";

#[derive(Encode, Decode, Default)]
struct SmsRow {
    secret: Option<Vec<u8>>,
    webhook_url: Option<String>,
    numbers: Vec<(String, Vec<String>)>,
    reply_stop: Option<String>,
    reply_start: Option<String>,
    reply_help: Option<String>,
    reply_other: Option<String>,
}

impl Drop for SmsRow {
    fn drop(&mut self) {
        if let Some(s) = &mut self.secret {
            s.zeroize();
        }
    }
}

impl SmsRow {
    fn reply(&self, k: Keyword) -> String {
        match k {
            Keyword::OptOut => self.reply_stop.as_deref().unwrap_or(DEFAULT_STOP_REPLY),
            Keyword::Lift => self.reply_start.as_deref().unwrap_or(DEFAULT_START_REPLY),
            Keyword::Help => self.reply_help.as_deref().unwrap_or(DEFAULT_HELP_REPLY),
            Keyword::Other => self.reply_other.as_deref().unwrap_or(""),
        }
        .to_owned()
    }

    fn purposes_of(&self, to: &str) -> Option<&[String]> {
        self.numbers
            .iter()
            .find(|(n, _)| n == to)
            .map(|(_, p)| p.as_slice())
    }

    fn view(&self, tenant: &str) -> SmsSettings {
        SmsSettings {
            tenant: tenant.to_owned(),
            secret_set: self.secret.is_some(),
            webhook_url: self.webhook_url.clone(),
            numbers: self.numbers.clone(),
            reply_stop: self.reply(Keyword::OptOut),
            reply_start: self.reply(Keyword::Lift),
            reply_help: self.reply(Keyword::Help),
            reply_other: self.reply(Keyword::Other),
        }
    }
}

/// A tenant's SMS settings as shown: whether a secret is set, never the secret.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SmsSettings {
    /// Tenant.
    pub tenant: String,
    /// Whether inbound messages must carry the provider's signature.
    pub secret_set: bool,
    /// The public URL the provider posts to (what it signs).
    pub webhook_url: Option<String>,
    /// Sending numbers (E.164) and the purposes a STOP to each opts out of.
    pub numbers: Vec<(String, Vec<String>)>,
    /// Reply to an opt-out keyword.
    pub reply_stop: String,
    /// Reply to START, YES, UNSTOP.
    pub reply_start: String,
    /// Reply to HELP, INFO.
    pub reply_help: String,
    /// Reply to any other text.
    pub reply_other: String,
}

/// A change to a tenant's SMS settings; `None` leaves a field as it is.
#[derive(Default)]
pub struct SmsChange {
    /// `Some(Some(secret))` sets the provider secret, `Some(None)` removes it.
    pub secret: Option<Option<Zeroizing<Vec<u8>>>>,
    /// `Some(Some(url))` sets the webhook URL, `Some(None)` removes it.
    pub webhook_url: Option<Option<String>>,
    /// Sending numbers mapped to purposes (`TO=purpose,purpose`), added or replaced.
    pub numbers: Vec<(String, Vec<String>)>,
    /// Remove every mapping first.
    pub clear_numbers: bool,
    /// Reply to an opt-out keyword.
    pub reply_stop: Option<String>,
    /// Reply to START, YES, UNSTOP.
    pub reply_start: Option<String>,
    /// Reply to HELP, INFO.
    pub reply_help: Option<String>,
    /// Reply to any other text.
    pub reply_other: Option<String>,
}

impl std::fmt::Debug for SmsChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsChange").finish_non_exhaustive()
    }
}

/// An inbound request as the server received it.
pub struct InboundRequest<'a> {
    /// JSON or form, from the content type.
    pub kind: BodyKind,
    /// The body as received.
    pub body: &'a [u8],
    /// The request's query string (part of the URL the provider signed).
    pub query: Option<&'a str>,
    /// The `X-Twilio-Signature` header.
    pub signature: Option<&'a str>,
}

/// What an inbound message did: the same for a known and an unknown sender.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SmsAnswer {
    /// `opted_out`, `opt_out_lifted`, `help` or `none`.
    pub action: &'static str,
    /// The tenant's confirmation text for it.
    pub reply: String,
}

fn row_key(tenant_id: u32) -> Vec<u8> {
    let mut k = ROW_PREFIX.to_vec();
    k.extend_from_slice(&tenant_id.to_be_bytes());
    k
}

fn aad(label: &[u8], vault: &[u8; 16], key: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [label, &vault[..], key] {
        out.extend_from_slice(&(part.len() as u64).to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn cfg() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ 1 << 20 }>()
}

/// The canonical form of a tenant's sending number: E.164 for a phone number, the
/// digits for a short code (3 to 8 digits, the form providers post for one).
fn sending_number(s: &str) -> Result<String, VaultError> {
    let s = s.trim();
    if let Ok(n) = phone::normalize(s, None) {
        return Ok(n.e164.expose_secret().to_owned());
    }
    if (3..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(s.to_owned());
    }
    Err(VaultError::InvalidArgument(
        "the sending number is neither a phone number in international form (+44...) nor a short code of 3 to 8 digits".into(),
    ))
}

fn check_text(what: &str, s: &str, max: usize) -> Result<(), VaultError> {
    if s.chars().count() > max || s.chars().any(|c| c.is_control() && c != '\n') {
        return Err(VaultError::InvalidArgument(format!(
            "{what} must be at most {max} characters without control characters"
        )));
    }
    Ok(())
}

impl Vault {
    /// Reads and opens the `meta` row `key` sealed under the vault state key with
    /// `label` (see the module docs): its value decoded, and its stored bytes (for a
    /// guard), or `None` when absent.
    pub(super) fn sealed_row<T: Decode<()>>(
        &self,
        label: &[u8],
        what: &'static str,
        key: &[u8],
    ) -> Result<Option<(T, Vec<u8>)>, VaultError> {
        let Some(stored) = self.store.get(Tree::Meta, key)? else {
            return Ok(None);
        };
        let (state, vault_id) = self.state_key()?;
        let plain = state
            .open(&aad(label, &vault_id, key), &stored)
            .map_err(|_| VaultError::RowTampered(what))?;
        let (row, used): (T, usize) =
            bincode::decode_from_slice(&plain, cfg()).map_err(|_| VaultError::RowTampered(what))?;
        if used != plain.len() {
            return Err(VaultError::RowTampered(what));
        }
        Ok(Some((row, stored)))
    }

    /// Seals `row` for the `meta` row `key` under the vault state key with `label`.
    pub(super) fn seal_row<T: Encode>(
        &self,
        label: &[u8],
        key: &[u8],
        row: &T,
    ) -> Result<Vec<u8>, VaultError> {
        let (state, vault_id) = self.state_key()?;
        let plain = Zeroizing::new(
            bincode::encode_to_vec(row, cfg())
                .map_err(|_| VaultError::InvalidArgument("settings row too large".into()))?,
        );
        Ok(state.seal(&aad(label, &vault_id, key), &plain)?)
    }

    fn state_key(&self) -> Result<(phonevault_keys::DataKey, [u8; 16]), VaultError> {
        let ring = self.keyring.lock().unwrap_or_else(PoisonError::into_inner);
        Ok((ring.vault_keys(&self.root)?.state, ring.vault_id.0))
    }

    fn sms_row(&self, tenant_id: u32) -> Result<(SmsRow, Option<Vec<u8>>), VaultError> {
        let key = row_key(tenant_id);
        Ok(
            match self.sealed_row(SMS_SETTINGS_LABEL, "sms settings", &key)? {
                Some((row, stored)) => (row, Some(stored)),
                None => (SmsRow::default(), None),
            },
        )
    }

    /// A tenant's SMS settings (whether a secret is set, never the secret).
    ///
    /// # Errors
    /// [`VaultError::UnknownTenant`], [`VaultError::RowTampered`].
    pub fn sms_settings(&self, tenant: &TenantName) -> Result<SmsSettings, VaultError> {
        let tenant = tenant.as_str();
        let ctx = self.tenant(tenant)?;
        Ok(self.sms_row(ctx.row.id)?.0.view(tenant))
    }

    /// Changes a tenant's SMS settings, sealed at rest; audited as `tenant-set-sms`.
    ///
    /// # Errors
    /// [`VaultError::UnknownTenant`], [`VaultError::UnknownPurpose`],
    /// [`VaultError::InvalidArgument`] for a sending number that is neither a phone
    /// number nor a short code, a URL, text or secret out of bounds.
    pub fn set_sms(
        &self,
        tenant: &TenantName,
        change: &SmsChange,
    ) -> Result<SmsSettings, VaultError> {
        let tenant = tenant.as_str();
        self.audited("tenant-set-sms", Some(tenant), None, |ev| {
            let ctx = self.tenant(tenant)?;
            let mut numbers = Vec::new();
            for (to, purposes) in &change.numbers {
                let to = sending_number(to)?;
                if purposes.is_empty() {
                    return Err(VaultError::InvalidArgument(
                        "a sending number needs at least one purpose: TO=purpose,purpose".into(),
                    ));
                }
                for (i, p) in purposes.iter().enumerate() {
                    check_name("purpose", p)?;
                    ctx.check_purpose_at(p, i)?;
                }
                numbers.push((to, purposes.clone()));
            }
            if let Some(Some(url)) = &change.webhook_url {
                let ok = (url.starts_with("https://") || url.starts_with("http://"))
                    && url.len() <= MAX_URL
                    && url.bytes().all(|b| b.is_ascii_graphic());
                if !ok {
                    return Err(VaultError::InvalidArgument(format!(
                        "the webhook URL must be the full http(s) URL the provider posts to, at most {MAX_URL} characters without spaces"
                    )));
                }
            }
            if let Some(Some(s)) = &change.secret {
                if s.is_empty() || s.len() > MAX_SECRET {
                    return Err(VaultError::InvalidArgument(format!(
                        "the provider secret must be 1 to {MAX_SECRET} bytes (the auth token, without a trailing newline)"
                    )));
                }
            }
            for (what, t) in [
                ("--reply-stop", &change.reply_stop),
                ("--reply-start", &change.reply_start),
                ("--reply-help", &change.reply_help),
                ("--reply-other", &change.reply_other),
            ] {
                if let Some(t) = t {
                    check_text(what, t, MAX_REPLY)?;
                }
            }
            let _w = self.write_guard();
            let (mut row, stored) = self.sms_row(ctx.row.id)?;
            if let Some(s) = &change.secret {
                row.secret = s.as_ref().map(|s| s.to_vec());
            }
            if let Some(u) = &change.webhook_url {
                row.webhook_url = u.clone();
            }
            if change.clear_numbers {
                row.numbers.clear();
            }
            for (to, purposes) in numbers {
                row.numbers.retain(|(n, _)| *n != to);
                row.numbers.push((to, purposes));
            }
            row.numbers.sort();
            if row.numbers.len() > MAX_NUMBERS {
                return Err(VaultError::InvalidArgument(format!(
                    "at most {MAX_NUMBERS} sending numbers per tenant"
                )));
            }
            for (field, v) in [
                (&mut row.reply_stop, &change.reply_stop),
                (&mut row.reply_start, &change.reply_start),
                (&mut row.reply_help, &change.reply_help),
                (&mut row.reply_other, &change.reply_other),
            ] {
                if let Some(v) = v {
                    *field = Some(v.clone());
                }
            }
            if row.secret.is_some() && row.webhook_url.is_none() {
                return Err(VaultError::InvalidArgument(
                    "a provider secret needs the webhook URL it signs: add --webhook-url".into(),
                ));
            }
            let key = row_key(ctx.row.id);
            let sealed = self.seal_row(SMS_SETTINGS_LABEL, &key, &row)?;
            let mut b = Batch::default();
            b.guard(Tree::Meta, key.clone(), stored);
            b.put(Tree::Meta, key, sealed);
            self.commit_audited(&mut b, ev)?;
            Ok(row.view(tenant))
        })
    }

    /// Takes one inbound SMS for `tenant`: checks the provider's signature when the
    /// tenant has a secret, then does what the keyword asks (see [`sms::apply`]) to
    /// the sender's record, if there is one. The answer is the same whether the sender
    /// is known or not; the number reaches no log and no audit entry (the entry names
    /// the record id and the channel: `opt-out:sms`, `opt-out-lift:sms`,
    /// `inbound-sms:help`, `inbound-sms:none`).
    ///
    /// # Errors
    /// [`VaultError::BadSignature`] (nothing changed), [`VaultError::InvalidArgument`]
    /// for a malformed body or a sending number that is neither a phone number nor a
    /// short code, [`VaultError::Phone`] for a sender that is no phone number.
    pub fn inbound_sms(
        &self,
        tenant: &TenantName,
        req: &InboundRequest<'_>,
    ) -> Result<SmsAnswer, VaultError> {
        let tenant = tenant.as_str();
        let ctx = self.tenant(tenant)?;
        let (row, _) = self.sms_row(ctx.row.id)?;
        let msg = sms::parse_inbound(req.kind, req.body)
            .map_err(|e| VaultError::InvalidArgument(e.to_string()))?;
        if let Some(secret) = &row.secret {
            let url = sms::signed_url(row.webhook_url.as_deref().unwrap_or_default(), req.query);
            if sms::check_signature(secret, &url, req.kind, req.body, &msg.fields, req.signature)
                .is_err()
            {
                // Recorded as a refusal, with nothing of the message.
                return self.audited("inbound-sms", Some(tenant), None, |_| {
                    Err(VaultError::BadSignature)
                });
            }
        }
        let keyword = sms::classify(&msg.body);
        let to = sending_number(&msg.to)?;
        let purposes = row.purposes_of(&to);
        let source = format!("sms:{to}");
        let answer = SmsAnswer {
            action: keyword.action(),
            reply: row.reply(keyword),
        };
        let joined = purposes.map(|p| p.join(","));
        let action = match keyword {
            Keyword::OptOut => "opt-out:sms",
            Keyword::Lift => "opt-out-lift:sms",
            Keyword::Help => "inbound-sms:help",
            Keyword::Other => "inbound-sms:none",
        };
        self.audited(action, Some(tenant), joined.as_deref(), |ev| {
            // Checked for every keyword, so that a malformed sender is refused alike.
            phone::normalize(&msg.from, None)?;
            if matches!(keyword, Keyword::Help | Keyword::Other) {
                return Ok(());
            }
            let target = Target::Phone {
                input: &msg.from,
                region: None,
            };
            match self.update(tenant, target, ev, |b, t| {
                sms::apply(b, keyword, purposes, &source, t)
            }) {
                // An unknown sender: the same answer, nothing written.
                Ok(_) | Err(VaultError::NoSuchRecord(_)) => Ok(()),
                Err(e) => Err(e),
            }
        })?;
        Ok(answer)
    }
}
