//! The store conformance suite: the contract of [`Store`], as tests every backend runs.
//!
//! Each case is a plain `pub async fn case(store: Arc<dyn Store>)` that gets a **fresh, isolated**
//! store, drives it with explicit [`Timestamp`]s (never the wall clock, never sleeping) and panics
//! when the store breaks the contract. [`store_conformance!`](crate::store_conformance) turns every
//! case into its own test, so one failure cannot hide the others:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use hookline_core::store::Store;
//! # async fn connect_fresh_store() -> Arc<dyn Store> { unimplemented!() }
//! mod conformance {
//!     use super::*;
//!
//!     async fn fresh() -> Arc<dyn Store> {
//!         connect_fresh_store().await // a new database, schema or key prefix per call
//!     }
//!
//!     hookline_core::store_conformance!(fresh);
//! }
//! # fn main() {}
//! ```
//!
//! A factory may also return `(Arc<dyn Store>, guard)`: the guard (a temporary directory, a
//! schema-dropping handle, …) lives until the case has finished. See [`Fixture`].
//!
//! The generated tests are plain `#[test]` functions that run the case on a two-worker
//! multi-threaded tokio runtime (see [`run`]), so the calling crate needs no tokio macros and the
//! concurrency cases really race.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::task::JoinSet;

use crate::id::{AccountId, AttemptId, DeliveryId, EndpointId, EventId, EventTypeName, SiteId};
use crate::model::{
    Account, ApiKey, Attempt, Cursor, Delivery, DeliveryFilter, DeliveryStatus, Endpoint,
    EndpointSecret, Event, EventFilter, EventType, PageRequest, Role, Site, Trigger,
};
use crate::signing::Secret;
use crate::store::{Claimed, Next, Receipt, Store, StoreError};
use crate::time::Timestamp;

/// What a conformance factory returns: the store, plus whatever must live until the case ends.
pub trait Fixture: Send + 'static {
    /// The store under test.
    fn store(&self) -> Arc<dyn Store>;
}

impl Fixture for Arc<dyn Store> {
    fn store(&self) -> Arc<dyn Store> {
        self.clone()
    }
}

impl<G: Send + 'static> Fixture for (Arc<dyn Store>, G) {
    fn store(&self) -> Arc<dyn Store> {
        self.0.clone()
    }
}

/// How long one case may run before it fails as hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one case against a store made by `factory`, on a fresh two-worker tokio runtime.
///
/// Used by [`store_conformance!`](crate::store_conformance); call it directly to run a single case.
pub fn run<F, Fut, X, C, CFut>(factory: F, case: C)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = X>,
    X: Fixture,
    C: FnOnce(Arc<dyn Store>) -> CFut,
    CFut: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building a tokio runtime for the conformance case");
    rt.block_on(async move {
        let fixture = factory().await;
        if tokio::time::timeout(CASE_TIMEOUT, case(fixture.store()))
            .await
            .is_err()
        {
            panic!("the conformance case did not finish within {CASE_TIMEOUT:?}");
        }
        drop(fixture);
    });
}

/// Generates one `#[test]` per conformance case, each with a fresh store from `$factory`.
///
/// `$factory` is an expression callable with no arguments that returns a future of a
/// [`Fixture`](crate::testkit::conformance::Fixture): usually the path of an
/// `async fn() -> Arc<dyn Store>` (or `-> (Arc<dyn Store>, Guard)`), or an `|| async { … }`
/// closure. Invoke the macro inside its own module; the tests are named after the cases.
#[macro_export]
macro_rules! store_conformance {
    ($factory:expr $(,)?) => {
        $crate::store_conformance!(@cases $factory;
            enqueue_is_idempotent_per_event_id,
            idempotency_key_returns_original_event,
            enqueue_writes_event_and_deliveries_atomically,
            claim_returns_only_due_in_due_order,
            claim_skips_disabled_endpoints,
            concurrent_claims_are_disjoint,
            expired_lease_is_reclaimable,
            settle_with_stale_lease_is_lease_lost,
            retry_at_reschedules_and_counts_attempt,
            exhausted_is_terminal,
            subscribers_merge_account_and_site_scope,
            attempt_history_is_ordered,
            payload_bytes_round_trip,
            account_crud_and_conflicts,
            site_crud_is_scoped_to_account,
            event_type_crud_and_conflicts,
            api_keys_are_found_by_hash,
            delete_account_cascades,
            endpoint_crud_round_trips_all_fields,
            endpoints_are_tenant_isolated,
            remove_endpoint_cancels_pending_deliveries,
            list_events_filters_are_exact,
            cursor_pagination_returns_every_row_once,
            list_deliveries_filter_by_event_endpoint_status,
            retry_delivery_makes_failed_pending_with_manual_trigger,
            recover_failed_requeues_since,
            next_due_reports_earliest,
            ordered_endpoint_claims_only_the_head_of_each_queue_id,
            claim_due_except_skips_the_given_endpoints,
            defer_gives_a_claim_back_without_an_attempt,
            purge_deletes_old_events_with_their_deliveries_and_attempts,
            max_concurrency_bounds_live_leases,
            concurrent_claims_respect_max_concurrency,
            rate_limit_reserves_spaced_send_times,
            failure_clock_is_kept_by_the_store,
            hold_endpoint_makes_its_backlog_wait,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testkit::conformance::run($factory, $crate::testkit::conformance::$case);
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------------
// Fixtures and helpers
// ---------------------------------------------------------------------------------------------

/// An arbitrary base instant; every case counts from here.
const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);
/// The lease most cases claim with.
const LEASE: Duration = Duration::from_secs(30);

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0.as_millis() + ms)
}

fn account_id(s: &str) -> AccountId {
    AccountId::parse(s).expect("valid account id")
}

fn site_id(s: &str) -> SiteId {
    SiteId::parse(s).expect("valid site id")
}

fn kind(s: &str) -> EventTypeName {
    EventTypeName::parse(s).expect("valid event type")
}

fn raw(s: &str) -> Box<RawValue> {
    RawValue::from_string(s.to_owned()).expect("valid JSON")
}

async fn new_account(s: &dyn Store, id: &str) -> AccountId {
    let a = Account {
        id: account_id(id),
        name: format!("Account {id}"),
        created_at: T0,
        updated_at: T0,
    };
    s.create_account(&a).await.expect("create_account");
    a.id
}

fn endpoint(account: &AccountId, types: &[&str], sites: &[&str]) -> Endpoint {
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

async fn new_endpoint(
    s: &dyn Store,
    account: &AccountId,
    types: &[&str],
    sites: &[&str],
) -> Endpoint {
    let ep = endpoint(account, types, sites);
    s.create_endpoint(&ep).await.expect("create_endpoint");
    ep
}

fn event(account: &AccountId, kind_name: &str, site: Option<&str>, fired: Timestamp) -> Event {
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

async fn enqueue(s: &dyn Store, ev: &Event, targets: &[&Endpoint], now: Timestamp) -> Receipt {
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
async fn enqueue_new(
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

async fn claim(s: &dyn Store, now: Timestamp, max: usize) -> Vec<Claimed> {
    s.claim_due(now, max, LEASE).await.expect("claim_due")
}

async fn claim_one(s: &dyn Store, now: Timestamp) -> Claimed {
    let mut got = claim(s, now, 1).await;
    assert_eq!(got.len(), 1, "expected exactly one due delivery at {now}");
    got.remove(0)
}

fn ids(claims: &[Claimed]) -> Vec<DeliveryId> {
    claims.iter().map(|c| c.delivery.id.clone()).collect()
}

async fn delivery(s: &dyn Store, account: &AccountId, id: &DeliveryId) -> Delivery {
    s.delivery(account, id)
        .await
        .expect("delivery")
        .unwrap_or_else(|| panic!("delivery {id} should exist"))
}

fn attempt_for(c: &Claimed, started_at: Timestamp, status_code: Option<u16>) -> Attempt {
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

async fn settle(s: &dyn Store, c: &Claimed, started_at: Timestamp, code: Option<u16>, next: Next) {
    s.settle(&c.lease, &attempt_for(c, started_at, code), next)
        .await
        .expect("settle with a live lease");
}

fn assert_lease_lost(r: Result<(), StoreError>, what: &str) {
    match r {
        Err(StoreError::LeaseLost) => {}
        other => panic!("{what}: expected LeaseLost, got {other:?}"),
    }
}

fn delivery_filter(
    event: Option<&EventId>,
    endpoint: Option<&EndpointId>,
    status: Option<DeliveryStatus>,
) -> DeliveryFilter {
    DeliveryFilter {
        event: event.cloned(),
        endpoint: endpoint.cloned(),
        status,
    }
}

async fn deliveries_of(s: &dyn Store, account: &AccountId, f: &DeliveryFilter) -> Vec<Delivery> {
    let page = s
        .list_deliveries(account, f, &PageRequest::first(1000))
        .await
        .expect("list_deliveries");
    assert!(page.next.is_none());
    page.items
}

async fn events_of(s: &dyn Store, account: &AccountId, f: &EventFilter) -> Vec<EventId> {
    let page = s
        .list_events(account, f, &PageRequest::first(1000))
        .await
        .expect("list_events");
    assert!(page.next.is_none());
    page.items.into_iter().map(|e| e.id).collect()
}

fn set<T: Ord + Clone>(items: &[T]) -> BTreeSet<T> {
    items.iter().cloned().collect()
}

/// Enqueues each event to `target` at `now` from a task of its own, all at once (spawned in the
/// given order); returns each event's id with its receipt.
async fn enqueue_concurrently(
    store: &Arc<dyn Store>,
    events: Vec<Event>,
    target: &EndpointId,
    now: Timestamp,
) -> Vec<(EventId, Receipt)> {
    let mut tasks = JoinSet::new();
    for ev in events {
        let store = store.clone();
        let target = target.clone();
        tasks.spawn(async move {
            let r = store
                .enqueue(&ev, &[target], now)
                .await
                .expect("concurrent enqueue");
            (ev.id, r)
        });
    }
    let mut results = Vec::new();
    while let Some(r) = tasks.join_next().await {
        results.push(r.expect("enqueue task"));
    }
    results
}

// ---------------------------------------------------------------------------------------------
// Enqueue
// ---------------------------------------------------------------------------------------------

/// Enqueueing an event id twice writes nothing the second time and returns the original receipt.
pub async fn enqueue_is_idempotent_per_event_id(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let e1 = new_endpoint(s, &a, &[], &[]).await;
    let e2 = new_endpoint(s, &a, &[], &[]).await;
    let ev = event(&a, "rx.completed", None, at(0));
    let first = enqueue(s, &ev, &[&e1, &e2], at(0)).await;
    assert_eq!(first.event_id, ev.id);
    assert_eq!(set(&first.deliveries).len(), 2, "delivery ids are distinct");

    // Same id, other content, other targets, later: nothing is written.
    let mut again = ev.clone();
    again.data = raw(r#"{"changed":true}"#);
    let second = s
        .enqueue(&again, std::slice::from_ref(&e1.id), at(5_000))
        .await
        .expect("re-enqueue");
    assert!(second.duplicate, "a repeated event id is a duplicate");
    assert_eq!(second.event_id, ev.id);
    assert_eq!(set(&second.deliveries), set(&first.deliveries));

    assert_eq!(s.event(&a, &ev.id).await.expect("event"), Some(ev.clone()));
    let ds = deliveries_of(s, &a, &delivery_filter(Some(&ev.id), None, None)).await;
    assert_eq!(ds.len(), 2, "no delivery is added by a duplicate");
    for d in ds {
        assert_eq!(d.created_at, at(0));
        assert_eq!(d.next_attempt_at, Some(at(0)));
    }

    // Concurrent enqueues of one new event id (beside other events, one of them first, so that
    // stores that share statements between concurrent writes see the racing ones together):
    // exactly one writes it.
    let racing = event(&a, "rx.completed", None, at(100));
    let events = (0..12)
        .map(|i| {
            if i % 3 == 0 {
                event(&a, "rx.completed", None, at(100))
            } else {
                racing.clone()
            }
        })
        .collect();
    let results = enqueue_concurrently(&store, events, &e1.id, at(100)).await;
    let same: Vec<&Receipt> = results
        .iter()
        .filter(|(id, _)| *id == racing.id)
        .map(|(_, r)| r)
        .collect();
    assert_eq!(same.len(), 8);
    assert_eq!(same.iter().filter(|r| !r.duplicate).count(), 1, "one wins");
    for r in &same {
        assert_eq!(r.event_id, racing.id);
        assert_eq!(
            r.deliveries, same[0].deliveries,
            "every caller gets one receipt"
        );
    }
    for (id, r) in results.iter().filter(|(id, _)| *id != racing.id) {
        assert!(!r.duplicate, "an unrelated event is new");
        assert_eq!(&r.event_id, id);
    }
    let ds = deliveries_of(s, &a, &delivery_filter(Some(&racing.id), None, None)).await;
    assert_eq!(ds.len(), 1, "one delivery for the racing event");
}

/// The same idempotency key in the same account returns the original event, even under races.
pub async fn idempotency_key_returns_original_event(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let ep_b = new_endpoint(s, &b, &[], &[]).await;

    let mut ev1 = event(&a, "rx.completed", None, at(0));
    ev1.idempotency_key = Some("order-42".into());
    let r1 = enqueue(s, &ev1, &[&ep], at(0)).await;

    let mut ev2 = event(&a, "rx.failed", None, at(10));
    ev2.idempotency_key = Some("order-42".into());
    let r2 = s
        .enqueue(&ev2, std::slice::from_ref(&ep.id), at(10))
        .await
        .expect("enqueue with a used key");
    assert!(r2.duplicate, "same account and key is a duplicate");
    assert_eq!(r2.event_id, ev1.id, "the original event id is returned");
    assert_eq!(set(&r2.deliveries), set(&r1.deliveries));
    assert_eq!(s.event(&a, &ev2.id).await.expect("event"), None);
    assert_eq!(
        s.event(&a, &ev1.id).await.expect("event"),
        Some(ev1.clone())
    );

    // The key is per account, and another key is another event.
    let mut ev3 = event(&b, "rx.completed", None, at(20));
    ev3.idempotency_key = Some("order-42".into());
    let r3 = enqueue(s, &ev3, &[&ep_b], at(20)).await;
    assert_eq!(r3.event_id, ev3.id);
    let mut ev4 = event(&a, "rx.completed", None, at(30));
    ev4.idempotency_key = Some("order-43".into());
    let r4 = enqueue(s, &ev4, &[&ep], at(30)).await;
    assert_eq!(r4.event_id, ev4.id);

    // Concurrent enqueues of different events with one key: exactly one wins.
    let events = (0..8)
        .map(|_| {
            let mut ev = event(&a, "rx.completed", None, at(100));
            ev.idempotency_key = Some("race".into());
            ev
        })
        .collect();
    let results = enqueue_concurrently(&store, events, &ep.id, at(100)).await;
    let winners: Vec<&EventId> = results
        .iter()
        .filter(|(_, r)| !r.duplicate)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one concurrent enqueue wins");
    let winner = winners[0].clone();
    for (id, r) in &results {
        assert_eq!(r.event_id, winner, "every caller gets the winner's id");
        assert_eq!(r.deliveries.len(), 1);
        if *id != winner {
            assert_eq!(s.event(&a, id).await.expect("event"), None);
        }
    }
    let ds = deliveries_of(s, &a, &delivery_filter(Some(&winner), None, None)).await;
    assert_eq!(ds.len(), 1);
    let mut with_race_key = 0;
    for id in events_of(s, &a, &EventFilter::default()).await {
        let ev = s.event(&a, &id).await.expect("event").expect("listed");
        if ev.idempotency_key.as_deref() == Some("race") {
            with_race_key += 1;
        }
    }
    assert_eq!(with_race_key, 1, "only one event with the raced key exists");
}

/// After `Ok` the event and all its deliveries are readable; after an error nothing is.
pub async fn enqueue_writes_event_and_deliveries_atomically(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let eps = [
        new_endpoint(s, &a, &[], &[]).await,
        new_endpoint(s, &a, &[], &[]).await,
        new_endpoint(s, &a, &[], &[]).await,
    ];
    let mut ev = event(&a, "rx.completed", Some("store-1"), at(-50));
    ev.queue_id = Some("q_8842".into());
    let r = enqueue(s, &ev, &[&eps[0], &eps[1], &eps[2]], at(0)).await;
    assert_eq!(r.event_id, ev.id);
    assert_eq!(s.event(&a, &ev.id).await.expect("event"), Some(ev.clone()));
    let mut seen_endpoints = BTreeSet::new();
    for id in &r.deliveries {
        let d = delivery(s, &a, id).await;
        assert_eq!(&d.id, id);
        assert_eq!(d.account, a);
        assert_eq!(d.event_id, ev.id);
        assert_eq!(d.status, DeliveryStatus::Pending);
        assert_eq!(d.attempts, 0);
        assert_eq!(d.next_attempt_at, Some(at(0)), "due at enqueue time");
        assert_eq!(d.last_attempt_at, None);
        assert_eq!(d.created_at, at(0));
        seen_endpoints.insert(d.endpoint_id);
    }
    let want: BTreeSet<EndpointId> = eps.iter().map(|e| e.id.clone()).collect();
    assert_eq!(seen_endpoints, want, "one delivery per target");
    let listed = deliveries_of(s, &a, &delivery_filter(Some(&ev.id), None, None)).await;
    assert_eq!(listed.len(), 3);

    // No targets: the event is still stored.
    let lonely = event(&a, "rx.completed", None, at(1));
    let r = enqueue(s, &lonely, &[], at(1)).await;
    assert!(r.deliveries.is_empty());
    assert!(s.event(&a, &lonely.id).await.expect("event").is_some());

    // A target that does not exist: either all of it is written, or none of it.
    let ghost = EndpointId::generate();
    let odd = event(&a, "rx.completed", None, at(2));
    match s
        .enqueue(&odd, &[eps[0].id.clone(), ghost.clone()], at(2))
        .await
    {
        Ok(r) => {
            assert!(!r.duplicate);
            assert_eq!(r.deliveries.len(), 2);
            assert_eq!(
                s.event(&a, &odd.id).await.expect("event"),
                Some(odd.clone())
            );
            for id in &r.deliveries {
                delivery(s, &a, id).await;
            }
        }
        Err(_) => {
            assert_eq!(s.event(&a, &odd.id).await.expect("event"), None);
            let left = deliveries_of(s, &a, &delivery_filter(Some(&odd.id), None, None)).await;
            assert!(left.is_empty(), "a failed enqueue leaves no delivery");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Claims and leases
// ---------------------------------------------------------------------------------------------

/// Claims return only deliveries due at `now`, oldest due first, at most `max`.
pub async fn claim_returns_only_due_in_due_order(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    // Created in the reverse of their due order, so id or insertion order would be wrong.
    let (late_ev, late) = enqueue_new(s, &a, &[&ep], at(30_000)).await;
    let (mid_ev, mid) = enqueue_new(s, &a, &[&ep], at(20_000)).await;
    let (early_ev, early) = enqueue_new(s, &a, &[&ep], at(10_000)).await;

    assert!(
        claim(s, at(5_000), 10).await.is_empty(),
        "nothing is due yet"
    );
    let got = claim(s, at(25_000), 10).await;
    assert_eq!(ids(&got), vec![early[0].clone(), mid[0].clone()]);
    for (c, ev) in got.iter().zip([&early_ev, &mid_ev]) {
        assert_eq!(&c.event, ev, "the claim carries its event");
        assert_eq!(c.endpoint, ep, "the claim carries its endpoint");
        assert_eq!(c.delivery.event_id, ev.id);
        assert_eq!(c.delivery.status, DeliveryStatus::Pending);
        assert_eq!(c.delivery.attempts, 0);
        assert_eq!(c.attempt_number, 1);
        assert_eq!(c.trigger, Trigger::Scheduled);
        assert_eq!(c.lease.delivery, c.delivery.id);
    }
    assert_ne!(got[0].lease.lease_id, got[1].lease.lease_id);

    let got = claim(s, at(40_000), 10).await;
    assert_eq!(ids(&got), late, "leased deliveries are not claimed again");
    assert_eq!(got[0].event, late_ev);

    // `max` is respected and the oldest due go first.
    let (_, z) = enqueue_new(s, &a, &[&ep], at(52_000)).await;
    let (_, y) = enqueue_new(s, &a, &[&ep], at(51_000)).await;
    let (_, x) = enqueue_new(s, &a, &[&ep], at(50_000)).await;
    let got = claim(s, at(53_000), 2).await;
    assert_eq!(ids(&got), vec![x[0].clone(), y[0].clone()]);
    let got = claim(s, at(53_000), 5).await;
    assert_eq!(ids(&got), z);
    assert!(claim(s, at(53_000), 5).await.is_empty());
}

/// Deliveries of disabled endpoints are not claimed until the endpoint is enabled again.
pub async fn claim_skips_disabled_endpoints(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let mut on = new_endpoint(s, &a, &[], &[]).await;
    let mut off = endpoint(&a, &[], &[]);
    off.enabled = false;
    off.disabled_reason = Some("every attempt failed for 5 days".into());
    s.create_endpoint(&off).await.expect("create_endpoint");

    let (_, d) = enqueue_new(s, &a, &[&on, &off], at(0)).await;
    let got = claim(s, at(0), 10).await;
    assert_eq!(ids(&got), vec![d[0].clone()], "only the enabled endpoint's");
    assert!(claim(s, at(1), 10).await.is_empty());

    off.enabled = true;
    off.disabled_reason = None;
    off.updated_at = at(2);
    s.update_endpoint(&off).await.expect("update_endpoint");
    let got = claim(s, at(3), 10).await;
    assert_eq!(ids(&got), vec![d[1].clone()], "claimable once enabled");
    assert!(got[0].endpoint.enabled);

    // Disabling hides deliveries that are already due.
    let (_, d2) = enqueue_new(s, &a, &[&on], at(4)).await;
    on.enabled = false;
    on.disabled_reason = Some("paused".into());
    s.update_endpoint(&on).await.expect("update_endpoint");
    assert!(claim(s, at(5), 10).await.is_empty());
    let still = delivery(s, &a, &d2[0]).await;
    assert_eq!(still.status, DeliveryStatus::Pending);
    assert_eq!(still.attempts, 0);
}

/// Concurrent claims never hand out the same delivery twice while leases are live.
pub async fn concurrent_claims_are_disjoint(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let mut eps = Vec::new();
    for _ in 0..4 {
        eps.push(new_endpoint(s, &a, &[], &[]).await);
    }
    let targets: Vec<&Endpoint> = eps.iter().collect();
    let mut all = BTreeSet::new();
    for i in 0..10 {
        let (_, ds) = enqueue_new(s, &a, &targets, at(i)).await;
        all.extend(ds);
    }
    assert_eq!(all.len(), 40);

    let mut tasks = JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            let mut mine = Vec::new();
            // Bounded: a store that hands out leased rows again would loop forever.
            for _ in 0..50 {
                let got = store
                    .claim_due(at(1_000), 3, LEASE)
                    .await
                    .expect("claim_due");
                if got.is_empty() {
                    break;
                }
                assert!(got.len() <= 3, "claim_due returned more than max");
                mine.extend(got.into_iter().map(|c| c.delivery.id));
                tokio::task::yield_now().await;
            }
            mine
        });
    }
    let mut claimed = Vec::new();
    while let Some(r) = tasks.join_next().await {
        claimed.extend(r.expect("claim task"));
    }
    let unique: BTreeSet<DeliveryId> = claimed.iter().cloned().collect();
    assert_eq!(unique.len(), claimed.len(), "a delivery was claimed twice");
    assert_eq!(unique, all, "every due delivery was claimed");
    assert!(
        claim(s, at(1_000).add(LEASE).sub(Duration::from_millis(1)), 100)
            .await
            .is_empty()
    );
}

/// A lease that ended makes the delivery due again, with a new lease and the same attempt number.
pub async fn expired_lease_is_reclaimable(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let (_, d) = enqueue_new(s, &a, &[&ep], at(0)).await;
    let first = claim_one(s, at(0)).await;
    assert_eq!(first.delivery.id, d[0]);
    let lease_end = at(0).add(LEASE);
    assert!(
        claim(s, lease_end.sub(Duration::from_millis(1)), 10)
            .await
            .is_empty(),
        "the lease is live until its end"
    );
    let second = claim_one(s, lease_end).await;
    assert_eq!(second.delivery.id, d[0]);
    assert_ne!(second.lease.lease_id, first.lease.lease_id, "a new lease");
    assert_eq!(
        second.attempt_number, 1,
        "an expired lease is not an attempt"
    );
    assert_eq!(second.trigger, Trigger::Scheduled);
    assert_eq!(second.delivery.attempts, 0);
}

/// A settle with a lease that was re-claimed (or already used) is `LeaseLost` and changes nothing.
pub async fn settle_with_stale_lease_is_lease_lost(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let (_, d) = enqueue_new(s, &a, &[&ep], at(0)).await;
    let old = claim_one(s, at(0)).await;
    let new = claim_one(s, at(0).add(LEASE)).await;

    assert_lease_lost(
        s.settle(
            &old.lease,
            &attempt_for(&old, at(1), Some(200)),
            Next::Delivered,
        )
        .await,
        "settle with a re-claimed lease",
    );
    let now = delivery(s, &a, &d[0]).await;
    assert_eq!(now.status, DeliveryStatus::Pending);
    assert_eq!(now.attempts, 0);
    assert!(s.attempts(&a, &d[0]).await.expect("attempts").is_empty());

    let mut forged = new.lease.clone();
    forged.lease_id.push_str("-forged");
    assert_lease_lost(
        s.settle(
            &forged,
            &attempt_for(&new, at(2), Some(200)),
            Next::Delivered,
        )
        .await,
        "settle with a made-up lease id",
    );

    settle(s, &new, at(0).add(LEASE), Some(204), Next::Delivered).await;
    let done = delivery(s, &a, &d[0]).await;
    assert_eq!(done.status, DeliveryStatus::Succeeded);
    assert_eq!(done.attempts, 1);

    // Late reports never undo the success.
    assert_lease_lost(
        s.settle(
            &old.lease,
            &attempt_for(&old, at(3), None),
            Next::RetryAt(at(60_000)),
        )
        .await,
        "a late report after success",
    );
    assert_lease_lost(
        s.settle(&new.lease, &attempt_for(&new, at(4), None), Next::Exhausted)
            .await,
        "a second settle with a used lease",
    );
    let done = delivery(s, &a, &d[0]).await;
    assert_eq!(done.status, DeliveryStatus::Succeeded);
    assert_eq!(done.attempts, 1);
    assert_eq!(done.next_attempt_at, None);
    assert_eq!(s.attempts(&a, &d[0]).await.expect("attempts").len(), 1);
    assert!(claim(s, at(10_000_000), 10).await.is_empty());
}

/// `RetryAt` records the attempt and makes the delivery due exactly then, one attempt further.
pub async fn retry_at_reschedules_and_counts_attempt(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let (_, d) = enqueue_new(s, &a, &[&ep], at(0)).await;
    let c = claim_one(s, at(0)).await;
    settle(s, &c, at(100), Some(503), Next::RetryAt(at(60_000))).await;

    let now = delivery(s, &a, &d[0]).await;
    assert_eq!(now.status, DeliveryStatus::Pending);
    assert_eq!(now.attempts, 1);
    assert_eq!(now.next_attempt_at, Some(at(60_000)));
    assert_eq!(now.last_attempt_at, Some(at(100)));
    assert_eq!(s.next_due().await.expect("next_due"), Some(at(60_000)));

    assert!(claim(s, at(59_999), 10).await.is_empty(), "not due before");
    // Claims go by due time, not creation time: a newer delivery due sooner comes first.
    let (_, newer) = enqueue_new(s, &a, &[&ep], at(59_500)).await;
    let got = claim(s, at(60_000), 10).await;
    assert_eq!(ids(&got), vec![newer[0].clone(), d[0].clone()]);
    let c2 = got.into_iter().nth(1).expect("two claims");
    assert_eq!(c2.delivery.id, d[0]);
    assert_eq!(c2.attempt_number, 2);
    assert_eq!(c2.delivery.attempts, 1);
    assert_eq!(c2.trigger, Trigger::Scheduled);
    settle(s, &c2, at(60_010), None, Next::RetryAt(at(120_000))).await;
    let now = delivery(s, &a, &d[0]).await;
    assert_eq!(now.attempts, 2);
    assert_eq!(now.next_attempt_at, Some(at(120_000)));
    assert_eq!(now.last_attempt_at, Some(at(60_010)));
}

/// `Exhausted` fails the delivery for good: never claimed again, never due.
pub async fn exhausted_is_terminal(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let (_, d) = enqueue_new(s, &a, &[&ep], at(0)).await;
    let c = claim_one(s, at(0)).await;
    settle(s, &c, at(5), Some(500), Next::Exhausted).await;
    let now = delivery(s, &a, &d[0]).await;
    assert_eq!(now.status, DeliveryStatus::Failed);
    assert_eq!(now.attempts, 1);
    assert_eq!(now.next_attempt_at, None);
    assert_eq!(now.last_attempt_at, Some(at(5)));
    assert!(claim(s, at(100_000_000), 10).await.is_empty());
    assert_eq!(s.next_due().await.expect("next_due"), None);
    let failed = deliveries_of(
        s,
        &a,
        &delivery_filter(None, None, Some(DeliveryStatus::Failed)),
    )
    .await;
    assert_eq!(failed.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Subscribers and attempts
// ---------------------------------------------------------------------------------------------

/// Subscribers are the account's enabled shared endpoints plus those filtered to the site.
pub async fn subscribers_merge_account_and_site_scope(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let shared_all = new_endpoint(s, &a, &[], &[]).await;
    let shared_done = new_endpoint(s, &a, &["rx.completed"], &[]).await;
    let site1_all = new_endpoint(s, &a, &[], &["store-1"]).await;
    let site1_failed = new_endpoint(s, &a, &["rx.failed"], &["store-1"]).await;
    let site2_all = new_endpoint(s, &a, &[], &["store-2", "store-3"]).await;
    let mut disabled = endpoint(&a, &[], &[]);
    disabled.enabled = false;
    s.create_endpoint(&disabled).await.expect("create_endpoint");
    let other = new_endpoint(s, &b, &[], &[]).await;
    let other_site1 = new_endpoint(s, &b, &[], &["store-1"]).await;

    let subs = |acc: AccountId, site: Option<&'static str>, k: &'static str| {
        let store = store.clone();
        async move {
            let site = site.map(site_id);
            let got = store
                .subscribers(&acc, site.as_ref(), &kind(k))
                .await
                .expect("subscribers");
            for e in &got {
                assert_eq!(e.account, acc, "another account's endpoint");
                assert!(e.enabled, "a disabled endpoint");
            }
            got.into_iter().map(|e| e.id).collect::<BTreeSet<_>>()
        }
    };
    let want = |eps: &[&Endpoint]| eps.iter().map(|e| e.id.clone()).collect::<BTreeSet<_>>();

    assert_eq!(
        subs(a.clone(), Some("store-1"), "rx.completed").await,
        want(&[&shared_all, &shared_done, &site1_all])
    );
    assert_eq!(
        subs(a.clone(), Some("store-1"), "rx.failed").await,
        want(&[&shared_all, &site1_all, &site1_failed])
    );
    assert_eq!(
        subs(a.clone(), Some("store-3"), "rx.failed").await,
        want(&[&shared_all, &site2_all])
    );
    assert_eq!(
        subs(a.clone(), None, "rx.completed").await,
        want(&[&shared_all, &shared_done]),
        "site endpoints skip events without a site"
    );
    assert_eq!(
        subs(a.clone(), Some("store-9"), "rx.excepted").await,
        want(&[&shared_all])
    );
    assert_eq!(
        subs(b.clone(), Some("store-1"), "rx.completed").await,
        want(&[&other, &other_site1])
    );
    assert!(
        subs(account_id("nobody"), Some("store-1"), "rx.completed")
            .await
            .is_empty()
    );
}

/// Attempts come back oldest first, exactly as recorded, and only to their account.
pub async fn attempt_history_is_ordered(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let (_, d) = enqueue_new(s, &a, &[&ep], at(0)).await;

    let mut recorded = Vec::new();
    let c1 = claim_one(s, at(0)).await;
    let mut a1 = attempt_for(&c1, at(1), None);
    a1.error = Some("tls handshake failed: certificate expired".into());
    a1.duration_ms = 15_000;
    s.settle(&c1.lease, &a1, Next::RetryAt(at(5_000)))
        .await
        .expect("settle");
    recorded.push(a1);

    let c2 = claim_one(s, at(5_000)).await;
    let mut a2 = attempt_for(&c2, at(5_001), Some(500));
    a2.response_body = "{\"error\": \"überlastet ✗\"}\n\t".into();
    s.settle(&c2.lease, &a2, Next::RetryAt(at(60_000)))
        .await
        .expect("settle");
    recorded.push(a2);

    let c3 = claim_one(s, at(60_000)).await;
    let mut a3 = attempt_for(&c3, at(60_002), Some(200));
    a3.duration_ms = 0;
    a3.response_body = String::new();
    s.settle(&c3.lease, &a3, Next::Delivered)
        .await
        .expect("settle");
    recorded.push(a3);

    let got = s.attempts(&a, &d[0]).await.expect("attempts");
    assert_eq!(got, recorded, "attempts round-trip, oldest first");
    assert_eq!(
        got.iter().map(|x| x.number).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(
        s.attempts(&b, &d[0]).await.expect("attempts").is_empty(),
        "another account sees no attempts"
    );
    assert!(
        s.attempts(&a, &DeliveryId::generate())
            .await
            .expect("attempts")
            .is_empty()
    );
}

/// An event's data comes back byte for byte: whitespace, key order, escapes, big numbers.
pub async fn payload_bytes_round_trip(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let text = "{ \"z\" : 1,\n\t\"a\":[1, 2 ,3],  \"ünï\": \"日本語 😀 \\u00e9 \\\"q\\\"\",\r\n \"big\": 123456789012345678901234567890, \"f\": 1.50e3, \"null\":null }";
    let mut ev = event(&a, "rx.completed", Some("store-1"), at(0));
    ev.data = raw(text);
    ev.queue_id = Some("q_ünï 1".into());
    ev.idempotency_key = Some("idem ✓".into());
    enqueue(s, &ev, &[&ep], at(0)).await;

    let got = s.event(&a, &ev.id).await.expect("event").expect("stored");
    assert_eq!(got.data.get(), text, "event() keeps the bytes");
    assert_eq!(got, ev);
    let listed = s
        .list_events(&a, &EventFilter::default(), &PageRequest::first(10))
        .await
        .expect("list_events");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        listed.items[0].data.get(),
        text,
        "list_events keeps the bytes"
    );
    let c = claim_one(s, at(0)).await;
    assert_eq!(c.event.data.get(), text, "claim_due keeps the bytes");
    assert_eq!(c.event, ev);
}

// ---------------------------------------------------------------------------------------------
// Catalog
// ---------------------------------------------------------------------------------------------

/// Accounts: create, `Conflict` on a taken id, update (`NotFound` when missing), list, delete.
pub async fn account_crud_and_conflicts(store: Arc<dyn Store>) {
    let s = &*store;
    let mut acme = Account {
        id: account_id("acme"),
        name: "Acme Pharmacies".into(),
        created_at: at(0),
        updated_at: at(0),
    };
    s.create_account(&acme).await.expect("create_account");
    assert_eq!(
        s.account(&acme.id).await.expect("account"),
        Some(acme.clone())
    );
    let mut dup = acme.clone();
    dup.name = "Impostor".into();
    assert!(matches!(
        s.create_account(&dup).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.account(&acme.id).await.expect("account"),
        Some(acme.clone())
    );

    acme.name = "Acme Pharmacy Banner".into();
    acme.updated_at = at(10);
    s.update_account(&acme).await.expect("update_account");
    assert_eq!(
        s.account(&acme.id).await.expect("account"),
        Some(acme.clone())
    );
    let ghost = Account {
        id: account_id("ghost"),
        name: "Ghost".into(),
        created_at: at(0),
        updated_at: at(0),
    };
    assert!(matches!(
        s.update_account(&ghost).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.account(&ghost.id).await.expect("account"), None);

    for (i, id) in ["b1", "b2", "b3"].iter().enumerate() {
        let t = at(100 * (i as i64 + 1));
        s.create_account(&Account {
            id: account_id(id),
            name: id.to_string(),
            created_at: t,
            updated_at: t,
        })
        .await
        .expect("create_account");
    }
    let page = s
        .list_accounts(&PageRequest::first(10))
        .await
        .expect("list_accounts");
    let names: Vec<&str> = page.items.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(names, vec!["b3", "b2", "b1", "acme"], "newest first");
    assert!(page.next.is_none());

    assert!(s.delete_account(&acme.id).await.expect("delete_account"));
    assert!(!s.delete_account(&acme.id).await.expect("delete_account"));
    assert_eq!(s.account(&acme.id).await.expect("account"), None);
    // The id is free again.
    s.create_account(&acme).await.expect("re-create_account");
}

/// Sites are keyed by account and id: the same id may exist in two accounts.
pub async fn site_crud_is_scoped_to_account(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let mut s1 = Site {
        account: a.clone(),
        id: site_id("store-1"),
        name: "Main Street".into(),
        created_at: at(0),
        updated_at: at(0),
    };
    s.create_site(&s1).await.expect("create_site");
    let b1 = Site {
        account: b.clone(),
        ..s1.clone()
    };
    s.create_site(&b1)
        .await
        .expect("the same site id in another account");
    assert!(matches!(
        s.create_site(&s1).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.site(&a, &s1.id).await.expect("site"), Some(s1.clone()));
    assert_eq!(s.site(&b, &s1.id).await.expect("site"), Some(b1.clone()));

    s1.name = "Main Street (renovated)".into();
    s1.updated_at = at(5);
    s.update_site(&s1).await.expect("update_site");
    assert_eq!(s.site(&a, &s1.id).await.expect("site"), Some(s1.clone()));
    assert_eq!(
        s.site(&b, &s1.id).await.expect("site"),
        Some(b1.clone()),
        "updating one account's site leaves the other's alone"
    );
    let missing = Site {
        id: site_id("store-404"),
        ..s1.clone()
    };
    assert!(matches!(
        s.update_site(&missing).await,
        Err(StoreError::NotFound(_))
    ));

    let s2 = Site {
        id: site_id("store-2"),
        created_at: at(100),
        updated_at: at(100),
        ..s1.clone()
    };
    s.create_site(&s2).await.expect("create_site");
    let page = s
        .list_sites(&a, &PageRequest::first(10))
        .await
        .expect("list_sites");
    assert_eq!(page.items, vec![s2.clone(), s1.clone()], "newest first");
    let page = s
        .list_sites(&b, &PageRequest::first(10))
        .await
        .expect("list_sites");
    assert_eq!(page.items, vec![b1.clone()]);

    assert!(s.delete_site(&a, &s1.id).await.expect("delete_site"));
    assert!(!s.delete_site(&a, &s1.id).await.expect("delete_site"));
    assert_eq!(s.site(&a, &s1.id).await.expect("site"), None);
    assert_eq!(s.site(&b, &s1.id).await.expect("site"), Some(b1));
}

/// Event types: create, `Conflict` on a taken name, update (`NotFound` when missing), list, delete.
pub async fn event_type_crud_and_conflicts(store: Arc<dyn Store>) {
    let s = &*store;
    let mut done = EventType {
        name: kind("rx.completed"),
        description: "The write succeeded.".into(),
        schema: Some(serde_json::json!({
            "type": "object",
            "required": ["patientId"],
            "properties": {"patientId": {"type": "string"}, "din": {"type": "string"}}
        })),
        archived: false,
        created_at: at(0),
        updated_at: at(0),
    };
    s.create_event_type(&done).await.expect("create_event_type");
    assert_eq!(
        s.event_type(&done.name).await.expect("event_type"),
        Some(done.clone())
    );
    assert!(matches!(
        s.create_event_type(&done).await,
        Err(StoreError::Conflict(_))
    ));

    done.archived = true;
    done.schema = None;
    done.description = "Retired.".into();
    done.updated_at = at(50);
    s.update_event_type(&done).await.expect("update_event_type");
    assert_eq!(
        s.event_type(&done.name).await.expect("event_type"),
        Some(done.clone())
    );
    let missing = EventType {
        name: kind("rx.nope"),
        ..done.clone()
    };
    assert!(matches!(
        s.update_event_type(&missing).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.event_type(&missing.name).await.expect("event_type"), None);

    let failed = EventType {
        name: kind("rx.failed"),
        description: "The write failed.".into(),
        schema: None,
        archived: false,
        created_at: at(10),
        updated_at: at(10),
    };
    s.create_event_type(&failed)
        .await
        .expect("create_event_type");
    let page = s
        .list_event_types(&PageRequest::first(10))
        .await
        .expect("list_event_types");
    assert_eq!(
        page.items,
        vec![failed.clone(), done.clone()],
        "newest first"
    );

    assert!(s.delete_event_type(&done.name).await.expect("delete"));
    assert!(!s.delete_event_type(&done.name).await.expect("delete"));
    assert_eq!(s.event_type(&done.name).await.expect("event_type"), None);
}

/// API keys are stored by hash (idempotently) and found by it; admin keys are reported.
pub async fn api_keys_are_found_by_hash(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    assert!(!s.has_admin_key().await.expect("has_admin_key"));
    let account_key = ApiKey {
        hash: "a".repeat(64),
        prefix: "hk_acc".into(),
        role: Role::Account(a.clone()),
        created_at: at(0),
    };
    s.put_api_key(&account_key).await.expect("put_api_key");
    assert!(
        !s.has_admin_key().await.expect("has_admin_key"),
        "an account key is not an admin key"
    );
    let admin_key = ApiKey {
        hash: "b".repeat(64),
        prefix: "hk_adm".into(),
        role: Role::Admin,
        created_at: at(1),
    };
    s.put_api_key(&admin_key).await.expect("put_api_key");
    s.put_api_key(&admin_key)
        .await
        .expect("put_api_key is idempotent on the hash");
    assert!(s.has_admin_key().await.expect("has_admin_key"));
    assert_eq!(
        s.api_key(&account_key.hash).await.expect("api_key"),
        Some(account_key.clone())
    );
    assert_eq!(
        s.api_key(&admin_key.hash).await.expect("api_key"),
        Some(admin_key)
    );
    assert_eq!(s.api_key(&"c".repeat(64)).await.expect("api_key"), None);
    assert_eq!(s.api_key("").await.expect("api_key"), None);
}

/// Deleting an account removes everything it owns and nothing of other accounts.
pub async fn delete_account_cascades(store: Arc<dyn Store>) {
    let s = &*store;
    let mut owned = Vec::new();
    for name in ["acme", "globex"] {
        let acc = new_account(s, name).await;
        let site = Site {
            account: acc.clone(),
            id: site_id("store-1"),
            name: "Main".into(),
            created_at: at(0),
            updated_at: at(0),
        };
        s.create_site(&site).await.expect("create_site");
        let key = ApiKey {
            hash: format!("{name:0>64}"),
            prefix: "hk_".into(),
            role: Role::Account(acc.clone()),
            created_at: at(0),
        };
        s.put_api_key(&key).await.expect("put_api_key");
        let ep = new_endpoint(s, &acc, &[], &[]).await;
        let (ev, ds) = enqueue_new(s, &acc, &[&ep], at(0)).await;
        let (_, pending) = enqueue_new(s, &acc, &[&ep], at(100_000)).await;
        owned.push((acc, site, key, ep, ev, ds[0].clone(), pending[0].clone()));
    }
    for c in claim(s, at(0), 10).await {
        settle(s, &c, at(1), Some(500), Next::RetryAt(at(200_000))).await;
    }

    let (acme, site, key, ep, ev, d, _) = &owned[0];
    assert!(s.delete_account(acme).await.expect("delete_account"));
    assert_eq!(s.account(acme).await.expect("account"), None);
    assert_eq!(s.site(acme, &site.id).await.expect("site"), None);
    assert_eq!(s.api_key(&key.hash).await.expect("api_key"), None);
    assert_eq!(s.endpoint(acme, &ep.id).await.expect("endpoint"), None);
    assert_eq!(s.event(acme, &ev.id).await.expect("event"), None);
    assert_eq!(s.delivery(acme, d).await.expect("delivery"), None);
    assert!(s.attempts(acme, d).await.expect("attempts").is_empty());
    assert!(
        s.list_sites(acme, &PageRequest::first(10))
            .await
            .expect("list_sites")
            .items
            .is_empty()
    );
    assert!(
        s.list_endpoints(acme, &PageRequest::first(10))
            .await
            .expect("list_endpoints")
            .items
            .is_empty()
    );
    assert!(events_of(s, acme, &EventFilter::default()).await.is_empty());
    assert!(
        deliveries_of(s, acme, &DeliveryFilter::default())
            .await
            .is_empty()
    );

    // Only the other account's work is left.
    let (globex, site, key, ep, ev, d, pending) = &owned[1];
    assert!(s.account(globex).await.expect("account").is_some());
    assert!(s.site(globex, &site.id).await.expect("site").is_some());
    assert!(s.api_key(&key.hash).await.expect("api_key").is_some());
    assert!(
        s.endpoint(globex, &ep.id)
            .await
            .expect("endpoint")
            .is_some()
    );
    assert!(s.event(globex, &ev.id).await.expect("event").is_some());
    assert_eq!(s.attempts(globex, d).await.expect("attempts").len(), 1);
    let left = claim(s, at(1_000_000), 10).await;
    assert_eq!(set(&ids(&left)), set(&[d.clone(), pending.clone()]));
}

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

/// Every endpoint field survives create and update; ids conflict; missing rows are `NotFound`.
pub async fn endpoint_crud_round_trips_all_fields(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let mut ep = Endpoint {
        id: EndpointId::generate(),
        account: a.clone(),
        url: "https://hooks.acme.example/rx?token=a%20b".into(),
        description: Some("Pharmacy sync ✓".into()),
        event_types: vec![kind("rx.completed"), kind("rx.failed")],
        sites: vec![site_id("store-1"), site_id("store-2")],
        headers: BTreeMap::from([
            ("x-tenant".to_owned(), "acme".to_owned()),
            ("authorization".to_owned(), "Basic dXNlcjpwdw==".to_owned()),
        ]),
        rate_limit: Some(25),
        max_concurrency: Some(4),
        ordered: true,
        secrets: vec![
            EndpointSecret {
                key: Secret::generate(),
                created_at: at(10),
                expires_at: None,
            },
            EndpointSecret {
                key: Secret::generate(),
                created_at: at(0),
                expires_at: Some(at(86_400_000)),
            },
        ],
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        created_at: at(0),
        updated_at: at(10),
    };
    s.create_endpoint(&ep).await.expect("create_endpoint");
    assert_eq!(
        s.endpoint(&a, &ep.id).await.expect("endpoint"),
        Some(ep.clone())
    );
    assert!(matches!(
        s.create_endpoint(&ep).await,
        Err(StoreError::Conflict(_))
    ));

    ep.url = "https://hooks.acme.example/v2".into();
    ep.description = None;
    ep.event_types.clear();
    ep.sites = vec![site_id("store-9")];
    ep.headers.clear();
    ep.rate_limit = None;
    ep.max_concurrency = None;
    ep.ordered = false;
    ep.secrets.truncate(1);
    ep.enabled = false;
    ep.disabled_reason = Some("every attempt failed for 5 days".into());
    ep.updated_at = at(500);
    s.update_endpoint(&ep).await.expect("update_endpoint");
    assert_eq!(
        s.endpoint(&a, &ep.id).await.expect("endpoint"),
        Some(ep.clone())
    );
    let missing = Endpoint {
        id: EndpointId::generate(),
        ..ep.clone()
    };
    assert!(matches!(
        s.update_endpoint(&missing).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.endpoint(&a, &missing.id).await.expect("endpoint"), None);

    let mut newer = endpoint(&a, &[], &[]);
    newer.created_at = at(1_000);
    s.create_endpoint(&newer).await.expect("create_endpoint");
    let page = s
        .list_endpoints(&a, &PageRequest::first(10))
        .await
        .expect("list_endpoints");
    assert_eq!(page.items, vec![newer.clone(), ep.clone()], "newest first");
}

/// An endpoint of one account is invisible and untouchable through another account.
pub async fn endpoints_are_tenant_isolated(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let ep_a = new_endpoint(s, &a, &[], &[]).await;
    let ep_b = new_endpoint(s, &b, &[], &[]).await;

    assert_eq!(s.endpoint(&b, &ep_a.id).await.expect("endpoint"), None);
    let listed = s
        .list_endpoints(&b, &PageRequest::first(10))
        .await
        .expect("list_endpoints");
    assert_eq!(listed.items, vec![ep_b.clone()]);

    let mut hijack = ep_a.clone();
    hijack.account = b.clone();
    hijack.url = "https://evil.example/steal".into();
    assert!(matches!(
        s.update_endpoint(&hijack).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.endpoint(&a, &ep_a.id).await.expect("endpoint"),
        Some(ep_a.clone())
    );
    assert!(!s.remove_endpoint(&b, &ep_a.id).await.expect("remove"));
    assert!(s.endpoint(&a, &ep_a.id).await.expect("endpoint").is_some());

    // Events, deliveries and attempts follow the same rule.
    let (ev, d) = enqueue_new(s, &a, &[&ep_a], at(0)).await;
    let c = claim_one(s, at(0)).await;
    settle(s, &c, at(1), Some(500), Next::Exhausted).await;
    assert_eq!(s.event(&b, &ev.id).await.expect("event"), None);
    assert_eq!(s.delivery(&b, &d[0]).await.expect("delivery"), None);
    assert!(s.attempts(&b, &d[0]).await.expect("attempts").is_empty());
    assert!(events_of(s, &b, &EventFilter::default()).await.is_empty());
    assert!(
        deliveries_of(s, &b, &DeliveryFilter::default())
            .await
            .is_empty()
    );
    assert!(matches!(
        s.retry_delivery(&b, &d[0], at(10)).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.recover_failed(&b, &ep_a.id, at(0), at(10))
            .await
            .expect("recover_failed"),
        0
    );
    assert_eq!(
        delivery(s, &a, &d[0]).await.status,
        DeliveryStatus::Failed,
        "nothing was re-queued through another account"
    );
}

/// Removing an endpoint cancels its pending (even leased) deliveries and keeps finished ones.
pub async fn remove_endpoint_cancels_pending_deliveries(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let doomed = new_endpoint(s, &a, &[], &[]).await;
    let keeper = new_endpoint(s, &a, &[], &[]).await;
    let (_, first) = enqueue_new(s, &a, &[&doomed, &keeper], at(0)).await;
    let (_, leased) = enqueue_new(s, &a, &[&doomed], at(10)).await;
    let (_, waiting) = enqueue_new(s, &a, &[&doomed], at(1_000_000)).await;

    let got = claim(s, at(10), 10).await;
    assert_eq!(got.len(), 3);
    let mut leased_claim = None;
    for c in got {
        if c.delivery.id == first[0] {
            settle(s, &c, at(11), Some(200), Next::Delivered).await;
        } else if c.delivery.id == leased[0] {
            leased_claim = Some(c);
        } else {
            settle(s, &c, at(11), Some(500), Next::RetryAt(at(500_000))).await;
        }
    }
    let leased_claim = leased_claim.expect("the second event's delivery was claimed");

    assert!(s.remove_endpoint(&a, &doomed.id).await.expect("remove"));
    assert!(
        !s.remove_endpoint(&a, &doomed.id)
            .await
            .expect("remove again")
    );
    assert_eq!(s.endpoint(&a, &doomed.id).await.expect("endpoint"), None);
    assert_eq!(
        delivery(s, &a, &first[0]).await.status,
        DeliveryStatus::Succeeded,
        "finished deliveries stay"
    );
    for id in [&leased[0], &waiting[0]] {
        let d = delivery(s, &a, id).await;
        assert_eq!(d.status, DeliveryStatus::Cancelled);
        assert_eq!(d.next_attempt_at, None);
    }
    assert_lease_lost(
        s.settle(
            &leased_claim.lease,
            &attempt_for(&leased_claim, at(12), Some(200)),
            Next::Delivered,
        )
        .await,
        "settling a cancelled delivery",
    );
    assert_eq!(
        delivery(s, &a, &leased[0]).await.status,
        DeliveryStatus::Cancelled
    );
    let cancelled = deliveries_of(
        s,
        &a,
        &delivery_filter(None, Some(&doomed.id), Some(DeliveryStatus::Cancelled)),
    )
    .await;
    assert_eq!(cancelled.len(), 2);

    // The other endpoint's delivery is untouched and is the only work left.
    assert_eq!(
        delivery(s, &a, &first[1]).await.status,
        DeliveryStatus::Pending
    );
    assert_eq!(s.next_due().await.expect("next_due"), Some(at(500_000)));
    let left = claim(s, at(10_000_000), 10).await;
    assert_eq!(ids(&left), vec![first[1].clone()]);
}

// ---------------------------------------------------------------------------------------------
// Listing
// ---------------------------------------------------------------------------------------------

/// Event filters (type, site, queue id, since inclusive, until exclusive) match exactly.
pub async fn list_events_filters_are_exact(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let mk = |acc: &AccountId, k: &str, site: Option<&str>, q: Option<&str>, t: i64| {
        let mut ev = event(acc, k, site, at(t));
        ev.queue_id = q.map(str::to_owned);
        ev
    };
    let e1 = mk(&a, "rx.completed", Some("store-1"), Some("q1"), 0);
    let e2 = mk(&a, "rx.failed", Some("store-1"), Some("q1"), 10);
    let e3 = mk(&a, "rx.completed", Some("store-2"), Some("q2"), 20);
    let e4 = mk(&a, "rx.completed", None, None, 30);
    let e5 = mk(&b, "rx.completed", Some("store-1"), Some("q1"), 15);
    for ev in [&e1, &e2, &e3, &e4, &e5] {
        enqueue(s, ev, &[], ev.timestamp).await;
    }
    let f = |event_type: Option<&str>,
             site: Option<&str>,
             queue_id: Option<&str>,
             since: Option<i64>,
             until: Option<i64>| EventFilter {
        event_type: event_type.map(kind),
        site: site.map(site_id),
        queue_id: queue_id.map(str::to_owned),
        since: since.map(at),
        until: until.map(at),
    };
    let want = |evs: &[&Event]| evs.iter().map(|e| e.id.clone()).collect::<Vec<_>>();

    let cases: Vec<(EventFilter, Vec<EventId>)> = vec![
        (f(None, None, None, None, None), want(&[&e4, &e3, &e2, &e1])),
        (
            f(Some("rx.completed"), None, None, None, None),
            want(&[&e4, &e3, &e1]),
        ),
        (f(Some("rx.failed"), None, None, None, None), want(&[&e2])),
        (f(Some("rx.nope"), None, None, None, None), vec![]),
        (
            f(None, Some("store-1"), None, None, None),
            want(&[&e2, &e1]),
        ),
        (f(None, Some("store-2"), None, None, None), want(&[&e3])),
        (f(None, None, Some("q1"), None, None), want(&[&e2, &e1])),
        (f(None, None, Some("q"), None, None), vec![]),
        (f(None, None, None, Some(10), None), want(&[&e4, &e3, &e2])),
        (f(None, None, None, None, Some(20)), want(&[&e2, &e1])),
        (f(None, None, None, Some(10), Some(30)), want(&[&e3, &e2])),
        (f(None, None, None, Some(31), None), vec![]),
        (
            f(Some("rx.completed"), Some("store-1"), None, None, None),
            want(&[&e1]),
        ),
        (
            f(Some("rx.completed"), None, Some("q1"), Some(1), None),
            vec![],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            events_of(s, &a, &filter).await,
            expected,
            "filter {filter:?}"
        );
    }
    assert_eq!(
        events_of(s, &b, &f(None, Some("store-1"), None, None, None)).await,
        want(&[&e5])
    );
}

/// Paging newest first returns every row exactly once, even while rows are being added.
pub async fn cursor_pagination_returns_every_row_once(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let mut originals = BTreeSet::new();
    let mut original_deliveries = BTreeSet::new();
    // Groups of three share a timestamp, so ties must break on id.
    for i in 0..20 {
        let t = at((i / 3) * 1_000);
        let ev = event(&a, "rx.completed", None, t);
        let r = enqueue(s, &ev, &[&ep], t).await;
        originals.insert(ev.id);
        original_deliveries.extend(r.deliveries);
    }

    // Events.
    let mut seen: Vec<Event> = Vec::new();
    let mut after: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let page = s
            .list_events(
                &a,
                &EventFilter::default(),
                &PageRequest {
                    limit: 4,
                    after: after.clone(),
                },
            )
            .await
            .expect("list_events");
        assert!(page.items.len() <= 4);
        seen.extend(page.items);
        pages += 1;
        // Rows arrive between pages: newer ones, a tie with an already-seen time, and an older one.
        if pages <= 3 {
            for t in [at(100_000 + pages), at(6_000), at(-5_000 - pages)] {
                let ev = event(&a, "rx.completed", None, t);
                enqueue(s, &ev, &[&ep], t).await;
            }
        }
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
        assert!(pages < 100, "pagination does not end");
    }
    let seen_ids: Vec<EventId> = seen.iter().map(|e| e.id.clone()).collect();
    assert_eq!(
        set(&seen_ids).len(),
        seen_ids.len(),
        "an event was returned twice"
    );
    assert!(
        originals.is_subset(&set(&seen_ids)),
        "an event present throughout was skipped"
    );
    for w in seen.windows(2) {
        assert!(
            (w[0].timestamp, &w[0].id) > (w[1].timestamp, &w[1].id),
            "pages are newest first, ties broken by id"
        );
    }

    // Deliveries.
    let mut seen: Vec<Delivery> = Vec::new();
    let mut after: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let page = s
            .list_deliveries(
                &a,
                &DeliveryFilter::default(),
                &PageRequest {
                    limit: 3,
                    after: after.clone(),
                },
            )
            .await
            .expect("list_deliveries");
        seen.extend(page.items);
        pages += 1;
        if pages <= 2 {
            let t = at(200_000 + pages);
            enqueue(s, &event(&a, "rx.completed", None, t), &[&ep], t).await;
        }
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
        assert!(pages < 100, "pagination does not end");
    }
    let seen_ids: Vec<DeliveryId> = seen.iter().map(|d| d.id.clone()).collect();
    assert_eq!(
        set(&seen_ids).len(),
        seen_ids.len(),
        "a delivery was returned twice"
    );
    assert!(original_deliveries.is_subset(&set(&seen_ids)));
    for w in seen.windows(2) {
        assert!((w[0].created_at, &w[0].id) > (w[1].created_at, &w[1].id));
    }

    // Accounts, with ties on creation time; a full last page has no `next`.
    for i in 0..6 {
        let t = at((i / 2) * 10);
        s.create_account(&Account {
            id: account_id(&format!("tie-{i}")),
            name: "tie".into(),
            created_at: t,
            updated_at: t,
        })
        .await
        .expect("create_account");
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .list_accounts(&PageRequest {
                limit: 2,
                after: after.clone(),
            })
            .await
            .expect("list_accounts");
        seen.extend(page.items.into_iter().map(|x| x.id));
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
        assert!(seen.len() < 100, "pagination does not end");
    }
    assert_eq!(seen.len(), 7, "every account once: {seen:?}");
    assert_eq!(set(&seen).len(), 7);
    let all = s
        .list_accounts(&PageRequest::first(7))
        .await
        .expect("list_accounts");
    assert_eq!(all.items.len(), 7);
    assert!(all.next.is_none(), "no `next` when nothing follows");
    let first = s
        .list_accounts(&PageRequest::first(6))
        .await
        .expect("list_accounts");
    assert!(first.next.is_some(), "`next` when more rows follow");
}

/// Delivery filters (event, endpoint, status) match exactly and combine.
pub async fn list_deliveries_filter_by_event_endpoint_status(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let p = new_endpoint(s, &a, &[], &[]).await;
    let q = new_endpoint(s, &a, &[], &[]).await;
    let (ev1, d1) = enqueue_new(s, &a, &[&p, &q], at(0)).await;
    let (ev2, d2) = enqueue_new(s, &a, &[&p, &q], at(10)).await;
    let pb = new_endpoint(s, &b, &[], &[]).await;
    enqueue_new(s, &b, &[&pb], at(20)).await;

    // ev1 → p succeeded, ev1 → q failed, ev2 → both pending.
    for c in claim(s, at(5), 10).await {
        assert_eq!(c.event.id, ev1.id);
        let next = if c.endpoint.id == p.id {
            Next::Delivered
        } else {
            Next::Exhausted
        };
        settle(s, &c, at(6), Some(200), next).await;
    }

    let list = |f: DeliveryFilter| {
        let store = store.clone();
        let a = a.clone();
        async move {
            deliveries_of(&*store, &a, &f)
                .await
                .into_iter()
                .map(|d| d.id)
                .collect::<BTreeSet<_>>()
        }
    };
    let st = |x: &[&DeliveryId]| x.iter().map(|d| (*d).clone()).collect::<BTreeSet<_>>();

    assert_eq!(
        list(delivery_filter(None, None, None)).await,
        st(&[&d1[0], &d1[1], &d2[0], &d2[1]])
    );
    assert_eq!(
        list(delivery_filter(Some(&ev1.id), None, None)).await,
        st(&[&d1[0], &d1[1]])
    );
    assert_eq!(
        list(delivery_filter(None, Some(&q.id), None)).await,
        st(&[&d1[1], &d2[1]])
    );
    assert_eq!(
        list(delivery_filter(None, None, Some(DeliveryStatus::Succeeded))).await,
        st(&[&d1[0]])
    );
    assert_eq!(
        list(delivery_filter(None, None, Some(DeliveryStatus::Failed))).await,
        st(&[&d1[1]])
    );
    assert_eq!(
        list(delivery_filter(None, None, Some(DeliveryStatus::Pending))).await,
        st(&[&d2[0], &d2[1]])
    );
    assert_eq!(
        list(delivery_filter(None, None, Some(DeliveryStatus::Cancelled))).await,
        st(&[])
    );
    assert_eq!(
        list(delivery_filter(Some(&ev2.id), Some(&p.id), None)).await,
        st(&[&d2[0]])
    );
    assert_eq!(
        list(delivery_filter(
            Some(&ev1.id),
            Some(&q.id),
            Some(DeliveryStatus::Failed)
        ))
        .await,
        st(&[&d1[1]])
    );
    assert_eq!(
        list(delivery_filter(
            Some(&ev2.id),
            None,
            Some(DeliveryStatus::Failed)
        ))
        .await,
        st(&[])
    );
    assert_eq!(
        list(delivery_filter(None, Some(&pb.id), None)).await,
        st(&[]),
        "another account's endpoint"
    );

    // Newest first.
    let all = deliveries_of(s, &a, &DeliveryFilter::default()).await;
    assert_eq!(all.len(), 4);
    assert!(all[..2].iter().all(|d| d.event_id == ev2.id));
    assert!(all[2..].iter().all(|d| d.event_id == ev1.id));
}

// ---------------------------------------------------------------------------------------------
// Manual retry and recovery
// ---------------------------------------------------------------------------------------------

/// A retried delivery is due at once; its next attempt is manual, the one after is scheduled.
pub async fn retry_delivery_makes_failed_pending_with_manual_trigger(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let (_, d) = enqueue_new(s, &a, &[&ep], at(0)).await;
    let c = claim_one(s, at(0)).await;
    settle(s, &c, at(1), Some(500), Next::Exhausted).await;
    assert_eq!(delivery(s, &a, &d[0]).await.status, DeliveryStatus::Failed);

    let r = s
        .retry_delivery(&a, &d[0], at(1_000))
        .await
        .expect("retry_delivery");
    assert_eq!(r.id, d[0]);
    assert_eq!(r.status, DeliveryStatus::Pending);
    assert_eq!(r.attempts, 1, "history is kept");
    assert_eq!(r.next_attempt_at, Some(at(1_000)));
    assert_eq!(r, delivery(s, &a, &d[0]).await);
    assert_eq!(s.next_due().await.expect("next_due"), Some(at(1_000)));

    assert!(claim(s, at(999), 10).await.is_empty());
    let c = claim_one(s, at(1_000)).await;
    assert_eq!(c.trigger, Trigger::Manual);
    assert_eq!(c.attempt_number, 2);
    let manual = attempt_for(&c, at(1_001), Some(502));
    assert_eq!(manual.trigger, Trigger::Manual);
    s.settle(&c.lease, &manual, Next::RetryAt(at(5_000)))
        .await
        .expect("settle");

    let c = claim_one(s, at(5_000)).await;
    assert_eq!(
        c.trigger,
        Trigger::Scheduled,
        "the trigger resets after settling"
    );
    assert_eq!(c.attempt_number, 3);
    settle(s, &c, at(5_001), Some(200), Next::Delivered).await;
    let history = s.attempts(&a, &d[0]).await.expect("attempts");
    assert_eq!(
        history.iter().map(|x| x.trigger).collect::<Vec<_>>(),
        vec![Trigger::Scheduled, Trigger::Manual, Trigger::Scheduled]
    );

    // Whatever its state: a succeeded delivery can be sent again, and a live lease is broken.
    let r = s.retry_delivery(&a, &d[0], at(6_000)).await.expect("retry");
    assert_eq!(r.status, DeliveryStatus::Pending);
    let leased = claim_one(s, at(6_000)).await;
    assert_eq!(leased.trigger, Trigger::Manual);
    assert_eq!(leased.attempt_number, 4);
    s.retry_delivery(&a, &d[0], at(6_500)).await.expect("retry");
    assert_lease_lost(
        s.settle(
            &leased.lease,
            &attempt_for(&leased, at(6_600), Some(200)),
            Next::Delivered,
        )
        .await,
        "settling a lease that a retry request replaced",
    );
    let again = claim_one(s, at(6_500)).await;
    assert_eq!(again.trigger, Trigger::Manual);
    assert_eq!(again.attempt_number, 4);

    assert!(matches!(
        s.retry_delivery(&a, &DeliveryId::generate(), at(7_000))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// Recovery re-queues exactly the endpoint's failed deliveries created at or after `since`.
pub async fn recover_failed_requeues_since(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let other = new_endpoint(s, &a, &[], &[]).await;
    let minute = 60_000;
    let (_, old) = enqueue_new(s, &a, &[&ep], at(0)).await;
    let (_, mid) = enqueue_new(s, &a, &[&ep, &other], at(10 * minute)).await;
    let (_, new) = enqueue_new(s, &a, &[&ep], at(20 * minute)).await;
    let (_, ok) = enqueue_new(s, &a, &[&ep], at(21 * minute)).await;
    let all = claim(s, at(30 * minute), 10).await;
    assert_eq!(all.len(), 5);
    for c in &all {
        let next = if c.delivery.id == ok[0] {
            Next::Delivered
        } else {
            Next::Exhausted
        };
        settle(s, c, at(30 * minute), Some(500), next).await;
    }
    let (_, pending) = enqueue_new(s, &a, &[&ep], at(40 * minute)).await;

    let n = s
        .recover_failed(&a, &ep.id, at(10 * minute), at(50 * minute))
        .await
        .expect("recover_failed");
    assert_eq!(n, 2, "the endpoint's failed deliveries since T");
    for id in [&mid[0], &new[0]] {
        let d = delivery(s, &a, id).await;
        assert_eq!(d.status, DeliveryStatus::Pending);
        assert_eq!(d.next_attempt_at, Some(at(50 * minute)));
        assert_eq!(d.attempts, 1);
    }
    assert_eq!(
        delivery(s, &a, &old[0]).await.status,
        DeliveryStatus::Failed
    );
    assert_eq!(
        delivery(s, &a, &mid[1]).await.status,
        DeliveryStatus::Failed,
        "another endpoint's failures stay"
    );
    assert_eq!(
        delivery(s, &a, &ok[0]).await.status,
        DeliveryStatus::Succeeded
    );
    let p = delivery(s, &a, &pending[0]).await;
    assert_eq!(
        p.next_attempt_at,
        Some(at(40 * minute)),
        "pending ones untouched"
    );

    let got = claim(s, at(50 * minute), 10).await;
    assert_eq!(got.len(), 3);
    for c in &got {
        if c.delivery.id == pending[0] {
            assert_eq!(c.trigger, Trigger::Scheduled);
            assert_eq!(c.attempt_number, 1);
        } else {
            assert!([&mid[0], &new[0]].contains(&&c.delivery.id));
            assert_eq!(c.trigger, Trigger::Manual, "recovery is a manual trigger");
            assert_eq!(c.attempt_number, 2);
        }
    }
    assert_eq!(
        s.recover_failed(&a, &ep.id, at(0), at(60 * minute))
            .await
            .expect("recover_failed"),
        1,
        "only the oldest is still failed"
    );
}

/// `next_due` is the earliest instant a claimable delivery is due, counting leases at their end.
pub async fn next_due_reports_earliest(store: Arc<dyn Store>) {
    let s = &*store;
    assert_eq!(s.next_due().await.expect("next_due"), None, "empty store");
    let a = new_account(s, "acme").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    enqueue_new(s, &a, &[&ep], at(50_000)).await;
    let (_, early) = enqueue_new(s, &a, &[&ep], at(20_000)).await;
    assert_eq!(s.next_due().await.expect("next_due"), Some(at(20_000)));

    let c = claim_one(s, at(30_000)).await;
    assert_eq!(c.delivery.id, early[0]);
    assert_eq!(
        s.next_due().await.expect("next_due"),
        Some(at(50_000)),
        "the leased one counts at its lease end (30 s + 30 s = 60 s)"
    );
    settle(s, &c, at(30_001), Some(500), Next::RetryAt(at(40_000))).await;
    assert_eq!(s.next_due().await.expect("next_due"), Some(at(40_000)));

    // Deliveries of disabled endpoints are never claimed, so they are never due either;
    // reporting them would make a dispatcher spin on work it cannot claim.
    let mut off = endpoint(&a, &[], &[]);
    off.enabled = false;
    s.create_endpoint(&off).await.expect("create_endpoint");
    enqueue_new(s, &a, &[&off], at(1)).await;
    assert_eq!(s.next_due().await.expect("next_due"), Some(at(40_000)));

    let c = claim_one(s, at(40_000)).await;
    settle(s, &c, at(40_001), Some(200), Next::Delivered).await;
    assert_eq!(s.next_due().await.expect("next_due"), Some(at(50_000)));
    let c = claim_one(s, at(50_000)).await;
    assert_eq!(
        s.next_due().await.expect("next_due"),
        Some(at(50_000).add(LEASE))
    );
    settle(s, &c, at(50_001), Some(200), Next::Delivered).await;
    assert_eq!(s.next_due().await.expect("next_due"), None, "all done");
}

// ---------------------------------------------------------------------------------------------
// Ordering, skipping, deferring, retention
// ---------------------------------------------------------------------------------------------

fn queued_event(account: &AccountId, queue: &str, fired: Timestamp) -> Event {
    let mut ev = event(account, "rx.excepted", None, fired);
    ev.queue_id = Some(queue.to_owned());
    ev
}

/// An ordered endpoint gets, per queue id, only the oldest pending delivery; other keys and
/// unordered endpoints flow; a terminal head unblocks the next one.
pub async fn ordered_endpoint_claims_only_the_head_of_each_queue_id(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let mut ordered = endpoint(&a, &[], &[]);
    ordered.ordered = true;
    s.create_endpoint(&ordered).await.expect("create_endpoint");
    let plain = new_endpoint(s, &a, &[], &[]).await;

    let q1_first = enqueue(
        s,
        &queued_event(&a, "q1", at(0)),
        &[&ordered, &plain],
        at(0),
    )
    .await;
    let q1_second = enqueue(
        s,
        &queued_event(&a, "q1", at(1)),
        &[&ordered, &plain],
        at(1),
    )
    .await;
    let q2 = enqueue(s, &queued_event(&a, "q2", at(2)), &[&ordered], at(2)).await;
    let no_key = enqueue(
        s,
        &event(&a, "rx.completed", None, at(3)),
        &[&ordered],
        at(3),
    )
    .await;

    let got = claim(s, at(10), 100).await;
    let got_ids = set(&ids(&got));
    let ordered_first = got
        .iter()
        .filter(|c| c.endpoint.id == ordered.id && c.event.queue_id.as_deref() == Some("q1"))
        .map(|c| c.event.id.clone())
        .collect::<Vec<_>>();
    assert_eq!(
        ordered_first,
        vec![q1_first.event_id.clone()],
        "only the head of q1"
    );
    for r in [&q2, &no_key] {
        assert!(
            r.deliveries.iter().all(|d| got_ids.contains(d)),
            "other keys and keyless events flow"
        );
    }
    let plain_count = got.iter().filter(|c| c.endpoint.id == plain.id).count();
    assert_eq!(
        plain_count, 2,
        "an unordered endpoint takes both q1 events at once"
    );

    // While the head is pending (here: retried later), the second stays blocked, even when due.
    let head = got
        .iter()
        .find(|c| c.endpoint.id == ordered.id && c.event.id == q1_first.event_id)
        .expect("head claimed");
    settle(s, head, at(10), Some(500), Next::RetryAt(at(20))).await;
    assert!(
        claim(s, at(15), 100).await.is_empty(),
        "the head is not due, the rest is blocked"
    );
    let head = claim_one(s, at(20)).await;
    assert_eq!(
        head.event.id, q1_first.event_id,
        "the failing head comes back first"
    );
    settle(s, &head, at(20), None, Next::Exhausted).await;
    let next = claim_one(s, at(21)).await;
    assert_eq!(
        next.event.id, q1_second.event_id,
        "a terminal head unblocks the next"
    );
}

/// `claim_due_except` leaves the skipped endpoints' deliveries due for a later claim.
pub async fn claim_due_except_skips_the_given_endpoints(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let busy = new_endpoint(s, &a, &[], &[]).await;
    let free = new_endpoint(s, &a, &[], &[]).await;
    let (_, d) = enqueue_new(s, &a, &[&busy, &free], at(0)).await;
    let got = s
        .claim_due_except(at(1), 10, LEASE, std::slice::from_ref(&busy.id))
        .await
        .expect("claim_due_except");
    assert_eq!(ids(&got), vec![d[1].clone()]);
    let got = claim(s, at(2), 10).await;
    assert_eq!(
        ids(&got),
        vec![d[0].clone()],
        "the skipped one is still due"
    );
}

/// `defer` returns a claim untouched (no attempt, same count and trigger), due at the given time;
/// a stale lease cannot defer.
pub async fn defer_gives_a_claim_back_without_an_attempt(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let (_, d) = enqueue_new(s, &a, &[&ep], at(0)).await;
    s.retry_delivery(&a, &d[0], at(1))
        .await
        .expect("retry_delivery");
    let c = claim_one(s, at(1)).await;
    assert_eq!(c.trigger, Trigger::Manual);
    s.defer(&c.lease, at(5_000)).await.expect("defer");
    assert_lease_lost(s.defer(&c.lease, at(9_000)).await, "deferring twice");
    assert_lease_lost(
        s.settle(
            &c.lease,
            &attempt_for(&c, at(2), Some(200)),
            Next::Delivered,
        )
        .await,
        "settling a deferred claim",
    );
    assert!(
        claim(s, at(4_999), 10).await.is_empty(),
        "not due before the deferral ends"
    );
    let again = claim_one(s, at(5_000)).await;
    assert_eq!(again.attempt_number, 1, "no attempt was counted");
    assert_eq!(again.trigger, Trigger::Manual, "the trigger is kept");
    assert!(s.attempts(&a, &d[0]).await.expect("attempts").is_empty());
    let dl = delivery(s, &a, &d[0]).await;
    assert_eq!((dl.status, dl.attempts), (DeliveryStatus::Pending, 0));
}

/// `purge` deletes events older than the cut-off with their deliveries and attempts, in batches,
/// and leaves newer ones alone.
pub async fn purge_deletes_old_events_with_their_deliveries_and_attempts(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let mut old = Vec::new();
    for i in 0..3 {
        old.push(enqueue_new(s, &a, &[&ep], at(i)).await);
    }
    let c = claim_one(s, at(10)).await;
    settle(s, &c, at(10), Some(200), Next::Delivered).await;
    let (young_ev, young_d) = enqueue_new(s, &a, &[&ep], at(100_000)).await;

    assert_eq!(
        s.purge(at(50_000), 2).await.expect("purge"),
        2,
        "a batch is bounded"
    );
    assert_eq!(s.purge(at(50_000), 2).await.expect("purge"), 1);
    assert_eq!(s.purge(at(50_000), 2).await.expect("purge"), 0);
    for (ev, d) in &old {
        assert!(
            s.event(&a, &ev.id).await.expect("event").is_none(),
            "old event purged"
        );
        assert!(
            s.delivery(&a, &d[0]).await.expect("delivery").is_none(),
            "its delivery purged"
        );
        assert!(
            s.attempts(&a, &d[0]).await.expect("attempts").is_empty(),
            "its attempts purged"
        );
    }
    assert!(s.event(&a, &young_ev.id).await.expect("event").is_some());
    assert_eq!(
        delivery(s, &a, &young_d[0]).await.status,
        DeliveryStatus::Pending
    );
    let left = claim(s, at(200_000), 10).await;
    assert_eq!(ids(&left), young_d, "nothing purged is claimed");
}

/// How many of `claims` go to `ep`.
fn count_for(claims: &[Claimed], ep: &Endpoint) -> usize {
    claims.iter().filter(|c| c.endpoint.id == ep.id).count()
}

/// An endpoint with `maxConcurrency` never has more live leases than that: settling, deferring
/// or the end of a lease frees a slot; endpoints without limits are claimed beside it.
pub async fn max_concurrency_bounds_live_leases(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let mut narrow = endpoint(&a, &[], &[]);
    narrow.max_concurrency = Some(2);
    s.create_endpoint(&narrow).await.expect("create_endpoint");
    let free = new_endpoint(s, &a, &[], &[]).await;
    for i in 0..5 {
        enqueue_new(s, &a, &[&narrow, &free], at(i)).await;
    }
    let first = claim(s, at(10), 100).await;
    assert_eq!(count_for(&first, &free), 5, "no limit: everything due");
    assert_eq!(count_for(&first, &narrow), 2, "maxConcurrency 2");
    assert!(
        first.iter().all(|c| c.not_before.is_none()),
        "no rate limit, no send time"
    );
    assert!(
        claim(s, at(11), 100).await.is_empty(),
        "both slots are taken"
    );

    let mine: Vec<&Claimed> = first
        .iter()
        .filter(|c| c.endpoint.id == narrow.id)
        .collect();
    settle(s, mine[0], at(12), Some(200), Next::Delivered).await;
    let next = claim(s, at(13), 100).await;
    assert_eq!(
        count_for(&next, &narrow),
        1,
        "a settled attempt frees its slot"
    );
    assert!(claim(s, at(14), 100).await.is_empty());
    s.defer(&mine[1].lease, at(15)).await.expect("defer");
    let after_defer = claim(s, at(15), 100).await;
    assert_eq!(
        count_for(&after_defer, &narrow),
        1,
        "a deferred claim frees its slot"
    );
    assert!(claim(s, at(16), 100).await.is_empty());

    // Every lease has ended: the limit still holds for the next claim.
    let late = at(16).add(LEASE).add(Duration::from_secs(1));
    let again = claim(s, late, 100).await;
    assert_eq!(
        count_for(&again, &narrow),
        2,
        "expired leases free their slots, up to the limit"
    );
    assert_eq!(count_for(&again, &free), 5);
}

/// Claims racing from many workers (as from many processes) never exceed `maxConcurrency`
/// together.
pub async fn concurrent_claims_respect_max_concurrency(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let mut narrow = endpoint(&a, &[], &[]);
    narrow.max_concurrency = Some(3);
    s.create_endpoint(&narrow).await.expect("create_endpoint");
    for i in 0..12 {
        enqueue_new(s, &a, &[&narrow], at(i)).await;
    }
    let mut set = JoinSet::new();
    for _ in 0..8 {
        let st = store.clone();
        set.spawn(async move { st.claim_due(at(20), 2, LEASE).await.expect("claim_due") });
    }
    let mut total = 0;
    while let Some(got) = set.join_next().await {
        total += got.expect("claim task").len();
    }
    assert!(
        (2..=3).contains(&total),
        "eight racing claims took {total} leases; the limit is 3"
    );
    // A claimer may pass over an endpoint another one holds; once they are done, the rest of
    // the room is taken, and no more.
    total += claim(s, at(21), 10).await.len();
    assert_eq!(total, 3, "the limit is 3");
}

/// An endpoint with `rateLimit` r gets send times at least 1/r s apart across claims, none
/// beyond the rate horizon of the claim that reserved it.
pub async fn rate_limit_reserves_spaced_send_times(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let mut slow = endpoint(&a, &[], &[]);
    slow.rate_limit = Some(4);
    s.create_endpoint(&slow).await.expect("create_endpoint");
    let free = new_endpoint(s, &a, &[], &[]).await;
    for i in 0..12 {
        enqueue_new(s, &a, &[&slow, &free], at(i)).await;
    }
    let horizon = crate::store::RATE_HORIZON;
    let now = at(100);
    let first = claim(s, now, 100).await;
    assert_eq!(count_for(&first, &free), 12);
    assert!(
        first
            .iter()
            .filter(|c| c.endpoint.id == free.id)
            .all(|c| c.not_before.is_none())
    );
    let mut times: Vec<Timestamp> = first
        .iter()
        .filter(|c| c.endpoint.id == slow.id)
        .map(|c| {
            c.not_before
                .expect("a rate-limited claim carries its send time")
        })
        .collect();
    assert!(!times.is_empty(), "something is sendable now");
    assert!(
        times.len() <= 5,
        "at most 4/s over a 1 s horizon (+1 at its start): {}",
        times.len()
    );
    assert!(times[0] >= now && times[times.len() - 1] <= now.add(horizon));
    let more = claim(s, now, 100).await;
    for c in &more {
        times.push(c.not_before.expect("send time"));
    }
    assert!(
        times.len() <= 5,
        "the horizon is full: a second claim at once reserves nothing more"
    );
    let later = now.add(horizon);
    let third = claim(s, later, 100).await;
    assert!(!third.is_empty(), "one horizon later there is room again");
    for c in &third {
        let t = c.not_before.expect("send time");
        assert!(
            t <= later.add(horizon),
            "{t} is beyond the horizon of {later}"
        );
        times.push(t);
    }
    let mut sorted = times.clone();
    sorted.sort();
    for w in sorted.windows(2) {
        assert!(
            w[1].since(w[0]) >= Duration::from_millis(250),
            "send times {} and {} are closer than 1/4 s",
            w[0],
            w[1]
        );
    }
}

/// The failure clock: started once, kept across calls and endpoint updates, shown on the
/// endpoint (also in claims), stopped by `record_healthy`.
pub async fn failure_clock_is_kept_by_the_store(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let mut ep = new_endpoint(s, &a, &[], &[]).await;
    let fetch = |ep: &Endpoint| {
        let (a, id) = (ep.account.clone(), ep.id.clone());
        async move {
            s.endpoint(&a, &id)
                .await
                .expect("endpoint")
                .expect("exists")
        }
    };
    assert_eq!(fetch(&ep).await.failing_since, None);
    assert_eq!(
        s.record_failing(&ep.id, at(10))
            .await
            .expect("record_failing"),
        Some(at(10))
    );
    assert_eq!(
        s.record_failing(&ep.id, at(20))
            .await
            .expect("record_failing"),
        Some(at(10)),
        "a running clock keeps its start"
    );
    assert_eq!(fetch(&ep).await.failing_since, Some(at(10)));
    let listed = s
        .list_endpoints(&a, &PageRequest::first(10))
        .await
        .expect("list_endpoints");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        listed.items[0].failing_since,
        Some(at(10)),
        "lists show the clock too"
    );
    ep.description = Some("changed".into());
    ep.failing_since = None;
    s.update_endpoint(&ep).await.expect("update_endpoint");
    let got = fetch(&ep).await;
    assert_eq!(got.description.as_deref(), Some("changed"));
    assert_eq!(
        got.failing_since,
        Some(at(10)),
        "updates leave the clock alone"
    );
    enqueue_new(s, &a, &[&ep], at(30)).await;
    let c = claim_one(s, at(31)).await;
    assert_eq!(
        c.endpoint.failing_since,
        Some(at(10)),
        "claims carry the clock"
    );
    s.record_healthy(&ep.id).await.expect("record_healthy");
    assert_eq!(fetch(&ep).await.failing_since, None);
    assert_eq!(
        s.record_failing(&ep.id, at(40))
            .await
            .expect("record_failing"),
        Some(at(40))
    );
    assert_eq!(
        s.record_failing(&EndpointId::generate(), at(40))
            .await
            .expect("record_failing"),
        None,
        "an unknown endpoint has no clock"
    );
}

/// `hold_endpoint` makes an endpoint's due deliveries wait until the given time, together, and
/// leaves its live leases and every other endpoint alone.
pub async fn hold_endpoint_makes_its_backlog_wait(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let failing = new_endpoint(s, &a, &[], &[]).await;
    let healthy = new_endpoint(s, &a, &[], &[]).await;
    for i in 0..3 {
        enqueue_new(s, &a, &[&failing, &healthy], at(i)).await;
    }
    let in_flight = s
        .claim_due_except(at(5), 1, LEASE, std::slice::from_ref(&healthy.id))
        .await
        .expect("claim_due_except");
    assert_eq!(count_for(&in_flight, &failing), 1);
    s.hold_endpoint(&failing.id, at(5_000), at(6))
        .await
        .expect("hold_endpoint");
    let got = claim(s, at(7), 100).await;
    assert_eq!(count_for(&got, &healthy), 3, "other endpoints keep flowing");
    assert_eq!(count_for(&got, &failing), 0, "the held backlog waits");
    assert_eq!(
        s.next_due().await.expect("next_due"),
        Some(at(5_000)),
        "the hold's end is the next due time"
    );
    assert!(claim(s, at(4_999), 100).await.is_empty());
    let after = claim(s, at(5_000), 100).await;
    assert_eq!(
        count_for(&after, &failing),
        2,
        "due again, together, when the hold ends"
    );
    assert!(
        after.iter().all(|c| c.attempt_number == 1),
        "no attempt was counted"
    );
    // The request in flight during the hold settles normally.
    settle(s, &in_flight[0], at(10), Some(200), Next::Delivered).await;
}
