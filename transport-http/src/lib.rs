//! The HTTP transport of Hookline: delivers a signed [`DeliveryRequest`] as an HTTP `POST` with
//! [`reqwest`] and returns the receiver's reply as a [`DeliveryResponse`].
//!
//! [`HttpTransport`] is a cloneable tower [`Service`], so it fits
//! [`hookline_core::transport::boxed`] directly and tower layers (concurrency, rate limits) wrap it.
//!
//! What it guarantees:
//!
//! - **One pooled client.** A single [`reqwest::Client`] is built in [`HttpTransport::new`] and shared
//!   by all clones. System proxy settings are ignored: a proxy would resolve the target itself and
//!   bypass the SSRF guard.
//! - **SSRF guard at connect time.** Host names are resolved by a custom resolver that drops every
//!   address that is not [`is_public`] and not inside [`HttpConfig::allow_networks`]; the connector
//!   dials only what the resolver returned, so there is no DNS-rebinding gap between check and
//!   connect. URLs with a literal IP host are checked before sending. If nothing remains the
//!   request fails with [`TransportError::Blocked`].
//! - **`https` only** unless [`HttpConfig::allow_http`] is set; other URLs fail with
//!   [`TransportError::InvalidUrl`].
//! - **Redirects are never followed.** A 3xx is returned as a response with that status.
//! - **Timeout.** [`DeliveryRequest::timeout`] bounds the whole exchange, connect to body excerpt;
//!   when it fires the result is [`TransportError::Timeout`].
//! - **Body excerpt.** At most [`RESPONSE_EXCERPT_BYTES`] of the response body are read, chunk by
//!   chunk; the rest is never read (the connection is dropped instead of drained).
//! - **A reply is a reply.** Once the status line and headers arrived, a failure while reading the
//!   body (connection reset, truncated body, protocol error) still yields the [`DeliveryResponse`]
//!   with the bytes read so far, because the receiver did answer; the failure is logged at `warn`.
//!   Only a timeout during the body read turns into [`TransportError::Timeout`].
//! - Connect, DNS, TLS and protocol failures before a status arrived are
//!   [`TransportError::Connect`] ([`TransportError::Tls`] when the TLS handshake failed).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use hookline_core::transport::DeliveryRequest;
//! use hookline_transport_http::{HttpConfig, HttpTransport};
//! use tower_service::Service;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut transport = HttpTransport::new(HttpConfig::default())?;
//! let response = transport
//!     .call(DeliveryRequest {
//!         url: "https://receiver.example.com/hooks".to_owned(),
//!         headers: http::HeaderMap::new(),
//!         body: bytes::Bytes::from_static(br#"{"type":"ping"}"#),
//!         timeout: Duration::from_secs(15),
//!     })
//!     .await?;
//! tracing::info!(status = response.status, "receiver answered");
//! // Or hand it to the dispatcher:
//! let _boxed = hookline_core::transport::boxed(transport);
//! # Ok(())
//! # }
//! ```
//!
//! # Cargo features
//!
//! | feature | default | what |
//! | --- | --- | --- |
//! | — | — | this crate has no features; TLS is always `rustls` with the webpki roots |

#![warn(missing_docs)]

mod config;
mod guard;

use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use hookline_core::model::RESPONSE_EXCERPT_BYTES;
use hookline_core::transport::{DeliveryRequest, DeliveryResponse, TransportError};
use reqwest::Url;
use reqwest::redirect;
use tower_service::Service;

pub use config::HttpConfig;
pub use guard::is_public;

use guard::{AddressPolicy, BlockedHost, GuardedResolver};

/// Why [`HttpTransport::new`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpTransportError {
    /// The underlying HTTP client could not be built (for example, TLS initialisation failed).
    #[error("failed to build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Delivers webhooks over HTTP(S). Cheap to clone: clones share one connection pool.
///
/// See the [crate docs](crate) for the rules it enforces.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    policy: AddressPolicy,
    allow_http: bool,
}

impl HttpTransport {
    /// Builds the transport and its pooled client.
    pub fn new(config: HttpConfig) -> Result<Self, HttpTransportError> {
        let policy = AddressPolicy::new(&config.allow_networks);
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(config.pool_idle_per_host)
            .user_agent(concat!("hookline/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(HttpTransportError::Client)?;
        tracing::debug!(
            allow_networks = ?config.allow_networks,
            allow_http = config.allow_http,
            "http transport ready"
        );
        Ok(Self {
            client,
            policy,
            allow_http: config.allow_http,
        })
    }

    /// Sends one request; the same as [`Service::call`] without needing `&mut self`.
    pub async fn send(&self, req: DeliveryRequest) -> Result<DeliveryResponse, TransportError> {
        let url = self.check_url(&req.url)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let started = Instant::now();
        let result = self.exchange(url, req).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok(resp) => {
                tracing::debug!(%host, status = resp.status, elapsed_ms, "delivery answered");
            }
            Err(e) => {
                tracing::debug!(%host, elapsed_ms, error = %e.describe(), "delivery failed");
            }
        }
        result
    }

    /// Parses the URL and applies the scheme rule and, for literal IP hosts, the address rule
    /// (reqwest does not call the resolver for those).
    fn check_url(&self, raw: &str) -> Result<Url, TransportError> {
        let url = Url::parse(raw).map_err(|e| TransportError::InvalidUrl(e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(TransportError::InvalidUrl(
                    "plain http is not allowed, use https".to_owned(),
                ));
            }
            other => {
                return Err(TransportError::InvalidUrl(format!(
                    "unsupported scheme `{other}`"
                )));
            }
        }
        let Some(host) = url.host_str() else {
            return Err(TransportError::InvalidUrl("missing host".to_owned()));
        };
        // IPv6 literals keep their brackets in `host_str`; domain names never parse as an address.
        let ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        if let Some(ip) = ip {
            if !self.policy.permits(ip) {
                tracing::warn!(%ip, "ssrf guard: literal address not permitted");
                return Err(TransportError::Blocked(host.to_owned()));
            }
        }
        Ok(url)
    }

    async fn exchange(
        &self,
        url: Url,
        req: DeliveryRequest,
    ) -> Result<DeliveryResponse, TransportError> {
        let mut resp = self
            .client
            .post(url)
            .headers(req.headers)
            .body(req.body)
            .timeout(req.timeout)
            .send()
            .await
            .map_err(classify)?;
        let status = resp.status().as_u16();
        let headers = std::mem::take(resp.headers_mut());
        let body = read_excerpt(&mut resp).await?;
        Ok(DeliveryResponse {
            status,
            headers,
            body,
        })
    }
}

/// Reads at most [`RESPONSE_EXCERPT_BYTES`] of the body, stopping as soon as the excerpt is full.
async fn read_excerpt(resp: &mut reqwest::Response) -> Result<Bytes, TransportError> {
    let mut excerpt = BytesMut::new();
    while excerpt.len() < RESPONSE_EXCERPT_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(RESPONSE_EXCERPT_BYTES - excerpt.len());
                excerpt.extend_from_slice(&chunk[..take]);
            }
            Ok(None) => break,
            Err(e) if e.is_timeout() => return Err(TransportError::Timeout),
            Err(e) => {
                // The receiver answered with a status; keep what arrived (see crate docs).
                tracing::warn!(
                    read = excerpt.len(),
                    error = %error_chain(&e),
                    "response body ended with an error; keeping the partial excerpt"
                );
                break;
            }
        }
    }
    Ok(excerpt.freeze())
}

/// Maps a reqwest error from `send()` to a [`TransportError`].
fn classify(err: reqwest::Error) -> TransportError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(blocked) = e.downcast_ref::<BlockedHost>() {
            return TransportError::Blocked(blocked.host.clone());
        }
        source = e.source();
    }
    if err.is_timeout() {
        TransportError::Timeout
    } else if err.is_builder() {
        TransportError::InvalidUrl(error_chain(&err))
    } else if is_tls(&err) {
        TransportError::Tls(Box::new(err))
    } else if err.is_connect() || err.is_request() || err.is_body() || err.is_decode() {
        TransportError::Connect(Box::new(err))
    } else {
        TransportError::Other(Box::new(err))
    }
}

/// Whether a rustls error is among the causes: the TLS handshake failed. (rustls reaches
/// reqwest inside `io::Error`s, possibly nested, whose `source()` skips the error each wraps.)
fn is_tls(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        let mut inner = e;
        // Bounded: an error chain is finite, and so is each nesting of wrapped errors.
        for _ in 0..8 {
            if inner.is::<rustls::Error>() {
                return true;
            }
            match inner
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
            {
                Some(wrapped) => inner = wrapped,
                None => break,
            }
        }
        source = e.source();
    }
    false
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

impl Service<DeliveryRequest> for HttpTransport {
    type Response = DeliveryResponse;
    type Error = TransportError;
    type Future = BoxFuture<'static, Result<DeliveryResponse, TransportError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: DeliveryRequest) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.send(req).await })
    }
}
