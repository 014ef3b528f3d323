//! Retention: purging old events with their deliveries and attempts.

use std::sync::Arc;

use crate::model::DeliveryStatus;
use crate::store::{Next, Store};

use super::support::{
    at, claim, claim_one, delivery, enqueue_new, ids, new_account, new_endpoint, settle,
};

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
