//! Values from the command line and from JSON bodies, parsed once at the edge.
//!
//! Every parser is total (any `&str` gives a value or an error, never a panic) and no
//! error repeats its input: the input may be a phone number or a passphrase typed
//! into the wrong field. Property tests below check both over arbitrary strings.

use crate::record::RecordId;

/// Longest name (tenant, purpose) accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Why a value was refused. No variant holds the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// A tenant name or purpose of the wrong form.
    #[error("invalid {what}: use 1-64 characters from a-z, 0-9, '-', '_', '.', ':' ")]
    InvalidName {
        /// Which kind of name.
        what: &'static str,
    },
    /// A consent source of the wrong form.
    #[error("invalid source: use 1-128 printable ASCII characters, without quotes or backslashes")]
    Source,
    /// A purpose the tenant did not declare, named by its position in the request.
    #[error("purpose number {position} of the request is not declared by the tenant: declared purposes are {declared}")]
    UndeclaredPurpose {
        /// 1-based position among the purposes the request names.
        position: usize,
        /// The tenant's declared purposes.
        declared: String,
    },
    /// A duration not of the form `30d`, `12h`, `45m`, `90s`.
    #[error(
        "invalid duration: use a positive whole number and one unit, e.g. 30d, 12h, 45m or 90s"
    )]
    Duration,
    /// A time not in any accepted form.
    #[error(
        "invalid time: use RFC 3339 (2026-11-28T09:00:00Z), a date (2026-11-28) or unix seconds"
    )]
    Time,
    /// A record id not of the vault's form.
    #[error("invalid record id: expected 32 hexadecimal characters")]
    RecordId,
    /// Not exactly four digits.
    #[error("the last-4 search takes exactly four digits (0-9)")]
    Last4,
    /// Not a country calling code.
    #[error("invalid country calling code: give 1 to 3 digits without '+', e.g. 44")]
    CountryCode,
    /// Not a known region code.
    #[error("unknown region: give a two-letter ISO 3166 region code such as GB or US")]
    Region,
    /// An unknown role.
    #[error("unknown role: use admin, writer, reader, auditor or inbound")]
    Role,
}

/// For a string newtype whose only constructor is its `parse`: the string (`as_str`,
/// `Display`) and `FromStr` through `parse`, so clap and `str::parse` check it too.
macro_rules! parsed_string {
    ($t:ident) => {
        impl $t {
            /// The value, as given.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $t {
            type Err = ValueError;

            fn from_str(s: &str) -> Result<Self, ValueError> {
                $t::parse(s)
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

parsed_string!(TenantName);
parsed_string!(Source);

/// A tenant name of the accepted form (1-64 characters of `[a-z0-9._:-]`), parsed at
/// the edge (a command-line value, a path segment, a JSON field) and taken by the
/// vault's methods, which do not check its form again.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TenantName(String);

impl TenantName {
    /// Checks the form of a tenant name (not whether the tenant exists).
    ///
    /// # Errors
    /// [`ValueError::InvalidName`].
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        check_name("tenant name", s)?;
        Ok(TenantName(s.to_owned()))
    }
}

/// A tenant name the test writes out, known to be of the form.
#[cfg(test)]
#[allow(clippy::expect_used)] // a test's own constant
pub(crate) fn tenant(s: &str) -> TenantName {
    TenantName::parse(s).expect("a tenant name of the accepted form")
}

/// Longest consent source accepted.
pub const MAX_SOURCE_LEN: usize = 128;

/// Where a consent came from (`web`, `crm-2026-11`, `sms:+447700900123`): 1-128
/// printable ASCII characters without a quote or a backslash, so that it prints as it
/// is in a report, a receipt and a log line. Parsed at the edge (a command-line value,
/// a JSON field) and taken by the vault's methods, which do not check its form again.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Source(String);

impl Source {
    /// Checks the form of a consent source.
    ///
    /// # Errors
    /// [`ValueError::Source`].
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let ok = !s.is_empty()
            && s.len() <= MAX_SOURCE_LEN
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
        if ok {
            Ok(Source(s.to_owned()))
        } else {
            Err(ValueError::Source)
        }
    }
}

/// A consent source the test writes out, known to be of the form.
#[cfg(test)]
#[allow(clippy::expect_used)] // a test's own constant
pub(crate) fn source(s: &str) -> Source {
    Source::parse(s).expect("a consent source of the accepted form")
}

/// Checks a name (tenant, purpose): 1-64 characters of `[a-z0-9._:-]`.
///
/// # Errors
/// [`ValueError::InvalidName`] naming `what`.
pub fn check_name(what: &'static str, name: &str) -> Result<(), ValueError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.' | b':')
        });
    if ok {
        Ok(())
    } else {
        Err(ValueError::InvalidName { what })
    }
}

/// Parses a duration such as `30d`, `12h`, `45m` or `90s` into seconds (at least 1).
///
/// # Errors
/// [`ValueError::Duration`] for anything else, including a unit that is not ASCII
/// and an overflow.
pub fn parse_duration(s: &str) -> Result<u64, ValueError> {
    let bytes = s.as_bytes();
    // Splitting by bytes, not at `len - 1`: the last character may be multi-byte.
    let Some((&unit, digits)) = bytes.split_last() else {
        return Err(ValueError::Duration);
    };
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ValueError::Duration);
    }
    let mult: u64 = match unit {
        b'd' => 86_400,
        b'h' => 3_600,
        b'm' => 60,
        b's' => 1,
        _ => return Err(ValueError::Duration),
    };
    let n = digits
        .iter()
        .try_fold(0u64, |acc, &d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or(ValueError::Duration)?;
    match n.checked_mul(mult) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(ValueError::Duration),
    }
}

/// The latest time accepted: 9999-12-31T23:59:59Z.
pub const MAX_TIME: u64 = 253_402_300_799;

/// Parses RFC 3339, `YYYY-MM-DD` (midnight UTC) or unix seconds (digits only, at
/// most [`MAX_TIME`]).
///
/// # Errors
/// [`ValueError::Time`].
pub fn parse_time(s: &str) -> Result<u64, ValueError> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    if s.len() > 64 {
        return Err(ValueError::Time);
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        // Unix seconds up to the end of year 9999, so that every accepted time prints
        // as a date (a phone number typed here is no time and is not echoed).
        return match s.parse::<u64>() {
            Ok(n) if n <= MAX_TIME => Ok(n),
            _ => Err(ValueError::Time),
        };
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return u64::try_from(t.unix_timestamp()).map_err(|_| ValueError::Time);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, &fmt) {
        let t = d.midnight().assume_utc().unix_timestamp();
        return u64::try_from(t).map_err(|_| ValueError::Time);
    }
    Err(ValueError::Time)
}

/// Parses a record id (32 hexadecimal characters).
///
/// # Errors
/// [`ValueError::RecordId`].
pub fn parse_record_id(s: &str) -> Result<RecordId, ValueError> {
    RecordId::parse(s).ok_or(ValueError::RecordId)
}

/// Parses the digits of a last-4 search: exactly four ASCII digits.
///
/// # Errors
/// [`ValueError::Last4`].
pub fn parse_last4(s: &str) -> Result<&str, ValueError> {
    if s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s)
    } else {
        Err(ValueError::Last4)
    }
}

/// Checks a country calling code (1-999).
///
/// # Errors
/// [`ValueError::CountryCode`].
pub fn parse_country_code(cc: u64) -> Result<u16, ValueError> {
    match u16::try_from(cc) {
        Ok(c) if (1..=999).contains(&c) => Ok(c),
        _ => Err(ValueError::CountryCode),
    }
}

/// Checks a region hint against libphonenumber's regions.
///
/// # Errors
/// [`ValueError::Region`].
pub fn parse_region(s: &str) -> Result<&str, ValueError> {
    if s.len() > 3 || !s.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(ValueError::Region);
    }
    match crate::phone::normalize("+1 202 555 0100", Some(s)) {
        Ok(_) => Ok(s),
        Err(_) => Err(ValueError::Region),
    }
}

/// Parses a role name.
///
/// # Errors
/// [`ValueError::Role`].
pub fn parse_role(s: &str) -> Result<super::Role, ValueError> {
    super::Role::parse(s).ok_or(ValueError::Role)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Found by review (issue 13): `token create --ttl 5é` split the string inside
    /// the `é` and panicked.
    #[test]
    fn a_multibyte_unit_is_an_error_not_a_panic() {
        for s in [
            "5é",
            "é",
            "1日",
            "10\u{10FFFF}",
            "",
            "d",
            "0d",
            "5y",
            "-5d",
            "+5d",
        ] {
            assert_eq!(parse_duration(s), Err(ValueError::Duration), "{s:?}");
        }
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("45m"), Ok(2_700));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(
            parse_duration("99999999999999999999d"),
            Err(ValueError::Duration)
        );
    }

    #[test]
    fn fixed_forms() {
        assert_eq!(parse_last4("0958"), Ok("0958"));
        for s in ["958", "09580", "ab12", "٠١٢٣", "+447"] {
            assert_eq!(parse_last4(s), Err(ValueError::Last4), "{s:?}");
        }
        assert_eq!(parse_country_code(44), Ok(44));
        assert!(parse_country_code(0).is_err() && parse_country_code(1000).is_err());
        assert_eq!(parse_region("GB"), Ok("GB"));
        assert!(parse_region("XX").is_err() && parse_region("+447700900123").is_err());
        assert_eq!(parse_time("2026-11-28"), Ok(1_795_824_000));
        assert_eq!(parse_time("2026-11-28T00:00:00Z"), Ok(1_795_824_000));
        assert!(parse_time("yesterday").is_err());
        // Found by tests/surface.rs: `audit report --since +447700900123` took the
        // number for unix seconds and printed it back.
        assert!(parse_time("+447700900123").is_err() && parse_time("447700900123").is_err());
        assert_eq!(parse_time("253402300799"), Ok(MAX_TIME));
        assert!(TenantName::parse("shop").is_ok());
        assert!(TenantName::parse("Shop").is_err() && TenantName::parse("").is_err());
        assert!(parse_record_id(&"ab".repeat(16)).is_ok());
        assert!(parse_record_id(&"é".repeat(16)).is_err());
        assert!(parse_role("reader").is_ok() && parse_role("+447700900123").is_err());
    }

    #[test]
    fn sources_are_printable_ascii_without_quotes_or_backslashes() {
        let longest = "x".repeat(MAX_SOURCE_LEN);
        for s in [
            "web",
            "cli",
            "crm-2026-11",
            "sms:+447700900123",
            "https://example.com/signup?a=1&b=2",
            "!#$%&'()*+,-./:;<=>?@[]^_`{|}~",
            "CRM_Import.2026",
            &longest,
        ] {
            let parsed = Source::parse(s);
            assert_eq!(parsed.as_ref().map(Source::as_str), Ok(s), "{s:?}");
            assert_eq!(s.parse::<Source>(), parsed, "{s:?}");
            assert_eq!(parsed.map(|p| p.to_string()), Ok(s.to_owned()), "{s:?}");
        }
        let too_long = "x".repeat(MAX_SOURCE_LEN + 1);
        for s in [
            "",
            "crm 2026",
            " web",
            "web\n",
            "a\tb",
            "crm \"2026\"",
            "\"",
            "back\\slash",
            "café",
            "\u{7f}",
            "\0",
            &too_long,
        ] {
            assert_eq!(Source::parse(s), Err(ValueError::Source), "{s:?}");
        }
        assert_eq!(
            serde_json::to_string(&source("web")).ok().as_deref(),
            Some("\"web\"")
        );
    }

    /// Every error of every parser, checked not to hold its input.
    fn errors_of(s: &str) -> Vec<String> {
        let declared = ["otp".to_owned()];
        [
            parse_duration(s).err(),
            parse_time(s).err(),
            parse_record_id(s).err(),
            parse_last4(s).err(),
            parse_region(s).err(),
            parse_role(s).err(),
            TenantName::parse(s).err(),
            Source::parse(s).err(),
            check_name("purpose", s).err(),
            super::super::Purpose::declared(&declared, s, 0).err(),
            s.parse::<u64>()
                .ok()
                .and_then(|n| parse_country_code(n).err()),
        ]
        .into_iter()
        .flatten()
        .map(|e| e.to_string())
        .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parsers_are_total_and_never_repeat_digits(s in "\\PC{0,40}") {
            let digits: String = s.chars().filter(char::is_ascii_digit).collect();
            for m in errors_of(&s) {
                if digits.len() >= 5 {
                    prop_assert!(!m.contains(&digits), "{m:?} repeats {s:?}");
                }
            }
        }

        #[test]
        fn phone_numbers_in_any_field_stay_out_of_errors(n in 1_000_000_000u64..99_999_999_999, plus in any::<bool>()) {
            let s = if plus { format!("+{n}") } else { n.to_string() };
            for m in errors_of(&s) {
                prop_assert!(!m.contains(&n.to_string()), "{m:?}");
            }
        }

        #[test]
        fn durations_round_trip(n in 1u64..1_000_000, unit in prop::sample::select(vec![('d', 86_400u64), ('h', 3_600), ('m', 60), ('s', 1)])) {
            prop_assert_eq!(parse_duration(&format!("{n}{}", unit.0)), Ok(n * unit.1));
        }

        #[test]
        fn near_durations_never_panic(s in "[0-9]{0,22}\\PC{0,2}") {
            let _ = parse_duration(&s);
        }
    }
}
