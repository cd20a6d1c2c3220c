//! The read side of the privacy policy that goes beyond one purpose-limited read:
//! subject access, third-party sharing, accuracy (stale numbers) and anonymized
//! statistics. Decrypted numbers exist only in memory, in zeroize-on-drop values.

use super::audit::Event;
use super::{Found, Vault, VaultError};
use crate::phone::{self, NumberKind, E164};
use crate::policy::retention::{self, SECONDS_PER_DAY};
use crate::policy::TenantName;
use crate::record::{Grant, OptOut, RecordId};
use crate::stats::{partner_pseudonym, Aggregator, Stats, StatsQuery};

/// Everything the vault holds about one number: the answer to a data-subject access
/// request. Holds the number; its `Debug` prints only the record id.
#[derive(serde::Serialize)]
pub struct SubjectReport {
    /// Record id.
    pub id: String,
    /// The number, masked unless revealed with [`SubjectReport::reveal`].
    pub phone: String,
    /// Region of the number.
    pub region: String,
    /// Number type.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Every consent ever granted, with withdrawal times.
    pub consents: Vec<ConsentEntry>,
    /// Every opt-out, with the time an explicit consent lifted it.
    pub opt_outs: Vec<OptOutEntry>,
    /// The consent receipts issued for the record, oldest first; `withdrawn` says
    /// whether a purpose it names has no live consent now.
    pub receipts: Vec<ReceiptStatus>,
    /// Unix seconds of creation, last change, last verification.
    pub created_at: u64,
    /// Last change.
    pub updated_at: u64,
    /// Last verification.
    pub verified_at: Option<u64>,
    #[serde(skip)]
    e164: E164,
}

impl SubjectReport {
    /// Replaces the masked number with the full one (for a reveal-authorized caller
    /// answering the subject).
    pub fn reveal(&mut self) {
        self.phone = self.e164.expose_secret().to_owned();
    }
}

impl std::fmt::Debug for SubjectReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectReport")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A receipt in a subject report, with whether its consent still holds.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReceiptStatus {
    /// The receipt as listed.
    #[serde(flatten)]
    pub receipt: super::ReceiptEntry,
    /// Whether a purpose it names was withdrawn (or opted out) since.
    pub withdrawn: bool,
}

/// One consent in a subject report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConsentEntry {
    /// Purpose.
    pub purpose: String,
    /// Source of the consent.
    pub source: String,
    /// Unix seconds of the grant.
    pub granted_at: u64,
    /// Unix seconds of the withdrawal.
    pub withdrawn_at: Option<u64>,
}

/// One opt-out in a subject report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OptOutEntry {
    /// Purpose, or `None` for everything.
    pub purpose: Option<String>,
    /// Unix seconds of the opt-out.
    pub at: u64,
    /// Unix seconds when an explicit consent lifted it.
    pub lifted_at: Option<u64>,
}

impl From<&Grant> for ConsentEntry {
    fn from(g: &Grant) -> Self {
        ConsentEntry {
            purpose: g.purpose.clone(),
            source: g.source.clone(),
            granted_at: g.granted_at,
            withdrawn_at: g.withdrawn_at,
        }
    }
}

impl From<&OptOut> for OptOutEntry {
    fn from(o: &OptOut) -> Self {
        OptOutEntry {
            purpose: o.purpose.clone(),
            at: o.at,
            lifted_at: o.lifted_at,
        }
    }
}

/// A record not verified recently enough.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Stale {
    /// Record id.
    pub id: String,
    /// Masked number.
    pub masked: String,
    /// Last verification, if ever.
    pub verified_at: Option<u64>,
}

impl Vault {
    /// Everything held about a number, whatever its consents: consents with their
    /// history, opt-outs and dates. `None` when the vault holds nothing about it.
    /// (Accesses to it come with the audit log.)
    pub fn subject(
        &self,
        tenant: &TenantName,
        input: &str,
        region: Option<&str>,
    ) -> Result<Option<SubjectReport>, VaultError> {
        let tenant = tenant.as_str();
        self.audited("subject", Some(tenant), None, |ev| {
            self.subject_in(tenant, input, region, ev)
        })
    }

    fn subject_in(
        &self,
        tenant: &str,
        input: &str,
        region: Option<&str>,
        ev: &mut Event,
    ) -> Result<Option<SubjectReport>, VaultError> {
        let ctx = self.tenant(tenant)?;
        let n = phone::normalize(input, region)?;
        let Some((id, _, body)) = self.lookup_exact(&ctx, &n.e164)? else {
            return Ok(None);
        };
        ev.touch(&id);
        let e164 = E164::from_trusted(body.e164.clone());
        Ok(Some(SubjectReport {
            id: id.to_string(),
            phone: phone::mask(&e164),
            region: body.region.clone(),
            kind: NumberKind::from_index(body.kind).as_str(),
            consents: body.grants.iter().map(ConsentEntry::from).collect(),
            opt_outs: body.opt_outs.iter().map(OptOutEntry::from).collect(),
            receipts: self
                .receipts_of(ctx.row.id, &id)?
                .into_iter()
                .map(|r| ReceiptStatus {
                    withdrawn: r.purposes.iter().any(|p| !body.has_live_consent(p)),
                    receipt: r,
                })
                .collect(),
            created_at: body.created_at,
            updated_at: body.updated_at,
            verified_at: body.verified_at,
            e164,
        }))
    }

    /// Streams the records with a live `share:<partner>` consent to `sink`, with the
    /// partner's pseudonymous id for each. No other consent implies sharing.
    pub fn share(
        &self,
        tenant: &TenantName,
        partner: &str,
        sink: impl FnMut(&str, &Found) -> Result<(), VaultError>,
    ) -> Result<u64, VaultError> {
        let tenant = tenant.as_str();
        let purpose = format!("share:{partner}");
        self.audited("share", Some(tenant), Some(&purpose), |ev| {
            self.share_in(tenant, partner, &purpose, sink, ev)
        })
    }

    fn share_in(
        &self,
        tenant: &str,
        partner: &str,
        purpose: &str,
        mut sink: impl FnMut(&str, &Found) -> Result<(), VaultError>,
        ev: &mut Event,
    ) -> Result<u64, VaultError> {
        let ctx = self.tenant(tenant)?;
        ctx.check_purpose(purpose)?;
        // The oldest key version held keys the pseudonyms, so a partner's ids stay the
        // same across data-key rotations (until that version is destroyed).
        let mac = &ctx
            .keys
            .values()
            .next()
            .ok_or(VaultError::Key(
                phonevault_keys::KeyError::UnknownKeyVersion,
            ))?
            .mac;
        self.for_each_readable(&ctx, purpose, ev, |id, found| {
            sink(&partner_pseudonym(mac, partner, id), found)
        })
    }

    /// Records not verified within `days` (never verified: created more than `days`
    /// ago), in record-id order.
    pub fn stale(&self, tenant: &TenantName, days: u32) -> Result<Vec<Stale>, VaultError> {
        let tenant = tenant.as_str();
        self.audited("stale", Some(tenant), None, |_| self.stale_in(tenant, days))
    }

    fn stale_in(&self, tenant: &str, days: u32) -> Result<Vec<Stale>, VaultError> {
        let ctx = self.tenant(tenant)?;
        let cutoff = self.now().saturating_sub(u64::from(days) * SECONDS_PER_DAY);
        let t = self.now();
        let mut out = Vec::new();
        self.for_each_record(&ctx, |id: RecordId, body| {
            let last = body.verified_at.unwrap_or(body.created_at);
            // Expired records are never returned, purged or not.
            let within = !retention::expired(body, ctx.row.retention_days, t);
            if last <= cutoff && within && !body.suppressed() {
                out.push(Stale {
                    id: id.to_string(),
                    masked: phone::mask(&E164::from_trusted(body.e164.clone())),
                    verified_at: body.verified_at,
                });
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Counts of live records (a live consent, within retention) by country and
    /// type, with small groups suppressed and optional Laplace noise.
    pub fn stats(&self, tenant: &TenantName, q: &StatsQuery) -> Result<Stats, VaultError> {
        let tenant = tenant.as_str();
        self.audited("stats", Some(tenant), None, |_| self.stats_in(tenant, q))
    }

    fn stats_in(&self, tenant: &str, q: &StatsQuery) -> Result<Stats, VaultError> {
        q.validate()?;
        let ctx = self.tenant(tenant)?;
        let t = self.now();
        let mut agg = Aggregator::default();
        self.for_each_record(&ctx, |_, body| {
            let within = !retention::expired(body, ctx.row.retention_days, t);
            if within && body.is_live() {
                agg.add(q, &body.region, NumberKind::from_index(body.kind));
            }
            Ok(())
        })?;
        Ok(agg.finish(q, &mut rand::rngs::OsRng))
    }
}
