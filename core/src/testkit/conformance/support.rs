//! Fixtures and helpers the cases share: fixed instants, catalog rows, enqueueing, claiming
//! and settling with the checks every case relies on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::task::JoinSet;

use crate::id::{AccountId, AttemptId, DeliveryId, EndpointId, EventId, EventTypeName, SiteId};
use crate::model::{
    Account, Attempt, Delivery, DeliveryFilter, DeliveryStatus, Endpoint, EndpointSecret, Event,
    EventFilter, PageRequest,
};
use crate::signing::Secret;
use crate::store::{Claimed, Next, Receipt, Store, StoreError};
use crate::time::Timestamp;

/// An arbitrary base instant; every case counts from here.
pub(super) const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

/// The lease most cases claim with.
pub(super) const LEASE: Duration = Duration::from_secs(30);

pub(super) fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0.as_millis() + ms)
}

pub(super) fn account_id(s: &str) -> AccountId {
    AccountId::parse(s).expect("valid account id")
}

pub(super) fn site_id(s: &str) -> SiteId {
    SiteId::parse(s).expect("valid site id")
}

pub(super) fn kind(s: &str) -> EventTypeName {
    EventTypeName::parse(s).expect("valid event type")
}

pub(super) fn raw(s: &str) -> Box<RawValue> {
    RawValue::from_string(s.to_owned()).expect("valid JSON")
}

pub(super) async fn new_account(s: &dyn Store, id: &str) -> AccountId {
    let a = Account {
        id: account_id(id),
        name: format!("Account {id}"),
        created_at: T0,
        updated_at: T0,
    };
    s.create_account(&a).await.expect("create_account");
    a.id
}

pub(super) fn endpoint(account: &AccountId, types: &[&str], sites: &[&str]) -> Endpoint {
    Endpoint {
        id: EndpointId::generate(),
        account: account.clone(),
        url: "https://receiver.example.com/hook".into(),
        description: None,
        event_types: types.iter().map(|t| kind(t)).collect(),
        sites: sites.iter().map(|s| site_id(s)).collect(),
        headers: BTreeMap::new(),
        rate_limit: None,
        max_concurrency: None,
        ordered: false,
        secrets: vec![EndpointSecret {
            key: Secret::generate(),
            created_at: T0,
            expires_at: None,
        }],
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        created_at: T0,
        updated_at: T0,
    }
}

pub(super) async fn new_endpoint(
    s: &dyn Store,
    account: &AccountId,
    types: &[&str],
    sites: &[&str],
) -> Endpoint {
    let ep = endpoint(account, types, sites);
    s.create_endpoint(&ep).await.expect("create_endpoint");
    ep
}

pub(super) fn event(
    account: &AccountId,
    kind_name: &str,
    site: Option<&str>,
    fired: Timestamp,
) -> Event {
    Event {
        id: EventId::generate(),
        account: account.clone(),
        site: site.map(site_id),
        event_type: kind(kind_name),
        queue_id: None,
        data: raw(r#"{"patientId":"p_77"}"#),
        idempotency_key: None,
        timestamp: fired,
    }
}

pub(super) async fn enqueue(
    s: &dyn Store,
    ev: &Event,
    targets: &[&Endpoint],
    now: Timestamp,
) -> Receipt {
    let ids: Vec<EndpointId> = targets.iter().map(|e| e.id.clone()).collect();
    let r = s.enqueue(ev, &ids, now).await.expect("enqueue");
    assert!(
        !r.duplicate,
        "a new event must not be reported as duplicate"
    );
    assert_eq!(r.deliveries.len(), targets.len());
    r
}

/// Enqueues one new event of `account` for `targets` at `now`; returns its deliveries in target order.
pub(super) async fn enqueue_new(
    s: &dyn Store,
    account: &AccountId,
    targets: &[&Endpoint],
    now: Timestamp,
) -> (Event, Vec<DeliveryId>) {
    let ev = event(account, "rx.completed", None, now);
    let r = enqueue(s, &ev, targets, now).await;
    let mut by_endpoint = BTreeMap::new();
    for id in &r.deliveries {
        let d = delivery(s, account, id).await;
        by_endpoint.insert(d.endpoint_id, d.id);
    }
    let ordered = targets
        .iter()
        .map(|t| {
            by_endpoint
                .get(&t.id)
                .cloned()
                .expect("one delivery per target")
        })
        .collect();
    (ev, ordered)
}

pub(super) async fn claim(s: &dyn Store, now: Timestamp, max: usize) -> Vec<Claimed> {
    s.claim_due(now, max, LEASE).await.expect("claim_due")
}

pub(super) async fn claim_one(s: &dyn Store, now: Timestamp) -> Claimed {
    let mut got = claim(s, now, 1).await;
    assert_eq!(got.len(), 1, "expected exactly one due delivery at {now}");
    got.remove(0)
}

pub(super) fn ids(claims: &[Claimed]) -> Vec<DeliveryId> {
    claims.iter().map(|c| c.delivery.id.clone()).collect()
}

pub(super) async fn delivery(s: &dyn Store, account: &AccountId, id: &DeliveryId) -> Delivery {
    s.delivery(account, id)
        .await
        .expect("delivery")
        .unwrap_or_else(|| panic!("delivery {id} should exist"))
}

pub(super) fn attempt_for(c: &Claimed, started_at: Timestamp, status_code: Option<u16>) -> Attempt {
    Attempt {
        id: AttemptId::generate(),
        delivery_id: c.delivery.id.clone(),
        number: c.attempt_number,
        trigger: c.trigger,
        started_at,
        duration_ms: 125,
        status_code,
        error: match status_code {
            Some(_) => None,
            None => Some("connection refused".into()),
        },
        response_body: match status_code {
            Some(code) => format!("status {code}"),
            None => String::new(),
        },
    }
}

/// Settles `c` with an attempt started at `started_at` that got `code` (`None`: no response);
/// returns what the store answered.
pub(super) async fn try_settle(
    s: &dyn Store,
    c: &Claimed,
    started_at: Timestamp,
    code: Option<u16>,
    next: Next,
) -> Result<(), StoreError> {
    s.settle(&c.lease, &attempt_for(c, started_at, code), next)
        .await
}

/// Settles `c` as [`try_settle`] does; the lease must be live.
pub(super) async fn settle(
    s: &dyn Store,
    c: &Claimed,
    started_at: Timestamp,
    code: Option<u16>,
    next: Next,
) {
    try_settle(s, c, started_at, code, next)
        .await
        .expect("settle with a live lease");
}

pub(super) fn assert_lease_lost(r: Result<(), StoreError>, what: &str) {
    match r {
        Err(StoreError::LeaseLost) => {}
        other => panic!("{what}: expected LeaseLost, got {other:?}"),
    }
}

pub(super) fn delivery_filter(
    event: Option<&EventId>,
    endpoint: Option<&EndpointId>,
    status: Option<DeliveryStatus>,
) -> DeliveryFilter {
    DeliveryFilter {
        event: event.cloned(),
        endpoint: endpoint.cloned(),
        status,
        ..DeliveryFilter::default()
    }
}

pub(super) async fn deliveries_of(
    s: &dyn Store,
    account: &AccountId,
    f: &DeliveryFilter,
) -> Vec<Delivery> {
    let page = s
        .list_deliveries(account, f, &PageRequest::first(1000))
        .await
        .expect("list_deliveries");
    assert!(page.next.is_none());
    page.items
}

pub(super) async fn events_of(s: &dyn Store, account: &AccountId, f: &EventFilter) -> Vec<EventId> {
    let page = s
        .list_events(account, f, &PageRequest::first(1000))
        .await
        .expect("list_events");
    assert!(page.next.is_none());
    page.items.into_iter().map(|e| e.id).collect()
}

pub(super) fn set<T: Ord + Clone>(items: &[T]) -> BTreeSet<T> {
    items.iter().cloned().collect()
}

/// Enqueues each event to `target` at `now` from a task of its own, all at once (spawned in the
/// given order); returns each event's id with its receipt.
pub(super) async fn enqueue_concurrently(
    store: &Arc<dyn Store>,
    events: Vec<Event>,
    target: &EndpointId,
    now: Timestamp,
) -> Vec<(EventId, Receipt)> {
    let jobs = events.into_iter().map(|ev| (ev, target.clone())).collect();
    try_enqueue_concurrently(store, jobs, now)
        .await
        .into_iter()
        .map(|(id, r)| (id, r.expect("concurrent enqueue")))
        .collect()
}

/// Enqueues each event to its target at `now` from a task of its own, all at once (spawned in
/// the given order); returns each event's id with what the store answered.
pub(super) async fn try_enqueue_concurrently(
    store: &Arc<dyn Store>,
    jobs: Vec<(Event, EndpointId)>,
    now: Timestamp,
) -> Vec<(EventId, Result<Receipt, StoreError>)> {
    let mut tasks = JoinSet::new();
    for (ev, target) in jobs {
        let store = store.clone();
        tasks.spawn(async move {
            let r = store.enqueue(&ev, &[target], now).await;
            (ev.id, r)
        });
    }
    let mut results = Vec::new();
    while let Some(r) = tasks.join_next().await {
        results.push(r.expect("enqueue task"));
    }
    results
}
