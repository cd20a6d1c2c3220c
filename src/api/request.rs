//! The request bodies (and the one query string) of the routes. Every type refuses
//! unknown fields; an optional string or number refuses `null` (absent means the
//! default, as the document says).

use serde::Deserialize;

use super::Shown;
use crate::stats::StatsQuery;
use crate::vault::Target;

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

/// Why a request does not name exactly one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetError {
    /// Neither or both of `phone` and `id`.
    NotExactlyOne,
    /// A region hint with a record id.
    RegionWithId,
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TargetError::NotExactlyOne => "give exactly one of \"phone\" and \"id\"",
            TargetError::RegionWithId => {
                "\"region\" goes with \"phone\" only: a record id needs no region hint"
            }
        })
    }
}

impl std::error::Error for TargetError {}

/// A request that names one record (see [`targeted!`]).
pub trait Targeted {
    /// The record the request names.
    ///
    /// # Errors
    ///
    /// Neither or both of `phone` and `id`, or a region hint with an id.
    fn target(&self) -> Result<Target<'_>, TargetError>;
}

/// A request naming one record by number (`phone`, with an optional `region` hint) or
/// by `id`, and the members of its own. The three members are written into each type
/// (serde's `flatten` does not keep `deny_unknown_fields`).
macro_rules! targeted {
    ($(#[$doc:meta])* $name:ident { $($(#[$m:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$doc])*
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// The number as typed.
            #[serde(default, deserialize_with = "present")]
            pub phone: Option<String>,
            /// Region hint for `phone`.
            #[serde(default, deserialize_with = "present")]
            pub region: Option<String>,
            /// The record id.
            #[serde(default, deserialize_with = "present")]
            pub id: Option<String>,
            $($(#[$m])* pub $field: $ty,)*
        }

        impl Targeted for $name {
            fn target(&self) -> Result<Target<'_>, TargetError> {
                match (&self.phone, &self.id) {
                    (Some(p), None) => Ok(Target::Phone {
                        input: p,
                        region: self.region.as_deref(),
                    }),
                    (None, Some(id)) if self.region.is_none() => Ok(Target::Id(id)),
                    (None, Some(_)) => Err(TargetError::RegionWithId),
                    _ => Err(TargetError::NotExactlyOne),
                }
            }
        }
    };
}

targeted! {
    /// `POST .../erase` and `.../verify`.
    TargetReq {}
}

targeted! {
    /// `POST .../consent/grant`.
    GrantReq {
        /// Purposes consented to.
        purposes: Vec<String>,
        /// Where the consent came from.
        #[serde(default, deserialize_with = "present")]
        source: Option<String>,
        /// Issue a signed consent receipt (tenant admin holding every purpose only).
        #[serde(default)]
        receipt: bool,
    }
}

targeted! {
    /// `POST .../consent/withdraw`.
    WithdrawReq {
        /// The purpose withdrawn.
        purpose: String,
    }
}

targeted! {
    /// `POST .../opt-out`: of one purpose, or of everything (`all`).
    OptOutReq {
        /// The purpose opted out of.
        #[serde(default, deserialize_with = "present")]
        purpose: Option<String>,
        /// Opt out of everything.
        #[serde(default)]
        all: bool,
    }
}

/// `POST .../suppression-lists/{list}/uploads`: nothing to say, a body the document
/// requires all the same (an empty object).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadStartReq {}

/// `POST .../suppression-lists/{list}/uploads/{upload}/rows`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRowsReq {
    /// The numbers, as given (at most `MAX_BATCH_ITEMS`).
    pub phones: Vec<String>,
    /// Region hint for national numbers.
    #[serde(default, deserialize_with = "present")]
    pub region: Option<String>,
}

/// `POST .../suppression-lists/{list}/uploads/{upload}/commit`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadCommitReq {
    /// The purposes the list suppresses.
    pub purposes: Vec<String>,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is the failure report

    use super::*;
    use serde::de::DeserializeOwned;
    use serde_json::Value;
    use std::collections::BTreeSet;

    /// The members a request type takes, as serde lists them when it refuses an unknown
    /// one (the types refuse unknown members, so the list is all of them).
    fn members<T: DeserializeOwned>() -> BTreeSet<String> {
        let Err(e) = serde_json::from_str::<T>(r#"{"\u0001": 0}"#) else {
            panic!("an unknown member was taken");
        };
        let text = e.to_string();
        let Some((_, expected)) = text.split_once(", expected") else {
            assert!(text.contains("there are no fields"), "{text}");
            return BTreeSet::new();
        };
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    /// The members a schema of the document allows: its properties, or those of every
    /// one of its `oneOf` variants.
    fn documented(doc: &Value, schema: &Value) -> BTreeSet<String> {
        let mut s = schema;
        while let Some(r) = s["$ref"].as_str() {
            s = &doc["components"]["schemas"][r.rsplit('/').next().unwrap()];
        }
        let mut out: BTreeSet<String> = s["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        for variant in s["oneOf"].as_array().into_iter().flatten() {
            out.extend(documented(doc, variant));
        }
        out
    }

    /// A request type and the document's request schema of its route take the same
    /// members: the types are the contract, and the document may not drift from it.
    #[test]
    fn every_request_type_takes_the_members_its_document_names() {
        let doc: Value = serde_json::from_str(crate::server::OPENAPI).unwrap();
        let t = "/v1/tenants/{tenant}";
        let bodies: Vec<(String, BTreeSet<String>)> = vec![
            ("/v1/sys/unseal".into(), members::<UnsealReq>()),
            ("/v1/sys/tokens".into(), members::<TokenReq>()),
            (format!("{t}/numbers"), members::<AddReq>()),
            (format!("{t}/numbers/batch"), members::<BatchReq>()),
            (format!("{t}/lookup"), members::<LookupReq>()),
            (format!("{t}/lookup/last4"), members::<Last4Req>()),
            (format!("{t}/consent/grant"), members::<GrantReq>()),
            (format!("{t}/consent/withdraw"), members::<WithdrawReq>()),
            (format!("{t}/opt-out"), members::<OptOutReq>()),
            (format!("{t}/erase"), members::<TargetReq>()),
            (format!("{t}/verify"), members::<TargetReq>()),
            (format!("{t}/stats"), members::<StatsReq>()),
            (
                format!("{t}/suppression-lists/{{list}}/uploads"),
                members::<UploadStartReq>(),
            ),
            (
                format!("{t}/suppression-lists/{{list}}/uploads/{{upload}}/rows"),
                members::<UploadRowsReq>(),
            ),
            (
                format!("{t}/suppression-lists/{{list}}/uploads/{{upload}}/commit"),
                members::<UploadCommitReq>(),
            ),
        ];
        let mut with_body = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let body = &item["post"]["requestBody"]["content"]["application/json"]["schema"];
            // The inbound-SMS webhook takes a provider's body, read by `crate::sms`.
            if !body.is_null() && !path.ends_with("/inbound-sms") {
                with_body.insert(path.clone());
            }
        }
        let typed: BTreeSet<String> = bodies.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(typed, with_body);
        for (path, ours) in &bodies {
            let schema =
                &doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"];
            assert_eq!(ours, &documented(&doc, schema), "POST {path}");
        }
        let batch = &doc["paths"][format!("{t}/numbers/batch")]["post"]["requestBody"]["content"]
            ["application/json"]["schema"]["properties"]["items"]["items"];
        assert_eq!(members::<BatchItem>(), documented(&doc, batch));
        let get = &doc["paths"][format!("{t}/numbers/{{id}}")]["get"]["parameters"];
        let query: BTreeSet<String> = get
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(members::<GetQuery>(), query);
    }
}
