//! Settling a claim: stale leases, retries, terminal failures, attempt history and deferral.

use std::sync::Arc;

use crate::id::DeliveryId;
use crate::model::{DeliveryStatus, Trigger};
use crate::store::{Next, Store};

use super::support::{
    LEASE, assert_lease_lost, at, attempt_for, claim, claim_one, deliveries_of, delivery,
    delivery_filter, enqueue_new, ids, new_account, new_endpoint, settle, try_settle,
};

/// A settle with a lease that was re-claimed (or already used) is `LeaseLost` and changes nothing.
pub async fn settle_with_stale_lease_is_lease_lost(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let (_, d) = enqueue_new(s, &a, &[&ep], at(0)).await;
    let old = claim_one(s, at(0)).await;
    let new = claim_one(s, at(0).add(LEASE)).await;

    assert_lease_lost(
        try_settle(s, &old, at(1), Some(200), Next::Delivered).await,
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
        try_settle(s, &old, at(3), None, Next::RetryAt(at(60_000))).await,
        "a late report after success",
    );
    assert_lease_lost(
        try_settle(s, &new, at(4), None, Next::Exhausted).await,
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
        try_settle(s, &c, at(2), Some(200), Next::Delivered).await,
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
