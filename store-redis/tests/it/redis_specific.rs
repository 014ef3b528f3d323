//! What the conformance suite cannot see: key layout, the URL prefix, retention expiry.

use std::time::Duration;

use hookline_core::model::{Account, Endpoint, Event, EventFilter, PageRequest};
use hookline_core::store::{DeliveryStore as _, Store};
use hookline_core::{AccountId, EndpointId, EventId, EventTypeName, Timestamp};
use hookline_store_redis::{RedisConfig, RedisStore};
use serde_json::value::RawValue;

use crate::support::{Cleanup, fresh_store, redis_url};

fn endpoint(account: &AccountId) -> Endpoint {
    Endpoint {
        id: EndpointId::generate(),
        account: account.clone(),
        url: "https://receiver.example.com/hook".into(),
        description: None,
        event_types: vec![],
        sites: vec![],
        headers: Default::default(),
        rate_limit: None,
        max_concurrency: None,
        ordered: false,
        secrets: vec![],
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        created_at: Timestamp::from_millis(1),
        updated_at: Timestamp::from_millis(1),
    }
}

fn event(account: &AccountId, t: Timestamp) -> Event {
    Event {
        id: EventId::generate(),
        account: account.clone(),
        site: None,
        event_type: EventTypeName::parse("rx.completed").unwrap(),
        queue_id: None,
        data: RawValue::from_string("{}".into()).unwrap(),
        idempotency_key: Some("k1".into()),
        timestamp: t,
    }
}

async fn seed(s: &dyn Store) -> (AccountId, Endpoint) {
    let a = AccountId::parse("acme").unwrap();
    s.create_account(&Account {
        id: a.clone(),
        name: "Acme".into(),
        created_at: Timestamp::from_millis(1),
        updated_at: Timestamp::from_millis(1),
    })
    .await
    .unwrap();
    let ep = endpoint(&a);
    s.create_endpoint(&ep).await.unwrap();
    (a, ep)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_carries_the_prefix_and_a_hash_tag() {
    let (store, cleanup) = fresh_store(RedisConfig::default()).await;
    let (a, ep) = seed(&store).await;
    let now = Timestamp::now();
    store
        .enqueue(&event(&a, now), std::slice::from_ref(&ep.id), now)
        .await
        .unwrap();
    let claimed = store
        .claim_due(now, 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let keys = cleanup.keys();
    assert!(keys.len() >= 8, "{keys:?}");
    for k in &keys {
        let rest = k.strip_prefix(&cleanup.prefix).expect("prefixed");
        assert!(
            rest.starts_with("{q}:") || rest.starts_with("{c}:") || rest.starts_with("{a:"),
            "{k} has no hash tag"
        );
    }
    assert!(keys.contains(&format!("{}{{q}}:due", cleanup.prefix)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_prefix_parameter_overrides_the_config() {
    let prefix = format!("hl_t_{:016x}:", rand::random::<u64>());
    let cleanup = Cleanup::for_prefix(&prefix);
    let base = redis_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{sep}prefix={prefix}",
        base.trim_end_matches('/').to_owned() + "/"
    );
    let store = RedisStore::connect(&url, RedisConfig::default().prefix("ignored:"))
        .await
        .expect("connect");
    seed(&store).await;
    assert!(
        !cleanup.keys().is_empty(),
        "keys live under the URL's prefix"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_expire_with_the_retention_period() {
    let cfg = RedisConfig::default().retention(Duration::from_millis(300));
    let (store, cleanup) = fresh_store(cfg).await;
    let (a, ep) = seed(&store).await;
    let now = Timestamp::now();
    let ev = event(&a, now);
    let r = store
        .enqueue(&ev, std::slice::from_ref(&ep.id), now)
        .await
        .unwrap();
    assert!(store.event(&a, &ev.id).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(store.event(&a, &ev.id).await.unwrap(), None);
    assert_eq!(store.delivery(&a, &r.deliveries[0]).await.unwrap(), None);
    let listed = store
        .list_events(&a, &EventFilter::default(), &PageRequest::first(10))
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    // Nothing of the event is left, and the expired entries were pruned from the indexes.
    assert!(
        store
            .claim_due(now, 10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_due().await.unwrap(), None);
    let left: Vec<String> = cleanup
        .keys()
        .into_iter()
        .filter(|k| {
            [":ev:", ":evd:", ":dlv:", ":att:", ":idem:"]
                .iter()
                .any(|p| k.contains(p))
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The idempotency key expired with its event: the same key is a new event now.
    let again = event(&a, now);
    assert!(!store.enqueue(&again, &[], now).await.unwrap().duplicate);
}

/// An enqueue through one connection raises the work signal of another store on the same prefix
/// (pub/sub), so an idle process wakes at once for work another process accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_wakes_other_processes() {
    let (producer, cleanup) = fresh_store(RedisConfig::default()).await;
    let idle = RedisStore::connect(
        &redis_url(),
        RedisConfig::default().prefix(cleanup.prefix.clone()),
    )
    .await
    .unwrap();
    let signal = idle.work_signal().expect("Redis offers a work signal");
    let early = tokio::time::timeout(Duration::from_millis(500), signal.notified()).await;
    assert!(early.is_err(), "no work, no signal");
    let (a, ep) = seed(&producer).await;
    producer
        .enqueue(
            &event(&a, Timestamp::from_millis(5)),
            std::slice::from_ref(&ep.id),
            Timestamp::from_millis(5),
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), signal.notified())
        .await
        .expect("the enqueue through another connection raised the signal");
    drop(cleanup);
}
