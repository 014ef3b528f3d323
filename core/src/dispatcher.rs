//! The dispatcher: fans events out on publish, then claims due deliveries, signs and sends
//! them with bounded concurrency, and settles each attempt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tracing::Instrument as _;

use crate::envelope::envelope;
use crate::id::{AttemptId, EndpointId};
use crate::model::{Attempt, Event, RESPONSE_EXCERPT_BYTES};
use crate::retry::{Outcome, RetryPolicy, Schedule, classify};
use crate::signing::{SignInput, Signer, SignerSet};
use crate::store::{Claimed, Next, Receipt, Store, StoreError};
use crate::time::{Clock, SystemClock, Timestamp};
use crate::transport::{BoxTransport, DeliveryRequest, TransportError};

/// Dispatcher settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DispatcherConfig {
    /// Requests in flight at once (default 64).
    pub concurrency: usize,
    /// Deliveries claimed per store round trip at most (default 64).
    pub batch_size: usize,
    /// Per-request timeout (default 15 s).
    pub request_timeout: Duration,
    /// How long a claim lasts before another worker may take the delivery (default: the request
    /// timeout plus 30 s).
    pub lease: Duration,
    /// Longest sleep while idle; bounds how late work enqueued by another process is noticed
    /// (default 1 s).
    pub idle_poll: Duration,
    /// How long shutdown waits for requests in flight (default 10 s).
    pub shutdown_grace: Duration,
    /// The `user-agent` header.
    pub user_agent: String,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        let request_timeout = Duration::from_secs(15);
        Self {
            concurrency: 64,
            batch_size: 64,
            request_timeout,
            lease: request_timeout + Duration::from_secs(30),
            idle_poll: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
            user_agent: concat!("Hookline/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl DispatcherConfig {
    /// Sets the request timeout and a lease that outlasts it by 30 s.
    pub fn with_request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self.lease = t + Duration::from_secs(30);
        self
    }

    /// Sets the claim lease (it should outlast the request timeout).
    pub fn with_lease(mut self, d: Duration) -> Self {
        self.lease = d;
        self
    }

    /// Sets the number of requests in flight at once (at least 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets the shutdown grace period.
    pub fn with_shutdown_grace(mut self, d: Duration) -> Self {
        self.shutdown_grace = d;
        self
    }

    /// Sets the longest idle sleep.
    pub fn with_idle_poll(mut self, d: Duration) -> Self {
        self.idle_poll = d;
        self
    }
}

/// Failures of publishing an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The store could not find subscribers or store the event.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Builds a [`Dispatcher`]; signer, retry policy, clock and config have defaults.
#[derive(Debug)]
pub struct DispatcherBuilder {
    store: Arc<dyn Store>,
    transport: BoxTransport,
    signer: Arc<dyn Signer>,
    retry: Arc<dyn RetryPolicy>,
    clock: Arc<dyn Clock>,
    config: DispatcherConfig,
}

impl DispatcherBuilder {
    /// Replaces the signer (default: Standard Webhooks plus `X-Hookline-Signature`).
    pub fn signer(mut self, s: impl Signer) -> Self {
        self.signer = Arc::new(s);
        self
    }

    /// Replaces the retry policy (default: [`Schedule::default`]).
    pub fn retry_policy(mut self, p: impl RetryPolicy) -> Self {
        self.retry = Arc::new(p);
        self
    }

    /// Replaces the clock.
    pub fn clock(mut self, c: Arc<dyn Clock>) -> Self {
        self.clock = c;
        self
    }

    /// Replaces the settings.
    pub fn config(mut self, c: DispatcherConfig) -> Self {
        self.config = c;
        self
    }

    /// The dispatcher.
    pub fn build(self) -> Dispatcher {
        Dispatcher {
            inner: Arc::new(Inner {
                store: self.store,
                transport: self.transport,
                signer: self.signer,
                retry: self.retry,
                clock: self.clock,
                config: self.config,
                wake: Notify::new(),
            }),
        }
    }
}

/// The delivery engine. Cheap to clone; clones share one engine.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    transport: BoxTransport,
    signer: Arc<dyn Signer>,
    retry: Arc<dyn RetryPolicy>,
    clock: Arc<dyn Clock>,
    config: DispatcherConfig,
    wake: Notify,
}

impl std::fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn Store")
    }
}

impl Dispatcher {
    /// Starts building a dispatcher over `store` and `transport`.
    pub fn builder(store: Arc<dyn Store>, transport: BoxTransport) -> DispatcherBuilder {
        DispatcherBuilder {
            store,
            transport,
            signer: Arc::new(SignerSet::default()),
            retry: Arc::new(Schedule::default()),
            clock: Arc::new(SystemClock),
            config: DispatcherConfig::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The settings.
    pub fn config(&self) -> &DispatcherConfig {
        &self.inner.config
    }

    /// Stores `event` with one delivery per subscribed endpoint, durably, then wakes the
    /// workers. When this returns `Ok`, the event and its deliveries survive a crash.
    pub async fn publish(&self, event: &Event) -> Result<Receipt, PublishError> {
        let subs = self
            .inner
            .store
            .subscribers(&event.account, event.site.as_ref(), &event.event_type)
            .await?;
        let targets: Vec<EndpointId> = subs.into_iter().map(|e| e.id).collect();
        self.publish_to(event, &targets).await
    }

    /// Stores `event` with one delivery to each of `targets` (no fan-out), then wakes the
    /// workers. Used for test events.
    pub async fn publish_to(
        &self,
        event: &Event,
        targets: &[EndpointId],
    ) -> Result<Receipt, PublishError> {
        let receipt = self
            .inner
            .store
            .enqueue(event, targets, self.inner.clock.now())
            .await?;
        if !receipt.deliveries.is_empty() && !receipt.duplicate {
            self.wake();
        }
        Ok(receipt)
    }

    /// Wakes the claim loop (after work was made due by a retry or recover request).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Runs the claim → sign → send → settle loop until `shutdown` is cancelled, then stops
    /// claiming and waits up to the grace period for requests in flight. Deliveries still in
    /// flight after that keep their lease and are retried when it ends.
    pub async fn run(&self, shutdown: CancellationToken) {
        let cfg = &self.inner.config;
        let permits = Arc::new(Semaphore::new(cfg.concurrency));
        let mut tasks = JoinSet::new();
        let mut store_backoff = Duration::from_millis(100);
        tracing::info!(concurrency = cfg.concurrency, "dispatcher started");
        loop {
            while tasks.try_join_next().is_some() {}
            // Wait for at least one free slot.
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let free = 1 + permits.available_permits();
            let now = self.inner.clock.now();
            match self
                .inner
                .store
                .claim_due(now, free.min(cfg.batch_size), cfg.lease)
                .await
            {
                Ok(claims) if !claims.is_empty() => {
                    store_backoff = Duration::from_millis(100);
                    let mut first = Some(first);
                    for c in claims {
                        let permit = match first.take() {
                            Some(p) => p,
                            None => match permits.clone().try_acquire_owned() {
                                Ok(p) => p,
                                Err(_) => break, // cannot happen: we claimed at most `free`
                            },
                        };
                        let this = self.clone();
                        tasks.spawn(async move {
                            this.attempt(c).await;
                            drop(permit);
                        });
                    }
                }
                Ok(_) => {
                    drop(first);
                    store_backoff = Duration::from_millis(100);
                    let sleep = match self.inner.store.next_due().await {
                        Ok(Some(t)) => t.since(self.inner.clock.now()).min(cfg.idle_poll),
                        Ok(None) => cfg.idle_poll,
                        Err(e) => {
                            tracing::warn!(error = %e, "next_due failed");
                            cfg.idle_poll
                        }
                    };
                    if sleep.is_zero() {
                        continue;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = self.inner.wake.notified() => {}
                        _ = tokio::time::sleep(sleep) => {}
                    }
                }
                Err(e) => {
                    drop(first);
                    tracing::error!(error = %e, source = ?std::error::Error::source(&e), "claiming deliveries failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(store_backoff) => {}
                    }
                    store_backoff = (store_backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::info!(in_flight = tasks.len(), "dispatcher stopping");
        let drained = tokio::time::timeout(cfg.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                abandoned = tasks.len(),
                "grace period over; leases will expire and be retried"
            );
            tasks.abort_all();
        }
        tracing::info!("dispatcher stopped");
    }

    /// Makes one attempt of a claimed delivery and settles it.
    async fn attempt(&self, c: Claimed) {
        let span = tracing::debug_span!(
            "deliver",
            event_id = %c.event.id,
            endpoint_id = %c.endpoint.id,
            delivery_id = %c.delivery.id,
            attempt = c.attempt_number,
            status = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        );
        async move {
            let inner = &self.inner;
            let started_at = inner.clock.now();
            let request = self.request(&c, started_at);
            let timeout = request.timeout;
            let started = Instant::now();
            // The transport enforces the timeout; this guard only protects against one that does not.
            let result = match tokio::time::timeout(
                timeout + Duration::from_secs(5),
                inner.transport.clone().oneshot(request),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(TransportError::Timeout),
            };
            let elapsed = started.elapsed();
            let outcome = classify(&result);
            let span = tracing::Span::current();
            span.record("latency_ms", elapsed.as_millis() as u64);
            let (status_code, error, response_body) = match &result {
                Ok(r) => {
                    span.record("status", r.status);
                    let cut = r.body.len().min(RESPONSE_EXCERPT_BYTES);
                    (
                        Some(r.status),
                        None,
                        String::from_utf8_lossy(&r.body[..cut]).into_owned(),
                    )
                }
                Err(e) => (None, Some(e.describe()), String::new()),
            };
            let next = match outcome {
                Outcome::Delivered => Next::Delivered,
                Outcome::Failed { .. } => {
                    let since_first = inner.clock.now().since(c.delivery.created_at);
                    match inner
                        .retry
                        .next_delay(c.attempt_number, since_first, &outcome)
                    {
                        Some(d) => Next::RetryAt(inner.clock.now().add(d)),
                        None => Next::Exhausted,
                    }
                }
            };
            let attempt = Attempt {
                id: AttemptId::generate(),
                delivery_id: c.delivery.id.clone(),
                number: c.attempt_number,
                trigger: c.trigger,
                started_at,
                duration_ms: elapsed.as_millis() as u64,
                status_code,
                error,
                response_body,
            };
            match next {
                Next::Delivered => tracing::debug!("delivered"),
                Next::RetryAt(at) => tracing::debug!(retry_at = %at, "attempt failed"),
                Next::Exhausted => tracing::warn!("retries exhausted; delivery failed"),
            }
            self.settle(&c, &attempt, next).await;
        }
        .instrument(span)
        .await
    }

    async fn settle(&self, c: &Claimed, attempt: &Attempt, next: Next) {
        let mut wait = Duration::from_millis(50);
        for _ in 0..5 {
            match self.inner.store.settle(&c.lease, attempt, next).await {
                Ok(()) => return,
                Err(StoreError::LeaseLost) => {
                    tracing::debug!("lease lost before settling; another worker owns the delivery");
                    return;
                }
                Err(StoreError::Unavailable(e)) => {
                    tracing::warn!(error = %e, "store unavailable while settling; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => {
                    tracing::error!(error = %e, source = ?std::error::Error::source(&e), "settling failed; the delivery is retried when its lease ends");
                    return;
                }
            }
        }
        tracing::error!("settling failed repeatedly; the delivery is retried when its lease ends");
    }

    fn request(&self, c: &Claimed, at: Timestamp) -> DeliveryRequest {
        let inner = &self.inner;
        let body = envelope(&c.event, c.attempt_number, at);
        let mut headers = HeaderMap::new();
        for (k, v) in &c.endpoint.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::try_from(k.as_str()),
                HeaderValue::try_from(v.as_str()),
            ) {
                headers.insert(k, v);
            }
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(ua) = HeaderValue::try_from(inner.config.user_agent.as_str()) {
            headers.insert(http::header::USER_AGENT, ua);
        }
        let secrets = c.endpoint.active_secrets(at);
        let input = SignInput {
            msg_id: c.event.id.as_str(),
            timestamp: at,
            body: &body,
            secrets: &secrets,
        };
        inner.signer.sign(&input, &mut headers);
        DeliveryRequest {
            url: c.endpoint.url.clone(),
            headers,
            body: Bytes::from(body),
            timeout: inner.config.request_timeout,
        }
    }
}
