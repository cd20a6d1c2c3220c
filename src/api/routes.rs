//! The route table: every route's method, path, the caller it needs, and what it takes
//! and answers. The server routes and authorizes by it, and the OpenAPI document
//! ([`super::openapi()`]) is built from it: a route is written here once.

use super::openapi::{
    opt_out, query, schema, sms_parameters, stats_request, targeted, token_request, ParamsFn,
    SchemaFn,
};
use super::request::{
    AddReq, BatchReq, GetQuery, GrantReq, Last4Req, LookupReq, TargetReq, UnsealReq,
    UploadCommitReq, UploadRowsReq, UploadStartReq, WithdrawReq,
};
use super::response::{
    Accepted, Added, BatchAnswer, ChangedAnswer, Committed, CreatedToken, Deleted, Dropped, Erased,
    Record, Records, Revoked, SealState, SmsReply, StatsAnswer, SuppressionLists, TokenList,
    UploadStarted, UploadedRows,
};
use crate::vault::Role;

/// Who may call a route: the role `openapi.json` names for it (`x-phonevault-role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Anyone who may use the socket (health, the document, unseal).
    Nobody,
    /// A vault-wide admin token (the `/v1/sys` routes that manage the vault).
    VaultAdmin,
    /// A token of this role (or a tenant admin); the policy (`crate::policy::decide`)
    /// then decides on its tenant, purposes and reveal right. Every such route is under
    /// `/v1/tenants/{tenant}`, where the server authenticates before it reads a byte of
    /// the body.
    Token(Role),
}

impl Needs {
    /// As `openapi.json` names it (`x-phonevault-role`).
    pub fn as_str(self) -> &'static str {
        match self {
            Needs::Nobody => "none",
            Needs::VaultAdmin => "vault-admin",
            Needs::Token(role) => role.as_str(),
        }
    }
}

/// A route's method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// DELETE.
    Delete,
}

impl Method {
    /// Lower case, as in the document.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Delete => "delete",
        }
    }
}

/// One route, as in `openapi.json`.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path template.
    pub path: &'static str,
    /// Who may call it.
    pub needs: Needs,
    /// What it takes and answers.
    pub doc: Doc,
}

/// What a route takes and answers, as the document says it.
#[derive(Debug, Clone, Copy)]
pub struct Doc {
    /// One line on what it does.
    pub summary: &'static str,
    /// More, after the role it needs (empty: nothing more).
    pub more: &'static str,
    /// Its request body.
    pub body: Body,
    /// Its query and header parameters (path parameters are read from the path).
    pub params: Option<ParamsFn>,
    /// Its answers.
    pub answers: &'static [Answer],
    /// Its refusals (each an [`super::ErrorBody`]).
    pub refusals: &'static [Refusal],
}

/// A route's request body.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    /// None.
    None,
    /// JSON of this schema.
    Json(SchemaFn),
    /// An SMS provider's webhook: JSON, or Twilio's form fields (`crate::sms`).
    Webhook,
}

/// One answer of a route.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    /// Its status.
    pub status: u16,
    /// When it is given.
    pub description: &'static str,
    /// Its body.
    pub content: Content,
}

/// The body of an [`Answer`].
#[derive(Debug, Clone, Copy)]
pub enum Content {
    /// JSON of one of these schemas.
    Json(&'static [SchemaFn]),
    /// The metrics, in the Prometheus text format.
    Metrics,
    /// The OpenAPI document.
    Document,
}

/// One refusal of a route: its status, and what it means there (`None`: what it means
/// on every route, the document's shared response for the status).
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    /// The status.
    pub status: u16,
    /// What it means on this route, when the shared response does not say it.
    pub description: Option<&'static str>,
}

const fn json(status: u16, description: &'static str, schemas: &'static [SchemaFn]) -> Answer {
    Answer {
        status,
        description,
        content: Content::Json(schemas),
    }
}

const fn shared(status: u16) -> Refusal {
    Refusal {
        status,
        description: None,
    }
}

const fn refusal(status: u16, description: &'static str) -> Refusal {
    Refusal {
        status,
        description: Some(description),
    }
}

const BAD: Refusal = shared(400);
const UNAUTHORIZED: Refusal = shared(401);
const FORBIDDEN: Refusal = shared(403);
const NOT_FOUND: Refusal = shared(404);
const TIMEOUT: Refusal = shared(408);
const TOO_LARGE: Refusal = shared(413);
const LIMITED: Refusal = shared(429);
const SEALED: Refusal = shared(503);

/// The refusals of a vault admin route without a body.
const ADMIN: &[Refusal] = &[BAD, UNAUTHORIZED, FORBIDDEN, TOO_LARGE, SEALED];
/// The refusals of a tenant route that reads (no rate limit on a read by id).
const READ: &[Refusal] = &[BAD, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, TOO_LARGE, SEALED];
/// The refusals of a tenant route with a body and a rate limit.
const LIMITED_BODY: &[Refusal] = &[
    BAD,
    UNAUTHORIZED,
    FORBIDDEN,
    NOT_FOUND,
    TIMEOUT,
    TOO_LARGE,
    LIMITED,
    SEALED,
];
/// A record write naming its record: a missing one is a 404 only in detail.
const RECORD_WRITE: &[Refusal] = &[
    BAD,
    UNAUTHORIZED,
    FORBIDDEN,
    refusal(
        404,
        "not_found: no such record (detailed answer only; other writers get 200 accepted)",
    ),
    TIMEOUT,
    TOO_LARGE,
    LIMITED,
    SEALED,
];

/// A write naming one record by number or id (a tenant writer's, rate limited).
const fn record_write(
    path: &'static str,
    summary: &'static str,
    body: SchemaFn,
    answers: &'static [Answer],
) -> Route {
    Route {
        method: Method::Post,
        path,
        needs: Needs::Token(Role::Writer),
        doc: Doc {
            summary,
            more: "",
            body: Body::Json(body),
            params: None,
            answers,
            refusals: RECORD_WRITE,
        },
    }
}

const SEAL_STATE: &[SchemaFn] = &[schema::<SealState>];
const REVOKED: &[SchemaFn] = &[schema::<Revoked>];
const CHANGED: &[SchemaFn] = &[schema::<ChangedAnswer>, schema::<Accepted>];
const CHANGED_OR_NOT: &str = "Changed or not (detailed answer, tenant admin with every \
    purpose), or accepted (every other writer, also when no such record exists)";

/// Every route.
pub const ROUTES: &[Route] = &[
    Route {
        method: Method::Get,
        path: "/v1/sys/health",
        needs: Needs::Nobody,
        doc: Doc {
            summary: "Whether the vault is sealed (no auth)",
            more: "",
            body: Body::None,
            params: None,
            answers: &[json(200, "Seal state", SEAL_STATE)],
            refusals: &[],
        },
    },
    Route {
        method: Method::Get,
        path: "/v1/sys/metrics",
        needs: Needs::VaultAdmin,
        doc: Doc {
            summary: "Metrics in the Prometheus text format 0.0.4 (vault-wide admin token; \
                `serve --metrics-listen` serves them without a token on a listener of their own)",
            more: "",
            body: Body::None,
            params: None,
            answers: &[Answer {
                status: 200,
                description: "Every metric: requests by route template and status, latency \
                    histograms, audit group sizes and sync time, audit entries pending, \
                    retention sweeps, sealed state, key budgets, store size. No number, record \
                    id or token in any label.",
                content: Content::Metrics,
            }],
            refusals: &[UNAUTHORIZED, FORBIDDEN, SEALED],
        },
    },
    Route {
        method: Method::Post,
        path: "/v1/sys/unseal",
        needs: Needs::Nobody,
        doc: Doc {
            summary: "Unseal with a passphrase (one attempt at a time; failures are slowed down)",
            more: "",
            body: Body::Json(schema::<UnsealReq>),
            params: None,
            answers: &[json(200, "Unsealed", SEAL_STATE)],
            refusals: &[BAD, UNAUTHORIZED, TIMEOUT],
        },
    },
    Route {
        method: Method::Post,
        path: "/v1/sys/seal",
        needs: Needs::VaultAdmin,
        doc: Doc {
            summary: "Seal: drop the open vault and its keys (vault-wide admin token)",
            more: "",
            body: Body::None,
            params: None,
            answers: &[json(200, "Sealed", SEAL_STATE)],
            refusals: ADMIN,
        },
    },
    Route {
        method: Method::Get,
        path: "/v1/sys/tokens",
        needs: Needs::VaultAdmin,
        doc: Doc {
            summary: "List tokens: ids and rights, never the secrets (vault-wide admin token)",
            more: "",
            body: Body::None,
            params: None,
            answers: &[json(200, "Every token", &[schema::<TokenList>])],
            refusals: ADMIN,
        },
    },
    Route {
        method: Method::Post,
        path: "/v1/sys/tokens",
        needs: Needs::VaultAdmin,
        doc: Doc {
            summary: "Create a token; the secret is in this answer only (vault-wide admin token)",
            more: "",
            body: Body::Json(token_request),
            params: None,
            answers: &[json(201, "Created", &[schema::<CreatedToken>])],
            refusals: &[
                BAD,
                UNAUTHORIZED,
                FORBIDDEN,
                NOT_FOUND,
                TIMEOUT,
                TOO_LARGE,
                SEALED,
            ],
        },
    },
    Route {
        method: Method::Post,
        path: "/v1/sys/tokens/revoke-all",
        needs: Needs::VaultAdmin,
        doc: Doc {
            summary: "Revoke every token, the caller's included (incident response; vault-wide \
                admin token)",
            more: "",
            body: Body::None,
            params: None,
            answers: &[json(200, "Revoked", REVOKED)],
            refusals: ADMIN,
        },
    },
    Route {
        method: Method::Delete,
        path: "/v1/sys/tokens/{id}",
        needs: Needs::VaultAdmin,
        doc: Doc {
            summary: "Revoke one token by id (vault-wide admin token)",
            more: "",
            body: Body::None,
            params: None,
            answers: &[json(200, "Revoked", REVOKED)],
            refusals: &[BAD, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, TOO_LARGE, SEALED],
        },
    },
    Route {
        method: Method::Get,
        path: "/v1/openapi.json",
        needs: Needs::Nobody,
        doc: Doc {
            summary: "This document (no auth)",
            more: "",
            body: Body::None,
            params: None,
            answers: &[Answer {
                status: 200,
                description: "The OpenAPI document",
                content: Content::Document,
            }],
            refusals: &[],
        },
    },
    Route {
        method: Method::Post,
        path: "/v1/tenants/{tenant}/numbers",
        needs: Needs::Token(Role::Writer),
        doc: Doc {
            summary: "Add a number with consents (merges into an existing record)",
            more: "",
            body: Body::Json(schema::<AddReq>),
            params: None,
            answers: &[
                json(
                    200,
                    "Merged or unchanged (detailed answer, tenant admin with every purpose), or \
                        accepted (every other writer: the one answer whatever the vault holds)",
                    &[schema::<Added>, schema::<Accepted>],
                ),
                json(
                    201,
                    "Created (detailed answer only; other writers get 200 accepted)",
                    &[schema::<Added>],
                ),
            ],
            refusals: LIMITED_BODY,
        },
    },
    Route {
        method: Method::Post,
        path: "/v1/tenants/{tenant}/numbers/batch",
        needs: Needs::Token(Role::Writer),
        doc: Doc {
            summary: "Add up to 10,000 numbers through the bulk import path (one flush per \
                consent group); one result per item (body limit 16 MiB)",
            more: "",
            body: Body::Json(schema::<BatchReq>),
            params: None,
            answers: &[json(200, "Per-item results", &[schema::<BatchAnswer>])],
            refusals: &[
                BAD,
                UNAUTHORIZED,
                FORBIDDEN,
                TIMEOUT,
                TOO_LARGE,
                LIMITED,
                SEALED,
            ],
        },
    },
    Route {
        method: Method::Get,
        path: "/v1/tenants/{tenant}/numbers/{id}",
        needs: Needs::Token(Role::Reader),
        doc: Doc {
            summary: "Read a record by id for a purpose (masked unless reveal)",
            more: "",
            body: Body::None,
            params: Some(query::<GetQuery>),
            answers: &[json(200, "The record", &[schema::<Record>])],
            refusals: READ,
        },
    },
    Route {
        method: Method::Delete,
        path: "/v1/tenants/{tenant}/numbers/{id}",
        needs: Needs::Token(Role::Writer),
        doc: Doc {
            summary: "Delete a record and its index entries",
            more: "",
            body: Body::None,
            params: None,
            answers: &[json(200, "Deleted", &[schema::<Deleted>])],
            refusals: READ,
        },
    },
    Route {
        method: Method::Post,
        path: "/v1/tenants/{tenant}/lookup",
        needs: Needs::Token(Role::Reader),
        doc: Doc {
            summary: "Find a number for a purpose (POST so numbers stay out of URLs)",
            more: "",
            body: Body::Json(schema::<LookupReq>),
            params: None,
            answers: &[json(200, "The record", &[schema::<Record>])],
            refusals: LIMITED_BODY,
        },
    },
    Route {
        method: Method::Post,
        path: "/v1/tenants/{tenant}/lookup/last4",
        needs: Needs::Token(Role::Reader),
        doc: Doc {
            summary: "Find by country code and last four digits (tenants with a last-4 index)",
            more: "",
            body: Body::Json(schema::<Last4Req>),
            params: None,
            answers: &[json(200, "Matching records", &[schema::<Records>])],
            refusals: &[
                refusal(
                    400,
                    "invalid_argument, unknown_purpose, or too_many_matches: more records \
                        match than one search returns (at most 10), or the tenant outgrew its \
                        index plan; ask for the full number",
                ),
                UNAUTHORIZED,
                refusal(
                    403,
                    "forbidden: the token may not read, may not use the purpose, or asked for \
                        reveal (a last-4 search never returns full numbers)",
                ),
                TIMEOUT,
                TOO_LARGE,
                LIMITED,
                SEALED,
            ],
        },
    },
    record_write(
        "/v1/tenants/{tenant}/consent/grant",
        "Grant consents (lifts opt-outs of those purposes)",
        targeted::<GrantReq>,
        &[json(
            200,
            "Changed or not (detailed answer, tenant admin with every purpose, with the \
                    signed receipt when asked for), or accepted (every other writer, also when \
                    no such record exists)",
            CHANGED,
        )],
    ),
    record_write(
        "/v1/tenants/{tenant}/consent/withdraw",
        "Withdraw a consent (kept in the history)",
        targeted::<WithdrawReq>,
        &[json(200, CHANGED_OR_NOT, CHANGED)],
    ),
    record_write(
        "/v1/tenants/{tenant}/opt-out",
        "Opt out of one purpose, or of everything with all: true",
        opt_out,
        &[json(200, CHANGED_OR_NOT, CHANGED)],
    ),
    record_write(
        "/v1/tenants/{tenant}/erase",
        "Erase a record, its index entries and consents",
        targeted::<TargetReq>,
        &[json(
            200,
            "Erased (detailed answer, with the id), or accepted (every other writer, also \
                    when no such record exists)",
            &[schema::<Erased>, schema::<Accepted>],
        )],
    ),
    record_write(
        "/v1/tenants/{tenant}/verify",
        "Stamp a record as verified now",
        targeted::<TargetReq>,
        &[json(200, CHANGED_OR_NOT, CHANGED)],
    ),
    Route {
        method: Method::Post,
        path: "/v1/tenants/{tenant}/stats",
        needs: Needs::Token(Role::Auditor),
        doc: Doc {
            summary: "Anonymized counts (k-anonymity threshold, optional Laplace noise); auditor \
                or admin",
            more: "",
            body: Body::Json(stats_request),
            params: None,
            answers: &[json(200, "Statistics", &[schema::<StatsAnswer>])],
            refusals: &[BAD, UNAUTHORIZED, FORBIDDEN, TIMEOUT, TOO_LARGE, SEALED],
        },
    },
    Route {
        method: Method::Post,
        path: "/v1/tenants/{tenant}/inbound-sms",
        needs: Needs::Token(Role::Inbound),
        doc: Doc {
            summary: "Keyword opt-out by SMS: an SMS provider's inbound-message webhook (STOP, \
                START, HELP); inbound or admin",
            more: "The body is the provider's inbound-message webhook, either JSON or Twilio's \
                form fields. Keywords, ignoring case and whitespace: STOP, STOPALL, UNSUBSCRIBE, \
                CANCEL, END, QUIT, REVOKE, OPTOUT opt the sender out (of the purposes the tenant \
                maps to the sending number `to`, or of everything); START, YES, UNSTOP lift that \
                opt-out and restore the consents it withdrew (consent source `sms:<to>`); HELP, \
                INFO and any other text change nothing. When the tenant has a provider secret \
                (`phonevault tenant set-sms --secret-file`), the request must carry \
                X-Twilio-Signature = base64(HMAC-SHA1(secret, URL \u{2016} each form field \
                sorted by name: name \u{2016} value)), URL being the tenant's configured webhook \
                URL with this request's query string; a JSON body is signed over the URL alone, \
                which must carry bodySHA256 = hex(SHA-256(body)). The answer is the same whether \
                or not the sender's number is in the vault.",
            body: Body::Webhook,
            params: Some(sms_parameters),
            answers: &[json(
                200,
                "What the message did and the tenant's confirmation text; the same for a known \
                    and an unknown sender",
                &[schema::<SmsReply>],
            )],
            refusals: &[
                BAD,
                UNAUTHORIZED,
                refusal(
                    403,
                    "forbidden (wrong tenant or role), or bad_signature: X-Twilio-Signature \
                        missing or wrong while the tenant has a provider secret (nothing changed)",
                ),
                refusal(404, "unknown_tenant"),
                TIMEOUT,
                TOO_LARGE,
                refusal(
                    415,
                    "unsupported_media_type: the body is neither application/json nor \
                        application/x-www-form-urlencoded",
                ),
                LIMITED,
                SEALED,
            ],
        },
    },
    Route {
        method: Method::Get,
        path: "/v1/tenants/{tenant}/suppression-lists",
        needs: Needs::Token(Role::Admin),
        doc: Doc {
            summary: "The tenant's suppression lists (do-not-call, do-not-text): name, version, \
                purposes, count, import time; admin",
            more: "",
            body: Body::None,
            params: None,
            answers: &[json(200, "Lists", &[schema::<SuppressionLists>])],
            refusals: LIMITED_BODY,
        },
    },
    Route {
        method: Method::Delete,
        path: "/v1/tenants/{tenant}/suppression-lists/{list}",
        needs: Needs::Token(Role::Admin),
        doc: Doc {
            summary: "Drop a suppression list: reads stop consulting it at once, its entries are \
                deleted; admin",
            more: "",
            body: Body::None,
            params: None,
            answers: &[json(200, "Dropped", &[schema::<Dropped>])],
            refusals: LIMITED_BODY,
        },
    },
    Route {
        method: Method::Post,
        path: "/v1/tenants/{tenant}/suppression-lists/{list}/uploads",
        needs: Needs::Token(Role::Admin),
        doc: Doc {
            summary: "Start a new version of a suppression list, uploaded in parts (sweeps what \
                abandoned uploads of the list left, an upload in progress included); the \
                version in force stays in force until the commit; admin",
            more: "",
            body: Body::Json(schema::<UploadStartReq>),
            params: None,
            answers: &[json(200, "The upload's id", &[schema::<UploadStarted>])],
            refusals: LIMITED_BODY,
        },
    },
    Route {
        method: Method::Post,
        path: "/v1/tenants/{tenant}/suppression-lists/{list}/uploads/{upload}/rows",
        needs: Needs::Token(Role::Admin),
        doc: Doc {
            summary: "Add numbers to an upload (at most 10,000 a request): only blind-index \
                entries are stored, never a number; nothing is in force before the commit; admin",
            more: "",
            body: Body::Json(schema::<UploadRowsReq>),
            params: None,
            answers: &[json(
                200,
                "What the rows gave: a rejected number is named by its index, never repeated",
                &[schema::<UploadedRows>],
            )],
            refusals: &[
                BAD,
                UNAUTHORIZED,
                FORBIDDEN,
                NOT_FOUND,
                TIMEOUT,
                refusal(
                    409,
                    "this upload is already the list's version in force (committed): start a \
                        new one",
                ),
                TOO_LARGE,
                LIMITED,
                SEALED,
            ],
        },
    },
    Route {
        method: Method::Post,
        path: "/v1/tenants/{tenant}/suppression-lists/{list}/uploads/{upload}/commit",
        needs: Needs::Token(Role::Admin),
        doc: Doc {
            summary: "Put an upload in force as the list's next version, suppressing finds, \
                exports and shares for `purposes`; the version it replaces is deleted; admin",
            more: "",
            body: Body::Json(schema::<UploadCommitReq>),
            params: None,
            answers: &[json(
                200,
                "The version now in force",
                &[schema::<Committed>],
            )],
            refusals: &[
                BAD,
                UNAUTHORIZED,
                FORBIDDEN,
                NOT_FOUND,
                TIMEOUT,
                refusal(
                    409,
                    "another import of the list committed meanwhile, or this upload is already \
                        the list's version in force: nothing changed",
                ),
                TOO_LARGE,
                LIMITED,
                SEALED,
            ],
        },
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The server authenticates by path prefix before routing (see
    /// `crate::server::gate`): the table must agree with it.
    #[test]
    fn token_routes_are_exactly_the_tenant_routes() {
        for route in ROUTES {
            let tenant = route.path.starts_with("/v1/tenants/");
            let token = matches!(route.needs, Needs::Token(_));
            assert_eq!(token, tenant, "{route:?}");
        }
    }

    #[test]
    fn every_route_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for route in ROUTES {
            assert!(seen.insert((route.method, route.path)), "{route:?}");
        }
    }
}
