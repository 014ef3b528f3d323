//! Endpoint limits and holds: `maxConcurrency`, `rateLimit` and `hold_endpoint`.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::model::Endpoint;
use crate::store::{Claimed, Next, Store};
use crate::time::Timestamp;

use super::support::{LEASE, at, claim, endpoint, enqueue_new, new_account, new_endpoint, settle};

/// How many of `claims` go to `ep`.
fn count_for(claims: &[Claimed], ep: &Endpoint) -> usize {
    claims.iter().filter(|c| c.endpoint.id == ep.id).count()
}

/// An endpoint with `maxConcurrency` never has more live leases than that: settling, deferring
/// or the end of a lease frees a slot; endpoints without limits are claimed beside it.
pub async fn max_concurrency_bounds_live_leases(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let mut narrow = endpoint(&a, &[], &[]);
    narrow.max_concurrency = Some(2);
    s.create_endpoint(&narrow).await.expect("create_endpoint");
    let free = new_endpoint(s, &a, &[], &[]).await;
    for i in 0..5 {
        enqueue_new(s, &a, &[&narrow, &free], at(i)).await;
    }
    let first = claim(s, at(10), 100).await;
    assert_eq!(count_for(&first, &free), 5, "no limit: everything due");
    assert_eq!(count_for(&first, &narrow), 2, "maxConcurrency 2");
    assert!(
        first.iter().all(|c| c.not_before.is_none()),
        "no rate limit, no send time"
    );
    assert!(
        claim(s, at(11), 100).await.is_empty(),
        "both slots are taken"
    );

    let mine: Vec<&Claimed> = first
        .iter()
        .filter(|c| c.endpoint.id == narrow.id)
        .collect();
    settle(s, mine[0], at(12), Some(200), Next::Delivered).await;
    let next = claim(s, at(13), 100).await;
    assert_eq!(
        count_for(&next, &narrow),
        1,
        "a settled attempt frees its slot"
    );
    assert!(claim(s, at(14), 100).await.is_empty());
    s.defer(&mine[1].lease, at(15)).await.expect("defer");
    let after_defer = claim(s, at(15), 100).await;
    assert_eq!(
        count_for(&after_defer, &narrow),
        1,
        "a deferred claim frees its slot"
    );
    assert!(claim(s, at(16), 100).await.is_empty());

    // Every lease has ended: the limit still holds for the next claim.
    let late = at(16).add(LEASE).add(Duration::from_secs(1));
    let again = claim(s, late, 100).await;
    assert_eq!(
        count_for(&again, &narrow),
        2,
        "expired leases free their slots, up to the limit"
    );
    assert_eq!(count_for(&again, &free), 5);
}

/// Claims racing from many workers (as from many processes) never exceed `maxConcurrency`
/// together.
pub async fn concurrent_claims_respect_max_concurrency(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let mut narrow = endpoint(&a, &[], &[]);
    narrow.max_concurrency = Some(3);
    s.create_endpoint(&narrow).await.expect("create_endpoint");
    for i in 0..12 {
        enqueue_new(s, &a, &[&narrow], at(i)).await;
    }
    let mut set = JoinSet::new();
    for _ in 0..8 {
        let st = store.clone();
        set.spawn(async move { st.claim_due(at(20), 2, LEASE).await.expect("claim_due") });
    }
    let mut total = 0;
    while let Some(got) = set.join_next().await {
        total += got.expect("claim task").len();
    }
    assert!(
        (2..=3).contains(&total),
        "eight racing claims took {total} leases; the limit is 3"
    );
    // A claimer may pass over an endpoint another one holds; once they are done, the rest of
    // the room is taken, and no more.
    total += claim(s, at(21), 10).await.len();
    assert_eq!(total, 3, "the limit is 3");
}

/// An endpoint with `rateLimit` r gets send times at least 1/r s apart across claims, none
/// beyond the rate horizon of the claim that reserved it.
pub async fn rate_limit_reserves_spaced_send_times(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let mut slow = endpoint(&a, &[], &[]);
    slow.rate_limit = Some(4);
    s.create_endpoint(&slow).await.expect("create_endpoint");
    let free = new_endpoint(s, &a, &[], &[]).await;
    for i in 0..12 {
        enqueue_new(s, &a, &[&slow, &free], at(i)).await;
    }
    let horizon = crate::store::RATE_HORIZON;
    let now = at(100);
    let first = claim(s, now, 100).await;
    assert_eq!(count_for(&first, &free), 12);
    assert!(
        first
            .iter()
            .filter(|c| c.endpoint.id == free.id)
            .all(|c| c.not_before.is_none())
    );
    let mut times: Vec<Timestamp> = first
        .iter()
        .filter(|c| c.endpoint.id == slow.id)
        .map(|c| {
            c.not_before
                .expect("a rate-limited claim carries its send time")
        })
        .collect();
    assert!(!times.is_empty(), "something is sendable now");
    assert!(
        times.len() <= 5,
        "at most 4/s over a 1 s horizon (+1 at its start): {}",
        times.len()
    );
    assert!(times[0] >= now && times[times.len() - 1] <= now.add(horizon));
    let more = claim(s, now, 100).await;
    for c in &more {
        times.push(c.not_before.expect("send time"));
    }
    assert!(
        times.len() <= 5,
        "the horizon is full: a second claim at once reserves nothing more"
    );
    let later = now.add(horizon);
    let third = claim(s, later, 100).await;
    assert!(!third.is_empty(), "one horizon later there is room again");
    for c in &third {
        let t = c.not_before.expect("send time");
        assert!(
            t <= later.add(horizon),
            "{t} is beyond the horizon of {later}"
        );
        times.push(t);
    }
    let mut sorted = times.clone();
    sorted.sort();
    for w in sorted.windows(2) {
        assert!(
            w[1].since(w[0]) >= Duration::from_millis(250),
            "send times {} and {} are closer than 1/4 s",
            w[0],
            w[1]
        );
    }
}

/// `hold_endpoint` makes an endpoint's due deliveries wait until the given time, together, and
/// leaves its live leases and every other endpoint alone.
pub async fn hold_endpoint_makes_its_backlog_wait(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let failing = new_endpoint(s, &a, &[], &[]).await;
    let healthy = new_endpoint(s, &a, &[], &[]).await;
    for i in 0..3 {
        enqueue_new(s, &a, &[&failing, &healthy], at(i)).await;
    }
    let in_flight = s
        .claim_due_except(at(5), 1, LEASE, std::slice::from_ref(&healthy.id))
        .await
        .expect("claim_due_except");
    assert_eq!(count_for(&in_flight, &failing), 1);
    s.hold_endpoint(&failing.id, at(5_000), at(6))
        .await
        .expect("hold_endpoint");
    let got = claim(s, at(7), 100).await;
    assert_eq!(count_for(&got, &healthy), 3, "other endpoints keep flowing");
    assert_eq!(count_for(&got, &failing), 0, "the held backlog waits");
    assert_eq!(
        s.next_due().await.expect("next_due"),
        Some(at(5_000)),
        "the hold's end is the next due time"
    );
    assert!(claim(s, at(4_999), 100).await.is_empty());
    let after = claim(s, at(5_000), 100).await;
    assert_eq!(
        count_for(&after, &failing),
        2,
        "due again, together, when the hold ends"
    );
    assert!(
        after.iter().all(|c| c.attempt_number == 1),
        "no attempt was counted"
    );
    // The request in flight during the hold settles normally.
    settle(s, &in_flight[0], at(10), Some(200), Next::Delivered).await;
}
