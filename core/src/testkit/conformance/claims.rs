//! Claims and leases: due order, disabled endpoints, disjoint concurrent claims, expired
//! leases, skipped endpoints and the next due time.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::id::DeliveryId;
use crate::model::{DeliveryStatus, Endpoint, Trigger};
use crate::store::{Next, Store};

use super::support::{
    LEASE, at, claim, claim_one, delivery, endpoint, enqueue_new, ids, new_account, new_endpoint,
    settle,
};

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
