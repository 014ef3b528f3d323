//! Concurrent enqueues and settles share write transactions (group commit); each still gets the
//! answer it would get alone, whatever else its group holds.

use std::sync::Arc;
use std::time::Duration;

use hookline_core::model::{Account, Attempt, DeliveryStatus, Endpoint, EndpointSecret, Event};
use hookline_core::signing::Secret;
use hookline_core::store::{
    CatalogStore, EndpointStore, HistoryStore, LeaseToken, Next, QueueStore, StoreError,
};
use hookline_core::{AccountId, AttemptId, EndpointId, EventId, EventTypeName, Timestamp};
use hookline_store_sqlite::{SqliteConfig, SqliteStore};
use serde_json::value::RawValue;
use tokio::task::JoinSet;

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn endpoint(account: &AccountId, ordered: bool) -> Endpoint {
    let mut v = Endpoint::new(
        EndpointId::generate(),
        account.clone(),
        "https://receiver.example.com/hook",
        vec![EndpointSecret::new(Secret::generate(), T0)],
        T0,
    );
    v.ordered = ordered;
    v.updated_at = T0;
    v
}

fn event(account: &AccountId, key: Option<String>) -> Event {
    let mut v = Event::new(
        EventId::generate(),
        account.clone(),
        EventTypeName::parse("rx.completed").unwrap(),
        RawValue::from_string(r#"{"din":"02242903"}"#.into()).unwrap(),
        T0,
    );
    v.queue_id = Some("q_1".into());
    v.idempotency_key = key;
    v
}

fn attempt(lease: &LeaseToken) -> Attempt {
    let mut v = Attempt::new(
        AttemptId::generate(),
        lease.delivery.clone(),
        1,
        hookline_core::model::Trigger::Scheduled,
        T0,
    );
    v.duration_ms = 3;
    v.status_code = Some(200);
    v.response_body = "ok".into();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_concurrent_writes_get_their_own_answers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::connect(
            &dir.path().join("h.db").display().to_string(),
            SqliteConfig::default(),
        )
        .await
        .unwrap(),
    );
    let account = {
        let mut v = Account::new(AccountId::parse("acme").unwrap(), "Acme", T0);
        v.updated_at = T0;
        v
    };
    store.create_account(&account).await.unwrap();
    let plain = endpoint(&account.id, false);
    let ordered = endpoint(&account.id, true);
    store.create_endpoint(&plain).await.unwrap();
    store.create_endpoint(&ordered).await.unwrap();
    let targets = vec![plain.id.clone(), ordered.id.clone()];

    // Something to settle, and an event whose key later enqueues repeat.
    let first = event(&account.id, Some("dup".into()));
    store.enqueue(&first, &targets, T0).await.unwrap();
    for _ in 0..20 {
        store
            .enqueue(&event(&account.id, None), &targets, T0)
            .await
            .unwrap();
    }
    let claims = store
        .claim_due(T0, 100, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(!claims.is_empty());

    // Settles (a third with a stale lease) and enqueues (a quarter repeating the first event's
    // key) all at once, so that they share groups in every combination.
    let mut settles = JoinSet::new();
    let mut enqueues = JoinSet::new();
    for i in 0..60 {
        if let Some(c) = claims.get(i) {
            let store = store.clone();
            let mut lease = c.lease.clone();
            let stale = i % 3 == 0;
            if stale {
                lease.lease_id = "not-the-lease".into();
            }
            settles.spawn(async move {
                let r = store
                    .settle(&lease, &attempt(&lease), Next::Delivered)
                    .await;
                match (stale, r) {
                    (true, Err(StoreError::LeaseLost)) | (false, Ok(())) => {}
                    (stale, r) => panic!("settle (stale: {stale}) answered {r:?}"),
                }
                (lease.delivery, stale)
            });
        }
        let store = store.clone();
        let targets = targets.clone();
        let ev = event(&account.id, (i % 4 == 0).then(|| "dup".to_owned()));
        enqueues.spawn(async move {
            let r = store.enqueue(&ev, &targets, T0).await.unwrap();
            (ev, r)
        });
    }
    while let Some(r) = settles.join_next().await {
        let (delivery, stale) = r.unwrap();
        let d = store
            .delivery(&account.id, &delivery)
            .await
            .unwrap()
            .unwrap();
        if stale {
            assert_eq!(d.status, DeliveryStatus::Pending);
            assert_eq!(d.attempts, 0);
            assert!(
                store
                    .attempts(&account.id, &delivery)
                    .await
                    .unwrap()
                    .is_empty()
            );
        } else {
            assert_eq!(d.status, DeliveryStatus::Succeeded);
            assert_eq!(d.attempts, 1);
            assert_eq!(
                store.attempts(&account.id, &delivery).await.unwrap().len(),
                1
            );
        }
    }
    while let Some(r) = enqueues.join_next().await {
        let (ev, r) = r.unwrap();
        if ev.idempotency_key.is_some() {
            assert!(r.duplicate);
            assert_eq!(r.event_id, first.id);
            assert_eq!(store.event(&account.id, &ev.id).await.unwrap(), None);
        } else {
            assert!(!r.duplicate);
            assert_eq!(r.event_id, ev.id);
            assert_eq!(store.event(&account.id, &ev.id).await.unwrap(), Some(ev));
        }
        assert_eq!(r.deliveries.len(), 2);
        for id in &r.deliveries {
            let d = store.delivery(&account.id, id).await.unwrap().unwrap();
            assert_eq!(d.event_id, r.event_id);
        }
    }
}
