//! Prometheus metrics: the recorder every metric of the process goes to, the `/metrics` text, the
//! HTTP request counter, and the task that samples the store's backlog.
//!
//! The recorder (from `metrics-exporter-prometheus`) is installed once per process, globally;
//! what it holds is rendered on request by axum, on the main port (admin key required) or on
//! its own address (`--metrics-listen`, no key). The metrics themselves are listed in
//! [`hookline_core::metrics`], plus [`HTTP_REQUESTS`] here.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hookline_core::store::Store;
use hookline_core::time::Clock;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Counter: API requests, by `method`, `route` (the route pattern, e.g.
/// `/v1/accounts/{account}/events`, or [`UNMATCHED_ROUTE`]) and `status`.
pub const HTTP_REQUESTS: &str = "hookline_http_requests_total";

/// The `route` label of a request that matched no route.
pub const UNMATCHED_ROUTE: &str = "(unmatched)";

/// How often the backlog is read from the store.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);

/// Bucket upper bounds, in seconds, of the duration histograms.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The Prometheus text format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's Prometheus recorder (the first call does; later ones return the same
/// handle) and describes every metric.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .context("metric buckets")?
        .build_recorder();
    let handle = recorder.handle();
    ::metrics::set_global_recorder(recorder)
        .context("installing the metrics recorder (another one is installed in this process)")?;
    hookline_core::metrics::describe();
    ::metrics::describe_counter!(
        HTTP_REQUESTS,
        ::metrics::Unit::Count,
        "API requests, by method, route pattern and status"
    );
    ::metrics::describe_counter!(
        "hookline_rate_limited_total",
        ::metrics::Unit::Count,
        "API requests refused because their key exceeded its request rate"
    );
    ::metrics::describe_counter!(
        "hookline_connections_refused_total",
        ::metrics::Unit::Count,
        "Connections refused because the server had --max-connections open"
    );
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// The rendered metrics, as Prometheus scrapes them.
fn render(handle: &PrometheusHandle) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        handle.render(),
    )
        .into_response()
}

/// `GET /metrics` on the main port: the admin key is required (metrics describe the whole
/// deployment).
pub(crate) fn admin_route(handle: PrometheusHandle) -> Router<AppState> {
    Router::new()
        .route("/metrics", axum::routing::get(admin_metrics))
        .layer(axum::Extension(handle))
}

crate::problems!(MetricsProblems = [crate::openapi::AUTH, crate::openapi::ADMIN]);

/// The deployment's metrics in the Prometheus text format (admin key). Absent when the server
/// serves them on `--metrics-listen` instead.
#[utoipa::path(get, path = "/metrics", tag = "meta", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format.", body = String,
        content_type = "text/plain"), MetricsProblems),
    security(("adminKey" = [])))]
pub(crate) async fn admin_metrics(
    axum::Extension(handle): axum::Extension<PrometheusHandle>,
    Caller(actor): Caller,
) -> Result<Response, ApiError> {
    actor.require_admin().map_err(ApiError::from)?;
    Ok(render(&handle))
}

/// The router of `--metrics-listen`: `GET /metrics`, open (the address is meant to be reachable
/// only by the scraper), and problem+json 404 elsewhere.
pub fn open_router(handle: PrometheusHandle) -> Router {
    Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || async move { render(&handle) }),
        )
        .fallback(|| async { ApiError::not_found("route_not_found", "no such route") })
}

/// Middleware counting each request in [`HTTP_REQUESTS`] by route pattern (never the raw path,
/// so ids do not become labels), method and status.
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED_ROUTE.to_owned(), |p| p.as_str().to_owned());
    let method: &'static str = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let response = next.run(req).await;
    ::metrics::counter!(
        HTTP_REQUESTS,
        "method" => method,
        "route" => route,
        "status" => response.status().as_str().to_owned(),
    )
    .increment(1);
    response
}

/// Samples the store's backlog into the gauges at once and then every [`SAMPLE_INTERVAL`], and
/// keeps the recorder's histograms trimmed, until `shutdown`.
pub(crate) async fn sample(
    store: std::sync::Arc<dyn Store>,
    clock: std::sync::Arc<dyn Clock>,
    handle: PrometheusHandle,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // A failure is counted in the store errors; the gauges keep their last values.
        if let Err(e) = hookline_core::metrics::record_backlog(store.as_ref(), clock.now()).await {
            tracing::debug!(error = %e, "sampling the backlog failed");
        }
        handle.run_upkeep();
    }
}
