//! # hookline-server
//!
//! The Hookline server: the JSON API under `/v1` behind tower middleware, the delivery workers,
//! and the `hookline` command line (`serve`, `listen`, `migrate`; the binary's operator commands,
//! such as `hookline endpoints list`, are clients of the API). Tests and embedders start it
//! in-process with [`app()`] (the router over an [`AppState`]) or [`run()`].
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let config = hookline_server::config::ServerConfig::default();
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! hookline_server::run(config, shutdown).await
//! # }
//! ```
//!
//! ## Features
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `sqlite` | yes | the embedded SQLite store (`sqlite://path`) |
//! | `postgres` | no | the PostgreSQL store (`postgres://…`) |
//! | `redis` | no | the Redis store (`redis://…`) |
//! | `otel` | no | OpenTelemetry traces exported over OTLP/HTTP ([`telemetry`]) |
//! | `full` | no | every store above, and `otel` |
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "redis")))]
compile_error!(
    "hookline-server needs at least one store backend feature: `sqlite`, `postgres` or `redis`"
);

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod door;
pub mod error;
pub mod limits;
pub mod listen;
pub mod metrics;
pub mod openapi;
pub mod state;
pub mod telemetry;
pub mod ui;

pub use app::{app, open_store, run};
pub use state::AppState;
