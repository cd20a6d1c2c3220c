//! Inbound SMS: what a customer's reply asks for, and whether the provider signed it.
//! Pure functions over bytes and strings; the vault applies the result
//! (`Vault::inbound_sms`) and the server moves the bytes.
//!
//! | task | item |
//! |---|---|
//! | STOP, START, HELP or anything else? | [`classify`] → [`Keyword`] |
//! | the message of a webhook body (JSON or Twilio's form) | [`parse_inbound`] → [`Inbound`] |
//! | Twilio's `X-Twilio-Signature` | [`twilio_signature`], [`check_signature`] |
//!
//! Twilio's signature, as Twilio documents it for its webhooks:
//!
//! ```text
//! form body (application/x-www-form-urlencoded):
//!   data = URL ‖ for each POST field, sorted by name (then value): name ‖ value
//! JSON body (application/json):
//!   URL carries ?bodySHA256=hex(SHA-256(body)), checked against the body
//!   data = URL
//! X-Twilio-Signature = base64(HMAC-SHA1(auth token, data))
//! ```
//!
//! `URL` is the full public URL the provider posts to, query string included, as
//! configured for the tenant (`tenant set-sms --webhook-url`): the socket has no host.
//!
//! ```
//! use phonevault::sms::{classify, twilio_signature, Keyword};
//! assert_eq!(classify("  stop "), Keyword::OptOut);
//! assert_eq!(classify("Opt Out"), Keyword::OptOut);
//! assert_eq!(classify("unstop"), Keyword::Lift);
//! assert_eq!(classify("stop texting me please"), Keyword::Other);
//! // Twilio's documented example.
//! let fields = [
//!     ("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"), ("Digits", "1234"),
//!     ("From", "+14158675309"), ("To", "+18005551212"),
//! ].map(|(k, v)| (k.to_owned(), v.to_owned()));
//! let sig = twilio_signature(b"12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &fields);
//! assert_eq!(sig, "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
//! ```

use base64::Engine as _;

use crate::record::{OptOut, RecordBody};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Longest message text looked at (an SMS is at most 1600 characters once joined).
pub const MAX_TEXT: usize = 1600;
/// Most form fields accepted (Twilio sends about 20).
pub const MAX_FIELDS: usize = 256;

/// What a reply asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keyword {
    /// STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT.
    OptOut,
    /// START, YES, UNSTOP.
    Lift,
    /// HELP, INFO.
    Help,
    /// Anything else: nothing changes.
    Other,
}

impl Keyword {
    /// Every keyword.
    pub const ALL: [Keyword; 4] = [
        Keyword::OptOut,
        Keyword::Lift,
        Keyword::Help,
        Keyword::Other,
    ];

    /// The answer's `action`.
    pub fn action(self) -> &'static str {
        match self {
            Keyword::OptOut => "opted_out",
            Keyword::Lift => "opt_out_lifted",
            Keyword::Help => "help",
            Keyword::Other => "none",
        }
    }
}

/// The opt-out keywords of the carriers' rules (CTIA) and the FCC's 2024 revocation
/// order.
pub const OPT_OUT_WORDS: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
];
/// The keywords that lift an SMS opt-out.
pub const LIFT_WORDS: &[&str] = &["START", "YES", "UNSTOP"];
/// The keywords that ask for help and change nothing.
pub const HELP_WORDS: &[&str] = &["HELP", "INFO"];

/// What `text` asks for: the whole message, with case and whitespace ignored (trimmed,
/// and inner whitespace removed, so `Opt Out` and `stop all` count), must be one keyword.
pub fn classify(text: &str) -> Keyword {
    if text.len() > MAX_TEXT {
        return Keyword::Other;
    }
    let word: String = text
        .split_whitespace()
        .flat_map(str::chars)
        .flat_map(char::to_uppercase)
        .collect();
    let is = |words: &[&str]| words.contains(&word.as_str());
    if is(OPT_OUT_WORDS) {
        Keyword::OptOut
    } else if is(LIFT_WORDS) {
        Keyword::Lift
    } else if is(HELP_WORDS) {
        Keyword::Help
    } else {
        Keyword::Other
    }
}

/// One inbound message. Holds the sender's number: no `Debug` of its fields, and
/// the number is zeroized on drop.
pub struct Inbound {
    /// The sender (the customer), as sent.
    pub from: Zeroizing<String>,
    /// The number it was sent to (the tenant's sending number).
    pub to: String,
    /// The message text.
    pub body: Zeroizing<String>,
    /// Every form field, in the order sent (empty for a JSON body): what the form
    /// signature covers.
    pub fields: Vec<(String, String)>,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound").finish_non_exhaustive()
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for (_, v) in &mut self.fields {
            v.zeroize();
        }
    }
}

/// How the body came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json`: `{"from", "to", "body"}`.
    Json,
    /// `application/x-www-form-urlencoded`: Twilio's `From`, `To`, `Body` and others.
    Form,
}

/// Why an inbound body was refused. No variant holds a value of the body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboundError {
    /// Not JSON nor a form.
    #[error("send the message as application/json ({{\"from\", \"to\", \"body\"}}) or as the provider's application/x-www-form-urlencoded form (From, To, Body)")]
    ContentType,
    /// A JSON body of the wrong shape.
    #[error("malformed JSON message: expected an object with string fields \"from\", \"to\" and \"body\" and no others")]
    Json,
    /// A form without a field it needs, a repeated one, or too many fields.
    #[error("malformed form message: it needs one From, one To and one Body field (at most {MAX_FIELDS} fields)")]
    Form,
    /// The form is not valid UTF-8 once decoded.
    #[error("malformed form message: fields must be UTF-8")]
    Encoding,
}

/// An inbound message as JSON.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = InboundSmsJson)]
pub(crate) struct JsonInbound {
    /// The sender (the customer's number).
    from: String,
    /// The tenant's sending number (international form) or short code (3 to 8 digits).
    to: String,
    /// The message text.
    body: String,
}

/// Which kind of body `content_type` announces (parameters such as `charset` ignored).
///
/// # Errors
/// [`InboundError::ContentType`].
pub fn body_kind(content_type: Option<&str>) -> Result<BodyKind, InboundError> {
    let base = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    match base.as_deref() {
        Some("application/json") => Ok(BodyKind::Json),
        Some("application/x-www-form-urlencoded") => Ok(BodyKind::Form),
        _ => Err(InboundError::ContentType),
    }
}

/// Parses an inbound body. Total: any bytes give a message or an error.
///
/// # Errors
/// [`InboundError`], naming what is wrong and never a value.
pub fn parse_inbound(kind: BodyKind, bytes: &[u8]) -> Result<Inbound, InboundError> {
    match kind {
        BodyKind::Json => {
            let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
            if first != Some(&b'{') {
                return Err(InboundError::Json);
            }
            let j: JsonInbound = serde_json::from_slice(bytes).map_err(|_| InboundError::Json)?;
            Ok(Inbound {
                from: Zeroizing::new(j.from),
                to: j.to,
                body: Zeroizing::new(j.body),
                fields: Vec::new(),
            })
        }
        BodyKind::Form => {
            let mut fields = Vec::new();
            for (k, v) in form_urlencoded_pairs(bytes)? {
                if fields.len() >= MAX_FIELDS {
                    return Err(InboundError::Form);
                }
                fields.push((k, v));
            }
            let one = |name: &str| -> Result<String, InboundError> {
                let mut it = fields.iter().filter(|(k, _)| k == name);
                match (it.next(), it.next()) {
                    (Some((_, v)), None) => Ok(v.clone()),
                    _ => Err(InboundError::Form),
                }
            };
            let from = Zeroizing::new(one("From")?);
            let to = one("To")?;
            let body = Zeroizing::new(one("Body")?);
            Ok(Inbound {
                from,
                to,
                body,
                fields,
            })
        }
    }
}

/// The pairs of a form body: `+` is a space, `%XX` a byte, then UTF-8.
fn form_urlencoded_pairs(bytes: &[u8]) -> Result<Vec<(String, String)>, InboundError> {
    let decode = |s: &[u8]| -> Result<String, InboundError> {
        let plus: Vec<u8> = s
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        let raw: Vec<u8> = percent_encoding::percent_decode(&plus).collect();
        String::from_utf8(raw).map_err(|_| InboundError::Encoding)
    };
    bytes
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .take(MAX_FIELDS + 1)
        .map(|p| {
            let mut kv = p.splitn(2, |&b| b == b'=');
            let k = decode(kv.next().unwrap_or_default())?;
            let v = decode(kv.next().unwrap_or_default())?;
            Ok((k, v))
        })
        .collect()
}

type HmacSha1 = Hmac<sha1::Sha1>;

/// Twilio's signature of a form request to `url` with `fields`: base64 of
/// HMAC-SHA1(`secret`, `url` ‖ each field sorted by name, then value: name ‖ value).
/// A JSON request is signed with no fields (its body is bound by `bodySHA256`).
pub fn twilio_signature(secret: &[u8], url: &str, fields: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = fields.iter().collect();
    sorted.sort();
    // HMAC accepts keys of any length.
    let mut mac = match HmacSha1::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Why a signature was refused (the caller answers one 403 for all of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// No `X-Twilio-Signature` header.
    #[error("missing X-Twilio-Signature")]
    Missing,
    /// A JSON body whose URL carries no `bodySHA256`, or one that does not match.
    #[error("bodySHA256 of the URL does not match the body")]
    BodyHash,
    /// The signature does not match.
    #[error("X-Twilio-Signature does not match")]
    Mismatch,
}

/// Checks `header` against the signature of a request to `url` (the configured
/// public URL with the request's query string) carrying `body` of `kind`, compared
/// in constant time.
///
/// # Errors
/// [`SignatureError`].
pub fn check_signature(
    secret: &[u8],
    url: &str,
    kind: BodyKind,
    body: &[u8],
    fields: &[(String, String)],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let expected = match kind {
        BodyKind::Form => twilio_signature(secret, url, fields),
        BodyKind::Json => {
            let want = hex::encode(Sha256::digest(body));
            let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
            let given = query
                .split('&')
                .find_map(|p| p.strip_prefix("bodySHA256="))
                .ok_or(SignatureError::BodyHash)?;
            if !bool::from(given.as_bytes().ct_eq(want.as_bytes())) {
                return Err(SignatureError::BodyHash);
            }
            twilio_signature(secret, url, &[])
        }
    };
    if bool::from(expected.as_bytes().ct_eq(header.trim().as_bytes())) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The signed URL of a request: the configured public `base` with the request's
/// `query` (Twilio signs the URL it posted to, query string included).
pub fn signed_url(base: &str, query: Option<&str>) -> String {
    match query.filter(|q| !q.is_empty()) {
        Some(q) if base.contains('?') => format!("{base}&{q}"),
        Some(q) => format!("{base}?{q}"),
        None => base.to_owned(),
    }
}

/// What a keyword does to a record body: the rule, with no I/O.
///
/// - [`Keyword::OptOut`]: opts out of each purpose of `purposes` (the purposes the
///   tenant maps to the number texted), or of everything when the number has no
///   mapping (`None`), through [`RecordBody::opt_out`].
/// - [`Keyword::Lift`]: lifts the opt-outs an SMS STOP to that number makes (those of
///   `purposes`, or the opt-out of everything when unmapped) and restores, with
///   consent source `source` (`sms:<to-number>`), the consents those opt-outs
///   withdrew. It never adds a purpose the record was not consented for, and leaves
///   opt-outs of other purposes (and, for a mapped number, an opt-out of everything
///   made another way) in force.
/// - [`Keyword::Help`], [`Keyword::Other`]: nothing.
///
/// Returns whether the body changed.
pub fn apply(
    body: &mut RecordBody,
    keyword: Keyword,
    purposes: Option<&[String]>,
    source: &str,
    now: u64,
) -> bool {
    match keyword {
        Keyword::OptOut => match purposes {
            None => body.opt_out(None, now),
            Some(ps) => ps
                .iter()
                .fold(false, |changed, p| body.opt_out(Some(p), now) | changed),
        },
        Keyword::Lift => {
            let lifts = |o: &OptOut| {
                o.lifted_at.is_none()
                    && match (purposes, o.purpose.as_deref()) {
                        (None, None) => true,
                        (Some(ps), Some(p)) => ps.iter().any(|q| q == p),
                        _ => false,
                    }
            };
            let mut restore: Vec<String> = Vec::new();
            let mut changed = false;
            for i in 0..body.opt_outs.len() {
                let o = &body.opt_outs[i];
                if !lifts(o) {
                    continue;
                }
                let (at, covers) = (o.at, o.purpose.clone());
                for g in &body.grants {
                    let covered = covers.as_deref().is_none_or(|p| p == g.purpose);
                    if covered && g.withdrawn_at == Some(at) && !restore.contains(&g.purpose) {
                        restore.push(g.purpose.clone());
                    }
                }
                body.opt_outs[i].lifted_at = Some(now);
                changed = true;
            }
            for p in &restore {
                changed |= body.grant(p, source, now);
            }
            if changed {
                body.updated_at = now;
            }
            changed
        }
        Keyword::Help | Keyword::Other => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body() -> RecordBody {
        let mut b = RecordBody {
            e164: "+14155550100".into(),
            country_code: 1,
            region: "US".into(),
            kind: 0,
            grants: vec![],
            opt_outs: vec![],
            created_at: 1,
            updated_at: 1,
            verified_at: None,
        };
        b.grant("otp", "web", 1);
        b.grant("marketing", "web", 1);
        b
    }

    #[test]
    fn stop_without_a_mapping_opts_out_of_everything_and_start_restores_it() {
        let mut b = body();
        assert!(apply(&mut b, Keyword::OptOut, None, "sms:+14155550199", 10));
        assert!(b.suppressed() && !b.is_live());
        assert!(!apply(
            &mut b,
            Keyword::OptOut,
            None,
            "sms:+14155550199",
            11
        ));
        assert!(apply(&mut b, Keyword::Lift, None, "sms:+14155550199", 20));
        assert!(b.has_live_consent("otp") && b.has_live_consent("marketing"));
        let restored: Vec<_> = b.grants.iter().filter(|g| g.granted_at == 20).collect();
        assert_eq!(restored.len(), 2);
        assert!(restored.iter().all(|g| g.source == "sms:+14155550199"));
        assert!(!apply(&mut b, Keyword::Lift, None, "sms:+14155550199", 21));
    }

    #[test]
    fn a_mapped_number_opts_out_of_its_purposes_only() {
        let mut b = body();
        let m = ["marketing".to_owned()];
        assert!(apply(&mut b, Keyword::OptOut, Some(&m), "sms:+1", 10));
        assert!(b.has_live_consent("otp") && !b.has_live_consent("marketing"));
        assert!(apply(&mut b, Keyword::Lift, Some(&m), "sms:+1", 20));
        assert!(b.has_live_consent("marketing"));
    }

    #[test]
    fn start_never_adds_a_purpose_nor_lifts_another_channels_opt_out() {
        let mut b = body();
        // An opt-out of everything made by the operator, then START to a mapped number.
        assert!(b.opt_out(None, 10));
        let m = ["marketing".to_owned()];
        assert!(!apply(&mut b, Keyword::Lift, Some(&m), "sms:+1", 20));
        assert!(b.suppressed());
        // START to an unmapped number with no opt-out changes nothing.
        let mut b = body();
        assert!(!apply(&mut b, Keyword::Lift, None, "sms:+1", 20));
        // A purpose never consented is not granted by START.
        let mut b = body();
        let support = ["support".to_owned()];
        assert!(apply(&mut b, Keyword::OptOut, Some(&support), "sms:+1", 10));
        assert!(apply(&mut b, Keyword::Lift, Some(&support), "sms:+1", 20));
        assert!(!b.grants.iter().any(|g| g.purpose == "support"));
        // A consent withdrawn another way before the STOP is not restored.
        let mut b = body();
        assert!(b.withdraw("otp", 5));
        assert!(apply(&mut b, Keyword::OptOut, None, "sms:+1", 10));
        assert!(apply(&mut b, Keyword::Lift, None, "sms:+1", 20));
        assert!(!b.has_live_consent("otp") && b.has_live_consent("marketing"));
    }

    #[test]
    fn help_and_other_texts_change_nothing() {
        for k in [Keyword::Help, Keyword::Other] {
            let mut b = body();
            let before = b.clone();
            assert!(!apply(&mut b, k, None, "sms:+1", 10));
            assert!(b == before);
        }
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Twilio's documented examples (its security page and the api-snippets
    /// repository, `security/signature_validation`), recomputed with Python's
    /// `hmac`/`hashlib`.
    #[test]
    fn twilio_documented_vectors() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        for (caller, sig) in [
            ("+14158675309", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
            ("+14158675310", "GvWf1cFY/Q7PnoempGyD5oXAezc="),
        ] {
            let f = pairs(&[
                ("CallSid", "CA1234567890ABCDE"),
                ("Caller", caller),
                ("Digits", "1234"),
                ("From", caller),
                ("To", "+18005551212"),
            ]);
            assert_eq!(twilio_signature(b"12345", url, &f), sig);
            assert!(check_signature(b"12345", url, BodyKind::Form, b"", &f, Some(sig)).is_ok());
            // The order sent does not matter: the fields are sorted.
            let mut rev = f.clone();
            rev.reverse();
            assert_eq!(twilio_signature(b"12345", url, &rev), sig);
            assert_eq!(
                check_signature(b"12346", url, BodyKind::Form, b"", &f, Some(sig)),
                Err(SignatureError::Mismatch)
            );
        }
        // The JSON example's body hash (its signature uses an unpublished token).
        let body = br#"{"CallSid":"CA1234567890ABCDE","Caller":"+12349013030"}"#;
        assert_eq!(
            hex::encode(Sha256::digest(body)),
            "5ccde7145dfb8f56479710896586cb9d5911809d83afbe34627818790db0aec9"
        );
    }

    #[test]
    fn json_bodies_are_bound_by_their_hash() {
        let body = br#"{"from":"+14155550100","to":"+14155550199","body":"STOP"}"#;
        let url = signed_url(
            "https://example.com/sms",
            Some(&format!("bodySHA256={}", hex::encode(Sha256::digest(body)))),
        );
        let sig = twilio_signature(b"k", &url, &[]);
        assert!(check_signature(b"k", &url, BodyKind::Json, body, &[], Some(&sig)).is_ok());
        let other = br#"{"from":"+14155550101","to":"+14155550199","body":"STOP"}"#;
        assert_eq!(
            check_signature(b"k", &url, BodyKind::Json, other, &[], Some(&sig)),
            Err(SignatureError::BodyHash)
        );
        assert_eq!(
            check_signature(
                b"k",
                "https://example.com/sms",
                BodyKind::Json,
                body,
                &[],
                Some(&sig)
            ),
            Err(SignatureError::BodyHash)
        );
        assert_eq!(
            check_signature(b"k", &url, BodyKind::Json, body, &[], None),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn keywords_ignore_case_and_whitespace() {
        for w in OPT_OUT_WORDS {
            assert_eq!(classify(w), Keyword::OptOut);
            assert_eq!(
                classify(&format!(" \t{}\n", w.to_lowercase())),
                Keyword::OptOut
            );
        }
        for w in ["start", " Yes", "UNSTOP\r\n", "un stop"] {
            assert_eq!(classify(w), Keyword::Lift, "{w:?}");
        }
        for w in ["help", "Info "] {
            assert_eq!(classify(w), Keyword::Help, "{w:?}");
        }
        for w in ["", "stop please", "STOP!", "stopp", "yes no", "hello"] {
            assert_eq!(classify(w), Keyword::Other, "{w:?}");
        }
        assert_eq!(classify("Stop All"), Keyword::OptOut);
        assert_eq!(classify(&"STOP ".repeat(1000)), Keyword::Other);
    }

    #[test]
    fn a_real_twilio_form_parses() {
        // An inbound-message webhook body as Twilio posts it (fields abridged from
        // Twilio's messaging webhook reference, values made up).
        let body = b"ToCountry=US&ToState=CA&SmsMessageSid=SM0123456789abcdef0123456789abcdef&NumMedia=0&ToCity=&FromZip=94105&SmsSid=SM0123456789abcdef0123456789abcdef&FromState=CA&SmsStatus=received&FromCity=SAN+FRANCISCO&Body=Stop+&FromCountry=US&To=%2B14155550199&ToZip=&NumSegments=1&MessageSid=SM0123456789abcdef0123456789abcdef&AccountSid=AC0123456789abcdef0123456789abcdef&From=%2B14155550100&ApiVersion=2010-04-01";
        let m = parse_inbound(BodyKind::Form, body).unwrap();
        assert_eq!(m.from.as_str(), "+14155550100");
        assert_eq!(m.to, "+14155550199");
        assert_eq!(classify(&m.body), Keyword::OptOut);
        assert_eq!(m.fields.len(), 19);
        assert!(m
            .fields
            .contains(&("FromCity".into(), "SAN FRANCISCO".into())));
        assert!(m.fields.contains(&("ToCity".into(), String::new())));
    }

    #[test]
    fn malformed_bodies_are_refused_without_their_values() {
        let cases: [(BodyKind, &[u8], InboundError); 6] = [
            (
                BodyKind::Form,
                b"From=%2B14155550100&To=1",
                InboundError::Form,
            ),
            (
                BodyKind::Form,
                b"From=1&From=2&To=3&Body=STOP",
                InboundError::Form,
            ),
            (
                BodyKind::Form,
                b"From=%ff&To=1&Body=x",
                InboundError::Encoding,
            ),
            (BodyKind::Json, b"[]", InboundError::Json),
            (
                BodyKind::Json,
                br#"{"from":"+14155550100","to":"x"}"#,
                InboundError::Json,
            ),
            (
                BodyKind::Json,
                br#"{"from":"+14155550100","to":"x","body":"y","z":1}"#,
                InboundError::Json,
            ),
        ];
        for (kind, bytes, want) in cases {
            let e = parse_inbound(kind, bytes).unwrap_err();
            assert_eq!(e, want);
            assert!(!e.to_string().contains("4155550100"));
        }
        let many = "a=b&".repeat(MAX_FIELDS + 1) + "From=1&To=2&Body=3";
        assert_eq!(
            parse_inbound(BodyKind::Form, many.as_bytes()).unwrap_err(),
            InboundError::Form
        );
        assert_eq!(
            body_kind(Some("application/x-www-form-urlencoded; charset=UTF-8")),
            Ok(BodyKind::Form)
        );
        assert_eq!(
            body_kind(Some("text/plain")),
            Err(InboundError::ContentType)
        );
        assert_eq!(body_kind(None), Err(InboundError::ContentType));
    }

    proptest! {
        #[test]
        fn parsing_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_inbound(BodyKind::Form, &bytes);
            let _ = parse_inbound(BodyKind::Json, &bytes);
            if let Ok(s) = std::str::from_utf8(&bytes) {
                let _ = classify(s);
            }
        }
    }
}
