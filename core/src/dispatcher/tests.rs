//! The dispatcher over a [`MemoryStore`] and a scripted transport, under paused tokio time: every
//! schedule, pause and grace period below passes in virtual time, deterministically.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{DispatchError, Dispatcher, DispatcherConfig};
use crate::id::{AccountId, DeliveryId, EndpointId, EventId, EventTypeName};
use crate::model::{Account, Attempt, Delivery, DeliveryStatus, Endpoint, Event};
use crate::retry::Schedule;
use crate::store::{CatalogStore, EndpointStore, HistoryStore, StoreError};
use crate::testkit::{Fault, MemoryStore, TokioClock};
use crate::time::{Clock, Timestamp};
use crate::transport::{BoxTransport, DeliveryRequest, DeliveryResponse, TransportError, boxed};

/// Where the test clock starts.
const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// How the scripted receiver answers one request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    /// This status at once.
    Status(u16),
    /// This status with `Retry-After: <secs>`.
    RetryAfter(u16, u64),
    /// No answer within the request's timeout.
    Timeout,
    /// This status after a while.
    Slow(Duration, u16),
    /// The transport panics (a bug below the dispatcher).
    Panic,
}

/// One request the receiver saw.
#[derive(Debug, Clone)]
struct Sent {
    url: String,
    /// When it started, by the test clock.
    at: Timestamp,
}

/// A receiver that answers from a script per URL (200 once a script runs out) and records
/// every request.
#[derive(Debug, Clone)]
struct Receiver {
    clock: TokioClock,
    inner: Arc<Mutex<ReceiverState>>,
}

#[derive(Debug, Default)]
struct ReceiverState {
    scripts: HashMap<String, VecDeque<Reply>>,
    sent: Vec<Sent>,
}

impl Receiver {
    fn new(clock: TokioClock) -> Self {
        Self {
            clock,
            inner: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReceiverState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues replies for requests to `url`.
    fn script(&self, url: &str, replies: impl IntoIterator<Item = Reply>) {
        self.lock()
            .scripts
            .entry(url.to_owned())
            .or_default()
            .extend(replies);
    }

    /// When the requests to `url` started, as offsets from T0.
    fn sent_to(&self, url: &str) -> Vec<Duration> {
        self.lock()
            .sent
            .iter()
            .filter(|s| s.url == url)
            .map(|s| s.at.since(T0))
            .collect()
    }

    fn transport(&self) -> BoxTransport {
        let this = self.clone();
        boxed(tower::service_fn(move |req: DeliveryRequest| {
            let this = this.clone();
            async move { this.answer(req).await }
        }))
    }

    async fn answer(&self, req: DeliveryRequest) -> Result<DeliveryResponse, TransportError> {
        let reply = {
            let mut s = self.lock();
            s.sent.push(Sent {
                url: req.url.clone(),
                at: self.clock.now(),
            });
            s.scripts
                .get_mut(&req.url)
                .and_then(VecDeque::pop_front)
                .unwrap_or(Reply::Status(200))
        };
        let response = |status: u16| DeliveryResponse {
            status,
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::new(),
        };
        match reply {
            Reply::Status(code) => Ok(response(code)),
            Reply::RetryAfter(code, after) => {
                let mut r = response(code);
                r.headers.insert(
                    http::header::RETRY_AFTER,
                    after.to_string().parse().unwrap(),
                );
                Ok(r)
            }
            Reply::Timeout => {
                tokio::time::sleep(req.timeout).await;
                Err(TransportError::Timeout)
            }
            Reply::Slow(after, code) => {
                tokio::time::sleep(after).await;
                Ok(response(code))
            }
            Reply::Panic => panic!("the transport broke"),
        }
    }
}

/// A dispatcher over a memory store and the scripted receiver, with one account.
struct Harness {
    store: Arc<MemoryStore>,
    receiver: Receiver,
    clock: TokioClock,
    dispatcher: Dispatcher,
    account: AccountId,
    /// The tokio instant of T0.
    origin: tokio::time::Instant,
}

/// Settings that keep each test to the behaviour it looks at: no purge, no auto-disable, and
/// a circuit that does not open unless a test asks for it.
fn quiet_config() -> DispatcherConfig {
    DispatcherConfig::default()
        .with_retention(None, secs(3600))
        .with_disable_after(None)
        .with_circuit(1000, secs(5))
}

impl Harness {
    async fn new(config: DispatcherConfig, retry: Schedule) -> Self {
        let origin = tokio::time::Instant::now();
        let clock = TokioClock::new(T0);
        let store = Arc::new(MemoryStore::new());
        let receiver = Receiver::new(clock);
        let dispatcher = Dispatcher::builder(store.clone(), receiver.transport())
            .retry_policy(retry)
            .clock(Arc::new(clock))
            .config(config)
            .build();
        let account = AccountId::parse("acme").unwrap();
        store
            .create_account(&Account::new(account.clone(), "Acme", T0))
            .await
            .unwrap();
        Self {
            store,
            receiver,
            clock,
            dispatcher,
            account,
            origin,
        }
    }

    /// Lets virtual time run until `offset` after T0 (the dispatcher works meanwhile).
    async fn until(&self, offset: Duration) {
        tokio::time::sleep_until(self.origin + offset).await;
    }

    /// Virtual time since T0.
    fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Creates an enabled endpoint at `url`.
    async fn endpoint(&self, url: &str) -> Endpoint {
        let ep = Endpoint::new(
            EndpointId::generate(),
            self.account.clone(),
            url,
            vec![],
            T0,
        );
        self.store.create_endpoint(&ep).await.unwrap();
        ep
    }

    /// Publishes a new event now to `ep` alone; returns its delivery.
    async fn publish(&self, ep: &Endpoint) -> DeliveryId {
        let event = Event::new(
            EventId::generate(),
            self.account.clone(),
            EventTypeName::parse("rx.completed").unwrap(),
            RawValue::from_string(r#"{"patientId":"p_77"}"#.into()).unwrap(),
            self.clock.now(),
        );
        let receipt = self
            .dispatcher
            .publish_to(&event, std::slice::from_ref(&ep.id))
            .await
            .unwrap();
        assert_eq!(receipt.deliveries.len(), 1);
        receipt.deliveries[0].clone()
    }

    fn start(&self) -> (CancellationToken, JoinHandle<Result<(), DispatchError>>) {
        let shutdown = CancellationToken::new();
        let d = self.dispatcher.clone();
        let token = shutdown.clone();
        (shutdown, tokio::spawn(async move { d.run(token).await }))
    }

    async fn delivery(&self, id: &DeliveryId) -> Delivery {
        self.store
            .delivery(&self.account, id)
            .await
            .unwrap()
            .expect("the delivery exists")
    }

    async fn attempts(&self, id: &DeliveryId) -> Vec<Attempt> {
        self.store.attempts(&self.account, id).await.unwrap()
    }

    async fn endpoint_now(&self, ep: &Endpoint) -> Endpoint {
        self.store
            .endpoint(&self.account, &ep.id)
            .await
            .unwrap()
            .unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn failed_attempts_follow_the_retry_schedule_then_the_delivery_fails() {
    let h = Harness::new(
        quiet_config(),
        Schedule::fixed(vec![secs(1), secs(5), secs(30)]),
    )
    .await;
    let ep = h.endpoint("https://r.example/flaky").await;
    h.receiver.script(
        &ep.url,
        [
            Reply::Status(500),
            Reply::Timeout,
            Reply::Status(502),
            Reply::Status(503),
        ],
    );
    let d = h.publish(&ep).await;
    let (shutdown, run) = h.start();

    h.until(secs(20)).await;
    assert_eq!(
        h.receiver.sent_to(&ep.url),
        vec![secs(0), secs(1)],
        "attempt 2 is still waiting for its 15 s request timeout"
    );
    h.until(secs(120)).await;
    // 0 s, +1 s, then the timeout (15 s) +5 s, then +30 s; the fourth failure exhausts the list.
    let schedule = vec![secs(0), secs(1), secs(21), secs(51)];
    assert_eq!(h.receiver.sent_to(&ep.url), schedule);
    let got = h.delivery(&d).await;
    assert_eq!(got.status, DeliveryStatus::Failed, "retries exhausted");
    assert_eq!(got.attempts, 4);
    assert_eq!(got.next_attempt_at, None);
    let attempts = h.attempts(&d).await;
    let started: Vec<Duration> = attempts.iter().map(|a| a.started_at.since(T0)).collect();
    assert_eq!(
        started, schedule,
        "each attempt is recorded when it started"
    );
    assert_eq!(
        attempts.iter().map(|a| a.status_code).collect::<Vec<_>>(),
        vec![Some(500), None, Some(502), Some(503)]
    );
    assert_eq!(attempts[1].error.as_deref(), Some("timed out"));
    assert_eq!(attempts[1].duration_ms, 15_000);

    h.until(secs(3600)).await;
    assert_eq!(
        h.receiver.sent_to(&ep.url).len(),
        4,
        "a failed delivery stays failed"
    );
    shutdown.cancel();
    run.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_circuit_opens_at_the_threshold_and_a_single_probe_closes_it() {
    let config = quiet_config().with_circuit(3, secs(10));
    let h = Harness::new(config, Schedule::fixed(vec![secs(3600)])).await;
    let ep = h.endpoint("https://r.example/down").await;
    let other = h.endpoint("https://r.example/up").await;
    // Three failures open the circuit; the probe after the cool-down is slow but succeeds.
    h.receiver.script(
        &ep.url,
        [
            Reply::Status(500),
            Reply::Status(500),
            Reply::Status(500),
            Reply::Slow(secs(2), 200),
        ],
    );
    let failed: Vec<DeliveryId> = [
        h.publish(&ep).await,
        h.publish(&ep).await,
        h.publish(&ep).await,
    ]
    .into();
    let (shutdown, run) = h.start();

    h.until(secs(1)).await;
    assert_eq!(h.receiver.sent_to(&ep.url), vec![secs(0); 3]);
    // While the circuit is open, new work for the endpoint waits; other endpoints flow.
    let waiting = [
        h.publish(&ep).await,
        h.publish(&ep).await,
        h.publish(&ep).await,
    ];
    h.publish(&other).await;
    h.until(secs(9)).await;
    assert_eq!(
        h.receiver.sent_to(&ep.url).len(),
        3,
        "nothing is sent while open"
    );
    assert_eq!(
        h.receiver.sent_to(&other.url),
        vec![secs(1)],
        "other endpoints flow"
    );
    for id in &waiting {
        assert_eq!(h.delivery(id).await.attempts, 0);
    }

    // After the 10 s cool-down exactly one probe goes; nothing else while it is in flight.
    h.until(secs(11)).await;
    assert_eq!(
        h.receiver.sent_to(&ep.url),
        [vec![secs(0); 3], vec![secs(10)]].concat()
    );
    // The probe succeeded at 12 s: the circuit is closed and the rest is delivered.
    h.until(secs(120)).await;
    let sent = h.receiver.sent_to(&ep.url);
    assert_eq!(sent.len(), 6, "{sent:?}");
    assert!(
        sent[4..].iter().all(|t| *t >= secs(12)),
        "no request while the probe was in flight: {sent:?}"
    );
    for id in &waiting {
        assert_eq!(h.delivery(id).await.status, DeliveryStatus::Succeeded);
    }
    for id in &failed {
        let d = h.delivery(id).await;
        assert_eq!(d.status, DeliveryStatus::Pending);
        assert_eq!(
            d.next_attempt_at,
            Some(T0.add(secs(3600))),
            "their own retry time"
        );
    }
    assert_eq!(
        h.endpoint_now(&ep).await.failing_since(),
        None,
        "healthy again"
    );
    shutdown.cancel();
    run.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_the_circuit_for_twice_as_long() {
    let config = quiet_config().with_circuit(2, secs(10));
    let h = Harness::new(config, Schedule::fixed(vec![secs(3600)])).await;
    let ep = h.endpoint("https://r.example/down").await;
    h.receiver.script(&ep.url, [Reply::Status(500); 3]);
    h.publish(&ep).await;
    h.publish(&ep).await;
    let (shutdown, run) = h.start();
    h.until(secs(1)).await;
    let probe = h.publish(&ep).await;
    // Open at 0 s for 10 s; the probe at 10 s fails: open for 20 s more.
    h.until(secs(11)).await;
    assert_eq!(
        h.receiver.sent_to(&ep.url),
        vec![secs(0), secs(0), secs(10)]
    );
    assert_eq!(h.delivery(&probe).await.attempts, 1);
    let next = h.publish(&ep).await;
    h.until(secs(29)).await;
    assert_eq!(h.receiver.sent_to(&ep.url).len(), 3, "still open");
    h.until(secs(31)).await;
    assert_eq!(
        h.receiver.sent_to(&ep.url),
        vec![secs(0), secs(0), secs(10), secs(30)],
        "the next probe goes after the doubled cool-down"
    );
    assert_eq!(h.delivery(&next).await.status, DeliveryStatus::Succeeded);
    shutdown.cancel();
    run.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn retry_after_pauses_the_endpoint_and_delays_the_retry() {
    let h = Harness::new(quiet_config(), Schedule::fixed(vec![secs(1), secs(60)])).await;
    let ep = h.endpoint("https://r.example/busy").await;
    let other = h.endpoint("https://r.example/idle").await;
    h.receiver.script(&ep.url, [Reply::RetryAfter(429, 30)]);
    let first = h.publish(&ep).await;
    let (shutdown, run) = h.start();

    h.until(secs(5)).await;
    let d = h.delivery(&first).await;
    assert_eq!(d.status, DeliveryStatus::Pending);
    assert_eq!(
        d.next_attempt_at,
        Some(T0.add(secs(30))),
        "the retry waits for Retry-After (30 s), not the 1 s step"
    );
    // New work for the paused endpoint waits too; other endpoints do not.
    let second = h.publish(&ep).await;
    let unrelated = h.publish(&other).await;
    h.until(secs(29)).await;
    assert_eq!(h.receiver.sent_to(&ep.url), vec![secs(0)], "paused");
    assert_eq!(h.receiver.sent_to(&other.url), vec![secs(5)]);
    assert_eq!(
        h.delivery(&unrelated).await.status,
        DeliveryStatus::Succeeded
    );

    h.until(secs(31)).await;
    assert_eq!(
        h.receiver.sent_to(&ep.url),
        vec![secs(0), secs(30), secs(30)]
    );
    for id in [&first, &second] {
        assert_eq!(h.delivery(id).await.status, DeliveryStatus::Succeeded);
    }
    shutdown.cancel();
    run.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_that_fails_for_the_disable_period_is_disabled_and_keeps_its_deliveries() {
    let config = quiet_config()
        .with_disable_after(Some(secs(3600)))
        .with_idle_poll(secs(60));
    let h = Harness::new(config, Schedule::fixed(vec![secs(20 * 60); 20])).await;
    let ep = h.endpoint("https://r.example/gone").await;
    h.receiver.script(&ep.url, [Reply::Status(500); 100]);
    let d = h.publish(&ep).await;
    let (shutdown, run) = h.start();

    h.until(secs(59 * 60)).await;
    let now = h.endpoint_now(&ep).await;
    assert!(now.enabled, "not yet: failing for 40 min");
    assert_eq!(
        now.failing_since(),
        Some(T0),
        "the failure clock runs since the first failure"
    );

    h.until(secs(61 * 60)).await;
    let now = h.endpoint_now(&ep).await;
    assert!(!now.enabled, "every attempt failed for an hour: disabled");
    let reason = now.disabled_reason.expect("a reason");
    assert!(reason.contains("disabled automatically"), "{reason}");
    assert!(
        reason.contains(&T0.to_string()),
        "it says since when: {reason}"
    );
    assert_eq!(now.updated_at, T0.add(secs(3600)));
    assert_eq!(h.receiver.sent_to(&ep.url).len(), 4, "0, 20, 40 and 60 min");

    // Its deliveries stay pending (for a person to enable it again), and are not sent.
    let later = h.publish(&ep).await;
    h.until(secs(5 * 3600)).await;
    assert_eq!(h.receiver.sent_to(&ep.url).len(), 4);
    for id in [&d, &later] {
        assert_eq!(h.delivery(id).await.status, DeliveryStatus::Pending);
    }
    assert_eq!(h.delivery(&d).await.attempts, 4);
    shutdown.cancel();
    run.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_requests_in_flight_and_claims_nothing_new() {
    let h = Harness::new(
        quiet_config().with_shutdown_grace(secs(10)),
        Schedule::default(),
    )
    .await;
    let ep = h.endpoint("https://r.example/slow").await;
    h.receiver.script(
        &ep.url,
        [Reply::Slow(secs(3), 200), Reply::Slow(secs(3), 200)],
    );
    let in_flight = [h.publish(&ep).await, h.publish(&ep).await];
    let (shutdown, run) = h.start();

    h.until(secs(1)).await;
    assert_eq!(h.receiver.sent_to(&ep.url).len(), 2);
    shutdown.cancel();
    // Published after the shutdown: stored, never claimed by this dispatcher.
    let after = h.publish(&ep).await;
    run.await.unwrap().expect("a shutdown is not an error");
    assert_eq!(
        h.elapsed(),
        secs(3),
        "run returns as soon as the requests in flight are done"
    );
    for id in &in_flight {
        assert_eq!(h.delivery(id).await.status, DeliveryStatus::Succeeded);
    }
    let d = h.delivery(&after).await;
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Pending, 0));
    assert_eq!(d.next_attempt_at, Some(T0.add(secs(1))), "not even leased");
    assert_eq!(h.receiver.sent_to(&ep.url).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn requests_past_the_grace_period_are_abandoned_to_their_lease() {
    let config = quiet_config().with_shutdown_grace(secs(10));
    let h = Harness::new(config, Schedule::default()).await;
    let ep = h.endpoint("https://r.example/stuck").await;
    h.receiver.script(&ep.url, [Reply::Timeout]);
    let d = h.publish(&ep).await;
    let (shutdown, run) = h.start();
    h.until(secs(1)).await;
    shutdown.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(
        h.elapsed(),
        secs(11),
        "run waits the grace period, no longer"
    );
    let got = h.delivery(&d).await;
    assert_eq!((got.status, got.attempts), (DeliveryStatus::Pending, 0));
    assert_eq!(
        got.next_attempt_at,
        Some(T0.add(DispatcherConfig::default().lease)),
        "it is due again when its lease ends"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_store_is_waited_for_and_a_lasting_failure_ends_run() {
    let h = Harness::new(
        quiet_config().with_store_failure_limit(Some(5)),
        Schedule::default(),
    )
    .await;
    let ep = h.endpoint("https://r.example/hook").await;
    let d = h.publish(&ep).await;
    h.store.set_fault(Some(Fault::Unavailable));
    let (_shutdown, run) = h.start();
    h.until(secs(600)).await;
    assert!(!run.is_finished(), "an unavailable store is waited for");
    assert!(h.receiver.sent_to(&ep.url).is_empty());
    h.store.set_fault(None);
    h.until(secs(606)).await;
    assert_eq!(
        h.delivery(&d).await.status,
        DeliveryStatus::Succeeded,
        "work resumes within the longest backoff (5 s)"
    );

    h.store.set_fault(Some(Fault::Backend));
    let failing_from = h.elapsed();
    let err = run.await.unwrap().expect_err("a lasting failure ends run");
    match &err {
        DispatchError::Store { failures, source } => {
            assert_eq!(*failures, 5);
            assert!(matches!(source, StoreError::Backend(_)), "{source:?}");
        }
        other => panic!("expected a store failure, got {other:?}"),
    }
    // The next claim (within the 1 s idle poll), then four more after 100 + 200 + 400 + 800 ms.
    let took = h.elapsed() - failing_from;
    assert!(
        (Duration::from_millis(1500)..=Duration::from_millis(2500)).contains(&took),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_task_ends_run_with_an_error_after_the_others_finish() {
    let h = Harness::new(quiet_config(), Schedule::default()).await;
    let broken = h.endpoint("https://r.example/broken").await;
    let slow = h.endpoint("https://r.example/slow").await;
    h.receiver.script(&broken.url, [Reply::Panic]);
    h.receiver.script(&slow.url, [Reply::Slow(secs(2), 200)]);
    let survivor = h.publish(&slow).await;
    let (_shutdown, run) = h.start();
    h.until(secs(1)).await;
    let d = h.publish(&broken).await;
    let err = run.await.unwrap().expect_err("a panic is a failure");
    assert!(
        matches!(
            err,
            DispatchError::Panicked {
                task: "delivery",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        h.delivery(&survivor).await.status,
        DeliveryStatus::Succeeded,
        "the request in flight was drained first"
    );
    let got = h.delivery(&d).await;
    assert_eq!(
        (got.status, got.attempts),
        (DeliveryStatus::Pending, 0),
        "the panicked delivery is retried when its lease ends"
    );
}

/// A new event of `account` at `now`.
fn batch_event(account: &AccountId, now: Timestamp) -> Event {
    Event::new(
        EventId::generate(),
        account.clone(),
        EventTypeName::parse("rx.completed").unwrap(),
        RawValue::from_string(r#"{"patientId":"p_77"}"#.into()).unwrap(),
        now,
    )
}

#[tokio::test(start_paused = true)]
async fn a_batch_goes_to_each_events_subscribers_whole_and_within_its_delivery_limit() {
    let h = Harness::new(quiet_config(), Schedule::fixed(vec![secs(3600)])).await;
    let a = h.endpoint("https://a.example/hook").await;
    let b = h.endpoint("https://b.example/hook").await;
    let events: Vec<Event> = (0..3)
        .map(|_| batch_event(&h.account, h.clock.now()))
        .collect();

    // 3 events × 2 subscribers: 6 deliveries.
    match h.dispatcher.publish_batch_limited(&events, 5).await {
        Err(super::PublishError::TooManyDeliveries {
            deliveries: 6,
            limit: 5,
        }) => {}
        other => panic!("expected TooManyDeliveries, got {other:?}"),
    }
    for ev in &events {
        assert_eq!(h.store.event(&h.account, &ev.id).await.unwrap(), None);
    }

    let receipts = h
        .dispatcher
        .publish_batch_limited(&events, 6)
        .await
        .unwrap();
    assert_eq!(receipts.len(), 3);
    for (ev, r) in events.iter().zip(&receipts) {
        assert_eq!((&r.event_id, r.duplicate), (&ev.id, false));
        let mut to: Vec<EndpointId> = Vec::new();
        for id in &r.deliveries {
            to.push(h.delivery(id).await.endpoint_id);
        }
        to.sort();
        let mut want = vec![a.id.clone(), b.id.clone()];
        want.sort();
        assert_eq!(to, want, "one delivery per subscriber");
    }
    let again = h.dispatcher.publish_batch(&events).await.unwrap();
    assert!(
        again.iter().all(|r| r.duplicate),
        "published twice: duplicates"
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_to_an_endpoint_removed_behind_the_cache_reads_the_subscribers_again() {
    let clock = TokioClock::new(T0);
    let inner = Arc::new(MemoryStore::new());
    let cached = Arc::new(crate::cache::CachedStore::new(inner.clone()));
    let (receiver, account) = (Receiver::new(clock), AccountId::parse("acme").unwrap());
    let dispatcher = Dispatcher::builder(cached.clone(), receiver.transport())
        .clock(Arc::new(clock))
        .config(quiet_config())
        .build();
    inner
        .create_account(&Account::new(account.clone(), "Acme", T0))
        .await
        .unwrap();
    let mut kept = Vec::new();
    for host in ["a", "b"] {
        let ep = Endpoint::new(
            EndpointId::generate(),
            account.clone(),
            format!("https://{host}.example/hook"),
            vec![],
            T0,
        );
        inner.create_endpoint(&ep).await.unwrap();
        kept.push(ep);
    }
    let kind = EventTypeName::parse("rx.completed").unwrap();
    assert_eq!(
        cached
            .subscribers(&account, None, &kind)
            .await
            .unwrap()
            .len(),
        2
    );
    // Removed without the cache knowing: its subscriber list is stale.
    let gone = kept.remove(0);
    assert!(inner.remove_endpoint(&account, &gone.id).await.unwrap());

    let events = vec![batch_event(&account, T0), batch_event(&account, T0)];
    let receipts = dispatcher.publish_batch(&events).await.unwrap();
    for r in &receipts {
        assert_eq!(r.deliveries.len(), 1, "only the endpoint that is left");
        let d = inner
            .delivery(&account, &r.deliveries[0])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.endpoint_id, kept[0].id);
    }
}

/// Endpoints that hang (no answer until the 15 s timeout) cannot keep the slots a healthy one
/// needs: their requests give the shared slots back after `slow_after` (5 s) and wait in the
/// slow lane, the endpoints get no other request meanwhile (then one at a time: their limits
/// halved), and once they answer again everything of theirs is delivered. Without the slow lane
/// the healthy endpoint's first event would wait for the 15 s time-outs.
#[tokio::test(start_paused = true)]
async fn hanging_endpoints_do_not_take_the_slots_of_a_healthy_one() {
    let config = quiet_config().with_concurrency(8);
    let h = Harness::new(config, Schedule::fixed(vec![secs(1); 20])).await;
    let healthy = h.endpoint("https://r.example/healthy").await;
    let mut hanging = Vec::new();
    let mut stuck = Vec::new();
    for i in 0..2 {
        let ep = h.endpoint(&format!("https://r.example/hanging-{i}")).await;
        // Every delivery's first two attempts hang; then the endpoint answers.
        h.receiver.script(&ep.url, [Reply::Timeout; 16]);
        for _ in 0..8 {
            stuck.push(h.publish(&ep).await);
        }
        hanging.push(ep);
    }
    let (shutdown, run) = h.start();
    h.until(Duration::from_millis(100)).await;
    // Two hanging endpoints start at four requests each: all eight shared slots.
    let first: usize = hanging
        .iter()
        .map(|e| h.receiver.sent_to(&e.url).len())
        .sum();
    assert_eq!(first, 8, "the shared slots are all taken at first");
    h.until(secs(1)).await;
    let early = h.publish(&healthy).await;
    // Later events to the healthy endpoint, one a second while the others keep hanging.
    let mut later = Vec::new();
    for s in 7..40 {
        h.until(secs(s)).await;
        later.push((secs(s), h.publish(&healthy).await));
    }
    h.until(secs(40)).await;
    let sent = h.receiver.sent_to(&healthy.url);
    assert_eq!(sent.len(), 1 + later.len(), "{sent:?}");
    assert!(
        sent[0] <= Duration::from_millis(5_100),
        "the first waits at most until the hanging requests leave the shared slots: {sent:?}"
    );
    for ((published, _), at) in later.iter().zip(&sent[1..]) {
        assert!(
            *at <= *published + Duration::from_millis(50),
            "published at {published:?}, sent at {at:?}"
        );
    }
    assert_eq!(h.delivery(&early).await.status, DeliveryStatus::Succeeded);
    // The hanging endpoints answer again after their third time-out: all theirs arrive.
    h.until(secs(600)).await;
    for id in &stuck {
        assert_eq!(h.delivery(id).await.status, DeliveryStatus::Succeeded);
    }
    for (_, id) in &later {
        assert_eq!(h.delivery(id).await.status, DeliveryStatus::Succeeded);
    }
    shutdown.cancel();
    run.await.unwrap().unwrap();
}
