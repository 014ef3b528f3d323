//! Manual sends: retrying a delivery and recovering failed ones.

use std::sync::Arc;

use crate::id::DeliveryId;
use crate::model::{DeliveryStatus, Trigger};
use crate::store::{Next, Store, StoreError};

use super::support::{
    assert_lease_lost, at, attempt_for, claim, claim_one, delivery, enqueue_new, new_account,
    new_endpoint, settle, try_settle,
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
