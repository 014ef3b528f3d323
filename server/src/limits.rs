//! Request limits applied before any handler runs: the size of a request's URI and headers, and
//! the per-key request rate on `/v1`. Each refusal is a problem+json answer.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use sha2::{Digest as _, Sha256};

use crate::config::RateLimit;
use crate::error::ApiError;

/// Longest request target (path and query) answered; a longer one gets `414 uri_too_long`.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Most bytes of header names and values a request may send; more gets `431
/// headers_too_large`. (Heads beyond [`crate::door::HEAD_BUFFER_BYTES`] or with more than 100
/// header lines are refused earlier, by the HTTP layer, with a bare `431`.)
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// How many rate-limit checks pass between sweeps of the keys not seen lately.
const SWEEP_EVERY: u64 = 16 * 1024;

/// Answers `414` and `431` problems to requests whose URI or headers are over the limits.
pub async fn head_limits(req: Request, next: Next) -> Response {
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request URI is {uri_len} bytes long; the limit is {MAX_URI_BYTES}"),
        )
        .into_response();
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the request headers take {header_bytes} bytes; the limit is {MAX_HEADER_BYTES}"
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// Per-key request rates: one token bucket (GCRA) per bearer key, keyed by the key's SHA-256 so
/// that neither the key nor an arbitrarily long header is kept.
#[derive(Debug)]
pub struct KeyRateLimiter {
    limiter: DefaultKeyedRateLimiter<[u8; 32]>,
    checks: AtomicU64,
}

impl KeyRateLimiter {
    /// A limiter allowing `rate.per_second` requests per second per key, `rate.burst` at once.
    pub fn new(rate: RateLimit) -> Self {
        let per_second = NonZeroU32::new(rate.per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(rate.burst).unwrap_or(per_second);
        Self {
            limiter: governor::RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            checks: AtomicU64::new(0),
        }
    }

    /// `Ok` when the key may make a request now, else the whole seconds until it may.
    pub fn check(&self, key: &[u8]) -> Result<(), u64> {
        let digest: [u8; 32] = Sha256::digest(key).into();
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(&digest).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// Refuses a request under `/v1` with `429 rate_limited` and `Retry-After` when its bearer key
/// made more requests than its rate allows. Requests without a key pass (they are refused
/// `401` by the route).
pub async fn rate_limit(
    State(limiter): State<Arc<KeyRateLimiter>>,
    req: Request,
    next: Next,
) -> Response {
    if req.uri().path().starts_with("/v1/") {
        if let Some(key) = req.headers().get(header::AUTHORIZATION) {
            if let Err(secs) = limiter.check(key.as_bytes()) {
                metrics::counter!("hookline_rate_limited_total").increment(1);
                let mut res = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!(
                        "this API key sent more requests than its rate allows; retry in {secs} s"
                    ),
                )
                .into_response();
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
                return res;
            }
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_has_its_own_bucket() {
        let limiter = KeyRateLimiter::new(RateLimit {
            per_second: 1,
            burst: 3,
        });
        for _ in 0..3 {
            assert!(limiter.check(b"Bearer a").is_ok());
        }
        let wait = limiter.check(b"Bearer a").unwrap_err();
        assert!((1..=2).contains(&wait), "{wait}");
        assert!(
            limiter.check(b"Bearer b").is_ok(),
            "another key is not held"
        );
    }
}
