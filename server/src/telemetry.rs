//! The tracing subscriber (only the binary installs one): log lines to stderr and, in builds
//! with the `otel` feature, OpenTelemetry traces exported over OTLP/HTTP.
//!
//! The spans that name the work (their fields are the log lines' ids and the traces'
//! attributes):
//!
//! | span | where | fields |
//! | --- | --- | --- |
//! | `ingest` | publishing an event (API `POST …/events`, `…/events/batch`) | `account_id`, `event_id`, `event_type`, `deliveries`, `duplicate_of` |
//! | `claim` | one claim of due deliveries from the store | `batch`, `claimed` |
//! | `attempt` | one delivery attempt: sign, send, settle | `account_id`, `endpoint_id`, `event_id`, `event_type`, `delivery_id`, `attempt`, `status`, `latency_ms` |

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, ServerConfig};

/// The filter when `RUST_LOG` is unset: `info`, except PostgreSQL's notices (such as
/// `relation "_sqlx_migrations" already exists, skipping` at every start), which show only from
/// `warn` up.
pub const DEFAULT_FILTER: &str = "info,sqlx::postgres::notice=warn";

/// Installs the global subscriber: `RUST_LOG` filter (default [`DEFAULT_FILTER`]), text or JSON
/// to stderr. Text is coloured only when stderr is a terminal and `NO_COLOR` is unset.
pub fn init(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_ansi(ansi())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Installs the global subscriber of `hookline serve`: the log lines of [`init`], plus the
/// trace exporter when traces are configured (see [`Telemetry`]). Call [`Telemetry::shutdown`]
/// before exiting, so that the spans still buffered are sent.
pub fn init_serve(config: &ServerConfig) -> anyhow::Result<Telemetry> {
    #[cfg(feature = "otel")]
    if let Some(provider) = otel::provider(config.otlp_endpoint.as_deref())? {
        otel::install(config.log_format, &provider);
        return Ok(Telemetry {
            provider: Some(provider),
        });
    }
    init(config.log_format);
    Ok(Telemetry {
        #[cfg(feature = "otel")]
        provider: None,
    })
}

/// The installed telemetry. Traces are exported (builds with the `otel` feature only) when
/// `--otlp-endpoint` is given or one of the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_ENDPOINT` variables is set, unless `OTEL_SDK_DISABLED=true` or
/// `OTEL_TRACES_EXPORTER=none`.
#[derive(Debug)]
#[must_use = "call `shutdown` before exiting to send the buffered spans"]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered and stops the exporter: blocks for at most 5 s, so call
    /// it outside async code, e.g. from `tokio::task::spawn_blocking`.
    pub fn shutdown(self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "sending the last spans failed");
            }
        }
    }
}

fn log_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
}

fn ansi() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(feature = "otel")]
mod otel {
    use anyhow::Context as _;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry::{Key, KeyValue};
    use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing::Level;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    use crate::config::LogFormat;

    /// The exporting tracer provider, if traces are configured: `endpoint` (a base URL, as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`), else the standard variables.
    pub(super) fn provider(endpoint: Option<&str>) -> anyhow::Result<Option<SdkTracerProvider>> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let off = env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
        let from_env = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
            || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
        if off || (endpoint.is_none() && !from_env) {
            return Ok(None);
        }
        let mut exporter = SpanExporter::builder().with_http();
        if let Some(base) = endpoint {
            exporter = exporter.with_endpoint(format!("{}/v1/traces", base.trim_end_matches('/')));
        }
        let exporter = exporter
            .build()
            .context("building the OTLP trace exporter")?;
        // `OTEL_SERVICE_NAME` (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`) names the
        // service; `hookline` when neither does.
        let detected = Resource::builder().build();
        let named = detected
            .get(&Key::new("service.name"))
            .is_some_and(|v| !v.as_str().starts_with("unknown_service"));
        let mut resource = Resource::builder()
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
        if !named {
            resource = resource.with_service_name("hookline");
        }
        Ok(Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource.build())
                .build(),
        ))
    }

    /// Installs the log output (filtered by `RUST_LOG`) beside the span exporter, which takes
    /// spans and events from `info` up, and the HTTP request spans (`tower_http` at `debug`),
    /// whatever `RUST_LOG` says.
    pub(super) fn install(format: LogFormat, provider: &SdkTracerProvider) {
        let logs = tracing_subscriber::fmt::layer()
            .with_ansi(super::ansi())
            .with_writer(std::io::stderr);
        let logs = match format {
            LogFormat::Text => logs.boxed(),
            LogFormat::Json => logs.json().boxed(),
        };
        let traces = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("hookline"))
            .with_filter(
                Targets::new()
                    .with_default(Level::INFO)
                    .with_target("tower_http::trace", Level::DEBUG),
            );
        let _ = tracing_subscriber::registry()
            .with(logs.with_filter(super::log_filter()))
            .with(traces)
            .try_init();
    }
}
