//! The transport boundary: a tower [`Service`](tower_service::Service) from
//! [`DeliveryRequest`] to [`DeliveryResponse`].
//!
//! A non-2xx reply is a response, not an error; [`TransportError`] means no reply at all. Timeouts,
//! concurrency and rate limits are ordinary tower layers around a transport, and a test transport
//! is one `tower::service_fn` closure.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;

/// A boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One signed webhook request.
#[derive(Debug, Clone)]
pub struct DeliveryRequest {
    /// Target URL.
    pub url: String,
    /// All headers, signatures included.
    pub headers: HeaderMap,
    /// The envelope.
    pub body: Bytes,
    /// Give up after this long.
    pub timeout: Duration,
}

/// The receiver's reply.
#[derive(Debug, Clone)]
pub struct DeliveryResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The start of the response body, at most [`RESPONSE_EXCERPT_BYTES`](crate::model::RESPONSE_EXCERPT_BYTES).
    pub body: Bytes,
}

/// No reply: why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No complete reply within the timeout.
    #[error("timed out")]
    Timeout,
    /// The URL resolves only to addresses the deployment does not allow.
    #[error("blocked address: {0}")]
    Blocked(String),
    /// The URL could not be used.
    #[error("invalid url: {0}")]
    InvalidUrl(String),
    /// DNS, connect or protocol failure.
    #[error("connection failed")]
    Connect(#[source] BoxError),
    /// The TLS handshake failed (a certificate the client does not trust, a protocol error).
    #[error("TLS handshake failed")]
    Tls(#[source] BoxError),
    /// Anything else.
    #[error("request failed")]
    Other(#[source] BoxError),
}

impl TransportError {
    /// A one-line description with the source chain, for attempt records.
    pub fn describe(&self) -> String {
        let mut out = self.to_string();
        let mut src = std::error::Error::source(self);
        while let Some(e) = src {
            out.push_str(": ");
            out.push_str(&e.to_string());
            src = e.source();
        }
        out
    }
}

/// Any cloneable tower service that delivers requests.
pub trait Transport:
    tower_service::Service<
        DeliveryRequest,
        Response = DeliveryResponse,
        Error = TransportError,
        Future: Send,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> Transport for T where
    T: tower_service::Service<
            DeliveryRequest,
            Response = DeliveryResponse,
            Error = TransportError,
            Future: Send,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// A transport boxed once, as the dispatcher holds it.
pub type BoxTransport =
    tower::util::BoxCloneSyncService<DeliveryRequest, DeliveryResponse, TransportError>;

/// Boxes any transport.
pub fn boxed<T: Transport>(t: T) -> BoxTransport {
    BoxTransport::new(t)
}
