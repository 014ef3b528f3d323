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

/// `add_hourly` adds to an endpoint's counters of an hour (creating them), duplicates in one call
/// included; `hourly` reads an endpoint's hours from `since`, oldest first, and no other
/// endpoint's.
pub async fn hourly_counters_add_up(store: Arc<dyn Store>) {
    use crate::model::HourlyStats;
    let s = &*store;
    let a = new_account(s, "acme").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let other = new_endpoint(s, &a, &[], &[]).await;
    let hour = 3_600_000;
    assert!(s.hourly(&ep.id, at(0)).await.expect("hourly").is_empty());

    let mut first = HourlyStats::new(ep.id.clone(), at(5 * hour + 10));
    first.record(true, 8);
    first.record(false, 700);
    let mut again = HourlyStats::new(ep.id.clone(), at(5 * hour + 20));
    again.record(true, 40);
    let mut later = HourlyStats::new(ep.id.clone(), at(7 * hour));
    later.record(true, 40_000);
    let mut theirs = HourlyStats::new(other.id.clone(), at(5 * hour));
    theirs.record(false, 1);
    s.add_hourly(&[first.clone(), again.clone(), theirs])
        .await
        .expect("add_hourly");
    s.add_hourly(&[later.clone(), first.clone()])
        .await
        .expect("add_hourly");
    s.add_hourly(&[]).await.expect("add_hourly of nothing");

    let got = s.hourly(&ep.id, at(0)).await.expect("hourly");
    assert_eq!(got.len(), 2, "{got:?}");
    let mut five = HourlyStats::new(ep.id.clone(), at(5 * hour));
    five.merge(&first);
    five.merge(&again);
    five.merge(&first);
    assert_eq!(got[0], five);
    assert_eq!((got[0].delivered, got[0].failed), (3, 2));
    assert_eq!(got[1].hour, at(7 * hour));
    assert_eq!(got[1].latency, later.latency);
    assert_eq!(
        s.hourly(&ep.id, at(6 * hour)).await.expect("hourly"),
        vec![got[1].clone()],
        "from `since` on"
    );
    let theirs = s.hourly(&other.id, at(0)).await.expect("hourly");
    assert_eq!(
        (theirs.len(), theirs[0].failed, theirs[0].delivered),
        (1, 1, 0)
    );
}
