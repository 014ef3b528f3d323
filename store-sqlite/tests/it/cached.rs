//! The cached decorator over SQLite: the conformance suite through it, and what it answers when
//! the store changes behind it (through the inner handle, as another process would change it).

use std::sync::Arc;
use std::time::Duration;

use hookline_core::cache::{CacheConfig, CachedStore};
use hookline_core::model::{Account, ApiKey, Endpoint, EndpointSecret, Event, EventType, Role};
use hookline_core::signing::Secret;
use hookline_core::store::{CatalogStore, EndpointStore, QueueStore, Store, StoreError};
use hookline_core::{AccountId, EndpointId, EventId, EventTypeName, Timestamp};
use hookline_store_sqlite::{SqliteConfig, SqliteStore};
use serde_json::value::RawValue;

/// The conformance suite through a [`CachedStore`] over an in-memory database.
mod conformance {
    use super::*;

    async fn fresh() -> Arc<dyn Store> {
        let inner: Arc<dyn Store> = Arc::new(memory().await);
        Arc::new(CachedStore::new(inner))
    }

    hookline_core::store_conformance!(fresh);
}

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

async fn memory() -> SqliteStore {
    SqliteStore::connect("sqlite::memory:", SqliteConfig::default())
        .await
        .expect("opening an in-memory database")
}

/// An inner store, and a cache over it whose entries outlive any test.
async fn cached_with(ttl: Duration) -> (Arc<SqliteStore>, CachedStore<SqliteStore>) {
    let inner = Arc::new(memory().await);
    let mut config = CacheConfig::default();
    config.api_keys = ttl;
    config.accounts = ttl;
    config.event_types = ttl;
    config.subscribers = ttl;
    (inner.clone(), CachedStore::with_config(inner, config))
}

const LONG: Duration = Duration::from_secs(3600);

fn account(id: &str, name: &str) -> Account {
    Account::new(AccountId::parse(id).expect("valid account id"), name, T0)
}

fn event_type(name: &str) -> EventType {
    EventType::new(
        EventTypeName::parse(name).expect("valid event type"),
        "a test type",
        T0,
    )
}

fn endpoint(account: &AccountId) -> Endpoint {
    Endpoint::new(
        EndpointId::generate(),
        account.clone(),
        "https://receiver.example.com/hook",
        vec![EndpointSecret::new(Secret::generate(), T0)],
        T0,
    )
}

fn kind() -> EventTypeName {
    EventTypeName::parse("rx.completed").expect("valid event type")
}

async fn subscriber_ids(s: &dyn Store, account: &AccountId) -> Vec<EndpointId> {
    let mut ids: Vec<EndpointId> = s
        .subscribers(account, None, &kind())
        .await
        .expect("subscribers")
        .into_iter()
        .map(|e| e.id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn accounts_are_kept_until_changed_through_the_cache() {
    let (inner, cached) = cached_with(LONG).await;
    let a = account("acme", "Acme");
    cached.create_account(&a).await.expect("create_account");
    assert_eq!(
        cached.account(&a.id).await.expect("account"),
        Some(a.clone())
    );

    let mut renamed = a.clone();
    renamed.name = "Renamed elsewhere".into();
    inner
        .update_account(&renamed)
        .await
        .expect("update_account");
    assert_eq!(
        cached.account(&a.id).await.expect("account"),
        Some(a.clone()),
        "a change behind the cache is not seen within the time to live"
    );

    let mut local = a.clone();
    local.name = "Renamed here".into();
    cached.update_account(&local).await.expect("update_account");
    assert_eq!(
        cached.account(&a.id).await.expect("account"),
        Some(local),
        "a change through the cache is seen at once"
    );

    // Missing accounts are not kept: one created elsewhere is found at once.
    let b = account("globex", "Globex");
    assert_eq!(cached.account(&b.id).await.expect("account"), None);
    inner.create_account(&b).await.expect("create_account");
    assert_eq!(cached.account(&b.id).await.expect("account"), Some(b));

    cached.delete_account(&a.id).await.expect("delete_account");
    assert_eq!(cached.account(&a.id).await.expect("account"), None);
}

#[tokio::test]
async fn event_types_are_kept_until_changed_through_the_cache() {
    let (inner, cached) = cached_with(LONG).await;
    let et = event_type("rx.completed");
    cached
        .create_event_type(&et)
        .await
        .expect("create_event_type");
    assert_eq!(
        cached.event_type(&et.name).await.expect("event_type"),
        Some(et.clone())
    );

    let mut archived = et.clone();
    archived.archived = true;
    inner
        .update_event_type(&archived)
        .await
        .expect("update_event_type");
    assert_eq!(
        cached.event_type(&et.name).await.expect("event_type"),
        Some(et.clone()),
        "archived behind the cache: not seen within the time to live"
    );

    cached
        .update_event_type(&archived)
        .await
        .expect("update_event_type");
    assert_eq!(
        cached.event_type(&et.name).await.expect("event_type"),
        Some(archived)
    );
    assert!(
        cached
            .delete_event_type(&et.name)
            .await
            .expect("delete_event_type")
    );
    assert_eq!(cached.event_type(&et.name).await.expect("event_type"), None);
}

#[tokio::test]
async fn keys_of_an_account_deleted_through_the_cache_stop_at_once() {
    let (inner, cached) = cached_with(LONG).await;
    let a = account("acme", "Acme");
    cached.create_account(&a).await.expect("create_account");
    let key = ApiKey::new(
        "ab".repeat(32),
        "hk_abcd".into(),
        Role::Account(a.id.clone()),
        T0,
    );
    assert_eq!(cached.api_key(&key.hash).await.expect("api_key"), None);
    cached.put_api_key(&key).await.expect("put_api_key");
    assert_eq!(
        cached.api_key(&key.hash).await.expect("api_key"),
        Some(key.clone())
    );

    // Deleted elsewhere: the key still authenticates here within the time to live.
    assert!(inner.delete_account(&a.id).await.expect("delete_account"));
    assert_eq!(
        cached.api_key(&key.hash).await.expect("api_key"),
        Some(key.clone())
    );

    // A local delete forgets every key, even when the store had nothing left to delete.
    assert!(!cached.delete_account(&a.id).await.expect("delete_account"));
    assert_eq!(cached.api_key(&key.hash).await.expect("api_key"), None);
}

#[tokio::test]
async fn subscribers_are_kept_until_an_endpoint_changes_through_the_cache() {
    let (inner, cached) = cached_with(LONG).await;
    let a = account("acme", "Acme");
    cached.create_account(&a).await.expect("create_account");
    assert!(
        subscriber_ids(&cached, &a.id).await.is_empty(),
        "an empty answer is kept too"
    );

    let first = endpoint(&a.id);
    inner
        .create_endpoint(&first)
        .await
        .expect("create_endpoint");
    assert!(
        subscriber_ids(&cached, &a.id).await.is_empty(),
        "created elsewhere: not seen within the time to live"
    );

    let second = endpoint(&a.id);
    cached
        .create_endpoint(&second)
        .await
        .expect("create_endpoint");
    let mut both = vec![first.id.clone(), second.id.clone()];
    both.sort();
    assert_eq!(subscriber_ids(&cached, &a.id).await, both);

    // Disabled elsewhere: still a subscriber here; disabled here: gone at once.
    let mut off = first.clone();
    off.enabled = false;
    inner.update_endpoint(&off).await.expect("update_endpoint");
    assert_eq!(subscriber_ids(&cached, &a.id).await, both);
    assert!(
        cached
            .disable_endpoint(&second.id, "disabled here", T0)
            .await
            .expect("disable_endpoint")
    );
    assert!(subscriber_ids(&cached, &a.id).await.is_empty());

    // A failure clock started through the cache shows on the cached endpoints at once.
    let third = endpoint(&a.id);
    cached
        .create_endpoint(&third)
        .await
        .expect("create_endpoint");
    let listed = cached
        .subscribers(&a.id, None, &kind())
        .await
        .expect("subscribers");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].failing_since(), None);
    assert_eq!(
        cached
            .record_failing(&third.id, T0)
            .await
            .expect("record_failing"),
        Some(T0)
    );
    let listed = cached
        .subscribers(&a.id, None, &kind())
        .await
        .expect("subscribers");
    assert_eq!(listed[0].failing_since(), Some(T0));
    cached
        .record_healthy(&third.id)
        .await
        .expect("record_healthy");
    let listed = cached
        .subscribers(&a.id, None, &kind())
        .await
        .expect("subscribers");
    assert_eq!(listed[0].failing_since(), None);

    assert!(
        cached
            .remove_endpoint(&a.id, &third.id)
            .await
            .expect("remove_endpoint")
    );
    assert!(subscriber_ids(&cached, &a.id).await.is_empty());
}

#[tokio::test]
async fn a_zero_ttl_reads_the_store_every_time() {
    let (inner, cached) = cached_with(Duration::ZERO).await;
    let a = account("acme", "Acme");
    cached.create_account(&a).await.expect("create_account");
    assert_eq!(
        cached.account(&a.id).await.expect("account"),
        Some(a.clone())
    );
    assert!(subscriber_ids(&cached, &a.id).await.is_empty());

    let mut renamed = a.clone();
    renamed.name = "Renamed elsewhere".into();
    inner
        .update_account(&renamed)
        .await
        .expect("update_account");
    assert_eq!(cached.account(&a.id).await.expect("account"), Some(renamed));
    let ep = endpoint(&a.id);
    inner.create_endpoint(&ep).await.expect("create_endpoint");
    assert_eq!(subscriber_ids(&cached, &a.id).await, vec![ep.id]);
}

#[tokio::test]
async fn clear_forgets_what_changed_elsewhere() {
    let (inner, cached) = cached_with(LONG).await;
    let a = account("acme", "Acme");
    cached.create_account(&a).await.expect("create_account");
    assert!(subscriber_ids(&cached, &a.id).await.is_empty());
    let ep = endpoint(&a.id);
    inner.create_endpoint(&ep).await.expect("create_endpoint");
    assert!(subscriber_ids(&cached, &a.id).await.is_empty());
    cached.clear();
    assert_eq!(subscriber_ids(&cached, &a.id).await, vec![ep.id]);
}

#[tokio::test]
async fn an_enqueue_refused_for_a_gone_target_lets_the_next_subscribers_read_the_store() {
    let (inner, cached) = cached_with(LONG).await;
    let a = account("acme", "Acme");
    cached.create_account(&a).await.expect("create_account");
    let ep = endpoint(&a.id);
    cached.create_endpoint(&ep).await.expect("create_endpoint");
    let stale = subscriber_ids(&cached, &a.id).await;
    assert_eq!(stale, vec![ep.id.clone()]);

    // Removed elsewhere: the cached list still names it.
    assert!(
        inner
            .remove_endpoint(&a.id, &ep.id)
            .await
            .expect("remove_endpoint")
    );
    assert_eq!(subscriber_ids(&cached, &a.id).await, stale);

    let ev = Event::new(
        EventId::generate(),
        a.id.clone(),
        kind(),
        RawValue::from_string("{}".into()).expect("valid JSON"),
        T0,
    );
    // The store refuses an enqueue to an endpoint that is gone (the conformance suite asserts
    // it), and the cache forgets the stale list, so the next read sees the store again.
    match cached.enqueue(&ev, &stale, T0).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("an enqueue to a removed endpoint must be refused, got {other:?}"),
    }
    assert!(subscriber_ids(&cached, &a.id).await.is_empty());
}
