//! Listings: event and delivery filters, and cursor pagination.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::id::{AccountId, DeliveryId, EventId};
use crate::model::{
    Account, Cursor, Delivery, DeliveryFilter, DeliveryStatus, Event, EventFilter, Page,
    PageRequest,
};
use crate::store::{Next, Store};

use super::support::{
    account_id, at, claim, deliveries_of, delivery_filter, enqueue, enqueue_new, event, events_of,
    kind, new_account, new_endpoint, set, settle, site_id,
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
