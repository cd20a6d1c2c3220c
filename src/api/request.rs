//! The request bodies (and the one query string) of the routes. Every type refuses
//! unknown fields; an optional string or number refuses `null` (absent means the
//! default, as the document says).

use serde::Deserialize;

use super::Shown;
use crate::stats::StatsQuery;

/// For an optional field: absent is `None`, and `null` is refused as the document says
/// (the field is a string or a number, never null), instead of being read as absent.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// The `source` of a write that names none.
pub const DEFAULT_SOURCE: &str = "api";

/// `POST /v1/sys/unseal`. No `Debug`: it holds the passphrase.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsealReq {
    /// The vault's passphrase.
    pub passphrase: Shown,
}

/// `POST .../numbers`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddReq {
    /// The number as typed.
    pub phone: String,
    /// Region hint for a number without `+`.
    #[serde(default, deserialize_with = "present")]
    pub region: Option<String>,
    /// Purposes consented to.
    pub consents: Vec<String>,
    /// Where the consent came from.
    #[serde(default, deserialize_with = "present")]
    pub source: Option<String>,
}

/// One number of a [`BatchReq`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    /// The number as typed.
    pub phone: String,
    /// Region hint for a number without `+`.
    #[serde(default, deserialize_with = "present")]
    pub region: Option<String>,
    /// Purposes consented to.
    pub consents: Vec<String>,
}

/// `POST .../numbers/batch`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchReq {
    /// The numbers (at most `crate::server::MAX_BATCH_ITEMS`).
    pub items: Vec<BatchItem>,
    /// Where the consents came from.
    #[serde(default, deserialize_with = "present")]
    pub source: Option<String>,
}

/// `POST .../lookup`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupReq {
    /// The number as typed.
    pub phone: String,
    /// Region hint for a number without `+`.
    #[serde(default, deserialize_with = "present")]
    pub region: Option<String>,
    /// The purpose the number is read for.
    pub purpose: String,
    /// Answer the number itself instead of its masked form.
    #[serde(default)]
    pub reveal: bool,
}

/// `POST .../lookup/last4`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Last4Req {
    /// Country calling code.
    pub country_code: u16,
    /// The number's last four digits.
    pub last4: String,
    /// The purpose the numbers are read for.
    pub purpose: String,
    /// Refused: a search never reveals (kept so that the refusal is the policy's).
    #[serde(default)]
    pub reveal: bool,
}

/// The query string of `GET .../numbers/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    /// The purpose the record is read for.
    pub purpose: String,
    /// Answer the number itself instead of its masked form.
    #[serde(default)]
    pub reveal: bool,
}

/// `POST .../erase` and `.../verify`: a record named by number (with an optional region
/// hint) or by id.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetReq {
    /// The number as typed.
    #[serde(default, deserialize_with = "present")]
    pub phone: Option<String>,
    /// Region hint for `phone`.
    #[serde(default, deserialize_with = "present")]
    pub region: Option<String>,
    /// The record id.
    #[serde(default, deserialize_with = "present")]
    pub id: Option<String>,
}

/// `POST .../consent/grant`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantReq {
    /// The number as typed.
    #[serde(default, deserialize_with = "present")]
    pub phone: Option<String>,
    /// Region hint for `phone`.
    #[serde(default, deserialize_with = "present")]
    pub region: Option<String>,
    /// The record id.
    #[serde(default, deserialize_with = "present")]
    pub id: Option<String>,
    /// Purposes consented to.
    pub purposes: Vec<String>,
    /// Where the consent came from.
    #[serde(default, deserialize_with = "present")]
    pub source: Option<String>,
    /// Issue a signed consent receipt (tenant admin holding every purpose only).
    #[serde(default)]
    pub receipt: bool,
}

/// `POST .../consent/withdraw`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawReq {
    /// The number as typed.
    #[serde(default, deserialize_with = "present")]
    pub phone: Option<String>,
    /// Region hint for `phone`.
    #[serde(default, deserialize_with = "present")]
    pub region: Option<String>,
    /// The record id.
    #[serde(default, deserialize_with = "present")]
    pub id: Option<String>,
    /// The purpose withdrawn.
    pub purpose: String,
}

/// `POST .../opt-out`: of one purpose, or of everything (`all`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptOutReq {
    /// The number as typed.
    #[serde(default, deserialize_with = "present")]
    pub phone: Option<String>,
    /// Region hint for `phone`.
    #[serde(default, deserialize_with = "present")]
    pub region: Option<String>,
    /// The record id.
    #[serde(default, deserialize_with = "present")]
    pub id: Option<String>,
    /// The purpose opted out of.
    #[serde(default, deserialize_with = "present")]
    pub purpose: Option<String>,
    /// Opt out of everything.
    #[serde(default)]
    pub all: bool,
}

/// `POST .../stats`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsReq {
    /// Group by country.
    #[serde(default = "yes")]
    pub by_country: bool,
    /// Group by number type.
    #[serde(default)]
    pub by_type: bool,
    /// The smallest group published.
    #[serde(default = "default_min_group")]
    pub min_group: u64,
    /// Privacy budget: add Laplace noise of scale 1/epsilon.
    #[serde(default, deserialize_with = "present")]
    pub epsilon: Option<f64>,
}

impl StatsReq {
    /// The statistics query the request asks for.
    pub fn query(&self) -> StatsQuery {
        StatsQuery {
            by_country: self.by_country,
            by_type: self.by_type,
            min_group: self.min_group,
            epsilon: self.epsilon,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_min_group() -> u64 {
    10
}

/// `POST /v1/sys/tokens`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenReq {
    /// The tenant the token is bound to; none for a vault-wide token.
    #[serde(default, deserialize_with = "present")]
    pub tenant: Option<String>,
    /// `admin`, `writer`, `reader`, `auditor` or `inbound`.
    pub role: String,
    /// The purposes it may use (none: every purpose).
    #[serde(default)]
    pub purposes: Vec<String>,
    /// Whether it may reveal numbers.
    #[serde(default)]
    pub reveal: bool,
    /// Lifetime such as `30d`, `12h`, `45m` or `90s`.
    #[serde(default, deserialize_with = "present")]
    pub ttl: Option<String>,
}
