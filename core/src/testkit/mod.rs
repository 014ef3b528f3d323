//! Test support: the store conformance suite, [`MemoryStore`] (the whole store contract in
//! memory), [`TokioClock`] (timestamps that follow tokio's paused time) and test service URLs.

mod clock;
pub mod conformance;
mod memory;
#[cfg(feature = "testkit-tls")]
pub mod pki;

pub use clock::TokioClock;
pub use memory::{Fault, MemoryStore};

/// The URL of a test service from `var`, or `default` when unset.
pub fn service_url(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}
