//! The route table: every route's method, path and the caller it needs.

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Anyone who may use the socket (health, the document, unseal).
    Nobody,
    /// A vault-wide admin token (the `/v1/sys` routes that manage the vault).
    VaultAdmin,
    /// A token; the policy (`crate::policy::decide`) then decides on its tenant, role,
    /// purposes and reveal right. Every such route is under `/v1/tenants/{tenant}`,
    /// where the server authenticates before it reads a byte of the body.
    Token,
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
    r("post", "/v1/tenants/{tenant}/numbers", Needs::Token),
    r("post", "/v1/tenants/{tenant}/numbers/batch", Needs::Token),
    r("get", "/v1/tenants/{tenant}/numbers/{id}", Needs::Token),
    r("delete", "/v1/tenants/{tenant}/numbers/{id}", Needs::Token),
    r("post", "/v1/tenants/{tenant}/lookup", Needs::Token),
    r("post", "/v1/tenants/{tenant}/lookup/last4", Needs::Token),
    r("post", "/v1/tenants/{tenant}/consent/grant", Needs::Token),
    r(
        "post",
        "/v1/tenants/{tenant}/consent/withdraw",
        Needs::Token,
    ),
    r("post", "/v1/tenants/{tenant}/opt-out", Needs::Token),
    r("post", "/v1/tenants/{tenant}/erase", Needs::Token),
    r("post", "/v1/tenants/{tenant}/verify", Needs::Token),
    r("post", "/v1/tenants/{tenant}/stats", Needs::Token),
    r("post", "/v1/tenants/{tenant}/inbound-sms", Needs::Token),
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
            assert_eq!(route.needs == Needs::Token, tenant, "{route:?}");
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
