//! The HTTP application (routes behind tower middleware) and the `serve` entry point.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hookline_core::cache::CachedStore;
use hookline_core::dispatcher::{Dispatcher, DispatcherConfig};
use hookline_core::metrics::MeteredStore;
use hookline_core::sealing::{SealedStore, SealingOptions, check_unsealed};
use hookline_core::service::{AddressRule, Hookline, ServiceConfig};
use hookline_core::signing::{RawBodySignature, SignerSet, StandardWebhooks};
use hookline_core::store::Store;
use hookline_transport_http::{HttpConfig, HttpTransport};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// The router with every route and middleware, over `state`. With `metrics`, it serves that
/// recorder's text at `GET /metrics` to the admin key; without, the route is absent (the server
/// serves it on `--metrics-listen` then).
pub fn app(state: AppState, metrics: Option<PrometheusHandle>) -> Router {
    app_with(state, metrics, true)
}

/// [`app`], counting each request in the HTTP metrics only when `count_requests` (off when the
/// server keeps no metrics).
pub fn app_with(
    state: AppState,
    metrics: Option<PrometheusHandle>,
    count_requests: bool,
) -> Router {
    let max_body = state.hookline.config().max_event_bytes;
    let limits = state.limits;
    let (mut router, _) = crate::openapi::router(max_body).split_for_parts();
    if let Some(handle) = metrics {
        router = router.merge(crate::metrics::admin_route(handle));
    }
    router = router.merge(crate::ui::routes());
    let mut router = router
        .fallback(|| async { ApiError::not_found("route_not_found", "no such route") })
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(RequestBodyTimeoutLayer::new(limits.body_read_timeout));
    if let Some(rate) = limits.rate_limit {
        router = router.layer(axum::middleware::from_fn_with_state(
            Arc::new(crate::limits::KeyRateLimiter::new(rate)),
            crate::limits::rate_limit,
        ));
    }
    let router = router
        .layer(axum::middleware::from_fn(crate::limits::head_limits))
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::map_response(
                    crate::error::problem_for_bare_errors,
                ))
                .layer(SetSensitiveRequestHeadersLayer::new([
                    header::AUTHORIZATION,
                ]))
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(TraceLayer::new_for_http())
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(30),
                )),
        );
    if count_requests {
        // Outermost, so that panics and time-outs are counted with the status answered.
        router.layer(axum::middleware::from_fn(crate::metrics::track))
    } else {
        router
    }
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
    .into_response()
}

/// How a store is reached, beyond its URL.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StoreOptions {
    /// CA certificates (a PEM file) that the store server's TLS certificate must be issued by:
    /// PostgreSQL's when the URL names no `sslrootcert` (and `verify-full` when it sets no
    /// `sslmode`), a `rediss://` server's. SQLite has no server: a CA file is refused there.
    pub ca_file: Option<PathBuf>,
}

impl StoreOptions {
    /// The store settings of `config`.
    pub fn from_config(config: &ServerConfig) -> Self {
        Self {
            ca_file: config.store_ca_file.clone(),
        }
    }
}

/// Puts the backend behind encryption at rest when `config` has keys
/// ([`hookline_core::sealing::SealedStore`], checked against the store's marker); without
/// keys, checks that the store holds no sealed values. Either way a mismatch fails here, at
/// start, with a message naming the key ids involved.
pub async fn seal_store(
    config: &ServerConfig,
    backend: Arc<dyn Store>,
) -> anyhow::Result<Arc<dyn Store>> {
    match &config.encryption {
        Some(keyring) => {
            let options = SealingOptions::new().payloads(config.encrypt_payloads);
            let sealed = SealedStore::open(backend, keyring.clone(), options)
                .await
                .context("checking the encryption keys against the store")?;
            tracing::info!(
                key = keyring.current_id(),
                payloads = config.encrypt_payloads,
                "encryption at rest on"
            );
            Ok(Arc::new(sealed))
        }
        None => {
            check_unsealed(backend.as_ref())
                .await
                .context("checking the store for encrypted values")?;
            Ok(backend)
        }
    }
}

/// Opens the store named by `url`, among the backends compiled in.
pub async fn open_store(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    open_store_with(url, &StoreOptions::default()).await
}

/// Opens the store named by `url` with `options`. A store that cannot be reached fails with
/// one line naming its host and port and the cause (`could not connect to PostgreSQL at
/// 127.0.0.1:5432: connection refused`); other failures name the URL, its password masked.
pub async fn open_store_with(url: &str, options: &StoreOptions) -> anyhow::Result<Arc<dyn Store>> {
    let scheme = if url.contains("://") {
        url.split("://").next().unwrap_or_default()
    } else {
        "sqlite"
    };
    #[cfg_attr(
        not(any(feature = "postgres", feature = "redis")),
        allow(unused_variables)
    )]
    let opening = |e: anyhow::Error, name: &str| {
        e.context(format!("opening {name} store `{}`", redact_url(url)))
    };
    match scheme {
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            if let Some(ca) = &options.ca_file {
                anyhow::bail!(
                    "store_ca_file ({}) is for PostgreSQL and Redis servers; the SQLite store has none",
                    ca.display()
                );
            }
            let store = hookline_store_sqlite::SqliteStore::connect(url, Default::default())
                .await
                .with_context(|| format!("opening SQLite store `{url}`"))?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => {
            use hookline_store_postgres::{PgConfig, PgError, PgStore};
            let mut cfg = PgConfig::default();
            if let Some(ca) = &options.ca_file {
                cfg = cfg.ca_file(ca);
            }
            match PgStore::connect(url, cfg).await {
                Ok(store) => Ok(Arc::new(store)),
                // These name the server and the cause already.
                Err(e @ (PgError::Connect { .. } | PgError::ConnectTimeout { .. })) => {
                    Err(e.into())
                }
                Err(e) => Err(opening(e.into(), "PostgreSQL")),
            }
        }
        #[cfg(feature = "redis")]
        "redis" | "rediss" => {
            use hookline_store_redis::{RedisConfig, RedisError, RedisStore};
            let mut cfg = RedisConfig::default();
            if let Some(ca) = &options.ca_file {
                cfg = cfg.ca_file(ca);
            }
            match RedisStore::connect(url, cfg).await {
                Ok(store) => Ok(Arc::new(store)),
                Err(e @ (RedisError::Connect { .. } | RedisError::Timeout { .. })) => Err(e.into()),
                Err(e) => Err(opening(e.into(), "Redis")),
            }
        }
        #[allow(unreachable_patterns)]
        "sqlite" | "postgres" | "postgresql" | "redis" | "rediss" => anyhow::bail!(
            "store `{}`: the `{scheme}` backend is not compiled into this build (enable the server feature `{}`)",
            redact_url(url),
            match scheme {
                "sqlite" => "sqlite",
                "postgres" | "postgresql" => "postgres",
                _ => "redis",
            }
        ),
        other => anyhow::bail!(
            "store `{}`: unknown scheme `{other}` (use sqlite://, postgres:// or redis://)",
            redact_url(url)
        ),
    }
}

/// `url` with any password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The transport's SSRF rule (public addresses, plus `--allow-network`), for the façade to
/// refuse endpoint URLs that name a blocked address literally.
fn address_rule(allow: &[ipnet::IpNet]) -> AddressRule {
    let allow: Vec<ipnet::IpNet> = allow.to_vec();
    AddressRule::new(move |ip| {
        hookline_transport_http::is_public(ip) || allow.iter().any(|n| n.contains(&ip))
    })
}

/// The dispatcher for `config` over `store`.
pub fn dispatcher(config: &ServerConfig, store: Arc<dyn Store>) -> anyhow::Result<Dispatcher> {
    let http = HttpConfig::default()
        .allow_networks(config.allow_networks.clone())
        .allow_http(config.allow_http);
    let transport = HttpTransport::new(http).context("building the HTTP client")?;
    let signer = SignerSet::new(vec![
        Box::new(StandardWebhooks),
        Box::new(RawBodySignature::new(config.signature_header.clone())),
    ]);
    Ok(
        Dispatcher::builder(store, hookline_core::transport::boxed(transport))
            .signer(signer)
            .retry_policy(config.retry.clone())
            .config(
                DispatcherConfig::default()
                    .with_request_timeout(config.request_timeout)
                    .with_lease(config.lease)
                    .with_concurrency(config.concurrency)
                    .with_endpoint_concurrency(config.endpoint_concurrency)
                    .with_circuit(config.circuit_threshold, config.circuit_cooldown)
                    .with_circuit_failure_rate(config.circuit_failure_rate)
                    .with_disable_after(config.disable_after)
                    .with_retention(config.retention, Duration::from_secs(3600)),
            )
            .build(),
    )
}

/// Runs the server (API and workers) until `shutdown` is cancelled, then drains in-flight
/// deliveries within the grace period.
///
/// When no admin key is configured and the store has none, one is generated once the listener
/// is bound and shown on standard output (never through `tracing`): it is shown only this once.
pub async fn run(config: ServerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    // With `--metrics off` no recorder is installed: the metrics macros of the whole process go
    // nowhere, the store is not wrapped for timing, and no sampler runs.
    let metrics = if config.metrics {
        Some(crate::metrics::install()?)
    } else {
        None
    };
    // One cached store for the API and the dispatcher alike (see `hookline_core::cache`), over
    // the backend's calls counted and timed (`hookline_core::metrics`).
    let backend = open_store_with(&config.store, &StoreOptions::from_config(&config)).await?;
    let mut backend: Arc<dyn Store> = seal_store(&config, backend).await?;
    if metrics.is_some() {
        backend = Arc::new(MeteredStore::new(backend));
    }
    let store: Arc<dyn Store> = Arc::new(CachedStore::new(backend));
    let dispatcher = dispatcher(&config, store.clone())?;
    let limits = crate::state::RequestLimits::from_config(&config);
    let state = AppState::new(Hookline::new(
        dispatcher.clone(),
        ServiceConfig::default()
            .with_max_event_bytes(config.max_event_bytes)
            .with_max_batch_deliveries(config.max_batch_deliveries)
            .with_allow_http(config.allow_http)
            .with_endpoint_addresses(address_rule(&config.allow_networks)),
    ))
    .with_limits(limits);
    // Bound before the admin key is generated: a start that fails here has not used up the one
    // showing of the key.
    let listener =
        crate::door::bind(config.listen).with_context(|| format!("binding {}", config.listen))?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the metrics address {addr}"))?,
        ),
        None => None,
    };
    let generated = crate::auth::bootstrap_admin_key(
        store.as_ref(),
        config.admin_key.as_ref().map(|k| k.0.as_str()),
    )
    .await
    .map_err(|e| anyhow::anyhow!("storing the admin key: {e:?}"))?;
    if let Some(key) = generated {
        show_admin_key(&key)?;
    }
    tracing::info!(addr = %listener.local_addr()?, store = %redact_url(&config.store), "hookline listening");
    let sampler = metrics.clone().map(|handle| {
        tokio::spawn(crate::metrics::sample(
            store.clone(),
            dispatcher.clock().clone(),
            handle,
            shutdown.clone(),
        ))
    });
    let count_requests = metrics.is_some();
    let (main_metrics, metrics_server) = match (metrics_listener, metrics) {
        (Some(l), Some(metrics)) => {
            tracing::info!(addr = %l.local_addr()?, "metrics listening");
            let served = axum::serve(l, crate::metrics::open_router(metrics))
                .with_graceful_shutdown(shutdown.clone().cancelled_owned());
            (None, Some(tokio::spawn(served.into_future())))
        }
        (_, metrics) => (metrics, None),
    };
    let workers = tokio::spawn({
        let d = dispatcher.clone();
        let token = shutdown.clone();
        // A dispatcher that stops on a failure stops the server too.
        async move { d.run(token.clone()).await.inspect_err(|_| token.cancel()) }
    });
    let door = crate::door::DoorConfig {
        header_read_timeout: config.header_read_timeout,
        idle_timeout: config.idle_timeout,
        max_connections: config
            .max_connections
            .unwrap_or_else(crate::door::default_max_connections),
    };
    tracing::info!(
        max_connections = door.max_connections,
        header_read_timeout = ?door.header_read_timeout,
        idle_timeout = ?door.idle_timeout,
        "connection limits"
    );
    let served = crate::door::serve(
        listener,
        app_with(state, main_metrics, count_requests),
        door,
        shutdown.clone(),
    )
    .await
    .context("serving HTTP");
    shutdown.cancel();
    served?;
    if let Some(m) = metrics_server {
        m.await
            .context("metrics task")?
            .context("serving metrics")?;
    }
    if let Some(sampler) = sampler {
        sampler.await.context("metrics sampler task")?;
    }
    workers.await.context("dispatcher task")??;
    Ok(())
}

/// Writes a generated admin key to standard output, the one place it is ever shown: logs may be
/// shipped and kept elsewhere, so the key never goes through `tracing`.
fn show_admin_key(key: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Generated the admin API key. It is shown only this once and stored hashed; keep it now:"
    )
    .and_then(|()| writeln!(out, "admin_key={key}"))
    .and_then(|()| out.flush())
    .context(
        "writing the generated admin key to standard output (it is stored already; set \
         HOOKLINE_ADMIN_KEY to use a key of your own)",
    )
}
