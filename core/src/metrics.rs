//! Metrics: what Hookline counts and measures, recorded through the [`metrics`] facade.
//!
//! Core installs no recorder and depends on no exporter: until the embedding program installs
//! one (the server installs a Prometheus recorder), every recording is a no-op. Label sets are
//! bounded: no metric is labelled by account, endpoint or delivery.
//!
//! | metric | type | labels | what |
//! | --- | --- | --- | --- |
//! | [`EVENTS`] | counter | `event_type`, `outcome` | events published through [`Hookline`](crate::service::Hookline): `accepted`, `duplicate` (an idempotency key or id seen before), `rejected` (refused by a check: unknown type, bad data, not allowed, …) or `failed` (the store failed: a `503` or `500`); `event_type` is the catalog name when the event's type was found in the catalog, else [`OTHER_EVENT_TYPE`] |
//! | [`DELIVERIES_SETTLED`] | counter | `outcome` | attempts settled by the dispatcher: `delivered`, `failed_attempt` (a retry is scheduled) or `exhausted` (no retry left: the delivery failed) |
//! | [`ATTEMPT_DURATION`] | histogram | — | how long each attempt's request took, seconds |
//! | [`ATTEMPT_ERRORS`] | counter | `kind` | failed attempts by what went wrong: `timeout`, `connect`, `tls`, `blocked` (the SSRF guard), `invalid_url`, `status_3xx`, `status_4xx`, `status_5xx`, `other` |
//! | [`CLAIM_DURATION`] | histogram | — | how long each claim of due deliveries took in the store, seconds ([`MeteredStore`]) |
//! | [`CIRCUITS_OPEN`] | gauge | — | endpoints whose circuit is open in this process |
//! | [`ENDPOINTS_DISABLED`] | counter | — | endpoints this process disabled automatically after failing for too long |
//! | [`STORE_ERRORS`] | counter | `operation`, `kind` | store calls that failed ([`MeteredStore`]): `kind` is `unavailable`, `unconfirmed` (a write whose outcome is unknown) or `backend`; `operation` names the store method (`claim`, `settle`, `enqueue`, `account`, …) |
//! | [`DELIVERIES_PENDING`] | gauge | — | pending deliveries in the store ([`record_backlog`]) |
//! | [`OLDEST_DUE_AGE`] | gauge | — | how long the earliest-due claimable delivery has been due, seconds; 0 when nothing is overdue ([`record_backlog`]) |

use std::sync::Arc;
use std::time::Duration;

use ::metrics::Unit;

use crate::id::{AccountId, DeliveryId, EndpointId, EventId, EventTypeName, KeyId, SiteId};
use crate::model::{
    Account, ApiKey, Attempt, AuditEntry, Delivery, DeliveryFilter, Endpoint, Event, EventFilter,
    EventType, Page, PageRequest, Site, Trigger,
};
use crate::store::{
    AuditStore, Backlog, CatalogStore, Claimed, EndpointStore, HistoryStore, LeaseToken, Next,
    QueueStore, Receipt, Store, StoreError, WorkListener,
};
use crate::time::Timestamp;
use crate::transport::{DeliveryResponse, TransportError};

/// Counter: events published, by `event_type` and `outcome`.
pub const EVENTS: &str = "hookline_events_total";
/// Counter: attempts settled, by `outcome`.
pub const DELIVERIES_SETTLED: &str = "hookline_deliveries_settled_total";
/// Histogram: attempt request durations, seconds.
pub const ATTEMPT_DURATION: &str = "hookline_attempt_duration_seconds";
/// Counter: failed attempts, by `kind`.
pub const ATTEMPT_ERRORS: &str = "hookline_attempt_errors_total";
/// Histogram: claim durations in the store, seconds.
pub const CLAIM_DURATION: &str = "hookline_claim_duration_seconds";
/// Gauge: open circuits in this process.
pub const CIRCUITS_OPEN: &str = "hookline_circuits_open";
/// Counter: endpoints disabled automatically.
pub const ENDPOINTS_DISABLED: &str = "hookline_endpoints_disabled_total";
/// Counter: failed store calls, by `operation` and `kind`.
pub const STORE_ERRORS: &str = "hookline_store_errors_total";
/// Gauge: pending deliveries.
pub const DELIVERIES_PENDING: &str = "hookline_deliveries_pending";
/// Gauge: how long the earliest-due claimable delivery has been due, seconds.
pub const OLDEST_DUE_AGE: &str = "hookline_deliveries_oldest_due_age_seconds";

/// The `event_type` label of an event whose type was not found in the catalog (or was not
/// looked up, because the event was refused before): event type names cannot contain
/// parentheses, so it never names a real type, and the label takes only the catalog's names
/// besides it.
pub const OTHER_EVENT_TYPE: &str = "(other)";

/// Registers the description and unit of every metric above with the installed recorder (call
/// it once, after installing one).
pub fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        EVENTS,
        Unit::Count,
        "Events published, by event type (catalog names only) and outcome (accepted, duplicate, rejected, failed)"
    );
    describe_counter!(
        DELIVERIES_SETTLED,
        Unit::Count,
        "Delivery attempts settled, by outcome (delivered, failed_attempt, exhausted)"
    );
    describe_histogram!(
        ATTEMPT_DURATION,
        Unit::Seconds,
        "Duration of each delivery attempt's request"
    );
    describe_counter!(
        ATTEMPT_ERRORS,
        Unit::Count,
        "Failed delivery attempts, by kind (timeout, connect, tls, blocked, invalid_url, status_3xx, status_4xx, status_5xx, other)"
    );
    describe_histogram!(
        CLAIM_DURATION,
        Unit::Seconds,
        "Duration of each claim of due deliveries in the store"
    );
    describe_gauge!(
        CIRCUITS_OPEN,
        Unit::Count,
        "Endpoints whose circuit breaker is open in this process"
    );
    describe_counter!(
        ENDPOINTS_DISABLED,
        Unit::Count,
        "Endpoints disabled automatically after failing every attempt for the disable period"
    );
    describe_counter!(
        STORE_ERRORS,
        Unit::Count,
        "Store calls that failed, by operation and kind (unavailable, unconfirmed, backend)"
    );
    describe_gauge!(
        DELIVERIES_PENDING,
        Unit::Count,
        "Pending deliveries in the store, sampled periodically"
    );
    describe_gauge!(
        OLDEST_DUE_AGE,
        Unit::Seconds,
        "How long the earliest-due claimable delivery has been due (0 when none is overdue), sampled periodically"
    );
}

/// Counts one event published: `Ok(duplicate)` if it was stored (or was a duplicate), else the
/// refusal. `catalog_type` is its type when the catalog has it.
pub(crate) fn event_published(
    catalog_type: Option<&EventTypeName>,
    result: Result<bool, &crate::service::ServiceError>,
) {
    let outcome = match result {
        Ok(false) => "accepted",
        Ok(true) => "duplicate",
        Err(
            crate::service::ServiceError::Unavailable(_)
            | crate::service::ServiceError::Internal(_),
        ) => "failed",
        Err(_) => "rejected",
    };
    let event_type = catalog_type.map_or_else(|| OTHER_EVENT_TYPE.to_owned(), |t| t.to_string());
    ::metrics::counter!(EVENTS, "event_type" => event_type, "outcome" => outcome).increment(1);
}

/// Records an attempt's duration, and its failure kind if it failed.
pub(crate) fn attempt_finished(
    result: &Result<DeliveryResponse, TransportError>,
    elapsed: Duration,
) {
    ::metrics::histogram!(ATTEMPT_DURATION).record(elapsed);
    let kind = match result {
        Ok(r) if (200..300).contains(&r.status) => return,
        Ok(r) => match r.status {
            300..=399 => "status_3xx",
            400..=499 => "status_4xx",
            500..=599 => "status_5xx",
            _ => "other",
        },
        Err(e) => match e {
            TransportError::Timeout => "timeout",
            TransportError::Connect(_) => "connect",
            TransportError::Tls(_) => "tls",
            TransportError::Blocked(_) => "blocked",
            TransportError::InvalidUrl(_) => "invalid_url",
            _ => "other",
        },
    };
    ::metrics::counter!(ATTEMPT_ERRORS, "kind" => kind).increment(1);
}

/// Counts an attempt settled as `next`.
pub(crate) fn settled(next: Next) {
    let outcome = match next {
        Next::Delivered => "delivered",
        Next::RetryAt(_) => "failed_attempt",
        Next::Exhausted => "exhausted",
    };
    ::metrics::counter!(DELIVERIES_SETTLED, "outcome" => outcome).increment(1);
}

/// Counts an endpoint disabled automatically.
pub(crate) fn endpoint_disabled() {
    ::metrics::counter!(ENDPOINTS_DISABLED).increment(1);
}

/// A circuit opened (`1.0`) or closed (`-1.0`), or an open one was forgotten (`-1.0`).
pub(crate) fn circuits_open(change: f64) {
    ::metrics::gauge!(CIRCUITS_OPEN).increment(change);
}

/// Reads the store's [`Backlog`] and sets [`DELIVERIES_PENDING`] and [`OLDEST_DUE_AGE`] (as of
/// `now`). Call it every few seconds from one task (the server samples every 10 s), never per
/// request: it counts in the store. When several processes share a store, each reports the
/// same backlog.
pub async fn record_backlog(store: &dyn Store, now: Timestamp) -> Result<Backlog, StoreError> {
    let backlog = store.backlog().await?;
    ::metrics::gauge!(DELIVERIES_PENDING).set(backlog.pending as f64);
    let age = backlog
        .oldest_due
        .map_or(Duration::ZERO, |due| now.since(due));
    ::metrics::gauge!(OLDEST_DUE_AGE).set(age.as_secs_f64());
    Ok(backlog)
}

/// A [`Store`] decorator that counts failed calls ([`STORE_ERRORS`], by operation) and times
/// claims ([`CLAIM_DURATION`]), passing everything to the store it wraps.
///
/// `NotFound`, `Conflict` and `LeaseLost` are answers, not failures, and are not counted. Put
/// it directly around the backend (under a [`CachedStore`](crate::cache::CachedStore)), so
/// that only calls that reach the backend count:
///
/// ```no_run
/// # fn demo(backend: std::sync::Arc<dyn hookline_core::store::Store>) {
/// use std::sync::Arc;
/// use hookline_core::cache::CachedStore;
/// use hookline_core::metrics::MeteredStore;
/// use hookline_core::store::Store;
///
/// let store: Arc<dyn Store> = Arc::new(CachedStore::new(Arc::new(MeteredStore::new(backend))));
/// # }
/// ```
pub struct MeteredStore<S: ?Sized = dyn Store> {
    inner: Arc<S>,
}

impl<S: ?Sized> std::fmt::Debug for MeteredStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredStore").finish_non_exhaustive()
    }
}

impl<S: ?Sized> MeteredStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<S>) -> Self {
        Self { inner }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }
}

/// Awaits a store call, counting it in [`STORE_ERRORS`] if it failed.
async fn metered<T>(
    operation: &'static str,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let r = call.await;
    if let Err(e) = &r {
        let kind = match e {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Unconfirmed(_) => "unconfirmed",
            StoreError::Backend(_) => "backend",
            _ => return r,
        };
        ::metrics::counter!(STORE_ERRORS, "operation" => operation, "kind" => kind).increment(1);
    }
    r
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> CatalogStore for MeteredStore<S> {
    async fn create_account(&self, account: &Account) -> Result<(), StoreError> {
        metered("create_account", self.inner.create_account(account)).await
    }

    async fn update_account(&self, account: &Account) -> Result<(), StoreError> {
        metered("update_account", self.inner.update_account(account)).await
    }

    async fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        metered("account", self.inner.account(id)).await
    }

    async fn list_accounts(&self, page: &PageRequest) -> Result<Page<Account>, StoreError> {
        metered("list_accounts", self.inner.list_accounts(page)).await
    }

    async fn delete_account(&self, id: &AccountId) -> Result<bool, StoreError> {
        metered("delete_account", self.inner.delete_account(id)).await
    }

    async fn create_site(&self, site: &Site) -> Result<(), StoreError> {
        metered("create_site", self.inner.create_site(site)).await
    }

    async fn update_site(&self, site: &Site) -> Result<(), StoreError> {
        metered("update_site", self.inner.update_site(site)).await
    }

    async fn site(&self, account: &AccountId, id: &SiteId) -> Result<Option<Site>, StoreError> {
        metered("site", self.inner.site(account, id)).await
    }

    async fn list_sites(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Site>, StoreError> {
        metered("list_sites", self.inner.list_sites(account, page)).await
    }

    async fn delete_site(&self, account: &AccountId, id: &SiteId) -> Result<bool, StoreError> {
        metered("delete_site", self.inner.delete_site(account, id)).await
    }

    async fn create_event_type(&self, et: &EventType) -> Result<(), StoreError> {
        metered("create_event_type", self.inner.create_event_type(et)).await
    }

    async fn update_event_type(&self, et: &EventType) -> Result<(), StoreError> {
        metered("update_event_type", self.inner.update_event_type(et)).await
    }

    async fn event_type(&self, name: &EventTypeName) -> Result<Option<EventType>, StoreError> {
        metered("event_type", self.inner.event_type(name)).await
    }

    async fn list_event_types(&self, page: &PageRequest) -> Result<Page<EventType>, StoreError> {
        metered("list_event_types", self.inner.list_event_types(page)).await
    }

    async fn delete_event_type(&self, name: &EventTypeName) -> Result<bool, StoreError> {
        metered("delete_event_type", self.inner.delete_event_type(name)).await
    }

    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        metered("put_api_key", self.inner.put_api_key(key)).await
    }

    async fn api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        metered("api_key", self.inner.api_key(hash)).await
    }

    async fn has_admin_key(&self) -> Result<bool, StoreError> {
        metered("has_admin_key", self.inner.has_admin_key()).await
    }

    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        metered("setting", self.inner.setting(name)).await
    }

    async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        metered("put_setting", self.inner.put_setting(name, value)).await
    }

    async fn list_api_keys(
        &self,
        account: Option<&AccountId>,
        page: &PageRequest,
    ) -> Result<Page<ApiKey>, StoreError> {
        metered("list_api_keys", self.inner.list_api_keys(account, page)).await
    }

    async fn delete_api_key(
        &self,
        account: Option<&AccountId>,
        id: &KeyId,
    ) -> Result<Option<ApiKey>, StoreError> {
        metered("delete_api_key", self.inner.delete_api_key(account, id)).await
    }

    async fn touch_api_key(&self, hash: &str, at: Timestamp) -> Result<(), StoreError> {
        metered("touch_api_key", self.inner.touch_api_key(hash, at)).await
    }
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> AuditStore for MeteredStore<S> {
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        metered("record_audit", self.inner.record_audit(entry)).await
    }

    async fn list_audit(
        &self,
        account: Option<&AccountId>,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>, StoreError> {
        metered("list_audit", self.inner.list_audit(account, page)).await
    }

    async fn purge_audit(&self, before: Timestamp, max: usize) -> Result<u64, StoreError> {
        metered("purge_audit", self.inner.purge_audit(before, max)).await
    }
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> EndpointStore for MeteredStore<S> {
    async fn create_endpoint(&self, ep: &Endpoint) -> Result<(), StoreError> {
        metered("create_endpoint", self.inner.create_endpoint(ep)).await
    }

    async fn update_endpoint(&self, ep: &Endpoint) -> Result<(), StoreError> {
        metered("update_endpoint", self.inner.update_endpoint(ep)).await
    }

    async fn endpoint(
        &self,
        account: &AccountId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>, StoreError> {
        metered("endpoint", self.inner.endpoint(account, id)).await
    }

    async fn list_endpoints(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Endpoint>, StoreError> {
        metered("list_endpoints", self.inner.list_endpoints(account, page)).await
    }

    async fn remove_endpoint(
        &self,
        account: &AccountId,
        id: &EndpointId,
    ) -> Result<bool, StoreError> {
        metered("remove_endpoint", self.inner.remove_endpoint(account, id)).await
    }

    async fn subscribers(
        &self,
        account: &AccountId,
        site: Option<&SiteId>,
        kind: &EventTypeName,
    ) -> Result<Vec<Endpoint>, StoreError> {
        metered("subscribers", self.inner.subscribers(account, site, kind)).await
    }
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> QueueStore for MeteredStore<S> {
    async fn enqueue_with(
        &self,
        event: &Event,
        targets: &[EndpointId],
        now: Timestamp,
        trigger: Trigger,
    ) -> Result<Receipt, StoreError> {
        metered(
            "enqueue",
            self.inner.enqueue_with(event, targets, now, trigger),
        )
        .await
    }

    async fn enqueue_batch(
        &self,
        items: &[(Event, Vec<EndpointId>)],
        now: Timestamp,
        trigger: Trigger,
    ) -> Result<Vec<Receipt>, StoreError> {
        metered(
            "enqueue_batch",
            self.inner.enqueue_batch(items, now, trigger),
        )
        .await
    }

    async fn claim_due_except(
        &self,
        now: Timestamp,
        max: usize,
        lease: Duration,
        skip: &[EndpointId],
    ) -> Result<Vec<Claimed>, StoreError> {
        let started = std::time::Instant::now();
        let r = metered("claim", self.inner.claim_due_except(now, max, lease, skip)).await;
        ::metrics::histogram!(CLAIM_DURATION).record(started.elapsed());
        r
    }

    async fn defer(&self, lease: &LeaseToken, until: Timestamp) -> Result<(), StoreError> {
        metered("defer", self.inner.defer(lease, until)).await
    }

    async fn hold_endpoint(
        &self,
        endpoint: &EndpointId,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        metered(
            "hold_endpoint",
            self.inner.hold_endpoint(endpoint, until, now),
        )
        .await
    }

    async fn settle(
        &self,
        lease: &LeaseToken,
        attempt: &Attempt,
        next: Next,
    ) -> Result<(), StoreError> {
        metered("settle", self.inner.settle(lease, attempt, next)).await
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        metered("next_due", self.inner.next_due()).await
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        metered("backlog", self.inner.backlog()).await
    }

    async fn add_hourly(&self, stats: &[crate::model::HourlyStats]) -> Result<(), StoreError> {
        metered("add_hourly", self.inner.add_hourly(stats)).await
    }

    fn listen_for_work(&self) -> Option<WorkListener> {
        self.inner.listen_for_work()
    }

    async fn purge(&self, before: Timestamp, max: usize) -> Result<u64, StoreError> {
        metered("purge", self.inner.purge(before, max)).await
    }

    async fn record_failing(
        &self,
        id: &EndpointId,
        at: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        metered("record_failing", self.inner.record_failing(id, at)).await
    }

    async fn record_healthy(&self, id: &EndpointId) -> Result<(), StoreError> {
        metered("record_healthy", self.inner.record_healthy(id)).await
    }

    async fn disable_endpoint(
        &self,
        id: &EndpointId,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        metered(
            "disable_endpoint",
            self.inner.disable_endpoint(id, reason, now),
        )
        .await
    }

    async fn retry_delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: Timestamp,
    ) -> Result<Delivery, StoreError> {
        metered(
            "retry_delivery",
            self.inner.retry_delivery(account, id, now),
        )
        .await
    }

    async fn retry_deliveries(
        &self,
        account: &AccountId,
        ids: &[DeliveryId],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        metered(
            "retry_deliveries",
            self.inner.retry_deliveries(account, ids, now),
        )
        .await
    }

    async fn recover_failed(
        &self,
        account: &AccountId,
        endpoint: &EndpointId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        metered(
            "recover_failed",
            self.inner.recover_failed(account, endpoint, since, now),
        )
        .await
    }

    async fn replace_event_data(
        &self,
        account: &AccountId,
        id: &EventId,
        data: &serde_json::value::RawValue,
    ) -> Result<bool, StoreError> {
        metered(
            "replace_event_data",
            self.inner.replace_event_data(account, id, data),
        )
        .await
    }
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> HistoryStore for MeteredStore<S> {
    async fn event(&self, account: &AccountId, id: &EventId) -> Result<Option<Event>, StoreError> {
        metered("event", self.inner.event(account, id)).await
    }

    async fn event_by_idempotency_key(
        &self,
        account: &AccountId,
        key: &str,
    ) -> Result<Option<Event>, StoreError> {
        metered(
            "event_by_idempotency_key",
            self.inner.event_by_idempotency_key(account, key),
        )
        .await
    }

    async fn list_events(
        &self,
        account: &AccountId,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> Result<Page<Event>, StoreError> {
        metered("list_events", self.inner.list_events(account, filter, page)).await
    }

    async fn delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>, StoreError> {
        metered("delivery", self.inner.delivery(account, id)).await
    }

    async fn list_deliveries(
        &self,
        account: &AccountId,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<Delivery>, StoreError> {
        metered(
            "list_deliveries",
            self.inner.list_deliveries(account, filter, page),
        )
        .await
    }

    async fn attempts(
        &self,
        account: &AccountId,
        delivery: &DeliveryId,
    ) -> Result<Vec<Attempt>, StoreError> {
        metered("attempts", self.inner.attempts(account, delivery)).await
    }

    async fn list_attempts(
        &self,
        account: &AccountId,
        delivery: &DeliveryId,
        filter: &crate::model::AttemptFilter,
        page: &PageRequest,
    ) -> Result<Page<Attempt>, StoreError> {
        metered(
            "list_attempts",
            self.inner.list_attempts(account, delivery, filter, page),
        )
        .await
    }

    async fn hourly(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
    ) -> Result<Vec<crate::model::HourlyStats>, StoreError> {
        metered("hourly", self.inner.hourly(endpoint, since)).await
    }
}

#[cfg(all(test, feature = "testkit"))]
mod tests {
    use ::metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;
    use crate::testkit::{Fault, MemoryStore};

    /// A metric's name, labels and count (a counter's value, a histogram's number of values).
    type Recorded = (String, Vec<(String, String)>, u64);

    /// What was recorded, sorted.
    fn recorded(recorder: &DebuggingRecorder) -> Vec<Recorded> {
        let mut out: Vec<_> = recorder
            .snapshotter()
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key();
                let labels = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                let n = match value {
                    DebugValue::Counter(n) => n,
                    DebugValue::Histogram(v) => v.len() as u64,
                    DebugValue::Gauge(g) => g.into_inner() as u64,
                };
                (key.name().to_owned(), labels, n)
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn metered_store_counts_failures_by_operation_and_times_claims() {
        let recorder = DebuggingRecorder::new();
        ::metrics::with_local_recorder(&recorder, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                let memory = Arc::new(MemoryStore::new());
                let store = MeteredStore::new(memory.clone() as Arc<dyn Store>);
                let now = Timestamp::from_millis(1_000);
                store
                    .claim_due(now, 10, Duration::from_secs(30))
                    .await
                    .expect("claim");
                memory.set_fault(Some(Fault::Unavailable));
                assert!(store.next_due().await.is_err());
                assert!(
                    store
                        .claim_due(now, 10, Duration::from_secs(30))
                        .await
                        .is_err()
                );
                memory.set_fault(Some(Fault::Backend));
                assert!(store.next_due().await.is_err());
                memory.set_fault(None);
                // Answers, not failures: nothing counted.
                let missing = AccountId::parse("nobody").expect("an id");
                assert!(store.account(&missing).await.expect("account").is_none());
                let gone = Account::new(missing, "x", now);
                assert!(matches!(
                    store.update_account(&gone).await,
                    Err(StoreError::NotFound(_))
                ));
            });
        });
        let label = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            recorded(&recorder),
            vec![
                (CLAIM_DURATION.to_owned(), vec![], 2),
                (
                    STORE_ERRORS.to_owned(),
                    vec![label("operation", "claim"), label("kind", "unavailable")],
                    1
                ),
                (
                    STORE_ERRORS.to_owned(),
                    vec![label("operation", "next_due"), label("kind", "backend")],
                    1
                ),
                (
                    STORE_ERRORS.to_owned(),
                    vec![label("operation", "next_due"), label("kind", "unavailable")],
                    1
                ),
            ]
        );
    }

    #[test]
    fn attempt_errors_are_told_apart_by_kind() {
        let recorder = DebuggingRecorder::new();
        ::metrics::with_local_recorder(&recorder, || {
            let answer = |status| {
                Ok(DeliveryResponse {
                    status,
                    headers: Default::default(),
                    body: Default::default(),
                })
            };
            let ms = Duration::from_millis(3);
            for r in [
                answer(204),
                answer(302),
                answer(404),
                answer(503),
                Err(TransportError::Timeout),
                Err(TransportError::Tls("bad certificate".into())),
                Err(TransportError::Connect("refused".into())),
            ] {
                attempt_finished(&r, ms);
            }
        });
        // A snapshot takes the histograms' values: one snapshot for both checks.
        let all = recorded(&recorder);
        let kinds: Vec<(String, u64)> = all
            .iter()
            .filter(|(name, _, _)| name == ATTEMPT_ERRORS)
            .map(|(_, labels, n)| (labels[0].1.clone(), *n))
            .collect();
        let expected: Vec<(String, u64)> = [
            "connect",
            "status_3xx",
            "status_4xx",
            "status_5xx",
            "timeout",
            "tls",
        ]
        .into_iter()
        .map(|k| (k.to_owned(), 1))
        .collect();
        assert_eq!(kinds, expected);
        assert!(all.contains(&(ATTEMPT_DURATION.to_owned(), vec![], 7)));
    }
}
