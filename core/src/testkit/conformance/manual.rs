//! Manual sends: a manual enqueue (a test event), retrying a delivery and recovering failed ones.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::JoinSet;

use crate::id::DeliveryId;
use crate::model::{DeliveryStatus, Trigger};
use crate::store::{Next, Store, StoreError};

use super::support::{
    LEASE, assert_lease_lost, at, attempt_for, claim, claim_one, delivery, enqueue_new, event,
    new_account, new_endpoint, settle, try_settle,
};

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
        try_settle(s, &leased, at(6_600), Some(200), Next::Delivered).await,
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

/// A manual enqueue (a test event) is written in one operation: claims racing it from several
/// tasks take each of its deliveries exactly once, as a manual first attempt, and the attempt
/// is recorded as manual.
pub async fn manual_enqueue_is_claimed_once_with_trigger_manual(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let eps = [
        new_endpoint(s, &a, &[], &[]).await,
        new_endpoint(s, &a, &[], &[]).await,
    ];
    let targets: Vec<_> = eps.iter().map(|e| e.id.clone()).collect();
    for round in 0..4 {
        let now = at(round * 1_000);
        let enqueued = Arc::new(AtomicBool::new(false));
        let mut claimers = JoinSet::new();
        for _ in 0..4 {
            let (store, enqueued) = (store.clone(), enqueued.clone());
            claimers.spawn(async move {
                let mut got = Vec::new();
                loop {
                    // Read before claiming: the last claim starts after the enqueue returned.
                    let last = enqueued.load(Ordering::SeqCst);
                    got.extend(store.claim_due(now, 10, LEASE).await.expect("claim_due"));
                    if last {
                        return got;
                    }
                    tokio::task::yield_now().await;
                }
            });
        }
        tokio::task::yield_now().await;
        let ev = event(&a, "rx.completed", None, now);
        let r = s
            .enqueue_with(&ev, &targets, now, Trigger::Manual)
            .await
            .expect("enqueue_with");
        enqueued.store(true, Ordering::SeqCst);
        assert!(!r.duplicate);

        let mut claims = BTreeMap::new();
        while let Some(got) = claimers.join_next().await {
            for c in got.expect("claim task") {
                let id = c.delivery.id.clone();
                assert!(
                    claims.insert(id.clone(), c).is_none(),
                    "round {round}: delivery {id} was claimed twice"
                );
            }
        }
        let claimed: Vec<DeliveryId> = claims.keys().cloned().collect();
        let mut want = r.deliveries.clone();
        want.sort();
        assert_eq!(claimed, want, "round {round}: each delivery claimed once");
        for c in claims.values() {
            assert_eq!(
                c.trigger,
                Trigger::Manual,
                "round {round}: claimed as manual"
            );
            assert_eq!(c.attempt_number, 1);
            assert_eq!(c.event.id, ev.id);
            settle(s, c, now, Some(200), Next::Delivered).await;
            let history = s.attempts(&a, &c.delivery.id).await.expect("attempts");
            assert_eq!(
                history.iter().map(|x| x.trigger).collect::<Vec<_>>(),
                vec![Trigger::Manual],
                "round {round}: the attempt is recorded as manual"
            );
            assert_eq!(
                delivery(s, &a, &c.delivery.id).await.status,
                DeliveryStatus::Succeeded
            );
        }
    }
    assert!(
        claim(s, at(1_000_000), 10).await.is_empty(),
        "nothing is left"
    );
}
