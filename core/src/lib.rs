//! # hookline-core
//!
//! The heart of Hookline, a webhook delivery platform: the domain model, the envelope a
//! receiver gets, the signing schemes and their verifiers, the retry policy, the store and
//! transport boundaries, the [`Dispatcher`](dispatcher::Dispatcher) that drives deliveries, and
//! the [service façade](service) that every front end calls.
//! It depends on no database, HTTP client or web framework; pick a store crate
//! (`hookline-store-sqlite`, …) and a transport (`hookline-transport-http`).
//!
//! ## Embedding
//! A Rust service embeds Hookline through [`service::Hookline`]: the same operations, checks and
//! error codes as the JSON API, with the caller given as an [`service::Actor`].
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn hookline_core::store::Store>, transport: hookline_core::transport::BoxTransport) -> Result<(), Box<dyn std::error::Error>> {
//! use hookline_core::service::{Actor, Hookline, NewAccount, NewEndpoint, NewEvent, NewEventType};
//!
//! let hookline = Hookline::builder(store, transport).build();
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let engine = hookline.dispatcher().clone();
//! tokio::spawn({
//!     let shutdown = shutdown.clone();
//!     async move { engine.run(shutdown).await }
//! });
//!
//! let admin = &Actor::Admin;
//! hookline.create_event_type(admin, NewEventType::new("order.paid")).await?;
//! hookline.create_account(admin, NewAccount::new("acme")).await?;
//! let endpoint = NewEndpoint::new("https://acme.example/hooks").event_types(["order.paid"]);
//! hookline.create_endpoint(admin, "acme", endpoint).await?;
//! let event = NewEvent::json("order.paid", &serde_json::json!({ "order": 42 }))?;
//! let receipt = hookline.publish(admin, "acme", event).await?;
//! println!("event {} → {} deliveries", receipt.event_id, receipt.deliveries.len());
//! shutdown.cancel();
//! # Ok(()) }
//! ```
//!
//! ## Encryption at rest
//! Wrap the store in [`sealing::SealedStore`] with a [`sealing::Keyring`] to keep endpoint
//! secrets, custom header values and (optionally) event data sealed in every backend; the
//! module docs say what is sealed, how keys rotate and how a start without the key fails.
//!
//! Receivers written in Rust verify requests with [`signing::verify_standard`] and
//! [`signing::verify_raw_body`].
//!
//! ## Features
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `testkit` | no | the `testkit` module: the store conformance suite every backend runs, an in-memory store and a clock for tests with paused tokio time |
//! | `openapi` | no | `utoipa::ToSchema` on the model and the service inputs (and `IntoParams` on the list queries), for the server's OpenAPI document |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod backend;
pub mod cache;
pub mod dispatcher;
pub mod envelope;
mod gate;
pub mod id;
pub mod metrics;
pub mod model;
pub mod retry;
pub mod sealing;
pub mod service;
pub mod signing;
pub mod store;
pub mod time;
pub mod transport;

#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;

pub use id::{
    AccountId, AttemptId, AuditId, DeliveryId, EndpointId, EventId, EventTypeName, KeyId, ReplayId,
    SiteId,
};
pub use time::{Clock, SystemClock, Timestamp};
