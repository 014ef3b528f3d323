//! Listings: event and delivery filters, and cursor pagination.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::id::{AccountId, DeliveryId, EventId};
use crate::model::{
    Account, AttemptFilter, AttemptOutcome, Cursor, Delivery, DeliveryFilter, DeliveryStatus,
    Event, EventFilter, Page, PageRequest, Trigger,
};
use crate::store::{Next, Store};

use super::support::{
    account_id, at, attempt_for, claim, claim_one, deliveries_of, delivery, delivery_filter,
    enqueue, enqueue_new, event, events_of, kind, new_account, new_endpoint, set, settle, site_id,
};

/// Event filters (type, site, queue id, since inclusive, until exclusive) match exactly.
pub async fn list_events_filters_are_exact(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let mk = |acc: &AccountId, k: &str, site: Option<&str>, q: Option<&str>, t: i64| {
        let mut ev = event(acc, k, site, at(t));
        ev.queue_id = q.map(str::to_owned);
        ev
    };
    let e1 = mk(&a, "rx.completed", Some("store-1"), Some("q1"), 0);
    let e2 = mk(&a, "rx.failed", Some("store-1"), Some("q1"), 10);
    let e3 = mk(&a, "rx.completed", Some("store-2"), Some("q2"), 20);
    let e4 = mk(&a, "rx.completed", None, None, 30);
    let e5 = mk(&b, "rx.completed", Some("store-1"), Some("q1"), 15);
    for ev in [&e1, &e2, &e3, &e4, &e5] {
        enqueue(s, ev, &[], ev.timestamp).await;
    }
    let f = |event_type: Option<&str>,
             site: Option<&str>,
             queue_id: Option<&str>,
             since: Option<i64>,
             until: Option<i64>| EventFilter {
        event_type: event_type.map(kind),
        site: site.map(site_id),
        queue_id: queue_id.map(str::to_owned),
        since: since.map(at),
        until: until.map(at),
    };
    let want = |evs: &[&Event]| evs.iter().map(|e| e.id.clone()).collect::<Vec<_>>();

    let cases: Vec<(EventFilter, Vec<EventId>)> = vec![
        (f(None, None, None, None, None), want(&[&e4, &e3, &e2, &e1])),
        (
            f(Some("rx.completed"), None, None, None, None),
            want(&[&e4, &e3, &e1]),
        ),
        (f(Some("rx.failed"), None, None, None, None), want(&[&e2])),
        (f(Some("rx.nope"), None, None, None, None), vec![]),
        (
            f(None, Some("store-1"), None, None, None),
            want(&[&e2, &e1]),
        ),
        (f(None, Some("store-2"), None, None, None), want(&[&e3])),
        (f(None, None, Some("q1"), None, None), want(&[&e2, &e1])),
        (f(None, None, Some("q"), None, None), vec![]),
        (f(None, None, None, Some(10), None), want(&[&e4, &e3, &e2])),
        (f(None, None, None, None, Some(20)), want(&[&e2, &e1])),
        (f(None, None, None, Some(10), Some(30)), want(&[&e3, &e2])),
        (f(None, None, None, Some(31), None), vec![]),
        (
            f(Some("rx.completed"), Some("store-1"), None, None, None),
            want(&[&e1]),
        ),
        (
            f(Some("rx.completed"), None, Some("q1"), Some(1), None),
            vec![],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            events_of(s, &a, &filter).await,
            expected,
            "filter {filter:?}"
        );
    }
    assert_eq!(
        events_of(s, &b, &f(None, Some("store-1"), None, None, None)).await,
        want(&[&e5])
    );
}

/// Paging newest first returns every row exactly once, even while rows are being added.
pub async fn cursor_pagination_returns_every_row_once(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let mut originals = BTreeSet::new();
    let mut original_deliveries = BTreeSet::new();
    // Groups of three share a timestamp, so ties must break on id.
    for i in 0..20 {
        let t = at((i / 3) * 1_000);
        let ev = event(&a, "rx.completed", None, t);
        let r = enqueue(s, &ev, &[&ep], t).await;
        originals.insert(ev.id);
        original_deliveries.extend(r.deliveries);
    }

    // Events. Rows arrive between pages: newer ones, a tie with an already-seen time, and an
    // older one.
    let seen: Vec<Event> = every_page(
        4,
        async |req| {
            s.list_events(&a, &EventFilter::default(), &req)
                .await
                .expect("list_events")
        },
        async |pages| {
            if pages <= 3 {
                for t in [at(100_000 + pages), at(6_000), at(-5_000 - pages)] {
                    let ev = event(&a, "rx.completed", None, t);
                    enqueue(s, &ev, &[&ep], t).await;
                }
            }
        },
    )
    .await;
    let seen_ids: Vec<EventId> = seen.iter().map(|e| e.id.clone()).collect();
    assert_eq!(
        set(&seen_ids).len(),
        seen_ids.len(),
        "an event was returned twice"
    );
    assert!(
        originals.is_subset(&set(&seen_ids)),
        "an event present throughout was skipped"
    );
    for w in seen.windows(2) {
        assert!(
            (w[0].timestamp, &w[0].id) > (w[1].timestamp, &w[1].id),
            "pages are newest first, ties broken by id"
        );
    }

    // Deliveries.
    let seen: Vec<Delivery> = every_page(
        3,
        async |req| {
            s.list_deliveries(&a, &DeliveryFilter::default(), &req)
                .await
                .expect("list_deliveries")
        },
        async |pages| {
            if pages <= 2 {
                let t = at(200_000 + pages);
                enqueue(s, &event(&a, "rx.completed", None, t), &[&ep], t).await;
            }
        },
    )
    .await;
    let seen_ids: Vec<DeliveryId> = seen.iter().map(|d| d.id.clone()).collect();
    assert_eq!(
        set(&seen_ids).len(),
        seen_ids.len(),
        "a delivery was returned twice"
    );
    assert!(original_deliveries.is_subset(&set(&seen_ids)));
    for w in seen.windows(2) {
        assert!((w[0].created_at, &w[0].id) > (w[1].created_at, &w[1].id));
    }

    // Accounts, with ties on creation time; a full last page has no `next`.
    for i in 0..6 {
        let t = at((i / 2) * 10);
        s.create_account(&Account {
            id: account_id(&format!("tie-{i}")),
            name: "tie".into(),
            created_at: t,
            updated_at: t,
        })
        .await
        .expect("create_account");
    }
    let seen: Vec<AccountId> = every_page(
        2,
        async |req| s.list_accounts(&req).await.expect("list_accounts"),
        async |_| {},
    )
    .await
    .into_iter()
    .map(|x| x.id)
    .collect();
    assert_eq!(seen.len(), 7, "every account once: {seen:?}");
    assert_eq!(set(&seen).len(), 7);
    let all = s
        .list_accounts(&PageRequest::first(7))
        .await
        .expect("list_accounts");
    assert_eq!(all.items.len(), 7);
    assert!(all.next.is_none(), "no `next` when nothing follows");
    let first = s
        .list_accounts(&PageRequest::first(6))
        .await
        .expect("list_accounts");
    assert!(first.next.is_some(), "`next` when more rows follow");
}

/// Delivery filters (event, endpoint, status) match exactly and combine.
pub async fn list_deliveries_filter_by_event_endpoint_status(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let p = new_endpoint(s, &a, &[], &[]).await;
    let q = new_endpoint(s, &a, &[], &[]).await;
    let (ev1, d1) = enqueue_new(s, &a, &[&p, &q], at(0)).await;
    let (ev2, d2) = enqueue_new(s, &a, &[&p, &q], at(10)).await;
    let pb = new_endpoint(s, &b, &[], &[]).await;
    enqueue_new(s, &b, &[&pb], at(20)).await;

    // ev1 → p succeeded, ev1 → q failed, ev2 → both pending.
    for c in claim(s, at(5), 10).await {
        assert_eq!(c.event.id, ev1.id);
        let next = if c.endpoint.id == p.id {
            Next::Delivered
        } else {
            Next::Exhausted
        };
        settle(s, &c, at(6), Some(200), next).await;
    }

    let list = |f: DeliveryFilter| {
        let store = store.clone();
        let a = a.clone();
        async move {
            deliveries_of(&*store, &a, &f)
                .await
                .into_iter()
                .map(|d| d.id)
                .collect::<BTreeSet<_>>()
        }
    };
    let st = |x: &[&DeliveryId]| x.iter().map(|d| (*d).clone()).collect::<BTreeSet<_>>();

    assert_eq!(
        list(delivery_filter(None, None, None)).await,
        st(&[&d1[0], &d1[1], &d2[0], &d2[1]])
    );
    assert_eq!(
        list(delivery_filter(Some(&ev1.id), None, None)).await,
        st(&[&d1[0], &d1[1]])
    );
    assert_eq!(
        list(delivery_filter(None, Some(&q.id), None)).await,
        st(&[&d1[1], &d2[1]])
    );
    assert_eq!(
        list(delivery_filter(None, None, Some(DeliveryStatus::Succeeded))).await,
        st(&[&d1[0]])
    );
    assert_eq!(
        list(delivery_filter(None, None, Some(DeliveryStatus::Failed))).await,
        st(&[&d1[1]])
    );
    assert_eq!(
        list(delivery_filter(None, None, Some(DeliveryStatus::Pending))).await,
        st(&[&d2[0], &d2[1]])
    );
    assert_eq!(
        list(delivery_filter(None, None, Some(DeliveryStatus::Cancelled))).await,
        st(&[])
    );
    assert_eq!(
        list(delivery_filter(Some(&ev2.id), Some(&p.id), None)).await,
        st(&[&d2[0]])
    );
    assert_eq!(
        list(delivery_filter(
            Some(&ev1.id),
            Some(&q.id),
            Some(DeliveryStatus::Failed)
        ))
        .await,
        st(&[&d1[1]])
    );
    assert_eq!(
        list(delivery_filter(
            Some(&ev2.id),
            None,
            Some(DeliveryStatus::Failed)
        ))
        .await,
        st(&[])
    );
    assert_eq!(
        list(delivery_filter(None, Some(&pb.id), None)).await,
        st(&[]),
        "another account's endpoint"
    );

    // Newest first.
    let all = deliveries_of(s, &a, &DeliveryFilter::default()).await;
    assert_eq!(all.len(), 4);
    assert!(all[..2].iter().all(|d| d.event_id == ev2.id));
    assert!(all[2..].iter().all(|d| d.event_id == ev1.id));
}

/// Delivery filters by event type (one or several) and creation time match exactly, combine
/// with the others, and page newest first even when the type is rare among the rows.
pub async fn list_deliveries_filter_by_event_type_and_time(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let p = new_endpoint(s, &a, &[], &[]).await;
    let q = new_endpoint(s, &a, &[], &[]).await;
    let pb = new_endpoint(s, &b, &[], &[]).await;
    let mut by_type: Vec<(String, i64, DeliveryId, bool)> = Vec::new();
    for (k, t) in [("rx.completed", 0), ("rx.failed", 10), ("rx.completed", 20)] {
        let ev = event(&a, k, None, at(t));
        let r = enqueue(s, &ev, &[&p, &q], at(t)).await;
        for d in r.deliveries {
            let to_q = delivery(s, &a, &d).await.endpoint_id == q.id;
            by_type.push((k.to_owned(), t, d, to_q));
        }
    }
    let other = event(&b, "rx.failed", None, at(10));
    enqueue(s, &other, &[&pb], at(10)).await;

    let f = |types: &[&str], since: Option<i64>, until: Option<i64>| DeliveryFilter {
        event_types: types.iter().map(|t| kind(t)).collect(),
        since: since.map(at),
        until: until.map(at),
        ..DeliveryFilter::default()
    };
    let want = |pred: &dyn Fn(&str, i64, bool) -> bool| {
        by_type
            .iter()
            .filter(|(k, t, _, to_q)| pred(k, *t, *to_q))
            .map(|(_, _, d, _)| d.clone())
            .collect::<BTreeSet<_>>()
    };
    let got = |filter: DeliveryFilter| {
        let store = store.clone();
        let a = a.clone();
        async move {
            deliveries_of(&*store, &a, &filter)
                .await
                .into_iter()
                .map(|d| d.id)
                .collect::<BTreeSet<_>>()
        }
    };
    let cases: Vec<(DeliveryFilter, BTreeSet<DeliveryId>)> = vec![
        (
            f(&["rx.failed"], None, None),
            want(&|k, _, _| k == "rx.failed"),
        ),
        (
            f(&["rx.completed"], None, None),
            want(&|k, _, _| k == "rx.completed"),
        ),
        (
            f(&["rx.completed", "rx.failed"], None, None),
            want(&|_, _, _| true),
        ),
        (f(&["rx.nope"], None, None), BTreeSet::new()),
        (f(&[], Some(10), None), want(&|_, t, _| t >= 10)),
        (f(&[], None, Some(10)), want(&|_, t, _| t < 10)),
        (f(&[], Some(10), Some(20)), want(&|_, t, _| t == 10)),
        (f(&[], Some(21), None), BTreeSet::new()),
        (
            f(&["rx.completed"], Some(1), None),
            want(&|k, t, _| k == "rx.completed" && t >= 1),
        ),
        (
            DeliveryFilter {
                endpoint: Some(q.id.clone()),
                ..f(&["rx.completed"], None, Some(20))
            },
            want(&|k, t, to_q| k == "rx.completed" && t < 20 && to_q),
        ),
        (
            DeliveryFilter {
                status: Some(DeliveryStatus::Failed),
                ..f(&["rx.completed"], None, None)
            },
            BTreeSet::new(),
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(got(filter.clone()).await, expected, "filter {filter:?}");
    }

    // A rare type among many rows, a small page at a time: every match once, newest first.
    let mut rare = Vec::new();
    for i in 0..60 {
        let k = if i % 20 == 7 { "rx.rare" } else { "rx.common" };
        let ev = event(&a, k, None, at(1_000 + i));
        let r = enqueue(s, &ev, &[&p], at(1_000 + i)).await;
        if k == "rx.rare" {
            rare.extend(r.deliveries);
        }
    }
    rare.reverse();
    let rare_filter = f(&["rx.rare"], None, None);
    let seen: Vec<DeliveryId> = every_page(
        2,
        async |req| {
            s.list_deliveries(&a, &rare_filter, &req)
                .await
                .expect("list_deliveries")
        },
        async |_| {},
    )
    .await
    .into_iter()
    .map(|d| d.id)
    .collect();
    assert_eq!(seen, rare, "the rare type's deliveries, newest first, once");
    let first = s
        .list_deliveries(&a, &rare_filter, &PageRequest::first(3))
        .await
        .expect("list_deliveries");
    assert_eq!(first.items.len(), 3);
    assert!(first.next.is_none(), "no `next` after the last match");
}

/// A delivery's attempts page newest first by `(started_at, id)` and filter by outcome.
pub async fn list_attempts_pages_newest_first_by_outcome(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let (_, d) = enqueue_new(s, &a, &[&ep], at(0)).await;
    let c = claim_one(s, at(0)).await;
    let a1 = attempt_for(&c, at(1), None);
    s.settle(&c.lease, &a1, Next::RetryAt(at(100)))
        .await
        .expect("settle");
    let c = claim_one(s, at(100)).await;
    let a2 = attempt_for(&c, at(101), Some(500));
    s.settle(&c.lease, &a2, Next::RetryAt(at(200)))
        .await
        .expect("settle");
    let c = claim_one(s, at(200)).await;
    let a3 = attempt_for(&c, at(201), Some(204));
    s.settle(&c.lease, &a3, Next::Delivered)
        .await
        .expect("settle");

    let list = |outcome: Option<AttemptOutcome>, page: PageRequest| {
        let store = store.clone();
        let (a, d) = (a.clone(), d[0].clone());
        async move {
            store
                .list_attempts(&a, &d, &AttemptFilter { outcome }, &page)
                .await
                .expect("list_attempts")
        }
    };
    let first = list(None, PageRequest::first(2)).await;
    assert_eq!(first.items, vec![a3.clone(), a2.clone()]);
    let next = first.next.expect("a third attempt follows");
    let rest = list(
        None,
        PageRequest {
            limit: 2,
            after: Some(next),
        },
    )
    .await;
    assert_eq!(rest.items, vec![a1.clone()]);
    assert!(rest.next.is_none());
    assert_eq!(
        list(Some(AttemptOutcome::Succeeded), PageRequest::first(10))
            .await
            .items,
        vec![a3]
    );
    assert_eq!(
        list(Some(AttemptOutcome::Failed), PageRequest::first(10))
            .await
            .items,
        vec![a2, a1]
    );
    let theirs = s
        .list_attempts(
            &b,
            &d[0],
            &AttemptFilter::default(),
            &PageRequest::first(10),
        )
        .await
        .expect("list_attempts");
    assert!(theirs.items.is_empty(), "another account sees no attempts");
}

/// `retry_deliveries` re-queues a batch of an account's deliveries in any state as manual
/// attempts, skipping ids that are gone or another account's.
pub async fn retry_deliveries_requeues_a_batch(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let ep = new_endpoint(s, &a, &[], &[]).await;
    let epb = new_endpoint(s, &b, &[], &[]).await;
    let (_, ok) = enqueue_new(s, &a, &[&ep], at(0)).await;
    let (_, bad) = enqueue_new(s, &a, &[&ep], at(1)).await;
    let (_, theirs) = enqueue_new(s, &b, &[&epb], at(2)).await;
    for c in claim(s, at(10), 10).await {
        let (code, next) = if c.delivery.id == bad[0] {
            (500, Next::Exhausted)
        } else {
            (200, Next::Delivered)
        };
        settle(s, &c, at(11), Some(code), next).await;
    }
    let (_, pending) = enqueue_new(s, &a, &[&ep], at(20)).await;
    let gone = DeliveryId::generate();
    let ids = [
        ok[0].clone(),
        bad[0].clone(),
        pending[0].clone(),
        theirs[0].clone(),
        gone,
    ];
    let n = s
        .retry_deliveries(&a, &ids, at(1_000))
        .await
        .expect("retry_deliveries");
    assert_eq!(n, 3, "the account's three, not another's nor a missing one");
    for id in [&ok[0], &bad[0], &pending[0]] {
        let d = delivery(s, &a, id).await;
        assert_eq!(d.status, DeliveryStatus::Pending, "{id}");
        assert_eq!(d.next_attempt_at, Some(at(1_000)), "{id}");
    }
    assert_eq!(
        delivery(s, &b, &theirs[0]).await.status,
        DeliveryStatus::Succeeded,
        "another account's delivery is untouched"
    );
    let claimed = claim(s, at(1_000), 10).await;
    assert_eq!(claimed.len(), 3);
    assert!(claimed.iter().all(|c| c.trigger == Trigger::Manual));
}

/// Reads a listing `limit` rows at a time from the first page until a page has no `next`,
/// calling `between` after each page with the number of pages read so far; returns the rows in
/// the order read. Fails when a page is over `limit` or the pages do not end.
async fn every_page<T>(
    limit: usize,
    mut fetch: impl AsyncFnMut(PageRequest) -> Page<T>,
    mut between: impl AsyncFnMut(i64),
) -> Vec<T> {
    let mut seen = Vec::new();
    let mut after: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let page = fetch(PageRequest {
            limit,
            after: after.take(),
        })
        .await;
        assert!(page.items.len() <= limit, "a page is at most `limit` rows");
        seen.extend(page.items);
        pages += 1;
        between(pages).await;
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
        assert!(pages < 100, "pagination does not end");
    }
    seen
}
