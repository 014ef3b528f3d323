//! The dispatcher: fans events out on publish, then claims due deliveries, signs and sends
//! them with bounded concurrency, and settles each attempt.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tracing::Instrument as _;

use crate::envelope::envelope;
use crate::gate::{Admit, GateConfig, Gates, Health, Pace, Verdict};
use crate::id::{AttemptId, EndpointId};
use crate::model::{Attempt, Event, HourlyStats, RESPONSE_EXCERPT_BYTES, Trigger};
use crate::retry::{Outcome, RetryPolicy, Schedule, classify};
use crate::signing::{SignInput, Signer, SignerSet};
use crate::store::{Claimed, Next, Receipt, Store, StoreError};
use crate::time::{Clock, SystemClock, Timestamp};
use crate::transport::{BoxTransport, DeliveryRequest, TransportError};

/// Dispatcher settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DispatcherConfig {
    /// Requests in flight at once (default 256), not counting those in the slow lane: a
    /// request in flight longer than [`slow_after`](Self::slow_after) gives its slot back and
    /// waits in a lane of its own, of as many slots again.
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
    /// The ceiling of an endpoint's adaptive in-flight limit (default 64), and of its
    /// `maxConcurrency`: the limit starts at 4 and grows while the endpoint answers fast, and
    /// halves when it times out or answers slowly (the gate module of this crate).
    pub endpoint_concurrency: u32,
    /// Attempts an endpoint's circuit judges at least (default 5), out of a window of twice as
    /// many (at most 64; above 64 the circuit never opens). An open circuit makes the endpoint's
    /// deliveries wait, and after the cool-down a single probe decides whether it closes.
    pub circuit_threshold: u32,
    /// Failure rate over the window, in percent, that opens the circuit (default 50); a time-out
    /// or connection failure counts as a failure, an answered error (5xx, 4xx) as half of one.
    pub circuit_failure_rate: u32,
    /// First cool-down of an open circuit (default 5 s); doubles after each failed probe.
    pub circuit_cooldown: Duration,
    /// Longest cool-down (default 5 min); also the longest `Retry-After` pause.
    pub circuit_max_cooldown: Duration,
    /// Disable an endpoint whose every attempt has failed for this long (default 5 days);
    /// `None` never disables.
    pub disable_after: Option<Duration>,
    /// Purge events (with their deliveries and attempts) older than this (default 30 days);
    /// `None` keeps everything.
    pub retention: Option<Duration>,
    /// How often the purge runs (default 1 h).
    pub purge_interval: Duration,
    /// Claims that may fail in a row with an error retrying does not cure (anything but
    /// [`StoreError::Unavailable`]) before [`Dispatcher::run`] gives up with
    /// [`DispatchError::Store`] (default 10: about 30 s of retries). `None` retries for ever.
    /// An unavailable store is always waited for.
    pub store_failure_limit: Option<u32>,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        let request_timeout = Duration::from_secs(15);
        Self {
            concurrency: 256,
            batch_size: 64,
            request_timeout,
            lease: request_timeout + Duration::from_secs(30),
            idle_poll: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
            user_agent: concat!("Hookline/", env!("CARGO_PKG_VERSION")).to_owned(),
            endpoint_concurrency: 64,
            circuit_threshold: 5,
            circuit_failure_rate: 50,
            circuit_cooldown: Duration::from_secs(5),
            circuit_max_cooldown: Duration::from_secs(300),
            disable_after: Some(Duration::from_secs(5 * 24 * 3600)),
            retention: Some(Duration::from_secs(30 * 24 * 3600)),
            purge_interval: Duration::from_secs(3600),
            store_failure_limit: Some(10),
        }
    }
}

impl DispatcherConfig {
    /// How long a request may be in flight before it counts as slow: a third of the request
    /// timeout. A slow request moves to the slow lane, and halves its endpoint's limit.
    pub fn slow_after(&self) -> Duration {
        self.request_timeout / 3
    }

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

    /// Sets the default and ceiling of in-flight requests per endpoint (at least 1).
    pub fn with_endpoint_concurrency(mut self, n: u32) -> Self {
        self.endpoint_concurrency = n.max(1);
        self
    }

    /// Sets the circuit breaker: the attempts it judges at least, and its first cool-down.
    pub fn with_circuit(mut self, threshold: u32, cooldown: Duration) -> Self {
        self.circuit_threshold = threshold.max(1);
        self.circuit_cooldown = cooldown;
        self
    }

    /// Sets the failure rate, in percent (1 to 100), that opens a circuit.
    pub fn with_circuit_failure_rate(mut self, percent: u32) -> Self {
        self.circuit_failure_rate = percent.clamp(1, 100);
        self
    }

    /// Sets how long an endpoint may fail every attempt before it is disabled.
    pub fn with_disable_after(mut self, d: Option<Duration>) -> Self {
        self.disable_after = d;
        self
    }

    /// Sets the retention period and how often the purge runs.
    pub fn with_retention(mut self, keep: Option<Duration>, every: Duration) -> Self {
        self.retention = keep;
        self.purge_interval = every;
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

    /// Sets how many claims in a row may fail with a lasting store error before `run` gives up.
    pub fn with_store_failure_limit(mut self, n: Option<u32>) -> Self {
        self.store_failure_limit = n;
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
    /// A batch would create more deliveries than allowed
    /// ([`Dispatcher::publish_batch_limited`]); nothing was stored.
    #[error("the batch would create {deliveries} deliveries, more than {limit}")]
    TooManyDeliveries {
        /// Deliveries the batch would create (to the subscribers read).
        deliveries: usize,
        /// The most allowed.
        limit: usize,
    },
}

/// Why [`Dispatcher::run`] stopped before it was told to. Either way it stopped claiming and
/// gave the requests in flight the grace period first.
///
/// What it does not stop for: an unavailable store ([`StoreError::Unavailable`]) is waited for
/// with backoff for as long as it takes; failures of single operations (settling, deferring,
/// the failure clock, the purge) are logged, and the delivery is retried when its lease ends.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// Claims failed [`DispatcherConfig::store_failure_limit`] times in a row with an error that
    /// retrying does not cure (the last one is the source).
    #[error("claiming deliveries failed {failures} times in a row")]
    Store {
        /// Failed claims in a row.
        failures: u32,
        /// The last failure.
        #[source]
        source: StoreError,
    },
    /// A task of the dispatcher (a delivery attempt, or the purge) panicked: a bug. Its
    /// delivery is retried when its lease ends.
    #[error("a {task} task of the dispatcher panicked")]
    Panicked {
        /// `delivery` or `purge`.
        task: &'static str,
        /// The task's end.
        #[source]
        source: tokio::task::JoinError,
    },
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
        let gates = Gates::new(GateConfig::of(&self.config));
        Dispatcher {
            inner: Arc::new(Inner {
                gates,
                store: self.store,
                transport: self.transport,
                signer: self.signer,
                retry: self.retry,
                clock: self.clock,
                slow_lane: Arc::new(Semaphore::new(self.config.concurrency.max(1))),
                config: self.config,
                wake: Notify::new(),
                hourly: std::sync::Mutex::default(),
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
    gates: Gates,
    store: Arc<dyn Store>,
    transport: BoxTransport,
    signer: Arc<dyn Signer>,
    retry: Arc<dyn RetryPolicy>,
    clock: Arc<dyn Clock>,
    config: DispatcherConfig,
    wake: Notify,
    /// The slow lane: slots for requests in flight longer than `slow_after`, apart from the
    /// `concurrency` slots every request starts with.
    slow_lane: Arc<Semaphore>,
    /// Settled attempts counted per endpoint and hour, not yet added to the store's counters.
    hourly: std::sync::Mutex<HashMap<(EndpointId, Timestamp), HourlyStats>>,
}

/// How often the hourly counters of settled attempts are added to the store.
const HOURLY_FLUSH: Duration = Duration::from_secs(5);

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
        // An endpoint removed (by another process, or behind a cache) between reading the
        // subscribers and the enqueue makes the store refuse the whole enqueue, writing nothing:
        // read the subscribers again and retry.
        let mut tries = 0;
        loop {
            let subs = self
                .inner
                .store
                .subscribers(&event.account, event.site.as_ref(), &event.event_type)
                .await?;
            let targets: Vec<EndpointId> = subs.into_iter().map(|e| e.id).collect();
            match self.publish_to(event, &targets).await {
                Err(PublishError::Store(StoreError::NotFound(_))) if tries < 2 => tries += 1,
                other => return other,
            }
        }
    }

    /// Stores `events` with one delivery per subscribed endpoint each, in one atomic write
    /// ([`QueueStore::enqueue_batch`](crate::store::QueueStore::enqueue_batch): all or nothing),
    /// then wakes the workers once. Receipts come in order; an event whose id or idempotency key
    /// was accepted before (also earlier in the batch) is a duplicate.
    pub async fn publish_batch(&self, events: &[Event]) -> Result<Vec<Receipt>, PublishError> {
        self.publish_batch_limited(events, usize::MAX).await
    }

    /// [`publish_batch`](Self::publish_batch), refused with
    /// [`PublishError::TooManyDeliveries`] (nothing stored) when the events would create more
    /// than `max_deliveries` deliveries in all.
    pub async fn publish_batch_limited(
        &self,
        events: &[Event],
        max_deliveries: usize,
    ) -> Result<Vec<Receipt>, PublishError> {
        let store = &self.inner.store;
        // As in `publish`: a target removed since the subscribers were read makes the store
        // refuse the whole batch, so read them again and retry.
        let mut tries = 0;
        loop {
            // Events of one type and site share their subscribers: read them once per batch.
            let mut subscribers: HashMap<_, Vec<EndpointId>> = HashMap::new();
            let mut items = Vec::with_capacity(events.len());
            let mut deliveries = 0usize;
            for event in events {
                let key = (&event.account, event.site.as_ref(), &event.event_type);
                let targets = match subscribers.get(&key) {
                    Some(t) => t.clone(),
                    None => {
                        let subs = store
                            .subscribers(&event.account, event.site.as_ref(), &event.event_type)
                            .await?;
                        let t: Vec<EndpointId> = subs.into_iter().map(|e| e.id).collect();
                        subscribers.insert(key, t.clone());
                        t
                    }
                };
                deliveries = deliveries.saturating_add(targets.len());
                items.push((event.clone(), targets));
            }
            if deliveries > max_deliveries {
                return Err(PublishError::TooManyDeliveries {
                    deliveries,
                    limit: max_deliveries,
                });
            }
            match store
                .enqueue_batch(&items, self.inner.clock.now(), Trigger::Scheduled)
                .await
            {
                Err(StoreError::NotFound(_)) if tries < 2 => tries += 1,
                Err(e) => return Err(e.into()),
                Ok(receipts) => {
                    if receipts
                        .iter()
                        .any(|r| !r.duplicate && !r.deliveries.is_empty())
                    {
                        self.wake();
                    }
                    return Ok(receipts);
                }
            }
        }
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

    /// Stores `event` with one delivery to each of `targets`, each marked for a manual first
    /// attempt (test events), then wakes the workers.
    pub async fn publish_manual(
        &self,
        event: &Event,
        targets: &[EndpointId],
    ) -> Result<Receipt, PublishError> {
        let store = &self.inner.store;
        let now = self.inner.clock.now();
        let receipt = store
            .enqueue_with(event, targets, now, Trigger::Manual)
            .await?;
        self.wake();
        Ok(receipt)
    }

    /// Wakes the claim loop (after work was made due by a retry or recover request).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Runs the claim → sign → send → settle loop until `shutdown` is cancelled, then stops
    /// claiming and waits up to the grace period for requests in flight. Deliveries still in
    /// flight after that keep their lease and are retried when it ends.
    ///
    /// Returns `Ok` after a shutdown, or an error if it had to stop on its own (see
    /// [`DispatchError`]). Everything it starts (the store's work listener, the purge, the
    /// requests) stops with it, also when this future is dropped.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), DispatchError> {
        let cfg = &self.inner.config;
        let permits = Arc::new(Semaphore::new(cfg.concurrency));
        let mut tasks = JoinSet::new();
        let mut store_backoff = Duration::from_millis(100);
        let mut store_failures = 0u32;
        let mut failure = None;
        tracing::info!(concurrency = cfg.concurrency, "dispatcher started");
        // Dropped (and so stopped) when this function returns or its future is dropped.
        let remote = self.inner.store.listen_for_work();
        let mut background = JoinSet::new();
        if let Some(keep) = cfg.retention {
            background.spawn(self.clone().purge_loop(keep, shutdown.clone()));
        }
        background.spawn(self.clone().hourly_loop(shutdown.clone()));
        loop {
            if let Some(e) = reap(&mut tasks, "delivery").or_else(|| reap(&mut background, "purge"))
            {
                failure = Some(e);
                break;
            }
            // Wait for at least one free slot.
            let first = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let free = 1 + permits.available_permits();
            let now = self.inner.clock.now();
            let (skip, reopen) = self.inner.gates.blocked(Instant::now());
            let claim_span = tracing::info_span!(
                "claim",
                batch = free.min(cfg.batch_size),
                claimed = tracing::field::Empty
            );
            let claimed = self
                .inner
                .store
                .claim_due_except(now, free.min(cfg.batch_size), cfg.lease, &skip)
                .instrument(claim_span.clone())
                .await;
            if let Ok(claims) = &claimed {
                claim_span.record("claimed", claims.len());
            }
            match claimed {
                Ok(claims) if !claims.is_empty() => {
                    store_backoff = Duration::from_millis(100);
                    store_failures = 0;
                    let mut first = Some(first);
                    // Claims given back are written from a task of their own, so that a claim
                    // holding many deliveries of one busy endpoint does not keep the loop (and
                    // every other endpoint's deliveries) waiting for one write each.
                    let mut given_back = Vec::new();
                    for c in claims {
                        if let Admit::Wait(until) =
                            self.inner.gates.admit(&c.endpoint, Instant::now())
                        {
                            // Raced with the limits since the claim. A failing endpoint's claim simply stays
                            // leased: the claim already made it due again at the lease's end, which
                            // costs no write. Anything else is given back for the moment it may go.
                            if self.inner.gates.is_failing(&c.endpoint.id) {
                                continue;
                            }
                            let at = match until {
                                Some(t) => self
                                    .inner
                                    .clock
                                    .now()
                                    .add(t.saturating_duration_since(Instant::now())),
                                None => self.inner.clock.now().add(Duration::from_millis(100)),
                            };
                            given_back.push((c, at));
                            continue;
                        }
                        let permit = match first.take() {
                            Some(p) => p,
                            None => match permits.clone().try_acquire_owned() {
                                Ok(p) => p,
                                Err(_) => break, // cannot happen: we claimed at most `free`
                            },
                        };
                        let this = self.clone();
                        let span = attempt_span(&c);
                        span.follows_from(&claim_span);
                        tasks.spawn(async move {
                            // A rate-limited endpoint's request waits for the send time its
                            // claim reserved (at most the rate horizon away).
                            if let Some(at) = c.not_before {
                                let wait = at.since(this.inner.clock.now());
                                if !wait.is_zero() {
                                    tokio::time::sleep(wait.min(crate::store::RATE_HORIZON)).await;
                                }
                            }
                            this.attempt(c, span, permit).await;
                            // A slot (and maybe an endpoint's limit) is free again.
                            this.wake();
                        });
                    }
                    if !given_back.is_empty() {
                        let this = self.clone();
                        tasks.spawn(async move {
                            for (c, at) in given_back {
                                if let Err(e) = this.inner.store.defer(&c.lease, at).await {
                                    tracing::debug!(error = %e, account_id = %c.endpoint.account, endpoint_id = %c.endpoint.id, delivery_id = %c.delivery.id, "deferring a claim failed; its lease will lapse");
                                }
                            }
                        });
                    }
                }
                Ok(_) => {
                    drop(first);
                    store_backoff = Duration::from_millis(100);
                    store_failures = 0;
                    let now = self.inner.clock.now();
                    // Due work that could not be claimed (blocked by a limit, a circuit or an
                    // ordered head in flight) is picked up when something wakes the loop.
                    let mut sleep = match self.inner.store.next_due().await {
                        Ok(Some(t)) if t > now => t.since(now).min(cfg.idle_poll),
                        Ok(_) => cfg.idle_poll,
                        Err(e) => {
                            tracing::warn!(error = %e, "next_due failed");
                            cfg.idle_poll
                        }
                    };
                    if let Some(t) = reopen {
                        sleep = sleep.min(t.saturating_duration_since(Instant::now()));
                    }
                    let remote_wake = async {
                        match &remote {
                            Some(l) => l.notified().await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => break,
                        _ = self.inner.wake.notified() => {}
                        _ = remote_wake => {}
                        _ = tokio::time::sleep(sleep) => {}
                    }
                }
                Err(e) => {
                    drop(first);
                    let lasting = !e.is_transient();
                    if lasting {
                        store_failures += 1;
                    }
                    tracing::error!(error = %e, source = ?std::error::Error::source(&e), failures = store_failures, "claiming deliveries failed");
                    if lasting && cfg.store_failure_limit.is_some_and(|n| store_failures >= n) {
                        failure = Some(DispatchError::Store {
                            failures: store_failures,
                            source: e,
                        });
                        break;
                    }
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(store_backoff) => {}
                    }
                    store_backoff = (store_backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        background.abort_all();
        tracing::info!(in_flight = tasks.len(), "dispatcher stopping");
        let drained = tokio::time::timeout(cfg.shutdown_grace, async {
            while let Some(done) = tasks.join_next().await {
                if let Err(e) = done
                    && e.is_panic()
                    && failure.is_none()
                {
                    failure = Some(DispatchError::Panicked {
                        task: "delivery",
                        source: e,
                    });
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                abandoned = tasks.len(),
                "grace period over; leases will expire and be retried"
            );
            tasks.abort_all();
        }
        // What settled since the last flush, drained deliveries included.
        self.flush_hourly().await;
        match failure {
            None => {
                tracing::info!("dispatcher stopped");
                Ok(())
            }
            Some(e) => {
                tracing::error!(error = %e, "dispatcher stopped on a failure");
                Err(e)
            }
        }
    }

    /// Makes one attempt of a claimed delivery and settles it, in `span` (see [`attempt_span`]),
    /// holding `permit` (one of the `concurrency` slots) until it is settled, or until it has
    /// been in flight for `slow_after`: then it takes a slot of the slow lane instead.
    async fn attempt(&self, mut c: Claimed, span: tracing::Span, permit: OwnedSemaphorePermit) {
        async move {
            let inner = &self.inner;
            let started_at = inner.clock.now();
            let request = self.request(&c, started_at);
            // The request body holds the data now: free the claim's copy while the request is
            // in flight (it can be as large as the event size limit).
            drop(std::mem::take(&mut c.event.data));
            let timeout = request.timeout;
            let started = Instant::now();
            // The transport enforces the timeout; this guard only protects against one that does not.
            let sending = async {
                match tokio::time::timeout(
                    timeout + Duration::from_secs(5),
                    inner.transport.clone().oneshot(request),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(TransportError::Timeout),
                }
            };
            tokio::pin!(sending);
            let (result, slot, went_slow) =
                match tokio::time::timeout(inner.config.slow_after(), &mut sending).await {
                    Ok(r) => (r, permit, false),
                    Err(_) => {
                        // Slow: take a slot of the slow lane (while the request goes on), then
                        // give the shared one back, so that requests that hang never hold the
                        // slots healthy endpoints need.
                        let lane = inner.slow_lane.clone();
                        tokio::select! {
                            biased;
                            r = &mut sending => (r, permit, false),
                            slow = lane.acquire_owned() => match slow {
                                Ok(slow) => {
                                    drop(permit);
                                    inner.gates.went_slow(&c.endpoint.id);
                                    tracing::debug!("request slow; moved to the slow lane");
                                    self.wake();
                                    ((&mut sending).await, slow, true)
                                }
                                Err(_) => ((&mut sending).await, permit, false),
                            },
                        }
                    }
                };
            let elapsed = started.elapsed();
            crate::metrics::attempt_finished(&result, elapsed);
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
            let retry_after = match outcome {
                Outcome::Failed { retry_after } => retry_after,
                Outcome::Delivered => None,
            };
            let finished_at = inner.clock.now();
            let health = inner.gates.finish_paced(
                &c.endpoint.id,
                Verdict::of(&result),
                retry_after,
                finished_at,
                Instant::now(),
                Pace { elapsed, went_slow },
            );
            self.failure_clock(&c, health, finished_at).await;
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
                Next::Exhausted => tracing::warn!(
                    error = attempt.error.as_deref(),
                    "retries exhausted; delivery failed"
                ),
            }
            self.settle(&c, &attempt, next).await;
            drop(slot);
        }
        .instrument(span)
        .await
    }

    /// Keeps the endpoint's failure clock in the store (written only when it starts or stops),
    /// and disables the endpoint once every attempt has failed for the disable period.
    async fn failure_clock(&self, c: &Claimed, health: Health, at: Timestamp) {
        let store = &self.inner.store;
        let id = &c.endpoint.id;
        match health {
            Health::Delivered { was_failing } => {
                if was_failing || c.endpoint.failing_since.is_some() {
                    if let Err(e) = store.record_healthy(id).await {
                        tracing::warn!(error = %e, "recording a healthy endpoint failed");
                    }
                }
            }
            Health::Failing {
                first,
                mut since,
                hold,
            } => {
                if let Some(until) = hold {
                    let until =
                        at.add(until.saturating_duration_since(tokio::time::Instant::now()));
                    if let Err(e) = store.hold_endpoint(id, until, at).await {
                        tracing::warn!(error = %e, "holding a failing endpoint's deliveries failed");
                    }
                }
                if first {
                    match store.record_failing(id, at).await {
                        Ok(Some(kept)) => {
                            since = kept;
                            self.inner.gates.adopt_failing_since(id, kept);
                        }
                        Ok(None) => return,
                        Err(e) => tracing::warn!(error = %e, "recording a failing endpoint failed"),
                    }
                }
                let Some(period) = self.inner.config.disable_after else {
                    return;
                };
                if at.since(since) < period {
                    return;
                }
                if first {
                    // `since` was just read from the store.
                    self.disable_failing(c, since).await;
                    return;
                }
                // Check the clock the store keeps: another process may have seen a success.
                match store.record_failing(id, at).await {
                    Ok(Some(kept)) if at.since(kept) >= period => {
                        self.disable_failing(c, kept).await;
                    }
                    Ok(Some(kept)) => self.inner.gates.adopt_failing_since(id, kept),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "reading the failure clock failed"),
                }
            }
        }
    }

    /// Disables an endpoint whose every attempt has failed since `since`.
    async fn disable_failing(&self, c: &Claimed, since: Timestamp) {
        let reason = format!("every attempt failed since {since}; disabled automatically");
        let now = self.inner.clock.now();
        match self
            .inner
            .store
            .disable_endpoint(&c.endpoint.id, &reason, now)
            .await
        {
            // The attempt's span names the account and endpoint.
            Ok(true) => {
                crate::metrics::endpoint_disabled();
                tracing::warn!(
                failing_since = %since,
                "endpoint disabled after failing for too long"
                )
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "disabling a failing endpoint failed")
            }
        }
        self.inner.gates.forget(&c.endpoint.id);
    }

    /// Adds the counted attempts to the store's hourly counters every [`HOURLY_FLUSH`].
    async fn hourly_loop(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(HOURLY_FLUSH) => {}
            }
            self.flush_hourly().await;
        }
    }

    /// Adds the counted attempts to the store's hourly counters now.
    pub async fn flush_hourly(&self) {
        let stats: Vec<HourlyStats> = {
            let mut map = self.inner.hourly.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *map).into_values().collect()
        };
        if stats.is_empty() {
            return;
        }
        if let Err(e) = self.inner.store.add_hourly(&stats).await {
            tracing::warn!(error = %e, rows = stats.len(), "adding to the hourly counters failed; those counts are lost");
        }
    }

    /// Counts a settled attempt for the hourly counters.
    fn count_hourly(&self, c: &Claimed, attempt: &Attempt, next: Next) {
        let hour = HourlyStats::hour_of(attempt.started_at);
        let mut map = self.inner.hourly.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((c.endpoint.id.clone(), hour))
            .or_insert_with(|| HourlyStats::new(c.endpoint.id.clone(), hour))
            .record(matches!(next, Next::Delivered), attempt.duration_ms);
    }

    /// Purges events older than `keep`, in bounded batches, every purge interval.
    async fn purge_loop(self, keep: Duration, shutdown: CancellationToken) {
        const BATCH: usize = 1000;
        loop {
            let cutoff = self.inner.clock.now().sub(keep);
            let mut total = 0u64;
            loop {
                match self.inner.store.purge(cutoff, BATCH).await {
                    Ok(n) => {
                        total += n;
                        if n < BATCH as u64 || shutdown.is_cancelled() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "purging old events failed");
                        break;
                    }
                }
            }
            if total > 0 {
                tracing::info!(events = total, before = %cutoff, "purged events past the retention period");
            }
            // The audit log is kept as long as events.
            let mut audit = 0u64;
            loop {
                match self.inner.store.purge_audit(cutoff, BATCH).await {
                    Ok(n) => {
                        audit += n;
                        if n < BATCH as u64 || shutdown.is_cancelled() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "purging old audit entries failed");
                        break;
                    }
                }
            }
            if audit > 0 {
                tracing::info!(entries = audit, before = %cutoff, "purged audit entries past the retention period");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.inner.config.purge_interval) => {}
            }
        }
    }

    async fn settle(&self, c: &Claimed, attempt: &Attempt, next: Next) {
        let mut wait = Duration::from_millis(50);
        for _ in 0..5 {
            match self.inner.store.settle(&c.lease, attempt, next).await {
                Ok(()) => {
                    crate::metrics::settled(next);
                    self.count_hourly(c, attempt, next);
                    return;
                }
                Err(StoreError::LeaseLost) => {
                    tracing::debug!("lease lost before settling; another worker owns the delivery");
                    return;
                }
                Err(e) if e.is_transient() => {
                    // An unconfirmed settle that did land makes the retry answer `LeaseLost`.
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

/// The span of one attempt: every line logged in the attempt's task (by the dispatcher, the
/// transport and the store) carries these ids through it. ERROR level keeps it enabled under any
/// filter that lets a line through (`RUST_LOG=warn` included); log output never prints spans on
/// their own. A root span: attempts may run long after, and in another process than, the
/// publish.
fn attempt_span(c: &Claimed) -> tracing::Span {
    tracing::error_span!(
        parent: None,
        "attempt",
        account_id = %c.endpoint.account,
        endpoint_id = %c.endpoint.id,
        event_id = %c.event.id,
        event_type = %c.event.event_type,
        delivery_id = %c.delivery.id,
        attempt = c.attempt_number,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    )
}

/// The first panic among the tasks of `set` that have finished (dropping the others' results).
fn reap(set: &mut JoinSet<()>, task: &'static str) -> Option<DispatchError> {
    while let Some(done) = set.try_join_next() {
        if let Err(e) = done
            && e.is_panic()
        {
            return Some(DispatchError::Panicked { task, source: e });
        }
    }
    None
}

#[cfg(all(test, feature = "testkit"))]
mod tests;
