//! The request bodies (and the one query string) of the routes. Every type refuses
//! unknown fields; an optional string or number refuses `null` (absent means the
//! default, as the document says).

use serde::Deserialize;
use utoipa::ToSchema;

use super::openapi::{Phone, Purpose, RecordId, Region, Source};
use super::Shown;
use crate::policy::ValueError;
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

/// For an integer field: a JSON number that is a whole number in the type's range,
/// written `44` or `44.0`. JSON Schema (the document's OpenAPI 3.1 dialect) counts
/// `44.0` an integer, so the request types take it as one; a fraction, or a number out
/// of range, is refused (without repeating it).
fn whole<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct Whole;
    impl serde::de::Visitor<'_> for Whole {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Option<u64>, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Option<u64>, E> {
            Ok(u64::try_from(v).ok())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Option<u64>, E> {
            // 2^64 is the first float past u64::MAX; below it a whole float converts
            // exactly.
            let whole = v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked above
            Ok(whole.then_some(v as u64))
        }
    }
    match d.deserialize_any(Whole)? {
        Some(n) => T::try_from(n).map_err(|_| {
            serde::de::Error::custom("invalid value: expected a whole number in range")
        }),
        None => Err(serde::de::Error::custom(
            "invalid value: expected a whole number in range",
        )),
    }
}

/// The `source` of a write that names none.
pub const DEFAULT_SOURCE: &str = "api";

/// The `source` of a write (`AddReq`, `BatchReq`, `GrantReq`): the one it names, or
/// [`DEFAULT_SOURCE`].
///
/// # Errors
/// [`ValueError::Source`] for a source of the wrong form.
pub fn source_or_default(given: Option<&str>) -> Result<crate::policy::Source, ValueError> {
    crate::policy::Source::parse(given.unwrap_or(DEFAULT_SOURCE))
}

/// `POST /v1/sys/unseal`.
// No `Debug`: it holds the passphrase.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsealReq {
    /// The vault's passphrase.
    #[schema(value_type = String, min_length = 1)]
    pub passphrase: Shown,
}

/// `POST .../numbers`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Add)]
pub struct AddReq {
    /// The number as typed.
    #[schema(value_type = Phone)]
    pub phone: String,
    /// Region hint for a number without `+`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Region>, nullable = false)]
    pub region: Option<String>,
    /// Purposes consented to.
    #[schema(value_type = Vec<Purpose>, min_items = 1)]
    pub consents: Vec<String>,
    /// Where the consent came from.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Source>, nullable = false)]
    pub source: Option<String>,
}

/// One number of a [`BatchReq`].
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    /// The number as typed (as `Phone`: an invalid number makes the item an error,
    /// `invalid_phone`, and the batch still answers 200).
    pub phone: String,
    /// Region hint for a number without `+` (as `Region`: an unknown one makes the item
    /// an error).
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub region: Option<String>,
    /// Purposes consented to: ones the token may use (else 403 for the whole batch); an
    /// empty list or an undeclared purpose makes the item an error.
    pub consents: Vec<String>,
}

/// `POST .../numbers/batch`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Batch)]
pub struct BatchReq {
    /// The numbers: at most `crate::server::MAX_BATCH_ITEMS` (more: 400
    /// `invalid_argument`); what is wrong with an item is answered in its result, not by
    /// refusing the batch.
    #[schema(max_items = 10000)]
    pub items: Vec<BatchItem>,
    /// Where the consents came from.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Source>, nullable = false)]
    pub source: Option<String>,
}

/// `POST .../lookup`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Lookup)]
pub struct LookupReq {
    /// The number as typed.
    #[schema(value_type = Phone)]
    pub phone: String,
    /// Region hint for a number without `+`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Region>, nullable = false)]
    pub region: Option<String>,
    /// The purpose the number is read for.
    #[schema(value_type = Purpose)]
    pub purpose: String,
    /// Answer the number itself instead of its masked form.
    #[serde(default)]
    pub reveal: bool,
}

/// `POST .../lookup/last4`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Last4)]
pub struct Last4Req {
    /// Country calling code, e.g. 44.
    #[serde(deserialize_with = "whole")]
    #[schema(minimum = 1, maximum = 999)]
    pub country_code: u16,
    /// The number's last four digits.
    #[schema(pattern = "^[0-9]{4}$")]
    pub last4: String,
    /// The purpose the numbers are read for.
    #[schema(value_type = Purpose)]
    pub purpose: String,
    /// Refused: a search never reveals (kept so that the refusal is the policy's).
    #[serde(default)]
    pub reveal: bool,
}

/// The query string of `GET .../numbers/{id}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetQuery {
    /// The purpose the record is read for.
    #[param(value_type = Purpose)]
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
    /// A record id not of the vault's form.
    InvalidRecordId,
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TargetError::NotExactlyOne => "give exactly one of \"phone\" and \"id\"",
            TargetError::RegionWithId => {
                "\"region\" goes with \"phone\" only: a record id needs no region hint"
            }
            TargetError::InvalidRecordId => "invalid record id: expected 32 hexadecimal characters",
        })
    }
}

impl std::error::Error for TargetError {}

/// A request that names one record (see the `targeted!` macro below).
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
        #[derive(Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        $(#[$doc])*
        pub struct $name {
            /// The number as typed.
            #[serde(default, deserialize_with = "present")]
            #[schema(value_type = Option<Phone>, nullable = false)]
            pub phone: Option<String>,
            /// Region hint for `phone`.
            #[serde(default, deserialize_with = "present")]
            #[schema(value_type = Option<Region>, nullable = false)]
            pub region: Option<String>,
            /// The record id.
            #[serde(default, deserialize_with = "present")]
            #[schema(value_type = Option<RecordId>, nullable = false)]
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
                    (None, Some(id)) if self.region.is_none() => {
                        crate::record::RecordId::parse(id)
                            .map(Target::Id)
                            .ok_or(TargetError::InvalidRecordId)
                    }
                    (None, Some(_)) => Err(TargetError::RegionWithId),
                    _ => Err(TargetError::NotExactlyOne),
                }
            }
        }
    };
}

targeted! {
    /// `POST .../erase` and `.../verify`.
    #[schema(as = Target)]
    TargetReq {}
}

targeted! {
    /// `POST .../consent/grant`: grant consents to a record, or to a number (which adds
    /// its record if it is new).
    #[schema(as = Grant)]
    GrantReq {
        /// Purposes consented to.
        #[schema(value_type = Vec<Purpose>, min_items = 1)]
        purposes: Vec<String>,
        /// Where the consent came from.
        #[serde(default, deserialize_with = "present")]
        #[schema(value_type = Option<Source>, nullable = false)]
        source: Option<String>,
        /// Issue a signed consent receipt (answered in `receipt`); only for a tenant admin
        /// holding every purpose (403 for any other token, since a receipt names the
        /// record id); 400 `invalid_argument` when the tenant has no controller details
        /// (`phonevault tenant set-receipt`).
        #[serde(default)]
        receipt: bool,
    }
}

targeted! {
    /// `POST .../consent/withdraw`.
    #[schema(as = Withdraw)]
    WithdrawReq {
        /// The purpose withdrawn.
        #[schema(value_type = Purpose)]
        purpose: String,
    }
}

targeted! {
    /// `POST .../opt-out`: of one purpose, or of everything (`all`).
    #[schema(as = OptOut)]
    OptOutReq {
        /// The purpose opted out of.
        #[serde(default, deserialize_with = "present")]
        #[schema(value_type = Option<Purpose>, nullable = false)]
        purpose: Option<String>,
        /// Opt out of everything.
        #[serde(default)]
        all: bool,
    }
}

/// `POST .../suppression-lists/{list}/uploads`: nothing to say, a body the document
/// requires all the same (an empty object).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UploadStart)]
pub struct UploadStartReq {}

/// `POST .../suppression-lists/{list}/uploads/{upload}/rows`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UploadRows)]
pub struct UploadRowsReq {
    /// The numbers, as given (at most `MAX_BATCH_ITEMS`).
    #[schema(max_items = 10000)]
    pub phones: Vec<String>,
    /// Region hint for national numbers.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Region>, nullable = false)]
    pub region: Option<String>,
}

/// `POST .../suppression-lists/{list}/uploads/{upload}/commit`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UploadCommit)]
pub struct UploadCommitReq {
    /// The purposes the list suppresses.
    #[schema(value_type = Vec<Purpose>, min_items = 1)]
    pub purposes: Vec<String>,
}

/// `POST .../stats`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = StatsRequest)]
pub struct StatsReq {
    /// Group by country.
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub by_country: bool,
    /// Group by number type.
    #[serde(default)]
    #[schema(default = false)]
    pub by_type: bool,
    /// The smallest group published.
    #[serde(default = "default_min_group", deserialize_with = "whole")]
    #[schema(default = 10, minimum = 2, maximum = 18446744073709551615_u64)]
    pub min_group: u64,
    /// Privacy budget: add Laplace noise of scale 1/epsilon; omit for exact counts.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, exclusive_minimum = 0)]
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
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TokenRequest)]
pub struct TokenReq {
    /// The tenant the token is bound to; none for a vault-wide token.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, pattern = "^[a-z0-9._:-]{1,64}$")]
    pub tenant: Option<String>,
    /// `admin`, `writer`, `reader`, `auditor` or `inbound`.
    pub role: String,
    /// The purposes it may use (none: every purpose of the tenant).
    #[serde(default)]
    #[schema(value_type = Vec<Purpose>)]
    pub purposes: Vec<String>,
    /// Whether it may reveal numbers.
    #[serde(default)]
    pub reveal: bool,
    /// Lifetime such as `30d`, `12h`, `45m` or `90s`.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, pattern = "^0{0,10}[1-9][0-9]{0,9}[dhms]$")]
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

    /// The schema `schema` refers to (itself when it is no reference).
    fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
        let mut s = schema;
        while let Some(r) = s["$ref"].as_str() {
            s = &doc["components"]["schemas"][r.rsplit('/').next().unwrap()];
        }
        s
    }

    /// The members a schema of the document allows: its properties, or those of every
    /// one of its `oneOf` variants.
    fn documented(doc: &Value, schema: &Value) -> BTreeSet<String> {
        let s = resolve(doc, schema);
        let mut out: BTreeSet<String> = s["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        for variant in s["oneOf"].as_array().into_iter().flatten() {
            out.extend(documented(doc, variant));
        }
        out
    }

    /// Found by schemathesis once the document was OpenAPI 3.1: JSON Schema counts `44.0`
    /// an integer, and the integer fields refused it.
    #[test]
    fn an_integer_field_takes_a_whole_float_and_nothing_else() {
        let last4 = |n: &str| {
            serde_json::from_str::<Last4Req>(&format!(
                r#"{{"country_code": {n}, "last4": "1234", "purpose": "otp"}}"#
            ))
            .map(|r| r.country_code)
        };
        assert_eq!(last4("44").unwrap(), 44);
        assert_eq!(last4("44.0").unwrap(), 44);
        for bad in ["44.5", "-1", "65536", "1e300", "\"44\""] {
            let e = last4(bad).err().unwrap().to_string();
            assert!(!e.contains("44.5") && !e.contains("65536"), "{e}");
        }
        let stats = |n: &str| {
            serde_json::from_str::<StatsReq>(&format!(r#"{{"min_group": {n}}}"#))
                .map(|r| r.min_group)
        };
        assert_eq!(stats("907566.0").unwrap(), 907_566);
        assert_eq!(stats("18446744073709551615").unwrap(), u64::MAX);
        assert!(stats("18446744073709551616.0").is_err());
        assert_eq!(
            serde_json::from_str::<StatsReq>("{}").unwrap().min_group,
            10
        );
    }

    /// A request type and the document's request schema of its route take the same
    /// members: the types are the contract, and the document may not drift from it.
    #[test]
    fn every_request_type_takes_the_members_its_document_names() {
        let doc: Value = serde_json::from_str(&crate::server::OPENAPI).unwrap();
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
            ["application/json"]["schema"];
        let batch = &resolve(&doc, batch)["properties"]["items"]["items"];
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
