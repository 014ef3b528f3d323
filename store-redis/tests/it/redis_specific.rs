//! What the conformance suite cannot see: key layout, the URL prefix, retention expiry.

use std::sync::Arc;
use std::time::Duration;

use hookline_core::model::{
    Account, Attempt, DeliveryStatus, Endpoint, Event, EventFilter, PageRequest,
};
use hookline_core::store::{
    CatalogStore as _, Claimed, EndpointStore as _, HistoryStore as _, Next, QueueStore as _,
    Receipt, Store, StoreError,
};
use hookline_core::{AccountId, AttemptId, EndpointId, EventId, EventTypeName, Timestamp};
use hookline_store_redis::{RedisConfig, RedisStore};
use serde_json::value::RawValue;

use crate::support::{Cleanup, fresh_store, redis_url};

fn endpoint(account: &AccountId) -> Endpoint {
    Endpoint::new(
        EndpointId::generate(),
        account.clone(),
        "https://receiver.example.com/hook",
        vec![],
        Timestamp::from_millis(1),
    )
}

fn event(account: &AccountId, t: Timestamp) -> Event {
    let mut v = Event::new(
        EventId::generate(),
        account.clone(),
        EventTypeName::parse("rx.completed").unwrap(),
        RawValue::from_string("{}".into()).unwrap(),
        t,
    );
    v.idempotency_key = Some("k1".into());
    v
}

async fn seed(s: &dyn Store) -> (AccountId, Endpoint) {
    let a = AccountId::parse("acme").unwrap();
    s.create_account(&{
        let mut v = Account::new(a.clone(), "Acme", Timestamp::from_millis(1));
        v.updated_at = Timestamp::from_millis(1);
        v
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
    let signal = idle
        .listen_for_work()
        .expect("Redis offers a work listener");
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

fn attempt_for(c: &Claimed, at: Timestamp) -> Attempt {
    let mut v = Attempt::new(
        AttemptId::generate(),
        c.delivery.id.clone(),
        c.attempt_number,
        c.trigger,
        at,
    );
    v.duration_ms = 3;
    v.status_code = Some(200);
    v.response_body = "ok".into();
    v
}

/// Enqueues `n` events (no idempotency key) to `ep` and claims their deliveries.
async fn enqueue_and_claim(
    store: &dyn Store,
    a: &AccountId,
    ep: &Endpoint,
    n: usize,
    now: Timestamp,
) -> Vec<Claimed> {
    for _ in 0..n {
        let mut ev = event(a, now);
        ev.idempotency_key = None;
        store
            .enqueue(&ev, std::slice::from_ref(&ep.id), now)
            .await
            .unwrap();
    }
    store
        .claim_due(now, n, Duration::from_secs(30))
        .await
        .unwrap()
}

/// Concurrent settles share script calls, and each still gets its own outcome: current leases
/// settle, stale ones are lease-lost, and of two settles of one lease exactly one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_settles_each_get_their_own_outcome() {
    let (store, _cleanup) = fresh_store(RedisConfig::default()).await;
    let (a, ep) = seed(&store).await;
    let now = Timestamp::now();
    let claims = enqueue_and_claim(&store, &a, &ep, 40, now).await;
    assert_eq!(claims.len(), 40);
    let store = Arc::new(store);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, c) in claims.iter().enumerate() {
        // Every third settle carries a stale lease id; the first claim is settled twice.
        let copies = if i == 0 { 2 } else { 1 };
        for _ in 0..copies {
            let store = store.clone();
            let mut lease = c.lease.clone();
            if i % 3 == 1 {
                lease.lease_id = format!("{}-stale", lease.lease_id);
            }
            let attempt = attempt_for(c, now);
            tasks.spawn(async move {
                let r = store.settle(&lease, &attempt, Next::Delivered).await;
                (i, r)
            });
        }
    }
    let mut won = vec![0; claims.len()];
    while let Some(r) = tasks.join_next().await {
        let (i, r) = r.unwrap();
        match r {
            Ok(()) => {
                assert_ne!(i % 3, 1, "a stale lease settled");
                won[i] += 1;
            }
            Err(StoreError::LeaseLost) => {
                assert!(i % 3 == 1 || i == 0, "settle {i} was lease-lost");
            }
            Err(e) => panic!("settle {i}: {e:?}"),
        }
    }
    for (i, c) in claims.iter().enumerate() {
        let d = store.delivery(&a, &c.delivery.id).await.unwrap().unwrap();
        let attempts = store.attempts(&a, &c.delivery.id).await.unwrap();
        if i % 3 == 1 {
            assert_eq!(won[i], 0);
            assert_eq!((d.status, d.attempts), (DeliveryStatus::Pending, 0));
            assert!(attempts.is_empty());
        } else {
            assert_eq!(won[i], 1, "settle {i} won {} times", won[i]);
            assert_eq!((d.status, d.attempts), (DeliveryStatus::Succeeded, 1));
            assert_eq!(attempts.len(), 1);
        }
    }
}

/// A settle that fails inside a shared script call fails alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_settle_does_not_fail_the_others() {
    let (store, cleanup) = fresh_store(RedisConfig::default()).await;
    let (a, ep) = seed(&store).await;
    let now = Timestamp::now();
    let claims = enqueue_and_claim(&store, &a, &ep, 20, now).await;
    // The attempt list of one delivery is a string: recording its attempt fails.
    let broken = claims[7].delivery.id.clone();
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{}{{q}}:att:{}", cleanup.prefix, broken))
        .arg("not a list")
        .query(&mut conn)
        .unwrap();
    let store = Arc::new(store);
    let mut tasks = tokio::task::JoinSet::new();
    for c in &claims {
        let store = store.clone();
        let lease = c.lease.clone();
        let attempt = attempt_for(c, now);
        tasks.spawn(async move {
            let r = store.settle(&lease, &attempt, Next::Delivered).await;
            (lease.delivery, r)
        });
    }
    while let Some(r) = tasks.join_next().await {
        let (id, r) = r.unwrap();
        if id == broken {
            assert!(matches!(r, Err(StoreError::Backend(_))), "{r:?}");
        } else {
            r.unwrap();
        }
    }
}

/// Concurrent enqueues share script calls, and each event is still answered as if alone:
/// repeats of one event id or one idempotency key get the first one's receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_each_get_their_own_receipt() {
    let (store, _cleanup) = fresh_store(RedisConfig::default()).await;
    let (a, ep) = seed(&store).await;
    let now = Timestamp::now();
    let store = Arc::new(store);
    let same_id = {
        let mut ev = event(&a, now);
        ev.idempotency_key = None;
        ev
    };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..36 {
        let ev = match i % 3 {
            0 => same_id.clone(),
            1 => {
                let mut ev = event(&a, now);
                ev.idempotency_key = Some("same-key".into());
                ev
            }
            _ => {
                let mut ev = event(&a, now);
                ev.idempotency_key = Some(format!("key-{i}"));
                ev
            }
        };
        let store = store.clone();
        let target = ep.id.clone();
        tasks.spawn(async move {
            let r = store
                .enqueue(&ev, std::slice::from_ref(&target), now)
                .await
                .unwrap();
            (i % 3, ev.id, r)
        });
    }
    let mut receipts: [Vec<(EventId, Receipt)>; 3] = Default::default();
    while let Some(r) = tasks.join_next().await {
        let (kind, id, r) = r.unwrap();
        receipts[kind].push((id, r));
    }
    for kind in [0, 1] {
        let rs = &receipts[kind];
        assert_eq!(rs.iter().filter(|(_, r)| !r.duplicate).count(), 1);
        let first = &rs.iter().find(|(_, r)| !r.duplicate).unwrap().1;
        assert_eq!(first.deliveries.len(), 1);
        for (_, r) in rs {
            assert_eq!(
                (&r.event_id, &r.deliveries),
                (&first.event_id, &first.deliveries)
            );
        }
    }
    for (id, r) in &receipts[2] {
        assert!(!r.duplicate);
        assert_eq!((&r.event_id, r.deliveries.len()), (id, 1));
    }
    let claims = store
        .claim_due(now, 100, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claims.len(), 2 + 12);
}

/// Events of one ordering queue enqueued concurrently (sharing script calls) are still claimed
/// one at a time, in delivery id order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_keep_an_ordered_queue_in_order() {
    let (store, _cleanup) = fresh_store(RedisConfig::default()).await;
    let (a, mut ep) = seed(&store).await;
    ep.ordered = true;
    store.update_endpoint(&ep).await.unwrap();
    let now = Timestamp::now();
    let store = Arc::new(store);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let mut ev = event(&a, now);
        ev.idempotency_key = None;
        ev.queue_id = Some("order-1".into());
        let store = store.clone();
        let target = ep.id.clone();
        tasks.spawn(async move {
            store
                .enqueue(&ev, std::slice::from_ref(&target), now)
                .await
                .unwrap()
        });
    }
    let mut ids = Vec::new();
    while let Some(r) = tasks.join_next().await {
        ids.extend(r.unwrap().deliveries);
    }
    ids.sort_by(|x, y| x.as_str().cmp(y.as_str()));
    for id in &ids {
        let claims = store
            .claim_due(now, 100, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(claims.len(), 1, "only the head of the queue is due");
        assert_eq!(&claims[0].delivery.id, id);
        store
            .settle(
                &claims[0].lease,
                &attempt_for(&claims[0], now),
                Next::Delivered,
            )
            .await
            .unwrap();
    }
    assert!(
        store
            .claim_due(now, 100, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
}

/// An event whose index cannot be written fails alone: the other events of its script call are
/// stored and due, and it has no due delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_failing_in_a_shared_call_fails_alone() {
    let (store, cleanup) = fresh_store(RedisConfig::default()).await;
    let (a, ep) = seed(&store).await;
    let b = AccountId::parse("globex").unwrap();
    store
        .create_account(&{
            let mut v = Account::new(b.clone(), "Globex", Timestamp::from_millis(1));
            v.updated_at = Timestamp::from_millis(1);
            v
        })
        .await
        .unwrap();
    let ep_b = endpoint(&b);
    store.create_endpoint(&ep_b).await.unwrap();
    // Account b's event index is a string: storing b's events fails.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{}{{q}}:evs:{}", cleanup.prefix, b))
        .arg("not an index")
        .query(&mut conn)
        .unwrap();
    let now = Timestamp::now();
    let store = Arc::new(store);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..30 {
        let (account, target) = if i % 2 == 0 {
            (a.clone(), ep.id.clone())
        } else {
            (b.clone(), ep_b.id.clone())
        };
        let mut ev = event(&account, now);
        ev.idempotency_key = None;
        let store = store.clone();
        tasks.spawn(async move {
            let r = store.enqueue(&ev, std::slice::from_ref(&target), now).await;
            (i % 2 == 0, r)
        });
    }
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            (true, r) => assert_eq!(r.unwrap().deliveries.len(), 1),
            (false, r) => assert!(matches!(r, Err(StoreError::Backend(_))), "{r:?}"),
        }
    }
    let claims = store
        .claim_due(now, 100, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claims.len(), 15);
    assert!(claims.iter().all(|c| c.delivery.account == a));
}

/// A delivery whose expired lease was set aside by another claim, then settled by its (still
/// current) lease holder, leaves nothing scheduled behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settling_a_set_aside_delivery_unschedules_it() {
    let (store, cleanup) = fresh_store(RedisConfig::default()).await;
    let (a, ep) = seed(&store).await;
    let now = Timestamp::now();
    let mut ev = event(&a, now);
    ev.idempotency_key = None;
    store
        .enqueue(&ev, std::slice::from_ref(&ep.id), now)
        .await
        .unwrap();
    let claims = store
        .claim_due(now, 1, Duration::from_millis(5))
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    // The lease has ended: a claim skipping the endpoint sets the entry aside.
    let later = now.add(Duration::from_secs(1));
    let none = store
        .claim_due_except(
            later,
            10,
            Duration::from_secs(30),
            std::slice::from_ref(&ep.id),
        )
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(
        store.next_due().await.unwrap(),
        Some(now.add(Duration::from_millis(5)))
    );
    let side = format!("{}{{q}}:side:{}", cleanup.prefix, ep.id);
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let aside: usize = redis::cmd("ZCARD").arg(&side).query(&mut conn).unwrap();
    assert_eq!(aside, 1);
    store
        .settle(
            &claims[0].lease,
            &attempt_for(&claims[0], now),
            Next::Delivered,
        )
        .await
        .unwrap();
    let aside: usize = redis::cmd("ZCARD").arg(&side).query(&mut conn).unwrap();
    assert_eq!(aside, 0, "the settled delivery is no longer set aside");
    assert!(
        store
            .claim_due(later, 10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_due().await.unwrap(), None);
}
