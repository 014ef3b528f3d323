//! Batches: [`QueueStore::enqueue_batch`](crate::store::QueueStore::enqueue_batch) stores every
//! event of a batch with its deliveries, or nothing of it.
//!
//! **All or nothing.** A batch is answered as its events enqueued one after the other would be
//! (one receipt per event, in order; duplicates of stored events, and of earlier events of the
//! same batch, by id or idempotency key, answered with the original's receipt), but written in
//! one atomic step: if one new event names a target that is not an endpoint of its account, the
//! store refuses the whole batch with [`StoreError::NotFound`] and writes nothing of it.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::id::{AccountId, EndpointId, EventId};
use crate::model::{DeliveryFilter, DeliveryStatus, Endpoint, Event, EventFilter, Trigger};
use crate::store::{Receipt, Store, StoreError};

use super::support::{
    at, claim, deliveries_of, delivery, delivery_filter, enqueue, event, events_of, new_account,
    new_endpoint, set,
};

fn targets(eps: &[&Endpoint]) -> Vec<EndpointId> {
    eps.iter().map(|e| e.id.clone()).collect()
}

fn keyed(account: &AccountId, key: &str, fired: i64) -> Event {
    let mut ev = event(account, "rx.completed", None, at(fired));
    ev.idempotency_key = Some(key.to_owned());
    ev
}

/// A batch is stored whole: one receipt per event, in order, every event readable with one
/// pending delivery per target of its own, due at `now` and claimable.
pub async fn enqueue_batch_stores_every_event_with_its_deliveries(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let e1 = new_endpoint(s, &a, &[], &[]).await;
    let e2 = new_endpoint(s, &a, &[], &[]).await;
    let e3 = new_endpoint(s, &a, &[], &[]).await;
    let mut first = event(&a, "rx.completed", Some("store-1"), at(-5));
    first.queue_id = Some("q_1".into());
    let items = vec![
        (first, targets(&[&e1, &e2, &e3])),
        (event(&a, "rx.failed", None, at(-4)), targets(&[&e2])),
        (event(&a, "rx.completed", None, at(-3)), Vec::new()),
        (keyed(&a, "order-1", -2), targets(&[&e3, &e1])),
    ];
    let receipts = s
        .enqueue_batch(&items, at(0), Trigger::Scheduled)
        .await
        .expect("enqueue_batch");
    assert_eq!(receipts.len(), items.len(), "one receipt per event");
    let mut all = Vec::new();
    for ((ev, to), r) in items.iter().zip(&receipts) {
        assert_eq!(r.event_id, ev.id, "receipts come in the batch's order");
        assert!(!r.duplicate);
        assert_eq!(r.deliveries.len(), to.len());
        assert_eq!(s.event(&a, &ev.id).await.expect("event"), Some(ev.clone()));
        let mut reached = Vec::new();
        for id in &r.deliveries {
            let d = delivery(s, &a, id).await;
            assert_eq!(
                (&d.event_id, d.status, d.attempts, d.next_attempt_at),
                (&ev.id, DeliveryStatus::Pending, 0, Some(at(0)))
            );
            reached.push(d.endpoint_id);
        }
        assert_eq!(set(&reached), set(to), "one delivery per target of its own");
        let listed = deliveries_of(s, &a, &delivery_filter(Some(&ev.id), None, None)).await;
        assert_eq!(listed.len(), to.len());
        all.extend(r.deliveries.iter().cloned());
    }
    assert_eq!(events_of(s, &a, &EventFilter::default()).await.len(), 4);
    let claimed = claim(s, at(0), 100).await;
    assert_eq!(
        set(&claimed
            .iter()
            .map(|c| c.delivery.id.clone())
            .collect::<Vec<_>>()),
        set(&all),
        "every delivery of the batch is due"
    );

    // A manual first attempt is kept for every delivery of a batch.
    let manual = vec![(event(&a, "rx.completed", None, at(1)), targets(&[&e1]))];
    let r = s
        .enqueue_batch(&manual, at(1), Trigger::Manual)
        .await
        .expect("enqueue_batch (manual)");
    let c = claim(s, at(1), 10).await;
    assert_eq!(c.len(), 1);
    assert_eq!(
        (&c[0].delivery.id, c[0].trigger),
        (&r[0].deliveries[0], Trigger::Manual)
    );
}

/// One new event naming a target that is not an endpoint of its account (never created,
/// removed, another account's) refuses the whole batch with `NotFound`, wherever it is in the
/// batch: no event, no delivery, no idempotency key of any item is written. A duplicate's
/// targets do not count.
pub async fn enqueue_batch_with_an_unknown_target_writes_nothing(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let other = new_endpoint(s, &a, &[], &[]).await;
    let removed = new_endpoint(s, &a, &[], &[]).await;
    assert!(s.remove_endpoint(&a, &removed.id).await.expect("remove"));
    let foreign = new_endpoint(s, &b, &[], &[]).await;

    let batch = |ghost: EndpointId, at_index: i64| {
        (0..5)
            .map(|i| {
                let ev = keyed(&a, &format!("order-{i}"), i);
                let mut to = targets(&[&ep, &other]);
                if i == at_index {
                    to.insert(1, ghost.clone());
                }
                (ev, to)
            })
            .collect::<Vec<_>>()
    };
    for (ghost, what) in [
        (EndpointId::generate(), "an endpoint that never existed"),
        (removed.id.clone(), "a removed endpoint"),
        (foreign.id.clone(), "another account's endpoint"),
    ] {
        for at_index in [0, 2, 4] {
            let items = batch(ghost.clone(), at_index);
            match s.enqueue_batch(&items, at(10), Trigger::Scheduled).await {
                Err(StoreError::NotFound(_)) => {}
                other => panic!("a batch naming {what} at item {at_index}: got {other:?}"),
            }
            for (ev, _) in &items {
                assert_eq!(
                    s.event(&a, &ev.id).await.expect("event"),
                    None,
                    "{what} at item {at_index}: no event of the batch is stored"
                );
            }
            assert!(
                deliveries_of(s, &a, &DeliveryFilter::default())
                    .await
                    .is_empty(),
                "{what} at item {at_index}: no delivery is stored"
            );
        }
    }
    assert!(events_of(s, &a, &EventFilter::default()).await.is_empty());
    assert!(
        deliveries_of(s, &b, &DeliveryFilter::default())
            .await
            .is_empty()
    );
    assert_eq!(s.next_due().await.expect("next_due"), None);

    // Nothing was reserved: the same events (ids and keys) are new afterwards.
    let mut items = batch(EndpointId::generate(), 9);
    let receipts = s
        .enqueue_batch(&items, at(20), Trigger::Scheduled)
        .await
        .expect("the batch with known targets");
    for ((ev, _), r) in items.iter().zip(&receipts) {
        assert_eq!(
            (&r.event_id, r.duplicate, r.deliveries.len()),
            (&ev.id, false, 2)
        );
    }
    // Duplicates are answered whatever their targets: a stored event (by id, by key) and an
    // earlier event of the batch naming an unknown endpoint do not refuse the batch.
    items[0].1.push(EndpointId::generate());
    items[1].0 = keyed(&a, "order-1", 1);
    items[1].1 = vec![foreign.id.clone()];
    let fresh = keyed(&a, "order-new", 30);
    let mut copy = fresh.clone();
    copy.idempotency_key = None;
    items.push((fresh.clone(), targets(&[&ep])));
    items.push((copy, vec![removed.id.clone()]));
    let again = s
        .enqueue_batch(&items, at(30), Trigger::Scheduled)
        .await
        .expect("a batch whose unknown targets are all on duplicates");
    for (r, first) in again.iter().zip(&receipts) {
        assert!(r.duplicate);
        assert_eq!(
            (&r.event_id, set(&r.deliveries)),
            (&first.event_id, set(&first.deliveries))
        );
    }
    assert!(!again[5].duplicate);
    assert!(
        again[6].duplicate,
        "the same id as an earlier event of the batch"
    );
    assert_eq!(again[6].event_id, fresh.id);
    assert_eq!(set(&again[6].deliveries), set(&again[5].deliveries));
    assert_eq!(events_of(s, &a, &EventFilter::default()).await.len(), 6);
}

/// Duplicates inside a batch and across batches: an event with the id or idempotency key of a
/// stored event, or of an earlier event of the same batch, writes nothing and gets the
/// original's receipt; a key is per account. Sending a batch again stores nothing new.
pub async fn enqueue_batch_answers_duplicates_inside_and_across_batches(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let ep2 = new_endpoint(s, &a, &[], &[]).await;
    let ep_b = new_endpoint(s, &b, &[], &[]).await;
    let stored = keyed(&a, "order-1", 0);
    let original = enqueue(s, &stored, &[&ep, &ep2], at(0)).await;

    let new_one = keyed(&a, "order-2", 1);
    let mut same_key = keyed(&a, "order-2", 2);
    same_key.data = super::support::raw(r#"{"other":true}"#);
    let mut same_id = event(&a, "rx.failed", None, at(3));
    same_id.id = new_one.id.clone();
    let plain = event(&a, "rx.completed", None, at(4));
    let other_account = keyed(&b, "order-1", 5);
    let items = vec![
        (new_one.clone(), targets(&[&ep])),
        (keyed(&a, "order-1", 6), targets(&[&ep])),
        (same_key.clone(), targets(&[&ep, &ep2])),
        (same_id, targets(&[&ep2])),
        (plain.clone(), targets(&[&ep2])),
        (other_account.clone(), vec![ep_b.id.clone()]),
    ];
    let r = s
        .enqueue_batch(&items, at(10), Trigger::Scheduled)
        .await
        .expect("enqueue_batch");
    assert_eq!(r.len(), 6);
    let check = |r: &Receipt, id: &EventId, dup: bool, n: usize, what: &str| {
        assert_eq!(
            (&r.event_id, r.duplicate, r.deliveries.len()),
            (id, dup, n),
            "{what}"
        );
    };
    check(&r[0], &new_one.id, false, 1, "a new event");
    check(&r[1], &stored.id, true, 2, "the key of a stored event");
    assert_eq!(set(&r[1].deliveries), set(&original.deliveries));
    check(
        &r[2],
        &new_one.id,
        true,
        1,
        "the key of an earlier event of the batch",
    );
    assert_eq!(r[2].deliveries, r[0].deliveries);
    check(
        &r[3],
        &new_one.id,
        true,
        1,
        "the id of an earlier event of the batch",
    );
    assert_eq!(r[3].deliveries, r[0].deliveries);
    check(&r[4], &plain.id, false, 1, "an event without a key");
    check(
        &r[5],
        &other_account.id,
        false,
        1,
        "the key in another account",
    );
    assert_eq!(
        s.event(&a, &new_one.id).await.expect("event"),
        Some(new_one.clone()),
        "the first event of a key is the one stored"
    );
    assert_eq!(s.event(&a, &same_key.id).await.expect("event"), None);
    assert_eq!(events_of(s, &a, &EventFilter::default()).await.len(), 3);
    assert_eq!(
        deliveries_of(s, &a, &DeliveryFilter::default()).await.len(),
        4
    );

    // The same batch again: every event is a duplicate of what the first one stored.
    let again = s
        .enqueue_batch(&items, at(20), Trigger::Scheduled)
        .await
        .expect("enqueue_batch again");
    for (i, (x, y)) in again.iter().zip(&r).enumerate() {
        assert!(x.duplicate, "item {i} of a repeated batch is a duplicate");
        assert_eq!(
            (&x.event_id, set(&x.deliveries)),
            (&y.event_id, set(&y.deliveries)),
            "item {i}"
        );
    }
    assert_eq!(events_of(s, &a, &EventFilter::default()).await.len(), 3);
    assert_eq!(
        deliveries_of(s, &a, &DeliveryFilter::default()).await.len(),
        4
    );
    assert_eq!(events_of(s, &b, &EventFilter::default()).await.len(), 1);
}

/// Batches racing single enqueues (and each other) with the same idempotency keys: each key is
/// stored exactly once, and every caller gets the one winner's receipt.
pub async fn enqueue_batch_racing_single_enqueues_stores_each_key_once(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let ep2 = new_endpoint(s, &a, &[], &[]).await;
    const KEYS: usize = 8;
    let to = targets(&[&ep, &ep2]);
    let mut tasks: JoinSet<Vec<(EventId, String, Receipt)>> = JoinSet::new();
    for round in 0..4 {
        // A batch of every key (in an order of its own), and single enqueues of every key.
        let (store_b, to_b, acct) = (store.clone(), to.clone(), a.clone());
        tasks.spawn(async move {
            let mut keys: Vec<usize> = (0..KEYS).collect();
            keys.rotate_left(round * 3 % KEYS);
            if round % 2 == 1 {
                keys.reverse();
            }
            let items: Vec<(Event, Vec<EndpointId>)> = keys
                .iter()
                .map(|k| {
                    let ev = keyed(&acct, &format!("race-{k}"), 0);
                    (ev, to_b.clone())
                })
                .collect();
            let receipts = store_b
                .enqueue_batch(&items, at(0), Trigger::Scheduled)
                .await
                .expect("a racing batch");
            assert_eq!(receipts.len(), items.len());
            items
                .into_iter()
                .zip(receipts)
                .map(|((ev, _), r)| (ev.id, ev.idempotency_key.unwrap_or_default(), r))
                .collect()
        });
        for k in 0..KEYS {
            let (store_s, to_s, acct) = (store.clone(), to.clone(), a.clone());
            tasks.spawn(async move {
                let ev = keyed(&acct, &format!("race-{k}"), 0);
                let r = store_s
                    .enqueue(&ev, &to_s, at(0))
                    .await
                    .expect("a racing enqueue");
                vec![(ev.id, ev.idempotency_key.unwrap_or_default(), r)]
            });
        }
    }
    let mut by_key: BTreeMap<String, Vec<(EventId, Receipt)>> = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        for (id, key, r) in done.expect("racing task") {
            by_key.entry(key).or_default().push((id, r));
        }
    }
    assert_eq!(by_key.len(), KEYS);
    for (key, answers) in &by_key {
        assert_eq!(answers.len(), 8, "{key}: 4 batches and 4 single enqueues");
        let winners: Vec<&(EventId, Receipt)> =
            answers.iter().filter(|(_, r)| !r.duplicate).collect();
        assert_eq!(winners.len(), 1, "{key}: exactly one caller stores it");
        let (winner, first) = winners[0];
        assert_eq!(&first.event_id, winner);
        for (id, r) in answers {
            assert_eq!(
                &r.event_id, winner,
                "{key}: every caller gets the winner's id"
            );
            assert_eq!(set(&r.deliveries), set(&first.deliveries), "{key}");
            if id != winner {
                assert_eq!(s.event(&a, id).await.expect("event"), None, "{key}");
            }
        }
        let ds = deliveries_of(s, &a, &delivery_filter(Some(winner), None, None)).await;
        assert_eq!(ds.len(), 2, "{key}: the winner's deliveries only");
    }
    assert_eq!(events_of(s, &a, &EventFilter::default()).await.len(), KEYS);
    assert_eq!(
        deliveries_of(s, &a, &DeliveryFilter::default()).await.len(),
        2 * KEYS
    );
}

/// A caller that goes away while its batch is being written (its future dropped at various
/// points) leaves the batch stored whole or not at all: at once, and for good (sending it again
/// is answered either as all duplicates or as all new, and then it is all there).
pub async fn enqueue_batch_dropped_midway_is_stored_whole_or_not_at_all(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let mut eps = Vec::new();
    for _ in 0..40 {
        eps.push(new_endpoint(s, &a, &[], &[]).await);
    }
    let to = targets(&eps.iter().collect::<Vec<_>>());
    const EVENTS: usize = 50;
    for (round, patience_us) in [0u64, 200, 1_000, 5_000, 20_000, 100_000]
        .into_iter()
        .enumerate()
    {
        let items: Vec<(Event, Vec<EndpointId>)> = (0..EVENTS)
            .map(|i| {
                let mut ev = keyed(&a, &format!("drop-{round}-{i}"), 0);
                ev.queue_id = Some(format!("drop-{round}"));
                (ev, to.clone())
            })
            .collect();
        let patience = std::time::Duration::from_micros(patience_us);
        let _ = tokio::time::timeout(patience, s.enqueue_batch(&items, at(0), Trigger::Scheduled))
            .await;
        let filter = EventFilter {
            queue_id: Some(format!("drop-{round}")),
            ..EventFilter::default()
        };
        let n = events_of(s, &a, &filter).await.len();
        assert!(
            n == 0 || n == EVENTS,
            "dropped after {patience:?}: {n} of {EVENTS} events stored"
        );
        let again = s
            .enqueue_batch(&items, at(1), Trigger::Scheduled)
            .await
            .expect("the batch sent again");
        let duplicates = again.iter().filter(|r| r.duplicate).count();
        assert!(
            duplicates == 0 || duplicates == EVENTS,
            "dropped after {patience:?}: {duplicates} of {EVENTS} events had been stored"
        );
        for r in &again {
            assert_eq!(
                r.deliveries.len(),
                eps.len(),
                "every delivery of every event"
            );
        }
        assert_eq!(events_of(s, &a, &filter).await.len(), EVENTS);
    }
}
