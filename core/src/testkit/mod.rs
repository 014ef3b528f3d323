//! Test support: the store conformance suite and test service URLs.

pub mod conformance;

/// The URL of a test service from `var`, or `default` when unset.
pub fn service_url(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}
