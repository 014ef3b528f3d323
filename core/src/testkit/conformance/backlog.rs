//! The backlog: how many deliveries are pending, and the earliest due among the claimable ones.

use std::sync::Arc;

use crate::store::{Backlog, Next, Store};

use super::support::{
    at, claim, endpoint, enqueue, enqueue_new, event, new_account, new_endpoint, settle,
};

/// `backlog` counts every pending delivery (leased, waiting behind an ordered head, of a disabled
/// endpoint), not finished, cancelled or purged ones; its `oldest_due` is what `next_due` says.
pub async fn backlog_counts_pending_deliveries(store: Arc<dyn Store>) {
    let s = &*store;
    let backlog = || async { s.backlog().await.expect("backlog") };
    assert_eq!(backlog().await, Backlog::new(0, None), "empty store");

    let a = new_account(s, "acme").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let other = new_endpoint(s, &a, &[], &[]).await;
    enqueue_new(s, &a, &[&ep, &other], at(1_000)).await;
    enqueue_new(s, &a, &[&ep], at(2_000)).await;
    assert_eq!(backlog().await, Backlog::new(3, Some(at(1_000))));

    // An ordered endpoint: the second delivery of the queue id waits behind the first.
    let mut ordered = endpoint(&a, &[], &[]);
    ordered.ordered = true;
    s.create_endpoint(&ordered).await.expect("create_endpoint");
    for t in [3_000, 4_000] {
        let mut ev = event(&a, "rx.completed", None, at(t));
        ev.queue_id = Some("q_1".into());
        enqueue(s, &ev, &[&ordered], at(t)).await;
    }
    // A disabled endpoint's delivery is pending, but no claim returns it.
    let mut off = endpoint(&a, &[], &[]);
    off.enabled = false;
    s.create_endpoint(&off).await.expect("create_endpoint");
    enqueue_new(s, &a, &[&off], at(500)).await;
    assert_eq!(backlog().await, Backlog::new(6, Some(at(1_000))));

    // Leased deliveries are still pending; the earliest claimable one is the ordered head.
    let claimed = claim(s, at(2_500), 10).await;
    assert_eq!(claimed.len(), 3, "the three due by then");
    assert_eq!(backlog().await, Backlog::new(6, Some(at(3_000))));

    let nexts = [Next::Delivered, Next::Exhausted, Next::RetryAt(at(100_000))];
    let mut exhausted = None;
    for (c, next) in claimed.iter().zip(nexts) {
        settle(s, c, at(2_600), Some(500), next).await;
        if next == Next::Exhausted {
            exhausted = Some(c.delivery.id.clone());
        }
    }
    assert_eq!(
        backlog().await,
        Backlog::new(4, Some(at(3_000))),
        "delivered and exhausted ones are no longer pending"
    );

    let retried = exhausted.expect("one was exhausted");
    s.retry_delivery(&a, &retried, at(2_700))
        .await
        .expect("retry_delivery");
    assert_eq!(
        backlog().await,
        Backlog::new(5, Some(at(2_700))),
        "a manual retry makes a failed delivery pending again"
    );

    assert!(s.remove_endpoint(&a, &ordered.id).await.expect("remove"));
    assert_eq!(
        backlog().await,
        Backlog::new(3, Some(at(2_700))),
        "removing an endpoint cancels its pending deliveries"
    );

    let purged = s.purge(at(10_000), 100).await.expect("purge");
    assert_eq!(purged, 5, "every event fired before the cut-off");
    assert_eq!(
        backlog().await,
        Backlog::new(0, None),
        "purged ones are gone"
    );
}
