//! Endpoints: every field round-trips, tenants are isolated, removal cancels pending work,
//! subscribers, and the failure clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::id::{AccountId, EndpointId};
use crate::model::{
    DeliveryFilter, DeliveryStatus, Endpoint, EndpointSecret, EventFilter, PageRequest,
};
use crate::signing::Secret;
use crate::store::{Next, Store, StoreError};

use super::support::{
    LEASE, account_id, assert_lease_lost, at, claim, claim_one, deliveries_of, delivery,
    delivery_filter, endpoint, enqueue_new, events_of, ids, kind, new_account, new_endpoint,
    settle, site_id, try_settle,
};

/// Every endpoint field survives create and update; ids conflict; missing rows are `NotFound`.
pub async fn endpoint_crud_round_trips_all_fields(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let mut ep = Endpoint {
        id: EndpointId::generate(),
        account: a.clone(),
        url: "https://hooks.acme.example/rx?token=a%20b".into(),
        description: Some("Pharmacy sync ✓".into()),
        event_types: vec![kind("rx.completed"), kind("rx.failed")],
        sites: vec![site_id("store-1"), site_id("store-2")],
        headers: BTreeMap::from([
            ("x-tenant".to_owned(), "acme".to_owned()),
            ("authorization".to_owned(), "Basic dXNlcjpwdw==".to_owned()),
        ]),
        rate_limit: Some(25),
        max_concurrency: Some(4),
        ordered: true,
        secrets: vec![
            EndpointSecret {
                key: Secret::generate(),
                created_at: at(10),
                expires_at: None,
            },
            EndpointSecret {
                key: Secret::generate(),
                created_at: at(0),
                expires_at: Some(at(86_400_000)),
            },
        ],
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        created_at: at(0),
        updated_at: at(10),
    };
    s.create_endpoint(&ep).await.expect("create_endpoint");
    assert_eq!(
        s.endpoint(&a, &ep.id).await.expect("endpoint"),
        Some(ep.clone())
    );
    assert!(matches!(
        s.create_endpoint(&ep).await,
        Err(StoreError::Conflict(_))
    ));

    ep.url = "https://hooks.acme.example/v2".into();
    ep.description = None;
    ep.event_types.clear();
    ep.sites = vec![site_id("store-9")];
    ep.headers.clear();
    ep.rate_limit = None;
    ep.max_concurrency = None;
    ep.ordered = false;
    ep.secrets.truncate(1);
    ep.enabled = false;
    ep.disabled_reason = Some("every attempt failed for 5 days".into());
    ep.updated_at = at(500);
    s.update_endpoint(&ep).await.expect("update_endpoint");
    assert_eq!(
        s.endpoint(&a, &ep.id).await.expect("endpoint"),
        Some(ep.clone())
    );
    let missing = Endpoint {
        id: EndpointId::generate(),
        ..ep.clone()
    };
    assert!(matches!(
        s.update_endpoint(&missing).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.endpoint(&a, &missing.id).await.expect("endpoint"), None);

    let mut newer = endpoint(&a, &[], &[]);
    newer.created_at = at(1_000);
    s.create_endpoint(&newer).await.expect("create_endpoint");
    let page = s
        .list_endpoints(&a, &PageRequest::first(10))
        .await
        .expect("list_endpoints");
    assert_eq!(page.items, vec![newer.clone(), ep.clone()], "newest first");
}

/// An endpoint of one account is invisible and untouchable through another account.
pub async fn endpoints_are_tenant_isolated(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let ep_a = new_endpoint(s, &a, &[], &[]).await;
    let ep_b = new_endpoint(s, &b, &[], &[]).await;

    assert_eq!(s.endpoint(&b, &ep_a.id).await.expect("endpoint"), None);
    let listed = s
        .list_endpoints(&b, &PageRequest::first(10))
        .await
        .expect("list_endpoints");
    assert_eq!(listed.items, vec![ep_b.clone()]);

    let mut hijack = ep_a.clone();
    hijack.account = b.clone();
    hijack.url = "https://evil.example/steal".into();
    assert!(matches!(
        s.update_endpoint(&hijack).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.endpoint(&a, &ep_a.id).await.expect("endpoint"),
        Some(ep_a.clone())
    );
    assert!(!s.remove_endpoint(&b, &ep_a.id).await.expect("remove"));
    assert!(s.endpoint(&a, &ep_a.id).await.expect("endpoint").is_some());

    // Events, deliveries and attempts follow the same rule.
    let (ev, d) = enqueue_new(s, &a, &[&ep_a], at(0)).await;
    let c = claim_one(s, at(0)).await;
    settle(s, &c, at(1), Some(500), Next::Exhausted).await;
    assert_eq!(s.event(&b, &ev.id).await.expect("event"), None);
    assert_eq!(s.delivery(&b, &d[0]).await.expect("delivery"), None);
    assert!(s.attempts(&b, &d[0]).await.expect("attempts").is_empty());
    assert!(events_of(s, &b, &EventFilter::default()).await.is_empty());
    assert!(
        deliveries_of(s, &b, &DeliveryFilter::default())
            .await
            .is_empty()
    );
    assert!(matches!(
        s.retry_delivery(&b, &d[0], at(10)).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.recover_failed(&b, &ep_a.id, at(0), at(10))
            .await
            .expect("recover_failed"),
        0
    );
    assert_eq!(
        delivery(s, &a, &d[0]).await.status,
        DeliveryStatus::Failed,
        "nothing was re-queued through another account"
    );
}

/// Removing an endpoint cancels its pending (even leased) deliveries and keeps finished ones.
pub async fn remove_endpoint_cancels_pending_deliveries(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let doomed = new_endpoint(s, &a, &[], &[]).await;
    let keeper = new_endpoint(s, &a, &[], &[]).await;
    let (_, first) = enqueue_new(s, &a, &[&doomed, &keeper], at(0)).await;
    let (_, leased) = enqueue_new(s, &a, &[&doomed], at(10)).await;
    let (_, waiting) = enqueue_new(s, &a, &[&doomed], at(1_000_000)).await;

    let got = claim(s, at(10), 10).await;
    assert_eq!(got.len(), 3);
    let mut leased_claim = None;
    for c in got {
        if c.delivery.id == first[0] {
            settle(s, &c, at(11), Some(200), Next::Delivered).await;
        } else if c.delivery.id == leased[0] {
            leased_claim = Some(c);
        } else {
            settle(s, &c, at(11), Some(500), Next::RetryAt(at(500_000))).await;
        }
    }
    let leased_claim = leased_claim.expect("the second event's delivery was claimed");

    assert!(s.remove_endpoint(&a, &doomed.id).await.expect("remove"));
    assert!(
        !s.remove_endpoint(&a, &doomed.id)
            .await
            .expect("remove again")
    );
    assert_eq!(s.endpoint(&a, &doomed.id).await.expect("endpoint"), None);
    assert_eq!(
        delivery(s, &a, &first[0]).await.status,
        DeliveryStatus::Succeeded,
        "finished deliveries stay"
    );
    for id in [&leased[0], &waiting[0]] {
        let d = delivery(s, &a, id).await;
        assert_eq!(d.status, DeliveryStatus::Cancelled);
        assert_eq!(d.next_attempt_at, None);
    }
    assert_lease_lost(
        try_settle(s, &leased_claim, at(12), Some(200), Next::Delivered).await,
        "settling a cancelled delivery",
    );
    assert_eq!(
        delivery(s, &a, &leased[0]).await.status,
        DeliveryStatus::Cancelled
    );
    let cancelled = deliveries_of(
        s,
        &a,
        &delivery_filter(None, Some(&doomed.id), Some(DeliveryStatus::Cancelled)),
    )
    .await;
    assert_eq!(cancelled.len(), 2);

    // The other endpoint's delivery is untouched and is the only work left.
    assert_eq!(
        delivery(s, &a, &first[1]).await.status,
        DeliveryStatus::Pending
    );
    assert_eq!(s.next_due().await.expect("next_due"), Some(at(500_000)));
    let left = claim(s, at(10_000_000), 10).await;
    assert_eq!(ids(&left), vec![first[1].clone()]);
}

/// Subscribers are the account's enabled shared endpoints plus those filtered to the site.
pub async fn subscribers_merge_account_and_site_scope(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let shared_all = new_endpoint(s, &a, &[], &[]).await;
    let shared_done = new_endpoint(s, &a, &["rx.completed"], &[]).await;
    let site1_all = new_endpoint(s, &a, &[], &["store-1"]).await;
    let site1_failed = new_endpoint(s, &a, &["rx.failed"], &["store-1"]).await;
    let site2_all = new_endpoint(s, &a, &[], &["store-2", "store-3"]).await;
    let mut disabled = endpoint(&a, &[], &[]);
    disabled.enabled = false;
    s.create_endpoint(&disabled).await.expect("create_endpoint");
    let other = new_endpoint(s, &b, &[], &[]).await;
    let other_site1 = new_endpoint(s, &b, &[], &["store-1"]).await;

    let subs = |acc: AccountId, site: Option<&'static str>, k: &'static str| {
        let store = store.clone();
        async move {
            let site = site.map(site_id);
            let got = store
                .subscribers(&acc, site.as_ref(), &kind(k))
                .await
                .expect("subscribers");
            for e in &got {
                assert_eq!(e.account, acc, "another account's endpoint");
                assert!(e.enabled, "a disabled endpoint");
            }
            got.into_iter().map(|e| e.id).collect::<BTreeSet<_>>()
        }
    };
    let want = |eps: &[&Endpoint]| eps.iter().map(|e| e.id.clone()).collect::<BTreeSet<_>>();

    assert_eq!(
        subs(a.clone(), Some("store-1"), "rx.completed").await,
        want(&[&shared_all, &shared_done, &site1_all])
    );
    assert_eq!(
        subs(a.clone(), Some("store-1"), "rx.failed").await,
        want(&[&shared_all, &site1_all, &site1_failed])
    );
    assert_eq!(
        subs(a.clone(), Some("store-3"), "rx.failed").await,
        want(&[&shared_all, &site2_all])
    );
    assert_eq!(
        subs(a.clone(), None, "rx.completed").await,
        want(&[&shared_all, &shared_done]),
        "site endpoints skip events without a site"
    );
    assert_eq!(
        subs(a.clone(), Some("store-9"), "rx.excepted").await,
        want(&[&shared_all])
    );
    assert_eq!(
        subs(b.clone(), Some("store-1"), "rx.completed").await,
        want(&[&other, &other_site1])
    );
    assert!(
        subs(account_id("nobody"), Some("store-1"), "rx.completed")
            .await
            .is_empty()
    );
}

/// The failure clock: started once, kept across calls and endpoint updates, shown on the
/// endpoint (also in claims), stopped by `record_healthy`.
pub async fn failure_clock_is_kept_by_the_store(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let mut ep = new_endpoint(s, &a, &[], &[]).await;
    let fetch = |ep: &Endpoint| {
        let (a, id) = (ep.account.clone(), ep.id.clone());
        async move {
            s.endpoint(&a, &id)
                .await
                .expect("endpoint")
                .expect("exists")
        }
    };
    assert_eq!(fetch(&ep).await.failing_since, None);
    assert_eq!(
        s.record_failing(&ep.id, at(10))
            .await
            .expect("record_failing"),
        Some(at(10))
    );
    assert_eq!(
        s.record_failing(&ep.id, at(20))
            .await
            .expect("record_failing"),
        Some(at(10)),
        "a running clock keeps its start"
    );
    assert_eq!(fetch(&ep).await.failing_since, Some(at(10)));
    let listed = s
        .list_endpoints(&a, &PageRequest::first(10))
        .await
        .expect("list_endpoints");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        listed.items[0].failing_since,
        Some(at(10)),
        "lists show the clock too"
    );
    ep.description = Some("changed".into());
    ep.failing_since = None;
    s.update_endpoint(&ep).await.expect("update_endpoint");
    let got = fetch(&ep).await;
    assert_eq!(got.description.as_deref(), Some("changed"));
    assert_eq!(
        got.failing_since,
        Some(at(10)),
        "updates leave the clock alone"
    );
    enqueue_new(s, &a, &[&ep], at(30)).await;
    let c = claim_one(s, at(31)).await;
    assert_eq!(
        c.endpoint.failing_since,
        Some(at(10)),
        "claims carry the clock"
    );
    s.record_healthy(&ep.id).await.expect("record_healthy");
    assert_eq!(fetch(&ep).await.failing_since, None);
    assert_eq!(
        s.record_failing(&ep.id, at(40))
            .await
            .expect("record_failing"),
        Some(at(40))
    );
    assert_eq!(
        s.record_failing(&EndpointId::generate(), at(40))
            .await
            .expect("record_failing"),
        None,
        "an unknown endpoint has no clock"
    );
}

/// `disable_endpoint`: disables an enabled endpoint with its reason in one step, changes no other
/// field (the failure clock included), answers false when there is nothing to disable, and
/// claims then pass its deliveries over.
pub async fn disable_endpoint_is_one_step(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let mut ep = new_endpoint(s, &a, &[], &[]).await;
    ep.description = Some("kept".into());
    s.update_endpoint(&ep).await.expect("update_endpoint");
    s.record_failing(&ep.id, at(5))
        .await
        .expect("record_failing");
    enqueue_new(s, &a, &[&ep], at(10)).await;

    assert!(
        s.disable_endpoint(&ep.id, "failing for too long", at(20))
            .await
            .expect("disable_endpoint"),
        "an enabled endpoint is disabled"
    );
    let got = s
        .endpoint(&a, &ep.id)
        .await
        .expect("endpoint")
        .expect("exists");
    assert!(!got.enabled);
    assert_eq!(got.disabled_reason.as_deref(), Some("failing for too long"));
    assert_eq!(got.updated_at, at(20));
    assert_eq!(
        got.description.as_deref(),
        Some("kept"),
        "other fields stay"
    );
    assert_eq!(got.url, ep.url);
    assert_eq!(got.secrets, ep.secrets);
    assert_eq!(got.failing_since, Some(at(5)), "the failure clock stays");
    assert!(
        s.claim_due(at(30), 10, LEASE)
            .await
            .expect("claim_due")
            .is_empty(),
        "a disabled endpoint's deliveries are not claimed"
    );
    assert!(
        !s.disable_endpoint(&ep.id, "again", at(40))
            .await
            .expect("disable_endpoint"),
        "a disabled endpoint is not disabled again"
    );
    assert_eq!(
        s.endpoint(&a, &ep.id)
            .await
            .expect("endpoint")
            .expect("exists")
            .disabled_reason
            .as_deref(),
        Some("failing for too long"),
        "the first reason stays"
    );
    assert!(
        !s.disable_endpoint(&EndpointId::generate(), "gone", at(40))
            .await
            .expect("disable_endpoint"),
        "an unknown endpoint is not disabled"
    );
}
