//! Enqueue: idempotency by event id and by idempotency key (also under races), atomic writes,
//! unknown targets refused, and payloads kept byte for byte.
//!
//! **Targets must exist.** Every target of an enqueue must be an endpoint of the event's account
//! when the enqueue is stored; otherwise the store refuses the whole enqueue with
//! [`StoreError::NotFound`] and writes nothing (no event, no delivery, no idempotency key), so a
//! delivery never points at a missing endpoint or at another account's, and the caller learns
//! at once that its target list was stale (an endpoint removed between choosing the
//! subscribers and enqueueing: choosing them again and retrying is the remedy). The check is
//! atomic with the write, so a concurrent `remove_endpoint` either sees the new delivery (and
//! cancels it) or makes the enqueue fail. Idempotency comes first: an event id or idempotency
//! key already stored is answered with the original receipt whatever the targets, as a
//! duplicate writes nothing anyway.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::id::{EndpointId, EventId};
use crate::model::{DeliveryFilter, DeliveryStatus, EventFilter, PageRequest};
use crate::store::{Next, Receipt, Store, StoreError};

use super::support::{
    at, claim, claim_one, deliveries_of, delivery, delivery_filter, enqueue, enqueue_concurrently,
    event, events_of, new_account, new_endpoint, raw, set, settle, try_enqueue_concurrently,
};

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

/// After `Ok` the event and all its deliveries are readable (an error writes nothing: see
/// [`enqueue_to_an_unknown_endpoint_writes_nothing`]).
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
}

/// An enqueue with a target that is not an endpoint of the event's account (never created,
/// removed, or another account's) is refused with `NotFound` and writes nothing: no event, no
/// delivery, no idempotency key; the same event enqueued to real endpoints afterwards is new. A
/// duplicate is still answered with the original receipt, whatever its targets.
pub async fn enqueue_to_an_unknown_endpoint_writes_nothing(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let removed = new_endpoint(s, &a, &[], &[]).await;
    assert!(s.remove_endpoint(&a, &removed.id).await.expect("remove"));
    let foreign = new_endpoint(s, &b, &[], &[]).await;

    let mut odd = event(&a, "rx.completed", None, at(2));
    odd.idempotency_key = Some("order-7".into());
    for (ghost, what) in [
        (EndpointId::generate(), "an endpoint that never existed"),
        (removed.id.clone(), "a removed endpoint"),
        (foreign.id.clone(), "another account's endpoint"),
    ] {
        match s.enqueue(&odd, &[ep.id.clone(), ghost], at(2)).await {
            Err(StoreError::NotFound(_)) => {}
            other => panic!("enqueue to {what}: expected NotFound, got {other:?}"),
        }
        assert_eq!(s.event(&a, &odd.id).await.expect("event"), None, "{what}");
        let left = deliveries_of(s, &a, &delivery_filter(Some(&odd.id), None, None)).await;
        assert!(
            left.is_empty(),
            "{what}: a refused enqueue leaves no delivery"
        );
    }

    // Among concurrent enqueues (which a store may write together), exactly those naming an
    // unknown endpoint are refused.
    let jobs = (0..12)
        .map(|i| {
            let target = match i % 3 {
                0 => EndpointId::generate(),
                _ => ep.id.clone(),
            };
            (event(&a, "rx.completed", None, at(1)), target)
        })
        .collect::<Vec<_>>();
    let refused: BTreeSet<EventId> = jobs
        .iter()
        .filter(|(_, t)| *t != ep.id)
        .map(|(ev, _)| ev.id.clone())
        .collect();
    for (id, r) in try_enqueue_concurrently(&store, jobs, at(1)).await {
        if refused.contains(&id) {
            assert!(
                matches!(r, Err(StoreError::NotFound(_))),
                "a concurrent enqueue to an unknown endpoint: expected NotFound, got {r:?}"
            );
            assert_eq!(s.event(&a, &id).await.expect("event"), None);
        } else {
            let r = r.expect("a concurrent enqueue beside refused ones");
            assert!(!r.duplicate);
            assert_eq!((r.event_id, r.deliveries.len()), (id, 1));
        }
    }
    let good = claim(s, at(1), 100).await;
    assert_eq!(
        good.len(),
        8,
        "only the accepted enqueues' deliveries exist"
    );
    for c in &good {
        settle(s, c, at(1), Some(200), Next::Delivered).await;
    }
    assert_eq!(events_of(s, &a, &EventFilter::default()).await.len(), 8);
    let stored = deliveries_of(s, &a, &DeliveryFilter::default()).await;
    assert!(stored.iter().all(|d| d.endpoint_id == ep.id));

    assert!(
        deliveries_of(s, &b, &DeliveryFilter::default())
            .await
            .is_empty()
    );
    assert_eq!(
        s.next_due().await.expect("next_due"),
        None,
        "nothing is due"
    );

    // Nothing was reserved: the same event (id and idempotency key) is new afterwards.
    let r = enqueue(s, &odd, &[&ep], at(3)).await;
    assert_eq!(r.event_id, odd.id);
    let c = claim_one(s, at(3)).await;
    assert_eq!(c.event.id, odd.id);
    assert_eq!(c.delivery.id, r.deliveries[0]);
    assert_eq!(c.endpoint.id, ep.id);

    // A duplicate writes nothing whatever its targets, so it is answered as a duplicate.
    let again = s
        .enqueue(&odd, &[EndpointId::generate()], at(4))
        .await
        .expect("re-enqueue of a stored event");
    assert!(again.duplicate);
    assert_eq!(
        (again.event_id, again.deliveries),
        (odd.id.clone(), r.deliveries)
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

/// `replace_event_data` changes only the data of the account's event: reads (claims too) see
/// the new bytes, deliveries stay, another account's event of that id is not found.
pub async fn replace_event_data_changes_only_the_data(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let other = new_account(s, "other").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let ev = event(&a, "rx.completed", Some("store-1"), at(0));
    let r = enqueue(s, &ev, &[&ep], at(0)).await;

    let text = "{ \"replaced\" : [1, 2] }";
    assert!(
        !s.replace_event_data(&other, &ev.id, &raw(text))
            .await
            .expect("replace_event_data"),
        "another account's event is not found"
    );
    assert!(
        !s.replace_event_data(&a, &EventId::generate(), &raw(text))
            .await
            .expect("replace_event_data"),
        "a missing event is not found"
    );
    assert!(
        s.replace_event_data(&a, &ev.id, &raw(text))
            .await
            .expect("replace_event_data")
    );
    let got = s.event(&a, &ev.id).await.expect("event").expect("stored");
    assert_eq!(got.data.get(), text);
    let mut expected = ev.clone();
    expected.data = raw(text);
    assert_eq!(got, expected, "everything but the data is unchanged");
    let c = claim_one(s, at(0)).await;
    assert_eq!(c.event.data.get(), text, "a claim reads the new data");
    assert_eq!(vec![c.delivery.id], r.deliveries);
}

/// An event is found by its account and idempotency key, as stored (site, queue id, data byte for
/// byte), until the retention purge removes it and frees the key.
pub async fn events_are_found_by_idempotency_key_until_purged(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;

    let mut ev = event(&a, "rx.completed", None, at(0));
    ev.idempotency_key = Some("order-42".into());
    ev.queue_id = Some("q_8842".into());
    ev.data = raw(r#"{"b": 2,"a":[1, 2]}"#);
    enqueue(s, &ev, &[&ep], at(0)).await;
    let found = s
        .event_by_idempotency_key(&a, "order-42")
        .await
        .expect("lookup");
    assert_eq!(found.as_ref(), Some(&ev), "the event as stored");
    assert_eq!(
        found.map(|e| e.data.get().to_owned()).as_deref(),
        Some(r#"{"b": 2,"a":[1, 2]}"#)
    );
    assert_eq!(
        s.event_by_idempotency_key(&b, "order-42")
            .await
            .expect("lookup"),
        None,
        "keys are per account"
    );
    assert_eq!(
        s.event_by_idempotency_key(&a, "order-43")
            .await
            .expect("lookup"),
        None
    );
    let unkeyed = event(&a, "rx.completed", None, at(1));
    enqueue(s, &unkeyed, &[&ep], at(1)).await;
    assert_eq!(
        s.event_by_idempotency_key(&a, "").await.expect("lookup"),
        None,
        "an event without a key is not found by the empty key"
    );

    // The retention purge frees the key: the same key is a new event afterwards.
    while s.purge(at(10), 100).await.expect("purge") > 0 {}
    assert_eq!(
        s.event_by_idempotency_key(&a, "order-42")
            .await
            .expect("lookup"),
        None,
        "the key went with its event"
    );
    let mut again = event(&a, "rx.failed", None, at(20));
    again.idempotency_key = Some("order-42".into());
    let r = enqueue(s, &again, &[&ep], at(20)).await;
    assert!(!r.duplicate);
    assert_eq!(r.event_id, again.id);
    assert_eq!(
        s.event_by_idempotency_key(&a, "order-42")
            .await
            .expect("lookup")
            .map(|e| e.id),
        Some(again.id)
    );
}
