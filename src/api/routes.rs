//! The route table: every route's method, path and the caller it needs.

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

/// One route, as in `openapi.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The method, lower case as in the document.
    pub method: &'static str,
    /// The path template.
    pub path: &'static str,
    /// Who may call it.
    pub needs: Needs,
}

const fn r(method: &'static str, path: &'static str, needs: Needs) -> Route {
    Route {
        method,
        path,
        needs,
    }
}

/// Every route.
pub const ROUTES: &[Route] = &[
    r("get", "/v1/sys/health", Needs::Nobody),
    r("get", "/v1/sys/metrics", Needs::VaultAdmin),
    r("post", "/v1/sys/unseal", Needs::Nobody),
    r("post", "/v1/sys/seal", Needs::VaultAdmin),
    r("get", "/v1/sys/tokens", Needs::VaultAdmin),
    r("post", "/v1/sys/tokens", Needs::VaultAdmin),
    r("post", "/v1/sys/tokens/revoke-all", Needs::VaultAdmin),
    r("delete", "/v1/sys/tokens/{id}", Needs::VaultAdmin),
    r("get", "/v1/openapi.json", Needs::Nobody),
    r(
        "post",
        "/v1/tenants/{tenant}/numbers",
        Needs::Token(Role::Writer),
    ),
    r(
        "post",
        "/v1/tenants/{tenant}/numbers/batch",
        Needs::Token(Role::Writer),
    ),
    r(
        "get",
        "/v1/tenants/{tenant}/numbers/{id}",
        Needs::Token(Role::Reader),
    ),
    r(
        "delete",
        "/v1/tenants/{tenant}/numbers/{id}",
        Needs::Token(Role::Writer),
    ),
    r(
        "post",
        "/v1/tenants/{tenant}/lookup",
        Needs::Token(Role::Reader),
    ),
    r(
        "post",
        "/v1/tenants/{tenant}/lookup/last4",
        Needs::Token(Role::Reader),
    ),
    r(
        "post",
        "/v1/tenants/{tenant}/consent/grant",
        Needs::Token(Role::Writer),
    ),
    r(
        "post",
        "/v1/tenants/{tenant}/consent/withdraw",
        Needs::Token(Role::Writer),
    ),
    r(
        "post",
        "/v1/tenants/{tenant}/opt-out",
        Needs::Token(Role::Writer),
    ),
    r(
        "post",
        "/v1/tenants/{tenant}/erase",
        Needs::Token(Role::Writer),
    ),
    r(
        "post",
        "/v1/tenants/{tenant}/verify",
        Needs::Token(Role::Writer),
    ),
    r(
        "post",
        "/v1/tenants/{tenant}/stats",
        Needs::Token(Role::Auditor),
    ),
    r(
        "post",
        "/v1/tenants/{tenant}/inbound-sms",
        Needs::Token(Role::Inbound),
    ),
    r(
        "get",
        "/v1/tenants/{tenant}/suppression-lists",
        Needs::Token(Role::Admin),
    ),
    r(
        "delete",
        "/v1/tenants/{tenant}/suppression-lists/{list}",
        Needs::Token(Role::Admin),
    ),
    r(
        "post",
        "/v1/tenants/{tenant}/suppression-lists/{list}/uploads",
        Needs::Token(Role::Admin),
    ),
    r(
        "post",
        "/v1/tenants/{tenant}/suppression-lists/{list}/uploads/{upload}/rows",
        Needs::Token(Role::Admin),
    ),
    r(
        "post",
        "/v1/tenants/{tenant}/suppression-lists/{list}/uploads/{upload}/commit",
        Needs::Token(Role::Admin),
    ),
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
