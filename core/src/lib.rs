//! # hookline-core
//!
//! The heart of Hookline, a webhook delivery platform: the domain model, the envelope a
//! receiver gets, the signing schemes and their verifiers, the retry policy, the store and
//! transport boundaries, and the [`Dispatcher`](dispatcher::Dispatcher) that drives deliveries.
//! It depends on no database, HTTP client or web framework; pick a store crate
//! (`hookline-store-sqlite`, …) and a transport (`hookline-transport-http`).
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn hookline_core::store::Store>, transport: hookline_core::transport::BoxTransport) -> Result<(), hookline_core::dispatcher::DispatchError> {
//! use hookline_core::dispatcher::Dispatcher;
//! use hookline_core::retry::Schedule;
//!
//! let dispatcher = Dispatcher::builder(store, transport).retry_policy(Schedule::default()).build();
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! dispatcher.run(shutdown).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Receivers written in Rust verify requests with [`signing::verify_standard`] and
//! [`signing::verify_raw_body`].
//!
//! ## Features
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `testkit` | no | the `testkit` module: the store conformance suite every backend runs, an in-memory store and a clock for tests with paused tokio time |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod backend;
pub mod cache;
pub mod dispatcher;
pub mod envelope;
mod gate;
pub mod id;
pub mod model;
pub mod retry;
pub mod signing;
pub mod store;
pub mod time;
pub mod transport;

#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;

pub use id::{AccountId, AttemptId, DeliveryId, EndpointId, EventId, EventTypeName, SiteId};
pub use time::{Clock, SystemClock, Timestamp};
