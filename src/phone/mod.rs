//! Phone-number normalization: turns what a user typed into an E.164 number, or says why not.
//!
//! Which API serves which task:
//! - [`normalize`] parses one input (E.164, international or national format, `tel:` URIs,
//!   international dialling prefixes, extensions, Unicode digits and separators) and validates
//!   it strictly against libphonenumber metadata. The result holds the number as an [`E164`],
//!   a secret type.
//! - [`report`] is the same answer as plain data for `phonevault normalize --jsonl`.
//! - [`mask`] renders an [`E164`] for logs and terminals without revealing it.
//! - [`metadata_version`] names the libphonenumber metadata release that decided validity;
//!   it is recorded next to blind indexes, because a metadata update can change the E.164 form
//!   (and so the index) of some inputs.
//! - [`PhoneMetadata`] is one set of libphonenumber metadata: the release vendored in this
//!   crate (the default), the older one compiled into the `phonenumber` crate, or an operator's
//!   newer `PhoneNumberMetadata.xml` ([`PhoneMetadata::load`]); [`install`] makes one the
//!   process's metadata before the first number is parsed.
//!
//! ```
//! use phonevault::phone::{mask, normalize, NumberKind};
//!
//! let n = normalize("07400 123456", Some("GB")).map_err(|e| e.code());
//! let n = n.unwrap_or_else(|code| panic!("rejected: {code}"));
//! assert_eq!(n.e164.expose_secret(), "+447400123456");
//! assert_eq!(n.region, Some("GB"));
//! assert_eq!(n.kind, NumberKind::Mobile);
//! assert_eq!(mask(&n.e164), "+44 ••• ••• 3456");
//! ```
//!
//! # How it relates to libphonenumber and the `phonenumber` crate
//!
//! The parsing rules are a port of libphonenumber's `parse` + `isValidNumber` +
//! `getNumberType`, run over libphonenumber's own `PhoneNumberMetadata.xml` (vendored here,
//! newer than the release compiled into the `phonenumber` crate), read by the crate's loader.
//! The crate's own parser and validator are not used, for two reasons:
//! - its validator accepts numbers whose national number only *starts* like a valid one
//!   (`+376312345534` passes); here every pattern must match the whole national number and its
//!   length must be one the metadata lists;
//! - its regexes live in one shared LRU cache of 100 entries, which a mixed-country list
//!   thrashes (about 1.2 ms per number). Here every pattern is compiled once, on first use, and
//!   kept; the shared cache is also enlarged once, for any other user of the crate.
//!
//! Before parsing, Unicode is folded: every Unicode decimal digit (general category Nd) becomes
//! its ASCII digit; space separators (Zs) become a space; Unicode dashes become `-`; full-width
//! `+ ( ) [ ] . / ~` become ASCII. This accepts a few separators libphonenumber does not (thin
//! and other Zs spaces, U+FE58, U+FE63), never different digits.
//!
//! # Security
//!
//! A plaintext phone number is a secret: [`E164`] has no `Clone`, `Display` or `Serialize`,
//! its `Debug` prints only the type name, and it is zeroized on drop. Working copies made while
//! parsing are zeroized too. Error messages never contain the input.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Once, OnceLock};

use phonenumber::metadata::{Database, Descriptor, Metadata};
use zeroize::{Zeroize, Zeroizing};

mod metadata;
pub use metadata::{install, InstallError, MetadataChange, MetadataError, PhoneMetadata};

/// Inputs longer than this many characters are rejected before any parsing (libphonenumber's
/// limit).
pub const MAX_INPUT_CHARS: usize = 250;

/// Shortest and longest national significant number libphonenumber will parse.
const MIN_NSN: usize = 2;
const MAX_NSN: usize = 17;

/// Capacity given to the `phonenumber` crate's shared regex cache (when its compiled-in
/// metadata is used): about 1,800 distinct patterns; the default of 100 makes it recompile on
/// nearly every call.
const CRATE_REGEX_CACHE_CAPACITY: usize = 4096;

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// A normalized phone number in E.164 form (`+` and up to 15 digits).
///
/// # Security
///
/// Secret: zeroized on drop, no `Clone`/`Display`/`Serialize`, and `Debug` prints only the
/// type name. Read it with [`E164::expose_secret`].
pub struct E164(String);

impl E164 {
    /// The number, e.g. `+447400123456`.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Wraps a value that was normalized before, e.g. one decrypted from the vault. It is not
    /// re-validated.
    pub fn from_trusted(s: String) -> E164 {
        E164(s)
    }

    /// The country calling code, read from the leading digits with the metadata's list of
    /// assigned codes; `None` if the value does not start with `+` and an assigned code.
    pub fn country_code(&self) -> Option<u16> {
        let digits = self.0.strip_prefix('+')?;
        split_country_code(metadata::active().tables(), digits).map(|(cc, _)| cc)
    }

    /// The last four characters (fewer if the value is shorter).
    pub fn last4(&self) -> &str {
        match self.0.char_indices().rev().nth(3) {
            Some((i, _)) => &self.0[i..],
            None => &self.0,
        }
    }
}

impl Drop for E164 {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("E164").finish_non_exhaustive()
    }
}

/// The result of [`normalize`]: a valid number and what the metadata says about it.
pub struct Normalized {
    /// The number in E.164 form (secret).
    pub e164: E164,
    /// The country calling code, e.g. 44.
    pub country_code: u16,
    /// ISO 3166 region the number belongs to, e.g. `"GB"`; `None` for non-geographic codes
    /// (+800, +808, +870, +878, +881, +882, +883, +888, +979).
    pub region: Option<&'static str>,
    /// The kind of line, by libphonenumber's classification.
    pub kind: NumberKind,
    /// True when the input carried an extension, which was discarded.
    pub extension_dropped: bool,
}

impl fmt::Debug for Normalized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Normalized")
            .field("e164", &self.e164)
            .field("region", &self.region)
            .field("kind", &self.kind)
            .field("extension_dropped", &self.extension_dropped)
            .finish_non_exhaustive()
    }
}

/// Kind of line, as libphonenumber's `PhoneNumberType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NumberKind {
    /// Geographic fixed line.
    FixedLine,
    /// Mobile.
    Mobile,
    /// The metadata cannot tell fixed line from mobile (e.g. the US).
    FixedLineOrMobile,
    /// Free to the caller.
    TollFree,
    /// Charged above the normal rate.
    PremiumRate,
    /// Cost shared between caller and recipient.
    SharedCost,
    /// Voice over IP.
    Voip,
    /// Personal number, routed to another line.
    PersonalNumber,
    /// Pager.
    Pager,
    /// Universal access number (company number routed to offices).
    Uan,
    /// Voicemail access.
    Voicemail,
    /// Not classified (never the kind of a valid [`Normalized`]).
    Unknown,
}

impl NumberKind {
    /// Every kind, in the order of their stored index (`kind as u8`); the order is
    /// part of the record format.
    pub const ALL: [NumberKind; 12] = [
        NumberKind::FixedLine,
        NumberKind::Mobile,
        NumberKind::FixedLineOrMobile,
        NumberKind::TollFree,
        NumberKind::PremiumRate,
        NumberKind::SharedCost,
        NumberKind::Voip,
        NumberKind::PersonalNumber,
        NumberKind::Pager,
        NumberKind::Uan,
        NumberKind::Voicemail,
        NumberKind::Unknown,
    ];

    /// The kind of a stored index; `Unknown` for an index no kind has.
    pub fn from_index(i: u8) -> NumberKind {
        NumberKind::ALL
            .get(usize::from(i))
            .copied()
            .unwrap_or(NumberKind::Unknown)
    }

    /// libphonenumber's name for the kind: `"FIXED_LINE"`, `"MOBILE"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            NumberKind::FixedLine => "FIXED_LINE",
            NumberKind::Mobile => "MOBILE",
            NumberKind::FixedLineOrMobile => "FIXED_LINE_OR_MOBILE",
            NumberKind::TollFree => "TOLL_FREE",
            NumberKind::PremiumRate => "PREMIUM_RATE",
            NumberKind::SharedCost => "SHARED_COST",
            NumberKind::Voip => "VOIP",
            NumberKind::PersonalNumber => "PERSONAL_NUMBER",
            NumberKind::Pager => "PAGER",
            NumberKind::Uan => "UAN",
            NumberKind::Voicemail => "VOICEMAIL",
            NumberKind::Unknown => "UNKNOWN",
        }
    }
}

/// Why an input is not a valid phone number. Messages never contain the input.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// The input is empty or only whitespace.
    #[error("no phone number given: the value is empty")]
    Empty,
    /// The input is longer than [`MAX_INPUT_CHARS`] characters.
    #[error("input longer than 250 characters: give one phone number per value")]
    InputTooLong,
    /// The input does not look like a phone number at all (letters, stray symbols, control
    /// characters between digits, a malformed `tel:` URI, ...).
    #[error(
        "not a phone number: give E.164 like +447700900123, or a national number with --region"
    )]
    NotANumber,
    /// The digits after `+` (or after an international dialling prefix) start with no assigned
    /// country calling code.
    #[error(
        "unknown country calling code: check the digits after + or after the international dialling prefix"
    )]
    InvalidCountryCode,
    /// A national number was given without a region to interpret it in.
    #[error("national number without a country: give E.164 like +447700900123, or pass --region")]
    NeedsRegion,
    /// Too few digits for a number of its country.
    #[error("phone number too short for its country: check for missing digits")]
    TooShort,
    /// Too many digits for a number of its country.
    #[error(
        "phone number too long for its country: check for extra digits, or mark an extension with \"ext.\""
    )]
    TooLong,
    /// The digits have a plausible length but match no number range assigned in its country.
    #[error("not a valid number for its country: check the digits, the country code and --region")]
    InvalidForRegion,
    /// The region hint is not a known ISO 3166 region code.
    #[error("unknown region: give a two-letter ISO 3166 region code such as GB or US")]
    InvalidRegionHint,
}

impl PhoneError {
    /// Stable snake_case code for JSON output and the server protocol.
    pub fn code(&self) -> &'static str {
        match self {
            PhoneError::Empty => "empty",
            PhoneError::InputTooLong => "input_too_long",
            PhoneError::NotANumber => "not_a_number",
            PhoneError::InvalidCountryCode => "invalid_country_code",
            PhoneError::NeedsRegion => "needs_region",
            PhoneError::TooShort => "too_short",
            PhoneError::TooLong => "too_long",
            PhoneError::InvalidForRegion => "invalid_for_region",
            PhoneError::InvalidRegionHint => "invalid_region_hint",
        }
    }
}

/// One line of `phonevault normalize --jsonl`. It prints the number in clear on purpose: it is
/// the user's own input. (No `Debug`, so it does not end up in logs by accident.)
#[derive(serde::Serialize)]
pub struct Report {
    /// Whether the input is a valid number.
    pub valid: bool,
    /// The E.164 form, when valid.
    pub e164: Option<String>,
    /// ISO 3166 region, when valid and geographic.
    pub region: Option<String>,
    /// libphonenumber type name (`"MOBILE"`, ...), when valid.
    #[serde(rename = "type")]
    pub r#type: Option<&'static str>,
    /// [`PhoneError::code`], when not valid.
    pub error: Option<&'static str>,
}

/// Normalizes one phone number.
///
/// `region` is an ISO 3166 code (any case) used to read national numbers and international
/// dialling prefixes (`00`, `011`, ...); numbers starting with `+` need none.
///
/// # Errors
///
/// A [`PhoneError`] saying why the input is not a valid number; [`PhoneError::InvalidRegionHint`]
/// if `region` is given but unknown (even when the number would not need it).
pub fn normalize(input: &str, region: Option<&str>) -> Result<Normalized, PhoneError> {
    metadata::active().normalize(input, region)
}

/// [`normalize`] over the given metadata tables.
fn normalize_in(
    tables: &Tables,
    input: &str,
    region: Option<&str>,
) -> Result<Normalized, PhoneError> {
    if input.chars().nth(MAX_INPUT_CHARS).is_some() {
        return Err(PhoneError::InputTooLong);
    }
    let hint = match region {
        None => None,
        Some(code) => Some(
            tables
                .region_by_id(code)
                .ok_or(PhoneError::InvalidRegionHint)?,
        ),
    };
    let parsed = parse(tables, input, hint)?;
    let main = tables
        .main_region(parsed.cc)
        .ok_or(PhoneError::InvalidCountryCode)?;
    let found = tables.region_for_number(parsed.cc, &parsed.nsn);
    let kind = found.map_or(NumberKind::Unknown, |r| number_type(r, &parsed.nsn));
    let Some(found) = found.filter(|_| kind != NumberKind::Unknown) else {
        return Err(match test_length(found.unwrap_or(main), &parsed.nsn) {
            LengthCheck::TooShort => PhoneError::TooShort,
            LengthCheck::TooLong => PhoneError::TooLong,
            _ => PhoneError::InvalidForRegion,
        });
    };
    let mut e164 = String::with_capacity(1 + 3 + parsed.nsn.len());
    e164.push('+');
    e164.push_str(&parsed.cc.to_string());
    e164.push_str(&parsed.nsn);
    Ok(Normalized {
        e164: E164(e164),
        country_code: parsed.cc,
        region: (found.id != NON_GEO_REGION).then_some(found.id),
        kind,
        extension_dropped: parsed.extension,
    })
}

/// [`normalize`] as plain data, for `phonevault normalize --jsonl`.
pub fn report(input: &str, region: Option<&str>) -> Report {
    match normalize(input, region) {
        Ok(n) => Report {
            valid: true,
            e164: Some(n.e164.expose_secret().to_owned()),
            region: n.region.map(str::to_owned),
            r#type: Some(n.kind.as_str()),
            error: None,
        },
        Err(e) => Report {
            valid: false,
            e164: None,
            region: None,
            r#type: None,
            error: Some(e.code()),
        },
    }
}

/// Renders a number for display without revealing it: `+44 ••• ••• 0958`.
///
/// Keeps `+` and the country calling code, and the last 4 digits of the national number
/// (3 when it has 7 digits, 2 when it has 6 or fewer, and never more than half of it); every
/// other digit becomes a bullet (one group up to five, else groups of three).
pub fn mask(e164: &E164) -> String {
    let value = e164.expose_secret();
    let digits = value.strip_prefix('+').unwrap_or(value);
    let (cc, national) = match split_country_code(metadata::active().tables(), digits) {
        Some((cc, rest)) if rest.bytes().all(|b| b.is_ascii_digit()) => (Some(cc), rest),
        // Not a well-formed E.164 value: show nothing of it.
        _ => (None, ""),
    };
    let n = national.len();
    let keep = match n {
        0..=6 => 2,
        7 => 3,
        _ => 4,
    }
    .min(n / 2);
    let hidden = n - keep;
    let mut out = String::from("+");
    match cc {
        Some(cc) => out.push_str(&cc.to_string()),
        None => out.push_str("•••"),
    }
    if hidden > 0 {
        out.push(' ');
        // Up to five bullets in one group, more in groups of three.
        let group = if hidden <= 5 { hidden } else { 3 };
        for i in 0..hidden {
            if i > 0 && i % group == 0 {
                out.push(' ');
            }
            out.push('•');
        }
    }
    if keep > 0 {
        out.push(' ');
        out.push_str(&national[n - keep..]);
    }
    out
}

/// The libphonenumber metadata release used for validation, e.g. `"9.0.35"`: the
/// [`PhoneMetadata::version`] of the process's metadata (see [`install`]).
pub fn metadata_version() -> &'static str {
    metadata::active().version()
}

// ---------------------------------------------------------------------------------------------
// Unicode folding
// ---------------------------------------------------------------------------------------------

/// Code point of the digit zero of every Unicode block of decimal digits (general category Nd,
/// Unicode 16.0); each block holds the digits 0-9 in order.
const ND_ZEROS: [u32; 76] = [
    0x0030, 0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6,
    0x0D66, 0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80,
    0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0,
    0xFF10, 0x104A0, 0x10D30, 0x10D40, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450,
    0x114D0, 0x11650, 0x116C0, 0x116D0, 0x116DA, 0x11730, 0x118E0, 0x11950, 0x11BF0, 0x11C50,
    0x11D50, 0x11DA0, 0x11F50, 0x16130, 0x16A60, 0x16AC0, 0x16B50, 0x16D70, 0x1CCF0, 0x1D7CE,
    0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E5F1, 0x1E950, 0x1FBF0,
];

/// The value of a Unicode decimal digit.
fn decimal_digit(c: char) -> Option<u32> {
    let cp = u32::from(c);
    let i = ND_ZEROS.partition_point(|&zero| zero <= cp);
    let zero = *ND_ZEROS.get(i.checked_sub(1)?)?;
    let value = cp - zero;
    (value < 10).then_some(value)
}

/// Folds Unicode digits and separators to ASCII (see the module docs).
fn fold_unicode(input: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(input.len()));
    for c in input.chars() {
        let folded = if let Some(d) = decimal_digit(c) {
            char::from(b'0' + d as u8)
        } else {
            match c {
                '\u{00A0}'
                | '\u{1680}'
                | '\u{2000}'..='\u{200A}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}' => ' ',
                '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' | '\u{FF0D}' => '-',
                '\u{FF0B}' => '+',
                '\u{FF08}' => '(',
                '\u{FF09}' => ')',
                '\u{FF3B}' => '[',
                '\u{FF3D}' => ']',
                '\u{FF0E}' => '.',
                '\u{FF0F}' => '/',
                '\u{FF5E}' => '~',
                other => other,
            }
        };
        out.push(folded);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Regexes, compiled once and kept
// ---------------------------------------------------------------------------------------------

type MatchFn = Box<dyn Fn(&str) -> bool + Send + Sync>;
type FindFn = Box<dyn Fn(&str) -> Option<(usize, usize)> + Send + Sync>;
/// The end of a pattern's match in the input, if it matches ([`compile_dfa`]).
type EndFn = Box<dyn Fn(&str) -> Option<usize> + Send + Sync>;
type PrefixFn = Box<dyn Fn(&str, Option<&str>) -> Option<PrefixMatch> + Send + Sync>;

/// A national-prefix match at the start of a number.
struct PrefixMatch {
    /// End of the match.
    end: usize,
    /// The number rewritten by the region's transform rule, when the rule applies.
    transformed: Option<Zeroizing<String>>,
}

/// `None` if the pattern does not compile: the caller treats that as "never matches" (a test
/// compiles every pattern of the vendored metadata, and [`PhoneMetadata::load`] refuses a file
/// with a pattern that does not compile).
fn compile(source: &str) -> Option<regex::Regex> {
    regex::Regex::new(source).ok()
}

/// Largest DFA (and largest determinization) a whole-number pattern may build; a
/// pattern that needs more is matched by the regex crate instead.
const DFA_BYTES: usize = 1 << 20;

/// A whole-number test: a fully compiled DFA where the pattern allows it (a match is
/// then a walk over the number's ten or so bytes, with no search cache to fetch from a
/// shared pool, which cost more than the walk), else the regex crate.
fn compile_match(source: &str) -> Option<MatchFn> {
    match compile_dfa(source) {
        // The pattern is anchored at both ends (`LazyRegex::full`): a match found
        // forward is a whole-number match.
        Some(end_of_match) => Some(Box::new(move |s: &str| end_of_match(s).is_some()) as MatchFn),
        None => compile(source).map(|re| Box::new(move |s: &str| re.is_match(s)) as MatchFn),
    }
}

/// [`compile_find`] for a pattern anchored at the start (`LazyRegex::at_start`): the
/// end of the leftmost-first match, as the regex crate finds it, by a DFA where the
/// pattern allows it.
fn compile_at_start(source: &str) -> Option<FindFn> {
    match compile_dfa(source) {
        Some(end_of_match) => {
            Some(Box::new(move |s: &str| end_of_match(s).map(|end| (0usize, end))) as FindFn)
        }
        None => compile_find(source),
    }
}

/// A fully compiled forward DFA of an ASCII pattern: the end of its leftmost-first
/// match in the input. `None` when the pattern does not compile within [`DFA_BYTES`].
/// A search error (none is possible without Unicode word boundaries) counts as no
/// match.
fn compile_dfa(source: &str) -> Option<EndFn> {
    use regex_automata::dfa::{dense, Automaton};
    use regex_automata::util::syntax;
    let dfa = dense::Builder::new()
        .syntax(syntax::Config::new().unicode(false).utf8(false))
        .configure(
            dense::Config::new()
                .dfa_size_limit(Some(DFA_BYTES))
                .determinize_size_limit(Some(DFA_BYTES)),
        )
        .build(source)
        .ok()?;
    Some(Box::new(move |s: &str| {
        dfa.try_search_fwd(&regex_automata::Input::new(s))
            .ok()
            .flatten()
            .map(|m| m.offset())
    }))
}

fn compile_find(source: &str) -> Option<FindFn> {
    compile(source)
        .map(|re| Box::new(move |s: &str| re.find(s).map(|m| (m.start(), m.end()))) as FindFn)
}

fn compile_prefix(source: &str) -> Option<PrefixFn> {
    compile(source).map(|re| {
        Box::new(move |s: &str, rule: Option<&str>| {
            let caps = re.captures(s)?;
            let end = caps.get(0)?.end();
            // libphonenumber: the transform applies only if the last group took part in the
            // match (with no groups, "group 0", the whole match, always does).
            let groups = re.captures_len().saturating_sub(1);
            let last_matched = groups == 0 || caps.get(groups).is_some();
            let transformed = match rule {
                Some(rule) if !rule.is_empty() && last_matched => {
                    Some(Zeroizing::new(re.replacen(s, 1, rule).into_owned()))
                }
                _ => None,
            };
            Some(PrefixMatch { end, transformed })
        }) as PrefixFn
    })
}

/// A metadata pattern, compiled on first use.
struct LazyRegex<F> {
    source: String,
    compiled: OnceLock<Option<F>>,
}

impl<F> LazyRegex<F> {
    fn new(source: String) -> Self {
        LazyRegex {
            source,
            compiled: OnceLock::new(),
        }
    }

    fn get(&self, compile: fn(&str) -> Option<F>) -> Option<&F> {
        self.compiled.get_or_init(|| compile(&self.source)).as_ref()
    }
}

impl LazyRegex<MatchFn> {
    /// A pattern that must match the whole input.
    ///
    /// `(?-u)` makes `\d` ASCII-only, as in libphonenumber's Java patterns; inputs are
    /// folded to ASCII digits first, and Unicode `\d` makes compiling about three times slower.
    fn full(pattern: &str) -> Self {
        LazyRegex::new(format!("(?-u)^(?:{})$", strip_whitespace(pattern)))
    }

    fn is_match(&self, s: &str) -> bool {
        self.get(compile_match).is_some_and(|f| f(s))
    }
}

impl LazyRegex<FindFn> {
    /// A pattern that must match at the start of the input (Java's `lookingAt`).
    fn at_start(pattern: &str) -> Self {
        LazyRegex::new(format!("(?-u)^(?:{})", strip_whitespace(pattern)))
    }

    /// End of the match at the start of `s`.
    fn looking_at(&self, s: &str) -> Option<usize> {
        self.get(compile_at_start)
            .and_then(|f| f(s))
            .map(|(_, end)| end)
    }
}

/// Metadata patterns are written over several lines; libphonenumber strips the whitespace
/// when it builds its metadata.
fn strip_whitespace(pattern: &str) -> String {
    pattern.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The fixed patterns of libphonenumber's parser, as in `PhoneNumberUtil` 9.0.
struct Patterns {
    /// `VALID_PHONE_NUMBER_PATTERN`: what a viable number looks like (whole input).
    viable: Option<MatchFn>,
    /// `EXTN_PATTERN`: an extension at the end of the input.
    extension: Option<FindFn>,
    /// RFC 3966 `phone-context` written as a global number.
    context_number: Option<MatchFn>,
    /// RFC 3966 `phone-context` written as a domain name.
    context_domain: Option<MatchFn>,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        const PUNCTUATION: &str = r"\-x\x{2010}-\x{2015}\x{2212}\x{30FC}\x{FF0D}-\x{FF0F} \x{00A0}\x{00AD}\x{200B}\x{2060}\x{3000}()\x{FF08}\x{FF09}\x{FF3B}\x{FF3D}.\[\]/~\x{2053}\x{223C}\x{FF5E}";
        const DIGITS: &str = "[0-9]";
        let ext_digits = |max: u32| format!("({DIGITS}{{1,{max}}})");
        let separators = r"[ \x{00A0}\t,]*";
        let after_label = r"[:\.\x{FF0E}]?[ \x{00A0}\t,-]*";
        let explicit_labels = r"(?:e?xt(?:ensi(?:o\x{0301}?|\x{00F3}))?n?|\x{FF45}?\x{FF58}\x{FF54}\x{FF4E}?|\x{0434}\x{043E}\x{0431}|anexo)";
        let ambiguous_labels = r"(?:[x\x{FF58}#\x{FF03}~\x{FF5E}]|int|\x{FF49}\x{FF4E}\x{FF54})";
        let separators_no_comma = r"[ \x{00A0}\t]*";
        let extensions = [
            format!(";ext={}", ext_digits(20)),
            format!("{separators}{explicit_labels}{after_label}{}#?", ext_digits(20)),
            format!("{separators}{ambiguous_labels}{after_label}{}#?", ext_digits(9)),
            format!("[- ]+{}#", ext_digits(6)),
            format!("{separators_no_comma}(?:,{{2}}|;){after_label}{}#?", ext_digits(15)),
            format!("{separators_no_comma}(?:,)+{after_label}{}#?", ext_digits(9)),
        ]
        .join("|");
        let valid_number = format!(
            "{DIGITS}{{2}}|[+\\x{{FF0B}}]*(?:[{PUNCTUATION}*]*{DIGITS}){{3,}}[{PUNCTUATION}*A-Za-z0-9]*"
        );
        let phone_digit = r"(?:[0-9]|[\-\.\(\)]?)";
        let alnum = "[a-zA-Z0-9]";
        Patterns {
            viable: compile_match(&format!("(?i)^(?:{valid_number}(?:{extensions})?)$")),
            extension: compile_find(&format!("(?i)(?:{extensions})$")),
            context_number: compile_match(&format!(r"^\+{phone_digit}*[0-9]{phone_digit}*$")),
            context_domain: compile_match(&format!(
                r"^(?:{alnum}+(?:-*{alnum})*\.)*[a-zA-Z]+(?:-*{alnum})*\.?$"
            )),
        }
    })
}

fn matches(f: &Option<MatchFn>, s: &str) -> bool {
    f.as_ref().is_some_and(|f| f(s))
}

// ---------------------------------------------------------------------------------------------
// Metadata tables
// ---------------------------------------------------------------------------------------------

/// Region id libphonenumber gives non-geographic country calling codes.
const NON_GEO_REGION: &str = "001";

/// A number-range description: possible lengths and a whole-number pattern.
struct Desc {
    lengths: Vec<u16>,
    pattern: LazyRegex<MatchFn>,
}

impl Desc {
    fn new(d: &Descriptor) -> Self {
        Desc {
            lengths: d.possible_length().to_vec(),
            pattern: LazyRegex::full(d.national_number().as_str()),
        }
    }

    /// libphonenumber `isNumberMatchingDesc`: a listed length, and the whole pattern.
    fn matches(&self, nsn: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.iter().any(|&l| usize::from(l) == nsn.len()))
            && self.pattern.is_match(nsn)
    }
}

/// One region's (or non-geographic code's) metadata, in the form the parser uses.
struct Region {
    id: &'static str,
    cc: u16,
    /// General description; lengths are the union over all number types, as libphonenumber
    /// computes them when it builds its metadata.
    general: Desc,
    /// Lengths only diallable locally.
    local_lengths: Vec<u16>,
    /// Types checked before fixed line / mobile, in libphonenumber's order.
    special: Vec<(NumberKind, Desc)>,
    fixed_line: Option<Desc>,
    mobile: Option<Desc>,
    same_fixed_and_mobile: bool,
    international_prefix: Option<LazyRegex<FindFn>>,
    national_prefix_for_parsing: Option<LazyRegex<PrefixFn>>,
    /// Transform rule with `$1` written `${1}` for the `regex` crate.
    transform_rule: Option<String>,
    leading_digits: Option<LazyRegex<FindFn>>,
}

impl Region {
    fn new(meta: &'static Metadata) -> Self {
        let d = meta.descriptors();
        let typed = [
            d.fixed_line(),
            d.mobile(),
            d.toll_free(),
            d.premium_rate(),
            d.shared_cost(),
            d.personal_number(),
            d.voip(),
            d.pager(),
            d.uan(),
            d.voicemail(),
            d.emergency(),
            d.short_code(),
            d.standard_rate(),
            d.carrier(),
        ];
        let mut lengths: Vec<u16> = typed
            .iter()
            .flatten()
            .flat_map(|t| t.possible_length().iter().copied())
            .collect();
        lengths.sort_unstable();
        lengths.dedup();
        let mut local_lengths: Vec<u16> = typed
            .iter()
            .flatten()
            .flat_map(|t| t.possible_local_length().iter().copied())
            .filter(|l| !lengths.contains(l))
            .collect();
        local_lengths.sort_unstable();
        local_lengths.dedup();
        let special = [
            (NumberKind::PremiumRate, d.premium_rate()),
            (NumberKind::TollFree, d.toll_free()),
            (NumberKind::SharedCost, d.shared_cost()),
            (NumberKind::Voip, d.voip()),
            (NumberKind::PersonalNumber, d.personal_number()),
            (NumberKind::Pager, d.pager()),
            (NumberKind::Uan, d.uan()),
            (NumberKind::Voicemail, d.voicemail()),
        ]
        .into_iter()
        .filter_map(|(kind, desc)| desc.map(|desc| (kind, Desc::new(desc))))
        .collect();
        let pattern_of = |desc: Option<&Descriptor>| {
            desc.map(|desc| strip_whitespace(desc.national_number().as_str()))
        };
        let national_prefix_for_parsing = meta
            .national_prefix_for_parsing()
            .map(|re| re.as_str().to_owned())
            // libphonenumber parses with the national prefix when no pattern is given.
            .or_else(|| meta.national_prefix().map(escape_digits))
            .filter(|p| !p.trim().is_empty())
            .map(|p| LazyRegex::new(format!("(?-u)^(?:{})", strip_whitespace(&p))));
        Region {
            id: meta.id(),
            cc: meta.country_code(),
            general: Desc {
                lengths,
                pattern: LazyRegex::full(d.general().national_number().as_str()),
            },
            local_lengths,
            special,
            fixed_line: d.fixed_line().map(Desc::new),
            mobile: d.mobile().map(Desc::new),
            same_fixed_and_mobile: pattern_of(d.fixed_line()) == pattern_of(d.mobile()),
            international_prefix: meta
                .international_prefix()
                .map(|re| LazyRegex::at_start(re.as_str())),
            national_prefix_for_parsing,
            transform_rule: meta.national_prefix_transform_rule().map(java_to_rust_rule),
            leading_digits: meta
                .leading_digits()
                .map(|re| LazyRegex::at_start(re.as_str())),
        }
    }

    fn strip_national_prefix_at(&self, number: &str) -> Option<PrefixMatch> {
        let re = self.national_prefix_for_parsing.as_ref()?;
        re.get(compile_prefix)
            .and_then(|f| f(number, self.transform_rule.as_deref()))
    }
}

/// A literal national prefix as a pattern (prefixes are digits; anything else is escaped).
fn escape_digits(prefix: &str) -> String {
    prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_string()
            } else {
                format!("\\x{{{:X}}}", u32::from(c))
            }
        })
        .collect()
}

/// Java replacement `$1` → `regex` replacement `${1}` (so `$1` followed by text is not read as
/// a longer group name).
fn java_to_rust_rule(rule: &str) -> String {
    let mut out = String::with_capacity(rule.len() + 4);
    let mut chars = rule.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('$', Some(d)) if d.is_ascii_digit() => {
                out.push_str("${");
                out.push(*d);
                out.push('}');
                chars.next();
            }
            ('$', _) => out.push_str("$$"),
            (c, _) => out.push(c),
        }
    }
    out
}

struct Tables {
    regions: Vec<Region>,
    by_id: HashMap<&'static str, usize>,
    /// Regions sharing a country calling code, main region first (libphonenumber's order).
    by_cc: HashMap<u16, Vec<usize>>,
}

impl Tables {
    fn build(db: &'static Database) -> Self {
        // Not `DATABASE.iter()`: it walks the crate's by-id map, where the non-geographic
        // entries (all with id "001") overwrite one another.
        let mut tables = Tables {
            regions: Vec::new(),
            by_id: HashMap::new(),
            by_cc: HashMap::new(),
        };
        for cc in 1..=999u16 {
            for meta in db.by_code(&cc).unwrap_or_default() {
                let index = tables.regions.len();
                tables.regions.push(Region::new(meta));
                tables.by_cc.entry(cc).or_default().push(index);
                if meta.id() != NON_GEO_REGION {
                    tables.by_id.insert(meta.id(), index);
                }
            }
        }
        tables
    }

    /// Everything the parser reads of the regions of calling code `cc`, as one string: two
    /// metadata sets treat the numbers of `cc` alike when their fingerprints are equal.
    fn fingerprint(&self, cc: u16) -> String {
        let mut out = String::new();
        for &i in self.by_cc.get(&cc).map(Vec::as_slice).unwrap_or_default() {
            let r = &self.regions[i];
            let desc = |d: &Desc| format!("{:?}{}", d.lengths, d.pattern.source);
            out.push_str(r.id);
            out.push_str(&desc(&r.general));
            out.push_str(&format!("{:?}", r.local_lengths));
            for (kind, d) in &r.special {
                out.push_str(kind.as_str());
                out.push_str(&desc(d));
            }
            for d in [&r.fixed_line, &r.mobile].into_iter().flatten() {
                out.push_str(&desc(d));
            }
            out.push_str(&format!("{}", r.same_fixed_and_mobile));
            for p in [&r.international_prefix, &r.leading_digits]
                .into_iter()
                .flatten()
            {
                out.push_str(&p.source);
            }
            if let Some(p) = &r.national_prefix_for_parsing {
                out.push_str(&p.source);
            }
            out.push_str(r.transform_rule.as_deref().unwrap_or_default());
            out.push('\u{1f}');
        }
        out
    }

    /// The id of the first region with a pattern that does not compile (all are compiled
    /// now, and kept).
    fn first_bad_pattern(&self) -> Option<&'static str> {
        self.regions.iter().find_map(|r| {
            let descs = std::iter::once(&r.general)
                .chain(r.special.iter().map(|(_, d)| d))
                .chain(r.fixed_line.iter())
                .chain(r.mobile.iter());
            let mut ok = descs
                .into_iter()
                .all(|d| d.pattern.get(compile_match).is_some());
            ok &= [&r.international_prefix, &r.leading_digits]
                .into_iter()
                .flatten()
                .all(|p| p.get(compile_at_start).is_some());
            ok &= r
                .national_prefix_for_parsing
                .as_ref()
                .is_none_or(|p| p.get(compile_prefix).is_some());
            (!ok).then_some(r.id)
        })
    }

    fn region_by_id(&self, id: &str) -> Option<&Region> {
        let id = id.trim().to_ascii_uppercase();
        self.by_id.get(id.as_str()).map(|&i| &self.regions[i])
    }

    fn main_region(&self, cc: u16) -> Option<&Region> {
        let first = *self.by_cc.get(&cc)?.first()?;
        self.regions.get(first)
    }

    /// libphonenumber `getRegionCodeForNumber`.
    fn region_for_number(&self, cc: u16, nsn: &str) -> Option<&Region> {
        let list = self.by_cc.get(&cc)?;
        if let [only] = list.as_slice() {
            return self.regions.get(*only);
        }
        list.iter()
            .map(|&i| &self.regions[i])
            .find(|r| match &r.leading_digits {
                Some(leading) => leading.looking_at(nsn).is_some(),
                None => number_type(r, nsn) != NumberKind::Unknown,
            })
    }
}

/// Splits `digits` into an assigned country calling code and the rest (libphonenumber
/// `extractCountryCode`).
fn split_country_code<'a>(tables: &Tables, digits: &'a str) -> Option<(u16, &'a str)> {
    if digits.starts_with('0') {
        return None;
    }
    (1..=3).find_map(|len| {
        let head = digits.get(..len)?;
        if !head.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let cc: u16 = head.parse().ok()?;
        tables.by_cc.contains_key(&cc).then(|| (cc, &digits[len..]))
    })
}

/// Raises the `phonenumber` crate's shared regex cache from 100 entries, once per process.
fn enlarge_crate_regex_cache() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let cache = phonenumber::metadata::DATABASE.cache();
        let mut guard = cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.capacity() < CRATE_REGEX_CACHE_CAPACITY {
            guard.set_capacity(CRATE_REGEX_CACHE_CAPACITY);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Validation (libphonenumber getNumberType / testNumberLength), strict: whole-number matches
// ---------------------------------------------------------------------------------------------

fn number_type(r: &Region, nsn: &str) -> NumberKind {
    if !r.general.matches(nsn) {
        return NumberKind::Unknown;
    }
    if let Some((kind, _)) = r.special.iter().find(|(_, desc)| desc.matches(nsn)) {
        return *kind;
    }
    let is = |desc: &Option<Desc>| desc.as_ref().is_some_and(|d| d.matches(nsn));
    if is(&r.fixed_line) {
        if r.same_fixed_and_mobile || is(&r.mobile) {
            return NumberKind::FixedLineOrMobile;
        }
        return NumberKind::FixedLine;
    }
    if !r.same_fixed_and_mobile && is(&r.mobile) {
        return NumberKind::Mobile;
    }
    NumberKind::Unknown
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LengthCheck {
    Possible,
    LocalOnly,
    TooShort,
    TooLong,
    InvalidLength,
}

/// libphonenumber `testNumberLength` for type UNKNOWN.
fn test_length(r: &Region, number: &str) -> LengthCheck {
    let possible = &r.general.lengths;
    let (Some(&min), Some(&max)) = (possible.first(), possible.last()) else {
        return LengthCheck::InvalidLength;
    };
    let len = number.len();
    if r.local_lengths.iter().any(|&l| usize::from(l) == len) {
        LengthCheck::LocalOnly
    } else if len == usize::from(min) {
        LengthCheck::Possible
    } else if len < usize::from(min) {
        LengthCheck::TooShort
    } else if len > usize::from(max) {
        LengthCheck::TooLong
    } else if possible.iter().any(|&l| usize::from(l) == len) {
        LengthCheck::Possible
    } else {
        LengthCheck::InvalidLength
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing (libphonenumber parseHelper)
// ---------------------------------------------------------------------------------------------

struct Parsed {
    cc: u16,
    nsn: Zeroizing<String>,
    extension: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CodeSource {
    Plus,
    Idd,
    Default,
}

fn parse(tables: &Tables, input: &str, hint: Option<&Region>) -> Result<Parsed, PhoneError> {
    let text = fold_unicode(input);
    if text.trim().is_empty() {
        return Err(PhoneError::Empty);
    }
    let mut national = build_national_number(&text)?;
    if let Some(i) = national.find(";isub=") {
        if i > 0 {
            national.truncate(i);
        }
    }
    if !is_viable(&national) {
        return Err(PhoneError::NotANumber);
    }
    if hint.is_none() && !national.starts_with('+') {
        return Err(PhoneError::NeedsRegion);
    }
    let mut extension = false;
    let ext_start = patterns()
        .extension
        .as_ref()
        .and_then(|f| f(&national))
        .map(|(start, _)| start);
    if let Some(start) = ext_start {
        if is_viable(&national[..start]) {
            national.truncate(start);
            extension = true;
        }
    }

    let extracted = match extract_country_code(tables, &national, hint) {
        Err(PhoneError::InvalidCountryCode) if national.starts_with('+') => {
            match extract_country_code(tables, national.trim_start_matches('+'), hint)? {
                Some(found) => Some(found),
                None => return Err(PhoneError::InvalidCountryCode),
            }
        }
        other => other?,
    };
    let (cc, mut nsn, meta) = match extracted {
        Some((cc, rest)) => (cc, rest, tables.main_region(cc)),
        None => {
            let region = hint.ok_or(PhoneError::InvalidCountryCode)?;
            (region.cc, normalize_number(&national), Some(region))
        }
    };
    if nsn.len() < MIN_NSN {
        return Err(PhoneError::TooShort);
    }
    if let Some(region) = meta {
        let mut potential = Zeroizing::new(nsn.as_str().to_owned());
        strip_national_prefix(&mut potential, region);
        match test_length(region, &potential) {
            LengthCheck::TooShort | LengthCheck::LocalOnly | LengthCheck::InvalidLength => {}
            LengthCheck::Possible | LengthCheck::TooLong => nsn = potential,
        }
    }
    if nsn.len() < MIN_NSN {
        return Err(PhoneError::TooShort);
    }
    if nsn.len() > MAX_NSN {
        return Err(PhoneError::TooLong);
    }
    Ok(Parsed { cc, nsn, extension })
}

/// libphonenumber `buildNationalNumberForParsing`.
fn build_national_number(text: &str) -> Result<Zeroizing<String>, PhoneError> {
    const CONTEXT: &str = ";phone-context=";
    let mut national = Zeroizing::new(String::with_capacity(text.len()));
    let Some(at) = text.find(CONTEXT) else {
        national.push_str(extract_possible_number(text));
        return Ok(national);
    };
    let context_start = at + CONTEXT.len();
    let context_end = text[context_start..]
        .find(';')
        .map_or(text.len(), |i| context_start + i);
    let context = &text[context_start..context_end];
    let p = patterns();
    if context.is_empty()
        || !(matches(&p.context_number, context) || matches(&p.context_domain, context))
    {
        return Err(PhoneError::NotANumber);
    }
    if context.starts_with('+') {
        national.push_str(context);
    }
    let start = text.find("tel:").map_or(0, |i| i + "tel:".len());
    national.push_str(text.get(start..at).unwrap_or(""));
    Ok(national)
}

/// libphonenumber `extractPossibleNumber`: from the first `+` or digit, without trailing
/// characters that are neither letters, digits nor `#`, and without a second number.
fn extract_possible_number(text: &str) -> &str {
    let Some(start) = text.find(|c: char| c == '+' || c.is_ascii_digit()) else {
        return "";
    };
    let number = &text[start..];
    let number = number.trim_end_matches(|c: char| !(c.is_alphanumeric() || c == '#'));
    match second_number_start(number) {
        Some(i) => &number[..i],
        None => number,
    }
}

/// Start of libphonenumber's `SECOND_NUMBER_START` (`[\\/] *x`).
fn second_number_start(number: &str) -> Option<usize> {
    number.char_indices().find_map(|(i, c)| {
        if c != '\\' && c != '/' {
            return None;
        }
        let rest = number[i + 1..].trim_start_matches(' ');
        rest.starts_with('x').then_some(i)
    })
}

/// libphonenumber `isViablePhoneNumber`.
fn is_viable(number: &str) -> bool {
    number.len() >= MIN_NSN && matches(&patterns().viable, number)
}

/// libphonenumber `normalize`: letters to keypad digits when there are three or more (vanity
/// numbers), otherwise digits only.
fn normalize_number(number: &str) -> Zeroizing<String> {
    let letters = number.chars().filter(char::is_ascii_alphabetic).count();
    let mut out = Zeroizing::new(String::with_capacity(number.len()));
    for c in number.chars() {
        if c.is_ascii_digit() {
            out.push(c);
        } else if letters >= 3 {
            if let Some(d) = keypad_digit(c) {
                out.push(d);
            }
        }
    }
    out
}

fn keypad_digit(c: char) -> Option<char> {
    Some(match c.to_ascii_uppercase() {
        'A' | 'B' | 'C' => '2',
        'D' | 'E' | 'F' => '3',
        'G' | 'H' | 'I' => '4',
        'J' | 'K' | 'L' => '5',
        'M' | 'N' | 'O' => '6',
        'P' | 'Q' | 'R' | 'S' => '7',
        'T' | 'U' | 'V' => '8',
        'W' | 'X' | 'Y' | 'Z' => '9',
        _ => return None,
    })
}

/// libphonenumber `maybeStripInternationalPrefixAndNormalize`.
fn strip_international_prefix(
    number: &str,
    hint: Option<&Region>,
) -> (CodeSource, Zeroizing<String>) {
    let without_plus = number.trim_start_matches('+');
    if without_plus.len() != number.len() {
        return (CodeSource::Plus, normalize_number(without_plus));
    }
    let normalized = normalize_number(number);
    let idd_end = hint
        .and_then(|r| r.international_prefix.as_ref())
        .and_then(|idd| idd.looking_at(&normalized));
    if let Some(end) = idd_end {
        // A country calling code never starts with 0: "00 0..." is not an IDD.
        if !normalized[end..].starts_with('0') {
            return (
                CodeSource::Idd,
                Zeroizing::new(normalized[end..].to_owned()),
            );
        }
    }
    (CodeSource::Default, normalized)
}

/// libphonenumber `maybeExtractCountryCode`: `Some((cc, national number))` when the number
/// carries its country calling code, `None` when it is national to the hint region.
fn extract_country_code(
    tables: &Tables,
    number: &str,
    hint: Option<&Region>,
) -> Result<Option<(u16, Zeroizing<String>)>, PhoneError> {
    if number.is_empty() {
        return Ok(None);
    }
    let (source, full) = strip_international_prefix(number, hint);
    if source != CodeSource::Default {
        if full.len() <= MIN_NSN {
            return Err(PhoneError::TooShort);
        }
        return match split_country_code(tables, &full) {
            Some((cc, rest)) => Ok(Some((cc, Zeroizing::new(rest.to_owned())))),
            None => Err(PhoneError::InvalidCountryCode),
        };
    }
    let Some(region) = hint else {
        return Ok(None);
    };
    // A national number that starts with the region's own country code, e.g. "64 3 331 6005"
    // with region NZ: keep the code stripped if that turns an invalid number valid, or if the
    // number is too long with it.
    let code = region.cc.to_string();
    if let Some(rest) = full.strip_prefix(code.as_str()) {
        let mut potential = Zeroizing::new(rest.to_owned());
        strip_national_prefix(&mut potential, region);
        let general = &region.general.pattern;
        if (!general.is_match(&full) && general.is_match(&potential))
            || test_length(region, &full) == LengthCheck::TooLong
        {
            return Ok(Some((region.cc, potential)));
        }
    }
    Ok(None)
}

/// libphonenumber `maybeStripNationalPrefixAndCarrierCode` (the carrier code is discarded).
fn strip_national_prefix(number: &mut Zeroizing<String>, region: &Region) {
    if number.is_empty() {
        return;
    }
    let Some(found) = region.strip_national_prefix_at(number) else {
        return;
    };
    let general = &region.general.pattern;
    let viable_before = general.is_match(number);
    match found.transformed {
        None => {
            if viable_before && !general.is_match(&number[found.end..]) {
                return;
            }
            number.drain(..found.end);
        }
        Some(transformed) => {
            if viable_before && !general.is_match(&transformed) {
                return;
            }
            number.zeroize();
            number.push_str(&transformed);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use phonenumber::metadata::DATABASE;
    use proptest::prelude::*;

    fn e164(input: &str, region: Option<&str>) -> String {
        normalize(input, region)
            .map(|n| n.e164.expose_secret().to_owned())
            .unwrap_or_else(|e| format!("error: {}", e.code()))
    }

    #[test]
    fn over_long_number_that_the_crate_accepts_is_rejected() {
        // phonenumber 0.3.10 only requires a prefix of the number to match the pattern.
        let crate_says = phonenumber::parse(None, "+376312345534")
            .map(|n| phonenumber::is_valid(&n))
            .unwrap_or(false);
        assert!(crate_says, "the crate defect this test pins down is gone");
        assert_eq!(
            normalize("+376312345534", None).unwrap_err(),
            PhoneError::InvalidForRegion
        );
        assert_eq!(e164("+376312345", None), "+376312345");
    }

    #[test]
    fn each_error_variant_is_reachable() {
        let cases: [(&str, Option<&str>, PhoneError); 10] = [
            ("", None, PhoneError::Empty),
            (" \u{a0} ", Some("GB"), PhoneError::Empty),
            (&"1".repeat(251), None, PhoneError::InputTooLong),
            ("hello", Some("GB"), PhoneError::NotANumber),
            ("+99912345678", None, PhoneError::InvalidCountryCode),
            ("020 7946 0958", None, PhoneError::NeedsRegion),
            ("+44 1", None, PhoneError::TooShort),
            ("+44 7400 123456 789", None, PhoneError::TooLong),
            ("+376312345534", None, PhoneError::InvalidForRegion),
            ("020 7946 0958", Some("XX"), PhoneError::InvalidRegionHint),
        ];
        for (input, region, want) in cases {
            let got = normalize(input, region).map(|n| n.kind);
            assert_eq!(got, Err(want.clone()), "{:?}", want.code());
            let message = want.to_string();
            assert!(!message.is_empty() && !message.contains("7946"));
        }
    }

    #[test]
    fn kind_indexes_round_trip() {
        for k in NumberKind::ALL {
            assert_eq!(NumberKind::from_index(k as u8), k);
        }
        assert_eq!(NumberKind::from_index(200), NumberKind::Unknown);
    }

    #[test]
    fn error_codes_are_snake_case_and_distinct() {
        let all = [
            PhoneError::Empty,
            PhoneError::InputTooLong,
            PhoneError::NotANumber,
            PhoneError::InvalidCountryCode,
            PhoneError::NeedsRegion,
            PhoneError::TooShort,
            PhoneError::TooLong,
            PhoneError::InvalidForRegion,
            PhoneError::InvalidRegionHint,
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(PhoneError::code).collect();
        assert_eq!(codes.len(), all.len());
        assert!(codes
            .iter()
            .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    }

    #[test]
    fn input_length_limit_counts_characters() {
        let at_limit = format!("+44 7400 123456{}", " ".repeat(MAX_INPUT_CHARS - 15));
        assert_eq!(e164(&at_limit, None), "+447400123456");
        let over = format!("{at_limit} ");
        assert_eq!(e164(&over, None), "error: input_too_long");
        // 250 two-byte characters are within the limit.
        let wide = "\u{a0}".repeat(MAX_INPUT_CHARS);
        assert_eq!(e164(&wide, None), "error: empty");
        assert_eq!(e164(&"\u{a0}".repeat(251), None), "error: input_too_long");
    }

    /// `ascii` with its digits written in the Nd block starting at `zero`.
    fn in_digits(ascii: &str, zero: u32) -> String {
        ascii
            .chars()
            .map(|c| match c.to_digit(10) {
                Some(d) => char::from_u32(zero + d).unwrap(),
                None => c,
            })
            .collect()
    }

    #[test]
    fn unicode_digits_and_separators_are_folded() {
        let want = "+447400123456";
        // Full-width, Arabic-Indic, Eastern Arabic-Indic, Devanagari, Bengali, Thai,
        // mathematical double-struck.
        for zero in [0xFF10, 0x0660, 0x06F0, 0x0966, 0x09E6, 0x0E50, 0x1D7D8] {
            let input = in_digits("+44 7400 123456", zero);
            assert_eq!(e164(&input, None), want, "{}", input.escape_unicode());
        }
        for (input, region) in [
            (
                "\u{FF0B}\u{FF14}\u{FF14} \u{FF17}\u{FF14}\u{FF10}\u{FF10} 123456",
                None,
            ),
            ("+44\u{a0}7400\u{a0}123456", None),
            ("+44\u{2009}7400\u{202F}123456", None),
            ("+44\u{3000}7400\u{2007}123456", None),
            ("+44\u{2013}7400\u{2212}123\u{FE63}456", None),
            ("+44\u{2010}7400\u{2011}123\u{FE58}456\u{FF0D}", None),
            ("\u{FF08}07400\u{FF09} 123456", Some("GB")),
        ] {
            assert_eq!(e164(input, region), want, "{}", input.escape_unicode());
        }
    }

    #[test]
    fn nd_table_holds_decimal_digits() {
        assert!(ND_ZEROS.windows(2).all(|w| w[0] <= w[1]));
        for zero in ND_ZEROS {
            for d in 0..10 {
                let c = char::from_u32(zero + d).unwrap();
                assert!(c.is_numeric(), "{:X}", zero + d);
                assert_eq!(decimal_digit(c), Some(d));
            }
        }
        assert_eq!(decimal_digit('a'), None);
        assert_eq!(decimal_digit('\u{00B2}'), None); // superscript two is No, not Nd
        assert_eq!(decimal_digit('\u{2460}'), None); // circled one
    }

    #[test]
    fn control_and_bidi_characters() {
        // Around the number they are stripped (as libphonenumber does); inside it they reject.
        assert_eq!(
            e164("\u{2066}+44 7400 123456\u{202C}", None),
            "+447400123456"
        );
        assert_eq!(e164("\u{0}+44 7400 123456", None), "+447400123456");
        assert_eq!(e164("+44 7400\u{0} 123456", None), "error: not_a_number");
        assert_eq!(e164("+44 7400\u{200E}123456", None), "error: not_a_number");
        assert_eq!(e164("+44 7400\n123456", None), "error: not_a_number");
    }

    #[test]
    fn tel_uris() {
        assert_eq!(e164("tel:+44-7400-123456", None), "+447400123456");
        assert_eq!(
            e164("tel:07400123456;phone-context=+44", None),
            "+447400123456"
        );
        assert_eq!(
            e164("tel:7400123456;phone-context=+44;isub=12", None),
            "+447400123456"
        );
        assert_eq!(
            e164("tel:07400123456;phone-context=example.com", Some("GB")),
            "+447400123456"
        );
        assert_eq!(
            e164("tel:07400123456;phone-context=", Some("GB")),
            "error: not_a_number"
        );
        let n = normalize("tel:+1-900-212-3456;ext=5925", None).unwrap();
        assert_eq!(n.e164.expose_secret(), "+19002123456");
        assert!(n.extension_dropped);
        assert_eq!(n.kind, NumberKind::PremiumRate);
    }

    #[test]
    fn extensions_are_dropped() {
        for input in [
            "+44 7400 123456 ext. 123",
            "+44 7400 123456 x123",
            "+44 7400 123456 extension 123",
            "+44 7400 123456 #123",
            "07400 123456,,123",
        ] {
            let n = normalize(input, Some("GB")).unwrap();
            assert_eq!(n.e164.expose_secret(), "+447400123456", "{input}");
            assert!(n.extension_dropped, "{input}");
        }
        assert!(!normalize("+447400123456", None).unwrap().extension_dropped);
    }

    #[test]
    fn international_dialling_prefixes_and_national_formats() {
        assert_eq!(e164("00 44 7400 123456", Some("DE")), "+447400123456");
        assert_eq!(e164("011 44 7400 123456", Some("US")), "+447400123456");
        assert_eq!(e164("(201) 555-0123", Some("us")), "+12015550123");
        assert_eq!(e164("1-800-GOT-JUNK", Some("US")), "+18004685865");
        assert_eq!(e164("0111-523-4567-89", Some("AR")), "+5491123456789");
        let n = normalize("+800 1234 5678", None).unwrap();
        assert_eq!((n.region, n.country_code), (None, 800));
    }

    #[test]
    fn masks() {
        let m = |s: &str| mask(&E164::from_trusted(s.to_owned()));
        assert_eq!(m("+447700900958"), "+44 ••• ••• 0958");
        assert_eq!(m("+12015550123"), "+1 ••• ••• 0123");
        assert_eq!(m("+35312345678"), "+353 •••• 5678");
        assert_eq!(m("+4930123456789"), "+49 ••• ••• • 6789");
        assert_eq!(m("+3541234567"), "+354 •••• 567");
        assert_eq!(m("+376312345"), "+376 •••• 45");
        assert_eq!(m("+2908999"), "+290 •• 99");
        assert_eq!(m("+68271234"), "+682 ••• 34");
        assert_eq!(m("nonsense"), "+•••");
        assert_eq!(m(""), "+•••");
        for s in ["+447700900958", "+2908999", "+68271234", "+3541234567"] {
            let masked = m(s);
            let shown = masked.chars().filter(char::is_ascii_digit).count();
            let cc = E164::from_trusted(s.to_owned()).country_code().unwrap();
            let nsn_len = s.len() - 1 - cc.to_string().len();
            assert!(shown - cc.to_string().len() <= nsn_len / 2, "{masked}");
        }
    }

    #[test]
    fn e164_accessors() {
        let e = E164::from_trusted("+447700900958".to_owned());
        assert_eq!(e.country_code(), Some(44));
        assert_eq!(e.last4(), "0958");
        assert_eq!(
            E164::from_trusted("+12015550123".into()).country_code(),
            Some(1)
        );
        assert_eq!(E164::from_trusted("+99912".into()).country_code(), None);
        assert_eq!(E164::from_trusted("12".into()).last4(), "12");
        assert_eq!(E164::from_trusted("+1٢٣٤٥".into()).last4(), "٢٣٤٥");
    }

    #[test]
    fn debug_does_not_reveal_the_number() {
        let n = normalize("+44 7400 123456", None).unwrap();
        for shown in [format!("{:?}", n.e164), format!("{n:?}"), format!("{n:#?}")] {
            assert!(!shown.contains("7400"), "{shown}");
            assert!(!shown.contains("3456"), "{shown}");
        }
        assert_eq!(format!("{:?}", n.e164), "E164 { .. }");
    }

    #[test]
    fn report_serializes_type_field() {
        let json = serde_json::to_string(&report("+44 7400 123456", None)).unwrap();
        assert_eq!(
            json,
            r#"{"valid":true,"e164":"+447400123456","region":"GB","type":"MOBILE","error":null}"#
        );
        let json = serde_json::to_string(&report("nope", Some("GB"))).unwrap();
        assert!(json.contains(r#""error":"not_a_number""#), "{json}");
    }

    #[test]
    fn crate_regex_cache_is_enlarged() {
        let _ = PhoneMetadata::compiled_in().normalize("+447400123456", None);
        let cache = DATABASE.cache();
        let guard = cache.lock().unwrap();
        assert!(guard.capacity() >= CRATE_REGEX_CACHE_CAPACITY);
    }

    #[test]
    fn transform_rules_are_translated() {
        assert_eq!(java_to_rust_rule("9$1"), "9${1}");
        assert_eq!(java_to_rust_rule("$15"), "${1}5");
        assert_eq!(escape_digits("8"), "8");
    }

    #[test]
    fn every_metadata_pattern_compiles() {
        let t = PhoneMetadata::vendored().tables();
        assert!(t.by_id.len() >= 240, "{} regions", t.by_id.len());
        for cc in [800, 808, 870, 878, 881, 882, 883, 888, 979] {
            assert_eq!(
                t.main_region(cc).map(|r| r.id),
                Some(NON_GEO_REGION),
                "+{cc}"
            );
        }
        for r in &t.regions {
            let descs = std::iter::once(&r.general)
                .chain(r.special.iter().map(|(_, d)| d))
                .chain(r.fixed_line.iter())
                .chain(r.mobile.iter());
            for d in descs {
                let ok = d.pattern.get(compile_match).is_some();
                assert!(ok, "{}: {}", r.id, d.pattern.source);
            }
            for p in [&r.international_prefix, &r.leading_digits]
                .into_iter()
                .flatten()
            {
                assert!(p.get(compile_at_start).is_some(), "{}: {}", r.id, p.source);
            }
            if let Some(p) = &r.national_prefix_for_parsing {
                assert!(p.get(compile_prefix).is_some(), "{}: {}", r.id, p.source);
            }
        }
        let p = patterns();
        assert!(p.viable.is_some() && p.extension.is_some());
        assert!(p.context_number.is_some() && p.context_domain.is_some());
    }

    /// Like libphonenumber's ExampleNumbersTest: every example number in the metadata is
    /// valid, belongs to its region (or one sharing its calling code) and has its type.
    #[test]
    fn metadata_example_numbers_are_valid_and_typed() {
        let mut checked = 0;
        let mut wrong = Vec::new();
        for cc in 1..=999u16 {
            for meta in PhoneMetadata::vendored()
                .database()
                .by_code(&cc)
                .unwrap_or_default()
            {
                let d = meta.descriptors();
                let typed = [
                    (NumberKind::FixedLine, d.fixed_line()),
                    (NumberKind::Mobile, d.mobile()),
                    (NumberKind::TollFree, d.toll_free()),
                    (NumberKind::PremiumRate, d.premium_rate()),
                    (NumberKind::SharedCost, d.shared_cost()),
                    (NumberKind::PersonalNumber, d.personal_number()),
                    (NumberKind::Voip, d.voip()),
                    (NumberKind::Pager, d.pager()),
                    (NumberKind::Uan, d.uan()),
                    (NumberKind::Voicemail, d.voicemail()),
                ];
                for (kind, desc) in typed {
                    let Some(example) = desc.and_then(Descriptor::example) else {
                        continue;
                    };
                    checked += 1;
                    let input = format!("+{cc}{example}");
                    let got = normalize(&input, None).map(|n| (n.region, n.kind));
                    let region = (meta.id() != NON_GEO_REGION).then_some(meta.id());
                    // Where regions share a calling code, a shared range (e.g. +1 800) is
                    // attributed to the main region, as libphonenumber does.
                    let shared = PhoneMetadata::vendored()
                        .tables()
                        .by_cc
                        .get(&cc)
                        .is_some_and(|l| l.len() > 1);
                    let fits = match &got {
                        Ok((r, k)) => {
                            (*r == region || shared)
                                && (*k == kind
                                    || (*k == NumberKind::FixedLineOrMobile
                                        && matches!(
                                            kind,
                                            NumberKind::FixedLine | NumberKind::Mobile
                                        )))
                        }
                        Err(_) => false,
                    };
                    if !fits {
                        wrong.push(format!("{} {input} {kind:?}: {got:?}", meta.id()));
                    }
                }
            }
        }
        assert!(checked > 1000, "{checked}");
        assert!(wrong.is_empty(), "{} of {checked}: {wrong:#?}", wrong.len());
    }

    const REGIONS: [&str; 12] = [
        "GB", "US", "DE", "FR", "IN", "BR", "AR", "MX", "IT", "JP", "AU", "NZ",
    ];

    proptest! {
        #[test]
        fn never_panics(input in any::<String>(), region in proptest::option::of("[A-Za-z0-9]{0,3}")) {
            let _ = normalize(&input, region.as_deref());
        }

        #[test]
        fn never_panics_on_phone_like_text(input in r"[ +0-9()\-.,;#*xX/a-z=:\x{a0}\x{ff10}-\x{ff19}\x{660}-\x{669}]{0,40}") {
            for region in [None, Some("GB"), Some("US")] {
                let _ = normalize(&input, region);
            }
        }

        #[test]
        fn valid_results_renormalize_to_themselves(
            digits in "[0-9]{4,14}",
            plus in any::<bool>(),
            region in 0..REGIONS.len(),
        ) {
            let input = if plus { format!("+{digits}") } else { digits };
            if let Ok(first) = normalize(&input, Some(REGIONS[region])) {
                let again = normalize(first.e164.expose_secret(), None);
                prop_assert!(again.is_ok());
                let again = again.unwrap();
                prop_assert_eq!(first.e164.expose_secret(), again.e164.expose_secret());
                prop_assert_eq!(first.kind, again.kind);
                prop_assert_eq!(first.region, again.region);
                prop_assert_eq!(first.country_code, again.country_code);
            }
        }
    }
}
