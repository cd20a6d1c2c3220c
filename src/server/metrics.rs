//! Metrics in the Prometheus text format (0.0.4), at `GET /v1/sys/metrics` (vault-wide
//! admin token) and, with `serve --metrics-listen ADDR`, on a listener of their own that
//! serves nothing else.
//!
//! Labels are bounded and name nothing a caller chose: the route *template*
//! (`/v1/tenants/{tenant}/lookup`, never a tenant name or record id), the status code, and
//! for key budgets the tenant and key version (tenant names are the operator's). No phone
//! number, record id or token appears in any metric.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType, Summary};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

use super::{App, ROUTES};

/// The content type of the classic Prometheus text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Request metrics, updated on every request.
pub(crate) struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub(crate) fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "phonevault_requests_total",
                "Requests answered, by route template and HTTP status.",
            ),
            &["route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "phonevault_request_duration_seconds",
                "Time from a request's arrival to its answer, by route template.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
            &["route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
        })
    }

    /// Counts one answered request.
    pub(crate) fn observe(&self, method: &str, path: &str, status: u16, elapsed: Duration) {
        let route = route_label(method, path);
        self.requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// Every metric, in the text format.
    pub(crate) fn render(&self, app: &App) -> String {
        let mut families = self.registry.gather();
        families.extend(snapshot(app));
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail but for a malformed family, which the code above
        // never builds; an empty answer would show it.
        let _ = TextEncoder::new().encode(&families, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The route template a request matched (`other` for none): a label of bounded values,
/// whatever the caller sent.
fn route_label(method: &str, path: &str) -> &'static str {
    let segments = |p: &str| p.trim_end_matches('/').split('/').count();
    let n = segments(path);
    ROUTES
        .iter()
        .find(|r| {
            r.method.as_str().eq_ignore_ascii_case(method)
                && segments(r.path) == n
                && r.path
                    .split('/')
                    .zip(path.split('/'))
                    .all(|(t, p)| t.starts_with('{') || t == p)
        })
        .map_or("other", |r| r.path)
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_owned());
    f.set_help(help.to_owned());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

fn gauge(value: f64, labels: &[(&str, &str)]) -> Metric {
    let mut g = Gauge::default();
    g.set_value(value);
    let mut m = Metric::from_gauge(g);
    m.set_label(label_pairs(labels));
    m
}

fn counter(value: f64) -> Metric {
    let mut c = Counter::default();
    c.set_value(value);
    let mut m = Metric::default();
    m.set_counter(c);
    m
}

fn summary(count: u64, sum: f64) -> Metric {
    let mut s = Summary::default();
    s.set_sample_count(count);
    s.set_sample_sum(sum);
    let mut m = Metric::default();
    m.set_summary(s);
    m
}

fn label_pairs(labels: &[(&str, &str)]) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|(k, v)| {
            let mut l = LabelPair::default();
            l.set_name((*k).to_owned());
            l.set_value((*v).to_owned());
            l
        })
        .collect()
}

/// What is read at scrape time: sealed state, the sweeper, the audit log, key budgets and
/// the store's size.
fn snapshot(app: &App) -> Vec<MetricFamily> {
    let vault = app.current();
    let sweeps = &app.sweeps;
    let mut out = vec![
        family(
            "phonevault_sealed",
            "1 while the server is sealed (no keys in memory), else 0.",
            MetricType::GAUGE,
            vec![gauge(f64::from(u8::from(vault.is_none())), &[])],
        ),
        family(
            "phonevault_retention_sweeps_total",
            "Retention sweeps finished by the server (serve --purge-every).",
            MetricType::COUNTER,
            vec![counter(sweeps.sweeps.load(Ordering::Relaxed) as f64)],
        ),
        family(
            "phonevault_retention_purged_total",
            "Records past their retention deleted by the server's sweeper.",
            MetricType::COUNTER,
            vec![counter(sweeps.deleted.load(Ordering::Relaxed) as f64)],
        ),
        family(
            "phonevault_retention_sweep_failures_total",
            "Retention sweeps stopped by an error (retried at the next sweep).",
            MetricType::COUNTER,
            vec![counter(sweeps.failures.load(Ordering::Relaxed) as f64)],
        ),
    ];
    let Some(vault) = vault else { return out };
    let a = vault.audit_stats();
    out.push(family(
        "phonevault_audit_group_entries",
        "Audit entries per chain link (a group committed together): count is links, sum is entries.",
        MetricType::SUMMARY,
        vec![summary(a.links, a.entries as f64)],
    ));
    out.push(family(
        "phonevault_audit_sync_seconds",
        "Time spent making audit entries durable (store flush, or journal fdatasync).",
        MetricType::SUMMARY,
        vec![summary(a.syncs, a.sync_seconds)],
    ));
    out.push(family(
        "phonevault_audit_journal_records",
        "Records per write(2) to the audit journal (--audit-sync process: reads waiting at once share one): count is writes, sum is records.",
        MetricType::SUMMARY,
        vec![summary(a.journal_writes, a.journal_records as f64)],
    ));
    out.push(family(
        "phonevault_audit_pending_entries",
        "Audit entries answered for but not yet in a stored chain link (the journal's lag).",
        MetricType::GAUGE,
        vec![gauge(a.pending as f64, &[])],
    ));
    let budgets = vault.key_budgets();
    out.push(family(
        "phonevault_key_encryptions_budget_ratio",
        "Encryptions counted under a tenant's data-key version, as a share of the 2^31 after which it rotates.",
        MetricType::GAUGE,
        budgets
            .iter()
            .map(|(tenant, version, share)| {
                gauge(*share, &[("tenant", tenant), ("version", &version.to_string())])
            })
            .collect(),
    ));
    if let Some(bytes) = vault.store_size() {
        out.push(family(
            "phonevault_store_bytes",
            "Size of the store on disk (sled); absent for a database store.",
            MetricType::GAUGE,
            vec![gauge(bytes as f64, &[])],
        ));
    }
    out
}

/// Serves the metrics alone on `addr` (`serve --metrics-listen`): `GET /metrics` answers
/// them, anything else 404. No authentication: bind it where only the scraper reaches.
pub(crate) async fn listen(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
) -> std::io::Result<()> {
    tracing::info!("phonevault serve: metrics on http://{addr}/metrics");
    loop {
        let (io, _) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => continue,
        };
        let app = app.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    async move {
                        let (status, ctype, body) = if req.method() == hyper::Method::GET
                            && req.uri().path() == "/metrics"
                        {
                            let m = app.metrics.render(&app);
                            (200, CONTENT_TYPE, m)
                        } else {
                            (404, "text/plain", "only GET /metrics here\n".to_owned())
                        };
                        hyper::Response::builder()
                            .status(status)
                            .header(hyper::header::CONTENT_TYPE, ctype)
                            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_are_templates_never_names_or_ids() {
        assert_eq!(
            route_label("POST", "/v1/tenants/shop/lookup"),
            "/v1/tenants/{tenant}/lookup"
        );
        assert_eq!(
            route_label(
                "GET",
                "/v1/tenants/acme/numbers/0190f1c2a3b4c5d6e7f8091a2b3c4d5e"
            ),
            "/v1/tenants/{tenant}/numbers/{id}"
        );
        assert_eq!(route_label("GET", "/v1/sys/health"), "/v1/sys/health");
        assert_eq!(route_label("GET", "/v1/tenants/+447400123456/x"), "other");
        assert_eq!(route_label("PUT", "/v1/sys/health"), "other");
        assert_eq!(route_label("GET", "/"), "other");
    }
}
