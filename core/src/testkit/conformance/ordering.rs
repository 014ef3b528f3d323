//! Ordered endpoints: one delivery in flight per queue id.

use std::sync::Arc;

use crate::id::AccountId;
use crate::model::Event;
use crate::store::{Next, Store};
use crate::time::Timestamp;

use super::support::{
    at, claim, claim_one, endpoint, enqueue, event, ids, new_account, new_endpoint, set, settle,
};

fn queued_event(account: &AccountId, queue: &str, fired: Timestamp) -> Event {
    let mut ev = event(account, "rx.excepted", None, fired);
    ev.queue_id = Some(queue.to_owned());
    ev
}

/// An ordered endpoint gets, per queue id, only the oldest pending delivery; other keys and
/// unordered endpoints flow; a terminal head unblocks the next one.
pub async fn ordered_endpoint_claims_only_the_head_of_each_queue_id(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let mut ordered = endpoint(&a, &[], &[]);
    ordered.ordered = true;
    s.create_endpoint(&ordered).await.expect("create_endpoint");
    let plain = new_endpoint(s, &a, &[], &[]).await;

    let q1_first = enqueue(
        s,
        &queued_event(&a, "q1", at(0)),
        &[&ordered, &plain],
        at(0),
    )
    .await;
    let q1_second = enqueue(
        s,
        &queued_event(&a, "q1", at(1)),
        &[&ordered, &plain],
        at(1),
    )
    .await;
    let q2 = enqueue(s, &queued_event(&a, "q2", at(2)), &[&ordered], at(2)).await;
    let no_key = enqueue(
        s,
        &event(&a, "rx.completed", None, at(3)),
        &[&ordered],
        at(3),
    )
    .await;

    let got = claim(s, at(10), 100).await;
    let got_ids = set(&ids(&got));
    let ordered_first = got
        .iter()
        .filter(|c| c.endpoint.id == ordered.id && c.event.queue_id.as_deref() == Some("q1"))
        .map(|c| c.event.id.clone())
        .collect::<Vec<_>>();
    assert_eq!(
        ordered_first,
        vec![q1_first.event_id.clone()],
        "only the head of q1"
    );
    for r in [&q2, &no_key] {
        assert!(
            r.deliveries.iter().all(|d| got_ids.contains(d)),
            "other keys and keyless events flow"
        );
    }
    let plain_count = got.iter().filter(|c| c.endpoint.id == plain.id).count();
    assert_eq!(
        plain_count, 2,
        "an unordered endpoint takes both q1 events at once"
    );

    // While the head is pending (here: retried later), the second stays blocked, even when due.
    let head = got
        .iter()
        .find(|c| c.endpoint.id == ordered.id && c.event.id == q1_first.event_id)
        .expect("head claimed");
    settle(s, head, at(10), Some(500), Next::RetryAt(at(20))).await;
    assert!(
        claim(s, at(15), 100).await.is_empty(),
        "the head is not due, the rest is blocked"
    );
    let head = claim_one(s, at(20)).await;
    assert_eq!(
        head.event.id, q1_first.event_id,
        "the failing head comes back first"
    );
    settle(s, &head, at(20), None, Next::Exhausted).await;
    let next = claim_one(s, at(21)).await;
    assert_eq!(
        next.event.id, q1_second.event_id,
        "a terminal head unblocks the next"
    );
}
