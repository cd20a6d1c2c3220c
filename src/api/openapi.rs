//! The socket API's OpenAPI 3.1 document, generated: the schemas are derived from the
//! request and answer types ([`super::request`], [`super::response`], with utoipa's
//! `ToSchema`), and the paths from the route table ([`super::ROUTES`]: each route's
//! role, body, parameters, answers and refusals). The server serves [`openapi()`], and
//! the committed `openapi.json` is its output (a test keeps them equal; regenerate with
//! `cargo test --lib api::openapi -- --ignored`).
//!
//! A few request bodies are documented as the alternatives their type accepts rather
//! than as the type's one object: a request naming one record ([`super::request::Targeted`])
//! takes `phone` (with `region`) or `id`, never both; an opt-out takes `purpose` or
//! `all`; a token request is for a tenant, for an SMS webhook, or vault-wide; a stats
//! request groups by country, by type, or both. Each alternative is the type's own
//! schema with members left out or pinned, so a member added to a type reaches them.

use std::borrow::Cow;

use utoipa::openapi::path::{
    Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, Object, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Components, ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref,
    RefOr, Required, ResponseBuilder, ServerBuilder,
};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::request::{OptOutReq, StatsReq, TokenReq};
use super::routes::{Body, Content, Method, Needs, Route, ROUTES};
use super::ErrorBody;
use crate::vault::Role;

/// The schemas a document names, as utoipa collects them (name, schema).
pub type Schemas = Vec<(String, RefOr<Schema>)>;

/// A schema of the document: adds what it names to the collection and answers a
/// reference to it (or the schema itself).
pub type SchemaFn = fn(&mut Schemas) -> RefOr<Schema>;

/// Query or header parameters of a route.
pub type ParamsFn = fn() -> Vec<Parameter>;

/// The document, as pretty JSON with a trailing newline: what `openapi.json` holds.
pub fn openapi() -> String {
    // A tree of maps with string keys and JSON values always serializes.
    let mut text = document()
        .to_pretty_json()
        .unwrap_or_else(|e| unreachable!("the OpenAPI document serializes: {e}"));
    text.push('\n');
    text
}

const DESCRIPTION: &str = "HTTP/1.1 and JSON over a Unix socket (`phonevault serve`). Every \
    data call needs `Authorization: Bearer <token>` (`phonevault token create`); each route \
    names the role it needs in its description, its `x-phonevault-role` and its security \
    scheme (`vault_admin`, or a token of the tenant in the path: `reader`, `writer`, \
    `auditor`, `inbound`; a tenant `admin` token serves all four). Numbers are masked unless \
    the token has the reveal right and the request asks for reveal. Every error is \
    `{\"error\": {\"code\", \"message\"}}` with a stable code; no message ever holds a phone \
    number.";

/// The document.
pub fn document() -> OpenApi {
    let mut schemas = Schemas::new();
    let mut paths = Paths::new();
    for route in ROUTES {
        let method = match route.method {
            Method::Get => HttpMethod::Get,
            Method::Post => HttpMethod::Post,
            Method::Delete => HttpMethod::Delete,
        };
        paths.add_path_operation(route.path, vec![method], operation(route, &mut schemas));
    }
    let mut components = Components::new();
    let error = schema::<ErrorBody>(&mut schemas);
    for (name, schema) in schemas {
        components.schemas.insert(name, schema);
    }
    for (name, status) in SHARED {
        let (_, description) = shared(status);
        components.responses.insert(
            name.to_owned(),
            ResponseBuilder::new()
                .description(description)
                .content("application/json", json_content(error.clone()))
                .build()
                .into(),
        );
    }
    // Every security scheme: the vault admin's and one per tenant role.
    for needs in std::iter::once(Needs::VaultAdmin).chain(Role::ALL.map(Needs::Token)) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(scheme_description(needs)))
            .build();
        components
            .security_schemes
            .insert(scheme_name(needs), SecurityScheme::Http(scheme));
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("phonevault socket API")
                .version("1")
                .description(Some(DESCRIPTION))
                .build(),
        )
        .servers(Some([ServerBuilder::new()
            .url("http://localhost")
            .description(Some(
                "curl --unix-socket <vault dir>/phonevault.sock http://localhost/v1/sys/health",
            ))
            .build()]))
        .paths(paths)
        .components(Some(components))
        .build()
}

/// The operation of one route.
fn operation(route: &Route, schemas: &mut Schemas) -> Operation {
    let doc = &route.doc;
    let role = match route.needs {
        Needs::Nobody => "Role: none (no token).".to_owned(),
        Needs::VaultAdmin => {
            "Role: vault-wide admin token (`token create --admin`); a tenant token is 403."
                .to_owned()
        }
        Needs::Token(Role::Admin) => "Role: a token of this tenant with role admin.".to_owned(),
        Needs::Token(role) => format!(
            "Role: a token of this tenant with role {} or admin.",
            role.as_str()
        ),
    };
    let description = if doc.more.is_empty() {
        role
    } else {
        format!("{role} {}", doc.more)
    };
    let mut op = OperationBuilder::new()
        .summary(Some(doc.summary))
        .description(Some(description));
    for parameter in path_parameters(route.path, schemas) {
        op = op.parameter(parameter);
    }
    for parameter in doc.params.map(|p| p()).into_iter().flatten() {
        op = op.parameter(parameter);
    }
    match doc.body {
        Body::None => {}
        Body::Json(body) => {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content("application/json", json_content(body(schemas)))
                    .build(),
            ));
        }
        Body::Webhook => {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        json_content(schema::<crate::sms::JsonInbound>(schemas)),
                    )
                    .content(
                        "application/x-www-form-urlencoded",
                        json_content(twilio_form(schemas)),
                    )
                    .build(),
            ));
        }
    }
    let mut responses: Vec<(u16, RefOr<utoipa::openapi::Response>)> = Vec::new();
    for answer in doc.answers {
        let (kind, body) = match answer.content {
            Content::Json(alternatives) => {
                let mut refs: Vec<RefOr<Schema>> =
                    alternatives.iter().map(|f| f(schemas)).collect();
                let body = if refs.len() == 1 {
                    refs.remove(0)
                } else {
                    refs.into_iter()
                        .fold(AnyOfBuilder::new(), AnyOfBuilder::item)
                        .into()
                };
                ("application/json", body)
            }
            Content::Metrics => (
                "text/plain",
                ObjectBuilder::new().schema_type(Type::String).into(),
            ),
            Content::Document => (
                "application/json",
                ObjectBuilder::new().schema_type(Type::Object).into(),
            ),
        };
        let response = ResponseBuilder::new()
            .description(answer.description)
            .content(kind, json_content(body))
            .build();
        responses.push((answer.status, response.into()));
    }
    for refusal in doc.refusals {
        let response = match refusal.description {
            None => Ref::new(format!(
                "#/components/responses/{}",
                shared(refusal.status).0
            ))
            .into(),
            Some(description) => ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    json_content(schema::<ErrorBody>(schemas)),
                )
                .build()
                .into(),
        };
        responses.push((refusal.status, response));
    }
    responses.sort_by_key(|(status, _)| *status);
    for (status, response) in responses {
        op = op.response(status.to_string(), response);
    }
    let mut op = op.build();
    op.security = Some(match route.needs {
        Needs::Nobody => Vec::new(),
        needs => vec![SecurityRequirement::new(
            scheme_name(needs),
            Vec::<String>::new(),
        )],
    });
    let mut extensions = utoipa::openapi::extensions::Extensions::default();
    extensions.insert(
        "x-phonevault-role".to_owned(),
        serde_json::Value::from(route.needs.as_str()),
    );
    op.extensions = Some(extensions);
    op
}

fn json_content(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

/// The parameters a path template names.
fn path_parameters(path: &str, schemas: &mut Schemas) -> Vec<Parameter> {
    let mut out = Vec::new();
    for name in path
        .split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
    {
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let (description, schema): (Option<&str>, RefOr<Schema>) = match name {
            "id" if path.starts_with("/v1/sys/tokens/") => (
                None,
                string()
                    .pattern(Some("^[0-9a-f]{16}$"))
                    .description(Some("token id (16 hex digits, from GET /v1/sys/tokens)"))
                    .into(),
            ),
            "id" => (None, schema::<RecordId>(schemas)),
            "list" => (
                Some("The list's name: 1 to 64 of a-z, 0-9, `.`, `_`, `:`, `-`."),
                string().into(),
            ),
            "upload" => (Some("The upload id its start answered."), string().into()),
            _ => (None, string().into()),
        };
        out.push(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(description)
                .schema(Some(schema))
                .build(),
        );
    }
    out
}

/// The shared refusals (`components/responses`), by status.
const SHARED: [(&str, u16); 8] = [
    ("BadRequest", 400),
    ("Unauthorized", 401),
    ("Forbidden", 403),
    ("NotFound", 404),
    ("RequestTimeout", 408),
    ("TooLarge", 413),
    ("RateLimited", 429),
    ("Sealed", 503),
];

/// The shared refusal of `status`: its name and what it means.
fn shared(status: u16) -> (&'static str, &'static str) {
    let name = SHARED
        .iter()
        .find(|(_, s)| *s == status)
        .map_or("", |(name, _)| *name);
    let description = match status {
        400 => {
            "bad_json (the body does not match its schema, e.g. both or neither of `phone` \
            and `id`), bad_query, invalid_phone (with reason), unknown_purpose, no_consent, \
            invalid_record_id, invalid_argument"
        }
        401 => "unauthorized (missing/unknown/revoked/expired token) or unseal_failed",
        403 => "forbidden: wrong tenant, role, purpose or reveal right, or peer uid not allowed",
        404 => {
            "not_found (absent or not readable for that purpose: indistinguishable), \
            unknown_tenant"
        }
        408 => {
            "request_timeout: the body did not arrive within the request deadline (serve \
            --request-timeout-secs); the connection is closed"
        }
        413 => "payload_too_large: body over 1 MiB (16 MiB or 10,000 items for the batch route)",
        429 => {
            "rate_limited: the token's budget is used up (serve --lookup-rate for lookups, \
            --write-rate for numbers written, a batch item counting one, --last4-per-minute for \
            records returned by last-4 searches); retry later"
        }
        503 => "sealed: POST /v1/sys/unseal first",
        _ => unreachable!("no shared refusal for {status}: give the route's own description"),
    };
    (name, description)
}

fn scheme_name(needs: Needs) -> String {
    needs.as_str().replace('-', "_")
}

fn scheme_description(needs: Needs) -> String {
    match needs {
        Needs::VaultAdmin => "A vault-wide admin token (`phonevault token create --admin`): \
            token management and seal, no tenant data."
            .to_owned(),
        Needs::Token(Role::Admin) => "A token of the tenant in the path with role `admin` \
            (`phonevault token create --tenant T --role admin`)."
            .to_owned(),
        Needs::Token(Role::Inbound) => "A token of the tenant in the path with role `inbound` \
            or `admin` (`phonevault token create --tenant T --role inbound`): an SMS \
            provider's webhook, which may do nothing but inbound-sms."
            .to_owned(),
        Needs::Token(role) => format!(
            "A token of the tenant in the path with role `{0}` or `admin` (`phonevault token \
             create --tenant T --role {0}`).",
            role.as_str()
        ),
        Needs::Nobody => String::new(),
    }
}

/// A reference to `T`'s schema, collecting it and the schemas it names.
pub fn schema<T: ToSchema>(schemas: &mut Schemas) -> RefOr<Schema> {
    collect::<T>(schemas);
    Ref::from_schema_name(T::name()).into()
}

fn collect<T: ToSchema>(schemas: &mut Schemas) {
    if !schemas.iter().any(|(name, _)| *name == T::name()) {
        schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(schemas);
    }
}

/// The query parameters of a type (its members).
pub fn query<T: IntoParams>() -> Vec<Parameter> {
    T::into_params(|| None)
}

/// `T`'s own object schema (collecting the schemas it names), to make alternatives of.
fn object<T: ToSchema>(schemas: &mut Schemas) -> Object {
    T::schemas(schemas);
    match T::schema() {
        RefOr::T(Schema::Object(object)) => object,
        _ => unreachable!("{} is a struct: its schema is an object", T::name()),
    }
}

fn one_of(items: impl IntoIterator<Item = RefOr<Schema>>) -> OneOfBuilder {
    items
        .into_iter()
        .fold(OneOfBuilder::new(), OneOfBuilder::item)
}

/// `object` as named alternative `name`, answered as a reference to it.
fn alternative(schemas: &mut Schemas, name: String, object: Object) -> RefOr<Schema> {
    let reference = Ref::from_schema_name(name.clone()).into();
    schemas.push((name, object.into()));
    reference
}

/// `object` without `members`.
fn without(mut object: Object, members: &[&str]) -> Object {
    for member in members {
        object.properties.shift_remove(*member);
        object.required.retain(|r| r != member);
    }
    object
}

/// `object` with `member` required.
fn requiring(mut object: Object, member: &str) -> Object {
    if !object.required.iter().any(|r| r == member) {
        object.required.push(member.to_owned());
    }
    object
}

/// `object` with `member` pinned to the one value `value` (its default kept when it is
/// that value).
fn pinned(mut object: Object, member: &str, value: serde_json::Value, description: &str) -> Object {
    let kind = match value {
        serde_json::Value::Bool(_) => Type::Boolean,
        _ => Type::String,
    };
    let default = match object.properties.get(member) {
        Some(RefOr::T(Schema::Object(o))) => o.default.clone().filter(|d| *d == value),
        _ => None,
    };
    let pin = ObjectBuilder::new()
        .schema_type(kind)
        .enum_values(Some([value]))
        .description(Some(description))
        .default(default)
        .build();
    object.properties.insert(member.to_owned(), pin.into());
    object
}

/// The two alternatives of a request naming one record, `{name}ByPhone` and
/// `{name}ById` (see [`super::request::Targeted`]).
fn by_target(schemas: &mut Schemas, name: &str, object: Object) -> [RefOr<Schema>; 2] {
    let by_phone = requiring(without(object.clone(), &["id"]), "phone");
    let by_id = requiring(without(object, &["phone", "region"]), "id");
    [
        alternative(schemas, format!("{name}ByPhone"), by_phone),
        alternative(schemas, format!("{name}ById"), by_id),
    ]
}

/// A request naming one record: by number or by id.
pub fn targeted<T: ToSchema + super::request::Targeted>(schemas: &mut Schemas) -> RefOr<Schema> {
    let object = object::<T>(schemas);
    one_of(by_target(schemas, &T::name(), object)).into()
}

/// An opt-out: of a purpose or of everything, each by number or by id.
pub fn opt_out(schemas: &mut Schemas) -> RefOr<Schema> {
    let object = object::<OptOutReq>(schemas);
    let name = OptOutReq::name();
    let purpose = requiring(
        pinned(
            object.clone(),
            "all",
            false.into(),
            "false or omitted: opt out of `purpose` only",
        ),
        "purpose",
    );
    let all = requiring(
        pinned(
            without(object, &["purpose"]),
            "all",
            true.into(),
            "opt out of every purpose",
        ),
        "all",
    );
    let mut items = Vec::new();
    items.extend(by_target(schemas, &format!("{name}Purpose"), purpose));
    items.extend(by_target(schemas, &format!("{name}All"), all));
    one_of(items).into()
}

fn one_of_strings(values: impl IntoIterator<Item = &'static str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .build()
}

/// A member that is always `true`.
pub(crate) fn always_true() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([true]))
        .build()
}

/// A token's role: one of [`Role::ALL`].
pub(crate) fn role() -> Object {
    one_of_strings(Role::ALL.map(Role::as_str))
}

/// What an inbound SMS did: one of its keywords' actions.
pub(crate) fn sms_action() -> Object {
    one_of_strings(crate::sms::Keyword::ALL.map(crate::sms::Keyword::action))
}

/// `object` with its `role` one of `roles`.
fn with_roles(mut object: Object, roles: &[Role]) -> Object {
    let role = one_of_strings(roles.iter().map(|r| r.as_str()));
    object.properties.insert("role".to_owned(), role.into());
    object
}

/// A token request: for a tenant, for an SMS provider's webhook (no purposes, no reveal
/// right), or vault-wide (an admin with neither).
pub fn token_request(schemas: &mut Schemas) -> RefOr<Schema> {
    let object = object::<TokenReq>(schemas);
    let tenant_roles: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|r| *r != Role::Inbound)
        .collect();
    let mut tenant = requiring(with_roles(object.clone(), &tenant_roles), "tenant");
    tenant.description = Some("a token bound to one tenant".to_owned());
    let mut inbound = requiring(
        with_roles(
            without(object.clone(), &["purposes", "reveal"]),
            &[Role::Inbound],
        ),
        "tenant",
    );
    inbound.description = Some(
        "a token for an SMS provider's inbound webhook: no purposes and no reveal right (it \
         only opts numbers out and in by the keyword texted)"
            .to_owned(),
    );
    let mut vault = pinned(
        with_roles(without(object, &["tenant"]), &[Role::Admin]),
        "reveal",
        false.into(),
        "a vault-wide token reveals nothing",
    );
    if let Some(RefOr::T(Schema::Array(purposes))) = vault.properties.get_mut("purposes") {
        purposes.max_items = Some(0);
    }
    vault.description =
        Some("a vault-wide admin token (no tenant): token management and seal".to_owned());
    let items = [
        alternative(schemas, "TenantTokenRequest".to_owned(), tenant),
        alternative(schemas, "InboundTokenRequest".to_owned(), inbound),
        alternative(schemas, "VaultAdminTokenRequest".to_owned(), vault),
    ];
    one_of(items).into()
}

/// A stats request: by country (the default, and by type too with `by_type`), or by
/// type only.
pub fn stats_request(schemas: &mut Schemas) -> RefOr<Schema> {
    let object = object::<StatsReq>(schemas);
    let mut by_country = pinned(
        object.clone(),
        "by_country",
        true.into(),
        "group by country (the default)",
    );
    by_country.description =
        Some("counts by country (the default), and by number type too with `by_type`".to_owned());
    let mut by_type = requiring(
        requiring(
            pinned(
                pinned(object, "by_country", false.into(), "not by country"),
                "by_type",
                true.into(),
                "by number type",
            ),
            "by_country",
        ),
        "by_type",
    );
    by_type.description = Some("counts by number type only".to_owned());
    let items = [
        alternative(schemas, "StatsByCountry".to_owned(), by_country),
        alternative(schemas, "StatsByTypeOnly".to_owned(), by_type),
    ];
    one_of(items)
        .description(Some(
            "at least one of `by_country` (default true) and `by_type` is true",
        ))
        .into()
}

/// Twilio's inbound-message webhook (form fields), read by `crate::sms`.
fn twilio_form(schemas: &mut Schemas) -> RefOr<Schema> {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let form = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Twilio's inbound-message webhook fields; From, To and Body once each, any others \
             (AccountSid, MessageSid, ...) allowed and covered by the signature",
        ))
        .property("From", string())
        .property("To", string())
        .property("Body", string())
        .required("From")
        .required("To")
        .required("Body")
        .additional_properties(Some(AdditionalProperties::RefOr(string().into())))
        .build();
    alternative(schemas, "InboundSmsForm".to_owned(), form)
}

/// The inbound-SMS webhook's signature header and signed query parameter.
pub fn sms_parameters() -> Vec<Parameter> {
    let optional = |name: &str, place: ParameterIn, description: &str| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(place)
            .required(Required::False)
            .description(Some(description))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build()
    };
    vec![
        optional(
            "X-Twilio-Signature",
            ParameterIn::Header,
            "The provider's signature; required when the tenant has a provider secret",
        ),
        optional(
            "bodySHA256",
            ParameterIn::Query,
            "hex SHA-256 of a JSON body, as Twilio adds it to the URL it signs",
        ),
    ]
}

/// The named string schemas of the document: values the vault parses at the edge
/// (`crate::policy::values`, `crate::phone`), which the request types hold as strings.
macro_rules! named_string {
    ($($(#[$doc:meta])* $name:ident: $description:literal $(, $method:ident = $value:expr)*;)*) => {$(
        $(#[$doc])*
        pub enum $name {}

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($description))
                    $(.$method(Some($value)))*
                    .into()
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    )*};
}

named_string! {
    /// A phone number as typed.
    Phone: "E.164, international, national with `region`, or a tel: URI (validated with \
        libphonenumber: a well-formed string can still be `invalid_phone`)", min_length = 1;
    /// A region hint.
    Region: "ISO 3166 region hint for national numbers (an unknown code is `invalid_phone` \
        with reason `invalid_region_hint`)", pattern = "^[A-Za-z]{2}$";
    /// A record id.
    RecordId: "record id (32 hex digits)", pattern = "^[0-9a-fA-F]{32}$";
    /// A purpose.
    Purpose: "a purpose the tenant declares (an undeclared one is `unknown_purpose`, or \
        `forbidden` for a token limited to other purposes)", pattern = "^[a-z0-9._:-]{1,64}$";
    /// A consent's source.
    Source: "where the consent came from: 1-128 printable ASCII characters, no quote or \
        backslash (default `api`)", pattern = "^[!#-\\[\\]-~]{1,128}$";
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is the failure report

    use super::*;
    use std::path::Path;

    fn committed_path() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json")
    }

    /// The committed document is the generated one: a change to a type or a route
    /// shows up in `openapi.json` in the same commit.
    #[test]
    fn the_committed_document_is_the_generated_one() {
        let committed = std::fs::read_to_string(committed_path()).unwrap();
        assert!(
            committed == openapi(),
            "openapi.json differs from the document the types and the route table make: \
             regenerate it with `cargo test --lib api::openapi -- --ignored` and commit it"
        );
    }

    /// Rewrites `openapi.json` from the types and the route table.
    #[test]
    #[ignore = "rewrites openapi.json: run by hand after changing the API"]
    fn write_the_document() {
        std::fs::write(committed_path(), openapi()).unwrap();
    }

    /// The limits the document states are the server's.
    #[test]
    fn the_documented_limits_are_the_servers() {
        let doc: serde_json::Value = serde_json::from_str(&openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let max = crate::server::MAX_BATCH_ITEMS;
        assert_eq!(schemas["Batch"]["properties"]["items"]["maxItems"], max);
        assert_eq!(
            schemas["UploadRows"]["properties"]["phones"]["maxItems"],
            max
        );
        assert_eq!(
            schemas["StatsByCountry"]["properties"]["min_group"]["maximum"],
            u64::MAX
        );
        let codes = &schemas["ErrorDetail"]["properties"]["code"]["enum"];
        for code in [super::super::code::BAD_JSON, "invalid_phone", "not_found"] {
            assert!(codes.as_array().unwrap().contains(&code.into()), "{code}");
        }
    }
}
